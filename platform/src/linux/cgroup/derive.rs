//! Turning two cgroup samples and the process table into the containers of a snapshot.

use std::collections::BTreeMap;

use super::classify::{classify, short_id, Runtime, Unit};
use super::files::MemoryLimit;
use super::{CgroupSample, Names, Readings};
use crate::model::{Container, Process};

/// Sets each process's `cgroup` to its cgroup path and `container` to the id of its
/// container, else its pod's uid, else its systemd service.
pub fn annotate(cur: &CgroupSample, processes: &mut [Process]) {
    for process in processes {
        let Some(membership) = cur.memberships.get(&process.pid) else {
            continue;
        };
        let owner = classify(&membership.path);
        process.container = owner.primary().map(|unit| unit.id.clone());
        process.cgroup = Some(membership.path.clone());
    }
}

/// Builds one entry per container, pod and service of the processes in `cur`, ordered by
/// cgroup path, with their processes summed and their cgroup counters turned into rates over
/// the `secs` since `prev`.
pub fn derive(
    prev: &CgroupSample,
    cur: &CgroupSample,
    processes: &[Process],
    secs: f64,
) -> Vec<Container> {
    let mut containers: BTreeMap<String, Container> = BTreeMap::new();
    for process in processes {
        let Some(membership) = cur.memberships.get(&process.pid) else {
            continue;
        };
        let owner = classify(&membership.path);
        let pod_uid = owner.pod.as_ref().map(|pod| pod.id.as_str());
        for unit in owner.units() {
            let container = containers
                .entry(unit.cgroup.clone())
                .or_insert_with(|| new_container(unit, pod_uid, &cur.names));
            add_process(container, process);
        }
    }

    for container in containers.values_mut() {
        let Some(now) = cur.readings.get(&container.cgroup) else {
            continue;
        };
        fill_values(container, now);
        let before = prev.readings.get(&container.cgroup);
        if let Some(before) = before.filter(|_| secs > 0.0) {
            fill_rates(container, before, now, secs);
        }
    }
    containers.into_values().collect()
}

fn new_container(unit: &Unit, pod_uid: Option<&str>, names: &Names) -> Container {
    let mut container = Container {
        runtime: unit.runtime.as_str().to_string(),
        id: unit.id.clone(),
        name: short_id(&unit.id).to_string(),
        cgroup: unit.cgroup.clone(),
        pod_uid: pod_uid.map(str::to_string),
        ..Container::default()
    };

    if let Some(pod) = pod_uid.and_then(|uid| names.pods.get(uid)) {
        container.pod = Some(pod.name.clone());
        container.namespace = Some(pod.namespace.clone());
    }
    match unit.runtime {
        Runtime::Docker => {
            if let Some(name) = names.docker.get(&unit.id) {
                container.name = name.clone();
            }
        }
        Runtime::Containerd | Runtime::Crio | Runtime::Cri => {
            if let Some(kube) = names.kube_containers.get(&unit.id) {
                container.name = kube.name.clone();
                container.pod = Some(kube.pod.name.clone());
                container.namespace = Some(kube.pod.namespace.clone());
            }
        }
        Runtime::Pod => {
            if let Some(pod) = &container.pod {
                container.name = pod.clone();
            }
        }
        Runtime::Podman | Runtime::Systemd => {}
    }
    container
}

fn add_process(container: &mut Container, process: &Process) {
    container.pids.push(process.pid);
    container.cpu_pct += process.cpu_pct.unwrap_or(0.0);
    container.rss_bytes += process.rss_bytes.unwrap_or(0);
}

/// Copies the values of the later sample.
fn fill_values(container: &mut Container, now: &Readings) {
    container.memory_current_bytes = now.memory_current_bytes;
    match now.memory_limit {
        Some(MemoryLimit::Bytes(bytes)) => container.memory_max_bytes = Some(bytes),
        Some(MemoryLimit::Unlimited) => container.memory_unlimited = true,
        None => {}
    }
    container.oom_kills = now.memory_events.and_then(|events| events.oom_kill);
    container.memory_max_events = now.memory_events.and_then(|events| events.max);
    container.pressure = now.pressure.clone();
}

/// Computes the counters' changes over the interval. A counter lower than before means the
/// cgroup was removed and created again under the same path, so its change is unknown.
fn fill_rates(container: &mut Container, before: &Readings, now: &Readings, secs: f64) {
    let cpu = |field: fn(&super::files::CpuStat) -> Option<u64>| {
        change(
            before.cpu.as_ref().and_then(field),
            now.cpu.as_ref().and_then(field),
        )
    };
    let usage_usecs = cpu(|stat| stat.usage_usecs);
    container.cgroup_cpu_pct = usage_usecs.map(|usecs| usecs as f64 / (secs * 10_000.0));
    container.nr_periods_in_interval = cpu(|stat| stat.nr_periods);
    container.nr_throttled_in_interval = cpu(|stat| stat.nr_throttled);
    let throttled_usecs = cpu(|stat| stat.throttled_usecs);
    container.throttled_usecs_per_sec = throttled_usecs.map(|usecs| usecs as f64 / secs);

    let events = |field: fn(&super::files::MemoryEvents) -> Option<u64>| {
        let before = before.memory_events.as_ref().and_then(field);
        change(before, now.memory_events.as_ref().and_then(field))
    };
    container.oom_kills_in_interval = events(|events| events.oom_kill);
    container.memory_max_events_in_interval = events(|events| events.max);
}

fn change(before: Option<u64>, now: Option<u64>) -> Option<u64> {
    now?.checked_sub(before?)
}
