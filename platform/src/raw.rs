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

use std::cell::{OnceCell, RefCell};
use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Mode, OFlags};

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
        self.entries.insert(raw_key(tree, relative), entry);
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
    if let Some(errno) = error.raw_os_error() {
        return match errno {
            libc::ESRCH | libc::ENOENT => GapReason::Vanished,
            libc::EACCES | libc::EPERM => GapReason::PermissionDenied,
            libc::ENOSYS | libc::EOPNOTSUPP | libc::EINVAL => GapReason::Unsupported,
            _ => GapReason::Error,
        };
    }
    // Errors made by this crate, such as a file that is not regular or is too large.
    match error.kind() {
        io::ErrorKind::NotFound => GapReason::Vanished,
        io::ErrorKind::PermissionDenied => GapReason::PermissionDenied,
        io::ErrorKind::Unsupported => GapReason::Unsupported,
        io::ErrorKind::InvalidInput | io::ErrorKind::InvalidData => GapReason::Invalid,
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
    /// The buffer files are read into before their bytes are copied out at their size.
    scratch: Vec<u8>,
    /// Descriptors of the three roots, opened on first use.
    dirs: RootDirs,
}

/// Directory descriptors of the three roots, each opened when a reader first uses its tree
/// and closed with the reader. Files are opened relative to them, so the kernel walks only the
/// path below the root for each file, not the root's own path again. A root that cannot be
/// opened as a directory is used by path, which fails the same way the descriptor would have.
#[derive(Debug, Default)]
struct RootDirs {
    proc: OnceCell<Option<RootDir>>,
    sys: OnceCell<Option<RootDir>>,
    root: OnceCell<Option<RootDir>>,
}

#[derive(Debug)]
struct RootDir {
    fd: OwnedFd,
    /// The directory is on a procfs mount, whose files the kernel generates.
    procfs: bool,
}

impl Reader {
    pub fn new(roots: Roots) -> Self {
        let replay = is_replayed_tree(&roots);
        Reader::with_replay(roots, replay)
    }

