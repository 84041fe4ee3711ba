//! Background delivery of Slack messages from the outbox.
//!
//! [`NotifierHandle::enqueue`] writes a message to the outbox and wakes one tokio task, which
//! posts the pending messages oldest first with at least `min_interval` between two requests.
//! Each response decides what happens next:
//!
//! | Response | Result label | Next step |
//! | --- | --- | --- |
//! | 2xx | `ok` | file removed |
//! | 429 | `rate_limited` | wait `Retry-After` (capped, plus jitter), retry |
//! | 5xx, 408, timeout, transport error | `error` | exponential backoff, retry |
//! | other 4xx (400, 403, 404, 410, ...) | `rejected` | logged with Slack's error text, file moved to `rejected/` |
//!
//! A message that used up `max_attempts` moves to `failed/`. After a cool-down
//! ([`FAILED_REQUEUE_INTERVAL`], 5 minutes by default) every message there goes back into the
//! queue in its old place, so an outage longer than the retry budget still ends in delivery
//! without a restart. Every attempt is counted in `aegisir_slack_notifications_total{result}`;
//! with no webhook URL each enqueued message counts once as `skipped`.

use std::collections::HashSet;
use std::error::Error as _;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use tokio::sync::Notify;
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use super::outbox::Outbox;
use super::{install_crypto_provider, Message, SlackError, SlackSettings};
use crate::metrics::Metrics;

/// Shortest first backoff step, used when `min_interval` is shorter.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Maximum bytes of Slack's error body kept for the log.
const MAX_ERROR_TEXT: usize = 512;
/// Wait before reading the outbox again after it could not be read.
const OUTBOX_RETRY: Duration = Duration::from_secs(5);
/// Default wait between a message moving to `failed/` and the messages there going back into
/// the queue. With the default settings one message spends 1 + 2 + 4 + 8 + 16 s backing off.
/// The cool-down is about ten times that, so an unreachable Slack gets one round of six
/// requests per message every five minutes or so.
pub const FAILED_REQUEUE_INTERVAL: Duration = Duration::from_secs(300);

/// Tuning of the delivery task that is not a user setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifierOptions {
    /// Wait after a message moved to `failed/` before every message there goes back into the
    /// queue.
    pub failed_requeue_interval: Duration,
}

impl Default for NotifierOptions {
    fn default() -> Self {
        NotifierOptions {
            failed_requeue_interval: FAILED_REQUEUE_INTERVAL,
        }
    }
}

/// Starts background delivery of Slack messages.
pub struct Notifier;

impl Notifier {
    /// Opens the outbox at `outbox_dir` and spawns the delivery task, which first delivers any
    /// messages a previous run left there. Must be called inside a tokio runtime. With no
    /// webhook URL nothing is opened or spawned and every enqueued message is skipped.
    pub fn start(
        settings: SlackSettings,
        outbox_dir: PathBuf,
        metrics: Metrics,
    ) -> Result<NotifierHandle, SlackError> {
        Notifier::start_with(settings, outbox_dir, metrics, NotifierOptions::default())
    }

    /// Starts delivery like [`Notifier::start`], with `options` in place of the defaults.
    pub fn start_with(
        settings: SlackSettings,
        outbox_dir: PathBuf,
        metrics: Metrics,
        options: NotifierOptions,
    ) -> Result<NotifierHandle, SlackError> {
        let Some(url) = settings.webhook_url.as_deref() else {
            return Ok(NotifierHandle::unconfigured(metrics));
        };
        let url = WebhookUrl::parse(url)?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| SlackError::NoRuntime)?;
        let outbox = Arc::new(Outbox::open(outbox_dir)?);
        let client = build_client(&settings)?;
        let wake = Arc::new(Notify::new());

        let delivery = Delivery {
            settings,
            options,
            url,
            client,
            outbox: Arc::clone(&outbox),
            metrics: metrics.clone(),
            wake: Arc::clone(&wake),
            last_attempt: None,
            requeue_at: None,
            stuck: HashSet::new(),
        };
        runtime.spawn(delivery.run());

        Ok(NotifierHandle {
            inner: Arc::new(HandleInner {
                outbox: Some(outbox),
                wake,
                metrics,
            }),
        })
    }
}

/// Queues messages for the delivery task; cheap to clone.
#[derive(Clone)]
pub struct NotifierHandle {
    inner: Arc<HandleInner>,
}

struct HandleInner {
    /// `None` when no webhook URL is configured.
    outbox: Option<Arc<Outbox>>,
    wake: Arc<Notify>,
    metrics: Metrics,
}

impl NotifierHandle {
    fn unconfigured(metrics: Metrics) -> NotifierHandle {
        NotifierHandle {
            inner: Arc::new(HandleInner {
                outbox: None,
                wake: Arc::new(Notify::new()),
                metrics,
            }),
        }
    }

