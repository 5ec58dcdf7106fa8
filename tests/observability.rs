//! Metrics, access logs and tracing fields, end to end.

mod support;

use http::StatusCode;
use std::time::Duration;
use support::*;

const LABELS_OK: &str = r#"namespace="test",ingress="obs",service="web",status_class="2xx""#;

async fn start(extra: &[&str]) -> (tempfile::TempDir, Vestibule) {
    let web = backend("web").await;
    let dir = manifest_dir();
    let services = [
        service_yaml("web", &[(web, None)]),
        service_yaml("idle", &[(web, Some(false))]),
    ]
    .join("---\n");
    write_atomic(dir.path(), "s.yaml", &services);
    write_atomic(
        dir.path(),
        "i.yaml",
        &ingress_yaml(
            "obs",
            &[
                ("obs.test", "Prefix", "/", "web"),
                ("obs.test", "Prefix", "/idle", "idle"),
            ],
        ),
    );
    let v = Vestibule::start(dir.path(), extra);
    (dir, v)
}

/// Waits until the access log holds `n` lines (they are written in the background).
async fn access_lines(v: &Vestibule, n: usize) -> Vec<String> {
    for _ in 0..200 {
        let lines = v.access_log();
        if lines.len() >= n {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("expected {n} access-log lines, got {:?}", v.access_log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_metrics_move_for_routed_404_and_503() {
    let (_dir, v) = start(&[]).await;
    let before = v.metrics().await;
    assert_eq!(
        metric_value(&before, "vestibule_requests_total", LABELS_OK),
        None
    );
    for _ in 0..3 {
        assert_eq!(get(v.http, "obs.test", "/x").await.status, StatusCode::OK);
    }
    assert_eq!(
        get(v.http, "nowhere.test", "/").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(v.http, "obs.test", "/idle").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let _ = access_lines(&v, 5).await; // the exchanges are recorded when their bodies end
    let m = v.metrics().await;
    assert_eq!(
        metric_value(&m, "vestibule_requests_total", LABELS_OK),
        Some(3.0),
        "{m}"
    );
    assert_eq!(
        metric_value(&m, "vestibule_request_duration_seconds_count", LABELS_OK),
        Some(3.0)
    );
    let not_found = r#"namespace="",ingress="",service="",status_class="4xx""#;
    assert_eq!(
        metric_value(&m, "vestibule_requests_total", not_found),
        Some(1.0),
        "{m}"
    );
    let unavailable = r#"namespace="test",ingress="obs",service="idle",status_class="5xx""#;
    assert_eq!(
        metric_value(&m, "vestibule_requests_total", unavailable),
        Some(1.0),
        "{m}"
    );
    assert!(
        metric_value(
            &m,
            "vestibule_upstream_header_duration_seconds_count",
            r#"protocol="http""#
        )
        .unwrap()
            >= 3.0
    );
    assert!(
        metric_value(
            &m,
            "vestibule_upstream_connect_duration_seconds_count",
            r#"protocol="http""#
        )
        .unwrap()
            >= 1.0
    );
    assert_eq!(metric_value(&m, "vestibule_routes", ""), Some(2.0));
    assert_eq!(metric_value(&m, "vestibule_hosts", ""), Some(1.0));
    assert_eq!(
        metric_value(&m, "vestibule_endpoints", r#"state="ready""#),
        Some(1.0)
    );
    assert_eq!(
        metric_value(&m, "vestibule_endpoints", r#"state="not_ready""#),
        Some(1.0)
    );
    assert_eq!(
        metric_value(&m, "vestibule_config_reloads_total", r#"result="success""#),
        Some(1.0)
    );
    assert!(
        metric_value(
            &m,
            "vestibule_config_last_reload_success_timestamp_seconds",
            ""
        )
        .unwrap()
            > 1.7e9
    );
    assert_eq!(
        metric_value(
            &m,
            "vestibule_build_info",
            &format!(r#"version="{}""#, env!("CARGO_PKG_VERSION"))
        ),
        Some(1.0)
    );
    assert!(
        m.trim_end().ends_with("# EOF"),
        "OpenMetrics text ends with # EOF"
    );
    // No label carries a path or a client address.
    assert!(!m.contains("/x") && !m.contains("127.0.0.1"), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_errors_and_diagnostics_are_counted() {
    let dir = manifest_dir();
    write_atomic(
        dir.path(),
        "s.yaml",
        &service_yaml("down", &[(dead_port(), None)]),
    );
    write_atomic(
        dir.path(),
        "i.yaml",
        &ingress_yaml(
            "bad",
            &[
                ("e.test", "Prefix", "/", "down"),
                ("e.test", "Prefix", "/ghost", "ghost"),
            ],
        ),
    );
    let v = Vestibule::start(dir.path(), &[]);
    assert_eq!(
        get(v.http, "e.test", "/").await.status,
        StatusCode::BAD_GATEWAY
    );
    let m = v.metrics().await;
    assert!(
        metric_value(
            &m,
            "vestibule_upstream_errors_total",
            r#"reason="connect",protocol="http""#
        )
        .unwrap()
            >= 1.0,
        "{m}"
    );
    let field = r#"kind="Ingress",field="spec.rules.http.paths.backend.service.name""#;
    assert_eq!(
        metric_value(&m, "vestibule_diagnostics", field),
        Some(1.0),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_access_log_carries_every_field() {
    let (_dir, v) = start(&[]).await;
    let req = http::Request::post(format!("http://{}/things?token=secret-query", v.http))
        .header("host", "obs.test")
        .header("x-request-id", "req-42")
        .body(http_body_util::Full::new(bytes::Bytes::from_static(
            b"12345",
        )))
        .unwrap();
    let answer = send(v.http, req).await;
    assert_eq!(answer.status, StatusCode::OK);
    let lines = access_lines(&v, 1).await;
    let line: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    for field in [
        "time",
        "request_id",
        "client",
        "method",
        "host",
        "path",
        "protocol",
        "status",
        "bytes_in",
        "bytes_out",
        "duration_ms",
        "upstream",
        "upstream_ms",
        "ingress",
        "service",
    ] {
        assert!(!line[field].is_null(), "{field} missing in {line}");
    }
    assert_eq!(line["request_id"], "req-42");
    assert_eq!(line["client"], "127.0.0.1");
    assert_eq!(line["method"], "POST");
    assert_eq!(line["host"], "obs.test");
    assert_eq!(line["path"], "/things", "the query is not logged");
    assert_eq!(line["protocol"], "HTTP/1.1");
    assert_eq!(line["status"], 200);
    assert_eq!(line["bytes_in"], 5);
    assert_eq!(line["bytes_out"].as_u64(), Some(answer.text.len() as u64));
    assert_eq!(line["ingress"], "test/obs");
    assert_eq!(line["service"], "test/web:http");
    assert!(line["upstream"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert!(!lines[0].contains("secret-query"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_access_log_and_switching_it_off() {
    let (_dir, v) = start(&["--log-format", "text"]).await;
    assert_eq!(
        get(v.http, "nowhere.test", "/missing").await.status,
        StatusCode::NOT_FOUND
    );
    let line = access_lines(&v, 1).await.remove(0);
    assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
    assert!(line.contains("\"GET /missing HTTP/1.1\" 404 "), "{line}");
    for key in [
        "host=nowhere.test",
        "in=0",
        "ms=",
        "upstream=-",
        "upstream_ms=-",
        "ingress=-",
        "service=-",
        "id=",
    ] {
        assert!(line.contains(key), "{key} in {line}");
    }
    let (_dir, v) = start(&["--access-log=false"]).await;
    assert_eq!(get(v.http, "obs.test", "/").await.status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(v.access_log().is_empty(), "{:?}", v.access_log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_carry_stable_fields() {
    let (_dir, v) = start(&["--log-level", "vestibule=debug"]).await;
    assert_eq!(
        get(v.http, "obs.test", "/idle/x").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    let logs = v.logs();
    let refused = logs
        .iter()
        .find(|l| l.contains("request refused"))
        .expect("a debug line for the 503");
    let line: serde_json::Value = serde_json::from_str(refused).unwrap();
    let span = &line["span"];
    assert_eq!(span["name"], "request");
    assert_eq!(span["host"], "obs.test");
    assert_eq!(span["path"], "/idle/x");
    assert_eq!(span["ingress"], "test/obs");
    assert_eq!(span["route"], "/idle");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_the_logs() {
    const MARKER: &str = "c2VjcmV0LW1hcmtlci1kby1ub3QtbG9n"; // base64 of a marker string
    let ca = tls::Ca::new();
    let pair = ca.leaf(&["s.test"]);
    let dir = manifest_dir();
    let web = backend("web").await;
    // A good Secret, and a broken one whose key PEM carries the marker.
    let broken_key = format!("-----BEGIN PRIVATE KEY-----\n{MARKER}\n-----END PRIVATE KEY-----\n");
    let secrets = [
        tls::secret_yaml("good", &pair.cert, &pair.key),
        tls::secret_yaml("broken", &pair.cert, &broken_key),
    ]
    .join("---\n");
    write_atomic(dir.path(), "secrets.yaml", &secrets);
    write_atomic(dir.path(), "s.yaml", &service_yaml("web", &[(web, None)]));
    let ingress = "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: s, namespace: test}\nspec:\n  ingressClassName: vestibule\n  tls: [{secretName: good, hosts: [s.test]}, {secretName: broken, hosts: [b.test]}]\n";
    write_atomic(dir.path(), "i.yaml", ingress);
    let v = Vestibule::start(dir.path(), &["--log-level", "trace"]);
    let _ = tls::names_for(v.https, Some("s.test")).await;
    let _ = tls::names_for(v.https, Some("b.test")).await;
    let debug_routes = get(v.admin, "admin", "/debug/routes").await.text;
    assert!(
        debug_routes.contains("Secret test/broken"),
        "the broken Secret is diagnosed: {debug_routes}"
    );
    let everything = [
        v.logs().join("\n"),
        v.access_log().join("\n"),
        debug_routes,
        v.metrics().await,
    ]
    .join("\n");
    let key_body: String = pair
        .key
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    assert!(
        !everything.contains(MARKER),
        "the broken key's content leaked"
    );
    assert!(
        !everything.contains(&key_body[..40]),
        "the good key's content leaked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_uses_only_metrics_that_exist() {
    let dashboard =
        std::fs::read_to_string(repo("charts/vestibule/dashboards/vestibule.json")).unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&dashboard).expect("valid JSON");
    assert!(parsed["panels"].as_array().is_some_and(|p| !p.is_empty()));
    // Families without samples are not exported, so give every family one: a diagnostic, a
    // certificate, an upstream error.
    let (dir, v) = start(&[]).await;
    let pair = tls::Ca::new().leaf(&["obs.test"]);
    write_atomic(
        dir.path(),
        "secret.yaml",
        &tls::secret_yaml("cert", &pair.cert, &pair.key),
    );
    write_atomic(
        dir.path(),
        "down.yaml",
        &service_yaml("down", &[(dead_port(), None)]),
    );
    let tls_ingress = "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: more, namespace: test}\nspec:\n  ingressClassName: vestibule\n  tls: [{secretName: cert, hosts: [obs.test]}]\n";
    write_atomic(
        dir.path(),
        "more.yaml",
        &format!(
            "{tls_ingress}---\n{}",
            ingress_yaml(
                "down",
                &[
                    ("down.test", "Prefix", "/", "down"),
                    ("down.test", "Prefix", "/ghost", "ghost")
                ]
            )
        ),
    );
    v.eventually("down.test", "/", Duration::from_secs(5), |a| {
        a.status == StatusCode::BAD_GATEWAY
    })
    .await;
    let _ = get(v.http, "obs.test", "/").await;
    let _ = access_lines(&v, 2).await;
    let metrics = v.metrics().await;
    let mut names: Vec<&str> = dashboard
        .match_indices("vestibule_")
        .map(|(i, _)| {
            let rest = &dashboard[i..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            &rest[..end]
        })
        .collect();
    names.sort();
    names.dedup();
    assert!(names.len() >= 10, "{names:?}");
    for name in names {
        // A sample, or the family's TYPE line (a family without series yet, or `_bucket` of a histogram).
        let exported = metrics.lines().any(|l| {
            l.starts_with(name)
                || l.strip_prefix("# TYPE ")
                    .and_then(|t| t.split(' ').next())
                    .is_some_and(|family| name.starts_with(family))
        });
        assert!(exported, "{name} is not exported:\n{metrics}");
    }
}

// Issue #16: a new Ingress with its own host, Service and endpoints is a partial build (the
// log says how many Ingresses it rebuilt), and the endpoint gauge, which a partial build
// adjusts only where the backends changed, counts the new Service's endpoints in and, when
// the Ingress goes, out again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_build_keeps_the_endpoint_gauge_right() {
    let (dir, v) = start(&[]).await;
    let (other, second) = (backend("other").await, backend("other").await);
    let ready = |m: &str| metric_value(m, "vestibule_endpoints", r#"state="ready""#);
    assert_eq!(ready(&v.metrics().await), Some(1.0));
    write_atomic(
        dir.path(),
        "other.yaml",
        &[
            service_yaml("other", &[(other, None), (second, None)]),
            ingress_yaml("other", &[("other.test", "Prefix", "/", "other")]),
        ]
        .join("---\n"),
    );
    v.eventually("other.test", "/", Duration::from_secs(10), |a| {
        a.status == StatusCode::OK
    })
    .await;
    assert_eq!(ready(&v.metrics().await), Some(3.0));
    assert!(
        v.logs()
            .iter()
            .any(|l| l.contains(r#""rebuilt":"1 Ingresses""#)),
        "{:?}",
        v.logs()
    );
    write_atomic(
        dir.path(),
        "other.yaml",
        &service_yaml("other", &[(other, None), (second, None)]),
    );
    v.eventually("other.test", "/", Duration::from_secs(10), |a| {
        a.status == StatusCode::NOT_FOUND
    })
    .await;
    assert_eq!(ready(&v.metrics().await), Some(1.0), "no route names it");
    assert_eq!(get(v.http, "obs.test", "/").await.status, StatusCode::OK);
}
