//! Before authentication: send the challenge, read exactly one `connect`,
//! gather the facts, ask `decide`, and apply its answer.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use clawgate_protocol::text::printable;
use clawgate_protocol::{ConnectParams, ConnectParamsError, EventFrame, Frame, RequestFrame, ResponseFrame};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Error as WsError;

use crate::admission::decision::Role;
use crate::admission::{evaluate, may_read_store, Connect, Evaluated, Proof, StoreLookups};

use super::apply::{self, NotApplied};
use super::hello_ok::hello_ok;
use super::limits::LimitKey;
use crate::admission::ingress::client_ip;
use crate::admission::{Admission, AdmittedOn, ConnectFacts, Decision, EdgeFacts, Locality};
use crate::config::Config;
use crate::secrets::random_uuids;

use super::budget::is_budget_exceeded;
use super::outbox::{close_message, Outbox};
use super::registry::{NodeIdGuard, NodeInfo, ServiceSession, SessionGuard, SessionInfo};
use super::wire::{self, ApplyFailure, Failure, HandshakeError};
use super::ws::{incoming, Incoming, Ws};
use super::{now_ms, Gateway};

pub enum Handshake {
    Admitted(Admitted),
    Ended,
}

/// An admitted connection, ready for its session loop.
pub struct Admitted {
    pub info: Arc<SessionInfo>,
    /// Holds the node id while the session lives.
    pub node_id: Option<NodeIdGuard>,
    /// The session's place in the registry, released when it ends.
    pub registration: SessionGuard,
    /// Upstream mode: the session's upstream link, opened before hello-ok.
    pub relay: Option<Box<super::relay::PendingRelay>>,
}

/// How often one connect is decided before a store that keeps changing
/// under it is reported instead.
const MAX_APPLY_ATTEMPTS: u32 = 3;

/// Run admission on one connect. A connect that may need the store (a
/// device, a device or service token) is evaluated off the async workers;
/// any other is evaluated in place, as no lookup can happen (measured in
/// docs/benchmarks.md: the hop is a fifth of a token handshake's CPU).
/// `Err(None)`: the blocking task was lost (the gateway is going down).
async fn evaluate_connect(
    gw: &Arc<Gateway>,
    config: &Arc<Config>,
    connect: Connect<'_>,
) -> Result<Evaluated, Option<Failure>> {
    let now = connect.now_ms;
    let evaluated = if connect.locked_out_ms.is_none() && may_read_store(&connect.params) && !memory_only(gw, &connect)
    {
        let gw = gw.clone();
        let config = config.clone();
        let edge = connect.edge.clone();
        let (locality, params, proof, peer_uid, locked_out_ms) =
            (connect.locality, connect.params, owned_proof(&connect.proof), connect.peer_uid, connect.locked_out_ms);
        tokio::task::spawn_blocking(move || {
            let proof = match &proof {
                OwnedProof::Challenge(nonce) => Proof::Challenge { nonce },
                OwnedProof::Known(fact) => Proof::Known(fact.clone()),
            };
            let connect = Connect { edge: &edge, locality, params, proof, peer_uid, now_ms: now, locked_out_ms };
            evaluate(connect, &config, &mut StoreLookups { store: gw.store.as_ref(), now_ms: now })
        })
        .await
        .map_err(|_| None)?
    } else {
        evaluate(connect, config, &mut StoreLookups { store: gw.store.as_ref(), now_ms: now })
    };
    evaluated.map_err(|e| {
        tracing::error!(error = %e, code = e.code(), "pairing store failure during handshake");
        let hint = "the gateway could not read its pairing store; see the gateway log".into();
        Some(Failure::Apply(ApplyFailure::StoreUnavailable { hint, store_code: e.code() }))
    })
}

