//! What an installed `clawgate` offers besides the gateway: the version with
//! the commit it was built from, and shell completions.

use std::process::{Command, Stdio};

fn clawgate(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_clawgate")).args(args).stdin(Stdio::null()).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn version_names_the_commit() {
    let (ok, out) = clawgate(&["--version"]);
    assert!(ok, "{out}");
    // Built from this checkout: its HEAD, or "unknown" where git is missing.
    let head = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".into());
    let want = format!("clawgate {} (commit {head})", env!("CARGO_PKG_VERSION"));
    assert_eq!(out.trim(), want);
}

#[test]
fn completions_for_bash_zsh_and_fish() {
    for (shell, marker) in [("bash", "_clawgate()"), ("zsh", "#compdef clawgate"), ("fish", "complete -c clawgate")] {
        let (ok, out) = clawgate(&["completions", shell]);
        assert!(ok && out.contains(marker), "{shell}: {out}");
        for sub in ["gateway", "devices", "services", "security", "completions"] {
            assert!(out.contains(sub), "{shell} completes {sub}");
        }
    }
    // The bash script is valid bash.
    let script = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(script.path(), clawgate(&["completions", "bash"]).1).unwrap();
    let check = Command::new("bash").arg("-n").arg(script.path()).status().unwrap();
    assert!(check.success(), "bash -n rejects the completion script");
}
