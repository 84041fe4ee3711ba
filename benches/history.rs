//! The costs of keeping history: an alert-time capture against a recent history sample, the
//! background recorder's CPU use, and the daemon's resident memory with a full history.
//!
//! 1. Alert-time capture. A counters sample is taken beforehand, as the recorder keeps one;
//!    the measured pass is then one full sample and the snapshot derived against that
//!    baseline. The read-only pass reads the same files and links (every key of the full
//!    sample's raw evidence) and lists the directories whose listings it recorded. Both run
//!    on `fixtures/hosts/small` and on the live `/proc`, through criterion and then as the
//!    median of 15 alternating runs with their ratio.
//! 2. Recorder CPU. With 500 extra `sleep` processes, the history recorder runs at a 5 s
//!    interval for 60 s; its thread's utime + stime from `/proc/self/task/TID/stat` over the
//!    wall time is its share of one core.
//! 3. Daemon memory. `aegisir serve` (the bench profile build) runs with the same 500
//!    processes, a 0.5 s history interval and 60 s retention: 120 points, as many as 10
//!    minutes at the default 5 s. VmRSS is read from `/proc/PID/status` once the ring is full.
//!
//! Run with `cargo bench --bench history`. Set `HISTORY_BENCH_SECS` to shorten parts 2 and 3.

use std::fs;
use std::hint::black_box;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aegisir::config::HistorySettings;
use aegisir::history::{History, Recorder};
use aegisir_platform::raw::{read_whole, LISTING};
use aegisir_platform::{CaptureOptions, Collector, RawEntry, Roots, Sample, Scope};
use criterion::Criterion;

const EXTRA_PROCESSES: usize = 500;

/// A tree to capture, its baseline sample and the reads its full sample made.
struct Target {
    label: &'static str,
    collector: Collector,
    baseline: Sample,
    files: Vec<PathBuf>,
    links: Vec<PathBuf>,
    listings: Vec<PathBuf>,
    process_count: usize,
}

fn alert_capture(target: &Target) -> aegisir_platform::Capture {
    let current = target.collector.sample(Scope::Full);
    target.collector.snapshot(&target.baseline, current)
}

/// Maps a raw evidence key (`proc/1/stat`, `sys/...`, `root/...`) back to its path.
fn path_of(roots: &Roots, key: &str) -> Option<PathBuf> {
    let (tree, relative) = key.split_once('/')?;
    let root = match tree {
        "proc" => &roots.procfs,
        "sys" => &roots.sysfs,
        "root" => &roots.rootfs,
        _ => return None,
    };
    Some(root.join(relative))
}

fn prepare(label: &'static str, roots: Roots) -> Target {
    let options = CaptureOptions {
        roots: roots.clone(),
        interval: Duration::ZERO,
        ..CaptureOptions::default()
    };
    let collector = Collector::new(options).expect("open the procfs root");
    let baseline = collector.sample(Scope::Counters);
    let capture = collector.snapshot(&baseline, collector.sample(Scope::Full));

    let (mut files, mut links, mut listings) = (Vec::new(), Vec::new(), Vec::new());
    for (key, entry) in &capture.raw.entries {
        let Some(path) = path_of(&roots, key) else {
            continue;
        };
        let is_listing = path.file_name().is_some_and(|name| name == LISTING);
        match entry {
            RawEntry::File(_) if is_listing => listings.push(path.parent().unwrap().to_path_buf()),
            RawEntry::File(_) => files.push(path),
            RawEntry::Link(_) => links.push(path),
        }
    }
    Target {
        label,
        collector,
        baseline,
        files,
        links,
        listings,
        process_count: capture.snapshot.processes.list.len(),
    }
}

/// Lists, reads and follows what one alert-time capture did, reading files the way the
/// capture's reader does. Entries gone since then are skipped, as the capture skips them.
fn read_pass(target: &Target) -> u64 {
    let mut count = 0;
    for listing in &target.listings {
        if let Ok(entries) = fs::read_dir(listing) {
            count += entries.count() as u64;
        }
    }
    for path in &target.files {
        count += read_whole(path).map_or(0, |b| b.len() as u64);
    }
    for path in &target.links {
        count += fs::read_link(path).map_or(0, |t| t.as_os_str().len() as u64);
    }
    count
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn timed(pass: impl FnOnce()) -> f64 {
    let started = Instant::now();
    pass();
    started.elapsed().as_secs_f64()
}

fn bench_alert_capture(criterion: &mut Criterion, target: &Target) {
    let mut group = criterion.benchmark_group(format!("alert_capture/{}", target.label));
    group.sample_size(20);
    group.bench_function("full_sample_and_snapshot", |b| {
        b.iter(|| black_box(alert_capture(target)))
    });
    group.bench_function("read_only", |b| b.iter(|| black_box(read_pass(target))));
    group.finish();
}

fn report_ratio(target: &Target) {
    let (mut capture_times, mut read_times) = (Vec::new(), Vec::new());
    for _ in 0..15 {
        capture_times.push(timed(|| {
            black_box(alert_capture(target));
        }));
        read_times.push(timed(|| {
            black_box(read_pass(target));
        }));
    }
    let (capture, read) = (median(capture_times), median(read_times));
    println!(
        "alert capture, {}: {} processes, {} files, {} links, {} listings; capture {:.2} ms, \
         read only {:.2} ms, ratio {:.2}",
        target.label,
        target.process_count,
        target.files.len(),
        target.links.len(),
        target.listings.len(),
        capture * 1e3,
        read * 1e3,
        capture / read
    );
}

/// Extra processes for the host to hold; killed and reaped when dropped.
struct Sleepers(Vec<Child>);

impl Sleepers {
    fn spawn(count: usize, secs: u64) -> Sleepers {
        let children = (0..count)
            .map(|_| {
                Command::new("sleep")
                    .arg(secs.to_string())
                    .stdin(Stdio::null())
                    .spawn()
                    .expect("start sleep")
            })
            .collect();
        Sleepers(children)
    }
}

impl Drop for Sleepers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn process_count() -> usize {
    fs::read_dir("/proc")
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
                .count()
        })
        .unwrap_or(0)
}

