//! Checking bundles against their manifests and the chain of `previous` digests.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::fs::{self, File};
use std::io::{self, BufReader};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::manifest::{FileEntry, Manifest};
use super::names::{self, is_bundle_id, is_plain_file_name, short_digest, SHORT_DIGEST_LEN};
use super::write::{sha256_hex, HashingWriter, MANIFEST};
use super::{bundle_ids, parse_head, scan_data_dir, StoreError, HEAD_FILE, STATE_DIR};

/// The kind of difference found in one file or one link of the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// The file's size or sha256 differs from the manifest, or the manifest differs from the
    /// digest in the bundle name or in the chain head.
    Changed,
    /// The manifest lists a file that is not there.
    Missing,
    /// A file or directory is there that the manifest does not list, or a bundle is newer
    /// than the chain head.
    Extra,
    /// A symbolic link sits where a file or a bundle was expected; it is reported and never
    /// followed.
    Symlink,
    /// The directory name is not a bundle id, or its time differs from the manifest's
    /// `captured_at`.
    Misnamed,
    /// A bundle that a `previous` digest or the chain head names is gone.
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
    /// The file inside the bundle; for chain problems the bundle id, or `bundle before <id>`
    /// for a removed bundle whose id is not known.
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
    /// Limits of this check that are not problems, such as a data directory without a chain
    /// head.
    pub notes: Vec<String>,
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

    /// Adds a problem unless one of the same kind is already recorded for the same file.
    fn push_once(&mut self, file: impl Into<String>, kind: ProblemKind, detail: impl Into<String>) {
        let file = file.into();
        let already = self
            .problems
            .iter()
            .any(|problem| problem.file == file && problem.kind == kind);
        if !already {
            self.push(file, kind, detail);
        }
    }
}

/// Lists the problems, one per line, then the notes as `NOTE ...` lines.
impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for problem in &self.problems {
            writeln!(f, "{problem}")?;
        }
        for note in &self.notes {
            writeln!(f, "NOTE {}", note.escape_debug())?;
        }
        Ok(())
    }
}

/// The results of one `aegisir verify` run, one per path in the order given, and its exit
/// code.
#[derive(Debug)]
pub struct VerifyOutcome {
    pub results: Vec<(PathBuf, Result<VerifyReport, StoreError>)>,
    /// 2 when any path could not be read, else 1 when any problem was found or a directory
    /// held no bundles, else 0.
    pub exit_code: u8,
}

impl VerifyOutcome {
    fn new(results: Vec<(PathBuf, Result<VerifyReport, StoreError>)>) -> VerifyOutcome {
        let exit_code = results
            .iter()
            .map(|(_, result)| result_exit_code(result))
            .max()
            .unwrap_or(0);
        VerifyOutcome { results, exit_code }
    }
}

fn result_exit_code(result: &Result<VerifyReport, StoreError>) -> u8 {
    match result {
        Ok(report) if report.is_ok() => 0,
        Ok(_) => 1,
        Err(StoreError::NoBundles { .. } | StoreError::IsABundle { .. }) => 1,
        Err(_) => 2,
    }
}

/// Verifies every bundle in `bundles` with [`verify`], continuing past paths that cannot be
/// read.
pub fn verify_paths(bundles: &[PathBuf]) -> VerifyOutcome {
    let results = bundles
        .iter()
        .map(|bundle| (bundle.clone(), verify(bundle)))
        .collect();
    VerifyOutcome::new(results)
}

/// Verifies a data directory with [`verify_all`].
pub fn verify_data_dir(dir: &Path) -> VerifyOutcome {
    VerifyOutcome::new(vec![(dir.to_path_buf(), verify_all(dir))])
}

/// Recomputes the size and sha256 of every file of one bundle and compares them with its
/// manifest, and the manifest with the digest and the time in the directory name.
///
/// Returns an error only when the bundle directory itself cannot be read.
/// Rejects a directory without a manifest that is clearly not a bundle, naming the command to
/// use: the `.aegisir` state folder, or a data directory (it contains bundles or a state folder).
fn reject_non_bundle_directory(dir: &Path) -> Result<(), StoreError> {
    if dir.join(MANIFEST).exists() {
        return Ok(());
    }
    if dir.file_name().is_some_and(|name| name == STATE_DIR) {
        return Err(StoreError::IsStateFolder {
            path: dir.to_path_buf(),
        });
    }
    let holds_bundles = fs::read_dir(dir).is_ok_and(|entries| {
        entries.flatten().any(|entry| {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            name == STATE_DIR || is_bundle_id(&name)
        })
    });
    if holds_bundles {
        return Err(StoreError::IsADataDirectory {
            path: dir.to_path_buf(),
        });
    }
    Ok(())
}

