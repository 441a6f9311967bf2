//! What an admin registers: an account's source, owner, schedule and mappings,
//! and how its one secret is taken out before storage and put back after.

use super::{CodeWriteBack, HandlingCode, Schedule, UserId};
use contactbridge_dav::{Credentials, DavAccount, Secret as DavSecret};
use contactbridge_graph::{Credential, GraphAccount, Secret as GraphSecret};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The source an account reads, with its connector's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "settings", rename_all = "snake_case")]
pub enum SourceKind {
    /// Microsoft 365 through Graph: one mailbox (delegated) or many (app-only).
    Graph(GraphAccount),
    CardDav(DavAccount),
    CalDav(DavAccount),
    /// Local .vcf/.ics files or a folder of them.
    Files {
        path: PathBuf,
    },
}

impl SourceKind {
    pub fn name(&self) -> &'static str {
        match self {
            SourceKind::Graph(_) => "graph",
            SourceKind::CardDav(_) => "carddav",
            SourceKind::CalDav(_) => "caldav",
            SourceKind::Files { .. } => "files",
        }
    }

    /// Where the source is, for listings: tenant and mailboxes, server, or path.
    pub fn location(&self) -> String {
        match self {
            SourceKind::Graph(g) => format!("tenant {} mailboxes {}", g.tenant, g.mailboxes.join(", ")),
            SourceKind::CardDav(d) | SourceKind::CalDav(d) => match &d.server {
                contactbridge_dav::Server::Url(u) => u.clone(),
                contactbridge_dav::Server::Domain(d) => format!("{d} (discovered)"),
            },
            SourceKind::Files { path } => path.display().to_string(),
        }
    }

    /// What the account's secret is called, for messages ("password", "client secret", …).
    pub fn secret_name(&self) -> Option<&'static str> {
        match self {
            SourceKind::Graph(g) => Some(match g.credential {
                Credential::ClientSecret { .. } => "client secret",
                Credential::Certificate { .. } => "certificate private key",
                Credential::DeviceCode { .. } => "refresh token",
            }),
            SourceKind::CardDav(d) | SourceKind::CalDav(d) => match d.credentials {
                Credentials::None => None,
                Credentials::Basic { .. } => Some("password"),
                Credentials::Bearer { .. } => Some("bearer token"),
            },
            SourceKind::Files { .. } => None,
        }
    }

    /// Takes the secret out (leaving an empty one in its place). `None` if the kind has none.
    pub fn take_secret(&mut self) -> Option<String> {
        match self {
            SourceKind::Graph(g) => {
                let slot = graph_secret(&mut g.credential);
                Some(std::mem::take(slot).expose().to_string())
            }
            SourceKind::CardDav(d) | SourceKind::CalDav(d) => dav_secret(&mut d.credentials)
                .map(|slot| std::mem::replace(slot, DavSecret::new("")).expose().to_string()),
            SourceKind::Files { .. } => None,
        }
    }

    /// Puts a secret back (ignored by kinds without one).
    pub fn put_secret(&mut self, secret: String) {
        match self {
            SourceKind::Graph(g) => *graph_secret(&mut g.credential) = GraphSecret::new(secret),
            SourceKind::CardDav(d) | SourceKind::CalDav(d) => {
                if let Some(slot) = dav_secret(&mut d.credentials) {
                    *slot = DavSecret::new(secret);
                }
            }
            SourceKind::Files { .. } => {}
        }
    }
}

fn graph_secret(c: &mut Credential) -> &mut GraphSecret {
    match c {
        Credential::ClientSecret { secret } => secret,
        Credential::Certificate { private_key_pem, .. } => private_key_pem,
        Credential::DeviceCode { refresh_token } => refresh_token,
    }
}

fn dav_secret(c: &mut Credentials) -> Option<&mut DavSecret> {
    match c {
        Credentials::None => None,
        Credentials::Basic { password, .. } => Some(password),
        Credentials::Bearer { token } => Some(token),
    }
}

