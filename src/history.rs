//! The history recorder: what the host did in the minutes before an alert.
//!
//! Alertmanager fires after a rule's `for:` and its own `group_wait`, so the process that
//! caused an alert may be gone when the capture runs. A background thread therefore takes a
//! cheap counters sample ([`Scope::Counters`]) every interval (default 5 s). From each pair of
//! samples it derives one [`HistoryPoint`]: CPU, load, memory, pressure, disk and network
//! rates, and the top processes by CPU and by memory. The points of the retention period
//! (default 10 minutes) stay in a bounded ring. Every bundle gets the ring as `history.json` and
//! `history.txt`.
//!
//! The newest sample is also kept: a capture uses it as its baseline when it is at most two
//! intervals old, so an alert-time capture reads the host once instead of sleeping between two
//! samples.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use aegisir_platform::{Collector, Process, Sample, Scope, Snapshot};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use crate::config::HistorySettings;
use crate::report::{self, format_bytes, Report};

/// Processes kept per point in each top list.
pub const TOP_PROCESSES: usize = 5;

/// Maximum characters of a top process's command line kept in `history.json`.
pub const MAX_CMDLINE_CHARS: usize = 200;

/// Maximum characters of a command line shown in `history.txt`.
const TEXT_CMDLINE_CHARS: usize = 60;

/// The host at one history point, with rates over the interval since the point before.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryPoint {
    pub time: DateTime<Utc>,
    pub interval_secs: f64,
    pub cpu_busy_pct: Option<f64>,
    pub cpu_iowait_pct: Option<f64>,
    pub load_one: Option<f64>,
    pub memory_total_bytes: Option<u64>,
    pub memory_available_bytes: Option<u64>,
    pub swap_used_bytes: Option<u64>,
    /// `some avg10` of `/proc/pressure/cpu`, `memory` and `io`.
    pub pressure_cpu_some_pct: Option<f64>,
    pub pressure_memory_some_pct: Option<f64>,
    pub pressure_io_some_pct: Option<f64>,
    /// Summed over whole devices (partitions left out so they are not counted twice).
    pub disk_read_bytes_per_sec: Option<f64>,
    pub disk_write_bytes_per_sec: Option<f64>,
    /// Summed over interfaces other than loopback.
    pub net_rx_bytes_per_sec: Option<f64>,
    pub net_tx_bytes_per_sec: Option<f64>,
    pub top_cpu: Vec<HistoryProcess>,
    pub top_memory: Vec<HistoryProcess>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryProcess {
    pub pid: i32,
    pub name: String,
    pub user: Option<String>,
    /// The command line, secrets masked unless `capture.keep_secrets`, cut to
    /// [`MAX_CMDLINE_CHARS`]; empty for kernel threads and zombies.
    pub cmdline: String,
    pub cpu_pct: Option<f64>,
    pub rss_bytes: Option<u64>,
    pub mem_pct: Option<f64>,
}

impl HistoryProcess {
    /// Copies a top process. History points are built from counters samples that
    /// `redact_capture` never sees, so the name and command line are masked here.
    fn of(process: &Process, keep_secrets: bool) -> HistoryProcess {
        let (name, cmdline) = if keep_secrets {
            (process.name.clone(), process.cmdline.clone())
        } else {
            let name = crate::redact::redact_process_name(&process.name).into_owned();
            let cmdline = crate::redact::redact_command_line(&process.cmdline).into_owned();
            (name, cmdline)
        };
        HistoryProcess {
            pid: process.pid,
            name,
            user: process.user.clone(),
            cmdline: cut_chars(&cmdline, MAX_CMDLINE_CHARS).to_string(),
            cpu_pct: process.cpu_pct,
            rss_bytes: process.rss_bytes,
            mem_pct: process.mem_pct,
        }
    }
}

