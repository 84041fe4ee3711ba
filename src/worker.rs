//! The capture worker: takes queued captures one at a time and turns each into a bundle and a
//! Slack notice.
//!
//! Captures run one at a time on a dedicated thread at a low priority, so that a capture
//! yields the CPU to the host's own work and never blocks the async runtime. Per capture, in
//! this order: read the host (against a recent history sample as the baseline when there is
//! one, otherwise two samples an interval apart), redact secrets in command lines (unless
//! `capture.keep_secrets`), render the reports, write the bundle, and journal it. Only then is
//! Slack told, so a notice always names a complete bundle, and the pending job file is
//! removed. A failed or panicking capture is journaled and counted, and the thread goes on
//! with the next one.

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use aegisir_platform::{Capture, Collector, Scope};
use tokio::sync::mpsc;

use crate::history::History;
use crate::incidents::{Event, IncidentLog, Outcome};
use crate::intake::CaptureJob;
use crate::metrics::Metrics;
use crate::pending::PendingJobs;
use crate::report;
use crate::slack::{self, CaptureNotice, NotifierHandle, SlackSettings};
use crate::space::SpaceCheck;
use crate::store::{BundleInfo, BundleInput, BundleStore, StoreError};

/// Consecutive capture failures after which `/readyz` reports not ready.
pub const MAX_CONSECUTIVE_FAILURES: usize = 3;

/// Whether the worker runs and keeps capturing, for `/readyz`, and whether it should skip the
/// queue.
#[derive(Debug, Default)]
pub struct WorkerStatus {
    running_threads: AtomicUsize,
    stopping: AtomicBool,
    consecutive_failures: AtomicUsize,
    last_failure: Mutex<Option<String>>,
}

impl WorkerStatus {
    pub fn is_running(&self) -> bool {
        self.running_threads.load(Ordering::SeqCst) > 0 && !self.is_stopping()
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Makes the worker journal the captures still queued as skipped instead of running them.
    pub fn begin_stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    pub(crate) fn note_success(&self) {
        self.consecutive_failures.store(0, Ordering::SeqCst);
        *self.last_failure.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    pub(crate) fn note_failure(&self, error: &CaptureError) {
        *self.last_failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(error.to_string());
        self.consecutive_failures.fetch_add(1, Ordering::SeqCst);
    }

    pub fn consecutive_failures(&self) -> usize {
        self.consecutive_failures.load(Ordering::SeqCst)
    }

    /// Returns the last capture error once [`MAX_CONSECUTIVE_FAILURES`] captures in a row have
    /// failed, until a capture succeeds.
    pub fn failing_reason(&self) -> Option<String> {
        if self.consecutive_failures() < MAX_CONSECUTIVE_FAILURES {
            return None;
        }
        self.last_failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Decrements the running count when a worker thread ends, however it ends.
struct RunningGuard(Arc<WorkerStatus>);

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.0.running_threads.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Everything a capture needs besides its job.
pub struct Pipeline {
    pub collector: Arc<Collector>,
    pub store: BundleStore,
    pub log: Arc<IncidentLog>,
    pub metrics: Metrics,
    pub notifier: Option<NotifierHandle>,
    pub slack: SlackSettings,
    pub history: Option<Arc<History>>,
    /// Held while a capture reads the host; the history recorder skips its tick meanwhile.
    pub host_lock: Arc<Mutex<()>>,
    pub keep_secrets: bool,
    pub nice: i32,
    /// Job files of queued captures, removed once a capture is journaled.
    pub pending: PendingJobs,
    /// Told each bundle's size, which sets the free space the next capture needs.
    pub space: Arc<SpaceCheck>,
    /// Shared with `/readyz`; the worker thread started on this pipeline reports here.
    pub status: Arc<WorkerStatus>,
}

/// The running worker thread.
pub struct Worker {
    status: Arc<WorkerStatus>,
    thread: JoinHandle<()>,
}

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("failed to write the bundle: {0}")]
    Store(#[from] StoreError),
    #[error("capture panicked: {0}")]
    Panicked(String),
}

impl Worker {
    /// Starts the capture thread reading from `queue`. One thread is enough because captures
    /// hold the host lock while they read the host, so two never overlap.
    pub fn start(
        pipeline: Arc<Pipeline>,
        queue: mpsc::Receiver<CaptureJob>,
    ) -> std::io::Result<Worker> {
        let status = pipeline.status.clone();
        status.running_threads.fetch_add(1, Ordering::SeqCst);
        let guard = RunningGuard(status.clone());
        let queue = Mutex::new(queue);
        let thread = std::thread::Builder::new()
            .name("aegisir-capture".to_string())
            .spawn(move || {
                let guard = guard;
                lower_thread_priority(pipeline.nice);
                run_queue(&pipeline, &queue, &guard.0);
            })?;
        Ok(Worker { status, thread })
    }

    pub fn status(&self) -> Arc<WorkerStatus> {
        self.status.clone()
    }

    /// Waits up to `grace` for the thread to finish the capture in progress. The queue must
    /// be closed (every sender dropped) for it to end.
    pub fn stop(self, grace: Duration) {
        self.status.begin_stop();
        let deadline = Instant::now() + grace;
        while !self.thread.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if self.thread.is_finished() {
            let _ = self.thread.join();
        } else {
            tracing::warn!("capture still running at shutdown; leaving it unfinished");
        }
    }
}

/// What the queue loop does with each job.
struct JobHandlers<'a> {
    run: &'a dyn Fn(CaptureJob),
    skip: &'a dyn Fn(&CaptureJob),
    /// Called with the incident and the panic message when `run` panics.
    panicked: &'a dyn Fn(&str, String),
}

fn run_queue(
    pipeline: &Pipeline,
    queue: &Mutex<mpsc::Receiver<CaptureJob>>,
    status: &WorkerStatus,
) {
    let handlers = JobHandlers {
        run: &|job| run_job(pipeline, job),
        skip: &|job| skip(pipeline, job),
        panicked: &|incident, text| record_panic(pipeline, incident, &text),
    };
    drain(queue, status, &pipeline.metrics, &handlers);
}

/// Takes jobs until the queue closes. A job that panics (in the capture, the journal or a log
/// line) is reported to `handlers.panicked` and the loop goes on with the next job.
fn drain(
    queue: &Mutex<mpsc::Receiver<CaptureJob>>,
    status: &WorkerStatus,
    metrics: &Metrics,
    handlers: &JobHandlers<'_>,
) {
    loop {
        let job = {
            let mut queue = queue.lock().unwrap_or_else(|e| e.into_inner());
            queue.blocking_recv()
        };
        let Some(job) = job else {
            break;
        };
        metrics.capture_queue_depth.dec();

        if status.is_stopping() {
            let _ = panic::catch_unwind(AssertUnwindSafe(|| (handlers.skip)(&job)));
            continue;
        }
        let incident = job.incident_id.clone();
        if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| (handlers.run)(job))) {
            let text = panic_text(&*payload);
            let _ = panic::catch_unwind(AssertUnwindSafe(|| (handlers.panicked)(&incident, text)));
        }
    }
}

