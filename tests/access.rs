//! Access control through the real proxy: the client address (forwarded headers, PROXY
//! protocol, the ingress-nginx ConfigMap), allow and deny lists, basic and external auth,
//! CORS, rate limits and client certificates. Clients bound to other loopback addresses
//! (127.0.0.2, …) stand in for other machines. Each test names the ingress-nginx e2e test
//! (`test/e2e/annotations/*.go`, `test/e2e/settings/*.go`) or document it ports.

mod support;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::Full;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// An Ingress `name` in namespace `test` for `host` `/` (Prefix) to Service `service`, with
/// ingress-nginx annotations given without their prefix.
fn ingress(name: &str, host: &str, service: &str, annotations: &[(&str, &str)]) -> String {
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
        "spec:\n  ingressClassName: vestibule\n  rules:\n    - host: {host}\n      http:\n        paths:\n          - path: /\n            pathType: Prefix\n            backend: {{service: {{name: {service}, port: {{name: http}}}}}}\n"
    ));
    text
}

/// The ConfigMap `test/vestibule` with `data`.
fn config_map(data: &[(&str, &str)]) -> String {
    let mut text =
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: vestibule, namespace: test}\ndata:\n"
            .to_owned();
    for (k, v) in data {
        text.push_str(&format!("  {k}: {v:?}\n"));
    }
    if data.is_empty() {
        text.push_str("  {}\n");
    }
    text
}

const CONFIGMAP: [&str; 2] = ["--configmap", "test/vestibule"];

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

/// `method host path` over HTTP/1.1 from a client bound to `from` (a loopback address).
async fn request_from(
    from: &str,
    to: SocketAddr,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Answer {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(from.parse().unwrap(), 0))
        .unwrap();
    let stream = socket.connect(to).await.unwrap();
    over(stream, method, host, path, headers).await
}

