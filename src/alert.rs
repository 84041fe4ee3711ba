//! The Alertmanager webhook payload (version 4), as Alertmanager 0.25 and later send it.
//!
//! Unknown fields are ignored so that newer Alertmanager versions keep working;
//! `truncatedAlerts` and `fingerprint` are optional because older versions omit them.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One webhook notification: a group of alerts that share the group labels.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Notification {
    pub version: String,
    pub group_key: String,
    pub truncated_alerts: u64,
    /// `firing` when any alert in the group fires; read each alert's own status instead.
    pub status: String,
    pub receiver: String,
    pub group_labels: BTreeMap<String, String>,
    pub common_labels: BTreeMap<String, String>,
    pub common_annotations: BTreeMap<String, String>,
    #[serde(rename = "externalURL")]
    pub external_url: String,
    pub alerts: Vec<Alert>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Alert {
    pub status: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub starts_at: Option<DateTime<Utc>>,
    /// Alertmanager sends `0001-01-01T00:00:00Z` for "not set"; see [`Alert::ends_at`].
    #[serde(rename = "endsAt")]
    pub ends_at_raw: Option<DateTime<Utc>>,
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
    pub fingerprint: String,
}

impl Alert {
    pub fn is_firing(&self) -> bool {
        self.status == "firing"
    }

    pub fn is_resolved(&self) -> bool {
        self.status == "resolved"
    }

    /// The end time, or `None` when Alertmanager left it unset (year 1).
    pub fn ends_at(&self) -> Option<DateTime<Utc>> {
        self.ends_at_raw.filter(|t| t.timestamp() > 0)
    }

    /// Returns the `alertname` label for display, or `(no alertname)` when it is missing.
    pub fn name(&self) -> &str {
        self.label("alertname").unwrap_or("(no alertname)")
    }

    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(String::as_str)
    }

    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.get(key).map(String::as_str)
    }
}

impl Notification {
    pub fn firing(&self) -> impl Iterator<Item = &Alert> {
        self.alerts.iter().filter(|a| a.is_firing())
    }

    pub fn resolved(&self) -> impl Iterator<Item = &Alert> {
        self.alerts.iter().filter(|a| a.is_resolved())
    }

    /// "1 firing, 1 resolved, +3 not included by Alertmanager".
    pub fn count_summary(&self) -> String {
        let firing = self.firing().count();
        let resolved = self.resolved().count();
        let mut text = format!("{firing} firing, {resolved} resolved");
        if self.truncated_alerts > 0 {
            text.push_str(&format!(
                ", +{} not included by Alertmanager",
                self.truncated_alerts
            ));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AM_025: &str = r#"{
      "receiver": "aegisir", "status": "firing", "truncatedAlerts": 3,
      "alerts": [
        {"status": "firing", "labels": {"alertname": "HighCPUUsage", "instance": "web-1:9100", "severity": "critical"},
         "annotations": {"summary": "CPU above 85%"}, "startsAt": "2026-12-03T21:44:00.123Z",
         "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prom:9090/graph", "fingerprint": "a1b2c3d4e5f60718"},
        {"status": "resolved", "labels": {"alertname": "DiskFull"}, "annotations": {},
         "startsAt": "2026-12-03T21:00:00Z", "endsAt": "2026-12-03T21:30:00Z", "generatorURL": "", "fingerprint": "ffff"}
      ],
      "groupLabels": {"alertname": "HighCPUUsage"}, "commonLabels": {}, "commonAnnotations": {},
      "externalURL": "http://am:9093", "version": "4", "groupKey": "{}:{alertname=\"HighCPUUsage\"}",
      "someFutureField": 1
    }"#;

    #[test]
    fn parses_alertmanager_payload() {
        let n: Notification = serde_json::from_str(AM_025).unwrap();
        assert_eq!(n.alerts.len(), 2);
        assert_eq!(n.alerts[0].name(), "HighCPUUsage");
        assert_eq!(n.alerts[0].ends_at(), None);
        assert!(n.alerts[1].ends_at().is_some());
        assert_eq!(n.external_url, "http://am:9093");
        assert_eq!(n.alerts[0].generator_url, "http://prom:9090/graph");
    }

    #[test]
    fn count_summary_mentions_truncated() {
        let n: Notification = serde_json::from_str(AM_025).unwrap();
        assert_eq!(
            n.count_summary(),
            "1 firing, 1 resolved, +3 not included by Alertmanager"
        );
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        fn labels() -> impl Strategy<Value = BTreeMap<String, String>> {
            proptest::collection::btree_map(".{0,12}", ".{0,24}", 0..4)
        }

        /// Times between 1970 and 2100 with millisecond precision, as Alertmanager sends them.
        fn time() -> impl Strategy<Value = Option<DateTime<Utc>>> {
            proptest::option::of(
                (0i64..4_102_444_800_000)
                    .prop_map(|ms| DateTime::from_timestamp_millis(ms).unwrap()),
            )
        }

        fn alert() -> impl Strategy<Value = Alert> {
            (
                ".{0,10}",
                labels(),
                labels(),
                time(),
                time(),
                ".{0,30}",
                "[0-9a-f]{0,16}",
            )
                .prop_map(
                    |(
                        status,
                        labels,
                        annotations,
                        starts_at,
                        ends_at_raw,
                        generator_url,
                        fingerprint,
                    )| {
                        Alert {
                            status,
                            labels,
                            annotations,
                            starts_at,
                            ends_at_raw,
                            generator_url,
                            fingerprint,
                        }
                    },
                )
        }

        fn notification() -> impl Strategy<Value = Notification> {
            let heads = (
                ".{0,4}",
                ".{0,40}",
                any::<u64>(),
                ".{0,10}",
                ".{0,16}",
                ".{0,30}",
            );
            let groups = (labels(), labels(), labels());
            let alerts = proptest::collection::vec(alert(), 0..4);
            (heads, groups, alerts).prop_map(|(heads, groups, alerts)| {
                let (version, group_key, truncated_alerts, status, receiver, external_url) = heads;
                let (group_labels, common_labels, common_annotations) = groups;
                Notification {
                    version,
                    group_key,
                    truncated_alerts,
                    status,
                    receiver,
                    group_labels,
                    common_labels,
                    common_annotations,
                    external_url,
                    alerts,
                }
            })
        }

        proptest! {
            #[test]
            fn notification_round_trips_through_json(notification in notification()) {
                let json = serde_json::to_string(&notification).unwrap();
                let parsed: Notification = serde_json::from_str(&json).unwrap();
                prop_assert_eq!(parsed, notification);
            }

            #[test]
            fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
                let _ = serde_json::from_slice::<Notification>(&bytes);
            }
        }
    }
}
