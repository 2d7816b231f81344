//! The gateway server: HTTP and WebSocket on one port, the connection state
//! machine (challenge → connect → session), broadcasts and shutdown.

mod accept;
pub mod admin;
mod apply;
pub mod auth_log;
mod bookkeeping;
mod budget;
pub mod cluster_port;
pub mod conn_budget;
pub(crate) mod connection;
mod decision_record;
pub(crate) mod edge_failure;
pub mod events;
mod handshake;
mod hello_ok;
pub(crate) mod http;
pub mod invokes;
pub mod limits;
mod memory_trim;
mod methods;
pub mod metrics;
pub(crate) mod node_catalog;
pub(crate) mod node_invoke;
mod payload_policy;
mod per_core;
pub mod presence;
pub mod registry;
mod relay;
pub mod reload;
pub mod reuseport;
mod session;
mod session_info;
mod upstream_bearer;
pub(crate) mod upstream_http;
mod watch;
pub mod wire;
pub(crate) mod ws;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::config::{Config, Trust};
use crate::secrets::random_uuid;
use crate::store::PairingStore;

pub use per_core::serve_per_core;
pub use registry::Registry;
pub use reuseport::ReusePortGroup;

// Leaves shared with upstream mode, named here too for the server's own
// modules and for embedders that know them as `server::…`.
pub use crate::clock::now_ms;
use crate::outbox;
pub use crate::version::VERSION;

/// Timers and limits that are not user configuration.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// From socket open until hello-ok.
    pub handshake_timeout: Duration,
    /// From socket open until the HTTP request head is read.
    pub head_timeout: Duration,
    pub tick_interval: Duration,
    /// Largest frame before authentication.
    pub max_preauth_payload: usize,
    /// Largest frame after hello-ok.
    pub max_payload: usize,
    /// A session whose unsent frames exceed this is closed as a slow consumer.
    pub max_buffered_bytes: usize,
    /// How often to look for store changes made by another process.
    pub store_poll_interval: Duration,
    /// Keep a connection listening for store changes (PostgreSQL's
    /// LISTEN/NOTIFY) besides polling; off only to measure the other paths.
    pub listen_store_changes: bool,
    /// In a cluster, how often this instance publishes its presence entries
    /// even when nothing changed; the others drop it after three missed.
    pub presence_heartbeat: Duration,
    /// Signs each challenge nonce so local clients can tell this gateway
    /// from a port squatter; `None` for gateways without a state directory.
    pub identity: Option<crate::gateway_identity::GatewayIdentity>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            handshake_timeout: Duration::from_millis(15_000),
            head_timeout: Duration::from_millis(5_000),
            tick_interval: Duration::from_millis(30_000),
            max_preauth_payload: 64 * 1024,
            max_payload: 25 * 1024 * 1024,
            max_buffered_bytes: 50 * 1024 * 1024,
            store_poll_interval: Duration::from_secs(1),
            listen_store_changes: true,
            presence_heartbeat: Duration::from_secs(1),
            identity: None,
        }
    }
}

