//! Reading one cgroup sample: memberships, the units' cgroup v2 files, and names.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use super::classify::{classify, Runtime, Unit};
use super::files::{self, CpuStat};
use super::membership::{self, is_outside_namespace, Membership};
use super::names::{self, Names};
use super::{CgroupSample, Hierarchy, Readings, COLLECTOR};
use crate::gaps::GapLog;
use crate::linux::host::pressure;
use crate::linux::process::has_stat;
use crate::linux::Context;
use crate::model::{GapReason, Pressure, PressureResource};
use crate::raw::{ReadError, Reader, Tree};
use crate::Scope;

/// The cgroup of each process seen by earlier samples, keyed by (pid, start ticks) so a reused
/// pid is never given the old process's cgroup.
///
/// A counters sample (the history recorder's, every few seconds) takes memberships from here
/// and reads `PID/cgroup` only for new processes, which halves its file reads. A full sample
/// reads every `PID/cgroup` again, so no snapshot rests on a cached membership. A process
/// moved to another cgroup between samples is therefore seen at the next full sample.
#[derive(Debug, Default)]
pub struct MembershipCache {
    entries: Mutex<HashMap<(i32, u64), Membership>>,
}

/// Reads the cgroup of every process in `pids`, then the files of every container, pod and
/// service those cgroups belong to.
pub fn read(
    r: &mut Reader,
    ctx: &Context,
    scope: Scope,
    gaps: &mut GapLog,
    pids: &[i32],
) -> CgroupSample {
    let processes: Vec<(i32, u64)> = pids.iter().map(|&pid| (pid, 0)).collect();
    read_cached(r, ctx, scope, gaps, &processes, &MembershipCache::default())
}

/// Like [`read`], for (pid, start ticks) pairs, with memberships from `cache` in a counters
/// sample.
pub fn read_cached(
    r: &mut Reader,
    ctx: &Context,
    scope: Scope,
    gaps: &mut GapLog,
    processes: &[(i32, u64)],
    cache: &MembershipCache,
) -> CgroupSample {
    let hierarchy = detect_hierarchy(r);
    let mut tally = Tally::default();

    let mut entries = cache.entries.lock().unwrap_or_else(|e| e.into_inner());
    let mut known = match scope {
        Scope::Counters => std::mem::take(&mut *entries),
        Scope::Full => HashMap::new(),
    };
    let (memberships, fresh) = read_memberships(r, ctx, processes, &mut known, &mut tally);
    *entries = fresh;
    drop(entries);
    let units = units_of(&memberships);
    let readings = read_units(r, ctx, scope, hierarchy, &units, &mut tally, gaps);
    let names = match scope {
        Scope::Full => read_names(r, &units, &mut tally, gaps),
        Scope::Counters => Names::default(),
    };

    tally.record(gaps);
    CgroupSample {
        hierarchy,
        memberships,
        readings,
        names,
    }
}

/// Tells the cgroup layouts apart by where `cgroup.controllers`, a cgroup v2 file, is.
fn detect_hierarchy(r: &Reader) -> Hierarchy {
    if r.exists(Tree::Sys, "fs/cgroup/cgroup.controllers") {
        Hierarchy::Unified
    } else if r.exists(Tree::Sys, "fs/cgroup/unified/cgroup.controllers") {
        Hierarchy::Hybrid
    } else if r.exists(Tree::Sys, "fs/cgroup") {
        Hierarchy::Legacy
    } else {
        Hierarchy::Missing
    }
}

