//! `/proc/stat`: CPU times by CPU number, the boot time and the run-queue counts.
//!
//! procfs-core's `KernelStats` keeps the per-CPU lines in a list without their numbers, so a
//! CPU that goes offline between two samples would shift every later CPU by one place. It also
//! rejects the whole file when one line does not parse. This parser keeps the number of each
//! `cpuN` line and skips the lines it cannot read.

use crate::gaps::GapLog;
use crate::model::GapReason;
use crate::raw::Reader;

/// The ten time columns of a `cpu` line, in `USER_HZ` ticks. `user` and `nice` already
/// contain `guest` and `guest_nice`, as the kernel counts them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTimes {
    pub user: u64,
    pub nice: u64,
    pub system: u64,
    pub idle: u64,
    pub iowait: u64,
    pub irq: u64,
    pub softirq: u64,
    pub steal: u64,
    pub guest: u64,
    pub guest_nice: u64,
}

/// The parts of `/proc/stat` that AegisIR uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelStat {
    /// The `cpu` line: all CPUs together.
    pub total: Option<CpuTimes>,
    /// The `cpuN` lines ordered by CPU number. Offline CPUs have no line.
    pub per_cpu: Vec<(u32, CpuTimes)>,
    /// `btime`: boot time in seconds since the Unix epoch.
    pub boot_time_secs: Option<u64>,
    /// `procs_running`: runnable threads.
    pub procs_running: Option<u32>,
    /// `procs_blocked`: threads blocked on I/O.
    pub procs_blocked: Option<u32>,
}

/// Reads and parses `/proc/stat`, recording a gap when it cannot be read or lacks the lines
/// the collectors need.
pub fn read(reader: &mut Reader, gaps: &mut GapLog) -> Option<KernelStat> {
    let bytes = gaps.value("cpu", reader.proc("stat"))?;
    let stat = parse(bytes);

    if stat.total.is_none() {
        gaps.push(
            "cpu",
            "proc/stat",
            GapReason::Invalid,
            "no readable `cpu` line",
        );
    }
    if stat.boot_time_secs.is_none() {
        gaps.push(
            "host",
            "proc/stat",
            GapReason::Invalid,
            "no readable `btime` line",
        );
    }
    Some(stat)
}

/// Parses the bytes of `/proc/stat`. Lines that are not valid UTF-8 or do not parse are
/// skipped; a CPU number seen twice keeps its first line.
pub fn parse(bytes: &[u8]) -> KernelStat {
    let mut stat = KernelStat::default();
    for line in bytes.split(|&b| b == b'\n') {
        let Ok(line) = std::str::from_utf8(line) else {
            continue;
        };
        parse_line(line, &mut stat);
    }

    stat.per_cpu.sort_by_key(|&(cpu, _)| cpu);
    stat.per_cpu.dedup_by_key(|&mut (cpu, _)| cpu);
    stat
}

fn parse_line(line: &str, stat: &mut KernelStat) {
    let mut fields = line.split_ascii_whitespace();
    let Some(key) = fields.next() else {
        return;
    };
    match key {
        "cpu" => stat.total = stat.total.or(parse_times(fields)),
        "btime" => stat.boot_time_secs = fields.next().and_then(|v| v.parse().ok()),
        "procs_running" => stat.procs_running = fields.next().and_then(|v| v.parse().ok()),
        "procs_blocked" => stat.procs_blocked = fields.next().and_then(|v| v.parse().ok()),
        _ => {
            let Some(number) = key.strip_prefix("cpu").and_then(|n| n.parse::<u32>().ok()) else {
                return;
            };
            if let Some(times) = parse_times(fields) {
                stat.per_cpu.push((number, times));
            }
        }
    }
}

/// Parses the time columns after the `cpu` label. The first four (user, nice, system, idle)
/// are required.
// NOTE: kernels before 2.6.33 print fewer than ten columns; the missing ones count as zero,
// which leaves the shares of the columns that exist correct.
fn parse_times<'a>(fields: impl Iterator<Item = &'a str>) -> Option<CpuTimes> {
    let mut columns = [0u64; 10];
    let mut count = 0;
    for (slot, field) in columns.iter_mut().zip(fields) {
        *slot = field.parse().ok()?;
        count += 1;
    }
    if count < 4 {
        return None;
    }

    let [user, nice, system, idle, iowait, irq, softirq, steal, guest, guest_nice] = columns;
    Some(CpuTimes {
        user,
        nice,
        system,
        idle,
        iowait,
        irq,
        softirq,
        steal,
        guest,
        guest_nice,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TWO_CPUS: &str = "cpu  10000 200 3000 80000 500 0 100 0 4000 0\n\
        cpu0 5000 100 1500 40000 250 0 50 0 2000 0\n\
        cpu1 5000 100 1500 40000 250 0 50 0 2000 0\n\
        intr 12345 0 0\n\
        ctxt 987654\n\
        btime 1764797000\n\
        processes 4321\n\
        procs_running 3\n\
        procs_blocked 1\n\
        softirq 1 2 3\n";

    #[test]
    fn stat_keeps_total_and_cpu_numbers() {
        let stat = parse(TWO_CPUS.as_bytes());
        let total = stat.total.unwrap();
        assert_eq!(total.user, 10000);
        assert_eq!(total.guest, 4000);
        assert_eq!(total.steal, 0);
        assert_eq!(stat.per_cpu.len(), 2);
        assert_eq!(stat.per_cpu[0].0, 0);
        assert_eq!(stat.per_cpu[1].0, 1);
        assert_eq!(stat.per_cpu[1].1.idle, 40000);
    }

    #[test]
    fn stat_reads_boot_time_and_run_queue() {
        let stat = parse(TWO_CPUS.as_bytes());
        assert_eq!(stat.boot_time_secs, Some(1764797000));
        assert_eq!(stat.procs_running, Some(3));
        assert_eq!(stat.procs_blocked, Some(1));
    }

    #[test]
    fn stat_orders_cpus_by_number_with_gaps() {
        let stat = parse(b"cpu  4 0 4 8\ncpu3 1 0 1 2\ncpu0 3 0 3 6\n");
        let numbers: Vec<u32> = stat.per_cpu.iter().map(|&(n, _)| n).collect();
        assert_eq!(numbers, vec![0, 3]);
    }

    #[test]
    fn stat_skips_bad_cpu_line_and_keeps_rest() {
        let stat = parse(b"cpu  4 0 4 8\ncpu0 x 0 3 6\ncpu1 1 0 1 2\nbtime 7\n");
        assert_eq!(stat.per_cpu.len(), 1);
        assert_eq!(stat.per_cpu[0].0, 1);
        assert_eq!(stat.boot_time_secs, Some(7));
    }

    #[test]
    fn stat_accepts_old_four_column_lines() {
        let stat = parse(b"cpu  1 2 3 4\n");
        let total = stat.total.unwrap();
        assert_eq!(total.idle, 4);
        assert_eq!(total.iowait, 0);
    }

    #[test]
    fn stat_rejects_lines_with_three_columns() {
        let stat = parse(b"cpu  1 2 3\ncpu0 1 2\n");
        assert_eq!(stat.total, None);
        assert!(stat.per_cpu.is_empty());
    }

    proptest! {
        #[test]
        fn stat_parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn stat_parse_never_panics_on_stat_like_text(text in "(cpu[0-9]{0,2} [0-9 ]{0,40}\n|btime [0-9]{0,12}\n){0,8}") {
            let _ = parse(text.as_bytes());
        }
    }
}
