//! Pure helpers of the macOS collector: they work on values already read from the kernel, use
//! no Apple-only types, and so compile and are unit-tested on every host.
//!
//! The bindings turn each kernel call into one of the plain `*Record` types below (also the
//! JSON recorded as raw evidence); the functions here turn failures into gap reasons and
//! records into the snapshot model.

// On Linux only the tests call these helpers.
#![cfg_attr(not(target_os = "macos"), allow(dead_code))]

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

use crate::model::{Cpu, CpuUsage, Filesystem, GapReason, Interface, Memory, ProcessKind};

/// `errno` values from the macOS SDK's `sys/errno.h`; several differ from Linux, so the
/// helpers use these rather than the host's `libc` constants.
pub mod errno {
    pub const EPERM: i32 = 1;
    pub const ENOENT: i32 = 2;
    pub const ESRCH: i32 = 3;
    pub const EACCES: i32 = 13;
    pub const EINVAL: i32 = 22;
    pub const ENOTSUP: i32 = 45;
    pub const ENOSYS: i32 = 78;
}

/// A kernel call that failed: the gap reason and a message naming the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallError {
    pub reason: GapReason,
    pub detail: String,
}

impl CallError {
    pub fn new(reason: GapReason, detail: impl Into<String>) -> Self {
        CallError {
            reason,
            detail: detail.into(),
        }
    }

    /// A failure reported through `errno`.
    pub fn from_errno(call: &str, errno: i32) -> Self {
        CallError::new(gap_reason(errno), format!("{call} failed: errno {errno}"))
    }
}

/// Maps a macOS `errno` to the reason recorded in a gap.
pub fn gap_reason(errno: i32) -> GapReason {
    match errno {
        errno::ESRCH | errno::ENOENT => GapReason::Vanished,
        errno::EPERM | errno::EACCES => GapReason::PermissionDenied,
        errno::ENOTSUP | errno::ENOSYS => GapReason::Unsupported,
        _ => GapReason::Error,
    }
}

/// Checks the return value of `proc_pidinfo` or `proc_pidfdinfo`, which is the number of
/// bytes written: zero or less is a failure with `errno`, fewer bytes than the struct holds
/// is a short read and never data.
pub fn check_info_size(
    call: &str,
    returned: i32,
    errno: i32,
    expected: usize,
) -> Result<(), CallError> {
    if returned <= 0 {
        return Err(CallError::from_errno(call, errno));
    }
    let returned = returned as usize;
    if returned < expected {
        let detail = format!("{call} returned {returned} of {expected} bytes");
        return Err(CallError::new(GapReason::Invalid, detail));
    }
    Ok(())
}

/// The reason a failed `KERN_PROCARGS2` read is recorded with. The kernel answers `EINVAL`
/// for another user's process, and some releases fail with `errno` 0; both mean denied.
pub fn procargs_failure(errno: i32) -> CallError {
    let reason = match errno {
        0 | errno::EINVAL => GapReason::PermissionDenied,
        other => gap_reason(other),
    };
    let detail = format!("sysctl KERN_PROCARGS2 failed: errno {errno}");
    CallError::new(reason, detail)
}

/// The parts of a `KERN_PROCARGS2` buffer that a snapshot keeps. The environment is counted,
/// never kept: it holds secrets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcArgs {
    pub exec_path: String,
    pub args: Vec<String>,
    pub env_count: usize,
}

/// Parses a `KERN_PROCARGS2` buffer: `argc` as a native 32-bit integer, the executable path,
/// NUL padding, `argc` NUL-terminated arguments, then the environment strings up to an empty
/// string or the end of the buffer.
pub fn parse_procargs2(buffer: &[u8]) -> Result<ProcArgs, CallError> {
    let invalid = |what: &str| CallError::new(GapReason::Invalid, format!("KERN_PROCARGS2 {what}"));
    let Some((argc_bytes, rest)) = buffer.split_first_chunk::<4>() else {
        return Err(invalid("buffer is shorter than argc"));
    };
    let argc = i32::from_ne_bytes(*argc_bytes);
    let argc = usize::try_from(argc).map_err(|_| invalid("argc is negative"))?;

    let (exec_path, mut rest) = split_nul(rest);
    let exec_path = String::from_utf8_lossy(exec_path).into_owned();
    while let Some((0, tail)) = rest.split_first() {
        rest = tail;
    }

    let mut args = Vec::with_capacity(argc.min(4096));
    for _ in 0..argc {
        if rest.is_empty() {
            return Err(invalid("buffer ends before the last argument"));
        }
        let (arg, tail) = split_nul(rest);
        args.push(String::from_utf8_lossy(arg).into_owned());
        rest = tail;
    }

    let env_count = count_env_strings(rest);
    Ok(ProcArgs {
        exec_path,
        args,
        env_count,
    })
}

