//! The real OpenClaw gateway as a test upstream (tests/it/common/openclaw_upstream.rs):
//! it starts in a fresh HOME, answers the clawgate client library directly,
//! and leaves no process behind when stopped.

use crate::common::openclaw_upstream::OpenclawUpstream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_gateway_starts_answers_health_and_stops() {
    let mut upstream = OpenclawUpstream::start().await;

    // OpenClaw's local backend client class: token, no device, exactly the scopes asked for.
    let client = upstream.client(&["operator.read"]).await.expect("connect to the real gateway");
    assert_eq!(client.hello.server.version, "2026.9.6");
    assert_eq!(client.hello.auth.scopes, vec!["operator.read".to_owned()]);
    let health = client.request("health", None).await.expect("health");
    assert_eq!(health["ok"], true, "{health}");
    let agents = client.request("agents.list", None).await.expect("agents.list");
    assert_eq!(agents["defaultId"], "main", "{agents}");
    client.close().await;

    // A wrong token is refused by the upstream itself.
    let wrong = clawgate_client::Client::connect(
        clawgate_client::ConnectOptions::new(upstream.url()).token("wrong").scopes(&["operator.read"]),
    )
    .await;
    assert!(matches!(wrong, Err(clawgate_client::ClientError::Refused(_))), "{:?}", wrong.err());

    assert!(upstream.running());
    upstream.stop().await;
}
