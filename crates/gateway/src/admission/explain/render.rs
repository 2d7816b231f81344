//! An explanation as text for a terminal or as JSON: the edge, the facts,
//! the trace of rules considered and the outcome.

use std::fmt::Write as _;

use serde_json::{json, Value};

use super::super::credential::CredentialCheck;
use super::super::decision::{Decided, Decision, DeviceAction, Principal, RefusalKind};
use super::super::facts::Locality;
use super::Explanation;

/// `admit`, `pairing-required`, or `refuse`.
pub fn outcome(e: &Explanation) -> &'static str {
    match &e.decided {
        Some(Decided { decision: Decision::Admit(_), .. }) => "admit",
        Some(Decided { decision: Decision::PairingRequired(_), .. }) => "pairing-required",
        _ => "refuse",
    }
}

/// What the peer uid does to a direct-local edge.
fn peer_uid_text(e: &Explanation) -> Option<String> {
    let (uid, owner) = e.peer_uid?;
    Some(match (&e.edge, owner) {
        (Ok(Locality::DirectLocal), true) => format!("{uid}, in gateway.auth.localOwnerUids: the owner's program"),
        (Ok(Locality::DirectLocal), false) => format!(
            "{uid}, not in gateway.auth.localOwnerUids: another user's program, so not direct-local \
             (no local-owner, no silent pairing)"
        ),
        _ => format!("{uid} (looked up only for a direct-local edge)"),
    })
}

fn locality_text(l: &Locality) -> String {
    match l {
        Locality::DirectLocal => "direct-local (loopback socket, no proxy evidence, loopback Host)".into(),
        Locality::Remote { client_ip, via_proxy: true } => format!("remote, client {client_ip} via a trusted proxy"),
        Locality::Remote { client_ip, via_proxy: false } => format!("remote, client {client_ip}"),
    }
}

fn credential_text(c: &CredentialCheck) -> String {
    match c {
        CredentialCheck::Verified(c) => format!("{} (verified)", c.kind_name()),
        CredentialCheck::Absent => "none presented".into(),
        CredentialCheck::Failed(r) => format!("failed: {}", r.as_str()),
        CredentialCheck::RateLimited { retry_after_ms } => format!("not checked: rate limited for {retry_after_ms} ms"),
    }
}

fn credential_json(c: &CredentialCheck) -> Value {
    match c {
        CredentialCheck::Verified(c) => json!({ "status": "verified", "kind": c.kind_name() }),
        CredentialCheck::Absent => json!({ "status": "absent" }),
        CredentialCheck::Failed(r) => json!({ "status": "failed", "authReason": r.as_str() }),
        CredentialCheck::RateLimited { retry_after_ms } => {
            json!({ "status": "rate-limited", "retryAfterMs": retry_after_ms })
        }
    }
}

fn principal_text(p: &Principal) -> String {
    match p {
        Principal::LocalOwner => "local owner".into(),
        Principal::ScopelessSecretHolder => "shared-secret holder without scopes".into(),
        Principal::Device { device_id } => format!("device {device_id}"),
        Principal::Service { name, principal_id } => format!("service principal {name} ({principal_id})"),
        Principal::ProxyUser { user } => format!("user {user}, vouched for by the trusted proxy"),
    }
}

fn device_action_text(a: &DeviceAction) -> String {
    match a {
        DeviceAction::Paired { issue_token: true } => "paired; a device token is issued".into(),
        DeviceAction::Paired { issue_token: false } => "paired; keeps its device token".into(),
        DeviceAction::PairSilently { reason } => {
            format!("paired silently now ({}); a device token is issued", reason.as_str())
        }
        DeviceAction::ProxyAutoApprove { reason, user } => {
            format!("approved now for user {user} ({}, proxy-auto); a device token is issued", reason.as_str())
        }
    }
}

/// The recommended next step of an auth refusal, as the wire reports it.
fn next_step(kind: &RefusalKind) -> Option<&'static str> {
    match kind {
        RefusalKind::Auth { can_retry_with_device_token: true, .. } => Some("retry_with_device_token"),
        RefusalKind::Auth { reason, .. } => Some(reason.next_step()),
        RefusalKind::RateLimited { .. } => Some("wait_then_retry"),
        _ => None,
    }
}

/// The edge step, first in every trace.
fn edge_note(e: &Explanation) -> (bool, String) {
    match &e.edge {
        Ok(l) => (false, locality_text(l)),
        Err(r) => (true, format!("HTTP {} {}: {}", r.status(), r.code(), r.message())),
    }
}