    /// A reader for trees already known to be replayed or live (see [`is_replayed_tree`]),
    /// which saves the lookup of the marker for each sample.
    pub fn with_replay(roots: Roots, replay: bool) -> Self {
        Reader {
            replay,
            roots,
            raw: RawFiles::default(),
            record: true,
            recorded: RefCell::default(),
            scratch: Vec::new(),
            dirs: RootDirs::default(),
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

    /// True when the reader reads back recorded listings and failures.
    pub fn is_replay(&self) -> bool {
        self.replay
    }

    /// Returns the absolute path of `relative` under the root of `tree`.
    pub fn resolve(&self, tree: Tree, relative: &str) -> PathBuf {
        let root = match tree {
            Tree::Proc => &self.roots.procfs,
            Tree::Sys => &self.roots.sysfs,
            Tree::Root => &self.roots.rootfs,
        };
        under(root, relative)
    }

    /// Resolves `relative` and adds the path to the audit of the current thread.
    fn touch(&self, tree: Tree, relative: &str) -> PathBuf {
        let path = self.resolve(tree, relative);
        audit::touch(&path);
        path
    }

    /// Adds the path of `relative` to the audit of the current thread, when one runs.
    fn audit(&self, tree: Tree, relative: &str) {
        if audit::is_running() {
            self.touch(tree, relative);
        }
    }

    /// Returns the descriptor of the root of `tree`, opened on first use, or `None` when the
    /// root cannot be opened as a directory.
    fn root_dir(&self, tree: Tree) -> Option<BorrowedFd<'_>> {
        self.root(tree).map(|dir| dir.fd.as_fd())
    }

    fn root(&self, tree: Tree) -> Option<&RootDir> {
        let cell = match tree {
            Tree::Proc => &self.dirs.proc,
            Tree::Sys => &self.dirs.sys,
            Tree::Root => &self.dirs.root,
        };
        cell.get_or_init(|| open_dir(&self.touch(tree, "")))
            .as_ref()
    }

    /// True when `tree` is read from a live procfs mount. Its files are the kernel's: none is
    /// a FIFO or a device unless root mounted one over it, and opening without blocking and
    /// the size limit keep even that from blocking or filling memory. So the reader does not
    /// check each file's type there, which spares a system call per file.
    fn on_live_procfs(&self, tree: Tree) -> bool {
        tree == Tree::Proc && !self.replay && self.root(tree).is_some_and(|dir| dir.procfs)
    }

    /// True when the procfs root is a live procfs mount, not a fixture or a replayed tree.
    pub fn is_live_procfs(&self) -> bool {
        self.on_live_procfs(Tree::Proc)
    }

    /// Opens `relative` under the root of `tree`, relative to the root's descriptor when it
    /// is open and by the joined path otherwise.
    fn open(&self, tree: Tree, relative: &str, flags: OFlags) -> io::Result<OwnedFd> {
        let flags = flags | OFlags::CLOEXEC;
        let relative = relative.trim_start_matches('/');
        let fd = match self.root_dir(tree) {
            Some(dir) => open_in_root(dir, at_path(relative), flags)?,
            None => rustix::fs::open(self.resolve(tree, relative), flags, Mode::empty())?,
        };
        Ok(fd)
    }

    /// Opens a file for reading without blocking, so that opening a FIFO cannot block.
    fn open_file(&self, tree: Tree, relative: &str) -> io::Result<fs::File> {
        let fd = self.open(tree, relative, OFlags::RDONLY | OFlags::NONBLOCK)?;
        Ok(fs::File::from(fd))
    }

    /// Reads a whole file and records its bytes, or records why it could not be read.
    pub fn read(&mut self, tree: Tree, relative: &str) -> Result<&[u8], ReadError> {
        self.read_as(tree, relative, FileKind::Any)
    }

    /// Reads a procfs file that the kernel prints as one record through `single_open`
    /// (`PID/stat`, `PID/status`, `PID/io`). On a live procfs such a file comes whole in the
    /// first read when it fits the buffer, so a read shorter than the buffer ends it and the
    /// read that would only return end of file is skipped.
    pub fn proc_record(&mut self, relative: &str) -> Result<&[u8], ReadError> {
        self.read_as(Tree::Proc, relative, FileKind::SingleRecord)
    }

    fn read_as(&mut self, tree: Tree, relative: &str, kind: FileKind) -> Result<&[u8], ReadError> {
        let (bytes, _file) = self.read_open(tree, relative, kind)?;
        Ok(self.store(tree, relative, bytes))
    }

    /// Reads a procfs `single_open` file like [`Reader::proc_record`] and returns it still
    /// open, so that a later sample can read it again with [`Reader::reread_record`] without
    /// opening it. Only worth it on a live procfs ([`Reader::is_live_procfs`]).
    pub fn proc_record_kept(&mut self, relative: &str) -> Result<(&[u8], fs::File), ReadError> {
        let (bytes, file) = self.read_open(Tree::Proc, relative, FileKind::SingleRecord)?;
        Ok((self.store(Tree::Proc, relative, bytes), file))
    }

    /// Reads a file kept open by [`Reader::proc_record_kept`] again from its start and records
    /// the bytes under `relative`. The kernel prints the file anew for each read from offset 0.
    /// An error means the process exited (`ESRCH`), and the caller reads by path instead.
    pub fn reread_record(&mut self, relative: &str, file: &fs::File) -> io::Result<&[u8]> {
        self.audit(Tree::Proc, relative);
        let bytes = read_through(&mut self.scratch, |scratch| fill_at(file, scratch))?;
        Ok(self.store(Tree::Proc, relative, bytes))
    }

    /// Returns the bytes recorded for a procfs file by the last read of it in this sample.
    pub fn last_read(&self, relative: &str) -> Option<&[u8]> {
        match self.raw.entries.get(&raw_key(Tree::Proc, relative))? {
            RawEntry::File(bytes) => Some(bytes),
            RawEntry::Link(_) => None,
        }
    }

    /// Opens and reads a file, returning its bytes and the open file.
    fn read_open(
        &mut self,
        tree: Tree,
        relative: &str,
        kind: FileKind,
    ) -> Result<(Vec<u8>, fs::File), ReadError> {
        self.audit(tree, relative);
        let live = self.on_live_procfs(tree);
        let ends = if live && kind == FileKind::SingleRecord {
            End::AtShortRead
        } else {
            End::AtZeroRead
        };
        self.open_file(tree, relative)
            .and_then(|mut file| {
                let bytes = read_file_with(&mut file, &mut self.scratch, !live, ends)?;
                Ok((bytes, file))
            })
            .map_err(|e| self.failure(tree, relative, &e))
    }

    /// Records `bytes` as the contents of `relative` and returns them.
    fn store(&mut self, tree: Tree, relative: &str, bytes: Vec<u8>) -> &[u8] {
        if !self.record {
            self.raw.entries.clear();
        }
        let entry = match self.raw.entries.entry(raw_key(tree, relative)) {
            Entry::Vacant(vacant) => vacant.insert(RawEntry::File(bytes)),
            Entry::Occupied(mut occupied) => {
                occupied.insert(RawEntry::File(bytes));
                occupied.into_mut()
            }
        };
        match entry {
            RawEntry::File(bytes) => bytes,
            RawEntry::Link(_) => unreachable!("a file entry was stored above"),
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
        self.audit(tree, relative);
        let mut bytes = Vec::new();
        self.open_file(tree, relative)
            .and_then(|file| {
                check_regular(&file)?;
                file.take(max_bytes).read_to_end(&mut bytes)
            })
            .map_err(|e| self.failure(tree, relative, &e))?;
        Ok(bytes)
    }

    /// Reads a symbolic link's target and records it.
    pub fn read_link(&mut self, tree: Tree, relative: &str) -> Result<PathBuf, ReadError> {
        self.audit(tree, relative);
        let target = self
            .link_target(tree, relative)
            .map_err(|e| self.failure(tree, relative, &e))?;
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
            return names;
        }
        self.audit(tree, relative);
        let mut names = self
            .dir_names(tree, relative)
            .map_err(|e| self.failure(tree, relative, &e))?;
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
        self.audit(tree, relative);
        let relative = relative.trim_start_matches('/');
        match self.root_dir(tree) {
            Some(dir) => rustix::fs::statat(dir, at_path(relative), AtFlags::empty()).is_ok(),
            None => self.resolve(tree, relative).exists(),
        }
    }

    // NOTE: unlike opens, link reads and existence checks follow symbolic links in the
    // leading directories even out of the root. They return only a link's target or a yes/no.
    fn link_target(&self, tree: Tree, relative: &str) -> io::Result<PathBuf> {
        let relative = relative.trim_start_matches('/');
        let target = match self.root_dir(tree) {
            Some(dir) => rustix::fs::readlinkat(dir, at_path(relative), Vec::new())?,
            None => rustix::fs::readlink(self.resolve(tree, relative), Vec::new())?,
        };
        Ok(PathBuf::from(OsString::from_vec(target.into_bytes())))
    }

    /// The entry names of a directory, without `.` and `..`, in the order the kernel returns
    /// them. A name that is not UTF-8 is kept lossily.
    fn dir_names(&self, tree: Tree, relative: &str) -> io::Result<Vec<String>> {
        let fd = self.open(tree, relative, OFlags::RDONLY | OFlags::DIRECTORY)?;
        let mut names = Vec::new();
        for entry in rustix::fs::Dir::new(fd)? {
            let entry = entry?;
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            names.push(match std::str::from_utf8(name) {
                Ok(name) => name.to_string(),
                Err(_) => String::from_utf8_lossy(name).into_owned(),
            });
        }
        Ok(names)
    }

    /// Hands over what was recorded and starts a new record.
    pub fn take_raw(&mut self) -> RawFiles {
        let mut raw = std::mem::take(&mut self.raw);
        raw.entries.append(&mut self.recorded.borrow_mut());
        raw
    }

    /// Returns the listing recorded for a directory of a replayed tree: `None` when there is
    /// none, an error when the recorded listing cannot be read (a FIFO, a device, a file over
    /// [`MAX_FILE_BYTES`]).
    fn recorded_listing(
        &self,
        tree: Tree,
        relative: &str,
    ) -> Option<Result<Vec<String>, ReadError>> {
        if !self.replay {
            return None;
        }
        let listing = listing_path(relative);
        self.audit(tree, &listing);
        let bytes = match self.read_record_file(tree, &listing) {
            Ok(bytes) => bytes,
            Err(error) if classify(&error) == GapReason::Vanished => return None,
            Err(error) => return Some(Err(ReadError::new(tree, &listing, &error))),
        };
        if self.record {
            let key = raw_key(tree, &listing_path(relative));
            let entry = RawEntry::File(bytes.clone());
            self.recorded.borrow_mut().insert(key, entry);
        }
        Some(Ok(decode_listing(&bytes)))
    }

    /// Reads a `.listing` or `.failed` record of a replayed tree as files are read: opened
    /// inside the root, regular files only, at most [`MAX_FILE_BYTES`].
    fn read_record_file(&self, tree: Tree, relative: &str) -> io::Result<Vec<u8>> {
        let mut file = self.open_file(tree, relative)?;
        read_file_with(&mut file, &mut Vec::new(), true, End::AtZeroRead)
    }

    /// Turns an I/O error into a [`ReadError`]. A failure other than a vanished file is
    /// recorded; in a replayed tree a missing file returns the failure recorded for it.
    fn failure(&self, tree: Tree, relative: &str, error: &io::Error) -> ReadError {
        let read_error = ReadError::new(tree, relative, error);
        // A vanished file leaves no record, and a live tree has none to look up.
        if read_error.reason == GapReason::Vanished && !self.replay {
            return read_error;
        }
        let Some(failed) = failure_path(relative) else {
            return read_error;
        };
        if read_error.reason == GapReason::Vanished {
            return self
                .recorded_failure(tree, relative, &failed)
                .unwrap_or(read_error);
        }

        if self.record {
            let key = raw_key(tree, &failed);
            let entry = RawEntry::File(encode_failure(&read_error));
            self.recorded.borrow_mut().insert(key, entry);
        }
        read_error
    }

    fn recorded_failure(&self, tree: Tree, relative: &str, failed: &str) -> Option<ReadError> {
        self.audit(tree, failed);
        // A record that is not a readable regular file is ignored like a missing one.
        let bytes = self.read_record_file(tree, failed).ok()?;
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

/// True when the procfs root of `roots` was written from raw evidence: it has a [`LISTING`].
pub fn is_replayed_tree(roots: &Roots) -> bool {
    let marker = roots.procfs.join(LISTING);
    audit::touch(&marker);
    marker.is_file()
}

/// `<tree prefix>/<relative>`, built without the formatting machinery because every
/// recorded entry needs one.
fn raw_key(tree: Tree, relative: &str) -> String {
    let (prefix, relative) = (tree.prefix(), relative.trim_start_matches('/'));
    let mut key = String::with_capacity(prefix.len() + 1 + relative.len());
    key.push_str(prefix);
    key.push('/');
    key.push_str(relative);
    key
}

/// The largest file a reader accepts. The biggest real procfs files (a `mountinfo` with many
/// thousands of mounts, a command line near `ARG_MAX`) stay far below it.
pub const MAX_FILE_BYTES: usize = 16 << 20;

/// Reads a whole file like `fs::read`, in reads of at least 4 KiB. procfs and sysfs files
/// report a size of 0, for which `fs::read` starts with 32-byte reads: five read calls for a
/// 290-byte `PID/stat` line, where this makes two (the data, then end of file).
///
/// Only regular files are read, and at most [`MAX_FILE_BYTES`]: a FIFO or a device planted in
/// a procfs tree is rejected instead of blocking the capture or filling memory. The file is
/// opened with `O_NONBLOCK`, so opening a FIFO cannot block either.
pub fn read_whole(path: &Path) -> io::Result<Vec<u8>> {
    let mut file = open_regular(path)?;
    let mut bytes = vec![0; READ_CHUNK];
    let len = fill(&mut file, &mut bytes, End::AtZeroRead)?;
    bytes.truncate(len);
    // Recorded entries live as long as the sample, so they keep no spare capacity.
    bytes.shrink_to_fit();
    Ok(bytes)
}

/// Like [`read_whole`] on a file already opened, reading into `scratch`, a buffer kept between
/// calls, and returning a copy of the exact size. A reader makes many small reads per sample;
/// this spares each one a zeroed 4 KiB allocation and the shrink after it.
fn read_file_with(
    file: &mut fs::File,
    scratch: &mut Vec<u8>,
    check_type: bool,
    ends: End,
) -> io::Result<Vec<u8>> {
    if check_type {
        check_regular(file)?;
    }
    read_through(scratch, |scratch| fill(file, scratch, ends))
}

/// Runs a read loop on `scratch`, grown to at least [`READ_CHUNK`], and returns a copy of the
/// bytes read at their exact size.
fn read_through(
    scratch: &mut Vec<u8>,
    fill: impl FnOnce(&mut Vec<u8>) -> io::Result<usize>,
) -> io::Result<Vec<u8>> {
    if scratch.len() < READ_CHUNK {
        scratch.resize(READ_CHUNK, 0);
    }
    let len = fill(scratch)?;
    Ok(scratch[..len].to_vec())
}

/// The kind of file a reader reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileKind {
    Any,
    /// A procfs file printed as one `single_open` record.
    SingleRecord,
}

/// The condition a read loop takes as the end of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// A read returns 0 bytes: true of every file.
    AtZeroRead,
    /// A read returns fewer bytes than requested: true of a procfs `single_open` file, whose
    /// `seq_file` fills the caller's buffer as far as the record goes. Not true of procfs
    /// files printed as many records (`net/tcp`, `mountinfo`), which stop a read where
    /// the kernel's own page-sized buffer fills.
    AtShortRead,
}

/// The size of the first read of a file.
const READ_CHUNK: usize = 4096;

/// Opens `path` without blocking and rejects anything but a regular file.
fn open_regular(path: &Path) -> io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;

    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    check_regular(&file)?;
    Ok(file)
}

