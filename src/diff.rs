//! The audit comparison of two snapshots: what changed on the host between captures A and B.
//!
//! A process is the same in both only when its pid and its start time in clock ticks match,
//! so a reused pid shows as one process exited and another appeared. Values that one side
//! could not read stay `None` and are never counted as zero.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::Path;

use aegisir_platform::{Filesystem, ListeningSocket, Process, Snapshot, SCHEMA_VERSION};
use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// Number of entries in each "largest change" list.
pub const TOP_CHANGES: usize = 10;

/// Rows shown per list in the text output; the JSON output has every row.
const TEXT_ROWS: usize = 20;

/// Characters of a command line shown in the text output.
const TEXT_CMDLINE_CHARS: usize = 60;

/// Everything that differs between two snapshots.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Diff {
    pub a: Side,
    pub b: Side,
    /// Reasons to read the comparison with care, such as different hosts or boots.
    pub warnings: Vec<String>,
    pub headline: Headline,
    /// Processes in B but not in A, by CPU use in B, highest first.
    pub processes_appeared: Vec<ProcessRef>,
    /// Processes in A but not in B, by CPU use in A, highest first.
    pub processes_exited: Vec<ProcessRef>,
    /// The processes in both whose CPU use changed most, largest change first.
    pub cpu_changes: Vec<ProcessChange>,
    /// The processes in both whose resident size changed most, largest change first.
    pub memory_changes: Vec<ProcessChange>,
    /// Listening sockets in B but not in A, matched by protocol, address and port.
    pub listening_opened: Vec<ListeningSocket>,
    /// Listening sockets in A but not in B.
    pub listening_closed: Vec<ListeningSocket>,
    /// Filesystems whose usage changed, or that were mounted or unmounted, by the size of the
    /// change.
    pub filesystems: Vec<FilesystemChange>,
}

/// The capture on one side of the comparison.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Side {
    pub captured_at: DateTime<Utc>,
    pub hostname: Option<String>,
    pub boot_time: Option<DateTime<Utc>>,
    pub processes: usize,
}

/// Host-wide values before and after.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Headline {
    pub cpu_busy_pct: Change<f64>,
    pub load_one: Change<f64>,
    pub load_five: Change<f64>,
    pub load_fifteen: Change<f64>,
    pub memory_used_bytes: Change<u64>,
    pub memory_available_bytes: Change<u64>,
    pub swap_used_bytes: Change<u64>,
    pub process_count: Change<u64>,
}

/// A value in A and in B, and B minus A where both are known.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Change<T> {
    pub before: Option<T>,
    pub after: Option<T>,
    pub delta: Option<f64>,
}

impl Change<f64> {
    fn of_f64(before: Option<f64>, after: Option<f64>) -> Self {
        let delta = before.zip(after).map(|(a, b)| b - a);
        Change {
            before,
            after,
            delta,
        }
    }
}

impl Change<u64> {
    fn of_u64(before: Option<u64>, after: Option<u64>) -> Self {
        let delta = before.zip(after).map(|(a, b)| b as f64 - a as f64);
        Change {
            before,
            after,
            delta,
        }
    }
}

/// A process as the comparison lists it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ProcessRef {
    pub pid: i32,
    pub start_ticks: u64,
    pub name: String,
    pub user: Option<String>,
    pub cmdline: String,
    pub cpu_pct: Option<f64>,
    pub rss_bytes: Option<u64>,
}

impl From<&Process> for ProcessRef {
    fn from(process: &Process) -> Self {
        ProcessRef {
            pid: process.pid,
            start_ticks: process.start_ticks,
            name: process.name.clone(),
            user: process.user.clone(),
            cmdline: process.cmdline.clone(),
            cpu_pct: process.cpu_pct,
            rss_bytes: process.rss_bytes,
        }
    }
}

/// A process present in both snapshots, with one of its values before and after.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProcessChange {
    /// The process as B shows it.
    pub process: ProcessRef,
    pub before: f64,
    pub after: f64,
    pub delta: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FilesystemStatus {
    Changed,
    Mounted,
    Unmounted,
}

/// One mount point's usage before and after.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FilesystemChange {
    pub mount_point: String,
    pub source: String,
    pub fs_type: String,
    pub status: FilesystemStatus,
    pub use_pct: Change<f64>,
    pub used_bytes: Change<u64>,
    pub size_bytes: Change<u64>,
}

