//! The intake: turns one `POST /alert` body into a journal line, a reply and, for new firing
//! alerts, a queued capture.
//!
//! The rules, each per alert status rather than the notification's top-level `status`:
//!
//! - an empty body is a manual trigger and always queues a capture;
//! - firing alerts queue a capture unless a notification with the same `groupKey` and the same
//!   firing fingerprints and `startsAt` was seen within the dedupe window, in which case it is
//!   recorded against the incident that already exists;
//! - only resolved alerts start no capture (unless `capture.on_resolved` is set) and send a
//!   Slack follow-up naming the bundle of the incident they belonged to;
//! - every notification, rejected ones included, is journaled before the reply. A journal
//!   that cannot be written, or a full queue, gets 503, so Alertmanager retries.
//!
//! Nothing here waits for a capture or for Slack: the worker takes jobs from a bounded queue.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::http::StatusCode;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::alert::{Alert, Notification};
use crate::incidents::{CaptureDecision, Event, IncidentLog, Outcome};
use crate::metrics::Metrics;
use crate::slack::{self, NotifierHandle, SlackSettings};
use crate::store::{Trigger, TriggerAlert, TriggerKind};

/// One capture waiting for the worker.
#[derive(Debug)]
pub struct CaptureJob {
    pub incident_id: String,
    pub trigger: Trigger,
    /// The notification that started it; `None` for a manual trigger.
    pub notification: Option<Arc<Notification>>,
    /// The request body exactly as received; `None` for a manual trigger.
    pub body: Option<Bytes>,
    pub queued_at: Instant,
}

/// The reason a request was not processed, and the label of `aegisir_rejected_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    MalformedJson,
    /// The client stopped sending before the body was complete.
    IncompleteBody,
    TooLarge,
    Unauthorized,
    QueueFull,
    JournalError,
    WorkerStopped,
}

impl Rejection {
    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::MalformedJson => "malformed_json",
            Rejection::IncompleteBody => "incomplete_body",
            Rejection::TooLarge => "too_large",
            Rejection::Unauthorized => "unauthorized",
            Rejection::QueueFull => "queue_full",
            Rejection::JournalError => "journal_error",
            Rejection::WorkerStopped => "worker_stopped",
        }
    }

    fn status(self) -> StatusCode {
        match self {
            Rejection::MalformedJson | Rejection::IncompleteBody => StatusCode::BAD_REQUEST,
            Rejection::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Rejection::Unauthorized => StatusCode::UNAUTHORIZED,
            Rejection::QueueFull | Rejection::JournalError | Rejection::WorkerStopped => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }
}

/// The JSON body of a reply to `POST /alert`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplyBody {
    /// `accepted` for every 2xx reply, `rejected` otherwise.
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incident: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capture: Option<CaptureDecision>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
}

/// A reply to `POST /alert`, before it becomes an HTTP response.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: StatusCode,
    pub body: ReplyBody,
    pub retry_after_secs: Option<u64>,
}

impl Reply {
    fn accepted(outcome: Outcome, incident: &str, capture: CaptureDecision) -> Reply {
        let status = match capture {
            CaptureDecision::Queued => StatusCode::ACCEPTED,
            _ => StatusCode::OK,
        };
        Reply {
            status,
            body: ReplyBody {
                status: "accepted",
                outcome: Some(outcome.as_str()),
                incident: Some(incident.to_string()),
                capture: Some(capture),
                reason: None,
                error: None,
                line: None,
                column: None,
            },
            retry_after_secs: None,
        }
    }

    fn rejected(reason: Rejection, error: String) -> Reply {
        Reply {
            status: reason.status(),
            body: ReplyBody {
                status: "rejected",
                outcome: None,
                incident: None,
                capture: None,
                reason: Some(reason.as_str()),
                error: Some(error),
                line: None,
                column: None,
            },
            retry_after_secs: None,
        }
    }
}

/// The facts about a request body that the journal records.
#[derive(Debug, Clone, Default)]
pub struct BodyInfo {
    pub sha256: Option<String>,
    pub bytes: Option<u64>,
}

impl BodyInfo {
    pub fn of(body: &[u8]) -> BodyInfo {
        BodyInfo {
            sha256: Some(hex::encode(Sha256::digest(body))),
            bytes: Some(body.len() as u64),
        }
    }