/// Does evaluating this connect read only what the store keeps in memory
/// (devices and their tokens, not service principals)? Then it runs in
/// place: the blocking pool's two wake-ups would cost more than the lookups.
fn memory_only(gw: &Gateway, connect: &Connect<'_>) -> bool {
    gw.devices_in_memory
        && !connect
            .params
            .auth
            .as_ref()
            .is_some_and(|a| [&a.token, &a.password].into_iter().flatten().any(|t| crate::store::is_service_token(t)))
}

/// A [`Proof`] that can cross to the blocking pool.
enum OwnedProof {
    Challenge(String),
    Known(crate::admission::facts::DeviceFact),
}

fn owned_proof(proof: &Proof<'_>) -> OwnedProof {
    match proof {
        Proof::Challenge { nonce } => OwnedProof::Challenge((*nonce).to_owned()),
        Proof::Known(fact) => OwnedProof::Known(fact.clone()),
    }
}

/// The handshake's frames go around tungstenite's write buffer, which would
/// otherwise keep hello-ok's size for the connection's life (server/ws.rs).
async fn send(ws: &mut Ws, frame: Frame) -> bool {
    super::ws::send_text_unbuffered(ws, &frame.to_json()).await.is_ok()
}

async fn reject(ws: &mut Ws, id: Option<&str>, failure: Failure) {
    let rejection = wire::rejection(&failure);
    if let (Some(error), Some(id)) = (rejection.error, id) {
        let _ = send(ws, Frame::Res(ResponseFrame::err(id, error))).await;
    }
    let _ = ws.send(close_message(rejection.close_code, &rejection.close_reason)).await;
    let _ = ws.close(None).await;
}

/// Wait for the first text frame, within the handshake deadline.
async fn first_text(
    ws: &mut Ws,
    gw: &Gateway,
    deadline: tokio::time::Instant,
) -> Result<String, Option<HandshakeError>> {
    let mut stopping = gw.stopping();
    loop {
        let next = tokio::select! {
            _ = stopping.wait_for(|s| *s) => return Err(Some(HandshakeError::ShuttingDown)),
            next = tokio::time::timeout_at(deadline, ws.next()) => match next {
                Err(_) => return Err(Some(HandshakeError::TimedOut)),
                Ok(None) => return Err(None),
                Ok(Some(next)) => next,
            },
        };
        let text = match next.map(incoming) {
            Ok(Incoming::Text(t)) => t,
            Ok(Incoming::NotUtf8) => return Err(Some(HandshakeError::UnparsableFrame)),
            Ok(Incoming::Control) => continue,
            Ok(Incoming::Close) => return Err(None),
            Err(WsError::Capacity(_)) => return Err(Some(HandshakeError::PreauthTooLarge)),
            Err(WsError::Io(e)) if is_budget_exceeded(&e) => return Err(Some(HandshakeError::PreauthTooLarge)),
            Err(_) => return Err(None),
        };
        if text.len() > gw.options.max_preauth_payload {
            return Err(Some(HandshakeError::PreauthTooLarge));
        }
        return Ok(text);
    }
}

