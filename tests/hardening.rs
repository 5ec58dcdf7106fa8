//! Vestibule against careless and hostile peers: clients that open connections and say
//! nothing, stop reading, send two Hosts or broken chunked bodies; pods that stall mid-body;
//! editors that rewrite manifests in place; shutdowns with WebSockets open. The real binary
//! on loopback, with short timeouts so each rule shows within a second or two.

mod support;

use futures_util::{SinkExt, StreamExt};
use http::StatusCode;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// `app.test` → Service `app` with the pods at `pods`.
fn app(pods: &[SocketAddr], extra: &[&str]) -> (tempfile::TempDir, Vestibule) {
    let dir = manifest_dir();
    let endpoints: Vec<_> = pods.iter().map(|p| (*p, None)).collect();
    write_atomic(
        dir.path(),
        "services.yaml",
        &service_yaml("app", &endpoints),
    );
    write_atomic(
        dir.path(),
        "ingress.yaml",
        &ingress_yaml("app", &[("app.test", "Prefix", "/", "app")]),
    );
    let v = Vestibule::start(dir.path(), extra);
    (dir, v)
}

/// Reads until the peer closes; `None` if it is still open after `within`.
async fn closed_after(
    stream: &mut (impl AsyncReadExt + Unpin + ?Sized),
    within: Duration,
) -> Option<(Duration, Vec<u8>)> {
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at((started + within).into(), stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some((started.elapsed(), got)),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// Sends raw bytes on a new connection and reads the answer until the connection closes.
async fn raw(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let (_, got) = closed_after(&mut stream, Duration::from_secs(5))
        .await
        .expect("the proxy closes the connection after answering");
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_send_no_request_are_closed_at_the_header_timeout() {
    let pod = backend("app").await;
    let (_dir, v) = app(&[pod], &["--client-header-timeout", "1s"]);
    // Nothing at all; only the start of the HTTP/2 preface; a finished TLS handshake.
    let mut silent = TcpStream::connect(v.http).await.unwrap();
    let mut preface = TcpStream::connect(v.http).await.unwrap();
    preface.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    let mut tls = support::tls::connect(v.https, support::tls::Hello::sni("app.test"))
        .await
        .unwrap();
    let mut partial = TcpStream::connect(v.http).await.unwrap();
    partial
        .write_all(b"GET / HTTP/1.1\r\nHost: app")
        .await
        .unwrap();
    for (what, stream) in [
        (
            "silent",
            &mut silent as &mut (dyn tokio::io::AsyncRead + Unpin + Send),
        ),
        ("preface", &mut preface),
        ("tls", &mut tls),
        ("partial headers", &mut partial),
    ] {
        let (after, _) = closed_after(stream, Duration::from_secs(4))
            .await
            .unwrap_or_else(|| panic!("{what}: still open after 4 s"));
        assert!(
            after < Duration::from_millis(2500),
            "{what}: closed after {after:?}"
        );
    }
    let metrics = v.metrics().await;
    let closed = metric_value(
        &metrics,
        "vestibule_client_connections_closed_total",
        "reason=\"header_timeout\"",
    );
    assert!(closed >= Some(3.0), "{metrics}");
    // A client that does send in time is served.
    assert_eq!(get(v.http, "app.test", "/").await.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_connections_close_after_the_idle_timeout_not_before() {
    let pod = backend("app").await;
    let (_dir, v) = app(&[pod], &["--client-idle-timeout", "1500ms"]);
    let mut stream = TcpStream::connect(v.http).await.unwrap();
    let request = b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n";
    stream.write_all(request).await.unwrap();
    let mut buf = vec![0u8; 65536];
    let n = stream.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // Still usable a while later…
    tokio::time::sleep(Duration::from_millis(700)).await;
    stream.write_all(request).await.unwrap();
    let n = stream.read(&mut buf).await.unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
        "the connection was kept between requests"
    );
    // …and closed once idle for the timeout, counted from the last response.
    let (after, _) = closed_after(&mut stream, Duration::from_secs(4))
        .await
        .expect("an idle keep-alive connection is closed");
    assert!(
        after > Duration::from_millis(1000) && after < Duration::from_millis(2500),
        "closed after {after:?}"
    );
    let metrics = v.metrics().await;
    assert_eq!(
        metric_value(
            &metrics,
            "vestibule_client_connections_closed_total",
            "reason=\"idle_timeout\""
        ),
        Some(1.0),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_limit_are_closed_and_counted() {
    let pod = backend("app").await;
    let (_dir, v) = app(
        &[pod],
        &[
            "--max-client-connections",
            "3",
            "--client-header-timeout",
            "30s",
        ],
    );
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(v.http).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut over = TcpStream::connect(v.http).await.unwrap();
    let _ = over
        .write_all(b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n")
        .await;
    let (after, got) = closed_after(&mut over, Duration::from_secs(2))
        .await
        .expect("a connection over the limit is closed at once");
    assert!(got.is_empty() && after < Duration::from_secs(1));
    v.wait_for_log("--max-client-connections reached", Duration::from_secs(3))
        .await;
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        get(v.http, "app.test", "/").await.status,
        StatusCode::OK,
        "a freed slot serves again"
    );
    let metrics = v.metrics().await;
    assert_eq!(
        metric_value(
            &metrics,
            "vestibule_client_connections_closed_total",
            "reason=\"limit\""
        ),
        Some(1.0),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_silent_connections_under_a_low_file_limit_does_not_stop_service() {
    let pod = backend("app").await;
    let dir = manifest_dir();
    write_atomic(
        dir.path(),
        "services.yaml",
        &service_yaml("app", &[(pod, None)]),
    );
    write_atomic(
        dir.path(),
        "ingress.yaml",
        &ingress_yaml("app", &[("app.test", "Prefix", "/", "app")]),
    );
    let manifests = dir.path().to_str().unwrap().to_owned();
    // prlimit starts the binary with 256 descriptors: the connection cap comes down to fit.
    let v = Vestibule::start_with_nofile(
        &["--manifests", &manifests, "--client-header-timeout", "1s"],
        256,
    );
    v.wait_for_log(
        "lowered to fit the open-files limit",
        Duration::from_secs(3),
    )
    .await;
    let mut flood = Vec::new();
    for _ in 0..300 {
        if let Ok(s) = TcpStream::connect(v.http).await {
            flood.push(s);
        }
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(get(v.http, "app.test", "/").await.status, StatusCode::OK);
    drop(flood);
}

/// A pod that answers every request with headers and `sent` of `promised` body bytes, then
/// holds the connection. Counts connections closed on it.
async fn stalling_pod(promised: usize, sent: usize) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let closed = Arc::new(AtomicUsize::new(0));
    let counter = closed.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let _ = stream.read(&mut buf).await;
                let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {promised}\r\n\r\n");
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(&vec![b'x'; sent]).await;
                while let Ok(n) = stream.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
                counter.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    (addr, closed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_that_stalls_mid_body_is_cut_off_at_the_read_timeout() {
    let (pod, closed) = stalling_pod(100, 5).await;
    let (_dir, v) = app(&[pod], &["--upstream-read-timeout", "1s"]);
    let mut stream = TcpStream::connect(v.http).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n")
        .await
        .unwrap();
    let (after, got) = closed_after(&mut stream, Duration::from_secs(5))
        .await
        .expect("the response ends");
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.starts_with("HTTP/1.1 200") && text.ends_with("xxxxx"),
        "{text}"
    );
    assert!(
        after >= Duration::from_millis(900) && after < Duration::from_secs(3),
        "{after:?}"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        closed.load(Ordering::SeqCst),
        1,
        "the stalled pod connection is closed"
    );
}

/// A pod that streams `size` bytes to every request, counting connections it saw end.
async fn big_pod(size: usize) -> (SocketAddr, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let open = Arc::new(AtomicUsize::new(0));
    let ended = Arc::new(AtomicUsize::new(0));
    let (o, e) = (open.clone(), ended.clone());
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let (o, e) = (o.clone(), e.clone());
            o.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                // One request per connection is enough here.
                let _ = stream.read(&mut buf).await;
                let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n");
                let chunk = vec![b'y'; 64 * 1024];
                let mut ok = stream.write_all(head.as_bytes()).await.is_ok();
                let mut left = size;
                while ok && left > 0 {
                    let n = left.min(chunk.len());
                    ok = stream.write_all(&chunk[..n]).await.is_ok();
                    left -= n;
                }
                if ok {
                    let _ = stream.read(&mut buf).await;
                }
                e.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    (addr, open, ended)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_closed_at_the_send_timeout_and_frees_the_pod() {
    let (pod, open, ended) = big_pod(64 << 20).await;
    let (_dir, v) = app(&[pod], &["--client-send-timeout", "1s"]);
    let mut stream = TcpStream::connect(v.http).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n")
        .await
        .unwrap();
    // Read nothing: the socket buffers fill, and nothing moves.
    let started = Instant::now();
    while ended.load(Ordering::SeqCst) == 0 && started.elapsed() < Duration::from_secs(6) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(open.load(Ordering::SeqCst), 1);
    assert_eq!(
        ended.load(Ordering::SeqCst),
        1,
        "the pod's connection is closed"
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    let metrics = v.metrics().await;
    assert_eq!(
        metric_value(
            &metrics,
            "vestibule_client_connections_closed_total",
            "reason=\"send_timeout\""
        ),
        Some(1.0),
        "{metrics}"
    );
    drop(stream);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_clients_with_a_zero_window_hold_no_pod_connections_past_the_send_timeout() {
    let (pod, open, ended) = big_pod(1 << 20).await;
    let (_dir, v) = app(&[pod], &["--client-send-timeout", "1s"]);
    let mut clients = Vec::new();
    for _ in 0..3 {
        let tcp = TcpStream::connect(v.http).await.unwrap();
        let (mut send, conn) = h2::client::Builder::new()
            .initial_window_size(0)
            .handshake::<_, bytes::Bytes>(tcp)
            .await
            .unwrap();
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut responses = Vec::new();
        for _ in 0..20 {
            let req = http::Request::get("http://app.test/").body(()).unwrap();
            send = send.ready().await.unwrap();
            let (response, _) = send.send_request(req, true).unwrap();
            responses.push(response);
        }
        clients.push((send, responses));
    }
    let started = Instant::now();
    while open.load(Ordering::SeqCst) < 60 && started.elapsed() < Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        open.load(Ordering::SeqCst),
        60,
        "every stream reached the pod"
    );
    while ended.load(Ordering::SeqCst) < 60 && started.elapsed() < Duration::from_secs(6) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        ended.load(Ordering::SeqCst),
        60,
        "all pod connections were let go"
    );
    let rss = v.peak_rss_kib();
    assert!(rss < 200 * 1024, "peak RSS {rss} KiB");
    drop(clients);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_rules_of_rfc_9112_and_9113() {
    let blue = backend("blue").await;
    let green = backend("green").await;
    let dir = manifest_dir();
    write_atomic(
        dir.path(),
        "services.yaml",
        &format!(
            "{}---\n{}",
            service_yaml("blue", &[(blue, None)]),
            service_yaml("green", &[(green, None)])
        ),
    );
    write_atomic(
        dir.path(),
        "ingress.yaml",
        &ingress_yaml(
            "hosts",
            &[
                ("blue.test", "Prefix", "/", "blue"),
                ("green.test", "Prefix", "/", "green"),
            ],
        ),
    );
    let v = Vestibule::start(dir.path(), &[]);
    // RFC 9112 §3.2: two Host lines are a 400.
    let two = raw(
        v.http,
        b"GET / HTTP/1.1\r\nHost: blue.test\r\nHost: green.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(two.starts_with("HTTP/1.1 400"), "{two}");
    // RFC 9112 §3.2.2: the absolute-form target's authority wins over Host, and is what the
    // pod sees.
    let absolute = raw(
        v.http,
        b"GET http://blue.test/x HTTP/1.1\r\nHost: green.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(absolute.starts_with("HTTP/1.1 200"), "{absolute}");
    assert!(absolute.contains("\"backend\": \"blue\""), "{absolute}");
    assert!(absolute.contains("\"host\": \"blue.test\""), "{absolute}");
    let plain = raw(
        v.http,
        b"GET / HTTP/1.1\r\nHost: green.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(plain.contains("\"backend\": \"green\""), "{plain}");

    // RFC 9113 §8.3.1: over HTTP/2, a Host that names another host than :authority is
    // malformed; the same host (any case) is fine.
    let tcp = TcpStream::connect(v.http).await.unwrap();
    let (mut send, conn) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    for (host, expected) in [
        ("green.test", StatusCode::BAD_REQUEST),
        ("BLUE.test", StatusCode::OK),
    ] {
        let req = http::Request::get("http://blue.test/")
            .header("host", host)
            .body(())
            .unwrap();
        send = send.ready().await.unwrap();
        let (response, _) = send.send_request(req, true).unwrap();
        assert_eq!(response.await.unwrap().status(), expected, "Host: {host}");
    }
    let metrics = v.metrics().await;
    assert_eq!(
        metric_value(&metrics, "vestibule_client_errors_total", "reason=\"host\""),
        Some(2.0),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_chunked_bodies_are_the_clients_fault() {
    let pod = backend("app").await;
    let (_dir, v) = app(&[pod], &[]);
    let bodies: [&[u8]; 5] = [
        b"zz\r\nhello\r\n0\r\n\r\n",
        b"-1\r\nhello\r\n0\r\n\r\n",
        b"0x5\r\nhello\r\n0\r\n\r\n",
        b"ffffffffffffffffff\r\nhello\r\n0\r\n\r\n",
        b"5;ext\nhello\r\n0\r\n\r\n",
    ];
    for body in bodies {
        let mut request =
            b"POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        request.extend_from_slice(body);
        let answer = raw(v.http, &request).await;
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 400"),
            "{}: {answer}",
            String::from_utf8_lossy(body)
        );
    }
    let metrics = v.metrics().await;
    assert_eq!(
        metric_value(
            &metrics,
            "vestibule_upstream_errors_total",
            "reason=\"protocol\",protocol=\"http\""
        ),
        None,
        "{metrics}"
    );
    assert!(
        !v.logs()
            .iter()
            .any(|l| l.contains("\"WARN\"") && l.contains("request failed")),
        "{:?}",
        v.logs()
    );
    // A good chunked body still goes through.
    let good = raw(v.http, b"POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n").await;
    assert!(good.starts_with("HTTP/1.1 200"), "{good}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websockets_live_through_the_drain_and_get_a_going_away_close_frame() {
    let pod = backend("app").await;
    let (_dir, mut v) = app(&[pod], &["--shutdown-grace", "2s"]);
    let stream = TcpStream::connect(v.http).await.unwrap();
    let (mut ws, _) =
        tokio_tungstenite::client_async("ws://app.test/".into_client_request().unwrap(), stream)
            .await
            .unwrap();
    ws.send(Message::text("before")).await.unwrap();
    assert_eq!(
        ws.next()
            .await
            .unwrap()
            .unwrap()
            .into_text()
            .unwrap()
            .as_str(),
        "before"
    );
    let terminated = Instant::now();
    v.terminate();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    ws.send(Message::text("during the grace")).await.unwrap();
    assert_eq!(
        ws.next()
            .await
            .unwrap()
            .unwrap()
            .into_text()
            .unwrap()
            .as_str(),
        "during the grace"
    );
    let close = tokio::time::timeout(Duration::from_secs(4), ws.next())
        .await
        .expect("a close frame");
    match close {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(frame.code, CloseCode::Away),
        other => panic!("expected a 1001 close frame, got {other:?}"),
    }
    assert!(
        terminated.elapsed() >= Duration::from_millis(1900),
        "{:?}",
        terminated.elapsed()
    );
    assert_eq!(v.wait_exit(Duration::from_secs(5)), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shutdown_delay_keeps_accepting_while_not_ready() {
    let pod = backend("app").await;
    let (_dir, mut v) = app(
        &[pod],
        &["--shutdown-delay", "1500ms", "--shutdown-grace", "1s"],
    );
    v.terminate();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        get(v.admin, "admin", "/readyz").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        get(v.http, "app.test", "/").await.status,
        StatusCode::OK,
        "new connections are still served"
    );
    tokio::time::sleep(Duration::from_millis(1700)).await;
    assert!(
        TcpStream::connect(v.http).await.is_err(),
        "the listener is closed after the delay"
    );
    assert_eq!(v.wait_exit(Duration::from_secs(5)), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debounce_is_a_quiet_period() {
    let pod = backend("app").await;
    let (dir, v) = app(&[pod], &["--debounce", "200ms"]);
    let generation = || async {
        get(v.admin, "admin", "/debug/routes").await.json()["generation"]
            .as_u64()
            .unwrap()
    };
    let before = generation().await;
    // 20 writes 50 ms apart: one burst, so one reload (the longest wait is 2 s).
    for i in 0..20 {
        write_atomic(
            dir.path(),
            "ingress.yaml",
            &ingress_yaml("app", &[(&format!("app{i}.test"), "Prefix", "/", "app")]),
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    v.eventually("app19.test", "/", Duration::from_secs(3), |a| {
        a.status == StatusCode::OK
    })
    .await;
    assert_eq!(generation().await, before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewriting_a_manifest_in_place_under_load_fails_no_request() {
    let pod = backend("app").await;
    // The default quiet period: an emptied file counts once it stayed empty that long, so a
    // writer descheduled longer than it between truncate and write (a loaded CI machine, at
    // 50 ms) would take the Service away for real.
    let (dir, v) = app(&[pod], &["--debounce", "100ms"]);
    let stop = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(AtomicUsize::new(0));
    let ok = Arc::new(AtomicUsize::new(0));
    let http = v.http;
    let load = {
        let (stop, failed, ok) = (stop.clone(), failed.clone(), ok.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let a = get(http, "app.test", "/").await;
                if a.status == StatusCode::OK {
                    ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    eprintln!("failed: {} {}", a.status, a.text);
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    // In place, as editors without atomic save do: truncate, then write. The Service's
    // port name changes back and forth so that every version is a real change.
    let file = dir.path().join("services.yaml");
    let versions = [
        service_yaml("app", &[(pod, None)]),
        service_yaml("app", &[(pod, Some(true))]),
    ];
    for i in 0..1000 {
        std::fs::write(&file, &versions[i % 2]).unwrap();
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "{} succeeded",
        ok.load(Ordering::Relaxed)
    );
    assert!(ok.load(Ordering::Relaxed) > 100);
    // A file emptied on purpose does take its objects away, once it has been empty a while.
    std::fs::write(&file, "").unwrap();
    v.eventually("app.test", "/", Duration::from_secs(3), |a| {
        a.status == StatusCode::SERVICE_UNAVAILABLE
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deeply_nested_manifest_is_refused_quickly_and_traffic_does_not_wait() {
    let pod = backend("app").await;
    let (dir, v) = app(&[pod], &[]);
    let deep = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: deep}}\nspec: {}{}\n",
        "[".repeat(40_000),
        "]".repeat(40_000)
    );
    let started = Instant::now();
    std::fs::write(dir.path().join("deep.yaml"), &deep).unwrap();
    let dashes = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: dashes}}\nspec:\n  x:\n{}1\n",
        "- ".repeat(30_000)
    );
    std::fs::write(dir.path().join("dashes.yaml"), &dashes).unwrap();
    let mut slowest = Duration::ZERO;
    while started.elapsed() < Duration::from_secs(2) {
        let one = Instant::now();
        assert_eq!(get(v.http, "app.test", "/").await.status, StatusCode::OK);
        slowest = slowest.max(one.elapsed());
    }
    assert!(
        slowest < Duration::from_millis(500),
        "a request waited {slowest:?}"
    );
    let routes = get(v.admin, "admin", "/debug/routes").await.json();
    let text = routes["diagnostics"].to_string();
    assert!(
        text.contains("deep.yaml") && text.contains("nesting deeper than 100"),
        "{text}"
    );
    assert!(text.contains("dashes.yaml"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_manifest_is_unpublished_and_503_says_which_service() {
    let pod = backend("app").await;
    let (dir, v) = app(&[pod], &[]);
    assert_eq!(get(v.http, "app.test", "/").await.status, StatusCode::OK);
    std::fs::remove_file(dir.path().join("services.yaml")).unwrap();
    let a = v
        .eventually("app.test", "/", Duration::from_secs(3), |a| {
            a.status == StatusCode::SERVICE_UNAVAILABLE
        })
        .await;
    assert!(a.text.contains("Service test/app not found"), "{}", a.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_log_names_the_host_of_http2_requests() {
    let pod = backend("app").await;
    let (_dir, v) = app(&[pod], &[]);
    assert_eq!(
        get_h2c(v.http, "app.test", "/h2").await.status,
        StatusCode::OK
    );
    let started = Instant::now();
    loop {
        let lines = v.access_log();
        if let Some(line) = lines.iter().find(|l| l.contains("/h2")) {
            let json: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(json["host"], "app.test", "{line}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(3), "{lines:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn a_sigterm_while_starting_is_a_clean_shutdown() {
    // Enough manifests that the first read takes a while; the signal lands during it.
    let dir = manifest_dir();
    let mut text = String::new();
    for i in 0..3000 {
        text.push_str(&ingress_yaml(
            &format!("app{i}"),
            &[(&format!("app{i}.test"), "Prefix", "/", "app")],
        ));
        text.push_str("---\n");
    }
    write_atomic(dir.path(), "many.yaml", &text);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_vestibule"))
        .args(["--manifests", dir.path().to_str().unwrap()])
        .args(EPHEMERAL_PORTS)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Sent once the first read has begun (its log line comes after the signal handlers are
    // installed), not after a guessed delay: a signal before them kills any process.
    let (began_tx, began) = std::sync::mpsc::channel();
    let log = std::io::BufReader::new(child.stderr.take().unwrap());
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in log.lines().map_while(Result::ok) {
            if line.contains("reading --manifests") {
                let _ = began_tx.send(());
            }
        }
    });
    began
        .recv_timeout(Duration::from_secs(30))
        .expect("the first read begins");
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(0),
        "{status:?}: drained and exited, not killed by the signal"
    );
}
