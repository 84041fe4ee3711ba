//! `/proc/PID/stat`, parsed from the bytes.
//!
//! procfs-core's `Stat` turns the command name into a lossy `String`, which loses the byte
//! length needed to spot a name the kernel cut at 15 bytes. It also panics on lines with
//! nothing before the `(` or after the last `)`. This parser borrows the name bytes, reads only
//! the fields AegisIR reports, and returns `None` for anything it cannot read.

/// Task flag of kernel threads (`PF_KTHREAD` in `include/linux/sched.h`).
pub const PF_KTHREAD: u64 = 0x0020_0000;

/// The fields of one stat line that AegisIR uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatLine<'a> {
    pub pid: i32,
    /// The command name between the parentheses, at most 15 bytes on a real kernel, with no
    /// escaping: it may contain spaces, parentheses, newlines and bytes that are not UTF-8.
    pub comm: &'a [u8],
    /// The one-letter state (`R`, `S`, `D`, `Z`, `T`, `I`, ...).
    pub state: u8,
    pub ppid: i32,
    pub flags: u64,
    /// User and system time in clock ticks.
    pub utime: u64,
    pub stime: u64,
    pub threads: u32,
    /// Start time in clock ticks after boot.
    pub start_ticks: u64,
    pub vsize_bytes: u64,
    /// Resident pages; `None` when the kernel printed a negative count.
    pub rss_pages: Option<u64>,
}

impl StatLine<'_> {
    pub fn is_kernel_thread(&self) -> bool {
        self.flags & PF_KTHREAD != 0
    }
}

/// Parses one stat line. The name runs from the first `(` to the last `)`, so a name that
/// itself contains `) R 9 (` still parses.
pub fn parse(bytes: &[u8]) -> Option<StatLine<'_>> {
    let open = bytes.iter().position(|&b| b == b'(')?;
    let close = bytes.iter().rposition(|&b| b == b')')?;
    if close < open {
        return None;
    }

    let pid = std::str::from_utf8(&bytes[..open])
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let comm = &bytes[open + 1..close];
    let rest = std::str::from_utf8(&bytes[close + 1..]).ok()?;
    let mut fields = rest.split_ascii_whitespace();

    // Field numbers below are those of proc(5), where the state is field 3.
    let state = *fields.next()?.as_bytes().first()?;
    let ppid = fields.next()?.parse().ok()?; // 4
    let flags = fields.nth(4)?.parse().ok()?; // 9
    let utime = fields.nth(4)?.parse().ok()?; // 14
    let stime = fields.next()?.parse().ok()?; // 15
    let threads: i64 = fields.nth(4)?.parse().ok()?; // 20
    let start_ticks = fields.nth(1)?.parse().ok()?; // 22
    let vsize_bytes = fields.next()?.parse().ok()?; // 23
    let rss_pages: i64 = fields.next()?.parse().ok()?; // 24

    Some(StatLine {
        pid,
        comm,
        state,
        ppid,
        flags,
        utime,
        stime,
        threads: u32::try_from(threads).ok()?,
        start_ticks,
        vsize_bytes,
        rss_pages: u64::try_from(rss_pages).ok(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const BASH: &[u8] = b"1234 (bash) S 1000 1234 1234 34816 5678 4194560 2000 30000 1 5 \
        150 70 300 100 20 0 1 0 98765 12345678 900 18446744073709551615 1 1 0 0 0 0 65536 \
        3670020 1266777851 0 0 0 17 3 0 0 0 0 0 0 0 0 0 0 0 0 0\n";

    #[test]
    fn stat_reads_fields_by_position() {
        let stat = parse(BASH).unwrap();
        assert_eq!(stat.pid, 1234);
        assert_eq!(stat.comm, b"bash");
        assert_eq!(stat.state, b'S');
        assert_eq!(stat.ppid, 1000);
        assert_eq!(stat.flags, 4194560);
        assert_eq!(stat.utime, 150);
        assert_eq!(stat.stime, 70);
        assert_eq!(stat.threads, 1);
        assert_eq!(stat.start_ticks, 98765);
        assert_eq!(stat.vsize_bytes, 12345678);
        assert_eq!(stat.rss_pages, Some(900));
        assert!(!stat.is_kernel_thread());
    }

    #[test]
    fn name_runs_to_last_parenthesis() {
        let line = b"42 (a) R 9 (b) R 7 42 42 0 -1 4194304 0 0 0 0 1 2 0 0 20 0 3 0 500 100 5";
        let stat = parse(line).unwrap();
        assert_eq!(stat.comm, b"a) R 9 (b");
        assert_eq!(stat.state, b'R');
        assert_eq!(stat.ppid, 7);
        assert_eq!(stat.threads, 3);
        assert_eq!(stat.start_ticks, 500);
    }

    #[test]
    fn kernel_thread_has_pf_kthread_flag() {
        let line = b"2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 3 0 0 20 0 1 0 2 0 0 \
            18446744073709551615 0 0 0 0 0 0 0 2147483647 0 0 0 0 17 0 0 0 0 0 0";
        let stat = parse(line).unwrap();
        assert!(stat.is_kernel_thread());
        assert_eq!(stat.vsize_bytes, 0);
        assert_eq!(stat.rss_pages, Some(0));
    }

    #[test]
    fn name_keeps_bytes_that_are_not_utf8() {
        let line = b"7 (caf\xc3) S 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 9 10 2";
        let stat = parse(line).unwrap();
        assert_eq!(stat.comm, b"caf\xc3");
    }

    #[test]
    fn negative_rss_is_unknown() {
        let line = b"7 (x) S 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 9 10 -4";
        assert_eq!(parse(line).unwrap().rss_pages, None);
    }

    #[test]
    fn truncated_or_malformed_lines_are_rejected() {
        assert_eq!(parse(b""), None);
        assert_eq!(parse(b"(bash) S 1"), None);
        assert_eq!(parse(b"12 (bash)"), None);
        assert_eq!(parse(b"12 )bash( S 1 2 3"), None);
        assert_eq!(parse(b"12 (bash) S 1 2 3 4 5 6"), None);
    }

    proptest! {
        #[test]
        fn stat_parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn stat_parse_never_panics_on_stat_like_text(text in "[0-9]{0,6} ?\\([ a-z()]{0,20}\\)[ 0-9A-Z-]{0,120}") {
            let _ = parse(text.as_bytes());
        }
    }
}
