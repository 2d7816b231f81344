//! The gateway's Prometheus metrics: counters moved where decisions are
//! applied (the handshake's one record of a decision, the session loop's
//! one record of a request), gauges read from the registry, the limiter and
//! the store when scraped. Served by the admin listener (`admin.rs`).
//!
//! Every label is bounded: methods outside the protocol schema and
//! clawgate's method table count as `other`; rules, outcomes, credential
//! kinds and upstream codes are fixed sets (a trusted-proxy header name in
//! a reason comes from the config, not from clients).

use std::time::Duration;

use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts};

use crate::admission::credential::AuthReason;
use crate::admission::decision::{Decision, RefusalKind};

/// Handshake latency buckets, in seconds: from well under a millisecond
/// (a token handshake) to the handshake timeout.
const HANDSHAKE_BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0];

pub struct Metrics {
    registry: prometheus::Registry,
    rpc_requests: IntCounterVec,
    decisions: IntCounterVec,
    handshake_seconds: HistogramVec,
    failed_credentials: IntCounterVec,
    lockouts: IntCounter,
    relayed_sessions: IntCounter,
    upstream_failures: IntCounterVec,
    // Read when scraped.
    sessions: IntGaugeVec,
    handshaking: IntGauge,
    pending_requests: IntGauge,
    locked_out_addresses: IntGauge,
    upstream_links_open: IntGauge,
    alive_tasks: IntGauge,
    connections: IntGaugeVec,
    core_connections: IntGaugeVec,
    connections_max: IntGauge,
    connections_refused: IntCounterVec,
    accept_errors: IntCounter,
    store_notifications: IntCounter,
    cluster_messages: IntCounterVec,
    cluster_connected: IntGauge,
}

