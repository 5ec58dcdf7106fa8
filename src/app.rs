//! Wiring and lifecycle: load the manifests, publish the first table, open the listeners,
//! follow file changes, and drain on shutdown.

use crate::config::Config;
use crate::metrics::{Metrics, ResultLabels};
use crate::model::incremental::{Change, Model, Rebuilt};
use crate::model::{Diagnostic, ObjectRef, Snapshot, tls_material};
use crate::proxy::handler::Settings;
use crate::proxy::observe::{AccessLog, Observers};
use crate::proxy::server::{Limits, Listener};
use crate::proxy::{Proxy, server};
use crate::source::files::{self, ManifestDir, ParseError};
use crate::state::Shared;
use crate::tls::certs::{self, CertCache, CertEntry};
use anyhow::Context;
use rustls::crypto::CryptoProvider;
use std::collections::BTreeSet;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;

/// Resolves on SIGTERM or SIGINT. The handlers are installed when this is called (inside the
/// runtime), not when it is first awaited, so a SIGTERM that arrives while the controller is
/// still starting is a drain too, not the default action's kill.
pub fn shutdown_signal() -> impl Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate()).ok();
        let int = signal(SignalKind::interrupt()).ok();
        async move {
            let wait = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = wait(term) => {}
                _ = wait(int) => {}
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Runs the controller (file mode with `--manifests`, else cluster mode) until `shutdown`
/// resolves, then drains.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let shared = Arc::new(Shared::default());
    let metrics = Arc::new(Metrics::new());
    let mut reloader = Reloader::new(config.clone(), metrics.clone())?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut status_task = None;
    let source_task = match config.manifests.clone() {
        Some(dir) => {
            // Long enough that a writer descheduled between truncating and writing a file is
            // not taken for one who emptied it.
            let settle = config.debounce.max(Duration::from_millis(250));
            let mut manifests = ManifestDir::settling_for(settle);
            let everything = files::Changed {
                rescan: true,
                ..files::Changed::default()
            };
            // Reading a large tree takes seconds: say so, rather than nothing.
            tracing::info!(dir = %dir.display(), "reading --manifests");
            reloader
                .reload_files(&mut manifests, &dir, &shared, everything)
                .with_context(|| format!("reading --manifests {}", dir.display()))?;
            let shared = shared.clone();
            let debounce = config.debounce;
            tokio::spawn(async move {
                // Watched only now (see `files::watch`); its first wake lists the tree again
                // and reads what changed while it was read (unchanged files are not read
                // twice). Off the way to listening: watching a tree walks it (a second at
                // 300k files), and traffic need not wait for that.
                let (watcher, changes, log) = watch_manifests(&dir).await;
                let _keep_watching = watcher;
                let slice_only = manifests.slice_only_files();
                let pending = log.clone();
                let endpoints_only = move || {
                    pending
                        .lock()
                        .is_ok_and(|c| ManifestDir::slice_files_only(&slice_only, &c))
                };
                let state = (reloader, manifests, dir, shared, log);
                on_changes(changes, debounce, endpoints_only, state, |(reloader, manifests, dir, shared, log)| {
                    let changed = log.lock().map(|mut c| std::mem::take(&mut *c)).unwrap_or_default();
                    match reloader.reload_files(manifests, dir, shared, changed) {
                        Ok(look_again) => look_again,
                        Err(e) => {
                            reloader.metrics.reloads.get_or_create(&ResultLabels { result: "error" }).inc();
                            tracing::error!(error = %e, "cannot read --manifests; the last table keeps serving");
                            None
                        }
                    }
                })
                .await
            })
        }
        None => {
            let client = kube::Client::try_default().await.context(
                "connecting to the Kubernetes API (in-cluster service account, else KUBECONFIG)",
            )?;
            let (stores, mut changes, reflectors) = crate::source::kube::watch(
                client.clone(),
                config.watch_namespace.as_deref(),
                config.options.config_map.as_ref(),
                config.gateway_api,
            );
            tracing::info!(
                namespace = config.watch_namespace.as_deref().unwrap_or("(all)"),
                "listing objects from the Kubernetes API"
            );
            stores.wait_until_ready().await.context("listing objects")?;
            // The listing itself woke the rebuild loop; the first snapshot, taken after this,
            // holds all of it. Later changes wake the loop again.
            while changes.try_recv().is_ok() {}
            if config.publish.is_some() || config.gateway_api {
                let settings = crate::status::Settings {
                    publish: config.publish.clone(),
                    controller_name: config.options.controller_name.clone(),
                    election_id: config.election_id.clone(),
                    namespace: std::env::var("POD_NAMESPACE")
                        .unwrap_or_else(|_| client.default_namespace().to_owned()),
                    identity: std::env::var("POD_NAME").unwrap_or_else(|_| {
                        let host =
                            std::env::var("HOSTNAME").unwrap_or_else(|_| "vestibule".to_owned());
                        format!("{host}-{}", std::process::id())
                    }),
                    lease_duration: Duration::from_secs(15),
                    renew_deadline: Duration::from_secs(10),
                    retry_period: Duration::from_secs(2),
                    update_on_shutdown: config.update_status_on_shutdown,
                };
                let run = crate::status::run(
                    client.clone(),
                    settings,
                    stores.clone(),
                    shared.clone(),
                    stop_rx.clone(),
                );
                status_task = Some(tokio::spawn(run));
            }
            let events = crate::source::kube::EventSink::new(client);
            stores.take_touched();
            let new = reloader.load(&shared, &stores.snapshot());
            events.emit(&|r| reloader.model.object(r), new);
            let shared = shared.clone();
            let debounce = config.debounce;
            tokio::spawn(async move {
                let watching = stores.clone();
                let state = (reloader, stores, events, shared);
                on_changes(
                    changes,
                    debounce,
                    move || watching.only_endpoints_touched(),
                    state,
                    |(reloader, stores, events, shared)| {
                        let touched = stores.take_touched();
                        let new = reloader.follow_cluster(shared, stores, &touched);
                        events.emit(&|r| reloader.model.object(r), new);
                        reloader.observe_changes(&touched);
                        None
                    },
                )
                .await;
                reflectors.iter().for_each(JoinHandle::abort);
            })
        }
    };

    let http = bind(config.http_addr, "http").await?;
    let https = bind(config.https_addr, "https").await?;
    let admin = bind(config.admin_addr, "admin").await?;
    let admin_task = tokio::spawn(crate::admin::serve(admin, shared.clone(), metrics.clone()));

    let settings = Settings {
        timeouts: config.upstream,
        tunnel_idle: config.upstream.read,
        https_redirect_port: config.tls.redirect_port,
        gateway_http_port: config.options.gateway_ports.http,
        gateway_https_port: config.options.gateway_ports.https,
    };
    let (access_log, _flush_on_exit) = match config.access_log {
        Some(json) => {
            let (log, guard) = AccessLog::stdout(json).context("access log writer")?;
            (Some(log), Some(guard))
        }
        None => (None, None),
    };
    let observers = Arc::new(Observers {
        metrics,
        access_log,
    });
    let proxy = Arc::new(Proxy::new(shared.clone(), settings, observers));
    let terminator =
        crate::tls::Terminator::new(config.tls.min_version).context("TLS configuration")?;
    let plain = Listener {
        proto: "http",
        port: http.local_addr()?.port(),
    };
    let secure = Listener {
        proto: "https",
        port: https.local_addr()?.port(),
    };
    let limits = Limits {
        timeouts: config.client,
        slots: Arc::new(Semaphore::new(connection_cap(
            config.max_client_connections,
        ))),
        grace: config.shutdown_grace,
    };
    let http_task = tokio::spawn(server::serve(
        http,
        proxy.clone(),
        plain,
        None,
        stop_rx.clone(),
        limits.clone(),
    ));
    let https_task = tokio::spawn(server::serve(
        https,
        proxy,
        secure,
        Some(terminator),
        stop_rx,
        limits,
    ));

    shutdown.await;
    shared.start_draining();
    if !config.shutdown_delay.is_zero() {
        tracing::info!(delay = ?config.shutdown_delay, "shutting down: no longer ready; still accepting until endpoints and load balancers let go");
        tokio::time::sleep(config.shutdown_delay).await;
    }
    tracing::info!(grace = ?config.shutdown_grace, "shutting down: draining connections");
    let _ = stop_tx.send(true);
    let _ = tokio::join!(http_task, https_task);
    source_task.abort();
    if let Some(task) = status_task {
        // Releasing the Lease and, maybe, clearing statuses takes a few seconds at most.
        let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
    }
    admin_task.abort();
    tracing::info!("stopped");
    Ok(())
}

