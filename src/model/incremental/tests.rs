//! A partial build equals a full build: random changes to Ingresses, Services,
//! EndpointSlices, Secrets, Gateways, HTTPRoutes and the GatewayClass (and now and then an
//! IngressClass, for the full path), applied to a [`Model`] one batch at a time, are compared
//! after each with `build_after` of the same objects.

use super::*;
use crate::model::fixtures::{ingress, ingress_class, service, slice, tls_secret};
use crate::model::{PortRef, build};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use proptest::prelude::*;

const HOSTS: [&str; 7] = [
    "a.test",
    "b.test",
    "www.a.test",
    "*.w.test",
    "x.w.test",
    "z.test",
    "",
];
const PATHS: [&str; 4] = ["/", "/api", "/api/v1", "/x"];
const SERVICES: usize = 4;

/// A path: (path, type, service, port), each an index.
type PathSpec = (usize, usize, usize, usize);

/// One generated Ingress: everything a partial build must get right.
#[derive(Clone, Debug)]
struct Spec {
    ours: bool,
    created: Option<i64>,
    /// (host, [(path, type, service, port)]).
    rules: Vec<(usize, Vec<PathSpec>)>,
    /// (secret, hosts).
    tls: Option<(usize, Vec<usize>)>,
    annotations: Vec<usize>,
}

fn spec() -> impl Strategy<Value = Spec> {
    let path = (0..PATHS.len(), 0..3usize, 0..SERVICES, 0..3usize);
    let rule = (0..HOSTS.len(), proptest::collection::vec(path, 1..3));
    (
        proptest::bool::weighted(0.9),
        proptest::option::of(1i64..4),
        proptest::collection::vec(rule, 1..3),
        proptest::option::of((0..3usize, proptest::collection::vec(0..4usize, 1..3))),
        proptest::collection::vec(0..ANNOTATIONS.len(), 0..3),
    )
        .prop_map(|(ours, created, rules, tls, annotations)| Spec {
            ours,
            created,
            rules,
            tls,
            annotations,
        })
}

/// Annotations, one per entry (the canary is two).
const ANNOTATIONS: [&[(&str, &str)]; 11] = [
    &[("rewrite-target", "/")],
    &[("app-root", "/app")],
    &[("canary", "true"), ("canary-weight", "50")],
    &[("auth-type", "basic"), ("auth-secret", "auth")],
    &[("default-backend", "svc1")],
    &[("custom-http-errors", "503")],
    &[("service-upstream", "true")],
    &[("server-alias", "z.test")],
    &[("ssl-redirect", "false")],
    &[("auth-tls-secret", "shop/ca")],
    &[("from-to-www-redirect", "true")],
];

fn ingress_of(name: &str, s: &Spec) -> Ingress {
    let mut b = ingress(&format!("shop/{name}"));
    if !s.ours {
        b = b.class("other");
    }
    if let Some(t) = s.created {
        b = b.created(t);
    }
    for (host, paths) in &s.rules {
        b = b.host(HOSTS[*host]);
        for (path, kind, svc, port) in paths {
            let kind = ["Prefix", "Exact", "ImplementationSpecific"][*kind];
            let port = match port {
                0 => PortRef::Name("http".to_owned()),
                1 => PortRef::Number(80),
                _ => PortRef::Number(8080),
            };
            b = b.path(kind, PATHS[*path], &format!("svc{svc}"), port);
        }
    }
    if let Some((secret, hosts)) = &s.tls {
        let hosts: Vec<&str> = hosts.iter().map(|h| HOSTS[*h]).collect();
        b = b.tls(&format!("tls{secret}"), &hosts);
    }
    for a in &s.annotations {
        for (k, v) in ANNOTATIONS[*a] {
            b = b.annotate(&format!("nginx.ingress.kubernetes.io/{k}"), v);
        }
    }
    b.build()
}

/// One generated HTTPRoute: (hostname indexes, parent Gateway, (path, Service) per rule).
type RouteSpec = (Vec<usize>, usize, Vec<(usize, usize)>);

/// One generated Gateway's listeners: (hostname index or none, HTTPS with Secret `tls{n}`).
/// Gateway `gw1` takes routes only from namespaces labelled `team: a` (Namespace `shop` is,
/// in the base objects).
type GatewaySpec = Vec<(Option<usize>, Option<usize>)>;

/// The hostnames of Gateway API objects: the Ingress hosts (but none) and one of their own.
const GATEWAY_HOSTS: [&str; 5] = ["a.test", "*.w.test", "x.w.test", "z.test", "g.test"];

