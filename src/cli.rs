//! The command line: `serve`, `snapshot`, `verify`, `diff` and `healthcheck`.
//!
//! Exit codes: 0 success; 1 a check failed (`verify` found a changed bundle, `healthcheck`
//! got no healthy reply); 2 a usage or runtime error, printed with its chain of causes.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use aegisir_platform::Collector;
use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};

use crate::config::{self, CaptureLayer, Layer, Settings};
use crate::health;
use crate::intake::new_incident_id;
use crate::report;
use crate::server;
use crate::store::{self, BundleInput, BundleStore, Trigger, TriggerKind};

/// Incident-response capture for Prometheus Alertmanager.
#[derive(Debug, Parser)]
#[command(name = "aegisir", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: receive Alertmanager webhooks, capture the host, write bundles.
    Serve(ServeArgs),
    /// Capture the host once without the server and print the path of the bundle.
    Snapshot(SnapshotArgs),
    /// Recompute the hashes of bundles; exit 1 when any file changed, is missing or extra.
    Verify(VerifyArgs),
    /// Compare two captures: processes, CPU and memory, sockets, filesystems.
    Diff(DiffArgs),
    /// Ask a running server's /healthz; exit 0 when healthy, 1 otherwise, within 2 s.
    Healthcheck(HealthcheckArgs),
}

/// The roots the host is read from; each flag also has an `AEGISIR_*` variable.
#[derive(Debug, Default, Args)]
pub struct RootArgs {
    /// Path where the host's /proc is mounted [env: AEGISIR_PROCFS] [default: /proc]
    #[arg(long, value_name = "DIR")]
    pub procfs: Option<PathBuf>,
    /// Path where the host's /sys is mounted [env: AEGISIR_SYSFS] [default: /sys]
    #[arg(long, value_name = "DIR")]
    pub sysfs: Option<PathBuf>,
    /// Path where the host's root filesystem is mounted [env: AEGISIR_ROOTFS] [default: /]
    #[arg(long, value_name = "DIR")]
    pub rootfs: Option<PathBuf>,
}

#[derive(Debug, Default, Args)]
pub struct ServeArgs {
    /// TOML config file [env: AEGISIR_CONFIG]
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on [env: AEGISIR_LISTEN] [default: 0.0.0.0:5001]
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Directory for bundles and the events journal [env: AEGISIR_DATA_DIR] [default: ./logs]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    #[command(flatten)]
    pub roots: RootArgs,
    /// Seconds between the two samples of a capture, above 0 and at most 60
    /// [env: AEGISIR_INTERVAL_SECS] [default: 1]
    #[arg(long, value_name = "SECS", allow_negative_numbers = true, value_parser = parse_interval)]
    pub interval: Option<f64>,
    /// Seconds between history samples, 0 to turn history off
    /// [env: AEGISIR_HISTORY_INTERVAL_SECS] [default: 5]
    #[arg(long, value_name = "SECS", allow_negative_numbers = true, value_parser = parse_seconds)]
    pub history_interval: Option<f64>,
}

#[derive(Debug, Default, Args)]
pub struct SnapshotArgs {
    /// Directory to write the bundle into [env: AEGISIR_DATA_DIR] [default: ./logs]
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// TOML config file [env: AEGISIR_CONFIG]
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub roots: RootArgs,
    /// Seconds between the two samples, above 0 and at most 60
    /// [env: AEGISIR_INTERVAL_SECS] [default: 1]
    #[arg(long, value_name = "SECS", allow_negative_numbers = true, value_parser = parse_interval)]
    pub interval: Option<f64>,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Bundle directories to check
    #[arg(
        value_name = "BUNDLE",
        required_unless_present = "all",
        conflicts_with = "all"
    )]
    pub bundles: Vec<PathBuf>,
    /// Check every bundle in a data directory and the chain that links them
    #[arg(long, value_name = "DIR")]
    pub all: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The earlier capture: a bundle directory or a snapshot.json
    pub a: PathBuf,
    /// The later capture: a bundle directory or a snapshot.json
    pub b: PathBuf,
    /// Print the comparison as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Default, Args)]
