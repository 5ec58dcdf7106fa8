//! Cluster mode: kube-rs reflectors for Ingress, IngressClass, Service, EndpointSlice, TLS and
//! Opaque Secrets (by field selector; Opaque ones hold htpasswd files and CA bundles, read only
//! when an Ingress names them), the `--configmap` ConfigMap, and the Gateway API kinds with
//! Namespaces (each skipped while its CRD is missing). The stores feed the same `model::build` as file mode; each
//! change wakes the rebuild loop, which debounces. New diagnostics become Kubernetes Events on
//! the objects concerned.

use super::trim;
use crate::model::EndpointSlice;
use crate::model::Snapshot;
use futures_util::StreamExt;
use gateway_api::gatewayclasses::GatewayClass;
use gateway_api::gateways::Gateway;
use gateway_api::httproutes::HttpRoute;
use gateway_api::referencegrants::ReferenceGrant;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service};
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use kube::api::{ApiResource, DynamicObject, ListParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use std::collections::BTreeSet;
use std::fmt::Debug;
use std::hash::Hash;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// What changed since the rebuild loop last looked: the EndpointSlices (and their Services),
/// and whether anything else did.
#[derive(Debug, Default)]
pub struct Touched {
    /// (namespace, Service) of every EndpointSlice added, changed or deleted.
    pub services: BTreeSet<(String, String)>,
    /// (namespace, name) of those EndpointSlices.
    pub slices: BTreeSet<(String, String)>,
    /// Ingresses, Services, Secrets and Gateway API objects added, changed or deleted: a
    /// partial build.
    pub objects: BTreeSet<crate::model::ObjectRef>,
    /// Another kind changed, or a watch relisted: only a full build will do.
    pub other: bool,
    /// When each kind first changed since the last look, for the change → serving metric.
    pub since: Vec<(String, std::time::Instant)>,
}

impl Touched {
    fn saw(&mut self, kind: &str) {
        if !self.since.iter().any(|(k, _)| k == kind) {
            self.since
                .push((kind.to_owned(), std::time::Instant::now()));
        }
    }
}

type TouchLog = std::sync::Arc<std::sync::Mutex<Touched>>;

/// How a kind's events are noted in the [`Touched`] log.
type Note<K> = fn(&watcher::Event<K>, &TouchLog, &str);

fn note_other<K>(_: &watcher::Event<K>, log: &TouchLog, kind: &str) {
    if let Ok(mut t) = log.lock() {
        t.other = true;
        t.saw(kind);
    }
}

/// Ingresses, Services, Secrets and the Gateway API kinds: which one changed, for a partial
/// build.
fn note_object<K: Resource<DynamicType = ()>>(
    event: &watcher::Event<K>,
    log: &TouchLog,
    kind: &str,
) {
    let Ok(mut t) = log.lock() else { return };
    t.saw(kind);
    let kind = match kind {
        "Ingress" => "Ingress",
        "Service" => "Service",
        "Secret" => "Secret",
        "GatewayClass" => "GatewayClass",
        "Gateway" => "Gateway",
        "HTTPRoute" => "HTTPRoute",
        "ReferenceGrant" => "ReferenceGrant",
        _ => {
            t.other = true;
            return;
        }
    };
    match event {
        watcher::Event::Apply(o) | watcher::Event::Delete(o) => {
            let r = crate::model::ObjectRef {
                kind,
                namespace: o.meta().namespace.clone().unwrap_or_default(),
                name: o.meta().name.clone().unwrap_or_default(),
            };
            t.objects.insert(r);
        }
        _ => t.other = true,
    }
}

fn note_slice(event: &watcher::Event<EndpointSlice>, log: &TouchLog, kind: &str) {
    let Ok(mut t) = log.lock() else { return };
    t.saw(kind);
    match event {
        watcher::Event::Apply(s) | watcher::Event::Delete(s) => {
            let ns = s.metadata.namespace.clone().unwrap_or_default();
            if let Some(service) = &s.service {
                t.services.insert((ns.clone(), service.clone()));
            }
            t.slices
                .insert((ns, s.metadata.name.clone().unwrap_or_default()));
        }
        // A relist: whatever may have changed meanwhile.
        _ => t.other = true,
    }
}

/// The reflector stores of the kinds Vestibule reads.
#[derive(Clone)]
pub struct Stores {
    touched: TouchLog,
    ingresses: Store<Ingress>,
    ingress_classes: Store<IngressClass>,
    services: Store<Service>,
    endpoint_slices: Store<EndpointSlice>,
    secrets: Store<Secret>,
    opaque_secrets: Store<Secret>,
    /// Only with `--configmap`.
    config_map: Option<Store<ConfigMap>>,
    /// Unless `--gateway-api=false`.
    gateway: Option<GatewayStores>,
}

/// The Gateway API kinds, and Namespaces for `allowedRoutes` selectors. A kind whose CRD is
/// not installed (or that the controller may not list) is empty until it can be listed.
#[derive(Clone)]
struct GatewayStores {
    classes: Store<GatewayClass>,
    gateways: Store<Gateway>,
    routes: Store<HttpRoute>,
    grants: Store<ReferenceGrant>,
    /// Clusters with Gateway API CRDs older than v1.5 serve ReferenceGrant as v1beta1 only.
    grants_v1beta1: Store<DynamicObject>,
    namespaces: Store<Namespace>,
}

/// How often a kind that cannot be listed yet is tried again.
const NOT_INSTALLED_RETRY: std::time::Duration = std::time::Duration::from_secs(5);

impl Stores {
    /// The objects as the stores hold them now.
    pub fn snapshot(&self) -> Snapshot {
        fn all<K: Resource + Clone>(store: &Store<K>) -> Vec<std::sync::Arc<K>>
        where
            K::DynamicType: Eq + Hash + Clone,
        {
            store.state()
        }
        let mut snapshot = Snapshot {
            ingresses: all(&self.ingresses),
            ingress_classes: all(&self.ingress_classes),
            services: all(&self.services),
            endpoint_slices: all(&self.endpoint_slices),
            secrets: all(&self.secrets)
                .into_iter()
                .chain(all(&self.opaque_secrets))
                .collect(),
            config_maps: self.config_map.as_ref().map(all).unwrap_or_default(),
            ..Snapshot::default()
        };
        if let Some(g) = &self.gateway {
            snapshot.gateway_classes = all(&g.classes);
            snapshot.gateways = all(&g.gateways);
            snapshot.http_routes = all(&g.routes);
            snapshot.namespaces = all(&g.namespaces);
            let mut grants = all(&g.grants);
            // The same grant served as both versions counts once.
            for old in g.grants_v1beta1.state() {
                let same = |r: &std::sync::Arc<ReferenceGrant>| {
                    r.metadata.namespace == old.metadata.namespace
                        && r.metadata.name == old.metadata.name
                };
                if grants.iter().any(same) {
                    continue;
                }
                match serde_json::to_value(&*old).and_then(serde_json::from_value) {
                    Ok(grant) => grants.push(std::sync::Arc::new(grant)),
                    Err(e) => {
                        tracing::warn!(grant = ?old.metadata.name, error = %e, "ReferenceGrant v1beta1 not read")
                    }
                }
            }
            snapshot.reference_grants = grants;
        }
        snapshot.sorted()
    }

    /// The Ingresses as the stores hold them now, in no particular order (cheaper than a
    /// [`Stores::snapshot`] of every kind, for the status writer's rounds).
    pub fn ingresses(&self) -> Vec<std::sync::Arc<Ingress>> {
        self.ingresses.state()
    }

    /// The Service `namespace/name`, if watched and present.
    pub fn service(&self, namespace: &str, name: &str) -> Option<std::sync::Arc<Service>> {
        use kube::runtime::reflector::ObjectRef as StoreRef;
        self.services.get(&StoreRef::new(name).within(namespace))
    }

    /// The GatewayClasses, Gateways and HTTPRoutes alone, in no particular order (the status
    /// writer's rounds read them without a snapshot of every kind).
    pub fn gateway_objects(&self) -> Snapshot {
        match &self.gateway {
            None => Snapshot::default(),
            Some(g) => Snapshot {
                gateway_classes: g.classes.state(),
                gateways: g.gateways.state(),
                http_routes: g.routes.state(),
                ..Snapshot::default()
            },
        }
    }

    /// What changed since the last call.
    pub fn take_touched(&self) -> Touched {
        self.touched
            .lock()
            .map(|mut t| std::mem::take(&mut *t))
            .unwrap_or_default()
    }

    /// Whether only EndpointSlices changed since the last [`Stores::take_touched`].
    pub fn only_endpoints_touched(&self) -> bool {
        self.touched
            .lock()
            .is_ok_and(|t| !t.other && t.objects.is_empty())
    }

    /// The object `r` names as the stores hold it now (Ingresses, Services, EndpointSlices,
    /// Secrets and the Gateway API kinds: the kinds [`Touched`] names).
    pub fn get(&self, r: &crate::model::ObjectRef) -> Option<crate::model::Object> {
        use crate::model::Object;
        use kube::runtime::reflector::ObjectRef as StoreRef;
        fn find<K: Resource<DynamicType = ()> + Clone>(
            store: &Store<K>,
            r: &crate::model::ObjectRef,
        ) -> Option<std::sync::Arc<K>> {
            // A cluster-scoped kind's key has no namespace: the store looks without one too.
            store.get(&StoreRef::new(&r.name).within(&r.namespace))
        }
        let gateway = self.gateway.as_ref();
        match r.kind {
            "Ingress" => find(&self.ingresses, r).map(Object::Ingress),
            "Service" => find(&self.services, r).map(Object::Service),
            "EndpointSlice" => find(&self.endpoint_slices, r).map(Object::EndpointSlice),
            "Secret" => find(&self.secrets, r)
                .or_else(|| find(&self.opaque_secrets, r))
                .map(Object::Secret),
            "GatewayClass" => find(&gateway?.classes, r).map(Object::GatewayClass),
            "Gateway" => find(&gateway?.gateways, r).map(Object::Gateway),
            "HTTPRoute" => find(&gateway?.routes, r).map(Object::HttpRoute),
            "ReferenceGrant" => find(&gateway?.grants, r).map(Object::ReferenceGrant),
            _ => None,
        }
    }

    /// Whether the Gateway API kinds are watched (`--gateway-api`).
    pub fn watches_gateway_api(&self) -> bool {
        self.gateway.is_some()
    }

    /// Resolves once every reflector has listed its kind.
    pub async fn wait_until_ready(&self) -> anyhow::Result<()> {
        self.ingresses.wait_until_ready().await?;
        self.ingress_classes.wait_until_ready().await?;
        self.services.wait_until_ready().await?;
        self.endpoint_slices.wait_until_ready().await?;
        self.secrets.wait_until_ready().await?;
        self.opaque_secrets.wait_until_ready().await?;
        if let Some(store) = &self.config_map {
            store.wait_until_ready().await?;
        }
        if let Some(g) = &self.gateway {
            g.classes.wait_until_ready().await?;
            g.gateways.wait_until_ready().await?;
            g.routes.wait_until_ready().await?;
            g.grants.wait_until_ready().await?;
            g.grants_v1beta1.wait_until_ready().await?;
            g.namespaces.wait_until_ready().await?;
        }
        Ok(())
    }
}

/// Starts one reflector per kind (namespaced kinds limited to `namespace` when given). The
/// receiver yields once per burst of changes. The tasks run until aborted; a lost watch is
/// resumed or relisted by the watcher while the stores keep their last state.
pub fn watch(
    client: Client,
    namespace: Option<&str>,
    config_map: Option<&(String, String)>,
    gateway_api: bool,
) -> (Stores, mpsc::Receiver<()>, Vec<JoinHandle<()>>) {
    let (changed, rx) = mpsc::channel(1);
    let touched = TouchLog::default();
    let tx = Wake {
        changed,
        touched: touched.clone(),
    };
    let (ingresses, services, slices, secrets) = (
        scoped::<Ingress>(&client, namespace),
        scoped::<Service>(&client, namespace),
        scoped::<k8s_openapi::api::discovery::v1::EndpointSlice>(&client, namespace),
        scoped::<Secret>(&client, namespace),
    );
    let all = watcher::Config::default();
    let tls_only = watcher::Config::default().fields("type=kubernetes.io/tls");
    let opaque_only = watcher::Config::default().fields("type=Opaque");
    let mut tasks = Vec::new();
    let config_map = config_map.map(|(ns, name)| {
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
        let one = watcher::Config::default().fields(&format!("metadata.name={name}"));
        reflect(api, one, in_place(trim::meta), note_other, &tx, &mut tasks)
    });
    let opaque: Api<Secret> = scoped(&client, namespace);
    let gateway = gateway_api.then(|| {
        let (gateways, routes, grants) = (
            scoped::<Gateway>(&client, namespace),
            scoped::<HttpRoute>(&client, namespace),
            scoped::<ReferenceGrant>(&client, namespace),
        );
        let v1beta1 = ApiResource {
            group: "gateway.networking.k8s.io".to_owned(),
            version: "v1beta1".to_owned(),
            api_version: "gateway.networking.k8s.io/v1beta1".to_owned(),
            kind: "ReferenceGrant".to_owned(),
            plural: "referencegrants".to_owned(),
        };
        let old_grants = match namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &v1beta1),
            None => Api::all_with(client.clone(), &v1beta1),
        };
        let config = watcher::Config::default();
        GatewayStores {
            classes: reflect_once_listed(
                Api::all(client.clone()),
                ((), note_object),
                config.clone(),
                &tx,
                &mut tasks,
            ),
            gateways: reflect_once_listed(
                gateways,
                ((), note_object),
                config.clone(),
                &tx,
                &mut tasks,
            ),
            routes: reflect_once_listed(routes, ((), note_object), config.clone(), &tx, &mut tasks),
            grants: reflect_once_listed(grants, ((), note_object), config.clone(), &tx, &mut tasks),
            // Read through a conversion, and rare: a change there takes a full build.
            grants_v1beta1: reflect_once_listed(
                old_grants,
                (v1beta1, note_other),
                config.clone(),
                &tx,
                &mut tasks,
            ),
            namespaces: reflect_once_listed(
                Api::all(client.clone()),
                ((), note_other),
                config,
                &tx,
                &mut tasks,
            ),
        }
    });
    let stores = Stores {
        touched,
        gateway,
        ingresses: reflect(
            ingresses,
            all.clone(),
            in_place(trim::ingress),
            note_object,
            &tx,
            &mut tasks,
        ),
        ingress_classes: reflect(
            Api::all(client),
            all.clone(),
            in_place(trim::meta),
            note_other,
            &tx,
            &mut tasks,
        ),
        services: reflect(
            services,
            all.clone(),
            in_place(trim::service),
            note_object,
            &tx,
            &mut tasks,
        ),
        endpoint_slices: reflect(
            slices,
            all,
            trim::endpoint_slice,
            note_slice,
            &tx,
            &mut tasks,
        ),
        secrets: reflect(
            secrets,
            tls_only,
            in_place(trim::meta),
            note_object,
            &tx,
            &mut tasks,
        ),
        opaque_secrets: reflect(
            opaque,
            opaque_only,
            in_place(trim::meta),
            note_object,
            &tx,
            &mut tasks,
        ),
        config_map,
    };
    (stores, rx, tasks)
}

