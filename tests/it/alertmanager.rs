//! End to end with the real programs. node_exporter, Prometheus and Alertmanager from Debian's
//! packages run with copies of `examples/` tuned to fire at once. Alertmanager's webhook
//! reaches `aegisir serve`, which captures the host and posts to the local Slack capture server.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use aegisir::alert::Notification;

use crate::slack_mock::SlackMock;
use crate::support::{
    assert_verifies, example, free_port, http_client, wait_for, write_file, ChildGuard, Server,
    ServerOptions,
};

const PROMETHEUS: &str = "/usr/bin/prometheus";
const ALERTMANAGER: &str = "/usr/bin/prometheus-alertmanager";
const NODE_EXPORTER: &str = "/usr/bin/prometheus-node-exporter";
const PACKAGES: [&str; 3] = [
    "prometheus",
    "prometheus-alertmanager",
    "prometheus-node-exporter",
];

/// The alert the test rule raises; it is true as soon as node_exporter has been scraped once.
const TEST_ALERT: &str = "NodeExporterScraped";

/// Installs the Debian packages when a binary is missing; the test never skips.
fn ensure_installed() {
    if [PROMETHEUS, ALERTMANAGER, NODE_EXPORTER]
        .iter()
        .all(|p| Path::new(p).exists())
    {
        return;
    }
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let is_root = status
        .lines()
        .any(|line| line.starts_with("Uid:") && line.split_whitespace().nth(1) == Some("0"));
    assert!(
        is_root,
        "install the packages first: sudo apt-get install -y {}",
        PACKAGES.join(" ")
    );
    run_apt(&["update", "-qq"]);
    let mut install = vec!["install", "-y", "-qq", "--no-install-recommends"];
    install.extend(PACKAGES);
    run_apt(&install);
}

fn run_apt(args: &[&str]) {
    let output = Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .output()
        .expect("run apt-get");
    assert!(
        output.status.success(),
        "apt-get {} failed:\n{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Replaces the only occurrence of `from` in `text`, so that a change to `examples/` that
/// the tuning no longer matches fails here instead of silently testing something else.
fn replace_once(text: &str, from: &str, to: &str) -> String {
    let count = text.matches(from).count();
    assert_eq!(
        count, 1,
        "expected `{from}` once in the example configuration, found {count}"
    );
    text.replace(from, to)
}

struct Ports {
    aegisir: u16,
    prometheus: u16,
    alertmanager: u16,
    node_exporter: u16,
}

/// Writes prometheus.yml and alert_rules.yml into `dir`: the examples with one-second
/// intervals, loopback ports, and one more rule that fires at its first evaluation.
fn write_prometheus_config(dir: &Path, ports: &Ports) {
    let config = fs::read_to_string(example("prometheus.yml")).unwrap();
    let config = replace_once(&config, "scrape_interval: 15s", "scrape_interval: 1s");
    let config = replace_once(
        &config,
        "evaluation_interval: 15s",
        "evaluation_interval: 1s",
    );
    let config = replace_once(
        &config,
        "localhost:9093",
        &format!("127.0.0.1:{}", ports.alertmanager),
    );
    let config = replace_once(
        &config,
        "localhost:9100",
        &format!("127.0.0.1:{}", ports.node_exporter),
    );
    let config = replace_once(
        &config,
        "localhost:5001",
        &format!("127.0.0.1:{}", ports.aegisir),
    );
    write_file(&dir.join("prometheus.yml"), &config);

    let mut rules = fs::read_to_string(example("alert_rules.yml")).unwrap();
    rules.push_str(&format!(
        r#"
  - name: end-to-end-test
    rules:
      - alert: {TEST_ALERT}
        expr: up{{job="node"}} == 1
        labels:
          severity: critical
        annotations:
          summary: "node_exporter on {{{{ $labels.instance }}}} was scraped"
"#
    ));
    write_file(&dir.join("alert_rules.yml"), &rules);
}

/// Writes alertmanager.yml into `dir`: the example with a one-second group wait, the
/// server's loopback port and the test's bearer token.
fn write_alertmanager_config(dir: &Path, ports: &Ports, token: &str) {
    let config = fs::read_to_string(example("alertmanager.yml")).unwrap();
    assert!(
        config.contains("send_resolved: true"),
        "the example must send resolved alerts"
    );
    let config = replace_once(&config, "group_wait: 10s", "group_wait: 1s");
    let config = replace_once(
        &config,
        "http://localhost:5001/alert",
        &format!("http://127.0.0.1:{}/alert", ports.aegisir),
    );
    let config = replace_once(&config, "replace-with-a-long-random-token", token);
    write_file(&dir.join("alertmanager.yml"), &config);
}

/// The three monitoring programs, stopped when dropped.
struct Monitoring {
    node_exporter: ChildGuard,
    alertmanager: ChildGuard,
    prometheus: ChildGuard,
    started: Instant,
}

impl Monitoring {
    fn start(dir: &Path, ports: &Ports) -> Monitoring {
        let node_exporter = ChildGuard::spawn(
            "node_exporter",
            Command::new(NODE_EXPORTER).arg(format!(
                "--web.listen-address=127.0.0.1:{}",
                ports.node_exporter
            )),
            dir,
        );
        let alertmanager = ChildGuard::spawn(
            "alertmanager",
            Command::new(ALERTMANAGER)
                .arg(format!(
                    "--config.file={}",
                    dir.join("alertmanager.yml").display()
                ))
                .arg(format!(
                    "--storage.path={}",
                    dir.join("alertmanager-data").display()
                ))
                .arg(format!(
                    "--web.listen-address=127.0.0.1:{}",
                    ports.alertmanager
                ))
                .arg("--cluster.listen-address="),
            dir,
        );
        let started = Instant::now();
        let prometheus = ChildGuard::spawn(
            "prometheus",
            Command::new(PROMETHEUS)
                .arg(format!(
                    "--config.file={}",
                    dir.join("prometheus.yml").display()
                ))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.join("prometheus-data").display()
                ))
                .arg(format!(
                    "--web.listen-address=127.0.0.1:{}",
                    ports.prometheus
                )),
            dir,
        );
        Monitoring {
            node_exporter,
            alertmanager,
            prometheus,
            started,
        }
    }

    fn logs(&self) -> String {
        format!(
            "node_exporter:\n{}\nalertmanager:\n{}\nprometheus:\n{}",
            self.node_exporter.log(),
            self.alertmanager.log(),
            self.prometheus.log()
        )
    }

    fn assert_running(&self) {
        self.node_exporter.assert_running();
        self.alertmanager.assert_running();
        self.prometheus.assert_running();
    }
}