    /// Writes `message` to the outbox and wakes the delivery task. Returns once the message
    /// is on disk, long before it reaches Slack. Without a webhook URL the message is counted
    /// as `skipped` and dropped.
    pub fn enqueue(&self, message: Message) -> Result<(), SlackError> {
        let metrics = &self.inner.metrics;
        let Some(outbox) = &self.inner.outbox else {
            metrics
                .slack_notifications_total
                .with_label_values(&["skipped"])
                .inc();
            debug!("Slack is not configured; notification skipped");
            return Ok(());
        };

        let body = serde_json::to_vec(&message)?;
        let path = outbox.push(&body)?;
        metrics.slack_outbox_depth.inc();
        self.inner.wake.notify_one();
        debug!(file = %path.display(), "Slack notification queued");
        Ok(())
    }

    pub fn is_configured(&self) -> bool {
        self.inner.outbox.is_some()
    }

    /// Returns the outbox directory, or `None` when no webhook URL is configured.
    pub fn outbox_dir(&self) -> Option<&Path> {
        self.inner.outbox.as_deref().map(Outbox::dir)
    }
}

impl fmt::Debug for NotifierHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NotifierHandle")
            .field("outbox_dir", &self.outbox_dir())
            .finish()
    }
}

/// The webhook URL, which is a secret: `Debug` shows only that it is set.
#[derive(Clone)]
struct WebhookUrl(Url);

impl WebhookUrl {
    fn parse(text: &str) -> Result<WebhookUrl, SlackError> {
        let url = Url::parse(text.trim()).map_err(|error| SlackError::InvalidWebhookUrl {
            reason: error.to_string(),
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(SlackError::InvalidWebhookUrl {
                reason: format!("scheme {} is not supported", url.scheme()),
            });
        }
        Ok(WebhookUrl(url))
    }

    /// Replaces the URL, and its path on its own, wherever they appear in `text`.
    fn redact(&self, text: &str) -> String {
        let mut redacted = text.replace(self.0.as_str(), "<webhook URL>");
        let path = self.0.path();
        if path.len() > 1 {
            redacted = redacted.replace(path, "<webhook path>");
        }
        redacted
    }
}

impl fmt::Debug for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookUrl(<redacted>)")
    }
}

fn build_client(settings: &SlackSettings) -> Result<reqwest::Client, SlackError> {
    install_crypto_provider();
    reqwest::Client::builder()
        .timeout(settings.request_timeout)
        .connect_timeout(settings.request_timeout)
        // Slack's webhooks never redirect; following one could send the message elsewhere.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|error| SlackError::Client {
            reason: describe_error(&error.without_url()),
        })
}

/// The outcome of one request to Slack.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Delivered,
    RateLimited {
        retry_after: Option<Duration>,
    },
    Rejected {
        status: StatusCode,
        error_text: String,
    },
    Failed {
        reason: String,
    },
}

impl Outcome {
    /// Returns the `result` label of `slack_notifications_total`.
    fn result_label(&self) -> &'static str {
        match self {
            Outcome::Delivered => "ok",
            Outcome::RateLimited { .. } => "rate_limited",
            Outcome::Rejected { .. } => "rejected",
            Outcome::Failed { .. } => "error",
        }
    }
}

/// Returns the outcome of a response with `status`; `error_text` is the response body.
fn classify(status: StatusCode, retry_after: Option<Duration>, error_text: String) -> Outcome {
    if status.is_success() {
        Outcome::Delivered
    } else if status == StatusCode::TOO_MANY_REQUESTS {
        Outcome::RateLimited { retry_after }
    } else if status.is_client_error() && status != StatusCode::REQUEST_TIMEOUT {
        Outcome::Rejected { status, error_text }
    } else {
        Outcome::Failed {
            reason: format!("HTTP {status}: {error_text}"),
        }
    }
}

/// Reads `Retry-After` as whole seconds, the form Slack sends.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// Returns the backoff before attempt `attempt + 1`: `base` doubled for each earlier
/// attempt, at most `cap`.
fn backoff(base: Duration, attempt: u32, cap: Duration) -> Duration {
    let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
    base.max(MIN_BACKOFF).saturating_mul(factor).min(cap)
}

/// Adds up to a tenth of `wait` at random, so that many senders do not retry in step.
fn with_jitter(wait: Duration) -> Duration {
    let max_jitter_ms = (wait.as_millis() / 10) as u64;
    wait + Duration::from_millis(fastrand::u64(0..=max_jitter_ms))
}

/// Describes a reqwest error with its causes. Call it on `error.without_url()`.
fn describe_error(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}

/// The delivery task's state.
struct Delivery {
    settings: SlackSettings,
    options: NotifierOptions,
    url: WebhookUrl,
    client: reqwest::Client,
    outbox: Arc<Outbox>,
    metrics: Metrics,
    wake: Arc<Notify>,
    /// When the last request started, for pacing.
    last_attempt: Option<Instant>,
    /// When the messages in `failed/` go back into the queue; `None` while none are waiting.
    requeue_at: Option<Instant>,
    /// Files that are done with but could not be removed from the queue. They are skipped
    /// until the next start, so that a read-only outbox cannot resend one message forever.
    stuck: HashSet<PathBuf>,
}

