//! The annotation reader (values, errors, warnings) and the routing it leads to, each row
//! citing the ingress-nginx e2e test or document it comes from.
// Rows of test tables are tuples; naming each shape would hide the table.
#![allow(clippy::type_complexity)]

use super::*;
use crate::model::fixtures::ingress;

fn read_one(pairs: &[(&str, &str)]) -> Annotations {
    let mut b = ingress("ns/i");
    for (k, v) in pairs {
        b = b.annotate(k, v);
    }
    read(&b.build())
}

fn errors(a: &Annotations) -> Vec<&str> {
    a.findings
        .iter()
        .filter(|f| f.level == Level::Error)
        .map(|f| f.field.as_str())
        .collect()
}

#[test]
fn both_prefixes_are_read_and_ours_wins() {
    let a = read_one(&[("nginx.ingress.kubernetes.io/upstream-vhost", "a.test")]);
    assert_eq!(a.upstream_vhost.unwrap(), "a.test");
    let a = read_one(&[
        ("nginx.ingress.kubernetes.io/upstream-vhost", "a.test"),
        ("vestibule.dev/upstream-vhost", "b.test"),
    ]);
    assert_eq!(a.upstream_vhost.unwrap(), "b.test");
    assert!(a.findings.is_empty(), "{:?}", a.findings);
}

#[test]
fn values_that_do_not_parse_are_errors_naming_the_annotation() {
    // Rows: e2e proxy.go "should not set invalid proxy timeouts" ("50k") and "should not
    // set proxy client-max-body-size to incorrect value" ("15r"); the others follow the
    // annotation's documented type.
    let rows: &[(&str, &str)] = &[
        ("proxy-connect-timeout", "50k"),
        ("proxy-send-timeout", "20k"),
        ("proxy-read-timeout", "20k"),
        ("proxy-body-size", "15r"),
        ("ssl-redirect", "yes"),
        ("force-ssl-redirect", "on"),
        ("use-regex", "maybe"),
        ("permanent-redirect", "not a url"),
        ("permanent-redirect", "ftp://files.test/"),
        ("temporal-redirect", "/relative"),
        ("permanent-redirect-code", "abc"),
        ("app-root", "foo"),
        ("server-alias", "bad host!"),
        ("upstream-vhost", "two words"),
        ("proxy-next-upstream", "error sometimes"),
        ("proxy-next-upstream-tries", "-1"),
        ("proxy-next-upstream-timeout", "soon"),
        ("default-backend", "Not_A_Service"),
        ("custom-http-errors", "404,abc"),
        ("custom-http-errors", "200"),
        ("rewrite-target", "/$host/x"),
    ];
    for (name, value) in rows {
        let mut pairs = vec![(format!("{NGINX}{name}"), *value)];
        if name.ends_with("-code") {
            pairs.push((format!("{NGINX}permanent-redirect"), "https://x.test/"));
        }
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        let a = read_one(&pairs);
        assert_eq!(
            errors(&a),
            vec![format!("metadata.annotations[{NGINX}{name}]")],
            "{name}: {value}"
        );
    }
}

#[test]
fn valid_values() {
    // e2e proxy.go "should set valid proxy timeouts" and "should build proxy next upstream".
    let a = read_one(&[
        ("nginx.ingress.kubernetes.io/proxy-connect-timeout", "50"),
        ("nginx.ingress.kubernetes.io/proxy-send-timeout", "20"),
        ("nginx.ingress.kubernetes.io/proxy-read-timeout", "20"),
        (
            "nginx.ingress.kubernetes.io/proxy-next-upstream",
            "error timeout http_502",
        ),
        (
            "nginx.ingress.kubernetes.io/proxy-next-upstream-timeout",
            "999999",
        ),
        (
            "nginx.ingress.kubernetes.io/proxy-next-upstream-tries",
            "888888",
        ),
        ("nginx.ingress.kubernetes.io/proxy-body-size", "8m"),
        (
            "nginx.ingress.kubernetes.io/custom-http-errors",
            "404, 503,404",
        ),
        (
            "nginx.ingress.kubernetes.io/server-alias",
            "bar, *.baz.test",
        ),
    ]);
    assert!(a.findings.is_empty(), "{:?}", a.findings);
    assert_eq!(a.connect_timeout, Some(Duration::from_secs(50)));
    assert_eq!(a.send_timeout, Some(Duration::from_secs(20)));
    assert_eq!(a.read_timeout, Some(Duration::from_secs(20)));
    assert!(a.retry(None).on_error && a.retry(None).on_timeout);
    assert!(a.retry(None).on_status.contains(StatusCode::BAD_GATEWAY));
    assert!(
        !a.retry(None)
            .on_status
            .contains(StatusCode::SERVICE_UNAVAILABLE)
    );
    assert_eq!(a.retry(None).tries, 888888);
    assert_eq!(a.retry(None).timeout, Some(Duration::from_secs(999999)));
    assert_eq!(a.body_size, Some(Some(8 << 20)));
    assert_eq!(a.custom_http_errors, Some(vec![404, 503]));
    assert_eq!(a.aliases.len(), 2);
    let off = read_one(&[("nginx.ingress.kubernetes.io/proxy-next-upstream", "off")]);
    assert!(!off.retry(None).on_error && !off.retry(None).on_timeout);
}

