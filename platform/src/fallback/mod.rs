//! The collector for systems other than Linux and macOS (the BSDs, Windows), through the
//! `sysinfo` crate. It reports the fields sysinfo offers and records a gap for each part of
//! the snapshot it cannot fill; it never panics and records no raw evidence.
//!
//! sysinfo computes CPU use between two refreshes of the same `System`, so the collector
//! keeps one `System` behind a mutex: the baseline sample refreshes it, and the later sample's
//! refresh yields the use over the interval.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sysinfo::{Disks, Networks, ProcessStatus, ProcessesToUpdate, System};

use crate::gaps::GapLog;
use crate::model::{
    Cpu, CpuUsage, Filesystem, GapReason, Host, Interface, LoadAverage, Memory, Network, Process,
    ProcessKind, Processes, Snapshot, Sources, SCHEMA_VERSION,
};
use crate::raw::RawFiles;
use crate::{CaptureOptions, PlatformError, Scope};

pub const BACKEND: &str = "sysinfo";

/// What one sysinfo sample read.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    pub host: Host,
    /// Busy share of each CPU since the previous refresh, in CPU order.
    pub cpu_busy_pct: Vec<f32>,
    pub cpu_total_busy_pct: f32,
    pub memory: Option<Memory>,
    pub processes: Vec<Process>,
    pub filesystems: Vec<Filesystem>,
    pub interfaces: Vec<Interface>,
}

#[derive(Debug)]
pub struct Collector {
    system: Mutex<System>,
}

impl Collector {
    pub fn new(_options: &CaptureOptions) -> Result<Self, PlatformError> {
        if !sysinfo::IS_SUPPORTED_SYSTEM {
            return Err(PlatformError::Unsupported(std::env::consts::OS.to_string()));
        }
        Ok(Collector {
            system: Mutex::new(System::new()),
        })
    }

    pub fn sample(&self, _options: &CaptureOptions, scope: Scope) -> Sample {
        // A panic while holding the lock leaves sysinfo's state usable, so take it anyway.
        let mut system = self.system.lock().unwrap_or_else(|e| e.into_inner());
        system.refresh_cpu_usage();
        system.refresh_memory();
        system.refresh_processes(ProcessesToUpdate::All, true);

        let cpus = system.cpus();
        let mut sample = Sample {
            cpu_busy_pct: cpus.iter().map(|cpu| cpu.cpu_usage()).collect(),
            cpu_total_busy_pct: system.global_cpu_usage(),
            memory: Some(memory(&system)),
            processes: processes(&system),
            interfaces: interfaces(),
            ..Sample::default()
        };
        if scope == Scope::Full {
            sample.host = host(cpus.len());
            sample.filesystems = filesystems();
        }
        sample
    }

    /// Derives the snapshot of `current` against `baseline`.
    pub fn derive(
        &self,
        _options: &CaptureOptions,
        baseline: &crate::Sample,
        current: &crate::Sample,
        interval: Duration,
    ) -> Snapshot {
        let prev = &baseline.inner;
        let cur = &current.inner;
        let secs = interval.as_secs_f64();
        let mut gaps = GapLog::default();
        record_gaps(&mut gaps);

        Snapshot {
            schema_version: SCHEMA_VERSION,
            captured_at: current.wall,
            interval_secs: secs,
            backend: BACKEND.to_string(),
            sources: Sources::default(),
            host: cur.host.clone(),
            cpu: cpu(cur),
            memory: cur.memory.clone(),
            processes: derive_processes(prev, cur),
            disks: Vec::new(),
            filesystems: cur.filesystems.clone(),
            network: Some(Network {
                interfaces: derive_interfaces(&prev.interfaces, &cur.interfaces, secs),
                ..Network::default()
            }),
            containers: Vec::new(),
            gaps: gaps.into_vec(),
        }
    }
}

