//! Escaping and length limits for Slack mrkdwn.
//!
//! Slack reads `&`, `<` and `>` as control characters in message text: `<!channel>` pings a
//! channel and `<url|label>` is a link. Every piece of text that comes from the host or the
//! alert goes through [`mrkdwn`], [`mrkdwn_line`] or [`code`] before it is placed in a
//! message, so the only markup that reaches Slack is the links AegisIR builds with [`link`].
//!
//! Lengths are measured in UTF-16 code units, which is never less than the number of
//! characters, so a text within a limit by this measure is within it however Slack counts.

use std::borrow::Cow;

/// Marks where [`truncate`] cut a text.
const ELLIPSIS: char = '…';

/// Inserted between two backticks so that no run of them can open or close a code block.
const ZERO_WIDTH_SPACE: char = '\u{200B}';

/// Maximum length of a URL rendered as a link; a longer one would crowd out the rest of its section.
const MAX_LINK_URL: usize = 2000;

/// Escapes `&`, `<` and `>` for mrkdwn, keeping line breaks.
pub fn mrkdwn(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        push_escaped(&mut escaped, c);
    }
    escaped
}

/// Escapes like [`mrkdwn`] and turns line breaks and other control characters into spaces, for
/// values that must stay on one line (names, labels, instances).
pub fn mrkdwn_line(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            escaped.push(' ');
        } else {
            push_escaped(&mut escaped, c);
        }
    }
    escaped
}

/// Escapes one line of a code block. `&`, `<` and `>` are escaped as in mrkdwn and control
/// characters become spaces. A zero-width space goes between any two backticks, so that
/// untrusted text cannot close the block early.
pub fn code(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    let mut after_backtick = false;
    for c in text.chars() {
        if c == '`' && after_backtick {
            escaped.push(ZERO_WIDTH_SPACE);
        }
        after_backtick = c == '`';

        if c.is_control() {
            escaped.push(' ');
        } else {
            push_escaped(&mut escaped, c);
        }
    }
    escaped
}

fn push_escaped(escaped: &mut String, c: char) {
    match c {
        '&' => escaped.push_str("&amp;"),
        '<' => escaped.push_str("&lt;"),
        '>' => escaped.push_str("&gt;"),
        _ => escaped.push(c),
    }
}

/// Builds a mrkdwn link `<url|label>`, or `None` unless `url` is a valid http or https URL of
/// at most 2000 characters. The label is escaped here; pass it unescaped.
pub fn link(url: &str, label: &str) -> Option<String> {
    let parsed = reqwest::Url::parse(url.trim()).ok()?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return None;
    }

    // The URL parser percent-encodes spaces, quotes and angle brackets but keeps `|`, which
    // would end the link target early.
    let target = mrkdwn(parsed.as_str()).replace('|', "%7C");
    if units(&target) > MAX_LINK_URL {
        return None;
    }
    Some(format!("<{target}|{}>", mrkdwn_line(label)))
}

/// Returns the length of `text` in UTF-16 code units, the measure every limit here uses.
pub fn units(text: &str) -> usize {
    text.encode_utf16().count()
}

/// Shortens `text` to at most `max` UTF-16 code units, ending with `…` when it had to cut.
///
/// The cut falls on a character boundary and never inside an entity (`&amp;`) or a link
/// (`<url|label>`), which are dropped whole instead, so escaped text stays escaped.
pub fn truncate(text: &str, max: usize) -> Cow<'_, str> {
    if units(text) <= max {
        return Cow::Borrowed(text);
    }
    if max == 0 {
        return Cow::Borrowed("");
    }

    let kept = prefix_within(text, max - ELLIPSIS.len_utf16());
    let kept = &kept[..markup_safe_end(kept)];
    Cow::Owned(format!("{kept}{ELLIPSIS}"))
}

/// Shortens unescaped `text` to at most `max` UTF-16 code units on a character boundary,
/// ending with `…` when it had to cut. Escape the result afterwards.
pub fn clip(text: &str, max: usize) -> Cow<'_, str> {
    if units(text) <= max {
        return Cow::Borrowed(text);
    }
    if max == 0 {
        return Cow::Borrowed("");
    }

    let kept = prefix_within(text, max - ELLIPSIS.len_utf16());
    Cow::Owned(format!("{kept}{ELLIPSIS}"))
}

/// Returns the longest prefix of whole characters that is at most `max` code units long.
fn prefix_within(text: &str, max: usize) -> &str {
    let mut used = 0;
    for (index, c) in text.char_indices() {
        used += c.len_utf16();
        if used > max {
            return &text[..index];
        }
    }
    text
}

/// Returns where `kept` may end so that it ends with no unfinished link or entity.
fn markup_safe_end(kept: &str) -> usize {
    let mut end = kept.len();
    if let Some(open) = kept.rfind('<') {
        if !kept[open..].contains('>') {
            end = open;
        }
    }

    // Escaped text has a bare `&` only at the start of an entity, so an `&` with no `;` after
    // it is an entity the cut went through.
    if let Some(amp) = kept[..end].rfind('&') {
        if !kept[amp..end].contains(';') {
            end = amp;
        }
    }
    end
}

/// Splits `text` at line ends into pieces of at most `max` code units. A single line longer
/// than `max` is truncated.
pub fn split_lines(text: &str, max: usize) -> Vec<String> {
    let lines: Vec<Cow<'_, str>> = text.lines().map(|line| truncate(line, max)).collect();
    pack_lines(&lines, max)
        .into_iter()
        .map(|group| group.join("\n"))
        .collect()
}