/// The API of a namespaced kind: one namespace's (`--watch-namespace`), else all.
fn scoped<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// A reflector for one kind: its store, filled and kept by a task that notes each event
/// with `note` and wakes the rebuild loop.
fn reflect<K, S>(
    api: Api<K>,
    config: watcher::Config,
    keep: impl Fn(K) -> S + Send + 'static,
    note: Note<S>,
    wake: &Wake,
    tasks: &mut Vec<JoinHandle<()>>,
) -> Store<S>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
    K::DynamicType: Default,
    S: Resource + Clone + serde::Serialize + Send + Sync + 'static,
    S::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
{
    let (store, writer) = reflector::store();
    let kind = S::kind(&S::DynamicType::default()).into_owned();
    let wake = wake.clone();
    let noting = (note, false);
    let at = (writer, S::DynamicType::default());
    tasks.push(tokio::spawn(follow(
        api, config, keep, at, noting, wake, kind,
    )));
    store
}

/// A trim that works in place, as the conversion a reflector applies to what it keeps.
fn in_place<K: 'static>(trim: fn(&mut K)) -> impl Fn(K) -> K + Send + 'static {
    move |mut o| {
        trim(&mut o);
        o
    }
}

/// `event` with its object as `keep` makes it.
fn kept<K, S>(event: watcher::Event<K>, keep: &impl Fn(K) -> S) -> watcher::Event<S> {
    match event {
        watcher::Event::Apply(o) => watcher::Event::Apply(keep(o)),
        watcher::Event::Delete(o) => watcher::Event::Delete(keep(o)),
        watcher::Event::Init => watcher::Event::Init,
        watcher::Event::InitApply(o) => watcher::Event::InitApply(keep(o)),
        watcher::Event::InitDone => watcher::Event::InitDone,
    }
}