#[test]
fn redirect_codes_follow_ingress_nginx() {
    // e2e redirect.go: 301 by default, permanent-redirect-code overrides it.
    let url = "http://redirect.example.com";
    let a = read_one(&[("nginx.ingress.kubernetes.io/permanent-redirect", url)]);
    assert_eq!(a.redirect.clone().unwrap().1, StatusCode::MOVED_PERMANENTLY);
    let a = read_one(&[
        ("nginx.ingress.kubernetes.io/permanent-redirect", url),
        ("nginx.ingress.kubernetes.io/permanent-redirect-code", "302"),
    ]);
    assert_eq!(a.redirect.clone().unwrap().1, StatusCode::FOUND);
    // Out of range: ingress-nginx falls back to 301; Vestibule says so.
    let a = read_one(&[
        ("nginx.ingress.kubernetes.io/permanent-redirect", url),
        ("nginx.ingress.kubernetes.io/permanent-redirect-code", "200"),
    ]);
    assert_eq!(a.redirect.clone().unwrap().1, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(a.findings[0].level, Level::Warning);
    // Temporal (302) wins over permanent, as in ingress-nginx's redirect parser.
    let a = read_one(&[
        ("nginx.ingress.kubernetes.io/permanent-redirect", url),
        (
            "nginx.ingress.kubernetes.io/temporal-redirect",
            "https://t.test/",
        ),
    ]);
    let (to, code) = a.redirect.unwrap();
    assert_eq!(
        (to.to_str().unwrap(), code),
        ("https://t.test/", StatusCode::FOUND)
    );
}

#[test]
fn unknown_annotations_and_snippets_are_warnings() {
    let a = read_one(&[
        ("nginx.ingress.kubernetes.io/enable-modsecurity", "true"),
        (
            "nginx.ingress.kubernetes.io/configuration-snippet",
            "more_set_headers x;",
        ),
        ("vestibule.dev/frobnicate", "1"),
        ("example.com/other", "x"),
    ]);
    let got: Vec<(&str, &str)> = a
        .findings
        .iter()
        .map(|f| (f.field.as_str(), f.reason.as_str()))
        .collect();
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(a.findings.iter().all(|f| f.level == Level::Warning));
    assert!(got.contains(&(
        "metadata.annotations[nginx.ingress.kubernetes.io/enable-modsecurity]",
        "ignored: not supported"
    )));
    assert!(got.iter().any(
        |(f, r)| f.contains("configuration-snippet") && r.contains("snippets are refused")
    ));
    assert!(a.denial().is_none());
}

#[test]
fn regex_paths_come_with_use_regex_or_rewrite_target() {
    assert!(!read_one(&[]).regex_paths());
    assert!(read_one(&[("nginx.ingress.kubernetes.io/use-regex", "true")]).regex_paths());
    assert!(read_one(&[("nginx.ingress.kubernetes.io/rewrite-target", "/")]).regex_paths());
    assert!(!read_one(&[("nginx.ingress.kubernetes.io/use-regex", "false")]).regex_paths());
}

// Routing with annotations: what a request ends up as, from the table alone.

use crate::model::fixtures::{service, slice};
use crate::model::policy::Filter;
use crate::model::{Built, Options, Snapshot, build};

const N: &str = "nginx.ingress.kubernetes.io/";

fn build_all(snapshot: Snapshot) -> Built {
    build(&snapshot.sorted(), &Options::default())
}

/// What a plain-HTTP `GET host path` comes to: `404`, `503 (denied)`, `<code> <location>`
/// for a redirect, or `<ingress> <path the pod gets>`.
fn outcome(built: &Built, host: &str, path: &str) -> String {
    let Some(route) = built.table.lookup(host, path) else {
        return "404".to_owned();
    };
    let mut sent = path.to_owned();
    for f in &route.policy.filters {
        match f {
            Filter::Deny(_) => return "503 (denied)".to_owned(),
            Filter::Redirect(r) => {
                if let Some(l) = r.to.location("http", host, path) {
                    return format!("{} {l}", r.code.as_u16());
                }
            }
            Filter::HttpsRedirect(code) => return format!("{} https", code.as_u16()),
            Filter::Rewrite(rw) => {
                match route.pattern.as_ref().and_then(|p| rw.apply(p, path, None)) {
                    Some(crate::model::policy::Rewritten::Path(p)) => sent = p,
                    Some(crate::model::policy::Rewritten::Redirect(u)) => {
                        return format!("302 {u}");
                    }
                    None => {}
                }
            }
            // The rest are not ingress-nginx's, or do not change where the request goes.
            _ => {}
        }
    }
    format!("{} {sent}", route.ingress.name)
}

/// An Ingress `name` for `host` with one Prefix (or ImplementationSpecific) path, annotated.
fn one(name: &str, host: &str, path: &str, annotations: &[(&str, &str)]) -> Ingress {
    let mut b = ingress(&format!("ns/{name}")).host(host);
    b = if path.contains(['(', '[', '+', '*', '.']) {
        b.implementation_specific(path, "svc", 80)
    } else {
        b.prefix(path, "svc", 80)
    };
    for (k, v) in annotations {
        b = b.annotate(&format!("{N}{k}"), v);
    }
    b.build()
}

#[test]
fn rewrites_and_regex_paths_follow_ingress_nginx() {
    // Each row: the Ingresses of one host, then requests and what they come to.
    let rows: &[(&str, &[(&str, &str, &[(&str, &str)])], &[(&str, &str)])] = &[
        // rewrite.go (v0.2x) "should rewrite request URL": lower and mixed case.
        (
            "rewrite.go should rewrite request URL",
            &[("rw", "/something", &[("rewrite-target", "/")])],
            &[
                ("/something", "rw /"),
                ("/SomeThing", "rw /"),
                ("/other", "404"),
            ],
        ),
        // rewrite.go "should use correct longest path match".
        (
            "rewrite.go should use correct longest path match",
            &[
                ("kube-lego", "/.well-known/acme/challenge", &[]),
                ("rewrite-index", "/", &[("rewrite-target", "/new/backend")]),
            ],
            &[
                (
                    "/.well-known/acme/challenge",
                    "kube-lego /.well-known/acme/challenge",
                ),
                ("/index", "rewrite-index /new/backend"),
            ],
        ),
        // rewrite.go "should use ~* location modifier if regex annotation is present".
        (
            "rewrite.go should use ~* location modifier",
            &[
                ("foo", "/foo", &[]),
                (
                    "regex",
                    "/foo.+",
                    &[("use-regex", "true"), ("rewrite-target", "/new/backend")],
                ),
            ],
            &[("/foo", "foo /foo"), ("/foo/bar", "regex /new/backend")],
        ),
        // rewrite.go "should fail to use longest match for documented warning": the longer
        // regex wins over the plain path of another Ingress.
        (
            "rewrite.go should fail to use longest match for documented warning",
            &[
                ("foo", "/foo/bar/bar", &[]),
                (
                    "regex",
                    "/foo/bar/[a-z]{3}",
                    &[("use-regex", "true"), ("rewrite-target", "/new/backend")],
                ),
            ],
            &[("/foo/bar/bar", "regex /new/backend")],
        ),
        // rewrite.go "should allow for custom rewrite parameters".
        (
            "rewrite.go should allow for custom rewrite parameters",
            &[(
                "regex",
                "/foo/bar/(.+)",
                &[("use-regex", "true"), ("rewrite-target", "/new/backend/$1")],
            )],
            &[
                ("/foo/bar/bar", "regex /new/backend/bar"),
                ("/foo/bar/", "404"),
            ],
        ),
        // docs/examples/rewrite: /something(/|$)(.*) → /$2.
        (
            "examples/rewrite/README.md",
            &[("rw", "/something(/|$)(.*)", &[("rewrite-target", "/$2")])],
            &[
                ("/something", "rw /"),
                ("/something/", "rw /"),
                ("/something/new", "rw /new"),
            ],
        ),
        // annotations.md "Use Regex": once one Ingress of a host uses regex paths, every path
        // of the host is a case-insensitive prefix regex, so a plain `/foo` takes `/FOObar`.
        (
            "annotations.md use-regex applies to every path of the host",
            &[
                ("plain", "/foo", &[]),
                ("regex", "/api/.*", &[("use-regex", "true")]),
            ],
            &[("/FOObar", "plain /FOObar"), ("/api/x", "regex /api/x")],
        ),
        // Without regex paths on the host, the same plain path keeps Ingress semantics.
        (
            "Ingress Prefix semantics without regex",
            &[("plain", "/foo", &[])],
            &[("/foobar", "404"), ("/foo/bar", "plain /foo/bar")],
        ),
    ];
    for (source, ingresses, requests) in rows {
        let mut snapshot = Snapshot::default();
        for (name, path, annotations) in *ingresses {
            snapshot = snapshot.with(one(name, "rewrite.bar.com", path, annotations));
        }
        let built = build_all(snapshot);
        for (path, expected) in *requests {
            assert_eq!(
                outcome(&built, "rewrite.bar.com", path),
                *expected,
                "{source}: {path}"
            );
        }
    }
}

#[test]
fn redirects_follow_ingress_nginx() {
    let host = "redirect.test";
    let rows: &[(&str, &[(&str, &str)], &str, &str)] = &[
        // redirect.go "should respond with a standard redirect code".
        (
            "redirect.go standard code",
            &[("permanent-redirect", "http://redirect.example.com")],
            "/something",
            "301 http://redirect.example.com",
        ),
        // redirect.go "should respond with a custom redirect code".
        (
            "redirect.go custom code",
            &[
                ("permanent-redirect", "http://redirect.example.com"),
                ("permanent-redirect-code", "302"),
            ],
            "/something",
            "302 http://redirect.example.com",
        ),
        // annotations.md "Temporal Redirect": 302.
        (
            "annotations.md temporal-redirect",
            &[("temporal-redirect", "https://www.google.com")],
            "/x",
            "302 https://www.google.com",
        ),
        (
            "temporal-redirect-code",
            &[
                ("temporal-redirect", "https://t.test/"),
                ("temporal-redirect-code", "307"),
            ],
            "/x",
            "307 https://t.test/",
        ),
        // approot.go "should redirect to /foo": only `/` is redirected.
        (
            "approot.go",
            &[("app-root", "/foo")],
            "/",
            "302 http://redirect.test/foo",
        ),
        (
            "approot.go, other paths",
            &[("app-root", "/foo")],
            "/foo",
            "i /foo",
        ),
        // forcesslredirect.go: redirect to https without TLS on the host.
        (
            "forcesslredirect.go",
            &[("force-ssl-redirect", "true")],
            "/",
            "308 https",
        ),
        (
            "ssl-redirect without TLS",
            &[("ssl-redirect", "true")],
            "/",
            "i /",
        ),
    ];
    for (source, annotations, path, expected) in rows {
        let built = build_all(Snapshot::default().with(one("i", host, "/", annotations)));
        assert_eq!(outcome(&built, host, path), *expected, "{source}");
    }
}

#[test]
fn www_redirects_and_aliases_act_on_the_host() {
    // fromtowwwredirect.go "should redirect from www HTTP to HTTP".
    let host = "fromtowwwredirect.bar.com";
    let built = build_all(Snapshot::default().with(one(
        "i",
        host,
        "/",
        &[("from-to-www-redirect", "true")],
    )));
    assert_eq!(
        outcome(&built, "www.fromtowwwredirect.bar.com", "/foo"),
        "308 http://fromtowwwredirect.bar.com/foo"
    );
    assert_eq!(outcome(&built, host, "/foo"), "i /foo");
    // And the other way round: an Ingress for www. redirects the bare name to it.
    let built = build_all(Snapshot::default().with(one(
        "i",
        "www.shop.test",
        "/",
        &[("from-to-www-redirect", "true")],
    )));
    assert_eq!(
        outcome(&built, "shop.test", "/a?b"),
        "308 http://www.shop.test/a?b"
    );
    // annotations.md: a host that has its own Ingress is not redirected.
    let built = build_all(
        Snapshot::default()
            .with(one(
                "i",
                "shop.test",
                "/",
                &[("from-to-www-redirect", "true")],
            ))
            .with(one("www", "www.shop.test", "/", &[])),
    );
    assert_eq!(outcome(&built, "www.shop.test", "/"), "www /");
    assert!(
        built
            .diagnostics
            .iter()
            .any(|d| d.is_warning() && d.reason.contains("rules of its own"))
    );

    // alias.go "should return status code 200 for host 'foo' and 404 for 'bar'".
    let built = build_all(Snapshot::default().with(one("foo", "foo", "/", &[])));
    assert_eq!(outcome(&built, "bar", "/"), "404");
    // alias.go "should return status code 200 for host 'foo' and 'bar'".
    let built =
        build_all(Snapshot::default().with(one("foo", "foo", "/", &[("server-alias", "bar")])));
    assert_eq!(outcome(&built, "bar", "/"), "foo /");
    // alias.go "...hosts defined in two ingresses, different path with one alias": the alias
    // takes the whole host, the other Ingress's paths too.
    let built = build_all(
        Snapshot::default()
            .with(one("app-a", "foo", "/app-a", &[]))
            .with(one("app-b", "foo", "/app-b", &[("server-alias", "bar")])),
    );
    assert_eq!(outcome(&built, "bar", "/app-a"), "app-a /app-a");
    assert_eq!(outcome(&built, "bar", "/app-b"), "app-b /app-b");
    // annotations.md "Server Alias": an alias that is a host of its own is ignored.
    let built = build_all(
        Snapshot::default()
            .with(one("foo", "foo", "/", &[("server-alias", "bar")]))
            .with(one("bar", "bar", "/", &[])),
    );
    assert_eq!(outcome(&built, "bar", "/"), "bar /");
}

#[test]
fn a_bad_annotation_disables_only_its_own_ingress() {
    let built = build_all(
        Snapshot::default()
            .with(one(
                "bad",
                "shop.test",
                "/bad",
                &[("proxy-body-size", "15r")],
            ))
            .with(one("good", "shop.test", "/good", &[])),
    );
    assert_eq!(outcome(&built, "shop.test", "/bad"), "503 (denied)");
    assert_eq!(outcome(&built, "shop.test", "/good"), "good /good");
    let d: Vec<String> = built
        .diagnostics
        .iter()
        .filter(|d| !d.is_warning())
        .map(|d| d.to_string())
        .collect();
    assert!(
        d.contains(&"Ingress ns/bad: metadata.annotations[nginx.ingress.kubernetes.io/proxy-body-size]: \"15r\" is not a size (digits with k, m or g); the Ingress's routes answer 503".to_owned()),
        "{d:?}"
    );
    // Warnings never disable anything.
    let built = build_all(Snapshot::default().with(one(
        "w",
        "shop.test",
        "/",
        &[("configuration-snippet", "x")],
    )));
    assert_eq!(outcome(&built, "shop.test", "/"), "w /");
    let about_annotations = built
        .diagnostics
        .iter()
        .filter(|d| d.field.contains("annotations"));
    assert!(
        about_annotations.clone().count() == 1 && about_annotations.clone().all(|d| d.is_warning())
    );
}

#[test]
fn route_ids_survive_rebuilds_and_differ_per_rule() {
    let snapshot = || {
        Snapshot::default().with(
            ingress("ns/i")
                .host("a.test")
                .prefix("/a", "svc", 80)
                .prefix("/b", "svc", 80)
                .build(),
        )
    };
    let one = build_all(snapshot());
    let two = build_all(
        snapshot().with(
            ingress("ns/other")
                .host("z.test")
                .prefix("/", "svc", 80)
                .build(),
        ),
    );
    let id = |b: &Built, p| b.table.lookup("a.test", p).unwrap().id;
    assert_eq!(id(&one, "/a"), id(&two, "/a"));
    assert_ne!(id(&one, "/a"), id(&one, "/b"));
}

#[test]
fn body_limits_timeouts_retries_and_fallbacks_land_in_the_policy() {
    let built = build(
        &Snapshot::default()
            .with(one(
                "i",
                "p.test",
                "/",
                &[
                    ("proxy-body-size", "8m"),
                    ("proxy-read-timeout", "20"),
                    ("default-backend", "errors"),
                    ("custom-http-errors", "404,503"),
                    ("upstream-vhost", "inner.test"),
                    ("x-forwarded-prefix", "/p"),
                ],
            ))
            .with(one("plain", "q.test", "/", &[]))
            .with(service("ns/errors").port("web", 8080).build())
            .with(
                slice("ns/errors-1", "errors")
                    .port("web", 8080)
                    .ready("10.0.0.9")
                    .build(),
            )
            .sorted(),
        &Options::default(),
    );
    let route = built.table.lookup("p.test", "/").unwrap();
    let p = &route.policy;
    assert_eq!(p.body_limit(), Some(8 << 20));
    assert_eq!(
        p.upstream.read_timeout,
        Some(std::time::Duration::from_secs(20))
    );
    let fallback = p
        .upstream
        .fallback
        .as_ref()
        .expect("default-backend resolved");
    assert_eq!(
        fallback.resolved().endpoints.targets.len(),
        1,
        "its first port, as ingress-nginx"
    );
    assert_eq!(p.errors.as_ref().unwrap().codes, vec![404, 503]);
    let names: Vec<&str> = p.filters.iter().map(|f| f.name()).collect();
    assert_eq!(names, ["body-limit", "set-header", "set-header"]);
    // A plain route gets the global default limit (1m) and nothing else.
    let plain = built.table.lookup("q.test", "/").unwrap();
    assert_eq!(plain.policy.body_limit(), Some(1 << 20));
    assert_eq!(plain.policy.filters.len(), 1);
    assert!(plain.policy.upstream.fallback.is_none() && plain.policy.errors.is_none());
}

#[test]
fn a_path_that_is_no_regex_on_a_regex_host_is_diagnosed_alone() {
    // The host's paths are regexes (one Ingress has use-regex); `/a(` is not one.
    let built = build_all(
        Snapshot::default()
            .with(one("regex", "r.test", "/api/.*", &[("use-regex", "true")]))
            .with(one("broken", "r.test", "/a(", &[]))
            .with(one("rw", "w.test", "/b(", &[("rewrite-target", "/")])),
    );
    assert_eq!(outcome(&built, "r.test", "/api/x"), "regex /api/x");
    assert_eq!(outcome(&built, "r.test", "/a("), "404");
    let mut paths: Vec<String> = built
        .diagnostics
        .iter()
        .filter(|d| d.field.ends_with(".path"))
        .map(|d| format!("{} {}", d.object, d.field))
        .collect();
    paths.sort();
    assert_eq!(
        paths,
        [
            "Ingress ns/broken spec.rules[0].http.paths[0].path",
            "Ingress ns/rw spec.rules[0].http.paths[0].path"
        ]
    );
}

/// An Opaque Secret `ns/name` with `data`.
fn opaque(ns_name: &str, data: &[(&str, &str)]) -> k8s_openapi::api::core::v1::Secret {
    let (ns, name) = ns_name.split_once('/').unwrap();
    k8s_openapi::api::core::v1::Secret {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            namespace: Some(ns.into()),
            name: Some(name.into()),
            ..Default::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| {
                    (
                        k.to_string(),
                        k8s_openapi::ByteString(v.as_bytes().to_vec()),
                    )
                })
                .collect(),
        ),
        type_: Some("Opaque".into()),
        ..Default::default()
    }
}

