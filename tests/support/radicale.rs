//! Radicale (CardDAV/CalDAV) on a free loopback port with htpasswd (plain) auth for one
//! user, its collections seeded straight into its storage folder before it starts;
//! killed on drop. It can be stopped and started again on the same port and storage,
//! with its rights file changed in between.

use super::tools::{free_port, tool, wait_for_port};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub struct Radicale {
    child: Option<Child>,
    pub port: u16,
    pub dir: tempfile::TempDir,
    user: String,
    /// The rights file's permissions on the user's own collections, if one is used.
    rights: Option<String>,
}

impl Radicale {
    /// `user`:`password` (htpasswd), `seed` given the user's home folder (write collections
    /// there, e.g. with [`collection`]).
    pub fn start(user: &str, password: &str, seed: impl FnOnce(&Path)) -> Self {
        Self::launch(user, password, None, seed)
    }

    /// The same with a rights file giving the user `permissions` (`RrWw` read and write,
    /// `Rr` read only) on their own collections and read access to the root.
    pub fn with_rights(user: &str, password: &str, permissions: &str, seed: impl FnOnce(&Path)) -> Self {
        Self::launch(user, password, Some(permissions.to_string()), seed)
    }

    fn launch(user: &str, password: &str, rights: Option<String>, seed: impl FnOnce(&Path)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("users"), format!("{user}:{password}\n")).unwrap();
        let mut r = Self { child: None, port: free_port(), dir, user: user.to_string(), rights };
        seed(&r.home());
        r.run();
        r
    }

    /// The user's home folder in the storage (`collections/collection-root/<user>`).
    pub fn home(&self) -> PathBuf {
        self.dir.path().join("collections/collection-root").join(&self.user)
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// What the server logged (warnings and errors).
    pub fn log(&self) -> String {
        read_log(self.dir.path())
    }

    /// Starts the server (again: same port and storage).
    pub fn run(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("server.log")).unwrap();
        let mut c = Command::new(tool("radicale"));
        c.arg("--server-hosts")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--storage-filesystem-folder")
            .arg(self.dir.path().join("collections"))
            .args(["--auth-type", "htpasswd", "--auth-htpasswd-encryption", "plain"])
            .arg("--auth-htpasswd-filename")
            .arg(self.dir.path().join("users"));
        if let Some(permissions) = &self.rights {
            let rules = format!("[own]\nuser: .+\ncollection: {{user}}(/.*)?\npermissions: {permissions}\n\n[root]\nuser: .+\ncollection: \npermissions: R\n");
            std::fs::write(self.dir.path().join("rights"), rules).unwrap();
            c.args(["--rights-type", "from_file", "--rights-file"]).arg(self.dir.path().join("rights"));
        }
        let child =
            c.args(["--logging-level", "warning"]).stdout(Stdio::null()).stderr(log).spawn().expect("start radicale");
        self.child = Some(child);
        let (child, dir) = (self.child.as_mut().unwrap(), self.dir.path());
        wait_for_port(self.port, "radicale", || {
            let status = child.try_wait().unwrap()?;
            Some(format!("exited with {status}: {}", read_log(dir)))
        });
    }

    /// Kills the server (it can be started again with [`Radicale::run`]).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Restarts the server with the user's `permissions` in its rights file.
    pub fn restart_with_rights(&mut self, permissions: &str) {
        self.stop();
        self.rights = Some(permissions.to_string());
        self.run();
    }
}

impl Drop for Radicale {
    fn drop(&mut self) {
        self.stop();
    }
}

fn read_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
}

/// A collection `name` in `home` (`tag` VADDRESSBOOK or VCALENDAR) holding `items` (file, text).
pub fn collection(home: &Path, name: &str, tag: &str, items: &[(&str, String)]) {
    let dir = home.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(".Radicale.props"), format!(r#"{{"tag": "{tag}", "D:displayname": "{name}"}}"#)).unwrap();
    for (file, text) in items {
        std::fs::write(dir.join(file), text).unwrap();
    }
}
