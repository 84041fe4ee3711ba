//! The walk over every `/proc/PID` directory that fills a [`ProcessSample`].

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs;
use std::sync::{Mutex, OnceLock};

use super::fields;
use super::stat::{self, StatLine};
use super::tally::GapTally;
use super::{ProcessEntry, ProcessSample, StatFields};
use crate::gaps::GapLog;
use crate::linux::context::parse_passwd;
use crate::linux::Context;
use crate::model::GapReason;
use crate::raw::{ReadError, Reader, Tree};
use crate::Scope;

/// The process exited while it was being read.
struct Vanished;

/// The files of a pid directory that the kernel prints as one `single_open` record, read with
/// [`Reader::proc_record`].
const SINGLE_RECORD_FILES: [&str; 3] = ["stat", "status", "io"];

/// The uid, command line and name to show of one process.
#[derive(Debug, Clone)]
struct Identity {
    uid: Option<u32>,
    cmdline: Option<String>,
    name: String,
}

/// The identities read by earlier samples, keyed by (pid, start ticks) so that a reused pid
/// never gets the old process's identity.
///
/// A counters sample (the history recorder's, every few seconds) takes the uid and command
/// line of known processes from here instead of reading `status` and `cmdline` again, which
/// cuts its file reads to one per known process. A full sample reads them all again, so no
/// snapshot rests on a cached identity; a command line rewritten by the process itself is seen
/// at the next full sample.
#[derive(Debug, Default)]
pub struct IdentityCache {
    entries: Mutex<HashMap<(i32, u64), Identity>>,
    /// Each known process's `PID/stat`, kept open between counters samples on a live procfs.
    stat_files: Mutex<HashMap<i32, fs::File>>,
}

/// Returns how many `PID/stat` files counters samples keep open: a quarter of the open-file
/// limit, and at most 4096. Each costs the kernel one open file and its read buffer (about 4 KiB),
/// and saves an open and a close, with the pid lookup, in every counters sample.
fn open_stat_files_max() -> usize {
    static MAX: OnceLock<usize> = OnceLock::new();
    *MAX.get_or_init(open_files_quarter)
}

fn open_files_quarter() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable rlimit for the duration of the call.
    let soft = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX)
    } else {
        1024
    };
    (soft / 4).min(4096)
}

/// True while `PID/stat` exists, which separates a file missing from a live process from the
/// process exiting.
pub(crate) fn has_stat(r: &Reader, pid: i32) -> bool {
    r.exists(Tree::Proc, &format!("{pid}/stat"))
}

/// Writes `PID/file` into `path`, replacing what it held.
fn write_path(path: &mut String, pid: i32, file: &str) {
    path.clear();
    let _ = write!(path, "{pid}/{file}");
}

/// State of one walk over the pid directories.
struct Walk<'c> {
    ctx: &'c Context,
    scope: Scope,
    /// Reused buffer for `PID/file` paths.
    path: String,
    tally: GapTally,
    /// True while the current process had a field denied.
    denied: bool,
    /// Some `PID/stat` was denied, as with `hidepid=1`.
    stat_denied: bool,
    /// Processes whose socket links were skipped for the deadline.
    sockets_skipped: u32,
    /// Identities from earlier samples; empty in a full sample.
    known: HashMap<(i32, u64), Identity>,
    /// Identities of this sample, for the next one.
    fresh: HashMap<(i32, u64), Identity>,
    /// `PID/stat` files left open by the last counters sample, empty unless this one keeps
    /// files open too.
    open_stat_files: HashMap<i32, fs::File>,
    /// `PID/stat` files to leave open for the next counters sample, at most
    /// `open_stat_files_max`; `None` when this sample leaves none open.
    next_stat_files: Option<HashMap<i32, fs::File>>,
    open_stat_files_max: usize,
}

pub fn read(r: &mut Reader, ctx: &Context, scope: Scope, gaps: &mut GapLog) -> ProcessSample {
    read_cached(r, ctx, scope, gaps, &IdentityCache::default())
}

