//! Parsers for the smaller per-process files: the uid in `status`, the command line, the I/O
//! counters, socket links in `fd/`, and the rule that picks the name to show.

use std::path::Path;

/// Length at which the kernel cuts the command name (`TASK_COMM_LEN` minus its NUL).
pub const COMM_MAX_BYTES: usize = 15;

/// Extracts the effective uid, the user that ps and top show, from the `Uid:` line of
/// `/proc/PID/status`. procfs-core's `Status` would build a map of all ~55 lines for it.
pub fn effective_uid(status: &[u8]) -> Option<u32> {
    let line = status
        .split(|&b| b == b'\n')
        .find_map(|line| line.strip_prefix(b"Uid:"))?;
    let mut ids = std::str::from_utf8(line).ok()?.split_ascii_whitespace();
    ids.next()?;
    ids.next()?.parse().ok()
}

/// Joins the command line's NUL-separated arguments with spaces, lossy where not UTF-8.
pub fn command_line(cmdline: &[u8]) -> String {
    let end = cmdline
        .iter()
        .rposition(|&b| b != 0)
        .map_or(0, |last| last + 1);
    let joined: Vec<u8> = cmdline[..end]
        .iter()
        .map(|&b| if b == 0 { b' ' } else { b })
        .collect();
    match String::from_utf8(joined) {
        Ok(text) => text,
        Err(error) => String::from_utf8_lossy(error.as_bytes()).into_owned(),
    }
}

/// Returns the base name of argv[0]: the bytes before the first NUL, after the last `/`.
pub fn argv0_base(cmdline: &[u8]) -> &[u8] {
    let argv0 = cmdline.split(|&b| b == 0).next().unwrap_or_default();
    base_name(argv0)
}

/// Returns the base name of the executable link's target, without the ` (deleted)` suffix the
/// kernel adds when the file was removed.
pub fn exe_base(target: &Path) -> &[u8] {
    let bytes = target.as_os_str().as_encoded_bytes();
    base_name(bytes.strip_suffix(b" (deleted)").unwrap_or(bytes))
}

fn base_name(path: &[u8]) -> &[u8] {
    match path.iter().rposition(|&b| b == b'/') {
        Some(slash) => &path[slash + 1..],
        None => path,
    }
}

/// True when the kernel may have cut this command name.
pub fn is_cut(comm: &[u8]) -> bool {
    comm.len() == COMM_MAX_BYTES
}

/// `candidate` when it is a longer name that starts with the cut `comm`, as
/// `systemd-journald` does for `systemd-journal`.
pub fn longer_name<'a>(comm: &[u8], candidate: &'a [u8]) -> Option<&'a [u8]> {
    (candidate.len() > comm.len() && candidate.starts_with(comm)).then_some(candidate)
}

