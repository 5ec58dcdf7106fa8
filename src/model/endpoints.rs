//! From a backend's Service and port to the addresses a request may go to, the way kube-proxy
//! reads EndpointSlices: Service port → slice port of the same name → ready endpoints.

use super::slice::EndpointSlice;
use k8s_openapi::api::core::v1::{Service, ServicePort};
use rustc_hash::FxHashMap as HashMap;
use serde::Serialize;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

/// A Service port as an Ingress backend names it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PortRef {
    Number(i32),
    Name(String),
}

impl fmt::Display for PortRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortRef::Number(n) => write!(f, "{n}"),
            PortRef::Name(n) => f.write_str(n),
        }
    }
}

impl Serialize for PortRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            PortRef::Number(n) => s.serialize_i32(*n),
            PortRef::Name(n) => s.serialize_str(n),
        }
    }
}

impl From<i32> for PortRef {
    fn from(n: i32) -> Self {
        PortRef::Number(n)
    }
}

impl From<&str> for PortRef {
    fn from(n: &str) -> Self {
        PortRef::Name(n.to_owned())
    }
}

/// A Service of some namespace and one of its ports.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct ServiceRef {
    pub namespace: String,
    pub name: String,
    pub port: PortRef,
}

impl fmt::Display for ServiceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}:{}", self.namespace, self.name, self.port)
    }
}

impl ServiceRef {
    /// Parses `namespace/name:port` (the port by number or by name), as `--default-backend` takes it.
    pub fn parse(text: &str) -> Result<ServiceRef, String> {
        let err = || format!("{text:?} is not of the form namespace/name:port");
        let (namespace, rest) = text.split_once('/').ok_or_else(err)?;
        let (name, port) = rest.rsplit_once(':').ok_or_else(err)?;
        if namespace.is_empty() || name.is_empty() || port.is_empty() {
            return Err(err());
        }
        let port = match port.parse::<i32>() {
            Ok(n) => PortRef::Number(n),
            Err(_) => PortRef::Name(port.to_owned()),
        };
        Ok(ServiceRef {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            port,
        })
    }
}

/// Where a request can be sent: a pod address, or a DNS name resolved when connecting
/// (`ExternalName` Services and `addressType: FQDN` slices).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    Ip(SocketAddr),
    Dns { host: Arc<str>, port: u16 },
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Ip(addr) => write!(f, "{addr}"),
            Target::Dns { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

impl Serialize for Target {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One endpoint of a Service port with its EndpointSlice conditions, kube-proxy's way: `ready`
/// and `serving` count as true when unset, `terminating` as false.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    pub target: Target,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
}

/// The endpoints of one Service port and the ones traffic goes to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Endpoints {
    /// Every endpoint found, for `/debug/routes`.
    pub all: Vec<Endpoint>,
    /// What traffic is balanced over: the ready endpoints, or when none is ready the ones
    /// that are serving while terminating (so a rollout drains gracefully).
    pub targets: Vec<Target>,
}

impl Endpoints {
    /// One target that always takes traffic (a cluster IP, an ExternalName).
    fn single(target: Target) -> Endpoints {
        Endpoints {
            all: vec![Endpoint {
                target: target.clone(),
                ready: true,
                serving: true,
                terminating: false,
            }],
            targets: vec![target],
        }
    }
}

/// Why a backend has no endpoints at all, by the part of the backend at fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unresolved {
    /// The Service is missing or unusable.
    Service(String),
    /// The Service exists but has no such port.
    Port(String),
}

impl Unresolved {
    /// The plain reason.
    pub fn reason(&self) -> &str {
        match self {
            Unresolved::Service(r) | Unresolved::Port(r) => r,
        }
    }
}

