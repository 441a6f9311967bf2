//! `serve` and `demo`.

use anyhow::Context as _;
use contactbridge::api::auth::{self, Scope};
use contactbridge::api::{ServerOptions, TlsFiles};
use contactbridge::config::Config;
use contactbridge::live::CallHub;
use contactbridge::store::Store;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(clap::Args)]
pub struct Args {
    /// Load the demo user and data (examples/demo) before serving, so lookups work at once.
    #[arg(long)]
    demo: bool,
    /// The demo folder (default: examples/demo of this source tree).
    #[arg(long, requires = "demo")]
    demo_dir: Option<PathBuf>,
    /// Where Prometheus metrics are served (`GET /metrics`); `off` disables them.
    #[arg(long, default_value = "127.0.0.1:9464", value_parser = parse_metrics_listen)]
    metrics_listen: MetricsListen,
    /// TLS for the gRPC port: the server certificate chain (PEM). Needs --tls-key.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The server's private key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Mutual TLS: accept only clients with a certificate signed by this CA (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_client_ca: Option<PathBuf>,
}

#[derive(Clone, Copy)]
struct MetricsListen(Option<SocketAddr>);

fn parse_metrics_listen(s: &str) -> Result<MetricsListen, String> {
    if s.eq_ignore_ascii_case("off") {
        return Ok(MetricsListen(None));
    }
    s.parse().map(|a| MetricsListen(Some(a))).map_err(|e| format!("{s:?} is not host:port or off: {e}"))
}

/// The demo's API keys (tenant `demo`), documented in the README. Created only by `serve --demo`.
pub const DEMO_TSPS_KEY: &str = "demo-tsps-key";
pub const DEMO_ADMIN_KEY: &str = "demo-admin-key";

#[derive(clap::Args)]
pub struct DemoArgs {
    /// The demo folder (default: examples/demo of this source tree).
    #[arg(long)]
    demo_dir: Option<PathBuf>,
}

pub async fn demo(config: Config, args: DemoArgs) -> anyhow::Result<()> {
    let store = super::open(&config)?;
    load_demo(&store, args.demo_dir).await
}

async fn load_demo(store: &dyn Store, dir: Option<PathBuf>) -> anyhow::Result<()> {
    let dir = dir.unwrap_or_else(contactbridge::demo::default_dir);
    let s = contactbridge::demo::load(store, &dir, chrono::Utc::now()).await?;
    println!(
        "demo: user {:?} ({}) answers on {}; {} records loaded, {} rejected",
        s.profile.id.as_str(),
        s.profile.display_name,
        s.profile.called_numbers.join(", "),
        s.records,
        s.rejected
    );
    Ok(())
}

