//! Thin wrappers over `sysctl`, `sysctlbyname` and `getloadavg`, plus `struct kinfo_proc`,
//! which the `libc` crate does not declare for Apple targets.
//!
//! Each wrapper returns plain Rust values or a [`CallError`] built from `errno`; deciding
//! what a failure means is left to the pure helpers in `parse.rs`.

// The struct names follow the SDK headers they mirror.
#![allow(non_camel_case_types)]

use std::ffi::CString;
use std::mem;
use std::ptr;

use libc::{c_char, c_int, c_short, c_uint, c_void, dev_t, gid_t, pid_t, uid_t};

use super::parse::{self, CallError, ProcArgs, SwapUsage};

fn last_errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Reads a sysctl by name into a byte buffer sized by a first, empty call.
pub fn by_name(name: &str) -> Result<Vec<u8>, CallError> {
    let call = format!("sysctlbyname {name}");
    let c_name =
        CString::new(name).map_err(|_| CallError::from_errno(&call, parse::errno::EINVAL))?;
    let mut size: usize = 0;
    // SAFETY: a null output buffer requests only the size, which is written to `size`.
    let rc = unsafe {
        libc::sysctlbyname(
            c_name.as_ptr(),
            ptr::null_mut(),
            &mut size,
            ptr::null_mut(),
            0,
        )
    };
    if rc != 0 {
        return Err(CallError::from_errno(&call, last_errno()));
    }
    let mut buffer = vec![0u8; size];
    // SAFETY: `buffer` has `size` writable bytes and `size` passes that length; the kernel writes at
    // most that many and stores the count back in `size`.
    let rc = unsafe {
        libc::sysctlbyname(
            c_name.as_ptr(),
            buffer.as_mut_ptr().cast(),
            &mut size,
            ptr::null_mut(),
            0,
        )
    };
    if rc != 0 {
        return Err(CallError::from_errno(&call, last_errno()));
    }
    buffer.truncate(size);
    Ok(buffer)
}

/// Reads a string sysctl such as `kern.hostname`, without its trailing NUL.
pub fn string(name: &str) -> Result<String, CallError> {
    by_name(name).map(|bytes| parse::c_chars_to_string(&bytes))
}

/// Reads an integer sysctl of 4 or 8 bytes, such as `hw.ncpu` or `hw.memsize`.
pub fn integer(name: &str) -> Result<u64, CallError> {
    let bytes = by_name(name)?;
    match bytes.len() {
        4 => Ok(u64::from(u32::from_ne_bytes(
            bytes[..4].try_into().unwrap_or_default(),
        ))),
        8 => Ok(u64::from_ne_bytes(
            bytes[..8].try_into().unwrap_or_default(),
        )),
        other => Err(CallError::new(
            crate::model::GapReason::Invalid,
            format!("sysctl {name} returned {other} bytes, expected 4 or 8"),
        )),
    }
}

/// Reads a fixed-size struct through a MIB, checking that the kernel filled all of it.
fn struct_by_mib<T: Copy>(call: &str, mib: &mut [c_int]) -> Result<T, CallError> {
    // SAFETY: every type read here is a plain C struct of integers, arrays and pointers, for
    // which all-zero bytes are a valid value.
    let mut value: T = unsafe { mem::zeroed() };
    let mut size = mem::size_of::<T>();
    // SAFETY: `value` is `size` writable bytes; the kernel writes at most `size` and stores
    // the count written back in `size`.
    let rc = unsafe {
        libc::sysctl(
            mib.as_mut_ptr(),
            mib.len() as c_uint,
            (&mut value as *mut T).cast(),
            &mut size,
            ptr::null_mut(),
            0,
        )
    };
    if rc != 0 {
        return Err(CallError::from_errno(call, last_errno()));
    }
    let returned = i32::try_from(size).unwrap_or(i32::MAX);
    parse::check_info_size(call, returned, parse::errno::ESRCH, mem::size_of::<T>())?;
    Ok(value)
}

