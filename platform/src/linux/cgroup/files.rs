//! Parsing the cgroup v2 interface files AegisIR reads: the flat-keyed `cpu.stat` and
//! `memory.events` (`key value` per line), and the single values of `memory.current` and
//! `memory.max`. The pressure files have the `/proc/pressure` format and use that parser.

/// The counters of `cpu.stat`. The `usage_usec` line is always present; the throttling lines
/// only where the `cpu` controller is enabled for the cgroup.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuStat {
    pub usage_usecs: Option<u64>,
    pub nr_periods: Option<u64>,
    pub nr_throttled: Option<u64>,
    pub throttled_usecs: Option<u64>,
}

/// The counters of `memory.events`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryEvents {
    /// Times usage reached `memory.max` and reclaim had to run (`max`).
    pub max: Option<u64>,
    /// Processes the OOM killer killed in this cgroup (`oom_kill`).
    pub oom_kill: Option<u64>,
}

/// The value of `memory.max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryLimit {
    Bytes(u64),
    /// `max`: no limit.
    Unlimited,
}

pub fn parse_cpu_stat(bytes: &[u8]) -> Option<CpuStat> {
    let mut stat = CpuStat::default();
    for (key, value) in flat_keyed(bytes)? {
        match key {
            "usage_usec" => stat.usage_usecs = Some(value),
            "nr_periods" => stat.nr_periods = Some(value),
            "nr_throttled" => stat.nr_throttled = Some(value),
            "throttled_usec" => stat.throttled_usecs = Some(value),
            _ => {}
        }
    }
    stat.usage_usecs.is_some().then_some(stat)
}

pub fn parse_memory_events(bytes: &[u8]) -> Option<MemoryEvents> {
    let mut events = MemoryEvents::default();
    for (key, value) in flat_keyed(bytes)? {
        match key {
            "max" => events.max = Some(value),
            "oom_kill" => events.oom_kill = Some(value),
            _ => {}
        }
    }
    (events.max.is_some() || events.oom_kill.is_some()).then_some(events)
}

/// Parses `memory.current`: one number of bytes.
pub fn parse_bytes(bytes: &[u8]) -> Option<u64> {
    std::str::from_utf8(bytes).ok()?.trim().parse().ok()
}

/// Parses `memory.max`: a number of bytes or `max`.
pub fn parse_limit(bytes: &[u8]) -> Option<MemoryLimit> {
    let text = std::str::from_utf8(bytes).ok()?.trim();
    if text == "max" {
        return Some(MemoryLimit::Unlimited);
    }
    text.parse().ok().map(MemoryLimit::Bytes)
}

/// Splits a flat-keyed file into `key value` pairs, skipping lines without a numeric value.
/// `None` when the file is not UTF-8.
fn flat_keyed(bytes: &[u8]) -> Option<impl Iterator<Item = (&str, u64)>> {
    let text = std::str::from_utf8(bytes).ok()?;
    let pairs = text.lines().filter_map(|line| {
        let (key, value) = line.split_once(' ')?;
        Some((key, value.trim().parse().ok()?))
    });
    Some(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn cpu_stat_with_cpu_controller() {
        let text = "usage_usec 8123456\nuser_usec 6000000\nsystem_usec 2123456\n\
                    core_sched.force_idle_usec 0\nnr_periods 1200\nnr_throttled 340\n\
                    throttled_usec 4500000\nnr_bursts 0\nburst_usec 0\n";
        let stat = parse_cpu_stat(text.as_bytes()).unwrap();
        assert_eq!(stat.usage_usecs, Some(8123456));
        assert_eq!(stat.nr_periods, Some(1200));
        assert_eq!(stat.nr_throttled, Some(340));
        assert_eq!(stat.throttled_usecs, Some(4500000));
    }

    #[test]
    fn cpu_stat_without_cpu_controller_has_no_throttling() {
        let stat = parse_cpu_stat(b"usage_usec 100\nuser_usec 60\nsystem_usec 40\n").unwrap();
        assert_eq!(stat.usage_usecs, Some(100));
        assert_eq!(stat.nr_throttled, None);
        assert_eq!(stat.throttled_usecs, None);
    }

    #[test]
    fn cpu_stat_without_usage_is_rejected() {
        assert_eq!(parse_cpu_stat(b"nr_throttled 3\n"), None);
        assert_eq!(parse_cpu_stat(b"usage_usec lots\n"), None);
    }

    #[test]
    fn memory_events_counters() {
        let text = "low 0\nhigh 12\nmax 7\noom 2\noom_kill 1\noom_group_kill 0\n";
        let events = parse_memory_events(text.as_bytes()).unwrap();
        assert_eq!(events.max, Some(7));
        assert_eq!(events.oom_kill, Some(1));
    }

    #[test]
    fn memory_events_without_known_keys_is_rejected() {
        assert_eq!(parse_memory_events(b"low 0\nhigh 1\n"), None);
    }

    #[test]
    fn memory_limit_max_is_unlimited() {
        assert_eq!(parse_limit(b"max\n"), Some(MemoryLimit::Unlimited));
        assert_eq!(
            parse_limit(b"536870912\n"),
            Some(MemoryLimit::Bytes(536870912))
        );
        assert_eq!(parse_limit(b"-1\n"), None);
        assert_eq!(parse_bytes(b"123456789\n"), Some(123456789));
        assert_eq!(parse_bytes(b"\n"), None);
    }

    proptest! {
        #[test]
        fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse_cpu_stat(&bytes);
            let _ = parse_memory_events(&bytes);
            let _ = parse_bytes(&bytes);
            let _ = parse_limit(&bytes);
        }
    }
}
