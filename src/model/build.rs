//! Snapshot → routing table, TLS bindings and diagnostics. Total: a bad object becomes a
//! diagnostic and costs only its own routes; nothing here fails the build as a whole.

use super::access::{BasicAuth, VerifyClient};
use super::canary::{Canary, CanaryRule};
use super::class::OurClasses;
pub use super::diagnostic::{Diagnostic, Severity};
use super::endpoints::{Backend, Endpoints, PortRef, ServiceIndex, ServiceRef, Unresolved};
use super::gateway::{self, GatewayPorts, GatewayStatus, Placement};
use super::host::{HostRule, wildcard_suffix};
use super::ingress_nginx::{self, Annotations, Context, Level};
use super::passthrough::Passthrough;
use super::path::{PathRegex, PathRule};
use super::policy::UpstreamTls;
use super::policy::{Filter, Policy, Redirect, RedirectTo};
use super::settings::Global;
use super::sharded::ShardedMap;
use super::snapshot::{ObjectRef, Snapshot};
use super::table::{
    FEW_PATHS, HostRoutes, Matches, PathMatch, Paths, Rank, Route, RouteId, RoutingTable, Slot,
    Spread, WeightedBackend,
};
use http::StatusCode;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::networking::v1::{Ingress, IngressBackend, IngressTLS};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use rustc_hash::{FxHashMap, FxHashSet};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The settings that change what the table says (the controller's flags).
#[derive(Clone, Debug)]
pub struct Options {
    /// `spec.controller` of our IngressClasses.
    pub controller_name: String,
    /// The class name that is ours even without an IngressClass object.
    pub ingress_class: String,
    /// Take Ingresses that name no class.
    pub watch_ingress_without_class: bool,
    /// Used when no Ingress of ours has `spec.defaultBackend`.
    pub default_backend: Option<ServiceRef>,
    /// The controller-wide settings the flags give (`--proxy-body-size`, `--hsts`, …); the
    /// ConfigMap overrides them key by key.
    pub global: Global,
    /// `--configmap`: the ingress-nginx ConfigMap (namespace, name) among the objects.
    pub config_map: Option<(String, String)>,
    /// Annotations may name Secrets of other namespaces (`namespace/name`), as ingress-nginx
    /// allows.
    pub cross_namespace_secrets: bool,
    /// `--enable-ssl-passthrough`: the `ssl-passthrough` annotation is honoured.
    pub ssl_passthrough: bool,
    /// Which Gateway listener ports the two sockets serve.
    pub gateway_ports: GatewayPorts,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            controller_name: "vestibule.dev/ingress-controller".to_owned(),
            ingress_class: "vestibule".to_owned(),
            watch_ingress_without_class: false,
            default_backend: None,
            global: Global::default(),
            config_map: None,
            cross_namespace_secrets: true,
            ssl_passthrough: false,
            gateway_ports: GatewayPorts::default(),
        }
    }
}

/// A host that TLS is terminated for, and the Secret whose certificate serves it.
#[derive(Clone, Debug)]
pub struct TlsBinding {
    /// An exact or wildcard host; `Any` stands in for the default certificate (a Gateway
    /// listener without hostname).
    pub host: HostRule,
    /// A wildcard that covers any number of labels (a Gateway API listener's).
    pub deep: bool,
    pub secret: ObjectRef,
    pub ingress: ObjectRef,
    /// `tls.crt`: PEM, leaf first.
    pub cert_pem: Arc<[u8]>,
    /// `tls.key`: PEM.
    pub key_pem: Arc<[u8]>,
}

/// Everything one build produces.
#[derive(Debug, Default, Clone)]
///
/// Cloning is cheap (the large parts are shared), so that the model keeps the build it
/// publishes and a partial build copies only what it changes.
pub struct Built {
    pub table: Arc<RoutingTable>,
    /// Every Ingress that is ours (whether or not it produced routes), for status writing.
    pub ours: ShardedMap<ObjectRef, ()>,
    /// Host → certificate, one entry per host (the oldest Ingress's).
    pub tls: Arc<Vec<TlsBinding>>,
    pub diagnostics: Vec<Diagnostic>,
    /// The controller-wide settings in force (flags with the ConfigMap applied).
    pub global: Arc<Global>,
    /// Hosts whose TLS handshakes ask for a client certificate, and the CA that checks it.
    pub client_auth: Arc<Vec<ClientAuthBinding>>,
    /// Hosts whose TLS connections are spliced to pods (`ssl-passthrough`).
    pub passthrough: Passthrough,
    /// The status of the Gateway API objects that are ours, for the status writer.
    pub gateway: Arc<GatewayStatus>,
    /// Every backend whose endpoints come from a Service port's EndpointSlices, by Service
    /// port: [`refresh_endpoints`] publishes new endpoints into them.
    pub backends: ShardedMap<ServiceRef, Vec<Arc<Backend>>>,
    /// How many Ingresses (and the `--default-backend` flag) use each backend the Ingress
    /// rules resolved: while positive, that backend is first in `backends`. A partial build
    /// keeps the counts, and drops a backend nothing uses any more.
    pub(crate) users: ShardedMap<ServiceRef, u32>,
    /// Hosts whose group depends on more than the Ingresses that name the host: aliases and
    /// `www.` redirects (both ends). A change that touches one of them takes a full build.
    pub(crate) cross_host: FxHashSet<HostRule>,
    /// Hosts with a Gateway API group (route hostnames and listener hostnames) or listener
    /// certificate: a change that touches one rebuilds the Gateway API objects with it.
    pub(crate) gateway_hosts: ShardedMap<HostRule, ()>,
    /// The backends the Gateway API routes send to, each also in `backends` after the
    /// Ingress rules' own, and how many backendRefs send to each (a partial build keeps the
    /// counts, and drops a backend nothing sends to any more).
    pub(crate) gateway_backends: ShardedMap<ServiceRef, (Arc<Backend>, u32)>,
}

/// The backend in force for a Service port, if a partial build may share it.
pub(crate) type Reuse<'s> = dyn Fn(&ServiceRef) -> Option<Arc<Backend>> + 's;

/// What a partial build takes from the table it adds to ([`super::incremental`]).
pub(crate) struct Seed<'s> {
    /// Every wildcard TLS host of every Ingress of ours: an exact host below one of them
    /// speaks TLS, whichever Ingress lists the wildcard.
    pub tls_wildcards: Vec<HostRule>,
    /// The backend already in force for a Service port whose objects did not change, so that
    /// the routes rebuilt share it with the routes kept (one backend per port follows the
    /// EndpointSlices).
    pub reuse: &'s Reuse<'s>,
    /// The same for the Gateway API routes' backends (each Service port has one of its own).
    pub gateway_reuse: &'s Reuse<'s>,
}

/// One host that asks TLS clients for a certificate (`auth-tls-secret`).
#[derive(Debug, Clone)]
pub struct ClientAuthBinding {
    pub host: HostRule,
    pub secret: ObjectRef,
    pub ingress: ObjectRef,
    /// `ca.crt`: PEM, one or more CA certificates.
    pub ca_pem: Pem,
    /// Whether the chain is checked against the CA (`optional_no_ca`: no).
    pub verify_chain: bool,
}

/// Builds the routing table for the Ingresses that are ours.
pub fn build(snapshot: &Snapshot, options: &Options) -> Built {
    build_after(snapshot, options, None)
}

/// [`build`], where a ConfigMap key with a bad value keeps its value from `previous` (the
/// settings of the table in force) rather than the flag's.
pub fn build_after(snapshot: &Snapshot, options: &Options, previous: Option<&Global>) -> Built {
    build_seeded(snapshot, options, previous, None)
}

