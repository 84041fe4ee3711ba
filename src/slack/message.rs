//! The Slack messages AegisIR sends: a notice after each capture, naming the alerts and the
//! processes burning CPU, and a short follow-up when alerts resolve.
//!
//! One notice covers one notification group: its alerts are listed firing first, at most 20
//! of them with one line counting the rest, and the first of them fills the header and the
//! fields. Every value from the host or the alert is
//! escaped here. Links are built only for the bundle and for `generatorURL`, and only for
//! http and https URLs.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use aegisir_platform::{Process, Snapshot};

use super::blocks::{blocks_budget, fallback_text, Blocks};
use super::escape::{self, clip, link, truncate};
use super::SlackSettings;
use crate::alert::{Alert, Notification};
use crate::report;
use crate::store::BundleInfo;

/// Rows in the process table.
const TOP_PROCESSES: usize = 5;
/// Maximum length of a user name shown in the process table; longer ones end with `…`.
const MAX_USER_CHARS: usize = 10;
/// Maximum length of a command line shown in the process table; the bundle has the full one.
const MAX_COMMAND_CHARS: usize = 160;
/// Maximum length of a process table row after escaping, which can make text five times longer.
const MAX_ROW_UNITS: usize = 240;
/// Maximum length of one line in an alert list, before its link.
const MAX_ALERT_LINE: usize = 400;
/// Maximum number of alerts listed one per line; one more line counts the rest, which the
/// bundle lists in full.
const MAX_LISTED_ALERTS: usize = 20;

const PROCESS_TABLE_TITLE: &str = "*Top processes by CPU*";

/// A Slack incoming-webhook payload: Block Kit blocks with a `text` fallback for
/// notifications and clients that cannot show blocks.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Message {
    pub text: String,
    pub blocks: Vec<Value>,
}

/// The inputs of a capture notice.
pub struct CaptureNotice<'a> {
    /// The notification that triggered the capture; `None` for a manual capture.
    pub notification: Option<&'a Notification>,
    pub snapshot: &'a Snapshot,
    pub bundle: &'a BundleInfo,
    pub incident_id: &'a str,
}

/// Builds the notice sent after a capture.
pub fn capture_message(notice: &CaptureNotice<'_>, settings: &SlackSettings) -> Message {
    let alerts = notice.notification.map(firing_first).unwrap_or_default();
    let primary = alerts.first().copied();
    let bundle_ref = bundle_reference(&notice.bundle.id, settings);
    let mut blocks = Blocks::default();

    blocks.header(&capture_title(notice.notification, &alerts));
    blocks.fields(&capture_fields(notice, primary, &bundle_ref));
    if let Some(summary) = primary.and_then(|alert| summary_of(alert, notice.notification)) {
        blocks.section(&format!("*Summary*\n{}", escape::mrkdwn(summary)));
    }
    if let Some(line) = notice.notification.and_then(count_line) {
        blocks.context(&line);
    }

    blocks.code(PROCESS_TABLE_TITLE, &process_table(notice.snapshot));
    blocks.section(&resource_lines(notice.snapshot));
    if alerts.len() > 1 {
        blocks.section(&alert_list(&alerts, notice.notification, &bundle_ref));
    }

    let footer = format!(
        "AegisIR · bundle {bundle_ref} · incident {}",
        escape::mrkdwn_line(notice.incident_id)
    );
    let text = capture_fallback(notice, &alerts);
    let budget = blocks_budget(&text);
    Message {
        blocks: blocks.finish(&footer, Some(&notice.bundle.id), budget),
        text,
    }
}

/// Builds the follow-up sent when alerts resolve: which alerts, how long each fired, and the
/// bundle captured when they fired, if there was one.
pub fn resolved_message(
    notification: &Notification,
    original_bundle: Option<&str>,
    settings: &SlackSettings,
) -> Message {
    let mut alerts: Vec<&Alert> = notification.resolved().collect();
    if alerts.is_empty() {
        alerts = notification.alerts.iter().collect();
    }
    let mut blocks = Blocks::default();

    blocks.header(&resolved_title(&alerts));
    let (listed, rest) = alerts.split_at(alerts.len().min(MAX_LISTED_ALERTS));
    let mut lines: Vec<String> = listed
        .iter()
        .map(|alert| resolved_line(alert, notification))
        .collect();
    if !rest.is_empty() {
        lines.push(more_alerts_line(rest, None));
    }
    if !lines.is_empty() {
        blocks.section(&lines.join("\n"));
    }
    if let Some(line) = count_line(notification) {
        blocks.context(&line);
    }

    let footer = match original_bundle {
        Some(id) => format!(
            "Captured when it fired: bundle {}",
            bundle_reference(id, settings)
        ),
        None => "No capture was recorded for this alert group.".to_string(),
    };
    let text = resolved_fallback(&alerts, original_bundle);
    let budget = blocks_budget(&text);
    Message {
        blocks: blocks.finish(&footer, original_bundle, budget),
        text,
    }
}

/// Returns the group's alerts with the firing ones first, otherwise in the order received.
fn firing_first(notification: &Notification) -> Vec<&Alert> {
    let mut alerts: Vec<&Alert> = notification.alerts.iter().collect();
    alerts.sort_by_key(|alert| !alert.is_firing());
    alerts
}

/// Returns the mrkdwn reference to a bundle: a link when an external URL is set, else its id.
fn bundle_reference(id: &str, settings: &SlackSettings) -> String {
    let url = settings
        .external_url
        .as_deref()
        .map(|base| format!("{}/logs/{id}", base.trim().trim_end_matches('/')));
    match url.and_then(|url| link(&url, id)) {
        Some(linked) => linked,
        None => format!("`{}`", escape::code(id)),
    }
}

fn capture_title(notification: Option<&Notification>, alerts: &[&Alert]) -> String {
    let Some(primary) = alerts.first() else {
        return match notification {
            None => "Manual capture".to_string(),
            Some(_) => "Alert group capture".to_string(),
        };
    };

    let mut title = format!("{} {}", primary.name(), primary.status);
    if alerts.len() > 1 {
        title.push_str(&format!(" (+{} more)", group_thousands(alerts.len() - 1)));
    }
    escape::mrkdwn_line(&title)
}

