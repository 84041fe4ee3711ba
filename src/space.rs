//! Whether the data directory can take another bundle: it must be writable and have at least
//! `max(intake.min_free_bytes, 2 × the last bundle's size)` free for unprivileged users.
//!
//! The intake asks before it queues a capture and `/readyz` reports the same answer. The result
//! is cached for [`CACHE_FOR`], so a burst of requests costs one `statvfs` and one probe file
//! per second, not one per request.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

/// How long one measurement is reused.
pub const CACHE_FOR: Duration = Duration::from_secs(1);

/// The data directory's state as of the last measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum SpaceStatus {
    Ok {
        free_bytes: u64,
        required_bytes: u64,
    },
    Full {
        free_bytes: u64,
        required_bytes: u64,
    },
    /// The directory is missing, read-only, or a probe file could not be created in it.
    Unwritable,
}

impl SpaceStatus {
    pub fn is_ok(self) -> bool {
        matches!(self, SpaceStatus::Ok { .. })
    }
}

/// Measures the data directory, with a cache.
#[derive(Debug)]
pub struct SpaceCheck {
    dir: PathBuf,
    min_free_bytes: u64,
    last_bundle_bytes: AtomicU64,
    cached: Mutex<Option<(Instant, SpaceStatus)>>,
}

impl SpaceCheck {
    pub fn new(dir: impl Into<PathBuf>, min_free_bytes: u64) -> SpaceCheck {
        SpaceCheck {
            dir: dir.into(),
            min_free_bytes,
            last_bundle_bytes: AtomicU64::new(0),
            cached: Mutex::new(None),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Records the size of the bundle just written; the next bundle needs twice that free.
    pub fn note_bundle(&self, bytes: u64) {
        self.last_bundle_bytes.store(bytes, Ordering::Relaxed);
    }

    /// Returns the free space a capture needs before it is queued.
    pub fn required_bytes(&self) -> u64 {
        let last = self.last_bundle_bytes.load(Ordering::Relaxed);
        self.min_free_bytes.max(last.saturating_mul(2))
    }

    /// Returns the status, measured at most [`CACHE_FOR`] ago.
    pub fn status(&self) -> SpaceStatus {
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, status)) = *cached {
            if at.elapsed() < CACHE_FOR {
                return status;
            }
        }
        let status = self.measure();
        *cached = Some((Instant::now(), status));
        status
    }

    fn measure(&self) -> SpaceStatus {
        let Some(free_bytes) = free_bytes(&self.dir) else {
            return SpaceStatus::Unwritable;
        };
        if !can_create_file(&self.dir) {
            return SpaceStatus::Unwritable;
        }
        let required_bytes = self.required_bytes();
        if free_bytes < required_bytes {
            SpaceStatus::Full {
                free_bytes,
                required_bytes,
            }
        } else {
            SpaceStatus::Ok {
                free_bytes,
                required_bytes,
            }
        }
    }
}

/// Returns the bytes available to unprivileged users on the filesystem of `dir`, or `None`
/// when `statvfs` fails or the filesystem is mounted read-only.
// The casts are no-ops on Linux, but the `statvfs` field types differ on other systems.
#[allow(clippy::unnecessary_cast)]
fn free_bytes(dir: &Path) -> Option<u64> {
    let stats = statvfs(dir)?;
    if stats.f_flag & libc::ST_RDONLY != 0 {
        return None;
    }
    Some((stats.f_bavail as u64).saturating_mul(stats.f_frsize as u64))
}

/// Returns the total size in bytes of the filesystem of `dir`, or `None` when `statvfs` fails.
#[allow(clippy::unnecessary_cast)]
pub fn filesystem_bytes(dir: &Path) -> Option<u64> {
    let stats = statvfs(dir)?;
    Some((stats.f_blocks as u64).saturating_mul(stats.f_frsize as u64))
}

fn statvfs(dir: &Path) -> Option<libc::statvfs> {
    let path = CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs is plain data, so an all-zero value is valid; the call overwrites it.
    let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a NUL-terminated string that outlives the call, and `stats` is a
    // valid, writable statvfs.
    let result = unsafe { libc::statvfs(path.as_ptr(), &mut stats) };
    (result == 0).then_some(stats)
}

/// Returns the filesystem size when `min_free_bytes` exceeds it, so the data directory could
/// never be ready.
pub fn unreachable_min_free(dir: &Path, min_free_bytes: u64) -> Option<u64> {
    filesystem_bytes(dir).filter(|&size| min_free_bytes > size)
}

/// Creates and removes a probe file. Its name starts with `.tmp-`, which the bundle store
/// removes at start-up as a crash leftover.
fn can_create_file(dir: &Path) -> bool {
    let probe = dir.join(format!(".tmp-space-probe-{:016x}", fastrand::u64(..)));
    match std::fs::File::create_new(&probe) {
        Ok(_) => std::fs::remove_file(&probe).is_ok(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writable_dir_with_room_is_ok() {
        let dir = tempfile::tempdir().unwrap();
        let check = SpaceCheck::new(dir.path(), 1);
        let status = check.status();
        assert!(status.is_ok(), "{status:?}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn threshold_above_free_space_is_full() {
        let dir = tempfile::tempdir().unwrap();
        let check = SpaceCheck::new(dir.path(), u64::MAX);
        let status = check.status();
        assert!(
            matches!(
                status,
                SpaceStatus::Full {
                    required_bytes: u64::MAX,
                    ..
                }
            ),
            "{status:?}"
        );
    }

    #[test]
    fn required_bytes_doubles_last_bundle() {
        let check = SpaceCheck::new("/nonexistent", 64);
        assert_eq!(check.required_bytes(), 64);
        check.note_bundle(100);
        assert_eq!(check.required_bytes(), 200);
        check.note_bundle(10);
        assert_eq!(check.required_bytes(), 64);
    }

    #[test]
    fn min_free_above_filesystem_size_is_unreachable() {
        let dir = tempfile::tempdir().unwrap();
        let size = filesystem_bytes(dir.path()).unwrap();
        assert!(size > 0);
        assert_eq!(unreachable_min_free(dir.path(), size + 1), Some(size));
        assert_eq!(unreachable_min_free(dir.path(), size), None);
        assert_eq!(
            unreachable_min_free(&dir.path().join("gone"), u64::MAX),
            None
        );
    }

    #[test]
    fn missing_dir_is_unwritable() {
        let dir = tempfile::tempdir().unwrap();
        let check = SpaceCheck::new(dir.path().join("gone"), 1);
        assert_eq!(check.status(), SpaceStatus::Unwritable);
    }

    #[test]
    fn status_is_cached_for_a_second() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let check = SpaceCheck::new(&data, 1);
        assert!(check.status().is_ok());

        std::fs::remove_dir(&data).unwrap();
        assert!(check.status().is_ok());
        *check.cached.lock().unwrap() = None;
        assert_eq!(check.status(), SpaceStatus::Unwritable);
    }
}
