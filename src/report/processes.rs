//! `processes.txt`: every process, like `ps aux` but with CPU % over the interval, and a
//! footer that states how complete the list is.

use std::fmt::Write as _;

use aegisir_platform::{Process, ProcessKind, Processes, Snapshot};
use chrono::{DateTime, Datelike, Utc};

use super::text::{bytes_or_missing, count_or_missing, decimal_or_missing, Align, Table, MISSING};

pub fn render(snapshot: &Snapshot) -> String {
    let mut processes: Vec<&Process> = snapshot.processes.list.iter().collect();
    processes.sort_by_key(|process| process.pid);

    let mut table = Table::new(&[
        ("USER", Align::Left),
        ("PID", Align::Right),
        ("PPID", Align::Right),
        ("%CPU", Align::Right),
        ("%MEM", Align::Right),
        ("VSZ", Align::Right),
        ("RSS", Align::Right),
        ("THR", Align::Right),
        ("FDS", Align::Right),
        ("S", Align::Left),
        ("START", Align::Left),
        ("READ", Align::Right),
        ("WRITE", Align::Right),
        ("COMMAND", Align::Left),
    ]);
    for process in &processes {
        table.row(row(process, snapshot.captured_at));
    }

    let mut output = table.render();
    output.push('\n');
    output.push_str(&footer(&snapshot.processes, snapshot.interval_secs));
    output
}

/// Returns the user name, else the numeric uid, else `?` when neither could be read.
pub fn user_text(process: &Process) -> String {
    match (&process.user, process.uid) {
        (Some(user), _) => user.clone(),
        (None, Some(uid)) => uid.to_string(),
        (None, None) => "?".to_string(),
    }
}

/// Formats the command column as the full command line. A kernel thread shows as `[name]`,
/// a zombie as `[name] <defunct>`, and a process whose command line is empty or unreadable
/// as `(name)`. A process whose `stat` could not be read has neither and shows as `?`. The
/// AegisIR process is marked `(this capture)`.
pub fn command_text(process: &Process) -> String {
    let mut command = match process.kind {
        ProcessKind::User if process.cmdline.is_empty() && process.name.is_empty() => {
            "?".to_string()
        }
        ProcessKind::KernelThread => format!("[{}]", process.name),
        ProcessKind::Zombie => format!("[{}] <defunct>", process.name),
        ProcessKind::User if process.cmdline.is_empty() => format!("({})", process.name),
        ProcessKind::User => process.cmdline.clone(),
    };
    if process.is_self {
        command.push_str("  (this capture)");
    }
    command
}

fn row(process: &Process, captured_at: DateTime<Utc>) -> Vec<String> {
    vec![
        user_text(process),
        process.pid.to_string(),
        count_or_missing(process.ppid),
        decimal_or_missing(process.cpu_pct, 1),
        decimal_or_missing(process.mem_pct, 1),
        bytes_or_missing(process.vsize_bytes),
        bytes_or_missing(process.rss_bytes),
        count_or_missing(process.threads),
        count_or_missing(process.open_fds),
        process.state.clone(),
        start_text(process.start_time, captured_at),
        bytes_or_missing(process.read_bytes),
        bytes_or_missing(process.write_bytes),
        command_text(process),
    ]
}

/// Formats the start time as ps prints it, in UTC: `21:45` on the day of the capture, `Dec03` in
/// the same year, otherwise the year.
fn start_text(start: Option<DateTime<Utc>>, captured_at: DateTime<Utc>) -> String {
    let Some(start) = start else {
        return MISSING.to_string();
    };
    if start.date_naive() == captured_at.date_naive() {
        start.format("%H:%M").to_string()
    } else if start.year() == captured_at.year() {
        start.format("%b%d").to_string()
    } else {
        start.format("%Y").to_string()
    }
}

fn footer(processes: &Processes, interval_secs: f64) -> String {
    let mut output = String::new();
    let _ = writeln!(
        output,
        "Processes: {} total, {} running, {} sleeping, {} zombie, {} kernel threads",
        processes.total,
        processes.running,
        processes.sleeping,
        processes.zombies,
        processes.kernel_threads
    );
    let _ = writeln!(
        output,
        "Vanished during the capture: {}; details unreadable for lack of rights: {}",
        processes.vanished, processes.unreadable
    );
    let completeness = if processes.complete {
        "complete".to_string()
    } else {
        "INCOMPLETE: the reader could not see every process (hidepid mount or not root)".to_string()
    };
    let _ = writeln!(output, "Process list: {completeness}");
    let _ = writeln!(
        output,
        "%CPU is over the {interval_secs:.2} s interval (100 = one CPU); - means not readable \
         or not in the earlier sample"
    );
    output
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn start_time_reads_like_ps() {
        let captured = Utc.with_ymd_and_hms(2026, 12, 3, 21, 45, 38).unwrap();
        let today = Utc.with_ymd_and_hms(2026, 12, 3, 8, 5, 0).unwrap();
        let earlier = Utc.with_ymd_and_hms(2026, 2, 1, 0, 0, 0).unwrap();
        let last_year = Utc.with_ymd_and_hms(2025, 6, 1, 0, 0, 0).unwrap();
        assert_eq!(start_text(Some(today), captured), "08:05");
        assert_eq!(start_text(Some(earlier), captured), "Feb01");
        assert_eq!(start_text(Some(last_year), captured), "2025");
        assert_eq!(start_text(None, captured), "-");
    }

    #[test]
    fn command_marks_kernel_threads_and_zombies() {
        let mut process = Process {
            name: "kworker/0:1".into(),
            kind: ProcessKind::KernelThread,
            ..Process::default()
        };
        assert_eq!(command_text(&process), "[kworker/0:1]");
        process.kind = ProcessKind::Zombie;
        process.name = "sh".into();
        assert_eq!(command_text(&process), "[sh] <defunct>");
        process.kind = ProcessKind::User;
        assert_eq!(command_text(&process), "(sh)");
        process.name.clear();
        assert_eq!(command_text(&process), "?");
    }
}