/// Splits at the first NUL, dropping it; without a NUL the whole input is the first part.
fn split_nul(bytes: &[u8]) -> (&[u8], &[u8]) {
    match bytes.iter().position(|&b| b == 0) {
        Some(end) => (&bytes[..end], &bytes[end + 1..]),
        None => (bytes, &[]),
    }
}

fn count_env_strings(mut rest: &[u8]) -> usize {
    let mut count = 0;
    while !rest.is_empty() {
        let (entry, tail) = split_nul(rest);
        if entry.is_empty() {
            break;
        }
        count += 1;
        rest = tail;
    }
    count
}

/// `mach_timebase_info`: nanoseconds are Mach absolute time units × `numer` / `denom`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timebase {
    pub numer: u32,
    pub denom: u32,
}

impl Timebase {
    /// Intel Macs count in nanoseconds already.
    pub const IDENTITY: Timebase = Timebase { numer: 1, denom: 1 };

    /// Converts Mach absolute time units to nanoseconds, without overflow; a zero `denom`
    /// (a failed call) is treated as the identity.
    pub fn to_nanos(self, units: u64) -> u64 {
        if self.denom == 0 {
            return units;
        }
        let nanos = u128::from(units) * u128::from(self.numer) / u128::from(self.denom);
        u64::try_from(nanos).unwrap_or(u64::MAX)
    }
}

/// CPU use over the interval as top shows it (100 % is one full CPU), from the process's
/// user plus system time in nanoseconds at both samples. Time that went backwards counts as
/// zero.
pub fn process_cpu_pct(prev_nanos: u64, cur_nanos: u64, interval_secs: f64) -> Option<f64> {
    if interval_secs <= 0.0 {
        return None;
    }
    let used_secs = cur_nanos.saturating_sub(prev_nanos) as f64 / 1e9;
    Some(used_secs / interval_secs * 100.0)
}

/// One CPU's tick counters from `host_processor_info(PROCESSOR_CPU_LOAD_INFO)`, indexed by
/// `CPU_STATE_USER`, `CPU_STATE_SYSTEM`, `CPU_STATE_IDLE` and `CPU_STATE_NICE`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuTicks {
    pub cpu: u32,
    pub user: u64,
    pub system: u64,
    pub idle: u64,
    pub nice: u64,
}

/// CPU utilisation over the interval. CPUs are matched by number; each per-state delta is
/// clamped at zero, because the 32-bit tick counters wrap. macOS counts no iowait, irq,
/// softirq or steal time, so those stay zero.
pub fn cpu_usage(prev: &[CpuTicks], cur: &[CpuTicks]) -> Option<Cpu> {
    let mut total = CpuTicks::default();
    let mut per_cpu = Vec::new();
    for now in cur {
        let Some(before) = prev.iter().find(|p| p.cpu == now.cpu) else {
            continue;
        };
        let delta = tick_delta(before, now);
        total.user += delta.user;
        total.system += delta.system;
        total.idle += delta.idle;
        total.nice += delta.nice;
        per_cpu.push(usage_from_delta(Some(now.cpu), &delta));
    }
    if per_cpu.is_empty() {
        return None;
    }
    per_cpu.sort_by_key(|usage| usage.cpu);
    Some(Cpu {
        total: usage_from_delta(None, &total),
        per_cpu,
    })
}

fn tick_delta(before: &CpuTicks, now: &CpuTicks) -> CpuTicks {
    CpuTicks {
        cpu: now.cpu,
        user: now.user.saturating_sub(before.user),
        system: now.system.saturating_sub(before.system),
        idle: now.idle.saturating_sub(before.idle),
        nice: now.nice.saturating_sub(before.nice),
    }
}

fn usage_from_delta(cpu: Option<u32>, delta: &CpuTicks) -> CpuUsage {
    let all = delta.user + delta.system + delta.idle + delta.nice;
    let share = |ticks: u64| {
        if all == 0 {
            0.0
        } else {
            ticks as f64 * 100.0 / all as f64
        }
    };
    CpuUsage {
        cpu,
        user_pct: share(delta.user),
        nice_pct: share(delta.nice),
        system_pct: share(delta.system),
        idle_pct: share(delta.idle),
        busy_pct: share(delta.user + delta.nice + delta.system),
        ..CpuUsage::default()
    }
}

/// The `vm_statistics64` counters a snapshot uses, from `host_statistics64(HOST_VM_INFO64)`.
/// Counts are in pages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmStats {
    pub free_count: u64,
    pub active_count: u64,
    pub inactive_count: u64,
    pub wire_count: u64,
    pub speculative_count: u64,
    pub purgeable_count: u64,
    pub external_page_count: u64,
    pub internal_page_count: u64,
    pub compressor_page_count: u64,
    pub pageins: u64,
    pub pageouts: u64,
    pub faults: u64,
    pub cow_faults: u64,
    pub compressions: u64,
    pub decompressions: u64,
    pub swapins: u64,
    pub swapouts: u64,
}