/// Journals a capture not run because the server is stopping. Its pending job file stays, so
/// the next start runs it.
fn skip(pipeline: &Pipeline, job: &CaptureJob) {
    let event = Event {
        incident: Some(job.incident_id.clone()),
        reason: Some("server stopping".to_string()),
        ..Event::new(Outcome::CaptureSkipped)
    };
    if let Err(error) = pipeline.log.append(&event) {
        tracing::error!(incident = %job.incident_id, %error, "failed to journal a skipped capture");
    }
    tracing::warn!(incident = %job.incident_id, "capture skipped because the server is stopping; it runs again at the next start");
}

/// Records a job that panicked outside the capture itself: as failed, unless its bundle was
/// already journaled.
fn record_panic(pipeline: &Pipeline, incident: &str, text: &str) {
    let captured = pipeline.log.state().bundle_of(incident).is_some();
    if captured {
        tracing::error!(incident = %incident, panic = %text, "capture job panicked after its bundle was written");
        return;
    }
    let error = CaptureError::Panicked(text.to_string());
    record_failure(pipeline, incident, &error, Duration::ZERO);
}

/// Runs one job to the end: capture, bundle, journal, Slack. A panic inside the capture is
/// caught and recorded as a failed capture.
pub fn run_job(pipeline: &Pipeline, job: CaptureJob) {
    let started = Instant::now();
    let waited = started.saturating_duration_since(job.queued_at);
    let result = panic::catch_unwind(AssertUnwindSafe(|| capture_bundle(pipeline, &job)));
    let result = match result {
        Ok(result) => result,
        Err(payload) => Err(CaptureError::Panicked(panic_text(&payload))),
    };
    let duration = started.elapsed();
    pipeline
        .metrics
        .capture_duration_seconds
        .observe(duration.as_secs_f64());

    match result {
        Ok((capture, bundle)) => {
            record_success(pipeline, &job, &bundle, duration);
            tracing::info!(
                incident = %job.incident_id,
                bundle = %bundle.id,
                duration_ms = duration.as_millis() as u64,
                waited_ms = waited.as_millis() as u64,
                gaps = capture.snapshot.gaps.len(),
                "capture written"
            );
            notify(pipeline, &job, &capture, &bundle);
        }
        Err(error) => record_failure(pipeline, &job.incident_id, &error, duration),
    }
}

