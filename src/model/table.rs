//! The immutable routing table and its lookup: host group first, then the router of that group
//! (or, on hosts with Gateway API routes, the ranked list), then the first route whose
//! conditions hold.

use super::endpoints::Backend;
use super::host::{HostRule, RequestHost, wildcard_suffix};
use super::path::PathRegex;
use super::path::PathRule;
use super::policy::Policy;
use super::snapshot::ObjectRef;
use rustc_hash::FxHashMap;
use std::fmt;
use std::sync::Arc;

/// One backend of a route and its share of the requests.
#[derive(Debug, Clone)]
pub struct WeightedBackend {
    pub backend: Arc<Backend>,
    /// Relative weight; 0 takes no requests.
    pub weight: u32,
    /// Header changes for requests that go to this backend (Gateway API backendRef filters).
    pub filters: Option<Arc<super::policy::BackendFilters>>,
}

/// A route's identity across rebuilds: the same Ingress rule (object, host, path, type) gets
/// the same id, so per-route state in the proxy survives a publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouteId(pub u64);

impl RouteId {
    /// The id of whatever `parts` name, hashed with a fixed hasher (stable within a build
    /// of Vestibule, which is all per-route state needs).
    pub fn of(parts: impl std::hash::Hash) -> RouteId {
        use std::hash::Hasher;
        let mut h = rustc_hash::FxHasher::default();
        parts.hash(&mut h);
        RouteId(h.finish())
    }
}

impl fmt::Display for RouteId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// Extra conditions a request must meet for a route, beyond host and path. Ingress rules have
/// none; the Gateway API's header, query and method matches land here.
#[derive(Debug, Default)]
pub struct Matches {
    pub conditions: Vec<Condition>,
}

/// One condition of [`Matches`].
#[derive(Debug, Clone)]
pub enum Condition {
    Method(http::Method),
    /// The header is present with exactly this value.
    Header(http::HeaderName, http::HeaderValue),
    /// The header is present with a value the regex matches in full.
    HeaderRegex(http::HeaderName, Arc<regex::Regex>),
    /// The query parameter's first value (percent-decoded) is exactly this; names are
    /// case-sensitive.
    Query(Box<str>, Box<str>),
    /// The query parameter's first value matches the regex in full.
    QueryRegex(Box<str>, Arc<regex::Regex>),
    /// The request arrived over TLS (`true`) or plain HTTP: a Gateway API route attached to
    /// only one of the two listener ports.
    Tls(bool),
}

/// The parts of a request that conditions look at.
pub struct RequestFacts<'a> {
    pub method: &'a http::Method,
    pub headers: &'a http::HeaderMap,
    pub query: Option<&'a str>,
    /// Whether the connection is TLS.
    pub tls: bool,
}

impl Matches {
    pub fn is_empty(&self) -> bool {
        self.conditions.is_empty()
    }

    /// Whether every condition holds for the request.
    pub fn hold(&self, req: &RequestFacts<'_>) -> bool {
        self.conditions.iter().all(|c| match c {
            Condition::Method(m) => req.method == m,
            Condition::Header(name, value) => req.headers.get_all(name).iter().any(|v| v == value),
            Condition::HeaderRegex(name, re) => req
                .headers
                .get_all(name)
                .iter()
                .any(|v| v.to_str().is_ok_and(|v| re.is_match(v))),
            Condition::Query(name, value) => {
                query_value(req.query, name).is_some_and(|v| *v == **value)
            }
            Condition::QueryRegex(name, re) => {
                query_value(req.query, name).is_some_and(|v| re.is_match(&v))
            }
            Condition::Tls(tls) => req.tls == *tls,
        })
    }

    /// How many conditions of one kind there are, for precedence.
    fn count(&self, of: impl Fn(&Condition) -> bool) -> usize {
        self.conditions.iter().filter(|c| of(c)).count()
    }
}

/// The first value of query parameter `name`, percent-decoded (`+` stays itself, as the
/// Gateway API compares the value as sent apart from percent-encoding).
pub fn query_value<'q>(query: Option<&'q str>, name: &str) -> Option<std::borrow::Cow<'q, str>> {
    let decode = |s: &'q str| percent_encoding::percent_decode_str(s).decode_utf8_lossy();
    query?
        .split('&')
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
        .find(|(n, _)| decode(n) == name)
        .map(|(_, v)| decode(v))
}

