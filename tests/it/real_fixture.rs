//! Golden tests over `fixtures/hosts/real-6.18`, the trimmed raw evidence of a real capture:
//! the snapshot JSON and the text reports are compared with the files in
//! `fixtures/golden/real-6.18/`. Run with `UPDATE_GOLDEN=1` to rewrite the expected files.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aegisir::report::render_all;
use aegisir_platform::{CaptureOptions, Collector, Roots, Scope, Snapshot};
use chrono::{DateTime, Utc};

use crate::support::fixture;

const HOST: &str = "real-6.18";

/// The capture time and the interval between the two samples recorded in the bundle the
/// fixture came from; the clocks of a replay would give other values.
const CAPTURED_AT: &str = "2026-12-03T23:09:51.976474144Z";
const INTERVAL: Duration = Duration::from_nanos(1_012_460_866);

fn roots(tree: &Path) -> Roots {
    Roots {
        procfs: tree.join("proc"),
        sysfs: tree.join("sys"),
        rootfs: tree.join("root"),
    }
}

fn collector(tree: &Path) -> Collector {
    let options = CaptureOptions {
        roots: roots(tree),
        ..CaptureOptions::default()
    };
    Collector::new(options).expect("the fixture has a procfs root")
}

/// Derives the snapshot from the fixture's two samples with the interval they were taken at.
fn fixture_snapshot() -> Snapshot {
    let tree = fixture(&format!("hosts/{HOST}"));
    let mut baseline = collector(&tree.join("baseline")).sample(Scope::Counters);
    let current_collector = collector(&tree);
    let mut current = current_collector.sample(Scope::Full);

    current.wall = CAPTURED_AT.parse::<DateTime<Utc>>().unwrap();
    baseline.monotonic = current
        .monotonic
        .checked_sub(INTERVAL)
        .expect("the monotonic clock has run for a second");
    let mut snapshot = current_collector.snapshot(&baseline, current).snapshot;
    make_portable(&mut snapshot, &tree);
    snapshot
}

/// Removes what depends on the checkout rather than on the fixture: the absolute paths of the
/// roots, and the statvfs sizes, which measure the disk the checkout is on.
fn make_portable(snapshot: &mut Snapshot, tree: &Path) {
    let checkout = tree.parent().unwrap().parent().unwrap().parent().unwrap();
    for path in [
        &mut snapshot.sources.procfs,
        &mut snapshot.sources.sysfs,
        &mut snapshot.sources.rootfs,
    ] {
        let relative = Path::new(path.as_str())
            .strip_prefix(checkout)
            .map(Path::to_path_buf);
        *path = relative.unwrap().display().to_string();
    }

    for filesystem in &mut snapshot.filesystems {
        filesystem.size_bytes = None;
        filesystem.used_bytes = None;
        filesystem.available_bytes = None;
        filesystem.use_pct = None;
        filesystem.inodes_total = None;
        filesystem.inodes_used = None;
    }
}

fn golden_dir() -> PathBuf {
    fixture(&format!("golden/{HOST}"))
}

/// Compares `text` with the expected file `name`; with `UPDATE_GOLDEN=1` writes it instead.
fn assert_golden(name: &str, text: &str) {
    let path = golden_dir().join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|value| value == "1") {
        fs::create_dir_all(golden_dir()).unwrap();
        fs::write(&path, text).unwrap();
        return;
    }
    let expected = fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("read {}: {e}; run with UPDATE_GOLDEN=1", path.display()));
    assert_eq!(text, expected, "{} differs", path.display());
}

#[test]
fn real_fixture_snapshot_matches_golden_json() {
    let snapshot = fixture_snapshot();
    let mut json = serde_json::to_string_pretty(&snapshot).unwrap();
    json.push('\n');
    assert_golden("snapshot.json", &json);
}

#[test]
fn real_fixture_reports_match_golden_text() {
    let snapshot = fixture_snapshot();
    for report in render_all(&snapshot) {
        assert_golden(&report.file_name, &report.text);
    }
}

#[test]
fn real_fixture_keeps_its_processes() {
    let snapshot = fixture_snapshot();
    let processes = &snapshot.processes;

    assert_eq!(snapshot.host.hostname.as_deref(), Some("fixture-host"));
    assert_eq!(processes.total, 39);
    assert_eq!(processes.vanished, 0);
    let busy = processes.list.iter().find(|p| p.pid == 21309).unwrap();
    assert_eq!(busy.cmdline, "sh -c while :; do :; done");
    assert!(busy.cpu_pct.is_some_and(|pct| pct > 50.0));
    let own = processes.list.iter().find(|p| p.is_self).unwrap();
    assert_eq!(own.pid, 21333);
    let init = processes.list.iter().find(|p| p.pid == 1).unwrap();
    assert_eq!(init.read_bytes, None);
    assert_eq!(init.open_fds, Some(276));
}
