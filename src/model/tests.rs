//! Table-driven tests of the routing semantics. Each row cites where the rule comes from:
//! the ingress-controller-conformance features, the Kubernetes Ingress documentation, or
//! DESIGN.md.
// Rows of test tables are tuples; naming each shape would hide the table.
#![allow(clippy::type_complexity)]

use super::fixtures::{ingress, ingress_class, service, slice, tls_secret};
use super::host::RequestHost;
use super::*;
use proptest::prelude::*;

/// Which Service a request reaches: `"name:port"`, or `"404"` when nothing routes it.
fn served_by(built: &Built, host: &str, path: &str) -> String {
    match built.table.lookup(host, path) {
        Some(route) => match &route.backend().service {
            Some(s) => format!("{}:{}", s.name, s.port),
            None => "unservable".to_owned(),
        },
        None => "404".to_owned(),
    }
}

fn build_all(snapshot: Snapshot) -> Built {
    build(&snapshot.sorted(), &Options::default())
}

/// `"Kind ns/name field"` of every diagnostic.
fn all_fields(built: &Built) -> Vec<String> {
    built
        .diagnostics
        .iter()
        .map(|d| format!("{} {}", d.object, d.field))
        .collect()
}

/// Like [`all_fields`], leaving out the missing-Service diagnostics of tests that do not
/// bother to create the Services their Ingresses name.
fn fields(built: &Built) -> Vec<String> {
    built
        .diagnostics
        .iter()
        .filter(|d| !(d.reason.starts_with("Service ") && d.reason.contains(" not found")))
        .map(|d| format!("{} {}", d.object, d.field))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// kubernetes-sigs/ingress-controller-conformance, features/path_rules.feature

#[test]
fn conformance_path_rules() {
    let ing = ingress("conformance/path-rules")
        .host("exact-path-rules")
        .exact("/foo", "foo-exact", 8080)
        .host("prefix-path-rules")
        .prefix("/foo", "foo-prefix", 8080)
        .prefix("/aaa/bbb", "aaa-slash-bbb-prefix", 8080)
        .prefix("/aaa", "aaa-prefix", 8080)
        .host("mixed-path-rules")
        .prefix("/foo", "foo-prefix", 8080)
        .exact("/foo", "foo-exact", 8080)
        .host("trailing-slash-path-rules")
        .prefix("/aaa/bbb/", "aaa-slash-bbb-slash-prefix", 8080)
        .exact("/foo/", "foo-slash-exact", 8080);
    let built = build_all(Snapshot::default().with(ing));
    // (host, request path, expected service)
    let rows = [
        ("exact-path-rules", "/foo", "foo-exact:8080"),
        ("exact-path-rules", "/foo/", "404"),
        ("exact-path-rules", "/FOO", "404"),
        ("exact-path-rules", "/bar", "404"),
        ("prefix-path-rules", "/foo", "foo-prefix:8080"),
        ("prefix-path-rules", "/foo/", "foo-prefix:8080"),
        ("prefix-path-rules", "/FOO", "404"),
        ("prefix-path-rules", "/aaa/bbb", "aaa-slash-bbb-prefix:8080"),
        (
            "prefix-path-rules",
            "/aaa/bbb/ccc",
            "aaa-slash-bbb-prefix:8080",
        ),
        ("prefix-path-rules", "/aaa/ccc", "aaa-prefix:8080"),
        ("prefix-path-rules", "/aaaccc", "404"),
        ("mixed-path-rules", "/foo", "foo-exact:8080"),
        (
            "trailing-slash-path-rules",
            "/aaa/bbb",
            "aaa-slash-bbb-slash-prefix:8080",
        ),
        (
            "trailing-slash-path-rules",
            "/aaa/bbb/",
            "aaa-slash-bbb-slash-prefix:8080",
        ),
        ("trailing-slash-path-rules", "/foo", "404"),
    ];
    for (host, path, want) in rows {
        assert_eq!(served_by(&built, host, path), want, "{host}{path}");
    }
}

// features/host_rules.feature

#[test]
fn conformance_host_rules() {
    let ing = ingress("conformance/host-rules")
        .tls("conformance-tls", &["foo.bar.com"])
        .host("*.foo.com")
        .prefix("/", "wildcard-foo-com", 8080)
        .host("foo.bar.com")
        .prefix("/", "foo-bar-com", "http");
    let built = build_all(Snapshot::default().with(ing));
    let rows = [
        ("foo.bar.com", "/", "foo-bar-com:http"),
        ("subdomain.bar.com", "/", "404"),
        ("bar.foo.com", "/", "wildcard-foo-com:8080"),
        ("baz.bar.foo.com", "/", "404"),
        ("foo.com", "/", "404"),
    ];
    for (host, path, want) in rows {
        assert_eq!(served_by(&built, host, path), want, "{host}{path}");
    }
}

// features/default_backend.feature: an Ingress with only a default backend takes everything.

#[test]
fn conformance_default_backend() {
    let ing = ingress("conformance/default-backend").default_backend("echo-service", 8080);
    let built = build_all(Snapshot::default().with(ing));
    for (host, path) in [
        ("my-host", "/"),
        ("my-host", "/sub-path"),
        ("some-host", "/"),
        ("", "/resource"),
        ("some-host", "/resource"),
    ] {
        assert_eq!(
            served_by(&built, host, path),
            "echo-service:8080",
            "{host}{path}"
        );
    }
}

// features/ingress_class.feature: an unknown class is not ours, so nothing is routed.

#[test]
fn conformance_invalid_ingress_class_is_ignored() {
    let ing = ingress("conformance/test-ingress-class")
        .class("some-invalid-class-name")
        .host("ingress-class")
        .prefix("/", "ingress-class-prefix", 8080);
    let built = build_all(Snapshot::default().with(ing));
    assert_eq!(served_by(&built, "ingress-class", "/"), "404");
    assert!(built.table.routes().is_empty());
    assert!(
        built.diagnostics.is_empty(),
        "other classes are not ours to judge"
    );
}

// ---------------------------------------------------------------------------------------------
// kubernetes.io/docs/concepts/services-networking/ingress/#examples (path matching table).
// Each row: the rules (type, path), the request, and the rule that must match (None: no match).

#[test]
fn docs_path_examples() {
    use PathType::*;
    let rows: &[(&[(PathType, &str)], &str, Option<(PathType, &str)>)] = &[
        (&[(Prefix, "/")], "/anything/at/all", Some((Prefix, "/"))),
        (&[(Exact, "/foo")], "/foo", Some((Exact, "/foo"))),
        (&[(Exact, "/foo")], "/bar", None),
        (&[(Exact, "/foo")], "/foo/", None),
        (&[(Exact, "/foo/")], "/foo", None),
        (&[(Prefix, "/foo")], "/foo", Some((Prefix, "/foo"))),
        (&[(Prefix, "/foo")], "/foo/", Some((Prefix, "/foo"))),
        (&[(Prefix, "/foo/")], "/foo", Some((Prefix, "/foo/"))),
        (&[(Prefix, "/foo/")], "/foo/", Some((Prefix, "/foo/"))),
        (&[(Prefix, "/aaa/bb")], "/aaa/bbb", None),
        (
            &[(Prefix, "/aaa/bbb")],
            "/aaa/bbb",
            Some((Prefix, "/aaa/bbb")),
        ),
        (
            &[(Prefix, "/aaa/bbb/")],
            "/aaa/bbb",
            Some((Prefix, "/aaa/bbb/")),
        ),
        (
            &[(Prefix, "/aaa/bbb")],
            "/aaa/bbb/",
            Some((Prefix, "/aaa/bbb")),
        ),
        (
            &[(Prefix, "/aaa/bbb")],
            "/aaa/bbb/ccc",
            Some((Prefix, "/aaa/bbb")),
        ),
        (&[(Prefix, "/aaa/bbb")], "/aaa/bbbxyz", None),
        (
            &[(Prefix, "/"), (Prefix, "/aaa")],
            "/aaa/ccc",
            Some((Prefix, "/aaa")),
        ),
        (
            &[(Prefix, "/"), (Prefix, "/aaa"), (Prefix, "/aaa/bbb")],
            "/aaa/bbb",
            Some((Prefix, "/aaa/bbb")),
        ),
        (
            &[(Prefix, "/"), (Prefix, "/aaa"), (Prefix, "/aaa/bbb")],
            "/ccc",
            Some((Prefix, "/")),
        ),
        (&[(Prefix, "/aaa")], "/ccc", None),
        (
            &[(Prefix, "/foo"), (Exact, "/foo")],
            "/foo",
            Some((Exact, "/foo")),
        ),
        // "Multiple matches": longest wins whatever the declaration order (docs, DESIGN.md).
        (
            &[(Prefix, "/aaa/bbb"), (Prefix, "/aaa")],
            "/aaa/bbb/c",
            Some((Prefix, "/aaa/bbb")),
        ),
        (
            &[(Exact, "/foo"), (Prefix, "/foo")],
            "/foo",
            Some((Exact, "/foo")),
        ),
        (
            &[(Exact, "/foo"), (Prefix, "/foo")],
            "/foo/x",
            Some((Prefix, "/foo")),
        ),
        (
            &[(Exact, "/foo/bar"), (Prefix, "/foo")],
            "/foo/bar",
            Some((Exact, "/foo/bar")),
        ),
        (
            &[(Exact, "/foo/bar"), (Prefix, "/foo")],
            "/foo/bar/",
            Some((Prefix, "/foo")),
        ),
        (
            &[(Prefix, "/a/b/c"), (Prefix, "/a")],
            "/a/b/cd",
            Some((Prefix, "/a")),
        ),
        // ImplementationSpecific behaves as Prefix (DESIGN.md).
        (
            &[(ImplementationSpecific, "/foo")],
            "/foo/bar",
            Some((ImplementationSpecific, "/foo")),
        ),
        (&[(ImplementationSpecific, "/foo")], "/foobar", None),
        // Braces are literal, not router parameters (DESIGN.md).
        (&[(Exact, "/{id}")], "/{id}", Some((Exact, "/{id}"))),
        (&[(Exact, "/{id}")], "/42", None),
        (&[(Prefix, "/a{*x}")], "/a{*x}/y", Some((Prefix, "/a{*x}"))),
        (&[(Prefix, "/a{*x}")], "/ab", None),
        // Case-sensitive, no trailing-slash folding for Exact.
        (&[(Exact, "/Foo")], "/foo", None),
    ];
    for (rules, request, want) in rows {
        let mut ing = ingress("docs/paths").host("docs.example");
        for (t, p) in rules.iter() {
            ing = ing.path(&format!("{t:?}"), p, &format!("{t:?}{p}"), 80);
        }
        let built = build_all(Snapshot::default().with(ing));
        let got = built
            .table
            .lookup("docs.example", request)
            .and_then(|r| r.path.clone());
        let want = want.map(|(t, p)| PathRule {
            path_type: t,
            path: p.to_owned(),
        });
        assert_eq!(got, want, "rules {rules:?} request {request}");
        // The reference definition agrees with the router.
        let reference = rules
            .iter()
            .map(|(t, p)| PathRule {
                path_type: *t,
                path: (*p).to_owned(),
            })
            .filter(|r| r.matches(request))
            .max_by(|a, b| a.precedence(b));
        assert_eq!(
            reference, want,
            "reference: rules {rules:?} request {request}"
        );
    }
}

#[test]
fn query_string_is_not_part_of_the_path() {
    assert_eq!(path::request_path("/foo?x=/bar"), "/foo");
    assert_eq!(path::request_path("/foo"), "/foo");
    let ing = ingress("default/q").host("q").exact("/foo", "foo", 80);
    let built = build_all(Snapshot::default().with(ing));
    assert_eq!(
        served_by(&built, "q", path::request_path("/foo?a=b")),
        "foo:80"
    );
}

// ---------------------------------------------------------------------------------------------
// Hosts (DESIGN.md "Hosts").

#[test]
fn request_host_normalisation() {
    let rows = [
        ("Foo.Example.COM", Some("foo.example.com")),
        ("foo.example.com:8080", Some("foo.example.com")),
        ("foo.example.com.", Some("foo.example.com")),
        ("foo.example.com.:443", Some("foo.example.com")),
        ("[::1]:8080", Some("[::1]")),
        ("[::1]", Some("[::1]")),
        ("127.0.0.1:80", Some("127.0.0.1")),
        ("", None),
        (":80", None),
        ("foo:bar", None),
        ("foo:", None),
        ("a b", None),
        ("foo/bar", None),
        ("[::1", None),
        ("[::1]x", None),
    ];
    for (raw, want) in rows {
        assert_eq!(
            RequestHost::parse(raw).as_ref().map(|h| h.as_str()),
            want,
            "{raw:?}"
        );
    }
}

#[test]
fn host_groups_exact_then_wildcard_then_hostless() {
    let ing = ingress("default/hosts")
        .host("a.example.com")
        .prefix("/app", "exact", 80)
        .host("*.example.com")
        .prefix("/", "wild", 80)
        .host("")
        .prefix("/", "any", 80);
    let built = build_all(
        Snapshot::default()
            .with(ing)
            .with(ingress("default/db").default_backend("fallback", 80)),
    );
    let rows = [
        // Exact host wins, case and port and trailing dot do not matter.
        ("a.example.com", "/app", "exact:80"),
        ("A.EXAMPLE.com:8080", "/app/x", "exact:80"),
        ("a.example.com.", "/app", "exact:80"),
        // The exact group is chosen even when its paths miss: then the default backend,
        // never the wildcard or host-less rules (issue #2, rule 2).
        ("a.example.com", "/other", "fallback:80"),
        // Wildcard: exactly one label.
        ("b.example.com", "/x", "wild:80"),
        ("x.b.example.com", "/x", "any:80"),
        ("example.com", "/x", "any:80"),
        // Host-less rules take any other host.
        ("elsewhere.test", "/", "any:80"),
    ];
    for (host, path, want) in rows {
        assert_eq!(served_by(&built, host, path), want, "{host}{path}");
    }
}

#[test]
fn invalid_host_rule_is_diagnosed_and_only_that_rule_dropped() {
    let ing = ingress("default/bad-host")
        .host("*.*.example.com")
        .prefix("/", "a", 80)
        .host("foo.example.com")
        .prefix("/", "b", 80)
        .host("bad host")
        .prefix("/", "c", 80);
    let built = build_all(Snapshot::default().with(ing));
    assert_eq!(
        fields(&built),
        [
            "Ingress default/bad-host spec.rules[0].host",
            "Ingress default/bad-host spec.rules[2].host"
        ]
    );
    assert_eq!(served_by(&built, "foo.example.com", "/"), "b:80");
}

// ---------------------------------------------------------------------------------------------
// Classes (DESIGN.md "Which Ingresses are ours").

#[test]
fn ingress_classes() {
    const OURS: &str = "vestibule.dev/ingress-controller";
    let ours = ingress_class("ours", OURS);
    let other = ingress_class("nginx", "k8s.io/ingress-nginx");
    let rows: Vec<(&str, Vec<Object>, fixtures::IngressBuilder, Options, bool)> = vec![
        (
            "class field names our IngressClass",
            vec![ours.build().into()],
            ingress("d/i").class("ours"),
            Options::default(),
            true,
        ),
        (
            "class field names another controller's class",
            vec![other.build().into()],
            ingress("d/i").class("nginx"),
            Options::default(),
            false,
        ),
        (
            "class field names a class that does not exist",
            vec![],
            ingress("d/i").class("missing"),
            Options::default(),
            false,
        ),
        (
            "legacy annotation names our class",
            vec![ingress_class("ours", OURS).build().into()],
            ingress("d/i").legacy_class("ours"),
            Options::default(),
            true,
        ),
        (
            "legacy annotation names another class",
            vec![],
            ingress("d/i").legacy_class("nginx"),
            Options::default(),
            false,
        ),
        (
            "field wins over the annotation",
            vec![ingress_class("ours", OURS).build().into()],
            ingress("d/i").legacy_class("nginx").class("ours"),
            Options::default(),
            true,
        ),
        (
            "no class, no default class",
            vec![ingress_class("ours", OURS).build().into()],
            ingress("d/i").no_class(),
            Options::default(),
            false,
        ),
        (
            "no class, our class is default",
            vec![ingress_class("ours", OURS).default_class().build().into()],
            ingress("d/i").no_class(),
            Options::default(),
            true,
        ),
        (
            "no class, another controller's class is default",
            vec![
                ingress_class("nginx", "k8s.io/ingress-nginx")
                    .default_class()
                    .build()
                    .into(),
            ],
            ingress("d/i").no_class(),
            Options::default(),
            false,
        ),
        (
            "no class, --watch-ingress-without-class",
            vec![],
            ingress("d/i").no_class(),
            Options {
                watch_ingress_without_class: true,
                ..Options::default()
            },
            true,
        ),
        (
            "--ingress-class without an IngressClass object",
            vec![],
            ingress("d/i").class("vestibule"),
            Options::default(),
            true,
        ),
        (
            "--ingress-class by annotation",
            vec![],
            ingress("d/i").legacy_class("vestibule"),
            Options::default(),
            true,
        ),
        (
            "--ingress-class name taken by another controller",
            vec![
                ingress_class("vestibule", "k8s.io/ingress-nginx")
                    .build()
                    .into(),
            ],
            ingress("d/i").class("vestibule"),
            Options::default(),
            false,
        ),
        (
            "a renamed --controller-name",
            vec![ingress_class("ours", "example.com/mine").build().into()],
            ingress("d/i").class("ours"),
            Options {
                controller_name: "example.com/mine".into(),
                ..Options::default()
            },
            true,
        ),
        (
            "our class under the default controller name is not ours when renamed",
            vec![ingress_class("ours", OURS).build().into()],
            ingress("d/i").class("ours"),
            Options {
                controller_name: "example.com/mine".into(),
                ..Options::default()
            },
            false,
        ),
    ];
    for (why, classes, ing, options, want) in rows {
        let mut snapshot = Snapshot::default();
        for c in classes {
            snapshot.push(c);
        }
        // An Ingress that is ours takes every request through its default backend.
        snapshot.push(ing.default_backend("svc", 80));
        let built = build(&snapshot.sorted(), &options);
        assert_eq!(built.table.default_route().is_some(), want, "{why}");
    }
}

// ---------------------------------------------------------------------------------------------
// Several Ingresses (DESIGN.md "Several Ingresses").

#[test]
fn ingresses_merge_per_host() {
    let a = ingress("team-a/api")
        .host("shop.example")
        .prefix("/api", "api", 80);
    let b = ingress("team-b/web")
        .host("shop.example")
        .prefix("/", "web", 80);
    let built = build_all(Snapshot::default().with(a).with(b));
    assert_eq!(served_by(&built, "shop.example", "/api/cart"), "api:80");
    assert_eq!(served_by(&built, "shop.example", "/index.html"), "web:80");
    assert!(fields(&built).is_empty());
}

#[test]
fn conflicts_go_to_the_oldest_then_namespace_name() {
    let rows = [
        // (first, created, second, created, winner)
        ("ns/newer", Some(200), "ns/older", Some(100), "older"),
        ("ns/b", Some(100), "ns/a", Some(100), "a"),
        ("ns/b", None, "ns/a", None, "a"),
        ("ns/a", None, "ns/b", Some(100), "b"),
    ];
    for (first, t1, second, t2, winner) in rows {
        let mk = |name: &str, t: Option<i64>| {
            let svc = name.split('/').nth(1).unwrap_or_default().to_owned();
            let b = ingress(name).host("c.example").prefix("/x", &svc, 80);
            match t {
                Some(t) => b.created(t),
                None => b,
            }
        };
        let built = build_all(Snapshot::default().with(mk(first, t1)).with(mk(second, t2)));
        assert_eq!(served_by(&built, "c.example", "/x"), format!("{winner}:80"));
        assert_eq!(fields(&built).len(), 1, "{:?}", built.diagnostics);
        let d = built
            .diagnostics
            .iter()
            .find(|d| d.reason.contains("already routed"))
            .unwrap();
        let loser = if winner == first.split('/').nth(1).unwrap_or_default() {
            second
        } else {
            first
        };
        assert_eq!(d.object.key(), loser);
        assert_eq!(d.field, "spec.rules[0].http.paths[0]");
        assert!(
            d.reason.contains(&format!("ns/{winner}")),
            "names the winner: {}",
            d.reason
        );
    }
}

#[test]
fn different_types_on_the_same_path_do_not_conflict_but_prefix_types_do() {
    let a = ingress("ns/a")
        .created(1)
        .host("h")
        .exact("/x", "exact", 80);
    let b = ingress("ns/b")
        .created(2)
        .host("h")
        .prefix("/x", "prefix", 80);
    let c = ingress("ns/c")
        .created(3)
        .host("h")
        .implementation_specific("/x/", "impl", 80);
    let built = build_all(Snapshot::default().with(a).with(b).with(c));
    assert_eq!(served_by(&built, "h", "/x"), "exact:80");
    assert_eq!(served_by(&built, "h", "/x/y"), "prefix:80");
    assert_eq!(fields(&built), ["Ingress ns/c spec.rules[0].http.paths[0]"]);
}

// ---------------------------------------------------------------------------------------------
// Default backend (DESIGN.md; issue #2 rule 5).

#[test]
fn default_backend_precedence() {
    let flag = Options {
        default_backend: Some(ServiceRef::parse("ops/fallback:http").unwrap()),
        ..Options::default()
    };
    // Oldest spec.defaultBackend wins, the others are told.
    let snapshot = Snapshot::default()
        .with(ingress("ns/young").created(20).default_backend("young", 80))
        .with(ingress("ns/old").created(10).default_backend("old", 80));
    let built = build(&snapshot.sorted(), &flag);
    assert_eq!(served_by(&built, "any", "/"), "old:80");
    assert_eq!(fields(&built), ["Ingress ns/young spec.defaultBackend"]);
    // Without one, the flag.
    let built = build(
        &Snapshot::default().with(ingress("ns/a").host("a").prefix("/", "a", 80)),
        &flag,
    );
    assert_eq!(served_by(&built, "other", "/"), "fallback:http");
    // Without either, 404.
    let built = build_all(Snapshot::default().with(ingress("ns/a").host("a").prefix("/", "a", 80)));
    assert_eq!(served_by(&built, "other", "/"), "404");
    // The flag's form.
    assert!(ServiceRef::parse("fallback:80").is_err());
    assert!(ServiceRef::parse("ns/fallback").is_err());
    assert_eq!(
        ServiceRef::parse("ns/fb:80").unwrap().port,
        PortRef::Number(80)
    );
}

// ---------------------------------------------------------------------------------------------
// Backends (DESIGN.md "Backends"; issue #2 rule 6).

fn targets(built: &Built, host: &str) -> Vec<String> {
    let route = built.table.lookup(host, "/").expect("routed");
    route
        .backend()
        .resolved()
        .endpoints
        .targets
        .iter()
        .map(|t| t.to_string())
        .collect()
}

#[test]
fn service_port_by_number_and_by_name_follow_the_slice_port_name() {
    let snapshot = Snapshot::default()
        .with(
            ingress("ns/i")
                .host("num")
                .prefix("/", "web", 80)
                .host("name")
                .prefix("/", "web", "metrics"),
        )
        .with(service("ns/web").port("http", 80).port("metrics", 9000))
        // Slice ports are found by the ServicePort's name; the Service's targetPort (1) is ignored.
        .with(
            slice("ns/web-1", "web")
                .port("http", 8080)
                .port("metrics", 9100)
                .ready("10.0.0.1"),
        );
    let built = build_all(snapshot);
    assert_eq!(targets(&built, "num"), ["10.0.0.1:8080"]);
    assert_eq!(targets(&built, "name"), ["10.0.0.1:9100"]);
}

#[test]
fn unnamed_single_port() {
    let snapshot = Snapshot::default()
        .with(ingress("ns/i").host("h").prefix("/", "web", 80))
        .with(service("ns/web").port("", 80))
        .with(slice("ns/web-1", "web").port("", 8080).ready("10.0.0.1"));
    assert_eq!(targets(&build_all(snapshot), "h"), ["10.0.0.1:8080"]);
}

#[test]
fn endpoint_readiness() {
    let rows: &[(
        &str,
        Vec<(&str, Option<bool>, Option<bool>, Option<bool>)>,
        &[&str],
    )] = &[
        (
            "ready true counts",
            vec![("10.0.0.1", Some(true), None, None)],
            &["10.0.0.1:8080"],
        ),
        (
            "ready unset counts",
            vec![("10.0.0.1", None, None, None)],
            &["10.0.0.1:8080"],
        ),
        (
            "ready false does not",
            vec![("10.0.0.1", Some(false), Some(false), Some(false))],
            &[],
        ),
        (
            "terminating endpoints only when none is ready",
            vec![
                ("10.0.0.1", Some(true), Some(true), None),
                ("10.0.0.2", Some(false), Some(true), Some(true)),
            ],
            &["10.0.0.1:8080"],
        ),
        (
            "serving+terminating as fallback",
            vec![
                ("10.0.0.1", Some(false), Some(false), Some(false)),
                ("10.0.0.2", Some(false), Some(true), Some(true)),
            ],
            &["10.0.0.2:8080"],
        ),
        (
            "terminating but not serving is never used",
            vec![("10.0.0.2", Some(false), Some(false), Some(true))],
            &[],
        ),
    ];
    for (why, endpoints, want) in rows {
        let mut s = slice("ns/web-1", "web").port("http", 8080);
        for (addr, r, sv, t) in endpoints {
            s = s.endpoint(addr, *r, *sv, *t);
        }
        let snapshot = Snapshot::default()
            .with(ingress("ns/i").host("h").prefix("/", "web", 80))
            .with(service("ns/web").port("http", 80))
            .with(s);
        let built = build_all(snapshot);
        assert_eq!(targets(&built, "h"), *want, "{why}");
        assert!(
            built.diagnostics.is_empty(),
            "{why}: no endpoints is not a diagnostic"
        );
    }
}

#[test]
fn slices_are_matched_by_label_and_namespace_and_deduplicated() {
    let snapshot = Snapshot::default()
        .with(ingress("ns/i").host("h").prefix("/", "web", 80))
        .with(service("ns/web").port("http", 80))
        .with(
            slice("ns/web-1", "web")
                .port("http", 8080)
                .ready("10.0.0.2")
                .ready("10.0.0.1"),
        )
        .with(
            slice("ns/web-2", "web")
                .port("http", 8080)
                .ready("10.0.0.1")
                .ready("10.0.0.3"),
        )
        .with(
            slice("ns/stray", "web")
                .unlabelled()
                .port("http", 8080)
                .ready("10.9.9.9"),
        )
        .with(
            slice("ns/other", "other")
                .port("http", 8080)
                .ready("10.8.8.8"),
        )
        .with(
            slice("elsewhere/web-1", "web")
                .port("http", 8080)
                .ready("10.7.7.7"),
        )
        .with(
            slice("ns/v6", "web")
                .address_type("IPv6")
                .port("http", 8080)
                .ready("fd00::1"),
        );
    assert_eq!(
        targets(&build_all(snapshot), "h"),
        [
            "10.0.0.1:8080",
            "10.0.0.2:8080",
            "10.0.0.3:8080",
            "[fd00::1]:8080"
        ]
    );
}

#[test]
fn selectorless_service_with_hand_made_slice_and_fqdn_slice() {
    // A Service without selector is just a Service; its hand-made slices are read the same way.
    let snapshot = Snapshot::default()
        .with(ingress("ns/i").host("h").prefix("/", "ext", 80))
        .with(service("ns/ext").port("http", 80))
        .with(
            slice("ns/ext-manual", "ext")
                .address_type("FQDN")
                .port("http", 8080)
                .ready("api.internal.example."),
        );
    assert_eq!(
        targets(&build_all(snapshot), "h"),
        ["api.internal.example:8080"]
    );
}

#[test]
fn endpoint_slices_the_api_server_would_refuse_are_diagnosed_and_unused() {
    // Kubernetes API validation (discovery/v1 EndpointSlice): ports 1-65535, addresses of the
    // slice's addressType. Manifest files skip that validation, so the model does it.
    for (port, address, problem) in [
        (-1, "10.0.0.1", "EndpointSlice ns/s ports[0].port"),
        (0, "10.0.0.1", "EndpointSlice ns/s ports[0].port"),
        (65536, "10.0.0.1", "EndpointSlice ns/s ports[0].port"),
        (70000, "10.0.0.1", "EndpointSlice ns/s ports[0].port"),
        (
            8080,
            "999.999.999.999",
            "EndpointSlice ns/s endpoints[0].addresses[0]",
        ),
        (
            8080,
            "localhost",
            "EndpointSlice ns/s endpoints[0].addresses[0]",
        ),
        (8080, "::1", "EndpointSlice ns/s endpoints[0].addresses[0]"),
    ] {
        let snapshot = Snapshot::default()
            .with(ingress("ns/i").host("h").prefix("/", "web", 80))
            .with(service("ns/web").port("http", 80))
            .with(slice("ns/s", "web").port("http", port).ready(address));
        let built = build_all(snapshot);
        assert_eq!(all_fields(&built), [problem], "{port} {address}");
        assert!(targets(&built, "h").is_empty(), "{port} {address}");
        let route = built.table.lookup("h", "/").unwrap();
        assert_eq!(
            route.backend().resolved().problem.clone().as_deref(),
            Some("its EndpointSlices list no usable endpoint (see their diagnostics)"),
            "not the misleading selector hint"
        );
    }
    // The good side of both rules.
    let snapshot = Snapshot::default()
        .with(ingress("ns/i").host("h").prefix("/", "web", 80))
        .with(service("ns/web").port("http", 80))
        .with(slice("ns/s", "web").port("http", 65535).ready("10.0.0.1"));
    let built = build_all(snapshot);
    assert!(all_fields(&built).is_empty());
    assert_eq!(targets(&built, "h"), ["10.0.0.1:65535"]);
}

#[test]
fn external_name_service_is_a_dns_upstream() {
    let snapshot = Snapshot::default()
        .with(
            ingress("ns/i")
                .host("num")
                .prefix("/", "ext", 443)
                .host("name")
                .prefix("/", "ext", "https"),
        )
        .with(
            service("ns/ext")
                .external_name("example.org")
                .port("https", 8443),
        );
    let built = build_all(snapshot);
    assert_eq!(targets(&built, "num"), ["example.org:443"]);
    assert_eq!(targets(&built, "name"), ["example.org:8443"]);
}

#[test]
fn missing_service_or_port_answers_503_and_is_diagnosed() {
    let snapshot = Snapshot::default()
        .with(
            ingress("ns/i")
                .host("h")
                .prefix("/nosvc", "missing", 80)
                .prefix("/noport", "web", 81)
                .prefix("/noname", "web", "grpc")
                .prefix("/ok", "web", 80)
                .resource_path("/bucket"),
        )
        .with(service("ns/web").port("http", 80))
        .with(
            slice("ns/web-1", "web")
                .port("http", 8080)
                .ready("10.0.0.1"),
        );
    let built = build_all(snapshot);
    assert_eq!(
        all_fields(&built),
        [
            "Ingress ns/i spec.rules[0].http.paths[0].backend.service.name",
            "Ingress ns/i spec.rules[0].http.paths[1].backend.service.port.number",
            "Ingress ns/i spec.rules[0].http.paths[2].backend.service.port.name",
            "Ingress ns/i spec.rules[0].http.paths[4].backend.resource",
        ]
    );
    for path in ["/nosvc", "/noport", "/noname", "/bucket"] {
        let route = built
            .table
            .lookup("h", path)
            .expect("route exists and answers 503");
        assert!(
            route.backend().resolved().endpoints.targets.is_empty(),
            "{path}"
        );
        assert!(route.backend().resolved().problem.is_some(), "{path}");
    }
    assert!(
        built.table.lookup("h", "/").is_none(),
        "/ is not routed at all"
    );
    let ok = built.table.lookup("h", "/ok").unwrap();
    assert_eq!(ok.backend().resolved().endpoints.targets.len(), 1);
}

#[test]
fn bad_paths_cost_only_their_own_route() {
    let ing = ingress("ns/i")
        .host("h")
        .path("Regex", "/a", "a", 80)
        .prefix("relative", "b", 80)
        .prefix("/c", "c", 80);
    let built = build_all(
        Snapshot::default()
            .with(ing)
            .with(ingress("ns/j").host("k").prefix("/", "k", 80)),
    );
    assert_eq!(
        fields(&built),
        [
            "Ingress ns/i spec.rules[0].http.paths[0].path",
            "Ingress ns/i spec.rules[0].http.paths[1].path"
        ]
    );
    assert_eq!(served_by(&built, "h", "/c"), "c:80");
    assert_eq!(served_by(&built, "k", "/"), "k:80");
}

// ---------------------------------------------------------------------------------------------
// TLS map (issue #2 rule 7).

#[test]
fn tls_bindings_and_their_diagnostics() {
    let mut opaque = tls_secret("ns/opaque", "CERT", "KEY");
    opaque.type_ = Some("Opaque".into());
    let snapshot = Snapshot::default()
        .with(
            ingress("ns/i")
                .created(1)
                .tls("good", &["a.example", "*.wild.example"])
                .tls("missing", &["b.example"])
                .tls("opaque", &["c.example"])
                .tls("nokey", &["d.example"]),
        )
        .with(ingress("ns/j").created(2).tls("other", &["a.example"]))
        .with(tls_secret("ns/good", "CERT", "KEY"))
        .with(tls_secret("ns/other", "CERT2", "KEY2"))
        .with(tls_secret("ns/nokey", "CERT", ""))
        .with(opaque);
    let built = build_all(snapshot);
    let hosts: Vec<String> = built
        .tls
        .iter()
        .map(|b| format!("{} {}", b.host, b.secret.key()))
        .collect();
    assert_eq!(hosts, ["a.example ns/good", "*.wild.example ns/good"]);
    assert_eq!(&*built.tls[0].cert_pem, b"CERT");
    assert_eq!(
        fields(&built),
        [
            "Ingress ns/i spec.tls[1].secretName",
            "Ingress ns/i spec.tls[2].secretName",
            "Ingress ns/i spec.tls[3].secretName",
            "Ingress ns/j spec.tls[0].hosts[0]",
        ]
    );
    assert!(built.diagnostics[2].reason.contains("tls.key"));
    assert!(built.diagnostics[1].reason.contains("Opaque"));
}

// ---------------------------------------------------------------------------------------------
// Diagnostics and totality (issue #2 rule 8).

#[test]
fn diagnostic_display_names_object_field_and_reason() {
    let built =
        build_all(Snapshot::default().with(ingress("ns/i").host("h").prefix("/", "web", "http")));
    assert_eq!(
        built.diagnostics[0].to_string(),
        "Ingress ns/i: spec.rules[0].http.paths[0].backend.service.name: Service ns/web not found; requests get 503"
    );
}

fn arb_path() -> impl Strategy<Value = String> {
    // Small alphabets make overlapping rules likely.
    proptest::collection::vec(
        prop_oneof![
            Just("a"),
            Just("b"),
            Just("ab"),
            Just(""),
            Just("{"),
            Just("}"),
            Just("*x")
        ],
        0..4,
    )
    .prop_map(|segs| format!("/{}", segs.join("/")))
    .prop_flat_map(|p| prop_oneof![Just(p.clone()), Just(format!("{p}/"))])
}

fn arb_type() -> impl Strategy<Value = PathType> {
    prop_oneof![
        Just(PathType::Exact),
        Just(PathType::Prefix),
        Just(PathType::ImplementationSpecific)
    ]
}

proptest! {
    /// The router agrees with the reference definition of a match and of precedence.
    #[test]
    fn router_agrees_with_reference(rules in proptest::collection::vec((arb_type(), arb_path()), 1..40), request in arb_path()) {
        let mut ing = ingress("p/p").host("h");
        for (i, (t, p)) in rules.iter().enumerate() {
            ing = ing.path(&format!("{t:?}"), p, &format!("s{i}"), 80);
        }
        let built = build_all(Snapshot::default().with(ing));
        let got = built.table.lookup("h", &request).and_then(|r| r.path.clone());
        // First declared wins among claims on the same key, as conflicts do.
        let mut placed: Vec<PathRule> = Vec::new();
        for (t, p) in &rules {
            let r = PathRule { path_type: *t, path: p.clone() };
            if !placed.iter().any(|q| q.match_path() == r.match_path() && q.path_type.is_exact() == r.path_type.is_exact()) {
                placed.push(r);
            }
        }
        let want = placed.into_iter().filter(|r| r.matches(&request)).max_by(|a, b| a.precedence(b));
        prop_assert_eq!(got, want);
    }

    /// Arbitrary text in every field never panics `build` or `lookup`.
    #[test]
    fn build_and_lookup_never_panic(
        hosts in proptest::collection::vec(".{0,12}", 1..4),
        paths in proptest::collection::vec(".{0,12}", 1..4),
        types in proptest::collection::vec(".{0,8}", 1..4),
        ports in proptest::collection::vec(any::<i32>(), 1..4),
        names in proptest::collection::vec(".{0,6}", 1..4),
        request_host in ".{0,20}",
        request_path in ".{0,20}",
        class in prop_oneof![Just("vestibule".to_owned()), ".{0,6}"],
    ) {
        let mut ing = ingress("f/f").class(&class).tls(&names[0], &[&hosts[0]]).default_backend(&names[0], ports[0]);
        for (i, host) in hosts.iter().enumerate() {
            ing = ing.host(host);
            let port: PortRef = if i % 2 == 0 { ports[i % ports.len()].into() } else { names[i % names.len()].as_str().into() };
            ing = ing.path(&types[i % types.len()], &paths[i % paths.len()], &names[i % names.len()], port);
        }
        let snapshot = Snapshot::default()
            .with(ing)
            .with(service(&format!("f/{}", names[0])).port(&names[0], ports[0]))
            .with(slice("f/s", &names[0]).port(&names[0], ports[0]).ready(&request_host).address_type(&types[0]))
            .with(tls_secret(&format!("f/{}", names[0]), &paths[0], &hosts[0]));
        let built = build_all(snapshot);
        let _ = built.table.lookup(&request_host, &request_path);
        let _ = built.table.lookup(&hosts[0], &paths[0]);
    }
}

// ---------------------------------------------------------------------------------------------
// HTTPS redirects (DESIGN.md "TLS"; issue #4): a route redirects when its host has TLS in any
// of our Ingresses and its own Ingress did not opt out.

#[test]
fn redirect_to_https_follows_tls_hosts_and_annotations() {
    let snapshot = Snapshot::default()
        .with(
            ingress("ns/tls")
                .created(1)
                .tls("cert", &["a.example", "*.wild.example"]),
        )
        .with(
            ingress("ns/routes")
                .created(2)
                .host("a.example")
                .prefix("/", "s", 80)
                .host("b.wild.example")
                .prefix("/", "s", 80)
                .host("*.wild.example")
                .prefix("/", "s", 80)
                .host("other.example")
                .prefix("/", "s", 80)
                .host("")
                .prefix("/", "s", 80),
        )
        .with(
            ingress("ns/optout")
                .created(3)
                .annotate("vestibule.dev/ssl-redirect", "false")
                .host("a.example")
                .prefix("/out", "s", 80),
        )
        .with(
            ingress("ns/nginx")
                .created(4)
                .annotate("nginx.ingress.kubernetes.io/ssl-redirect", "False")
                .host("a.example")
                .prefix("/nginx", "s", 80),
        )
        .with(
            ingress("ns/bad")
                .created(5)
                .annotate("vestibule.dev/ssl-redirect", "maybe")
                .host("a.example")
                .prefix("/bad", "s", 80),
        )
        .with(tls_secret("ns/cert", "CERT", "KEY"));
    let built = build_all(snapshot);
    let redirects = |host: &str, path: &str| {
        built
            .table
            .lookup(host, path)
            .map(|r| r.redirects_to_https())
    };
    assert_eq!(redirects("a.example", "/"), Some(true));
    assert_eq!(
        redirects("b.wild.example", "/"),
        Some(true),
        "covered by the TLS wildcard"
    );
    assert_eq!(
        redirects("c.wild.example", "/"),
        Some(true),
        "wildcard rule, same TLS wildcard"
    );
    assert_eq!(redirects("other.example", "/"), Some(false));
    assert_eq!(
        redirects("nohost.example", "/"),
        Some(false),
        "host-less rules never redirect"
    );
    assert_eq!(redirects("a.example", "/out"), Some(false));
    assert_eq!(
        redirects("a.example", "/nginx"),
        Some(false),
        "the ingress-nginx alias, any case"
    );
    // An invalid value disables the Ingress's routes (503), never half a policy.
    let bad = built.table.lookup("a.example", "/bad").unwrap();
    assert!(
        matches!(bad.policy.filters[..], [Filter::Deny(_)]),
        "{:?}",
        bad.policy
    );
    assert_eq!(
        fields(&built),
        ["Ingress ns/bad metadata.annotations[vestibule.dev/ssl-redirect]"]
    );
    // A TLS host whose Secret is missing still speaks TLS (default certificate): still redirects.
    let built = build_all(
        Snapshot::default().with(
            ingress("ns/i")
                .tls("missing", &["m.example"])
                .host("m.example")
                .prefix("/", "s", 80),
        ),
    );
    assert_eq!(
        built
            .table
            .lookup("m.example", "/")
            .map(|r| r.redirects_to_https()),
        Some(true)
    );
}
