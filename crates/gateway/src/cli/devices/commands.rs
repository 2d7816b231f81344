//! The device commands, on any backend: pick what to act on, show it, act.

use std::process::ExitCode;

use clawgate::server::now_ms;
use clawgate::store::{Role, StoreError, LATEST_WINDOW_MS};
use clawgate_protocol::scopes::{self, ADMIN};
use serde_json::Value;

use super::backend::DeviceAdmin;
use super::render::{
    fingerprint, items, print_paired, print_pending, print_rejected, printable_value, relative, s, scopes_text, short,
    strings, what_it_is,
};
use super::{ApproveArgs, DeviceArgs, ListArgs, RequestArgs, RoleArg, RoleArgs, RotateArgs, UnrejectArgs};
use crate::cli::error::CliError;

pub(super) async fn list(backend: &impl DeviceAdmin, args: &ListArgs) -> Result<ExitCode, CliError> {
    let listing = backend.list().await?;
    let offline = backend.offline();
    if args.json {
        use std::io::Write;
        let text = serde_json::to_string_pretty(&listing).unwrap_or_default();
        let text = clawgate_protocol::text::printable_json(&text);
        // A closed pipe (`| head`) is not an error worth a panic.
        let _ = writeln!(std::io::stdout(), "{text}");
        return Ok(ExitCode::SUCCESS);
    }
    let now = now_ms();
    let pending = items(&listing, "pending");
    let paired = items(&listing, "paired");
    if offline {
        println!("(read from the pairing store directly: --offline)");
    }
    if pending.is_empty() {
        println!("No pending pairing requests.");
    } else {
        println!("Pending pairing requests ({}):", pending.len());
        for r in &pending {
            print_pending(r, now);
        }
        println!("  approve with `clawgate devices approve <requestId>` (or --latest); names are self-reported");
    }
    if paired.is_empty() {
        println!("No paired devices.");
    } else {
        println!("Paired devices ({}):", paired.len());
        for d in &paired {
            print_paired(d, now);
        }
    }
    let rejected = items(&listing, "rejected");
    if !rejected.is_empty() {
        println!("Recently rejected, in their cool-down ({}):", rejected.len());
        for r in &rejected {
            print_rejected(r, now);
        }
        println!("  lift one with `clawgate devices unreject <device>` so the device may ask again now");
    }
    Ok(ExitCode::SUCCESS)
}

/// Resolve `given` (a full id or a unique prefix) among `ids`. `None`: no match.
fn resolve<'a>(
    given: &str,
    ids: impl Iterator<Item = &'a str> + Clone,
    what: &'static str,
) -> Result<Option<String>, CliError> {
    crate::cli::error::check_id_prefix(given, what)?;
    if let Some(exact) = ids.clone().find(|id| *id == given) {
        return Ok(Some(exact.to_owned()));
    }
    let mut matches: Vec<&str> = ids.filter(|id| id.starts_with(given)).collect();
    matches.sort_unstable();
    matches.dedup();
    match matches.len() {
        0 => Ok(None),
        1 => Ok(Some(matches[0].to_owned())),
        _ => Err(CliError::AmbiguousId {
            given: given.to_owned(),
            what,
            matches: matches.into_iter().map(str::to_owned).collect(),
        }),
    }
}

/// The requests an ambiguous approval could mean, each with what tells
/// look-alikes apart: the key fingerprint and the source address.
fn print_candidates(requests: &[Value], now: u64) {
    eprintln!("Candidates:");
    for r in requests {
        let device = s(r, "deviceId").unwrap_or("?");
        eprintln!(
            "  {}  device {}  {}  role {}  scopes {}  retried {}",
            s(r, "requestId").unwrap_or("?"),
            short(device),
            what_it_is(r),
            s(r, "role").unwrap_or("?"),
            scopes_text(&strings(r, "scopes")),
            r.get("refreshedAtMs").and_then(Value::as_u64).map(|t| relative(t, now)).unwrap_or_default()
        );
        eprintln!(
            "      key {}, from {}",
            fingerprint(s(r, "publicKey"), device),
            s(r, "remoteIp").unwrap_or("(address unknown)")
        );
    }
}

