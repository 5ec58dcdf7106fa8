//! Scale (issue #16): N apps, each an Ingress (its own host, two paths), a Service and an
//! EndpointSlice with two endpoints; in file mode one file per object, in cluster mode the
//! fake API server. Beside them, one Service of their own serves a few extra hosts (one per
//! sample): Ingresses with a TLS Secret each, and HTTPRoutes through a Gateway (so the
//! Gateway API objects are there during every other change too). Prints, per mode and N: the
//! time from process start to the first 200 of the last app, the steady RSS (and per app),
//! the peak RSS, and the p50/p99 of change → traffic per kind of change, polling at 5 ms: an
//! EndpointSlice's endpoints move, an Ingress moves host, a Secret's certificate is replaced
//! (polled by TLS handshakes), an HTTPRoute moves hostname, a Service renames its port.
//!
//!   cargo bench --bench scale                                  # 1k and 10k, both modes
//!   SCALE_APPS=1000,10000,100000 SCALE_MODES=files cargo bench --bench scale
//!   SCALE_SAMPLES=50 cargo bench --bench scale                 # more changes per kind
//!   SCALE_SAMPLES=0 SCALE_LOG=vestibule=debug cargo bench --bench scale   # ready and RSS only, Vestibule's log on stderr

#[path = "support/apps.rs"]
mod apps;
#[path = "../tests/support/mod.rs"]
mod support;

use support::{apiserver, tls};

use apps::{host, ingress, service, slice};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const POLL: Duration = Duration::from_millis(5);
const GIVE_UP: Duration = Duration::from_secs(60);

/// A pod that answers every request with its name: both addresses of a slice point at one.
async fn pod(ip: &str, port: u16, name: &'static str) {
    let listener = tokio::net::TcpListener::bind((ip, port))
        .await
        .expect("bind pod");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |_req| async move {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                        Bytes::from_static(name.as_bytes()),
                    )))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Where the objects live: files (one per object) or the fake API server.
enum Store {
    Files(tempfile::TempDir),
    Api(apiserver::ApiServer, tempfile::TempDir),
}

impl Store {
    fn put(&self, name: &str, object: Value) {
        match self {
            Store::Files(dir) => {
                let text = serde_json::to_string(&object).unwrap();
                let tmp = dir.path().join(format!(".{name}.tmp"));
                std::fs::write(&tmp, text).unwrap();
                std::fs::rename(&tmp, dir.path().join(format!("{name}.json"))).unwrap();
            }
            Store::Api(api, _) => api.apply_value(object),
        }
    }
}

fn status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// The answer to `GET http://http/path` with `Host: host`: status and body (`None`: no
/// answer).
async fn ask(
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>,
    http: SocketAddr,
    host: &str,
) -> Option<(u16, Bytes)> {
    let req = http::Request::get(format!("http://{http}/"))
        .header("host", host)
        .body(Empty::new())
        .unwrap();
    let response = client.request(req).await.ok()?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.ok()?.to_bytes();
    Some((status, body))
}

