//! The facts `decide` reads, gathered at the edge before it is called.

use std::net::IpAddr;

use clawgate_protocol::client_info::is_browser_client;
use clawgate_protocol::ConnectParams;

use crate::config::Config;

use super::credential::CredentialCheck;
use super::device_proof::{ProofError, VerifiedDevice};

/// Where a connection comes from, as far as trust is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Locality {
    /// Loopback socket, no proxy evidence, loopback Host name.
    DirectLocal,
    /// Anything else; `via_proxy` when the address came from a trusted proxy.
    Remote { client_ip: IpAddr, via_proxy: bool },
}

impl Locality {
    pub fn is_direct_local(&self) -> bool {
        matches!(self, Locality::DirectLocal)
    }
}

/// The owner of a loopback peer's socket, as far as the uid decides it:
/// a loopback socket owned by another user than the ones in
/// `gateway.auth.localOwnerUids` is not direct-local (it may be another
/// local user, a `www-data` proxy or root's docker-proxy). An unknown uid
/// (not Linux, or not found) leaves the locality as the edge classified it.
pub fn owner_locality(locality: Locality, peer_ip: IpAddr, peer_uid: Option<u32>, config: &Config) -> Locality {
    match (locality, peer_uid) {
        (Locality::DirectLocal, Some(uid)) if !config.local_owner_uids.contains(&uid) => {
            Locality::Remote { client_ip: crate::net::canonical(peer_ip), via_proxy: false }
        }
        (locality, _) => locality,
    }
}

/// Everything `decide` needs to know about one `connect`.
#[derive(Debug, Clone)]
pub struct ConnectFacts {
    /// After [`owner_locality`]: a loopback peer of another uid is remote here.
    pub locality: Locality,
    /// The uid owning the loopback peer's socket, when it was looked up and
    /// found (only for a connection the edge classified as direct-local).
    pub peer_uid: Option<u32>,
    /// The Origin header, if any (even empty or `null`).
    pub origin: Option<String>,
    /// Any `Sec-Fetch-*` header was present.
    pub sec_fetch: bool,
    /// The port of the listener, for the gateway's own origins.
    pub listener_port: u16,
    pub params: ConnectParams,
    pub credential: CredentialCheck,
    /// In trusted-proxy mode, the user the proxy vouched for on this request,
    /// whichever credential verified (a device-token reconnect of a device
    /// bound to a proxy user must still come with that user).
    pub proxy_user: Option<String>,
    pub device: DeviceFact,
}

/// What the device block proved, if there was one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceFact {
    None,
    Proven(VerifiedDevice),
    Failed(ProofError),
}

impl DeviceFact {
    pub fn proven(&self) -> Option<&VerifiedDevice> {
        match self {
            DeviceFact::Proven(v) => Some(v),
            _ => None,
        }
    }
}

impl ConnectFacts {
    /// The loopback peer's uid, when it is known and not an owner's: the
    /// reason the connection is not direct-local.
    pub fn foreign_local_uid(&self, config: &Config) -> Option<u32> {
        self.peer_uid.filter(|uid| !config.local_owner_uids.contains(uid))
    }

    /// A browser: any Origin header, any `Sec-Fetch-*` header, a browser
    /// client id or mode webchat. A client id alone never clears a connection.
    pub fn is_browser(&self) -> bool {
        self.origin.is_some() || self.sec_fetch || is_browser_client(&self.params.client.id, &self.params.client.mode)
    }
}
