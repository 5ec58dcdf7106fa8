//! The Gateway API through the real proxy in file mode: the conformance suite's HTTPRoute
//! tests (kubernetes-sigs/gateway-api `conformance/tests/<name>.{yaml,go}`, named in each
//! test) on its base objects, with echo backends on loopback standing in for its pods.
//! Routing choices alone are pinned at the model (`src/model/gateway/tests.rs`); these check
//! what travels: redirects, rewrites, headers, weights, mirrors, timeouts, TLS, reloads.

mod support;

use http::{Request, StatusCode};
use http_body_util::Full;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use support::tls::{Ca, Hello, connect, get_over, secret_yaml};
use support::*;

const BASE: &str = include_str!("fixtures/gateway/base.yaml");
const INFRA: &str = "gateway-conformance-infra";

/// The suite's backend Services, each with one echo pod named after it.
async fn backends() -> String {
    let mut text = String::new();
    for (ns, name, port) in [
        (INFRA, "infra-backend-v1", "first-port"),
        (INFRA, "infra-backend-v2", ""),
        (INFRA, "infra-backend-v3", ""),
        ("gateway-conformance-web-backend", "web-backend", ""),
    ] {
        let addr = backend(name).await;
        text.push_str(&slice(ns, name, port, addr));
    }
    text
}

fn slice(ns: &str, service: &str, port_name: &str, addr: SocketAddr) -> String {
    format!(
        "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: {service}-{}, namespace: {ns}, labels: {{kubernetes.io/service-name: {service}}}}}\naddressType: IPv4\nports: [{{name: \"{port_name}\", port: {}}}]\nendpoints: [{{addresses: [\"{}\"]}}]\n",
        addr.port(),
        addr.port(),
        addr.ip()
    )
}

/// Vestibule on the base objects, the backends, and `yaml` (one file each).
async fn start(yaml: &str, extra: &[&str]) -> (tempfile::TempDir, Vestibule) {
    let dir = manifest_dir();
    write_atomic(dir.path(), "base.yaml", BASE);
    write_atomic(dir.path(), "backends.yaml", &backends().await);
    write_atomic(dir.path(), "case.yaml", yaml);
    let v = Vestibule::start(dir.path(), extra);
    (dir, v)
}

