//! CPU utilisation over the interval from `/proc/stat`, for all CPUs and for each CPU.
//!
//! Each share is the rise of one time column divided by the rise of the eight columns user,
//! nice, system, idle, iowait, irq, softirq and steal. Guest time is already inside user and
//! nice, so it is not added again. Each rise is clamped at zero because iowait and, on some
//! hypervisors, other columns can go backwards. CPUs are matched by their number, so a CPU
//! that went offline or came back between the samples never shifts the others.

pub mod stat;

use std::cmp::Ordering;

use self::stat::CpuTimes;
use super::Context;
use crate::gaps::GapLog;
use crate::model::{Cpu, CpuUsage};
use crate::raw::Reader;
use crate::Scope;

/// The CPU times of one sample.
#[derive(Debug, Clone, Default)]
pub struct CpuSample {
    pub total: Option<CpuTimes>,
    /// Times by CPU number, ordered by number.
    pub per_cpu: Vec<(u32, CpuTimes)>,
}

/// Takes the CPU times from the sample's `/proc/stat`; both scopes need them.
pub fn read(r: &mut Reader, ctx: &Context, _scope: Scope, gaps: &mut GapLog) -> CpuSample {
    match ctx.kernel_stat(r, gaps) {
        Some(stat) => CpuSample {
            total: stat.total,
            per_cpu: stat.per_cpu.clone(),
        },
        None => CpuSample::default(),
    }
}

/// Computes utilisation between two samples. `None` when either sample lacks the total line
/// or no time passed; only CPUs present in both samples with time passed get an entry.
pub fn derive(prev: &CpuSample, cur: &CpuSample) -> Option<Cpu> {
    let total = usage(None, &prev.total?, &cur.total?)?;
    let per_cpu = match_by_number(&prev.per_cpu, &cur.per_cpu)
        .filter_map(|(cpu, before, after)| usage(Some(cpu), before, after))
        .collect();
    Some(Cpu { total, per_cpu })
}

/// Pairs the entries of two lists ordered by CPU number, skipping numbers not in both.
fn match_by_number<'a>(
    prev: &'a [(u32, CpuTimes)],
    cur: &'a [(u32, CpuTimes)],
) -> impl Iterator<Item = (u32, &'a CpuTimes, &'a CpuTimes)> + 'a {
    let mut prev = prev.iter().peekable();
    let mut cur = cur.iter().peekable();
    std::iter::from_fn(move || loop {
        let (before, after) = (*prev.peek()?, *cur.peek()?);
        match before.0.cmp(&after.0) {
            Ordering::Less => {
                prev.next();
            }
            Ordering::Greater => {
                cur.next();
            }
            Ordering::Equal => {
                prev.next();
                cur.next();
                return Some((after.0, &before.1, &after.1));
            }
        }
    })
}

