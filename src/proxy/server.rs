//! Listeners: accept connections (at most `--max-client-connections` at once), terminate TLS
//! when asked, serve HTTP/1.1 and HTTP/2 (h2c with prior knowledge on plain ports, ALPN on
//! TLS) with hyper-util's auto builder, close connections that break the client timeouts, and
//! drain gracefully on shutdown.

use super::body::MAX_BUF;
use super::conn::{ClientBody, Connection, Phase, Verdict, first_look};
use super::forward::ClientSide;
use super::handler::Proxy;
use super::proxy_protocol;
use crate::config::ClientTimeouts;
use crate::metrics::{ListenerLabels, ReasonLabels};
use crate::tls::{Terminator, TlsConnection};
use hyper::rt::{Read, Write};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use prometheus_client::metrics::gauge::Gauge;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};

/// After a connection is told to close, how long it may take to say goodbye (finish the
/// response in flight, send GOAWAY) before it is cut.
const CLOSE_LINGER: Duration = Duration::from_secs(1);
/// After the grace period, how long tunnels get to send their close frames.
const CLOSE_FRAMES: Duration = Duration::from_secs(1);

/// How the listeners treat clients.
#[derive(Debug, Clone)]
pub struct Limits {
    pub timeouts: ClientTimeouts,
    /// Connections served at once, over all listeners; more are closed as soon as accepted.
    pub slots: Arc<Semaphore>,
    /// How long open connections get to finish after shutdown begins.
    pub grace: Duration,
}

fn builder(timeouts: &ClientTimeouts) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(timeouts.header)
        .max_buf_size(MAX_BUF)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(20));
    builder
}

/// A listening socket, as requests see it.
#[derive(Debug, Clone, Copy)]
pub struct Listener {
    /// `http` or `https`.
    pub proto: &'static str,
    pub port: u16,
}

/// What every connection of one listener shares.
#[derive(Clone)]
struct Listening {
    builder: auto::Builder<TokioExecutor>,
    proxy: Arc<Proxy>,
    info: Listener,
    limits: Limits,
    /// The listener's open-connections gauge, looked up once rather than per connection.
    open: Gauge,
    phase: watch::Receiver<Phase>,
    drain: mpsc::Sender<()>,
}

/// Serves `listener` until `stop` turns true, then lets open connections finish for up to
/// the grace period. With `tls`, every connection is a TLS connection.
pub async fn serve(
    listener: TcpListener,
    proxy: Arc<Proxy>,
    info: Listener,
    tls: Option<Terminator>,
    mut stop: watch::Receiver<bool>,
    limits: Limits,
) {
    let (phase_tx, phase) = watch::channel(Phase::Serving);
    let (drain, mut drained) = mpsc::channel::<()>(1);
    let open = proxy
        .metrics()
        .client_connections
        .get_or_create(&ListenerLabels {
            protocol: info.proto,
        })
        .clone();
    let on = Listening {
        builder: builder(&limits.timeouts),
        proxy,
        info,
        limits: limits.clone(),
        open,
        phase,
        drain,
    };
    let mut backoff = AcceptBackoff::default();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, client)) => {
                    backoff.reset();
                    accept(&on, stream, client, tls.as_ref());
                }
                // Out of file descriptors and the like: back off rather than spin.
                Err(e) => tokio::time::sleep(backoff.failed(&e)).await,
            },
            _ = async { stop.wait_for(|stop| *stop).await.is_ok() } => break,
        }
    }
    drop(listener);
    let Listening { drain, .. } = on;
    drop(drain);
    let _ = phase_tx.send(Phase::Draining);
    let all_closed = async { while drained.recv().await.is_some() {} };
    tokio::pin!(all_closed);
    tokio::select! {
        _ = &mut all_closed => return tracing::info!(port = info.port, "all connections closed"),
        _ = tokio::time::sleep(limits.grace) => tracing::warn!(port = info.port, "shutdown grace ran out; closing the remaining connections"),
    }
    let _ = phase_tx.send(Phase::Closing);
    let _ = tokio::time::timeout(CLOSE_FRAMES, all_closed).await;
}

/// Exponential pause after failed accepts (10 ms doubling to 1 s), with one warning per
/// streak instead of one per failure.
#[derive(Default)]
struct AcceptBackoff {
    failures: u32,
}

impl AcceptBackoff {
    fn failed(&mut self, e: &std::io::Error) -> Duration {
        if self.failures == 0 {
            tracing::warn!(error = %e, "accept failed; backing off until accepting works again");
        }
        self.failures = self.failures.saturating_add(1);
        Duration::from_millis(10u64 << self.failures.min(7).saturating_sub(1))
            .min(Duration::from_secs(1))
    }

    fn reset(&mut self) {
        if self.failures > 0 {
            tracing::info!(failures = self.failures, "accepting connections again");
            self.failures = 0;
        }
    }
}

