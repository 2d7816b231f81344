//! How devices and requests are shown: ids, key fingerprints, times.
//! Everything from the gateway or the store passes through
//! [`printable_value`] first: names are self-reported, and a terminal
//! obeys escape sequences in them.

use clawgate_protocol::device_key::{decode_public_key, derive_device_id};
use clawgate_protocol::text::printable;
use serde_json::Value;

/// `v` with every string (keys included) escaped by [`printable`].
pub(super) fn printable_value(v: Value) -> Value {
    match v {
        Value::String(s) => Value::String(printable(&s).into_owned()),
        Value::Array(a) => Value::Array(a.into_iter().map(printable_value).collect()),
        Value::Object(o) => {
            Value::Object(o.into_iter().map(|(k, v)| (printable(&k).into_owned(), printable_value(v))).collect())
        }
        other => other,
    }
}

pub(super) fn s<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

pub(super) fn strings(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default()
}

pub(super) fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// `sha256:` and the first 16 hex of SHA-256 over the raw public key (which
/// is also how the device id is derived, so the two must agree).
pub(super) fn fingerprint(public_key: Option<&str>, device_id: &str) -> String {
    match public_key.and_then(decode_public_key) {
        Some(raw) => {
            let hex = derive_device_id(&raw);
            let fp = format!("sha256:{}", &hex[..16]);
            if hex == device_id {
                fp
            } else {
                format!("{fp} (DOES NOT MATCH the device id)")
            }
        }
        None => "unknown (the public key is not a base64url Ed25519 key)".to_owned(),
    }
}

pub(super) fn relative(ms: u64, now: u64) -> String {
    let (delta, future) = if ms > now { (ms - now, true) } else { (now - ms, false) };
    let secs = delta / 1000;
    let amount = match secs {
        0..=4 => return if future { "in a moment".into() } else { "just now".into() },
        5..=59 => format!("{secs} s"),
        60..=3599 => format!("{} min", secs / 60),
        3600..=86_399 => format!("{} h", secs / 3600),
        _ => format!("{} d", secs / 86_400),
    };
    if future {
        format!("in {amount}")
    } else {
        format!("{amount} ago")
    }
}

pub(super) fn scopes_text(scopes: &[String]) -> String {
    if scopes.is_empty() {
        "(none)".to_owned()
    } else {
        scopes.join(", ")
    }
}

/// "client cli/cli, platform linux, name "x" (self-reported)".
pub(super) fn what_it_is(v: &Value) -> String {
    let mut parts = Vec::new();
    match (s(v, "clientId"), s(v, "clientMode")) {
        (Some(id), Some(mode)) => parts.push(format!("client {id}/{mode}")),
        (Some(id), None) => parts.push(format!("client {id}")),
        _ => parts.push("client (unknown)".to_owned()),
    }
    if let Some(p) = s(v, "platform") {
        parts.push(format!("platform {p}"));
    }
    if let Some(f) = s(v, "deviceFamily") {
        parts.push(format!("family {f}"));
    }
    // Offline JSON keeps the operator's label apart from the self-reported
    // name; the gateway's `displayName` is the label if set, else the name.
    let (label, name) = if v.get("selfReportedName").is_some() {
        (s(v, "label"), s(v, "selfReportedName"))
    } else {
        (None, s(v, "displayName"))
    };
    if let Some(l) = label {
        parts.push(format!("label {l:?}"));
    }
    if let Some(n) = name {
        parts.push(format!("name {n:?} (self-reported)"));
    }
    parts.join(", ")
}

pub(super) fn print_pending(r: &Value, now: u64) {
    let id = s(r, "requestId").unwrap_or("?");
    let device = s(r, "deviceId").unwrap_or("?");
    println!(
        "  {id}  device {}  role {}  scopes {}",
        short(device),
        s(r, "role").unwrap_or("?"),
        scopes_text(&strings(r, "scopes"))
    );
    println!("      {}", what_it_is(r));
    if let Some(user) = s(r, "proxyUser") {
        println!("      asked as proxy user {user}: approving binds the device to that user");
    }
    let mut line = format!("key {}", fingerprint(s(r, "publicKey"), device));
    if let Some(ip) = s(r, "remoteIp") {
        line.push_str(&format!(", from {ip}"));
    }
    if let Some(ts) = r.get("ts").and_then(Value::as_u64) {
        line.push_str(&format!(", asked {}", relative(ts, now)));
    }
    if let Some(t) = r.get("refreshedAtMs").and_then(Value::as_u64) {
        if r.get("ts").and_then(Value::as_u64) != Some(t) {
            line.push_str(&format!(", last retry {}", relative(t, now)));
        }
    }
    if let Some(t) = r.get("expiresAtMs").and_then(Value::as_u64) {
        line.push_str(&format!(", expires {}", relative(t, now)));
    }
    println!("      {line}");
}

