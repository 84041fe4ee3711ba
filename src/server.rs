//! The HTTP interface: routes, authentication and the mapping of intake replies to responses.
//!
//! | Route | Auth | Purpose |
//! | --- | --- | --- |
//! | `POST /alert` | yes | Alertmanager webhook v4; an empty body is a manual trigger |
//! | `GET /logs`, `GET /logs/{id}`, `GET /logs/{id}/{file}` | yes | bundles, one bundle's files, one file |
//! | `GET /metrics` | no | Prometheus text format |
//! | `GET /healthz`, `GET /readyz` | no | liveness, and readiness (data directory writable with room for a bundle, worker running, fewer than 3 captures failed in a row) |
//!
//! Auth applies only when a bearer token or basic credentials are configured. Bundle ids and
//! file names from the path go through [`BundleStore::file_path`], which returns `None` for
//! anything that would leave the bundle; those requests get 404.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aegisir_platform::{Collector, PlatformError};
use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER, X_CONTENT_TYPE_OPTIONS};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tower_http::trace::TraceLayer;

use crate::auth::AuthSettings;
use crate::config::Settings;
use crate::history::{History, Recorder};
use crate::incidents::{Event, Outcome};
use crate::incidents::{IncidentLog, JournalError, RebuildStats};
use crate::intake::{BodyInfo, CaptureJob, Intake, IntakeOptions, IntakeParts, Rejection, Reply};
use crate::metrics::Metrics;
use crate::pending::PendingJobs;
use crate::slack::{Notifier, SlackError};
use crate::space::{SpaceCheck, SpaceStatus};
use crate::store::{BundleStore, BundleSummary, FileEntry, StoreError, Trigger};
use crate::worker::{Pipeline, Worker, WorkerStatus, MAX_CONSECUTIVE_FAILURES};

/// The state every request handler shares.
#[derive(Clone)]
pub struct AppState {
    pub intake: Arc<Intake>,
    pub store: BundleStore,
    pub metrics: Metrics,
    pub auth: Arc<AuthSettings>,
    pub body_limit_bytes: usize,
    pub worker: Arc<WorkerStatus>,
    /// The last readiness `/readyz` reported, so only changes are logged.
    pub readiness: Arc<Readiness>,
}

/// The readiness last reported: unknown, ready or not ready.
#[derive(Debug, Default)]
pub struct Readiness(AtomicU8);

impl Readiness {
    const READY: u8 = 1;
    const NOT_READY: u8 = 2;

    /// Stores the new readiness and returns whether it differs from the last one.
    fn changed_to(&self, ready: bool) -> bool {
        let value = if ready { Self::READY } else { Self::NOT_READY };
        self.0.swap(value, Ordering::Relaxed) != value
    }
}

/// Builds the router with every route.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/alert", post(post_alert))
        .route("/metrics", get(get_metrics))
        .route("/healthz", get(get_healthz))
        .route("/readyz", get(get_readyz))
        .route("/logs", get(list_bundles))
        .route("/logs/{id}", get(list_bundle_files))
        .route("/logs/{id}/{file}", get(download_file))
        // The intake logs each rejection itself, rate-limited, so the 503s it sends on
        // purpose are not logged again as failures.
        .layer(TraceLayer::new_for_http().on_failure(()))
        .with_state(state)
}

async fn post_alert(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let declared = declared_length(&headers);
    if !state.auth.check(&headers) {
        let message = "missing or invalid credentials".to_string();
        let reply = state.intake.reject(
            Rejection::Unauthorized,
            message,
            BodyInfo::declared(declared),
        );
        return unauthorized(&state.auth, reply);
    }

    // NOTE: a Content-Length hyper cannot parse (not a number, above u64::MAX, or two
    // different values) gets 400 from hyper before any handler or middleware runs, so that
    // request is neither journaled nor counted.
    if declared.is_some_and(|length| length > state.body_limit_bytes as u64) {
        return reject_too_large(&state, BodyInfo::declared(declared));
    }
    let body = match read_body(body, state.body_limit_bytes).await {
        Ok(body) => body,
        Err(BodyError::TooLarge) => return reject_too_large(&state, BodyInfo::declared(declared)),
        Err(BodyError::Incomplete(error)) => {
            let reply = state.intake.reject(
                Rejection::IncompleteBody,
                format!("failed to read the request body: {error}"),
                BodyInfo::declared(declared),
            );
            return reply_response(reply);
        }
    };

    reply_response(state.intake.receive(body))
}

fn reject_too_large(state: &AppState, info: BodyInfo) -> Response {
    let message = format!(
        "request body exceeds the limit of {} bytes (intake.body_limit_bytes)",
        state.body_limit_bytes
    );
    reply_response(state.intake.reject(Rejection::TooLarge, message, info))
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok())
}

enum BodyError {
    TooLarge,
    Incomplete(String),
}

async fn read_body(body: Body, limit: usize) -> Result<Bytes, BodyError> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => {
            Err(BodyError::TooLarge)
        }
        Err(error) => Err(BodyError::Incomplete(error.to_string())),
    }
}