/// Takes one accepted connection: a slot under the cap, the PROXY protocol header when the
/// settings ask for one, the TLS handshake, then HTTP.
fn accept(on: &Listening, stream: TcpStream, client: SocketAddr, tls: Option<&Terminator>) {
    let accepted = Instant::now();
    let Ok(slot) = on.limits.slots.clone().try_acquire_owned() else {
        refuse_over_limit(on, client);
        return;
    };
    let _ = stream.set_nodelay(true);
    let side = ClientSide::new(client, on.info.proto, on.info.port);
    let proxied = {
        let published = on.proxy.shared().peek();
        let global = &published.built.global;
        global.client.proxy_protocol.then(|| global.clone())
    };
    if proxied.is_none() && tls.is_none() {
        // Spawned apart from the other paths: a task's future is as large as its largest
        // state, and plain connections should not carry (and copy) a TLS stream's.
        let conn = on.connection(side, None, accepted, slot);
        tokio::spawn(serve_connection(on.clone(), TokioIo::new(stream), conn));
        return;
    }
    let on = on.clone();
    let terminator = tls.cloned();
    tokio::spawn(async move {
        let mut stream = stream;
        let mut side = side;
        if let Some(global) = proxied {
            let header = proxy_protocol::read_header(&mut stream);
            match tokio::time::timeout(global.proxy_protocol_timeout, header).await {
                // Only a trusted peer may name the client (nginx's set_real_ip_from).
                Ok(Ok(Some(source))) if global.client.trusted.contains(client.ip()) => {
                    side = ClientSide::new(source, on.info.proto, on.info.port)
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    closed(&on, "proxy_protocol");
                    return tracing::debug!(%client, error = %e, "no valid PROXY protocol header");
                }
                Err(_) => {
                    closed(&on, "header_timeout");
                    return tracing::debug!(%client, "PROXY protocol header timed out");
                }
            }
        }
        let Some(terminator) = terminator else {
            let conn = on.connection(side, None, accepted, slot);
            return serve_connection(on, TokioIo::new(stream), conn).await;
        };
        let published = {
            let p = on.proxy.shared().peek();
            (!p.built.passthrough.is_empty()).then(|| on.proxy.shared().current())
        };
        if let Some(published) = published {
            let sni = tokio::time::timeout(on.limits.timeouts.header, peek_sni(&stream)).await;
            let backend = match &sni {
                Ok(Ok(Some(sni))) => published.built.passthrough.find(sni).cloned(),
                _ => None,
            };
            if let Some(backend) = backend {
                drop(published);
                return pass_through(&on, stream, &backend, client, slot).await;
            }
        }
        // The handshake counts against the header timeout: a client that opens a connection
        // and says nothing is closed alike whatever listener it chose.
        let handshake = handshake(&on, &terminator, stream);
        let (stream, tls) = match tokio::time::timeout(on.limits.timeouts.header, handshake).await {
            Ok(Ok(done)) => done,
            Ok(Err(e)) => return tracing::debug!(%client, error = %e, "TLS handshake failed"),
            Err(_) => {
                closed(&on, "header_timeout");
                return tracing::debug!(%client, "TLS handshake timed out");
            }
        };
        let conn = on.connection(side, Some(tls), accepted, slot);
        serve_connection(on, TokioIo::new(stream), conn).await;
    });
}

/// The SNI of the ClientHello at the start of `stream`, read without consuming it; `None`
/// when there is none or the bytes are not a ClientHello.
async fn peek_sni(stream: &TcpStream) -> std::io::Result<Option<String>> {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = stream.peek(&mut buf).await?;
        if n == 0 {
            return Ok(None);
        }
        let mut acceptor = rustls::server::Acceptor::default();
        let mut bytes = &buf[..n];
        while !bytes.is_empty() {
            match acceptor.read_tls(&mut bytes) {
                Ok(0) => break,
                Ok(_) => {}
                Err(_) => return Ok(None),
            }
        }
        match acceptor.accept() {
            Ok(Some(accepted)) => {
                let sni = accepted
                    .client_hello()
                    .server_name()
                    .map(str::to_ascii_lowercase);
                return Ok(sni);
            }
            Ok(None) if n < buf.len() => tokio::time::sleep(Duration::from_millis(2)).await,
            _ => return Ok(None),
        }
    }
}

/// TLS passthrough: the connection's bytes, ClientHello included, go to an endpoint of
/// `backend` as they are, both ways, until either side closes or nothing moves for the
/// upstream read timeout.
async fn pass_through(
    on: &Listening,
    stream: TcpStream,
    backend: &crate::model::Backend,
    client: SocketAddr,
    slot: OwnedSemaphorePermit,
) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static TURN: AtomicUsize = AtomicUsize::new(0);
    let _slot = slot;
    let _drain = on.drain.clone();
    let resolved = backend.resolved_full();
    let targets = &resolved.endpoints.targets;
    if targets.is_empty() {
        return tracing::debug!(%client, "TLS passthrough: no ready endpoint; closing");
    }
    let settings = on.proxy.settings();
    let start = TURN.fetch_add(1, Ordering::Relaxed);
    for i in 0..targets.len() {
        let target = &targets[(start + i) % targets.len()];
        let connecting = async {
            match target {
                crate::model::Target::Ip(addr) => TcpStream::connect(addr).await,
                crate::model::Target::Dns { host, port } => {
                    TcpStream::connect((&**host, *port)).await
                }
            }
        };
        match tokio::time::timeout(settings.timeouts.connect, connecting).await {
            Ok(Ok(upstream)) => {
                let _ = upstream.set_nodelay(true);
                let idle = settings.tunnel_idle;
                let phase = on.phase.clone();
                return super::tunnel::splice(stream, upstream, target, false, idle, phase).await;
            }
            _ => {
                tracing::debug!(%client, upstream = %target, "TLS passthrough: connecting failed; trying the next endpoint")
            }
        }
    }
}

