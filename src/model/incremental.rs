//! Builds that cost what a change touches. [`Model`] keeps every object by kind and name, an
//! index of the hosts, Services and Secrets each Ingress of ours names, and the last
//! [`Built`]. A change to Ingresses, Services, EndpointSlices or Secrets rebuilds only the
//! Ingresses that share a host with what it touches (closed: every Ingress of every host they
//! name), and splices their host groups, routes, certificates, diagnostics and backend users
//! into a copy of the last build; every other group, route and backend is the last build's own
//! (`Arc`). A change of only HTTPRoutes that name only precise hostnames (before and after)
//! rebuilds the groups of those hosts, from every route that may place on them (naming them,
//! a wildcard above them, or no hostname) and every Gateway; listeners' attached routes and
//! backends' uses move by what that part counts after less before. Otherwise the Gateway API
//! objects are rebuilt as one part, with every Ingress of every host they may touch, when
//! one of them changes, a Service or Secret they name does, or an Ingress change reaches one
//! of their hosts. What a splice cannot express takes a full
//! [`build_after`], which stays the reference (the property test below applies random
//! changes both ways and compares after each): IngressClasses, the ConfigMap and Namespaces;
//! Ingresses with a default backend, `server-alias`, `from-to-www-redirect` or
//! `ssl-passthrough`, or whose wildcard TLS hosts change; hosts that aliases or `www.`
//! redirects link to others; and a change whose closure is a large part of the cluster
//! anyway.

use super::build::{
    Built, ClientAuthBinding, Options, Seed, TlsBinding, build_after, build_seeded, group_of,
    insert_shared, slice_diagnostics,
};
use super::class::OurClasses;
use super::diagnostic::Diagnostic;
use super::endpoints::{Backend, ServiceRef};
use super::gateway::covering;
use super::host::HostRule;
use super::ingress_nginx::{NGINX, VESTIBULE};
use super::snapshot::{Object, ObjectRef, Snapshot};
use super::table::{HostRoutes, RoutingTable};
use gateway_api::httproutes::HttpRoute;
use k8s_openapi::api::networking::v1::Ingress;
use rustc_hash::{FxHashMap, FxHashSet};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// `(namespace, name)`.
type Key = (String, String);

/// One object added, replaced or removed.
#[derive(Clone, Debug)]
pub enum Change {
    Put(Object),
    Delete(ObjectRef),
}

/// How a [`Model::apply`] went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rebuilt {
    /// Everything was built again.
    Full,
    /// Only this many Ingresses were built again.
    Partial(usize),
}

/// The objects, their index, and the last build.
pub struct Model {
    options: Options,
    store: Store,
    index: Index,
    last: Option<Built>,
}

/// A partial build gives up on a closure bigger than this share of the Ingresses of ours
/// (`1 / FULL_SHARE`), where a full build costs about as much.
const FULL_SHARE: usize = 4;

impl Model {
    pub fn new(options: Options) -> Model {
        Model {
            options,
            store: Store::default(),
            index: Index::default(),
            last: None,
        }
    }

    /// The options the model builds with.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// Replaces every object with `snapshot`'s and builds in full (a bad ConfigMap key keeps
    /// the value of the last build's settings).
    pub fn load(&mut self, snapshot: &Snapshot) -> &Built {
        self.store = Store::default();
        for o in objects_of(snapshot) {
            self.store.put(o);
        }
        self.full()
    }

    /// The last build, if any.
    pub fn last(&self) -> Option<&Built> {
        self.last.as_ref()
    }

    /// Every object, sorted as [`Snapshot::sorted`] sorts.
    pub fn snapshot(&self) -> Snapshot {
        self.store.snapshot()
    }

    /// The Secret `namespace/name`, if present.
    pub fn secret(
        &self,
        namespace: &str,
        name: &str,
    ) -> Option<&Arc<k8s_openapi::api::core::v1::Secret>> {
        self.store
            .secrets
            .get(&(namespace.to_owned(), name.to_owned()))
    }

    /// The object `r` names, if present.
    pub fn object(&self, r: &ObjectRef) -> Option<Object> {
        self.store.get(r)
    }

    /// The Services named in `services` with their EndpointSlices, and the slices named in
    /// `slices`, as held now.
    #[allow(clippy::type_complexity)]
    pub fn endpoint_objects(
        &self,
        services: &[(String, String)],
        slices: &[(String, String)],
    ) -> (
        Vec<Arc<k8s_openapi::api::core::v1::Service>>,
        Vec<Arc<crate::model::EndpointSlice>>,
    ) {
        let mut found_services = Vec::new();
        let mut names: BTreeSet<Key> = slices.iter().cloned().collect();
        for key in services {
            found_services.extend(self.store.services.get(key).cloned());
            for name in self.store.slices_of.get(key).into_iter().flatten() {
                names.insert((key.0.clone(), name.clone()));
            }
        }
        let found_slices = names
            .iter()
            .filter_map(|k| self.store.endpoint_slices.get(k).cloned())
            .collect();
        (found_services, found_slices)
    }

    /// Takes the changes in without building yet ([`Model::rebuild`] builds them; an
    /// EndpointSlice change published in place needs no more).
    pub fn record(&mut self, changes: Vec<Change>) -> Recorded {
        let class_list = self.store.classes();
        let classes = self.classes(&class_list);
        let mut r = Recorded::default();
        // Before the first build the index is made whole by it.
        let indexed = self.last.is_some();
        for change in changes {
            let (old, new) = self.store.apply(change);
            if !indexed {
                r.full = true;
                continue;
            }
            self.index.replace(&classes, old.as_ref(), new.as_ref());
            for o in old.iter().chain(new.iter()) {
                let key = meta_key(o.metadata());
                match o {
                    Object::Ingress(i) => {
                        let f = Footprint::of(i);
                        r.full |= classes.owns(i) && (f.cross_host || !f.wildcard_tls.is_empty());
                        r.ingresses.insert(key);
                    }
                    Object::Service(_) => {
                        r.services.insert(key);
                    }
                    Object::EndpointSlice(s) => {
                        if let Some(owner) = slice_owner(s) {
                            r.services.insert((key.0.clone(), owner));
                        }
                        r.slices.insert(key);
                    }
                    Object::Secret(_) => {
                        r.secrets.insert(key);
                    }
                    Object::HttpRoute(_) => {
                        r.routes.insert(key);
                    }
                    Object::GatewayClass(_) | Object::Gateway(_) | Object::ReferenceGrant(_) => {
                        r.gateway = true
                    }
                    _ => r.full = true,
                }
            }
            if let Some(first) = old.as_ref().or(new.as_ref()) {
                r.before.entry(first.object_ref()).or_insert(old);
            }
        }
        r
    }