const USERS: &str = "foo:$apr1$63JlJ2NH$smE0mnB5h3tDri0zkpWXt1\n";

fn access_of(built: &Built, host: &str) -> Option<std::sync::Arc<crate::model::access::Access>> {
    built.table.lookup(host, "/").unwrap().policy.access.clone()
}

// annotations/auth.go: "should return status code 503 when authentication is configured with
// an invalid secret"; a Secret of the Ingress's namespace by name, another by namespace/name.
#[test]
fn basic_auth_reads_the_named_secret_and_a_missing_one_denies() {
    let basic = |secret: &str| {
        one(
            "a",
            "auth.test",
            "/",
            &[
                ("auth-type", "basic"),
                ("auth-secret", secret),
                ("auth-realm", "test auth"),
            ],
        )
    };
    let snapshot = Snapshot::default()
        .with(basic("users"))
        .with(service("ns/svc").port("http", 80))
        .with(opaque("ns/users", &[("auth", USERS)]));
    let built = build(&snapshot, &Options::default());
    let access = access_of(&built, "auth.test").expect("protected");
    let users = access.basic.as_ref().unwrap();
    assert_eq!(users.realm, "test auth");
    assert_eq!(users.secret.to_string(), "Secret ns/users");

    let missing = Snapshot::default()
        .with(basic("something"))
        .with(service("ns/svc").port("http", 80));
    let built = build(&missing, &Options::default());
    assert_eq!(outcome(&built, "auth.test", "/"), "503 (denied)");
    let d = &built.diagnostics[0];
    assert_eq!(
        d.field,
        "metadata.annotations[nginx.ingress.kubernetes.io/auth-secret]"
    );
    assert!(
        d.reason.contains("Secret ns/something not found"),
        "{}",
        d.reason
    );

    // annotations/auth.go "...invalid content...": `foo:` has no hash.
    let bad = Snapshot::default()
        .with(basic("users"))
        .with(service("ns/svc").port("http", 80))
        .with(opaque("ns/users", &[("auth", "foo:")]));
    let built = build(&bad, &Options::default());
    assert_eq!(outcome(&built, "auth.test", "/"), "503 (denied)");

    // Another namespace, allowed by default and forbidden by the flag.
    let other = Snapshot::default()
        .with(basic("shared/users"))
        .with(service("ns/svc").port("http", 80))
        .with(opaque("shared/users", &[("auth", USERS)]));
    assert!(access_of(&build(&other, &Options::default()), "auth.test").is_some());
    let strict = Options {
        cross_namespace_secrets: false,
        ..Options::default()
    };
    assert_eq!(
        outcome(&build(&other, &strict), "auth.test", "/"),
        "503 (denied)"
    );
}

