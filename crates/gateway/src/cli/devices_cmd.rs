//! `clawgate devices list | approve | reject | remove | rotate | revoke`.
//!
//! By default every command works through the running gateway: the CLI
//! connects as a local `cli`/`cli` client with the gateway credential, asks
//! for `operator.admin` and `operator.pairing`, and calls the `device.pair.*`
//! and `device.token.*` methods. With `--offline` it opens the pairing store
//! in the state directory directly (approvals are recorded as
//! `cli-offline`). `--offline` is never chosen automatically: when the
//! gateway cannot be reached, the error says to pass it.
//!
//! Approving works only on requests a device already opened; the CLI never
//! presents a device identity, so approving can never create a request.

use std::path::PathBuf;
use std::process::ExitCode;

use base64::Engine;
use clap::{ArgGroup, Args, Subcommand, ValueEnum};
use clawgate_client::{Client, ClientError, ConnectOptions};
use clawgate_protocol::scopes::{self, not_covered};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::gateway_cmd::{load_config, ConfigArgs};
use clawgate::config::ConfigSources;
use clawgate::server::now_ms;
use clawgate::state::StateDir;
use clawgate::store::json::{paired_json, pending_json};
use clawgate::store::{Approval, ApprovedVia, PairingStore, Role, SqliteStore, StoreError, LATEST_WINDOW_MS};

/// What the CLI asks for when it connects to manage devices.
const CLI_SCOPES: &[&str] = &[scopes::ADMIN, scopes::PAIRING];
const OFFLINE_HINT: &str = "to manage the pairing store without the gateway, pass --offline";

#[derive(Subcommand)]
pub enum DevicesCommand {
    /// List pending pairing requests and paired devices.
    List(ListArgs),
    /// Approve a pending pairing request (by id, by device, or the latest one).
    Approve(ApproveArgs),
    /// Reject a pending pairing request (the device may ask again after 10 minutes).
    Reject(RequestArgs),
    /// Remove a paired device and its tokens.
    Remove(DeviceArgs),
    /// Replace a device's token; the old one stops working at once.
    Rotate(RotateArgs),
    /// Revoke a device's token.
    Revoke(RoleArgs),
}

/// Where the command works: through the gateway, or on the store file.
#[derive(Args, Clone)]
pub struct Target {
    /// Work on the pairing store in the state directory directly, without the
    /// gateway (`$CLAWGATE_STATE_DIR/clawgate.sqlite`). Never chosen automatically.
    #[arg(long, conflicts_with_all = ["url", "token"])]
    offline: bool,
    #[command(flatten)]
    config: ConfigArgs,
    /// Gateway URL. Default: ws://127.0.0.1:<configured port>.
    #[arg(long)]
    url: Option<String>,
    /// Token to present (default: the configured or generated one). Visible
    /// in the process list: prefer OPENCLAW_GATEWAY_TOKEN.
    #[arg(long)]
    token: Option<String>,
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
}

#[derive(Args)]
pub struct ListArgs {
    /// Print the raw result (`device.pair.list`'s JSON).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    target: Target,
}

#[derive(Args)]
#[command(group(ArgGroup::new("which").required(true).args(["request_id", "device", "latest"])))]
pub struct ApproveArgs {
    /// The request id shown by `clawgate devices list` (a unique prefix is enough).
    request_id: Option<String>,
    /// Approve the open request of this device (id or unique prefix).
    #[arg(long)]
    device: Option<String>,
    /// Approve the single request that arrived or was retried in the last 5
    /// minutes; refuses when there are several.
    #[arg(long)]
    latest: bool,
    #[command(flatten)]
    target: Target,
}

#[derive(Args)]
pub struct RequestArgs {
    /// The request id (a unique prefix is enough).
    request_id: String,
    #[command(flatten)]
    target: Target,
}

#[derive(Args)]
pub struct DeviceArgs {
    /// The device id (a unique prefix is enough).
    device_id: String,
    #[command(flatten)]
    target: Target,
}

#[derive(Clone, Copy, ValueEnum)]
enum RoleArg {
    Operator,
    Node,
}

impl RoleArg {
    fn role(self) -> Role {
        match self {
            RoleArg::Operator => Role::Operator,
            RoleArg::Node => Role::Node,
        }
    }
}

