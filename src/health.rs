//! `aegisir healthcheck`: sends `GET /healthz` to a running server and reports the result,
//! so that a container image without a shell or curl can have a `HEALTHCHECK`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// Time the whole check may take, connecting included.
pub const TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    #[error("failed to build the HTTP client: {0}")]
    Client(String),
    #[error("{url} did not answer within {} s", TIMEOUT.as_secs())]
    TimedOut { url: String },
    #[error("failed to reach {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("{url} answered {status}")]
    Unhealthy { url: String, status: u16 },
}

/// Returns the `/healthz` URL of a server listening on `listen`, over loopback when it listens
/// on every address.
pub fn default_url(listen: SocketAddr) -> String {
    let host = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}/healthz", SocketAddr::new(host, listen.port()))
}

/// Sends `GET url` and succeeds on a 2xx reply within [`TIMEOUT`].
pub async fn check(url: &str) -> Result<(), HealthError> {
    crate::tls::install_crypto_provider();
    let client = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .connect_timeout(TIMEOUT)
        .build()
        .map_err(|error| HealthError::Client(error.to_string()))?;

    let response = client.get(url).send().await.map_err(|error| {
        if error.is_timeout() {
            HealthError::TimedOut {
                url: url.to_string(),
            }
        } else {
            HealthError::Unreachable {
                url: url.to_string(),
                reason: error_chain(&error.without_url()),
            }
        }
    })?;

    let status = response.status();
    if !status.is_success() {
        return Err(HealthError::Unhealthy {
            url: url.to_string(),
            status: status.as_u16(),
        });
    }
    Ok(())
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_url_uses_loopback_for_any_address() {
        assert_eq!(
            default_url("0.0.0.0:5001".parse().unwrap()),
            "http://127.0.0.1:5001/healthz"
        );
        assert_eq!(
            default_url("[::]:7000".parse().unwrap()),
            "http://[::1]:7000/healthz"
        );
        assert_eq!(
            default_url("127.0.0.2:80".parse().unwrap()),
            "http://127.0.0.2:80/healthz"
        );
    }

    #[tokio::test]
    async fn check_fails_when_nothing_listens() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        drop(listener);

        let error = check(&format!("http://{address}/healthz"))
            .await
            .unwrap_err();
        assert!(matches!(error, HealthError::Unreachable { .. }), "{error}");
    }

    #[tokio::test]
    async fn check_times_out_on_silent_server() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let silent = tokio::spawn(async move {
            let (_socket, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
        });

        let started = std::time::Instant::now();
        let error = check(&format!("http://{address}/healthz"))
            .await
            .unwrap_err();
        assert!(matches!(error, HealthError::TimedOut { .. }), "{error}");
        assert!(started.elapsed() < Duration::from_secs(3));
        silent.abort();
    }
}
