//! A bundle's raw evidence reads back: `raw.tar` extracted and captured again with
//! `--procfs`, `--sysfs` and `--rootfs` pointing into it gives the same point-in-time values as
//! the bundle's own `snapshot.json`.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use aegisir_platform::{Filesystem, ListeningSocket, Process, Snapshot};

use crate::support::{output_text, read_snapshot, run_aegisir};

/// Runs `aegisir snapshot --out OUT EXTRA...` and returns the bundle path it printed.
fn snapshot_into(out_dir: &Path, extra_args: &[&Path]) -> PathBuf {
    let mut args = vec![Path::new("snapshot"), Path::new("--out"), out_dir];
    args.extend_from_slice(extra_args);
    let output = run_aegisir(out_dir, &args);
    assert_eq!(
        output.status.code(),
        Some(0),
        "aegisir snapshot failed:\n{}",
        output_text(&output)
    );
    let stdout = String::from_utf8(output.stdout).expect("snapshot prints a UTF-8 path");
    PathBuf::from(stdout.trim())
}

/// Extracts the bundle's `raw.tar` into `target`.
fn extract_raw(bundle: &Path, target: &Path) {
    let tar_path = bundle.join("raw.tar");
    let file = File::open(&tar_path).unwrap_or_else(|e| panic!("open {}: {e}", tar_path.display()));
    tar::Archive::new(file)
        .unpack(target)
        .unwrap_or_else(|e| panic!("extract {}: {e}", tar_path.display()));
}

/// The per-process values that one sample reads, without the rates that need two samples.
#[derive(Debug, PartialEq)]
struct ProcessValues {
    pid: i32,
    ppid: Option<i32>,
    name: String,
    cmdline: String,
    user: Option<String>,
    uid: Option<u32>,
    state: String,
    rss_bytes: Option<u64>,
    vsize_bytes: Option<u64>,
    threads: Option<u32>,
    start_ticks: u64,
    start_time: Option<String>,
    open_fds: Option<u32>,
    read_bytes: Option<u64>,
    write_bytes: Option<u64>,
    is_self: bool,
}

fn process_values(process: &Process) -> ProcessValues {
    ProcessValues {
        pid: process.pid,
        ppid: process.ppid,
        name: process.name.clone(),
        cmdline: process.cmdline.clone(),
        user: process.user.clone(),
        uid: process.uid,
        state: process.state.clone(),
        rss_bytes: process.rss_bytes,
        vsize_bytes: process.vsize_bytes,
        threads: process.threads,
        start_ticks: process.start_ticks,
        start_time: process.start_time.map(|t| t.to_rfc3339()),
        open_fds: process.open_fds,
        read_bytes: process.read_bytes,
        write_bytes: process.write_bytes,
        is_self: process.is_self,
    }
}

/// statvfs measures the extracted tree, not the original mount, so only the identity of a
/// filesystem reads back.
fn filesystem_identity(filesystem: &Filesystem) -> (String, String, String) {
    (
        filesystem.mount_point.clone(),
        filesystem.fs_type.clone(),
        filesystem.source.clone(),
    )
}

fn socket_values(socket: &ListeningSocket) -> (String, String, u16, u64, Option<i32>) {
    (
        socket.protocol.clone(),
        socket.address.clone(),
        socket.port,
        socket.inode,
        socket.pid,
    )
}

/// Formats the gaps of every collector but the filesystems, whose statvfs calls measure the
/// extracted tree.
fn read_gaps(snapshot: &Snapshot) -> Vec<String> {
    snapshot
        .gaps
        .iter()
        .filter(|gap| gap.collector != "filesystems")
        .map(|gap| {
            format!(
                "{} {} {} {}",
                gap.collector,
                gap.subject,
                gap.reason.as_str(),
                gap.detail
            )
        })
        .collect()
}

/// Captures the live host, then captures the bundle's extracted raw evidence.
fn live_and_replayed() -> (Snapshot, Snapshot) {
    let work = tempfile::tempdir().unwrap();
    let first_out = work.path().join("first");
    let second_out = work.path().join("second");
    let tree = work.path().join("tree");
    for dir in [&first_out, &second_out, &tree] {
        fs::create_dir(dir).unwrap();
    }

    let original = snapshot_into(&first_out, &[]);
    extract_raw(&original, &tree);
    let (procfs, sysfs, rootfs) = (tree.join("proc"), tree.join("sys"), tree.join("root"));
    let flags = [Path::new("--procfs"), &procfs, Path::new("--sysfs"), &sysfs];
    let replayed = snapshot_into(
        &second_out,
        &[flags.as_slice(), &[Path::new("--rootfs"), &rootfs]].concat(),
    );
    (read_snapshot(&original), read_snapshot(&replayed))
}

#[test]
fn raw_evidence_reads_back_as_the_same_snapshot() {
    let (original, replayed) = live_and_replayed();

    assert_eq!(replayed.host.hostname, original.host.hostname);
    assert_eq!(replayed.host.kernel_release, original.host.kernel_release);
    assert_eq!(replayed.host.cpu_count, original.host.cpu_count);
    assert_eq!(replayed.host.boot_time, original.host.boot_time);

    let memory = original.memory.as_ref().expect("the live host has memory");
    let replayed_memory = replayed.memory.as_ref().expect("the tree has meminfo");
    assert_eq!(replayed_memory.total_bytes, memory.total_bytes);
    assert_eq!(replayed_memory.free_bytes, memory.free_bytes);
    assert_eq!(replayed_memory.available_bytes, memory.available_bytes);
    assert_eq!(replayed_memory.buffers_bytes, memory.buffers_bytes);
    assert_eq!(replayed_memory.cached_bytes, memory.cached_bytes);

    let processes: Vec<_> = original.processes.list.iter().map(process_values).collect();
    let replayed_processes: Vec<_> = replayed.processes.list.iter().map(process_values).collect();
    assert!(!processes.is_empty());
    assert_eq!(replayed_processes, processes);
    assert_eq!(replayed.processes.total, original.processes.total);
    assert_eq!(replayed.processes.vanished, original.processes.vanished);
    assert_eq!(replayed.processes.unreadable, original.processes.unreadable);
    assert_eq!(replayed.processes.complete, original.processes.complete);

    let mounts: Vec<_> = original
        .filesystems
        .iter()
        .map(filesystem_identity)
        .collect();
    let replayed_mounts: Vec<_> = replayed
        .filesystems
        .iter()
        .map(filesystem_identity)
        .collect();
    assert_eq!(replayed_mounts, mounts);

    let network = original
        .network
        .as_ref()
        .expect("the live host has a network");
    let replayed_network = replayed.network.as_ref().expect("the tree has net files");
    let sockets: Vec<_> = network.listening.iter().map(socket_values).collect();
    let replayed_sockets: Vec<_> = replayed_network
        .listening
        .iter()
        .map(socket_values)
        .collect();
    assert_eq!(replayed_sockets, sockets);

    assert_eq!(read_gaps(&replayed), read_gaps(&original));
}