/// [`build_after`] for part of the objects, seeded with what the rest says (`seed`).
pub(crate) fn build_seeded(
    snapshot: &Snapshot,
    options: &Options,
    previous: Option<&Global>,
    seed: Option<Seed<'_>>,
) -> Built {
    let config_map = options.config_map.as_ref().and_then(|(namespace, name)| {
        snapshot.config_maps.iter().find(|c| {
            c.metadata.namespace.as_deref() == Some(namespace)
                && c.metadata.name.as_deref() == Some(name)
        })
    });
    let previous = previous.unwrap_or(&options.global);
    let (mut global, mut settings_diagnostics) =
        super::settings::resolve(config_map.map(|c| &**c), &options.global, previous);
    if let Some(cm) = config_map {
        let (external, findings) =
            ingress_nginx::global_auth(cm.data.as_ref().unwrap_or(&BTreeMap::new()));
        let object = ObjectRef::of("ConfigMap", &cm.metadata);
        let broken = findings.iter().any(|f| f.level == Level::Error);
        for f in findings {
            settings_diagnostics.push(match f.level {
                Level::Error => Diagnostic::error(
                    object.clone(),
                    f.field,
                    format!("{}; the previous global auth stays", f.reason),
                ),
                Level::Warning => Diagnostic::warning(object.clone(), f.field, f.reason),
            });
        }
        global.external_auth = match broken {
            true => previous.external_auth.clone(),
            false => external,
        };
    }
    let classes = OurClasses::new(
        &snapshot.ingress_classes,
        &options.controller_name,
        &options.ingress_class,
        options.watch_ingress_without_class,
    );
    let mut ours: Vec<&Ingress> = snapshot
        .ingresses
        .iter()
        .map(|i| &**i)
        .filter(|i| classes.owns(i))
        .collect();
    // Older Ingresses win conflicts; objects without a timestamp (manifest files) count as
    // newest, then namespace/name decides.
    ours.sort_by(|a, b| age_then_name(a).cmp(&age_then_name(b)));
    let mut builder = Builder::new(snapshot, options, Arc::new(global));
    builder.diagnostics.extend(settings_diagnostics);
    if let Some(seed) = seed {
        builder.tls_hosts.extend(seed.tls_wildcards);
        builder.reuse = Some(seed.reuse);
        builder.gateway_reuse = Some(seed.gateway_reuse);
    }
    // TLS first: whether a route redirects to https depends on every Ingress's TLS hosts.
    for ingress in &ours {
        builder.add_tls_of(ingress);
    }
    // ingress-nginx treats every path of a host as a regex once one Ingress of the host
    // asks for regex paths (use-regex or rewrite-target), whichever Ingress the path is on.
    // An Ingress's annotations are read again where it is placed rather than kept for all:
    // at 1.7 KB each they were the largest transient of a full build.
    let mut canaries: Vec<(&Ingress, Annotations)> = Vec::new();
    let mut mains: Vec<&Ingress> = Vec::new();
    for ingress in &ours {
        let annotations = ingress_nginx::read(ingress);
        if annotations.regex_paths() {
            builder.regex_hosts.extend(rule_hosts(ingress));
        }
        match annotations.canary.is_some() {
            true => canaries.push((ingress, annotations)),
            false => mains.push(ingress),
        }
    }
    let our_refs = ours.iter().map(|i| (ingress_ref(i), ())).collect();
    // Canaries first, so that each main route finds its alternative when it is placed.
    for (ingress, annotations) in &canaries {
        if let Some(rule) = &annotations.canary {
            builder.add_canary(ingress, annotations, rule);
        }
    }
    for ingress in mains {
        builder.add_ingress(ingress, &ingress_nginx::read(ingress));
    }
    builder.report_unused_canaries();
    builder.service_upstream = builder.global.service_upstream;
    if builder.default_route.is_none()
        && let Some(service) = &options.default_backend
    {
        let object = flag_object();
        let backend = builder.backend(service.clone(), &object, "value");
        let policy = builder.plain_policy();
        let id = RouteId::of("--default-backend");
        builder.default_route = Some(catch_all(id, object, HostRule::Any, policy, backend));
    }
    let translated = gateway::translate(
        snapshot,
        &options.controller_name,
        options.gateway_ports,
        &builder.global.clone(),
        (&builder.services, &builder.secrets),
        builder.gateway_reuse,
    );
    builder.add_gateway(translated);
    for slice in &snapshot.endpoint_slices {
        builder.diagnostics.extend(slice_diagnostics(slice));
    }
    let mut built = builder.finish();
    built.ours = our_refs;
    built
}

/// What is wrong with an EndpointSlice (its endpoints are not used).
pub(crate) fn slice_diagnostics(
    slice: &crate::model::EndpointSlice,
) -> impl Iterator<Item = Diagnostic> {
    let me = ObjectRef::of("EndpointSlice", &slice.metadata);
    super::endpoints::slice_problems(slice)
        .into_iter()
        .map(move |(field, reason)| {
            Diagnostic::error(me.clone(), field, format!("{reason}; not used"))
        })
}

/// `--default-backend`, as the object its diagnostics name.
fn flag_object() -> Arc<ObjectRef> {
    Arc::new(ObjectRef {
        kind: "Flag",
        namespace: String::new(),
        name: "--default-backend".to_owned(),
    })
}

/// The hosts of an Ingress's rules that parse.
fn rule_hosts(ingress: &Ingress) -> Vec<HostRule> {
    let rules = ingress.spec.as_ref().and_then(|s| s.rules.as_ref());
    rules
        .into_iter()
        .flatten()
        .filter_map(|r| HostRule::parse(r.host.as_deref()).ok())
        .collect()
}

fn single(backend: Arc<Backend>) -> Vec<WeightedBackend> {
    vec![WeightedBackend {
        backend,
        weight: 1,
        filters: None,
    }]
}

/// A route for any path of `host` (a default backend, a generated redirect).
fn catch_all(
    id: RouteId,
    ingress: Arc<ObjectRef>,
    host: HostRule,
    policy: Arc<Policy>,
    backend: Arc<Backend>,
) -> Arc<Route> {
    let backends = single(backend);
    Arc::new(Route {
        id,
        ingress,
        host,
        path: None,
        pattern: None,
        matches: Matches::default(),
        policy,
        spread: Spread::of(&backends),
        backends,
        canary: None,
    })
}

/// The order in which Ingresses claim hosts and paths.
fn age_then_name(i: &Ingress) -> (bool, Option<&Time>, Option<&str>, Option<&str>) {
    let m = &i.metadata;
    let created = m.creation_timestamp.as_ref();
    (
        created.is_none(),
        created,
        m.namespace.as_deref(),
        m.name.as_deref(),
    )
}

fn ingress_ref(ingress: &Ingress) -> ObjectRef {
    let mut r = ObjectRef::of("Ingress", &ingress.metadata);
    if r.namespace.is_empty() {
        r.namespace = "default".to_owned();
    }
    r
}

/// One claim on a host and path, remembered to resolve conflicts and to fill the router.
struct Claim {
    route: Arc<Route>,
    /// Indices into `spec.rules` and `.http.paths`, formatted only if someone conflicts.
    at: (usize, usize),
    /// The Ingress's creation time (seconds), to rank it among Gateway API routes.
    created: Option<i64>,
}

#[derive(Default)]
struct HostClaims {
    /// Keyed by (match path, is Exact): Prefix and ImplementationSpecific claim the same key.
    claims: Claims,
}

/// (match path, is Exact).
type ClaimKey = (String, bool);

/// A host's claims in key order. Most hosts have a few, kept in a sorted list: a B-tree's
/// first node is ~800 bytes, which at 100k hosts was 80 MB more at the peak of a full build.
enum Claims {
    Few(Vec<(ClaimKey, Claim)>),
    Many(BTreeMap<ClaimKey, Claim>),
}

impl Default for Claims {
    fn default() -> Self {
        Claims::Few(Vec::new())
    }
}

impl Claims {
    /// Past this many a host's claims go into a B-tree (a list's inserts cost its length).
    const FEW: usize = 16;

    fn get(&self, key: &ClaimKey) -> Option<&Claim> {
        match self {
            Claims::Few(list) => list
                .binary_search_by(|(k, _)| k.cmp(key))
                .ok()
                .map(|i| &list[i].1),
            Claims::Many(map) => map.get(key),
        }
    }

