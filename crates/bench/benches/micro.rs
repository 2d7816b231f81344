//! Micro-benchmarks of the per-connection hot paths, so a regression shows up
//! before the end-to-end figures move:
//!
//! - admission: `admission::evaluate` (the server's pipeline, over an
//!   in-memory store) for a local token connect and for a paired device;
//! - device proof: `device_proof::verify` of a v3 signature (and signing it);
//! - device store: what a device-token reconnect asks of the pairing store
//!   (the device's view, its token checked, the admission applied) on a
//!   SQLite file, read from the file or from the store's in-memory copy;
//! - peer uid: the sock_diag lookup of a loopback peer's owner, which a
//!   direct-local handshake adds (Linux);
//! - frames: parsing a `connect` request and a `health` request, parsing what
//!   a client reads (hello-ok, an event), serialising responses and events.
//!
//! Run with `cargo bench -p clawgate-bench --bench micro` (all), or add
//! `-- decide` for one group.
//!
//! `cargo test` runs each once (criterion's test mode), which keeps them compiling.

use std::hint::black_box;

use clawgate::admission::decision::Role;
use clawgate::admission::device_proof;
use clawgate::admission::facts::DeviceFact;
use clawgate::admission::{classify_upgrade, evaluate, Connect, EdgeFacts, Lookups, Proof};
use clawgate::config::{AuthMode, Config};
use clawgate::store::{
    AdmissionWrite, ApprovedVia, DeviceView, NewRequest, PairedDevice, PairingStore, ServiceTokenCheck, SqliteStore,
    StoreError, TokenCheck, TokenInfo,
};
use clawgate_client::{ConnectOptions, DeviceIdentity};
use clawgate_protocol::{ConnectParams, EventFrame, Frame, RequestFrame, ResponseFrame};
use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::{json, Value};

const TOKEN: &str = "bench-token-0123456789abcdef0123456789";
const NONCE: &str = "5d1c7a0e-9f3b-4c56-8d2e-0a1b2c3d4e5f";
const NOW_MS: u64 = 1_790_000_000_000;
const DEVICE_TOKEN: &str = "device-token-value-0123456789";

fn params(options: &ConnectOptions) -> ConnectParams {
    options.connect_params()
}

fn backend() -> ConnectOptions {
    ConnectOptions::new("ws://127.0.0.1:1")
        .client("gateway-client", "backend")
        .role("operator")
        .scopes(&["operator.read"])
}

/// Connect params proving `identity` over [`NONCE`], with a device token.
fn device_params(identity: &DeviceIdentity) -> ConnectParams {
    let mut p = params(&backend().device_token(DEVICE_TOKEN));
    p.device = Some(identity.device_params(&p, NONCE, NOW_MS));
    p
}

fn paired_view(identity: &DeviceIdentity) -> DeviceView {
    DeviceView {
        generation: 1,
        device: Some(PairedDevice {
            device_id: identity.device_id(),
            public_key: identity.public_key_b64url(),
            display_name: None,
            label: None,
            platform: Some("linux".into()),
            device_family: None,
            client_id: Some("cli".into()),
            client_mode: Some("cli".into()),
            roles: vec![Role::Operator],
            approved_scopes: vec!["operator.read".into()],
            approved_via: ApprovedVia::Owner,
            created_at_ms: 1,
            approved_at_ms: 1,
            last_seen_at_ms: None,
            remote_ip: None,
            proxy_user: None,
        }),
        tokens: vec![TokenInfo {
            device_id: identity.device_id(),
            role: Role::Operator,
            scopes: vec!["operator.read".into()],
            created_at_ms: 1,
            rotated_at_ms: None,
            revoked_at_ms: None,
            last_used_at_ms: None,
        }],
    }
}

/// The bench's store: one paired device and the live token of its role.
struct BenchStore(Option<DeviceView>);