    /// Describes a body that was not read, of which only the declared length is known.
    pub fn declared(content_length: Option<u64>) -> BodyInfo {
        BodyInfo {
            sha256: None,
            bytes: content_length,
        }
    }
}

/// Settings the intake decides with.
#[derive(Debug, Clone)]
pub struct IntakeOptions {
    /// Also capture when a notification holds only resolved alerts.
    pub capture_on_resolved: bool,
    /// The `Retry-After` of a 503 for a full queue, about one capture's duration.
    pub retry_after_secs: u64,
}

/// Receives notifications; shared by every request.
pub struct Intake {
    log: Arc<IncidentLog>,
    queue: mpsc::Sender<CaptureJob>,
    metrics: Metrics,
    options: IntakeOptions,
    notifier: Option<NotifierHandle>,
    slack: SlackSettings,
}

impl Intake {
    pub fn new(
        log: Arc<IncidentLog>,
        queue: mpsc::Sender<CaptureJob>,
        metrics: Metrics,
        options: IntakeOptions,
        notifier: Option<NotifierHandle>,
        slack: SlackSettings,
    ) -> Intake {
        Intake {
            log,
            queue,
            metrics,
            options,
            notifier,
            slack,
        }
    }

    /// Handles the body of an authorized request that fit the size limit.
    pub fn receive(&self, body: Bytes) -> Reply {
        let info = BodyInfo::of(&body);
        if body.iter().all(u8::is_ascii_whitespace) {
            return self.receive_manual(info);
        }

        let notification: Notification = match serde_json::from_slice(&body) {
            Ok(notification) => notification,
            Err(error) => return self.reject_malformed(&error, info),
        };
        self.count_alerts(&notification);

        let notification = Arc::new(notification);
        if notification.firing().next().is_some() {
            self.receive_firing(notification, body, info)
        } else if notification.resolved().next().is_some() {
            self.receive_resolved(notification, body, info)
        } else {
            self.receive_ignored(&notification, info)
        }
    }

    /// Journals and counts a request rejected before its body was parsed.
    pub fn reject(&self, reason: Rejection, error: String, info: BodyInfo) -> Reply {
        let event = Event {
            reason: Some(reason.as_str().to_string()),
            body_sha256: info.sha256,
            body_bytes: info.bytes,
            ..Event::new(Outcome::Rejected)
        };
        if let Err(reply) = self.journal(&event) {
            return *reply;
        }
        self.count_rejection(reason);
        Reply::rejected(reason, error)
    }

    fn receive_manual(&self, info: BodyInfo) -> Reply {
        self.metrics
            .alerts_total
            .with_label_values(&["manual"])
            .inc();
        let incident = new_incident_id();
        let trigger = Trigger {
            kind: TriggerKind::Manual,
            incident_id: incident.clone(),
            group_key: None,
            receiver: None,
            alerts: Vec::new(),
        };
        let permit = match self.reserve_slot(&info) {
            Ok(permit) => permit,
            Err(reply) => return *reply,
        };

        let event = Event {
            incident: Some(incident.clone()),
            reason: Some("manual".to_string()),
            capture: Some(CaptureDecision::Queued),
            body_sha256: info.sha256,
            body_bytes: info.bytes,
            ..Event::new(Outcome::Accepted)
        };
        if let Err(reply) = self.journal(&event) {
            return *reply;
        }
        self.send(permit, incident.clone(), trigger, None, None);
        self.count_outcome(Outcome::Accepted);
        tracing::info!(incident = %incident, "manual capture queued");
        Reply::accepted(Outcome::Accepted, &incident, CaptureDecision::Queued)
    }