impl Sample {
    /// Returns no entries: the sysinfo backend records no raw evidence.
    pub fn raw(&self) -> &RawFiles {
        static EMPTY: RawFiles = RawFiles {
            entries: std::collections::BTreeMap::new(),
        };
        &EMPTY
    }

    pub fn into_raw(self) -> RawFiles {
        RawFiles::default()
    }
}

fn host(cpu_count: usize) -> Host {
    let load = System::load_average();
    let boot_time = DateTime::<Utc>::from_timestamp(System::boot_time() as i64, 0);
    Host {
        hostname: System::host_name(),
        kernel_release: System::kernel_version(),
        uptime_secs: Some(System::uptime() as f64),
        boot_time,
        cpu_count: Some(cpu_count as u32),
        load: Some(LoadAverage {
            one: load.one,
            five: load.five,
            fifteen: load.fifteen,
        }),
        pressure: None,
    }
}

fn memory(system: &System) -> Memory {
    Memory {
        total_bytes: Some(system.total_memory()),
        available_bytes: Some(system.available_memory()),
        free_bytes: Some(system.free_memory()),
        swap_total_bytes: Some(system.total_swap()),
        swap_free_bytes: Some(system.free_swap()),
        ..Memory::default()
    }
}

fn processes(system: &System) -> Vec<Process> {
    let total_memory = system.total_memory();
    let mut list: Vec<Process> = system
        .processes()
        .values()
        .map(|process| {
            let (state, kind) = state(process.status());
            let rss = process.memory();
            let usage = process.disk_usage();
            let cmdline: Vec<String> = process
                .cmd()
                .iter()
                .map(|arg| arg.to_string_lossy().into_owned())
                .collect();
            Process {
                pid: process.pid().as_u32() as i32,
                ppid: process.parent().map(|pid| pid.as_u32() as i32),
                uid: process.user_id().map(|uid| **uid),
                state: state.to_string(),
                name: process.name().to_string_lossy().into_owned(),
                cmdline: cmdline.join(" "),
                kind,
                cpu_pct: Some(f64::from(process.cpu_usage())),
                mem_pct: (total_memory > 0).then(|| rss as f64 * 100.0 / total_memory as f64),
                rss_bytes: Some(rss),
                vsize_bytes: Some(process.virtual_memory()),
                start_time: DateTime::<Utc>::from_timestamp(process.start_time() as i64, 0),
                start_ticks: process.start_time(),
                read_bytes: Some(usage.total_read_bytes),
                write_bytes: Some(usage.total_written_bytes),
                is_self: process.pid().as_u32() == std::process::id(),
                ..Process::default()
            }
        })
        .collect();
    list.sort_by_key(|process| process.pid);
    list
}

fn state(status: ProcessStatus) -> (&'static str, ProcessKind) {
    match status {
        ProcessStatus::Run => ("R", ProcessKind::User),
        ProcessStatus::Sleep | ProcessStatus::Idle => ("S", ProcessKind::User),
        ProcessStatus::Stop | ProcessStatus::Tracing => ("T", ProcessKind::User),
        ProcessStatus::Zombie | ProcessStatus::Dead => ("Z", ProcessKind::Zombie),
        ProcessStatus::UninterruptibleDiskSleep => ("D", ProcessKind::User),
        _ => ("?", ProcessKind::User),
    }
}

fn filesystems() -> Vec<Filesystem> {
    let disks = Disks::new_with_refreshed_list();
    disks
        .list()
        .iter()
        .map(|disk| {
            let size = disk.total_space();
            let available = disk.available_space();
            let used = size.saturating_sub(available);
            let whole = used + available;
            Filesystem {
                source: disk.name().to_string_lossy().into_owned(),
                mount_point: disk.mount_point().display().to_string(),
                fs_type: disk.file_system().to_string_lossy().into_owned(),
                size_bytes: Some(size),
                used_bytes: Some(used),
                available_bytes: Some(available),
                use_pct: (whole > 0).then(|| (used * 100).div_ceil(whole) as f64),
                ..Filesystem::default()
            }
        })
        .collect()
}

