//! Masking of secrets in process command lines before they reach a bundle or Slack.
//!
//! Every rule finds a byte range that contains a secret value and replaces it with `***`,
//! keeping the key, flag or scheme in front of it, so a responder still sees which option
//! carried a secret. The rules and their examples are documented in `docs/redaction.md`;
//! keep the two in step.
//!
//! Two forms of command line are handled:
//! - the joined form in `snapshot.json` (arguments joined by spaces), where the argument
//!   boundaries are whitespace;
//! - the raw `/proc/PID/cmdline` bytes (arguments separated by NUL), where each argument is
//!   redacted on its own and the NUL layout is kept, so the raw evidence still reads back
//!   as a `/proc` tree.
//!
//! Masking never removes or adds a NUL and never changes bytes outside a secret value.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::LazyLock;

use aegisir_platform::{Capture, RawEntry, RawFiles};
use regex::bytes::Regex;

/// The text that replaces a secret value.
pub const MASK: &str = "***";

/// Names that are secret when they are the whole key (after normalising, see
/// [`normalise_key`]) or its last `_`-separated part.
const SECRET_WORDS: &[&str] = &[
    "password",
    "passwd",
    "pass",
    "passphrase",
    "secret",
    "token",
    "jwt",
    "apikey",
    "api_key",
    "secret_key",
    "access_key",
    "webhook_url",
    "storepass",
    "keypass",
];

/// Names that are secret like [`SECRET_WORDS`], except that a value that looks like a file
/// path is kept: `--private-key /etc/ssh/id_ed25519` names a file, while
/// `--private-key=MC4CAQ...` is the key itself.
const PATH_OR_SECRET_WORDS: &[&str] = &["private_key", "credentials"];

/// Names that are secret only as the last part of a longer key: a bare `PWD` is the
/// working directory, but `MYSQL_PWD` is a password.
const SECRET_SUFFIXES: &[&str] = &["pwd", "auth"];

/// Whole keys that are secret although no rule above covers them. The keytool names glue
/// `src` or `dest` to `storepass` and `keypass` without a separator.
const SECRET_KEYS: &[&str] = &[
    "pgpassword",
    "auth",
    "srcstorepass",
    "deststorepass",
    "srckeypass",
    "destkeypass",
];

/// Prefixes of access tokens that GitHub, GitLab and Slack issue. Such a token is often
/// put in a URL as the user name alone (`https://ghp_...@github.com/org/repo`).
const TOKEN_PREFIXES: &[&str] = &[
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat_",
    "glpat-",
    "xoxb-",
    "xoxp-",
];

/// A user name at least this long, made only of letters, digits, `_` and `-`, is taken for
/// an opaque token rather than an account name.
const OPAQUE_TOKEN_MIN_BYTES: usize = 20;

/// Flags whose next argument is not masked even though their name is secret: `-pass 1`
/// is ffmpeg's two-pass encoding, and `--pass` is rarely followed by the value.
const NO_NEXT_ARGUMENT: &[&str] = &["pass"];

/// Authorization schemes that precede the credentials in an `Authorization` header.
const AUTH_SCHEMES: &str = "basic|bearer|token|digest|negotiate|ntlm|aws4-hmac-sha256";

/// MySQL and MariaDB clients take the password glued to `-p` (`-psecret`); a bare `-p`
/// prompts, and the next argument is the database name.
const MYSQL_TOOLS: &[&str] = &[
    "mysql",
    "mysqldump",
    "mysqladmin",
    "mysqlimport",
    "mysqlshow",
    "mysqlcheck",
    "mysqlpump",
    "mysqlslap",
    "mariadb",
    "mariadb-dump",
    "mariadb-admin",
];

/// MongoDB tools take the password as `-p VALUE` or `-pVALUE`.
const MONGO_TOOLS: &[&str] = &[
    "mongo",
    "mongosh",
    "mongodump",
    "mongorestore",
    "mongoexport",
    "mongoimport",
];

/// `key=value`, `key:value`, `"key": "value"`; the value is found by [`value_end`].
static KEY_VALUE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"(?-u)(["']?)([A-Za-z0-9_.\-]+)(["']?)(=|:[ \t]*)"#).unwrap());

/// `scheme://user:password@host`; the user may be empty (`redis://:secret@host`).
static URL_PASSWORD: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i-u)\b[a-z][a-z0-9+.\-]*://[^\s:/?#@]*:([^\s/?#]*)@").unwrap());

/// `scheme://user@host` with no password; the user is masked only when
/// [`is_token_user`] takes it for a token.
static URL_USER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i-u)\b[a-z][a-z0-9+.\-]*://([^\s:/?#@]+)@").unwrap());

/// The body of a PEM private key, between its `BEGIN` and `END` lines (or to the end of the
/// segment when the `END` line is missing).
static PEM_PRIVATE_KEY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?s-u)-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----(.+?)(?:-----END|\z)").unwrap()
});

/// `Authorization: Bearer TOKEN`, `Proxy-Authorization: Basic B64`, `authorization=TOKEN`.
static AUTHORIZATION: LazyLock<Regex> = LazyLock::new(|| {
    let pattern = format!(
        r#"(?i-u)\b(?:proxy-)?authorization["']?[ \t]*[:=][ \t]*["']?(?:(?:{AUTH_SCHEMES})\s+)?([^\s"',;]+)"#
    );
    Regex::new(&pattern).unwrap()
});

/// `Bearer TOKEN` anywhere, such as a header split over two arguments.
static BEARER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"(?i-u)\bbearer\s+([^\-\s"',;][^\s"',;]*)"#).unwrap());