/// What a scrape reads from the running gateway.
pub struct Snapshot {
    pub operators: usize,
    pub nodes: usize,
    pub handshaking: usize,
    /// `None`: the store could not be read (the gauge is then absent).
    pub pending_requests: Option<usize>,
    pub locked_out_addresses: usize,
    /// Upstream mode: links open now (`None`: not in upstream mode, absent).
    pub upstream_links_open: Option<usize>,
    /// Tasks alive in the runtime serving the scrape.
    pub alive_tasks: usize,
    pub connections: super::conn_budget::BudgetFigures,
    /// `gateway.cluster`: whether NATS is reachable now (`None`: a single
    /// instance, absent).
    pub cluster_connected: Option<bool>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

fn counter(registry: &prometheus::Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric definition");
    registry.register(Box::new(c.clone())).expect("metric registered once");
    c
}

fn plain_counter(registry: &prometheus::Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("valid metric definition");
    registry.register(Box::new(c.clone())).expect("metric registered once");
    c
}

fn gauge(registry: &prometheus::Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("valid metric definition");
    registry.register(Box::new(g.clone())).expect("metric registered once");
    g
}

fn gauge_vec(registry: &prometheus::Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric definition");
    registry.register(Box::new(g.clone())).expect("metric registered once");
    g
}

impl Metrics {
    pub fn new() -> Metrics {
        let r = prometheus::Registry::new();
        let build = IntGaugeVec::new(
            Opts::new("clawgate_build_info", "The running clawgate's version (always 1)."),
            &["version"],
        )
        .expect("valid metric definition");
        build.with_label_values(&[crate::version::VERSION]).set(1);
        r.register(Box::new(build)).expect("metric registered once");
        let handshake_seconds = HistogramVec::new(
            HistogramOpts::new(
                "clawgate_handshake_duration_seconds",
                "From socket open to the admission decision, by outcome.",
            )
            .buckets(HANDSHAKE_BUCKETS.to_vec()),
            &["outcome"],
        )
        .expect("valid metric definition");
        r.register(Box::new(handshake_seconds.clone())).expect("metric registered once");
        let connections = IntGaugeVec::new(
            Opts::new(
                "clawgate_connections",
                "Sockets counted from accept: unauthenticated (everyone but the owner), owner (the owner's \
                 unauthenticated local clients), established (admitted or relayed).",
            ),
            &["state"],
        )
        .expect("valid metric definition");
        r.register(Box::new(connections.clone())).expect("metric registered once");
        let sessions = IntGaugeVec::new(Opts::new("clawgate_sessions", "Live sessions by role."), &["role"])
            .expect("valid metric definition");
        r.register(Box::new(sessions.clone())).expect("metric registered once");
        Metrics {
            rpc_requests: counter(
                &r,
                "clawgate_rpc_requests_total",
                "Requests received from admitted sessions, by method (methods clawgate does not know: other).",
                &["method"],
            ),
            decisions: counter(
                &r,
                "clawgate_admission_decisions_total",
                "Admission decisions by the rule that decided and the outcome.",
                &["rule", "outcome"],
            ),
            failed_credentials: counter(
                &r,
                "clawgate_failed_credentials_total",
                "Connections refused because a presented credential did not verify, by kind and reason.",
                &["kind", "reason"],
            ),
            lockouts: plain_counter(
                &r,
                "clawgate_auth_lockouts_total",
                "Connections refused because their address (or browser origin) is locked out after failures.",
            ),
            relayed_sessions: plain_counter(
                &r,
                "clawgate_relayed_sessions_total",
                "Upstream mode: sessions whose upstream link was opened.",
            ),
            upstream_failures: counter(
                &r,
                "clawgate_upstream_failures_total",
                "Upstream mode: admitted sessions whose upstream link could not be opened, by code.",
                &["code"],
            ),
            handshaking: gauge(&r, "clawgate_handshaking_connections", "Sockets upgraded but not yet admitted."),
            core_connections: gauge_vec(
                &r,
                "clawgate_core_connections",
                "Thread-per-core runtime: connections living on each core's thread now (the kernel spreads new \
                 ones by their addresses and ports).",
                &["core"],
            ),
            pending_requests: gauge(&r, "clawgate_pairing_requests_pending", "Open pairing requests in the store."),
            locked_out_addresses: gauge(
                &r,
                "clawgate_locked_out_addresses",
                "Addresses (and browser origins) locked out right now.",
            ),
            upstream_links_open: gauge(
                &r,
                "clawgate_upstream_links_open",
                "Upstream mode: upstream links open now (one per relayed session).",
            ),
            alive_tasks: gauge(
                &r,
                "clawgate_runtime_alive_tasks",
                "Tasks alive in clawgate's async runtime (a leak shows as growth).",
            ),
            connections_max: gauge(
                &r,
                "clawgate_connections_max",
                "gateway.limits.maxConnections in force (set or derived from the open-file limit).",
            ),
            connections_refused: counter(
                &r,
                "clawgate_connections_refused_total",
                "Sockets closed at accept for being over a budget, by budget (address, unauthenticated, owner, total).",
                &["budget"],
            ),
            accept_errors: plain_counter(
                &r,
                "clawgate_accept_errors_total",
                "Failed accepts (such as out of file descriptors); each one pauses the accept loop.",
            ),
            store_notifications: plain_counter(
                &r,
                "clawgate_store_change_notifications_total",
                "Batches of store change notifications heard (PostgreSQL LISTEN/NOTIFY), each one re-check.",
            ),
            cluster_messages: counter(
                &r,
                "clawgate_cluster_messages_total",
                "Cluster bus messages by subject and direction (out: published, in: received from another instance).",
                &["subject", "direction"],
            ),
            cluster_connected: gauge(
                &r,
                "clawgate_cluster_connected",
                "gateway.cluster: 1 while the cluster bus (NATS) is connected, else 0.",
            ),
            connections,
            handshake_seconds,
            sessions,
            registry: r,
        }
    }

    /// A socket closed at accept, over `budget`.
    pub fn connection_refused(&self, budget: super::conn_budget::OverBudget) {
        self.connections_refused.with_label_values(&[budget.as_str()]).inc();
    }

    /// The gauge of connections living on thread-per-core thread `core`.
    pub fn core_connections(&self, core: usize) -> IntGauge {
        self.core_connections.with_label_values(&[&core.to_string()])
    }

    /// A failed accept.
    pub fn accept_error(&self) {
        self.accept_errors.inc();
    }

    /// One request from an admitted session.
    pub fn rpc_request(&self, method: &str) {
        let known = super::methods::is_known(method);
        self.rpc_requests.with_label_values(&[if known { method } else { "other" }]).inc();
    }

