//! The admission pipeline, once: device proof, credential check, store
//! lookups, the rules, the trace. The server's handshake, `auth explain`,
//! the session re-check after a store change, the tests and the benchmarks
//! all call [`evaluate`]; none of them assembles these steps itself.
//!
//! Pure apart from the [`Lookups`] it is handed: no clock (the caller passes
//! `now_ms`), no randomness, no writes.

use clawgate_protocol::ConnectParams;

use crate::config::{AuthMode, Config};
use crate::store::{is_service_token, DeviceView, Role, StoreError};

use super::credential::{Credential, CredentialCheck};
use super::credential_check::check_connect_credential;
use super::decide::decide;
use super::decision::Decided;
use super::device_proof;
use super::facts::{owner_locality, ConnectFacts, DeviceFact, Locality};
use super::ingress::EdgeFacts;
use super::lookups::Lookups;
use super::trusted_proxy;

/// How the device block's proof is established.
#[derive(Debug, Clone)]
pub enum Proof<'a> {
    /// Verify the signature over this connection's challenge nonce.
    Challenge { nonce: &'a str },
    /// An outcome already known: retained from the admission of a live
    /// session (its challenge is long gone), or described by `auth explain`.
    Known(DeviceFact),
}

/// One `connect`, as the edge and the frame delivered it.
#[derive(Debug, Clone)]
pub struct Connect<'a> {
    pub edge: &'a EdgeFacts,
    /// What [`super::classify_upgrade`] made of the edge.
    pub locality: Locality,
    pub params: ConnectParams,
    pub proof: Proof<'a>,
    /// The uid owning the peer's socket, when the edge looked it up (a
    /// loopback peer on Linux) and found it.
    pub peer_uid: Option<u32>,
    pub now_ms: u64,
    /// The address is locked out by the failed-auth limiter for this long:
    /// the credential is not even checked, and nothing is read.
    pub locked_out_ms: Option<u64>,
}

/// What admission found and decided.
#[derive(Debug, Clone)]
pub struct Evaluated {
    pub facts: ConnectFacts,
    /// The store's record of the proven device, as read for the decision
    /// (before its token was checked); its generation is what applying the
    /// decision requires the store to still be at.
    pub view: Option<DeviceView>,
    pub decided: Decided,
}

/// Run admission on one `connect`.
pub fn evaluate(connect: Connect<'_>, config: &Config, lookups: &mut dyn Lookups) -> Result<Evaluated, StoreError> {
    let Connect { edge, locality, params, proof, peer_uid, now_ms, locked_out_ms } = connect;
    let locality = owner_locality(locality, edge.peer.ip(), peer_uid, config);
    let device = match proof {
        Proof::Known(fact) => fact,
        Proof::Challenge { .. } if params.device.is_none() => DeviceFact::None,
        Proof::Challenge { nonce } => match device_proof::verify(&params, nonce, now_ms) {
            Ok(v) => DeviceFact::Proven(v),
            Err(e) => DeviceFact::Failed(e),
        },
    };
    let (credential, view) = match locked_out_ms {
        Some(retry_after_ms) => (CredentialCheck::RateLimited { retry_after_ms }, None),
        None => {
            let proven = device.proven();
            // The device's record first: its generation is what applying
            // the decision checks, so a revoke landing after this read (even
            // between it and the token check below) is caught there.
            let view = proven.map(|d| lookups.device_view(&d.device_id)).transpose()?;
            let credential = check_connect_credential(
                params.auth.as_ref(),
                config,
                edge,
                &locality,
                proven,
                Role::parse(params.role()),
                lookups,
            )?;
            (credential, view)
        }
    };
    let proxy_user = match credential.verified() {
        Some(Credential::ProxyUser { user, .. }) => Some(user.clone()),
        _ if config.auth_mode == AuthMode::TrustedProxy => match trusted_proxy::proxy_user(edge, &locality, config) {
            Ok(Credential::ProxyUser { user, .. }) => Some(user),
            _ => None,
        },
        _ => None,
    };
    let facts = ConnectFacts {
        locality,
        peer_uid,
        origin: edge.origin().map(str::to_owned),
        sec_fetch: edge.has_sec_fetch(),
        listener_port: edge.local_port,
        params,
        credential,
        proxy_user,
        device,
    };
    let decided = decide(&facts, config, view.as_ref());
    Ok(Evaluated { facts, view, decided })
}

/// Whether [`evaluate`] may call its lookups for these params: a device
/// block (its pairing record and token), a device token, or a service token.
/// When it may not, the server evaluates in place instead of on the blocking
/// pool (the hop costs about a fifth of a token handshake's CPU; see
/// docs/benchmarks.md).
pub fn may_read_store(params: &ConnectParams) -> bool {
    params.device.is_some()
        || params.auth.as_ref().is_some_and(|a| {
            a.device_token.is_some() || [&a.token, &a.password].into_iter().flatten().any(|t| is_service_token(t))
        })
}

/// What a live session was admitted on, kept with it so a store change can
/// re-run [`evaluate`] on the same connect. The device proof is not repeated
/// (its challenge is gone): its retained outcome stands.
#[derive(Debug, Clone)]
pub struct AdmittedOn {
    pub edge: EdgeFacts,
    pub facts: ConnectFacts,
}

impl AdmittedOn {
    /// The same decision again, against the store as it is now.
    pub fn reevaluate(&self, config: &Config, now_ms: u64, lookups: &mut dyn Lookups) -> Result<Evaluated, StoreError> {
        let connect = Connect {
            edge: &self.edge,
            locality: self.facts.locality,
            params: self.facts.params.clone(),
            proof: Proof::Known(self.facts.device.clone()),
            peer_uid: self.facts.peer_uid,
            now_ms,
            locked_out_ms: None,
        };
        evaluate(connect, config, lookups)
    }
}