/// Reads the host and writes the bundle.
fn capture_bundle(
    pipeline: &Pipeline,
    job: &CaptureJob,
) -> Result<(Capture, BundleInfo), CaptureError> {
    let mut capture = capture_host(pipeline);
    if !pipeline.keep_secrets {
        crate::redact::redact_capture(&mut capture);
    }
    for gap in &capture.snapshot.gaps {
        pipeline
            .metrics
            .capture_gaps_total
            .with_label_values(&[gap.reason.as_str()])
            .inc();
    }

    let mut reports = report::render_all(&capture.snapshot);
    let mut extra_json = Vec::new();
    if let Some(history) = &pipeline.history {
        let (json, text) = history.bundle_files();
        extra_json = json;
        reports.push(text);
    }

    let bundle = pipeline.store.write(BundleInput {
        capture: &capture,
        trigger: &job.trigger,
        alert_body: job.body.as_deref(),
        reports: &reports,
        extra_json,
    })?;
    Ok((capture, bundle))
}

/// Captures the host once, with the host lock held. A history sample at most two history
/// intervals old is the baseline. It must be at least one capture interval (or one history
/// interval, if that is shorter) old, and the capture sleeps for the rest otherwise: at 100
/// clock ticks per second a shorter interval lets one tick of rounding show a single-threaded
/// process above 100 %.
pub fn capture_host(pipeline: &Pipeline) -> Capture {
    let _host = pipeline.host_lock.lock().unwrap_or_else(|e| e.into_inner());
    let collector = &pipeline.collector;
    let Some(history) = &pipeline.history else {
        return collector.capture();
    };
    let Some(baseline) = history.recent_baseline() else {
        return collector.capture();
    };

    let min_age = collector.options().interval.min(history.interval());
    let age = baseline.monotonic.elapsed();
    if age < min_age {
        std::thread::sleep(min_age - age);
    }
    let current = collector.sample(Scope::Full);
    collector.snapshot(&baseline, current)
}

fn record_success(pipeline: &Pipeline, job: &CaptureJob, bundle: &BundleInfo, duration: Duration) {
    let metrics = &pipeline.metrics;
    metrics.captures_total.with_label_values(&["ok"]).inc();
    metrics.bundle_bytes_total.inc_by(bundle.bytes_written);
    pipeline.space.note_bundle(bundle.bytes_written);
    pipeline.status.note_success();

    pipeline
        .log
        .state()
        .note_bundle(&job.incident_id, &bundle.id);
    let event = Event {
        incident: Some(job.incident_id.clone()),
        bundle: Some(bundle.id.clone()),
        duration_secs: Some(duration.as_secs_f64()),
        ..Event::new(Outcome::Captured)
    };
    if let Err(error) = pipeline.log.append(&event) {
        tracing::error!(incident = %job.incident_id, bundle = %bundle.id, %error, "failed to journal a capture");
        return;
    }
    remove_pending(pipeline, &job.incident_id);
}

fn record_failure(pipeline: &Pipeline, incident: &str, error: &CaptureError, duration: Duration) {
    pipeline
        .metrics
        .captures_total
        .with_label_values(&["error"])
        .inc();
    pipeline.status.note_failure(error);
    tracing::error!(
        incident = %incident,
        %error,
        consecutive_failures = pipeline.status.consecutive_failures(),
        "capture failed"
    );
    let event = Event {
        incident: Some(incident.to_string()),
        reason: Some(error.to_string()),
        duration_secs: Some(duration.as_secs_f64()),
        ..Event::new(Outcome::CaptureFailed)
    };
    // The incident stops being a dedupe target together with its journal line, so a retry of
    // its notification captures again, as it would after a restart.
    let mut state = pipeline.log.state();
    state.forget_incident(incident);
    let appended = pipeline.log.append(&event);
    drop(state);
    if let Err(error) = appended {
        tracing::error!(incident = %incident, %error, "failed to journal a capture failure");
        return;
    }
    remove_pending(pipeline, incident);
}

/// Removes the job file of a capture whose outcome is journaled. A file left behind only
/// means the capture runs once more after a restart.
fn remove_pending(pipeline: &Pipeline, incident: &str) {
    if let Err(error) = pipeline.pending.remove(incident) {
        tracing::error!(incident = %incident, %error, "failed to remove a pending capture");
    }
}

