//! Naming the container, Kubernetes pod and systemd service that a cgroup path belongs to.
//!
//! Each runtime below names its cgroups by the container id, 64 hex digits:
//!
//! | Runtime | systemd cgroup driver | cgroupfs driver |
//! | --- | --- | --- |
//! | Docker | `docker-<id>.scope` | `/docker/<id>` |
//! | containerd (CRI) | `cri-containerd-<id>.scope` | `<id>` beneath a pod |
//! | CRI-O | `crio-<id>.scope` | `crio-<id>` |
//! | Podman | `libpod-<id>.scope` | `libpod-<id>` |
//!
//! CRI-O and Podman run a monitor, conmon, next to each container in `crio-conmon-<id>.scope`
//! or `libpod-conmon-<id>.scope`; it is not the container. A Kubernetes pod is
//! `kubepods-<qos>-pod<uid>.slice` under the systemd driver, with the uid's dashes written as
//! underscores and no QoS part for guaranteed pods, and `/kubepods/<qos>/pod<uid>` under the
//! cgroupfs driver. A systemd service is a `.service` segment outside any container.

/// The runtime or manager of a unit's processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Runtime {
    Docker,
    Containerd,
    Crio,
    Podman,
    /// A container of a Kubernetes pod under the cgroupfs driver, whose path does not name
    /// the runtime.
    Cri,
    Pod,
    Systemd,
}

impl Runtime {
    /// Returns the name stored in `Container::runtime`.
    pub fn as_str(self) -> &'static str {
        match self {
            Runtime::Docker => "docker",
            Runtime::Containerd => "containerd",
            Runtime::Crio => "crio",
            Runtime::Podman => "podman",
            Runtime::Cri => "cri",
            Runtime::Pod => "pod",
            Runtime::Systemd => "systemd",
        }
    }
}

/// A container, pod or service and the cgroup that contains all of its processes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Unit {
    pub runtime: Runtime,
    /// The container id, pod uid (with dashes) or unit name.
    pub id: String,
    /// The path of the unit's own cgroup: the leading segments of the process's path up to
    /// and including the segment that named the unit.
    pub cgroup: String,
}

/// Everything one cgroup path names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Owner {
    pub container: Option<Unit>,
    pub pod: Option<Unit>,
    /// Only set outside containers and pods.
    pub service: Option<Unit>,
}

impl Owner {
    /// Iterates over the units in the order container, pod, service.
    pub fn units(&self) -> impl Iterator<Item = &Unit> {
        [&self.container, &self.pod, &self.service]
            .into_iter()
            .flatten()
    }

    /// Returns the most specific unit: the container, else the pod, else the service.
    pub fn primary(&self) -> Option<&Unit> {
        self.units().next()
    }
}

/// Classifies a cgroup path. The outermost container segment wins, so cgroups a container
/// creates inside itself (a systemd inside the container) count for that container.
pub fn classify(path: &str) -> Owner {
    let mut owner = Owner::default();
    let mut prefix = String::with_capacity(path.len());
    let mut previous = "";
    let mut under_kubepods = false;

    for segment in path.split('/').filter(|s| !s.is_empty()) {
        prefix.push('/');
        prefix.push_str(segment);
        under_kubepods |= segment == "kubepods" || segment == "kubepods.slice";

        if owner.container.is_some() {
            break;
        }
        if owner.pod.is_none() {
            owner.pod =
                pod_uid(segment, under_kubepods).map(|uid| unit(Runtime::Pod, uid, &prefix));
        }
        if let Some((runtime, id)) = container_id(segment, previous, owner.pod.is_some()) {
            owner.container = Some(unit(runtime, id.to_string(), &prefix));
        } else if owner.pod.is_none() && segment.ends_with(".service") {
            owner.service = Some(unit(Runtime::Systemd, segment.to_string(), &prefix));
        }
        previous = segment;
    }

    if owner.container.is_some() || owner.pod.is_some() {
        owner.service = None;
    }
    owner
}

fn unit(runtime: Runtime, id: String, cgroup: &str) -> Unit {
    Unit {
        runtime,
        id,
        cgroup: cgroup.to_string(),
    }
}

/// Finds the runtime and id a segment names. `previous` is the segment before it; `in_pod` is true
/// beneath a Kubernetes pod's cgroup, where a bare id is a container.
fn container_id<'s>(segment: &'s str, previous: &str, in_pod: bool) -> Option<(Runtime, &'s str)> {
    let scoped = [
        ("docker-", Runtime::Docker),
        ("cri-containerd-", Runtime::Containerd),
        ("crio-", Runtime::Crio),
        ("libpod-", Runtime::Podman),
    ];
    for (prefix, runtime) in scoped {
        let Some(rest) = segment.strip_prefix(prefix) else {
            continue;
        };
        let id = rest.strip_suffix(".scope").unwrap_or(rest);
        if is_container_id(id) {
            return Some((runtime, id));
        }
    }

    if !is_container_id(segment) {
        return None;
    }
    if previous == "docker" {
        return Some((Runtime::Docker, segment));
    }
    in_pod.then_some((Runtime::Cri, segment))
}

