//! `disk_usage.txt` (filesystems as `df -hT` shows them) and `iostat.txt` (CPU and block
//! devices as `iostat -x` shows them).

use aegisir_platform::{CpuUsage, Filesystem, Snapshot};

use super::text::{bytes_or_missing, decimal_or_missing, Align, Table, MISSING};

pub fn render_usage(snapshot: &Snapshot) -> String {
    if snapshot.filesystems.is_empty() {
        return "No filesystems were listed (gaps.txt says why when a read failed).\n".to_string();
    }
    let mut table = Table::new(&[
        ("Filesystem", Align::Left),
        ("Type", Align::Left),
        ("Size", Align::Right),
        ("Used", Align::Right),
        ("Avail", Align::Right),
        ("Use%", Align::Right),
        ("Mounted on", Align::Left),
    ]);
    for filesystem in &snapshot.filesystems {
        table.row(usage_row(filesystem));
    }
    table.render()
}

fn usage_row(filesystem: &Filesystem) -> Vec<String> {
    let use_pct = filesystem
        .use_pct
        .map_or_else(|| MISSING.to_string(), |pct| format!("{}%", pct.ceil()));
    vec![
        filesystem.source.clone(),
        filesystem.fs_type.clone(),
        bytes_or_missing(filesystem.size_bytes),
        bytes_or_missing(filesystem.used_bytes),
        bytes_or_missing(filesystem.available_bytes),
        use_pct,
        filesystem.mount_point.clone(),
    ]
}

pub fn render_iostat(snapshot: &Snapshot) -> String {
    let mut output = avg_cpu(snapshot.cpu.as_ref().map(|cpu| &cpu.total));
    output.push('\n');
    output.push_str(&device_table(snapshot));
    output
}

/// Formats the `avg-cpu` block. As in sysstat's iostat, `%system` includes time in hard and soft
/// interrupts.
fn avg_cpu(total: Option<&CpuUsage>) -> String {
    let header = "avg-cpu:  %user   %nice %system %iowait  %steal   %idle\n";
    let Some(t) = total else {
        return format!("{header}          {MISSING}\n");
    };
    let system = t.system_pct + t.irq_pct + t.softirq_pct;
    format!(
        "{header}         {:7.2} {:7.2} {:7.2} {:7.2} {:7.2} {:7.2}\n",
        t.user_pct, t.nice_pct, system, t.iowait_pct, t.steal_pct, t.idle_pct
    )
}

fn device_table(snapshot: &Snapshot) -> String {
    if snapshot.disks.is_empty() {
        return "No block devices were listed (gaps.txt says why when a read failed).\n"
            .to_string();
    }
    let mut table = Table::new(&[
        ("Device", Align::Left),
        ("r/s", Align::Right),
        ("w/s", Align::Right),
        ("rkB/s", Align::Right),
        ("wkB/s", Align::Right),
        ("r_await", Align::Right),
        ("w_await", Align::Right),
        ("%util", Align::Right),
    ]);
    for disk in &snapshot.disks {
        table.row(vec![
            disk.device.clone(),
            format!("{:.2}", disk.reads_per_sec),
            format!("{:.2}", disk.writes_per_sec),
            format!("{:.2}", disk.read_kb_per_sec),
            format!("{:.2}", disk.write_kb_per_sec),
            decimal_or_missing(disk.read_await_ms, 2),
            decimal_or_missing(disk.write_await_ms, 2),
            decimal_or_missing(disk.util_pct, 2),
        ]);
    }
    table.render()
}
