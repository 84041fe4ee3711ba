//! The Slack outbox: messages waiting for delivery, one JSON file each.
//!
//! A message is written to a temporary file, synced and renamed, so the delivery task never
//! reads half a message. Names are a zero-padded sequence number that continues from the
//! highest one on disk, so name order is enqueue order, across restarts too. A delivered
//! message is removed. One that Slack rejected moves to `rejected/` and stays there for an
//! operator to read. One that ran out of attempts moves to `failed/`. It goes back into the
//! queue, in its old place because it keeps its name, when the outbox is opened and when the
//! delivery task calls [`Outbox::requeue_failed`] after a cool-down.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::SlackError;

const REJECTED_DIR: &str = "rejected";
const FAILED_DIR: &str = "failed";
const TEMP_PREFIX: &str = ".tmp-";
const EXTENSION: &str = "json";

/// A directory of pending Slack messages.
#[derive(Debug)]
pub struct Outbox {
    dir: PathBuf,
    next_sequence: AtomicU64,
}

impl Outbox {
    /// Opens the outbox at `dir`, creating it when missing. Removes temporary files that a
    /// crash left behind and moves messages from `failed/` back into the queue.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Outbox, SlackError> {
        let dir = dir.into();
        for sub in [dir.clone(), dir.join(REJECTED_DIR), dir.join(FAILED_DIR)] {
            fs::create_dir_all(&sub).map_err(|source| {
                outbox_error("create the Slack outbox directory", &sub, source)
            })?;
        }

        remove_temp_files(&dir)?;
        requeue_failed(&dir)?;

        let highest = [dir.clone(), dir.join(REJECTED_DIR)]
            .iter()
            .map(|sub| highest_sequence(sub))
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .max()
            .unwrap_or(0);
        Ok(Outbox {
            dir,
            next_sequence: AtomicU64::new(highest + 1),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes one message body as the newest file in the queue and returns its path.
    pub fn push(&self, body: &[u8]) -> Result<PathBuf, SlackError> {
        let sequence = self.next_sequence.fetch_add(1, Ordering::Relaxed);
        let name = file_name(sequence);
        let temp = self.dir.join(format!("{TEMP_PREFIX}{name}"));
        let path = self.dir.join(&name);

        write_synced(&temp, body).map_err(|source| {
            let _ = fs::remove_file(&temp);
            outbox_error("write the Slack outbox file", &temp, source)
        })?;
        fs::rename(&temp, &path)
            .map_err(|source| outbox_error("rename the Slack outbox file", &temp, source))?;
        Ok(path)
    }

    /// Returns the pending messages, oldest first.
    pub fn pending(&self) -> Result<Vec<PathBuf>, SlackError> {
        message_files(&self.dir)
    }

    /// Returns the messages Slack rejected, oldest first.
    pub fn rejected(&self) -> Result<Vec<PathBuf>, SlackError> {
        message_files(&self.dir.join(REJECTED_DIR))
    }

    /// Returns the messages that ran out of attempts and wait for their next turn, oldest first.
    pub fn failed(&self) -> Result<Vec<PathBuf>, SlackError> {
        message_files(&self.dir.join(FAILED_DIR))
    }

    /// Removes a delivered message.
    pub fn remove(&self, path: &Path) -> Result<(), SlackError> {
        match fs::remove_file(path) {
            Err(source) if source.kind() != io::ErrorKind::NotFound => {
                Err(outbox_error("remove the Slack outbox file", path, source))
            }
            _ => Ok(()),
        }
    }

    /// Moves a message Slack rejected to `rejected/` and returns its new path.
    pub fn reject(&self, path: &Path) -> Result<PathBuf, SlackError> {
        self.move_to(path, REJECTED_DIR)
    }

    /// Moves a message that ran out of attempts to `failed/` and returns its new path.
    pub fn fail(&self, path: &Path) -> Result<PathBuf, SlackError> {
        self.move_to(path, FAILED_DIR)
    }

    /// Moves every message in `failed/` back into the queue and returns how many moved.
    pub fn requeue_failed(&self) -> Result<usize, SlackError> {
        requeue_failed(&self.dir)
    }

    fn move_to(&self, path: &Path, sub: &str) -> Result<PathBuf, SlackError> {
        let name = path.file_name().unwrap_or_default();
        let target = self.dir.join(sub).join(name);
        fs::rename(path, &target)
            .map_err(|source| outbox_error("move the Slack outbox file", path, source))?;
        Ok(target)
    }
}

fn outbox_error(operation: &'static str, path: &Path, source: io::Error) -> SlackError {
    SlackError::Outbox {
        operation,
        path: path.to_path_buf(),
        source,
    }
}

fn file_name(sequence: u64) -> String {
    format!("{sequence:020}.{EXTENSION}")
}

/// Returns the sequence number of a message file name, or `None` for any other file.
fn sequence_of(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(EXTENSION)?.strip_suffix('.')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn write_synced(path: &Path, body: &[u8]) -> io::Result<()> {
    let mut file = fs::File::create(path)?;
    file.write_all(body)?;
    file.sync_all()
}

/// Lists the message files directly in `dir`, in sequence order.
fn message_files(dir: &Path) -> Result<Vec<PathBuf>, SlackError> {
    let entries = fs::read_dir(dir)
        .map_err(|source| outbox_error("read the Slack outbox directory", dir, source))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry =
            entry.map_err(|source| outbox_error("read the Slack outbox directory", dir, source))?;
        let name = entry.file_name();
        if let Some(sequence) = name.to_str().and_then(sequence_of) {
            files.push((sequence, entry.path()));
        }
    }
    files.sort();
    Ok(files.into_iter().map(|(_, path)| path).collect())
}

fn highest_sequence(dir: &Path) -> Result<u64, SlackError> {
    let files = message_files(dir)?;
    let highest = files
        .iter()
        .filter_map(|path| path.file_name()?.to_str().and_then(sequence_of))
        .max();
    Ok(highest.unwrap_or(0))
}

fn remove_temp_files(dir: &Path) -> Result<(), SlackError> {
    let entries = fs::read_dir(dir)
        .map_err(|source| outbox_error("read the Slack outbox directory", dir, source))?;
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
            let path = entry.path();
            fs::remove_file(&path)
                .map_err(|source| outbox_error("remove the Slack outbox file", &path, source))?;
        }
    }
    Ok(())
}

