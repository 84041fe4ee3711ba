//! Parsing `/proc/PID/cgroup`: which cgroup a process belongs to.
//!
//! Each line is `hierarchy-ID:controller-list:cgroup-path`. The cgroup v2 (unified) hierarchy
//! has ID 0 and an empty controller list; each cgroup v1 hierarchy has its own ID and
//! controllers. A hybrid host lists both. The path may itself contain `:`, so a line splits at
//! its first two colons only, as procfs-core does. A path that starts with `/..` lies outside
//! the reader's cgroup namespace: it is relative to the namespace root, not to the root of the
//! hierarchy, and is kept exactly as the kernel wrote it.

use std::io::Cursor;

use procfs_core::{FromBufRead, ProcessCGroups};

/// One line of `/proc/PID/cgroup`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupLine {
    pub hierarchy: u32,
    pub controllers: Vec<String>,
    pub path: String,
}

impl CgroupLine {
    /// True for the cgroup v2 line: hierarchy 0 without controllers.
    pub fn is_unified(&self) -> bool {
        self.hierarchy == 0 && self.controllers.is_empty()
    }
}

/// The cgroup version of a membership path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Version {
    V1,
    V2,
}

/// The cgroup that identifies a process's container, pod or service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    /// The path as the kernel wrote it.
    pub path: String,
    pub version: Version,
}

impl Membership {
    /// True when the path is relative to the reader's cgroup namespace (`/../..`), so it
    /// cannot be found under the cgroup mount the reader sees.
    pub fn is_outside_namespace(&self) -> bool {
        is_outside_namespace(&self.path)
    }
}

/// True for a path that climbs above its cgroup namespace root. The kernel writes `..` only
/// at the start of a path, but any `..` segment is checked so that no path read back from a
/// rebuilt tree can leave the cgroup mount.
pub fn is_outside_namespace(path: &str) -> bool {
    path.split('/').any(|segment| segment == "..")
}

/// Parses the lines of a `/proc/PID/cgroup` file. Bytes that are not UTF-8 are replaced, so
/// an odd cgroup name never hides the other lines. `None` when a line does not have the
/// `ID:controllers:path` form.
pub fn parse(bytes: &[u8]) -> Option<Vec<CgroupLine>> {
    let text = String::from_utf8_lossy(bytes);
    let groups = ProcessCGroups::from_buf_read(Cursor::new(text.as_bytes())).ok()?;
    let lines = groups
        .into_iter()
        .map(|group| CgroupLine {
            hierarchy: group.hierarchy,
            controllers: group.controllers,
            path: group.pathname,
        })
        .collect();
    Some(lines)
}