// annotations/auth.go "with invalid auth-url should deny whole location"; ipwhitelist.go and
// the ConfigMap's global lists; satisfy.go; cors.go defaults; limit annotations.
#[test]
fn access_annotations_parse_as_ingress_nginx() {
    let invalid = read_one(&[(
        "nginx.ingress.kubernetes.io/auth-url",
        "https://invalid..auth.url",
    )]);
    assert_eq!(
        errors(&invalid),
        ["metadata.annotations[nginx.ingress.kubernetes.io/auth-url]"]
    );
    let templated = read_one(&[("nginx.ingress.kubernetes.io/auth-url", "http://$host/auth")]);
    assert_eq!(errors(&templated).len(), 1);
    let ok = read_one(&[
        (
            "nginx.ingress.kubernetes.io/auth-url",
            "http://auth.test:8080/check?x=1",
        ),
        (
            "nginx.ingress.kubernetes.io/auth-signin",
            "http://$host/auth/start",
        ),
        (
            "nginx.ingress.kubernetes.io/auth-response-headers",
            "X-User, X-Email",
        ),
        (
            "nginx.ingress.kubernetes.io/auth-cache-key",
            "$http_authorization",
        ),
        (
            "nginx.ingress.kubernetes.io/auth-cache-duration",
            "200 202 401 30m",
        ),
        (
            "nginx.ingress.kubernetes.io/whitelist-source-range",
            "10.0.0.0/8, 2001:db8::/32",
        ),
        ("nginx.ingress.kubernetes.io/satisfy", "any"),
        ("nginx.ingress.kubernetes.io/enable-cors", "true"),
        ("nginx.ingress.kubernetes.io/limit-rps", "5"),
        ("nginx.ingress.kubernetes.io/limit-whitelist", "127.0.0.1"),
    ]);
    assert!(ok.findings.is_empty(), "{:?}", ok.findings);
    let external = ok.external_auth.as_ref().unwrap();
    assert_eq!(external.response_headers.len(), 2);
    assert_eq!(external.redirect_param, "rd");
    let cache = external.cache.as_ref().unwrap();
    assert_eq!(cache.statuses, [200, 202, 401]);
    assert_eq!(cache.duration, Duration::from_secs(1800));
    assert!(ok.satisfy_any);
    let cors = ok.cors.as_ref().unwrap();
    assert_eq!(cors.methods, CORS_METHODS);
    assert_eq!(cors.headers, CORS_HEADERS);
    assert_eq!(cors.max_age, CORS_MAX_AGE);
    assert!(cors.credentials);
    let limits = ok.limits.as_ref().unwrap();
    assert_eq!((limits.rps, limits.burst_multiplier), (Some(5), 5));
    for (name, value) in [
        ("whitelist-source-range", "10.0.0.0/33"),
        ("denylist-source-range", "nonsense"),
        ("limit-rps", "-1"),
        ("limit-connections", "many"),
        ("satisfy", "some"),
        ("auth-tls-secret", "Not A Name"),
        ("auth-type", "digest"),
    ] {
        let a = read_one(&[(&format!("{N}{name}"), value)]);
        assert_eq!(errors(&a).len(), 1, "{name}: {value}: {:?}", a.findings);
    }
}

