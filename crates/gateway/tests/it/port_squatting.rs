//! Port squatting: while the gateway is down, another process listens on its
//! configured port and waits for `connect`. The CLI must check that the
//! listener signs its challenge with this state directory's gateway key
//! before sending the secret; the fake must receive nothing.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

const TOKEN: &str = "port-squatting-token-0123456789abcdef";

fn clawgate(state: &Path, args: &[&str], port: u16) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_clawgate"));
    for (k, _) in std::env::vars() {
        if k.starts_with("CLAWGATE_") || k.starts_with("OPENCLAW_GATEWAY_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("CLAWGATE_STATE_DIR", state)
        .env("HOME", state.parent().unwrap())
        .env("CLAWGATE_PORT", port.to_string())
        .env("OPENCLAW_GATEWAY_TOKEN", TOKEN)
        .args(args)
        .stdin(Stdio::null());
    cmd
}

fn run(state: &Path, args: &[&str], port: u16) -> (i32, String, String) {
    let out: Output = clawgate(state, args, port).output().expect("run clawgate");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `gateway run` on the configured port, until its runtime file appears.
fn start_gateway(state: &Path, port: u16) -> Child {
    let mut child =
        clawgate(state, &["gateway", "run"], port).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !state.join("gateway.json").exists() {
        assert!(child.try_wait().unwrap().is_none(), "the gateway exited");
        assert!(Instant::now() < deadline, "no runtime file within 10 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

fn stop_gateway(mut child: Child) {
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the gateway did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A fake gateway on `port`: sends a challenge (with `proof` as the gateway
/// proof, if any) to every socket and records every frame it receives.
struct Squatter {
    received: Arc<Mutex<Vec<String>>>,
    _runtime: tokio::runtime::Runtime,
}

impl Squatter {
    fn start(port: u16, proof: Option<&'static str>) -> Squatter {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let received: Arc<Mutex<Vec<String>>> = Arc::default();
        let listener = runtime.block_on(tokio::net::TcpListener::bind(("127.0.0.1", port))).expect("bind the port");
        let log = received.clone();
        runtime.spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let log = log.clone();
                tokio::spawn(async move {
                    let Ok(mut ws) = tokio_tungstenite::accept_async(socket).await else { return };
                    let mut payload = serde_json::json!({ "nonce": "3f1c0b4e-squatter", "ts": 1, "capabilities": [] });
                    if let Some(proof) = proof {
                        payload["gatewayProof"] = proof.into();
                    }
                    let challenge =
                        serde_json::json!({ "type": "event", "event": "connect.challenge", "payload": payload });
                    let _ = ws.send(Message::Text(challenge.to_string().into())).await;
                    while let Some(Ok(msg)) = ws.next().await {
                        log.lock().unwrap().push(msg.to_string());
                    }
                });
            }
        });
        Squatter { received, _runtime: runtime }
    }

    fn received(&self) -> Vec<String> {
        std::thread::sleep(Duration::from_millis(100));
        self.received.lock().unwrap().clone()
    }
}

#[test]
fn the_cli_sends_its_secret_only_to_a_listener_proving_the_gateway_key() {
    let home = tempfile::Builder::new().prefix("clawgate-squat").tempdir().unwrap();
    let state = home.path().join("state");
    let port = free_port();

    // The real gateway proves itself: the commands work, and its key is private.
    let gateway = start_gateway(&state, port);
    let key = state.join("gateway.identity");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    for command in [&["gateway", "call", "health"][..], &["devices", "list"]] {
        let (code, _, stderr) = run(&state, command, port);
        assert_eq!(code, 0, "{command:?}: {stderr}");
    }
    stop_gateway(gateway);
    assert!(!state.join("gateway.json").exists());

    // A squatter on the configured port, with no proof or a proof by another key.
    let foreign = clawgate_client::DeviceIdentity::generate().sign("clawgate-gateway-identity/v1\n3f1c0b4e-squatter");
    let foreign: &'static str = Box::leak(foreign.into_boxed_str());
    for proof in [None, Some(foreign), Some("not-a-signature")] {
        let squatter = Squatter::start(port, proof);
        for command in [&["gateway", "call", "health"][..], &["devices", "list"]] {
            let (code, _, stderr) = run(&state, command, port);
            assert_ne!(code, 0, "{command:?} with proof {proof:?} succeeded");
            assert!(stderr.contains("GATEWAY_IDENTITY_MISMATCH"), "{command:?}: {stderr}");
            assert!(stderr.contains("the secret was not sent"), "{stderr}");
            assert!(!stderr.contains(TOKEN), "{stderr}");
        }
        let received = squatter.received();
        assert!(received.iter().all(|f| !f.contains(TOKEN)), "the squatter got the token: {received:?}");
        assert!(received.iter().all(|f| !f.contains("\"connect\"")), "the squatter got a connect: {received:?}");
        drop(squatter);
    }

    // The gateway back on its port (same key): the commands work again.
    let gateway = start_gateway(&state, port);
    let (code, _, stderr) = run(&state, &["gateway", "call", "health"], port);
    assert_eq!(code, 0, "{stderr}");
    stop_gateway(gateway);
}