/// Returns the memberships by pid, and the same keyed by (pid, start ticks) for the cache.
fn read_memberships(
    r: &mut Reader,
    ctx: &Context,
    processes: &[(i32, u64)],
    known: &mut HashMap<(i32, u64), Membership>,
    tally: &mut Tally,
) -> (BTreeMap<i32, Membership>, HashMap<(i32, u64), Membership>) {
    let mut memberships = BTreeMap::new();
    let mut fresh = HashMap::new();
    // Processes whose `PID/cgroup` was missing when read.
    let mut missing = Vec::new();
    for (index, &(pid, start_ticks)) in processes.iter().enumerate() {
        let key = (pid, start_ticks);
        if let Some(membership) = known.remove(&key).filter(|_| start_ticks != 0) {
            memberships.insert(pid, membership.clone());
            fresh.insert(key, membership);
            continue;
        }
        if ctx.past_deadline() {
            let detail = format!(
                "{} processes not mapped to cgroups",
                processes.len() - index
            );
            tally.add(
                "proc/*/cgroup",
                GapReason::Deadline,
                "proc/*/cgroup".into(),
                &detail,
            );
            break;
        }
        match read_membership(r, pid, tally) {
            Ok(Some(membership)) => {
                if start_ticks != 0 {
                    fresh.insert(key, membership.clone());
                }
                memberships.insert(pid, membership);
            }
            Ok(None) => {}
            Err(MissingFile) => {
                // The kernel offers the file for every process or for none. On a live procfs
                // the first live process without it settles that, so the rest are not tried.
                let first = memberships.is_empty() && missing.is_empty();
                if first && r.is_live_procfs() && has_stat(r, pid) {
                    record_no_cgroup_files(tally, pid, processes.len() - index);
                    break;
                }
                missing.push(pid);
            }
        }
    }
    // Missing files beside readable ones belong to processes that exited after their `stat`
    // was read; the process collector counts those. With none readable, the kernel offers none.
    if memberships.is_empty() {
        if let Some(&pid) = missing.iter().find(|&&pid| has_stat(r, pid)) {
            record_no_cgroup_files(tally, pid, missing.len());
        }
    }
    (memberships, fresh)
}

fn record_no_cgroup_files(tally: &mut Tally, first_pid: i32, count: usize) {
    let path = format!("proc/{first_pid}/cgroup");
    let detail = "the kernel offers no /proc/PID/cgroup";
    tally.add_count("proc/*/cgroup", GapReason::Unsupported, path, detail, count);
}

/// `PID/cgroup` was missing: the process exited, or the kernel was built without cgroups.
struct MissingFile;

/// Reads one `PID/cgroup`. The caller decides what a missing file means.
fn read_membership(
    r: &mut Reader,
    pid: i32,
    tally: &mut Tally,
) -> Result<Option<Membership>, MissingFile> {
    let path = format!("{pid}/cgroup");
    let bytes = match r.proc(&path) {
        Ok(bytes) => bytes,
        Err(error) if error.reason == GapReason::Vanished => return Err(MissingFile),
        Err(error) => {
            tally.error("proc/*/cgroup", &error);
            return Ok(None);
        }
    };

    let membership = membership::parse(bytes).and_then(|lines| membership::membership(&lines));
    if membership.is_none() {
        let detail = "no line of the form ID:controllers:path";
        tally.add(
            "proc/*/cgroup",
            GapReason::Invalid,
            format!("proc/{path}"),
            detail,
        );
    }
    Ok(membership)
}

/// Collects the distinct containers, pods and services of all memberships.
fn units_of(memberships: &BTreeMap<i32, Membership>) -> BTreeSet<Unit> {
    memberships
        .values()
        .flat_map(|membership| {
            let owner = classify(&membership.path);
            owner.units().cloned().collect::<Vec<_>>()
        })
        .collect()
}

