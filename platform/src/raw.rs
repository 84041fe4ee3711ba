//! Raw evidence: the exact bytes a capture read, kept in the layout of the trees they came from.
//!
//! Every collector reads through a [`Reader`], which resolves a path against its root, records
//! the bytes it returned, and turns I/O failures into a [`ReadError`] whose reason says whether
//! the file vanished, was denied or is unsupported. Parsers then work on the recorded bytes, so
//! the raw evidence and the parsed values can never disagree, and a [`RawFiles`] written out as
//! `proc/...`, `sys/...` and `root/...` reads back as the trees it came from.
//!
//! Two things a capture learns are not file contents, and both are kept in /proc's layout
//! under names that no procfs, sysfs or rootfs path the collectors read uses:
//!
//! - A directory listing is recorded as `<directory>/.listing`, the sorted names each followed
//!   by a NUL byte. The extracted directory alone would lack the names that vanished before
//!   they were read (a closed descriptor in `PID/fd`, a pid that exited), so counts taken from
//!   listings would change on replay.
//! - A read that failed for a reason other than the file vanishing (permission denied,
//!   unsupported) is recorded as `<directory>/.failed/<name>`: the reason as a gap spells it,
//!   a newline, and the error text. Without it a replay would see a missing file and report it
//!   as vanished or absent.
//!
//! A tree whose procfs root has a `.listing` is treated as written from raw evidence: listings
//! come from the recorded `.listing` files, and a file missing from it returns the failure
//! recorded in `.failed` when there is one. A live procfs never has these names, so a live
//! reader only pays one failed lookup of `<procfs>/.listing` per sample. Vanished files are
//! not recorded: they are missing from the replayed tree too.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::model::GapReason;

/// Name of the file that records a directory listing in the raw evidence.
pub const LISTING: &str = ".listing";
/// Name of the directory that records failed reads in the raw evidence.
pub const FAILED: &str = ".failed";

/// The three trees a capture reads from, as node_exporter's `--path.procfs`,
/// `--path.sysfs` and `--path.rootfs` name them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roots {
    pub procfs: PathBuf,
    pub sysfs: PathBuf,
    pub rootfs: PathBuf,
}

impl Default for Roots {
    fn default() -> Self {
        Roots {
            procfs: PathBuf::from("/proc"),
            sysfs: PathBuf::from("/sys"),
            rootfs: PathBuf::from("/"),
        }
    }
}

/// Which of the three trees a path belongs to; also the top folder in the raw evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tree {
    Proc,
    Sys,
    Root,
}

impl Tree {
    pub fn prefix(self) -> &'static str {
        match self {
            Tree::Proc => "proc",
            Tree::Sys => "sys",
            Tree::Root => "root",
        }
    }
}

/// One recorded entry: file contents or a symbolic link's target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawEntry {
    File(Vec<u8>),
    Link(PathBuf),
}

/// The recorded entries of one sample, keyed by `<tree prefix>/<path relative to its root>`,
/// for example `proc/1/stat` or `sys/fs/cgroup/cpu.stat`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawFiles {
    pub entries: BTreeMap<String, RawEntry>,
}

impl RawFiles {
    pub fn insert(&mut self, tree: Tree, relative: &str, entry: RawEntry) {
        let key = format!("{}/{}", tree.prefix(), relative.trim_start_matches('/'));
        self.entries.insert(key, entry);
    }

