//! The Gateway API conformance tests' routing and status expectations, at the model: each
//! case is the test's yaml (kubernetes-sigs/gateway-api `conformance/tests/<name>.yaml`, the
//! class name filled in) on the suite's base objects, and the rows of its `.go`, asked of the
//! table. What travels over the wire (redirects, rewrites, headers, weights, mirrors,
//! timeouts, TLS) is tested end to end in `tests/gateway.rs`.

#![allow(clippy::type_complexity)]

use super::*;
use crate::model::table::RequestFacts;
use crate::model::{Built, Filter, Options, build};

const BASE: &str = include_str!("../../../tests/fixtures/gateway/base.yaml");
const INFRA: &str = "gateway-conformance-infra";

/// The base objects with an EndpointSlice for each backend Service, and `yaml`.
fn built(yaml: &str) -> Built {
    let backends = [
        (INFRA, "infra-backend-v1", "first-port"),
        (INFRA, "infra-backend-v2", ""),
        (INFRA, "infra-backend-v3", ""),
        ("gateway-conformance-app-backend", "app-backend-v1", ""),
        ("gateway-conformance-app-backend", "app-backend-v2", ""),
        ("gateway-conformance-web-backend", "web-backend", ""),
    ];
    let mut text = BASE.to_owned();
    for (i, (ns, name, port)) in backends.iter().enumerate() {
        text.push_str(&format!(
            "\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: {name}-a, namespace: {ns}, labels: {{kubernetes.io/service-name: {name}}}}}\naddressType: IPv4\nports: [{{name: \"{port}\", port: 3000}}]\nendpoints: [{{addresses: [10.0.0.{}]}}]\n",
            i + 1
        ));
    }
    text.push_str("\n---\n");
    text.push_str(yaml);
    let mut snapshot = Snapshot::default();
    for doc in text.split("\n---\n").filter(|d| !d.trim().is_empty()) {
        push_document(&mut snapshot, doc);
    }
    build(&snapshot.sorted(), &Options::default())
}

/// One YAML document of a kind these tests use, as the object it is (namespaced kinds without
/// a namespace land in `default`, as file mode puts them).
fn push_document(snapshot: &mut Snapshot, doc: &str) {
    fn read<T: serde::de::DeserializeOwned>(doc: &str) -> T {
        serde_yaml_ng::from_str(doc).unwrap_or_else(|e| panic!("{e}: {doc}"))
    }
    let kind: serde_yaml_ng::Value = read(doc);
    let mut object: crate::model::Object = match kind["kind"].as_str().unwrap_or_default() {
        "Namespace" => read::<k8s_openapi::api::core::v1::Namespace>(doc).into(),
        "Service" => read::<k8s_openapi::api::core::v1::Service>(doc).into(),
        "Secret" => read::<Secret>(doc).into(),
        "EndpointSlice" => read::<k8s_openapi::api::discovery::v1::EndpointSlice>(doc).into(),
        "Ingress" => read::<k8s_openapi::api::networking::v1::Ingress>(doc).into(),
        "GatewayClass" => read::<gateway_api::gatewayclasses::GatewayClass>(doc).into(),
        "Gateway" => read::<Gateway>(doc).into(),
        "HTTPRoute" => read::<HttpRoute>(doc).into(),
        "ReferenceGrant" => read::<gateway_api::referencegrants::ReferenceGrant>(doc).into(),
        other => panic!("kind {other:?} in a test document"),
    };
    if object.is_namespaced() && object.metadata_mut().namespace.is_none() {
        object.metadata_mut().namespace = Some("default".to_owned());
    }
    snapshot.push(object);
}

/// Where a plain-HTTP request goes: the backend Service's name, `404`, `500`, or
/// `redirect <code>`.
fn answer(
    built: &Built,
    host: &str,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
) -> String {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let mut map = http::HeaderMap::new();
    for (k, v) in headers {
        map.append(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            http::HeaderValue::from_str(v).unwrap(),
        );
    }
    let method = http::Method::from_bytes(method.as_bytes()).unwrap();
    let facts = RequestFacts {
        method: &method,
        headers: &map,
        query,
        tls: false,
    };
    let Some(route) = built.table.find(host, path, |r| r.matches.hold(&facts)) else {
        return "404".to_owned();
    };
    for f in &route.policy.filters {
        if let Filter::GatewayRedirect(r) = f {
            return format!("redirect {}", r.code.as_u16());
        }
    }
    let b = route.backend();
    match (&b.service, b.invalid_ref) {
        (_, true) | (None, _) => "500".to_owned(),
        (Some(s), false) => s.name.clone(),
    }
}

fn get(built: &Built, host: &str, target: &str) -> String {
    answer(built, host, "GET", target, &[])
}

/// The conditions of `route`'s parent `gateway`, as `Type=Status/Reason`.
fn parent(built: &Built, route: &str, gateway: &str) -> Vec<String> {
    let r = built
        .gateway
        .routes
        .iter()
        .find(|r| r.object.name == route)
        .unwrap_or_else(|| panic!("no status for {route}"));
    let p = r
        .parents
        .iter()
        .find(|p| p.gateway.name == gateway)
        .unwrap_or_else(|| panic!("{route} has no parent {gateway}"));
    conditions(&p.conditions)
}

fn conditions(list: &[StatusCondition]) -> Vec<String> {
    list.iter()
        .map(|c| {
            format!(
                "{}={}/{}",
                c.type_,
                if c.status { "True" } else { "False" },
                c.reason
            )
        })
        .collect()
}

fn listener<'a>(built: &'a Built, gateway: &str, name: &str) -> &'a ListenerState {
    let g = built
        .gateway
        .gateways
        .iter()
        .find(|g| g.object.name == gateway)
        .unwrap();
    g.listeners.iter().find(|l| l.name == name).unwrap()
}

