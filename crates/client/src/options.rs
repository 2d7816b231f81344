//! How to connect: URL, credentials, who the client says it is, and what it asks for.

use std::time::Duration;

use clawgate_protocol::{AuthParams, ClientInfo, ConnectParams, PROTOCOL_VERSION};

#[derive(Debug, Clone)]
pub struct ConnectOptions {
    pub url: String,
    pub token: Option<String>,
    pub password: Option<String>,
    pub client_id: String,
    pub client_mode: String,
    pub client_version: String,
    pub platform: String,
    pub instance_id: Option<String>,
    pub role: String,
    pub scopes: Vec<String>,
    pub min_protocol: u64,
    pub max_protocol: u64,
    /// Connect without loading or presenting any device identity.
    pub skip_device_identity: bool,
    /// The device identity to prove on connect (ignored with `skip_device_identity`).
    pub device: Option<crate::DeviceIdentity>,
    /// A device token from an earlier hello-ok; sent in `auth.token` and
    /// `auth.deviceToken` (as the reference client does) when no shared token is set.
    pub device_token: Option<String>,
    /// Extra HTTP headers on the upgrade request.
    pub headers: Vec<(String, String)>,
    /// Bind the client socket to this local address before connecting (e.g.
    /// one of 127.0.0.0/8, to spread load over source addresses). `ws://` only.
    pub local_addr: Option<std::net::IpAddr>,
    /// For each handshake step.
    pub timeout: Duration,
    /// The gateway's identity key (its public half), when the caller knows
    /// it: the challenge must carry a signature of its nonce by this key,
    /// checked before any secret is sent.
    pub gateway_key: Option<[u8; 32]>,
}

impl ConnectOptions {
    pub fn new(url: impl Into<String>) -> Self {
        ConnectOptions {
            url: url.into(),
            token: None,
            password: None,
            client_id: "gateway-client".into(),
            client_mode: "backend".into(),
            client_version: env!("CARGO_PKG_VERSION").into(),
            platform: std::env::consts::OS.into(),
            instance_id: None,
            role: "operator".into(),
            scopes: Vec::new(),
            min_protocol: u64::from(PROTOCOL_VERSION),
            max_protocol: u64::from(PROTOCOL_VERSION),
            skip_device_identity: true,
            device: None,
            device_token: None,
            headers: Vec::new(),
            local_addr: None,
            timeout: Duration::from_secs(15),
            gateway_key: None,
        }
    }

    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    pub fn client(mut self, id: &str, mode: &str) -> Self {
        self.client_id = id.into();
        self.client_mode = mode.into();
        self
    }

    pub fn role(mut self, role: &str) -> Self {
        self.role = role.into();
        self
    }

    pub fn scopes<S: AsRef<str>>(mut self, scopes: &[S]) -> Self {
        self.scopes = scopes.iter().map(|s| s.as_ref().to_owned()).collect();
        self
    }

    /// Prove this device identity on connect.
    pub fn device(mut self, identity: crate::DeviceIdentity) -> Self {
        self.device = Some(identity);
        self.skip_device_identity = false;
        self
    }

    /// A device token from an earlier hello-ok, presented when no shared secret is set.
    pub fn device_token(mut self, token: impl Into<String>) -> Self {
        self.device_token = Some(token.into());
        self
    }

    /// Connect from this local address (`ws://` only).
    pub fn bind(mut self, local: std::net::IpAddr) -> Self {
        self.local_addr = Some(local);
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn connect_params(&self) -> ConnectParams {
        let auth = if self.token.is_some() || self.password.is_some() {
            Some(AuthParams { token: self.token.clone(), password: self.password.clone(), ..Default::default() })
        } else {
            // No shared secret: present the device token, in both fields.
            self.device_token.as_ref().map(|t| AuthParams {
                token: Some(t.clone()),
                device_token: Some(t.clone()),
                ..Default::default()
            })
        };
        let mut client = ClientInfo::new(&self.client_id, &self.client_version, &self.platform, &self.client_mode);
        client.instance_id = self.instance_id.clone();
        ConnectParams {
            min_protocol: self.min_protocol,
            role: Some(self.role.clone()),
            scopes: Some(self.scopes.clone()),
            auth,
            ..ConnectParams::new(self.max_protocol, client)
        }
    }
}
