//! Issue 14 part 1, first step: Debian's Kamailio (`examples/kamailio/redirect.cfg`)
//! asks the bridge's HTTP lookup for each INVITE and answers with the decision;
//! real SIP requests come from Debian's `sipsak`. A VIP caller is redirected to
//! the user's mobile, a blocked caller declined, an unknown one sent to the
//! attendant, and each call is in the bridge's call history.

mod support;

use contactbridge::store::UserStore;
use contactbridge::user::{self, HandlingCode, HandlingMethod, HandlingRule, HandlingTable, Match, UserId};
use std::process::{Child, Command, Stdio};
use support::lookup::Fixture;

const MOBILE: &str = "+491701234567";
const ATTENDANT: &str = "+4930901829";

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Kamailio {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Kamailio {
    /// The example configuration with its defines pointed at `bridge`.
    fn start(bridge: &str, key: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_udp_port();
        let example =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/kamailio/redirect.cfg")).unwrap();
        let cfg: String = example
            .lines()
            .map(|l| {
                if l.starts_with("#!define LISTEN ") {
                    format!("#!define LISTEN udp:127.0.0.1:{port}")
                } else if l.starts_with("#!define BRIDGE ") {
                    format!("#!define BRIDGE \"{bridge}/lookup/v1/decision\"")
                } else if l.starts_with("#!define BRIDGE_KEY ") {
                    format!("#!define BRIDGE_KEY \"{key}\"")
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        let path = dir.path().join("kamailio.cfg");
        std::fs::write(&path, cfg).unwrap();
        let child = Command::new("kamailio")
            .args(["-DD", "-E", "-f"])
            .arg(&path)
            .arg("-Y")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("kamailio runs (Debian: apt-get install kamailio kamailio-json-modules kamailio-utils-modules)");
        Self { child, port, _dir: dir }
    }
}

impl Drop for Kamailio {
    /// SIGTERM: Kamailio's main process then stops its forked workers (SIGKILL would orphan them).
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends one INVITE with `sipsak` and returns the final reply's status and headers.
fn invite(port: u16, called: &str, cli: &str, n: u32) -> (u16, String) {
    let dir = tempfile::tempdir().unwrap();
    let msg = format!(
        "INVITE sip:{called}@127.0.0.1:{port} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK-cb-{n}\r\n\
         From: <sip:{cli}@127.0.0.1>;tag=cb{n}\r\n\
         To: <sip:{called}@127.0.0.1>\r\n\
         Call-ID: cb-test-{n}@127.0.0.1\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:{cli}@127.0.0.1>\r\n\
         Max-Forwards: 70\r\n\
         Content-Length: 0\r\n\r\n"
    );
    let file = dir.path().join("invite.sip");
    std::fs::write(&file, msg).unwrap();
    let out = Command::new("sipsak")
        .args(["-vv", "--ignore-redirects", "-f"])
        .arg(&file)
        .args(["-s", &format!("sip:{called}@127.0.0.1:{port}")])
        .output()
        .expect("sipsak runs (Debian: apt-get install sipsak)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let status = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("SIP/2.0 "))
        .filter_map(|l| l.get(..3)?.parse::<u16>().ok())
        .find(|s| *s >= 200)
        .unwrap_or(0);
    (status, text)
}

fn header<'a>(reply: &'a str, name: &str) -> Option<&'a str> {
    reply.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kamailio_routes_invites_by_the_bridges_decisions() {
    let f = Fixture::start().await;
    // A handling table that does not depend on the demo calendar.
    let demo = UserId::parse("demo").unwrap();
    let mut profile = f.store.profile(&demo).unwrap().unwrap();
    let code = |c: &str| Match::Is(HandlingCode::parse(c).unwrap());
    profile.handling = HandlingTable {
        rules: vec![
            HandlingRule {
                code: code("vip"),
                status: Match::ANY,
                method: HandlingMethod::Forward { number: MOBILE.into() },
            },
            HandlingRule { code: code("blocked"), status: Match::ANY, method: HandlingMethod::Reject },
            HandlingRule { code: code("unknown"), status: Match::ANY, method: HandlingMethod::Attendant },
        ],
        fallback: HandlingMethod::Voicemail,
    };
    user::put_profile(f.store.as_ref(), &profile).unwrap();

    let k = Kamailio::start(&format!("http://{}", f.addr), &f.demo_tsps);
    let port = k.port;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let (vip, blocked, unknown) = tokio::task::spawn_blocking(move || {
        (
            invite(port, "+4930901820", "+49301234567", 1), // Erika: vip
            invite(port, "+4930901820", "08001234567", 2),  // Cold Calls Inc.: blocked
            invite(port, "+4930901820", "+49409999999", 3), // nobody the user knows
        )
    })
    .await
    .unwrap();

    assert_eq!(vip.0, 302, "{}", vip.1);
    assert!(header(&vip.1, "Contact").unwrap().contains(&format!("sip:{MOBILE}@")), "{}", vip.1);
    assert_eq!(header(&vip.1, "X-Contactbridge-Code"), Some("vip"), "{}", vip.1);
    assert_eq!(blocked.0, 603, "{}", blocked.1);
    assert_eq!(header(&blocked.1, "X-Contactbridge-Code"), Some("blocked"));
    assert_eq!(unknown.0, 302, "{}", unknown.1);
    assert!(header(&unknown.1, "Contact").unwrap().contains(&format!("sip:{ATTENDANT}@")), "{}", unknown.1);

    // Each INVITE is a call in the bridge's history, under the id Kamailio was given.
    for reply in [&vip.1, &blocked.1, &unknown.1] {
        let id = header(reply, "X-Contactbridge-Call").unwrap();
        assert!(f.call(id).is_some(), "call {id} is recorded");
    }
    assert_eq!(f.calls_of_demo(), 3);
}