async fn request(
    addr: SocketAddr,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Answer {
    let mut req = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"))
        .header("host", host);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    send(addr, req.body(Full::default()).unwrap()).await
}

fn location(a: &Answer) -> &str {
    a.headers
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn header_seen(a: &Answer, name: &str) -> Option<String> {
    a.json()["headers"][name].as_str().map(str::to_owned)
}

#[tokio::test]
async fn redirects_path_port_scheme_host_and_status() {
    // httproute-redirect-path.yaml (as upstream), -redirect-port and -redirect-scheme (the
    // rules their .go rows ask for), each on a hostname of its own.
    let yaml = "apiVersion: gateway.networking.k8s.io/v1beta1
kind: HTTPRoute
metadata: {name: redirect-path, namespace: gateway-conformance-infra}
spec:
  parentRefs: [{name: same-namespace}]
  hostnames: [path.test]
  rules:
  - matches: [{path: {type: PathPrefix, value: /original-prefix}}]
    filters: [{type: RequestRedirect, requestRedirect: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /replacement-prefix}}}]
  - matches: [{path: {type: PathPrefix, value: /full}}]
    filters: [{type: RequestRedirect, requestRedirect: {path: {type: ReplaceFullPath, replaceFullPath: /full-path-replacement}}}]
  - matches: [{path: {type: PathPrefix, value: /path-and-host}}]
    filters: [{type: RequestRedirect, requestRedirect: {hostname: example.org, path: {type: ReplacePrefixMatch, replacePrefixMatch: /replacement-prefix}}}]
  - matches: [{path: {type: PathPrefix, value: /path-and-status}}]
    filters: [{type: RequestRedirect, requestRedirect: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /replacement-prefix}, statusCode: 301}}]
  - matches: [{path: {type: PathPrefix, value: /full-path-and-host}}]
    filters: [{type: RequestRedirect, requestRedirect: {hostname: example.org, path: {type: ReplaceFullPath, replaceFullPath: /replacement-full}}}]
  - matches: [{path: {type: PathPrefix, value: /full-path-and-status}}]
    filters: [{type: RequestRedirect, requestRedirect: {path: {type: ReplaceFullPath, replaceFullPath: /replacement-full}, statusCode: 301}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: redirect-port, namespace: gateway-conformance-infra}
spec:
  parentRefs: [{name: same-namespace}]
  hostnames: [port.test]
  rules:
  - matches: [{path: {type: PathPrefix, value: /port}}]
    filters: [{type: RequestRedirect, requestRedirect: {port: 8083}}]
  - matches: [{path: {type: PathPrefix, value: /port-and-host}}]
    filters: [{type: RequestRedirect, requestRedirect: {hostname: example.org, port: 8083}}]
  - matches: [{path: {type: PathPrefix, value: /port-and-status}}]
    filters: [{type: RequestRedirect, requestRedirect: {port: 8083, statusCode: 301}}]
  - matches: [{path: {type: PathPrefix, value: /port-and-host-and-status}}]
    filters: [{type: RequestRedirect, requestRedirect: {port: 8083, hostname: example.org, statusCode: 302}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: redirect-scheme, namespace: gateway-conformance-infra}
spec:
  parentRefs: [{name: same-namespace}]
  hostnames: [scheme.test]
  rules:
  - matches: [{path: {type: PathPrefix, value: /scheme}}]
    filters: [{type: RequestRedirect, requestRedirect: {scheme: https}}]
  - matches: [{path: {type: PathPrefix, value: /scheme-and-host}}]
    filters: [{type: RequestRedirect, requestRedirect: {scheme: https, hostname: example.org}}]
  - matches: [{path: {type: PathPrefix, value: /scheme-and-status}}]
    filters: [{type: RequestRedirect, requestRedirect: {scheme: https, statusCode: 301}}]
  - matches: [{path: {type: PathPrefix, value: /scheme-and-host-and-status}}]
    filters: [{type: RequestRedirect, requestRedirect: {scheme: https, hostname: example.org, statusCode: 302}}]
  - matches: [{path: {type: PathPrefix, value: /303}}]
    filters: [{type: RequestRedirect, requestRedirect: {scheme: https, statusCode: 303}}]
  - matches: [{path: {type: PathPrefix, value: /307}}]
    filters: [{type: RequestRedirect, requestRedirect: {scheme: https, statusCode: 307}}]
  - matches: [{path: {type: PathPrefix, value: /308}}]
    filters: [{type: RequestRedirect, requestRedirect: {scheme: https, statusCode: 308}}]
";
    let (_dir, v) = start(yaml, &[]).await;
    let rows = [
        (
            "path.test",
            "/original-prefix/lemon",
            302,
            "http://path.test/replacement-prefix/lemon",
        ),
        (
            "path.test",
            "/full/path/original",
            302,
            "http://path.test/full-path-replacement",
        ),
        (
            "path.test",
            "/path-and-host",
            302,
            "http://example.org/replacement-prefix",
        ),
        (
            "path.test",
            "/path-and-status",
            301,
            "http://path.test/replacement-prefix",
        ),
        (
            "path.test",
            "/full-path-and-host",
            302,
            "http://example.org/replacement-full",
        ),
        (
            "path.test",
            "/full-path-and-status",
            301,
            "http://path.test/replacement-full",
        ),
        // The query is kept.
        (
            "path.test",
            "/original-prefix/a?x=1",
            302,
            "http://path.test/replacement-prefix/a?x=1",
        ),
        ("port.test", "/port", 302, "http://port.test:8083/port"),
        (
            "port.test",
            "/port-and-host",
            302,
            "http://example.org:8083/port-and-host",
        ),
        (
            "port.test",
            "/port-and-status",
            301,
            "http://port.test:8083/port-and-status",
        ),
        (
            "port.test",
            "/port-and-host-and-status",
            302,
            "http://example.org:8083/port-and-host-and-status",
        ),
        ("scheme.test", "/scheme", 302, "https://scheme.test/scheme"),
        (
            "scheme.test",
            "/scheme-and-host",
            302,
            "https://example.org/scheme-and-host",
        ),
        (
            "scheme.test",
            "/scheme-and-status",
            301,
            "https://scheme.test/scheme-and-status",
        ),
        (
            "scheme.test",
            "/scheme-and-host-and-status",
            302,
            "https://example.org/scheme-and-host-and-status",
        ),
        ("scheme.test", "/303", 303, "https://scheme.test/303"),
        ("scheme.test", "/307", 307, "https://scheme.test/307"),
        ("scheme.test", "/308", 308, "https://scheme.test/308"),
        // The client's port in Host is not the listener's: the redirect takes the listener
        // port (80, the default, so none), never the socket's.
        (
            "path.test:1234",
            "/path-and-status",
            301,
            "http://path.test/replacement-prefix",
        ),
    ];
    for (host, path, status, want) in rows {
        let a = request(v.http, "GET", host, path, &[]).await;
        assert_eq!(
            (a.status.as_u16(), location(&a)),
            (status, want),
            "{host}{path}"
        );
    }
}

#[tokio::test]
async fn a_redirect_without_port_keeps_the_listener_port() {
    // HTTPRequestRedirectFilter.Port: no scheme, no port → the Gateway listener's port, here
    // 8080 mapped onto the http socket (--gateway-http-port).
    let yaml = "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: on-8080, namespace: gateway-conformance-infra}
spec:
  gatewayClassName: vestibule
  listeners: [{name: http, port: 8080, protocol: HTTP}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: hop, namespace: gateway-conformance-infra}
spec:
  parentRefs: [{name: on-8080}]
  hostnames: [hop.test]
  rules:
  - filters: [{type: RequestRedirect, requestRedirect: {hostname: example.org}}]
";
    let (_dir, v) = start(yaml, &["--gateway-http-port", "8080"]).await;
    let a = request(v.http, "GET", "hop.test", "/x", &[]).await;
    assert_eq!(
        (a.status, location(&a)),
        (StatusCode::FOUND, "http://example.org:8080/x")
    );
}

#[tokio::test]
async fn rewrites_path_and_host_with_header_changes() {
    // httproute-rewrite-path.{yaml,go} (as upstream); httproute-rewrite-host (rules written
    // to its rows).
    let yaml = "apiVersion: gateway.networking.k8s.io/v1beta1
kind: HTTPRoute
metadata: {name: rewrite-path, namespace: gateway-conformance-infra}
spec:
  parentRefs: [{name: same-namespace}]
  hostnames: [rewrite.test]
  rules:
  - matches: [{path: {type: PathPrefix, value: /prefix/one}}]
    filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /one}}}]
    backendRefs: [{name: infra-backend-v1, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /strip-prefix}}]
    filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /}}}]
    backendRefs: [{name: infra-backend-v1, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /full/one}}]
    filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplaceFullPath, replaceFullPath: /one}}}]
    backendRefs: [{name: infra-backend-v1, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /full/rewrite-path-and-modify-headers}}]
    filters:
    - {type: URLRewrite, urlRewrite: {path: {type: ReplaceFullPath, replaceFullPath: /test}}}
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set: [{name: X-Header-Set, value: set-overwrites-values}]
        add: [{name: X-Header-Add, value: header-val-1}, {name: X-Header-Add-Append, value: header-val-2}]
        remove: [X-Header-Remove]
    backendRefs: [{name: infra-backend-v1, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /prefix/rewrite-path-and-modify-headers}}]
    filters:
    - {type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /prefix}}}
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set: [{name: X-Header-Set, value: set-overwrites-values}]
        add: [{name: X-Header-Add, value: header-val-1}, {name: X-Header-Add-Append, value: header-val-2}]
        remove: [X-Header-Remove]
    backendRefs: [{name: infra-backend-v1, port: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: rewrite-host, namespace: gateway-conformance-infra}
spec:
  parentRefs: [{name: same-namespace}]
  hostnames: [rewrite.example]
  rules:
  - matches: [{path: {type: PathPrefix, value: /one}}]
    filters: [{type: URLRewrite, urlRewrite: {hostname: one.example.org}}]
    backendRefs: [{name: infra-backend-v1, port: 8080}]
  - filters: [{type: URLRewrite, urlRewrite: {hostname: example.org}}]
    backendRefs: [{name: infra-backend-v2, port: 8080}]
";
    let (_dir, v) = start(yaml, &[]).await;
    for (path, want) in [
        ("/prefix/one/two", "/one/two"),
        ("/strip-prefix/three", "/three"),
        ("/strip-prefix", "/"),
        ("/full/one/two", "/one"),
    ] {
        let a = request(v.http, "GET", "rewrite.test", path, &[]).await;
        assert_eq!(
            (a.backend(), a.json()["path"].as_str().unwrap_or("")),
            ("infra-backend-v1".to_owned(), want),
            "{path}"
        );
    }
    let sent = [
        ("X-Header-Remove", "remove-val"),
        ("X-Header-Add-Append", "append-val-1"),
        ("X-Header-Set", "set-val"),
    ];
    for (path, want) in [
        ("/full/rewrite-path-and-modify-headers/test", "/test"),
        ("/prefix/rewrite-path-and-modify-headers/one", "/prefix/one"),
    ] {
        let a = request(v.http, "GET", "rewrite.test", path, &sent).await;
        assert_eq!(a.json()["path"], want, "{path}");
        assert_eq!(
            header_seen(&a, "x-header-add").as_deref(),
            Some("header-val-1")
        );
        assert_eq!(
            header_seen(&a, "x-header-add-append").as_deref(),
            Some("append-val-1,header-val-2")
        );
        assert_eq!(
            header_seen(&a, "x-header-set").as_deref(),
            Some("set-overwrites-values")
        );
        assert_eq!(header_seen(&a, "x-header-remove"), None);
    }
    // The query survives a rewrite.
    let a = request(v.http, "GET", "rewrite.test", "/prefix/one/two?q=1", &[]).await;
    assert_eq!(
        (a.json()["path"].as_str(), a.json()["query"].as_str()),
        (Some("/one/two"), Some("q=1"))
    );
    // Host rewrites: the pod sees the new Host, the path unchanged.
    let a = request(v.http, "GET", "rewrite.example", "/one", &[]).await;
    assert_eq!(
        (a.backend().as_str(), header_seen(&a, "host").as_deref()),
        ("infra-backend-v1", Some("one.example.org"))
    );
    let a = request(v.http, "GET", "rewrite.example", "/two", &[]).await;
    assert_eq!(
        (a.backend().as_str(), header_seen(&a, "host").as_deref()),
        ("infra-backend-v2", Some("example.org"))
    );
    assert_eq!(a.json()["path"], "/two");
}

