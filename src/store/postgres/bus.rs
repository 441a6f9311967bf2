//! The event bus on PostgreSQL: `NOTIFY` to publish, `LISTEN` on a dedicated
//! connection to receive ([`crate::store::bus`]).
//!
//! Every replica listens on one channel ([`CHANNEL`]) of the database. A
//! notification's text is `origin \n topic \n body`: the body is the payload
//! in base64 when the whole fits PostgreSQL's limit of 8000 bytes
//! ([`INLINE_MAX`] payload bytes), else `@<id>` of a row in `bus_payloads`
//! written in the same transaction as the `NOTIFY`, which each receiver reads
//! (rows are removed after a minute). A `NOTIFY` reaches the listeners at
//! commit, in commit order.
//!
//! # Faults
//!
//! The listening connection is the replica's ear: when it drops (server
//! restart, network), the listener reconnects with backoff (100 ms doubling
//! to 5 s) and listens again. What was published while it was disconnected
//! is **lost for this replica** (a `LISTEN` session has no replay): a directive
//! or window event sent then does not reach this replica's streams; the call
//! journal in the store still has every directive, and the window shows it on
//! its next load of the call. Publishing hands the message to a thread with
//! a connection of its own (in order; the caller never waits on the server);
//! on a dropped connection it reconnects once, then logs the message as lost
//! (the sender's own replica has delivered it locally already).

use super::pg;
use super::tls::Tls;
use crate::store::bus::BUS_CAPACITY;
use crate::store::{BusMessage, EventBus, Result, StoreError};
use base64::Engine as _;
use postgres::fallible_iterator::FallibleIterator as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast;

/// The `LISTEN` channel.
pub const CHANNEL: &str = "contactbridge_bus";
/// The largest payload sent inside the notification (base64 of it plus origin and topic stay under 8000 bytes).
pub const INLINE_MAX: usize = 5_600;
/// Messages waiting for the publisher thread before `publish` refuses more.
const OUTGOING_MAX: usize = 4_096;

/// The application name the bus's connections show in `pg_stat_activity`.
pub const APPLICATION: &str = "contactbridge-bus";

/// Where the bus connects: the store's URL and TLS set-up.
#[derive(Clone)]
pub(crate) struct Server {
    pub url: String,
    pub tls: Tls,
}

impl Server {
    fn connect(&self) -> std::result::Result<postgres::Client, postgres::Error> {
        let mut config: postgres::Config = self.url.parse()?;
        config.application_name(APPLICATION);
        config.connect(self.tls.clone())
    }
}

/// The bus on PostgreSQL.
pub struct PgBus {
    origin: String,
    server: Server,
    /// To the publisher thread (one, so messages go out in order).
    outgoing: std::sync::mpsc::SyncSender<(String, Vec<u8>)>,
    tx: broadcast::Sender<Arc<BusMessage>>,
    stop: Arc<AtomicBool>,
    /// Bumped by the listener each time it (re)starts listening (tests wait on it).
    listening: Arc<std::sync::atomic::AtomicU64>,
    /// Whether the listener is listening now (false from the moment it finds its connection dropped).
    connected: Arc<AtomicBool>,
}

impl Drop for PgBus {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl PgBus {
    /// Connects to the database of `url` (migrated by [`super::PgStore::open`]:
    /// the `bus_payloads` table) and starts the listener and publisher threads.
    /// TLS as the URL's `sslmode` says, verified against the public web roots
    /// ([`super::PgStore`]'s bus uses the store's own TLS set-up).
    pub fn connect(url: &str, origin: impl Into<String>) -> Result<Self> {
        Self::open(Server { url: url.to_string(), tls: super::tls::connector(None)? }, origin.into())
    }

    pub(crate) fn open(server: Server, origin: String) -> Result<Self> {
        if origin.contains('\n') {
            return Err(StoreError::Invalid("a replica id cannot contain a line break".into()));
        }
        let publisher = super::off_runtime(|| server.connect()).map_err(|e| pg("connecting the bus", e))?;
        let (outgoing, queue) = std::sync::mpsc::sync_channel::<(String, Vec<u8>)>(OUTGOING_MAX);
        {
            let (origin, server) = (origin.clone(), server.clone());
            std::thread::Builder::new()
                .name("bus-publish".into())
                .spawn(move || {
                    let mut client = Some(publisher);
                    for (topic, payload) in queue {
                        if let Err(e) = publish_one(&mut client, &server, &origin, &topic, &payload) {
                            tracing::warn!(error = %e, topic, "a message for the other replicas was not published");
                        }
                    }
                })
                .map_err(|e| StoreError::Backend { doing: "starting the bus publisher", cause: Box::new(e) })?;
        }
        let bus = Self {
            origin,
            server,
            outgoing,
            tx: broadcast::channel(BUS_CAPACITY).0,
            stop: Arc::default(),
            listening: Arc::default(),
            connected: Arc::default(),
        };
        let (server, tx, stop) = (bus.server.clone(), bus.tx.clone(), bus.stop.clone());
        let (listening, connected) = (bus.listening.clone(), bus.connected.clone());
        let first = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
        let signal = first.clone();
        std::thread::Builder::new()
            .name("bus-listen".into())
            .spawn(move || listen(&server, &tx, &stop, (&listening, &connected), &signal))
            .map_err(|e| StoreError::Backend { doing: "starting the bus listener", cause: Box::new(e) })?;
        // Wait (a little) until listening, so what is published after connect() returns is heard.
        let (lock, ready) = &*first;
        let guard = lock.lock().expect("bus start lock");
        let _ = ready.wait_timeout_while(guard, Duration::from_secs(10), |started| !*started);
        Ok(bus)
    }