    fn insert(&mut self, key: ClaimKey, claim: Claim) {
        match self {
            Claims::Few(list) if list.len() < Self::FEW => {
                match list.binary_search_by(|(k, _)| k.cmp(&key)) {
                    Ok(i) => list[i].1 = claim,
                    Err(i) => list.insert(i, (key, claim)),
                }
            }
            Claims::Few(list) => {
                let mut map: BTreeMap<ClaimKey, Claim> = std::mem::take(list).into_iter().collect();
                map.insert(key, claim);
                *self = Claims::Many(map);
            }
            Claims::Many(map) => {
                map.insert(key, claim);
            }
        }
    }

    fn len(&self) -> usize {
        match self {
            Claims::Few(list) => list.len(),
            Claims::Many(map) => map.len(),
        }
    }

    /// In key order.
    fn values(&self) -> impl Iterator<Item = &Claim> + '_ {
        let (few, many) = match self {
            Claims::Few(list) => (list.as_slice(), None),
            Claims::Many(map) => (&[][..], Some(map)),
        };
        let many = many.into_iter().flat_map(|m| m.values());
        few.iter().map(|(_, c)| c).chain(many)
    }
}

/// A backend as first resolved; the error is kept so every route naming it is diagnosed.
type Resolved = Result<Arc<Backend>, (Unresolved, Arc<Backend>)>;

pub use super::secret::{Pem, secret_data, tls_material};

struct Builder<'a> {
    options: &'a Options,
    /// A partial build's way to the backends in force ([`Seed::reuse`], and
    /// [`Seed::gateway_reuse`]).
    reuse: Option<&'a Reuse<'a>>,
    gateway_reuse: Option<&'a Reuse<'a>>,
    /// Distinct users per backend ([`Built::users`]), and the backends the Ingress being
    /// placed counted already.
    users: FxHashMap<ServiceRef, u32>,
    counted: (Option<ObjectRef>, FxHashSet<ServiceRef>),
    flag_counted: FxHashSet<ServiceRef>,
    cross_host: FxHashSet<HostRule>,
    gateway_host_set: FxHashSet<HostRule>,
    global: Arc<Global>,
    services: ServiceIndex<'a>,
    secrets: FxHashMap<(&'a str, &'a str), &'a Secret>,
    backends: FxHashMap<ServiceRef, Resolved>,
    hosts: BTreeMap<HostRule, HostClaims>,
    /// Hosts whose paths are all regexes (ingress-nginx's `~*` locations).
    regex_hosts: FxHashSet<HostRule>,
    /// Regex paths by their text (`Err`: why it is not one), shared by every route and
    /// rewrite with the same text.
    regexes: FxHashMap<String, Result<Arc<PathRegex>, String>>,
    /// `app-root` redirects by host; the oldest Ingress's wins.
    roots: BTreeMap<HostRule, Arc<Route>>,
    /// `server-alias`: (alias, the host whose routes it shares, the Ingress).
    aliases: Vec<(HostRule, HostRule, Arc<ObjectRef>)>,
    /// `from-to-www-redirect`: (host redirected from, host redirected to, the Ingress).
    www: Vec<(HostRule, String, Arc<ObjectRef>)>,
    /// The policies of routes without annotations, without and with TLS on the host.
    plain: [Option<Arc<Policy>>; 2],
    routes: Vec<Arc<Route>>,
    default_route: Option<Arc<Route>>,
    tls: Vec<TlsBinding>,
    /// Every host some Ingress lists under `spec.tls`, whether or not its Secret is usable:
    /// a broken Secret falls back to the default certificate, the host still speaks TLS.
    tls_hosts: FxHashSet<HostRule>,
    /// Host → position in `tls`, to find the binding that won a host.
    tls_index: FxHashMap<HostRule, usize>,
    client_auth: Vec<ClientAuthBinding>,
    passthrough: Passthrough,
    /// Gateway API routes by host: their hosts are ranked lists ([`Paths::Ordered`]).
    gateway_hosts: BTreeMap<HostRule, Vec<Placement>>,
    gateway_status: GatewayStatus,
    gateway_backends: Vec<(ServiceRef, Arc<Backend>)>,
    gateway_uses: FxHashMap<ServiceRef, u32>,
    /// The creation time of the Ingress being placed (seconds).
    created: Option<i64>,
    /// Canary paths by (host, match path, is Exact), waiting for their main route.
    canaries: FxHashMap<(HostRule, (String, bool)), PendingCanary>,
    /// Whether the Ingress being placed sends to cluster IPs (`service-upstream`).
    service_upstream: bool,
    /// Backends that are a Service's cluster IP, by Service.
    cluster_ips: FxHashMap<ServiceRef, Arc<Backend>>,
    diagnostics: Vec<Diagnostic>,
}

/// A canary path, and whether a main route took it.
struct PendingCanary {
    canary: Arc<Canary>,
    field: String,
    /// `host/path`, for the diagnostic.
    at: String,
    used: bool,
}

/// What an Ingress's annotations read from Secrets (each an error naming what is wrong).
#[derive(Clone, Default)]
struct Secrets {
    basic: Option<Result<BasicAuth, String>>,
    client_ca: Option<Result<(), String>>,
    upstream_tls: Option<Result<UpstreamTls, String>>,
}

/// The backends a policy may send to besides the route's own.
struct Fallbacks {
    fallback: Option<Arc<Backend>>,
    errors: Option<Arc<Backend>>,
}

impl<'a> Builder<'a> {
    fn new(snapshot: &'a Snapshot, options: &'a Options, global: Arc<Global>) -> Builder<'a> {
        Builder {
            options,
            reuse: None,
            gateway_reuse: None,
            // About one backend per Service: sized once, not grown through every doubling.
            users: FxHashMap::with_capacity_and_hasher(snapshot.services.len(), Default::default()),
            counted: (None, FxHashSet::default()),
            flag_counted: FxHashSet::default(),
            cross_host: FxHashSet::default(),
            gateway_host_set: FxHashSet::default(),
            global,
            services: ServiceIndex::new(&snapshot.services, &snapshot.endpoint_slices),
            secrets: snapshot
                .secrets
                .iter()
                .filter_map(|s| {
                    Some((
                        (
                            s.metadata.namespace.as_deref()?,
                            s.metadata.name.as_deref()?,
                        ),
                        &**s,
                    ))
                })
                .collect(),
            backends: FxHashMap::with_capacity_and_hasher(
                snapshot.services.len(),
                Default::default(),
            ),
            hosts: BTreeMap::new(),
            regex_hosts: FxHashSet::default(),
            regexes: FxHashMap::default(),
            roots: BTreeMap::new(),
            aliases: Vec::new(),
            www: Vec::new(),
            plain: [None, None],
            routes: Vec::new(),
            default_route: None,
            tls: Vec::new(),
            tls_hosts: FxHashSet::default(),
            tls_index: FxHashMap::default(),
            client_auth: Vec::new(),
            passthrough: Passthrough::default(),
            gateway_hosts: BTreeMap::new(),
            gateway_status: GatewayStatus::default(),
            gateway_backends: Vec::new(),
            gateway_uses: FxHashMap::default(),
            created: None,
            canaries: FxHashMap::default(),
            service_upstream: false,
            cluster_ips: FxHashMap::default(),
            diagnostics: Vec::new(),
        }
    }
}