// configmap.md whitelist-source-range: the global list guards routes without their own.
#[test]
fn the_configmaps_address_lists_guard_every_route_without_its_own() {
    let snapshot = Snapshot::default()
        .with(one("plain", "plain.test", "/", &[]))
        .with(one(
            "own",
            "own.test",
            "/",
            &[("whitelist-source-range", "192.168.0.0/16")],
        ))
        .with(service("ns/svc").port("http", 80));
    let options = Options {
        global: crate::model::settings::Global {
            allow: Some(crate::model::client::IpSet::parse("10.0.0.0/8").unwrap()),
            ..Default::default()
        },
        ..Options::default()
    };
    let built = build(&snapshot, &options);
    let ip = |s: &str| s.parse().unwrap();
    use crate::model::access::AddressVerdict::*;
    let plain = access_of(&built, "plain.test").unwrap();
    assert_eq!(plain.address(ip("10.1.1.1")), Allowed);
    assert_eq!(plain.address(ip("192.168.1.1")), Denied);
    let own = access_of(&built, "own.test").unwrap();
    assert_eq!(own.address(ip("10.1.1.1")), Denied);
    assert_eq!(own.address(ip("192.168.1.1")), Allowed);
    assert!(access_of(&build(&snapshot, &Options::default()), "plain.test").is_none());
}