/// Like [`read`], with the identities of known processes from `cache` in a counters sample.
pub fn read_cached(
    r: &mut Reader,
    ctx: &Context,
    scope: Scope,
    gaps: &mut GapLog,
    cache: &IdentityCache,
) -> ProcessSample {
    let boot_time_secs = ctx.kernel_stat(r, gaps).and_then(|s| s.boot_time_secs);
    let Some(pids) = list_pids(r, gaps) else {
        return ProcessSample {
            boot_time_secs,
            ..ProcessSample::default()
        };
    };

    let mut sample = ProcessSample {
        entries: Vec::with_capacity(pids.len()),
        boot_time_secs,
        self_pid: ctx.self_pid,
        ..ProcessSample::default()
    };
    let total_threads = match scope {
        Scope::Full => {
            sample.self_pid = read_self_pid(r).or(ctx.self_pid);
            sample.users = read_users(r, gaps);
            ctx.load_average(r, gaps).map(|load| load.total_threads)
        }
        Scope::Counters => None,
    };

    let mut entries = cache.entries.lock().unwrap_or_else(|e| e.into_inner());
    let mut walk = Walk::new(ctx, scope);
    if scope == Scope::Counters {
        walk.known = std::mem::take(&mut *entries);
    }
    // Counters samples of a live procfs keep each `PID/stat` open and read it again with a
    // positioned read in the next one. A file whose process exited fails and is dropped.
    let mut stat_files = cache.stat_files.lock().unwrap_or_else(|e| e.into_inner());
    if scope == Scope::Counters && r.is_live_procfs() {
        walk.open_stat_files = std::mem::take(&mut *stat_files);
        walk.next_stat_files = Some(HashMap::with_capacity(walk.open_stat_files.len()));
        walk.open_stat_files_max = open_stat_files_max();
    }
    for &pid in &pids {
        walk.read_process(r, pid, &mut sample);
    }
    *entries = std::mem::take(&mut walk.fresh);
    drop(entries);
    if let Some(next) = walk.next_stat_files.take() {
        *stat_files = next;
    }
    drop(stat_files);

    sample.complete = walk.is_complete(&pids, &sample, total_threads, gaps);
    walk.record_gaps(gaps);
    sample
}

/// Lists the numeric entries of the procfs root, ordered by pid.
fn list_pids(r: &Reader, gaps: &mut GapLog) -> Option<Vec<i32>> {
    let names = gaps.value("processes", r.list(Tree::Proc, ""))?;
    let mut pids: Vec<i32> = names.iter().filter_map(|name| name.parse().ok()).collect();
    pids.sort_unstable();
    Some(pids)
}

/// Reads the pid that the procfs `self` link names, through the reader so that the link is
/// part of the raw evidence.
fn read_self_pid(r: &mut Reader) -> Option<i32> {
    let target = r.read_link(Tree::Proc, "self").ok()?;
    target.file_name()?.to_str()?.parse().ok()
}

/// Reads `<rootfs>/etc/passwd` for this sample, so that it is in the raw evidence.
fn read_users(r: &mut Reader, gaps: &mut GapLog) -> Option<HashMap<u32, String>> {
    let bytes = gaps.value("processes", r.read(Tree::Root, "etc/passwd"))?;
    Some(parse_passwd(&String::from_utf8_lossy(bytes)))
}

impl<'c> Walk<'c> {
    fn new(ctx: &'c Context, scope: Scope) -> Self {
        Walk {
            ctx,
            scope,
            path: String::new(),
            tally: GapTally::default(),
            denied: false,
            stat_denied: false,
            sockets_skipped: 0,
            known: HashMap::new(),
            fresh: HashMap::new(),
            open_stat_files: HashMap::new(),
            next_stat_files: None,
            open_stat_files_max: 0,
        }
    }

    /// Reads one process and adds it to the sample, or counts it as vanished.
    fn read_process(&mut self, r: &mut Reader, pid: i32, sample: &mut ProcessSample) {
        self.denied = false;
        match self.read_entry(r, pid, sample) {
            Ok(entry) => {
                if self.denied {
                    sample.unreadable += 1;
                }
                sample.entries.push(entry);
            }
            Err(Vanished) => sample.vanished += 1,
        }
    }

