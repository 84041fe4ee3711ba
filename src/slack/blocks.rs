//! Block Kit block lists that stay inside Slack's size limits.
//!
//! Slack rejects a whole message (`invalid_blocks`) when one block breaks a limit, so every
//! text is cut or split here before it becomes a block. Long sections and code tables are
//! split at line ends into several sections. Blocks past the limit of 50, or past the bound
//! on the whole payload's size, are replaced by a context block that states how many were
//! left out and which bundle contains everything. All text passed in must already be escaped
//! (see [`super::escape`]).

use serde_json::{json, Value};

use super::escape::{self, pack_lines, split_lines, truncate, units};

/// Maximum number of blocks in one message.
pub const MAX_BLOCKS: usize = 50;
/// Maximum length of a section's text.
pub const MAX_SECTION_TEXT: usize = 3000;
/// Maximum length of a header's text.
pub const MAX_HEADER_TEXT: usize = 150;
/// Maximum number of fields in one section.
pub const MAX_FIELDS: usize = 10;
/// Maximum length of one field's text.
pub const MAX_FIELD_TEXT: usize = 2000;
/// Maximum length of one context element's text. Slack allows 3000 for any text object; the
/// lower figure keeps a footer short.
pub const MAX_CONTEXT_TEXT: usize = 2000;
/// Maximum length of the message's `text` fallback, which notifications and old clients show.
pub const MAX_FALLBACK_TEXT: usize = 4000;
/// Maximum size of a whole message as compact JSON, in UTF-8 bytes, which are never fewer than
/// its characters. Microsoft's reference for its Slack connector (`PostMessageRequest`) states
/// that Slack truncates messages of more than 40,000 characters, so this is a conservative
/// bound rather than a limit Slack documents for blocks.
///
/// NOTE: a bolt-js issue (slackapi/bolt-js#2509) reports `msg_blocks_too_long` from
/// `chat.postMessage` at about 13,200 characters of blocks. A message between that size and
/// this bound may still be rejected.
pub const MAX_PAYLOAD_BYTES: usize = 40_000;

const CODE_FENCE: &str = "```";

/// A block list under construction.
#[derive(Debug, Default)]
pub struct Blocks {
    list: Vec<Value>,
}

impl Blocks {
    /// Adds a header, cut to 150 code units. Slack shows headers as plain text.
    ///
    /// NOTE: the text arrives escaped like all other text. Slack documents entity decoding
    /// for mrkdwn; if a plain-text header does not decode it, `<` shows as `&lt;` there.
    pub fn header(&mut self, text: &str) {
        self.list.push(json!({
            "type": "header",
            "text": { "type": "plain_text", "text": truncate(text, MAX_HEADER_TEXT), "emoji": true },
        }));
    }

    /// Adds mrkdwn text as one section, or as several when it is longer than 3000 code units.
    pub fn section(&mut self, text: &str) {
        for piece in split_lines(text, MAX_SECTION_TEXT) {
            self.list.push(section_block(&piece));
        }
    }

    /// Adds fields as sections of at most 10 fields, each cut to 2000 code units.
    pub fn fields(&mut self, fields: &[String]) {
        for chunk in fields.chunks(MAX_FIELDS) {
            let fields: Vec<Value> = chunk
                .iter()
                .map(|field| json!({ "type": "mrkdwn", "text": truncate(field, MAX_FIELD_TEXT) }))
                .collect();
            self.list
                .push(json!({ "type": "section", "fields": fields }));
        }
    }

    /// Adds a titled code block of `lines`, one section per 3000 code units. Each section opens
    /// and closes its own fence, so a split never leaves a block open. The lines must have been
    /// escaped with [`escape::code`].
    pub fn code(&mut self, title: &str, lines: &[String]) {
        let continued = format!("{title} (continued)");
        // The heading, the two fences and the three line breaks around them.
        let overhead = units(&continued) + 2 * CODE_FENCE.len() + 3;
        let line_max = MAX_SECTION_TEXT.saturating_sub(overhead);
        let lines: Vec<_> = lines.iter().map(|line| truncate(line, line_max)).collect();

        for (index, group) in pack_lines(&lines, line_max).into_iter().enumerate() {
            let heading = if index == 0 {
                title
            } else {
                continued.as_str()
            };
            let body = group.join("\n");
            self.list.push(section_block(&format!(
                "{heading}\n{CODE_FENCE}\n{body}\n{CODE_FENCE}"
            )));
        }
    }