fn resolved_title(alerts: &[&Alert]) -> String {
    let name = alerts.first().map_or("alert group", |alert| alert.name());
    let mut title = format!("Resolved: {name}");
    if alerts.len() > 1 {
        title.push_str(&format!(" (+{} more)", group_thousands(alerts.len() - 1)));
    }
    escape::mrkdwn_line(&title)
}

fn capture_fields(
    notice: &CaptureNotice<'_>,
    primary: Option<&Alert>,
    bundle_ref: &str,
) -> Vec<String> {
    let mut fields = Vec::new();
    match primary {
        Some(alert) => {
            let severity = label_of(alert, notice.notification, "severity");
            let instance = label_of(alert, notice.notification, "instance");
            fields.push(field("Status", &escape::mrkdwn_line(&alert.status)));
            fields.push(field(
                "Severity",
                &escape::mrkdwn_line(severity.unwrap_or("not set")),
            ));
            fields.push(field(
                "Instance",
                &escape::mrkdwn_line(instance.unwrap_or("not set")),
            ));
        }
        None => fields.push(field("Status", "manual")),
    }

    let host = notice
        .snapshot
        .host
        .hostname
        .as_deref()
        .unwrap_or("not read");
    fields.push(field("Host", &escape::mrkdwn_line(host)));
    fields.push(field("Captured", &format_time(notice.bundle.captured_at)));
    fields.push(field("Bundle", bundle_ref));
    if let Some(source) = primary.and_then(|alert| link(&alert.generator_url, "Prometheus")) {
        fields.push(field("Source", &source));
    }
    fields
}

fn field(name: &str, value: &str) -> String {
    format!("*{name}*\n{value}")
}

/// Returns the alert's label, or the group's common label of that name.
fn label_of<'a>(
    alert: &'a Alert,
    notification: Option<&'a Notification>,
    key: &str,
) -> Option<&'a str> {
    let common = notification.and_then(|n| n.common_labels.get(key));
    alert.label(key).or(common.map(String::as_str))
}

/// Returns the alert's `summary` annotation, or the group's common one.
fn summary_of<'a>(alert: &'a Alert, notification: Option<&'a Notification>) -> Option<&'a str> {
    let common = notification.and_then(|n| n.common_annotations.get("summary"));
    alert.annotation("summary").or(common.map(String::as_str))
}

/// Returns "1 firing, 1 resolved, +3 not included by Alertmanager" when the group has more
/// than one alert or Alertmanager left some out.
fn count_line(notification: &Notification) -> Option<String> {
    if notification.alerts.len() > 1 || notification.truncated_alerts > 0 {
        Some(escape::mrkdwn_line(&notification.count_summary()))
    } else {
        None
    }
}

/// Returns the process table rows, escaped for a code block, with a header row first.
fn process_table(snapshot: &Snapshot) -> Vec<String> {
    let top = report::top_by_cpu(snapshot, TOP_PROCESSES);
    if top.is_empty() {
        return vec!["no processes were read".to_string()];
    }

    let header = format!(
        "{:>7} {:<10} {:>5} {:>5} COMMAND",
        "PID", "USER", "%CPU", "%MEM"
    );
    let mut rows = vec![header];
    rows.extend(top.into_iter().map(process_row));
    rows
}

fn process_row(process: &Process) -> String {
    let user = match (&process.user, process.uid) {
        (Some(user), _) => user.clone(),
        (None, Some(uid)) => uid.to_string(),
        (None, None) => "?".to_string(),
    };
    let command = if process.cmdline.is_empty() {
        format!("[{}]", process.name)
    } else {
        process.cmdline.clone()
    };

    let row = format!(
        "{:>7} {:<10} {:>5} {:>5} {}",
        process.pid,
        clip(&user, MAX_USER_CHARS),
        percent(process.cpu_pct),
        percent(process.mem_pct),
        clip(&command, MAX_COMMAND_CHARS),
    );
    truncate(&escape::code(&row), MAX_ROW_UNITS).into_owned()
}

fn percent(value: Option<f64>) -> String {
    match value {
        Some(value) => format!("{value:.1}"),
        None => "-".to_string(),
    }
}

/// Returns the memory and load, CPU, and fullest-filesystem lines.
fn resource_lines(snapshot: &Snapshot) -> String {
    let mut memory = report::memory_headline(snapshot);
    if let Some(cpus) = snapshot.host.cpu_count {
        memory.push_str(&format!(" on {cpus} CPUs"));
    }
    let filesystem = match report::fullest_filesystem(snapshot) {
        Some(filesystem) => report::filesystem_headline(filesystem),
        None => "none read".to_string(),
    };

    format!(
        "*Memory and load* {}\n*CPU* {}\n*Fullest filesystem* {}",
        escape::mrkdwn_line(&memory),
        escape::mrkdwn_line(&report::cpu_headline(snapshot)),
        escape::mrkdwn_line(&filesystem),
    )
}

/// Returns the alert list: the first 20 alerts one per line, then one line counting the rest
/// and naming the bundle that lists them.
fn alert_list(alerts: &[&Alert], notification: Option<&Notification>, bundle_ref: &str) -> String {
    let (listed, rest) = alerts.split_at(alerts.len().min(MAX_LISTED_ALERTS));
    let mut lines: Vec<String> = listed
        .iter()
        .map(|alert| alert_line(alert, notification))
        .collect();
    if !rest.is_empty() {
        lines.push(more_alerts_line(rest, Some(bundle_ref)));
    }
    format!("*Alerts in this group*\n{}", lines.join("\n"))
}