    /// Builds what `recorded` changed: only what it touches where that is the same as a
    /// full build, else in full.
    pub fn rebuild(&mut self, recorded: Recorded) -> (&Built, Rebuilt) {
        match self.partial(recorded) {
            Some(n) => (self.last.as_ref().expect("built"), Rebuilt::Partial(n)),
            None => (self.full(), Rebuilt::Full),
        }
    }

    /// [`Model::record`], then [`Model::rebuild`].
    pub fn apply(&mut self, changes: Vec<Change>) -> (&Built, Rebuilt) {
        let recorded = self.record(changes);
        self.rebuild(recorded)
    }

    fn classes(
        &self,
        classes: &[Arc<k8s_openapi::api::networking::v1::IngressClass>],
    ) -> OurClasses {
        OurClasses::new(
            classes,
            &self.options.controller_name,
            &self.options.ingress_class,
            self.options.watch_ingress_without_class,
        )
    }

    fn full(&mut self) -> &Built {
        let snapshot = self.store.snapshot();
        let previous = self.last.as_ref().map(|b| b.global.clone());
        let classes = self.classes(&snapshot.ingress_classes);
        let index_all = || {
            let mut index = Index::default();
            for i in self.store.ingresses.values() {
                index.add(&classes, i);
            }
            for (key, r) in &self.store.http_routes {
                index.add_route(key, r);
            }
            index
        };
        // The index is made beside the build, on another core.
        let (built, index) = std::thread::scope(|scope| {
            let indexing = scope.spawn(index_all);
            let built = build_after(&snapshot, &self.options, previous.as_deref());
            let index = indexing.join().unwrap_or_else(|_| index_all());
            (built, index)
        });
        self.index = index;
        self.last.insert(built)
    }

    /// Applies `changes` (all of kinds a partial build handles) and splices a partial build
    /// into the last; `None` when only a full build will do (the changes are in the store).
    fn partial(&mut self, recorded: Recorded) -> Option<usize> {
        let Recorded {
            before,
            ingresses: changed_ingresses,
            services: changed_services,
            secrets: changed_secrets,
            slices: changed_slices,
            routes: changed_routes,
            gateway: changed_gateway,
            full,
        } = recorded;
        let mut fall_back = full;
        let class_list = self.store.classes();
        let classes = self.classes(&class_list);
        let last = self.last.as_ref()?;
        let default_service = self
            .options
            .default_backend
            .as_ref()
            .map(|s| (s.namespace.clone(), s.name.clone()));
        fall_back |= default_service.is_some_and(|s| changed_services.contains(&s));
        fall_back |=
            self.options.default_backend.is_some() && !last.global.custom_http_errors.is_empty();
        if fall_back {
            return None;
        }
        // The Gateway API objects are rebuilt together (listener isolation and route merging
        // tie their hosts to each other), with every Ingress of their hosts: when one of them
        // changed, a Service or Secret they name, or an Ingress on one of their hosts. Only
        // HTTPRoutes of precise hostnames changing is narrower: their hosts' groups are
        // rebuilt, from every route that may place on them.
        let all_refs: std::cell::OnceCell<GatewayFootprint> = std::cell::OnceCell::new();
        let all_refs = || all_refs.get_or_init(|| GatewayFootprint::of(&self.store));
        let gateway_hosts = || {
            let hosts = last.gateway_hosts.keys().chain(&all_refs().hosts);
            hosts.cloned().collect::<Vec<HostRule>>()
        };
        let only_routes = !changed_routes.is_empty()
            && !changed_gateway
            && changed_ingresses.is_empty()
            && changed_services.is_empty()
            && changed_secrets.is_empty()
            && changed_slices.is_empty();
        let mut scope = if only_routes {
            self.route_hosts(&changed_routes, &before)
                .map_or(GatewayScope::All, GatewayScope::Hosts)
        } else if changed_gateway
            || !changed_routes.is_empty()
            || changed_services
                .iter()
                .any(|s| all_refs().services.contains(s))
            || changed_secrets
                .iter()
                .any(|s| all_refs().secrets.contains(s))
        {
            GatewayScope::All
        } else {
            GatewayScope::Untouched
        };

        // The closure: every Ingress of every host that a changed object's Ingresses name,
        // before and after the change.
        let mut hosts: BTreeSet<HostRule> = BTreeSet::new();
        let mut members: BTreeSet<Key> = changed_ingresses.clone();
        let mut queue: Vec<HostRule> = Vec::new();
        for key in &changed_ingresses {
            let r = raw_ref("Ingress", key);
            if let Some(Some(Object::Ingress(old))) = before.get(&r)
                && classes.owns(old)
            {
                queue.extend(Footprint::of(old).hosts);
            }
        }
        let mut users: Vec<&Key> = changed_ingresses.iter().collect();
        for s in &changed_services {
            users.extend(self.index.by_service.get(s).into_iter().flatten());
        }
        for s in &changed_secrets {
            users.extend(self.index.by_secret.get(s).into_iter().flatten());
        }
        let users: Vec<Key> = users.into_iter().cloned().collect();
        for key in users {
            members.insert(key.clone());
            if let Some(i) = self.store.ingresses.get(&key)
                && classes.owns(i)
            {
                queue.extend(Footprint::of(i).hosts);
            }
        }
        match &scope {
            GatewayScope::Hosts(precise) => queue.extend(precise.iter().cloned()),
            GatewayScope::All => queue.extend(gateway_hosts()),
            GatewayScope::Untouched => {}
        }
        let ours = self.index.ours;
        let cap = (ours / FULL_SHARE).max(64);
        while let Some(host) = queue.pop() {
            if !hosts.insert(host.clone()) {
                continue;
            }
            if last.gateway_hosts.contains_key(&host) {
                match &mut scope {
                    GatewayScope::Hosts(precise) if matches!(host, HostRule::Exact(_)) => {
                        precise.insert(host.clone());
                    }
                    GatewayScope::All => {}
                    _ => {
                        scope = GatewayScope::All;
                        queue.extend(gateway_hosts());
                    }
                }
            }
            for key in self.index.by_host.get(&host).into_iter().flatten() {
                if members.insert(key.clone())
                    && let Some(i) = self.store.ingresses.get(key)
                {
                    queue.extend(Footprint::of(i).hosts);
                }
            }
            if members.len() > cap {
                return None;
            }
        }
        if hosts.iter().any(|h| last.cross_host.contains(h)) {
            return None;
        }
        let current: Vec<Arc<Ingress>> = members
            .iter()
            .filter_map(|k| self.store.ingresses.get(k))
            .filter(|i| classes.owns(i))
            .cloned()
            .collect();
        if current.iter().any(|i| Footprint::of(i).cross_host) {
            return None;
        }
        let previous: Vec<Arc<Ingress>> = members
            .iter()
            .filter_map(|k| match before.get(&raw_ref("Ingress", k)) {
                Some(old) => match old {
                    Some(Object::Ingress(i)) => Some(i.clone()),
                    _ => None,
                },
                None => self.store.ingresses.get(k).cloned(),
            })
            .filter(|i| classes.owns(i))
            .collect();
        if previous.iter().any(|i| Footprint::of(i).cross_host) {
            return None;
        }

        // The Gateway API objects each part reads: none, all, or every Gateway with the
        // routes that may place on the precise hosts (as they were, and as they are).
        let relevant = match &scope {
            GatewayScope::Hosts(precise) => Some(self.routes_on(precise, &changed_routes)),
            _ => None,
        };
        let selection = |before: Option<&FxHashMap<ObjectRef, Option<Object>>>| match &scope {
            GatewayScope::Untouched => None,
            GatewayScope::All => Some(GatewayPart {
                refs: GatewayRefs::Borrowed(all_refs()),
                routes: None,
            }),
            GatewayScope::Hosts(_) => {
                let routes = relevant.as_ref().expect("relevant routes");
                let mut refs = GatewayFootprint::default();
                refs.add_gateways(&self.store);
                for key in routes {
                    if let Some(Object::HttpRoute(r)) =
                        self.store.object(&raw_ref("HTTPRoute", key), before)
                    {
                        refs.add_route(&r);
                    }
                }
                Some(GatewayPart {
                    refs: GatewayRefs::Owned(refs),
                    routes: Some(routes),
                })
            }
        };

        // The part as it was (for the backends it used) and as it is.
        let wildcards: Vec<HostRule> = self.index.tls_wildcards.keys().cloned().collect();
        let no_reuse = |_: &ServiceRef| None;
        let old_part = {
            // The routes as they were count what each listener and backend loses.
            let gateway = match scope {
                GatewayScope::Hosts(_) => selection(Some(&before)),
                _ => None,
            };
            let sub = self
                .store
                .part(&previous, &self.options, Some(&before), gateway.as_ref());
            let seed = Seed {
                tls_wildcards: wildcards.clone(),
                reuse: &no_reuse,
                gateway_reuse: &no_reuse,
            };
            build_seeded(&sub, &self.options, Some(&last.global), Some(seed))
        };
        let reuse = |s: &ServiceRef| -> Option<Arc<Backend>> {
            let key = (s.namespace.clone(), s.name.clone());
            if changed_services.contains(&key) || !last.users.contains_key(s) {
                return None;
            }
            last.backends.get(s).and_then(|v| v.first()).cloned()
        };
        let gateway_reuse = |s: &ServiceRef| -> Option<Arc<Backend>> {
            let key = (s.namespace.clone(), s.name.clone());
            if changed_services.contains(&key) {
                return None;
            }
            last.gateway_backends.get(s).map(|(b, _)| b.clone())
        };
        let new_part = {
            let gateway = selection(None);
            let sub = self
                .store
                .part(&current, &self.options, None, gateway.as_ref());
            let seed = Seed {
                tls_wildcards: wildcards,
                reuse: &reuse,
                gateway_reuse: &gateway_reuse,
            };
            build_seeded(&sub, &self.options, Some(&last.global), Some(seed))
        };
        let rebuilt = members.len();
        let changed_route_refs: FxHashSet<ObjectRef> = changed_routes
            .iter()
            .map(|k| defaulted_ref("HTTPRoute", k))
            .collect();
        let gateway = match &scope {
            GatewayScope::Untouched => Rebuilds::Nothing,
            GatewayScope::All => Rebuilds::All,
            GatewayScope::Hosts(_) => Rebuilds::Routes(&changed_route_refs),
        };
        let next = splice(
            last,
            Part {
                members: members
                    .iter()
                    .map(|k| defaulted_ref("Ingress", k))
                    .collect(),
                hosts: &hosts,
                gateway,
                changed_ingresses: &changed_ingresses,
                changed_slices: &changed_slices,
                store: &self.store,
                classes: &classes,
                old: old_part,
                new: new_part,
            },
        );
        self.last = Some(next);
        Some(rebuilt)
    }