#[tokio::test]
async fn request_and_response_headers_and_per_backend_headers() {
    // httproute-request-header-modifier, -response-header-modifier,
    // -request-header-modifier-backend-weights (conformance/tests; rules written to their
    // rows, the echo pod's own response headers standing in for the suite's echo options).
    let yaml = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: request-header-modifier, namespace: gateway-conformance-infra}
spec:
  parentRefs: [{name: same-namespace}]
  hostnames: [headers.test]
  rules:
  - matches: [{path: {type: PathPrefix, value: /set}}]
    filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: X-Header-Set, value: set-overwrites-values}]}}]
    backendRefs: [{name: infra-backend-v1, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /add}}]
    filters: [{type: RequestHeaderModifier, requestHeaderModifier: {add: [{name: X-Header-Add, value: add-appends-values}]}}]
    backendRefs: [{name: infra-backend-v1, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /remove}}]
    filters: [{type: RequestHeaderModifier, requestHeaderModifier: {remove: [X-Header-Remove]}}]
    backendRefs: [{name: infra-backend-v1, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /case-insensitivity}}]
    filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: x-header-set, value: header-set}], remove: [X-HEADER-REMOVE]}}]
    backendRefs: [{name: infra-backend-v1, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /response}}]
    filters: [{type: ResponseHeaderModifier, responseHeaderModifier: {set: [{name: X-Backend, value: overwritten}], add: [{name: X-Header-Add, value: added}], remove: [Content-Type]}}]
    backendRefs: [{name: infra-backend-v1, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /per-backend}}]
    backendRefs:
    - name: infra-backend-v1
      port: 8080
      filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: X-Which, value: one}]}}]
    - name: infra-backend-v2
      port: 8080
      filters: [{type: ResponseHeaderModifier, responseHeaderModifier: {add: [{name: X-Answered, value: two}]}}]
