//! TLS termination end to end: certificates by SNI, default certificate, rotation, ALPN,
//! redirects, broken Secrets, 421, and handshakes that fail without disturbing others.

mod support;

use http::StatusCode;
use std::net::SocketAddr;
use std::time::Duration;
use support::tls::{Ca, Hello, connect, get_over, names_for, presented_names, secret_yaml};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SOON: Duration = Duration::from_secs(5);

/// An Ingress in namespace `test` with TLS entries, host rules to `service`, and annotations.
fn tls_ingress(
    name: &str,
    tls: &[(&str, &[&str])],
    hosts: &[&str],
    service: &str,
    annotations: &[(&str, &str)],
) -> String {
    let mut text = format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: {name}\n  namespace: test\n  annotations:\n"
    );
    text.push_str("    note: tls-test\n");
    for (k, v) in annotations {
        text.push_str(&format!("    {k}: \"{v}\"\n"));
    }
    text.push_str("spec:\n  ingressClassName: vestibule\n  tls:\n");
    for (secret, tls_hosts) in tls {
        let list = tls_hosts
            .iter()
            .map(|h| format!("\"{h}\""))
            .collect::<Vec<_>>()
            .join(", ");
        text.push_str(&format!(
            "    - secretName: {secret}\n      hosts: [{list}]\n"
        ));
    }
    text.push_str("  rules:\n");
    for host in hosts {
        text.push_str(&format!(
            "    - host: \"{host}\"\n      http:\n        paths:\n          - path: /\n            pathType: Prefix\n            backend: {{service: {{name: {service}, port: {{name: http}}}}}}\n"
        ));
    }
    text
}

struct Setup {
    dir: tempfile::TempDir,
    v: Vestibule,
    ca: Ca,
    /// The documents of secrets.yaml, Secret `a` first.
    secrets: Vec<String>,
}

