//! Pure conversion of IOKit block-storage statistics into per-device disk activity.
//!
//! Every `IOBlockStorageDriver` in the IOKit registry publishes a "Statistics" dictionary of
//! counters since the driver attached, and its child `IOMedia` (the whole disk) carries the
//! BSD name such as `disk0`. The bindings copy both into a [`DriverRecord`], which is also the
//! JSON kept as raw evidence. The functions here turn records into [`DiskCounters`] and two
//! samples of counters into [`DiskIo`]. They use no Apple-only types, so they compile and are
//! unit-tested on every host.

// On Linux only the tests call these helpers.
#![cfg_attr(not(target_os = "macos"), allow(dead_code))]

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::{DiskIo, GapReason};

/// The IOKit class whose instances carry the statistics.
pub const DRIVER_CLASS: &str = "IOBlockStorageDriver";
/// The registry property of a driver that contains its counters.
pub const STATISTICS_KEY: &str = "Statistics";
/// The registry property of an `IOMedia` that contains its device name.
pub const BSD_NAME_KEY: &str = "BSD Name";

// Counter keys from the macOS SDK's `IOKit/storage/IOBlockStorageDriver.h`. Byte and
// operation counts are totals since the driver attached, and times are in nanoseconds.
pub const BYTES_READ_KEY: &str = "Bytes (Read)";
pub const BYTES_WRITTEN_KEY: &str = "Bytes (Write)";
pub const READS_KEY: &str = "Operations (Read)";
pub const WRITES_KEY: &str = "Operations (Write)";
pub const READ_TIME_KEY: &str = "Total Time (Read)";
pub const WRITE_TIME_KEY: &str = "Total Time (Write)";

/// Every counter key that the bindings copy into the raw evidence. Only the first six feed
/// the snapshot, and errors, retries and latency are kept for the reader of the bundle.
pub const STATISTICS_KEYS: [&str; 12] = [
    BYTES_READ_KEY,
    BYTES_WRITTEN_KEY,
    READS_KEY,
    WRITES_KEY,
    READ_TIME_KEY,
    WRITE_TIME_KEY,
    "Errors (Read)",
    "Errors (Write)",
    "Latency Time (Read)",
    "Latency Time (Write)",
    "Retries (Read)",
    "Retries (Write)",
];

// `kern_return_t` values from the macOS SDK's `IOKit/IOReturn.h`.
const IO_RETURN_NOT_PRIVILEGED: i32 = 0xe000_02c1_u32 as i32;
const IO_RETURN_UNSUPPORTED: i32 = 0xe000_02c7_u32 as i32;
const IO_RETURN_NOT_PERMITTED: i32 = 0xe000_02e2_u32 as i32;

/// One `IOBlockStorageDriver` as the bindings read it from the registry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriverRecord {
    /// The BSD name of the driver's child `IOMedia`; `None` for a driver without media, such
    /// as an empty card reader.
    pub bsd_name: Option<String>,
    /// The counters of the "Statistics" dictionary that were present, by key; `None` when the
    /// driver published no such dictionary.
    pub statistics: Option<BTreeMap<String, u64>>,
}

/// The counters of one device at one instant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiskCounters {
    pub device: String,
    pub reads: u64,
    pub writes: u64,
    pub read_bytes: u64,
    pub written_bytes: u64,
    /// Time spent on all reads since the driver attached, or `None` where the driver left it out.
    pub read_time_nanos: Option<u64>,
    pub write_time_nanos: Option<u64>,
}

/// A driver record that lacks a value the snapshot needs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("IOBlockStorageDriver of {device} has no \"{missing}\" value")]
pub struct RecordError {
    pub device: String,
    /// The missing dictionary or counter key.
    pub missing: &'static str,
}

/// Maps the `kern_return_t` of a failed IOKit call to the reason recorded in a gap.
pub fn kern_return_reason(code: i32) -> GapReason {
    match code {
        IO_RETURN_NOT_PRIVILEGED | IO_RETURN_NOT_PERMITTED => GapReason::PermissionDenied,
        IO_RETURN_UNSUPPORTED => GapReason::Unsupported,
        _ => GapReason::Error,
    }
}

