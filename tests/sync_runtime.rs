//! Syncs run apart from the runtime serving lookups (issue 16, section 4): a
//! sync that holds its thread (as a long commit does) does not delay a
//! ResolveCall answered meanwhile, when the scheduler runs on the
//! [`SyncRuntime`] as in `serve`. The same sync on the serving runtime does
//! (the control: the test can tell the two apart).

use chrono::Utc;
use contactbridge::api::auth::{self, Scope};
use contactbridge::api::client::BridgeClient;
use contactbridge::api::pb;
use contactbridge::api::{RunningServer, ServerOptions};
use contactbridge::live::CallHub;
use contactbridge::store::SledStore;
use contactbridge::sync::scheduler::{Runner, Schedule, Scheduled, Scheduler, SchedulerOptions, SystemClock};
use contactbridge::sync::SyncRuntime;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const DEMO_DID: &str = "+49 30 901820";
const ERIKA_CLI: &str = "+49301234567";
/// How long the sync holds its thread.
const BLOCK: Duration = Duration::from_millis(600);

/// One account, due every second, whose first sync holds its thread for [`BLOCK`].
#[derive(Default)]
struct BlockingSync {
    blocking: AtomicBool,
    done: AtomicBool,
}

#[async_trait::async_trait]
impl Runner for BlockingSync {
    fn scheduled(&self) -> Result<Vec<Scheduled>, String> {
        Ok(vec![Scheduled {
            id: "big".into(),
            schedule: Schedule::new("* * * * * *", "UTC").unwrap(),
            enabled: true,
            failures: 0,
            last_finished: None,
        }])
    }

    async fn run(&self, _account: &str) -> Result<(), String> {
        if !self.done.swap(true, Ordering::SeqCst) {
            self.blocking.store(true, Ordering::SeqCst);
            std::thread::sleep(BLOCK);
        }
        Ok(())
    }
}

/// The latency of a ResolveCall sent while the scheduled sync holds its thread;
/// the scheduler runs on the sync runtime (`split`) or on the serving runtime.
fn resolve_during_a_blocking_sync(split: bool) -> Duration {
    // The serving runtime has one worker, so a task holding it holds everything on it.
    let serving = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let client_rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let sync = SyncRuntime::new().unwrap();
    let store = Arc::new(SledStore::temporary().unwrap());
    let server = serving.block_on(async {
        contactbridge::demo::load(store.as_ref(), &contactbridge::demo::default_dir(), Utc::now()).await.unwrap();
        let hub = CallHub::new(store.clone());
        RunningServer::start(
            store.clone(),
            store.clone(),
            hub,
            "127.0.0.1:0".parse().unwrap(),
            None,
            ServerOptions {
                connections: contactbridge::config::ConnectionsConfig { shutdown_grace_secs: 1, ..Default::default() },
                ..ServerOptions::default()
            },
        )
        .await
        .unwrap()
    });
    let key = auth::create_key(store.as_ref(), "demo", Scope::Tsps, "test").unwrap().text;
    let call = |i: usize| pb::ResolveCallRequest {
        called_number: DEMO_DID.into(),
        cli: ERIKA_CLI.into(),
        tsps_call_id: format!("sync-runtime-{i}"),
        at: None,
    };
    let mut client = client_rt.block_on(async {
        let mut client = BridgeClient::connect(&format!("http://{}", server.addr), &key).await.unwrap();
        let answer = client.calls.resolve_call(call(0)).await.unwrap().into_inner();
        assert!(!answer.candidates.is_empty(), "{answer:?}");
        client
    });

    let runner = Arc::new(BlockingSync::default());
    let scheduler = Scheduler::new(
        runner.clone(),
        Arc::new(SystemClock),
        SchedulerOptions { jitter_fraction: 0.0, ..SchedulerOptions::default() },
    );
    let handle = scheduler.spawn_on(if split { sync.handle() } else { serving.handle() });
    let waited = Instant::now();
    while !runner.blocking.load(Ordering::SeqCst) {
        assert!(waited.elapsed() < Duration::from_secs(10), "the scheduled sync did not start");
        std::thread::sleep(Duration::from_millis(1));
    }
    let sent = Instant::now();
    client_rt.block_on(client.calls.resolve_call(call(1))).unwrap();
    let latency = sent.elapsed();

    drop(client);
    client_rt.block_on(handle.shutdown(Duration::from_secs(5)));
    serving.block_on(server.stop()).unwrap();
    eprintln!(
        "ResolveCall during the sync, scheduler on the {}: {latency:?}",
        if split { "sync runtime" } else { "serving runtime" }
    );
    latency
}

#[test]
fn a_sync_holding_its_thread_does_not_delay_lookups_on_the_serving_runtime() {
    let split = resolve_during_a_blocking_sync(true);
    assert!(split < BLOCK / 3, "ResolveCall took {split:?} while a sync held the sync runtime's thread");
    // The control: the same sync on the serving runtime holds the lookup up.
    let shared = resolve_during_a_blocking_sync(false);
    assert!(shared >= BLOCK / 2, "ResolveCall took only {shared:?} with the sync on the serving runtime");
}
