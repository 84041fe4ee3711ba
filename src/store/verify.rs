//! Checking bundles against their manifests and the chain of `previous` digests.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::fs::{self, File};
use std::io::{self, BufReader};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::manifest::{FileEntry, Manifest};
use super::names::{is_plain_file_name, short_digest, SHORT_DIGEST_LEN};
use super::write::{sha256_hex, HashingWriter, MANIFEST};
use super::{bundle_ids, StoreError};

/// The kind of difference found in one file or one link of the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// The file's size or sha256 differs from the manifest, or the manifest differs from the
    /// digest in the bundle name.
    Changed,
    /// The manifest lists a file that is not there.
    Missing,
    /// A file or directory is there that the manifest does not list.
    Extra,
    /// A symbolic link sits where a file was expected; it is reported and never followed.
    Symlink,
    /// The directory name is not a bundle id, so the manifest cannot be checked against it.
    Misnamed,
    /// The bundle that a `previous` digest names is gone.
    Removed,
    /// A bundle's `previous` names a bundle that does not sort just before it.
    Reordered,
    /// A `previous` digest does not match the bundle before it for another reason.
    BrokenChain,
}

impl ProblemKind {
    /// Returns the upper-case word that starts a problem line.
    pub fn label(self) -> &'static str {
        match self {
            ProblemKind::Changed => "CHANGED",
            ProblemKind::Missing => "MISSING",
            ProblemKind::Extra => "EXTRA",
            ProblemKind::Symlink => "SYMLINK",
            ProblemKind::Misnamed => "MISNAMED",
            ProblemKind::Removed => "REMOVED",
            ProblemKind::Reordered => "REORDERED",
            ProblemKind::BrokenChain => "BROKEN-CHAIN",
        }
    }
}

/// One problem, shown as `CHANGED snapshot.json (detail)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The file inside the bundle, or for chain problems the bundle id.
    pub file: String,
    pub kind: ProblemKind,
    /// A few words on the difference; may be empty.
    pub detail: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind.label(), self.file.escape_debug())?;
        if !self.detail.is_empty() {
            write!(f, " ({})", self.detail.escape_debug())?;
        }
        Ok(())
    }
}

/// The result of checking a bundle or a data directory.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// The bundle or data directory that was checked.
    pub subject: PathBuf,
    /// Files whose size and sha256 were recomputed.
    pub checked_files: usize,
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// Returns the process exit code for this result: 0 when intact, 1 when anything differs.
    pub fn exit_code(&self) -> i32 {
        if self.is_ok() {
            0
        } else {
            1
        }
    }

    /// Formats one line for the end of the output: `OK <path> (11 files)` or
    /// `FAILED <path>: 2 problems`.
    pub fn summary(&self) -> String {
        let subject = self.subject.display();
        match self.problems.len() {
            0 => format!("OK {subject} ({} files)", self.checked_files),
            1 => format!("FAILED {subject}: 1 problem"),
            count => format!("FAILED {subject}: {count} problems"),
        }
    }

    fn push(&mut self, file: impl Into<String>, kind: ProblemKind, detail: impl Into<String>) {
        self.problems.push(Problem {
            file: file.into(),
            kind,
            detail: detail.into(),
        });
    }
}

/// Lists the problems, one per line.
impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for problem in &self.problems {
            writeln!(f, "{problem}")?;
        }
        Ok(())
    }
}

/// Recomputes the size and sha256 of every file of one bundle and compares them with its
/// manifest, and the manifest with the digest in the directory name.
///
/// Returns an error only when the bundle directory itself cannot be read.
pub fn verify(bundle: &Path) -> Result<VerifyReport, StoreError> {
    let bundle =
        fs::canonicalize(bundle).map_err(|source| StoreError::io("open bundle", bundle, source))?;
    if !bundle.is_dir() {
        return Err(StoreError::NotADirectory { path: bundle });
    }
    let mut report = VerifyReport {
        subject: bundle.clone(),
        ..VerifyReport::default()
    };

    let Some(bytes) = read_manifest(&bundle, &mut report)? else {
        return Ok(report);
    };
    check_name(&bundle, &sha256_hex(&bytes), MANIFEST, &mut report);
    let manifest = match serde_json::from_slice::<Manifest>(&bytes) {
        Ok(manifest) => manifest,
        Err(error) => {
            report.push(
                MANIFEST,
                ProblemKind::Changed,
                format!("not a valid manifest: {error}"),
            );
            return Ok(report);
        }
    };

    check_listed_files(&bundle, &manifest, &mut report)?;
    check_unlisted_files(&bundle, &manifest, &mut report)?;
    Ok(report)
}

