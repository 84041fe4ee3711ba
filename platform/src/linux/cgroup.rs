//! Containers, Kubernetes pods and systemd services, found through the cgroups of processes,
//! without asking a container runtime.
//!
//! A sample reads each process's `/proc/PID/cgroup` and names the container, pod and service
//! its path belongs to (see [`classify`]). It then reads the cgroup v2 files of each of those
//! units' cgroups under `<sysfs>/fs/cgroup`. Every sample reads `cpu.stat` and
//! `memory.events`, because throttling and OOM kills are counted over the interval. A full
//! sample also reads `memory.current`, `memory.max` and the three pressure files. A full sample also reads the
//! Docker and Kubernetes names under the root filesystem (see [`names`]).
//!
//! A cgroup path outside the reader's cgroup namespace (`/../..`) is kept as written and its
//! files are not read: the cgroup mount the reader sees does not contain it. On a host with
//! only cgroup v1 the units are still found and their processes summed, but the cgroup
//! values are absent and recorded as unsupported.

pub mod classify;
mod derive;
pub mod files;
pub mod membership;
pub mod names;
mod read;

use std::collections::BTreeMap;

use super::process::ProcessSample;
use crate::model::Pressure;

pub use derive::{annotate, derive};
pub use membership::Membership;
pub use names::Names;
pub use read::{read, read_cached, MembershipCache};

/// Lists the pids whose cgroups a sample reads: every process except kernel threads, which
/// stay in the root cgroup. A process whose stat could not be read is included.
pub fn mapped_pids(processes: &ProcessSample) -> Vec<i32> {
    mapped_processes(processes)
        .into_iter()
        .map(|(pid, _)| pid)
        .collect()
}

/// The processes to map, as (pid, start ticks); the start ticks are 0 where `PID/stat` was
/// not read, which [`MembershipCache`] never reuses.
pub fn mapped_processes(processes: &ProcessSample) -> Vec<(i32, u64)> {
    processes
        .entries
        .iter()
        .filter(|entry| !entry.stat.is_some_and(|stat| stat.kernel_thread))
        .map(|entry| (entry.pid, entry.stat.map_or(0, |stat| stat.start_ticks)))
        .collect()
}

/// The cgroup collector's name in gaps.
const COLLECTOR: &str = "containers";

/// The cgroup layout mounted under the sysfs root.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Hierarchy {
    /// cgroup v2 alone at `fs/cgroup`.
    Unified,
    /// cgroup v1 controllers at `fs/cgroup/<controller>` and cgroup v2 at `fs/cgroup/unified`,
    /// usually without controllers enabled.
    Hybrid,
    /// cgroup v1 only.
    Legacy,
    /// No cgroup mount under the sysfs root.
    #[default]
    Missing,
}

impl Hierarchy {
    /// Returns the cgroup v2 mount relative to the sysfs root, where there is one.
    pub fn unified_root(self) -> Option<&'static str> {
        match self {
            Hierarchy::Unified => Some("fs/cgroup"),
            Hierarchy::Hybrid => Some("fs/cgroup/unified"),
            Hierarchy::Legacy | Hierarchy::Missing => None,
        }
    }
}

/// The cgroup readings of one sample.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CgroupSample {
    pub hierarchy: Hierarchy,
    /// The cgroup of each process whose `PID/cgroup` was read, by pid.
    pub memberships: BTreeMap<i32, Membership>,
    /// The readings of each container's, pod's and service's cgroup, by cgroup path.
    pub readings: BTreeMap<String, Readings>,
    /// Names found in a full sample; empty in a counters sample.
    pub names: Names,
}

