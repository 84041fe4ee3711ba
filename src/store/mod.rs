//! The bundle store: one verifiable directory of evidence per capture.
//!
//! # Layout
//!
//! Each capture becomes one directory directly under the data directory, named by its id:
//! the UTC capture time with milliseconds (colons replaced by `-`), `Z`, an underscore and the
//! first 12 hex digits of the bundle digest, for example
//! `2026-12-03T21-45-38.812Z_9f2c4e1a7b3d`. The digest is the sha256 of the bundle's
//! `manifest.json`, so the name itself commits to the manifest. A bundle holds:
//!
//! - `manifest.json`: the bundle schema version, the AegisIR version, the host name and kernel
//!   release, the capture time and the trigger (alert names, statuses, fingerprints). It also
//!   lists the size and sha256 of every other file, the gaps of the snapshot, a summary of the
//!   raw evidence, a random nonce, and `previous`, the digest of the bundle written before it.
//! - `alert.json`: the webhook body exactly as received; absent for manual and CLI captures.
//! - `snapshot.json`: the parsed snapshot (`aegisir_platform::Snapshot`), with its own
//!   `schema_version`.
//! - the text reports (`top.txt`, `processes.txt`, ...) and extra JSON files such as
//!   `history.json`, written as the caller gives them.
//! - `raw.tar`: the exact bytes the capture read. The later sample's entries sit at their keys
//!   (`proc/1/stat`, `sys/...`, `root/etc/passwd`) with symbolic links kept as links
//!   (`proc/12/fd/3 -> socket:[123]`), and the earlier sample's entries sit under `baseline/`.
//!   An entry read through a recorded link (`proc/self/mountinfo`) is stored at the link's
//!   target (`proc/4242/mountinfo`).
//!   Extracted, `proc/`, `sys/` and `root/` read back as the trees they came from. Entries
//!   carry uid and gid 0 and the capture time as mtime, so the same evidence gives the same
//!   bytes.
//!
//! `docs/bundle.md` describes every field.
//!
//! # Writing
//!
//! A bundle is written into `.tmp-<random>` inside the data directory. Every file is synced,
//! then the directory, then it is renamed to its id and the data directory is synced. A
//! reader therefore never sees half a bundle, and [`BundleStore::open`] removes any `.tmp-*`
//! left by a crash. The nonce makes two captures with identical content in one millisecond
//! get different digests and so different ids. A rename that would replace an existing
//! directory is rejected with [`StoreError::AlreadyExists`], never done.
//!
//! # The chain
//!
//! `previous` links each bundle to the one before it, so the data directory is a hash chain.
//! Each write also records the new bundle as `<id> <digest>` in `.aegisir/head`, so that
//! removing the newest bundle is detectable. [`verify`] recomputes one bundle's hashes, and
//! [`verify_chain`] walks all bundles from oldest to newest, checks the head, and reports a
//! bundle that was removed, changed, renamed or moved out of order.
//!
//! # Reading
//!
//! [`BundleStore::list_page`] sorts the ids from the directory listing and reads only the
//! manifests of one page. [`BundleStore::file_path`] resolves only `manifest.json` and the
//! files the manifest lists, as regular files with one hard link, and nothing from a bundle
//! whose manifest is broken.
//!
//! Values from requests (group keys, labels) never become part of a path. Bump
//! [`BUNDLE_SCHEMA_VERSION`] on any change that removes or renames a field or a file.

mod manifest;
mod names;
mod verify;
mod write;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use aegisir_platform::Capture;
use chrono::{DateTime, Utc};

use crate::report::Report;

pub use manifest::{
    FileEntry, Manifest, ManifestHost, RawSummary, SkippedEntry, Trigger, TriggerAlert,
    TriggerKind, BUNDLE_SCHEMA_VERSION,
};
pub use names::{is_bundle_id, is_plain_file_name};
pub use verify::{
    verify, verify_all, verify_chain, verify_data_dir, verify_paths, Problem, ProblemKind,
    VerifyOutcome, VerifyReport,
};
pub use write::{ALERT, MANIFEST, RAW_TAR, SNAPSHOT};

/// Name prefix of in-progress bundles and other scratch entries in the data directory.
const TMP_PREFIX: &str = ".tmp-";

/// Number of bundles in a page of [`BundleStore::list_page`] when the caller sets no limit.
pub const DEFAULT_PAGE_LIMIT: usize = 100;

/// Maximum number of bundles in a page of [`BundleStore::list_page`].
pub const MAX_PAGE_LIMIT: usize = 1000;

/// Errors of the bundle store. Every I/O variant names the path it failed on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("failed to {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("failed to encode or decode JSON at {path}: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "invalid bundle file name {name:?}: use ASCII letters, digits, '.', '_' and '-', \
         not starting with '.', and no name twice"
    )]
    InvalidFileName { name: String },
    #[error("bundle {path} already exists; not overwriting it")]
    AlreadyExists { path: PathBuf },
    #[error("{path} is not a directory; pass a bundle directory or a data directory")]
    NotADirectory { path: PathBuf },
    #[error("no bundles found in {path}")]
    NoBundles { path: PathBuf },
    #[error("{path} is a bundle; use `aegisir verify {path}`")]
    IsABundle { path: PathBuf },
    #[error("{path} is a data directory, not a bundle; use `aegisir verify --all {path}`")]
    IsADataDirectory { path: PathBuf },
    #[error("{path} is AegisIR's state folder, not a bundle")]
    IsStateFolder { path: PathBuf },
}

