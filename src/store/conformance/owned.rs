//! API keys, web tokens, accounts: user-owned records outside the index.

use super::support::*;
use super::Factory;
use crate::model::{AccountSpec, SourceKind};
use crate::store::{RunRecord, Scope, StoredKey, StoredWebToken, SubscriptionRecord, TokenKind};

fn key(id: &str, tenant: &str) -> StoredKey {
    StoredKey {
        id: id.into(),
        tenant: tenant.into(),
        scope: Scope::Tsps,
        secret_sha256: format!("{id:0>64}"),
        created: t(0),
        label: format!("key {id}"),
    }
}

/// Keys read back by id, are listed all or by tenant, and are deleted.
pub fn api_keys_round_trip_are_listed_by_tenant_and_deleted(new: Factory) {
    let s = new();
    assert_eq!(s.key("0000000a").unwrap(), None);
    s.put_key(&key("0000000a", "acme")).unwrap();
    s.put_key(&key("0000000b", "acme")).unwrap();
    let mut admin = key("0000000c", "other");
    admin.scope = Scope::Admin;
    s.put_key(&admin).unwrap();
    assert_eq!(s.key("0000000c").unwrap(), Some(admin));
    let ids = |v: Vec<StoredKey>| {
        let mut ids: Vec<String> = v.into_iter().map(|k| k.id).collect();
        ids.sort();
        ids
    };
    assert_eq!(ids(s.keys(None).unwrap()), ["0000000a", "0000000b", "0000000c"]);
    assert_eq!(ids(s.keys(Some("acme")).unwrap()), ["0000000a", "0000000b"]);
    assert!(s.keys(Some("nobody")).unwrap().is_empty());
    assert!(s.delete_key("0000000a").unwrap());
    assert!(!s.delete_key("0000000a").unwrap());
    assert_eq!(s.key("0000000a").unwrap(), None);
    assert_eq!(s.key("bad\0id").unwrap(), None, "an id that cannot exist finds nothing");
}

fn token(sha: &str, kind: TokenKind, expires: i64) -> StoredWebToken {
    StoredWebToken { sha256: sha.into(), kind, user: user("alice"), created: t(0), expires: t(expires) }
}

/// Tokens read back by hash and are deleted; purging removes exactly the
/// expired ones (expiry at or before now).
pub fn web_tokens_round_trip_and_expired_ones_are_purged(new: Factory) {
    let s = new();
    s.put_web_token(&token("aa", TokenKind::Login, 1)).unwrap();
    s.put_web_token(&token("bb", TokenKind::Session, 2)).unwrap();
    s.put_web_token(&token("cc", TokenKind::Session, 10)).unwrap();
    assert_eq!(s.web_token("bb").unwrap(), Some(token("bb", TokenKind::Session, 2)));
    assert_eq!(s.web_token("zz").unwrap(), None);
    assert_eq!(s.purge_web_tokens(t(2)).unwrap(), 2);
    assert_eq!(s.web_token("aa").unwrap(), None);
    assert_eq!(s.web_token("bb").unwrap(), None);
    assert!(s.web_token("cc").unwrap().is_some());
    assert!(s.delete_web_token("cc").unwrap());
    assert!(!s.delete_web_token("cc").unwrap());
    assert_eq!(s.purge_web_tokens(t(100)).unwrap(), 0);
}

/// Accounts read back and are listed; the sealed secret is kept apart and
/// replaced on its own; the last sync's outcome is kept; deleting an account
/// removes its secret and outcome too.
pub fn accounts_round_trip_with_sealed_secrets_and_outcomes(new: Factory) {
    let s = new();
    let mut a = AccountSpec::new("files-a", user("alice"), SourceKind::Files { path: "/srv/a".into() });
    a.created = t(0);
    let mut b = AccountSpec::new("acme/dav-b", user("bob"), SourceKind::Files { path: "/srv/b".into() });
    b.created = t(0);
    b.tenant = Some("acme".into());
    assert_eq!(s.account("files-a").unwrap(), None);
    s.put_account(&a, Some(b"sealed-1")).unwrap();
    s.put_account(&b, None).unwrap();
    assert_eq!(s.account("files-a").unwrap(), Some(a.clone()));
    assert_eq!(s.account("acme/dav-b").unwrap(), Some(b.clone()));
    let mut ids: Vec<String> = s.accounts().unwrap().into_iter().map(|a| a.id).collect();
    ids.sort();
    assert_eq!(ids, ["acme/dav-b", "files-a"]);

    assert_eq!(s.sealed_secret("files-a").unwrap().as_deref(), Some(&b"sealed-1"[..]));
    assert_eq!(s.sealed_secret("acme/dav-b").unwrap(), None);
    s.put_sealed_secret("files-a", b"sealed-2").unwrap();
    a.enabled = false;
    s.put_account(&a, None).unwrap();
    assert_eq!(s.sealed_secret("files-a").unwrap().as_deref(), Some(&b"sealed-2"[..]), "kept without a new one");
    assert!(!s.account("files-a").unwrap().unwrap().enabled);

    assert_eq!(s.run_record("files-a").unwrap(), None);
    let run = RunRecord {
        started: Some(t(1)),
        finished: Some(t(2)),
        upserted: 7,
        consecutive_failures: 0,
        ..Default::default()
    };
    s.put_run_record("files-a", &run).unwrap();
    assert_eq!(s.run_record("files-a").unwrap(), Some(run));

    assert!(s.delete_account("files-a").unwrap());
    assert!(!s.delete_account("files-a").unwrap());
    assert_eq!(s.account("files-a").unwrap(), None);
    assert_eq!(s.sealed_secret("files-a").unwrap(), None);
    assert_eq!(s.run_record("files-a").unwrap(), None);
    assert!(s.account("acme/dav-b").unwrap().is_some(), "other accounts stay");
}

/// Change-notification subscriptions read back by Graph's id, are listed, replaced
/// (renewed) and deleted; an id with a NUL byte is refused for writing and unknown for reading.
pub fn subscriptions_round_trip_are_listed_and_deleted(new: Factory) {
    let s = new();
    let sub = |account: &str, part: &str, n: u8| SubscriptionRecord {
        account: account.into(),
        mailbox: "dana@contoso.example".into(),
        part: part.into(),
        state_hash: [n; 32],
        expires: t(i64::from(n)),
        notification_url: "https://bridge.example/graph/notifications".into(),
    };
    assert_eq!(s.subscriptions().unwrap(), vec![]);
    assert_eq!(s.subscription("7f1b").unwrap(), None);
    s.put_subscription("7f1b", &sub("acme/m365", "contacts", 1)).unwrap();
    s.put_subscription("90ac", &sub("other/m365", "events", 2)).unwrap();
    assert_eq!(s.subscription("7f1b").unwrap(), Some(sub("acme/m365", "contacts", 1)));
    s.put_subscription("7f1b", &sub("acme/m365", "contacts", 3)).unwrap();
    let mut all = s.subscriptions().unwrap();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        all,
        vec![("7f1b".into(), sub("acme/m365", "contacts", 3)), ("90ac".into(), sub("other/m365", "events", 2))]
    );
    s.delete_subscription("7f1b").unwrap();
    s.delete_subscription("7f1b").unwrap();
    assert_eq!(s.subscription("7f1b").unwrap(), None);
    assert_eq!(s.subscriptions().unwrap().len(), 1);
    assert!(s.put_subscription("a\0b", &sub("acme/m365", "contacts", 4)).is_err());
    assert_eq!(s.subscription("a\0b").unwrap(), None);
    s.delete_subscription("a\0b").unwrap();
}