fn notify(pipeline: &Pipeline, job: &CaptureJob, capture: &Capture, bundle: &BundleInfo) {
    let Some(notifier) = pipeline.notifier.as_ref().filter(|n| n.is_configured()) else {
        return;
    };
    let notice = CaptureNotice {
        notification: job.notification.as_deref(),
        snapshot: &capture.snapshot,
        bundle,
        incident_id: &job.incident_id,
    };
    let message = slack::capture_message(&notice, &pipeline.slack);
    if let Err(error) = notifier.enqueue(message) {
        tracing::error!(incident = %job.incident_id, bundle = %bundle.id, %error, "failed to queue the Slack notice");
    }
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        return text.to_string();
    }
    if let Some(text) = payload.downcast_ref::<String>() {
        return text.clone();
    }
    "unknown panic".to_string()
}

/// Lowers the calling thread's scheduling priority to the nice value `nice` (0 to 19), or
/// leaves it where it is when it is already that low. On Linux the nice value belongs to each
/// thread, so only this thread is affected.
#[cfg(target_os = "linux")]
pub fn lower_thread_priority(nice: i32) {
    // SAFETY: gettid has no preconditions and only returns the caller's thread id.
    let tid = unsafe { libc::gettid() } as libc::id_t;
    // SAFETY: getpriority only reads its plain integer arguments. It returns -1 both for an
    // error and for nice -1, and either way the priority is then lowered below.
    let current = unsafe { libc::getpriority(libc::PRIO_PROCESS, tid) };
    if current >= nice {
        return;
    }
    // SAFETY: setpriority only reads its plain integer arguments; PRIO_PROCESS with a thread
    // id changes that one thread on Linux.
    let result = unsafe { libc::setpriority(libc::PRIO_PROCESS, tid, nice) };
    if result != 0 {
        let error = std::io::Error::last_os_error();
        tracing::warn!(nice, %error, "failed to lower the capture thread's priority");
    }
}

