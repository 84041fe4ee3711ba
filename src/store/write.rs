//! Writing one bundle: files into a staging directory, each synced, then one rename.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Component, Path, PathBuf};

use aegisir_platform::{Capture, RawEntry, RawFiles, SCHEMA_VERSION};
use sha2::{Digest, Sha256};

use super::manifest::{
    FileEntry, Manifest, ManifestHost, RawSummary, SkippedEntry, BUNDLE_SCHEMA_VERSION,
};
use super::names::{bundle_id, is_plain_file_name};
use super::{BundleInfo, BundleInput, StoreError, TMP_PREFIX};

pub const MANIFEST: &str = "manifest.json";
pub const ALERT: &str = "alert.json";
pub const SNAPSHOT: &str = "snapshot.json";
pub const RAW_TAR: &str = "raw.tar";

/// Folder inside `raw.tar` that contains the entries of the earlier sample.
const BASELINE_PREFIX: &str = "baseline";

/// Writes a complete bundle into `data_dir` and returns where it went.
pub fn write_bundle(
    data_dir: &Path,
    input: &BundleInput<'_>,
    previous: Option<String>,
) -> Result<BundleInfo, StoreError> {
    let staging = Staging::create(data_dir)?;
    let mut files = Vec::new();
    let mut names = BTreeSet::from([MANIFEST.to_string()]);

    if let Some(body) = input.alert_body {
        files.push(staging.write_file(&mut names, ALERT, body)?);
    }
    let snapshot = &input.capture.snapshot;
    files.push(staging.write_json(&mut names, SNAPSHOT, snapshot)?);
    for report in input.reports {
        files.push(staging.write_file(&mut names, &report.file_name, report.text.as_bytes())?);
    }
    for (name, value) in &input.extra_json {
        files.push(staging.write_json(&mut names, name, value)?);
    }
    let (raw_entry, raw) = staging.write_raw_tar(&mut names, input.capture)?;
    files.push(raw_entry);
    files.sort_by(|a, b| a.name.cmp(&b.name));

    let manifest = build_manifest(input, files, raw, previous);
    let manifest_bytes = manifest_bytes(&staging.path, &manifest)?;
    let manifest_entry = staging.write_file(&mut BTreeSet::new(), MANIFEST, &manifest_bytes)?;
    let digest = manifest_entry.sha256.clone();

    let id = bundle_id(manifest.captured_at, &digest);
    let path = data_dir.join(&id);
    let bytes_written = manifest.files.iter().map(|f| f.size).sum::<u64>() + manifest_entry.size;
    staging.publish(&path)?;

    Ok(BundleInfo {
        id,
        path,
        digest,
        bytes_written,
        captured_at: manifest.captured_at,
    })
}

fn build_manifest(
    input: &BundleInput<'_>,
    files: Vec<FileEntry>,
    raw: RawSummary,
    previous: Option<String>,
) -> Manifest {
    let snapshot = &input.capture.snapshot;
    Manifest {
        schema_version: BUNDLE_SCHEMA_VERSION,
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        host: ManifestHost {
            hostname: snapshot.host.hostname.clone(),
            kernel: snapshot.host.kernel_release.clone(),
        },
        captured_at: snapshot.captured_at,
        snapshot_schema_version: SCHEMA_VERSION,
        sources: snapshot.sources.clone(),
        trigger: input.trigger.clone(),
        files,
        gaps: snapshot.gaps.clone(),
        raw,
        nonce: format!("{:016x}", fastrand::u64(..)),
        previous,
    }
}