    fn read_entry(
        &mut self,
        r: &mut Reader,
        pid: i32,
        sample: &mut ProcessSample,
    ) -> Result<ProcessEntry, Vanished> {
        let mut entry = ProcessEntry {
            pid,
            ..ProcessEntry::default()
        };
        let Some(bytes) = self.read_stat(r, pid)? else {
            self.stat_denied |= self.denied;
            return Ok(entry);
        };
        let Some(line) = stat::parse(bytes) else {
            self.tally
                .add("stat", GapReason::Invalid, pid, "unparsable stat line");
            return Ok(entry);
        };
        entry.stat = Some(stat_fields(&line));
        entry.name = fields::lossy_name(line.comm);

        // The stat line borrows the reader's buffer; keep the name bytes for the steps below.
        let comm = line.comm.to_vec();
        let kernel_thread = line.is_kernel_thread();
        let key = (pid, entry.stat.map_or(0, |stat| stat.start_ticks));
        if let Some(known) = self.known.remove(&key) {
            entry.uid = known.uid;
            entry.cmdline = known.cmdline.clone();
            entry.name = known.name.clone();
            self.fresh.insert(key, known);
            return Ok(entry);
        }
        let identity = self.read_identity(r, pid, &comm, kernel_thread, &mut entry);
        if identity.is_ok() && !self.denied {
            let known = Identity {
                uid: entry.uid,
                cmdline: entry.cmdline.clone(),
                name: entry.name.clone(),
            };
            self.fresh.insert(key, known);
        }
        if self.scope == Scope::Counters {
            // Counters samples read the uid and command line too, so the history's top
            // processes name their user and command. Their CPU times count even when these
            // files are gone.
            return Ok(entry);
        }
        identity?;
        entry.io = self.read_io(r, pid)?;
        entry.open_fds = self.read_fds(r, pid, sample)?;
        Ok(entry)
    }

    /// Reads the uid and the command line into `entry`, and the name to show.
    fn read_identity(
        &mut self,
        r: &mut Reader,
        pid: i32,
        comm: &[u8],
        kernel_thread: bool,
        entry: &mut ProcessEntry,
    ) -> Result<(), Vanished> {
        entry.uid = self.read_uid(r, pid)?;
        entry.name = self.read_cmdline(r, pid, comm, kernel_thread, entry)?;
        Ok(())
    }

    fn read_uid(&mut self, r: &mut Reader, pid: i32) -> Result<Option<u32>, Vanished> {
        let Some(bytes) = self.read_file(r, pid, "status")? else {
            return Ok(None);
        };
        let uid = fields::effective_uid(bytes);
        if uid.is_none() {
            self.tally
                .add("status", GapReason::Invalid, pid, "no readable Uid line");
        }
        Ok(uid)
    }

    /// Reads the command line into `entry` and returns the name to show.
    fn read_cmdline(
        &mut self,
        r: &mut Reader,
        pid: i32,
        comm: &[u8],
        kernel_thread: bool,
        entry: &mut ProcessEntry,
    ) -> Result<String, Vanished> {
        let short = fields::lossy_name(comm);
        let Some(bytes) = self.read_file(r, pid, "cmdline")? else {
            return Ok(short);
        };
        entry.cmdline = Some(fields::command_line(bytes));
        if kernel_thread || !fields::is_cut(comm) {
            return Ok(short);
        }

        if let Some(name) = fields::longer_name(comm, fields::argv0_base(bytes)) {
            return Ok(fields::lossy_name(name));
        }
        Ok(self.exe_name(r, pid, comm).unwrap_or(short))
    }

    /// Returns the executable's base name when it completes the cut `comm`. A missing or denied
    /// link only means the short name is shown, so it records no gap.
    fn exe_name(&mut self, r: &mut Reader, pid: i32, comm: &[u8]) -> Option<String> {
        self.set_path(pid, "exe");
        let target = r.read_link(Tree::Proc, &self.path).ok()?;
        fields::longer_name(comm, fields::exe_base(&target)).map(fields::lossy_name)
    }

