//! Radicale and Xandikos (from `.tools/venv`, installed by tests/setup-tools.sh) on
//! loopback with `cards` generated cards in one address book, seeded into their
//! storage directly (Radicale: files; Xandikos: one git commit) instead of one PUT
//! per card. Included with `#[path]` by several benchmarks, each using part of it;
//! killed on drop.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const USER: &str = "bench";
pub const PASSWORD: &str = "bench-password";

pub fn tool(name: &str) -> PathBuf {
    let tools = std::env::var_os("CONTACTBRIDGE_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools"));
    tools.join("venv/bin").join(name)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Radicale,
    Xandikos,
}

pub struct DavServer {
    pub kind: Kind,
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for DavServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Generated vCard `i` (two phone numbers, an email, a company).
pub fn card(i: usize) -> String {
    format!(
        "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:c{i}\r\nFN:Person {i}\r\nN:{i};Person;;;\r\nORG:Company {}\r\n\
         EMAIL:person{i}@example.com\r\nTEL;TYPE=WORK:+49 30 {:07}\r\nTEL;TYPE=CELL:+49 170 {:07}\r\nEND:VCARD\r\n",
        i % 97,
        1_000_000 + i,
        2_000_000 + i
    )
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl DavServer {
    pub fn start(kind: Kind, cards: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = match kind {
            Kind::Radicale => {
                let book = dir.path().join("collections/collection-root").join(USER).join("contacts");
                std::fs::create_dir_all(&book).unwrap();
                std::fs::write(book.join(".Radicale.props"), r#"{"tag": "VADDRESSBOOK", "D:displayname": "contacts"}"#)
                    .unwrap();
                for i in 0..cards {
                    std::fs::write(book.join(format!("c{i}.vcf")), card(i)).unwrap();
                }
                std::fs::write(dir.path().join("users"), format!("{USER}:{PASSWORD}\n")).unwrap();
                Command::new(tool("radicale"))
                    .arg("--server-hosts")
                    .arg(format!("127.0.0.1:{port}"))
                    .arg("--storage-filesystem-folder")
                    .arg(dir.path().join("collections"))
                    .args(["--auth-type", "htpasswd", "--auth-htpasswd-encryption", "plain"])
                    .arg("--auth-htpasswd-filename")
                    .arg(dir.path().join("users"))
                    .args(["--logging-level", "warning"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("radicale (tests/setup-tools.sh installs it)")
            }
            Kind::Xandikos => {
                let data = dir.path().join("data");
                let spawn = || {
                    Command::new(tool("xandikos"))
                        .arg("serve")
                        .arg("-d")
                        .arg(&data)
                        .args(["--defaults", "--no-detect-systemd", "-l", "127.0.0.1", "-p", &port.to_string()])
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .spawn()
                        .expect("xandikos (tests/setup-tools.sh installs it)")
                };
                // Started once to lay out its default address book (a git working tree), then seeded with one commit.
                let mut first = spawn();
                let book = data.join("user/contacts/addressbook");
                wait_for(port, &mut first);
                let _ = first.kill();
                let _ = first.wait();
                for i in 0..cards {
                    std::fs::write(book.join(format!("c{i}.vcf")), card(i)).unwrap();
                }
                let git = |args: &[&str]| {
                    let out = Command::new("git").arg("-C").arg(&book).args(args).output().expect("git");
                    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
                };
                git(&["add", "-A"]);
                git(&["-c", "user.name=bench", "-c", "user.email=bench@example.com", "commit", "-qm", "seed"]);
                spawn()
            }
        };
        let mut server = DavServer { kind, port, child, _dir: dir };
        wait_for(port, &mut server.child);
        server
    }

    /// The server's process id (for its CPU time).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn root(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// `user:password` for curl, if the server wants one.
    pub fn curl_user(&self) -> Option<String> {
        (self.kind == Kind::Radicale).then(|| format!("{USER}:{PASSWORD}"))
    }
}

fn wait_for(port: u16, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(child.try_wait().unwrap().is_none(), "the DAV server exited");
        assert!(Instant::now() < deadline, "the DAV server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}
