//! Mounted filesystems as `df` shows them, from the mount table and statvfs.
//!
//! The mount table is `self/mountinfo` under the procfs root, or `1/mountinfo` when a host
//! procfs is read from elsewhere (a container with the host at `/host/proc`), so that the
//! host's mount namespace is listed rather than the reader's. `mounts` is the fallback when
//! mountinfo cannot be read. Mount points are decoded (`\040` is a space) and then measured
//! with statvfs under the rootfs, so `/home` is measured at `<rootfs>/home`.
//!
//! procfs-core parses mountinfo, but one line it rejects (a mount point that is not UTF-8, a
//! malformed optional field) fails the whole table. The line reader here then keeps every
//! good line and records a gap for each bad one. statvfs is a system call, not a file read,
//! so its results are not part of the raw evidence.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use procfs_core::process::{MountInfo, MountInfos};
use procfs_core::FromRead;

use super::Context;
use crate::gaps::GapLog;
use crate::model::{Filesystem, GapReason};
use crate::raw::{audit, classify, Reader};
use crate::Scope;

const COLLECTOR: &str = "filesystems";

/// Filesystem types that hold no user data and that df leaves out.
const PSEUDO_TYPES: &[&str] = &[
    "autofs",
    "binfmt_misc",
    "bpf",
    "cgroup",
    "cgroup2",
    "configfs",
    "debugfs",
    "devpts",
    "fusectl",
    "hugetlbfs",
    "mqueue",
    "nsfs",
    "proc",
    "pstore",
    "rpc_pipefs",
    "securityfs",
    "selinuxfs",
    "sysfs",
    "tracefs",
];

/// The filesystems of one sample, in mount table order.
#[derive(Debug, Clone, Default)]
pub struct FilesystemSample {
    pub mounts: Vec<MountedFilesystem>,
}

/// One mount and, where statvfs succeeded, its usage.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MountedFilesystem {
    pub source: String,
    /// Decoded, and lossy where the bytes are not UTF-8.
    pub mount_point: String,
    pub fs_type: String,
    pub usage: Option<StatVfs>,
}

/// One line of the mount table with its escapes decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    pub source: String,
    /// The exact bytes of the mount point, which need not be UTF-8.
    pub mount_point: Vec<u8>,
    pub fs_type: String,
}

/// The statvfs fields df uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatVfs {
    /// The unit of the block counts (`f_frsize`, or `f_bsize` where that is 0).
    pub fragment_bytes: u64,
    pub blocks: u64,
    pub blocks_free: u64,
    /// Free blocks available to unprivileged users.
    pub blocks_available: u64,
    pub files: u64,
    pub files_free: u64,
}

/// Reads the mount table and measures each real filesystem. Filesystems have no counters,
/// so [`Scope::Counters`] reads nothing.
pub fn read(r: &mut Reader, ctx: &Context, scope: Scope, gaps: &mut GapLog) -> FilesystemSample {
    if scope == Scope::Counters {
        return FilesystemSample::default();
    }
    let rootfs = &ctx.roots.rootfs;
    let root = crate::raw::open_root(rootfs);
    read_with(r, ctx, gaps, |path| match &root {
        Some(root) => statvfs_below(root, rootfs, path),
        None => statvfs(path),
    })
}

/// Calls statvfs on `path`, a path under `rootfs`, with the directory opened inside the root
/// from `root`, its descriptor. A mount point that is a symbolic link (in a crafted tree; the
/// kernel's mount table names real directories) thus cannot lead outside the rootfs.
fn statvfs_below(root: &OwnedFd, rootfs: &Path, path: &Path) -> io::Result<StatVfs> {
    use rustix::fs::OFlags;

    let Some(relative) = path.strip_prefix(rootfs).ok().and_then(Path::to_str) else {
        return statvfs(path);
    };
    audit::touch(path);
    let relative = if relative.is_empty() { "." } else { relative };
    let flags = crate::raw::DIR_ACCESS | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let dir = crate::raw::open_in_root(root.as_fd(), relative, flags)?;
    Ok(stat_vfs(rustix::fs::fstatvfs(&dir)?))
}

