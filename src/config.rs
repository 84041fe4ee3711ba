//! Settings: command-line flags over `AEGISIR_*` environment variables over a TOML file.
//!
//! Each source produces a [`Layer`], in which every setting is optional; [`Layer::or`] stacks
//! them and [`Layer::resolve`] fills the defaults and checks the values. The TOML file has the
//! same shape as [`Layer`]:
//!
//! ```toml
//! listen = "0.0.0.0:5001"          # AEGISIR_LISTEN, --listen
//! data_dir = "./logs"               # AEGISIR_DATA_DIR, --data-dir
//! external_url = "https://aegisir.example.com"   # AEGISIR_EXTERNAL_URL
//!
//! [capture]
//! procfs = "/proc"                  # AEGISIR_PROCFS, --procfs
//! sysfs = "/sys"                    # AEGISIR_SYSFS, --sysfs
//! rootfs = "/"                      # AEGISIR_ROOTFS, --rootfs
//! interval_secs = 1.0               # AEGISIR_INTERVAL_SECS, --interval
//! deadline_secs = 10.0              # AEGISIR_CAPTURE_DEADLINE_SECS
//! collector_deadline_secs = 5.0     # AEGISIR_CAPTURE_COLLECTOR_DEADLINE_SECS
//! socket_owners = true              # AEGISIR_SOCKET_OWNERS
//! keep_secrets = false              # AEGISIR_KEEP_SECRETS
//! on_resolved = false               # AEGISIR_CAPTURE_ON_RESOLVED
//! nice = 10                         # AEGISIR_CAPTURE_NICE
//!
//! [intake]
//! body_limit_bytes = 16777216       # AEGISIR_BODY_LIMIT_BYTES
//! dedupe_window_secs = 300          # AEGISIR_DEDUPE_WINDOW_SECS
//! queue_capacity = 16               # AEGISIR_QUEUE_CAPACITY
//! min_free_bytes = 67108864         # AEGISIR_MIN_FREE_BYTES; also 2 × the last bundle's size
//!
//! [history]
//! interval_secs = 5                 # AEGISIR_HISTORY_INTERVAL_SECS; 0 turns the recorder off
//! retention_secs = 600              # AEGISIR_HISTORY_RETENTION_SECS
//!
//! [auth]                            # protects POST /alert and /logs; /healthz, /readyz and
//! bearer_token = "..."              # /metrics stay open. AEGISIR_AUTH_TOKEN
//! basic_user = "alertmanager"       # AEGISIR_BASIC_AUTH_USER
//! basic_password = "..."            # AEGISIR_BASIC_AUTH_PASSWORD
//!
//! [slack]
//! webhook_url = "https://hooks.slack.com/services/..."  # SLACK_WEBHOOK_URL, AEGISIR_SLACK_WEBHOOK_URL
//! min_interval_secs = 1.0           # AEGISIR_SLACK_MIN_INTERVAL_SECS
//! max_attempts = 6                  # AEGISIR_SLACK_MAX_ATTEMPTS
//! retry_after_cap_secs = 60         # AEGISIR_SLACK_RETRY_AFTER_CAP_SECS
//! request_timeout_secs = 10         # AEGISIR_SLACK_REQUEST_TIMEOUT_SECS
//! ```
//!
//! Secrets (the token, the password, the Slack URL) have no command-line flag, because other
//! users of the host can read a process's arguments.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use aegisir_platform::{CaptureOptions, Roots};
use serde::Deserialize;

use crate::auth::{AuthSettings, BasicCredentials};
use crate::slack::SlackSettings;

/// Environment variable naming the config file when `--config` is not given.
pub const CONFIG_ENV: &str = "AEGISIR_CONFIG";

/// Default of `intake.min_free_bytes`: 64 MiB.
pub const DEFAULT_MIN_FREE_BYTES: u64 = 64 * 1024 * 1024;

/// Largest `capture.interval_secs`.
pub const MAX_INTERVAL_SECS: f64 = 60.0;

/// Errors in any settings source.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("failed to read config file {path}: {source}")]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {source}")]
    ParseFile {
        path: PathBuf,
        #[source]
        source: Box<toml::de::Error>,
    },
    #[error("invalid environment variable {name}={value:?}: {reason}")]
    InvalidEnv {
        name: &'static str,
        value: String,
        reason: String,
    },
    #[error("invalid setting {setting}: {reason}")]
    Invalid {
        setting: &'static str,
        reason: String,
    },
}