    fn receive_firing(
        &self,
        notification: Arc<Notification>,
        body: Bytes,
        info: BodyInfo,
    ) -> Reply {
        let firing = sorted_fingerprints(notification.firing());
        let key = dedupe_key(
            "firing",
            &notification.group_key,
            notification.firing(),
            false,
        );
        let now = Utc::now();

        let mut state = self.log.state();
        if let Some(incident) = state.duplicate_of(&key, now) {
            return self.record_duplicate(&notification, &incident, &key, firing, info);
        }
        let permit = match self.reserve_slot(&info) {
            Ok(permit) => permit,
            Err(reply) => return *reply,
        };

        let incident = new_incident_id();
        let event = Event {
            time: now,
            incident: Some(incident.clone()),
            capture: Some(CaptureDecision::Queued),
            group_key: Some(notification.group_key.clone()),
            fingerprints: all_fingerprints(&notification),
            firing: firing.clone(),
            dedupe_key: Some(key.clone()),
            body_sha256: info.sha256,
            body_bytes: info.bytes,
            ..Event::new(Outcome::Accepted)
        };
        if let Err(reply) = self.journal(&event) {
            return *reply;
        }
        state.remember(&key, &incident, now);
        state.note_firing(&firing, &incident);
        drop(state);

        let trigger = trigger_of(&notification, &incident);
        self.send(
            permit,
            incident.clone(),
            trigger,
            Some(notification),
            Some(body),
        );
        self.count_outcome(Outcome::Accepted);
        tracing::info!(incident = %incident, firing = firing.len(), "capture queued");
        Reply::accepted(Outcome::Accepted, &incident, CaptureDecision::Queued)
    }

    fn record_duplicate(
        &self,
        notification: &Notification,
        incident: &str,
        key: &str,
        firing: Vec<String>,
        info: BodyInfo,
    ) -> Reply {
        let event = Event {
            incident: Some(incident.to_string()),
            capture: Some(CaptureDecision::Deduplicated),
            group_key: Some(notification.group_key.clone()),
            fingerprints: all_fingerprints(notification),
            firing,
            dedupe_key: Some(key.to_string()),
            body_sha256: info.sha256,
            body_bytes: info.bytes,
            ..Event::new(Outcome::Deduplicated)
        };
        if let Err(reply) = self.journal(&event) {
            return *reply;
        }
        self.count_outcome(Outcome::Deduplicated);
        tracing::debug!(incident = %incident, "notification deduplicated");
        Reply::accepted(
            Outcome::Deduplicated,
            incident,
            CaptureDecision::Deduplicated,
        )
    }

    fn receive_resolved(
        &self,
        notification: Arc<Notification>,
        body: Bytes,
        info: BodyInfo,
    ) -> Reply {
        let key = dedupe_key(
            "resolved",
            &notification.group_key,
            notification.resolved(),
            true,
        );
        let now = Utc::now();

        let mut state = self.log.state();
        if let Some(incident) = state.duplicate_of(&key, now) {
            return self.record_duplicate(&notification, &incident, &key, Vec::new(), info);
        }
        let permit = if self.options.capture_on_resolved {
            match self.reserve_slot(&info) {
                Ok(permit) => Some(permit),
                Err(reply) => return *reply,
            }
        } else {
            None
        };

        let resolved: Vec<String> = notification.resolved().map(alert_identity).collect();
        let original = resolved
            .iter()
            .find_map(|fingerprint| state.incident_of(fingerprint))
            .map(str::to_string);
        let bundle = original
            .as_deref()
            .and_then(|incident| state.bundle_of(incident))
            .map(str::to_string);
        let incident = original.clone().unwrap_or_else(new_incident_id);
        let capture = match permit {
            Some(_) => CaptureDecision::Queued,
            None => CaptureDecision::None,
        };

        let event = Event {
            time: now,
            incident: Some(incident.clone()),
            capture: Some(capture),
            group_key: Some(notification.group_key.clone()),
            fingerprints: all_fingerprints(&notification),
            dedupe_key: Some(key.clone()),
            bundle: bundle.clone(),
            body_sha256: info.sha256,
            body_bytes: info.bytes,
            ..Event::new(Outcome::Resolved)
        };
        if let Err(reply) = self.journal(&event) {
            return *reply;
        }
        state.remember(&key, &incident, now);
        state.note_resolved(&resolved);
        drop(state);

        if let Some(permit) = permit {
            let trigger = trigger_of(&notification, &incident);
            let after = format!("{incident}-after");
            self.send(
                permit,
                after,
                trigger,
                Some(notification.clone()),
                Some(body),
            );
        }
        self.send_resolved_follow_up(notification, bundle.clone());
        self.count_outcome(Outcome::Resolved);
        tracing::info!(
            incident = %incident,
            original_bundle = bundle.as_deref().unwrap_or("unknown"),
            resolved = resolved.len(),
            "alerts resolved"
        );
        Reply::accepted(Outcome::Resolved, &incident, capture)
    }

