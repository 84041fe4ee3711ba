//! The TCP and UDP socket tables (`net/tcp`, `net/tcp6`, `net/udp`, `net/udp6`): connection
//! counts by TCP state, and the listening sockets as `netstat -tulnp` lists them.
//!
//! procfs-core decodes the addresses: IPv4 as one 32-bit word and IPv6 as four, each printed
//! in the kernel's byte order, so on a little-endian host `0100007F` is 127.0.0.1 and
//! `00000000000000000000000001000000` is `::1`. It rejects a whole table for one bad line, so
//! a rejected table is parsed again line by line and only the bad lines are lost, each with a
//! gap.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::net::SocketAddr;

use procfs_core::net::{TcpNetEntries, TcpNetEntry, TcpState, UdpNetEntries, UdpState};
use procfs_core::{ExplicitSystemInfo, FromReadSI, ProcResult};

use super::super::Context;
use crate::gaps::GapLog;
use crate::model::{GapReason, ListeningSocket};
use crate::raw::Reader;

const COLLECTOR: &str = "sockets";

/// The socket tables of one sample, reduced to what the snapshot reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SocketTables {
    /// TCP sockets by state name, IPv4 and IPv6 together.
    pub tcp_states: BTreeMap<String, u64>,
    /// Listening TCP sockets and bound, unconnected UDP sockets, in table order.
    pub listening: Vec<BoundSocket>,
}

/// A listening socket before its owner is looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundSocket {
    /// `tcp`, `tcp6`, `udp` or `udp6`, named after the table it came from.
    pub protocol: &'static str,
    pub local: SocketAddr,
    pub uid: u32,
    pub inode: u64,
}

/// Reads the four tables. A missing IPv6 table means the kernel runs without IPv6 and is
/// recorded as unsupported.
pub fn read(r: &mut Reader, ctx: &Context, gaps: &mut GapLog) -> SocketTables {
    let system = system_info(ctx);
    let mut tables = SocketTables::default();

    for protocol in ["tcp", "tcp6"] {
        if let Some(bytes) = read_table(r, ctx, protocol, gaps) {
            let subject = format!("proc/{}", ctx.net_file(protocol));
            let entries = parse_tcp(bytes, &subject, &system, gaps);
            add_tcp(&mut tables, protocol, &entries);
        }
    }
    for protocol in ["udp", "udp6"] {
        if let Some(bytes) = read_table(r, ctx, protocol, gaps) {
            let subject = format!("proc/{}", ctx.net_file(protocol));
            let entries = parse_udp(bytes, &subject, &system, gaps);
            tables.listening.extend(entries);
        }
    }
    tables
}

/// Builds the system facts procfs-core requires. Only the byte order matters for these tables.
fn system_info(ctx: &Context) -> ExplicitSystemInfo {
    ExplicitSystemInfo {
        boot_time_secs: 0,
        ticks_per_second: ctx.ticks_per_sec,
        page_size: ctx.page_size,
        is_little_endian: cfg!(target_endian = "little"),
    }
}

fn read_table<'r>(
    r: &'r mut Reader,
    ctx: &Context,
    protocol: &str,
    gaps: &mut GapLog,
) -> Option<&'r [u8]> {
    match r.proc(&ctx.net_file(protocol)) {
        Ok(bytes) => Some(bytes),
        Err(mut error) => {
            if protocol.ends_with('6') && error.reason == GapReason::Vanished {
                error.reason = GapReason::Unsupported;
                error.detail = format!("{}; the kernel has no IPv6", error.detail);
            }
            gaps.record(COLLECTOR, &error);
            None
        }
    }
}

/// Parses a TCP table, keeping every good line.
pub fn parse_tcp(
    bytes: &[u8],
    subject: &str,
    system: &ExplicitSystemInfo,
    gaps: &mut GapLog,
) -> Vec<TcpNetEntry> {
    parse_table(bytes, subject, gaps, |table| {
        TcpNetEntries::from_read(Cursor::new(table), system).map(|entries| entries.0)
    })
}

