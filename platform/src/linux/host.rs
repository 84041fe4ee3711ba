//! Host facts: hostname, kernel release, uptime, boot time, CPU count, load and pressure.
//!
//! The hostname and kernel release come from `sys/kernel/hostname` and `sys/kernel/osrelease`
//! under the procfs root rather than from `uname`, so a host procfs mounted in a container
//! names the host. Boot time and the CPU count come from the sample's shared `/proc/stat`.

pub mod loadavg;
pub mod pressure;

use chrono::{DateTime, Utc};
use procfs_core::FromRead;

use super::Context;
use crate::gaps::GapLog;
use crate::model::{GapReason, Host, LoadAverage, Pressure};
use crate::raw::Reader;
use crate::Scope;

/// The host readings of one sample. A counters sample reads only pressure.
#[derive(Debug, Clone, Default)]
pub struct HostSample {
    pub hostname: Option<String>,
    pub kernel_release: Option<String>,
    pub uptime_secs: Option<f64>,
    pub boot_time_secs: Option<u64>,
    /// Online CPUs: the `cpuN` lines of `/proc/stat`.
    pub cpu_count: Option<u32>,
    pub load: Option<LoadAverage>,
    pub pressure: Option<Pressure>,
}

pub fn read(r: &mut Reader, ctx: &Context, scope: Scope, gaps: &mut GapLog) -> HostSample {
    let pressure = pressure::read(r, gaps);
    // The load average is one short file that the history recorder shows for every point, so
    // a counters sample reads it too.
    let load = ctx.load_average(r, gaps).map(|load| LoadAverage {
        one: load.one,
        five: load.five,
        fifteen: load.fifteen,
    });
    if scope == Scope::Counters {
        return HostSample {
            pressure,
            load,
            ..HostSample::default()
        };
    }

    let (boot_time_secs, cpu_count) = match ctx.kernel_stat(r, gaps) {
        Some(stat) => (stat.boot_time_secs, cpu_count(&stat.per_cpu)),
        None => (None, None),
    };

    HostSample {
        hostname: read_line(r, "sys/kernel/hostname", gaps),
        kernel_release: read_line(r, "sys/kernel/osrelease", gaps),
        uptime_secs: read_uptime(r, gaps),
        boot_time_secs,
        cpu_count,
        load,
        pressure,
    }
}

pub fn derive(cur: &HostSample, _ctx: &Context) -> Host {
    Host {
        hostname: cur.hostname.clone(),
        kernel_release: cur.kernel_release.clone(),
        uptime_secs: cur.uptime_secs,
        boot_time: cur.boot_time_secs.and_then(boot_time),
        cpu_count: cur.cpu_count,
        load: cur.load,
        pressure: cur.pressure.clone(),
    }
}

/// Converts `btime`, seconds since the Unix epoch, to the wall-clock boot time.
pub fn boot_time(secs: u64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(i64::try_from(secs).ok()?, 0)
}

fn cpu_count<T>(per_cpu: &[(u32, T)]) -> Option<u32> {
    let count = u32::try_from(per_cpu.len()).ok()?;
    (count > 0).then_some(count)
}

/// Reads a one-line text file such as the hostname, without its newline. Bytes that are not
/// UTF-8 are replaced; the raw evidence keeps them.
fn read_line(r: &mut Reader, path: &str, gaps: &mut GapLog) -> Option<String> {
    let bytes = gaps.value("host", r.proc(path))?;
    let text = String::from_utf8_lossy(bytes);
    let line = text.trim_end_matches(['\n', '\0']).trim();
    if line.is_empty() {
        gaps.push(
            "host",
            format!("proc/{path}"),
            GapReason::Invalid,
            "the file is empty",
        );
        return None;
    }
    Some(line.to_string())
}

fn read_uptime(r: &mut Reader, gaps: &mut GapLog) -> Option<f64> {
    let bytes = gaps.value("host", r.proc("uptime"))?;
    parse_uptime(bytes, gaps)
}