pub async fn run(config: Config, args: Args) -> anyhow::Result<()> {
    let store = Arc::new(super::open(&config)?);
    if args.demo {
        load_demo(store.as_ref(), args.demo_dir).await?;
        auth::put_fixed_key(store.as_ref(), DEMO_TSPS_KEY, "demo", Scope::Tsps, "demo (serve --demo)")?;
        auth::put_fixed_key(store.as_ref(), DEMO_ADMIN_KEY, "demo", Scope::Admin, "demo (serve --demo)")?;
        println!("demo: API keys {DEMO_TSPS_KEY:?} (scope tsps) and {DEMO_ADMIN_KEY:?} (scope admin), tenant \"demo\"");
    }
    let listener = tokio::net::TcpListener::bind(config.grpc.listen)
        .await
        .with_context(|| format!("listening for gRPC on {}", config.grpc.listen))?;
    let metrics = match args.metrics_listen.0 {
        Some(a) => {
            Some(tokio::net::TcpListener::bind(a).await.with_context(|| format!("listening for metrics on {a}"))?)
        }
        None => None,
    };
    let web_listener = tokio::net::TcpListener::bind(config.web.listen)
        .await
        .with_context(|| format!("listening for the notification window on {}", config.web.listen))?;
    let options = ServerOptions {
        tls: args.tls_cert.zip(args.tls_key).map(|(cert, key)| TlsFiles { cert, key, client_ca: args.tls_client_ca }),
        ..ServerOptions::default()
    };
    println!("gRPC on {}{}", listener.local_addr()?, if options.tls.is_some() { " (TLS)" } else { "" });
    println!("notification window on http://{}", web_listener.local_addr()?);
    let hub = CallHub::new(store.clone());
    let registry = Arc::new(contactbridge::accounts::Registry::open(store.clone(), &config)?);
    let options = ServerOptions {
        accounts: Some(registry.clone()),
        web_logins: Some(contactbridge::web::auth::WebLogins {
            tokens: store.clone(),
            base_url: format!("http://{}", web_listener.local_addr()?),
        }),
        ..options
    };
    let scheduler = contactbridge::sync::scheduler::Scheduler::new(
        registry,
        Arc::new(contactbridge::sync::scheduler::SystemClock),
        contactbridge::sync::scheduler::SchedulerOptions {
            max_concurrent: config.sync.max_concurrent,
            ..Default::default()
        },
    )
    .spawn();
    tracing::info!(data_dir = %config.data_dir.display(), "contactbridge is running; Ctrl-C stops it");
    let shutdown = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
        match term.as_mut() {
            Ok(t) => tokio::select! { _ = tokio::signal::ctrl_c() => {}, _ = t.recv() => {} },
            Err(_) => drop(tokio::signal::ctrl_c().await),
        }
        tracing::info!("stopping");
    };
    // The web server stops with the gRPC server (and also if that one fails).
    let stop_web = Arc::new(tokio::sync::watch::channel(false).0);
    let shutdown = {
        let stop_web = stop_web.clone();
        async move {
            shutdown.await;
            stop_web.send_replace(true);
        }
    };
    let mut web_stopping = stop_web.subscribe();
    let web = tokio::spawn(contactbridge::web::serve(
        contactbridge::web::WebState::new(store.clone(), store.clone(), hub.clone()),
        web_listener,
        async move {
            let _ = web_stopping.wait_for(|s| *s).await;
        },
    ));
    let mut lookup_stopping = stop_web.subscribe();
    let lookup = match config.lookup.listen {
        Some(addr) => {
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("listening for the HTTP lookup on {addr}"))?;
            println!("HTTP lookup on http://{}/lookup/v1/", l.local_addr()?);
            Some(tokio::spawn(contactbridge::http_lookup::serve(
                contactbridge::http_lookup::LookupState::new(store.clone(), store.clone(), hub.clone()),
                l,
                async move {
                    let _ = lookup_stopping.wait_for(|s| *s).await;
                },
            )))
        }
        None => None,
    };
    let mut ldap_stopping = stop_web.subscribe();
    let ldap = match config.ldap.listen {
        Some(addr) => {
            let mut state = contactbridge::ldap::LdapState::new(store.clone(), store.clone(), config.ldap.size_limit);
            if let (Some(cert), Some(key)) = (&config.ldap.tls_cert, &config.ldap.tls_key) {
                state = state.with_tls(cert, key)?;
            }
            let l =
                tokio::net::TcpListener::bind(addr).await.with_context(|| format!("listening for LDAP on {addr}"))?;
            println!(
                "LDAP directory on ldap://{}{}",
                l.local_addr()?,
                if config.ldap.tls_cert.is_some() { " (StartTLS)" } else { "" }
            );
            Some(tokio::spawn(contactbridge::ldap::serve(state, l, async move {
                let _ = ldap_stopping.wait_for(|s| *s).await;
            })))
        }
        None => None,
    };
    let served =
        contactbridge::api::serve(store.clone(), store.clone(), hub, listener, metrics, options, shutdown).await;
    stop_web.send_replace(true);
    let web_served = web.await;
    if let Some(l) = ldap {
        l.await.context("the LDAP task failed")?;
    }
    if let Some(l) = lookup {
        l.await.context("the HTTP lookup task failed")?.context("the HTTP lookup failed")?;
    }
    // Running syncs get 30 s to commit their current change set; then they are dropped between two.
    scheduler.shutdown(std::time::Duration::from_secs(30)).await;
    served?;
    web_served.context("the web server task failed")?.context("the web server failed")?;
    store.flush()?;
    Ok(())
}