    /// The hostnames the changed HTTPRoutes name, before and after the change, if each names
    /// only precise ones (a route of none or of a wildcard reaches hosts it does not name; a
    /// name that is not a hostname is ignored, as the build ignores it).
    fn route_hosts(
        &self,
        changed: &BTreeSet<Key>,
        before: &FxHashMap<ObjectRef, Option<Object>>,
    ) -> Option<BTreeSet<HostRule>> {
        let mut out = BTreeSet::new();
        for key in changed {
            let r = raw_ref("HTTPRoute", key);
            let was = before.get(&r).cloned().flatten();
            for o in [was, self.store.get(&r)].into_iter().flatten() {
                let Object::HttpRoute(route) = o else {
                    return None;
                };
                let hosts = route_hostnames(&route);
                if hosts.is_empty() || hosts.iter().any(|h| !matches!(h, HostRule::Exact(_))) {
                    return None;
                }
                out.extend(hosts);
            }
        }
        Some(out)
    }

    /// The HTTPRoutes that may place on the `precise` hosts: those naming them or a wildcard
    /// above them, those naming no hostname, and the `changed` ones.
    fn routes_on(&self, precise: &BTreeSet<HostRule>, changed: &BTreeSet<Key>) -> BTreeSet<Key> {
        let mut out = changed.clone();
        out.extend(self.index.hostless_routes.iter().cloned());
        for host in precise {
            for name in covering(host) {
                let named = self.index.routes_by_host.get(&name);
                out.extend(named.into_iter().flatten().cloned());
            }
        }
        out
    }
}

/// How much of the Gateway API a partial build rebuilds (see [`Model::partial`]).
enum GatewayScope {
    /// Nothing of it.
    Untouched,
    /// Only HTTPRoutes changed, each naming only precise hostnames: the groups of these
    /// hosts (theirs, and those of the Ingresses rebuilt that have Gateway API routes).
    Hosts(BTreeSet<HostRule>),
    /// Every object of it.
    All,
}