/// Shared state of one running gateway.
pub struct Gateway {
    /// Swapped whole by a reload; read once per connection (see [`Gateway::config`]).
    config: arc_swap::ArcSwap<Config>,
    pub options: ServerOptions,
    pub registry: Arc<Registry>,
    pub store: Arc<dyn PairingStore>,
    /// Failed attempts, per credential checked and address.
    pub auth_limiter: limits::AuthLimiter,
    /// Failed attempts from everyone together.
    pub global_failures: limits::GlobalFailures,
    pub preauth: Arc<limits::PreauthCounter>,
    /// Every socket, counted from accept (`gateway.limits.maxConnections`).
    pub connections: Arc<conn_budget::ConnectionBudget>,
    /// The spare descriptor every accept loop sheds with (server/accept.rs).
    pub(crate) accept_gate: accept::AcceptGate,
    pub invokes: invokes::Invokes,
    pub boot_id: String,
    pub metrics: metrics::Metrics,
    /// The recent admission decisions, for `clawgate auth log`.
    pub auth_log: auth_log::AuthLog,
    /// Upstream mode: the OpenClaw gateway behind clawgate (from
    /// `config.upstream`); `None` when clawgate serves on its own.
    pub upstream: Option<Arc<crate::upstream::Upstream>>,
    /// `gateway.cluster`: this instance's link to the others (docs/cluster.md);
    /// `None` for a single instance.
    pub cluster: Option<Arc<dyn cluster_port::ClusterPort>>,
    /// Whether the uid owning a loopback peer's socket can be looked up here
    /// (probed once at start; docs/admission.md, peer uid).
    pub peer_uids: bool,
    /// The store serves paired devices and token digests from memory
    /// (docs/benchmarks.md): a device connect then needs no blocking task.
    pub devices_in_memory: bool,
    /// "Check the store now": wakes the store watch before its next poll
    /// (a change heard from PostgreSQL or another instance; watch.rs).
    pub store_nudge: tokio::sync::Notify,
    started: Instant,
    /// The thread-per-core server's runtimes (`per_core.rs`), for counting
    /// their tasks; empty under [`serve`].
    core_runtimes: std::sync::Mutex<Vec<tokio::runtime::Handle>>,
    /// Flipped to true when the gateway starts shutting down.
    stopping: tokio::sync::watch::Sender<bool>,
}

impl Gateway {
    /// A gateway without a cluster bus; `gateway.cluster` needs
    /// [`crate::gateway`], which builds the bus beside it.
    pub fn new(config: Config, options: ServerOptions, store: Arc<dyn PairingStore>) -> Arc<Gateway> {
        if config.cluster.is_some() {
            tracing::warn!("gateway.cluster is set but this gateway was built without its bus (use clawgate::gateway)");
        }
        Gateway::with_cluster(config, options, store, |_| None)
    }

    /// A gateway with the cluster bus `cluster` makes for its boot id.
    pub fn with_cluster(
        config: Config,
        options: ServerOptions,
        store: Arc<dyn PairingStore>,
        cluster: impl FnOnce(&str) -> Option<Arc<dyn cluster_port::ClusterPort>>,
    ) -> Arc<Gateway> {
        let upstream = config.upstream.clone().map(|u| Arc::new(crate::upstream::Upstream::new(u)));
        let peer_uids = match crate::net::peer_uid::probe() {
            Ok(()) => true,
            Err(why) => {
                tracing::warn!(
                    reason = %why,
                    "the uid of a loopback peer cannot be looked up here: gateway.auth.localOwnerUids is not \
                     enforced, and a loopback connection counts as local by its address and Host alone"
                );
                false
            }
        };
        let connections = conn_budget::ConnectionBudget::new(max_connections(&config));
        let boot_id = random_uuid();
        let cluster = cluster(&boot_id);
        let devices_in_memory = match store.keep_devices_in_memory() {
            Ok(kept) => kept,
            Err(e) => {
                tracing::warn!(error = %e, code = e.code(), "paired devices are read from the store file on every connect");
                false
            }
        };
        Arc::new(Gateway {
            connections,
            accept_gate: Default::default(),
            upstream,
            cluster,
            peer_uids,
            devices_in_memory,
            config: arc_swap::ArcSwap::from_pointee(config),
            metrics: Default::default(),
            auth_log: Default::default(),
            options,
            registry: Arc::default(),
            store,
            auth_limiter: Default::default(),
            global_failures: Default::default(),
            preauth: Default::default(),
            invokes: Default::default(),
            boot_id,
            store_nudge: tokio::sync::Notify::new(),
            started: Instant::now(),
            core_runtimes: Default::default(),
            stopping: tokio::sync::watch::channel(false).0,
        })
    }

    /// The configuration in force now. A connection reads it once and keeps
    /// that value for its handshake; a reload swaps it for the next ones.
    pub fn config(&self) -> Arc<Config> {
        self.config.load_full()
    }

    /// Put `config` in force for the connections judged from now on (a
    /// reload: [`reload::apply`] also judges the live sessions again).
    pub(crate) fn swap_config(&self, config: Config) {
        self.connections.set_max(max_connections(&config));
        self.config.store(Arc::new(config));
    }

    /// Resolves once shutdown has begun.
    pub fn stopping(&self) -> tokio::sync::watch::Receiver<bool> {
        self.stopping.subscribe()
    }

