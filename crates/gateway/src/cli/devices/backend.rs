//! Where a device command works: through the running gateway (its
//! `device.pair.*`/`device.token.*` methods, and clawgate's own
//! `device.pair.unreject`) or on the store file directly
//! (`--offline`, through the same administration policy the gateway uses).
//! Both answer with the gateway's JSON shapes.

use std::path::PathBuf;

use clawgate::config::ConfigSources;
use clawgate::devices_admin::{self, views, Actor};
use clawgate::server::now_ms;
use clawgate::state::StateDir;
use clawgate::store::{PairingStore, PgStore, Role, SqliteStore};
use clawgate_client::Client;
use clawgate_protocol::scopes;
use serde_json::{json, Value};
use tokio::sync::Mutex;

use crate::cli::client_conn::{self, ClientArgs};
use crate::cli::error::{CliError, OFFLINE_HINT};

/// The operations every device command is made of.
pub(super) trait DeviceAdmin {
    /// Working on the store file rather than through the gateway.
    fn offline(&self) -> bool;
    /// Make sure the session holds `scopes` too (reconnecting with more if
    /// needed): the CLI asks for the least each step needs.
    async fn widen(&self, scopes: &[String]) -> Result<(), CliError>;
    /// `{pending: [...], paired: [...], rejected: [...]}`, shaped like `device.pair.list`.
    async fn list(&self) -> Result<Value, CliError>;
    async fn approve(&self, request_id: &str) -> Result<Value, CliError>;
    async fn reject(&self, request_id: &str) -> Result<Value, CliError>;
    /// End a device's rejection cool-down (of one role, if given).
    async fn unreject(&self, device_id: &str, role: Option<Role>) -> Result<Value, CliError>;
    async fn remove(&self, device_id: &str) -> Result<Value, CliError>;
    async fn rotate(&self, device_id: &str, role: Role, scopes: Option<Vec<String>>) -> Result<Value, CliError>;
    async fn revoke(&self, device_id: &str, role: Role) -> Result<Value, CliError>;
    async fn close(self);
}

/// Through the gateway, as a local `cli`/`cli` client with the gateway
/// credential, holding the scopes asked for so far.
pub(super) struct GatewayBackend {
    args: ClientArgs,
    session: Mutex<(Vec<String>, Client)>,
}

/// Connect for device administration; failures say `--offline` exists.
async fn connect(args: &ClientArgs, scopes: &[String]) -> Result<Client, CliError> {
    match client_conn::connect(args, scopes).await {
        Ok((client, _)) => Ok(client),
        Err(CliError::GatewayUnreachable { detail, .. }) => {
            Err(CliError::GatewayUnreachable { detail, offline_hint: true })
        }
        Err(e @ CliError::GatewayRefusedUpgrade { .. }) => Err(e),
        Err(e) => Err(e.hinted(OFFLINE_HINT)),
    }
}

impl GatewayBackend {
    /// Start with `operator.pairing`: enough to list, reject, and manage
    /// operator devices.
    pub(super) async fn connect(args: &ClientArgs) -> Result<GatewayBackend, CliError> {
        let scopes = vec![scopes::PAIRING.to_owned()];
        let client = connect(args, &scopes).await?;
        Ok(GatewayBackend { args: args.clone(), session: Mutex::new((scopes, client)) })
    }

    async fn call(&self, method: &str, params: Value) -> Result<Value, CliError> {
        let session = self.session.lock().await;
        session.1.request(method, Some(params)).await.map_err(CliError::from_gateway)
    }
}

impl DeviceAdmin for GatewayBackend {
    fn offline(&self) -> bool {
        false
    }

    async fn widen(&self, wanted: &[String]) -> Result<(), CliError> {
        let mut session = self.session.lock().await;
        if scopes::covered_by(wanted, &session.0) {
            return Ok(());
        }
        let mut all = session.0.clone();
        all.extend(wanted.iter().filter(|w| !session.0.contains(w)).cloned());
        let client = connect(&self.args, &all).await?;
        let (_, old) = std::mem::replace(&mut *session, (all, client));
        old.close().await;
        Ok(())
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

    async fn unreject(&self, device_id: &str, role: Option<Role>) -> Result<Value, CliError> {
        let mut params = json!({ "deviceId": device_id });
        if let Some(role) = role {
            params["role"] = role.as_str().into();
        }
        self.call("device.pair.unreject", params).await
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
        self.session.into_inner().1.close().await;
    }
}

/// The configured store (the state directory's file, or the shared
/// PostgreSQL database), as its owner: approvals are
/// recorded as `cli-offline`. A new token is never shown: like the gateway,
/// the CLI does not hand one device's token to someone else.
pub(super) struct StoreBackend {
    store: Box<dyn PairingStore>,
    actor: Actor,
}

impl StoreBackend {
    /// The configured store: the shared PostgreSQL database when a store
    /// URL is set, else the state directory's file.
    pub(super) fn open() -> Result<StoreBackend, CliError> {
        let env = ConfigSources::from_process_env();
        let state = StateDir::locate(&env)?;
        if let Some(url) = crate::cli::store_open::configured_store_url(&env, &state)? {
            return Ok(StoreBackend { store: Box::new(PgStore::open(url.expose())?), actor: Actor::store_owner() });
        }
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
        Ok(StoreBackend { store: Box::new(SqliteStore::open(&path)?), actor: Actor::store_owner() })
    }
}

impl DeviceAdmin for StoreBackend {
    fn offline(&self) -> bool {
        true
    }

    /// The store's owner holds every right.
    async fn widen(&self, _scopes: &[String]) -> Result<(), CliError> {
        Ok(())
    }

    async fn list(&self) -> Result<Value, CliError> {
        Ok(views::listing(&devices_admin::list(self.store.as_ref(), &self.actor, now_ms())?))
    }

    async fn approve(&self, request_id: &str) -> Result<Value, CliError> {
        Ok(views::approval(&devices_admin::approve(self.store.as_ref(), &self.actor, request_id, now_ms())?))
    }

    async fn reject(&self, request_id: &str) -> Result<Value, CliError> {
        Ok(views::rejection(&devices_admin::reject(self.store.as_ref(), &self.actor, request_id, now_ms())?))
    }

    async fn unreject(&self, device_id: &str, role: Option<Role>) -> Result<Value, CliError> {
        Ok(views::unrejection(&devices_admin::unreject(self.store.as_ref(), &self.actor, device_id, role, now_ms())?))
    }

    async fn remove(&self, device_id: &str) -> Result<Value, CliError> {
        devices_admin::remove(self.store.as_ref(), &self.actor, device_id, now_ms())?;
        Ok(views::removal(device_id))
    }

    async fn rotate(&self, device_id: &str, role: Role, scopes: Option<Vec<String>>) -> Result<Value, CliError> {
        let rotation = devices_admin::rotate(self.store.as_ref(), &self.actor, device_id, role, scopes, now_ms())?;
        Ok(views::rotation(&rotation))
    }

    async fn revoke(&self, device_id: &str, role: Role) -> Result<Value, CliError> {
        let revocation = devices_admin::revoke(self.store.as_ref(), &self.actor, device_id, role, now_ms())?;
        Ok(views::revocation(device_id, &revocation))
    }

    async fn close(self) {}
}