    /// One admission decision, `elapsed` after the socket opened.
    pub fn decision(&self, decision: &Decision, elapsed: Duration) {
        let outcome = decision.outcome_name();
        self.decisions.with_label_values(&[decision.rule().as_str(), outcome]).inc();
        self.handshake_seconds.with_label_values(&[outcome]).observe(elapsed.as_secs_f64());
        if let Decision::Refuse(r) = decision {
            match &r.kind {
                RefusalKind::Auth { reason, .. } => {
                    self.failed_credentials.with_label_values(&[credential_kind(*reason), reason.as_str()]).inc()
                }
                RefusalKind::DeviceAuth(e) => {
                    self.failed_credentials.with_label_values(&["device-signature", e.reason()]).inc()
                }
                RefusalKind::RateLimited { .. } => self.lockouts.inc(),
                _ => {}
            }
        }
    }

    /// A batch of store change notifications heard.
    pub fn store_notified(&self) {
        self.store_notifications.inc();
    }

    /// One cluster bus message on `subject` (a subject token
    /// of the cluster's table: a fixed set), `out` or `in`.
    pub fn cluster_message(&self, subject: &'static str, direction: &'static str) {
        self.cluster_messages.with_label_values(&[subject, direction]).inc();
    }

    /// Upstream mode: a session's link opened, or failed with `code`.
    pub fn upstream_link(&self, failure_code: Option<&str>) {
        match failure_code {
            None => self.relayed_sessions.inc(),
            Some(code) => self.upstream_failures.with_label_values(&[code]).inc(),
        }
    }

    /// The exposition in Prometheus's text format, with the gauges set from `now`.
    pub fn render(&self, now: &Snapshot) -> String {
        self.sessions.with_label_values(&["operator"]).set(now.operators as i64);
        self.sessions.with_label_values(&["node"]).set(now.nodes as i64);
        self.handshaking.set(now.handshaking as i64);
        self.pending_requests.set(now.pending_requests.unwrap_or(0) as i64);
        self.locked_out_addresses.set(now.locked_out_addresses as i64);
        self.upstream_links_open.set(now.upstream_links_open.unwrap_or(0) as i64);
        self.alive_tasks.set(now.alive_tasks as i64);
        let c = now.connections;
        self.connections.with_label_values(&["unauthenticated"]).set(c.unauthenticated as i64);
        self.connections.with_label_values(&["owner"]).set(c.owner as i64);
        let established = c.total.saturating_sub(c.unauthenticated + c.owner);
        self.connections.with_label_values(&["established"]).set(established as i64);
        self.connections_max.set(c.max.min(i64::MAX as usize) as i64);
        self.cluster_connected.set(now.cluster_connected.unwrap_or(false) as i64);
        let mut families = self.registry.gather();
        if now.upstream_links_open.is_none() {
            families.retain(|f| f.name() != "clawgate_upstream_links_open");
        }
        if now.cluster_connected.is_none() {
            families.retain(|f| f.name() != "clawgate_cluster_connected");
        }
        if now.pending_requests.is_none() {
            // Unknown is not zero: leave the gauge out rather than say "none pending".
            families.retain(|f| f.name() != "clawgate_pairing_requests_pending");
        }
        let mut out = Vec::new();
        match prometheus::TextEncoder::new().encode(&families, &mut out) {
            Ok(()) => String::from_utf8(out).unwrap_or_default(),
            Err(e) => {
                tracing::error!(error = %e, "cannot encode the metrics");
                String::new()
            }
        }
    }
}

/// Which kind of credential a failure was about.
fn credential_kind(reason: AuthReason) -> &'static str {
    use AuthReason::*;
    match reason {
        TokenMissing | TokenMismatch | TokenMissingConfig => "token",
        PasswordMissing | PasswordMismatch | PasswordMissingConfig => "password",
        DeviceTokenMismatch | ScopeMismatch => "device-token",
        ServiceTokenInvalid => "service-token",
        TrustedProxyConfigMissing
        | TrustedProxyUntrustedSource
        | TrustedProxyLoopbackSource
        | TrustedProxyMissingHeader(_)
        | TrustedProxyUserMissing
        | TrustedProxyUserNotAllowed => "trusted-proxy",
    }
}

pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
