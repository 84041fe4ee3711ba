//! Text building blocks shared by the reports: value formatting, terminal-safe escaping of
//! host text, and aligned tables.

use std::borrow::Cow;
use std::fmt::Write as _;

use unicode_width::UnicodeWidthStr;

/// The text shown for a value that could not be read.
pub const MISSING: &str = "-";

const UNITS: [&str; 7] = ["B", "K", "M", "G", "T", "P", "E"];

/// Formats a byte count with binary units as `df -h` does: one decimal below 10, whole
/// numbers from 10, always rounded up, so `1536` is `1.5K` and `10.2 GiB` is `11G`. Counts
/// below 1024 carry a `B` suffix (`0B`, `512B`).
pub fn format_bytes(bytes: u64) -> String {
    if bytes < 1024 {
        return format!("{bytes}B");
    }
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if value < 10.0 {
        let tenths = (value * 10.0).ceil();
        if tenths < 100.0 {
            return format!("{:.1}{}", tenths / 10.0, UNITS[unit]);
        }
    }
    let whole = value.ceil();
    if whole >= 1024.0 && unit + 1 < UNITS.len() {
        return format!("1.0{}", UNITS[unit + 1]);
    }
    format!("{whole:.0}{}", UNITS[unit])
}

/// Formats a byte count with one decimal and binary units, rounded to nearest, for
/// headlines such as `12.9G of 15.6G`.
pub fn format_bytes_decimal(bytes: u64) -> String {
    if bytes < 1024 {
        return format!("{bytes}B");
    }
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1}{}", UNITS[unit])
}

/// Formats a byte count with `df -h` units, or `-` when it could not be read.
pub fn bytes_or_missing(bytes: Option<u64>) -> String {
    bytes.map_or_else(|| MISSING.to_string(), format_bytes)
}

/// Formats a number with a fixed count of decimals, or `-`.
pub fn decimal_or_missing(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| MISSING.to_string(), |v| format!("{v:.decimals$}"))
}

/// Formats an integer, or `-`.
pub fn count_or_missing<T: std::fmt::Display>(value: Option<T>) -> String {
    value.map_or_else(|| MISSING.to_string(), |v| v.to_string())
}

/// Formats a byte rate such as `1.5M/s`.
pub fn rate(bytes_per_sec: f64) -> String {
    let whole = if bytes_per_sec.is_finite() && bytes_per_sec > 0.0 {
        bytes_per_sec.round() as u64
    } else {
        0
    };
    format!("{}/s", format_bytes(whole))
}

/// Escapes what a terminal would act on in text read from the host: C0 and C1 control
/// characters (ANSI escape sequences start with one), DEL, and the Unicode characters that
/// reorder or hide text (bidirectional overrides and isolates, zero-width joiners). `\n`,
/// `\r` and `\t` become those two-character escapes; the rest become `\xNN` or `\u{NNNN}`.
/// Backslashes are left as they are, so an escape is not always distinguishable from
/// literal text; the raw evidence keeps the exact bytes.
pub fn terminal_safe(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut output = String::with_capacity(text.len() + 8);
    for character in text.chars() {
        push_escaped(&mut output, character);
    }
    Cow::Owned(output)
}

fn needs_escape(character: char) -> bool {
    character.is_control() || is_invisible_format(character)
}

/// Characters that change the order or visibility of the text around them.
fn is_invisible_format(character: char) -> bool {
    matches!(
        character,
        '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}'
    )
}

fn push_escaped(output: &mut String, character: char) {
    match character {
        '\n' => output.push_str("\\n"),
        '\r' => output.push_str("\\r"),
        '\t' => output.push_str("\\t"),
        c if (c as u32) < 0x100 && needs_escape(c) => {
            let _ = write!(output, "\\x{:02x}", c as u32);
        }
        c if needs_escape(c) => {
            let _ = write!(output, "\\u{{{:04x}}}", c as u32);
        }
        c => output.push(c),
    }
}

