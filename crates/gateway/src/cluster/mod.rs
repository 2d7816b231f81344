//! The cluster bus: several clawgate instances sharing one PostgreSQL store
//! talk over NATS (`gateway.cluster`; docs/cluster.md). Each concern that
//! crosses instances is one file with one loop, listed in [`FEATURES`];
//! the subjects are one table ([`subjects`]). NATS being down never stops
//! an instance: it serves its own sessions and refuses only work that needs
//! another instance ([`ClusterError::Unavailable`]).

mod error;
pub mod failures;
pub mod invoke;
pub mod node_directory;
pub mod pair_events;
mod port;
mod presence;
pub mod store_changes;
pub mod subjects;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use error::ClusterError;
use subjects::{Subject, Subjects};

use crate::config::cluster::ClusterConfig;
use crate::server::Gateway;

/// One concern's loop, run once the bus is set up (it may start before NATS
/// answers: the client connects and reconnects by itself).
type Feature = fn(Arc<Gateway>, Arc<Cluster>) -> Pin<Box<dyn Future<Output = ()> + Send>>;

/// Every concern that crosses instances: its name (for logs) and its loop.
const FEATURES: &[(&str, Feature)] = &[
    ("failures", failures::run),
    ("store-changes", store_changes::run),
    ("pair-events", pair_events::run),
    ("nodes", node_directory::run),
    ("invoke", invoke::run),
    ("presence", presence::run),
];

/// This instance's place on the bus.
pub struct Cluster {
    config: ClusterConfig,
    subjects: Subjects,
    /// Set by [`run`]; `None` before: publishing then reports `Unavailable`.
    client: OnceLock<async_nats::Client>,
    /// Tells this run of the process from an earlier one of the same instance.
    boot_id: String,
    /// The shared failed-credential counters' bucket and mirror.
    failures: failures::SharedFailures,
    /// Which other instance holds which node.
    nodes: node_directory::NodeDirectory,
}

/// What every message carries besides its body: who sent it, so an instance
/// can skip its own messages and tell a restarted peer from the old one.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope<T> {
    pub from: String,
    pub boot: String,
    pub body: T,
}

impl Cluster {
    pub fn new(config: ClusterConfig, boot_id: &str) -> Arc<Cluster> {
        let subjects = Subjects::new(&config.name);
        Arc::new(Cluster {
            config,
            subjects,
            client: OnceLock::new(),
            boot_id: boot_id.to_owned(),
            failures: Default::default(),
            nodes: Default::default(),
        })
    }

    pub fn instance(&self) -> &str {
        &self.config.instance
    }

    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    pub fn subjects(&self) -> &Subjects {
        &self.subjects
    }

    pub fn boot_id(&self) -> &str {
        &self.boot_id
    }

    /// The nodes other instances announced.
    pub fn node_directory(&self) -> &node_directory::NodeDirectory {
        &self.nodes
    }

    /// The NATS client once [`run`] made it, connected or not.
    pub fn client(&self) -> Option<&async_nats::Client> {
        self.client.get()
    }

    /// Whether NATS is reachable now.
    pub fn is_connected(&self) -> bool {
        self.client().is_some_and(|c| c.connection_state() == async_nats::connection::State::Connected)
    }

    /// Create the client. It returns at once and connects (and reconnects)
    /// in the background, so a NATS server that is down at start-up does not
    /// hold up the gateway.
    pub async fn connect(&self) -> Result<&async_nats::Client, ClusterError> {
        if let Some(c) = self.client.get() {
            return Ok(c);
        }
        let instance = self.config.instance.clone();
        let options = async_nats::ConnectOptions::new()
            .name(format!("clawgate-{}", self.config.instance))
            .retry_on_initial_connect()
            .connection_timeout(Duration::from_secs(2))
            // A dead server is noticed within a few pings.
            .ping_interval(Duration::from_secs(2))
            .reconnect_delay_callback(|attempts| Duration::from_millis((attempts as u64 * 100).min(1_000)))
            .event_callback(move |event| {
                let instance = instance.clone();
                async move { log_event(&instance, &event) }
            });
        let client = options
            .connect(self.config.nats.expose())
            .await
            .map_err(|e| ClusterError::Message(format!("cannot set up the NATS client: {e}")))?;
        Ok(self.client.get_or_init(|| client))
    }

