//! Host facts: hostname, kernel, uptime, boot time, CPUs, load, pressure.
use super::Context;
use crate::gaps::GapLog;
use crate::model::Host;
use crate::raw::Reader;
use crate::Scope;

#[derive(Debug, Clone, Default)]
pub struct HostSample {}

pub fn read(_r: &mut Reader, _ctx: &Context, _scope: Scope, _gaps: &mut GapLog) -> HostSample {
    HostSample::default()
}

pub fn derive(_cur: &HostSample, _ctx: &Context) -> Host {
    Host::default()
}
