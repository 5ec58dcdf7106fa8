//! A partial build equals a full build: random changes to Ingresses, Services,
//! EndpointSlices, Secrets (and now and then an IngressClass, for the full path), applied to a
//! [`Model`] one batch at a time, are compared after each with `build_after` of the same
//! objects.

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

/// One change: an Ingress put or deleted, a Service with its port named `http` or not (or
/// gone), a slice with some endpoints (or broken, or gone), a Secret good, bad or gone, or
/// an IngressClass that takes class `other` too.
#[derive(Clone, Debug)]
enum Op {
    Ingress(usize, Option<Spec>),
    Service(usize, Option<bool>),
    Slice(usize, Option<(u8, bool)>),
    Secret(usize, Option<bool>),
    Class(bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..6usize, proptest::option::weighted(0.8, spec())).prop_map(|(i, s)| Op::Ingress(i, s)),
        2 => (0..SERVICES, proptest::option::weighted(0.8, any::<bool>())).prop_map(|(i, s)| Op::Service(i, s)),
        2 => (0..SERVICES, proptest::option::weighted(0.8, (1u8..4, proptest::bool::weighted(0.9)))).prop_map(|(i, s)| Op::Slice(i, s)),
        2 => (0..4usize, proptest::option::weighted(0.8, any::<bool>())).prop_map(|(i, s)| Op::Secret(i, s)),
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

    // An IngressClass may change which Ingresses are ours: a full build.
    let class = ingress_class("other", "vestibule.dev/ingress-controller").build();
    let (_, how) = model.apply(vec![Change::Put(class.into())]);
    assert_eq!(how, Rebuilt::Full);
    assert!(differences(model.last().unwrap(), &build(&model.snapshot(), &options)).is_empty());
}