impl Lookups for BenchStore {
    fn device_token(&mut self, _: &str, role: Role, presented: &str) -> Result<TokenCheck, StoreError> {
        Ok(match &self.0 {
            Some(v) if presented == DEVICE_TOKEN && v.tokens.iter().any(|t| t.role == role) => {
                TokenCheck::Valid { scopes: vec!["operator.read".into()], issued_at_ms: 1 }
            }
            _ => TokenCheck::Mismatch,
        })
    }

    fn service_token(&mut self, _: &str) -> Result<ServiceTokenCheck, StoreError> {
        Ok(ServiceTokenCheck::Unknown)
    }

    fn device_view(&mut self, _: &str) -> Result<DeviceView, StoreError> {
        Ok(self.0.clone().unwrap_or(DeviceView { generation: 0, device: None, tokens: Vec::new() }))
    }
}

fn admission(c: &mut Criterion) {
    let config = Config::new(AuthMode::Token, Some(TOKEN), None);
    let edge =
        EdgeFacts::new("127.0.0.1:50000".parse().unwrap(), 18789, vec![("Host".into(), "localhost:18789".into())]);
    let locality = classify_upgrade(&edge, &config).expect("a local upgrade");
    // The group keeps its old name so figures stay comparable; it measures
    // the whole pipeline (credential check, store lookups, rules, trace).
    let mut g = c.benchmark_group("decide");

    let token_params = params(&backend().token(TOKEN));
    let mut empty = BenchStore(None);
    g.bench_function("local token, no device", |b| {
        b.iter(|| {
            let connect = Connect {
                edge: &edge,
                locality,
                params: black_box(&token_params).clone(),
                proof: Proof::Known(DeviceFact::None),
                peer_uid: None,
                now_ms: NOW_MS,
                locked_out_ms: None,
            };
            evaluate(connect, &config, &mut empty).unwrap()
        })
    });

    let identity = DeviceIdentity::from_seed([7; 32]);
    let p = device_params(&identity);
    // The proof is measured on its own below; here it is taken as verified.
    let verified = device_proof::verify(&p, NONCE, NOW_MS).expect("the bench's own proof verifies");
    let mut paired = BenchStore(Some(paired_view(&identity)));
    g.bench_function("paired device, device token", |b| {
        b.iter(|| {
            let connect = Connect {
                edge: &edge,
                locality,
                params: black_box(&p).clone(),
                proof: Proof::Known(DeviceFact::Proven(verified.clone())),
                peer_uid: None,
                now_ms: NOW_MS,
                locked_out_ms: None,
            };
            evaluate(connect, &config, &mut paired).unwrap()
        })
    });
    g.finish();
}

fn device_proofs(c: &mut Criterion) {
    let identity = DeviceIdentity::from_seed([9; 32]);
    let p = device_params(&identity);
    let mut g = c.benchmark_group("device proof");
    g.bench_function("verify v3", |b| b.iter(|| device_proof::verify(black_box(&p), NONCE, NOW_MS).unwrap()));
    let unsigned = params(&backend().device_token(DEVICE_TOKEN));
    g.bench_function("sign v3 (client side)", |b| {
        b.iter(|| identity.device_params(black_box(&unsigned), NONCE, NOW_MS))
    });
    g.finish();
}