    fn read_io(&mut self, r: &mut Reader, pid: i32) -> Result<Option<(u64, u64)>, Vanished> {
        self.set_path(pid, "io");
        let bytes = match r.proc_record(&self.path) {
            Ok(bytes) => bytes,
            Err(mut error) => {
                // The file is missing from a live process when the kernel was built without
                // task I/O accounting.
                if error.reason == GapReason::Vanished && has_stat(r, pid) {
                    error.reason = GapReason::Unsupported;
                }
                self.fail("io", pid, &error)?;
                return Ok(None);
            }
        };

        let io = fields::io_bytes(bytes);
        if io.is_none() {
            self.tally
                .add("io", GapReason::Invalid, pid, "unparsable io counters");
        }
        Ok(io)
    }

    /// Counts the open file descriptors and, where enabled, maps socket inodes to this process.
    fn read_fds(
        &mut self,
        r: &mut Reader,
        pid: i32,
        sample: &mut ProcessSample,
    ) -> Result<Option<u32>, Vanished> {
        self.set_path(pid, "fd");
        let names = match r.list(Tree::Proc, &self.path) {
            Ok(names) => names,
            // A live kernel always has `fd/` while the process exists, but a tree rebuilt from
            // raw evidence or checked into git keeps no empty directories: no descriptors.
            Err(error) if error.reason == GapReason::Vanished && has_stat(r, pid) => {
                return Ok(Some(0));
            }
            Err(error) => {
                self.fail("fd", pid, &error)?;
                return Ok(None);
            }
        };

        if self.ctx.socket_owners {
            if self.ctx.past_deadline() {
                self.sockets_skipped += 1;
            } else {
                self.map_sockets(r, pid, &names, sample);
            }
        }
        Ok(u32::try_from(names.len()).ok())
    }

    /// Reads each `fd/N` link and maps socket inodes to the entry about to be pushed. A
    /// descriptor closed since the listing is skipped. The first link that fails otherwise ends
    /// the walk for this process, because the rest fail alike (a denial covers all of `fd/`).
    fn map_sockets(
        &mut self,
        r: &mut Reader,
        pid: i32,
        fds: &[String],
        sample: &mut ProcessSample,
    ) {
        let index = sample.entries.len();
        for fd in fds {
            self.path.clear();
            let _ = write!(self.path, "{pid}/fd/{fd}");
            let target = match r.read_link(Tree::Proc, &self.path) {
                Ok(target) => target,
                Err(error) if error.reason == GapReason::Vanished => continue,
                Err(error) => {
                    if error.reason == GapReason::PermissionDenied {
                        self.denied = true;
                    }
                    self.tally.add("fd/*", error.reason, pid, &error.detail);
                    return;
                }
            };
            if let Some(inode) = fields::socket_inode(&target) {
                sample.socket_inodes.insert(inode, index);
            }
        }
    }