/// The secret path of a Slack incoming-webhook URL.
static SLACK_WEBHOOK: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"(?i-u)hooks\.slack\.com/services/([^\s"'?#]+)"#).unwrap());

/// Masks the secrets in a command line whose arguments are joined by spaces.
///
/// Returns the input unchanged (borrowed) when it contains nothing to mask.
pub fn redact_command_line(cmdline: &str) -> Cow<'_, str> {
    let bytes = cmdline.as_bytes();
    let tokens = whitespace_tokens(bytes, 0..bytes.len());

    let mut masks = segment_masks(bytes, 0..bytes.len(), SegmentKind::Joined);
    masks.extend(argument_masks(bytes, &tokens));

    match apply_masks(bytes, masks) {
        Some(redacted) => Cow::Owned(String::from_utf8_lossy(&redacted).into_owned()),
        None => Cow::Borrowed(cmdline),
    }
}

/// Masks the secrets in a raw `/proc/PID/cmdline` (arguments separated by NUL), one
/// argument at a time. The NUL bytes stay where they were.
pub fn redact_argv_bytes(raw: &[u8]) -> Cow<'_, [u8]> {
    let arguments = nul_separated(raw);

    let mut masks = Vec::new();
    for argument in &arguments {
        masks.extend(segment_masks(raw, argument.clone(), SegmentKind::Argument));
        if raw[argument.clone()].iter().any(u8::is_ascii_whitespace) {
            let inner = whitespace_tokens(raw, argument.clone());
            masks.extend(argument_masks(raw, &inner));
        }
    }
    masks.extend(argument_masks(raw, &arguments));

    match apply_masks(raw, masks) {
        Some(redacted) => Cow::Owned(redacted),
        None => Cow::Borrowed(raw),
    }
}

/// Masks the secrets in a process name, which a process can set to any text (`prctl`
/// with `PR_SET_NAME`, or by rewriting its argv[0]). The whole name is one argument, so a
/// `key=value` value runs to its end.
///
/// Returns the input unchanged (borrowed) when it contains nothing to mask.
pub fn redact_process_name(name: &str) -> Cow<'_, str> {
    let bytes = name.as_bytes();
    let masks = segment_masks(bytes, 0..bytes.len(), SegmentKind::Argument);

    match apply_masks(bytes, masks) {
        Some(redacted) => Cow::Owned(String::from_utf8_lossy(&redacted).into_owned()),
        None => Cow::Borrowed(name),
    }
}

/// Masks secrets in the snapshot's process names and command lines and in the raw
/// `cmdline` and `environ` entries of both samples. The names inside the raw `stat` and
/// `status` files are not masked.
///
/// Where the raw argv of a process is present and joins to the snapshot's command line, the
/// snapshot line is rebuilt from the redacted argv, so a secret that contains spaces is
/// masked whole. Otherwise the joined line is redacted on its own.
pub fn redact_capture(capture: &mut Capture) {
    for process in &mut capture.snapshot.processes.list {
        let key = format!("proc/{}/cmdline", process.pid);
        let rebuilt = match capture.raw.entries.get(&key) {
            Some(RawEntry::File(argv)) => redacted_line_from_argv(argv, &process.cmdline),
            _ => None,
        };
        process.cmdline = match rebuilt {
            Some(line) => line,
            None => redact_command_line(&process.cmdline).into_owned(),
        };

        if let Cow::Owned(name) = redact_process_name(&process.name) {
            process.name = name;
        }
    }

    redact_raw(&mut capture.raw);
    redact_raw(&mut capture.baseline_raw);
}

fn redact_raw(raw: &mut RawFiles) {
    for (key, entry) in raw.entries.iter_mut() {
        if !is_argv_entry(key) {
            continue;
        }
        if let RawEntry::File(bytes) = entry {
            if let Cow::Owned(redacted) = redact_argv_bytes(bytes) {
                *bytes = redacted;
            }
        }
    }
}

/// True for `proc/.../cmdline` and `proc/.../environ`, including task directories.
fn is_argv_entry(key: &str) -> bool {
    key.starts_with("proc/") && (key.ends_with("/cmdline") || key.ends_with("/environ"))
}

/// Rebuilds the redacted form of `line` from the argv it was joined from; `None` when `line`
/// is not that argv joined by spaces.
fn redacted_line_from_argv(argv: &[u8], line: &str) -> Option<String> {
    if join_arguments(argv) != line {
        return None;
    }
    let redacted = join_arguments(&redact_argv_bytes(argv));
    Some(redact_command_line(&redacted).into_owned())
}