/// Watches `--manifests`, trying again every few seconds while that fails (inotify's watch
/// limit reached, say): the table that was read keeps serving meanwhile.
async fn watch_manifests(
    dir: &Path,
) -> (
    notify::RecommendedWatcher,
    mpsc::Receiver<()>,
    files::ChangeLog,
) {
    loop {
        let root = dir.to_owned();
        match tokio::task::spawn_blocking(move || files::watch(&root)).await {
            Ok(Ok(watching)) => return watching,
            Ok(Err(e)) => {
                tracing::error!(dir = %dir.display(), error = %e, "cannot watch --manifests; changes are not followed until it can")
            }
            Err(e) => {
                tracing::error!(dir = %dir.display(), error = %e, "watching --manifests failed")
            }
        }
        tokio::time::sleep(WATCH_RETRY).await;
    }
}

/// How long to wait before trying again to watch `--manifests`.
const WATCH_RETRY: Duration = Duration::from_secs(5);

async fn bind(addr: std::net::SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the {what} listener to {addr}"))?;
    let local = listener.local_addr()?;
    tracing::info!(listener = what, addr = %local, "listening");
    Ok(listener)
}

/// Calls `rebuild` (on a blocking thread, never on the threads serving requests) once the
/// source has been quiet for `debounce` after a change, or at the latest after ten times that
/// (at least a second) of steady changes. `rebuild` may ask to be called again after a while
/// even without a change (a file that is still being written).
async fn on_changes<S: Send + 'static>(
    mut changes: mpsc::Receiver<()>,
    debounce: Duration,
    endpoints_only: impl Fn() -> bool,
    mut state: S,
    rebuild: fn(&mut S) -> Option<Duration>,
) {
    let longest = (debounce * 10).max(Duration::from_secs(1));
    // Only EndpointSlices changed: they are applied without a rebuild, so a short quiet
    // period batches a burst of pod churn without holding it back.
    let quiet = || match endpoints_only() {
        true => debounce.min(ENDPOINT_QUIET),
        false => debounce,
    };
    let mut look_again: Option<Duration> = None;
    loop {
        let woken = match look_again {
            None => changes.recv().await.is_some(),
            Some(after) => tokio::select! {
                more = changes.recv() => more.is_some(),
                _ = tokio::time::sleep(after) => true,
            },
        };
        if !woken {
            return;
        }
        let latest = tokio::time::Instant::now() + longest;
        loop {
            tokio::select! {
                more = changes.recv() => if more.is_none() { return },
                _ = tokio::time::sleep(quiet()) => break,
                _ = tokio::time::sleep_until(latest) => break,
            }
        }
        let rebuilt = tokio::task::spawn_blocking(move || {
            let again = rebuild(&mut state);
            (state, again)
        })
        .await;
        match rebuilt {
            Ok((s, again)) => {
                state = s;
                look_again = again;
            }
            Err(e) => {
                tracing::error!(error = %e, "the rebuild failed; changes are no longer followed");
                return;
            }
        }
    }
}

