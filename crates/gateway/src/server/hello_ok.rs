//! The hello-ok a freshly admitted session receives: what clawgate
//! announces (methods, events, policy) and what the session may see of the
//! snapshot (presence and the auth mode are gated like the methods).

use clawgate_protocol::hello::{Features, HelloAuth, HelloKind, Policy, ServerInfo, Snapshot};
use clawgate_protocol::{HelloOk, PROTOCOL_VERSION};

use crate::admission::decision::Role;
use crate::admission::Admission;
use crate::config::Config;

use super::apply::IssuedToken;
use super::methods::{advertised, health_payload};
use super::registry::SessionInfo;
use super::{events, Gateway, VERSION};

pub(super) fn hello_ok(
    gw: &Gateway,
    config: &Config,
    info: &SessionInfo,
    admission: &Admission,
    issued: Option<IssuedToken>,
) -> HelloOk {
    let presence_version = gw.registry.presence_version();
    HelloOk {
        kind: HelloKind::HelloOk,
        protocol: PROTOCOL_VERSION,
        server: ServerInfo {
            version: VERSION.to_owned(),
            conn_id: info.conn_id.clone(),
            boot_id: Some(gw.boot_id.clone()),
        },
        features: Features { methods: advertised(), events: events::EVENTS.iter().map(|e| (*e).to_owned()).collect() },
        // Presence exactly as `system-presence` and the presence event are
        // gated (operator.read); the auth mode only to admins. Upstream mode
        // merges this snapshot, so the same gate holds there.
        snapshot: Snapshot {
            presence: if events::may_receive("presence", info.role, &info.scopes) {
                (*gw.registry.presence()).clone()
            } else {
                Vec::new()
            },
            health: health_payload(gw),
            state_version: clawgate_protocol::frame::StateVersion { presence: presence_version, health: 0 },
            uptime_ms: gw.uptime_ms(),
            auth_mode: (info.role == Role::Operator
                && clawgate_protocol::scopes::satisfied_by(&info.scopes, clawgate_protocol::scopes::ADMIN))
            .then(|| config.auth_mode.as_str().to_owned()),
        },
        auth: HelloAuth {
            role: admission.role.as_str().to_owned(),
            scopes: admission.scopes.clone(),
            method: Some(admission.credential.method().to_owned()),
            device_token: issued.as_ref().map(|t| t.token.clone()),
            issued_at_ms: issued.as_ref().map(|t| t.issued_at_ms),
        },
        policy: Policy {
            max_payload: super::payload_policy::max_payload(info.role, &info.scopes, gw.options.max_payload) as u64,
            max_buffered_bytes: gw.options.max_buffered_bytes as u64,
            tick_interval_ms: gw.options.tick_interval.as_millis() as u64,
        },
    }
}