/// [`read`] with the statvfs call passed in, so tests can supply fixed sizes.
pub fn read_with(
    r: &mut Reader,
    ctx: &Context,
    gaps: &mut GapLog,
    mut measure: impl FnMut(&Path) -> io::Result<StatVfs>,
) -> FilesystemSample {
    let entries = read_mount_table(r, ctx, gaps);
    let entries = last_mount_per_point(entries.into_iter().filter(|e| !is_pseudo(e)).collect());

    let mut mounts = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        if ctx.past_deadline() {
            record_deadline(gaps, &entries[index..]);
            break;
        }
        let path = path_under_rootfs(&ctx.roots.rootfs, &entry.mount_point);
        // The kernel writes mount points as canonical paths, so a `..` comes from a crafted
        // table and would lead statvfs outside the rootfs.
        let escapes = Path::new(OsStr::from_bytes(&entry.mount_point))
            .components()
            .any(|part| part == std::path::Component::ParentDir);
        let usage = if escapes {
            let subject = format!("root{}", String::from_utf8_lossy(&entry.mount_point));
            let detail = "not measured: the mount point contains `..`";
            gaps.push(COLLECTOR, subject, GapReason::Invalid, detail);
            None
        } else {
            match measure(&path) {
                Ok(stats) if stats.blocks == 0 => continue,
                Ok(stats) => Some(stats),
                Err(error) => {
                    record_statvfs_error(gaps, entry, &error);
                    None
                }
            }
        };
        mounts.push(MountedFilesystem {
            source: entry.source.clone(),
            mount_point: String::from_utf8_lossy(&entry.mount_point).into_owned(),
            fs_type: entry.fs_type.clone(),
            usage,
        });
    }
    FilesystemSample { mounts }
}

/// Returns the mount table files to try, in order. With a procfs root other than `/proc` that has a
/// pid 1, the host's table is read from `1/`, as the network files are ([`Context::host_mounts`]).
fn mount_table_paths(ctx: &Context) -> [&'static str; 2] {
    if ctx.host_mounts {
        ["1/mountinfo", "1/mounts"]
    } else {
        ["self/mountinfo", "mounts"]
    }
}

fn read_mount_table(r: &mut Reader, ctx: &Context, gaps: &mut GapLog) -> Vec<MountEntry> {
    for path in mount_table_paths(ctx) {
        let Some(bytes) = gaps.value(COLLECTOR, r.proc(path)) else {
            continue;
        };
        let subject = format!("proc/{path}");
        return if path.ends_with("mountinfo") {
            parse_mountinfo(bytes, &subject, gaps)
        } else {
            parse_mounts(bytes, &subject, gaps)
        };
    }
    Vec::new()
}

/// Parses mountinfo with procfs-core, or line by line where procfs-core rejects the table.
pub fn parse_mountinfo(bytes: &[u8], subject: &str, gaps: &mut GapLog) -> Vec<MountEntry> {
    match MountInfos::from_read(bytes) {
        Ok(infos) => infos.into_iter().map(entry_from_procfs).collect(),
        Err(error) => {
            tracing::debug!(%subject, %error, "procfs-core rejected the mount table, reading it line by line");
            parse_lines(bytes, subject, gaps, parse_mountinfo_line)
        }
    }
}

/// Parses the `mounts` format: `source mount_point type options freq passno`.
pub fn parse_mounts(bytes: &[u8], subject: &str, gaps: &mut GapLog) -> Vec<MountEntry> {
    parse_lines(bytes, subject, gaps, parse_mounts_line)
}

fn entry_from_procfs(info: MountInfo) -> MountEntry {
    MountEntry {
        source: source_name(info.mount_source.as_deref().unwrap_or("").as_bytes()),
        mount_point: decode_octal_escapes(info.mount_point.as_os_str().as_bytes()),
        fs_type: String::from_utf8_lossy(&decode_octal_escapes(info.fs_type.as_bytes()))
            .into_owned(),
    }
}

fn parse_lines(
    bytes: &[u8],
    subject: &str,
    gaps: &mut GapLog,
    parse: fn(&[u8]) -> Result<MountEntry, String>,
) -> Vec<MountEntry> {
    let mut entries = Vec::new();
    for (number, line) in bytes.split(|&b| b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match parse(line) {
            Ok(entry) => entries.push(entry),
            Err(detail) => {
                let line_subject = format!("{subject}:{}", number + 1);
                gaps.push(COLLECTOR, line_subject, GapReason::Invalid, detail);
            }
        }
    }
    entries
}