#[derive(Args)]
pub struct RoleArgs {
    /// The device id (a unique prefix is enough).
    device_id: String,
    /// The token's role. Default: the device's only approved role.
    #[arg(long, value_enum)]
    role: Option<RoleArg>,
    #[command(flatten)]
    target: Target,
}

#[derive(Args)]
pub struct RotateArgs {
    #[command(flatten)]
    inner: RoleArgs,
    /// Scopes of the new operator token, comma-separated (within the approved
    /// scopes). Default: the current token's scopes.
    #[arg(long, value_delimiter = ',')]
    scopes: Option<Vec<String>>,
}

pub fn run(cmd: DevicesCommand) -> Result<ExitCode, String> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    runtime.block_on(async move {
        match cmd {
            DevicesCommand::List(a) => list(a).await,
            DevicesCommand::Approve(a) => approve(a).await,
            DevicesCommand::Reject(a) => reject(a).await,
            DevicesCommand::Remove(a) => remove(a).await,
            DevicesCommand::Rotate(a) => rotate(a).await,
            DevicesCommand::Revoke(a) => revoke(a).await,
        }
    })
}

// ---- backends ---------------------------------------------------------------

/// The gateway (through its methods) or the store file (directly).
enum Backend {
    Online(Box<Client>),
    Offline(SqliteStore),
}

fn store_err(e: StoreError) -> String {
    format!("[{}] {e}", e.code())
}

fn rpc_err(e: ClientError) -> String {
    match &e {
        ClientError::Rpc(shape) | ClientError::Refused(shape) => {
            let code = shape.details_code().unwrap_or(&shape.code);
            let mut out = format!("[{code}] {}", shape.message);
            if let Some(reason) = shape.details.as_ref().and_then(|d| d.get("reason")).and_then(Value::as_str) {
                out.push_str(&format!(" ({reason})"));
            }
            if let Some(hint) = shape.details.as_ref().and_then(|d| d.get("remediationHint")).and_then(Value::as_str) {
                out.push_str(&format!("\n  hint: {hint}"));
            }
            out
        }
        _ => e.to_string(),
    }
}

impl Backend {
    async fn open(t: &Target) -> Result<Backend, String> {
        if t.offline {
            open_offline().map(Backend::Offline)
        } else {
            connect(t).await.map(|c| Backend::Online(Box::new(c)))
        }
    }

    fn offline(&self) -> bool {
        matches!(self, Backend::Offline(_))
    }

    async fn call(&self, method: &str, params: Value) -> Result<Value, String> {
        match self {
            Backend::Online(c) => c.request(method, Some(params)).await.map_err(rpc_err),
            Backend::Offline(_) => Err(format!("{method} is not available offline")),
        }
    }

    /// `{pending: [...], paired: [...]}`, shaped like `device.pair.list`.
    async fn list(&self) -> Result<Value, String> {
        match self {
            Backend::Online(_) => self.call("device.pair.list", json!({})).await,
            Backend::Offline(s) => {
                let pending = s.open_requests(now_ms()).map_err(store_err)?;
                let mut paired = Vec::new();
                for d in s.list_devices().map_err(store_err)? {
                    let tokens = s.tokens(&d.device_id).map_err(store_err)?;
                    paired.push(paired_json(&d, &tokens));
                }
                Ok(json!({ "pending": pending.iter().map(pending_json).collect::<Vec<_>>(), "paired": paired }))
            }
        }
    }

    async fn approve(&self, request_id: &str) -> Result<Value, String> {
        match self {
            Backend::Online(_) => self.call("device.pair.approve", json!({ "requestId": request_id })).await,
            Backend::Offline(s) => {
                let a: Approval = s.approve(request_id, ApprovedVia::CliOffline, now_ms()).map_err(store_err)?;
                Ok(json!({
                    "requestId": a.request.request_id,
                    "deviceId": a.device.device_id,
                    "role": a.request.role.as_str(),
                    "scopes": a.request.scopes,
                    "device": paired_json(&a.device, &[]),
                }))
            }
        }
    }

