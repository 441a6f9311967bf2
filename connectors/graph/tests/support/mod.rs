//! Test support: the fake Graph, the real oauth2-mock-server, and account helpers.
#![allow(dead_code)]

pub mod fake_graph;

use contactbridge_graph::{Credential, GraphAccount, RetryPolicy, Secret};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Where tests find installed tools: `$CONTACTBRIDGE_TOOLS` or `<workspace>/.tools`.
pub fn tools_dir() -> PathBuf {
    std::env::var_os("CONTACTBRIDGE_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.tools"))
}

/// An app-only account against a fake Graph, with fast retries for tests.
pub fn account(fake: &fake_graph::FakeGraph, mailboxes: &[&str]) -> GraphAccount {
    let mut a = GraphAccount::new(
        fake_graph::TENANT,
        fake_graph::CLIENT_ID,
        Credential::ClientSecret { secret: Secret::new(fake_graph::CLIENT_SECRET) },
        mailboxes.iter().map(|m| m.to_string()).collect(),
    );
    a.authority = fake.authority();
    a.graph_base = fake.base.clone();
    a.https_only = false;
    a.retry = RetryPolicy { max_attempts: 5, max_wait_secs: 10, base_backoff_ms: 20 };
    a
}

/// npm `oauth2-mock-server`, started on a free loopback port; killed on drop.
pub struct OAuthMockServer {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for OAuthMockServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl OAuthMockServer {
    pub async fn start() -> OAuthMockServer {
        let bin = tools_dir().join("node/node_modules/.bin/oauth2-mock-server");
        assert!(bin.exists(), "oauth2-mock-server is missing at {}: run tests/setup-tools.sh", bin.display());
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new(&bin)
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e} (run tests/setup-tools.sh)", bin.display()));
        let server = OAuthMockServer { child, port, _dir: dir };
        let url = format!("http://127.0.0.1:{port}/.well-known/openid-configuration");
        let http = reqwest::Client::new();
        for _ in 0..100 {
            if http.get(&url).send().await.is_ok_and(|r| r.status().is_success()) {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("oauth2-mock-server did not come up on port {port}");
    }

    pub fn token_url(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port)
    }
}

/// A TCP proxy on a fixed loopback port in front of a server (the fake Graph), that can be
/// killed (listener closed, open connections dropped) and restarted on the same port: a
/// server that dies mid-sync and comes back.
pub struct Proxy {
    pub port: u16,
    target: std::net::SocketAddr,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Proxy {
    pub async fn start(target: std::net::SocketAddr) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        Proxy { port, target, task: Some(tokio::spawn(Self::serve(listener, target))) }
    }

    async fn serve(listener: tokio::net::TcpListener, target: std::net::SocketAddr) {
        // Dropping the set (when this task is aborted) aborts every connection.
        let mut connections = tokio::task::JoinSet::new();
        while let Ok((mut inbound, _)) = listener.accept().await {
            connections.spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    }

    /// Refuses connections from now on and resets the open ones.
    pub fn kill(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }

    /// Serves again on the same port.
    pub async fn restart(&mut self) {
        self.kill();
        for _ in 0..100 {
            if let Ok(listener) = tokio::net::TcpListener::bind(("127.0.0.1", self.port)).await {
                self.task = Some(tokio::spawn(Self::serve(listener, self.target)));
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("port {} could not be bound again", self.port);
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}/v1.0", self.port)
    }
}