/// Where a route stands among the routes of a host group that holds Gateway API routes: the
/// spec's precedence (HTTPRoute `rules` field docs): Exact paths, then regular expressions,
/// then prefixes, longer paths first; then a method match, more header matches, more query
/// matches; then the older object, `namespace/name`, and rule and match order. Smaller wins.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rank {
    kind: u8,
    path_len: std::cmp::Reverse<usize>,
    method: std::cmp::Reverse<bool>,
    headers: std::cmp::Reverse<usize>,
    queries: std::cmp::Reverse<usize>,
    /// The route's hostname: precise before wildcard, longer first. (The spec ranks
    /// hostnames before paths, but its conformance tests merge a wildcard route's rules into
    /// a precise host and rank by path first: `HTTPRouteMatchingAcrossRoutes`.)
    host: (std::cmp::Reverse<usize>, std::cmp::Reverse<usize>),
    /// Creation time in seconds; objects without one (manifest files) count as newest.
    created: (bool, i64),
    object: (String, String),
    /// The rule's index and the match's within it.
    position: (usize, usize),
}

impl Rank {
    /// The rank of a route for `host` with `path` and `matches`, from the object created at
    /// `created` (seconds) and named `object`, at `position` (rule, match) within it.
    pub fn of(
        host: &HostRule,
        path: &PathMatch,
        matches: &Matches,
        created: Option<i64>,
        object: &ObjectRef,
        position: (usize, usize),
    ) -> Rank {
        let host = match host {
            HostRule::Exact(h) => (h.len(), h.len()),
            HostRule::Wildcard(s) => (0, s.len() + 2),
            HostRule::Any => (0, 0),
        };
        let (kind, len) = match path {
            PathMatch::Rule(p) if p.path_type.is_exact() => (0, p.path.len()),
            PathMatch::Regex(re) => (1, re.as_str().len()),
            PathMatch::Rule(p) => (2, p.match_path().len()),
        };
        use std::cmp::Reverse;
        Rank {
            kind,
            path_len: Reverse(len),
            method: Reverse(matches.count(|c| matches!(c, Condition::Method(_))) > 0),
            headers: Reverse(
                matches.count(|c| matches!(c, Condition::Header(..) | Condition::HeaderRegex(..))),
            ),
            queries: Reverse(
                matches.count(|c| matches!(c, Condition::Query(..) | Condition::QueryRegex(..))),
            ),
            host: (Reverse(host.0), Reverse(host.1)),
            created: (created.is_none(), created.unwrap_or(0)),
            object: (object.namespace.clone(), object.name.clone()),
            position,
        }
    }
}

/// How a route of an ordered host group matches the path.
#[derive(Debug, Clone)]
pub enum PathMatch {
    /// Exact or by prefix (Gateway API `PathPrefix` is Ingress's `Prefix`).
    Rule(PathRule),
    /// Gateway API `RegularExpression`: the whole path must match (RE2 syntax, as the `regex`
    /// crate's).
    Regex(Arc<regex::Regex>),
}

impl PathMatch {
    pub fn matches(&self, path: &str) -> bool {
        match self {
            PathMatch::Rule(rule) => rule.matches(path),
            PathMatch::Regex(re) => re.is_match(path),
        }
    }
}

/// One routing decision: which Ingress rule claimed the request, what it does, and where it
/// sends it.
#[derive(Debug)]
pub struct Route {
    pub id: RouteId,
    /// Shared by every route of one Ingress.
    pub ingress: Arc<ObjectRef>,
    pub host: HostRule,
    /// `None` for the default backend and generated redirects, which match any path.
    pub path: Option<PathRule>,
    /// The path as a regex, on hosts whose paths are regexes (ingress-nginx's `use-regex`);
    /// a rewrite's groups come from it.
    pub pattern: Option<Arc<PathRegex>>,
    pub matches: Matches,
    pub policy: Arc<Policy>,
    /// Never empty; the first is the one requests go to when weights do not decide.
    pub backends: Vec<WeightedBackend>,
    /// An ingress-nginx canary's alternative backend, if one is attached.
    pub canary: Option<Arc<super::canary::Canary>>,
    /// The backends' total weight and the stride that walks it ([`Spread::of`]), worked out
    /// once per build rather than per request.
    pub spread: Spread,
}