/// The explanation as text for a terminal.
pub fn render_text(e: &Explanation) -> String {
    let mut out = String::new();
    let p = &e.params;
    let scopes = |s: &[String]| if s.is_empty() { "(none)".to_owned() } else { s.join(", ") };
    let _ = writeln!(
        out,
        "connection:  peer {}, client {}/{}, role {}, scopes {}",
        e.peer.ip(),
        p.client.id,
        p.client.mode,
        p.role(),
        scopes(p.scopes())
    );
    for (name, value) in &e.headers {
        let _ = writeln!(out, "  header     {name}: {value:?}");
    }
    let _ = writeln!(out, "listener:    {}", e.listener.as_str());
    match &e.edge {
        Ok(l) => {
            let _ = writeln!(out, "edge:        {}", locality_text(l));
            if let Some(note) = peer_uid_text(e) {
                let _ = writeln!(out, "peer uid:    {note}");
            }
        }
        Err(r) => {
            let _ = writeln!(out, "edge:        refused at the upgrade, HTTP {} {}", r.status(), r.code());
            let _ = writeln!(out, "outcome:     refuse (before any admission rule)");
            let _ = writeln!(out, "rule:        edge");
            let _ = writeln!(out, "code:        {}", r.code());
            let _ = writeln!(out, "hint:        {}", r.message());
            return out;
        }
    }
    if let Some(c) = &e.credential {
        let _ = writeln!(out, "credential:  {}", credential_text(c));
    }
    if let Some(user) = &e.proxy_user {
        let _ = writeln!(out, "proxy user:  {user}");
    }
    if let Some(user) = &e.bound_user {
        let _ = writeln!(out, "device:      paired to proxy user {user}");
    }
    let Some(decided) = &e.decided else { return out };
    let _ = writeln!(out, "outcome:     {}", outcome(e));
    let _ = writeln!(out, "rule:        {}", decided.decision.rule());
    match &decided.decision {
        Decision::Admit(a) => {
            let _ = writeln!(out, "principal:   {}", principal_text(&a.principal));
            let _ = writeln!(out, "role:        {}", a.role.as_str());
            let _ = writeln!(out, "scopes:      {}", scopes(&a.scopes));
            let _ = writeln!(out, "method:      {}", a.credential.method());
            if let Some(d) = &a.device {
                let _ = writeln!(out, "device:      {}", device_action_text(&d.action));
            }
        }
        Decision::PairingRequired(n) => {
            let _ = writeln!(out, "code:        PAIRING_REQUIRED");
            let _ = writeln!(out, "reason:      {} ({})", n.reason.as_str(), n.reason.requirement());
            let _ = writeln!(out, "device:      {}", n.device.device_id);
            let _ = writeln!(out, "hint:        {}", n.hint);
        }
        Decision::Refuse(r) => {
            let _ = writeln!(out, "code:        {}", r.kind.details_code());
            let _ = writeln!(out, "reason:      {}", r.kind.reason());
            if let Some(step) = next_step(&r.kind) {
                let _ = writeln!(out, "next step:   {step}");
            }
            let _ = writeln!(out, "hint:        {}", r.hint);
        }
    }
    let _ = writeln!(out, "trace:");
    let (_, edge) = edge_note(e);
    let _ = writeln!(out, "    {:<22} {:<14} {edge}", "edge", "ok");
    for step in &decided.trace {
        let mark = if step.decided { ">" } else { " " };
        let verdict = if step.decided { "DECIDED" } else { "not applicable" };
        let _ = writeln!(out, "  {mark} {:<22} {verdict:<14} {}", step.rule.as_str(), step.note);
    }
    out
}

/// The explanation as JSON (`--json`).
pub fn render_json(e: &Explanation) -> Value {
    let p = &e.params;
    let mut v = json!({
        "connection": {
            "peer": e.peer.ip().to_string(),
            "headers": e.headers.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
            "clientId": p.client.id,
            "clientMode": p.client.mode,
            "role": p.role(),
            "scopes": p.scopes(),
            "device": p.device.as_ref().map(|d| d.id.clone()),
        },
        "outcome": outcome(e),
    });
    let (edge_decided, edge_text) = edge_note(e);
    let mut trace = vec![json!({ "rule": "edge", "decided": edge_decided, "note": edge_text })];
    match &e.edge {
        Err(r) => {
            v["stage"] = json!("edge");
            v["rule"] = json!("edge");
            v["httpStatus"] = json!(r.status());
            v["code"] = json!(r.code());
            v["hint"] = json!(r.message());
        }
        Ok(l) => {
            v["stage"] = json!("decide");
            if let Some((uid, owner)) = e.peer_uid {
                v["peerUid"] = json!({ "uid": uid, "owner": owner });
            }
            v["locality"] = match l {
                Locality::DirectLocal => json!({ "kind": "direct-local" }),
                Locality::Remote { client_ip, via_proxy } => {
                    json!({ "kind": "remote", "clientIp": client_ip.to_string(), "viaProxy": via_proxy })
                }
            };
        }
    }
    v["listener"] = json!(e.listener.as_str());
    if let Some(c) = &e.credential {
        v["credential"] = credential_json(c);
    }
    if let Some(user) = &e.proxy_user {
        v["proxyUser"] = json!(user);
    }
    if let Some(user) = &e.bound_user {
        v["deviceProxyUser"] = json!(user);
    }
    if let Some(decided) = &e.decided {
        v["rule"] = json!(decided.decision.rule().as_str());
        match &decided.decision {
            Decision::Admit(a) => {
                v["role"] = json!(a.role.as_str());
                v["scopes"] = json!(a.scopes);
                v["method"] = json!(a.credential.method());
                v["principal"] = json!(principal_text(&a.principal));
                if let Some(d) = &a.device {
                    v["deviceAction"] = json!(device_action_text(&d.action));
                }
            }
            Decision::PairingRequired(n) => {
                v["code"] = json!("PAIRING_REQUIRED");
                v["reason"] = json!(n.reason.as_str());
                v["hint"] = json!(n.hint);
                v["approvedScopes"] = json!(n.approved_scopes);
            }
            Decision::Refuse(r) => {
                v["code"] = json!(r.kind.details_code());
                v["reason"] = json!(r.kind.reason());
                v["hint"] = json!(r.hint);
                if let Some(step) = next_step(&r.kind) {
                    v["recommendedNextStep"] = json!(step);
                }
            }
        }
        trace.extend(
            decided.trace.iter().map(|s| json!({ "rule": s.rule.as_str(), "decided": s.decided, "note": s.note })),
        );
    }
    v["trace"] = Value::Array(trace);
    v
}
