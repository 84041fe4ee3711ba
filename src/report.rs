//! Human-readable reports of a snapshot, laid out the way responders know them from top, ps,
//! free, df, iostat and netstat, plus the gaps and the containers.
//!
//! Every report is plain text with aligned columns. A value that could not be read renders
//! as `-`, never as 0. All text that came from the host (process names, command lines, user
//! names, mount points, interface names) passes through [`text::terminal_safe`], so
//! `cat top.txt` cannot move the cursor or recolour the terminal. Text is not escaped for
//! Slack or HTML here; that is the job of whoever renders it there.
//!
//! The helpers at the bottom ([`top_by_cpu`], [`memory_headline`], ...) pick and phrase the
//! few values a notification shows.

mod containers;
mod disk;
mod gaps;
mod memory;
mod network;
mod processes;
pub mod text;
mod top;

use std::cmp::Ordering;

use aegisir_platform::{Filesystem, Memory, Process, Snapshot};

pub use containers::{container_cpu_pct, notable_containers, render_containers};
pub use text::format_bytes;

/// One report file of a bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub file_name: String,
    pub text: String,
}

impl Report {
    fn new(file_name: &str, text: String) -> Self {
        Report {
            file_name: file_name.to_string(),
            text,
        }
    }
}

/// Renders every report of a bundle: `top.txt`, `processes.txt`, `memory.txt`,
/// `disk_usage.txt`, `iostat.txt`, `network.txt`, `containers.txt` and `gaps.txt`.
pub fn render_all(snapshot: &Snapshot) -> Vec<Report> {
    vec![
        Report::new("top.txt", top::render(snapshot)),
        Report::new("processes.txt", processes::render(snapshot)),
        Report::new("memory.txt", memory::render(snapshot)),
        Report::new("disk_usage.txt", disk::render_usage(snapshot)),
        Report::new("iostat.txt", disk::render_iostat(snapshot)),
        Report::new("network.txt", network::render(snapshot)),
        Report::new("containers.txt", containers::render(snapshot)),
        Report::new("gaps.txt", gaps::render(snapshot)),
    ]
}

/// Returns the `n` processes using the most CPU over the interval, highest first. Processes without
/// a CPU figure (not in the earlier sample) come last; ties go to the larger resident size,
/// then the lower pid.
pub fn top_by_cpu(snapshot: &Snapshot, n: usize) -> Vec<&Process> {
    let mut processes: Vec<&Process> = snapshot.processes.list.iter().collect();
    processes.sort_by(|a, b| compare_cpu(a, b));
    processes.truncate(n);
    processes
}

/// Returns the `n` processes with the largest resident size, largest first. Processes whose
/// size could not be read come last, and ties go to the lower pid.
pub fn top_by_memory(snapshot: &Snapshot, n: usize) -> Vec<&Process> {
    let mut processes: Vec<&Process> = snapshot.processes.list.iter().collect();
    processes.sort_by(|a, b| descending_option(a.rss_bytes, b.rss_bytes).then(a.pid.cmp(&b.pid)));
    processes.truncate(n);
    processes
}

/// Returns the filesystem with the highest use %, the larger one on a tie. `None` when no
/// filesystem has a use %, because none was listed or none was readable.
pub fn fullest_filesystem(snapshot: &Snapshot) -> Option<&Filesystem> {
    snapshot
        .filesystems
        .iter()
        .filter(|filesystem| filesystem.use_pct.is_some_and(f64::is_finite))
        .max_by(|a, b| {
            let by_use = a.use_pct.partial_cmp(&b.use_pct).unwrap_or(Ordering::Equal);
            by_use.then(a.size_bytes.cmp(&b.size_bytes))
        })
}

