//! The CLI while `serve` runs: `serve` listens on `admin.sock` in the data directory
//! (mode 0600; the peer's uid, from SO_PEERCRED, must be the server's or root) and
//! runs the commands a CLI sends there with the same code as the CLI, against its
//! open store and registry (src/cli/session.rs), streaming back the output and the
//! exit status.
//!
//! Protocol, one JSON object per line: the client sends a [`Request`]; the server
//! answers with [`Reply`] frames, the last an `exit`; the client answers each `prompt`
//! with an [`Answer`]. The client runs commands itself when no server answers
//! (no socket file, or a dead server's: connection refused).
//!
//! Why not the admin gRPC API: it needs an API key of a tenant (the operator on the
//! machine has none before the first `key add`), covers only part of the commands,
//! and would need a second rendering of each command's output; the socket runs the
//! CLI's own code, and the file permissions of the data directory are the authentication.

use super::session::{self, Reply, Session};
use super::{Command, EXIT_FAILED};
use contactbridge::accounts::Registry;
use contactbridge::config::Config;
use contactbridge::store::Backend;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _};

/// The socket's file name in the data directory.
pub const SOCKET: &str = "admin.sock";
/// The longest request line accepted.
const MAX_REQUEST: u64 = 1 << 20;
/// How long a client may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Commands run at once for clients; more wait.
const CONCURRENT: usize = 8;

#[derive(serde::Serialize, serde::Deserialize)]
pub struct Request {
    /// The client's version: both sides must be the same build of the CLI.
    pub version: String,
    /// The arguments after the program name.
    pub argv: Vec<String>,
    /// The client's working directory (relative paths in `argv` are taken from it).
    pub cwd: PathBuf,
    /// The environment variables the arguments name (`--password-env VAR`), where set.
    #[serde(default)]
    pub env: HashMap<String, String>,
}

#[derive(serde::Serialize, serde::Deserialize)]
pub struct Answer {
    pub answer: String,
}

pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET)
}

/// Whether a command may run in the server, and if not why.
fn refusal(command: &Command) -> Option<&'static str> {
    match command {
        Command::Serve(_) => Some("a contactbridge server already runs on this data directory"),
        Command::Restore { .. } => Some(
            "restore replaces the store under the running server: stop it first \
             (systemctl stop contactbridge), restore, then start it",
        ),
        Command::Sync(a) if !a.once => {
            Some("the running server already syncs on schedule; `sync --once` syncs now through it")
        }
        _ => None,
    }
}

/// Runs a command (`super::dispatch`, boxed: `serve` itself is one of the commands).
pub type Run = fn(Command, Config) -> std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>> + Send>>;

/// The admin socket of a running `serve`.
pub struct Listener {
    inner: tokio::net::UnixListener,
    path: PathBuf,
    owner: u32,
}