impl Delivery {
    async fn run(mut self) {
        let pending = self.outbox.pending().map(|files| files.len()).unwrap_or(0);
        info!(
            pending,
            outbox = %self.outbox.dir().display(),
            "Slack notifier started"
        );

        loop {
            self.requeue_failed_if_due();
            match self.outbox.pending() {
                Ok(files) => {
                    let queued: Vec<&PathBuf> = files
                        .iter()
                        .filter(|path| !self.stuck.contains(*path))
                        .collect();
                    // Messages in failed/ still wait for their retry, so they count too.
                    let failed = self.outbox.failed().map_or(0, |files| files.len());
                    let depth = queued.len() + failed;
                    self.metrics.slack_outbox_depth.set(depth as i64);
                    match queued.first() {
                        Some(path) => self.deliver(path).await,
                        None => self.wait_for_work().await,
                    }
                }
                Err(error) => {
                    let retry_secs = OUTBOX_RETRY.as_secs();
                    error!(%error, retry_secs, "failed to read the Slack outbox");
                    tokio::time::sleep(OUTBOX_RETRY).await;
                }
            }
        }
    }

    /// Waits until a message is enqueued or the messages in `failed/` are due again.
    async fn wait_for_work(&self) {
        match self.requeue_at {
            Some(deadline) => {
                // Timing out is the expected way to reach the deadline.
                let _ = tokio::time::timeout_at(deadline, self.wake.notified()).await;
            }
            None => self.wake.notified().await,
        }
    }

    /// Moves the messages in `failed/` back into the queue once their cool-down has passed.
    fn requeue_failed_if_due(&mut self) {
        let Some(deadline) = self.requeue_at else {
            return;
        };
        if Instant::now() < deadline {
            return;
        }

        self.requeue_at = None;
        match self.outbox.requeue_failed() {
            Ok(0) => {}
            Ok(requeued) => warn!(requeued, "retrying Slack messages from failed/"),
            Err(error) => {
                let retry_secs = self.options.failed_requeue_interval.as_secs();
                error!(%error, retry_secs, "failed to move Slack messages out of failed/");
                self.schedule_requeue();
            }
        }
    }

    /// Sets the time the messages in `failed/` go back into the queue, unless one is set.
    fn schedule_requeue(&mut self) {
        let interval = self.options.failed_requeue_interval;
        self.requeue_at
            .get_or_insert_with(|| Instant::now() + interval);
    }

    /// Delivers one outbox file, retrying as its responses allow, and then removes it or moves
    /// it to `rejected/` or `failed/`.
    async fn deliver(&mut self, path: &Path) {
        let Some(body) = self.read_message(path) else {
            return;
        };

        let max_attempts = self.settings.max_attempts.max(1);
        let mut attempt = 0;
        let last_reason = loop {
            attempt += 1;
            self.pace().await;
            let outcome = self.post(body.clone()).await;
            self.count(outcome.result_label());

            let (requested_wait, reason) = match outcome {
                Outcome::Delivered => return self.finish_delivered(path, attempt),
                Outcome::Rejected { status, error_text } => {
                    return self.finish_rejected(path, status, &error_text)
                }
                Outcome::RateLimited { retry_after } => {
                    let requested = retry_after.unwrap_or_else(|| self.backoff(attempt));
                    (requested, "HTTP 429 Too Many Requests".to_string())
                }
                Outcome::Failed { reason } => (self.backoff(attempt), reason),
            };
            if attempt >= max_attempts {
                break reason;
            }

            let wait = with_jitter(requested_wait.min(self.settings.retry_after_cap));
            self.metrics.slack_retries_total.inc();
            warn!(
                file = %path.display(),
                attempt,
                max_attempts,
                %reason,
                wait_ms = wait.as_millis() as u64,
                "Slack delivery failed; retrying"
            );
            tokio::time::sleep(wait).await;
        };
        self.finish_failed(path, attempt, &last_reason);
    }

    fn count(&self, result: &str) {
        self.metrics
            .slack_notifications_total
            .with_label_values(&[result])
            .inc();
    }

    /// Reads a message file; one that is unreadable or not JSON counts as `rejected` and moves
    /// to `rejected/`.
    fn read_message(&mut self, path: &Path) -> Option<Vec<u8>> {
        let problem = match std::fs::read(path) {
            Ok(body) => match serde_json::from_slice::<serde_json::Value>(&body) {
                Ok(_) => return Some(body),
                Err(error) => format!("not valid JSON: {error}"),
            },
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return None,
            Err(error) => format!("unreadable: {error}"),
        };

        error!(file = %path.display(), %problem, "Slack outbox file moved to rejected/");
        self.count("rejected");
        self.after_move(path, self.outbox.reject(path));
        None
    }

    /// Waits until `min_interval` has passed since the previous request started.
    async fn pace(&mut self) {
        if let Some(last) = self.last_attempt {
            tokio::time::sleep_until(last + self.settings.min_interval).await;
        }
        self.last_attempt = Some(Instant::now());
    }

