//! The intake: turns one `POST /alert` body into a journal line, a reply and, for new firing
//! alerts, a queued capture.
//!
//! The rules, each per alert status rather than the notification's top-level `status`:
//!
//! - an empty body is a manual trigger and always queues a capture;
//! - firing alerts queue a capture unless the notification repeats one with the same
//!   `groupKey`, firing fingerprints and `startsAt` seen within the dedupe window, or every
//!   firing alert is still firing in an incident of the same `groupKey`. Either way the
//!   notification is recorded against the incident that already exists, so one alert of a
//!   group resolving starts no new capture;
//! - resolved alerts start no capture (unless `capture.on_resolved` is set) and send a Slack
//!   follow-up naming the bundle of the incident they first fired in;
//! - alerts with any other status are counted as `other` and ignored;
//! - every notification, rejected ones included, is journaled before the reply. A journal
//!   that cannot be written, a data directory that is full or unwritable, or a full queue gets
//!   503, so Alertmanager retries.
//!
//! A queued capture is also written to the pending directory before the 202, so a restart runs
//! it. Nothing here waits for a capture or for Slack: the worker takes jobs from a bounded
//! queue.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::StatusCode;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::alert::{Alert, Notification};
use crate::incidents::{CaptureDecision, Event, IncidentLog, Outcome, State};
use crate::metrics::Metrics;
use crate::pending::{PendingJob, PendingJobs};
use crate::slack::{self, NotifierHandle, SlackSettings};
use crate::space::{SpaceCheck, SpaceStatus};
use crate::store::{Trigger, TriggerAlert, TriggerKind};

/// The webhook version AegisIR reads; others are accepted with a warning.
pub const WEBHOOK_VERSION: &str = "4";

/// At most one warning per rejection reason is logged per this period.
const LOG_EVERY: Duration = Duration::from_secs(10);

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rejection {
    MalformedJson,
    /// The client stopped sending before the body was complete.
    IncompleteBody,
    TooLarge,
    Unauthorized,
    QueueFull,
    JournalError,
    WorkerStopped,
    /// The data directory has less free space than a bundle needs.
    DiskFull,
    /// The data directory is missing or read-only, or the pending job could not be written.
    DataDirUnwritable,
}

