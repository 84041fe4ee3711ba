//! Helpers shared by the integration tests: free loopback ports, child processes that are
//! stopped when dropped, the `aegisir` binary under test, and waiting for bundles.

use std::fs;
use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use aegisir_platform::Snapshot;
use regex::Regex;
use tempfile::TempDir;

/// The `aegisir` binary that cargo built for this test run.
pub const AEGISIR: &str = env!("CARGO_BIN_EXE_aegisir");

/// Returns the path of a file under `fixtures/`.
pub fn fixture(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(relative)
}

/// Returns the path of a file under `examples/`.
pub fn example(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(relative)
}

/// Returns a loopback port that was free a moment ago.
///
/// NOTE: another process can take the port before the child binds it. The window is short,
/// and the child's start-up then fails loudly.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral loopback port");
    listener.local_addr().expect("local address").port()
}

/// Builds a command for the `aegisir` binary with a clean environment: no inherited `AEGISIR_*` or
/// Slack settings, and a working directory without a `.env` file.
pub fn aegisir_command(work_dir: &Path) -> Command {
    let mut command = Command::new(AEGISIR);
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy().into_owned();
        if name.starts_with("AEGISIR_") || name == "SLACK_WEBHOOK_URL" {
            command.env_remove(&name);
        }
    }
    command.current_dir(work_dir).stdin(Stdio::null());
    command
}

/// Runs `aegisir ARGS...` to completion in `work_dir`.
pub fn run_aegisir<I, S>(work_dir: &Path, args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    aegisir_command(work_dir)
        .args(args)
        .output()
        .expect("run the aegisir binary")
}

/// Returns stdout and stderr of a finished command as one string, for assertions and messages.
pub fn output_text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A child process that is killed and reaped when dropped, so a failing test leaves nothing
/// running. Its stdout and stderr go to a log file that failure messages include.
pub struct ChildGuard {
    name: String,
    pid: u32,
    // Behind a mutex so that a shared reference can poll for the child's exit.
    child: Mutex<Child>,
    log_path: PathBuf,
}

