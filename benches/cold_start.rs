//! Cluster-mode cold start: 10,000 Ingresses, 5,000 Services and 5,000 EndpointSlices (10
//! endpoints each) in the fake API server; prints the time from process start to `/readyz`
//! 200 and the resident memory then. Targets (issue #5): ready < 3 s, RSS < 200 MiB.
//!
//! `cargo bench --bench cold_start`

#[allow(dead_code)]
#[path = "../tests/support/apiserver.rs"]
mod apiserver;

use serde_json::json;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const INGRESSES: usize = 10_000;
const SERVICES: usize = 5_000;
const ENDPOINTS: usize = 10;

fn status_of(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

async fn ready(admin: &str) -> bool {
    let Ok(mut s) = tokio::net::TcpStream::connect(admin).await else {
        return false;
    };
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    if s.write_all(b"GET /readyz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .await
        .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 16];
    matches!(s.read(&mut buf).await, Ok(n) if buf[..n].starts_with(b"HTTP/1.1 200"))
}

#[tokio::main]
async fn main() {
    // `cargo test --benches` runs benches with --bench absent: keep that quick.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let api = apiserver::ApiServer::start().await;
    api.apply_value(json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": {"name": "vestibule"}, "spec": {"controller": "vestibule.dev/ingress-controller"}}));
    for i in 0..SERVICES {
        let ns = format!("ns{}", i % 100);
        api.apply_value(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": format!("svc{i}"), "namespace": ns}, "spec": {"ports": [{"name": "http", "port": 80}]}}));
        let endpoints: Vec<_> = (0..ENDPOINTS).map(|e| json!({"addresses": [format!("10.{}.{}.{}", i / 250, i % 250, e + 1)], "conditions": {"ready": true}})).collect();
        api.apply_value(json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": {"name": format!("svc{i}-abc"), "namespace": ns, "labels": {"kubernetes.io/service-name": format!("svc{i}")}}, "addressType": "IPv4", "ports": [{"name": "http", "port": 8080}], "endpoints": endpoints}));
    }
    for i in 0..INGRESSES {
        let s = i % SERVICES;
        let paths: Vec<_> = ["/", "/api", "/static"].iter().map(|p| json!({"path": p, "pathType": "Prefix", "backend": {"service": {"name": format!("svc{s}"), "port": {"name": "http"}}}})).collect();
        api.apply_value(json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": format!("ing{i}"), "namespace": format!("ns{}", s % 100)}, "spec": {"ingressClassName": "vestibule", "rules": [{"host": format!("host{i}.example.com"), "http": {"paths": paths}}]}}));
    }
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.kubeconfig(dir.path());
    let admin = "127.0.0.1:18799";
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_vestibule"))
        .args([
            "--http-addr",
            "127.0.0.1:0",
            "--https-addr",
            "127.0.0.1:0",
            "--admin-addr",
            admin,
            "--log-level",
            "warn",
            "--access-log=false",
        ])
        .env("KUBECONFIG", &kubeconfig)
        .stdout(Stdio::null())
        .spawn()
        .expect("start vestibule");
    while !ready(admin).await {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "not ready after 60 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let took = started.elapsed();
    let pid = child.id();
    let rss_ready = status_of(pid, "VmRSS:");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let hwm = status_of(pid, "VmHWM:");
    let rss = status_of(pid, "VmRSS:");
    println!(
        "cold start: {INGRESSES} Ingresses, {SERVICES} Services, {} endpoints",
        SERVICES * ENDPOINTS
    );
    println!(
        "ready after {:.0} ms (target < 3000 ms)",
        took.as_secs_f64() * 1000.0
    );
    println!(
        "RSS at ready {:.1} MiB, 2 s later {:.1} MiB, peak {:.1} MiB (target < 200 MiB)",
        rss_ready as f64 / 1024.0,
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    let _ = child.kill();
    let _ = child.wait();
}
