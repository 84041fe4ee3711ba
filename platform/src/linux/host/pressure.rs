//! Pressure stall information from `/proc/pressure/{cpu,memory,io}`.
//!
//! procfs-core's `CpuPressure` requires a `full` line, which the CPU file only has since
//! Linux 5.13, and its record parser slices the line at byte 5 without a length check and
//! builds a map and a vector per line. Each line is therefore parsed here: the `some` or
//! `full` label, then `avg10=`, `avg60=`, `avg300=` and `total=`, all four required as
//! procfs-core requires them.

use crate::gaps::GapLog;
use crate::model::{GapReason, Pressure, PressureLine, PressureResource};
use crate::raw::{ReadError, Reader, Tree};

use super::loadavg::hundredths;

/// Reads the three pressure files. `None`, with an unsupported gap, when the kernel has no
/// `/proc/pressure` (before Linux 4.20 or built without PSI). The directory is looked up only
/// when the CPU file is missing, which spares a stat call in every sample.
pub fn read(reader: &mut Reader, gaps: &mut GapLog) -> Option<Pressure> {
    let cpu = read_file(reader, "pressure/cpu");
    let missing = matches!(&cpu, Err(error) if error.reason == GapReason::Vanished);
    if missing && !reader.exists(Tree::Proc, "pressure") {
        gaps.push(
            "host",
            "proc/pressure",
            GapReason::Unsupported,
            "the kernel has no pressure stall information",
        );
        return None;
    }

    let memory = read_file(reader, "pressure/memory");
    let io = read_file(reader, "pressure/io");
    Some(Pressure {
        cpu: resource(cpu, "pressure/cpu", gaps),
        memory: resource(memory, "pressure/memory", gaps),
        io: resource(io, "pressure/io", gaps),
    })
}

/// The parse of one pressure file: `None` inside when it has no readable `some` line.
type Parsed = Result<Option<PressureResource>, ReadError>;

fn read_file(reader: &mut Reader, path: &str) -> Parsed {
    reader.proc(path).map(parse)
}

/// Turns a read and parse into the resource, recording the gap when there is none.
fn resource(parsed: Parsed, path: &str, gaps: &mut GapLog) -> Option<PressureResource> {
    match parsed {
        Ok(Some(resource)) => Some(resource),
        Ok(None) => {
            gaps.push(
                "host",
                format!("proc/{path}"),
                GapReason::Invalid,
                "no readable `some` line",
            );
            None
        }
        Err(mut error) => {
            // A file missing from an existing /proc/pressure is one the kernel does not offer.
            if error.reason == GapReason::Vanished {
                error.reason = GapReason::Unsupported;
            }
            gaps.record("host", &error);
            None
        }
    }
}

/// Parses one pressure file: a `some` line and, where present, a `full` line.
pub fn parse(bytes: &[u8]) -> Option<PressureResource> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut some = None;
    let mut full = None;
    for line in text.lines() {
        if line.starts_with("some ") {
            some = parse_line(line);
        } else if line.starts_with("full ") {
            full = parse_line(line);
        }
    }
    Some(PressureResource { some: some?, full })
}

/// Parses one `some` or `full` line. A field given twice keeps its last value.
fn parse_line(line: &str) -> Option<PressureLine> {
    let (mut avg10, mut avg60, mut avg300, mut total) = (None, None, None, None);
    for field in line.split_ascii_whitespace().skip(1) {
        let Some((key, value)) = field.split_once('=') else {
            continue;
        };
        match key {
            "avg10" => avg10 = Some(value.parse::<f32>().ok()?),
            "avg60" => avg60 = Some(value.parse::<f32>().ok()?),
            "avg300" => avg300 = Some(value.parse::<f32>().ok()?),
            "total" => total = Some(value.parse::<u64>().ok()?),
            _ => {}
        }
    }
    Some(PressureLine {
        avg10: hundredths(avg10?),
        avg60: hundredths(avg60?),
        avg300: hundredths(avg300?),
        total_usecs: total?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn pressure_parses_some_and_full() {
        let text = "some avg10=1.50 avg60=0.25 avg300=0.00 total=123456\n\
                    full avg10=0.75 avg60=0.10 avg300=0.00 total=65432\n";
        let resource = parse(text.as_bytes()).unwrap();
        assert_eq!(resource.some.avg10, 1.5);
        assert_eq!(resource.some.avg60, 0.25);
        assert_eq!(resource.some.total_usecs, 123456);
        let full = resource.full.unwrap();
        assert_eq!(full.avg10, 0.75);
        assert_eq!(full.total_usecs, 65432);
    }

    #[test]
    fn cpu_pressure_without_full_line_is_kept() {
        let resource = parse(b"some avg10=2.00 avg60=1.00 avg300=0.50 total=99\n").unwrap();
        assert_eq!(resource.some.avg300, 0.5);
        assert_eq!(resource.full, None);
    }

    #[test]
    fn pressure_line_missing_field_is_rejected() {
        assert_eq!(parse(b"some avg10=1.00 avg60=1.00 total=5\n"), None);
        assert_eq!(
            parse(b"some avg10=x avg60=1.00 avg300=1.00 total=5\n"),
            None
        );
        let resource = parse(b"some avg10=1.00 avg60=2.00 avg300=3.00 total=5 extra=1\n");
        assert_eq!(resource.unwrap().some.avg300, 3.0);
    }

    #[test]
    fn pressure_without_some_line_is_rejected() {
        assert_eq!(
            parse(b"full avg10=0.75 avg60=0.10 avg300=0.00 total=1\n"),
            None
        );
    }

    proptest! {
        #[test]
        fn pressure_parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn pressure_parse_never_panics_on_labels(text in "((some|full)[ =a-z0-9.]{0,40}\n){0,3}") {
            let _ = parse(text.as_bytes());
        }
    }
}
