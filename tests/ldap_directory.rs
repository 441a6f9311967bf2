//! The LDAP directory (issue 14 part 3) through real clients: Debian's
//! `ldapsearch` and the Python `ldap3` library, against the directory serving a
//! store with the demo user (tenant `demo`, 6 contacts) and a second tenant
//! whose only contact has Erika's number.

mod support;

use support::lookup::{ldapsearch, Ldap};

const USER_DN: &str = "ou=demo,ou=demo,dc=contactbridge";
const TENANT_DN: &str = "ou=demo,dc=contactbridge";
const PHONES_DN: &str = "cn=phones,ou=demo,dc=contactbridge";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_number_search_matches_as_a_call_would_and_shows_what_phones_expect() {
    let l = Ldap::start(500, false).await;
    let url = l.url();
    // Stored as `(030) 123 45 67`; asked as E.164, as national, as a phone's OR filter.
    for filter in [
        "(telephoneNumber=+49301234567)",
        "(telephoneNumber=030 1234567)",
        "(|(telephoneNumber=+49301234567)(mobile=+49301234567)(homePhone=+49301234567))",
        "(|(cn=*+49301234567*)(telephoneNumber=*+49301234567*)(mobile=*+49301234567*))",
    ] {
        let s = ldapsearch(&[], &["-H", &url, "-D", USER_DN, "-w", &l.demo_tsps, "-b", USER_DN, filter]).await;
        assert_eq!(s.code, 0, "{filter}: {s:?}");
        assert_eq!(s.values("cn"), vec![vec!["Erika Mustermann"]], "{filter}: {s:?}");
        assert_eq!(s.values("telephoneNumber"), vec![vec!["(030) 123 45 67"]]);
        assert_eq!(s.values("mobile"), vec![vec!["0171 2345678"]]);
        assert_eq!(s.values("o"), vec![vec!["ACME GmbH"]]);
        assert_eq!(s.values("mail"), vec![vec!["erika.mustermann@acme.example"]]);
        assert!(s.values("dn")[0][0].ends_with(",ou=demo,ou=demo,dc=contactbridge"), "{s:?}");
        // The other tenant's contact with the same number is never shown.
        assert!(!format!("{s:?}").contains("Sam"));
    }
    // Only the attributes asked for.
    let s = ldapsearch(
        &[],
        &["-H", &url, "-D", USER_DN, "-w", &l.demo_tsps, "-b", USER_DN, "(mobile=+491712345678)", "cn"],
    )
    .await;
    assert_eq!(s.entries.len(), 1, "{s:?}");
    assert_eq!(s.entries[0].iter().map(|(a, _)| a.as_str()).collect::<Vec<_>>(), ["dn", "cn"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_search_is_case_insensitive_and_unicode_aware() {
    let l = Ldap::start(500, false).await;
    let url = l.url();
    let search = |filter: &'static str| {
        let (url, key) = (url.clone(), l.demo_tsps.clone());
        async move { ldapsearch(&[], &["-H", &url, "-D", PHONES_DN, "-w", &key, "-b", TENANT_DN, filter, "cn"]).await }
    };
    let s = search("(|(cn=*erika*)(telephoneNumber=*erika*)(mobile=*erika*))").await;
    assert_eq!(s.values("cn"), vec![vec!["Erika Mustermann"]], "{s:?}");
    let mut names: Vec<&str> = Vec::new();
    let s = search("(cn=*schmidt*)").await;
    names.extend(s.values("cn").into_iter().flatten());
    names.sort();
    assert_eq!(names, ["Greta Schmidt", "Hans Schmidt"], "{s:?}");
    let s = search("(o=*SÖHNE*)").await;
    assert_eq!(s.values("cn"), vec![vec!["Hans Schmidt"]], "{s:?}");
    let s = search("(&(objectClass=inetOrgPerson)(cn=J*)(!(o=ACME*)))").await;
    assert_eq!(s.values("cn"), vec![vec!["John Smith"]], "{s:?}");
    let s = search("(cn=nobody here)").await;
    assert_eq!((s.code, s.entries.len()), (0, 0), "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn size_limits_cut_the_answer_and_say_so() {
    let l = Ldap::start(4, false).await;
    let url = l.url();
    let all = ["-H", &url, "-D", TENANT_DN, "-w", &l.demo_tsps, "-b", TENANT_DN, "(objectClass=inetOrgPerson)", "cn"];
    // The server's limit (4 of 6).
    let s = ldapsearch(&[], &all).await;
    assert_eq!((s.code, s.entries.len()), (4, 4), "sizeLimitExceeded after 4 entries: {s:?}");
    // The client's smaller limit wins.
    let mut with_z = all.to_vec();
    with_z.extend(["-z", "2"]);
    let s = ldapsearch(&[], &with_z).await;
    assert_eq!((s.code, s.entries.len()), (4, 2), "{s:?}");
    let l = Ldap::start(500, false).await;
    let url = l.url();
    let s = ldapsearch(
        &[],
        &["-H", &url, "-D", TENANT_DN, "-w", &l.demo_tsps, "-b", TENANT_DN, "(objectClass=inetOrgPerson)"],
    )
    .await;
    assert_eq!((s.code, s.entries.len()), (0, 6), "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_are_invalid_credentials_and_anonymous_may_not_search() {
    let l = Ldap::start(500, false).await;
    let url = l.url();
    let mut wrong = l.demo_tsps.clone();
    wrong.pop();
    wrong.push('x');
    for (dn, key) in [
        (USER_DN, wrong.as_str()),
        (USER_DN, l.other_tsps.as_str()), // another tenant's key
        (USER_DN, l.demo_admin.as_str()), // not a tsps key
        ("ou=other.olga,ou=demo,dc=contactbridge", l.demo_tsps.as_str()), // a user of another tenant
        ("ou=nobody.here,ou=demo,dc=contactbridge", l.demo_tsps.as_str()),
        ("cn=admin,dc=example,dc=com", l.demo_tsps.as_str()),
        (USER_DN, ""),
    ] {
        let s = ldapsearch(&[], &["-H", &url, "-D", dn, "-w", key, "-b", USER_DN, "(objectClass=*)"]).await;
        assert_eq!(s.code, 49, "{dn}: {s:?}");
        assert!(s.stderr.contains("Invalid credentials"), "{s:?}");
        assert!(s.entries.is_empty());
    }
    // Anonymous: the root DSE, nothing else.
    let s = ldapsearch(&[], &["-H", &url, "-b", "", "-s", "base", "namingContexts"]).await;
    assert_eq!((s.code, s.values("namingContexts")), (0, vec![vec!["dc=contactbridge"]]), "{s:?}");
    let s = ldapsearch(&[], &["-H", &url, "-b", USER_DN, "(objectClass=*)"]).await;
    assert_eq!(s.code, 50, "insufficientAccessRights: {s:?}");
    assert!(s.entries.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenants_base_answers_as_one_that_does_not_exist() {
    let l = Ldap::start(500, false).await;
    let url = l.url();
    let mut answers = Vec::new();
    for base in [
        "ou=other,dc=contactbridge",
        "ou=other.olga,ou=other,dc=contactbridge",
        "ou=other.olga,ou=demo,dc=contactbridge",
        "ou=nobody,dc=contactbridge",
        "ou=nobody.here,ou=demo,dc=contactbridge",
        "dc=example,dc=com",
    ] {
        let s =
            ldapsearch(&[], &["-H", &url, "-D", TENANT_DN, "-w", &l.demo_tsps, "-b", base, "(objectClass=*)"]).await;
        assert_eq!(s.code, 32, "noSuchObject for {base}: {s:?}");
        assert!(s.entries.is_empty());
        answers.push(s.stderr.replace(base, "BASE"));
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:#?}");
    // The other tenant, bound to its own user, sees its own contact only.
    let olga = "ou=other.olga,ou=other,dc=contactbridge";
    let s = ldapsearch(
        &[],
        &["-H", &url, "-D", olga, "-w", &l.other_tsps, "-b", olga, "(telephoneNumber=+49301234567)", "cn"],
    )
    .await;
    assert_eq!((s.code, s.values("cn")), (0, vec![vec!["Secret Sam"]]), "{s:?}");
    // A user-bound session cannot widen to its tenant: the tenant base lists its own contacts only.
    let s = ldapsearch(
        &[],
        &["-H", &url, "-D", olga, "-w", &l.other_tsps, "-b", "ou=other,dc=contactbridge", "(cn=*)", "cn"],
    )
    .await;
    assert_eq!((s.code, s.values("cn")), (0, vec![vec!["Secret Sam"]]), "{s:?}");
    // A key of a tenant without users binds nowhere in another tenant.
    let s = ldapsearch(&[], &["-H", &url, "-D", USER_DN, "-w", &l.empty_tsps, "-b", USER_DN]).await;
    assert_eq!(s.code, 49, "a key of a tenant without users: {s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_is_offered_when_configured_and_required_with_zz() {
    let l = Ldap::start(500, true).await;
    let url = l.url();
    let ca = l.tls_dir.as_ref().unwrap().path().join("ca.pem").display().to_string();
    let env = [("LDAPTLS_CACERT", ca), ("LDAPTLS_REQCERT", "demand".to_string())];
    let s = ldapsearch(
        &env,
        &["-ZZ", "-H", &url, "-D", USER_DN, "-w", &l.demo_tsps, "-b", USER_DN, "(telephoneNumber=+49301234567)", "cn"],
    )
    .await;
    assert_eq!((s.code, s.values("cn")), (0, vec![vec!["Erika Mustermann"]]), "{s:?}");
    // Without the CA the certificate is refused, so nothing was sent in the clear.
    let s = ldapsearch(
        &[("LDAPTLS_REQCERT", "demand".to_string()), ("LDAPTLS_CACERT", "/dev/null".to_string())],
        &["-ZZ", "-H", &url, "-D", USER_DN, "-w", &l.demo_tsps, "-b", USER_DN, "(cn=*)"],
    )
    .await;
    assert_ne!(s.code, 0, "{s:?}");
    // A directory without TLS refuses StartTLS; -ZZ then stops before binding.
    let plain = Ldap::start(500, false).await;
    let s =
        ldapsearch(&[], &["-ZZ", "-H", &plain.url(), "-D", USER_DN, "-w", &plain.demo_tsps, "-b", USER_DN, "(cn=*)"])
            .await;
    assert_ne!(s.code, 0, "{s:?}");
    assert!(s.entries.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_ldap3_client_binds_searches_and_is_refused_elsewhere() {
    let l = Ldap::start(500, false).await;
    let tools = std::env::var_os("CONTACTBRIDGE_TOOLS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools"));
    let python = tools.join("venv/bin/python");
    assert!(python.exists(), "{} is missing: run tests/setup-tools.sh", python.display());
    let script = r#"
import json, sys
from ldap3 import Server, Connection, SUBTREE
port, key, other = int(sys.argv[1]), sys.argv[2], sys.argv[3]
server = Server("127.0.0.1", port=port, get_info=None)
out = {}
c = Connection(server, user="ou=demo,ou=demo,dc=contactbridge", password=key)
out["bind"] = c.bind()
c.search("ou=demo,ou=demo,dc=contactbridge", "(|(telephoneNumber=+49 30 1234567)(mobile=+49 30 1234567))",
         SUBTREE, attributes=["cn", "telephoneNumber", "o"])
out["found"] = [[e.cn.value, e.telephoneNumber.value, e.o.value] for e in c.entries]
c.search("ou=other,dc=contactbridge", "(objectClass=*)", SUBTREE, attributes=["cn"])
out["other_tenant"] = c.result["description"]
c.unbind()
bad = Connection(server, user="ou=demo,ou=demo,dc=contactbridge", password=other)
out["other_key_bind"] = bad.bind()
out["other_key_result"] = bad.result["description"]
print(json.dumps(out))
"#;
    let args = [l.port.to_string(), l.demo_tsps.clone(), l.other_tsps.clone()];
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python).arg("-c").arg(script).args(args).output().unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["bind"], true, "{v}");
    assert_eq!(v["found"], serde_json::json!([["Erika Mustermann", "(030) 123 45 67", "ACME GmbH"]]), "{v}");
    assert_eq!(v["other_tenant"], "noSuchObject", "{v}");
    assert_eq!(
        (&v["other_key_bind"], &v["other_key_result"]),
        (&serde_json::json!(false), &serde_json::json!("invalidCredentials"))
    );
}
