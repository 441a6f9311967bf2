//! The `contactbridge` binary: one-shot CLI runs, and `serve --demo` as a child process.

use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_contactbridge");

/// The binary on `data` in `cwd` with `env` added, no config from the environment; stdin closed.
pub fn cb_in(cwd: &Path, data: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(BIN)
        .current_dir(cwd)
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .envs(env.iter().copied())
        .env_remove("CONTACTBRIDGE_CONFIG")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// The binary on `data`, in the test's working directory.
pub fn cb(data: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env_remove("CONTACTBRIDGE_CONFIG")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// stdout and stderr as text.
pub fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

/// Runs [`cb`], which must succeed; its stdout.
pub fn ok(data: &Path, args: &[&str]) -> String {
    let out = cb(data, args);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{args:?} failed:\n{stdout}\n{stderr}");
    stdout
}

/// Runs [`cb`], which must fail; its stderr.
pub fn fails(data: &Path, args: &[&str]) -> String {
    let out = cb(data, args);
    assert!(!out.status.success(), "{args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `serve --demo` on a data directory (gRPC and web on free ports, no metrics), killed when
/// dropped; started once its admin socket answers. Its stderr goes to `<data>.log` ([`Serve::log`]).
pub struct Serve(pub Child, std::path::PathBuf);

impl Serve {
    pub fn start(data: &Path) -> Self {
        Self::start_with(data, &[])
    }

    /// With `env` added (e.g. `CONTACTBRIDGE_WEB__LISTEN`, which then overrides the default).
    pub fn start_with(data: &Path, env: &[(&str, &str)]) -> Self {
        let child = Command::new(BIN)
            .arg("--data-dir")
            .arg(data)
            .args(["serve", "--demo", "--metrics-listen", "off"])
            .env("CONTACTBRIDGE_GRPC__LISTEN", "127.0.0.1:0")
            .env("CONTACTBRIDGE_WEB__LISTEN", "127.0.0.1:0")
            .envs(env.iter().copied())
            .env_remove("CONTACTBRIDGE_CONFIG")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(data.with_extension("log")).unwrap())
            .spawn()
            .unwrap();
        let mut serve = Serve(child, data.with_extension("log"));
        let deadline = Instant::now() + Duration::from_secs(30);
        while UnixStream::connect(data.join("admin.sock")).is_err() {
            if let Some(status) = serve.0.try_wait().unwrap() {
                panic!("serve exited with {status} before opening its admin socket: {}", serve.log());
            }
            assert!(Instant::now() < deadline, "serve never opened its admin socket");
            std::thread::sleep(Duration::from_millis(50));
        }
        serve
    }

    /// What it wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.1).unwrap_or_default()
    }

    pub fn kill9(&mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }

    /// SIGTERM; it must exit cleanly.
    pub fn stop(mut self) {
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        assert!(self.0.wait().unwrap().success());
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
