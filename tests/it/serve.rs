//! `aegisir serve`: an Alertmanager webhook in, a verified bundle and a Slack message out.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aegisir_platform::Snapshot;

use crate::slack_mock::{SlackMock, WEBHOOK_SECRET};
use crate::support::{
    assert_verifies, fixture, http_client, output_text, read_snapshot, run_aegisir, ChildGuard,
    Server, ServerOptions,
};

const CAPTURE_TIMEOUT: Duration = Duration::from_secs(30);

async fn start_with_slack() -> (SlackMock, Server) {
    let slack = SlackMock::start().await;
    let server = Server::start(ServerOptions {
        slack_webhook_url: Some(slack.url()),
        ..ServerOptions::default()
    })
    .await;
    (slack, server)
}

/// Posts a webhook body to `/alert` and panics unless the reply is 2xx with a JSON body.
async fn post_alert(server: &Server, body: Vec<u8>) -> serde_json::Value {
    let reply = http_client()
        .post(server.url("/alert"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("POST /alert");
    let status = reply.status();
    let text = reply.text().await.expect("read the reply body");
    assert!(status.is_success(), "POST /alert returned {status}: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("reply is not JSON ({e}): {text}"))
}

/// Waits for the first Slack message and returns it, panicking with the server's output when
/// none arrives.
async fn first_slack_message(slack: &SlackMock, server: &Server) -> String {
    let messages = slack.wait_for_messages(1, CAPTURE_TIMEOUT).await;
    assert!(
        !messages.is_empty(),
        "no Slack message within {CAPTURE_TIMEOUT:?}; aegisir output:\n{}",
        server.log()
    );
    messages[0].clone()
}

/// Returns the top `count` processes by CPU % in the snapshot, busiest first.
fn top_by_cpu(snapshot: &Snapshot, count: usize) -> Vec<(i32, String, f64)> {
    let mut processes: Vec<(i32, String, f64)> = snapshot
        .processes
        .list
        .iter()
        .filter_map(|p| p.cpu_pct.map(|cpu| (p.pid, p.name.clone(), cpu)))
        .collect();
    processes.sort_by(|a, b| b.2.total_cmp(&a.2));
    processes.truncate(count);
    processes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_produces_verified_bundle_and_slack_message() {
    let (slack, server) = start_with_slack().await;
    let body = fs::read(fixture("alertmanager/high_cpu_firing.json")).unwrap();

    let reply = post_alert(&server, body.clone()).await;
    assert!(
        reply.to_string().contains("incident"),
        "the reply names no incident: {reply}"
    );

    let bundles = server.wait_for_bundles(1, CAPTURE_TIMEOUT).await;
    assert_eq!(bundles.len(), 1, "one webhook made {bundles:?}");
    let bundle = &bundles[0];
    let name = bundle.file_name().unwrap().to_string_lossy();
    assert!(
        crate::support::bundle_name_pattern().is_match(&name),
        "bundle name {name} is not <UTC time>_<12 hex digits>"
    );
    assert_eq!(
        fs::read(bundle.join("alert.json")).unwrap(),
        body,
        "alert.json differs from the request body"
    );
    assert_verifies(bundle);

    let snapshot = read_snapshot(bundle);
    let test_pid = std::process::id() as i32;
    let test_process = snapshot.processes.list.iter().find(|p| p.pid == test_pid);
    assert!(
        test_process.is_some(),
        "the test process {test_pid} is missing from snapshot.json"
    );
    let server_pid = server.pid() as i32;
    let server_process = snapshot.processes.list.iter().find(|p| p.pid == server_pid);
    assert!(
        server_process.is_some_and(|p| p.is_self),
        "the server {server_pid} is not marked is_self: {server_process:?}"
    );

    let message = first_slack_message(&slack, &server).await;
    assert!(
        message.contains("HighCPUUsage"),
        "the Slack message does not name the alert: {message}"
    );
    assert!(
        message.contains(&*name),
        "the Slack message does not name the bundle {name}: {message}"
    );
    assert_eq!(
        slack.messages().len(),
        1,
        "one webhook made more than one Slack message"
    );
    assert!(
        !server.log().contains(WEBHOOK_SECRET),
        "the server logged the Slack URL"
    );
}

/// Copies `/usr/bin/yes` to `<dir>/<name>` and starts it with its output discarded, so that
/// a process with that name burns one CPU.
fn start_cpu_burner(dir: &Path, name: &str) -> ChildGuard {
    let executable = dir.join(name);
    fs::copy("/usr/bin/yes", &executable).expect("copy /usr/bin/yes");
    fs::set_permissions(&executable, fs::Permissions::from_mode(0o755)).unwrap();
    let mut command = Command::new(&executable);
    command.stdout(Stdio::null());
    ChildGuard::spawn("burner", &mut command, dir)
}

/// The fixture webhook with its summary annotation replaced by `summary`.
fn alert_with_summary(summary: &str) -> Vec<u8> {
    let text = fs::read(fixture("alertmanager/high_cpu_firing.json")).unwrap();
    let mut payload: serde_json::Value = serde_json::from_slice(&text).unwrap();
    payload["commonAnnotations"]["summary"] = summary.into();
    payload["alerts"][0]["annotations"]["summary"] = summary.into();
    serde_json::to_vec(&payload).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_mentions_arrive_escaped_in_slack() {
    let burner_dir = tempfile::tempdir().unwrap();
    let burner = start_cpu_burner(burner_dir.path(), "<!channel>");
    let (slack, server) = start_with_slack().await;

    post_alert(
        &server,
        alert_with_summary("<!here> load & <@U024BE7LH> paged"),
    )
    .await;
    let bundle = server.wait_for_bundles(1, CAPTURE_TIMEOUT).await.remove(0);
    let message = first_slack_message(&slack, &server).await;

    let snapshot = read_snapshot(&bundle);
    let burner_pid = burner.pid() as i32;
    let burner_process = snapshot.processes.list.iter().find(|p| p.pid == burner_pid);
    assert_eq!(
        burner_process.map(|p| p.name.as_str()),
        Some("<!channel>"),
        "snapshot.json keeps the name as the kernel reported it"
    );
    let top = top_by_cpu(&snapshot, 5);
    assert!(
        top.iter().any(|(pid, _, _)| *pid == burner_pid),
        "the burner {burner_pid} is not among the top 5 by CPU, so Slack would not show it: {top:?}"
    );

    assert!(
        message.contains("&lt;!channel&gt;"),
        "the process name is not escaped: {message}"
    );
    assert!(
        !message.contains("<!channel>"),
        "the raw process name reached Slack: {message}"
    );
    assert!(
        message.contains("&lt;!here&gt;"),
        "the annotation is not escaped: {message}"
    );
    assert!(
        !message.contains("<!here>"),
        "the raw annotation reached Slack: {message}"
    );
    assert!(
        !message.contains("<@U024BE7LH>"),
        "a raw user mention reached Slack: {message}"
    );
    assert!(
        message.contains("load &amp; "),
        "`&` in the annotation is not escaped: {message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthcheck_exit_code_follows_server() {
    let server = Server::start(ServerOptions::default()).await;
    let url = server.url("/healthz");
    let work_dir = tempfile::tempdir().unwrap();
    let healthcheck = || run_aegisir(work_dir.path(), ["healthcheck", "--url", url.as_str()]);

    let output = healthcheck();
    assert_eq!(
        output.status.code(),
        Some(0),
        "running server:\n{}",
        output_text(&output)
    );

    drop(server);
    let started = Instant::now();
    let output = healthcheck();
    assert_eq!(
        output.status.code(),
        Some(1),
        "stopped server:\n{}",
        output_text(&output)
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}