/// Column alignment in a [`Table`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// A table of aligned columns separated by two spaces. A left-aligned last column is not
/// padded, so long command lines carry no trailing spaces.
#[derive(Debug)]
pub struct Table {
    columns: Vec<(&'static str, Align)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(columns: &[(&'static str, Align)]) -> Self {
        Table {
            columns: columns.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; every cell is made terminal-safe here.
    pub fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.columns.len());
        let safe = cells
            .into_iter()
            .map(|cell| terminal_safe(&cell).into_owned())
            .collect();
        self.rows.push(safe);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Renders the header and every row, each line ending in a newline.
    pub fn render(&self) -> String {
        let widths = self.widths();
        let header: Vec<String> = self
            .columns
            .iter()
            .map(|(name, _)| name.to_string())
            .collect();
        let mut output = String::new();
        self.render_line(&mut output, &header, &widths);
        for row in &self.rows {
            self.render_line(&mut output, row, &widths);
        }
        output
    }

    fn widths(&self) -> Vec<usize> {
        let mut widths: Vec<usize> = self.columns.iter().map(|(name, _)| name.width()).collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.width());
            }
        }
        widths
    }

    fn render_line(&self, output: &mut String, cells: &[String], widths: &[usize]) {
        let last = cells.len().saturating_sub(1);
        let mut line = String::new();
        for (index, cell) in cells.iter().enumerate() {
            if index > 0 {
                line.push_str("  ");
            }
            let padding = " ".repeat(widths[index].saturating_sub(cell.width()));
            match self.columns[index].1 {
                Align::Right => {
                    line.push_str(&padding);
                    line.push_str(cell);
                }
                Align::Left if index == last => line.push_str(cell),
                Align::Left => {
                    line.push_str(cell);
                    line.push_str(&padding);
                }
            }
        }
        output.push_str(line.trim_end());
        output.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_bytes_matches_df_rounding() {
        let cases: &[(u64, &str)] = &[
            (0, "0B"),
            (1023, "1023B"),
            (1024, "1.0K"),
            (1536, "1.5K"),
            (1537, "1.6K"),
            (10 * 1024 - 1, "10K"),
            (10 * 1024, "10K"),
            (1024 * 1024 - 1, "1.0M"),
            (3 * 1024 * 1024 * 1024 / 2, "1.5G"),
            (16_642_998_272, "16G"),
            (u64::MAX, "16E"),
        ];
        for (bytes, expected) in cases {
            assert_eq!(format_bytes(*bytes), *expected, "bytes: {bytes}");
        }
    }

    #[test]
    fn format_bytes_decimal_rounds_to_nearest() {
        assert_eq!(format_bytes_decimal(13_851_325_440), "12.9G");
        assert_eq!(format_bytes_decimal(512), "512B");
    }

    #[test]
    fn terminal_safe_escapes_controls() {
        assert_eq!(
            terminal_safe("a\x1b[31mred\r\n\tz\x7f"),
            "a\\x1b[31mred\\r\\n\\tz\\x7f"
        );
        assert_eq!(terminal_safe("x\u{9b}y"), "x\\x9by");
        assert_eq!(terminal_safe("evil\u{202e}txt"), "evil\\u{202e}txt");
    }

    #[test]
    fn terminal_safe_keeps_plain_text_borrowed() {
        let text = "<!channel> & naïve 名前 \\x1b";
        assert!(matches!(terminal_safe(text), Cow::Borrowed(_)));
    }

    #[test]
    fn table_aligns_wide_characters() {
        let mut table = Table::new(&[
            ("NAME", Align::Left),
            ("N", Align::Right),
            ("X", Align::Left),
        ]);
        table.row(vec!["名前".into(), "1".into(), "a".into()]);
        table.row(vec!["ab".into(), "22".into(), "b".into()]);
        assert_eq!(table.render(), "NAME   N  X\n名前   1  a\nab    22  b\n");
    }
}
