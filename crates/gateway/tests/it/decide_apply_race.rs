//! Decide, then apply, race-free: a store change landing between the
//! decision's read and the write that applies it (a revoke, an approval) is
//! caught by the write's generation check, and the connect is decided again.
//! The interleaving is made deterministic by a store that performs the
//! change itself, right after the read the decision relies on.

use std::sync::{Arc, Mutex};

use clawgate::config::{AuthMode, Config};
use clawgate::store::{
    AdmissionApplied, AdmissionWrite, Approval, ApprovedVia, DeviceView, IssuedServiceToken, LiveToken, NewRequest,
    PairedDevice, PairingStore, PendingRequest, Rejection, RejectionCooldown, RelayDeviceToken, RelayIdentity,
    RequestOutcome, Role, ServicePrincipal, ServiceTokenCheck, SqliteStore, StoreError, TokenCheck, TokenInfo,
};
use clawgate::ServerOptions;
use clawgate_client::DeviceIdentity;
use serde_json::{json, Value};

use crate::common::{connect_params, RawConn, TestGateway, REMOTE, TOKEN};

type Change = Box<dyn Fn(&SqliteStore) + Send + Sync>;

/// When the interleaved change runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum After {
    /// After a device's record is read for a decision.
    View,
    /// After a device token verified.
    TokenVerified,
}

/// A SQLite store that runs `change` right after the chosen read, `times` times.
struct Interleaving {
    inner: SqliteStore,
    hook: Mutex<Option<(After, u32, Change)>>,
}

impl Interleaving {
    fn new() -> Arc<Interleaving> {
        Arc::new(Interleaving { inner: SqliteStore::open_in_memory().unwrap(), hook: Mutex::new(None) })
    }

    fn arm(&self, after: After, times: u32, change: impl Fn(&SqliteStore) + Send + Sync + 'static) {
        *self.hook.lock().unwrap() = Some((after, times, Box::new(change)));
    }

    fn fire(&self, at: After) {
        let mut hook = self.hook.lock().unwrap();
        if let Some((after, times, change)) = hook.as_mut() {
            if *after == at && *times > 0 {
                *times -= 1;
                change(&self.inner);
            }
        }
    }
}

impl PairingStore for Interleaving {
    fn view(&self, device_id: &str) -> Result<DeviceView, StoreError> {
        let view = self.inner.view(device_id);
        self.fire(After::View);
        view
    }

    fn verify_token(&self, device_id: &str, role: Role, p: &str, now: u64) -> Result<TokenCheck, StoreError> {
        let check = self.inner.verify_token(device_id, role, p, now);
        if matches!(check, Ok(TokenCheck::Valid { .. })) {
            self.fire(After::TokenVerified);
        }
        check
    }