/// Parses a UDP table into its bound, unconnected sockets: state 07 (`TCP_CLOSE`, which UDP
/// uses for a socket without a peer) with a remote address of all zeros.
pub fn parse_udp(
    bytes: &[u8],
    subject: &str,
    system: &ExplicitSystemInfo,
    gaps: &mut GapLog,
) -> Vec<BoundSocket> {
    let protocol = if subject.ends_with('6') {
        "udp6"
    } else {
        "udp"
    };
    let entries = parse_table(bytes, subject, gaps, |table| {
        UdpNetEntries::from_read(Cursor::new(table), system).map(|entries| entries.0)
    });
    entries
        .into_iter()
        .filter(|entry| entry.state == UdpState::Close && is_unset(&entry.remote_address))
        .map(|entry| BoundSocket {
            protocol,
            local: entry.local_address,
            uid: entry.uid,
            inode: entry.inode,
        })
        .collect()
}

/// Parses a table with procfs-core. If it rejects the table, each line is parsed on its own
/// behind an empty header line, and each line it rejects becomes a gap.
fn parse_table<E>(
    bytes: &[u8],
    subject: &str,
    gaps: &mut GapLog,
    parse: impl Fn(&[u8]) -> ProcResult<Vec<E>>,
) -> Vec<E> {
    if let Ok(entries) = parse(bytes) {
        return entries;
    }
    let mut entries = Vec::new();
    for (number, line) in bytes.split(|&b| b == b'\n').enumerate().skip(1) {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let mut table = Vec::with_capacity(line.len() + 1);
        table.push(b'\n');
        table.extend_from_slice(line);
        match parse(&table) {
            Ok(parsed) => entries.extend(parsed),
            Err(error) => {
                let line_subject = format!("{subject}:{}", number + 1);
                gaps.push(
                    COLLECTOR,
                    line_subject,
                    GapReason::Invalid,
                    error.to_string(),
                );
            }
        }
    }
    entries
}

fn add_tcp(tables: &mut SocketTables, protocol: &'static str, entries: &[TcpNetEntry]) {
    for entry in entries {
        *tables
            .tcp_states
            .entry(tcp_state_name(&entry.state).to_string())
            .or_default() += 1;
        if entry.state == TcpState::Listen {
            tables.listening.push(BoundSocket {
                protocol,
                local: entry.local_address,
                uid: entry.uid,
                inode: entry.inode,
            });
        }
    }
}

fn is_unset(address: &SocketAddr) -> bool {
    address.ip().is_unspecified() && address.port() == 0
}

/// Returns the state name netstat prints.
pub fn tcp_state_name(state: &TcpState) -> &'static str {
    match state {
        TcpState::Established => "ESTABLISHED",
        TcpState::SynSent => "SYN_SENT",
        TcpState::SynRecv => "SYN_RECV",
        TcpState::FinWait1 => "FIN_WAIT1",
        TcpState::FinWait2 => "FIN_WAIT2",
        TcpState::TimeWait => "TIME_WAIT",
        TcpState::Close => "CLOSE",
        TcpState::CloseWait => "CLOSE_WAIT",
        TcpState::LastAck => "LAST_ACK",
        TcpState::Listen => "LISTEN",
        TcpState::Closing => "CLOSING",
        TcpState::NewSynRecv => "NEW_SYN_RECV",
    }
}