    async fn reject(&self, request_id: &str) -> Result<Value, String> {
        match self {
            Backend::Online(_) => self.call("device.pair.reject", json!({ "requestId": request_id })).await,
            Backend::Offline(s) => {
                let r = s.reject(request_id, now_ms()).map_err(store_err)?;
                Ok(json!({
                    "requestId": r.request.request_id,
                    "deviceId": r.request.device_id,
                    "decision": "rejected",
                    "cooldownUntilMs": r.cooldown_until_ms,
                }))
            }
        }
    }

    async fn remove(&self, device_id: &str) -> Result<Value, String> {
        match self {
            Backend::Online(_) => self.call("device.pair.remove", json!({ "deviceId": device_id })).await,
            Backend::Offline(s) => {
                s.remove_device(device_id, now_ms()).map_err(store_err)?;
                Ok(json!({ "deviceId": device_id, "removed": true }))
            }
        }
    }

    async fn rotate(&self, device_id: &str, role: Role, scopes: Option<Vec<String>>) -> Result<Value, String> {
        match self {
            Backend::Online(_) => {
                let mut params = json!({ "deviceId": device_id, "role": role.as_str() });
                if let Some(s) = scopes {
                    params["scopes"] = json!(s);
                }
                self.call("device.token.rotate", params).await
            }
            Backend::Offline(s) => {
                // The same choices as the gateway's device.token.rotate.
                let view = s.view(device_id).map_err(store_err)?;
                let device = view
                    .device
                    .ok_or_else(|| store_err(StoreError::UnknownDevice { device_id: device_id.to_owned() }))?;
                if !device.has_role(role) {
                    return Err(store_err(StoreError::RoleNotApproved { device_id: device_id.to_owned(), role }));
                }
                let current = view.tokens.iter().find(|t| t.role == role && !t.is_revoked());
                let scopes = match role {
                    Role::Node => Vec::new(),
                    Role::Operator => scopes
                        .or_else(|| current.map(|t| t.scopes.clone()))
                        .unwrap_or_else(|| device.approved_scopes.clone()),
                };
                let missing = not_covered(&scopes, &device.approved_scopes);
                if !missing.is_empty() {
                    return Err(store_err(StoreError::ScopesNotApproved { device_id: device_id.to_owned(), missing }));
                }
                let now = now_ms();
                // The new token is not shown: like the gateway, the CLI does
                // not hand one device's token to someone else.
                s.issue_token(device_id, role, &scopes, now).map_err(store_err)?;
                Ok(json!({
                    "deviceId": device_id,
                    "role": role.as_str(),
                    "scopes": scopes,
                    "rotatedAtMs": now,
                    "tokenDelivery": "withheld-cross-device",
                }))
            }
        }
    }

    async fn revoke(&self, device_id: &str, role: Role) -> Result<Value, String> {
        match self {
            Backend::Online(_) => {
                self.call("device.token.revoke", json!({ "deviceId": device_id, "role": role.as_str() })).await
            }
            Backend::Offline(s) => {
                let now = now_ms();
                let revoked = s.revoke_token(device_id, role, now).map_err(store_err)?;
                Ok(json!({ "deviceId": device_id, "role": role.as_str(), "revoked": revoked, "revokedAtMs": now }))
            }
        }
    }

    async fn close(self) {
        if let Backend::Online(c) = self {
            c.close().await;
        }
    }
}

fn open_offline() -> Result<SqliteStore, String> {
    let env = ConfigSources::from_process_env();
    let state = StateDir::locate(&env).map_err(|e| format!("[{}] {e}", e.code()))?;
    let path: PathBuf = state.store_path();
    if !path.exists() {
        return Err(format!(
            "[STORE_MISSING] there is no pairing store at {}: the gateway creates it on its first start. \
             Check CLAWGATE_STATE_DIR (the state directory is {})",
            path.display(),
            state.path.display()
        ));
    }
    state.ensure().map_err(|e| format!("[{}] {e}", e.code()))?;
    SqliteStore::open(&path).map_err(store_err)
}

