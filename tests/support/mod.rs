//! Shared test support: the real `vestibule` binary started on ephemeral ports, in-process
//! echo backends on 127.0.0.1:0, manifest writers and a small HTTP client.
#![allow(dead_code)] // each test crate uses a different part of it

pub mod apiserver;
#[path = "../../examples/echo.rs"]
mod echo;
pub mod tls;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Starts an echo backend named `name` on an ephemeral loopback port.
pub async fn backend(name: &str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind backend");
    let addr = listener.local_addr().unwrap();
    tokio::spawn(echo::serve(listener, name.to_owned()));
    addr
}

/// A pod that answers every request with `status` after `delay`, counting them.
pub async fn slow_pod(status: u16, delay: Duration) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 {
                        return;
                    }
                    if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                        counter.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(delay).await;
                        let head = format!("HTTP/1.1 {status} X\r\ncontent-length: 4\r\n\r\nfail");
                        if s.write_all(head.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (addr, seen)
}

/// A loopback port that nothing listens on (bound, then released).
pub fn dead_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// A selector-less Service `name` (port `http` 80) in namespace `test`, with a hand-made
/// EndpointSlice listing `endpoints` (each `(address, ready)`).
pub fn service_yaml(name: &str, endpoints: &[(SocketAddr, Option<bool>)]) -> String {
    let mut text = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: test}}\nspec:\n  ports: [{{name: http, port: 80}}]\n"
    );
    // One slice per port: a slice carries one port list for all its endpoints.
    for (i, (addr, ready)) in endpoints.iter().enumerate() {
        let conditions = match ready {
            Some(r) => format!("{{ready: {r}}}"),
            None => "{}".to_owned(),
        };
        text.push_str(&format!(
            "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {name}-{i}\n  namespace: test\n  labels: {{kubernetes.io/service-name: {name}}}\naddressType: IPv4\nports: [{{name: http, port: {port}}}]\nendpoints:\n  - addresses: [\"{ip}\"]\n    conditions: {conditions}\n",
            port = addr.port(),
            ip = addr.ip(),
        ));
    }
    text
}

/// An Ingress `name` in namespace `test` with `(host, pathType, path, service)` rules.
pub fn ingress_yaml(name: &str, rules: &[(&str, &str, &str, &str)]) -> String {
    let mut text = format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: {name}, namespace: test}}\nspec:\n  ingressClassName: vestibule\n  rules:\n"
    );
    for (host, path_type, path, service) in rules {
        text.push_str(&format!(
            "    - host: \"{host}\"\n      http:\n        paths:\n          - path: {path}\n            pathType: {path_type}\n            backend: {{service: {{name: {service}, port: {{name: http}}}}}}\n"
        ));
    }
    text
}

/// Writes `text` to `dir/name` atomically (write aside, then rename), as editors and
/// config-management tools do.
pub fn write_atomic(dir: &Path, name: &str, text: &str) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

/// The flags that put all three listeners on free loopback ports.
pub const EPHEMERAL_PORTS: [&str; 6] = [
    "--http-addr",
    "127.0.0.1:0",
    "--https-addr",
    "127.0.0.1:0",
    "--admin-addr",
    "127.0.0.1:0",
];

/// A running `vestibule` process in file mode.
pub struct Vestibule {
    child: Child,
    pub http: SocketAddr,
    pub https: SocketAddr,
    pub admin: SocketAddr,
    logs: Arc<Mutex<Vec<String>>>,
    access: Arc<Mutex<Vec<String>>>,
}

impl Vestibule {
    /// Starts the binary on `dir` with ephemeral ports and waits until its listeners are up.
    pub fn start(dir: &Path, extra: &[&str]) -> Vestibule {
        let manifests = ["--manifests", dir.to_str().unwrap()];
        Self::start_with(
            &manifests.iter().chain(extra).copied().collect::<Vec<_>>(),
            &[],
        )
    }

    /// Starts the binary with these arguments (besides ports and logging) and environment.
    pub fn start_with(args: &[&str], env: &[(&str, &str)]) -> Vestibule {
        Self::start_via(Command::new(env!("CARGO_BIN_EXE_vestibule")), args, env)
    }

    /// Starts the binary with at most `nofile` open files (through util-linux's `prlimit`).
    pub fn start_with_nofile(args: &[&str], nofile: u32) -> Vestibule {
        let mut command = Command::new("prlimit");
        command
            .arg(format!("--nofile={nofile}:{nofile}"))
            .arg("--")
            .arg(env!("CARGO_BIN_EXE_vestibule"));
        Self::start_via(command, args, &[])
    }

