//! A delegated Graph account against the real npm oauth2-mock-server (from
//! tests/setup-tools.sh): the refresh token the identity provider rotates is
//! sealed back into the account's secret, and never lands in clear on disk.

use contactbridge::accounts::{AccountSpec, AccountStore as _, Registry, SourceKind};
use contactbridge::secrets::SecretKey;
use contactbridge::store::{SledStore, UserStore as _};
use contactbridge::sync::scheduler::Schedule;
use contactbridge::user::{self, UserId, UserProfile};
use contactbridge_graph::{Credential, GraphAccount, Secret};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const FIRST_REFRESH_TOKEN: &str = "first-refresh-token-Mole-8812";

struct OAuthMock {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for OAuthMock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_oauth_mock() -> OAuthMock {
    let tools = std::env::var_os("CONTACTBRIDGE_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools"));
    let bin = tools.join("node/node_modules/.bin/oauth2-mock-server");
    assert!(bin.exists(), "{} is missing: run tests/setup-tools.sh", bin.display());
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let child = Command::new(&bin)
        .args(["-a", "127.0.0.1", "-p", &port.to_string()])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start oauth2-mock-server");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "oauth2-mock-server did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    OAuthMock { child, port, _dir: dir }
}

#[tokio::test]
async fn a_rotated_refresh_token_is_sealed_back_into_the_account() {
    let oauth = start_oauth_mock();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SledStore::open(dir.path()).unwrap());
    user::put_profile(store.as_ref(), &UserProfile::new(UserId::parse("acme.dana").unwrap(), "acme")).unwrap();
    assert!(store.profile(&UserId::parse("acme.dana").unwrap()).unwrap().is_some());
    let key = SecretKey::from_file(&dir.path().join("secret.key"), true).unwrap();
    let registry = Registry::new(store.clone(), key.clone(), Schedule::new("*/15 * * * *", "UTC").unwrap());

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let credential = Credential::DeviceCode { refresh_token: Secret::new(FIRST_REFRESH_TOKEN) };
    let mut g = GraphAccount::new("acme", "app-1", credential, vec!["dana@acme.example".into()]);
    g.token_url = Some(format!("http://127.0.0.1:{}/token", oauth.port));
    g.graph_base = format!("http://127.0.0.1:{closed}/v1.0");
    g.https_only = false;
    registry.add(AccountSpec::new("dana-m365", UserId::parse("acme.dana").unwrap(), SourceKind::Graph(g))).unwrap();
    let open = |sealed: Vec<u8>| String::from_utf8(key.open("dana-m365", &sealed).unwrap()).unwrap();
    assert_eq!(open(store.sealed_secret("dana-m365").unwrap().unwrap()), FIRST_REFRESH_TOKEN);

    // The token endpoint answers (and rotates the refresh token); Graph itself is unreachable.
    assert!(registry.test("dana-m365").await.is_err());
    let rotated = open(store.sealed_secret("dana-m365").unwrap().unwrap());
    assert!(!rotated.is_empty() && rotated != FIRST_REFRESH_TOKEN, "the rotated refresh token was kept");

    // The next use starts from the rotated token, and rotates it again.
    let report = registry.sync("dana-m365").await.unwrap();
    assert!(report.failed() > 0);
    let again = open(store.sealed_secret("dana-m365").unwrap().unwrap());
    assert!(again != rotated && again != FIRST_REFRESH_TOKEN);

    store.flush().unwrap();
    for token in [FIRST_REFRESH_TOKEN, rotated.as_str(), again.as_str()] {
        let mut stack = vec![dir.path().to_path_buf()];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).unwrap() {
                let p = entry.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    let bytes = std::fs::read(&p).unwrap();
                    assert!(!bytes.windows(token.len()).any(|w| w == token.as_bytes()), "{}", p.display());
                }
            }
        }
    }
}