impl StoreError {
    fn io(action: &'static str, path: &Path, source: io::Error) -> StoreError {
        StoreError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// The inputs of one bundle.
pub struct BundleInput<'a> {
    /// Snapshot and raw evidence, already redacted by the caller.
    pub capture: &'a Capture,
    pub trigger: &'a Trigger,
    /// The request body exactly as received; `None` for manual and CLI captures.
    pub alert_body: Option<&'a [u8]>,
    /// Text reports, written under their own file names.
    pub reports: &'a [Report],
    /// Further JSON files, for example `("history.json", ..)`.
    pub extra_json: Vec<(String, serde_json::Value)>,
}

/// A bundle that was just written.
#[derive(Debug, Clone, PartialEq)]
pub struct BundleInfo {
    pub id: String,
    pub path: PathBuf,
    /// The hex sha256 of `manifest.json`.
    pub digest: String,
    /// Bytes of all files of the bundle, `manifest.json` included.
    pub bytes_written: u64,
    pub captured_at: DateTime<Utc>,
}

/// One bundle in a listing. Fields that could not be read from its manifest are `None`.
#[derive(Debug, Clone, PartialEq)]
pub struct BundleSummary {
    pub id: String,
    /// The manifest's `captured_at`, or the time in the id when the manifest is broken.
    pub captured_at: Option<DateTime<Utc>>,
    pub trigger: Option<Trigger>,
    /// The hex sha256 of `manifest.json`; empty when the manifest is broken.
    pub digest: String,
    /// Bytes of the regular files in the bundle directory.
    pub bytes: u64,
    /// The reason `manifest.json` is broken (absent, not a regular file, unreadable or not a
    /// valid manifest); `None` for an intact manifest.
    pub manifest_error: Option<String>,
}

/// One page of the bundle listing, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct BundlePage {
    pub bundles: Vec<BundleSummary>,
    /// The id to pass as `before` for the next page; `None` on the last page.
    pub next: Option<String>,
}

/// The bundles of one data directory. Cheap to clone; writes are serialised so that each
/// bundle's `previous` is the bundle written just before it.
#[derive(Debug, Clone)]
pub struct BundleStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    /// Serialises writers inside this process; [`WriteLock`] does the same across processes.
    writer: Mutex<()>,
}