async fn over(
    stream: TcpStream,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Answer {
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", host);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let response = sender
        .send_request(req.body(Full::<Bytes>::default()).unwrap())
        .await
        .unwrap();
    read(response).await
}

fn seen(a: &Answer, name: &str) -> String {
    a.json()["headers"][name].as_str().unwrap_or("").to_owned()
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

async fn until_serving(v: &Vestibule, host: &str) {
    v.eventually(host, "/", Duration::from_secs(10), |a| {
        a.status != StatusCode::NOT_FOUND
    })
    .await;
}

// nginx.tmpl: without use-forwarded-headers the pod gets the peer as X-Forwarded-For and
// X-Real-IP, and the chain the client sent as X-Original-Forwarded-For.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_the_peer_is_the_client() {
    let files = [
        ("s.yaml", echo_service("echo").await),
        ("i.yaml", ingress("web", "web.test", "echo", &[])),
    ];
    let (_dir, v) = start(&files, &[]);
    until_serving(&v, "web.test").await;
    let a = request_from(
        "127.0.0.2",
        v.http,
        "GET",
        "web.test",
        "/",
        &[
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-proto", "https"),
        ],
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(seen(&a, "x-forwarded-for"), "127.0.0.2");
    assert_eq!(seen(&a, "x-real-ip"), "127.0.0.2");
    assert_eq!(seen(&a, "x-original-forwarded-for"), "203.0.113.9");
    assert_eq!(seen(&a, "x-forwarded-proto"), "http");
}

// settings/forwarded_headers.go ("should trust X-Forwarded headers when option is true",
// "should not trust X-Forwarded headers when option is false"), and proxy-real-ip-cidr: only
// trusted peers name the client. A bad value keeps the previous one (the issue).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_headers_from_trusted_peers_name_the_client() {
    let files = [
        ("s.yaml", echo_service("echo").await),
        (
            "i.yaml",
            ingress(
                "web",
                "web.test",
                "echo",
                &[("whitelist-source-range", "203.0.113.0/24")],
            ),
        ),
        (
            "cm.yaml",
            config_map(&[
                ("use-forwarded-headers", "true"),
                ("proxy-real-ip-cidr", "127.0.0.1/32"),
            ]),
        ),
    ];
    let (dir, v) = start(&files, &CONFIGMAP);
    let forwarded = [
        ("x-forwarded-for", "203.0.113.9"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-port", "443"),
        ("x-forwarded-host", "shop.example"),
    ];
    let trusted = v
        .eventually("web.test", "/", Duration::from_secs(10), |a| {
            a.status != StatusCode::NOT_FOUND
        })
        .await;
    assert_eq!(
        trusted.status,
        StatusCode::FORBIDDEN,
        "127.0.0.1 itself is not allowed"
    );
    let a = request_from("127.0.0.1", v.http, "GET", "web.test", "/", &forwarded).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(seen(&a, "x-forwarded-for"), "203.0.113.9");
    assert_eq!(seen(&a, "x-real-ip"), "203.0.113.9");
    assert_eq!(seen(&a, "x-forwarded-proto"), "https");
    assert_eq!(seen(&a, "x-forwarded-port"), "443");
    assert_eq!(seen(&a, "x-forwarded-host"), "shop.example");

    let other = request_from("127.0.0.2", v.http, "GET", "web.test", "/", &forwarded).await;
    assert_eq!(
        other.status,
        StatusCode::FORBIDDEN,
        "127.0.0.2 is not a trusted proxy"
    );

    // The access log names the client the headers named.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = v.access_log().join("\n");
    assert!(log.contains("203.0.113.9"), "{log}");

    write_atomic(
        dir.path(),
        "cm.yaml",
        &config_map(&[
            ("use-forwarded-headers", "maybe"),
            ("proxy-real-ip-cidr", "127.0.0.1/32"),
        ]),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let routes = get(v.admin, "admin", "/debug/routes").await.text;
        if routes.contains("data[use-forwarded-headers]") {
            assert!(routes.contains("the previous value stays"), "{routes}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no diagnostic: {routes}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let still = request_from("127.0.0.1", v.http, "GET", "web.test", "/", &forwarded).await;
    assert_eq!(
        still.status,
        StatusCode::OK,
        "the previous value stays in force"
    );
}

// settings/proxy_protocol.go ("should respect port passed by the PROXY Protocol", "should
// respect proto passed by the PROXY Protocol server port"): the client is the header's source.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_protocol_names_the_client_on_both_listeners() {
    let files = [
        ("s.yaml", echo_service("echo").await),
        ("i.yaml", ingress("web", "web.test", "echo", &[])),
        ("cm.yaml", config_map(&[("use-proxy-protocol", "true")])),
    ];
    let (_dir, v) = start(&files, &CONFIGMAP);
    // Without the header the connection is refused, so wait with headers.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let a = loop {
        let mut stream = TcpStream::connect(v.http).await.unwrap();
        stream
            .write_all(b"PROXY TCP4 203.0.113.7 10.0.0.1 51000 80\r\n")
            .await
            .unwrap();
        let a = over(stream, "GET", "web.test", "/", &[]).await;
        if a.status == StatusCode::OK || std::time::Instant::now() > deadline {
            break a;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(seen(&a, "x-real-ip"), "203.0.113.7");
    assert_eq!(seen(&a, "x-forwarded-for"), "203.0.113.7");

    // v2, binary.
    let source: SocketAddr = "[2001:db8::7]:4000".parse().unwrap();
    let header = ppp::v2::Builder::with_addresses(
        ppp::v2::Version::Two | ppp::v2::Command::Proxy,
        ppp::v2::Protocol::Stream,
        (source, "[2001:db8::1]:80".parse::<SocketAddr>().unwrap()),
    )
    .build()
    .unwrap();
    let mut stream = TcpStream::connect(v.http).await.unwrap();
    stream.write_all(&header).await.unwrap();
    let a = over(stream, "GET", "web.test", "/", &[]).await;
    assert_eq!(seen(&a, "x-real-ip"), "2001:db8::7");

    // A connection without the header is closed without an answer.
    let mut stream = TcpStream::connect(v.http).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nhost: web.test\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut buf))
        .await
        .expect("closed")
        .unwrap_or(0);
    assert_eq!(n, 0, "{}", String::from_utf8_lossy(&buf));

    // The TLS listener reads the header before the handshake.
    let mut stream = TcpStream::connect(v.https).await.unwrap();
    stream
        .write_all(b"PROXY TCP4 198.51.100.3 10.0.0.1 51000 443\r\n")
        .await
        .unwrap();
    let hello = support::tls::Hello::sni("web.test");
    let tls = support::tls::connect_over(stream, hello).await.unwrap();
    let a = support::tls::get_over(tls, "web.test", "/").await;
    assert_eq!(seen(&a, "x-real-ip"), "198.51.100.3");
    assert_eq!(seen(&a, "x-forwarded-proto"), "https");
}

/// An Opaque Secret `test/name` with `data` (stringData).
fn opaque_secret(name: &str, data: &[(&str, &str)]) -> String {
    let mut text = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: test}}\ntype: Opaque\nstringData:\n"
    );
    for (k, v) in data {
        text.push_str(&format!("  {k}: {v:?}\n"));
    }
    text
}

