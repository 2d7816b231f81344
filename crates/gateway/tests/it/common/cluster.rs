//! Several clawgate instances in one test process on one PostgreSQL
//! database (common/postgres.rs) and one NATS server (common/nats.rs), each
//! served on its own 127.0.0.1 port, as a cluster of real processes would
//! be but driven directly (`clawgate::serve`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use clawgate::config::cluster::ClusterConfig;
use clawgate::config::{AuthMode, Config};
use clawgate::store::PgStore;
use clawgate::ServerOptions;

use super::nats::NatsServer;
use super::{postgres, TestGateway, TOKEN};

/// The cluster name the tests use.
pub const CLUSTER: &str = "test";

pub struct Instances {
    pub nats: NatsServer,
    pub db_url: String,
    /// Instance `a`, `b`, `c`… in order.
    pub gateways: Vec<TestGateway>,
}

/// The config of instance `name` of a cluster on `db_url` and `nats_url`:
/// token mode with [`TOKEN`].
pub fn instance_config(name: &str, db_url: &str, nats_url: &str) -> Config {
    let mut config = Config::new(AuthMode::Token, Some(TOKEN), None);
    config.store_url = Some(clawgate::config::store::resolve(None, Some(db_url.to_owned())).unwrap().unwrap());
    config.cluster = Some(ClusterConfig::new(nats_url, name, CLUSTER).unwrap());
    config
}

/// Open the store off the async workers, as the gateway's start-up does.
pub async fn open_store(url: &str) -> Arc<PgStore> {
    let url = url.to_owned();
    Arc::new(tokio::task::spawn_blocking(move || PgStore::open(&url).unwrap()).await.unwrap())
}

impl Instances {
    /// `n` instances (`a`, `b`, …) with default options, connected to NATS.
    pub async fn start(n: usize) -> Instances {
        Self::start_with(n, |_, _| {}).await
    }

    /// [`Instances::start`], each config and options adjusted by `adjust`
    /// before start (given the instance's name).
    pub async fn start_with(n: usize, adjust: impl Fn(&str, &mut (Config, ServerOptions))) -> Instances {
        let nats = NatsServer::start();
        let db_url = postgres::fresh_database_url();
        let mut gateways = Vec::new();
        for i in 0..n {
            let name = instance_name(i);
            let mut parts = (instance_config(&name, &db_url, &nats.url()), ServerOptions::default());
            adjust(&name, &mut parts);
            let store = open_store(&db_url).await;
            gateways.push(TestGateway::start_with_store(parts.0, parts.1, store).await);
        }
        let instances = Instances { nats, db_url, gateways };
        instances.wait_connected(true).await;
        instances
    }

    /// Wait (≤ 15 s) until every instance's bus is connected (`true`) or
    /// disconnected (`false`).
    pub async fn wait_connected(&self, connected: bool) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let now: Vec<bool> = self.gateways.iter().map(|g| bus(g).is_connected()).collect();
            if now.iter().all(|c| *c == connected) {
                return;
            }
            assert!(Instant::now() < deadline, "bus connected {now:?}, waited for {connected}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn stop(self) {
        for g in self.gateways {
            g.stop().await;
        }
    }
}

/// `a`, `b`, `c`, …
pub fn instance_name(i: usize) -> String {
    ((b'a' + i as u8) as char).to_string()
}

/// The cluster bus of a gateway started with `gateway.cluster`.
pub fn bus(gw: &TestGateway) -> &clawgate::cluster::Cluster {
    let port = gw.gateway.cluster.as_ref().expect("a gateway with gateway.cluster");
    port.as_any().downcast_ref().expect("the gateway's bus is clawgate's cluster")
}