fn manifest_bytes(staging: &Path, manifest: &Manifest) -> Result<Vec<u8>, StoreError> {
    let mut bytes = serde_json::to_vec_pretty(manifest).map_err(|source| StoreError::Json {
        path: staging.join(MANIFEST),
        source,
    })?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// Computes the sha256 of `bytes` in lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A directory named `.tmp-<random>` that becomes a bundle by one rename, and is removed when
/// dropped before that.
struct Staging {
    path: PathBuf,
    published: bool,
}

impl Staging {
    fn create(data_dir: &Path) -> Result<Staging, StoreError> {
        let path = data_dir.join(format!("{TMP_PREFIX}{:016x}", fastrand::u64(..)));
        fs::create_dir(&path)
            .map_err(|source| StoreError::io("create directory", &path, source))?;
        Ok(Staging {
            path,
            published: false,
        })
    }

    /// Writes `bytes` as `name`, rejecting names that are not plain or already taken.
    fn write_file(
        &self,
        names: &mut BTreeSet<String>,
        name: &str,
        bytes: &[u8],
    ) -> Result<FileEntry, StoreError> {
        self.write_with(names, name, |writer| writer.write_all(bytes))
    }

    fn write_json<T: serde::Serialize>(
        &self,
        names: &mut BTreeSet<String>,
        name: &str,
        value: &T,
    ) -> Result<FileEntry, StoreError> {
        let mut bytes = serde_json::to_vec_pretty(value).map_err(|source| StoreError::Json {
            path: self.path.join(name),
            source,
        })?;
        bytes.push(b'\n');
        self.write_file(names, name, &bytes)
    }

    fn write_raw_tar(
        &self,
        names: &mut BTreeSet<String>,
        capture: &Capture,
    ) -> Result<(FileEntry, RawSummary), StoreError> {
        let mtime = capture.snapshot.captured_at.timestamp().max(0) as u64;
        let mut summary = RawSummary {
            entries: capture.raw.len(),
            baseline_entries: capture.baseline_raw.len(),
            skipped: Vec::new(),
        };
        let entry = self.write_with(names, RAW_TAR, |writer| {
            let mut builder = tar::Builder::new(writer);
            let tree = RawTree::new(&capture.raw, &capture.baseline_raw);
            summary.skipped = tree.append_to(&mut builder, mtime)?;
            builder.finish()
        })?;
        Ok((entry, summary))
    }

    /// Creates `name`, streams it through `fill` while hashing, and syncs it to disk.
    fn write_with(
        &self,
        names: &mut BTreeSet<String>,
        name: &str,
        fill: impl FnOnce(&mut HashingWriter<BufWriter<File>>) -> io::Result<()>,
    ) -> Result<FileEntry, StoreError> {
        if !is_plain_file_name(name) || !names.insert(name.to_string()) {
            return Err(StoreError::InvalidFileName {
                name: name.to_string(),
            });
        }
        let path = self.path.join(name);
        let file =
            File::create_new(&path).map_err(|source| StoreError::io("create", &path, source))?;

        let mut writer = HashingWriter::new(BufWriter::new(file));
        fill(&mut writer).map_err(|source| StoreError::io("write", &path, source))?;
        let (buffered, sha256, size) = writer.finish();
        let file = buffered
            .into_inner()
            .map_err(|error| StoreError::io("write", &path, error.into_error()))?;
        file.sync_all()
            .map_err(|source| StoreError::io("sync", &path, source))?;

        Ok(FileEntry {
            name: name.to_string(),
            size,
            sha256,
        })
    }

    /// Syncs the staging directory, renames it to `target` and syncs the data directory, so
    /// that the bundle appears whole or not at all.
    fn publish(mut self, target: &Path) -> Result<(), StoreError> {
        sync_dir(&self.path)?;
        if fs::symlink_metadata(target).is_ok() {
            return Err(StoreError::AlreadyExists {
                path: target.to_path_buf(),
            });
        }
        fs::rename(&self.path, target)
            .map_err(|source| StoreError::io("rename bundle to", target, source))?;
        self.published = true;
        if let Some(parent) = target.parent() {
            sync_dir(parent)?;
        }
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if self.published {
            return;
        }
        if let Err(error) = fs::remove_dir_all(&self.path) {
            tracing::warn!(path = %self.path.display(), %error, "failed to remove staging directory");
        }
    }
}

/// Syncs a directory so that the names created or renamed in it are on disk.
pub fn sync_dir(path: &Path) -> Result<(), StoreError> {
    File::open(path)
        .and_then(|dir| dir.sync_all())
        .map_err(|source| StoreError::io("sync directory", path, source))
}

/// A writer that hashes and counts what passes through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    /// Flushes nothing; returns the inner writer, the hex sha256 and the byte count.
    pub fn finish(self) -> (W, String, u64) {
        (self.inner, hex::encode(self.hasher.finalize()), self.bytes)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.hasher.update(&buf[..written]);
        self.bytes += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The raw evidence of a capture laid out as one tree: the later sample at its keys and the
/// earlier one under `baseline/`.
struct RawTree<'a> {
    entries: BTreeMap<String, &'a RawEntry>,
    skipped: Vec<SkippedEntry>,
}

impl<'a> RawTree<'a> {
    fn new(raw: &'a RawFiles, baseline: &'a RawFiles) -> Self {
        let current = raw.entries.iter().map(|(key, entry)| (key.clone(), entry));
        let earlier = baseline
            .entries
            .iter()
            .map(|(key, entry)| (format!("{BASELINE_PREFIX}/{key}"), entry));

        let mut tree = RawTree {
            entries: BTreeMap::new(),
            skipped: Vec::new(),
        };
        for (key, entry) in current.chain(earlier) {
            match key_problem(&key) {
                Some(reason) => tree.skipped.push(skip(&key, reason)),
                None => {
                    tree.entries.insert(key, entry);
                }
            }
        }
        tree.move_entries_beneath_links();
        tree
    }

    /// Moves entries read through a recorded link (`proc/self/mountinfo` next to
    /// `proc/self -> 4242`) to the link's target (`proc/4242/mountinfo`), so that the link and
    /// the entry both read back from the extracted tree.
    fn move_entries_beneath_links(&mut self) {
        let links: BTreeMap<String, PathBuf> = self
            .entries
            .iter()
            .filter_map(|(key, entry)| match entry {
                RawEntry::Link(target) => Some((key.clone(), target.clone())),
                RawEntry::File(_) => None,
            })
            .collect();
        let beneath: Vec<(String, String)> = self
            .entries
            .keys()
            .filter_map(|key| {
                let link = outermost_link(key, &links)?;
                let target = resolve_link(link, &links[link])?;
                Some((key.clone(), format!("{target}{}", &key[link.len()..])))
            })
            .collect();

        for (key, moved) in beneath {
            let entry = self
                .entries
                .remove(&key)
                .expect("key was listed from the map");
            match self.entries.get(&moved) {
                None => {
                    self.entries.insert(moved, entry);
                }
                Some(existing) if *existing == entry => {}
                Some(_) => {
                    let reason = format!("differs from {moved}, which the link points to");
                    self.skipped.push(skip(&key, &reason));
                }
            }
        }
    }

    /// Appends directories, files and links in a fixed order with fixed metadata, so that the
    /// same evidence always gives the same bytes. Returns the entries that could not be stored.
    fn append_to<W: Write>(
        mut self,
        builder: &mut tar::Builder<W>,
        mtime: u64,
    ) -> io::Result<Vec<SkippedEntry>> {
        let directories = parent_directories(self.entries.keys().map(String::as_str));
        for directory in &directories {
            append_directory(builder, directory, mtime)?;
        }

        for (key, entry) in &self.entries {
            if directories.contains(key.as_str()) {
                self.skipped
                    .push(skip(key, "the key is also a directory of other entries"));
                continue;
            }
            append_entry(builder, key, entry, mtime)?;
        }
        self.skipped.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(self.skipped)
    }
}

/// Finds the shortest proper ancestor of `key` that is a recorded link.
fn outermost_link<'k>(key: &'k str, links: &BTreeMap<String, PathBuf>) -> Option<&'k str> {
    key.match_indices('/')
        .map(|(end, _)| &key[..end])
        .find(|ancestor| links.contains_key(*ancestor))
}

