//! Reading a whole `openclaw.json` as a clawgate config (docs/configuration.md,
//! "An existing openclaw.json").
//!
//! Before the file is deserialized, every key is sorted into one of four:
//! - read by clawgate: kept;
//! - an OpenClaw top-level section other than `gateway`: dropped, and named in
//!   one line;
//! - an OpenClaw `gateway.*` key clawgate does not act on: dropped with a
//!   warning naming it, or refused when ignoring it would admit more than
//!   the user configured (the table in [`ignored_key_verdict`]);
//! - anything else: an error naming it and the closest known key.
//!
//! OpenClaw's keys come from `openclaw_keys.json`, extracted from OpenClaw's
//! own published config schema by `interop/openclaw/extract-config-keys.mjs`.

use std::sync::OnceLock;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::error::ConfigError;

/// Key paths clawgate reads (OpenClaw's it shares, and its own). A path with
/// entries below it is descended into; any other is handed whole to the
/// typed config, which validates it. A new config key must be listed here.
const READ_BY_CLAWGATE: &[&str] = &[
    "gateway",
    "gateway.port",
    "gateway.bind",
    "gateway.auth",
    "gateway.auth.mode",
    "gateway.auth.token",
    "gateway.auth.password",
    "gateway.auth.localOwner",
    "gateway.auth.localOwnerUids",
    "gateway.auth.identityScopes",
    "gateway.auth.trustedProxy",
    "gateway.auth.trustedProxy.userHeader",
    "gateway.auth.trustedProxy.requiredHeaders",
    "gateway.auth.trustedProxy.allowUsers",
    "gateway.auth.trustedProxy.allowLoopback",
    "gateway.auth.trustedProxy.loopbackUser",
    "gateway.auth.trustedProxy.deviceAutoApprove",
    "gateway.auth.trustedProxy.deviceAutoApprove.enabled",
    "gateway.auth.trustedProxy.deviceAutoApprove.scopes",
    "gateway.trustedProxies",
    "gateway.controlUi",
    "gateway.controlUi.allowedOrigins",
    "gateway.nodes",
    "gateway.nodes.pairing",
    "gateway.nodes.pairing.autoApproveLocal",
    "gateway.trustedLocalServices",
    "gateway.listeners",
    "gateway.upstream",
    "gateway.admin",
    "gateway.store",
    "gateway.cluster",
    "gateway.limits",
    "gateway.limits.maxConnections",
    "gateway.runtime",
];

/// The file's other top-level keys clawgate itself knows.
const OWN_TOP_LEVEL: &[&str] = &["$schema", "gateway", "clawgate"];

#[derive(Deserialize)]
struct OpenclawKeys {
    #[serde(rename = "topLevel")]
    top_level: Vec<String>,
    gateway: Vec<String>,
}

/// OpenClaw's published config keys, as checked in.
pub const OPENCLAW_KEYS_JSON: &str = include_str!("openclaw_keys.json");

fn openclaw_keys() -> &'static OpenclawKeys {
    static KEYS: OnceLock<OpenclawKeys> = OnceLock::new();
    KEYS.get_or_init(|| serde_json::from_str(OPENCLAW_KEYS_JSON).expect("openclaw_keys.json is valid"))
}

/// What ignoring an OpenClaw key means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Ignoring it admits no more than configured: a warning.
    Warn,
    /// Ignoring it would admit more than configured: refused.
    Refuse(&'static str),
}

/// The decision per ignored OpenClaw key (docs/configuration.md lists it).
/// Only restrictive values are refused; `value` is the key's value.
pub fn ignored_key_verdict(path: &str, value: &Value) -> Verdict {
    let non_empty = |v: &Value| match v {
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        Value::Null => false,
        _ => true,
    };
    match path {
        "gateway.roles" if non_empty(value) => Verdict::Refuse(
            "operator roles narrow what each profile may do; clawgate does not apply them, so every operator would \
             get the scopes it asks for. Remove the section, or narrow scopes with gateway.auth.identityScopes \
             and service tokens",
        ),
        "gateway.nodes.commands" if value.get("deny").is_some_and(non_empty) => Verdict::Refuse(
            "a node command deny list is not enforced by clawgate; nodes could be asked to run the commands \
             listed. Remove it, or run OpenClaw behind clawgate (gateway.upstream), which enforces its own",
        ),
        "gateway.tools" if value.get("deny").is_some_and(non_empty) => Verdict::Refuse(
            "a gateway tool deny list is not enforced by clawgate. Remove it, or run OpenClaw behind clawgate \
             (gateway.upstream), which enforces its own",
        ),
        "gateway.tls" if value.get("enabled").and_then(Value::as_bool).unwrap_or(false) => Verdict::Refuse(
            "clawgate does not terminate TLS: it would serve plaintext where TLS was configured. Put a TLS proxy \
             in front (a `proxy` listener) and remove gateway.tls",
        ),
        _ => Verdict::Warn,
    }
}

/// The result of sorting a file's keys: the part clawgate reads, and the
/// lines to log about what was left out.
pub struct Sorted {
    pub value: Value,
    pub notes: Vec<String>,
}

