//! Interfaces, TCP states, retransmits and listening sockets.
//!
//! Every file comes from [`Context::net_file`]: `net/` for the reader's own network namespace,
//! `1/net/` for the host's when a host procfs is read from a container. Both scopes read the
//! counters (`dev`, `snmp`); only [`Scope::Full`] reads the socket tables.
//!
//! `net/dev` is parsed here rather than by procfs-core. Some kernels print the first counter
//! right after the colon (`%6s:%8lu`), so a receive byte count of 8 or more digits gives
//! `eth0:73400320512 51234567 ...`. procfs-core takes the interface name as one
//! whitespace-separated word, so such a line shifts every column and fails the whole table.

mod sockets;

use super::process::ProcessSample;
use super::Context;
use crate::gaps::GapLog;
use crate::model::{GapReason, Interface, Network};
use crate::raw::Reader;
use crate::Scope;

pub use sockets::{BoundSocket, SocketTables};

const COLLECTOR: &str = "network";

/// The network readings of one sample. A part is `None` where its file could not be read, and the socket
/// tables are also `None` in [`Scope::Counters`].
#[derive(Debug, Clone, Default)]
pub struct NetworkSample {
    pub interfaces: Option<Vec<InterfaceCounters>>,
    /// `RetransSegs` from the `Tcp:` lines of `net/snmp`.
    pub tcp_retransmits: Option<u64>,
    pub sockets: Option<SocketTables>,
}

/// One `net/dev` line: counters since the interface came up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InterfaceCounters {
    pub name: String,
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_drops: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_drops: u64,
}

pub fn read(r: &mut Reader, ctx: &Context, scope: Scope, gaps: &mut GapLog) -> NetworkSample {
    let dev = ctx.net_file("dev");
    let interfaces = gaps
        .value(COLLECTOR, r.proc(&dev))
        .map(|bytes| parse_dev(bytes, &format!("proc/{dev}"), gaps));

    let snmp = ctx.net_file("snmp");
    let tcp_retransmits = match gaps.value(COLLECTOR, r.proc(&snmp)) {
        Some(bytes) => parse_tcp_retransmits(bytes, &format!("proc/{snmp}"), gaps),
        None => None,
    };

    let sockets = (scope == Scope::Full).then(|| sockets::read(r, ctx, gaps));
    NetworkSample {
        interfaces,
        tcp_retransmits,
        sockets,
    }
}

/// Parses `net/dev`: two header lines, then `name: 16 counters` per interface.
pub fn parse_dev(bytes: &[u8], subject: &str, gaps: &mut GapLog) -> Vec<InterfaceCounters> {
    let mut interfaces = Vec::new();
    for (number, line) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = String::from_utf8_lossy(line);
        if line.trim().is_empty() || (line.contains('|') && !line.contains(':')) {
            continue;
        }
        match parse_dev_line(&line) {
            Ok(interface) => interfaces.push(interface),
            Err(detail) => {
                let line_subject = format!("{subject}:{}", number + 1);
                gaps.push(COLLECTOR, line_subject, GapReason::Invalid, detail);
            }
        }
    }
    interfaces
}

/// Parses one interface line. The name ends at the first colon: Linux interface names
/// cannot contain one.
pub fn parse_dev_line(line: &str) -> Result<InterfaceCounters, String> {
    let Some((name, counters)) = line.split_once(':') else {
        return Err("no colon after the interface name".to_string());
    };
    let name = name.trim();
    if name.is_empty() || name.contains(char::is_whitespace) {
        return Err(format!("invalid interface name {name:?}"));
    }
    let values = counters
        .split_whitespace()
        .map(|field| field.parse::<u64>())
        .collect::<Result<Vec<u64>, _>>()
        .map_err(|_| format!("counters of {name} are not all numbers"))?;
    let [rx_bytes, rx_packets, rx_errors, rx_drops, _, _, _, _, tx_bytes, tx_packets, tx_errors, tx_drops, ..] =
        values[..]
    else {
        return Err(format!("{name} has {} counters, expected 16", values.len()));
    };
    Ok(InterfaceCounters {
        name: name.to_string(),
        rx_bytes,
        rx_packets,
        rx_errors,
        rx_drops,
        tx_bytes,
        tx_packets,
        tx_errors,
        tx_drops,
    })
}

