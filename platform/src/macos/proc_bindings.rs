//! Thin wrappers over libproc (`proc_listallpids`, `proc_pidinfo`, `proc_pidpath`,
//! `proc_pidfdinfo`, `proc_pid_rusage`) and `getpwuid_r`, plus `struct socket_fdinfo`, which
//! the `libc` crate does not declare.
//!
//! Every `proc_pidinfo` and `proc_pidfdinfo` result is checked against the struct size with
//! [`parse::check_info_size`]: a short read is an error, never data.

// The struct names follow the SDK headers they mirror.
#![allow(non_camel_case_types)]

use std::ffi::CStr;
use std::mem;

use libc::{c_char, c_int, c_short, c_void};
use serde::Serialize;

use super::parse::{self, CallError};

fn last_errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Lists every pid on the host, of every user, growing the buffer until the list fits.
pub fn list_all_pids() -> Result<Vec<i32>, CallError> {
    // SAFETY: a null buffer requests only the number of pids.
    let count = unsafe { libc::proc_listallpids(std::ptr::null_mut(), 0) };
    if count <= 0 {
        return Err(CallError::from_errno("proc_listallpids", last_errno()));
    }
    let mut capacity = count as usize + 64;
    loop {
        let mut pids = vec![0 as c_int; capacity];
        let bytes = (capacity * mem::size_of::<c_int>()) as c_int;
        // SAFETY: `pids` has `bytes` writable bytes; the call returns the number of pids
        // it wrote.
        let written = unsafe { libc::proc_listallpids(pids.as_mut_ptr().cast(), bytes) };
        if written <= 0 {
            return Err(CallError::from_errno("proc_listallpids", last_errno()));
        }
        let written = written as usize;
        if written < capacity {
            pids.truncate(written);
            pids.sort_unstable();
            return Ok(pids);
        }
        capacity *= 2;
    }
}

/// What `proc_pidinfo(PROC_PIDTASKALLINFO)` returned for one process. CPU times are in Mach
/// absolute time units.
#[derive(Debug, Clone, Serialize)]
pub struct TaskRecord {
    pub pid: i32,
    pub ppid: i32,
    pub uid: u32,
    pub status: u32,
    pub comm: String,
    pub name: String,
    pub start_secs: u64,
    pub start_usecs: u64,
    pub virtual_bytes: u64,
    pub resident_bytes: u64,
    pub total_user: u64,
    pub total_system: u64,
    pub threads: u32,
    pub running_threads: u32,
}

fn chars(array: &[c_char]) -> String {
    let bytes: Vec<u8> = array.iter().map(|&c| c as u8).collect();
    parse::c_chars_to_string(&bytes)
}

/// Reads `PROC_PIDTASKALLINFO`; fails with `EPERM` for another user's process unless root.
pub fn task_all_info(pid: i32) -> Result<TaskRecord, CallError> {
    let size = mem::size_of::<libc::proc_taskallinfo>();
    // SAFETY: `proc_taskallinfo` is plain integers and arrays; all-zero bytes are valid.
    let mut info: libc::proc_taskallinfo = unsafe { mem::zeroed() };
    // SAFETY: `info` is `size` writable bytes and `size` is passed as the buffer size.
    let returned = unsafe {
        libc::proc_pidinfo(
            pid,
            libc::PROC_PIDTASKALLINFO,
            0,
            (&mut info as *mut libc::proc_taskallinfo).cast(),
            size as c_int,
        )
    };
    parse::check_info_size(
        "proc_pidinfo PROC_PIDTASKALLINFO",
        returned,
        last_errno(),
        size,
    )?;

    let bsd = &info.pbsd;
    let task = &info.ptinfo;
    Ok(TaskRecord {
        pid,
        ppid: bsd.pbi_ppid as i32,
        uid: bsd.pbi_uid,
        status: bsd.pbi_status,
        comm: chars(&bsd.pbi_comm),
        name: chars(&bsd.pbi_name),
        start_secs: bsd.pbi_start_tvsec,
        start_usecs: bsd.pbi_start_tvusec,
        virtual_bytes: task.pti_virtual_size,
        resident_bytes: task.pti_resident_size,
        total_user: task.pti_total_user,
        total_system: task.pti_total_system,
        threads: task.pti_threadnum.max(0) as u32,
        running_threads: task.pti_numrunning.max(0) as u32,
    })
}