fn interfaces() -> Vec<Interface> {
    let networks = Networks::new_with_refreshed_list();
    let mut list: Vec<Interface> = networks
        .iter()
        .map(|(name, data)| Interface {
            name: name.clone(),
            rx_bytes: data.total_received(),
            tx_bytes: data.total_transmitted(),
            rx_errors: data.total_errors_on_received(),
            tx_errors: data.total_errors_on_transmitted(),
            ..Interface::default()
        })
        .collect();
    list.sort_by(|a, b| a.name.cmp(&b.name));
    list
}

/// The busy share per CPU; sysinfo does not split it into user, system and idle states.
fn cpu(cur: &Sample) -> Option<Cpu> {
    if cur.cpu_busy_pct.is_empty() {
        return None;
    }
    let usage = |cpu: Option<u32>, busy: f32| CpuUsage {
        cpu,
        busy_pct: f64::from(busy),
        idle_pct: 100.0 - f64::from(busy),
        ..CpuUsage::default()
    };
    let per_cpu = cur
        .cpu_busy_pct
        .iter()
        .enumerate()
        .map(|(number, &busy)| usage(Some(number as u32), busy))
        .collect();
    Some(Cpu {
        total: usage(None, cur.cpu_total_busy_pct),
        per_cpu,
    })
}

/// The later sample's processes; CPU % is `None` for a process the baseline did not have,
/// because sysinfo's figure for it covers less than the interval.
fn derive_processes(prev: &Sample, cur: &Sample) -> Processes {
    let before: HashSet<(i32, u64)> = prev
        .processes
        .iter()
        .map(|p| (p.pid, p.start_ticks))
        .collect();
    let mut processes = Processes {
        complete: true,
        ..Processes::default()
    };
    for process in &cur.processes {
        let mut process = process.clone();
        if !before.contains(&(process.pid, process.start_ticks)) {
            process.cpu_pct = None;
        }
        processes.total += 1;
        match process.state.as_str() {
            "R" => processes.running += 1,
            "S" => processes.sleeping += 1,
            _ => {}
        }
        if process.kind == ProcessKind::Zombie {
            processes.zombies += 1;
        }
        processes.list.push(process);
    }
    processes
}

fn derive_interfaces(prev: &[Interface], cur: &[Interface], secs: f64) -> Vec<Interface> {
    let rate = |before: u64, now: u64| {
        if secs > 0.0 {
            now.saturating_sub(before) as f64 / secs
        } else {
            0.0
        }
    };
    cur.iter()
        .map(|now| {
            let mut interface = now.clone();
            if let Some(before) = prev.iter().find(|p| p.name == now.name) {
                interface.rx_bytes_per_sec = rate(before.rx_bytes, now.rx_bytes);
                interface.tx_bytes_per_sec = rate(before.tx_bytes, now.tx_bytes);
            }
            interface
        })
        .collect()
}

fn record_gaps(gaps: &mut GapLog) {
    let unsupported = [
        (
            "cpu",
            "user, nice, system, iowait, irq, softirq, steal",
            "sysinfo gives only the busy share",
        ),
        (
            "memory",
            "buffers, cached, dirty, major faults, OOM kills",
            "not offered by sysinfo",
        ),
        (
            "processes",
            "user names, threads, open file descriptors",
            "not read by the sysinfo backend",
        ),
        (
            "disks",
            "per-device activity",
            "not read by the sysinfo backend",
        ),
        (
            "network",
            "packets, drops, TCP states, retransmits",
            "not read by the sysinfo backend",
        ),
        ("sockets", "listening", "not read by the sysinfo backend"),
        (
            "host",
            "pressure",
            "no pressure stall information on this system",
        ),
    ];
    for (collector, subject, detail) in unsupported {
        gaps.push(collector, subject, GapReason::Unsupported, detail);
    }
}
