//! Snapshot → routing table, TLS bindings and diagnostics. Total: a bad object becomes a
//! diagnostic and costs only its own routes; nothing here fails the build as a whole.

use super::annotations;
use super::class::OurClasses;
use super::endpoints::{Endpoints, PortRef, ServiceIndex, ServiceRef, Unresolved};
use super::host::{HostRule, wildcard_suffix};
use super::path::PathRule;
use super::snapshot::{ObjectRef, Snapshot};
use super::table::{Backend, HostRoutes, Route, RoutingTable, Slot};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::networking::v1::{Ingress, IngressBackend, IngressTLS};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use rustc_hash::{FxHashMap, FxHashSet};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
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
}

impl Default for Options {
    fn default() -> Self {
        Options {
            controller_name: "vestibule.dev/ingress-controller".to_owned(),
            ingress_class: "vestibule".to_owned(),
            watch_ingress_without_class: false,
            default_backend: None,
        }
    }
}

/// A problem with one object: which object, which field, and why.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Diagnostic {
    pub object: ObjectRef,
    /// The field path, e.g. `spec.rules[0].http.paths[1].backend.service.port.name`.
    pub field: String,
    pub reason: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.object, self.field, self.reason)
    }
}

/// A host that TLS is terminated for, and the Secret whose certificate serves it.
#[derive(Clone, Debug)]
pub struct TlsBinding {
    /// An exact or wildcard host.
    pub host: HostRule,
    pub secret: ObjectRef,
    pub ingress: ObjectRef,
    /// `tls.crt`: PEM, leaf first.
    pub cert_pem: Arc<[u8]>,
    /// `tls.key`: PEM.
    pub key_pem: Arc<[u8]>,
}

/// Everything one build produces.
#[derive(Debug, Default)]
pub struct Built {
    pub table: RoutingTable,
    /// Every Ingress that is ours (whether or not it produced routes), for status writing.
    pub ours: Vec<ObjectRef>,
    /// Host → certificate, in precedence order (oldest Ingress first); one entry per host.
    pub tls: Vec<TlsBinding>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Builds the routing table for the Ingresses that are ours.
pub fn build(snapshot: &Snapshot, options: &Options) -> Built {
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

    let mut builder = Builder {
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
        backends: FxHashMap::default(),
        hosts: BTreeMap::new(),
        routes: Vec::new(),
        default_route: None,
        tls: Vec::new(),
        tls_hosts: FxHashSet::default(),
        tls_index: FxHashMap::default(),
        diagnostics: Vec::new(),
    };
    // TLS first: whether a route redirects to https depends on every Ingress's TLS hosts.
    for ingress in &ours {
        builder.add_tls_of(ingress);
    }
    let our_refs = ours.iter().map(|i| ingress_ref(i)).collect();
    for ingress in ours {
        builder.add_ingress(ingress);
    }
    if builder.default_route.is_none()
        && let Some(service) = &options.default_backend
    {
        let object = Arc::new(ObjectRef {
            kind: "Flag",
            namespace: String::new(),
            name: "--default-backend".to_owned(),
        });
        let backend = builder.backend(service.clone(), &object, "value");
        builder.default_route = Some(Arc::new(Route {
            ingress: object,
            host: HostRule::Any,
            path: None,
            backend,
            redirect_to_https: false,
        }));
    }
    for slice in &snapshot.endpoint_slices {
        let me = ObjectRef::of("EndpointSlice", &slice.metadata);
        for (field, reason) in super::endpoints::slice_problems(slice) {
            builder.diagnose(&me, field, format!("{reason}; not used"));
        }
    }
    let mut built = builder.finish();
    built.ours = our_refs;
    built
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
}

#[derive(Default)]
struct HostClaims {
    /// Keyed by (match path, is Exact): Prefix and ImplementationSpecific claim the same key.
    claims: BTreeMap<(String, bool), Claim>,
}

/// A backend as first resolved; the error is kept so every route naming it is diagnosed.
type Resolved = Result<Arc<Backend>, (Unresolved, Arc<Backend>)>;

/// PEM bytes, shared by every host a Secret serves.
pub type Pem = Arc<[u8]>;

struct Builder<'a> {
    services: ServiceIndex<'a>,
    secrets: FxHashMap<(&'a str, &'a str), &'a Secret>,
    backends: FxHashMap<ServiceRef, Resolved>,
    hosts: BTreeMap<HostRule, HostClaims>,
    routes: Vec<Arc<Route>>,
    default_route: Option<Arc<Route>>,
    tls: Vec<TlsBinding>,
    /// Every host some Ingress lists under `spec.tls`, whether or not its Secret is usable:
    /// a broken Secret falls back to the default certificate, the host still speaks TLS.
    tls_hosts: FxHashSet<HostRule>,
    /// Host → position in `tls`, to find the binding that won a host.
    tls_index: FxHashMap<HostRule, usize>,
    diagnostics: Vec<Diagnostic>,
}