/// A registered account. As stored, its secret is empty: the secret lives
/// sealed beside it (`secrets`) and is put back only to build a connector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountSpec {
    /// Unique across the bridge: letters, digits, `.`, `_`, `-`, `@`; 1–64 characters.
    pub id: String,
    /// The user whose index receives the account's collections (and who owns it).
    pub user: UserId,
    pub source: SourceKind,
    /// When it syncs; `None`: the server's `[sync] default_schedule`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Schedule>,
    pub enabled: bool,
    /// Category (case-insensitive) → handling code, on top of the user's defaults.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub category_codes: BTreeMap<String, HandlingCode>,
    /// Region for numbers without a country code (ISO 3166 code), over the user's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Organisation-wide Graph accounts: mailbox → the user whose index gets it.
    /// Mailboxes not listed go to [`AccountSpec::user`].
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub mailbox_users: BTreeMap<String, UserId>,
    pub created: chrono::DateTime<chrono::Utc>,
    /// Registered by the operator (local CLI, library): not limited by the server's
    /// `[accounts]` settings. Accounts registered by tenant admins, and accounts stored
    /// before this was recorded, are limited (files roots, no inner network addresses).
    #[serde(default)]
    pub operator: bool,
    /// The tenant whose admin registered the account over the admin API; its id is
    /// then `<tenant>/<id>` ([`AccountSpec::scoped_id`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Write handling codes that users set on this account's contacts back to the source as the
    /// mapped category (Outlook categories, vCard CATEGORIES). Off by default.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub write_back_codes: bool,
    /// The codes users set on this account's contacts and how far their write-back got, by
    /// [`CodeWriteBack::key`].
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub code_write_backs: BTreeMap<String, CodeWriteBack>,
}

impl AccountSpec {
    /// A new enabled account with the default schedule and no mappings.
    pub fn new(id: &str, user: UserId, source: SourceKind) -> Self {
        Self {
            id: id.trim().to_string(),
            user,
            source,
            schedule: None,
            enabled: true,
            category_codes: BTreeMap::new(),
            region: None,
            mailbox_users: BTreeMap::new(),
            created: chrono::Utc::now(),
            operator: true,
            tenant: None,
            write_back_codes: false,
            code_write_backs: BTreeMap::new(),
        }
    }

    /// The stored id of account `id` registered by an admin of `tenant`: ids are
    /// scoped by tenant (an id cannot hold `/`, so the pair is unambiguous).
    pub fn scoped_id(tenant: &str, id: &str) -> String {
        format!("{tenant}/{}", id.trim())
    }

    /// The id as its tenant's admin knows it (the stored id without `<tenant>/`).
    pub fn public_id(id: &str) -> &str {
        id.rsplit_once('/').map_or(id, |(_, public)| public)
    }

    /// Checks the id's form.
    pub fn check_id(id: &str) -> Result<(), String> {
        let ok = !id.is_empty()
            && id.len() <= 64
            && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@' | ':'));
        if ok {
            Ok(())
        } else {
            Err(format!(
                "account id {} must be 1-64 characters of letters, digits, '.', '_', '-', '@', ':'",
                crate::connector::echo(id)
            ))
        }
    }

    /// Every user whose index this account writes to: the owner and mapped users.
    pub fn users(&self) -> Vec<UserId> {
        let mut users = vec![self.user.clone()];
        for u in self.mailbox_users.values() {
            if !users.contains(u) {
                users.push(u.clone());
            }
        }
        users
    }

    /// Collection owner (mailbox) → user, for the sync target's owners (`sync::SyncTarget::owners`).
    pub fn owners(&self) -> std::collections::HashMap<String, UserId> {
        let mut owners: std::collections::HashMap<String, UserId> = std::collections::HashMap::new();
        if let SourceKind::Graph(g) = &self.source {
            for m in &g.mailboxes {
                owners.insert(m.clone(), self.user.clone());
            }
        }
        owners.extend(self.mailbox_users.iter().map(|(m, u)| (m.clone(), u.clone())));
        owners
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_come_out_and_go_back_for_every_kind() {
        let dav = DavAccount::new(
            contactbridge_dav::Server::Url("https://dav.example/".into()),
            Credentials::Basic { username: "ann".into(), password: DavSecret::new("pw1") },
        );
        let graph = GraphAccount::new(
            "t",
            "c",
            Credential::DeviceCode { refresh_token: GraphSecret::new("rt1") },
            vec!["a@b".into()],
        );
        for (mut kind, secret) in [(SourceKind::CardDav(dav), "pw1"), (SourceKind::Graph(graph), "rt1")] {
            let original = kind.clone();
            assert_eq!(kind.take_secret().as_deref(), Some(secret));
            let json = serde_json::to_string(&kind).unwrap();
            assert!(!json.contains(secret), "{json}");
            kind.put_secret(secret.to_string());
            assert_eq!(kind, original);
        }
        let mut files = SourceKind::Files { path: "/x".into() };
        assert_eq!(files.take_secret(), None);
    }
}

/// How a sync of an account ended, as `sync --once` tells it by exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncOutcome {
    /// Every collection synced (or there were none).
    Complete,
    /// Some collections synced, others failed (or were left out while backing off).
    Partial,
    /// Nothing synced: the collections could not be listed, or every one failed.
    Failed,
}

impl SyncOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Complete => "complete",
            Self::Partial => "partial",
            Self::Failed => "failed",
        }
    }
}
