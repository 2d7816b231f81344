//! `gateway.admin`: the admin listener (metrics and health), off unless
//! configured or given with `--admin ADDR`.

use std::net::SocketAddr;

use serde::Deserialize;

use super::ConfigError;

/// `gateway.admin` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AdminSection {
    /// `host:port`, e.g. `127.0.0.1:9464`.
    pub bind: Option<String>,
}

/// The admin listener's address: the flag wins over the file; `None`: off.
pub fn resolve(section: Option<&AdminSection>, flag: Option<&str>) -> Result<Option<SocketAddr>, ConfigError> {
    let (key, text) = match (flag, section.and_then(|s| s.bind.as_deref())) {
        (Some(f), _) => ("--admin", f),
        (None, Some(b)) => ("gateway.admin.bind", b),
        (None, None) => return Ok(None),
    };
    text.trim().parse::<SocketAddr>().map(Some).map_err(|_| ConfigError::Unsafe {
        key: key.to_owned(),
        message: format!("{text:?} is not an address and port, e.g. 127.0.0.1:9464"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_wins_and_a_bad_address_names_its_key() {
        let section = AdminSection { bind: Some("127.0.0.1:9464".into()) };
        assert_eq!(resolve(Some(&section), None).unwrap(), Some("127.0.0.1:9464".parse().unwrap()));
        assert_eq!(resolve(Some(&section), Some("[::1]:9000")).unwrap(), Some("[::1]:9000".parse().unwrap()));
        assert_eq!(resolve(None, None).unwrap(), None);
        let err = resolve(Some(&AdminSection { bind: Some("localhost".into()) }), None).unwrap_err();
        assert!(err.to_string().starts_with("gateway.admin.bind:"), "{err}");
    }
}