/// Pick the request to approve and show what approving it grants.
fn choose(args: &ApproveArgs, pending: &[Value], now: u64) -> Result<(String, Option<Value>), CliError> {
    let ids = pending.iter().filter_map(|r| s(r, "requestId"));
    if let Some(given) = &args.request_id {
        let id = resolve(given, ids, "pending request")?;
        return Ok(match id {
            Some(id) => {
                let r = pending.iter().find(|r| s(r, "requestId") == Some(id.as_str())).cloned();
                (id, r)
            }
            // Not open: let the store say why (superseded, expired, resolved, unknown).
            None => (given.clone(), None),
        });
    }
    let candidates: Vec<Value> = if let Some(device) = &args.device {
        let device_ids = pending.iter().filter_map(|r| s(r, "deviceId"));
        let Some(device) = resolve(device, device_ids, "device")? else {
            return Err(CliError::Store(StoreError::NoPendingRequest { device_id: Some(device.clone()) }));
        };
        let of_device: Vec<Value> =
            pending.iter().filter(|r| s(r, "deviceId") == Some(device.as_str())).cloned().collect();
        if of_device.len() > 1 {
            print_candidates(&of_device, now);
            let ids = of_device.iter().filter_map(|r| s(r, "requestId")).map(str::to_owned).collect();
            return Err(CliError::Store(StoreError::AmbiguousDevice { device_id: device, ids }));
        }
        of_device
    } else {
        let since = now.saturating_sub(LATEST_WINDOW_MS);
        let recent: Vec<Value> = pending
            .iter()
            .filter(|r| r.get("refreshedAtMs").and_then(Value::as_u64).is_some_and(|t| t >= since))
            .cloned()
            .collect();
        if recent.len() > 1 {
            print_candidates(&recent, now);
            let ids = recent.iter().filter_map(|r| s(r, "requestId")).map(str::to_owned).collect();
            return Err(CliError::Store(StoreError::AmbiguousLatest { ids }));
        }
        if recent.is_empty() {
            return Err(CliError::Store(StoreError::NoPendingRequest { device_id: None }));
        }
        recent
    };
    let r = candidates.into_iter().next().ok_or(CliError::Store(StoreError::NoPendingRequest { device_id: None }))?;
    Ok((s(&r, "requestId").unwrap_or_default().to_owned(), Some(r)))
}

/// `--device` names no device with an open request but one in its rejection
/// cool-down: the device to lift the rejection of.
fn rejected_only(given: &str, listing: &Value) -> Result<Option<String>, CliError> {
    let pending = items(listing, "pending");
    if resolve(given, pending.iter().filter_map(|r| s(r, "deviceId")), "device")?.is_some() {
        return Ok(None);
    }
    let rejected = items(listing, "rejected");
    resolve(given, rejected.iter().filter_map(|r| s(r, "deviceId")), "rejected device")
}