fn route_spec() -> impl Strategy<Value = RouteSpec> {
    (
        proptest::collection::vec(0..GATEWAY_HOSTS.len(), 0..3),
        0..2usize,
        proptest::collection::vec((0..PATHS.len(), 0..SERVICES + 1), 1..3),
    )
}

fn gateway_spec() -> impl Strategy<Value = GatewaySpec> {
    let listener = (
        proptest::option::weighted(0.7, 0..GATEWAY_HOSTS.len()),
        proptest::option::weighted(0.3, 0..3usize),
    );
    proptest::collection::vec(listener, 1..3)
}

fn http_route(i: usize, (hosts, gateway, rules): &RouteSpec) -> gateway_api::httproutes::HttpRoute {
    let hostnames: Vec<&str> = hosts.iter().map(|h| GATEWAY_HOSTS[*h]).collect();
    let rules: Vec<serde_json::Value> = rules
        .iter()
        .map(|(path, svc)| {
            serde_json::json!({
                "matches": [{"path": {"type": "PathPrefix", "value": PATHS[*path]}}],
                "backendRefs": [{"name": format!("svc{svc}"), "port": 80}],
            })
        })
        .collect();
    serde_json::from_value(serde_json::json!({
        "metadata": {"namespace": "shop", "name": format!("route{i}")},
        "spec": {
            "parentRefs": [{"name": format!("gw{gateway}")}],
            "hostnames": hostnames,
            "rules": rules,
        },
    }))
    .expect("an HTTPRoute")
}

fn gateway(i: usize, listeners: &GatewaySpec) -> gateway_api::gateways::Gateway {
    let listeners: Vec<serde_json::Value> = listeners
        .iter()
        .enumerate()
        .map(|(k, (host, tls))| {
            let mut l =
                serde_json::json!({"name": format!("l{k}"), "protocol": "HTTP", "port": 80});
            if let Some(h) = host {
                l["hostname"] = GATEWAY_HOSTS[*h].into();
            }
            if i == 1 {
                l["allowedRoutes"] = serde_json::json!({"namespaces": {
                    "from": "Selector", "selector": {"matchLabels": {"team": "a"}},
                }});
            }
            if let Some(secret) = tls {
                l["protocol"] = "HTTPS".into();
                l["port"] = 443.into();
                l["tls"] =
                    serde_json::json!({"certificateRefs": [{"name": format!("tls{secret}")}]});
            }
            l
        })
        .collect();
    serde_json::from_value(serde_json::json!({
        "metadata": {"namespace": "shop", "name": format!("gw{i}")},
        "spec": {"gatewayClassName": "vestibule", "listeners": listeners},
    }))
    .expect("a Gateway")
}

fn gateway_class() -> gateway_api::gatewayclasses::GatewayClass {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": "vestibule"},
        "spec": {"controllerName": Options::default().controller_name},
    }))
    .expect("a GatewayClass")
}

/// One change: an Ingress put or deleted, a Service with its port named `http` or not (or
/// gone), a slice with some endpoints (or broken, or gone), a Secret good, bad or gone, an
/// HTTPRoute or Gateway put or deleted, the GatewayClass put or deleted, or an IngressClass
/// that takes class `other` too.
#[derive(Clone, Debug)]
enum Op {
    Ingress(usize, Option<Spec>),
    Service(usize, Option<bool>),
    Slice(usize, Option<(u8, bool)>),
    Secret(usize, Option<bool>),
    Route(usize, Option<RouteSpec>),
    Gateway(usize, Option<GatewaySpec>),
    GatewayClass(bool),
    Class(bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..6usize, proptest::option::weighted(0.8, spec())).prop_map(|(i, s)| Op::Ingress(i, s)),
        2 => (0..SERVICES, proptest::option::weighted(0.8, any::<bool>())).prop_map(|(i, s)| Op::Service(i, s)),
        2 => (0..SERVICES, proptest::option::weighted(0.8, (1u8..4, proptest::bool::weighted(0.9)))).prop_map(|(i, s)| Op::Slice(i, s)),
        2 => (0..4usize, proptest::option::weighted(0.8, any::<bool>())).prop_map(|(i, s)| Op::Secret(i, s)),
        2 => (0..3usize, proptest::option::weighted(0.8, route_spec())).prop_map(|(i, s)| Op::Route(i, s)),
        1 => (0..2usize, proptest::option::weighted(0.8, gateway_spec())).prop_map(|(i, s)| Op::Gateway(i, s)),
        1 => proptest::bool::weighted(0.8).prop_map(Op::GatewayClass),
        1 => any::<bool>().prop_map(Op::Class),
    ]
}