/// Returns the first `max_chars` characters of `text`.
fn cut_chars(text: &str, max_chars: usize) -> &str {
    match text.char_indices().nth(max_chars) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

impl HistoryPoint {
    /// Picks the history figures out of a snapshot derived from two counters samples. Secrets
    /// in the top processes' names and command lines are masked unless `keep_secrets`.
    pub fn from_snapshot(snapshot: &Snapshot, keep_secrets: bool) -> HistoryPoint {
        let cpu = snapshot.cpu.as_ref().map(|cpu| cpu.total);
        let memory = snapshot.memory.as_ref();
        let pressure = snapshot.host.pressure.as_ref();
        let some_avg10 =
            |resource: Option<&aegisir_platform::PressureResource>| resource.map(|r| r.some.avg10);
        let (disk_read, disk_write) = disk_rates(snapshot);
        let (net_rx, net_tx) = network_rates(snapshot);

        HistoryPoint {
            time: snapshot.captured_at,
            interval_secs: snapshot.interval_secs,
            cpu_busy_pct: cpu.map(|c| c.busy_pct),
            cpu_iowait_pct: cpu.map(|c| c.iowait_pct),
            load_one: snapshot.host.load.map(|load| load.one),
            memory_total_bytes: memory.and_then(|m| m.total_bytes),
            memory_available_bytes: memory.and_then(|m| m.available_bytes),
            swap_used_bytes: memory
                .and_then(|m| Some(m.swap_total_bytes?.saturating_sub(m.swap_free_bytes?))),
            pressure_cpu_some_pct: some_avg10(pressure.and_then(|p| p.cpu.as_ref())),
            pressure_memory_some_pct: some_avg10(pressure.and_then(|p| p.memory.as_ref())),
            pressure_io_some_pct: some_avg10(pressure.and_then(|p| p.io.as_ref())),
            disk_read_bytes_per_sec: disk_read,
            disk_write_bytes_per_sec: disk_write,
            net_rx_bytes_per_sec: net_rx,
            net_tx_bytes_per_sec: net_tx,
            top_cpu: top(report::top_by_cpu(snapshot, TOP_PROCESSES), keep_secrets),
            top_memory: top(report::top_by_memory(snapshot, TOP_PROCESSES), keep_secrets),
        }
    }
}

fn top(processes: Vec<&Process>, keep_secrets: bool) -> Vec<HistoryProcess> {
    processes
        .into_iter()
        .map(|process| HistoryProcess::of(process, keep_secrets))
        .collect()
}

/// Read and write rates in bytes per second over whole devices; `None` without disks.
fn disk_rates(snapshot: &Snapshot) -> (Option<f64>, Option<f64>) {
    if snapshot.disks.is_empty() {
        return (None, None);
    }
    let names: Vec<&str> = snapshot.disks.iter().map(|d| d.device.as_str()).collect();
    let whole = snapshot
        .disks
        .iter()
        .filter(|disk| !is_partition_of_any(&disk.device, &names));
    let (read, write) = whole.fold((0.0, 0.0), |(r, w), disk| {
        (
            r + disk.read_kb_per_sec * 1024.0,
            w + disk.write_kb_per_sec * 1024.0,
        )
    });
    (Some(read), Some(write))
}

/// True for `sda1` next to `sda` and `nvme0n1p2` next to `nvme0n1`.
fn is_partition_of_any(device: &str, devices: &[&str]) -> bool {
    devices.iter().any(|parent| {
        let Some(rest) = device.strip_prefix(parent) else {
            return false;
        };
        let digits = rest.strip_prefix('p').unwrap_or(rest);
        !rest.is_empty() && !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
    })
}

fn network_rates(snapshot: &Snapshot) -> (Option<f64>, Option<f64>) {
    let Some(network) = &snapshot.network else {
        return (None, None);
    };
    let interfaces = network.interfaces.iter().filter(|i| i.name != "lo");
    let (rx, tx) = interfaces.fold((0.0, 0.0), |(rx, tx), interface| {
        (
            rx + interface.rx_bytes_per_sec,
            tx + interface.tx_bytes_per_sec,
        )
    });
    (Some(rx), Some(tx))
}

/// The ring of points and the newest sample, shared by the recorder and the worker.
#[derive(Debug)]
pub struct History {
    settings: HistorySettings,
    /// `capture.keep_secrets`: whether command lines are kept unmasked.
    keep_secrets: bool,
    points: Mutex<VecDeque<HistoryPoint>>,
    latest: Mutex<Option<Arc<Sample>>>,
}

impl History {
    /// Creates an empty history that masks secrets in command lines.
    pub fn new(settings: HistorySettings) -> History {
        History::with_keep_secrets(settings, false)
    }

    /// Creates an empty history; `keep_secrets` is `capture.keep_secrets`.
    pub fn with_keep_secrets(settings: HistorySettings, keep_secrets: bool) -> History {
        History {
            settings,
            keep_secrets,
            points: Mutex::new(VecDeque::new()),
            latest: Mutex::new(None),
        }
    }

    pub fn interval(&self) -> Duration {
        self.settings.interval
    }

    /// Returns the maximum number of points in the ring: the retention divided by the interval.
    pub fn capacity(&self) -> usize {
        if self.settings.interval.is_zero() {
            return 0;
        }
        let ratio = self.settings.retention.as_secs_f64() / self.settings.interval.as_secs_f64();
        (ratio.ceil() as usize).max(1)
    }

    pub fn push(&self, point: HistoryPoint) {
        let capacity = self.capacity();
        let mut points = self.points.lock().unwrap_or_else(|e| e.into_inner());
        points.push_back(point);
        while points.len() > capacity {
            points.pop_front();
        }
    }

    pub fn points(&self) -> Vec<HistoryPoint> {
        let points = self.points.lock().unwrap_or_else(|e| e.into_inner());
        points.iter().cloned().collect()
    }

    fn set_latest(&self, sample: Arc<Sample>) {
        *self.latest.lock().unwrap_or_else(|e| e.into_inner()) = Some(sample);
    }

    /// Returns the newest sample if it is at most two intervals old, as a capture's baseline.
    pub fn recent_baseline(&self) -> Option<Arc<Sample>> {
        let latest = self
            .latest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()?;
        let age = latest.monotonic.elapsed();
        (age <= self.settings.interval * 2).then_some(latest)
    }

    /// Renders `history.json`: the settings and every point, oldest first.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "interval_secs": self.settings.interval.as_secs_f64(),
            "retention_secs": self.settings.retention.as_secs_f64(),
            "points": self.points(),
        })
    }

    /// Renders the bundle files of the history: `history.json` and the `history.txt` report.
    pub fn bundle_files(&self) -> (Vec<(String, serde_json::Value)>, Report) {
        let json = vec![("history.json".to_string(), self.to_json())];
        let text = Report {
            file_name: "history.txt".to_string(),
            text: render_text(&self.points(), self.settings.interval),
        };
        (json, text)
    }
}

