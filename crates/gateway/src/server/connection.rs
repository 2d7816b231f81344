//! One TCP connection: read the HTTP head, gather edge facts, refuse or
//! upgrade, then hand over to the handshake and the session.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::Role as WsRole;
use tokio_tungstenite::WebSocketStream;

use crate::admission::facts::owner_locality;
use crate::admission::{classify_upgrade, EdgeFacts, Locality, UpgradeRefusal};
use crate::config::{Config, Trust};

use super::accept::Accepted;
use super::budget::{Budgeted, UNLIMITED};
use super::handshake::{self, Handshake};
use super::http::{self, error_body, HeadError, RequestHead};
use super::outbox::outbox;
use super::wire::{self, EdgeFailure, Failure, Wire};
use super::{session, Gateway};

/// How long a connection closed for an oversized frame keeps reading (and
/// discarding) what its peer still sends.
const DRAIN_FOR: std::time::Duration = std::time::Duration::from_secs(2);

pub async fn handle(gw: Arc<Gateway>, accepted: Accepted) {
    let Accepted { mut stream, peer, local_port, trust, mut slot, peer_uid: uid_at_accept } = accepted;
    let opened = Instant::now();
    // The head has a deadline of its own, shorter than the handshake's: a
    // socket that sends nothing (or a head byte by byte) holds its place
    // for seconds, not for the whole handshake.
    let head_deadline = gw.options.head_timeout.min(gw.options.handshake_timeout);
    let (head, leftover) = match http::read_head(&mut stream, head_deadline).await {
        Ok(v) => v,
        Err(HeadError::TooLarge) => return refuse(&mut stream, EdgeFailure::HeadTooLarge).await,
        Err(HeadError::Malformed(m)) => return refuse(&mut stream, EdgeFailure::MalformedHead(m)).await,
        Err(HeadError::Closed | HeadError::TimedOut | HeadError::Io) => return,
    };

    // One connection is judged by one config, even when a reload lands meanwhile.
    let config = gw.config();
    let (edge, checked) = judge_edge(&head, peer, local_port, trust, &config);
    let locality = match checked {
        Ok(l) => l,
        Err(refusal) => {
            tracing::info!(peer = %peer, status = refusal.status(), code = refusal.code(), reason = refusal.message(), "upgrade refused");
            return refuse(&mut stream, EdgeFailure::Upgrade(refusal)).await;
        }
    };
    // Only a direct-local connection can reach a local-only rule, so only
    // its socket's owner is asked for; another user's program is remote
    // from here on, for every rule and for the failed-auth limiter alike.
    let peer_uid = match uid_at_accept {
        _ if !locality.is_direct_local() || !gw.peer_uids => None,
        Some(looked_up) => looked_up,
        None => lookup_peer_uid(&stream, peer),
    };
    let locality = owner_locality(locality, peer.ip(), peer_uid, &config);

    // Upstream mode: all but clawgate's own gateway WebSocket and /healthz
    // goes to the upstream (the rule: server/upstream_http.rs).
    if let Some(upstream) = gw.upstream.clone() {
        if super::upstream_http::goes_upstream(&head) {
            // Relayed HTTP is the upstream's to authenticate: it counts in
            // the total from here on, no longer as an unauthenticated socket.
            slot.established();
            super::upstream_http::relay(&gw, &upstream, head, leftover, stream, peer, edge, locality).await;
            return;
        }
    }

    if !head.is_websocket_upgrade() {
        let (status, body) = match head.path.as_str() {
            "/healthz" | "/health" => (200, serde_json::json!({ "ok": true, "version": super::VERSION })),
            "/" => (200, serde_json::json!({ "server": "clawgate", "version": super::VERSION, "websocket": true })),
            _ => (404, error_body("not_found", "no such route; connect with a WebSocket")),
        };
        http::respond_json(&mut stream, status, &body).await;
        return;
    }
    // At most a few upgraded unauthenticated sockets per client: the owner's
    // own apart from other local programs, a client behind a trusted proxy
    // by its forwarded address, IPv6 by /64.
    let Some(_preauth_slot) = gw.preauth.acquire(super::limits::PreauthKey::of(&locality, &edge)) else {
        tracing::info!(peer = %peer, "too many unauthenticated connections from this address");
        return refuse(&mut stream, EdgeFailure::PreauthBudget).await;
    };
    if let Err(bad) = http::accept_upgrade(&mut stream, &head).await {
        return refuse(&mut stream, EdgeFailure::BadUpgrade(bad)).await;
    }

    let pending = gw.registry.pending_guard();
    // The WebSocket layer enforces the post-auth limit; the byte budget
    // enforces the pre-auth one (frame limit plus room for framing).
    let (budgeted, budget) = Budgeted::new(stream, gw.options.max_preauth_payload + 1024);
    let ws_config = super::ws::ws_config(gw.options.max_payload);
    let mut ws = WebSocketStream::from_partially_read(budgeted, leftover, WsRole::Server, Some(ws_config)).await;

    // The outbox exists before hello-ok: the session is registered (and gets
    // broadcasts) from the moment its client can know it is admitted; what
    // arrives meanwhile is written after hello-ok, when the session starts.
    let (out, out_rx) = outbox(gw.options.max_buffered_bytes);
    // Boxed: the handshake's state is large and would otherwise stay part of
    // this task, and so of every idle session's memory.
    let handshake = Box::pin(handshake::run(&gw, &config, &mut ws, &edge, locality, peer_uid, opened, &out));
    let admitted = match handshake.await {
        Handshake::Admitted(a) => a,
        Handshake::Ended => return,
    };
    budget.store(UNLIMITED, std::sync::atomic::Ordering::Relaxed);
    slot.established();
    drop(pending);
    drop(_preauth_slot);
    // An idle session keeps only what it uses: the request head and the
    // edge facts were for admission.
    drop(edge);
    drop(head);

    if let session::Ended::Drain(mut ws) = session::run(&gw, admitted, ws, out, out_rx).await {
        drain(ws.get_mut()).await;
    }
}