/// The model's EndpointSlice lives in a reflector store of its own kind.
impl Resource for EndpointSlice {
    type DynamicType = ();
    type Scope = k8s_openapi::NamespaceResourceScope;

    fn kind(_: &()) -> std::borrow::Cow<'_, str> {
        "EndpointSlice".into()
    }

    fn group(_: &()) -> std::borrow::Cow<'_, str> {
        "discovery.k8s.io".into()
    }

    fn version(_: &()) -> std::borrow::Cow<'_, str> {
        "v1".into()
    }

    fn plural(_: &()) -> std::borrow::Cow<'_, str> {
        "endpointslices".into()
    }

    fn meta(&self) -> &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        &mut self.metadata
    }
}

/// What a watch needs to wake the rebuild loop: the channel, and the log of what changed.
#[derive(Clone)]
struct Wake {
    changed: mpsc::Sender<()>,
    touched: TouchLog,
}

/// Watches `api` into `writer` until aborted, noting each change and waking the rebuild
/// loop. The first listing is part of start-up (the first build reads the stores once every
/// kind is listed) unless `listing_is_a_change` (a kind that appeared later); a relist after
/// it is noted as a change. An update of nothing but the status (the controller's own
/// status writes, mostly) is stored without waking anyone: it would only restart the
/// debounce of the next real change and rebuild what did not change.
async fn follow<K, S>(
    api: Api<K>,
    config: watcher::Config,
    keep: impl Fn(K) -> S + Send + 'static,
    (writer, dyntype): (reflector::store::Writer<S>, S::DynamicType),
    (note, listing_is_a_change): (Note<S>, bool),
    wake: Wake,
    kind: String,
) where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
    S: Resource + Clone + serde::Serialize + Send + Sync + 'static,
    S::DynamicType: Eq + Hash + Clone + Send + Sync,
{
    let mut listed = listing_is_a_change;
    let stored = writer.as_reader();
    // Whether the event passing through is news; set just before the store takes it in.
    let news = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let judge = news.clone();
    // EndpointSlices have no status: every update is news.
    let has_status = kind != "EndpointSlice";
    watcher(api, config)
        .default_backoff()
        .map(move |event| event.map(|e| kept(e, &keep)))
        .map(move |event| {
            let fresh = match &event {
                Ok(watcher::Event::Apply(new)) if has_status => {
                    let at = reflector::ObjectRef::from_obj_with(new, dyntype.clone());
                    stored
                        .get(&at)
                        .is_none_or(|old| !only_status_changed(&*old, new))
                }
                _ => true,
            };
            judge.store(fresh, std::sync::atomic::Ordering::Relaxed);
            event
        })
        .reflect(writer)
        .for_each(|event| {
            match event {
                Ok(_) if !news.load(std::sync::atomic::Ordering::Relaxed) => {}
                // A full channel already holds a wake-up that will see this change.
                Ok(event) => {
                    let listing = matches!(
                        event,
                        watcher::Event::Init | watcher::Event::InitApply(_) | watcher::Event::InitDone
                    );
                    if listed || !listing {
                        note(&event, &wake.touched, &kind);
                    }
                    if matches!(event, watcher::Event::InitDone) {
                        listed = true;
                    }
                    let _ = wake.changed.try_send(());
                }
                Err(e) => tracing::warn!(kind, error = %e, "watch failed; retrying, the last state keeps serving"),
            }
            std::future::ready(())
        })
        .await
}