/// Returns the names of the alerting rules Prometheus has loaded.
async fn loaded_rule_names(prometheus_port: u16) -> Option<Vec<String>> {
    let url = format!("http://127.0.0.1:{prometheus_port}/api/v1/rules?type=alert");
    let reply = http_client().get(url).send().await.ok()?;
    let body: serde_json::Value = reply.json().await.ok()?;
    let groups = body["data"]["groups"].as_array()?;
    let names = groups
        .iter()
        .filter_map(|group| group["rules"].as_array())
        .flatten()
        .filter_map(|rule| rule["name"].as_str().map(str::to_string))
        .collect();
    Some(names)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_webhook_makes_one_bundle() {
    ensure_installed();
    let slack = SlackMock::start().await;
    let token = format!("e2e-{:016x}", fastrand::u64(..));
    let server = Server::start(ServerOptions {
        slack_webhook_url: Some(slack.url()),
        auth_token: Some(token.clone()),
    })
    .await;

    let unauthenticated = http_client()
        .post(server.url("/alert"))
        .body("{}")
        .send()
        .await
        .expect("POST /alert without a token");
    assert_eq!(
        unauthenticated.status(),
        401,
        "the server must require the bearer token"
    );

    let config_dir = tempfile::tempdir().unwrap();
    let ports = Ports {
        aegisir: server.port,
        prometheus: free_port(),
        alertmanager: free_port(),
        node_exporter: free_port(),
    };
    write_prometheus_config(config_dir.path(), &ports);
    write_alertmanager_config(config_dir.path(), &ports, &token);
    let monitoring = Monitoring::start(config_dir.path(), &ports);

    let bundles = wait_for(
        "Alertmanager's webhook to produce a bundle",
        Duration::from_secs(60),
        || {
            monitoring.assert_running();
            async { Some(server.bundles()).filter(|b| !b.is_empty()) }
        },
        || format!("aegisir:\n{}\n{}", server.log(), monitoring.logs()),
    )
    .await;
    let first_bundle_secs = monitoring.started.elapsed().as_secs_f64();
    eprintln!("first bundle {first_bundle_secs:.1} s after Prometheus started");

    let rules = loaded_rule_names(ports.prometheus)
        .await
        .expect("read Prometheus rules");
    for rule in [
        "HighCPUUsage",
        "HighMemoryUsage",
        "DiskSpaceLow",
        TEST_ALERT,
    ] {
        assert!(
            rules.iter().any(|name| name == rule),
            "Prometheus did not load {rule}: {rules:?}"
        );
    }

    let bundle = &bundles[0];
    let body = fs::read(bundle.join("alert.json")).expect("the bundle keeps the webhook body");
    let notification: Notification = serde_json::from_slice(&body).expect("alert.json parses");
    assert_eq!(notification.version, "4");
    assert_eq!(notification.receiver, "aegisir");
    assert_eq!(notification.alerts.len(), 1, "{notification:?}");
    assert_eq!(notification.alerts[0].name(), TEST_ALERT);
    assert!(notification.alerts[0].is_firing());
    assert_verifies(bundle);

    let messages = slack.wait_for_messages(1, Duration::from_secs(30)).await;
    assert!(
        !messages.is_empty(),
        "no Slack message; aegisir output:\n{}",
        server.log()
    );
    assert!(
        messages[0].contains(TEST_ALERT),
        "the Slack message does not name {TEST_ALERT}: {}",
        messages[0]
    );

    // Alertmanager sends the group again only after group_interval (5 minutes), so anything
    // more within a few seconds would be a duplicate capture or message.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        server.bundles().len(),
        1,
        "more than one bundle: {:?}",
        server.bundles()
    );
    assert_eq!(slack.messages().len(), 1, "more than one Slack message");
    assert_journal_has_one_accepted_webhook(&server.data_dir);
}

/// Checks the events journal: the test's own request without a token is the only rejection,
/// so Alertmanager sent the token, and exactly one notification was accepted.
fn assert_journal_has_one_accepted_webhook(data_dir: &Path) {
    let path = data_dir.join(".aegisir/events.jsonl");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let events: Vec<serde_json::Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).expect("journal lines are JSON"))
        .collect();
    let with_outcome = |outcome: &str| -> Vec<&serde_json::Value> {
        events.iter().filter(|e| e["outcome"] == outcome).collect()
    };

    let rejected = with_outcome("rejected");
    assert_eq!(rejected.len(), 1, "journal:\n{text}");
    assert_eq!(rejected[0]["reason"], "unauthorized", "journal:\n{text}");
    let accepted = with_outcome("accepted");
    assert_eq!(accepted.len(), 1, "journal:\n{text}");
    let group_key = accepted[0]["group_key"].as_str().unwrap_or_default();
    assert!(group_key.contains(TEST_ALERT), "journal:\n{text}");
}