/// `htpasswd -nbm foo password`.
const USERS: &str = "foo:$apr1$63JlJ2NH$smE0mnB5h3tDri0zkpWXt1\n";

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}

// annotations/auth.go: 401 without or with wrong credentials, 200 with right ones, 503 for a
// missing Secret; the pod never sees the credentials.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth() {
    let protected = [
        ("auth-type", "basic"),
        ("auth-secret", "users"),
        ("auth-realm", "test auth"),
    ];
    let files = [
        ("s.yaml", echo_service("echo").await),
        ("u.yaml", opaque_secret("users", &[("auth", USERS)])),
        ("i.yaml", ingress("auth", "auth.test", "echo", &protected)),
        (
            "broken.yaml",
            ingress(
                "broken",
                "broken.test",
                "echo",
                &[("auth-type", "basic"), ("auth-secret", "something")],
            ),
        ),
        ("plain.yaml", ingress("plain", "plain.test", "echo", &[])),
    ];
    let (_dir, v) = start(&files, &[]);
    until_serving(&v, "plain.test").await;
    let none = get(v.http, "auth.test", "/").await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert!(
        none.text.contains("401 Authorization Required"),
        "{}",
        none.text
    );
    assert_eq!(
        header(&none.headers, "www-authenticate"),
        "Basic realm=\"test auth\""
    );
    let auth = |u, p| basic(u, p);
    let wrong = request_from(
        "127.0.0.1",
        v.http,
        "GET",
        "auth.test",
        "/",
        &[("authorization", &auth("foo", "nope"))],
    )
    .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let right = request_from(
        "127.0.0.1",
        v.http,
        "GET",
        "auth.test",
        "/",
        &[("authorization", &auth("foo", "password"))],
    )
    .await;
    assert_eq!(right.status, StatusCode::OK, "{}", right.text);
    assert_eq!(
        seen(&right, "authorization"),
        "",
        "the pod does not get the credentials"
    );
    let again = request_from(
        "127.0.0.1",
        v.http,
        "GET",
        "auth.test",
        "/",
        &[("authorization", &auth("foo", "password"))],
    )
    .await;
    assert_eq!(again.status, StatusCode::OK, "a remembered check");
    let broken = get(v.http, "broken.test", "/").await;
    assert_eq!(broken.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        get(v.http, "plain.test", "/").await.status,
        StatusCode::OK,
        "others unaffected"
    );
    let routes = get(v.admin, "admin", "/debug/routes").await.text;
    assert!(
        routes.contains("Secret test/something not found"),
        "{routes}"
    );
    assert!(!routes.contains("$apr1$"), "no hash is ever shown");
    assert!(routes.contains("basic-auth Secret test/users"), "{routes}");
}

