//! `serve` and `demo`.

use anyhow::Context as _;
use contactbridge::api::auth::{self, Scope};
use contactbridge::api::{ServerOptions, TlsFiles};
use contactbridge::config::{Config, MetricsListen};
use contactbridge::live::CallHub;
use contactbridge::store::Store;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(clap::Args)]
pub struct Args {
    /// Load the demo user and data (examples/demo) before serving, so lookups work at once.
    #[arg(long)]
    demo: bool,
    /// The demo folder (default: share/contactbridge/demo beside an installed binary, else examples/demo of the source tree).
    #[arg(long, requires = "demo")]
    demo_dir: Option<PathBuf>,
    /// Where Prometheus metrics are served (`GET /metrics`); `off` disables them
    /// [default: `[metrics] listen`, 127.0.0.1:9464].
    #[arg(long)]
    metrics_listen: Option<MetricsListen>,
    /// TLS for the gRPC port: the server certificate chain (PEM). Needs --tls-key.
    /// The flags replace `[grpc] tls_cert`, `tls_key`, `tls_client_ca` of the configuration.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The server's private key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Mutual TLS: accept only clients with a certificate signed by this CA (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_client_ca: Option<PathBuf>,
}

/// The demo's API keys (tenant `demo`), documented in the README. Created only by `serve --demo`.
pub const DEMO_TSPS_KEY: &str = "demo-tsps-key";
pub const DEMO_ADMIN_KEY: &str = "demo-admin-key";

#[derive(clap::Args)]
pub struct DemoArgs {
    /// The demo folder (default: share/contactbridge/demo beside an installed binary, else examples/demo of the source tree).
    #[arg(long)]
    #[arg(value_parser = super::session::path_arg)]
    demo_dir: Option<PathBuf>,
}

pub async fn demo(config: Config, args: DemoArgs) -> anyhow::Result<()> {
    let store = super::open(&config)?;
    load_demo(store.as_ref(), args.demo_dir).await
}

async fn load_demo(store: &dyn Store, dir: Option<PathBuf>) -> anyhow::Result<()> {
    let dir = dir.unwrap_or_else(contactbridge::demo::default_dir);
    let s = contactbridge::demo::load(store, &dir, chrono::Utc::now()).await?;
    outln!(
        "demo: user {:?} ({}) answers on {}; {} records loaded, {} rejected (from {})",
        s.profile.id.as_str(),
        s.profile.display_name,
        s.profile.called_numbers.join(", "),
        s.records,
        s.rejected,
        dir.display()
    );
    Ok(())
}

