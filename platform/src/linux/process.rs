//! The process table from `/proc/PID/*`.
//!
//! A counters sample reads only each `PID/stat`, which is enough for CPU rates. A full sample
//! also reads `status` (uid), `cmdline`, `io`, the `fd/` directory (count, and the socket
//! inodes its links name) and, for a name the kernel cut at 15 bytes that argv[0] does not
//! complete, the `exe` link. A process is identified by (pid, start ticks), so a pid reused
//! between samples never inherits the old process's CPU time.
//!
//! Failures follow one rule. A process whose files vanish while it is read is dropped and
//! counted in `vanished`. A file denied for lack of rights leaves its field `None` and counts
//! the process in `unreadable`, and the denials are tallied into one gap per file and reason.

mod derive;
pub mod fields;
pub mod stat;
mod tally;
mod walk;

use std::collections::HashMap;

use super::Context;
use crate::gaps::GapLog;
use crate::raw::Reader;
use crate::Scope;

pub use derive::derive;

/// The process readings of one sample.
#[derive(Debug, Clone, Default)]
pub struct ProcessSample {
    /// The processes that were read, ordered by pid.
    pub entries: Vec<ProcessEntry>,
    /// `btime` of the sample's `/proc/stat`, for start times.
    pub boot_time_secs: Option<u64>,
    /// AegisIR's own pid from the procfs `self` link.
    pub self_pid: Option<i32>,
    /// User names read from the passwd file during a full sample; `None` where it was not read.
    pub users: Option<HashMap<u32, String>>,
    pub vanished: u32,
    pub unreadable: u32,
    /// False when processes were hidden from the reader (see `walk::is_complete`).
    pub complete: bool,
    /// Socket inode to the index in `entries` of the process holding it.
    socket_inodes: HashMap<u64, usize>,
}

/// One process as a sample read it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessEntry {
    pub pid: i32,
    /// `None` when `PID/stat` was denied or could not be parsed.
    pub stat: Option<StatFields>,
    /// The name to show: the short name, or the longer name it was cut from.
    pub name: String,
    pub uid: Option<u32>,
    pub cmdline: Option<String>,
    pub open_fds: Option<u32>,
    /// Storage-layer bytes read and written.
    pub io: Option<(u64, u64)>,
}

/// The values of `PID/stat` kept between samples.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatFields {
    pub state: u8,
    pub ppid: i32,
    pub kernel_thread: bool,
    /// User plus system time in clock ticks.
    pub cpu_ticks: u64,
    pub threads: u32,
    pub start_ticks: u64,
    pub vsize_bytes: u64,
    pub rss_pages: Option<u64>,
}

impl ProcessSample {
    /// Finds the pid and name of the process holding the socket with this inode, through
    /// `/proc/PID/fd` links of the form `socket:[INODE]`. Only a full sample with socket owners
    /// enabled walks the links, and it stops walking at the sample's deadline.
    pub fn socket_owner(&self, inode: u64) -> Option<(i32, &str)> {
        let entry = self.entries.get(*self.socket_inodes.get(&inode)?)?;
        Some((entry.pid, entry.name.as_str()))
    }

    /// Looks up the entry of a pid, if the sample read it.
    pub fn entry(&self, pid: i32) -> Option<&ProcessEntry> {
        let index = self.entries.binary_search_by_key(&pid, |e| e.pid).ok()?;
        self.entries.get(index)
    }
}

pub(crate) use walk::has_stat;
pub use walk::IdentityCache;

pub fn read(r: &mut Reader, ctx: &Context, scope: Scope, gaps: &mut GapLog) -> ProcessSample {
    walk::read(r, ctx, scope, gaps)
}