/// Where one route sends requests: a Service port and what was found behind it. Per-request
/// state (round-robin turns, ejections) lives in the proxy. What the EndpointSlices say is
/// published in the backend itself ([`Backend::resolved`]): an EndpointSlice change swaps it
/// in place, without a rebuild, as ingress-nginx's balancer takes endpoints without a reload;
/// everything else about a backend is fixed when it is built.
#[derive(Debug)]
pub struct Backend {
    /// The Service port named by the Ingress; `None` for backends Vestibule cannot serve
    /// (resource backends).
    pub service: Option<ServiceRef>,
    resolution: arc_swap::ArcSwap<Resolution>,
    /// A Gateway API backendRef that cannot be used (missing Service or port, unknown kind,
    /// not permitted across namespaces): its requests get 500, as the spec requires, where an
    /// Ingress's get 503.
    pub invalid_ref: bool,
}

/// A backend's endpoints as its Service's EndpointSlices give them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resolution {
    pub endpoints: Endpoints,
    /// Why the backend can have no endpoints at all (missing Service or port, unsupported
    /// kind, only unusable EndpointSlices).
    pub problem: Option<String>,
}

impl Backend {
    pub(crate) fn new(
        service: Option<ServiceRef>,
        endpoints: Endpoints,
        problem: Option<String>,
    ) -> Self {
        Backend {
            service,
            resolution: arc_swap::ArcSwap::from_pointee(Resolution { endpoints, problem }),
            invalid_ref: false,
        }
    }

    /// The endpoints in force. The guard is for reading now; hold
    /// [`Backend::resolved_full`] across an await.
    pub fn resolved(&self) -> arc_swap::Guard<Arc<Resolution>> {
        self.resolution.load()
    }

    /// [`Backend::resolved`], owned.
    pub fn resolved_full(&self) -> Arc<Resolution> {
        self.resolution.load_full()
    }

    /// Publishes new endpoints: requests from now on use them.
    pub fn publish(&self, resolution: Resolution) {
        self.resolution.store(Arc::new(resolution));
    }

    /// Why requests cannot be sent here, if they cannot.
    pub fn unavailable(&self) -> Option<String> {
        let r = self.resolved();
        if !r.endpoints.targets.is_empty() {
            return None;
        }
        Some(r.problem.clone().unwrap_or_else(|| match &self.service {
            Some(s) => format!("Service {s} has no ready endpoints"),
            None => "no endpoints".to_owned(),
        }))
    }
}

/// What a Service port's EndpointSlices give a backend: its endpoints, and why it can have
/// none when every slice is unusable. The same for a full build and for an EndpointSlice
/// change alone.
pub fn resolution(
    index: &ServiceIndex<'_>,
    service: &ServiceRef,
) -> Result<Resolution, Unresolved> {
    let endpoints = index.resolve(service)?;
    let problem = (endpoints.all.is_empty() && index.has_invalid_slices(service))
        .then(|| "its EndpointSlices list no usable endpoint (see their diagnostics)".to_owned());
    Ok(Resolution { endpoints, problem })
}

/// The Services and EndpointSlices of a snapshot, indexed once per build.
pub struct ServiceIndex<'a> {
    services: HashMap<(&'a str, &'a str), &'a Service>,
    slices: HashMap<(&'a str, &'a str), Vec<&'a EndpointSlice>>,
}

impl<'a> ServiceIndex<'a> {
    pub fn new(services: &'a [Arc<Service>], slices: &'a [Arc<EndpointSlice>]) -> Self {
        let services = services
            .iter()
            .map(|s| &**s)
            .filter_map(|s| {
                Some((
                    (
                        s.metadata.namespace.as_deref()?,
                        s.metadata.name.as_deref()?,
                    ),
                    s,
                ))
            })
            .collect();
        let mut by_service: HashMap<_, Vec<_>> = HashMap::default();
        for slice in slices {
            let owner = slice.service.as_deref();
            if let (Some(ns), Some(owner)) = (slice.metadata.namespace.as_deref(), owner) {
                by_service.entry((ns, owner)).or_default().push(&**slice);
            }
        }
        ServiceIndex {
            services,
            slices: by_service,
        }
    }

