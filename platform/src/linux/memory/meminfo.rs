//! `/proc/meminfo` as a map of every key it contains.
//!
//! procfs-core's `Meminfo` rejects files that lack keys very old kernels do not print (such as
//! `Committed_AS` or the `Vmalloc` lines), drops keys it does not know, and slices each key
//! without checking for a character boundary. This parser keeps every line it can read.

use std::collections::BTreeMap;

/// The values of `/proc/meminfo` by key, in bytes where the kernel gave `kB` and as printed
/// otherwise (the `HugePages_*` counts).
pub type Meminfo = BTreeMap<String, u64>;

/// Parses `Key:   value [kB]` lines; unreadable lines are skipped.
pub fn parse(bytes: &[u8]) -> Meminfo {
    let mut map = Meminfo::new();
    for line in bytes.split(|&b| b == b'\n') {
        let Ok(line) = std::str::from_utf8(line) else {
            continue;
        };
        if let Some((key, value)) = parse_line(line) {
            map.entry(key.to_string()).or_insert(value);
        }
    }
    map
}

fn parse_line(line: &str) -> Option<(&str, u64)> {
    let (key, rest) = line.split_once(':')?;
    let key = key.trim();
    if key.is_empty() {
        return None;
    }

    let mut fields = rest.split_ascii_whitespace();
    let value: u64 = fields.next()?.parse().ok()?;
    let value = match fields.next() {
        None => value,
        Some("kB") => value.checked_mul(1024)?,
        Some(_) => return None,
    };
    Some((key, value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn meminfo_converts_kb_to_bytes() {
        let map = parse(b"MemTotal:       16384 kB\nHugePages_Total:       4\n");
        assert_eq!(map.get("MemTotal"), Some(&(16384 * 1024)));
        assert_eq!(map.get("HugePages_Total"), Some(&4));
    }

    #[test]
    fn meminfo_keeps_unknown_keys_and_parenthesised_names() {
        let map = parse(b"Active(file):  100 kB\nFutureKey:     7 kB\n");
        assert_eq!(map.get("Active(file)"), Some(&102400));
        assert_eq!(map.get("FutureKey"), Some(&7168));
    }

    #[test]
    fn meminfo_skips_bad_lines() {
        let map = parse(b"MemFree: lots kB\nBuffers: 1 MB\n: 5\nCached: 2 kB\n");
        assert_eq!(map.len(), 1);
        assert_eq!(map.get("Cached"), Some(&2048));
    }

    proptest! {
        #[test]
        fn meminfo_parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse(&bytes);
        }
    }
}