/// Joins the arguments of a NUL-separated argv by single spaces, decoding them lossily.
fn join_arguments(argv: &[u8]) -> String {
    nul_separated(argv)
        .into_iter()
        .map(|range| String::from_utf8_lossy(&argv[range]).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Splits `raw` at NUL bytes into ranges, dropping the empty pieces that trailing NUL
/// padding leaves.
fn nul_separated(raw: &[u8]) -> Vec<Range<usize>> {
    let mut pieces = Vec::new();
    let mut start = 0;
    for (index, byte) in raw.iter().enumerate() {
        if *byte == 0 {
            pieces.push(start..index);
            start = index + 1;
        }
    }
    pieces.push(start..raw.len());
    while pieces.last().is_some_and(|range| range.is_empty()) {
        pieces.pop();
    }
    pieces
}

/// Finds the ranges of the whitespace-separated tokens inside `within`.
fn whitespace_tokens(bytes: &[u8], within: Range<usize>) -> Vec<Range<usize>> {
    let mut tokens = Vec::new();
    let mut start = None;
    for index in within.clone() {
        let blank = bytes[index].is_ascii_whitespace();
        match (blank, start) {
            (false, None) => start = Some(index),
            (true, Some(begin)) => {
                tokens.push(begin..index);
                start = None;
            }
            _ => {}
        }
    }
    if let Some(begin) = start {
        tokens.push(begin..within.end);
    }
    tokens
}

/// How far a value that starts a segment runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SegmentKind {
    /// One argv element: a value at its start runs to its end, spaces included.
    Argument,
    /// A joined command line: a value at a token start runs to the next whitespace.
    Joined,
}

/// Finds the masks of the pattern rules inside one segment.
fn segment_masks(bytes: &[u8], segment: Range<usize>, kind: SegmentKind) -> Vec<Range<usize>> {
    let text = &bytes[segment.clone()];
    let mut masks = key_value_masks(text, kind);

    let patterns = [
        &*URL_PASSWORD,
        &*AUTHORIZATION,
        &*BEARER,
        &*SLACK_WEBHOOK,
        &*PEM_PRIVATE_KEY,
    ];
    for pattern in patterns {
        for captures in pattern.captures_iter(text) {
            if let Some(value) = captures.get(1) {
                masks.push(value.range());
            }
        }
    }

    let users = URL_USER
        .captures_iter(text)
        .filter_map(|captures| captures.get(1));
    masks.extend(
        users
            .filter(|user| is_token_user(user.as_bytes()))
            .map(|user| user.range()),
    );

    masks
        .into_iter()
        .filter(|range| !range.is_empty())
        .map(|range| range.start + segment.start..range.end + segment.start)
        .collect()
}

/// Masks the values of `key=value` and `key: value` pairs whose key names a secret.
fn key_value_masks(text: &[u8], kind: SegmentKind) -> Vec<Range<usize>> {
    let mut masks = Vec::new();
    for captures in KEY_VALUE.captures_iter(text) {
        let (Some(whole), Some(key)) = (captures.get(0), captures.get(2)) else {
            continue;
        };
        let after = whole.end();
        if text[after..].starts_with(b"//") || !is_secret_key(key.as_bytes()) {
            continue;
        }
        let at_token_start = whole.start() == 0 || text[whole.start() - 1].is_ascii_whitespace();
        let end = match enclosing_quote_end(text, &captures, after) {
            Some(closing) => closing,
            None => value_end(text, after, at_token_start, kind),
        };
        let start = after + usize::from(text.get(after).is_some_and(|b| is_quote(*b)));
        if start >= end || may_name_path(key.as_bytes()) && looks_like_path(&text[start..end]) {
            continue;
        }
        masks.push(start..end);
    }
    masks
}

/// Finds the closing quote of a quote that opens before the key and encloses the whole
/// pair (`"X-Auth-Token: abc"`, `'password=abc'`), so the value stops there and the quote
/// is kept. `None` when the pair is not enclosed that way or the quote is never closed.
fn enclosing_quote_end(
    text: &[u8],
    captures: &regex::bytes::Captures,
    after: usize,
) -> Option<usize> {
    let opening = captures.get(1).filter(|quote| !quote.is_empty())?;
    if captures.get(3).is_some_and(|quote| !quote.is_empty()) {
        return None;
    }
    let quote = text[opening.start()];
    let offset = text[after..].iter().position(|b| *b == quote)?;
    Some(after + offset)
}

/// Finds where a value starting at `start` ends. A quoted value ends at its closing quote.
/// A value whose key starts a token runs to the end of the argument, or to the next
/// whitespace in a joined line. Any other value stops at the first delimiter of an option
/// list, query string or JSON text.
fn value_end(text: &[u8], start: usize, at_token_start: bool, kind: SegmentKind) -> usize {
    let rest = &text[start..];
    if let Some(&quote) = rest.first().filter(|b| is_quote(**b)) {
        let closing = rest[1..].iter().position(|b| *b == quote);
        return closing.map_or(text.len(), |offset| start + 1 + offset);
    }

    let stops: &[u8] = match (at_token_start, kind) {
        (true, SegmentKind::Argument) if start_of_segment(text, start) => b"",
        (true, _) => b" \t\n\r\x0b\x0c",
        (false, _) => b" \t\n\r\x0b\x0c&,;\"'})]#",
    };
    let length = rest.iter().position(|b| stops.contains(b));
    length.map_or(text.len(), |offset| start + offset)
}

/// True when the key whose value starts at `value_start` is the first token of the
/// segment, so its value owns the whole argument.
fn start_of_segment(text: &[u8], value_start: usize) -> bool {
    !text[..value_start].iter().any(u8::is_ascii_whitespace)
}

fn is_quote(byte: u8) -> bool {
    byte == b'"' || byte == b'\''
}

/// Lowercases a key and drops what does not change its meaning: leading dashes, a Java
/// `-D` prefix, quotes. `-` and `.` become `_`, and so does a camelCase boundary
/// (`keyStorePassword` becomes `key_store_password`).
fn normalise_key(key: &[u8]) -> String {
    let text = String::from_utf8_lossy(key);
    let unquoted = text.trim_matches(|c| c == '"' || c == '\'');
    let dashes = unquoted.len() - unquoted.trim_start_matches('-').len();
    let mut name = unquoted.trim_start_matches('-');
    if dashes == 1 && name.len() > 1 && name.starts_with('D') {
        name = &name[1..];
    }
    split_camel_case(name).replace(['-', '.'], "_")
}

/// Lowercases `name` and puts `_` where a lowercase letter or digit meets an uppercase one
/// (`dbPassword`), and before the last capital of an acronym of two or more letters that
/// starts a new word (`MySQLPassword` becomes `my_sql_password`). A single capital before
/// another word start is not split, so `OAuth` stays `oauth`.
fn split_camel_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut output = String::with_capacity(name.len() + 4);
    for (index, &current) in chars.iter().enumerate() {
        if index > 0 && current.is_ascii_uppercase() && starts_camel_word(&chars, index) {
            output.push('_');
        }
        output.push(current.to_ascii_lowercase());
    }
    output
}