/// Reads the ClientHello, picks the certificate for its SNI (once: what the connection
/// serves and what it may be reused for come from the same pick), and completes the handshake.
async fn handshake(
    on: &Listening,
    terminator: &Terminator,
    stream: TcpStream,
) -> std::io::Result<(tokio_rustls::server::TlsStream<TcpStream>, TlsConnection)> {
    let acceptor = rustls::server::Acceptor::default();
    let start = tokio_rustls::LazyConfigAcceptor::new(acceptor, stream).await?;
    let sni = start
        .client_hello()
        .server_name()
        .map(|s| s.to_ascii_lowercase());
    let (cert, ca) = {
        let published = on.proxy.shared().peek();
        let cert = published.certs.resolve(sni.as_deref()).cloned();
        (cert, published.client_auth.resolve(sni.as_deref()).cloned())
    };
    let Some(cert) = cert else {
        return Err(std::io::Error::other("no certificate to serve"));
    };
    let config = match &ca {
        Some(ca) => terminator
            .config_with_client_auth(&cert, ca)
            .ok_or_else(|| std::io::Error::other("no TLS configuration for client certificates"))?,
        None => terminator.config_for(&cert),
    };
    let stream = start.into_stream(config).await?;
    let client_cert = ca.map(|ca| ca.classify(stream.get_ref().1.peer_certificates()));
    Ok((
        stream,
        TlsConnection {
            sni,
            cert: Some(cert),
            client_cert,
        },
    ))
}

impl Listening {
    fn connection(
        &self,
        side: ClientSide,
        tls: Option<TlsConnection>,
        accepted: Instant,
        slot: OwnedSemaphorePermit,
    ) -> Arc<Connection> {
        Arc::new(Connection::new(
            side,
            tls,
            accepted,
            self.phase.clone(),
            self.drain.clone(),
            slot,
            self.open.clone(),
        ))
    }
}

fn refuse_over_limit(on: &Listening, client: SocketAddr) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST_WARNED: AtomicU64 = AtomicU64::new(0);
    closed(on, "limit");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // One line every ten seconds at most: a flood must not become a flood of log lines.
    if now >= LAST_WARNED.load(Ordering::Relaxed) + 10 {
        LAST_WARNED.store(now, Ordering::Relaxed);
        tracing::warn!(%client, "--max-client-connections reached; closing new connections until some end");
    }
}

fn closed(on: &Listening, reason: &'static str) {
    on.proxy
        .metrics()
        .client_connections_closed
        .get_or_create(&ReasonLabels { reason })
        .inc();
}

/// Serves one client connection until it ends, the client breaks a timeout, or the drain
/// says so.
async fn serve_connection<I>(on: Listening, io: I, conn: Arc<Connection>)
where
    I: Read + Write + Unpin + Send + 'static,
{
    let client = conn.side.addr;
    let service = {
        let proxy = on.proxy.clone();
        let conn = conn.clone();
        service_fn(move |req| {
            let proxy = proxy.clone();
            let conn = conn.clone();
            conn.activity.request_started();
            async move {
                let response = proxy.handle(req, &conn).await;
                Ok::<_, Infallible>(response.map(|body| ClientBody::new(body, conn)))
            }
        })
    };
    let http = on
        .builder
        .serve_connection_with_upgrades(io, service)
        .into_owned();
    tokio::pin!(http);
    let mut phase = conn.phase.clone();
    let timeouts = on.limits.timeouts;
    let mut check = tokio::time::Instant::now() + first_look(&timeouts);
    let mut closing = false;
    loop {
        tokio::select! {
            ended = http.as_mut() => {
                if let Err(e) = ended {
                    tracing::debug!(%client, error = %e, "client connection ended with an error");
                }
                return;
            }
            _ = tokio::time::sleep_until(check) => {
                if closing {
                    return tracing::debug!(%client, "client connection cut after its goodbye");
                }
                match conn.activity.verdict(&timeouts) {
                    Verdict::Keep(wait) => check = tokio::time::Instant::now() + wait,
                    Verdict::Close(reason) => {
                        tracing::debug!(%client, reason, "closing a client connection");
                        closed(&on, reason);
                        http.as_mut().graceful_shutdown();
                        closing = true;
                        check = tokio::time::Instant::now() + CLOSE_LINGER;
                    }
                }
            }
            changed = phase.changed() => {
                let now = if changed.is_ok() { *phase.borrow_and_update() } else { Phase::Closing };
                match now {
                    Phase::Serving => {}
                    Phase::Draining => http.as_mut().graceful_shutdown(),
                    Phase::Closing => return,
                }
            }
        }
    }
}
