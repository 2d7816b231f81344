//! Reloading the configuration (SIGHUP in `clawgate gateway run`): a valid
//! new config replaces the old one at once, and every live session is
//! judged again by the same decision, as after a store change
//! (`watch.rs`), against the new config: a session the decision no longer
//! admits as it stands (refused, needing pairing, another role, fewer
//! scopes) is closed with 4001 and the rule that now refuses it.
//!
//! What is bound to sockets cannot change in place: the listeners
//! (`bind`, `port`, `listeners`), the admin listener, the upstream and the
//! runtime serving the listeners. A new config that changes one of them is
//! refused whole, naming the key, and the old config stays: half a reload
//! would leave the gateway judging by one file while listening as another
//! says. Those need a restart.

use std::sync::Arc;

use crate::admission::decision::{DeviceAction, Role};
use crate::admission::{Decision, StoreLookups};
use crate::config::Config;

use super::apply::store_op;
use super::registry::SessionInfo;
use super::wire::CLOSE_INVALIDATED;
use super::{now_ms, Gateway};

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reloaded {
    /// Sessions judged again.
    pub checked: usize,
    /// Sessions closed because the new config no longer admits them.
    pub closed: usize,
}

/// Why a new config was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key} changed: it takes effect on a restart only (the config in force is kept)")]
pub struct NeedsRestart {
    /// The config key that changed.
    pub key: &'static str,
}

impl NeedsRestart {
    pub fn code(&self) -> &'static str {
        "RELOAD_NEEDS_RESTART"
    }
}

/// The first socket-bound key that differs between `old` and `new`.
fn socket_bound_change(old: &Config, new: &Config) -> Option<&'static str> {
    if old.bind != new.bind {
        return Some("gateway.bind");
    }
    if old.port != new.port {
        return Some("gateway.port");
    }
    if old.listeners != new.listeners {
        return Some("gateway.listeners");
    }
    if old.admin != new.admin {
        return Some("gateway.admin");
    }
    if old.store_url != new.store_url {
        return Some("gateway.store");
    }
    if old.cluster != new.cluster {
        return Some("gateway.cluster");
    }
    if old.runtime != new.runtime {
        return Some("gateway.runtime");
    }
    let upstream = |c: &Config| {
        c.upstream
            .as_ref()
            .map(|u| (u.url.clone(), u.secret.kind, u.secret.value.digest().clone(), u.forward_client_address))
    };
    if upstream(old) != upstream(new) {
        return Some("gateway.upstream");
    }
    None
}

/// Put `new` in force and judge every live session again.
pub async fn apply(gw: &Arc<Gateway>, new: Config) -> Result<Reloaded, NeedsRestart> {
    if let Some(key) = socket_bound_change(&gw.config(), &new) {
        return Err(NeedsRestart { key });
    }
    gw.swap_config(new);
    let sessions = gw.registry.sessions_with_admission();
    let checked = sessions.len();
    let mut closed = 0;
    for (session, admitted_on) in sessions {
        let config = gw.config();
        let now = now_ms();
        let judged =
            store_op(gw, move |store| admitted_on.reevaluate(&config, now, &mut StoreLookups { store, now_ms: now }))
                .await;
        // A store that cannot be read says nothing about the session: keep it
        // (the store watcher judges it again once the store answers).
        let Ok(evaluated) = judged else { continue };
        let Some(reason) = refusal(&session, &evaluated.decided.decision) else { continue };
        let conn = session.conn_id.clone();
        if gw.registry.kill_where(|s| s.conn_id == conn, CLOSE_INVALIDATED, &reason) > 0 {
            closed += 1;
            tracing::info!(
                conn_id = %conn,
                device_id = ?session.device_id,
                rule = evaluated.decided.decision.rule().as_str(),
                reason = %reason,
                "session closed after a config reload"
            );
        }
    }
    Ok(Reloaded { checked, closed })
}

/// Does the decision, made again under the new config, still admit the
/// session as it is (same role, at least its scopes, nothing to pair)? If
/// not, the close reason, naming the rule that now decides.
fn refusal(session: &SessionInfo, decision: &Decision) -> Option<String> {
    let still = match decision {
        Decision::Admit(a) => {
            a.role == session.role
                && session.scopes.iter().all(|s| a.scopes.contains(s))
                && a.device.as_ref().is_none_or(|d| matches!(d.action, DeviceAction::Paired { .. }))
        }
        _ => false,
    };
    if still {
        return None;
    }
    let rule = decision.rule().as_str();
    Some(match decision {
        Decision::Refuse(r) => {
            format!("client invalidated: config reloaded, refused by rule {rule} ({})", r.kind.reason())
        }
        Decision::PairingRequired(_) => "client invalidated: config reloaded, pairing required".to_owned(),
        Decision::Admit(a) if a.role != session.role && session.role == Role::Node => {
            format!("client invalidated: config reloaded, rule {rule} no longer admits a node")
        }
        Decision::Admit(_) => format!("client invalidated: config reloaded, rule {rule} grants less"),
    })
}
