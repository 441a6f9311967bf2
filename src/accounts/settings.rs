//! Accounts as the admin API carries them: a kind, a location, the settings as
//! JSON (the connector's own configuration plus the bridge's keys) and a
//! write-only secret.
//!
//! Settings JSON: the connector's configuration (`GraphAccount`, `DavAccount`,
//! nothing for files) with these optional bridge keys beside it:
//! `category_codes` (category → handling code), `region`, `mailbox_users`
//! (mailbox → user), `enabled`. For DAV, `location` is the server URL when
//! `server` is not given, and `username` alone means HTTP Basic with the secret
//! as password (a secret without a username is a bearer token). For Graph, a
//! missing `credential` means a client secret.

use super::registry::AccountError;
use crate::model::{AccountSpec, SourceKind};
use crate::sync::scheduler::Schedule;
use crate::user::{HandlingCode, UserId};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// What a registration request carries.
#[derive(Debug, Clone, Copy)]
pub struct Registration<'a> {
    pub id: &'a str,
    pub user: &'a str,
    /// `graph`, `carddav`, `caldav` or `files`.
    pub kind: &'a str,
    pub location: &'a str,
    pub settings_json: &'a str,
    /// Cron expression; empty: the default schedule.
    pub schedule: &'a str,
    /// IANA time zone of the schedule; empty: UTC.
    pub time_zone: &'a str,
    /// Password, token or client secret; never returned.
    pub secret: &'a str,
}

const BRIDGE_KEYS: [&str; 5] = ["category_codes", "region", "mailbox_users", "enabled", "write_back_codes"];

/// An admin's settings refused; quoted input (serde quotes unknown fields and values whole)
/// is shortened to [`crate::connector::echo::MAX_ECHO_CHARS`] characters.
fn invalid(m: impl Into<String>) -> AccountError {
    AccountError::Invalid(crate::connector::shorten_quoted(&m.into()))
}

/// Builds the account a registration describes (its secret inside, for [`super::Registry::add`]).
pub fn spec_from_registration(r: &Registration<'_>) -> Result<AccountSpec, AccountError> {
    let user = UserId::parse(r.user).map_err(invalid)?;
    let mut settings: Map<String, Value> = if r.settings_json.trim().is_empty() {
        Map::new()
    } else {
        match serde_json::from_str(r.settings_json) {
            Ok(Value::Object(m)) => m,
            Ok(_) => return Err(invalid("settings_json must be a JSON object")),
            Err(e) => return Err(invalid(format!("settings_json is not valid JSON: {e}"))),
        }
    };
    let bridge: Map<String, Value> =
        BRIDGE_KEYS.iter().filter_map(|k| settings.remove(*k).map(|v| (k.to_string(), v))).collect();
    let secret = r.secret.to_string();
    let source = match r.kind.to_ascii_lowercase().as_str() {
        "graph" => {
            if !settings.contains_key("tenant") {
                settings.insert("tenant".into(), json!(r.location));
            }
            if !settings.contains_key("credential") {
                settings.insert("credential".into(), json!({"type": "client_secret", "secret": ""}));
            }
            let g: contactbridge_graph::GraphAccount =
                serde_json::from_value(Value::Object(settings)).map_err(|e| invalid(format!("Graph settings: {e}")))?;
            let mut s = SourceKind::Graph(g);
            s.put_secret(secret);
            s
        }
        kind @ ("carddav" | "caldav") => {
            if !settings.contains_key("server") {
                settings.insert("server".into(), json!({"url": r.location}));
            }
            if !settings.contains_key("credentials") {
                let credentials = match settings.remove("username") {
                    Some(u) => json!({"type": "basic", "username": u, "password": ""}),
                    None if !secret.is_empty() => json!({"type": "bearer", "token": ""}),
                    None => json!({"type": "none"}),
                };
                settings.insert("credentials".into(), credentials);
            }
            let d: contactbridge_dav::DavAccount = serde_json::from_value(Value::Object(settings))
                .map_err(|e| invalid(format!("{kind} settings: {e}")))?;
            let mut s = if kind == "carddav" { SourceKind::CardDav(d) } else { SourceKind::CalDav(d) };
            s.put_secret(secret);
            s
        }
        "files" => SourceKind::Files { path: r.location.into() },
        other => {
            return Err(invalid(format!(
                "account kind {} is not graph, carddav, caldav or files",
                crate::connector::echo(other)
            )))
        }
    };
    let mut spec = AccountSpec::new(r.id, user, source);
    if !r.schedule.trim().is_empty() {
        let tz = if r.time_zone.trim().is_empty() { "UTC" } else { r.time_zone };
        spec.schedule = Some(Schedule::new(r.schedule, tz).map_err(|e| invalid(e.to_string()))?);
    }
    let field = |k: &str| bridge.get(k).cloned();
    if let Some(v) = field("category_codes") {
        let map: BTreeMap<String, String> =
            serde_json::from_value(v).map_err(|e| invalid(format!("category_codes: {e}")))?;
        for (category, code) in map {
            spec.category_codes.insert(category, HandlingCode::parse(&code).map_err(invalid)?);
        }
    }
    if let Some(v) = field("region") {
        spec.region = serde_json::from_value(v).map_err(|e| invalid(format!("region: {e}")))?;
    }
    if let Some(v) = field("mailbox_users") {
        spec.mailbox_users = serde_json::from_value(v).map_err(|e| invalid(format!("mailbox_users: {e}")))?;
    }
    if let Some(v) = field("enabled") {
        spec.enabled = serde_json::from_value(v).map_err(|e| invalid(format!("enabled: {e}")))?;
    }
    if let Some(v) = field("write_back_codes") {
        spec.write_back_codes = serde_json::from_value(v).map_err(|e| invalid(format!("write_back_codes: {e}")))?;
    }
    Ok(spec)
}

