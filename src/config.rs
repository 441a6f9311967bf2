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
    pub metrics: MetricsConfig,
    #[serde(default)]
    pub accounts: AccountsConfig,
    pub connections: ConnectionsConfig,
    /// The HTTP lookup for phone systems without gRPC ([`crate::http_lookup`]).
    #[serde(default)]
    pub lookup: LookupConfig,
    /// The LDAP directory for desk phones ([`crate::ldap`]).
    #[serde(default)]
    pub ldap: LdapConfig,
    /// How logs are written (to stderr; the journal under systemd).
    #[serde(default)]
    pub log: LogConfig,
}

/// How logs are written. Which events: `CONTACTBRIDGE_LOG` (e.g. `info`,
/// `contactbridge=debug`), as a `tracing` filter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    #[serde(default)]
    pub format: LogFormat,
}

/// A log line's shape.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One line of text per event; coloured only when stderr is a terminal.
    #[default]
    Text,
    /// One JSON object per line (timestamp, level, target, fields), for log shippers.
    Json,
}

/// What accounts registered by tenant admins (over the admin API) may reach.
/// Accounts the operator registers with the local CLI are not limited.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountsConfig {
    /// Directories a tenant's `files` accounts may read (a `{tenant}` part is replaced
    /// by the tenant's name). None by default: tenant admins cannot register files accounts.
    #[serde(default)]
    pub files_roots: Vec<PathBuf>,
    /// Hosts (names as written in the account's URL, or IP addresses) that tenant accounts
    /// may reach even though they are loopback, private, link-local or metadata addresses.
    #[serde(default)]
    pub allow_hosts: Vec<String>,
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
    /// TLS: the server certificate chain (PEM); needs `tls_key`. `serve --tls-cert` overrides.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// The server's private key (PEM).
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// Mutual TLS: only clients with a certificate signed by this CA (PEM); needs `tls_cert`.
    #[serde(default)]
    pub tls_client_ca: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebConfig {
    pub listen: SocketAddr,
    /// HTTPS for the notification window: the certificate chain (PEM); needs `tls_key`.
    /// Session cookies are then `Secure`.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) for `tls_cert`.
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// The HTTPS URL Graph reaches this server at; set: Graph change notifications are on.
    #[serde(default)]
    pub public_url: Option<String>,
}

/// Where Prometheus metrics are served.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// `host:port` for `GET /metrics`, or `off`. `serve --metrics-listen` overrides.
    pub listen: MetricsListen,
    /// At most this many accounts and collections together get their own sync series
    /// (`contactbridge_sync_account_*`, `contactbridge_sync_collection_*`; each counts
    /// one, each holds about 6–15 series). Past it, syncs are counted only by connector
    /// kind and in `contactbridge_sync_series_dropped_total`. Removed accounts and
    /// collections no longer listed free their room.
    #[serde(default = "default_max_collection_series")]
    pub max_collection_series: usize,
}

fn default_max_collection_series() -> usize {
    crate::accounts::metrics::DEFAULT_MAX_COLLECTION_SERIES
}

/// An address to listen on, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MetricsListen(pub Option<SocketAddr>);

impl std::str::FromStr for MetricsListen {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s.trim().eq_ignore_ascii_case("off") {
            return Ok(Self(None));
        }
        s.trim().parse().map(|a| Self(Some(a))).map_err(|e| format!("{s:?} is not host:port or off: {e}"))
    }
}

impl TryFrom<String> for MetricsListen {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<MetricsListen> for String {
    fn from(m: MetricsListen) -> Self {
        m.0.map_or_else(|| "off".to_string(), |a| a.to_string())
    }
}

impl WebConfig {
    /// `public_url`, checked: an absolute `https://` URL with a host, no credentials,
    /// query or fragment; returned without a trailing slash. `None` when unset.
    pub fn public_url(&self) -> Result<Option<url::Url>, String> {
        let Some(raw) = self.public_url.as_deref().map(str::trim).filter(|s| !s.is_empty()) else {
            return Ok(None);
        };
        let bad = |why: &str| Err(format!("web.public_url {raw:?} {why}"));
        let Ok(mut url) = url::Url::parse(raw) else {
            return bad("is not a URL");
        };
        if url.scheme() != "https" {
            return bad("must be https:// (Graph sends notifications only to HTTPS URLs)");
        }
        if url.host_str().is_none_or(str::is_empty) {
            return bad("has no host");
        }
        if !url.username().is_empty() || url.password().is_some() {
            return bad("must not carry credentials");
        }
        if url.query().is_some() || url.fragment().is_some() {
            return bad("must not have a query or fragment");
        }
        let path = url.path().trim_end_matches('/').to_string();
        url.set_path(&path);
        Ok(Some(url))
    }

