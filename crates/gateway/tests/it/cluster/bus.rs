//! The bus itself: instances connect, hear each other and not themselves,
//! keep serving when NATS is down (at start or later) and reconnect by
//! themselves when it is back.

use std::time::Duration;

use crate::common::cluster::{instance_config, open_store, Instances, CLUSTER};
use crate::common::nats::NatsServer;
use crate::common::{admitted, postgres, TestGateway};
use clawgate::cluster::subjects::Subject;
use clawgate::ServerOptions;
use futures_util::StreamExt;
use serde_json::json;

#[tokio::test]
async fn instances_hear_each_other_but_not_themselves() {
    let cluster = Instances::start(3).await;
    let a = crate::common::cluster::bus(&cluster.gateways[0]);
    let b = crate::common::cluster::bus(&cluster.gateways[1]);
    let subject = format!("clawgate.{CLUSTER}.bus-test");
    let mut heard = b.client().unwrap().subscribe(subject.clone()).await.unwrap();
    // b's subscription reaches the server on b's connection, a's message on
    // a's: publish until the server has both (a few rounds at most).
    let message = loop {
        a.publish(subject.clone(), &json!({ "n": 1 })).await.unwrap();
        if let Ok(m) = tokio::time::timeout(Duration::from_millis(200), heard.next()).await {
            break m.unwrap();
        }
    };
    let envelope = b.decode::<serde_json::Value>(&message.payload).unwrap().expect("a's message, not b's own");
    assert_eq!((envelope.from.as_str(), envelope.body["n"].as_i64()), ("a", Some(1)));
    assert_eq!(envelope.boot, a.boot_id());
    // Its own message is recognised as such.
    assert!(a.decode::<serde_json::Value>(&message.payload).unwrap().is_none());
    assert_eq!(a.shared(Subject::StoreChanged), format!("clawgate.{CLUSTER}.store.changed"));
    cluster.stop().await;
}

#[tokio::test]
async fn nats_down_never_stops_local_service_and_the_bus_comes_back() {
    let mut cluster = Instances::start(2).await;
    cluster.nats.stop();
    cluster.wait_connected(false).await;
    let a = crate::common::cluster::bus(&cluster.gateways[0]);
    let refused = a.publish(a.shared(Subject::StoreChanged), &json!({})).await.unwrap_err();
    assert_eq!(refused.code(), "CLUSTER_UNAVAILABLE");
    // Local sessions are admitted and answered meanwhile.
    let mut conn = admitted(&cluster.gateways[1], &["operator.read"]).await;
    assert_eq!(conn.call("h1", "health", None).await["ok"], true);
    cluster.nats.start_again();
    cluster.wait_connected(true).await;
    assert_eq!(conn.call("h2", "health", None).await["ok"], true);
    cluster.stop().await;
}

#[tokio::test]
async fn an_instance_starts_while_nats_is_down() {
    let mut nats = NatsServer::start();
    nats.stop();
    let db_url = postgres::fresh_database_url();
    let config = instance_config("a", &db_url, &nats.url());
    let gw = TestGateway::start_with_store(config, ServerOptions::default(), open_store(&db_url).await).await;
    let mut conn = admitted(&gw, &["operator.read"]).await;
    assert_eq!(conn.call("h1", "health", None).await["ok"], true);
    assert!(!crate::common::cluster::bus(&gw).is_connected());
    nats.start_again();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !crate::common::cluster::bus(&gw).is_connected() {
        assert!(std::time::Instant::now() < deadline, "the bus did not connect after NATS came up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    gw.stop().await;
}
