//! `gateway.cluster`: several clawgate instances on one PostgreSQL store,
//! talking over NATS (docs/cluster.md). Absent, one instance on its own.
//! `CLAWGATE_CLUSTER_NATS` and `CLAWGATE_CLUSTER_INSTANCE` override the keys.

use serde::Deserialize;

use super::ConfigError;

/// `gateway.cluster` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClusterSection {
    /// `nats://host:port` (a user and password may be given in the URL).
    pub nats: Option<String>,
    /// This instance's name, unique in the cluster.
    pub instance: Option<String>,
    /// The cluster's name: instances with the same name share subjects
    /// (`clawgate.<name>.…`). Default `default`.
    pub name: Option<String>,
}

pub const NATS_ENV: &str = "CLAWGATE_CLUSTER_NATS";
pub const INSTANCE_ENV: &str = "CLAWGATE_CLUSTER_INSTANCE";

/// A NATS URL. It may hold a password: its `Debug` form never does.
#[derive(Clone, PartialEq, Eq)]
pub struct NatsUrl(String);

impl NatsUrl {
    /// The URL as given, password included: only for connecting.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL without its user information.
    pub fn redacted(&self) -> String {
        match self.0.split_once("://") {
            Some((scheme, rest)) => match rest.rsplit_once('@') {
                Some((_, host)) => format!("{scheme}://***@{host}"),
                None => self.0.clone(),
            },
            None => "***".to_owned(),
        }
    }
}

impl std::fmt::Debug for NatsUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("NatsUrl").field(&self.redacted()).finish()
    }
}

/// `gateway.cluster`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    pub nats: NatsUrl,
    /// Unique per instance: `[a-z0-9-]`, 1–32 characters.
    pub instance: String,
    /// Same alphabet; `default` when not given.
    pub name: String,
}

impl ClusterConfig {
    /// A cluster config from parts already known to be valid (tests, embedders).
    pub fn new(nats: &str, instance: &str, name: &str) -> Result<ClusterConfig, ConfigError> {
        let section = ClusterSection {
            nats: Some(nats.to_owned()),
            instance: Some(instance.to_owned()),
            name: Some(name.to_owned()),
        };
        resolve(Some(&section), None, None, true).map(|c| c.expect("a NATS URL was given"))
    }
}

/// The cluster settings: the environment over the file. `None`: no cluster.
/// A cluster needs a shared store (`has_store_url`): instances that kept
/// their own SQLite files would admit differently.
pub fn resolve(
    section: Option<&ClusterSection>,
    nats_env: Option<String>,
    instance_env: Option<String>,
    has_store_url: bool,
) -> Result<Option<ClusterConfig>, ConfigError> {
    let (nats_key, nats) = match (nats_env, section.and_then(|s| s.nats.clone())) {
        (Some(e), _) => (NATS_ENV, e),
        (None, Some(n)) => ("gateway.cluster.nats", n),
        (None, None) => {
            if section.is_some_and(|s| s.instance.is_some() || s.name.is_some()) {
                return Err(unsafe_key("gateway.cluster.nats", "is required when gateway.cluster is set"));
            }
            return Ok(None);
        }
    };
    let nats = nats.trim().to_owned();
    let Some((scheme, rest)) = nats.split_once("://") else {
        return Err(unsafe_key(nats_key, "must be a nats:// (or tls://) URL"));
    };
    if !matches!(scheme, "nats" | "tls") || rest.is_empty() {
        return Err(unsafe_key(nats_key, "must be a nats:// (or tls://) URL"));
    }
    let (instance_key, instance) = match (instance_env, section.and_then(|s| s.instance.clone())) {
        (Some(e), _) => (INSTANCE_ENV, e),
        (None, Some(i)) => ("gateway.cluster.instance", i),
        (None, None) => {
            return Err(unsafe_key("gateway.cluster.instance", "is required: a name unique to this instance"));
        }
    };
    check_name(instance_key, &instance)?;
    let name = section.and_then(|s| s.name.clone()).unwrap_or_else(|| "default".to_owned());
    check_name("gateway.cluster.name", &name)?;
    if !has_store_url {
        return Err(unsafe_key(
            nats_key,
            "a cluster needs a shared store: set gateway.store.url (or CLAWGATE_STORE_URL) to the PostgreSQL \
             database every instance uses",
        ));
    }
    Ok(Some(ClusterConfig { nats: NatsUrl(nats), instance, name }))
}

/// Names become NATS subject tokens: a small alphabet keeps them one token.
fn check_name(key: &str, name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(unsafe_key(key, "must be 1–32 characters of a-z, 0-9 and -"))
    }
}

fn unsafe_key(key: &str, message: &str) -> ConfigError {
    ConfigError::Unsafe { key: key.to_owned(), message: message.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(nats: Option<&str>, instance: Option<&str>) -> ClusterSection {
        ClusterSection { nats: nats.map(Into::into), instance: instance.map(Into::into), name: None }
    }

    #[test]
    fn absent_means_no_cluster_and_the_environment_wins() {
        assert_eq!(resolve(None, None, None, false).unwrap(), None);
        let s = section(Some("nats://127.0.0.1:4222"), Some("a"));
        let c = resolve(Some(&s), None, None, true).unwrap().unwrap();
        assert_eq!((c.nats.expose(), c.instance.as_str(), c.name.as_str()), ("nats://127.0.0.1:4222", "a", "default"));
        let c = resolve(Some(&s), Some("nats://10.0.0.1:4222".into()), Some("b".into()), true).unwrap().unwrap();
        assert_eq!((c.nats.expose(), c.instance.as_str()), ("nats://10.0.0.1:4222", "b"));
    }

    #[test]
    fn bad_settings_name_their_key() {
        let cases = [
            (section(Some("http://x"), Some("a")), true, "gateway.cluster.nats:"),
            (section(Some("nats://x:4222"), None), true, "gateway.cluster.instance:"),
            (section(Some("nats://x:4222"), Some("A.b")), true, "gateway.cluster.instance:"),
            (section(None, Some("a")), true, "gateway.cluster.nats:"),
            (section(Some("nats://x:4222"), Some("a")), false, "gateway.cluster.nats:"),
        ];
        for (s, store, prefix) in cases {
            let err = resolve(Some(&s), None, None, store).unwrap_err().to_string();
            assert!(err.starts_with(prefix), "{err}");
        }
    }

    #[test]
    fn the_password_is_never_in_debug() {
        let c = ClusterConfig::new("nats://gw:s3cret@127.0.0.1:4222", "a", "prod").unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
    }

    #[test]
    fn the_file_key_is_read() {
        let text = r#"{ gateway: { cluster: { nats: "nats://127.0.0.1:4222", instance: "a", name: "x" } } }"#;
        let (file, _) = crate::config::parse_file(std::path::Path::new("clawgate.json5"), text).unwrap();
        let c = resolve(file.gateway.cluster.as_ref(), None, None, true).unwrap().unwrap();
        assert_eq!(c.name, "x");
    }
}