/// Every setting of the server, resolved and checked.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// The URL users reach AegisIR at; Slack messages link to bundles under it.
    pub external_url: Option<String>,
    pub capture: CaptureSettings,
    pub intake: IntakeSettings,
    pub history: HistorySettings,
    pub auth: AuthSettings,
    pub slack: SlackSettings,
}

#[derive(Debug, Clone)]
pub struct CaptureSettings {
    pub roots: Roots,
    /// Time between the two samples of a capture without a recent history sample.
    pub interval: Duration,
    /// Time after which a sample skips its expensive parts and records a gap.
    pub deadline: Duration,
    /// Time after which one collector skips its expensive parts and records a gap.
    pub collector_deadline: Duration,
    /// Walk file descriptors to find the processes that own listening sockets.
    pub socket_owners: bool,
    /// Keep secrets in command lines in bundles instead of redacting them.
    pub keep_secrets: bool,
    /// Also capture when a notification holds only resolved alerts.
    pub on_resolved: bool,
    /// Nice value of the capture and history threads (0 to 19).
    pub nice: i32,
}

#[derive(Debug, Clone)]
pub struct IntakeSettings {
    pub body_limit_bytes: usize,
    /// A notification equal to one seen within this window starts no new capture.
    pub dedupe_window: Duration,
    /// Captures that may wait for the worker; one more gets 503.
    pub queue_capacity: usize,
    /// Free space the data directory needs before a capture is queued, at least; twice the
    /// last bundle's size when that is more. Below it `POST /alert` gets 503 `disk_full`.
    pub min_free_bytes: u64,
}

#[derive(Debug, Clone)]
pub struct HistorySettings {
    /// Time between history samples; zero turns the recorder off.
    pub interval: Duration,
    /// How far back the history reaches.
    pub retention: Duration,
}

impl CaptureSettings {
    /// Returns the options a collector reads the host with.
    pub fn options(&self) -> CaptureOptions {
        CaptureOptions {
            roots: self.roots.clone(),
            interval: self.interval,
            deadline: self.deadline,
            collector_deadline: self.collector_deadline,
            socket_owners: self.socket_owners,
        }
    }
}

impl HistorySettings {
    pub fn is_enabled(&self) -> bool {
        !self.interval.is_zero()
    }
}

/// One source of settings, every value optional.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Layer {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub external_url: Option<String>,
    pub capture: CaptureLayer,
    pub intake: IntakeLayer,
    pub history: HistoryLayer,
    pub auth: AuthLayer,
    pub slack: SlackLayer,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CaptureLayer {
    pub procfs: Option<PathBuf>,
    pub sysfs: Option<PathBuf>,
    pub rootfs: Option<PathBuf>,
    pub interval_secs: Option<f64>,
    pub deadline_secs: Option<f64>,
    pub collector_deadline_secs: Option<f64>,
    pub socket_owners: Option<bool>,
    pub keep_secrets: Option<bool>,
    pub on_resolved: Option<bool>,
    pub nice: Option<i32>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IntakeLayer {
    pub body_limit_bytes: Option<u64>,
    pub dedupe_window_secs: Option<f64>,
    pub queue_capacity: Option<usize>,
    pub min_free_bytes: Option<u64>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HistoryLayer {
    pub interval_secs: Option<f64>,
    pub retention_secs: Option<f64>,
}

#[derive(Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthLayer {
    pub bearer_token: Option<String>,
    pub basic_user: Option<String>,
    pub basic_password: Option<String>,
}

#[derive(Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlackLayer {
    pub webhook_url: Option<String>,
    pub min_interval_secs: Option<f64>,
    pub max_attempts: Option<u32>,
    pub retry_after_cap_secs: Option<f64>,
    pub request_timeout_secs: Option<f64>,
}

impl fmt::Debug for AuthLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthLayer")
            .field("bearer_token", &self.bearer_token.as_ref().map(|_| "<set>"))
            .field("basic_user", &self.basic_user)
            .field(
                "basic_password",
                &self.basic_password.as_ref().map(|_| "<set>"),
            )
            .finish()
    }
}

impl fmt::Debug for SlackLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlackLayer")
            .field("webhook_url", &self.webhook_url.as_ref().map(|_| "<set>"))
            .field("min_interval_secs", &self.min_interval_secs)
            .field("max_attempts", &self.max_attempts)
            .field("retry_after_cap_secs", &self.retry_after_cap_secs)
            .field("request_timeout_secs", &self.request_timeout_secs)
            .finish()
    }
}

