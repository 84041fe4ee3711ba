//! `manifest.json`: what a bundle contains and what triggered it.

use aegisir_platform::{Gap, Sources};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Version of the bundle layout and of `manifest.json`. Bump it on any change that removes or
/// renames a field or a file.
pub const BUNDLE_SCHEMA_VERSION: u32 = 1;

/// The manifest of one bundle. Its sha256 is the bundle digest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub schema_version: u32,
    /// The AegisIR version that wrote the bundle.
    pub tool_version: String,
    pub host: ManifestHost,
    /// Wall-clock time of the capture's later sample, as in `snapshot.json`.
    pub captured_at: DateTime<Utc>,
    /// The `schema_version` of `snapshot.json`.
    pub snapshot_schema_version: u32,
    /// The roots the capture read and the network namespace it saw.
    pub sources: Sources,
    pub trigger: Trigger,
    /// Every file of the bundle except `manifest.json`, ordered by name.
    pub files: Vec<FileEntry>,
    /// The gaps of the snapshot: every value that could not be read, and why.
    pub gaps: Vec<Gap>,
    pub raw: RawSummary,
    /// Random hex that keeps two captures with identical content apart.
    pub nonce: String,
    /// The digest of the bundle written before this one in the same data directory, or `None`
    /// for the first bundle the store knew of.
    pub previous: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ManifestHost {
    pub hostname: Option<String>,
    /// The kernel release (`uname -r`).
    pub kernel: Option<String>,
}

/// One file of a bundle with its size and hex sha256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub name: String,
    pub size: u64,
    pub sha256: String,
}

/// The contents of `raw.tar`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RawSummary {
    /// Entries of the later sample, stored at their keys (`proc/...`, `sys/...`, `root/...`).
    pub entries: usize,
    /// Entries of the earlier sample, stored under `baseline/`.
    pub baseline_entries: usize,
    /// Entries that could not be stored, with the reason.
    #[serde(default)]
    pub skipped: Vec<SkippedEntry>,
}

/// A raw entry left out of `raw.tar`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedEntry {
    /// The key as recorded, with the `baseline/` prefix for entries of the earlier sample.
    pub key: String,
    pub reason: String,
}

/// The cause of a capture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trigger {
    pub kind: TriggerKind,
    pub incident_id: String,
    /// Alertmanager's `groupKey`; never used in a path.
    pub group_key: Option<String>,
    pub receiver: Option<String>,
    pub alerts: Vec<TriggerAlert>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TriggerKind {
    /// An Alertmanager webhook with alerts.
    Alertmanager,
    /// A `POST /alert` with an empty body.
    Manual,
    /// `aegisir snapshot`.
    Cli,
}

/// One alert of the notification that started the capture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TriggerAlert {
    /// The `alertname` label.
    pub name: String,
    /// `firing` or `resolved`.
    pub status: String,
    pub fingerprint: String,
    pub severity: Option<String>,
    pub instance: Option<String>,
    pub starts_at: Option<DateTime<Utc>>,
}