    /// Resolves a Service port to its endpoints. `Err` says why there can be none at all (no
    /// such Service or port); a Service with no ready pods is `Ok` with no targets.
    pub fn resolve(&self, service: &ServiceRef) -> Result<Endpoints, Unresolved> {
        let svc = self
            .services
            .get(&(service.namespace.as_str(), service.name.as_str()))
            .ok_or_else(|| {
                Unresolved::Service(format!(
                    "Service {}/{} not found",
                    service.namespace, service.name
                ))
            })?;
        let spec = svc.spec.as_ref();
        if spec.and_then(|s| s.type_.as_deref()) == Some("ExternalName") {
            return external_name(svc, service);
        }
        let ports = spec.and_then(|s| s.ports.as_deref()).unwrap_or_default();
        let port = find_port(ports, &service.port).ok_or_else(|| {
            Unresolved::Port(format!(
                "Service {}/{} has no port {}",
                service.namespace, service.name, service.port
            ))
        })?;
        let port_name = port.name.as_deref().unwrap_or("");
        let slices = self
            .slices
            .get(&(service.namespace.as_str(), service.name.as_str()))
            .map(Vec::as_slice)
            .unwrap_or_default();
        Ok(endpoints_of(slices, port_name))
    }
}

impl ServiceIndex<'_> {
    /// `service-upstream`: the Service's cluster IP and port as the one target, instead of its
    /// endpoints (kube-proxy then picks the pod). A headless Service has none: `None`, and the
    /// endpoints are used.
    pub fn cluster_ip(&self, service: &ServiceRef) -> Option<Endpoints> {
        let svc = self
            .services
            .get(&(service.namespace.as_str(), service.name.as_str()))?;
        let spec = svc.spec.as_ref()?;
        let ip: std::net::IpAddr = spec.cluster_ip.as_deref()?.parse().ok()?;
        let port = find_port(spec.ports.as_deref().unwrap_or_default(), &service.port)?;
        let port = u16::try_from(port.port).ok().filter(|p| *p != 0)?;
        let target = Target::Ip(SocketAddr::new(ip, port));
        Some(Endpoints::single(target))
    }

    /// The first port of a Service, as ingress-nginx's `default-backend` annotation takes it.
    pub fn first_port(&self, namespace: &str, name: &str) -> Option<PortRef> {
        let svc = self.services.get(&(namespace, name))?;
        let port = svc.spec.as_ref()?.ports.as_ref()?.first()?;
        Some(match port.name.as_deref() {
            Some(n) if !n.is_empty() => PortRef::Name(n.to_owned()),
            _ => PortRef::Number(port.port),
        })
    }

    /// Whether one of the Service's EndpointSlices has something the API server would refuse,
    /// to explain a Service without endpoints better than "does the selector match a pod?".
    pub fn has_invalid_slices(&self, service: &ServiceRef) -> bool {
        self.slices
            .get(&(service.namespace.as_str(), service.name.as_str()))
            .is_some_and(|slices| slices.iter().any(|s| !slice_problems(s).is_empty()))
    }
}

fn find_port<'p>(ports: &'p [ServicePort], wanted: &PortRef) -> Option<&'p ServicePort> {
    ports.iter().find(|p| match wanted {
        PortRef::Number(n) => p.port == *n,
        PortRef::Name(name) => p.name.as_deref() == Some(name.as_str()),
    })
}

fn external_name(svc: &Service, service: &ServiceRef) -> Result<Endpoints, Unresolved> {
    let spec = svc.spec.as_ref();
    let host = spec
        .and_then(|s| s.external_name.as_deref())
        .filter(|h| !h.is_empty())
        .ok_or_else(|| {
            Unresolved::Service(format!(
                "ExternalName Service {}/{} has no spec.externalName",
                service.namespace, service.name
            ))
        })?;
    let port = match &service.port {
        PortRef::Number(n) => *n,
        PortRef::Name(_) => {
            let ports = spec.and_then(|s| s.ports.as_deref()).unwrap_or_default();
            find_port(ports, &service.port)
                .map(|p| p.port)
                .ok_or_else(|| {
                    Unresolved::Port(format!(
                        "ExternalName Service {}/{} has no port named {}",
                        service.namespace, service.name, service.port
                    ))
                })?
        }
    };
    let port = u16::try_from(port)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| Unresolved::Port(format!("port {port} is out of range")))?;
    let target = Target::Dns {
        host: Arc::from(host.trim_end_matches('.')),
        port,
    };
    Ok(Endpoints::single(target))
}