impl Rejection {
    pub const ALL: [Rejection; 9] = [
        Rejection::MalformedJson,
        Rejection::IncompleteBody,
        Rejection::TooLarge,
        Rejection::Unauthorized,
        Rejection::QueueFull,
        Rejection::JournalError,
        Rejection::WorkerStopped,
        Rejection::DiskFull,
        Rejection::DataDirUnwritable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::MalformedJson => "malformed_json",
            Rejection::IncompleteBody => "incomplete_body",
            Rejection::TooLarge => "too_large",
            Rejection::Unauthorized => "unauthorized",
            Rejection::QueueFull => "queue_full",
            Rejection::JournalError => "journal_error",
            Rejection::WorkerStopped => "worker_stopped",
            Rejection::DiskFull => "disk_full",
            Rejection::DataDirUnwritable => "data_dir_unwritable",
        }
    }

    fn status(self) -> StatusCode {
        match self {
            Rejection::MalformedJson | Rejection::IncompleteBody => StatusCode::BAD_REQUEST,
            Rejection::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Rejection::Unauthorized => StatusCode::UNAUTHORIZED,
            Rejection::QueueFull
            | Rejection::JournalError
            | Rejection::WorkerStopped
            | Rejection::DiskFull
            | Rejection::DataDirUnwritable => StatusCode::SERVICE_UNAVAILABLE,
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

/// What the intake works with besides its options.
pub struct IntakeParts {
    pub log: Arc<IncidentLog>,
    pub queue: mpsc::Sender<CaptureJob>,
    pub metrics: Metrics,
    pub pending: PendingJobs,
    pub space: Arc<SpaceCheck>,
    pub notifier: Option<NotifierHandle>,
    pub slack: SlackSettings,
}

/// Receives notifications; shared by every request.
pub struct Intake {
    log: Arc<IncidentLog>,
    queue: mpsc::Sender<CaptureJob>,
    metrics: Metrics,
    options: IntakeOptions,
    pending: PendingJobs,
    space: Arc<SpaceCheck>,
    notifier: Option<NotifierHandle>,
    slack: SlackSettings,
    warnings: RateLimitedLog,
}

/// Why a body is not a notification, with the position serde_json reported.
struct ParseFailure {
    message: String,
    line: usize,
    column: usize,
}

impl Intake {
    pub fn new(parts: IntakeParts, options: IntakeOptions) -> Intake {
        init_label_values(&parts.metrics);
        Intake {
            log: parts.log,
            queue: parts.queue,
            metrics: parts.metrics,
            options,
            pending: parts.pending,
            space: parts.space,
            notifier: parts.notifier,
            slack: parts.slack,
            warnings: RateLimitedLog::default(),
        }
    }

    /// Handles the body of an authorized request that fit the size limit.
    pub fn receive(&self, body: Bytes) -> Reply {
        let info = BodyInfo::of(&body);
        if body.iter().all(u8::is_ascii_whitespace) {
            return self.receive_manual(info);
        }

        let notification = match parse_notification(&body) {
            Ok(notification) => notification,
            Err(failure) => return self.reject_malformed(failure, info),
        };
        self.count_alerts(&notification);
        self.log_oddities(&notification);

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
        self.reject_notification(reason, error, info, None)
    }

    /// Journals and counts a rejected request, with the group and fingerprints of its
    /// notification when the body parsed.
    fn reject_notification(
        &self,
        reason: Rejection,
        error: String,
        info: BodyInfo,
        notification: Option<&Notification>,
    ) -> Reply {
        let mut event = Event {
            reason: Some(reason.as_str().to_string()),
            body_sha256: info.sha256,
            body_bytes: info.bytes,
            ..Event::new(Outcome::Rejected)
        };
        if let Some(notification) = notification {
            event.group_key = Some(notification.group_key.clone());
            event.fingerprints = all_fingerprints(notification);
            event.firing = sorted_fingerprints(notification.firing());
        }
        let journaled = self.journal(&event);
        if let (Err(reply), false) = (&journaled, is_disk_problem(reason)) {
            return (**reply).clone();
        }

        self.count_rejection(reason);
        let group_key = notification.map(|notification| notification.group_key.as_str());
        self.log_rejection(reason, &error, group_key);
        let mut reply = Reply::rejected(reason, error);
        if reply.status == StatusCode::SERVICE_UNAVAILABLE {
            reply.retry_after_secs = Some(self.options.retry_after_secs);
        }
        reply
    }

    fn receive_manual(&self, info: BodyInfo) -> Reply {
        self.metrics
            .alerts_total
            .with_label_values(&["manual"])
            .inc();
        let incident = new_incident_id();
        let permit = match self.reserve_slot(&info, None) {
            Ok(permit) => permit,
            Err(reply) => return *reply,
        };
        let job = CaptureJob {
            incident_id: incident.clone(),
            trigger: Trigger {
                kind: TriggerKind::Manual,
                incident_id: incident.clone(),
                group_key: None,
                receiver: None,
                alerts: Vec::new(),
            },
            notification: None,
            body: None,
            queued_at: Instant::now(),
        };
        if let Err(reply) = self.persist(&job, &info, None) {
            return *reply;
        }

        let event = Event {
            incident: Some(incident.clone()),
            reason: Some("manual".to_string()),
            capture: Some(CaptureDecision::Queued),
            body_sha256: info.sha256,
            body_bytes: info.bytes,
            ..Event::new(Outcome::Accepted)
        };
        if let Err(reply) = self.journal_queued(&event, &incident) {
            return *reply;
        }
        self.enqueue(permit, job);
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
        if let Some(incident) = state.covering_incident(&notification.group_key, &firing) {
            return self.record_covered(state, notification, &incident, &key, firing, info);
        }
        let permit = match self.reserve_slot(&info, Some(&notification)) {
            Ok(permit) => permit,
            Err(reply) => return *reply,
        };

        let incident = new_incident_id();
        let job = CaptureJob {
            incident_id: incident.clone(),
            trigger: trigger_of(&notification, &incident),
            notification: Some(notification.clone()),
            body: Some(body),
            queued_at: Instant::now(),
        };
        if let Err(reply) = self.persist(&job, &info, Some(&notification)) {
            return *reply;
        }
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
            warnings: warnings_of(&notification),
            ..Event::new(Outcome::Accepted)
        };
        if let Err(reply) = self.journal_queued(&event, &incident) {
            return *reply;
        }
        state.remember(&key, &incident, now);
        state.note_firing(&firing, &incident, &notification.group_key);
        let follow_up = self.resolve_in(&mut state, &notification);
        drop(state);

        self.enqueue(permit, job);
        self.send_follow_up(&notification, follow_up);
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
            warnings: warnings_of(notification),
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

    /// Records a notification whose firing alerts all still fire in an existing incident of
    /// its group; alerts of it that resolved get their follow-up.
    fn record_covered(
        &self,
        mut state: std::sync::MutexGuard<'_, State>,
        notification: Arc<Notification>,
        incident: &str,
        key: &str,
        firing: Vec<String>,
        info: BodyInfo,
    ) -> Reply {
        let event = Event {
            incident: Some(incident.to_string()),
            reason: Some("firing alerts already captured".to_string()),
            capture: Some(CaptureDecision::Deduplicated),
            group_key: Some(notification.group_key.clone()),
            fingerprints: all_fingerprints(&notification),
            firing,
            dedupe_key: Some(key.to_string()),
            body_sha256: info.sha256,
            body_bytes: info.bytes,
            warnings: warnings_of(&notification),
            ..Event::new(Outcome::Deduplicated)
        };
        if let Err(reply) = self.journal(&event) {
            return *reply;
        }
        state.remember(key, incident, event.time);
        let follow_up = self.resolve_in(&mut state, &notification);
        drop(state);

        self.send_follow_up(&notification, follow_up);
        self.count_outcome(Outcome::Deduplicated);
        tracing::debug!(incident = %incident, "firing alerts already captured");
        Reply::accepted(
            Outcome::Deduplicated,
            incident,
            CaptureDecision::Deduplicated,
        )
    }

    /// Forgets the resolved alerts of a notification that also has firing ones. Returns
    /// `Some(bundle)` when any of them was still firing, so a follow-up is due; the bundle is
    /// that of the incident the first of them fired in, if it has one.
    fn resolve_in(&self, state: &mut State, notification: &Notification) -> Option<Option<String>> {
        let resolved: Vec<String> = notification.resolved().map(alert_identity).collect();
        let original = state.note_resolved(&resolved)?;
        Some(state.bundle_of(&original).map(str::to_string))
    }

    fn send_follow_up(&self, notification: &Arc<Notification>, follow_up: Option<Option<String>>) {
        if let Some(bundle) = follow_up {
            self.send_resolved_follow_up(notification.clone(), bundle);
        }
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
            match self.reserve_slot(&info, Some(&notification)) {
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
        let job = permit.is_some().then(|| {
            let after = format!("{incident}-after");
            CaptureJob {
                trigger: trigger_of(&notification, &after),
                incident_id: after,
                notification: Some(notification.clone()),
                body: Some(body),
                queued_at: Instant::now(),
            }
        });
        if let Some(job) = &job {
            if let Err(reply) = self.persist(job, &info, Some(&notification)) {
                return *reply;
            }
        }
        let capture = match job {
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
            warnings: warnings_of(&notification),
            ..Event::new(Outcome::Resolved)
        };
        let journaled = match &job {
            Some(job) => self.journal_queued(&event, &job.incident_id),
            None => self.journal(&event),
        };
        if let Err(reply) = journaled {
            return *reply;
        }
        state.remember(&key, &incident, now);
        state.note_resolved(&resolved);
        drop(state);

        if let (Some(permit), Some(job)) = (permit, job) {
            self.enqueue(permit, job);
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
        let reason = match unknown_statuses(notification) {
            statuses if statuses.is_empty() => "no firing or resolved alerts".to_string(),
            statuses => format!("unknown alert status {}", statuses.join(", ")),
        };
        let event = Event {
            incident: Some(incident.clone()),
            reason: Some(reason),
            capture: Some(CaptureDecision::None),
            group_key: Some(notification.group_key.clone()),
            fingerprints: all_fingerprints(notification),
            body_sha256: info.sha256,
            body_bytes: info.bytes,
            warnings: warnings_of(notification),
            ..Event::new(Outcome::Ignored)
        };
        if let Err(reply) = self.journal(&event) {
            return *reply;
        }
        self.count_outcome(Outcome::Ignored);
        Reply::accepted(Outcome::Ignored, &incident, CaptureDecision::None)
    }

    fn reject_malformed(&self, failure: ParseFailure, info: BodyInfo) -> Reply {
        let message = format!("invalid Alertmanager webhook JSON: {}", failure.message);
        let mut reply = self.reject(Rejection::MalformedJson, message, info);
        if reply.body.reason == Some(Rejection::MalformedJson.as_str()) {
            reply.body.line = Some(failure.line);
            reply.body.column = Some(failure.column);
        }
        reply
    }

    /// Checks the data directory and reserves a queue slot, or journals the rejection and
    /// returns the 503.
    fn reserve_slot(
        &self,
        info: &BodyInfo,
        notification: Option<&Notification>,
    ) -> Result<mpsc::Permit<'_, CaptureJob>, Box<Reply>> {
        let (reason, message) = match self.space.status() {
            SpaceStatus::Ok { .. } => match self.queue.try_reserve() {
                Ok(permit) => return Ok(permit),
                Err(mpsc::error::TrySendError::Full(())) => (
                    Rejection::QueueFull,
                    "capture queue is full; retry later".to_string(),
                ),
                Err(mpsc::error::TrySendError::Closed(())) => (
                    Rejection::WorkerStopped,
                    "capture worker is not running".to_string(),
                ),
            },
            SpaceStatus::Full {
                free_bytes,
                required_bytes,
            } => (
                Rejection::DiskFull,
                format!(
                    "data directory has {free_bytes} bytes free, a capture needs \
                     {required_bytes} (intake.min_free_bytes); free space and retry"
                ),
            ),
            SpaceStatus::Unwritable => (
                Rejection::DataDirUnwritable,
                format!(
                    "data directory {} is not writable; retry later",
                    self.space.dir().display()
                ),
            ),
        };
        let reply = self.reject_notification(reason, message, info.clone(), notification);
        Err(Box::new(reply))
    }

    /// Writes the job to the pending directory, so a restart runs it if this run does not.
    fn persist(
        &self,
        job: &CaptureJob,
        info: &BodyInfo,
        notification: Option<&Notification>,
    ) -> Result<(), Box<Reply>> {
        let Err(error) = self.pending.save(&PendingJob::of(job)) else {
            return Ok(());
        };
        tracing::error!(incident = %job.incident_id, %error, "failed to write a pending capture");
        let message = "AegisIR could not store the capture job; retry later".to_string();
        let reason = Rejection::DataDirUnwritable;
        let reply = self.reject_notification(reason, message, info.clone(), notification);
        Err(Box::new(reply))
    }

    /// Journals the event of a queued capture; when that fails the pending job is removed, so
    /// the retry Alertmanager sends is the only capture.
    fn journal_queued(&self, event: &Event, job_incident: &str) -> Result<(), Box<Reply>> {
        let journaled = self.journal(event);
        if journaled.is_err() {
            if let Err(error) = self.pending.remove(job_incident) {
                tracing::error!(incident = %job_incident, %error, "failed to remove a pending capture");
            }
        }
        journaled
    }

    fn enqueue(&self, permit: mpsc::Permit<'_, CaptureJob>, job: CaptureJob) {
        permit.send(job);
        self.metrics.capture_queue_depth.inc();
    }

    fn journal(&self, event: &Event) -> Result<(), Box<Reply>> {
        if let Err(error) = self.log.append(event) {
            if let Some(suppressed) = self.warnings.admit(Rejection::JournalError.as_str()) {
                tracing::error!(%error, outcome = event.outcome.as_str(), suppressed, "failed to journal a notification");
            }
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
        let other = notification.alerts.len() as u64 - firing - resolved;
        for (status, count) in [("firing", firing), ("resolved", resolved), ("other", other)] {
            self.metrics
                .alerts_total
                .with_label_values(&[status])
                .inc_by(count);
        }
    }

    /// Logs, rate-limited, what `warnings_of` journals.
    fn log_oddities(&self, notification: &Notification) {
        let statuses = unknown_statuses(notification);
        if !statuses.is_empty() {
            if let Some(suppressed) = self.warnings.admit("unknown_status") {
                let statuses = statuses.join(", ");
                tracing::warn!(group_key = %notification.group_key, %statuses, suppressed, "ignoring alerts with an unknown status");
            }
        }
        if notification.version != WEBHOOK_VERSION {
            if let Some(suppressed) = self.warnings.admit("version") {
                let version = bounded(&notification.version);
                tracing::warn!(%version, suppressed, "webhook version is not 4; reading it as version 4");
            }
        }
    }

    /// Logs a rejection. The group key is a `&str` field, which the log formatter quotes and
    /// escapes, so a key with line breaks cannot forge a log line.
    fn log_rejection(&self, reason: Rejection, error: &str, group_key: Option<&str>) {
        let reason_text = reason.as_str();
        if reason.status() != StatusCode::SERVICE_UNAVAILABLE {
            tracing::debug!(reason = reason_text, %error, group_key, "request rejected");
            return;
        }
        if let Some(suppressed) = self.warnings.admit(reason_text) {
            tracing::warn!(reason = reason_text, %error, group_key, suppressed, "request rejected");
        }
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

    pub fn space(&self) -> &SpaceCheck {
        &self.space
    }
}

/// Allows one log line per key per [`LOG_EVERY`] and counts the ones it suppressed.
#[derive(Debug, Default)]
pub struct RateLimitedLog {
    keys: Mutex<HashMap<&'static str, (Instant, u64)>>,
}

impl RateLimitedLog {
    /// Returns `Some(suppressed since the last line)` when a line for `key` may be logged now.
    pub fn admit(&self, key: &'static str) -> Option<u64> {
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        match keys.get_mut(key) {
            Some((last, suppressed)) if now.duration_since(*last) < LOG_EVERY => {
                *suppressed += 1;
                None
            }
            Some((last, suppressed)) => {
                *last = now;
                Some(std::mem::take(suppressed))
            }
            None => {
                keys.insert(key, (now, 0));
                Some(0)
            }
        }
    }
}

/// Makes every known label value of the intake's and the worker's counters exist at 0.
pub fn init_label_values(metrics: &Metrics) {
    for status in ["firing", "resolved", "manual", "other"] {
        metrics.alerts_total.with_label_values(&[status]);
    }
    for reason in Rejection::ALL {
        metrics.rejected_total.with_label_values(&[reason.as_str()]);
    }
    let outcomes = [
        Outcome::Accepted,
        Outcome::Deduplicated,
        Outcome::Resolved,
        Outcome::Ignored,
        Outcome::Rejected,
    ];
    for outcome in outcomes {
        metrics
            .notifications_total
            .with_label_values(&[outcome.as_str()]);
    }
    for result in ["ok", "error"] {
        metrics.captures_total.with_label_values(&[result]);
    }
    for result in ["ok", "rate_limited", "rejected", "error", "skipped"] {
        metrics
            .slack_notifications_total
            .with_label_values(&[result]);
    }
}

fn is_disk_problem(reason: Rejection) -> bool {
    matches!(reason, Rejection::DiskFull | Rejection::DataDirUnwritable)
}

/// Parses a webhook body, which must be a JSON object. Errors name the field path, such as
/// `alerts[0].startsAt`.
fn parse_notification(body: &[u8]) -> Result<Notification, ParseFailure> {
    let start = body
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(0);
    if body.get(start) != Some(&b'{') {
        let (line, column) = position_of(body, start);
        return Err(ParseFailure {
            message: format!("expected a JSON object at line {line} column {column}"),
            line,
            column,
        });
    }

    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let parsed: Result<Notification, _> = serde_path_to_error::deserialize(&mut deserializer);
    let notification = match parsed {
        Ok(notification) => notification,
        Err(error) => {
            let path = error.path().to_string();
            let inner = error.into_inner();
            let message = match path.as_str() {
                "" | "." => inner.to_string(),
                _ => format!("{path}: {inner}"),
            };
            return Err(ParseFailure {
                message,
                line: inner.line(),
                column: inner.column(),
            });
        }
    };
    deserializer.end().map_err(|error| ParseFailure {
        message: error.to_string(),
        line: error.line(),
        column: error.column(),
    })?;
    Ok(notification)
}

/// Returns the 1-based line and column of byte `index`, as serde_json counts them.
fn position_of(body: &[u8], index: usize) -> (usize, usize) {
    let before = &body[..index.min(body.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let column = before.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
    (line, column)
}

/// Returns the distinct alert statuses other than `firing` and `resolved`, quoted and cut to
/// 32 characters each.
fn unknown_statuses(notification: &Notification) -> Vec<String> {
    let mut statuses: Vec<String> = notification
        .alerts
        .iter()
        .filter(|alert| !alert.is_firing() && !alert.is_resolved())
        .map(|alert| format!("{:?}", bounded(&alert.status)))
        .collect();
    statuses.sort();
    statuses.dedup();
    statuses
}

/// Returns what the journal records as oddities of an accepted notification.
fn warnings_of(notification: &Notification) -> Vec<String> {
    let mut warnings = Vec::new();
    if notification.version != WEBHOOK_VERSION {
        warnings.push(format!(
            "webhook version {:?} is not 4; read as version 4",
            bounded(&notification.version)
        ));
    }
    let statuses = unknown_statuses(notification);
    if !statuses.is_empty() {
        warnings.push(format!(
            "ignored alerts with unknown status {}",
            statuses.join(", ")
        ));
    }
    warnings
}

/// Cuts a value from a request to 32 characters for a journal line or a log.
fn bounded(text: &str) -> &str {
    match text.char_indices().nth(32) {
        Some((index, _)) => &text[..index],
        None => text,
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
        // An alert without `alertname` gets an empty name; only text renders a placeholder.
        name: alert.label("alertname").unwrap_or_default().to_string(),
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
        fixture_with(dir, capacity, 1)
    }

    fn fixture_with(dir: tempfile::TempDir, capacity: usize, min_free_bytes: u64) -> Fixture {
        let (log, _) = IncidentLog::open(dir.path(), Duration::from_secs(300)).unwrap();
        let (sender, jobs) = mpsc::channel(capacity);
        let metrics = Metrics::new();
        let intake = Intake::new(
            parts(Arc::new(log), sender, &metrics, dir.path(), min_free_bytes),
            options(),
        );
        Fixture {
            journal_path: Journal::path_in(dir.path()),
            _dir: dir,
            intake,
            jobs,
            metrics,
        }
    }

    fn parts(
        log: Arc<IncidentLog>,
        queue: mpsc::Sender<CaptureJob>,
        metrics: &Metrics,
        data_dir: &Path,
        min_free_bytes: u64,
    ) -> IntakeParts {
        IntakeParts {
            log,
            queue,
            metrics: metrics.clone(),
            pending: PendingJobs::in_data_dir(data_dir),
            space: Arc::new(SpaceCheck::new(data_dir, min_free_bytes)),
            notifier: None,
            slack: SlackSettings::default(),
        }
    }

    fn options() -> IntakeOptions {
        IntakeOptions {
            capture_on_resolved: false,
            retry_after_secs: 2,
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
        assert_eq!(events[1].group_key.as_deref(), Some("other"));
        assert_eq!(
            events[1].fingerprints,
            vec!["aaaa".to_string(), "bbbb".to_string()]
        );
        assert_eq!(
            events[1].firing,
            vec!["aaaa".to_string(), "bbbb".to_string()]
        );
        let key = dedupe_key("firing", "other", other.firing(), false);
        assert_eq!(
            fixture.intake.log().state().duplicate_of(&key, Utc::now()),
            None
        );
    }

    /// Collects what a tracing subscriber writes.
    #[derive(Clone, Default)]
    struct LogBuffer(Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for LogBuffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
        type Writer = LogBuffer;

        fn make_writer(&'a self) -> LogBuffer {
            self.clone()
        }
    }

    #[tokio::test]
    async fn queue_full_log_names_group_key() {
        let fixture = fixture(1);
        let mut other = notification(FIRING);
        other.group_key = "{}:{alertname=\"DiskFull\"}\nforged line".to_string();
        let logs = LogBuffer::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(logs.clone())
            .with_ansi(false)
            .finish();

        tracing::subscriber::with_default(subscriber, || {
            fixture
                .intake
                .receive(Bytes::from_static(FIRING.as_bytes()));
            let reply = fixture
                .intake
                .receive(Bytes::from(serde_json::to_vec(&other).unwrap()));
            assert_eq!(reply.body.reason, Some("queue_full"));
        });

        let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
        let line = text
            .lines()
            .find(|line| line.contains("queue_full"))
            .unwrap_or_else(|| panic!("no queue_full line in {text:?}"));
        let expected = r#"group_key="{}:{alertname=\"DiskFull\"}\nforged line""#;
        assert!(line.contains(expected), "{line}");
        assert!(
            !text.lines().any(|line| line.starts_with("forged line")),
            "{text}"
        );
    }

    #[tokio::test]
    async fn unwritable_data_dir_reply_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let (log, _) = IncidentLog::open(dir.path(), Duration::from_secs(300)).unwrap();
        let (sender, _jobs) = mpsc::channel(1);
        let missing = dir.path().join("gone");
        let metrics = Metrics::new();
        let parts = parts(Arc::new(log), sender, &metrics, &missing, 1);
        let intake = Intake::new(parts, options());

        let reply = intake.receive(Bytes::from_static(FIRING.as_bytes()));

        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(reply.body.reason, Some("data_dir_unwritable"));
        let expected = format!(
            "data directory {} is not writable; retry later",
            missing.display()
        );
        assert_eq!(reply.body.error.as_deref(), Some(expected.as_str()));
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
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(Path::new("/dev/full")).unwrap();
        let log = IncidentLog::with_journal(journal, Duration::from_secs(1));
        let (sender, mut jobs) = mpsc::channel(4);
        let metrics = Metrics::new();
        let parts = parts(Arc::new(log), sender, &metrics, dir.path(), 1);
        let intake = Intake::new(parts, options());

        let reply = intake.receive(Bytes::from_static(FIRING.as_bytes()));

        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(reply.body.reason, Some("journal_error"));
        assert!(jobs.try_recv().is_err());
        let pending = PendingJobs::in_data_dir(dir.path()).load_all().unwrap().0;
        assert!(pending.is_empty(), "{pending:?}");
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

    /// The group of `FIRING` with alert `bbbb` resolved and `aaaa` still firing.
    fn one_resolved_json() -> String {
        let mut group = notification(FIRING);
        group.alerts[1].status = "resolved".to_string();
        group.alerts[1].ends_at_raw = Some("2026-12-03T22:00:00Z".parse().unwrap());
        serde_json::to_string(&group).unwrap()
    }

    #[tokio::test]
    async fn one_alert_resolving_starts_no_capture() {
        let mut fixture = fixture(4);
        let first = fixture
            .intake
            .receive(Bytes::from_static(FIRING.as_bytes()));
        fixture.jobs.try_recv().unwrap();

        let reply = fixture.intake.receive(Bytes::from(one_resolved_json()));

        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.body.capture, Some(CaptureDecision::Deduplicated));
        assert_eq!(reply.body.incident, first.body.incident);
        assert!(fixture.jobs.try_recv().is_err());
        let state = fixture.intake.log().state();
        assert_eq!(state.incident_of("bbbb"), None);
        assert_eq!(state.incident_of("aaaa"), first.body.incident.as_deref());
    }

    #[tokio::test]
    async fn resolution_names_incident_alert_first_fired_in() {
        let mut fixture = fixture(4);
        let first = fixture
            .intake
            .receive(Bytes::from_static(FIRING.as_bytes()));
        let original = first.body.incident.clone().unwrap();
        let mut grown = notification(FIRING);
        let mut third = grown.alerts[0].clone();
        third.fingerprint = "cccc".to_string();
        grown.alerts.push(third);
        let second = fixture
            .intake
            .receive(Bytes::from(serde_json::to_vec(&grown).unwrap()));
        assert_eq!(second.body.capture, Some(CaptureDecision::Queued));
        assert_eq!(fixture.jobs.try_recv().unwrap().incident_id, original);
        fixture.jobs.try_recv().unwrap();
        fixture
            .intake
            .log()
            .state()
            .note_bundle(&original, "bundle-1");

        let reply = fixture.intake.receive(Bytes::from(resolved_json()));

        assert_eq!(reply.body.incident.as_deref(), Some(original.as_str()));
        let events = journal(&fixture);
        assert_eq!(events.last().unwrap().bundle.as_deref(), Some("bundle-1"));
        let state = fixture.intake.log().state();
        assert_ne!(state.incident_of("cccc"), Some(original.as_str()));
    }

    #[tokio::test]
    async fn top_level_array_is_rejected() {
        let fixture = fixture(4);
        let body = "  [\"4\", \"key\"]";
        let reply = fixture.intake.receive(Bytes::from(body));

        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
        assert_eq!(reply.body.reason, Some("malformed_json"));
        let error = reply.body.error.unwrap();
        assert!(error.contains("expected a JSON object"), "{error}");
        assert_eq!(reply.body.line, Some(1));
        assert_eq!(reply.body.column, Some(3));
    }

    #[tokio::test]
    async fn bad_starts_at_names_field_path() {
        let fixture = fixture(4);
        let body = FIRING.replacen("2026-12-03T21:44:05Z", "yesterday", 1);
        let reply = fixture.intake.receive(Bytes::from(body));

        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
        let error = reply.body.error.unwrap();
        assert!(error.contains("alerts[1].startsAt"), "{error}");
        assert_eq!(reply.body.line, Some(10));
    }

    #[tokio::test]
    async fn trailing_characters_are_rejected() {
        let fixture = fixture(4);
        let reply = fixture.intake.receive(Bytes::from(format!("{FIRING} x")));
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn other_version_is_accepted_with_warning() {
        let fixture = fixture(4);
        let body = FIRING.replace("\"version\": \"4\"", "\"version\": \"5\"");
        let reply = fixture.intake.receive(Bytes::from(body));

        assert_eq!(reply.status, StatusCode::ACCEPTED);
        let events = journal(&fixture);
        let expected = vec!["webhook version \"5\" is not 4; read as version 4".to_string()];
        assert_eq!(events[0].warnings, expected);
    }

    #[tokio::test]
    async fn unknown_status_is_counted_and_ignored() {
        let mut fixture = fixture(4);
        let body = FIRING.replace("\"status\": \"firing\"", "\"status\": \"FIRING\"");
        let reply = fixture.intake.receive(Bytes::from(body));

        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.body.outcome, Some("ignored"));
        assert!(fixture.jobs.try_recv().is_err());
        let events = journal(&fixture);
        assert_eq!(
            events[0].reason.as_deref(),
            Some("unknown alert status \"FIRING\"")
        );
        let other = fixture.metrics.alerts_total.with_label_values(&["other"]);
        assert_eq!(other.get(), 2);
    }

    #[tokio::test]
    async fn alert_without_name_keeps_empty_name() {
        let mut fixture = fixture(4);
        let mut group = notification(FIRING);
        group.alerts[0].labels.remove("alertname");
        fixture
            .intake
            .receive(Bytes::from(serde_json::to_vec(&group).unwrap()));

        let job = fixture.jobs.try_recv().unwrap();
        assert_eq!(job.trigger.alerts[0].name, "");
        assert_eq!(group.alerts[0].name(), "(no alertname)");
    }

    #[tokio::test]
    async fn queued_capture_is_pending_until_finished() {
        let mut fixture = fixture(4);
        let reply = fixture
            .intake
            .receive(Bytes::from_static(FIRING.as_bytes()));
        let incident = reply.body.incident.unwrap();
        let pending = PendingJobs::in_data_dir(fixture._dir.path());

        let (jobs, _) = pending.load_all().unwrap();
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].incident_id, incident);
        let job = jobs[0].clone().into_job();
        assert_eq!(job.body.as_deref(), Some(FIRING.as_bytes()));
        assert_eq!(job.trigger.alerts.len(), 2);
        assert!(fixture.jobs.try_recv().is_ok());
    }

    #[tokio::test]
    async fn full_disk_rejects_with_notification_context() {
        let mut fixture = fixture_with(tempfile::tempdir().unwrap(), 4, u64::MAX);
        let reply = fixture
            .intake
            .receive(Bytes::from_static(FIRING.as_bytes()));

        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(reply.body.reason, Some("disk_full"));
        assert_eq!(reply.retry_after_secs, Some(2));
        assert!(fixture.jobs.try_recv().is_err());
        let events = journal(&fixture);
        assert_eq!(
            events[0].fingerprints,
            vec!["aaaa".to_string(), "bbbb".to_string()]
        );
    }

    #[test]
    fn rate_limited_log_counts_suppressed() {
        let log = RateLimitedLog::default();
        assert_eq!(log.admit("queue_full"), Some(0));
        assert_eq!(log.admit("queue_full"), None);
        assert_eq!(log.admit("queue_full"), None);
        assert_eq!(log.admit("disk_full"), Some(0));
        let mut keys = log.keys.lock().unwrap();
        keys.get_mut("queue_full").unwrap().0 -= LOG_EVERY;
        drop(keys);
        assert_eq!(log.admit("queue_full"), Some(2));
    }
}
