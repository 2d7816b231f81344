//! Upstream mode: clawgate in front of an unmodified OpenClaw gateway.
//! Admission stays clawgate's; every method and route clawgate does not
//! serve itself is the upstream's (docs/architecture.md).
//!
//! The building blocks, each on its own:
//! - [`config`]: `gateway.upstream`, validated at start-up.
//! - [`Upstream`]: opens one upstream connection per admitted session, as
//!   OpenClaw's local backend client, as the Control UI or as a node (a relay
//!   device identity each), with a bound on handshakes in flight.
//! - [`session_link`]: which class and relay identity a session's upstream
//!   link uses, and opening it; [`hello_merge`]: the hello-ok the client
//!   gets; [`relay_session`]: the relay of the session's requests, answers
//!   and events over the link (the session's task writes its requests into
//!   the upstream socket itself: `link_state`; the link's task routes what
//!   comes back: `relayed_event`).
//! - [`http_relay`]: relays plain HTTP (and non-gateway WebSocket upgrades)
//!   to the upstream, by the header and bearer rules of [`http_rules`]
//!   (whether a presented bearer is clawgate's is the server's to say: it
//!   holds the secrets, the store and the limiter).
//! - [`probe`]: the start-up check whether the upstream answers.
//! - [`timeouts`]: when a silent upstream counts as gone.
//!
//! Relay identities (the Ed25519 keys the upstream sees for browsers and
//! nodes) live in the store (`store::relay_identities`).

pub mod config;
mod connector;
mod failure;
mod handshake_buffers;
pub mod hello_merge;
pub mod http_relay;
pub mod http_rules;
mod link_state;
mod open_request;
mod pending_answers;
pub mod probe;
pub mod relay_session;
mod relayed_event;
pub mod session_link;
pub mod timeouts;
mod transport;

pub use config::{SecretKind, UpstreamConfig, UpstreamSecret, UpstreamUrl};
pub use connector::{Upstream, UpstreamLink, DEFAULT_HANDSHAKES_IN_FLIGHT};
pub use failure::{UpstreamFailure, DEFAULT_RETRY_AFTER_MS};
pub use hello_merge::{merge_hello, recovery_scope, RelayAuth, UrlRewrite};
pub use open_request::{ConnectClass, DownstreamFields, OpenRequest};
pub use pending_answers::link_lost_answer;
pub use relay_session::RelayLink;
pub use session_link::{open_session_link, LinkKind, SessionLink, SessionLinkRequest};
pub use timeouts::{UpstreamTimeouts, DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_LIVENESS_TIMEOUT};
pub use transport::{UpstreamIo, UpstreamWs};
