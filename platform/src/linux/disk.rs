//! Block device activity from `/proc/diskstats`, as `iostat -x` computes it.
//!
//! A line has 14 fields since Linux 2.6.25, 18 since 4.18 (discards) and 20 since 5.5
//! (flushes); procfs-core parses those. Kernels before 2.6.25 print partitions with only 7
//! fields (reads, sectors read, writes, sectors written), which procfs-core rejects, so those
//! lines go through [`parse_short_line`] and their times stay unknown. A bad line is recorded
//! as a gap and the other lines are kept.

use procfs_core::DiskStat;

use super::Context;
use crate::gaps::GapLog;
use crate::model::{DiskIo, GapReason};
use crate::raw::Reader;
use crate::Scope;

const COLLECTOR: &str = "disks";
const DISKSTATS: &str = "diskstats";

/// Bytes per sector in `/proc/diskstats`, whatever the device's own sector size.
const SECTOR_BYTES: f64 = 512.0;

/// The diskstats lines of one sample, in file order.
#[derive(Debug, Clone, Default)]
pub struct DiskSample {
    pub devices: Vec<DiskCounters>,
}

/// The counters of one device since boot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiskCounters {
    pub major: i32,
    pub minor: i32,
    pub name: String,
    pub reads: u64,
    pub sectors_read: u64,
    pub writes: u64,
    pub sectors_written: u64,
    /// The times and the queue are `None` on a 7-field line.
    pub times: Option<DiskTimes>,
}

/// The time counters of a full diskstats line, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiskTimes {
    pub read_ms: u64,
    pub write_ms: u64,
    pub in_flight: u64,
    /// Time the device had I/O in flight (`io_ticks`), the base of `%util`.
    pub io_ms: u64,
}

/// Reads `/proc/diskstats`. Both scopes read it: its counters are what rates need.
pub fn read(r: &mut Reader, _ctx: &Context, _scope: Scope, gaps: &mut GapLog) -> DiskSample {
    let Some(bytes) = gaps.value(COLLECTOR, r.proc(DISKSTATS)) else {
        return DiskSample::default();
    };
    parse_diskstats(bytes, gaps)
}

/// Parses the whole file, keeping every good line and recording a gap for each bad one.
pub fn parse_diskstats(bytes: &[u8], gaps: &mut GapLog) -> DiskSample {
    let mut devices = Vec::new();
    for (number, line) in bytes.split(|&b| b == b'\n').enumerate() {
        let Ok(line) = std::str::from_utf8(line) else {
            record_bad_line(gaps, number, "line is not valid UTF-8");
            continue;
        };
        if line.trim().is_empty() {
            continue;
        }
        match parse_line(line) {
            Ok(device) => devices.push(device),
            Err(detail) => record_bad_line(gaps, number, &detail),
        }
    }
    DiskSample { devices }
}

fn record_bad_line(gaps: &mut GapLog, number: usize, detail: &str) {
    gaps.push(
        COLLECTOR,
        format!("proc/{DISKSTATS}:{}", number + 1),
        GapReason::Invalid,
        detail,
    );
}

/// Parses one line of any of the four lengths.
pub fn parse_line(line: &str) -> Result<DiskCounters, String> {
    let fields = line.split_whitespace().count();
    if fields == 7 {
        return parse_short_line(line);
    }
    if fields < 14 {
        return Err(format!("expected 7, 14, 18 or 20 fields, found {fields}"));
    }
    let stat = DiskStat::from_line(line).map_err(|e| e.to_string())?;
    Ok(DiskCounters {
        major: stat.major,
        minor: stat.minor,
        name: stat.name,
        reads: stat.reads,
        sectors_read: stat.sectors_read,
        writes: stat.writes,
        sectors_written: stat.sectors_written,
        times: Some(DiskTimes {
            read_ms: stat.time_reading,
            write_ms: stat.time_writing,
            in_flight: stat.in_progress,
            io_ms: stat.time_in_progress,
        }),
    })
}

/// Parses a 7-field partition line of kernels before 2.6.25:
/// `major minor name reads sectors_read writes sectors_written`.
pub fn parse_short_line(line: &str) -> Result<DiskCounters, String> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let [major, minor, name, reads, sectors_read, writes, sectors_written] = fields[..] else {
        return Err(format!("expected 7 fields, found {}", fields.len()));
    };
    let number = |field: &str| {
        field
            .parse::<u64>()
            .map_err(|_| format!("field {field:?} is not a number"))
    };
    let id = |field: &str| {
        field
            .parse::<i32>()
            .map_err(|_| format!("device number {field:?} is not a number"))
    };
    Ok(DiskCounters {
        major: id(major)?,
        minor: id(minor)?,
        name: name.to_string(),
        reads: number(reads)?,
        sectors_read: number(sectors_read)?,
        writes: number(writes)?,
        sectors_written: number(sectors_written)?,
        times: None,
    })
}

