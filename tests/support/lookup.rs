//! A store with the demo user (tenant `demo`) and a second tenant's user, API
//! keys for each, the HTTP lookup serving it on 127.0.0.1, and `curl`.

use chrono::Utc;
use contactbridge::api::auth::{self, Scope};
use contactbridge::calls::{CallId, CallRecord};
use contactbridge::connector::{Contact, PhoneKind, PhoneNumber, Record, RecordId};
use contactbridge::live::CallHub;
use contactbridge::store::CallStore;
use contactbridge::store::{SledStore, TimeWindow};
use contactbridge::user::{self, UserId, UserProfile};
use std::net::SocketAddr;
use std::sync::Arc;

pub const DEMO_DID: &str = "+49 30 901820";
pub const ERIKA_CLI: &str = "+49301234567";
pub const OTHER_DID: &str = "+49 89 555000";

pub struct Fixture {
    pub store: Arc<SledStore>,
    pub hub: Arc<CallHub>,
    pub addr: SocketAddr,
    pub demo_tsps: String,
    pub demo_admin: String,
    pub other_tsps: String,
    /// A tsps key of a tenant without users.
    pub empty_tsps: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Fixture {
    /// The store and keys, without a server.
    pub async fn store() -> (Arc<SledStore>, [String; 4]) {
        let store = Arc::new(SledStore::temporary().unwrap());
        contactbridge::demo::load(store.as_ref(), &contactbridge::demo::default_dir(), Utc::now()).await.unwrap();
        let mut olga = UserProfile::new(UserId::parse("other.olga").unwrap(), "other");
        olga.called_numbers = vec![OTHER_DID.into()];
        olga.region = Some("DE".into());
        user::put_profile(store.as_ref(), &olga).unwrap();
        let contact = Record::Contact(Contact {
            id: RecordId::new("c1"),
            display_name: "Secret Sam".into(),
            phones: vec![PhoneNumber::new("+49 30 1234567", PhoneKind::Work)],
            emails: vec!["sam@other.example".into()],
            ..Default::default()
        });
        super::index::put(store.as_ref(), &olga.id, "files", "c", vec![contact]);
        let key = |tenant: &str, scope| auth::create_key(store.as_ref(), tenant, scope, "test").unwrap().text;
        let keys = [
            key("demo", Scope::Tsps),
            key("demo", Scope::Admin),
            key("other", Scope::Tsps),
            key("nobody", Scope::Tsps),
        ];
        (store, keys)
    }

    pub async fn start() -> Self {
        let (store, [demo_tsps, demo_admin, other_tsps, empty_tsps]) = Self::store().await;
        let hub = CallHub::new(store.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = contactbridge::http_lookup::LookupState::new(store.clone(), store.clone(), hub.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(contactbridge::http_lookup::serve(state, listener, async move {
            let _ = stopped.await;
        }));
        Self { store, hub, addr, demo_tsps, demo_admin, other_tsps, empty_tsps, stop: Some(stop) }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn calls_of_demo(&self) -> usize {
        self.store.calls(&UserId::parse("demo").unwrap(), TimeWindow::all(), 1000).unwrap().len()
    }

    pub fn call(&self, id: &str) -> Option<CallRecord> {
        self.store.call(&CallId(id.to_string())).unwrap()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// A curl answer: status, headers (lower-case names), body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// Why it was refused: the name route's `X-Contactbridge-Error` header, else the body.
    pub fn reason(&self) -> &str {
        self.header("x-contactbridge-error").unwrap_or(&self.body)
    }
}

/// Runs `curl -sS -i <args>` and parses its answer.
pub async fn curl(args: &[&str]) -> Answer {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("curl").args(["-sS", "-i", "--max-time", "20"]).args(&args).output()
    })
    .await
    .unwrap()
    .expect("curl runs (Debian: apt-get install curl)");
    assert!(out.status.success(), "curl failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|s| s.parse().ok()).unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Answer { status, headers, body: body.to_string() }
}

/// Percent-encodes a query value.
pub fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The LDAP directory over the same store, on 127.0.0.1.
pub struct Ldap {
    pub store: Arc<SledStore>,
    pub port: u16,
    pub demo_tsps: String,
    pub demo_admin: String,
    pub other_tsps: String,
    pub empty_tsps: String,
    /// With TLS: the folder holding `ca.pem`.
    pub tls_dir: Option<tempfile::TempDir>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Ldap {
    pub async fn start(size_limit: usize, tls: bool) -> Self {
        Self::start_with(size_limit, tls, contactbridge::ldap::IDLE_TIMEOUT).await
    }

    pub async fn start_with(size_limit: usize, tls: bool, idle: std::time::Duration) -> Self {
        let (store, [demo_tsps, demo_admin, other_tsps, empty_tsps]) = Fixture::store().await;
        let mut state =
            contactbridge::ldap::LdapState::new(store.clone(), store.clone(), size_limit).with_idle_timeout(idle);
        let tls_dir = tls.then(|| {
            let dir = tempfile::tempdir().unwrap();
            let cert = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
            std::fs::write(dir.path().join("ca.pem"), cert.cert.pem()).unwrap();
            std::fs::write(dir.path().join("key.pem"), cert.signing_key.serialize_pem()).unwrap();
            dir
        });
        if let Some(d) = &tls_dir {
            state = state.with_tls(&d.path().join("ca.pem"), &d.path().join("key.pem")).unwrap();
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(contactbridge::ldap::serve(state, listener, async move {
            let _ = stopped.await;
        }));
        Self { store, port, demo_tsps, demo_admin, other_tsps, empty_tsps, tls_dir, stop: Some(stop) }
    }

    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }
}

impl Drop for Ldap {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// What `ldapsearch -LLL` printed: its exit code, the entries (attribute → values), stderr.
#[derive(Debug)]
pub struct Search {
    pub code: i32,
    pub entries: Vec<Vec<(String, String)>>,
    pub stderr: String,
}

impl Search {
    /// The values of `attr` in each entry, in order.
    pub fn values(&self, attr: &str) -> Vec<Vec<&str>> {
        self.entries
            .iter()
            .map(|e| e.iter().filter(|(a, _)| a.eq_ignore_ascii_case(attr)).map(|(_, v)| v.as_str()).collect())
            .collect()
    }
}

/// Runs Debian's `ldapsearch -x -LLL` with `args` (plus `env`) and parses the LDIF.
pub async fn ldapsearch(env: &[(&str, String)], args: &[&str]) -> Search {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("ldapsearch")
            .args(["-x", "-LLL", "-o", "ldif-wrap=no", "-o", "nettimeout=10"])
            .args(&args)
            // No /etc/ldap/ldap.conf or ~/.ldaprc: only what the test gives (LDAPTLS_* variables still apply).
            .env("LDAPCONF", "/dev/null")
            .env("LDAPRC", "/dev/null")
            .envs(env)
            .output()
    })
    .await
    .unwrap()
    .expect("ldapsearch runs (Debian: apt-get install ldap-utils)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut entries = Vec::new();
    for block in text.split("\n\n").filter(|b| !b.trim().is_empty()) {
        let mut entry = Vec::new();
        for line in block.lines() {
            if let Some((a, v)) = line.split_once(":: ") {
                use base64::Engine as _;
                let bytes = base64::engine::general_purpose::STANDARD.decode(v).unwrap_or_default();
                entry.push((a.to_string(), String::from_utf8_lossy(&bytes).into_owned()));
            } else if let Some((a, v)) = line.split_once(": ") {
                entry.push((a.to_string(), v.to_string()));
            }
        }
        entries.push(entry);
    }
    Search { code: out.status.code().unwrap_or(-1), entries, stderr: String::from_utf8_lossy(&out.stderr).into_owned() }
}
