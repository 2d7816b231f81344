//! How long clawgate waits on the upstream before it calls it gone:
//! `gateway.upstream.handshakeTimeoutMs` and `gateway.upstream.livenessTimeoutMs`.
//!
//! A frozen upstream (stopped, swapped out, deadlocked) keeps its TCP socket
//! open and answers nothing; without these bounds a client would wait on it
//! forever. The handshake bound covers the wait for a handshake slot, the TCP
//! connect, the challenge and hello-ok together: past it the client gets
//! `UPSTREAM_UNAVAILABLE` and close 1013. On a live link clawgate pings the
//! upstream every third of the liveness bound; a link that stays silent (no
//! frame, no pong) for the whole bound, or that does not take a frame within
//! it, is closed, and the session with it (1012).

use std::time::Duration;

use crate::config::error::ConfigError;

/// From asking for a link until its hello-ok, by default.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest silence of a live link, by default.
pub const DEFAULT_LIVENESS_TIMEOUT: Duration = Duration::from_secs(30);

/// Accepted range of either key, in milliseconds.
const MIN_MS: u64 = 500;
const MAX_MS: u64 = 600_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpstreamTimeouts {
    pub handshake: Duration,
    pub liveness: Duration,
}

impl Default for UpstreamTimeouts {
    fn default() -> Self {
        UpstreamTimeouts { handshake: DEFAULT_HANDSHAKE_TIMEOUT, liveness: DEFAULT_LIVENESS_TIMEOUT }
    }
}

impl UpstreamTimeouts {
    /// From the two keys (absent: the defaults).
    pub fn from_keys(handshake_ms: Option<u64>, liveness_ms: Option<u64>) -> Result<UpstreamTimeouts, ConfigError> {
        let check = |key: &str, value: Option<u64>, default: Duration| match value {
            None => Ok(default),
            Some(ms) if (MIN_MS..=MAX_MS).contains(&ms) => Ok(Duration::from_millis(ms)),
            Some(ms) => Err(ConfigError::Unsafe {
                key: key.to_owned(),
                message: format!("{ms} is outside {MIN_MS}..={MAX_MS} milliseconds"),
            }),
        };
        Ok(UpstreamTimeouts {
            handshake: check("gateway.upstream.handshakeTimeoutMs", handshake_ms, DEFAULT_HANDSHAKE_TIMEOUT)?,
            liveness: check("gateway.upstream.livenessTimeoutMs", liveness_ms, DEFAULT_LIVENESS_TIMEOUT)?,
        })
    }

    /// How often a live link is pinged: three pings fit in one liveness bound.
    pub fn ping_interval(&self) -> Duration {
        self.liveness / 3
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_ranges_and_the_key_named_in_a_refusal() {
        assert_eq!(UpstreamTimeouts::from_keys(None, None).unwrap(), UpstreamTimeouts::default());
        let t = UpstreamTimeouts::from_keys(Some(1_500), Some(3_000)).unwrap();
        assert_eq!((t.handshake, t.liveness, t.ping_interval()), (ms(1_500), ms(3_000), ms(1_000)));
        for (h, l, key) in [
            (Some(0), None, "gateway.upstream.handshakeTimeoutMs"),
            (None, Some(499), "gateway.upstream.livenessTimeoutMs"),
            (None, Some(600_001), "gateway.upstream.livenessTimeoutMs"),
        ] {
            match UpstreamTimeouts::from_keys(h, l) {
                Err(ConfigError::Unsafe { key: k, .. }) => assert_eq!(k, key),
                other => panic!("{other:?}"),
            }
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }
}