/// Changes taken in and not built yet.
#[derive(Default)]
pub struct Recorded {
    /// Each changed object as it was before the first of the changes (`None`: absent).
    before: FxHashMap<ObjectRef, Option<Object>>,
    ingresses: BTreeSet<Key>,
    services: FxHashSet<Key>,
    secrets: FxHashSet<Key>,
    slices: BTreeSet<Key>,
    routes: BTreeSet<Key>,
    /// A GatewayClass, Gateway or ReferenceGrant.
    gateway: bool,
    /// Something only a full build handles.
    full: bool,
}

/// What a partial build replaces.
struct Part<'p> {
    /// The Ingresses rebuilt (before and after).
    members: FxHashSet<ObjectRef>,
    hosts: &'p BTreeSet<HostRule>,
    gateway: Rebuilds<'p>,
    changed_ingresses: &'p BTreeSet<Key>,
    changed_slices: &'p BTreeSet<Key>,
    store: &'p Store,
    classes: &'p OurClasses,
    /// The members built from their objects before the change, and after.
    old: Built,
    new: Built,
}

/// What of the Gateway API a part's new build replaces.
#[derive(Clone, Copy)]
enum Rebuilds<'p> {
    Nothing,
    /// Every route, group, certificate, status, diagnostic and backend of it.
    All,
    /// These HTTPRoutes' routes, status and diagnostics, and the groups of the part's
    /// hosts; listeners' attached routes and backends' uses change by what the part's new
    /// build counts less its old build.
    Routes(&'p FxHashSet<ObjectRef>),
}

/// The last build with the part's hosts, routes, certificates, diagnostics and backends
/// replaced by its new build.
fn splice(last: &Built, part: Part<'_>) -> Built {
    let mut next = last.clone();
    let member = one_of(&part.members);
    let router_names: FxHashSet<String> = part.hosts.iter().map(|h| h.to_string()).collect();
    let slice_refs: FxHashSet<ObjectRef> = part
        .changed_slices
        .iter()
        .map(|(ns, name)| ObjectRef {
            kind: "EndpointSlice",
            namespace: ns.clone(),
            name: name.clone(),
        })
        .collect();
    // What the rebuilt Gateway API objects own (routes, certificates, diagnostics).
    let changed_route = match part.gateway {
        Rebuilds::Routes(changed) => Some(one_of(changed)),
        Rebuilds::Nothing | Rebuilds::All => None,
    };
    let gateway_owns = |r: &ObjectRef| match part.gateway {
        Rebuilds::Nothing => false,
        Rebuilds::All => GATEWAY_KINDS.contains(&r.kind),
        Rebuilds::Routes(_) => changed_route.as_ref().is_some_and(|c| c(r)),
    };
    let ours = |d: &Diagnostic| {
        member(&d.object)
            || gateway_owns(&d.object)
            || (d.object.kind == "Router" && router_names.contains(&d.object.name))
            || slice_refs.contains(&d.object)
    };

    let table = Arc::make_mut(&mut next.table);
    for host in part.hosts {
        remove_group(table, host);
    }
    let fresh = &part.new.table;
    match part.gateway {
        // Every Gateway API group is the new build's.
        Rebuilds::All => {
            for (host, group) in &fresh.exact {
                table.exact.insert(host.clone(), group.clone());
            }
            for (suffix, group) in &fresh.wildcard {
                table.wildcard.insert(suffix.clone(), group.clone());
            }
            if part.hosts.contains(&HostRule::Any) {
                table.any_host = fresh.any_host.clone();
            }
            table.deep_wildcard = fresh.deep_wildcard.clone();
        }
        // Routes of the new build place on other hosts too; only the part's are whole.
        Rebuilds::Nothing | Rebuilds::Routes(_) => {
            for host in part.hosts {
                if let Some(group) = group_of(fresh, host) {
                    insert_shared(table, host, group);
                }
            }
        }
    }
    // Routes of one Ingress share its `ObjectRef`: judge each run once.
    let mut judged: (*const ObjectRef, bool) = (std::ptr::null(), false);
    let kept = last.table.routes.iter().filter(|r| {
        let at = Arc::as_ptr(&r.ingress);
        if judged.0 != at {
            judged = (at, member(&r.ingress) || gateway_owns(&r.ingress));
        }
        !judged.1
    });
    let added = fresh
        .routes
        .iter()
        .filter(|r| member(&r.ingress) || gateway_owns(&r.ingress));
    table.routes = kept.chain(added).cloned().collect();

    for key in part.changed_ingresses {
        let r = defaulted_ref("Ingress", key);
        let is_ours = part
            .store
            .ingresses
            .get(key)
            .is_some_and(|i| part.classes.owns(i));
        match (next.ours.contains_key(&r), is_ours) {
            (false, true) => {
                next.ours.insert(r, ());
            }
            (true, false) => {
                next.ours.remove(&r);
            }
            _ => {}
        }
    }
    let rebuilt = |b: &TlsBinding| member(&b.ingress) || gateway_owns(&b.ingress);
    if last.tls.iter().any(rebuilt) || part.new.tls.iter().any(rebuilt) {
        let tls = Arc::make_mut(&mut next.tls);
        tls.retain(|b| !rebuilt(b));
        tls.extend(part.new.tls.iter().filter(|b| rebuilt(b)).cloned());
    }
    let touches = |list: &[ClientAuthBinding]| list.iter().any(|b| member(&b.ingress));
    if touches(&last.client_auth) || touches(&part.new.client_auth) {
        let client_auth = Arc::make_mut(&mut next.client_auth);
        client_auth.retain(|b| !member(&b.ingress));
        let added = part.new.client_auth.iter().filter(|b| member(&b.ingress));
        client_auth.extend(added.cloned());
    }

    next.diagnostics.retain(|d| !ours(d));
    next.diagnostics.extend(
        part.new
            .diagnostics
            .iter()
            .filter(|d| ours(d) && !slice_refs.contains(&d.object))
            .cloned(),
    );
    for key in part.changed_slices {
        if let Some(slice) = part.store.endpoint_slices.get(key) {
            next.diagnostics.extend(slice_diagnostics(slice));
        }
    }

    match part.gateway {
        Rebuilds::Nothing => {}
        Rebuilds::All => {
            next.gateway = part.new.gateway.clone();
            next.gateway_hosts = part.new.gateway_hosts.clone();
            next.gateway_backends = part.new.gateway_backends.clone();
            for (service, (b, _)) in last.gateway_backends.iter() {
                if let Some(list) = next.backends.get_mut(service) {
                    list.retain(|x| !Arc::ptr_eq(x, b));
                }
            }
        }
        Rebuilds::Routes(changed) => {
            splice_routes(&mut next, &part, changed);
        }
    }
    // Backend users: the members' old uses out, their new ones in; a backend nothing uses
    // any more leaves `backends`, one used for the first time enters it first.
    let keys: BTreeSet<&ServiceRef> = part.old.users.keys().chain(part.new.users.keys()).collect();
    for key in keys {
        let was = last.users.get(key).copied().unwrap_or(0);
        let count = |b: &Built| b.users.get(key).copied().unwrap_or(0);
        let is = (was + count(&part.new)).saturating_sub(count(&part.old));
        match is {
            _ if is == was => {}
            0 => {
                next.users.remove(key);
            }
            n => {
                next.users.insert(key.clone(), n);
            }
        }
        // The part's first backend is an Ingress rule's only where it counts users (else a
        // Gateway API route's).
        let fresh = match count(&part.new) {
            0 => None,
            _ => part.new.backends.get(key).and_then(|v| v.first()),
        };
        let in_force = last.backends.get(key).and_then(|v| v.first());
        let same = |b: &Arc<Backend>| in_force.is_some_and(|old| Arc::ptr_eq(old, b));
        match (was > 0, is > 0, fresh) {
            (true, true, Some(b)) if !same(b) => {
                if let Some(list) = next.backends.get_mut(key) {
                    list[0] = b.clone();
                }
            }
            (false, true, Some(b)) => match next.backends.get_mut(key) {
                Some(list) => list.insert(0, b.clone()),
                None => {
                    next.backends.insert(key.clone(), vec![b.clone()]);
                }
            },
            (true, false, _) => {
                let emptied = next.backends.get_mut(key).is_some_and(|list| {
                    list.remove(0);
                    list.is_empty()
                });
                if emptied {
                    next.backends.remove(key);
                }
            }
            _ => {}
        }
    }
    if let Rebuilds::All = part.gateway {
        // The Gateway API's backends follow the Ingress rules' own, as in a full build.
        for (service, (b, _)) in part.new.gateway_backends.iter() {
            match next.backends.get_mut(service) {
                Some(list) => list.push(b.clone()),
                None => {
                    next.backends.insert(service.clone(), vec![b.clone()]);
                }
            }
        }
        for (service, _) in last.gateway_backends.iter() {
            if next.backends.get(service).is_some_and(Vec::is_empty) {
                next.backends.remove(service);
            }
        }
    }
    next
}