/// Converts driver records into per-device counters, ordered by device name.
///
/// Drivers without media are skipped, because they have no device to report. A driver whose
/// statistics lack a byte or operation count yields an error instead of counters. When two
/// drivers report the same BSD name, the first one is kept.
pub fn disk_counters(records: &[DriverRecord]) -> (Vec<DiskCounters>, Vec<RecordError>) {
    let mut devices = BTreeMap::new();
    let mut errors = Vec::new();

    for record in records {
        let Some(device) = &record.bsd_name else {
            continue;
        };
        if devices.contains_key(device) {
            continue;
        }
        match counters(device, record.statistics.as_ref()) {
            Ok(counters) => {
                devices.insert(device.clone(), counters);
            }
            Err(error) => errors.push(error),
        }
    }

    (devices.into_values().collect(), errors)
}

fn counters(
    device: &str,
    statistics: Option<&BTreeMap<String, u64>>,
) -> Result<DiskCounters, RecordError> {
    let missing = |key| RecordError {
        device: device.to_string(),
        missing: key,
    };
    let statistics = statistics.ok_or_else(|| missing(STATISTICS_KEY))?;
    let required = |key| statistics.get(key).copied().ok_or_else(|| missing(key));

    Ok(DiskCounters {
        device: device.to_string(),
        reads: required(READS_KEY)?,
        writes: required(WRITES_KEY)?,
        read_bytes: required(BYTES_READ_KEY)?,
        written_bytes: required(BYTES_WRITTEN_KEY)?,
        read_time_nanos: statistics.get(READ_TIME_KEY).copied(),
        write_time_nanos: statistics.get(WRITE_TIME_KEY).copied(),
    })
}

/// Derives per-device rates over `interval_secs`. Devices are matched by name, and a device
/// missing from either sample is left out.
pub fn disk_io(prev: &[DiskCounters], cur: &[DiskCounters], interval_secs: f64) -> Vec<DiskIo> {
    if interval_secs <= 0.0 {
        return Vec::new();
    }
    cur.iter()
        .filter_map(|device| {
            let before = prev.iter().find(|p| p.device == device.device)?;
            Some(device_io(before, device, interval_secs))
        })
        .collect()
}

/// Computes one device's `iostat -x` columns. Every delta is clamped at zero, so counters
/// that restarted (a disk detached and attached again under the same name) show no activity
/// instead of a huge rate.
fn device_io(prev: &DiskCounters, cur: &DiskCounters, secs: f64) -> DiskIo {
    let reads = cur.reads.saturating_sub(prev.reads);
    let writes = cur.writes.saturating_sub(prev.writes);
    let read_bytes = cur.read_bytes.saturating_sub(prev.read_bytes);
    let written_bytes = cur.written_bytes.saturating_sub(prev.written_bytes);

    DiskIo {
        device: cur.device.clone(),
        reads_per_sec: reads as f64 / secs,
        writes_per_sec: writes as f64 / secs,
        read_kb_per_sec: read_bytes as f64 / 1024.0 / secs,
        write_kb_per_sec: written_bytes as f64 / 1024.0 / secs,
        read_await_ms: await_ms(prev.read_time_nanos, cur.read_time_nanos, reads),
        write_await_ms: await_ms(prev.write_time_nanos, cur.write_time_nanos, writes),
        // NOTE: the statistics contain no busy time and no queue depth, so `%util` and the
        // requests in flight stay unknown on macOS.
        util_pct: None,
        in_flight: None,
    }
}