/// `wanted`, lowered to what the open-files limit allows: two descriptors a connection (the
/// client's and the pod's) and some to spare for listeners, logs and the API server.
fn connection_cap(wanted: usize) -> usize {
    let soft = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|n| n.parse::<usize>().ok())
        });
    match soft {
        Some(soft) if soft.saturating_sub(64) / 2 < wanted => {
            let cap = (soft.saturating_sub(64) / 2).max(1);
            tracing::warn!(
                wanted,
                cap,
                open_files_limit = soft,
                "--max-client-connections lowered to fit the open-files limit"
            );
            cap
        }
        _ => wanted,
    }
}

/// The quiet period for a burst of EndpointSlice changes alone.
const ENDPOINT_QUIET: Duration = Duration::from_millis(5);

/// Everything a reload carries over from the previous one.
struct Reloader {
    config: Config,
    /// The objects and the last build, which a change rebuilds in part where it can.
    model: Model,
    /// Diagnostics already logged, so each is logged once.
    known: BTreeSet<Diagnostic>,
    certs: CertCache,
    provider: Arc<CryptoProvider>,
    generated_default: Arc<CertEntry>,
    metrics: Arc<Metrics>,
}

impl Reloader {
    fn new(config: Config, metrics: Arc<Metrics>) -> anyhow::Result<Self> {
        let provider = crate::tls::provider();
        let generated_default = Arc::new(
            certs::generated_default(&provider)
                .map_err(anyhow::Error::msg)
                .context("generating the default certificate")?,
        );
        Ok(Reloader {
            model: Model::new(config.options.clone()),
            config,
            known: BTreeSet::new(),
            certs: CertCache::default(),
            provider,
            generated_default,
            metrics,
        })
    }