// satisfy.go "should allow multiple auth with satisfy any": basic credentials the auth
// service would refuse suffice; without them the auth service's sign-in redirect answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn satisfy_any_with_basic_and_external_auth() {
    let (auth, _, _, _) = auth_service().await;
    let url = format!("http://{auth}/check");
    let files = [
        ("s.yaml", echo_service("echo").await),
        ("u.yaml", opaque_secret("users", &[("auth", USERS)])),
        (
            "i.yaml",
            ingress(
                "both",
                "auth.test",
                "echo",
                &[
                    ("auth-type", "basic"),
                    ("auth-secret", "users"),
                    ("auth-realm", "test basic auth"),
                    ("auth-url", &url),
                    ("auth-signin", "http://$host/auth/start"),
                    ("satisfy", "any"),
                ],
            ),
        ),
    ];
    let (_dir, v) = start(&files, &[]);
    until_serving(&v, "auth.test").await;
    let creds = basic("foo", "password");
    let with = request_from(
        "127.0.0.1",
        v.http,
        "GET",
        "auth.test",
        "/",
        &[("authorization", &creds)],
    )
    .await;
    assert_eq!(with.status, StatusCode::OK);
    let without = get(v.http, "auth.test", "/?a=b&c=d").await;
    assert_eq!(without.status, StatusCode::FOUND);
    assert_eq!(
        header(&without.headers, "location"),
        "http://auth.test/auth/start?rd=http://auth.test%2F%3Fa%3Db%26c%3Dd"
    );
}

// annotations/ipwhitelist.go, ipdenylist.go, satisfy.go: the lists by client address, and
// `satisfy: any` lets a listed client in without credentials.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn address_lists_and_satisfy() {
    let files = [
        ("s.yaml", echo_service("echo").await),
        ("u.yaml", opaque_secret("users", &[("auth", USERS)])),
        (
            "a.yaml",
            ingress(
                "allow",
                "allow.test",
                "echo",
                &[("whitelist-source-range", "127.0.0.2/32, ::1")],
            ),
        ),
        (
            "d.yaml",
            ingress(
                "deny",
                "deny.test",
                "echo",
                &[("denylist-source-range", "127.0.0.3")],
            ),
        ),
        (
            "any.yaml",
            ingress(
                "any",
                "any.test",
                "echo",
                &[
                    ("whitelist-source-range", "127.0.0.2"),
                    ("auth-type", "basic"),
                    ("auth-secret", "users"),
                    ("satisfy", "any"),
                ],
            ),
        ),
    ];
    let (_dir, v) = start(&files, &[]);
    until_serving(&v, "deny.test").await;
    let status = |from: &'static str, host: &'static str| {
        let v = v.http;
        async move { request_from(from, v, "GET", host, "/", &[]).await.status }
    };
    assert_eq!(status("127.0.0.2", "allow.test").await, StatusCode::OK);
    assert_eq!(
        status("127.0.0.3", "allow.test").await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(status("127.0.0.2", "deny.test").await, StatusCode::OK);
    assert_eq!(
        status("127.0.0.3", "deny.test").await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(status("127.0.0.2", "any.test").await, StatusCode::OK);
    assert_eq!(
        status("127.0.0.3", "any.test").await,
        StatusCode::UNAUTHORIZED
    );
    let with = request_from(
        "127.0.0.3",
        v.http,
        "GET",
        "any.test",
        "/",
        &[("authorization", &basic("foo", "password"))],
    )
    .await;
    assert_eq!(with.status, StatusCode::OK);
}

/// An auth service on loopback: `Authorization: Bearer good` → 200 with `X-User: alice` and a
/// cookie; anything else → 401. Counts the requests it got and keeps the last one's headers.
async fn auth_service() -> (
    SocketAddr,
    Arc<AtomicUsize>,
    Arc<Mutex<Vec<(String, String)>>>,
    Arc<AtomicBool>,
) {
    use hyper::service::service_fn;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let last = Arc::new(Mutex::new(Vec::new()));
    let down = Arc::new(AtomicBool::new(false));
    let (h, l, d) = (hits.clone(), last.clone(), down.clone());
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let (h, l, d) = (h.clone(), l.clone(), d.clone());
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                    h.fetch_add(1, Ordering::SeqCst);
                    *l.lock().unwrap() = req
                        .headers()
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
                        .collect();
                    let good = req
                        .headers()
                        .get("authorization")
                        .is_some_and(|v| v == "Bearer good");
                    let (status, body) = match (d.load(Ordering::SeqCst), good) {
                        (true, _) => (503, "down"),
                        (false, true) => (200, "ok"),
                        (false, false) => (401, "no"),
                    };
                    let mut response = http::Response::builder().status(status);
                    if status == 200 {
                        response = response
                            .header("x-user", "alice")
                            .header("set-cookie", "session=s1");
                    }
                    let response = response.body(Full::<Bytes>::from(body));
                    async move { Ok::<_, std::convert::Infallible>(response.unwrap()) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(s), service)
                    .await;
            });
        }
    });
    (addr, hits, last, down)
}