/// Resolves a relative link target against the link's own folder, or returns `None` when the
/// target is absolute or leaves the tree.
fn resolve_link(link: &str, target: &Path) -> Option<String> {
    let mut parts: Vec<&str> = link.split('/').collect();
    parts.pop();
    for component in target.components() {
        match component {
            Component::Normal(part) => parts.push(part.to_str()?),
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    let resolved = parts.join("/");
    key_problem(&resolved).is_none().then_some(resolved)
}

fn skip(key: &str, reason: &str) -> SkippedEntry {
    SkippedEntry {
        key: key.to_string(),
        reason: reason.to_string(),
    }
}

/// Returns why a key cannot be a path inside the tar, or `None` when it can.
fn key_problem(key: &str) -> Option<&'static str> {
    if key.is_empty() || key.contains('\0') {
        return Some("the key is empty or contains NUL");
    }
    let normal = Path::new(key)
        .components()
        .all(|component| matches!(component, Component::Normal(_)));
    if !normal || key.ends_with('/') || key.contains("//") {
        return Some("the key is not a plain relative path");
    }
    None
}

/// Collects every proper ancestor directory of the keys, ordered so that parents come first.
fn parent_directories<'k>(keys: impl Iterator<Item = &'k str>) -> BTreeSet<&'k str> {
    let mut directories = BTreeSet::new();
    for key in keys {
        let mut end = 0;
        while let Some(offset) = key[end..].find('/') {
            end += offset;
            directories.insert(&key[..end]);
            end += 1;
        }
    }
    directories
}

fn header(entry_type: tar::EntryType, mode: u32, mtime: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(entry_type);
    header.set_mode(mode);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(mtime);
    header.set_size(0);
    header
}