/// Reads `manifest.json`, recording a problem and returning `None` when it is absent or a
/// symbolic link.
fn read_manifest(bundle: &Path, report: &mut VerifyReport) -> Result<Option<Vec<u8>>, StoreError> {
    let path = bundle.join(MANIFEST);
    let metadata = match fs::symlink_metadata(&path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            report.push(
                MANIFEST,
                ProblemKind::Missing,
                "nothing can be checked without it",
            );
            return Ok(None);
        }
        Err(source) => return Err(StoreError::io("read", &path, source)),
    };
    if metadata.file_type().is_symlink() {
        report.push(MANIFEST, ProblemKind::Symlink, "not followed");
        return Ok(None);
    }

    let bytes = fs::read(&path).map_err(|source| StoreError::io("read", &path, source))?;
    report.checked_files += 1;
    Ok(Some(bytes))
}

/// Compares the digest of a manifest with the 12 hex digits at the end of the bundle name.
fn check_name(bundle: &Path, digest: &str, file: &str, report: &mut VerifyReport) {
    let name = bundle.file_name().unwrap_or_default().to_string_lossy();
    match short_digest(&name) {
        None => report.push(
            name.as_ref(),
            ProblemKind::Misnamed,
            "the directory name is not a bundle id, so manifest.json cannot be checked",
        ),
        Some(short) if short != &digest[..SHORT_DIGEST_LEN] => report.push(
            file,
            ProblemKind::Changed,
            format!(
                "sha256 {} does not match the bundle name",
                &digest[..SHORT_DIGEST_LEN]
            ),
        ),
        Some(_) => {}
    }
}

fn check_listed_files(
    bundle: &Path,
    manifest: &Manifest,
    report: &mut VerifyReport,
) -> Result<(), StoreError> {
    for entry in &manifest.files {
        if !is_plain_file_name(&entry.name) || entry.name == MANIFEST {
            let detail = format!("lists an invalid file name {:?}", entry.name);
            report.push(MANIFEST, ProblemKind::Changed, detail);
            continue;
        }
        check_listed_file(bundle, entry, report)?;
    }
    Ok(())
}

/// Compares one file with its manifest entry, without following a symbolic link.
fn check_listed_file(
    bundle: &Path,
    entry: &FileEntry,
    report: &mut VerifyReport,
) -> Result<(), StoreError> {
    let path = bundle.join(&entry.name);
    let metadata = match fs::symlink_metadata(&path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            report.push(&entry.name, ProblemKind::Missing, "");
            return Ok(());
        }
        Err(source) => return Err(StoreError::io("read", &path, source)),
    };
    if metadata.file_type().is_symlink() {
        report.push(&entry.name, ProblemKind::Symlink, "not followed");
        return Ok(());
    }
    if !metadata.is_file() {
        report.push(&entry.name, ProblemKind::Changed, "not a regular file");
        return Ok(());
    }

    let (sha256, size) = hash_file(&path)?;
    report.checked_files += 1;
    if size != entry.size {
        let detail = format!("{size} bytes, manifest says {}", entry.size);
        report.push(&entry.name, ProblemKind::Changed, detail);
    } else if sha256 != entry.sha256 {
        report.push(
            &entry.name,
            ProblemKind::Changed,
            "sha256 differs from the manifest",
        );
    }
    Ok(())
}

fn check_unlisted_files(
    bundle: &Path,
    manifest: &Manifest,
    report: &mut VerifyReport,
) -> Result<(), StoreError> {
    let listed: BTreeSet<&str> = manifest.files.iter().map(|f| f.name.as_str()).collect();
    let entries =
        fs::read_dir(bundle).map_err(|source| StoreError::io("read directory", bundle, source))?;
    let mut extra = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| StoreError::io("read directory", bundle, source))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == MANIFEST || listed.contains(name.as_str()) {
            continue;
        }
        let is_symlink = entry.file_type().is_ok_and(|kind| kind.is_symlink());
        extra.push((name, is_symlink));
    }

    extra.sort();
    for (name, is_symlink) in extra {
        let detail = if is_symlink {
            "symbolic link, not followed"
        } else {
            ""
        };
        report.push(name, ProblemKind::Extra, detail);
    }
    Ok(())
}

