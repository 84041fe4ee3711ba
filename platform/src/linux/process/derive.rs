//! Turning two process samples into the process table of a snapshot.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::{ProcessEntry, ProcessSample, StatFields};
use crate::linux::Context;
use crate::model::{Process, ProcessKind, Processes};

/// The state shown for a process whose stat file could not be read.
const UNKNOWN_STATE: &str = "?";

/// Builds the process table of `cur`, with CPU % over the `secs` since `prev`.
pub fn derive(
    prev: &ProcessSample,
    cur: &ProcessSample,
    ctx: &Context,
    total_memory: Option<u64>,
    secs: f64,
) -> Processes {
    let table = Table {
        prev,
        ctx,
        users: cur.users.as_ref().unwrap_or(&ctx.users),
        self_pid: cur.self_pid.or(ctx.self_pid),
        boot_time: cur.boot_time_secs.and_then(crate::linux::host::boot_time),
        total_memory,
        secs,
    };
    let list: Vec<Process> = cur
        .entries
        .iter()
        .map(|entry| table.process(entry))
        .collect();

    let count = |pred: &dyn Fn(&Process) -> bool| list.iter().filter(|p| pred(p)).count() as u32;
    Processes {
        total: list.len() as u32,
        running: count(&|p| p.state == "R"),
        sleeping: count(&|p| matches!(p.state.as_str(), "S" | "D" | "I")),
        zombies: count(&|p| p.state == "Z"),
        kernel_threads: count(&|p| p.kind == ProcessKind::KernelThread),
        vanished: cur.vanished,
        unreadable: cur.unreadable,
        complete: cur.complete,
        list,
    }
}

/// The inputs shared by every process of one derive.
struct Table<'a> {
    prev: &'a ProcessSample,
    ctx: &'a Context,
    users: &'a HashMap<u32, String>,
    self_pid: Option<i32>,
    boot_time: Option<DateTime<Utc>>,
    total_memory: Option<u64>,
    secs: f64,
}

impl Table<'_> {
    fn process(&self, entry: &ProcessEntry) -> Process {
        let mut process = Process {
            pid: entry.pid,
            uid: entry.uid,
            user: entry.uid.and_then(|uid| self.users.get(&uid).cloned()),
            state: UNKNOWN_STATE.to_string(),
            name: entry.name.clone(),
            cmdline: entry.cmdline.clone().unwrap_or_default(),
            open_fds: entry.open_fds,
            read_bytes: entry.io.map(|(read, _)| read),
            write_bytes: entry.io.map(|(_, write)| write),
            is_self: self.self_pid == Some(entry.pid),
            ..Process::default()
        };
        if let Some(stat) = &entry.stat {
            self.fill_from_stat(&mut process, stat);
        }
        process
    }

    fn fill_from_stat(&self, process: &mut Process, stat: &StatFields) {
        let rss_bytes = stat
            .rss_pages
            .map(|pages| pages.saturating_mul(self.ctx.page_size));

        process.ppid = Some(stat.ppid);
        process.state = char::from(stat.state).to_string();
        process.kind = kind(stat);
        process.cpu_pct = self.cpu_pct(process.pid, stat);
        process.mem_pct = mem_pct(rss_bytes, self.total_memory);
        process.rss_bytes = rss_bytes;
        process.vsize_bytes = Some(stat.vsize_bytes);
        process.threads = Some(stat.threads);
        process.start_time = self.start_time(stat.start_ticks);
        process.start_ticks = stat.start_ticks;
    }

    /// CPU time over the interval as a share of one CPU, as top shows it. `None` for a process
    /// not in the earlier sample, including a new process that reuses an old pid.
    fn cpu_pct(&self, pid: i32, stat: &StatFields) -> Option<f64> {
        if self.secs <= 0.0 || self.ctx.ticks_per_sec == 0 {
            return None;
        }
        let before = self.prev.entry(pid)?.stat?;
        if before.start_ticks != stat.start_ticks {
            return None;
        }

        let ticks = stat.cpu_ticks.saturating_sub(before.cpu_ticks);
        let secs = ticks as f64 / self.ctx.ticks_per_sec as f64;
        Some(secs * 100.0 / self.secs)
    }

    fn start_time(&self, start_ticks: u64) -> Option<DateTime<Utc>> {
        let ticks_per_sec = self.ctx.ticks_per_sec.max(1);
        let millis = start_ticks.checked_mul(1000)? / ticks_per_sec;
        self.boot_time?
            .checked_add_signed(chrono::TimeDelta::try_milliseconds(
                i64::try_from(millis).ok()?,
            )?)
    }
}

/// Classifies kernel threads by the `PF_KTHREAD` flag, which an exiting kernel thread keeps,
/// and zombies by state among the rest. An empty command line distinguishes neither.
fn kind(stat: &StatFields) -> ProcessKind {
    if stat.kernel_thread {
        ProcessKind::KernelThread
    } else if stat.state == b'Z' {
        ProcessKind::Zombie
    } else {
        ProcessKind::User
    }
}

fn mem_pct(rss_bytes: Option<u64>, total_memory: Option<u64>) -> Option<f64> {
    let total = total_memory.filter(|&total| total > 0)?;
    Some(rss_bytes? as f64 * 100.0 / total as f64)
}
