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

#[allow(dead_code)]
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
        (source, v.http),
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
