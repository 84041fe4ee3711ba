//! AegisIR's own Prometheus metrics, registered once at start-up and served at `/metrics`.
//!
//! Label values come from small fixed sets (results and reasons), never from alert names or
//! fingerprints, so the series count stays bounded.

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

/// Every metric AegisIR exports.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Alerts received, by alert status (`firing`, `resolved`, `manual`). The name is the one
    /// the earlier shell-based tool exported.
    pub alerts_total: IntCounterVec,
    /// Webhook notifications received, by outcome (`accepted`, `deduplicated`, `resolved`,
    /// `rejected`).
    pub notifications_total: IntCounterVec,
    /// Rejected requests, by reason (`malformed_json`, `too_large`, `unauthorized`,
    /// `queue_full`, `journal_error`).
    pub rejected_total: IntCounterVec,
    /// Captures finished, by result (`ok`, `error`).
    pub captures_total: IntCounterVec,
    pub capture_duration_seconds: Histogram,
    pub capture_queue_depth: IntGauge,
    pub bundle_bytes_total: IntCounter,
    /// Slack delivery attempts, by result (`ok`, `rate_limited`, `rejected`, `error`), and
    /// messages dropped because no webhook URL is configured (`skipped`).
    pub slack_notifications_total: IntCounterVec,
    pub slack_retries_total: IntCounter,
    pub slack_outbox_depth: IntGauge,
    /// Gaps recorded in captures, by reason.
    pub capture_gaps_total: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new_custom(Some("aegisir".to_string()), None)
            .expect("namespace is a valid metric prefix");
        let metrics = Metrics {
            alerts_total: counter_vec("alerts_total", "Alerts received, by status.", "status"),
            notifications_total: counter_vec(
                "notifications_total",
                "Webhook notifications received, by outcome.",
                "outcome",
            ),
            rejected_total: counter_vec(
                "rejected_requests_total",
                "Requests rejected, by reason.",
                "reason",
            ),
            captures_total: counter_vec(
                "captures_total",
                "Captures finished, by result.",
                "result",
            ),
            capture_duration_seconds: Histogram::with_opts(
                HistogramOpts::new("capture_duration_seconds", "Time one capture took.").buckets(
                    vec![0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0],
                ),
            )
            .expect("valid histogram"),
            capture_queue_depth: IntGauge::new(
                "capture_queue_depth",
                "Captures waiting for the worker.",
            )
            .expect("valid gauge"),
            bundle_bytes_total: IntCounter::new(
                "bundle_bytes_written_total",
                "Bytes written to evidence bundles.",
            )
            .expect("valid counter"),
            slack_notifications_total: counter_vec(
                "slack_notifications_total",
                "Slack delivery attempts, by result.",
                "result",
            ),
            slack_retries_total: IntCounter::new(
                "slack_retries_total",
                "Slack deliveries retried after a 429, a 5xx or a transport error.",
            )
            .expect("valid counter"),
            slack_outbox_depth: IntGauge::new(
                "slack_outbox_depth",
                "Slack notifications waiting in the outbox.",
            )
            .expect("valid gauge"),
            capture_gaps_total: counter_vec(
                "capture_gaps_total",
                "Values captures could not read, by reason.",
                "reason",
            ),
            registry,
        };
        metrics.register_all();
        metrics
    }

    fn register_all(&self) {
        let collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(self.alerts_total.clone()),
            Box::new(self.notifications_total.clone()),
            Box::new(self.rejected_total.clone()),
            Box::new(self.captures_total.clone()),
            Box::new(self.capture_duration_seconds.clone()),
            Box::new(self.capture_queue_depth.clone()),
            Box::new(self.bundle_bytes_total.clone()),
            Box::new(self.slack_notifications_total.clone()),
            Box::new(self.slack_retries_total.clone()),
            Box::new(self.slack_outbox_depth.clone()),
            Box::new(self.capture_gaps_total.clone()),
        ];
        for collector in collectors {
            self.registry
                .register(collector)
                .expect("each metric is registered once");
        }
    }

    /// Renders every metric in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        let encoder = TextEncoder::new();
        if let Err(error) = encoder.encode(&self.registry.gather(), &mut buffer) {
            tracing::error!(%error, "failed to encode metrics");
        }
        String::from_utf8(buffer).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

fn counter_vec(name: &str, help: &str, label: &str) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), &[label]).expect("valid counter")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_keeps_legacy_alert_counter_name() {
        let metrics = Metrics::new();
        metrics.alerts_total.with_label_values(&["firing"]).inc();
        let text = metrics.render();
        assert!(
            text.contains("aegisir_alerts_total{status=\"firing\"} 1"),
            "{text}"
        );
    }
}
