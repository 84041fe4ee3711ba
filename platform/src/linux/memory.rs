//! Memory from `/proc/meminfo` and the fault and OOM counters of `/proc/vmstat`.
//!
//! Kernels before 3.14 have no `MemAvailable`. There the collector estimates it as
//! `MemFree + Active(file) + Inactive(file) + SReclaimable`, the page cache and reclaimable
//! slab that the kernel's own formula (`si_mem_available`) starts from, without the
//! watermark reserves that formula subtracts, and marks the value estimated.

pub mod meminfo;

use procfs_core::FromRead;

use self::meminfo::Meminfo;
use super::Context;
use crate::gaps::GapLog;
use crate::model::{GapReason, Memory};
use crate::raw::Reader;
use crate::Scope;

/// Keys of `/proc/meminfo` that have their own field in [`Memory`]; every other key goes to
/// `Memory::other`.
const MODELED_KEYS: [&str; 8] = [
    "MemTotal",
    "MemAvailable",
    "MemFree",
    "Buffers",
    "Cached",
    "Dirty",
    "SwapTotal",
    "SwapFree",
];

/// The counters of `/proc/vmstat` that AegisIR reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VmCounters {
    /// `pgmajfault`: major page faults since boot.
    pub major_faults: Option<u64>,
    /// `oom_kill`: OOM kills since boot (since Linux 4.13).
    pub oom_kills: Option<u64>,
}

/// The memory readings of one sample. Both scopes read `/proc/meminfo` and `/proc/vmstat`:
/// the history recorder needs memory use at every point, and both files are short.
#[derive(Debug, Clone, Default)]
pub struct MemorySample {
    pub meminfo: Option<Meminfo>,
    pub vmstat: Option<VmCounters>,
}

pub fn read(r: &mut Reader, _ctx: &Context, _scope: Scope, gaps: &mut GapLog) -> MemorySample {
    MemorySample {
        meminfo: read_meminfo(r, gaps),
        vmstat: read_vmstat(r, gaps),
    }
}

/// Builds the memory figures of the later sample, with the counter rises since the earlier.
/// `None` when the later sample read neither file.
pub fn derive(prev: &MemorySample, cur: &MemorySample) -> Option<Memory> {
    if cur.meminfo.is_none() && cur.vmstat.is_none() {
        return None;
    }

    let empty = Meminfo::new();
    let info = cur.meminfo.as_ref().unwrap_or(&empty);
    let get = |key: &str| info.get(key).copied();
    let (available_bytes, available_estimated) = available(info);

    let now = cur.vmstat.unwrap_or_default();
    let before = prev.vmstat.unwrap_or_default();
    let rise = |before: Option<u64>, now: Option<u64>| Some(now?.saturating_sub(before?));

    Some(Memory {
        total_bytes: get("MemTotal"),
        available_bytes,
        available_estimated,
        free_bytes: get("MemFree"),
        buffers_bytes: get("Buffers"),
        cached_bytes: get("Cached"),
        dirty_bytes: get("Dirty"),
        swap_total_bytes: get("SwapTotal"),
        swap_free_bytes: get("SwapFree"),
        major_faults: now.major_faults,
        major_faults_in_interval: rise(before.major_faults, now.major_faults),
        oom_kills: now.oom_kills,
        oom_kills_in_interval: rise(before.oom_kills, now.oom_kills),
        other: other_keys(info),
    })
}

/// `MemAvailable`, or the estimate described in the module docs with `true`.
fn available(info: &Meminfo) -> (Option<u64>, bool) {
    if let Some(&value) = info.get("MemAvailable") {
        return (Some(value), false);
    }

    let get = |key: &str| info.get(key).copied();
    let Some(free) = get("MemFree") else {
        return (None, false);
    };
    // Kernels before 2.6.28 have no file LRU lines; their page cache is `Cached`.
    let file = match (get("Active(file)"), get("Inactive(file)")) {
        (Some(active), Some(inactive)) => active + inactive,
        _ => get("Cached").unwrap_or(0),
    };
    let reclaimable = get("SReclaimable").unwrap_or(0);
    (Some(free + file + reclaimable), true)
}

