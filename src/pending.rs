//! Capture jobs waiting for the worker, kept on disk so that a restart or a crash loses none.
//!
//! The intake writes `<data>/.aegisir/pending/<incident>.json` before it replies 202, and the
//! worker removes the file once the capture is journaled as captured or failed. At start-up
//! every file still there is queued again. A file is written to a temporary name and renamed,
//! so a crash leaves either the whole job or none of it.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::alert::Notification;
use crate::intake::CaptureJob;
use crate::store::Trigger;

/// Suffix of a job file while it is written, before the rename.
const PARTIAL_SUFFIX: &str = ".partial";

#[derive(Debug, thiserror::Error)]
pub enum PendingError {
    #[error("failed to write pending capture {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("failed to remove pending capture {path}: {source}")]
    Remove {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("failed to read the pending captures in {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("invalid incident id {0:?} for a pending capture")]
    InvalidIncident(String),
}

/// One capture job as stored on disk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingJob {
    pub incident_id: String,
    pub trigger: Trigger,
    /// The request body exactly as received, in standard base64; `None` for a manual trigger.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_base64: Option<String>,
    pub queued_at: DateTime<Utc>,
}

impl PendingJob {
    pub fn of(job: &CaptureJob) -> PendingJob {
        let engine = base64::engine::general_purpose::STANDARD;
        PendingJob {
            incident_id: job.incident_id.clone(),
            trigger: job.trigger.clone(),
            body_base64: job.body.as_ref().map(|body| engine.encode(body)),
            queued_at: Utc::now(),
        }
    }

    /// Turns the stored job back into a queued capture. A body that no longer decodes or parses
    /// still captures, without the notification.
    pub fn into_job(self) -> CaptureJob {
        let engine = base64::engine::general_purpose::STANDARD;
        let body = self
            .body_base64
            .and_then(|text| engine.decode(text).ok())
            .map(Bytes::from);
        let notification = body
            .as_deref()
            .and_then(|body| serde_json::from_slice::<Notification>(body).ok())
            .map(Arc::new);
        CaptureJob {
            incident_id: self.incident_id,
            trigger: self.trigger,
            notification,
            body,
            queued_at: Instant::now(),
        }
    }
}

/// The pending jobs that loaded, and the files that did not parse with their error.
pub type LoadedJobs = (Vec<PendingJob>, Vec<(PathBuf, String)>);

/// The directory of pending job files.
#[derive(Debug, Clone)]
pub struct PendingJobs {
    dir: PathBuf,
}

impl PendingJobs {
    /// Returns the pending jobs of a data directory; the directory is created on first write.
    pub fn in_data_dir(data_dir: &Path) -> PendingJobs {
        PendingJobs {
            dir: data_dir.join(".aegisir").join("pending"),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes a job file (temporary name, then rename) and syncs it before returning.
    pub fn save(&self, job: &PendingJob) -> Result<(), PendingError> {
        let path = self.path_of(&job.incident_id)?;
        let partial = path.with_extension(format!("json{PARTIAL_SUFFIX}"));
        let write_error = |source| PendingError::Write {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(&self.dir).map_err(write_error)?;

        let json = serde_json::to_vec(job).expect("pending jobs serialize to JSON");
        let mut file = std::fs::File::create(&partial).map_err(write_error)?;
        let written = file.write_all(&json).and_then(|()| file.sync_all());
        if let Err(source) = written.and_then(|()| std::fs::rename(&partial, &path)) {
            let _ = std::fs::remove_file(&partial);
            return Err(write_error(source));
        }
        Ok(())
    }

    /// Removes a job file; a file that is already gone is not an error.
    pub fn remove(&self, incident: &str) -> Result<(), PendingError> {
        let path = self.path_of(incident)?;
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(PendingError::Remove { path, source }),
        }
    }

    /// Returns whether a job file exists for an incident.
    pub fn contains(&self, incident: &str) -> bool {
        self.path_of(incident).is_ok_and(|path| path.is_file())
    }

    /// Reads every job file, oldest first. Files that do not parse are returned apart with
    /// their error, and left in place for a person to look at.
    pub fn load_all(&self) -> Result<LoadedJobs, PendingError> {
        let read_error = |source| PendingError::Read {
            path: self.dir.clone(),
            source,
        };
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return Ok((Vec::new(), Vec::new()))
            }
            Err(error) => return Err(read_error(error)),
        };

        let mut jobs = Vec::new();
        let mut invalid = Vec::new();
        for entry in entries {
            let path = entry.map_err(read_error)?.path();
            if path.extension().is_none_or(|ext| ext != "json") {
                let _ = std::fs::remove_file(&path);
                continue;
            }
            match read_job(&path) {
                Ok(job) => jobs.push(job),
                Err(error) => invalid.push((path, error)),
            }
        }
        jobs.sort_by_key(|job| job.queued_at);
        Ok((jobs, invalid))
    }

