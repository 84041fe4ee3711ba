//! The costs of keeping history: an alert-time capture against a recent history sample, the
//! background recorder's CPU use, and the daemon's resident memory with a full history.
//!
//! 1. Alert-time capture. A counters sample is taken beforehand, as the recorder keeps one;
//!    the measured pass is then one full sample and the snapshot derived against that
//!    baseline. The read-only pass reads the same files and links (every key of the full
//!    sample's raw evidence) and lists the directories whose listings it recorded, once by
//!    full path and once relative to descriptors of the roots, as the capture's reader opens
//!    them. All run on `fixtures/hosts/small` and on the live `/proc`, through criterion and
//!    then as medians of alternating runs over about two seconds, with the ratios.
//! 2. Recorder CPU. With `sleep` processes added until the host has 500, the history recorder
//!    runs at a 5 s interval for 60 s. Its thread's CPU time from
//!    `/proc/self/task/TID/schedstat` over the wall time is its share of one core, over the
//!    whole run and after its first sample.
//! 3. Daemon memory. `aegisir serve` (the bench profile build) runs with the same 500
//!    processes, a 0.5 s history interval and 60 s retention: 120 points, as many as 10
//!    minutes at the default 5 s. VmRSS is read from `/proc/PID/status` once the ring is full.
//!
//! Run with `cargo bench --bench history`. Set `HISTORY_BENCH_SECS` to shorten parts 2 and 3.

use std::ffi::CString;
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

/// The process count the recorder and the daemon are measured at.
const PROCESSES: usize = 500;

/// A tree to capture, its baseline sample and the reads its full sample made.
struct Target {
    label: &'static str,
    collector: Collector,
    baseline: Sample,
    files: Vec<PathBuf>,
    links: Vec<PathBuf>,
    listings: Vec<PathBuf>,
    /// The same reads as (root index, path below that root), for the pass that opens them
    /// relative to the roots' descriptors.
    relative: RelativeReads,
    process_count: usize,
}

#[derive(Default)]
struct RelativeReads {
    roots: Vec<CString>,
    files: Vec<(usize, CString)>,
    links: Vec<(usize, CString)>,
    listings: Vec<(usize, CString)>,
}

fn alert_capture(target: &Target) -> aegisir_platform::Capture {
    let current = target.collector.sample(Scope::Full);
    target.collector.snapshot(&target.baseline, current)
}

/// Maps a raw evidence key (`proc/1/stat`, `sys/...`, `root/...`) back to its path.
fn path_of(roots: &Roots, key: &str) -> Option<PathBuf> {
    let (index, relative) = split_key(key)?;
    let root = [&roots.procfs, &roots.sysfs, &roots.rootfs][index];
    Some(root.join(relative))
}

/// Splits a raw evidence key into its root index (procfs, sysfs, rootfs) and the path below
/// that root.
fn split_key(key: &str) -> Option<(usize, &str)> {
    let (tree, relative) = key.split_once('/')?;
    let index = ["proc", "sys", "root"].iter().position(|t| *t == tree)?;
    Some((index, relative))
}

