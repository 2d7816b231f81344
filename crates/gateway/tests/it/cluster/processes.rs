//! Three real `clawgate gateway run` processes on one PostgreSQL database
//! and one nats-server, configured through their config files as an
//! operator would: they start as a cluster, admit alike, list each other's
//! sessions, and one of them killed with SIGKILL leaves the others' presence
//! and leaves them serving.

use std::time::{Duration, Instant};

use crate::common::clawgate_process::ClawgateProcess;
use crate::common::nats::NatsServer;
use crate::common::{connect_params, postgres, RawConn, TOKEN};
use clawgate_client::DeviceIdentity;
use serde_json::json;

const READ: &str = "operator.read";

/// Ask `system-presence` on `conn` until the hosts it lists satisfy `wanted` (≤ 15 s).
async fn wait_for_hosts(conn: &mut RawConn, wanted: impl Fn(&std::collections::BTreeSet<String>) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let res = conn.call("p", "system-presence", None).await;
        let hosts = res["payload"]
            .as_array()
            .map(|list| list.iter().filter_map(|e| e["host"].as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        if wanted(&hosts) {
            return;
        }
        assert!(Instant::now() < deadline, "system-presence lists {hosts:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn config(instance: &str, db_url: &str, nats_url: &str) -> String {
    format!(
        "{{ gateway: {{ auth: {{ mode: \"token\", token: \"{TOKEN}\" }}, store: {{ url: \"{db_url}\" }}, \
         cluster: {{ nats: \"{nats_url}\", instance: \"{instance}\", name: \"procs\" }} }} }}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_admit_alike_and_survive_one_killed() {
    let nats = NatsServer::start();
    let db_url = postgres::fresh_database_url();
    let mut procs = Vec::new();
    for name in ["a", "b", "c"] {
        procs.push(ClawgateProcess::start(&config(name, &db_url, &nats.url()), None, false).await);
    }
    for p in &procs {
        p.wait_log(&["cluster bus connected"]).await;
    }

    // A device paired on a (silently: a local client holding the token)…
    let id = DeviceIdentity::generate();
    let mut on_a = RawConn::open(procs[0].addr).await;
    let hello = on_a.handshake_device(connect_params("cli", "cli", "operator", &[READ], Some(TOKEN)), &id).await;
    assert_eq!(hello["ok"], true, "{hello}");
    let device_token = hello["payload"]["auth"]["deviceToken"].as_str().unwrap().to_owned();
    // …is admitted by b and c on its device token alone.
    for p in &procs[1..] {
        let mut params = connect_params("cli", "cli", "operator", &[READ], None);
        params["auth"] = json!({ "deviceToken": device_token });
        let mut conn = RawConn::open(p.addr).await;
        let res = conn.handshake_device(params, &id).await;
        assert_eq!(res["ok"], true, "{res}");
        assert_eq!(conn.call("h", "health", None).await["ok"], true);
    }

    // Sessions listed in presence on each process: a lists all three.
    let mut shown = Vec::new();
    for (p, name) in procs.iter().zip(["on-a", "on-b", "on-c"]) {
        let mut params = connect_params("gateway-client", "ui", "operator", &[READ], Some(TOKEN));
        params["client"]["displayName"] = json!(name);
        let mut conn = RawConn::open(p.addr).await;
        assert_eq!(conn.handshake(params).await["ok"], true);
        shown.push(conn);
    }
    wait_for_hosts(&mut on_a, |hosts| ["on-a", "on-b", "on-c"].iter().all(|h| hosts.contains(*h))).await;

    // c killed without a goodbye: its session leaves a's presence within a
    // few heartbeats; a and b keep serving, new sessions too.
    procs[2].kill();
    wait_for_hosts(&mut on_a, |hosts| hosts.contains("on-b") && !hosts.contains("on-c")).await;
    for p in &procs[..2] {
        let mut conn = RawConn::open(p.addr).await;
        assert_eq!(conn.handshake(connect_params("cli", "cli", "operator", &[READ], Some(TOKEN))).await["ok"], true);
        assert_eq!(conn.call("h", "health", None).await["ok"], true);
    }
    assert_eq!(on_a.call("h", "health", None).await["ok"], true);
}