/// A rejection cool-down in force: who was rejected, and until when.
pub(super) fn print_rejected(r: &Value, now: u64) {
    let device = s(r, "deviceId").unwrap_or("?");
    let until = r.get("cooldownUntilMs").and_then(Value::as_u64);
    println!(
        "  {}  role {}  may ask again {}",
        short(device),
        s(r, "role").unwrap_or("?"),
        until.map(|u| relative(u, now)).unwrap_or_else(|| "after the cool-down".into())
    );
    if r.get("requestId").is_some() {
        println!("      {}", what_it_is(r));
    }
    let mut line = format!("key {}", fingerprint(s(r, "publicKey"), device));
    if let Some(ip) = s(r, "remoteIp") {
        line.push_str(&format!(", from {ip}"));
    }
    if let Some(t) = r.get("rejectedAtMs").and_then(Value::as_u64) {
        line.push_str(&format!(", rejected {}", relative(t, now)));
    }
    println!("      {line}");
}

pub(super) fn print_paired(d: &Value, now: u64) {
    let device = s(d, "deviceId").unwrap_or("?");
    let roles = strings(d, "roles");
    println!(
        "  {}  role{} {}  scopes {}",
        short(device),
        if roles.len() == 1 { "" } else { "s" },
        if roles.is_empty() { "(none)".to_owned() } else { roles.join(", ") },
        scopes_text(&strings(d, "approvedScopes"))
    );
    println!("      {}", what_it_is(d));
    if let Some(user) = s(d, "proxyUser") {
        println!("      bound to proxy user {user}");
    }
    let mut line = format!("key {}", fingerprint(s(d, "publicKey"), device));
    line.push_str(&format!(", approved via {}", s(d, "approvedVia").unwrap_or("?")));
    if let Some(t) = d.get("approvedAtMs").and_then(Value::as_u64) {
        line.push_str(&format!(" {}", relative(t, now)));
    }
    if let Some(t) = d.get("createdAtMs").and_then(Value::as_u64) {
        line.push_str(&format!(", created {}", relative(t, now)));
    }
    match d.get("lastSeenAtMs").and_then(Value::as_u64) {
        Some(t) => line.push_str(&format!(", last seen {}", relative(t, now))),
        None => line.push_str(", never seen"),
    }
    if let Some(ip) = s(d, "remoteIp") {
        line.push_str(&format!(" from {ip}"));
    }
    println!("      {line}");
    let tokens: Vec<String> = d
        .get("tokens")
        .and_then(Value::as_array)
        .map(|ts| {
            ts.iter()
                .map(|t| {
                    let role = s(t, "role").unwrap_or("?");
                    if let Some(r) = t.get("revokedAtMs").and_then(Value::as_u64) {
                        return format!("{role} revoked {}", relative(r, now));
                    }
                    let issued =
                        t.get("rotatedAtMs").and_then(Value::as_u64).or(t.get("createdAtMs").and_then(Value::as_u64));
                    let mut out = format!("{role} issued {}", issued.map(|i| relative(i, now)).unwrap_or_default());
                    if let Some(u) = t.get("lastUsedAtMs").and_then(Value::as_u64) {
                        out.push_str(&format!(", used {}", relative(u, now)));
                    }
                    out
                })
                .collect()
        })
        .unwrap_or_default();
    if !tokens.is_empty() {
        println!("      tokens: {}", tokens.join("; "));
    }
}

/// The entries under `key`, made printable.
pub(super) fn items(listing: &Value, key: &str) -> Vec<Value> {
    listing.get(key).and_then(Value::as_array).cloned().unwrap_or_default().into_iter().map(printable_value).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times() {
        assert_eq!(relative(1_000, 1_000), "just now");
        assert_eq!(relative(0, 12_000), "12 s ago");
        assert_eq!(relative(0, 5 * 60_000), "5 min ago");
        assert_eq!(relative(4 * 60_000, 0), "in 4 min");
        assert_eq!(relative(0, 3 * 3_600_000), "3 h ago");
        assert_eq!(relative(0, 2 * 86_400_000), "2 d ago");
    }

    #[test]
    fn self_reported_names_print_escaped() {
        let r = serde_json::json!({"clientId": "cli", "clientMode": "cli",
            "platform": "linux\u{1b}[1A\r\u{1b}[83C\u{1b}[Koperator.read", "deviceFamily": "a\u{202e}b"});
        let shown = what_it_is(&printable_value(r));
        assert!(!shown.chars().any(clawgate_protocol::text::is_non_printing), "{shown:?}");
        assert!(shown.contains("linux\\u{1b}[1A\\u{d}"), "{shown}");
    }

    #[test]
    fn fingerprint_is_the_key_digest() {
        let id = clawgate_client::DeviceIdentity::from_seed([7; 32]);
        let fp = fingerprint(Some(&id.public_key_b64url()), &id.device_id());
        assert_eq!(fp, format!("sha256:{}", &id.device_id()[..16]));
        assert!(fingerprint(Some(&id.public_key_b64url()), &"0".repeat(64)).contains("DOES NOT MATCH"));
    }
}
