//! The scheduler under tokio's paused clock: schedules fire on time (in their
//! time zone), runs of one account never overlap, the concurrency cap holds, a
//! failing account backs off while others keep syncing, and shutdown lets a
//! running sync finish within the grace period.

use chrono::{DateTime, TimeZone as _, Utc};
use contactbridge::sync::scheduler::{Clock, Runner, Schedule, Scheduled, Scheduler, SchedulerOptions, TokioClock};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 5, 0, 0, 0).unwrap()
}

/// How one test account behaves when run.
#[derive(Clone, Default)]
struct Behaviour {
    takes: Duration,
    fails: bool,
}

/// A runner whose syncs take a set time and succeed or fail, recording when each started.
struct TimedRunner {
    clock: Arc<TokioClock>,
    accounts: Mutex<Vec<(Scheduled, Behaviour)>>,
    starts: Mutex<Vec<(String, DateTime<Utc>)>>,
    finished: Mutex<Vec<String>>,
    running: Mutex<HashMap<String, usize>>,
    peak_per_account: Mutex<HashMap<String, usize>>,
    peak_total: Mutex<usize>,
}

impl TimedRunner {
    fn new(clock: Arc<TokioClock>, accounts: Vec<(&str, &str, Behaviour)>) -> Arc<Self> {
        Arc::new(Self {
            clock,
            accounts: Mutex::new(
                accounts
                    .into_iter()
                    .map(|(id, cron, b)| {
                        let schedule = Schedule::new(cron, "UTC").unwrap();
                        (Scheduled { id: id.into(), schedule, enabled: true, failures: 0, last_finished: None }, b)
                    })
                    .collect(),
            ),
            starts: Mutex::default(),
            finished: Mutex::default(),
            running: Mutex::default(),
            peak_per_account: Mutex::default(),
            peak_total: Mutex::default(),
        })
    }

    fn starts_of(&self, id: &str) -> Vec<DateTime<Utc>> {
        self.starts.lock().unwrap().iter().filter(|(a, _)| a == id).map(|(_, t)| *t).collect()
    }

    fn minutes_of(&self, id: &str) -> Vec<i64> {
        self.starts_of(id).iter().map(|t| (*t - t0()).num_seconds() / 60).collect()
    }
}

#[async_trait::async_trait]
impl Runner for TimedRunner {
    fn scheduled(&self) -> Result<Vec<Scheduled>, String> {
        Ok(self.accounts.lock().unwrap().iter().map(|(s, _)| s.clone()).collect())
    }

    async fn run(&self, account: &str) -> Result<(), String> {
        let behaviour =
            self.accounts.lock().unwrap().iter().find(|(s, _)| s.id == account).map(|(_, b)| b.clone()).unwrap();
        self.starts.lock().unwrap().push((account.to_string(), self.clock.now()));
        {
            let mut running = self.running.lock().unwrap();
            *running.entry(account.to_string()).or_default() += 1;
            let mine = running[account];
            let total: usize = running.values().sum();
            let mut peaks = self.peak_per_account.lock().unwrap();
            let p = peaks.entry(account.to_string()).or_default();
            *p = (*p).max(mine);
            let mut pt = self.peak_total.lock().unwrap();
            *pt = (*pt).max(total);
        }
        tokio::time::sleep(behaviour.takes).await;
        *self.running.lock().unwrap().get_mut(account).unwrap() -= 1;
        self.finished.lock().unwrap().push(account.to_string());
        if behaviour.fails {
            Err("authentication failed: the server rejected the password".into())
        } else {
            Ok(())
        }
    }
}

fn exact(max_concurrent: usize) -> SchedulerOptions {
    SchedulerOptions { max_concurrent, jitter_fraction: 0.0, ..SchedulerOptions::default() }
}

fn start(
    runner: &Arc<TimedRunner>,
    clock: &Arc<TokioClock>,
    options: SchedulerOptions,
) -> contactbridge::sync::scheduler::SchedulerHandle {
    Scheduler::new(runner.clone(), clock.clone(), options).spawn()
}

