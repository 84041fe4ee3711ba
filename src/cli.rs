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
    /// Seconds between the two samples of a capture [env: AEGISIR_INTERVAL_SECS] [default: 1]
    #[arg(long, value_name = "SECS")]
    pub interval: Option<f64>,
    /// Seconds between history samples, 0 to turn history off
    /// [env: AEGISIR_HISTORY_INTERVAL_SECS] [default: 5]
    #[arg(long, value_name = "SECS")]
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
    /// Seconds between the two samples [env: AEGISIR_INTERVAL_SECS] [default: 1]
    #[arg(long, value_name = "SECS")]
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
    load_dotenv();
    init_logging();
    match run(cli.command) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
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

/// Loads `.env` from the working directory; variables already set win over it.
fn load_dotenv() {
    match dotenvy::dotenv() {
        Ok(_) => {}
        Err(error) if error.not_found() => {}
        Err(error) => eprintln!("warning: ignoring .env in the working directory: {error}"),
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
    let reports = match &args.all {
        Some(dir) => vec![store::verify_all(dir)
            .with_context(|| format!("failed to verify the bundles in {}", dir.display()))?],
        None => verify_each(&args.bundles)?,
    };

    let mut intact = true;
    for report in &reports {
        print!("{report}");
        println!("{}", report.summary());
        intact &= report.is_ok();
    }
    Ok(if intact {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn verify_each(bundles: &[PathBuf]) -> anyhow::Result<Vec<store::VerifyReport>> {
    bundles
        .iter()
        .map(|bundle| {
            store::verify(bundle)
                .with_context(|| format!("failed to verify the bundle {}", bundle.display()))
        })
        .collect()
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
    fn usage_error_exit_code_is_two() {
        let error = Cli::try_parse_from(["aegisir", "serve", "--listen", "nowhere"]).unwrap_err();
        assert_eq!(error.exit_code(), 2);
    }
}