impl BundleStore {
    /// Opens the data directory, creating it if needed, and removes the `.tmp-*` leftovers of
    /// an interrupted write.
    pub fn open(dir: impl Into<PathBuf>) -> Result<BundleStore, StoreError> {
        let dir = dir.into();
        fs::create_dir_all(&dir)
            .map_err(|source| StoreError::io("create directory", &dir, source))?;
        remove_leftovers(&dir)?;

        tracing::debug!(dir = %dir.display(), "opened bundle store");
        Ok(BundleStore {
            inner: Arc::new(Inner {
                dir,
                writer: Mutex::new(()),
            }),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Writes one bundle and makes it the head of the chain.
    ///
    /// The head is read from `.aegisir/head` under an exclusive lock on
    /// `.aegisir/store.lock`, so an `aegisir snapshot --out` into the data directory of a
    /// running server extends the same chain instead of forking it.
    pub fn write(&self, input: BundleInput<'_>) -> Result<BundleInfo, StoreError> {
        let _guard = self
            .inner
            .writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let lock = WriteLock::acquire(&self.inner.dir)?;
        let head = match lock.read_head(&self.inner.dir) {
            Some(digest) => Some(digest),
            None => newest_digest(&self.inner.dir)?,
        };
        let info = write::write_bundle(&self.inner.dir, &input, head)?;
        lock.write_head(&self.inner.dir, &info)?;
        Ok(info)
    }

    /// Lists every bundle, newest first, reading every manifest. Directories whose names are
    /// not bundle ids, and symbolic links, are left out.
    pub fn list(&self) -> Result<Vec<BundleSummary>, StoreError> {
        let mut ids = bundle_ids(&self.inner.dir)?;
        ids.reverse();
        Ok(ids.into_iter().map(|id| self.summary(id)).collect())
    }

    /// Lists at most `limit` bundles whose ids sort before `before`, newest first.
    ///
    /// `limit` defaults to [`DEFAULT_PAGE_LIMIT`] and is clamped to 1..=[`MAX_PAGE_LIMIT`].
    /// Only the manifests of the returned bundles are read; the rest of the data directory is
    /// only listed. `before` is compared as a string, so any value is a valid cursor.
    pub fn list_page(
        &self,
        limit: Option<usize>,
        before: Option<&str>,
    ) -> Result<BundlePage, StoreError> {
        let limit = limit.unwrap_or(DEFAULT_PAGE_LIMIT).clamp(1, MAX_PAGE_LIMIT);
        let mut ids = bundle_ids(&self.inner.dir)?;
        if let Some(before) = before {
            let end = ids.partition_point(|id| id.as_str() < before);
            ids.truncate(end);
        }

        let start = ids.len().saturating_sub(limit);
        let page = ids.split_off(start);
        let next = (start > 0).then(|| page[0].clone());
        let bundles = page.into_iter().rev().map(|id| self.summary(id)).collect();
        Ok(BundlePage { bundles, next })
    }

    /// Lists the files of a bundle as its manifest records them, `manifest.json` first. `None` when
    /// `id` is not a bundle id, there is no such bundle, or its manifest is broken.
    pub fn files(&self, id: &str) -> Option<Vec<FileEntry>> {
        let bundle = self.bundle_dir(id)?;
        let path = bundle.join(MANIFEST);
        let (manifest, own) = match load_manifest(&path) {
            Ok(loaded) => loaded,
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "bundle manifest is broken");
                return None;
            }
        };
        Some(std::iter::once(own).chain(manifest.files).collect())
    }

    /// Resolves the path of one file of a bundle for download.
    ///
    /// Returns `None` unless `id` is a bundle id, the bundle's manifest is intact enough to
    /// parse, `file` is `manifest.json` or a file the manifest lists, and the path is a
    /// regular file with one hard link (not a symbolic link, and not a second name of a file
    /// elsewhere) directly inside the bundle directory.
    pub fn file_path(&self, id: &str, file: &str) -> Option<PathBuf> {
        use std::os::unix::fs::MetadataExt;

        if !is_plain_file_name(file) {
            return None;
        }
        let listed = self.files(id)?;
        if !listed.iter().any(|entry| entry.name == file) {
            return None;
        }
        let bundle = self.bundle_dir(id)?;
        let path = bundle.join(file);
        let metadata = fs::symlink_metadata(&path).ok()?;
        if !metadata.file_type().is_file() || metadata.nlink() > 1 {
            return None;
        }

        let canonical_bundle = fs::canonicalize(&bundle).ok()?;
        let canonical = fs::canonicalize(&path).ok()?;
        (canonical.parent() == Some(canonical_bundle.as_path())).then_some(path)
    }

    /// True when a file can be created in the data directory right now.
    pub fn is_writable(&self) -> bool {
        let probe = self
            .inner
            .dir
            .join(format!("{TMP_PREFIX}probe-{:016x}", fastrand::u64(..)));
        match fs::File::create_new(&probe) {
            Ok(_) => fs::remove_file(&probe).is_ok(),
            Err(_) => false,
        }
    }

    /// Returns the directory of bundle `id` when `id` is valid and names a real directory, not a link.
    fn bundle_dir(&self, id: &str) -> Option<PathBuf> {
        if !is_bundle_id(id) {
            return None;
        }
        let path = self.inner.dir.join(id);
        let metadata = fs::symlink_metadata(&path).ok()?;
        metadata.file_type().is_dir().then_some(path)
    }

    fn summary(&self, id: String) -> BundleSummary {
        let bundle = self.inner.dir.join(&id);
        let bytes = directory_bytes(&bundle);
        match load_manifest(&bundle.join(MANIFEST)) {
            Ok((manifest, own)) => BundleSummary {
                id,
                captured_at: Some(manifest.captured_at),
                trigger: Some(manifest.trigger),
                digest: own.sha256,
                bytes,
                manifest_error: None,
            },
            Err(error) => BundleSummary {
                captured_at: names::id_time(&id),
                id,
                trigger: None,
                digest: String::new(),
                bytes,
                manifest_error: Some(error),
            },
        }
    }
}

/// Reads and parses a bundle's `manifest.json`, returning it with its own file entry, or why
/// it is broken.
fn load_manifest(path: &Path) -> Result<(Manifest, FileEntry), String> {
    let Some(bytes) = read_regular_file(path) else {
        return Err(format!(
            "{MANIFEST} is missing, unreadable or not a regular file"
        ));
    };
    let manifest: Manifest = serde_json::from_slice(&bytes)
        .map_err(|error| format!("{MANIFEST} is not a valid manifest: {error}"))?;

    let own = FileEntry {
        name: MANIFEST.to_string(),
        size: bytes.len() as u64,
        sha256: write::sha256_hex(&bytes),
    };
    Ok((manifest, own))
}

/// Removes every `.tmp-*` entry of the data directory: bundles whose write was interrupted.
fn remove_leftovers(dir: &Path) -> Result<(), StoreError> {
    let entries =
        fs::read_dir(dir).map_err(|source| StoreError::io("read directory", dir, source))?;
    for entry in entries {
        let entry = entry.map_err(|source| StoreError::io("read directory", dir, source))?;
        let name = entry.file_name();
        if !name.to_string_lossy().starts_with(TMP_PREFIX) {
            continue;
        }

        let path = entry.path();
        let is_dir = entry.file_type().is_ok_and(|kind| kind.is_dir());
        let removed = if is_dir {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        removed.map_err(|source| StoreError::io("remove leftover", &path, source))?;
        tracing::info!(path = %path.display(), "removed leftover of an interrupted bundle write");
    }
    Ok(())
}

/// The entries of a data directory that are named like bundles.
#[derive(Debug, Default)]
struct DataDirScan {
    /// Ids of real bundle directories, oldest first.
    bundles: Vec<String>,
    /// Entries named like a bundle id that are not directories, sorted by name, with `true`
    /// for a symbolic link.
    non_directories: Vec<(String, bool)>,
}

/// Lists the entries of `dir` named like bundle ids, without following symbolic links.
fn scan_data_dir(dir: &Path) -> Result<DataDirScan, StoreError> {
    let entries =
        fs::read_dir(dir).map_err(|source| StoreError::io("read directory", dir, source))?;
    let mut scan = DataDirScan::default();
    for entry in entries {
        let entry = entry.map_err(|source| StoreError::io("read directory", dir, source))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if !is_bundle_id(&name) {
            continue;
        }

        let kind = entry
            .file_type()
            .map_err(|source| StoreError::io("read file type of", &entry.path(), source))?;
        if kind.is_dir() {
            scan.bundles.push(name);
        } else {
            scan.non_directories.push((name, kind.is_symlink()));
        }
    }
    scan.bundles.sort();
    scan.non_directories.sort();
    Ok(scan)
}

/// Lists the ids of the bundle directories in `dir`, oldest first. Symbolic links are left out.
fn bundle_ids(dir: &Path) -> Result<Vec<String>, StoreError> {
    Ok(scan_data_dir(dir)?.bundles)
}

/// The folder in the data directory for AegisIR's own state (lock, chain head, journal).
pub(crate) const STATE_DIR: &str = ".aegisir";

/// The file in [`STATE_DIR`] that records the newest bundle as `<bundle id> <digest>`.
const HEAD_FILE: &str = "head";

/// Parses the text of the head file into a bundle id and a full hex digest.
fn parse_head(text: &str) -> Option<(&str, &str)> {
    let (id, digest) = text.trim().split_once(' ')?;
    (is_bundle_id(id) && names::is_full_digest(digest)).then_some((id, digest))
}

/// An exclusive `flock` on `<data>/.aegisir/store.lock`, released when dropped (or when the
/// process exits, so a crash never leaves the store locked).
struct WriteLock {
    _file: fs::File,
}

impl WriteLock {
    fn acquire(dir: &Path) -> Result<WriteLock, StoreError> {
        use std::os::fd::AsRawFd;

        let state = dir.join(STATE_DIR);
        fs::create_dir_all(&state)
            .map_err(|source| StoreError::io("create directory", &state, source))?;
        let path = state.join("store.lock");
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| StoreError::io("open lock file", &path, source))?;
        // SAFETY: the descriptor belongs to `file`, which outlives this call.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        if rc != 0 {
            let source = std::io::Error::last_os_error();
            return Err(StoreError::io("lock", &path, source));
        }
        Ok(WriteLock { _file: file })
    }