impl Listener {
    /// Binds `admin.sock` in the data directory. Call only while holding the store
    /// (its lock): a socket file found there then is a dead server's, and is replaced.
    pub fn bind(data_dir: &Path) -> std::io::Result<Self> {
        use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
        let path = socket_path(data_dir);
        match std::fs::remove_file(&path) {
            Ok(()) => tracing::info!(socket = %path.display(), "replaced the admin socket a stopped server left"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        // Bound under another name, made 0600, then renamed: never reachable with wider rights.
        let fresh = data_dir.join(format!("{SOCKET}.{}", std::process::id()));
        let _ = std::fs::remove_file(&fresh);
        let inner = tokio::net::UnixListener::bind(&fresh)?;
        std::fs::set_permissions(&fresh, std::fs::Permissions::from_mode(0o600))?;
        let owner = std::fs::metadata(&fresh)?.uid();
        std::fs::rename(&fresh, &path)?;
        Ok(Self { inner, path, owner })
    }

    /// Serves clients until `stop`, then removes the socket file.
    pub async fn serve(
        self,
        store: Arc<dyn Backend>,
        registry: Arc<Registry>,
        config: Config,
        run: Run,
        runtime: tokio::runtime::Handle,
        stop: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(stop);
        let slots = Arc::new(tokio::sync::Semaphore::new(CONCURRENT));
        let host = Arc::new(Host { store, registry, config, run, runtime, owner: self.owner });
        loop {
            tokio::select! {
                () = &mut stop => break,
                accepted = self.inner.accept() => match accepted {
                    Ok((stream, _)) => {
                        let (host, slots) = (host.clone(), slots.clone());
                        tokio::spawn(async move {
                            let Ok(_slot) = slots.acquire_owned().await else { return };
                            host.handle(stream).await;
                        });
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "admin socket: accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
            }
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

struct Host {
    store: Arc<dyn Backend>,
    registry: Arc<Registry>,
    config: Config,
    run: Run,
    /// Where commands run: the sync runtime, apart from the one serving lookups.
    runtime: tokio::runtime::Handle,
    owner: u32,
}

/// Why a request was not run (sent to the client as its error).
fn refuse(replies: &tokio::sync::mpsc::UnboundedSender<Reply>, message: String) {
    let _ = replies.send(Reply::Err(format!("error: {message}\n")));
    let _ = replies.send(Reply::Exit(EXIT_FAILED));
}

impl Host {
    async fn handle(&self, stream: tokio::net::UnixStream) {
        let peer = stream.peer_cred().map(|c| c.uid());
        let (read, mut write) = stream.into_split();
        let (replies, mut outgoing) = tokio::sync::mpsc::unbounded_channel::<Reply>();
        let writer = tokio::spawn(async move {
            while let Some(reply) = outgoing.recv().await {
                let mut line = serde_json::to_vec(&reply).expect("a reply serializes");
                line.push(b'\n');
                if write.write_all(&line).await.is_err() {
                    break; // The client left; the command still ends as it would.
                }
            }
            let _ = write.shutdown().await;
        });
        match peer {
            Ok(uid) if uid == self.owner || uid == 0 => self.run(read, replies).await,
            Ok(uid) => {
                tracing::warn!(uid, "admin socket: refused a client of another user");
                refuse(
                    &replies,
                    format!("the admin socket serves only uid {} (the server's) and root, not uid {uid}", self.owner),
                );
            }
            Err(e) => refuse(&replies, format!("the admin socket could not tell who is asking: {e}")),
        }
        let _ = writer.await;
    }

    async fn run(&self, read: tokio::net::unix::OwnedReadHalf, replies: tokio::sync::mpsc::UnboundedSender<Reply>) {
        let mut read = tokio::io::BufReader::new(read);
        let request = match tokio::time::timeout(REQUEST_TIMEOUT, read_request(&mut read)).await {
            Ok(Ok(r)) => r,
            Ok(Err(message)) => return refuse(&replies, message),
            Err(_) => {
                return refuse(&replies, format!("no request within {} s", REQUEST_TIMEOUT.as_secs()));
            }
        };
        if request.version != env!("CARGO_PKG_VERSION") {
            return refuse(
                &replies,
                format!(
                    "this contactbridge is version {}, the running server {}: use the server's, or restart it",
                    request.version,
                    env!("CARGO_PKG_VERSION")
                ),
            );
        }
        let argv = std::iter::once("contactbridge".to_string()).chain(request.argv);
        let cli = match session::parse_in(&request.cwd, || <super::Cli as clap::Parser>::try_parse_from(argv)) {
            Ok(cli) => cli,
            Err(e) => {
                let _ = replies.send(Reply::Err(e.render().to_string()));
                let _ = replies.send(Reply::Exit(u8::try_from(e.exit_code()).unwrap_or(EXIT_FAILED)));
                return;
            }
        };
        if let Some(why) = refusal(&cli.command) {
            return refuse(&replies, why.to_string());
        }
        // The client's answers to prompts; its end of the connection ends them.
        let (answer, answers) = std::sync::mpsc::channel();
        let answering = tokio::spawn(async move {
            let mut line = String::new();
            while matches!((&mut read).take(MAX_REQUEST).read_line(&mut line).await, Ok(n) if n > 0) {
                let Ok(a) = serde_json::from_str::<Answer>(&line) else { break };
                if answer.send(a.answer).is_err() {
                    break;
                }
                line.clear();
            }
        });
        let session = Arc::new(Session {
            replies: replies.clone(),
            env: request.env,
            answers: std::sync::Mutex::new(answers),
            store: self.store.clone(),
            registry: self.registry.clone(),
        });
        tracing::info!("admin socket: running a command for a client");
        let command = session::scope(session, (self.run)(cli.command, self.config.clone()));
        let result = match self.runtime.spawn(command).await {
            Ok(r) => r,
            Err(e) => Err(anyhow::anyhow!("the command ended abnormally (see the server's log): {e}")),
        };
        answering.abort();
        let (code, message) = super::outcome(result);
        if let Some(m) = message {
            let _ = replies.send(Reply::Err(format!("{m}\n")));
        }
        let _ = replies.send(Reply::Exit(code));
    }
}

/// Reads the request line: bounded, whole, JSON.
async fn read_request(read: &mut (impl tokio::io::AsyncBufRead + Unpin)) -> Result<Request, String> {
    let mut line = Vec::new();
    read.take(MAX_REQUEST + 1).read_until(b'\n', &mut line).await.map_err(|e| format!("reading the request: {e}"))?;
    if line.len() as u64 > MAX_REQUEST {
        return Err(format!("the request is longer than {} bytes", MAX_REQUEST));
    }
    if line.last() != Some(&b'\n') {
        return Err("the request ended without its end of line".into());
    }
    serde_json::from_slice(&line)
        .map_err(|e| format!("the admin socket expects one JSON request line from contactbridge's CLI ({e})"))
}

/// Runs the command through a server on this data directory, if one answers there:
/// `None` when none does (the caller runs it itself).
pub fn client(command: &Command, data_dir: &Path) -> Option<std::process::ExitCode> {
    let path = socket_path(data_dir);
    let stream = match std::os::unix::net::UnixStream::connect(&path) {
        Ok(s) => s,
        Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused) => {
            return None;
        }
        Err(e) => {
            eprintln!(
                "error: a contactbridge server holds {}; its admin socket {}: {e}",
                data_dir.display(),
                path.display()
            );
            return Some(std::process::ExitCode::from(EXIT_FAILED));
        }
    };
    if let Some(why) = refusal(command) {
        if !matches!(command, Command::Serve(_)) {
            eprintln!("error: {why}");
            return Some(std::process::ExitCode::from(EXIT_FAILED));
        }
        return None; // `serve` reports the store in use itself.
    }
    Some(match talk(stream, command) {
        Ok(code) => std::process::ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(EXIT_FAILED)
        }
    })
}

fn talk(stream: std::os::unix::net::UnixStream, command: &Command) -> anyhow::Result<u8> {
    use anyhow::Context as _;
    use std::io::{BufRead as _, Write as _};
    let argv: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.into_string().map_err(|a| anyhow::anyhow!("argument {a:?} is not UTF-8")))
        .collect::<anyhow::Result<_>>()?;
    let env = named_env(&argv);
    let request = Request {
        version: env!("CARGO_PKG_VERSION").into(),
        argv,
        cwd: std::env::current_dir().context("the working directory")?,
        env,
    };
    // The file `backup FILE` writes is written here, by the client.
    let mut file = match command {
        Command::Backup { file } => Some((
            std::io::BufWriter::new(
                std::fs::File::create(file).with_context(|| format!("creating {}", file.display()))?,
            ),
            file,
        )),
        _ => None,
    };
    let mut write = stream.try_clone()?;
    let mut line = serde_json::to_vec(&request)?;
    line.push(b'\n');
    write.write_all(&line).context("sending the command to the server")?;
    let mut read = std::io::BufReader::new(stream);
    let mut text = String::new();
    loop {
        text.clear();
        if read.read_line(&mut text).context("reading the server's answer")? == 0 {
            anyhow::bail!("the server closed the connection before the command ended (see its log)");
        }
        let reply: Reply = serde_json::from_str(&text).context("an unreadable answer from the server")?;
        match reply {
            Reply::Out(t) => {
                let mut stdout = std::io::stdout().lock();
                // A reader that left (`| head`) ends the client quietly, not with a panic.
                if stdout.write_all(t.as_bytes()).and_then(|()| stdout.flush()).is_err() {
                    return Ok(EXIT_FAILED);
                }
            }
            Reply::Err(t) => eprint!("{t}"),
            Reply::Data(t) => match &mut file {
                Some((f, path)) => f.write_all(t.as_bytes()).with_context(|| format!("writing {}", path.display()))?,
                None => anyhow::bail!("the server sent file content for a command that writes no file"),
            },
            Reply::Prompt(p) => {
                let answer = rpassword::prompt_password(p).context("reading the secret from the terminal")?;
                let mut line = serde_json::to_vec(&Answer { answer })?;
                line.push(b'\n');
                write.write_all(&line).context("sending the answer to the server")?;
            }
            Reply::Exit(code) => {
                if let Some((mut f, path)) = file {
                    f.flush().with_context(|| format!("writing {}", path.display()))?;
                    f.get_ref().sync_all().with_context(|| format!("writing {}", path.display()))?;
                }
                return Ok(code);
            }
        }
    }
}

/// The environment variables named by `--…-env VAR` arguments, with their values here.
fn named_env(argv: &[String]) -> HashMap<String, String> {
    let mut names = Vec::new();
    let mut args = argv.iter();
    while let Some(a) = args.next() {
        match a.split_once('=') {
            Some((flag, name)) if flag.starts_with("--") && flag.ends_with("-env") => names.push(name.to_string()),
            None if a.starts_with("--") && a.ends_with("-env") => names.extend(args.next().cloned()),
            _ => {}
        }
    }
    names.into_iter().filter_map(|n| std::env::var(&n).ok().map(|v| (n, v))).collect()
}