/// Reads the process table, taking the uid and command line of processes already seen from
/// `cache` in a counters sample.
pub fn read_cached(
    r: &mut Reader,
    ctx: &Context,
    scope: Scope,
    gaps: &mut GapLog,
    cache: &IdentityCache,
) -> ProcessSample {
    walk::read_cached(r, ctx, scope, gaps, cache)
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::Path;

    use super::*;
    use crate::linux::context::fixture;
    use crate::model::{GapReason, Process, ProcessKind, Processes};
    use crate::raw::Roots;

    const TOTAL_MEMORY: u64 = 8052592 * 1024;

    fn sample_of(roots: &Roots, ctx: &Context, scope: Scope) -> (ProcessSample, GapLog) {
        let mut gaps = GapLog::default();
        let sample = read(&mut Reader::new(roots.clone()), ctx, scope, &mut gaps);
        (sample, gaps)
    }

    /// Derives the table from the fixture's two samples, one second apart, as a capture does.
    fn fixture_table() -> (Processes, ProcessSample, GapLog) {
        let ctx = fixture::context(&fixture::roots("small"));
        let (prev, _) = sample_of(&fixture::roots("small-baseline"), &ctx, Scope::Counters);
        let (cur, gaps) = sample_of(&fixture::roots("small"), &ctx, Scope::Full);
        let table = derive(&prev, &cur, &ctx, Some(TOTAL_MEMORY), 1.0);
        (table, cur, gaps)
    }

    fn find(table: &Processes, pid: i32) -> &Process {
        table.list.iter().find(|p| p.pid == pid).unwrap()
    }

    fn temp_roots(dir: &Path) -> Roots {
        Roots {
            procfs: dir.to_path_buf(),
            rootfs: dir.join("root"),
            ..Roots::default()
        }
    }

    fn write(dir: &Path, relative: &str, contents: &str) {
        let path = dir.join(relative);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, contents).unwrap();
    }

    fn stat_line(pid: i32, name: &str, threads: u32) -> String {
        format!("{pid} ({name}) S 1 {pid} {pid} 0 -1 4194304 0 0 0 0 5 5 0 0 20 0 {threads} 0 100 1000 10")
    }

    /// Writes the files a full sample reads for one process.
    fn write_process(dir: &Path, pid: i32, name: &str, threads: u32) {
        write(dir, &format!("{pid}/stat"), &stat_line(pid, name, threads));
        write(dir, &format!("{pid}/status"), "Uid:\t0\t0\t0\t0\n");
        write(dir, &format!("{pid}/cmdline"), &format!("{name}\0"));
        let io = "rchar: 0\nwchar: 0\nsyscr: 0\nsyscw: 0\nread_bytes: 0\nwrite_bytes: 0\n\
                  cancelled_write_bytes: 0\n";
        write(dir, &format!("{pid}/io"), io);
    }

    #[test]
    fn fixture_lists_every_process_by_pid() {
        let (table, _, _) = fixture_table();
        let pids: Vec<i32> = table.list.iter().map(|p| p.pid).collect();
        assert_eq!(
            pids,
            vec![1, 2, 310, 777, 812, 900, 1001, 1200, 1300, 1400, 4242]
        );
        assert_eq!(table.total, 11);
        assert_eq!(table.running, 1);
        assert_eq!(table.sleeping, 9);
        assert_eq!(table.zombies, 1);
        assert_eq!(table.kernel_threads, 1);
        assert_eq!(table.vanished, 0);
        assert_eq!(table.unreadable, 0);
        assert!(table.complete);
    }

    #[test]
    fn fixture_names_follow_the_display_rules() {
        let (table, _, _) = fixture_table();
        let name = |pid| find(&table, pid).name.as_str();
        assert_eq!(name(777), "a) R 9 (b");
        assert_eq!(name(310), "systemd-journald");
        assert_eq!(name(1001), "caf\u{fffd}");
        assert_eq!(name(1300), "backup-daemon-\u{fc}ber");
        assert_eq!(name(1400), "kube-controller-manager");
        assert_eq!(name(2), "kthreadd");
        assert_eq!(name(900), "worker");
    }

    #[test]
    fn fixture_command_lines() {
        let (table, _, _) = fixture_table();
        assert_eq!(find(&table, 777).cmdline, "./a) R 9 (b --port 8080");
        assert_eq!(find(&table, 812).cmdline, "nginx: worker process");
        assert_eq!(find(&table, 1001).cmdline, "./caf\u{fffd}");
        assert_eq!(find(&table, 2).cmdline, "");
        assert_eq!(find(&table, 900).cmdline, "");
    }

    #[test]
    fn fixture_cpu_is_a_rate_over_the_interval() {
        let (table, _, _) = fixture_table();
        let cpu = |pid| find(&table, pid).cpu_pct;
        assert_eq!(cpu(777), Some(90.0));
        assert_eq!(cpu(1400), Some(30.0));
        assert_eq!(cpu(812), Some(10.0));
        assert_eq!(cpu(4242), Some(3.0));
        assert_eq!(cpu(2), Some(0.0));
    }

    #[test]
    fn reused_pid_gets_no_cpu_rate() {
        let (table, _, _) = fixture_table();
        let process = find(&table, 1001);
        assert_eq!(process.start_ticks, 70000);
        assert_eq!(process.cpu_pct, None);
    }

    #[test]
    fn fixture_kinds_by_flags_and_state() {
        let (table, _, _) = fixture_table();
        assert_eq!(find(&table, 2).kind, ProcessKind::KernelThread);
        assert_eq!(find(&table, 900).kind, ProcessKind::Zombie);
        assert_eq!(find(&table, 900).state, "Z");
        assert_eq!(find(&table, 1).kind, ProcessKind::User);
    }

    #[test]
    fn fixture_users_with_numeric_fallback() {
        let (table, _, _) = fixture_table();
        assert_eq!(find(&table, 812).uid, Some(33));
        assert_eq!(find(&table, 812).user.as_deref(), Some("www-data"));
        assert_eq!(find(&table, 777).user.as_deref(), Some("alice"));
        assert_eq!(find(&table, 1300).uid, Some(2000));
        assert_eq!(find(&table, 1300).user, None);
    }

    #[test]
    fn fixture_memory_threads_and_start_time() {
        let (table, _, _) = fixture_table();
        let process = find(&table, 777);
        assert_eq!(process.ppid, Some(1));
        assert_eq!(process.rss_bytes, Some(2500 * 4096));
        assert_eq!(process.vsize_bytes, Some(20000000));
        assert_eq!(process.threads, Some(2));
        let expected_pct = (2500.0 * 4096.0) * 100.0 / TOTAL_MEMORY as f64;
        assert_eq!(process.mem_pct, Some(expected_pct));
        let start = process.start_time.unwrap();
        assert_eq!(start.to_rfc3339(), "2025-12-03T21:39:47.650+00:00");
    }

    #[test]
    fn fixture_fds_and_io() {
        let (table, _, _) = fixture_table();
        assert_eq!(find(&table, 1).open_fds, Some(3));
        assert_eq!(find(&table, 812).open_fds, Some(3));
        assert_eq!(find(&table, 2).open_fds, Some(0));
        assert_eq!(find(&table, 1).read_bytes, Some(4096000));
        assert_eq!(find(&table, 1).write_bytes, Some(8192000));
        assert_eq!(find(&table, 2).read_bytes, Some(0));
    }

    #[test]
    fn missing_io_is_unsupported_not_zero() {
        let (table, _, gaps) = fixture_table();
        assert_eq!(find(&table, 1200).read_bytes, None);
        assert_eq!(find(&table, 1200).write_bytes, None);

        let gaps = gaps.into_vec();
        assert_eq!(gaps.len(), 1, "{gaps:?}");
        assert_eq!(gaps[0].subject, "proc/1200/io");
        assert_eq!(gaps[0].reason, GapReason::Unsupported);
        assert_eq!(gaps[0].collector, "processes");
    }

    #[test]
    fn self_is_marked_from_the_self_link() {
        let (table, _, _) = fixture_table();
        let marked: Vec<i32> = table
            .list
            .iter()
            .filter(|p| p.is_self)
            .map(|p| p.pid)
            .collect();
        assert_eq!(marked, vec![4242]);
    }

    #[test]
    fn socket_owner_maps_inodes_to_processes() {
        let (_, sample, _) = fixture_table();
        assert_eq!(sample.socket_owner(21001), Some((1, "systemd")));
        assert_eq!(sample.socket_owner(21002), Some((812, "nginx")));
        assert_eq!(sample.socket_owner(21004), Some((812, "nginx")));
        assert_eq!(sample.socket_owner(21003), Some((777, "a) R 9 (b")));
        assert_eq!(sample.socket_owner(21005), Some((1200, "postgres")));
        assert_eq!(sample.socket_owner(30001), Some((310, "systemd-journald")));
        assert_eq!(sample.socket_owner(21020), None);
    }

    #[test]
    fn socket_owners_skipped_past_deadline_are_a_gap() {
        let roots = fixture::roots("small");
        let mut ctx = fixture::context(&roots);
        ctx.deadline = Some(std::time::Instant::now());
        let (sample, gaps) = sample_of(&roots, &ctx, Scope::Full);

        assert_eq!(sample.socket_owner(21003), None);
        assert_eq!(sample.entry(777).unwrap().open_fds, Some(2));
        let gaps = gaps.into_vec();
        let gap = gaps
            .iter()
            .find(|g| g.reason == GapReason::Deadline)
            .unwrap();
        assert_eq!(gap.collector, "sockets");
        assert_eq!(gap.subject, "proc/*/fd");
        assert!(gap
            .detail
            .starts_with("socket owners not searched in 9 processes"));
    }

    #[test]
    fn collector_deadline_cuts_socket_walk() {
        let roots = fixture::roots("small");
        let mut ctx = fixture::context(&roots);
        ctx.deadline = Some(std::time::Instant::now() + std::time::Duration::from_secs(3600));
        ctx.collector_budget = std::time::Duration::ZERO;
        ctx.start_collector();
        let (sample, gaps) = sample_of(&roots, &ctx, Scope::Full);

        assert_eq!(sample.socket_owner(21003), None);
        let gaps = gaps.into_vec();
        let gap = gaps.iter().find(|g| g.reason == GapReason::Deadline);
        assert_eq!(gap.unwrap().subject, "proc/*/fd");
    }

    #[test]
    fn sample_deadline_far_off_walks_sockets() {
        let roots = fixture::roots("small");
        let mut ctx = fixture::context(&roots);
        ctx.deadline = Some(std::time::Instant::now() + std::time::Duration::from_secs(3600));
        ctx.start_collector();
        let (sample, gaps) = sample_of(&roots, &ctx, Scope::Full);

        assert_eq!(sample.socket_owner(21003), Some((777, "a) R 9 (b")));
        assert!(gaps
            .into_vec()
            .iter()
            .all(|g| g.reason != GapReason::Deadline));
    }

    #[test]
    fn socket_owners_disabled_walks_no_links() {
        let roots = fixture::roots("small");
        let mut ctx = fixture::context(&roots);
        ctx.socket_owners = false;
        let mut reader = Reader::new(roots);
        let mut gaps = GapLog::default();
        let sample = read(&mut reader, &ctx, Scope::Full, &mut gaps);

        assert_eq!(sample.socket_owner(21003), None);
        assert!(!reader.take_raw().entries.contains_key("proc/777/fd/5"));
    }

    #[test]
    fn counters_sample_reads_stat_uid_and_cmdline() {
        let roots = fixture::roots("small");
        let ctx = fixture::context(&roots);
        let mut reader = Reader::new(roots);
        let mut gaps = GapLog::default();
        let sample = read(&mut reader, &ctx, Scope::Counters, &mut gaps);

        assert_eq!(sample.entries.len(), 11);
        let entry = sample.entry(777).unwrap();
        assert_eq!(entry.uid, Some(1000));
        assert_eq!(entry.cmdline.as_deref(), Some("./a) R 9 (b --port 8080"));
        assert_eq!(entry.io, None);
        assert_eq!(entry.open_fds, None);
        let raw = reader.take_raw();
        let per_process: Vec<&String> = raw
            .entries
            .keys()
            .filter(|key| key.starts_with("proc/7"))
            .collect();
        let expected = ["proc/777/cmdline", "proc/777/stat", "proc/777/status"];
        assert_eq!(per_process, expected);
    }

    #[test]
    fn full_sample_records_raw_evidence_of_links() {
        let roots = fixture::roots("small");
        let ctx = fixture::context(&roots);
        let mut reader = Reader::new(roots);
        let mut gaps = GapLog::default();
        read(&mut reader, &ctx, Scope::Full, &mut gaps);

        let raw = reader.take_raw();
        assert!(raw.entries.contains_key("proc/self"));
        assert!(raw.entries.contains_key("proc/777/fd/5"));
        assert!(raw.entries.contains_key("proc/1400/exe"));
        assert!(raw.entries.contains_key("root/etc/passwd"));
        assert!(!raw.entries.contains_key("proc/310/exe"));
    }

    #[test]
    fn process_vanishing_mid_read_is_dropped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        write_process(dir.path(), 1, "init", 1);
        // Pid 77 exited after its stat was read: the rest of its directory is gone.
        write(dir.path(), "77/stat", &stat_line(77, "short", 1));
        let roots = temp_roots(dir.path());
        let ctx = fixture::context(&roots);
        let (sample, _) = sample_of(&roots, &ctx, Scope::Full);

        let pids: Vec<i32> = sample.entries.iter().map(|e| e.pid).collect();
        assert_eq!(pids, vec![1]);
        assert_eq!(sample.vanished, 1);
        assert_eq!(sample.unreadable, 0);
    }

    #[test]
    fn unparsable_stat_keeps_process() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "1/stat", &stat_line(1, "init", 1));
        write(dir.path(), "9/stat", "9 (broken");
        let roots = temp_roots(dir.path());
        let ctx = fixture::context(&roots);
        let (sample, gaps) = sample_of(&roots, &ctx, Scope::Counters);

        let broken = sample.entry(9).unwrap();
        assert_eq!(broken.stat, None);
        let gaps = gaps.into_vec();
        let gap = gaps.iter().find(|g| g.subject == "proc/9/stat").unwrap();
        assert_eq!(gap.reason, GapReason::Invalid);
    }

    #[test]
    fn missing_pid_1_marks_list_incomplete() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "500/stat", &stat_line(500, "mine", 1));
        let roots = temp_roots(dir.path());
        let ctx = fixture::context(&roots);
        let (sample, gaps) = sample_of(&roots, &ctx, Scope::Counters);

        assert!(!sample.complete);
        let gaps = gaps.into_vec();
        assert!(gaps
            .iter()
            .any(|g| g.subject == "proc/1" && g.reason == GapReason::PermissionDenied));
    }

    #[test]
    fn few_visible_threads_mark_list_incomplete() {
        let dir = tempfile::tempdir().unwrap();
        write_process(dir.path(), 1, "init", 1);
        write(dir.path(), "loadavg", "0.00 0.00 0.00 1/400 9999\n");
        let roots = temp_roots(dir.path());
        let ctx = fixture::context(&roots);
        let (sample, gaps) = sample_of(&roots, &ctx, Scope::Full);

        assert!(!sample.complete);
        let gaps = gaps.into_vec();
        let gap = gaps.iter().find(|g| g.subject == "proc").unwrap();
        assert!(gap
            .detail
            .starts_with("visible processes hold 1 of the 400 threads"));
    }

    #[test]
    fn no_time_passed_gives_no_cpu_rate() {
        let ctx = fixture::context(&fixture::roots("small"));
        let (cur, _) = sample_of(&fixture::roots("small"), &ctx, Scope::Full);
        let table = derive(&cur, &cur, &ctx, Some(TOTAL_MEMORY), 0.0);
        assert!(table.list.iter().all(|p| p.cpu_pct.is_none()));
    }

    #[test]
    fn live_proc_lists_this_test_process() {
        let options = crate::CaptureOptions::default();
        let ctx = Context::new(&options).unwrap().for_sample(&options);
        let (prev, _) = sample_of(&options.roots, &ctx, Scope::Counters);
        let (cur, _) = sample_of(&options.roots, &ctx, Scope::Full);
        let table = derive(&prev, &cur, &ctx, None, 0.05);

        let me = table.list.iter().find(|p| p.is_self).unwrap();
        assert_eq!(me.pid, std::process::id() as i32);
        assert!(me.cpu_pct.is_some());
        assert!(me.rss_bytes.is_some_and(|rss| rss > 0));
        assert!(me.threads.is_some_and(|threads| threads >= 1));
        assert!(table.list.len() > 1);
        assert!(table.list.windows(2).all(|pair| pair[0].pid < pair[1].pid));
    }
}
