//! Test support: real Radicale and Xandikos servers on loopback, seeding helpers,
//! and an in-memory sink that applies change sets the way the bridge's index does.
#![allow(dead_code)]

use contactbridge_connector::{ChangeSet, ChangeSink, Checkpoint, Error, Record, RecordId, Rejected};
use contactbridge_dav::{Credentials, Dav, DavAccount, DavConnector, DavKind, Secret, Server};
use libdav::caldav::CreateCalendar;
use libdav::carddav::CreateAddressBook;
use libdav::dav::{Delete, GetEtag, PutResource};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Runs each listed test function (taking a [`TestServer`]) against Radicale and
/// against Xandikos: `mod radicale` and `mod xandikos` of `#[tokio::test]`s.
#[allow(unused_macros)] // not every test file runs on both servers
macro_rules! on_both_servers {
    ($($name:ident),* $(,)?) => {
        mod radicale {
            $( #[tokio::test] async fn $name() { super::$name(super::TestServer::radicale()).await } )*
        }
        mod xandikos {
            $( #[tokio::test] async fn $name() { super::$name(super::TestServer::xandikos()).await } )*
        }
    };
}

/// Where `tests/setup-tools.sh` installed the servers.
pub fn tools_dir() -> PathBuf {
    match std::env::var_os("CONTACTBRIDGE_TOOLS") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.tools"),
    }
}

fn tool(name: &str) -> PathBuf {
    let path = tools_dir().join("venv/bin").join(name);
    assert!(path.exists(), "{} is missing: run tests/setup-tools.sh", path.display());
    path
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind a free port").local_addr().unwrap().port()
}

/// Which server a [`TestServer`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerKind {
    Radicale,
    Xandikos,
}

/// A DAV server process in a temporary directory, killed on drop.
pub struct TestServer {
    pub kind: ServerKind,
    pub port: u16,
    pub tls: bool,
    child: Child,
    dir: tempfile::TempDir,
    /// How it was started, for [`TestServer::restart`].
    program: PathBuf,
    args: Vec<std::ffi::OsString>,
}

pub const USER: &str = "ann";
pub const PASSWORD: &str = "correct horse";

impl TestServer {
    pub fn start(kind: ServerKind) -> Self {
        match kind {
            ServerKind::Radicale => Self::radicale(),
            ServerKind::Xandikos => Self::xandikos(),
        }
    }

    /// Radicale with htpasswd (plain) authentication for [`USER`].
    pub fn radicale() -> Self {
        Self::radicale_in(tempfile::tempdir().unwrap(), &[])
    }

