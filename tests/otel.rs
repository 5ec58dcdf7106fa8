//! OpenTelemetry export (feature `otel`): spans reach an OTLP/HTTP collector, and the W3C
//! trace context continues from the client through Vestibule to the upstream.
#![cfg(feature = "otel")]

mod support;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::*;

/// An OTLP/HTTP collector that keeps every export it receives: (path, body).
async fn collector() -> (SocketAddr, Arc<Mutex<Vec<(String, Vec<u8>)>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let received = Arc::new(Mutex::new(Vec::new()));
    let store = received.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let store = store.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let store = store.clone();
                    async move {
                        let path = req.uri().path().to_owned();
                        let body = req
                            .into_body()
                            .collect()
                            .await
                            .map(|b| b.to_bytes().to_vec())
                            .unwrap_or_default();
                        store.lock().unwrap().push((path, body));
                        let mut r = Response::new(Full::new(Bytes::new()));
                        r.headers_mut()
                            .insert("content-type", "application/x-protobuf".parse().unwrap());
                        Ok::<_, std::convert::Infallible>(r)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, received)
}

const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
const CLIENT_SPAN: &str = "b7ad6b7169203331";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_are_exported_and_the_trace_continues_upstream() {
    let (otlp, received) = collector().await;
    let web = backend("web").await;
    let dir = manifest_dir();
    write_atomic(dir.path(), "s.yaml", &service_yaml("web", &[(web, None)]));
    write_atomic(
        dir.path(),
        "i.yaml",
        &ingress_yaml("traced", &[("t.test", "Prefix", "/", "web")]),
    );
    let endpoint = format!("http://{otlp}");
    let mut v = Vestibule::start(dir.path(), &["--otlp-endpoint", &endpoint]);

    let req = Request::get(format!("http://{}/traced", v.http))
        .header("host", "t.test")
        .header("traceparent", format!("00-{TRACE_ID}-{CLIENT_SPAN}-01"))
        .body(Full::default())
        .unwrap();
    let answer = send(v.http, req).await;
    assert_eq!(answer.status, StatusCode::OK);
    let upstream = answer.json()["headers"]["traceparent"]
        .as_str()
        .unwrap()
        .to_owned();
    let parts: Vec<&str> = upstream.split('-').collect();
    assert_eq!(parts.len(), 4, "{upstream}");
    assert_eq!(parts[1], TRACE_ID, "the client's trace continues");
    assert_ne!(
        parts[2], CLIENT_SPAN,
        "Vestibule's own span is the upstream's parent"
    );

    let fresh = get(v.http, "t.test", "/").await.json()["headers"]["traceparent"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        fresh.starts_with("00-") && !fresh.contains(TRACE_ID),
        "a request without context starts a trace: {fresh}"
    );

    // Shutting down flushes the batch.
    v.terminate();
    assert_eq!(v.wait_exit(Duration::from_secs(15)), Some(0));
    let exports = received.lock().unwrap().clone();
    assert!(
        exports.iter().all(|(path, _)| path == "/v1/traces"),
        "{:?}",
        exports.iter().map(|e| &e.0).collect::<Vec<_>>()
    );
    let all: Vec<u8> = exports.into_iter().flat_map(|(_, body)| body).collect();
    let trace_id: Vec<u8> = (0..16)
        .map(|i| u8::from_str_radix(&TRACE_ID[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    assert!(
        all.windows(16).any(|w| w == trace_id.as_slice()),
        "the span of the traced request was exported"
    );
    assert!(
        all.windows(7).any(|w| w == b"request"),
        "spans are named `request`"
    );
    assert!(
        all.windows(9).any(|w| w == b"vestibule"),
        "service.name is vestibule"
    );
}
