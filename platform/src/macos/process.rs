//! The process table and the sockets processes hold, read through libproc.
//!
//! Every pid from `proc_listallpids` is read with `PROC_PIDTASKALLINFO`. For another user's
//! process that call fails with `EPERM` unless AegisIR runs as root; the process is then kept
//! with what `kinfo_proc` gives (pid, parent, uid, state, name, start time) and the rest is
//! recorded as permission denied.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

use chrono::{DateTime, Utc};

use super::parse::{self, CallError, Timebase};
use super::proc_bindings::{self, SocketRecord, TaskRecord};
use super::{gap_value, sysctl_bindings, Recorder};
use crate::gaps::GapLog;
use crate::model::{GapReason, ListeningSocket, Network, Process, ProcessKind, Processes};
use crate::Scope;

/// Settings of one process read.
#[derive(Debug, Clone)]
pub struct ReadContext {
    pub argmax: usize,
    /// After this instant the descriptor walk is skipped and recorded as a deadline gap.
    pub deadline: Instant,
    pub socket_owners: bool,
}

/// One process as one sample read it.
#[derive(Debug, Clone, Default)]
pub struct ProcEntry {
    pub pid: i32,
    /// Start time in microseconds since the Unix epoch; with `pid` it identifies the process.
    pub start_micros: u64,
    pub ppid: Option<i32>,
    pub uid: Option<u32>,
    pub user: Option<String>,
    pub status: u32,
    pub name: String,
    pub cmdline: String,
    /// User plus system time in Mach absolute time units; `None` where task info was denied.
    pub cpu_units: Option<u64>,
    pub rss_bytes: Option<u64>,
    pub vsize_bytes: Option<u64>,
    pub threads: Option<u32>,
    pub running_threads: Option<u32>,
    pub open_fds: Option<u32>,
    pub read_bytes: Option<u64>,
    pub write_bytes: Option<u64>,
    pub unreadable: bool,
}

#[derive(Debug, Clone, Default)]
pub struct ProcessSample {
    pub entries: Vec<ProcEntry>,
    pub sockets: Vec<SocketRecord>,
    pub vanished: u32,
    pub complete: bool,
}

pub fn read(
    ctx: &ReadContext,
    scope: Scope,
    rec: &mut Recorder,
    gaps: &mut GapLog,
) -> ProcessSample {
    let mut sample = ProcessSample::default();
    let Some(pids) = gap_value(
        gaps,
        "processes",
        "proc_listallpids",
        proc_bindings::list_all_pids(),
    ) else {
        return sample;
    };
    sample.complete = true;
    let mut users = HashMap::new();
    let mut deadline_hit = false;

    for pid in pids {
        let Some(mut entry) = read_entry(pid, rec, gaps) else {
            sample.vanished += 1;
            continue;
        };
        if scope == Scope::Full {
            add_details(&mut entry, ctx, rec, gaps, &mut users);
            if Instant::now() >= ctx.deadline {
                deadline_hit = true;
            } else {
                add_descriptors(&mut entry, ctx, rec, gaps, &mut sample.sockets);
            }
        }
        sample.entries.push(entry);
    }

    if deadline_hit {
        let detail = "file descriptors and sockets of the remaining processes were skipped";
        gaps.push(
            "sockets",
            "proc_pidinfo PROC_PIDLISTFDS",
            GapReason::Deadline,
            detail,
        );
        sample.complete = false;
    }
    if scope == Scope::Full && !ctx.socket_owners {
        let detail = "listening sockets are found through process descriptors, which are disabled";
        gaps.push("sockets", "listening", GapReason::Unsupported, detail);
    }
    sample
}

/// Reads task info, falling back to `kinfo_proc` when it is denied; `None` when the process
/// exited.
fn read_entry(pid: i32, rec: &mut Recorder, gaps: &mut GapLog) -> Option<ProcEntry> {
    match proc_bindings::task_all_info(pid) {
        Ok(task) => {
            rec.json(&format!("proc/{pid}/taskallinfo.json"), &task);
            Some(entry_from_task(&task))
        }
        Err(error) if error.reason == GapReason::Vanished => None,
        Err(error) => {
            let subject = format!("pid {pid} proc_pidinfo PROC_PIDTASKALLINFO");
            gaps.push("processes", subject, error.reason, error.detail);
            entry_from_kinfo(pid, rec, gaps)
        }
    }
}

