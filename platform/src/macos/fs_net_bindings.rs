//! Thin wrappers over `getmntinfo`, the `NET_RT_IFLIST2` sysctl and `if_indextoname`.
//!
//! Interface counters come from `NET_RT_IFLIST2` rather than `getifaddrs`: the `if_data`
//! that `getifaddrs` returns has 32-bit counters that wrap at 4 GiB, while the
//! `RTM_IFINFO2` messages carry the 64-bit `if_data64`.

use std::mem;
use std::ptr;

use libc::{c_char, c_int, c_uint};

use super::parse::{self, CallError, StatfsRecord};

fn last_errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn chars(array: &[c_char]) -> String {
    let bytes: Vec<u8> = array.iter().map(|&c| c as u8).collect();
    parse::c_chars_to_string(&bytes)
}

/// Every mounted filesystem, without waiting on unresponsive network mounts (`MNT_NOWAIT`).
pub fn mounts() -> Result<Vec<StatfsRecord>, CallError> {
    let mut list: *mut libc::statfs = ptr::null_mut();
    // SAFETY: `list` is a valid out-pointer; on success it points at `count` entries in a
    // buffer owned by libc that stays valid until the next call in this thread.
    let count = unsafe { libc::getmntinfo(&mut list, libc::MNT_NOWAIT) };
    if count <= 0 || list.is_null() {
        return Err(CallError::from_errno("getmntinfo", last_errno()));
    }
    // SAFETY: as above, `list` points at `count` initialised `statfs` entries.
    let entries = unsafe { std::slice::from_raw_parts(list, count as usize) };
    Ok(entries.iter().map(statfs_record).collect())
}

fn statfs_record(entry: &libc::statfs) -> StatfsRecord {
    StatfsRecord {
        source: chars(&entry.f_mntfromname),
        mount_point: chars(&entry.f_mntonname),
        fs_type: chars(&entry.f_fstypename),
        block_size: u64::from(entry.f_bsize),
        blocks: entry.f_blocks,
        blocks_free: entry.f_bfree,
        blocks_available: entry.f_bavail,
        files: entry.f_files,
        files_free: entry.f_ffree,
    }
}

/// The raw buffer of `sysctl {CTL_NET, PF_ROUTE, 0, 0, NET_RT_IFLIST2, 0}`.
pub fn iflist2() -> Result<Vec<u8>, CallError> {
    let mut mib = [libc::CTL_NET, libc::PF_ROUTE, 0, 0, libc::NET_RT_IFLIST2, 0];
    let call = "sysctl NET_RT_IFLIST2";
    let mut size: usize = 0;
    // SAFETY: a null output buffer requests only the size, written to `size`.
    let rc = unsafe {
        libc::sysctl(
            mib.as_mut_ptr(),
            mib.len() as c_uint,
            ptr::null_mut(),
            &mut size,
            ptr::null_mut(),
            0,
        )
    };
    if rc != 0 {
        return Err(CallError::from_errno(call, last_errno()));
    }
    // Room for interfaces that appear between the two calls.
    size += size / 4 + 1024;
    let mut buffer = vec![0u8; size];
    // SAFETY: `buffer` is `size` writable bytes; the kernel writes at most that many and
    // stores the count written in `size`.
    let rc = unsafe {
        libc::sysctl(
            mib.as_mut_ptr(),
            mib.len() as c_uint,
            buffer.as_mut_ptr().cast(),
            &mut size,
            ptr::null_mut(),
            0,
        )
    };
    if rc != 0 {
        return Err(CallError::from_errno(call, last_errno()));
    }
    buffer.truncate(size);
    Ok(buffer)
}

/// The name of an interface by index, such as `en0`.
pub fn interface_name(index: u16) -> Option<String> {
    let mut name = [0 as c_char; libc::IF_NAMESIZE];
    // SAFETY: `name` has the `IF_NAMESIZE` bytes the call may write.
    let result = unsafe { libc::if_indextoname(c_uint::from(index), name.as_mut_ptr()) };
    if result.is_null() {
        return None;
    }
    Some(chars(&name))
}

// The byte offsets `parse_iflist2` reads must match the `libc` layout of `if_msghdr2`.
const _: () = assert!(mem::size_of::<libc::if_msghdr2>() == parse::ifmsg::SIZE);
const _: () = assert!(mem::offset_of!(libc::if_msghdr2, ifm_index) == parse::ifmsg::INDEX);
const _: () = assert!(mem::offset_of!(libc::if_msghdr2, ifm_snd_drops) == parse::ifmsg::SND_DROPS);
const _: () = assert!(mem::offset_of!(libc::if_msghdr2, ifm_data) == parse::ifmsg::DATA);
const _: () = assert!(mem::offset_of!(libc::if_data64, ifi_ipackets) == parse::ifmsg::IPACKETS);
const _: () = assert!(mem::offset_of!(libc::if_data64, ifi_ibytes) == parse::ifmsg::IBYTES);
const _: () = assert!(mem::offset_of!(libc::if_data64, ifi_iqdrops) == parse::ifmsg::IQDROPS);
const _: () = assert!(libc::RTM_IFINFO2 == parse::RTM_IFINFO2 as c_int);
