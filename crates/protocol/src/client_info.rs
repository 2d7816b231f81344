//! Client ids and modes the protocol knows, and the classes
//! derived from them.

pub const CLIENT_IDS: &[&str] = &[
    "webchat-ui",
    "openclaw-control-ui",
    "openclaw-browser-copilot",
    "openclaw-tui",
    "webchat",
    "cli",
    "gateway-client",
    "openclaw-macos",
    "openclaw-linux",
    "openclaw-ios",
    "openclaw-watchos",
    "openclaw-android",
    "node-host",
    "openclaw-worker",
    "test",
    "fingerprint",
    "openclaw-probe",
];

pub const CLIENT_MODES: &[&str] = &["webchat", "cli", "ui", "backend", "node", "worker", "probe", "test"];

/// Client ids that only browsers use. A browser id makes a connection count as a
/// browser; the absence of one never makes it count as a program.
pub const BROWSER_CLIENT_IDS: &[&str] = &["openclaw-control-ui", "openclaw-browser-copilot", "webchat-ui"];

pub fn is_browser_client(id: &str, mode: &str) -> bool {
    BROWSER_CLIENT_IDS.contains(&id) || mode == "webchat"
}

/// Sessions that never get a presence row (short-lived tools).
pub fn is_ephemeral_mode(mode: &str) -> bool {
    matches!(mode, "cli" | "backend" | "probe")
}