pub async fn run(config: Config, args: Args) -> anyhow::Result<()> {
    let store = super::open(&config)?;
    // The CLI of the same user (or root) runs its commands here while the store is ours.
    let admin = match super::admin_socket::Listener::bind(&config.data_dir) {
        Ok(l) => Some(l),
        Err(e) => {
            tracing::error!(error = %e, dir = %config.data_dir.display(),
                "no admin socket: the CLI cannot reach this server (its commands then report the store in use)");
            None
        }
    };
    if args.demo {
        load_demo(store.as_ref(), args.demo_dir).await?;
        auth::put_fixed_key(store.as_ref(), DEMO_TSPS_KEY, "demo", Scope::Tsps, "demo (serve --demo)")?;
        auth::put_fixed_key(store.as_ref(), DEMO_ADMIN_KEY, "demo", Scope::Admin, "demo (serve --demo)")?;
        outln!("demo: API keys {DEMO_TSPS_KEY:?} (scope tsps) and {DEMO_ADMIN_KEY:?} (scope admin), tenant \"demo\"");
    }
    let listener = tokio::net::TcpListener::bind(config.grpc.listen)
        .await
        .with_context(|| format!("listening for gRPC on {}", config.grpc.listen))?;
    let metrics = match args.metrics_listen.unwrap_or(config.metrics.listen).0 {
        Some(a) => {
            Some(tokio::net::TcpListener::bind(a).await.with_context(|| format!("listening for metrics on {a}"))?)
        }
        None => None,
    };
    let web_listener = tokio::net::TcpListener::bind(config.web.listen)
        .await
        .with_context(|| format!("listening for the notification window on {}", config.web.listen))?;
    let grpc_tls = match args.tls_cert.zip(args.tls_key) {
        Some((cert, key)) => Some(TlsFiles { cert, key, client_ca: args.tls_client_ca }),
        None => config.grpc.tls().map_err(anyhow::Error::msg)?.map(|(cert, key)| TlsFiles {
            cert: cert.into(),
            key: key.into(),
            client_ca: config.grpc.tls_client_ca.clone(),
        }),
    };
    // Several replicas on one database: leases for the syncs, a bus for live events.
    let replica = contactbridge::sync::lease::Leasing::replica_id();
    let replication = store.replication(&replica).context("connecting to the other replicas")?;
    // Lookups from a hot standby, if configured (src/store/split.rs), through a cache of profiles,
    // called numbers and assignments the bus keeps current when the store is remote (src/store/cache.rs).
    let lookup_store: Arc<dyn contactbridge::store::Store> = contactbridge::store::cache::for_lookups(
        store.lookup_view().unwrap_or_else(|| store.clone()),
        replication.as_ref().map(|r| r.bus.clone()),
    );
    let options = ServerOptions {
        tls: grpc_tls,
        connections: config.connections.clone(),
        lookups: Some(contactbridge::api::LookupStore(lookup_store.clone())),
        ..ServerOptions::default()
    };
    let web_tls = match config.web.tls().map_err(anyhow::Error::msg)? {
        Some((cert, key)) => {
            Some(contactbridge::web::tls::server_config(cert, key).context("TLS for the web listener")?)
        }
        None => None,
    };
    let web_base = format!("{}://{}", if web_tls.is_some() { "https" } else { "http" }, web_listener.local_addr()?);
    outln!("gRPC on {}{}", listener.local_addr()?, if options.tls.is_some() { " (TLS)" } else { "" });
    outln!("notification window on {web_base}");
    let hub = match &replication {
        Some(r) => CallHub::with_bus(store.clone(), r.bus.clone()),
        None => CallHub::new(store.clone()),
    };
    let mut web_state =
        contactbridge::web::WebState::new(store.clone(), store.clone(), hub.clone()).with_accounts(store.clone());
    if replication.is_some() {
        tracing::info!(replica = %replica, "serving as one of several replicas on the shared store");
    }
    if let Some(tls) = web_tls {
        web_state = web_state.with_tls(tls);
    }
    // Syncs run apart from the runtime serving lookups (src/sync/runtime.rs).
    let sync_runtime = contactbridge::sync::SyncRuntime::new().context("starting the sync runtime")?;
    let mut registry = contactbridge::accounts::Registry::open(store.clone(), &config)?
        .with_sync_runtime(sync_runtime.handle().clone());
    let leasing = replication.as_ref().map(|r| contactbridge::sync::lease::Leasing {
        store: r.leases.clone(),
        holder: replica.clone(),
        ttl: config.sync.lease_ttl(),
    });
    if let Some(l) = &leasing {
        registry = registry.with_leasing(l.clone());
    }
    let registry = Arc::new(registry);
    let options = ServerOptions {
        accounts: Some(registry.clone()),
        web_logins: Some(contactbridge::web::auth::WebLogins {
            tokens: store.clone(),
            base_url: web_base,
            sessions: web_state.session_checks(),
        }),
        ..options
    };
    let stop = Arc::new(tokio::sync::watch::channel(false).0);
    let stopped = |stop: &Arc<tokio::sync::watch::Sender<bool>>| {
        let mut rx = stop.subscribe();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let admin = admin.map(|l| {
        tokio::spawn(l.serve(
            store.clone(),
            registry.clone(),
            config.clone(),
            super::dispatch_boxed,
            sync_runtime.handle().clone(),
            stopped(&stop),
        ))
    });
    let mut scheduler = contactbridge::sync::scheduler::Scheduler::new(
        registry.clone(),
        Arc::new(contactbridge::sync::scheduler::SystemClock),
        contactbridge::sync::scheduler::SchedulerOptions {
            max_concurrent: config.sync.max_concurrent,
            ..Default::default()
        },
    );
    if let Some(l) = leasing {
        scheduler = scheduler.with_leasing(l);
    }
    let scheduler = scheduler.spawn_on(sync_runtime.handle());
    // Damage found in the index while serving: rebuild it now, not at the next cron time.
    let rebuild = tokio::spawn(contactbridge::sync::scheduler::rebuild_index_on_damage(
        store.clone(),
        scheduler.scheduler().clone(),
    ));
    tracing::info!(data_dir = %config.data_dir.display(), "contactbridge is running; Ctrl-C stops it");
    // One stop for all three: the signal, or the gRPC server failing. From
    // then on each part has the shutdown grace (config `connections`).
    let grace = config.connections.shutdown_grace();
    // Graph change notifications (web.public_url): subscriptions kept by the notifier,
    // notifications received by the web server, syncs run by the scheduler.
    let notifier = match config.web.public_url().map_err(anyhow::Error::msg)? {
        Some(public_url) => {
            use contactbridge::sync::notifications::{Action, Subscriptions};
            let changes_url = contactbridge::sync::notifications::changes_url(&public_url);
            let subscriptions = Arc::new(Subscriptions::shared(store.clone(), &changes_url));
            let (wake, woken) = tokio::sync::mpsc::channel(64);
            let sched = scheduler.scheduler().clone();
            let on_action = Arc::new(move |action: Action| match &action {
                Action::Sync(w) => sched.sync_soon(&w.account),
                Action::Renew(_, w) | Action::Recreate(_, w) => {
                    sched.sync_soon(&w.account);
                    if wake.try_send(Some(action.clone())).is_err() {
                        tracing::warn!("lifecycle notification queue full; the next check renews");
                    }
                }
            });
            web_state = web_state
                .with_notifications(contactbridge::web::notifications::Receiver::new(subscriptions.clone(), on_action));
            outln!("Graph change notifications to {public_url}");
            let notifier =
                Arc::new(contactbridge::accounts::notify::Notifier::new(registry.clone(), subscriptions, &public_url));
            Some(tokio::spawn(notifier.run(woken, stopped(&stop))))
        }
        None => None,
    };
    tokio::spawn({
        let stop = stop.clone();
        async move {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
            match term.as_mut() {
                Ok(t) => tokio::select! { _ = tokio::signal::ctrl_c() => {}, _ = t.recv() => {} },
                Err(_) => drop(tokio::signal::ctrl_c().await),
            }
            tracing::info!(grace_secs = grace.as_secs(), "stopping");
            stop.send_replace(true);
        }
    });
    let lookup = match config.lookup.listen {
        Some(addr) => {
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("listening for the HTTP lookup on {addr}"))?;
            outln!("HTTP lookup on http://{}/lookup/v1/", l.local_addr()?);
            Some(tokio::spawn(contactbridge::http_lookup::serve(
                contactbridge::http_lookup::LookupState::new(lookup_store.clone(), store.clone(), hub.clone()),
                l,
                stopped(&stop),
            )))
        }
        None => None,
    };
    let ldap = match config.ldap.listen {
        Some(addr) => {
            let mut state =
                contactbridge::ldap::LdapState::new(lookup_store.clone(), store.clone(), config.ldap.size_limit);
            if let (Some(cert), Some(key)) = (&config.ldap.tls_cert, &config.ldap.tls_key) {
                state = state.with_tls(cert, key)?;
            }
            let l =
                tokio::net::TcpListener::bind(addr).await.with_context(|| format!("listening for LDAP on {addr}"))?;
            outln!(
                "LDAP directory on ldap://{}{}",
                l.local_addr()?,
                if config.ldap.tls_cert.is_some() { " (StartTLS)" } else { "" }
            );
            Some(tokio::spawn(contactbridge::ldap::serve(state, l, stopped(&stop))))
        }
        None => None,
    };
    let grpc_served = contactbridge::api::serve(
        store.clone(),
        store.clone(),
        hub.clone(),
        listener,
        metrics,
        options,
        stopped(&stop),
    );
    let grpc = async {
        let served = grpc_served.await;
        stop.send_replace(true);
        served
    };
    let web = contactbridge::web::serve(web_state, web_listener, stopped(&stop), grace);
    // Running syncs get the same grace to commit their current change set; then they are dropped between two.
    let syncs = {
        let stopping = stopped(&stop);
        async move {
            stopping.await;
            rebuild.abort();
            if let Some(n) = notifier {
                n.abort();
            }
            scheduler.shutdown(grace).await;
        }
    };
    let (served, web_served, ()) = tokio::join!(grpc, web, syncs);
    // The lookup and the directory get the same grace; past it their tasks are dropped.
    if let Some(ended) = ended_within("HTTP lookup", lookup, grace).await {
        ended.context("the HTTP lookup failed")?;
    }
    ended_within("LDAP", ldap, grace).await;
    ended_within("admin socket", admin, grace).await;
    // A commit that is running when the syncs are dropped completes before the store is flushed.
    sync_runtime.close().await;
    served?;
    web_served.context("the web server failed")?;
    store.flush()?;
    Ok(())
}

/// Waits for a server's task at most `grace`; past it the task is dropped.
async fn ended_within<T>(
    name: &str,
    task: Option<tokio::task::JoinHandle<T>>,
    grace: std::time::Duration,
) -> Option<T> {
    let mut task = task?;
    match tokio::time::timeout(grace, &mut task).await {
        Ok(Ok(value)) => Some(value),
        Ok(Err(e)) => {
            tracing::error!(server = name, error = %e, "the server's task failed");
            None
        }
        Err(_) => {
            tracing::warn!(server = name, "still open after the shutdown grace: cut");
            task.abort();
            None
        }
    }
}
