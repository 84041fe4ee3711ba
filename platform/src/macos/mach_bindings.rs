//! Thin wrappers over the Mach host calls: `mach_timebase_info`, `host_processor_info`,
//! `host_statistics64` and the VM page size, all declared by the `libc` crate.
//!
//! `libc` marks its Mach declarations deprecated in favour of the `mach2` crate; they are
//! still the SDK's signatures, so this file allows the deprecation rather than adding a
//! second binding crate.

#![allow(deprecated)]

use std::mem;

use libc::{c_int, mach_msg_type_number_t, natural_t};

use super::parse::{CallError, CpuTicks, Timebase, VmStats};
use crate::model::GapReason;

fn kern_error(call: &str, code: c_int) -> CallError {
    CallError::new(
        GapReason::Error,
        format!("{call} failed: kern_return_t {code}"),
    )
}

/// The host port, looked up once per collector.
#[derive(Debug, Clone, Copy)]
pub struct HostPort(libc::mach_port_t);

impl HostPort {
    pub fn new() -> Self {
        // SAFETY: `mach_host_self` has no preconditions and returns a send right to the host.
        HostPort(unsafe { libc::mach_host_self() })
    }
}

/// Reads the Mach absolute time unit, or returns [`Timebase::IDENTITY`] where the call fails.
pub fn timebase() -> Timebase {
    let mut info = libc::mach_timebase_info { numer: 0, denom: 0 };
    // SAFETY: `info` is a valid, writable `mach_timebase_info`.
    let rc = unsafe { libc::mach_timebase_info(&mut info) };
    if rc != libc::KERN_SUCCESS || info.denom == 0 {
        return Timebase::IDENTITY;
    }
    Timebase {
        numer: info.numer,
        denom: info.denom,
    }
}

/// Returns the size of a VM page, the unit of `vm_statistics64`.
pub fn page_size() -> u64 {
    // SAFETY: `vm_page_size` is a constant the system sets before `main`.
    unsafe { libc::vm_page_size as u64 }
}

/// Tick counters of every CPU, numbered from 0.
pub fn cpu_ticks(host: HostPort) -> Result<Vec<CpuTicks>, CallError> {
    let mut cpu_count: natural_t = 0;
    let mut info: libc::processor_info_array_t = std::ptr::null_mut();
    let mut info_count: mach_msg_type_number_t = 0;
    // SAFETY: all three out-pointers are valid; on success the kernel maps an array of
    // `info_count` integers at `info`, which is released below.
    let rc = unsafe {
        libc::host_processor_info(
            host.0,
            libc::PROCESSOR_CPU_LOAD_INFO,
            &mut cpu_count,
            &mut info,
            &mut info_count,
        )
    };
    if rc != libc::KERN_SUCCESS {
        return Err(kern_error("host_processor_info", rc));
    }

    let states = libc::CPU_STATE_MAX as usize;
    let usable = (cpu_count as usize).min(info_count as usize / states);
    // SAFETY: the kernel returned `info_count` integers at `info`, and `usable * states`
    // does not exceed that.
    let values = unsafe { std::slice::from_raw_parts(info, usable * states) };
    let ticks = values
        .chunks_exact(states)
        .enumerate()
        .map(|(cpu, load)| CpuTicks {
            cpu: cpu as u32,
            user: u64::from(load[libc::CPU_STATE_USER as usize] as u32),
            system: u64::from(load[libc::CPU_STATE_SYSTEM as usize] as u32),
            idle: u64::from(load[libc::CPU_STATE_IDLE as usize] as u32),
            nice: u64::from(load[libc::CPU_STATE_NICE as usize] as u32),
        })
        .collect();

    let bytes = info_count as usize * mem::size_of::<libc::integer_t>();
    // SAFETY: `info` was mapped into this task by the call above with this size, and no
    // reference into it outlives this point (`values` was copied into `ticks`).
    unsafe {
        libc::vm_deallocate(libc::mach_task_self(), info as libc::vm_address_t, bytes);
    }
    Ok(ticks)
}

/// `host_statistics64(HOST_VM_INFO64)`.
pub fn vm_stats(host: HostPort) -> Result<VmStats, CallError> {
    // SAFETY: `vm_statistics64` is plain integers; all-zero bytes are valid.
    let mut stats: libc::vm_statistics64 = unsafe { mem::zeroed() };
    let mut count = libc::HOST_VM_INFO64_COUNT;
    // SAFETY: `stats` has room for `count` integers, and `count` passes that length to the kernel.
    let rc = unsafe {
        libc::host_statistics64(
            host.0,
            libc::HOST_VM_INFO64,
            (&mut stats as *mut libc::vm_statistics64).cast(),
            &mut count,
        )
    };
    if rc != libc::KERN_SUCCESS {
        return Err(kern_error("host_statistics64", rc));
    }
    Ok(VmStats {
        free_count: u64::from(stats.free_count),
        active_count: u64::from(stats.active_count),
        inactive_count: u64::from(stats.inactive_count),
        wire_count: u64::from(stats.wire_count),
        speculative_count: u64::from(stats.speculative_count),
        purgeable_count: u64::from(stats.purgeable_count),
        external_page_count: u64::from(stats.external_page_count),
        internal_page_count: u64::from(stats.internal_page_count),
        compressor_page_count: u64::from(stats.compressor_page_count),
        pageins: stats.pageins,
        pageouts: stats.pageouts,
        faults: stats.faults,
        cow_faults: stats.cow_faults,
        compressions: stats.compressions,
        decompressions: stats.decompressions,
        swapins: stats.swapins,
        swapouts: stats.swapouts,
    })
}