    /// Reads `PID/file`: the bytes, `None` when the file could not be read for a reason other
    /// than the process exiting (tallied), or [`Vanished`].
    fn read_file<'r>(
        &mut self,
        r: &'r mut Reader,
        pid: i32,
        file: &'static str,
    ) -> Result<Option<&'r [u8]>, Vanished> {
        self.set_path(pid, file);
        let read = if SINGLE_RECORD_FILES.contains(&file) {
            r.proc_record(&self.path)
        } else {
            r.proc(&self.path)
        };
        match read {
            Ok(bytes) => Ok(Some(bytes)),
            Err(error) => {
                self.fail(file, pid, &error)?;
                Ok(None)
            }
        }
    }

    /// Reads `PID/stat`: again through the file the last counters sample left open when there
    /// is one, otherwise by path, leaving the file open when this sample leaves files open.
    fn read_stat<'r>(&mut self, r: &'r mut Reader, pid: i32) -> Result<Option<&'r [u8]>, Vanished> {
        let Some(next) = self.next_stat_files.as_mut() else {
            return self.read_file(r, pid, "stat");
        };
        write_path(&mut self.path, pid, "stat");
        if let Some(file) = self.open_stat_files.remove(&pid) {
            // The bytes are looked up again after the reread: returning them from inside this
            // branch would keep `r` borrowed for the fallback below.
            if r.reread_record(&self.path, &file).is_ok() {
                next.insert(pid, file);
                return Ok(r.last_read(&self.path));
            }
        }
        match r.proc_record_kept(&self.path) {
            Ok((bytes, file)) => {
                if next.len() < self.open_stat_files_max {
                    next.insert(pid, file);
                }
                Ok(Some(bytes))
            }
            Err(error) => {
                self.fail("stat", pid, &error)?;
                Ok(None)
            }
        }
    }

    /// Applies the failure rule: vanished ends the process, anything else is tallied and
    /// marks the process unreadable when it was a denial.
    fn fail(&mut self, file: &'static str, pid: i32, error: &ReadError) -> Result<(), Vanished> {
        if error.reason == GapReason::Vanished {
            return Err(Vanished);
        }
        if error.reason == GapReason::PermissionDenied {
            self.denied = true;
        }
        self.tally.add(file, error.reason, pid, &error.detail);
        Ok(())
    }

    fn set_path(&mut self, pid: i32, file: &str) {
        write_path(&mut self.path, pid, file);
    }

    /// Decides whether the reader saw every process, recording a gap when it did not. Hidden
    /// processes show as a denied `PID/stat` (`hidepid=1`), a missing pid 1 (`hidepid=2`), or
    /// visible processes holding under half the threads `/proc/loadavg` counts.
    // NOTE: the thread comparison is a heuristic. loadavg counts threads in every PID
    // namespace, so a reader in a container looking at its own procfs is reported incomplete,
    // which it is with respect to the host.
    fn is_complete(
        &self,
        pids: &[i32],
        sample: &ProcessSample,
        total_threads: Option<u32>,
        gaps: &mut GapLog,
    ) -> bool {
        if self.stat_denied {
            return false;
        }
        if pids.binary_search(&1).is_err() {
            let detail = "pid 1 is not visible; procfs may be mounted with hidepid";
            gaps.push("processes", "proc/1", GapReason::PermissionDenied, detail);
            return false;
        }

        let Some(total_threads) = total_threads else {
            return true;
        };
        let visible: u64 = sample
            .entries
            .iter()
            .filter_map(|e| e.stat.map(|s| u64::from(s.threads)))
            .sum();
        if visible * 2 < u64::from(total_threads) {
            let detail = format!(
                "visible processes hold {visible} of the {total_threads} threads in \
                 /proc/loadavg; hidepid or a PID namespace hides the rest"
            );
            gaps.push("processes", "proc", GapReason::PermissionDenied, detail);
            return false;
        }
        true
    }

    fn record_gaps(self, gaps: &mut GapLog) {
        if self.sockets_skipped > 0 {
            let detail = format!(
                "socket owners not searched in {} processes: the capture deadline passed",
                self.sockets_skipped
            );
            gaps.push("sockets", "proc/*/fd", GapReason::Deadline, detail);
        }
        self.tally.record(gaps);
    }
}

