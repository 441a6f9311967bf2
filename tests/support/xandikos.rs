//! Xandikos (it keeps the bytes of the cards it is given) with its default address book
//! (`/user/contacts/`), no authentication, on a free loopback port; killed on drop.

use super::tools::{free_port, tool, wait_for_port};
use std::process::{Child, Command, Stdio};

pub struct Xandikos {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Xandikos {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
        let child = Command::new(tool("xandikos"))
            .arg("serve")
            .arg("-d")
            .arg(dir.path().join("data"))
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .args(["--defaults", "--no-detect-systemd", "-l", "127.0.0.1", "-p"])
            .arg(port.to_string())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start xandikos");
        let mut x = Self { child, port, dir };
        let (child, log) = (&mut x.child, x.dir.path().join("server.log"));
        wait_for_port(port, "xandikos", || {
            let status = child.try_wait().unwrap()?;
            Some(format!("exited with {status}: {}", std::fs::read_to_string(&log).unwrap_or_default()))
        });
        x
    }

    /// `path` on the server (starting with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for Xandikos {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
