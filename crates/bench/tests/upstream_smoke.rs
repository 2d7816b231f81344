//! Smoke run of the upstream benchmark with tiny counts: the real OpenClaw
//! gateway (`interop/openclaw/upstream.sh`, ~20 s to answer `health`) alone
//! and behind an in-process clawgate in upstream mode. Benchmarks are not
//! tests: this only checks that every part completes with sane figures —
//! never how fast.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use clawgate::config::{AuthMode, Config, ResolvedSecret, SecretSource};
use clawgate::upstream::{SecretKind, UpstreamConfig, UpstreamSecret, UpstreamTimeouts, UpstreamUrl};
use clawgate::{serve, Gateway, ServerOptions};
use clawgate_bench::flood::FloodBounds;
use clawgate_bench::load::Bounds;
use clawgate_bench::upstream::{self, Counts, Setups};
use clawgate_bench::{metrics, Target};

const CLAWGATE_TOKEN: &str = "smoke-clawgate-token-0123456789abcdef";
const OPENCLAW_TOKEN: &str = "smoke-openclaw-token-fedcba9876543210";

/// The real gateway in a process group of its own, ended with the group on drop.
struct Openclaw {
    pid: u32,
    port: u16,
    home: tempfile::TempDir,
}

impl Openclaw {
    /// `upstream.sh --detach` returns once the gateway answers `health`.
    fn start() -> Openclaw {
        let interop = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../interop/openclaw");
        assert!(
            interop.join("cli/node_modules/.bin/openclaw").exists(),
            "openclaw is not installed: run interop/openclaw/install.sh (scripts/test does)"
        );
        let home = tempfile::tempdir().expect("temp HOME");
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let out = Command::new("bash")
            .arg(interop.join("upstream.sh"))
            .args(["--port", &port.to_string(), "--home"])
            .arg(home.path())
            .arg("--detach")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()))
            .env("OPENCLAW_GATEWAY_TOKEN", OPENCLAW_TOKEN)
            .stdin(Stdio::null())
            .output()
            .expect("run interop/openclaw/upstream.sh");
        let line = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "upstream.sh failed: {line}\n{}", String::from_utf8_lossy(&out.stderr));
        let started: serde_json::Value = serde_json::from_str(line.trim()).expect("upstream.sh's JSON line");
        let pid = started["pgid"].as_u64().expect("pgid") as u32;
        Openclaw { pid, port, home }
    }
}

impl Drop for Openclaw {
    fn drop(&mut self) {
        let group = format!("-{}", self.pid);
        let _ = Command::new("kill").args(["-KILL", "--", &group]).stderr(Stdio::null()).status();
        let _ = &self.home;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_benchmark_completes_with_tiny_counts() {
    let openclaw = Openclaw::start();
    let openclaw_url = format!("ws://127.0.0.1:{}", openclaw.port);

    let mut config = Config::new(AuthMode::Token, Some(CLAWGATE_TOKEN), None);
    config.upstream = Some(UpstreamConfig {
        url: UpstreamUrl::parse(&openclaw_url).unwrap(),
        secret: UpstreamSecret {
            kind: SecretKind::Token,
            value: ResolvedSecret::new(OPENCLAW_TOKEN.to_owned(), SecretSource::Flag),
        },
        forward_client_address: false,
        timeouts: UpstreamTimeouts::default(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let store = Arc::new(clawgate::store::SqliteStore::open_in_memory().unwrap());
    let gateway = Gateway::new(config, ServerOptions::default(), store);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, gateway, async move {
        let _ = stopped.await;
    }));

    // clawgate runs in this process: its CPU and RSS are ours.
    let setups = Setups {
        alone: Target::new(&openclaw_url, OPENCLAW_TOKEN, 4).unwrap().with_pid(Some(openclaw.pid)),
        behind: Target::new(&format!("ws://{addr}"), CLAWGATE_TOKEN, 4)
            .unwrap()
            .with_pid(Some(std::process::id()))
            .with_upstream_pid(Some(openclaw.pid)),
    };
    // Generous time bounds: the counts end each load; time only stops a stuck one.
    let bounds = Bounds { count: 6, duration: Duration::from_secs(30), warmup: 2 };
    let counts = Counts {
        handshakes: bounds,
        concurrency: 3,
        requests: bounds,
        sessions: 5,
        settle: Duration::from_millis(100),
        flood: FloodBounds {
            duration: Duration::from_secs(1),
            ramp: Duration::from_millis(200),
            in_flight: 8,
            attempt_timeout: Duration::from_millis(500),
            legit_interval: Duration::from_millis(10),
        },
        flood_sources: 4,
    };
    let figures = upstream::run_all(&setups, &counts, upstream::Parts::default()).await;
    assert!(figures.failures.is_empty(), "{:#?}", figures.failures);

    let value = |run: &[metrics::Metric], key: &str| {
        run.iter().find(|m| m.key == key).unwrap_or_else(|| panic!("no {key} in {run:#?}")).value
    };
    for key in [
        "upstream.handshake.device.seq.rate",
        "upstream.handshake.device.c3.cpu.openclaw",
        "upstream.flood.attempts",
        "upstream.rpc.health.p50",
        "upstream.rpc.sessions_list.p50",
        "upstream.memory.openclaw",
    ] {
        assert!(value(&figures.alone, key).is_finite());
        assert!(value(&figures.behind, key).is_finite());
    }
    for key in [
        "upstream.handshake.device.seq.cpu.clawgate",
        "upstream.flood.cpu.clawgate",
        "upstream.rpc.health.added_p50",
        "upstream.memory.clawgate",
    ] {
        assert!(value(&figures.behind, key).is_finite());
        assert!(figures.alone.iter().all(|m| m.key != key), "{key} is clawgate's only");
    }
    assert!(value(&figures.behind, "upstream.handshake.device.seq.rate") > 0.0);
    assert!(value(&figures.behind, "upstream.flood.attempts") > 0.0);
    let table = metrics::table(upstream::BEHIND, &figures.behind, upstream::ALONE, &figures.alone);
    assert!(table.contains("clawgate CPU per handshake") && table.contains("OpenClaw CPU per handshake"), "{table}");

    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), server).await.expect("shutdown").unwrap().unwrap();
    drop(openclaw);
}
