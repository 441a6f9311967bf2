//! Where a command's output goes and what it may ask of its user: this process's
//! terminal, or — when `serve` runs the command for a CLI on the admin socket
//! (src/cli/admin_socket.rs) — that CLI, over the socket. The commands print with
//! `outln!`/`errln!`, read secrets with [`env_var`]/[`prompt_password`] and open the
//! store with `super::open`; in a session these answer from the client and from the
//! server's open store and registry.

use contactbridge::accounts::Registry;
use contactbridge::store::Backend;
use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// A frame from `serve` to the CLI client: one JSON line each.
#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    /// Text for the client's stdout.
    Out(String),
    /// Text for the client's stderr.
    Err(String),
    /// Ask the client's user for a secret (no echo); the client answers with one line.
    Prompt(String),
    /// Content of the file the command writes on the client's side (`backup FILE`).
    Data(String),
    /// The command ended with this exit status; the last frame.
    Exit(u8),
}

/// One command run by `serve` for a client of the admin socket.
pub struct Session {
    pub replies: tokio::sync::mpsc::UnboundedSender<Reply>,
    /// The client's values of the environment variables its arguments name (`--password-env VAR`).
    pub env: HashMap<String, String>,
    /// The client's answers to prompts.
    pub answers: Mutex<std::sync::mpsc::Receiver<String>>,
    pub store: Arc<dyn Backend>,
    pub registry: Arc<Registry>,
}

tokio::task_local! {
    static SESSION: Arc<Session>;
}

/// Runs `f` (a command) for a client of the admin socket.
pub async fn scope<F: std::future::Future>(session: Arc<Session>, f: F) -> F::Output {
    SESSION.scope(session, f).await
}

fn current() -> Option<Arc<Session>> {
    SESSION.try_with(Arc::clone).ok()
}

/// The server's open store, when the command runs for a client of the admin socket.
pub fn served_store() -> Option<Arc<dyn Backend>> {
    current().map(|s| s.store.clone())
}

/// The server's registry (with its running syncs), when the command runs for a client.
pub fn served_registry() -> Option<Arc<Registry>> {
    current().map(|s| s.registry.clone())
}

pub fn out(text: String) {
    match current() {
        Some(s) => drop(s.replies.send(Reply::Out(text))),
        None => print!("{text}"),
    }
}

pub fn err(text: String) {
    match current() {
        Some(s) => drop(s.replies.send(Reply::Err(text))),
        None => eprint!("{text}"),
    }
}

/// `print!` to the command's user.
macro_rules! out {
    ($($t:tt)*) => { $crate::cli::session::out(format!($($t)*)) };
}

/// `println!` to the command's user.
macro_rules! outln {
    () => { $crate::cli::session::out("\n".to_string()) };
    ($($t:tt)*) => { $crate::cli::session::out(format!("{}\n", format_args!($($t)*))) };
}

/// `eprintln!` to the command's user.
macro_rules! errln {
    ($($t:tt)*) => { $crate::cli::session::err(format!("{}\n", format_args!($($t)*))) };
}

/// Whether the command's stdout is a terminal (never, for a client of the socket: no progress bars).
pub fn stdout_is_terminal() -> bool {
    use std::io::IsTerminal as _;
    current().is_none() && std::io::stdout().is_terminal()
}

/// An environment variable of the command's user.
pub fn env_var(name: &str) -> Result<String, std::env::VarError> {
    match current() {
        Some(s) => s.env.get(name).cloned().ok_or(std::env::VarError::NotPresent),
        None => std::env::var(name),
    }
}

/// Asks the command's user for a secret on their terminal.
pub fn prompt_password(prompt: &str) -> std::io::Result<String> {
    let Some(s) = current() else {
        return rpassword::prompt_password(prompt);
    };
    let gone = || std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the client closed the connection");
    s.replies.send(Reply::Prompt(prompt.to_string())).map_err(|_| gone())?;
    let answers = s.answers.lock().map_err(|_| gone())?;
    tokio::task::block_in_place(|| answers.recv()).map_err(|_| gone())
}

/// A file the command writes: here, or on the client's side (its content streamed to it).
pub enum OutFile {
    Local(std::io::BufWriter<std::fs::File>),
    Client { replies: tokio::sync::mpsc::UnboundedSender<Reply>, buf: Vec<u8> },
}

impl OutFile {
    /// Creates `path` here, or (for a client) has the client write what follows into its `path`.
    pub fn create(path: &Path) -> std::io::Result<Self> {
        Ok(match current() {
            Some(s) => OutFile::Client { replies: s.replies.clone(), buf: Vec::new() },
            None => OutFile::Local(std::io::BufWriter::new(std::fs::File::create(path)?)),
        })
    }

    fn send(&mut self) -> std::io::Result<()> {
        if let OutFile::Client { replies, buf } = self {
            if buf.is_empty() {
                return Ok(());
            }
            let text = String::from_utf8(std::mem::take(buf))
                .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"))?;
            replies
                .send(Reply::Data(text))
                .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client closed the connection"))?;
        }
        Ok(())
    }

    /// Flushes and syncs the file to disk (for a client: it does so when the command ends).
    pub fn finish(mut self) -> std::io::Result<()> {
        use std::io::Write as _;
        self.flush()?;
        match self {
            OutFile::Local(w) => w.get_ref().sync_all(),
            OutFile::Client { .. } => Ok(()),
        }
    }
}

impl std::io::Write for OutFile {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        match self {
            OutFile::Local(w) => w.write(data),
            OutFile::Client { buf, .. } => {
                // Whole lines per frame keep UTF-8 sequences whole.
                buf.extend_from_slice(data);
                if buf.len() >= 64 * 1024 {
                    if let Some(end) = buf.iter().rposition(|b| *b == b'\n') {
                        let rest = buf.split_off(end + 1);
                        self.send()?;
                        if let OutFile::Client { buf, .. } = self {
                            *buf = rest;
                        }
                    }
                }
                Ok(data.len())
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            OutFile::Local(w) => w.flush(),
            OutFile::Client { .. } => self.send(),
        }
    }
}

thread_local! {
    static CLIENT_CWD: RefCell<Option<PathBuf>> = const { RefCell::new(None) };
}

/// Parses a client's arguments with its relative paths taken from its working directory.
pub fn parse_in<T>(cwd: &Path, parse: impl FnOnce() -> T) -> T {
    CLIENT_CWD.with(|c| *c.borrow_mut() = Some(cwd.to_path_buf()));
    let parsed = parse();
    CLIENT_CWD.with(|c| *c.borrow_mut() = None);
    parsed
}

/// clap's parser of a path the command reads: relative to the client's working
/// directory when `serve` parses a client's arguments.
pub fn path_arg(s: &str) -> Result<PathBuf, String> {
    let p = PathBuf::from(s);
    Ok(CLIENT_CWD.with(|c| match &*c.borrow() {
        Some(cwd) if p.is_relative() => cwd.join(&p),
        _ => p,
    }))
}
