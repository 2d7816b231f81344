//! Every WebSocket close code the gateway sends, defined here only: a leaf
//! so the server, the outbox and upstream mode share one list.

pub const CLOSE_NORMAL: u16 = 1000;
pub const CLOSE_PROTOCOL: u16 = 1002;
/// A policy refusal, a slow consumer, repeated unauthorized calls.
pub const CLOSE_POLICY: u16 = 1008;
pub const CLOSE_TOO_LARGE: u16 = 1009;
pub const CLOSE_RESTART: u16 = 1012;
pub const CLOSE_INTERNAL: u16 = 1011;
pub const CLOSE_TRY_AGAIN: u16 = 1013;
/// A session that a store change (revocation, removal, rotation) invalidated.
pub const CLOSE_INVALIDATED: u16 = 4001;