    fn backoff(&self, attempt: u32) -> Duration {
        backoff(
            self.settings.min_interval,
            attempt,
            self.settings.retry_after_cap,
        )
    }

    /// Posts one message body and returns the outcome of Slack's response.
    async fn post(&self, body: Vec<u8>) -> Outcome {
        let sent = self
            .client
            .post(self.url.0.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(error) => {
                let reason = self.url.redact(&describe_error(&error.without_url()));
                return Outcome::Failed { reason };
            }
        };

        let status = response.status();
        let retry_after = retry_after(response.headers());
        let error_text = if status.is_success() {
            String::new()
        } else {
            self.read_error_text(response).await
        };
        classify(status, retry_after, error_text)
    }

    /// Reads at most 512 bytes of an error response, which for Slack is a word such as
    /// `invalid_blocks`.
    async fn read_error_text(&self, mut response: reqwest::Response) -> String {
        let mut bytes = Vec::new();
        while bytes.len() < MAX_ERROR_TEXT {
            match response.chunk().await {
                Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
                Ok(None) => break,
                Err(error) => {
                    let reason = describe_error(&error.without_url());
                    return self
                        .url
                        .redact(&format!("(failed to read the body: {reason})"));
                }
            }
        }
        bytes.truncate(MAX_ERROR_TEXT);
        let text = String::from_utf8_lossy(&bytes);
        self.url.redact(text.trim())
    }

    fn finish_delivered(&mut self, path: &Path, attempt: u32) {
        debug!(file = %path.display(), attempt, "Slack notification delivered");
        if let Err(error) = self.outbox.remove(path) {
            error!(
                %error,
                "failed to remove a delivered Slack message; it is sent again after a restart"
            );
            self.stuck.insert(path.to_path_buf());
        }
    }

    fn finish_rejected(&mut self, path: &Path, status: StatusCode, error_text: &str) {
        error!(
            file = %path.display(),
            status = status.as_u16(),
            slack_error = %error_text,
            "Slack rejected the notification; not retrying, moved to rejected/"
        );
        self.after_move(path, self.outbox.reject(path));
    }

    fn finish_failed(&mut self, path: &Path, attempts: u32, last_reason: &str) {
        self.schedule_requeue();
        let requeue_in_secs = self.requeue_at.map_or(0, |at| {
            at.saturating_duration_since(Instant::now()).as_secs()
        });
        error!(
            file = %path.display(),
            attempts,
            reason = %last_reason,
            requeue_in_secs,
            "Slack delivery failed on every attempt; moved to failed/ to be retried later"
        );
        self.after_move(path, self.outbox.fail(path));
    }

