//! The gateway under load: its URL and token, and how clients connect to it.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clawgate_client::{Client, ClientError, ConnectOptions, DeviceIdentity};

/// Who the load's clients say they are: a backend program asking for
/// `operator.read` (enough for `health` and for `presence` events on both
/// gateways; OpenClaw keeps the scopes of loopback backend clients).
pub const CLIENT_ID: &str = "gateway-client";
pub const CLIENT_MODE: &str = "backend";
pub const SCOPES: &[&str] = &["operator.read"];

/// Source addresses 127.0.0.FIRST.. for the load's sockets.
const FIRST_SOURCE: u8 = 10;

#[derive(Debug, Clone)]
pub struct Target {
    pub url: String,
    pub token: String,
    sources: Vec<IpAddr>,
    next_source: Arc<AtomicUsize>,
    pub timeout: Duration,
    /// The gateway's process id, when known: throughput runs then also report
    /// the gateway's CPU time per operation (from /proc, helpers included).
    pub pid: Option<u32>,
    /// The process behind the gateway, when there is one (the OpenClaw
    /// upstream when the gateway is clawgate in upstream mode): its CPU time
    /// per operation is reported too.
    pub upstream_pid: Option<u32>,
}

/// A device paired on the target: its key and the device token hello-ok gave it.
#[derive(Debug, Clone)]
pub struct PairedDevice {
    pub identity: DeviceIdentity,
    pub token: String,
}

impl Target {
    /// A loopback gateway URL (`ws://127.x.y.z:P`, `ws://localhost:P`,
    /// `ws://[::1]:P`); anything else is refused: load stays on this machine.
    /// Sockets are spread round-robin over `sources` addresses 127.0.0.10..
    /// when the target is IPv4 loopback (0: let the kernel choose).
    pub fn new(url: &str, token: &str, sources: usize) -> Result<Target, String> {
        let rest = url.strip_prefix("ws://").ok_or_else(|| format!("{url}: only ws:// URLs are supported"))?;
        let authority = rest.split('/').next().unwrap_or("");
        let host = if let Some(v6) = authority.strip_prefix('[') {
            v6.split(']').next().unwrap_or("")
        } else {
            authority.rsplit_once(':').map_or(authority, |(h, _)| h)
        };
        let v4_loopback = match host {
            "localhost" => true,
            h => match h.parse::<IpAddr>() {
                Ok(IpAddr::V4(a)) if a.is_loopback() => true,
                Ok(IpAddr::V6(a)) if a.is_loopback() => false,
                _ => return Err(format!("{url}: the load generator only targets loopback addresses")),
            },
        };
        let sources = if v4_loopback {
            (0..sources.min(240)).map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, FIRST_SOURCE + i as u8))).collect()
        } else {
            Vec::new()
        };
        Ok(Target {
            url: url.to_owned(),
            token: token.to_owned(),
            sources,
            next_source: Arc::default(),
            timeout: Duration::from_secs(30),
            pid: None,
            upstream_pid: None,
        })
    }

    /// Report the gateway's CPU time per operation, reading /proc for `pid`.
    pub fn with_pid(mut self, pid: Option<u32>) -> Self {
        self.pid = pid;
        self
    }

    /// Also report the CPU time per operation of the process behind the gateway.
    pub fn with_upstream_pid(mut self, pid: Option<u32>) -> Self {
        self.upstream_pid = pid;
        self
    }

    /// Spread sockets over `count` source addresses 127.0.0.FIRST.. instead
    /// (IPv4 loopback targets only), e.g. to keep a flood's addresses apart
    /// from a legitimate client's.
    pub fn with_sources_from(mut self, first: u8, count: usize) -> Self {
        if !self.sources.is_empty() {
            let count = count.clamp(1, usize::from(u8::MAX - first.max(1)));
            self.sources = (0..count).map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, first.max(1) + i as u8))).collect();
        }
        self
    }

    /// How many distinct source addresses the load uses (0: the kernel's choice).
    pub fn source_count(&self) -> usize {
        self.sources.len()
    }

    /// Base options: the load's client identity, the next source address.
    pub fn options(&self) -> ConnectOptions {
        let mut o =
            ConnectOptions::new(self.url.clone()).client(CLIENT_ID, CLIENT_MODE).role("operator").scopes(SCOPES);
        o.timeout = self.timeout;
        if !self.sources.is_empty() {
            let i = self.next_source.fetch_add(1, Ordering::Relaxed) % self.sources.len();
            o = o.bind(self.sources[i]);
        }
        o
    }

    /// Shared token, no device.
    pub fn token_options(&self) -> ConnectOptions {
        self.options().token(self.token.clone())
    }

    /// A paired device's proof (a fresh signature over each challenge) plus its
    /// device token, and no shared token.
    pub fn device_options(&self, device: &PairedDevice) -> ConnectOptions {
        self.options().device(device.identity.clone()).device_token(device.token.clone())
    }

    pub async fn connect_token(&self) -> Result<Client, ClientError> {
        Client::connect(self.token_options()).await
    }

    /// Pair a fresh device: connect locally with the shared token and the
    /// device's proof as client `pair_as` (ID, MODE) — both gateways pair local
    /// devices silently, but OpenClaw skips pairing (and issues no device
    /// token) for `gateway-client`/`backend`, so the CLI's identity `cli`/`cli`
    /// is the one that works on both — and keep the device token hello-ok
    /// returns. Then check that the device alone (proof plus device token,
    /// as the load's backend client) is admitted.
    pub async fn pair_device(&self, pair_as: (&str, &str)) -> Result<PairedDevice, String> {
        let identity = DeviceIdentity::generate();
        let client = Client::connect(self.token_options().client(pair_as.0, pair_as.1).device(identity.clone()))
            .await
            .map_err(|e| format!("pairing connect: {e}"))?;
        let token = client.hello.auth.device_token.clone();
        client.close().await;
        let token = token.ok_or("hello-ok after a local device connect carried no auth.deviceToken")?;
        let device = PairedDevice { identity, token };
        let check = Client::connect(self.device_options(&device))
            .await
            .map_err(|e| format!("connect with the paired device's token: {e}"))?;
        check.close().await;
        Ok(device)
    }
}

#[cfg(test)]
mod tests {
    use super::Target;

    #[test]
    fn only_loopback_targets() {
        assert_eq!(Target::new("ws://127.0.0.1:18789", "t", 4).unwrap().source_count(), 4);
        assert_eq!(Target::new("ws://localhost:1", "t", 4).unwrap().source_count(), 4);
        assert_eq!(Target::new("ws://[::1]:1", "t", 4).unwrap().source_count(), 0);
        assert!(Target::new("ws://10.0.0.1:1", "t", 4).is_err());
        assert!(Target::new("ws://example.com:1", "t", 4).is_err());
        assert!(Target::new("wss://127.0.0.1:1", "t", 4).is_err());
        let flood = Target::new("ws://127.0.0.1:1", "t", 4).unwrap().with_sources_from(100, 500);
        assert_eq!(flood.source_count(), 155, "127.0.0.100 to 127.0.0.254");
        assert_eq!(Target::new("ws://[::1]:1", "t", 4).unwrap().with_sources_from(100, 8).source_count(), 0);
    }
}