/// Groups lines so that each group, joined with line breaks, is at most `max` code units
/// long. Every line must already be at most `max` long.
pub fn pack_lines<S: AsRef<str>>(lines: &[S], max: usize) -> Vec<Vec<&str>> {
    let mut groups = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    let mut current_units = 0;

    for line in lines {
        let line = line.as_ref();
        let line_units = units(line);
        let needed = if current.is_empty() {
            line_units
        } else {
            current_units + 1 + line_units
        };
        if needed > max && !current.is_empty() {
            groups.push(std::mem::take(&mut current));
            current_units = 0;
        }

        current_units += if current.is_empty() {
            line_units
        } else {
            1 + line_units
        };
        current.push(line);
    }

    if !current.is_empty() {
        groups.push(current);
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mrkdwn_escapes_channel_mention() {
        assert_eq!(mrkdwn("<!channel> & co"), "&lt;!channel&gt; &amp; co");
    }

    #[test]
    fn mrkdwn_keeps_line_breaks() {
        assert_eq!(mrkdwn("a\nb"), "a\nb");
    }

    #[test]
    fn mrkdwn_line_replaces_control_characters() {
        assert_eq!(mrkdwn_line("a\nb\tc<"), "a b c&lt;");
    }

    #[test]
    fn code_breaks_backtick_runs() {
        assert_eq!(code("a```b"), "a`\u{200B}`\u{200B}`b");
        assert_eq!(code("`x`"), "`x`");
    }

    #[test]
    fn code_escapes_and_flattens() {
        assert_eq!(code("<!here>\n&"), "&lt;!here&gt; &amp;");
    }

    #[test]
    fn code_never_outputs_backtick_pair() {
        let escaped = code("``````` `` ```");

        assert!(!escaped.contains("``"), "{escaped:?}");
    }

    #[test]
    fn link_accepts_http_and_https() {
        assert_eq!(
            link("http://prom:9090/graph?g0.expr=up&g0.tab=1", "source").as_deref(),
            Some("<http://prom:9090/graph?g0.expr=up&amp;g0.tab=1|source>")
        );
        assert_eq!(
            link("https://aegisir.example.net/logs/x", "x").as_deref(),
            Some("<https://aegisir.example.net/logs/x|x>")
        );
    }

    #[test]
    fn link_rejects_other_schemes() {
        assert_eq!(link("javascript:alert(1)", "x"), None);
        assert_eq!(link("file:///etc/passwd", "x"), None);
        assert_eq!(link("ftp://host/file", "x"), None);
        assert_eq!(link("not a url", "x"), None);
        assert_eq!(link("", "x"), None);
    }

    #[test]
    fn link_cannot_be_broken_by_url_or_label() {
        let built = link("http://prom/graph?q=a|b><!channel>", "<!channel>|x").unwrap();

        assert!(!built.contains("<!channel>"), "{built}");
        assert_eq!(built.matches('<').count(), 1, "{built}");
        assert_eq!(built.matches('>').count(), 1, "{built}");
        assert_eq!(built.matches('|').count(), 2, "{built}");
        assert!(built.starts_with("<http://prom/graph?q=a%7Cb"), "{built}");
    }

    #[test]
    fn link_rejects_very_long_url() {
        let url = format!("http://prom/{}", "a".repeat(MAX_LINK_URL));

        assert_eq!(link(&url, "x"), None);
    }

    #[test]
    fn truncate_leaves_short_text_alone() {
        assert_eq!(truncate("abc", 3), "abc");
    }

    #[test]
    fn truncate_cuts_on_char_boundary() {
        assert_eq!(truncate("ääääää", 4), "äää…");
    }

    #[test]
    fn truncate_counts_utf16_units() {
        // Each emoji is two UTF-16 code units.
        let cut = truncate("😀😀😀", 4);

        assert_eq!(cut, "😀…");
        assert!(units(&cut) <= 4);
    }

    #[test]
    fn truncate_never_splits_entity() {
        let escaped = mrkdwn("ab<cd");

        assert_eq!(truncate(&escaped, 5), "ab…");
    }

    #[test]
    fn truncate_never_splits_link() {
        let text = format!("see {}", link("http://prom/graph", "source").unwrap());

        assert_eq!(truncate(&text, 10), "see …");
    }

    #[test]
    fn clip_ignores_markup() {
        assert_eq!(clip("a<b&c", 4), "a<b…");
    }

    #[test]
    fn truncate_to_zero_is_empty() {
        assert_eq!(truncate("abc", 0), "");
    }

    #[test]
    fn split_lines_keeps_pieces_within_limit() {
        let text = (0..100)
            .map(|i| format!("line {i:03}"))
            .collect::<Vec<_>>()
            .join("\n");

        let pieces = split_lines(&text, 100);

        assert!(pieces.len() > 1);
        for piece in &pieces {
            assert!(units(piece) <= 100, "{} units", units(piece));
        }
        assert_eq!(pieces.join("\n"), text);
    }

    #[test]
    fn split_lines_truncates_overlong_line() {
        let text = format!("short\n{}\nend", "x".repeat(50));

        let pieces = split_lines(&text, 20);

        assert_eq!(
            pieces,
            vec![
                "short".to_string(),
                format!("{}…", "x".repeat(19)),
                "end".to_string()
            ]
        );
    }
}