/// Returns the executable path of a process.
pub fn pid_path(pid: i32) -> Result<String, CallError> {
    let mut buffer = vec![0u8; libc::PROC_PIDPATHINFO_MAXSIZE as usize];
    // SAFETY: `buffer` has the length passed; the call writes a NUL-terminated path.
    let written =
        unsafe { libc::proc_pidpath(pid, buffer.as_mut_ptr().cast(), buffer.len() as u32) };
    if written <= 0 {
        return Err(CallError::from_errno("proc_pidpath", last_errno()));
    }
    buffer.truncate(written as usize);
    Ok(String::from_utf8_lossy(&buffer).into_owned())
}

/// Bytes the process read from and wrote to storage, from `proc_pid_rusage(RUSAGE_INFO_V2)`.
pub fn disk_io(pid: i32) -> Result<(u64, u64), CallError> {
    // SAFETY: `rusage_info_v2` is plain integers; all-zero bytes are valid.
    let mut usage: libc::rusage_info_v2 = unsafe { mem::zeroed() };
    let mut pointer = (&mut usage as *mut libc::rusage_info_v2).cast::<c_void>();
    // SAFETY: the call writes one `rusage_info_v2` for flavor `RUSAGE_INFO_V2` through the
    // pointer it is given, which points at `usage`.
    let rc = unsafe { libc::proc_pid_rusage(pid, libc::RUSAGE_INFO_V2, &mut pointer) };
    if rc != 0 {
        return Err(CallError::from_errno("proc_pid_rusage", last_errno()));
    }
    Ok((usage.ri_diskio_bytesread, usage.ri_diskio_byteswritten))
}

/// Lists the open file descriptors of a process, each with its `PROX_FDTYPE_*` type.
pub fn list_fds(pid: i32) -> Result<Vec<libc::proc_fdinfo>, CallError> {
    let entry = mem::size_of::<libc::proc_fdinfo>();
    // SAFETY: a null buffer requests only the buffer size needed.
    let needed =
        unsafe { libc::proc_pidinfo(pid, libc::PROC_PIDLISTFDS, 0, std::ptr::null_mut(), 0) };
    if needed <= 0 {
        return Err(CallError::from_errno(
            "proc_pidinfo PROC_PIDLISTFDS",
            last_errno(),
        ));
    }
    // Room for descriptors opened between the two calls.
    let capacity = needed as usize / entry + 32;
    let empty = libc::proc_fdinfo {
        proc_fd: 0,
        proc_fdtype: 0,
    };
    let mut fds = vec![empty; capacity];
    let bytes = (capacity * entry) as c_int;
    // SAFETY: `fds` is `bytes` writable bytes; the call returns the number of bytes written.
    let written = unsafe {
        libc::proc_pidinfo(
            pid,
            libc::PROC_PIDLISTFDS,
            0,
            fds.as_mut_ptr().cast(),
            bytes,
        )
    };
    if written <= 0 {
        return Err(CallError::from_errno(
            "proc_pidinfo PROC_PIDLISTFDS",
            last_errno(),
        ));
    }
    fds.truncate(written as usize / entry);
    Ok(fds)
}

/// An internet socket as `proc_pidfdinfo(PROC_PIDFDSOCKETINFO)` describes it.
#[derive(Debug, Clone, Serialize)]
pub struct SocketRecord {
    pub pid: i32,
    pub fd: i32,
    /// The kernel's opaque socket handle; the same socket shared by processes has one handle.
    pub handle: u64,
    pub family: i32,
    pub protocol: i32,
    pub kind: i32,
    pub vflag: u8,
    pub local_port: u16,
    pub foreign_port: u16,
    pub local_address: [u8; 16],
    pub foreign_address: [u8; 16],
    /// `tcpsi_state` for TCP sockets.
    pub tcp_state: Option<i32>,
}

