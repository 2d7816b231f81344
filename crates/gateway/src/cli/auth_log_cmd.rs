//! `clawgate auth log`: the running gateway's recent admission decisions
//! (its in-memory ring, read with `clawgate.auth.log` as an admin), so an
//! operator sees why a device keeps getting "pairing required" without
//! reading logs. `--follow` asks again every second for what is new.
//! Client-supplied strings are printed escaped: a client id cannot forge
//! a line of this output.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use serde_json::{json, Value};

use clawgate_protocol::scopes;

use super::client_conn::{connect, ClientArgs};
use super::error::CliError;

/// How often `--follow` asks for new entries.
const FOLLOW_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Args)]
pub struct LogArgs {
    #[command(flatten)]
    conn: ClientArgs,
    /// Keep running and print new decisions as they are made.
    #[arg(long)]
    follow: bool,
    /// One JSON object per line (the gateway's entries as they are).
    #[arg(long)]
    json: bool,
    /// How many of the newest decisions to show first (1-1000).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=1000))]
    limit: u64,
}

pub fn run(args: LogArgs) -> Result<ExitCode, CliError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::io("cannot start the async runtime", e))?;
    runtime.block_on(log(args))
}

async fn log(args: LogArgs) -> Result<ExitCode, CliError> {
    let (client, _) = connect(&args.conn, &[scopes::ADMIN.to_owned()]).await?;
    let mut after = 0u64;
    let mut limit = args.limit;
    loop {
        let params = json!({ "limit": limit, "afterSeq": after });
        let answer = match client.request("clawgate.auth.log", Some(params)).await {
            Ok(v) => v,
            Err(e) => {
                client.close().await;
                return Err(CliError::from_gateway(e));
            }
        };
        let entries = answer["entries"].as_array().cloned().unwrap_or_default();
        for entry in &entries {
            println!("{}", if args.json { entry.to_string() } else { line(entry) });
        }
        after = answer["lastSeq"].as_u64().unwrap_or(after);
        if !args.follow {
            if entries.is_empty() && !args.json {
                eprintln!("no admission decisions yet");
            }
            break;
        }
        // Following: everything new since, up to the ring's size.
        limit = 1000;
        tokio::time::sleep(FOLLOW_INTERVAL).await;
    }
    client.close().await;
    Ok(ExitCode::SUCCESS)
}

/// A string from the entry, escaped, or `-`.
fn field(entry: &Value, key: &str) -> String {
    entry[key].as_str().map_or_else(|| "-".to_owned(), |s| s.escape_debug().to_string())
}

/// One decision on one line: time, outcome, rule, code, who.
fn line(entry: &Value) -> String {
    let time = entry["tsMs"].as_u64().map_or_else(|| "-".to_owned(), utc_time);
    let mut out = format!("{time}  {:<16} rule {}", field(entry, "outcome"), field(entry, "rule"));
    if entry["code"].is_string() {
        out.push_str(&format!("  code {} ({})", field(entry, "code"), field(entry, "reason")));
    }
    if entry["credential"].is_string() {
        out.push_str(&format!("  via {}", field(entry, "credential")));
    }
    let local = if entry["local"].as_bool() == Some(true) { " (local)" } else { "" };
    out.push_str(&format!(
        "  from {}{local}  client \"{}\"/\"{}\" role {}",
        field(entry, "clientIp"),
        field(entry, "clientId"),
        field(entry, "clientMode"),
        field(entry, "role")
    ));
    if let Some(device) = entry["deviceId"].as_str() {
        let short: String = device.escape_debug().to_string().chars().take(16).collect();
        out.push_str(&format!("  device {short}"));
    }
    if entry["proxyUser"].is_string() {
        out.push_str(&format!("  user \"{}\"", field(entry, "proxyUser")));
    }
    out
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` from milliseconds since the epoch.
fn utc_time(ms: u64) -> String {
    let (secs, millis) = (ms / 1000, ms % 1000);
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z", rest / 3600, rest % 3600 / 60, rest % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc_and_client_strings_are_escaped() {
        assert_eq!(utc_time(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc_time(1_709_210_096_789), "2024-02-29T12:34:56.789Z");
        let entry = json!({
            "tsMs": 0, "outcome": "refuse", "rule": "shared-secret", "code": "AUTH_TOKEN_MISMATCH",
            "reason": "token_mismatch", "clientIp": "127.0.0.1", "local": true,
            "clientId": "evil\nclawgate: admitted", "clientMode": "cli", "role": "operator",
        });
        let printed = line(&entry);
        assert!(!printed.contains('\n'), "{printed}");
        assert!(printed.contains(r#"client "evil\nclawgate: admitted"/"cli""#), "{printed}");
        assert!(printed.contains("code AUTH_TOKEN_MISMATCH (token_mismatch)"), "{printed}");
    }
}