/// Reads a snapshot from a bundle directory or a `snapshot.json` file.
pub fn load_snapshot(path: &Path) -> anyhow::Result<Snapshot> {
    let file = if path.is_dir() {
        path.join("snapshot.json")
    } else {
        path.to_path_buf()
    };
    let bytes = std::fs::read(&file).with_context(|| {
        format!(
            "failed to read {}; pass a bundle directory or a snapshot.json file",
            file.display()
        )
    })?;

    let value: serde_json::Value = serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not valid JSON", file.display()))?;
    let Some(version) = value.get("schema_version").and_then(|v| v.as_u64()) else {
        bail!(
            "{} is not a snapshot: it has no numeric schema_version",
            file.display()
        );
    };
    if version != u64::from(SCHEMA_VERSION) {
        bail!(
            "{} has snapshot schema_version {version}, but this aegisir reads version {SCHEMA_VERSION}",
            file.display()
        );
    }
    serde_json::from_value(value)
        .with_context(|| format!("{} is not a valid snapshot", file.display()))
}

/// Compares snapshot A (earlier) with snapshot B (later).
pub fn diff(a: &Snapshot, b: &Snapshot) -> Diff {
    let (appeared, exited, both) = match_processes(a, b);
    let (opened, closed) = compare_listening(a, b);

    Diff {
        a: side(a),
        b: side(b),
        warnings: warnings(a, b),
        headline: headline(a, b),
        processes_appeared: appeared,
        processes_exited: exited,
        cpu_changes: largest_changes(&both, |p| p.cpu_pct),
        memory_changes: largest_changes(&both, |p| p.rss_bytes.map(|bytes| bytes as f64)),
        listening_opened: opened,
        listening_closed: closed,
        filesystems: compare_filesystems(a, b),
    }
}

fn side(snapshot: &Snapshot) -> Side {
    Side {
        captured_at: snapshot.captured_at,
        hostname: snapshot.host.hostname.clone(),
        boot_time: snapshot.host.boot_time,
        processes: snapshot.processes.list.len(),
    }
}

fn warnings(a: &Snapshot, b: &Snapshot) -> Vec<String> {
    let mut warnings = Vec::new();
    if let (Some(host_a), Some(host_b)) = (&a.host.hostname, &b.host.hostname) {
        if host_a != host_b {
            warnings.push(format!("A is from host {host_a}, B from host {host_b}"));
        }
    }
    if !same_boot(a, b) {
        warnings.push(
            "A and B are from different boots, so no process can be matched between them"
                .to_string(),
        );
    }
    if b.captured_at < a.captured_at {
        warnings.push("B was captured before A; the changes read backwards".to_string());
    }
    warnings
}

/// False when both snapshots know their boot time and the times differ, because start ticks
/// then count from different boots.
fn same_boot(a: &Snapshot, b: &Snapshot) -> bool {
    match (a.host.boot_time, b.host.boot_time) {
        // The kernel's btime is whole seconds; a second of difference is rounding.
        (Some(boot_a), Some(boot_b)) => (boot_a - boot_b).num_seconds().abs() <= 1,
        _ => true,
    }
}

fn headline(a: &Snapshot, b: &Snapshot) -> Headline {
    let busy = |s: &Snapshot| s.cpu.as_ref().map(|cpu| cpu.total.busy_pct);
    let load = |s: &Snapshot| s.host.load;
    let memory_used = |s: &Snapshot| {
        let memory = s.memory.as_ref()?;
        Some(memory.total_bytes?.saturating_sub(memory.available_bytes?))
    };
    let available = |s: &Snapshot| s.memory.as_ref().and_then(|m| m.available_bytes);
    let swap_used = |s: &Snapshot| {
        let memory = s.memory.as_ref()?;
        Some(
            memory
                .swap_total_bytes?
                .saturating_sub(memory.swap_free_bytes?),
        )
    };
    let count = |s: &Snapshot| Some(u64::from(s.processes.total));

    Headline {
        cpu_busy_pct: Change::of_f64(busy(a), busy(b)),
        load_one: Change::of_f64(load(a).map(|l| l.one), load(b).map(|l| l.one)),
        load_five: Change::of_f64(load(a).map(|l| l.five), load(b).map(|l| l.five)),
        load_fifteen: Change::of_f64(load(a).map(|l| l.fifteen), load(b).map(|l| l.fifteen)),
        memory_used_bytes: Change::of_u64(memory_used(a), memory_used(b)),
        memory_available_bytes: Change::of_u64(available(a), available(b)),
        swap_used_bytes: Change::of_u64(swap_used(a), swap_used(b)),
        process_count: Change::of_u64(count(a), count(b)),
    }
}

