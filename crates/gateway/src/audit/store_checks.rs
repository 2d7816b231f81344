//! Checks of the store: devices and service principals.

use clawgate_protocol::scopes::{ADMIN, PAIRING};

use super::{Finding, Severity, StoreSnapshot, DAY_MS, STALE_DAYS};
use crate::config::Config;
use crate::store::{ApprovedVia, Role};

pub(super) fn check(_config: &Config, store: &StoreSnapshot, now_ms: u64) -> Vec<Finding> {
    let stale = STALE_DAYS * DAY_MS;
    let mut out = Vec::new();
    for d in &store.devices {
        let key = format!("device {}", d.device_id);
        let silent = matches!(d.approved_via, ApprovedVia::Silent | ApprovedVia::ProxyAuto);
        if silent && d.approved_scopes.iter().any(|s| s == ADMIN) {
            out.push(Finding::new(
                "devices.silent_admin",
                Severity::Warn,
                key.clone(),
                format!("an admin device approved without anyone approving it ({})", d.approved_via),
                format!("review it; if unknown: clawgate devices remove {}", d.device_id),
            ));
        }
        let last = d.last_seen_at_ms.unwrap_or(d.approved_at_ms);
        if now_ms.saturating_sub(last) > stale {
            out.push(Finding::new(
                "devices.unused",
                Severity::Warn,
                key,
                format!("paired but not seen for more than {STALE_DAYS} days"),
                format!("remove it if it is gone: clawgate devices remove {}", d.device_id),
            ));
        }
    }
    for s in store.services.iter().filter(|s| !s.is_revoked()) {
        let key = format!("service {}", s.name);
        if s.rotated_at_ms.is_none() && now_ms.saturating_sub(s.created_at_ms) > stale {
            out.push(Finding::new(
                "services.never_rotated",
                Severity::Warn,
                key.clone(),
                format!("its token was issued more than {STALE_DAYS} days ago and never rotated"),
                format!("clawgate services rotate {}", s.name),
            ));
        }
        let last = s.last_used_at_ms.unwrap_or(s.issued_at_ms());
        if now_ms.saturating_sub(last) > stale {
            out.push(Finding::new(
                "services.unused",
                Severity::Warn,
                key.clone(),
                format!("not used for more than {STALE_DAYS} days"),
                format!("clawgate services revoke {}", s.name),
            ));
        }
        if s.role == Role::Operator && s.scopes.iter().any(|x| x == ADMIN || x == PAIRING) {
            out.push(Finding::new(
                "services.overbroad",
                Severity::Info,
                key,
                "a service token with admin or pairing scope: whoever holds it manages the gateway",
                format!(
                    "give it only the scopes it uses (clawgate services revoke {0}; clawgate services add {0} …)",
                    s.name
                ),
            ));
        }
    }
    out
}
