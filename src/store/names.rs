//! Bundle ids and the file names allowed inside a bundle.
//!
//! Both checks are allow-lists: an id is the capture time plus 12 hex digits, and a file name
//! is a short run of ASCII letters, digits, `.`, `_` and `-` that does not start with a dot.
//! Anything else (separators, `..`, NUL, `%`, absolute paths) is rejected before a path is
//! built, so no value from a request can name a file outside its bundle.

use std::sync::LazyLock;

use chrono::{DateTime, NaiveDateTime, Utc};
use regex::Regex;

/// Number of hex digits of the bundle digest that appear in the bundle id.
pub const SHORT_DIGEST_LEN: usize = 12;

/// Maximum length of a file name inside a bundle, in bytes; ext4, XFS and APFS allow 255.
const MAX_FILE_NAME_LEN: usize = 255;

/// The time part of an id: UTC with milliseconds, colons replaced by `-` so that the name is
/// valid on every filesystem.
const ID_TIME_FORMAT: &str = "%Y-%m-%dT%H-%M-%S%.3fZ";

static ID_PATTERN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}\.\d{3}Z_[0-9a-f]{12}$")
        .expect("bundle id pattern is a valid regex")
});

/// Builds the id of a bundle from its capture time and the hex sha256 of its manifest.
pub fn bundle_id(captured_at: DateTime<Utc>, digest: &str) -> String {
    let short = &digest[..SHORT_DIGEST_LEN.min(digest.len())];
    format!("{}_{short}", id_time_text(captured_at))
}

/// Formats a capture time as the time part of a bundle id. Digits after the millisecond are
/// dropped, not rounded.
pub fn id_time_text(captured_at: DateTime<Utc>) -> String {
    captured_at.format(ID_TIME_FORMAT).to_string()
}

/// Returns the time part of a bundle id, or `None` when `id` is not a bundle id.
pub fn id_time_part(id: &str) -> Option<&str> {
    if !is_bundle_id(id) {
        return None;
    }
    id.rsplit_once('_').map(|(time, _)| time)
}

/// True when `digest` has the shape of a full hex sha256: 64 lowercase hex digits.
pub fn is_full_digest(digest: &str) -> bool {
    digest.len() == 64
        && digest
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// True when `id` has the exact shape of a bundle id.
pub fn is_bundle_id(id: &str) -> bool {
    ID_PATTERN.is_match(id)
}

/// Returns the 12 hex digits at the end of a bundle id, or `None` when `id` is not a bundle id.
pub fn short_digest(id: &str) -> Option<&str> {
    if !is_bundle_id(id) {
        return None;
    }
    id.rsplit_once('_').map(|(_, short)| short)
}

/// Parses the capture time encoded in a bundle id.
pub fn id_time(id: &str) -> Option<DateTime<Utc>> {
    let time = id_time_part(id)?;
    let naive = NaiveDateTime::parse_from_str(time, ID_TIME_FORMAT).ok()?;
    Some(naive.and_utc())
}

/// True when `name` is a plain file name that may appear directly inside a bundle.
pub fn is_plain_file_name(name: &str) -> bool {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    !name.is_empty()
        && name.len() <= MAX_FILE_NAME_LEN
        && !name.starts_with('.')
        && name.chars().all(allowed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn bundle_id_joins_time_and_digest() {
        let time = Utc.with_ymd_and_hms(2026, 12, 3, 21, 45, 38).unwrap()
            + chrono::Duration::milliseconds(812);
        let id = bundle_id(time, "9f2c4e1a7b3d00112233445566778899");

        assert_eq!(id, "2026-12-03T21-45-38.812Z_9f2c4e1a7b3d");
        assert!(is_bundle_id(&id));
        assert_eq!(short_digest(&id), Some("9f2c4e1a7b3d"));
        assert_eq!(id_time(&id), Some(time));
        assert_eq!(id_time_part(&id), Some("2026-12-03T21-45-38.812Z"));
    }

    #[test]
    fn id_time_text_drops_digits_after_millisecond() {
        let time = Utc.with_ymd_and_hms(2026, 12, 3, 21, 45, 38).unwrap()
            + chrono::Duration::microseconds(812_999);

        assert_eq!(id_time_text(time), "2026-12-03T21-45-38.812Z");
    }

    #[test]
    fn full_digest_is_64_lowercase_hex_digits() {
        assert!(is_full_digest(&"0a".repeat(32)));
        assert!(!is_full_digest(&"0A".repeat(32)));
        assert!(!is_full_digest(&"0a".repeat(31)));
        assert!(!is_full_digest(&"0g".repeat(32)));
    }

    #[test]
    fn bundle_id_pattern_rejects_near_misses() {
        let rejected = [
            "",
            ".tmp-0123456789abcdef",
            "2026-12-03T21-45-38.812Z_9f2c4e1a7b3",
            "2026-12-03T21-45-38.812Z_9F2C4E1A7B3D",
            "2026-12-03T21:45:38.812Z_9f2c4e1a7b3d",
            "2026-12-03T21-45-38Z_9f2c4e1a7b3d",
            "../2026-12-03T21-45-38.812Z_9f2c4e1a7b3d",
            "2026-12-03T21-45-38.812Z_9f2c4e1a7b3d/",
            "2026-12-03T21-45-38.812Z_9f2c4e1a7b3d\n",
        ];
        for id in rejected {
            assert!(!is_bundle_id(id), "accepted {id:?}");
        }
    }

    #[test]
    fn plain_file_names_accept_bundle_files() {
        for name in [
            "manifest.json",
            "top.txt",
            "raw.tar",
            "history-1.json",
            "a_b",
        ] {
            assert!(is_plain_file_name(name), "rejected {name:?}");
        }
    }

    #[test]
    fn plain_file_names_reject_paths_and_encodings() {
        let long = "a".repeat(256);
        let rejected = [
            "",
            ".",
            "..",
            ".env",
            "../manifest.json",
            "a/b",
            "a\\b",
            "/etc/passwd",
            "top.txt\0",
            "%2e%2e",
            "%2fetc",
            "..%2f",
            "top txt",
            "snapshot.json\n",
            "é.txt",
            long.as_str(),
        ];
        for name in rejected {
            assert!(!is_plain_file_name(name), "accepted {name:?}");
        }
    }
}