/// True when the uppercase letter at `index` (not the first) starts a new camelCase word.
fn starts_camel_word(chars: &[char], index: usize) -> bool {
    let previous = chars[index - 1];
    if previous.is_ascii_lowercase() || previous.is_ascii_digit() {
        return true;
    }
    let next_is_lower = chars.get(index + 1).is_some_and(char::is_ascii_lowercase);
    let acronym_before = index >= 2 && chars[index - 2].is_ascii_uppercase();
    previous.is_ascii_uppercase() && acronym_before && next_is_lower
}

/// True when the normalised `name` is `word` or ends in `_` followed by `word`.
fn is_name_or_last_part(name: &str, word: &str) -> bool {
    let head = name.strip_suffix(word);
    head.is_some_and(|head| head.is_empty() || head.ends_with('_'))
}

/// True when a key (as written, see [`normalise_key`]) names a secret value.
fn is_secret_key(key: &[u8]) -> bool {
    let name = normalise_key(key);
    if SECRET_KEYS.contains(&name.as_str()) {
        return true;
    }
    let ends_with_part = |word: &str| {
        name.strip_suffix(word)
            .is_some_and(|head| !head.is_empty() && head.ends_with('_'))
    };
    let words = SECRET_WORDS.iter().chain(PATH_OR_SECRET_WORDS);
    words
        .into_iter()
        .any(|word| is_name_or_last_part(&name, word))
        || SECRET_SUFFIXES.iter().any(|word| ends_with_part(word))
}

/// True when a secret key may also hold a file path instead of the secret, see
/// [`PATH_OR_SECRET_WORDS`].
fn may_name_path(key: &[u8]) -> bool {
    let name = normalise_key(key);
    PATH_OR_SECRET_WORDS
        .iter()
        .any(|word| is_name_or_last_part(&name, word))
}

/// True for a value that starts like an absolute, relative or home-directory path.
fn looks_like_path(value: &[u8]) -> bool {
    ["/", "./", "../", "~/"]
        .iter()
        .any(|prefix| value.starts_with(prefix.as_bytes()))
}

/// True when the user name of a URL without a password is a token rather than an account
/// name: it starts with a known token prefix, or it is a long opaque string.
fn is_token_user(user: &[u8]) -> bool {
    let has_prefix = TOKEN_PREFIXES
        .iter()
        .any(|prefix| user.len() > prefix.len() && user.starts_with(prefix.as_bytes()));
    let opaque = user.len() >= OPAQUE_TOKEN_MIN_BYTES
        && user
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-');
    has_prefix || opaque
}

/// What a flag such as `--password` or `--api-key` implies for its next argument, which
/// then holds the secret.
fn flag_pending(argument: &[u8]) -> Pending {
    if argument.len() < 2 || argument[0] != b'-' || argument.contains(&b'=') {
        return Pending::Nothing;
    }
    let name = normalise_key(argument);
    if name.starts_with("no_") || NO_NEXT_ARGUMENT.contains(&name.as_str()) {
        return Pending::Nothing;
    }
    match is_secret_key(argument) {
        true if may_name_path(argument) => Pending::SecretUnlessPath,
        true => Pending::Secret,
        false => Pending::Nothing,
    }
}

/// What the previous argument implies for the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    Nothing,
    /// The next argument is a secret.
    Secret,
    /// The next argument is a secret unless it looks like a file path.
    SecretUnlessPath,
    /// The next argument is `user:password`; mask after the first colon.
    UserPassword,
}

/// Finds the masks of the argument-order rules: flags whose next argument is a secret, and
/// the short options of known tools.
///
/// An argument that contains whitespace (`"app --password"` as one argv element) acts on
/// the next argument through its last word, and switches tools through each of its words.
fn argument_masks(bytes: &[u8], arguments: &[Range<usize>]) -> Vec<Range<usize>> {
    let mut masks = Vec::new();
    let mut pending = Pending::Nothing;
    let mut tool = Tool::Other;

    for range in arguments {
        let argument = &bytes[range.clone()];
        masks.extend(pending_mask(pending, argument, range.start));
        if pending != Pending::Nothing && !argument.starts_with(b"-") {
            pending = Pending::Nothing;
            continue;
        }

        let words = whitespace_tokens(bytes, range.clone());
        let Some(last) = words.last().cloned() else {
            pending = Pending::Nothing;
            continue;
        };
        tool = words
            .iter()
            .fold(tool, |tool, word| tool.after(&bytes[word.clone()]));

        let (mask, next) = tool.option_mask(argument);
        masks.extend(mask.map(|mask| mask.start + range.start..mask.end + range.start));

        let flag = &bytes[last.clone()];
        let next = match flag.len() == argument.len() {
            true => next,
            false => tool.option_mask(flag).1,
        };
        pending = match next {
            Pending::Nothing => flag_pending(flag),
            other => other,
        };
    }
    masks
}

fn pending_mask(pending: Pending, argument: &[u8], offset: usize) -> Option<Range<usize>> {
    if argument.is_empty() || argument.starts_with(b"-") {
        return None;
    }
    match pending {
        Pending::Nothing => None,
        Pending::Secret => Some(offset..offset + argument.len()),
        Pending::SecretUnlessPath if looks_like_path(argument) => None,
        Pending::SecretUnlessPath => Some(offset..offset + argument.len()),
        Pending::UserPassword => {
            after_first_colon(argument).map(|r| r.start + offset..r.end + offset)
        }
    }
}