#[tokio::test(start_paused = true)]
async fn schedules_fire_at_their_cron_times() {
    let clock = Arc::new(TokioClock::starting_at(t0()));
    let runner = TimedRunner::new(
        clock.clone(),
        vec![("five", "*/5 * * * *", Behaviour::default()), ("hourly", "0 0 * * * *", Behaviour::default())],
    );
    let handle = start(&runner, &clock, exact(4));
    tokio::time::sleep(Duration::from_secs(61 * 60)).await;
    assert_eq!(runner.minutes_of("five"), (1..=12).map(|i| i * 5).collect::<Vec<_>>());
    assert_eq!(runner.minutes_of("hourly"), vec![60]);
    let status = handle.scheduler().account("five").unwrap();
    assert_eq!(status.next_run, Some(t0() + chrono::Duration::minutes(65)));
    assert_eq!(status.runs, 12);
    handle.shutdown(Duration::from_secs(1)).await;
}

#[test]
fn schedules_are_read_in_their_time_zone_and_may_have_seconds() {
    let nine_berlin = Schedule::new("0 9 * * *", "Europe/Berlin").unwrap();
    // 09:00 in Berlin is 08:00 UTC in winter and 07:00 UTC in summer.
    assert_eq!(nine_berlin.next_after(t0()).unwrap(), Utc.with_ymd_and_hms(2026, 1, 5, 8, 0, 0).unwrap());
    let july = Utc.with_ymd_and_hms(2026, 7, 1, 0, 0, 0).unwrap();
    assert_eq!(nine_berlin.next_after(july).unwrap(), Utc.with_ymd_and_hms(2026, 7, 1, 7, 0, 0).unwrap());
    let with_seconds = Schedule::new("30 */15 * * * *", "UTC").unwrap();
    assert_eq!(with_seconds.next_after(t0()).unwrap(), t0() + chrono::Duration::seconds(30));
    let e = Schedule::new("every day", "UTC").unwrap_err().to_string();
    assert!(e.contains("every day"), "{e}");
    let e = Schedule::new("* * * * *", "Mars/Olympus").unwrap_err().to_string();
    assert!(e.contains("Mars/Olympus"), "{e}");
}

#[tokio::test(start_paused = true)]
async fn a_long_sync_is_never_overlapped_by_its_next_occurrence() {
    let clock = Arc::new(TokioClock::starting_at(t0()));
    let slow = Behaviour { takes: Duration::from_secs(150), fails: false };
    let runner = TimedRunner::new(clock.clone(), vec![("slow", "* * * * *", slow)]);
    let handle = start(&runner, &clock, exact(4));
    tokio::time::sleep(Duration::from_secs(10 * 60 + 30)).await;
    // Starts at 1:00, ends 3:30; the next occurrence after that is 4:00, and so on.
    assert_eq!(runner.minutes_of("slow"), vec![1, 4, 7, 10]);
    assert_eq!(runner.peak_per_account.lock().unwrap()["slow"], 1);
    handle.shutdown(Duration::from_secs(300)).await;
}

#[tokio::test(start_paused = true)]
async fn no_more_than_max_concurrent_syncs_run_at_once() {
    let clock = Arc::new(TokioClock::starting_at(t0()));
    let b = Behaviour { takes: Duration::from_secs(90), fails: false };
    let runner = TimedRunner::new(
        clock.clone(),
        vec![("a", "*/5 * * * *", b.clone()), ("b", "*/5 * * * *", b.clone()), ("c", "*/5 * * * *", b)],
    );
    let handle = start(&runner, &clock, exact(2));
    tokio::time::sleep(Duration::from_secs(8 * 60)).await;
    assert_eq!(*runner.peak_total.lock().unwrap(), 2);
    // All three ran: the third waited for a permit (started 90 s late).
    let mut firsts: Vec<i64> =
        ["a", "b", "c"].iter().map(|id| (runner.starts_of(id)[0] - t0()).num_seconds()).collect();
    firsts.sort();
    assert_eq!(firsts, vec![300, 300, 390]);
    handle.shutdown(Duration::from_secs(300)).await;
}