/// Renders `history.txt`: one line per point, newest last, with the top CPU process of each.
pub fn render_text(points: &[HistoryPoint], interval: Duration) -> String {
    let mut text = String::new();
    if interval.is_zero() {
        text.push_str("History recorder is off (history.interval_secs = 0).\n");
        return text;
    }
    let _ = writeln!(
        text,
        "Host history, one point every {} s, oldest first. '-' marks a value that was not read.\n",
        interval.as_secs_f64()
    );
    let _ = writeln!(
        text,
        "{:<24} {:>6} {:>6} {:>9} {:>6} {:>6} {:>9} {:>9} {:>9} {:>9}  TOP CPU",
        "TIME",
        "CPU%",
        "LOAD1",
        "MEM AVAIL",
        "PSI-C",
        "PSI-M",
        "DISK R/s",
        "DISK W/s",
        "NET RX/s",
        "NET TX/s"
    );
    if points.is_empty() {
        text.push_str("(no points recorded yet)\n");
    }
    for point in points {
        let _ = writeln!(text, "{}", point_line(point));
    }
    text
}

fn point_line(point: &HistoryPoint) -> String {
    let top_cpu = point
        .top_cpu
        .first()
        .map(top_cpu_text)
        .unwrap_or_else(|| "-".to_string());
    format!(
        "{:<24} {:>6} {:>6} {:>9} {:>6} {:>6} {:>9} {:>9} {:>9} {:>9}  {}",
        point.time.to_rfc3339_opts(SecondsFormat::Millis, true),
        pct(point.cpu_busy_pct),
        point
            .load_one
            .map(|l| format!("{l:.2}"))
            .unwrap_or_else(|| "-".into()),
        bytes(point.memory_available_bytes),
        pct(point.pressure_cpu_some_pct),
        pct(point.pressure_memory_some_pct),
        rate(point.disk_read_bytes_per_sec),
        rate(point.disk_write_bytes_per_sec),
        rate(point.net_rx_bytes_per_sec),
        rate(point.net_tx_bytes_per_sec),
        top_cpu,
    )
}