/// How turns walk a weighted backend set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spread {
    pub total: u64,
    pub stride: u64,
}

impl Spread {
    pub fn of(backends: &[WeightedBackend]) -> Spread {
        let total: u64 = backends.iter().map(|b| u64::from(b.weight)).sum();
        Spread {
            total,
            stride: spread_stride(total.max(1)),
        }
    }
}

impl Route {
    /// The route's first backend (an Ingress rule has exactly one).
    pub fn backend(&self) -> &Arc<Backend> {
        &self.backends[0].backend
    }

    /// The backend for request number `turn`, by weight (smooth over any `turn` sequence).
    pub fn backend_for(&self, turn: usize) -> &Arc<Backend> {
        &self.weighted_for(turn).backend
    }

    /// [`Route::backend_for`], with the backend's own filters.
    pub fn weighted_for(&self, turn: usize) -> &WeightedBackend {
        let first = &self.backends[0];
        if self.backends.len() == 1 {
            return first;
        }
        let Spread { total, stride } = self.spread;
        if total == 0 {
            return first;
        }
        // Turns walk the weight slots by a stride coprime with the total, so every `total`
        // turns give each backend exactly its weight, interleaved rather than in runs.
        let step = u128::from(turn as u64 % total) * u128::from(stride);
        let mut at = (step % u128::from(total)) as u64;
        for b in &self.backends {
            if at < u64::from(b.weight) {
                return b;
            }
            at -= u64::from(b.weight);
        }
        first
    }

    /// Whether requests can go more than one way (several backends, or several endpoints).
    pub fn has_choice(&self) -> bool {
        self.backends.len() > 1 || self.backend().resolved().endpoints.targets.len() > 1
    }

    /// Whether plain-HTTP requests are redirected to https.
    pub fn redirects_to_https(&self) -> bool {
        self.policy
            .filters
            .iter()
            .any(|f| matches!(f, super::policy::Filter::HttpsRedirect(_)))
    }
}

/// A stride near `total` / φ that is coprime with `total`: stepping by it visits every slot
/// once per `total` steps, spread out.
fn spread_stride(total: u64) -> u64 {
    fn gcd(a: u64, b: u64) -> u64 {
        if b == 0 { a } else { gcd(b, a % b) }
    }
    let mut stride = ((total as f64) * 0.618_034).round().max(1.0) as u64;
    while gcd(stride, total) != 1 {
        stride += 1;
    }
    stride
}

/// What one router key leads to: routes in precedence order (Exact before Prefix at one key,
/// then by their conditions); the first whose conditions hold wins.
#[derive(Debug, Clone)]
pub(crate) struct Slot {
    /// Inline: an unconditional lookup reads nothing but the slot (no cache miss more).
    first: Arc<Route>,
    /// The routes after it (an empty slice allocates nothing).
    rest: Box<[Arc<Route>]>,
    /// Whether any route here has conditions. Without, `first` wins outright and the lookup
    /// need not read the routes (a cache miss each, at 100k routes).
    conditional: bool,
}

impl Slot {
    /// A slot of `first` and then `rest`, in precedence order.
    pub(crate) fn of(first: Arc<Route>, rest: Vec<Arc<Route>>) -> Slot {
        let conditional = !first.matches.is_empty() || rest.iter().any(|r| !r.matches.is_empty());
        Slot {
            first,
            rest: rest.into_boxed_slice(),
            conditional,
        }
    }

    fn first(&self, holds: &impl Fn(&Route) -> bool) -> Option<&Arc<Route>> {
        if !self.conditional {
            return Some(&self.first);
        }
        std::iter::once(&self.first)
            .chain(self.rest.iter())
            .find(|r| holds(r))
    }
}

/// How one host group finds the route for a path.
#[derive(Debug, Clone)]
pub(crate) enum Paths {
    /// Ingress path semantics, by matchit.
    Router(matchit::Router<Slot>),
    /// The same semantics for a host of a few unconditional routes (at most [`FEW_PATHS`]):
    /// the routes in precedence order, the first whose path matches wins. A router costs ~1 KB
    /// of nodes per host, this a pointer per route, and most hosts have one to three paths.
    /// A route without a path (a generated redirect) matches every path.
    Few(Box<[Arc<Route>]>),
    /// ingress-nginx's regex locations (`use-regex` or `rewrite-target` on some Ingress of
    /// the host): case-insensitive regexes anchored at the start, longest path first; the
    /// first that matches wins.
    Regex(Vec<(Arc<PathRegex>, Slot)>),
    /// A host with Gateway API routes: every route of the host (its Ingress rules too) in
    /// [`Rank`] order; the first whose path and conditions match wins. A route whose
    /// conditions fail leaves the request to the next, shorter match, as the spec requires.
    Ordered(Box<[(PathMatch, Arc<Route>)]>),
}

