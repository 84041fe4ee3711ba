//! `containers.txt`: containers, pods and services found through cgroups, laid out like
//! `docker stats` with CPU throttling and OOM kills added, and the picks a notification
//! shows ([`notable_containers`]).

use std::cmp::Ordering;

use aegisir_platform::{Container, Snapshot};

use super::text::{bytes_or_missing, count_or_missing, decimal_or_missing, Align, Table, MISSING};

/// The `runtime` of a Kubernetes pod entry, which sums the containers of the pod.
const POD_RUNTIME: &str = "pod";

/// Renders `containers.txt`: one row per container, pod and service, highest CPU first.
pub fn render_containers(snapshot: &Snapshot) -> String {
    if snapshot.containers.is_empty() {
        return "No containers, pods or services were found through cgroups.\n".to_string();
    }

    let mut containers: Vec<&Container> = snapshot.containers.iter().collect();
    containers.sort_by(|a, b| by_cpu(a, b));

    let mut table = Table::new(&[
        ("NAME", Align::Left),
        ("ID", Align::Left),
        ("RUNTIME", Align::Left),
        ("POD", Align::Left),
        ("NAMESPACE", Align::Left),
        ("PIDS", Align::Right),
        ("CPU %", Align::Right),
        ("RSS", Align::Right),
        ("MEM USAGE / LIMIT", Align::Right),
        ("MEM %", Align::Right),
        ("THROTTLED", Align::Right),
        ("THR ms/s", Align::Right),
        ("OOM KILLS", Align::Right),
        ("OOM TOTAL", Align::Right),
    ]);
    for container in containers {
        table.row(row(container));
    }

    let mut output = table.render();
    output.push_str(LEGEND);
    output
}

/// Renders `containers.txt` under the name `render_all` calls.
pub fn render(snapshot: &Snapshot) -> String {
    render_containers(snapshot)
}

const LEGEND: &str = "
CPU %: the cgroup's CPU time over the interval (cpu.stat), 100 = one CPU; marked * where
  that was unreadable and the sum over the processes is shown. A pod's row sums its containers.
MEM USAGE / LIMIT: memory.current and memory.max (max = no limit); RSS: summed over processes.
THROTTLED: CPU periods throttled in the interval, of the periods that elapsed;
  THR ms/s: throttled time per second of the interval.
OOM KILLS: processes the OOM killer killed in the interval; OOM TOTAL: since the cgroup began.
";

/// Picks the CPU share shown and sorted by: the cgroup's own counter where both samples read
/// it, otherwise the sum over the processes, which misses processes that exited in the
/// interval.
pub fn container_cpu_pct(container: &Container) -> f64 {
    container.cgroup_cpu_pct.unwrap_or(container.cpu_pct)
}

/// Picks what a notification names: the container or service using the most CPU (pods are
/// left out, because a pod sums its containers), and every entry throttled or OOM-killed
/// during the interval, OOM kills first. A pod is listed there only when none of its
/// containers is.
pub fn notable_containers(snapshot: &Snapshot) -> (Option<&Container>, Vec<&Container>) {
    let top = snapshot
        .containers
        .iter()
        .filter(|container| container.runtime != POD_RUNTIME)
        .min_by(|a, b| by_cpu(a, b));

    let mut flagged: Vec<&Container> = snapshot
        .containers
        .iter()
        .filter(|container| needs_attention(container))
        .collect();
    let listed_pods: Vec<&str> = flagged
        .iter()
        .filter(|container| container.runtime != POD_RUNTIME)
        .filter_map(|container| container.pod_uid.as_deref())
        .collect();
    flagged.retain(|container| {
        container.runtime != POD_RUNTIME || !listed_pods.contains(&container.id.as_str())
    });
    flagged.sort_by(|a, b| by_severity(a, b));
    (top, flagged)
}

/// True when the container was throttled or had a process OOM-killed during the interval.
fn needs_attention(container: &Container) -> bool {
    let throttled = container.nr_throttled_in_interval.is_some_and(|n| n > 0);
    let oom_killed = container.oom_kills_in_interval.is_some_and(|n| n > 0);
    throttled || oom_killed
}

/// Highest CPU first, then the larger resident size, then by cgroup path.
fn by_cpu(a: &Container, b: &Container) -> Ordering {
    container_cpu_pct(b)
        .total_cmp(&container_cpu_pct(a))
        .then(b.rss_bytes.cmp(&a.rss_bytes))
        .then(a.cgroup.cmp(&b.cgroup))
}