    /// Reads the manifest directory again and publishes what it holds. Returns when to read
    /// again without a change, if a file looked half-written.
    fn reload_files(
        &mut self,
        manifests: &mut ManifestDir,
        dir: &Path,
        shared: &Shared,
        changed: files::Changed,
    ) -> std::io::Result<Option<Duration>> {
        let started = Instant::now();
        let since = changed.since;
        let rescan = changed.rescan;
        let mut outcome = manifests.reload_changed(dir, changed)?;
        let read = started.elapsed();
        let published = shared.current().generation > 0;
        if rescan && published {
            // Listing and looking at every file (100k paths and stamps at 100k apps) freed as
            // much as it took; a full build hands memory back itself.
            (self.config.release_memory)();
        }
        let observe = |metrics: &Metrics, outcome: &files::Reload| {
            if let Some(since) = since {
                for kind in &outcome.kinds {
                    let labels = crate::metrics::KindLabels {
                        kind: (*kind).to_owned(),
                    };
                    let waited = since.elapsed().as_secs_f64();
                    metrics
                        .change_to_serving
                        .get_or_create(&labels)
                        .observe(waited);
                }
            }
        };
        if published
            && outcome.kinds.is_empty()
            && outcome.errors.is_empty()
            && outcome.look_again.is_none()
        {
            // Nothing that routing reads changed (a file written back as it was).
            return Ok(None);
        }
        // Taken out, so that the first read's 300k names are freed before the build, not
        // after the memory it freed was handed back.
        let changes: Vec<Change> = std::mem::take(&mut outcome.changed)
            .into_iter()
            .map(|r| match manifests.current(&r) {
                Some(o) => Change::Put(o),
                None => Change::Delete(r),
            })
            .collect();
        let recorded = self.model.record(changes);
        let endpoints_only = outcome.kinds.iter().all(|k| *k == "EndpointSlice");
        if published
            && endpoints_only
            && outcome.errors.is_empty()
            && outcome.kept_last_good.is_empty()
        {
            let (services, slices) = self
                .model
                .endpoint_objects(&outcome.services, &outcome.slices);
            if self.publish_endpoints(
                shared,
                &services,
                &slices,
                &outcome.services,
                &outcome.slices,
            ) {
                observe(&self.metrics, &outcome);
                return Ok(outcome.look_again);
            }
        }
        for list in [&mut outcome.slices, &mut outcome.services] {
            *list = Vec::new();
        }
        for e in &outcome.errors {
            tracing::error!(file = %e.file.display(), line = e.line, reason = %e.reason, "manifest does not parse");
        }
        for f in &outcome.kept_last_good {
            tracing::warn!(file = %f.display(), "keeping the last good objects of this file");
        }
        let mut file_problems: Vec<Diagnostic> =
            outcome.errors.iter().map(ParseError::diagnostic).collect();
        file_problems.extend(manifests.duplicates().iter().map(ParseError::diagnostic));
        let recorded_at = started.elapsed();
        let (built, how) = self.model.rebuild(recorded);
        let built = built.clone();
        tracing::debug!(
            read_ms = read.as_secs_f64() * 1000.0,
            record_ms = (recorded_at - read).as_secs_f64() * 1000.0,
            build_ms = (started.elapsed() - recorded_at).as_secs_f64() * 1000.0,
            "reload phases"
        );
        let origin = |r: &ObjectRef| manifests.origin(r).map(Path::to_path_buf);
        self.publish_built(started, shared, built, how, &origin, file_problems);
        observe(&self.metrics, &outcome);
        Ok(outcome.look_again)
    }