#[allow(clippy::too_many_arguments)] // the edge's facts, gathered by the connection
pub async fn run(
    gw: &Arc<Gateway>,
    config: &Arc<Config>,
    ws: &mut Ws,
    edge: &EdgeFacts,
    locality: Locality,
    peer_uid: Option<u32>,
    opened: Instant,
    out: &Outbox,
) -> Handshake {
    let deadline = tokio::time::Instant::from_std(opened + gw.options.handshake_timeout);
    let [nonce, conn_id] = random_uuids::<2>();
    let mut payload = json!({ "nonce": nonce, "ts": now_ms(), "capabilities": [] });
    if let Some(identity) = &gw.options.identity {
        payload[clawgate_protocol::gateway_identity::PROOF_FIELD] = json!(identity.prove(&nonce));
    }
    let challenge = EventFrame::new("connect.challenge", Some(payload), None);
    if !send(ws, Frame::Event(challenge)).await {
        return Handshake::Ended;
    }

    let text = match first_text(ws, gw, deadline).await {
        Ok(t) => t,
        Err(None) => return Handshake::Ended,
        Err(Some(e)) => {
            tracing::info!(peer = %edge.peer, error = ?e, "handshake failed");
            reject(ws, None, Failure::Handshake(e)).await;
            return Handshake::Ended;
        }
    };
    let request = match RequestFrame::parse(&text) {
        Ok(r) => r,
        Err(e) => {
            let err = match e {
                clawgate_protocol::frame::FrameError::NotJson(_) => HandshakeError::UnparsableFrame,
                other => HandshakeError::InvalidFrame(other.reason().to_owned()),
            };
            let id = match &err {
                HandshakeError::InvalidFrame(_) => Some("invalid"),
                _ => None,
            };
            reject(ws, id, Failure::Handshake(err)).await;
            return Handshake::Ended;
        }
    };
    if request.method != "connect" {
        let e = HandshakeError::NotConnect { method: request.method.clone() };
        reject(ws, Some(&request.id), Failure::Handshake(e)).await;
        return Handshake::Ended;
    }
    let params = match ConnectParams::parse(request.params.as_ref()) {
        Ok(p) => p,
        Err(e) => {
            let e = match e {
                ConnectParamsError::Schema(m) => HandshakeError::InvalidConnectParams(m),
                ConnectParamsError::FieldInvalid { field, reason } => {
                    HandshakeError::ConnectFieldInvalid { field, reason }
                }
            };
            tracing::info!(peer = %edge.peer, error = ?e, "connect params refused");
            reject(ws, Some(&request.id), Failure::Handshake(e)).await;
            return Handshake::Ended;
        }
    };

    let now = now_ms();
    let client_ip: IpAddr = client_ip(&locality, edge);

    // A locked-out address is not even checked. A connect that may need the
    // store (a device, a device or service token) is evaluated off the async
    // workers; any other is evaluated in place, as no lookup can happen
    // (measured in docs/benchmarks.md: the hop is a fifth of a token
    // handshake's CPU).
    let limit = LimitKey::for_connection(gw, &locality, client_ip, edge, &params);
    let locked_out_ms = limit.locked(gw, now);
    let mut proof = Proof::Challenge { nonce: &nonce };
    let mut attempt = 0;
    // Decide, then apply. Applying refuses when the store moved on since the
    // decision read it (a revoke or an approval in between); then the same
    // connect is decided again, a few times at most.
    let (facts, admission, issued) = loop {
        attempt += 1;
        let connect = Connect {
            edge,
            locality,
            params: params.clone(),
            proof: proof.clone(),
            peer_uid,
            now_ms: now,
            locked_out_ms,
        };
        let evaluated = match evaluate_connect(gw, config, connect).await {
            Ok(v) => v,
            Err(Some(failure)) => {
                reject(ws, Some(&request.id), failure).await;
                return Handshake::Ended;
            }
            Err(None) => return Handshake::Ended,
        };
        let Evaluated { facts, view, decided } = evaluated;
        let applied = match &decided.decision {
            Decision::Admit(a) => apply::admit(gw, &facts, a, client_ip, view.as_ref()).await.map(Ok),
            Decision::PairingRequired(need) => {
                apply::pairing_required(gw, &facts, need, client_ip, view.as_ref()).await.map(Err)
            }
            Decision::Refuse(r) => Ok(Err(Failure::Refused(r.clone()))),
        };
        if matches!(applied, Err(NotApplied::Stale)) && attempt < MAX_APPLY_ATTEMPTS {
            tracing::debug!(conn_id = %conn_id, attempt, "the store changed under the decision; deciding again");
            proof = Proof::Known(facts.device.clone());
            continue;
        }
        log_decision(&conn_id, client_ip, &facts, &decided.decision);
        super::decision_record::record(gw, &conn_id, client_ip, &facts, &decided.decision, opened);
        limit.account(gw, &decided.decision, now).await;
        match (applied, decided.decision) {
            (Ok(Ok(issued)), Decision::Admit(a)) => break (facts, a, issued),
            (Ok(Err(failure)), _) | (Err(NotApplied::Failed(failure)), _) => {
                reject(ws, Some(&request.id), failure).await;
                return Handshake::Ended;
            }
            (Err(NotApplied::Stale), _) => {
                tracing::warn!(conn_id = %conn_id, "the store kept changing while admitting a connection");
                let hint = "the pairing store kept changing while this connection was admitted; connect again".into();
                reject(ws, Some(&request.id), Failure::Apply(ApplyFailure::StoreContended { hint })).await;
                return Handshake::Ended;
            }
            (Ok(Ok(_)), _) => return Handshake::Ended,
        }
    };

    let device_id = admission.device.as_ref().map(|d| d.device.device_id.clone());
    let token_issued_at_ms = match &admission.credential {
        crate::admission::Credential::DeviceToken { issued_at_ms, .. } => Some(*issued_at_ms),
        _ => None,
    };
    // A node gets its id now; a newcomer colliding with a connected node is refused.
    let node = node_info(&admission, &facts.params, &conn_id);
    let node_id = match &node {
        None => None,
        Some(n) => match gw.registry.reserve_node_id(&n.node_id) {
            Some(guard) => Some(guard),
            None => {
                let f = ApplyFailure::NodeIdInUse { node_id: n.node_id.clone() };
                reject(ws, Some(&request.id), Failure::Apply(f)).await;
                return Handshake::Ended;
            }
        },
    };
    // Upstream mode: the session's upstream link, before hello-ok; without it
    // there is no session.
    let mut relay = match &gw.upstream {
        None => None,
        Some(upstream) => {
            let node_id = node.as_ref().map(|n| n.node_id.as_str());
            match super::relay::open_for_admitted(gw, upstream, &facts, &admission, node_id, edge).await {
                Ok(pending) => {
                    gw.metrics.upstream_link(None);
                    Some(Box::new(pending))
                }
                Err(failure) => {
                    gw.metrics.upstream_link(Some(failure.code()));
                    tracing::warn!(
                        conn_id = %conn_id, code = failure.code(), key_to_fix = failure.key_to_fix(),
                        error = %failure, "admitted, but the upstream link could not be opened"
                    );
                    reject(ws, Some(&request.id), Failure::Apply(ApplyFailure::Upstream(failure))).await;
                    return Handshake::Ended;
                }
            }
        }
    };
    let info = Arc::new(SessionInfo {
        conn_id: conn_id.clone(),
        role: admission.role,
        scopes: admission.scopes.clone(),
        client: facts.params.client.clone(),
        client_ip,
        rule: admission.rule,
        connected_at_ms: now_ms(),
        device_id,
        token_issued_at_ms,
        node,
        service: match &admission.credential {
            crate::admission::Credential::ServiceToken { principal, principal_id, issued_at_ms, .. } => {
                Some(ServiceSession {
                    principal_id: principal_id.clone(),
                    name: principal.clone(),
                    issued_at_ms: *issued_at_ms,
                })
            }
            _ => None,
        },
    });
    let hello = hello_ok(gw, config, &info, &admission, issued);
    // Registered before hello-ok goes out, so no broadcast sent after the
    // client learns it is admitted can miss it.
    let principal = principal_key(&admission.principal);
    let admitted_on = AdmittedOn { edge: edge.clone(), facts };
    let registration =
        match gw.registry.insert(info.clone(), out.clone(), admitted_on, principal, &config.session_limits) {
            Ok(r) => r,
            Err(cap) => {
                tracing::info!(conn_id = %conn_id, client_ip = %client_ip, per = cap.per, limit = cap.limit,
                    "admitted, but the session cap is reached");
                reject(ws, Some(&request.id), Failure::Apply(ApplyFailure::SessionLimit(cap))).await;
                return Handshake::Ended;
            }
        };
    let payload = match relay.as_mut() {
        Some(relay) => relay.hello_ok(&hello),
        None => serde_json::to_value(&hello).unwrap_or_default(),
    };
    if !send(ws, Frame::Res(ResponseFrame::ok(&request.id, payload))).await {
        return Handshake::Ended;
    }
    Handshake::Admitted(Admitted { info, node_id, registration, relay })
}