// annotations/auth.go "when external authentication is configured": signed in → 200 with
// the auth-response-headers; not signed in → 302 to auth-signin with rd=; an auth service
// that cannot be reached → 500; with auth-cache-key, a remembered answer outlives the
// service's failure ("...signed in after auth backend is deleted"); without it, 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_auth() {
    let (auth, hits, last, down) = auth_service().await;
    let url = format!("http://{auth}/check");
    let files = [
        ("s.yaml", echo_service("echo").await),
        (
            "i.yaml",
            ingress(
                "ext",
                "ext.test",
                "echo",
                &[
                    ("auth-url", &url),
                    ("auth-signin", "http://$host/auth/start"),
                    ("auth-response-headers", "X-User"),
                ],
            ),
        ),
        (
            "c.yaml",
            ingress(
                "cached",
                "cached.test",
                "echo",
                &[
                    ("auth-url", &url),
                    ("auth-cache-key", "$http_authorization"),
                    ("auth-cache-duration", "200 30m"),
                ],
            ),
        ),
        (
            "d.yaml",
            ingress(
                "dead",
                "dead.test",
                "echo",
                &[("auth-url", &format!("http://{}/", dead_port()))],
            ),
        ),
    ];
    let (_dir, v) = start(&files, &[]);
    until_serving(&v, "dead.test").await;
    let good = [("authorization", "Bearer good"), ("x-user", "mallory")];
    let a = request_from("127.0.0.1", v.http, "GET", "ext.test", "/app?a=b", &good).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(
        seen(&a, "x-user"),
        "alice",
        "the auth service's header replaces the client's"
    );
    assert_eq!(header(&a.headers, "set-cookie"), "session=s1");
    {
        let sent = last.lock().unwrap().clone();
        let got = |name: &str| {
            sent.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        assert_eq!(got("x-original-url"), "http://ext.test/app?a=b");
        assert_eq!(got("x-original-method"), "GET");
        assert_eq!(got("x-auth-request-redirect"), "/app?a=b");
        assert_eq!(got("authorization"), "Bearer good");
    }
    let out = request_from("127.0.0.1", v.http, "GET", "ext.test", "/?a=b&c=d", &[]).await;
    assert_eq!(out.status, StatusCode::FOUND);
    assert_eq!(
        header(&out.headers, "location"),
        "http://ext.test/auth/start?rd=http://ext.test%2F%3Fa%3Db%26c%3Dd"
    );
    assert_eq!(
        get(v.http, "dead.test", "/").await.status,
        StatusCode::INTERNAL_SERVER_ERROR
    );

    let before = hits.load(Ordering::SeqCst);
    let c = request_from("127.0.0.1", v.http, "GET", "cached.test", "/", &good).await;
    assert_eq!(c.status, StatusCode::OK);
    assert_eq!(hits.load(Ordering::SeqCst), before + 1);
    down.store(true, Ordering::SeqCst);
    let c = request_from("127.0.0.1", v.http, "GET", "cached.test", "/", &good).await;
    assert_eq!(c.status, StatusCode::OK, "the remembered answer");
    let e = request_from("127.0.0.1", v.http, "GET", "ext.test", "/", &good).await;
    assert_eq!(
        e.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "no cache there"
    );
}

