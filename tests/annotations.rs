//! ingress-nginx annotations through the real proxy, with echo backends on loopback. Each test
//! names the ingress-nginx e2e test (`test/e2e/annotations/*.go`) or document it ports.

mod support;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{Full, StreamBody};
use hyper::body::Frame;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use support::*;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

/// An Ingress `name` in namespace `test`: one rule (`host`, `path` of `path_type`, Service
/// port `http`) and ingress-nginx annotations given without their prefix.
fn ingress(
    name: &str,
    host: &str,
    (path, path_type): (&str, &str),
    service: &str,
    annotations: &[(&str, &str)],
) -> String {
    let mut text = format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: {name}\n  namespace: test\n  annotations:\n"
    );
    for (k, v) in annotations {
        text.push_str(&format!("    nginx.ingress.kubernetes.io/{k}: {v:?}\n"));
    }
    if annotations.is_empty() {
        text.push_str("    {}\n");
    }
    text.push_str(&format!(
        "spec:\n  ingressClassName: vestibule\n  rules:\n    - host: {host}\n      http:\n        paths:\n          - path: {path:?}\n            pathType: {path_type}\n            backend: {{service: {{name: {service}, port: {{name: http}}}}}}\n"
    ));
    text
}

const PREFIX: &str = "Prefix";
const REGEX: &str = "ImplementationSpecific";

/// Starts Vestibule on `files` (name, text), with `extra` flags.
fn start(files: &[(&str, String)], extra: &[&str]) -> (tempfile::TempDir, Vestibule) {
    let dir = manifest_dir();
    for (name, text) in files {
        write_atomic(dir.path(), name, text);
    }
    let v = Vestibule::start(dir.path(), extra);
    (dir, v)
}

async fn echo_service(name: &str) -> String {
    service_yaml(name, &[(backend(name).await, None)])
}

/// A pod that answers every request with `status`, counting them.
async fn fixed_pod(status: u16) -> (SocketAddr, Arc<AtomicUsize>) {
    slow_pod(status, Duration::ZERO).await
}

fn header<'a>(a: &'a Answer, name: &str) -> &'a str {
    a.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn seen_header(a: &Answer, name: &str) -> String {
    a.json()["headers"][name].as_str().unwrap_or("").to_owned()
}

