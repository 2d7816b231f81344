//! The upstream link of one admitted session: which kind of upstream client
//! clawgate presents itself as, with which relay identity, and opening it.
//!
//! - A node → the node class, with the relay identity of its node id (a
//!   device id, or the local/service node id clawgate gave it).
//! - A browser with a device → the Control UI class, with the relay identity
//!   of its device: OpenClaw keys UI commands, plugin reports, chat routing
//!   and user profiles on that client id. Should the upstream refuse that
//!   class, the session falls back to the backend class, and the log says
//!   what is lost.
//! - Everything else → OpenClaw's local backend client, which the upstream
//!   admits with exactly the scopes clawgate granted and no device.
//!
//! The upstream always sees its own authority as `Host` (it builds URLs in
//! hello-ok from it and refuses non-private host names for the Control UI),
//! and the Control UI class an `Origin` of that authority; URLs are rewritten
//! back to the downstream's address in hello-ok and in answers.

use std::sync::Arc;

use serde_json::Value;

use super::connector::{Upstream, UpstreamLink};
use super::failure::UpstreamFailure;
use super::open_request::{ConnectClass, DownstreamFields, OpenRequest};
use crate::store::{browser_identity_key, node_identity_key, PairingStore, RelayDeviceToken, Role};

/// What clawgate admitted, as far as the upstream link depends on it.
#[derive(Debug, Clone)]
pub struct SessionLinkRequest {
    pub role: Role,
    /// Exactly what clawgate granted.
    pub scopes: Vec<String>,
    /// The admission facts say this is a browser.
    pub browser: bool,
    /// The proven device behind the session.
    pub device_id: Option<String>,
    /// For role node: the node id clawgate gave it.
    pub node_id: Option<String>,
    pub fields: DownstreamFields,
}

/// The upstream client class chosen for a session, before keys are loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkKind {
    Backend,
    ControlUi { identity_key: String },
    Node { identity_key: String },
}

impl LinkKind {
    pub fn name(&self) -> &'static str {
        match self {
            LinkKind::Backend => "backend",
            LinkKind::ControlUi { .. } => "control-ui",
            LinkKind::Node { .. } => "node",
        }
    }
}

/// Which class this session is relayed as.
pub fn link_kind(request: &SessionLinkRequest) -> LinkKind {
    match (request.role, &request.node_id, &request.device_id) {
        (Role::Node, Some(node_id), _) => LinkKind::Node { identity_key: node_identity_key(node_id) },
        (Role::Node, None, Some(device_id)) => LinkKind::Node { identity_key: node_identity_key(device_id) },
        (Role::Operator, _, Some(device_id)) if request.browser => {
            LinkKind::ControlUi { identity_key: browser_identity_key(device_id) }
        }
        _ => LinkKind::Backend,
    }
}

/// An open link and the class it ended up with.
#[derive(Debug)]
pub struct SessionLink {
    pub link: UpstreamLink,
    pub kind: LinkKind,
}

fn store_failure(e: crate::store::StoreError) -> UpstreamFailure {
    tracing::error!(error = %e, code = e.code(), "cannot read or write a relay identity in the store");
    UpstreamFailure::unavailable(format!("the relay identity store failed: {}", e.code()))
}

async fn blocking<T: Send + 'static>(
    store: &Arc<dyn PairingStore>,
    op: impl FnOnce(&dyn PairingStore) -> Result<T, crate::store::StoreError> + Send + 'static,
) -> Result<T, UpstreamFailure> {
    let store = store.clone();
    match tokio::task::spawn_blocking(move || op(store.as_ref())).await {
        Ok(result) => result.map_err(store_failure),
        Err(_) => Err(UpstreamFailure::unavailable("the relay identity task panicked")),
    }
}

/// Open the upstream link of an admitted session.
pub async fn open_session_link(
    upstream: &Upstream,
    store: &Arc<dyn PairingStore>,
    request: &SessionLinkRequest,
) -> Result<SessionLink, UpstreamFailure> {
    let kind = link_kind(request);
    match open_as(upstream, store, request, &kind).await {
        Err(UpstreamFailure::Refused { code, message }) if matches!(kind, LinkKind::ControlUi { .. }) => {
            tracing::warn!(
                code = %code, message = %message,
                "the upstream refused this browser as its Control UI; relaying it as a backend client instead: \
                 UI commands, plugin reports, chat routing and user preferences are not available to it"
            );
            let link = open_as(upstream, store, request, &LinkKind::Backend).await?;
            Ok(SessionLink { link, kind: LinkKind::Backend })
        }
        Err(e) => Err(e),
        Ok(link) => Ok(SessionLink { link, kind }),
    }
}

