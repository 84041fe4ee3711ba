//! `memory.txt`: memory and swap as `free -h` shows them, with dirty pages, major faults and
//! OOM kills.

use std::fmt::Write as _;

use aegisir_platform::{Memory, Snapshot};

use super::text::{bytes_or_missing, count_or_missing, Align, Table};

pub fn render(snapshot: &Snapshot) -> String {
    let Some(memory) = &snapshot.memory else {
        return "Memory could not be read (see gaps.txt).\n".to_string();
    };

    let mut output = free_table(memory);
    if memory.available_estimated {
        output.push_str("* estimated: this kernel has no MemAvailable\n");
    }
    output.push('\n');
    output.push_str(&counters(memory));
    output
}

/// Computes the memory in use as total minus available. Where available is unknown, it is
/// total minus free, buffers and cache.
pub fn used_bytes(memory: &Memory) -> Option<u64> {
    let total = memory.total_bytes?;
    if let Some(available) = memory.available_bytes {
        return Some(total.saturating_sub(available));
    }
    let unused = memory.free_bytes? + buff_cache_bytes(memory)?;
    Some(total.saturating_sub(unused))
}

/// Adds buffers, page cache and reclaimable slab (`SReclaimable`, where the kernel reports
/// it) into the `buff/cache` column.
pub fn buff_cache_bytes(memory: &Memory) -> Option<u64> {
    let reclaimable = memory.other.get("SReclaimable").copied().unwrap_or(0);
    Some(memory.buffers_bytes? + memory.cached_bytes? + reclaimable)
}

fn free_table(memory: &Memory) -> String {
    let mut table = Table::new(&[
        ("", Align::Left),
        ("total", Align::Right),
        ("used", Align::Right),
        ("free", Align::Right),
        ("shared", Align::Right),
        ("buff/cache", Align::Right),
        ("available", Align::Right),
    ]);

    let mut available = bytes_or_missing(memory.available_bytes);
    if memory.available_estimated {
        available.push('*');
    }
    table.row(vec![
        "Mem:".into(),
        bytes_or_missing(memory.total_bytes),
        bytes_or_missing(used_bytes(memory)),
        bytes_or_missing(memory.free_bytes),
        bytes_or_missing(memory.other.get("Shmem").copied()),
        bytes_or_missing(buff_cache_bytes(memory)),
        available,
    ]);

    let swap_used = match (memory.swap_total_bytes, memory.swap_free_bytes) {
        (Some(total), Some(free)) => Some(total.saturating_sub(free)),
        _ => None,
    };
    table.row(vec![
        "Swap:".into(),
        bytes_or_missing(memory.swap_total_bytes),
        bytes_or_missing(swap_used),
        bytes_or_missing(memory.swap_free_bytes),
        String::new(),
        String::new(),
        String::new(),
    ]);
    table.render()
}

fn counters(memory: &Memory) -> String {
    let mut output = String::new();
    let _ = writeln!(
        output,
        "Dirty:             {}",
        bytes_or_missing(memory.dirty_bytes)
    );
    let _ = writeln!(
        output,
        "Major page faults: {} since boot, {} in the interval",
        count_or_missing(memory.major_faults),
        count_or_missing(memory.major_faults_in_interval)
    );
    let _ = writeln!(
        output,
        "OOM kills:         {} since boot, {} in the interval",
        count_or_missing(memory.oom_kills),
        count_or_missing(memory.oom_kills_in_interval)
    );
    if memory.oom_kills_in_interval.is_some_and(|kills| kills > 0) {
        output.push_str("WARNING: the OOM killer ran during the capture interval\n");
    }
    output
}