    fn receive_ignored(&self, notification: &Notification, info: BodyInfo) -> Reply {
        let incident = new_incident_id();
        let event = Event {
            incident: Some(incident.clone()),
            reason: Some("no firing or resolved alerts".to_string()),
            capture: Some(CaptureDecision::None),
            group_key: Some(notification.group_key.clone()),
            fingerprints: all_fingerprints(notification),
            body_sha256: info.sha256,
            body_bytes: info.bytes,
            ..Event::new(Outcome::Ignored)
        };
        if let Err(reply) = self.journal(&event) {
            return *reply;
        }
        self.count_outcome(Outcome::Ignored);
        Reply::accepted(Outcome::Ignored, &incident, CaptureDecision::None)
    }

    fn reject_malformed(&self, error: &serde_json::Error, info: BodyInfo) -> Reply {
        let message = format!("invalid Alertmanager webhook JSON: {error}");
        let mut reply = self.reject(Rejection::MalformedJson, message, info);
        if reply.body.reason == Some(Rejection::MalformedJson.as_str()) {
            reply.body.line = Some(error.line());
            reply.body.column = Some(error.column());
        }
        tracing::debug!(%error, "rejected malformed webhook body");
        reply
    }

    /// Reserves a queue slot, or journals the rejection and returns the 503.
    fn reserve_slot(&self, info: &BodyInfo) -> Result<mpsc::Permit<'_, CaptureJob>, Box<Reply>> {
        let reason = match self.queue.try_reserve() {
            Ok(permit) => return Ok(permit),
            Err(mpsc::error::TrySendError::Full(())) => Rejection::QueueFull,
            Err(mpsc::error::TrySendError::Closed(())) => Rejection::WorkerStopped,
        };
        let message = match reason {
            Rejection::QueueFull => "capture queue is full; retry later",
            _ => "capture worker is not running",
        };
        let mut reply = self.reject(reason, message.to_string(), info.clone());
        if reply.status == StatusCode::SERVICE_UNAVAILABLE {
            reply.retry_after_secs = Some(self.options.retry_after_secs);
        }
        tracing::warn!(reason = reason.as_str(), "capture not queued");
        Err(Box::new(reply))
    }

    fn send(
        &self,
        permit: mpsc::Permit<'_, CaptureJob>,
        incident_id: String,
        trigger: Trigger,
        notification: Option<Arc<Notification>>,
        body: Option<Bytes>,
    ) {
        permit.send(CaptureJob {
            incident_id,
            trigger,
            notification,
            body,
            queued_at: Instant::now(),
        });
        self.metrics.capture_queue_depth.inc();
    }

    fn journal(&self, event: &Event) -> Result<(), Box<Reply>> {
        if let Err(error) = self.log.append(event) {
            tracing::error!(%error, outcome = event.outcome.as_str(), "failed to journal a notification");
            self.count_rejection(Rejection::JournalError);
            let message = "AegisIR could not record the notification; retry later".to_string();
            let mut reply = Reply::rejected(Rejection::JournalError, message);
            reply.retry_after_secs = Some(self.options.retry_after_secs);
            return Err(Box::new(reply));
        }
        Ok(())
    }

    fn send_resolved_follow_up(&self, notification: Arc<Notification>, bundle: Option<String>) {
        let Some(notifier) = self.notifier.clone().filter(NotifierHandle::is_configured) else {
            return;
        };
        let settings = self.slack.clone();
        // Enqueueing writes the outbox file, so it runs off the request's task.
        tokio::task::spawn_blocking(move || {
            let message = slack::resolved_message(&notification, bundle.as_deref(), &settings);
            if let Err(error) = notifier.enqueue(message) {
                tracing::error!(%error, "failed to queue the Slack follow-up for resolved alerts");
            }
        });
    }

    fn count_alerts(&self, notification: &Notification) {
        let firing = notification.firing().count() as u64;
        let resolved = notification.resolved().count() as u64;
        self.metrics
            .alerts_total
            .with_label_values(&["firing"])
            .inc_by(firing);
        self.metrics
            .alerts_total
            .with_label_values(&["resolved"])
            .inc_by(resolved);
    }

    fn count_outcome(&self, outcome: Outcome) {
        self.metrics
            .notifications_total
            .with_label_values(&[outcome.as_str()])
            .inc();
    }

    fn count_rejection(&self, reason: Rejection) {
        self.metrics
            .rejected_total
            .with_label_values(&[reason.as_str()])
            .inc();
        self.count_outcome(Outcome::Rejected);
    }

    /// Read access to the incident state, for tests and the worker.
    pub fn log(&self) -> &IncidentLog {
        &self.log
    }
}

