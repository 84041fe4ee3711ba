//! Slack notices: a Block Kit message after each capture and a follow-up when alerts resolve,
//! delivered to an incoming webhook through an outbox in the data directory.
//!
//! - [`escape`] makes host and alert text safe for Slack mrkdwn, so `<!channel>` in a process
//!   name or a label never pings anyone and untrusted text cannot close a code block.
//! - [`blocks`] builds block lists that stay inside Slack's size limits.
//! - [`message`] turns a capture or a resolved notification into a [`Message`].
//! - [`outbox`] keeps pending messages as files, so a restart while Slack is down still
//!   delivers them.
//! - [`delivery`] runs the background task that posts them in order, about one per second,
//!   waiting out 429s, retrying 5xx and transport errors with backoff, and retrying messages
//!   that ran out of attempts after a cool-down.
//!
//! The webhook URL is a secret: it is never logged, never shown by `Debug`, and stripped from
//! every error message.

pub mod blocks;
pub mod delivery;
pub mod escape;
pub mod message;
pub mod outbox;

/// The Slack webhook mock of the integration tests, shared with the unit tests of this crate.
#[cfg(test)]
#[path = "../tests/it/slack_mock.rs"]
pub(crate) mod slack_mock;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

pub use crate::tls::install_crypto_provider;
pub use delivery::{Notifier, NotifierHandle, NotifierOptions, FAILED_REQUEUE_INTERVAL};
pub use message::{capture_message, resolved_message, CaptureNotice, Message};

/// Settings for reaching Slack: the webhook, the pacing and the retry limits.
#[derive(Clone, PartialEq, Eq)]
pub struct SlackSettings {
    /// The incoming-webhook URL; `None` disables Slack while captures still run.
    pub webhook_url: Option<String>,
    /// The address at which users reach AegisIR (`https://aegisir.example.net`). Messages
    /// then link to `<external_url>/logs/<bundle id>`, but only for an http or https URL.
    pub external_url: Option<String>,
    /// Minimum time between two requests to Slack; the default of 1 s allows about one
    /// message per second. It is also the first backoff step after a 5xx or a transport error.
    pub min_interval: Duration,
    /// Requests made for one message before it is moved to `failed/` in the outbox, which
    /// retries it after a cool-down. The default is 6.
    pub max_attempts: u32,
    /// Maximum wait between two attempts, whether Slack requested it with `Retry-After` or
    /// it comes from the exponential backoff. Jitter of up to a tenth is added on top.
    pub retry_after_cap: Duration,
    /// Time one request may take, connecting included, before it counts as failed.
    pub request_timeout: Duration,
}

impl SlackSettings {
    pub fn is_configured(&self) -> bool {
        self.webhook_url.is_some()
    }
}

impl Default for SlackSettings {
    fn default() -> Self {
        SlackSettings {
            webhook_url: None,
            external_url: None,
            min_interval: Duration::from_secs(1),
            max_attempts: 6,
            retry_after_cap: Duration::from_secs(60),
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// Shows every setting except the webhook URL, which is a secret.
impl fmt::Debug for SlackSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let webhook_url = self.webhook_url.as_ref().map(|_| "<redacted>");
        f.debug_struct("SlackSettings")
            .field("webhook_url", &webhook_url)
            .field("external_url", &self.external_url)
            .field("min_interval", &self.min_interval)
            .field("max_attempts", &self.max_attempts)
            .field("retry_after_cap", &self.retry_after_cap)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

/// Errors of the Slack notifier. None of them contains the webhook URL.
#[derive(Debug, thiserror::Error)]
pub enum SlackError {
    #[error("invalid Slack webhook URL ({reason}); expected an http or https URL")]
    InvalidWebhookUrl { reason: String },
    #[error("failed to {operation} {}: {source}", path.display())]
    Outbox {
        operation: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("failed to encode a Slack message as JSON: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("failed to build the HTTP client for Slack: {reason}")]
    Client { reason: String },
    #[error("the Slack notifier must be started inside a tokio runtime")]
    NoRuntime,
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET_URL: &str = "https://hooks.slack.com/services/T000/B000/very-secret-token";

    #[test]
    fn settings_debug_hides_webhook_url() {
        let settings = SlackSettings {
            webhook_url: Some(SECRET_URL.to_string()),
            ..SlackSettings::default()
        };

        let debug = format!("{settings:?}");

        assert!(!debug.contains("very-secret-token"), "{debug}");
        assert!(!debug.contains("hooks.slack.com"), "{debug}");
        assert!(debug.contains("<redacted>"), "{debug}");
    }

    #[test]
    fn default_max_attempts_is_six() {
        assert_eq!(SlackSettings::default().max_attempts, 6);
    }

    #[test]
    fn settings_debug_shows_missing_url_as_none() {
        let debug = format!("{:?}", SlackSettings::default());

        assert!(debug.contains("webhook_url: None"), "{debug}");
    }
}
