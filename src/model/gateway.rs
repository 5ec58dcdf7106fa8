//! Gateway API objects → routes of the shared table and the status each object should carry.
//! Which GatewayClasses and Gateways are ours, which listeners this controller serves (HTTP on
//! `--gateway-http-port`, HTTPS on `--gateway-https-port`), and which HTTPRoutes attach where:
//! `parentRefs` (namespace, name, `sectionName`, `port`), each listener's `allowedRoutes`, and
//! the intersection of listener and route hostnames. An attached route's rules become Routes
//! in [`rules`]; `ReferenceGrant`s decide what may be named across namespaces.

mod rules;
#[cfg(test)]
mod tests;

use super::build::Reuse;
use super::diagnostic::Diagnostic;
use super::endpoints::{ServiceIndex, ServiceRef};
use super::host::HostRule;
use super::secret::{Pem, tls_material};
use super::settings::Global;
use super::snapshot::{ObjectRef, Snapshot};
use super::table::{Condition, Matches, PathMatch, Rank, Route, RouteId, Spread};
use gateway_api::gateways::{
    Gateway, GatewayListeners, GatewayListenersAllowedRoutesNamespacesFrom,
    GatewayListenersAllowedRoutesNamespacesSelector, GatewayListenersTlsMode,
};
use gateway_api::httproutes::{HttpRoute, HttpRouteParentRefs};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use rustc_hash::FxHashMap;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The API group of the Gateway API kinds.
pub const GROUP: &str = "gateway.networking.k8s.io";

/// The Gateway API features Vestibule implements, as GatewayClass `status.supportedFeatures`
/// names them (the README's table says what each means).
pub const SUPPORTED_FEATURES: &[&str] = &[
    "Gateway",
    "GatewayHTTPListenerIsolation",
    "HTTPRoute",
    "HTTPRoute303RedirectStatusCode",
    "HTTPRoute307RedirectStatusCode",
    "HTTPRoute308RedirectStatusCode",
    "HTTPRouteBackendProtocolWebSocket",
    "HTTPRouteBackendRequestHeaderModification",
    "HTTPRouteBackendTimeout",
    "HTTPRouteHostRewrite",
    "HTTPRouteMethodMatching",
    "HTTPRouteNamedRouteRule",
    "HTTPRouteParentRefPort",
    "HTTPRoutePathRedirect",
    "HTTPRoutePathRewrite",
    "HTTPRoutePortRedirect",
    "HTTPRouteQueryParamMatching",
    "HTTPRouteRequestMirror",
    "HTTPRouteRequestMultipleMirrors",
    "HTTPRouteRequestPercentageMirror",
    "HTTPRouteRequestTimeout",
    "HTTPRouteResponseHeaderModification",
    "HTTPRouteSchemeRedirect",
    "ReferenceGrant",
];

/// `--gateway-http-port` and `--gateway-https-port`: the Gateway API listener ports served on
/// the http and https sockets (the ports the chart's LoadBalancer Service exposes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GatewayPorts {
    pub http: u16,
    pub https: u16,
}

impl Default for GatewayPorts {
    fn default() -> Self {
        GatewayPorts {
            http: 80,
            https: 443,
        }
    }
}

/// What the Gateway API objects of a snapshot add to a build.
#[derive(Debug, Default)]
pub struct Translated {
    /// Every route of every attached rule, by host, in no particular order ([`host_groups`]
    /// gathers and ranks them).
    pub placements: Vec<Placement>,
    /// The hostname of every served listener (`Any` for none), by socket.
    pub listeners: Vec<(Socket, HostRule)>,
    /// The backends of Service ports, whose endpoints an EndpointSlice change replaces.
    pub backends: Vec<(ServiceRef, Arc<super::endpoints::Backend>)>,
    /// How many backendRefs send to each of `backends` (a partial build keeps the counts,
    /// and drops a backend nothing sends to any more).
    pub uses: FxHashMap<ServiceRef, u32>,
    /// Certificates of HTTPS listeners, by listener hostname.
    pub certs: Vec<ListenerCert>,
    pub status: GatewayStatus,
    pub diagnostics: Vec<Diagnostic>,
}

/// One route on one host, through one listener. A wildcard host matches any number of
/// labels, as the Gateway API wants; [`HostRule::Any`] is a listener and route without
/// hostnames.
#[derive(Debug, Clone)]
pub struct Placement {
    /// The route's hostname as intersected with the listener's.
    pub host: HostRule,
    /// The hostname of the listener it came through.
    pub listener: HostRule,
    pub socket: Socket,
    pub path: PathMatch,
    pub rank: Rank,
    pub route: Arc<Route>,
}