/// Computes milliseconds per request from two total-time readings in nanoseconds. The result
/// is 0 when there was no request, as iostat shows it, and `None` when either reading is absent.
fn await_ms(before: Option<u64>, after: Option<u64>, requests: u64) -> Option<f64> {
    let total_nanos = after?.saturating_sub(before?);
    if requests == 0 {
        return Some(0.0);
    }
    Some(total_nanos as f64 / requests as f64 / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn record(device: Option<&str>, values: &[(&str, u64)]) -> DriverRecord {
        let statistics = values
            .iter()
            .map(|(key, value)| (key.to_string(), *value))
            .collect();
        DriverRecord {
            bsd_name: device.map(str::to_string),
            statistics: Some(statistics),
        }
    }

    fn full_record(device: &str, ops: [u64; 2], bytes: [u64; 2], nanos: [u64; 2]) -> DriverRecord {
        record(
            Some(device),
            &[
                (READS_KEY, ops[0]),
                (WRITES_KEY, ops[1]),
                (BYTES_READ_KEY, bytes[0]),
                (BYTES_WRITTEN_KEY, bytes[1]),
                (READ_TIME_KEY, nanos[0]),
                (WRITE_TIME_KEY, nanos[1]),
                ("Errors (Read)", 0),
            ],
        )
    }

    fn counters_of(records: &[DriverRecord]) -> Vec<DiskCounters> {
        let (counters, errors) = disk_counters(records);
        assert_eq!(errors, Vec::new());
        counters
    }

    #[test]
    fn record_becomes_counters() {
        let records = [full_record(
            "disk0",
            [10, 20],
            [4096, 8192],
            [5_000_000, 7_000_000],
        )];
        let counters = counters_of(&records);

        assert_eq!(
            counters,
            vec![DiskCounters {
                device: "disk0".to_string(),
                reads: 10,
                writes: 20,
                read_bytes: 4096,
                written_bytes: 8192,
                read_time_nanos: Some(5_000_000),
                write_time_nanos: Some(7_000_000),
            }]
        );
    }

    #[test]
    fn counters_are_ordered_by_device() {
        let records = [
            full_record("disk4", [1, 1], [1, 1], [1, 1]),
            full_record("disk0", [2, 2], [2, 2], [2, 2]),
        ];
        let devices: Vec<_> = counters_of(&records)
            .into_iter()
            .map(|c| c.device)
            .collect();
        assert_eq!(devices, ["disk0", "disk4"]);
    }

    #[test]
    fn driver_without_media_is_skipped() {
        let mut empty_reader = full_record("unused", [0, 0], [0, 0], [0, 0]);
        empty_reader.bsd_name = None;
        let records = [empty_reader, full_record("disk0", [1, 1], [1, 1], [1, 1])];

        let devices: Vec<_> = counters_of(&records)
            .into_iter()
            .map(|c| c.device)
            .collect();
        assert_eq!(devices, ["disk0"]);
    }

    #[test]
    fn duplicate_bsd_name_keeps_first() {
        let records = [
            full_record("disk2", [5, 0], [0, 0], [0, 0]),
            full_record("disk2", [9, 0], [0, 0], [0, 0]),
        ];
        let counters = counters_of(&records);
        assert_eq!(counters.len(), 1);
        assert_eq!(counters[0].reads, 5);
    }

    #[test]
    fn missing_statistics_is_an_error() {
        let records = [DriverRecord {
            bsd_name: Some("disk3".to_string()),
            statistics: None,
        }];
        let (counters, errors) = disk_counters(&records);

        assert!(counters.is_empty());
        assert_eq!(
            errors,
            vec![RecordError {
                device: "disk3".to_string(),
                missing: STATISTICS_KEY,
            }]
        );
        assert_eq!(
            errors[0].to_string(),
            "IOBlockStorageDriver of disk3 has no \"Statistics\" value"
        );
    }

    #[test]
    fn missing_byte_count_is_an_error() {
        let records = [record(
            Some("disk1"),
            &[(READS_KEY, 1), (WRITES_KEY, 1), (BYTES_READ_KEY, 512)],
        )];
        let (counters, errors) = disk_counters(&records);

        assert!(counters.is_empty());
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].missing, BYTES_WRITTEN_KEY);
    }

    #[test]
    fn missing_times_leave_await_unknown() {
        let counts = |ops, bytes| {
            [
                (READS_KEY, ops),
                (WRITES_KEY, ops),
                (BYTES_READ_KEY, bytes),
                (BYTES_WRITTEN_KEY, 0),
            ]
        };
        let before = counters_of(&[record(Some("disk5"), &counts(4, 0))]);
        let after = counters_of(&[record(Some("disk5"), &counts(8, 2048))]);
        let io = disk_io(&before, &after, 1.0);

        assert_eq!(io.len(), 1);
        assert_eq!(io[0].reads_per_sec, 4.0);
        assert_eq!(io[0].read_kb_per_sec, 2.0);
        assert_eq!(io[0].read_await_ms, None);
        assert_eq!(io[0].write_await_ms, None);
    }

    #[test]
    fn disk_io_computes_iostat_columns() {
        let before = counters_of(&[full_record("disk0", [100, 200], [0, 0], [0, 0])]);
        let after = counters_of(&[full_record(
            "disk0",
            [300, 600],
            [2 * 1024 * 1024, 4 * 1024 * 1024],
            [400_000_000, 4_000_000_000],
        )]);
        let io = disk_io(&before, &after, 2.0);

        assert_eq!(
            io,
            vec![DiskIo {
                device: "disk0".to_string(),
                reads_per_sec: 100.0,
                writes_per_sec: 200.0,
                read_kb_per_sec: 1024.0,
                write_kb_per_sec: 2048.0,
                read_await_ms: Some(2.0),
                write_await_ms: Some(10.0),
                util_pct: None,
                in_flight: None,
            }]
        );
    }

    #[test]
    fn idle_device_has_zero_await() {
        let sample = counters_of(&[full_record("disk0", [7, 7], [7, 7], [7, 7])]);
        let io = disk_io(&sample, &sample, 1.0);

        assert_eq!(io[0].reads_per_sec, 0.0);
        assert_eq!(io[0].read_await_ms, Some(0.0));
        assert_eq!(io[0].write_await_ms, Some(0.0));
    }

    #[test]
    fn restarted_counters_show_no_activity() {
        let before = counters_of(&[full_record("disk6", [50, 50], [9000, 9000], [900, 900])]);
        let after = counters_of(&[full_record("disk6", [2, 60], [100, 9100], [10, 1900])]);
        let io = disk_io(&before, &after, 1.0);

        assert_eq!(io[0].reads_per_sec, 0.0);
        assert_eq!(io[0].read_kb_per_sec, 0.0);
        assert_eq!(io[0].read_await_ms, Some(0.0));
        assert_eq!(io[0].writes_per_sec, 10.0);
        assert_eq!(io[0].write_await_ms, Some(0.0001));
    }

    #[test]
    fn device_in_one_sample_is_left_out() {
        let before = counters_of(&[full_record("disk0", [1, 1], [1, 1], [1, 1])]);
        let after = counters_of(&[
            full_record("disk0", [2, 2], [2, 2], [2, 2]),
            full_record("disk4", [9, 9], [9, 9], [9, 9]),
        ]);
        let devices: Vec<_> = disk_io(&before, &after, 1.0)
            .into_iter()
            .map(|io| io.device)
            .collect();
        assert_eq!(devices, ["disk0"]);
    }

    #[test]
    fn zero_interval_yields_nothing() {
        let sample = counters_of(&[full_record("disk0", [1, 1], [1, 1], [1, 1])]);
        assert!(disk_io(&sample, &sample, 0.0).is_empty());
    }

    #[test]
    fn kern_return_maps_to_gap_reason() {
        assert_eq!(
            kern_return_reason(IO_RETURN_NOT_PRIVILEGED),
            GapReason::PermissionDenied
        );
        assert_eq!(
            kern_return_reason(IO_RETURN_NOT_PERMITTED),
            GapReason::PermissionDenied
        );
        assert_eq!(
            kern_return_reason(IO_RETURN_UNSUPPORTED),
            GapReason::Unsupported
        );
        // kIOReturnNoMemory
        assert_eq!(kern_return_reason(0xe000_02bd_u32 as i32), GapReason::Error);
    }

    #[test]
    fn record_json_round_trips() {
        let original = full_record("disk0", [1, 2], [3, 4], [5, 6]);
        let json = serde_json::to_string(&original).unwrap();
        let parsed: DriverRecord = serde_json::from_str(&json).unwrap();
        assert_eq!(parsed, original);
    }

    proptest! {
        #[test]
        fn disk_io_rates_are_finite_and_not_negative(
            a in proptest::array::uniform6(any::<u64>()),
            b in proptest::array::uniform6(any::<u64>()),
            secs in 0.001f64..1000.0,
        ) {
            let before = counters_of(&[full_record("disk0", [a[0], a[1]], [a[2], a[3]], [a[4], a[5]])]);
            let after = counters_of(&[full_record("disk0", [b[0], b[1]], [b[2], b[3]], [b[4], b[5]])]);
            let io = disk_io(&before, &after, secs);

            prop_assert_eq!(io.len(), 1);
            let rates = [
                io[0].reads_per_sec,
                io[0].writes_per_sec,
                io[0].read_kb_per_sec,
                io[0].write_kb_per_sec,
                io[0].read_await_ms.unwrap(),
                io[0].write_await_ms.unwrap(),
            ];
            for rate in rates {
                prop_assert!(rate.is_finite() && rate >= 0.0, "rate {}", rate);
            }
        }
    }
}