";
    let (_dir, v) = start(yaml, &[]).await;
    let a = request(
        v.http,
        "GET",
        "headers.test",
        "/set",
        &[("X-Header-Set", "some-other-value")],
    )
    .await;
    assert_eq!(
        header_seen(&a, "x-header-set").as_deref(),
        Some("set-overwrites-values")
    );
    let a = request(v.http, "GET", "headers.test", "/set", &[]).await;
    assert_eq!(
        header_seen(&a, "x-header-set").as_deref(),
        Some("set-overwrites-values")
    );
    let a = request(
        v.http,
        "GET",
        "headers.test",
        "/add",
        &[("X-Header-Add", "some-other-value")],
    )
    .await;
    assert_eq!(
        header_seen(&a, "x-header-add").as_deref(),
        Some("some-other-value,add-appends-values")
    );
    let a = request(
        v.http,
        "GET",
        "headers.test",
        "/remove",
        &[("X-Header-Remove", "val")],
    )
    .await;
    assert_eq!(header_seen(&a, "x-header-remove"), None);
    assert_eq!(a.backend(), "infra-backend-v1");
    let a = request(
        v.http,
        "GET",
        "headers.test",
        "/case-insensitivity",
        &[("X-Header-Set", "a"), ("x-header-remove", "b")],
    )
    .await;
    assert_eq!(
        (
            header_seen(&a, "x-header-set").as_deref(),
            header_seen(&a, "x-header-remove")
        ),
        (Some("header-set"), None)
    );
    // Other paths of the host are untouched.
    let a = request(v.http, "GET", "headers.test", "/response", &[]).await;
    let h = &a.headers;
    assert_eq!(h.get("x-backend").unwrap(), "overwritten");
    assert_eq!(h.get("x-header-add").unwrap(), "added");
    assert!(h.get("content-type").is_none());
    // Each backend's own filters apply only to the requests it gets.
    let mut seen = std::collections::BTreeMap::new();
    for _ in 0..6 {
        let a = request(v.http, "GET", "headers.test", "/per-backend", &[]).await;
        let which = header_seen(&a, "x-which");
        let answered = a
            .headers
            .get("x-answered")
            .map(|v| v.to_str().unwrap().to_owned());
        seen.insert(a.backend(), (which, answered));
    }
    assert_eq!(seen["infra-backend-v1"], (Some("one".to_owned()), None));
    assert_eq!(seen["infra-backend-v2"], (None, Some("two".to_owned())));
}