#[tokio::test(start_paused = true)]
async fn a_failing_account_backs_off_while_others_keep_syncing() {
    let clock = Arc::new(TokioClock::starting_at(t0()));
    let runner = TimedRunner::new(
        clock.clone(),
        vec![
            ("good", "* * * * *", Behaviour::default()),
            ("bad", "* * * * *", Behaviour { takes: Duration::ZERO, fails: true }),
        ],
    );
    let options = SchedulerOptions { backoff_base: Duration::from_secs(60), ..exact(4) };
    let handle = start(&runner, &clock, options);
    tokio::time::sleep(Duration::from_secs(30 * 60 + 30)).await;
    assert_eq!(runner.minutes_of("good"), (1..=30).collect::<Vec<_>>());
    // Backoff after the n-th failure: 1, 2, 4, 8, 16 minutes.
    assert_eq!(runner.minutes_of("bad"), vec![1, 2, 4, 8, 16]);
    let bad = handle.scheduler().account("bad").unwrap();
    assert_eq!(bad.consecutive_failures, 5);
    assert!(bad.skipped >= 20, "{bad:?}");
    assert!(bad.last_error.unwrap().contains("authentication failed"));
    assert_eq!(handle.scheduler().account("good").unwrap().consecutive_failures, 0);

    // Fixed: the next run after the backoff succeeds and resets it.
    runner.accounts.lock().unwrap().iter_mut().find(|(s, _)| s.id == "bad").unwrap().1.fails = false;
    tokio::time::sleep(Duration::from_secs(3 * 60)).await;
    let bad = handle.scheduler().account("bad").unwrap();
    assert_eq!(runner.minutes_of("bad"), vec![1, 2, 4, 8, 16, 32, 33]);
    assert_eq!((bad.consecutive_failures, bad.backoff_until, bad.last_error), (0, None, None));
    handle.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(start_paused = true)]
async fn jitter_delays_runs_by_at_most_a_tenth_of_the_interval() {
    let clock = Arc::new(TokioClock::starting_at(t0()));
    let ids: Vec<String> = (0..8).map(|i| format!("acc{i}")).collect();
    let runner = TimedRunner::new(
        clock.clone(),
        ids.iter().map(|id| (id.as_str(), "*/10 * * * *", Behaviour::default())).collect(),
    );
    let handle = start(&runner, &clock, SchedulerOptions { max_concurrent: 8, ..SchedulerOptions::default() });
    tokio::time::sleep(Duration::from_secs(61 * 60)).await;
    let mut offsets = Vec::new();
    for id in &ids {
        let starts = runner.starts_of(id);
        assert!(starts.len() >= 5, "{id}: {starts:?}");
        for s in starts {
            let since_slot = (s - t0()).num_seconds() % 600;
            assert!(since_slot <= 60, "{id} started {since_slot} s after its slot");
            offsets.push(since_slot);
        }
    }
    offsets.sort();
    offsets.dedup();
    assert!(offsets.len() > 3, "runs are spread, not all at once: {offsets:?}");
    handle.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(start_paused = true)]
async fn shutdown_lets_a_running_sync_finish_within_the_grace_period_else_drops_it() {
    for (grace, finishes) in [(Duration::from_secs(60), true), (Duration::from_secs(5), false)] {
        let clock = Arc::new(TokioClock::starting_at(t0()));
        let runner = TimedRunner::new(
            clock.clone(),
            vec![("a", "* * * * *", Behaviour { takes: Duration::from_secs(30), fails: false })],
        );
        let handle = start(&runner, &clock, exact(1));
        tokio::time::sleep(Duration::from_secs(70)).await; // 10 s into the first run
        assert_eq!(runner.starts_of("a").len(), 1);
        let before = tokio::time::Instant::now();
        handle.shutdown(grace).await;
        let waited = before.elapsed();
        assert_eq!(runner.finished.lock().unwrap().len() == 1, finishes, "grace {grace:?}");
        assert!(waited <= grace, "waited {waited:?}");
        // Nothing starts after shutdown.
        tokio::time::sleep(Duration::from_secs(300)).await;
        assert_eq!(runner.starts_of("a").len(), 1);
    }
}

#[tokio::test(start_paused = true)]
async fn a_backoff_carries_over_a_restart() {
    let clock = Arc::new(TokioClock::starting_at(t0()));
    let runner = TimedRunner::new(clock.clone(), vec![("bad", "* * * * *", Behaviour::default())]);
    {
        let mut accounts = runner.accounts.lock().unwrap();
        // Three failures in a row, the last one a minute before this start: 4 minutes of backoff.
        accounts[0].0.failures = 3;
        accounts[0].0.last_finished = Some(t0() - chrono::Duration::minutes(1));
    }
    let handle = start(&runner, &clock, exact(1));
    tokio::time::sleep(Duration::from_secs(5 * 60 + 30)).await;
    assert_eq!(runner.minutes_of("bad"), vec![3, 4, 5]);
    let status = handle.scheduler().account("bad").unwrap();
    assert_eq!((status.skipped, status.consecutive_failures), (2, 0));
    handle.shutdown(Duration::from_secs(1)).await;
}

