//! Facts that every Linux collector needs and that do not change between samples: clock ticks,
//! page size, which network namespace and mount table to read, whether the procfs root is a
//! replayed tree, AegisIR's own pid in the procfs PID namespace, and the user table. They are
//! decided once, when the collector starts: a procfs root does not gain or lose pid 1 or the
//! replay marker while a collector reads it. A per-sample copy also carries the files that several collectors parse, so each
//! is read once per sample.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::cpu::stat::KernelStat;
use super::host::loadavg::{self, LoadAverage};
use crate::gaps::GapLog;
use crate::raw::{Reader, Roots, Tree};
use crate::{CaptureOptions, PlatformError};

#[derive(Debug, Clone)]
pub struct Context {
    pub roots: Roots,
    /// `USER_HZ`, the unit of CPU times in `/proc/PID/stat` and `/proc/stat`.
    pub ticks_per_sec: u64,
    pub page_size: u64,
    /// Folder under the procfs root holding the network files: `net` for the reader's own
    /// namespace, `1/net` for the host's when reading a host procfs mounted elsewhere.
    pub net_dir: String,
    /// `self` or `pid1`, recorded in the snapshot's sources.
    pub net_namespace: String,
    /// True when the mount table is read from `1/` rather than `self/`: a procfs root other
    /// than `/proc` that has `1/mountinfo`, like the network files.
    pub host_mounts: bool,
    /// True when the procfs root was written from raw evidence (see [`Reader::with_replay`]).
    pub replay: bool,
    /// AegisIR's own pid as the procfs root numbers it, from the `self` link.
    pub self_pid: Option<i32>,
    /// User names by uid, from `<rootfs>/etc/passwd`.
    pub users: HashMap<u32, String>,
    /// When the current sample must stop doing optional work; set by [`Context::for_sample`].
    pub deadline: Option<Instant>,
    /// The deadline of the collector now reading, set by [`Context::start_collector`].
    pub collector_deadline: Option<Instant>,
    /// Time each collector may take.
    pub collector_budget: Duration,
    pub socket_owners: bool,
    /// Files read once per sample and parsed for more than one collector; empty in the
    /// long-lived context and fresh in every copy that [`Context::for_sample`] makes.
    pub shared: SharedFiles,
}

/// `/proc/stat` (CPU times for the CPU collector, boot time for host and processes) and
/// `/proc/loadavg` (load for host, the thread count for the process collector), each parsed
/// by the first collector that needs it. `None` inside means the read or parse failed and
/// the gap is already recorded.
#[derive(Debug, Clone, Default)]
pub struct SharedFiles {
    stat: OnceLock<Option<KernelStat>>,
    loadavg: OnceLock<Option<LoadAverage>>,
}

impl Context {
    pub fn new(options: &CaptureOptions) -> Result<Self, PlatformError> {
        let roots = options.roots.clone();
        // Every read goes through a reader, so that audits see it and it stays under the roots.
        let mut reader = Reader::without_recording(roots.clone());
        reader
            .list(Tree::Proc, "")
            .map_err(|error| PlatformError::ProcfsRoot {
                path: roots.procfs.display().to_string(),
                source: std::io::Error::other(error.detail),
            })?;

        let default_proc = roots.procfs == std::path::Path::new("/proc");
        let (net_dir, net_namespace) = if default_proc || !reader.exists(Tree::Proc, "1/net") {
            ("net".to_string(), "self".to_string())
        } else {
            ("1/net".to_string(), "pid1".to_string())
        };
        let host_mounts = !default_proc && reader.exists(Tree::Proc, "1/mountinfo");

        Ok(Context {
            ticks_per_sec: sysconf(libc::_SC_CLK_TCK).unwrap_or(100),
            page_size: sysconf(libc::_SC_PAGESIZE).unwrap_or(4096),
            net_dir,
            net_namespace,
            host_mounts,
            replay: reader.is_replay(),
            self_pid: read_self_pid(&mut reader),
            users: read_passwd(&mut reader),
            deadline: None,
            collector_deadline: None,
            collector_budget: options.collector_deadline,
            socket_owners: options.socket_owners,
            shared: SharedFiles::default(),
            roots,
        })
    }

    /// Copies the context for one sample, with the deadline set from now and no shared file
    /// read yet.
    pub fn for_sample(&self, options: &CaptureOptions) -> Context {
        Context {
            deadline: Some(Instant::now() + options.deadline),
            collector_deadline: None,
            collector_budget: options.collector_deadline,
            shared: SharedFiles::default(),
            ..self.clone()
        }
    }

