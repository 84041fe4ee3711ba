//! Interfaces, TCP states, retransmits and listening sockets.
use super::process::ProcessSample;
use super::Context;
use crate::gaps::GapLog;
use crate::model::Network;
use crate::raw::Reader;
use crate::Scope;

#[derive(Debug, Clone, Default)]
pub struct NetworkSample {}

pub fn read(_r: &mut Reader, _ctx: &Context, _scope: Scope, _gaps: &mut GapLog) -> NetworkSample {
    NetworkSample::default()
}

pub fn derive(
    _prev: &NetworkSample,
    _cur: &NetworkSample,
    _owners: &ProcessSample,
    _secs: f64,
) -> Option<Network> {
    None
}