/// Splits the processes into appeared (B only), exited (A only) and pairs present in both.
fn match_processes<'s>(
    a: &'s Snapshot,
    b: &'s Snapshot,
) -> (
    Vec<ProcessRef>,
    Vec<ProcessRef>,
    Vec<(&'s Process, &'s Process)>,
) {
    let same_boot = same_boot(a, b);
    let identity = |p: &Process| (p.pid, p.start_ticks);
    let in_a: HashMap<_, &Process> = a.processes.list.iter().map(|p| (identity(p), p)).collect();
    let in_b: HashMap<_, &Process> = b.processes.list.iter().map(|p| (identity(p), p)).collect();
    let matched =
        |p: &Process, other: &HashMap<_, &Process>| same_boot && other.contains_key(&identity(p));

    let mut appeared: Vec<&Process> = b
        .processes
        .list
        .iter()
        .filter(|p| !matched(p, &in_a))
        .collect();
    let mut exited: Vec<&Process> = a
        .processes
        .list
        .iter()
        .filter(|p| !matched(p, &in_b))
        .collect();
    sort_by_cpu(&mut appeared);
    sort_by_cpu(&mut exited);

    let both = b
        .processes
        .list
        .iter()
        .filter(|_| same_boot)
        .filter_map(|after| Some((*in_a.get(&identity(after))?, after)))
        .collect();
    let to_refs = |list: Vec<&Process>| list.into_iter().map(ProcessRef::from).collect();
    (to_refs(appeared), to_refs(exited), both)
}

/// Orders by CPU use, highest first, with unknown CPU last, then by pid.
fn sort_by_cpu(processes: &mut [&Process]) {
    processes.sort_by(|x, y| {
        let cpu = |p: &Process| p.cpu_pct.unwrap_or(f64::NEG_INFINITY);
        cpu(y).total_cmp(&cpu(x)).then(x.pid.cmp(&y.pid))
    });
}

/// Picks the [`TOP_CHANGES`] pairs whose value changed most, leaving out pairs where either side
/// is unknown or nothing changed.
fn largest_changes(
    pairs: &[(&Process, &Process)],
    value: impl Fn(&Process) -> Option<f64>,
) -> Vec<ProcessChange> {
    let mut changes: Vec<ProcessChange> = pairs
        .iter()
        .filter_map(|(before, after)| {
            let (x, y) = (value(before)?, value(after)?);
            let change = ProcessChange {
                process: ProcessRef::from(*after),
                before: x,
                after: y,
                delta: y - x,
            };
            (change.delta != 0.0).then_some(change)
        })
        .collect();
    changes.sort_by(|x, y| {
        y.delta
            .abs()
            .total_cmp(&x.delta.abs())
            .then(x.process.pid.cmp(&y.process.pid))
    });
    changes.truncate(TOP_CHANGES);
    changes
}

fn compare_listening(a: &Snapshot, b: &Snapshot) -> (Vec<ListeningSocket>, Vec<ListeningSocket>) {
    let sockets = |s: &Snapshot| -> Vec<ListeningSocket> {
        s.network
            .as_ref()
            .map(|n| n.listening.clone())
            .unwrap_or_default()
    };
    let key = |s: &ListeningSocket| (s.protocol.clone(), s.address.clone(), s.port);
    let (in_a, in_b) = (sockets(a), sockets(b));
    let keys_a: BTreeSet<_> = in_a.iter().map(key).collect();
    let keys_b: BTreeSet<_> = in_b.iter().map(key).collect();

    let mut opened: Vec<_> = in_b
        .into_iter()
        .filter(|s| !keys_a.contains(&key(s)))
        .collect();
    let mut closed: Vec<_> = in_a
        .into_iter()
        .filter(|s| !keys_b.contains(&key(s)))
        .collect();
    opened.sort();
    closed.sort();
    (opened, closed)
}

fn compare_filesystems(a: &Snapshot, b: &Snapshot) -> Vec<FilesystemChange> {
    let by_mount = |s: &Snapshot| -> BTreeMap<String, Filesystem> {
        s.filesystems
            .iter()
            .map(|f| (f.mount_point.clone(), f.clone()))
            .collect()
    };
    let (in_a, in_b) = (by_mount(a), by_mount(b));
    let mounts: BTreeSet<&String> = in_a.keys().chain(in_b.keys()).collect();

    let mut changes: Vec<FilesystemChange> = mounts
        .into_iter()
        .filter_map(|mount| filesystem_change(in_a.get(mount), in_b.get(mount)))
        .collect();
    changes.sort_by(|x, y| {
        let size = |c: &FilesystemChange| c.used_bytes.delta.map_or(f64::INFINITY, f64::abs);
        size(y)
            .total_cmp(&size(x))
            .then(x.mount_point.cmp(&y.mount_point))
    });
    changes
}