    /// Radicale over HTTPS with a certificate for 127.0.0.1 from a fresh private CA
    /// (made with the `openssl` command). Returns the server and the CA's PEM file.
    pub fn radicale_tls() -> (Self, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = |name: &str| dir.path().join(name).to_string_lossy().to_string();
        std::fs::write(
            dir.path().join("ext"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        let steps: Vec<Vec<String>> = vec![
            [&["req", "-x509"][..], &ec[..], &["-subj", "/CN=contactbridge test CA", "-days", "2"]]
                .concat()
                .iter()
                .map(|s| s.to_string())
                .chain(["-keyout".into(), path("ca.key"), "-out".into(), path("ca.pem")])
                .chain(["-addext".into(), "basicConstraints=critical,CA:TRUE".into()])
                .chain(["-addext".into(), "keyUsage=critical,keyCertSign,cRLSign".into()])
                .collect(),
            [&["req"][..], &ec[..], &["-subj", "/CN=127.0.0.1"]]
                .concat()
                .iter()
                .map(|s| s.to_string())
                .chain(["-keyout".into(), path("server.key"), "-out".into(), path("server.csr")])
                .collect(),
            ["x509", "-req", "-days", "2", "-CAcreateserial"]
                .iter()
                .map(|s| s.to_string())
                .chain([
                    "-in".into(),
                    path("server.csr"),
                    "-CA".into(),
                    path("ca.pem"),
                    "-CAkey".into(),
                    path("ca.key"),
                ])
                .chain(["-out".into(), path("server.pem"), "-extfile".into(), path("ext")])
                .collect(),
        ];
        for args in steps {
            let output =
                Command::new("openssl").args(&args).output().expect("the openssl command is needed for TLS tests");
            assert!(output.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        }
        let tls =
            ["--server-ssl", "True", "--server-certificate", &path("server.pem"), "--server-key", &path("server.key")];
        let ca = dir.path().join("ca.pem");
        (Self::radicale_in(dir, &tls), ca)
    }

    fn radicale_in(dir: tempfile::TempDir, extra: &[&str]) -> Self {
        let users = dir.path().join("users");
        std::fs::write(&users, format!("{USER}:{PASSWORD}\n")).unwrap();
        let port = free_port();
        let program = tool("radicale");
        let mut args: Vec<std::ffi::OsString> = vec!["--server-hosts".into(), format!("127.0.0.1:{port}").into()];
        args.extend(["--storage-filesystem-folder".into(), dir.path().join("collections").into()]);
        args.extend(["--auth-type", "htpasswd", "--auth-htpasswd-encryption", "plain"].map(Into::into));
        args.extend(["--auth-htpasswd-filename".into(), users.into()]);
        args.extend(["--logging-level", "warning"].map(Into::into));
        // Radicale refuses items over 10 MB by default; a 10 MB photo is 13.4 MB of base64.
        args.extend(["--server-max-resource-size", "100000000"].map(Into::into));
        args.extend(extra.iter().map(Into::into));
        let child = spawn(&program, &args, &dir);
        Self { kind: ServerKind::Radicale, port, tls: !extra.is_empty(), child, dir, program, args }.ready()
    }

    /// Kills the server at once (no graceful shutdown: open connections are reset).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the killed server again on the same port with the same data.
    pub fn restart(&mut self) {
        self.kill();
        self.child = spawn(&self.program, &self.args, &self.dir);
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "{:?} did not restart:\n{}", self.kind, self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Xandikos with its default address book and calendar, no authentication.
    pub fn xandikos() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let program = tool("xandikos");
        let mut args: Vec<std::ffi::OsString> = vec!["serve".into(), "-d".into(), dir.path().join("data").into()];
        args.extend(["--state-dir".into(), dir.path().join("state").into()]);
        args.extend(["--defaults", "--no-detect-systemd", "-l", "127.0.0.1", "-p"].map(Into::into));
        args.push(port.to_string().into());
        let child = spawn(&program, &args, &dir);
        Self { kind: ServerKind::Xandikos, port, tls: false, child, dir, program, args }.ready()
    }

    fn ready(mut self) -> Self {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("{:?} exited with {status}:\n{}", self.kind, self.log());
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return self;
            }
            assert!(Instant::now() < deadline, "{:?} did not start within 30 s:\n{}", self.kind, self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Radicale only: the folder holding the collections of [`USER`] (for bulk seeding).
    pub fn radicale_user_folder(&self) -> PathBuf {
        assert_eq!(self.kind, ServerKind::Radicale);
        self.dir.path().join("collections/collection-root").join(USER)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// The server's root URL.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}/", self.port)
    }

    pub fn credentials(&self) -> Credentials {
        match self.kind {
            ServerKind::Radicale => Credentials::Basic { username: USER.into(), password: Secret::new(PASSWORD) },
            ServerKind::Xandikos => Credentials::None,
        }
    }

    /// An account for the server's root URL (discovery does the rest).
    pub fn account(&self) -> DavAccount {
        DavAccount::new(Server::Url(self.url()), self.credentials())
    }

    pub fn connector(&self, kind: DavKind) -> DavConnector {
        DavConnector::new(self.account(), kind).unwrap()
    }

    /// Where new address books or calendars go.
    pub fn home(&self, kind: DavKind) -> String {
        match (self.kind, kind) {
            (ServerKind::Radicale, _) => format!("/{USER}/"),
            (ServerKind::Xandikos, DavKind::CardDav) => "/user/contacts/".into(),
            (ServerKind::Xandikos, DavKind::CalDav) => "/user/calendars/".into(),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(program: &std::path::Path, args: &[std::ffi::OsString], dir: &tempfile::TempDir) -> Child {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.path().join("server.log")).unwrap();
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", program.display()))
}

/// Creates an address book `name` in the home set and returns its href.
pub async fn create_addressbook(server: &TestServer, dav: &Dav, name: &str) -> String {
    let href = format!("{}{name}/", server.home(DavKind::CardDav));
    let response =
        dav.request(CreateAddressBook::new(&href).with_display_name(name)).await.expect("MKCOL address book");
    assert!(response.created, "address book {href} not created");
    href
}

/// Creates a calendar `name` in the home set and returns its href.
pub async fn create_calendar(server: &TestServer, dav: &Dav, name: &str) -> String {
    let href = format!("{}{name}/", server.home(DavKind::CalDav));
    let response = dav.request(CreateCalendar::new(&href).with_display_name(name)).await.expect("MKCALENDAR");
    assert!(response.created, "calendar {href} not created");
    href
}

/// PUT a new item; returns its etag.
pub async fn put_new(dav: &Dav, href: &str, text: &str, content_type: &str) -> Result<String, String> {
    let response = dav.request(PutResource::new(href).create(text, content_type)).await.map_err(|e| e.to_string())?;
    match response.etag {
        Some(etag) => Ok(etag),
        None => Ok(dav.request(GetEtag::new(href)).await.map_err(|e| e.to_string())?.etag),
    }
}

/// PUT over an existing item without a precondition; returns its new etag.
pub async fn overwrite(dav: &Dav, href: &str, text: &str, content_type: &str) -> String {
    let etag = dav.request(GetEtag::new(href)).await.expect("etag before overwrite").etag;
    dav.request(PutResource::new(href).update(text, content_type, etag)).await.expect("overwrite");
    dav.request(GetEtag::new(href)).await.expect("etag after overwrite").etag
}

pub async fn delete(dav: &Dav, href: &str) {
    dav.request(Delete::new(href).force()).await.expect("DELETE");
}

pub const VCARD: &str = "text/vcard; charset=utf-8";
pub const ICAL: &str = "text/calendar; charset=utf-8";

/// A generated vCard 3.0 for person `n`.
pub fn card(n: usize, uid: &str) -> String {
    format!(
        "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{uid}\r\nFN:Person {n:05}\r\nN:{n:05};Person;;;\r\nORG:Firm {m}\r\n\
         TEL;TYPE=WORK:+49 30 {n:07}\r\nTEL;TYPE=CELL:0171 {n:07}\r\nEMAIL:person{n}@example.com\r\nEND:VCARD\r\n",
        m = n % 17
    )
}

/// Puts `count` generated cards `c00000.vcf`… into `book`; returns their hrefs.
pub async fn seed_cards(dav: &Dav, book: &str, range: std::ops::Range<usize>) -> Vec<String> {
    let mut hrefs = Vec::new();
    for n in range {
        let href = format!("{book}c{n:05}.vcf");
        put_new(dav, &href, &card(n, &format!("uid-{n:05}")), VCARD).await.expect("PUT generated card");
        hrefs.push(href);
    }
    hrefs
}

/// The fixture files with extension `ext` (the real-world files the formats crate
/// tests with), sorted by name.
pub fn fixture_files(ext: &str) -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../formats/tests/fixtures");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("fixtures in {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .{ext} fixtures in {}", dir.display());
    files
}

/// The single cards of the vCard fixtures, each with a UID (servers require one).
pub fn fixture_cards() -> Vec<(String, String)> {
    let mut cards = Vec::new();
    for path in fixture_files("vcf") {
        let bytes = std::fs::read(&path).unwrap();
        let text = String::from_utf8_lossy(&bytes).replace("\r\n", "\n");
        let stem = path.file_stem().unwrap().to_string_lossy().to_string();
        for (i, chunk) in text.split("BEGIN:VCARD").skip(1).enumerate() {
            let mut card = format!("BEGIN:VCARD{chunk}");
            if let Some(end) = card.find("END:VCARD") {
                card.truncate(end + "END:VCARD".len());
            }
            if !card.lines().any(|l| l.to_ascii_uppercase().starts_with("UID")) {
                let at = card.find('\n').unwrap() + 1;
                let version_end = card[at..].find('\n').map(|i| at + i + 1).unwrap_or(at);
                card.insert_str(version_end, &format!("UID:fixture-{stem}-{i}\n"));
            }
            cards.push((format!("{stem}-{i}"), card.replace('\n', "\r\n")));
        }
    }
    cards
}

/// Applies change sets like the bridge's index: upserts and deletions, snapshot
/// stamping and the sweep at its end, checkpoints; optionally fails after N applies.
#[derive(Debug, Default)]
pub struct MemorySink {
    pub records: BTreeMap<RecordId, Record>,
    pub checkpoint: Option<Checkpoint>,
    pub rejected: Vec<Rejected>,
    /// Every change set applied, in order.
    pub applied: Vec<ChangeSet>,
    pub stamped: HashSet<RecordId>,
    /// Accept this many more change sets, then fail (None: never fail).
    pub fail_after: Option<usize>,
}

impl MemorySink {
    /// The versions held, for `SyncRequest::known`.
    pub fn versions(&self) -> HashMap<RecordId, String> {
        self.records.iter().filter_map(|(id, r)| Some((id.clone(), r.version()?.to_string()))).collect()
    }

    /// How often each id was upserted over all applied change sets.
    pub fn upsert_counts(&self) -> BTreeMap<RecordId, usize> {
        let mut counts = BTreeMap::new();
        for record in self.applied.iter().flat_map(|c| c.upserts.iter()) {
            *counts.entry(record.id().clone()).or_insert(0) += 1;
        }
        counts
    }

    pub fn contact(&self, href: &str) -> &contactbridge_connector::Contact {
        match self.records.get(&RecordId::new(href)) {
            Some(Record::Contact(c)) => c,
            other => panic!("{href}: expected a contact, found {other:?}"),
        }
    }
}

#[async_trait::async_trait]
impl ChangeSink for MemorySink {
    async fn apply(&mut self, changes: ChangeSet) -> Result<(), Error> {
        if let Some(left) = self.fail_after.as_mut() {
            if *left == 0 {
                return Err(Error::local("test sink: simulated crash"));
            }
            *left -= 1;
        }
        if changes.snapshot.is_some_and(|s| s.starts) {
            self.stamped.clear();
        }
        for record in &changes.upserts {
            if changes.snapshot.is_some() {
                self.stamped.insert(record.id().clone());
            }
            self.records.insert(record.id().clone(), record.clone());
        }
        self.stamped.extend(changes.retained.iter().cloned());
        for id in &changes.deletions {
            self.records.remove(id);
        }
        self.rejected.extend(changes.rejected.iter().cloned());
        if changes.snapshot.is_some_and(|s| s.ends) {
            let stamped = std::mem::take(&mut self.stamped);
            self.records.retain(|id, _| stamped.contains(id));
        }
        if let Some(checkpoint) = &changes.checkpoint {
            self.checkpoint = Some(checkpoint.clone());
        }
        self.applied.push(changes);
        Ok(())
    }
}