pub fn verify(bundle: &Path) -> Result<VerifyReport, StoreError> {
    let bundle =
        fs::canonicalize(bundle).map_err(|source| StoreError::io("open bundle", bundle, source))?;
    if !bundle.is_dir() {
        return Err(StoreError::NotADirectory { path: bundle });
    }
    reject_non_bundle_directory(&bundle)?;
    let mut report = VerifyReport {
        subject: bundle.clone(),
        ..VerifyReport::default()
    };

    let Some(bytes) = read_manifest(&bundle, MANIFEST, &mut report)? else {
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
    check_name_time(&bundle, manifest.captured_at, &mut report);

    check_listed_files(&bundle, &manifest, &mut report)?;
    check_unlisted_files(&bundle, &manifest, &mut report)?;
    Ok(report)
}

/// Reads `manifest.json`, recording one problem under `label` and returning `None` when it is
/// absent, a symbolic link or not a regular file.
fn read_manifest(
    bundle: &Path,
    label: &str,
    report: &mut VerifyReport,
) -> Result<Option<Vec<u8>>, StoreError> {
    let path = bundle.join(MANIFEST);
    let metadata = match fs::symlink_metadata(&path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            report.push(
                label,
                ProblemKind::Missing,
                "nothing can be checked without it",
            );
            return Ok(None);
        }
        Err(source) => return Err(StoreError::io("read", &path, source)),
    };
    if metadata.file_type().is_symlink() {
        report.push(label, ProblemKind::Symlink, "not followed");
        return Ok(None);
    }
    if !metadata.is_file() {
        report.push(label, ProblemKind::Changed, "not a regular file");
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

/// Compares the time in the bundle name with the manifest's `captured_at`, formatted as in an
/// id, because the digest in the name does not cover the time part.
fn check_name_time(bundle: &Path, captured_at: DateTime<Utc>, report: &mut VerifyReport) {
    let name = bundle.file_name().unwrap_or_default().to_string_lossy();
    let Some(time) = names::id_time_part(&name) else {
        return;
    };
    let expected = names::id_time_text(captured_at);
    if time != expected {
        let detail =
            format!("the name has time {time}, but captured_at in {MANIFEST} is {expected}");
        report.push(name.as_ref(), ProblemKind::Misnamed, detail);
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

/// The contents of `.aegisir/head` as the chain walk sees them.
enum HeadFile {
    Absent,
    /// The file is there but cannot be used; the problem to report.
    Unusable(ProblemKind, &'static str),
    Head {
        id: String,
        digest: String,
    },
}

/// Walks the bundles of a data directory from oldest to newest and checks that each bundle's
/// `previous` is the digest of the bundle just before it, and that `.aegisir/head` names the
/// newest bundle with its digest.
///
/// Bundles are ordered by id, that is by capture time, so a bundle written while the clock
/// stood earlier than for the bundle before it shows as reordered. Entries named like bundles
/// that are symbolic links or files are reported and never followed.
///
/// Returns [`StoreError::NoBundles`] or [`StoreError::IsABundle`] when `dir` holds no bundle,
/// nothing named like one, and no chain head.
pub fn verify_chain(dir: &Path) -> Result<VerifyReport, StoreError> {
    if !dir.is_dir() {
        return Err(StoreError::NotADirectory {
            path: dir.to_path_buf(),
        });
    }
    let scan = scan_data_dir(dir)?;
    let head = read_head_file(dir)?;
    if scan.bundles.is_empty()
        && scan.non_directories.is_empty()
        && matches!(head, HeadFile::Absent)
    {
        return Err(empty_dir_error(dir));
    }
    let mut report = VerifyReport {
        subject: dir.to_path_buf(),
        ..VerifyReport::default()
    };

    report_non_directories(&scan.non_directories, &mut report);
    let links = read_links(dir, &scan.bundles, &mut report)?;
    let positions: HashMap<&str, usize> = links
        .iter()
        .enumerate()
        .filter_map(|(index, link)| Some((link.digest.as_deref()?, index)))
        .collect();
    for (index, link) in links.iter().enumerate() {
        let before = index.checked_sub(1).map(|i| &links[i]);
        check_link(link, before, &links, &positions, &mut report);
    }

    check_head(head, &links, &mut report);
    Ok(report)
}

/// Tells a directory that is itself a bundle apart from any other directory without bundles.
fn empty_dir_error(dir: &Path) -> StoreError {
    let path = dir.to_path_buf();
    let named_like_bundle = dir
        .file_name()
        .and_then(|name| name.to_str())
        .is_some_and(is_bundle_id);
    let has_manifest = fs::symlink_metadata(dir.join(MANIFEST)).is_ok();
    if named_like_bundle || has_manifest {
        StoreError::IsABundle { path }
    } else {
        StoreError::NoBundles { path }
    }
}

fn report_non_directories(non_directories: &[(String, bool)], report: &mut VerifyReport) {
    for (name, is_symlink) in non_directories {
        if *is_symlink {
            report.push(
                name,
                ProblemKind::Symlink,
                "named like a bundle; not followed",
            );
        } else {
            report.push(
                name,
                ProblemKind::Extra,
                "named like a bundle, but not a directory",
            );
        }
    }
}

fn read_links(
    dir: &Path,
    ids: &[String],
    report: &mut VerifyReport,
) -> Result<Vec<Link>, StoreError> {
    let mut links = Vec::with_capacity(ids.len());
    for id in ids {
        links.push(read_link(dir, id, report)?);
    }
    Ok(links)
}

/// Reads one bundle's manifest for the chain walk and checks it against the bundle name.
fn read_link(dir: &Path, id: &str, report: &mut VerifyReport) -> Result<Link, StoreError> {
    let bundle = dir.join(id);
    let label = format!("{id}/{MANIFEST}");
    let mut link = Link {
        id: id.to_string(),
        digest: None,
        previous: None,
    };
    let Some(bytes) = read_manifest(&bundle, &label, report)? else {
        return Ok(link);
    };

    let digest = sha256_hex(&bytes);
    check_name(&bundle, &digest, &label, report);
    link.digest = Some(digest);
    match serde_json::from_slice::<Manifest>(&bytes) {
        Ok(manifest) => {
            check_name_time(&bundle, manifest.captured_at, report);
            link.previous = Some(manifest.previous);
        }
        Err(_) => report.push(&label, ProblemKind::Changed, "not a valid manifest"),
    }
    Ok(link)
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
            let problem = classify_mismatch(&link.id, found, before, links, positions);
            report.problems.push(problem);
        }
    }
}

/// Names the cause of a `previous` that is not the digest of the bundle before `id`.
fn classify_mismatch(
    id: &str,
    found: &str,
    before: Option<&Link>,
    links: &[Link],
    positions: &HashMap<&str, usize>,
) -> Problem {
    let problem = |file: String, kind, detail: String| Problem { file, kind, detail };
    if !names::is_full_digest(found) {
        let detail = format!("previous {found:?} is not a sha256 digest");
        return problem(id.to_string(), ProblemKind::BrokenChain, detail);
    }
    if let Some(&position) = positions.get(found) {
        let detail = format!(
            "previous is {}, which does not sort just before it",
            links[position].id
        );
        return problem(id.to_string(), ProblemKind::Reordered, detail);
    }

    let short = &found[..SHORT_DIGEST_LEN];
    let before_short = before.and_then(|b| short_digest(&b.id));
    if let Some(before) = before.filter(|_| before_short == Some(short)) {
        let detail = format!(
            "previous does not match {}/{MANIFEST}, which was changed",
            before.id
        );
        return problem(id.to_string(), ProblemKind::BrokenChain, detail);
    }
    let detail = format!("its previous digest {short}... matches no bundle");
    problem(format!("bundle before {id}"), ProblemKind::Removed, detail)
}

/// Reads `.aegisir/head` without following a symbolic link.
fn read_head_file(dir: &Path) -> Result<HeadFile, StoreError> {
    let path = dir.join(STATE_DIR).join(HEAD_FILE);
    let metadata = match fs::symlink_metadata(&path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(HeadFile::Absent),
        Err(source) => return Err(StoreError::io("read", &path, source)),
    };
    if metadata.file_type().is_symlink() {
        return Ok(HeadFile::Unusable(ProblemKind::Symlink, "not followed"));
    }
    if !metadata.is_file() {
        return Ok(HeadFile::Unusable(
            ProblemKind::Changed,
            "not a regular file",
        ));
    }

    let bytes = fs::read(&path).map_err(|source| StoreError::io("read", &path, source))?;
    let text = String::from_utf8_lossy(&bytes);
    Ok(match parse_head(&text) {
        Some((id, digest)) => HeadFile::Head {
            id: id.to_string(),
            digest: digest.to_string(),
        },
        None => HeadFile::Unusable(ProblemKind::Changed, "expected `<bundle id> <sha256>`"),
    })
}

/// Checks that the head names an existing bundle with its digest and that no bundle is newer.
fn check_head(head: HeadFile, links: &[Link], report: &mut VerifyReport) {
    let label = format!("{STATE_DIR}/{HEAD_FILE}");
    match head {
        HeadFile::Absent if links.is_empty() => {}
        HeadFile::Absent => report.notes.push(format!(
            "{label} is absent, so removing the newest bundle cannot be detected; \
             data directories written before AegisIR recorded a chain head have none"
        )),
        HeadFile::Unusable(kind, detail) => report.push(label, kind, detail),
        HeadFile::Head { id, digest } => check_head_bundle(&id, &digest, links, report),
    }
}

fn check_head_bundle(id: &str, digest: &str, links: &[Link], report: &mut VerifyReport) {
    let Some(position) = links.iter().position(|link| link.id == id) else {
        report_missing_head(id, digest, links, report);
        return;
    };

    let found = links[position].digest.as_deref();
    if let Some(found) = found.filter(|found| *found != digest) {
        let detail = format!(
            "sha256 {}... does not match {}... in {STATE_DIR}/{HEAD_FILE}",
            &found[..SHORT_DIGEST_LEN],
            &digest[..SHORT_DIGEST_LEN]
        );
        report.push_once(format!("{id}/{MANIFEST}"), ProblemKind::Changed, detail);
    }

    // NOTE: a crash between a bundle's rename and the head update leaves the head one bundle
    // behind, so that last bundle shows as extra although the store wrote it.
    for newer in &links[position + 1..] {
        let detail = format!("newer than {id}, the newest bundle in {STATE_DIR}/{HEAD_FILE}");
        report.push(&newer.id, ProblemKind::Extra, detail);
    }
}

/// Reports the bundle the head names as removed, or as renamed when its digest is still there.
fn report_missing_head(id: &str, digest: &str, links: &[Link], report: &mut VerifyReport) {
    match links
        .iter()
        .find(|link| link.digest.as_deref() == Some(digest))
    {
        Some(renamed) => {
            let detail = format!("{STATE_DIR}/{HEAD_FILE} records this bundle as {id}");
            report.push_once(&renamed.id, ProblemKind::Misnamed, detail);
        }
        None => report.push(id, ProblemKind::Removed, "the newest bundle"),
    }
}

/// Verifies every bundle of a data directory and the chain between them. Problems of one
/// bundle are named `<id>/<file>`, and problems of its name `<id>`.
pub fn verify_all(dir: &Path) -> Result<VerifyReport, StoreError> {
    let mut report = verify_chain(dir)?;
    report.checked_files = 0;
    for id in bundle_ids(dir)? {
        let bundle = verify(&dir.join(&id))?;
        report.checked_files += bundle.checked_files;
        for problem in bundle.problems {
            let file = if problem.file == id {
                id.clone()
            } else {
                format!("{id}/{}", problem.file)
            };
            // The chain walk already compared each manifest with its bundle name.
            report.push_once(file, problem.kind, problem.detail);
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
        let removed = format!("bundle before {}", bundles[2].id);
        assert_eq!(problems(&report), [problem(&removed, ProblemKind::Removed)]);
        assert_eq!(
            report.to_string(),
            format!(
                "REMOVED {removed} (its previous digest {}... matches no bundle)\n",
                &bundles[1].digest[..SHORT_DIGEST_LEN]
            )
        );
    }

    #[test]
    fn verify_chain_detects_removed_oldest_bundle() {
        let (_tmp, store) = store();
        let bundles = chain_of_three(&store);
        fs::remove_dir_all(&bundles[0].path).unwrap();

        let report = verify_chain(store.dir()).unwrap();
        let removed = format!("bundle before {}", bundles[1].id);
        assert_eq!(problems(&report), [problem(&removed, ProblemKind::Removed)]);
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
                problem(
                    &format!("bundle before {}", bundles[2].id),
                    ProblemKind::Removed
                ),
                problem(&format!("{}/notes.txt", bundles[0].id), ProblemKind::Extra),
            ]
        );
        assert_eq!(report.checked_files, 12);
        assert_eq!(
            report.summary(),
            format!("FAILED {}: 2 problems", store.dir().display())
        );
    }

    fn head_path(store: &BundleStore) -> PathBuf {
        store.dir().join(STATE_DIR).join(HEAD_FILE)
    }

    fn error_of(outcome: &VerifyOutcome) -> String {
        match &outcome.results[0].1 {
            Ok(report) => panic!("expected an error, got {report}"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn verify_all_rejects_directory_without_bundles() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("passwd"), b"root:x:0:0").unwrap();
        fs::create_dir(tmp.path().join("ssh")).unwrap();

        let outcome = verify_data_dir(tmp.path());
        assert_eq!(outcome.exit_code, 1);
        assert_eq!(
            error_of(&outcome),
            format!("no bundles found in {}", tmp.path().display())
        );
    }

    #[test]
    fn verify_all_rejects_parent_of_data_directory() {
        let (tmp, store) = store();
        write_sample(&store);

        let outcome = verify_data_dir(tmp.path());
        assert_eq!(outcome.exit_code, 1);
        assert_eq!(
            error_of(&outcome),
            format!("no bundles found in {}", tmp.path().display())
        );
    }

    #[test]
    fn verify_all_rejects_bundle_directory() {
        let (_tmp, store) = store();
        let info = write_sample(&store);

        let outcome = verify_data_dir(&info.path);
        assert_eq!(outcome.exit_code, 1);
        let path = info.path.display();
        assert_eq!(
            error_of(&outcome),
            format!("{path} is a bundle; use `aegisir verify {path}`")
        );
    }

    #[test]
    fn verify_all_rejects_renamed_bundle_directory() {
        let (tmp, store) = store();
        let info = write_sample(&store);
        let renamed = tmp.path().join("evidence");
        fs::rename(&info.path, &renamed).unwrap();

        let error = verify_all(&renamed).unwrap_err();
        assert!(matches!(error, StoreError::IsABundle { .. }), "{error}");
    }

    #[test]
    fn verify_all_passes_on_intact_store_with_head() {
        let (_tmp, store) = store();
        let bundles = chain_of_three(&store);
        let head = fs::read_to_string(head_path(&store)).unwrap();
        assert_eq!(head, format!("{} {}\n", bundles[2].id, bundles[2].digest));

        let report = verify_all(store.dir()).unwrap();
        assert_eq!(report.problems, []);
        assert_eq!(report.notes, Vec::<String>::new());
        assert_eq!(verify_data_dir(store.dir()).exit_code, 0);
    }

    #[test]
    fn verify_chain_detects_removed_newest_bundle() {
        let (_tmp, store) = store();
        let bundles = chain_of_three(&store);
        fs::remove_dir_all(&bundles[2].path).unwrap();

        let report = verify_chain(store.dir()).unwrap();
        assert_eq!(
            report.to_string(),
            format!("REMOVED {} (the newest bundle)\n", bundles[2].id)
        );
        let all = verify_all(store.dir()).unwrap();
        assert_eq!(
            problems(&all),
            [problem(&bundles[2].id, ProblemKind::Removed)]
        );
    }

    #[test]
    fn verify_chain_detects_removal_of_every_bundle() {
        let (_tmp, store) = store();
        let info = write_sample(&store);
        fs::remove_dir_all(&info.path).unwrap();

        let report = verify_all(store.dir()).unwrap();
        assert_eq!(problems(&report), [problem(&info.id, ProblemKind::Removed)]);
        assert_eq!(verify_data_dir(store.dir()).exit_code, 1);
    }

    #[test]
    fn verify_chain_notes_absent_head() {
        let (_tmp, store) = store();
        chain_of_three(&store);
        fs::remove_file(head_path(&store)).unwrap();

        let report = verify_chain(store.dir()).unwrap();
        assert_eq!(report.problems, []);
        assert_eq!(report.notes.len(), 1);
        assert!(
            report.notes[0].starts_with(".aegisir/head is absent"),
            "{}",
            report.notes[0]
        );
        assert!(report
            .to_string()
            .starts_with("NOTE .aegisir/head is absent"));
        assert_eq!(verify_data_dir(store.dir()).exit_code, 0);
    }

    #[test]
    fn verify_chain_detects_head_digest_mismatch() {
        let (_tmp, store) = store();
        let info = write_sample(&store);
        let mut digest = info.digest.clone();
        let last = if digest.ends_with('0') { "1" } else { "0" };
        digest.replace_range(63.., last);
        fs::write(head_path(&store), format!("{} {digest}\n", info.id)).unwrap();

        let report = verify_chain(store.dir()).unwrap();
        let manifest = format!("{}/{MANIFEST}", info.id);
        assert_eq!(
            problems(&report),
            [problem(&manifest, ProblemKind::Changed)]
        );
        assert!(
            report.problems[0].detail.contains("in .aegisir/head"),
            "{report}"
        );
    }

    #[test]
    fn verify_chain_detects_bundle_newer_than_head() {
        let (_tmp, store) = store();
        let bundles = chain_of_three(&store);
        let head = format!("{} {}\n", bundles[1].id, bundles[1].digest);
        fs::write(head_path(&store), head).unwrap();

        let report = verify_chain(store.dir()).unwrap();
        assert_eq!(
            problems(&report),
            [problem(&bundles[2].id, ProblemKind::Extra)]
        );
    }

    #[test]
    fn verify_chain_rejects_malformed_head() {
        let (_tmp, store) = store();
        write_sample(&store);
        fs::write(head_path(&store), b"../etc/passwd deadbeef\n").unwrap();

        let report = verify_chain(store.dir()).unwrap();
        assert_eq!(
            problems(&report),
            [problem(".aegisir/head", ProblemKind::Changed)]
        );
    }

    #[test]
    fn verify_chain_reports_renamed_head_bundle() {
        let (_tmp, store) = store();
        let bundles = chain_of_three(&store);
        let renamed_id = format!(
            "2026-12-03T21-59-00.000Z_{}",
            &bundles[2].digest[..SHORT_DIGEST_LEN]
        );
        fs::rename(&bundles[2].path, store.dir().join(&renamed_id)).unwrap();

        let report = verify_all(store.dir()).unwrap();
        assert_eq!(
            problems(&report),
            [problem(&renamed_id, ProblemKind::Misnamed)]
        );
        assert!(
            report.problems[0].detail.contains("captured_at"),
            "{report}"
        );
    }

    #[test]
    fn verify_detects_renamed_time() {
        let (_tmp, store) = store();
        let bundles = chain_of_three(&store);
        let short = &bundles[1].digest[..SHORT_DIGEST_LEN];
        let renamed_id = format!("2026-12-03T21-46-38.813Z_{short}");
        let renamed = store.dir().join(&renamed_id);
        fs::rename(&bundles[1].path, &renamed).unwrap();

        let single = verify(&renamed).unwrap();
        assert_eq!(
            single.to_string(),
            format!(
                "MISNAMED {renamed_id} (the name has time 2026-12-03T21-46-38.813Z, \
                 but captured_at in manifest.json is 2026-12-03T21-46-38.812Z)\n"
            )
        );
        let all = verify_all(store.dir()).unwrap();
        assert_eq!(
            problems(&all),
            [problem(&renamed_id, ProblemKind::Misnamed)]
        );
    }

    #[cfg(unix)]
    #[test]
    fn verify_all_reports_symlinked_bundle_directory() {
        let (tmp, store) = store();
        let info = write_sample(&store);
        let elsewhere = tmp.path().join("elsewhere");
        fs::create_dir(&elsewhere).unwrap();
        let linked_id = "2026-12-03T21-50-00.000Z_aaaaaaaaaaaa";
        std::os::unix::fs::symlink(&elsewhere, store.dir().join(linked_id)).unwrap();
        fs::write(
            store.dir().join("2026-12-03T21-51-00.000Z_bbbbbbbbbbbb"),
            b"x",
        )
        .unwrap();

        let report = verify_all(store.dir()).unwrap();
        assert_eq!(
            problems(&report),
            [
                problem(linked_id, ProblemKind::Symlink),
                problem("2026-12-03T21-51-00.000Z_bbbbbbbbbbbb", ProblemKind::Extra),
            ]
        );
        assert_eq!(report.checked_files, 6);
        let listed: Vec<String> = store.list().unwrap().into_iter().map(|b| b.id).collect();
        assert_eq!(listed, [info.id]);
    }

    #[cfg(unix)]
    #[test]
    fn verify_all_reports_symlinked_manifest_once() {
        let (tmp, store) = store();
        let info = write_sample(&store);
        let copy = tmp.path().join("manifest-copy.json");
        fs::copy(info.path.join(MANIFEST), &copy).unwrap();
        fs::remove_file(info.path.join(MANIFEST)).unwrap();
        std::os::unix::fs::symlink(&copy, info.path.join(MANIFEST)).unwrap();

        let report = verify_all(store.dir()).unwrap();
        let manifest = format!("{}/{MANIFEST}", info.id);
        assert_eq!(
            problems(&report),
            [problem(&manifest, ProblemKind::Symlink)]
        );
    }

    #[test]
    fn verify_chain_rejects_previous_that_is_not_a_digest() {
        let (_tmp, store) = store();
        let bundles = chain_of_three(&store);
        let path = bundles[2].path.join(MANIFEST);
        let text = fs::read_to_string(&path).unwrap();
        let tampered = text.replace(&bundles[1].digest, "ééééééééééééé");
        fs::write(&path, tampered).unwrap();

        let report = verify_chain(store.dir()).unwrap();
        let kinds: Vec<ProblemKind> = report.problems.iter().map(|p| p.kind).collect();
        assert_eq!(kinds, [ProblemKind::Changed, ProblemKind::BrokenChain]);
        assert!(
            report.problems[1].detail.contains("is not a sha256 digest"),
            "{report}"
        );
    }

    #[test]
    fn verify_paths_checks_every_argument() {
        let (tmp, store) = store();
        let bundles = chain_of_three(&store);
        fs::write(bundles[2].path.join("planted.txt"), b"x").unwrap();
        let absent = tmp.path().join("absent");
        let paths = [
            bundles[0].path.clone(),
            absent.clone(),
            bundles[2].path.clone(),
        ];

        let outcome = verify_paths(&paths);
        let checked: Vec<&Path> = outcome.results.iter().map(|(p, _)| p.as_path()).collect();
        assert_eq!(
            checked,
            [bundles[0].path.as_path(), &absent, &bundles[2].path]
        );
        assert!(outcome.results[0].1.as_ref().unwrap().is_ok());
        assert!(outcome.results[1].1.is_err());
        let third = outcome.results[2].1.as_ref().unwrap();
        assert_eq!(
            problems(third),
            [problem("planted.txt", ProblemKind::Extra)]
        );
        assert_eq!(outcome.exit_code, 2);
    }

    #[test]
    fn verify_paths_exit_code_is_worst_result() {
        let (_tmp, store) = store();
        let bundles = chain_of_three(&store);
        let intact = [bundles[0].path.clone(), bundles[1].path.clone()];
        assert_eq!(verify_paths(&intact).exit_code, 0);

        fs::write(bundles[1].path.join("planted.txt"), b"x").unwrap();
        assert_eq!(verify_paths(&intact).exit_code, 1);
    }

    #[test]
    fn verify_points_data_directory_to_all() {
        let (_tmp, store) = store();
        chain_of_three(&store);

        let error = verify(store.dir()).unwrap_err();
        assert!(
            matches!(error, StoreError::IsADataDirectory { .. }),
            "{error}"
        );
        assert!(error.to_string().contains("verify --all"), "{error}");

        let error = verify(&store.dir().join(STATE_DIR)).unwrap_err();
        assert!(matches!(error, StoreError::IsStateFolder { .. }), "{error}");
    }
}