/// `vm.swapusage` (`struct xsw_usage`), in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwapUsage {
    pub total_bytes: u64,
    pub available_bytes: u64,
    pub used_bytes: u64,
}

/// Memory as the model shows it, from the VM counters of both samples.
///
/// `free_bytes` excludes speculative pages, as `vm_stat` prints them. `available_bytes` is an
/// estimate: free (speculative included) plus inactive plus purgeable pages, which the kernel
/// can reclaim without paging out. `cached_bytes` is the file-backed (external) pages. Major
/// faults are `pageins`. macOS has no buffers, dirty or OOM-kill counters; those stay `None`.
pub fn memory(
    prev: Option<&VmStats>,
    cur: &VmStats,
    page_size: u64,
    total_bytes: Option<u64>,
    swap: Option<&SwapUsage>,
) -> Memory {
    let bytes = |pages: u64| pages.saturating_mul(page_size);
    let free_pages = cur.free_count.saturating_sub(cur.speculative_count);
    let available_pages = cur.free_count + cur.inactive_count + cur.purgeable_count;

    Memory {
        total_bytes,
        available_bytes: Some(bytes(available_pages)),
        available_estimated: true,
        free_bytes: Some(bytes(free_pages)),
        cached_bytes: Some(bytes(cur.external_page_count)),
        swap_total_bytes: swap.map(|s| s.total_bytes),
        swap_free_bytes: swap.map(|s| s.available_bytes),
        major_faults: Some(cur.pageins),
        major_faults_in_interval: prev.map(|p| cur.pageins.saturating_sub(p.pageins)),
        other: memory_other(cur, page_size),
        ..Memory::default()
    }
}

fn memory_other(cur: &VmStats, page_size: u64) -> BTreeMap<String, u64> {
    let bytes = |pages: u64| pages.saturating_mul(page_size);
    let entries = [
        ("active_bytes", bytes(cur.active_count)),
        ("inactive_bytes", bytes(cur.inactive_count)),
        ("wired_bytes", bytes(cur.wire_count)),
        ("speculative_bytes", bytes(cur.speculative_count)),
        ("purgeable_bytes", bytes(cur.purgeable_count)),
        ("anonymous_bytes", bytes(cur.internal_page_count)),
        ("compressor_bytes", bytes(cur.compressor_page_count)),
        ("pageouts", cur.pageouts),
        ("faults", cur.faults),
        ("cow_faults", cur.cow_faults),
        ("compressions", cur.compressions),
        ("decompressions", cur.decompressions),
        ("swapins", cur.swapins),
        ("swapouts", cur.swapouts),
    ];
    entries
        .into_iter()
        .map(|(key, value)| (key.to_string(), value))
        .collect()
}

/// `p_stat` values from the SDK's `sys/proc.h`.
pub mod pstat {
    pub const SIDL: u32 = 1;
    pub const SRUN: u32 = 2;
    pub const SSLEEP: u32 = 3;
    pub const SSTOP: u32 = 4;
    pub const SZOMB: u32 = 5;
}

/// The one-letter state and the kind of a process.
///
/// The kernel leaves nearly every live process in `SRUN`, so the state comes from the number
/// of running threads where `proc_taskinfo` gave it: `R` with at least one, `S` with none.
/// `SIDL` (being created) shows as `I`. Pid 0 is `kernel_task`, the kernel itself.
pub fn process_state(pid: i32, status: u32, running_threads: Option<u32>) -> (String, ProcessKind) {
    let letter = match status {
        pstat::SZOMB => "Z",
        pstat::SSTOP => "T",
        pstat::SIDL => "I",
        pstat::SSLEEP => "S",
        _ => match running_threads {
            Some(0) => "S",
            _ => "R",
        },
    };
    let kind = if pid == 0 {
        ProcessKind::KernelThread
    } else if status == pstat::SZOMB {
        ProcessKind::Zombie
    } else {
        ProcessKind::User
    };
    (letter.to_string(), kind)
}

/// A process start time as microseconds since the Unix epoch; with the pid it identifies the
/// process across samples.
pub fn start_micros(secs: u64, usecs: u64) -> u64 {
    secs.saturating_mul(1_000_000).saturating_add(usecs)
}

/// The name to show: the kernel's name, or the base name of the executable when the kernel
/// gave none.
pub fn process_name(kernel_name: &str, exec_path: Option<&str>) -> String {
    if !kernel_name.is_empty() {
        return kernel_name.to_string();
    }
    let path = exec_path.unwrap_or_default();
    path.rsplit('/').next().unwrap_or_default().to_string()
}

/// Decodes a C string from a fixed-size array, up to the first NUL.
pub fn c_chars_to_string(chars: &[u8]) -> String {
    let (text, _) = split_nul(chars);
    String::from_utf8_lossy(text).into_owned()
}

/// `insi_vflag` bits from the SDK's `sys/proc_info.h`.
pub const INI_IPV4: u8 = 0x1;
pub const INI_IPV6: u8 = 0x2;