/// Compares one mount point, returning `None` when its usage is the same in both.
fn filesystem_change(
    before: Option<&Filesystem>,
    after: Option<&Filesystem>,
) -> Option<FilesystemChange> {
    let status = match (before, after) {
        (Some(_), Some(_)) => FilesystemStatus::Changed,
        (None, Some(_)) => FilesystemStatus::Mounted,
        (Some(_), None) => FilesystemStatus::Unmounted,
        (None, None) => return None,
    };
    let shown = after.or(before)?;
    let change = FilesystemChange {
        mount_point: shown.mount_point.clone(),
        source: shown.source.clone(),
        fs_type: shown.fs_type.clone(),
        status,
        use_pct: Change::of_f64(
            before.and_then(|f| f.use_pct),
            after.and_then(|f| f.use_pct),
        ),
        used_bytes: Change::of_u64(
            before.and_then(|f| f.used_bytes),
            after.and_then(|f| f.used_bytes),
        ),
        size_bytes: Change::of_u64(
            before.and_then(|f| f.size_bytes),
            after.and_then(|f| f.size_bytes),
        ),
    };

    let unchanged = status == FilesystemStatus::Changed
        && change.used_bytes.before == change.used_bytes.after
        && change.use_pct.before == change.use_pct.after
        && change.size_bytes.before == change.size_bytes.after;
    (!unchanged).then_some(change)
}

/// Renders the comparison for a terminal. Text from the host (process names, command lines)
/// has its control characters escaped, so it cannot move the cursor or change colours.
pub fn render_text(d: &Diff) -> String {
    let mut out = String::new();
    render_header(&mut out, d);
    render_headline(&mut out, &d.headline);
    render_processes(&mut out, "Processes appeared", &d.processes_appeared);
    render_processes(&mut out, "Processes exited", &d.processes_exited);
    render_changes(
        &mut out,
        "Largest CPU changes (%CPU)",
        &d.cpu_changes,
        format_pct_value,
    );
    render_changes(
        &mut out,
        "Largest memory changes (RSS)",
        &d.memory_changes,
        format_bytes_value,
    );
    render_sockets(&mut out, "Listening sockets opened", &d.listening_opened);
    render_sockets(&mut out, "Listening sockets closed", &d.listening_closed);
    render_filesystems(&mut out, &d.filesystems);
    out
}

fn render_header(out: &mut String, d: &Diff) {
    fn host(side: &Side) -> Cow<'_, str> {
        side.hostname
            .as_deref()
            .map_or(Cow::Borrowed("unknown host"), terminal_safe)
    }
    let _ = writeln!(
        out,
        "A: {} on {} ({} processes)",
        d.a.captured_at.to_rfc3339(),
        host(&d.a),
        d.a.processes
    );
    let _ = writeln!(
        out,
        "B: {} on {} ({} processes)",
        d.b.captured_at.to_rfc3339(),
        host(&d.b),
        d.b.processes
    );
    for warning in &d.warnings {
        let _ = writeln!(out, "warning: {}", terminal_safe(warning));
    }
}

fn render_headline(out: &mut String, headline: &Headline) {
    let _ = writeln!(out, "\nHost");
    let rows: [(&str, String); 8] = [
        ("CPU busy", pct_change(&headline.cpu_busy_pct)),
        ("load 1m", load_change(&headline.load_one)),
        ("load 5m", load_change(&headline.load_five)),
        ("load 15m", load_change(&headline.load_fifteen)),
        ("memory used", bytes_change(&headline.memory_used_bytes)),
        (
            "memory available",
            bytes_change(&headline.memory_available_bytes),
        ),
        ("swap used", bytes_change(&headline.swap_used_bytes)),
        ("processes", count_change(&headline.process_count)),
    ];
    for (label, value) in rows {
        let _ = writeln!(out, "  {label:<18}{value}");
    }
}

fn render_processes(out: &mut String, title: &str, processes: &[ProcessRef]) {
    let _ = writeln!(out, "\n{title}: {}", processes.len());
    if processes.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "  {:>8} {:<12} {:>6} {:>8}  COMMAND",
        "PID", "USER", "%CPU", "RSS"
    );
    for process in processes.iter().take(TEXT_ROWS) {
        let _ = writeln!(out, "  {}", process_row(process));
    }
    more_rows(out, processes.len());
}

fn process_row(process: &ProcessRef) -> String {
    let user = process
        .user
        .as_deref()
        .map_or(Cow::Borrowed("?"), terminal_safe);
    let cpu = process
        .cpu_pct
        .map_or("-".to_string(), |cpu| format!("{cpu:.1}"));
    let rss = process.rss_bytes.map_or("-".to_string(), format_u64_bytes);
    format!(
        "{:>8} {:<12} {:>6} {:>8}  {}",
        process.pid,
        user,
        cpu,
        rss,
        command(process)
    )
}