/// Parses `/proc/uptime` with procfs-core: seconds since boot, then idle seconds.
pub fn parse_uptime(bytes: &[u8], gaps: &mut GapLog) -> Option<f64> {
    match procfs_core::Uptime::from_read(bytes) {
        Ok(uptime) => Some(uptime.uptime),
        Err(error) => {
            gaps.push("host", "proc/uptime", GapReason::Invalid, error.to_string());
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::linux::context::fixture;
    use crate::model::PressureLine;

    fn fixture_host(scope: Scope) -> (HostSample, GapLog) {
        let roots = fixture::roots("small");
        let ctx = fixture::context(&roots);
        let mut gaps = GapLog::default();
        let sample = read(&mut fixture::reader(&roots), &ctx, scope, &mut gaps);
        (sample, gaps)
    }

    #[test]
    fn fixture_host_facts() {
        let (sample, gaps) = fixture_host(Scope::Full);
        let host = derive(&sample, &fixture::context(&fixture::roots("small")));
        assert_eq!(host.hostname.as_deref(), Some("fixture-host"));
        assert_eq!(host.kernel_release.as_deref(), Some("6.8.0-45-generic"));
        assert_eq!(host.uptime_secs, Some(12345.67));
        assert_eq!(host.boot_time, boot_time(1764797000));
        assert_eq!(host.cpu_count, Some(2));
        assert_eq!(
            host.load,
            Some(LoadAverage {
                one: 1.52,
                five: 0.98,
                fifteen: 0.75
            })
        );
        assert!(gaps.is_empty(), "{:?}", gaps.into_vec());
    }

    #[test]
    fn fixture_host_pressure() {
        let (sample, _) = fixture_host(Scope::Full);
        let pressure = sample.pressure.unwrap();
        let cpu = pressure.cpu.unwrap();
        let expected_some = PressureLine {
            avg10: 1.5,
            avg60: 0.75,
            avg300: 0.25,
            total_usecs: 123456789,
        };
        assert_eq!(cpu.some, expected_some);
        assert_eq!(cpu.full.map(|full| full.total_usecs), Some(0));
        assert_eq!(pressure.io.unwrap().some.avg10, 4.2);
        assert_eq!(pressure.memory.unwrap().full.unwrap().total_usecs, 2283945);
    }

    #[test]
    fn counters_sample_reads_only_pressure_and_load() {
        let (sample, gaps) = fixture_host(Scope::Counters);
        assert!(sample.pressure.is_some());
        assert!(sample.load.is_some());
        assert_eq!(sample.hostname, None);
        assert_eq!(sample.boot_time_secs, None);
        assert!(gaps.is_empty());
    }

    #[test]
    fn missing_pressure_is_unsupported_not_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("stat"),
            "cpu  1 0 1 8\ncpu0 1 0 1 8\nbtime 5\n",
        )
        .unwrap();
        let roots = crate::raw::Roots {
            procfs: dir.path().to_path_buf(),
            ..crate::raw::Roots::default()
        };
        let ctx = fixture::context(&roots);
        let mut gaps = GapLog::default();
        let sample = read(&mut Reader::new(roots), &ctx, Scope::Full, &mut gaps);

        assert_eq!(sample.pressure, None);
        assert_eq!(sample.boot_time_secs, Some(5));
        let gaps = gaps.into_vec();
        let pressure_gap = gaps.iter().find(|g| g.subject == "proc/pressure").unwrap();
        assert_eq!(pressure_gap.reason, GapReason::Unsupported);
        let hostname_gap = gaps
            .iter()
            .find(|g| g.subject == "proc/sys/kernel/hostname")
            .unwrap();
        assert_eq!(hostname_gap.reason, GapReason::Vanished);
    }

    #[test]
    fn live_host_reads_loosely() {
        let options = crate::CaptureOptions::default();
        let ctx = Context::new(&options).unwrap().for_sample(&options);
        let mut gaps = GapLog::default();
        let sample = read(
            &mut Reader::new(options.roots),
            &ctx,
            Scope::Full,
            &mut gaps,
        );
        assert!(sample.hostname.is_some_and(|name| !name.is_empty()));
        assert!(sample.uptime_secs.is_some_and(|secs| secs > 0.0));
        assert!(sample.cpu_count.is_some_and(|count| count >= 1));
        assert!(sample.load.is_some());
    }

    #[test]
    fn boot_time_converts_epoch_seconds() {
        let time = boot_time(1764797000).unwrap();
        assert_eq!(time.to_rfc3339(), "2025-12-03T21:23:20+00:00");
    }

    #[test]
    fn cpu_count_of_empty_list_is_none() {
        let empty: [(u32, ()); 0] = [];
        assert_eq!(cpu_count(&empty), None);
        assert_eq!(cpu_count(&[(0, ()), (3, ())]), Some(2));
    }

    proptest! {
        #[test]
        fn uptime_parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = parse_uptime(&bytes, &mut GapLog::default());
        }

        #[test]
        fn uptime_parse_never_panics_on_uptime_like_text(text in "[0-9.]{0,24} ?[0-9.]{0,24}\n?") {
            let _ = parse_uptime(text.as_bytes(), &mut GapLog::default());
        }
    }
}