/// `kern.boottime` as seconds and microseconds since the Unix epoch.
pub fn boot_time() -> Result<(i64, i64), CallError> {
    let mut mib = [libc::CTL_KERN, libc::KERN_BOOTTIME];
    let tv: libc::timeval = struct_by_mib("sysctl kern.boottime", &mut mib)?;
    Ok((tv.tv_sec, i64::from(tv.tv_usec)))
}

/// `vm.swapusage`.
pub fn swap_usage() -> Result<SwapUsage, CallError> {
    let mut mib = [libc::CTL_VM, libc::VM_SWAPUSAGE];
    let usage: libc::xsw_usage = struct_by_mib("sysctl vm.swapusage", &mut mib)?;
    Ok(SwapUsage {
        total_bytes: usage.xsu_total,
        available_bytes: usage.xsu_avail,
        used_bytes: usage.xsu_used,
    })
}

/// Reads the 1, 5 and 15 minute load averages.
pub fn load_average() -> Result<[f64; 3], CallError> {
    let mut load = [0f64; 3];
    // SAFETY: `load` has room for the 3 samples requested.
    let count = unsafe { libc::getloadavg(load.as_mut_ptr(), 3) };
    if count != 3 {
        return Err(CallError::new(
            crate::model::GapReason::Error,
            format!("getloadavg returned {count} of 3 samples"),
        ));
    }
    Ok(load)
}

/// Reads `KERN_PROCARGS2` for a process and parses it. The buffer is sized by
/// `kern.argmax`, the most the kernel ever returns.
pub fn proc_args(pid: i32, argmax: usize) -> Result<ProcArgs, CallError> {
    let mut mib = [libc::CTL_KERN, libc::KERN_PROCARGS2, pid];
    let mut buffer = vec![0u8; argmax];
    let mut size = buffer.len();
    // SAFETY: `buffer` is `size` writable bytes; the kernel writes at most that many and
    // stores the count written in `size`.
    let rc = unsafe {
        libc::sysctl(
            mib.as_mut_ptr(),
            mib.len() as c_uint,
            buffer.as_mut_ptr().cast::<c_void>(),
            &mut size,
            ptr::null_mut(),
            0,
        )
    };
    if rc != 0 {
        return Err(parse::procargs_failure(last_errno()));
    }
    buffer.truncate(size);
    parse::parse_procargs2(&buffer)
}

/// What `sysctl {CTL_KERN, KERN_PROC, KERN_PROC_PID, pid}` returns for any process, even
/// one owned by another user.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KinfoRecord {
    pub pid: i32,
    pub ppid: i32,
    pub uid: u32,
    pub status: u32,
    pub comm: String,
    pub start_secs: u64,
    pub start_usecs: u64,
}

/// Reads the `kinfo_proc` of one process.
pub fn kinfo(pid: i32) -> Result<KinfoRecord, CallError> {
    let mut mib = [libc::CTL_KERN, libc::KERN_PROC, libc::KERN_PROC_PID, pid];
    let info: kinfo_proc = struct_by_mib("sysctl KERN_PROC_PID", &mut mib)?;
    if info.kp_proc.p_pid != pid {
        // The kernel returns an empty record for a pid that no longer exists.
        return Err(CallError::from_errno(
            "sysctl KERN_PROC_PID",
            parse::errno::ESRCH,
        ));
    }
    // SAFETY: `p_starttime` is the union member the kernel fills for an exported process.
    let start = unsafe { info.kp_proc.p_un.p_starttime };
    let comm: Vec<u8> = info.kp_proc.p_comm.iter().map(|&c| c as u8).collect();
    Ok(KinfoRecord {
        pid,
        ppid: info.kp_eproc.e_ppid,
        uid: info.kp_eproc.e_ucred.cr_uid,
        status: u32::from(info.kp_proc.p_stat as u8),
        comm: parse::c_chars_to_string(&comm),
        start_secs: u64::try_from(start.tv_sec).unwrap_or(0),
        start_usecs: u64::try_from(start.tv_usec).unwrap_or(0),
    })
}

// The layouts below are `struct kinfo_proc` from the macOS SDK's `sys/sysctl.h`, with
// `struct extern_proc` from `sys/proc.h` and `struct eproc`, `struct _pcred`,
// `struct _ucred` and `struct vmspace` from `sys/sysctl.h` and `sys/vm.h`. Pointers are
// kept as opaque `*mut c_void`; only the fields read above matter, but every field is
// declared so that the offsets match.