/// Finds `Tcp:RetransSegs` in `net/snmp` with [`find_snmp_value`]. procfs-core's `Snmp`
/// would parse all six sections into maps for this one value, and it rejects kernels that
/// lack fields it requires, such as `Icmp:InCsumErrors` or `Udp:IgnoredMulti`.
pub fn parse_tcp_retransmits(bytes: &[u8], subject: &str, gaps: &mut GapLog) -> Option<u64> {
    let value = find_snmp_value(bytes, "Tcp:", "RetransSegs");
    if value.is_none() {
        gaps.push(
            COLLECTOR,
            subject,
            GapReason::Invalid,
            "no numeric Tcp: RetransSegs value",
        );
    }
    value
}

/// Finds one value in the snmp layout, where each section is a line of names followed by a
/// line of values, both starting with the same prefix such as `Tcp:`.
pub fn find_snmp_value(bytes: &[u8], prefix: &str, name: &str) -> Option<u64> {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with(prefix)).collect();
    for pair in lines.windows(2) {
        let names = pair[0].split_whitespace();
        let Some(index) = names.skip(1).position(|n| n == name) else {
            continue;
        };
        let value = pair[1].split_whitespace().nth(index + 1)?;
        return value.parse().ok();
    }
    None
}

/// Derives the network model, looking up socket owners in the process sample.
pub fn derive(
    prev: &NetworkSample,
    cur: &NetworkSample,
    owners: &ProcessSample,
    secs: f64,
) -> Option<Network> {
    derive_with(prev, cur, secs, |inode| {
        owners
            .socket_owner(inode)
            .map(|(pid, name)| (pid, name.to_string()))
    })
}

/// [`derive`] with the owner lookup passed in: `owner(inode)` returns the pid and name of
/// the process holding the socket. `None` when nothing at all could be read.
pub fn derive_with(
    prev: &NetworkSample,
    cur: &NetworkSample,
    secs: f64,
    owner: impl Fn(u64) -> Option<(i32, String)>,
) -> Option<Network> {
    if cur.interfaces.is_none() && cur.tcp_retransmits.is_none() && cur.sockets.is_none() {
        return None;
    }
    let interfaces = match (&prev.interfaces, &cur.interfaces) {
        (Some(before), Some(after)) => derive_interfaces(before, after, secs),
        _ => Vec::new(),
    };
    let tcp_retransmits_in_interval = match (prev.tcp_retransmits, cur.tcp_retransmits) {
        (Some(before), Some(after)) => Some(after.saturating_sub(before)),
        _ => None,
    };
    let (tcp_states, listening) = match &cur.sockets {
        Some(tables) => (
            tables.tcp_states.clone(),
            sockets::listening(&tables.listening, owner),
        ),
        None => Default::default(),
    };

    Some(Network {
        interfaces,
        tcp_states,
        tcp_retransmits: cur.tcp_retransmits,
        tcp_retransmits_in_interval,
        listening,
    })
}