/// Shares of one CPU, or of all, over the interval; `None` when no tick passed.
fn usage(cpu: Option<u32>, prev: &CpuTimes, cur: &CpuTimes) -> Option<CpuUsage> {
    let rise = |before: u64, after: u64| after.saturating_sub(before);
    let user = rise(prev.user, cur.user);
    let nice = rise(prev.nice, cur.nice);
    let system = rise(prev.system, cur.system);
    let idle = rise(prev.idle, cur.idle);
    let iowait = rise(prev.iowait, cur.iowait);
    let irq = rise(prev.irq, cur.irq);
    let softirq = rise(prev.softirq, cur.softirq);
    let steal = rise(prev.steal, cur.steal);

    let total = user + nice + system + idle + iowait + irq + softirq + steal;
    if total == 0 {
        return None;
    }

    let pct = |ticks: u64| ticks as f64 * 100.0 / total as f64;
    Some(CpuUsage {
        cpu,
        user_pct: pct(user),
        nice_pct: pct(nice),
        system_pct: pct(system),
        idle_pct: pct(idle),
        iowait_pct: pct(iowait),
        irq_pct: pct(irq),
        softirq_pct: pct(softirq),
        steal_pct: pct(steal),
        busy_pct: pct(total - idle - iowait),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(text: &str) -> CpuSample {
        let stat = stat::parse(text.as_bytes());
        CpuSample {
            total: stat.total,
            per_cpu: stat.per_cpu,
        }
    }

    fn fixture_sample(name: &str) -> CpuSample {
        use crate::linux::context::fixture;
        let roots = fixture::roots(name);
        let ctx = fixture::context(&roots);
        let mut gaps = GapLog::default();
        let sample = read(
            &mut fixture::reader(&roots),
            &ctx,
            Scope::Counters,
            &mut gaps,
        );
        assert!(gaps.is_empty());
        sample
    }

    #[test]
    fn fixture_cpu_over_interval() {
        let cpu = derive(&fixture_sample("small-baseline"), &fixture_sample("small")).unwrap();
        assert_eq!(cpu.total.busy_pct, 86.0);
        assert_eq!(cpu.per_cpu.len(), 2);
        assert_eq!(cpu.per_cpu[0].cpu, Some(0));
        assert_eq!(cpu.per_cpu[0].busy_pct, 100.0);
        assert_eq!(cpu.per_cpu[0].user_pct, 100.0);
        assert_eq!(cpu.per_cpu[1].cpu, Some(1));
        assert_eq!(cpu.per_cpu[1].busy_pct, 72.0);
        assert_eq!(cpu.per_cpu[1].idle_pct, 28.0);
        assert_eq!(cpu.per_cpu[1].softirq_pct, 2.0);
    }

    #[test]
    fn guest_is_not_counted_twice() {
        let prev = sample("cpu  10000 200 3000 80000 500 0 100 0 4000 0\n");
        let cur = sample("cpu  10150 200 3020 80028 498 0 102 0 4140 0\n");
        let cpu = derive(&prev, &cur).unwrap();
        assert_eq!(cpu.total.busy_pct, 86.0);
        assert_eq!(cpu.total.user_pct, 75.0);
        assert_eq!(cpu.total.system_pct, 10.0);
        assert_eq!(cpu.total.softirq_pct, 1.0);
        assert_eq!(cpu.total.idle_pct, 14.0);
    }

    #[test]
    fn backwards_counter_is_clamped_at_zero() {
        let prev = sample("cpu  10000 200 3000 80000 500 0 100 0 4000 0\n");
        let cur = sample("cpu  10150 200 3020 80028 498 0 102 0 4140 0\n");
        let cpu = derive(&prev, &cur).unwrap();
        assert_eq!(cpu.total.iowait_pct, 0.0);
        assert_eq!(cpu.total.cpu, None);
    }

    #[test]
    fn cpus_match_by_number_when_one_goes_offline() {
        let prev = sample("cpu  0 0 0 0\ncpu0 10 0 0 90\ncpu1 50 0 0 50\ncpu2 0 0 0 100\n");
        let cur = sample("cpu  100 0 0 200\ncpu0 20 0 0 180\ncpu2 100 0 0 100\n");
        let cpu = derive(&prev, &cur).unwrap();
        assert_eq!(cpu.per_cpu.len(), 2);
        assert_eq!(cpu.per_cpu[0].cpu, Some(0));
        assert_eq!(cpu.per_cpu[0].busy_pct, 10.0);
        assert_eq!(cpu.per_cpu[1].cpu, Some(2));
        assert_eq!(cpu.per_cpu[1].busy_pct, 100.0);
    }

    #[test]
    fn cpu_that_comes_back_is_left_out_once() {
        let prev = sample("cpu  0 0 0 0\ncpu0 0 0 0 100\n");
        let cur = sample("cpu  50 0 0 150\ncpu0 50 0 0 150\ncpu1 7 0 0 7\n");
        let cpu = derive(&prev, &cur).unwrap();
        let numbers: Vec<Option<u32>> = cpu.per_cpu.iter().map(|u| u.cpu).collect();
        assert_eq!(numbers, vec![Some(0)]);
    }

    #[test]
    fn no_time_passed_gives_none() {
        let same = sample("cpu  10 0 0 90\n");
        assert_eq!(derive(&same, &same), None);
    }

    #[test]
    fn missing_total_gives_none() {
        let prev = sample("cpu0 10 0 0 90\n");
        let cur = sample("cpu0 20 0 0 180\n");
        assert_eq!(derive(&prev, &cur), None);
    }
}
