//! The one place that turns a failed read into a recorded gap.
//!
//! Collectors call [`GapLog::value`] on every fallible read: success passes the value through,
//! failure records a [`Gap`] with the reason and yields `None`, so an unreadable value is
//! always absent and explained, never zero.

use crate::model::{Gap, GapReason};
use crate::raw::ReadError;

/// The gaps recorded during one sample or snapshot.
#[derive(Debug, Default, Clone)]
pub struct GapLog {
    gaps: Vec<Gap>,
}

impl GapLog {
    /// Passes a value through, or records the read error as a gap of `collector`.
    pub fn value<T>(&mut self, collector: &str, result: Result<T, ReadError>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                self.record(collector, &error);
                None
            }
        }
    }

    /// Records a read error as a gap of `collector`.
    pub fn record(&mut self, collector: &str, error: &ReadError) {
        self.push(
            collector,
            format!("{}/{}", error.tree.prefix(), error.path),
            error.reason,
            error.detail.clone(),
        );
    }

    /// Records a gap that did not come from a read, such as a parse failure or a deadline.
    pub fn push(
        &mut self,
        collector: &str,
        subject: impl Into<String>,
        reason: GapReason,
        detail: impl Into<String>,
    ) {
        self.gaps.push(Gap {
            collector: collector.to_string(),
            subject: subject.into(),
            reason,
            detail: detail.into(),
        });
    }

    pub fn extend(&mut self, other: GapLog) {
        self.gaps.extend(other.gaps);
    }

    pub fn is_empty(&self) -> bool {
        self.gaps.is_empty()
    }

    pub fn into_vec(self) -> Vec<Gap> {
        self.gaps
    }
}