/// True for exactly 64 hex digits, the length of every runtime's container id.
pub fn is_container_id(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Finds the pod uid a segment names, with dashes: `kubepods-[burstable-|besteffort-]pod<uid>.slice`
/// (systemd driver, underscores for dashes) or, beneath `kubepods`, `pod<uid>` (cgroupfs).
fn pod_uid(segment: &str, under_kubepods: bool) -> Option<String> {
    let uid = if let Some(slice) = segment.strip_prefix("kubepods-") {
        let slice = slice.strip_suffix(".slice")?;
        let slice = slice
            .strip_prefix("burstable-")
            .or_else(|| slice.strip_prefix("besteffort-"))
            .unwrap_or(slice);
        slice.strip_prefix("pod")?.replace('_', "-")
    } else if under_kubepods {
        segment.strip_prefix("pod")?.to_string()
    } else {
        return None;
    };
    is_pod_uid(&uid).then_some(uid)
}

/// True for a UUID (8-4-4-4-12 hex digits) or 32 hex digits, the form the kubelet gives
/// static pods.
pub fn is_pod_uid(uid: &str) -> bool {
    let bytes = uid.as_bytes();
    if bytes.len() == 32 {
        return bytes.iter().all(u8::is_ascii_hexdigit);
    }
    bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

/// Shortens a container id to its first 12 digits, as `docker ps` shows it; other ids are
/// returned unchanged.
pub fn short_id(id: &str) -> &str {
    if is_container_id(id) {
        &id[..12]
    } else {
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f1c5e0b9a7d4c2e8f6a1b3d5c7e9f0a2b4c6d8e0f1a3b5c7d9e1f2a4b6c8d0e";
    const POD: &str = "5f0c2a1e-8b3d-4c7a-9e21-0d4b6a7c8e9f";
    const POD_SYSTEMD: &str = "5f0c2a1e_8b3d_4c7a_9e21_0d4b6a7c8e9f";

    fn container(path: &str) -> Option<(Runtime, String, String)> {
        classify(path)
            .container
            .map(|u| (u.runtime, u.id, u.cgroup))
    }

    fn pod(path: &str) -> Option<(String, String)> {
        classify(path).pod.map(|u| (u.id, u.cgroup))
    }

    #[test]
    fn docker_systemd_scope() {
        let path = format!("/system.slice/docker-{ID}.scope");
        let expected = (Runtime::Docker, ID.to_string(), path.clone());
        assert_eq!(container(&path), Some(expected));
        assert_eq!(classify(&path).service, None);
        assert_eq!(classify(&path).pod, None);
    }

    #[test]
    fn docker_cgroupfs_directory() {
        let path = format!("/docker/{ID}");
        assert_eq!(
            container(&path),
            Some((Runtime::Docker, ID.to_string(), path.clone()))
        );
    }

    #[test]
    fn nested_cgroup_counts_for_its_container() {
        let path = format!("/system.slice/docker-{ID}.scope/system.slice/nginx.service");
        let owner = classify(&path);
        let container = owner.container.unwrap();
        assert_eq!(container.cgroup, format!("/system.slice/docker-{ID}.scope"));
        assert_eq!(owner.service, None);
    }

    #[test]
    fn containerd_in_burstable_pod() {
        let pod_cgroup = format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{POD_SYSTEMD}.slice"
        );
        let path = format!("{pod_cgroup}/cri-containerd-{ID}.scope");
        assert_eq!(
            container(&path),
            Some((Runtime::Containerd, ID.to_string(), path.clone()))
        );
        assert_eq!(pod(&path), Some((POD.to_string(), pod_cgroup)));
    }

    #[test]
    fn besteffort_and_guaranteed_pods() {
        let besteffort = format!(
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{POD_SYSTEMD}.slice"
        );
        assert_eq!(pod(&besteffort).unwrap().0, POD);
        let guaranteed = format!("/kubepods.slice/kubepods-pod{POD_SYSTEMD}.slice");
        assert_eq!(
            pod(&guaranteed),
            Some((POD.to_string(), guaranteed.clone()))
        );
    }

    #[test]
    fn qos_slices_are_not_pods() {
        assert_eq!(pod("/kubepods.slice/kubepods-burstable.slice"), None);
        assert_eq!(pod("/kubepods.slice/kubepods-besteffort.slice"), None);
        assert_eq!(pod("/kubepods/burstable"), None);
    }

    #[test]
    fn static_pod_uid_without_dashes() {
        let uid = "0a1b2c3d4e5f60718293a4b5c6d7e8f9";
        let path =
            format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid}.slice");
        assert_eq!(pod(&path).unwrap().0, uid);
    }

    #[test]
    fn crio_container_but_not_its_monitor() {
        let pod_cgroup = format!(
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{POD_SYSTEMD}.slice"
        );
        let path = format!("{pod_cgroup}/crio-{ID}.scope");
        assert_eq!(container(&path).unwrap().0, Runtime::Crio);

        let monitor = format!("{pod_cgroup}/crio-conmon-{ID}.scope");
        let owner = classify(&monitor);
        assert_eq!(owner.container, None);
        assert_eq!(owner.pod.unwrap().id, POD);
        assert_eq!(
            classify(&format!("/system.slice/crio-conmon-{ID}.scope")),
            Owner::default()
        );
    }

    #[test]
    fn podman_container_but_not_its_monitor() {
        let base = "/user.slice/user-1000.slice/user@1000.service/user.slice";
        let path = format!("{base}/libpod-{ID}.scope");
        let owner = classify(&path);
        assert_eq!(owner.container.unwrap().runtime, Runtime::Podman);
        assert_eq!(owner.service, None);

        let monitor = classify(&format!("{base}/libpod-conmon-{ID}.scope"));
        assert_eq!(monitor.container, None);
        assert_eq!(monitor.service.unwrap().id, "user@1000.service");

        let cgroupfs = format!("/libpod_parent/libpod-{ID}");
        assert_eq!(container(&cgroupfs).unwrap().0, Runtime::Podman);
    }

    #[test]
    fn cgroupfs_pod_containers() {
        let path = format!("/kubepods/burstable/pod{POD}/{ID}");
        assert_eq!(
            container(&path),
            Some((Runtime::Cri, ID.to_string(), path.clone()))
        );
        assert_eq!(
            pod(&path),
            Some((POD.to_string(), format!("/kubepods/burstable/pod{POD}")))
        );

        let guaranteed = format!("/kubepods/pod{POD}/{ID}");
        assert_eq!(pod(&guaranteed).unwrap().0, POD);
        assert_eq!(container(&guaranteed).unwrap().0, Runtime::Cri);

        let crio = format!("/kubepods/besteffort/pod{POD}/crio-{ID}");
        assert_eq!(container(&crio).unwrap().0, Runtime::Crio);
    }

    #[test]
    fn pod_segment_outside_kubepods_is_not_a_pod() {
        assert_eq!(pod(&format!("/system.slice/pod{POD}")), None);
    }

    #[test]
    fn bare_id_outside_docker_and_pods_is_not_a_container() {
        assert_eq!(container(&format!("/system.slice/{ID}")), None);
    }

    #[test]
    fn systemd_service() {
        let owner = classify("/system.slice/nginx.service");
        let service = owner.service.unwrap();
        assert_eq!(service.runtime, Runtime::Systemd);
        assert_eq!(service.id, "nginx.service");
        assert_eq!(service.cgroup, "/system.slice/nginx.service");
        assert_eq!(owner.container, None);
    }

    #[test]
    fn innermost_service_outside_containers() {
        let path = "/user.slice/user-1000.slice/user@1000.service/app.slice/backup.service";
        let owner = classify(path);
        assert_eq!(owner.service.unwrap().id, "backup.service");
    }

    #[test]
    fn scopes_slices_and_root_name_nothing() {
        assert_eq!(classify("/"), Owner::default());
        assert_eq!(classify("/init.scope"), Owner::default());
        assert_eq!(
            classify("/user.slice/user-1000.slice/session-2.scope"),
            Owner::default()
        );
    }

    #[test]
    fn id_must_be_exactly_64_hex_digits() {
        let short = &ID[..63];
        let long = format!("{ID}a");
        let not_hex = format!("{}g", &ID[..63]);
        for id in [short, long.as_str(), not_hex.as_str()] {
            assert_eq!(
                container(&format!("/system.slice/docker-{id}.scope")),
                None,
                "{id}"
            );
            assert_eq!(container(&format!("/docker/{id}")), None, "{id}");
            assert_eq!(container(&format!("/kubepods/pod{POD}/{id}")), None, "{id}");
        }
        assert_eq!(
            container(&format!("/system.slice/docker-{ID}.scope.extra")),
            None
        );
    }

    #[test]
    fn namespace_relative_path_is_classified_by_its_segments() {
        let path = format!("/../../system.slice/docker-{ID}.scope");
        let unit = classify(&path).container.unwrap();
        assert_eq!(unit.id, ID);
        assert_eq!(unit.cgroup, path);
    }

    #[test]
    fn path_with_colon_keeps_it_in_the_unit_name() {
        let owner = classify("/system.slice/app@a:b.service");
        assert_eq!(owner.service.unwrap().id, "app@a:b.service");
    }

    #[test]
    fn short_id_is_12_digits_of_a_container_id() {
        assert_eq!(short_id(ID), "3f1c5e0b9a7d");
        assert_eq!(short_id("nginx.service"), "nginx.service");
    }
}