    fn path_of(&self, incident: &str) -> Result<PathBuf, PendingError> {
        let plain = !incident.is_empty()
            && incident
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
            && !incident.starts_with('.');
        if !plain {
            return Err(PendingError::InvalidIncident(incident.to_string()));
        }
        Ok(self.dir.join(format!("{incident}.json")))
    }
}

fn read_job(path: &Path) -> Result<PendingJob, String> {
    let bytes = std::fs::read(path).map_err(|error| error.to_string())?;
    serde_json::from_slice(&bytes).map_err(|error| error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::TriggerKind;

    fn job(incident: &str, body: Option<&'static [u8]>) -> CaptureJob {
        CaptureJob {
            incident_id: incident.to_string(),
            trigger: Trigger {
                kind: TriggerKind::Manual,
                incident_id: incident.to_string(),
                group_key: None,
                receiver: None,
                alerts: Vec::new(),
            },
            notification: None,
            body: body.map(Bytes::from_static),
            queued_at: Instant::now(),
        }
    }

    #[test]
    fn saved_job_loads_back_with_exact_body() {
        let dir = tempfile::tempdir().unwrap();
        let pending = PendingJobs::in_data_dir(dir.path());
        let body: &[u8] = b"{\"receiver\": \"aegisir\", \"alerts\": []}";
        pending
            .save(&PendingJob::of(&job("inc-1", Some(body))))
            .unwrap();

        let (jobs, invalid) = pending.load_all().unwrap();
        assert!(invalid.is_empty());
        assert_eq!(jobs.len(), 1);
        let restored = jobs[0].clone().into_job();
        assert_eq!(restored.incident_id, "inc-1");
        assert_eq!(restored.body.as_deref(), Some(body));
        assert_eq!(restored.notification.unwrap().receiver, "aegisir");
        assert!(pending.contains("inc-1"));
    }

    #[test]
    fn removed_job_is_gone_and_second_remove_succeeds() {
        let dir = tempfile::tempdir().unwrap();
        let pending = PendingJobs::in_data_dir(dir.path());
        pending.save(&PendingJob::of(&job("inc-1", None))).unwrap();

        pending.remove("inc-1").unwrap();
        pending.remove("inc-1").unwrap();
        assert!(!pending.contains("inc-1"));
        assert!(pending.load_all().unwrap().0.is_empty());
    }

    #[test]
    fn incident_leaving_directory_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let pending = PendingJobs::in_data_dir(dir.path());
        for incident in ["../x", "", ".hidden", "a/b"] {
            let result = pending.save(&PendingJob::of(&job(incident, None)));
            assert!(
                matches!(result, Err(PendingError::InvalidIncident(_))),
                "{incident}"
            );
        }
    }

    #[test]
    fn unreadable_job_file_is_reported_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let pending = PendingJobs::in_data_dir(dir.path());
        std::fs::create_dir_all(pending.dir()).unwrap();
        std::fs::write(pending.dir().join("inc-9.json"), b"{cut").unwrap();
        std::fs::write(pending.dir().join("inc-8.json.partial"), b"{cut").unwrap();

        let (jobs, invalid) = pending.load_all().unwrap();
        assert!(jobs.is_empty());
        assert_eq!(invalid.len(), 1);
        assert_eq!(invalid[0].0, pending.dir().join("inc-9.json"));
        assert!(pending.dir().join("inc-9.json").exists());
        assert!(!pending.dir().join("inc-8.json.partial").exists());
    }
}
