//! Native host capture for AegisIR.
//!
//! This crate turns the operating system into a [`Snapshot`]: Linux through procfs with
//! configurable `/proc`, `/sys` and root paths, macOS through libproc and sysctl, and other
//! systems through sysinfo with fewer fields. It never starts a shell or a subprocess, and it
//! has no code for HTTP, Slack or bundles.
//!
//! A capture is two [`Sample`]s an interval apart; [`Collector::snapshot`] derives rates from
//! the pair. A caller that keeps a recent sample (the history recorder) can pass it as the
//! baseline and skip the wait.

pub mod gaps;
pub mod model;
pub mod raw;

#[cfg(target_os = "linux")]
pub mod linux;
#[cfg(target_os = "linux")]
use linux as os;

#[cfg(target_os = "macos")]
pub mod macos;
#[cfg(target_os = "macos")]
use macos as os;

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
pub mod fallback;
#[cfg(not(any(target_os = "linux", target_os = "macos")))]
use fallback as os;

// The macOS parsing helpers use no Apple-only types, so their tests run on every host.
#[cfg(all(test, not(target_os = "macos")))]
#[path = "macos/block_storage.rs"]
mod macos_block_storage;
#[cfg(all(test, not(target_os = "macos")))]
#[path = "macos/parse.rs"]
mod macos_parse;

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

pub use model::*;
pub use raw::{RawEntry, RawFiles, Roots};

/// The settings of a capture: roots, interval, deadlines and socket owners.
#[derive(Debug, Clone)]
pub struct CaptureOptions {
    pub roots: Roots,
    /// Time between the two samples of a capture.
    pub interval: Duration,
    /// Time after which the expensive parts of a sample are skipped and recorded as a gap.
    pub deadline: Duration,
    /// Time one collector may take before its expensive parts (the descriptor walk, cgroup
    /// reads, statvfs calls) are skipped and recorded as a gap, so that one slow collector
    /// does not use up the whole sample's deadline.
    pub collector_deadline: Duration,
    /// Walk every process's file descriptors to find the owners of listening sockets.
    pub socket_owners: bool,
}

impl Default for CaptureOptions {
    fn default() -> Self {
        CaptureOptions {
            roots: Roots::default(),
            interval: Duration::from_secs(1),
            deadline: Duration::from_secs(10),
            collector_deadline: Duration::from_secs(5),
            socket_owners: true,
        }
    }
}

/// How much one sample reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Only the counters that rates need: CPU, per-process CPU times, disk, network and
    /// pressure counters, plus each process's uid and command line. Cheap enough for a
    /// background recorder.
    Counters,
    /// Everything a snapshot reports, with the raw evidence recorded.
    Full,
}

/// The readings at one instant.
#[derive(Debug, Clone)]
pub struct Sample {
    pub wall: DateTime<Utc>,
    pub monotonic: Instant,
    pub scope: Scope,
    pub(crate) inner: os::Sample,
}

/// The result of one capture: the snapshot and the raw evidence it was parsed from.
#[derive(Debug, Clone)]
pub struct Capture {
    pub snapshot: Snapshot,
    /// The bytes of the later sample, in the layout of the trees they came from.
    pub raw: RawFiles,
    /// The bytes of the earlier sample that rates were computed from.
    pub baseline_raw: RawFiles,
}

/// Errors that stop a collector from starting at all. Failures during a capture are gaps.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    #[error("procfs root {path} is not readable: {source}; pass --procfs with the path where /proc is mounted")]
    ProcfsRoot {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("this platform is not supported: {0}")]
    Unsupported(String),
}

/// Reads the host. One per process; cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Collector {
    options: CaptureOptions,
    inner: os::Collector,
}

impl Collector {
    pub fn new(options: CaptureOptions) -> Result<Self, PlatformError> {
        let inner = os::Collector::new(&options)?;
        Ok(Collector { options, inner })
    }

    pub fn options(&self) -> &CaptureOptions {
        &self.options
    }

    /// Returns the backend name recorded in snapshots: `linux`, `macos` or `sysinfo`.
    pub fn backend(&self) -> &'static str {
        os::BACKEND
    }

    /// Takes one sample of the host.
    pub fn sample(&self, scope: Scope) -> Sample {
        let wall = Utc::now();
        let monotonic = Instant::now();
        let inner = self.inner.sample(&self.options, scope);
        Sample {
            wall,
            monotonic,
            scope,
            inner,
        }
    }

    /// Derives a snapshot from a baseline and a later full sample, with the raw evidence of
    /// both.
    pub fn snapshot(&self, baseline: &Sample, current: Sample) -> Capture {
        let snapshot = self.derive(baseline, &current);
        Capture {
            snapshot,
            raw: current.inner.into_raw(),
            baseline_raw: baseline.inner.raw().clone(),
        }
    }

    /// Derives a snapshot from two samples without copying their raw evidence, for callers
    /// such as the history recorder that keep only the figures.
    pub fn derive(&self, baseline: &Sample, current: &Sample) -> Snapshot {
        let interval = current
            .monotonic
            .saturating_duration_since(baseline.monotonic);
        self.inner
            .derive(&self.options, baseline, current, interval)
    }

    /// Takes a baseline, waits for the interval, and takes a full sample: one whole capture.
    /// Blocks the calling thread; call it off the async runtime.
    pub fn capture(&self) -> Capture {
        let baseline = self.sample(Scope::Counters);
        std::thread::sleep(self.options.interval);
        let current = self.sample(Scope::Full);
        self.snapshot(&baseline, current)
    }
}