fn frames(c: &mut Criterion) {
    let identity = DeviceIdentity::from_seed([11; 32]);
    let connect = Frame::Req(RequestFrame::new(
        "connect-1",
        "connect",
        Some(serde_json::to_value(device_params(&identity)).unwrap()),
    ))
    .to_json();
    let health = Frame::Req(RequestFrame::new("r42", "health", None)).to_json();
    let health_payload = json!({
        "ok": true, "ts": NOW_MS, "durationMs": 0,
        "sessions": { "count": 1000, "operators": 1000, "nodes": 0 },
    });
    let presence: Value = json!({
        "presence": (0..8).map(|i| json!({
            "host": format!("host-{i}"), "version": "1.0.0", "platform": "linux", "mode": "ui",
            "reason": "connect", "tags": ["openclaw-macos"], "ts": NOW_MS, "roles": ["operator"],
            "scopes": ["operator.read"], "instanceId": format!("instance-{i}"),
        })).collect::<Vec<_>>(),
        "stateVersion": 9,
    });

    let mut g = c.benchmark_group("frames");
    g.bench_function("parse connect request", |b| b.iter(|| RequestFrame::parse(black_box(&connect)).unwrap()));
    g.bench_function("parse + check ConnectParams", |b| {
        let req = RequestFrame::parse(&connect).unwrap();
        b.iter(|| ConnectParams::parse(black_box(req.params.as_ref())).unwrap())
    });
    g.bench_function("parse health request", |b| b.iter(|| RequestFrame::parse(black_box(&health)).unwrap()));
    let res = Frame::Res(ResponseFrame::ok("r42", health_payload.clone()));
    g.bench_function("serialize health response", |b| b.iter(|| black_box(&res).to_json()));
    // A broadcast serialises its payload once, then frames it per recipient.
    g.bench_function("serialize presence payload", |b| b.iter(|| black_box(&presence).to_string()));
    let event = Frame::Event(EventFrame::new("presence", Some(presence.clone()), Some(1)));
    let event_text = event.to_json();
    g.bench_function("parse presence event (client side)", |b| {
        b.iter(|| Frame::parse(black_box(&event_text)).unwrap())
    });
    g.finish();
}

/// What a direct-local handshake adds on Linux: one sock_diag round trip
/// asking for the owner of the peer's socket.
fn peer_uid(c: &mut Criterion) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("loopback listener");
    let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).expect("loopback connect");
    let (server, peer) = listener.accept().expect("accept");
    let local = server.local_addr().unwrap();
    assert!(clawgate::net::peer_uid::tcp_peer_uid(local, peer).unwrap().is_some(), "sock_diag answers");
    c.bench_function("peer uid lookup (sock_diag)", |b| {
        b.iter(|| clawgate::net::peer_uid::tcp_peer_uid(black_box(local), black_box(peer)).unwrap())
    });
    drop(client);
}

/// A device-token reconnect's store work, as the handshake does it: the
/// view, the token check, the admission applied (which records last seen).
/// From the file, each of the last two is a synchronous transaction; from
/// memory, neither touches the file (the times are batched).
fn device_store(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("clawgate-bench-store-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut g = c.benchmark_group("device store");
    for (name, in_memory) in [("reconnect, from the file", false), ("reconnect, from memory", true)] {
        let path = dir.join(format!("{in_memory}.sqlite"));
        let _ = std::fs::remove_file(&path);
        let store = SqliteStore::open(&path).expect("store");
        if in_memory {
            assert!(store.keep_devices_in_memory().unwrap());
        }
        let identity = DeviceIdentity::from_seed([9; 32]);
        let id = identity.device_id();
        let new = NewRequest::new(id.clone(), identity.public_key_b64url(), Role::Operator, &["operator.read"]);
        store.pair_silently(&new, NOW_MS).unwrap();
        let token = store.issue_token(&id, Role::Operator, &["operator.read".to_owned()], NOW_MS).unwrap();
        let write =
            AdmissionWrite::Paired { device_id: id.clone(), role: Role::Operator, remote_ip: None, issue_token: false };
        g.bench_function(name, |b| {
            b.iter(|| {
                let view = store.view(&id).unwrap();
                let check = store.verify_token(&id, Role::Operator, black_box(&token), NOW_MS).unwrap();
                assert!(matches!(check, TokenCheck::Valid { .. }));
                store.apply_admission(&view, &write, NOW_MS).unwrap()
            })
        });
    }
    g.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, admission, device_proofs, device_store, frames, peer_uid);
criterion_main!(benches);