/// Formats the command line, or the name in brackets for kernel threads and zombies, cut for
/// width.
fn command(process: &ProcessRef) -> String {
    let text = if process.cmdline.is_empty() {
        format!("[{}]", process.name)
    } else {
        process.cmdline.clone()
    };
    let safe = terminal_safe(&text);
    if safe.chars().count() <= TEXT_CMDLINE_CHARS {
        return safe.into_owned();
    }
    let cut: String = safe.chars().take(TEXT_CMDLINE_CHARS - 3).collect();
    format!("{cut}...")
}

fn render_changes(
    out: &mut String,
    title: &str,
    changes: &[ProcessChange],
    format_value: fn(f64) -> String,
) {
    let _ = writeln!(out, "\n{title}: {}", changes.len());
    if changes.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "  {:>8} {:>10} {:>10} {:>11}  COMMAND",
        "PID", "BEFORE", "AFTER", "CHANGE"
    );
    for change in changes {
        let delta = signed(change.delta, format_value);
        let _ = writeln!(
            out,
            "  {:>8} {:>10} {:>10} {:>11}  {}",
            change.process.pid,
            format_value(change.before),
            format_value(change.after),
            delta,
            command(&change.process)
        );
    }
}

fn render_sockets(out: &mut String, title: &str, sockets: &[ListeningSocket]) {
    let _ = writeln!(out, "\n{title}: {}", sockets.len());
    for socket in sockets.iter().take(TEXT_ROWS) {
        let address = if socket.address.contains(':') {
            format!("[{}]:{}", socket.address, socket.port)
        } else {
            format!("{}:{}", socket.address, socket.port)
        };
        let owner = match (socket.pid, &socket.process) {
            (Some(pid), Some(name)) => format!("{pid}/{}", terminal_safe(name)),
            (Some(pid), None) => pid.to_string(),
            _ => "-".to_string(),
        };
        let _ = writeln!(
            out,
            "  {:<5} {:<40} {}",
            socket.protocol,
            terminal_safe(&address),
            owner
        );
    }
    more_rows(out, sockets.len());
}

fn render_filesystems(out: &mut String, filesystems: &[FilesystemChange]) {
    let _ = writeln!(out, "\nFilesystem usage changes: {}", filesystems.len());
    for change in filesystems.iter().take(TEXT_ROWS) {
        let status = match change.status {
            FilesystemStatus::Changed => "",
            FilesystemStatus::Mounted => " (mounted)",
            FilesystemStatus::Unmounted => " (unmounted)",
        };
        let _ = writeln!(
            out,
            "  {:<24} use {}  used {}{status}",
            terminal_safe(&change.mount_point),
            pct_change(&change.use_pct),
            bytes_change(&change.used_bytes),
        );
    }
    more_rows(out, filesystems.len());
}

fn more_rows(out: &mut String, total: usize) {
    if total > TEXT_ROWS {
        let _ = writeln!(out, "  ... and {} more (see --json)", total - TEXT_ROWS);
    }
}

/// `before -> after (+delta)`, with `-` for a value that was not read.
fn format_change<T: Copy>(
    change: &Change<T>,
    format_value: impl Fn(T) -> String,
    format_delta: impl Fn(f64) -> String,
) -> String {
    let show = |value: Option<T>| value.map_or("-".to_string(), &format_value);
    let mut text = format!("{} -> {}", show(change.before), show(change.after));
    if let Some(delta) = change.delta {
        let _ = write!(text, " ({})", signed(delta, format_delta));
    }
    text
}

fn pct_change(change: &Change<f64>) -> String {
    format_change(change, format_pct_value, format_pct_value)
}

fn load_change(change: &Change<f64>) -> String {
    format_change(change, format_load, format_load)
}

fn bytes_change(change: &Change<u64>) -> String {
    format_change(change, format_u64_bytes, format_bytes_value)
}

fn count_change(change: &Change<u64>) -> String {
    format_change(change, |n| n.to_string(), |d| format!("{d:.0}"))
}

fn signed(delta: f64, format_value: impl Fn(f64) -> String) -> String {
    let sign = if delta < 0.0 { "-" } else { "+" };
    format!("{sign}{}", format_value(delta.abs()))
}

fn format_pct_value(value: f64) -> String {
    format!("{value:.1}%")
}

fn format_load(value: f64) -> String {
    format!("{value:.2}")
}