    /// Handles a failed move out of the queue by removing the file, so that one bad file
    /// cannot block every later message. Its text is then lost. A file that cannot be removed
    /// either is skipped until the next start.
    fn after_move(&mut self, path: &Path, moved: Result<PathBuf, SlackError>) {
        let Err(error) = moved else {
            return;
        };
        error!(%error, "failed to move a Slack outbox file aside; removing it");
        if let Err(error) = self.outbox.remove(path) {
            error!(%error, "failed to remove a Slack outbox file; skipping it until a restart");
            self.stuck.insert(path.to_path_buf());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use serde_json::json;

    use super::*;
    use crate::slack::slack_mock::{Reply, SlackMock, WEBHOOK_SECRET};

    const WAIT: Duration = Duration::from_secs(10);

    /// Runs the tests that start a notifier one at a time. tracing caches whether a log
    /// line is enabled when another thread first reaches it, which can hide lines from the
    /// log-capturing test, and timing checks are steadier without competition.
    static DELIVERY_TESTS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

    fn fast_settings(url: &str) -> SlackSettings {
        SlackSettings {
            webhook_url: Some(url.to_string()),
            external_url: None,
            min_interval: Duration::from_millis(10),
            max_attempts: 5,
            retry_after_cap: Duration::from_secs(3),
            request_timeout: Duration::from_secs(2),
        }
    }

    fn message(text: &str) -> Message {
        Message {
            text: text.to_string(),
            blocks: vec![json!({ "type": "section", "text": { "type": "mrkdwn", "text": text } })],
        }
    }

    fn count(metrics: &Metrics, result: &str) -> u64 {
        metrics
            .slack_notifications_total
            .with_label_values(&[result])
            .get()
    }

    fn start(settings: SlackSettings, dir: &Path) -> (NotifierHandle, Metrics) {
        let metrics = Metrics::new();
        let handle = Notifier::start(settings, dir.join("outbox"), metrics.clone()).unwrap();
        (handle, metrics)
    }

    fn start_requeueing_after(
        interval: Duration,
        settings: SlackSettings,
        dir: &Path,
    ) -> (NotifierHandle, Metrics) {
        let metrics = Metrics::new();
        let options = NotifierOptions {
            failed_requeue_interval: interval,
        };
        let outbox = dir.join("outbox");
        let handle = Notifier::start_with(settings, outbox, metrics.clone(), options).unwrap();
        (handle, metrics)
    }

    /// Polls `condition` every 10 ms until it is true or `WAIT` passes, and returns its last value.
    async fn eventually(condition: impl Fn() -> bool) -> bool {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if condition() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        condition()
    }

    /// Lists the message files in `<dir>/outbox/<sub>` without opening the outbox, which
    /// would move `failed/` back into the queue.
    fn outbox_files(dir: &Path, sub: &str) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("outbox").join(sub))
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| {
                path.extension()
                    .is_some_and(|extension| extension == "json")
            })
            .collect();
        files.sort();
        files
    }

    fn pending_count(dir: &Path) -> usize {
        outbox_files(dir, "").len()
    }

    /// Returns a loopback URL on which nothing listens, so connecting fails at once.
    fn closed_port_url() -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        format!("http://127.0.0.1:{port}/services/T0MOCK/B0MOCK/{WEBHOOK_SECRET}")
    }

    #[tokio::test]
    async fn rate_limited_message_waits_for_retry_after() {
        let _serial = DELIVERY_TESTS.lock().await;
        let slack = SlackMock::start_with([Reply::RateLimited {
            retry_after_secs: 1,
        }])
        .await;
        let dir = tempfile::tempdir().unwrap();
        let (handle, metrics) = start(fast_settings(&slack.url()), dir.path());

        handle.enqueue(message("after the wait")).unwrap();

        let requests = slack.wait_for_requests(2, WAIT).await;
        assert_eq!(requests.len(), 2);
        let gap = requests[1].received_at - requests[0].received_at;
        assert!(
            gap >= Duration::from_secs(1),
            "retried after {gap:?}, before Retry-After"
        );
        assert!(
            gap < Duration::from_millis(2500),
            "retried only after {gap:?}"
        );
        assert_eq!(requests[0].body, requests[1].body);
        assert_eq!(requests[1].json()["text"], "after the wait");
        assert_eq!(
            requests[1].content_type.as_deref(),
            Some("application/json")
        );
        assert_eq!(requests[1].method, "POST");
        assert!(eventually(|| pending_count(dir.path()) == 0).await);
        assert_eq!(slack.messages().len(), 1);
        assert_eq!(count(&metrics, "rate_limited"), 1);
        assert_eq!(count(&metrics, "ok"), 1);
        assert_eq!(metrics.slack_retries_total.get(), 1);
    }

    #[tokio::test]
    async fn server_errors_retry_with_backoff_until_delivered() {
        let _serial = DELIVERY_TESTS.lock().await;
        let script = [
            Reply::server_error(),
            Reply::server_error(),
            Reply::server_error(),
        ];
        let slack = SlackMock::start_with(script).await;
        let dir = tempfile::tempdir().unwrap();
        let (handle, metrics) = start(fast_settings(&slack.url()), dir.path());

        handle.enqueue(message("eventually")).unwrap();

        let requests = slack.wait_for_requests(4, WAIT).await;
        assert_eq!(requests.len(), 4);
        for (index, expected_ms) in [(1, 100), (2, 200), (3, 400)] {
            let gap = requests[index].received_at - requests[index - 1].received_at;
            assert!(
                gap >= Duration::from_millis(expected_ms),
                "attempt {index} after {gap:?}"
            );
        }
        assert!(eventually(|| pending_count(dir.path()) == 0).await);
        assert_eq!(slack.messages().len(), 1);
        assert_eq!(count(&metrics, "error"), 3);
        assert_eq!(count(&metrics, "ok"), 1);
        assert_eq!(metrics.slack_retries_total.get(), 3);
    }

    #[tokio::test]
    async fn invalid_blocks_is_not_retried() {
        let _serial = DELIVERY_TESTS.lock().await;
        let slack = SlackMock::start_with([Reply::invalid_blocks()]).await;
        let dir = tempfile::tempdir().unwrap();
        let (handle, metrics) = start(fast_settings(&slack.url()), dir.path());
        let rejected_message = message("too big");

        handle.enqueue(rejected_message.clone()).unwrap();

        assert!(eventually(|| outbox_files(dir.path(), "rejected").len() == 1).await);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(slack.requests().len(), 1, "a rejected message was retried");
        let kept = std::fs::read(&outbox_files(dir.path(), "rejected")[0]).unwrap();
        assert_eq!(
            serde_json::from_slice::<Message>(&kept).unwrap(),
            rejected_message
        );
        assert_eq!(pending_count(dir.path()), 0);
        assert_eq!(count(&metrics, "rejected"), 1);
        assert_eq!(count(&metrics, "ok"), 0);
        assert_eq!(metrics.slack_retries_total.get(), 0);
    }

    #[tokio::test]
    async fn client_errors_are_not_retried() {
        let _serial = DELIVERY_TESTS.lock().await;
        for status in [403, 404, 410] {
            let reply = Reply::Error {
                status,
                body: "no_service",
            };
            let slack = SlackMock::start_with([reply]).await;
            let dir = tempfile::tempdir().unwrap();
            let (handle, metrics) = start(fast_settings(&slack.url()), dir.path());

            handle.enqueue(message("gone")).unwrap();

            let landed = eventually(|| outbox_files(dir.path(), "rejected").len() == 1).await;
            assert!(landed, "HTTP {status} did not land in rejected/");
            assert_eq!(slack.requests().len(), 1, "HTTP {status} was retried");
            assert_eq!(count(&metrics, "rejected"), 1, "HTTP {status}");
        }
    }

    #[tokio::test]
    async fn exhausted_attempts_move_message_to_failed() {
        let _serial = DELIVERY_TESTS.lock().await;
        let slack = SlackMock::start_with([Reply::server_error(), Reply::server_error()]).await;
        let dir = tempfile::tempdir().unwrap();
        let settings = SlackSettings {
            max_attempts: 2,
            ..fast_settings(&slack.url())
        };
        let (handle, metrics) = start(settings, dir.path());

        handle.enqueue(message("never")).unwrap();

        assert!(eventually(|| outbox_files(dir.path(), "failed").len() == 1).await);
        assert_eq!(slack.requests().len(), 2);
        assert_eq!(pending_count(dir.path()), 0);
        assert_eq!(count(&metrics, "error"), 2);
        assert_eq!(metrics.slack_retries_total.get(), 1);
    }

    #[tokio::test]
    async fn failed_messages_are_retried_after_cooldown_in_order() {
        let _serial = DELIVERY_TESTS.lock().await;
        // Two attempts each for two messages fail, then Slack accepts everything.
        let slack = SlackMock::start_with([
            Reply::server_error(),
            Reply::server_error(),
            Reply::server_error(),
            Reply::server_error(),
        ])
        .await;
        let dir = tempfile::tempdir().unwrap();
        let settings = SlackSettings {
            max_attempts: 2,
            ..fast_settings(&slack.url())
        };
        let cooldown = Duration::from_millis(400);
        let (handle, metrics) = start_requeueing_after(cooldown, settings, dir.path());

        handle.enqueue(message("first")).unwrap();
        handle.enqueue(message("second")).unwrap();

        assert!(eventually(|| outbox_files(dir.path(), "failed").len() == 2).await);
        let delivered = slack.wait_for_messages(2, WAIT).await;
        let texts: Vec<String> = delivered
            .iter()
            .map(|body| serde_json::from_str::<Message>(body).unwrap().text)
            .collect();
        assert_eq!(texts, vec!["first", "second"]);
        let requests = slack.requests();
        assert_eq!(requests.len(), 6);
        // The cool-down starts when the first message moves to failed/, after request 2.
        let cooled_for = requests[4].received_at - requests[1].received_at;
        assert!(cooled_for >= cooldown, "retried after {cooled_for:?}");
        assert_eq!(requests[4].json()["text"], "first");
        assert!(eventually(|| pending_count(dir.path()) == 0).await);
        assert!(outbox_files(dir.path(), "failed").is_empty());
        assert_eq!(count(&metrics, "error"), 4);
        assert_eq!(count(&metrics, "ok"), 2);
    }

    #[tokio::test]
    async fn failed_message_waits_for_cooldown() {
        let _serial = DELIVERY_TESTS.lock().await;
        let slack = SlackMock::start_with([Reply::server_error()]).await;
        let dir = tempfile::tempdir().unwrap();
        let settings = SlackSettings {
            max_attempts: 1,
            ..fast_settings(&slack.url())
        };
        let (handle, _) = start_requeueing_after(Duration::from_secs(30), settings, dir.path());

        handle.enqueue(message("later")).unwrap();

        assert!(eventually(|| outbox_files(dir.path(), "failed").len() == 1).await);
        handle.enqueue(message("newer")).unwrap();
        assert_eq!(slack.wait_for_messages(1, WAIT).await.len(), 1);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            slack.requests().len(),
            2,
            "the failed message was retried early"
        );
        assert_eq!(outbox_files(dir.path(), "failed").len(), 1);
    }

    #[test]
    fn default_requeue_interval_is_five_minutes() {
        assert_eq!(
            NotifierOptions::default().failed_requeue_interval,
            Duration::from_secs(300)
        );
    }

    #[tokio::test]
    async fn timed_out_request_is_retried() {
        let _serial = DELIVERY_TESTS.lock().await;
        let slack = SlackMock::start_with([Reply::Stall(Duration::from_secs(3))]).await;
        let dir = tempfile::tempdir().unwrap();
        let settings = SlackSettings {
            request_timeout: Duration::from_millis(300),
            ..fast_settings(&slack.url())
        };
        let (handle, metrics) = start(settings, dir.path());

        handle.enqueue(message("slow")).unwrap();

        let delivered = slack.wait_for_messages(1, WAIT).await;
        assert_eq!(delivered.len(), 1);
        assert_eq!(slack.requests().len(), 2);
        assert!(eventually(|| pending_count(dir.path()) == 0).await);
        assert_eq!(count(&metrics, "error"), 1);
        assert_eq!(count(&metrics, "ok"), 1);
    }

    #[tokio::test]
    async fn messages_are_delivered_in_order_and_paced() {
        let _serial = DELIVERY_TESTS.lock().await;
        let slack = SlackMock::start().await;
        let dir = tempfile::tempdir().unwrap();
        let settings = SlackSettings {
            min_interval: Duration::from_millis(150),
            ..fast_settings(&slack.url())
        };
        let (handle, metrics) = start(settings, dir.path());

        for text in ["first", "second", "third"] {
            handle.enqueue(message(text)).unwrap();
        }

        let requests = slack.wait_for_requests(3, WAIT).await;
        let texts: Vec<String> = requests
            .iter()
            .map(|r| r.json()["text"].to_string())
            .collect();
        assert_eq!(texts, vec!["\"first\"", "\"second\"", "\"third\""]);
        for pair in requests.windows(2) {
            let gap = pair[1].received_at - pair[0].received_at;
            assert!(
                gap >= Duration::from_millis(140),
                "two requests {gap:?} apart"
            );
        }
        assert!(eventually(|| metrics.slack_outbox_depth.get() == 0).await);
    }

    #[test]
    fn restart_delivers_pending_outbox() {
        let _serial = DELIVERY_TESTS.blocking_lock();
        let dir = tempfile::tempdir().unwrap();

        // First run: Slack cannot be reached, so both messages stay in the outbox.
        let first_run = tokio::runtime::Runtime::new().unwrap();
        first_run.block_on(async {
            let settings = SlackSettings {
                max_attempts: 100,
                ..fast_settings(&closed_port_url())
            };
            let (handle, _) = start(settings, dir.path());
            handle.enqueue(message("queued first")).unwrap();
            handle.enqueue(message("queued second")).unwrap();
            tokio::time::sleep(Duration::from_millis(300)).await;
        });
        drop(first_run);
        assert_eq!(pending_count(dir.path()), 2);

        // Second run: Slack is back, and the notifier delivers what the first run left.
        let second_run = tokio::runtime::Runtime::new().unwrap();
        second_run.block_on(async {
            let slack = SlackMock::start().await;
            let (_handle, metrics) = start(fast_settings(&slack.url()), dir.path());

            let delivered = slack.wait_for_messages(2, WAIT).await;

            let texts: Vec<String> = delivered
                .iter()
                .map(|body| serde_json::from_str::<Message>(body).unwrap().text)
                .collect();
            assert_eq!(texts, vec!["queued first", "queued second"]);
            assert!(eventually(|| pending_count(dir.path()) == 0).await);
            assert_eq!(count(&metrics, "ok"), 2);
        });
    }

    #[tokio::test]
    async fn unconfigured_notifier_sends_nothing() {
        let _serial = DELIVERY_TESTS.lock().await;
        let slack = SlackMock::start().await;
        let dir = tempfile::tempdir().unwrap();
        let settings = SlackSettings {
            webhook_url: None,
            ..fast_settings(&slack.url())
        };
        let (handle, metrics) = start(settings, dir.path());

        handle.enqueue(message("nowhere")).unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;

        assert!(!handle.is_configured());
        assert_eq!(handle.outbox_dir(), None);
        assert!(!dir.path().join("outbox").exists());
        assert!(slack.requests().is_empty());
        assert_eq!(count(&metrics, "skipped"), 1);
    }

    #[test]
    fn start_outside_runtime_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let settings = fast_settings(&closed_port_url());

        let error =
            Notifier::start(settings, dir.path().join("outbox"), Metrics::new()).unwrap_err();

        assert!(matches!(error, SlackError::NoRuntime), "{error}");
    }

    /// Collects everything a tracing subscriber writes.
    #[derive(Clone, Default)]
    struct LogBuffer(Arc<Mutex<Vec<u8>>>);

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

    impl LogBuffer {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
        }
    }

    #[tokio::test]
    async fn outbox_depth_counts_failed_messages() {
        let _serial = DELIVERY_TESTS.lock().await;
        let dir = tempfile::tempdir().unwrap();
        let settings = SlackSettings {
            max_attempts: 1,
            ..fast_settings(&closed_port_url())
        };
        let (notifier, metrics) = start(settings, dir.path());

        notifier.enqueue(message("unreachable")).unwrap();

        assert!(eventually(|| outbox_files(dir.path(), "failed").len() == 1).await);
        assert!(eventually(|| metrics.slack_outbox_depth.get() == 1).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(metrics.slack_outbox_depth.get(), 1);
    }

    #[tokio::test]
    async fn webhook_url_never_appears_in_logs() {
        let _serial = DELIVERY_TESTS.lock().await;
        let logs = LogBuffer::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(logs.clone())
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let slack = SlackMock::start_with([Reply::server_error(), Reply::invalid_blocks()]).await;
        let dir = tempfile::tempdir().unwrap();
        let (reachable, _) = start(fast_settings(&slack.url()), &dir.path().join("a"));
        let unreachable_settings = SlackSettings {
            max_attempts: 2,
            ..fast_settings(&closed_port_url())
        };
        let (unreachable, _) = start(unreachable_settings, &dir.path().join("b"));

        reachable.enqueue(message("rejected")).unwrap();
        unreachable.enqueue(message("unreachable")).unwrap();
        assert!(eventually(|| outbox_files(&dir.path().join("a"), "rejected").len() == 1).await);
        assert!(eventually(|| outbox_files(&dir.path().join("b"), "failed").len() == 1).await);

        let text = logs.text();
        assert!(
            text.contains("invalid_blocks"),
            "Slack's error text is not logged: {text}"
        );
        assert!(text.contains("HTTP 500"), "the 5xx is not logged: {text}");
        assert!(
            text.contains("Connection refused"),
            "the transport error is not logged: {text}"
        );
        assert!(
            !text.contains(WEBHOOK_SECRET),
            "the webhook URL was logged: {text}"
        );
        assert!(
            !text.contains("/services/"),
            "the webhook path was logged: {text}"
        );
        assert!(!format!("{reachable:?}").contains(WEBHOOK_SECRET));
    }

    #[tokio::test]
    async fn transport_error_text_has_no_url() {
        let url = closed_port_url();
        let client = build_client(&fast_settings(&url)).unwrap();

        let error = client.post(&url).body("{}").send().await.unwrap_err();

        let text = describe_error(&error.without_url());
        assert!(text.contains("Connection refused"), "{text}");
        assert!(!text.contains(WEBHOOK_SECRET), "{text}");
        assert!(!text.contains("127.0.0.1"), "{text}");
    }

    #[test]
    fn invalid_webhook_url_error_has_no_url() {
        let cases = [
            format!("hooks.slack.com/services/T0/B0/{WEBHOOK_SECRET}"),
            format!("ftp://hooks.slack.com/services/T0/B0/{WEBHOOK_SECRET}"),
            format!("https://hooks slack com/{WEBHOOK_SECRET}"),
        ];
        for url in cases {
            let error = WebhookUrl::parse(&url).unwrap_err();

            let text = error.to_string();
            assert!(text.starts_with("invalid Slack webhook URL"), "{text}");
            assert!(!text.contains(WEBHOOK_SECRET), "{text}");
            assert!(!format!("{error:?}").contains(WEBHOOK_SECRET), "{error:?}");
        }
    }

    #[test]
    fn webhook_url_redacts_itself_and_its_path() {
        let url = WebhookUrl::parse(&format!(
            "https://hooks.slack.com/services/T/B/{WEBHOOK_SECRET}"
        ))
        .unwrap();

        let text = url.redact(&format!(
            "failed for https://hooks.slack.com/services/T/B/{WEBHOOK_SECRET} and /services/T/B/{WEBHOOK_SECRET}"
        ));

        assert_eq!(text, "failed for <webhook URL> and <webhook path>");
        assert_eq!(format!("{url:?}"), "WebhookUrl(<redacted>)");
    }

    #[test]
    fn classify_maps_statuses_to_outcomes() {
        let delivered = [200, 204];
        let rejected = [400, 401, 403, 404, 410, 413];
        let failed = [408, 500, 502, 503];
        for code in delivered {
            let outcome = classify(StatusCode::from_u16(code).unwrap(), None, String::new());
            assert_eq!(outcome, Outcome::Delivered, "{code}");
        }
        for code in rejected {
            let outcome = classify(
                StatusCode::from_u16(code).unwrap(),
                None,
                "invalid_blocks".into(),
            );
            assert_eq!(outcome.result_label(), "rejected", "{code}");
        }
        for code in failed {
            let outcome = classify(StatusCode::from_u16(code).unwrap(), None, "oops".into());
            assert_eq!(outcome.result_label(), "error", "{code}");
        }
        let limited = classify(
            StatusCode::TOO_MANY_REQUESTS,
            Some(Duration::from_secs(4)),
            String::new(),
        );
        assert_eq!(
            limited,
            Outcome::RateLimited {
                retry_after: Some(Duration::from_secs(4))
            }
        );
    }

    #[test]
    fn retry_after_reads_seconds_only() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));

        headers.insert(
            RETRY_AFTER,
            "Wed, 21 Oct 2026 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&headers), None);

        assert_eq!(retry_after(&HeaderMap::new()), None);
    }

    #[test]
    fn backoff_doubles_up_to_cap() {
        let base = Duration::from_secs(1);
        let cap = Duration::from_secs(10);

        let steps: Vec<u64> = (1..=6)
            .map(|attempt| backoff(base, attempt, cap).as_secs())
            .collect();

        assert_eq!(steps, vec![1, 2, 4, 8, 10, 10]);
        assert_eq!(backoff(Duration::ZERO, 1, cap), MIN_BACKOFF);
        assert_eq!(backoff(base, 200, cap), cap);
    }

    #[test]
    fn jitter_adds_at_most_a_tenth() {
        let wait = Duration::from_secs(2);
        for _ in 0..100 {
            let jittered = with_jitter(wait);
            assert!(
                jittered >= wait && jittered <= Duration::from_millis(2200),
                "{jittered:?}"
            );
        }
    }
}