/// Parses one mountinfo line: `id parent major:minor root mount_point options [optional
/// fields...] - type source super_options`. There may be no optional fields or several.
pub fn parse_mountinfo_line(line: &[u8]) -> Result<MountEntry, String> {
    let fields: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
    if fields.len() < 9 {
        return Err(format!(
            "expected at least 9 fields, found {}",
            fields.len()
        ));
    }
    if !is_number(fields[0]) || !is_number(fields[1]) {
        return Err("mount id and parent id must be numbers".to_string());
    }
    if !fields[2].contains(&b':') {
        return Err("device field is not major:minor".to_string());
    }
    let Some(separator) = fields[6..].iter().position(|f| *f == b"-") else {
        return Err("no ' - ' separator before the filesystem type".to_string());
    };
    let after = &fields[6 + separator + 1..];
    let [fs_type, source, ..] = after else {
        return Err("filesystem type or source missing after the separator".to_string());
    };
    entry(source, fields[4], fs_type)
}

/// Parses one line of the `mounts` format; the freq and passno fields may be missing.
pub fn parse_mounts_line(line: &[u8]) -> Result<MountEntry, String> {
    let fields: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
    let [source, mount_point, fs_type, _options, ..] = fields[..] else {
        return Err(format!(
            "expected at least 4 fields, found {}",
            fields.len()
        ));
    };
    entry(source, mount_point, fs_type)
}

fn entry(source: &[u8], mount_point: &[u8], fs_type: &[u8]) -> Result<MountEntry, String> {
    let mount_point = decode_octal_escapes(mount_point);
    if !mount_point.starts_with(b"/") {
        return Err("mount point is not an absolute path".to_string());
    }
    if fs_type.is_empty() {
        return Err("filesystem type is empty".to_string());
    }
    Ok(MountEntry {
        source: source_name(source),
        mount_point,
        fs_type: String::from_utf8_lossy(&decode_octal_escapes(fs_type)).into_owned(),
    })
}

/// Decodes a mount source; an empty one shows as `none`, because procfs-core reports an
/// empty source and `none` alike.
fn source_name(source: &[u8]) -> String {
    if source.is_empty() {
        return "none".to_string();
    }
    String::from_utf8_lossy(&decode_octal_escapes(source)).into_owned()
}

fn is_number(field: &[u8]) -> bool {
    !field.is_empty() && field.iter().all(u8::is_ascii_digit)
}

/// Decodes the kernel's `\ooo` escapes (`\040` space, `\011` tab, `\012` newline, `\134`
/// backslash, `\043` hash). A backslash not followed by three octal digits is kept as is.
pub fn decode_octal_escapes(field: &[u8]) -> Vec<u8> {
    let mut decoded = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        if let Some(byte) = octal_escape_at(field, i) {
            decoded.push(byte);
            i += 4;
        } else {
            decoded.push(field[i]);
            i += 1;
        }
    }
    decoded
}

fn octal_escape_at(field: &[u8], i: usize) -> Option<u8> {
    let [b'\\', a, b, c] = *field.get(i..i + 4)? else {
        return None;
    };
    let digits = [a, b, c];
    if !digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
        return None;
    }
    let value = digits
        .iter()
        .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
    u8::try_from(value).ok()
}

fn is_pseudo(entry: &MountEntry) -> bool {
    PSEUDO_TYPES.contains(&entry.fs_type.as_str())
}

/// Keeps only the last mount of each mount point, as df does: a later mount hides the
/// earlier ones. The survivors keep their table order.
fn last_mount_per_point(entries: Vec<MountEntry>) -> Vec<MountEntry> {
    let mut last_index = HashMap::new();
    for (index, entry) in entries.iter().enumerate() {
        last_index.insert(entry.mount_point.clone(), index);
    }
    entries
        .into_iter()
        .enumerate()
        .filter(|(index, entry)| last_index.get(&entry.mount_point) == Some(index))
        .map(|(_, entry)| entry)
        .collect()
}

fn path_under_rootfs(rootfs: &Path, mount_point: &[u8]) -> PathBuf {
    let relative = mount_point.strip_prefix(b"/").unwrap_or(mount_point);
    if relative.is_empty() {
        return rootfs.to_path_buf();
    }
    rootfs.join(OsStr::from_bytes(relative))
}

fn record_statvfs_error(gaps: &mut GapLog, entry: &MountEntry, error: &io::Error) {
    gaps.push(
        COLLECTOR,
        format!("root{}", String::from_utf8_lossy(&entry.mount_point)),
        classify(error),
        format!("statvfs failed: {error}"),
    );
}