/// Formats a one-line memory and load summary such as
/// `mem 81% used (12.9G of 15.6G), swap 0%, load 3.20 2.90 2.10`; unreadable parts are `?`.
pub fn memory_headline(snapshot: &Snapshot) -> String {
    let memory = match &snapshot.memory {
        Some(memory) => memory_part(memory),
        None => "mem ?, swap ?".to_string(),
    };
    let load = match snapshot.host.load {
        Some(load) => format!("{:.2} {:.2} {:.2}", load.one, load.five, load.fifteen),
        None => "?".to_string(),
    };
    format!("{memory}, load {load}")
}

/// Formats a one-line CPU summary such as `cpu 86% busy (us 60.1, sy 20.3, wa 3.0, st 0.0)`.
pub fn cpu_headline(snapshot: &Snapshot) -> String {
    match &snapshot.cpu {
        Some(cpu) => {
            let total = &cpu.total;
            format!(
                "cpu {:.0}% busy (us {:.1}, sy {:.1}, wa {:.1}, st {:.1})",
                total.busy_pct, total.user_pct, total.system_pct, total.iowait_pct, total.steal_pct
            )
        }
        None => "cpu ?".to_string(),
    }
}

/// Formats a one-line summary of a filesystem such as `/var 93% used (47G of 50G, ext4)`, its mount
/// point made terminal-safe.
pub fn filesystem_headline(filesystem: &Filesystem) -> String {
    let mount = text::terminal_safe(&filesystem.mount_point);
    let used = filesystem
        .use_pct
        .map_or_else(|| "?".to_string(), |pct| format!("{}%", pct.ceil()));
    let of = match (filesystem.used_bytes, filesystem.size_bytes) {
        (Some(used), Some(size)) => format!("{} of {}", format_bytes(used), format_bytes(size)),
        _ => "size ?".to_string(),
    };
    let kind = text::terminal_safe(&filesystem.fs_type);
    format!("{mount} {used} used ({of}, {kind})")
}

fn memory_part(memory: &Memory) -> String {
    let used = memory::used_bytes(memory);
    let main = match (used, memory.total_bytes) {
        (Some(used), Some(total)) if total > 0 => format!(
            "mem {:.0}% used ({} of {})",
            used as f64 * 100.0 / total as f64,
            text::format_bytes_decimal(used),
            text::format_bytes_decimal(total)
        ),
        _ => "mem ?".to_string(),
    };
    let swap = match (memory.swap_total_bytes, memory.swap_free_bytes) {
        (Some(0), Some(_)) => "swap none".to_string(),
        (Some(total), Some(free)) => {
            let used = total.saturating_sub(free);
            format!("swap {:.0}%", used as f64 * 100.0 / total as f64)
        }
        _ => "swap ?".to_string(),
    };
    format!("{main}, {swap}")
}

/// Orders by CPU % descending (unknown last), then resident size descending, then pid.
fn compare_cpu(a: &Process, b: &Process) -> Ordering {
    descending_f64(a.cpu_pct, b.cpu_pct)
        .then(descending_option(a.rss_bytes, b.rss_bytes))
        .then(a.pid.cmp(&b.pid))
}