/// The most paths a host group keeps as [`Paths::Few`] rather than in a router.
pub(crate) const FEW_PATHS: usize = 8;

impl Default for Paths {
    fn default() -> Self {
        Paths::Router(matchit::Router::new())
    }
}

/// The routes of one host group (one exact host, one wildcard, or the rules without host).
/// An alias holds a copy (the routes themselves are shared).
#[derive(Debug, Default, Clone)]
pub(crate) struct HostRoutes {
    pub(crate) paths: Paths,
    /// Answers requests for exactly `/` before any path rule (`app-root`).
    pub(crate) root: Option<Arc<Route>>,
}

impl HostRoutes {
    fn route(&self, path: &str, holds: &impl Fn(&Route) -> bool) -> Option<&Arc<Route>> {
        if path == "/"
            && let Some(root) = &self.root
        {
            return Some(root);
        }
        match &self.paths {
            Paths::Router(router) => router.at(path).ok()?.value.first(holds),
            Paths::Few(list) => list
                .iter()
                .find(|r| r.path.as_ref().is_none_or(|p| p.matches(path))),
            Paths::Regex(list) => list
                .iter()
                .filter(|(re, _)| re.matches_start(path))
                .find_map(|(_, slot)| slot.first(holds)),
            Paths::Ordered(list) => list
                .iter()
                .find(|(p, r)| p.matches(path) && holds(r))
                .map(|(_, r)| r),
        }
    }
}

/// The immutable result of a build. Lookups read it without locks or allocation.
///
/// Host maps use FxHash: request hosts are only looked up, never inserted, so a client
/// cannot flood them; the keys come from Ingress objects.
///
/// Groups are shared (`Arc`): a build that changes a few hosts copies the maps' pointers and
/// replaces those groups, the others are the previous table's.
#[derive(Debug, Default, Clone)]
pub struct RoutingTable {
    pub(crate) exact: FxHashMap<Arc<str>, Arc<HostRoutes>>,
    /// Keyed by the suffix after `*.`.
    pub(crate) wildcard: FxHashMap<Arc<str>, Arc<HostRoutes>>,
    /// Gateway API wildcards, which match any number of labels (`*.example.com` takes
    /// `a.b.example.com`), for hosts two or more labels below the suffix; the most specific
    /// suffix wins. Only Gateway API routes are here (an Ingress wildcard is one label).
    pub(crate) deep_wildcard: FxHashMap<Arc<str>, Arc<HostRoutes>>,
    pub(crate) any_host: Option<Arc<HostRoutes>>,
    pub(crate) default_route: Option<Arc<Route>>,
    /// Every route, for `/debug/routes` and metrics: in build order, except that a partial
    /// build puts the routes of the Ingresses it rebuilt last.
    pub(crate) routes: Vec<Arc<Route>>,
}

impl RoutingTable {
    /// The route for a request without conditions to check. `host` is the `Host` header or
    /// `:authority` as sent, `path` the request path without query.
    pub fn lookup(&self, host: &str, path: &str) -> Option<&Arc<Route>> {
        self.find(host, path, |r| r.matches.is_empty())
    }

    /// The route for a request: picks one host group (exact host, else wildcard, else the
    /// host-less rules), routes by path inside it to the first route whose conditions
    /// `holds`, and otherwise falls back to the default backend.
    pub fn find(
        &self,
        host: &str,
        path: &str,
        holds: impl Fn(&Route) -> bool,
    ) -> Option<&Arc<Route>> {
        let group = RequestHost::parse(host).and_then(|h| self.host_group(h.as_str()));
        match group {
            Some(group) => group.route(path, &holds),
            None => None,
        }
        .or(self.default_route.as_ref())
    }

    fn host_group(&self, host: &str) -> Option<&HostRoutes> {
        self.exact
            .get(host)
            .map(|g| &**g)
            .or_else(|| {
                let suffix = wildcard_suffix(host)?;
                self.wildcard
                    .get(suffix)
                    .map(|g| &**g)
                    .or_else(|| self.deep_wildcard_group(suffix))
            })
            .or(self.any_host.as_deref())
    }