async fn post(addr: SocketAddr, host: &str, path: &str, body: Vec<u8>) -> Answer {
    let req = Request::post(format!("http://{addr}{path}"))
        .header("host", host)
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    send(addr, req).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewrite_target_and_use_regex() {
    let files = [
        ("s.yaml", echo_service("echo").await),
        // examples/rewrite/README.md: captures of the path regex in the target.
        (
            "a.yaml",
            ingress(
                "a",
                "rewrite.test",
                ("/something(/|$)(.*)", REGEX),
                "echo",
                &[("rewrite-target", "/$2")],
            ),
        ),
        // rewrite.go "should use ~* location modifier if regex annotation is present".
        (
            "b.yaml",
            ingress("b", "regex.test", ("/foo", PREFIX), "echo", &[]),
        ),
        (
            "c.yaml",
            ingress(
                "c",
                "regex.test",
                ("/foo.+", REGEX),
                "echo",
                &[("use-regex", "true"), ("rewrite-target", "/new/backend")],
            ),
        ),
    ];
    let (_dir, v) = start(&files, &[]);
    for (path, sent, query) in [
        ("/something", "/", None),
        ("/something/new", "/new", None),
        ("/SOMETHING/new?x=1", "/new", Some("x=1")),
    ] {
        let a = get(v.http, "rewrite.test", path).await;
        assert_eq!(a.status, StatusCode::OK, "{path}: {}", a.text);
        assert_eq!(a.json()["path"], sent, "{path}");
        assert_eq!(a.json()["query"].as_str(), query, "{path}");
    }
    assert_eq!(
        get(v.http, "rewrite.test", "/other").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(v.http, "regex.test", "/foo").await.json()["path"],
        "/foo"
    );
    assert_eq!(
        get(v.http, "regex.test", "/foo/bar").await.json()["path"],
        "/new/backend"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_app_root_www_and_aliases() {
    let files = [
        ("s.yaml", echo_service("echo").await),
        // redirect.go: 301 by default, permanent-redirect-code overrides it.
        (
            "r.yaml",
            ingress(
                "r",
                "redirect.test",
                ("/", PREFIX),
                "echo",
                &[("permanent-redirect", "http://redirect.example.com")],
            ),
        ),
        (
            "r2.yaml",
            ingress(
                "r2",
                "redirect2.test",
                ("/", PREFIX),
                "echo",
                &[
                    ("permanent-redirect", "https://b.example.com/x"),
                    ("permanent-redirect-code", "308"),
                ],
            ),
        ),
        // approot.go "should redirect to /foo".
        (
            "ar.yaml",
            ingress(
                "ar",
                "approot.bar.com",
                ("/", PREFIX),
                "echo",
                &[("app-root", "/foo")],
            ),
        ),
        // fromtowwwredirect.go "should redirect from www HTTP to HTTP".
        (
            "w.yaml",
            ingress(
                "w",
                "fromtowwwredirect.bar.com",
                ("/", PREFIX),
                "echo",
                &[("from-to-www-redirect", "true")],
            ),
        ),
        // alias.go "should return status code 200 for host 'foo' and 'bar'".
        (
            "al.yaml",
            ingress(
                "al",
                "foo",
                ("/", PREFIX),
                "echo",
                &[("server-alias", "bar")],
            ),
        ),
        // forcesslredirect.go: redirect without TLS on the host.
        (
            "f.yaml",
            ingress(
                "f",
                "force.test",
                ("/", PREFIX),
                "echo",
                &[("force-ssl-redirect", "true")],
            ),
        ),
    ];
    let (_dir, v) = start(&files, &[]);
    let a = get(v.http, "redirect.test", "/something").await;
    assert_eq!(
        (a.status, header(&a, "location")),
        (StatusCode::MOVED_PERMANENTLY, "http://redirect.example.com")
    );
    let a = get(v.http, "redirect2.test", "/something").await;
    assert_eq!(
        (a.status, header(&a, "location")),
        (StatusCode::PERMANENT_REDIRECT, "https://b.example.com/x")
    );
    let a = get(v.http, "approot.bar.com", "/").await;
    assert_eq!(
        (a.status, header(&a, "location")),
        (StatusCode::FOUND, "http://approot.bar.com/foo")
    );
    assert_eq!(
        get(v.http, "approot.bar.com", "/foo").await.json()["path"],
        "/foo"
    );
    let a = get(v.http, "www.fromtowwwredirect.bar.com", "/foo").await;
    assert_eq!(
        (a.status, header(&a, "location")),
        (
            StatusCode::PERMANENT_REDIRECT,
            "http://fromtowwwredirect.bar.com/foo"
        )
    );
    assert_eq!(
        get(v.http, "fromtowwwredirect.bar.com", "/foo")
            .await
            .status,
        StatusCode::OK
    );
    let a = get(v.http, "bar", "/").await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(seen_header(&a, "host"), "bar");
    assert_eq!(get(v.http, "baz", "/").await.status, StatusCode::NOT_FOUND);
    let a = get(v.http, "force.test", "/x?y=1").await;
    assert_eq!(
        (a.status, header(&a, "location")),
        (StatusCode::PERMANENT_REDIRECT, "https://force.test/x?y=1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_vhost_and_x_forwarded_prefix() {
    let files = [
        ("s.yaml", echo_service("echo").await),
        // upstreamvhost.go and xforwardedprefix.go: the pod sees these headers.
        (
            "v.yaml",
            ingress(
                "v",
                "vhost.test",
                ("/", PREFIX),
                "echo",
                &[
                    ("upstream-vhost", "inner.svc"),
                    ("x-forwarded-prefix", "/app"),
                ],
            ),
        ),
        (
            "p.yaml",
            ingress("p", "plain.test", ("/", PREFIX), "echo", &[]),
        ),
    ];
    let (_dir, v) = start(&files, &[]);
    let a = get(v.http, "vhost.test", "/").await;
    assert_eq!(seen_header(&a, "host"), "inner.svc");
    assert_eq!(seen_header(&a, "x-forwarded-host"), "vhost.test");
    assert_eq!(seen_header(&a, "x-forwarded-prefix"), "/app");
    let a = get(v.http, "plain.test", "/").await;
    assert_eq!(seen_header(&a, "host"), "plain.test");
    assert_eq!(seen_header(&a, "x-forwarded-prefix"), "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_body_size_answers_413_before_the_pod() {
    // The pod answers once it has the head, without reading the body: a moment's wait keeps
    // its 200 from racing the limit of a chunked body still streaming.
    let (pod, seen) = slow_pod(200, Duration::from_millis(300)).await;
    let files = [
        ("s.yaml", service_yaml("pod", &[(pod, None)])),
        (
            "small.yaml",
            ingress(
                "small",
                "small.test",
                ("/", PREFIX),
                "pod",
                &[("proxy-body-size", "1k")],
            ),
        ),
        (
            "plain.yaml",
            ingress("plain", "plain.test", ("/", PREFIX), "pod", &[]),
        ),
        (
            "open.yaml",
            ingress(
                "open",
                "open.test",
                ("/", PREFIX),
                "pod",
                &[("proxy-body-size", "0")],
            ),
        ),
    ];
    let (_dir, v) = start(&files, &[]);
    assert_eq!(
        post(v.http, "small.test", "/", vec![1; 1024]).await.status,
        StatusCode::OK
    );
    assert_eq!(seen.load(Ordering::SeqCst), 1);
    let a = post(v.http, "small.test", "/", vec![1; 1025]).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", a.text);
    assert_eq!(seen.load(Ordering::SeqCst), 1, "the pod was not contacted");
    // A chunked body is counted as it streams.
    let chunks = futures_util::stream::iter(
        (0..4).map(|_| Ok::<_, std::io::Error>(Frame::data(Bytes::from(vec![2u8; 512])))),
    );
    let req = Request::post(format!("http://{}/", v.http))
        .header("host", "small.test")
        .body(StreamBody::new(chunks))
        .unwrap();
    let client = Client::builder(TokioExecutor::new()).build_http();
    let a = read(client.request(req).await.unwrap()).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", a.text);
    // The default (--proxy-body-size, 1m as ingress-nginx) and `0`, no limit.
    let big = vec![3u8; (1 << 20) + 1];
    assert_eq!(
        post(v.http, "plain.test", "/", big.clone()).await.status,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    assert_eq!(
        post(v.http, "open.test", "/", big).await.status,
        StatusCode::OK
    );
    let metrics = v.metrics().await;
    assert!(
        metric_value(
            &metrics,
            "vestibule_client_errors_total",
            "reason=\"body_size\""
        )
        .is_some_and(|n| n >= 3.0),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_timeouts_answer_504() {
    // proxy.go "should set valid proxy timeouts": a read timeout of 1 s on a pod that takes 2.
    let files = [
        ("s.yaml", echo_service("echo").await),
        (
            "t.yaml",
            ingress(
                "t",
                "timeout.test",
                ("/", PREFIX),
                "echo",
                &[("proxy-read-timeout", "1")],
            ),
        ),
        (
            "p.yaml",
            ingress("p", "plain.test", ("/", PREFIX), "echo", &[]),
        ),
    ];
    let (_dir, v) = start(&files, &[]);
    let started = Instant::now();
    let a = get(v.http, "timeout.test", "/sleep?ms=2500").await;
    assert_eq!(a.status, StatusCode::GATEWAY_TIMEOUT, "{}", a.text);
    assert!(started.elapsed() < Duration::from_millis(2400));
    assert_eq!(
        get(v.http, "plain.test", "/sleep?ms=1200").await.status,
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_send_timeout_ends_an_upload_the_pod_does_not_take() {
    // A pod that reads the request head and then nothing more.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let pod = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            held.push(s);
        }
    });
    let files = [
        ("s.yaml", service_yaml("pod", &[(pod, None)])),
        (
            "t.yaml",
            ingress(
                "t",
                "send.test",
                ("/", PREFIX),
                "pod",
                &[("proxy-send-timeout", "1"), ("proxy-body-size", "0")],
            ),
        ),
    ];
    let (_dir, v) = start(&files, &[]);
    let chunk = Bytes::from(vec![7u8; 64 * 1024]);
    let chunks = futures_util::stream::iter(
        (0..1024).map(move |_| Ok::<_, std::io::Error>(Frame::data(chunk.clone()))),
    );
    let req = Request::post(format!("http://{}/", v.http))
        .header("host", "send.test")
        .body(StreamBody::new(chunks))
        .unwrap();
    let client = Client::builder(TokioExecutor::new()).build_http();
    let started = Instant::now();
    let answered = tokio::time::timeout(Duration::from_secs(20), client.request(req)).await;
    let a = read(
        answered
            .expect("answered before the header timeout")
            .unwrap(),
    )
    .await;
    assert_eq!(a.status, StatusCode::GATEWAY_TIMEOUT, "{}", a.text);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_next_upstream_retries_listed_statuses() {
    // proxy.go "should build proxy next upstream": `error timeout http_502`.
    let (bad, bad_seen) = fixed_pod(502).await;
    let good = backend("good").await;
    let both = service_yaml("flaky", &[(bad, None), (good, None)]);
    let files = [
        ("s.yaml", both),
        (
            "n.yaml",
            ingress(
                "n",
                "next.test",
                ("/", PREFIX),
                "flaky",
                &[("proxy-next-upstream", "error timeout http_502")],
            ),
        ),
        (
            "one.yaml",
            ingress(
                "one",
                "once.test",
                ("/", PREFIX),
                "flaky",
                &[
                    ("proxy-next-upstream", "error timeout http_502"),
                    ("proxy-next-upstream-tries", "1"),
                ],
            ),
        ),
        (
            "p.yaml",
            ingress("p", "plain.test", ("/", PREFIX), "flaky", &[]),
        ),
    ];
    let (_dir, v) = start(&files, &[]);
    for _ in 0..4 {
        let a = get(v.http, "next.test", "/").await;
        assert_eq!((a.status, a.backend()), (StatusCode::OK, "good".to_owned()));
    }
    assert!(
        bad_seen.load(Ordering::SeqCst) >= 1,
        "round robin reached the bad pod"
    );
    // One try only, or no annotation: the 502 reaches the client half of the time.
    let mut statuses = Vec::new();
    for host in ["once.test", "once.test", "plain.test", "plain.test"] {
        statuses.push(get(v.http, host, "/").await.status);
    }
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::BAD_GATEWAY)
            .count(),
        2,
        "{statuses:?}"
    );
    // A POST is not sent again after it reached a pod (no non_idempotent).
    let mut posts = Vec::new();
    for _ in 0..2 {
        posts.push(post(v.http, "next.test", "/", b"x".to_vec()).await.status);
    }
    assert!(posts.contains(&StatusCode::BAD_GATEWAY), "{posts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_backend_and_custom_http_errors() {
    let files = [
        ("s.yaml", echo_service("echo").await),
        ("e.yaml", echo_service("errors").await),
        // default_backend.go "should use a custom default backend as upstream".
        (
            "d.yaml",
            ingress(
                "default-backend",
                "default-backend",
                ("/", PREFIX),
                "invalid",
                &[("default-backend", "errors")],
            ),
        ),
        // customhttperrors.go: these statuses are answered by the default backend.
        (
            "c.yaml",
            ingress(
                "custom",
                "custom.test",
                ("/", PREFIX),
                "echo",
                &[
                    ("custom-http-errors", "404,500"),
                    ("default-backend", "errors"),
                ],
            ),
        ),
    ];
    let (_dir, v) = start(&files, &[]);
    let req = Request::get(format!("http://{}/alma/armud", v.http))
        .header("host", "default-backend")
        .header("x-request-id", "something-unique")
        .body(Full::default())
        .unwrap();
    let a = send(v.http, req).await;
    assert_eq!(
        (a.status, a.backend()),
        (StatusCode::OK, "errors".to_owned()),
        "{}",
        a.text
    );
    assert_eq!(seen_header(&a, "x-code"), "503");
    assert_eq!(seen_header(&a, "x-ingress-name"), "default-backend");
    assert_eq!(seen_header(&a, "x-service-name"), "invalid");
    assert_eq!(seen_header(&a, "x-request-id"), "something-unique");
    assert_eq!(a.json()["path"], "/alma/armud");

    let req = Request::get(format!("http://{}/status/404?q=1", v.http))
        .header("host", "custom.test")
        .header("accept", "text/html")
        .body(Full::default())
        .unwrap();
    let a = send(v.http, req).await;
    assert_eq!(
        (a.status, a.backend()),
        (StatusCode::OK, "errors".to_owned()),
        "{}",
        a.text
    );
    assert_eq!(seen_header(&a, "x-code"), "404");
    assert_eq!(seen_header(&a, "x-format"), "text/html");
    assert_eq!(seen_header(&a, "x-original-uri"), "/status/404?q=1");
    assert_eq!(seen_header(&a, "x-namespace"), "test");
    assert_eq!(seen_header(&a, "x-service-name"), "echo");
    assert_eq!(a.json()["path"], "/", "nginx sends the error request for /");
    assert_eq!(
        get(v.http, "custom.test", "/status/500").await.backend(),
        "errors"
    );
    // Statuses not listed pass through.
    let a = get(v.http, "custom.test", "/status/503").await;
    assert_eq!(
        (a.status, a.backend()),
        (StatusCode::SERVICE_UNAVAILABLE, "echo".to_owned())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_annotation_answers_503_and_spares_the_rest() {
    let files = [
        ("s.yaml", echo_service("echo").await),
        // proxy.go "should not set invalid proxy timeouts": Vestibule refuses the route.
        (
            "bad.yaml",
            ingress(
                "bad",
                "shop.test",
                ("/bad", PREFIX),
                "echo",
                &[("proxy-read-timeout", "20k")],
            ),
        ),
        (
            "good.yaml",
            ingress("good", "shop.test", ("/good", PREFIX), "echo", &[]),
        ),
        // snippet.go: snippets are refused by design, and only warned about.
        (
            "snip.yaml",
            ingress(
                "snip",
                "snip.test",
                ("/", PREFIX),
                "echo",
                &[("configuration-snippet", "more_set_headers \"X: y\";")],
            ),
        ),
    ];
    let (_dir, v) = start(&files, &[]);
    let a = get(v.http, "shop.test", "/bad").await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{}", a.text);
    assert!(
        !a.text.contains("20k"),
        "the reason stays in the diagnostics: {}",
        a.text
    );
    assert_eq!(
        get(v.http, "shop.test", "/good").await.status,
        StatusCode::OK
    );
    let a = get(v.http, "snip.test", "/").await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(header(&a, "x"), "");
    let routes = admin_json(v.admin, "/debug/routes").await;
    let text = routes.to_string();
    assert!(text.contains("proxy-read-timeout"), "{text}");
    assert!(text.contains("snippets are refused by design"), "{text}");
    let severity = |needle: &str| {
        let all = routes["diagnostics"].as_array().unwrap();
        let d = all
            .iter()
            .find(|d| d["field"].as_str().unwrap().contains(needle));
        d.map(|d| d["severity"].as_str().unwrap_or("").to_owned())
    };
    assert_eq!(severity("proxy-read-timeout").as_deref(), Some("error"));
    assert_eq!(
        severity("configuration-snippet").as_deref(),
        Some("warning")
    );
    let bad = routes["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["ingress"] == "test/bad");
    assert_eq!(bad.unwrap()["filters"], serde_json::json!(["deny"]));
}

/// `GET http://admin path` as JSON.
async fn admin_json(admin: SocketAddr, path: &str) -> serde_json::Value {
    get(admin, "admin", path).await.json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_next_upstream_timeout_stops_retrying_late_requests() {
    // annotations.md "Custom timeouts": no next endpoint after proxy-next-upstream-timeout.
    let (slow, _) = slow_pod(502, Duration::from_millis(1300)).await;
    let good = backend("good").await;
    let files = [
        (
            "s.yaml",
            service_yaml("flaky", &[(slow, None), (good, None)]),
        ),
        (
            "late.yaml",
            ingress(
                "late",
                "late.test",
                ("/", PREFIX),
                "flaky",
                &[
                    ("proxy-next-upstream", "error timeout http_502"),
                    ("proxy-next-upstream-timeout", "1"),
                ],
            ),
        ),
        (
            "any.yaml",
            ingress(
                "any",
                "any.test",
                ("/", PREFIX),
                "flaky",
                &[("proxy-next-upstream", "error timeout http_502")],
            ),
        ),
    ];
    let (_dir, v) = start(&files, &[]);
    // Round robin starts one request of each pair on the slow pod.
    let mut late = Vec::new();
    let mut any = Vec::new();
    for _ in 0..2 {
        late.push(get(v.http, "late.test", "/").await.status);
        any.push(get(v.http, "any.test", "/").await.status);
    }
    late.sort();
    assert_eq!(
        late,
        [StatusCode::OK, StatusCode::BAD_GATEWAY],
        "the late 502 is not retried"
    );
    assert_eq!(
        any,
        [StatusCode::OK, StatusCode::OK],
        "without a timeout it is"
    );
}

/// A canary Ingress `name` for `host` `/` to Service `service` with canary annotations.
fn canary_ingress(name: &str, host: &str, service: &str, rules: &[(&str, &str)]) -> String {
    let mut annotations = vec![("canary", "true")];
    annotations.extend_from_slice(rules);
    ingress(name, host, ("/", PREFIX), service, &annotations)
}

async fn backend_of(v: &Vestibule, host: &str, headers: &[(&str, &str)]) -> String {
    let mut req = Request::get(format!("http://{}/", v.http)).header("host", host);
    for (k, val) in headers {
        req = req.header(*k, *val);
    }
    send(v.http, req.body(Full::default()).unwrap())
        .await
        .backend()
}

// annotations/canary.go: by header (always, never, other values), by header value and
// pattern, by cookie, by weight (within a tolerance over 1000 requests), header before cookie;
// a canary without a main Ingress serves nothing and is a diagnostic; /debug/routes shows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_by_header_cookie_and_weight() {
    let files = [
        ("main.yaml", echo_service("main").await),
        ("canary.yaml", echo_service("canary").await),
        (
            "m.yaml",
            ingress("main", "foo.test", ("/", PREFIX), "main", &[]),
        ),
        (
            "c.yaml",
            canary_ingress(
                "canary",
                "foo.test",
                "canary",
                &[
                    ("canary-by-header", "CanaryByHeader"),
                    ("canary-by-cookie", "CanaryByCookie"),
                ],
            ),
        ),
        (
            "m2.yaml",
            ingress("main2", "bar.test", ("/", PREFIX), "main", &[]),
        ),
        (
            "c2.yaml",
            canary_ingress(
                "canary2",
                "bar.test",
                "canary",
                &[
                    ("canary-by-header", "CanaryByHeader"),
                    ("canary-by-header-value", "DoCanary"),
                    ("canary-weight", "30"),
                ],
            ),
        ),
        (
            "c3.yaml",
            canary_ingress(
                "orphan",
                "orphan.test",
                "canary",
                &[("canary-weight", "100")],
            ),
        ),
    ];
    let (_dir, v) = start(&files, &[]);
    v.eventually("foo.test", "/", Duration::from_secs(10), |a| {
        a.backend() == "main"
    })
    .await;
    assert_eq!(
        backend_of(&v, "foo.test", &[("CanaryByHeader", "always")]).await,
        "canary"
    );
    assert_eq!(
        backend_of(&v, "foo.test", &[("CanaryByHeader", "never")]).await,
        "main"
    );
    assert_eq!(
        backend_of(&v, "foo.test", &[("CanaryByHeader", "badvalue")]).await,
        "main"
    );
    assert_eq!(
        backend_of(&v, "foo.test", &[("cookie", "CanaryByCookie=always")]).await,
        "canary"
    );
    assert_eq!(
        backend_of(
            &v,
            "foo.test",
            &[
                ("CanaryByHeader", "never"),
                ("cookie", "CanaryByCookie=always")
            ]
        )
        .await,
        "main",
        "the header decides before the cookie"
    );
    assert_eq!(
        backend_of(&v, "bar.test", &[("CanaryByHeader", "DoCanary")]).await,
        "canary"
    );
    let mut canary = 0;
    for _ in 0..1000 {
        if backend_of(&v, "bar.test", &[("CanaryByHeader", "always")]).await == "canary" {
            canary += 1;
        }
    }
    assert!(
        (230..=370).contains(&canary),
        "30% of 1000 went to the canary: {canary}"
    );
    assert_eq!(
        get(v.http, "orphan.test", "/").await.status,
        StatusCode::NOT_FOUND
    );
    let routes = admin_json(v.admin, "/debug/routes").await;
    let text = routes.to_string();
    assert!(
        text.contains("no main Ingress routes orphan.test/"),
        "{text}"
    );
    let foo = routes["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["host"] == "foo.test")
        .unwrap()
        .clone();
    assert_eq!(foo["canary"]["ingress"], "test/canary");
    assert_eq!(foo["canary"]["header"], "canarybyheader");
}

/// A Service `name` with one echo endpoint per name in `pods` (each answers with its name).
async fn pods_service(name: &str, pods: &[&str]) -> String {
    let mut endpoints = Vec::new();
    for pod in pods {
        endpoints.push((backend(pod).await, None));
    }
    service_yaml(name, &endpoints)
}

async fn answer_with(v: &Vestibule, host: &str, path: &str, headers: &[(&str, &str)]) -> Answer {
    let mut req = Request::get(format!("http://{}{path}", v.http)).header("host", host);
    for (k, val) in headers {
        req = req.header(*k, *val);
    }
    send(v.http, req.body(Full::default()).unwrap()).await
}

// annotations/upstreamhashby.go "should connect to the same pod": one key, one pod; other keys
// spread over the pods.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_hash_by_keeps_a_key_on_one_pod() {
    let files = [
        ("s.yaml", pods_service("echo", &["p1", "p2", "p3"]).await),
        (
            "i.yaml",
            ingress(
                "hash",
                "hash.test",
                ("/", PREFIX),
                "echo",
                &[("upstream-hash-by", "$request_uri")],
            ),
        ),
    ];
    let (_dir, v) = start(&files, &[]);
    v.eventually("hash.test", "/", Duration::from_secs(10), |a| {
        a.status == StatusCode::OK
    })
    .await;
    let first = answer_with(&v, "hash.test", "/user/42", &[])
        .await
        .backend();
    for _ in 0..20 {
        assert_eq!(
            answer_with(&v, "hash.test", "/user/42", &[])
                .await
                .backend(),
            first
        );
    }
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..60 {
        seen.insert(
            answer_with(&v, "hash.test", &format!("/user/{i}"), &[])
                .await
                .backend(),
        );
    }
    assert_eq!(seen.len(), 3, "keys spread over the pods: {seen:?}");
}

// annotations/affinity.go: "should set sticky cookie SERVERID", "should set the path to
// /something on the generated cookie", "should work with use-regex annotation and
// session-cookie-path"; stickiness across 100 requests; a cookie naming a pod that is gone
// goes elsewhere and gets a new cookie.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_affinity_sticks_and_moves_when_the_pod_goes() {
    let files = [
        ("s.yaml", pods_service("echo", &["p1", "p2", "p3"]).await),
        (
            "i.yaml",
            ingress(
                "sticky",
                "sticky.test",
                ("/", PREFIX),
                "echo",
                &[
                    ("affinity", "cookie"),
                    ("affinity-mode", "persistent"),
                    ("session-cookie-name", "SERVERID"),
                    ("session-cookie-path", "/something"),
                    ("session-cookie-max-age", "172800"),
                ],
            ),
        ),
    ];
    let (dir, v) = start(&files, &[]);
    v.eventually("sticky.test", "/", Duration::from_secs(10), |a| {
        a.status == StatusCode::OK
    })
    .await;
    let first = answer_with(&v, "sticky.test", "/", &[]).await;
    let set = first.headers["set-cookie"].to_str().unwrap().to_owned();
    assert!(set.starts_with("SERVERID="), "{set}");
    assert!(
        set.contains("Path=/something") && set.contains("Max-Age=172800"),
        "{set}"
    );
    let cookie = set.split(';').next().unwrap().to_owned();
    let pod = first.backend();
    for _ in 0..100 {
        let a = answer_with(&v, "sticky.test", "/", &[("cookie", &cookie)]).await;
        assert_eq!(a.backend(), pod, "sticky");
        assert!(
            a.headers.get("set-cookie").is_none(),
            "no new cookie for a known session"
        );
    }
    // The pod goes: its endpoint leaves the Service.
    let others: Vec<&str> = ["p1", "p2", "p3"]
        .into_iter()
        .filter(|p| *p != pod)
        .collect();
    write_atomic(dir.path(), "s.yaml", &pods_service("echo", &others).await);
    let deadline = Instant::now() + Duration::from_secs(10);
    let a = loop {
        let a = answer_with(&v, "sticky.test", "/", &[("cookie", &cookie)]).await;
        if a.backend() != pod && !a.backend().is_empty() {
            break a;
        }
        assert!(Instant::now() < deadline, "the session never moved");
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    let renewed = a.headers["set-cookie"].to_str().unwrap();
    assert!(
        renewed.starts_with("SERVERID=") && !renewed.starts_with(&cookie),
        "{renewed}"
    );
}

// configmap.md / annotations.md load-balance: ewma sends most requests to the faster pod.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ewma_prefers_the_faster_pod() {
    let (slow, slow_hits) = slow_pod(200, Duration::from_millis(150)).await;
    let (fast, fast_hits) = slow_pod(200, Duration::ZERO).await;
    let files = [
        (
            "s.yaml",
            service_yaml("pods", &[(slow, None), (fast, None)]),
        ),
        (
            "i.yaml",
            ingress(
                "ewma",
                "ewma.test",
                ("/", PREFIX),
                "pods",
                &[("load-balance", "ewma")],
            ),
        ),
    ];
    let (_dir, v) = start(&files, &[]);
    v.eventually("ewma.test", "/", Duration::from_secs(10), |a| {
        a.status == StatusCode::OK
    })
    .await;
    for _ in 0..40 {
        assert_eq!(get(v.http, "ewma.test", "/").await.status, StatusCode::OK);
    }
    let (slow, fast) = (
        slow_hits.load(Ordering::SeqCst),
        fast_hits.load(Ordering::SeqCst),
    );
    assert!(fast > 3 * slow, "fast {fast}, slow {slow}");
}

// annotations/serviceupstream.go: service-upstream sends to the Service's cluster IP and port
// (here a loopback address, as kube-proxy would answer there); without it, a Service without
// endpoints answers 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_upstream_uses_the_cluster_ip() {
    let pod = backend("behind-cluster-ip").await;
    let service = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: direct, namespace: test}}\nspec:\n  clusterIP: {}\n  ports: [{{name: http, port: {}}}]\n",
        pod.ip(),
        pod.port()
    );
    let files = [
        ("s.yaml", service),
        (
            "i.yaml",
            ingress(
                "up",
                "up.test",
                ("/", PREFIX),
                "direct",
                &[("service-upstream", "true")],
            ),
        ),
        (
            "p.yaml",
            ingress("pods", "pods.test", ("/", PREFIX), "direct", &[]),
        ),
    ];
    let (_dir, v) = start(&files, &[]);
    let a = v
        .eventually("up.test", "/", Duration::from_secs(10), |a| {
            a.status == StatusCode::OK
        })
        .await;
    assert_eq!(a.backend(), "behind-cluster-ip");
    assert_eq!(
        get(v.http, "pods.test", "/").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

/// A server that records the method, target, Host and body of each request, answering 200.
async fn recorder() -> (
    SocketAddr,
    Arc<std::sync::Mutex<Vec<(String, String, String, Vec<u8>)>>>,
) {
    use http_body_util::BodyExt;
    use hyper::service::service_fn;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let record = record.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let record = record.clone();
                    async move {
                        let method = req.method().to_string();
                        let target = req.uri().to_string();
                        let host = req
                            .headers()
                            .get("host")
                            .map(|h| h.to_str().unwrap_or("").to_owned())
                            .unwrap_or_default();
                        let body = req
                            .into_body()
                            .collect()
                            .await
                            .map(|b| b.to_bytes().to_vec())
                            .unwrap_or_default();
                        record.lock().unwrap().push((method, target, host, body));
                        Ok::<_, std::convert::Infallible>(http::Response::new(Full::<Bytes>::from(
                            "mirrored",
                        )))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(s), service)
                    .await;
            });
        }
    });
    (addr, seen)
}

// annotations/mirror.go: mirror-target with $request_uri, mirror-host, mirror-request-body;
// the client gets the pod's answer; a dead mirror target changes nothing for the client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirror_sends_a_copy_and_never_the_answer() {
    let (mirror, seen) = recorder().await;
    let target = format!("http://{mirror}/copy$request_uri");
    let dead = format!("http://{}/", dead_port());
    let files = [
        ("s.yaml", echo_service("echo").await),
        (
            "i.yaml",
            ingress(
                "mirrored",
                "mirror.test",
                ("/", PREFIX),
                "echo",
                &[("mirror-target", &target), ("mirror-host", "shadow.test")],
            ),
        ),
        (
            "n.yaml",
            ingress(
                "nobody",
                "nobody.test",
                ("/", PREFIX),
                "echo",
                &[("mirror-target", &target), ("mirror-request-body", "off")],
            ),
        ),
        (
            "d.yaml",
            ingress(
                "dead",
                "dead.test",
                ("/", PREFIX),
                "echo",
                &[("mirror-target", &dead)],
            ),
        ),
    ];
    let (_dir, v) = start(&files, &[]);
    v.eventually("dead.test", "/", Duration::from_secs(10), |a| {
        a.status == StatusCode::OK
    })
    .await;
    let a = post(v.http, "mirror.test", "/upload?id=7", b"payload".to_vec()).await;
    assert_eq!(a.backend(), "echo", "the client gets the pod's answer");
    assert_eq!(
        a.json()["received"],
        7,
        "the pod got the whole body: {}",
        a.text
    );
    let n = post(v.http, "nobody.test", "/x", b"secret".to_vec()).await;
    assert_eq!(n.backend(), "echo");
    let deadline = Instant::now() + Duration::from_secs(5);
    while seen.lock().unwrap().len() < 2 {
        assert!(Instant::now() < deadline, "the copies did not arrive");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let copies = seen.lock().unwrap().clone();
    let full = copies
        .iter()
        .find(|c| c.1.starts_with("/copy/upload"))
        .expect("the copy");
    assert_eq!(full.0, "POST");
    assert_eq!(full.1, "/copy/upload?id=7");
    assert_eq!(full.2, "shadow.test");
    assert_eq!(full.3, b"payload");
    let bare = copies
        .iter()
        .find(|c| c.1 == "/copy/x")
        .expect("the bodiless copy");
    assert!(bare.3.is_empty(), "mirror-request-body off");
    assert_eq!(get(v.http, "dead.test", "/").await.status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let metrics = v.metrics().await;
    assert!(
        metric_value(
            &metrics,
            "vestibule_mirror_requests_total",
            "reason=\"sent\""
        )
        .unwrap_or(0.0)
            >= 2.0,
        "{metrics}"
    );
    assert!(
        metric_value(
            &metrics,
            "vestibule_mirror_requests_total",
            "reason=\"failed\""
        )
        .unwrap_or(0.0)
            >= 1.0,
        "{metrics}"
    );
}

/// A gRPC-style server over h2c: answers every call with `messages` length-prefixed messages
/// and the trailers `grpc-status: 0`, `x-seen-version: <the request's HTTP version>`.
async fn grpc_pod(messages: usize) -> SocketAddr {
    use hyper::service::service_fn;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<hyper::body::Incoming>| async move {
                    let version = format!("{:?}", req.version());
                    let te = req
                        .headers()
                        .get("te")
                        .map(|v| v.to_str().unwrap_or("").to_owned());
                    let mut frames: Vec<Result<Frame<Bytes>, std::convert::Infallible>> = (0
                        ..messages)
                        .map(|i| {
                            let payload = format!("message {i}");
                            let mut framed = vec![0u8];
                            framed.extend_from_slice(&(payload.len() as u32).to_be_bytes());
                            framed.extend_from_slice(payload.as_bytes());
                            Ok(Frame::data(Bytes::from(framed)))
                        })
                        .collect();
                    let mut trailers = http::HeaderMap::new();
                    trailers.insert("grpc-status", "0".parse().unwrap());
                    trailers.insert("x-seen-version", version.parse().unwrap());
                    trailers.insert("x-seen-te", te.unwrap_or_default().parse().unwrap());
                    frames.push(Ok(Frame::trailers(trailers)));
                    let body = StreamBody::new(futures_util::stream::iter(frames));
                    let response = http::Response::builder()
                        .header("content-type", "application/grpc")
                        .body(body)
                        .unwrap();
                    Ok::<_, std::convert::Infallible>(response)
                });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(hyper_util::rt::TokioIo::new(s), service)
                    .await;
            });
        }
    });
    addr
}