fn secret(i: usize, good: bool) -> Secret {
    match i {
        // tls0, tls1: TLS Secrets; tls2 never exists. auth: basic auth users.
        0 | 1 => match good {
            true => tls_secret(&format!("shop/tls{i}"), "CERT", "KEY"),
            false => tls_secret(&format!("shop/tls{i}"), "CERT", ""),
        },
        2 => {
            let mut s = tls_secret("shop/auth", "", "");
            s.type_ = Some("Opaque".to_owned());
            let users = match good {
                true => "alice:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=",
                false => "not a line",
            };
            s.data = Some([("auth".to_owned(), ByteString(users.as_bytes().to_vec()))].into());
            s
        }
        _ => {
            let mut s = tls_secret("shop/ca", "", "");
            s.type_ = Some("Opaque".to_owned());
            let ca = match good {
                true => "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
                false => "",
            };
            s.data = Some([("ca.crt".to_owned(), ByteString(ca.as_bytes().to_vec()))].into());
            s
        }
    }
}

fn secret_ref(i: usize) -> ObjectRef {
    let name = match i {
        0 | 1 => format!("tls{i}"),
        2 => "auth".to_owned(),
        _ => "ca".to_owned(),
    };
    raw_ref("Secret", &("shop".to_owned(), name))
}

fn change_of(op: &Op) -> Change {
    let shop = |kind, name: String| Change::Delete(raw_ref(kind, &("shop".to_owned(), name)));
    match op {
        Op::Ingress(i, Some(s)) => Change::Put(Object::from(ingress_of(&format!("ing{i}"), s))),
        Op::Ingress(i, None) => shop("Ingress", format!("ing{i}")),
        Op::Service(i, Some(named)) => {
            let port = if *named { "http" } else { "web" };
            Change::Put(service(&format!("shop/svc{i}")).port(port, 80).into())
        }
        Op::Service(i, None) => shop("Service", format!("svc{i}")),
        Op::Slice(i, Some((n, valid))) => {
            let mut b = slice(&format!("shop/svc{i}-a"), &format!("svc{i}")).port("http", 8080);
            for e in 0..*n {
                let address = match valid {
                    true => format!("10.0.{i}.{e}"),
                    false => "not-an-ip".to_owned(),
                };
                b = b.ready(&address);
            }
            Change::Put(b.into())
        }
        Op::Slice(i, None) => shop("EndpointSlice", format!("svc{i}-a")),
        Op::Secret(i, Some(good)) => Change::Put(Object::from(secret(*i, *good))),
        Op::Secret(i, None) => Change::Delete(secret_ref(*i)),
        Op::Route(i, Some(spec)) => Change::Put(http_route(*i, spec).into()),
        Op::Route(i, None) => shop("HTTPRoute", format!("route{i}")),
        Op::Gateway(i, Some(spec)) => Change::Put(gateway(*i, spec).into()),
        Op::Gateway(i, None) => shop("Gateway", format!("gw{i}")),
        Op::GatewayClass(true) => Change::Put(gateway_class().into()),
        Op::GatewayClass(false) => Change::Delete(ObjectRef {
            kind: "GatewayClass",
            namespace: String::new(),
            name: "vestibule".to_owned(),
        }),
        Op::Class(true) => {
            Change::Put(ingress_class("other", "vestibule.dev/ingress-controller").into())
        }
        Op::Class(false) => Change::Delete(ObjectRef {
            kind: "IngressClass",
            namespace: String::new(),
            name: "other".to_owned(),
        }),
    }
}