    /// The Gateway API wildcard group for a host whose one-label suffix is `suffix`, trying
    /// ever shorter suffixes below it.
    fn deep_wildcard_group(&self, mut suffix: &str) -> Option<&HostRoutes> {
        if self.deep_wildcard.is_empty() {
            return None;
        }
        while let Some(shorter) = wildcard_suffix(suffix) {
            if let Some(group) = self.deep_wildcard.get(shorter) {
                return Some(&**group);
            }
            suffix = shorter;
        }
        None
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::endpoints::Endpoints;
    use crate::model::policy::Policy;

    fn backend(name: &str) -> Arc<Backend> {
        let service = crate::model::ServiceRef::parse(&format!("ns/{name}:80")).unwrap();
        Arc::new(Backend::new(Some(service), Endpoints::default(), None))
    }

    fn route(backends: &[(&Arc<Backend>, u32)], conditions: Vec<Condition>) -> Arc<Route> {
        let backends: Vec<WeightedBackend> = backends
            .iter()
            .map(|(b, weight)| WeightedBackend {
                backend: (*b).clone(),
                weight: *weight,
                filters: None,
            })
            .collect();
        Arc::new(Route {
            id: RouteId::of("r"),
            spread: Spread::of(&backends),
            ingress: Arc::new(ObjectRef {
                kind: "Ingress",
                namespace: "ns".to_owned(),
                name: "i".to_owned(),
            }),
            host: HostRule::Any,
            path: None,
            pattern: None,
            matches: Matches { conditions },
            policy: Arc::new(Policy::default()),
            canary: None,
            backends,
        })
    }

    fn name(b: &Backend) -> &str {
        &b.service.as_ref().unwrap().name
    }

    #[test]
    fn weights_share_the_turns_and_zero_takes_none() {
        let (a, b, c) = (backend("a"), backend("b"), backend("c"));
        let r = route(&[(&a, 3), (&b, 1), (&c, 0)], Vec::new());
        let picks: Vec<&str> = (0..8).map(|t| name(r.backend_for(t))).collect();
        assert_eq!(picks, ["a", "b", "a", "a", "a", "b", "a", "a"]);
        // 80/20 is interleaved: the first ten turns already split 8/2 or 9/1, and every
        // hundred exactly 80/20.
        let r = route(&[(&a, 80), (&b, 20)], Vec::new());
        let first: usize = (0..10).filter(|t| name(r.backend_for(*t)) == "b").count();
        assert!((1..=2).contains(&first), "{first}");
        let all: usize = (0..100).filter(|t| name(r.backend_for(*t)) == "b").count();
        assert_eq!(all, 20);
        // Weights that no CRD validated: the arithmetic does not overflow.
        let r = route(
            &[(&a, u32::MAX), (&b, u32::MAX), (&c, u32::MAX)],
            Vec::new(),
        );
        assert!(["a", "b", "c"].contains(&name(r.backend_for(usize::MAX))));
        // All weights 0: the first backend, rather than nothing.
        let r = route(&[(&a, 0), (&b, 0)], Vec::new());
        assert_eq!(name(r.backend_for(5)), "a");
    }

    #[test]
    fn a_slot_gives_the_first_route_whose_conditions_hold() {
        let (a, b) = (backend("a"), backend("b"));
        let post_only = route(&[(&a, 1)], vec![Condition::Method(http::Method::POST)]);
        let any = route(&[(&b, 1)], Vec::new());
        let slot = Slot::of(post_only, vec![any]);
        let headers = http::HeaderMap::new();
        let pick = |method: http::Method| {
            let facts = RequestFacts {
                method: &method,
                headers: &headers,
                query: None,
                tls: false,
            };
            name(
                slot.first(&|r: &Route| r.matches.hold(&facts))
                    .unwrap()
                    .backend(),
            )
            .to_owned()
        };
        assert_eq!(pick(http::Method::POST), "a");
        assert_eq!(pick(http::Method::GET), "b");
        // Unconditional slots answer without asking.
        let plain = Slot::of(route(&[(&a, 1)], Vec::new()), Vec::new());
        assert!(plain.first(&|_: &Route| false).is_some());
    }
}