/// One gRPC call over h2c to Vestibule: the response's headers, data and trailers.
async fn grpc_call(v: &Vestibule, host: &str) -> (http::HeaderMap, Vec<u8>, http::HeaderMap) {
    use http_body_util::BodyExt;
    let stream = tokio::net::TcpStream::connect(v.http).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let req = Request::post(format!("http://{host}/demo.Greeter/SayHello"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Full::new(Bytes::from_static(&[0, 0, 0, 0, 2, b'h', b'i'])))
        .unwrap();
    let response = sender.send_request(req).await.unwrap();
    let (parts, body) = response.into_parts();
    let collected = body.collect().await.unwrap();
    let trailers = collected.trailers().cloned().unwrap_or_default();
    (parts.headers, collected.to_bytes().to_vec(), trailers)
}

// annotations/grpc.go ("should return OK for service with backend protocol GRPC", the
// streaming rows) and backendprotocol.go (H2C): the pod is spoken to in HTTP/2, messages and
// trailers come through; a gRPC route whose pod cannot be reached answers grpc-status 14 over
// HTTP 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_and_h2c_backends() {
    let pod = grpc_pod(3).await;
    let files = [
        ("s.yaml", service_yaml("grpc", &[(pod, None)])),
        ("d.yaml", service_yaml("down", &[(dead_port(), None)])),
        (
            "g.yaml",
            ingress(
                "g",
                "grpc.test",
                ("/", PREFIX),
                "grpc",
                &[("backend-protocol", "GRPC")],
            ),
        ),
        (
            "h.yaml",
            ingress(
                "h",
                "h2c.test",
                ("/", PREFIX),
                "grpc",
                &[("backend-protocol", "H2C")],
            ),
        ),
        (
            "x.yaml",
            ingress(
                "x",
                "down.test",
                ("/", PREFIX),
                "down",
                &[("backend-protocol", "GRPC")],
            ),
        ),
        (
            "t.yaml",
            ingress(
                "t",
                "tls.test",
                ("/", PREFIX),
                "grpc",
                &[("backend-protocol", "GRPCS")],
            ),
        ),
    ];
    let (_dir, v) = start(&files, &[]);
    v.eventually("h2c.test", "/", Duration::from_secs(10), |a| {
        a.status == StatusCode::OK
    })
    .await;
    let (headers, data, trailers) = grpc_call(&v, "grpc.test").await;
    assert_eq!(headers["content-type"], "application/grpc");
    assert_eq!(trailers["grpc-status"], "0", "{trailers:?}");
    assert_eq!(trailers["x-seen-version"], "HTTP/2.0");
    assert_eq!(trailers["x-seen-te"], "trailers");
    let text = String::from_utf8_lossy(&data);
    for i in 0..3 {
        assert!(text.contains(&format!("message {i}")), "{text}");
    }
    let (_, _, h2c) = grpc_call(&v, "h2c.test").await;
    assert_eq!(h2c["x-seen-version"], "HTTP/2.0");
    // Plain HTTP/1.1 clients reach an H2C pod too.
    assert_eq!(get(v.http, "h2c.test", "/").await.status, StatusCode::OK);
    let m = v.metrics().await;
    assert!(
        metric_value(
            &m,
            "vestibule_upstream_header_duration_seconds_count",
            r#"protocol="grpc""#
        )
        .unwrap_or(0.0)
            >= 1.0,
        "{m}"
    );
    assert!(
        metric_value(
            &m,
            "vestibule_upstream_connect_duration_seconds_count",
            r#"protocol="h2c""#
        )
        .unwrap_or(0.0)
            >= 1.0,
        "{m}"
    );
    let (down, _, _) = grpc_call(&v, "down.test").await;
    assert_eq!(down["grpc-status"], "14", "{down:?}");
    assert_eq!(down["content-type"], "application/grpc");
    let (tls_down, _, _) = grpc_call(&v, "tls.test").await;
    assert_eq!(
        tls_down["grpc-status"], "14",
        "GRPCS to a plain-text pod: the TLS handshake fails, a gRPC error"
    );
}