#[tokio::test]
async fn weights_split_requests_and_invalid_backends_answer_500() {
    // httproute-weight.{yaml,go} (70/30/0), -all-backends-weight-zero,
    // -invalid-nonexistent-backendref, -invalid-backendref-unknown-kind (conformance/tests).
    let yaml = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: weighted-backends, namespace: gateway-conformance-infra}
spec:
  parentRefs: [{name: same-namespace}]
  hostnames: [weight.test]
  rules:
  - backendRefs:
    - {name: infra-backend-v1, port: 8080, weight: 70}
    - {name: infra-backend-v2, port: 8080, weight: 30}
    - {name: infra-backend-v3, port: 8080, weight: 0}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: broken, namespace: gateway-conformance-infra}
spec:
  parentRefs: [{name: same-namespace}]
  hostnames: [broken.test]
  rules:
  - matches: [{path: {type: PathPrefix, value: /zero}}]
    backendRefs: [{name: infra-backend-v1, port: 8080, weight: 0}]
  - matches: [{path: {type: PathPrefix, value: /missing}}]
    backendRefs: [{name: nonexistent, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /kind}}]
    backendRefs: [{group: unknown.example.com, kind: Widget, name: x, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /half}}]
    backendRefs: [{name: infra-backend-v1, port: 8080}, {name: nonexistent, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /extension}}]
    filters: [{type: ExtensionRef, extensionRef: {group: example.com, kind: Thing, name: x}}]
    backendRefs: [{name: infra-backend-v1, port: 8080}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: old-style, namespace: gateway-conformance-infra}
