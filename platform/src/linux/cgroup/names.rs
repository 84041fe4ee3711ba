//! Readable names for containers and pods, from files under the root filesystem, without a
//! container runtime socket.
//!
//! - Docker keeps each container's settings in `var/lib/docker/containers/<id>/config.v2.json`;
//!   its `Name` field is the name `docker ps` shows, with a leading `/`.
//! - The kubelet keeps each pod's logs in `var/log/pods/<namespace>_<pod name>_<pod uid>/` and
//!   links each container's log as `var/log/containers/<pod name>_<namespace>_<container
//!   name>-<container id>.log`. Namespaces, pod names and container names are DNS names, which
//!   cannot contain `_`, so the fields split unambiguously.
//!
//! Directory listings are not part of the raw evidence, so the Kubernetes names are only in
//! the snapshot.
// NOTE: Podman names (in `containers.json` of its storage) are not read; Podman containers
// show their short id.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::classify::{is_container_id, is_pod_uid};
use crate::raw::{ReadError, Reader, Tree};

/// The largest `config.v2.json` read. The files Docker writes are typically a few kilobytes.
const MAX_CONFIG_BYTES: u64 = 4 * 1024 * 1024;

/// A pod's name and namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodName {
    pub namespace: String,
    pub name: String,
}

/// A Kubernetes container's name and the pod it runs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeContainerName {
    pub name: String,
    pub pod: PodName,
}

/// The names one full sample found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Names {
    /// Docker names by container id, without the leading `/`.
    pub docker: BTreeMap<String, String>,
    /// Pod names by pod uid.
    pub pods: BTreeMap<String, PodName>,
    /// Kubernetes container names by container id.
    pub kube_containers: BTreeMap<String, KubeContainerName>,
}

/// Reads the Docker name of one container.
///
/// The file is read without recording it in the raw evidence, because its `Config.Env` contains
/// the container's environment, which often carries passwords and tokens.
pub fn read_docker_name(reader: &Reader, id: &str) -> Result<Option<String>, ReadError> {
    let relative = format!("var/lib/docker/containers/{id}/config.v2.json");
    let bytes = reader.read_unrecorded(Tree::Root, &relative, MAX_CONFIG_BYTES)?;
    Ok(parse_docker_name(&bytes))
}

#[derive(Deserialize)]
struct DockerConfig {
    #[serde(rename = "Name")]
    name: Option<String>,
}

/// Parses the `Name` of a Docker `config.v2.json`, without the leading `/`.
pub fn parse_docker_name(bytes: &[u8]) -> Option<String> {
    let config: DockerConfig = serde_json::from_slice(bytes).ok()?;
    let name = config.name?;
    let name = name.strip_prefix('/').unwrap_or(&name);
    (!name.is_empty()).then(|| name.to_string())
}

/// Lists the pods in `var/log/pods`.
pub fn read_pods(reader: &Reader) -> Result<BTreeMap<String, PodName>, ReadError> {
    let entries = reader.list(Tree::Root, "var/log/pods")?;
    Ok(entries
        .iter()
        .filter_map(|entry| parse_pod_dir(entry))
        .collect())
}

/// Lists the container logs in `var/log/containers`.
pub fn read_kube_containers(
    reader: &Reader,
) -> Result<BTreeMap<String, KubeContainerName>, ReadError> {
    let entries = reader.list(Tree::Root, "var/log/containers")?;
    Ok(entries
        .iter()
        .filter_map(|entry| parse_container_log(entry))
        .collect())
}

/// Parses `<namespace>_<pod name>_<pod uid>` into the uid and the names.
pub fn parse_pod_dir(entry: &str) -> Option<(String, PodName)> {
    let mut fields = entry.split('_');
    let (namespace, name, uid) = (fields.next()?, fields.next()?, fields.next()?);
    if fields.next().is_some() || namespace.is_empty() || name.is_empty() || !is_pod_uid(uid) {
        return None;
    }
    let pod = PodName {
        namespace: namespace.to_string(),
        name: name.to_string(),
    };
    Some((uid.to_string(), pod))
}

/// Parses `<pod name>_<namespace>_<container name>-<container id>.log` into the id and names.
pub fn parse_container_log(entry: &str) -> Option<(String, KubeContainerName)> {
    let stem = entry.strip_suffix(".log")?;
    let (front, id) = stem.rsplit_once('-')?;
    if !is_container_id(id) {
        return None;
    }
    let mut fields = front.split('_');
    let (pod, namespace, container) = (fields.next()?, fields.next()?, fields.next()?);
    if fields.next().is_some() || [pod, namespace, container].iter().any(|f| f.is_empty()) {
        return None;
    }
    let name = KubeContainerName {
        name: container.to_string(),
        pod: PodName {
            namespace: namespace.to_string(),
            name: pod.to_string(),
        },
    };
    Some((id.to_string(), name))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f1c5e0b9a7d4c2e8f6a1b3d5c7e9f0a2b4c6d8e0f1a3b5c7d9e1f2a4b6c8d0e";
    const POD: &str = "5f0c2a1e-8b3d-4c7a-9e21-0d4b6a7c8e9f";

    #[test]
    fn docker_name_drops_leading_slash() {
        let config = br#"{"ID":"x","Name":"/web","Config":{"Env":["PASSWORD=hunter2"]}}"#;
        assert_eq!(parse_docker_name(config), Some("web".to_string()));
    }

    #[test]
    fn docker_config_without_name_gives_none() {
        assert_eq!(parse_docker_name(br#"{"ID":"x"}"#), None);
        assert_eq!(parse_docker_name(br#"{"Name":"/"}"#), None);
        assert_eq!(parse_docker_name(b"not json"), None);
    }

    #[test]
    fn pod_dir_splits_namespace_name_uid() {
        let (uid, pod) = parse_pod_dir(&format!("shop_api-7d9c5b6f4-x2kqp_{POD}")).unwrap();
        assert_eq!(uid, POD);
        assert_eq!(pod.namespace, "shop");
        assert_eq!(pod.name, "api-7d9c5b6f4-x2kqp");
    }

    #[test]
    fn pod_dir_with_wrong_shape_is_skipped() {
        assert_eq!(parse_pod_dir("shop_api"), None);
        assert_eq!(parse_pod_dir(&format!("a_b_c_{POD}")), None);
        assert_eq!(parse_pod_dir("shop_api_not-a-uid"), None);
        assert_eq!(parse_pod_dir(&format!("_api_{POD}")), None);
    }

    #[test]
    fn container_log_names_container_pod_and_namespace() {
        let entry = format!("api-7d9c5b6f4-x2kqp_shop_api-server-{ID}.log");
        let (id, name) = parse_container_log(&entry).unwrap();
        assert_eq!(id, ID);
        assert_eq!(name.name, "api-server");
        assert_eq!(name.pod.name, "api-7d9c5b6f4-x2kqp");
        assert_eq!(name.pod.namespace, "shop");
    }

    #[test]
    fn container_log_with_wrong_shape_is_skipped() {
        assert_eq!(parse_container_log(&format!("pod_ns_c-{ID}")), None);
        assert_eq!(
            parse_container_log(&format!("pod_ns_c-{}.log", &ID[..63])),
            None
        );
        assert_eq!(parse_container_log(&format!("pod_c-{ID}.log")), None);
        assert_eq!(parse_container_log(&format!("pod_ns__-{ID}.log")), None);
    }
}