/// Picks the line that names the process's container or service: the cgroup v2 line where
/// there is one (v2 and hybrid hosts), otherwise the v1 `name=systemd` hierarchy, then the
/// `cpu` and `memory` hierarchies, then the first line.
pub fn membership(lines: &[CgroupLine]) -> Option<Membership> {
    if let Some(line) = lines.iter().find(|line| line.is_unified()) {
        return Some(Membership {
            path: line.path.clone(),
            version: Version::V2,
        });
    }

    let has = |line: &&CgroupLine, name: &str| line.controllers.iter().any(|c| c == name);
    let line = lines
        .iter()
        .find(|line| has(line, "name=systemd"))
        .or_else(|| lines.iter().find(|line| has(line, "cpu")))
        .or_else(|| lines.iter().find(|line| has(line, "memory")))
        .or_else(|| lines.first())?;
    Some(Membership {
        path: line.path.clone(),
        version: Version::V1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ID: &str = "3f1c5e0b9a7d4c2e8f6a1b3d5c7e9f0a2b4c6d8e0f1a3b5c7d9e1f2a4b6c8d0e";

    #[test]
    fn v2_line_has_hierarchy_zero_and_no_controllers() {
        let lines = parse(b"0::/system.slice/nginx.service\n").unwrap();
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].hierarchy, 0);
        assert!(lines[0].controllers.is_empty());
        assert_eq!(lines[0].path, "/system.slice/nginx.service");
        assert!(lines[0].is_unified());
    }

    #[test]
    fn v1_lines_keep_controllers() {
        let text = format!(
            "12:cpu,cpuacct:/docker/{ID}\n11:memory:/docker/{ID}\n1:name=systemd:/docker/{ID}\n"
        );
        let lines = parse(text.as_bytes()).unwrap();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].hierarchy, 12);
        assert_eq!(lines[0].controllers, vec!["cpu", "cpuacct"]);
        assert_eq!(lines[2].controllers, vec!["name=systemd"]);
        assert!(!lines[0].is_unified());

        let membership = membership(&lines).unwrap();
        assert_eq!(membership.path, format!("/docker/{ID}"));
        assert_eq!(membership.version, Version::V1);
    }

    #[test]
    fn hybrid_host_prefers_the_unified_line() {
        let text = "5:memory:/system.slice/nginx.service\n\
                    1:name=systemd:/system.slice/nginx.service\n\
                    0::/system.slice/nginx.service\n";
        let lines = parse(text.as_bytes()).unwrap();
        let membership = membership(&lines).unwrap();
        assert_eq!(membership.version, Version::V2);
        assert_eq!(membership.path, "/system.slice/nginx.service");
    }

    #[test]
    fn v1_without_systemd_uses_cpu_then_memory() {
        let lines = parse(b"4:memory:/mem\n3:cpu,cpuacct:/cpu\n2:pids:/pids\n").unwrap();
        assert_eq!(membership(&lines).unwrap().path, "/cpu");
        let lines = parse(b"4:pids:/pids\n3:memory:/mem\n").unwrap();
        assert_eq!(membership(&lines).unwrap().path, "/mem");
        let lines = parse(b"4:pids:/pids\n").unwrap();
        assert_eq!(membership(&lines).unwrap().path, "/pids");
    }

    #[test]
    fn path_with_colons_splits_at_first_two() {
        let lines = parse(b"0::/system.slice/app@a:b:c.service\n").unwrap();
        assert_eq!(lines[0].path, "/system.slice/app@a:b:c.service");
        let lines = parse(b"7:net_cls,net_prio:/x:y\n").unwrap();
        assert_eq!(lines[0].controllers, vec!["net_cls", "net_prio"]);
        assert_eq!(lines[0].path, "/x:y");
    }

    #[test]
    fn namespace_relative_path_is_kept_as_written() {
        let lines = parse(b"0::/../../system.slice/nginx.service\n").unwrap();
        let membership = membership(&lines).unwrap();
        assert_eq!(membership.path, "/../../system.slice/nginx.service");
        assert!(membership.is_outside_namespace());
        assert!(is_outside_namespace("/.."));
        assert!(!is_outside_namespace("/..system.slice"));
        assert!(!is_outside_namespace("/system.slice"));
        assert!(is_outside_namespace("/system.slice/../../etc"));
    }

    #[test]
    fn malformed_line_rejects_the_file() {
        assert_eq!(parse(b"0:/no-third-field\n"), None);
        assert_eq!(parse(b"x::/path\n"), None);
    }

    #[test]
    fn empty_file_has_no_membership() {
        let lines = parse(b"").unwrap();
        assert!(lines.is_empty());
        assert_eq!(membership(&lines), None);
    }

    #[test]
    fn non_utf8_path_is_replaced_not_rejected() {
        let lines = parse(b"0::/system.slice/caf\xe9.service\n").unwrap();
        assert_eq!(lines[0].path, "/system.slice/caf\u{fffd}.service");
    }

    proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn line_round_trips_any_path(
            hierarchy in 0u32..64,
            controllers in proptest::collection::vec("[a-z_=]{1,10}", 0..3),
            path in "/[^\n\r]{0,80}",
        ) {
            let line = format!("{hierarchy}:{}:{path}\n", controllers.join(","));
            let lines = parse(line.as_bytes()).unwrap();
            prop_assert_eq!(lines.len(), 1);
            prop_assert_eq!(lines[0].hierarchy, hierarchy);
            prop_assert_eq!(&lines[0].controllers, &controllers);
            prop_assert_eq!(&lines[0].path, &path);
        }
    }
}