/// Whether an object is one of `set`. Asked for every route of the table: a few are compared,
/// not hashed.
fn one_of(set: &FxHashSet<ObjectRef>) -> impl Fn(&ObjectRef) -> bool + '_ {
    let few: Option<Vec<&ObjectRef>> = (set.len() <= 8).then(|| set.iter().collect());
    move |r: &ObjectRef| match &few {
        Some(few) => few
            .iter()
            .any(|m| m.name == r.name && m.namespace == r.namespace && m.kind == r.kind),
        None => set.contains(r),
    }
}

/// The changed HTTPRoutes' status in; listeners' attached routes, the hosts with Gateway API
/// groups and the backends' uses moved by the part's new build less its old (the routes
/// of both besides the changed ones are the same, and cancel out).
fn splice_routes(next: &mut Built, part: &Part<'_>, changed: &FxHashSet<ObjectRef>) {
    let status = Arc::make_mut(&mut next.gateway);
    for r in changed {
        if let Ok(at) = status.routes.binary_search_by(|s| s.object.cmp(r)) {
            status.routes.remove(at);
        }
    }
    for state in &part.new.gateway.routes {
        if changed.contains(&state.object)
            && let Err(at) = status
                .routes
                .binary_search_by(|s| s.object.cmp(&state.object))
        {
            status.routes.insert(at, state.clone());
        }
    }
    let (old, new) = (&part.old.gateway.gateways, &part.new.gateway.gateways);
    for ((g, o), n) in status.gateways.iter_mut().zip(old).zip(new) {
        for ((l, o), n) in g.listeners.iter_mut().zip(&o.listeners).zip(&n.listeners) {
            l.attached_routes += n.attached_routes - o.attached_routes;
        }
    }
    for host in part.hosts {
        match part.new.gateway_hosts.contains_key(host) {
            true => {
                next.gateway_hosts.insert(host.clone(), ());
            }
            false => {
                next.gateway_hosts.remove(host);
            }
        }
    }
    let uses = |b: &Built, s: &ServiceRef| b.gateway_backends.get(s).map_or(0, |(_, n)| *n);
    let services: BTreeSet<&ServiceRef> = part
        .old
        .gateway_backends
        .keys()
        .chain(part.new.gateway_backends.keys())
        .collect();
    for service in services {
        let in_force = next.gateway_backends.get(service).cloned();
        let was = in_force.as_ref().map_or(0, |(_, n)| *n);
        let is = (was + uses(&part.new, service)).saturating_sub(uses(&part.old, service));
        match (in_force, is) {
            (Some((b, _)), 0) => {
                next.gateway_backends.remove(service);
                let emptied = next.backends.get_mut(service).is_some_and(|list| {
                    list.retain(|x| !Arc::ptr_eq(x, &b));
                    list.is_empty()
                });
                if emptied {
                    next.backends.remove(service);
                }
            }
            (Some((b, _)), n) => {
                next.gateway_backends.insert(service.clone(), (b, n));
            }
            (None, 0) => {}
            // First used: the new build's own backend, after the Ingress rules' one.
            (None, n) => {
                let Some((b, _)) = part.new.gateway_backends.get(service).cloned() else {
                    continue;
                };
                next.gateway_backends
                    .insert(service.clone(), (b.clone(), n));
                match next.backends.get_mut(service) {
                    Some(list) => list.push(b),
                    None => {
                        next.backends.insert(service.clone(), vec![b]);
                    }
                }
            }
        }
    }
}

/// The kinds a rebuild of the Gateway API objects replaces everything of.
const GATEWAY_KINDS: [&str; 4] = ["GatewayClass", "Gateway", "HTTPRoute", "ReferenceGrant"];

fn remove_group(table: &mut RoutingTable, host: &HostRule) -> Option<Arc<HostRoutes>> {
    match host {
        HostRule::Exact(h) => table.exact.remove(h.as_str()),
        HostRule::Wildcard(s) => table.wildcard.remove(s.as_str()),
        HostRule::Any => table.any_host.take(),
    }
}

/// An object as its source named it.
fn raw_ref(kind: &'static str, key: &Key) -> ObjectRef {
    ObjectRef {
        kind,
        namespace: key.0.clone(),
        name: key.1.clone(),
    }
}

