//! Wiring and lifecycle: load the manifests, publish the first table, open the listeners,
//! follow file changes, and drain on shutdown.

use crate::config::{Config, LogFormat};
use crate::model::{Diagnostic, build};
use crate::proxy::{Proxy, handler::Listener, server};
use crate::source::files::{self, ManifestDir};
use crate::state::Shared;
use anyhow::Context;
use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Quiet time after a file event before reloading, so one editor save is one rebuild.
const DEBOUNCE: Duration = Duration::from_millis(100);

/// Logs to stderr as text or JSON, filtered by `level` (a level or tracing directives).
pub fn init_logging(format: LogFormat, level: &str) -> Result<(), String> {
    let filter = tracing_subscriber::EnvFilter::try_new(level).map_err(|e| e.to_string())?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    result.map_err(|e| e.to_string())
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Runs the controller in file mode until `shutdown` resolves, then drains.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let shared = Arc::new(Shared::default());
    // Watch before the first read, so a change made while reading is not missed.
    let (_watcher, mut changes) =
        files::watch(&config.manifests).context("watching --manifests")?;
    let mut manifests = ManifestDir::default();
    let mut known = BTreeSet::new();
    reload(&config, &mut manifests, &shared, &mut known)
        .with_context(|| format!("reading --manifests {}", config.manifests.display()))?;

    let http = bind(config.http_addr, "http").await?;
    let admin = bind(config.admin_addr, "admin").await?;
    let http_port = http.local_addr()?.port();

    let watch_task = {
        let shared = shared.clone();
        let config = config.clone();
        tokio::spawn(async move {
            while changes.recv().await.is_some() {
                tokio::time::sleep(DEBOUNCE).await;
                while changes.try_recv().is_ok() {}
                if let Err(e) = reload(&config, &mut manifests, &shared, &mut known) {
                    tracing::error!(error = %e, "cannot read --manifests; the last table keeps serving");
                }
            }
        })
    };
    let admin_task = tokio::spawn(crate::admin::serve(admin, shared.clone()));

    let (stop_tx, stop_rx) = watch::channel(false);
    let proxy = Arc::new(Proxy::new(shared.clone(), config.upstream));
    let listener = Listener {
        proto: "http",
        port: http_port,
    };
    let http_task = tokio::spawn(server::serve(
        http,
        proxy,
        listener,
        stop_rx,
        config.shutdown_grace,
    ));

    shutdown.await;
    tracing::info!(grace = ?config.shutdown_grace, "shutting down: no longer ready, draining connections");
    shared.start_draining();
    let _ = stop_tx.send(true);
    let _ = http_task.await;
    watch_task.abort();
    admin_task.abort();
    tracing::info!("stopped");
    Ok(())
}

async fn bind(addr: std::net::SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the {what} listener to {addr}"))?;
    let local = listener.local_addr()?;
    tracing::info!(listener = what, addr = %local, "listening");
    Ok(listener)
}

/// Reads the manifests again, builds, publishes, and logs what changed in the diagnostics.
fn reload(
    config: &Config,
    manifests: &mut ManifestDir,
    shared: &Shared,
    known: &mut BTreeSet<Diagnostic>,
) -> std::io::Result<()> {
    let started = Instant::now();
    let outcome = manifests.reload(&config.manifests)?;
    for e in &outcome.errors {
        tracing::error!(file = %e.file.display(), line = e.line, reason = %e.reason, "manifest does not parse");
    }
    for f in &outcome.kept_last_good {
        tracing::warn!(file = %f.display(), "keeping the last good objects of this file");
    }
    let snapshot = manifests.snapshot();
    let built = build(&snapshot, &config.options);
    let now: BTreeSet<Diagnostic> = built.diagnostics.iter().cloned().collect();
    let origins = manifests.origins();
    for d in now.difference(known) {
        let file = origins
            .get(&d.object)
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        tracing::warn!(object = %d.object, field = %d.field, reason = %d.reason, file, "diagnostic");
    }
    for d in known.difference(&now) {
        tracing::info!(object = %d.object, field = %d.field, "diagnostic resolved");
    }
    *known = now;
    let routes = built.table.routes().len();
    let generation = shared.publish(built);
    tracing::info!(
        generation,
        objects = snapshot.len(),
        routes,
        diagnostics = known.len(),
        took_ms = started.elapsed().as_secs_f64() * 1000.0,
        source = %config.manifests.display(),
        "published routing table"
    );
    Ok(())
}