/// Polls until `done` holds for the answer; the time it took.
async fn until(
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>,
    http: SocketAddr,
    host: &str,
    done: impl Fn(u16, &[u8]) -> bool,
) -> Duration {
    let started = Instant::now();
    loop {
        if let Some((status, body)) = ask(client, http, host).await
            && done(status, &body)
        {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < GIVE_UP,
            "{host}: no change after {GIVE_UP:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

struct Run {
    child: Child,
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The extra hosts' objects: TLS Ingresses, their Secrets, a Gateway and HTTPRoutes, all in
/// the namespace of app `extra` (one past the apps), whose Service they send to.
mod extra {
    use serde_json::{Value, json};

    pub fn namespace(extra: usize) -> String {
        format!("ns{}", extra % 100)
    }

    pub fn tls_host(j: usize) -> String {
        format!("tls{j}.scale.test")
    }

    pub fn tls_ingress(extra: usize, j: usize) -> Value {
        let mut i = super::ingress(extra, &tls_host(j));
        i["metadata"]["name"] = format!("tls{j}").into();
        i["metadata"]["annotations"] = json!({"nginx.ingress.kubernetes.io/ssl-redirect": "false"});
        i["spec"]["tls"] = json!([{"hosts": [tls_host(j)], "secretName": format!("tls{j}")}]);
        i
    }

    pub fn tls_secret(extra: usize, j: usize, pair: &super::tls::Pair) -> Value {
        let data = [
            ("tls.crt", pair.cert.as_bytes()),
            ("tls.key", pair.key.as_bytes()),
        ];
        let secret = k8s_openapi::api::core::v1::Secret {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some(format!("tls{j}")),
                namespace: Some(namespace(extra)),
                ..Default::default()
            },
            type_: Some("kubernetes.io/tls".to_owned()),
            data: Some(
                data.iter()
                    .map(|(k, v)| (k.to_string(), k8s_openapi::ByteString(v.to_vec())))
                    .collect(),
            ),
            ..Default::default()
        };
        serde_json::to_value(secret).expect("a Secret")
    }

    pub fn gateway_class() -> Value {
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
               "metadata": {"name": "vestibule"},
               "spec": {"controllerName": "vestibule.dev/ingress-controller"}})
    }

    pub fn gateway(extra: usize) -> Value {
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
               "metadata": {"name": "edge", "namespace": namespace(extra)},
               "spec": {"gatewayClassName": "vestibule", "listeners": [
                   {"name": "http", "protocol": "HTTP", "port": 80, "hostname": "*.route.scale.test"}]}})
    }

    pub fn route_host(j: usize, moved: bool) -> String {
        match moved {
            false => format!("r{j}.route.scale.test"),
            true => format!("moved{j}.route.scale.test"),
        }
    }

    pub fn http_route(extra: usize, j: usize, moved: bool) -> Value {
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
               "metadata": {"name": format!("route{j}"), "namespace": namespace(extra)},
               "spec": {"parentRefs": [{"name": "edge"}], "hostnames": [route_host(j, moved)],
                        "rules": [{"backendRefs": [{"name": format!("app{extra}"), "port": 80}]}]}})
    }
}

/// The DNS names of the certificate a TLS handshake with SNI `host` is given (empty: none).
async fn presented(https: SocketAddr, host: &str) -> Vec<String> {
    match tls::connect(https, tls::Hello::sni(host)).await {
        Ok(stream) => tls::presented_names(&stream),
        Err(_) => Vec::new(),
    }
}