/// Whether `new` differs from `old` only where routing never looks: its status and its
/// resourceVersion.
fn only_status_changed<K: serde::Serialize>(old: &K, new: &K) -> bool {
    let view = |o: &K| {
        let mut v = serde_json::to_value(o).ok()?;
        let o = v.as_object_mut()?;
        o.remove("status");
        if let Some(meta) = o.get_mut("metadata").and_then(|m| m.as_object_mut()) {
            meta.remove("resourceVersion");
        }
        Some(v)
    };
    matches!((view(old), view(new)), (Some(a), Some(b)) if a == b)
}

/// A reflector for a kind that may not be there: its CRD not installed, or the controller
/// not allowed to list it (the chart's `gatewayAPI.enabled`). Until it can be listed its
/// store is empty and ready, with one log line; it is tried again every few seconds and
/// watched from the moment it answers; `note` notes its changes.
fn reflect_once_listed<K>(
    api: Api<K>,
    (dyntype, note): (K::DynamicType, Note<K>),
    config: watcher::Config,
    wake: &Wake,
    tasks: &mut Vec<JoinHandle<()>>,
) -> Store<K>
where
    K: Resource + Clone + DeserializeOwned + serde::Serialize + Debug + Send + Sync + 'static,
    K::DynamicType: Eq + Hash + Clone + Send + Sync + 'static,
{
    let mut writer = reflector::store::Writer::new(dyntype.clone());
    let store = writer.as_reader();
    let wake = wake.clone();
    let kind = K::kind(&dyntype).into_owned();
    let version = K::version(&dyntype).into_owned();
    tasks.push(tokio::spawn(async move {
        let mut absent = false;
        loop {
            match api.list(&ListParams::default().limit(1)).await {
                Ok(_) => break,
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 403 => {
                    if !absent {
                        let why = match s.code {
                            404 => "its CRD is not installed",
                            _ => "the controller may not list it (RBAC)",
                        };
                        tracing::info!(
                            kind,
                            version,
                            why,
                            "skipping a kind until it can be listed"
                        );
                        writer.apply_watcher_event(&watcher::Event::Init);
                        writer.apply_watcher_event(&watcher::Event::InitDone);
                        absent = true;
                    }
                }
                Err(e) => {
                    tracing::warn!(kind, version, error = %e, "cannot list; retrying")
                }
            }
            tokio::time::sleep(NOT_INSTALLED_RETRY).await;
        }
        if absent {
            tracing::info!(kind, version, "the kind can be listed now; watching it");
        }
        // A kind that appeared after start-up: its first listing is news.
        let at = (writer, dyntype);
        let keep = in_place(trim::meta);
        follow(api, config, keep, at, (note, absent), wake, kind).await
    }));
    store
}