fn read_units(
    r: &mut Reader,
    ctx: &Context,
    scope: Scope,
    hierarchy: Hierarchy,
    units: &BTreeSet<Unit>,
    tally: &mut Tally,
    gaps: &mut GapLog,
) -> BTreeMap<String, Readings> {
    let mut readings = BTreeMap::new();
    if units.is_empty() {
        return readings;
    }
    let Some(root) = hierarchy.unified_root() else {
        record_no_unified(hierarchy, gaps);
        return readings;
    };

    let cgroups: BTreeSet<&str> = units.iter().map(|unit| unit.cgroup.as_str()).collect();
    for (index, cgroup) in cgroups.iter().enumerate() {
        if is_outside_namespace(cgroup) {
            tally.add("/../*", GapReason::Unsupported, cgroup.to_string(), OUTSIDE);
            continue;
        }
        if ctx.past_deadline() {
            let detail = format!("{} cgroups not read", cgroups.len() - index);
            tally.add(
                "sys/fs/cgroup",
                GapReason::Deadline,
                "sys/fs/cgroup".into(),
                &detail,
            );
            break;
        }
        let mut files = CgroupFiles {
            r,
            dir: format!("{root}{cgroup}"),
            tally,
        };
        readings.insert(cgroup.to_string(), files.read(scope));
    }
    readings
}

const OUTSIDE: &str = "the cgroup is outside the reader's cgroup namespace, so the cgroup \
                       mount does not contain it; run AegisIR in the host's cgroup namespace";

// NOTE: cgroup v1 has similar counters (`cpu.stat` with `throttled_time` in ns,
// `memory.usage_in_bytes`, `memory.oom_control`) under each controller's mount; they are not read.
fn record_no_unified(hierarchy: Hierarchy, gaps: &mut GapLog) {
    let detail = match hierarchy {
        Hierarchy::Legacy => {
            "only cgroup v1 is mounted; container CPU, memory and throttling values are read \
             from cgroup v2 files"
        }
        _ => "no cgroup filesystem is mounted at fs/cgroup under the sysfs root",
    };
    gaps.push(COLLECTOR, "sys/fs/cgroup", GapReason::Unsupported, detail);
}

/// The files of one cgroup directory, relative to the sysfs root.
struct CgroupFiles<'a> {
    r: &'a mut Reader,
    dir: String,
    tally: &'a mut Tally,
}

impl CgroupFiles<'_> {
    fn read(&mut self, scope: Scope) -> Readings {
        let mut readings = Readings {
            cpu: self.cpu_stat(),
            memory_events: self.parse("memory.events", files::parse_memory_events),
            ..Readings::default()
        };
        if scope == Scope::Full {
            readings.memory_current_bytes = self.parse("memory.current", files::parse_bytes);
            readings.memory_limit = self.parse("memory.max", files::parse_limit);
            readings.pressure = self.pressure();
        }
        readings
    }

    fn cpu_stat(&mut self) -> Option<CpuStat> {
        let stat = self.parse("cpu.stat", files::parse_cpu_stat)?;
        if stat.nr_throttled.is_none() {
            let detail = "cpu.stat has no throttling counters: the cpu controller is not \
                          enabled for this cgroup";
            let subject = format!("sys/{}/cpu.stat", self.dir);
            self.tally.add(
                "sys/fs/cgroup/*/cpu.stat",
                GapReason::Unsupported,
                subject,
                detail,
            );
        }
        Some(stat)
    }

    fn pressure(&mut self) -> Option<Pressure> {
        let pressure = Pressure {
            cpu: self.parse("cpu.pressure", pressure::parse),
            memory: self.parse("memory.pressure", pressure::parse),
            io: self.parse("io.pressure", pressure::parse),
        };
        let resources: [&Option<PressureResource>; 3] =
            [&pressure.cpu, &pressure.memory, &pressure.io];
        resources.iter().any(|r| r.is_some()).then_some(pressure)
    }

    /// Reads and parses one file, tallying a failure of either step.
    fn parse<T>(&mut self, file: &'static str, parse: fn(&[u8]) -> Option<T>) -> Option<T> {
        let relative = format!("{}/{file}", self.dir);
        let pattern = format!("sys/fs/cgroup/*/{file}");
        let bytes = match self.r.read(Tree::Sys, &relative) {
            Ok(bytes) => bytes,
            Err(mut error) => {
                // A file missing from a cgroup that exists is one whose controller is not
                // enabled there, or that the kernel lacks.
                if error.reason == GapReason::Vanished && self.r.exists(Tree::Sys, &self.dir) {
                    error.reason = GapReason::Unsupported;
                }
                self.tally.error(&pattern, &error);
                return None;
            }
        };

        let value = parse(bytes);
        if value.is_none() {
            let subject = format!("sys/{relative}");
            self.tally
                .add(&pattern, GapReason::Invalid, subject, "unparsable contents");
        }
        value
    }
}

