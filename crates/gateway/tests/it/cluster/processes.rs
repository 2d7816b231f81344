//! Three real `clawgate gateway run` processes on one PostgreSQL database
//! and one nats-server, configured through their config files as an
//! operator would: they start as a cluster, admit alike, and one of them
//! killed with SIGKILL leaves the others serving.

use crate::common::clawgate_process::ClawgateProcess;
use crate::common::nats::NatsServer;
use crate::common::{connect_params, postgres, RawConn, TOKEN};
use clawgate_client::DeviceIdentity;
use serde_json::json;

const READ: &str = "operator.read";

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

    // c killed without a goodbye: a and b keep serving, new sessions too.
    procs[2].kill();
    for p in &procs[..2] {
        let mut conn = RawConn::open(p.addr).await;
        assert_eq!(conn.handshake(connect_params("cli", "cli", "operator", &[READ], Some(TOKEN))).await["ok"], true);
        assert_eq!(conn.call("h", "health", None).await["ok"], true);
    }
    assert_eq!(on_a.call("h", "health", None).await["ok"], true);
}