/// Where two builds differ, if they do: the route each probe request finds, every route,
/// the certificates, diagnostics, Ingresses of ours, backends and their users, and whether
/// every route's backend is the one endpoint updates reach.
fn differences(partial: &Built, full: &Built) -> Vec<String> {
    let mut out = Vec::new();
    let mut check = |what: &str, a: String, b: String| {
        if a != b {
            out.push(format!("{what}:\n  partial {a}\n  full    {b}"));
        }
    };
    let probe_hosts = [
        "a.test",
        "b.test",
        "www.a.test",
        "y.w.test",
        "x.w.test",
        "z.test",
        "g.test",
        "q.y.w.test",
        "other",
    ];
    let probe_paths = [
        "/",
        "/api",
        "/api/",
        "/api/v1",
        "/api/v1/z",
        "/x",
        "/x/",
        "/app",
        "/nope",
    ];
    for host in probe_hosts {
        for path in probe_paths {
            let find = |b: &Built| format!("{:?}", b.table.find(host, path, |_| true));
            check(&format!("{host}{path}"), find(partial), find(full));
        }
    }
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v.join("\n")
    };
    let routes = |b: &Built| sorted(b.table.routes().iter().map(|r| format!("{r:?}")).collect());
    check("routes", routes(partial), routes(full));
    let hosts = |b: &Built| {
        let mut h: Vec<String> = b.table.exact.keys().map(|k| k.to_string()).collect();
        h.extend(b.table.wildcard.keys().map(|k| format!("*.{k}")));
        h.extend(b.table.deep_wildcard.keys().map(|k| format!("deep *.{k}")));
        h.push(format!("any: {}", b.table.any_host.is_some()));
        sorted(h)
    };
    check("host groups", hosts(partial), hosts(full));
    check(
        "default route",
        format!("{:?}", partial.table.default_route),
        format!("{:?}", full.table.default_route),
    );
    let tls = |b: &Built| sorted(b.tls.iter().map(|t| format!("{t:?}")).collect());
    check("tls", tls(partial), tls(full));
    let client = |b: &Built| sorted(b.client_auth.iter().map(|t| format!("{t:?}")).collect());
    check("client auth", client(partial), client(full));
    let diagnostics = |b: &Built| {
        let set: BTreeSet<&Diagnostic> = b.diagnostics.iter().collect();
        format!("{set:#?}")
    };
    check("diagnostics", diagnostics(partial), diagnostics(full));
    let ours = |b: &Built| format!("{:?}", b.ours.iter().collect::<BTreeSet<_>>());
    check("ours", ours(partial), ours(full));
    let backends = |b: &Built| {
        let mut v: Vec<String> = b
            .backends
            .iter()
            .map(|(k, list)| format!("{k:?} {} {:?}", list.len(), list[0].resolved()))
            .collect();
        v.sort();
        v.join("\n")
    };
    check("backends", backends(partial), backends(full));
    let users = |b: &Built| format!("{:?}", b.users.iter().collect::<BTreeMap<_, _>>());
    check("users", users(partial), users(full));
    check(
        "gateway status",
        format!("{:#?}", partial.gateway),
        format!("{:#?}", full.gateway),
    );
    let reached = |b: &Built| {
        let mut v = Vec::new();
        for r in b.table.routes() {
            for (i, wb) in r.backends.iter().enumerate() {
                let listed = wb.backend.service.as_ref().and_then(|s| b.backends.get(s));
                let reached = listed.is_some_and(|l| l.iter().any(|x| Arc::ptr_eq(x, &wb.backend)));
                v.push(format!("{} {i} {reached}", r.id));
            }
        }
        sorted(v)
    };
    check("endpoint updates reach", reached(partial), reached(full));
    out
}