impl Layer {
    /// Reads a TOML config file.
    pub fn from_file(path: &Path) -> Result<Layer, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
            path: path.to_path_buf(),
            source,
        })?;
        Layer::from_toml(&text).map_err(|source| ConfigError::ParseFile {
            path: path.to_path_buf(),
            source: Box::new(source),
        })
    }

    pub fn from_toml(text: &str) -> Result<Layer, toml::de::Error> {
        toml::from_str(text)
    }

    /// Reads the `AEGISIR_*` variables (and `SLACK_WEBHOOK_URL`) through `lookup`, so tests
    /// can pass a map instead of the process environment.
    pub fn from_env(lookup: impl Fn(&str) -> Option<String>) -> Result<Layer, ConfigError> {
        let env = EnvReader { lookup: &lookup };
        let slack_url = env
            .string("AEGISIR_SLACK_WEBHOOK_URL")
            .or_else(|| env.string("SLACK_WEBHOOK_URL"));

        Ok(Layer {
            listen: env.parse("AEGISIR_LISTEN")?,
            data_dir: env.path("AEGISIR_DATA_DIR"),
            external_url: env.string("AEGISIR_EXTERNAL_URL"),
            capture: CaptureLayer {
                procfs: env.path("AEGISIR_PROCFS"),
                sysfs: env.path("AEGISIR_SYSFS"),
                rootfs: env.path("AEGISIR_ROOTFS"),
                interval_secs: env.parse("AEGISIR_INTERVAL_SECS")?,
                deadline_secs: env.parse("AEGISIR_CAPTURE_DEADLINE_SECS")?,
                collector_deadline_secs: env.parse("AEGISIR_CAPTURE_COLLECTOR_DEADLINE_SECS")?,
                socket_owners: env.flag("AEGISIR_SOCKET_OWNERS")?,
                keep_secrets: env.flag("AEGISIR_KEEP_SECRETS")?,
                on_resolved: env.flag("AEGISIR_CAPTURE_ON_RESOLVED")?,
                nice: env.parse("AEGISIR_CAPTURE_NICE")?,
            },
            intake: IntakeLayer {
                body_limit_bytes: env.parse("AEGISIR_BODY_LIMIT_BYTES")?,
                dedupe_window_secs: env.parse("AEGISIR_DEDUPE_WINDOW_SECS")?,
                queue_capacity: env.parse("AEGISIR_QUEUE_CAPACITY")?,
                min_free_bytes: env.parse("AEGISIR_MIN_FREE_BYTES")?,
            },
            history: HistoryLayer {
                interval_secs: env.parse("AEGISIR_HISTORY_INTERVAL_SECS")?,
                retention_secs: env.parse("AEGISIR_HISTORY_RETENTION_SECS")?,
            },
            auth: AuthLayer {
                bearer_token: env.secret("AEGISIR_AUTH_TOKEN")?,
                basic_user: env.string("AEGISIR_BASIC_AUTH_USER"),
                basic_password: env.secret("AEGISIR_BASIC_AUTH_PASSWORD")?,
            },
            slack: SlackLayer {
                webhook_url: slack_url,
                min_interval_secs: env.parse("AEGISIR_SLACK_MIN_INTERVAL_SECS")?,
                max_attempts: env.parse("AEGISIR_SLACK_MAX_ATTEMPTS")?,
                retry_after_cap_secs: env.parse("AEGISIR_SLACK_RETRY_AFTER_CAP_SECS")?,
                request_timeout_secs: env.parse("AEGISIR_SLACK_REQUEST_TIMEOUT_SECS")?,
            },
        })
    }

    /// Stacks two layers: each value of `self` wins over the one in `lower`.
    pub fn or(self, lower: Layer) -> Layer {
        Layer {
            listen: self.listen.or(lower.listen),
            data_dir: self.data_dir.or(lower.data_dir),
            external_url: self.external_url.or(lower.external_url),
            capture: self.capture.or(lower.capture),
            intake: self.intake.or(lower.intake),
            history: self.history.or(lower.history),
            auth: self.auth.or(lower.auth),
            slack: self.slack.or(lower.slack),
        }
    }

    /// Fills the defaults and checks every value.
    pub fn resolve(self) -> Result<Settings, ConfigError> {
        let external_url = self.external_url.filter(|url| !url.is_empty());
        if let Some(url) = &external_url {
            check_http_url("external_url", url)?;
        }
        let slack = self.slack.resolve(external_url.clone())?;
        Ok(Settings {
            listen: self.listen.unwrap_or_else(default_listen),
            data_dir: self.data_dir.unwrap_or_else(|| PathBuf::from("./logs")),
            external_url,
            capture: self.capture.resolve()?,
            intake: self.intake.resolve()?,
            history: self.history.resolve()?,
            auth: self.auth.resolve()?,
            slack,
        })
    }
}