impl Builder<'_> {
    fn diagnose(
        &mut self,
        object: &ObjectRef,
        field: impl Into<String>,
        reason: impl Into<String>,
    ) {
        self.diagnostics
            .push(Diagnostic::error(object.clone(), field, reason));
    }

    fn warn(&mut self, object: &ObjectRef, field: impl Into<String>, reason: impl Into<String>) {
        self.diagnostics
            .push(Diagnostic::warning(object.clone(), field, reason));
    }

    /// The policy of a route without annotations (on a host without TLS): shared by all.
    fn plain_policy(&mut self) -> Arc<Policy> {
        self.plain_policy_for(false)
    }

    fn plain_policy_for(&mut self, tls: bool) -> Arc<Policy> {
        if let Some(p) = &self.plain[usize::from(tls)] {
            return p.clone();
        }
        let none = Fallbacks {
            fallback: None,
            errors: self.global_error_backend(),
        };
        let policy =
            Arc::new(Annotations::default().policy(self.context(tls, &none, Secrets::default())));
        self.plain[usize::from(tls)] = Some(policy.clone());
        policy
    }

    fn add_ingress(&mut self, ingress: &Ingress, annotations: &Annotations) {
        let me = Arc::new(ingress_ref(ingress));
        self.created = ingress
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.as_second());
        self.report(&me, annotations);
        let Some(spec) = ingress.spec.as_ref() else {
            self.diagnose(&me, "spec", "missing");
            return;
        };
        if let Some(default) = &spec.default_backend {
            self.add_default_backend(&me, default);
        }
        self.service_upstream = annotations
            .service_upstream
            .unwrap_or(self.global.service_upstream);
        if annotations.ssl_passthrough {
            self.add_passthrough(&me, spec);
        }
        let fallbacks = self.fallbacks(&me, annotations);
        let secrets = Secrets {
            basic: self.basic_auth(&me, annotations),
            client_ca: self.client_ca(&me, ingress, annotations),
            upstream_tls: self.upstream_tls(&me, annotations),
        };
        // One policy serves every path of the Ingress (two: with and without TLS on the
        // host); a rewrite takes its pattern from the route's own path regex.
        let mut shared: [Option<Arc<Policy>>; 2] = [None, None];
        let mut seen_hosts = FxHashSet::default();
        for (i, rule) in spec.rules.iter().flatten().enumerate() {
            let host = match HostRule::parse(rule.host.as_deref()) {
                Ok(h) => h,
                Err(reason) => {
                    self.diagnose(&me, format!("spec.rules[{i}].host"), reason);
                    continue;
                }
            };
            if seen_hosts.insert(host.clone()) && annotations.denial().is_none() {
                self.add_host_annotations(&me, &host, annotations);
            }
            let Some(http) = &rule.http else { continue };
            let tls = self.has_tls(&host);
            for (j, p) in http.paths.iter().enumerate() {
                let field = format!("spec.rules[{i}].http.paths[{j}]");
                let path_type = Some(p.path_type.as_str()).filter(|t| !t.is_empty());
                let path = match PathRule::parse(p.path.as_deref(), path_type) {
                    Ok(path) => path,
                    Err(reason) => {
                        self.diagnose(&me, format!("{field}.path"), reason);
                        continue;
                    }
                };
                let policy = match annotations.any {
                    false => self.plain_policy_for(tls),
                    true => shared[usize::from(tls)]
                        .get_or_insert_with(|| {
                            let cx = self.context(tls, &fallbacks, secrets.clone());
                            Arc::new(annotations.policy(cx))
                        })
                        .clone(),
                };
                self.claim(&me, &host, path, &p.backend, (i, j), policy);
            }
        }
    }

    /// `ssl-passthrough`: each rule host's TLS goes to the backend of its `/` path (else its
    /// first path), as ingress-nginx's root location.
    fn add_passthrough(
        &mut self,
        me: &Arc<ObjectRef>,
        spec: &k8s_openapi::api::networking::v1::IngressSpec,
    ) {
        let field = "metadata.annotations[nginx.ingress.kubernetes.io/ssl-passthrough]";
        if !self.options.ssl_passthrough {
            let reason = "ignored: TLS passthrough needs --enable-ssl-passthrough";
            self.warn(me, field, reason);
            return;
        }
        for (i, rule) in spec.rules.iter().flatten().enumerate() {
            let Ok(host @ (HostRule::Exact(_) | HostRule::Wildcard(_))) =
                HostRule::parse(rule.host.as_deref())
            else {
                continue;
            };
            let paths = rule.http.iter().flat_map(|h| h.paths.iter());
            let mut chosen = None;
            for (j, p) in paths.enumerate() {
                if chosen.is_none() || p.path.as_deref() == Some("/") {
                    chosen = Some((j, p));
                }
            }
            let Some((j, p)) = chosen else { continue };
            let backend_field = format!("spec.rules[{i}].http.paths[{j}].backend");
            let backend = self.ingress_backend(&p.backend, me, &backend_field);
            if !self.passthrough.add(&host, backend) {
                let reason = format!("host {host} is passed through for an older Ingress already");
                self.warn(me, field, reason);
            }
        }
    }

    /// A canary Ingress: each of its paths waits for the main route of the same host and path.
    /// Its other annotations do not apply (the main route's policy does, as in ingress-nginx).
    fn add_canary(&mut self, ingress: &Ingress, annotations: &Annotations, rule: &CanaryRule) {
        let me = Arc::new(ingress_ref(ingress));
        self.service_upstream = annotations
            .service_upstream
            .unwrap_or(self.global.service_upstream);
        if let Some(denial) = annotations.denial() {
            let reason = format!("{}; the canary is not used", denial.reason);
            self.diagnose(&me, denial.field.clone(), reason);
            return;
        }
        let rules = ingress.spec.as_ref().and_then(|s| s.rules.as_ref());
        for (i, r) in rules.into_iter().flatten().enumerate() {
            let Ok(host) = HostRule::parse(r.host.as_deref()) else {
                self.diagnose(
                    &me,
                    format!("spec.rules[{i}].host"),
                    "not a host; the canary is not used",
                );
                continue;
            };
            for (j, p) in r.http.iter().flat_map(|h| h.paths.iter()).enumerate() {
                let field = format!("spec.rules[{i}].http.paths[{j}]");
                let path_type = Some(p.path_type.as_str()).filter(|t| !t.is_empty());
                let Ok(path) = PathRule::parse(p.path.as_deref(), path_type) else {
                    self.diagnose(
                        &me,
                        format!("{field}.path"),
                        "not a path; the canary is not used",
                    );
                    continue;
                };
                let key = (path.match_path().to_owned(), path.path_type.is_exact());
                if let Some(first) = self.canaries.get(&(host.clone(), key.clone())) {
                    let reason = format!(
                        "host {host} path {} already has the canary of {}; this one is not used",
                        path.path, first.canary.ingress
                    );
                    self.diagnose(&me, field, reason);
                    continue;
                }
                let backend = self.ingress_backend(&p.backend, &me, &format!("{field}.backend"));
                let canary = Arc::new(Canary {
                    ingress: me.clone(),
                    backend,
                    rule: rule.clone(),
                });
                let pending = PendingCanary {
                    canary,
                    field,
                    at: format!("{host}{}", path.path),
                    used: false,
                };
                self.canaries.insert((host.clone(), key), pending);
            }
        }
    }

    /// A canary path no main Ingress routes serves nothing (ingress-nginx answers 404).
    fn report_unused_canaries(&mut self) {
        let mut unused: Vec<(Arc<ObjectRef>, String, String)> = self
            .canaries
            .values()
            .filter(|c| !c.used)
            .map(|c| (c.canary.ingress.clone(), c.field.clone(), c.at.clone()))
            .collect();
        unused.sort();
        for (ingress, field, at) in unused {
            let reason = format!("no main Ingress routes {at}; the canary serves nothing");
            self.diagnose(&ingress, field, reason);
        }
    }

    /// The translator's findings as diagnostics of the Ingress.
    fn report(&mut self, me: &ObjectRef, annotations: &Annotations) {
        for f in &annotations.findings {
            match f.level {
                Level::Error => {
                    let reason = format!("{}; the Ingress's routes answer 503", f.reason);
                    self.diagnose(me, f.field.clone(), reason)
                }
                Level::Warning => self.warn(me, f.field.clone(), f.reason.clone()),
            }
        }
    }

    fn context(&self, tls: bool, fallbacks: &Fallbacks, secrets: Secrets) -> Context<'_> {
        Context {
            tls,
            global: &self.global,
            basic: secrets.basic,
            client_ca: secrets.client_ca,
            upstream_tls: secrets.upstream_tls,
            fallback: fallbacks.fallback.clone(),
            error_backend: fallbacks.errors.clone(),
        }
    }

    fn add_default_backend(&mut self, me: &Arc<ObjectRef>, default: &IngressBackend) {
        let backend = self.ingress_backend(default, me, "spec.defaultBackend");
        match &self.default_route {
            None => {
                let policy = self.plain_policy();
                let id = RouteId::of((&me.namespace, &me.name, "spec.defaultBackend"));
                let route = catch_all(id, me.clone(), HostRule::Any, policy, backend);
                self.default_route = Some(route);
            }
            Some(winner) => {
                let reason = format!(
                    "ignored: the default backend comes from the older {}",
                    winner.ingress
                );
                self.diagnose(me, "spec.defaultBackend", reason);
            }
        }
    }

    /// The `default-backend` Service (its first port, as ingress-nginx), and who answers
    /// `custom-http-errors`.
    fn fallbacks(&mut self, me: &Arc<ObjectRef>, annotations: &Annotations) -> Fallbacks {
        let field = "metadata.annotations[nginx.ingress.kubernetes.io/default-backend]";
        let fallback = annotations.default_backend.as_ref().map(|name| {
            match self.services.first_port(&me.namespace, name) {
                Some(port) => {
                    let service = ServiceRef {
                        namespace: me.namespace.clone(),
                        name: name.clone(),
                        port,
                    };
                    self.backend(service, me, field)
                }
                None => {
                    let reason =
                        format!("Service {}/{name} not found or has no port", me.namespace);
                    self.diagnose(me, field, reason.clone());
                    unavailable(&reason)
                }
            }
        });
        let global = self
            .options
            .default_backend
            .clone()
            .filter(|_| annotations.custom_http_errors.is_some());
        let errors = match fallback.clone() {
            Some(f) => Some(f),
            None => match global {
                Some(service) => Some(self.backend(service, me, "--default-backend")),
                None => self.global_error_backend(),
            },
        };
        if annotations.custom_http_errors.is_some() && errors.is_none() {
            let field = "metadata.annotations[nginx.ingress.kubernetes.io/custom-http-errors]";
            self.warn(me, field, "ignored: there is no default-backend annotation nor --default-backend to answer the errors");
        }
        Fallbacks { fallback, errors }
    }

    /// The users of the Ingress's `auth-secret`; a missing or unreadable Secret is a
    /// diagnostic naming it, and the routes answer 503 (never open).
    fn basic_auth(
        &mut self,
        me: &Arc<ObjectRef>,
        annotations: &Annotations,
    ) -> Option<Result<BasicAuth, String>> {
        let r = annotations.basic_auth.as_ref()?;
        let field = "metadata.annotations[nginx.ingress.kubernetes.io/auth-secret]";
        let secret = ObjectRef {
            kind: "Secret",
            namespace: r.namespace.clone(),
            name: r.name.clone(),
        };
        let result = self.secret_for(me, &r.namespace, &r.name).and_then(|s| {
            let data = secret_data(s);
            let text = |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|_| "not UTF-8".to_owned());
            let realm = r.realm.clone();
            let users = match r.map {
                false => {
                    let file = data.get("auth").ok_or("has no key \"auth\"".to_owned())?;
                    text(file).and_then(|t| BasicAuth::from_htpasswd(realm, secret.clone(), &t))
                }
                true => {
                    let pairs: Result<Vec<(&str, String)>, String> =
                        data.iter().map(|(k, v)| Ok((*k, text(v)?))).collect();
                    pairs.and_then(|pairs| {
                        let entries = pairs.iter().map(|(k, v)| (*k, v.as_str()));
                        BasicAuth::from_map(realm, secret.clone(), entries)
                    })
                }
            };
            users.map_err(|e| format!("Secret {}/{}: {e}", r.namespace, r.name))
        });
        if let Err(reason) = &result {
            self.diagnose(
                me,
                field,
                format!("{reason}; the Ingress's routes answer 503"),
            );
        }
        Some(result)
    }

    /// The CA of the Ingress's `auth-tls-secret` (key `ca.crt`), bound to each of its hosts
    /// for the TLS listener (the oldest Ingress's per host). A missing Secret or a CA that
    /// does not parse is a diagnostic, and the routes answer 503 (never unchecked).
    fn client_ca(
        &mut self,
        me: &Arc<ObjectRef>,
        ingress: &Ingress,
        annotations: &Annotations,
    ) -> Option<Result<(), String>> {
        let r = annotations
            .client_certs
            .as_ref()
            .filter(|c| c.verify != VerifyClient::Off)?;
        let field = "metadata.annotations[nginx.ingress.kubernetes.io/auth-tls-secret]";
        let secret = ObjectRef {
            kind: "Secret",
            namespace: r.namespace.clone(),
            name: r.name.clone(),
        };
        let ca = self.secret_for(me, &r.namespace, &r.name).and_then(|s| {
            let data = secret_data(s);
            let pem = data
                .get("ca.crt")
                .ok_or_else(|| format!("Secret {}/{} has no ca.crt", r.namespace, r.name))?;
            check_ca(pem).map_err(|e| format!("Secret {}/{}: ca.crt {e}", r.namespace, r.name))?;
            Ok(Pem::from(*pem))
        });
        let ca = match ca {
            Ok(ca) => ca,
            Err(reason) => {
                let reason = format!("{reason}; the Ingress's routes answer 503");
                self.diagnose(me, field, reason.clone());
                return Some(Err(reason));
            }
        };
        for host in rule_hosts(ingress) {
            if self.client_auth.iter().any(|b| b.host == host) {
                continue;
            }
            self.client_auth.push(ClientAuthBinding {
                host,
                secret: secret.clone(),
                ingress: (**me).clone(),
                ca_pem: ca.clone(),
                verify_chain: r.verify != VerifyClient::OptionalNoCa,
            });
        }
        Some(Ok(()))
    }

    /// TLS to the Ingress's pods (`backend-protocol: HTTPS`/`GRPCS`), with `proxy-ssl-secret`'s
    /// CA and client certificate read. A missing Secret is a diagnostic; the routes answer 503.
    fn upstream_tls(
        &mut self,
        me: &Arc<ObjectRef>,
        annotations: &Annotations,
    ) -> Option<Result<UpstreamTls, String>> {
        let r = annotations.proxy_ssl.as_ref()?;
        let mut tls = UpstreamTls {
            ca: None,
            client: None,
            verify: r.verify,
            name: r.name.clone(),
            sni: r.sni,
            depth: r.depth,
            tls12: r.tls12,
            tls13: r.tls13,
            h2: annotations.protocol.is_h2(),
            id: 0,
        };
        let Some((namespace, name)) = &r.secret else {
            return Some(Ok(tls.identified()));
        };
        let field = "metadata.annotations[nginx.ingress.kubernetes.io/proxy-ssl-secret]";
        let read = self.secret_for(me, namespace, name).and_then(|s| {
            let data = secret_data(s);
            if let Some(ca) = data.get("ca.crt") {
                check_ca(ca).map_err(|e| format!("Secret {namespace}/{name}: ca.crt {e}"))?;
                tls.ca = Some(Pem::from(*ca));
            } else if r.verify {
                return Err(format!(
                    "Secret {namespace}/{name} has no ca.crt to verify pods with"
                ));
            }
            if let (Some(crt), Some(key)) = (data.get("tls.crt"), data.get("tls.key")) {
                tls.client = Some((Pem::from(*crt), Pem::from(*key)));
            }
            Ok(tls.identified())
        });
        if let Err(reason) = &read {
            let reason = format!("{reason}; the Ingress's routes answer 503");
            self.diagnose(me, field, reason);
        }
        Some(read)
    }

    /// The Secret an annotation of `me` names, if it exists and may be read.
    fn secret_for(&self, me: &ObjectRef, namespace: &str, name: &str) -> Result<&Secret, String> {
        if namespace != me.namespace && !self.options.cross_namespace_secrets {
            return Err(format!(
                "Secret {namespace}/{name} is in another namespace, which --allow-cross-namespace-secrets=false forbids"
            ));
        }
        self.secrets
            .get(&(namespace, name))
            .copied()
            .ok_or_else(|| format!("Secret {namespace}/{name} not found"))
    }

    /// `--default-backend`, when the ConfigMap's `custom-http-errors` asks it to answer errors.
    fn global_error_backend(&mut self) -> Option<Arc<Backend>> {
        if self.global.custom_http_errors.is_empty() {
            return None;
        }
        let service = self.options.default_backend.clone()?;
        let object = flag_object();
        Some(self.backend(service, &object, "value"))
    }

    /// `app-root`, `server-alias` and `from-to-www-redirect` act on the whole host.
    fn add_host_annotations(&mut self, me: &Arc<ObjectRef>, host: &HostRule, a: &Annotations) {
        if let Some(root) = &a.app_root {
            let redirect = Redirect {
                to: RedirectTo::Root(root.clone()),
                code: StatusCode::FOUND,
            };
            let route = self.redirect_route(me, host, "app-root", redirect);
            if !self.roots.contains_key(host) {
                self.routes.push(route.clone());
                self.roots.insert(host.clone(), route);
            }
        }
        for alias in &a.aliases {
            self.aliases.push((alias.clone(), host.clone(), me.clone()));
            self.cross_host.extend([alias.clone(), host.clone()]);
        }
        if a.from_to_www
            && let HostRule::Exact(name) = host
        {
            let other = match name.strip_prefix("www.") {
                Some(bare) => bare.to_owned(),
                None => format!("www.{name}"),
            };
            self.www
                .push((HostRule::Exact(other.clone()), name.clone(), me.clone()));
            self.cross_host
                .extend([HostRule::Exact(other), host.clone()]);
        }
    }

    /// A route that only answers with `redirect`, for any path of `host`.
    fn redirect_route(
        &self,
        me: &Arc<ObjectRef>,
        host: &HostRule,
        what: &str,
        redirect: Redirect,
    ) -> Arc<Route> {
        let policy = Arc::new(Policy {
            filters: vec![Filter::Redirect(redirect)],
            ..Policy::default()
        });
        let id = RouteId::of((&me.namespace, &me.name, host, what));
        let backend = unavailable("this route only redirects");
        catch_all(id, me.clone(), host.clone(), policy, backend)
    }

    /// The regex of a path text, shared by every path with the same text.
    fn regex(&mut self, path: &str) -> Result<Arc<PathRegex>, String> {
        if let Some(found) = self.regexes.get(path) {
            return found.clone();
        }
        let made = PathRegex::new(path).map(Arc::new);
        self.regexes.insert(path.to_owned(), made.clone());
        made
    }

    /// Whether requests for `host` arrive over TLS: an exact TLS host, or a wildcard TLS
    /// host covering it (or the same wildcard).
    fn has_tls(&self, host: &HostRule) -> bool {
        match host {
            HostRule::Any => false,
            HostRule::Wildcard(_) => self.tls_hosts.contains(host),
            HostRule::Exact(h) => {
                self.tls_hosts.contains(host)
                    || wildcard_suffix(h)
                        .is_some_and(|s| self.tls_hosts.contains(&HostRule::Wildcard(s.to_owned())))
            }
        }
    }

    fn add_tls_of(&mut self, ingress: &Ingress) {
        let me = Arc::new(ingress_ref(ingress));
        let entries = ingress.spec.as_ref().and_then(|s| s.tls.as_ref());
        for (i, tls) in entries.into_iter().flatten().enumerate() {
            self.add_tls(&me, i, tls);
        }
    }

    /// Places one path of one Ingress, unless an older Ingress already claimed the same host,
    /// path and type; the backend is resolved only for paths that are placed.
    fn claim(
        &mut self,
        me: &Arc<ObjectRef>,
        host: &HostRule,
        path: PathRule,
        b: &IngressBackend,
        at: (usize, usize),
        policy: Arc<Policy>,
    ) {
        let key = (path.match_path().to_owned(), path.path_type.is_exact());
        let field =
            |(rule, index): (usize, usize)| format!("spec.rules[{rule}].http.paths[{index}]");
        if let Some(winner) = self.hosts.get(host).and_then(|h| h.claims.get(&key)) {
            let reason = format!(
                "host {host} path {} ({:?}) is already routed by {} at {}; this path is ignored",
                path.path,
                path.path_type,
                winner.route.ingress,
                field(winner.at)
            );
            self.diagnose(me, field(at), reason);
            return;
        }
        // On a host whose paths are regexes the path must be one, for matching and rewriting.
        let pattern = match self.regex_hosts.contains(host) {
            false => None,
            true => match self.regex(&path.path) {
                Ok(p) => Some(p),
                Err(reason) => {
                    let reason = format!(
                        "{reason}, and this host's paths are regexes (use-regex or rewrite-target on one of its Ingresses); this path is not served"
                    );
                    self.diagnose(me, format!("{}.path", field(at)), reason);
                    return;
                }
            },
        };
        let backend = self.ingress_backend(b, me, &format!("{}.backend", field(at)));
        let backends = single(backend);
        let route = Arc::new(Route {
            id: RouteId::of((&me.namespace, &me.name, host, &path.path, path.path_type)),
            ingress: me.clone(),
            host: host.clone(),
            path: Some(path),
            pattern,
            matches: Matches::default(),
            policy,
            spread: Spread::of(&backends),
            backends,
            canary: self
                .canaries
                .get_mut(&(host.clone(), key.clone()))
                .map(|c| {
                    c.used = true;
                    c.canary.clone()
                }),
        });
        self.routes.push(route.clone());
        let claims = &mut self.hosts.entry(host.clone()).or_default().claims;
        let created = self.created;
        claims.insert(key, Claim { route, at, created });
    }

    /// Resolves `spec...backend` to a shared backend; problems become diagnostics on `field`.
    fn ingress_backend(&mut self, b: &IngressBackend, me: &ObjectRef, field: &str) -> Arc<Backend> {
        if b.resource.is_some() {
            self.diagnose(
                me,
                format!("{field}.resource"),
                "resource backends are not supported; requests to this path get 503",
            );
            return unavailable("resource backends are not supported");
        }
        let Some(service) = &b.service else {
            self.diagnose(me, field, "names no service");
            return unavailable("the backend names no service");
        };
        let port = service.port.as_ref();
        let port = match (
            port.and_then(|p| p.number),
            port.and_then(|p| p.name.as_deref()),
        ) {
            (Some(n), None) if (1..=65535).contains(&n) => PortRef::Number(n),
            (Some(n), None) => {
                self.diagnose(
                    me,
                    format!("{field}.service.port.number"),
                    format!("{n} is not a port (1-65535)"),
                );
                return unavailable("invalid service port");
            }
            (None, Some(name)) if !name.is_empty() => PortRef::Name(name.to_owned()),
            (Some(_), Some(_)) => {
                self.diagnose(
                    me,
                    format!("{field}.service.port"),
                    "set either number or name, not both",
                );
                return unavailable("invalid service port");
            }
            _ => {
                self.diagnose(
                    me,
                    format!("{field}.service.port"),
                    "needs a port number or name",
                );
                return unavailable("invalid service port");
            }
        };
        let service = ServiceRef {
            namespace: me.namespace.clone(),
            name: service.name.clone(),
            port,
        };
        self.backend(service, me, &format!("{field}.service"))
    }

    /// The backend of a Service port, built once per build and shared by every route naming it.
    fn backend(&mut self, service: ServiceRef, me: &ObjectRef, field: &str) -> Arc<Backend> {
        if self.service_upstream {
            if let Some(b) = self.cluster_ips.get(&service) {
                return b.clone();
            }
            if let Some(endpoints) = self.services.cluster_ip(&service) {
                let backend = Arc::new(Backend::new(Some(service.clone()), endpoints, None));
                self.cluster_ips.insert(service, backend.clone());
                return backend;
            }
        }
        let key = service.clone();
        let reuse = self.reuse;
        let entry = self.backends.entry(service.clone()).or_insert_with(|| {
            if let Some(b) = reuse.and_then(|r| r(&service)) {
                return Ok(b);
            }
            match super::endpoints::resolution(&self.services, &service) {
                Ok(r) => Ok(Arc::new(Backend::new(
                    Some(service),
                    r.endpoints,
                    r.problem,
                ))),
                Err(why) => {
                    let reason = why.reason().to_owned();
                    let backend = Backend::new(Some(service), Endpoints::default(), Some(reason));
                    Err((why, Arc::new(backend)))
                }
            }
        });
        let (why, backend) = match entry {
            Ok(backend) => {
                let backend = backend.clone();
                self.count_user(key, me);
                return backend;
            }
            Err((why, backend)) => (why.clone(), backend.clone()),
        };
        let suffix = match (&why, backend.service.as_ref().map(|s| &s.port)) {
            (Unresolved::Service(_), _) => "name",
            (Unresolved::Port(_), Some(PortRef::Name(_))) => "port.name",
            (Unresolved::Port(_), _) => "port.number",
        };
        let field = if field.ends_with(".service") {
            format!("{field}.{suffix}")
        } else {
            field.to_owned()
        };
        self.diagnose(me, field, format!("{}; requests get 503", why.reason()));
        backend
    }
    /// Counts `me` once among the users of `service` ([`Built::users`]). An Ingress's
    /// backends are all resolved while it is placed, so "once" needs only its own set.
    fn count_user(&mut self, service: ServiceRef, me: &ObjectRef) {
        let (current, seen) = &mut self.counted;
        if current.as_ref() != Some(me) {
            if me.kind != "Ingress" {
                // The flag's backend: one user per build, whichever Ingress asked for it.
                if self.flag_counted.insert(service.clone()) {
                    *self.users.entry(service).or_default() += 1;
                }
                return;
            }
            *current = Some(me.clone());
            seen.clear();
        }
        if seen.insert(service.clone()) {
            *self.users.entry(service).or_default() += 1;
        }
    }

    fn add_tls(&mut self, me: &ObjectRef, i: usize, tls: &IngressTLS) {
        let field = format!("spec.tls[{i}]");
        let mut hosts = Vec::new();
        for (j, host) in tls.hosts.iter().flatten().enumerate() {
            match HostRule::parse(Some(host)) {
                Ok(HostRule::Any) | Err(_) => {
                    let reason = format!("{host:?} is not a host name");
                    self.diagnose(me, format!("{field}.hosts[{j}]"), reason);
                }
                Ok(h) => {
                    self.tls_hosts.insert(h.clone());
                    hosts.push((j, h));
                }
            }
        }
        if tls.hosts.as_ref().is_none_or(Vec::is_empty) {
            let reason = "lists no host; name the hosts this certificate serves";
            self.diagnose(me, format!("{field}.hosts"), reason);
            return;
        }
        let Some(secret_name) = tls.secret_name.as_deref().filter(|n| !n.is_empty()) else {
            let reason = "missing; these hosts get the default certificate";
            self.diagnose(me, format!("{field}.secretName"), reason);
            return;
        };
        let secret_ref = ObjectRef {
            kind: "Secret",
            namespace: me.namespace.clone(),
            name: secret_name.to_owned(),
        };
        let material = match self.secrets.get(&(me.namespace.as_str(), secret_name)) {
            None => Err(format!("Secret {} not found", secret_ref.key())),
            Some(secret) => tls_material(secret),
        };
        let (cert_pem, key_pem) = match material {
            Ok(m) => m,
            Err(reason) => {
                let reason = format!("{reason}; these hosts get the default certificate");
                self.diagnose(me, format!("{field}.secretName"), reason);
                return;
            }
        };
        for (j, host) in hosts {
            if let Some(&k) = self.tls_index.get(&host) {
                let winner = &self.tls[k];
                if winner.secret != secret_ref {
                    let reason = format!(
                        "host {host} already uses {} from the older {}; this entry is ignored",
                        winner.secret, winner.ingress
                    );
                    self.diagnose(me, format!("{field}.hosts[{j}]"), reason);
                }
                continue;
            }
            self.tls_index.insert(host.clone(), self.tls.len());
            self.tls.push(TlsBinding {
                host,
                deep: false,
                secret: secret_ref.clone(),
                ingress: me.clone(),
                cert_pem: cert_pem.clone(),
                key_pem: key_pem.clone(),
            });
        }
    }
    /// The Gateway API's routes, certificates, status and diagnostics.
    fn add_gateway(&mut self, mut translated: gateway::Translated) {
        self.diagnostics.append(&mut translated.diagnostics);
        self.gateway_backends = std::mem::take(&mut translated.backends);
        self.gateway_uses = std::mem::take(&mut translated.uses);
        self.gateway_status = std::mem::take(&mut translated.status);
        for cert in std::mem::take(&mut translated.certs) {
            self.gateway_host_set.insert(cert.host.clone());
            let (host, deep) = match &cert.host {
                HostRule::Any => (HostRule::Any, false),
                h @ HostRule::Wildcard(_) => (h.clone(), true),
                h => (h.clone(), false),
            };
            if let Some(&k) = self.tls_index.get(&host) {
                let winner = &self.tls[k];
                if winner.secret != cert.secret {
                    let reason = format!(
                        "host {host} already uses {} from {}; {} is not used for it",
                        winner.secret, winner.ingress, cert.secret
                    );
                    self.warn(&cert.gateway, "spec.listeners", reason);
                }
                continue;
            }
            self.tls_index.insert(host.clone(), self.tls.len());
            self.tls.push(TlsBinding {
                host,
                deep,
                secret: cert.secret,
                ingress: cert.gateway,
                cert_pem: cert.cert_pem,
                key_pem: cert.key_pem,
            });
        }
        self.routes
            .extend(translated.placements.iter().map(|p| p.route.clone()));
        for (host, placements) in gateway::host_groups(&translated) {
            self.gateway_host_set.insert(host.clone());
            if self.regex_hosts.contains(&host) {
                let reason = format!(
                    "host {host} has ingress-nginx regex paths (use-regex or rewrite-target on an Ingress); HTTPRoute rules for it are not served"
                );
                for p in placements.iter().filter(|p| p.host == host) {
                    self.diagnose(&p.route.ingress, "spec.hostnames", reason.clone());
                }
                continue;
            }
            self.gateway_hosts.insert(host, placements);
        }
        self.diagnostics.dedup();
    }

    /// A host group with Gateway API routes: its Ingress claims and the placements, ranked.
    fn ordered(claims: Option<&HostClaims>, placements: &[Placement]) -> Paths {
        // Placements come ranked; Ingress claims join them by the same rank.
        let mut ranked: Vec<(Rank, PathMatch, Arc<Route>)> = placements
            .iter()
            .map(|p| (p.rank.clone(), p.path.clone(), p.route.clone()))
            .collect();
        for claim in claims.into_iter().flat_map(|c| c.claims.values()) {
            let Some(path) = &claim.route.path else {
                continue;
            };
            let path = PathMatch::Rule(path.clone());
            let rank = Rank::of(
                &claim.route.host,
                &path,
                &claim.route.matches,
                claim.created,
                &claim.route.ingress,
                claim.at,
            );
            ranked.push((rank, path, claim.route.clone()));
        }
        ranked.sort_by(|a, b| a.0.cmp(&b.0));
        ranked.dedup_by(|a, b| Arc::ptr_eq(&a.2, &b.2));
        Paths::Ordered(ranked.into_iter().map(|(_, p, r)| (p, r)).collect())
    }

    fn finish(mut self) -> Built {
        let gateway_backends = self
            .gateway_backends
            .iter()
            .map(|(s, b)| {
                let uses = self.gateway_uses.get(s).copied().unwrap_or(0);
                (s.clone(), (b.clone(), uses))
            })
            .collect();
        let backends = self.backends_by_service();
        let mut table = RoutingTable::default();
        let mut hosts = std::mem::take(&mut self.hosts);
        let gateway_hosts = std::mem::take(&mut self.gateway_hosts);
        for (host, placements) in &gateway_hosts {
            let claims = hosts.remove(host);
            let paths = Self::ordered(claims.as_ref(), placements);
            let root = self.roots.remove(host);
            insert_group(&mut table, host, HostRoutes { paths, root });
            // Below one label, a Gateway API wildcard is its routes alone.
            if let HostRule::Wildcard(suffix) = host {
                let group = HostRoutes {
                    paths: Self::ordered(None, placements),
                    root: None,
                };
                table
                    .deep_wildcard
                    .insert(suffix.as_str().into(), Arc::new(group));
            }
        }
        for (host, claims) in hosts {
            let paths = if self.regex_hosts.contains(&host) {
                Self::regex_paths(&claims)
            } else {
                self.router(&host, &claims)
            };
            let root = self.roots.remove(&host);
            insert_group(&mut table, &host, HostRoutes { paths, root });
        }
        // An app-root whose own paths all failed still answers `/`.
        for (host, root) in std::mem::take(&mut self.roots) {
            let group = HostRoutes {
                paths: Paths::default(),
                root: Some(root),
            };
            insert_group(&mut table, &host, group);
        }
        self.add_www_redirects(&mut table);
        self.add_aliases(&mut table);
        table.default_route = self.default_route;
        table.routes = self.routes;
        Built {
            table: Arc::new(table),
            ours: ShardedMap::default(),
            tls: Arc::new(self.tls),
            diagnostics: self.diagnostics,
            global: self.global,
            client_auth: Arc::new(self.client_auth),
            passthrough: self.passthrough,
            gateway: Arc::new(self.gateway_status),
            backends,
            users: self.users.into_iter().collect(),
            cross_host: self.cross_host,
            gateway_hosts: self.gateway_host_set.into_iter().map(|h| (h, ())).collect(),
            gateway_backends,
        }
    }

    /// The backends that follow EndpointSlices (not cluster IPs, not the unresolved).
    fn backends_by_service(&mut self) -> ShardedMap<ServiceRef, Vec<Arc<Backend>>> {
        let mut out: FxHashMap<ServiceRef, Vec<Arc<Backend>>> = FxHashMap::default();
        for (service, resolved) in std::mem::take(&mut self.backends) {
            if let Ok(b) = resolved {
                out.entry(service).or_default().push(b);
            }
        }
        for (service, b) in std::mem::take(&mut self.gateway_backends) {
            out.entry(service).or_default().push(b);
        }
        out.into_iter().collect()
    }

    /// The matchit router of one host group: Exact before Prefix at each key; a host of a
    /// few unconditional paths gets them in precedence order instead ([`Paths::Few`]).
    fn router(&mut self, host: &HostRule, claims: &HostClaims) -> Paths {
        if claims.claims.len() <= FEW_PATHS
            && claims
                .claims
                .values()
                .all(|c| c.route.path.is_some() && c.route.matches.is_empty())
        {
            let mut routes: Vec<Arc<Route>> =
                claims.claims.values().map(|c| c.route.clone()).collect();
            // Highest precedence first; rules of equal precedence never match one path.
            routes.sort_by(|a, b| match (&a.path, &b.path) {
                (Some(a), Some(b)) => b.precedence(a),
                _ => std::cmp::Ordering::Equal,
            });
            return Paths::Few(routes.into_boxed_slice());
        }
        let mut slots: BTreeMap<String, Vec<Arc<Route>>> = BTreeMap::new();
        // Exact claims first, so they come first in every slot they share with a prefix.
        let ordered = claims
            .claims
            .values()
            .filter(|c| {
                c.route
                    .path
                    .as_ref()
                    .is_some_and(|p| p.path_type.is_exact())
            })
            .chain(claims.claims.values().filter(|c| {
                c.route
                    .path
                    .as_ref()
                    .is_some_and(|p| !p.path_type.is_exact())
            }));
        for claim in ordered {
            let Some(path) = &claim.route.path else {
                continue;
            };
            for key in path.router_keys() {
                slots.entry(key).or_default().push(claim.route.clone());
            }
        }
        let mut router = matchit::Router::new();
        for (key, slot) in slots {
            let mut routes = slot.into_iter();
            let Some(first) = routes.next() else { continue };
            if let Err(e) = router.insert(key.clone(), Slot::of(first, routes.collect())) {
                // Keys are escaped literals, so the router should take them all; if it
                // does not, say so rather than lose the route silently.
                let object = ObjectRef {
                    kind: "Router",
                    namespace: String::new(),
                    name: host.to_string(),
                };
                self.diagnose(
                    &object,
                    key,
                    format!("could not be placed in the router: {e}"),
                );
            }
        }
        Paths::Router(router)
    }

    /// ingress-nginx's regex locations: `~* "^<path>"`, longest path first (ties in reverse
    /// text order, as its sort leaves them).
    fn regex_paths(claims: &HostClaims) -> Paths {
        let mut ordered: Vec<&Claim> = claims.claims.values().collect();
        fn text(c: &Claim) -> &str {
            c.route.path.as_ref().map_or("", |p| p.path.as_str())
        }
        ordered.sort_by(|a, b| {
            let (a, b) = (text(a), text(b));
            b.len().cmp(&a.len()).then_with(|| b.cmp(a))
        });
        // Every route of a regex host has its pattern (claim checked it).
        let list = ordered
            .into_iter()
            .filter_map(|c| {
                Some((
                    c.route.pattern.clone()?,
                    Slot::of(c.route.clone(), Vec::new()),
                ))
            })
            .collect();
        Paths::Regex(list)
    }

    /// `from-to-www-redirect`: the other name answers 308 to this one, unless it has rules
    /// of its own.
    fn add_www_redirects(&mut self, table: &mut RoutingTable) {
        for (from, to, me) in std::mem::take(&mut self.www) {
            if has_group(table, &from) {
                let field =
                    "metadata.annotations[nginx.ingress.kubernetes.io/from-to-www-redirect]";
                self.warn(
                    &me,
                    field,
                    format!("no redirect from {from}: it has rules of its own"),
                );
                continue;
            }
            let redirect = Redirect {
                to: RedirectTo::Host(to),
                code: StatusCode::PERMANENT_REDIRECT,
            };
            let route = self.redirect_route(&me, &from, "from-to-www-redirect", redirect);
            self.routes.push(route.clone());
            // A route without a path: it answers every path.
            let group = HostRoutes {
                paths: Paths::Few(Box::new([route])),
                root: None,
            };
            insert_group(table, &from, group);
        }
    }

    /// `server-alias`: the alias shares its host's routes, unless it has rules of its own.
    fn add_aliases(&mut self, table: &mut RoutingTable) {
        for (alias, host, me) in std::mem::take(&mut self.aliases) {
            let field = "metadata.annotations[nginx.ingress.kubernetes.io/server-alias]";
            if has_group(table, &alias) {
                self.warn(
                    &me,
                    field,
                    format!("ignored for {alias}: it has rules of its own"),
                );
                continue;
            }
            if let Some(group) = group_of(table, &host) {
                insert_shared(table, &alias, group);
            }
        }
    }
}

