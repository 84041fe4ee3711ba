//! The cost of one capture pass against the cost of only reading the files it reads.
//!
//! A capture pass is a counters sample, a full sample and the snapshot derived from them,
//! without the interval sleep between the samples. The read-only pass reads the same files:
//! every key of both samples' raw evidence, mapped back to its path. It also lists the
//! directories the capture lists. The ratio of the two is therefore what parsing, deriving
//! and recording add to the kernel's own cost.
//!
//! Both run on the fixture tree `fixtures/hosts/small` and on the live `/proc`. After
//! criterion's report the bench prints the median of each pass and their ratio.
//!
//! Run with `cargo bench --bench capture`.

use std::fs;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aegisir_platform::raw::read_whole;
use aegisir_platform::{CaptureOptions, Collector, RawEntry, RawFiles, Roots, Scope};
use criterion::Criterion;

/// A source of readings (a procfs tree) and the reads one capture of it makes.
struct Target {
    label: &'static str,
    collector: Collector,
    /// Files and links the counters sample read, then those the full sample read.
    reads: Vec<Read>,
    /// Directories a capture lists: the procfs root and every `PID/fd` it walked.
    listings: Vec<PathBuf>,
    process_count: usize,
}

enum Read {
    File(PathBuf),
    Link(PathBuf),
}

fn capture_pass(collector: &Collector) -> aegisir_platform::Capture {
    let baseline = collector.sample(Scope::Counters);
    let current = collector.sample(Scope::Full);
    collector.snapshot(&baseline, current)
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

fn reads_of(roots: &Roots, raw: &RawFiles, reads: &mut Vec<Read>) {
    for (key, entry) in &raw.entries {
        let Some(path) = path_of(roots, key) else {
            continue;
        };
        reads.push(match entry {
            RawEntry::File(_) => Read::File(path),
            RawEntry::Link(_) => Read::Link(path),
        });
    }
}

/// Lists the procfs root and each directory that contains a recorded link (`PID/fd`).
fn listings_of(roots: &Roots, raw: &RawFiles) -> Vec<PathBuf> {
    let mut listings = vec![roots.procfs.clone()];
    for (key, entry) in &raw.entries {
        if let (RawEntry::Link(_), Some(path)) = (entry, path_of(roots, key)) {
            if let Some(parent) = path.parent() {
                listings.push(parent.to_path_buf());
            }
        }
    }
    listings.sort();
    listings.dedup();
    listings
}

fn prepare(label: &'static str, roots: Roots) -> Target {
    let options = CaptureOptions {
        roots: roots.clone(),
        interval: Duration::ZERO,
        ..CaptureOptions::default()
    };
    let collector = Collector::new(options).expect("open the procfs root");
    let capture = capture_pass(&collector);

    let mut reads = Vec::new();
    reads_of(&roots, &capture.baseline_raw, &mut reads);
    reads_of(&roots, &capture.raw, &mut reads);
    let mut listings = listings_of(&roots, &capture.baseline_raw);
    listings.extend(listings_of(&roots, &capture.raw));

    Target {
        label,
        collector,
        reads,
        listings,
        process_count: capture.snapshot.processes.list.len(),
    }
}

/// Reads every file and link of one capture, with the capture reader's own 4 KiB reads, and
/// lists its directories. Files that vanished since then (exited processes on a live host)
/// are skipped, as the capture skips them.
fn read_pass(target: &Target) -> u64 {
    let mut bytes = 0;
    for listing in &target.listings {
        if let Ok(entries) = fs::read_dir(listing) {
            bytes += entries.count() as u64;
        }
    }
    for read in &target.reads {
        match read {
            Read::File(path) => bytes += read_whole(path).map_or(0, |b| b.len() as u64),
            Read::Link(path) => {
                bytes += fs::read_link(path).map_or(0, |t| t.as_os_str().len() as u64)
            }
        }
    }
    bytes
}

fn bench_target(criterion: &mut Criterion, target: &Target) {
    let mut group = criterion.benchmark_group(target.label);
    group.sample_size(20);
    group.bench_function("capture_pass", |b| {
        b.iter(|| black_box(capture_pass(&target.collector)))
    });
    group.bench_function("read_only", |b| b.iter(|| black_box(read_pass(target))));
    group.finish();
}

fn elapsed_secs(pass: impl FnOnce()) -> f64 {
    let started = Instant::now();
    pass();
    started.elapsed().as_secs_f64()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Prints both medians and their ratio, measured in alternation so that both see the same
/// host load.
fn report_ratio(target: &Target) {
    let mut capture_times = Vec::new();
    let mut read_times = Vec::new();
    for _ in 0..15 {
        capture_times.push(elapsed_secs(|| {
            black_box(capture_pass(&target.collector));
        }));
        read_times.push(elapsed_secs(|| {
            black_box(read_pass(target));
        }));
    }
    let capture = median(capture_times);
    let read = median(read_times);
    println!(
        "{}: {} processes, {} files and links read, capture pass {:.2} ms, \
         read only {:.2} ms, ratio {:.2}",
        target.label,
        target.process_count,
        target.reads.len(),
        capture * 1e3,
        read * 1e3,
        capture / read
    );
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();

    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/hosts/small");
    let mut targets = Vec::new();
    if fixture.join("proc").is_dir() {
        let roots = Roots {
            procfs: fixture.join("proc"),
            sysfs: fixture.join("sys"),
            rootfs: fixture.join("root"),
        };
        targets.push(prepare("fixture_small", roots));
    } else {
        eprintln!(
            "note: {} is missing; only the live /proc is measured",
            fixture.display()
        );
    }
    targets.push(prepare("live_proc", Roots::default()));

    for target in &targets {
        bench_target(&mut criterion, target);
    }
    criterion.final_summary();

    for target in &targets {
        report_ratio(target);
    }
}