impl CaptureLayer {
    fn or(self, lower: CaptureLayer) -> CaptureLayer {
        CaptureLayer {
            procfs: self.procfs.or(lower.procfs),
            sysfs: self.sysfs.or(lower.sysfs),
            rootfs: self.rootfs.or(lower.rootfs),
            interval_secs: self.interval_secs.or(lower.interval_secs),
            deadline_secs: self.deadline_secs.or(lower.deadline_secs),
            collector_deadline_secs: self
                .collector_deadline_secs
                .or(lower.collector_deadline_secs),
            socket_owners: self.socket_owners.or(lower.socket_owners),
            keep_secrets: self.keep_secrets.or(lower.keep_secrets),
            on_resolved: self.on_resolved.or(lower.on_resolved),
            nice: self.nice.or(lower.nice),
        }
    }

    fn resolve(self) -> Result<CaptureSettings, ConfigError> {
        let defaults = Roots::default();
        let roots = Roots {
            procfs: self.procfs.unwrap_or(defaults.procfs),
            sysfs: self.sysfs.unwrap_or(defaults.sysfs),
            rootfs: self.rootfs.unwrap_or(defaults.rootfs),
        };

        let interval = check_interval(self.interval_secs.unwrap_or(1.0))
            .map_err(|reason| invalid("capture.interval_secs", reason))?;
        let deadline = seconds("capture.deadline_secs", self.deadline_secs.unwrap_or(10.0))?;
        if deadline.is_zero() {
            return Err(invalid("capture.deadline_secs", "must be above 0"));
        }
        let collector_deadline = seconds(
            "capture.collector_deadline_secs",
            self.collector_deadline_secs.unwrap_or(5.0),
        )?;
        if collector_deadline.is_zero() {
            return Err(invalid(
                "capture.collector_deadline_secs",
                "must be above 0",
            ));
        }
        let nice = self.nice.unwrap_or(10);
        if !(0..=19).contains(&nice) {
            return Err(invalid("capture.nice", "must be between 0 and 19"));
        }

        Ok(CaptureSettings {
            roots,
            interval,
            deadline,
            collector_deadline,
            socket_owners: self.socket_owners.unwrap_or(true),
            keep_secrets: self.keep_secrets.unwrap_or(false),
            on_resolved: self.on_resolved.unwrap_or(false),
            nice,
        })
    }
}

impl IntakeLayer {
    fn or(self, lower: IntakeLayer) -> IntakeLayer {
        IntakeLayer {
            body_limit_bytes: self.body_limit_bytes.or(lower.body_limit_bytes),
            dedupe_window_secs: self.dedupe_window_secs.or(lower.dedupe_window_secs),
            queue_capacity: self.queue_capacity.or(lower.queue_capacity),
            min_free_bytes: self.min_free_bytes.or(lower.min_free_bytes),
        }
    }

    fn resolve(self) -> Result<IntakeSettings, ConfigError> {
        let body_limit = self.body_limit_bytes.unwrap_or(16 * 1024 * 1024);
        if !(1024..=1 << 30).contains(&body_limit) {
            return Err(invalid(
                "intake.body_limit_bytes",
                "must be between 1024 and 1073741824",
            ));
        }
        let window = seconds(
            "intake.dedupe_window_secs",
            self.dedupe_window_secs.unwrap_or(300.0),
        )?;
        let queue_capacity = self.queue_capacity.unwrap_or(16);
        if !(1..=10_000).contains(&queue_capacity) {
            return Err(invalid(
                "intake.queue_capacity",
                "must be between 1 and 10000",
            ));
        }

        Ok(IntakeSettings {
            body_limit_bytes: body_limit as usize,
            dedupe_window: window,
            queue_capacity,
            min_free_bytes: self.min_free_bytes.unwrap_or(DEFAULT_MIN_FREE_BYTES),
        })
    }
}