/// Rates for the interfaces present in both samples, matched by name, in the later sample's
/// order. Deltas are clamped at zero, so a counter reset (the interface went down and up)
/// shows no traffic rather than a huge rate.
fn derive_interfaces(
    prev: &[InterfaceCounters],
    cur: &[InterfaceCounters],
    secs: f64,
) -> Vec<Interface> {
    if secs <= 0.0 {
        return Vec::new();
    }
    let rate = |after: u64, before: u64| after.saturating_sub(before) as f64 / secs;
    cur.iter()
        .filter_map(|after| {
            let before = prev.iter().find(|p| p.name == after.name)?;
            Some(Interface {
                name: after.name.clone(),
                rx_bytes_per_sec: rate(after.rx_bytes, before.rx_bytes),
                tx_bytes_per_sec: rate(after.tx_bytes, before.tx_bytes),
                rx_packets_per_sec: rate(after.rx_packets, before.rx_packets),
                tx_packets_per_sec: rate(after.tx_packets, before.tx_packets),
                rx_bytes: after.rx_bytes,
                tx_bytes: after.tx_bytes,
                rx_errors: after.rx_errors,
                tx_errors: after.tx_errors,
                rx_drops: after.rx_drops,
                tx_drops: after.tx_drops,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const DEV: &str = "\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:    3193      29    0    0    0     0          0         0     3193      29    0    0    0     0       0          0
  eth0:73400320512 51234567 3 7 0 0 0 120 9876543210 4567890 1 2 0 0 0 0
";

    #[test]
    fn dev_line_without_space_after_colon() {
        let mut gaps = GapLog::default();
        let interfaces = parse_dev(DEV.as_bytes(), "proc/net/dev", &mut gaps);
        assert!(gaps.is_empty());
        assert_eq!(interfaces.len(), 2);

        assert_eq!(interfaces[0].name, "lo");
        assert_eq!(interfaces[0].rx_bytes, 3193);
        assert_eq!(interfaces[0].tx_packets, 29);

        let eth0 = &interfaces[1];
        assert_eq!(eth0.name, "eth0");
        assert_eq!(eth0.rx_bytes, 73_400_320_512);
        assert_eq!(eth0.rx_packets, 51_234_567);
        assert_eq!(eth0.rx_errors, 3);
        assert_eq!(eth0.rx_drops, 7);
        assert_eq!(eth0.tx_bytes, 9_876_543_210);
        assert_eq!(eth0.tx_packets, 4_567_890);
        assert_eq!(eth0.tx_errors, 1);
        assert_eq!(eth0.tx_drops, 2);
    }

    #[test]
    fn dev_bad_line_becomes_gap() {
        let text = format!(
            "{DEV}  bad0: 1 2 3\nnonsense\n  wlan0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n"
        );
        let mut gaps = GapLog::default();
        let interfaces = parse_dev(text.as_bytes(), "proc/net/dev", &mut gaps);
        let names: Vec<&str> = interfaces.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["lo", "eth0", "wlan0"]);
        let gaps = gaps.into_vec();
        assert_eq!(gaps.len(), 2);
        assert_eq!(gaps[0].subject, "proc/net/dev:5");
        assert_eq!(gaps[1].subject, "proc/net/dev:6");
    }

    const SNMP_OLD: &str = "\
Ip: Forwarding DefaultTTL InReceives
Ip: 1 64 1000
Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails EstabResets CurrEstab InSegs OutSegs RetransSegs InErrs OutRsts
Tcp: 1 200 120000 -1 10 20 0 1 5 5000 4000 321 0 7
Udp: InDatagrams NoPorts InErrors OutDatagrams
Udp: 1 2 3 4
";

    #[test]
    fn retransmits_found_in_layout_procfs_core_rejects() {
        let mut gaps = GapLog::default();
        let value = parse_tcp_retransmits(SNMP_OLD.as_bytes(), "proc/net/snmp", &mut gaps);
        assert_eq!(value, Some(321));
        assert!(gaps.is_empty());
    }

    #[test]
    fn retransmits_match_procfs_core_on_current_layout() {
        use procfs_core::FromRead;

        let path = format!(
            "{}/../fixtures/hosts/small/proc/1/net/snmp",
            env!("CARGO_MANIFEST_DIR")
        );
        let bytes = std::fs::read(path).unwrap();
        let snmp = procfs_core::net::Snmp::from_read(bytes.as_slice()).unwrap();
        let mut gaps = GapLog::default();
        let value = parse_tcp_retransmits(&bytes, "proc/1/net/snmp", &mut gaps);
        assert_eq!(snmp.tcp_retrans_segs, 4321);
        assert_eq!(value, Some(4321));
    }

    #[test]
    fn retransmits_missing_is_a_gap() {
        let mut gaps = GapLog::default();
        let value = parse_tcp_retransmits(b"Ip: Forwarding\nIp: 1\n", "proc/net/snmp", &mut gaps);
        assert_eq!(value, None);
        assert_eq!(gaps.into_vec()[0].reason, GapReason::Invalid);
    }

    fn counters(name: &str, rx_bytes: u64, tx_bytes: u64, packets: u64) -> InterfaceCounters {
        InterfaceCounters {
            name: name.to_string(),
            rx_bytes,
            rx_packets: packets,
            tx_bytes,
            tx_packets: packets,
            ..InterfaceCounters::default()
        }
    }

    #[test]
    fn derive_computes_rates_and_clamps_resets() {
        let prev = NetworkSample {
            interfaces: Some(vec![
                counters("eth0", 1000, 500, 10),
                counters("veth1", 900, 0, 5),
            ]),
            tcp_retransmits: Some(100),
            sockets: None,
        };
        let cur = NetworkSample {
            interfaces: Some(vec![
                counters("eth0", 3000, 1500, 30),
                counters("veth1", 100, 0, 1),
                counters("veth2", 100, 0, 1),
            ]),
            tcp_retransmits: Some(112),
            sockets: Some(SocketTables::default()),
        };
        let network = derive_with(&prev, &cur, 2.0, |_| None).unwrap();

        assert_eq!(network.interfaces.len(), 2);
        let eth0 = &network.interfaces[0];
        assert_eq!(eth0.rx_bytes_per_sec, 1000.0);
        assert_eq!(eth0.tx_bytes_per_sec, 500.0);
        assert_eq!(eth0.rx_packets_per_sec, 10.0);
        assert_eq!(eth0.rx_bytes, 3000);
        let veth1 = &network.interfaces[1];
        assert_eq!(veth1.rx_bytes_per_sec, 0.0);
        assert_eq!(network.tcp_retransmits, Some(112));
        assert_eq!(network.tcp_retransmits_in_interval, Some(12));
    }

    #[test]
    fn derive_without_any_reading_is_none() {
        let empty = NetworkSample::default();
        assert_eq!(derive_with(&empty, &empty, 1.0, |_| None), None);
    }

    #[test]
    fn derive_without_baseline_counters_has_no_interval_values() {
        let cur = NetworkSample {
            interfaces: Some(vec![counters("eth0", 1, 1, 1)]),
            tcp_retransmits: Some(5),
            sockets: None,
        };
        let network = derive_with(&NetworkSample::default(), &cur, 1.0, |_| None).unwrap();
        assert!(network.interfaces.is_empty());
        assert_eq!(network.tcp_retransmits, Some(5));
        assert_eq!(network.tcp_retransmits_in_interval, None);
    }

    fn fixture(host: &str) -> (Reader, Context) {
        crate::linux::context::fixture::reader_and_context(host)
    }

    fn fixture_owner(inode: u64) -> Option<(i32, String)> {
        match inode {
            21001 => Some((812, "sshd".to_string())),
            21004 => Some((950, "nginx".to_string())),
            _ => None,
        }
    }

    #[test]
    fn host_view_reads_pid1_network_files() {
        let (mut reader, ctx) = fixture("small");
        let mut gaps = GapLog::default();
        let sample = read(&mut reader, &ctx, Scope::Full, &mut gaps);

        assert!(gaps.is_empty(), "{gaps:?}");
        assert_eq!(ctx.net_namespace, "pid1");
        let names: Vec<&str> = sample
            .interfaces
            .iter()
            .flatten()
            .map(|i| i.name.as_str())
            .collect();
        assert_eq!(names, ["lo", "eth0", "docker0"]);
        assert_eq!(sample.tcp_retransmits, Some(4321));
        let raw = reader.take_raw();
        assert!(raw.entries.contains_key("proc/1/net/tcp6"));
        assert!(!raw.entries.contains_key("proc/net/dev"));
    }

    #[test]
    fn host_view_counts_states_and_lists_listeners() {
        let (mut reader, ctx) = fixture("small");
        let mut gaps = GapLog::default();
        let sample = read(&mut reader, &ctx, Scope::Full, &mut gaps);
        let network = derive_with(&sample, &sample, 1.0, fixture_owner).unwrap();

        let states: Vec<(&str, u64)> = network
            .tcp_states
            .iter()
            .map(|(state, count)| (state.as_str(), *count))
            .collect();
        assert_eq!(
            states,
            [
                ("CLOSE_WAIT", 1),
                ("ESTABLISHED", 3),
                ("LISTEN", 6),
                ("TIME_WAIT", 1)
            ]
        );
        assert_eq!(network.tcp_retransmits_in_interval, Some(0));

        let listening: Vec<String> = network
            .listening
            .iter()
            .map(|s| format!("{} {} {} {}", s.protocol, s.address, s.port, s.inode))
            .collect();
        assert_eq!(
            listening,
            [
                "tcp 0.0.0.0 22 21001",
                "tcp 0.0.0.0 80 21002",
                "tcp 127.0.0.1 8080 21003",
                "tcp6 :: 80 21004",
                "tcp6 ::1 5432 21005",
                "tcp6 ::ffff:127.0.0.1 9200 21006",
                "udp 127.0.0.53 53 21020",
                "udp6 ::1 323 21022",
            ]
        );
        assert_eq!(network.listening[0].pid, Some(812));
        assert_eq!(network.listening[0].process.as_deref(), Some("sshd"));
        assert_eq!(network.listening[0].uid, Some(0));
        assert_eq!(network.listening[3].process.as_deref(), Some("nginx"));
        assert_eq!(network.listening[1].pid, None);
        assert_eq!(network.listening[6].uid, Some(101));
    }

    #[test]
    fn host_view_interface_values() {
        let (mut reader, ctx) = fixture("small");
        let mut gaps = GapLog::default();
        let sample = read(&mut reader, &ctx, Scope::Counters, &mut gaps);
        let network = derive_with(&sample, &sample, 1.0, fixture_owner).unwrap();

        let eth0 = &network.interfaces[1];
        assert_eq!(eth0.name, "eth0");
        assert_eq!(eth0.rx_bytes, 73_400_320_512);
        assert_eq!(eth0.tx_bytes, 9_876_543_210);
        assert_eq!(eth0.rx_errors, 3);
        assert_eq!(eth0.rx_drops, 7);
        assert_eq!(eth0.tx_errors, 1);
        assert_eq!(eth0.tx_drops, 2);
        assert_eq!(eth0.rx_bytes_per_sec, 0.0);
        assert!(network.listening.is_empty());
        assert!(network.tcp_states.is_empty());
    }

    #[test]
    fn counters_scope_skips_socket_tables() {
        let (mut reader, ctx) = fixture("small");
        let mut gaps = GapLog::default();
        let sample = read(&mut reader, &ctx, Scope::Counters, &mut gaps);

        assert!(sample.sockets.is_none());
        let raw = reader.take_raw();
        let keys: Vec<&str> = raw.entries.keys().map(String::as_str).collect();
        assert_eq!(keys, ["proc/1/net/dev", "proc/1/net/snmp"]);
    }

    #[test]
    fn own_namespace_without_ipv6_records_gaps() {
        let (mut reader, ctx) = fixture("odd-mounts");
        let mut gaps = GapLog::default();
        let sample = read(&mut reader, &ctx, Scope::Full, &mut gaps);

        assert_eq!(ctx.net_namespace, "self");
        let interfaces = sample.interfaces.unwrap();
        let names: Vec<&str> = interfaces.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["lo", "eth0", "bond0"]);
        assert_eq!(interfaces[2].rx_bytes, u64::MAX);
        assert_eq!(sample.tcp_retransmits, None);
        assert_eq!(sample.sockets.unwrap(), SocketTables::default());

        let gaps: Vec<(String, GapReason)> = gaps
            .into_vec()
            .into_iter()
            .map(|g| (g.subject, g.reason))
            .collect();
        assert_eq!(
            gaps,
            [
                ("proc/net/dev:6".to_string(), GapReason::Invalid),
                ("proc/net/snmp".to_string(), GapReason::Vanished),
                ("proc/net/tcp6".to_string(), GapReason::Unsupported),
                ("proc/net/udp6".to_string(), GapReason::Unsupported),
            ]
        );
    }

    #[test]
    fn live_network_reads_loopback() {
        let options = crate::CaptureOptions::default();
        let ctx = Context::new(&options).unwrap();
        let mut reader = Reader::new(options.roots);
        let mut gaps = GapLog::default();
        let sample = read(&mut reader, &ctx, Scope::Full, &mut gaps);

        let interfaces = sample.interfaces.unwrap();
        assert!(interfaces.iter().any(|i| i.name == "lo"));
        assert!(sample.sockets.is_some());
    }

    proptest! {
        #[test]
        fn dev_and_snmp_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut gaps = GapLog::default();
            let _ = parse_dev(&bytes, "proc/net/dev", &mut gaps);
            let _ = parse_tcp_retransmits(&bytes, "proc/net/snmp", &mut gaps);
        }

        #[test]
        fn dev_line_never_panics(line in "[a-z0-9: ]{0,160}") {
            let _ = parse_dev_line(&line);
        }
    }
}