/// Turns the bound sockets into the model with their owners, sorted by protocol, port,
/// address and inode so that two captures of the same host list them in the same order.
pub fn listening(
    sockets: &[BoundSocket],
    owner: impl Fn(u64) -> Option<(i32, String)>,
) -> Vec<ListeningSocket> {
    let mut listening: Vec<ListeningSocket> = sockets
        .iter()
        .map(|socket| {
            let owner = if socket.inode == 0 {
                None
            } else {
                owner(socket.inode)
            };
            let (pid, process) = owner.unzip();
            ListeningSocket {
                protocol: socket.protocol.to_string(),
                address: socket.local.ip().to_string(),
                port: socket.local.port(),
                inode: socket.inode,
                uid: Some(socket.uid),
                pid,
                process,
            }
        })
        .collect();
    listening.sort_by(|a, b| {
        (&a.protocol, a.port, &a.address, a.inode).cmp(&(&b.protocol, b.port, &b.address, b.inode))
    });
    listening
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TCP_HEADER: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when \
                              retrnsmt   uid  timeout inode\n";
    const TCP6_HEADER: &str = "  sl  local_address                         remote_address        \
                               st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";

    fn system() -> ExplicitSystemInfo {
        ExplicitSystemInfo {
            boot_time_secs: 0,
            ticks_per_second: 100,
            page_size: 4096,
            is_little_endian: true,
        }
    }

    fn tcp_line(local: &str, remote: &str, state: &str, inode: u64) -> String {
        format!(
            "   0: {local} {remote} {state} 00000000:00000000 00:00000000 00000000  1000        0 \
             {inode} 1 0000000000000000 100 0 0 10 0\n"
        )
    }

    fn parse_tcp_text(text: &str) -> (Vec<TcpNetEntry>, Vec<crate::model::Gap>) {
        let mut gaps = GapLog::default();
        let entries = parse_tcp(text.as_bytes(), "proc/net/tcp", &system(), &mut gaps);
        (entries, gaps.into_vec())
    }

    #[test]
    fn ipv4_address_is_little_endian_word() {
        let text = format!(
            "{TCP_HEADER}{}",
            tcp_line("0100007F:1F90", "00000000:0000", "0A", 7)
        );
        let (entries, gaps) = parse_tcp_text(&text);
        assert!(gaps.is_empty());
        assert_eq!(entries[0].local_address.to_string(), "127.0.0.1:8080");
        assert_eq!(entries[0].state, TcpState::Listen);
        assert_eq!(entries[0].inode, 7);
        assert_eq!(entries[0].uid, 1000);
    }

    #[test]
    fn ipv6_loopback_is_host_order_words() {
        let line = tcp_line(
            "00000000000000000000000001000000:1F90",
            "00000000000000000000000000000000:0000",
            "0A",
            8,
        );
        let (entries, _) = parse_tcp_text(&format!("{TCP6_HEADER}{line}"));
        assert_eq!(entries[0].local_address.to_string(), "[::1]:8080");
    }

    #[test]
    fn ipv4_mapped_ipv6_address_decodes() {
        let line = tcp_line(
            "0000000000000000FFFF00000100007F:0016",
            "0000000000000000FFFF00000B00000A:D431",
            "01",
            9,
        );
        let (entries, _) = parse_tcp_text(&format!("{TCP6_HEADER}{line}"));
        assert_eq!(
            entries[0].local_address.ip().to_string(),
            "::ffff:127.0.0.1"
        );
        assert_eq!(
            entries[0].remote_address.to_string(),
            "[::ffff:10.0.0.11]:54321"
        );
    }

    #[test]
    fn ipv6_global_address_decodes() {
        // 2001:db8::1 printed as four little-endian words.
        let line = tcp_line(
            "B80D0120000000000000000001000000:01BB",
            "00000000000000000000000000000000:0000",
            "0A",
            10,
        );
        let (entries, _) = parse_tcp_text(&format!("{TCP6_HEADER}{line}"));
        assert_eq!(entries[0].local_address.to_string(), "[2001:db8::1]:443");
    }

    #[test]
    fn bad_tcp_line_becomes_gap() {
        let text = format!(
            "{TCP_HEADER}{}   1: garbage\n{}",
            tcp_line("0100007F:1F90", "00000000:0000", "0A", 7),
            tcp_line("0100007F:0016", "0100007F:D000", "01", 11),
        );
        let (entries, gaps) = parse_tcp_text(&text);
        let inodes: Vec<u64> = entries.iter().map(|e| e.inode).collect();
        assert_eq!(inodes, [7, 11]);
        assert_eq!(gaps.len(), 1);
        assert_eq!(gaps[0].subject, "proc/net/tcp:3");
        assert_eq!(gaps[0].reason, GapReason::Invalid);
    }

    #[test]
    fn udp_listening_needs_close_state_and_no_peer() {
        let text = format!(
            "{TCP_HEADER}{}{}{}",
            tcp_line("00000000:0035", "00000000:0000", "07", 20),
            tcp_line("0100007F:D2F0", "0101A8C0:0035", "01", 21),
            tcp_line("0100007F:D2F1", "0101A8C0:0035", "07", 22),
        );
        let mut gaps = GapLog::default();
        let sockets = parse_udp(text.as_bytes(), "proc/net/udp", &system(), &mut gaps);
        assert_eq!(sockets.len(), 1);
        assert_eq!(sockets[0].protocol, "udp");
        assert_eq!(sockets[0].local.to_string(), "0.0.0.0:53");
        assert_eq!(sockets[0].inode, 20);
    }

    #[test]
    fn tcp_states_count_every_socket() {
        let entries = parse_tcp_text(&format!(
            "{TCP_HEADER}{}{}{}",
            tcp_line("0100007F:1F90", "00000000:0000", "0A", 7),
            tcp_line("0100007F:1F90", "0100007F:D000", "01", 8),
            tcp_line("0100007F:1F90", "0100007F:D001", "06", 0),
        ))
        .0;
        let mut tables = SocketTables::default();
        add_tcp(&mut tables, "tcp", &entries);

        assert_eq!(tables.tcp_states.get("LISTEN"), Some(&1));
        assert_eq!(tables.tcp_states.get("ESTABLISHED"), Some(&1));
        assert_eq!(tables.tcp_states.get("TIME_WAIT"), Some(&1));
        assert_eq!(tables.listening.len(), 1);
    }

    #[test]
    fn listening_sorts_and_adds_owners() {
        let socket = |protocol, local: &str, inode| BoundSocket {
            protocol,
            local: local.parse().unwrap(),
            uid: 0,
            inode,
        };
        let sockets = [
            socket("udp", "0.0.0.0:53", 30),
            socket("tcp6", "[::]:22", 31),
            socket("tcp", "127.0.0.1:8080", 32),
            socket("tcp", "0.0.0.0:22", 33),
            socket("tcp", "0.0.0.0:22", 0),
        ];
        let owners = |inode| (inode == 33).then(|| (412, "sshd".to_string()));
        let listening = listening(&sockets, owners);

        let order: Vec<(&str, u16, u64)> = listening
            .iter()
            .map(|s| (s.protocol.as_str(), s.port, s.inode))
            .collect();
        assert_eq!(
            order,
            [
                ("tcp", 22, 0),
                ("tcp", 22, 33),
                ("tcp", 8080, 32),
                ("tcp6", 22, 31),
                ("udp", 53, 30)
            ]
        );
        assert_eq!(listening[1].pid, Some(412));
        assert_eq!(listening[1].process.as_deref(), Some("sshd"));
        assert_eq!(listening[0].pid, None);
        assert_eq!(listening[3].address, "::");
    }

    proptest! {
        #[test]
        fn socket_tables_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut gaps = GapLog::default();
            let _ = parse_tcp(&bytes, "proc/net/tcp", &system(), &mut gaps);
            let _ = parse_udp(&bytes, "proc/net/udp6", &system(), &mut gaps);
        }

        #[test]
        fn socket_lines_never_panic(
            local in "[0-9A-F]{0,33}:[0-9A-F]{0,5}",
            state in "[0-9A-F]{0,3}",
        ) {
            let text = format!("{TCP_HEADER}{}", tcp_line(&local, "00000000:0000", &state, 1));
            let _ = parse_tcp_text(&text);
        }
    }
}