    // Everything else goes straight through.
    fn generation(&self) -> Result<u64, StoreError> {
        self.inner.generation()
    }
    fn data_version(&self) -> Result<u64, StoreError> {
        self.inner.data_version()
    }
    fn device(&self, device_id: &str) -> Result<Option<PairedDevice>, StoreError> {
        self.inner.device(device_id)
    }
    fn list_devices(&self) -> Result<Vec<PairedDevice>, StoreError> {
        self.inner.list_devices()
    }
    fn tokens(&self, device_id: &str) -> Result<Vec<TokenInfo>, StoreError> {
        self.inner.tokens(device_id)
    }
    fn open_requests(&self, now: u64) -> Result<Vec<PendingRequest>, StoreError> {
        self.inner.open_requests(now)
    }
    fn request(&self, request_id: &str, now: u64) -> Result<Option<PendingRequest>, StoreError> {
        self.inner.request(request_id, now)
    }
    fn request_pairing(&self, new: &NewRequest, now: u64) -> Result<RequestOutcome, StoreError> {
        self.inner.request_pairing(new, now)
    }
    fn approve(&self, request_id: &str, via: ApprovedVia, now: u64) -> Result<Approval, StoreError> {
        self.inner.approve(request_id, via, now)
    }
    fn approve_latest(&self, via: ApprovedVia, now: u64, window: u64) -> Result<Approval, StoreError> {
        self.inner.approve_latest(via, now, window)
    }
    fn approve_device(&self, device_id: &str, via: ApprovedVia, now: u64) -> Result<Approval, StoreError> {
        self.inner.approve_device(device_id, via, now)
    }
    fn pair_silently(&self, new: &NewRequest, now: u64) -> Result<PairedDevice, StoreError> {
        self.inner.pair_silently(new, now)
    }
    fn apply_admission(&self, read: &DeviceView, w: &AdmissionWrite, now: u64) -> Result<AdmissionApplied, StoreError> {
        self.inner.apply_admission(read, w, now)
    }
    fn pair_proxy_auto(&self, new: &NewRequest, now: u64) -> Result<PairedDevice, StoreError> {
        self.inner.pair_proxy_auto(new, now)
    }
    fn reject(&self, request_id: &str, now: u64) -> Result<Rejection, StoreError> {
        self.inner.reject(request_id, now)
    }
    fn rejections(&self, now: u64) -> Result<Vec<RejectionCooldown>, StoreError> {
        self.inner.rejections(now)
    }
    fn lift_rejection(&self, device_id: &str, role: Option<Role>, now: u64) -> Result<Vec<Role>, StoreError> {
        self.inner.lift_rejection(device_id, role, now)
    }
    fn remove_device(&self, device_id: &str, now: u64) -> Result<PairedDevice, StoreError> {
        self.inner.remove_device(device_id, now)
    }
    fn rename_device(&self, device_id: &str, label: &str, now: u64) -> Result<PairedDevice, StoreError> {
        self.inner.rename_device(device_id, label, now)
    }
    fn issue_token(&self, device_id: &str, role: Role, scopes: &[String], now: u64) -> Result<String, StoreError> {
        self.inner.issue_token(device_id, role, scopes, now)
    }
    fn rotate_token(&self, device_id: &str, role: Role, scopes: &[String], now: u64) -> Result<String, StoreError> {
        self.inner.rotate_token(device_id, role, scopes, now)
    }
    fn revoke_token(&self, device_id: &str, role: Role, now: u64) -> Result<bool, StoreError> {
        self.inner.revoke_token(device_id, role, now)
    }
    fn device_token_by_value(&self, presented: &str, now: u64) -> Result<Option<LiveToken>, StoreError> {
        self.inner.device_token_by_value(presented, now)
    }
    fn touch_last_seen(&self, device_id: &str, ip: Option<&str>, now: u64) -> Result<bool, StoreError> {
        self.inner.touch_last_seen(device_id, ip, now)
    }
    fn add_service(
        &self,
        name: &str,
        role: Role,
        scopes: &[String],
        now: u64,
    ) -> Result<IssuedServiceToken, StoreError> {
        self.inner.add_service(name, role, scopes, now)
    }
    fn list_services(&self) -> Result<Vec<ServicePrincipal>, StoreError> {
        self.inner.list_services()
    }
    fn service_by_id(&self, principal_id: &str) -> Result<Option<ServicePrincipal>, StoreError> {
        self.inner.service_by_id(principal_id)
    }
    fn rotate_service(&self, name: &str, now: u64) -> Result<IssuedServiceToken, StoreError> {
        self.inner.rotate_service(name, now)
    }
    fn revoke_service(&self, name: &str, now: u64) -> Result<ServicePrincipal, StoreError> {
        self.inner.revoke_service(name, now)
    }
    fn verify_service_token(&self, token: &str, now: u64) -> Result<ServiceTokenCheck, StoreError> {
        self.inner.verify_service_token(token, now)
    }
    fn relay_identity(&self, key: &str, now: u64) -> Result<RelayIdentity, StoreError> {
        self.inner.relay_identity(key, now)
    }
    fn set_relay_device_token(&self, key: &str, t: Option<&RelayDeviceToken>, now: u64) -> Result<bool, StoreError> {
        self.inner.set_relay_device_token(key, t, now)
    }
    fn remove_relay_identity(&self, key: &str, now: u64) -> Result<bool, StoreError> {
        self.inner.remove_relay_identity(key, now)
    }
}

fn now() -> u64 {
    clawgate::server::now_ms()
}

async fn start(store: &Arc<Interleaving>, trusted_loopback_proxy: bool) -> TestGateway {
    let mut config = Config::new(AuthMode::Token, Some(TOKEN), None);
    if trusted_loopback_proxy {
        config.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    }
    TestGateway::start_with_store(config, ServerOptions::default(), store.clone()).await
}

async fn connect(gw: &TestGateway, headers: &[(&str, &str)], params: Value, id: &DeviceIdentity) -> Value {
    let mut c = RawConn::open_with(gw.addr, headers).await.expect("upgrade");
    c.handshake_device(params, id).await
}

fn with_device_token(token: &str) -> Value {
    let mut p = connect_params("cli", "cli", "operator", &["operator.read"], None);
    p["auth"] = json!({ "token": token, "deviceToken": token });
    p
}