/// An Ingress or HTTPRoute as the build names it (no namespace: `default`).
fn defaulted_ref(kind: &'static str, key: &Key) -> ObjectRef {
    let namespace = match key.0.is_empty() {
        true => "default".to_owned(),
        false => key.0.clone(),
    };
    ObjectRef {
        kind,
        namespace,
        name: key.1.clone(),
    }
}

fn slice_owner(slice: &crate::model::EndpointSlice) -> Option<String> {
    slice.service.clone()
}

/// What an Ingress names: the hosts of its rules and TLS entries, the Services and Secrets it
/// may read (a superset: every name an annotation could mean), and whether it reaches beyond
/// its own hosts.
struct Footprint {
    hosts: Vec<HostRule>,
    services: Vec<Key>,
    secrets: Vec<Key>,
    wildcard_tls: Vec<HostRule>,
    /// A default backend, an alias, a `www.` redirect or passthrough.
    cross_host: bool,
}

impl Footprint {
    fn of(ingress: &Ingress) -> Footprint {
        let ns = ingress
            .metadata
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "default".to_owned());
        let mut f = Footprint {
            hosts: Vec::new(),
            services: Vec::new(),
            secrets: Vec::new(),
            wildcard_tls: Vec::new(),
            cross_host: false,
        };
        if let Some(spec) = &ingress.spec {
            f.cross_host |= spec.default_backend.is_some();
            for rule in spec.rules.iter().flatten() {
                if let Ok(h) = HostRule::parse(rule.host.as_deref()) {
                    f.hosts.push(h);
                }
                let paths = rule.http.iter().flat_map(|h| h.paths.iter());
                for p in paths {
                    if let Some(s) = &p.backend.service {
                        f.services.push((ns.clone(), s.name.clone()));
                    }
                }
            }
            for tls in spec.tls.iter().flatten() {
                for host in tls.hosts.iter().flatten() {
                    match HostRule::parse(Some(host)) {
                        Ok(h @ HostRule::Wildcard(_)) => {
                            f.wildcard_tls.push(h.clone());
                            f.hosts.push(h);
                        }
                        Ok(h @ HostRule::Exact(_)) => f.hosts.push(h),
                        _ => {}
                    }
                }
                if let Some(name) = &tls.secret_name {
                    f.secrets.push((ns.clone(), name.clone()));
                }
            }
        }
        for (key, value) in ingress.metadata.annotations.iter().flatten() {
            let Some(name) = key
                .strip_prefix(NGINX)
                .or_else(|| key.strip_prefix(VESTIBULE))
            else {
                continue;
            };
            let value = value.trim();
            let named = || match value.split_once('/') {
                Some((n, v)) => (n.to_owned(), v.to_owned()),
                None => (ns.clone(), value.to_owned()),
            };
            match name {
                "server-alias" | "from-to-www-redirect" | "ssl-passthrough" => f.cross_host = true,
                "default-backend" => f.services.push((ns.clone(), value.to_owned())),
                "auth-secret" | "auth-tls-secret" | "proxy-ssl-secret" => f.secrets.push(named()),
                _ => {}
            }
        }
        f.hosts.sort();
        f.hosts.dedup();
        f.services.sort();
        f.services.dedup();
        f.secrets.sort();
        f.secrets.dedup();
        f
    }
}

/// What the Gateway API objects may touch: every hostname of a listener (none: any host) and
/// of a route, which hold every host group and certificate they make, and every Service and
/// Secret they name (a superset: named is not yet permitted or attached).
#[derive(Default)]
struct GatewayFootprint {
    hosts: BTreeSet<HostRule>,
    services: FxHashSet<Key>,
    secrets: FxHashSet<Key>,
}

fn defaulted_namespace(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> String {
    meta.namespace
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "default".to_owned())
}

impl GatewayFootprint {
    /// Every Gateway API object's.
    fn of(store: &Store) -> GatewayFootprint {
        let mut f = GatewayFootprint::default();
        f.add_gateways(store);
        for route in store.http_routes.values() {
            f.add_route(route);
        }
        f
    }

    fn add_gateways(&mut self, store: &Store) {
        for g in store.gateways.values() {
            let ns = defaulted_namespace(&g.metadata);
            for l in &g.spec.listeners {
                self.hosts
                    .extend(HostRule::parse(l.hostname.as_deref()).ok());
                let refs = l
                    .tls
                    .iter()
                    .flat_map(|t| t.certificate_refs.iter().flatten());
                for r in refs {
                    let at = r.namespace.clone().unwrap_or_else(|| ns.clone());
                    self.secrets.insert((at, r.name.clone()));
                }
            }
        }
    }

    fn add_route(&mut self, route: &HttpRoute) {
        let ns = defaulted_namespace(&route.metadata);
        let spec = &route.spec;
        for h in spec.hostnames.iter().flatten() {
            self.hosts.extend(HostRule::parse(Some(h)).ok());
        }
        let mut name = |namespace: &Option<String>, name: &str| {
            let at = namespace.clone().unwrap_or_else(|| ns.clone());
            self.services.insert((at, name.to_owned()));
        };
        for rule in spec.rules.iter().flatten() {
            for m in rule
                .filters
                .iter()
                .flatten()
                .flat_map(|f| &f.request_mirror)
            {
                name(&m.backend_ref.namespace, &m.backend_ref.name);
            }
            for b in rule.backend_refs.iter().flatten() {
                name(&b.namespace, &b.name);
                for m in b.filters.iter().flatten().flat_map(|f| &f.request_mirror) {
                    name(&m.backend_ref.namespace, &m.backend_ref.name);
                }
            }
        }
    }
}

/// The Gateway API objects a part reads: every GatewayClass, Gateway, ReferenceGrant and
/// Namespace, the HTTPRoutes `routes` names (all: `None`), and what `refs` says they name.
struct GatewayPart<'a> {
    refs: GatewayRefs<'a>,
    routes: Option<&'a BTreeSet<Key>>,
}

enum GatewayRefs<'a> {
    Borrowed(&'a GatewayFootprint),
    Owned(GatewayFootprint),
}

impl GatewayRefs<'_> {
    fn get(&self) -> &GatewayFootprint {
        match self {
            GatewayRefs::Borrowed(f) => f,
            GatewayRefs::Owned(f) => f,
        }
    }
}