fn other_keys(info: &Meminfo) -> std::collections::BTreeMap<String, u64> {
    info.iter()
        .filter(|(key, _)| !MODELED_KEYS.contains(&key.as_str()))
        .map(|(key, &value)| (key.clone(), value))
        .collect()
}

fn read_meminfo(r: &mut Reader, gaps: &mut GapLog) -> Option<Meminfo> {
    let bytes = gaps.value("memory", r.proc("meminfo"))?;
    let info = meminfo::parse(bytes);
    if !info.contains_key("MemTotal") {
        gaps.push(
            "memory",
            "proc/meminfo",
            GapReason::Invalid,
            "no readable MemTotal line",
        );
    }
    Some(info)
}

fn read_vmstat(r: &mut Reader, gaps: &mut GapLog) -> Option<VmCounters> {
    let bytes = gaps.value("memory", r.proc("vmstat"))?;
    parse_vmstat(bytes, gaps)
}

/// Parses `/proc/vmstat` with procfs-core and picks the counters AegisIR reports.
pub fn parse_vmstat(bytes: &[u8], gaps: &mut GapLog) -> Option<VmCounters> {
    let vmstat = match procfs_core::VmStat::from_read(bytes) {
        Ok(vmstat) => vmstat,
        Err(error) => {
            gaps.push(
                "memory",
                "proc/vmstat",
                GapReason::Invalid,
                error.to_string(),
            );
            return None;
        }
    };

    let counter = |key: &str| vmstat.0.get(key).and_then(|&v| u64::try_from(v).ok());
    let counters = VmCounters {
        major_faults: counter("pgmajfault"),
        oom_kills: counter("oom_kill"),
    };
    if counters.major_faults.is_none() {
        gaps.push(
            "memory",
            "proc/vmstat",
            GapReason::Invalid,
            "no pgmajfault counter",
        );
    }
    if counters.oom_kills.is_none() {
        let detail = "no oom_kill counter (added in Linux 4.13)";
        gaps.push("memory", "proc/vmstat", GapReason::Unsupported, detail);
    }
    Some(counters)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn vmstat_parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_vmstat(&bytes, &mut GapLog::default());
        }

        #[test]
        fn vmstat_parse_never_panics_on_vmstat_like_text(
            text in "([a-z_]{0,12} -?[0-9]{0,21}\n){0,8}"
        ) {
            let _ = parse_vmstat(text.as_bytes(), &mut GapLog::default());
        }
    }

    const NEW_KERNEL: &str = "MemTotal:       16000 kB\n\
        MemFree:         2000 kB\n\
        MemAvailable:    9000 kB\n\
        Buffers:          500 kB\n\
        Cached:          6000 kB\n\
        SwapTotal:       4000 kB\n\
        SwapFree:        3000 kB\n\
        Dirty:             12 kB\n\
        Zswapped:          64 kB\n\
        HugePages_Total:    0\n";

    const OLD_KERNEL: &str = "MemTotal:       16000 kB\n\
        MemFree:         2000 kB\n\
        Buffers:          500 kB\n\
        Cached:          6000 kB\n\
        Active(file):    3000 kB\n\
        Inactive(file):  2500 kB\n\
        SReclaimable:     400 kB\n";

    fn sample(meminfo: &str, faults: u64, kills: Option<u64>) -> MemorySample {
        MemorySample {
            meminfo: Some(meminfo::parse(meminfo.as_bytes())),
            vmstat: Some(VmCounters {
                major_faults: Some(faults),
                oom_kills: kills,
            }),
        }
    }

    fn fixture_sample(name: &str, scope: Scope) -> (MemorySample, GapLog) {
        use crate::linux::context::fixture;
        let roots = fixture::roots(name);
        let ctx = fixture::context(&roots);
        let mut gaps = GapLog::default();
        let sample = read(&mut fixture::reader(&roots), &ctx, scope, &mut gaps);
        (sample, gaps)
    }

    #[test]
    fn fixture_memory_over_interval() {
        let (prev, _) = fixture_sample("small-baseline", Scope::Counters);
        let (cur, gaps) = fixture_sample("small", Scope::Full);
        assert!(gaps.is_empty());
        let memory = derive(&prev, &cur).unwrap();

        assert_eq!(memory.total_bytes, Some(8052592 * 1024));
        assert_eq!(memory.available_bytes, Some(5123456 * 1024));
        assert!(!memory.available_estimated);
        assert_eq!(memory.free_bytes, Some(812344 * 1024));
        assert_eq!(memory.cached_bytes, Some(3987654 * 1024));
        assert_eq!(memory.swap_total_bytes, Some(2097148 * 1024));
        assert_eq!(memory.major_faults, Some(1234));
        assert_eq!(memory.major_faults_in_interval, Some(34));
        assert_eq!(memory.oom_kills, Some(3));
        assert_eq!(memory.oom_kills_in_interval, Some(1));
        assert_eq!(memory.other.get("SReclaimable"), Some(&(250000 * 1024)));
        assert_eq!(memory.other.get("HugePages_Free"), Some(&0));
        assert_eq!(memory.other.len(), 33);
    }

    #[test]
    fn counters_sample_reads_meminfo_and_vmstat() {
        let (sample, _) = fixture_sample("small", Scope::Counters);
        assert!(sample.meminfo.is_some());
        assert_eq!(sample.vmstat.unwrap().major_faults, Some(1234));
    }

    #[test]
    fn vmstat_without_oom_kill_records_unsupported() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("vmstat"), "pgfault 10\npgmajfault 4\n").unwrap();
        let mut reader = Reader::new(crate::raw::Roots {
            procfs: dir.path().to_path_buf(),
            ..crate::raw::Roots::default()
        });
        let mut gaps = GapLog::default();
        let counters = read_vmstat(&mut reader, &mut gaps).unwrap();

        assert_eq!(counters.major_faults, Some(4));
        assert_eq!(counters.oom_kills, None);
        let gaps = gaps.into_vec();
        assert_eq!(gaps.len(), 1);
        assert_eq!(gaps[0].reason, GapReason::Unsupported);
        assert_eq!(gaps[0].subject, "proc/vmstat");
    }

    #[test]
    fn memory_reads_modeled_keys_in_bytes() {
        let memory = derive(&MemorySample::default(), &sample(NEW_KERNEL, 5, Some(0))).unwrap();
        assert_eq!(memory.total_bytes, Some(16000 * 1024));
        assert_eq!(memory.available_bytes, Some(9000 * 1024));
        assert!(!memory.available_estimated);
        assert_eq!(memory.buffers_bytes, Some(500 * 1024));
        assert_eq!(memory.dirty_bytes, Some(12 * 1024));
        assert_eq!(memory.swap_free_bytes, Some(3000 * 1024));
    }

    #[test]
    fn memory_keeps_unknown_keys_in_other() {
        let memory = derive(&MemorySample::default(), &sample(NEW_KERNEL, 5, Some(0))).unwrap();
        assert_eq!(memory.other.get("Zswapped"), Some(&(64 * 1024)));
        assert_eq!(memory.other.get("HugePages_Total"), Some(&0));
        assert!(!memory.other.contains_key("MemTotal"));
        assert_eq!(memory.other.len(), 2);
    }

    #[test]
    fn old_kernel_available_is_estimated() {
        let memory = derive(&MemorySample::default(), &sample(OLD_KERNEL, 5, None)).unwrap();
        assert_eq!(
            memory.available_bytes,
            Some((2000 + 3000 + 2500 + 400) * 1024)
        );
        assert!(memory.available_estimated);
        assert_eq!(memory.oom_kills, None);
    }

    #[test]
    fn counters_rise_over_interval() {
        let prev = MemorySample {
            meminfo: None,
            ..sample(NEW_KERNEL, 100, Some(2))
        };
        let memory = derive(&prev, &sample(NEW_KERNEL, 130, Some(3))).unwrap();
        assert_eq!(memory.major_faults, Some(130));
        assert_eq!(memory.major_faults_in_interval, Some(30));
        assert_eq!(memory.oom_kills_in_interval, Some(1));
    }

    #[test]
    fn counter_missing_in_baseline_has_no_rise() {
        let memory = derive(&MemorySample::default(), &sample(NEW_KERNEL, 130, Some(3))).unwrap();
        assert_eq!(memory.major_faults_in_interval, None);
        assert_eq!(memory.oom_kills_in_interval, None);
    }

    #[test]
    fn nothing_read_gives_none() {
        assert_eq!(
            derive(&MemorySample::default(), &MemorySample::default()),
            None
        );
    }
}