impl HistoryLayer {
    fn or(self, lower: HistoryLayer) -> HistoryLayer {
        HistoryLayer {
            interval_secs: self.interval_secs.or(lower.interval_secs),
            retention_secs: self.retention_secs.or(lower.retention_secs),
        }
    }

    fn resolve(self) -> Result<HistorySettings, ConfigError> {
        let interval = seconds("history.interval_secs", self.interval_secs.unwrap_or(5.0))?;
        let retention = seconds(
            "history.retention_secs",
            self.retention_secs.unwrap_or(600.0),
        )?;
        if !interval.is_zero() && interval < Duration::from_millis(100) {
            return Err(invalid(
                "history.interval_secs",
                "must be 0 (off) or at least 0.1",
            ));
        }
        if !interval.is_zero() && retention < interval {
            return Err(invalid(
                "history.retention_secs",
                "must be at least history.interval_secs",
            ));
        }
        Ok(HistorySettings {
            interval,
            retention,
        })
    }
}

impl AuthLayer {
    fn or(self, lower: AuthLayer) -> AuthLayer {
        AuthLayer {
            bearer_token: self.bearer_token.or(lower.bearer_token),
            basic_user: self.basic_user.or(lower.basic_user),
            basic_password: self.basic_password.or(lower.basic_password),
        }
    }

    fn resolve(self) -> Result<AuthSettings, ConfigError> {
        if self.bearer_token.as_deref() == Some("") {
            return Err(invalid(
                "auth.bearer_token",
                "is empty; remove it to turn bearer auth off",
            ));
        }
        let token = self.bearer_token;
        let user = self.basic_user.filter(|u| !u.is_empty());
        let password = self.basic_password.filter(|p| !p.is_empty());
        let basic = match (user, password) {
            (Some(user), Some(password)) => Some(BasicCredentials { user, password }),
            (None, None) => None,
            (Some(_), None) => {
                return Err(invalid(
                    "auth.basic_password",
                    "is missing while basic_user is set",
                ))
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "auth.basic_user",
                    "is missing while basic_password is set",
                ))
            }
        };
        Ok(AuthSettings {
            bearer_token: token,
            basic,
        })
    }
}

impl SlackLayer {
    fn or(self, lower: SlackLayer) -> SlackLayer {
        SlackLayer {
            webhook_url: self.webhook_url.or(lower.webhook_url),
            min_interval_secs: self.min_interval_secs.or(lower.min_interval_secs),
            max_attempts: self.max_attempts.or(lower.max_attempts),
            retry_after_cap_secs: self.retry_after_cap_secs.or(lower.retry_after_cap_secs),
            request_timeout_secs: self.request_timeout_secs.or(lower.request_timeout_secs),
        }
    }

    fn resolve(self, external_url: Option<String>) -> Result<SlackSettings, ConfigError> {
        let webhook_url = self.webhook_url.filter(|url| !url.trim().is_empty());
        if let Some(url) = &webhook_url {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                // The URL is a secret, so the message does not repeat it.
                return Err(invalid(
                    "slack.webhook_url",
                    "must start with https:// or http://",
                ));
            }
        }
        let defaults = SlackSettings::default();
        let max_attempts = self.max_attempts.unwrap_or(defaults.max_attempts);
        if max_attempts == 0 {
            return Err(invalid("slack.max_attempts", "must be at least 1"));
        }
        let min_interval = match self.min_interval_secs {
            Some(secs) => seconds("slack.min_interval_secs", secs)?,
            None => defaults.min_interval,
        };
        let retry_after_cap = match self.retry_after_cap_secs {
            Some(secs) => seconds("slack.retry_after_cap_secs", secs)?,
            None => defaults.retry_after_cap,
        };
        let request_timeout = match self.request_timeout_secs {
            Some(secs) => seconds("slack.request_timeout_secs", secs)?,
            None => defaults.request_timeout,
        };
        if request_timeout.is_zero() {
            return Err(invalid("slack.request_timeout_secs", "must be above 0"));
        }
        Ok(SlackSettings {
            webhook_url,
            external_url,
            min_interval,
            max_attempts,
            retry_after_cap,
            request_timeout,
        })
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 5001))
}

fn seconds(setting: &'static str, value: f64) -> Result<Duration, ConfigError> {
    Duration::try_from_secs_f64(value).map_err(|_| {
        let reason = format!(
            "{value} is out of range: expected a number of seconds from 0 to {}",
            u64::MAX
        );
        invalid(setting, reason)
    })
}