/// NOTE: outside Linux, `setpriority` changes the whole process, so threads keep their
/// priority there.
#[cfg(not(target_os = "linux"))]
pub fn lower_thread_priority(_nice: i32) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn priority_lowered_for_calling_thread_only() {
        let before = current_nice();
        let inside = std::thread::spawn(|| {
            lower_thread_priority(7);
            current_nice()
        })
        .join()
        .unwrap();
        assert_eq!(inside, before.max(7));
        assert_eq!(current_nice(), before);
    }

    #[cfg(target_os = "linux")]
    fn current_nice() -> i32 {
        // SAFETY: gettid and getpriority only read plain integer arguments.
        unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
    }

    fn manual_job(incident: &str) -> CaptureJob {
        CaptureJob {
            incident_id: incident.to_string(),
            trigger: crate::store::Trigger {
                kind: crate::store::TriggerKind::Manual,
                incident_id: incident.to_string(),
                group_key: None,
                receiver: None,
                alerts: Vec::new(),
            },
            notification: None,
            body: None,
            queued_at: Instant::now(),
        }
    }

    #[test]
    fn panicking_job_is_recorded_and_loop_goes_on() {
        let (sender, receiver) = mpsc::channel(4);
        sender.blocking_send(manual_job("inc-panics")).unwrap();
        sender.blocking_send(manual_job("inc-runs")).unwrap();
        drop(sender);
        let ran = Mutex::new(Vec::new());
        let panicked = Mutex::new(Vec::new());
        let handlers = JobHandlers {
            run: &|job| {
                if job.incident_id == "inc-panics" {
                    panic!("collector broke");
                }
                ran.lock().unwrap().push(job.incident_id);
            },
            skip: &|_| panic!("no job is skipped"),
            panicked: &|incident, text| panicked.lock().unwrap().push((incident.to_string(), text)),
        };

        drain(
            &Mutex::new(receiver),
            &WorkerStatus::default(),
            &Metrics::new(),
            &handlers,
        );

        assert_eq!(*ran.lock().unwrap(), vec!["inc-runs".to_string()]);
        let panicked = panicked.into_inner().unwrap();
        assert_eq!(
            panicked,
            vec![("inc-panics".to_string(), "collector broke".to_string())]
        );
    }

    #[test]
    fn panicking_panic_handler_does_not_stop_loop() {
        let (sender, receiver) = mpsc::channel(4);
        sender.blocking_send(manual_job("inc-1")).unwrap();
        sender.blocking_send(manual_job("inc-2")).unwrap();
        drop(sender);
        let attempts = AtomicUsize::new(0);
        let handlers = JobHandlers {
            run: &|_| {
                attempts.fetch_add(1, Ordering::SeqCst);
                panic!("capture broke");
            },
            skip: &|_| {},
            panicked: &|_, _| panic!("journal broke too"),
        };

        drain(
            &Mutex::new(receiver),
            &WorkerStatus::default(),
            &Metrics::new(),
            &handlers,
        );

        assert_eq!(attempts.load(Ordering::SeqCst), 2);
    }

    fn pipeline(dir: &std::path::Path) -> Pipeline {
        let options = aegisir_platform::CaptureOptions::default();
        let (log, _) = IncidentLog::open(dir, Duration::from_secs(300)).unwrap();
        Pipeline {
            collector: Arc::new(Collector::new(options).unwrap()),
            store: BundleStore::open(dir).unwrap(),
            log: Arc::new(log),
            metrics: Metrics::new(),
            notifier: None,
            slack: SlackSettings::default(),
            history: None,
            host_lock: Arc::new(Mutex::new(())),
            keep_secrets: false,
            nice: 0,
            pending: PendingJobs::in_data_dir(dir),
            space: Arc::new(SpaceCheck::new(dir, 1)),
            status: Arc::new(WorkerStatus::default()),
        }
    }

    #[test]
    fn panic_is_journaled_as_failure_and_pending_removed() {
        let dir = tempfile::tempdir().unwrap();
        let pipeline = pipeline(dir.path());
        let job = manual_job("inc-1");
        pipeline
            .pending
            .save(&crate::pending::PendingJob::of(&job))
            .unwrap();

        record_panic(&pipeline, "inc-1", "collector broke");

        let path = crate::incidents::Journal::path_in(dir.path());
        let events = crate::incidents::Journal::read_events(&path).unwrap().0;
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].outcome, Outcome::CaptureFailed);
        assert_eq!(
            events[0].reason.as_deref(),
            Some("capture panicked: collector broke")
        );
        assert!(!pipeline.pending.contains("inc-1"));
        let errors = pipeline
            .metrics
            .captures_total
            .with_label_values(&["error"]);
        assert_eq!(errors.get(), 1);
    }

    #[test]
    fn failure_forgets_dedupe_and_firing_state() {
        let dir = tempfile::tempdir().unwrap();
        let pipeline = pipeline(dir.path());
        let now = chrono::Utc::now();
        {
            let mut state = pipeline.log.state();
            state.remember("key-1", "inc-1", now);
            state.note_firing(&["fp1".to_string()], "inc-1", "group");
        }

        let error = CaptureError::Panicked("No space left on device".to_string());
        record_failure(&pipeline, "inc-1", &error, Duration::ZERO);

        let mut state = pipeline.log.state();
        assert_eq!(state.duplicate_of("key-1", now), None);
        assert_eq!(state.incident_of("fp1"), None);
    }

    #[test]
    fn repeated_failures_until_success_set_failing_reason() {
        let dir = tempfile::tempdir().unwrap();
        let pipeline = pipeline(dir.path());
        let error = CaptureError::Panicked("No space left on device".to_string());
        for attempt in 1..MAX_CONSECUTIVE_FAILURES {
            record_failure(&pipeline, &format!("inc-{attempt}"), &error, Duration::ZERO);
            assert_eq!(pipeline.status.failing_reason(), None);
        }
        record_failure(&pipeline, "inc-last", &error, Duration::ZERO);
        assert_eq!(
            pipeline.status.failing_reason().as_deref(),
            Some("capture panicked: No space left on device")
        );

        run_job(&pipeline, manual_job("inc-ok"));
        assert_eq!(pipeline.status.consecutive_failures(), 0);
        assert_eq!(pipeline.status.failing_reason(), None);
    }

    #[test]
    fn captured_job_removes_pending_and_notes_size() {
        let dir = tempfile::tempdir().unwrap();
        let pipeline = pipeline(dir.path());
        let job = manual_job("inc-1");
        pipeline
            .pending
            .save(&crate::pending::PendingJob::of(&job))
            .unwrap();

        run_job(&pipeline, job);

        assert!(!pipeline.pending.contains("inc-1"));
        let bundles = pipeline.store.list().unwrap();
        assert_eq!(bundles.len(), 1);
        assert_eq!(pipeline.space.required_bytes(), 2 * bundles[0].bytes);
    }

    #[test]
    fn status_reports_running_threads() {
        let status = WorkerStatus::default();
        assert!(!status.is_running());
        status.running_threads.fetch_add(1, Ordering::SeqCst);
        assert!(status.is_running());
        status.begin_stop();
        assert!(!status.is_running());
    }
}