/// Generates an incident id from the UTC time and 8 random hex digits, never from a request.
pub fn new_incident_id() -> String {
    let now = Utc::now();
    format!(
        "{}-{:08x}",
        now.format("%Y%m%dT%H%M%S%.3fZ"),
        fastrand::u32(..)
    )
}

/// Returns an alert's identity: its fingerprint, or a hash of its labels when Alertmanager
/// sent none.
pub fn alert_identity(alert: &Alert) -> String {
    if !alert.fingerprint.is_empty() {
        return alert.fingerprint.clone();
    }
    let labels = serde_json::to_vec(&alert.labels).expect("labels serialize to JSON");
    format!("labels:{}", &hex::encode(Sha256::digest(labels))[..16])
}

fn all_fingerprints(notification: &Notification) -> Vec<String> {
    notification.alerts.iter().map(alert_identity).collect()
}

fn sorted_fingerprints<'a>(alerts: impl Iterator<Item = &'a Alert>) -> Vec<String> {
    let mut fingerprints: Vec<String> = alerts.map(alert_identity).collect();
    fingerprints.sort();
    fingerprints.dedup();
    fingerprints
}

/// Computes the dedupe key of a notification: SHA-256 over its kind, its `groupKey` and the sorted
/// (fingerprint, `startsAt`) pairs of its alerts (with `endsAt` too when `with_end` is set).
/// The input is a JSON array, so no choice of strings can make two different inputs equal.
pub fn dedupe_key<'a>(
    kind: &str,
    group_key: &str,
    alerts: impl Iterator<Item = &'a Alert>,
    with_end: bool,
) -> String {
    let mut pairs: Vec<(String, String, String)> = alerts
        .map(|alert| {
            let end = if with_end {
                time_text(alert.ends_at())
            } else {
                String::new()
            };
            (alert_identity(alert), time_text(alert.starts_at), end)
        })
        .collect();
    pairs.sort();
    pairs.dedup();
    let input = serde_json::json!([kind, group_key, pairs]);
    hex::encode(Sha256::digest(input.to_string().as_bytes()))
}