    /// Adds a context block: small grey text under the message.
    pub fn context(&mut self, text: &str) {
        self.list.push(context_block(text));
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Appends `footer` as the last block and returns the list, at most 50 blocks long and at
    /// most `max_json_bytes` long as compact JSON (see [`blocks_budget`]).
    ///
    /// When the blocks do not fit, the last ones before the footer are cut and a context block
    /// names how many were left out and, when given, the bundle that holds the full capture.
    pub fn finish(
        mut self,
        footer: &str,
        bundle_id: Option<&str>,
        max_json_bytes: usize,
    ) -> Vec<Value> {
        let footer = context_block(footer);
        // The brackets around the list and the footer without its comma.
        let fixed_bytes = 2 + json_len(&footer);
        let block_bytes: Vec<usize> = self.list.iter().map(|block| json_len(block) + 1).collect();
        let total_bytes: usize = block_bytes.iter().sum();
        if self.list.len() < MAX_BLOCKS && fixed_bytes + total_bytes <= max_json_bytes {
            self.list.push(footer);
            return self.list;
        }

        // The notice counts at most every block, so this one is at least as long as the real one.
        let widest_notice = context_block(&left_out_notice(self.list.len(), bundle_id));
        let room = max_json_bytes.saturating_sub(fixed_bytes + json_len(&widest_notice) + 1);
        let keep = prefix_within(&block_bytes, room, MAX_BLOCKS - 2);
        let left_out = self.list.len() - keep;
        self.list.truncate(keep);
        self.list
            .push(context_block(&left_out_notice(left_out, bundle_id)));
        self.list.push(footer);
        self.list
    }
}

/// Returns the bytes left for the block list of a message whose fallback is `text`, so that
/// the whole message stays within [`MAX_PAYLOAD_BYTES`].
pub fn blocks_budget(text: &str) -> usize {
    // The message is `{"text":<text>,"blocks":<list>}`.
    let envelope = r#"{"text":,"blocks":}"#.len();
    MAX_PAYLOAD_BYTES.saturating_sub(envelope + json_len(&Value::from(text)))
}

/// Returns the size of `value` as compact JSON, the form the message is sent in.
pub fn json_len(value: &Value) -> usize {
    value.to_string().len()
}

/// Returns how many of the leading `sizes` fit together in `room`, at most `max_count`.
fn prefix_within(sizes: &[usize], room: usize, max_count: usize) -> usize {
    let mut used = 0;
    let mut count = 0;
    for size in sizes.iter().take(max_count) {
        if used + size > room {
            break;
        }
        used += size;
        count += 1;
    }
    count
}

/// Cuts a fallback text to Slack's 4000 code units.
pub fn fallback_text(text: &str) -> String {
    truncate(text, MAX_FALLBACK_TEXT).into_owned()
}

fn section_block(text: &str) -> Value {
    json!({ "type": "section", "text": { "type": "mrkdwn", "text": text } })
}

fn context_block(text: &str) -> Value {
    json!({
        "type": "context",
        "elements": [{ "type": "mrkdwn", "text": truncate(text, MAX_CONTEXT_TEXT) }],
    })
}

fn left_out_notice(left_out: usize, bundle_id: Option<&str>) -> String {
    let mut notice = format!("{left_out} more blocks left out to stay within Slack's limits");
    if let Some(id) = bundle_id {
        notice.push_str(&format!(
            "; the full capture is in bundle `{}`",
            escape::code(id)
        ));
    }
    notice.push('.');
    notice
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section_text(block: &Value) -> &str {
        block["text"]["text"].as_str().unwrap()
    }

    #[test]
    fn header_is_cut_to_limit() {
        let mut blocks = Blocks::default();
        blocks.header(&"H".repeat(400));

        let list = blocks.finish("footer", None, MAX_PAYLOAD_BYTES);

        let text = list[0]["text"]["text"].as_str().unwrap();
        assert_eq!(units(text), MAX_HEADER_TEXT);
        assert!(text.ends_with('…'));
        assert_eq!(list[0]["text"]["type"], "plain_text");
    }

    #[test]
    fn long_section_is_split_at_line_ends() {
        let text: Vec<String> = (0..400)
            .map(|i| format!("row {i:04} {}", "x".repeat(20)))
            .collect();
        let mut blocks = Blocks::default();
        blocks.section(&text.join("\n"));

        let list = blocks.finish("footer", None, MAX_PAYLOAD_BYTES);

        assert!(list.len() > 3);
        let sections = &list[..list.len() - 1];
        let mut rejoined = Vec::new();
        for block in sections {
            let text = section_text(block);
            assert!(units(text) <= MAX_SECTION_TEXT);
            rejoined.push(text.to_string());
        }
        assert_eq!(rejoined.join("\n"), text.join("\n"));
    }

    #[test]
    fn fields_are_chunked_and_cut() {
        let fields: Vec<String> = (0..23)
            .map(|i| format!("*F{i}*\n{}", "v".repeat(3000)))
            .collect();
        let mut blocks = Blocks::default();
        blocks.fields(&fields);

        // These fields are larger than the payload bound, which is not under test here.
        let list = blocks.finish("footer", None, usize::MAX);

        assert_eq!(list.len(), 4);
        let counts: Vec<usize> = list[..3]
            .iter()
            .map(|block| block["fields"].as_array().unwrap().len())
            .collect();
        assert_eq!(counts, vec![10, 10, 3]);
        for block in &list[..3] {
            for field in block["fields"].as_array().unwrap() {
                assert!(units(field["text"].as_str().unwrap()) <= MAX_FIELD_TEXT);
            }
        }
    }

    #[test]
    fn code_table_splits_into_closed_blocks() {
        let rows: Vec<String> = (0..120)
            .map(|pid| escape::code(&format!("{pid:>7} root   99.9  1.0 {}", "a".repeat(120))))
            .collect();
        let mut blocks = Blocks::default();
        blocks.code("*Top processes*", &rows);

        let list = blocks.finish("footer", None, MAX_PAYLOAD_BYTES);

        let sections = &list[..list.len() - 1];
        assert!(sections.len() >= 6, "{} sections", sections.len());
        let mut rows_seen = 0;
        for (index, block) in sections.iter().enumerate() {
            let text = section_text(block);
            assert!(units(text) <= MAX_SECTION_TEXT, "{} units", units(text));
            assert_eq!(text.matches(CODE_FENCE).count(), 2, "{text}");
            assert!(text.ends_with("\n```"));
            if index == 0 {
                assert!(text.starts_with("*Top processes*\n```\n"));
            } else {
                assert!(text.starts_with("*Top processes* (continued)\n```\n"));
            }
            rows_seen += text.lines().count() - 3;
        }
        assert_eq!(rows_seen, 120);
    }

    #[test]
    fn code_line_longer_than_section_is_cut() {
        let rows = vec![escape::code(&"c".repeat(5000))];
        let mut blocks = Blocks::default();
        blocks.code("*T*", &rows);

        let list = blocks.finish("footer", None, MAX_PAYLOAD_BYTES);

        let text = section_text(&list[0]);
        assert!(units(text) <= MAX_SECTION_TEXT);
        assert!(text.ends_with("…\n```"));
    }

    #[test]
    fn finish_caps_blocks_and_names_bundle() {
        let mut blocks = Blocks::default();
        for i in 0..80 {
            blocks.section(&format!("section {i}"));
        }

        let list = blocks.finish(
            "the footer",
            Some("2026-12-03T21-45-38.812Z_9f2c4e1a7b3d"),
            MAX_PAYLOAD_BYTES,
        );

        assert_eq!(list.len(), MAX_BLOCKS);
        assert_eq!(section_text(&list[47]), "section 47");
        let notice = list[48]["elements"][0]["text"].as_str().unwrap();
        assert_eq!(
            notice,
            "32 more blocks left out to stay within Slack's limits; the full capture is in \
             bundle `2026-12-03T21-45-38.812Z_9f2c4e1a7b3d`."
        );
        assert_eq!(list[49]["elements"][0]["text"], "the footer");
    }

    #[test]
    fn finish_keeps_short_list_whole() {
        let mut blocks = Blocks::default();
        for i in 0..MAX_BLOCKS - 1 {
            blocks.section(&format!("section {i}"));
        }

        let list = blocks.finish("footer", Some("id"), MAX_PAYLOAD_BYTES);

        assert_eq!(list.len(), MAX_BLOCKS);
        assert_eq!(section_text(&list[48]), "section 48");
    }

    #[test]
    fn finish_cuts_blocks_past_byte_budget() {
        let mut blocks = Blocks::default();
        for i in 0..30 {
            blocks.section(&format!("{i:02} {}", "x".repeat(2900)));
        }
        let budget = 20_000;

        let list = blocks.finish("the footer", Some("id"), budget);

        let bytes = json_len(&Value::from(list.clone()));
        assert!(bytes <= budget, "{bytes} bytes");
        // Each section is about 2,950 bytes, so six fit beside the notice and the footer.
        assert_eq!(list.len(), 8);
        assert!(section_text(&list[5]).starts_with("05 "));
        let notice = list[6]["elements"][0]["text"].as_str().unwrap();
        assert_eq!(
            notice,
            "24 more blocks left out to stay within Slack's limits; the full capture is in \
             bundle `id`."
        );
        assert_eq!(list[7]["elements"][0]["text"], "the footer");
    }

    #[test]
    fn finish_counts_json_escapes_in_budget() {
        let mut blocks = Blocks::default();
        // Each quote becomes two bytes and each control character six in JSON.
        blocks.section(&"\"\u{1}".repeat(1000));
        let section_bytes = json_len(&blocks.list[0]);
        assert!(section_bytes > 8000, "{section_bytes} bytes");

        let list = blocks.finish("footer", None, 4000);

        assert_eq!(list.len(), 2);
        assert_eq!(list[0]["type"], "context");
        assert!(json_len(&Value::from(list)) <= 4000);
    }

    #[test]
    fn blocks_budget_leaves_room_for_text() {
        let text = "t".repeat(1000);
        let message = serde_json::json!({ "text": text, "blocks": [] });

        let budget = blocks_budget(&text);

        // The empty list `[]` in `message` is part of the blocks' share.
        assert_eq!(budget, MAX_PAYLOAD_BYTES - json_len(&message) + 2);
        assert_eq!(
            budget,
            MAX_PAYLOAD_BYTES - 1000 - 2 - r#"{"text":,"blocks":}"#.len()
        );
    }

    #[test]
    fn fallback_text_is_cut_to_limit() {
        let text = fallback_text(&"t".repeat(10_000));

        assert_eq!(units(&text), MAX_FALLBACK_TEXT);
    }
}
