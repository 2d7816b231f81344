//! Checks of the configuration alone (plus whether the host is a container).

use std::net::IpAddr;

use clawgate_protocol::scopes::{ADMIN, PAIRING};

use super::{Finding, HostFacts, Severity};
use crate::config::{AuthMode, Config, Trust, RECOMMENDED_SECRET_CHARS};

/// Public addresses from unrelated blocks: a trusted range holding two of
/// them spans the public internet, not one proxy's network.
const PUBLIC_PROBES: &[&str] =
    &["1.1.1.1", "8.8.8.8", "52.0.0.1", "104.16.0.1", "142.250.0.1", "185.199.108.1", "2001:4860::1", "2606:4700::1"];

pub(super) fn check(c: &Config, host: &HostFacts) -> Vec<Finding> {
    let mut out = Vec::new();
    auth_mode(c, &mut out);
    secrets(c, &mut out);
    proxies(c, &mut out);
    trusted_proxy_mode(c, &mut out);
    origins(c, &mut out);
    super::cluster_checks::check(c, &mut out);
    for note in &c.file_notes {
        out.push(Finding::new(
            "config.ignored_keys",
            Severity::Info,
            "config file",
            note.clone(),
            "nothing, unless you expected clawgate to act on them (docs/configuration.md)",
        ));
    }
    if host.in_container && c.local_owner && c.auth_mode != AuthMode::TrustedProxy {
        out.push(Finding::new(
            "locality.container_forwarders",
            Severity::Warn,
            "gateway.auth.localOwner",
            "running in a container with local-owner on: Podman, Docker Desktop and port-forwards can present \
             remote traffic as 127.0.0.1, which local-owner admits as the owner",
            "set gateway.auth.localOwner to false, use service tokens, or accept remote traffic on a `remote` listener",
        ));
    }
    out
}

fn exposed_listener(c: &Config) -> Option<String> {
    if !c.bind.is_loopback() {
        return Some(format!("{}:{}", c.bind, c.port));
    }
    c.listeners
        .iter()
        .find(|l| !l.bind.is_loopback() || l.trust == Trust::Remote)
        .map(|l| format!("{}:{}", l.bind, l.port))
}

fn auth_mode(c: &Config, out: &mut Vec<Finding>) {
    if c.auth_mode != AuthMode::None {
        return;
    }
    if let Some(at) = exposed_listener(c) {
        out.push(Finding::new(
            "gateway.bind_no_auth",
            Severity::Critical,
            "gateway.auth.mode",
            format!(
                "auth mode \"none\" with a listener reachable from elsewhere ({at}): anyone who reaches it is let in"
            ),
            "switch gateway.auth.mode to \"token\", or keep every listener on loopback",
        ));
    } else {
        out.push(Finding::new(
            "auth.none",
            Severity::Warn,
            "gateway.auth.mode",
            "auth mode \"none\": every local process is the owner, node role included",
            "switch gateway.auth.mode to \"token\" unless this machine has a single user and nothing else runs on it",
        ));
    }
}

fn secrets(c: &Config, out: &mut Vec<Finding>) {
    let checks = [
        (AuthMode::Token, &c.token, "gateway.token_too_short", "token"),
        (AuthMode::Password, &c.password, "gateway.password_too_short", "password"),
    ];
    for (mode, secret, id, what) in checks {
        let Some(secret) = secret.as_ref().filter(|_| c.auth_mode == mode) else { continue };
        let len = secret.reveal().chars().count();
        if len < RECOMMENDED_SECRET_CHARS {
            out.push(Finding::new(
                id,
                Severity::Warn,
                secret.source.to_string(),
                format!("the gateway {what} has {len} characters, fewer than {RECOMMENDED_SECRET_CHARS}"),
                format!("use a random {what} of at least 32 characters (e.g. openssl rand -base64 32)"),
            ));
        }
    }
}