// annotations/cors.go: a preflight from an allowed origin is answered (204) and never reaches
// the pod; answers carry the headers for allowed origins only; auth.go: a 401 carries them too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors() {
    let files = [
        ("s.yaml", echo_service("echo").await),
        ("u.yaml", opaque_secret("users", &[("auth", USERS)])),
        (
            "any.yaml",
            ingress(
                "any",
                "any.test",
                "echo",
                &[
                    ("enable-cors", "true"),
                    ("auth-type", "basic"),
                    ("auth-secret", "users"),
                ],
            ),
        ),
        (
            "list.yaml",
            ingress(
                "list",
                "list.test",
                "echo",
                &[
                    ("enable-cors", "true"),
                    (
                        "cors-allow-origin",
                        "https://app.example, https://*.corp.example",
                    ),
                    ("cors-allow-methods", "GET, POST"),
                    ("cors-max-age", "200"),
                    ("cors-allow-credentials", "false"),
                    ("cors-expose-headers", "X-Total"),
                ],
            ),
        ),
    ];
    let (_dir, v) = start(&files, &[]);
    until_serving(&v, "list.test").await;
    let origin = [("origin", "https://a.corp.example")];
    let pre = request_from("127.0.0.1", v.http, "OPTIONS", "list.test", "/", &origin).await;
    assert_eq!(pre.status, StatusCode::NO_CONTENT);
    assert_eq!(pre.text, "", "answered by the proxy");
    assert_eq!(
        header(&pre.headers, "access-control-allow-origin"),
        "https://a.corp.example"
    );
    assert_eq!(
        header(&pre.headers, "access-control-allow-methods"),
        "GET, POST"
    );
    assert_eq!(header(&pre.headers, "access-control-max-age"), "200");
    assert_eq!(header(&pre.headers, "access-control-allow-credentials"), "");
    let got = request_from("127.0.0.1", v.http, "GET", "list.test", "/", &origin).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.backend(), "echo");
    assert_eq!(
        header(&got.headers, "access-control-allow-origin"),
        "https://a.corp.example"
    );
    assert_eq!(
        header(&got.headers, "access-control-expose-headers"),
        "X-Total"
    );
    let other = [("origin", "https://evil.example")];
    let not = request_from("127.0.0.1", v.http, "GET", "list.test", "/", &other).await;
    assert_eq!(header(&not.headers, "access-control-allow-origin"), "");
    let pre = request_from("127.0.0.1", v.http, "OPTIONS", "list.test", "/", &other).await;
    assert_eq!(
        pre.backend(),
        "echo",
        "a preflight from another origin goes to the pod"
    );

    let unauthorized = get(v.http, "any.test", "/").await;
    assert_eq!(unauthorized.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        header(&unauthorized.headers, "access-control-allow-origin"),
        "*"
    );
    assert_eq!(
        header(&unauthorized.headers, "access-control-allow-credentials"),
        "true"
    );
}

