//! A DAV account's configuration: where the server is, how to log in, what to sync.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

pub use contactbridge_connector::Secret;

/// How the connector logs in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Credentials {
    /// No `Authorization` header (e.g. Xandikos behind a trusted proxy).
    None,
    /// HTTP Basic with a password or app password.
    Basic { username: String, password: Secret },
    /// A fixed bearer token. Tokens that expire are given through
    /// [`crate::TokenSource`] when building the connector instead.
    Bearer { token: Secret },
}

/// Where the server is: a URL, or only a domain / email address for RFC 6764
/// discovery (SRV/TXT records, then `/.well-known/`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Server {
    /// A URL of the server: its root, a context path, a principal or a home set.
    Url(String),
    /// `example.com` or `user@example.com`: discovered over HTTPS.
    Domain(String),
}

/// The time window (days around now) in which recurring events are expanded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventWindow {
    pub back_days: i64,
    pub ahead_days: i64,
}

impl Default for EventWindow {
    fn default() -> Self {
        Self { back_days: 30, ahead_days: 90 }
    }
}

/// One CardDAV or CalDAV account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DavAccount {
    pub server: Server,
    pub credentials: Credentials,
    /// A PEM file with extra CA certificates to trust (besides the public web PKI
    /// roots), for servers with a private CA. There is deliberately no option to
    /// accept any certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// Collection name patterns to sync (`*` matches any text, case-insensitive;
    /// matched against the display name and the last href segment). Empty: all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    /// Collection name patterns to leave out; wins over `include`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// CalDAV only: the expansion window for recurring events.
    #[serde(default)]
    pub window: EventWindow,
    /// Items fetched per multiget request (and per change set).
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Use WebDAV sync-collection (RFC 6578) when the server offers it. Turn off
    /// for servers whose sync tokens misbehave: the ctag/etag comparison is used.
    #[serde(default = "default_true")]
    pub sync_collection: bool,
    /// Seconds before a request is abandoned as unreachable.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// Allow plain `http://` to a host that is not this machine: the credentials then
    /// travel unencrypted. Off by default; shown in listings when on.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_plain_http: bool,
}

fn default_batch_size() -> usize {
    200
}
fn default_true() -> bool {
    true
}
fn default_timeout() -> u64 {
    120
}

impl DavAccount {
    /// An account for a server URL with the defaults for everything else.
    pub fn new(server: Server, credentials: Credentials) -> Self {
        Self {
            server,
            credentials,
            ca_file: None,
            include: Vec::new(),
            exclude: Vec::new(),
            window: EventWindow::default(),
            batch_size: default_batch_size(),
            sync_collection: true,
            timeout_secs: default_timeout(),
            allow_plain_http: false,
        }
    }

    /// Rejects settings that cannot work or would leak: a URL that is not http(s),
    /// or one carrying credentials (they belong in `credentials`, not in logs).
    pub fn validate(&self) -> Result<(), contactbridge_connector::Error> {
        use contactbridge_connector::Error;
        if let Server::Url(url) = &self.server {
            let uri: http::Uri = url.parse().map_err(|_| Error::local("the server URL is not a valid URL"))?;
            if !matches!(uri.scheme_str(), Some("https" | "http")) || uri.host().is_none() {
                return Err(Error::local(format!("server URL {url:?} must be https://host/... (or http://)")));
            }
            if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
                return Err(Error::local("the server URL contains credentials: put them in the account's credentials"));
            }
        }
        if self.batch_size == 0 {
            return Err(Error::local("batch_size must be at least 1"));
        }
        Ok(())
    }

    /// Refuses at once what every connection would refuse: plain `http://` to a host
    /// that is not this machine without [`DavAccount::allow_plain_http`], and a server
    /// host `policy` refuses (an inner IP address, `localhost`). Names are checked
    /// again, on their resolved addresses, whenever a connection is made.
    pub fn check_target(
        &self,
        policy: &contactbridge_connector::NetPolicy,
    ) -> Result<(), contactbridge_connector::Error> {
        let Server::Url(url) = &self.server else { return Ok(()) };
        let Ok(uri) = url.parse::<http::Uri>() else { return Ok(()) };
        let host = uri.host().unwrap_or_default();
        if uri.scheme_str() == Some("http")
            && !self.allow_plain_http
            && !contactbridge_connector::net::is_loopback_host(host)
        {
            return Err(crate::guard::plain_http_refused(host));
        }
        policy.check_host(host)
    }

    /// Whether a collection with this display name and href is selected by the
    /// include/exclude patterns.
    pub fn selects(&self, name: &str, href: &str) -> bool {
        let segment = href.trim_end_matches('/').rsplit('/').next().unwrap_or(href);
        let hit = |patterns: &[String]| patterns.iter().any(|p| wildcard_match(p, name) || wildcard_match(p, segment));
        (self.include.is_empty() || hit(&self.include)) && !hit(&self.exclude)
    }
}

/// Case-insensitive match of `text` against `pattern`, where `*` matches any run of characters.
fn wildcard_match(pattern: &str, text: &str) -> bool {
    let pattern = pattern.to_lowercase();
    let text = text.to_lowercase();
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_show_in_debug() {
        let account = DavAccount::new(
            Server::Url("https://dav.example".into()),
            Credentials::Basic { username: "ann".into(), password: Secret::new("hunter2") },
        );
        let debug = format!("{account:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("***"), "{debug}");
    }

    #[test]
    fn urls_with_credentials_are_refused_without_echoing_them() {
        let account = DavAccount::new(Server::Url("https://ann:hunter2@dav.example/".into()), Credentials::None);
        let error = account.validate().unwrap_err();
        assert!(!error.to_string().contains("hunter2"), "{error}");
        let account = DavAccount::new(Server::Url("ftp://dav.example/".into()), Credentials::None);
        assert!(account.validate().is_err());
        let account = DavAccount::new(Server::Url("https://dav.example/dav/".into()), Credentials::None);
        assert!(account.validate().is_ok());
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match("Work*", "work contacts"));
        assert!(wildcard_match("*birth*", "Birthdays"));
        assert!(wildcard_match("a*b*c", "aXbYc"));
        assert!(!wildcard_match("a*b*c", "aXcYb"));
        assert!(wildcard_match("family", "Family"));
        assert!(!wildcard_match("family", "Family 2"));
        assert!(!wildcard_match("ab*ba", "aba"));
    }

    #[test]
    fn include_and_exclude() {
        let mut account = DavAccount::new(Server::Url("http://x".into()), Credentials::None);
        assert!(account.selects("Anything", "/a/b/"));
        account.include = vec!["work*".into(), "shared".into()];
        account.exclude = vec!["*archive*".into()];
        assert!(account.selects("Work", "/u/contacts/"));
        assert!(account.selects("Other name", "/u/shared/"));
        assert!(!account.selects("Work archive", "/u/w/"));
        assert!(!account.selects("Private", "/u/private/"));
    }

    #[test]
    fn config_from_json_with_defaults() {
        let json = r#"{"server":{"domain":"ann@example.com"},"credentials":{"type":"bearer","token":"t"}}"#;
        let account: DavAccount = serde_json::from_str(json).unwrap();
        assert_eq!(account.batch_size, 200);
        assert!(account.sync_collection);
        assert_eq!(account.window, EventWindow::default());
        assert_eq!(account.server, Server::Domain("ann@example.com".into()));
    }
}