#[test]
fn httproute_matching() {
    // conformance/tests/httproute-matching.{yaml,go}
    let b = built(
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: matching, namespace: gateway-conformance-infra}
spec:
  parentRefs: [{name: same-namespace}]
  rules:
  - matches:
    - path: {type: PathPrefix, value: /}
    - headers: [{name: version, value: one}]
    backendRefs: [{name: infra-backend-v1, port: 8080}]
  - matches:
    - path: {type: PathPrefix, value: /v2}
    - headers: [{name: version, value: two}]
    backendRefs: [{name: infra-backend-v2, port: 8080}]
",
    );
    let rows: &[(&str, &[(&str, &str)], &str)] = &[
        ("/", &[], "infra-backend-v1"),
        ("/example", &[], "infra-backend-v1"),
        ("/", &[("Version", "one")], "infra-backend-v1"),
        ("/v2", &[], "infra-backend-v2"),
        ("/v2/example", &[], "infra-backend-v2"),
        ("/", &[("Version", "two")], "infra-backend-v2"),
    ];
    for (path, headers, want) in rows {
        assert_eq!(
            answer(&b, "any.test", "GET", path, headers),
            *want,
            "{path} {headers:?}"
        );
    }
    assert_eq!(
        parent(&b, "matching", "same-namespace"),
        ["Accepted=True/Accepted", "ResolvedRefs=True/ResolvedRefs"]
    );
}

#[test]
fn httproute_header_matching() {
    // conformance/tests/httproute-header-matching.{yaml,go}
    let b = built(
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: matching, namespace: gateway-conformance-infra}
spec:
  parentRefs: [{name: same-namespace}]
  rules:
  - matches: [{headers: [{name: version, value: one}]}]
    backendRefs: [{name: infra-backend-v1, port: 8080}]
  - matches: [{headers: [{name: version, value: two}]}]
    backendRefs: [{name: infra-backend-v2, port: 8080}]
  - matches: [{headers: [{name: version, value: two}, {name: color, value: orange}]}]
    backendRefs: [{name: infra-backend-v1, port: 8080}]
  - matches: [{headers: [{name: color, value: blue}]}, {headers: [{name: color, value: green}]}]
    backendRefs: [{name: infra-backend-v1, port: 8080}]
  - matches: [{headers: [{name: color, value: red}]}, {headers: [{name: color, value: yellow}]}]
    backendRefs: [{name: infra-backend-v2, port: 8080}]
",
    );
    let rows: &[(&[(&str, &str)], &str)] = &[
        (&[("Version", "one")], "infra-backend-v1"),
        (&[("Version", "two")], "infra-backend-v2"),
        (
            &[("Version", "two"), ("Color", "orange")],
            "infra-backend-v1",
        ),
        (&[("Version", "two"), ("Color", "blue")], "infra-backend-v2"),
        (&[("Color", "orange")], "404"),
        (&[("Some-Other-Header", "one")], "404"),
        (&[("Color", "blue")], "infra-backend-v1"),
        (&[("Color", "green")], "infra-backend-v1"),
        (&[("Color", "red")], "infra-backend-v2"),
        (&[("Color", "yellow")], "infra-backend-v2"),
        (&[("Color", "purple")], "404"),
    ];
    for (headers, want) in rows {
        assert_eq!(
            answer(&b, "any.test", "GET", "/", headers),
            *want,
            "{headers:?}"
        );
    }
    // HTTPHeaderMatch.Name: of entries with equivalent names only the first counts.
    let b = built(
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: twice, namespace: gateway-conformance-infra}
spec:
  parentRefs: [{name: same-namespace}]
  rules:
  - matches: [{headers: [{name: version, value: one}, {name: Version, value: two}]}]
    backendRefs: [{name: infra-backend-v1, port: 8080}]
",
    );
    assert_eq!(
        answer(&b, "a.test", "GET", "/", &[("version", "one")]),
        "infra-backend-v1"
    );
    assert_eq!(
        answer(&b, "a.test", "GET", "/", &[("version", "two")]),
        "404"
    );
}

#[test]
fn httproute_query_param_matching() {
    // Rows: conformance/tests/httproute-query-param-matching.go; the yaml is written to them
    // (the upstream file is not in our reference copy).
    let b = built(
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: query-param-matching, namespace: gateway-conformance-infra}
spec:
  parentRefs: [{name: same-namespace}]
  rules:
  - matches: [{queryParams: [{name: animal, value: whale}]}]
    backendRefs: [{name: infra-backend-v1, port: 8080}]
  - matches: [{queryParams: [{name: animal, value: dolphin}]}]
    backendRefs: [{name: infra-backend-v2, port: 8080}]
  - matches: [{queryParams: [{name: animal, value: dolphin}, {name: color, value: blue}]}]
    backendRefs: [{name: infra-backend-v3, port: 8080}]
  - matches: [{queryParams: [{name: ANIMAL, value: Whale}]}]
    backendRefs: [{name: infra-backend-v3, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /path1}, queryParams: [{name: animal, value: whale}]}]
    backendRefs: [{name: infra-backend-v1, port: 8080}]
  - matches: [{headers: [{name: version, value: one}], queryParams: [{name: animal, value: whale}]}]
    backendRefs: [{name: infra-backend-v2, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /path2}, headers: [{name: version, value: two}], queryParams: [{name: animal, value: whale}]}]
    backendRefs: [{name: infra-backend-v3, port: 8080}]
  - matches:
    - {path: {type: PathPrefix, value: /path3}, queryParams: [{name: animal, value: shark}]}
    - {path: {type: PathPrefix, value: /path4}, headers: [{name: version, value: three}], queryParams: [{name: animal, value: kraken}]}
    backendRefs: [{name: infra-backend-v1, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /path5}, queryParams: [{name: animal, value: hydra}]}]
    backendRefs: [{name: infra-backend-v1, port: 8080}]
  - matches: [{headers: [{name: version, value: four}], queryParams: [{name: animal, value: hydra}]}]
    backendRefs: [{name: infra-backend-v3, port: 8080}]