// annotations/limitrate.go, limitconnections.go: per client address; limit-whitelist exempts;
// the ConfigMap's limit-req-status-code sets the status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_and_connection_limits() {
    let (slow, _) = slow_pod(200, Duration::from_millis(600)).await;
    let files = [
        ("s.yaml", echo_service("echo").await),
        ("slow.yaml", service_yaml("slow", &[(slow, None)])),
        (
            "r.yaml",
            ingress(
                "rate",
                "rate.test",
                "echo",
                &[
                    ("limit-rps", "1"),
                    ("limit-burst-multiplier", "1"),
                    ("limit-whitelist", "127.0.0.4"),
                ],
            ),
        ),
        (
            "c.yaml",
            ingress("conn", "conn.test", "slow", &[("limit-connections", "1")]),
        ),
        ("cm.yaml", config_map(&[("limit-req-status-code", "429")])),
    ];
    let (_dir, v) = start(&files, &CONFIGMAP);
    until_serving(&v, "rate.test").await;
    let status = |from: &'static str, host: &'static str| {
        let v = v.http;
        async move { request_from(from, v, "GET", host, "/", &[]).await.status }
    };
    // nginx's limit_req with burst = 1 × 1, nodelay: a request and one more, then the rate.
    assert_eq!(status("127.0.0.2", "rate.test").await, StatusCode::OK);
    assert_eq!(status("127.0.0.2", "rate.test").await, StatusCode::OK);
    assert_eq!(
        status("127.0.0.2", "rate.test").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        status("127.0.0.3", "rate.test").await,
        StatusCode::OK,
        "another client"
    );
    for _ in 0..3 {
        assert_eq!(
            status("127.0.0.4", "rate.test").await,
            StatusCode::OK,
            "exempt"
        );
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        status("127.0.0.2", "rate.test").await,
        StatusCode::OK,
        "a second later"
    );

    let first = tokio::spawn(status("127.0.0.5", "conn.test"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        status("127.0.0.5", "conn.test").await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        status("127.0.0.6", "conn.test").await,
        StatusCode::OK,
        "another client"
    );
    assert_eq!(first.await.unwrap(), StatusCode::OK);
    assert_eq!(
        status("127.0.0.5", "conn.test").await,
        StatusCode::OK,
        "the slot came back"
    );
}

/// A TLS Ingress `name` for `host` (Secret `cert`) with annotations.
fn tls_ingress(name: &str, host: &str, annotations: &[(&str, &str)]) -> String {
    let plain = ingress(name, host, "echo", annotations);
    plain.replace(
        "spec:\n  ingressClassName: vestibule\n",
        &format!(
            "spec:\n  ingressClassName: vestibule\n  tls: [{{secretName: cert, hosts: [{host}]}}]\n"
        ),
    )
}

// annotations/authtls.go: with `on` a request without a certificate (or with one the CA did
// not sign) gets 400, a signed one reaches the pod with ssl-client-verify SUCCESS and, with
// auth-tls-pass-certificate-to-upstream, the URL-encoded PEM; `optional` admits a client
// without one; auth-tls-error-page redirects instead of 400; a host without the annotation asks
// for nothing; a missing CA Secret answers 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates() {
    use support::tls::{Ca, client_pair, get_with_client_cert, secret_yaml};
    let server_ca = Ca::new();
    let pair = server_ca.leaf(&[
        "on.test",
        "optional.test",
        "page.test",
        "open.test",
        "lost.test",
    ]);
    let client_ca = Ca::new();
    let good = client_pair(&client_ca, "alice");
    let stranger = client_pair(&Ca::new(), "mallory");
    let files = [
        ("s.yaml", echo_service("echo").await),
        ("cert.yaml", secret_yaml("cert", &pair.cert, &pair.key)),
        (
            "ca.yaml",
            opaque_secret("client-ca", &[("ca.crt", &client_ca.cert)]),
        ),
        (
            "on.yaml",
            tls_ingress(
                "on",
                "on.test",
                &[
                    ("auth-tls-secret", "test/client-ca"),
                    ("auth-tls-verify-client", "on"),
                    ("auth-tls-pass-certificate-to-upstream", "true"),
                ],
            ),
        ),
        (
            "optional.yaml",
            tls_ingress(
                "optional",
                "optional.test",
                &[
                    ("auth-tls-secret", "client-ca"),
                    ("auth-tls-verify-client", "optional"),
                ],
            ),
        ),
        (
            "page.yaml",
            tls_ingress(
                "page",
                "page.test",
                &[
                    ("auth-tls-secret", "client-ca"),
                    ("auth-tls-error-page", "https://help.test/certs"),
                ],
            ),
        ),
        ("open.yaml", tls_ingress("open", "open.test", &[])),
        (
            "lost.yaml",
            tls_ingress("lost", "lost.test", &[("auth-tls-secret", "nowhere")]),
        ),
    ];
    let (_dir, v) = start(&files, &[]);
    until_serving(&v, "open.test").await;
    let https = v.https;
    let none = get_with_client_cert(https, "on.test", None, "/").await;
    assert_eq!(none.status, StatusCode::BAD_REQUEST);
    assert!(
        none.text.contains("No required SSL certificate was sent"),
        "{}",
        none.text
    );
    let signed = get_with_client_cert(https, "on.test", Some(&good), "/").await;
    assert_eq!(signed.status, StatusCode::OK, "{}", signed.text);
    assert_eq!(seen(&signed, "ssl-client-verify"), "SUCCESS");
    assert!(
        seen(&signed, "ssl-client-subject-dn").starts_with("CN="),
        "{}",
        signed.text
    );
    assert!(seen(&signed, "ssl-client-cert").starts_with("-----BEGIN%20CERTIFICATE-----"));
    let foreign = get_with_client_cert(https, "on.test", Some(&stranger), "/").await;
    assert_eq!(foreign.status, StatusCode::BAD_REQUEST);
    assert!(
        foreign.text.contains("The SSL certificate error"),
        "{}",
        foreign.text
    );

    let optional = get_with_client_cert(https, "optional.test", None, "/").await;
    assert_eq!(optional.status, StatusCode::OK);
    assert_eq!(seen(&optional, "ssl-client-verify"), "NONE");
    assert_eq!(
        seen(&optional, "ssl-client-cert"),
        "",
        "not asked to pass it"
    );
    let page = get_with_client_cert(https, "page.test", None, "/").await;
    assert_eq!(page.status, StatusCode::FOUND);
    assert_eq!(header(&page.headers, "location"), "https://help.test/certs");
    let open = get_with_client_cert(https, "open.test", None, "/").await;
    assert_eq!(open.status, StatusCode::OK);
    assert_eq!(seen(&open, "ssl-client-verify"), "");
    let lost = get_with_client_cert(https, "lost.test", Some(&good), "/").await;
    assert_eq!(lost.status, StatusCode::SERVICE_UNAVAILABLE);
}