/// The edge's facts of a request head on a listener, and its verdict:
/// the connection's locality, or why the upgrade is refused.
pub(crate) fn judge_edge(
    head: &RequestHead,
    peer: SocketAddr,
    local_port: u16,
    trust: Trust,
    config: &Config,
) -> (EdgeFacts, Result<Locality, UpgradeRefusal>) {
    let edge = EdgeFacts::new(peer, local_port, head.headers.clone()).on_listener(trust);
    let checked = crate::admission::ingress::check_request_target(&head.path, edge.host())
        .and_then(|()| classify_upgrade(&edge, config));
    (edge, checked)
}

/// Read and discard what the peer still sends, until it closes or
/// [`DRAIN_FOR`] passes: a socket closed with unread data is reset, and
/// the peer would lose the close frame it has not read yet.
async fn drain(stream: &mut Budgeted<TcpStream>) {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 8192];
    let _ =
        tokio::time::timeout(DRAIN_FOR, async { while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {} }).await;
}

/// The uid owning the peer's socket; `None` when it cannot be found (the
/// rules then fall back to the address and Host, as at start-up said).
fn lookup_peer_uid(stream: &TcpStream, peer: SocketAddr) -> Option<u32> {
    let local = stream.local_addr().ok()?;
    match crate::net::peer_uid::tcp_peer_uid(local, peer) {
        Ok(uid) => uid,
        Err(e) => {
            tracing::debug!(peer = %peer, error = %e, "peer uid lookup failed");
            None
        }
    }
}

/// Answer an edge failure over HTTP, through the one mapping to the wire.
pub(crate) async fn refuse<S: tokio::io::AsyncWrite + Unpin>(stream: &mut S, failure: EdgeFailure) {
    if let Wire::Http(answer) = wire::to_wire(&Failure::Edge(failure)) {
        http::respond_json(stream, answer.status, &answer.body).await;
    }
}
