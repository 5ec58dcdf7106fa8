//! The immutable routing table and its lookup: host group first, then the router of that group.

use super::endpoints::{Endpoints, ServiceRef};
use super::host::{HostRule, RequestHost, wildcard_suffix};
use super::path::PathRule;
use super::snapshot::ObjectRef;
use rustc_hash::FxHashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Where one route sends requests: a Service port and what was found behind it.
#[derive(Debug)]
pub struct Backend {
    /// The Service port named by the Ingress; `None` for backends Vestibule cannot serve
    /// (resource backends).
    pub service: Option<ServiceRef>,
    pub endpoints: Endpoints,
    /// Why the backend can have no endpoints at all (missing Service or port, unsupported kind).
    pub problem: Option<String>,
    /// Round-robin position. The only state a table carries; it starts again at each publish.
    cursor: AtomicUsize,
}

impl Backend {
    pub(crate) fn new(
        service: Option<ServiceRef>,
        endpoints: Endpoints,
        problem: Option<String>,
    ) -> Self {
        Backend {
            service,
            endpoints,
            problem,
            cursor: AtomicUsize::new(0),
        }
    }

    /// A number that grows by one per call, for round-robin over `endpoints.targets`.
    pub fn next_turn(&self) -> usize {
        self.cursor.fetch_add(1, Ordering::Relaxed)
    }
}

/// One routing decision: which Ingress rule claimed the request and its backend.
#[derive(Debug)]
pub struct Route {
    /// Shared by every route of one Ingress.
    pub ingress: Arc<ObjectRef>,
    pub host: HostRule,
    /// `None` for the default backend, which matches whatever no rule claims.
    pub path: Option<PathRule>,
    pub backend: Arc<Backend>,
    /// Plain-HTTP requests get a 308 to https: the host has TLS and the Ingress did not opt out.
    pub redirect_to_https: bool,
}

/// What one router key leads to. Exact and prefix rules may share a key (`/foo` Exact and
/// `/foo` Prefix both insert `/foo`); the Exact rule then wins, as its path is at least as long.
#[derive(Debug, Default)]
pub(crate) struct Slot {
    pub(crate) exact: Option<Arc<Route>>,
    pub(crate) prefix: Option<Arc<Route>>,
}

/// The routes of one host group (one exact host, one wildcard, or the rules without host).
#[derive(Debug, Default)]
pub(crate) struct HostRoutes {
    pub(crate) router: matchit::Router<Slot>,
}

impl HostRoutes {
    fn route(&self, path: &str) -> Option<&Arc<Route>> {
        let slot = self.router.at(path).ok()?.value;
        slot.exact.as_ref().or(slot.prefix.as_ref())
    }
}

/// The immutable result of a build. Lookups read it without locks or allocation.
///
/// Host maps use FxHash: request hosts are only looked up, never inserted, so a client
/// cannot flood them; the keys come from Ingress objects.
#[derive(Debug, Default)]
pub struct RoutingTable {
    pub(crate) exact: FxHashMap<Box<str>, HostRoutes>,
    /// Keyed by the suffix after `*.`.
    pub(crate) wildcard: FxHashMap<Box<str>, HostRoutes>,
    pub(crate) any_host: Option<HostRoutes>,
    pub(crate) default_route: Option<Arc<Route>>,
    /// Every route in build order, for `/debug/routes` and metrics.
    pub(crate) routes: Vec<Arc<Route>>,
}

impl RoutingTable {
    /// The route for a request. `host` is the `Host` header or `:authority` as sent, `path`
    /// the request path without query. Picks one host group (exact host, else wildcard, else
    /// the host-less rules), routes by path inside it, and otherwise falls back to the default
    /// backend.
    pub fn lookup(&self, host: &str, path: &str) -> Option<&Arc<Route>> {
        let group = RequestHost::parse(host).and_then(|h| self.host_group(h.as_str()));
        match group {
            Some(group) => group.route(path),
            None => None,
        }
        .or(self.default_route.as_ref())
    }

    fn host_group(&self, host: &str) -> Option<&HostRoutes> {
        self.exact
            .get(host)
            .or_else(|| wildcard_suffix(host).and_then(|s| self.wildcard.get(s)))
            .or(self.any_host.as_ref())
    }

    /// Every route, in the order the build placed them.
    pub fn routes(&self) -> &[Arc<Route>] {
        &self.routes
    }

    /// The route taken when no rule matches.
    pub fn default_route(&self) -> Option<&Arc<Route>> {
        self.default_route.as_ref()
    }

    /// How many distinct hosts (exact and wildcard) have rules.
    pub fn host_count(&self) -> usize {
        self.exact.len() + self.wildcard.len()
    }
}