/// Returns "+19,980 more alerts: 19,980 firing, 0 resolved; all in the bundle `<id>`" for the
/// alerts left out of a list. `bundle_ref` is already mrkdwn.
fn more_alerts_line(rest: &[&Alert], bundle_ref: Option<&str>) -> String {
    let firing = rest.iter().filter(|alert| alert.is_firing()).count();
    let resolved = rest.iter().filter(|alert| alert.is_resolved()).count();
    let other = rest.len() - firing - resolved;

    let mut line = format!(
        "+{} more alerts: {} firing, {} resolved",
        group_thousands(rest.len()),
        group_thousands(firing),
        group_thousands(resolved)
    );
    if other > 0 {
        line.push_str(&format!(", {} with another status", group_thousands(other)));
    }
    if let Some(bundle_ref) = bundle_ref {
        line.push_str(&format!("; all in the bundle {bundle_ref}"));
    }
    line
}

/// Formats a count with a comma between groups of three digits: `19,980`.
fn group_thousands(count: usize) -> String {
    let digits = count.to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped
}

/// Returns one alert as a list line: status marker, name, status, instance and summary, cut
/// to a fixed length, then the link to its source.
fn alert_line(alert: &Alert, notification: Option<&Notification>) -> String {
    let marker = if alert.is_firing() {
        ":fire:"
    } else {
        ":white_check_mark:"
    };
    let mut text = format!(
        "{marker} *{}* {}",
        escape::mrkdwn_line(alert.name()),
        escape::mrkdwn_line(&alert.status)
    );
    if let Some(instance) = label_of(alert, notification, "instance") {
        text.push_str(&format!(" · {}", escape::mrkdwn_line(instance)));
    }
    if let Some(summary) = alert.annotation("summary") {
        text.push_str(&format!(" · {}", escape::mrkdwn_line(summary)));
    }

    let mut line = truncate(&text, MAX_ALERT_LINE).into_owned();
    if let Some(source) = link(&alert.generator_url, "source") {
        line.push_str(&format!(" · {source}"));
    }
    line
}

fn resolved_line(alert: &Alert, notification: &Notification) -> String {
    let mut text = format!(":white_check_mark: *{}*", escape::mrkdwn_line(alert.name()));
    if let Some(instance) = label_of(alert, Some(notification), "instance") {
        text.push_str(&format!(" on {}", escape::mrkdwn_line(instance)));
    }
    text.push(' ');
    text.push_str(&fired_for(alert));
    truncate(&text, MAX_ALERT_LINE).into_owned()
}

/// Describes how long an alert fired, from `startsAt` to `endsAt`.
fn fired_for(alert: &Alert) -> String {
    match (alert.starts_at, alert.ends_at()) {
        (Some(start), Some(end)) if end < start => format!(
            "duration unknown (endsAt before startsAt): started {}, ended {}",
            format_time(start),
            format_time(end)
        ),
        (Some(start), Some(end)) => format!(
            "fired for {} ({} to {})",
            format_duration(end - start),
            format_time(start),
            format_time(end)
        ),
        (Some(start), None) => format!(
            "fired since {}; Alertmanager sent no end time",
            format_time(start)
        ),
        (None, _) => "fired for an unknown time; Alertmanager sent no start time".to_string(),
    }
}

fn capture_fallback(notice: &CaptureNotice<'_>, alerts: &[&Alert]) -> String {
    let host = notice
        .snapshot
        .host
        .hostname
        .as_deref()
        .unwrap_or("unknown host");
    let mut text = match alerts.first() {
        Some(alert) => {
            let mut subject = format!("{} {}", alert.name(), alert.status);
            if let Some(instance) = label_of(alert, notice.notification, "instance") {
                subject.push_str(&format!(" on {instance}"));
            }
            if let Some(summary) = summary_of(alert, notice.notification) {
                subject.push_str(&format!(": {summary}"));
            }
            escape::mrkdwn_line(&subject)
        }
        None => escape::mrkdwn_line(&format!("Manual capture on {host}")),
    };

    if let Some(line) = notice.notification.and_then(count_line) {
        text.push_str(&format!(" ({line})"));
    }
    text.push_str(&format!(
        ". Bundle {}.",
        escape::mrkdwn_line(&notice.bundle.id)
    ));
    fallback_text(&text)
}

fn resolved_fallback(alerts: &[&Alert], original_bundle: Option<&str>) -> String {
    let mut names = counted_names(alerts);
    let distinct = names.len();
    names.truncate(MAX_LISTED_ALERTS);
    if distinct > names.len() {
        let more = distinct - names.len();
        names.push(format!("+{} more", group_thousands(more)));
    }
    let mut text = escape::mrkdwn_line(&format!("Resolved: {}", names.join(", ")));
    if let Some(id) = original_bundle {
        text.push_str(&format!(". Bundle {}.", escape::mrkdwn_line(id)));
    }
    fallback_text(&text)
}

/// Lists each alert name once, in order of first appearance, with `×N` when it repeats
/// (`Mixed ×2, DiskFull`).
fn counted_names(alerts: &[&Alert]) -> Vec<String> {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    let mut index: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for alert in alerts {
        let name = alert.name();
        match index.get(name) {
            Some(&at) => counts[at].1 += 1,
            None => {
                index.insert(name, counts.len());
                counts.push((name, 1));
            }
        }
    }
    counts
        .into_iter()
        .map(|(name, count)| match count {
            1 => name.to_string(),
            _ => format!("{name} ×{count}"),
        })
        .collect()
}