fn append_directory<W: Write>(
    builder: &mut tar::Builder<W>,
    path: &str,
    mtime: u64,
) -> io::Result<()> {
    let mut header = header(tar::EntryType::Directory, 0o755, mtime);
    builder.append_data(&mut header, path, io::empty())
}

fn append_entry<W: Write>(
    builder: &mut tar::Builder<W>,
    key: &str,
    entry: &RawEntry,
    mtime: u64,
) -> io::Result<()> {
    match entry {
        RawEntry::File(bytes) => {
            let mut header = header(tar::EntryType::Regular, 0o644, mtime);
            header.set_size(bytes.len() as u64);
            builder.append_data(&mut header, key, bytes.as_slice())
        }
        RawEntry::Link(target) => {
            let mut header = header(tar::EntryType::Symlink, 0o777, mtime);
            builder.append_link(&mut header, key, target)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::write_sample;
    use super::super::BundleStore;
    use super::*;

    #[test]
    fn publish_rejects_existing_bundle_name() {
        let tmp = tempfile::tempdir().unwrap();
        let store = BundleStore::open(tmp.path()).unwrap();
        let info = write_sample(&store);
        let staging = Staging::create(store.dir()).unwrap();
        let staging_path = staging.path.clone();

        let error = staging.publish(&info.path).unwrap_err();
        assert!(matches!(error, StoreError::AlreadyExists { ref path } if path == &info.path));
        assert!(!staging_path.exists());
        assert_eq!(fs::read_dir(&info.path).unwrap().count(), 6);
    }

    #[test]
    fn hashing_writer_matches_sha256_of_bytes() {
        let mut writer = HashingWriter::new(Vec::new());
        writer.write_all(b"abc").unwrap();
        let (inner, sha256, size) = writer.finish();

        assert_eq!(inner, b"abc");
        assert_eq!(size, 3);
        assert_eq!(
            sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(sha256_hex(b"abc"), sha256);
    }

    #[test]
    fn parent_directories_lists_each_ancestor_once() {
        let keys = ["proc/1/stat", "proc/1/fd/3", "sys/x"];
        let directories: Vec<&str> = parent_directories(keys.into_iter()).into_iter().collect();

        assert_eq!(directories, ["proc", "proc/1", "proc/1/fd", "sys"]);
    }

    #[test]
    fn resolve_link_stays_inside_the_tree() {
        assert_eq!(
            resolve_link("proc/self", Path::new("4242")).as_deref(),
            Some("proc/4242")
        );
        assert_eq!(
            resolve_link("proc/net", Path::new("self/net")).as_deref(),
            Some("proc/self/net")
        );
        assert_eq!(
            resolve_link("proc/1/cwd", Path::new("../2")).as_deref(),
            Some("proc/2")
        );
        assert_eq!(resolve_link("proc/1/root", Path::new("/")), None);
        assert_eq!(resolve_link("proc/self", Path::new("../../..")), None);
    }

    #[test]
    fn raw_tree_moves_entries_beneath_links() {
        let mut raw = RawFiles::default();
        let stat = RawEntry::File(b"4242 (aegisir) R".to_vec());
        raw.entries
            .insert("proc/self".into(), RawEntry::Link("4242".into()));
        raw.entries.insert(
            "proc/self/mountinfo".into(),
            RawEntry::File(b"mounts".to_vec()),
        );
        raw.entries.insert("proc/self/stat".into(), stat.clone());
        raw.entries.insert("proc/4242/stat".into(), stat);
        raw.entries
            .insert("proc/self/io".into(), RawEntry::File(b"new".to_vec()));
        raw.entries
            .insert("proc/4242/io".into(), RawEntry::File(b"old".to_vec()));
        let baseline = RawFiles::default();

        let tree = RawTree::new(&raw, &baseline);
        let keys: Vec<&str> = tree.entries.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "proc/4242/io",
                "proc/4242/mountinfo",
                "proc/4242/stat",
                "proc/self"
            ]
        );
        let skipped: Vec<&str> = tree.skipped.iter().map(|s| s.key.as_str()).collect();
        assert_eq!(skipped, ["proc/self/io"]);
    }

    #[test]
    fn key_problem_rejects_paths_leaving_the_tree() {
        assert_eq!(key_problem("proc/1/stat"), None);
        for key in [
            "",
            "/etc/passwd",
            "proc/../x",
            "../x",
            "proc/",
            "proc//x",
            "a\0b\0",
        ] {
            assert!(key_problem(key).is_some(), "accepted {key:?}");
        }
    }
}
