//! Pairing events across instances: a pairing requested on one instance
//! reaches the pairing operators on every instance, and so does its
//! resolution, once each, and only operators allowed to see it.

use std::time::Duration;

use crate::cluster::store_changes::{behind_proxy, LOCAL_OPERATOR, READ};
use crate::common::cluster::Instances;
use crate::common::{admitted_from, connect_params, RawConn, TestGateway, REMOTE, TOKEN};
use clawgate_client::DeviceIdentity;
use serde_json::{json, Value};

/// A remote device asks `gw` to pair; returns the request id.
async fn request_pairing(gw: &TestGateway, id: &DeviceIdentity) -> String {
    let mut c = RawConn::open_with(gw.addr, REMOTE).await.unwrap();
    let res = c.handshake_device(connect_params("cli", "cli", "operator", &[READ], Some(TOKEN)), id).await;
    assert_eq!(res["error"]["details"]["code"], "PAIRING_REQUIRED", "{res}");
    res["error"]["details"]["requestId"].as_str().unwrap().to_owned()
}

/// The next `event` frame (about `request_id`, if given) `conn` receives
/// within `wait`, if any.
async fn next_event(conn: &mut RawConn, event: &str, request_id: Option<&str>, wait: Duration) -> Option<Value> {
    tokio::time::timeout(wait, async {
        loop {
            let frame = conn.recv().await;
            if frame["event"] == event && request_id.is_none_or(|id| frame["payload"]["requestId"] == id) {
                return frame;
            }
        }
    })
    .await
    .ok()
}

/// Frames `conn` receives before the answer to a `health` call: events
/// already on their way arrive first.
async fn events_before_an_answer(conn: &mut RawConn) -> Vec<Value> {
    conn.send(&json!({ "type": "req", "id": "flush", "method": "health" })).await;
    let mut events = Vec::new();
    loop {
        let frame = conn.recv().await;
        if frame["id"] == "flush" {
            return events;
        }
        events.push(frame);
    }
}

#[tokio::test]
async fn a_pairing_request_on_b_reaches_pairing_operators_on_a_and_c_and_so_does_its_resolution() {
    let cluster = Instances::start_with(3, behind_proxy).await;
    let [a, b, c] = &cluster.gateways[..] else { unreachable!() };
    let mut on_a = admitted_from(LOCAL_OPERATOR, a, &["operator.pairing", READ]).await;
    let mut on_c = admitted_from(LOCAL_OPERATOR, c, &["operator.pairing"]).await;
    let mut reader_on_a = admitted_from(LOCAL_OPERATOR, a, &[READ]).await;

    // The instances' subscriptions reach the NATS server on their own
    // connections: ask until both operators hear one request (a round or two).
    for round in 0.. {
        assert!(round < 20, "no pairing event crossed the bus");
        request_pairing(b, &DeviceIdentity::generate()).await;
        let wait = Duration::from_millis(500);
        let heard_a = next_event(&mut on_a, "device.pair.requested", None, wait).await.is_some();
        let heard_c = next_event(&mut on_c, "device.pair.requested", None, wait).await.is_some();
        if heard_a && heard_c {
            break;
        }
    }
    events_before_an_answer(&mut on_a).await;
    events_before_an_answer(&mut on_c).await;

    let id = DeviceIdentity::generate();
    let request_id = request_pairing(b, &id).await;
    let wait = Duration::from_secs(5);
    for operator in [&mut on_a, &mut on_c] {
        let event = next_event(operator, "device.pair.requested", Some(&request_id), wait)
            .await
            .expect("the request, on a and on c");
        assert_eq!(event["payload"]["requestId"], request_id);
        assert_eq!(event["payload"]["deviceId"], id.device_id());
        assert_eq!(event["payload"]["remoteIp"], "203.0.113.5");
    }

    let r = on_a.call("ap", "device.pair.approve", Some(json!({ "requestId": request_id }))).await;
    assert_eq!(r["ok"], true, "{r}");
    for operator in [&mut on_a, &mut on_c] {
        let event = next_event(operator, "device.pair.resolved", Some(&request_id), wait)
            .await
            .expect("the resolution, on a and on c");
        assert_eq!(event["payload"]["requestId"], request_id);
        assert_eq!(event["payload"]["decision"], "approved");
    }
    // Once each: nothing came back around the bus.
    let about_it = |f: &Value| f["payload"]["requestId"] == request_id.as_str();
    for operator in [&mut on_a, &mut on_c] {
        let more = events_before_an_answer(operator).await;
        assert!(!more.iter().any(about_it), "{more:?}");
    }
    // An operator without operator.pairing saw no pairing event at all.
    let seen = events_before_an_answer(&mut reader_on_a).await;
    assert!(!seen.iter().any(|f| f["event"].as_str().is_some_and(|e| e.starts_with("device.pair."))), "{seen:?}");
    cluster.stop().await;
}