/// An HTTPS pod with a certificate for `pod.test` from `ca`: records the SNI each connection
/// sent and whether it showed a client certificate signed by `client_ca`; answers 200 with
/// `pod over TLS`.
async fn tls_pod(
    ca: &support::tls::Ca,
    client_ca: &support::tls::Ca,
) -> (
    SocketAddr,
    Arc<std::sync::Mutex<Vec<(Option<String>, bool)>>>,
) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let pair = ca.leaf(&["pod.test"]);
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pair.cert.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(pair.key.as_bytes()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(client_ca.cert.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .allow_unauthenticated()
    .build()
    .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .unwrap();
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let (config, record) = (config.clone(), record.clone());
            tokio::spawn(async move {
                let acceptor = rustls::server::Acceptor::default();
                let Ok(start) = tokio_rustls::LazyConfigAcceptor::new(acceptor, s).await else {
                    return;
                };
                let sni = start.client_hello().server_name().map(str::to_owned);
                let Ok(tls) = start.into_stream(config).await else {
                    record.lock().unwrap().push((sni, false));
                    return;
                };
                let client_cert = tls.get_ref().1.peer_certificates().is_some();
                record.lock().unwrap().push((sni, client_cert));
                let service =
                    hyper::service::service_fn(|_req: Request<hyper::body::Incoming>| async {
                        Ok::<_, std::convert::Infallible>(http::Response::new(Full::<Bytes>::from(
                            "pod over TLS",
                        )))
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (addr, seen)
}

// annotations/backendprotocol.go (HTTPS) and proxyssl.go: without proxy-ssl-verify any
// certificate is taken; with it and proxy-ssl-secret's CA the pod's certificate must chain to
// it and match proxy-ssl-name; proxy-ssl-server-name sends SNI; the Secret's tls.crt/tls.key
// are the proxy's client certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_backends() {
    use support::tls::{Ca, client_pair};
    let ca = Ca::new();
    let client_ca = Ca::new();
    let (pod, seen) = tls_pod(&ca, &client_ca).await;
    let client = client_pair(&client_ca, "vestibule");
    let secret = |name: &str, ca_pem: &str, with_client: bool| {
        let mut data = vec![("ca.crt", ca_pem.to_owned())];
        if with_client {
            data.push(("tls.crt", client.cert.clone()));
            data.push(("tls.key", client.key.clone()));
        }
        let mut text = format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: test}}\ntype: Opaque\nstringData:\n"
        );
        for (k, v) in data {
            text.push_str(&format!("  {k}: {v:?}\n"));
        }
        text
    };
    let other = Ca::new();
    let auth_url = format!("https://{pod}/check");
    let verified = [
        ("backend-protocol", "HTTPS"),
        ("proxy-ssl-secret", "test/right-ca"),
        ("proxy-ssl-verify", "on"),
        ("proxy-ssl-name", "pod.test"),
        ("proxy-ssl-server-name", "on"),
    ];
    let files = [
        ("s.yaml", service_yaml("pod", &[(pod, None)])),
        ("right.yaml", secret("right-ca", &ca.cert, true)),
        ("wrong.yaml", secret("wrong-ca", &other.cert, false)),
        (
            "any.yaml",
            ingress(
                "any",
                "any.test",
                ("/", PREFIX),
                "pod",
                &[("backend-protocol", "HTTPS")],
            ),
        ),
        (
            "v.yaml",
            ingress("verified", "verified.test", ("/", PREFIX), "pod", &verified),
        ),
        (
            "w.yaml",
            ingress(
                "wrong",
                "wrong.test",
                ("/", PREFIX),
                "pod",
                &[
                    ("backend-protocol", "HTTPS"),
                    ("proxy-ssl-secret", "test/wrong-ca"),
                    ("proxy-ssl-verify", "on"),
                    ("proxy-ssl-name", "pod.test"),
                ],
            ),
        ),
        (
            "p.yaml",
            ingress("plain", "plain.test", ("/", PREFIX), "pod", &[]),
        ),
        ("e.yaml", echo_service("echo").await),
        (
            "auth.yaml",
            ingress(
                "authed",
                "authed.test",
                ("/", PREFIX),
                "echo",
                &[("auth-url", &auth_url)],
            ),
        ),
    ];
    let (_dir, v) = start(&files, &[]);
    let a = v
        .eventually("any.test", "/", Duration::from_secs(10), |a| {
            a.status == StatusCode::OK
        })
        .await;
    assert_eq!(a.text, "pod over TLS");
    assert_eq!(
        seen.lock().unwrap().last().unwrap(),
        &(None, false),
        "no SNI by default, no client certificate"
    );
    let ok = get(v.http, "verified.test", "/").await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    assert_eq!(
        seen.lock().unwrap().last().unwrap(),
        &(Some("pod.test".to_owned()), true),
        "SNI and the client certificate"
    );
    assert_eq!(
        get(v.http, "wrong.test", "/").await.status,
        StatusCode::BAD_GATEWAY,
        "a CA that did not sign the pod"
    );
    assert_ne!(
        get(v.http, "plain.test", "/").await.status,
        StatusCode::OK,
        "plain HTTP to a TLS pod fails"
    );
    // An https auth service (here the same pod, which allows everything).
    let authed = get(v.http, "authed.test", "/").await;
    assert_eq!(authed.status, StatusCode::OK, "{}", authed.text);
    assert_eq!(authed.backend(), "echo");
}

// annotations.md ssl-passthrough (and the sslpassthrough e2e): with --enable-ssl-passthrough
// the TLS connection to such a host reaches the pod untouched (the client verifies the pod's
// own certificate); other hosts on the same port are terminated by Vestibule.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssl_passthrough_splices_tls_to_the_pod() {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    let ca = support::tls::Ca::new();
    let (pod, seen) = tls_pod(&ca, &support::tls::Ca::new()).await;
    let files = [
        ("s.yaml", service_yaml("pod", &[(pod, None)])),
        ("e.yaml", echo_service("echo").await),
        (
            "p.yaml",
            ingress(
                "pass",
                "pod.test",
                ("/", PREFIX),
                "pod",
                &[("ssl-passthrough", "true")],
            ),
        ),
        (
            "t.yaml",
            ingress("term", "term.test", ("/", PREFIX), "echo", &[]),
        ),
    ];
    let (_dir, v) = start(&files, &["--enable-ssl-passthrough"]);
    v.eventually("term.test", "/", Duration::from_secs(10), |a| {
        a.status == StatusCode::OK
    })
    .await;
    // A client that trusts only the pod's CA: the handshake succeeds only with the pod.
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca.cert.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(v.https).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("pod.test").unwrap(), tcp)
        .await
        .expect("the pod's own certificate");
    let a = support::tls::get_over(tls, "pod.test", "/").await;
    assert_eq!(a.text, "pod over TLS");
    assert_eq!(
        seen.lock().unwrap().last().unwrap().0.as_deref(),
        Some("pod.test")
    );
    let routes = admin_json(v.admin, "/debug/routes").await;
    assert_eq!(routes["passthrough"][0], "pod.test");
    // Terminated as before.
    let hello = support::tls::Hello::sni("term.test");
    let tls = support::tls::connect(v.https, hello).await.unwrap();
    assert_eq!(
        support::tls::get_over(tls, "term.test", "/")
            .await
            .backend(),
        "echo"
    );
}