/// Formats a top process as `name (pid) cpu% user command…`.
fn top_cpu_text(process: &HistoryProcess) -> String {
    let name = report::text::terminal_safe(&process.name);
    let user = process.user.as_deref().unwrap_or("-");
    let user = report::text::terminal_safe(user);
    let mut text = format!(
        "{} ({}) {}% {}",
        name,
        process.pid,
        pct(process.cpu_pct),
        user
    );
    if !process.cmdline.is_empty() {
        let command = cut_chars(&process.cmdline, TEXT_CMDLINE_CHARS);
        let cut = command.len() < process.cmdline.len();
        text.push(' ');
        text.push_str(&report::text::terminal_safe(command));
        if cut {
            text.push('…');
        }
    }
    text
}

fn pct(value: Option<f64>) -> String {
    value
        .map(|v| format!("{v:.1}"))
        .unwrap_or_else(|| "-".into())
}

fn bytes(value: Option<u64>) -> String {
    value.map(format_bytes).unwrap_or_else(|| "-".into())
}

fn rate(value: Option<f64>) -> String {
    value
        .map(|v| format_bytes(v.max(0.0).round() as u64))
        .unwrap_or_else(|| "-".into())
}

/// The running recorder thread; dropping the handle without [`Recorder::stop`] also stops it.
pub struct Recorder {
    stop: mpsc::Sender<()>,
    thread: Option<JoinHandle<()>>,
}

impl Recorder {
    /// Starts the recorder thread. It skips a tick while `host_lock` is held by a capture, so
    /// the history never competes with a capture for the host.
    pub fn start(
        history: Arc<History>,
        collector: Arc<Collector>,
        host_lock: Arc<Mutex<()>>,
        nice: i32,
    ) -> std::io::Result<Recorder> {
        let (stop, stopped) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("aegisir-history".to_string())
            .spawn(move || {
                crate::worker::lower_thread_priority(nice);
                record(&history, &collector, &host_lock, &stopped);
            })?;
        Ok(Recorder {
            stop,
            thread: Some(thread),
        })
    }