/// Reads the names of the sample's Docker containers, pods and Kubernetes containers.
fn read_names(
    r: &mut Reader,
    units: &BTreeSet<Unit>,
    tally: &mut Tally,
    gaps: &mut GapLog,
) -> Names {
    let mut names = Names::default();
    for unit in units.iter().filter(|unit| unit.runtime == Runtime::Docker) {
        match names::read_docker_name(r, &unit.id) {
            Ok(Some(name)) => {
                names.docker.insert(unit.id.clone(), name);
            }
            Ok(None) => {
                let subject = format!("root/var/lib/docker/containers/{}/config.v2.json", unit.id);
                let pattern = "root/var/lib/docker/containers/*/config.v2.json";
                tally.add(
                    pattern,
                    GapReason::Invalid,
                    subject,
                    "no readable Name field",
                );
            }
            Err(error) => tally.error("root/var/lib/docker/containers/*/config.v2.json", &error),
        }
    }

    if units.iter().any(|unit| unit.runtime == Runtime::Pod) {
        names.pods = gaps
            .value(COLLECTOR, names::read_pods(r))
            .unwrap_or_default();
        let containers = names::read_kube_containers(r);
        names.kube_containers = gaps.value(COLLECTOR, containers).unwrap_or_default();
    }
    names
}

/// A count of read failures of many cgroups or processes, recorded as one gap per file and
/// reason.
#[derive(Debug, Default)]
struct Tally {
    entries: BTreeMap<(String, GapReason), Failures>,
}

#[derive(Debug)]
struct Failures {
    count: u32,
    first_subject: String,
    first_detail: String,
}

impl Tally {
    /// Counts a failure. `pattern` is the subject recorded when more than one item failed,
    /// such as `sys/fs/cgroup/*/memory.max`.
    fn add(&mut self, pattern: &str, reason: GapReason, subject: String, detail: &str) {
        self.add_count(pattern, reason, subject, detail, 1);
    }

    /// Counts `count` failures alike, of which `subject` is the first.
    fn add_count(
        &mut self,
        pattern: &str,
        reason: GapReason,
        subject: String,
        detail: &str,
        count: usize,
    ) {
        let count = u32::try_from(count).unwrap_or(u32::MAX);
        self.entries
            .entry((pattern.to_string(), reason))
            .and_modify(|failures| failures.count = failures.count.saturating_add(count))
            .or_insert_with(|| Failures {
                count,
                first_subject: subject,
                first_detail: detail.to_string(),
            });
    }

    fn error(&mut self, pattern: &str, error: &ReadError) {
        let subject = format!("{}/{}", error.tree.prefix(), error.path);
        self.add(pattern, error.reason, subject, &error.detail);
    }

    /// Records one gap per pattern and reason: the exact subject when one item failed,
    /// otherwise the pattern with the count and the first subject.
    fn record(self, gaps: &mut GapLog) {
        for ((pattern, reason), failures) in self.entries {
            if failures.count == 1 {
                gaps.push(
                    COLLECTOR,
                    failures.first_subject,
                    reason,
                    failures.first_detail,
                );
                continue;
            }
            let detail = format!(
                "{} items, first {}: {}",
                failures.count, failures.first_subject, failures.first_detail
            );
            gaps.push(COLLECTOR, pattern, reason, detail);
        }
    }
}