fn record_deadline(gaps: &mut GapLog, skipped: &[MountEntry]) {
    let first = skipped
        .first()
        .map(|e| String::from_utf8_lossy(&e.mount_point).into_owned());
    gaps.push(
        COLLECTOR,
        first.unwrap_or_default(),
        GapReason::Deadline,
        format!(
            "{} filesystems not measured: the capture deadline passed",
            skipped.len()
        ),
    );
}

/// Calls statvfs(3) on `path`, adding the path to the running [`audit`].
///
/// NOTE: statvfs blocks while a network filesystem's server is unreachable, and the
/// deadline is only checked between calls.
pub fn statvfs(path: &Path) -> io::Result<StatVfs> {
    audit::touch(path);
    if path.as_os_str().as_bytes().contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "path contains a NUL byte",
        ));
    }
    Ok(stat_vfs(rustix::fs::statvfs(path)?))
}

/// Picks the fields df uses out of statvfs's result.
fn stat_vfs(raw: rustix::fs::StatVfs) -> StatVfs {
    let fragment = if raw.f_frsize > 0 {
        raw.f_frsize
    } else {
        raw.f_bsize
    };
    StatVfs {
        fragment_bytes: fragment,
        blocks: raw.f_blocks,
        blocks_free: raw.f_bfree,
        blocks_available: raw.f_bavail,
        files: raw.f_files,
        files_free: raw.f_ffree,
    }
}

/// Turns the sample into the model, as df computes its columns.
pub fn derive(cur: &FilesystemSample) -> Vec<Filesystem> {
    cur.mounts.iter().map(derive_one).collect()
}

fn derive_one(mount: &MountedFilesystem) -> Filesystem {
    let mut filesystem = Filesystem {
        source: mount.source.clone(),
        mount_point: mount.mount_point.clone(),
        fs_type: mount.fs_type.clone(),
        ..Filesystem::default()
    };
    let Some(stats) = mount.usage else {
        return filesystem;
    };

    let unit = stats.fragment_bytes;
    let used_blocks = stats.blocks.saturating_sub(stats.blocks_free);
    filesystem.size_bytes = Some(stats.blocks.saturating_mul(unit));
    filesystem.used_bytes = Some(used_blocks.saturating_mul(unit));
    filesystem.available_bytes = Some(stats.blocks_available.saturating_mul(unit));
    filesystem.use_pct = use_pct(used_blocks, stats.blocks_available);
    filesystem.inodes_total = Some(stats.files);
    filesystem.inodes_used = Some(stats.files.saturating_sub(stats.files_free));
    filesystem
}