/// Which Ingresses of ours name each host, Service and Secret.
#[derive(Default)]
struct Index {
    by_host: FxHashMap<HostRule, Vec<Key>>,
    by_service: FxHashMap<Key, Vec<Key>>,
    by_secret: FxHashMap<Key, Vec<Key>>,
    /// Wildcard TLS hosts, and how many Ingresses list each.
    tls_wildcards: BTreeMap<HostRule, u32>,
    ours: usize,
    /// HTTPRoutes by each hostname they name, and those that name none (they take every
    /// host their listeners take).
    routes_by_host: FxHashMap<HostRule, Vec<Key>>,
    hostless_routes: BTreeSet<Key>,
}

/// Inserts `key` in the sorted list at `at`. Most lists hold one key, so a new list has room
/// for one (a Vec's first push makes room for four: 144 bytes spare per host and Service).
fn insert_sorted<K: std::hash::Hash + Eq, T: Ord + Clone>(
    map: &mut FxHashMap<K, Vec<T>>,
    at: K,
    key: &T,
) {
    let list = map.entry(at).or_insert_with(|| Vec::with_capacity(1));
    if let Err(i) = list.binary_search(key) {
        list.insert(i, key.clone());
    }
}

fn remove_sorted<K: std::hash::Hash + Eq, T: Ord>(map: &mut FxHashMap<K, Vec<T>>, at: &K, key: &T) {
    if let Some(list) = map.get_mut(at) {
        if let Ok(i) = list.binary_search(key) {
            list.remove(i);
        }
        if list.is_empty() {
            map.remove(at);
        }
    }
}

impl Index {
    fn replace(&mut self, classes: &OurClasses, old: Option<&Object>, new: Option<&Object>) {
        match old {
            Some(Object::Ingress(i)) => self.remove(classes, i),
            Some(Object::HttpRoute(r)) => self.remove_route(&meta_key(&r.metadata), r),
            _ => {}
        }
        match new {
            Some(Object::Ingress(i)) => self.add(classes, i),
            Some(Object::HttpRoute(r)) => self.add_route(&meta_key(&r.metadata), r),
            _ => {}
        }
    }

    fn add_route(&mut self, key: &Key, route: &HttpRoute) {
        let hosts = route_hostnames(route);
        if hosts.is_empty() {
            self.hostless_routes.insert(key.clone());
        }
        for h in hosts {
            insert_sorted(&mut self.routes_by_host, h, key);
        }
    }

    fn remove_route(&mut self, key: &Key, route: &HttpRoute) {
        let hosts = route_hostnames(route);
        if hosts.is_empty() {
            self.hostless_routes.remove(key);
        }
        for h in &hosts {
            remove_sorted(&mut self.routes_by_host, h, key);
        }
    }

    fn add(&mut self, classes: &OurClasses, ingress: &Ingress) {
        if !classes.owns(ingress) {
            return;
        }
        let key = ingress_key(ingress);
        let f = Footprint::of(ingress);
        for h in f.hosts {
            insert_sorted(&mut self.by_host, h, &key);
        }
        for s in f.services {
            insert_sorted(&mut self.by_service, s, &key);
        }
        for s in f.secrets {
            insert_sorted(&mut self.by_secret, s, &key);
        }
        for w in f.wildcard_tls {
            *self.tls_wildcards.entry(w).or_default() += 1;
        }
        self.ours += 1;
    }

    fn remove(&mut self, classes: &OurClasses, ingress: &Ingress) {
        if !classes.owns(ingress) {
            return;
        }
        let key = ingress_key(ingress);
        let f = Footprint::of(ingress);
        for h in &f.hosts {
            remove_sorted(&mut self.by_host, h, &key);
        }
        for s in &f.services {
            remove_sorted(&mut self.by_service, s, &key);
        }
        for s in &f.secrets {
            remove_sorted(&mut self.by_secret, s, &key);
        }
        for w in f.wildcard_tls {
            if let Some(n) = self.tls_wildcards.get_mut(&w) {
                *n -= 1;
                if *n == 0 {
                    self.tls_wildcards.remove(&w);
                }
            }
        }
        self.ours = self.ours.saturating_sub(1);
    }
}

/// The hostnames of an HTTPRoute that are ones (the build ignores the rest, and a route of
/// none takes its listeners' hosts).
fn route_hostnames(route: &HttpRoute) -> Vec<HostRule> {
    let names = route.spec.hostnames.iter().flatten();
    let mut hosts: Vec<HostRule> = names
        .filter_map(|h| HostRule::parse(Some(h)).ok())
        .filter(|h| *h != HostRule::Any)
        .collect();
    hosts.sort();
    hosts.dedup();
    hosts
}

fn ingress_key(ingress: &Ingress) -> Key {
    let r = ObjectRef::of("Ingress", &ingress.metadata);
    (r.namespace, r.name)
}

