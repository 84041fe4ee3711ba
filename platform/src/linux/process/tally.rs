//! Per-process read failures summed into one gap per file and reason, so that a non-root
//! reader denied `io` of 400 processes gets one gap that counts them, not 400 gaps.

use std::collections::BTreeMap;

use crate::gaps::GapLog;
use crate::model::GapReason;

#[derive(Debug, Default)]
pub struct GapTally {
    entries: BTreeMap<(&'static str, GapReason), Failures>,
}

#[derive(Debug)]
struct Failures {
    count: u32,
    first_pid: i32,
    first_detail: String,
}

impl GapTally {
    /// Counts a failure to read `file` (such as `io` or `fd`) of process `pid`.
    pub fn add(&mut self, file: &'static str, reason: GapReason, pid: i32, detail: &str) {
        self.entries
            .entry((file, reason))
            .and_modify(|failures| failures.count += 1)
            .or_insert_with(|| Failures {
                count: 1,
                first_pid: pid,
                first_detail: detail.to_string(),
            });
    }

    /// Records one gap per file and reason: the exact path when one process failed, otherwise
    /// `proc/*/FILE` with the count and the first pid.
    pub fn record(self, gaps: &mut GapLog) {
        for ((file, reason), failures) in self.entries {
            let (subject, detail) = if failures.count == 1 {
                let subject = format!("proc/{}/{file}", failures.first_pid);
                (subject, failures.first_detail)
            } else {
                let detail = format!(
                    "{} processes, first pid {}: {}",
                    failures.count, failures.first_pid, failures.first_detail
                );
                (format!("proc/*/{file}"), detail)
            };
            gaps.push("processes", subject, reason, detail);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tally_sums_failures_per_file_and_reason() {
        let mut tally = GapTally::default();
        tally.add("io", GapReason::PermissionDenied, 10, "denied");
        tally.add("io", GapReason::PermissionDenied, 12, "denied");
        tally.add("io", GapReason::Unsupported, 14, "missing");
        let mut gaps = GapLog::default();
        tally.record(&mut gaps);

        let gaps = gaps.into_vec();
        assert_eq!(gaps.len(), 2);
        assert_eq!(gaps[0].subject, "proc/*/io");
        assert_eq!(gaps[0].reason, GapReason::PermissionDenied);
        assert_eq!(gaps[0].detail, "2 processes, first pid 10: denied");
        assert_eq!(gaps[1].subject, "proc/14/io");
        assert_eq!(gaps[1].reason, GapReason::Unsupported);
        assert_eq!(gaps[1].detail, "missing");
    }
}