fn proxies(c: &Config, out: &mut Vec<Finding>) {
    let probes: Vec<IpAddr> = PUBLIC_PROBES.iter().filter_map(|p| p.parse().ok()).collect();
    for (i, net) in c.trusted_proxies.iter().enumerate() {
        if probes.iter().filter(|p| net.contains(**p)).count() >= 2 {
            out.push(Finding::new(
                "proxy.broad",
                Severity::Critical,
                format!("gateway.trustedProxies[{i}]"),
                format!("{net} covers much of the internet: anyone there can forge forwarding and identity headers"),
                "list only the proxy's own address (or its private network)",
            ));
        }
    }
    if c.loopback_is_ambiguous() {
        let with_user = c.trusted_proxy.as_ref().is_some_and(|tp| tp.loopback_user.is_some());
        out.push(Finding::new(
            "proxy.loopback_trusted",
            if with_user { Severity::Critical } else { Severity::Warn },
            "gateway.trustedProxies",
            "a trusted proxy on loopback shares the main listener with local programs: any local process can send \
             the proxy's headers, and a proxied connection without them looks local",
            "add a listener with trust \"proxy\" (gateway.listeners) and point the proxy at it",
        ));
    }
}

fn trusted_proxy_mode(c: &Config, out: &mut Vec<Finding>) {
    let Some(tp) = &c.trusted_proxy else { return };
    if tp.allow_users.is_empty() {
        out.push(Finding::new(
            "gateway.trusted_proxy_no_allowlist",
            Severity::Warn,
            "gateway.auth.trustedProxy.allowUsers",
            "every user the proxy authenticates is let in",
            "list the users who may connect in gateway.auth.trustedProxy.allowUsers",
        ));
    }
    if tp.allow_loopback {
        out.push(Finding::new(
            "gateway.trusted_proxy_allow_loopback",
            Severity::Warn,
            "gateway.auth.trustedProxy.allowLoopback",
            "a trusted proxy on loopback is accepted: local programs can claim any user unless a `proxy` listener \
             separates them",
            "use a `proxy` listener, or turn allowLoopback off",
        ));
    }
    if let Some(user) = &tp.loopback_user {
        let scopes = c.identity_scopes_for(user);
        if scopes.iter().any(|s| s == ADMIN || s == PAIRING) {
            out.push(Finding::new(
                "proxy.loopback_user_scopes",
                Severity::Critical,
                "gateway.auth.trustedProxy.loopbackUser",
                format!("every headerless local caller is {user:?}, whose identityScopes include admin or pairing"),
                format!("narrow gateway.auth.identityScopes[{user:?}]"),
            ));
        }
    }
    if let Some(scopes) = &tp.device_auto_approve {
        let admin = scopes.iter().any(|s| s == ADMIN);
        out.push(if admin {
            Finding::new(
                "gateway.trusted_proxy_device_auto_approve_admin",
                Severity::Critical,
                "gateway.auth.trustedProxy.deviceAutoApprove.scopes",
                "devices of proxy users are approved as administrators without anyone approving them",
                "remove operator.admin from deviceAutoApprove.scopes; approve admin devices explicitly",
            )
        } else {
            Finding::new(
                "gateway.trusted_proxy_device_auto_approve",
                Severity::Warn,
                "gateway.auth.trustedProxy.deviceAutoApprove",
                "devices of proxy users are approved without anyone approving them",
                "keep the scopes narrow, or remove deviceAutoApprove and approve devices with clawgate devices approve",
            )
        });
    }
}

fn origins(c: &Config, out: &mut Vec<Finding>) {
    for (i, o) in c.allowed_origins.iter().enumerate() {
        if o == "*" {
            out.push(Finding::new(
                "gateway.control_ui.allowed_origins_wildcard",
                Severity::Critical,
                format!("gateway.controlUi.allowedOrigins[{i}]"),
                "\"*\" lets any web page open a connection with the visitor's browser",
                "list the exact origins of your Control UI",
            ));
        }
    }
}