async fn connect(t: &Target) -> Result<Client, String> {
    if t.token.is_some() {
        eprintln!(
            "clawgate: warning: --token is visible to other users in the process list; prefer OPENCLAW_GATEWAY_TOKEN"
        );
    }
    let sources = ConfigSources { token: t.token.clone(), ..Default::default() };
    let loaded = load_config(&t.config, sources, false).map_err(|e| format!("[{}] {e}\n  {OFFLINE_HINT}", e.code()))?;
    let url = t.url.clone().unwrap_or_else(|| format!("ws://127.0.0.1:{}", loaded.config.port));
    let mut opts = ConnectOptions::new(url.clone()).client("cli", "cli").scopes(CLI_SCOPES);
    opts.token = loaded.config.token.as_ref().map(|t| t.reveal().to_owned());
    opts.password = loaded.config.password.as_ref().map(|p| p.reveal().to_owned());
    opts.timeout = std::time::Duration::from_millis(t.timeout_ms);
    Client::connect(opts).await.map_err(|e| match e {
        ClientError::Connect { message, .. } if message.starts_with("HTTP error") => format!(
            "[GATEWAY_REFUSED_UPGRADE] the gateway at {url} refused the WebSocket upgrade ({message}); \
             the gateway log says why\n  {OFFLINE_HINT}"
        ),
        ClientError::Connect { message, .. } => format!(
            "[GATEWAY_UNREACHABLE] cannot reach the gateway at {url} ({message})\n  is it running \
             (`clawgate gateway run`)? Pass --url if it listens elsewhere; {OFFLINE_HINT}"
        ),
        e @ (ClientError::Timeout(_) | ClientError::Closed(None)) => format!(
            "[GATEWAY_UNREACHABLE] no answer from the gateway at {url} ({e})\n  is it running \
             (`clawgate gateway run`)? Pass --url if it listens elsewhere; {OFFLINE_HINT}"
        ),
        other => format!("{}\n  {OFFLINE_HINT}", rpc_err(other)),
    })
}

fn s<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