fn stat_fields(line: &StatLine<'_>) -> StatFields {
    StatFields {
        state: line.state,
        ppid: line.ppid,
        kernel_thread: line.is_kernel_thread(),
        cpu_ticks: line.utime.saturating_add(line.stime),
        threads: line.threads,
        start_ticks: line.start_ticks,
        vsize_bytes: line.vsize_bytes,
        rss_pages: line.rss_pages,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linux::context::fixture;

    fn error(path: &str, reason: GapReason) -> ReadError {
        ReadError {
            tree: Tree::Proc,
            path: path.to_string(),
            reason,
            detail: "from the test".to_string(),
        }
    }

    #[test]
    fn denied_file_marks_process_unreadable() {
        let ctx = fixture::context(&fixture::roots("small"));
        let mut walk = Walk::new(&ctx, Scope::Full);
        let denied = error("5/io", GapReason::PermissionDenied);

        assert!(walk.fail("io", 5, &denied).is_ok());
        assert!(walk.denied);
        let mut gaps = GapLog::default();
        walk.record_gaps(&mut gaps);
        let gaps = gaps.into_vec();
        assert_eq!(gaps.len(), 1);
        assert_eq!(gaps[0].subject, "proc/5/io");
        assert_eq!(gaps[0].reason, GapReason::PermissionDenied);
    }

    #[test]
    fn vanished_file_ends_the_process() {
        let ctx = fixture::context(&fixture::roots("small"));
        let mut walk = Walk::new(&ctx, Scope::Full);
        let gone = error("5/status", GapReason::Vanished);

        assert!(walk.fail("status", 5, &gone).is_err());
        assert!(!walk.denied);
    }

    #[test]
    fn denied_stat_marks_list_incomplete() {
        let ctx = fixture::context(&fixture::roots("small"));
        let mut walk = Walk::new(&ctx, Scope::Counters);
        walk.stat_denied = true;
        let mut gaps = GapLog::default();
        assert!(!walk.is_complete(&[1, 2], &ProcessSample::default(), None, &mut gaps));
    }

    /// Run as an unprivileged user, for example with
    /// `setpriv --reuid=65534 --regid=65534 --clear-groups <test binary> --ignored`.
    #[test]
    #[ignore = "needs a non-root user"]
    fn live_non_root_keeps_denied_processes() {
        let options = crate::CaptureOptions::default();
        let ctx = Context::new(&options).unwrap().for_sample(&options);
        let mut gaps = GapLog::default();
        let sample = read(
            &mut Reader::new(options.roots),
            &ctx,
            Scope::Full,
            &mut gaps,
        );

        let init = sample.entry(1).unwrap();
        assert!(init.stat.is_some());
        assert_eq!(init.io, None);
        assert_eq!(init.open_fds, None);
        assert!(sample.unreadable >= 1);
        let gaps = gaps.into_vec();
        assert!(gaps
            .iter()
            .any(|g| g.subject.ends_with("/io") && g.reason == GapReason::PermissionDenied));
    }

    fn counters_sample(cache: &IdentityCache) -> (ProcessSample, crate::raw::RawFiles) {
        let options = crate::CaptureOptions::default();
        let ctx = Context::new(&options).unwrap().for_sample(&options);
        let mut reader = Reader::new(options.roots);
        let mut gaps = GapLog::default();
        let sample = read_cached(&mut reader, &ctx, Scope::Counters, &mut gaps, cache);
        (sample, reader.take_raw())
    }

    fn open_stat_pids(cache: &IdentityCache) -> Vec<i32> {
        cache.stat_files.lock().unwrap().keys().copied().collect()
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn open_stat_file_reads_fresh_values() {
        let cache = IdentityCache::default();
        let own = std::process::id() as i32;
        let (first, _) = counters_sample(&cache);
        assert!(open_stat_pids(&cache).contains(&own));

        let started = std::time::Instant::now();
        let mut spin = 0u64;
        while started.elapsed() < std::time::Duration::from_millis(300) {
            spin = std::hint::black_box(spin.wrapping_add(1));
        }
        let (second, raw) = counters_sample(&cache);

        let ticks = |sample: &ProcessSample| sample.entry(own).unwrap().stat.unwrap().cpu_ticks;
        assert!(ticks(&second) > ticks(&first), "CPU time did not move");
        let recorded = raw.entries.get(&format!("proc/{own}/stat")).unwrap();
        let crate::raw::RawEntry::File(bytes) = recorded else {
            panic!("stat recorded as a link");
        };
        assert!(bytes.starts_with(format!("{own} (").as_bytes()));
        assert!(bytes.ends_with(b"\n"));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn open_stat_file_of_exited_process_closes() {
        let cache = IdentityCache::default();
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        counters_sample(&cache);
        assert!(open_stat_pids(&cache).contains(&pid));

        child.kill().unwrap();
        child.wait().unwrap();
        let (sample, _) = counters_sample(&cache);

        assert!(sample.entry(pid).is_none());
        assert!(!open_stat_pids(&cache).contains(&pid));
    }

    #[test]
    fn fixture_counters_sample_leaves_none_open() {
        let roots = fixture::roots("small");
        let ctx = fixture::context(&roots);
        let cache = IdentityCache::default();
        let mut gaps = GapLog::default();
        read_cached(
            &mut Reader::new(roots),
            &ctx,
            Scope::Counters,
            &mut gaps,
            &cache,
        );
        assert!(open_stat_pids(&cache).is_empty());
    }
}