// configmap.md global-auth-url (and -signin, -response-headers …), enable-global-auth,
// no-auth-locations, block-cidrs, http-redirect-code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configmaps_global_auth_block_list_and_redirect_code() {
    let (auth, _, _, _) = auth_service().await;
    let url = format!("http://{auth}/check");
    let files = [
        ("s.yaml", echo_service("echo").await),
        ("a.yaml", ingress("app", "app.test", "echo", &[])),
        (
            "o.yaml",
            ingress(
                "out",
                "out.test",
                "echo",
                &[("enable-global-auth", "false")],
            ),
        ),
        (
            "f.yaml",
            ingress(
                "forced",
                "forced.test",
                "echo",
                &[("force-ssl-redirect", "true")],
            ),
        ),
        (
            "cm.yaml",
            config_map(&[
                ("global-auth-url", &url),
                ("global-auth-response-headers", "X-User"),
                ("block-cidrs", "127.0.0.9"),
                ("http-redirect-code", "301"),
            ]),
        ),
    ];
    let (_dir, v) = start(&files, &CONFIGMAP);
    v.eventually("app.test", "/", Duration::from_secs(10), |a| {
        a.status == StatusCode::UNAUTHORIZED
    })
    .await;
    let good = [("authorization", "Bearer good")];
    let a = request_from("127.0.0.1", v.http, "GET", "app.test", "/", &good).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(seen(&a, "x-user"), "alice");
    let acme = get(v.http, "app.test", "/.well-known/acme-challenge/token").await;
    assert_eq!(acme.status, StatusCode::OK, "no-auth-locations default");
    assert_eq!(
        get(v.http, "out.test", "/").await.status,
        StatusCode::OK,
        "opted out"
    );
    let blocked = request_from("127.0.0.9", v.http, "GET", "out.test", "/", &[]).await;
    assert_eq!(blocked.status, StatusCode::FORBIDDEN);
    let redirect = get(v.http, "forced.test", "/x").await;
    assert_eq!(redirect.status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(
        header(&redirect.headers, "location"),
        "https://forced.test/x"
    );
}