#[tokio::test]
async fn a_revoke_between_decide_and_apply_is_not_admitted_with_the_old_token() {
    let store = Interleaving::new();
    let gw = start(&store, false).await;
    let id = DeviceIdentity::generate();
    let first = connect(&gw, &[], connect_params("cli", "cli", "operator", &["operator.read"], Some(TOKEN)), &id).await;
    let token = first["payload"]["auth"]["deviceToken"].as_str().expect("paired silently, with a token").to_owned();

    // The token verifies; then, before the admission is applied, it is revoked.
    let device_id = id.device_id();
    store.arm(After::TokenVerified, 1, move |s| {
        assert!(s.revoke_token(&device_id, Role::Operator, now()).unwrap());
    });
    let res = connect(&gw, &[], with_device_token(&token), &id).await;
    assert_eq!(res["ok"], false, "admitted with a token revoked before the admission was applied: {res}");
    assert_eq!(res["error"]["details"]["code"], "AUTH_DEVICE_TOKEN_MISMATCH", "{res}");
    gw.stop().await;
}

#[tokio::test]
async fn an_approval_between_decide_and_apply_admits_and_opens_no_stale_request() {
    let store = Interleaving::new();
    let gw = start(&store, true).await;
    let id = DeviceIdentity::generate();
    let params = || connect_params("cli", "cli", "operator", &["operator.read"], Some(TOKEN));
    let first = connect(&gw, REMOTE, params(), &id).await;
    assert_eq!(first["error"]["details"]["code"], "PAIRING_REQUIRED", "{first}");
    let request_id = first["error"]["details"]["requestId"].as_str().unwrap().to_owned();

    // The decision reads "not paired"; the owner approves right after.
    store.arm(After::View, 1, move |s| {
        s.approve(&request_id, ApprovedVia::Cli, now()).unwrap();
    });
    let res = connect(&gw, REMOTE, params(), &id).await;
    assert_eq!(res["ok"], true, "decided again on the approved pairing: {res}");
    assert!(res["payload"]["auth"]["deviceToken"].is_string());
    let open = gw.gateway.store.open_requests(now()).unwrap();
    assert!(open.iter().all(|r| r.device_id != id.device_id()), "a stale pending request was created: {open:?}");
    gw.stop().await;
}

/// Another device pairing in between moves the generation but changes
/// nothing this decision relied on: applied at once, no retry needed.
#[tokio::test]
async fn a_change_to_another_device_does_not_disturb_the_admission() {
    let store = Interleaving::new();
    let gw = start(&store, false).await;
    let id = DeviceIdentity::generate();
    let other = DeviceIdentity::generate();
    let first = connect(&gw, &[], connect_params("cli", "cli", "operator", &["operator.read"], Some(TOKEN)), &id).await;
    assert_eq!(first["ok"], true, "{first}");

    let other_id = other.device_id();
    let other_key = other.public_key_b64url();
    store.arm(After::View, u32::MAX, move |s| {
        let request = NewRequest {
            device_id: other_id.clone(),
            public_key: other_key.clone(),
            role: Role::Operator,
            scopes: vec!["operator.read".to_owned()],
            client_id: None,
            client_mode: None,
            display_name: None,
            platform: None,
            device_family: None,
            remote_ip: None,
            proxy_user: None,
        };
        s.pair_silently(&request, now()).unwrap();
        s.rename_device(&other_id, &format!("other {}", now()), now()).unwrap();
    });
    let res = connect(&gw, &[], connect_params("cli", "cli", "operator", &["operator.read"], Some(TOKEN)), &id).await;
    assert_eq!(res["ok"], true, "{res}");
    gw.stop().await;
}

#[tokio::test]
async fn a_store_that_keeps_changing_is_reported_after_a_few_attempts() {
    let store = Interleaving::new();
    let gw = start(&store, false).await;
    let id = DeviceIdentity::generate();
    let first = connect(&gw, &[], connect_params("cli", "cli", "operator", &["operator.read"], Some(TOKEN)), &id).await;
    assert_eq!(first["ok"], true, "{first}");

    let device_id = id.device_id();
    let renames = std::sync::atomic::AtomicU32::new(0);
    store.arm(After::View, u32::MAX, move |s| {
        let n = renames.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        s.rename_device(&device_id, &format!("label {n}"), now()).unwrap();
    });
    let res = connect(&gw, &[], connect_params("cli", "cli", "operator", &["operator.read"], Some(TOKEN)), &id).await;
    assert_eq!(res["error"]["code"], "UNAVAILABLE", "{res}");
    assert_eq!(res["error"]["details"]["code"], "STORE_BUSY", "{res}");
    gw.stop().await;
}
