//! Host, CPU, memory, filesystem, interface and disk readings on macOS, and what a snapshot
//! derives from two of them.

use chrono::{DateTime, Utc};

use super::block_storage::{self, DiskCounters, DRIVER_CLASS};
use super::mach_bindings::{self, HostPort};
use super::parse::{self, CpuTicks, IfCounters, StatfsRecord, SwapUsage, VmStats};
use super::{fs_net_bindings, gap_value, iokit_bindings, sysctl_bindings, unsupported, Recorder};
use crate::gaps::GapLog;
use crate::model::{Cpu, DiskIo, Filesystem, GapReason, Host, LoadAverage, Memory, Network};
use crate::Scope;

/// What one sample read outside the process table. Host facts and filesystems are read only
/// for a full sample.
#[derive(Debug, Clone, Default)]
pub struct SystemSample {
    pub hostname: Option<String>,
    pub kernel_release: Option<String>,
    pub boot_time: Option<(i64, i64)>,
    pub cpu_count: Option<u64>,
    pub load: Option<[f64; 3]>,
    pub cpu_ticks: Option<Vec<CpuTicks>>,
    pub vm: Option<VmStats>,
    pub memsize: Option<u64>,
    pub swap: Option<SwapUsage>,
    pub filesystems: Vec<StatfsRecord>,
    pub interfaces: Vec<IfCounters>,
    pub disks: Vec<DiskCounters>,
}

/// The parts of a snapshot derived here.
#[derive(Debug, Default)]
pub struct Derived {
    pub host: Host,
    pub cpu: Option<Cpu>,
    pub memory: Option<Memory>,
    pub filesystems: Vec<Filesystem>,
    pub network: Network,
    pub disks: Vec<DiskIo>,
}

pub fn read(host: HostPort, scope: Scope, rec: &mut Recorder, gaps: &mut GapLog) -> SystemSample {
    let mut sample = SystemSample {
        cpu_ticks: gap_value(
            gaps,
            "cpu",
            "host_processor_info",
            mach_bindings::cpu_ticks(host),
        ),
        vm: gap_value(
            gaps,
            "memory",
            "host_statistics64",
            mach_bindings::vm_stats(host),
        ),
        interfaces: read_interfaces(rec, gaps),
        disks: read_disks(rec, gaps),
        ..SystemSample::default()
    };
    if let Some(ticks) = &sample.cpu_ticks {
        rec.json("host_processor_info.json", ticks);
    }
    if let Some(vm) = &sample.vm {
        rec.json("host_statistics64.json", vm);
    }
    if scope == Scope::Full {
        read_host(&mut sample, rec, gaps);
        read_memory_sizes(&mut sample, rec, gaps);
        sample.filesystems = read_filesystems(rec, gaps);
    }
    sample
}

fn read_host(sample: &mut SystemSample, rec: &mut Recorder, gaps: &mut GapLog) {
    sample.hostname = sysctl_text("kern.hostname", "host", rec, gaps);
    sample.kernel_release = sysctl_text("kern.osrelease", "host", rec, gaps);
    sample.cpu_count = sysctl_integer("hw.ncpu", "host", rec, gaps);

    let boot = sysctl_bindings::boot_time();
    sample.boot_time = gap_value(gaps, "host", "sysctl kern.boottime", boot);
    if let Some((secs, usecs)) = sample.boot_time {
        let value = serde_json::json!({ "tv_sec": secs, "tv_usec": usecs });
        rec.json("sysctl/kern.boottime.json", &value);
    }

    sample.load = gap_value(gaps, "host", "getloadavg", sysctl_bindings::load_average());
    if let Some(load) = &sample.load {
        rec.json("getloadavg.json", load);
    }
}

fn read_memory_sizes(sample: &mut SystemSample, rec: &mut Recorder, gaps: &mut GapLog) {
    sample.memsize = sysctl_integer("hw.memsize", "memory", rec, gaps);
    let swap = sysctl_bindings::swap_usage();
    sample.swap = gap_value(gaps, "memory", "sysctl vm.swapusage", swap);
    if let Some(swap) = &sample.swap {
        rec.json("sysctl/vm.swapusage.json", swap);
    }
}

fn sysctl_text(
    name: &str,
    collector: &str,
    rec: &mut Recorder,
    gaps: &mut GapLog,
) -> Option<String> {
    let value = gap_value(
        gaps,
        collector,
        &format!("sysctl {name}"),
        sysctl_bindings::string(name),
    )?;
    rec.text(&format!("sysctl/{name}"), &value);
    Some(value)
}