fn after_first_colon(argument: &[u8]) -> Option<Range<usize>> {
    let colon = argument.iter().position(|b| *b == b':')?;
    let range = colon + 1..argument.len();
    (!range.is_empty()).then_some(range)
}

/// A program whose own short options carry secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tool {
    Other,
    Mysql,
    Mongo,
    Sshpass,
    RedisCli,
    Curl,
    Sqlcmd,
    /// docker, podman or nerdctl; `login` was seen when the flag is true.
    Container {
        login: bool,
    },
}

impl Tool {
    /// Returns the tool in force after `argument`. A program name (its base name) switches
    /// tools, so `sudo mysql -psecret` and `env X=1 curl -u a:b` are covered.
    fn after(self, argument: &[u8]) -> Tool {
        if argument.starts_with(b"-") {
            return self;
        }
        if let Tool::Container { .. } = self {
            if argument == b"login" {
                return Tool::Container { login: true };
            }
        }
        let base = argument.rsplit(|b| *b == b'/').next().unwrap_or(argument);
        let name = String::from_utf8_lossy(base);
        match name.as_ref() {
            n if MYSQL_TOOLS.contains(&n) => Tool::Mysql,
            n if MONGO_TOOLS.contains(&n) => Tool::Mongo,
            "sshpass" => Tool::Sshpass,
            "redis-cli" => Tool::RedisCli,
            "curl" => Tool::Curl,
            "sqlcmd" => Tool::Sqlcmd,
            "docker" | "podman" | "nerdctl" => Tool::Container { login: false },
            _ => self,
        }
    }

    /// Finds the mask inside `argument` and what it implies for the next argument.
    fn option_mask(self, argument: &[u8]) -> (Option<Range<usize>>, Pending) {
        let glued = |flag: &[u8]| {
            let value = argument.strip_prefix(flag).filter(|rest| !rest.is_empty());
            value.map(|_| flag.len()..argument.len())
        };
        match self {
            Tool::Mysql => (glued(b"-p"), Pending::Nothing),
            Tool::Mongo | Tool::Sshpass if argument == b"-p" => (None, Pending::Secret),
            Tool::Mongo | Tool::Sshpass => (glued(b"-p"), Pending::Nothing),
            Tool::RedisCli if argument == b"-a" || argument == b"--pass" => (None, Pending::Secret),
            Tool::Sqlcmd if argument == b"-P" => (None, Pending::Secret),
            Tool::Sqlcmd => (glued(b"-P"), Pending::Nothing),
            Tool::Container { login: true } if argument == b"-p" => (None, Pending::Secret),
            Tool::Curl => curl_user_mask(argument),
            _ => (None, Pending::Nothing),
        }
    }
}

/// curl's `-u user:password`, `-uuser:password`, `--user user:password` and
/// `--user=user:password`, and the same for `-U`/`--proxy-user`.
fn curl_user_mask(argument: &[u8]) -> (Option<Range<usize>>, Pending) {
    for flag in [&b"--user"[..], b"--proxy-user", b"-u", b"-U"] {
        if argument == flag {
            return (None, Pending::UserPassword);
        }
        let Some(rest) = argument.strip_prefix(flag) else {
            continue;
        };
        let value_offset = if flag.starts_with(b"--") {
            match rest.strip_prefix(b"=") {
                Some(_) => flag.len() + 1,
                None => continue,
            }
        } else {
            flag.len()
        };
        let value = &argument[value_offset..];
        let mask = after_first_colon(value).map(|r| r.start + value_offset..r.end + value_offset);
        return (mask, Pending::Nothing);
    }
    (None, Pending::Nothing)
}

/// Replaces every masked range with [`MASK`]; overlapping ranges are merged. `None` when
/// there is nothing to mask.
fn apply_masks(bytes: &[u8], mut masks: Vec<Range<usize>>) -> Option<Vec<u8>> {
    masks.retain(|range| !range.is_empty() && &bytes[range.clone()] != MASK.as_bytes());
    if masks.is_empty() {
        return None;
    }
    masks.sort_by_key(|range| (range.start, range.end));

    let mut output = Vec::with_capacity(bytes.len());
    let mut position = 0;
    for range in masks {
        if range.end <= position {
            continue;
        }
        let start = range.start.max(position);
        output.extend_from_slice(&bytes[position..start]);
        if start == range.start {
            output.extend_from_slice(MASK.as_bytes());
        }
        position = range.end;
    }
    output.extend_from_slice(&bytes[position..]);
    Some(output)
}

#[cfg(test)]
mod tests {
    use super::*;

    use aegisir_platform::{Process, Snapshot};
    use proptest::prelude::*;