    /// How many times the listener has (re)started listening.
    pub fn listen_generation(&self) -> u64 {
        self.listening.load(Ordering::Relaxed)
    }
}

/// Publishes one message, reconnecting once after a dropped connection.
fn publish_one(
    client: &mut Option<postgres::Client>,
    server: &Server,
    origin: &str,
    topic: &str,
    payload: &[u8],
) -> Result<()> {
    for attempt in 0..2 {
        if client.as_ref().is_none_or(|c| c.is_closed()) {
            *client = Some(server.connect().map_err(|e| pg("reconnecting the bus", e))?);
        }
        let c = client.as_mut().expect("connected above");
        match notify(c, origin, topic, payload) {
            Err(e) if attempt == 0 && c.is_closed() => {
                tracing::warn!(error = %e, "the bus connection dropped; reconnecting");
                *client = None;
            }
            other => return other,
        }
    }
    unreachable!("the second attempt returns")
}

/// The text of a notification carrying a small payload (at most [`INLINE_MAX`] bytes) inline,
/// for `pg_notify(CHANNEL, text)` in a writer's own transaction.
pub(crate) fn inline_text(origin: &str, topic: &str, payload: &[u8]) -> String {
    debug_assert!(payload.len() <= INLINE_MAX);
    format!("{origin}\n{topic}\n{}", base64::engine::general_purpose::STANDARD.encode(payload))
}

fn notify(client: &mut postgres::Client, origin: &str, topic: &str, payload: &[u8]) -> Result<()> {
    if payload.len() <= INLINE_MAX {
        let text = inline_text(origin, topic, payload);
        client.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &text]).map_err(|e| pg("publishing on the bus", e))?;
        return Ok(());
    }
    let mut tx = client.transaction().map_err(|e| pg("publishing on the bus", e))?;
    tx.execute("DELETE FROM bus_payloads WHERE at < now() - interval '1 minute'", &[])
        .map_err(|e| pg("removing old bus payloads", e))?;
    let id: i64 = tx
        .query_one("INSERT INTO bus_payloads (payload) VALUES ($1) RETURNING id", &[&payload])
        .map_err(|e| pg("publishing a large payload on the bus", e))?
        .get(0);
    let text = format!("{origin}\n{topic}\n@{id}");
    tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &text]).map_err(|e| pg("publishing on the bus", e))?;
    tx.commit().map_err(|e| pg("publishing on the bus", e))
}

impl EventBus for PgBus {
    fn origin(&self) -> &str {
        &self.origin
    }

    fn publish(&self, topic: &str, payload: &[u8]) -> Result<()> {
        if topic.contains('\n') {
            return Err(StoreError::Invalid("a bus topic cannot contain a line break".into()));
        }
        // Handed to the publisher thread: the caller (a request handler) never waits on the server.
        self.outgoing.try_send((topic.to_string(), payload.to_vec())).map_err(|e| match e {
            std::sync::mpsc::TrySendError::Full(_) => StoreError::Backend {
                doing: "publishing on the bus",
                cause: "the publish queue is full (the database is not keeping up)".into(),
            },
            std::sync::mpsc::TrySendError::Disconnected(_) => {
                StoreError::Backend { doing: "publishing on the bus", cause: "the publisher thread has stopped".into() }
            }
        })
    }

    fn subscribe(&self) -> broadcast::Receiver<Arc<BusMessage>> {
        self.tx.subscribe()
    }

    fn epoch(&self) -> Option<u64> {
        let generation = self.listening.load(Ordering::SeqCst);
        let connected = self.connected.load(Ordering::SeqCst);
        (connected && self.listening.load(Ordering::SeqCst) == generation).then_some(generation)
    }
}

