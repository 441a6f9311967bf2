//! Account configuration for the Graph connector (serde).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub use contactbridge_connector::Secret;

/// How the account gets its tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Credential {
    /// App-only (client credentials grant): organisation-wide access to the listed mailboxes.
    ClientSecret { secret: Secret },
    /// App-only with a certificate (client assertion, RFC 7523): the certificate's RSA
    /// private key (PKCS#8 or PKCS#1 PEM) and its SHA-1 thumbprint in hex, as the Azure
    /// portal shows it.
    Certificate { private_key_pem: Secret, thumbprint: String },
    /// Delegated, for one account: the refresh token obtained once by the device-code
    /// flow ([`crate::auth::DeviceLogin`]). Rotated tokens are kept in memory; read
    /// them with [`crate::auth::TokenCache::refresh_token`] to persist them.
    DeviceCode { refresh_token: Secret },
}

/// The calendar window synced by calendarView delta, relative to now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    #[serde(default = "default_back")]
    pub back_days: u32,
    #[serde(default = "default_ahead")]
    pub ahead_days: u32,
}

fn default_back() -> u32 {
    30
}
fn default_ahead() -> u32 {
    90
}

impl Default for Window {
    fn default() -> Self {
        Self { back_days: default_back(), ahead_days: default_ahead() }
    }
}

/// Bounded retries for throttling (429/503/504) and connection errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Attempts per request, the first included.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// A Retry-After longer than this is not waited for: the sync stops with
    /// [`contactbridge_connector::ErrorKind::Throttled`] and its `retry_after`.
    #[serde(default = "default_max_wait")]
    pub max_wait_secs: u64,
    /// First backoff when the server gives no Retry-After (doubles, with jitter).
    #[serde(default = "default_backoff")]
    pub base_backoff_ms: u64,
}

fn default_attempts() -> u32 {
    5
}
fn default_max_wait() -> u64 {
    120
}
fn default_backoff() -> u64 {
    500
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { max_attempts: default_attempts(), max_wait_secs: default_max_wait(), base_backoff_ms: default_backoff() }
    }
}

/// One Microsoft Graph account: a tenant, an app registration and the mailboxes it syncs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GraphAccount {
    /// Identity provider root, e.g. `https://login.microsoftonline.com` (or a national cloud's).
    #[serde(default = "default_authority")]
    pub authority: String,
    /// Graph service root including the version, e.g. `https://graph.microsoft.com/v1.0`.
    #[serde(default = "default_graph_base")]
    pub graph_base: String,
    pub tenant: String,
    pub client_id: String,
    pub credential: Credential,
    /// Token endpoint; default `{authority}/{tenant}/oauth2/v2.0/token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_url: Option<String>,
    /// Device authorization endpoint; default `{authority}/{tenant}/oauth2/v2.0/devicecode`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_code_url: Option<String>,
    /// Scopes; default `{graph origin}/.default` for app-only, the read scopes plus
    /// `offline_access` and `Contacts.ReadWrite` for delegated accounts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// Mailboxes (UPNs or object ids). Always addressed as `/users/{mailbox}`, never `/me`.
    pub mailboxes: Vec<String>,
    #[serde(default)]
    pub window: Window,
    #[serde(default = "default_lookback")]
    pub mail_lookback_days: u32,
    /// Items per page asked with `Prefer: odata.maxpagesize`.
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// Concurrent requests per mailbox (Outlook allows 4).
    #[serde(default = "default_concurrency")]
    pub max_concurrent_per_mailbox: usize,
    #[serde(default)]
    pub retry: RetryPolicy,
    /// Refuse plain HTTP. Only tests against local servers turn this off.
    #[serde(default = "default_true")]
    pub https_only: bool,
    /// Category → handling code: the per-account mapping. Contacts keep their categories as
    /// Outlook has them; the bridge maps them with [`GraphAccount::handling_code_for`].
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub category_codes: BTreeMap<String, String>,
}

fn default_authority() -> String {
    "https://login.microsoftonline.com".into()
}
fn default_graph_base() -> String {
    "https://graph.microsoft.com/v1.0".into()
}
fn default_lookback() -> u32 {
    90
}
fn default_page_size() -> u32 {
    200
}
fn default_concurrency() -> usize {
    4
}
fn default_true() -> bool {
    true
}