/// `resync_all` (the store replaced a damaged index): every enabled account
/// runs now, not at its cron time and not after its backoff; one that is
/// running runs once more after; the pass is reported finished when all have.
#[tokio::test(start_paused = true)]
async fn resync_all_runs_every_account_now_whatever_its_schedule_or_backoff() {
    let clock = Arc::new(TokioClock::starting_at(t0()));
    let runner = TimedRunner::new(
        clock.clone(),
        vec![
            ("hourly", "0 * * * *", Behaviour { takes: Duration::from_secs(600), fails: false }),
            ("yearly", "0 0 1 1 *", Behaviour::default()),
            ("failing", "* * * * *", Behaviour { takes: Duration::ZERO, fails: true }),
        ],
    );
    let options = SchedulerOptions { backoff_base: Duration::from_secs(7200), ..exact(4) };
    let handle = start(&runner, &clock, options);
    // 01:05: "hourly" runs (until 01:10), "failing" backs off for two hours.
    tokio::time::sleep(Duration::from_secs(65 * 60)).await;
    assert_eq!(runner.minutes_of("hourly"), [60]);
    assert_eq!(runner.minutes_of("failing"), [1]);
    assert!(runner.minutes_of("yearly").is_empty());

    let mut done = handle.scheduler().resynced();
    let pass = handle.scheduler().resync_all();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(runner.minutes_of("yearly"), [65], "not at its cron time");
    assert_eq!(runner.minutes_of("failing"), [1, 65], "not after its backoff");
    assert_eq!(runner.minutes_of("hourly"), [60], "never two runs of one account at once");
    assert!(*done.borrow() < pass, "the running account has not run again yet");
    tokio::time::timeout(Duration::from_secs(3600), done.wait_for(|p| *p >= pass)).await.unwrap().unwrap();
    assert_eq!(runner.minutes_of("hourly"), [60, 70], "run again once its run ended");
    assert_eq!(*runner.peak_per_account.lock().unwrap().get("hourly").unwrap(), 1);
    handle.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(start_paused = true)]
async fn sync_soon_runs_an_account_now_coalesces_bursts_and_never_overlaps() {
    let clock = Arc::new(TokioClock::starting_at(t0()));
    let runner = TimedRunner::new(
        clock.clone(),
        vec![
            ("yearly", "0 0 1 1 *", Behaviour { takes: Duration::from_secs(10), fails: false }),
            ("other", "0 0 1 1 *", Behaviour::default()),
            ("failing", "* * * * *", Behaviour { takes: Duration::ZERO, fails: true }),
        ],
    );
    let options = SchedulerOptions { backoff_base: Duration::from_secs(7200), ..exact(4) };
    let handle = start(&runner, &clock, options);
    tokio::time::sleep(Duration::from_secs(65)).await;
    assert_eq!(runner.minutes_of("failing"), [1]);
    let s = handle.scheduler();
    // A burst of notifications: one run now; those during it: one more after it.
    for _ in 0..50 {
        s.sync_soon("yearly");
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(runner.starts_of("yearly").len(), 1, "a burst before the run starts is one run");
    for _ in 0..50 {
        s.sync_soon("yearly");
    }
    tokio::time::sleep(Duration::from_secs(60)).await;
    let starts: Vec<i64> = runner.starts_of("yearly").iter().map(|t| (*t - t0()).num_seconds()).collect();
    assert_eq!(starts, [65, 75], "one more run, after the first ended");
    assert_eq!(*runner.peak_per_account.lock().unwrap().get("yearly").unwrap(), 1);
    assert_eq!(handle.scheduler().account("yearly").unwrap().notified_runs, 2);
    // Only the account asked for runs; a backing-off account stays backed off.
    assert!(runner.starts_of("other").is_empty());
    s.sync_soon("failing");
    s.sync_soon("no-such-account");
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(runner.minutes_of("failing"), [1], "a notification does not cut a backoff short");
    handle.shutdown(Duration::from_secs(1)).await;
}