    /// Builds all of `snapshot` (the first listing, or a relist) and publishes it. Returns
    /// the diagnostics not seen before.
    fn load(&mut self, shared: &Shared, snapshot: &Snapshot) -> Vec<Diagnostic> {
        let started = Instant::now();
        let built = self.model.load(snapshot).clone();
        self.publish_built(started, shared, built, Rebuilt::Full, &|_| None, Vec::new())
    }

    /// Follows what the reflectors saw: EndpointSlices alone are published in place;
    /// Ingresses, Services, Secrets and the Gateway API kinds rebuild what they touch;
    /// anything else (a relist, a kind a partial build does not handle) everything.
    fn follow_cluster(
        &mut self,
        shared: &Shared,
        stores: &crate::source::kube::Stores,
        touched: &crate::source::kube::Touched,
    ) -> Vec<Diagnostic> {
        if touched.other {
            return self.load(shared, &stores.snapshot());
        }
        let started = Instant::now();
        let slices = touched.slices.iter().map(|(ns, name)| ObjectRef {
            kind: "EndpointSlice",
            namespace: ns.clone(),
            name: name.clone(),
        });
        let changes: Vec<Change> = touched
            .objects
            .iter()
            .cloned()
            .chain(slices)
            .map(|r| match stores.get(&r) {
                Some(o) => Change::Put(o),
                None => Change::Delete(r),
            })
            .collect();
        let recorded = self.model.record(changes);
        if touched.objects.is_empty() && self.refresh_endpoints(shared, touched) {
            return Vec::new();
        }
        let (built, how) = self.model.rebuild(recorded);
        let built = built.clone();
        self.publish_built(started, shared, built, how, &|_| None, Vec::new())
    }

    /// Publishes `built` (with its certificates and the `extra` diagnostics), timing the
    /// reload from `started` (reading included), and logs what changed in the diagnostics
    /// (with the file each object came from, in file mode). Returns the diagnostics not seen
    /// before.
    fn publish_built(
        &mut self,
        started: Instant,
        shared: &Shared,
        mut built: crate::model::Built,
        how: Rebuilt,
        origin: &dyn Fn(&ObjectRef) -> Option<PathBuf>,
        extra: Vec<Diagnostic>,
    ) -> Vec<Diagnostic> {
        built.diagnostics.extend(extra);
        let default = self.default_certificate(&mut built.diagnostics);
        let (certs, tls_diagnostics) =
            certs::build_store(&self.provider, &built.tls, default, &mut self.certs);
        self.certs.sweep();
        built.diagnostics.extend(tls_diagnostics);
        let (client_auth, client_diagnostics) =
            crate::tls::client::build_store(&self.provider, &built.client_auth);
        built.diagnostics.extend(client_diagnostics);

        let now: BTreeSet<Diagnostic> = built.diagnostics.iter().cloned().collect();
        let new: Vec<Diagnostic> = now.difference(&self.known).cloned().collect();
        for d in &new {
            let file = origin(&d.object)
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            tracing::warn!(object = %d.object, field = %d.field, reason = %d.reason, file, "diagnostic");
        }
        for d in self.known.difference(&now) {
            tracing::info!(object = %d.object, field = %d.field, "diagnostic resolved");
        }
        self.known = now;
        let routes = built.table.routes().len();
        let before = shared.current();
        let before = (before.generation > 0).then_some(before);
        let generation = shared.publish(built, certs, client_auth);
        let took = started.elapsed();
        self.metrics
            .reloads
            .get_or_create(&ResultLabels { result: "success" })
            .inc();
        self.metrics.reload_duration.observe(took.as_secs_f64());
        let unix_now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.metrics
            .published(&shared.current(), before.as_deref(), unix_now);
        drop(before);
        if how == Rebuilt::Full {
            (self.config.release_memory)();
        }
        let rebuilt = match how {
            Rebuilt::Full => "all".to_owned(),
            Rebuilt::Partial(n) => format!("{n} Ingresses"),
        };
        tracing::info!(
            generation,
            routes,
            rebuilt,
            diagnostics = self.known.len(),
            took_ms = took.as_secs_f64() * 1000.0,
            "published routing table"
        );
        new
    }

