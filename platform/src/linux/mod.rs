//! The Linux collector: reads procfs and sysfs through a [`Reader`] rooted at the configured
//! paths, and parses the recorded bytes with procfs-core.
//!
//! Each area has its own module with the same shape: a `*Sample` type holding what one sample
//! read, `read(...)` filling it, and `derive(...)` turning two samples into the model type.
//! This file only wires them together; the gap policy lives in [`GapLog`].

pub mod cgroup;
pub mod context;
pub mod cpu;
pub mod disk;
pub mod filesystem;
pub mod host;
pub mod memory;
pub mod network;
pub mod process;

use std::time::Duration;

use crate::gaps::GapLog;
use crate::model::{Snapshot, Sources, SCHEMA_VERSION};
use crate::raw::{RawFiles, Reader};
use crate::{CaptureOptions, PlatformError, Scope};

pub use context::Context;

pub const BACKEND: &str = "linux";

/// What one Linux sample read.
#[derive(Debug, Clone)]
pub struct Sample {
    pub host: host::HostSample,
    pub cpu: cpu::CpuSample,
    pub memory: memory::MemorySample,
    pub processes: process::ProcessSample,
    pub cgroups: cgroup::CgroupSample,
    pub disks: disk::DiskSample,
    pub filesystems: filesystem::FilesystemSample,
    pub network: network::NetworkSample,
    pub raw: RawFiles,
    pub gaps: GapLog,
}

#[derive(Debug)]
pub struct Collector {
    context: Context,
    cgroup_memberships: cgroup::MembershipCache,
    process_identities: process::IdentityCache,
}

impl Collector {
    pub fn new(options: &CaptureOptions) -> Result<Self, PlatformError> {
        let context = Context::new(options)?;
        Ok(Collector {
            context,
            cgroup_memberships: cgroup::MembershipCache::default(),
            process_identities: process::IdentityCache::default(),
        })
    }

    pub fn context(&self) -> &Context {
        &self.context
    }

    pub fn sample(&self, options: &CaptureOptions, scope: Scope) -> Sample {
        let mut reader = Reader::with_replay(options.roots.clone(), self.context.replay);
        let mut gaps = GapLog::default();
        let mut ctx = self.context.for_sample(options);

        ctx.start_collector();
        let host = host::read(&mut reader, &ctx, scope, &mut gaps);
        ctx.start_collector();
        let cpu = cpu::read(&mut reader, &ctx, scope, &mut gaps);
        ctx.start_collector();
        let memory = memory::read(&mut reader, &ctx, scope, &mut gaps);
        ctx.start_collector();
        let disks = disk::read(&mut reader, &ctx, scope, &mut gaps);
        ctx.start_collector();
        let network = network::read(&mut reader, &ctx, scope, &mut gaps);
        ctx.start_collector();
        let filesystems = filesystem::read(&mut reader, &ctx, scope, &mut gaps);
        // Processes last: walking file descriptors is the expensive part and the one the
        // deadline cuts short.
        ctx.start_collector();
        let processes = process::read_cached(
            &mut reader,
            &ctx,
            scope,
            &mut gaps,
            &self.process_identities,
        );
        let mapped = cgroup::mapped_processes(&processes);
        ctx.start_collector();
        let cgroups = cgroup::read_cached(
            &mut reader,
            &ctx,
            scope,
            &mut gaps,
            &mapped,
            &self.cgroup_memberships,
        );

        Sample {
            host,
            cpu,
            memory,
            processes,
            cgroups,
            disks,
            filesystems,
            network,
            raw: reader.take_raw(),
            gaps,
        }
    }

    /// Derives the snapshot of `current` against `baseline` without touching their raw
    /// evidence.
    pub fn derive(
        &self,
        options: &CaptureOptions,
        baseline: &crate::Sample,
        current: &crate::Sample,
        interval: Duration,
    ) -> Snapshot {
        let prev = &baseline.inner;
        let cur = &current.inner;
        let mut gaps = GapLog::default();
        let secs = interval.as_secs_f64();

        let host = host::derive(&cur.host, &self.context);
        let cpu = cpu::derive(&prev.cpu, &cur.cpu);
        let memory = memory::derive(&prev.memory, &cur.memory);
        let total_memory = memory.as_ref().and_then(|m| m.total_bytes);
        let mut processes = process::derive(
            &prev.processes,
            &cur.processes,
            &self.context,
            total_memory,
            secs,
        );
        let disks = disk::derive(&prev.disks, &cur.disks, secs);
        let filesystems = filesystem::derive(&cur.filesystems);
        let network = network::derive(&prev.network, &cur.network, &cur.processes, secs);
        cgroup::annotate(&cur.cgroups, &mut processes.list);
        let containers = cgroup::derive(&prev.cgroups, &cur.cgroups, &processes.list, secs);

        gaps.extend(cur.gaps.clone());
        let mut gaps = gaps.into_vec();
        gaps.sort();
        gaps.dedup();

        Snapshot {
            schema_version: SCHEMA_VERSION,
            captured_at: current.wall,
            interval_secs: secs,
            backend: BACKEND.to_string(),
            sources: Sources {
                procfs: options.roots.procfs.display().to_string(),
                sysfs: options.roots.sysfs.display().to_string(),
                rootfs: options.roots.rootfs.display().to_string(),
                net_namespace: self.context.net_namespace.clone(),
            },
            host,
            cpu,
            memory,
            processes,
            disks,
            filesystems,
            network,
            containers,
            gaps,
        }
    }
}

impl Sample {
    pub fn raw(&self) -> &RawFiles {
        &self.raw
    }

    pub fn into_raw(self) -> RawFiles {
        self.raw
    }
}