/// The certificate an HTTPS listener serves for its hostname (`Any`: a listener without one,
/// whose certificate stands in for the default).
#[derive(Debug, Clone)]
pub struct ListenerCert {
    pub host: HostRule,
    pub secret: ObjectRef,
    pub gateway: ObjectRef,
    pub cert_pem: Pem,
    pub key_pem: Pem,
}

/// One status condition as the model decides it; the status writer adds the times and the
/// observed generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusCondition {
    pub type_: &'static str,
    pub status: bool,
    pub reason: &'static str,
    pub message: String,
}

fn condition(
    type_: &'static str,
    status: bool,
    reason: &'static str,
    message: impl Into<String>,
) -> StatusCondition {
    StatusCondition {
        type_,
        status,
        reason,
        message: message.into(),
    }
}

/// The status of every Gateway API object that is ours.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GatewayStatus {
    pub classes: Vec<ClassState>,
    pub gateways: Vec<GatewayState>,
    /// Sorted by object ([`GatewayStatus::route`] looks one up); shared, so that a partial
    /// build copies pointers, not every route's status.
    pub routes: Vec<Arc<RouteState>>,
}

impl GatewayStatus {
    /// The status of the HTTPRoute `namespace/name`, if it is ours.
    pub fn route(&self, namespace: &str, name: &str) -> Option<&RouteState> {
        let at = self
            .routes
            .binary_search_by(|r| {
                (r.object.namespace.as_str(), r.object.name.as_str()).cmp(&(namespace, name))
            })
            .ok()?;
        self.routes.get(at).map(|r| &**r)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ClassState {
    pub name: String,
    pub generation: Option<i64>,
    pub conditions: Vec<StatusCondition>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GatewayState {
    pub object: ObjectRef,
    pub generation: Option<i64>,
    pub conditions: Vec<StatusCondition>,
    pub listeners: Vec<ListenerState>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ListenerState {
    pub name: String,
    pub attached_routes: i32,
    /// Route kinds the listener takes (HTTPRoute or none).
    pub supported_kinds: Vec<&'static str>,
    pub conditions: Vec<StatusCondition>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RouteState {
    pub object: ObjectRef,
    pub generation: Option<i64>,
    /// One per parentRef that names a Gateway of ours, in `parentRefs` order.
    pub parents: Vec<ParentState>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ParentState {
    /// The Gateway, namespace filled in.
    pub gateway: ObjectRef,
    pub section_name: Option<String>,
    pub port: Option<i32>,
    pub conditions: Vec<StatusCondition>,
}

/// The socket a listener is served on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Socket {
    Http,
    Https,
}

/// One listener of a Gateway of ours, judged.
struct Listener<'a> {
    spec: &'a GatewayListeners,
    /// `None`: not served (its conditions say why).
    socket: Option<Socket>,
    hostname: Option<HostRule>,
    /// Whether HTTPRoutes may attach (the kinds it allows include HTTPRoute).
    takes_routes: bool,
    state: ListenerState,
}

/// A Gateway of ours and its listeners.
struct OurGateway<'a> {
    object: ObjectRef,
    gateway: &'a Gateway,
    listeners: Vec<Listener<'a>>,
}

/// The ReferenceGrants of a snapshot, to answer "may an X in namespace A name this Y in B".
pub(crate) struct Grants<'a> {
    by_namespace: FxHashMap<&'a str, Vec<&'a gateway_api::referencegrants::ReferenceGrant>>,
}

impl<'a> Grants<'a> {
    fn new(snapshot: &'a Snapshot) -> Self {
        let mut by_namespace: FxHashMap<&str, Vec<_>> = FxHashMap::default();
        for g in &snapshot.reference_grants {
            if let Some(ns) = g.metadata.namespace.as_deref() {
                by_namespace.entry(ns).or_default().push(&**g);
            }
        }
        Grants { by_namespace }
    }

    /// Whether a `from` object (group, kind) in namespace `from_ns` may refer to the `to`
    /// object (group, kind) named `name` in namespace `to_ns`. The same namespace needs no
    /// grant.
    pub(crate) fn permit(&self, from: (&str, &str, &str), to: (&str, &str, &str, &str)) -> bool {
        let (from_group, from_kind, from_ns) = from;
        let (to_group, to_kind, to_ns, name) = to;
        if from_ns == to_ns {
            return true;
        }
        self.by_namespace.get(to_ns).is_some_and(|grants| {
            grants.iter().any(|g| {
                g.spec
                    .from
                    .iter()
                    .any(|f| f.group == from_group && f.kind == from_kind && f.namespace == from_ns)
                    && g.spec.to.iter().any(|t| {
                        t.group == to_group
                            && t.kind == to_kind
                            && t.name.as_deref().is_none_or(|n| n.is_empty() || n == name)
                    })
            })
        })
    }
}

/// Reads the Gateway API objects of `snapshot`: the routes they add, the certificates of
/// their HTTPS listeners, their status and diagnostics. A partial build passes `reuse`, the
/// backends in force for Services that did not change.
pub fn translate(
    snapshot: &Snapshot,
    controller_name: &str,
    ports: GatewayPorts,
    global: &Global,
    (services, secrets): (&ServiceIndex<'_>, &FxHashMap<(&str, &str), &Secret>),
    reuse: Option<&Reuse<'_>>,
) -> Translated {
    let mut out = Translated::default();
    let classes: Vec<&str> = snapshot
        .gateway_classes
        .iter()
        .filter(|c| c.spec.controller_name == controller_name)
        .filter_map(|c| c.metadata.name.as_deref())
        .collect();
    for class in snapshot
        .gateway_classes
        .iter()
        .filter(|c| c.spec.controller_name == controller_name)
    {
        out.status.classes.push(ClassState {
            name: class.metadata.name.clone().unwrap_or_default(),
            generation: class.metadata.generation,
            conditions: vec![condition(
                "Accepted",
                true,
                "Accepted",
                "Vestibule serves this class",
            )],
        });
    }
    let grants = Grants::new(snapshot);
    let namespaces: FxHashMap<&str, BTreeMap<&str, &str>> = snapshot
        .namespaces
        .iter()
        .filter_map(|n| {
            let labels = n.metadata.labels.iter().flatten();
            Some((
                n.metadata.name.as_deref()?,
                labels.map(|(k, v)| (k.as_str(), v.as_str())).collect(),
            ))
        })
        .collect();
    let mut gateways: Vec<OurGateway> = snapshot
        .gateways
        .iter()
        .filter(|g| classes.contains(&g.spec.gateway_class_name.as_str()))
        .map(|g| {
            judge_gateway(
                g,
                ports,
                &grants,
                secrets,
                &mut out.certs,
                &mut out.diagnostics,
            )
        })
        .collect();
    let mut rules = rules::Compiler::new(services, &grants, global, reuse);
    for route in &snapshot.http_routes {
        attach(route, &mut gateways, &namespaces, &mut rules, &mut out);
    }
    (out.backends, out.uses) = rules.into_backends();
    // Snapshot order but for a missing namespace, which reads as `default`.
    out.status.routes.sort_by(|a, b| a.object.cmp(&b.object));
    for g in &gateways {
        for l in &g.listeners {
            if let Some(socket) = l.socket {
                let host = l.hostname.clone().unwrap_or(HostRule::Any);
                if !out.listeners.contains(&(socket, host.clone())) {
                    out.listeners.push((socket, host));
                }
            }
        }
    }
    for g in gateways {
        let served = g.listeners.iter().filter(|l| l.socket.is_some()).count();
        let total = g.listeners.len();
        let mut conditions = Vec::new();
        if g.gateway
            .spec
            .addresses
            .as_ref()
            .is_some_and(|a| !a.is_empty())
        {
            conditions.push(condition(
                "Accepted",
                false,
                "UnsupportedAddress",
                "spec.addresses is not supported: the Gateway is reached at the controller's own Service",
            ));
            conditions.push(condition(
                "Programmed",
                false,
                "Invalid",
                "the Gateway is not accepted",
            ));
        } else {
            let (accepted, reason, message) = match (served, total) {
                (s, t) if s == t => (true, "Accepted", "every listener is served".to_owned()),
                (0, _) => (
                    false,
                    "ListenersNotValid",
                    "no listener can be served".to_owned(),
                ),
                (s, t) => (
                    true,
                    "ListenersNotValid",
                    format!("{s} of {t} listeners are served"),
                ),
            };
            conditions.push(condition("Accepted", accepted, reason, message));
            conditions.push(match served {
                0 => condition("Programmed", false, "Invalid", "no listener is served"),
                _ => condition(
                    "Programmed",
                    true,
                    "Programmed",
                    "the listeners are in the routing table",
                ),
            });
        }
        out.status.gateways.push(GatewayState {
            object: g.object,
            generation: g.gateway.metadata.generation,
            conditions,
            listeners: g.listeners.into_iter().map(|l| l.state).collect(),
        });
    }
    out
}

fn object_ref(kind: &'static str, meta: &ObjectMeta) -> ObjectRef {
    let mut r = ObjectRef::of(kind, meta);
    if r.namespace.is_empty() {
        r.namespace = "default".to_owned();
    }
    r
}

/// Judges each listener of a Gateway of ours: served or not, and why; an HTTPS listener's
/// certificates join `certs`.
fn judge_gateway<'a>(
    gateway: &'a Gateway,
    ports: GatewayPorts,
    grants: &Grants<'_>,
    secrets: &FxHashMap<(&str, &str), &Secret>,
    certs: &mut Vec<ListenerCert>,
    diagnostics: &mut Vec<Diagnostic>,
) -> OurGateway<'a> {
    let object = object_ref("Gateway", &gateway.metadata);
    let mut listeners = Vec::new();
    for (i, spec) in gateway.spec.listeners.iter().enumerate() {
        let field = format!("spec.listeners[{i}]");
        let mut conditions = Vec::new();
        let mut socket = None;
        let hostname = match spec.hostname.as_deref() {
            None | Some("") => Ok(None),
            Some(h) => HostRule::parse(Some(h)).map(Some),
        };
        let hostname = match hostname {
            Ok(h) => h,
            Err(reason) => {
                diagnostics.push(Diagnostic::error(
                    object.clone(),
                    format!("{field}.hostname"),
                    format!("{reason}; the listener is not served"),
                ));
                conditions.push(condition("Accepted", false, "UnsupportedValue", reason));
                None
            }
        };
        let (kinds, kinds_ok) = route_kinds(spec);
        let port_ok = match spec.protocol.as_str() {
            "HTTP" => Some((Socket::Http, ports.http)),
            "HTTPS" => Some((Socket::Https, ports.https)),
            _ => None,
        };
        if !conditions.is_empty() {
        } else if let Some((kind, port)) = port_ok {
            if i32::from(port) != spec.port {
                let reason = format!(
                    "Vestibule serves {} listeners on port {port} only (--gateway-{}-port)",
                    spec.protocol,
                    if kind == Socket::Http {
                        "http"
                    } else {
                        "https"
                    }
                );
                diagnostics.push(Diagnostic::error(
                    object.clone(),
                    format!("{field}.port"),
                    format!("{reason}; the listener is not served"),
                ));
                conditions.push(condition("Accepted", false, "PortUnavailable", reason));
            } else {
                socket = Some(kind);
            }
        } else {
            let reason = format!(
                "protocol {} is not supported (HTTP and HTTPS are)",
                spec.protocol
            );
            diagnostics.push(Diagnostic::error(
                object.clone(),
                format!("{field}.protocol"),
                format!("{reason}; the listener is not served"),
            ));
            conditions.push(condition("Accepted", false, "UnsupportedProtocol", reason));
        }
        let mut resolved = match kinds_ok {
            true => condition(
                "ResolvedRefs",
                true,
                "ResolvedRefs",
                "every reference is resolved",
            ),
            false => {
                let reason = "allowedRoutes.kinds names kinds other than HTTPRoute";
                diagnostics.push(Diagnostic::warning(
                    object.clone(),
                    format!("{field}.allowedRoutes.kinds"),
                    format!("{reason}; only HTTPRoutes attach"),
                ));
                condition("ResolvedRefs", false, "InvalidRouteKinds", reason)
            }
        };
        if socket == Some(Socket::Https) {
            match listener_certs(&object, spec, &field, grants, secrets, diagnostics) {
                Ok(found) => {
                    for (secret, (cert_pem, key_pem)) in found {
                        certs.push(ListenerCert {
                            host: hostname.clone().unwrap_or(HostRule::Any),
                            secret,
                            gateway: object.clone(),
                            cert_pem,
                            key_pem,
                        });
                    }
                }
                Err((reason, message)) => {
                    resolved = condition("ResolvedRefs", false, reason, message);
                    socket = None;
                }
            }
        }
        if conditions.is_empty() {
            conditions.push(condition(
                "Accepted",
                true,
                "Accepted",
                "the listener is served",
            ));
        }
        conditions.push(match socket {
            Some(_) => condition("Programmed", true, "Programmed", "in the routing table"),
            None => condition("Programmed", false, "Invalid", "the listener is not served"),
        });
        conditions.push(resolved);
        listeners.push(Listener {
            spec,
            socket,
            hostname,
            takes_routes: !kinds.is_empty(),
            state: ListenerState {
                name: spec.name.clone(),
                attached_routes: 0,
                supported_kinds: kinds,
                conditions,
            },
        });
    }
    mark_conflicts(&mut listeners, &object, diagnostics);
    OurGateway {
        object,
        gateway,
        listeners,
    }
}

/// Listeners of one Gateway on the same port with the same hostname conflict: neither is
/// served (the spec's `Conflicted` / `HostnameConflict`); the rest say `NoConflicts`.
fn mark_conflicts(
    listeners: &mut [Listener<'_>],
    gateway: &ObjectRef,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let keys: Vec<(i32, Option<HostRule>)> = listeners
        .iter()
        .map(|l| (l.spec.port, l.hostname.clone()))
        .collect();
    for (i, l) in listeners.iter_mut().enumerate() {
        let twins = keys.iter().filter(|k| **k == keys[i]).count();
        if twins > 1 {
            let reason = "another listener has the same port and hostname";
            diagnostics.push(Diagnostic::error(
                gateway.clone(),
                format!("spec.listeners[{i}]"),
                format!("{reason}; neither is served"),
            ));
            l.socket = None;
            l.state.conditions.retain(|c| c.type_ != "Programmed");
            l.state.conditions.push(condition(
                "Programmed",
                false,
                "Invalid",
                "the listener is not served",
            ));
            l.state
                .conditions
                .push(condition("Conflicted", true, "HostnameConflict", reason));
        } else {
            l.state
                .conditions
                .push(condition("Conflicted", false, "NoConflicts", "no conflict"));
        }
    }
}

/// The route kinds a listener takes (HTTPRoute for HTTP and HTTPS unless `allowedRoutes.kinds`
/// says otherwise), and whether every kind it names is one Vestibule serves.
fn route_kinds(spec: &GatewayListeners) -> (Vec<&'static str>, bool) {
    let named = spec.allowed_routes.as_ref().and_then(|a| a.kinds.as_ref());
    match named {
        None => (vec!["HTTPRoute"], true),
        Some(kinds) if kinds.is_empty() => (vec!["HTTPRoute"], true),
        Some(kinds) => {
            let http = |k: &&gateway_api::gateways::GatewayListenersAllowedRoutesKinds| {
                k.kind == "HTTPRoute" && k.group.as_deref().unwrap_or(GROUP) == GROUP
            };
            let ok = kinds.iter().all(|k| http(&k));
            match kinds.iter().any(|k| http(&k)) {
                true => (vec!["HTTPRoute"], ok),
                false => (Vec::new(), false),
            }
        }
    }
}

/// The certificates an HTTPS listener names: `Ok` with each usable Secret's PEM, or `Err`
/// with the ResolvedRefs reason when none can be served.
#[allow(clippy::type_complexity)]
fn listener_certs(
    gateway: &ObjectRef,
    spec: &GatewayListeners,
    field: &str,
    grants: &Grants<'_>,
    secrets: &FxHashMap<(&str, &str), &Secret>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Result<Vec<(ObjectRef, (Pem, Pem))>, (&'static str, String)> {
    let tls = spec.tls.as_ref();
    if tls.and_then(|t| t.mode.as_ref()) == Some(&GatewayListenersTlsMode::Passthrough) {
        let reason = "TLS mode Passthrough is not supported on HTTPS listeners".to_owned();
        diagnostics.push(Diagnostic::error(
            gateway.clone(),
            format!("{field}.tls.mode"),
            format!("{reason}; the listener is not served"),
        ));
        return Err(("UnsupportedValue", reason));
    }
    let refs = tls.and_then(|t| t.certificate_refs.as_ref());
    let mut found = Vec::new();
    let mut problem = None;
    for (j, r) in refs.into_iter().flatten().enumerate() {
        let at = format!("{field}.tls.certificateRefs[{j}]");
        let group = r.group.as_deref().unwrap_or("");
        let kind = r.kind.as_deref().unwrap_or("Secret");
        let namespace = r.namespace.as_deref().unwrap_or(&gateway.namespace);
        let secret = ObjectRef {
            kind: "Secret",
            namespace: namespace.to_owned(),
            name: r.name.clone(),
        };
        let judged = if !group.is_empty() || kind != "Secret" {
            Err((
                "InvalidCertificateRef",
                format!("{group}/{kind} is not a Secret"),
            ))
        } else if !grants.permit(
            (GROUP, "Gateway", &gateway.namespace),
            ("", "Secret", namespace, &r.name),
        ) {
            Err((
                "RefNotPermitted",
                format!(
                    "Secret {} is in another namespace and no ReferenceGrant there permits it",
                    secret.key()
                ),
            ))
        } else {
            match secrets.get(&(namespace, r.name.as_str())) {
                None => Err((
                    "InvalidCertificateRef",
                    format!("Secret {} not found", secret.key()),
                )),
                Some(s) => tls_material(s).map_err(|e| ("InvalidCertificateRef", e)),
            }
        };
        match judged {
            Ok(pem) => found.push((secret, pem)),
            Err((reason, message)) => {
                diagnostics.push(Diagnostic::error(
                    gateway.clone(),
                    at,
                    format!("{message}; it is not served"),
                ));
                problem.get_or_insert((reason, message));
            }
        }
    }
    match (found.is_empty(), problem) {
        (false, _) => Ok(found),
        (true, Some(p)) => Err(p),
        (true, None) => {
            let reason = "an HTTPS listener needs tls.certificateRefs".to_owned();
            diagnostics.push(Diagnostic::error(
                gateway.clone(),
                format!("{field}.tls"),
                format!("{reason}; the listener is not served"),
            ));
            Err(("InvalidCertificateRef", reason))
        }
    }
}

/// Whether `namespace` (with `labels`) may attach routes to a listener of a Gateway in
/// `gateway_namespace`.
fn namespace_allowed(
    spec: &GatewayListeners,
    gateway_namespace: &str,
    namespace: &str,
    labels: Option<&BTreeMap<&str, &str>>,
) -> bool {
    let allowed = spec
        .allowed_routes
        .as_ref()
        .and_then(|a| a.namespaces.as_ref());
    match allowed.and_then(|n| n.from.as_ref()) {
        None | Some(GatewayListenersAllowedRoutesNamespacesFrom::Same) => {
            namespace == gateway_namespace
        }
        Some(GatewayListenersAllowedRoutesNamespacesFrom::All) => true,
        Some(GatewayListenersAllowedRoutesNamespacesFrom::Selector) => allowed
            .and_then(|n| n.selector.as_ref())
            .is_some_and(|s| selects(s, namespace, labels)),
    }
}

/// A label selector over a Namespace's labels (the API server's `kubernetes.io/metadata.name`
/// included).
fn selects(
    selector: &GatewayListenersAllowedRoutesNamespacesSelector,
    namespace: &str,
    labels: Option<&BTreeMap<&str, &str>>,
) -> bool {
    let label = |key: &str| match key {
        "kubernetes.io/metadata.name" => Some(namespace),
        _ => labels.and_then(|l| l.get(key).copied()),
    };
    let by_label = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| label(k) == Some(v.as_str()));
    let by_expression = selector.match_expressions.iter().flatten().all(|e| {
        let values = e.values.as_deref().unwrap_or_default();
        let value = label(&e.key);
        match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
            "NotIn" => value.is_none_or(|v| !values.iter().any(|x| x == v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    });
    by_label && by_expression
}

/// The hostnames a route serves through a listener: the Gateway API's intersection (a
/// wildcard matches any number of labels). `None`: they do not intersect.
pub(crate) fn intersect(listener: Option<&HostRule>, route: &[HostRule]) -> Option<Vec<HostRule>> {
    let within = |host: &str, suffix: &str| {
        host.len() > suffix.len() + 1
            && host.ends_with(suffix)
            && host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
    };
    let Some(listener) = listener.filter(|l| **l != HostRule::Any) else {
        return Some(match route.is_empty() {
            true => vec![HostRule::Any],
            false => route.to_vec(),
        });
    };
    if route.is_empty() {
        return Some(vec![listener.clone()]);
    }
    let mut out = Vec::new();
    for r in route {
        let both = match (listener, r) {
            (HostRule::Exact(l), HostRule::Exact(h)) => (l == h).then(|| r.clone()),
            (HostRule::Exact(l), HostRule::Wildcard(s)) => within(l, s).then(|| listener.clone()),
            (HostRule::Wildcard(s), HostRule::Exact(h)) => within(h, s).then(|| r.clone()),
            (HostRule::Wildcard(a), HostRule::Wildcard(b)) => {
                if a == b || within(b, a) {
                    Some(r.clone())
                } else if within(a, b) {
                    Some(listener.clone())
                } else {
                    None
                }
            }
            _ => None,
        };
        if let Some(h) = both
            && !out.contains(&h)
        {
            out.push(h);
        }
    }
    (!out.is_empty()).then_some(out)
}

/// Attaches one HTTPRoute to the Gateways of ours its `parentRefs` name: its status per
/// parent, and its rules placed on every host it gained.
fn attach(
    route: &HttpRoute,
    gateways: &mut [OurGateway<'_>],
    namespaces: &FxHashMap<&str, BTreeMap<&str, &str>>,
    rules: &mut rules::Compiler<'_>,
    out: &mut Translated,
) {
    let object = object_ref("HTTPRoute", &route.metadata);
    let namespace = object.namespace.clone();
    let parent_refs = route.spec.parent_refs.as_deref().unwrap_or_default();
    let mut hostnames = Vec::new();
    for (i, h) in route.spec.hostnames.iter().flatten().enumerate() {
        match HostRule::parse(Some(h)) {
            Ok(rule @ (HostRule::Exact(_) | HostRule::Wildcard(_))) => hostnames.push(rule),
            Ok(HostRule::Any) | Err(_) => out.diagnostics.push(Diagnostic::error(
                object.clone(),
                format!("spec.hostnames[{i}]"),
                format!("{h:?} is not a hostname; ignored"),
            )),
        }
    }
    // (route host, listener host, socket) over every listener that took the route.
    let mut served: Vec<(HostRule, HostRule, Socket)> = Vec::new();
    let mut parents = Vec::new();
    for (i, p) in parent_refs.iter().enumerate() {
        if p.group.as_deref().unwrap_or(GROUP) != GROUP
            || p.kind.as_deref().unwrap_or("Gateway") != "Gateway"
        {
            continue;
        }
        let gateway_namespace = p.namespace.clone().unwrap_or_else(|| namespace.clone());
        let Some(gateway) = gateways
            .iter_mut()
            .find(|g| g.object.namespace == gateway_namespace && g.object.name == p.name)
        else {
            continue;
        };
        let labels = namespaces.get(namespace.as_str());
        let verdict = judge_parent(p, gateway, &namespace, labels, &hostnames);
        let conditions = match verdict {
            Ok(attached) => {
                for (listener, hosts) in attached {
                    let l = &mut gateway.listeners[listener];
                    l.state.attached_routes += 1;
                    let (Some(socket), through) = (l.socket, l.hostname.clone()) else {
                        continue;
                    };
                    let through = through.unwrap_or(HostRule::Any);
                    for h in hosts {
                        let one = (h, through.clone(), socket);
                        if !served.contains(&one) {
                            served.push(one);
                        }
                    }
                }
                vec![condition(
                    "Accepted",
                    true,
                    "Accepted",
                    "attached to the Gateway",
                )]
            }
            Err((reason, message)) => {
                out.diagnostics.push(Diagnostic::error(
                    object.clone(),
                    format!("spec.parentRefs[{i}]"),
                    format!("not accepted by {}: {reason}: {message}", gateway.object),
                ));
                vec![condition("Accepted", false, reason, message)]
            }
        };
        parents.push(ParentState {
            gateway: gateway.object.clone(),
            section_name: p.section_name.clone(),
            port: p.port,
            conditions,
        });
    }
    if parents.is_empty() {
        return;
    }
    let compiled = rules.compile(route, &object, &mut out.diagnostics);
    for p in &mut parents {
        p.conditions.push(compiled.resolved_refs.clone());
        if let Some(partial) = &compiled.partially_invalid {
            p.conditions.push(partial.clone());
        }
    }
    let created = route
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0.as_second());
    let me = Arc::new(object.clone());
    for (host, listener, socket) in served {
        for (r, rule) in compiled.rules.iter().enumerate() {
            for (m, one) in rule.iter().enumerate() {
                let mut conditions: Vec<Condition> = one.conditions.clone();
                // The table serves both sockets; a listener serves one.
                conditions.push(Condition::Tls(socket == Socket::Https));
                let matches = Matches { conditions };
                let rank = Rank::of(&host, &one.path, &matches, created, &object, (r, m));
                let id = (
                    &object.namespace,
                    &object.name,
                    r,
                    m,
                    &host,
                    &listener,
                    socket,
                );
                let route = Arc::new(Route {
                    id: RouteId::of(("HTTPRoute", id)),
                    ingress: me.clone(),
                    host: host.clone(),
                    path: one.path_rule(),
                    pattern: None,
                    matches,
                    policy: one.policy.clone(),
                    backends: one.backends.clone(),
                    spread: Spread::of(&one.backends),
                    canary: None,
                });
                out.placements.push(Placement {
                    host: host.clone(),
                    listener: listener.clone(),
                    socket,
                    path: one.path.clone(),
                    rank,
                    route,
                });
            }
        }
    }
    out.status.routes.push(Arc::new(RouteState {
        object,
        generation: route.metadata.generation,
        parents,
    }));
}

/// Which listeners of `gateway` take the route through parentRef `p`, each with the hosts it
/// gains there; or the reason none does.
#[allow(clippy::type_complexity)]
fn judge_parent(
    p: &HttpRouteParentRefs,
    gateway: &OurGateway<'_>,
    namespace: &str,
    labels: Option<&BTreeMap<&str, &str>>,
    hostnames: &[HostRule],
) -> Result<Vec<(usize, Vec<HostRule>)>, (&'static str, String)> {
    let named: Vec<usize> = gateway
        .listeners
        .iter()
        .enumerate()
        .filter(|(_, l)| p.section_name.as_deref().is_none_or(|s| s == l.spec.name))
        .filter(|(_, l)| p.port.is_none_or(|port| port == l.spec.port))
        .map(|(i, _)| i)
        .collect();
    if named.is_empty() {
        let what = match (&p.section_name, p.port) {
            (Some(s), Some(port)) => format!("no listener {s:?} on port {port}"),
            (Some(s), None) => format!("no listener {s:?}"),
            (None, Some(port)) => format!("no listener on port {port}"),
            (None, None) => "the Gateway has no listeners".to_owned(),
        };
        return Err(("NoMatchingParent", what));
    }
    let allowed: Vec<usize> = named
        .into_iter()
        .filter(|i| {
            let l = &gateway.listeners[*i];
            l.socket.is_some()
                && l.takes_routes
                && namespace_allowed(l.spec, &gateway.object.namespace, namespace, labels)
        })
        .collect();
    if allowed.is_empty() {
        return Err((
            "NotAllowedByListeners",
            format!("no served listener allows HTTPRoutes from namespace {namespace}"),
        ));
    }
    let attached: Vec<(usize, Vec<HostRule>)> = allowed
        .into_iter()
        .filter_map(|i| {
            let l = &gateway.listeners[i];
            intersect(l.hostname.as_ref(), hostnames).map(|h| (i, h))
        })
        .collect();
    match attached.is_empty() {
        true => Err((
            "NoMatchingListenerHostname",
            "no hostname of the route falls under a listener's hostname".to_owned(),
        )),
        false => Ok(attached),
    }
}

/// Whether every host `inner` stands for is one `outer` stands for (Gateway API wildcards:
/// any number of labels).
pub(crate) fn covers(outer: &HostRule, inner: &HostRule) -> bool {
    let under = |host: &str, suffix: &str| {
        host.len() > suffix.len() + 1
            && host.ends_with(suffix)
            && host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
    };
    match (outer, inner) {
        (HostRule::Any, _) => true,
        (_, HostRule::Any) => false,
        (HostRule::Exact(a), HostRule::Exact(b)) => a == b,
        (HostRule::Exact(_), HostRule::Wildcard(_)) => false,
        (HostRule::Wildcard(s), HostRule::Exact(h)) => under(h, s),
        (HostRule::Wildcard(a), HostRule::Wildcard(b)) => a == b || under(b, a),
    }
}

/// How specific a hostname is: precise before wildcard, longer first (smaller wins).
fn specificity(host: &HostRule) -> (u8, std::cmp::Reverse<usize>) {
    match host {
        HostRule::Exact(h) => (0, std::cmp::Reverse(h.len())),
        HostRule::Wildcard(s) => (1, std::cmp::Reverse(s.len())),
        HostRule::Any => (2, std::cmp::Reverse(0)),
    }
}

/// The routes each host group of the table gets, ranked. A request is taken by the most
/// specific listener hostname that covers its host (listener isolation), and within it by
/// every route whose hostname covers the host, a wildcard route's rules merged into a
/// precise host (`HTTPRouteMatchingAcrossRoutes`). A listener hostname is a group of its
/// own even without routes, so its hosts answer 404 rather than fall to a broader listener.
pub fn host_groups(translated: &Translated) -> BTreeMap<HostRule, Vec<Placement>> {
    let mut by_host: BTreeMap<&HostRule, Vec<&Placement>> = BTreeMap::new();
    for p in &translated.placements {
        by_host.entry(&p.host).or_default().push(p);
    }
    let mut keys: Vec<&HostRule> = by_host.keys().copied().collect();
    for (_, l) in &translated.listeners {
        if !keys.contains(&l) {
            keys.push(l);
        }
    }
    // The listener that takes a group's hosts, per socket.
    let scope = |socket: Socket, key: &HostRule| -> Option<&HostRule> {
        translated
            .listeners
            .iter()
            .filter(|(s, l)| *s == socket && covers(l, key))
            .map(|(_, l)| l)
            .min_by_key(|l| specificity(l))
    };
    let mut groups = BTreeMap::new();
    for key in keys {
        let mut members: Vec<Placement> = covering(key)
            .iter()
            .filter_map(|host| by_host.get(host))
            .flat_map(|list| list.iter())
            .filter(|p| scope(p.socket, key) == Some(&p.listener))
            .map(|p| (*p).clone())
            .collect();
        members.sort_by(|a, b| a.rank.cmp(&b.rank));
        groups.insert(key.clone(), members);
    }
    groups
}

/// Every hostname that covers `host`: itself, the wildcards above it, and `Any`.
pub(crate) fn covering(host: &HostRule) -> Vec<HostRule> {
    let mut out = vec![host.clone()];
    let mut rest = match host {
        HostRule::Exact(h) => h.as_str(),
        HostRule::Wildcard(s) => s.as_str(),
        HostRule::Any => return out,
    };
    while let Some((_, after)) = rest.split_once('.') {
        out.push(HostRule::Wildcard(after.to_owned()));
        rest = after;
    }
    out.push(HostRule::Any);
    out
}