/// Collects the endpoints of the slice port named `port_name` over all slices of a Service,
/// removing duplicates (an endpoint may sit in two slices while it moves).
fn endpoints_of(slices: &[&EndpointSlice], port_name: &str) -> Endpoints {
    let mut found: Vec<Endpoint> = Vec::new();
    let mut seen_at: HashMap<Target, usize> = HashMap::default();
    for slice in slices {
        let Some(port) = slice
            .ports
            .iter()
            .find(|p| p.name.as_deref().unwrap_or("") == port_name)
            .and_then(|p| p.port)
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p != 0)
        else {
            continue;
        };
        for endpoint in &slice.endpoints {
            // All addresses of one endpoint are fungible; consumers may use the first.
            let Some(address) = endpoint.addresses.first() else {
                continue;
            };
            let target = match slice.address_type.as_str() {
                "IPv4" => match address.parse::<Ipv4Addr>() {
                    Ok(ip) => Target::Ip(SocketAddr::new(IpAddr::V4(ip), port)),
                    Err(_) => continue,
                },
                "IPv6" => match address.parse::<Ipv6Addr>() {
                    Ok(ip) => Target::Ip(SocketAddr::new(IpAddr::V6(ip), port)),
                    Err(_) => continue,
                },
                "FQDN" if !address.is_empty() => Target::Dns {
                    host: Arc::from(address.trim_end_matches('.')),
                    port,
                },
                _ => continue,
            };
            let ready = endpoint.ready.unwrap_or(true);
            let serving = endpoint.serving.unwrap_or(true);
            let terminating = endpoint.terminating.unwrap_or(false);
            match seen_at.get(&target) {
                Some(&i) => {
                    let seen = &mut found[i];
                    seen.ready |= ready;
                    seen.serving |= serving;
                    seen.terminating &= terminating;
                }
                None => {
                    seen_at.insert(target.clone(), found.len());
                    found.push(Endpoint {
                        target,
                        ready,
                        serving,
                        terminating,
                    });
                }
            }
        }
    }
    found.sort_by(|a, b| a.target.cmp(&b.target));
    let mut targets: Vec<Target> = found
        .iter()
        .filter(|e| e.ready)
        .map(|e| e.target.clone())
        .collect();
    if targets.is_empty() {
        targets = found
            .iter()
            .filter(|e| e.serving && e.terminating)
            .map(|e| e.target.clone())
            .collect();
    }
    Endpoints {
        all: found,
        targets,
    }
}

/// What the API server would refuse in an EndpointSlice (manifest files skip it): ports out
/// of range and addresses that are not of the slice's `addressType`, as `(field, reason)`.
/// Such ports and addresses are never used.
pub fn slice_problems(slice: &EndpointSlice) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    for (i, port) in slice.ports.iter().enumerate() {
        if let Some(p) = port.port
            && !(1..=65535).contains(&p)
        {
            problems.push((
                format!("ports[{i}].port"),
                format!("{p} is not a port number (1-65535)"),
            ));
        }
    }
    let kind = slice.address_type.as_str();
    if !matches!(kind, "IPv4" | "IPv6" | "FQDN") {
        problems.push((
            "addressType".to_owned(),
            format!("{kind:?} is not IPv4, IPv6 or FQDN"),
        ));
        return problems;
    }
    for (i, endpoint) in slice.endpoints.iter().enumerate() {
        for (j, address) in endpoint.addresses.iter().enumerate() {
            let fits = match kind {
                "IPv4" => address.parse::<Ipv4Addr>().is_ok(),
                "IPv6" => address.parse::<Ipv6Addr>().is_ok(),
                _ => !address.is_empty(),
            };
            if !fits {
                problems.push((
                    format!("endpoints[{i}].addresses[{j}]"),
                    format!("{address:?} is not an {kind} address"),
                ));
            }
        }
    }
    problems
}