/// Sort the keys of a parsed file (see the module comment).
pub fn sort_keys(mut value: Value) -> Result<Sorted, ConfigError> {
    let keys = openclaw_keys();
    let mut notes = Vec::new();
    let Some(root) = value.as_object_mut() else {
        return Ok(Sorted { value, notes });
    };
    let mut sections = Vec::new();
    for name in root.keys().cloned().collect::<Vec<_>>() {
        if OWN_TOP_LEVEL.contains(&name.as_str()) {
            continue;
        }
        if keys.top_level.contains(&name) {
            root.remove(&name);
            sections.push(name);
        } else {
            let known = OWN_TOP_LEVEL.iter().copied().chain(keys.top_level.iter().map(String::as_str));
            return Err(unknown_key(&name, &name, known));
        }
    }
    if !sections.is_empty() {
        notes.push(format!(
            "ignoring the OpenClaw sections {} of this file: clawgate reads only `gateway`",
            sections.join(", ")
        ));
    }
    if let Some(gateway) = root.get_mut("gateway").and_then(Value::as_object_mut) {
        let mut ignored = Vec::new();
        sort_object(gateway, "gateway", &mut ignored)?;
        if !ignored.is_empty() {
            notes.push(format!(
                "ignoring OpenClaw gateway keys clawgate does not act on: {} (docs/configuration.md)",
                ignored.join(", ")
            ));
        }
    }
    Ok(Sorted { value, notes })
}

fn sort_object(object: &mut Map<String, Value>, path: &str, ignored: &mut Vec<String>) -> Result<(), ConfigError> {
    for name in object.keys().cloned().collect::<Vec<_>>() {
        let child = format!("{path}.{name}");
        if READ_BY_CLAWGATE.contains(&child.as_str()) {
            let prefix = format!("{child}.");
            let is_container = READ_BY_CLAWGATE.iter().any(|k| k.starts_with(&prefix));
            if let (true, Some(inner)) = (is_container, object.get_mut(&name).and_then(Value::as_object_mut)) {
                sort_object(inner, &child, ignored)?;
            }
        } else if openclaw_keys().gateway.contains(&child) {
            let value = object.remove(&name).unwrap_or(Value::Null);
            if let Verdict::Refuse(why) = ignored_key_verdict(&child, &value) {
                return Err(ConfigError::Unsafe { key: child, message: format!("not supported by clawgate: {why}") });
            }
            ignored.push(child);
        } else {
            return Err(unknown_key(&child, &name, siblings(path)));
        }
    }
    Ok(())
}

/// The known keys directly below `parent`, by their last segment.
fn siblings(parent: &str) -> impl Iterator<Item = &'static str> + '_ {
    let prefix = format!("{parent}.");
    let openclaw = openclaw_keys().gateway.iter().map(String::as_str);
    READ_BY_CLAWGATE.iter().copied().chain(openclaw).filter_map(move |k| {
        let rest = k.strip_prefix(prefix.as_str())?;
        (!rest.contains('.') && !rest.contains('[')).then_some(rest)
    })
}

fn unknown_key<'a>(path: &str, name: &str, known: impl Iterator<Item = &'a str>) -> ConfigError {
    let message = match closest(name, known) {
        Some(best) => format!("not a clawgate or OpenClaw key; did you mean `{best}`?"),
        None => "not a clawgate or OpenClaw key".to_owned(),
    };
    ConfigError::UnknownKey { key: path.to_owned(), message }
}

/// The candidate nearest to `name` by edit distance (case-insensitive),
/// if any is near enough to be a likely misspelling.
pub fn closest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let lower = name.to_ascii_lowercase();
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let d = edit_distance(&lower, &c.to_ascii_lowercase());
        if best.is_none_or(|(bd, bc)| d < bd || (d == bd && c < bc)) {
            best = Some((d, c));
        }
    }
    let limit = (name.chars().count() / 2).max(2);
    best.filter(|(d, _)| *d <= limit).map(|(_, c)| c)
}

/// Levenshtein distance over chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1).min(row[j] + 1).min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_edits() {
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("tokn", "token"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn closest_prefers_the_nearest_and_refuses_far_ones() {
        let c = ["port", "bind", "auth", "trustedProxies"];
        assert_eq!(closest("trustedProxy", c.iter().copied()), Some("trustedProxies"));
        assert_eq!(closest("prot", c.iter().copied()), Some("port"));
        assert_eq!(closest("zzzzzzzzzz", c.iter().copied()), None);
    }

    #[test]
    fn every_key_clawgate_reads_from_openclaw_is_still_an_openclaw_key() {
        let keys = openclaw_keys();
        for shared in [
            "gateway.port",
            "gateway.bind",
            "gateway.auth.mode",
            "gateway.auth.token",
            "gateway.auth.password",
            "gateway.auth.trustedProxy.userHeader",
            "gateway.trustedProxies",
            "gateway.controlUi.allowedOrigins",
            "gateway.nodes.pairing.autoApproveLocal",
        ] {
            assert!(keys.gateway.iter().any(|k| k == shared), "{shared}");
        }
    }
}