",
    );
    let rows: &[(&str, &[(&str, &str)], &str)] = &[
        ("/?animal=whale", &[], "infra-backend-v1"),
        ("/?animal=dolphin", &[], "infra-backend-v2"),
        ("/?animal=dolphin&color=blue", &[], "infra-backend-v3"),
        ("/?ANIMAL=Whale", &[], "infra-backend-v3"),
        (
            "/?animal=whale&otherparam=irrelevant",
            &[],
            "infra-backend-v1",
        ),
        ("/?animal=dolphin&color=yellow", &[], "infra-backend-v2"),
        ("/?color=blue", &[], "404"),
        ("/?animal=dog", &[], "404"),
        ("/?animal=whaledolphin", &[], "404"),
        ("/", &[], "404"),
        ("/path1?animal=whale", &[], "infra-backend-v1"),
        ("/?animal=whale", &[("version", "one")], "infra-backend-v2"),
        (
            "/path2?animal=whale",
            &[("version", "two")],
            "infra-backend-v3",
        ),
        ("/path3?animal=shark", &[], "infra-backend-v1"),
        (
            "/path4?animal=kraken",
            &[("version", "three")],
            "infra-backend-v1",
        ),
        ("/?animal=shark", &[], "404"),
        ("/path4?animal=kraken", &[], "404"),
        ("/path5?animal=hydra", &[], "infra-backend-v1"),
        ("/?animal=hydra", &[("version", "four")], "infra-backend-v3"),
        // Percent-encoding is decoded before comparing.
        ("/?animal=wh%61le", &[], "infra-backend-v1"),
    ];
    for (target, headers, want) in rows {
        assert_eq!(
            answer(&b, "any.test", "GET", target, headers),
            *want,
            "{target} {headers:?}"
        );
    }
}

#[test]
fn httproute_method_matching() {
    // conformance/tests/httproute-method-matching.go; its yaml's first two rules, and rules
    // written to the rows that combine methods with other matches.
    let b = built(
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: method-matching, namespace: gateway-conformance-infra}
spec:
  parentRefs: [{name: same-namespace}]
  rules:
  - matches: [{method: POST}]
    backendRefs: [{name: infra-backend-v1, port: 8080}]
  - matches: [{method: GET}]
    backendRefs: [{name: infra-backend-v2, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /path1}, method: GET}]
    backendRefs: [{name: infra-backend-v1, port: 8080}]
  - matches: [{headers: [{name: version, value: one}], method: PUT}]
    backendRefs: [{name: infra-backend-v2, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /path2}, headers: [{name: version, value: two}], method: POST}]
    backendRefs: [{name: infra-backend-v3, port: 8080}]
  - matches:
    - {path: {type: PathPrefix, value: /path3}, method: PATCH}
    - {path: {type: PathPrefix, value: /path4}, headers: [{name: version, value: three}], method: DELETE}
    backendRefs: [{name: infra-backend-v1, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /path5}, method: PATCH}]
    backendRefs: [{name: infra-backend-v1, port: 8080}]
  - matches: [{headers: [{name: version, value: four}], method: PATCH}]
    backendRefs: [{name: infra-backend-v2, port: 8080}]
",
    );
    let rows: &[(&str, &str, &[(&str, &str)], &str)] = &[
        ("POST", "/", &[], "infra-backend-v1"),
        ("GET", "/", &[], "infra-backend-v2"),
        ("HEAD", "/", &[], "404"),
        ("GET", "/path1", &[], "infra-backend-v1"),
        ("PUT", "/", &[("version", "one")], "infra-backend-v2"),
        ("POST", "/path2", &[("version", "two")], "infra-backend-v3"),
        ("PATCH", "/path3", &[], "infra-backend-v1"),
        (
            "DELETE",
            "/path4",
            &[("version", "three")],
            "infra-backend-v1",
        ),
        ("PUT", "/", &[], "404"),
        ("DELETE", "/path4", &[], "404"),
        ("PATCH", "/path5", &[], "infra-backend-v1"),
        ("PATCH", "/", &[("version", "four")], "infra-backend-v2"),
    ];
    for (method, path, headers, want) in rows {
        assert_eq!(
            answer(&b, "any.test", method, path, headers),
            *want,
            "{method} {path}"
        );
    }
}

#[test]
fn httproute_path_match_order() {
    // Rows: conformance/tests/httproute-path-match-order.go; the yaml is written to them
    // (Exact before PathPrefix, longer prefixes first).
    let b = built(
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: path-matching-order, namespace: gateway-conformance-infra}
spec:
  parentRefs: [{name: same-namespace}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /match}}]
    backendRefs: [{name: infra-backend-v3, port: 8080}]
  - matches: [{path: {type: Exact, value: /match}}]
    backendRefs: [{name: infra-backend-v1, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /match/prefix}}]
    backendRefs: [{name: infra-backend-v1, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /match/prefix/one}}]
    backendRefs: [{name: infra-backend-v2, port: 8080}]
  - matches: [{path: {type: Exact, value: /match/exact}}]
    backendRefs: [{name: infra-backend-v2, port: 8080}]
  - matches: [{path: {type: Exact, value: /match/exact/one}}]
    backendRefs: [{name: infra-backend-v3, port: 8080}]
