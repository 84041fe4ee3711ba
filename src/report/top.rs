//! `top.txt`: a top-like summary header and the processes using the most CPU over the
//! interval.

use std::fmt::Write as _;

use aegisir_platform::{Cpu, Host, Memory, Pressure, PressureResource, Process, Snapshot};

use super::memory::{buff_cache_bytes, used_bytes};
use super::text::{bytes_or_missing, decimal_or_missing, terminal_safe, Align, Table, MISSING};

/// Rows in the process table; the rest are counted in a closing line.
const ROWS: usize = 30;

const MIB: f64 = 1024.0 * 1024.0;

pub fn render(snapshot: &Snapshot) -> String {
    let mut output = String::new();
    output.push_str(&summary_line(snapshot));
    output.push_str(&tasks_line(snapshot));
    output.push_str(&cpu_line(snapshot.cpu.as_ref()));
    output.push_str(&memory_lines(snapshot.memory.as_ref()));
    output.push_str(&pressure_lines(snapshot.host.pressure.as_ref()));
    output.push_str(&completeness_lines(snapshot));

    output.push('\n');
    output.push_str(&process_table(snapshot));
    output
}

/// `top - 2026-12-03 21:45:38 UTC up 3 days,  4:05,  load average: 3.20, 2.90, 2.10`,
/// followed by the host, kernel and interval.
fn summary_line(snapshot: &Snapshot) -> String {
    let host = &snapshot.host;
    let time = snapshot.captured_at.format("%Y-%m-%d %H:%M:%S UTC");
    let uptime = host
        .uptime_secs
        .map_or_else(|| MISSING.to_string(), format_uptime);
    let load = match host.load {
        Some(load) => format!("{:.2}, {:.2}, {:.2}", load.one, load.five, load.fifteen),
        None => MISSING.to_string(),
    };
    let mut output = format!("top - {time} up {uptime},  load average: {load}\n");
    let _ = writeln!(output, "{}", host_line(host, snapshot.interval_secs));
    output
}

fn host_line(host: &Host, interval_secs: f64) -> String {
    let name = host
        .hostname
        .as_deref()
        .map_or(MISSING.into(), terminal_safe);
    let kernel = host
        .kernel_release
        .as_deref()
        .map_or(MISSING.into(), terminal_safe);
    let cpus = host
        .cpu_count
        .map_or_else(|| MISSING.to_string(), |n| n.to_string());
    format!("Host: {name},  kernel {kernel},  {cpus} CPUs,  rates over {interval_secs:.2} s")
}

/// Uptime as top prints it: `3 days,  4:05`, `4:05` or `25 min`.
fn format_uptime(secs: f64) -> String {
    let total_minutes = (secs.max(0.0) / 60.0) as u64;
    let days = total_minutes / (24 * 60);
    let hours = (total_minutes / 60) % 24;
    let minutes = total_minutes % 60;
    let clock = if hours > 0 {
        format!("{hours:2}:{minutes:02}")
    } else {
        format!("{minutes} min")
    };
    match days {
        0 => clock.trim_start().to_string(),
        1 => format!("1 day, {clock}"),
        n => format!("{n} days, {clock}"),
    }
}

fn tasks_line(snapshot: &Snapshot) -> String {
    let processes = &snapshot.processes;
    let stopped = processes
        .list
        .iter()
        .filter(|p| p.state == "T" || p.state == "t")
        .count();
    format!(
        "Tasks: {:>4} total, {:>4} running, {:>4} sleeping, {:>4} stopped, {:>4} zombie\n",
        processes.total, processes.running, processes.sleeping, stopped, processes.zombies
    )
}

fn cpu_line(cpu: Option<&Cpu>) -> String {
    let Some(cpu) = cpu else {
        return "%Cpu(s): -\n".to_string();
    };
    let t = &cpu.total;
    format!(
        "%Cpu(s): {:4.1} us, {:4.1} sy, {:4.1} ni, {:4.1} id, {:4.1} wa, {:4.1} hi, {:4.1} si, {:4.1} st\n",
        t.user_pct,
        t.system_pct,
        t.nice_pct,
        t.idle_pct,
        t.iowait_pct,
        t.irq_pct,
        t.softirq_pct,
        t.steal_pct
    )
}