    pub fn stop(mut self) {
        let _ = self.stop.send(());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn record(
    history: &History,
    collector: &Collector,
    host_lock: &Mutex<()>,
    stopped: &mpsc::Receiver<()>,
) {
    let interval = history.settings.interval;
    let mut previous: Option<Arc<Sample>> = None;
    let mut next_tick = Instant::now();
    tracing::info!(
        interval_secs = interval.as_secs_f64(),
        "history recorder started"
    );

    // A message or a dropped sender both mean stop; only a timeout means the next tick.
    while let Err(RecvTimeoutError::Timeout) =
        stopped.recv_timeout(next_tick.saturating_duration_since(Instant::now()))
    {
        next_tick += interval;
        if next_tick < Instant::now() {
            next_tick = Instant::now() + interval;
        }

        let Ok(_host) = host_lock.try_lock() else {
            tracing::debug!("history sample skipped while a capture runs");
            continue;
        };
        let sample = Arc::new(collector.sample(Scope::Counters));
        if let Some(previous) = &previous {
            let snapshot = collector.derive(previous, &sample);
            history.push(HistoryPoint::from_snapshot(&snapshot, history.keep_secrets));
        }
        history.set_latest(sample.clone());
        previous = Some(sample);
    }
    tracing::info!("history recorder stopped");
}

#[cfg(test)]
mod tests {
    use aegisir_platform::{CpuUsage, DiskIo, Interface, Network};

    use super::*;

    fn settings(interval_secs: u64, retention_secs: u64) -> HistorySettings {
        HistorySettings {
            interval: Duration::from_secs(interval_secs),
            retention: Duration::from_secs(retention_secs),
        }
    }

    fn point(seconds: i64) -> HistoryPoint {
        let snapshot = Snapshot {
            captured_at: DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap(),
            interval_secs: 5.0,
            ..Snapshot::default()
        };
        HistoryPoint::from_snapshot(&snapshot, false)
    }

    #[test]
    fn ring_keeps_retention_only() {
        let history = History::new(settings(5, 20));
        assert_eq!(history.capacity(), 4);
        for i in 0..10 {
            history.push(point(i * 5));
        }
        let points = history.points();
        assert_eq!(points.len(), 4);
        assert_eq!(points[0].time, point(30).time);
        assert_eq!(points[3].time, point(45).time);
    }

    #[test]
    fn point_takes_rates_from_snapshot() {
        let mut snapshot = Snapshot {
            interval_secs: 5.0,
            ..Snapshot::default()
        };
        snapshot.cpu = Some(aegisir_platform::Cpu {
            total: CpuUsage {
                busy_pct: 42.5,
                iowait_pct: 3.0,
                ..CpuUsage::default()
            },
            per_cpu: Vec::new(),
        });
        snapshot.disks = vec![
            disk("sda", 100.0, 10.0),
            disk("sda1", 100.0, 10.0),
            disk("nvme0n1", 1.0, 2.0),
            disk("nvme0n1p1", 1.0, 2.0),
        ];
        snapshot.network = Some(Network {
            interfaces: vec![
                interface("lo", 1e6),
                interface("eth0", 300.0),
                interface("eth1", 200.0),
            ],
            ..Network::default()
        });

        let point = HistoryPoint::from_snapshot(&snapshot, false);

        assert_eq!(point.cpu_busy_pct, Some(42.5));
        assert_eq!(point.cpu_iowait_pct, Some(3.0));
        assert_eq!(point.disk_read_bytes_per_sec, Some(101.0 * 1024.0));
        assert_eq!(point.disk_write_bytes_per_sec, Some(12.0 * 1024.0));
        assert_eq!(point.net_rx_bytes_per_sec, Some(500.0));
        assert_eq!(point.memory_available_bytes, None);
        assert_eq!(point.load_one, None);
    }

    #[test]
    fn partitions_are_told_from_disks() {
        let names = ["sda", "sda1", "nvme0n1", "nvme0n1p2", "dm-0", "sdb"];
        assert!(is_partition_of_any("sda1", &names));
        assert!(is_partition_of_any("nvme0n1p2", &names));
        assert!(!is_partition_of_any("sda", &names));
        assert!(!is_partition_of_any("sdb", &names));
        assert!(!is_partition_of_any("dm-0", &names));
        assert!(!is_partition_of_any("nvme0n1", &names));
    }

    #[test]
    fn text_marks_missing_values() {
        let text = render_text(&[point(0)], Duration::from_secs(5));
        let line = text.lines().last().unwrap();
        assert!(line.starts_with("2027-01-15T08:00:00.000Z"), "{line}");
        assert!(line.contains(" - "), "{line}");
        assert!(text.contains("TOP CPU"), "{text}");
    }

    #[test]
    fn baseline_absent_without_samples() {
        let history = History::new(settings(5, 600));
        assert!(history.recent_baseline().is_none());
    }

    #[test]
    fn recorder_fills_ring_from_live_host() {
        let options = aegisir_platform::CaptureOptions::default();
        let Ok(collector) = Collector::new(options) else {
            return;
        };
        let settings = HistorySettings {
            interval: Duration::from_millis(100),
            retention: Duration::from_secs(60),
        };
        let history = Arc::new(History::new(settings));
        let recorder = Recorder::start(
            history.clone(),
            Arc::new(collector),
            Arc::new(Mutex::new(())),
            0,
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(450));
        recorder.stop();

        let points = history.points();
        assert!(points.len() >= 2, "{} points", points.len());
        assert!(points.iter().all(|p| p.interval_secs > 0.05));
        assert!(history.recent_baseline().is_some());
        assert!(points.iter().any(|p| p.cpu_busy_pct.is_some()));
        let tops: Vec<&HistoryProcess> = points.iter().flat_map(|p| &p.top_memory).collect();
        assert!(tops.iter().any(|p| p.user.is_some()), "{tops:?}");
        assert!(tops.iter().any(|p| !p.cmdline.is_empty()), "{tops:?}");
    }

    fn busy_process(pid: i32, cmdline: &str) -> Process {
        Process {
            pid,
            name: "python3".to_string(),
            uid: Some(0),
            user: Some("root".to_string()),
            cmdline: cmdline.to_string(),
            cpu_pct: Some(90.0 - pid as f64),
            ..Process::default()
        }
    }

    #[test]
    fn top_processes_keep_user_and_masked_cmdline() {
        let mut snapshot = Snapshot::default();
        let long_argument = "x".repeat(300);
        snapshot.processes.list = vec![
            busy_process(1, "python3 /srv/worker.py --password=hunter2"),
            busy_process(2, &format!("python3 /srv/batch.py {long_argument}")),
        ];

        let point = HistoryPoint::from_snapshot(&snapshot, false);

        let first = &point.top_cpu[0];
        assert_eq!(first.user.as_deref(), Some("root"));
        assert!(first
            .cmdline
            .starts_with("python3 /srv/worker.py --password="));
        assert!(!first.cmdline.contains("hunter2"), "{}", first.cmdline);
        let second = &point.top_cpu[1];
        assert_eq!(second.cmdline.chars().count(), MAX_CMDLINE_CHARS);
        assert!(second.cmdline.starts_with("python3 /srv/batch.py xxx"));

        let kept = HistoryPoint::from_snapshot(&snapshot, true);
        assert_eq!(
            kept.top_cpu[0].cmdline,
            "python3 /srv/worker.py --password=hunter2"
        );
    }

    #[test]
    fn text_shows_user_and_short_cmdline() {
        let mut snapshot = Snapshot {
            captured_at: DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
            ..Snapshot::default()
        };
        let cmdline = format!("python3 /srv/batch.py {}", "y".repeat(80));
        snapshot.processes.list = vec![busy_process(7, &cmdline)];
        let point = HistoryPoint::from_snapshot(&snapshot, false);

        let text = render_text(&[point], Duration::from_secs(5));

        let line = text.lines().last().unwrap();
        let expected = format!("python3 (7) 83.0% root {}…", &cmdline[..TEXT_CMDLINE_CHARS]);
        assert!(line.ends_with(&expected), "{line}");
    }

    fn disk(device: &str, read_kb: f64, write_kb: f64) -> DiskIo {
        DiskIo {
            device: device.to_string(),
            read_kb_per_sec: read_kb,
            write_kb_per_sec: write_kb,
            ..DiskIo::default()
        }
    }

    fn interface(name: &str, rx: f64) -> Interface {
        Interface {
            name: name.to_string(),
            rx_bytes_per_sec: rx,
            tx_bytes_per_sec: rx,
            ..Interface::default()
        }
    }
}