fn reply_response(reply: Reply) -> Response {
    let mut response = (reply.status, Json(reply.body)).into_response();
    if let Some(secs) = reply.retry_after_secs {
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

fn unauthorized(auth: &AuthSettings, reply: Reply) -> Response {
    let mut response = reply_response(reply);
    if response.status() == StatusCode::UNAUTHORIZED {
        auth.add_challenges(response.headers_mut());
    }
    response
}

/// Builds the 401 reply of the read routes, which are not journaled.
fn unauthorized_read(state: &AppState) -> Response {
    state
        .metrics
        .rejected_total
        .with_label_values(&[Rejection::Unauthorized.as_str()])
        .inc();
    let body = json!({"status": "rejected", "reason": "unauthorized", "error": "missing or invalid credentials"});
    let mut response = (StatusCode::UNAUTHORIZED, Json(body)).into_response();
    state.auth.add_challenges(response.headers_mut());
    response
}

async fn get_metrics(State(state): State<AppState>) -> Response {
    let content_type = HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8");
    ([(CONTENT_TYPE, content_type)], state.metrics.render()).into_response()
}

async fn get_healthz() -> Response {
    Json(json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")})).into_response()
}

async fn get_readyz(State(state): State<AppState>) -> Response {
    let intake = state.intake.clone();
    let space = tokio::task::spawn_blocking(move || intake.space().status())
        .await
        .ok();
    let writable = space.is_some_and(|space| !matches!(space, SpaceStatus::Unwritable));
    let room = space.is_some_and(SpaceStatus::is_ok);
    let worker_running = state.worker.is_running();
    let capture_failing = state.worker.failing_reason();
    let ready = room && worker_running && capture_failing.is_none();
    if state.readiness.changed_to(ready) {
        log_readiness(ready, space, worker_running, capture_failing.as_deref());
    }

    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "ready": ready,
        "data_dir_writable": writable,
        "data_dir_space": space,
        "worker_running": worker_running,
        "consecutive_capture_failures": state.worker.consecutive_failures(),
        "capture_failing": capture_failing,
    });
    (status, Json(body)).into_response()
}

fn log_readiness(
    ready: bool,
    space: Option<SpaceStatus>,
    worker_running: bool,
    capture_failing: Option<&str>,
) {
    if ready {
        tracing::info!("ready");
        return;
    }
    match space {
        Some(SpaceStatus::Ok { .. }) => {}
        Some(SpaceStatus::Full {
            free_bytes,
            required_bytes,
        }) => tracing::warn!(
            free_bytes,
            required_bytes,
            "not ready: the data directory has too little free space for a bundle"
        ),
        Some(SpaceStatus::Unwritable) => {
            tracing::warn!("not ready: the data directory is not writable")
        }
        None => tracing::warn!("not ready: the data directory check failed"),
    }
    if !worker_running {
        tracing::warn!("not ready: the capture worker is not running");
    }
    if let Some(error) = capture_failing {
        tracing::warn!(
            %error,
            "not ready: the last {MAX_CONSECUTIVE_FAILURES} or more captures failed"
        );
    }
}

/// One bundle in the `GET /logs` listing.
#[derive(Debug, Serialize)]
struct BundleListing {
    id: String,
    captured_at: Option<DateTime<Utc>>,
    trigger: Option<Trigger>,
    digest: String,
    bytes: u64,
    manifest_error: Option<String>,
}

impl From<BundleSummary> for BundleListing {
    fn from(summary: BundleSummary) -> Self {
        BundleListing {
            id: summary.id,
            captured_at: summary.captured_at,
            trigger: summary.trigger,
            digest: summary.digest,
            bytes: summary.bytes,
            manifest_error: summary.manifest_error,
        }
    }
}

/// The query of `GET /logs`. `limit` is the page size: 100 by default, at least 1, and read
/// as 1000 above that. `before` is the `next` id of the previous page, and an empty `before`
/// means the first page.
#[derive(Debug, Deserialize)]
struct ListQuery {
    limit: Option<usize>,
    before: Option<String>,
}

async fn list_bundles(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Response {
    if !state.auth.check(&headers) {
        return unauthorized_read(&state);
    }
    let query = match query {
        Ok(Query(query)) => query,
        Err(rejection) => return bad_request(&format!("invalid query: {}", rejection.body_text())),
    };
    if query.limit == Some(0) {
        return bad_request("invalid query: limit must be at least 1");
    }
    let before = query.before.filter(|before| !before.is_empty());
    let store = state.store.clone();
    let listing =
        tokio::task::spawn_blocking(move || store.list_page(query.limit, before.as_deref())).await;
    match listing {
        Ok(Ok(page)) => {
            let bundles: Vec<BundleListing> = page.bundles.into_iter().map(Into::into).collect();
            Json(json!({"bundles": bundles, "next": page.next})).into_response()
        }
        Ok(Err(error)) => {
            tracing::error!(%error, "failed to list bundles");
            internal_error("failed to list bundles")
        }
        Err(error) => {
            tracing::error!(%error, "bundle listing task failed");
            internal_error("failed to list bundles")
        }
    }
}

/// One bundle's files in `GET /logs/{id}`.
#[derive(Debug, Serialize)]
struct BundleFiles {
    id: String,
    files: Vec<FileEntry>,
}

async fn list_bundle_files(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if !state.auth.check(&headers) {
        return unauthorized_read(&state);
    }
    let store = state.store.clone();
    let lookup = id.clone();
    let files = tokio::task::spawn_blocking(move || store.files(&lookup))
        .await
        .ok()
        .flatten();
    match files {
        Some(files) => Json(BundleFiles { id, files }).into_response(),
        None => not_found(),
    }
}

async fn download_file(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, file)): Path<(String, String)>,
) -> Response {
    if !state.auth.check(&headers) {
        return unauthorized_read(&state);
    }
    let store = state.store.clone();
    let name = file.clone();
    let path = tokio::task::spawn_blocking(move || store.file_path(&id, &name))
        .await
        .ok()
        .flatten();
    let Some(path) = path else {
        return not_found();
    };

    // NOTE: the whole file is read into memory. Bundle files are bounded by the capture, and
    // the raw evidence of a few thousand processes is a few MiB.
    match tokio::fs::read(&path).await {
        Ok(bytes) => {
            let headers = [
                (CONTENT_TYPE, content_type_of(&file)),
                (X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
            ];
            (headers, bytes).into_response()
        }
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "failed to read bundle file");
            not_found()
        }
    }
}

fn content_type_of(file: &str) -> HeaderValue {
    let value = match file.rsplit_once('.').map(|(_, ext)| ext) {
        Some("json") => "application/json",
        Some("txt") => "text/plain; charset=utf-8",
        Some("tar") => "application/x-tar",
        _ => "application/octet-stream",
    };
    HeaderValue::from_static(value)
}

fn not_found() -> Response {
    let body = json!({"status": "not_found", "error": "no such bundle or file"});
    (StatusCode::NOT_FOUND, Json(body)).into_response()
}

