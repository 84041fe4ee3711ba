//! `network.txt`: interface rates and counters, TCP states and retransmits, and the
//! listening sockets as `netstat -tulnp` shows them.

use std::fmt::Write as _;

use aegisir_platform::{ListeningSocket, Network, Snapshot};

use super::text::{count_or_missing, rate, Align, Table, MISSING};

pub fn render(snapshot: &Snapshot) -> String {
    let Some(network) = &snapshot.network else {
        return "Network data could not be read (see gaps.txt).\n".to_string();
    };
    let namespace = match snapshot.sources.net_namespace.as_str() {
        "pid1" => "the host's network namespace (through pid 1)",
        "self" => "the reader's own network namespace",
        _ => "an unrecorded network namespace",
    };

    let mut output = format!("Read from {namespace}.\n\n");
    output.push_str(&interfaces(network));
    output.push('\n');
    output.push_str(&tcp(network));
    output.push('\n');
    output.push_str(&listening(network));
    output
}

fn interfaces(network: &Network) -> String {
    if network.interfaces.is_empty() {
        return "No network interfaces were read.\n".to_string();
    }
    let mut table = Table::new(&[
        ("Interface", Align::Left),
        ("rx/s", Align::Right),
        ("tx/s", Align::Right),
        ("rx pkt/s", Align::Right),
        ("tx pkt/s", Align::Right),
        ("rx errs", Align::Right),
        ("tx errs", Align::Right),
        ("rx drop", Align::Right),
        ("tx drop", Align::Right),
    ]);
    for interface in &network.interfaces {
        table.row(vec![
            interface.name.clone(),
            rate(interface.rx_bytes_per_sec),
            rate(interface.tx_bytes_per_sec),
            format!("{:.1}", interface.rx_packets_per_sec),
            format!("{:.1}", interface.tx_packets_per_sec),
            interface.rx_errors.to_string(),
            interface.tx_errors.to_string(),
            interface.rx_drops.to_string(),
            interface.tx_drops.to_string(),
        ]);
    }
    let mut output = table.render();
    output.push_str("(errors and drops are counted since the interface came up)\n");
    output
}

fn tcp(network: &Network) -> String {
    let mut output = String::from("TCP connections by state (IPv4 and IPv6):\n");
    if network.tcp_states.is_empty() {
        output.push_str("  none\n");
    }
    let width = network
        .tcp_states
        .keys()
        .map(String::len)
        .max()
        .unwrap_or(0);
    for (state, count) in &network.tcp_states {
        let state = super::text::terminal_safe(state);
        let _ = writeln!(output, "  {state:<width$}  {count:>7}");
    }
    let _ = writeln!(
        output,
        "TCP retransmits: {} since boot, {} in the interval",
        count_or_missing(network.tcp_retransmits),
        count_or_missing(network.tcp_retransmits_in_interval)
    );
    output
}

fn listening(network: &Network) -> String {
    let mut sockets: Vec<&ListeningSocket> = network.listening.iter().collect();
    sockets.sort_by(|a, b| {
        (protocol_rank(&a.protocol), a.port, &a.address, a.inode).cmp(&(
            protocol_rank(&b.protocol),
            b.port,
            &b.address,
            b.inode,
        ))
    });

    let mut output = String::from("Listening sockets:\n");
    let mut table = Table::new(&[
        ("Proto", Align::Left),
        ("Local Address", Align::Left),
        ("State", Align::Left),
        ("PID/Program name", Align::Left),
    ]);
    for socket in sockets {
        table.row(socket_row(socket));
    }
    output.push_str(&table.render());
    output
}

fn protocol_rank(protocol: &str) -> (u8, &str) {
    let rank = match protocol {
        "tcp" => 0,
        "tcp6" => 1,
        "udp" => 2,
        "udp6" => 3,
        _ => 4,
    };
    (rank, protocol)
}

fn socket_row(socket: &ListeningSocket) -> Vec<String> {
    let state = if socket.protocol.starts_with("tcp") {
        "LISTEN"
    } else {
        ""
    };
    let owner = match (socket.pid, &socket.process) {
        (Some(pid), Some(name)) => format!("{pid}/{name}"),
        (Some(pid), None) => format!("{pid}/?"),
        (None, _) => MISSING.to_string(),
    };
    vec![
        socket.protocol.clone(),
        socket_address(&socket.address, socket.port),
        state.to_string(),
        owner,
    ]
}

/// `0.0.0.0:22`, or `[::1]:8080` for an IPv6 address.
pub fn socket_address(address: &str, port: u16) -> String {
    if address.contains(':') {
        format!("[{address}]:{port}")
    } else {
        format!("{address}:{port}")
    }
}