    /// Each joined command line and its expected redaction.
    const JOINED_CASES: &[(&str, &str)] = &[
        ("app --password=hunter2 -v", "app --password=*** -v"),
        ("app --password hunter2 -v", "app --password *** -v"),
        ("app --db-password=hunter2", "app --db-password=***"),
        ("app --passwd=hunter2", "app --passwd=***"),
        ("app token=abc123", "app token=***"),
        ("app --token abc123", "app --token ***"),
        (
            "app --api-key=k1 --api_key=k2 --apikey k3",
            "app --api-key=*** --api_key=*** --apikey ***",
        ),
        (
            "app --secret=s1 --client-secret s2",
            "app --secret=*** --client-secret ***",
        ),
        (
            "AWS_SECRET_ACCESS_KEY=wJalr aws s3 ls",
            "AWS_SECRET_ACCESS_KEY=*** aws s3 ls",
        ),
        ("AWS_SESSION_TOKEN=FwoG aws", "AWS_SESSION_TOKEN=*** aws"),
        ("PGPASSWORD=pw psql -h db", "PGPASSWORD=*** psql -h db"),
        ("MYSQL_PWD=pw mysql", "MYSQL_PWD=*** mysql"),
        ("GITHUB_TOKEN=ghp_x make", "GITHUB_TOKEN=*** make"),
        (
            "curl -H Authorization: Bearer eyJhbGc.x.y https://api",
            "curl -H Authorization: Bearer *** https://api",
        ),
        (
            "curl -H Authorization: Basic dXNlcjpwdw== https://api",
            "curl -H Authorization: Basic *** https://api",
        ),
        (
            "curl -H authorization:token ghp_1 x",
            "curl -H authorization:token *** x",
        ),
        ("curl -H X-Api-Key: k1 x", "curl -H X-Api-Key: *** x"),
        (
            "psql postgres://app:s3cr3t@db:5432/app",
            "psql postgres://app:***@db:5432/app",
        ),
        (
            "redis-cli -u redis://:pw@cache:6379",
            "redis-cli -u redis://:***@cache:6379",
        ),
        (
            "app --dsn=mysql://root:p@ss@db/x",
            "app --dsn=mysql://root:***@db/x",
        ),
        (
            "app https://x/cb?access_token=abc&page=2",
            "app https://x/cb?access_token=***&page=2",
        ),
        (
            "mount -o username=u,password=p,vers=3 //srv/x /mnt",
            "mount -o username=u,password=***,vers=3 //srv/x /mnt",
        ),
        (
            "java -Dspring.datasource.password=pw -jar a.jar",
            "java -Dspring.datasource.password=*** -jar a.jar",
        ),
        (
            "java -Dpassword=pw -jar a.jar",
            "java -Dpassword=*** -jar a.jar",
        ),
        (
            "app --data {\"password\":\"pw 1\",\"user\":\"u\"}",
            "app --data {\"password\":\"***\",\"user\":\"u\"}",
        ),
        (
            "openssl enc -pass pass:pw -in f",
            "openssl enc -pass pass:*** -in f",
        ),
        ("mysql -uroot -ps3cret shop", "mysql -uroot -p*** shop"),
        (
            "/usr/bin/mysqldump -psecret db",
            "/usr/bin/mysqldump -p*** db",
        ),
        ("sudo mysql -pX", "sudo mysql -p***"),
        ("sshpass -p pw ssh host", "sshpass -p *** ssh host"),
        ("sshpass -ppw ssh host", "sshpass -p*** ssh host"),
        ("mongosh -u admin -p pw", "mongosh -u admin -p ***"),
        ("redis-cli -a pw ping", "redis-cli -a *** ping"),
        ("sqlcmd -S db -U sa -P pw", "sqlcmd -S db -U sa -P ***"),
        ("curl -u admin:pw https://x", "curl -u admin:*** https://x"),
        (
            "curl --user=admin:pw https://x",
            "curl --user=admin:*** https://x",
        ),
        ("curl -uadmin:pw https://x", "curl -uadmin:*** https://x"),
        (
            "docker login -u me -p pw registry",
            "docker login -u me -p *** registry",
        ),
        (
            "app --webhook-url https://hooks.slack.com/services/T0/B0/xyz",
            "app --webhook-url ***",
        ),
        (
            "app https://hooks.slack.com/services/T0/B0/xyz",
            "app https://hooks.slack.com/services/***",
        ),
        ("app --auth=user:pw", "app --auth=***"),
        ("sqlcmd -Ppw -S db", "sqlcmd -P*** -S db"),
        ("redis-cli --pass pw ping", "redis-cli --pass *** ping"),
        ("mongodump -ppw --db x", "mongodump -p*** --db x"),
        ("app -H Bearer abc.def", "app -H Bearer ***"),
        ("psql --password mydb", "psql --password ***"),
        (
            "java -Djavax.net.ssl.keyStorePassword=LEAKS2 -jar app.jar",
            "java -Djavax.net.ssl.keyStorePassword=*** -jar app.jar",
        ),
        (
            "java -Djavax.net.ssl.trustStorePassword=pw -jar a.jar",
            "java -Djavax.net.ssl.trustStorePassword=*** -jar a.jar",
        ),
        ("app --dbPassword pw -v", "app --dbPassword *** -v"),
        (
            "app apiToken=t1 clientSecret=s1 apiKey=k1",
            "app apiToken=*** clientSecret=*** apiKey=***",
        ),
        ("app MySQLPassword=pw", "app MySQLPassword=***"),
        (
            "git clone https://ghp_LEAKA2@github.com/org/repo",
            "git clone https://***@github.com/org/repo",
        ),
        (
            "git clone https://glpat-x1y2@gitlab.com/org/repo",
            "git clone https://***@gitlab.com/org/repo",
        ),
        (
            "git fetch https://0a1b2c3d4e5f6a7b8c9d@git.example.com/r",
            "git fetch https://***@git.example.com/r",
        ),
        ("gpg --passphrase=pp -d f", "gpg --passphrase=*** -d f"),
        ("gpg --passphrase pp -d f", "gpg --passphrase *** -d f"),
        ("app --credentials=user:pw", "app --credentials=***"),
        (
            "keytool -list -storepass pw -keypass kp",
            "keytool -list -storepass *** -keypass ***",
        ),
        (
            "app --storepass=pw --keypass kp",
            "app --storepass=*** --keypass ***",
        ),
        (
            "keytool -importkeystore -srcstorepass a1 -deststorepass b1",
            "keytool -importkeystore -srcstorepass *** -deststorepass ***",
        ),
        ("app --jwt=eyJ.x.y", "app --jwt=***"),
        ("app --private-key=MC4CAQ", "app --private-key=***"),
        ("app --private-key MC4CAQ -v", "app --private-key *** -v"),
        ("app --client-secret=s1", "app --client-secret=***"),
        (
            "curl -H \"X-Auth-Token: LEAKA8\" http://x",
            "curl -H \"X-Auth-Token: ***\" http://x",
        ),
        ("sh -c 'password=a b' x", "sh -c 'password=***' x"),
        (
            "app -----BEGIN PRIVATE KEY-----MIIEv-----END PRIVATE KEY-----",
            "app -----BEGIN PRIVATE KEY-----***-----END PRIVATE KEY-----",
        ),
    ];