/// utime + stime in clock ticks of this process's thread named `name`.
fn thread_cpu_ticks(name: &str) -> Option<u64> {
    for entry in fs::read_dir("/proc/self/task").ok()?.filter_map(Result::ok) {
        let comm = fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        if comm.trim_end() != name {
            continue;
        }
        let stat = fs::read_to_string(entry.path().join("stat")).ok()?;
        let after_name = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = after_name.split(' ').collect();
        // Fields 14 and 15 of stat are utime and stime; `after_name` starts at field 3.
        let utime: u64 = fields.get(11)?.parse().ok()?;
        let stime: u64 = fields.get(12)?.parse().ok()?;
        return Some(utime + stime);
    }
    None
}

fn ticks_per_sec() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

fn measure_recorder(run: Duration) {
    let collector = Arc::new(Collector::new(CaptureOptions::default()).expect("open /proc"));
    let history = Arc::new(History::new(HistorySettings {
        interval: Duration::from_secs(5),
        retention: Duration::from_secs(600),
    }));
    let processes = process_count();
    let started = Instant::now();
    let recorder = Recorder::start(history.clone(), collector, Arc::new(Mutex::new(())), 10)
        .expect("start the recorder");
    std::thread::sleep(run);
    let ticks = thread_cpu_ticks("aegisir-history").expect("find the recorder thread");
    let wall = started.elapsed().as_secs_f64();
    recorder.stop();

    let cpu_secs = ticks as f64 / ticks_per_sec();
    println!(
        "recorder: {processes} processes, 5 s interval, {wall:.1} s, {} points, \
         {cpu_secs:.2} s CPU, {:.3} % of one core",
        history.points().len(),
        cpu_secs / wall * 100.0
    );
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().expect("local address").port()
}

fn vm_rss_kib(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn measure_daemon(fill: Duration) {
    let data_dir = tempfile::tempdir().expect("create a data directory");
    let log = fs::File::create(data_dir.path().join("serve.log")).expect("create the log");
    let retention_secs = fill.as_secs_f64().min(60.0);
    let mut server = Command::new(env!("CARGO_BIN_EXE_aegisir"))
        .args(["serve", "--history-interval", "0.5", "--listen"])
        .arg(format!("127.0.0.1:{}", free_port()))
        .arg("--data-dir")
        .arg(data_dir.path().join("logs"))
        .env("AEGISIR_HISTORY_RETENTION_SECS", retention_secs.to_string())
        .env_remove("SLACK_WEBHOOK_URL")
        .current_dir(data_dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start aegisir serve");

    std::thread::sleep(Duration::from_secs(2));
    let start_rss = vm_rss_kib(server.id());
    std::thread::sleep(fill);
    let full_rss = vm_rss_kib(server.id());
    let processes = process_count();
    let _ = server.kill();
    let _ = server.wait();

    let points = (retention_secs / 0.5).ceil();
    println!(
        "daemon: {processes} processes, {points} history points (0.5 s interval, \
         {retention_secs} s retention), VmRSS {} KiB after start, {} KiB with the ring full",
        start_rss.map_or("?".into(), |v| v.to_string()),
        full_rss.map_or("?".into(), |v| v.to_string())
    );
}

fn run_secs() -> u64 {
    std::env::var("HISTORY_BENCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60)
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/hosts/small");
    let targets = [
        prepare(
            "fixture_small",
            Roots {
                procfs: fixture.join("proc"),
                sysfs: fixture.join("sys"),
                rootfs: fixture.join("root"),
            },
        ),
        prepare("live_proc", Roots::default()),
    ];
    for target in &targets {
        bench_alert_capture(&mut criterion, target);
    }
    criterion.final_summary();
    for target in &targets {
        report_ratio(target);
    }

    let secs = run_secs();
    let _sleepers = Sleepers::spawn(EXTRA_PROCESSES, 2 * secs + 60);
    measure_recorder(Duration::from_secs(secs));
    measure_daemon(Duration::from_secs(secs + 2));
}
