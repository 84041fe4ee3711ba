//! The events journal and the incident state rebuilt from it.
//!
//! Every notification AegisIR receives, and every capture it finishes, is one JSON line in
//! `<data>/.aegisir/events.jsonl`, written before the HTTP reply goes out. The same lines
//! rebuild, after a restart, what the intake needs to remember: which notifications were seen
//! within the dedupe window, which incident each firing alert belongs to, and which bundle
//! each incident produced. Values from requests (`groupKey`, fingerprints) are stored as
//! opaque strings and never become part of a path.

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::hash::Hash;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Maximum entries kept in each map of the incident state, so a storm of distinct alerts
/// cannot grow memory without bound. The oldest entries are forgotten first.
pub const STATE_CAPACITY: usize = 10_000;

/// Maximum fingerprints a journal line stores in each of `fingerprints` and `firing`. A
/// notification with more is journaled with the first ones and the full counts.
pub const MAX_JOURNAL_FINGERPRINTS: usize = 1_000;

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("failed to create directory {path}: {source}; the data directory must be writable")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("failed to open events journal {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("failed to read events journal {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("failed to append to events journal {path}: {source}")]
    Append {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The outcome of a notification or a capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A capture was queued.
    Accepted,
    /// Equal to a notification within the dedupe window; recorded against its incident.
    Deduplicated,
    /// Only resolved alerts; a follow-up was sent.
    Resolved,
    /// Valid, but neither firing nor resolved alerts.
    Ignored,
    /// Not processed: malformed, unauthorized, too large, or AegisIR had no room.
    Rejected,
    Captured,
    CaptureFailed,
    /// Queued but not captured because the server was stopping; the pending job file stays
    /// and the capture is queued again at the next start.
    CaptureSkipped,
    /// A capture left pending by an earlier run, queued again at start-up.
    Requeued,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Deduplicated => "deduplicated",
            Outcome::Resolved => "resolved",
            Outcome::Ignored => "ignored",
            Outcome::Rejected => "rejected",
            Outcome::Captured => "captured",
            Outcome::CaptureFailed => "capture_failed",
            Outcome::CaptureSkipped => "capture_skipped",
            Outcome::Requeued => "requeued",
        }
    }
}

/// Whether a notification started a capture, as the reply and the journal state it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaptureDecision {
    Queued,
    Deduplicated,
    None,
}

/// One line of the events journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub time: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<String>,
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture: Option<CaptureDecision>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_key: Option<String>,
    /// Fingerprints of every alert in the notification, in payload order; in the journal at
    /// most [`MAX_JOURNAL_FINGERPRINTS`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fingerprints: Vec<String>,
    /// The number of alerts in the notification, set only when `fingerprints` was cut.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprints_total: Option<usize>,
    /// Fingerprints of the firing alerts, sorted; in the journal at most
    /// [`MAX_JOURNAL_FINGERPRINTS`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub firing: Vec<String>,
    /// The number of firing alerts, set only when `firing` was cut.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firing_total: Option<usize>,
    /// The dedupe key (a SHA-256 in hex) the notification was judged by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedupe_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_secs: Option<f64>,
    /// Oddities of an accepted notification, such as a `version` other than `4`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl Event {
    pub fn new(outcome: Outcome) -> Event {
        Event {
            time: Utc::now(),
            incident: None,
            outcome,
            reason: None,
            capture: None,
            group_key: None,
            fingerprints: Vec::new(),
            fingerprints_total: None,
            firing: Vec::new(),
            firing_total: None,
            dedupe_key: None,
            body_sha256: None,
            body_bytes: None,
            bundle: None,
            duration_secs: None,
            warnings: Vec::new(),
        }
    }

    /// Returns whether the journal line lists only some of the notification's fingerprints.
    pub fn is_cut(&self) -> bool {
        self.fingerprints_total.is_some() || self.firing_total.is_some()
    }

    /// Returns the event as the journal stores it: each fingerprint list cut to
    /// [`MAX_JOURNAL_FINGERPRINTS`], with its full length beside it. `None` when nothing is
    /// cut.
    fn cut_for_journal(&self) -> Option<Event> {
        let max = MAX_JOURNAL_FINGERPRINTS;
        if self.fingerprints.len() <= max && self.firing.len() <= max {
            return None;
        }
        let mut cut = self.clone();
        if cut.fingerprints.len() > max {
            cut.fingerprints_total = Some(cut.fingerprints.len());
            cut.fingerprints.truncate(max);
        }
        if cut.firing.len() > max {
            cut.firing_total = Some(cut.firing.len());
            cut.firing.truncate(max);
        }
        Some(cut)
    }

    /// Fingerprints of the alerts that were not firing.
    pub fn not_firing(&self) -> impl Iterator<Item = &String> {
        self.fingerprints
            .iter()
            .filter(|f| !self.firing.contains(f))
    }
}

