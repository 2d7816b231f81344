//! Upstream mode in the session pipeline: after clawgate admitted a
//! connection (and before hello-ok) its upstream link is opened; the
//! hello-ok is the merge of both; the session then relays over the link.
//! A refused connection never gets here, so it never opens a link.

use std::sync::Arc;

use clawgate_protocol::HelloOk;
use serde_json::Value;

use crate::admission::{Admission, ConnectFacts, EdgeFacts, Principal};
use crate::upstream::{
    merge_hello, open_session_link, recovery_scope, DownstreamFields, RelayAuth, RelayLink, SessionLinkRequest,
    Upstream, UpstreamFailure, UpstreamLink, UrlRewrite,
};

use super::outbox::Outbox;
use super::Gateway;

/// A session's upstream link, open, from before hello-ok until its session starts.
pub struct PendingRelay {
    link: UpstreamLink,
    rewrite: Option<UrlRewrite>,
    auth: RelayAuth,
}

/// Open the upstream link of an admitted connection.
pub async fn open_for_admitted(
    gw: &Arc<Gateway>,
    upstream: &Upstream,
    facts: &ConnectFacts,
    admission: &Admission,
    node_id: Option<&str>,
    edge: &EdgeFacts,
) -> Result<PendingRelay, UpstreamFailure> {
    let request = SessionLinkRequest {
        role: admission.role,
        scopes: admission.scopes.clone(),
        browser: facts.is_browser(),
        device_id: admission.device.as_ref().map(|d| d.device.device_id.clone()),
        node_id: node_id.map(str::to_owned),
        fields: DownstreamFields::from_connect(&facts.params),
    };
    let opened = open_session_link(upstream, &gw.store, &request).await?;
    tracing::debug!(class = opened.kind.name(), "upstream link open");
    Ok(PendingRelay {
        link: opened.link,
        rewrite: url_rewrite(upstream, edge),
        auth: RelayAuth {
            method: admission.credential.method(),
            recovery_scope: recovery_scope(&principal_key(&admission.principal)),
        },
    })
}

impl PendingRelay {
    /// The hello-ok the client gets: the upstream's with clawgate's parts.
    pub fn hello_ok(&mut self, ours: &HelloOk) -> Value {
        let upstream = std::mem::take(&mut self.link.hello_ok);
        merge_hello(upstream, ours, &self.auth, self.rewrite.as_ref())
    }

    /// Start relaying into the session's outbox.
    pub fn start(self, out: Outbox) -> RelayLink {
        RelayLink::start(self.link, out, self.rewrite)
    }
}

/// URLs naming the upstream become URLs of the address the client used
/// (its `Host`), over https when it came over TLS.
fn url_rewrite(upstream: &Upstream, edge: &EdgeFacts) -> Option<UrlRewrite> {
    let host = edge.host()?.trim();
    if host.is_empty() {
        return None;
    }
    let tls = edge.tls || edge.origin().is_some_and(|o| o.trim().to_ascii_lowercase().starts_with("https://"));
    Some(UrlRewrite::new(&upstream.config().url.authority(), host, tls))
}

/// Who the session is, for its recovery scope: the same principal gets the
/// same scope on every connection, different principals different ones.
fn principal_key(principal: &Principal) -> String {
    match principal {
        Principal::LocalOwner => "owner".to_owned(),
        Principal::ScopelessSecretHolder => "scopeless".to_owned(),
        Principal::Device { device_id } => format!("device:{device_id}"),
        Principal::Service { principal_id, .. } => format!("service:{principal_id}"),
        Principal::ProxyUser { user } => format!("user:{user}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principals_have_distinct_keys() {
        let keys = [
            principal_key(&Principal::LocalOwner),
            principal_key(&Principal::ScopelessSecretHolder),
            principal_key(&Principal::Device { device_id: "owner".into() }),
            principal_key(&Principal::Service { name: "n".into(), principal_id: "owner".into() }),
            principal_key(&Principal::ProxyUser { user: "owner".into() }),
        ];
        let distinct: std::collections::HashSet<_> = keys.iter().collect();
        assert_eq!(distinct.len(), keys.len());
    }
}
