//! Where a device command works: through the running gateway (its
//! `device.pair.*`/`device.token.*` methods) or on the store file directly
//! (`--offline`, through the same administration policy the gateway uses).
//! Both answer with the gateway's JSON shapes.

use std::path::PathBuf;

use clawgate::config::ConfigSources;
use clawgate::devices_admin::{self, views, Actor};
use clawgate::server::now_ms;
use clawgate::state::StateDir;
use clawgate::store::{Role, SqliteStore};
use clawgate_client::{Client, ClientError, ConnectOptions};
use clawgate_protocol::scopes;
use serde_json::{json, Value};

use super::Target;
use crate::cli::error::{CliError, OFFLINE_HINT};
use crate::cli::gateway_cmd::load_config;

/// What the CLI asks for when it connects to manage devices.
const CLI_SCOPES: &[&str] = &[scopes::ADMIN, scopes::PAIRING];

/// The operations every device command is made of.
pub(super) trait DeviceAdmin {
    /// Working on the store file rather than through the gateway.
    fn offline(&self) -> bool;
    /// `{pending: [...], paired: [...]}`, shaped like `device.pair.list`.
    async fn list(&self) -> Result<Value, CliError>;
    async fn approve(&self, request_id: &str) -> Result<Value, CliError>;
    async fn reject(&self, request_id: &str) -> Result<Value, CliError>;
    async fn remove(&self, device_id: &str) -> Result<Value, CliError>;
    async fn rotate(&self, device_id: &str, role: Role, scopes: Option<Vec<String>>) -> Result<Value, CliError>;
    async fn revoke(&self, device_id: &str, role: Role) -> Result<Value, CliError>;
    async fn close(self);
}

/// Through the gateway, as a local `cli`/`cli` client with the gateway
/// credential.
pub(super) struct GatewayBackend(Client);

impl GatewayBackend {
    pub(super) async fn connect(t: &Target) -> Result<GatewayBackend, CliError> {
        if t.token.is_some() {
            eprintln!(
                "clawgate: warning: --token is visible to other users in the process list; prefer OPENCLAW_GATEWAY_TOKEN"
            );
        }
        let sources = ConfigSources { token: t.token.clone(), ..Default::default() };
        let loaded = load_config(&t.config, sources, false).map_err(|e| CliError::from(e).hinted(OFFLINE_HINT))?;
        let url = t.url.clone().unwrap_or_else(|| format!("ws://127.0.0.1:{}", loaded.config.port));
        let mut opts = ConnectOptions::new(url.clone()).client("cli", "cli").scopes(CLI_SCOPES);
        opts.token = loaded.config.token.as_ref().map(|t| t.reveal().to_owned());
        opts.password = loaded.config.password.as_ref().map(|p| p.reveal().to_owned());
        opts.timeout = std::time::Duration::from_millis(t.timeout_ms);
        let client = Client::connect(opts).await.map_err(|e| match e {
            ClientError::Connect { message, .. } if message.starts_with("HTTP error") => {
                CliError::GatewayRefusedUpgrade { url, detail: message }
            }
            ClientError::Connect { message, .. } => {
                CliError::GatewayUnreachable { detail: format!("cannot reach the gateway at {url} ({message})") }
            }
            e @ (ClientError::Timeout(_) | ClientError::Closed(None)) => {
                CliError::GatewayUnreachable { detail: format!("no answer from the gateway at {url} ({e})") }
            }
            other => CliError::from_gateway(other).hinted(OFFLINE_HINT),
        })?;
        Ok(GatewayBackend(client))
    }

    async fn call(&self, method: &str, params: Value) -> Result<Value, CliError> {
        self.0.request(method, Some(params)).await.map_err(CliError::from_gateway)
    }
}

impl DeviceAdmin for GatewayBackend {
    fn offline(&self) -> bool {
        false
    }

    async fn list(&self) -> Result<Value, CliError> {
        self.call("device.pair.list", json!({})).await
    }

    async fn approve(&self, request_id: &str) -> Result<Value, CliError> {
        self.call("device.pair.approve", json!({ "requestId": request_id })).await
    }

    async fn reject(&self, request_id: &str) -> Result<Value, CliError> {
        self.call("device.pair.reject", json!({ "requestId": request_id })).await
    }

    async fn remove(&self, device_id: &str) -> Result<Value, CliError> {
        self.call("device.pair.remove", json!({ "deviceId": device_id })).await
    }

    async fn rotate(&self, device_id: &str, role: Role, scopes: Option<Vec<String>>) -> Result<Value, CliError> {
        let mut params = json!({ "deviceId": device_id, "role": role.as_str() });
        if let Some(s) = scopes {
            params["scopes"] = json!(s);
        }
        self.call("device.token.rotate", params).await
    }

    async fn revoke(&self, device_id: &str, role: Role) -> Result<Value, CliError> {
        self.call("device.token.revoke", json!({ "deviceId": device_id, "role": role.as_str() })).await
    }

    async fn close(self) {
        self.0.close().await;
    }
}

/// The store file in the state directory, as its owner: approvals are
/// recorded as `cli-offline`. A new token is never shown: like the gateway,
/// the CLI does not hand one device's token to someone else.
pub(super) struct StoreBackend {
    store: SqliteStore,
    actor: Actor,
}

impl StoreBackend {
    pub(super) fn open() -> Result<StoreBackend, CliError> {
        let env = ConfigSources::from_process_env();
        let state = StateDir::locate(&env)?;
        let path: PathBuf = state.store_path();
        if !path.exists() {
            return Err(CliError::StoreMissing {
                what: "pairing store",
                path,
                why: "the gateway creates it on its first start",
                state_dir: state.path.clone(),
            });
        }
        state.ensure()?;
        Ok(StoreBackend { store: SqliteStore::open(&path)?, actor: Actor::store_owner() })
    }
}

impl DeviceAdmin for StoreBackend {
    fn offline(&self) -> bool {
        true
    }

    async fn list(&self) -> Result<Value, CliError> {
        Ok(views::listing(&devices_admin::list(&self.store, &self.actor, now_ms())?))
    }

    async fn approve(&self, request_id: &str) -> Result<Value, CliError> {
        Ok(views::approval(&devices_admin::approve(&self.store, &self.actor, request_id, now_ms())?))
    }

    async fn reject(&self, request_id: &str) -> Result<Value, CliError> {
        Ok(views::rejection(&devices_admin::reject(&self.store, &self.actor, request_id, now_ms())?))
    }

    async fn remove(&self, device_id: &str) -> Result<Value, CliError> {
        devices_admin::remove(&self.store, &self.actor, device_id, now_ms())?;
        Ok(views::removal(device_id))
    }

    async fn rotate(&self, device_id: &str, role: Role, scopes: Option<Vec<String>>) -> Result<Value, CliError> {
        let rotation = devices_admin::rotate(&self.store, &self.actor, device_id, role, scopes, now_ms())?;
        Ok(views::rotation(&rotation))
    }

    async fn revoke(&self, device_id: &str, role: Role) -> Result<Value, CliError> {
        let revocation = devices_admin::revoke(&self.store, &self.actor, device_id, role, now_ms())?;
        Ok(views::revocation(device_id, &revocation))
    }

    async fn close(self) {}
}
