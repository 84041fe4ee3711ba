//! `/proc/loadavg`, parsed with procfs-core.

use procfs_core::FromRead;

use crate::gaps::GapLog;
use crate::model::GapReason;
use crate::raw::Reader;

/// Load averages and the thread counts of the fourth column (`runnable/total`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LoadAverage {
    pub one: f64,
    pub five: f64,
    pub fifteen: f64,
    /// Runnable threads.
    pub runnable_threads: u32,
    /// Threads that exist on the host, in every PID namespace.
    pub total_threads: u32,
}

/// Reads and parses `/proc/loadavg`, recording a gap on failure.
pub fn read(reader: &mut Reader, gaps: &mut GapLog) -> Option<LoadAverage> {
    let bytes = gaps.value("host", reader.proc("loadavg"))?;
    match parse(bytes) {
        Some(load) => Some(load),
        None => {
            gaps.push(
                "host",
                "proc/loadavg",
                GapReason::Invalid,
                "unparsable load line",
            );
            None
        }
    }
}

pub fn parse(bytes: &[u8]) -> Option<LoadAverage> {
    let load = procfs_core::LoadAverage::from_read(bytes).ok()?;
    Some(LoadAverage {
        one: hundredths(load.one),
        five: hundredths(load.five),
        fifteen: hundredths(load.fifteen),
        runnable_threads: load.cur,
        total_threads: load.max,
    })
}

/// Widens a value the kernel printed with two decimals and procfs-core parsed as `f32`, so that
/// `0.10` stays `0.1` rather than `0.10000000149011612`.
pub fn hundredths(value: f32) -> f64 {
    (f64::from(value) * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn loadavg_parses_averages_and_threads() {
        let load = parse(b"0.10 1.25 12.50 3/412 98765\n").unwrap();
        assert_eq!(load.one, 0.1);
        assert_eq!(load.five, 1.25);
        assert_eq!(load.fifteen, 12.5);
        assert_eq!(load.runnable_threads, 3);
        assert_eq!(load.total_threads, 412);
    }

    #[test]
    fn loadavg_rejects_short_line() {
        assert_eq!(parse(b"0.10 1.25\n"), None);
    }

    proptest! {
        #[test]
        fn loadavg_parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = parse(&bytes);
        }
    }
}