/// Most OOM kills first, then the most throttled time, then by cgroup path.
fn by_severity(a: &Container, b: &Container) -> Ordering {
    let throttled = |c: &Container| c.throttled_usecs_per_sec.unwrap_or(0.0);
    b.oom_kills_in_interval
        .cmp(&a.oom_kills_in_interval)
        .then(throttled(b).total_cmp(&throttled(a)))
        .then(a.cgroup.cmp(&b.cgroup))
}

fn row(container: &Container) -> Vec<String> {
    let throttled_ms = container
        .throttled_usecs_per_sec
        .map(|usecs| usecs / 1000.0);
    vec![
        container.name.clone(),
        shown_id(container),
        container.runtime.clone(),
        container.pod.clone().unwrap_or_else(|| MISSING.to_string()),
        container
            .namespace
            .clone()
            .unwrap_or_else(|| MISSING.to_string()),
        container.pids.len().to_string(),
        cpu_cell(container),
        super::text::format_bytes(container.rss_bytes),
        format!(
            "{} / {}",
            bytes_or_missing(container.memory_current_bytes),
            limit(container)
        ),
        decimal_or_missing(memory_pct(container), 1),
        throttled_cell(container),
        decimal_or_missing(throttled_ms, 1),
        count_or_missing(container.oom_kills_in_interval),
        count_or_missing(container.oom_kills),
    ]
}

/// Formats the id column: the short id of a container, a pod's uid, and nothing for a
/// service, whose id is its name.
fn shown_id(container: &Container) -> String {
    if container.id == container.name {
        return MISSING.to_string();
    }
    let id = &container.id;
    let is_container_id = id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit());
    if is_container_id {
        id[..12].to_string()
    } else {
        id.clone()
    }
}

fn cpu_cell(container: &Container) -> String {
    match container.cgroup_cpu_pct {
        Some(pct) => format!("{pct:.1}"),
        None => format!("{:.1}*", container.cpu_pct),
    }
}

fn limit(container: &Container) -> String {
    if container.memory_unlimited {
        "max".to_string()
    } else {
        bytes_or_missing(container.memory_max_bytes)
    }
}

fn memory_pct(container: &Container) -> Option<f64> {
    let limit = container.memory_max_bytes.filter(|&bytes| bytes > 0)?;
    Some(container.memory_current_bytes? as f64 * 100.0 / limit as f64)
}

