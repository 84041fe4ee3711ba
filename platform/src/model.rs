//! The snapshot model: what one capture of a host produced.
//!
//! A `Snapshot` is derived from two samples taken an interval apart. Rates (CPU %, bytes per
//! second) come from the difference between the samples; every other value is the reading of
//! the later sample. A value that could not be read is `None` and the reason is recorded as a
//! [`Gap`]; it is never shown as zero. The JSON form of these types is `snapshot.json` in a
//! bundle and is documented in `docs/snapshot.md`; bump [`SCHEMA_VERSION`] on any change that
//! removes or renames a field.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Version of the `snapshot.json` layout.
pub const SCHEMA_VERSION: u32 = 1;

/// Everything one capture produced.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub schema_version: u32,
    /// Wall-clock time of the later sample.
    pub captured_at: DateTime<Utc>,
    /// Seconds between the two samples that rates are computed over.
    pub interval_secs: f64,
    /// The collector backend: `linux`, `macos` or `sysinfo`.
    pub backend: String,
    /// Where the readings came from.
    pub sources: Sources,
    pub host: Host,
    pub cpu: Option<Cpu>,
    pub memory: Option<Memory>,
    pub processes: Processes,
    pub disks: Vec<DiskIo>,
    pub filesystems: Vec<Filesystem>,
    pub network: Option<Network>,
    /// Containers, pods and services found through cgroups; empty where none were found.
    #[serde(default)]
    pub containers: Vec<Container>,
    /// Every value that could not be read, with the reason.
    pub gaps: Vec<Gap>,
}