fn sysctl_integer(
    name: &str,
    collector: &str,
    rec: &mut Recorder,
    gaps: &mut GapLog,
) -> Option<u64> {
    let value = gap_value(
        gaps,
        collector,
        &format!("sysctl {name}"),
        sysctl_bindings::integer(name),
    )?;
    rec.text(&format!("sysctl/{name}"), &value.to_string());
    Some(value)
}

fn read_filesystems(rec: &mut Recorder, gaps: &mut GapLog) -> Vec<StatfsRecord> {
    let mounts = gap_value(gaps, "filesystems", "getmntinfo", fs_net_bindings::mounts());
    let mounts = mounts.unwrap_or_default();
    rec.json("getmntinfo.json", &mounts);
    mounts
}

fn read_interfaces(rec: &mut Recorder, gaps: &mut GapLog) -> Vec<IfCounters> {
    let buffer = fs_net_bindings::iflist2();
    let Some(buffer) = gap_value(gaps, "network", "sysctl NET_RT_IFLIST2", buffer) else {
        return Vec::new();
    };
    let mut counters = parse::parse_iflist2(&buffer);
    rec.bytes("sysctl/net.route.iflist2", buffer);
    for interface in &mut counters {
        interface.name = fs_net_bindings::interface_name(interface.index)
            .unwrap_or_else(|| format!("if{}", interface.index));
    }
    counters
}

fn read_disks(rec: &mut Recorder, gaps: &mut GapLog) -> Vec<DiskCounters> {
    let records = iokit_bindings::drivers();
    let subject = format!("{DRIVER_CLASS} statistics");
    let Some(records) = gap_value(gaps, "disks", &subject, records) else {
        return Vec::new();
    };
    rec.json("iokit/IOBlockStorageDriver.json", &records);

    let (counters, errors) = block_storage::disk_counters(&records);
    for error in errors {
        let subject = format!("{DRIVER_CLASS} {}", error.device);
        gaps.push("disks", subject, GapReason::Invalid, error.to_string());
    }
    counters
}

pub fn derive(
    prev: &SystemSample,
    cur: &SystemSample,
    page_size: u64,
    interval_secs: f64,
    gaps: &mut GapLog,
) -> Derived {
    record_unsupported(gaps);
    let cpu = match (&prev.cpu_ticks, &cur.cpu_ticks) {
        (Some(before), Some(now)) => parse::cpu_usage(before, now),
        _ => None,
    };
    let memory = cur.vm.as_ref().map(|vm| {
        parse::memory(
            prev.vm.as_ref(),
            vm,
            page_size,
            cur.memsize,
            cur.swap.as_ref(),
        )
    });
    let network = Network {
        interfaces: parse::interfaces(&prev.interfaces, &cur.interfaces, interval_secs),
        ..Network::default()
    };
    let disks = block_storage::disk_io(&prev.disks, &cur.disks, interval_secs);
    if !disks.is_empty() {
        let detail = "IOBlockStorageDriver statistics contain no busy time or queue depth";
        unsupported(gaps, "disks", "util_pct, in_flight", detail);
    }
    Derived {
        host: host(cur),
        cpu,
        memory,
        filesystems: cur
            .filesystems
            .iter()
            .filter_map(parse::filesystem)
            .collect(),
        network,
        disks,
    }
}

fn host(cur: &SystemSample) -> Host {
    let boot_time = cur
        .boot_time
        .and_then(|(secs, usecs)| DateTime::<Utc>::from_timestamp(secs, (usecs * 1000) as u32));
    let uptime_secs = boot_time.map(|boot| (Utc::now() - boot).num_milliseconds() as f64 / 1e3);
    Host {
        hostname: cur.hostname.clone(),
        kernel_release: cur.kernel_release.clone(),
        uptime_secs,
        boot_time,
        cpu_count: cur.cpu_count.map(|n| n as u32),
        load: cur
            .load
            .map(|[one, five, fifteen]| LoadAverage { one, five, fifteen }),
        pressure: None,
    }
}

fn record_unsupported(gaps: &mut GapLog) {
    let none = "macOS does not offer this value";
    unsupported(
        gaps,
        "host",
        "pressure",
        "macOS has no pressure stall information",
    );
    unsupported(
        gaps,
        "cpu",
        "iowait, irq, softirq, steal",
        "macOS counts only user, nice, system and idle ticks",
    );
    unsupported(gaps, "memory", "buffers_bytes", none);
    unsupported(gaps, "memory", "dirty_bytes", none);
    unsupported(
        gaps,
        "memory",
        "oom_kills",
        "macOS reclaims memory through jetsam and has no OOM-kill counter",
    );
    unsupported(gaps, "network", "tcp_retransmits", "not read on macOS");
}