/// The principal a session counts against for `clawgate.sessions.maxPerPrincipal`.
fn principal_key(p: &crate::admission::Principal) -> String {
    use crate::admission::Principal;
    match p {
        Principal::LocalOwner => "owner".into(),
        Principal::ScopelessSecretHolder => "secret-holder".into(),
        Principal::Device { device_id } => format!("device:{device_id}"),
        Principal::Service { principal_id, .. } => format!("service:{principal_id}"),
        Principal::ProxyUser { user } => format!("proxy-user:{user}"),
    }
}

/// One structured line per connection decision, with typed fields: strings
/// as strings (client-supplied ones through `printable`, so a client id
/// cannot forge a log line or drive a terminal), scopes as one comma-separated string;
/// secrets never appear.
fn log_decision(conn_id: &str, client_ip: IpAddr, facts: &ConnectFacts, decision: &Decision) {
    let p = &facts.params;
    let client_id = printable(&p.client.id);
    let client_mode = printable(&p.client.mode);
    let local = facts.locality.is_direct_local();
    match decision {
        Decision::Admit(a) => {
            let scopes = a.scopes.join(",");
            tracing::info!(
                target: "clawgate::admission",
                conn_id, client_ip = %client_ip, local, client_id = %client_id, client_mode = %client_mode,
                outcome = "admit", rule = a.rule.as_str(), role = a.role.as_str(), scopes = %printable(&scopes),
                credential = a.credential.kind_name(),
                "connection admitted"
            )
        }
        Decision::Refuse(r) => tracing::info!(
            target: "clawgate::admission",
            conn_id, client_ip = %client_ip, local, client_id = %client_id, client_mode = %client_mode,
            role = %printable(p.role()),
            outcome = "refuse", rule = r.rule.as_str(), code = r.kind.details_code(), reason = r.kind.reason(),
            "connection refused"
        ),
        Decision::PairingRequired(n) => {
            let scopes = n.scopes.join(",");
            tracing::info!(
                target: "clawgate::admission",
                conn_id, client_ip = %client_ip, local, client_id = %client_id, client_mode = %client_mode,
                role = n.role.as_str(),
                outcome = "pairing-required", rule = "pairing-required", reason = n.reason.as_str(),
                device_id = %n.device.device_id, scopes = %printable(&scopes),
                "device needs approval"
            )
        }
    }
}

/// The node id and declared surface of a node session. Device nodes are
/// known by their device id; device-less ones get an id in their own
/// namespace that can never look like a device id.
fn node_info(admission: &Admission, params: &ConnectParams, conn_id: &str) -> Option<NodeInfo> {
    if admission.role != Role::Node {
        return None;
    }
    let (node_id, deviceless) = match (&admission.device, &admission.principal) {
        (Some(d), _) => (d.device.device_id.clone(), false),
        (None, crate::admission::Principal::Service { name, .. }) => (format!("svc:{name}"), true),
        (None, _) => {
            let instance = params.client.instance_id.clone().unwrap_or_else(|| conn_id.to_owned());
            (format!("local:{}:{}", params.client.id, instance), true)
        }
    };
    Some(NodeInfo {
        node_id,
        deviceless,
        caps: params.caps.clone(),
        commands: params.commands.clone().unwrap_or_default(),
        permissions: params.permissions.clone().unwrap_or_default(),
    })
}