",
    );
    for (path, want) in [
        ("/match/exact/one", "infra-backend-v3"),
        ("/match/exact", "infra-backend-v2"),
        ("/match", "infra-backend-v1"),
        ("/match/prefix/one/any", "infra-backend-v2"),
        ("/match/prefix/any", "infra-backend-v1"),
        ("/match/any", "infra-backend-v3"),
        // PathPrefix is by element: /matchbox is not under /match.
        ("/matchbox", "404"),
    ] {
        assert_eq!(get(&b, "any.test", path), want, "{path}");
    }
}

#[test]
fn regular_expression_paths_match_the_whole_path() {
    let b = built(
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: regex, namespace: gateway-conformance-infra}
spec:
  parentRefs: [{name: same-namespace}]
  rules:
  - matches: [{path: {type: RegularExpression, value: \"/v[0-9]+/items\"}}]
    backendRefs: [{name: infra-backend-v2, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /}}]
    backendRefs: [{name: infra-backend-v1, port: 8080}]
  - matches: [{path: {type: RegularExpression, value: \"([\"}}]
    backendRefs: [{name: infra-backend-v3, port: 8080}]
",
    );
    assert_eq!(get(&b, "a.test", "/v12/items"), "infra-backend-v2");
    assert_eq!(get(&b, "a.test", "/v12/items/x"), "infra-backend-v1");
    assert_eq!(get(&b, "a.test", "/x/v1/items"), "infra-backend-v1");
    // The rule that does not compile is dropped, and said so; the others serve.
    let p = parent(&b, "regex", "same-namespace");
    assert!(
        p.contains(&"PartiallyInvalid=True/UnsupportedValue".to_owned()),
        "{p:?}"
    );
    assert!(
        b.diagnostics
            .iter()
            .any(|d| d.field == "spec.rules[2].matches[0].path.value")
    );
}

#[test]
fn httproute_matching_across_routes() {
    // conformance/tests/httproute-matching-across-routes.{yaml,go}: a wildcard route's rules
    // join a precise host's, ranked by path first.
    let b = built(
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: matching-part1, namespace: gateway-conformance-infra}
spec:
  parentRefs: [{name: same-namespace}]
  hostnames: [example.com, example.net]
  rules:
  - matches:
    - path: {type: PathPrefix, value: /}
    - headers: [{name: version, value: one}]
    backendRefs: [{name: infra-backend-v1, port: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: matching-part2, namespace: gateway-conformance-infra}
spec:
  hostnames: [\"*.com\"]
  parentRefs: [{name: same-namespace}]
  rules:
  - matches:
    - path: {type: PathPrefix, value: /v2}
    - headers: [{name: version, value: two}]
    backendRefs: [{name: infra-backend-v2, port: 8080}]
",
    );
    let rows: &[(&str, &str, &[(&str, &str)], &str)] = &[
        ("example.com", "/", &[], "infra-backend-v1"),
        ("example.com", "/example", &[], "infra-backend-v1"),
        ("example.net", "/example", &[], "infra-backend-v1"),
        (
            "example.com",
            "/example",
            &[("Version", "one")],
            "infra-backend-v1",
        ),
        ("example.com", "/v2", &[], "infra-backend-v2"),
        ("example.net", "/v2", &[], "infra-backend-v1"),
        ("example.com", "/v2/example", &[], "infra-backend-v2"),
        (
            "example.com",
            "/",
            &[("Version", "two")],
            "infra-backend-v2",
        ),
        // Only *.com's own hosts beyond: a.b.com is under *.com (any number of labels).
        ("a.b.com", "/v2", &[], "infra-backend-v2"),
        ("other.org", "/v2", &[], "404"),
    ];
    for (host, path, headers, want) in rows {
        assert_eq!(
            answer(&b, host, "GET", path, headers),
            *want,
            "{host}{path} {headers:?}"
        );
    }
}

const INTERSECTION: &str = "apiVersion: gateway.networking.k8s.io/v1beta1
kind: Gateway
metadata: {name: httproute-hostname-intersection, namespace: gateway-conformance-infra}
spec:
  gatewayClassName: vestibule
  listeners:
  - {name: listener-1, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: Same}}, hostname: very.specific.com}
  - {name: listener-2, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: Same}}, hostname: \"*.wildcard.io\"}
  - {name: listener-3, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: Same}}, hostname: \"*.anotherwildcard.io\"}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: specific-host-matches-listener-specific-host, namespace: gateway-conformance-infra}
spec:
  parentRefs: [{name: httproute-hostname-intersection, namespace: gateway-conformance-infra}]
  hostnames: [non.matching.com, \"*.nonmatchingwildcard.io\", very.specific.com]
  rules:
  - matches: [{path: {type: PathPrefix, value: /s1}}]
    backendRefs: [{name: infra-backend-v1, port: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: specific-host-matches-listener-wildcard-host, namespace: gateway-conformance-infra}
spec:
  parentRefs: [{name: httproute-hostname-intersection, namespace: gateway-conformance-infra}]
  hostnames: [non.matching.com, wildcard.io, foo.wildcard.io, bar.wildcard.io, foo.bar.wildcard.io]
  rules:
  - matches: [{path: {type: PathPrefix, value: /s2}}]
    backendRefs: [{name: infra-backend-v2, port: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: wildcard-host-matches-listener-specific-host, namespace: gateway-conformance-infra}
spec:
  parentRefs: [{name: httproute-hostname-intersection, namespace: gateway-conformance-infra}]
  hostnames: [non.matching.com, \"*.specific.com\"]
  rules:
  - matches: [{path: {type: PathPrefix, value: /s3}}]
    backendRefs: [{name: infra-backend-v3, port: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: wildcard-host-matches-listener-wildcard-host, namespace: gateway-conformance-infra}
spec:
  parentRefs: [{name: httproute-hostname-intersection, namespace: gateway-conformance-infra}]
  hostnames: [\"*.anotherwildcard.io\"]
  rules:
  - matches: [{path: {type: PathPrefix, value: /s4}}]
    backendRefs: [{name: infra-backend-v1, port: 8080}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: no-intersecting-hosts, namespace: gateway-conformance-infra}
spec:
  parentRefs: [{name: httproute-hostname-intersection, namespace: gateway-conformance-infra}]
  hostnames: [specific.but.wrong.com, wildcard.io]
  rules:
  - matches: [{path: {type: PathPrefix, value: /s5}}]
    backendRefs: [{name: infra-backend-v2, port: 8080}]
";

#[test]
fn httproute_hostname_intersection() {
    // conformance/tests/httproute-hostname-intersection.{yaml,go}
    let b = built(INTERSECTION);
    let rows = [
        ("very.specific.com", "/s1", "infra-backend-v1"),
        ("very.specific.com:1234", "/s1", "infra-backend-v1"),
        ("non.matching.com", "/s1", "404"),
        ("foo.nonmatchingwildcard.io", "/s1", "404"),
        ("foo.wildcard.io", "/s1", "404"),
        ("very.specific.com", "/non-matching-prefix", "404"),
        ("foo.wildcard.io", "/s2", "infra-backend-v2"),
        ("bar.wildcard.io", "/s2", "infra-backend-v2"),
        ("foo.bar.wildcard.io", "/s2", "infra-backend-v2"),
        ("non.matching.com", "/s2", "404"),
        ("wildcard.io", "/s2", "404"),
        ("very.specific.com", "/s2", "404"),
        ("foo.wildcard.io", "/non-matching-prefix", "404"),
        ("very.specific.com", "/s3", "infra-backend-v3"),
        ("non.matching.com", "/s3", "404"),
        ("foo.specific.com", "/s3", "404"),
        ("foo.wildcard.io", "/s3", "404"),
        ("very.specific.com", "/non-matching-prefix", "404"),
        ("foo.anotherwildcard.io", "/s4", "infra-backend-v1"),
        ("bar.anotherwildcard.io", "/s4", "infra-backend-v1"),
        ("foo.bar.anotherwildcard.io", "/s4", "infra-backend-v1"),
        ("anotherwildcard.io", "/s4", "404"),
        ("foo.wildcard.io", "/s4", "404"),
        ("very.specific.com", "/s4", "404"),
        ("foo.anotherwildcard.io", "/non-matching-prefix", "404"),
        ("specific.but.wrong.com", "/s5", "404"),
        ("wildcard.io", "/s5", "404"),
    ];
    for (host, path, want) in rows {
        assert_eq!(get(&b, host, path), want, "{host}{path}");
    }
    let gw = "httproute-hostname-intersection";
    assert_eq!(
        parent(&b, "no-intersecting-hosts", gw)[0],
        "Accepted=False/NoMatchingListenerHostname"
    );
    // AttachedRoutes counts accepted routes only.
    assert_eq!(listener(&b, gw, "listener-1").attached_routes, 2);
    assert_eq!(listener(&b, gw, "listener-2").attached_routes, 1);
    assert_eq!(listener(&b, gw, "listener-3").attached_routes, 1);
    assert_eq!(
        conditions(&listener(&b, gw, "listener-1").conditions),
        [
            "Accepted=True/Accepted",
            "Programmed=True/Programmed",
            "ResolvedRefs=True/ResolvedRefs",
            "Conflicted=False/NoConflicts"
        ]
    );
}

#[test]
fn gateway_http_listener_isolation() {
    // conformance/tests/gateway-http-listener-isolation.{yaml,go}
    let mut yaml = "apiVersion: gateway.networking.k8s.io/v1beta1
kind: Gateway
metadata: {name: http-listener-isolation, namespace: gateway-conformance-infra}
spec:
  gatewayClassName: vestibule
  listeners:
  - {name: empty-hostname, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: All}}}
  - {name: wildcard-example-com, port: 80, protocol: HTTP, hostname: \"*.example.com\", allowedRoutes: {namespaces: {from: All}}}
  - {name: wildcard-foo-example-com, port: 80, protocol: HTTP, hostname: \"*.foo.example.com\", allowedRoutes: {namespaces: {from: All}}}
  - {name: abc-foo-example-com, port: 80, protocol: HTTP, hostname: abc.foo.example.com, allowedRoutes: {namespaces: {from: All}}}
"
    .to_owned();
    for section in [
        "empty-hostname",
        "wildcard-example-com",
        "wildcard-foo-example-com",
        "abc-foo-example-com",
    ] {
        yaml.push_str(&format!(
            "---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: attaches-to-{section}, namespace: gateway-conformance-infra}}
spec:
  parentRefs: [{{name: http-listener-isolation, namespace: gateway-conformance-infra, sectionName: {section}}}]
  rules:
  - matches: [{{path: {{type: PathPrefix, value: /{section}}}}}]
    backendRefs: [{{name: infra-backend-v1, port: 8080}}]
"
        ));
    }
    // The base Gateways' empty-hostname listeners share the socket; in a cluster each Gateway
    // has an address of its own. Here only this test's Gateway is ours.
    let b = built(&yaml);
    let paths = [
        "/empty-hostname",
        "/wildcard-example-com",
        "/wildcard-foo-example-com",
        "/abc-foo-example-com",
    ];
    for (host, served) in [
        ("bar.com", 0),
        ("bar.example.com", 1),
        ("bar.foo.example.com", 2),
        ("abc.foo.example.com", 3),
    ] {
        for (i, path) in paths.iter().enumerate() {
            let want = if i == served {
                "infra-backend-v1"
            } else {
                "404"
            };
            assert_eq!(get(&b, host, path), want, "{host}{path}");
        }
    }
    // A wildcard listener takes hosts any number of labels down.
    assert_eq!(
        get(&b, "a.b.example.com", "/wildcard-example-com"),
        "infra-backend-v1"
    );
}

#[test]
fn parent_refs_are_judged_by_section_port_namespace_and_kind() {
    // httproute-invalid-parentref-not-matching-section-name, -not-matching-listener-port,
    // httproute-simple-same-namespace, httproute-cross-namespace (conformance/tests).
    let b = built(
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: wrong-section, namespace: gateway-conformance-infra}
spec:
  parentRefs: [{name: same-namespace, sectionName: nope}]
  rules: [{backendRefs: [{name: infra-backend-v1, port: 8080}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: wrong-port, namespace: gateway-conformance-infra}
spec:
  parentRefs: [{name: same-namespace, port: 81}]
  rules: [{backendRefs: [{name: infra-backend-v1, port: 8080}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: right-port, namespace: gateway-conformance-infra}
spec:
  parentRefs: [{name: same-namespace, port: 80, sectionName: http}]
  hostnames: [port.test]
  rules: [{backendRefs: [{name: infra-backend-v1, port: 8080}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: foreign, namespace: gateway-conformance-web-backend}
spec:
  parentRefs: [{name: same-namespace, namespace: gateway-conformance-infra}]
  hostnames: [foreign.test]
  rules: [{backendRefs: [{name: web-backend, port: 8080}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: by-label, namespace: gateway-conformance-web-backend}
spec:
  parentRefs: [{name: backend-namespaces, namespace: gateway-conformance-infra}]
  hostnames: [label.test]
  rules: [{backendRefs: [{name: web-backend, port: 8080}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: by-label-refused, namespace: gateway-conformance-infra}
spec:
  parentRefs: [{name: backend-namespaces}]
  hostnames: [refused.test]
  rules: [{backendRefs: [{name: infra-backend-v1, port: 8080}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: someone-elses, namespace: gateway-conformance-infra}
spec:
  parentRefs: [{name: not-a-gateway-of-ours}, {kind: Service, group: \"\", name: infra-backend-v1}]
  rules: [{backendRefs: [{name: infra-backend-v1, port: 8080}]}]
",
    );
    assert_eq!(
        parent(&b, "wrong-section", "same-namespace")[0],
        "Accepted=False/NoMatchingParent"
    );
    assert_eq!(
        parent(&b, "wrong-port", "same-namespace")[0],
        "Accepted=False/NoMatchingParent"
    );
    assert_eq!(
        parent(&b, "right-port", "same-namespace")[0],
        "Accepted=True/Accepted"
    );
    assert_eq!(get(&b, "port.test", "/"), "infra-backend-v1");
    assert_eq!(
        parent(&b, "foreign", "same-namespace")[0],
        "Accepted=False/NotAllowedByListeners"
    );
    assert_eq!(get(&b, "foreign.test", "/"), "404");
    assert_eq!(
        parent(&b, "by-label", "backend-namespaces")[0],
        "Accepted=True/Accepted"
    );
    assert_eq!(get(&b, "label.test", "/"), "web-backend");
    assert_eq!(
        parent(&b, "by-label-refused", "backend-namespaces")[0],
        "Accepted=False/NotAllowedByListeners"
    );
    // Parents that are not Gateways of ours get no status from us.
    assert!(
        b.gateway
            .routes
            .iter()
            .all(|r| r.object.name != "someone-elses")
    );
    let d = b
        .diagnostics
        .iter()
        .find(|d| d.object.name == "wrong-section")
        .expect("a diagnostic for the refused parent");
    assert_eq!(d.field, "spec.parentRefs[0]");
}

#[test]
fn backend_refs_resolve_or_answer_500() {
    // httproute-invalid-nonexistent-backendref, -backendref-unknown-kind,
    // -cross-namespace-backend-ref, httproute-reference-grant, -all-backends-weight-zero
    // (conformance/tests): the reasons, and 500 for what cannot be sent to.
    let routes = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: missing, namespace: gateway-conformance-infra}
spec:
  parentRefs: [{name: same-namespace}]
  hostnames: [missing.test]
  rules: [{backendRefs: [{name: nonexistent, port: 8080}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: unknown-kind, namespace: gateway-conformance-infra}
spec:
  parentRefs: [{name: same-namespace}]
  hostnames: [kind.test]
  rules: [{backendRefs: [{group: unknown.example.com, kind: Widget, name: x, port: 8080}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: cross, namespace: gateway-conformance-infra}
spec:
  parentRefs: [{name: same-namespace}]
  hostnames: [cross.test]
  rules: [{backendRefs: [{name: web-backend, namespace: gateway-conformance-web-backend, port: 8080}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: zero, namespace: gateway-conformance-infra}
spec:
  parentRefs: [{name: same-namespace}]
  hostnames: [zero.test]
  rules: [{backendRefs: [{name: infra-backend-v1, port: 8080, weight: 0}, {name: infra-backend-v2, port: 8080, weight: 0}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: none, namespace: gateway-conformance-infra}
spec:
  parentRefs: [{name: same-namespace}]
  hostnames: [none.test]
  rules: [{matches: [{path: {type: PathPrefix, value: /}}]}]
";
    let b = built(routes);
    for (route, host, reason) in [
        ("missing", "missing.test", "BackendNotFound"),
        ("unknown-kind", "kind.test", "InvalidKind"),
        ("cross", "cross.test", "RefNotPermitted"),
    ] {
        let p = parent(&b, route, "same-namespace");
        assert_eq!(
            p,
            [
                "Accepted=True/Accepted",
                &format!("ResolvedRefs=False/{reason}")
            ],
            "{route}"
        );
        assert_eq!(get(&b, host, "/"), "500", "{route}");
    }
    assert_eq!(get(&b, "zero.test", "/"), "500");
    assert_eq!(get(&b, "none.test", "/"), "500");
    // A ReferenceGrant in the Service's namespace permits it (v1beta1 and v1 alike).
    for version in ["v1beta1", "v1"] {
        let grant = format!(
            "---
apiVersion: gateway.networking.k8s.io/{version}
kind: ReferenceGrant
metadata: {{name: infra-to-web, namespace: gateway-conformance-web-backend}}
spec:
  from: [{{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: gateway-conformance-infra}}]
  to: [{{group: \"\", kind: Service}}]
"
        );
        let b = built(&format!("{routes}{grant}"));
        assert_eq!(get(&b, "cross.test", "/"), "web-backend", "{version}");
        assert_eq!(
            parent(&b, "cross", "same-namespace")[1],
            "ResolvedRefs=True/ResolvedRefs"
        );
    }
    // A grant for another Service name, or from another namespace, does not.
    let narrow = "---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: narrow, namespace: gateway-conformance-web-backend}
spec:
  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: gateway-conformance-app-backend}]
  to: [{group: \"\", kind: Service, name: web-backend}]
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: other-name, namespace: gateway-conformance-web-backend}
spec:
  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: gateway-conformance-infra}]
  to: [{group: \"\", kind: Service, name: not-web-backend}]
";
    let b = built(&format!("{routes}{narrow}"));
    assert_eq!(get(&b, "cross.test", "/"), "500");
}

#[test]
fn listeners_this_controller_cannot_serve_say_why() {
    // gateway-invalid-listeners-unsupported-protocol, listener ports other than the mapped
    // ones, duplicate hostnames (conformance/tests, gateway_types.go reasons).
    let b = built(
        "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: odd, namespace: gateway-conformance-infra}
spec:
  gatewayClassName: vestibule
  listeners:
  - {name: tcp, port: 9000, protocol: TCP}
  - {name: http-8080, port: 8080, protocol: HTTP}
  - {name: one, port: 80, protocol: HTTP, hostname: twin.test}
  - {name: two, port: 80, protocol: HTTP, hostname: twin.test}
  - {name: ok, port: 80, protocol: HTTP, hostname: ok.test}
  - {name: kinds, port: 80, protocol: HTTP, hostname: kinds.test, allowedRoutes: {kinds: [{kind: TCPRoute}]}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: someone-elses, namespace: gateway-conformance-infra}
spec:
  gatewayClassName: other-class
  listeners: [{name: http, port: 80, protocol: HTTP}]
",
    );
    let first = |name: &str| conditions(&listener(&b, "odd", name).conditions)[0].clone();
    assert_eq!(first("tcp"), "Accepted=False/UnsupportedProtocol");
    assert_eq!(first("http-8080"), "Accepted=False/PortUnavailable");
    assert_eq!(first("ok"), "Accepted=True/Accepted");
    for twin in ["one", "two"] {
        let c = conditions(&listener(&b, "odd", twin).conditions);
        assert!(
            c.contains(&"Conflicted=True/HostnameConflict".to_owned()),
            "{c:?}"
        );
        assert!(c.contains(&"Programmed=False/Invalid".to_owned()), "{c:?}");
    }
    let kinds = listener(&b, "odd", "kinds");
    assert!(kinds.supported_kinds.is_empty());
    assert!(
        conditions(&kinds.conditions).contains(&"ResolvedRefs=False/InvalidRouteKinds".to_owned())
    );
    let gw = b
        .gateway
        .gateways
        .iter()
        .find(|g| g.object.name == "odd")
        .unwrap();
    assert_eq!(
        conditions(&gw.conditions)[0],
        "Accepted=True/ListenersNotValid"
    );
    assert!(
        b.gateway
            .gateways
            .iter()
            .all(|g| g.object.name != "someone-elses")
    );
    assert_eq!(b.gateway.classes.len(), 1);
    assert_eq!(
        conditions(&b.gateway.classes[0].conditions),
        ["Accepted=True/Accepted"]
    );
}

#[test]
fn hostname_intersection_rules() {
    // HTTPRouteSpec.hostnames (httproute_types.go): the route's hostnames under the
    // listener's; a wildcard matches any number of labels.
    let h = |s: &str| HostRule::parse(Some(s)).unwrap();
    let rows: &[(Option<&str>, &[&str], Option<&[&str]>)] = &[
        (None, &[], Some(&["*"])),
        (None, &["a.test"], Some(&["a.test"])),
        (Some("a.test"), &[], Some(&["a.test"])),
        (Some("a.test"), &["a.test", "b.test"], Some(&["a.test"])),
        (Some("a.test"), &["b.test"], None),
        (
            Some("very.specific.com"),
            &["*.specific.com"],
            Some(&["very.specific.com"]),
        ),
        (
            Some("*.wildcard.io"),
            &["foo.bar.wildcard.io", "wildcard.io"],
            Some(&["foo.bar.wildcard.io"]),
        ),
        (
            Some("*.example.com"),
            &["*.foo.example.com"],
            Some(&["*.foo.example.com"]),
        ),
        (
            Some("*.foo.example.com"),
            &["*.example.com"],
            Some(&["*.foo.example.com"]),
        ),
        (Some("*.example.com"), &["*.example.org"], None),
    ];
    for (listener, route, want) in rows {
        let l = listener.map(h);
        let r: Vec<HostRule> = route.iter().map(|s| h(s)).collect();
        let got =
            intersect(l.as_ref(), &r).map(|v| v.iter().map(|x| x.to_string()).collect::<Vec<_>>());
        let want = want.map(|w| w.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(got, want, "{listener:?} {route:?}");
    }
}

#[test]
fn prefix_replacement_follows_the_spec_table() {
    // HTTPPathModifier.ReplacePrefixMatch's table (httproute_types.go).
    let rows = [
        ("/foo", "/foo/bar", "/xyz", "/xyz/bar"),
        ("/foo", "/foo/bar", "/xyz/", "/xyz/bar"),
        ("/foo/", "/foo/bar", "/xyz", "/xyz/bar"),
        ("/foo/", "/foo/bar", "/xyz/", "/xyz/bar"),
        ("/foo", "/foo", "/xyz", "/xyz"),
        ("/foo", "/foo/", "/xyz", "/xyz/"),
        ("/foo", "/foo", "/xyz/", "/xyz/"),
        ("/foo", "/foo/", "/xyz/", "/xyz/"),
        ("/foo", "/foo", "", "/"),
        ("/foo", "/foo/", "", "/"),
        ("/foo/", "/foo/bar", "", "/bar"),
        ("/foo", "/foo/bar", "/", "/bar"),
        ("/foo", "/foo", "/", "/"),
        // httproute-rewrite-path.go
        ("/prefix/one", "/prefix/one/two", "/one", "/one/two"),
        ("/strip-prefix", "/strip-prefix/three", "/", "/three"),
    ];
    for (matched, path, with, want) in rows {
        let change = crate::model::policy::PathChange::Prefix {
            matched: matched.trim_end_matches('/').to_owned(),
            with: with.to_owned(),
        };
        assert_eq!(change.apply(path), want, "{matched} {path} {with}");
    }
}

#[test]
fn redirect_locations_follow_the_spec() {
    // HTTPRequestRedirectFilter (httproute_types.go); httproute-redirect-port,
    // -redirect-scheme, -redirect-host-and-status (conformance/tests).
    use crate::model::policy::GatewayRedirect;
    let r = |scheme: Option<&'static str>, host: Option<&str>, port: Option<u16>| GatewayRedirect {
        scheme,
        hostname: host.map(str::to_owned),
        port,
        path: None,
        code: http::StatusCode::FOUND,
    };
    let rows = [
        // (redirect, request scheme, listener port, want)
        (
            r(None, None, Some(8083)),
            "http",
            80,
            "http://a.test:8083/p?q=1",
        ),
        (
            r(None, Some("example.org"), Some(8083)),
            "http",
            80,
            "http://example.org:8083/p?q=1",
        ),
        (
            r(Some("https"), None, None),
            "http",
            80,
            "https://a.test/p?q=1",
        ),
        (
            r(Some("https"), None, Some(8443)),
            "http",
            80,
            "https://a.test:8443/p?q=1",
        ),
        (
            r(Some("http"), None, None),
            "https",
            443,
            "http://a.test/p?q=1",
        ),
        (
            r(Some("https"), None, Some(443)),
            "http",
            80,
            "https://a.test/p?q=1",
        ),
        (
            r(None, Some("example.org"), None),
            "http",
            80,
            "http://example.org/p?q=1",
        ),
        // Without scheme or port the listener's port is kept, unless it is the default.
        (
            r(None, Some("example.org"), None),
            "http",
            8080,
            "http://example.org:8080/p?q=1",
        ),
        (r(None, None, Some(80)), "http", 8080, "http://a.test/p?q=1"),
    ];
    for (redirect, scheme, port, want) in rows {
        assert_eq!(
            redirect.location(scheme, "a.test", port, "/p", Some("q=1")),
            want
        );
    }
}

#[test]
fn an_ingress_and_a_route_on_one_host_share_it_by_rank() {
    let ingress = "apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web, namespace: gateway-conformance-infra}
spec:
  ingressClassName: vestibule
  rules:
  - host: shared.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: infra-backend-v1, port: {number: 8080}}}}
      - {path: /api, pathType: Prefix, backend: {service: {name: infra-backend-v3, port: {number: 8080}}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: api-v2, namespace: gateway-conformance-infra}
spec:
  parentRefs: [{name: same-namespace}]
  hostnames: [shared.test]
  rules:
  - matches: [{path: {type: PathPrefix, value: /api/v2}}]
    backendRefs: [{name: infra-backend-v2, port: 8080}]
  - matches: [{path: {type: PathPrefix, value: /api}, headers: [{name: x-canary, value: \"1\"}]}]
    backendRefs: [{name: infra-backend-v2, port: 8080}]
";
    let b = built(ingress);
    assert_eq!(get(&b, "shared.test", "/"), "infra-backend-v1");
    assert_eq!(get(&b, "shared.test", "/api/v2/x"), "infra-backend-v2");
    assert_eq!(get(&b, "shared.test", "/api/x"), "infra-backend-v3");
    assert_eq!(
        answer(&b, "shared.test", "GET", "/api/x", &[("x-canary", "1")]),
        "infra-backend-v2"
    );
    // The Ingress still serves hosts the Gateway does not touch.
    assert_eq!(get(&b, "elsewhere.test", "/"), "404");
}

#[test]
fn weights_beyond_the_spec_drop_the_rule() {
    // BackendRef.Weight: 0 to 1,000,000 (httproute_types.go); a manifest is not validated by
    // the CRD, so the build checks it.
    let b = built(
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: heavy, namespace: gateway-conformance-infra}
spec:
  parentRefs: [{name: same-namespace}]
  hostnames: [heavy.test]
  rules:
  - matches: [{path: {type: PathPrefix, value: /heavy}}]
    backendRefs: [{name: infra-backend-v1, port: 8080, weight: 2000000}]
  - backendRefs: [{name: infra-backend-v2, port: 8080, weight: 1000000}]
",
    );
    assert_eq!(get(&b, "heavy.test", "/heavy"), "infra-backend-v2");
    assert!(
        b.diagnostics
            .iter()
            .any(|d| d.field == "spec.rules[0].backendRefs[0].weight")
    );
}