/// Checks a capture interval in seconds: above 0 and at most [`MAX_INTERVAL_SECS`].
pub fn check_interval(value: f64) -> Result<Duration, String> {
    if value > 0.0 && value <= MAX_INTERVAL_SECS {
        return Ok(Duration::from_secs_f64(value));
    }
    Err(format!(
        "{value} is out of range: must be above 0 and at most {MAX_INTERVAL_SECS} seconds"
    ))
}

/// Checks that a URL setting is an absolute http:// or https:// URL with a host.
fn check_http_url(setting: &'static str, url: &str) -> Result<(), ConfigError> {
    let valid = reqwest::Url::parse(url).is_ok_and(|parsed| {
        matches!(parsed.scheme(), "http" | "https") && parsed.host_str().is_some()
    });
    if valid {
        return Ok(());
    }
    Err(invalid(
        setting,
        format!("{url:?} is not an http:// or https:// URL"),
    ))
}

fn invalid(setting: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        setting,
        reason: reason.into(),
    }
}

/// Reads typed values from an environment lookup; an empty variable counts as unset.
struct EnvReader<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl EnvReader<'_> {
    fn string(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|value| !value.is_empty())
    }

    /// Reads a secret, for which a variable that is set but empty is an error: it usually
    /// means a deployment template lost the value, and treating it as unset would turn
    /// authentication off without a word.
    fn secret(&self, name: &'static str) -> Result<Option<String>, ConfigError> {
        match (self.lookup)(name) {
            Some(value) if value.is_empty() => Err(ConfigError::InvalidEnv {
                name,
                value,
                reason: "is set but empty; set a value or unset the variable".to_string(),
            }),
            value => Ok(value),
        }
    }

    fn path(&self, name: &str) -> Option<PathBuf> {
        self.string(name).map(PathBuf::from)
    }

    fn parse<T>(&self, name: &'static str) -> Result<Option<T>, ConfigError>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        let Some(value) = self.string(name) else {
            return Ok(None);
        };
        match value.trim().parse::<T>() {
            Ok(parsed) => Ok(Some(parsed)),
            Err(error) => Err(ConfigError::InvalidEnv {
                name,
                value,
                reason: error.to_string(),
            }),
        }
    }

    fn flag(&self, name: &'static str) -> Result<Option<bool>, ConfigError> {
        let Some(value) = self.string(name) else {
            return Ok(None);
        };
        match value.trim().to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(Some(true)),
            "0" | "false" | "no" | "off" => Ok(Some(false)),
            _ => Err(ConfigError::InvalidEnv {
                name,
                value,
                reason: "expected true or false".to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn defaults_without_any_source() {
        let settings = Layer::default().resolve().unwrap();
        assert_eq!(settings.listen, "0.0.0.0:5001".parse().unwrap());
        assert_eq!(settings.data_dir, PathBuf::from("./logs"));
        assert_eq!(settings.capture.interval, Duration::from_secs(1));
        assert_eq!(settings.capture.roots, Roots::default());
        assert_eq!(settings.intake.body_limit_bytes, 16 * 1024 * 1024);
        assert_eq!(settings.intake.dedupe_window, Duration::from_secs(300));
        assert_eq!(settings.intake.queue_capacity, 16);
        assert_eq!(settings.intake.min_free_bytes, 64 * 1024 * 1024);
        assert_eq!(settings.history.interval, Duration::from_secs(5));
        assert_eq!(settings.history.retention, Duration::from_secs(600));
        assert!(!settings.auth.is_enabled());
        assert!(settings.slack.webhook_url.is_none());
        assert!(!settings.capture.keep_secrets);
        assert_eq!(settings.capture.deadline, Duration::from_secs(10));
        assert_eq!(settings.capture.collector_deadline, Duration::from_secs(5));
    }

    #[test]
    fn flags_beat_env_beat_file() {
        let file = Layer::from_toml(
            "listen = \"127.0.0.1:7000\"\ndata_dir = \"/file\"\n\
             [capture]\ninterval_secs = 3.0\nprocfs = \"/file/proc\"\n",
        )
        .unwrap();
        let env = Layer::from_env(env(&[
            ("AEGISIR_DATA_DIR", "/env"),
            ("AEGISIR_INTERVAL_SECS", "2"),
        ]))
        .unwrap();
        let flags = Layer {
            capture: CaptureLayer {
                interval_secs: Some(0.5),
                ..CaptureLayer::default()
            },
            ..Layer::default()
        };

        let settings = flags.or(env).or(file).resolve().unwrap();

        assert_eq!(settings.capture.interval, Duration::from_millis(500));
        assert_eq!(settings.data_dir, PathBuf::from("/env"));
        assert_eq!(settings.listen, "127.0.0.1:7000".parse().unwrap());
        assert_eq!(settings.capture.roots.procfs, PathBuf::from("/file/proc"));
        assert_eq!(settings.capture.roots.sysfs, PathBuf::from("/sys"));
    }

    #[test]
    fn slack_url_from_legacy_variable() {
        let layer = Layer::from_env(env(&[("SLACK_WEBHOOK_URL", "https://hooks.example/x")]));
        let settings = layer.unwrap().resolve().unwrap();
        assert_eq!(
            settings.slack.webhook_url.as_deref(),
            Some("https://hooks.example/x")
        );
    }

    #[test]
    fn slack_url_prefixed_variable_wins() {
        let layer = Layer::from_env(env(&[
            ("SLACK_WEBHOOK_URL", "https://hooks.example/legacy"),
            ("AEGISIR_SLACK_WEBHOOK_URL", "https://hooks.example/new"),
        ]));
        let settings = layer.unwrap().resolve().unwrap();
        assert_eq!(
            settings.slack.webhook_url.as_deref(),
            Some("https://hooks.example/new")
        );
    }

    #[test]
    fn env_slack_url_beats_file() {
        let file = Layer::from_toml("[slack]\nwebhook_url = \"https://hooks.example/file\"\n");
        let env = Layer::from_env(env(&[("SLACK_WEBHOOK_URL", "https://hooks.example/env")]));
        let settings = env.unwrap().or(file.unwrap()).resolve().unwrap();
        assert_eq!(
            settings.slack.webhook_url.as_deref(),
            Some("https://hooks.example/env")
        );
    }

    #[test]
    fn empty_env_value_counts_as_unset() {
        let file = Layer::from_toml("data_dir = \"/file\"\n").unwrap();
        let env = Layer::from_env(env(&[("AEGISIR_DATA_DIR", "")])).unwrap();
        let settings = env.or(file).resolve().unwrap();
        assert_eq!(settings.data_dir, PathBuf::from("/file"));
    }

    #[test]
    fn invalid_env_value_names_variable() {
        let error = Layer::from_env(env(&[("AEGISIR_QUEUE_CAPACITY", "many")])).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("AEGISIR_QUEUE_CAPACITY"), "{message}");
        assert!(message.contains("\"many\""), "{message}");
    }

    #[test]
    fn env_flags_accept_common_spellings() {
        for (value, expected) in [("1", true), ("TRUE", true), ("off", false), ("no", false)] {
            let layer = Layer::from_env(env(&[("AEGISIR_KEEP_SECRETS", value)])).unwrap();
            assert_eq!(layer.capture.keep_secrets, Some(expected), "{value}");
        }
        assert!(Layer::from_env(env(&[("AEGISIR_KEEP_SECRETS", "maybe")])).is_err());
    }

    #[test]
    fn unknown_file_key_is_rejected() {
        let error = Layer::from_toml("[capture]\nintervall_secs = 2\n").unwrap_err();
        assert!(error.to_string().contains("intervall_secs"), "{error}");
    }

    #[test]
    fn auth_from_env() {
        let layer = Layer::from_env(env(&[
            ("AEGISIR_AUTH_TOKEN", "t0ken"),
            ("AEGISIR_BASIC_AUTH_USER", "am"),
            ("AEGISIR_BASIC_AUTH_PASSWORD", "pw"),
        ]));
        let auth = layer.unwrap().resolve().unwrap().auth;
        assert_eq!(auth.bearer_token.as_deref(), Some("t0ken"));
        let basic = auth.basic.unwrap();
        assert_eq!(basic.user, "am");
        assert_eq!(basic.password, "pw");
    }

    #[test]
    fn basic_user_without_password_is_rejected() {
        let layer = Layer::from_env(env(&[("AEGISIR_BASIC_AUTH_USER", "am")])).unwrap();
        let error = layer.resolve().unwrap_err();
        assert!(error.to_string().contains("auth.basic_password"), "{error}");
    }

    #[test]
    fn debug_output_hides_secrets() {
        let layer = Layer::from_env(env(&[
            ("AEGISIR_AUTH_TOKEN", "t0ken-secret"),
            ("AEGISIR_BASIC_AUTH_USER", "am"),
            ("AEGISIR_BASIC_AUTH_PASSWORD", "pw-secret"),
            ("SLACK_WEBHOOK_URL", "https://hooks.example/url-secret"),
        ]))
        .unwrap();
        let layer_debug = format!("{layer:?}");
        let settings_debug = format!("{:?}", layer.resolve().unwrap());
        for text in [layer_debug, settings_debug] {
            assert!(!text.contains("t0ken-secret"), "{text}");
            assert!(!text.contains("pw-secret"), "{text}");
            assert!(!text.contains("url-secret"), "{text}");
        }
    }

    #[test]
    fn out_of_range_values_are_rejected() {
        let cases = [
            "[capture]\ninterval_secs = 0.0\n",
            "[capture]\ninterval_secs = -1.0\n",
            "[capture]\nnice = 25\n",
            "[intake]\nqueue_capacity = 0\n",
            "[intake]\nbody_limit_bytes = 10\n",
            "[history]\ninterval_secs = 10.0\nretention_secs = 5.0\n",
            "[slack]\nwebhook_url = \"hooks.example\"\n",
            "[slack]\nrequest_timeout_secs = 0\n",
            "[auth]\nbearer_token = \"\"\n",
            "external_url = \"aegisir.example.com\"\n",
            "external_url = \"ftp://aegisir.example.com\"\n",
            "[capture]\ninterval_secs = 1e30\n",
            "[capture]\ncollector_deadline_secs = 0\n",
            "[capture]\ncollector_deadline_secs = -2.0\n",
        ];
        for case in cases {
            let layer = Layer::from_toml(case).unwrap();
            assert!(layer.resolve().is_err(), "accepted {case:?}");
        }
    }

    #[test]
    fn empty_auth_token_variable_is_rejected() {
        let error = Layer::from_env(env(&[("AEGISIR_AUTH_TOKEN", "")])).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("AEGISIR_AUTH_TOKEN"), "{message}");
        assert!(message.contains("set but empty"), "{message}");
    }

    #[test]
    fn out_of_range_interval_names_range() {
        for value in [-1.0, 0.0, 1e30, f64::NAN] {
            let error = check_interval(value).unwrap_err();
            assert!(error.contains("at most 60 seconds"), "{error}");
        }
        assert_eq!(check_interval(0.5), Ok(Duration::from_millis(500)));
    }

    #[test]
    fn external_url_must_be_http() {
        let layer = Layer::from_toml("external_url = \"aegisir.example.com\"\n").unwrap();
        let error = layer.resolve().unwrap_err().to_string();
        assert!(error.contains("external_url"), "{error}");
        let layer = Layer::from_toml("external_url = \"https://aegisir.example.com/x\"\n");
        let settings = layer.unwrap().resolve().unwrap();
        assert_eq!(
            settings.external_url.as_deref(),
            Some("https://aegisir.example.com/x")
        );
    }

    #[test]
    fn collector_deadline_from_file_and_env() {
        let file = Layer::from_toml("[capture]\ncollector_deadline_secs = 2.5\n").unwrap();
        let settings = file.clone().resolve().unwrap();
        assert_eq!(
            settings.capture.collector_deadline,
            Duration::from_millis(2500)
        );
        assert_eq!(
            settings.capture.options().collector_deadline,
            Duration::from_millis(2500)
        );

        let env = Layer::from_env(env(&[("AEGISIR_CAPTURE_COLLECTOR_DEADLINE_SECS", "1")]));
        let settings = env.unwrap().or(file).resolve().unwrap();
        assert_eq!(settings.capture.collector_deadline, Duration::from_secs(1));
    }

    #[test]
    fn min_free_bytes_from_env() {
        let layer = Layer::from_env(env(&[("AEGISIR_MIN_FREE_BYTES", "1024")])).unwrap();
        assert_eq!(layer.resolve().unwrap().intake.min_free_bytes, 1024);
    }

    #[test]
    fn history_interval_zero_disables_recorder() {
        let layer = Layer::from_toml("[history]\ninterval_secs = 0\n").unwrap();
        let settings = layer.resolve().unwrap();
        assert!(!settings.history.is_enabled());
    }
}
