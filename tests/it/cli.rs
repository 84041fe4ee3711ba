//! `aegisir snapshot` and `aegisir verify` without a server.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};

use crate::support::{
    assert_verifies, bundle_name_pattern, fixture, output_text, read_snapshot, run_aegisir, verify,
};

/// Runs `aegisir snapshot --out DIR EXTRA...` and returns the bundle path it printed.
fn take_snapshot(out_dir: &Path, extra_args: &[&str]) -> PathBuf {
    let mut args = vec![OsString::from("snapshot"), "--out".into(), out_dir.into()];
    args.extend(extra_args.iter().map(OsString::from));
    let output = run_aegisir(out_dir, &args);
    assert_eq!(
        output.status.code(),
        Some(0),
        "aegisir snapshot failed:\n{}",
        output_text(&output)
    );
    let stdout = String::from_utf8(output.stdout).expect("snapshot prints a UTF-8 path");
    let printed = stdout.trim();
    assert_eq!(
        printed.lines().count(),
        1,
        "snapshot printed more than a path: {stdout}"
    );
    PathBuf::from(printed)
}

#[test]
fn snapshot_writes_bundle_that_verifies() {
    let out_dir = tempfile::tempdir().unwrap();
    let bundle = take_snapshot(out_dir.path(), &[]);

    assert_eq!(
        bundle.parent(),
        Some(out_dir.path()),
        "bundle is not under --out"
    );
    let name = bundle.file_name().unwrap().to_string_lossy();
    assert!(
        bundle_name_pattern().is_match(&name),
        "bad bundle name {name}"
    );
    for file in [
        "manifest.json",
        "snapshot.json",
        "top.txt",
        "processes.txt",
        "memory.txt",
    ] {
        assert!(
            bundle.join(file).is_file(),
            "{file} is missing from {}",
            bundle.display()
        );
    }
    for file in ["disk_usage.txt", "iostat.txt", "network.txt"] {
        assert!(
            bundle.join(file).is_file(),
            "{file} is missing from {}",
            bundle.display()
        );
    }
    assert!(
        !bundle.join("alert.json").exists(),
        "a CLI capture has no alert body"
    );
    assert!(
        raw_evidence_file(&bundle).is_file(),
        "the raw evidence is missing"
    );
    assert_verifies(&bundle);

    let snapshot = read_snapshot(&bundle);
    let test_pid = std::process::id() as i32;
    assert!(
        snapshot.processes.list.iter().any(|p| p.pid == test_pid),
        "the test process {test_pid} is missing from snapshot.json"
    );
}

#[test]
fn snapshot_reads_fixture_tree() {
    let host = fixture("hosts/small");
    let out_dir = tempfile::tempdir().unwrap();
    let procfs = host.join("proc");
    let sysfs = host.join("sys");
    let rootfs = host.join("root");
    let bundle = take_snapshot(
        out_dir.path(),
        &[
            "--procfs",
            procfs.to_str().unwrap(),
            "--sysfs",
            sysfs.to_str().unwrap(),
            "--rootfs",
            rootfs.to_str().unwrap(),
        ],
    );
    assert_verifies(&bundle);

    let snapshot = read_snapshot(&bundle);
    let hostname = fs::read_to_string(procfs.join("sys/kernel/hostname")).unwrap();
    assert_eq!(snapshot.host.hostname.as_deref(), Some(hostname.trim()));
    assert_eq!(snapshot.sources.procfs, procfs.display().to_string());
    assert!(
        !snapshot.processes.list.is_empty(),
        "no process read from the fixture tree"
    );
}

/// Returns a file of the raw evidence: `raw.tar`, or `raw/proc/stat` in a `raw/` directory.
fn raw_evidence_file(bundle: &Path) -> PathBuf {
    let tar = bundle.join("raw.tar");
    if tar.exists() {
        tar
    } else {
        bundle.join("raw/proc/stat")
    }
}