/// Derives per-device rates over `secs`. Devices are matched by name; a device missing from
/// either sample is left out. RAM disks and loop devices that never did any I/O are left out,
/// as they only clutter the table.
pub fn derive(prev: &DiskSample, cur: &DiskSample, secs: f64) -> Vec<DiskIo> {
    if secs <= 0.0 {
        return Vec::new();
    }
    cur.devices
        .iter()
        .filter(|device| !is_idle_virtual(device))
        .filter_map(|device| {
            let before = prev.devices.iter().find(|p| p.name == device.name)?;
            Some(derive_device(before, device, secs))
        })
        .collect()
}

fn is_idle_virtual(device: &DiskCounters) -> bool {
    let virtual_device = device.name.starts_with("ram") || device.name.starts_with("loop");
    virtual_device && device.reads == 0 && device.writes == 0
}

/// Computes one device's `iostat -x` columns. Every delta is clamped at zero, so a counter
/// that wrapped or went backwards shows no activity instead of a huge rate.
fn derive_device(prev: &DiskCounters, cur: &DiskCounters, secs: f64) -> DiskIo {
    let reads = cur.reads.saturating_sub(prev.reads);
    let writes = cur.writes.saturating_sub(prev.writes);
    let sectors_read = cur.sectors_read.saturating_sub(prev.sectors_read);
    let sectors_written = cur.sectors_written.saturating_sub(prev.sectors_written);
    let times = match (prev.times, cur.times) {
        (Some(before), Some(after)) => Some((before, after)),
        _ => None,
    };

    DiskIo {
        device: cur.name.clone(),
        reads_per_sec: reads as f64 / secs,
        writes_per_sec: writes as f64 / secs,
        read_kb_per_sec: sectors_read as f64 * SECTOR_BYTES / 1024.0 / secs,
        write_kb_per_sec: sectors_written as f64 * SECTOR_BYTES / 1024.0 / secs,
        read_await_ms: times.map(|(b, a)| average_ms(a.read_ms.saturating_sub(b.read_ms), reads)),
        write_await_ms: times
            .map(|(b, a)| average_ms(a.write_ms.saturating_sub(b.write_ms), writes)),
        util_pct: times.map(|(b, a)| util_pct(a.io_ms.saturating_sub(b.io_ms), secs)),
        in_flight: cur.times.map(|t| t.in_flight),
    }
}

/// Milliseconds per request; 0 when there was no request, as iostat shows it.
fn average_ms(total_ms: u64, requests: u64) -> f64 {
    if requests == 0 {
        return 0.0;
    }
    total_ms as f64 / requests as f64
}

