//! Thin FFI over IOKit for block-storage statistics, through the `objc2-io-kit` and
//! `objc2-core-foundation` bindings.
//!
//! [`drivers`] lists every `IOBlockStorageDriver` registered in the IOKit service plane and
//! copies its "Statistics" counters and the BSD name of its child `IOMedia` into a
//! [`DriverRecord`]. IOKit object handles are released by [`Object`] on drop; Core Foundation
//! objects come back as `CFRetained` and are released when dropped.

use std::collections::BTreeMap;
use std::ffi::CStr;

use objc2_core_foundation::{kCFAllocatorDefault, CFDictionary, CFNumber, CFRetained};
use objc2_core_foundation::{CFString, CFType};
use objc2_io_kit::{
    io_iterator_t, io_object_t, kIOServicePlane, IOIteratorIsValid, IOIteratorNext,
    IOIteratorReset, IOObjectConformsTo, IOObjectRelease, IORegistryEntryCreateCFProperty,
    IORegistryEntryGetChildIterator, IOServiceGetMatchingServices, IOServiceMatching,
};

use super::block_storage::{self, DriverRecord, BSD_NAME_KEY, STATISTICS_KEY, STATISTICS_KEYS};
use super::parse::CallError;
use crate::model::GapReason;

/// The default IOKit main port. Apple documents `kIOMainPortDefault` as a synonym for NULL,
/// and the named constant is not linked because it first appeared in macOS 12.
const DEFAULT_MAIN_PORT: libc::mach_port_t = 0;

/// How often a listing restarts when the registry changes under it (a disk attached or
/// detached) before the call is reported as failed.
const MAX_LISTING_ATTEMPTS: usize = 3;

/// An IOKit object handle that is released on drop.
struct Object(io_object_t);

impl Object {
    /// Takes ownership of a handle, or returns `None` for the null handle.
    fn new(handle: io_object_t) -> Option<Self> {
        (handle != 0).then_some(Object(handle))
    }

    /// Returns the next object of this iterator, or `None` at the end.
    fn next(&self) -> Option<Object> {
        Object::new(IOIteratorNext(self.0))
    }

    fn conforms_to(&self, class: &CStr) -> bool {
        // SAFETY: `self.0` is a live handle, and IOKit only reads `class` as a NUL-terminated
        // string, although the binding types it as a mutable 128-byte `io_name_t`.
        unsafe { IOObjectConformsTo(self.0, class.as_ptr().cast_mut().cast()) }
    }

    /// Copies one registry property of this entry into a Core Foundation object.
    fn property(&self, key: &'static str) -> Option<CFRetained<CFType>> {
        let key = CFString::from_static_str(key);
        // SAFETY: `self.0` is a live registry entry handle, `key` is a valid CFString that
        // outlives the call, and `kCFAllocatorDefault` is the default allocator. The result
        // is a new reference that `CFRetained` releases.
        unsafe { IORegistryEntryCreateCFProperty(self.0, Some(&key), kCFAllocatorDefault, 0) }
    }
}

impl Drop for Object {
    fn drop(&mut self) {
        IOObjectRelease(self.0);
    }
}

/// Reads every block-storage driver with its statistics and device name.
pub fn drivers() -> Result<Vec<DriverRecord>, CallError> {
    let Some(iterator) = matching_services(c"IOBlockStorageDriver")? else {
        return Ok(Vec::new());
    };

    for _ in 0..MAX_LISTING_ATTEMPTS {
        let mut records = Vec::new();
        while let Some(driver) = iterator.next() {
            records.push(driver_record(&driver));
        }
        if IOIteratorIsValid(iterator.0) {
            return Ok(records);
        }
        IOIteratorReset(iterator.0);
    }

    let detail = "IOBlockStorageDriver listing was invalidated by registry changes each time";
    Err(CallError::new(GapReason::Error, detail))
}

/// Returns an iterator over the registered services of `class`, or `None` when there is none.
fn matching_services(class: &CStr) -> Result<Option<Object>, CallError> {
    let subject = class.to_string_lossy();

    // SAFETY: `class` is a NUL-terminated string that outlives the call. The result is a new
    // reference that `CFRetained` owns.
    let Some(matching) = (unsafe { IOServiceMatching(class.as_ptr()) }) else {
        let detail = format!("IOServiceMatching({subject}) returned NULL");
        return Err(CallError::new(GapReason::Error, detail));
    };
    let matching = CFRetained::<CFDictionary>::from(&*matching);

    let mut iterator: io_iterator_t = 0;
    // SAFETY: the call consumes the one reference held by `matching`, which the binding hands
    // over, and writes a handle to `iterator`, a valid local.
    let status =
        unsafe { IOServiceGetMatchingServices(DEFAULT_MAIN_PORT, Some(matching), &mut iterator) };
    if status != libc::KERN_SUCCESS {
        let detail =
            format!("IOServiceGetMatchingServices({subject}) failed: kern_return {status:#x}");
        return Err(CallError::new(
            block_storage::kern_return_reason(status),
            detail,
        ));
    }
    Ok(Object::new(iterator))
}

fn driver_record(driver: &Object) -> DriverRecord {
    DriverRecord {
        bsd_name: media_bsd_name(driver),
        statistics: statistics(driver),
    }
}

/// Copies the known counters of the driver's "Statistics" dictionary.
fn statistics(driver: &Object) -> Option<BTreeMap<String, u64>> {
    let dictionary = driver.property(STATISTICS_KEY)?;
    let dictionary = dictionary.downcast::<CFDictionary>().ok()?;
    // SAFETY: every value of a CFDictionary is a CFType, and the dictionary is only read
    // through `get`, which looks keys up with the dictionary's own callbacks and retains the
    // value. Values are checked with `downcast` before use.
    let dictionary: &CFDictionary<CFString, CFType> = unsafe { dictionary.cast_unchecked() };

    let mut counters = BTreeMap::new();
    for key in STATISTICS_KEYS {
        if let Some(value) = counter(dictionary, key) {
            counters.insert(key.to_string(), value);
        }
    }
    Some(counters)
}

/// Reads one counter. IOKit stores the kernel's unsigned 64-bit counters as signed 64-bit
/// CFNumbers, so the bits are reinterpreted rather than range-checked.
fn counter(dictionary: &CFDictionary<CFString, CFType>, key: &'static str) -> Option<u64> {
    let value = dictionary.get(&CFString::from_static_str(key))?;
    let number = value.downcast::<CFNumber>().ok()?;
    number.as_i64().map(|value| value as u64)
}

/// Reads the BSD name of the first child `IOMedia` of a driver, which is the whole disk.
fn media_bsd_name(driver: &Object) -> Option<String> {
    let mut children: io_iterator_t = 0;
    // SAFETY: `driver.0` is a live registry entry handle, IOKit only reads the plane name as
    // a NUL-terminated string, and the iterator handle is written to a valid local.
    let status = unsafe {
        IORegistryEntryGetChildIterator(
            driver.0,
            kIOServicePlane.as_ptr().cast_mut().cast(),
            &mut children,
        )
    };
    if status != libc::KERN_SUCCESS {
        return None;
    }
    let children = Object::new(children)?;

    while let Some(child) = children.next() {
        if child.conforms_to(c"IOMedia") {
            let name = child.property(BSD_NAME_KEY)?;
            return name
                .downcast::<CFString>()
                .ok()
                .map(|name| name.to_string());
        }
    }
    None
}