/// Asserts that `aegisir verify` exits 1 and names `file` in its output.
fn assert_verify_names(bundle: &Path, file: &str, case: &str) {
    let output = verify(bundle);
    let text = output_text(&output);
    assert_eq!(
        output.status.code(),
        Some(1),
        "verify after {case}:\n{text}"
    );
    assert!(
        text.contains(file),
        "verify after {case} does not name {file}:\n{text}"
    );
}

#[test]
fn verify_detects_changed_byte() {
    let out_dir = tempfile::tempdir().unwrap();
    let bundle = take_snapshot(out_dir.path(), &[]);
    assert_verifies(&bundle);

    for path in [bundle.join("snapshot.json"), raw_evidence_file(&bundle)] {
        let original = fs::read(&path).unwrap();
        let mut changed = original.clone();
        let middle = changed.len() / 2;
        changed[middle] ^= 0x01;
        fs::write(&path, &changed).unwrap();
        let name = path.file_name().unwrap().to_string_lossy();
        assert_verify_names(&bundle, &name, &format!("one flipped bit in {name}"));

        fs::write(&path, &original).unwrap();
        assert_verifies(&bundle);
    }
}

#[test]
fn verify_names_missing_and_extra_files() {
    let out_dir = tempfile::tempdir().unwrap();
    let bundle = take_snapshot(out_dir.path(), &[]);

    let top = bundle.join("top.txt");
    let original = fs::read(&top).unwrap();
    fs::remove_file(&top).unwrap();
    assert_verify_names(&bundle, "top.txt", "removing top.txt");
    fs::write(&top, &original).unwrap();

    let extra = bundle.join("planted.txt");
    fs::write(&extra, b"not part of the capture\n").unwrap();
    assert_verify_names(&bundle, "planted.txt", "adding planted.txt");
    fs::remove_file(&extra).unwrap();

    assert_verifies(&bundle);
}

/// A FIFO or a device planted in a procfs tree must not block or exhaust the capture. A FIFO
/// is rejected as not a regular file; a link to `/dev/zero` resolves inside the tree, where
/// there is none. Each is recorded as a gap.
#[test]
fn snapshot_rejects_fifo_and_device_in_procfs() {
    let tree = tempfile::tempdir().unwrap();
    let procfs = tree.path().join("proc");
    fs::create_dir_all(procfs.join("sys/kernel")).unwrap();
    fs::write(procfs.join("sys/kernel/hostname"), "fifo-host\n").unwrap();
    let fifo =
        std::ffi::CString::new(procfs.join("stat").into_os_string().into_encoded_bytes()).unwrap();
    // SAFETY: `fifo` is a valid NUL-terminated path for the duration of the call.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    std::os::unix::fs::symlink("/dev/zero", procfs.join("meminfo")).unwrap();

    let out_dir = tempfile::tempdir().unwrap();
    let mut child = crate::support::aegisir_command(out_dir.path())
        .arg("snapshot")
        .arg("--out")
        .arg(out_dir.path())
        .arg("--procfs")
        .arg(&procfs)
        .arg("--sysfs")
        .arg(tree.path().join("sys"))
        .arg("--rootfs")
        .arg(tree.path().join("root"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("aegisir snapshot blocked on a FIFO in the procfs tree");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(status.success(), "snapshot failed: {status}");

    let bundles = crate::support::list_bundles(out_dir.path());
    assert_eq!(bundles.len(), 1);
    assert_verifies(&bundles[0]);
    let snapshot = read_snapshot(&bundles[0]);
    let invalid: Vec<&str> = snapshot
        .gaps
        .iter()
        .filter(|gap| gap.reason == aegisir_platform::GapReason::Invalid)
        .map(|gap| gap.subject.as_str())
        .collect();
    assert!(invalid.contains(&"proc/stat"), "gaps: {invalid:?}");
    let meminfo = snapshot
        .gaps
        .iter()
        .find(|gap| gap.subject == "proc/meminfo");
    let meminfo = meminfo.expect("a gap for proc/meminfo");
    assert_eq!(meminfo.reason, aegisir_platform::GapReason::Vanished);
    assert_eq!(snapshot.host.hostname.as_deref(), Some("fifo-host"));
}