    /// Command lines that hold no secret and must come back unchanged.
    const KEPT_CASES: &[&str] = &[
        "app --password-file=/etc/app/pw",
        "app --token-count 5",
        "app --token-path /run/secrets/t",
        "app --secret-name db-creds",
        "ssh -p 2222 host",
        "docker run -p 8080:80 nginx",
        "mysql -p shop",
        "mysql -P3306 -h db",
        "ffmpeg -i in.mp4 -pass 1 out.mp4",
        "psql --no-password -h db",
        "env PWD=/home/app OLDPWD=/ app",
        "app --key=/etc/tls/key.pem",
        "app --private-key /etc/ssh/id_ed25519",
        "app --tokenizer=bpe",
        "app --password -x1",
        "app --auth-type bearer --token-count 2",
        "curl -u admin https://x",
        "curl https://example.com:8443/path?q=a@b",
        "app --oauth-provider=github",
        "app --password= -v",
        "[kworker/0:1]",
        "",
        "java -Djavax.net.ssl.keyStore=/etc/ks.jks -Djavax.net.ssl.keyStoreType=PKCS12 -jar a.jar",
        "app --passwordFile=/etc/app/pw -DpasswordFile=/etc/app/pw",
        "app --tokenCount=5 --secretName=db-creds",
        "app -DuseOAuth=true",
        "git clone https://git@github.com/org/repo",
        "git clone https://deploy@git.example.com/org/repo",
        "app --private-key=/etc/tls/key.pem",
        "app --credentials ./creds.json",
        "GOOGLE_APPLICATION_CREDENTIALS=/var/run/key.json app",
        "gpg --passphrase-fd 0 -d f",
        "keytool -list -keystore ks.jks",
    ];

    #[test]
    fn joined_cases_are_masked() {
        for (input, expected) in JOINED_CASES {
            assert_eq!(redact_command_line(input), *expected, "input: {input}");
        }
    }

    #[test]
    fn lines_without_secrets_are_kept() {
        for input in KEPT_CASES {
            let output = redact_command_line(input);
            assert!(
                matches!(output, Cow::Borrowed(_)),
                "changed: {input} -> {output}"
            );
        }
    }

    #[test]
    fn password_flag_before_option_keeps_option() {
        assert_eq!(
            redact_command_line("psql --password -h db"),
            "psql --password -h db"
        );
    }

    #[test]
    fn redaction_is_idempotent_on_cases() {
        for (_, expected) in JOINED_CASES {
            assert_eq!(redact_command_line(expected), *expected);
        }
    }

    #[test]
    fn argv_keeps_nul_layout() {
        let raw = b"app\0--password\0my secret\0--token=abc\0\0";
        let redacted = redact_argv_bytes(raw);
        assert_eq!(&*redacted, b"app\0--password\0***\0--token=***\0\0");
    }

    #[test]
    fn argv_value_with_spaces_is_masked_whole() {
        let raw = b"app\0--password=my secret pw\0-v\0";
        assert_eq!(&*redact_argv_bytes(raw), b"app\0--password=***\0-v\0");
    }

    #[test]
    fn argv_header_argument_is_masked() {
        let raw = b"curl\0-H\0Authorization: Bearer abc.def\0https://api\0";
        let expected = b"curl\0-H\0Authorization: Bearer ***\0https://api\0";
        assert_eq!(&*redact_argv_bytes(raw), expected);
    }

    #[test]
    fn argv_shell_command_is_masked_inside() {
        let raw = b"sh\0-c\0mysql -ps3cret shop && curl -u a:pw x\0";
        let expected = b"sh\0-c\0mysql -p*** shop && curl -u a:*** x\0";
        assert_eq!(&*redact_argv_bytes(raw), expected);
    }

    #[test]
    fn argv_flag_at_end_of_argument_masks_next() {
        let raw = b"sh\0app --password\0LEAKD3\0-v\0";
        assert_eq!(&*redact_argv_bytes(raw), b"sh\0app --password\0***\0-v\0");
    }

    #[test]
    fn argv_tool_in_argument_masks_next() {
        let raw = b"sh\0-c\0sshpass -p\0pw\0";
        assert_eq!(&*redact_argv_bytes(raw), b"sh\0-c\0sshpass -p\0***\0");
    }

    #[test]
    fn argv_header_value_runs_to_argument_end() {
        let raw = b"curl\0-H\0X-Auth-Token: LEAKA8\0http://x\0";
        let expected = b"curl\0-H\0X-Auth-Token: ***\0http://x\0";
        assert_eq!(&*redact_argv_bytes(raw), expected);
    }

    #[test]
    fn argv_pem_private_key_body_is_masked() {
        let raw =
            b"app\0--private-key\0-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n\0";
        let expected =
            b"app\0--private-key\0-----BEGIN PRIVATE KEY-----***-----END PRIVATE KEY-----\n\0";
        assert_eq!(&*redact_argv_bytes(raw), expected);
    }