/// The local port of `in_sockinfo`: a network-order `u_short` widened to `int`.
pub fn port_from_network(port: i32) -> u16 {
    u16::from_be(port as u16)
}

/// The text form of an `in_sockinfo` address union: IPv4 sits in the last four bytes.
pub fn socket_address(vflag: u8, bytes: &[u8; 16]) -> String {
    if vflag & INI_IPV4 != 0 {
        return Ipv4Addr::new(bytes[12], bytes[13], bytes[14], bytes[15]).to_string();
    }
    Ipv6Addr::from(*bytes).to_string()
}

/// The protocol name of a socket as netstat prints it, from whether it is TCP and its family.
pub fn socket_protocol(is_tcp: bool, vflag: u8) -> &'static str {
    let v6 = vflag & INI_IPV4 == 0 && vflag & INI_IPV6 != 0;
    match (is_tcp, v6) {
        (true, false) => "tcp",
        (true, true) => "tcp6",
        (false, false) => "udp",
        (false, true) => "udp6",
    }
}

/// TCP state names by `tcpsi_state` (`TSI_S_*` in `sys/proc_info.h`), spelled as Linux
/// netstat spells them so both backends count the same keys.
pub fn tcp_state_name(state: i32) -> &'static str {
    match state {
        0 => "CLOSE",
        1 => "LISTEN",
        2 => "SYN_SENT",
        3 => "SYN_RECV",
        4 => "ESTABLISHED",
        5 => "CLOSE_WAIT",
        6 => "FIN_WAIT1",
        7 => "CLOSING",
        8 => "LAST_ACK",
        9 => "FIN_WAIT2",
        10 => "TIME_WAIT",
        _ => "UNKNOWN",
    }
}

/// A UDP socket counts as listening when it is bound and unconnected: a local port and no
/// foreign port or address.
pub fn udp_is_listening(local_port: u16, foreign_port: u16, foreign: &[u8; 16]) -> bool {
    local_port != 0 && foreign_port == 0 && foreign.iter().all(|&b| b == 0)
}

/// Counters of one interface from an `RTM_IFINFO2` routing message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IfCounters {
    pub index: u16,
    pub name: String,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_drops: u64,
    pub tx_drops: u64,
}

/// `RTM_IFINFO2` from the SDK's `net/route.h`.
pub const RTM_IFINFO2: u8 = 0x12;

/// Byte offsets in `struct if_msghdr2` (`net/if.h`, `#pragma pack(4)`), 160 bytes in all;
/// the macOS build checks them against the `libc` layout.
pub mod ifmsg {
    pub const MSGLEN: usize = 0;
    pub const TYPE: usize = 3;
    pub const INDEX: usize = 12;
    pub const SND_DROPS: usize = 24;
    pub const DATA: usize = 32;
    pub const SIZE: usize = 160;
    /// Offsets inside `struct if_data64`.
    pub const IPACKETS: usize = 24;
    pub const IERRORS: usize = 32;
    pub const OPACKETS: usize = 40;
    pub const OERRORS: usize = 48;
    pub const IBYTES: usize = 64;
    pub const OBYTES: usize = 72;
    pub const IQDROPS: usize = 96;
}

/// Walks the buffer of `sysctl {CTL_NET, PF_ROUTE, 0, 0, NET_RT_IFLIST2, 0}` and returns the
/// counters of every `RTM_IFINFO2` message, with the name left empty. Messages of other
/// types are skipped; a truncated or zero-length message ends the walk.
pub fn parse_iflist2(buffer: &[u8]) -> Vec<IfCounters> {
    let mut interfaces = Vec::new();
    let mut offset = 0;
    while let Some(header) = buffer.get(offset..offset + 4) {
        let length = usize::from(u16::from_ne_bytes([header[0], header[1]]));
        let Some(message) = buffer.get(offset..offset + length) else {
            break;
        };
        if length == 0 {
            break;
        }
        if message[ifmsg::TYPE] == RTM_IFINFO2 && length >= ifmsg::SIZE {
            interfaces.push(if_counters(message));
        }
        offset += length;
    }
    interfaces
}

fn if_counters(message: &[u8]) -> IfCounters {
    let u64_at = |at: usize| {
        let start = ifmsg::DATA + at;
        let bytes: [u8; 8] = message[start..start + 8].try_into().unwrap_or_default();
        u64::from_ne_bytes(bytes)
    };
    let index = u16::from_ne_bytes([message[ifmsg::INDEX], message[ifmsg::INDEX + 1]]);
    let drops: [u8; 4] = message[ifmsg::SND_DROPS..ifmsg::SND_DROPS + 4]
        .try_into()
        .unwrap_or_default();
    IfCounters {
        index,
        name: String::new(),
        rx_packets: u64_at(ifmsg::IPACKETS),
        rx_errors: u64_at(ifmsg::IERRORS),
        tx_packets: u64_at(ifmsg::OPACKETS),
        tx_errors: u64_at(ifmsg::OERRORS),
        rx_bytes: u64_at(ifmsg::IBYTES),
        tx_bytes: u64_at(ifmsg::OBYTES),
        rx_drops: u64_at(ifmsg::IQDROPS),
        tx_drops: u64::from(i32::from_ne_bytes(drops).max(0) as u32),
    }
}