/// The append-only events journal.
// NOTE: the journal is never rotated, and a restart replays all of it. Measured with the
// ignored test `journal_line_sizes` (16-hex-digit fingerprints): a notification with one
// alert adds about 410 bytes, and one with 20,000 firing alerts about 38 KB because each
// fingerprint list is cut to MAX_JOURNAL_FINGERPRINTS (760 KB without the cut).
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: Mutex<File>,
}

impl Journal {
    /// Returns the journal's path inside a data directory.
    pub fn path_in(data_dir: &Path) -> PathBuf {
        data_dir.join(".aegisir").join("events.jsonl")
    }

    /// Opens (or creates) the journal file for appending. A last line cut short by a crash is
    /// closed with a newline so the next event starts on a line of its own.
    pub fn open(path: &Path) -> Result<Journal, JournalError> {
        let open_error = |source| JournalError::Open {
            path: path.to_path_buf(),
            source,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| JournalError::CreateDir {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(path)
            .map_err(open_error)?;
        if ends_without_newline(&mut file).map_err(open_error)? {
            file.write_all(b"\n").map_err(open_error)?;
        }
        Ok(Journal {
            path: path.to_path_buf(),
            file: Mutex::new(file),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one event as one `write` call, so concurrent writers never interleave lines.
    // NOTE: lines reach the page cache, not the disk: there is no fsync per event, which
    // would cost milliseconds per request. A host crash can lose the last events.
    pub fn append(&self, event: &Event) -> Result<(), JournalError> {
        let cut = event.cut_for_journal();
        let event = cut.as_ref().unwrap_or(event);
        let mut line = serde_json::to_vec(event).expect("events serialize to JSON");
        line.push(b'\n');
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        file.write_all(&line)
            .map_err(|source| JournalError::Append {
                path: self.path.clone(),
                source,
            })
    }

    /// Reads every event of a journal file; a missing file has none. Lines that do not parse
    /// (a write cut short by a crash) are skipped and counted.
    pub fn read_events(path: &Path) -> Result<(Vec<Event>, usize), JournalError> {
        let mut events = Vec::new();
        let invalid = Journal::for_each_event(path, |event| events.push(event))?;
        Ok((events, invalid))
    }

    /// Streams the events of a journal file into `visit` one line at a time, so a long journal
    /// never sits in memory whole. Returns the number of lines that did not parse.
    pub fn for_each_event(
        path: &Path,
        mut visit: impl FnMut(Event),
    ) -> Result<usize, JournalError> {
        let read_error = |source| JournalError::Read {
            path: path.to_path_buf(),
            source,
        };
        let file = match File::open(path) {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(error) => return Err(read_error(error)),
        };

        let mut reader = BufReader::new(file);
        let mut line = Vec::new();
        let mut invalid = 0;
        loop {
            line.clear();
            if reader.read_until(b'\n', &mut line).map_err(read_error)? == 0 {
                break;
            }
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice::<Event>(&line) {
                Ok(event) => visit(event),
                Err(_) => invalid += 1,
            }
        }
        Ok(invalid)
    }
}

fn ends_without_newline(file: &mut File) -> io::Result<bool> {
    let length = file.seek(SeekFrom::End(0))?;
    if length == 0 {
        return Ok(false);
    }
    file.seek(SeekFrom::Start(length - 1))?;
    let mut last = [0u8; 1];
    file.read_exact(&mut last)?;
    Ok(last[0] != b'\n')
}

/// A map that drops its oldest entries beyond a capacity.
#[derive(Debug)]
pub struct BoundedMap<K, V> {
    entries: HashMap<K, V>,
    order: VecDeque<K>,
    capacity: usize,
}

impl<K: Eq + Hash + Clone, V> BoundedMap<K, V> {
    pub fn new(capacity: usize) -> Self {
        BoundedMap {
            entries: HashMap::new(),
            order: VecDeque::new(),
            capacity,
        }
    }

    pub fn insert(&mut self, key: K, value: V) {
        if self.entries.insert(key.clone(), value).is_none() {
            self.order.push_back(key);
        }
        while self.entries.len() > self.capacity {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            self.entries.remove(&oldest);
        }
    }

    pub fn get(&self, key: &K) -> Option<&V> {
        self.entries.get(key)
    }

    /// Removes a key; its place in the eviction order is dropped lazily.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        let value = self.entries.remove(key)?;
        if self.order.len() > 2 * self.capacity {
            let entries = &self.entries;
            self.order.retain(|k| entries.contains_key(k));
        }
        Some(value)
    }

    /// Keeps only the entries for which `keep` returns true.
    pub fn retain(&mut self, mut keep: impl FnMut(&K, &V) -> bool) {
        self.entries.retain(|key, value| keep(key, value));
        let entries = &self.entries;
        self.order.retain(|key| entries.contains_key(key));
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// A notification seen within the dedupe window.
#[derive(Debug, Clone)]
struct Seen {
    incident: String,
    at: DateTime<Utc>,
}

/// A firing alert and the incident it first fired in.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FiringAlert {
    incident: String,
    group_key: String,
}

/// The intake's memory between notifications.
#[derive(Debug)]
pub struct State {
    window: chrono::Duration,
    seen: HashMap<String, Seen>,
    /// Dedupe keys in the order they were first seen, for expiry.
    seen_order: VecDeque<(DateTime<Utc>, String)>,
    /// Firing alert fingerprint → the incident it first fired in, until it resolves.
    firing: BoundedMap<String, FiringAlert>,
    /// Incident id → bundle id.
    bundles: BoundedMap<String, String>,
    /// Incidents whose queued capture has not finished, filled only while replaying.
    unfinished: BoundedMap<String, ()>,
}

impl State {
    pub fn new(window: Duration) -> State {
        State {
            window: chrono::Duration::from_std(window).unwrap_or(chrono::Duration::MAX),
            seen: HashMap::new(),
            seen_order: VecDeque::new(),
            firing: BoundedMap::new(STATE_CAPACITY),
            bundles: BoundedMap::new(STATE_CAPACITY),
            unfinished: BoundedMap::new(STATE_CAPACITY),
        }
    }

    /// Returns the incident of a notification with this key seen within the window before
    /// `now`.
    pub fn duplicate_of(&mut self, key: &str, now: DateTime<Utc>) -> Option<String> {
        self.expire(now);
        let seen = self.seen.get(key)?;
        (now - seen.at < self.window).then(|| seen.incident.clone())
    }

    /// Remembers a notification's key; the window counts from its first sighting.
    pub fn remember(&mut self, key: &str, incident: &str, at: DateTime<Utc>) {
        if self.seen.contains_key(key) {
            return;
        }
        self.seen.insert(
            key.to_string(),
            Seen {
                incident: incident.to_string(),
                at,
            },
        );
        self.seen_order.push_back((at, key.to_string()));
        while self.seen.len() > STATE_CAPACITY {
            let Some((_, oldest)) = self.seen_order.pop_front() else {
                break;
            };
            self.seen.remove(&oldest);
        }
    }

    fn expire(&mut self, now: DateTime<Utc>) {
        while let Some((at, key)) = self.seen_order.front() {
            if now - *at < self.window {
                break;
            }
            if self.seen.get(key).is_some_and(|seen| seen.at == *at) {
                self.seen.remove(key);
            }
            self.seen_order.pop_front();
        }
    }

    /// Drops every key outside the window and puts the expiry order back in time order, which
    /// a replayed journal does not guarantee.
    fn compact(&mut self, now: DateTime<Utc>) {
        let window = self.window;
        self.seen.retain(|_, seen| now - seen.at < window);
        let mut order: Vec<(DateTime<Utc>, String)> = self
            .seen
            .iter()
            .map(|(key, seen)| (seen.at, key.clone()))
            .collect();
        order.sort();
        self.seen_order = order.into();
    }

    /// Records firing alerts of a group. An alert already firing keeps the incident it first
    /// fired in, so its resolution later names that incident's bundle.
    pub fn note_firing<'a>(
        &mut self,
        fingerprints: impl IntoIterator<Item = &'a String>,
        incident: &str,
        group_key: &str,
    ) {
        for fingerprint in fingerprints {
            if self.firing.get(fingerprint).is_some() {
                continue;
            }
            let alert = FiringAlert {
                incident: incident.to_string(),
                group_key: group_key.to_string(),
            };
            self.firing.insert(fingerprint.clone(), alert);
        }
    }

    /// Returns the incident that already covers every one of `fingerprints`: each is still
    /// firing in the same group. `None` when any of them is new, or there are none.
    pub fn covering_incident(&self, group_key: &str, fingerprints: &[String]) -> Option<String> {
        let mut first = None;
        for fingerprint in fingerprints {
            let alert = self.firing.get(fingerprint)?;
            if alert.group_key != group_key {
                return None;
            }
            first.get_or_insert_with(|| alert.incident.clone());
        }
        first
    }

    /// Forgets resolved alerts and returns the first incident one of them belonged to.
    pub fn note_resolved<'a>(
        &mut self,
        fingerprints: impl IntoIterator<Item = &'a String>,
    ) -> Option<String> {
        let mut original = None;
        for fingerprint in fingerprints {
            let alert = self.firing.remove(fingerprint);
            original = original.or(alert.map(|alert| alert.incident));
        }
        original
    }

    /// Returns the incident a firing alert first fired in, while it is still remembered.
    pub fn incident_of(&self, fingerprint: &str) -> Option<&str> {
        self.firing
            .get(&fingerprint.to_string())
            .map(|alert| alert.incident.as_str())
    }

    pub fn note_bundle(&mut self, incident: &str, bundle: &str) {
        self.bundles
            .insert(incident.to_string(), bundle.to_string());
    }

    pub fn bundle_of(&self, incident: &str) -> Option<&str> {
        self.bundles.get(&incident.to_string()).map(String::as_str)
    }

    /// Replays one journal event. Dedupe keys older than the window are not kept.
    pub fn replay(&mut self, event: &Event) {
        let Some(incident) = event.incident.as_deref() else {
            return;
        };
        let recent = Utc::now() - event.time < self.window;
        match event.outcome {
            Outcome::Accepted | Outcome::Deduplicated | Outcome::Resolved => {
                if let (Some(key), true) = (&event.dedupe_key, recent) {
                    self.remember(key, incident, event.time);
                }
                let group_key = event.group_key.as_deref().unwrap_or_default();
                if event.is_cut() {
                    // The line does not say which of the other alerts resolved, so none of the
                    // group's alerts is trusted to still fire: at worst an alert captures again.
                    self.forget_group(group_key);
                    self.note_firing(&event.firing, incident, group_key);
                } else {
                    self.note_firing(&event.firing, incident, group_key);
                    self.note_resolved(event.not_firing());
                }
                if event.outcome == Outcome::Accepted
                    && event.capture == Some(CaptureDecision::Queued)
                {
                    self.unfinished.insert(incident.to_string(), ());
                }
            }
            Outcome::Captured => {
                if let Some(bundle) = &event.bundle {
                    self.note_bundle(incident, bundle);
                }
                self.unfinished.remove(&incident.to_string());
            }
            Outcome::CaptureFailed => {
                self.unfinished.remove(&incident.to_string());
                self.forget_incident(incident);
            }
            _ => {}
        }
    }

    fn forget_group(&mut self, group_key: &str) {
        self.firing.retain(|_, alert| alert.group_key != group_key);
    }

    /// Forgets the dedupe keys and firing alerts of an incident whose capture failed, so the
    /// next equal notification captures instead of being deduplicated against no bundle.
    pub fn forget_incident(&mut self, incident: &str) {
        self.seen.retain(|_, seen| seen.incident != incident);
        self.firing.retain(|_, alert| alert.incident != incident);
        let seen = &self.seen;
        self.seen_order.retain(|(_, key)| seen.contains_key(key));
    }

    /// Forgets every incident whose capture never finished and will not run again (`pending`
    /// returns false for it), so a retry of its notification captures instead of being
    /// deduplicated against an incident without a bundle. Returns how many were forgotten.
    pub fn forget_lost_captures(&mut self, pending: impl Fn(&str) -> bool) -> usize {
        let unfinished = std::mem::replace(&mut self.unfinished, BoundedMap::new(STATE_CAPACITY));
        let lost: std::collections::HashSet<String> = unfinished
            .entries
            .into_keys()
            .filter(|incident| !pending(incident))
            .collect();
        if lost.is_empty() {
            return 0;
        }
        self.seen.retain(|_, seen| !lost.contains(&seen.incident));
        self.firing
            .retain(|_, alert| !lost.contains(&alert.incident));
        let seen = &self.seen;
        self.seen_order.retain(|(_, key)| seen.contains_key(key));
        lost.len()
    }
}

/// Counts from rebuilding the state at start-up.
#[derive(Debug, Default, Clone, Copy)]
pub struct RebuildStats {
    pub events: usize,
    pub invalid_lines: usize,
    pub deduplicating: usize,
    pub firing_alerts: usize,
}

/// The journal together with the state it rebuilds; shared by the intake and the worker.
#[derive(Debug)]
pub struct IncidentLog {
    journal: Journal,
    state: Mutex<State>,
}

impl IncidentLog {
    /// Opens the journal in a data directory and rebuilds the state from its events.
    pub fn open(
        data_dir: &Path,
        window: Duration,
    ) -> Result<(IncidentLog, RebuildStats), JournalError> {
        IncidentLog::open_file(&Journal::path_in(data_dir), window)
    }

    pub fn open_file(
        path: &Path,
        window: Duration,
    ) -> Result<(IncidentLog, RebuildStats), JournalError> {
        let mut state = State::new(window);
        let mut events = 0;
        let invalid_lines = Journal::for_each_event(path, |event| {
            events += 1;
            state.replay(&event);
        })?;
        state.compact(Utc::now());

        let stats = RebuildStats {
            events,
            invalid_lines,
            deduplicating: state.seen.len(),
            firing_alerts: state.firing.len(),
        };
        let log = IncidentLog {
            journal: Journal::open(path)?,
            state: Mutex::new(state),
        };
        Ok((log, stats))
    }

    /// Wraps an already open journal in a log with an empty state.
    pub fn with_journal(journal: Journal, window: Duration) -> IncidentLog {
        IncidentLog {
            journal,
            state: Mutex::new(State::new(window)),
        }
    }

    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    pub fn append(&self, event: &Event) -> Result<(), JournalError> {
        self.journal.append(event)
    }

    /// Locks the state. Hold it across a decision, its journal line and its effects, so two
    /// equal notifications arriving together cannot both start a capture.
    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepted(incident: &str, key: &str, firing: &[&str], at: DateTime<Utc>) -> Event {
        Event {
            time: at,
            incident: Some(incident.to_string()),
            dedupe_key: Some(key.to_string()),
            fingerprints: firing.iter().map(|f| f.to_string()).collect(),
            firing: firing.iter().map(|f| f.to_string()).collect(),
            capture: Some(CaptureDecision::Queued),
            ..Event::new(Outcome::Accepted)
        }
    }

    #[test]
    fn duplicate_within_window_only() {
        let mut state = State::new(Duration::from_secs(300));
        let start = Utc::now();
        state.remember("k", "inc-1", start);

        let soon = start + chrono::Duration::seconds(299);
        assert_eq!(state.duplicate_of("k", soon).as_deref(), Some("inc-1"));
        assert_eq!(state.duplicate_of("other", soon), None);

        let later = start + chrono::Duration::seconds(300);
        assert_eq!(state.duplicate_of("k", later), None);
        assert!(state.seen.is_empty());
    }

    #[test]
    fn window_counts_from_first_sighting() {
        let mut state = State::new(Duration::from_secs(60));
        let start = Utc::now();
        state.remember("k", "inc-1", start);
        state.remember("k", "inc-2", start + chrono::Duration::seconds(30));
        let later = start + chrono::Duration::seconds(61);
        assert_eq!(state.duplicate_of("k", later), None);
    }

    #[test]
    fn journal_round_trips_events() {
        let dir = tempfile::tempdir().unwrap();
        let path = Journal::path_in(dir.path());
        let journal = Journal::open(&path).unwrap();
        let event = accepted("inc-1", "key", &["fp1", "fp2"], Utc::now());
        journal.append(&event).unwrap();
        journal.append(&Event::new(Outcome::Rejected)).unwrap();

        let (events, invalid) = Journal::read_events(&path).unwrap();
        assert_eq!(invalid, 0);
        assert_eq!(events.len(), 2);
        assert_eq!(events[0], event);
        assert_eq!(events[1].outcome, Outcome::Rejected);
    }

    #[test]
    fn journal_open_names_directory_it_cannot_create() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".aegisir"), b"not a directory").unwrap();

        let error = Journal::open(&Journal::path_in(dir.path())).unwrap_err();

        let expected = format!(
            "failed to create directory {}",
            dir.path().join(".aegisir").display()
        );
        assert!(error.to_string().starts_with(&expected), "{error}");
        assert!(matches!(error, JournalError::CreateDir { .. }), "{error}");
    }