// annotations/canary.go: the canary Ingress's path becomes the main route's alternative;
// without a main route it serves nothing; a second canary of the same path is not used; a
// weight above the total is an error and leaves the main route alone.
#[test]
fn canaries_attach_to_their_main_route() {
    let canary = |name: &str, host: &str, weight: &str| {
        one(
            name,
            host,
            "/",
            &[("canary", "true"), ("canary-weight", weight)],
        )
    };
    let snapshot = Snapshot::default()
        .with(one("main", "foo.test", "/", &[]))
        .with(canary("canary", "foo.test", "20"))
        .with(canary("second", "foo.test", "30"))
        .with(canary("orphan", "orphan.test", "10"))
        .with(canary("heavy", "heavy.test", "101"))
        .with(one("heavy-main", "heavy.test", "/", &[]))
        .with(service("ns/svc").port("http", 80));
    let built = build(&snapshot, &Options::default());
    let main = built.table.lookup("foo.test", "/").unwrap();
    assert_eq!(main.ingress.name, "main");
    let c = main.canary.as_ref().expect("a canary");
    assert_eq!((c.ingress.name.as_str(), c.rule.weight), ("canary", 20));
    assert!(built.table.lookup("orphan.test", "/").is_none());
    assert!(
        built
            .table
            .lookup("heavy.test", "/")
            .unwrap()
            .canary
            .is_none()
    );
    let reasons: Vec<String> = built
        .diagnostics
        .iter()
        .map(|d| format!("{}: {}", d.object, d.reason))
        .collect();
    let has = |s: &str| reasons.iter().any(|r| r.contains(s));
    assert!(
        has("Ingress ns/orphan: no main Ingress routes orphan.test/"),
        "{reasons:?}"
    );
    assert!(
        has("Ingress ns/second: host foo.test path / already has the canary of Ingress ns/canary"),
        "{reasons:?}"
    );
    assert!(
        has("Ingress ns/heavy: 101 is more than the total (100)"),
        "{reasons:?}"
    );
}

// annotations/serviceupstream.go: with service-upstream the route sends to the Service's
// cluster IP and port; without, to its endpoints.
#[test]
fn service_upstream_sends_to_the_cluster_ip() {
    use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
    let svc = Service {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            namespace: Some("ns".into()),
            name: Some("svc".into()),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            cluster_ip: Some("10.96.0.10".into()),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: 80,
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    };
    let snapshot = Snapshot::default()
        .with(one(
            "direct",
            "direct.test",
            "/",
            &[("service-upstream", "true")],
        ))
        .with(one("pods", "pods.test", "/", &[]))
        .with(svc)
        .with(
            slice("ns/svc-1", "svc")
                .port("http", 8080)
                .ready("10.0.0.1")
                .build(),
        );
    let built = build(&snapshot, &Options::default());
    let targets = |host: &str| {
        let r = built.table.lookup(host, "/").unwrap();
        r.backend()
            .resolved()
            .endpoints
            .targets
            .iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(targets("direct.test"), ["10.96.0.10:80"]);
    assert_eq!(targets("pods.test"), ["10.0.0.1:8080"]);
}