/// Streams a file through sha256 and returns the hex digest and the size.
fn hash_file(path: &Path) -> Result<(String, u64), StoreError> {
    let file = File::open(path).map_err(|source| StoreError::io("read", path, source))?;
    let mut hasher = HashingWriter::new(io::sink());
    io::copy(&mut BufReader::new(file), &mut hasher)
        .map_err(|source| StoreError::io("read", path, source))?;
    let (_, sha256, size) = hasher.finish();
    Ok((sha256, size))
}

/// One bundle's digest and `previous`, as the chain walk reads them.
struct Link {
    id: String,
    /// The sha256 of the manifest; `None` when it could not be read.
    digest: Option<String>,
    /// The manifest's `previous`; `None` when the manifest could not be read or parsed.
    previous: Option<Option<String>>,
}

/// Walks the bundles of a data directory from oldest to newest and checks that each bundle's
/// `previous` is the digest of the bundle just before it.
///
/// Bundles are ordered by id, that is by capture time, so a bundle written while the clock
/// stood earlier than for the bundle before it shows as reordered.
pub fn verify_chain(dir: &Path) -> Result<VerifyReport, StoreError> {
    if !dir.is_dir() {
        return Err(StoreError::NotADirectory {
            path: dir.to_path_buf(),
        });
    }
    let mut report = VerifyReport {
        subject: dir.to_path_buf(),
        ..VerifyReport::default()
    };

    let links = read_links(dir, &mut report);
    let positions: HashMap<&str, usize> = links
        .iter()
        .enumerate()
        .filter_map(|(index, link)| Some((link.digest.as_deref()?, index)))
        .collect();
    for (index, link) in links.iter().enumerate() {
        let before = index.checked_sub(1).map(|i| &links[i]);
        check_link(link, before, &links, &positions, &mut report);
    }
    Ok(report)
}

fn read_links(dir: &Path, report: &mut VerifyReport) -> Vec<Link> {
    let ids = match bundle_ids(dir) {
        Ok(ids) => ids,
        Err(error) => {
            report.push(
                dir.display().to_string(),
                ProblemKind::Missing,
                error.to_string(),
            );
            return Vec::new();
        }
    };

    let mut links = Vec::new();
    for id in ids {
        let path = dir.join(&id).join(MANIFEST);
        let bytes = super::read_regular_file(&path);
        let Some(bytes) = bytes else {
            report.push(format!("{id}/{MANIFEST}"), ProblemKind::Missing, "");
            links.push(Link {
                id,
                digest: None,
                previous: None,
            });
            continue;
        };

        let digest = sha256_hex(&bytes);
        check_name(&dir.join(&id), &digest, &format!("{id}/{MANIFEST}"), report);
        report.checked_files += 1;
        let previous = serde_json::from_slice::<Manifest>(&bytes)
            .ok()
            .map(|m| m.previous);
        if previous.is_none() {
            report.push(
                format!("{id}/{MANIFEST}"),
                ProblemKind::Changed,
                "not a valid manifest",
            );
        }
        links.push(Link {
            id,
            digest: Some(digest),
            previous,
        });
    }
    links
}

/// Checks one bundle's `previous` against the bundle before it and names the likely cause
/// when they differ.
fn check_link(
    link: &Link,
    before: Option<&Link>,
    links: &[Link],
    positions: &HashMap<&str, usize>,
    report: &mut VerifyReport,
) {
    let Some(previous) = &link.previous else {
        return;
    };
    let expected = before.map(|b| b.digest.as_deref());
    match (previous.as_deref(), expected) {
        (None, None) => {}
        (Some(found), Some(Some(expected))) if found == expected => {}
        (None, Some(_)) => {
            let before_id = before.map(|b| b.id.as_str()).unwrap_or_default();
            let detail = format!("previous is null, but {before_id} comes before it");
            report.push(&link.id, ProblemKind::BrokenChain, detail);
        }
        (Some(found), _) => {
            let (kind, detail) = classify_mismatch(found, before, links, positions);
            report.push(&link.id, kind, detail);
        }
    }
}