/// The listener thread: listens, reconnecting after a drop, until `stop`.
fn listen(
    server: &Server,
    tx: &broadcast::Sender<Arc<BusMessage>>,
    stop: &AtomicBool,
    (listening, connected): (&std::sync::atomic::AtomicU64, &AtomicBool),
    first: &(Mutex<bool>, std::sync::Condvar),
) {
    let mut backoff = Duration::from_millis(100);
    while !stop.load(Ordering::Relaxed) {
        let client = server.connect().and_then(|mut c| c.batch_execute(&format!("LISTEN {CHANNEL}")).map(|_| c));
        let mut client = match client {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, retry_ms = backoff.as_millis() as u64, "the bus listener cannot connect; what is published meanwhile does not reach this replica");
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        // Connected first, then the new generation: a reader that sees the new number sees it listening.
        connected.store(true, Ordering::SeqCst);
        if listening.fetch_add(1, Ordering::SeqCst) > 0 {
            tracing::info!("the bus listener is listening again");
        }
        backoff = Duration::from_millis(100);
        {
            let (lock, ready) = first;
            *lock.lock().expect("bus start lock") = true;
            ready.notify_all();
        }
        let received = receive(&mut client, tx, stop);
        connected.store(false, Ordering::SeqCst);
        if let Err(e) = received {
            tracing::warn!(error = %e, "the bus listener's connection dropped; reconnecting (messages published until then are lost for this replica)");
        }
    }
}

/// Receives until the connection fails or `stop`: each notification is
/// passed on as it arrives; every quarter second without one, `stop` is
/// checked and the connection is probed.
fn receive(client: &mut postgres::Client, tx: &broadcast::Sender<Arc<BusMessage>>, stop: &AtomicBool) -> Result<()> {
    while !stop.load(Ordering::Relaxed) {
        let next = client
            .notifications()
            .timeout_iter(Duration::from_millis(250))
            .next()
            .map_err(|e| pg("listening on the bus", e))?;
        let Some(n) = next else {
            // Quiet: a dropped connection shows only when something is sent on it.
            client.simple_query("").map_err(|e| pg("checking the bus connection", e))?;
            continue;
        };
        match decode(client, n.payload()) {
            Ok(Some(m)) => {
                let _ = tx.send(Arc::new(m));
            }
            Ok(None) => tracing::warn!("an undecodable bus notification was dropped"),
            Err(e) => tracing::warn!(error = %e, "a bus payload could not be read"),
        }
    }
    Ok(())
}

fn decode(client: &mut postgres::Client, text: &str) -> Result<Option<BusMessage>> {
    let mut parts = text.splitn(3, '\n');
    let (Some(origin), Some(topic), Some(body)) = (parts.next(), parts.next(), parts.next()) else { return Ok(None) };
    let payload = match body.strip_prefix('@') {
        Some(id) => {
            let Ok(id) = id.parse::<i64>() else { return Ok(None) };
            match client
                .query_opt("SELECT payload FROM bus_payloads WHERE id = $1", &[&id])
                .map_err(|e| pg("reading a bus payload", e))?
            {
                Some(row) => row.get(0),
                None => return Ok(None),
            }
        }
        None => match base64::engine::general_purpose::STANDARD.decode(body) {
            Ok(p) => p,
            Err(_) => return Ok(None),
        },
    };
    Ok(Some(BusMessage { origin: origin.into(), topic: topic.into(), payload }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::postgres::lease::tests::test_store;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_postgres_bus_passes_the_bus_conformance_with_a_payload_past_notifys_limit() {
        let (db, _store) = test_store();
        let url = db.url.clone();
        let (a, b) = (PgBus::connect(&url, "replica-a").unwrap(), PgBus::connect(&url, "replica-b").unwrap());
        crate::store::bus::conformance(&a, &b, 100_000).await;
        crate::store::bus::conformance(&b, &a, INLINE_MAX).await;
        crate::store::bus::conformance(&b, &a, INLINE_MAX + 1).await;
    }

    /// The listener's connection is killed by the server: it reconnects, and
    /// what is published after it listens again arrives.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dropped_listening_connection_reconnects() {
        let (db, _store) = test_store();
        let url = db.url.clone();
        let (a, b) = (PgBus::connect(&url, "replica-a").unwrap(), PgBus::connect(&url, "replica-b").unwrap());
        let mut on_b = b.subscribe();
        let before = b.listen_generation();
        let killed = crate::store::postgres::off_runtime(|| {
            let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
            admin
                .execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()",
                    &[&APPLICATION],
                )
                .unwrap()
        });
        assert!(killed >= 2, "the bus connections were not found ({killed})");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while b.listen_generation() == before {
            assert!(std::time::Instant::now() < deadline, "the listener did not reconnect");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        a.publish("t", b"after").unwrap(); // the publisher reconnects too
        let m = tokio::time::timeout(Duration::from_secs(10), on_b.recv()).await.expect("delivered").unwrap();
        assert_eq!(m.payload, b"after");
    }
}