impl Builder<'_> {
    fn diagnose(
        &mut self,
        object: &ObjectRef,
        field: impl Into<String>,
        reason: impl Into<String>,
    ) {
        self.diagnostics.push(Diagnostic {
            object: object.clone(),
            field: field.into(),
            reason: reason.into(),
        });
    }

    fn add_ingress(&mut self, ingress: &Ingress) {
        let me = Arc::new(ingress_ref(ingress));
        let Some(spec) = ingress.spec.as_ref() else {
            self.diagnose(&me, "spec", "missing");
            return;
        };
        let ssl_redirect = annotations::ssl_redirect(ingress).unwrap_or_else(|(field, reason)| {
            self.diagnose(&me, field, reason);
            true
        });
        if let Some(default) = &spec.default_backend {
            let backend = self.ingress_backend(default, &me, "spec.defaultBackend");
            match &self.default_route {
                None => {
                    self.default_route = Some(Arc::new(Route {
                        ingress: me.clone(),
                        host: HostRule::Any,
                        path: None,
                        backend,
                        redirect_to_https: false,
                    }))
                }
                Some(winner) => {
                    let reason = format!(
                        "ignored: the default backend comes from the older {}",
                        winner.ingress
                    );
                    self.diagnose(&me, "spec.defaultBackend", reason);
                }
            }
        }
        for (i, rule) in spec.rules.iter().flatten().enumerate() {
            let host = match HostRule::parse(rule.host.as_deref()) {
                Ok(h) => h,
                Err(reason) => {
                    self.diagnose(&me, format!("spec.rules[{i}].host"), reason);
                    continue;
                }
            };
            let Some(http) = &rule.http else { continue };
            let redirect = ssl_redirect && self.has_tls(&host);
            for (j, p) in http.paths.iter().enumerate() {
                let path_type = Some(p.path_type.as_str()).filter(|t| !t.is_empty());
                let path = match PathRule::parse(p.path.as_deref(), path_type) {
                    Ok(path) => path,
                    Err(reason) => {
                        let field = format!("spec.rules[{i}].http.paths[{j}].path");
                        self.diagnose(&me, field, reason);
                        continue;
                    }
                };
                self.claim(&me, &host, path, &p.backend, (i, j), redirect);
            }
        }
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
        redirect_to_https: bool,
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
        let backend = self.ingress_backend(b, me, &format!("{}.backend", field(at)));
        let route = Arc::new(Route {
            ingress: me.clone(),
            host: host.clone(),
            path: Some(path),
            backend,
            redirect_to_https,
        });
        self.routes.push(route.clone());
        let claims = &mut self.hosts.entry(host.clone()).or_default().claims;
        claims.insert(key, Claim { route, at });
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
        let entry = self.backends.entry(service.clone()).or_insert_with(|| {
            match self.services.resolve(&service) {
                Ok(endpoints) => {
                    let problem = (endpoints.all.is_empty()
                        && self.services.has_invalid_slices(&service))
                    .then(|| {
                        "its EndpointSlices list no usable endpoint (see their diagnostics)"
                            .to_owned()
                    });
                    Ok(Arc::new(Backend::new(Some(service), endpoints, problem)))
                }
                Err(why) => {
                    let reason = why.reason().to_owned();
                    let backend = Backend::new(Some(service), Endpoints::default(), Some(reason));
                    Err((why, Arc::new(backend)))
                }
            }
        });
        let (why, backend) = match entry {
            Ok(backend) => return backend.clone(),
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
                secret: secret_ref.clone(),
                ingress: me.clone(),
                cert_pem: cert_pem.clone(),
                key_pem: key_pem.clone(),
            });
        }
    }

    fn finish(self) -> Built {
        let mut table = RoutingTable {
            default_route: self.default_route,
            routes: self.routes,
            ..RoutingTable::default()
        };
        let mut diagnostics = self.diagnostics;
        for (host, claims) in self.hosts {
            let mut routes = HostRoutes::default();
            let mut slots: BTreeMap<String, Slot> = BTreeMap::new();
            for claim in claims.claims.values() {
                let Some(path) = &claim.route.path else {
                    continue;
                };
                for key in path.router_keys() {
                    let slot = slots.entry(key).or_default();
                    let place = if path.path_type.is_exact() {
                        &mut slot.exact
                    } else {
                        &mut slot.prefix
                    };
                    place.get_or_insert_with(|| claim.route.clone());
                }
            }
            for (key, slot) in slots {
                if let Err(e) = routes.router.insert(key.clone(), slot) {
                    // Keys are escaped literals, so the router should take them all; if it
                    // does not, say so rather than lose the route silently.
                    diagnostics.push(Diagnostic {
                        object: ObjectRef {
                            kind: "Router",
                            namespace: String::new(),
                            name: host.to_string(),
                        },
                        field: key,
                        reason: format!("could not be placed in the router: {e}"),
                    });
                }
            }
            match host {
                HostRule::Exact(h) => {
                    table.exact.insert(h.into(), routes);
                }
                HostRule::Wildcard(s) => {
                    table.wildcard.insert(s.into(), routes);
                }
                HostRule::Any => table.any_host = Some(routes),
            }
        }
        Built {
            table,
            ours: Vec::new(),
            tls: self.tls,
            diagnostics,
        }
    }
}

