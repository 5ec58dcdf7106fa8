//! Request latency while a large manifest set reloads: a steady load on one route, first with
//! the manifests untouched, then while a 20k-app file (about 20 MB) is rewritten so that every
//! reload reads, parses and builds all of it. Prints p50/p99/max of both phases and their
//! ratio; reloads run off the request threads, so p99 should not move.
//!
//!   cargo bench --bench reload_latency            # APPS=5000 for a quicker run

#[path = "../tests/support/mod.rs"]
mod support;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use support::{Vestibule, backend};

const LOAD_CONNECTIONS: usize = 4;
const PHASE: Duration = Duration::from_secs(6);

fn bulk(apps: usize, generation: usize) -> String {
    let mut text = String::with_capacity(apps * 1100);
    for i in 0..apps {
        text.push_str(&format!(
            "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: app{i}, namespace: bulk, labels: {{generation: \"{generation}\"}}}}\nspec:\n  ingressClassName: vestibule\n  rules:\n    - host: app{i}.bulk.test\n      http:\n        paths:\n          - {{path: /, pathType: Prefix, backend: {{service: {{name: app{i}, port: {{name: http}}}}}}}}\n          - {{path: /api, pathType: Prefix, backend: {{service: {{name: app{i}, port: {{name: http}}}}}}}}\n---\napiVersion: v1\nkind: Service\nmetadata: {{name: app{i}, namespace: bulk}}\nspec: {{ports: [{{name: http, port: 80}}]}}\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: app{i}, namespace: bulk, labels: {{kubernetes.io/service-name: app{i}}}}}\naddressType: IPv4\nports: [{{name: http, port: 9}}]\nendpoints: [{{addresses: [\"127.0.0.2\"]}}, {{addresses: [\"127.0.0.3\"]}}]\n---\n"
        ));
    }
    text
}

async fn load(http: SocketAddr, until: Instant) -> Vec<Duration> {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut took = Vec::new();
    while Instant::now() < until {
        let req = http::Request::get(format!("http://{http}/"))
            .header("host", "measured.test")
            .body(Empty::new())
            .unwrap();
        let started = Instant::now();
        let response = client.request(req).await.expect("request");
        assert!(response.status().is_success());
        let _ = response.into_body().collect().await;
        took.push(started.elapsed());
    }
    took
}

async fn phase(http: SocketAddr) -> Vec<Duration> {
    let until = Instant::now() + PHASE;
    let tasks: Vec<_> = (0..LOAD_CONNECTIONS)
        .map(|_| tokio::spawn(load(http, until)))
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    all
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p) as usize]
}

fn summary(name: &str, sorted: &[Duration]) {
    println!(
        "{name:>16}: {:>7} requests  p50 {:>8.3} ms  p99 {:>8.3} ms  max {:>8.3} ms",
        sorted.len(),
        pct(sorted, 0.5).as_secs_f64() * 1e3,
        pct(sorted, 0.99).as_secs_f64() * 1e3,
        sorted.last().unwrap().as_secs_f64() * 1e3
    );
}

fn reloads(metrics: &str) -> (f64, f64) {
    let value = |name: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (
        value("vestibule_config_reload_duration_seconds_count"),
        value("vestibule_config_reload_duration_seconds_sum"),
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let apps: usize = std::env::var("APPS")
        .ok()
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000);
    let pod = backend("measured").await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("measured.yaml"),
        format!(
            "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: measured, namespace: m}}\nspec:\n  ingressClassName: vestibule\n  rules: [{{host: measured.test, http: {{paths: [{{path: /, pathType: Prefix, backend: {{service: {{name: m, port: {{name: http}}}}}}}}]}}}}]\n---\napiVersion: v1\nkind: Service\nmetadata: {{name: m, namespace: m}}\nspec: {{ports: [{{name: http, port: 80}}]}}\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: m, namespace: m, labels: {{kubernetes.io/service-name: m}}}}\naddressType: IPv4\nports: [{{name: http, port: {}}}]\nendpoints: [{{addresses: [\"127.0.0.1\"]}}]\n",
            pod.port()
        ),
    )
    .unwrap();
    let bulk_file = dir.path().join("bulk.yaml");
    let first = bulk(apps, 0);
    println!(
        "bulk manifest: {apps} apps, {:.1} MB",
        first.len() as f64 / 1e6
    );
    std::fs::write(&bulk_file, first).unwrap();

    // Access log off and info logs, as in production benchmarks; one request thread, so a
    // reload that ran on it would show at once.
    let v = Vestibule::start(
        dir.path(),
        &[
            "--access-log=false",
            "--log-level",
            "info",
            "--worker-threads",
            "1",
        ],
    );
    let http = v.http;
    let steady = phase(http).await;
    let (count_before, sum_before) = reloads(&v.metrics().await);
    let rewrite = {
        let bulk_file = bulk_file.clone();
        std::thread::spawn(move || {
            let until = Instant::now() + PHASE;
            let mut generation = 1;
            while Instant::now() < until {
                let text = bulk(apps, generation);
                let tmp = bulk_file.with_extension("tmp");
                std::fs::write(&tmp, text).unwrap();
                std::fs::rename(&tmp, &bulk_file).unwrap();
                generation += 1;
                std::thread::sleep(Duration::from_millis(1500));
            }
        })
    };
    let reloading = phase(http).await;
    rewrite.join().unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (count_after, sum_after) = reloads(&v.metrics().await);
    summary("steady", &steady);
    summary("while reloading", &reloading);
    let n = count_after - count_before;
    println!(
        "reloads during the second phase: {n}, {:.0} ms each on average (read + parse + build + publish)",
        (sum_after - sum_before) / n.max(1.0) * 1e3
    );
    println!(
        "p99 while reloading / steady: {:.2}×",
        pct(&reloading, 0.99).as_secs_f64() / pct(&steady, 0.99).as_secs_f64()
    );
}