    #[test]
    fn argv_private_key_path_is_kept() {
        let raw = b"app\0--private-key\0/etc/ssh/id_ed25519\0";
        assert!(matches!(redact_argv_bytes(raw), Cow::Borrowed(_)));
    }

    #[test]
    fn process_name_secret_is_masked() {
        assert_eq!(redact_process_name("pass=LEAKE1"), "pass=***");
        assert_eq!(redact_process_name("token=a b"), "token=***");
    }

    #[test]
    fn process_name_without_secret_is_borrowed() {
        for name in ["nginx", "[kworker/0:1]", "postgres: writer", "pass"] {
            let output = redact_process_name(name);
            assert!(
                matches!(output, Cow::Borrowed(_)),
                "changed: {name} -> {output}"
            );
        }
    }

    #[test]
    fn argv_non_utf8_bytes_survive() {
        let raw = b"app\xff\0--token=\xfe\xfd\0x\xc3\0";
        assert_eq!(&*redact_argv_bytes(raw), b"app\xff\0--token=***\0x\xc3\0");
    }

    #[test]
    fn argv_without_secret_is_borrowed() {
        let raw = b"nginx: worker process\0\0\0";
        assert!(matches!(redact_argv_bytes(raw), Cow::Borrowed(_)));
    }

    fn capture_with(pid: i32, cmdline: &str, argv: &[u8]) -> Capture {
        let mut snapshot = Snapshot::default();
        snapshot.processes.list.push(Process {
            pid,
            cmdline: cmdline.to_string(),
            ..Process::default()
        });
        let mut raw = RawFiles::default();
        let key = format!("proc/{pid}/cmdline");
        raw.entries
            .insert(key.clone(), RawEntry::File(argv.to_vec()));
        raw.entries.insert(
            format!("proc/{pid}/stat"),
            RawEntry::File(b"7 (app) S --token=x".to_vec()),
        );
        let mut baseline_raw = RawFiles::default();
        baseline_raw
            .entries
            .insert(key, RawEntry::File(argv.to_vec()));
        Capture {
            snapshot,
            raw,
            baseline_raw,
        }
    }

    #[test]
    fn capture_redacts_snapshot_and_both_raw_samples() {
        let argv = b"app\0--password\0my secret\0";
        let mut capture = capture_with(7, "app --password my secret", argv);

        redact_capture(&mut capture);

        assert_eq!(
            capture.snapshot.processes.list[0].cmdline,
            "app --password ***"
        );
        let expected = RawEntry::File(b"app\0--password\0***\0".to_vec());
        assert_eq!(capture.raw.entries.get("proc/7/cmdline"), Some(&expected));
        assert_eq!(
            capture.baseline_raw.entries.get("proc/7/cmdline"),
            Some(&expected)
        );
    }

    #[test]
    fn capture_redacts_process_name() {
        let mut capture = capture_with(7, "app", b"app\0");
        capture.snapshot.processes.list[0].name = "pass=LEAKE1".to_string();

        redact_capture(&mut capture);

        assert_eq!(capture.snapshot.processes.list[0].name, "pass=***");
    }

    #[test]
    fn capture_leaves_other_raw_files_alone() {
        let mut capture = capture_with(7, "app", b"app\0");
        redact_capture(&mut capture);
        let stat = RawEntry::File(b"7 (app) S --token=x".to_vec());
        assert_eq!(capture.raw.entries.get("proc/7/stat"), Some(&stat));
    }

    #[test]
    fn capture_falls_back_to_joined_line() {
        let mut capture = capture_with(7, "app --token=abc", b"other\0");
        redact_capture(&mut capture);
        assert_eq!(
            capture.snapshot.processes.list[0].cmdline,
            "app --token=***"
        );
    }

    #[test]
    fn capture_redacts_environ_entries() {
        let mut capture = capture_with(7, "app", b"app\0");
        let environ = b"HOME=/root\0PGPASSWORD=pw\0".to_vec();
        capture
            .raw
            .entries
            .insert("proc/7/environ".into(), RawEntry::File(environ));
        redact_capture(&mut capture);
        let expected = RawEntry::File(b"HOME=/root\0PGPASSWORD=***\0".to_vec());
        assert_eq!(capture.raw.entries.get("proc/7/environ"), Some(&expected));
    }

    proptest! {
        #[test]
        fn joined_redaction_never_panics_and_is_stable(line in "\\PC{0,80}") {
            let once = redact_command_line(&line).into_owned();
            let twice = redact_command_line(&once).into_owned();
            prop_assert_eq!(once, twice);
        }

        #[test]
        fn argv_redaction_keeps_nul_count(raw in proptest::collection::vec(any::<u8>(), 0..120)) {
            let redacted = redact_argv_bytes(&raw);
            let before = raw.iter().filter(|b| **b == 0).count();
            let after = redacted.iter().filter(|b| **b == 0).count();
            prop_assert_eq!(before, after);
        }

        #[test]
        fn argv_with_secret_words_keeps_nul_count(
            words in proptest::collection::vec(
                "(--password|--token|-p|mysql|curl|-u|Bearer|a:b|x=y|pw=1|Authorization:|[a-z@:/=]{0,6})",
                0..10,
            )
        ) {
            let raw = words.join("\0").into_bytes();
            let redacted = redact_argv_bytes(&raw);
            prop_assert_eq!(
                raw.iter().filter(|b| **b == 0).count(),
                redacted.iter().filter(|b| **b == 0).count()
            );
        }
    }
}