fn unavailable(reason: &str) -> Arc<Backend> {
    Arc::new(Backend::new(
        None,
        Endpoints::default(),
        Some(reason.to_owned()),
    ))
}

/// `tls.crt` and `tls.key` of a `kubernetes.io/tls` Secret (`stringData` counts, as the API
/// server would merge it into `data`). Whether the PEM parses is the TLS module's business.
pub fn tls_material(secret: &Secret) -> Result<(Pem, Pem), String> {
    let name = format!(
        "{}/{}",
        secret.metadata.namespace.as_deref().unwrap_or_default(),
        secret.metadata.name.as_deref().unwrap_or_default()
    );
    let type_ = secret.type_.as_deref().unwrap_or("Opaque");
    if type_ != "kubernetes.io/tls" {
        return Err(format!(
            "Secret {name} has type {type_}, not kubernetes.io/tls"
        ));
    }
    let get = |key: &str| -> Option<Pem> {
        let from_string = secret
            .string_data
            .as_ref()
            .and_then(|d| d.get(key))
            .map(|v| v.as_bytes());
        let from_data = secret
            .data
            .as_ref()
            .and_then(|d| d.get(key))
            .map(|v| v.0.as_slice());
        from_string
            .or(from_data)
            .filter(|v| !v.is_empty())
            .map(Arc::from)
    };
    let cert = get("tls.crt").ok_or_else(|| format!("Secret {name} has no tls.crt"))?;
    let key = get("tls.key").ok_or_else(|| format!("Secret {name} has no tls.key"))?;
    Ok((cert, key))
}
