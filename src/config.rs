//! Configuration: a TOML file, overridden by `CONTACTBRIDGE_*` environment
//! variables (nested keys with `__`, e.g. `CONTACTBRIDGE_GRPC__LISTEN`), with
//! defaults that work on a fresh machine. The schema is in `schemas/config.schema.json`.

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the index and user data live.
    pub data_dir: PathBuf,
    pub grpc: GrpcConfig,
    pub web: WebConfig,
    pub sync: SyncConfig,
    pub store: StoreConfig,
    /// The HTTP lookup for phone systems without gRPC ([`crate::http_lookup`]).
    #[serde(default)]
    pub lookup: LookupConfig,
    /// The LDAP directory for desk phones ([`crate::ldap`]).
    #[serde(default)]
    pub ldap: LdapConfig,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LookupConfig {
    /// Where the HTTP lookup listens; `None` (the default): off.
    #[serde(default)]
    pub listen: Option<SocketAddr>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LdapConfig {
    /// Where the LDAP directory listens; `None` (the default): off.
    #[serde(default)]
    pub listen: Option<SocketAddr>,
    /// TLS certificate chain (PEM) for StartTLS; with `tls_key`.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// The TLS private key (PEM).
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// At most this many entries per search (a client's smaller size limit wins).
    #[serde(default = "default_ldap_size_limit")]
    pub size_limit: usize,
}

fn default_ldap_size_limit() -> usize {
    500
}

impl Default for LdapConfig {
    fn default() -> Self {
        Self { listen: None, tls_cert: None, tls_key: None, size_limit: default_ldap_size_limit() }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcConfig {
    pub listen: SocketAddr,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebConfig {
    pub listen: SocketAddr,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// sled's page cache for the index, in MiB; user data gets an eighth (16–128 MiB).
    /// Memory use follows it; lookups slow down when the index's hot part does not fit.
    pub cache_mb: u64,
}

impl StoreConfig {
    pub fn options(&self) -> crate::store::StoreOptions {
        crate::store::StoreOptions { cache_bytes: self.cache_mb.max(1) * 1024 * 1024 }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncConfig {
    /// Cron expression (with seconds) for accounts that set none.
    pub default_schedule: String,
    /// At most this many accounts sync at once.
    pub max_concurrent: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: default_data_dir(),
            grpc: GrpcConfig { listen: ([127, 0, 0, 1], 50051).into() },
            web: WebConfig { listen: ([127, 0, 0, 1], 8080).into() },
            sync: SyncConfig { default_schedule: "0 */15 * * * *".into(), max_concurrent: 4 },
            store: StoreConfig { cache_mb: 1024 },
            lookup: LookupConfig::default(),
            ldap: LdapConfig::default(),
        }
    }
}

/// `$XDG_DATA_HOME/contactbridge`, else `~/.local/share/contactbridge`, else `./contactbridge-data`.
pub fn default_data_dir() -> PathBuf {
    std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .map(|d| d.join("contactbridge"))
        .unwrap_or_else(|| PathBuf::from("contactbridge-data"))
}

impl Config {
    /// Defaults, then the file (if given, it must exist), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, String> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(f) = file {
            if !f.exists() {
                return Err(format!("config file {} does not exist", f.display()));
            }
            fig = fig.merge(Toml::file(f));
        }
        // Only variables that name a configuration key: CONTACTBRIDGE_LOG,
        // _API_KEY, _SECRET_KEY and the like belong to other parts.
        let is_config_key = |k: &figment::value::UncasedStr| {
            let k = k.as_str().to_ascii_lowercase();
            k == "data_dir"
                || ["grpc__", "web__", "sync__", "store__", "lookup__", "ldap__"]
                    .iter()
                    .any(|section| k.starts_with(section))
        };
        fig.merge(Env::prefixed("CONTACTBRIDGE_").filter(is_config_key).split("__"))
            .extract()
            .map_err(|e| format!("configuration is invalid: {e}"))
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closures return its large error type
mod tests {
    use super::*;

    #[test]
    fn file_then_environment_override_defaults() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("cb.toml", "data_dir = \"/srv/cb\"\n[grpc]\nlisten = \"0.0.0.0:6000\"\n")?;
            jail.set_env("CONTACTBRIDGE_GRPC__LISTEN", "127.0.0.1:7000");
            let c = Config::load(Some(Path::new("cb.toml"))).unwrap();
            assert_eq!(c.data_dir, PathBuf::from("/srv/cb"));
            assert_eq!(c.grpc.listen, "127.0.0.1:7000".parse().unwrap());
            assert_eq!(c.web, Config::default().web);
            Ok(())
        });
    }

    #[test]
    fn other_contactbridge_variables_are_not_configuration() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("CONTACTBRIDGE_API_KEY", "cb_x_y");
            jail.set_env("CONTACTBRIDGE_LOG", "debug");
            jail.set_env("CONTACTBRIDGE_SECRET_KEY", "AAAA");
            jail.set_env("CONTACTBRIDGE_DATA_DIR", "/srv/x");
            jail.set_env("CONTACTBRIDGE_STORE__CACHE_MB", "128");
            let c = Config::load(None).unwrap();
            assert_eq!(c.data_dir, PathBuf::from("/srv/x"));
            assert_eq!(c.store.options().cache_bytes, 128 * 1024 * 1024);
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_and_missing_files_are_errors_that_say_what() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("cb.toml", "data_dri = \"/x\"\n")?;
            let e = Config::load(Some(Path::new("cb.toml"))).unwrap_err();
            assert!(e.contains("data_dri"), "{e}");
            let e = Config::load(Some(Path::new("missing.toml"))).unwrap_err();
            assert!(e.contains("does not exist"), "{e}");
            Ok(())
        });
    }
}

#[cfg(test)]
mod schema_tests {
    use super::*;

    /// schemas/config.schema.json names every key `Config` has, and its defaults.
    #[test]
    fn the_schema_describes_every_key_and_default() {
        let schema: serde_json::Value =
            serde_json::from_str(include_str!("../schemas/config.schema.json")).expect("schema is JSON");
        let defaults = serde_json::to_value(Config::default()).unwrap();
        for (section, value) in defaults.as_object().unwrap() {
            let described = &schema["properties"][section];
            assert!(described.is_object(), "schema lacks {section}");
            if let Some(fields) = value.as_object() {
                for (field, default) in fields {
                    let d = &described["properties"][field];
                    assert!(d.is_object(), "schema lacks {section}.{field}");
                    if let Some(s) = default.as_str() {
                        assert_eq!(d["default"].as_str(), Some(s), "default of {section}.{field}");
                    } else if default.is_number() {
                        assert_eq!(&d["default"], default, "default of {section}.{field}");
                    }
                }
            }
        }
    }
}