/// `throttled/periods` in the interval, or only the throttled count where periods are unknown.
fn throttled_cell(container: &Container) -> String {
    match (
        container.nr_throttled_in_interval,
        container.nr_periods_in_interval,
    ) {
        (Some(throttled), Some(periods)) => format!("{throttled}/{periods}"),
        (throttled, _) => count_or_missing(throttled),
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use aegisir_platform::{Pressure, PressureLine, PressureResource};

    use super::*;

    const MIB: u64 = 1024 * 1024;
    const GIB: u64 = 1024 * MIB;
    const API: &str = "a1153a1970ea17b773d92b866f3e57718af6e81398b9433342d06e65a22bbeb2";
    const PAUSE: &str = "6f7ce9e7a35f3759080852227b1dad63aa2b9b1631ac6d2bda8652cb591e8d41";
    const WEB: &str = "f31f384749f9115acf01fcf82f5a966b59dcc0a4cbd7c9740888c0bf32aa2bbb";
    const LEGACY: &str = "2a759f8fac4d817ff2bc28c224d51c5030f915c0c14997110517984ca9aa8d0f";
    const POD: &str = "5f0c2a1e-8b3d-4c7a-9e21-0d4b6a7c8e9f";
    const POD_CGROUP: &str = "/kubepods.slice/kubepods-burstable.slice/\
                              kubepods-burstable-pod5f0c2a1e_8b3d_4c7a_9e21_0d4b6a7c8e9f.slice";

    fn pressure(avg10: f64) -> Pressure {
        let line = PressureLine {
            avg10,
            avg60: 0.5,
            avg300: 0.1,
            total_usecs: 123456,
        };
        let resource = PressureResource {
            some: line,
            full: Some(line),
        };
        Pressure {
            cpu: Some(resource),
            memory: Some(resource),
            io: Some(resource),
        }
    }

    fn api() -> Container {
        Container {
            runtime: "containerd".into(),
            id: API.into(),
            name: "api".into(),
            pod: Some("api-7d9c5b6f4-x2kqp".into()),
            namespace: Some("shop".into()),
            pod_uid: Some(POD.into()),
            cgroup: format!("{POD_CGROUP}/cri-containerd-{API}.scope"),
            pids: vec![300, 302, 303],
            cpu_pct: 97.5,
            cgroup_cpu_pct: Some(100.0),
            rss_bytes: 900 * MIB,
            memory_current_bytes: Some(GIB),
            memory_max_bytes: Some(GIB),
            nr_periods_in_interval: Some(20),
            nr_throttled_in_interval: Some(10),
            throttled_usecs_per_sec: Some(250_000.0),
            oom_kills: Some(3),
            oom_kills_in_interval: Some(1),
            memory_max_events: Some(40),
            memory_max_events_in_interval: Some(5),
            pressure: Some(pressure(12.5)),
            ..Container::default()
        }
    }

    fn pause() -> Container {
        Container {
            runtime: "containerd".into(),
            id: PAUSE.into(),
            name: "6f7ce9e7a35f".into(),
            pod: Some("api-7d9c5b6f4-x2kqp".into()),
            namespace: Some("shop".into()),
            pod_uid: Some(POD.into()),
            cgroup: format!("{POD_CGROUP}/cri-containerd-{PAUSE}.scope"),
            pids: vec![301],
            cgroup_cpu_pct: Some(0.0),
            rss_bytes: 256 * 1024,
            memory_current_bytes: Some(256 * 1024),
            memory_unlimited: true,
            nr_periods_in_interval: Some(0),
            nr_throttled_in_interval: Some(0),
            throttled_usecs_per_sec: Some(0.0),
            oom_kills: Some(0),
            oom_kills_in_interval: Some(0),
            ..Container::default()
        }
    }

    fn pod() -> Container {
        Container {
            runtime: "pod".into(),
            id: POD.into(),
            name: "api-7d9c5b6f4-x2kqp".into(),
            pod: Some("api-7d9c5b6f4-x2kqp".into()),
            namespace: Some("shop".into()),
            pod_uid: Some(POD.into()),
            cgroup: POD_CGROUP.into(),
            pids: vec![300, 301, 302, 303],
            cpu_pct: 97.5,
            cgroup_cpu_pct: Some(100.0),
            rss_bytes: 900 * MIB + 256 * 1024,
            memory_current_bytes: Some(GIB + 256 * 1024),
            memory_max_bytes: Some(2 * GIB),
            nr_periods_in_interval: Some(0),
            nr_throttled_in_interval: Some(0),
            throttled_usecs_per_sec: Some(0.0),
            oom_kills: Some(3),
            oom_kills_in_interval: Some(1),
            ..Container::default()
        }
    }

    fn web() -> Container {
        Container {
            runtime: "docker".into(),
            id: WEB.into(),
            // A name with a terminal escape: rendered harmless.
            name: "web\u{1b}[2J".into(),
            cgroup: format!("/system.slice/docker-{WEB}.scope"),
            pids: vec![100, 101],
            cpu_pct: 41.0,
            cgroup_cpu_pct: Some(42.5),
            rss_bytes: 200 * MIB,
            memory_current_bytes: Some(256 * MIB),
            memory_max_bytes: Some(512 * MIB),
            nr_periods_in_interval: Some(10),
            nr_throttled_in_interval: Some(2),
            throttled_usecs_per_sec: Some(12_345.0),
            oom_kills: Some(1),
            oom_kills_in_interval: Some(0),
            ..Container::default()
        }
    }

    fn nginx() -> Container {
        Container {
            runtime: "systemd".into(),
            id: "nginx.service".into(),
            name: "nginx.service".into(),
            cgroup: "/system.slice/nginx.service".into(),
            pids: vec![800, 801],
            cpu_pct: 7.0,
            cgroup_cpu_pct: Some(6.8),
            rss_bytes: 70 * MIB,
            memory_current_bytes: Some(40 * MIB),
            memory_unlimited: true,
            oom_kills: Some(0),
            oom_kills_in_interval: Some(0),
            ..Container::default()
        }
    }

    /// Builds a container on a cgroup v1 host, where only the process sums are known.
    fn legacy() -> Container {
        Container {
            runtime: "docker".into(),
            id: LEGACY.into(),
            name: "2a759f8fac4d".into(),
            cgroup: format!("/docker/{LEGACY}"),
            pids: vec![900],
            cpu_pct: 55.0,
            rss_bytes: 12 * MIB,
            ..Container::default()
        }
    }

    fn snapshot(containers: Vec<Container>) -> Snapshot {
        Snapshot {
            interval_secs: 2.0,
            containers,
            ..Snapshot::default()
        }
    }

    fn all() -> Snapshot {
        snapshot(vec![nginx(), pause(), legacy(), pod(), web(), api()])
    }

    fn golden_path() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/golden/containers.txt")
    }

    /// Compares with the expected file; with `UPDATE_GOLDEN=1` writes it instead.
    #[test]
    fn containers_match_golden_file() {
        let text = render_containers(&all());
        let path = golden_path();
        if std::env::var_os("UPDATE_GOLDEN").is_some_and(|value| value == "1") {
            std::fs::write(&path, &text).unwrap();
        }
        let expected = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, expected);
    }

    #[test]
    fn rows_sorted_by_cpu_with_process_sum_marked() {
        let text = render_containers(&all());
        let names: Vec<&str> = text
            .lines()
            .skip(1)
            .take(6)
            .map(|line| line.split_whitespace().next().unwrap())
            .collect();
        let expected = [
            "api-7d9c5b6f4-x2kqp",
            "api",
            "2a759f8fac4d",
            "web\\x1b[2J",
            "nginx.service",
        ];
        assert_eq!(names[..5], expected);
        assert!(text.contains("55.0*"));
        assert!(!text.contains('\u{1b}'));
    }

    #[test]
    fn memory_limit_and_share() {
        let row = row(&web());
        assert_eq!(row[8], "256M / 512M");
        assert_eq!(row[9], "50.0");
        let row = super::row(&pause());
        assert_eq!(row[8], "256K / max");
        assert_eq!(row[9], MISSING);
        let row = super::row(&legacy());
        assert_eq!(row[8], "- / -");
        assert_eq!(row[10], MISSING);
        assert_eq!(row[12], MISSING);
    }

    #[test]
    fn throttling_and_oom_cells() {
        let row = row(&api());
        assert_eq!(row[10], "10/20");
        assert_eq!(row[11], "250.0");
        assert_eq!(row[12], "1");
        assert_eq!(row[13], "3");
        assert_eq!(row[1], "a1153a1970ea");
        assert_eq!(super::row(&nginx())[1], MISSING);
        assert_eq!(super::row(&pod())[1], POD);
    }

    #[test]
    fn notable_picks_top_container_not_pod() {
        let snapshot = all();
        let (top, _) = notable_containers(&snapshot);
        assert_eq!(top.unwrap().id, API);
    }

    #[test]
    fn notable_lists_oom_killed_then_throttled() {
        let snapshot = all();
        let (_, flagged) = notable_containers(&snapshot);
        let ids: Vec<&str> = flagged.iter().map(|c| c.id.as_str()).collect();
        // The pod's OOM kill is its api container's, which is listed already.
        assert_eq!(ids, vec![API, WEB]);
    }

    #[test]
    fn notable_lists_pod_when_no_container_of_it_is() {
        let mut quiet_api = api();
        quiet_api.oom_kills_in_interval = Some(0);
        quiet_api.nr_throttled_in_interval = Some(0);
        let snapshot = snapshot(vec![quiet_api, pod(), nginx()]);
        let (top, flagged) = notable_containers(&snapshot);
        assert_eq!(top.unwrap().id, API);
        let ids: Vec<&str> = flagged.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, vec![POD]);
    }

    #[test]
    fn notable_of_no_containers_is_empty() {
        let snapshot = snapshot(Vec::new());
        let (top, flagged) = notable_containers(&snapshot);
        assert!(top.is_none());
        assert!(flagged.is_empty());
        assert_eq!(
            render_containers(&snapshot),
            "No containers, pods or services were found through cgroups.\n"
        );
    }

    #[test]
    fn unknown_throttling_is_not_trouble() {
        let snapshot = snapshot(vec![legacy()]);
        let (top, flagged) = notable_containers(&snapshot);
        assert_eq!(top.unwrap().id, LEGACY);
        assert!(flagged.is_empty());
    }
}