impl ChildGuard {
    /// Starts `command` with its output sent to `<log_dir>/<name>.log`.
    pub fn spawn(name: &str, command: &mut Command, log_dir: &Path) -> ChildGuard {
        let log_path = log_dir.join(format!("{name}.log"));
        let log = fs::File::create(&log_path).expect("create the child's log file");
        let log_err = log.try_clone().expect("clone the log file handle");
        let child = command
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .unwrap_or_else(|e| panic!("failed to start {name} ({command:?}): {e}"));
        ChildGuard {
            name: name.to_string(),
            pid: child.id(),
            child: Mutex::new(child),
            log_path,
        }
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Returns everything the child has written so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Panics with the child's log when it has exited.
    pub fn assert_running(&self) {
        let exited = self.child.lock().unwrap().try_wait();
        if let Ok(Some(status)) = exited {
            panic!(
                "{} exited with {status}; its output:\n{}",
                self.name,
                self.log()
            );
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let child = self
            .child
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Polls `probe` every 100 ms until it returns `Some`, or panics after `timeout` with
/// `what` and the text `context` returns at that moment.
pub async fn wait_for<T, F, Fut>(
    what: &str,
    timeout: Duration,
    mut probe: F,
    context: impl Fn() -> String,
) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        if started.elapsed() > timeout {
            panic!(
                "timed out after {timeout:?} waiting for {what}\n{}",
                context()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Builds an HTTP client for loopback requests.
pub fn http_client() -> reqwest::Client {
    aegisir::tls::install_crypto_provider();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .no_proxy()
        .build()
        .expect("build an HTTP client")
}

/// How the server under test is started.
#[derive(Default)]
pub struct ServerOptions {
    pub slack_webhook_url: Option<String>,
    pub auth_token: Option<String>,
}

/// `aegisir serve` on a free loopback port with a temporary data directory.
pub struct Server {
    // Dropped first: the process stops before its directories are removed.
    process: ChildGuard,
    pub port: u16,
    pub data_dir: PathBuf,
    _work_dir: TempDir,
}

impl Server {
    /// Starts the server and waits until `/readyz` returns 200.
    pub async fn start(options: ServerOptions) -> Server {
        let work_dir = tempfile::tempdir().expect("create the server's work directory");
        let data_dir = work_dir.path().join("logs");
        let port = free_port();

        let mut command = aegisir_command(work_dir.path());
        command
            .arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(&data_dir)
            .env("RUST_LOG", "info");
        if let Some(url) = &options.slack_webhook_url {
            command.env("SLACK_WEBHOOK_URL", url);
        }
        if let Some(token) = &options.auth_token {
            command.env("AEGISIR_AUTH_TOKEN", token);
        }
        let process = ChildGuard::spawn("aegisir", &mut command, work_dir.path());

        let server = Server {
            process,
            port,
            data_dir,
            _work_dir: work_dir,
        };
        server.wait_until_ready().await;
        server
    }

    async fn wait_until_ready(&self) {
        let client = http_client();
        let url = self.url("/readyz");
        let started = Instant::now();
        loop {
            self.process.assert_running();
            if let Ok(reply) = client.get(&url).send().await {
                if reply.status() == reqwest::StatusCode::OK {
                    return;
                }
            }
            if started.elapsed() > Duration::from_secs(30) {
                panic!(
                    "aegisir serve was not ready within 30 s; its output:\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    pub fn log(&self) -> String {
        self.process.log()
    }

    /// Returns the finished bundles in the data directory, oldest first.
    pub fn bundles(&self) -> Vec<PathBuf> {
        list_bundles(&self.data_dir)
    }

    /// Waits until the data directory contains at least `count` bundles and returns them.
    pub async fn wait_for_bundles(&self, count: usize, timeout: Duration) -> Vec<PathBuf> {
        wait_for(
            &format!("{count} bundle(s) in {}", self.data_dir.display()),
            timeout,
            || async {
                let bundles = self.bundles();
                (bundles.len() >= count).then_some(bundles)
            },
            || format!("aegisir output:\n{}", self.log()),
        )
        .await
    }
}

/// Returns the pattern every bundle directory name follows: UTC capture time with milliseconds, then
/// the first 12 hex digits of the bundle digest.
pub fn bundle_name_pattern() -> &'static Regex {
    static PATTERN: OnceLock<Regex> = OnceLock::new();
    PATTERN.get_or_init(|| {
        Regex::new(r"^\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}\.\d{3}Z_[0-9a-f]{12}$").unwrap()
    })
}

/// Lists the bundle directories under `data_dir`, oldest first. Dot-directories (the journal,
/// the outbox, bundles still being written) are not bundles.
pub fn list_bundles(data_dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(data_dir) else {
        return Vec::new();
    };
    let mut bundles: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|entry| entry.path().is_dir())
        .filter(|entry| !entry.file_name().to_string_lossy().starts_with('.'))
        .map(|entry| entry.path())
        .collect();
    bundles.sort();
    bundles
}

/// Reads and parses a bundle's `snapshot.json`.
pub fn read_snapshot(bundle: &Path) -> Snapshot {
    let path = bundle.join("snapshot.json");
    let text = fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_slice(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

/// Runs `aegisir verify BUNDLE` and returns its output.
pub fn verify(bundle: &Path) -> Output {
    let work_dir = bundle.parent().expect("bundle has a parent directory");
    run_aegisir(work_dir, ["verify".as_ref(), bundle.as_os_str()])
}

/// Panics with the verifier's output unless `aegisir verify` accepts the bundle.
pub fn assert_verifies(bundle: &Path) {
    let output = verify(bundle);
    assert_eq!(
        output.status.code(),
        Some(0),
        "aegisir verify {} failed:\n{}",
        bundle.display(),
        output_text(&output)
    );
}

/// Writes `text` to `path`, panicking with the path on failure.
pub fn write_file(path: &Path, text: &str) {
    fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}