fn c_path(path: &str) -> CString {
    CString::new(if path.is_empty() { "." } else { path }).expect("no NUL in a path")
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
    let mut relative = RelativeReads {
        roots: [&roots.procfs, &roots.sysfs, &roots.rootfs]
            .iter()
            .map(|root| c_path(root.to_str().expect("a UTF-8 root")))
            .collect(),
        ..RelativeReads::default()
    };
    for (key, entry) in &capture.raw.entries {
        let (Some(path), Some((index, below))) = (path_of(&roots, key), split_key(key)) else {
            continue;
        };
        let is_listing = path.file_name().is_some_and(|name| name == LISTING);
        match entry {
            RawEntry::File(_) if is_listing => {
                listings.push(path.parent().unwrap().to_path_buf());
                let dir = below
                    .strip_suffix(LISTING)
                    .unwrap_or("")
                    .trim_end_matches('/');
                relative.listings.push((index, c_path(dir)));
            }
            RawEntry::File(_) => {
                files.push(path);
                relative.files.push((index, c_path(below)));
            }
            RawEntry::Link(_) => {
                links.push(path);
                relative.links.push((index, c_path(below)));
            }
        }
    }
    let relative_count = read_pass_relative(&relative);
    let target = Target {
        label,
        collector,
        baseline,
        files,
        links,
        listings,
        relative,
        process_count: capture.snapshot.processes.list.len(),
    };
    // On a fixture tree nothing changes between passes, so both must read the same bytes.
    let count = read_pass(&target);
    if count != relative_count {
        println!("{label}: the read-only passes read {count} and {relative_count} bytes");
    }
    target
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

/// The access mode the read-only pass opens a root with: `O_PATH` on Linux, as the capture's
/// reader does.
#[cfg(target_os = "linux")]
const DIR_ACCESS: i32 = libc::O_PATH;
#[cfg(not(target_os = "linux"))]
const DIR_ACCESS: i32 = libc::O_RDONLY;

/// Reads as [`read_pass`] does, opening every file, link and directory relative to a descriptor
/// of its root, as the capture's reader does, instead of by its full path. The roots are opened
/// once per pass, as the reader opens them once per sample.
fn read_pass_relative(reads: &RelativeReads) -> u64 {
    // SAFETY: every pointer passed is a NUL-terminated path or a buffer of the given length,
    // valid for the call. Each descriptor and directory stream is closed once.
    unsafe {
        let flags = DIR_ACCESS | libc::O_DIRECTORY | libc::O_CLOEXEC;
        let dirs: Vec<i32> = reads
            .roots
            .iter()
            .map(|root| libc::open(root.as_ptr(), flags))
            .collect();
        let mut buffer = vec![0u8; 4096];
        let mut count = 0;
        for (index, path) in &reads.listings {
            let fd = libc::openat(
                dirs[*index],
                path.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            );
            if fd < 0 {
                continue;
            }
            let stream = libc::fdopendir(fd);
            while let Some(entry) = libc::readdir(stream).as_ref() {
                let name = std::ffi::CStr::from_ptr(entry.d_name.as_ptr()).to_bytes();
                count += u64::from(name != b"." && name != b"..");
            }
            libc::closedir(stream);
        }
        for (index, path) in &reads.files {
            let fd = libc::openat(
                dirs[*index],
                path.as_ptr(),
                libc::O_RDONLY | libc::O_NONBLOCK | libc::O_CLOEXEC,
            );
            if fd < 0 {
                continue;
            }
            let mut stat: libc::stat = std::mem::zeroed();
            libc::fstat(fd, &mut stat);
            loop {
                let n = libc::read(fd, buffer.as_mut_ptr().cast(), buffer.len());
                if n <= 0 {
                    break;
                }
                count += n as u64;
            }
            libc::close(fd);
        }
        for (index, path) in &reads.links {
            let n = libc::readlinkat(
                dirs[*index],
                path.as_ptr(),
                buffer.as_mut_ptr().cast(),
                buffer.len(),
            );
            count += n.max(0) as u64;
        }
        for fd in dirs {
            if fd >= 0 {
                libc::close(fd);
            }
        }
        count
    }
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
    group.bench_function("read_only_relative", |b| {
        b.iter(|| black_box(read_pass_relative(&target.relative)))
    });
    group.finish();
}

fn report_ratio(target: &Target) {
    let (mut capture_times, mut read_times, mut relative_times) =
        (Vec::new(), Vec::new(), Vec::new());
    // Alternating runs for about two seconds, at least 15 of each.
    let started = Instant::now();
    while capture_times.len() < 15 || started.elapsed() < Duration::from_secs(2) {
        capture_times.push(timed(|| {
            black_box(alert_capture(target));
        }));
        read_times.push(timed(|| {
            black_box(read_pass(target));
        }));
        relative_times.push(timed(|| {
            black_box(read_pass_relative(&target.relative));
        }));
    }
    let capture = median(capture_times);
    let (read, relative) = (median(read_times), median(relative_times));
    println!(
        "alert capture, {}: {} processes, {} files, {} links, {} listings; capture {:.2} ms, \
         read only {:.2} ms (ratio {:.2}), read only relative to the roots {:.2} ms \
         (ratio {:.2})",
        target.label,
        target.process_count,
        target.files.len(),
        target.links.len(),
        target.listings.len(),
        capture * 1e3,
        read * 1e3,
        capture / read,
        relative * 1e3,
        capture / relative
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

/// Finds the `/proc/self/task/TID` directory of this process's thread named `name`.
fn thread_dir(name: &str) -> Option<PathBuf> {
    fs::read_dir("/proc/self/task")
        .ok()?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|dir| {
            let comm = fs::read_to_string(dir.join("comm")).unwrap_or_default();
            comm.trim_end() == name
        })
}

/// Nanoseconds the thread in `dir` has run, from the scheduler's own clock: the first field
/// of `schedstat`. Unlike utime + stime, which are counted in whole clock ticks, it is exact.
fn thread_cpu_ns(dir: &Path) -> Option<u64> {
    let schedstat = fs::read_to_string(dir.join("schedstat")).ok()?;
    schedstat.split_whitespace().next()?.parse().ok()
}

/// utime + stime in clock ticks of the thread in `dir`.
fn thread_cpu_ticks(dir: &Path) -> Option<u64> {
    let stat = fs::read_to_string(dir.join("stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    // Fields 14 and 15 of stat are utime and stime; `after_name` starts at field 3.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
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

/// Runs the recorder for `run` and prints its CPU use over the whole run and in the steady
/// state after the first sample. The first sample reads every process's `status` and
/// `cmdline` as well as its `stat`, to learn the identities that later samples reuse.
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
    // The first sample starts at once and takes a few tens of milliseconds.
    std::thread::sleep(Duration::from_secs(1));
    let thread = thread_dir("aegisir-history").expect("find the recorder thread");
    let steady_from = (Instant::now(), thread_cpu_ns(&thread));
    std::thread::sleep(run);
    let ticks = thread_cpu_ticks(&thread).expect("read the recorder's stat");
    let ns = thread_cpu_ns(&thread);
    let wall = started.elapsed().as_secs_f64();
    let steady_wall = steady_from.0.elapsed().as_secs_f64();
    recorder.stop();

    let tick_secs = ticks as f64 / ticks_per_sec();
    let points = history.points().len();
    println!(
        "recorder: {processes} processes, 5 s interval, {wall:.1} s, {points} points; \
         utime + stime {ticks} ticks, {:.3} % of one core",
        tick_secs / wall * 100.0
    );
    let (Some(first_ns), Some(ns)) = (steady_from.1, ns) else {
        println!("recorder: no schedstat, so no exact CPU time");
        return;
    };
    let (total, steady) = (ns as f64 / 1e9, (ns - first_ns) as f64 / 1e9);
    let samples = (steady_wall / 5.0).round().max(1.0);
    println!(
        "recorder: scheduler CPU time {:.1} ms over {wall:.1} s ({:.3} % of one core); \
         after the first sample {:.1} ms over {steady_wall:.1} s ({:.3} % of one core, \
         {:.1} ms per sample, {:.1} µs per process)",
        total * 1e3,
        total / wall * 100.0,
        steady * 1e3,
        steady / steady_wall * 100.0,
        steady / samples * 1e3,
        steady / samples / processes as f64 * 1e6
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
    let extra = PROCESSES.saturating_sub(process_count());
    let _sleepers = Sleepers::spawn(extra, 2 * secs + 60);
    measure_recorder(Duration::from_secs(secs));
    measure_daemon(Duration::from_secs(secs + 2));
}
