//! Backup and restore of user data.

use super::support::*;
use super::Factory;
use crate::model::HandlingCode;
use crate::store::{AssignTarget, StoredWebToken, TimeWindow, TokenKind};

/// `export_user_data` carries every kind of user data (profiles, numbers,
/// assignments, calls, keys, tokens, accounts, secrets) and nothing of the
/// index; `import_user_data` into another backend brings it all back, and
/// replaces what was there.
pub fn export_and_import_round_trip_user_data(new: Factory) {
    let s = new();
    s.put_profile(&profile("alice"), &["e:+4930111".into()]).unwrap();
    s.assign(&user("alice"), &AssignTarget::Number("e:+491".into()), Some(&HandlingCode::well_known("vip"))).unwrap();
    s.put_call(&call("c1", "alice", "+491", 1)).unwrap();
    s.put_key(&crate::store::StoredKey {
        id: "0000000a".into(),
        tenant: "acme".into(),
        scope: crate::store::Scope::Admin,
        secret_sha256: "00".repeat(32),
        created: t(0),
        label: String::new(),
    })
    .unwrap();
    let token = StoredWebToken {
        sha256: "aa".into(),
        kind: TokenKind::Session,
        user: user("alice"),
        created: t(0),
        expires: t(9),
    };
    s.put_web_token(&token).unwrap();
    let mut account =
        crate::model::AccountSpec::new("files-a", user("alice"), crate::model::SourceKind::Files { path: "/a".into() });
    account.created = t(0);
    s.put_account(&account, Some(b"sealed")).unwrap();
    s.apply(&batch(scope("alice", "ab"), vec![contact("a", "e:+491")], &[], "1")).unwrap();
    let backup = s.export_user_data().entries;

    let restored = new();
    restored.put_profile(&profile("bob"), &[]).unwrap();
    restored.import_user_data(&backup).unwrap();
    assert_eq!(restored.profile(&user("bob")).unwrap(), None, "a restore replaces");
    assert_eq!(restored.user_by_called_number("e:+4930111").unwrap(), Some(user("alice")));
    assert_eq!(restored.profile(&user("alice")).unwrap(), Some(profile("alice")));
    assert!(restored.assignment(&user("alice"), &AssignTarget::Number("e:+491".into())).unwrap().is_some());
    assert_eq!(call_ids(restored.calls(&user("alice"), TimeWindow::all(), 10).unwrap()), ["c1"]);
    assert!(restored.call(&crate::model::CallId("c1".into())).unwrap().is_some());
    assert!(restored.key("0000000a").unwrap().is_some());
    assert_eq!(restored.web_token("aa").unwrap(), Some(token));
    assert_eq!(restored.account("files-a").unwrap(), Some(account));
    assert_eq!(restored.sealed_secret("files-a").unwrap().as_deref(), Some(&b"sealed"[..]));
    assert!(restored.contacts_by_phone(&user("alice"), "e:+491").unwrap().is_empty(), "the index is not user data");

    // And back into the same backend after a loss.
    s.delete_user(&user("alice")).unwrap();
    s.import_user_data(&backup).unwrap();
    assert_eq!(s.user_by_called_number("e:+4930111").unwrap(), Some(user("alice")));
}