fn bad_request(message: &str) -> Response {
    let body = json!({"status": "rejected", "reason": "invalid_query", "error": message});
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

fn internal_error(message: &str) -> Response {
    let body = json!({"status": "error", "error": message});
    (StatusCode::INTERNAL_SERVER_ERROR, Json(body)).into_response()
}

/// Errors that stop the server from starting or serving.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("failed to open the data directory: {0}")]
    Store(#[from] StoreError),
    #[error("failed to start the collector: {0}")]
    Platform(#[from] PlatformError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Pending(#[from] crate::pending::PendingError),
    #[error("failed to start the Slack notifier: {0}")]
    Slack(#[from] SlackError),
    #[error("failed to start a {what} thread: {source}")]
    Thread {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to listen on {address}: {source}")]
    Listen {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the HTTP server failed: {0}")]
    Serve(#[source] std::io::Error),
}

/// Every running part of the server except the listener.
pub struct App {
    pub state: AppState,
    worker: Worker,
    recorder: Option<Recorder>,
    /// How long shutdown waits for a capture in progress.
    grace: Duration,
}

impl App {
    /// Opens the data directory and the journal, and starts the collector, the Slack
    /// notifier, the history recorder and the capture worker. Must run inside a tokio runtime.
    pub fn start(settings: &Settings) -> Result<App, ServeError> {
        let metrics = Metrics::new();
        let store = BundleStore::open(&settings.data_dir)?;
        let collector = Arc::new(Collector::new(settings.capture.options())?);
        log_start(settings, collector.backend());

        let (log, stats) = IncidentLog::open(&settings.data_dir, settings.intake.dedupe_window)?;
        log_rebuild(&log, &stats);
        let log = Arc::new(log);

        let outbox = settings.data_dir.join(".aegisir").join("outbox");
        let notifier = Notifier::start(settings.slack.clone(), outbox, metrics.clone())?;

        let host_lock = Arc::new(Mutex::new(()));
        let history = settings.history.is_enabled().then(|| {
            let keep_secrets = settings.capture.keep_secrets;
            Arc::new(History::with_keep_secrets(
                settings.history.clone(),
                keep_secrets,
            ))
        });
        let recorder = match &history {
            Some(history) => Some(
                Recorder::start(
                    history.clone(),
                    collector.clone(),
                    host_lock.clone(),
                    settings.capture.nice,
                )
                .map_err(|source| ServeError::Thread {
                    what: "history",
                    source,
                })?,
            ),
            None => None,
        };

        let pending = PendingJobs::in_data_dir(&settings.data_dir);
        let requeue = load_pending(&pending, &log)?;
        warn_unreachable_min_free(settings);
        let space = Arc::new(SpaceCheck::new(
            &settings.data_dir,
            settings.intake.min_free_bytes,
        ));

        // The queue also takes the captures left from the last run, on top of its capacity.
        let (sender, receiver) = mpsc::channel(settings.intake.queue_capacity + requeue.len());
        requeue_pending(requeue, &log, &sender, &metrics);
        let pipeline = Arc::new(Pipeline {
            collector,
            store: store.clone(),
            log: log.clone(),
            metrics: metrics.clone(),
            notifier: Some(notifier.clone()),
            slack: settings.slack.clone(),
            history,
            host_lock,
            keep_secrets: settings.capture.keep_secrets,
            nice: settings.capture.nice,
            pending: pending.clone(),
            space: space.clone(),
            status: Arc::new(WorkerStatus::default()),
        });
        let worker = Worker::start(pipeline, receiver).map_err(|source| ServeError::Thread {
            what: "capture",
            source,
        })?;

        let options = IntakeOptions {
            capture_on_resolved: settings.capture.on_resolved,
            retry_after_secs: settings.capture.interval.as_secs_f64().ceil() as u64 + 1,
        };
        let parts = IntakeParts {
            log,
            queue: sender,
            metrics: metrics.clone(),
            pending,
            space,
            notifier: Some(notifier),
            slack: settings.slack.clone(),
        };
        let state = AppState {
            intake: Arc::new(Intake::new(parts, options)),
            store,
            metrics,
            auth: Arc::new(settings.auth.clone()),
            body_limit_bytes: settings.intake.body_limit_bytes,
            worker: worker.status(),
            readiness: Arc::default(),
        };

        Ok(App {
            state,
            worker,
            recorder,
            grace: settings.capture.deadline + settings.capture.interval * 2,
        })
    }

    /// Stops the worker and the recorder. Call it after the router and every clone of the
    /// state are dropped, so the capture queue is closed.
    pub fn stop(self) {
        let App {
            state,
            worker,
            recorder,
            grace,
        } = self;
        drop(state);
        worker.stop(grace);
        if let Some(recorder) = recorder {
            recorder.stop();
        }
    }
}

/// Reads the captures an earlier run queued but did not finish, and makes every other
/// unfinished capture of the journal no dedupe target, so its retry captures.
pub fn load_pending(
    pending: &PendingJobs,
    log: &IncidentLog,
) -> Result<Vec<CaptureJob>, ServeError> {
    let (jobs, invalid) = pending.load_all()?;
    for (path, error) in &invalid {
        tracing::error!(path = %path.display(), %error, "ignoring an unreadable pending capture");
    }
    let ids: std::collections::HashSet<&str> =
        jobs.iter().map(|job| job.incident_id.as_str()).collect();
    let forgotten = log
        .state()
        .forget_lost_captures(|incident| ids.contains(incident));
    if forgotten > 0 {
        tracing::warn!(
            incidents = forgotten,
            "captures of an earlier run never finished and left no pending job; their alerts capture again"
        );
    }
    Ok(jobs.into_iter().map(|job| job.into_job()).collect())
}

/// Queues the captures of [`load_pending`] again, each journaled as `requeued`. The queue must
/// have room for all of them.
pub fn requeue_pending(
    jobs: Vec<CaptureJob>,
    log: &IncidentLog,
    sender: &mpsc::Sender<CaptureJob>,
    metrics: &Metrics,
) {
    for job in jobs {
        let event = Event {
            incident: Some(job.incident_id.clone()),
            reason: Some("pending from an earlier run".to_string()),
            ..Event::new(Outcome::Requeued)
        };
        if let Err(error) = log.append(&event) {
            tracing::error!(incident = %job.incident_id, %error, "failed to journal a requeued capture");
        }
        tracing::info!(incident = %job.incident_id, "capture from an earlier run queued again");
        match sender.try_send(job) {
            Ok(()) => metrics.capture_queue_depth.inc(),
            Err(error) => {
                tracing::error!(%error, "failed to queue a capture from an earlier run; it stays pending")
            }
        }
    }
}

/// Runs the server until SIGINT or SIGTERM.
pub async fn run(settings: Settings) -> Result<(), ServeError> {
    let app = App::start(&settings)?;
    let listener =
        TcpListener::bind(settings.listen)
            .await
            .map_err(|source| ServeError::Listen {
                address: settings.listen,
                source,
            })?;
    let address = listener.local_addr().unwrap_or(settings.listen);
    tracing::info!(address = %address, "listening");

    let status = app.state.worker.clone();
    let router = router(app.state.clone());
    let served = axum::serve(listener, router)
        .with_graceful_shutdown(shutdown_signal(status))
        .await;

    tracing::info!("stopping");
    tokio::task::spawn_blocking(move || app.stop()).await.ok();
    tracing::info!("stopped");
    served.map_err(ServeError::Serve)
}

async fn shutdown_signal(status: Arc<WorkerStatus>) {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "failed to wait for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        () = interrupt => {}
        () = terminate_signal() => {}
    }
    tracing::info!("shutdown signal received");
    status.begin_stop();
}

#[cfg(unix)]
async fn terminate_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut terminate) => {
            terminate.recv().await;
        }
        Err(error) => {
            tracing::error!(%error, "failed to wait for SIGTERM");
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(not(unix))]
async fn terminate_signal() {
    std::future::pending::<()>().await;
}

fn log_start(settings: &Settings, backend: &str) {
    let roots = &settings.capture.roots;
    let slack_configured = settings.slack.is_configured();
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        listen = %settings.listen,
        data_dir = %settings.data_dir.display(),
        procfs = %roots.procfs.display(),
        sysfs = %roots.sysfs.display(),
        rootfs = %roots.rootfs.display(),
        backend,
        slack_configured,
        auth = settings.auth.is_enabled(),
        history_interval_secs = settings.history.interval.as_secs_f64(),
        "starting AegisIR"
    );
    if !slack_configured {
        tracing::warn!(
            "Slack is not configured (SLACK_WEBHOOK_URL); captures run but nobody is notified"
        );
    }
    if !settings.listen.ip().is_loopback() && !settings.auth.is_enabled() {
        tracing::warn!(
            listen = %settings.listen,
            "listening on a non-loopback address without auth; set AEGISIR_AUTH_TOKEN or basic auth"
        );
    }
}

fn warn_unreachable_min_free(settings: &Settings) {
    let min_free_bytes = settings.intake.min_free_bytes;
    if let Some(filesystem_bytes) =
        crate::space::unreachable_min_free(&settings.data_dir, min_free_bytes)
    {
        tracing::warn!(
            data_dir = %settings.data_dir.display(),
            min_free_bytes,
            filesystem_bytes,
            "intake.min_free_bytes exceeds the size of the data directory's filesystem, so the \
             server is never ready; lower AEGISIR_MIN_FREE_BYTES"
        );
    }
}

fn log_rebuild(log: &IncidentLog, stats: &RebuildStats) {
    tracing::info!(
        journal = %log.journal().path().display(),
        events = stats.events,
        deduplicating = stats.deduplicating,
        firing_alerts = stats.firing_alerts,
        "rebuilt incident state from the events journal"
    );
    if stats.invalid_lines > 0 {
        tracing::warn!(
            invalid_lines = stats.invalid_lines,
            "skipped events journal lines that are not valid JSON"
        );
    }
}

#[cfg(test)]
use crate::slack::slack_mock;

#[cfg(test)]
mod tests {
    use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
    use axum::http::Request;
    use serde_json::Value;
    use tower::ServiceExt;

    use super::*;
    use crate::config::Layer;
    use crate::incidents::{Event, Journal, Outcome};
    use crate::intake::CaptureJob;
    use crate::slack::SlackSettings;

    const FIRING: &str = r#"{
      "version": "4", "groupKey": "{}:{alertname=\"HighCPUUsage\"}", "status": "firing",
      "receiver": "aegisir", "groupLabels": {"alertname": "HighCPUUsage"}, "commonLabels": {},
      "commonAnnotations": {}, "externalURL": "http://127.0.0.1:9093", "truncatedAlerts": 0,
      "alerts": [{"status": "firing", "labels": {"alertname": "HighCPUUsage", "instance": "web-1:9100", "severity": "critical"},
        "annotations": {"summary": "CPU above 85%"}, "startsAt": "2026-12-03T21:44:00.123Z",
        "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://127.0.0.1:9090/graph", "fingerprint": "a1b2c3d4e5f60718"}]
    }"#;

    /// A router whose capture queue no worker reads, so tests see exactly which jobs were
    /// queued.
    struct Bench {
        dir: tempfile::TempDir,
        router: Router,
        jobs: mpsc::Receiver<CaptureJob>,
        metrics: Metrics,
        worker: Arc<WorkerStatus>,
    }

    fn bench(capacity: usize, auth: AuthSettings, body_limit_bytes: usize) -> Bench {
        bench_in(
            tempfile::tempdir().unwrap(),
            capacity,
            auth,
            body_limit_bytes,
        )
    }

    fn bench_in(
        dir: tempfile::TempDir,
        capacity: usize,
        auth: AuthSettings,
        body_limit_bytes: usize,
    ) -> Bench {
        bench_with(dir, capacity, auth, body_limit_bytes, 1)
    }

    fn bench_with(
        dir: tempfile::TempDir,
        capacity: usize,
        auth: AuthSettings,
        body_limit_bytes: usize,
        min_free_bytes: u64,
    ) -> Bench {
        let store = BundleStore::open(dir.path()).unwrap();
        let (log, _) = IncidentLog::open(dir.path(), Duration::from_secs(300)).unwrap();
        let log = Arc::new(log);
        let pending = PendingJobs::in_data_dir(dir.path());
        let requeue = load_pending(&pending, &log).unwrap();
        let worker = Arc::new(WorkerStatus::default());
        let (sender, jobs) = mpsc::channel(capacity + requeue.len());
        let metrics = Metrics::new();
        requeue_pending(requeue, &log, &sender, &metrics);
        let options = IntakeOptions {
            capture_on_resolved: false,
            retry_after_secs: 2,
        };
        let parts = IntakeParts {
            log,
            queue: sender,
            metrics: metrics.clone(),
            pending,
            space: Arc::new(SpaceCheck::new(dir.path(), min_free_bytes)),
            notifier: None,
            slack: SlackSettings::default(),
        };
        let state = AppState {
            intake: Arc::new(Intake::new(parts, options)),
            store,
            metrics: metrics.clone(),
            auth: Arc::new(auth),
            body_limit_bytes,
            worker: worker.clone(),
            readiness: Arc::default(),
        };
        Bench {
            dir,
            router: router(state),
            jobs,
            metrics,
            worker,
        }
    }

    fn open_bench(capacity: usize) -> Bench {
        bench(capacity, AuthSettings::default(), 16 * 1024 * 1024)
    }

    fn token_auth() -> AuthSettings {
        AuthSettings {
            bearer_token: Some("right-token".to_string()),
            basic: None,
        }
    }

    async fn send(router: &Router, request: Request<Body>) -> (StatusCode, HeaderMap, Bytes) {
        let response = router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, headers, body)
    }

    fn post(body: impl Into<Body>) -> Request<Body> {
        Request::post("/alert").body(body.into()).unwrap()
    }

    fn get(uri: &str) -> Request<Body> {
        Request::get(uri).body(Body::empty()).unwrap()
    }

    fn json(body: &Bytes) -> Value {
        serde_json::from_slice(body).unwrap()
    }

    fn journal(dir: &std::path::Path) -> Vec<Event> {
        Journal::read_events(&Journal::path_in(dir)).unwrap().0
    }

    fn resolved() -> String {
        FIRING
            .replace("\"status\": \"firing\"", "\"status\": \"resolved\"")
            .replace("0001-01-01T00:00:00Z", "2026-12-03T22:14:00Z")
    }

    #[tokio::test]
    async fn malformed_json_gets_400_and_serving_continues() {
        let bench = open_bench(4);

        let (status, _, body) = send(&bench.router, post("{\n  \"alerts\": [\n")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let reply = json(&body);
        assert_eq!(reply["status"], "rejected");
        assert_eq!(reply["reason"], "malformed_json");
        assert_eq!(reply["line"], 3);
        assert_eq!(reply["column"], 0);
        let error = reply["error"].as_str().unwrap();
        assert!(error.contains("line 3 column 0"), "{error}");

        let (status, _, _) = send(&bench.router, get("/healthz")).await;
        assert_eq!(status, StatusCode::OK);
        let (status, _, body) = send(&bench.router, post(FIRING)).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        assert_eq!(json(&body)["capture"], "queued");
    }

    #[tokio::test]
    async fn empty_body_queues_manual_capture() {
        let mut bench = open_bench(4);
        let (status, _, body) = send(&bench.router, post(Body::empty())).await;

        assert_eq!(status, StatusCode::ACCEPTED);
        let reply = json(&body);
        assert_eq!(reply["status"], "accepted");
        assert_eq!(reply["capture"], "queued");
        let job = bench.jobs.try_recv().unwrap();
        assert_eq!(reply["incident"], job.incident_id.as_str());
        assert_eq!(job.trigger.kind, crate::store::TriggerKind::Manual);
    }

    #[tokio::test]
    async fn duplicate_notification_gives_one_capture() {
        let mut bench = open_bench(4);
        let (first_status, _, first) = send(&bench.router, post(FIRING)).await;
        let (second_status, _, second) = send(&bench.router, post(FIRING)).await;

        assert_eq!(first_status, StatusCode::ACCEPTED);
        assert_eq!(second_status, StatusCode::OK);
        assert_eq!(json(&second)["capture"], "deduplicated");
        assert_eq!(json(&second)["incident"], json(&first)["incident"]);
        assert!(bench.jobs.try_recv().is_ok());
        assert!(bench.jobs.try_recv().is_err());
    }

    #[tokio::test]
    async fn resolved_notification_starts_no_capture() {
        let mut bench = open_bench(4);
        let (status, _, body) = send(&bench.router, post(resolved())).await;

        assert_eq!(status, StatusCode::OK);
        assert_eq!(json(&body)["outcome"], "resolved");
        assert_eq!(json(&body)["capture"], "none");
        assert!(bench.jobs.try_recv().is_err());
    }

    #[tokio::test]
    async fn full_queue_gets_503_with_retry_after() {
        let bench = open_bench(1);
        send(&bench.router, post(Body::empty())).await;
        let (status, headers, body) = send(&bench.router, post(Body::empty())).await;

        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(headers.get(RETRY_AFTER).unwrap(), "2");
        assert_eq!(json(&body)["reason"], "queue_full");
        let full = bench
            .metrics
            .rejected_total
            .with_label_values(&["queue_full"])
            .get();
        assert_eq!(full, 1);
    }

    #[tokio::test]
    async fn wrong_token_gets_401() {
        let mut bench = bench(4, token_auth(), 1 << 20);
        let wrong = Request::post("/alert")
            .header(AUTHORIZATION, "Bearer wrong-token")
            .body(Body::from(FIRING))
            .unwrap();
        let (status, headers, body) = send(&bench.router, wrong).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            headers.get(WWW_AUTHENTICATE).unwrap(),
            "Bearer realm=\"aegisir\""
        );
        assert_eq!(json(&body)["reason"], "unauthorized");
        assert!(bench.jobs.try_recv().is_err());

        let (status, _, _) = send(&bench.router, post(FIRING)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);

        let right = Request::post("/alert")
            .header(AUTHORIZATION, "Bearer right-token")
            .body(Body::from(FIRING))
            .unwrap();
        let (status, _, _) = send(&bench.router, right).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        assert!(bench.jobs.try_recv().is_ok());
    }

    #[tokio::test]
    async fn logs_query_edge_cases() {
        let bench = open_bench(4);
        let id = "2026-12-03T21-45-38.812Z_9f2c4e1a7b3d";
        std::fs::create_dir(bench.dir.path().join(id)).unwrap();

        let (status, _, body) = send(&bench.router, get("/logs?before=")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(json(&body)["bundles"][0]["id"], id);

        let (status, _, body) = send(&bench.router, get("/logs?limit=0")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            json(&body)["error"],
            "invalid query: limit must be at least 1"
        );

        let (status, headers, body) = send(&bench.router, get("/logs?limit=-1")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let content_type = headers.get(CONTENT_TYPE).unwrap().to_str().unwrap();
        assert_eq!(content_type, "application/json");
        let body = json(&body);
        assert_eq!(body["reason"], "invalid_query");
        let error = body["error"].as_str().unwrap();
        assert!(error.starts_with("invalid query: "), "{error}");
    }

    #[tokio::test]
    async fn auth_leaves_health_and_metrics_open() {
        let bench = bench(4, token_auth(), 1 << 20);
        let (healthz, _, _) = send(&bench.router, get("/healthz")).await;
        let (metrics, headers, body) = send(&bench.router, get("/metrics")).await;
        let (logs, _, _) = send(&bench.router, get("/logs")).await;

        assert_eq!(healthz, StatusCode::OK);
        assert_eq!(metrics, StatusCode::OK);
        let content_type = headers.get(CONTENT_TYPE).unwrap().to_str().unwrap();
        assert!(content_type.starts_with("text/plain"), "{content_type}");
        assert!(String::from_utf8_lossy(&body).contains("aegisir_capture_queue_depth 0"));
        assert_eq!(logs, StatusCode::UNAUTHORIZED);
    }

    #[tokio::test]
    async fn body_over_limit_gets_413() {
        let bench = bench(4, AuthSettings::default(), 1024);
        let big = format!("{{\"receiver\": \"{}\"}}", "x".repeat(2048));
        let (status, _, body) = send(&bench.router, post(big)).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(json(&body)["reason"], "too_large");

        let too_large = bench
            .metrics
            .rejected_total
            .with_label_values(&["too_large"])
            .get();
        assert_eq!(too_large, 1);
    }

    #[tokio::test]
    async fn every_request_is_journaled() {
        let bench = bench(4, token_auth(), 1024);
        let with_token = |body: &str| {
            Request::post("/alert")
                .header(AUTHORIZATION, "Bearer right-token")
                .body(Body::from(body.to_string()))
                .unwrap()
        };
        send(&bench.router, with_token(FIRING)).await;
        send(&bench.router, with_token(FIRING)).await;
        send(&bench.router, with_token(&resolved())).await;
        send(&bench.router, with_token("{not json")).await;
        send(&bench.router, with_token(&" ".repeat(2000))).await;
        send(&bench.router, post(FIRING)).await;

        let events = journal(bench.dir.path());
        let outcomes: Vec<(Outcome, Option<&str>)> = events
            .iter()
            .map(|e| (e.outcome, e.reason.as_deref()))
            .collect();
        assert_eq!(
            outcomes,
            vec![
                (Outcome::Accepted, None),
                (Outcome::Deduplicated, None),
                (Outcome::Resolved, None),
                (Outcome::Rejected, Some("malformed_json")),
                (Outcome::Rejected, Some("too_large")),
                (Outcome::Rejected, Some("unauthorized")),
            ]
        );
        let expected_sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(FIRING.as_bytes()));
        assert_eq!(
            events[0].body_sha256.as_deref(),
            Some(expected_sha.as_str())
        );
        assert_eq!(events[0].body_bytes, Some(FIRING.len() as u64));
        assert_eq!(
            events[0].group_key.as_deref(),
            Some("{}:{alertname=\"HighCPUUsage\"}")
        );
        assert_eq!(events[0].fingerprints, vec!["a1b2c3d4e5f60718".to_string()]);
        assert_eq!(events[1].incident, events[0].incident);
    }

    #[tokio::test]
    async fn restart_rebuilds_dedupe() {
        let bench = open_bench(4);
        let (_, _, first) = send(&bench.router, post(FIRING)).await;
        let Bench { dir, router, .. } = bench;
        drop(router);

        let mut restarted = bench_in(dir, 4, AuthSettings::default(), 1 << 20);
        let (status, _, second) = send(&restarted.router, post(FIRING)).await;

        assert_eq!(status, StatusCode::OK);
        assert_eq!(json(&second)["capture"], "deduplicated");
        assert_eq!(json(&second)["incident"], json(&first)["incident"]);
        let requeued = restarted.jobs.try_recv().unwrap();
        assert_eq!(json(&first)["incident"], requeued.incident_id.as_str());
        assert!(restarted.jobs.try_recv().is_err());
    }

    #[tokio::test]
    async fn restart_requeues_unfinished_capture() {
        let bench = open_bench(4);
        let (status, _, first) = send(&bench.router, post(FIRING)).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        let incident = json(&first)["incident"].as_str().unwrap().to_string();
        let pending = PendingJobs::in_data_dir(bench.dir.path());
        assert!(pending.contains(&incident));
        let Bench { dir, router, .. } = bench;
        drop(router);

        // The first run stopped before its worker took the job.
        let mut restarted = bench_in(dir, 4, AuthSettings::default(), 1 << 20);

        let job = restarted.jobs.try_recv().unwrap();
        assert_eq!(job.incident_id, incident);
        assert_eq!(job.body.as_deref(), Some(FIRING.as_bytes()));
        assert_eq!(job.trigger.incident_id, incident);
        let notification = job.notification.unwrap();
        assert_eq!(notification.alerts[0].fingerprint, "a1b2c3d4e5f60718");
        assert_eq!(restarted.metrics.capture_queue_depth.get(), 1);
        let events = journal(restarted.dir.path());
        let last = events.last().unwrap();
        assert_eq!(last.outcome, Outcome::Requeued);
        assert_eq!(last.incident.as_deref(), Some(incident.as_str()));
    }

    #[tokio::test]
    async fn restart_forgets_capture_without_pending_job() {
        let bench = open_bench(4);
        let (_, _, first) = send(&bench.router, post(FIRING)).await;
        let incident = json(&first)["incident"].as_str().unwrap().to_string();
        PendingJobs::in_data_dir(bench.dir.path())
            .remove(&incident)
            .unwrap();
        let Bench { dir, router, .. } = bench;
        drop(router);

        let mut restarted = bench_in(dir, 4, AuthSettings::default(), 1 << 20);
        assert!(restarted.jobs.try_recv().is_err());
        let (status, _, second) = send(&restarted.router, post(FIRING)).await;

        assert_eq!(status, StatusCode::ACCEPTED);
        assert_eq!(json(&second)["capture"], "queued");
        assert_ne!(json(&second)["incident"], incident.as_str());
        assert!(restarted.jobs.try_recv().is_ok());
    }

    #[tokio::test]
    async fn finished_capture_stays_dedupe_target_after_restart() {
        let bench = open_bench(4);
        let (_, _, first) = send(&bench.router, post(FIRING)).await;
        let incident = json(&first)["incident"].as_str().unwrap().to_string();
        let captured = Event {
            incident: Some(incident.clone()),
            bundle: Some("2026-12-03T21-45-38.812Z_9f2c4e1a7b3d".to_string()),
            ..Event::new(Outcome::Captured)
        };
        Journal::open(&Journal::path_in(bench.dir.path()))
            .unwrap()
            .append(&captured)
            .unwrap();
        PendingJobs::in_data_dir(bench.dir.path())
            .remove(&incident)
            .unwrap();
        let Bench { dir, router, .. } = bench;
        drop(router);

        let restarted = bench_in(dir, 4, AuthSettings::default(), 1 << 20);
        let (status, _, second) = send(&restarted.router, post(FIRING)).await;

        assert_eq!(status, StatusCode::OK);
        assert_eq!(json(&second)["incident"], incident.as_str());
    }

    #[tokio::test]
    async fn full_disk_gets_503_and_not_ready() {
        let mut bench = bench_with(
            tempfile::tempdir().unwrap(),
            4,
            AuthSettings::default(),
            1 << 20,
            u64::MAX,
        );
        let (status, headers, body) = send(&bench.router, post(FIRING)).await;

        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(headers.get(RETRY_AFTER).unwrap(), "2");
        assert_eq!(json(&body)["reason"], "disk_full");
        assert!(bench.jobs.try_recv().is_err());
        let events = journal(bench.dir.path());
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].reason.as_deref(), Some("disk_full"));
        assert_eq!(
            events[0].group_key.as_deref(),
            Some("{}:{alertname=\"HighCPUUsage\"}")
        );
        assert_eq!(events[0].firing, vec!["a1b2c3d4e5f60718".to_string()]);
        let full = bench
            .metrics
            .rejected_total
            .with_label_values(&["disk_full"]);
        assert_eq!(full.get(), 1);

        let (status, _, body) = send(&bench.router, get("/readyz")).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(json(&body)["data_dir_space"]["state"], "full");
    }

    #[tokio::test]
    async fn removed_data_dir_gets_503_unwritable() {
        let bench = open_bench(4);
        std::fs::remove_dir_all(bench.dir.path()).unwrap();
        let (status, _, body) = send(&bench.router, post(Body::empty())).await;

        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(json(&body)["reason"], "data_dir_unwritable");
        let unwritable = bench
            .metrics
            .rejected_total
            .with_label_values(&["data_dir_unwritable"]);
        assert_eq!(unwritable.get(), 1);
    }

    #[tokio::test]
    async fn metrics_list_every_label_at_zero() {
        let bench = open_bench(4);
        let (_, _, body) = send(&bench.router, get("/metrics")).await;
        let text = String::from_utf8_lossy(&body);
        let expected = [
            "aegisir_alerts_total{status=\"other\"} 0",
            "aegisir_alerts_total{status=\"manual\"} 0",
            "aegisir_rejected_requests_total{reason=\"queue_full\"} 0",
            "aegisir_rejected_requests_total{reason=\"disk_full\"} 0",
            "aegisir_captures_total{result=\"error\"} 0",
            "aegisir_slack_notifications_total{result=\"rate_limited\"} 0",
            "aegisir_notifications_total{outcome=\"ignored\"} 0",
        ];
        for series in expected {
            assert!(text.contains(series), "missing {series} in\n{text}");
        }
    }

    #[tokio::test]
    async fn readyz_needs_running_worker() {
        let bench = open_bench(4);
        let (status, _, body) = send(&bench.router, get("/readyz")).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(json(&body)["data_dir_writable"], true);
        assert_eq!(json(&body)["worker_running"], false);
    }

    #[tokio::test]
    async fn readyz_reports_repeated_capture_failures() {
        let bench = open_bench(4);
        let error = crate::worker::CaptureError::Panicked("disk broke".to_string());
        for _ in 0..MAX_CONSECUTIVE_FAILURES {
            bench.worker.note_failure(&error);
        }
        let router = bench.router.clone();

        let (status, _, body) = send(&router, get("/readyz")).await;

        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        let body = json(&body);
        assert_eq!(
            body["consecutive_capture_failures"],
            MAX_CONSECUTIVE_FAILURES
        );
        assert_eq!(body["capture_failing"], "capture panicked: disk broke");

        bench.worker.note_success();
        let (_, _, body) = send(&router, get("/readyz")).await;
        assert_eq!(json(&body)["consecutive_capture_failures"], 0);
        assert_eq!(json(&body)["capture_failing"], serde_json::Value::Null);
    }

    /// Settings for a full app on the live host with short intervals and no history.
    fn live_settings(dir: &std::path::Path, history_interval: &str) -> Settings {
        live_settings_with(dir, "0.1", history_interval)
    }

    fn live_settings_with(dir: &std::path::Path, interval: &str, history: &str) -> Settings {
        let text = format!(
            "data_dir = {:?}\nlisten = \"127.0.0.1:0\"\n[capture]\ninterval_secs = {interval}\n\
             nice = 0\n[history]\ninterval_secs = {history}\n",
            dir.display().to_string()
        );
        Layer::from_toml(&text).unwrap().resolve().unwrap()
    }

    async fn wait_for_bundles(store: &BundleStore, count: usize) -> Vec<BundleSummary> {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let bundles = store.list().unwrap();
            if bundles.len() >= count || std::time::Instant::now() > deadline {
                return bundles;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn alert_produces_verified_bundle() {
        let dir = tempfile::tempdir().unwrap();
        let app = App::start(&live_settings(dir.path(), "0")).unwrap();
        let router = router(app.state.clone());

        let (status, _, body) = send(&router, post(FIRING)).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        let incident = json(&body)["incident"].as_str().unwrap().to_string();
        let (status, _, _) = send(&router, get("/readyz")).await;
        assert_eq!(status, StatusCode::OK);

        let bundles = wait_for_bundles(&app.state.store, 1).await;
        assert_eq!(bundles.len(), 1);
        let bundle = &bundles[0];
        let trigger = bundle.trigger.as_ref().unwrap();
        assert_eq!(trigger.incident_id, incident);
        let report = crate::store::verify(&dir.path().join(&bundle.id)).unwrap();
        assert!(report.is_ok(), "{report}");

        let alert = app.state.store.file_path(&bundle.id, "alert.json").unwrap();
        assert_eq!(std::fs::read(alert).unwrap(), FIRING.as_bytes());
        tokio::time::sleep(Duration::from_millis(100)).await;
        let events = journal(dir.path());
        let captured = events
            .iter()
            .find(|e| e.outcome == Outcome::Captured)
            .unwrap();
        assert_eq!(captured.incident.as_deref(), Some(incident.as_str()));
        assert_eq!(captured.bundle.as_deref(), Some(bundle.id.as_str()));

        drop(router);
        tokio::task::spawn_blocking(move || app.stop())
            .await
            .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bundle_includes_history() {
        let dir = tempfile::tempdir().unwrap();
        let app = App::start(&live_settings_with(dir.path(), "2", "0.2")).unwrap();
        let router = router(app.state.clone());
        tokio::time::sleep(Duration::from_millis(700)).await;

        send(&router, post(Body::empty())).await;
        let bundles = wait_for_bundles(&app.state.store, 1).await;
        assert_eq!(bundles.len(), 1);
        let id = &bundles[0].id;

        let history = app.state.store.file_path(id, "history.json").unwrap();
        let history: Value = serde_json::from_slice(&std::fs::read(history).unwrap()).unwrap();
        let points = history["points"].as_array().unwrap();
        assert!(!points.is_empty(), "{history}");
        assert_eq!(history["interval_secs"], 0.2);
        let text = app.state.store.file_path(id, "history.txt").unwrap();
        let text = std::fs::read_to_string(text).unwrap();
        assert!(text.contains("TOP CPU"), "{text}");

        // The baseline was a history sample at most two history intervals (0.4 s) old, not a
        // new sample 2 s before, and the rates span at least one history interval.
        let snapshot = app.state.store.file_path(id, "snapshot.json").unwrap();
        let snapshot: Value = serde_json::from_slice(&std::fs::read(snapshot).unwrap()).unwrap();
        let interval = snapshot["interval_secs"].as_f64().unwrap();
        assert!((0.2..1.0).contains(&interval), "interval {interval}");

        drop(router);
        tokio::task::spawn_blocking(move || app.stop())
            .await
            .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn download_rejects_paths_leaving_bundle() {
        let dir = tempfile::tempdir().unwrap();
        let app = App::start(&live_settings(dir.path(), "0")).unwrap();
        let router = router(app.state.clone());
        send(&router, post(Body::empty())).await;
        let bundles = wait_for_bundles(&app.state.store, 1).await;
        let id = bundles[0].id.clone();

        let (status, _, body) = send(&router, get("/logs")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(json(&body)["bundles"][0]["id"], id.as_str());
        let (status, _, body) = send(&router, get(&format!("/logs/{id}"))).await;
        assert_eq!(status, StatusCode::OK);
        let files = json(&body)["files"].as_array().unwrap().clone();
        assert!(
            files.iter().any(|f| f["name"] == "snapshot.json"),
            "{files:?}"
        );

        let (status, headers, body) = send(&router, get(&format!("/logs/{id}/top.txt"))).await;
        assert_eq!(status, StatusCode::OK);
        assert!(headers
            .get(CONTENT_TYPE)
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("text/plain"));
        let on_disk = std::fs::read(dir.path().join(&id).join("top.txt")).unwrap();
        assert_eq!(body.as_ref(), on_disk.as_slice());

        std::fs::write(dir.path().join("secret.txt"), "outside").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join(&id).join("link.txt")).unwrap();
        let hostile = [
            format!("/logs/{id}/..%2fsecret.txt"),
            format!("/logs/{id}/%2e%2e"),
            format!("/logs/{id}/%2e%2e%2f%2e%2e%2fetc%2fpasswd"),
            format!("/logs/{id}/..%5csecret.txt"),
            format!("/logs/{id}/%2fetc%2fpasswd"),
            format!("/logs/{id}/link.txt"),
            format!("/logs/{id}/.aegisir"),
            "/logs/..%2f..%2fetc/passwd".to_string(),
            "/logs/%2e%2e/secret.txt".to_string(),
            "/logs/.aegisir/events.jsonl".to_string(),
            "/logs/..".to_string(),
        ];
        for uri in hostile {
            let (status, _, body) = send(&router, get(&uri)).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
            assert!(!String::from_utf8_lossy(&body).contains("root:"), "{uri}");
        }

        drop(router);
        tokio::task::spawn_blocking(move || app.stop())
            .await
            .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn serves_on_loopback_listener() {
        let dir = tempfile::tempdir().unwrap();
        let app = App::start(&live_settings(dir.path(), "0")).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let app_router = router(app.state.clone());
        let server = tokio::spawn(async move { axum::serve(listener, app_router).await });

        let url = format!("http://{address}/healthz");
        crate::health::check(&url).await.unwrap();
        let raw = raw_post(address, b"{\"alerts\": [}").await;
        assert!(raw.starts_with("HTTP/1.1 400"), "{raw}");
        crate::health::check(&url).await.unwrap();

        server.abort();
        let _ = server.await;
        tokio::task::spawn_blocking(move || app.stop())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn chunked_body_over_limit_gets_413() {
        let bench = bench(4, AuthSettings::default(), 1024);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let bench_router = bench.router.clone();
        let server = tokio::spawn(async move { axum::serve(listener, bench_router).await });

        // A chunked body declares no length, so the limit must cut it off while reading.
        let chunk = format!("320\r\n{}\r\n", " ".repeat(800));
        let body = format!("{chunk}{chunk}0\r\n\r\n");
        let reply = raw_request(address, "transfer-encoding: chunked", body.as_bytes()).await;
        assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");

        server.abort();
        let _ = server.await;
    }

    async fn raw_post(address: SocketAddr, body: &[u8]) -> String {
        let length = format!("content-length: {}", body.len());
        raw_request(address, &length, body).await
    }

    async fn raw_request(address: SocketAddr, framing: &str, body: &[u8]) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        let head = format!(
            "POST /alert HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/json\r\n\
             {framing}\r\nconnection: close\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(body).await.unwrap();
        let mut reply = Vec::new();
        stream.read_to_end(&mut reply).await.unwrap();
        String::from_utf8_lossy(&reply).into_owned()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn slack_gets_capture_then_resolution() {
        let mock = super::slack_mock::SlackMock::start().await;
        let dir = tempfile::tempdir().unwrap();
        let mut settings = live_settings(dir.path(), "0");
        settings.slack.webhook_url = Some(mock.url());
        settings.slack.min_interval = Duration::from_millis(50);
        let app = App::start(&settings).unwrap();
        let router = router(app.state.clone());

        send(&router, post(FIRING)).await;
        let messages = mock.wait_for_messages(1, Duration::from_secs(20)).await;
        assert_eq!(messages.len(), 1);
        assert!(messages[0].contains("HighCPUUsage"), "{}", messages[0]);
        let bundle = app.state.store.list().unwrap()[0].id.clone();
        assert!(messages[0].contains(&bundle), "{}", messages[0]);

        send(&router, post(resolved())).await;
        send(&router, post(resolved())).await;
        let messages = mock.wait_for_messages(2, Duration::from_secs(20)).await;
        assert_eq!(messages.len(), 2);
        assert!(messages[1].contains(&bundle), "{}", messages[1]);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            mock.messages().len(),
            2,
            "the repeated resolution was sent again"
        );
        assert_eq!(app.state.store.list().unwrap().len(), 1);

        drop(router);
        tokio::task::spawn_blocking(move || app.stop())
            .await
            .unwrap();
    }
}
