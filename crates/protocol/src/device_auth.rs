//! The strings a device signs to prove its key. Fields are
//! joined with `|`, no escaping.

/// What goes into a device-auth payload.
#[derive(Debug, Clone, Copy)]
pub struct DeviceAuthFields<'a> {
    pub device_id: &'a str,
    pub client_id: &'a str,
    pub client_mode: &'a str,
    pub role: &'a str,
    pub scopes: &'a [String],
    pub signed_at_ms: u64,
    /// `auth.token ?? auth.deviceToken ?? auth.bootstrapToken ?? ""`, untrimmed.
    pub token: &'a str,
    pub nonce: &'a str,
    pub platform: Option<&'a str>,
    pub device_family: Option<&'a str>,
}

/// The token a device signs: `auth.token ?? auth.deviceToken ??
/// auth.bootstrapToken ?? ""`, raw and untrimmed.
pub fn signature_token(auth: Option<&crate::AuthParams>) -> &str {
    auth.and_then(|a| a.token.as_deref().or(a.device_token.as_deref()).or(a.bootstrap_token.as_deref())).unwrap_or("")
}

/// Trim, then lowercase ASCII A–Z only; missing is "".
pub fn normalize_metadata(v: Option<&str>) -> String {
    v.map(|s| s.trim().to_ascii_lowercase()).unwrap_or_default()
}

pub fn payload_v3(f: &DeviceAuthFields<'_>) -> String {
    format!(
        "v3|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}",
        f.device_id,
        f.client_id,
        f.client_mode,
        f.role,
        f.scopes.join(","),
        f.signed_at_ms,
        f.token,
        f.nonce,
        normalize_metadata(f.platform),
        normalize_metadata(f.device_family)
    )
}

pub fn payload_v2(f: &DeviceAuthFields<'_>) -> String {
    format!(
        "v2|{}|{}|{}|{}|{}|{}|{}|{}",
        f.device_id,
        f.client_id,
        f.client_mode,
        f.role,
        f.scopes.join(","),
        f.signed_at_ms,
        f.token,
        f.nonce
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_strings_follow_the_reference_layout() {
        let scopes = vec!["operator.read".to_owned(), "operator.write".to_owned()];
        let f = DeviceAuthFields {
            device_id: "abc",
            client_id: "cli",
            client_mode: "cli",
            role: "operator",
            scopes: &scopes,
            signed_at_ms: 1700000000000,
            token: "tok",
            nonce: "n-1",
            platform: Some(" Linux "),
            device_family: None,
        };
        assert_eq!(payload_v3(&f), "v3|abc|cli|cli|operator|operator.read,operator.write|1700000000000|tok|n-1|linux|");
        assert_eq!(payload_v2(&f), "v2|abc|cli|cli|operator|operator.read,operator.write|1700000000000|tok|n-1");
    }
}
