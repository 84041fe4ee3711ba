//! Memory from `/proc/meminfo` and `/proc/vmstat`.
use super::Context;
use crate::gaps::GapLog;
use crate::model::Memory;
use crate::raw::Reader;
use crate::Scope;

#[derive(Debug, Clone, Default)]
pub struct MemorySample {}

pub fn read(_r: &mut Reader, _ctx: &Context, _scope: Scope, _gaps: &mut GapLog) -> MemorySample {
    MemorySample::default()
}

pub fn derive(_prev: &MemorySample, _cur: &MemorySample) -> Option<Memory> {
    None
}