pub struct HealthcheckArgs {
    /// URL to ask [default: /healthz on the listen address from AEGISIR_LISTEN or the config,
    /// over loopback]
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// TOML config file to take the listen address from [env: AEGISIR_CONFIG]
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// Parses the arguments, runs the command and maps the result to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let dotenv = load_dotenv(Path::new(".env"));
    if let Err(problem) = dotenv {
        if cli.command.reads_settings() {
            eprintln!("error: {problem}; fix or remove the file");
            return ExitCode::from(2);
        }
        eprintln!("warning: ignoring {problem}; no variable from it was applied");
    }
    init_logging();
    match run(cli.command) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {}", error_text(&error));
            ExitCode::from(2)
        }
    }
}

/// Joins an error and its causes with `: `, skipping a cause whose text the message before it
/// already contains, as when an error's message repeats its source.
pub fn error_text(error: &anyhow::Error) -> String {
    let mut text = String::new();
    let mut previous = String::new();
    for cause in error.chain() {
        let message = cause.to_string();
        if !previous.is_empty() && previous.contains(&message) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&message);
        previous = message;
    }
    text
}

fn parse_interval(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    config::check_interval(value)?;
    Ok(value)
}

fn parse_seconds(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if std::time::Duration::try_from_secs_f64(value).is_err() {
        return Err(format!(
            "{value} is out of range: expected a number of seconds from 0 to {}",
            u64::MAX
        ));
    }
    Ok(value)
}

fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve(args) => serve(args),
        Command::Snapshot(args) => snapshot(args),
        Command::Verify(args) => verify(args),
        Command::Diff(args) => diff(args),
        Command::Healthcheck(args) => healthcheck(args),
    }
}

impl Command {
    /// Whether the command reads settings from the environment, and so from `.env`.
    fn reads_settings(&self) -> bool {
        match self {
            Command::Serve(_) | Command::Snapshot(_) | Command::Healthcheck(_) => true,
            Command::Verify(_) | Command::Diff(_) => false,
        }
    }
}

/// Loads `.env` from the working directory; variables already set win over it. The whole
/// file is parsed first and nothing is applied when any line is invalid. The error names the
/// file and the line number only, because a line may contain a secret such as the Slack URL.
fn load_dotenv(path: &Path) -> Result<(), String> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(format!("failed to read {}: {error}", path.display())),
    };
    let pairs = parse_dotenv(&bytes).map_err(|problem| format!("{}: {problem}", path.display()))?;
    apply_dotenv(pairs);
    Ok(())
}

/// Parses a `.env` file into its variables. The error names the line, never its content.
pub fn parse_dotenv(bytes: &[u8]) -> Result<Vec<(String, String)>, String> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut pairs = Vec::new();
    for item in dotenvy::from_read_iter(bytes) {
        match item {
            Ok(pair) => pairs.push(pair),
            Err(dotenvy::Error::LineParse(line, _)) => {
                let number = line_number_of(bytes, &line);
                return Err(format!("line {number} has invalid syntax"));
            }
            Err(dotenvy::Error::Io(error)) => return Err(format!("failed to read it: {error}")),
            Err(_) => return Err("a variable substitution is invalid".to_string()),
        }
    }
    Ok(pairs)
}

/// Returns the 1-based number of the line where `line` starts in `bytes`, or 0 if not found.
fn line_number_of(bytes: &[u8], line: &str) -> usize {
    let text = String::from_utf8_lossy(bytes);
    let Some(start) = text.find(line) else {
        return 0;
    };
    text[..start].matches('\n').count() + 1
}

