//! CPU utilisation from `/proc/stat`.
use super::Context;
use crate::gaps::GapLog;
use crate::model::Cpu;
use crate::raw::Reader;
use crate::Scope;

#[derive(Debug, Clone, Default)]
pub struct CpuSample {}

pub fn read(_r: &mut Reader, _ctx: &Context, _scope: Scope, _gaps: &mut GapLog) -> CpuSample {
    CpuSample::default()
}

pub fn derive(_prev: &CpuSample, _cur: &CpuSample) -> Option<Cpu> {
    None
}