    #[test]
    fn journal_reopen_closes_cut_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = Journal::path_in(dir.path());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"{\"time\":\"2026-12-03T21:44:00Z\",\"outc").unwrap();

        let journal = Journal::open(&path).unwrap();
        journal.append(&Event::new(Outcome::Ignored)).unwrap();

        let (events, invalid) = Journal::read_events(&path).unwrap();
        assert_eq!(invalid, 1);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].outcome, Outcome::Ignored);
    }

    #[test]
    fn rebuild_restores_dedupe_and_bundles() {
        let dir = tempfile::tempdir().unwrap();
        let now = Utc::now();
        {
            let (log, _) = IncidentLog::open(dir.path(), Duration::from_secs(300)).unwrap();
            log.append(&accepted("inc-1", "key-1", &["fp1"], now))
                .unwrap();
            log.append(&accepted(
                "inc-old",
                "key-old",
                &["fp-old"],
                now - chrono::Duration::hours(1),
            ))
            .unwrap();
            let captured = Event {
                incident: Some("inc-1".to_string()),
                bundle: Some("2026-12-03T21-45-38.812Z_9f2c4e1a7b3d".to_string()),
                ..Event::new(Outcome::Captured)
            };
            log.append(&captured).unwrap();
        }

        let (log, stats) = IncidentLog::open(dir.path(), Duration::from_secs(300)).unwrap();
        assert_eq!(stats.events, 3);
        assert_eq!(stats.deduplicating, 1);
        assert_eq!(stats.firing_alerts, 2);

        let mut state = log.state();
        assert_eq!(
            state.duplicate_of("key-1", Utc::now()).as_deref(),
            Some("inc-1")
        );
        assert_eq!(state.duplicate_of("key-old", Utc::now()), None);
        assert_eq!(state.incident_of("fp1"), Some("inc-1"));
        assert_eq!(
            state.bundle_of("inc-1"),
            Some("2026-12-03T21-45-38.812Z_9f2c4e1a7b3d")
        );
    }

    #[test]
    fn rebuild_forgets_resolved_alerts() {
        let mut state = State::new(Duration::from_secs(300));
        let now = Utc::now();
        state.replay(&accepted("inc-1", "key-1", &["fp1", "fp2"], now));
        let resolved = Event {
            incident: Some("inc-1".to_string()),
            dedupe_key: Some("key-r".to_string()),
            fingerprints: vec!["fp1".to_string()],
            ..Event::new(Outcome::Resolved)
        };
        state.replay(&resolved);
        assert_eq!(state.incident_of("fp1"), None);
        assert_eq!(state.incident_of("fp2"), Some("inc-1"));
        assert_eq!(state.duplicate_of("key-r", now).as_deref(), Some("inc-1"));
    }

    #[test]
    fn failed_capture_is_no_dedupe_target() {
        let mut state = State::new(Duration::from_secs(300));
        let now = Utc::now();
        state.replay(&accepted("inc-1", "key-1", &["fp1"], now));
        state.replay(&accepted("inc-2", "key-2", &["fp2"], now));
        let failed = Event {
            incident: Some("inc-1".to_string()),
            reason: Some("No space left on device".to_string()),
            ..Event::new(Outcome::CaptureFailed)
        };
        state.replay(&failed);

        assert_eq!(state.duplicate_of("key-1", now), None);
        assert_eq!(state.incident_of("fp1"), None);
        assert_eq!(state.covering_incident("", &["fp1".to_string()]), None);
        assert_eq!(state.duplicate_of("key-2", now).as_deref(), Some("inc-2"));
        assert_eq!(state.incident_of("fp2"), Some("inc-2"));
    }

    fn many_fingerprints(count: usize) -> Vec<String> {
        (0..count).map(|i| format!("{i:016x}")).collect()
    }

    #[test]
    fn journal_cuts_long_fingerprint_lists() {
        let dir = tempfile::tempdir().unwrap();
        let path = Journal::path_in(dir.path());
        let journal = Journal::open(&path).unwrap();
        let all = many_fingerprints(20_000);
        let event = Event {
            incident: Some("inc-1".to_string()),
            fingerprints: all.clone(),
            firing: all[..1_500].to_vec(),
            ..Event::new(Outcome::Accepted)
        };
        journal.append(&event).unwrap();

        let stored = &Journal::read_events(&path).unwrap().0[0];
        assert_eq!(stored.fingerprints, all[..MAX_JOURNAL_FINGERPRINTS]);
        assert_eq!(stored.fingerprints_total, Some(20_000));
        assert_eq!(stored.firing, all[..MAX_JOURNAL_FINGERPRINTS]);
        assert_eq!(stored.firing_total, Some(1_500));
        assert!(std::fs::metadata(&path).unwrap().len() < 50_000);
    }

    #[test]
    fn journal_keeps_short_fingerprint_lists_whole() {
        let event = accepted("inc-1", "key", &["fp1", "fp2"], Utc::now());
        assert!(event.cut_for_journal().is_none());
        let line = serde_json::to_string(&event).unwrap();
        assert!(!line.contains("fingerprints_total"), "{line}");
        assert!(!line.contains("firing_total"), "{line}");
    }

    #[test]
    fn replay_of_cut_line_forgets_group_alerts() {
        let mut state = State::new(Duration::from_secs(300));
        let now = Utc::now();
        let mut earlier = accepted("inc-1", "key-1", &["stale", "other"], now);
        earlier.group_key = Some("group".to_string());
        state.replay(&earlier);
        let mut elsewhere = accepted("inc-2", "key-2", &["kept"], now);
        elsewhere.group_key = Some("elsewhere".to_string());
        state.replay(&elsewhere);

        let mut cut = accepted("inc-3", "key-3", &["fp-listed"], now);
        cut.group_key = Some("group".to_string());
        cut.fingerprints_total = Some(20_000);
        state.replay(&cut);

        assert_eq!(state.incident_of("stale"), None);
        assert_eq!(state.incident_of("other"), None);
        assert_eq!(state.incident_of("fp-listed"), Some("inc-3"));
        assert_eq!(state.incident_of("kept"), Some("inc-2"));
    }

    #[test]
    #[ignore = "prints journal line sizes for the NOTE on Journal"]
    fn journal_line_sizes() {
        let all = many_fingerprints(20_000);
        let one = accepted(
            "20261203T214538.812Z-9f2c4e1a",
            &"a".repeat(64),
            &["a1b2c3d4e5f60718"],
            Utc::now(),
        );
        let event = Event {
            group_key: Some("{}:{alertname=\"HighCPU\"}".to_string()),
            body_sha256: Some("b".repeat(64)),
            body_bytes: Some(1_234),
            ..one.clone()
        };
        let large = Event {
            fingerprints: all.clone(),
            firing: all,
            ..event.clone()
        };
        let size = |event: &Event| serde_json::to_vec(event).unwrap().len();
        let cut = large.cut_for_journal().unwrap();
        println!("one alert: {} bytes", size(&event));
        println!("20,000 alerts uncut: {} bytes", size(&large));
        println!("20,000 alerts cut: {} bytes", size(&cut));
    }

    #[test]
    fn bounded_map_forgets_oldest() {
        let mut map = BoundedMap::new(2);
        map.insert("a", 1);
        map.insert("b", 2);
        map.insert("c", 3);
        assert_eq!(map.get(&"a"), None);
        assert_eq!(map.get(&"b"), Some(&2));
        assert_eq!(map.get(&"c"), Some(&3));
        assert_eq!(map.len(), 2);
    }

    #[test]
    fn seen_keys_are_bounded() {
        let mut state = State::new(Duration::from_secs(3600));
        let now = Utc::now();
        for i in 0..STATE_CAPACITY + 5 {
            state.remember(&format!("key-{i}"), "inc", now);
        }
        assert_eq!(state.seen.len(), STATE_CAPACITY);
        assert_eq!(state.duplicate_of("key-0", now), None);
    }
}