spec:
  ingressClassName: vestibule
  rules:
  - host: ingress.test
    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: nonexistent, port: {number: 8080}}}}]}
";
    let (_dir, v) = start(yaml, &[]).await;
    let mut counts = std::collections::BTreeMap::new();
    for _ in 0..100 {
        let a = request(v.http, "GET", "weight.test", "/", &[]).await;
        *counts.entry(a.backend()).or_insert(0) += 1;
    }
    assert_eq!(counts.get("infra-backend-v1"), Some(&70), "{counts:?}");
    assert_eq!(counts.get("infra-backend-v2"), Some(&30), "{counts:?}");
    assert_eq!(counts.get("infra-backend-v3"), None, "{counts:?}");
    // An ExtensionRef filter cannot be resolved: not skipped, its requests get 500.
    for path in ["/zero", "/missing", "/kind", "/extension"] {
        let a = request(v.http, "GET", "broken.test", path, &[]).await;
        assert_eq!(a.status, StatusCode::INTERNAL_SERVER_ERROR, "{path}");
    }
    // An invalid backend takes its share as 500s; the valid one serves the rest.
    let mut statuses = std::collections::BTreeMap::new();
    for _ in 0..10 {
        let a = request(v.http, "GET", "broken.test", "/half", &[]).await;
        *statuses.entry(a.status.as_u16()).or_insert(0) += 1;
    }
    assert_eq!(statuses, [(200, 5), (500, 5)].into());
    // An Ingress's missing Service keeps its 503.
    let a = request(v.http, "GET", "ingress.test", "/", &[]).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn mirrors_copy_requests_and_timeouts_answer_504() {
    // httproute-request-mirror, -request-multiple-mirrors, -request-percentage-mirror,
    // -timeout-request, -timeout-backend-request (conformance/tests; the mirror pods count
    // what they get, as the suite reads their logs).
    let (mirror_a, seen_a) = slow_pod(200, Duration::ZERO).await;
    let (mirror_b, seen_b) = slow_pod(200, Duration::ZERO).await;
    let (never, seen_never) = slow_pod(200, Duration::ZERO).await;
    let (slow, _) = slow_pod(200, Duration::from_secs(3)).await;
    let (half, seen_half) = slow_pod(200, Duration::ZERO).await;
    let mut yaml = "apiVersion: v1
kind: Service
metadata: {name: mirror-a, namespace: gateway-conformance-infra}
spec: {ports: [{port: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: mirror-b, namespace: gateway-conformance-infra}
spec: {ports: [{port: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: never, namespace: gateway-conformance-infra}
spec: {ports: [{port: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: half, namespace: gateway-conformance-infra}
spec: {ports: [{port: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: slow, namespace: gateway-conformance-infra}
spec: {ports: [{port: 8080}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: mirror-and-timeouts, namespace: gateway-conformance-infra}
spec:
  parentRefs: [{name: same-namespace}]
  hostnames: [mirror.test]
  rules:
  - matches: [{path: {type: PathPrefix, value: /mirror}}]
    filters:
    - {type: RequestMirror, requestMirror: {backendRef: {name: mirror-a, port: 8080}}}
    - {type: RequestMirror, requestMirror: {backendRef: {name: mirror-b, port: 8080}}}
    - {type: RequestMirror, requestMirror: {backendRef: {name: never, port: 8080}, percent: 0}}
    backendRefs: [{name: infra-backend-v1, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /half}}]
    filters:
    - {type: RequestMirror, requestMirror: {backendRef: {name: half, port: 8080}, fraction: {numerator: 1, denominator: 2}}}
    backendRefs: [{name: infra-backend-v1, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /request-timeout}}]
    timeouts: {request: 500ms}
    backendRefs: [{name: slow, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /backend-timeout}}]
    timeouts: {request: 10s, backendRequest: 500ms}
    backendRefs: [{name: slow, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /no-timeout}}]
    timeouts: {request: 0s}
    backendRefs: [{name: infra-backend-v1, port: 8080}]
"
    .to_owned();
    for (name, addr) in [
        ("mirror-a", mirror_a),
        ("mirror-b", mirror_b),
        ("never", never),
        ("half", half),
        ("slow", slow),
    ] {
        yaml.push_str(&slice(INFRA, name, "", addr));
    }
    let (_dir, v) = start(&yaml, &[]).await;
    for _ in 0..3 {
        let a = request(v.http, "GET", "mirror.test", "/mirror", &[]).await;
        assert_eq!(a.backend(), "infra-backend-v1");
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while (seen_a.load(Ordering::SeqCst) < 3 || seen_b.load(Ordering::SeqCst) < 3)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        (seen_a.load(Ordering::SeqCst), seen_b.load(Ordering::SeqCst)),
        (3, 3)
    );
    assert_eq!(
        seen_never.load(Ordering::SeqCst),
        0,
        "a 0% mirror copies nothing"
    );
    // A 1/2 fraction copies about half of 40 requests.
    for _ in 0..40 {
        request(v.http, "GET", "mirror.test", "/half", &[]).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let copied = seen_half.load(Ordering::SeqCst);
    assert!((8..=32).contains(&copied), "{copied} of 40");
    for path in ["/request-timeout", "/backend-timeout"] {
        let started = Instant::now();
        let a = request(v.http, "GET", "mirror.test", path, &[]).await;
        assert_eq!(a.status, StatusCode::GATEWAY_TIMEOUT, "{path}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{path} waited {:?}",
            started.elapsed()
        );
    }
    let a = request(v.http, "GET", "mirror.test", "/no-timeout", &[]).await;
    assert_eq!(a.status, StatusCode::OK);
}

#[tokio::test]
async fn https_listeners_serve_their_certificates_and_only_their_routes() {
    // The base's same-namespace-with-https-listener Gateway (conformance/base/manifests.yaml),
    // httproute-https-listener (conformance/tests): a route on the HTTPS listener only is not
    // served over plain HTTP, and the other way round; a certificate in another namespace
    // needs a ReferenceGrant (gateway-secret-reference-grant-specific).
    let ca = Ca::new();
    let pair = ca.leaf(&["secure.test", "*.wild.test"]);
    let other = ca.leaf(&["granted.test"]);
    let secret = secret_yaml("tls-validity-checks-certificate", &pair.cert, &pair.key)
        .replace("namespace: test", "namespace: gateway-conformance-infra");
    let foreign = secret_yaml("certificate", &other.cert, &other.key).replace(
        "namespace: test",
        "namespace: gateway-conformance-web-backend",
    );
    let yaml = format!(
        "{secret}
---
{foreign}
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: Gateway
metadata: {{name: same-namespace-with-https-listener, namespace: gateway-conformance-infra}}
spec:
  gatewayClassName: vestibule
  listeners:
  - name: https
    port: 443
    protocol: HTTPS
    hostname: secure.test
    allowedRoutes: {{namespaces: {{from: Same}}}}
    tls: {{certificateRefs: [{{group: \"\", kind: Secret, name: tls-validity-checks-certificate, namespace: gateway-conformance-infra}}]}}
  - name: wild
    port: 443
    protocol: HTTPS
    hostname: \"*.wild.test\"
    allowedRoutes: {{namespaces: {{from: Same}}}}
    tls: {{certificateRefs: [{{name: tls-validity-checks-certificate}}]}}
  - name: granted
    port: 443
    protocol: HTTPS
    hostname: granted.test
    allowedRoutes: {{namespaces: {{from: Same}}}}
    tls: {{certificateRefs: [{{name: certificate, namespace: gateway-conformance-web-backend}}]}}
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {{name: gateway-to-certificate, namespace: gateway-conformance-web-backend}}
spec:
  from: [{{group: gateway.networking.k8s.io, kind: Gateway, namespace: gateway-conformance-infra}}]
  to: [{{group: \"\", kind: Secret, name: certificate}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: https-only, namespace: gateway-conformance-infra}}
spec:
  parentRefs: [{{name: same-namespace-with-https-listener}}]
  hostnames: [secure.test, a.b.wild.test, granted.test]
  rules:
  - matches: [{{path: {{type: PathPrefix, value: /hop}}}}]
    filters: [{{type: RequestRedirect, requestRedirect: {{hostname: example.org}}}}]
  - backendRefs: [{{name: infra-backend-v1, port: 8080}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: http-only, namespace: gateway-conformance-infra}}
spec:
  parentRefs: [{{name: same-namespace}}]
  hostnames: [plain.test]
  rules: [{{backendRefs: [{{name: infra-backend-v2, port: 8080}}]}}]
"
    );
    let (_dir, v) = start(&yaml, &[]).await;
    for host in ["secure.test", "a.b.wild.test", "granted.test"] {
        let tls = connect(v.https, Hello::sni(host)).await.expect("handshake");
        let names = support::tls::presented_names(&tls);
        assert!(
            names
                .iter()
                .any(|n| n == host || host.ends_with(n.trim_start_matches('*'))),
            "{host}: {names:?}"
        );
        let a = get_over(tls, host, "/").await;
        assert_eq!(a.backend(), "infra-backend-v1", "{host}");
    }
    // A redirect over TLS keeps the HTTPS listener's port (443: left out), not the socket's.
    let tls = connect(v.https, Hello::sni("secure.test"))
        .await
        .expect("handshake");
    let a = get_over(tls, "secure.test", "/hop/x").await;
    assert_eq!(location(&a), "https://example.org/hop/x");
    let a = request(v.http, "GET", "secure.test", "/", &[]).await;
    assert_eq!(
        a.status,
        StatusCode::NOT_FOUND,
        "the route is on the HTTPS listener only"
    );
    let a = request(v.http, "GET", "plain.test", "/", &[]).await;
    assert_eq!(a.backend(), "infra-backend-v2");
    let tls = connect(v.https, Hello::sni("plain.test"))
        .await
        .expect("handshake");
    let a = get_over(tls, "plain.test", "/").await;
    assert_eq!(
        a.status,
        StatusCode::NOT_FOUND,
        "the route is on the HTTP listener only"
    );
}

#[tokio::test]
async fn a_changed_route_reaches_traffic_and_validate_reports_gateway_objects() {
    let route = |backend: &str, port: &str| {
        format!(
            "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: moving, namespace: gateway-conformance-infra}}
spec:
  parentRefs: [{{name: same-namespace{port}}}]
  hostnames: [moving.test]
  rules: [{{backendRefs: [{{name: {backend}, port: 8080}}]}}]
"
        )
    };
    let (dir, v) = start(&route("infra-backend-v1", ""), &[]).await;
    let a = request(v.http, "GET", "moving.test", "/", &[]).await;
    assert_eq!(a.backend(), "infra-backend-v1");
    write_atomic(dir.path(), "case.yaml", &route("infra-backend-v2", ""));
    v.eventually("moving.test", "/", Duration::from_secs(10), |a| {
        a.backend() == "infra-backend-v2"
    })
    .await;
    // /debug/routes names the route, its object, and the Gateway API status.
    let debug = get(v.admin, "admin", "/debug/routes").await.json();
    let routes = debug["routes"].as_array().unwrap();
    assert!(
        routes
            .iter()
            .any(|r| r["object"] == "HTTPRoute gateway-conformance-infra/moving")
    );
    let parents = &debug["gatewayApi"]["httpRoutes"][0]["parents"][0];
    assert_eq!(
        parents["gateway"],
        "gateway-conformance-infra/same-namespace"
    );
    assert_eq!(parents["conditions"][0]["status"], "True");
    // A parentRef on a port the Gateway has no listener on: the route is not accepted, and
    // `vestibule validate` says so with the object and the field.
    write_atomic(
        dir.path(),
        "case.yaml",
        &route("infra-backend-v2", ", port: 81"),
    );
    v.eventually("moving.test", "/", Duration::from_secs(10), |a| {
        a.status == StatusCode::NOT_FOUND
    })
    .await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vestibule"))
        .args(["validate", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("case.yaml: HTTPRoute gateway-conformance-infra/moving: spec.parentRefs[0]")
            && text.contains("NoMatchingParent"),
        "{text}"
    );
}