fn base() -> Vec<Change> {
    let mut changes = Vec::new();
    for i in 0..SERVICES - 1 {
        changes.push(change_of(&Op::Service(i, Some(true))));
        changes.push(change_of(&Op::Slice(i, Some((2, true)))));
    }
    for i in 0..4 {
        changes.push(change_of(&Op::Secret(i, Some(true))));
    }
    let namespace: k8s_openapi::api::core::v1::Namespace = serde_json::from_value(
        serde_json::json!({"metadata": {"name": "shop", "labels": {"team": "a"}}}),
    )
    .expect("a Namespace");
    changes.push(Change::Put(namespace.into()));
    changes.push(change_of(&Op::GatewayClass(true)));
    changes.push(change_of(&Op::Gateway(
        0,
        Some(vec![(None, None), (Some(1), Some(0))]),
    )));
    changes.push(change_of(&Op::Route(0, Some((vec![0], 0, vec![(0, 0)])))));
    changes
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// After every batch of changes, the model's build equals a full build of its objects.
    #[test]
    fn a_partial_build_equals_a_full_build(
        start in proptest::collection::vec((0..6usize, spec()), 0..6),
        batches in proptest::collection::vec(proptest::collection::vec(op(), 1..3), 1..10),
    ) {
        let options = Options::default();
        let mut model = Model::new(options.clone());
        let mut snapshot = Snapshot::default();
        for c in base() {
            if let Change::Put(o) = c { snapshot.push(o) }
        }
        for (i, s) in &start {
            snapshot.ingresses.retain(|x| x.metadata.name.as_deref() != Some(&format!("ing{i}")));
            snapshot.push(ingress_of(&format!("ing{i}"), s));
        }
        model.load(&snapshot.sorted());
        for batch in batches {
            let changes: Vec<Change> = batch.iter().map(change_of).collect();
            let (built, how) = model.apply(changes);
            let built = built.clone();
            let full = build(&model.snapshot(), &options);
            let found = differences(&built, &full);
            prop_assert!(found.is_empty(), "after {:?} ({:?}):\n{}", batch, how, found.join("\n"));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// HTTPRoute changes one at a time among many routes (precise, wildcard and without
    /// hostnames), the ones of precise hostnames rebuilt with only their hosts' groups: each
    /// equals a full build.
    #[test]
    fn route_changes_equal_a_full_build(
        start in proptest::collection::vec((0..6usize, spec()), 0..4),
        routes in proptest::collection::vec((0..6usize, route_spec()), 0..6),
        gateways in proptest::collection::vec((0..2usize, gateway_spec()), 0..2),
        changes in proptest::collection::vec(
            (0..6usize, proptest::option::weighted(0.8, route_spec())), 1..8),
    ) {
        let options = Options::default();
        let mut model = Model::new(options.clone());
        let mut snapshot = Snapshot::default();
        let mut objects: Vec<Change> = base();
        objects.extend(start.iter().map(|(i, s)| change_of(&Op::Ingress(*i, Some(s.clone())))));
        objects.extend(routes.iter().map(|(i, r)| change_of(&Op::Route(*i, Some(r.clone())))));
        objects.extend(gateways.iter().map(|(i, g)| change_of(&Op::Gateway(*i, Some(g.clone())))));
        let mut latest: BTreeMap<ObjectRef, Object> = BTreeMap::new();
        for c in objects {
            if let Change::Put(o) = c {
                latest.insert(o.object_ref(), o);
            }
        }
        for o in latest.into_values() {
            snapshot.push(o);
        }
        model.load(&snapshot.sorted());
        for (i, route) in changes {
            let op = Op::Route(i, route);
            let (built, how) = model.apply(vec![change_of(&op)]);
            let built = built.clone();
            let full = build(&model.snapshot(), &options);
            let found = differences(&built, &full);
            prop_assert!(found.is_empty(), "after {:?} ({:?}):\n{}", op, how, found.join("\n"));
        }
    }
}

/// The common case is partial: one Ingress among many changes host, a Service renames its
/// port, a Secret appears; each rebuilds only the Ingresses of the hosts it touches.
#[test]
fn a_change_rebuilds_only_the_ingresses_of_its_hosts() {
    let options = Options::default();
    let mut snapshot = Snapshot::default();
    for i in 0..100 {
        snapshot.push(
            ingress(&format!("shop/app{i}"))
                .host(&format!("app{i}.test"))
                .prefix("/", &format!("svc{i}"), "http")
                .tls(&format!("tls{i}"), &[&format!("app{i}.test")])
                .build(),
        );
        snapshot.push(service(&format!("shop/svc{i}")).port("http", 80).build());
    }
    // A second Ingress on app1's host: it is rebuilt with app1.
    snapshot.push(
        ingress("shop/extra")
            .host("app1.test")
            .prefix("/extra", "svc1", 80)
            .build(),
    );
    let mut model = Model::new(options.clone());
    model.load(&snapshot.sorted());

    let moved = ingress("shop/app1")
        .host("moved.test")
        .prefix("/", "svc1", "http")
        .build();
    let (built, how) = model.apply(vec![Change::Put(moved.into())]);
    assert_eq!(how, Rebuilt::Partial(2));
    assert!(built.table.lookup("moved.test", "/").is_some());
    assert!(built.table.lookup("app1.test", "/extra").is_some());
    assert!(built.table.lookup("app1.test", "/").is_none());

    let renamed = service("shop/svc7").port("web", 80).build();
    let (built, how) = model.apply(vec![Change::Put(renamed.into())]);
    assert_eq!(how, Rebuilt::Partial(1));
    let route = built.table.lookup("app7.test", "/").unwrap();
    assert!(route.backend().resolved().problem.is_some());

    let (built, how) = model.apply(vec![Change::Put(tls_secret("shop/tls9", "C", "K").into())]);
    assert_eq!(how, Rebuilt::Partial(1));
    assert!(built.tls.iter().any(|t| t.secret.name == "tls9"));

    // The Gateway API objects are rebuilt with the Ingresses of their hosts: here app2's.
    let (_, how) = model.apply(vec![
        Change::Put(gateway_class().into()),
        Change::Put(gateway(0, &vec![(None, None)]).into()),
    ]);
    assert_eq!(how, Rebuilt::Partial(0));
    let route = |path: &str| {
        let mut r = http_route(0, &(vec![], 0, vec![(0, 2)]));
        r.spec.hostnames = Some(vec!["app2.test".to_owned()]);
        let rules = r.spec.rules.as_mut().unwrap();
        rules[0].matches.as_mut().unwrap()[0]
            .path
            .as_mut()
            .unwrap()
            .value = Some(path.into());
        r
    };
    let served = |built: &Built, path: &str| {
        let found = built.table.find("app2.test", path, |_| true);
        found.map(|r| r.ingress.kind)
    };
    let (built, how) = model.apply(vec![Change::Put(route("/api").into())]);
    assert_eq!(how, Rebuilt::Partial(1));
    assert_eq!(served(built, "/api/x"), Some("HTTPRoute"));
    assert_eq!(served(built, "/"), Some("Ingress"));
    let (built, how) = model.apply(vec![Change::Put(route("/v2").into())]);
    assert_eq!(how, Rebuilt::Partial(1));
    assert_eq!(served(built, "/api/x"), Some("Ingress"));
    assert_eq!(served(built, "/v2"), Some("HTTPRoute"));
    // A Service the route names brings it along; one it does not name does not.
    let (_, how) = model.apply(vec![Change::Put(
        service("shop/svc2").port("web", 80).into(),
    )]);
    assert_eq!(how, Rebuilt::Partial(1));
    let (_, how) = model.apply(vec![Change::Put(
        service("shop/svc8").port("web", 80).into(),
    )]);
    assert_eq!(how, Rebuilt::Partial(1));
    assert!(differences(model.last().unwrap(), &build(&model.snapshot(), &options)).is_empty());

    // An IngressClass may change which Ingresses are ours: a full build.
    let class = ingress_class("other", "vestibule.dev/ingress-controller").build();
    let (_, how) = model.apply(vec![Change::Put(class.into())]);
    assert_eq!(how, Rebuilt::Full);
    assert!(differences(model.last().unwrap(), &build(&model.snapshot(), &options)).is_empty());
}

/// An HTTPRoute of precise hostnames rebuilds only its hosts' groups: another route's group
/// stays the one already published (shared), while a route without hostnames, which may
/// reach any host, rebuilds every Gateway API group.
#[test]
fn a_precise_route_change_rebuilds_only_its_hosts() {
    let options = Options::default();
    let mut snapshot = Snapshot::default();
    for c in base() {
        if let Change::Put(o) = c {
            snapshot.push(o);
        }
    }
    let route = |i: usize, hosts: &[&str], path: usize| {
        let mut r = http_route(i, &(vec![], 0, vec![(path, 0)]));
        r.spec.hostnames = Some(hosts.iter().map(|h| h.to_string()).collect());
        Object::from(r)
    };
    snapshot.http_routes.clear();
    snapshot.push(route(1, &["one.test"], 0));
    snapshot.push(route(2, &["two.test"], 0));
    let mut model = Model::new(options.clone());
    model.load(&snapshot.sorted());
    let group = |b: &Built, host: &str| b.table.exact.get(host).cloned().expect("a group");
    let two = group(model.last().unwrap(), "two.test");

    let built = model
        .apply(vec![Change::Put(route(1, &["one.test"], 1))])
        .0
        .clone();
    let built = &built;
    assert!(Arc::ptr_eq(&group(built, "two.test"), &two));
    let found = built.table.find("one.test", "/api", |_| true).map(|r| r.id);
    assert!(found.is_some());
    assert!(built.table.find("one.test", "/", |_| true).is_none());
    for (name, ours) in [("route1", true), ("route2", true), ("route3", false)] {
        assert_eq!(built.gateway.route("shop", name).is_some(), ours, "{name}");
    }
    assert!(differences(built, &build(&model.snapshot(), &options)).is_empty());

    let built = model.apply(vec![Change::Put(route(1, &[], 1))]).0.clone();
    let built = &built;
    assert!(!Arc::ptr_eq(&group(built, "two.test"), &two));
    assert!(differences(built, &build(&model.snapshot(), &options)).is_empty());
}