    /// Parses `/proc/stat` on the first call of a sample and returns the same parse after.
    /// Call it on a copy from [`Context::for_sample`], because the long-lived context would keep
    /// its first parse for good.
    pub fn kernel_stat(&self, reader: &mut Reader, gaps: &mut GapLog) -> Option<&KernelStat> {
        self.shared
            .stat
            .get_or_init(|| super::cpu::stat::read(reader, gaps))
            .as_ref()
    }

    /// Parses `/proc/loadavg` on the first call of a sample and returns the same parse after.
    pub fn load_average(&self, reader: &mut Reader, gaps: &mut GapLog) -> Option<&LoadAverage> {
        self.shared
            .loadavg
            .get_or_init(|| loadavg::read(reader, gaps))
            .as_ref()
    }

    /// Starts the budget of the next collector.
    pub fn start_collector(&mut self) {
        self.collector_deadline = Some(Instant::now() + self.collector_budget);
    }

    /// True once the sample's deadline or the current collector's has passed.
    pub fn past_deadline(&self) -> bool {
        let now = Instant::now();
        [self.deadline, self.collector_deadline]
            .into_iter()
            .flatten()
            .any(|deadline| now >= deadline)
    }

    /// Returns the user name for a uid, if the passwd file has it.
    pub fn user_name(&self, uid: u32) -> Option<String> {
        self.users.get(&uid).cloned()
    }

    /// Returns the path of a network file such as `tcp` or `dev`, relative to the procfs root.
    pub fn net_file(&self, name: &str) -> String {
        format!("{}/{}", self.net_dir, name)
    }
}

fn sysconf(name: libc::c_int) -> Option<u64> {
    // SAFETY: sysconf has no preconditions; it returns -1 for an unknown name.
    let value = unsafe { libc::sysconf(name) };
    (value > 0).then_some(value as u64)
}

/// Reads the `self` link of the procfs root, which names the reader's pid in the PID
/// namespace of that procfs mount (it differs from `getpid()` across namespaces).
fn read_self_pid(reader: &mut Reader) -> Option<i32> {
    let target = reader.read_link(Tree::Proc, "self").ok()?;
    target.file_name()?.to_str()?.parse().ok()
}

/// Parses `<rootfs>/etc/passwd` into uid → name; an unreadable file gives an empty table and
/// numeric uids are shown instead.
fn read_passwd(reader: &mut Reader) -> HashMap<u32, String> {
    let Ok(text) = reader.read(Tree::Root, "etc/passwd") else {
        return HashMap::new();
    };
    parse_passwd(&String::from_utf8_lossy(text))
}

pub fn parse_passwd(text: &str) -> HashMap<u32, String> {
    let mut users = HashMap::new();
    for line in text.lines() {
        let mut fields = line.split(':');
        let (Some(name), Some(_), Some(uid)) = (fields.next(), fields.next(), fields.next()) else {
            continue;
        };
        if let Ok(uid) = uid.parse::<u32>() {
            users.entry(uid).or_insert_with(|| name.to_string());
        }
    }
    users
}

/// The tree a context reads network files from, for readers that need it.
pub const NET_TREE: Tree = Tree::Proc;

/// Contexts and readers over the trees in `fixtures/hosts`, for tests.
#[cfg(test)]
pub mod fixture {
    use std::path::PathBuf;

    use super::Context;
    use crate::raw::{Reader, Roots};
    use crate::CaptureOptions;

    /// Returns the roots of `fixtures/hosts/<name>`: `proc/` and `root/` beneath it.
    pub fn roots(name: &str) -> Roots {
        let base = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../fixtures/hosts")
            .join(name);
        Roots {
            procfs: base.join("proc"),
            sysfs: base.join("sys"),
            rootfs: base.join("root"),
        }
    }

    /// A per-sample context for the fixture with 100 ticks per second and 4 KiB pages, the
    /// units its files are written in, whatever the machine running the tests uses.
    pub fn context(roots: &Roots) -> Context {
        let options = CaptureOptions {
            roots: roots.clone(),
            ..CaptureOptions::default()
        };
        let mut ctx = Context::new(&options).unwrap().for_sample(&options);
        ctx.ticks_per_sec = 100;
        ctx.page_size = 4096;
        ctx
    }

    pub fn reader(roots: &Roots) -> Reader {
        Reader::new(roots.clone())
    }

    /// Returns a reader and a per-sample context for `fixtures/hosts/<name>`.
    pub fn reader_and_context(name: &str) -> (Reader, Context) {
        let roots = roots(name);
        (reader(&roots), context(&roots))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_maps_uid_to_first_name() {
        let users = parse_passwd("root:x:0:0:root:/root:/bin/bash\nbad line\nwww:x:33:33::/:\n");
        assert_eq!(users.get(&0).map(String::as_str), Some("root"));
        assert_eq!(users.get(&33).map(String::as_str), Some("www"));
        assert_eq!(users.len(), 2);
    }
}