fn entry_from_task(task: &TaskRecord) -> ProcEntry {
    let name = if task.name.is_empty() {
        &task.comm
    } else {
        &task.name
    };
    ProcEntry {
        pid: task.pid,
        start_micros: parse::start_micros(task.start_secs, task.start_usecs),
        ppid: Some(task.ppid),
        uid: Some(task.uid),
        status: task.status,
        name: name.clone(),
        cpu_units: Some(task.total_user.saturating_add(task.total_system)),
        rss_bytes: Some(task.resident_bytes),
        vsize_bytes: Some(task.virtual_bytes),
        threads: Some(task.threads),
        running_threads: Some(task.running_threads),
        ..ProcEntry::default()
    }
}

fn entry_from_kinfo(pid: i32, rec: &mut Recorder, gaps: &mut GapLog) -> Option<ProcEntry> {
    let info = match sysctl_bindings::kinfo(pid) {
        Ok(info) => info,
        Err(error) if error.reason == GapReason::Vanished => return None,
        Err(error) => {
            gaps.push(
                "processes",
                format!("pid {pid} sysctl KERN_PROC_PID"),
                error.reason,
                error.detail,
            );
            return Some(ProcEntry {
                pid,
                unreadable: true,
                ..ProcEntry::default()
            });
        }
    };
    rec.json(&format!("proc/{pid}/kinfo_proc.json"), &info);
    Some(ProcEntry {
        pid,
        start_micros: parse::start_micros(info.start_secs, info.start_usecs),
        ppid: Some(info.ppid),
        uid: Some(info.uid),
        status: info.status,
        name: info.comm,
        unreadable: true,
        ..ProcEntry::default()
    })
}

/// Adds the executable, command line, user name and disk I/O of a full sample.
fn add_details(
    entry: &mut ProcEntry,
    ctx: &ReadContext,
    rec: &mut Recorder,
    gaps: &mut GapLog,
    users: &mut HashMap<u32, Option<String>>,
) {
    let pid = entry.pid;
    if let Some(uid) = entry.uid {
        entry.user = users
            .entry(uid)
            .or_insert_with(|| proc_bindings::user_name(uid))
            .clone();
    }
    if pid == 0 {
        // kernel_task has no executable, arguments or rusage of its own.
        entry.name = "kernel_task".to_string();
        return;
    }

    let path = per_process(gaps, pid, "proc_pidpath", proc_bindings::pid_path(pid));
    if let Some(path) = &path {
        rec.text(&format!("proc/{pid}/path"), path);
    }
    let args = sysctl_bindings::proc_args(pid, ctx.argmax);
    if let Some(args) = per_process(gaps, pid, "sysctl KERN_PROCARGS2", args) {
        rec.json(&format!("proc/{pid}/procargs2.json"), &args);
        entry.cmdline = args.args.join(" ");
    }
    entry.name = parse::process_name(&entry.name, path.as_deref());

    if let Some((read, written)) =
        per_process(gaps, pid, "proc_pid_rusage", proc_bindings::disk_io(pid))
    {
        entry.read_bytes = Some(read);
        entry.write_bytes = Some(written);
    }
}

/// Counts open descriptors and reads the internet sockets among them.
fn add_descriptors(
    entry: &mut ProcEntry,
    ctx: &ReadContext,
    rec: &mut Recorder,
    gaps: &mut GapLog,
    sockets: &mut Vec<SocketRecord>,
) {
    let pid = entry.pid;
    let fds = proc_bindings::list_fds(pid);
    let Some(fds) = per_process(gaps, pid, "proc_pidinfo PROC_PIDLISTFDS", fds) else {
        return;
    };
    entry.open_fds = Some(fds.len() as u32);
    if !ctx.socket_owners {
        return;
    }

    let mut found = Vec::new();
    for fd in fds
        .iter()
        .filter(|fd| fd.proc_fdtype == libc::PROX_FDTYPE_SOCKET as u32)
    {
        let info = proc_bindings::socket_info(pid, fd.proc_fd);
        let subject = format!("fd {} proc_pidfdinfo PROC_PIDFDSOCKETINFO", fd.proc_fd);
        if let Some(Some(socket)) = per_process(gaps, pid, &subject, info) {
            found.push(socket);
        }
    }
    if !found.is_empty() {
        rec.json(&format!("proc/{pid}/sockets.json"), &found);
    }
    sockets.extend(found);
}

/// Records a per-process failure as a gap, except for a process that exited meanwhile.
fn per_process<T>(
    gaps: &mut GapLog,
    pid: i32,
    call: &str,
    result: Result<T, CallError>,
) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(error) if error.reason == GapReason::Vanished => None,
        Err(error) => {
            gaps.push(
                "processes",
                format!("pid {pid} {call}"),
                error.reason,
                error.detail,
            );
            None
        }
    }
}