fn descending_f64(a: Option<f64>, b: Option<f64>) -> Ordering {
    let key = |value: Option<f64>| value.filter(|v| v.is_finite());
    match (key(a), key(b)) {
        (Some(a), Some(b)) => b.total_cmp(&a),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

fn descending_option<T: Ord>(a: Option<T>, b: Option<T>) -> Ordering {
    match (a, b) {
        (Some(a), Some(b)) => b.cmp(&a),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    use aegisir_platform::{
        Container, Cpu, CpuUsage, DiskIo, Gap, GapReason, Host, Interface, ListeningSocket,
        LoadAverage, Network, Pressure, PressureLine, PressureResource, ProcessKind, Processes,
        Sources,
    };
    use chrono::{TimeZone, Utc};
    use proptest::prelude::*;

    use super::*;

    const GIB: u64 = 1024 * 1024 * 1024;
    const MIB: u64 = 1024 * 1024;

    fn at(hour: u32, minute: u32) -> chrono::DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 3, hour, minute, 0).unwrap()
    }

    fn process(pid: i32, user: &str, name: &str, cmdline: &str, cpu_pct: f64) -> Process {
        Process {
            pid,
            ppid: Some(1),
            uid: Some(1000),
            user: Some(user.to_string()),
            state: "S".to_string(),
            name: name.to_string(),
            cmdline: cmdline.to_string(),
            kind: ProcessKind::User,
            cpu_pct: Some(cpu_pct),
            mem_pct: Some(1.5),
            rss_bytes: Some(240 * MIB),
            vsize_bytes: Some(2 * GIB),
            threads: Some(4),
            start_time: Some(at(8, 30)),
            start_ticks: 1000,
            open_fds: Some(12),
            read_bytes: Some(5 * MIB),
            write_bytes: Some(64 * 1024),
            ..Process::default()
        }
    }

    fn processes() -> Vec<Process> {
        let mut init = process(1, "root", "systemd", "/sbin/init splash", 0.0);
        init.ppid = Some(0);
        init.uid = Some(0);
        init.start_time = Some(Utc.with_ymd_and_hms(2026, 11, 30, 17, 40, 0).unwrap());

        let kthread = Process {
            pid: 2,
            ppid: Some(0),
            uid: Some(0),
            user: Some("root".into()),
            state: "S".into(),
            name: "kthreadd".into(),
            kind: ProcessKind::KernelThread,
            cpu_pct: Some(0.0),
            threads: Some(1),
            ..Process::default()
        };

        let mut burner = process(
            812,
            "app",
            "python3",
            "python3 /srv/app/worker.py --jobs 8",
            187.5,
        );
        burner.state = "R".into();
        burner.rss_bytes = Some(3 * GIB + 200 * MIB);
        burner.mem_pct = Some(20.1);

        let mut zombie = process(913, "app", "sh", "", 0.0);
        zombie.kind = ProcessKind::Zombie;
        zombie.state = "Z".into();

        let channel = process(
            1200,
            "mallory",
            "<!channel>",
            "<!channel> --ping @here",
            12.25,
        );
        let ansi = process(
            1201,
            "mallory",
            "evil\x1b[2J",
            "evil\x1b[2J\r--wipe\ttab",
            3.0,
        );

        let unreadable = Process {
            pid: 1500,
            uid: Some(1001),
            state: "S".into(),
            name: "secretd".into(),
            ..Process::default()
        };

        let mut own = process(4242, "aegisir", "aegisir", "/usr/bin/aegisir serve", 1.0);
        own.is_self = true;
        let wide = process(5000, "名前", "名前", "/opt/名前/bin/serve", 0.5);

        vec![
            init, kthread, burner, zombie, channel, ansi, unreadable, own, wide,
        ]
    }

    fn usage(cpu: Option<u32>, user: f64, system: f64, idle: f64) -> CpuUsage {
        CpuUsage {
            cpu,
            user_pct: user,
            nice_pct: 0.5,
            system_pct: system,
            idle_pct: idle,
            iowait_pct: 2.0,
            irq_pct: 0.3,
            softirq_pct: 0.7,
            steal_pct: 0.0,
            busy_pct: 100.0 - idle - 2.0,
        }
    }

    fn host() -> Host {
        let line = |avg10| PressureLine {
            avg10,
            avg60: 1.5,
            avg300: 0.75,
            total_usecs: 123_456,
        };
        Host {
            hostname: Some("web-01".into()),
            kernel_release: Some("6.8.0-45-generic".into()),
            uptime_secs: Some(3.0 * 86_400.0 + 4.0 * 3600.0 + 5.0 * 60.0 + 7.0),
            boot_time: Some(Utc.with_ymd_and_hms(2026, 11, 30, 17, 40, 31).unwrap()),
            cpu_count: Some(4),
            load: Some(LoadAverage {
                one: 3.2,
                five: 2.9,
                fifteen: 2.1,
            }),
            pressure: Some(Pressure {
                cpu: Some(PressureResource {
                    some: line(12.5),
                    full: None,
                }),
                memory: Some(PressureResource {
                    some: line(0.0),
                    full: Some(line(0.0)),
                }),
                io: None,
            }),
        }
    }

    fn memory() -> Memory {
        let mut other = BTreeMap::new();
        other.insert("Shmem".to_string(), 300 * MIB);
        other.insert("SReclaimable".to_string(), 200 * MIB);
        Memory {
            total_bytes: Some(16 * GIB),
            available_bytes: Some(3 * GIB),
            available_estimated: false,
            free_bytes: Some(GIB),
            buffers_bytes: Some(100 * MIB),
            cached_bytes: Some(2 * GIB),
            dirty_bytes: Some(12 * MIB),
            swap_total_bytes: Some(2 * GIB),
            swap_free_bytes: Some(2 * GIB),
            major_faults: Some(120_345),
            major_faults_in_interval: Some(17),
            oom_kills: Some(2),
            oom_kills_in_interval: Some(1),
            other,
        }
    }

    fn disks() -> Vec<DiskIo> {
        vec![
            DiskIo {
                device: "nvme0n1".into(),
                reads_per_sec: 120.0,
                writes_per_sec: 45.5,
                read_kb_per_sec: 4096.0,
                write_kb_per_sec: 812.25,
                read_await_ms: Some(0.42),
                write_await_ms: Some(1.8),
                util_pct: Some(37.5),
                in_flight: Some(2),
            },
            DiskIo {
                device: "nvme0n1p1".into(),
                reads_per_sec: 1.0,
                writes_per_sec: 0.0,
                read_kb_per_sec: 4.0,
                write_kb_per_sec: 0.0,
                read_await_ms: None,
                write_await_ms: None,
                util_pct: None,
                in_flight: None,
            },
        ]
    }

    fn filesystems() -> Vec<Filesystem> {
        let filesystem = |source: &str, mount: &str, kind: &str, size: u64, used: u64| {
            let available = size - used - size / 20;
            Filesystem {
                source: source.into(),
                mount_point: mount.into(),
                fs_type: kind.into(),
                size_bytes: Some(size),
                used_bytes: Some(used),
                available_bytes: Some(available),
                use_pct: Some((used as f64 * 100.0 / (used + available) as f64).ceil()),
                inodes_total: Some(1_000_000),
                inodes_used: Some(1000),
            }
        };
        let unreadable = Filesystem {
            source: "//nas/share".into(),
            mount_point: "/mnt/my share".into(),
            fs_type: "cifs".into(),
            ..Filesystem::default()
        };
        vec![
            filesystem("/dev/nvme0n1p2", "/", "ext4", 100 * GIB, 40 * GIB),
            filesystem("/dev/nvme0n1p3", "/var", "xfs", 50 * GIB, 44 * GIB),
            unreadable,
        ]
    }

    fn network() -> Network {
        let interface = |name: &str, rx: f64, tx: f64| Interface {
            name: name.into(),
            rx_bytes_per_sec: rx,
            tx_bytes_per_sec: tx,
            rx_packets_per_sec: rx / 1000.0,
            tx_packets_per_sec: tx / 1000.0,
            rx_bytes: 73_400_320_512,
            tx_bytes: 1_234_567,
            rx_errors: 3,
            tx_errors: 0,
            rx_drops: 12,
            tx_drops: 0,
        };
        let socket =
            |protocol: &str, address: &str, port, owner: Option<(i32, &str)>| ListeningSocket {
                protocol: protocol.into(),
                address: address.into(),
                port,
                inode: u64::from(port),
                uid: Some(0),
                pid: owner.map(|(pid, _)| pid),
                process: owner.map(|(_, name)| name.to_string()),
            };
        let mut tcp_states = BTreeMap::new();
        tcp_states.insert("ESTABLISHED".to_string(), 120);
        tcp_states.insert("LISTEN".to_string(), 3);
        tcp_states.insert("TIME_WAIT".to_string(), 41);
        Network {
            interfaces: vec![
                interface("eth0", 1_572_864.0, 309_000.0),
                interface("lo", 0.0, 0.0),
            ],
            tcp_states,
            tcp_retransmits: Some(4521),
            tcp_retransmits_in_interval: Some(9),
            listening: vec![
                socket("udp6", "::1", 323, None),
                socket("tcp6", "::", 5001, Some((4242, "aegisir"))),
                socket("udp", "127.0.0.53", 53, Some((600, "systemd-resolve"))),
                socket("tcp", "0.0.0.0", 22, Some((700, "sshd"))),
            ],
        }
    }

    fn containers() -> Vec<Container> {
        vec![
            Container {
                runtime: "systemd".into(),
                id: "nginx.service".into(),
                name: "nginx.service".into(),
                cgroup: "/system.slice/nginx.service".into(),
                pids: vec![300, 301],
                cpu_pct: 2.5,
                rss_bytes: 80 * MIB,
                ..Container::default()
            },
            Container {
                runtime: "containerd".into(),
                id: "4f".repeat(32),
                name: "api".into(),
                pod: Some("api-7d9c".into()),
                namespace: Some("shop".into()),
                cgroup: "/kubepods.slice/x".into(),
                pids: vec![812],
                cpu_pct: 187.5,
                rss_bytes: 3 * GIB,
                memory_current_bytes: Some(3 * GIB + 300 * MIB),
                memory_max_bytes: Some(4 * GIB),
                nr_throttled_in_interval: Some(8),
                throttled_usecs_per_sec: Some(125_000.0),
                oom_kills: Some(1),
                oom_kills_in_interval: Some(0),
                pressure: None,
                ..Container::default()
            },
        ]
    }

    fn gaps() -> Vec<Gap> {
        vec![
            Gap {
                collector: "processes".into(),
                subject: "proc/1500/io".into(),
                reason: GapReason::PermissionDenied,
                detail: "Permission denied (os error 13)".into(),
            },
            Gap {
                collector: "filesystems".into(),
                subject: "/mnt/my share".into(),
                reason: GapReason::Error,
                detail: "Host is down (os error 112)".into(),
            },
        ]
    }

    /// Builds a snapshot with every kind of value a report shows, hostile names included.
    fn full_snapshot() -> Snapshot {
        Snapshot {
            schema_version: aegisir_platform::SCHEMA_VERSION,
            captured_at: Utc.with_ymd_and_hms(2026, 12, 3, 21, 45, 38).unwrap(),
            interval_secs: 1.0,
            backend: "linux".into(),
            sources: Sources {
                procfs: "/proc".into(),
                sysfs: "/sys".into(),
                rootfs: "/".into(),
                net_namespace: "self".into(),
            },
            host: host(),
            cpu: Some(Cpu {
                total: usage(None, 60.1, 20.3, 16.4),
                per_cpu: vec![usage(Some(0), 90.0, 5.0, 0.0)],
            }),
            memory: Some(memory()),
            processes: Processes {
                list: processes(),
                total: 9,
                running: 1,
                sleeping: 7,
                zombies: 1,
                kernel_threads: 1,
                vanished: 2,
                unreadable: 1,
                complete: false,
            },
            disks: disks(),
            filesystems: filesystems(),
            network: Some(network()),
            containers: containers(),
            gaps: gaps(),
        }
    }

    /// Builds a snapshot in which nothing could be read.
    fn unreadable_snapshot() -> Snapshot {
        Snapshot {
            captured_at: Utc.with_ymd_and_hms(2026, 12, 3, 21, 45, 38).unwrap(),
            processes: Processes {
                list: vec![Process {
                    pid: 77,
                    state: "S".into(),
                    name: "ghost".into(),
                    ..Process::default()
                }],
                total: 1,
                complete: false,
                ..Processes::default()
            },
            disks: Vec::new(),
            ..Snapshot::default()
        }
    }

    fn golden_dir(case: &str) -> PathBuf {
        let base = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/golden/reports");
        match case {
            "" => base,
            other => base.join(other),
        }
    }

    /// Compares every report with its expected file; with `UPDATE_GOLDEN=1` in the
    /// environment the expected files are rewritten instead.
    fn assert_golden(case: &str, snapshot: &Snapshot) {
        let dir = golden_dir(case);
        let update = std::env::var_os("UPDATE_GOLDEN").is_some_and(|value| value == "1");
        for report in render_all(snapshot) {
            let path = dir.join(&report.file_name);
            if update {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&path, &report.text).unwrap();
                continue;
            }
            let expected = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
            assert_eq!(report.text, expected, "{} differs", path.display());
        }
    }

    #[test]
    fn reports_match_golden_files() {
        assert_golden("", &full_snapshot());
    }

    #[test]
    fn unreadable_snapshot_matches_golden_files() {
        assert_golden("unreadable", &unreadable_snapshot());
    }

    #[test]
    fn render_all_names_every_report() {
        let names: Vec<String> = render_all(&full_snapshot())
            .into_iter()
            .map(|report| report.file_name)
            .collect();
        let expected = [
            "top.txt",
            "processes.txt",
            "memory.txt",
            "disk_usage.txt",
            "iostat.txt",
            "network.txt",
            "containers.txt",
            "gaps.txt",
        ];
        assert_eq!(names, expected);
    }

    fn report_text(snapshot: &Snapshot, file_name: &str) -> String {
        render_all(snapshot)
            .into_iter()
            .find(|report| report.file_name == file_name)
            .map(|report| report.text)
            .unwrap()
    }

    #[test]
    fn unreadable_process_fields_render_as_dash() {
        let text = report_text(&full_snapshot(), "processes.txt");
        let line = text
            .lines()
            .find(|line| line.contains("(secretd)"))
            .unwrap();
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(fields[0], "1001", "user falls back to the uid");
        assert_eq!(fields[1], "1500");
        assert_eq!(&fields[2..9], ["-"; 7], "PPID to FDS are unreadable");
        assert_eq!(fields[9], "S");
        assert_eq!(
            &fields[10..13],
            ["-"; 3],
            "START, READ and WRITE are unreadable"
        );
        assert!(
            !line.contains(" 0 "),
            "no unreadable value renders as 0: {line}"
        );
    }

    #[test]
    fn missing_memory_is_not_zero() {
        let text = report_text(&unreadable_snapshot(), "memory.txt");
        assert!(!text.contains('0'), "{text}");
        let top = report_text(&unreadable_snapshot(), "top.txt");
        assert!(top.contains("MiB Mem : -"), "{top}");
        assert!(top.contains("load average: -"), "{top}");
    }

    #[test]
    fn control_characters_never_reach_reports() {
        for report in render_all(&full_snapshot()) {
            let bad = report.text.chars().find(|c| c.is_control() && *c != '\n');
            assert_eq!(bad, None, "{} has a control character", report.file_name);
        }
        let text = report_text(&full_snapshot(), "processes.txt");
        assert!(text.contains("evil\\x1b[2J\\r--wipe\\ttab"), "{text}");
    }

    #[test]
    fn slack_markup_passes_through_unchanged() {
        let snapshot = full_snapshot();
        assert!(report_text(&snapshot, "processes.txt").contains("<!channel> --ping @here"));
        assert!(report_text(&snapshot, "top.txt").contains("<!channel>"));
    }

    #[test]
    fn top_table_counts_rows_left_out() {
        let mut snapshot = full_snapshot();
        let template = snapshot.processes.list[2].clone();
        snapshot.processes.list = (1..=35)
            .map(|pid| Process {
                pid,
                ..template.clone()
            })
            .collect();
        let text = report_text(&snapshot, "top.txt");
        assert!(
            text.ends_with("... and 5 more processes (see processes.txt)\n"),
            "{text}"
        );
        let rows = text.lines().filter(|line| line.contains("python3")).count();
        assert_eq!(rows, 30);
    }

    #[test]
    fn top_by_cpu_orders_by_interval_cpu() {
        let snapshot = full_snapshot();
        let pids: Vec<i32> = top_by_cpu(&snapshot, 4).iter().map(|p| p.pid).collect();
        assert_eq!(pids, [812, 1200, 1201, 4242]);
    }

    #[test]
    fn top_by_cpu_puts_unknown_cpu_last() {
        let snapshot = full_snapshot();
        let all = top_by_cpu(&snapshot, usize::MAX);
        assert_eq!(all.len(), snapshot.processes.list.len());
        assert_eq!(all.last().map(|p| p.pid), Some(1500));
    }

    #[test]
    fn top_by_memory_orders_by_resident_size() {
        let snapshot = full_snapshot();
        let pids: Vec<i32> = top_by_memory(&snapshot, 3).iter().map(|p| p.pid).collect();
        assert_eq!(pids, [812, 1, 913]);
    }

    #[test]
    fn fullest_filesystem_skips_unreadable() {
        let snapshot = full_snapshot();
        let fullest = fullest_filesystem(&snapshot).unwrap();
        assert_eq!(fullest.mount_point, "/var");
        assert_eq!(fullest_filesystem(&unreadable_snapshot()), None);
    }

    #[test]
    fn headlines_read_as_documented() {
        let snapshot = full_snapshot();
        assert_eq!(
            memory_headline(&snapshot),
            "mem 81% used (13.0G of 16.0G), swap 0%, load 3.20 2.90 2.10"
        );
        assert_eq!(
            cpu_headline(&snapshot),
            "cpu 82% busy (us 60.1, sy 20.3, wa 2.0, st 0.0)"
        );
        let fullest = fullest_filesystem(&snapshot).unwrap();
        assert_eq!(
            filesystem_headline(fullest),
            "/var 93% used (44G of 50G, xfs)"
        );
    }

    #[test]
    fn headlines_mark_unreadable_values() {
        let snapshot = unreadable_snapshot();
        assert_eq!(memory_headline(&snapshot), "mem ?, swap ?, load ?");
        assert_eq!(cpu_headline(&snapshot), "cpu ?");
    }

    fn hostile_text() -> impl Strategy<Value = String> {
        proptest::string::string_regex("(\\PC|[\\x00-\\x1f\\x7f\\u{80}-\\u{9f}\\u{202e}])*")
            .unwrap()
            .prop_map(|text| text.chars().take(60).collect())
    }

    proptest! {
        #[test]
        fn rendering_never_panics_and_stays_terminal_safe(
            name in hostile_text(),
            cmdline in hostile_text(),
            user in hostile_text(),
            mount in hostile_text(),
            cpu in proptest::option::of(any::<f64>()),
            rss in proptest::option::of(any::<u64>()),
        ) {
            let mut snapshot = full_snapshot();
            let target = &mut snapshot.processes.list[2];
            target.name = name;
            target.cmdline = cmdline;
            target.user = Some(user);
            target.cpu_pct = cpu;
            target.rss_bytes = rss;
            snapshot.filesystems[0].mount_point = mount;

            for report in render_all(&snapshot) {
                let bad = report.text.chars().find(|c| c.is_control() && *c != '\n');
                prop_assert_eq!(bad, None, "{}", report.file_name);
            }
            let _ = memory_headline(&snapshot);
            let _ = top_by_cpu(&snapshot, 5);
        }
    }
}
