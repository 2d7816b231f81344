//! A quick look at the upstream at start-up: does it accept a TCP
//! connection, a WebSocket upgrade, and send its `connect.challenge`?
//! Nothing is authenticated and no secret is sent. The answer only goes into
//! the start-up log line: OpenClaw takes ~17 s to start, so "not answering
//! yet" is normal beside a gateway started at the same time.

use std::time::Duration;

use super::config::UpstreamConfig;
use super::connector::read_challenge;
use super::failure::UpstreamFailure;
use super::transport::open_websocket;

/// How long the start-up probe waits at most.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// What the probe saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// The upstream sent its challenge.
    Answered,
    /// It did not (yet): why, without any secret.
    NotAnswering(String),
}

/// Connect, upgrade, read the challenge, close; bounded by `timeout`.
pub async fn probe(config: &UpstreamConfig, timeout: Duration) -> ProbeOutcome {
    let attempt = async {
        let mut ws = open_websocket(&config.url, None, None).await?;
        read_challenge(&mut ws).await?;
        let _ = ws.close(None).await;
        Ok::<(), UpstreamFailure>(())
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(())) => ProbeOutcome::Answered,
        Ok(Err(e)) => ProbeOutcome::NotAnswering(e.to_string()),
        Err(_) => ProbeOutcome::NotAnswering(format!("no challenge within {} ms", timeout.as_millis())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ResolvedSecret, SecretSource};
    use crate::upstream::{SecretKind, UpstreamSecret, UpstreamUrl};

    fn config(port: u16) -> UpstreamConfig {
        UpstreamConfig {
            url: UpstreamUrl::parse(&format!("ws://127.0.0.1:{port}")).unwrap(),
            secret: UpstreamSecret {
                kind: SecretKind::Token,
                value: ResolvedSecret::new("probe-secret".into(), SecretSource::Flag),
            },
            forward_client_address: false,
            timeouts: crate::upstream::UpstreamTimeouts::default(),
        }
    }

    #[tokio::test]
    async fn a_closed_port_is_not_answering_and_names_no_secret() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        match probe(&config(port), PROBE_TIMEOUT).await {
            ProbeOutcome::NotAnswering(why) => {
                assert!(why.contains("cannot connect"), "{why}");
                assert!(!why.contains("probe-secret"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_silent_listener_times_out() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let hold = tokio::spawn(async move {
            let (_socket, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        let outcome = probe(&config(port), Duration::from_millis(300)).await;
        assert_eq!(outcome, ProbeOutcome::NotAnswering("no challenge within 300 ms".into()));
        hold.abort();
    }
}
