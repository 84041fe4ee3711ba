//! A local stand-in for a Slack incoming webhook, for tests.
//!
//! It listens on a free port on 127.0.0.1, records every request, and responds from a script
//! of replies (`200 ok`, `400 invalid_blocks`, `429` with `Retry-After`, `500`, or a stall)
//! and with `200 ok` once the script is used up. The integration tests and the unit tests of
//! `aegisir::slack` both include this file, so it uses only crates both can see.

// Each test binary that includes this file uses a different part of it.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio::sync::{oneshot, Notify};

/// The last path segment of the mock's webhook URL. Real webhook URLs end in a secret token
/// like this one, so tests can check that it never shows up in logs or errors.
pub const WEBHOOK_SECRET: &str = "mock-webhook-secret-token";

/// The mock's response to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `200` with the body `ok`, Slack's response to a delivered message.
    Ok,
    /// `status` with Slack's error text as the body, such as `400 invalid_blocks`.
    Error { status: u16, body: &'static str },
    /// `429` with `Retry-After: retry_after_secs`.
    RateLimited { retry_after_secs: u64 },
    /// Waits `delay` before responding `200 ok`, so that a client with a shorter timeout gives
    /// up first.
    Stall(Duration),
}

impl Reply {
    pub fn invalid_blocks() -> Reply {
        Reply::Error {
            status: 400,
            body: "invalid_blocks",
        }
    }

    pub fn server_error() -> Reply {
        Reply::Error {
            status: 500,
            body: "internal_error",
        }
    }
}

/// One request the mock received.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub content_type: Option<String>,
    pub body: String,
    pub received_at: Instant,
    /// The reply the mock chose for it.
    pub reply: Reply,
}

impl Request {
    /// Parses the body as JSON; panics with the body when it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|error| panic!("Slack request is not JSON ({error}): {}", self.body))
    }
}

struct Shared {
    script: Mutex<VecDeque<Reply>>,
    requests: Mutex<Vec<Request>>,
    arrived: Notify,
}

/// A running mock webhook; it stops when dropped.
pub struct SlackMock {
    address: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
}

impl SlackMock {
    /// Starts a mock that responds to every request with `200 ok`.
    pub async fn start() -> SlackMock {
        SlackMock::start_with(Vec::new()).await
    }

    /// Starts a mock that responds with `script` in order, then with `200 ok`.
    pub async fn start_with(script: impl IntoIterator<Item = Reply>) -> SlackMock {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the Slack mock to a loopback port");
        let address = listener
            .local_addr()
            .expect("read the Slack mock's address");
        let shared = Arc::new(Shared {
            script: Mutex::new(script.into_iter().collect()),
            requests: Mutex::new(Vec::new()),
            arrived: Notify::new(),
        });

        let app = Router::new()
            .fallback(receive)
            .with_state(Arc::clone(&shared));
        let (shutdown, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let stop = async {
                let _ = stopped.await;
            };
            if let Err(error) = axum::serve(listener, app)
                .with_graceful_shutdown(stop)
                .await
            {
                eprintln!("Slack mock stopped with an error: {error}");
            }
        });

        SlackMock {
            address,
            shared,
            shutdown: Some(shutdown),
        }
    }

    /// Returns the webhook URL to configure, on 127.0.0.1.
    pub fn url(&self) -> String {
        format!(
            "http://{}/services/T0MOCK/B0MOCK/{WEBHOOK_SECRET}",
            self.address
        )
    }

    /// Returns every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.requests.lock().expect("mock lock").clone()
    }

    /// Returns the bodies of the requests that got `200 ok`: the delivered messages.
    pub fn messages(&self) -> Vec<String> {
        delivered(&self.requests())
    }

    /// Waits until at least `count` requests arrived or `timeout` passed, and returns all
    /// requests received by then.
    pub async fn wait_for_requests(&self, count: usize, timeout: Duration) -> Vec<Request> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Created before the check, so a request that arrives in between still wakes it.
            let arrived = self.shared.arrived.notified();
            let requests = self.requests();
            if requests.len() >= count {
                return requests;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return self.requests();
            }
        }
    }

    /// Waits until at least `count` messages were delivered (got `200 ok`) or `timeout`
    /// passed, and returns the bodies delivered by then.
    pub async fn wait_for_messages(&self, count: usize, timeout: Duration) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let arrived = self.shared.arrived.notified();
            let messages = self.messages();
            if messages.len() >= count {
                return messages;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return self.messages();
            }
        }
    }
}

impl Drop for SlackMock {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

fn delivered(requests: &[Request]) -> Vec<String> {
    requests
        .iter()
        .filter(|request| request.reply == Reply::Ok)
        .map(|request| request.body.clone())
        .collect()
}

async fn receive(
    State(shared): State<Arc<Shared>>,
    method: axum::http::Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let reply = shared
        .script
        .lock()
        .expect("mock lock")
        .pop_front()
        .unwrap_or(Reply::Ok);
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(str::to_string);
    let request = Request {
        method: method.to_string(),
        path: uri.path().to_string(),
        content_type,
        body: String::from_utf8_lossy(&body).into_owned(),
        received_at: Instant::now(),
        reply: reply.clone(),
    };

    shared.requests.lock().expect("mock lock").push(request);
    shared.arrived.notify_waiters();
    respond(reply).await
}

async fn respond(reply: Reply) -> Response {
    match reply {
        Reply::Ok => (StatusCode::OK, "ok").into_response(),
        Reply::Error { status, body } => {
            let status = StatusCode::from_u16(status).expect("scripted status is valid");
            (status, body).into_response()
        }
        Reply::RateLimited { retry_after_secs } => (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, retry_after_secs.to_string())],
            "rate_limited",
        )
            .into_response(),
        Reply::Stall(delay) => {
            tokio::time::sleep(delay).await;
            (StatusCode::OK, "ok").into_response()
        }
    }
}