/// Reads one socket descriptor; `Ok(None)` for sockets that are not IPv4 or IPv6.
pub fn socket_info(pid: i32, fd: i32) -> Result<Option<SocketRecord>, CallError> {
    let size = mem::size_of::<socket_fdinfo>();
    // SAFETY: `socket_fdinfo` is plain integers, arrays and unions of them; all-zero bytes
    // are valid.
    let mut info: socket_fdinfo = unsafe { mem::zeroed() };
    // SAFETY: `info` is `size` writable bytes and `size` is passed as the buffer size.
    let returned = unsafe {
        libc::proc_pidfdinfo(
            pid,
            fd,
            PROC_PIDFDSOCKETINFO,
            (&mut info as *mut socket_fdinfo).cast(),
            size as c_int,
        )
    };
    parse::check_info_size(
        "proc_pidfdinfo PROC_PIDFDSOCKETINFO",
        returned,
        last_errno(),
        size,
    )?;

    let psi = &info.psi;
    let is_inet = psi.soi_family == libc::AF_INET || psi.soi_family == libc::AF_INET6;
    if !is_inet || (psi.soi_kind != SOCKINFO_IN && psi.soi_kind != SOCKINFO_TCP) {
        return Ok(None);
    }
    // SAFETY: for `SOCKINFO_IN` and `SOCKINFO_TCP` the kernel fills `pri_in` or `pri_tcp`,
    // and `pri_tcp` starts with the same `in_sockinfo`, so `pri_in` is valid for both.
    let inet = unsafe { psi.soi_proto.pri_in };
    let tcp_state = if psi.soi_kind == SOCKINFO_TCP {
        // SAFETY: `pri_tcp` is the member filled for `SOCKINFO_TCP`.
        Some(unsafe { psi.soi_proto.pri_tcp.tcpsi_state })
    } else {
        None
    };
    Ok(Some(SocketRecord {
        pid,
        fd,
        handle: psi.soi_so,
        family: psi.soi_family,
        protocol: psi.soi_protocol,
        kind: psi.soi_kind,
        vflag: inet.insi_vflag,
        local_port: parse::port_from_network(inet.insi_lport),
        foreign_port: parse::port_from_network(inet.insi_fport),
        // SAFETY: both union members are 16 plain bytes, so either view is valid.
        local_address: unsafe { inet.insi_laddr.ina_6 },
        // SAFETY: as above.
        foreign_address: unsafe { inet.insi_faddr.ina_6 },
        tcp_state,
    }))
}