/// The settings JSON of a stored account (its secret is empty there: write-only).
pub fn settings_json(spec: &AccountSpec) -> String {
    let mut settings = match &spec.source {
        SourceKind::Graph(g) => serde_json::to_value(g),
        SourceKind::CardDav(d) | SourceKind::CalDav(d) => serde_json::to_value(d),
        SourceKind::Files { .. } => Ok(json!({})),
    }
    .unwrap_or_else(|_| json!({}));
    if let Value::Object(m) = &mut settings {
        if !spec.category_codes.is_empty() {
            m.insert("category_codes".into(), json!(spec.category_codes));
        }
        if let Some(r) = &spec.region {
            m.insert("region".into(), json!(r));
        }
        if !spec.mailbox_users.is_empty() {
            m.insert("mailbox_users".into(), json!(spec.mailbox_users));
        }
        m.insert("enabled".into(), json!(spec.enabled));
        m.insert("write_back_codes".into(), json!(spec.write_back_codes));
    }
    settings.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg<'a>(kind: &'a str, location: &'a str, settings: &'a str, secret: &'a str) -> Registration<'a> {
        Registration {
            id: "a1",
            user: "acme.dana",
            kind,
            location,
            settings_json: settings,
            schedule: "",
            time_zone: "",
            secret,
        }
    }

    #[test]
    fn dav_from_a_location_and_a_username_takes_the_secret_as_password() {
        let mut spec = spec_from_registration(&reg(
            "carddav",
            "https://dav.example/",
            r#"{"username":"dana","region":"DE"}"#,
            "pw",
        ))
        .unwrap();
        assert_eq!(spec.region.as_deref(), Some("DE"));
        assert_eq!(spec.source.secret_name(), Some("password"));
        assert_eq!(spec.source.take_secret().as_deref(), Some("pw"));
        let json = settings_json(&spec);
        assert!(json.contains("https://dav.example/") && json.contains("\"dana\""), "{json}");
        let bearer = spec_from_registration(&reg("caldav", "https://dav.example/", "", "tok")).unwrap();
        assert_eq!(bearer.source.secret_name(), Some("bearer token"));
    }

    #[test]
    fn graph_with_mapping_and_categories_and_files() {
        let settings = r#"{"client_id":"app","mailboxes":["a@x","b@x"],"mailbox_users":{"b@x":"acme.bob"},
            "category_codes":{"VIP":"vip"}}"#;
        let mut r = reg("graph", "acme.example", settings, "cs");
        r.schedule = "0 8 * * *";
        r.time_zone = "Europe/Berlin";
        let mut spec = spec_from_registration(&r).unwrap();
        assert_eq!(spec.mailbox_users["b@x"].as_str(), "acme.bob");
        assert_eq!(spec.category_codes["VIP"].as_str(), "vip");
        assert_eq!(spec.schedule.as_ref().unwrap().time_zone, "Europe/Berlin");
        assert_eq!(spec.source.take_secret().as_deref(), Some("cs"));
        match &spec.source {
            SourceKind::Graph(g) => assert_eq!(g.tenant, "acme.example"),
            other => panic!("{other:?}"),
        }
        let files = spec_from_registration(&reg("files", "/srv/cards", "", "")).unwrap();
        assert_eq!(files.source.location(), "/srv/cards");
        assert!(spec_from_registration(&reg("ldap", "x", "", "")).is_err());
        assert!(spec_from_registration(&reg("carddav", "x", "[1]", "")).is_err());
    }

    #[test]
    fn write_back_codes_is_off_by_default_and_round_trips() {
        let off = spec_from_registration(&reg("carddav", "https://dav.example/", "", "pw")).unwrap();
        assert!(!off.write_back_codes);
        assert!(settings_json(&off).contains("\"write_back_codes\":false"));
        let on = spec_from_registration(&reg("carddav", "https://dav.example/", r#"{"write_back_codes":true}"#, "pw"))
            .unwrap();
        assert!(on.write_back_codes);
        assert!(settings_json(&on).contains("\"write_back_codes\":true"));
        let bad = spec_from_registration(&reg("carddav", "https://dav.example/", r#"{"write_back_codes":"yes"}"#, ""));
        assert!(bad.unwrap_err().to_string().contains("write_back_codes"));
    }
}