    fn start_via(mut command: Command, args: &[&str], env: &[(&str, &str)]) -> Vestibule {
        let mut child = command
            .envs(env.iter().copied())
            .args(EPHEMERAL_PORTS)
            .args(["--log-format", "json"])
            .args(["--log-level", "info,vestibule=debug"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start vestibule");
        let stderr = child.stderr.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let access = Arc::new(Mutex::new(Vec::new()));
        {
            let access = access.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    access.lock().unwrap().push(line);
                }
            });
        }
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let logs = logs.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if let Some(found) = listening(&line) {
                        let _ = tx.send(found);
                    } else if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                        && v["message"] == "listening"
                    {
                        let _ = tx.send((
                            v["listener"].as_str().unwrap_or("").to_owned(),
                            v["addr"].as_str().unwrap_or("").to_owned(),
                        ));
                    }
                    logs.lock().unwrap().push(line);
                }
            });
        }
        let (mut http, mut https, mut admin) = (None, None, None);
        while http.is_none() || https.is_none() || admin.is_none() {
            let (which, addr) = rx
                .recv_timeout(Duration::from_secs(20))
                .unwrap_or_else(|_| {
                    panic!(
                        "vestibule did not start; log:\n{}",
                        logs.lock().unwrap().join("\n")
                    )
                });
            let addr: SocketAddr = addr.parse().unwrap();
            match which.as_str() {
                "http" => http = Some(addr),
                "https" => https = Some(addr),
                "admin" => admin = Some(addr),
                _ => {}
            }
        }
        Vestibule {
            child,
            http: http.unwrap(),
            https: https.unwrap(),
            admin: admin.unwrap(),
            logs,
            access,
        }
    }

    /// Every access-log line (stdout) so far.
    pub fn access_log(&self) -> Vec<String> {
        self.access.lock().unwrap().clone()
    }

    /// The metrics text from the admin port.
    pub async fn metrics(&self) -> String {
        get(self.admin, "admin", "/metrics").await.text
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every log line so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    /// Waits up to `within` for a log line containing `needle`: stderr is read on another
    /// thread, so a line can arrive after the answer it belongs to.
    pub async fn wait_for_log(&self, needle: &str, within: Duration) {
        let started = Instant::now();
        while !self.logs().iter().any(|l| l.contains(needle)) {
            assert!(
                started.elapsed() < within,
                "no log line with {needle:?}: {:?}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills the process at once (SIGKILL), as a crashed node would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit and returns its exit code.
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Peak resident memory (VmHWM) in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// Waits until `check` holds for the answer to `GET host path`, or panics after `within`.
    pub async fn eventually(
        &self,
        host: &str,
        path: &str,
        within: Duration,
        check: impl Fn(&Answer) -> bool,
    ) -> Answer {
        let deadline = Instant::now() + within;
        loop {
            let answer = get(self.http, host, path).await;
            if check(&answer) {
                return answer;
            }
            if Instant::now() > deadline {
                panic!(
                    "condition not met for {host}{path}; last answer {} {}",
                    answer.status, answer.text
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for Vestibule {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let logs = self.logs();
            let _ = std::fs::write(
                std::env::temp_dir().join(format!("vestibule-{}.log", self.pid())),
                logs.join("\n"),
            );
            let start = logs.len().saturating_sub(40);
            eprintln!(
                "--- vestibule log (last {} lines) ---\n{}",
                logs.len() - start,
                logs[start..].join("\n")
            );
            if let Ok(Some(status)) = self.child.try_wait() {
                eprintln!("--- vestibule exited: {status}");
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A response, read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub text: String,
}

impl Answer {
    /// The echo backend's JSON, if the answer is one.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.text).unwrap_or(serde_json::Value::Null)
    }

    /// Which echo backend answered ("" when none did).
    pub fn backend(&self) -> String {
        self.json()["backend"].as_str().unwrap_or("").to_owned()
    }
}

fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// `GET http://addr path` with a Host header.
pub async fn get(addr: SocketAddr, host: &str, path: &str) -> Answer {
    send(
        addr,
        Request::get(format!("http://{addr}{path}"))
            .header("host", host)
            .body(Full::default())
            .unwrap(),
    )
    .await
}

/// Sends a request with a new connection pool and reads the whole answer.
pub async fn send(_addr: SocketAddr, req: Request<Full<Bytes>>) -> Answer {
    let response = client()
        .request(req)
        .await
        .expect("request reaches vestibule");
    read(response).await
}

pub async fn read<B>(response: Response<B>) -> Answer
where
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.expect("body").to_bytes();
    Answer {
        status: parts.status,
        headers: parts.headers,
        text: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// `GET` over HTTP/2 with prior knowledge; the host travels as `:authority`.
pub async fn get_h2c(addr: SocketAddr, host: &str, path: &str) -> Answer {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .expect("h2 handshake");
    tokio::spawn(conn);
    let req = Request::get(format!("http://{host}{path}"))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = sender.send_request(req).await.expect("h2c request");
    read(response).await
}

/// A temporary manifest directory.
pub fn manifest_dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// The path of a file in the repo.
pub fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The value of the sample `name{labels}` in OpenMetrics text, when present. `labels` is the
/// exact label text as encoded, e.g. `namespace="test",ingress="shop",service="blue",status_class="2xx"`.
pub fn metric_value(text: &str, name: &str, labels: &str) -> Option<f64> {
    let prefix = if labels.is_empty() {
        format!("{name} ")
    } else {
        format!("{name}{{{labels}}} ")
    };
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// `(listener, addr)` from a text-format "listening" log line.
fn listening(line: &str) -> Option<(String, String)> {
    if !line.contains(" listening ") {
        return None;
    }
    let field = |key: &str| {
        let rest = &line[line.find(&format!("{key}="))? + key.len() + 1..];
        Some(rest.split_whitespace().next()?.trim_matches('"').to_owned())
    };
    Some((field("listener")?, field("addr")?))
}
