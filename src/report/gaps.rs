//! `gaps.txt`: every value the capture could not read, with the collector, the subject and
//! the reason.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use aegisir_platform::Snapshot;

use super::text::{Align, Table};

pub fn render(snapshot: &Snapshot) -> String {
    if snapshot.gaps.is_empty() {
        return "No gaps were recorded.\n".to_string();
    }

    let mut by_reason: BTreeMap<&str, usize> = BTreeMap::new();
    for gap in &snapshot.gaps {
        *by_reason.entry(gap.reason.as_str()).or_default() += 1;
    }
    let summary: Vec<String> = by_reason
        .iter()
        .map(|(reason, count)| format!("{count} {reason}"))
        .collect();

    let mut output = String::new();
    let _ = writeln!(
        output,
        "{} gaps: {}",
        snapshot.gaps.len(),
        summary.join(", ")
    );
    output.push('\n');

    let mut table = Table::new(&[
        ("Collector", Align::Left),
        ("Subject", Align::Left),
        ("Reason", Align::Left),
        ("Detail", Align::Left),
    ]);
    for gap in &snapshot.gaps {
        table.row(vec![
            gap.collector.clone(),
            gap.subject.clone(),
            gap.reason.as_str().to_string(),
            gap.detail.clone(),
        ]);
    }
    output.push_str(&table.render());
    output
}