/// Busy time as a share of the interval, capped at 100 % as iostat caps it: `io_ticks` is
/// updated in jiffies and can run slightly ahead of the wall-clock interval.
fn util_pct(busy_ms: u64, secs: f64) -> f64 {
    (busy_ms as f64 / (secs * 1000.0) * 100.0).min(100.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LINE_7: &str = "   3    1 hda1 35486 38030 38030 38030";
    const LINE_14: &str = "   8       0 sda 1000 20 80000 500 2000 40 160000 3000 2 1200 3500";
    const LINE_18: &str =
        " 259       0 nvme0n1 1000 20 80000 500 2000 40 160000 3000 0 1200 3500 5 0 40 1";
    const LINE_20: &str =
        " 254       0 vda 45413 6615 4024026 39779 5276 24670 4610856 12803 0 6080 53021 4406 \
         29 328736 424 357 14";

    fn device(line: &str) -> DiskCounters {
        parse_line(line).unwrap()
    }

    #[test]
    fn seven_field_line_has_counts_without_times() {
        let disk = device(LINE_7);
        assert_eq!(disk.major, 3);
        assert_eq!(disk.minor, 1);
        assert_eq!(disk.name, "hda1");
        assert_eq!(disk.reads, 35486);
        assert_eq!(disk.sectors_read, 38030);
        assert_eq!(disk.writes, 38030);
        assert_eq!(disk.sectors_written, 38030);
        assert_eq!(disk.times, None);
    }

    #[test]
    fn fourteen_field_line_has_times() {
        let disk = device(LINE_14);
        assert_eq!(disk.name, "sda");
        assert_eq!(disk.reads, 1000);
        assert_eq!(disk.sectors_read, 80000);
        assert_eq!(disk.writes, 2000);
        assert_eq!(disk.sectors_written, 160000);
        let times = disk.times.unwrap();
        assert_eq!(times.read_ms, 500);
        assert_eq!(times.write_ms, 3000);
        assert_eq!(times.in_flight, 2);
        assert_eq!(times.io_ms, 1200);
    }

    #[test]
    fn eighteen_field_line_parses() {
        let disk = device(LINE_18);
        assert_eq!(disk.name, "nvme0n1");
        assert_eq!(disk.major, 259);
        assert_eq!(disk.times.unwrap().io_ms, 1200);
    }

    #[test]
    fn twenty_field_line_parses() {
        let disk = device(LINE_20);
        assert_eq!(disk.name, "vda");
        assert_eq!(disk.reads, 45413);
        assert_eq!(disk.sectors_written, 4610856);
        let times = disk.times.unwrap();
        assert_eq!(times.read_ms, 39779);
        assert_eq!(times.write_ms, 12803);
        assert_eq!(times.in_flight, 0);
        assert_eq!(times.io_ms, 6080);
    }

    #[test]
    fn short_or_bad_lines_are_rejected() {
        assert!(parse_line("8 0 sda 1 2 3").is_err());
        assert!(parse_line("8 0 sda 1 2 3 4 5 6 7 8 9").is_err());
        assert!(parse_line("8 0 sda 1 2 x 4").is_err());
        assert!(parse_line("8 0 sda 1 2 3 4 5 6 7 8 9 10 -1").is_err());
    }

    #[test]
    fn bad_line_becomes_gap() {
        let text = format!("{LINE_14}\ngarbage here\n{LINE_7}\n\n");
        let mut gaps = GapLog::default();
        let sample = parse_diskstats(text.as_bytes(), &mut gaps);

        let names: Vec<&str> = sample.devices.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["sda", "hda1"]);
        let gaps = gaps.into_vec();
        assert_eq!(gaps.len(), 1);
        assert_eq!(gaps[0].subject, "proc/diskstats:2");
        assert_eq!(gaps[0].reason, GapReason::Invalid);
    }

    fn sample(lines: &[&str]) -> DiskSample {
        DiskSample {
            devices: lines.iter().map(|line| device(line)).collect(),
        }
    }

    #[test]
    fn derive_computes_iostat_columns() {
        let before = sample(&["8 0 sda 1000 20 80000 500 2000 40 160000 3000 0 1200 3500"]);
        let after = sample(&["8 0 sda 1100 20 81024 900 2050 40 162048 3500 3 1700 4400"]);
        let disks = derive(&before, &after, 2.0);

        assert_eq!(disks.len(), 1);
        let sda = &disks[0];
        assert_eq!(sda.device, "sda");
        assert_eq!(sda.reads_per_sec, 50.0);
        assert_eq!(sda.writes_per_sec, 25.0);
        assert_eq!(sda.read_kb_per_sec, 256.0);
        assert_eq!(sda.write_kb_per_sec, 512.0);
        assert_eq!(sda.read_await_ms, Some(4.0));
        assert_eq!(sda.write_await_ms, Some(10.0));
        assert_eq!(sda.util_pct, Some(25.0));
        assert_eq!(sda.in_flight, Some(3));
    }

    #[test]
    fn derive_clamps_backwards_counters() {
        let before = sample(&["8 0 sda 1000 20 80000 500 2000 40 160000 3000 0 1200 3500"]);
        let after = sample(&["8 0 sda 10 20 800 5 2001 40 160008 3010 0 12 3500"]);
        let sda = &derive(&before, &after, 1.0)[0];

        assert_eq!(sda.reads_per_sec, 0.0);
        assert_eq!(sda.read_kb_per_sec, 0.0);
        assert_eq!(sda.read_await_ms, Some(0.0));
        assert_eq!(sda.writes_per_sec, 1.0);
        assert_eq!(sda.write_await_ms, Some(10.0));
        assert_eq!(sda.util_pct, Some(0.0));
    }

    #[test]
    fn derive_caps_util_at_hundred() {
        let before = sample(&["8 0 sda 0 0 0 0 0 0 0 0 0 0 0"]);
        let after = sample(&["8 0 sda 0 0 0 0 0 0 0 0 1 1040 0"]);
        assert_eq!(derive(&before, &after, 1.0)[0].util_pct, Some(100.0));
    }

    #[test]
    fn derive_leaves_times_unknown_for_short_lines() {
        let before = sample(&["3 1 hda1 100 200 300 400"]);
        let after = sample(&["3 1 hda1 110 220 330 440"]);
        let hda1 = &derive(&before, &after, 1.0)[0];

        assert_eq!(hda1.reads_per_sec, 10.0);
        assert_eq!(hda1.read_kb_per_sec, 10.0);
        assert_eq!(hda1.writes_per_sec, 30.0);
        assert_eq!(hda1.write_kb_per_sec, 20.0);
        assert_eq!(hda1.read_await_ms, None);
        assert_eq!(hda1.write_await_ms, None);
        assert_eq!(hda1.util_pct, None);
        assert_eq!(hda1.in_flight, None);
    }

    #[test]
    fn derive_drops_idle_loop_and_ram() {
        let lines = [
            "7 0 loop0 0 0 0 0 0 0 0 0 0 0 0",
            "7 1 loop1 12 0 96 1 0 0 0 0 0 1 1",
            "1 0 ram0 0 0 0 0 0 0 0 0 0 0 0",
            "253 0 zram0 0 0 0 0 0 0 0 0 0 0 0",
            "8 16 sdb 0 0 0 0 0 0 0 0 0 0 0",
        ];
        let disks = derive(&sample(&lines), &sample(&lines), 1.0);
        let names: Vec<&str> = disks.iter().map(|d| d.device.as_str()).collect();
        assert_eq!(names, ["loop1", "zram0", "sdb"]);
    }

    #[test]
    fn derive_skips_device_missing_from_baseline() {
        let before = sample(&["8 0 sda 0 0 0 0 0 0 0 0 0 0 0"]);
        let after = sample(&[
            "8 0 sda 1 0 8 1 0 0 0 0 0 1 1",
            "8 16 sdb 1 0 8 1 0 0 0 0 0 1 1",
        ]);
        let disks = derive(&before, &after, 1.0);
        assert_eq!(disks.len(), 1);
        assert_eq!(disks[0].device, "sda");
    }

    fn fixture_reader(host: &str) -> (Reader, Context) {
        crate::linux::context::fixture::reader_and_context(host)
    }

    #[test]
    fn fixture_lines_of_every_length_parse() {
        let (mut reader, ctx) = fixture_reader("small");
        let mut gaps = GapLog::default();
        let sample = read(&mut reader, &ctx, Scope::Counters, &mut gaps);

        assert!(gaps.is_empty());
        let names: Vec<&str> = sample.devices.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(
            names,
            ["loop0", "loop1", "ram0", "hda", "hda1", "sda", "nvme0n1"]
        );
        let hda1 = &sample.devices[4];
        assert_eq!((hda1.reads, hda1.sectors_read), (35486, 38030));
        assert_eq!(hda1.times, None);
        let sda = &sample.devices[5];
        assert_eq!(sda.sectors_written, 28475692);
        assert_eq!(sda.times.unwrap().io_ms, 401234);
        let nvme = &sample.devices[6];
        assert_eq!(nvme.reads, 923112);
        assert_eq!(nvme.times.unwrap().in_flight, 12);
        assert!(reader.take_raw().entries.contains_key("proc/diskstats"));
    }

    #[test]
    fn fixture_derive_keeps_real_and_busy_devices() {
        let (mut reader, ctx) = fixture_reader("small");
        let mut gaps = GapLog::default();
        let sample = read(&mut reader, &ctx, Scope::Full, &mut gaps);
        let disks = derive(&sample, &sample, 1.0);

        let names: Vec<&str> = disks.iter().map(|d| d.device.as_str()).collect();
        assert_eq!(names, ["loop1", "hda", "hda1", "sda", "nvme0n1"]);
        assert_eq!(disks[1].reads_per_sec, 0.0);
        assert_eq!(disks[1].util_pct, Some(0.0));
        assert_eq!(disks[2].util_pct, None);
        assert_eq!(disks[3].in_flight, Some(3));
    }

    #[test]
    fn missing_diskstats_is_a_gap() {
        let (mut reader, ctx) = fixture_reader("odd-mounts");
        let mut gaps = GapLog::default();
        let sample = read(&mut reader, &ctx, Scope::Full, &mut gaps);

        assert!(sample.devices.is_empty());
        let gaps = gaps.into_vec();
        assert_eq!(gaps.len(), 1);
        assert_eq!(gaps[0].subject, "proc/diskstats");
        assert_eq!(gaps[0].reason, GapReason::Vanished);
    }

    proptest! {
        #[test]
        fn parse_diskstats_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut gaps = GapLog::default();
            let _ = parse_diskstats(&bytes, &mut gaps);
        }

        #[test]
        fn parse_line_never_panics(line in "[0-9a-z \\-]{0,120}") {
            let _ = parse_line(&line);
        }
    }
}