async fn measure(mode: &str, apps: usize, samples: usize, ports: (u16, u16)) {
    let store = match mode {
        "files" => Store::Files(tempfile::tempdir().unwrap()),
        _ => {
            let api = apiserver::ApiServer::start().await;
            Store::Api(api, tempfile::tempdir().unwrap())
        }
    };
    store.put("class", apps::class());
    for i in 0..apps {
        store.put(&format!("ingress-{i}"), ingress(i, &host(i)));
        store.put(&format!("service-{i}"), service(i, "http"));
        store.put(&format!("slice-{i}"), slice(i, ports.0));
    }
    let x = apps;
    store.put("service-extra", service(x, "http"));
    store.put("slice-extra", slice(x, ports.0));
    let ca = tls::Ca::new();
    for j in 0..samples {
        store.put(&format!("tls-ingress-{j}"), extra::tls_ingress(x, j));
        let pair = ca.leaf(&[&extra::tls_host(j)]);
        store.put(&format!("tls-secret-{j}"), extra::tls_secret(x, j, &pair));
        store.put(&format!("route-{j}"), extra::http_route(x, j, false));
    }
    store.put("gateway-class", extra::gateway_class());
    store.put("gateway", extra::gateway(x));
    let http: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let https: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_vestibule"));
    command
        .args([
            "--http-addr",
            &http.to_string(),
            "--https-addr",
            &https.to_string(),
        ])
        .args([
            "--admin-addr",
            "127.0.0.1:0",
            "--log-level",
            &std::env::var("SCALE_LOG").unwrap_or_else(|_| "warn".to_owned()),
            "--access-log=false",
        ])
        .stdout(Stdio::null());
    match &store {
        Store::Files(dir) => {
            command.args(["--manifests", dir.path().to_str().unwrap()]);
        }
        Store::Api(api, dir) => {
            command.env("KUBECONFIG", api.kubeconfig(dir.path()));
        }
    }
    let started = Instant::now();
    let child = command.spawn().expect("start vestibule");
    let run = Run { child };
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let last = host(apps - 1);
    loop {
        if let Some((200, _)) = ask(&client, http, &last).await {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(600), "not ready");
        tokio::time::sleep(POLL).await;
    }
    let ready = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pid = run.child.id();
    let steady = status_kib(pid, "VmRSS:");
    let peak_before = status_kib(pid, "VmHWM:");
    let mut rows: Vec<(&str, Vec<Duration>)> = Vec::new();
    let head = format!(
        "{mode:>7} {apps:>7} apps: ready {:>8.0} ms | steady RSS {:>7.1} MiB ({:>5.1} KB/app)",
        ready.as_secs_f64() * 1000.0,
        steady as f64 / 1024.0,
        steady as f64 * 1.024 / apps as f64,
    );
    if samples == 0 {
        println!("{head} | peak {:>7.1} MiB", peak_before as f64 / 1024.0);
        return;
    }
    // Distinct apps for each change, spread over the set.
    let pick = |k: usize, s: usize| (k * 7919 + s * 104_729) % apps;
    let mut endpoint = Vec::new();
    for s in 0..samples {
        let i = pick(0, s);
        store.put(&format!("slice-{i}"), slice(i, ports.1));
        endpoint.push(
            until(&client, http, &host(i), |status, body| {
                status == 200 && body == b"b"
            })
            .await,
        );
    }
    rows.push(("EndpointSlice", endpoint));
    let mut ingresses = Vec::new();
    for s in 0..samples {
        let i = pick(1, s);
        let moved = format!("moved{i}.scale.test");
        store.put(&format!("ingress-{i}"), ingress(i, &moved));
        ingresses.push(until(&client, http, &moved, |status, _| status == 200).await);
    }
    rows.push(("Ingress", ingresses));
    let mut secrets = Vec::new();
    for j in 0..samples {
        let host = extra::tls_host(j);
        let renewed = format!("renewed.{host}");
        let pair = ca.leaf(&[&host, &renewed]);
        store.put(&format!("tls-secret-{j}"), extra::tls_secret(x, j, &pair));
        let started = Instant::now();
        while !presented(https, &host).await.contains(&renewed) {
            assert!(started.elapsed() < GIVE_UP, "{host}: no new certificate");
            tokio::time::sleep(POLL).await;
        }
        secrets.push(started.elapsed());
    }
    rows.push(("Secret", secrets));
    let mut routes = Vec::new();
    for j in 0..samples {
        store.put(&format!("route-{j}"), extra::http_route(x, j, true));
        let moved = extra::route_host(j, true);
        routes.push(until(&client, http, &moved, |status, _| status == 200).await);
    }
    rows.push(("HTTPRoute", routes));
    let mut services = Vec::new();
    for s in 0..samples {
        let i = pick(2, s);
        store.put(&format!("service-{i}"), service(i, "renamed"));
        services.push(until(&client, http, &host(i), |status, _| status == 503).await);
    }
    rows.push(("Service", services));
    let peak = status_kib(pid, "VmHWM:");
    println!(
        "{head} | peak {:>7.1} MiB (at ready {:.1}) | {}",
        peak as f64 / 1024.0,
        peak_before as f64 / 1024.0,
        rows.iter_mut()
            .map(|(kind, took)| {
                took.sort();
                format!(
                    "{kind} p50 {:.0} / p99 {:.0} ms",
                    percentile(took, 0.5),
                    percentile(took, 0.99)
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    );
    drop(run);
    if let Store::Files(dir) = store {
        let _ = std::fs::remove_dir_all(dir.path());
    }
}

#[tokio::main]
async fn main() {
    // `cargo test --benches` runs benches without --bench: keep that quick.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let list = |var: &str, default: &str| -> Vec<String> {
        std::env::var(var)
            .unwrap_or_else(|_| default.to_owned())
            .split(',')
            .map(str::to_owned)
            .collect()
    };
    let samples: usize = std::env::var("SCALE_SAMPLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let ports = (free_port(), free_port());
    for ip in ["127.0.0.1", "127.0.0.2"] {
        pod(ip, ports.0, "a").await;
        pod(ip, ports.1, "b").await;
    }
    println!("change → traffic polled every {POLL:?}, {samples} changes per kind");
    for mode in list("SCALE_MODES", "files,cluster") {
        for apps in list("SCALE_APPS", "1000,10000") {
            measure(&mode, apps.parse().expect("SCALE_APPS"), samples, ports).await;
        }
    }
}