/// Moves every message in `failed/` back into the queue under its own name, which keeps its
/// place in the order, and returns how many moved.
fn requeue_failed(dir: &Path) -> Result<usize, SlackError> {
    let failed = message_files(&dir.join(FAILED_DIR))?;
    for path in &failed {
        let target = dir.join(path.file_name().unwrap_or_default());
        fs::rename(path, &target)
            .map_err(|source| outbox_error("move the Slack outbox file", path, source))?;
    }
    Ok(failed.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(paths: &[PathBuf]) -> Vec<String> {
        paths
            .iter()
            .map(|path| path.file_name().unwrap().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn push_keeps_enqueue_order() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path()).unwrap();

        for body in ["a", "b", "c"] {
            outbox.push(body.as_bytes()).unwrap();
        }

        let pending = outbox.pending().unwrap();
        let bodies: Vec<String> = pending
            .iter()
            .map(|path| fs::read_to_string(path).unwrap())
            .collect();
        assert_eq!(bodies, vec!["a", "b", "c"]);
        assert_eq!(
            names(&pending),
            vec![
                "00000000000000000001.json",
                "00000000000000000002.json",
                "00000000000000000003.json"
            ]
        );
    }

    #[test]
    fn reopen_continues_sequence_after_existing_files() {
        let dir = tempfile::tempdir().unwrap();
        let first = Outbox::open(dir.path()).unwrap();
        first.push(b"old").unwrap();
        let rejected = first.push(b"rejected").unwrap();
        first.reject(&rejected).unwrap();
        drop(first);

        let second = Outbox::open(dir.path()).unwrap();
        second.push(b"new").unwrap();

        assert_eq!(
            names(&second.pending().unwrap()),
            vec!["00000000000000000001.json", "00000000000000000003.json"]
        );
    }

    #[test]
    fn open_removes_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(".tmp-00000000000000000007.json"), b"half").unwrap();

        let outbox = Outbox::open(dir.path()).unwrap();

        assert!(!dir.path().join(".tmp-00000000000000000007.json").exists());
        assert!(outbox.pending().unwrap().is_empty());
    }

    #[test]
    fn open_requeues_failed_messages_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let first = Outbox::open(dir.path()).unwrap();
        let failed = first.push(b"failed").unwrap();
        first.push(b"later").unwrap();
        first.fail(&failed).unwrap();
        assert_eq!(first.pending().unwrap().len(), 1);
        assert_eq!(first.failed().unwrap().len(), 1);
        drop(first);

        let second = Outbox::open(dir.path()).unwrap();

        let bodies: Vec<String> = second
            .pending()
            .unwrap()
            .iter()
            .map(|path| fs::read_to_string(path).unwrap())
            .collect();
        assert_eq!(bodies, vec!["failed", "later"]);
        assert!(second.failed().unwrap().is_empty());
    }

    #[test]
    fn requeue_failed_restores_order_while_open() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path()).unwrap();
        let first = outbox.push(b"first").unwrap();
        let second = outbox.push(b"second").unwrap();
        outbox.push(b"third").unwrap();
        outbox.fail(&second).unwrap();
        outbox.fail(&first).unwrap();

        let moved = outbox.requeue_failed().unwrap();

        assert_eq!(moved, 2);
        let bodies: Vec<String> = outbox
            .pending()
            .unwrap()
            .iter()
            .map(|path| fs::read_to_string(path).unwrap())
            .collect();
        assert_eq!(bodies, vec!["first", "second", "third"]);
        assert!(outbox.failed().unwrap().is_empty());
        assert_eq!(outbox.requeue_failed().unwrap(), 0);
    }

    #[test]
    fn pending_ignores_other_files() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path()).unwrap();
        fs::write(dir.path().join("notes.txt"), b"x").unwrap();
        fs::write(dir.path().join("12ab.json"), b"x").unwrap();
        fs::write(dir.path().join(".json"), b"x").unwrap();

        assert!(outbox.pending().unwrap().is_empty());
    }

    #[test]
    fn remove_of_missing_file_is_ok() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path()).unwrap();

        assert!(outbox
            .remove(&dir.path().join("00000000000000000009.json"))
            .is_ok());
    }

    #[test]
    fn outbox_error_names_path() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("not-a-dir");
        fs::write(&blocker, b"x").unwrap();

        let error = Outbox::open(blocker.join("outbox")).unwrap_err();

        let text = error.to_string();
        assert!(
            text.starts_with("failed to create the Slack outbox directory"),
            "{text}"
        );
        assert!(text.contains("not-a-dir"), "{text}");
    }
}