impl GraphAccount {
    /// An account with defaults for everything but identity and mailboxes.
    pub fn new(tenant: &str, client_id: &str, credential: Credential, mailboxes: Vec<String>) -> Self {
        Self {
            authority: default_authority(),
            graph_base: default_graph_base(),
            tenant: tenant.into(),
            client_id: client_id.into(),
            credential,
            token_url: None,
            device_code_url: None,
            scopes: Vec::new(),
            mailboxes,
            window: Window::default(),
            mail_lookback_days: default_lookback(),
            page_size: default_page_size(),
            max_concurrent_per_mailbox: default_concurrency(),
            retry: RetryPolicy::default(),
            https_only: true,
            category_codes: BTreeMap::new(),
        }
    }

    pub fn token_url(&self) -> String {
        self.token_url
            .clone()
            .unwrap_or_else(|| format!("{}/{}/oauth2/v2.0/token", self.authority.trim_end_matches('/'), self.tenant))
    }

    pub fn device_code_url(&self) -> String {
        self.device_code_url.clone().unwrap_or_else(|| {
            format!("{}/{}/oauth2/v2.0/devicecode", self.authority.trim_end_matches('/'), self.tenant)
        })
    }

    /// The handling code this account's category mapping gives a contact: the first of its
    /// categories (case-insensitive) that `category_codes` maps. The bridge applies it.
    pub fn handling_code_for<'a>(&'a self, categories: &[String]) -> Option<&'a str> {
        categories.iter().find_map(|c| {
            self.category_codes.iter().find(|(k, _)| k.eq_ignore_ascii_case(c)).map(|(_, code)| code.as_str())
        })
    }

    /// The category that carries `code` in Outlook (for the write-back), if the mapping has one.
    pub fn category_for_code(&self, code: &str) -> Option<&str> {
        self.category_codes.iter().find(|(_, c)| c.as_str() == code).map(|(k, _)| k.as_str())
    }

    /// The scopes to ask for, defaults applied.
    pub fn effective_scopes(&self) -> Vec<String> {
        if !self.scopes.is_empty() {
            return self.scopes.clone();
        }
        let origin = url::Url::parse(&self.graph_base)
            .map(|u| u.origin().ascii_serialization())
            .unwrap_or_else(|_| "https://graph.microsoft.com".into());
        match self.credential {
            Credential::ClientSecret { .. } | Credential::Certificate { .. } => vec![format!("{origin}/.default")],
            Credential::DeviceCode { .. } => [
                "offline_access",
                "Contacts.ReadWrite",
                "Calendars.Read",
                "Mail.ReadBasic",
                "Files.Read",
                "MailboxSettings.Read",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let c = Credential::ClientSecret { secret: Secret::new("hunter2") };
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(Secret::new("hunter2").to_string(), "***");
    }

    #[test]
    fn categories_map_to_handling_codes_both_ways() {
        let mut a = GraphAccount::new("t", "c", Credential::ClientSecret { secret: Secret::new("s") }, vec![]);
        a.category_codes.insert("VIP".into(), "vip".into());
        a.category_codes.insert("Blocked".into(), "block".into());
        assert_eq!(a.handling_code_for(&["Customers".into(), "vip".into()]), Some("vip"));
        assert_eq!(a.handling_code_for(&["Customers".into()]), None);
        assert_eq!(a.category_for_code("block"), Some("Blocked"));
    }

    #[test]
    fn defaults_and_app_only_scope_follow_the_cloud() {
        let mut a = GraphAccount::new("t", "c", Credential::ClientSecret { secret: Secret::new("s") }, vec![]);
        assert_eq!(a.token_url(), "https://login.microsoftonline.com/t/oauth2/v2.0/token");
        a.graph_base = "https://graph.microsoft.us/v1.0".into();
        assert_eq!(a.effective_scopes(), vec!["https://graph.microsoft.us/.default"]);
        let json =
            r#"{"tenant":"t","client_id":"c","credential":{"type":"client_secret","secret":"x"},"mailboxes":["a@b"]}"#;
        let parsed: GraphAccount = serde_json::from_str(json).unwrap();
        assert_eq!(parsed.window, Window { back_days: 30, ahead_days: 90 });
        assert!(parsed.https_only);
    }
}