/// Interfaces with rates over the interval; an interface missing from the earlier sample
/// gets zero rates, and counters that went backwards count as zero.
pub fn interfaces(prev: &[IfCounters], cur: &[IfCounters], interval_secs: f64) -> Vec<Interface> {
    let rate = |before: Option<u64>, now: u64| match before {
        Some(before) if interval_secs > 0.0 => now.saturating_sub(before) as f64 / interval_secs,
        _ => 0.0,
    };
    let mut list: Vec<Interface> = cur
        .iter()
        .map(|now| {
            let before = prev.iter().find(|p| p.name == now.name);
            Interface {
                name: now.name.clone(),
                rx_bytes_per_sec: rate(before.map(|b| b.rx_bytes), now.rx_bytes),
                tx_bytes_per_sec: rate(before.map(|b| b.tx_bytes), now.tx_bytes),
                rx_packets_per_sec: rate(before.map(|b| b.rx_packets), now.rx_packets),
                tx_packets_per_sec: rate(before.map(|b| b.tx_packets), now.tx_packets),
                rx_bytes: now.rx_bytes,
                tx_bytes: now.tx_bytes,
                rx_errors: now.rx_errors,
                tx_errors: now.tx_errors,
                rx_drops: now.rx_drops,
                tx_drops: now.tx_drops,
            }
        })
        .collect();
    list.sort_by(|a, b| a.name.cmp(&b.name));
    list
}

/// One `struct statfs` from `getmntinfo`, sizes in blocks of `block_size` bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatfsRecord {
    pub source: String,
    pub mount_point: String,
    pub fs_type: String,
    pub block_size: u64,
    pub blocks: u64,
    pub blocks_free: u64,
    pub blocks_available: u64,
    pub files: u64,
    pub files_free: u64,
}

/// Filesystem types that hold no data of their own and that df users do not look for.
const PSEUDO_FS_TYPES: &[&str] = &["devfs", "autofs", "fdesc", "nullfs"];

/// A filesystem as df shows it, or `None` for a pseudo filesystem or one without blocks.
pub fn filesystem(record: &StatfsRecord) -> Option<Filesystem> {
    if PSEUDO_FS_TYPES.contains(&record.fs_type.as_str()) || record.blocks == 0 {
        return None;
    }
    let bytes = |blocks: u64| blocks.saturating_mul(record.block_size);
    let used = record.blocks.saturating_sub(record.blocks_free);
    let available = record.blocks_available;
    Some(Filesystem {
        source: record.source.clone(),
        mount_point: record.mount_point.clone(),
        fs_type: record.fs_type.clone(),
        size_bytes: Some(bytes(record.blocks)),
        used_bytes: Some(bytes(used)),
        available_bytes: Some(bytes(available)),
        use_pct: use_pct(used, available),
        inodes_total: Some(record.files),
        inodes_used: Some(record.files.saturating_sub(record.files_free)),
    })
}