fn apply_dotenv(pairs: Vec<(String, String)>) {
    for (name, value) in pairs {
        if std::env::var_os(&name).is_none() {
            // The process has one thread here: main calls this before anything else starts.
            std::env::set_var(name, value);
        }
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`), so stdout stays for results.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        // A closed stderr (the server piped to `head`) must not make the logger print its own
        // write errors, which panics on a broken pipe.
        .log_internal_errors(false)
        .init();
}

/// Stacks flags over the environment over the config file and resolves the result.
pub fn load_settings(flags: Layer, config: Option<PathBuf>) -> anyhow::Result<Settings> {
    let env = Layer::from_env(|name| std::env::var(name).ok())?;
    let config = config.or_else(|| std::env::var_os(config::CONFIG_ENV).map(PathBuf::from));
    let file = match &config {
        Some(path) => Layer::from_file(path)?,
        None => Layer::default(),
    };
    Ok(flags.or(env).or(file).resolve()?)
}

fn capture_flags(roots: RootArgs, interval: Option<f64>) -> CaptureLayer {
    CaptureLayer {
        procfs: roots.procfs,
        sysfs: roots.sysfs,
        rootfs: roots.rootfs,
        interval_secs: interval,
        ..CaptureLayer::default()
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let mut flags = Layer {
        listen: args.listen,
        data_dir: args.data_dir,
        capture: capture_flags(args.roots, args.interval),
        ..Layer::default()
    };
    flags.history.interval_secs = args.history_interval;
    let settings = load_settings(flags, args.config)?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    runtime.block_on(server::run(settings))?;
    Ok(ExitCode::SUCCESS)
}

fn snapshot(args: SnapshotArgs) -> anyhow::Result<ExitCode> {
    let flags = Layer {
        data_dir: args.out,
        capture: capture_flags(args.roots, args.interval),
        ..Layer::default()
    };
    let settings = load_settings(flags, args.config)?;
    let path = write_snapshot(&settings)?;
    println!("{}", path.display());
    Ok(ExitCode::SUCCESS)
}

/// Captures the host once and writes a bundle into the data directory; returns its path.
pub fn write_snapshot(settings: &Settings) -> anyhow::Result<PathBuf> {
    let options = settings.capture.options();
    let collector = Collector::new(options).context("failed to start the collector")?;
    let store = BundleStore::open(&settings.data_dir).with_context(|| {
        format!(
            "failed to open the data directory {}",
            settings.data_dir.display()
        )
    })?;

    let mut capture = collector.capture();
    if !settings.capture.keep_secrets {
        crate::redact::redact_capture(&mut capture);
    }
    let reports = report::render_all(&capture.snapshot);
    let trigger = Trigger {
        kind: TriggerKind::Cli,
        incident_id: new_incident_id(),
        group_key: None,
        receiver: None,
        alerts: Vec::new(),
    };
    let info = store
        .write(BundleInput {
            capture: &capture,
            trigger: &trigger,
            alert_body: None,
            reports: &reports,
            extra_json: Vec::new(),
        })
        .context("failed to write the bundle")?;
    Ok(info.path)
}

fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let outcome = match &args.all {
        Some(dir) => store::verify_data_dir(dir),
        None => store::verify_paths(&args.bundles),
    };

    for (_, result) in &outcome.results {
        match result {
            Ok(report) => {
                print!("{report}");
                println!("{}", report.summary());
            }
            Err(error) => eprintln!("error: {error}"),
        }
    }
    Ok(ExitCode::from(outcome.exit_code))
}

fn diff(args: DiffArgs) -> anyhow::Result<ExitCode> {
    let a = load(&args.a)?;
    let b = load(&args.b)?;
    let comparison = crate::diff::diff(&a, &b);
    if args.json {
        let json =
            serde_json::to_string_pretty(&comparison).context("failed to encode the diff")?;
        println!("{json}");
    } else {
        print!("{}", crate::diff::render_text(&comparison));
    }
    Ok(ExitCode::SUCCESS)
}

fn load(path: &Path) -> anyhow::Result<aegisir_platform::Snapshot> {
    crate::diff::load_snapshot(path)
        .with_context(|| format!("failed to load a snapshot from {}", path.display()))
}

fn healthcheck(args: HealthcheckArgs) -> anyhow::Result<ExitCode> {
    let url = match args.url {
        Some(url) => url,
        None => health::default_url(load_settings(Layer::default(), args.config)?.listen),
    };
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        bail!("invalid --url {url:?}: expected an http:// or https:// URL");
    }

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    match runtime.block_on(health::check(&url)) {
        Ok(()) => {
            println!("healthy: {url}");
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            println!("unhealthy: {error}");
            Ok(ExitCode::from(1))
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn serve_flags_parse() {
        let cli = Cli::try_parse_from([
            "aegisir",
            "serve",
            "--listen",
            "127.0.0.1:9000",
            "--data-dir",
            "/tmp/x",
            "--procfs",
            "/host/proc",
            "--interval",
            "0.5",
        ])
        .unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("expected serve");
        };
        assert_eq!(args.listen, Some("127.0.0.1:9000".parse().unwrap()));
        assert_eq!(args.data_dir, Some(PathBuf::from("/tmp/x")));
        assert_eq!(args.roots.procfs, Some(PathBuf::from("/host/proc")));
        assert_eq!(args.interval, Some(0.5));
    }

    #[test]
    fn verify_needs_bundles_or_all() {
        assert!(Cli::try_parse_from(["aegisir", "verify"]).is_err());
        assert!(Cli::try_parse_from(["aegisir", "verify", "a", "--all", "d"]).is_err());
        assert!(Cli::try_parse_from(["aegisir", "verify", "--all", "d"]).is_ok());
        assert!(Cli::try_parse_from(["aegisir", "verify", "a", "b"]).is_ok());
    }

    #[test]
    fn negative_interval_names_range() {
        let error = Cli::try_parse_from(["aegisir", "serve", "--interval", "-1"]).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("at most 60 seconds"), "{message}");
        assert_eq!(error.exit_code(), 2);
    }

    #[test]
    fn huge_interval_names_range() {
        let error = Cli::try_parse_from(["aegisir", "snapshot", "--interval", "1e30"]).unwrap_err();
        assert!(error.to_string().contains("at most 60 seconds"), "{error}");
    }

    #[test]
    fn dotenv_error_names_line_without_content() {
        let text =
            "AEGISIR_LISTEN=127.0.0.1:5001\nSLACK_WEBHOOK_URL='https://hooks.example/secret\n";
        let error = parse_dotenv(text.as_bytes()).unwrap_err();
        assert_eq!(error, "line 2 has invalid syntax");
    }

    #[test]
    fn invalid_dotenv_is_error_naming_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".env");
        let text = "AEGISIR_TEST_DOTENV_TOKEN=x\nnot a variable line\n";
        std::fs::write(&path, text).unwrap();

        let problem = load_dotenv(&path).unwrap_err();
        assert_eq!(
            problem,
            format!("{}: line 2 has invalid syntax", path.display())
        );
        assert!(std::env::var_os("AEGISIR_TEST_DOTENV_TOKEN").is_none());
    }

    #[test]
    fn missing_dotenv_is_no_error() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load_dotenv(&dir.path().join(".env")), Ok(()));
    }

    #[test]
    fn settings_commands_need_valid_dotenv() {
        let reads = |args: &[&str]| Cli::try_parse_from(args).unwrap().command.reads_settings();
        assert!(reads(&["aegisir", "serve"]));
        assert!(reads(&["aegisir", "snapshot"]));
        assert!(reads(&["aegisir", "healthcheck"]));
        assert!(!reads(&["aegisir", "verify", "--all", "logs"]));
        assert!(!reads(&["aegisir", "diff", "a", "b"]));
    }

    #[test]
    fn dotenv_parses_every_line() {
        let text = "# comment\nA=1\nexport B=\"two words\"\n";
        let pairs = parse_dotenv(text.as_bytes()).unwrap();
        let expected = vec![
            ("A".to_string(), "1".to_string()),
            ("B".to_string(), "two words".to_string()),
        ];
        assert_eq!(pairs, expected);
    }

    #[test]
    fn error_text_skips_repeated_cause() {
        let io = std::io::Error::from_raw_os_error(17);
        let message = format!("failed to create directory /x: {io}");
        let error = anyhow::Error::new(io).context(message.clone());
        assert_eq!(error_text(&error), message);

        let chained = anyhow::anyhow!("inner").context("outer");
        assert_eq!(error_text(&chained), "outer: inner");
    }

    #[test]
    fn usage_error_exit_code_is_two() {
        let error = Cli::try_parse_from(["aegisir", "serve", "--listen", "nowhere"]).unwrap_err();
        assert_eq!(error.exit_code(), 2);
    }
}