    /// [`Reloader::publish_endpoints`] for what the reflectors saw.
    fn refresh_endpoints(
        &mut self,
        shared: &Shared,
        touched: &crate::source::kube::Touched,
    ) -> bool {
        let touched_services: Vec<(String, String)> = touched.services.iter().cloned().collect();
        let touched_slices: Vec<(String, String)> = touched.slices.iter().cloned().collect();
        let (services, slices) = self
            .model
            .endpoint_objects(&touched_services, &touched_slices);
        self.publish_endpoints(
            shared,
            &services,
            &slices,
            &touched_services,
            &touched_slices,
        )
    }

    /// Publishes the endpoints of the Services whose EndpointSlices alone changed (`services`
    /// and `slices` hold those Services and their slices, and the changed slices), into the
    /// backends of the table in force; `false` when only a full build will do (no table yet,
    /// a slice with problems now or before, a Service that no longer resolves).
    fn publish_endpoints(
        &mut self,
        shared: &Shared,
        services: &[Arc<k8s_openapi::api::core::v1::Service>],
        slices: &[Arc<crate::model::EndpointSlice>],
        touched_services: &[(String, String)],
        touched_slices: &[(String, String)],
    ) -> bool {
        let started = Instant::now();
        let current = shared.current();
        if current.generation == 0 {
            return false;
        }
        if touched_services.is_empty() && touched_slices.is_empty() {
            return true;
        }
        let diagnosed = current.built.diagnostics.iter().any(|d| {
            d.object.kind == "EndpointSlice"
                && touched_slices
                    .iter()
                    .any(|(ns, name)| d.object.namespace == *ns && d.object.name == *name)
        });
        if diagnosed {
            return false;
        }
        let broken = slices.iter().any(|s| {
            let key = (
                s.metadata.namespace.clone().unwrap_or_default(),
                s.metadata.name.clone().unwrap_or_default(),
            );
            touched_slices.contains(&key) && !crate::model::endpoints::slice_problems(s).is_empty()
        });
        if broken {
            return false;
        }
        let refreshed = crate::model::refresh::refresh_endpoints(
            &current.built,
            services,
            slices,
            touched_services,
        );
        let Some(refreshed) = refreshed else {
            return false;
        };
        let mut counted = BTreeSet::new();
        for r in &refreshed {
            if counted.insert(&r.service) {
                self.metrics.endpoints_moved(&r.before, &r.after);
            }
            r.backend.publish(r.after.clone());
        }
        self.metrics.endpoint_updates.inc();
        tracing::debug!(
            services = touched_services.len(),
            backends = refreshed.len(),
            took_ms = started.elapsed().as_secs_f64() * 1000.0,
            "published endpoints without a rebuild"
        );
        true
    }

    /// Observes, per kind, how long its first change waited to be served.
    fn observe_changes(&self, touched: &crate::source::kube::Touched) {
        for (kind, since) in &touched.since {
            let labels = crate::metrics::KindLabels { kind: kind.clone() };
            self.metrics
                .change_to_serving
                .get_or_create(&labels)
                .observe(since.elapsed().as_secs_f64());
        }
    }

    /// `--default-ssl-certificate` if given and usable, else the generated one.
    fn default_certificate(&mut self, diagnostics: &mut Vec<Diagnostic>) -> Arc<CertEntry> {
        let Some((namespace, name)) = &self.config.tls.default_certificate else {
            return self.generated_default.clone();
        };
        let secret_ref = ObjectRef {
            kind: "Secret",
            namespace: namespace.clone(),
            name: name.clone(),
        };
        let found = self.model.secret(namespace, name).cloned();
        let result = match found {
            None => Err((
                "--default-ssl-certificate",
                format!("Secret {namespace}/{name} not found"),
            )),
            Some(secret) => {
                tls_material(&secret)
                    .map_err(|r| ("data", r))
                    .and_then(|(cert, key)| {
                        self.certs
                            .get(&self.provider, &secret_ref, &cert, &key)
                            .map_err(|e| (e.field, e.reason))
                    })
            }
        };
        result.unwrap_or_else(|(field, reason)| {
            diagnostics.push(Diagnostic {
                object: secret_ref,
                field: field.to_owned(),
                reason: format!("{reason}; the generated default certificate is served instead"),
                severity: crate::model::Severity::Error,
            });
            self.generated_default.clone()
        })
    }
}