/// The cgroup v2 values of one cgroup; `None` where the file could not be read (and a gap
/// records why) or was not read in this scope.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Readings {
    pub cpu: Option<files::CpuStat>,
    pub memory_events: Option<files::MemoryEvents>,
    pub memory_current_bytes: Option<u64>,
    pub memory_limit: Option<files::MemoryLimit>,
    pub pressure: Option<Pressure>,
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::gaps::GapLog;
    use crate::linux::context::fixture;
    use crate::model::{Container, Gap, GapReason, Process};
    use crate::raw::{RawFiles, Reader, Roots};
    use crate::Scope;

    const DOCKER_WEB: &str = "f31f384749f9115acf01fcf82f5a966b59dcc0a4cbd7c9740888c0bf32aa2bbb";
    const DOCKER_CGROUPFS: &str =
        "fb081ee28007cf7662db5e3558f574e6698bfcc3250c545dac4ac4700025ddf4";
    const DOCKER_V1: &str = "2a759f8fac4d817ff2bc28c224d51c5030f915c0c14997110517984ca9aa8d0f";
    const DOCKER_NS: &str = "9c5f58026b3b84708c592df05fe7ed2735539d8e066babfe84275d93f30ebb30";
    const API: &str = "a1153a1970ea17b773d92b866f3e57718af6e81398b9433342d06e65a22bbeb2";
    const PAUSE: &str = "6f7ce9e7a35f3759080852227b1dad63aa2b9b1631ac6d2bda8652cb591e8d41";
    const CRIO: &str = "dc626e6558351adeb72e354009bc7a95d016aa9a24b7e6482f13d48bedcedde6";
    const PODMAN: &str = "cc68e1d9877507693f2627038a9947317d784e78728a2cdc290274f23414b7e0";
    const CGROUPFS_A: &str = "719726ff2816d71d5c3b90c97734de954fef4ac13e503a489a86849bdd0b4dba";
    const CGROUPFS_B: &str = "27328b6df9c251115d5aaffda94ae891e37191e1521e8faf1a96d368f86ea84c";
    const GUARANTEED: &str = "99401a294931bb4fb58bc21f4079b18bdf37a1894e311ec1069be547d861adb9";
    const POD: &str = "5f0c2a1e-8b3d-4c7a-9e21-0d4b6a7c8e9f";
    const API_POD_CGROUP: &str = "/kubepods.slice/kubepods-burstable.slice/\
                                  kubepods-burstable-pod5f0c2a1e_8b3d_4c7a_9e21_0d4b6a7c8e9f.slice";

    struct Read {
        sample: CgroupSample,
        gaps: Vec<Gap>,
        raw: RawFiles,
    }

    fn roots(case: &str) -> Roots {
        let base = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../fixtures/cgroups")
            .join(case);
        Roots {
            procfs: base.join("proc"),
            sysfs: base.join("sys"),
            rootfs: base.join("root"),
        }
    }

    fn pids(roots: &Roots) -> Vec<i32> {
        let mut pids: Vec<i32> = std::fs::read_dir(&roots.procfs)
            .unwrap()
            .filter_map(|entry| entry.unwrap().file_name().to_str()?.parse().ok())
            .collect();
        pids.sort_unstable();
        pids
    }

    fn read_case(case: &str, scope: Scope) -> Read {
        let roots = roots(case);
        let ctx = fixture::context(&roots);
        let mut reader = Reader::new(roots.clone());
        let mut gaps = GapLog::default();
        let sample = read(&mut reader, &ctx, scope, &mut gaps, &pids(&roots));
        Read {
            sample,
            gaps: gaps.into_vec(),
            raw: reader.take_raw(),
        }
    }

    /// Builds a process with the given CPU share and resident size.
    fn process(pid: i32, cpu_pct: f64, rss_bytes: u64) -> Process {
        Process {
            pid,
            cpu_pct: Some(cpu_pct),
            rss_bytes: Some(rss_bytes),
            ..Process::default()
        }
    }

    /// Derives the containers of one full sample, with itself as the earlier sample.
    fn containers_of(case: &str, processes: &[Process]) -> (Vec<Container>, Vec<Gap>) {
        let read = read_case(case, Scope::Full);
        (
            derive(&read.sample, &read.sample, processes, 1.0),
            read.gaps,
        )
    }

    fn find<'c>(containers: &'c [Container], id: &str) -> &'c Container {
        containers.iter().find(|c| c.id == id).unwrap()
    }

    #[test]
    fn docker_systemd_container_with_name_and_values() {
        let processes = [
            process(1, 0.5, 1000),
            process(100, 40.0, 5000),
            process(101, 2.5, 700),
        ];
        let (containers, gaps) = containers_of("docker-systemd", &processes);

        assert_eq!(containers.len(), 1, "{containers:?}");
        let web = &containers[0];
        assert_eq!(web.runtime, "docker");
        assert_eq!(web.id, DOCKER_WEB);
        assert_eq!(web.name, "web");
        assert_eq!(
            web.cgroup,
            format!("/system.slice/docker-{DOCKER_WEB}.scope")
        );
        assert_eq!(web.pids, vec![100, 101]);
        assert_eq!(web.cpu_pct, 42.5);
        assert_eq!(web.rss_bytes, 5700);
        assert_eq!(web.memory_current_bytes, Some(268435456));
        assert_eq!(web.memory_max_bytes, Some(536870912));
        assert!(!web.memory_unlimited);
        assert_eq!(web.oom_kills, Some(1));
        assert_eq!(web.memory_max_events, Some(14));
        assert_eq!(web.pod, None);
        let pressure = web.pressure.clone().unwrap();
        assert_eq!(pressure.cpu.unwrap().some.avg10, 12.5);
        assert_eq!(pressure.memory.unwrap().some.avg10, 3.0);
        assert_eq!(pressure.io.unwrap().full.unwrap().total_usecs, 65432);
        assert!(gaps.is_empty(), "{gaps:?}");
    }

    #[test]
    fn docker_config_is_not_raw_evidence() {
        let read = read_case("docker-systemd", Scope::Full);
        let keys: Vec<&String> = read.raw.entries.keys().collect();
        assert!(keys.iter().any(|k| *k == "proc/100/cgroup"));
        let cpu_stat = format!("sys/fs/cgroup/system.slice/docker-{DOCKER_WEB}.scope/cpu.stat");
        assert!(read.raw.entries.contains_key(&cpu_stat));
        assert!(keys.iter().all(|k| !k.starts_with("root/")), "{keys:?}");
        assert_eq!(
            read.sample.names.docker.get(DOCKER_WEB).map(String::as_str),
            Some("web")
        );
    }

    #[test]
    fn docker_cgroupfs_without_config_uses_short_id() {
        let (containers, gaps) = containers_of("docker-cgroupfs", &[process(200, 1.0, 10)]);
        let container = find(&containers, DOCKER_CGROUPFS);
        assert_eq!(container.runtime, "docker");
        assert_eq!(container.name, "fb081ee28007");
        assert_eq!(container.cgroup, format!("/docker/{DOCKER_CGROUPFS}"));
        assert_eq!(container.memory_max_bytes, None);
        assert!(container.memory_unlimited);

        assert_eq!(gaps.len(), 1, "{gaps:?}");
        let expected = format!("root/var/lib/docker/containers/{DOCKER_CGROUPFS}/config.v2.json");
        assert_eq!(gaps[0].subject, expected);
        assert_eq!(gaps[0].reason, GapReason::Vanished);
        assert_eq!(gaps[0].collector, "containers");
    }

    #[test]
    fn containerd_pod_names_from_kubelet_logs() {
        let processes = [process(300, 80.0, 900), process(301, 0.0, 100)];
        let (containers, gaps) = containers_of("containerd-pod", &processes);
        assert_eq!(containers.len(), 3, "{containers:?}");

        let pod = find(&containers, POD);
        assert_eq!(pod.runtime, "pod");
        assert_eq!(pod.name, "api-7d9c5b6f4-x2kqp");
        assert_eq!(pod.pod.as_deref(), Some("api-7d9c5b6f4-x2kqp"));
        assert_eq!(pod.namespace.as_deref(), Some("shop"));
        assert_eq!(pod.pod_uid.as_deref(), Some(POD));
        assert_eq!(pod.cgroup, API_POD_CGROUP);
        assert_eq!(pod.pids, vec![300, 301]);
        assert_eq!(pod.cpu_pct, 80.0);
        assert_eq!(pod.memory_max_bytes, Some(2147483648));

        let api = find(&containers, API);
        assert_eq!(api.runtime, "containerd");
        assert_eq!(api.name, "api");
        assert_eq!(api.pod.as_deref(), Some("api-7d9c5b6f4-x2kqp"));
        assert_eq!(api.namespace.as_deref(), Some("shop"));
        assert_eq!(api.pod_uid.as_deref(), Some(POD));
        assert_eq!(
            api.cgroup,
            format!("{API_POD_CGROUP}/cri-containerd-{API}.scope")
        );
        assert_eq!(api.pids, vec![300]);
        assert_eq!(api.memory_current_bytes, Some(1073741824));

        let pause = find(&containers, PAUSE);
        assert_eq!(pause.name, "6f7ce9e7a35f");
        assert_eq!(pause.pod.as_deref(), Some("api-7d9c5b6f4-x2kqp"));
        assert_eq!(pause.pids, vec![301]);
        assert!(gaps.is_empty(), "{gaps:?}");
    }

    /// Samples the containerd pod twice, two seconds apart, as a capture does.
    fn containerd_pod_over_interval() -> Vec<Container> {
        let baseline = read_case("containerd-pod-baseline", Scope::Counters);
        let current = read_case("containerd-pod", Scope::Full);
        let processes = [process(300, 80.0, 900), process(301, 0.0, 100)];
        derive(&baseline.sample, &current.sample, &processes, 2.0)
    }

    #[test]
    fn throttling_is_a_rate_over_the_interval() {
        let containers = containerd_pod_over_interval();
        let api = find(&containers, API);
        assert_eq!(api.nr_periods_in_interval, Some(20));
        assert_eq!(api.nr_throttled_in_interval, Some(10));
        assert_eq!(api.throttled_usecs_per_sec, Some(250_000.0));
        assert_eq!(api.cgroup_cpu_pct, Some(100.0));

        let pause = find(&containers, PAUSE);
        assert_eq!(pause.nr_throttled_in_interval, Some(0));
        assert_eq!(pause.throttled_usecs_per_sec, Some(0.0));
        assert_eq!(pause.cgroup_cpu_pct, Some(0.0));
    }

    #[test]
    fn oom_kill_between_samples_is_counted() {
        let containers = containerd_pod_over_interval();
        let api = find(&containers, API);
        assert_eq!(api.oom_kills, Some(3));
        assert_eq!(api.oom_kills_in_interval, Some(1));
        assert_eq!(api.memory_max_events, Some(40));
        assert_eq!(api.memory_max_events_in_interval, Some(5));

        assert_eq!(find(&containers, POD).oom_kills_in_interval, Some(1));
        assert_eq!(find(&containers, PAUSE).oom_kills_in_interval, Some(0));
    }

    #[test]
    fn counters_sample_reads_only_counters() {
        let read = read_case("containerd-pod-baseline", Scope::Counters);
        let files: Vec<&str> = read
            .raw
            .entries
            .keys()
            .map(|key| key.rsplit('/').next().unwrap())
            .collect();
        assert!(files
            .iter()
            .all(|f| ["cgroup", "cpu.stat", "memory.events"].contains(f)));
        assert_eq!(files.iter().filter(|f| **f == "cpu.stat").count(), 3);
        assert!(read.sample.names.pods.is_empty());
        assert!(read.gaps.is_empty(), "{:?}", read.gaps);
    }

    #[test]
    fn crio_monitor_counts_for_the_pod_only() {
        let processes = [process(400, 10.0, 100), process(401, 1.0, 10)];
        let (containers, gaps) = containers_of("crio-pod", &processes);
        assert_eq!(containers.len(), 2, "{containers:?}");

        let crio = find(&containers, CRIO);
        assert_eq!(crio.runtime, "crio");
        assert_eq!(crio.pids, vec![400]);
        let pod = find(&containers, "7a1d3c5e-2b4f-4a6c-8e0d-1f3b5d7c9e2a");
        assert_eq!(pod.pids, vec![400, 401]);
        assert_eq!(pod.cpu_pct, 11.0);
        assert_eq!(pod.name, "7a1d3c5e-2b4f-4a6c-8e0d-1f3b5d7c9e2a");
        assert_eq!(pod.pod, None);

        let subjects: Vec<&str> = gaps.iter().map(|g| g.subject.as_str()).collect();
        assert_eq!(
            subjects,
            vec!["root/var/log/pods", "root/var/log/containers"]
        );
    }

    #[test]
    fn podman_container_and_its_monitor_service() {
        let processes = [process(500, 5.0, 100), process(501, 0.1, 10)];
        let (containers, gaps) = containers_of("podman", &processes);
        assert_eq!(containers.len(), 2, "{containers:?}");

        let podman = find(&containers, PODMAN);
        assert_eq!(podman.runtime, "podman");
        assert_eq!(podman.name, "cc68e1d98775");
        assert_eq!(podman.pids, vec![500]);
        let service = find(&containers, "user@1000.service");
        assert_eq!(service.runtime, "systemd");
        assert_eq!(service.pids, vec![501]);
        assert_eq!(service.memory_current_bytes, Some(120000000));

        // The fixture has no pressure files: one gap per file for both cgroups.
        assert_eq!(gaps.len(), 3, "{gaps:?}");
        assert!(gaps.iter().all(|g| g.reason == GapReason::Unsupported));
        assert_eq!(gaps[0].subject, "sys/fs/cgroup/*/cpu.pressure");
        assert!(gaps[0]
            .detail
            .starts_with("2 items, first sys/fs/cgroup/user.slice/"));
    }

    #[test]
    fn cgroupfs_driver_pods_and_containers() {
        let processes = [process(600, 1.0, 1), process(610, 2.0, 2)];
        let (containers, _) = containers_of("kubepods-cgroupfs", &processes);
        assert_eq!(containers.len(), 4, "{containers:?}");

        let burstable = find(&containers, CGROUPFS_A);
        assert_eq!(burstable.runtime, "cri");
        assert_eq!(
            burstable.pod_uid.as_deref(),
            Some("9c8b7a6d-5e4f-4321-8fed-cba987654321")
        );
        assert_eq!(burstable.memory_max_bytes, Some(67108864));
        let guaranteed = find(&containers, CGROUPFS_B);
        assert_eq!(
            guaranteed.pod_uid.as_deref(),
            Some("e1f2a3b4-c5d6-4e7f-8091-a2b3c4d5e6f7")
        );
        let pod = find(&containers, "e1f2a3b4-c5d6-4e7f-8091-a2b3c4d5e6f7");
        assert_eq!(
            pod.cgroup,
            "/kubepods/pode1f2a3b4-c5d6-4e7f-8091-a2b3c4d5e6f7"
        );
        assert_eq!(pod.pids, vec![610]);
    }

    #[test]
    fn guaranteed_pod_under_systemd_driver() {
        let (containers, _) = containers_of("guaranteed-pod", &[process(700, 1.0, 1)]);
        let uid = "1b2c3d4e-5f60-4718-9a0b-c1d2e3f4a5b6";
        let container = find(&containers, GUARANTEED);
        assert_eq!(container.runtime, "containerd");
        assert_eq!(container.pod_uid.as_deref(), Some(uid));
        let pod = find(&containers, uid);
        assert_eq!(
            pod.cgroup,
            "/kubepods.slice/kubepods-pod1b2c3d4e_5f60_4718_9a0b_c1d2e3f4a5b6.slice"
        );
        assert_eq!(pod.memory_max_bytes, Some(268435456));
    }

    #[test]
    fn systemd_service_name_with_colon() {
        let processes = [
            process(800, 3.0, 30),
            process(801, 4.0, 40),
            process(810, 1.0, 10),
        ];
        let (containers, gaps) = containers_of("systemd-service", &processes);
        assert_eq!(containers.len(), 2, "{containers:?}");

        let nginx = find(&containers, "nginx.service");
        assert_eq!(nginx.runtime, "systemd");
        assert_eq!(nginx.name, "nginx.service");
        assert_eq!(nginx.pids, vec![800, 801]);
        assert_eq!(nginx.cpu_pct, 7.0);
        assert_eq!(nginx.rss_bytes, 70);
        let app = find(&containers, "app@blue:8080.service");
        assert_eq!(app.cgroup, "/system.slice/app@blue:8080.service");
        assert_eq!(app.memory_current_bytes, Some(8388608));
        assert!(gaps.is_empty(), "{gaps:?}");
    }

    #[test]
    fn v1_host_containers_lack_cgroup_values() {
        let (containers, gaps) = containers_of("v1", &[process(900, 5.0, 50)]);
        let container = find(&containers, DOCKER_V1);
        assert_eq!(container.cgroup, format!("/docker/{DOCKER_V1}"));
        assert_eq!(container.pids, vec![900]);
        assert_eq!(container.memory_current_bytes, None);
        assert_eq!(container.oom_kills, None);

        let gap = gaps.iter().find(|g| g.subject == "sys/fs/cgroup").unwrap();
        assert_eq!(gap.reason, GapReason::Unsupported);
        assert!(gap.detail.starts_with("only cgroup v1 is mounted"));
        assert_eq!(gaps.len(), 2, "{gaps:?}");
    }

    #[test]
    fn hybrid_host_reads_the_unified_hierarchy() {
        let read = read_case("hybrid", Scope::Full);
        assert_eq!(read.sample.hierarchy, Hierarchy::Hybrid);
        let readings = &read.sample.readings["/system.slice/nginx.service"];
        assert_eq!(readings.cpu.unwrap().usage_usecs, Some(9000000));
        assert_eq!(readings.memory_current_bytes, None);

        let gaps: Vec<(&str, GapReason)> = read
            .gaps
            .iter()
            .map(|g| (g.subject.as_str(), g.reason))
            .collect();
        let dir = "sys/fs/cgroup/unified/system.slice/nginx.service";
        assert!(gaps.contains(&(&format!("{dir}/cpu.stat"), GapReason::Unsupported)));
        assert!(gaps.contains(&(&format!("{dir}/memory.current"), GapReason::Unsupported)));
        assert!(gaps.contains(&(&format!("{dir}/memory.max"), GapReason::Unsupported)));
        assert!(gaps
            .iter()
            .all(|(_, reason)| *reason == GapReason::Unsupported));
    }

    #[test]
    fn namespace_relative_cgroup_is_kept_and_not_read() {
        let read = read_case("cgroup-namespace", Scope::Full);
        let processes = [process(1100, 1.0, 1), process(1101, 1.0, 1)];
        let containers = derive(&read.sample, &read.sample, &processes, 1.0);

        assert_eq!(containers.len(), 1, "{containers:?}");
        let container = &containers[0];
        assert_eq!(container.id, DOCKER_NS);
        assert_eq!(
            container.cgroup,
            format!("/../../system.slice/docker-{DOCKER_NS}.scope")
        );
        assert_eq!(container.memory_current_bytes, None);
        assert!(read.raw.entries.keys().all(|key| !key.starts_with("sys/")));

        let gap = read
            .gaps
            .iter()
            .find(|g| g.subject == container.cgroup)
            .unwrap();
        assert_eq!(gap.reason, GapReason::Unsupported);
        assert!(gap.detail.contains("outside the reader's cgroup namespace"));
    }

    #[test]
    fn annotate_sets_process_container_and_cgroup() {
        let read = read_case("containerd-pod", Scope::Full);
        let mut processes = vec![
            process(300, 1.0, 1),
            process(301, 1.0, 1),
            process(999, 1.0, 1),
        ];
        annotate(&read.sample, &mut processes);

        assert_eq!(processes[0].container.as_deref(), Some(API));
        let expected = format!("{API_POD_CGROUP}/cri-containerd-{API}.scope");
        assert_eq!(processes[0].cgroup.as_deref(), Some(expected.as_str()));
        assert_eq!(processes[1].container.as_deref(), Some(PAUSE));
        assert_eq!(processes[2].container, None);
        assert_eq!(processes[2].cgroup, None);
    }

    #[test]
    fn counter_lower_than_before_gives_no_rate() {
        let mut prev = read_case("containerd-pod", Scope::Counters).sample;
        let cur = read_case("containerd-pod-baseline", Scope::Counters).sample;
        let processes = [process(300, 1.0, 1)];
        let containers = derive(&prev, &cur, &processes, 2.0);
        assert_eq!(find(&containers, API).nr_throttled_in_interval, None);
        assert_eq!(find(&containers, API).oom_kills_in_interval, None);

        prev.readings.clear();
        let containers = derive(&prev, &cur, &processes, 2.0);
        assert_eq!(find(&containers, API).nr_throttled_in_interval, None);
        assert_eq!(find(&containers, API).oom_kills, Some(2));
    }

    #[test]
    fn past_deadline_skips_cgroup_reads() {
        let roots = roots("docker-systemd");
        let mut ctx = fixture::context(&roots);
        ctx.deadline = Some(std::time::Instant::now());
        let mut gaps = GapLog::default();
        let sample = read(
            &mut Reader::new(roots.clone()),
            &ctx,
            Scope::Full,
            &mut gaps,
            &[1, 100],
        );

        assert!(sample.memberships.is_empty());
        let gaps = gaps.into_vec();
        assert_eq!(gaps.len(), 1, "{gaps:?}");
        assert_eq!(gaps[0].reason, GapReason::Deadline);
        assert_eq!(gaps[0].detail, "2 processes not mapped to cgroups");
    }

    #[test]
    fn exited_process_is_skipped_without_a_gap() {
        let roots = roots("docker-systemd");
        let ctx = fixture::context(&roots);
        let mut gaps = GapLog::default();
        let sample = read(
            &mut Reader::new(roots.clone()),
            &ctx,
            Scope::Full,
            &mut gaps,
            &[100, 4321],
        );
        assert_eq!(
            sample.memberships.keys().copied().collect::<Vec<_>>(),
            vec![100]
        );
        assert!(gaps.is_empty());
    }

    /// Builds a tree in a temporary directory with a `stat` for each pid and the given
    /// cgroup files.
    fn tree_with(pids: &[i32], cgroups: &[(i32, &str)]) -> (tempfile::TempDir, Roots) {
        let tree = tempfile::tempdir().unwrap();
        for pid in pids {
            std::fs::create_dir_all(tree.path().join(format!("proc/{pid}"))).unwrap();
            std::fs::write(tree.path().join(format!("proc/{pid}/stat")), "x").unwrap();
        }
        for (pid, line) in cgroups {
            std::fs::write(tree.path().join(format!("proc/{pid}/cgroup")), line).unwrap();
        }
        let roots = Roots {
            procfs: tree.path().join("proc"),
            sysfs: tree.path().join("sys"),
            rootfs: tree.path().join("root"),
        };
        (tree, roots)
    }

    fn read_pids(roots: &Roots, pids: &[i32]) -> (CgroupSample, Vec<Gap>) {
        let ctx = fixture::context(roots);
        let mut gaps = GapLog::default();
        let mut reader = Reader::new(roots.clone());
        let sample = read(&mut reader, &ctx, Scope::Full, &mut gaps, pids);
        (sample, gaps.into_vec())
    }

    #[test]
    fn missing_cgroup_files_one_gap() {
        let (_tree, roots) = tree_with(&[1, 2, 3], &[]);
        let (sample, gaps) = read_pids(&roots, &[1, 2, 3]);

        assert!(sample.memberships.is_empty());
        assert_eq!(gaps.len(), 1, "{gaps:?}");
        assert_eq!(gaps[0].subject, "proc/*/cgroup");
        assert_eq!(gaps[0].reason, GapReason::Unsupported);
        assert_eq!(
            gaps[0].detail,
            "3 items, first proc/1/cgroup: the kernel offers no /proc/PID/cgroup"
        );
    }

    #[test]
    fn one_missing_cgroup_file_keeps_others() {
        let lines = [
            (1, "0::/init.scope\n"),
            (2, "0::/system.slice/ssh.service\n"),
            (3, "0::/system.slice/cron.service\n"),
        ];
        for absent in [1, 2] {
            let cgroups: Vec<(i32, &str)> = lines
                .iter()
                .copied()
                .filter(|(pid, _)| *pid != absent)
                .collect();
            let (_tree, roots) = tree_with(&[1, 2, 3], &cgroups);
            let (sample, gaps) = read_pids(&roots, &[1, 2, 3]);

            let expected: Vec<i32> = cgroups.iter().map(|(pid, _)| *pid).collect();
            assert_eq!(
                sample.memberships.keys().copied().collect::<Vec<_>>(),
                expected
            );
            assert_eq!(sample.memberships[&3].path, "/system.slice/cron.service");
            // The tree has no sysfs, so the only gap is about the cgroup mount.
            let process_gaps: Vec<_> = gaps
                .iter()
                .filter(|g| g.subject.starts_with("proc"))
                .collect();
            assert!(process_gaps.is_empty(), "{gaps:?}");
        }
    }

    #[test]
    fn kernel_threads_are_not_mapped() {
        use crate::linux::process::{ProcessEntry, StatFields};

        let entry = |pid, kernel_thread: Option<bool>| ProcessEntry {
            pid,
            stat: kernel_thread.map(|kernel_thread| StatFields {
                kernel_thread,
                ..StatFields::default()
            }),
            ..ProcessEntry::default()
        };
        let mut processes = ProcessSample::default();
        processes.entries = vec![entry(1, Some(false)), entry(2, Some(true)), entry(7, None)];
        assert_eq!(mapped_pids(&processes), vec![1, 7]);
    }

    #[test]
    fn collector_fills_snapshot_containers() {
        let options = crate::CaptureOptions {
            roots: roots("docker-systemd"),
            ..crate::CaptureOptions::default()
        };
        let collector = crate::Collector::new(options).unwrap();
        let baseline = collector.sample(Scope::Counters);
        let current = collector.sample(Scope::Full);
        let snapshot = collector.snapshot(&baseline, current).snapshot;

        assert_eq!(snapshot.containers.len(), 1, "{:?}", snapshot.containers);
        let web = &snapshot.containers[0];
        assert_eq!(web.name, "web");
        assert_eq!(web.pids, vec![100, 101]);
        assert_eq!(web.nr_throttled_in_interval, Some(0));
        let nginx = snapshot
            .processes
            .list
            .iter()
            .find(|p| p.pid == 100)
            .unwrap();
        assert_eq!(nginx.container.as_deref(), Some(DOCKER_WEB));
        let init = snapshot.processes.list.iter().find(|p| p.pid == 1).unwrap();
        assert_eq!(init.cgroup.as_deref(), Some("/init.scope"));
        assert_eq!(init.container, None);
    }

    #[test]
    fn counters_sample_reuses_memberships_of_known_processes() {
        let options = crate::CaptureOptions {
            roots: roots("docker-systemd"),
            ..crate::CaptureOptions::default()
        };
        let collector = crate::Collector::new(options).unwrap();
        let read_cgroup =
            |sample: &crate::Sample| sample.inner.raw.entries.contains_key("proc/100/cgroup");

        let first = collector.sample(Scope::Counters);
        assert!(read_cgroup(&first), "the first sample knows no process yet");
        let second = collector.sample(Scope::Counters);
        assert!(!read_cgroup(&second), "a known process is not read again");
        assert_eq!(
            second.inner.cgroups.memberships.get(&100),
            first.inner.cgroups.memberships.get(&100)
        );

        let full = collector.sample(Scope::Full);
        assert!(read_cgroup(&full), "a full sample reads every membership");
    }

    #[test]
    fn counters_sample_reuses_identities_of_known_processes() {
        let options = crate::CaptureOptions {
            roots: roots("docker-systemd"),
            ..crate::CaptureOptions::default()
        };
        let collector = crate::Collector::new(options).unwrap();
        let read_status = |sample: &crate::Sample| {
            let entries = &sample.inner.raw.entries;
            entries.contains_key("proc/100/status") && entries.contains_key("proc/100/cmdline")
        };

        let first = collector.sample(Scope::Counters);
        assert!(read_status(&first), "the first sample knows no process yet");
        let second = collector.sample(Scope::Counters);
        assert!(!read_status(&second), "a known process is not read again");
        let identity = |sample: &crate::Sample| {
            let entry = sample.inner.processes.entry(100).unwrap();
            (entry.uid, entry.cmdline.clone(), entry.name.clone())
        };
        assert_eq!(identity(&second), identity(&first));
        assert!(identity(&second).1.is_some());

        let full = collector.sample(Scope::Full);
        assert!(read_status(&full), "a full sample reads every identity");
    }

    #[test]
    fn live_host_maps_this_process() {
        let options = crate::CaptureOptions::default();
        let ctx = crate::linux::Context::new(&options)
            .unwrap()
            .for_sample(&options);
        let mut gaps = GapLog::default();
        let me = std::process::id() as i32;
        let mut reader = Reader::new(options.roots.clone());
        let sample = read(&mut reader, &ctx, Scope::Full, &mut gaps, &[me]);
        // A kernel with cgroups lists every process in one; without them a gap records it.
        match sample.memberships.get(&me) {
            Some(membership) => assert!(membership.path.starts_with('/'), "{membership:?}"),
            None => assert!(!gaps.is_empty()),
        }
    }
}