/// `used / (used + available)` in whole percent rounded up, as df prints `Use%`. The blocks
/// reserved for root count neither as used nor as available, so a full disk shows 100 %.
/// `None` when both are zero, where df prints `-`.
pub fn use_pct(used_blocks: u64, available_blocks: u64) -> Option<f64> {
    let total = u128::from(used_blocks) + u128::from(available_blocks);
    if total == 0 {
        return None;
    }
    let scaled = u128::from(used_blocks) * 100;
    Some(scaled.div_ceil(total) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn mountinfo_entries(text: &[u8]) -> (Vec<MountEntry>, Vec<crate::model::Gap>) {
        let mut gaps = GapLog::default();
        let entries = parse_mountinfo(text, "proc/self/mountinfo", &mut gaps);
        (entries, gaps.into_vec())
    }

    #[test]
    fn mountinfo_line_without_optional_fields() {
        let entry = parse_mountinfo_line(b"27 1 254:0 / / rw,relatime - ext4 /dev/vda rw").unwrap();
        assert_eq!(entry.source, "/dev/vda");
        assert_eq!(entry.mount_point, b"/");
        assert_eq!(entry.fs_type, "ext4");
    }

    #[test]
    fn mountinfo_line_with_several_optional_fields() {
        let line =
            b"36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 shared:7 unbindable - ext3 /dev/root rw";
        let entry = parse_mountinfo_line(line).unwrap();
        assert_eq!(entry.mount_point, b"/mnt2");
        assert_eq!(entry.fs_type, "ext3");
        assert_eq!(entry.source, "/dev/root");
    }

    #[test]
    fn mountinfo_line_decodes_escapes() {
        let line = br"40 27 8:1 / /mnt/my\040disk\011tab\012nl\134bs rw - vfat /dev/sd\040b1 rw";
        let entry = parse_mountinfo_line(line).unwrap();
        assert_eq!(entry.mount_point, b"/mnt/my disk\ttab\nnl\\bs");
        assert_eq!(entry.source, "/dev/sd b1");
    }

    #[test]
    fn escapes_are_decoded_once() {
        let line = br"40 27 8:1 / /mnt/a\134040b rw - ext4 /dev/x\134040 rw";
        let entry = parse_mountinfo_line(line).unwrap();
        assert_eq!(entry.mount_point, br"/mnt/a\040b");
        assert_eq!(entry.source, r"/dev/x\040");
    }

    #[test]
    fn mountinfo_line_with_empty_source_is_none() {
        let entry = parse_mountinfo_line(b"50 27 0:40 / /run rw - tmpfs  rw,size=10k").unwrap();
        assert_eq!(entry.source, "none");
        assert_eq!(entry.fs_type, "tmpfs");
    }

    #[test]
    fn mountinfo_line_rejects_malformed() {
        assert!(parse_mountinfo_line(b"").is_err());
        assert!(parse_mountinfo_line(b"27 1 254:0 / / rw,relatime ext4 /dev/vda rw").is_err());
        assert!(parse_mountinfo_line(b"x 1 254:0 / / rw - ext4 /dev/vda rw").is_err());
        assert!(parse_mountinfo_line(b"27 1 254:0 / relative rw - ext4 /dev/vda rw").is_err());
        assert!(parse_mountinfo_line(b"27 1 254:0 / / rw a b -").is_err());
    }

    #[test]
    fn procfs_core_path_decodes_escapes() {
        let text = b"40 27 8:1 / /mnt/my\\040disk rw shared:3 - ext4 /dev/sdb1 rw\n";
        let (entries, gaps) = mountinfo_entries(text);
        assert!(gaps.is_empty());
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].mount_point, b"/mnt/my disk");
        assert_eq!(entries[0].source, "/dev/sdb1");
    }

    #[test]
    fn rejected_table_read_line_by_line() {
        let text = b"27 1 254:0 / / rw - ext4 /dev/vda rw\n\
                     garbage\n\
                     41 27 8:2 / /data\\040\xff rw shared:x - xfs /dev/sdc1 rw\n\
                     42 27 8:3 / /srv rw - xfs /dev/sdd1 rw\n";
        let (entries, gaps) = mountinfo_entries(text);

        let points: Vec<&[u8]> = entries.iter().map(|e| e.mount_point.as_slice()).collect();
        assert_eq!(points, [b"/".as_slice(), b"/data \xff", b"/srv"]);
        assert_eq!(gaps.len(), 1);
        assert_eq!(gaps[0].subject, "proc/self/mountinfo:2");
        assert_eq!(gaps[0].reason, GapReason::Invalid);
    }

    #[test]
    fn mounts_line_parses_with_and_without_freq() {
        let entry = parse_mounts_line(b"/dev/sda1 /boot\\040efi vfat rw,relatime 0 0").unwrap();
        assert_eq!(entry.mount_point, b"/boot efi");
        assert_eq!(entry.fs_type, "vfat");
        let entry = parse_mounts_line(b"server:/x /net nfs4 rw").unwrap();
        assert_eq!(entry.source, "server:/x");
        assert!(parse_mounts_line(b"/dev/sda1 /boot vfat").is_err());
    }

    #[test]
    fn decode_keeps_incomplete_escapes() {
        assert_eq!(decode_octal_escapes(br"a\04"), br"a\04");
        assert_eq!(decode_octal_escapes(br"a\089b"), br"a\089b");
        assert_eq!(decode_octal_escapes(br"\777"), br"\777");
        assert_eq!(decode_octal_escapes(br"\\134"), br"\\");
        assert_eq!(decode_octal_escapes(br"x\043y"), b"x#y");
    }

    #[test]
    fn use_pct_rounds_up_like_df() {
        assert_eq!(use_pct(1, 199), Some(1.0));
        assert_eq!(use_pct(0, 100), Some(0.0));
        assert_eq!(use_pct(50, 50), Some(50.0));
        assert_eq!(use_pct(501, 499), Some(51.0));
        assert_eq!(use_pct(100, 0), Some(100.0));
        assert_eq!(use_pct(0, 0), None);
    }

    #[test]
    fn derive_computes_df_columns() {
        let mount = MountedFilesystem {
            source: "/dev/vda".to_string(),
            mount_point: "/".to_string(),
            fs_type: "ext4".to_string(),
            usage: Some(StatVfs {
                fragment_bytes: 4096,
                blocks: 1000,
                blocks_free: 300,
                blocks_available: 250,
                files: 640,
                files_free: 600,
            }),
        };
        let filesystems = derive(&FilesystemSample {
            mounts: vec![mount],
        });
        let root = &filesystems[0];
        assert_eq!(root.size_bytes, Some(4_096_000));
        assert_eq!(root.used_bytes, Some(2_867_200));
        assert_eq!(root.available_bytes, Some(1_024_000));
        assert_eq!(root.use_pct, Some(74.0));
        assert_eq!(root.inodes_total, Some(640));
        assert_eq!(root.inodes_used, Some(40));
    }

    #[test]
    fn derive_leaves_unmeasured_filesystem_empty() {
        let mount = MountedFilesystem {
            source: "server:/x".to_string(),
            mount_point: "/net".to_string(),
            fs_type: "nfs4".to_string(),
            usage: None,
        };
        let filesystem = &derive(&FilesystemSample {
            mounts: vec![mount],
        })[0];
        assert_eq!(filesystem.mount_point, "/net");
        assert_eq!(filesystem.size_bytes, None);
        assert_eq!(filesystem.use_pct, None);
    }

    #[test]
    fn later_mount_of_same_point_wins() {
        let entry = |source: &str, point: &[u8]| MountEntry {
            source: source.to_string(),
            mount_point: point.to_vec(),
            fs_type: "ext4".to_string(),
        };
        let survivors = last_mount_per_point(vec![
            entry("/dev/a", b"/"),
            entry("/dev/b", b"/data"),
            entry("/dev/c", b"/srv"),
            entry("/dev/d", b"/data"),
        ]);
        let sources: Vec<&str> = survivors.iter().map(|e| e.source.as_str()).collect();
        assert_eq!(sources, ["/dev/a", "/dev/c", "/dev/d"]);
    }

    #[test]
    fn statvfs_of_live_root_has_blocks() {
        let stats = statvfs(Path::new("/")).unwrap();
        assert!(stats.blocks > 0);
        assert!(stats.fragment_bytes > 0);
    }

    #[test]
    fn statvfs_of_missing_path_is_vanished() {
        let error = statvfs(Path::new("/nonexistent/aegisir/mount")).unwrap_err();
        assert_eq!(classify(&error), GapReason::Vanished);
    }

    fn fixture(host: &str, rootfs: &str) -> (Reader, Context) {
        let procfs = format!(
            "{}/../fixtures/hosts/{host}/proc",
            env!("CARGO_MANIFEST_DIR")
        );
        let options = crate::CaptureOptions {
            roots: crate::Roots {
                procfs: procfs.into(),
                rootfs: rootfs.into(),
                ..crate::Roots::default()
            },
            ..crate::CaptureOptions::default()
        };
        let ctx = Context::new(&options).unwrap();
        (Reader::new(options.roots), ctx)
    }

    /// Returns statvfs values for tests: 4 KiB blocks, 1000 blocks, 100 free, 50 of them available.
    fn fixed_stats() -> StatVfs {
        StatVfs {
            fragment_bytes: 4096,
            blocks: 1000,
            blocks_free: 100,
            blocks_available: 50,
            files: 100,
            files_free: 60,
        }
    }

    fn error(code: i32) -> io::Result<StatVfs> {
        Err(io::Error::from_raw_os_error(code))
    }

    #[test]
    fn host_view_reads_pid1_mount_table_under_rootfs() {
        let (mut reader, ctx) = fixture("small", "/host");
        let mut gaps = GapLog::default();
        let mut measured = Vec::new();
        let sample = read_with(&mut reader, &ctx, &mut gaps, |path| {
            measured.push(path.to_path_buf());
            match path.to_str() {
                Some("/host/dev") => Ok(StatVfs::default()),
                Some("/host/srv/data") => error(libc::EACCES),
                _ => Ok(fixed_stats()),
            }
        });

        let points: Vec<&str> = sample
            .mounts
            .iter()
            .map(|m| m.mount_point.as_str())
            .collect();
        assert_eq!(
            points,
            [
                "/",
                "/run",
                "/boot/efi",
                "/srv/data",
                "/var/lib/docker/overlay2/abc/merged"
            ]
        );
        assert_eq!(measured[0], PathBuf::from("/host/dev"));
        assert_eq!(measured[1], PathBuf::from("/host"));
        assert_eq!(sample.mounts[0].source, "/dev/nvme0n1p2");
        assert_eq!(sample.mounts[3].usage, None);
        assert_eq!(sample.mounts[4].fs_type, "overlay");

        let gaps = gaps.into_vec();
        assert_eq!(gaps.len(), 1);
        assert_eq!(gaps[0].subject, "root/srv/data");
        assert_eq!(gaps[0].reason, GapReason::PermissionDenied);
        let raw = reader.take_raw();
        assert!(raw.entries.contains_key("proc/1/mountinfo"));
        assert!(!raw.entries.contains_key("proc/self/mountinfo"));
    }

    #[test]
    fn symlinked_mount_point_stays_in_rootfs() {
        let tree = tempfile::tempdir().unwrap();
        let rootfs = tree.path().join("root");
        std::fs::create_dir_all(rootfs.join("mnt")).unwrap();
        std::fs::create_dir_all(rootfs.join("data")).unwrap();
        std::os::unix::fs::symlink("/dev/shm", rootfs.join("mnt/abs")).unwrap();
        std::os::unix::fs::symlink("../../../../dev/shm", rootfs.join("mnt/rel")).unwrap();
        std::os::unix::fs::symlink("/data", rootfs.join("mnt/inside")).unwrap();
        let root = crate::raw::open_root(&rootfs).unwrap();

        for link in ["mnt/abs", "mnt/rel"] {
            let error = statvfs_below(&root, &rootfs, &rootfs.join(link)).unwrap_err();
            assert_eq!(classify(&error), GapReason::Vanished, "{link}");
        }
        let inside = statvfs_below(&root, &rootfs, &rootfs.join("mnt/inside")).unwrap();
        assert!(inside.blocks > 0);
        assert!(statvfs_below(&root, &rootfs, &rootfs).unwrap().blocks > 0);
    }

    #[test]
    fn parent_dir_mount_point_is_not_measured() {
        let tree = tempfile::tempdir().unwrap();
        let procfs = tree.path().join("proc");
        std::fs::create_dir_all(procfs.join("1")).unwrap();
        std::fs::create_dir_all(procfs.join("self")).unwrap();
        let table = "22 1 253:0 / / rw - ext4 /dev/vda1 rw\n\
                     998 22 0:5 / /../../dev/shm rw - tmpfs shm rw\n";
        std::fs::write(procfs.join("1/mountinfo"), table).unwrap();
        std::fs::write(procfs.join("self/mountinfo"), table).unwrap();
        let options = crate::CaptureOptions {
            roots: crate::Roots {
                procfs,
                rootfs: tree.path().join("root"),
                ..crate::Roots::default()
            },
            ..crate::CaptureOptions::default()
        };
        let ctx = Context::new(&options).unwrap();
        let mut reader = Reader::new(options.roots);
        let mut gaps = GapLog::default();
        let mut measured = Vec::new();
        let sample = read_with(&mut reader, &ctx, &mut gaps, |path| {
            measured.push(path.to_path_buf());
            Ok(fixed_stats())
        });

        assert_eq!(measured, [tree.path().join("root")]);
        let shm = sample
            .mounts
            .iter()
            .find(|m| m.mount_point == "/../../dev/shm");
        assert_eq!(shm.unwrap().usage, None);
        let gaps = gaps.into_vec();
        assert_eq!(gaps.len(), 1, "{gaps:?}");
        assert_eq!(gaps[0].subject, "root/../../dev/shm");
        assert_eq!(gaps[0].reason, GapReason::Invalid);
    }

    #[test]
    fn host_view_derives_df_values() {
        let (mut reader, ctx) = fixture("small", "/host");
        let mut gaps = GapLog::default();
        let sample = read_with(&mut reader, &ctx, &mut gaps, |_| Ok(fixed_stats()));
        let filesystems = derive(&sample);

        let root = filesystems.iter().find(|f| f.mount_point == "/").unwrap();
        assert_eq!(root.fs_type, "ext4");
        assert_eq!(root.size_bytes, Some(4_096_000));
        assert_eq!(root.used_bytes, Some(3_686_400));
        assert_eq!(root.available_bytes, Some(204_800));
        assert_eq!(root.use_pct, Some(95.0));
        assert_eq!(root.inodes_used, Some(40));
        let dev = filesystems
            .iter()
            .find(|f| f.mount_point == "/dev")
            .unwrap();
        assert_eq!(dev.source, "udev");
    }

    #[test]
    fn odd_mount_table_keeps_every_good_line() {
        let (mut reader, ctx) = fixture("odd-mounts", "/");
        let mut gaps = GapLog::default();
        let mut measured = Vec::new();
        let sample = read_with(&mut reader, &ctx, &mut gaps, |path| {
            measured.push(path.as_os_str().as_bytes().to_vec());
            match path.to_str() {
                Some("/mnt/empty") => Ok(StatVfs::default()),
                Some("/mnt/gone") => error(libc::ETIMEDOUT),
                _ => Ok(fixed_stats()),
            }
        });

        let points: Vec<&str> = sample
            .mounts
            .iter()
            .map(|m| m.mount_point.as_str())
            .collect();
        assert_eq!(
            points,
            [
                "/",
                "/mnt/backup disk",
                "/mnt/tab\tand\nnewline\\slash",
                "/run/user/1000",
                "/media/caf\u{e9} \u{fffd}",
                "/srv",
                "/mnt/gone",
            ]
        );
        assert!(measured.contains(&b"/media/caf\xc3\xa9 \xff".to_vec()));
        assert_eq!(sample.mounts[3].source, "none");
        assert_eq!(sample.mounts[5].source, "/dev/sda6");
        assert_eq!(sample.mounts[6].usage, None);

        let gaps = gaps.into_vec();
        assert_eq!(gaps.len(), 2);
        assert_eq!(gaps[0].subject, "proc/self/mountinfo:7");
        assert_eq!(gaps[0].reason, GapReason::Invalid);
        assert_eq!(gaps[1].subject, "root/mnt/gone");
        assert_eq!(gaps[1].reason, GapReason::Error);
    }

    #[test]
    fn mounts_file_is_the_fallback() {
        let (mut reader, ctx) = fixture("mounts-fallback", "/");
        let mut gaps = GapLog::default();
        let sample = read_with(&mut reader, &ctx, &mut gaps, |_| Ok(fixed_stats()));

        let points: Vec<&str> = sample
            .mounts
            .iter()
            .map(|m| m.mount_point.as_str())
            .collect();
        assert_eq!(points, ["/", "/home dir", "/var"]);
        let gaps = gaps.into_vec();
        assert_eq!(gaps.len(), 2);
        assert_eq!(gaps[0].subject, "proc/self/mountinfo");
        assert_eq!(gaps[0].reason, GapReason::Vanished);
        assert_eq!(gaps[1].subject, "proc/mounts:5");
    }

    #[test]
    fn counters_scope_reads_no_mount_table() {
        let (mut reader, ctx) = fixture("small", "/host");
        let mut gaps = GapLog::default();
        let sample = read(&mut reader, &ctx, Scope::Counters, &mut gaps);
        assert!(sample.mounts.is_empty());
        assert!(reader.take_raw().is_empty());
    }

    #[test]
    fn live_mount_table_measures_root() {
        let options = crate::CaptureOptions::default();
        let ctx = Context::new(&options).unwrap();
        let mut reader = Reader::new(options.roots);
        let mut gaps = GapLog::default();
        let sample = read(&mut reader, &ctx, Scope::Full, &mut gaps);

        let root = sample.mounts.iter().find(|m| m.mount_point == "/");
        assert!(root.is_some_and(|m| m.usage.is_some_and(|u| u.blocks > 0)));
        assert!(reader
            .take_raw()
            .entries
            .contains_key("proc/self/mountinfo"));
    }

    proptest! {
        #[test]
        fn parse_mountinfo_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut gaps = GapLog::default();
            let _ = parse_mountinfo(&bytes, "proc/self/mountinfo", &mut gaps);
            let _ = parse_mounts(&bytes, "proc/mounts", &mut gaps);
        }

        #[test]
        fn mountinfo_line_never_panics(line in "[0-9a-z:/ \\\\-]{0,120}") {
            let _ = parse_mountinfo_line(line.as_bytes());
            let _ = decode_octal_escapes(line.as_bytes());
        }
    }
}