/// Formats the `MiB Mem` and `MiB Swap` lines. Used memory is total minus available, as in
/// `memory.txt`.
fn memory_lines(memory: Option<&Memory>) -> String {
    let Some(memory) = memory else {
        return "MiB Mem : -\nMiB Swap: -\n".to_string();
    };
    let swap_used = match (memory.swap_total_bytes, memory.swap_free_bytes) {
        (Some(total), Some(free)) => Some(total.saturating_sub(free)),
        _ => None,
    };
    let estimated = if memory.available_estimated {
        " (estimated)"
    } else {
        ""
    };
    format!(
        "MiB Mem : {} total, {} free, {} used, {} buff/cache\n\
         MiB Swap: {} total, {} free, {} used. {} avail Mem{estimated}\n",
        mib(memory.total_bytes),
        mib(memory.free_bytes),
        mib(used_bytes(memory)),
        mib(buff_cache_bytes(memory)),
        mib(memory.swap_total_bytes),
        mib(memory.swap_free_bytes),
        mib(swap_used),
        mib(memory.available_bytes),
    )
}

fn mib(bytes: Option<u64>) -> String {
    let value = bytes.map(|b| b as f64 / MIB);
    format!("{:>8}", decimal_or_missing(value, 1))
}

/// `PSI some avg10/avg60/avg300` per resource, and the `full` line where the kernel has it.
fn pressure_lines(pressure: Option<&Pressure>) -> String {
    let Some(pressure) = pressure else {
        return String::new();
    };
    let resources = [
        ("cpu", pressure.cpu.as_ref()),
        ("memory", pressure.memory.as_ref()),
        ("io", pressure.io.as_ref()),
    ];
    let mut output = String::from("Pressure (avg10 avg60 avg300):");
    for (index, (name, resource)) in resources.into_iter().enumerate() {
        let separator = if index == 0 { " " } else { ",  " };
        let _ = write!(output, "{separator}{name} {}", pressure_text(resource));
    }
    output.push('\n');
    output
}

fn pressure_text(resource: Option<&PressureResource>) -> String {
    let Some(resource) = resource else {
        return MISSING.to_string();
    };
    let line = |l: &aegisir_platform::PressureLine| {
        format!("{:.2} {:.2} {:.2}", l.avg10, l.avg60, l.avg300)
    };
    match &resource.full {
        Some(full) => format!("some {} full {}", line(&resource.some), line(full)),
        None => format!("some {}", line(&resource.some)),
    }
}

/// Warnings that the numbers above are not the whole picture.
fn completeness_lines(snapshot: &Snapshot) -> String {
    let mut output = String::new();
    if !snapshot.processes.complete {
        output.push_str("Process list incomplete: the reader could not see every process\n");
    }
    if !snapshot.gaps.is_empty() {
        let _ = writeln!(
            output,
            "Gaps: {} values could not be read (see gaps.txt)",
            snapshot.gaps.len()
        );
    }
    output
}

fn process_table(snapshot: &Snapshot) -> String {
    let shown = super::top_by_cpu(snapshot, ROWS);
    let mut table = Table::new(&[
        ("PID", Align::Right),
        ("USER", Align::Left),
        ("S", Align::Left),
        ("%CPU", Align::Right),
        ("%MEM", Align::Right),
        ("VIRT", Align::Right),
        ("RES", Align::Right),
        ("THR", Align::Right),
        ("COMMAND", Align::Left),
    ]);
    for process in &shown {
        table.row(process_row(process));
    }

    let mut output = table.render();
    let rest = snapshot.processes.list.len().saturating_sub(shown.len());
    if rest > 0 {
        let _ = writeln!(output, "... and {rest} more processes (see processes.txt)");
    }
    output
}

fn process_row(process: &Process) -> Vec<String> {
    vec![
        process.pid.to_string(),
        super::processes::user_text(process),
        process.state.clone(),
        decimal_or_missing(process.cpu_pct, 1),
        decimal_or_missing(process.mem_pct, 1),
        bytes_or_missing(process.vsize_bytes),
        bytes_or_missing(process.rss_bytes),
        super::text::count_or_missing(process.threads),
        process.name.clone(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime_reads_like_top() {
        assert_eq!(format_uptime(25.0 * 60.0 + 5.0), "25 min");
        assert_eq!(format_uptime(4.0 * 3600.0 + 5.0 * 60.0), "4:05");
        assert_eq!(format_uptime(86_400.0 + 60.0), "1 day, 1 min");
        assert_eq!(
            format_uptime(3.0 * 86_400.0 + 4.0 * 3600.0 + 300.0),
            "3 days,  4:05"
        );
    }
}