    /// Reads the digest in `.aegisir/head` (`<bundle id> <digest>`), if that bundle still
    /// exists.
    fn read_head(&self, dir: &Path) -> Option<String> {
        let text = fs::read_to_string(dir.join(STATE_DIR).join(HEAD_FILE)).ok()?;
        let (id, digest) = parse_head(&text)?;
        let exists = dir.join(id).join(MANIFEST).is_file();
        exists.then(|| digest.to_string())
    }

    /// Records the bundle just written as the chain head, replacing the file atomically.
    fn write_head(&self, dir: &Path, info: &BundleInfo) -> Result<(), StoreError> {
        let state = dir.join(STATE_DIR);
        let staging = state.join("head.tmp");
        let path = state.join(HEAD_FILE);
        fs::write(&staging, format!("{} {}\n", info.id, info.digest))
            .map_err(|source| StoreError::io("write", &staging, source))?;
        fs::rename(&staging, &path).map_err(|source| StoreError::io("rename", &path, source))
    }
}

/// Computes the digest of the newest bundle's manifest, or `None` when there is no readable one.
fn newest_digest(dir: &Path) -> Result<Option<String>, StoreError> {
    let Some(newest) = bundle_ids(dir)?.pop() else {
        return Ok(None);
    };
    let path = dir.join(&newest).join(MANIFEST);
    match read_regular_file(&path) {
        Some(bytes) => Ok(Some(write::sha256_hex(&bytes))),
        None => {
            tracing::warn!(path = %path.display(), "newest bundle has no readable manifest; the next bundle starts a new chain");
            Ok(None)
        }
    }
}

/// Reads a file that must be a regular file, not a symbolic link.
fn read_regular_file(path: &Path) -> Option<Vec<u8>> {
    let metadata = fs::symlink_metadata(path).ok()?;
    if !metadata.file_type().is_file() {
        return None;
    }
    fs::read(path).ok()
}

fn directory_bytes(dir: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.metadata().ok())
        .filter(|metadata| metadata.is_file())
        .map(|metadata| metadata.len())
        .sum()
}

/// A hand-built capture and helpers shared by the store's tests.
#[cfg(test)]
pub(crate) mod test_support {
    use std::path::PathBuf;

    use aegisir_platform::{
        Capture, Gap, GapReason, Host, Process, ProcessKind, Processes, RawEntry, RawFiles,
        Snapshot, SCHEMA_VERSION,
    };
    use chrono::{DateTime, TimeZone, Utc};

    use super::{BundleInfo, BundleInput, BundleStore, Trigger, TriggerAlert, TriggerKind};
    use crate::report::Report;