// annotations/affinity.go "should change cookie on failure" (session-cookie-change-on-failure):
// a session whose pod refuses the connection is retried on another pod; with the annotation it
// gets a cookie for that pod, without it keeps its cookie.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_sticky_pod_moves_the_session_only_with_change_on_failure() {
    let alive = backend("alive").await;
    let dead = dead_port();
    let sticky = |change: &'static str| {
        vec![
            ("affinity", "cookie"),
            ("affinity-mode", "persistent"),
            ("session-cookie-change-on-failure", change),
        ]
    };
    let files = [
        (
            "s.yaml",
            service_yaml("pods", &[(dead, None), (alive, None)]),
        ),
        (
            "c.yaml",
            ingress(
                "change",
                "change.test",
                ("/", PREFIX),
                "pods",
                &sticky("true"),
            ),
        ),
        (
            "k.yaml",
            ingress("keep", "keep.test", ("/", PREFIX), "pods", &sticky("false")),
        ),
    ];
    let (_dir, v) = start(&files, &[]);
    v.eventually("keep.test", "/", Duration::from_secs(10), |a| {
        a.status == StatusCode::OK
    })
    .await;
    // The cookie naming the dead pod: the endpoint's digest, as the proxy writes it.
    let digest = vestibule::model::balance::endpoint_token(&vestibule::model::Target::Ip(dead));
    let cookie = format!("INGRESSCOOKIE={digest}");
    let changed = answer_with(&v, "change.test", "/", &[("cookie", &cookie)]).await;
    assert_eq!(changed.backend(), "alive");
    let set = changed
        .headers
        .get("set-cookie")
        .map(|h| h.to_str().unwrap().to_owned());
    assert!(
        set.as_deref().is_some_and(|c| !c.contains(&digest)),
        "{set:?}"
    );
    let kept = answer_with(&v, "keep.test", "/", &[("cookie", &cookie)]).await;
    assert_eq!(kept.backend(), "alive");
    assert!(
        kept.headers.get("set-cookie").is_none(),
        "the session keeps its cookie"
    );
}
