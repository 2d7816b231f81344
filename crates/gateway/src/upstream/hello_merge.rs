//! The hello-ok a relayed session gets: the upstream's, with what is
//! clawgate's put back in.
//!
//! Kept from the upstream exactly: `server.version`, `buildId`, `bootId`,
//! `controlUiBuildSource` (the Control UI compares them with its own build
//! and stops with "refresh required" otherwise), features, health, the
//! rest of the snapshot and every field this build does not know.
//! clawgate's: `auth` (with its own per-principal `recoveryScope`: the
//! upstream's is the same for every relayed session), `server.connId`,
//! `snapshot.authMode` (only where the upstream sent one), the presence it
//! keeps (its sessions, as their own clients) and the presence version, the
//! stricter of the two size limits and its own tick interval. URLs that
//! point at the upstream are rewritten to the address the client used.

use clawgate_protocol::HelloOk;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// Rewrites URLs that name the upstream (`http://127.0.0.1:18790/…`) to the
/// scheme and host the downstream client used (`https://gw.example/…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlRewrite {
    /// (upstream prefix, downstream prefix), e.g. `http://127.0.0.1:18790` →
    /// `http://127.0.0.1:18789`, and the same for `ws://`.
    prefixes: Vec<(String, String)>,
}

impl UrlRewrite {
    /// From the upstream's authority to the downstream `Host`, over `https`
    /// when the downstream client came over TLS (its `Origin` says so).
    pub fn new(upstream_authority: &str, downstream_host: &str, downstream_tls: bool) -> UrlRewrite {
        let (http, ws) = if downstream_tls { ("https", "wss") } else { ("http", "ws") };
        let host = downstream_host.trim();
        UrlRewrite {
            prefixes: vec![
                (format!("http://{upstream_authority}"), format!("{http}://{host}")),
                (format!("ws://{upstream_authority}"), format!("{ws}://{host}")),
            ],
        }
    }

    /// The rewritten URL, or `None` when it does not name the upstream.
    pub fn url(&self, text: &str) -> Option<String> {
        for (from, to) in &self.prefixes {
            if let Some(rest) = text.strip_prefix(from.as_str()) {
                // `http://127.0.0.1:1879` must not match `http://127.0.0.1:18790`.
                if rest.is_empty() || rest.starts_with(['/', '?', '#']) {
                    return Some(format!("{to}{rest}"));
                }
            }
        }
        None
    }

    /// Rewrite every string in `value` (recursively) that names the upstream.
    pub fn apply(&self, value: &mut Value) {
        match value {
            Value::String(s) => {
                if let Some(new) = self.url(s) {
                    *s = new;
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.apply(v)),
            Value::Object(map) => map.values_mut().for_each(|v| self.apply(v)),
            _ => {}
        }
    }
}

/// clawgate's opaque recovery scope for one principal: stable for that
/// principal, distinct between principals, and revealing nothing about it.
pub fn recovery_scope(principal_key: &str) -> String {
    let digest = Sha256::digest(format!("clawgate-recovery:{principal_key}").as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn object<'a>(parent: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let slot = parent.entry(key.to_owned()).or_insert_with(|| Value::Object(Map::new()));
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    slot.as_object_mut().expect("made an object above")
}

/// The smaller of two limits; a missing or unreadable upstream value leaves ours.
fn stricter(upstream: Option<&Value>, ours: u64) -> u64 {
    upstream.and_then(Value::as_u64).map_or(ours, |u| u.min(ours))
}

/// Append the items of `ours` missing from the upstream's list.
fn union_into(list: &mut Value, ours: &[String]) {
    if !list.is_array() {
        *list = Value::Array(Vec::new());
    }
    let items = list.as_array_mut().expect("made an array above");
    for item in ours {
        if !items.iter().any(|v| v.as_str() == Some(item)) {
            items.push(Value::String(item.clone()));
        }
    }
}

/// What the relayed hello-ok's `auth` says beyond clawgate's own hello-ok.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayAuth {
    /// How the session authenticated at clawgate, in OpenClaw's words
    /// (`token`, `password`, `device-token`, `trusted-proxy`, `none`).
    pub method: &'static str,
    /// See [`recovery_scope`].
    pub recovery_scope: String,
}

/// Merge clawgate's hello-ok (`ours`) into the upstream's payload.
pub fn merge_hello(upstream: Value, ours: &HelloOk, relay_auth: &RelayAuth, rewrite: Option<&UrlRewrite>) -> Value {
    let mut hello = match upstream {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    hello.insert("type".into(), "hello-ok".into());

    let server = object(&mut hello, "server");
    server.insert("connId".into(), ours.server.conn_id.clone().into());

    let features = object(&mut hello, "features");
    union_into(features.entry("methods").or_insert(Value::Null), &ours.features.methods);
    union_into(features.entry("events").or_insert(Value::Null), &ours.features.events);

    let snapshot = object(&mut hello, "snapshot");
    snapshot.insert("presence".into(), Value::Array(ours.snapshot.presence.clone()));
    object(snapshot, "stateVersion").insert("presence".into(), ours.snapshot.state_version.presence.into());
    if snapshot.contains_key("authMode") {
        match &ours.snapshot.auth_mode {
            Some(mode) => snapshot.insert("authMode".into(), mode.clone().into()),
            None => snapshot.remove("authMode"),
        };
    }

    let mut auth = Map::new();
    auth.insert("role".into(), ours.auth.role.clone().into());
    auth.insert("scopes".into(), ours.auth.scopes.clone().into());
    auth.insert("method".into(), relay_auth.method.into());
    if let Some(token) = &ours.auth.device_token {
        auth.insert("deviceToken".into(), token.clone().into());
    }
    if let Some(at) = ours.auth.issued_at_ms {
        auth.insert("issuedAtMs".into(), at.into());
    }
    auth.insert("recoveryScope".into(), relay_auth.recovery_scope.clone().into());
    hello.insert("auth".into(), Value::Object(auth));

    let policy = object(&mut hello, "policy");
    let max_payload = stricter(policy.get("maxPayload"), ours.policy.max_payload);
    let max_buffered = stricter(policy.get("maxBufferedBytes"), ours.policy.max_buffered_bytes);
    policy.insert("maxPayload".into(), max_payload.into());
    policy.insert("maxBufferedBytes".into(), max_buffered.into());
    policy.insert("tickIntervalMs".into(), ours.policy.tick_interval_ms.into());

    if let (Some(rewrite), Some(urls)) = (rewrite, hello.get_mut("pluginSurfaceUrls")) {
        rewrite.apply(urls);
    }
    Value::Object(hello)
}

#[cfg(test)]
#[path = "hello_merge_tests.rs"]
mod tests;