    pub fn captured_at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 3, 21, 45, 38).unwrap() + chrono::Duration::milliseconds(812)
    }

    pub fn process(pid: i32, name: &str, cmdline: &str) -> Process {
        Process {
            pid,
            ppid: Some(1),
            uid: Some(1000),
            user: Some("alice".to_string()),
            state: "R".to_string(),
            name: name.to_string(),
            cmdline: cmdline.to_string(),
            kind: ProcessKind::User,
            cpu_pct: Some(12.5),
            rss_bytes: Some(4096 * 1000),
            start_ticks: 100 + pid as u64,
            ..Process::default()
        }
    }

    pub fn snapshot(processes: Vec<Process>) -> Snapshot {
        Snapshot {
            schema_version: SCHEMA_VERSION,
            captured_at: captured_at(),
            interval_secs: 1.0,
            backend: "linux".to_string(),
            host: Host {
                hostname: Some("web-1".to_string()),
                kernel_release: Some("6.8.0-test".to_string()),
                ..Host::default()
            },
            processes: Processes {
                total: processes.len() as u32,
                list: processes,
                complete: true,
                ..Processes::default()
            },
            gaps: vec![Gap {
                collector: "processes".to_string(),
                subject: "proc/12/io".to_string(),
                reason: GapReason::PermissionDenied,
                detail: "Permission denied (os error 13)".to_string(),
            }],
            ..Snapshot::default()
        }
    }

    pub fn raw() -> RawFiles {
        let mut raw = RawFiles::default();
        let file = |bytes: &[u8]| RawEntry::File(bytes.to_vec());
        let link = |target: &str| RawEntry::Link(PathBuf::from(target));
        raw.entries
            .insert("proc/1/stat".into(), file(b"1 (init) S 0 1 1 0 -1\n"));
        raw.entries.insert("proc/self".into(), link("4242"));
        raw.entries
            .insert("proc/12/fd/3".into(), link("socket:[123]"));
        raw.entries
            .insert("sys/fs/cgroup/cpu.stat".into(), file(b"usage_usec 10\n"));
        raw.entries.insert(
            "root/etc/passwd".into(),
            file(b"root:x:0:0::/root:/bin/sh\n"),
        );
        raw
    }

    pub fn capture() -> Capture {
        let processes = vec![
            process(1, "init", "/sbin/init"),
            process(12, "nginx", "nginx: worker process"),
            process(4242, "aegisir", "aegisir serve --listen 127.0.0.1:5001"),
        ];
        let mut baseline_raw = RawFiles::default();
        baseline_raw.entries.insert(
            "proc/1/stat".into(),
            RawEntry::File(b"1 (init) S 0 1 1 0 -2\n".to_vec()),
        );
        Capture {
            snapshot: snapshot(processes),
            raw: raw(),
            baseline_raw,
        }
    }

    pub fn trigger() -> Trigger {
        Trigger {
            kind: TriggerKind::Alertmanager,
            incident_id: "inc-1".to_string(),
            group_key: Some("{}:{alertname=\"HighCPUUsage\"}".to_string()),
            receiver: Some("aegisir".to_string()),
            alerts: vec![TriggerAlert {
                name: "HighCPUUsage".to_string(),
                status: "firing".to_string(),
                fingerprint: "c0ffee".to_string(),
                severity: Some("critical".to_string()),
                instance: Some("web-1:9100".to_string()),
                starts_at: Some(captured_at()),
            }],
        }
    }

    pub fn reports() -> Vec<Report> {
        vec![Report {
            file_name: "top.txt".to_string(),
            text: "PID USER %CPU COMMAND\n12 alice 12.5 nginx\n".to_string(),
        }]
    }

    pub fn write_capture(store: &BundleStore, capture: &Capture) -> BundleInfo {
        let trigger = trigger();
        let reports = reports();
        let input = BundleInput {
            capture,
            trigger: &trigger,
            alert_body: Some(br#"{"version":"4","status":"firing"}"#),
            reports: &reports,
            extra_json: vec![(
                "history.json".to_string(),
                serde_json::json!({"samples": []}),
            )],
        };
        store.write(input).expect("bundle is written")
    }

    pub fn write_sample(store: &BundleStore) -> BundleInfo {
        write_capture(store, &capture())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use aegisir_platform::RawEntry;

    use super::test_support::{self, write_sample};
    use super::*;

    fn store() -> (tempfile::TempDir, BundleStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = BundleStore::open(dir.path().join("logs")).unwrap();
        (dir, store)
    }

    /// Names in the data directory, without the `.aegisir` state folder.
    fn dir_names(dir: &Path) -> BTreeSet<String> {
        fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .filter(|name| name != STATE_DIR)
            .collect()
    }

    fn read_manifest(info: &BundleInfo) -> Manifest {
        serde_json::from_slice(&fs::read(info.path.join(MANIFEST)).unwrap()).unwrap()
    }

    #[test]
    fn write_names_bundle_by_time_and_digest() {
        let (_tmp, store) = store();
        let info = write_sample(&store);

        let manifest_bytes = fs::read(info.path.join(MANIFEST)).unwrap();
        assert_eq!(info.digest, write::sha256_hex(&manifest_bytes));
        assert_eq!(
            info.id,
            format!("2026-12-03T21-45-38.812Z_{}", &info.digest[..12])
        );
        assert!(is_bundle_id(&info.id));
        assert_eq!(info.path, store.dir().join(&info.id));
        assert_eq!(info.captured_at, test_support::captured_at());
    }

    #[test]
    fn write_creates_every_file_and_counts_bytes() {
        let (_tmp, store) = store();
        let info = write_sample(&store);

        let expected: BTreeSet<String> = [
            "alert.json",
            "history.json",
            "manifest.json",
            "raw.tar",
            "snapshot.json",
            "top.txt",
        ]
        .map(String::from)
        .into();
        assert_eq!(dir_names(&info.path), expected);
        assert_eq!(info.bytes_written, directory_bytes(&info.path));
        assert_eq!(
            fs::read(info.path.join(ALERT)).unwrap(),
            br#"{"version":"4","status":"firing"}"#
        );
    }

    #[test]
    fn manifest_records_trigger_files_gaps_and_host() {
        let (_tmp, store) = store();
        let info = write_sample(&store);
        let manifest = read_manifest(&info);

        assert_eq!(manifest.schema_version, BUNDLE_SCHEMA_VERSION);
        assert_eq!(manifest.tool_version, env!("CARGO_PKG_VERSION"));
        assert_eq!(manifest.host.hostname.as_deref(), Some("web-1"));
        assert_eq!(manifest.host.kernel.as_deref(), Some("6.8.0-test"));
        assert_eq!(manifest.trigger, test_support::trigger());
        assert_eq!(manifest.gaps, test_support::capture().snapshot.gaps);
        assert_eq!(manifest.previous, None);
        assert_eq!(manifest.raw.entries, 5);
        assert_eq!(manifest.raw.baseline_entries, 1);
        assert!(manifest.raw.skipped.is_empty());

        let names: Vec<&str> = manifest.files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "alert.json",
                "history.json",
                "raw.tar",
                "snapshot.json",
                "top.txt"
            ]
        );
        let top = &manifest.files[4];
        assert_eq!(top.size, test_support::reports()[0].text.len() as u64);
        assert_eq!(
            top.sha256,
            write::sha256_hex(test_support::reports()[0].text.as_bytes())
        );
    }

    #[test]
    fn snapshot_json_round_trips() {
        let (_tmp, store) = store();
        let capture = test_support::capture();
        let info = test_support::write_capture(&store, &capture);

        let bytes = fs::read(info.path.join(SNAPSHOT)).unwrap();
        let snapshot: aegisir_platform::Snapshot = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(snapshot, capture.snapshot);
    }

    #[test]
    fn two_bundles_in_same_millisecond_are_two_directories() {
        let (_tmp, store) = store();
        let first = write_sample(&store);
        let second = write_sample(&store);

        assert_ne!(first.id, second.id);
        assert!(first.path.is_dir());
        assert!(second.path.is_dir());
        assert!(first.id.starts_with("2026-12-03T21-45-38.812Z_"));
        assert!(second.id.starts_with("2026-12-03T21-45-38.812Z_"));
        assert_eq!(store.list().unwrap().len(), 2);
    }

    #[test]
    fn write_leaves_no_staging_directory() {
        let (_tmp, store) = store();
        let info = write_sample(&store);

        assert_eq!(dir_names(store.dir()), BTreeSet::from([info.id]));
    }

    #[test]
    fn failed_write_removes_staging_directory() {
        let (_tmp, store) = store();
        let capture = test_support::capture();
        let trigger = test_support::trigger();
        let reports = vec![Report {
            file_name: "../escape.txt".to_string(),
            text: "x".to_string(),
        }];
        let input = BundleInput {
            capture: &capture,
            trigger: &trigger,
            alert_body: None,
            reports: &reports,
            extra_json: Vec::new(),
        };

        let error = store.write(input).unwrap_err();
        assert!(
            matches!(error, StoreError::InvalidFileName { ref name } if name == "../escape.txt")
        );
        assert!(dir_names(store.dir()).is_empty());
    }

    #[test]
    fn write_rejects_report_named_like_bundle_file() {
        let (_tmp, store) = store();
        let capture = test_support::capture();
        let trigger = test_support::trigger();
        for name in [MANIFEST, SNAPSHOT, RAW_TAR] {
            let reports = vec![Report {
                file_name: name.to_string(),
                text: "x".to_string(),
            }];
            let input = BundleInput {
                capture: &capture,
                trigger: &trigger,
                alert_body: None,
                reports: &reports,
                extra_json: Vec::new(),
            };
            let error = store.write(input).unwrap_err();
            assert!(
                matches!(error, StoreError::InvalidFileName { .. }),
                "accepted {name}"
            );
        }
        assert!(dir_names(store.dir()).is_empty());
    }

    #[test]
    fn open_removes_leftovers() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("logs");
        fs::create_dir_all(dir.join(".tmp-0123456789abcdef/nested")).unwrap();
        fs::write(dir.join(".tmp-0123456789abcdef/snapshot.json"), b"{").unwrap();
        fs::write(dir.join(".tmp-probe-1"), b"").unwrap();
        fs::create_dir_all(dir.join(".aegisir/outbox")).unwrap();

        let store = BundleStore::open(&dir).unwrap();
        assert!(dir_names(store.dir()).is_empty());
        assert!(dir.join(".aegisir/outbox").is_dir());
    }

    #[test]
    fn open_loads_chain_head_from_newest_bundle() {
        let (_tmp, store) = store();
        let first = write_sample(&store);

        let reopened = BundleStore::open(store.dir()).unwrap();
        let second = write_sample(&reopened);
        assert_eq!(read_manifest(&second).previous, Some(first.digest));
    }

    #[test]
    fn two_stores_on_one_directory_extend_one_chain() {
        let (_tmp, server) = store();
        let cli = BundleStore::open(server.dir()).unwrap();

        // Distinct capture times, so that the bundle ids sort in the order of writing.
        let at = |millis: i64| {
            let mut capture = test_support::capture();
            capture.snapshot.captured_at += chrono::Duration::milliseconds(millis);
            capture
        };
        let first = test_support::write_capture(&server, &at(0));
        let second = test_support::write_capture(&cli, &at(1));
        let third = test_support::write_capture(&server, &at(2));

        assert_eq!(read_manifest(&second).previous, Some(first.digest));
        assert_eq!(read_manifest(&third).previous, Some(second.digest));
        assert!(verify_chain(server.dir()).unwrap().is_ok());
    }

    #[test]
    fn write_links_each_bundle_to_the_one_before() {
        let (_tmp, store) = store();
        let first = write_sample(&store);
        let second = write_sample(&store);

        assert_eq!(read_manifest(&first).previous, None);
        assert_eq!(read_manifest(&second).previous, Some(first.digest));
    }

    #[test]
    fn list_returns_newest_first() {
        let (_tmp, store) = store();
        let mut older = test_support::capture();
        older.snapshot.captured_at -= chrono::Duration::seconds(60);
        let first = test_support::write_capture(&store, &older);
        let second = write_sample(&store);
        fs::create_dir(store.dir().join("not-a-bundle")).unwrap();

        let list = store.list().unwrap();
        let ids: Vec<&str> = list.iter().map(|b| b.id.as_str()).collect();
        assert_eq!(ids, [second.id.as_str(), first.id.as_str()]);
        assert_eq!(list[0].digest, second.digest);
        assert_eq!(list[0].bytes, second.bytes_written);
        assert_eq!(list[0].captured_at, Some(second.captured_at));
        assert_eq!(list[0].trigger, Some(test_support::trigger()));
        assert_eq!(list[1].captured_at, Some(older.snapshot.captured_at));
    }

    #[test]
    fn files_lists_manifest_first_then_its_entries() {
        let (_tmp, store) = store();
        let info = write_sample(&store);

        let files = store.files(&info.id).unwrap();
        let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "manifest.json",
                "alert.json",
                "history.json",
                "raw.tar",
                "snapshot.json",
                "top.txt"
            ]
        );
        assert_eq!(files[0].sha256, info.digest);
        assert_eq!(store.files("2026-12-03T21-45-38.812Z_000000000000"), None);
        assert_eq!(store.files("../logs"), None);
    }

    #[test]
    fn file_path_returns_regular_file_inside_bundle() {
        let (_tmp, store) = store();
        let info = write_sample(&store);

        assert_eq!(
            store.file_path(&info.id, "top.txt"),
            Some(info.path.join("top.txt"))
        );
        assert_eq!(
            store.file_path(&info.id, MANIFEST),
            Some(info.path.join(MANIFEST))
        );
        assert_eq!(store.file_path(&info.id, "absent.txt"), None);
    }

    #[test]
    fn file_path_rejects_traversal_attempts() {
        let (tmp, store) = store();
        let info = write_sample(&store);
        fs::write(tmp.path().join("secret.txt"), b"secret").unwrap();
        fs::write(store.dir().join("outside.txt"), b"outside").unwrap();

        let attempts = [
            "../outside.txt",
            "../../secret.txt",
            "..",
            ".",
            "",
            "/etc/passwd",
            "top.txt/",
            "a/top.txt",
            "..\\outside.txt",
            "%2e%2e%2foutside.txt",
            "%2e%2e",
            "..%2foutside.txt",
            "top.txt%00",
            "top.txt\0",
            ".hidden",
        ];
        for file in attempts {
            assert_eq!(store.file_path(&info.id, file), None, "file {file:?}");
        }
    }

    #[test]
    fn file_path_rejects_invalid_ids() {
        let (_tmp, store) = store();
        let info = write_sample(&store);
        let ids = [
            "..".to_string(),
            format!("../{}", info.id),
            format!("{}/..", info.id),
            format!("{}/", info.id),
            info.id.to_uppercase(),
            store.dir().join(&info.id).display().to_string(),
            ".aegisir".to_string(),
        ];
        for id in &ids {
            assert_eq!(store.file_path(id, "top.txt"), None, "id {id:?}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn file_path_rejects_symlinks() {
        let (tmp, store) = store();
        let info = write_sample(&store);
        fs::write(tmp.path().join("secret.txt"), b"secret").unwrap();
        std::os::unix::fs::symlink(tmp.path().join("secret.txt"), info.path.join("link.txt"))
            .unwrap();
        let linked_id = "2026-12-03T21-45-39.000Z_aaaaaaaaaaaa";
        std::os::unix::fs::symlink(&info.path, store.dir().join(linked_id)).unwrap();
        fs::create_dir(info.path.join("sub")).unwrap();

        assert_eq!(store.file_path(&info.id, "link.txt"), None);
        assert_eq!(store.file_path(linked_id, "top.txt"), None);
        assert_eq!(store.file_path(&info.id, "sub"), None);
    }

    #[test]
    fn file_path_rejects_file_not_in_manifest() {
        let (_tmp, store) = store();
        let info = write_sample(&store);
        fs::write(info.path.join("planted.txt"), b"planted").unwrap();

        assert_eq!(store.file_path(&info.id, "planted.txt"), None);
        assert_eq!(
            store.file_path(&info.id, "top.txt"),
            Some(info.path.join("top.txt"))
        );
    }

    #[test]
    fn file_path_rejects_hard_links() {
        let (tmp, store) = store();
        let info = write_sample(&store);
        let outside = tmp.path().join("secret.txt");
        fs::write(&outside, b"secret").unwrap();
        fs::remove_file(info.path.join("top.txt")).unwrap();
        fs::hard_link(&outside, info.path.join("top.txt")).unwrap();
        fs::hard_link(
            info.path.join(SNAPSHOT),
            tmp.path().join("snapshot-copy.json"),
        )
        .unwrap();

        assert_eq!(store.file_path(&info.id, "top.txt"), None);
        assert_eq!(store.file_path(&info.id, SNAPSHOT), None);
        assert_eq!(
            store.file_path(&info.id, RAW_TAR),
            Some(info.path.join(RAW_TAR))
        );
    }

    #[test]
    fn broken_manifest_serves_nothing() {
        let (_tmp, store) = store();
        let info = write_sample(&store);
        let broken = ["not json".as_bytes(), b"{\"files\": []}", b""];
        for bytes in broken {
            fs::write(info.path.join(MANIFEST), bytes).unwrap();

            assert_eq!(store.files(&info.id), None);
            assert_eq!(store.file_path(&info.id, MANIFEST), None);
            assert_eq!(store.file_path(&info.id, "top.txt"), None);
        }
    }

    #[test]
    fn list_marks_bundle_with_broken_manifest() {
        let (_tmp, store) = store();
        let info = write_sample(&store);
        fs::write(info.path.join(MANIFEST), b"not json").unwrap();

        let list = store.list().unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].digest, "");
        assert_eq!(list[0].trigger, None);
        assert_eq!(list[0].captured_at, Some(info.captured_at));
        let error = list[0].manifest_error.as_deref().unwrap();
        assert!(
            error.starts_with("manifest.json is not a valid manifest"),
            "{error}"
        );

        fs::remove_file(info.path.join(MANIFEST)).unwrap();
        let error = store.list().unwrap()[0].manifest_error.clone().unwrap();
        assert_eq!(
            error,
            "manifest.json is missing, unreadable or not a regular file"
        );
    }

    #[test]
    fn list_leaves_intact_bundle_unmarked() {
        let (_tmp, store) = store();
        write_sample(&store);

        assert_eq!(store.list().unwrap()[0].manifest_error, None);
    }

    /// Creates `count` empty bundle directories one second apart and returns their ids,
    /// oldest first.
    fn empty_bundles(store: &BundleStore, count: usize) -> Vec<String> {
        (0..count)
            .map(|second| {
                let time = test_support::captured_at() + chrono::Duration::seconds(second as i64);
                let id = names::bundle_id(time, &format!("{second:064x}"));
                fs::create_dir(store.dir().join(&id)).unwrap();
                id
            })
            .collect()
    }

    fn page_ids(page: &BundlePage) -> Vec<&str> {
        page.bundles.iter().map(|b| b.id.as_str()).collect()
    }

    #[test]
    fn list_page_walks_newest_first_with_cursor() {
        let (_tmp, store) = store();
        let ids = empty_bundles(&store, 5);

        let first = store.list_page(Some(2), None).unwrap();
        assert_eq!(page_ids(&first), [ids[4].as_str(), ids[3].as_str()]);
        assert_eq!(first.next.as_deref(), Some(ids[3].as_str()));

        let second = store.list_page(Some(2), first.next.as_deref()).unwrap();
        assert_eq!(page_ids(&second), [ids[2].as_str(), ids[1].as_str()]);
        assert_eq!(second.next.as_deref(), Some(ids[1].as_str()));

        let last = store.list_page(Some(2), second.next.as_deref()).unwrap();
        assert_eq!(page_ids(&last), [ids[0].as_str()]);
        assert_eq!(last.next, None);
    }

    #[test]
    fn list_page_reads_manifests_of_page_only() {
        let (_tmp, store) = store();
        let ids = empty_bundles(&store, 3);
        let mut later = test_support::capture();
        later.snapshot.captured_at += chrono::Duration::minutes(10);
        let info = test_support::write_capture(&store, &later);

        let page = store.list_page(Some(1), None).unwrap();
        assert_eq!(page_ids(&page), [info.id.as_str()]);
        assert_eq!(page.bundles[0].digest, info.digest);
        assert_eq!(page.bundles[0].manifest_error, None);
        assert_eq!(page.next.as_deref(), Some(info.id.as_str()));

        let rest = store.list_page(None, page.next.as_deref()).unwrap();
        assert_eq!(rest.bundles.len(), 3);
        assert_eq!(rest.bundles[0].id, ids[2]);
        assert!(rest.bundles.iter().all(|b| b.manifest_error.is_some()));
    }

    #[test]
    fn list_page_applies_default_and_maximum_limit() {
        let (_tmp, store) = store();
        let ids = empty_bundles(&store, MAX_PAGE_LIMIT + 1);

        let default = store.list_page(None, None).unwrap();
        assert_eq!(default.bundles.len(), DEFAULT_PAGE_LIMIT);
        let oldest_shown = &ids[ids.len() - DEFAULT_PAGE_LIMIT];
        assert_eq!(default.next.as_ref(), Some(oldest_shown));

        let capped = store.list_page(Some(usize::MAX), None).unwrap();
        assert_eq!(capped.bundles.len(), MAX_PAGE_LIMIT);
        assert_eq!(capped.next.as_ref(), Some(&ids[1]));

        let minimum = store.list_page(Some(0), None).unwrap();
        assert_eq!(minimum.bundles.len(), 1);
    }

    #[test]
    fn list_page_with_cursor_before_every_bundle_is_empty() {
        let (_tmp, store) = store();
        let ids = empty_bundles(&store, 2);

        let page = store.list_page(None, Some(&ids[0])).unwrap();
        assert_eq!(page.bundles, []);
        assert_eq!(page.next, None);
    }

    #[test]
    fn raw_tar_extracts_to_tree_with_symlinks() {
        let (tmp, store) = store();
        let info = write_sample(&store);
        let out = tmp.path().join("extracted");
        let file = fs::File::open(info.path.join(RAW_TAR)).unwrap();
        tar::Archive::new(file).unpack(&out).unwrap();

        assert_eq!(
            fs::read(out.join("proc/1/stat")).unwrap(),
            b"1 (init) S 0 1 1 0 -1\n"
        );
        assert_eq!(
            fs::read_link(out.join("proc/self")).unwrap(),
            Path::new("4242")
        );
        assert_eq!(
            fs::read_link(out.join("proc/12/fd/3")).unwrap(),
            Path::new("socket:[123]")
        );
        assert_eq!(
            fs::read(out.join("sys/fs/cgroup/cpu.stat")).unwrap(),
            b"usage_usec 10\n"
        );
        assert_eq!(
            fs::read(out.join("root/etc/passwd")).unwrap(),
            b"root:x:0:0::/root:/bin/sh\n"
        );
        assert_eq!(
            fs::read(out.join("baseline/proc/1/stat")).unwrap(),
            b"1 (init) S 0 1 1 0 -2\n"
        );
    }

    #[test]
    fn raw_tar_entries_have_fixed_owner_and_time() {
        let (_tmp, store) = store();
        let info = write_sample(&store);
        let file = fs::File::open(info.path.join(RAW_TAR)).unwrap();
        let mut archive = tar::Archive::new(file);

        let mut paths = Vec::new();
        for entry in archive.entries().unwrap() {
            let entry = entry.unwrap();
            let header = entry.header();
            assert_eq!(header.uid().unwrap(), 0);
            assert_eq!(header.gid().unwrap(), 0);
            assert_eq!(header.mtime().unwrap(), info.captured_at.timestamp() as u64);
            paths.push(entry.path().unwrap().display().to_string());
        }
        let first_file = paths.iter().position(|p| p == "proc/1/stat").unwrap();
        let parent = paths.iter().position(|p| p == "proc/1").unwrap();
        assert!(
            parent < first_file,
            "directory entries come before their files"
        );
    }

    #[test]
    fn raw_tar_is_identical_for_identical_input() {
        let (_tmp, store) = store();
        let first = write_sample(&store);
        let second = write_sample(&store);

        let first_tar = fs::read(first.path.join(RAW_TAR)).unwrap();
        let second_tar = fs::read(second.path.join(RAW_TAR)).unwrap();
        assert_eq!(first_tar, second_tar);
    }

    #[test]
    fn raw_tar_skips_keys_that_leave_the_tree() {
        let (tmp, store) = store();
        let mut capture = test_support::capture();
        let entries = &mut capture.raw.entries;
        entries.insert("proc/../escape".into(), RawEntry::File(b"x".to_vec()));
        entries.insert("/abs".into(), RawEntry::File(b"x".to_vec()));
        entries.insert("proc/12/fd".into(), RawEntry::File(b"x".to_vec()));
        let info = test_support::write_capture(&store, &capture);

        let skipped: Vec<String> = read_manifest(&info)
            .raw
            .skipped
            .into_iter()
            .map(|s| s.key)
            .collect();
        assert_eq!(skipped, ["/abs", "proc/../escape", "proc/12/fd"]);
        let out = tmp.path().join("extracted");
        let file = fs::File::open(info.path.join(RAW_TAR)).unwrap();
        tar::Archive::new(file).unpack(&out).unwrap();
        assert!(!tmp.path().join("escape").exists());
        assert!(out.join("proc/12/fd").is_dir());
    }

    #[test]
    fn is_writable_for_open_store() {
        let (_tmp, store) = store();

        assert!(store.is_writable());
        assert!(dir_names(store.dir()).is_empty());
    }

    #[test]
    fn is_writable_false_when_directory_is_gone() {
        let (_tmp, store) = store();
        fs::remove_dir(store.dir()).unwrap();

        assert!(!store.is_writable());
    }

    mod properties {
        use proptest::prelude::*;

        use super::super::test_support;
        use super::super::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(32))]

            #[test]
            fn written_bundle_always_verifies(
                names in proptest::collection::vec(any::<String>(), 1..6),
                cmdlines in proptest::collection::vec(any::<String>(), 1..6),
            ) {
                let tmp = tempfile::tempdir().unwrap();
                let store = BundleStore::open(tmp.path().join("logs")).unwrap();
                let processes = names
                    .iter()
                    .zip(cmdlines.iter().cycle())
                    .enumerate()
                    .map(|(i, (name, cmdline))| test_support::process(i as i32 + 1, name, cmdline))
                    .collect();
                let mut capture = test_support::capture();
                capture.snapshot = test_support::snapshot(processes);

                let info = test_support::write_capture(&store, &capture);
                let report = verify(&info.path).unwrap();
                prop_assert!(report.is_ok(), "{}", report);
                prop_assert_eq!(report.checked_files, 6);
            }
        }
    }
}
