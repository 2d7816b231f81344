//! Checks of `gateway.store.url` (or `CLAWGATE_STORE_URL`): the pairing
//! store in a PostgreSQL database. The connection has no TLS in this build
//! (docs/cluster.md), so a database on another host is reached in the
//! clear; and a password in the URL is only as private as the file it is
//! written in. No finding ever shows the password: URLs are redacted.

use std::net::IpAddr;

use postgres::config::Host;

use super::host::CONFIG_FILE;
use super::{Finding, HostFacts, Severity};
use crate::config::store::StoreUrl;
use crate::config::Config;

pub(super) fn check(c: &Config, host: &HostFacts) -> Vec<Finding> {
    let Some(url) = &c.store_url else { return Vec::new() };
    let mut out = vec![Finding::new(
        "store.postgres",
        Severity::Info,
        url.key(),
        format!(
            "the pairing store is the PostgreSQL database {}: the checks of the SQLite store file are skipped",
            url.redacted()
        ),
        "nothing; the database's own access rules and backups are checked there, not here",
    )];
    plaintext(url, &mut out);
    password_in_readable_config(url, host, &mut out);
    out
}

/// `store.postgres_plaintext`: a database host that is not this one.
fn plaintext(url: &StoreUrl, out: &mut Vec<Finding>) {
    let remote: Vec<String> = url
        .hosts()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|h| match h {
            Host::Tcp(name) if !is_loopback_name(&name) => Some(name),
            _ => None,
        })
        .collect();
    if remote.is_empty() {
        return;
    }
    let mut message = format!(
        "the pairing store's database ({}) is on another host ({}) and clawgate connects without TLS: anyone on \
         the path can read the device and service records and change them",
        url.redacted(),
        remote.join(", ")
    );
    if url.has_password() {
        message.push_str(", and the database password crosses in the clear");
    }
    out.push(Finding::new(
        "store.postgres_plaintext",
        Severity::Warn,
        url.key(),
        message,
        "keep PostgreSQL on loopback or on a private network only the gateways reach (docs/cluster.md), e.g. \
         through a WireGuard or SSH tunnel to a loopback port",
    ));
}

/// `store.url_password_readable`: the URL with its password is in a
/// config file other users can read.
fn password_in_readable_config(url: &StoreUrl, host: &HostFacts, out: &mut Vec<Finding>) {
    if !url.in_config_file() || !url.has_password() {
        return;
    }
    let Some(file) = host.files.iter().find(|f| f.what == CONFIG_FILE && f.mode & 0o044 != 0) else { return };
    out.push(Finding::new(
        "store.url_password_readable",
        Severity::Critical,
        url.key(),
        format!(
            "the config file {} (mode {:o}) holds the store database's password and other users can read it: \
             with it they can write pairings and tokens into the store every instance trusts",
            file.path, file.mode
        ),
        format!(
            "set the URL in the gateway's environment instead (CLAWGATE_STORE_URL, e.g. from a systemd \
             EnvironmentFile only its user can read) and remove it from the file, or chmod 600 {}",
            file.path
        ),
    ));
}

/// `localhost` or a loopback address.
fn is_loopback_name(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost") || bare.parse::<IpAddr>().is_ok_and(crate::net::is_loopback)
}