pub fn derive(
    prev: &ProcessSample,
    cur: &ProcessSample,
    timebase: Timebase,
    total_memory: Option<u64>,
    interval_secs: f64,
) -> Processes {
    let before: HashMap<(i32, u64), Option<u64>> = prev
        .entries
        .iter()
        .map(|entry| ((entry.pid, entry.start_micros), entry.cpu_units))
        .collect();
    let self_pid = std::process::id() as i32;

    let mut processes = Processes {
        vanished: cur.vanished,
        complete: cur.complete,
        ..Processes::default()
    };
    for entry in &cur.entries {
        let prev_units = before
            .get(&(entry.pid, entry.start_micros))
            .copied()
            .flatten();
        let cpu_pct = match (prev_units, entry.cpu_units) {
            (Some(then), Some(now)) => parse::process_cpu_pct(
                timebase.to_nanos(then),
                timebase.to_nanos(now),
                interval_secs,
            ),
            _ => None,
        };
        let process = model_process(entry, cpu_pct, total_memory, self_pid);
        count(&mut processes, &process, entry.unreadable);
        processes.list.push(process);
    }
    processes.list.sort_by_key(|process| process.pid);
    processes
}

fn model_process(
    entry: &ProcEntry,
    cpu_pct: Option<f64>,
    total: Option<u64>,
    self_pid: i32,
) -> Process {
    let (state, kind) = parse::process_state(entry.pid, entry.status, entry.running_threads);
    let mem_pct = match (entry.rss_bytes, total) {
        (Some(rss), Some(total)) if total > 0 => Some(rss as f64 * 100.0 / total as f64),
        _ => None,
    };
    let start_time = DateTime::<Utc>::from_timestamp_micros(entry.start_micros as i64)
        .filter(|_| entry.start_micros > 0);
    Process {
        pid: entry.pid,
        ppid: entry.ppid,
        uid: entry.uid,
        user: entry.user.clone(),
        state,
        name: entry.name.clone(),
        cmdline: entry.cmdline.clone(),
        kind,
        cpu_pct,
        mem_pct,
        rss_bytes: entry.rss_bytes,
        vsize_bytes: entry.vsize_bytes,
        threads: entry.threads,
        start_time,
        start_ticks: entry.start_micros,
        open_fds: entry.open_fds,
        read_bytes: entry.read_bytes,
        write_bytes: entry.write_bytes,
        is_self: entry.pid == self_pid,
        container: None,
        cgroup: None,
    }
}

fn count(processes: &mut Processes, process: &Process, unreadable: bool) {
    processes.total += 1;
    match process.state.as_str() {
        "R" => processes.running += 1,
        "S" => processes.sleeping += 1,
        _ => {}
    }
    match process.kind {
        ProcessKind::Zombie => processes.zombies += 1,
        ProcessKind::KernelThread => processes.kernel_threads += 1,
        ProcessKind::User => {}
    }
    if unreadable {
        processes.unreadable += 1;
    }
}

/// Fills the listening sockets and TCP state counts from the sockets of the later sample.
/// A socket shared by several processes is counted once and named after the lowest pid.
pub fn add_sockets(network: &mut Network, cur: &ProcessSample) {
    let owners: HashMap<i32, &ProcEntry> = cur.entries.iter().map(|e| (e.pid, e)).collect();
    let mut seen = HashSet::new();
    let mut states = BTreeMap::new();
    let mut listening = Vec::new();

    for socket in &cur.sockets {
        if !seen.insert(socket.handle) {
            continue;
        }
        if let Some(state) = socket.tcp_state {
            *states
                .entry(parse::tcp_state_name(state).to_string())
                .or_insert(0) += 1;
        }
        if is_listening(socket) {
            listening.push(listening_socket(socket, owners.get(&socket.pid).copied()));
        }
    }
    listening.sort();
    network.tcp_states = states;
    network.listening = listening;
}

fn is_listening(socket: &SocketRecord) -> bool {
    match socket.tcp_state {
        Some(state) => parse::tcp_state_name(state) == "LISTEN",
        None => {
            socket.protocol == libc::IPPROTO_UDP
                && parse::udp_is_listening(
                    socket.local_port,
                    socket.foreign_port,
                    &socket.foreign_address,
                )
        }
    }
}

fn listening_socket(socket: &SocketRecord, owner: Option<&ProcEntry>) -> ListeningSocket {
    ListeningSocket {
        protocol: parse::socket_protocol(socket.tcp_state.is_some(), socket.vflag).to_string(),
        address: parse::socket_address(socket.vflag, &socket.local_address),
        port: socket.local_port,
        inode: socket.handle,
        uid: owner.and_then(|entry| entry.uid),
        pid: Some(socket.pid),
        process: owner.map(|entry| entry.name.clone()),
    }
}