    pub fn uptime_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Tasks alive in the runtime calling this and in the thread-per-core
    /// runtimes, if any (a leak shows as growth).
    pub fn alive_tasks(&self) -> usize {
        let here = tokio::runtime::Handle::try_current().map_or(0, |h| h.metrics().num_alive_tasks());
        let cores = self.core_runtimes.lock().unwrap_or_else(|p| p.into_inner());
        here + cores.iter().map(|h| h.metrics().num_alive_tasks()).sum::<usize>()
    }
}

/// `gateway.limits.maxConnections`, or its default from the open-file limit.
pub fn max_connections(config: &Config) -> usize {
    config.max_connections.unwrap_or_else(|| {
        conn_budget::default_max_connections(conn_budget::current_nofile(), config.upstream.is_some())
    })
}

/// Serve connections from `listener` (trust `local`) until `shutdown`
/// resolves, then close every session with 1012 and wait (bounded) for
/// connections to end.
pub async fn serve(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    serve_listeners(vec![(listener, Trust::Local)], gateway, shutdown).await
}

/// [`serve`] on several listeners, each with its trust level
/// (`gateway.listeners`): one gateway, one set of sessions.
pub async fn serve_listeners(
    listeners: Vec<(TcpListener, Trust)>,
    gateway: Arc<Gateway>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let (accepted_tx, mut accepted_rx) = tokio::sync::mpsc::channel(64);
    let mut acceptors = JoinSet::new();
    for (listener, trust) in listeners {
        let local_port = listener.local_addr()?.port();
        acceptors.spawn(accept::accept_loop(gateway.clone(), listener, trust, local_port, accepted_tx.clone()));
    }
    drop(accepted_tx);
    let background = BackgroundLoops::start(&gateway);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = accepted_rx.recv() => match accepted {
                Some(accepted) => {
                    connections.spawn(connection::handle(gateway.clone(), accepted));
                }
                None => break,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    acceptors.abort_all();
    background.stop();
    if let Some(cluster) = &gateway.cluster {
        cluster.leave().await;
    }
    close_sessions(&gateway);
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(DRAIN_FOR, drain).await.is_err() {
        connections.abort_all();
    }
    bookkeeping::flush(&gateway).await;
    Ok(())
}

/// How long a shutdown waits for connections to end after closing them.
const DRAIN_FOR: Duration = Duration::from_secs(5);

/// The gateway's own loops beside the connections: ticks, store changes,
/// bookkeeping, memory trim and the cluster link. One set per gateway, on
/// the runtime that serves it.
struct BackgroundLoops(Vec<tokio::task::JoinHandle<()>>);

impl BackgroundLoops {
    fn start(gateway: &Arc<Gateway>) -> BackgroundLoops {
        BackgroundLoops(vec![
            tokio::spawn(tick_loop(gateway.clone())),
            tokio::spawn(watch::watch_store(gateway.clone())),
            tokio::spawn(bookkeeping::flush_loop(gateway.clone())),
            tokio::spawn(memory_trim::trim_loop()),
            tokio::spawn(run_cluster(gateway.clone())),
        ])
    }

    fn stop(self) {
        for task in self.0 {
            task.abort();
        }
    }
}

/// Once nothing is accepted any more: mark the gateway stopping, tell every
/// session and close it with 1012 (service restart).
fn close_sessions(gateway: &Gateway) {
    gateway.stopping.send_replace(true);
    tracing::info!("shutting down: closing sessions");
    gateway.registry.broadcast("shutdown", &serde_json::json!({ "reason": "gateway stopping" }));
    gateway.registry.close_all(wire::CLOSE_RESTART, "service restart");
}

async fn tick_loop(gateway: Arc<Gateway>) {
    let mut interval = tokio::time::interval(gateway.options.tick_interval);
    interval.tick().await;
    loop {
        interval.tick().await;
        gateway.registry.broadcast("tick", &serde_json::json!({ "ts": now_ms() }));
    }
}

/// The cluster bus's loops, when there is one.
async fn run_cluster(gateway: Arc<Gateway>) {
    if let Some(cluster) = gateway.cluster.clone() {
        cluster.run(gateway).await;
    }
}