fn time_text(time: Option<DateTime<Utc>>) -> String {
    time.map(|t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
        .unwrap_or_default()
}

fn trigger_of(notification: &Notification, incident: &str) -> Trigger {
    let firing = notification.firing();
    let others = notification.alerts.iter().filter(|a| !a.is_firing());
    Trigger {
        kind: TriggerKind::Alertmanager,
        incident_id: incident.to_string(),
        group_key: Some(notification.group_key.clone()),
        receiver: Some(notification.receiver.clone()).filter(|r| !r.is_empty()),
        alerts: firing.chain(others).map(trigger_alert).collect(),
    }
}

fn trigger_alert(alert: &Alert) -> TriggerAlert {
    TriggerAlert {
        name: alert.name().to_string(),
        status: alert.status.clone(),
        fingerprint: alert_identity(alert),
        severity: alert.label("severity").map(str::to_string),
        instance: alert.label("instance").map(str::to_string),
        starts_at: alert.starts_at,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::*;
    use crate::incidents::Journal;

    pub(crate) const FIRING: &str = r#"{
      "version": "4", "groupKey": "{}/{severity=~\"^(?:page|ticket)$\"}:{alertname=\"DiskFull\", mount=\"../../etc\"}",
      "status": "firing", "receiver": "aegisir", "truncatedAlerts": 0,
      "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://am:9093",
      "alerts": [
        {"status": "firing", "labels": {"alertname": "DiskFull", "severity": "page"},
         "annotations": {}, "startsAt": "2026-12-03T21:44:00Z", "endsAt": "0001-01-01T00:00:00Z",
         "generatorURL": "", "fingerprint": "aaaa"},
        {"status": "firing", "labels": {"alertname": "DiskFull", "severity": "ticket"},
         "annotations": {}, "startsAt": "2026-12-03T21:44:05Z", "endsAt": "0001-01-01T00:00:00Z",
         "generatorURL": "", "fingerprint": "bbbb"}
      ]
    }"#;

    fn notification(json: &str) -> Notification {
        serde_json::from_str(json).unwrap()
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        intake: Intake,
        jobs: mpsc::Receiver<CaptureJob>,
        metrics: Metrics,
        journal_path: std::path::PathBuf,
    }

    fn fixture(capacity: usize) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        fixture_in(dir, capacity)
    }

    fn fixture_in(dir: tempfile::TempDir, capacity: usize) -> Fixture {
        let (log, _) = IncidentLog::open(dir.path(), Duration::from_secs(300)).unwrap();
        let (sender, jobs) = mpsc::channel(capacity);
        let metrics = Metrics::new();
        let options = IntakeOptions {
            capture_on_resolved: false,
            retry_after_secs: 2,
        };
        let intake = Intake::new(
            Arc::new(log),
            sender,
            metrics.clone(),
            options,
            None,
            SlackSettings::default(),
        );
        Fixture {
            journal_path: Journal::path_in(dir.path()),
            _dir: dir,
            intake,
            jobs,
            metrics,
        }
    }

    fn journal(fixture: &Fixture) -> Vec<Event> {
        Journal::read_events(&fixture.journal_path).unwrap().0
    }

    fn resolved_json() -> String {
        FIRING
            .replace("\"status\": \"firing\"", "\"status\": \"resolved\"")
            .replace("0001-01-01T00:00:00Z", "2026-12-03T22:00:00Z")
    }

    #[test]
    fn dedupe_key_ignores_alert_order() {
        let first = notification(FIRING);
        let mut second = first.clone();
        second.alerts.reverse();
        let a = dedupe_key("firing", &first.group_key, first.firing(), false);
        let b = dedupe_key("firing", &second.group_key, second.firing(), false);
        assert_eq!(a, b);
        assert_eq!(a.len(), 64);
    }

    #[test]
    fn dedupe_key_changes_with_starts_at() {
        let first = notification(FIRING);
        let mut second = first.clone();
        second.alerts[0].starts_at = Some("2026-12-03T22:00:00Z".parse().unwrap());
        let a = dedupe_key("firing", &first.group_key, first.firing(), false);
        let b = dedupe_key("firing", &second.group_key, second.firing(), false);
        assert_ne!(a, b);
    }

    #[test]
    fn dedupe_key_changes_with_group_and_fingerprints() {
        let first = notification(FIRING);
        let base = dedupe_key("firing", &first.group_key, first.firing(), false);

        let other_group = dedupe_key("firing", "{}:{alertname=\"Other\"}", first.firing(), false);
        assert_ne!(base, other_group);

        let mut fewer = first.clone();
        fewer.alerts.pop();
        let fewer_key = dedupe_key("firing", &fewer.group_key, fewer.firing(), false);
        assert_ne!(base, fewer_key);

        let kind = dedupe_key("resolved", &first.group_key, first.firing(), false);
        assert_ne!(base, kind);
    }

    #[test]
    fn identity_falls_back_to_labels() {
        let mut alert = notification(FIRING).alerts[0].clone();
        alert.fingerprint.clear();
        let identity = alert_identity(&alert);
        assert!(identity.starts_with("labels:"), "{identity}");
        assert_eq!(identity.len(), "labels:".len() + 16);
        alert.labels.insert("x".to_string(), "y".to_string());
        assert_ne!(alert_identity(&alert), identity);
    }

    #[test]
    fn incident_ids_are_unique_and_plain() {
        let a = new_incident_id();
        let b = new_incident_id();
        assert_ne!(a, b);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.'),
            "{a}"
        );
    }

    #[tokio::test]
    async fn firing_queues_one_capture() {
        let mut fixture = fixture(4);
        let reply = fixture
            .intake
            .receive(Bytes::from_static(FIRING.as_bytes()));

        assert_eq!(reply.status, StatusCode::ACCEPTED);
        assert_eq!(reply.body.capture, Some(CaptureDecision::Queued));
        let incident = reply.body.incident.clone().unwrap();

        let job = fixture.jobs.try_recv().unwrap();
        assert_eq!(job.incident_id, incident);
        assert_eq!(job.trigger.kind, TriggerKind::Alertmanager);
        assert_eq!(job.trigger.alerts.len(), 2);
        assert_eq!(job.body.as_deref(), Some(FIRING.as_bytes()));
        assert_eq!(fixture.metrics.capture_queue_depth.get(), 1);
    }

    #[tokio::test]
    async fn duplicate_notification_gives_one_capture() {
        let mut fixture = fixture(4);
        let first = fixture
            .intake
            .receive(Bytes::from_static(FIRING.as_bytes()));
        let mut reordered = notification(FIRING);
        reordered.alerts.reverse();
        let body = serde_json::to_vec(&reordered).unwrap();
        let second = fixture.intake.receive(Bytes::from(body));

        assert_eq!(second.status, StatusCode::OK);
        assert_eq!(second.body.capture, Some(CaptureDecision::Deduplicated));
        assert_eq!(second.body.incident, first.body.incident);
        assert!(fixture.jobs.try_recv().is_ok());
        assert!(fixture.jobs.try_recv().is_err());

        let events = journal(&fixture);
        assert_eq!(events.len(), 2);
        assert_eq!(events[1].outcome, Outcome::Deduplicated);
        assert_eq!(events[1].incident, first.body.incident);
    }

    #[tokio::test]
    async fn new_firing_alert_starts_new_capture() {
        let mut fixture = fixture(4);
        fixture
            .intake
            .receive(Bytes::from_static(FIRING.as_bytes()));
        let mut grown = notification(FIRING);
        let mut third = grown.alerts[0].clone();
        third.fingerprint = "cccc".to_string();
        grown.alerts.push(third);
        let reply = fixture
            .intake
            .receive(Bytes::from(serde_json::to_vec(&grown).unwrap()));

        assert_eq!(reply.body.capture, Some(CaptureDecision::Queued));
        assert!(fixture.jobs.try_recv().is_ok());
        assert!(fixture.jobs.try_recv().is_ok());
    }

    #[tokio::test]
    async fn resolved_starts_no_capture() {
        let mut fixture = fixture(4);
        let first = fixture
            .intake
            .receive(Bytes::from_static(FIRING.as_bytes()));
        fixture.jobs.try_recv().unwrap();
        fixture
            .intake
            .log()
            .state()
            .note_bundle(first.body.incident.as_deref().unwrap(), "bundle-1");

        let reply = fixture.intake.receive(Bytes::from(resolved_json()));

        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.body.outcome, Some("resolved"));
        assert_eq!(reply.body.capture, Some(CaptureDecision::None));
        assert_eq!(reply.body.incident, first.body.incident);
        assert!(fixture.jobs.try_recv().is_err());

        let events = journal(&fixture);
        assert_eq!(events[1].outcome, Outcome::Resolved);
        assert_eq!(events[1].bundle.as_deref(), Some("bundle-1"));
        assert_eq!(fixture.intake.log().state().incident_of("aaaa"), None);
    }

    #[tokio::test]
    async fn repeated_resolved_is_deduplicated() {
        let fixture = fixture(4);
        let first = fixture.intake.receive(Bytes::from(resolved_json()));
        let second = fixture.intake.receive(Bytes::from(resolved_json()));
        assert_eq!(first.body.outcome, Some("resolved"));
        assert_eq!(second.body.outcome, Some("deduplicated"));
        assert_eq!(second.body.incident, first.body.incident);
    }

    #[tokio::test]
    async fn empty_body_queues_manual_capture() {
        let mut fixture = fixture(4);
        let reply = fixture.intake.receive(Bytes::new());

        assert_eq!(reply.status, StatusCode::ACCEPTED);
        let job = fixture.jobs.try_recv().unwrap();
        assert_eq!(job.trigger.kind, TriggerKind::Manual);
        assert!(job.body.is_none());
        assert_eq!(journal(&fixture)[0].reason.as_deref(), Some("manual"));
        let manual = fixture
            .metrics
            .alerts_total
            .with_label_values(&["manual"])
            .get();
        assert_eq!(manual, 1);
    }

    #[tokio::test]
    async fn malformed_json_names_position() {
        let fixture = fixture(4);
        let reply = fixture
            .intake
            .receive(Bytes::from_static(b"{\n  \"alerts\": [,]\n}"));

        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
        assert_eq!(reply.body.line, Some(2));
        assert_eq!(reply.body.column, Some(14));
        let error = reply.body.error.unwrap();
        assert!(error.contains("line 2 column 14"), "{error}");

        let events = journal(&fixture);
        assert_eq!(events[0].outcome, Outcome::Rejected);
        assert_eq!(events[0].reason.as_deref(), Some("malformed_json"));
        assert_eq!(events[0].body_bytes, Some(19));
        let rejected = fixture
            .metrics
            .rejected_total
            .with_label_values(&["malformed_json"]);
        assert_eq!(rejected.get(), 1);
    }

    #[tokio::test]
    async fn full_queue_gets_retry_after() {
        let fixture = fixture(1);
        let mut other = notification(FIRING);
        other.group_key = "other".to_string();

        let first = fixture
            .intake
            .receive(Bytes::from_static(FIRING.as_bytes()));
        let second = fixture
            .intake
            .receive(Bytes::from(serde_json::to_vec(&other).unwrap()));

        assert_eq!(first.status, StatusCode::ACCEPTED);
        assert_eq!(second.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(second.retry_after_secs, Some(2));
        assert_eq!(second.body.reason, Some("queue_full"));

        // The rejected notification was not remembered, so its retry can still capture.
        let events = journal(&fixture);
        assert_eq!(events[1].reason.as_deref(), Some("queue_full"));
        let key = dedupe_key("firing", "other", other.firing(), false);
        assert_eq!(
            fixture.intake.log().state().duplicate_of(&key, Utc::now()),
            None
        );
    }

    #[tokio::test]
    async fn group_key_stays_opaque() {
        let mut fixture = fixture(4);
        fixture
            .intake
            .receive(Bytes::from_static(FIRING.as_bytes()));
        let job = fixture.jobs.try_recv().unwrap();
        let expected = notification(FIRING).group_key;
        assert_eq!(job.trigger.group_key.as_deref(), Some(expected.as_str()));
        assert_eq!(
            journal(&fixture)[0].group_key.as_deref(),
            Some(expected.as_str())
        );
        assert!(!job.incident_id.contains("etc"));
    }

    #[tokio::test]
    async fn journal_failure_gets_503() {
        let journal = Journal::open(Path::new("/dev/full")).unwrap();
        let log = IncidentLog::with_journal(journal, Duration::from_secs(1));
        let (sender, mut jobs) = mpsc::channel(4);
        let options = IntakeOptions {
            capture_on_resolved: false,
            retry_after_secs: 2,
        };
        let intake = Intake::new(
            Arc::new(log),
            sender,
            Metrics::new(),
            options,
            None,
            SlackSettings::default(),
        );

        let reply = intake.receive(Bytes::from_static(FIRING.as_bytes()));

        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(reply.body.reason, Some("journal_error"));
        assert!(jobs.try_recv().is_err());
    }

    #[tokio::test]
    async fn restart_rebuilds_dedupe() {
        let dir = tempfile::tempdir().unwrap();
        let first_incident = {
            let fixture = fixture_in(tempfile::TempDir::new_in(dir.path()).unwrap(), 4);
            let reply = fixture
                .intake
                .receive(Bytes::from_static(FIRING.as_bytes()));
            let journal = std::fs::read(&fixture.journal_path).unwrap();
            std::fs::create_dir_all(dir.path().join(".aegisir")).unwrap();
            std::fs::write(Journal::path_in(dir.path()), journal).unwrap();
            reply.body.incident.unwrap()
        };

        let mut restarted = fixture_in(dir, 4);
        let reply = restarted
            .intake
            .receive(Bytes::from_static(FIRING.as_bytes()));

        assert_eq!(reply.body.capture, Some(CaptureDecision::Deduplicated));
        assert_eq!(
            reply.body.incident.as_deref(),
            Some(first_incident.as_str())
        );
        assert!(restarted.jobs.try_recv().is_err());
    }
}
