//! The HTTP lookup (issue 14 part 2) through real `curl` against a running
//! server on 127.0.0.1, over a temporary store with the demo user (tenant
//! `demo`) and a second tenant. Hostile inputs are in tests/hostile_phone.rs.

mod support;

use support::lookup::{curl, Fixture, DEMO_DID, ERIKA_CLI, OTHER_DID};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_name_comes_as_plain_text_for_a_bearer_header_or_a_key_parameter() {
    let f = Fixture::start().await;
    let url = f.url(&format!("/lookup/v1/name?called={}&cli={}", enc(DEMO_DID), enc(ERIKA_CLI)));
    let r = curl(&["-H", &format!("Authorization: Bearer {}", f.demo_tsps), &url]).await;
    assert_eq!((r.status, r.body.as_str()), (200, "Erika Mustermann"), "{r:?}");
    assert!(r.header("content-type").unwrap().starts_with("text/plain"), "{r:?}");

    // The key as a query parameter (Asterisk CURL(), mod_cidlookup), and the CLI as the
    // phone system sends it: national, with punctuation. Same matching as calls.
    let url =
        f.url(&format!("/lookup/v1/name?key={}&called={}&cli={}", f.demo_tsps, enc(DEMO_DID), enc("030 1234567")));
    let r = curl(&[&url]).await;
    assert_eq!((r.status, r.body.as_str()), (200, "Erika Mustermann"), "{r:?}");

    // Unknown and withheld callers: 200 with an empty name.
    for cli in ["+49 40 9999999", "anonymous"] {
        let url = f.url(&format!("/lookup/v1/name?key={}&called={}&cli={}", f.demo_tsps, enc(DEMO_DID), enc(cli)));
        let r = curl(&[&url]).await;
        assert_eq!((r.status, r.body.as_str()), (200, ""), "{cli}: {r:?}");
    }
    // A name lookup is not a call: nothing is recorded.
    assert_eq!(f.calls_of_demo(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_decision_comes_as_json_and_is_recorded_only_when_asked() {
    let f = Fixture::start().await;
    let url = f.url(&format!("/lookup/v1/decision?called={}&cli={}", enc(DEMO_DID), enc(ERIKA_CLI)));
    let auth = format!("Authorization: Bearer {}", f.demo_tsps);
    let r = curl(&["-H", &auth, &url]).await;
    assert_eq!(r.status, 200, "{r:?}");
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["user"], "demo");
    assert_eq!(v["name"], "Erika Mustermann");
    assert_eq!(v["handling_code"], "vip");
    assert_eq!(v["caller"]["e164"], "+49301234567");
    assert_eq!(v["candidates"][0]["quality"], "exact");
    assert_eq!(v["recorded"], false);
    assert!(v.get("call_id").is_none(), "{v}");
    assert!(v["method"].is_string() && v["status"].is_string(), "{v}");
    assert_eq!(f.calls_of_demo(), 0);

    let r = curl(&["-H", &auth, &format!("{url}&record=true")]).await;
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["recorded"], true);
    let id = v["call_id"].as_str().unwrap();
    assert_eq!(f.calls_of_demo(), 1);
    let call = f.call(id).expect("the recorded call is in the history");
    assert_eq!(call.handling_code.as_str(), "vip");

    let r = curl(&["-H", &auth, &format!("{url}&record=maybe")]).await;
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.body.contains("record"), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_keys_are_401_and_admin_keys_403() {
    let f = Fixture::start().await;
    let path = format!("/lookup/v1/name?called={}&cli={}", enc(DEMO_DID), enc(ERIKA_CLI));
    let r = curl(&[&f.url(&path)]).await;
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    assert!(r.reason().contains("missing API key"), "{r:?}");
    assert_eq!(r.body, "", "the name route never puts a reason where a name goes");

    let mut wrong = f.demo_tsps.clone();
    wrong.pop();
    wrong.push('x');
    for r in [
        curl(&["-H", &format!("Authorization: Bearer {wrong}"), &f.url(&path)]).await,
        curl(&[&f.url(&format!("{path}&key={wrong}"))]).await,
        curl(&["-H", &format!("Authorization: Basic {}", f.demo_tsps), &f.url(&path)]).await,
    ] {
        assert_eq!((r.status, r.reason(), r.body.as_str()), (401, "invalid API key", ""), "{r:?}");
        assert!(!r.body.contains("Erika"));
    }
    let r = curl(&["-H", &format!("Authorization: Bearer {}", f.demo_admin), &f.url(&path)]).await;
    assert_eq!(r.status, 403, "{r:?}");
    assert!(r.reason().contains("scope tsps"), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenants_called_number_answers_as_an_unknown_one() {
    let f = Fixture::start().await;
    // The other tenant's key asks for the demo user's DID; the demo key for the other's.
    for (key, did, json) in
        [(&f.other_tsps, DEMO_DID, false), (&f.demo_tsps, OTHER_DID, false), (&f.other_tsps, DEMO_DID, true)]
    {
        let route = if json { "decision" } else { "name" };
        let theirs =
            curl(&[&f.url(&format!("/lookup/v1/{route}?key={key}&called={}&cli={}", enc(did), enc(ERIKA_CLI)))]).await;
        // The same number asked by a key of a tenant where nobody has it:
        let nobody = curl(&[&f.url(&format!(
            "/lookup/v1/{route}?key={}&called={}&cli={}",
            f.empty_tsps,
            enc(did),
            enc(ERIKA_CLI)
        ))])
        .await;
        assert_eq!(theirs.status, 404, "{theirs:?}");
        assert_eq!((theirs.status, theirs.reason(), &theirs.body), (nobody.status, nobody.reason(), &nobody.body));
        assert!(theirs.reason().contains("belongs to no user"), "{theirs:?}");
        assert!(!format!("{theirs:?}").contains("Erika") && !format!("{theirs:?}").contains("Sam"), "{theirs:?}");
    }
    assert_eq!(f.calls_of_demo(), 0);
}

fn enc(s: &str) -> String {
    support::lookup::enc(s)
}
