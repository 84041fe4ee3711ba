//! The macOS collector: reads the host through libproc, sysctl and the Mach host calls,
//! natively and without a subprocess, and produces the same [`Snapshot`] as Linux.
//!
//! Layout: `*_bindings.rs` hold the thin FFI, and each call returns a plain record or a
//! [`parse::CallError`]. `parse.rs` and `block_storage.rs` hold the pure helpers that turn
//! records and failures into the model and gap reasons (unit-tested on every host).
//! `process.rs` and `system.rs` read one sample and derive the snapshot.
//!
//! Raw evidence: macOS has no `/proc`, so each value read is recorded in [`RawFiles`] under a
//! `macos/` prefix, as text for single sysctl values and as JSON for structs:
//! `macos/sysctl/<name>` (for example `macos/sysctl/kern.osrelease`), `macos/sysctl/<name>.json`
//! for `kern.boottime` and `vm.swapusage`, `macos/getloadavg.json`,
//! `macos/host_processor_info.json`, `macos/host_statistics64.json`, `macos/getmntinfo.json`,
//! `macos/sysctl/net.route.iflist2` (the exact bytes of the `NET_RT_IFLIST2` buffer),
//! `macos/iokit/IOBlockStorageDriver.json` (each driver's BSD name and statistics counters),
//! `macos/proc/<pid>/taskallinfo.json` (or `kinfo_proc.json` where task info was denied),
//! `macos/proc/<pid>/path`, `macos/proc/<pid>/procargs2.json` (executable path and
//! arguments; the environment is counted, never recorded, because it holds secrets) and
//! `macos/proc/<pid>/sockets.json`.
//!
//! Differences from Linux: `Process::start_ticks` is the start time in microseconds since
//! the Unix epoch (macOS has no boot-relative tick count); socket `inode` is the kernel's
//! opaque socket handle. Values macOS does not offer (iowait, irq, softirq and steal time,
//! buffers, dirty memory, OOM kills, pressure stall information, TCP retransmits, disk
//! `%util` and requests in flight) are recorded as unsupported gaps.

pub mod block_storage;
mod fs_net_bindings;
mod iokit_bindings;
mod mach_bindings;
pub mod parse;
mod proc_bindings;
mod process;
mod sysctl_bindings;
mod system;

use std::time::Duration;

use serde::Serialize;

use crate::gaps::GapLog;
use crate::model::{GapReason, Snapshot, Sources, SCHEMA_VERSION};
use crate::raw::{RawEntry, RawFiles};
use crate::{CaptureOptions, PlatformError, Scope};

use parse::{CallError, Timebase};

pub const BACKEND: &str = "macos";

/// What one macOS sample read.
#[derive(Debug, Clone)]
pub struct Sample {
    pub system: system::SystemSample,
    pub processes: process::ProcessSample,
    pub raw: RawFiles,
    pub gaps: GapLog,
}

/// Facts read once: the Mach time unit, the page size and the host port.
#[derive(Debug)]
pub struct Collector {
    timebase: Timebase,
    page_size: u64,
    host: mach_bindings::HostPort,
    argmax: usize,
}

impl Collector {
    pub fn new(_options: &CaptureOptions) -> Result<Self, PlatformError> {
        // `kern.argmax` bounds a `KERN_PROCARGS2` buffer; 1 MiB is its default on macOS.
        let argmax = sysctl_bindings::integer("kern.argmax").unwrap_or(1 << 20) as usize;
        Ok(Collector {
            timebase: mach_bindings::timebase(),
            page_size: mach_bindings::page_size(),
            host: mach_bindings::HostPort::new(),
            argmax,
        })
    }

    pub fn sample(&self, options: &CaptureOptions, scope: Scope) -> Sample {
        let mut recorder = Recorder::default();
        let mut gaps = GapLog::default();

        let system = system::read(self.host, scope, &mut recorder, &mut gaps);
        let context = process::ReadContext {
            argmax: self.argmax,
            deadline: std::time::Instant::now() + options.deadline,
            socket_owners: options.socket_owners,
        };
        let processes = process::read(&context, scope, &mut recorder, &mut gaps);

        Sample {
            system,
            processes,
            raw: recorder.raw,
            gaps,
        }
    }

    /// Derives the snapshot of `current` against `baseline` without touching their raw
    /// evidence.
    pub fn derive(
        &self,
        _options: &CaptureOptions,
        baseline: &crate::Sample,
        current: &crate::Sample,
        interval: Duration,
    ) -> Snapshot {
        let prev = &baseline.inner;
        let cur = &current.inner;
        let secs = interval.as_secs_f64();
        let mut gaps = GapLog::default();

        let derived = system::derive(&prev.system, &cur.system, self.page_size, secs, &mut gaps);
        let total_memory = derived.memory.as_ref().and_then(|m| m.total_bytes);
        let processes = process::derive(
            &prev.processes,
            &cur.processes,
            self.timebase,
            total_memory,
            secs,
        );
        let mut network = derived.network;
        process::add_sockets(&mut network, &cur.processes);

        gaps.extend(cur.gaps.clone());
        let mut gaps = gaps.into_vec();
        gaps.sort();
        gaps.dedup();

        Snapshot {
            schema_version: SCHEMA_VERSION,
            captured_at: current.wall,
            interval_secs: secs,
            backend: BACKEND.to_string(),
            sources: Sources {
                net_namespace: "self".to_string(),
                ..Sources::default()
            },
            host: derived.host,
            cpu: derived.cpu,
            memory: derived.memory,
            processes,
            disks: derived.disks,
            filesystems: derived.filesystems,
            network: Some(network),
            containers: Vec::new(),
            gaps,
        }
    }
}

impl Sample {
    pub fn raw(&self) -> &RawFiles {
        &self.raw
    }

    pub fn into_raw(self) -> RawFiles {
        self.raw
    }
}

/// Records the values of one sample under the `macos/` prefix.
#[derive(Debug, Default)]
pub struct Recorder {
    raw: RawFiles,
}

impl Recorder {
    pub fn text(&mut self, key: &str, value: &str) {
        self.bytes(key, value.as_bytes().to_vec());
    }

    pub fn bytes(&mut self, key: &str, bytes: Vec<u8>) {
        self.raw
            .entries
            .insert(format!("macos/{key}"), RawEntry::File(bytes));
    }

    pub fn json(&mut self, key: &str, value: &impl Serialize) {
        // Serialising plain records of numbers and strings cannot fail.
        if let Ok(bytes) = serde_json::to_vec_pretty(value) {
            self.bytes(key, bytes);
        }
    }
}

/// Records a failed call as a gap of `collector` and yields `None`.
pub fn gap_value<T>(
    gaps: &mut GapLog,
    collector: &str,
    subject: &str,
    result: Result<T, CallError>,
) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(error) => {
            gaps.push(collector, subject, error.reason, error.detail);
            None
        }
    }
}

/// Records that macOS does not offer a value.
pub fn unsupported(gaps: &mut GapLog, collector: &str, subject: &str, detail: &str) {
    gaps.push(collector, subject, GapReason::Unsupported, detail);
}