    pub fn total_bytes(&self) -> u64 {
        self.entries
            .values()
            .map(|entry| match entry {
                RawEntry::File(bytes) => bytes.len() as u64,
                RawEntry::Link(target) => target.as_os_str().len() as u64,
            })
            .sum()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// A failed read, with the path relative to its root and the reason it failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot read {tree_prefix}/{path}: {detail}", tree_prefix = tree.prefix())]
pub struct ReadError {
    pub tree: Tree,
    pub path: String,
    pub reason: GapReason,
    pub detail: String,
}

impl ReadError {
    pub fn new(tree: Tree, path: &str, error: &io::Error) -> Self {
        ReadError {
            tree,
            path: path.to_string(),
            reason: classify(error),
            detail: error.to_string(),
        }
    }
}

/// Maps an I/O error to the reason recorded in a gap.
///
/// `ENOENT` and `ESRCH` mean the process or file went away; `EACCES` and `EPERM` mean the
/// reader lacks rights; `ENOTSUP`, `ENOSYS` and `EINVAL` on a procfs file mean the kernel does
/// not offer it.
pub fn classify(error: &io::Error) -> GapReason {
    match error.kind() {
        io::ErrorKind::NotFound => return GapReason::Vanished,
        io::ErrorKind::PermissionDenied => return GapReason::PermissionDenied,
        io::ErrorKind::Unsupported => return GapReason::Unsupported,
        _ => {}
    }
    match error.raw_os_error() {
        Some(libc::ESRCH) | Some(libc::ENOENT) => GapReason::Vanished,
        Some(libc::EACCES) | Some(libc::EPERM) => GapReason::PermissionDenied,
        Some(libc::ENOSYS) | Some(libc::EOPNOTSUPP) | Some(libc::EINVAL) => GapReason::Unsupported,
        _ => GapReason::Error,
    }
}

/// Reads files under the three roots and records every byte it returns.
#[derive(Debug)]
pub struct Reader {
    roots: Roots,
    raw: RawFiles,
    record: bool,
    /// True when the procfs root is a tree written from raw evidence (it has a [`LISTING`]
    /// file), so recorded listings and failures are read back.
    replay: bool,
    /// Listings and failures, recorded beside `raw` because [`Reader::list`] takes `&self`.
    recorded: RefCell<BTreeMap<String, RawEntry>>,
}

impl Reader {
    pub fn new(roots: Roots) -> Self {
        let marker = roots.procfs.join(LISTING);
        audit::touch(&marker);
        Reader {
            replay: marker.is_file(),
            roots,
            raw: RawFiles::default(),
            record: true,
            recorded: RefCell::default(),
        }
    }

    /// A reader that returns bytes without keeping them, for samples whose evidence is
    /// not stored.
    pub fn without_recording(roots: Roots) -> Self {
        Reader {
            record: false,
            ..Reader::new(roots)
        }
    }

    pub fn roots(&self) -> &Roots {
        &self.roots
    }

    /// The absolute path of `relative` under the root of `tree`.
    pub fn resolve(&self, tree: Tree, relative: &str) -> PathBuf {
        let root = match tree {
            Tree::Proc => &self.roots.procfs,
            Tree::Sys => &self.roots.sysfs,
            Tree::Root => &self.roots.rootfs,
        };
        root.join(relative.trim_start_matches('/'))
    }

    /// Resolves `relative` and adds the path to the audit of the current thread.
    fn touch(&self, tree: Tree, relative: &str) -> PathBuf {
        let path = self.resolve(tree, relative);
        audit::touch(&path);
        path
    }

    /// Reads a whole file and records its bytes, or records why it could not be read.
    pub fn read(&mut self, tree: Tree, relative: &str) -> Result<&[u8], ReadError> {
        let path = self.touch(tree, relative);
        let bytes = fs::read(&path).map_err(|e| self.failure(tree, relative, &e))?;
        let key = raw_key(tree, relative);
        if !self.record {
            self.raw.entries.clear();
        }
        self.raw.entries.insert(key.clone(), RawEntry::File(bytes));
        match self.raw.entries.get(&key) {
            Some(RawEntry::File(bytes)) => Ok(bytes),
            _ => unreachable!("entry was inserted above"),
        }
    }

    /// Reads a file under the procfs root.
    pub fn proc(&mut self, relative: &str) -> Result<&[u8], ReadError> {
        self.read(Tree::Proc, relative)
    }

    /// Reads at most `max_bytes` of a file without recording its bytes, for files whose
    /// contents must not become evidence (they carry secrets). A failure is recorded.
    pub fn read_unrecorded(
        &self,
        tree: Tree,
        relative: &str,
        max_bytes: u64,
    ) -> Result<Vec<u8>, ReadError> {
        let path = self.touch(tree, relative);
        let mut bytes = Vec::new();
        fs::File::open(&path)
            .and_then(|file| file.take(max_bytes).read_to_end(&mut bytes))
            .map_err(|e| self.failure(tree, relative, &e))?;
        Ok(bytes)
    }

    /// Reads a symbolic link's target and records it.
    pub fn read_link(&mut self, tree: Tree, relative: &str) -> Result<PathBuf, ReadError> {
        let path = self.touch(tree, relative);
        let target = fs::read_link(&path).map_err(|e| self.failure(tree, relative, &e))?;
        if self.record {
            self.raw
                .insert(tree, relative, RawEntry::Link(target.clone()));
        }
        Ok(target)
    }

    /// Lists the entry names of a directory, sorted, and records the listing as
    /// `<directory>/.listing`. In a replayed tree the recorded listing is returned instead of
    /// the directory's entries, which lack the entries that vanished before they were read.
    pub fn list(&self, tree: Tree, relative: &str) -> Result<Vec<String>, ReadError> {
        if let Some(names) = self.recorded_listing(tree, relative) {
            return Ok(names);
        }
        let path = self.touch(tree, relative);
        let mut names = read_dir_names(&path).map_err(|e| self.failure(tree, relative, &e))?;
        if self.replay {
            names.retain(|name| name != LISTING && name != FAILED);
        }
        names.sort();

        if self.record {
            let key = raw_key(tree, &listing_path(relative));
            let entry = RawEntry::File(encode_listing(&names));
            self.recorded.borrow_mut().insert(key, entry);
        }
        Ok(names)
    }

    /// True when `relative` exists under the root of `tree`.
    pub fn exists(&self, tree: Tree, relative: &str) -> bool {
        self.touch(tree, relative).exists()
    }

    /// Hands over what was recorded and starts a new record.
    pub fn take_raw(&mut self) -> RawFiles {
        let mut raw = std::mem::take(&mut self.raw);
        raw.entries.append(&mut self.recorded.borrow_mut());
        raw
    }

    fn recorded_listing(&self, tree: Tree, relative: &str) -> Option<Vec<String>> {
        if !self.replay {
            return None;
        }
        let path = self.touch(tree, &listing_path(relative));
        let bytes = fs::read(path).ok()?;
        if self.record {
            let key = raw_key(tree, &listing_path(relative));
            let entry = RawEntry::File(bytes.clone());
            self.recorded.borrow_mut().insert(key, entry);
        }
        Some(decode_listing(&bytes))
    }

    /// Turns an I/O error into a [`ReadError`]. A failure other than a vanished file is
    /// recorded; in a replayed tree a missing file returns the failure recorded for it.
    fn failure(&self, tree: Tree, relative: &str, error: &io::Error) -> ReadError {
        let read_error = ReadError::new(tree, relative, error);
        let Some(failed) = failure_path(relative) else {
            return read_error;
        };
        if read_error.reason == GapReason::Vanished {
            if self.replay {
                return self
                    .recorded_failure(tree, relative, &failed)
                    .unwrap_or(read_error);
            }
            return read_error;
        }

        if self.record {
            let key = raw_key(tree, &failed);
            let entry = RawEntry::File(encode_failure(&read_error));
            self.recorded.borrow_mut().insert(key, entry);
        }
        read_error
    }

    fn recorded_failure(&self, tree: Tree, relative: &str, failed: &str) -> Option<ReadError> {
        let path = self.touch(tree, failed);
        let bytes = fs::read(path).ok()?;
        let (reason, detail) = decode_failure(&bytes)?;
        if self.record {
            let entry = RawEntry::File(bytes);
            self.recorded
                .borrow_mut()
                .insert(raw_key(tree, failed), entry);
        }
        Some(ReadError {
            tree,
            path: relative.to_string(),
            reason,
            detail,
        })
    }
}

fn raw_key(tree: Tree, relative: &str) -> String {
    format!("{}/{}", tree.prefix(), relative.trim_start_matches('/'))
}

fn read_dir_names(path: &Path) -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(path)? {
        names.push(entry?.file_name().to_string_lossy().into_owned());
    }
    Ok(names)
}

/// `1/fd` → `1/fd/.listing`; the root's listing is `.listing`.
fn listing_path(relative: &str) -> String {
    let relative = relative.trim_matches('/');
    if relative.is_empty() {
        LISTING.to_string()
    } else {
        format!("{relative}/{LISTING}")
    }
}

/// `1/io` → `1/.failed/io`; `None` for the root itself.
fn failure_path(relative: &str) -> Option<String> {
    let relative = relative.trim_matches('/');
    if relative.is_empty() {
        return None;
    }
    Some(match relative.rsplit_once('/') {
        Some((dir, name)) => format!("{dir}/{FAILED}/{name}"),
        None => format!("{FAILED}/{relative}"),
    })
}

fn encode_listing(names: &[String]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for name in names {
        bytes.extend_from_slice(name.as_bytes());
        bytes.push(0);
    }
    bytes
}

fn decode_listing(bytes: &[u8]) -> Vec<String> {
    let mut names: Vec<String> = bytes
        .split(|&b| b == 0)
        .filter(|name| !name.is_empty())
        .map(|name| String::from_utf8_lossy(name).into_owned())
        .collect();
    names.sort();
    names
}

fn encode_failure(error: &ReadError) -> Vec<u8> {
    format!("{}\n{}\n", error.reason.as_str(), error.detail).into_bytes()
}

fn decode_failure(bytes: &[u8]) -> Option<(GapReason, String)> {
    let text = String::from_utf8_lossy(bytes);
    let mut lines = text.lines();
    let reason = lines.next()?;
    let reason = GAP_REASONS.into_iter().find(|r| r.as_str() == reason)?;
    Some((reason, lines.next().unwrap_or("").to_string()))
}

const GAP_REASONS: [GapReason; 6] = [
    GapReason::Vanished,
    GapReason::PermissionDenied,
    GapReason::Unsupported,
    GapReason::Invalid,
    GapReason::Deadline,
    GapReason::Error,
];

/// The paths a thread's readers touched, for tests that prove a capture stays under its roots.
///
/// Every [`Reader`] operation and the filesystem collector's statvfs calls add the absolute
/// path they use while an audit runs on the calling thread. A capture runs on the thread that
/// calls it, so an audit started there sees all of it.
pub mod audit {
    use std::cell::RefCell;
    use std::path::{Path, PathBuf};