/// Renders name bytes, replacing what is not UTF-8; the raw evidence keeps the bytes.
pub fn lossy_name(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The fields of `/proc/PID/io`, all of which procfs-core's `Io` requires.
const IO_FIELDS: [&str; 7] = [
    "rchar",
    "wchar",
    "syscr",
    "syscw",
    "read_bytes",
    "write_bytes",
    "cancelled_write_bytes",
];

/// Storage-layer bytes read and written from `/proc/PID/io`.
///
/// It accepts what procfs-core's `Io` accepts: lines without a space are skipped, every other
/// line must be `name: number`, the last line of a name wins, and all of [`IO_FIELDS`] must
/// be present. procfs-core would build a map of owned keys for the two values, once per
/// process. Text that is not ASCII is rejected, as a real kernel only prints ASCII here.
pub fn io_bytes(io: &[u8]) -> Option<(u64, u64)> {
    if !io.is_ascii() {
        return None;
    }
    let text = std::str::from_utf8(io).ok()?;
    let mut values = [None; IO_FIELDS.len()];
    for line in text.lines() {
        if !line.contains(' ') {
            continue;
        }
        let mut words = line.split_whitespace();
        let field = words.next()?;
        let value: u64 = words.next()?.parse().ok()?;
        let name = &field[..field.len() - 1];
        if let Some(index) = IO_FIELDS.iter().position(|known| *known == name) {
            values[index] = Some(value);
        }
    }
    if values.iter().any(Option::is_none) {
        return None;
    }
    Some((values[4]?, values[5]?))
}

/// Parses the inode of a `socket:[INODE]` link target.
pub fn socket_inode(target: &Path) -> Option<u64> {
    let bytes = target.as_os_str().as_encoded_bytes();
    let inode = bytes.strip_prefix(b"socket:[")?.strip_suffix(b"]")?;
    std::str::from_utf8(inode).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::path::PathBuf;

    #[test]
    fn uid_is_the_effective_one() {
        let status = b"Name:\tsudo\nUmask:\t0022\nUid:\t1000\t0\t0\t0\nGid:\t1000\t0\t0\t0\n";
        assert_eq!(effective_uid(status), Some(0));
    }

    #[test]
    fn uid_missing_or_bad_is_none() {
        assert_eq!(effective_uid(b"Name:\tx\n"), None);
        assert_eq!(effective_uid(b"Uid:\t1000\n"), None);
        assert_eq!(effective_uid(b"Uid:\t1000\tx\n"), None);
    }

    #[test]
    fn command_line_joins_arguments_with_spaces() {
        assert_eq!(
            command_line(b"nginx\0-g\0daemon off;\0"),
            "nginx -g daemon off;"
        );
        assert_eq!(command_line(b""), "");
        assert_eq!(command_line(b"\0\0"), "");
    }

    #[test]
    fn command_line_is_lossy_for_bad_bytes() {
        assert_eq!(command_line(b"caf\xc3\0x\0"), "caf\u{fffd} x");
    }

    #[test]
    fn argv0_base_strips_directories() {
        assert_eq!(
            argv0_base(b"/usr/lib/systemd/systemd-journald\0--x\0"),
            b"systemd-journald"
        );
        assert_eq!(argv0_base(b"python3\0app.py\0"), b"python3");
        assert_eq!(argv0_base(b""), b"");
    }

    #[test]
    fn exe_base_drops_deleted_suffix() {
        let target = PathBuf::from("/opt/app/bin/my-long-server-name (deleted)");
        assert_eq!(exe_base(&target), b"my-long-server-name");
    }

    #[test]
    fn longer_name_requires_the_cut_prefix() {
        assert!(is_cut(b"systemd-journal"));
        assert!(!is_cut(b"bash"));
        assert_eq!(
            longer_name(b"systemd-journal", b"systemd-journald"),
            Some(&b"systemd-journald"[..])
        );
        assert_eq!(longer_name(b"systemd-journal", b"python3"), None);
        assert_eq!(longer_name(b"systemd-journal", b"systemd-journal"), None);
    }

    #[test]
    fn longer_name_completes_a_cut_multibyte_character() {
        // The first 14 bytes are ASCII and "ü" takes two, so the cut ends inside the "ü".
        let full = "abcdefghijklmnü-dienst".as_bytes();
        let comm = &full[..COMM_MAX_BYTES];
        assert_eq!(lossy_name(comm), "abcdefghijklmn\u{fffd}");
        assert_eq!(longer_name(comm, full), Some(full));
    }

    #[test]
    fn io_reads_storage_bytes() {
        let io = b"rchar: 100\nwchar: 200\nsyscr: 3\nsyscw: 4\nread_bytes: 4096\n\
            write_bytes: 8192\ncancelled_write_bytes: 0\n";
        assert_eq!(io_bytes(io), Some((4096, 8192)));
        assert_eq!(io_bytes(b"rchar: 100\n"), None);
    }

    #[test]
    fn socket_inode_parses_only_sockets() {
        assert_eq!(socket_inode(Path::new("socket:[98765]")), Some(98765));
        assert_eq!(socket_inode(Path::new("pipe:[98765]")), None);
        assert_eq!(socket_inode(Path::new("/dev/null")), None);
        assert_eq!(socket_inode(Path::new("socket:[x]")), None);
    }

    proptest! {
        #[test]
        fn field_parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = effective_uid(&bytes);
            let _ = command_line(&bytes);
            let _ = argv0_base(&bytes);
            let _ = io_bytes(&bytes);
            let _ = lossy_name(&bytes);
        }

        #[test]
        fn io_parser_never_panics_on_io_like_text(text in "([a-z_]{0,12}:? [0-9]{0,8}\n){0,8}") {
            let _ = io_bytes(text.as_bytes());
        }

        #[test]
        fn io_parser_agrees_with_procfs_core(
            extra in proptest::collection::vec(io_line(), 0..4),
            complete in any::<bool>(),
            at in 0usize..8,
        ) {
            use procfs_core::FromRead;

            // A complete file with wrong or repeated lines spliced in, or the odd lines alone.
            let mut lines: Vec<String> = if complete {
                IO_FIELDS.iter().map(|name| format!("{name}: 7\n")).collect()
            } else {
                Vec::new()
            };
            let at = at.min(lines.len());
            lines.splice(at..at, extra);
            let text = lines.concat();
            let expected = procfs_core::process::Io::from_read(text.as_bytes())
                .ok()
                .map(|io| (io.read_bytes, io.write_bytes));
            prop_assert_eq!(io_bytes(text.as_bytes()), expected);
        }
    }

    /// A line of `/proc/PID/io`, or one of the ways a line can be wrong.
    fn io_line() -> impl Strategy<Value = String> {
        let name = prop_oneof![
            proptest::sample::select(IO_FIELDS.to_vec()).prop_map(str::to_string),
            "[a-z_]{0,6}",
        ];
        let value = prop_oneof!["[0-9]{1,8}", "[0-9x-]{0,3}"];
        let separator = prop_oneof![Just(": "), Just(":"), Just(" "), Just(":\t")];
        (name, separator, value)
            .prop_map(|(name, separator, value)| format!("{name}{separator}{value}\n"))
    }
}
