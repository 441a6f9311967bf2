//! The tools tests/setup-tools.sh installs (`CONTACTBRIDGE_TOOLS`, else `.tools`), free
//! loopback ports, and waiting for a server to listen.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The tools folder: `$CONTACTBRIDGE_TOOLS`, else `.tools` in the source tree.
pub fn tools_dir() -> PathBuf {
    std::env::var_os("CONTACTBRIDGE_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools"))
}

/// A program of the tools' Python venv (radicale, xandikos, …); it must be installed.
pub fn tool(name: &str) -> PathBuf {
    let path = tools_dir().join("venv/bin").join(name);
    assert!(path.exists(), "{} is missing: run tests/setup-tools.sh", path.display());
    path
}

/// A TCP port free on 127.0.0.1 right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Waits (30 s at most) until something accepts on `127.0.0.1:port`; `failed` is asked
/// meanwhile and panics the test with its answer (the server exited, with its log).
pub fn wait_for_port(port: u16, what: &str, mut failed: impl FnMut() -> Option<String>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(why) = failed() {
            panic!("{what} did not start: {why}");
        }
        assert!(Instant::now() < deadline, "{what} did not start within 30 s: {}", failed().unwrap_or_default());
        std::thread::sleep(Duration::from_millis(50));
    }
}