    thread_local! {
        static PATHS: RefCell<Option<Vec<PathBuf>>> = const { RefCell::new(None) };
    }

    /// Starts recording the paths touched on this thread, discarding an earlier audit.
    pub fn start() {
        PATHS.with(|paths| *paths.borrow_mut() = Some(Vec::new()));
    }

    /// Stops the audit and returns the paths touched since [`start`], in order.
    pub fn finish() -> Vec<PathBuf> {
        PATHS.with(|paths| paths.borrow_mut().take().unwrap_or_default())
    }

    /// Adds `path` to the running audit; does nothing when none runs.
    pub fn touch(path: &Path) {
        PATHS.with(|paths| {
            if let Some(paths) = paths.borrow_mut().as_mut() {
                paths.push(path.to_path_buf());
            }
        });
    }
}

/// Joins a relative path onto a root the way [`Reader::resolve`] does.
pub fn under(root: &Path, relative: &str) -> PathBuf {
    root.join(relative.trim_start_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_records_bytes_under_tree_prefix() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("1")).unwrap();
        fs::write(dir.path().join("1/stat"), b"1 (init) S 0").unwrap();
        let roots = Roots {
            procfs: dir.path().to_path_buf(),
            ..Roots::default()
        };
        let mut reader = Reader::new(roots);

        assert_eq!(reader.proc("1/stat").unwrap(), b"1 (init) S 0");
        let raw = reader.take_raw();
        assert_eq!(
            raw.entries.get("proc/1/stat"),
            Some(&RawEntry::File(b"1 (init) S 0".to_vec()))
        );
    }

    #[test]
    fn missing_file_is_vanished() {
        let dir = tempfile::tempdir().unwrap();
        let roots = Roots {
            procfs: dir.path().to_path_buf(),
            ..Roots::default()
        };
        let mut reader = Reader::new(roots);
        let error = reader.proc("42/stat").unwrap_err();
        assert_eq!(error.reason, GapReason::Vanished);
        assert_eq!(error.path, "42/stat");
    }
}