    /// The certificate and key, if TLS is on; an error if only one is set.
    pub fn tls(&self) -> Result<Option<(&Path, &Path)>, String> {
        pair("web", self.tls_cert.as_deref(), self.tls_key.as_deref())
    }
}

impl GrpcConfig {
    /// The certificate and key, if TLS is on; an error if only one is set, or the client CA without them.
    pub fn tls(&self) -> Result<Option<(&Path, &Path)>, String> {
        let tls = pair("grpc", self.tls_cert.as_deref(), self.tls_key.as_deref())?;
        if tls.is_none() && self.tls_client_ca.is_some() {
            return Err("grpc.tls_client_ca needs grpc.tls_cert and grpc.tls_key".into());
        }
        Ok(tls)
    }
}

fn pair<'a>(
    section: &str,
    cert: Option<&'a Path>,
    key: Option<&'a Path>,
) -> Result<Option<(&'a Path, &'a Path)>, String> {
    match (cert, key) {
        (Some(c), Some(k)) => Ok(Some((c, k))),
        (None, None) => Ok(None),
        (Some(_), None) => Err(format!("{section}.tls_cert is set but {section}.tls_key is not")),
        (None, Some(_)) => Err(format!("{section}.tls_key is set but {section}.tls_cert is not")),
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// Which backend keeps the data: `sled` (embedded, in `data_dir`) or `postgres` (a database
    /// server several replicas can share; needs `[store.postgres]`).
    #[serde(default)]
    pub backend: crate::store::BackendKind,
    /// The PostgreSQL database, for `backend = "postgres"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres: Option<PostgresConfig>,
    /// sled's page cache for the index, in MiB; user data gets an eighth (16–128 MiB).
    /// Memory use follows it; lookups slow down when the index's hot part does not fit.
    pub cache_mb: u64,
    /// How often the call journal is synced to disk, in milliseconds, when calls were written. A
    /// process crash loses no call whatever this is; a machine crash (power loss) may lose the calls
    /// of the last interval.
    #[serde(default = "default_call_sync_ms")]
    pub call_sync_ms: u64,
    /// Free space (MiB) on the data directory's disk that syncs leave for user
    /// data: an index sync is refused below it (and resumes once space is
    /// freed), while profiles and call records may still be written. The
    /// index is rebuilt from the sources; user data is not. 0 turns it off.
    #[serde(default = "default_reserve_mb")]
    pub reserve_mb: u64,
}

fn default_call_sync_ms() -> u64 {
    200
}

fn default_reserve_mb() -> u64 {
    crate::store::StoreOptions::DEFAULT_RESERVE_BYTES >> 20
}

/// `[store.postgres]`: where the PostgreSQL backend keeps the data.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// Connection URL, e.g. `postgres://contactbridge:PASSWORD@db.example:5432/contactbridge` (libpq's
    /// URL or key=value form). Logs and errors show it without the password; keep this file readable
    /// by the service only, or set it through the environment (`CONTACTBRIDGE_STORE__POSTGRES__URL`).
    pub url: String,
    /// Connections each replica keeps open to the server.
    #[serde(default = "default_pool_size")]
    pub pool_size: u32,
    /// A read-only hot standby of the database (streaming replication): lookups
    /// (ResolveCall, GetCallerContext) read the index and user data there; writes
    /// and call records stay on `url`. See docs in `store::split` for what a
    /// lookup sees during replication lag.
    #[serde(default)]
    pub standby_url: Option<String>,
    /// The CA certificate(s) (PEM) the server's TLS certificate must chain to (a private CA, or
    /// the server's own self-signed certificate); unset: the public web roots. Whether TLS is
    /// used is the URL's `sslmode`: `prefer` (default) when the server offers it, `require`
    /// always, `disable` never. When TLS is used the certificate is always verified and must
    /// name the URL's host (stricter than libpq's `require`).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

fn default_pool_size() -> u32 {
    crate::store::PgOptions::DEFAULT_POOL_SIZE
}

impl std::fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("url", &crate::store::postgres::redact_url(&self.url))
            .field("pool_size", &self.pool_size)
            .field("standby_url", &self.standby_url.as_deref().map(crate::store::postgres::redact_url))
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

impl StoreConfig {
    pub fn options(&self) -> crate::store::StoreOptions {
        crate::store::StoreOptions {
            cache_bytes: self.cache_mb.max(1) * 1024 * 1024,
            reserve_bytes: self.reserve_mb.saturating_mul(1024 * 1024),
            call_sync_interval: std::time::Duration::from_millis(self.call_sync_ms.clamp(1, 60_000)),
        }
    }

    /// How [`crate::store::open`] opens the store in `dir`.
    pub fn open_options(&self, dir: &Path) -> crate::store::OpenOptions {
        crate::store::OpenOptions {
            backend: self.backend,
            dir: dir.to_path_buf(),
            sled: self.options(),
            postgres: self.postgres.as_ref().map(|p| crate::store::PgOptions {
                pool_size: p.pool_size,
                standby_url: p.standby_url.clone(),
                ca_file: p.ca_file.clone(),
                ..crate::store::PgOptions::new(p.url.clone())
            }),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncConfig {
    /// Cron expression (with seconds) for accounts that set none.
    pub default_schedule: String,
    /// At most this many accounts sync at once.
    pub max_concurrent: usize,
    /// With several replicas on one PostgreSQL database: how long an account's
    /// sync lease holds without renewal (renewed every third of it), that is
    /// how long a dead replica's syncs wait before another replica takes them
    /// over (seconds, at least 1).
    #[serde(default = "SyncConfig::default_lease_secs")]
    pub lease_secs: u64,
}

impl SyncConfig {
    fn default_lease_secs() -> u64 {
        30
    }

    /// [`SyncConfig::lease_secs`] as a duration.
    pub fn lease_ttl(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.lease_secs.max(1))
    }
}

/// How the servers keep connections alive, and how long shutdown waits for them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionsConfig {
    /// After SIGTERM (or Ctrl-C), open requests and streams get at most this
    /// many seconds; then the connections still open are cut.
    pub shutdown_grace_secs: u64,
    /// gRPC: an HTTP/2 PING this often on a quiet connection, and the TCP
    /// keepalive time (seconds; 0 turns both off).
    pub keepalive_secs: u64,
    /// gRPC: a connection whose PING is not answered within this many seconds is closed.
    pub keepalive_timeout_secs: u64,
}

impl Default for ConnectionsConfig {
    fn default() -> Self {
        Self { shutdown_grace_secs: 10, keepalive_secs: 30, keepalive_timeout_secs: 10 }
    }
}

impl ConnectionsConfig {
    pub fn shutdown_grace(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.shutdown_grace_secs)
    }

    /// `None` when keepalives are off.
    pub fn keepalive(&self) -> Option<std::time::Duration> {
        Some(std::time::Duration::from_secs(self.keepalive_secs)).filter(|d| !d.is_zero())
    }

    pub fn keepalive_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.keepalive_timeout_secs.max(1))
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: default_data_dir(),
            grpc: GrpcConfig {
                listen: ([127, 0, 0, 1], 50051).into(),
                tls_cert: None,
                tls_key: None,
                tls_client_ca: None,
            },
            web: WebConfig { listen: ([127, 0, 0, 1], 8080).into(), tls_cert: None, tls_key: None, public_url: None },
            sync: SyncConfig {
                default_schedule: "0 */15 * * * *".into(),
                max_concurrent: 4,
                lease_secs: SyncConfig::default_lease_secs(),
            },
            store: StoreConfig {
                backend: crate::store::BackendKind::Sled,
                postgres: None,
                cache_mb: crate::store::StoreOptions::DEFAULT_CACHE_MB,
                call_sync_ms: default_call_sync_ms(),
                reserve_mb: default_reserve_mb(),
            },
            metrics: MetricsConfig {
                listen: MetricsListen(Some(([127, 0, 0, 1], 9464).into())),
                max_collection_series: default_max_collection_series(),
            },
            accounts: AccountsConfig::default(),
            connections: ConnectionsConfig::default(),
            lookup: LookupConfig::default(),
            ldap: LdapConfig::default(),
            log: LogConfig::default(),
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
                || [
                    "grpc__",
                    "web__",
                    "sync__",
                    "store__",
                    "metrics__",
                    "accounts__",
                    "connections__",
                    "lookup__",
                    "ldap__",
                    "log__",
                ]
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
    fn tls_and_metrics_come_from_the_file_and_the_environment() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "cb.toml",
                "[grpc]\ntls_cert = \"/etc/cb/grpc.pem\"\ntls_key = \"/etc/cb/grpc.key\"\n\
                 tls_client_ca = \"/etc/cb/ca.pem\"\n[web]\ntls_cert = \"/etc/cb/web.pem\"\n\
                 tls_key = \"/etc/cb/web.key\"\n[metrics]\nlisten = \"off\"\n",
            )?;
            let c = Config::load(Some(Path::new("cb.toml"))).unwrap();
            assert_eq!(c.grpc.tls().unwrap(), Some((Path::new("/etc/cb/grpc.pem"), Path::new("/etc/cb/grpc.key"))));
            assert_eq!(c.grpc.tls_client_ca.as_deref(), Some(Path::new("/etc/cb/ca.pem")));
            assert_eq!(c.web.tls().unwrap(), Some((Path::new("/etc/cb/web.pem"), Path::new("/etc/cb/web.key"))));
            assert_eq!(c.metrics.listen, MetricsListen(None));

            let d = Config::load(None).unwrap();
            assert_eq!(d.metrics.listen, MetricsListen(Some("127.0.0.1:9464".parse().unwrap())));
            assert_eq!((d.grpc.tls().unwrap(), d.web.tls().unwrap()), (None, None));

            jail.set_env("CONTACTBRIDGE_METRICS__LISTEN", "0.0.0.0:9999");
            jail.set_env("CONTACTBRIDGE_WEB__TLS_CERT", "/run/web.pem");
            let c = Config::load(Some(Path::new("cb.toml"))).unwrap();
            assert_eq!(c.metrics.listen, MetricsListen(Some("0.0.0.0:9999".parse().unwrap())));
            assert_eq!(c.web.tls_cert.as_deref(), Some(Path::new("/run/web.pem")));

            Ok(())
        });
    }

    #[test]
    fn the_public_url_must_be_plain_https() {
        let web = |u: &str| WebConfig { public_url: Some(u.into()), ..Config::default().web };
        assert_eq!(Config::default().web.public_url().unwrap(), None);
        let ok = web("https://bridge.example.com/cb/").public_url().unwrap().unwrap();
        assert_eq!(ok.as_str(), "https://bridge.example.com/cb");
        for bad in [
            "http://bridge.example.com",
            "bridge.example.com",
            "https://user:pw@bridge.example.com",
            "https://bridge.example.com/?x=1",
            "https://bridge.example.com/#f",
            "javascript:alert(1)",
        ] {
            let e = web(bad).public_url().unwrap_err();
            assert!(e.contains("web.public_url"), "{bad}: {e}");
        }
    }

    #[test]
    fn half_a_tls_pair_and_a_bad_metrics_address_are_errors() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("web.toml", "[web]\ntls_cert = \"/x.pem\"\n")?;
            let e = Config::load(Some(Path::new("web.toml"))).unwrap().web.tls().unwrap_err();
            assert!(e.contains("web.tls_key"), "{e}");
            jail.create_file("ca.toml", "[grpc]\ntls_client_ca = \"/ca.pem\"\n")?;
            let e = Config::load(Some(Path::new("ca.toml"))).unwrap().grpc.tls().unwrap_err();
            assert!(e.contains("tls_client_ca"), "{e}");
            jail.create_file("m.toml", "[metrics]\nlisten = \"everywhere\"\n")?;
            let e = Config::load(Some(Path::new("m.toml"))).unwrap_err();
            assert!(e.contains("everywhere"), "{e}");
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
mod store_tests {
    use super::*;

    #[test]
    fn the_call_sync_interval_is_bounded() {
        let at = |ms| {
            StoreConfig {
                backend: crate::store::BackendKind::Sled,
                postgres: None,
                cache_mb: 1,
                call_sync_ms: ms,
                reserve_mb: 0,
            }
            .options()
            .call_sync_interval
        };
        assert_eq!(at(200), std::time::Duration::from_millis(200));
        assert_eq!(at(0), std::time::Duration::from_millis(1), "0 would spin the sync thread");
        assert_eq!(at(u64::MAX), std::time::Duration::from_secs(60), "a machine crash loses at most a minute");
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