fn check_regular(file: &fs::File) -> io::Result<()> {
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    Ok(())
}

/// The access mode a directory is opened with only to resolve paths through it or to call
/// statvfs on it. On Linux `O_PATH` needs only search rights on the directory.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) const DIR_ACCESS: OFlags = OFlags::PATH;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) const DIR_ACCESS: OFlags = OFlags::RDONLY;

/// Opens `path` as the base of opens with [`open_in_root`], as a reader opens its roots.
#[cfg(target_os = "linux")]
pub(crate) fn open_root(path: &Path) -> Option<OwnedFd> {
    open_dir(path).map(|dir| dir.fd)
}

/// Opens a root directory for use as the base of relative opens.
fn open_dir(path: &Path) -> Option<RootDir> {
    let flags = DIR_ACCESS | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let fd = rustix::fs::open(path, flags, Mode::empty()).ok()?;
    let procfs = is_procfs(&fd);
    Some(RootDir { fd, procfs })
}

/// True when `fd` is a directory on a procfs mount.
#[cfg(any(target_os = "linux", target_os = "android"))]
// `f_type` is 64-bit on x86_64 but 32-bit on some other targets, so the cast is needed there.
#[allow(clippy::unnecessary_cast)]
fn is_procfs(fd: &OwnedFd) -> bool {
    rustix::fs::fstatfs(fd).is_ok_and(|stat| stat.f_type as i64 == PROC_SUPER_MAGIC)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn is_procfs(_fd: &OwnedFd) -> bool {
    false
}

/// `PROC_SUPER_MAGIC` from `linux/magic.h`.
#[cfg(any(target_os = "linux", target_os = "android"))]
const PROC_SUPER_MAGIC: i64 = 0x9fa0;

/// Opens `path` below `dir` as if `dir` were the filesystem root, where the kernel offers
/// `openat2` (Linux 5.6 and later): `..` stops at `dir`, an absolute symbolic link resolves
/// under `dir`, and magic links (`PID/fd/N`, `PID/exe`) are not followed. So a crafted tree,
/// such as raw evidence from an untrusted host, cannot make a capture read files outside its
/// roots, and `<rootfs>/etc/passwd` linked to `/usr/...` resolves in the host's tree. Without
/// `openat2` (older kernels, or a seccomp filter that rejects it) it opens with `openat`.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn open_in_root(dir: BorrowedFd<'_>, path: &str, flags: OFlags) -> io::Result<OwnedFd> {
    use rustix::fs::ResolveFlags;
    use std::sync::OnceLock;

    static HAS_OPENAT2: OnceLock<bool> = OnceLock::new();
    let resolve = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
    let has_openat2 = *HAS_OPENAT2.get_or_init(|| {
        let probe = rustix::fs::openat2(dir, ".", OFlags::PATH, Mode::empty(), resolve);
        !matches!(
            probe,
            Err(rustix::io::Errno::NOSYS | rustix::io::Errno::PERM)
        )
    });
    if !has_openat2 {
        return Ok(rustix::fs::openat(dir, path, flags, Mode::empty())?);
    }
    // The kernel returns EAGAIN when a rename raced with the lookup of `..`.
    let mut attempts = 0;
    loop {
        match rustix::fs::openat2(dir, path, flags, Mode::empty(), resolve) {
            Err(rustix::io::Errno::AGAIN) if attempts < 3 => attempts += 1,
            result => return Ok(result?),
        }
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn open_in_root(dir: BorrowedFd<'_>, path: &str, flags: OFlags) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(dir, path, flags, Mode::empty())?)
}

/// Returns the path to open relative to a root's descriptor: `.` for the root itself.
fn at_path(relative: &str) -> &str {
    if relative.is_empty() {
        "."
    } else {
        relative
    }
}

/// Reads `file` to its end into `buffer`, doubling it up to [`MAX_FILE_BYTES`] when full, and
/// returns the number of bytes read.
fn fill(file: &mut fs::File, buffer: &mut Vec<u8>, ends: End) -> io::Result<usize> {
    fill_by(buffer, ends, |chunk, _offset| file.read(chunk))
}

/// Reads a `single_open` procfs file from offset 0 into `buffer` with positioned reads, as
/// [`fill`] does with [`End::AtShortRead`], and returns the number of bytes read.
fn fill_at(file: &fs::File, buffer: &mut Vec<u8>) -> io::Result<usize> {
    use std::os::unix::fs::FileExt;

    fill_by(buffer, End::AtShortRead, |chunk, offset| {
        file.read_at(chunk, offset as u64)
    })
}

/// Runs the read loop of [`fill`] and [`fill_at`]. `read` fills its slice with the file's
/// bytes from the given offset on.
fn fill_by(
    buffer: &mut Vec<u8>,
    ends: End,
    mut read: impl FnMut(&mut [u8], usize) -> io::Result<usize>,
) -> io::Result<usize> {
    let mut len = 0;
    loop {
        if len == buffer.len() {
            if len >= MAX_FILE_BYTES {
                if at_end(&mut read, len)? {
                    return Ok(len);
                }
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("larger than {} MiB", MAX_FILE_BYTES >> 20),
                ));
            }
            buffer.resize((len * 2).min(MAX_FILE_BYTES), 0);
        }
        let requested = buffer.len() - len;
        match read(&mut buffer[len..], len) {
            Ok(0) => return Ok(len),
            Ok(n) if n < requested && ends == End::AtShortRead => return Ok(len + n),
            Ok(n) => len += n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
}

/// True when the next read, at `offset`, returns end of file.
fn at_end(
    read: &mut impl FnMut(&mut [u8], usize) -> io::Result<usize>,
    offset: usize,
) -> io::Result<bool> {
    let mut probe = [0u8; 1];
    loop {
        match read(&mut probe, offset) {
            Ok(n) => return Ok(n == 0),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
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
/// calls it, so an audit started there records all of its paths.
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

    /// True while an audit runs on this thread.
    pub fn is_running() -> bool {
        PATHS.with(|paths| paths.borrow().is_some())
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

/// Joins a relative path onto a root the way [`Reader::resolve`] does. Same as `Path::join`,
/// in one allocation instead of a copy of the root that then grows.
pub fn under(root: &Path, relative: &str) -> PathBuf {
    let relative = relative.trim_start_matches('/');
    let mut path = PathBuf::with_capacity(root.as_os_str().len() + 1 + relative.len());
    path.push(root);
    path.push(relative);
    path
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
    fn fifo_is_rejected_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("stat");
        let path = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: `path` is a valid NUL-terminated string for the duration of the call.
        assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);

        let error = read_whole(&fifo).unwrap_err();
        assert_eq!(classify(&error), GapReason::Invalid);
        assert!(error.to_string().contains("not a regular file"), "{error}");
    }

    #[test]
    fn device_is_rejected() {
        let error = read_whole(Path::new("/dev/zero")).unwrap_err();
        assert_eq!(classify(&error), GapReason::Invalid);
    }

    #[test]
    fn einval_from_kernel_is_unsupported() {
        let error = io::Error::from_raw_os_error(libc::EINVAL);
        assert_eq!(classify(&error), GapReason::Unsupported);
    }

    #[test]
    fn file_over_limit_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cmdline");
        fs::write(&path, vec![b'a'; MAX_FILE_BYTES + 1]).unwrap();
        let error = read_whole(&path).unwrap_err();
        assert_eq!(classify(&error), GapReason::Invalid);

        fs::write(&path, vec![b'a'; MAX_FILE_BYTES]).unwrap();
        assert_eq!(read_whole(&path).unwrap().len(), MAX_FILE_BYTES);
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

    fn proc_roots(dir: &Path) -> Roots {
        Roots {
            procfs: dir.to_path_buf(),
            ..Roots::default()
        }
    }

    /// Writes what a reader recorded as files and links under `dir`, as the bundle's tar does.
    fn write_tree(raw: &RawFiles, dir: &Path) {
        for (key, entry) in &raw.entries {
            let path = dir.join(key);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            match entry {
                RawEntry::File(bytes) => fs::write(&path, bytes).unwrap(),
                RawEntry::Link(target) => std::os::unix::fs::symlink(target, &path).unwrap(),
            }
        }
    }

    #[test]
    fn listing_is_recorded_and_read_back() {
        let live = tempfile::tempdir().unwrap();
        fs::create_dir_all(live.path().join("7/fd")).unwrap();
        std::os::unix::fs::symlink("pipe:[1]", live.path().join("7/fd/0")).unwrap();
        std::os::unix::fs::symlink("/dev/null", live.path().join("7/fd/1")).unwrap();
        let mut reader = Reader::new(proc_roots(live.path()));
        reader.list(Tree::Proc, "").unwrap();
        assert_eq!(reader.list(Tree::Proc, "7/fd").unwrap(), ["0", "1"]);
        // Descriptor 1 closes before its link is read, so only 0 is recorded.
        reader.read_link(Tree::Proc, "7/fd/0").unwrap();
        let raw = reader.take_raw();
        assert_eq!(
            raw.entries.get("proc/7/fd/.listing"),
            Some(&RawEntry::File(b"0\x001\x00".to_vec()))
        );

        let replay = tempfile::tempdir().unwrap();
        write_tree(&raw, replay.path());
        let reader = Reader::new(proc_roots(&replay.path().join("proc")));
        assert_eq!(reader.list(Tree::Proc, "7/fd").unwrap(), ["0", "1"]);
        assert_eq!(reader.list(Tree::Proc, "").unwrap(), ["7"]);
    }

    #[test]
    fn failed_read_is_recorded_and_read_back() {
        let error = io::Error::from_raw_os_error(libc::EACCES);
        let live = tempfile::tempdir().unwrap();
        let reader = Reader::new(proc_roots(live.path()));
        reader.list(Tree::Proc, "").unwrap();
        let failed = reader.failure(Tree::Proc, "9/io", &error);
        assert_eq!(failed.reason, GapReason::PermissionDenied);
        let mut reader = reader;
        let raw = reader.take_raw();
        assert!(raw.entries.contains_key("proc/9/.failed/io"));

        let replay = tempfile::tempdir().unwrap();
        write_tree(&raw, replay.path());
        let mut reader = Reader::new(proc_roots(&replay.path().join("proc")));
        let read_back = reader.proc("9/io").unwrap_err();
        assert_eq!(read_back.reason, GapReason::PermissionDenied);
        assert_eq!(read_back.path, "9/io");
        assert_eq!(read_back.detail, failed.detail);
        let missing = reader.proc("9/stat").unwrap_err();
        assert_eq!(missing.reason, GapReason::Vanished);
    }

    fn make_fifo(path: &Path) {
        let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: `c_path` is a valid NUL-terminated string for the duration of the call.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    }

    #[test]
    fn fifo_listing_in_replay_is_invalid() {
        let replay = tempfile::tempdir().unwrap();
        fs::create_dir_all(replay.path().join("7/fd")).unwrap();
        fs::write(replay.path().join(LISTING), b"7\0").unwrap();
        make_fifo(&replay.path().join("7/fd").join(LISTING));
        let reader = Reader::new(proc_roots(replay.path()));
        assert!(reader.is_replay());

        let error = reader.list(Tree::Proc, "7/fd").unwrap_err();
        assert_eq!(error.reason, GapReason::Invalid);
        assert_eq!(error.path, "7/fd/.listing");
        assert_eq!(reader.list(Tree::Proc, "").unwrap(), ["7"]);
    }

    #[test]
    fn linked_listing_in_replay_stays_in_root() {
        let base = tempfile::tempdir().unwrap();
        fs::write(base.path().join("outside"), b"SECRET\0").unwrap();
        let replay = base.path().join("proc");
        fs::create_dir_all(replay.join("7/fd")).unwrap();
        fs::write(replay.join(LISTING), b"7\0").unwrap();
        fs::write(replay.join("7/fd/0"), b"").unwrap();
        let outside = base.path().join("outside");
        std::os::unix::fs::symlink(&outside, replay.join("7/fd").join(LISTING)).unwrap();
        let reader = Reader::new(proc_roots(&replay));

        assert_eq!(reader.list(Tree::Proc, "7/fd").unwrap(), ["0"]);
    }

    #[test]
    fn fifo_failure_record_in_replay_is_ignored() {
        let replay = tempfile::tempdir().unwrap();
        fs::create_dir_all(replay.path().join("9").join(FAILED)).unwrap();
        fs::write(replay.path().join(LISTING), b"9\0").unwrap();
        make_fifo(&replay.path().join("9").join(FAILED).join("io"));
        let mut reader = Reader::new(proc_roots(replay.path()));

        let error = reader.proc("9/io").unwrap_err();
        assert_eq!(error.reason, GapReason::Vanished);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn symlinks_do_not_leave_the_root() {
        let base = tempfile::tempdir().unwrap();
        let outside = base.path().join("outside.txt");
        fs::write(&outside, b"outside").unwrap();
        let root = base.path().join("proc");
        fs::create_dir_all(root.join("1")).unwrap();
        fs::create_dir_all(root.join("etc")).unwrap();
        fs::write(root.join("etc/inside"), b"inside").unwrap();
        std::os::unix::fs::symlink(&outside, root.join("1/cmdline")).unwrap();
        std::os::unix::fs::symlink("../../outside.txt", root.join("1/status")).unwrap();
        std::os::unix::fs::symlink("/etc/inside", root.join("1/environ")).unwrap();
        std::os::unix::fs::symlink(base.path(), root.join("2")).unwrap();
        let mut reader = Reader::new(proc_roots(&root));

        assert_eq!(
            reader.proc("1/cmdline").unwrap_err().reason,
            GapReason::Vanished
        );
        assert_eq!(
            reader.proc("1/status").unwrap_err().reason,
            GapReason::Vanished
        );
        // An absolute link resolves under the root, as it would on the host it came from.
        assert_eq!(reader.proc("1/environ").unwrap(), b"inside");
        assert!(reader.list(Tree::Proc, "2").is_err());
    }

    #[test]
    fn short_read_end_reads_large_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        let bytes: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        fs::write(&path, &bytes).unwrap();
        let mut file = fs::File::open(&path).unwrap();
        let mut buffer = vec![0; READ_CHUNK];

        let len = fill(&mut file, &mut buffer, End::AtShortRead).unwrap();
        assert_eq!(&buffer[..len], &bytes[..]);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn live_procfs_single_record_files_are_read_whole() {
        let mut reader = Reader::new(Roots::default());
        assert!(reader.on_live_procfs(Tree::Proc));
        assert!(!reader.on_live_procfs(Tree::Sys));

        let status = String::from_utf8(reader.proc_record("self/status").unwrap().to_vec());
        let status = status.unwrap();
        assert!(status.starts_with("Name:"), "{status}");
        assert!(status.contains("\nnonvoluntary_ctxt_switches:"), "{status}");
        assert!(status.ends_with('\n'));

        let stat = reader.proc_record("self/stat").unwrap();
        let stat = std::str::from_utf8(stat).unwrap();
        let after_name = &stat[stat.rfind(')').unwrap() + 2..];
        // 52 fields since Linux 3.5; the name and the pid are the first two.
        assert!(after_name.split_whitespace().count() >= 50, "{stat}");
        assert!(stat.ends_with('\n'));
    }

    #[test]
    fn fixture_tree_is_not_a_live_procfs() {
        let dir = tempfile::tempdir().unwrap();
        let reader = Reader::new(proc_roots(dir.path()));
        assert!(!reader.on_live_procfs(Tree::Proc));
    }

    #[test]
    fn fifo_is_rejected_through_the_reader() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("1")).unwrap();
        let fifo = dir.path().join("1/stat");
        let path = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: `path` is a valid NUL-terminated string for the duration of the call.
        assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);

        let mut reader = Reader::new(proc_roots(dir.path()));
        let error = reader.proc_record("1/stat").unwrap_err();
        assert_eq!(error.reason, GapReason::Invalid);
    }

    #[test]
    fn missing_root_fails_each_read_as_vanished() {
        let dir = tempfile::tempdir().unwrap();
        let mut reader = Reader::new(proc_roots(&dir.path().join("absent")));
        assert_eq!(
            reader.proc("1/stat").unwrap_err().reason,
            GapReason::Vanished
        );
        assert_eq!(
            reader.list(Tree::Proc, "").unwrap_err().reason,
            GapReason::Vanished
        );
        assert!(!reader.exists(Tree::Proc, "1"));
    }

    #[test]
    fn vanished_read_is_not_recorded() {
        let live = tempfile::tempdir().unwrap();
        let mut reader = Reader::new(proc_roots(live.path()));
        assert!(reader.proc("9/io").is_err());
        assert!(reader.take_raw().is_empty());
    }

    #[test]
    fn audit_lists_touched_paths() {
        let live = tempfile::tempdir().unwrap();
        audit::start();
        let mut reader = Reader::new(proc_roots(live.path()));
        let _ = reader.proc("1/stat");
        let touched = audit::finish();
        assert_eq!(
            touched,
            [
                live.path().join(LISTING),
                live.path().join("1/stat"),
                live.path().to_path_buf()
            ]
        );
        audit::touch(Path::new("/not/recorded"));
        assert!(audit::finish().is_empty());
    }

    /// A whole capture of a fixture, context included, touches nothing outside its roots.
    #[cfg(target_os = "linux")]
    #[test]
    fn capture_touches_only_its_roots() {
        let roots = crate::linux::context::fixture::roots("small");
        let options = crate::CaptureOptions {
            roots: roots.clone(),
            interval: std::time::Duration::ZERO,
            ..crate::CaptureOptions::default()
        };
        audit::start();
        let collector = crate::Collector::new(options).unwrap();
        let capture = collector.capture();
        let touched = audit::finish();

        assert!(!capture.snapshot.processes.list.is_empty());
        let under_roots = |path: &PathBuf| {
            [&roots.procfs, &roots.sysfs, &roots.rootfs]
                .iter()
                .any(|root| path.starts_with(root))
        };
        let outside: Vec<_> = touched.iter().filter(|p| !under_roots(p)).collect();
        assert!(outside.is_empty(), "paths outside the roots: {outside:?}");
        for own in ["self", "1/stat", "4242/fd"] {
            assert!(touched.contains(&roots.procfs.join(own)), "{own} not read");
        }
        assert!(touched.contains(&roots.rootfs.join("etc/passwd")));
        // statvfs of the mounts `/` and `/srv/data` in the fixture's mount table.
        assert!(touched.contains(&roots.rootfs));
        assert!(touched.contains(&roots.rootfs.join("srv/data")));
    }
}