fn insert_group(table: &mut RoutingTable, host: &HostRule, group: HostRoutes) {
    insert_shared(table, host, Arc::new(group));
}

pub(super) fn insert_shared(table: &mut RoutingTable, host: &HostRule, group: Arc<HostRoutes>) {
    match host {
        HostRule::Exact(h) => {
            table.exact.insert(h.as_str().into(), group);
        }
        HostRule::Wildcard(s) => {
            table.wildcard.insert(s.as_str().into(), group);
        }
        HostRule::Any => table.any_host = Some(group),
    }
}

pub(super) fn group_of(table: &RoutingTable, host: &HostRule) -> Option<Arc<HostRoutes>> {
    match host {
        HostRule::Exact(h) => table.exact.get(h.as_str()).cloned(),
        HostRule::Wildcard(s) => table.wildcard.get(s.as_str()).cloned(),
        HostRule::Any => table.any_host.clone(),
    }
}

fn has_group(table: &RoutingTable, host: &HostRule) -> bool {
    match host {
        HostRule::Exact(h) => table.exact.contains_key(h.as_str()),
        HostRule::Wildcard(s) => table.wildcard.contains_key(s.as_str()),
        HostRule::Any => table.any_host.is_some(),
    }
}

fn unavailable(reason: &str) -> Arc<Backend> {
    Arc::new(Backend::new(
        None,
        Endpoints::default(),
        Some(reason.to_owned()),
    ))
}

/// Whether `pem` holds at least one certificate, each of which parses.
fn check_ca(pem: &[u8]) -> Result<(), String> {
    let mut count = 0;
    for block in x509_parser::pem::Pem::iter_from_buffer(pem) {
        let block = block.map_err(|e| format!("is not PEM: {e}"))?;
        if block.label != "CERTIFICATE" {
            continue;
        }
        block
            .parse_x509()
            .map_err(|e| format!("holds a certificate that does not parse: {e}"))?;
        count += 1;
    }
    match count {
        0 => Err("holds no CERTIFICATE".to_owned()),
        _ => Ok(()),
    }
}