fn strings(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default()
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// `sha256:` and the first 16 hex of SHA-256 over the raw public key (which
/// is also how the device id is derived, so the two must agree).
fn fingerprint(public_key: Option<&str>, device_id: &str) -> String {
    let raw =
        public_key.and_then(|k| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(k.trim_end_matches('=')).ok());
    match raw {
        Some(raw) => {
            let hex: String = Sha256::digest(&raw).iter().map(|b| format!("{b:02x}")).collect();
            let fp = format!("sha256:{}", &hex[..16]);
            if hex == device_id {
                fp
            } else {
                format!("{fp} (DOES NOT MATCH the device id)")
            }
        }
        None => "unknown (the public key is not base64url)".to_owned(),
    }
}

fn relative(ms: u64, now: u64) -> String {
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

fn scopes_text(scopes: &[String]) -> String {
    if scopes.is_empty() {
        "(none)".to_owned()
    } else {
        scopes.join(", ")
    }
}

/// "client cli/cli, platform linux, name "x" (self-reported)".
fn what_it_is(v: &Value) -> String {
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

fn print_pending(r: &Value, now: u64) {
    let id = s(r, "requestId").unwrap_or("?");
    let device = s(r, "deviceId").unwrap_or("?");
    println!(
        "  {id}  device {}  role {}  scopes {}",
        short(device),
        s(r, "role").unwrap_or("?"),
        scopes_text(&strings(r, "scopes"))
    );
    println!("      {}", what_it_is(r));
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

fn print_paired(d: &Value, now: u64) {
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

fn items(listing: &Value, key: &str) -> Vec<Value> {
    listing.get(key).and_then(Value::as_array).cloned().unwrap_or_default()
}

// ---- commands -----------------------------------------------------------------

async fn list(args: ListArgs) -> Result<ExitCode, String> {
    let backend = Backend::open(&args.target).await?;
    let result = backend.list().await;
    let offline = backend.offline();
    backend.close().await;
    let listing = result?;
    if args.json {
        use std::io::Write;
        let text = serde_json::to_string_pretty(&listing).unwrap_or_default();
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
    Ok(ExitCode::SUCCESS)
}

/// Resolve `given` (a full id or a unique prefix) among `ids`. `None`: no match.
fn resolve<'a>(given: &str, ids: impl Iterator<Item = &'a str> + Clone, what: &str) -> Result<Option<String>, String> {
    if let Some(exact) = ids.clone().find(|id| *id == given) {
        return Ok(Some(exact.to_owned()));
    }
    let mut matches: Vec<&str> = ids.filter(|id| id.starts_with(given)).collect();
    matches.sort_unstable();
    matches.dedup();
    match matches.len() {
        0 => Ok(None),
        1 => Ok(Some(matches[0].to_owned())),
        _ => Err(format!(
            "[AMBIGUOUS_ID] {given:?} matches several {what}s ({}); give more of the id",
            matches.join(", ")
        )),
    }
}

fn print_candidates(requests: &[Value], now: u64) {
    eprintln!("Candidates:");
    for r in requests {
        eprintln!(
            "  {}  device {}  {}  role {}  scopes {}  retried {}",
            s(r, "requestId").unwrap_or("?"),
            short(s(r, "deviceId").unwrap_or("?")),
            what_it_is(r),
            s(r, "role").unwrap_or("?"),
            scopes_text(&strings(r, "scopes")),
            r.get("refreshedAtMs").and_then(Value::as_u64).map(|t| relative(t, now)).unwrap_or_default()
        );
    }
}

/// Pick the request to approve and show what approving it grants.
fn choose(args: &ApproveArgs, pending: &[Value], now: u64) -> Result<(String, Option<Value>), String> {
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
            return Err(store_err(StoreError::NoPendingRequest { device_id: Some(device.clone()) }));
        };
        let of_device: Vec<Value> =
            pending.iter().filter(|r| s(r, "deviceId") == Some(device.as_str())).cloned().collect();
        if of_device.len() > 1 {
            print_candidates(&of_device, now);
            let ids = of_device.iter().filter_map(|r| s(r, "requestId")).map(str::to_owned).collect();
            return Err(store_err(StoreError::AmbiguousDevice { device_id: device, ids }));
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
            return Err(store_err(StoreError::AmbiguousLatest { ids }));
        }
        if recent.is_empty() {
            return Err(store_err(StoreError::NoPendingRequest { device_id: None }));
        }
        recent
    };
    let r = candidates.into_iter().next().ok_or_else(|| store_err(StoreError::NoPendingRequest { device_id: None }))?;
    Ok((s(&r, "requestId").unwrap_or_default().to_owned(), Some(r)))
}

async fn approve(args: ApproveArgs) -> Result<ExitCode, String> {
    let backend = Backend::open(&args.target).await?;
    let outcome = approve_with(&backend, &args).await;
    backend.close().await;
    outcome
}

async fn approve_with(backend: &Backend, args: &ApproveArgs) -> Result<ExitCode, String> {
    let listing = backend.list().await?;
    let now = now_ms();
    let pending = items(&listing, "pending");
    let (request_id, request) = choose(args, &pending, now)?;
    if let Some(r) = &request {
        let device = s(r, "deviceId").unwrap_or("?");
        println!("Approving pairing request {request_id}:");
        println!("  device       {device}");
        println!("  key          {}", fingerprint(s(r, "publicKey"), device));
        println!("  role         {}", s(r, "role").unwrap_or("?"));
        println!("  scopes       {}", scopes_text(&strings(r, "scopes")));
        println!("  what         {}", what_it_is(r));
        if let Some(ip) = s(r, "remoteIp") {
            println!("  from         {ip}");
        }
        if let Some(ts) = r.get("refreshedAtMs").and_then(Value::as_u64) {
            println!("  last asked   {}", relative(ts, now));
        }
    }
    let result = backend.approve(&request_id).await?;
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

async fn reject(args: RequestArgs) -> Result<ExitCode, String> {
    let backend = Backend::open(&args.target).await?;
    let outcome = async {
        let listing = backend.list().await?;
        let pending = items(&listing, "pending");
        let id = resolve(&args.request_id, pending.iter().filter_map(|r| s(r, "requestId")), "pending request")?
            .unwrap_or_else(|| args.request_id.clone());
        let result = backend.reject(&id).await?;
        let until = result.get("cooldownUntilMs").and_then(Value::as_u64);
        println!(
            "Rejected pairing request {id} (device {}). It may ask again {}.",
            short(s(&result, "deviceId").unwrap_or("?")),
            until.map(|u| relative(u, now_ms())).unwrap_or_else(|| "after the cooldown".into())
        );
        Ok(ExitCode::SUCCESS)
    }
    .await;
    backend.close().await;
    outcome
}

/// A paired device by full id or unique prefix; unknown ids pass through so
/// the store or gateway names them.
fn paired_device(listing: &Value, given: &str) -> Result<(String, Option<Value>), String> {
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

fn offline_note(backend: &Backend) {
    if backend.offline() {
        println!("  (written to the store directly: a running gateway notices within a few seconds and closes the sessions it invalidates)");
    }
}

async fn remove(args: DeviceArgs) -> Result<ExitCode, String> {
    let backend = Backend::open(&args.target).await?;
    let outcome = async {
        let listing = backend.list().await?;
        let (id, device) = paired_device(&listing, &args.device_id)?;
        let result = backend.remove(&id).await?;
        let what = device.as_ref().map(|d| format!(" ({})", what_it_is(d))).unwrap_or_default();
        println!("Removed device {id}{what} and its tokens; it must pair again to connect.");
        if let Some(n) = result.get("closedSessions").and_then(Value::as_u64) {
            println!("  closed {n} live session(s)");
        }
        offline_note(&backend);
        Ok(ExitCode::SUCCESS)
    }
    .await;
    backend.close().await;
    outcome
}

/// The role given, or the device's only approved role.
fn pick_role(given: Option<RoleArg>, device: Option<&Value>, id: &str) -> Result<Role, String> {
    if let Some(r) = given {
        return Ok(r.role());
    }
    let Some(d) = device else {
        return Err(store_err(StoreError::UnknownDevice { device_id: id.to_owned() }));
    };
    let roles: Vec<Role> = strings(d, "roles").iter().filter_map(|r| Role::parse(r)).collect();
    match roles.as_slice() {
        [one] => Ok(*one),
        [] => Err(format!("[DEVICE_ROLE_NOT_APPROVED] device {id} has no approved role")),
        _ => Err(format!(
            "[ROLE_REQUIRED] device {id} is approved for several roles ({}); pass --role",
            roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", ")
        )),
    }
}

async fn rotate(args: RotateArgs) -> Result<ExitCode, String> {
    let RotateArgs { inner, scopes } = args;
    let backend = Backend::open(&inner.target).await?;
    let outcome = async {
        let listing = backend.list().await?;
        let (id, device) = paired_device(&listing, &inner.device_id)?;
        let role = pick_role(inner.role, device.as_ref(), &id)?;
        let scopes = scopes.map(|s| s.into_iter().map(|x| x.trim().to_owned()).filter(|x| !x.is_empty()).collect());
        let result = backend.rotate(&id, role, scopes).await?;
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
        offline_note(&backend);
        Ok(ExitCode::SUCCESS)
    }
    .await;
    backend.close().await;
    outcome
}

async fn revoke(args: RoleArgs) -> Result<ExitCode, String> {
    let backend = Backend::open(&args.target).await?;
    let outcome = async {
        let listing = backend.list().await?;
        let (id, device) = paired_device(&listing, &args.device_id)?;
        let role = pick_role(args.role, device.as_ref(), &id)?;
        let result = backend.revoke(&id, role).await?;
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
        offline_note(&backend);
        Ok(ExitCode::SUCCESS)
    }
    .await;
    backend.close().await;
    outcome
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
    fn ids_resolve_by_unique_prefix() {
        let ids = ["abcdef", "abc123", "ffff"];
        assert_eq!(resolve("ffff", ids.iter().copied(), "x").unwrap(), Some("ffff".into()));
        assert_eq!(resolve("abcd", ids.iter().copied(), "x").unwrap(), Some("abcdef".into()));
        assert_eq!(resolve("zz", ids.iter().copied(), "x").unwrap(), None);
        assert!(resolve("abc", ids.iter().copied(), "x").unwrap_err().contains("AMBIGUOUS_ID"));
    }

    #[test]
    fn fingerprint_is_the_key_digest() {
        let id = clawgate_client::DeviceIdentity::from_seed([7; 32]);
        let fp = fingerprint(Some(&id.public_key_b64url()), &id.device_id());
        assert_eq!(fp, format!("sha256:{}", &id.device_id()[..16]));
        assert!(fingerprint(Some(&id.public_key_b64url()), &"0".repeat(64)).contains("DOES NOT MATCH"));
    }
}