fn meta_key(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Key {
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

macro_rules! store {
    ($($field:ident: $kind:ident($ty:ty) = $name:literal),* $(,)?) => {
        /// Every object by kind and `(namespace, name)`.
        #[derive(Default)]
        struct Store {
            $($field: BTreeMap<Key, Arc<$ty>>,)*
            /// EndpointSlice names by their Service, sorted.
            slices_of: FxHashMap<Key, Vec<String>>,
        }

        impl Store {
            /// Puts or deletes one object: what was there and what is.
            fn apply(&mut self, change: Change) -> (Option<Object>, Option<Object>) {
                match change {
                    Change::Put(o) => {
                        let new = o.clone();
                        (self.put(o), Some(new))
                    }
                    Change::Delete(r) => (self.delete(&r), None),
                }
            }

            fn put(&mut self, object: Object) -> Option<Object> {
                if let Object::EndpointSlice(s) = &object {
                    self.own_slice(s, true);
                }
                let old = match object {
                    $(Object::$kind(o) => self
                        .$field
                        .insert(meta_key(&o.metadata), o)
                        .map(Object::$kind),)*
                };
                if let Some(Object::EndpointSlice(s)) = &old {
                    // The new copy's owner was added above; drop the old owner unless same.
                    let (old_owner, key) = (slice_owner(s), meta_key(&s.metadata));
                    let new_owner = self.endpoint_slices.get(&key).and_then(|n| slice_owner(n));
                    if old_owner != new_owner {
                        self.own_slice(s, false);
                    }
                }
                old
            }

            fn get(&self, r: &ObjectRef) -> Option<Object> {
                let key = (r.namespace.clone(), r.name.clone());
                match r.kind {
                    $($name => self.$field.get(&key).cloned().map(Object::$kind),)*
                    _ => None,
                }
            }

            fn delete(&mut self, r: &ObjectRef) -> Option<Object> {
                let key = (r.namespace.clone(), r.name.clone());
                let old = match r.kind {
                    $($name => self.$field.remove(&key).map(Object::$kind),)*
                    _ => None,
                };
                if let Some(Object::EndpointSlice(s)) = &old {
                    self.own_slice(s, false);
                }
                old
            }

            /// Every object, in `namespace/name` order.
            fn snapshot(&self) -> Snapshot {
                Snapshot {
                    $($field: self.$field.values().cloned().collect(),)*
                }
            }
        }
    };
}

store!(
    ingresses: Ingress(Ingress) = "Ingress",
    ingress_classes: IngressClass(k8s_openapi::api::networking::v1::IngressClass) = "IngressClass",
    services: Service(k8s_openapi::api::core::v1::Service) = "Service",
    endpoint_slices: EndpointSlice(crate::model::EndpointSlice) = "EndpointSlice",
    secrets: Secret(k8s_openapi::api::core::v1::Secret) = "Secret",
    config_maps: ConfigMap(k8s_openapi::api::core::v1::ConfigMap) = "ConfigMap",
    namespaces: Namespace(k8s_openapi::api::core::v1::Namespace) = "Namespace",
    gateway_classes: GatewayClass(gateway_api::gatewayclasses::GatewayClass) = "GatewayClass",
    gateways: Gateway(gateway_api::gateways::Gateway) = "Gateway",
    http_routes: HttpRoute(gateway_api::httproutes::HttpRoute) = "HTTPRoute",
    reference_grants: ReferenceGrant(gateway_api::referencegrants::ReferenceGrant) = "ReferenceGrant",
);

impl Store {
    fn own_slice(&mut self, slice: &crate::model::EndpointSlice, add: bool) {
        let Some(owner) = slice_owner(slice) else {
            return;
        };
        let (ns, name) = meta_key(&slice.metadata);
        let key = (ns, owner);
        match add {
            true => insert_sorted(&mut self.slices_of, key, &name),
            false => remove_sorted(&mut self.slices_of, &key, &name),
        }
    }

    fn classes(&self) -> Vec<Arc<k8s_openapi::api::networking::v1::IngressClass>> {
        self.ingress_classes.values().cloned().collect()
    }

    /// The object `r` names as it is, or with `before` as it was.
    fn object(
        &self,
        r: &ObjectRef,
        before: Option<&FxHashMap<ObjectRef, Option<Object>>>,
    ) -> Option<Object> {
        match before.and_then(|b| b.get(r)) {
            Some(old) => old.clone(),
            None => self.get(r),
        }
    }

    /// The objects a build of `ingresses` reads: them, every IngressClass and ConfigMap, and
    /// the Services (with their EndpointSlices) and Secrets they may name. With `before`,
    /// the changed objects as they were; with `gateway`, those Gateway API objects, every
    /// Namespace, and what they name.
    fn part(
        &self,
        ingresses: &[Arc<Ingress>],
        options: &Options,
        before: Option<&FxHashMap<ObjectRef, Option<Object>>>,
        gateway: Option<&GatewayPart<'_>>,
    ) -> Snapshot {
        let mut services: BTreeSet<Key> = BTreeSet::new();
        let mut secrets: BTreeSet<Key> = BTreeSet::new();
        if let Some(g) = gateway {
            services.extend(g.refs.get().services.iter().cloned());
            secrets.extend(g.refs.get().secrets.iter().cloned());
        }
        for i in ingresses {
            let f = Footprint::of(i);
            services.extend(f.services);
            secrets.extend(f.secrets);
        }
        if let Some(s) = &options.default_backend {
            services.insert((s.namespace.clone(), s.name.clone()));
        }
        let object = |kind: &'static str, key: &Key| self.object(&raw_ref(kind, key), before);
        let mut snapshot = Snapshot {
            ingresses: ingresses.to_vec(),
            ingress_classes: self.classes(),
            config_maps: self.config_maps.values().cloned().collect(),
            ..Snapshot::default()
        };
        if let Some(g) = gateway {
            snapshot.namespaces = self.namespaces.values().cloned().collect();
            snapshot.gateway_classes = self.gateway_classes.values().cloned().collect();
            snapshot.gateways = self.gateways.values().cloned().collect();
            snapshot.http_routes = match g.routes {
                None => self.http_routes.values().cloned().collect(),
                Some(keys) => keys
                    .iter()
                    .filter_map(|k| match object("HTTPRoute", k) {
                        Some(Object::HttpRoute(r)) => Some(r),
                        _ => None,
                    })
                    .collect(),
            };
            snapshot.reference_grants = self.reference_grants.values().cloned().collect();
        }
        for key in &services {
            if let Some(Object::Service(s)) = object("Service", key) {
                snapshot.services.push(s);
            }
            // Slices of the Service now, and changed slices that were its before.
            let mut names: BTreeSet<String> = self
                .slices_of
                .get(key)
                .into_iter()
                .flatten()
                .cloned()
                .collect();
            for r in before.into_iter().flat_map(|b| b.keys()) {
                if r.kind == "EndpointSlice" && r.namespace == key.0 {
                    names.insert(r.name.clone());
                }
            }
            for name in names {
                let slice = object("EndpointSlice", &(key.0.clone(), name));
                if let Some(Object::EndpointSlice(s)) = slice
                    && slice_owner(&s).as_ref() == Some(&key.1)
                {
                    snapshot.endpoint_slices.push(s);
                }
            }
        }
        for key in &secrets {
            if let Some(Object::Secret(s)) = object("Secret", key) {
                snapshot.secrets.push(s);
            }
        }
        snapshot.sorted()
    }
}

/// Every object of a snapshot, one by one.
fn objects_of(s: &Snapshot) -> impl Iterator<Item = Object> + '_ {
    let ingresses = s.ingresses.iter().cloned().map(Object::Ingress);
    ingresses
        .chain(s.ingress_classes.iter().cloned().map(Object::IngressClass))
        .chain(s.services.iter().cloned().map(Object::Service))
        .chain(s.endpoint_slices.iter().cloned().map(Object::EndpointSlice))
        .chain(s.secrets.iter().cloned().map(Object::Secret))
        .chain(s.config_maps.iter().cloned().map(Object::ConfigMap))
        .chain(s.namespaces.iter().cloned().map(Object::Namespace))
        .chain(s.gateway_classes.iter().cloned().map(Object::GatewayClass))
        .chain(s.gateways.iter().cloned().map(Object::Gateway))
        .chain(s.http_routes.iter().cloned().map(Object::HttpRoute))
        .chain(
            s.reference_grants
                .iter()
                .cloned()
                .map(Object::ReferenceGrant),
        )
}

#[cfg(test)]
mod tests;
