//! A DAV server that redirects elsewhere (issue 10): the account's credentials go
//! to the origin the account was registered with, never along a redirect to
//! another host or port. Two loopback servers: the account's, whose
//! `/.well-known/carddav` redirects, and the target, which records whether an
//! `Authorization` header arrived.

use contactbridge_connector::Connector;
use contactbridge_dav::{Credentials, DavAccount, DavConnector, Secret, Server};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What one loopback server saw: per request, its path and whether it carried `Authorization`.
type Seen = Arc<Mutex<Vec<(String, bool)>>>;

/// A loopback HTTP server that answers a request for a path starting with `redirect_from`
/// with a 301 to `redirect_to` (if given; `{self}` stands for its own port), and anything else with 401.
async fn server(redirect: Option<(&'static str, String)>) -> (u16, Seen) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen: Seen = Arc::default();
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buffer = vec![0u8; 16384];
            let mut read = 0;
            while !buffer[..read].windows(4).any(|w| w == b"\r\n\r\n") && read < buffer.len() {
                match socket.read(&mut buffer[read..]).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => read += n,
                }
            }
            let head = String::from_utf8_lossy(&buffer[..read]).to_string();
            let path = head.split_whitespace().nth(1).unwrap_or_default().to_string();
            let authorized = head.lines().any(|l| l.to_ascii_lowercase().starts_with("authorization:"));
            log.lock().unwrap().push((path.clone(), authorized));
            let response = match &redirect {
                Some((from, to)) if path.starts_with(from) => format!(
                    "HTTP/1.1 301 Moved Permanently\r\nLocation: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    to.replace("{self}", &port.to_string())
                ),
                _ => "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"dav\"\r\nContent-Length: 0\r\n\
                      Connection: close\r\n\r\n"
                    .to_string(),
            };
            let _ = socket.write_all(response.as_bytes()).await;
            let _ = socket.shutdown().await;
        }
    });
    (port, seen)
}

fn account(url: String) -> DavAccount {
    let mut a = DavAccount::new(
        Server::Url(url),
        Credentials::Basic { username: "ann".into(), password: Secret::new("secret-pw") },
    );
    a.timeout_secs = 10;
    a
}

#[tokio::test]
async fn a_redirect_to_another_host_or_port_gets_no_credentials() {
    for other_host in ["localhost", "127.0.0.1"] {
        let (target, target_seen) = server(None).await;
        let (own, own_seen) = server(Some(("/.well-known/", format!("http://{other_host}:{target}/dav/")))).await;
        let connector = DavConnector::carddav(account(format!("http://127.0.0.1:{own}/"))).unwrap();
        let result = connector.check().await;
        assert!(result.is_err(), "the target answers 401 only");

        let own_seen = own_seen.lock().unwrap().clone();
        let target_seen = target_seen.lock().unwrap().clone();
        assert!(!own_seen.is_empty() && own_seen.iter().all(|(_, auth)| *auth), "own server: {own_seen:?}");
        assert!(!target_seen.is_empty(), "the redirect was followed");
        assert!(
            target_seen.iter().all(|(_, auth)| !auth),
            "{other_host}:{target} got the credentials: {target_seen:?}"
        );
    }
}

#[tokio::test]
async fn a_redirect_within_the_origin_keeps_the_credentials() {
    // `{self}` in the location: the server's own port.
    let (own, seen) = server(Some(("/.well-known/", "http://127.0.0.1:{self}/dav/".into()))).await;
    let connector = DavConnector::carddav(account(format!("http://127.0.0.1:{own}/"))).unwrap();
    assert!(connector.check().await.is_err());
    let seen = seen.lock().unwrap().clone();
    assert!(seen.iter().any(|(path, _)| path.starts_with("/dav/")), "{seen:?}");
    assert!(seen.iter().all(|(_, auth)| *auth), "{seen:?}");
}
