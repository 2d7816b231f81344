//! The OpenClaw Gateway wire protocol (v4, v3 for node-role nodes and probes).
//!
//! Pure data: frame shapes, connect params, hello-ok, error shapes and codes,
//! version negotiation, roles, scopes, the device-auth payload strings, and a
//! device's id and key encodings. Shared by
//! the server, the client library, the CLI and the tests; no I/O here.

pub mod client_info;
pub mod connect;
pub mod device_auth;
pub mod device_key;
pub mod error;
pub mod frame;
pub mod gateway_identity;
pub mod hello;
pub mod methods;
pub mod role;
pub mod scopes;
pub mod text;
pub mod version;

pub use connect::{AuthParams, ClientInfo, ConnectParams, ConnectParamsError, DeviceParams};
pub use error::{ErrorCode, ErrorShape};
pub use frame::{EventFrame, Frame, RequestFrame, ResponseFrame};
pub use hello::HelloOk;
pub use role::Role;
pub use version::{MIN_NODE_PROTOCOL_VERSION, MIN_PROBE_PROTOCOL_VERSION, PROTOCOL_VERSION};