/// `used / (used + available)` in percent, rounded up to a whole number as df does.
pub fn use_pct(used: u64, available: u64) -> Option<f64> {
    let whole = u128::from(used) + u128::from(available);
    if whole == 0 {
        return None;
    }
    let pct = (u128::from(used) * 100).div_ceil(whole);
    Some(pct as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn procargs(argc: i32, rest: &[u8]) -> Vec<u8> {
        let mut buffer = argc.to_ne_bytes().to_vec();
        buffer.extend_from_slice(rest);
        buffer
    }

    #[test]
    fn errno_maps_to_gap_reason() {
        assert_eq!(gap_reason(errno::EPERM), GapReason::PermissionDenied);
        assert_eq!(gap_reason(errno::EACCES), GapReason::PermissionDenied);
        assert_eq!(gap_reason(errno::ESRCH), GapReason::Vanished);
        assert_eq!(gap_reason(errno::ENOENT), GapReason::Vanished);
        assert_eq!(gap_reason(errno::ENOTSUP), GapReason::Unsupported);
        assert_eq!(gap_reason(errno::ENOSYS), GapReason::Unsupported);
        assert_eq!(gap_reason(5), GapReason::Error);
    }

    #[test]
    fn info_size_accepts_full_struct() {
        assert_eq!(check_info_size("proc_pidinfo", 232, 0, 232), Ok(()));
    }

    #[test]
    fn info_size_rejects_short_read() {
        let error = check_info_size("proc_pidinfo", 136, 0, 232).unwrap_err();
        assert_eq!(error.reason, GapReason::Invalid);
        assert_eq!(error.detail, "proc_pidinfo returned 136 of 232 bytes");
    }

    #[test]
    fn info_size_zero_uses_errno() {
        let denied = check_info_size("proc_pidinfo", 0, errno::EPERM, 232).unwrap_err();
        assert_eq!(denied.reason, GapReason::PermissionDenied);
        let gone = check_info_size("proc_pidinfo", -1, errno::ESRCH, 232).unwrap_err();
        assert_eq!(gone.reason, GapReason::Vanished);
    }

    #[test]
    fn procargs_einval_and_zero_errno_are_denied() {
        assert_eq!(
            procargs_failure(errno::EINVAL).reason,
            GapReason::PermissionDenied
        );
        assert_eq!(procargs_failure(0).reason, GapReason::PermissionDenied);
        assert_eq!(procargs_failure(errno::ESRCH).reason, GapReason::Vanished);
        assert_eq!(procargs_failure(12).reason, GapReason::Error);
    }

    #[test]
    fn procargs_parses_path_padding_args_and_env() {
        let buffer = procargs(
            3,
            b"/usr/bin/python3\0\0\0\0\0python3\0-m\0http.server 8000\0HOME=/Users/a\0SECRET=x\0\0\0",
        );
        let parsed = parse_procargs2(&buffer).unwrap();
        assert_eq!(parsed.exec_path, "/usr/bin/python3");
        assert_eq!(parsed.args, vec!["python3", "-m", "http.server 8000"]);
        assert_eq!(parsed.env_count, 2);
    }

    #[test]
    fn procargs_without_env_or_trailing_nul() {
        let parsed = parse_procargs2(&procargs(1, b"/bin/sleep\0\0sleep")).unwrap();
        assert_eq!(parsed.args, vec!["sleep"]);
        assert_eq!(parsed.env_count, 0);
    }

    #[test]
    fn procargs_rejects_truncated_buffers() {
        assert_eq!(
            parse_procargs2(b"\x01\0").unwrap_err().reason,
            GapReason::Invalid
        );
        let missing_arg = procargs(2, b"/bin/ls\0\0ls\0");
        let error = parse_procargs2(&missing_arg).unwrap_err();
        assert_eq!(
            error.detail,
            "KERN_PROCARGS2 buffer ends before the last argument"
        );
        assert_eq!(
            parse_procargs2(&procargs(-1, b"")).unwrap_err().reason,
            GapReason::Invalid
        );
    }

    #[test]
    fn procargs_zero_argc_keeps_path() {
        let parsed = parse_procargs2(&procargs(0, b"/sbin/launchd\0\0\0\0")).unwrap();
        assert_eq!(parsed.exec_path, "/sbin/launchd");
        assert!(parsed.args.is_empty());
    }

    #[test]
    fn timebase_converts_apple_silicon_units() {
        let timebase = Timebase {
            numer: 125,
            denom: 3,
        };
        assert_eq!(timebase.to_nanos(24_000_000), 1_000_000_000);
        assert_eq!(Timebase::IDENTITY.to_nanos(42), 42);
        assert_eq!(Timebase { numer: 1, denom: 0 }.to_nanos(7), 7);
        assert_eq!(timebase.to_nanos(u64::MAX), u64::MAX);
    }

    #[test]
    fn process_cpu_over_interval() {
        assert_eq!(
            process_cpu_pct(1_000_000_000, 1_500_000_000, 1.0),
            Some(50.0)
        );
        assert_eq!(process_cpu_pct(0, 3_000_000_000, 2.0), Some(150.0));
        assert_eq!(process_cpu_pct(5, 4, 1.0), Some(0.0));
        assert_eq!(process_cpu_pct(0, 1, 0.0), None);
    }

    #[test]
    fn cpu_ticks_become_shares_matched_by_number() {
        let prev = [
            CpuTicks {
                cpu: 1,
                user: 100,
                system: 50,
                idle: 800,
                nice: 0,
            },
            CpuTicks {
                cpu: 0,
                user: 1000,
                system: 500,
                idle: 8000,
                nice: 10,
            },
        ];
        let cur = [
            CpuTicks {
                cpu: 0,
                user: 1060,
                system: 520,
                idle: 8020,
                nice: 10,
            },
            CpuTicks {
                cpu: 1,
                user: 110,
                system: 50,
                idle: 890,
                nice: 0,
            },
        ];
        let cpu = cpu_usage(&prev, &cur).unwrap();

        assert_eq!(cpu.per_cpu.len(), 2);
        assert_eq!(cpu.per_cpu[0].cpu, Some(0));
        assert_eq!(cpu.per_cpu[0].user_pct, 60.0);
        assert_eq!(cpu.per_cpu[0].system_pct, 20.0);
        assert_eq!(cpu.per_cpu[0].busy_pct, 80.0);
        assert_eq!(cpu.per_cpu[1].busy_pct, 10.0);
        assert_eq!(cpu.total.cpu, None);
        assert_eq!(cpu.total.busy_pct, 45.0);
        assert_eq!(cpu.total.idle_pct, 55.0);
    }

    #[test]
    fn cpu_tick_wrap_clamps_at_zero() {
        let prev = [CpuTicks {
            cpu: 0,
            user: 4_000_000_000,
            system: 10,
            idle: 10,
            nice: 0,
        }];
        let cur = [CpuTicks {
            cpu: 0,
            user: 5,
            system: 20,
            idle: 40,
            nice: 0,
        }];
        let cpu = cpu_usage(&prev, &cur).unwrap();
        assert_eq!(cpu.total.user_pct, 0.0);
        assert_eq!(cpu.total.system_pct, 25.0);
        assert_eq!(cpu.total.idle_pct, 75.0);
    }

    #[test]
    fn cpu_without_common_cpus_is_none() {
        let cur = [CpuTicks {
            cpu: 3,
            ..CpuTicks::default()
        }];
        assert_eq!(cpu_usage(&[], &cur), None);
    }

    #[test]
    fn vm_stats_become_memory() {
        let prev = VmStats {
            pageins: 900,
            ..VmStats::default()
        };
        let cur = VmStats {
            free_count: 1000,
            speculative_count: 200,
            inactive_count: 3000,
            purgeable_count: 100,
            external_page_count: 2500,
            wire_count: 4000,
            pageins: 1000,
            ..VmStats::default()
        };
        let swap = SwapUsage {
            total_bytes: 2 << 30,
            available_bytes: 1 << 30,
            used_bytes: 1 << 30,
        };
        let memory = memory(Some(&prev), &cur, 16384, Some(17_179_869_184), Some(&swap));

        assert_eq!(memory.total_bytes, Some(17_179_869_184));
        assert_eq!(memory.free_bytes, Some(800 * 16384));
        assert_eq!(memory.available_bytes, Some(4100 * 16384));
        assert!(memory.available_estimated);
        assert_eq!(memory.cached_bytes, Some(2500 * 16384));
        assert_eq!(memory.buffers_bytes, None);
        assert_eq!(memory.dirty_bytes, None);
        assert_eq!(memory.oom_kills, None);
        assert_eq!(memory.swap_total_bytes, Some(2 << 30));
        assert_eq!(memory.swap_free_bytes, Some(1 << 30));
        assert_eq!(memory.major_faults, Some(1000));
        assert_eq!(memory.major_faults_in_interval, Some(100));
        assert_eq!(memory.other.get("wired_bytes"), Some(&(4000 * 16384)));
    }

    #[test]
    fn memory_without_baseline_has_no_interval_faults() {
        let memory = memory(None, &VmStats::default(), 4096, None, None);
        assert_eq!(memory.major_faults_in_interval, None);
        assert_eq!(memory.total_bytes, None);
        assert_eq!(memory.swap_total_bytes, None);
    }

    #[test]
    fn process_state_from_status_and_threads() {
        let user = ProcessKind::User;
        assert_eq!(
            process_state(10, pstat::SRUN, Some(1)),
            ("R".to_string(), user)
        );
        assert_eq!(
            process_state(10, pstat::SRUN, Some(0)),
            ("S".to_string(), user)
        );
        assert_eq!(
            process_state(10, pstat::SRUN, None),
            ("R".to_string(), user)
        );
        assert_eq!(
            process_state(10, pstat::SSTOP, Some(0)),
            ("T".to_string(), user)
        );
        let zombie = process_state(10, pstat::SZOMB, None);
        assert_eq!(zombie, ("Z".to_string(), ProcessKind::Zombie));
    }

    #[test]
    fn pid_zero_is_kernel_task() {
        let (_, kind) = process_state(0, pstat::SRUN, Some(4));
        assert_eq!(kind, ProcessKind::KernelThread);
    }

    #[test]
    fn name_falls_back_to_executable() {
        assert_eq!(process_name("launchd", Some("/sbin/launchd")), "launchd");
        assert_eq!(process_name("", Some("/usr/libexec/trustd")), "trustd");
        assert_eq!(process_name("", None), "");
        assert_eq!(c_chars_to_string(b"zsh\0\0garbage"), "zsh");
    }

    #[test]
    fn socket_fields_decode() {
        assert_eq!(port_from_network(i32::from(8080u16.to_be())), 8080);
        let mut v4 = [0u8; 16];
        v4[12..].copy_from_slice(&[127, 0, 0, 1]);
        assert_eq!(socket_address(INI_IPV4, &v4), "127.0.0.1");
        let mut v6 = [0u8; 16];
        v6[15] = 1;
        assert_eq!(socket_address(INI_IPV6, &v6), "::1");
        assert_eq!(socket_protocol(true, INI_IPV4), "tcp");
        assert_eq!(socket_protocol(true, INI_IPV6), "tcp6");
        assert_eq!(socket_protocol(false, INI_IPV4 | INI_IPV6), "udp");
        assert_eq!(tcp_state_name(1), "LISTEN");
        assert_eq!(tcp_state_name(10), "TIME_WAIT");
    }

    #[test]
    fn udp_listening_needs_bound_unconnected() {
        let zero = [0u8; 16];
        let mut peer = [0u8; 16];
        peer[15] = 9;
        assert!(udp_is_listening(53, 0, &zero));
        assert!(!udp_is_listening(0, 0, &zero));
        assert!(!udp_is_listening(53, 443, &zero));
        assert!(!udp_is_listening(53, 0, &peer));
    }

    fn ifinfo2(index: u16, rx_bytes: u64, tx_drops: i32) -> Vec<u8> {
        let mut message = vec![0u8; ifmsg::SIZE];
        message[ifmsg::MSGLEN..2].copy_from_slice(&(ifmsg::SIZE as u16).to_ne_bytes());
        message[ifmsg::TYPE] = RTM_IFINFO2;
        message[ifmsg::INDEX..ifmsg::INDEX + 2].copy_from_slice(&index.to_ne_bytes());
        message[ifmsg::SND_DROPS..ifmsg::SND_DROPS + 4].copy_from_slice(&tx_drops.to_ne_bytes());
        let at = ifmsg::DATA + ifmsg::IBYTES;
        message[at..at + 8].copy_from_slice(&rx_bytes.to_ne_bytes());
        let at = ifmsg::DATA + ifmsg::IQDROPS;
        message[at..at + 8].copy_from_slice(&7u64.to_ne_bytes());
        message
    }

    #[test]
    fn iflist2_reads_ifinfo2_messages_only() {
        let mut buffer = ifinfo2(1, 5_000_000_000, 3);
        let mut other = vec![0u8; 20];
        other[0] = 20;
        other[3] = 0x13;
        buffer.extend_from_slice(&other);
        buffer.extend_from_slice(&ifinfo2(4, 10, -1));

        let counters = parse_iflist2(&buffer);
        assert_eq!(counters.len(), 2);
        assert_eq!(counters[0].index, 1);
        assert_eq!(counters[0].rx_bytes, 5_000_000_000);
        assert_eq!(counters[0].rx_drops, 7);
        assert_eq!(counters[0].tx_drops, 3);
        assert_eq!(counters[1].index, 4);
        assert_eq!(counters[1].tx_drops, 0);
    }

    #[test]
    fn iflist2_stops_at_truncated_message() {
        let mut buffer = ifinfo2(1, 10, 0);
        buffer.truncate(100);
        assert!(parse_iflist2(&buffer).is_empty());
        assert!(parse_iflist2(&[0, 0, 0, 0]).is_empty());
    }

    #[test]
    fn interface_rates_over_interval() {
        let prev = [IfCounters {
            name: "en0".into(),
            rx_bytes: 1000,
            tx_packets: 5,
            ..Default::default()
        }];
        let cur = [
            IfCounters {
                name: "en0".into(),
                rx_bytes: 3000,
                tx_packets: 9,
                ..Default::default()
            },
            IfCounters {
                name: "bridge0".into(),
                rx_bytes: 50,
                ..Default::default()
            },
        ];
        let list = interfaces(&prev, &cur, 2.0);
        assert_eq!(list[0].name, "bridge0");
        assert_eq!(list[0].rx_bytes_per_sec, 0.0);
        assert_eq!(list[1].rx_bytes_per_sec, 1000.0);
        assert_eq!(list[1].tx_packets_per_sec, 2.0);
        assert_eq!(list[1].rx_bytes, 3000);
    }

    #[test]
    fn filesystem_as_df_shows_it() {
        let record = StatfsRecord {
            source: "/dev/disk3s1s1".into(),
            mount_point: "/".into(),
            fs_type: "apfs".into(),
            block_size: 4096,
            blocks: 1000,
            blocks_free: 400,
            blocks_available: 301,
            files: 50,
            files_free: 20,
        };
        let fs = filesystem(&record).unwrap();
        assert_eq!(fs.size_bytes, Some(4_096_000));
        assert_eq!(fs.used_bytes, Some(600 * 4096));
        assert_eq!(fs.available_bytes, Some(301 * 4096));
        assert_eq!(fs.use_pct, Some(67.0));
        assert_eq!(fs.inodes_used, Some(30));
    }

    #[test]
    fn pseudo_filesystems_are_skipped() {
        let devfs = StatfsRecord {
            fs_type: "devfs".into(),
            blocks: 10,
            ..Default::default()
        };
        assert_eq!(filesystem(&devfs), None);
        let empty = StatfsRecord {
            fs_type: "apfs".into(),
            ..Default::default()
        };
        assert_eq!(filesystem(&empty), None);
        assert_eq!(use_pct(0, 0), None);
        assert_eq!(use_pct(1, 2), Some(34.0));
    }
}