/// The roots that every read went through, and the network namespace that was read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sources {
    pub procfs: String,
    pub sysfs: String,
    pub rootfs: String,
    /// `self` when network data came from `<procfs>/net` (the reader's own namespace),
    /// `pid1` when it came from `<procfs>/1/net` (the host's namespace seen from a container).
    pub net_namespace: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Host {
    pub hostname: Option<String>,
    pub kernel_release: Option<String>,
    pub uptime_secs: Option<f64>,
    pub boot_time: Option<DateTime<Utc>>,
    pub cpu_count: Option<u32>,
    pub load: Option<LoadAverage>,
    /// Pressure stall information; `None` where the kernel has no `/proc/pressure`.
    pub pressure: Option<Pressure>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadAverage {
    pub one: f64,
    pub five: f64,
    pub fifteen: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Pressure {
    pub cpu: Option<PressureResource>,
    pub memory: Option<PressureResource>,
    pub io: Option<PressureResource>,
}

/// One `/proc/pressure/*` file: the `some` line and, where present, the `full` line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PressureResource {
    pub some: PressureLine,
    pub full: Option<PressureLine>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PressureLine {
    pub avg10: f64,
    pub avg60: f64,
    pub avg300: f64,
    pub total_usecs: u64,
}

/// CPU utilisation over the interval, for all CPUs together and for each one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cpu {
    pub total: CpuUsage,
    /// One entry per CPU present in both samples, ordered by CPU number.
    pub per_cpu: Vec<CpuUsage>,
}

/// Shares of the interval in percent. Guest time is inside `user_pct` and `nice_pct`, as the
/// kernel counts it, and is not added again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuUsage {
    /// The CPU number; `None` for the all-CPU total.
    pub cpu: Option<u32>,
    pub user_pct: f64,
    pub nice_pct: f64,
    pub system_pct: f64,
    pub idle_pct: f64,
    pub iowait_pct: f64,
    pub irq_pct: f64,
    pub softirq_pct: f64,
    pub steal_pct: f64,
    /// Everything except idle and iowait.
    pub busy_pct: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Memory {
    pub total_bytes: Option<u64>,
    pub available_bytes: Option<u64>,
    /// True when the kernel has no `MemAvailable` and `available_bytes` is an estimate.
    pub available_estimated: bool,
    pub free_bytes: Option<u64>,
    pub buffers_bytes: Option<u64>,
    pub cached_bytes: Option<u64>,
    pub dirty_bytes: Option<u64>,
    pub swap_total_bytes: Option<u64>,
    pub swap_free_bytes: Option<u64>,
    /// Major page faults since boot (`pgmajfault` in `/proc/vmstat`).
    pub major_faults: Option<u64>,
    /// Major page faults during the interval.
    pub major_faults_in_interval: Option<u64>,
    /// OOM kills since boot (`oom_kill` in `/proc/vmstat`).
    pub oom_kills: Option<u64>,
    /// OOM kills during the interval.
    pub oom_kills_in_interval: Option<u64>,
    /// Keys the collector did not model, kept as read (in bytes where the kernel gave kB).
    #[serde(default)]
    pub other: BTreeMap<String, u64>,
}

/// The process table and its counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Processes {
    /// Every process that was read, ordered by pid.
    pub list: Vec<Process>,
    pub total: u32,
    pub running: u32,
    pub sleeping: u32,
    pub zombies: u32,
    pub kernel_threads: u32,
    /// Processes that exited between listing and reading; dropped from `list`.
    pub vanished: u32,
    /// Processes whose details could not be read for lack of rights; kept in `list` with
    /// the unreadable fields empty.
    pub unreadable: u32,
    /// False when the reader could not see every process (`hidepid`, not root).
    pub complete: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcessKind {
    #[default]
    User,
    KernelThread,
    Zombie,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Process {
    pub pid: i32,
    pub ppid: Option<i32>,
    pub uid: Option<u32>,
    /// The user name from the passwd file, or `None` where the uid has no entry.
    pub user: Option<String>,
    /// The one-letter state from `/proc/PID/stat` (R, S, D, Z, T, I, ...).
    pub state: String,
    /// The name to show: the kernel's short name, or the base name of argv[0] or of the
    /// executable when the short name was cut at 15 bytes. Lossy where the bytes were not UTF-8.
    pub name: String,
    /// The command line, arguments joined by spaces; empty for kernel threads and zombies.
    pub cmdline: String,
    pub kind: ProcessKind,
    /// CPU use over the interval as top shows it (100 % is one full CPU); `None` for a process
    /// that was not in the earlier sample.
    pub cpu_pct: Option<f64>,
    /// Resident size as a share of total memory.
    pub mem_pct: Option<f64>,
    pub rss_bytes: Option<u64>,
    pub vsize_bytes: Option<u64>,
    pub threads: Option<u32>,
    pub start_time: Option<DateTime<Utc>>,
    /// Start time in clock ticks since boot; with `pid` it identifies the process.
    pub start_ticks: u64,
    pub open_fds: Option<u32>,
    pub read_bytes: Option<u64>,
    pub write_bytes: Option<u64>,
    /// True for the AegisIR process that made the capture.
    #[serde(default)]
    pub is_self: bool,
    /// The container id, pod or service from the process's cgroup, when there is one.
    #[serde(default)]
    pub container: Option<String>,
    #[serde(default)]
    pub cgroup: Option<String>,
}

/// Block device activity over the interval, as `iostat -x` shows it. One entry per device
/// present in both samples.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DiskIo {
    pub device: String,
    pub reads_per_sec: f64,
    pub writes_per_sec: f64,
    pub read_kb_per_sec: f64,
    pub write_kb_per_sec: f64,
    /// Average time a read took, in milliseconds (`r_await`); 0 when nothing was read.
    /// `None` where the kernel reports no times for the device (7-field partition lines).
    pub read_await_ms: Option<f64>,
    /// Average time a write took, in milliseconds (`w_await`); `None` as for reads.
    pub write_await_ms: Option<f64>,
    /// Share of the interval the device was busy (`%util`), at most 100; `None` as for reads,
    /// and always on macOS, whose block-storage statistics hold no busy time.
    pub util_pct: Option<f64>,
    /// I/O requests in progress at the later sample; `None` as for reads, and always on macOS.
    pub in_flight: Option<u64>,
}

/// A mounted filesystem, as `df` shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Filesystem {
    pub source: String,
    pub mount_point: String,
    pub fs_type: String,
    pub size_bytes: Option<u64>,
    pub used_bytes: Option<u64>,
    pub available_bytes: Option<u64>,
    /// `used / (used + available)`, rounded up, as df computes it.
    pub use_pct: Option<f64>,
    pub inodes_total: Option<u64>,
    pub inodes_used: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Network {
    pub interfaces: Vec<Interface>,
    /// TCP connections by state name (`ESTABLISHED`, `TIME_WAIT`, ...), IPv4 and IPv6 together.
    pub tcp_states: BTreeMap<String, u64>,
    /// TCP segments retransmitted since boot (`RetransSegs` in `/proc/net/snmp`).
    pub tcp_retransmits: Option<u64>,
    /// TCP segments retransmitted during the interval.
    pub tcp_retransmits_in_interval: Option<u64>,
    /// Listening TCP sockets and bound, unconnected UDP sockets.
    pub listening: Vec<ListeningSocket>,
}

/// One network interface over the interval; only interfaces present in both samples are listed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Interface {
    pub name: String,
    pub rx_bytes_per_sec: f64,
    pub tx_bytes_per_sec: f64,
    pub rx_packets_per_sec: f64,
    pub tx_packets_per_sec: f64,
    /// Counters since the interface came up.
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
    pub rx_drops: u64,
    pub tx_drops: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ListeningSocket {
    /// `tcp`, `tcp6`, `udp` or `udp6`.
    pub protocol: String,
    /// The local address without the port; IPv6 in its usual text form, without brackets.
    pub address: String,
    pub port: u16,
    pub inode: u64,
    pub uid: Option<u32>,
    /// The owning process, found by matching the socket inode against `/proc/PID/fd`.
    pub pid: Option<i32>,
    pub process: Option<String>,
}

/// A container, pod or service found through the cgroups of its processes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Container {
    /// `docker`, `containerd`, `crio`, `podman`, `cri` (a container of a Kubernetes pod whose
    /// cgroup path does not name the runtime), `pod` or `systemd`.
    pub runtime: String,
    /// The full container id, pod uid or unit name.
    pub id: String,
    /// A readable name where one was found, otherwise the short id.
    pub name: String,
    pub pod: Option<String>,
    pub namespace: Option<String>,
    pub cgroup: String,
    pub pids: Vec<i32>,
    pub cpu_pct: f64,
    pub rss_bytes: u64,
    pub memory_current_bytes: Option<u64>,
    pub memory_max_bytes: Option<u64>,
    pub nr_throttled_in_interval: Option<u64>,
    /// Throttled time per second of the interval, in microseconds.
    pub throttled_usecs_per_sec: Option<f64>,
    pub oom_kills: Option<u64>,
    pub oom_kills_in_interval: Option<u64>,
    pub pressure: Option<Pressure>,
    /// The pod's uid, for a pod and for a container in a pod, also where no name was found.
    #[serde(default)]
    pub pod_uid: Option<String>,
    /// CPU use of the whole cgroup over the interval from `usage_usec` in `cpu.stat` (100 % is
    /// one CPU). Unlike `cpu_pct` it includes processes that exited during the interval.
    #[serde(default)]
    pub cgroup_cpu_pct: Option<f64>,
    /// CPU bandwidth periods that elapsed during the interval (`nr_periods` in `cpu.stat`).
    #[serde(default)]
    pub nr_periods_in_interval: Option<u64>,
    /// True when `memory.max` is `max`: no limit, and `memory_max_bytes` is `None` without a
    /// gap.
    #[serde(default)]
    pub memory_unlimited: bool,
    /// Times memory use reached `memory.max` since the cgroup was created (`max` in
    /// `memory.events`).
    #[serde(default)]
    pub memory_max_events: Option<u64>,
    /// Times memory use reached `memory.max` during the interval.
    #[serde(default)]
    pub memory_max_events_in_interval: Option<u64>,
}

/// A value that could not be read, and why.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Gap {
    /// The collector that hit the gap: `host`, `cpu`, `memory`, `processes`, `disks`,
    /// `filesystems`, `network`, `sockets`, `containers`.
    pub collector: String,
    /// The path or item that could not be read, relative to its root where it is a file.
    pub subject: String,
    pub reason: GapReason,
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GapReason {
    /// The process or file went away between listing and reading.
    Vanished,
    PermissionDenied,
    /// The kernel or platform does not offer this value.
    Unsupported,
    /// The data was there but could not be parsed.
    Invalid,
    /// The collector ran past its deadline and the rest was skipped.
    Deadline,
    /// Any other I/O error.
    Error,
}

impl GapReason {
    pub fn as_str(self) -> &'static str {
        match self {
            GapReason::Vanished => "vanished",
            GapReason::PermissionDenied => "permission_denied",
            GapReason::Unsupported => "unsupported",
            GapReason::Invalid => "invalid",
            GapReason::Deadline => "deadline",
            GapReason::Error => "error",
        }
    }
}