fn format_time(time: DateTime<Utc>) -> String {
    time.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// Formats a duration as its two largest units (`2h 5m`, `12m 30s`, `45s`); negative
/// durations count as zero, so callers must catch an end before the start themselves.
fn format_duration(duration: TimeDelta) -> String {
    let secs = duration.num_seconds().max(0);
    let (days, hours, minutes, seconds) = (
        secs / 86_400,
        secs % 86_400 / 3600,
        secs % 3600 / 60,
        secs % 60,
    );
    if days > 0 {
        format!("{days}d {hours}h")
    } else if hours > 0 {
        format!("{hours}h {minutes}m")
    } else if minutes > 0 {
        format!("{minutes}m {seconds}s")
    } else {
        format!("{seconds}s")
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use aegisir_platform::{Filesystem, Host, LoadAverage, Memory, Processes};
    use chrono::TimeZone;

    use super::*;
    use crate::slack::blocks::{
        MAX_BLOCKS, MAX_CONTEXT_TEXT, MAX_FALLBACK_TEXT, MAX_FIELDS, MAX_FIELD_TEXT,
        MAX_HEADER_TEXT, MAX_PAYLOAD_BYTES, MAX_SECTION_TEXT,
    };
    use crate::slack::escape::units;

    const BUNDLE_ID: &str = "2026-12-03T21-45-38.812Z_9f2c4e1a7b3d";
    const GIB: u64 = 1 << 30;

    fn at(hour: u32, minute: u32, second: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 3, hour, minute, second)
            .unwrap()
    }

    fn bundle() -> BundleInfo {
        BundleInfo {
            id: BUNDLE_ID.to_string(),
            path: PathBuf::from("/data").join(BUNDLE_ID),
            digest: "9f2c4e1a7b3d".repeat(5),
            bytes_written: 4096,
            captured_at: at(21, 45, 38),
        }
    }

    fn process(pid: i32, name: &str, cmdline: &str, cpu_pct: f64) -> Process {
        Process {
            pid,
            uid: Some(0),
            user: Some("root".to_string()),
            state: "R".to_string(),
            name: name.to_string(),
            cmdline: cmdline.to_string(),
            cpu_pct: Some(cpu_pct),
            mem_pct: Some(1.5),
            rss_bytes: Some(1 << 20),
            ..Process::default()
        }
    }

    fn snapshot(processes: Vec<Process>) -> Snapshot {
        Snapshot {
            captured_at: at(21, 45, 38),
            host: Host {
                hostname: Some("web-1".to_string()),
                cpu_count: Some(4),
                load: Some(LoadAverage {
                    one: 3.2,
                    five: 2.9,
                    fifteen: 2.1,
                }),
                ..Host::default()
            },
            memory: Some(Memory {
                total_bytes: Some(16 * GIB),
                available_bytes: Some(4 * GIB),
                swap_total_bytes: Some(0),
                swap_free_bytes: Some(0),
                ..Memory::default()
            }),
            processes: Processes {
                list: processes,
                ..Processes::default()
            },
            filesystems: vec![Filesystem {
                source: "/dev/sda1".to_string(),
                mount_point: "/".to_string(),
                fs_type: "ext4".to_string(),
                size_bytes: Some(50 * GIB),
                used_bytes: Some(45 * GIB),
                available_bytes: Some(5 * GIB),
                use_pct: Some(90.0),
                ..Filesystem::default()
            }],
            ..Snapshot::default()
        }
    }

    fn busy_snapshot() -> Snapshot {
        snapshot(vec![
            process(1, "systemd", "/sbin/init", 0.1),
            process(4242, "stress-ng", "stress-ng --cpu 4", 398.5),
            process(77, "postgres", "postgres: writer", 12.0),
        ])
    }

    fn alert(name: &str, status: &str) -> Alert {
        let labels = [
            ("alertname", name),
            ("instance", "web-1:9100"),
            ("severity", "critical"),
        ];
        Alert {
            status: status.to_string(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            annotations: [("summary".to_string(), "CPU above 85%".to_string())].into(),
            starts_at: Some(at(21, 44, 0)),
            ends_at_raw: None,
            generator_url: "http://prom:9090/graph?g0.expr=up".to_string(),
            fingerprint: "a1b2c3d4e5f60718".to_string(),
        }
    }

    fn notification(alerts: Vec<Alert>) -> Notification {
        Notification {
            version: "4".to_string(),
            status: "firing".to_string(),
            receiver: "aegisir".to_string(),
            alerts,
            ..Notification::default()
        }
    }

    fn capture(notification: Option<&Notification>, snapshot: &Snapshot) -> Message {
        capture_with(notification, snapshot, &SlackSettings::default())
    }

    fn capture_with(
        notification: Option<&Notification>,
        snapshot: &Snapshot,
        settings: &SlackSettings,
    ) -> Message {
        let bundle = bundle();
        let notice = CaptureNotice {
            notification,
            snapshot,
            bundle: &bundle,
            incident_id: "inc-7",
        };
        capture_message(&notice, settings)
    }

    fn header_text(message: &Message) -> &str {
        assert_eq!(message.blocks[0]["type"], "header");
        message.blocks[0]["text"]["text"].as_str().unwrap()
    }

    fn field_texts(message: &Message) -> Vec<String> {
        message
            .blocks
            .iter()
            .filter_map(|block| block["fields"].as_array())
            .flatten()
            .map(|field| field["text"].as_str().unwrap().to_string())
            .collect()
    }

    fn section_texts(message: &Message) -> Vec<String> {
        message
            .blocks
            .iter()
            .filter_map(|block| block["text"]["text"].as_str())
            .filter(|_| true)
            .map(str::to_string)
            .collect()
    }

    fn context_texts(message: &Message) -> Vec<String> {
        message
            .blocks
            .iter()
            .filter(|block| block["type"] == "context")
            .map(|block| block["elements"][0]["text"].as_str().unwrap().to_string())
            .collect()
    }

    fn process_table_text(message: &Message) -> String {
        section_texts(message)
            .into_iter()
            .find(|text| text.starts_with(PROCESS_TABLE_TITLE))
            .expect("a process table section")
    }

    /// Asserts every Slack limit the message builder promises.
    fn assert_within_limits(message: &Message) {
        assert!(
            message.blocks.len() <= MAX_BLOCKS,
            "{} blocks",
            message.blocks.len()
        );
        let payload_bytes = serde_json::to_vec(message).unwrap().len();
        assert!(
            payload_bytes <= MAX_PAYLOAD_BYTES,
            "payload of {payload_bytes} bytes"
        );
        assert!(
            units(&message.text) <= MAX_FALLBACK_TEXT,
            "text of {} units",
            units(&message.text)
        );
        for block in &message.blocks {
            match block["type"].as_str().unwrap() {
                "header" => {
                    let text = block["text"]["text"].as_str().unwrap();
                    assert!(
                        units(text) <= MAX_HEADER_TEXT,
                        "header of {} units",
                        units(text)
                    );
                }
                "section" => {
                    let text = block["text"]["text"].as_str();
                    let fields = block["fields"].as_array();
                    assert!(text.is_some() || fields.is_some(), "empty section {block}");
                    if let Some(text) = text {
                        assert!(
                            units(text) <= MAX_SECTION_TEXT,
                            "section of {} units",
                            units(text)
                        );
                    }
                    for field in fields.into_iter().flatten() {
                        let text = field["text"].as_str().unwrap();
                        assert!(
                            units(text) <= MAX_FIELD_TEXT,
                            "field of {} units",
                            units(text)
                        );
                    }
                    assert!(fields.map_or(0, Vec::len) <= MAX_FIELDS);
                }
                "context" => {
                    for element in block["elements"].as_array().unwrap() {
                        let text = element["text"].as_str().unwrap();
                        assert!(
                            units(text) <= MAX_CONTEXT_TEXT,
                            "context of {} units",
                            units(text)
                        );
                    }
                }
                other => panic!("unexpected block type {other}"),
            }
        }
    }

    #[test]
    fn capture_message_names_alert_and_fields() {
        let group = notification(vec![alert("HighCPUUsage", "firing")]);

        let message = capture(Some(&group), &busy_snapshot());

        assert_eq!(header_text(&message), "HighCPUUsage firing");
        assert_eq!(
            field_texts(&message),
            vec![
                "*Status*\nfiring",
                "*Severity*\ncritical",
                "*Instance*\nweb-1:9100",
                "*Host*\nweb-1",
                "*Captured*\n2026-12-03 21:45:38 UTC",
                "*Bundle*\n`2026-12-03T21-45-38.812Z_9f2c4e1a7b3d`",
                "*Source*\n<http://prom:9090/graph?g0.expr=up|Prometheus>",
            ]
        );
        assert!(section_texts(&message).contains(&"*Summary*\nCPU above 85%".to_string()));
        assert_eq!(
            message.text,
            "HighCPUUsage firing on web-1:9100: CPU above 85%. \
             Bundle 2026-12-03T21-45-38.812Z_9f2c4e1a7b3d."
        );
        assert_within_limits(&message);
    }

    #[test]
    fn capture_message_shows_top_processes_busiest_first() {
        let group = notification(vec![alert("HighCPUUsage", "firing")]);

        let message = capture(Some(&group), &busy_snapshot());

        let table = process_table_text(&message);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0], PROCESS_TABLE_TITLE);
        assert_eq!(lines[1], "```");
        assert_eq!(lines[2], "    PID USER        %CPU  %MEM COMMAND");
        assert_eq!(lines[3], "   4242 root       398.5   1.5 stress-ng --cpu 4");
        assert_eq!(lines[4], "     77 root        12.0   1.5 postgres: writer");
        assert_eq!(lines[5], "      1 root         0.1   1.5 /sbin/init");
        assert_eq!(lines[6], "```");
    }

    #[test]
    fn capture_message_shows_memory_load_and_fullest_filesystem() {
        let group = notification(vec![alert("HighCPUUsage", "firing")]);
        let snapshot = busy_snapshot();

        let message = capture(Some(&group), &snapshot);

        let expected = format!(
            "*Memory and load* {} on 4 CPUs\n*CPU* {}\n*Fullest filesystem* {}",
            report::memory_headline(&snapshot),
            report::cpu_headline(&snapshot),
            report::filesystem_headline(&snapshot.filesystems[0]),
        );
        assert!(
            section_texts(&message).contains(&expected),
            "{:#?}",
            section_texts(&message)
        );
        assert!(expected.contains("/ 90% used"), "{expected}");
    }

    #[test]
    fn single_alert_has_no_count_line() {
        let group = notification(vec![alert("HighCPUUsage", "firing")]);

        let message = capture(Some(&group), &busy_snapshot());

        let contexts = context_texts(&message);
        assert_eq!(
            contexts,
            vec!["AegisIR · bundle `2026-12-03T21-45-38.812Z_9f2c4e1a7b3d` · incident inc-7"]
        );
    }

    #[test]
    fn truncated_alerts_give_count_line() {
        let mut group = notification(vec![alert("HighCPUUsage", "firing")]);
        group.truncated_alerts = 3;

        let message = capture(Some(&group), &busy_snapshot());

        let contexts = context_texts(&message);
        assert_eq!(
            contexts[0],
            "1 firing, 0 resolved, +3 not included by Alertmanager"
        );
        assert!(message
            .text
            .contains("(1 firing, 0 resolved, +3 not included by Alertmanager)"));
    }

    #[test]
    fn capture_message_escapes_channel_mentions() {
        let mut hostile = alert("<!channel>", "firing");
        hostile
            .labels
            .insert("instance".to_string(), "<!here>".to_string());
        hostile
            .annotations
            .insert("summary".to_string(), "<@U024BE7LH> & co".to_string());
        let group = notification(vec![hostile]);
        let snapshot = snapshot(vec![
            process(666, "<!channel>", "", 99.0),
            process(667, "x", "/bin/<!everyone> --flag=<b>", 98.0),
        ]);

        let message = capture(Some(&group), &snapshot);

        let json = serde_json::to_string(&message).unwrap();
        for raw in [
            "<!channel>",
            "<!here>",
            "<@U024BE7LH>",
            "<!everyone>",
            "<b>",
        ] {
            assert!(!json.contains(raw), "{raw} reached the message: {json}");
        }
        assert_eq!(header_text(&message), "&lt;!channel&gt; firing");
        assert!(field_texts(&message).contains(&"*Instance*\n&lt;!here&gt;".to_string()));
        assert!(
            section_texts(&message).contains(&"*Summary*\n&lt;@U024BE7LH&gt; &amp; co".to_string())
        );
        let table = process_table_text(&message);
        assert!(table.contains("[&lt;!channel&gt;]"), "{table}");
        assert!(
            table.contains("/bin/&lt;!everyone&gt; --flag=&lt;b&gt;"),
            "{table}"
        );
        assert!(
            message
                .text
                .starts_with("&lt;!channel&gt; firing on &lt;!here&gt;"),
            "{}",
            message.text
        );
    }

    #[test]
    fn capture_message_breaks_backticks_in_commands() {
        let snapshot = snapshot(vec![process(9, "sh", "sh -c ```\n<!channel>```", 50.0)]);

        let message = capture(None, &snapshot);

        let table = process_table_text(&message);
        assert_eq!(table.matches("```").count(), 2, "{table}");
        assert!(table.ends_with("\n```"));
        assert!(
            table.contains("sh -c `\u{200B}`\u{200B}` &lt;!channel&gt;`\u{200B}`\u{200B}`"),
            "{table}"
        );
    }

    #[test]
    fn manual_capture_message() {
        let message = capture(None, &busy_snapshot());

        assert_eq!(header_text(&message), "Manual capture");
        let fields = field_texts(&message);
        assert_eq!(fields[0], "*Status*\nmanual");
        assert!(!fields.iter().any(|field| field.starts_with("*Source*")));
        assert_eq!(
            message.text,
            "Manual capture on web-1. Bundle 2026-12-03T21-45-38.812Z_9f2c4e1a7b3d."
        );
        assert_within_limits(&message);
    }

    #[test]
    fn external_url_links_the_bundle() {
        let settings = SlackSettings {
            external_url: Some("https://aegisir.example.net/".to_string()),
            ..SlackSettings::default()
        };

        let message = capture_with(None, &busy_snapshot(), &settings);

        let expected =
            format!("*Bundle*\n<https://aegisir.example.net/logs/{BUNDLE_ID}|{BUNDLE_ID}>");
        assert!(
            field_texts(&message).contains(&expected),
            "{:?}",
            field_texts(&message)
        );
    }

    #[test]
    fn external_url_that_is_not_http_is_not_linked() {
        let settings = SlackSettings {
            external_url: Some("javascript:alert(1)//".to_string()),
            ..SlackSettings::default()
        };

        let message = capture_with(None, &busy_snapshot(), &settings);

        let json = serde_json::to_string(&message).unwrap();
        assert!(!json.contains("javascript:"), "{json}");
        assert!(field_texts(&message).contains(&format!("*Bundle*\n`{BUNDLE_ID}`")));
    }

    #[test]
    fn generator_url_is_linked_only_for_http() {
        let mut unsafe_alert = alert("HighCPUUsage", "firing");
        unsafe_alert.generator_url = "javascript:alert(document.cookie)".to_string();
        let group = notification(vec![unsafe_alert, alert("Other", "firing")]);

        let message = capture(Some(&group), &busy_snapshot());

        let json = serde_json::to_string(&message).unwrap();
        assert!(!json.contains("javascript:"), "{json}");
        assert!(!field_texts(&message)
            .iter()
            .any(|field| field.starts_with("*Source*")));
        let list = section_texts(&message)
            .into_iter()
            .find(|text| text.starts_with("*Alerts in this group*"))
            .unwrap();
        assert_eq!(list.matches("|source>").count(), 1, "{list}");
    }

    #[test]
    fn long_alert_name_header_is_cut() {
        let group = notification(vec![alert(&"N".repeat(300), "firing")]);

        let message = capture(Some(&group), &busy_snapshot());

        assert_eq!(units(header_text(&message)), MAX_HEADER_TEXT);
        assert_within_limits(&message);
    }

    #[test]
    fn process_table_of_120_rows_stays_within_limits() {
        let processes: Vec<Process> = (0..120)
            .map(|pid| {
                let cmdline = format!("/usr/bin/worker-{pid} ```<!channel>``` {}", "&".repeat(600));
                process(
                    pid + 100,
                    &format!("worker-{pid}"),
                    &cmdline,
                    f64::from(pid),
                )
            })
            .collect();
        let group = notification(vec![alert("HighCPUUsage", "firing")]);

        let message = capture(Some(&group), &snapshot(processes));

        assert_within_limits(&message);
        let table = process_table_text(&message);
        assert_eq!(table.lines().count(), 3 + 1 + TOP_PROCESSES, "{table}");
        assert_eq!(table.matches("```").count(), 2, "{table}");
        assert!(table
            .lines()
            .nth(3)
            .unwrap()
            .starts_with("    219 root       119.0"));
    }

    #[test]
    fn sixty_alert_group_stays_within_limits() {
        let alerts: Vec<Alert> = (0..60)
            .map(|i| {
                let status = if i % 2 == 0 { "resolved" } else { "firing" };
                let mut alert = alert(&format!("Alert{i:02}"), status);
                alert
                    .annotations
                    .insert("summary".to_string(), format!("<{i}> {}", "s".repeat(3000)));
                alert.generator_url =
                    format!("http://prom:9090/graph?g0.expr={}", "x".repeat(1500));
                alert
            })
            .collect();
        let mut group = notification(alerts);
        group.truncated_alerts = 3;

        let message = capture(Some(&group), &busy_snapshot());

        assert_within_limits(&message);
        assert_eq!(header_text(&message), "Alert01 firing (+59 more)");
        let contexts = context_texts(&message);
        assert_eq!(
            contexts[0],
            "30 firing, 30 resolved, +3 not included by Alertmanager"
        );
        assert!(
            contexts[1].ends_with(&format!("the full capture is in bundle `{BUNDLE_ID}`.")),
            "{}",
            contexts[1]
        );
        assert!(contexts[2].starts_with("AegisIR · bundle"));
    }

    #[test]
    fn alert_group_lists_firing_first() {
        let alerts = vec![
            alert("OldDisk", "resolved"),
            alert("HighCPUUsage", "firing"),
            alert("OldMemory", "resolved"),
            alert("HighLoad", "firing"),
        ];
        let group = notification(alerts);

        let message = capture(Some(&group), &busy_snapshot());

        let list = section_texts(&message)
            .into_iter()
            .find(|text| text.starts_with("*Alerts in this group*"))
            .unwrap();
        let names: Vec<&str> = list
            .lines()
            .skip(1)
            .map(|line| line.split('*').nth(1).unwrap())
            .collect();
        assert_eq!(
            names,
            vec!["HighCPUUsage", "HighLoad", "OldDisk", "OldMemory"]
        );
        assert!(list
            .lines()
            .nth(1)
            .unwrap()
            .starts_with(":fire: *HighCPUUsage* firing · web-1:9100"));
        assert!(list
            .lines()
            .nth(3)
            .unwrap()
            .starts_with(":white_check_mark: *OldDisk* resolved"));
        assert_eq!(header_text(&message), "HighCPUUsage firing (+3 more)");
        assert_eq!(context_texts(&message)[0], "2 firing, 2 resolved");
    }

    #[test]
    fn resolved_message_names_duration_and_bundle() {
        let mut resolved = alert("DiskFull", "resolved");
        resolved.starts_at = Some(at(21, 0, 0));
        resolved.ends_at_raw = Some(at(21, 30, 0));
        let group = notification(vec![resolved]);

        let message = resolved_message(&group, Some(BUNDLE_ID), &SlackSettings::default());

        assert_eq!(header_text(&message), "Resolved: DiskFull");
        assert_eq!(
            section_texts(&message),
            vec![
                "Resolved: DiskFull".to_string(),
                ":white_check_mark: *DiskFull* on web-1:9100 fired for 30m 0s \
                 (2026-12-03 21:00:00 UTC to 2026-12-03 21:30:00 UTC)"
                    .to_string(),
            ]
        );
        assert_eq!(
            context_texts(&message),
            vec![format!("Captured when it fired: bundle `{BUNDLE_ID}`")]
        );
        assert_eq!(
            message.text,
            format!("Resolved: DiskFull. Bundle {BUNDLE_ID}.")
        );
        assert_within_limits(&message);
    }

    #[test]
    fn resolved_message_without_end_time_or_bundle() {
        let mut resolved = alert("DiskFull", "resolved");
        resolved.ends_at_raw = "0001-01-01T00:00:00Z".parse().ok();
        let group = notification(vec![resolved]);

        let message = resolved_message(&group, None, &SlackSettings::default());

        let line = &section_texts(&message)[1];
        assert_eq!(
            line,
            ":white_check_mark: *DiskFull* on web-1:9100 fired since 2026-12-03 21:44:00 UTC; \
             Alertmanager sent no end time"
        );
        assert_eq!(
            context_texts(&message),
            vec!["No capture was recorded for this alert group."]
        );
        assert_eq!(message.text, "Resolved: DiskFull");
    }

    #[test]
    fn resolved_message_lists_only_resolved_alerts() {
        let group = notification(vec![
            alert("StillFiring", "firing"),
            alert("DiskFull", "resolved"),
            alert("HighLoad", "resolved"),
        ]);

        let message = resolved_message(&group, Some(BUNDLE_ID), &SlackSettings::default());

        assert_eq!(header_text(&message), "Resolved: DiskFull (+1 more)");
        let lines = &section_texts(&message)[1];
        assert_eq!(lines.lines().count(), 2, "{lines}");
        assert!(!lines.contains("StillFiring"));
        assert_eq!(context_texts(&message)[0], "1 firing, 2 resolved");
    }

    fn alert_list_text(message: &Message) -> String {
        let sections = section_texts(message);
        let start = sections
            .iter()
            .position(|text| text.starts_with("*Alerts in this group*"))
            .expect("an alert list section");
        sections[start..]
            .iter()
            .take_while(|text| !text.starts_with("AegisIR"))
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Returns `count` firing alerts named `Alert00000` and up; with `resolved_every` set, every
    /// alert whose number divides by it is resolved instead.
    fn many_alerts(count: usize, resolved_every: Option<usize>) -> Vec<Alert> {
        (0..count)
            .map(|i| {
                let resolved = resolved_every.is_some_and(|every| i % every == 0);
                let status = if resolved { "resolved" } else { "firing" };
                alert(&format!("Alert{i:05}"), status)
            })
            .collect()
    }

    #[test]
    fn twenty_thousand_alert_group_lists_twenty() {
        let group = notification(many_alerts(20_000, None));

        let message = capture(Some(&group), &busy_snapshot());

        assert_within_limits(&message);
        assert!(message.blocks.len() <= MAX_BLOCKS);
        let payload_bytes = serde_json::to_vec(&message).unwrap().len();
        assert!(payload_bytes < 20_000, "payload of {payload_bytes} bytes");
        assert_eq!(header_text(&message), "Alert00000 firing (+19,999 more)");
        let list = alert_list_text(&message);
        let lines: Vec<&str> = list.lines().collect();
        assert_eq!(lines.len(), 1 + MAX_LISTED_ALERTS + 1, "{list}");
        assert!(
            lines[1].starts_with(":fire: *Alert00000* firing"),
            "{}",
            lines[1]
        );
        assert!(
            lines[20].starts_with(":fire: *Alert00019* firing"),
            "{}",
            lines[20]
        );
        assert_eq!(
            lines[21],
            format!(
                "+19,980 more alerts: 19,980 firing, 0 resolved; all in the bundle `{BUNDLE_ID}`"
            )
        );
        let left_out = context_texts(&message)
            .iter()
            .any(|text| text.contains("left out"));
        assert!(!left_out, "blocks were cut: {:?}", context_texts(&message));
    }

    #[test]
    fn alert_summary_line_counts_rest_by_status() {
        let group = notification(many_alerts(20_000, Some(4)));

        let message = capture(Some(&group), &busy_snapshot());

        assert_within_limits(&message);
        let list = alert_list_text(&message);
        let last = list.lines().last().unwrap();
        assert_eq!(
            last,
            format!("+19,980 more alerts: 14,980 firing, 5,000 resolved; all in the bundle `{BUNDLE_ID}`")
        );
        assert!(
            !list.contains("*Alert00000*"),
            "a resolved alert was listed before firing ones"
        );
        assert_eq!(context_texts(&message)[0], "15000 firing, 5000 resolved");
    }

    #[test]
    fn alert_summary_line_counts_other_statuses() {
        let mut alerts = many_alerts(25, None);
        alerts[24].status = "suppressed".to_string();
        let group = notification(alerts);

        let message = capture(Some(&group), &busy_snapshot());

        let list = alert_list_text(&message);
        assert_eq!(
            list.lines().last().unwrap(),
            format!(
                "+5 more alerts: 4 firing, 0 resolved, 1 with another status; \
                 all in the bundle `{BUNDLE_ID}`"
            )
        );
    }

    #[test]
    fn twenty_alert_group_has_no_summary_line() {
        let group = notification(many_alerts(MAX_LISTED_ALERTS, None));

        let message = capture(Some(&group), &busy_snapshot());

        let list = alert_list_text(&message);
        assert_eq!(list.lines().count(), 1 + MAX_LISTED_ALERTS, "{list}");
        assert!(!list.contains("more alerts"), "{list}");
    }

    #[test]
    fn huge_alert_texts_stay_within_payload_bound() {
        let alerts: Vec<Alert> = (0..20_000)
            .map(|i| {
                let mut alert = alert(&format!("Alert{i:05}{}", "n".repeat(200)), "firing");
                alert.annotations.insert(
                    "summary".to_string(),
                    format!("\"{i}\" {}", "<&>".repeat(2000)),
                );
                alert.generator_url =
                    format!("http://prom:9090/graph?g0.expr={}", "x".repeat(1900));
                alert
            })
            .collect();
        let group = notification(alerts);

        let message = capture(Some(&group), &busy_snapshot());

        assert_within_limits(&message);
        let payload_bytes = serde_json::to_vec(&message).unwrap().len();
        assert!(
            payload_bytes <= MAX_PAYLOAD_BYTES,
            "payload of {payload_bytes} bytes"
        );
        let contexts = context_texts(&message);
        let notice = &contexts[contexts.len() - 2];
        assert!(
            notice.ends_with(&format!("the full capture is in bundle `{BUNDLE_ID}`.")),
            "{notice}"
        );
        assert!(contexts.last().unwrap().starts_with("AegisIR · bundle"));
        assert_eq!(message.blocks[0]["type"], "header");
    }

    #[test]
    fn resolved_fallback_lists_each_name_once() {
        let mixed = Alert {
            status: "resolved".to_string(),
            labels: [("alertname".to_string(), "Mixed".to_string())].into(),
            ..Alert::default()
        };
        let disk = Alert {
            labels: [("alertname".to_string(), "DiskFull".to_string())].into(),
            ..mixed.clone()
        };
        let text = resolved_fallback(&[&mixed, &disk, &mixed], Some("b1"));
        assert_eq!(text, "Resolved: Mixed ×2, DiskFull. Bundle b1.");
    }

    #[test]
    fn twenty_thousand_resolved_alerts_list_twenty() {
        let group = notification(many_alerts(20_000, Some(1)));

        let message = resolved_message(&group, Some(BUNDLE_ID), &SlackSettings::default());

        assert_within_limits(&message);
        assert_eq!(header_text(&message), "Resolved: Alert00000 (+19,999 more)");
        let lines = &section_texts(&message)[1];
        assert_eq!(lines.lines().count(), MAX_LISTED_ALERTS + 1, "{lines}");
        assert_eq!(
            lines.lines().last().unwrap(),
            "+19,980 more alerts: 0 firing, 19,980 resolved"
        );
        assert!(
            message
                .text
                .ends_with(&format!("Alert00019, +19,980 more. Bundle {BUNDLE_ID}.")),
            "{}",
            message.text
        );
    }

    #[test]
    fn group_thousands_inserts_commas() {
        assert_eq!(group_thousands(0), "0");
        assert_eq!(group_thousands(999), "999");
        assert_eq!(group_thousands(1000), "1,000");
        assert_eq!(group_thousands(19_980), "19,980");
        assert_eq!(group_thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn end_before_start_has_unknown_duration() {
        let mut resolved = alert("DiskFull", "resolved");
        resolved.starts_at = Some(at(21, 30, 0));
        resolved.ends_at_raw = Some(at(21, 0, 0));
        let group = notification(vec![resolved]);

        let message = resolved_message(&group, Some(BUNDLE_ID), &SlackSettings::default());

        assert_eq!(
            section_texts(&message)[1],
            ":white_check_mark: *DiskFull* on web-1:9100 duration unknown (endsAt before \
             startsAt): started 2026-12-03 21:30:00 UTC, ended 2026-12-03 21:00:00 UTC"
        );
        assert!(!section_texts(&message)[1].contains("0s"));
    }

    #[test]
    fn end_equal_to_start_fired_for_zero() {
        let mut resolved = alert("Blip", "resolved");
        resolved.starts_at = Some(at(21, 0, 0));
        resolved.ends_at_raw = Some(at(21, 0, 0));
        let group = notification(vec![resolved]);

        let message = resolved_message(&group, None, &SlackSettings::default());

        assert!(
            section_texts(&message)[1].contains("fired for 0s (2026-12-03 21:00:00 UTC to"),
            "{}",
            section_texts(&message)[1]
        );
    }

    #[test]
    fn format_duration_uses_two_largest_units() {
        assert_eq!(format_duration(TimeDelta::seconds(45)), "45s");
        assert_eq!(format_duration(TimeDelta::seconds(750)), "12m 30s");
        assert_eq!(
            format_duration(TimeDelta::seconds(2 * 3600 + 5 * 60 + 9)),
            "2h 5m"
        );
        assert_eq!(format_duration(TimeDelta::seconds(27 * 3600)), "1d 3h");
        assert_eq!(format_duration(TimeDelta::seconds(-5)), "0s");
    }
}
