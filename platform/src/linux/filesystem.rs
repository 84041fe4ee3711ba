//! Mounted filesystems from the mount table and statvfs.
use super::Context;
use crate::gaps::GapLog;
use crate::model::Filesystem;
use crate::raw::Reader;
use crate::Scope;

#[derive(Debug, Clone, Default)]
pub struct FilesystemSample {}

pub fn read(_r: &mut Reader, _ctx: &Context, _scope: Scope, _gaps: &mut GapLog) -> FilesystemSample {
    FilesystemSample::default()
}

pub fn derive(_cur: &FilesystemSample) -> Vec<Filesystem> {
    Vec::new()
}
