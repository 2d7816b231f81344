//! The admin listener (`gateway.admin.bind`, `--admin`): a separate
//! plain-HTTP port for supervisors, apart from the gateway's own so that
//! exposing one never exposes the other. It serves
//!
//! - `/metrics`: Prometheus text (see `metrics.rs`),
//! - `/healthz`: 200 while the process serves at all,
//! - `/readyz`: 200 when the pairing store can be read and, in upstream
//!   mode, the upstream gateway answers; 503 with the reason otherwise.
//!   The cluster bus is reported but never makes an instance unready: an
//!   instance without NATS still serves its own sessions (docs/cluster.md).
//!
//! It answers only GET and HEAD and reveals no secret and no client data.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::apply::store_op;
use super::metrics::{Snapshot, CONTENT_TYPE as METRICS_CONTENT_TYPE};
use super::{now_ms, Gateway};

/// How long `/readyz` waits for the upstream's challenge.
const UPSTREAM_READY_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one admin connection may take to send its request.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Serve the admin routes on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, gw: Arc<Gateway>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "admin listener: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let gw = gw.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let gw = gw.clone();
                async move { Ok::<_, Infallible>(answer(&gw, &req).await) }
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(HEADER_TIMEOUT);
            let _ = builder.serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

async fn answer(gw: &Arc<Gateway>, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "GET or HEAD only\n".into());
        response.headers_mut().insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    match req.uri().path() {
        "/metrics" => text(StatusCode::OK, METRICS_CONTENT_TYPE, metrics(gw).await),
        "/healthz" => text(StatusCode::OK, "text/plain", "ok\n".into()),
        "/readyz" => readiness(gw).await,
        _ => text(StatusCode::NOT_FOUND, "text/plain", "not found: /metrics, /healthz, /readyz\n".into()),
    }
}

async fn metrics(gw: &Arc<Gateway>) -> String {
    let now = now_ms();
    let counts = gw.registry.counts();
    let pending = store_op(gw, move |s| s.open_requests(now)).await.ok().map(|r| r.len());
    let snapshot = Snapshot {
        operators: counts.operators,
        nodes: counts.nodes,
        handshaking: counts.handshaking,
        pending_requests: pending,
        locked_out_addresses: gw.auth_limiter.locked_count(now),
        upstream_links_open: gw.upstream.as_ref().map(|u| u.links_open()),
        alive_tasks: gw.alive_tasks(),
        connections: gw.connections.figures(),
        cluster_connected: gw.cluster.as_ref().map(|c| c.is_connected()),
    };
    gw.metrics.render(&snapshot)
}

async fn readiness(gw: &Arc<Gateway>) -> Response<Full<Bytes>> {
    let store = match store_op(gw, |s| s.data_version()).await {
        Ok(_) => Ok(()),
        Err(e) => Err(format!("the pairing store cannot be read ({})", e.code())),
    };
    let upstream = match &gw.upstream {
        None => None,
        Some(upstream) => {
            use crate::upstream::probe::{probe, ProbeOutcome};
            Some(match probe(upstream.config(), UPSTREAM_READY_TIMEOUT).await {
                ProbeOutcome::Answered => Ok(()),
                ProbeOutcome::NotAnswering(why) => Err(format!("the upstream gateway is not answering: {why}")),
            })
        }
    };
    let problems: Vec<&String> =
        [Some(&store), upstream.as_ref()].into_iter().flatten().filter_map(|r| r.as_ref().err()).collect();
    let body = serde_json::json!({
        "ready": problems.is_empty(),
        "store": if store.is_ok() { "ok" } else { "unavailable" },
        "upstream": upstream.as_ref().map(|u| if u.is_ok() { "ok" } else { "unavailable" }),
        "cluster": gw.cluster.as_ref().map(|c| if c.is_connected() { "connected" } else { "disconnected" }),
        "problems": problems,
    });
    let status = if problems.is_empty() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    text(status, "application/json", format!("{body}\n"))
}
