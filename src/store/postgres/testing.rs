//! A real PostgreSQL for tests: Debian's server binaries
//! (`/usr/lib/postgresql/<version>/bin`, installed by `tests/setup-tools.sh`)
//! run in a temporary directory on a free port of 127.0.0.1.
//!
//! - [`shared_database`]: a fresh, empty database on one server shared by every
//!   test process of this worktree (nextest runs each test in its own process;
//!   `initdb` costs a second, `CREATE DATABASE` milliseconds). The first
//!   process starts the server under a file lock; each process registers its
//!   pid; a watchdog started with the server stops and removes it a few seconds
//!   after the last registered process is gone (also after a `kill -9`).
//! - [`PgServer::start`]: a server of the test's own (to stop, kill or
//!   replicate), stopped and removed when dropped.
//!
//! PostgreSQL refuses to run as root, and CI runs as root: then the server
//! runs as the unprivileged user `cbtest` (created by `tests/setup-tools.sh`)
//! through `runuser`. Durability is off (`fsync = off`): these are tests.
//! Not part of the product; public (hidden) so integration tests use it too.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU16, AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The unprivileged user servers run as when tests run as root.
pub const TEST_USER: &str = "cbtest";

/// The directory of Debian's PostgreSQL binaries (the newest version installed).
pub fn bin_dir() -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, b)| b).unwrap_or_else(|| {
        panic!("no PostgreSQL server in /usr/lib/postgresql/*/bin: run tests/setup-tools.sh (it installs Debian's postgresql)")
    })
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// A command running as the server's user.
fn as_server_user(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", TEST_USER, "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn run(mut c: Command, what: &str) {
    let out = c.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Makes `dir` belong to the server's user (when running as root).
fn hand_over(dir: &Path) {
    if is_root() {
        run(
            {
                let mut c = Command::new("chown");
                c.args(["-R", &format!("{TEST_USER}:")]).arg(dir);
                c
            },
            "chown of the PostgreSQL directory (does the user cbtest exist? tests/setup-tools.sh creates it)",
        );
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("binding a free port").local_addr().unwrap().port()
}

/// A PostgreSQL server in its own temporary directory.
pub struct PgServer {
    root: PathBuf,
    port: AtomicU16,
    /// Whether dropping stops the server and removes its directory.
    owned: bool,
}

impl PgServer {
    /// Starts a fresh server (initdb, then start on a free port); stopped and removed on drop.
    pub fn start() -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        let root = std::env::temp_dir().join(format!(
            "cb-pg-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let server = Self::init_in(&root);
        server.start_again();
        server
    }

    /// Initialises a cluster in `root/data` (nothing started yet).
    fn init_in(root: &Path) -> Self {
        std::fs::create_dir_all(root.join("data")).unwrap();
        std::fs::write(root.join("pwfile"), "cbtest-password\n").unwrap();
        hand_over(root);
        let mut c = as_server_user(&bin_dir().join("initdb"));
        c.arg("-D")
            .arg(root.join("data"))
            .args(["-U", "postgres", "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C", "--no-sync"])
            .arg(format!("--pwfile={}", root.join("pwfile").display()));
        run(c, "initdb");
        let conf = "listen_addresses = '127.0.0.1'\nfsync = off\nsynchronous_commit = off\nfull_page_writes = off\n\
                    max_connections = 300\nshared_buffers = 32MB\nunix_socket_directories = ''\n\
                    wal_level = replica\nmax_wal_senders = 4\nlog_min_messages = warning\n";
        let path = root.join("data/postgresql.conf");
        let mut all = std::fs::read_to_string(&path).unwrap();
        all.push_str(conf);
        std::fs::write(&path, all).unwrap();
        let hba = root.join("data/pg_hba.conf");
        let mut all = std::fs::read_to_string(&hba).unwrap();
        all.push_str("host replication all 127.0.0.1/32 scram-sha-256\n");
        std::fs::write(&hba, all).unwrap();
        Self { root: root.to_path_buf(), port: AtomicU16::new(0), owned: true }
    }

    /// Starts (again) a stopped server, on a new free port the first time.
    pub fn start_again(&self) {
        let port = match self.port() {
            0 => free_port(),
            p => p,
        };
        self.port.store(port, Ordering::Relaxed);
        let mut c = as_server_user(&bin_dir().join("pg_ctl"));
        c.arg("-D")
            .arg(self.root.join("data"))
            .arg("-l")
            .arg(self.root.join("log"))
            .args(["-w", "-t", "30", "-o"])
            .arg(format!("-p {port}"))
            .arg("start");
        run(c, "pg_ctl start");
    }

    /// A hot standby of this server: `pg_basebackup -R` (streaming
    /// replication, read-only queries allowed), started on a port of its own;
    /// stopped and removed on drop. Databases created after this do not reach
    /// it unless replication streams them (it does: the whole cluster replicates).
    pub fn start_standby(&self) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let root = std::env::temp_dir().join(format!(
            "cb-pg-standby-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        hand_over(&root);
        let mut c = as_server_user(&bin_dir().join("pg_basebackup"));
        c.arg("-D")
            .arg(root.join("data"))
            .args(["-R", "-X", "stream", "--no-sync", "-d"])
            .arg(format!("host=127.0.0.1 port={} user=postgres password=cbtest-password", self.port()));
        run(c, "pg_basebackup");
        let standby = Self { root, port: AtomicU16::new(0), owned: true };
        standby.start_again();
        standby
    }

    /// Turns TLS on with this certificate chain and key (PEM) and refuses every
    /// connection without it (`hostnossl … reject` first in `pg_hba.conf`), then
    /// restarts the server on its port.
    pub fn require_tls(&self, cert_pem: &str, key_pem: &str) {
        let data = self.root.join("data");
        std::fs::write(data.join("server.crt"), cert_pem).unwrap();
        std::fs::write(data.join("server.key"), key_pem).unwrap();
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(data.join("server.key"), std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let conf = data.join("postgresql.conf");
        let mut all = std::fs::read_to_string(&conf).unwrap();
        all.push_str("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
        std::fs::write(&conf, all).unwrap();
        let hba = data.join("pg_hba.conf");
        let all = std::fs::read_to_string(&hba).unwrap();
        std::fs::write(&hba, format!("hostnossl all all 0.0.0.0/0 reject\n{all}")).unwrap();
        hand_over(&self.root);
        self.stop();
        self.start_again();
    }

    /// Stops the server (fast shutdown: connections are closed).
    pub fn stop(&self) {
        let mut c = as_server_user(&bin_dir().join("pg_ctl"));
        c.arg("-D").arg(self.root.join("data")).args(["-m", "fast", "-w", "stop"]);
        let _ = c.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).status();
    }

    pub fn port(&self) -> u16 {
        self.port.load(Ordering::Relaxed)
    }

    /// The server's directory (its cluster is in `data/`, its log in `log`).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A connection URL for `database` (as the superuser `postgres`).
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres:cbtest-password@127.0.0.1:{}/{database}", self.port())
    }

    /// Creates a fresh, empty database and returns its URL.
    pub fn create_database(&self) -> TestDatabase {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!("t{}_{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        let url = self.url(&name);
        let admin = self.url("postgres");
        let create = name.clone();
        super::off_runtime(move || {
            let mut c = postgres::Client::connect(&admin, postgres::NoTls).expect("connecting to the test server");
            c.batch_execute(&format!("CREATE DATABASE {create} STRATEGY FILE_COPY")).expect("CREATE DATABASE");
        });
        TestDatabase { url, name, admin: self.url("postgres") }
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if self.owned {
            self.stop();
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}

/// A database of its own on a test server; dropped (best effort) when this is.
pub struct TestDatabase {
    pub url: String,
    pub name: String,
    admin: String,
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        super::off_runtime(move || {
            if let Ok(mut c) = postgres::Client::connect(&admin, postgres::NoTls) {
                let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
            }
        });
    }
}

/// The server shared by this worktree's test processes (see the module docs).
pub fn shared_server() -> &'static PgServer {
    static SHARED: std::sync::OnceLock<PgServer> = std::sync::OnceLock::new();
    SHARED.get_or_init(start_or_join_shared)
}

/// A fresh, empty database on the shared server.
pub fn shared_database() -> TestDatabase {
    shared_server().create_database()
}

/// How long the shared server outlives the last test process using it.
const IDLE_STOP: Duration = Duration::from_secs(5);

fn start_or_join_shared() -> PgServer {
    let key = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        env!("CARGO_MANIFEST_DIR").hash(&mut h);
        bin_dir().hash(&mut h);
        h.finish()
    };
    let root = std::env::temp_dir().join(format!("cb-pg-shared-{key:016x}"));
    std::fs::create_dir_all(root.join("clients")).expect("creating the shared server's directory");
    let lock = std::fs::File::create(root.join("lock")).expect("the shared server's lock file");
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).expect("locking the shared server");
    // Registered before the lock is released: the watchdog never stops a server someone joined.
    std::fs::write(root.join("clients").join(std::process::id().to_string()), b"").unwrap();
    let port_file = root.join("port");
    let running = std::fs::read_to_string(&port_file).ok().and_then(|p| p.trim().parse::<u16>().ok()).filter(|port| {
        std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], *port).into(), Duration::from_secs(1)).is_ok()
            && root.join("data/postmaster.pid").exists()
    });
    let server = match running {
        Some(port) => PgServer { root: root.clone(), port: AtomicU16::new(port), owned: false },
        None => {
            let _ = std::fs::remove_dir_all(root.join("data"));
            let _ = std::fs::remove_file(root.join("log"));
            let mut s = PgServer::init_in(&root);
            s.owned = false;
            s.start_again();
            std::fs::write(&port_file, s.port().to_string()).unwrap();
            spawn_watchdog(&root);
            s
        }
    };
    drop(lock);
    server
}

/// A shell loop that stops the shared server and removes its directory once no
/// registered test process has been alive for [`IDLE_STOP`].
fn spawn_watchdog(root: &Path) {
    let pg_ctl = bin_dir().join("pg_ctl");
    let stop = if is_root() {
        format!("runuser -u {TEST_USER} -- {} -D \"$d/data\" -m immediate -w stop", pg_ctl.display())
    } else {
        format!("{} -D \"$d/data\" -m immediate -w stop", pg_ctl.display())
    };
    let script = format!(
        r#"d="$1"; idle=0
while :; do
  sleep 1
  exec 9>"$d/lock"; flock 9
  alive=0
  for f in "$d"/clients/*; do
    [ -e "$f" ] || continue
    if kill -0 "${{f##*/}}" 2>/dev/null; then alive=1; else rm -f "$f"; fi
  done
  if [ $alive = 1 ]; then idle=0; else idle=$((idle+1)); fi
  if [ $idle -ge {idle} ]; then
    {stop} >/dev/null 2>&1; rm -rf "$d/data" "$d/port" "$d/log" "$d/pwfile" "$d/clients"; exit 0
  fi
  exec 9>&-
done"#,
        idle = IDLE_STOP.as_secs()
    );
    // Detached twice (a background job of a shell that exits at once): it outlives this process
    // and is nobody's zombie.
    let mut c = Command::new("sh");
    c.args(["-c", r#"setsid sh -c "$1" cb-pg-watchdog "$2" </dev/null >/dev/null 2>&1 &"#, "sh", &script]).arg(root);
    c.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    let started = c.status().expect("starting the shared server's watchdog (sh, setsid)");
    assert!(started.success(), "starting the shared server's watchdog: {started}");
}

/// Waits until `check` holds, up to `limit`.
pub fn wait_for(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    check()
}