/// The user name of a uid through the system's directory services, or `None` where it has
/// no entry.
pub fn user_name(uid: u32) -> Option<String> {
    // SAFETY: `passwd` is plain pointers and integers; all-zero bytes are valid.
    let mut entry: libc::passwd = unsafe { mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    let mut buffer = vec![0 as c_char; 4096];
    // SAFETY: `entry`, `buffer` (with its length) and `result` are valid for writes; on
    // success `result` points at `entry`, whose strings live in `buffer`.
    let rc = unsafe {
        libc::getpwuid_r(
            uid,
            &mut entry,
            buffer.as_mut_ptr(),
            buffer.len(),
            &mut result,
        )
    };
    if rc != 0 || result.is_null() || entry.pw_name.is_null() {
        return None;
    }
    // SAFETY: `pw_name` points at a NUL-terminated string inside `buffer`, still alive.
    let name = unsafe { CStr::from_ptr(entry.pw_name) };
    Some(name.to_string_lossy().into_owned())
}

// The layouts below are from the macOS SDK's `sys/proc_info.h`: `struct socket_fdinfo`
// with `struct proc_fileinfo`, `struct socket_info`, `struct vinfo_stat`,
// `struct sockbuf_info`, `struct in_sockinfo`, `struct tcp_sockinfo` and the protocol
// union, whose largest member is `struct un_sockinfo` (two handles and two 255-byte
// address unions, `SOCK_MAXADDRLEN`).

const PROC_PIDFDSOCKETINFO: c_int = 3;
const SOCKINFO_IN: c_int = 1;
const SOCKINFO_TCP: c_int = 2;
const SOCK_MAXADDRLEN: usize = 255;
const TSI_T_NTIMERS: usize = 4;

#[repr(C)]
#[derive(Clone, Copy)]
struct proc_fileinfo {
    fi_openflags: u32,
    fi_status: u32,
    fi_offset: i64,
    fi_type: i32,
    fi_guardflags: u32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct vinfo_stat {
    vst_dev: u32,
    vst_mode: u16,
    vst_nlink: u16,
    vst_ino: u64,
    vst_uid: u32,
    vst_gid: u32,
    vst_atime: i64,
    vst_atimensec: i64,
    vst_mtime: i64,
    vst_mtimensec: i64,
    vst_ctime: i64,
    vst_ctimensec: i64,
    vst_birthtime: i64,
    vst_birthtimensec: i64,
    vst_size: i64,
    vst_blocks: i64,
    vst_blksize: i32,
    vst_flags: u32,
    vst_gen: u32,
    vst_rdev: u32,
    vst_qspare: [i64; 2],
}

#[repr(C)]
#[derive(Clone, Copy)]
struct sockbuf_info {
    sbi_cc: u32,
    sbi_hiwat: u32,
    sbi_mbcnt: u32,
    sbi_mbmax: u32,
    sbi_lowat: u32,
    sbi_flags: c_short,
    sbi_timeo: c_short,
}

/// `struct in4in6_addr` and `struct in6_addr` overlaid; IPv4 is in the last four bytes.
#[repr(C)]
#[derive(Clone, Copy)]
union in_sockinfo_addr {
    ina_46: [u32; 4],
    ina_6: [u8; 16],
}

#[repr(C)]
#[derive(Clone, Copy)]
struct in_sockinfo_v4 {
    in4_tos: u8,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct in_sockinfo_v6 {
    in6_hlim: u8,
    in6_cksum: c_int,
    in6_ifindex: u16,
    in6_hops: c_short,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct in_sockinfo {
    insi_fport: c_int,
    insi_lport: c_int,
    insi_gencnt: u64,
    insi_flags: u32,
    insi_flow: u32,
    insi_vflag: u8,
    insi_ip_ttl: u8,
    rfu_1: u32,
    insi_faddr: in_sockinfo_addr,
    insi_laddr: in_sockinfo_addr,
    insi_v4: in_sockinfo_v4,
    insi_v6: in_sockinfo_v6,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct tcp_sockinfo {
    tcpsi_ini: in_sockinfo,
    tcpsi_state: c_int,
    tcpsi_timer: [c_int; TSI_T_NTIMERS],
    tcpsi_mss: c_int,
    tcpsi_flags: u32,
    rfu_1: u32,
    tcpsi_tp: u64,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct un_sockinfo {
    unsi_conn_so: u64,
    unsi_conn_pcb: u64,
    unsi_addr: [u8; SOCK_MAXADDRLEN],
    unsi_caddr: [u8; SOCK_MAXADDRLEN],
}

#[repr(C)]
#[derive(Clone, Copy)]
union socket_proto {
    pri_in: in_sockinfo,
    pri_tcp: tcp_sockinfo,
    pri_un: un_sockinfo,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct socket_info {
    soi_stat: vinfo_stat,
    soi_so: u64,
    soi_pcb: u64,
    soi_type: c_int,
    soi_protocol: c_int,
    soi_family: c_int,
    soi_options: c_short,
    soi_linger: c_short,
    soi_state: c_short,
    soi_qlen: c_short,
    soi_incqlen: c_short,
    soi_qlimit: c_short,
    soi_timeo: c_short,
    soi_error: u16,
    soi_oobmark: u32,
    soi_rcv: sockbuf_info,
    soi_snd: sockbuf_info,
    soi_kind: c_int,
    rfu_1: u32,
    soi_proto: socket_proto,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct socket_fdinfo {
    pfi: proc_fileinfo,
    psi: socket_info,
}

// Sizes from the SDK layout: `in_sockinfo` 80, `tcp_sockinfo` 120, `vinfo_stat` 136,
// `socket_fdinfo` 792 (`PROC_PIDFDSOCKETINFO_SIZE`).
const _: () = assert!(mem::size_of::<in_sockinfo>() == 80);
const _: () = assert!(mem::size_of::<tcp_sockinfo>() == 120);
const _: () = assert!(mem::size_of::<vinfo_stat>() == 136);
const _: () = assert!(mem::size_of::<socket_fdinfo>() == 792);
const _: () = assert!(mem::offset_of!(in_sockinfo, insi_faddr) == 32);