    /// Publish `body` on `subject`. Never waits for NATS: when it is down
    /// the message is dropped and `Unavailable` returned (whatever it
    /// carried also reaches the other instances another way, or not at all
    /// by design: docs/cluster.md).
    pub async fn publish<T: Serialize>(&self, subject: String, body: &T) -> Result<(), ClusterError> {
        let client = self.client().ok_or(ClusterError::Unavailable)?;
        if client.connection_state() != async_nats::connection::State::Connected {
            return Err(ClusterError::Unavailable);
        }
        let payload = self.encode(body)?;
        client.publish(subject, payload.into()).await.map_err(|_| ClusterError::Unavailable)
    }

    /// `body` in this instance's envelope, as JSON bytes.
    pub fn encode<T: Serialize>(&self, body: &T) -> Result<Vec<u8>, ClusterError> {
        #[derive(Serialize)]
        struct Outgoing<'a, T> {
            from: &'a str,
            boot: &'a str,
            body: &'a T,
        }
        let envelope = Outgoing { from: &self.config.instance, boot: &self.boot_id, body };
        serde_json::to_vec(&envelope).map_err(|e| ClusterError::Message(e.to_string()))
    }

    /// A message's envelope and body; `None` for this instance's own
    /// messages. A message that does not parse is an error (logged by the
    /// caller with its subject), never a panic.
    pub fn decode<T: for<'de> Deserialize<'de>>(&self, payload: &[u8]) -> Result<Option<Envelope<T>>, ClusterError> {
        let envelope: Envelope<T> =
            serde_json::from_slice(payload).map_err(|e| ClusterError::Message(e.to_string()))?;
        if envelope.from == self.config.instance {
            return Ok(None);
        }
        Ok(Some(envelope))
    }

    /// The subject shared by every instance.
    pub fn shared(&self, subject: Subject) -> String {
        self.subjects.shared(subject)
    }
}

fn log_event(instance: &str, event: &async_nats::Event) {
    match event {
        async_nats::Event::Connected => tracing::info!(instance, "cluster bus connected (NATS)"),
        async_nats::Event::Disconnected => tracing::warn!(
            instance,
            code = ClusterError::Unavailable.code(),
            "cluster bus disconnected (NATS): serving local sessions; cross-instance work is refused until it is back"
        ),
        other => tracing::debug!(instance, event = %other, "cluster bus event"),
    }
}

/// A clean shutdown, after the loops are stopped: tell the other instances
/// this one is leaving (its presence entries go at once), waiting at most a
/// second for a bus that may be down.
async fn leave(cluster: &Cluster) {
    let _ = tokio::time::timeout(Duration::from_secs(1), presence::leave(cluster)).await;
}

/// Connect to NATS and run every [`FEATURES`] loop until aborted (the
/// server aborts it at shutdown).
async fn run(cluster: Arc<Cluster>, gateway: Arc<Gateway>) {
    if let Err(e) = cluster.connect().await {
        tracing::error!(code = e.code(), error = %e, "the cluster bus is off for this run");
        return;
    }
    tracing::info!(
        instance = cluster.instance(),
        nats = %cluster.config.nats.redacted(),
        cluster = %cluster.config.name,
        "cluster instance {} on {}",
        cluster.instance(),
        cluster.config.nats.redacted()
    );
    let mut loops = tokio::task::JoinSet::new();
    for (name, feature) in FEATURES {
        let name = *name;
        let running = feature(gateway.clone(), cluster.clone());
        loops.spawn(async move {
            running.await;
            name
        });
    }
    while let Some(ended) = loops.join_next().await {
        if let Ok(name) = ended {
            tracing::warn!(feature = name, "a cluster loop ended");
        }
    }
}
