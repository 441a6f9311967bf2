//! A small HTTP/1.1 relay between the connector and a real DAV server that can
//! delay one kind of request, replay a frozen answer, or rewrite an answer (a slow
//! or lying server built from a real one). Each request goes upstream on its own
//! connection (`Connection: close`); the answer goes back with a Content-Length.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The kind of a request, as the relay tells them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A depth-0 PROPFIND (the ctag probe).
    Ctag,
    /// A REPORT with `sync-collection` in its body.
    SyncReport,
    Other,
}

/// What the relay does; change it between syncs.
#[derive(Debug, Default)]
pub struct Behaviour {
    pub delay_ctag: Duration,
    pub delay_report: Duration,
    /// Answer depth-0 PROPFINDs with the first answer seen (a ctag that never moves).
    pub freeze_ctag: bool,
    /// Replace the text of every `sync-token` element in REPORT answers with this.
    pub report_token: Option<String>,
    /// Replace the text of every `getctag` element in PROPFIND answers with this.
    pub ctag_text: Option<String>,
    /// Every request seen, in order.
    pub log: Vec<Kind>,
    frozen: Option<Vec<u8>>,
}

pub struct Relay {
    pub port: u16,
    pub behaviour: Arc<Mutex<Behaviour>>,
}

impl Relay {
    pub async fn start(upstream: u16) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let behaviour = Arc::new(Mutex::new(Behaviour::default()));
        let shared = behaviour.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(serve(client, upstream, shared.clone()));
            }
        });
        Relay { port, behaviour }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    pub fn set(&self, f: impl FnOnce(&mut Behaviour)) {
        f(&mut self.behaviour.lock().unwrap())
    }

    /// The requests logged since the last call.
    pub fn take_log(&self) -> Vec<Kind> {
        std::mem::take(&mut self.behaviour.lock().unwrap().log)
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Reads one message head (up to the blank line) from `buf` + `stream`.
async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<usize> {
    loop {
        if let Some(end) = find(buf, b"\r\n\r\n") {
            return Some(end + 4);
        }
        let mut chunk = [0u8; 8192];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

async fn serve(mut client: TcpStream, upstream: u16, behaviour: Arc<Mutex<Behaviour>>) {
    let mut buf = Vec::new();
    loop {
        let Some(head_end) = read_head(&mut client, &mut buf).await else { return };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let length: usize = header(&head, "content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
        while buf.len() < head_end + length {
            let mut chunk = [0u8; 8192];
            match client.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body = buf[head_end..head_end + length].to_vec();
        buf.drain(..head_end + length);
        let method = head.split(' ').next().unwrap_or("").to_string();
        let kind = match method.as_str() {
            "PROPFIND" if header(&head, "depth") == Some("0") => Kind::Ctag,
            "REPORT" if find(&body, b"sync-collection").is_some() => Kind::SyncReport,
            _ => Kind::Other,
        };
        let (delay, frozen) = {
            let mut b = behaviour.lock().unwrap();
            b.log.push(kind);
            match kind {
                Kind::Ctag => (b.delay_ctag, b.freeze_ctag.then(|| b.frozen.clone()).flatten()),
                Kind::SyncReport => (b.delay_report, None),
                Kind::Other => (Duration::ZERO, None),
            }
        };
        tokio::time::sleep(delay).await;
        let answer = match frozen {
            Some(answer) => answer,
            None => {
                let Some(answer) = forward(upstream, &head, &body).await else { return };
                let answer = rewrite(kind, answer, &behaviour);
                if kind == Kind::Ctag {
                    let mut b = behaviour.lock().unwrap();
                    if b.frozen.is_none() {
                        b.frozen = Some(answer.clone());
                    }
                }
                answer
            }
        };
        if client.write_all(&answer).await.is_err() {
            return;
        }
    }
}

/// Sends one request upstream on a fresh connection; the whole answer, re-framed
/// with a Content-Length (chunked bodies decoded).
async fn forward(upstream: u16, head: &str, body: &[u8]) -> Option<Vec<u8>> {
    let mut server = TcpStream::connect(("127.0.0.1", upstream)).await.ok()?;
    let mut lines: Vec<&str> = head.trim_end().split("\r\n").collect();
    lines.retain(|l| !l.to_ascii_lowercase().starts_with("connection:"));
    let request = format!("{}\r\nConnection: close\r\n\r\n", lines.join("\r\n"));
    server.write_all(request.as_bytes()).await.ok()?;
    server.write_all(body).await.ok()?;
    let mut answer = Vec::new();
    server.read_to_end(&mut answer).await.ok()?;
    let end = find(&answer, b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&answer[..end]).to_string();
    let mut content = answer[end..].to_vec();
    if header(&head, "transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        content = dechunk(&content);
    }
    Some(frame(&head, &content))
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = find(data, b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&data[..line_end]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.extend_from_slice(&data[line_end + 2..line_end + 2 + size]);
        data = &data[line_end + 2 + size + 2..];
    }
    out
}

/// A response with `head`'s status and headers (without framing ones) and `content`.
fn frame(head: &str, content: &[u8]) -> Vec<u8> {
    let mut lines: Vec<&str> = head.trim_end().split("\r\n").collect();
    lines.retain(|l| {
        let l = l.to_ascii_lowercase();
        !(l.starts_with("content-length:") || l.starts_with("transfer-encoding:") || l.starts_with("connection:"))
    });
    let mut out = format!("{}\r\nContent-Length: {}\r\n\r\n", lines.join("\r\n"), content.len()).into_bytes();
    out.extend_from_slice(content);
    out
}

/// Applies the behaviour's rewrites to the text of `element` in a framed answer.
fn rewrite(kind: Kind, answer: Vec<u8>, behaviour: &Mutex<Behaviour>) -> Vec<u8> {
    let (element, text) = {
        let b = behaviour.lock().unwrap();
        match kind {
            Kind::SyncReport => ("sync-token", b.report_token.clone()),
            Kind::Ctag => ("getctag", b.ctag_text.clone()),
            Kind::Other => return answer,
        }
    };
    let Some(text) = text else { return answer };
    let end = find(&answer, b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&answer[..end]).to_string();
    let body = String::from_utf8_lossy(&answer[end..]).to_string();
    // <prefix:element ...>old</prefix:element> → new text.
    let mut out = String::new();
    let mut rest = body.as_str();
    while let Some(open) = rest.find(&format!(":{element}>")).or_else(|| rest.find(&format!("<{element}>"))) {
        let start = open + rest[open..].find('>').unwrap() + 1;
        let Some(close) = rest[start..].find("</") else { break };
        let close_end = start + close + rest[start + close..].find('>').unwrap() + 1;
        out.push_str(&rest[..start]);
        out.push_str(&text);
        out.push_str(&rest[start + close..close_end]);
        rest = &rest[close_end..];
    }
    out.push_str(rest);
    frame(&head, out.as_bytes())
}
