//! The process table from `/proc/PID/*`.
use super::Context;
use crate::gaps::GapLog;
use crate::model::Processes;
use crate::raw::Reader;
use crate::Scope;

#[derive(Debug, Clone, Default)]
pub struct ProcessSample {}

pub fn read(_r: &mut Reader, _ctx: &Context, _scope: Scope, _gaps: &mut GapLog) -> ProcessSample {
    ProcessSample::default()
}

pub fn derive(
    _prev: &ProcessSample,
    _cur: &ProcessSample,
    _ctx: &Context,
    _total_memory: Option<u64>,
    _secs: f64,
) -> Processes {
    Processes::default()
}