fn format_u64_bytes(bytes: u64) -> String {
    format_bytes_value(bytes as f64)
}

/// Bytes in binary units as `df -h` shows them: `512B`, `1.5K`, `20G`.
fn format_bytes_value(bytes: f64) -> String {
    const UNITS: [&str; 6] = ["B", "K", "M", "G", "T", "P"];
    let mut value = bytes;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 || value >= 10.0 {
        format!("{value:.0}{}", UNITS[unit])
    } else {
        format!("{value:.1}{}", UNITS[unit])
    }
}

/// Escapes control characters (including newlines, tabs and ESC) so that text from the host
/// cannot change the terminal's state or fake extra lines.
fn terminal_safe(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            escaped.extend(c.escape_default());
        } else {
            escaped.push(c);
        }
    }
    Cow::Owned(escaped)
}

#[cfg(test)]
mod tests {
    use aegisir_platform::{LoadAverage, Memory, Network};
    use chrono::TimeZone;

    use super::*;

    fn time(minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 3, 21, minute, 0).unwrap()
    }

    fn process(pid: i32, start_ticks: u64, cpu_pct: f64, rss_bytes: u64) -> Process {
        Process {
            pid,
            start_ticks,
            name: format!("proc{pid}"),
            cmdline: format!("/usr/bin/proc{pid} --serve"),
            user: Some("alice".to_string()),
            cpu_pct: Some(cpu_pct),
            rss_bytes: Some(rss_bytes),
            ..Process::default()
        }
    }

    fn socket(protocol: &str, address: &str, port: u16) -> ListeningSocket {
        ListeningSocket {
            protocol: protocol.to_string(),
            address: address.to_string(),
            port,
            ..ListeningSocket::default()
        }
    }

    fn filesystem(mount_point: &str, used_bytes: u64, use_pct: f64) -> Filesystem {
        Filesystem {
            source: "/dev/sda1".to_string(),
            mount_point: mount_point.to_string(),
            fs_type: "ext4".to_string(),
            size_bytes: Some(100 << 30),
            used_bytes: Some(used_bytes),
            available_bytes: Some((100 << 30) - used_bytes),
            use_pct: Some(use_pct),
            ..Filesystem::default()
        }
    }

    fn snapshot(minute: u32, processes: Vec<Process>) -> Snapshot {
        let mut snapshot = Snapshot {
            schema_version: SCHEMA_VERSION,
            captured_at: time(minute),
            ..Snapshot::default()
        };
        snapshot.host.hostname = Some("web-1".to_string());
        snapshot.host.boot_time = Some(time(0));
        snapshot.processes.total = processes.len() as u32;
        snapshot.processes.list = processes;
        snapshot
    }

    fn pair() -> (Snapshot, Snapshot) {
        let mut a = snapshot(
            10,
            vec![
                process(1, 5, 0.0, 1000),
                process(50, 500, 2.0, 4096),
                process(60, 600, 1.0, 10),
            ],
        );
        let mut b = snapshot(
            20,
            vec![
                process(1, 5, 0.5, 1000),
                process(50, 500, 90.0, 8192),
                // pid 60 reused by a new process: a different start time.
                process(60, 900, 30.0, 20),
                process(70, 950, 5.0, 30),
            ],
        );
        a.network = Some(Network {
            listening: vec![socket("tcp", "0.0.0.0", 22), socket("tcp6", "::1", 8080)],
            ..Network::default()
        });
        b.network = Some(Network {
            listening: vec![socket("tcp", "0.0.0.0", 22), socket("udp", "0.0.0.0", 53)],
            ..Network::default()
        });
        a.filesystems = vec![
            filesystem("/", 50 << 30, 50.0),
            filesystem("/data", 1 << 30, 1.0),
        ];
        b.filesystems = vec![
            filesystem("/", 80 << 30, 80.0),
            filesystem("/mnt", 1 << 20, 1.0),
        ];
        a.host.load = Some(LoadAverage {
            one: 0.5,
            five: 0.4,
            fifteen: 0.3,
        });
        b.host.load = Some(LoadAverage {
            one: 4.0,
            five: 2.0,
            fifteen: 1.0,
        });
        a.memory = Some(Memory {
            total_bytes: Some(8 << 30),
            available_bytes: Some(6 << 30),
            ..Memory::default()
        });
        b.memory = Some(Memory {
            total_bytes: Some(8 << 30),
            available_bytes: Some(1 << 30),
            ..Memory::default()
        });
        (a, b)
    }

    fn identities(processes: &[ProcessRef]) -> Vec<(i32, u64)> {
        processes.iter().map(|p| (p.pid, p.start_ticks)).collect()
    }

    #[test]
    fn diff_matches_processes_by_pid_and_start_time() {
        let (a, b) = pair();
        let d = diff(&a, &b);

        assert_eq!(identities(&d.processes_appeared), [(60, 900), (70, 950)]);
        assert_eq!(identities(&d.processes_exited), [(60, 600)]);
    }

    #[test]
    fn diff_ranks_cpu_and_memory_changes() {
        let (a, b) = pair();
        let d = diff(&a, &b);

        let cpu: Vec<(i32, f64)> = d
            .cpu_changes
            .iter()
            .map(|c| (c.process.pid, c.delta))
            .collect();
        assert_eq!(cpu, [(50, 88.0), (1, 0.5)]);
        let memory: Vec<(i32, f64)> = d
            .memory_changes
            .iter()
            .map(|c| (c.process.pid, c.delta))
            .collect();
        assert_eq!(memory, [(50, 4096.0)]);
    }

    #[test]
    fn diff_keeps_top_ten_changes() {
        let before: Vec<Process> = (1..=15).map(|pid| process(pid, 1, 0.0, 0)).collect();
        let after: Vec<Process> = (1..=15).map(|pid| process(pid, 1, pid as f64, 0)).collect();
        let d = diff(&snapshot(10, before), &snapshot(20, after));

        let pids: Vec<i32> = d.cpu_changes.iter().map(|c| c.process.pid).collect();
        assert_eq!(pids, [15, 14, 13, 12, 11, 10, 9, 8, 7, 6]);
        assert!(d.memory_changes.is_empty());
    }

    #[test]
    fn diff_skips_changes_with_unknown_side() {
        let mut unknown = process(5, 1, 0.0, 10);
        unknown.cpu_pct = None;
        let d = diff(
            &snapshot(10, vec![unknown]),
            &snapshot(20, vec![process(5, 1, 50.0, 10)]),
        );

        assert!(d.cpu_changes.is_empty());
    }

    #[test]
    fn diff_lists_listening_sockets_opened_and_closed() {
        let (a, b) = pair();
        let d = diff(&a, &b);

        assert_eq!(d.listening_opened, [socket("udp", "0.0.0.0", 53)]);
        assert_eq!(d.listening_closed, [socket("tcp6", "::1", 8080)]);
    }

    #[test]
    fn diff_lists_filesystem_usage_changes() {
        let (a, b) = pair();
        let d = diff(&a, &b);

        let rows: Vec<(&str, FilesystemStatus)> = d
            .filesystems
            .iter()
            .map(|f| (f.mount_point.as_str(), f.status))
            .collect();
        assert_eq!(
            rows,
            [
                ("/data", FilesystemStatus::Unmounted),
                ("/mnt", FilesystemStatus::Mounted),
                ("/", FilesystemStatus::Changed),
            ]
        );
        let root = &d.filesystems[2];
        assert_eq!(root.use_pct.delta, Some(30.0));
        assert_eq!(root.used_bytes.delta, Some((30u64 << 30) as f64));
        assert_eq!(root.used_bytes.before, Some(50 << 30));
    }

    #[test]
    fn diff_leaves_unchanged_filesystems_out() {
        let mut a = snapshot(10, Vec::new());
        a.filesystems = vec![filesystem("/", 1 << 30, 1.0)];
        let b = Snapshot {
            captured_at: time(20),
            ..a.clone()
        };

        assert!(diff(&a, &b).filesystems.is_empty());
    }

    #[test]
    fn diff_headline_has_memory_and_load_deltas() {
        let (a, b) = pair();
        let headline = diff(&a, &b).headline;

        assert_eq!(headline.memory_used_bytes.before, Some(2 << 30));
        assert_eq!(headline.memory_used_bytes.after, Some(7 << 30));
        assert_eq!(headline.memory_used_bytes.delta, Some((5u64 << 30) as f64));
        assert_eq!(
            headline.memory_available_bytes.delta,
            Some(-((5u64 << 30) as f64))
        );
        assert_eq!(headline.load_one.delta, Some(3.5));
        assert_eq!(headline.process_count.delta, Some(1.0));
        assert_eq!(headline.cpu_busy_pct.before, None);
        assert_eq!(headline.cpu_busy_pct.delta, None);
        assert_eq!(headline.swap_used_bytes.delta, None);
    }

    #[test]
    fn diff_matches_nothing_across_boots() {
        let (a, mut b) = pair();
        b.host.boot_time = Some(time(15));
        let d = diff(&a, &b);

        assert_eq!(d.processes_appeared.len(), 4);
        assert_eq!(d.processes_exited.len(), 3);
        assert!(d.cpu_changes.is_empty());
        assert_eq!(d.warnings.len(), 1);
        assert!(d.warnings[0].contains("different boots"));
    }

    #[test]
    fn diff_warns_about_other_host() {
        let (a, mut b) = pair();
        b.host.hostname = Some("db-1".to_string());

        let warnings = diff(&a, &b).warnings;
        assert_eq!(warnings, ["A is from host web-1, B from host db-1"]);
    }

    #[test]
    fn diff_serializes_for_json_output() {
        let (a, b) = pair();
        let value = serde_json::to_value(diff(&a, &b)).unwrap();

        assert_eq!(value["processes_appeared"][0]["pid"], 60);
        assert_eq!(value["listening_opened"][0]["port"], 53);
        assert_eq!(value["filesystems"][0]["status"], "unmounted");
        assert_eq!(value["headline"]["load_one"]["after"], 4.0);
    }

    #[test]
    fn render_text_shows_each_section() {
        let (a, b) = pair();
        let text = render_text(&diff(&a, &b));

        assert!(
            text.contains("A: 2026-12-03T21:10:00+00:00 on web-1 (3 processes)"),
            "{text}"
        );
        assert!(text.contains("Processes appeared: 2"), "{text}");
        assert!(text.contains("Processes exited: 1"), "{text}");
        assert!(text.contains("Largest CPU changes (%CPU): 2"), "{text}");
        assert!(text.contains("+88.0%"), "{text}");
        assert!(
            text.contains("Listening sockets opened: 1\n  udp   0.0.0.0:53"),
            "{text}"
        );
        assert!(
            text.contains("Listening sockets closed: 1\n  tcp6  [::1]:8080"),
            "{text}"
        );
        assert!(
            text.contains("memory used       2.0G -> 7.0G (+5.0G)"),
            "{text}"
        );
        assert!(
            text.contains("load 1m           0.50 -> 4.00 (+3.50)"),
            "{text}"
        );
        assert!(text.contains("CPU busy          - -> -"), "{text}");
        assert!(
            text.contains("use 50.0% -> 80.0% (+30.0%)  used 50G -> 80G (+30G)"),
            "{text}"
        );
    }

    #[test]
    fn render_text_escapes_control_characters() {
        let mut evil = process(9, 1, 1.0, 1);
        evil.cmdline = "evil\u{1b}[2J\nfake line".to_string();
        let text = render_text(&diff(&snapshot(10, Vec::new()), &snapshot(20, vec![evil])));

        assert!(!text.contains('\u{1b}'), "{text:?}");
        assert!(text.contains("evil\\u{1b}[2J\\nfake line"), "{text}");
    }

    #[test]
    fn render_text_cuts_long_lists() {
        let after: Vec<Process> = (1..=25).map(|pid| process(pid, 1, 1.0, 1)).collect();
        let text = render_text(&diff(&snapshot(10, Vec::new()), &snapshot(20, after)));

        assert!(text.contains("Processes appeared: 25"), "{text}");
        assert!(text.contains("... and 5 more (see --json)"), "{text}");
    }

    #[test]
    fn format_bytes_value_uses_binary_units() {
        assert_eq!(format_bytes_value(512.0), "512B");
        assert_eq!(format_bytes_value(1536.0), "1.5K");
        assert_eq!(format_bytes_value((20u64 << 30) as f64), "20G");
    }

    #[test]
    fn load_snapshot_reads_bundle_dir_and_file() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, _) = pair();
        let path = tmp.path().join("snapshot.json");
        std::fs::write(&path, serde_json::to_vec(&a).unwrap()).unwrap();

        assert_eq!(load_snapshot(&path).unwrap(), a);
        assert_eq!(load_snapshot(tmp.path()).unwrap(), a);
    }

    #[test]
    fn load_snapshot_explains_each_failure() {
        let tmp = tempfile::tempdir().unwrap();
        let missing = tmp.path().join("absent");
        let not_json = tmp.path().join("not-json.json");
        let no_version = tmp.path().join("no-version.json");
        let future = tmp.path().join("future.json");
        std::fs::write(&not_json, b"{").unwrap();
        std::fs::write(&no_version, b"{}").unwrap();
        std::fs::write(&future, br#"{"schema_version": 99}"#).unwrap();

        let message = |path: &Path| format!("{:#}", load_snapshot(path).unwrap_err());
        assert!(message(&missing).contains("pass a bundle directory or a snapshot.json"));
        assert!(message(&not_json).contains("is not valid JSON"));
        assert!(message(&no_version).contains("has no numeric schema_version"));
        assert!(message(&future).contains("schema_version 99, but this aegisir reads version 1"));
    }
}