async fn open_as(
    upstream: &Upstream,
    store: &Arc<dyn PairingStore>,
    request: &SessionLinkRequest,
    kind: &LinkKind,
) -> Result<UpstreamLink, UpstreamFailure> {
    let now = crate::clock::now_ms();
    let class = match kind {
        LinkKind::Backend => ConnectClass::Backend,
        LinkKind::ControlUi { identity_key } | LinkKind::Node { identity_key } => {
            let key = identity_key.clone();
            let identity = blocking(store, move |s| s.relay_identity(&key, now)).await?.device_identity();
            match kind {
                LinkKind::Node { .. } => ConnectClass::Node { identity },
                _ => ConnectClass::ControlUi { identity },
            }
        }
    };
    let authority = upstream.config().url.authority();
    let open = OpenRequest {
        class,
        role: request.role.as_str().to_owned(),
        scopes: request.scopes.clone(),
        fields: request.fields.clone(),
        host: Some(authority.clone()),
        origin: Some(format!("http://{authority}")),
    };
    let link = upstream.open(open).await?;
    if let LinkKind::ControlUi { identity_key } | LinkKind::Node { identity_key } = kind {
        if let Some(token) = issued_device_token(&link.hello_ok, request.role) {
            let key = identity_key.clone();
            // Kept for the operator's sake (what the upstream issued to whom);
            // a failure to keep it does not end the session.
            if let Err(e) = blocking(store, move |s| s.set_relay_device_token(&key, Some(&token), now)).await {
                tracing::warn!(error = %e, "could not keep the upstream's device token for a relay identity");
            }
        }
    }
    Ok(link)
}

/// The device token in the upstream's hello-ok `auth`, if it issued one.
fn issued_device_token(hello_ok: &Value, role: Role) -> Option<RelayDeviceToken> {
    let auth = hello_ok.get("auth")?;
    let token = auth.get("deviceToken")?.as_str().filter(|t| !t.is_empty())?;
    let scopes = auth
        .get("scopes")
        .and_then(Value::as_array)
        .map(|s| s.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default();
    Some(RelayDeviceToken {
        token: token.to_owned(),
        role,
        scopes,
        issued_at_ms: auth.get("issuedAtMs").and_then(Value::as_u64).unwrap_or_else(crate::clock::now_ms),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(role: Role, browser: bool, device: Option<&str>, node: Option<&str>) -> SessionLinkRequest {
        SessionLinkRequest {
            role,
            scopes: vec![],
            browser,
            device_id: device.map(str::to_owned),
            node_id: node.map(str::to_owned),
            fields: DownstreamFields::default(),
        }
    }

    #[test]
    fn classes_follow_role_browser_and_device() {
        let kind = |r| link_kind(&r);
        assert_eq!(kind(request(Role::Operator, false, None, None)), LinkKind::Backend);
        assert_eq!(kind(request(Role::Operator, false, Some("d1"), None)), LinkKind::Backend, "a CLI with a device");
        assert_eq!(kind(request(Role::Operator, true, None, None)), LinkKind::Backend, "a browser without a device");
        assert_eq!(
            kind(request(Role::Operator, true, Some("d1"), None)),
            LinkKind::ControlUi { identity_key: browser_identity_key("d1") }
        );
        assert_eq!(
            kind(request(Role::Node, false, Some("d2"), Some("d2"))),
            LinkKind::Node { identity_key: node_identity_key("d2") }
        );
        assert_eq!(
            kind(request(Role::Node, true, None, Some("local:node-host:i"))),
            LinkKind::Node { identity_key: node_identity_key("local:node-host:i") }
        );
    }

    #[test]
    fn the_issued_device_token_is_read_from_hello_ok() {
        let hello = serde_json::json!({"auth": {"deviceToken": "dt", "scopes": ["operator.read"], "issuedAtMs": 7}});
        let t = issued_device_token(&hello, Role::Operator).unwrap();
        assert_eq!(
            (t.token.as_str(), t.scopes.as_slice(), t.issued_at_ms),
            ("dt", &["operator.read".to_owned()][..], 7)
        );
        assert!(issued_device_token(&serde_json::json!({"auth": {"scopes": []}}), Role::Node).is_none());
        assert!(issued_device_token(&serde_json::json!({"auth": {"deviceToken": ""}}), Role::Node).is_none());
    }
}
