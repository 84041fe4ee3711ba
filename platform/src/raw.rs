//! Raw evidence: the exact bytes a capture read, kept in the layout of the trees they came from.
//!
//! Every collector reads through a [`Reader`], which resolves a path against its root, records
//! the bytes it returned, and turns I/O failures into a [`ReadError`] whose reason says whether
//! the file vanished, was denied or is unsupported. Parsers then work on the recorded bytes, so
//! the raw evidence and the parsed values can never disagree, and a [`RawFiles`] written out as
//! `proc/...`, `sys/...` and `root/...` reads back as the trees it came from.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::model::GapReason;

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
}

impl Reader {
    pub fn new(roots: Roots) -> Self {
        Reader {
            roots,
            raw: RawFiles::default(),
            record: true,
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

    /// Reads a whole file and records its bytes.
    pub fn read(&mut self, tree: Tree, relative: &str) -> Result<&[u8], ReadError> {
        let path = self.resolve(tree, relative);
        let bytes = fs::read(&path).map_err(|e| ReadError::new(tree, relative, &e))?;
        let key = format!("{}/{}", tree.prefix(), relative.trim_start_matches('/'));
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

    /// Reads a symbolic link's target and records it.
    pub fn read_link(&mut self, tree: Tree, relative: &str) -> Result<PathBuf, ReadError> {
        let path = self.resolve(tree, relative);
        let target = fs::read_link(&path).map_err(|e| ReadError::new(tree, relative, &e))?;
        if self.record {
            self.raw.insert(tree, relative, RawEntry::Link(target.clone()));
        }
        Ok(target)
    }

    /// Lists the entry names of a directory, sorted. Directory listings are not recorded: the
    /// raw evidence shows them through the entries read beneath.
    pub fn list(&self, tree: Tree, relative: &str) -> Result<Vec<String>, ReadError> {
        let path = self.resolve(tree, relative);
        let entries = fs::read_dir(&path).map_err(|e| ReadError::new(tree, relative, &e))?;
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| ReadError::new(tree, relative, &e))?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }

    /// True when `relative` exists under the root of `tree`.
    pub fn exists(&self, tree: Tree, relative: &str) -> bool {
        self.resolve(tree, relative).exists()
    }

    /// Hands over what was recorded and starts a new record.
    pub fn take_raw(&mut self) -> RawFiles {
        std::mem::take(&mut self.raw)
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