pub(super) async fn approve(backend: &impl DeviceAdmin, args: &ApproveArgs) -> Result<ExitCode, CliError> {
    let listing = backend.list().await?;
    let now = now_ms();
    if let Some(device) = args.device.as_deref().map(|d| rejected_only(d, &listing)).transpose()?.flatten() {
        // Nothing to approve yet: the rejection closed its request. Lifting
        // the cool-down lets the device ask again, and that request is approved.
        println!("Device {} has no open request: it was rejected and is in its cool-down.", short(&device));
        return lift(backend, &device, None).await;
    }
    let pending = items(&listing, "pending");
    let (request_id, request) = choose(args, &pending, now)?;
    // An approver grants only what it holds; a node role needs admin.
    let mut needed = request.as_ref().map(|r| strings(r, "scopes")).unwrap_or_default();
    if request.as_ref().is_none_or(|r| s(r, "role") != Some("operator")) {
        needed.push(scopes::ADMIN.to_owned());
    }
    backend.widen(&needed).await?;
    if let Some(r) = &request {
        let device = s(r, "deviceId").unwrap_or("?");
        println!("Approving pairing request {request_id}:");
        println!("  device       {device}");
        println!("  key          {}", fingerprint(s(r, "publicKey"), device));
        println!("  role         {}", s(r, "role").unwrap_or("?"));
        println!("  scopes       {}", scopes_text(&strings(r, "scopes")));
        println!("  what         {}", what_it_is(r));
        if let Some(user) = s(r, "proxyUser") {
            println!("  proxy user   {user} (the device will be bound to this user)");
        }
        if let Some(ip) = s(r, "remoteIp") {
            println!("  from         {ip}");
        }
        if let Some(ts) = r.get("refreshedAtMs").and_then(Value::as_u64) {
            println!("  last asked   {}", relative(ts, now));
        }
    }
    let result = printable_value(backend.approve(&request_id).await?);
    let device = s(&result, "deviceId").unwrap_or("?");
    let d = result.get("device").cloned().unwrap_or(Value::Null);
    println!(
        "Approved {}: device {} is paired for role {} with scopes {} (approved via {}).",
        s(&result, "requestId").unwrap_or(&request_id),
        short(device),
        s(&result, "role").unwrap_or("?"),
        scopes_text(&strings(&result, "scopes")),
        s(&d, "approvedVia").unwrap_or(if backend.offline() { "cli-offline" } else { "the gateway" })
    );
    let all = strings(&d, "approvedScopes");
    if !all.is_empty() && all != strings(&result, "scopes") {
        println!("  the device now holds {}", scopes_text(&all));
    }
    println!("  it receives its device token when it next connects.");
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn reject(backend: &impl DeviceAdmin, args: &RequestArgs) -> Result<ExitCode, CliError> {
    let listing = backend.list().await?;
    let pending = items(&listing, "pending");
    let id = resolve(&args.request_id, pending.iter().filter_map(|r| s(r, "requestId")), "pending request")?
        .unwrap_or_else(|| args.request_id.clone());
    let result = printable_value(backend.reject(&id).await?);
    let until = result.get("cooldownUntilMs").and_then(Value::as_u64);
    println!(
        "Rejected pairing request {id} (device {}). It may ask again {}.",
        short(s(&result, "deviceId").unwrap_or("?")),
        until.map(|u| relative(u, now_ms())).unwrap_or_else(|| "after the cooldown".into())
    );
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn unreject(backend: &impl DeviceAdmin, args: &UnrejectArgs) -> Result<ExitCode, CliError> {
    let listing = backend.list().await?;
    let rejected = items(&listing, "rejected");
    let id = resolve(args.device_id(), rejected.iter().filter_map(|r| s(r, "deviceId")), "rejected device")?
        .unwrap_or_else(|| args.device_id().to_owned());
    lift(backend, &id, args.role.map(RoleArg::role)).await
}

/// End the cool-down(s) of `device_id` and say what changed.
async fn lift(backend: &impl DeviceAdmin, device_id: &str, role: Option<Role>) -> Result<ExitCode, CliError> {
    let result = backend.unreject(device_id, role).await?;
    let roles = strings(&result, "roles");
    if roles.is_empty() {
        println!("Device {} is in no rejection cool-down; nothing to do.", short(device_id));
    } else {
        println!(
            "Lifted the rejection of device {} (role {}): it may ask to pair again now; approve its request \
             when it does (`clawgate devices approve --device {}`).",
            short(device_id),
            roles.join(", "),
            short(device_id)
        );
    }
    offline_note(backend);
    Ok(ExitCode::SUCCESS)
}

/// A paired device by full id or unique prefix; unknown ids pass through so
/// the store or gateway names them.
fn paired_device(listing: &Value, given: &str) -> Result<(String, Option<Value>), CliError> {
    let paired = items(listing, "paired");
    let id = resolve(given, paired.iter().filter_map(|d| s(d, "deviceId")), "paired device")?;
    Ok(match id {
        Some(id) => {
            let d = paired.iter().find(|d| s(d, "deviceId") == Some(id.as_str())).cloned();
            (id, d)
        }
        None => (given.to_owned(), None),
    })
}

fn offline_note(backend: &impl DeviceAdmin) {
    if backend.offline() {
        println!("  (written to the store directly: a running gateway notices within a few seconds and closes the sessions it invalidates)");
    }
}

pub(super) async fn remove(backend: &impl DeviceAdmin, args: &DeviceArgs) -> Result<ExitCode, CliError> {
    let listing = backend.list().await?;
    let (id, device) = paired_device(&listing, &args.device_id)?;
    if device.as_ref().is_none_or(|d| strings(d, "roles").iter().any(|r| r != "operator")) {
        backend.widen(&[scopes::ADMIN.to_owned()]).await?;
    }
    let result = printable_value(backend.remove(&id).await?);
    let what = device.as_ref().map(|d| format!(" ({})", what_it_is(d))).unwrap_or_default();
    println!("Removed device {id}{what} and its tokens; it must pair again to connect.");
    if let Some(n) = result.get("closedSessions").and_then(Value::as_u64) {
        println!("  closed {n} live session(s)");
    }
    offline_note(backend);
    Ok(ExitCode::SUCCESS)
}

/// The role given, or the device's only approved role.
fn pick_role(given: Option<RoleArg>, device: Option<&Value>, id: &str) -> Result<Role, CliError> {
    if let Some(r) = given {
        return Ok(r.role());
    }
    let Some(d) = device else {
        return Err(CliError::Store(StoreError::UnknownDevice { device_id: id.to_owned() }));
    };
    let roles: Vec<Role> = strings(d, "roles").iter().filter_map(|r| Role::parse(r)).collect();
    match roles.as_slice() {
        [one] => Ok(*one),
        [] => Err(CliError::NoApprovedRole { device_id: id.to_owned() }),
        _ => Err(CliError::RoleRequired { device_id: id.to_owned(), roles }),
    }
}

pub(super) async fn rotate(backend: &impl DeviceAdmin, args: RotateArgs) -> Result<ExitCode, CliError> {
    let RotateArgs { inner, scopes } = args;
    let listing = backend.list().await?;
    let (id, device) = paired_device(&listing, inner.device_id())?;
    let role = pick_role(inner.role, device.as_ref(), &id)?;
    let scopes = scopes.map(|s| s.into_iter().map(|x| x.trim().to_owned()).filter(|x| !x.is_empty()).collect());
    // Another device's token: admin (the CLI has no device of its own).
    backend.widen(&[ADMIN.to_owned()]).await?;
    let result = printable_value(backend.rotate(&id, role, scopes).await?);
    println!(
        "Rotated the {} token of device {} (scopes {}); the old token stopped working.",
        role.as_str(),
        short(&id),
        scopes_text(&strings(&result, "scopes"))
    );
    match result.get("token").and_then(Value::as_str) {
        Some(token) => println!("  new token (shown once): {token}"),
        None => println!(
            "  the new token is not shown: the device receives it in hello-ok when it next connects \
                 with its key and the gateway credential"
        ),
    }
    offline_note(backend);
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn revoke(backend: &impl DeviceAdmin, args: &RoleArgs) -> Result<ExitCode, CliError> {
    let listing = backend.list().await?;
    let (id, device) = paired_device(&listing, args.device_id())?;
    let role = pick_role(args.role, device.as_ref(), &id)?;
    backend.widen(&[ADMIN.to_owned()]).await?;
    let result = printable_value(backend.revoke(&id, role).await?);
    if result.get("revoked").and_then(Value::as_bool) == Some(false) {
        println!("The {} token of device {} was already revoked; nothing to do.", role.as_str(), short(&id));
    } else {
        println!(
            "Revoked the {} token of device {}; the device stays paired and gets a new token when it next \
                 connects with its key and the gateway credential (remove it to unpair).",
            role.as_str(),
            short(&id)
        );
    }
    if let Some(n) = result.get("closedSessions").and_then(Value::as_u64) {
        println!("  closed {n} live session(s)");
    }
    offline_note(backend);
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_resolve_by_unique_prefix() {
        let ids = ["abcdef", "abc123", "ffff"];
        assert_eq!(resolve("ffff", ids.iter().copied(), "x").unwrap(), Some("ffff".into()));
        assert_eq!(resolve("abcd", ids.iter().copied(), "x").unwrap(), Some("abcdef".into()));
        assert_eq!(resolve("zzzz", ids.iter().copied(), "x").unwrap(), None);
        let e = resolve("abc1", ["abc123", "abc124"].iter().copied(), "x").unwrap_err();
        assert_eq!(e.code(), "AMBIGUOUS_ID");
        // Empty and too-short prefixes are refused, even with one candidate.
        for short in ["", " ", "a", "abc"] {
            assert_eq!(resolve(short, ["abcdef"].iter().copied(), "x").unwrap_err().code(), "INVALID_INPUT");
        }
    }
}