/// Publishes each new diagnostic as a `Warning` Event (events.k8s.io/v1) on its object. The
/// caller passes only diagnostics it has not reported before, so a rebuild does not repeat them.
#[derive(Clone)]
pub struct EventSink {
    recorder: kube::runtime::events::Recorder,
}

impl EventSink {
    pub fn new(client: Client) -> Self {
        let reporter = kube::runtime::events::Reporter {
            controller: "vestibule".to_owned(),
            instance: std::env::var("POD_NAME").ok(),
        };
        EventSink {
            recorder: kube::runtime::events::Recorder::new(client, reporter),
        }
    }

    /// Sends the Events in the background; a failure is logged, never fatal.
    pub fn emit(
        &self,
        find: &dyn Fn(&crate::model::ObjectRef) -> Option<crate::model::Object>,
        diagnostics: Vec<crate::model::Diagnostic>,
    ) {
        for d in diagnostics {
            let Some(reference) = object_reference(find, &d.object) else {
                continue;
            };
            let recorder = self.recorder.clone();
            tokio::spawn(async move {
                let mut note = format!("{}: {}", d.field, d.reason);
                // The API caps notes at 1 kB.
                note.truncate(1000);
                let event = kube::runtime::events::Event {
                    type_: kube::runtime::events::EventType::Warning,
                    reason: "InvalidConfiguration".to_owned(),
                    note: Some(note),
                    action: "Route".to_owned(),
                    secondary: None,
                };
                if let Err(e) = recorder.publish(&event, &reference).await {
                    tracing::warn!(object = %d.object, error = %e, "could not record an Event");
                }
            });
        }
    }
}

/// The API reference of an object (with its uid, so `kubectl describe` finds the Event);
/// `None` for things that are not objects, such as a flag.
fn object_reference(
    find: &dyn Fn(&crate::model::ObjectRef) -> Option<crate::model::Object>,
    object: &crate::model::ObjectRef,
) -> Option<k8s_openapi::api::core::v1::ObjectReference> {
    let api_version = match object.kind {
        "Ingress" | "IngressClass" => "networking.k8s.io/v1",
        "Secret" | "Service" | "ConfigMap" => "v1",
        "GatewayClass" | "Gateway" | "HTTPRoute" => "gateway.networking.k8s.io/v1",
        _ => return None,
    };
    let found = find(object);
    let meta = found.as_ref().map(|o| o.metadata());
    Some(k8s_openapi::api::core::v1::ObjectReference {
        api_version: Some(api_version.to_owned()),
        kind: Some(object.kind.to_owned()),
        name: Some(object.name.clone()),
        namespace: (!object.namespace.is_empty()).then(|| object.namespace.clone()),
        uid: meta.and_then(|m| m.uid.clone()),
        resource_version: meta.and_then(|m| m.resource_version.clone()),
        ..Default::default()
    })
}