/// Secrets for a.test, *.wild.test and b.test; a broken Secret for broken.test; one Ingress
/// each; an echo backend behind all of them.
async fn setup(extra: &[&str]) -> Setup {
    let web = backend("web").await;
    let ca = Ca::new();
    let dir = manifest_dir();
    let a = ca.leaf(&["a.test"]);
    let wild = ca.leaf(&["*.wild.test"]);
    let b = ca.leaf(&["b.test", "alt.test"]);
    let other = ca.leaf(&["other.test"]);
    let secrets = [
        secret_yaml("a", &a.cert, &a.key),
        secret_yaml("wild", &wild.cert, &wild.key),
        secret_yaml("b", &b.cert, &b.key),
        // broken: the key belongs to another certificate.
        secret_yaml("broken", &a.cert, &other.key),
    ];
    write_atomic(dir.path(), "secrets.yaml", &secrets.join("---\n"));
    write_atomic(
        dir.path(),
        "service.yaml",
        &service_yaml("web", &[(web, None)]),
    );
    let ingresses = [
        tls_ingress("a", &[("a", &["a.test"])], &["a.test"], "web", &[]),
        tls_ingress(
            "wild",
            &[("wild", &["*.wild.test"])],
            &["*.wild.test"],
            "web",
            &[],
        ),
        tls_ingress(
            "b",
            &[("b", &["b.test", "alt.test"])],
            &["b.test", "alt.test"],
            "web",
            &[("vestibule.dev/ssl-redirect", "false")],
        ),
        tls_ingress(
            "nginx-optout",
            &[("a", &["legacy.test"])],
            &["legacy.test"],
            "web",
            &[("nginx.ingress.kubernetes.io/ssl-redirect", "false")],
        ),
        tls_ingress(
            "broken",
            &[("broken", &["broken.test"])],
            &["broken.test"],
            "web",
            &[],
        ),
        ingress_yaml("plain", &[("plain.test", "Prefix", "/", "web")]),
    ]
    .join("---\n");
    write_atomic(dir.path(), "ingresses.yaml", &ingresses);
    let v = Vestibule::start(dir.path(), extra);
    Setup {
        dir,
        v,
        ca,
        secrets: secrets.to_vec(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_by_sni_exact_wildcard_default_and_none() {
    let s = setup(&[]).await;
    let https = s.v.https;
    assert_eq!(names_for(https, Some("a.test")).await, ["a.test"]);
    assert_eq!(
        names_for(https, Some("A.Test")).await,
        ["a.test"],
        "SNI is case-insensitive"
    );
    assert_eq!(names_for(https, Some("x.wild.test")).await, ["*.wild.test"]);
    let default = names_for(https, Some("unknown.test")).await;
    assert_eq!(
        default,
        ["vestibule-default.invalid"],
        "unknown SNI gets the generated default"
    );
    assert_eq!(
        names_for(https, Some("y.x.wild.test")).await,
        default,
        "a wildcard covers one label"
    );
    assert_eq!(
        names_for(https, None).await,
        default,
        "no SNI gets the default"
    );
    // The routed request carries X-Forwarded-Proto: https.
    let stream = connect(https, Hello::sni("a.test")).await.unwrap();
    let a = get_over(stream, "a.test", "/").await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json()["headers"]["x-forwarded-proto"], "https");
    assert_eq!(
        a.json()["headers"]["x-forwarded-port"],
        https.port().to_string()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_types_and_formats() {
    let web = backend("web").await;
    let ca = Ca::new();
    let dir = manifest_dir();
    let p384 = ca.leaf_with(&["p384.test"], &rcgen::PKCS_ECDSA_P384_SHA384, |_| {});
    let ed = ca.leaf_with(&["ed.test"], &rcgen::PKCS_ED25519, |_| {});
    let fixture = |f: &str| std::fs::read_to_string(repo(&format!("tests/fixtures/{f}"))).unwrap();
    let secrets = [
        secret_yaml("p384", &p384.cert, &p384.key),
        secret_yaml("ed", &ed.cert, &ed.key),
        secret_yaml("rsa", &fixture("rsa-pkcs1.crt"), &fixture("rsa-pkcs1.key")),
        secret_yaml("ec", &fixture("ec-sec1.crt"), &fixture("ec-sec1.key")),
    ]
    .join("---\n");
    write_atomic(dir.path(), "s.yaml", &secrets);
    write_atomic(dir.path(), "svc.yaml", &service_yaml("web", &[(web, None)]));
    let tls = [
        ("p384", &["p384.test"][..]),
        ("ed", &["ed.test"][..]),
        ("rsa", &["rsa.example"][..]),
        ("ec", &["ec.example"][..]),
    ];
    write_atomic(
        dir.path(),
        "i.yaml",
        &tls_ingress("keys", &tls, &["p384.test"], "web", &[]),
    );
    let v = Vestibule::start(dir.path(), &[]);
    for host in ["p384.test", "ed.test", "rsa.example", "ec.example"] {
        assert_eq!(names_for(v.https, Some(host)).await, [host], "{host}");
    }
    let routes = get(v.admin, "admin", "/debug/routes").await.json();
    assert_eq!(
        routes["diagnostics"],
        serde_json::json!([]),
        "{}",
        routes["diagnostics"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_secret_is_diagnosed_and_isolated() {
    let s = setup(&[]).await;
    let default = names_for(s.v.https, Some("unknown.test")).await;
    assert_eq!(
        names_for(s.v.https, Some("broken.test")).await,
        default,
        "falls back to the default"
    );
    assert_eq!(
        names_for(s.v.https, Some("a.test")).await,
        ["a.test"],
        "the rest is untouched"
    );
    let diagnostics =
        get(s.v.admin, "admin", "/debug/routes").await.json()["diagnostics"].to_string();
    assert!(
        diagnostics.contains("Secret test/broken") && diagnostics.contains("does not match"),
        "{diagnostics}"
    );
    // Malformed PEM and a missing Secret too.
    let bad_pem = secret_yaml(
        "broken",
        "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----",
        "garbage",
    );
    write_atomic(
        s.dir.path(),
        "broken.yaml",
        &bad_pem.replace("name: broken", "name: mangled"),
    );
    let ing = tls_ingress(
        "more",
        &[("mangled", &["mangled.test"]), ("absent", &["absent.test"])],
        &["mangled.test"],
        "web",
        &[],
    );
    write_atomic(s.dir.path(), "more.yaml", &ing);
    let mut diagnostics = String::new();
    for _ in 0..100 {
        diagnostics =
            get(s.v.admin, "admin", "/debug/routes").await.json()["diagnostics"].to_string();
        if diagnostics.contains("test/mangled") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        diagnostics.contains("Secret test/mangled") && diagnostics.contains("tls.crt"),
        "{diagnostics}"
    );
    assert!(
        diagnostics.contains("Secret test/absent not found"),
        "{diagnostics}"
    );
    assert_eq!(names_for(s.v.https, Some("mangled.test")).await, default);
    assert_eq!(
        names_for(s.v.https, Some("b.test")).await,
        ["b.test", "alt.test"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_certificate_is_served_and_diagnosed() {
    let web = backend("web").await;
    let ca = Ca::new();
    let dir = manifest_dir();
    let old = ca.leaf_with(&["old.test"], &rcgen::PKCS_ECDSA_P256_SHA256, |p| {
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2021, 1, 1);
    });
    write_atomic(
        dir.path(),
        "s.yaml",
        &secret_yaml("old", &old.cert, &old.key),
    );
    write_atomic(dir.path(), "svc.yaml", &service_yaml("web", &[(web, None)]));
    write_atomic(
        dir.path(),
        "i.yaml",
        &tls_ingress("old", &[("old", &["old.test"])], &["old.test"], "web", &[]),
    );
    let v = Vestibule::start(dir.path(), &[]);
    assert_eq!(names_for(v.https, Some("old.test")).await, ["old.test"]);
    let diagnostics =
        get(v.admin, "admin", "/debug/routes").await.json()["diagnostics"].to_string();
    assert!(
        diagnostics.contains("expired at 2021-01-01"),
        "{diagnostics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_applies_to_new_handshakes_and_spares_open_connections() {
    let s = setup(&[]).await;
    let open = connect(s.v.https, Hello::sni("a.test")).await.unwrap();
    assert_eq!(presented_names(&open), ["a.test"]);
    let io = hyper_util::rt::TokioIo::new(open);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
    tokio::spawn(conn);
    // Rotate: the Secret now holds a certificate that also names rotated.a.test.
    let next = s.ca.leaf(&["a.test", "rotated.a.test"]);
    let mut secrets = s.secrets.clone();
    secrets[0] = secret_yaml("a", &next.cert, &next.key);
    write_atomic(s.dir.path(), "secrets.yaml", &secrets.join("---\n"));
    let started = std::time::Instant::now();
    loop {
        if names_for(s.v.https, Some("a.test")).await == ["a.test", "rotated.a.test"] {
            break;
        }
        assert!(
            started.elapsed() < SOON,
            "the rotated certificate was not picked up"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!(
        "rotation seen by new handshakes after {:?}",
        started.elapsed()
    );
    for _ in 0..3 {
        sender
            .ready()
            .await
            .expect("the open connection is still up");
        let req = http::Request::get("/")
            .header("host", "a.test")
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        let a = read(
            sender
                .send_request(req)
                .await
                .expect("the open connection still works"),
        )
        .await;
        assert_eq!(a.status, StatusCode::OK);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alpn_h2_and_http11_and_misdirected_requests() {
    let s = setup(&[]).await;
    let h2 = connect(
        s.v.https,
        Hello {
            sni: Some("a.test"),
            alpn: &[b"h2", b"http/1.1"],
            ..Hello::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(h2.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let a = get_over(h2, "a.test", "/").await;
    assert_eq!(a.status, StatusCode::OK);
    let h1 = connect(
        s.v.https,
        Hello {
            sni: Some("a.test"),
            alpn: &[b"http/1.1"],
            ..Hello::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(h1.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    assert_eq!(get_over(h1, "a.test", "/").await.status, StatusCode::OK);
    // HTTP/2 connection for a.test reused for b.test, which its certificate does not cover.
    let h2 = connect(
        s.v.https,
        Hello {
            sni: Some("a.test"),
            alpn: &[b"h2"],
            ..Hello::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        get_over(h2, "b.test", "/").await.status,
        StatusCode::MISDIRECTED_REQUEST
    );
    // Covered by the certificate chosen for the SNI: fine.
    let h2 = connect(
        s.v.https,
        Hello {
            sni: Some("b.test"),
            alpn: &[b"h2"],
            ..Hello::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(get_over(h2, "alt.test", "/").await.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_redirects_to_https_unless_opted_out() {
    let s = setup(&["--https-redirect-port", "8443"]).await;
    let rows = [
        ("a.test", "/cart?x=1", Some("https://a.test:8443/cart?x=1")),
        ("a.test:8080", "/", Some("https://a.test:8443/")),
        ("x.wild.test", "/", Some("https://x.wild.test:8443/")),
        ("b.test", "/", None),
        ("legacy.test", "/", None),
        ("plain.test", "/", None),
    ];
    for (host, path, want) in rows {
        let a = get(s.v.http, host, path).await;
        match want {
            Some(location) => {
                assert_eq!(a.status, StatusCode::PERMANENT_REDIRECT, "{host}{path}");
                assert_eq!(a.headers["location"], location);
            }
            None => assert_eq!(a.status, StatusCode::OK, "{host}{path}: {}", a.text),
        }
    }
    let s = setup(&[]).await;
    assert_eq!(
        get(s.v.http, "a.test", "/x").await.headers["location"],
        "https://a.test/x",
        "no port for 443"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hsts_when_asked() {
    let s = setup(&[
        "--hsts",
        "--hsts-max-age",
        "600",
        "--hsts-include-subdomains",
    ])
    .await;
    let stream = connect(s.v.https, Hello::sni("a.test")).await.unwrap();
    let a = get_over(stream, "a.test", "/").await;
    assert_eq!(
        a.headers["strict-transport-security"],
        "max-age=600; includeSubDomains"
    );
    let plain = get(s.v.http, "plain.test", "/").await;
    assert!(
        plain.headers.get("strict-transport-security").is_none(),
        "never over plain HTTP"
    );
    let s = setup(&[]).await;
    let stream = connect(s.v.https, Hello::sni("a.test")).await.unwrap();
    assert!(
        get_over(stream, "a.test", "/")
            .await
            .headers
            .get("strict-transport-security")
            .is_none(),
        "off by default"
    );
}

/// A TLS 1.0 ClientHello (no supported_versions extension).
const TLS10_CLIENT_HELLO: &[u8] = &[
    0x16, 0x03, 0x01, 0x00, 0x2d, // record: handshake, TLS 1.0, 45 bytes
    0x01, 0x00, 0x00, 0x29, // ClientHello, 41 bytes
    0x03, 0x01, // client_version TLS 1.0
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25,
    26, 27, 28, 29, 30, 31, 0x00, // session id length
    0x00, 0x02, 0x00, 0x2f, // one cipher suite: TLS_RSA_WITH_AES_128_CBC_SHA
    0x01, 0x00, // compression: null
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_handshakes_do_not_disturb_others() {
    let s = setup(&["--tls-min-version", "1.3"]).await;
    let https: SocketAddr = s.v.https;
    let open = connect(https, Hello::sni("a.test")).await.unwrap();
    let io = hyper_util::rt::TokioIo::new(open);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
    tokio::spawn(conn);
    // Garbage, a TLS 1.0 hello, and a TLS 1.2-only client (refused by --tls-min-version 1.3).
    let mut garbage = tokio::net::TcpStream::connect(https).await.unwrap();
    garbage
        .write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
        .await
        .unwrap();
    let mut old = tokio::net::TcpStream::connect(https).await.unwrap();
    old.write_all(TLS10_CLIENT_HELLO).await.unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(2), old.read(&mut buf))
        .await
        .expect("refused at once")
        .unwrap_or(0);
    assert!(
        n == 0 || buf[0] == 0x15,
        "answered with an alert or closed, not a handshake"
    );
    let tls12 = connect(
        https,
        Hello {
            sni: Some("a.test"),
            versions: &[&rustls::version::TLS12],
            ..Hello::default()
        },
    )
    .await;
    assert!(tls12.is_err(), "TLS 1.2 is below --tls-min-version 1.3");
    let n = tokio::time::timeout(Duration::from_secs(2), garbage.read(&mut buf))
        .await
        .expect("refused at once")
        .unwrap_or(0);
    assert!(n == 0 || buf[0] == 0x15);
    // The open connection and new ones are fine.
    let req = http::Request::get("/")
        .header("host", "a.test")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    assert_eq!(
        read(sender.send_request(req).await.unwrap()).await.status,
        StatusCode::OK
    );
    assert_eq!(names_for(https, Some("a.test")).await, ["a.test"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exact_certificate_beats_a_wildcard_for_the_same_name() {
    let s = setup(&[]).await;
    let exact = s.ca.leaf(&["x.wild.test"]);
    write_atomic(
        s.dir.path(),
        "exact.yaml",
        &format!(
            "{}---\n{}",
            secret_yaml("exact", &exact.cert, &exact.key),
            tls_ingress(
                "exact",
                &[("exact", &["x.wild.test"])],
                &["x.wild.test"],
                "web",
                &[]
            )
        ),
    );
    let https = s.v.https;
    let deadline = std::time::Instant::now() + SOON;
    while names_for(https, Some("x.wild.test")).await != ["x.wild.test"] {
        assert!(
            std::time::Instant::now() < deadline,
            "the exact certificate is served"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        names_for(https, Some("y.wild.test")).await,
        ["*.wild.test"],
        "other names still get the wildcard"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_reuse_for_a_name_two_labels_below_a_wildcard_is_misdirected() {
    let s = setup(&[]).await;
    let h2 = |sni: &'static str| {
        connect(
            s.v.https,
            Hello {
                sni: Some(sni),
                alpn: &[b"h2"],
                ..Hello::default()
            },
        )
    };
    // *.wild.test covers z.wild.test (one label) but not y.x.wild.test (two).
    let covered = get_over(h2("x.wild.test").await.unwrap(), "z.wild.test", "/").await;
    assert_eq!(covered.status, StatusCode::OK);
    let two_labels = get_over(h2("x.wild.test").await.unwrap(), "y.x.wild.test", "/").await;
    assert_eq!(two_labels.status, StatusCode::MISDIRECTED_REQUEST);
}