const MAXCOMLEN: usize = 16;
const WMESGLEN: usize = 7;
const COMAPT_MAXLOGNAME: usize = 12;
const NGROUPS: usize = 16;

#[repr(C)]
#[derive(Clone, Copy)]
struct run_sleep_links {
    p_forw: *mut c_void,
    p_back: *mut c_void,
}

#[repr(C)]
#[derive(Clone, Copy)]
union extern_proc_un {
    p_st1: run_sleep_links,
    p_starttime: libc::timeval,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct extern_proc {
    p_un: extern_proc_un,
    p_vmspace: *mut c_void,
    p_sigacts: *mut c_void,
    p_flag: c_int,
    p_stat: c_char,
    p_pid: pid_t,
    p_oppid: pid_t,
    p_dupfd: c_int,
    user_stack: *mut c_char,
    exit_thread: *mut c_void,
    p_debugger: c_int,
    sigwait: libc::boolean_t,
    p_estcpu: c_uint,
    p_cpticks: c_int,
    p_pctcpu: u32,
    p_wchan: *mut c_void,
    p_wmesg: *mut c_char,
    p_swtime: c_uint,
    p_slptime: c_uint,
    p_realtimer: libc::itimerval,
    p_rtime: libc::timeval,
    p_uticks: u64,
    p_sticks: u64,
    p_iticks: u64,
    p_traceflag: c_int,
    p_tracep: *mut c_void,
    p_siglist: c_int,
    p_textvp: *mut c_void,
    p_holdcnt: c_int,
    p_sigmask: libc::sigset_t,
    p_sigignore: libc::sigset_t,
    p_sigcatch: libc::sigset_t,
    p_priority: u8,
    p_usrpri: u8,
    p_nice: c_char,
    p_comm: [c_char; MAXCOMLEN + 1],
    p_pgrp: *mut c_void,
    p_addr: *mut c_void,
    p_xstat: u16,
    p_acflag: u16,
    p_ru: *mut c_void,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct pcred {
    pc_lock: [c_char; 72],
    pc_ucred: *mut c_void,
    p_ruid: uid_t,
    p_svuid: uid_t,
    p_rgid: gid_t,
    p_svgid: gid_t,
    p_refcnt: c_int,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct ucred {
    cr_ref: i32,
    cr_uid: uid_t,
    cr_ngroups: c_short,
    cr_groups: [gid_t; NGROUPS],
}

#[repr(C)]
#[derive(Clone, Copy)]
struct vmspace {
    vm_refcnt: c_int,
    vm_shm: *mut c_char,
    vm_rssize: i32,
    vm_swrss: i32,
    vm_tsize: i32,
    vm_dsize: i32,
    vm_ssize: i32,
    vm_taddr: *mut c_char,
    vm_daddr: *mut c_char,
    vm_maxsaddr: *mut c_char,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct eproc {
    e_paddr: *mut c_void,
    e_sess: *mut c_void,
    e_pcred: pcred,
    e_ucred: ucred,
    e_vm: vmspace,
    e_ppid: pid_t,
    e_pgid: pid_t,
    e_jobc: c_short,
    e_tdev: dev_t,
    e_tpgid: pid_t,
    e_tsess: *mut c_void,
    e_wmesg: [c_char; WMESGLEN + 1],
    e_xsize: i32,
    e_xrssize: c_short,
    e_xccount: c_short,
    e_xswrss: c_short,
    e_flag: i32,
    e_login: [c_char; COMAPT_MAXLOGNAME],
    e_spare: [i32; 4],
}

#[repr(C)]
#[derive(Clone, Copy)]
struct kinfo_proc {
    kp_proc: extern_proc,
    kp_eproc: eproc,
}

// `sizeof(struct kinfo_proc)` is 648 bytes on 64-bit macOS (arm64 and x86_64).
const _: () = assert!(mem::size_of::<kinfo_proc>() == 648);
const _: () = assert!(mem::size_of::<extern_proc>() == 296);