fn classify_mismatch(
    found: &str,
    before: Option<&Link>,
    links: &[Link],
    positions: &HashMap<&str, usize>,
) -> (ProblemKind, String) {
    let short = &found[..SHORT_DIGEST_LEN.min(found.len())];
    if let Some(&position) = positions.get(found) {
        let detail = format!(
            "previous is {}, which does not sort just before it",
            links[position].id
        );
        return (ProblemKind::Reordered, detail);
    }

    let before_short = before.and_then(|b| short_digest(&b.id));
    if let Some(before) = before.filter(|_| before_short == Some(short)) {
        let detail = format!(
            "previous does not match {}/{MANIFEST}, which was changed",
            before.id
        );
        return (ProblemKind::BrokenChain, detail);
    }
    let detail = format!("the bundle before it, digest {short}, is missing");
    (ProblemKind::Removed, detail)
}

/// Verifies every bundle of a data directory and the chain between them. Problems of one
/// bundle are named `<id>/<file>`.
pub fn verify_all(dir: &Path) -> Result<VerifyReport, StoreError> {
    let mut report = verify_chain(dir)?;
    report.checked_files = 0;
    for id in bundle_ids(dir)? {
        let bundle = verify(&dir.join(&id))?;
        report.checked_files += bundle.checked_files;
        for problem in bundle.problems {
            let file = format!("{id}/{}", problem.file);
            // The chain walk already compared each manifest with its bundle name.
            let already = report
                .problems
                .iter()
                .any(|p| p.file == file && p.kind == problem.kind);
            if !already {
                report.push(file, problem.kind, problem.detail);
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{self, write_capture, write_sample};
    use super::super::{BundleInfo, BundleStore};
    use super::*;

    fn store() -> (tempfile::TempDir, BundleStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = BundleStore::open(dir.path().join("logs")).unwrap();
        (dir, store)
    }

    fn problem(file: &str, kind: ProblemKind) -> (String, ProblemKind) {
        (file.to_string(), kind)
    }

    fn problems(report: &VerifyReport) -> Vec<(String, ProblemKind)> {
        report
            .problems
            .iter()
            .map(|p| (p.file.clone(), p.kind))
            .collect()
    }

    /// Writes three bundles one minute apart, oldest first.
    fn chain_of_three(store: &BundleStore) -> Vec<BundleInfo> {
        (0..3)
            .map(|minute| {
                let mut capture = test_support::capture();
                capture.snapshot.captured_at += chrono::Duration::minutes(minute);
                write_capture(store, &capture)
            })
            .collect()
    }

    #[test]
    fn verify_passes_on_fresh_bundle() {
        let (_tmp, store) = store();
        let info = write_sample(&store);

        let report = verify(&info.path).unwrap();
        assert_eq!(report.problems, []);
        assert!(report.is_ok());
        assert_eq!(report.exit_code(), 0);
        assert_eq!(report.checked_files, 6);
        assert_eq!(report.to_string(), "");
        assert!(report.summary().starts_with("OK "), "{}", report.summary());
    }

    #[test]
    fn verify_detects_changed_byte() {
        let (_tmp, store) = store();
        let info = write_sample(&store);
        let path = info.path.join("snapshot.json");
        let mut bytes = fs::read(&path).unwrap();
        bytes[10] ^= 0x01;
        fs::write(&path, bytes).unwrap();

        let report = verify(&info.path).unwrap();
        assert_eq!(
            problems(&report),
            [problem("snapshot.json", ProblemKind::Changed)]
        );
        assert_eq!(report.exit_code(), 1);
        assert_eq!(
            report.to_string(),
            "CHANGED snapshot.json (sha256 differs from the manifest)\n"
        );
    }

    #[test]
    fn verify_detects_changed_size() {
        let (_tmp, store) = store();
        let info = write_sample(&store);
        fs::write(info.path.join("top.txt"), b"short\n").unwrap();

        let report = verify(&info.path).unwrap();
        assert_eq!(
            problems(&report),
            [problem("top.txt", ProblemKind::Changed)]
        );
        assert!(report.problems[0]
            .detail
            .starts_with("6 bytes, manifest says "));
    }

    #[test]
    fn verify_detects_missing_file() {
        let (_tmp, store) = store();
        let info = write_sample(&store);
        fs::remove_file(info.path.join("raw.tar")).unwrap();

        let report = verify(&info.path).unwrap();
        assert_eq!(
            problems(&report),
            [problem("raw.tar", ProblemKind::Missing)]
        );
        assert_eq!(report.to_string(), "MISSING raw.tar\n");
    }

    #[test]
    fn verify_detects_extra_file() {
        let (_tmp, store) = store();
        let info = write_sample(&store);
        fs::write(info.path.join("notes.txt"), b"added later").unwrap();
        fs::create_dir(info.path.join("extra-dir")).unwrap();

        let report = verify(&info.path).unwrap();
        assert_eq!(
            problems(&report),
            [
                problem("extra-dir", ProblemKind::Extra),
                problem("notes.txt", ProblemKind::Extra)
            ]
        );
    }

    #[test]
    fn verify_detects_changed_manifest() {
        let (_tmp, store) = store();
        let info = write_sample(&store);
        let path = info.path.join(MANIFEST);
        let text = fs::read_to_string(&path).unwrap();
        fs::write(&path, text.replace("HighCPUUsage", "LowCPUUsage!")).unwrap();

        let report = verify(&info.path).unwrap();
        assert_eq!(problems(&report), [problem(MANIFEST, ProblemKind::Changed)]);
        assert!(report.problems[0]
            .detail
            .contains("does not match the bundle name"));
    }

    #[test]
    fn verify_detects_missing_manifest() {
        let (_tmp, store) = store();
        let info = write_sample(&store);
        fs::remove_file(info.path.join(MANIFEST)).unwrap();

        let report = verify(&info.path).unwrap();
        assert_eq!(problems(&report), [problem(MANIFEST, ProblemKind::Missing)]);
    }

    #[test]
    fn verify_detects_manifest_that_is_not_json() {
        let (_tmp, store) = store();
        let info = write_sample(&store);
        fs::write(info.path.join(MANIFEST), b"not json").unwrap();

        let report = verify(&info.path).unwrap();
        assert_eq!(
            problems(&report),
            [
                problem(MANIFEST, ProblemKind::Changed),
                problem(MANIFEST, ProblemKind::Changed)
            ]
        );
    }

    #[cfg(unix)]
    #[test]
    fn verify_reports_symlinks_without_following() {
        let (tmp, store) = store();
        let info = write_sample(&store);
        let target = tmp.path().join("replacement.txt");
        fs::copy(info.path.join("top.txt"), &target).unwrap();
        fs::remove_file(info.path.join("top.txt")).unwrap();
        std::os::unix::fs::symlink(&target, info.path.join("top.txt")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", info.path.join("passwd")).unwrap();

        let report = verify(&info.path).unwrap();
        assert_eq!(
            problems(&report),
            [
                problem("top.txt", ProblemKind::Symlink),
                problem("passwd", ProblemKind::Extra)
            ]
        );
        assert_eq!(report.problems[1].detail, "symbolic link, not followed");
    }

    #[test]
    fn verify_reports_misnamed_directory() {
        let (tmp, store) = store();
        let info = write_sample(&store);
        let renamed = tmp.path().join("evidence");
        fs::rename(&info.path, &renamed).unwrap();

        let report = verify(&renamed).unwrap();
        assert_eq!(
            problems(&report),
            [problem("evidence", ProblemKind::Misnamed)]
        );
    }

    #[test]
    fn verify_fails_on_absent_bundle() {
        let tmp = tempfile::tempdir().unwrap();
        let error = verify(&tmp.path().join("absent")).unwrap_err();

        assert!(matches!(error, StoreError::Io { .. }));
        assert!(error.to_string().contains("absent"), "{error}");
    }

    #[test]
    fn problem_display_escapes_control_characters() {
        let problem = Problem {
            file: "evil\u{1b}[31m".to_string(),
            kind: ProblemKind::Extra,
            detail: String::new(),
        };

        assert_eq!(problem.to_string(), "EXTRA evil\\u{1b}[31m");
    }

    #[test]
    fn verify_chain_passes_on_linked_bundles() {
        let (_tmp, store) = store();
        chain_of_three(&store);

        let report = verify_chain(store.dir()).unwrap();
        assert_eq!(report.problems, []);
        assert_eq!(report.checked_files, 3);
    }

    #[test]
    fn verify_chain_detects_removed_bundle() {
        let (_tmp, store) = store();
        let bundles = chain_of_three(&store);
        fs::remove_dir_all(&bundles[1].path).unwrap();

        let report = verify_chain(store.dir()).unwrap();
        assert_eq!(
            problems(&report),
            [problem(&bundles[2].id, ProblemKind::Removed)]
        );
    }

    #[test]
    fn verify_chain_detects_removed_oldest_bundle() {
        let (_tmp, store) = store();
        let bundles = chain_of_three(&store);
        fs::remove_dir_all(&bundles[0].path).unwrap();

        let report = verify_chain(store.dir()).unwrap();
        assert_eq!(
            problems(&report),
            [problem(&bundles[1].id, ProblemKind::Removed)]
        );
    }

    #[test]
    fn verify_chain_detects_changed_manifest() {
        let (_tmp, store) = store();
        let bundles = chain_of_three(&store);
        let path = bundles[1].path.join(MANIFEST);
        let text = fs::read_to_string(&path).unwrap();
        fs::write(&path, text.replace("inc-1", "inc-2")).unwrap();

        let report = verify_chain(store.dir()).unwrap();
        let changed = format!("{}/{MANIFEST}", bundles[1].id);
        assert_eq!(
            problems(&report),
            [
                problem(&changed, ProblemKind::Changed),
                problem(&bundles[2].id, ProblemKind::BrokenChain),
            ]
        );
    }

    #[test]
    fn verify_chain_detects_reordered_bundles() {
        let (_tmp, store) = store();
        let bundles = chain_of_three(&store);
        let short = &bundles[1].digest[..SHORT_DIGEST_LEN];
        let moved = store
            .dir()
            .join(format!("2026-12-03T21-40-00.000Z_{short}"));
        fs::rename(&bundles[1].path, &moved).unwrap();

        let report = verify_chain(store.dir()).unwrap();
        let kinds: Vec<ProblemKind> = report.problems.iter().map(|p| p.kind).collect();
        assert!(kinds.contains(&ProblemKind::Reordered), "{report}");
        assert!(!report.is_ok());
        let moved_id = moved.file_name().unwrap().to_string_lossy().into_owned();
        assert!(report.problems.iter().any(|p| p.file == moved_id));
    }

    #[test]
    fn verify_chain_detects_new_chain_after_the_first() {
        let (tmp, store) = store();
        let first = write_sample(&store);
        let away = tmp.path().join("away");
        fs::rename(&first.path, &away).unwrap();
        let mut later = test_support::capture();
        later.snapshot.captured_at += chrono::Duration::minutes(1);
        let second = write_capture(&BundleStore::open(store.dir()).unwrap(), &later);
        fs::rename(&away, &first.path).unwrap();

        let report = verify_chain(store.dir()).unwrap();
        assert_eq!(
            problems(&report),
            [problem(&second.id, ProblemKind::BrokenChain)]
        );
        assert!(report.problems[0].detail.starts_with("previous is null"));
    }

    #[test]
    fn verify_all_combines_bundles_and_chain() {
        let (_tmp, store) = store();
        let bundles = chain_of_three(&store);
        fs::write(bundles[0].path.join("notes.txt"), b"x").unwrap();
        fs::remove_dir_all(&bundles[1].path).unwrap();

        let report = verify_all(store.dir()).unwrap();
        assert_eq!(
            problems(&report),
            [
                problem(&bundles[2].id, ProblemKind::Removed),
                problem(&format!("{}/notes.txt", bundles[0].id), ProblemKind::Extra),
            ]
        );
        assert_eq!(report.checked_files, 12);
        assert_eq!(
            report.summary(),
            format!("FAILED {}: 2 problems", store.dir().display())
        );
    }
}
