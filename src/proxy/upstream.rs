//! The connections towards pods: a keep-alive pool per endpoint over hyper's HTTP/1.1 client
//! connections, the connect timeout, and a request body that survives a failed connect so the
//! request can be retried on another endpoint.
//!
//! The pool is ours rather than hyper-util's legacy client because a proxy already knows the
//! endpoint for each request: no URI to build and parse, no pool key to hash from it, and a
//! connection goes back to the pool the moment its response body ends.

use crate::model::Target;
use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustc_hash::FxHashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// How long an idle pooled connection is kept.
const POOL_IDLE: Duration = Duration::from_secs(90);
/// At most this many idle connections are kept per endpoint.
const MAX_IDLE_PER_ENDPOINT: usize = 1024;
/// How long a pooled connection may take to become ready for the next request.
const READY_WAIT: Duration = Duration::from_millis(100);
/// A connection idle for this long may be closed by the pod as a request arrives (keep-alive
/// timeouts are seconds long); shorter idle times are not worth a copy of the request.
const SUSPECT_IDLE: Duration = Duration::from_secs(1);

/// Why a response body from a pod ended early.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The pod sent nothing for the read timeout (nginx's `proxy_read_timeout`).
    #[error("the pod sent no data for {0:?}")]
    ReadTimeout(Duration),
    #[error(transparent)]
    Upstream(hyper::Error),
}

/// The client's request body failed: the client's fault, never the pod's.
#[derive(Debug, thiserror::Error)]
pub enum ClientBodyError {
    /// Bad chunked framing, a reset.
    #[error("reading the client's request body")]
    Read(#[source] hyper::Error),
    /// More bytes than the route's body limit.
    #[error("the request body is larger than {0} bytes")]
    TooLarge(u64),
}

/// Why no connection to an endpoint could be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("connecting")]
    Io(#[source] std::io::Error),
    #[error("no connection within {0:?}")]
    TimedOut(Duration),
    #[error("HTTP handshake")]
    Handshake(#[source] hyper::Error),
    /// The TLS handshake with the pod failed (or its settings could not be made).
    #[error("TLS to the pod")]
    Tls(#[source] std::io::Error),
}

/// TLS for connections to a pod: the client configuration and the name verified.
#[derive(Clone)]
pub struct TlsTo {
    config: Arc<rustls::ClientConfig>,
    name: rustls::pki_types::ServerName<'static>,
    /// Identifies the settings, so connections made with other settings are not reused.
    id: u64,
}

/// Which pooled connections a request may use: the endpoint's, with the same TLS.
#[derive(Clone, PartialEq, Eq, Hash)]
struct PoolKey {
    target: Target,
    tls: Option<(u64, rustls::pki_types::ServerName<'static>)>,
}

impl PoolKey {
    fn of(target: &Target, tls: Option<&TlsTo>) -> PoolKey {
        PoolKey {
            target: target.clone(),
            tls: tls.map(|t| (t.id, t.name.clone())),
        }
    }
}

/// A connection to a pod, plain or TLS.
trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static> Stream for T {}

/// Why a request got no response from an endpoint.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// No connection could be made: the request was not sent, another endpoint may be tried.
    #[error(transparent)]
    Connect(ConnectError),
    /// The request was sent (or partly sent) and the exchange failed.
    #[error(transparent)]
    Exchange(hyper::Error),
}

/// The limits of one exchange with a pod.
#[derive(Debug, Clone, Copy)]
pub struct ExchangeLimits {
    pub connect: Duration,
    /// Between two pieces of the response body.
    pub read: Duration,
}

/// Idle keep-alive connections per endpoint. Connections survive table publishes for as long
/// as their endpoint is used.
pub struct Upstreams {
    idle: Mutex<FxHashMap<PoolKey, Vec<Idle>>>,
    /// One multiplexed HTTP/2 connection per endpoint (`backend-protocol: H2C`, `GRPC`, `GRPCS`).
    h2: Mutex<FxHashMap<PoolKey, http2::SendRequest<RequestBody>>>,
    /// Client configurations for TLS to pods, by the settings' id.
    tls_configs: Mutex<FxHashMap<u64, Arc<rustls::ClientConfig>>>,
    connect_duration: crate::metrics::ByProtocol,
}

struct Idle {
    sender: http1::SendRequest<RequestBody>,
    since: Instant,
}

impl Upstreams {
    /// A pool, with a task (on the current runtime) that closes connections idle for too long.
    pub fn new(connect_duration: crate::metrics::ByProtocol) -> Arc<Upstreams> {
        let pool = Arc::new(Upstreams {
            idle: Mutex::new(FxHashMap::default()),
            h2: Mutex::new(FxHashMap::default()),
            tls_configs: Mutex::new(FxHashMap::default()),
            connect_duration,
        });
        tokio::spawn(sweep(Arc::downgrade(&pool)));
        pool
    }

    /// Sends `req` (origin-form URI, Host set) to `target` on a pooled or new connection. The
    /// response body returns the connection to the pool when it ends.
    pub async fn send(
        self: &Arc<Self>,
        target: &Target,
        protocol: &'static str,
        tls: Option<&TlsTo>,
        mut req: Request<RequestBody>,
        limits: ExchangeLimits,
    ) -> Result<Response<PooledBody>, UpstreamError> {
        let key = PoolKey::of(target, tls);
        // A pooled connection may have been closed by the pod since; the request then comes
        // back unsent and goes out on the next one, or on a new connection.
        while let Some((mut sender, idle_for)) = self.checkout(&key) {
            // Usually ready at once, or as soon as its task has run. One still sending an
            // upload that the pod answered early is not worth waiting for.
            if !sender.is_ready() {
                match tokio::time::timeout(READY_WAIT, sender.ready()).await {
                    Ok(Ok(())) => {}
                    _ => continue,
                }
            }
            // The pod may close a connection that sat idle (its keep-alive timeout) just as our
            // request reaches it; the request is then lost without an answer. A bodiless
            // idempotent request is safe to send again, on a new connection.
            let replay = if idle_for >= SUSPECT_IDLE {
                replayable(&req)
            } else {
                None
            };
            match sender.try_send_request(req).await {
                Ok(response) => return Ok(self.pooled(response, &key, sender, limits.read)),
                Err(mut e) => match (e.take_message(), replay) {
                    (Some(unsent), _) => req = unsent,
                    (None, Some(copy)) if e.error().is_incomplete_message() => {
                        tracing::debug!(upstream = %target, "an idle connection was closed under the request; sending it again on a new one");
                        req = copy;
                        break;
                    }
                    (None, _) => return Err(UpstreamError::Exchange(e.into_error())),
                },
            }
        }
        // Boxed: connecting (with name resolution) is rare and would bloat every request.
        let mut sender = Box::pin(self.connect(target, protocol, tls, limits.connect)).await?;
        let response = sender
            .send_request(req)
            .await
            .map_err(UpstreamError::Exchange)?;
        Ok(self.pooled(response, &key, sender, limits.read))
    }

    /// TLS to a pod with `spec`'s settings, for a request for `host`; the configuration is
    /// made once per settings.
    pub fn tls_to(
        &self,
        spec: &crate::model::policy::UpstreamTls,
        host: Option<&str>,
    ) -> Result<TlsTo, UpstreamError> {
        let tls_error = |reason: String| {
            UpstreamError::Connect(ConnectError::Tls(std::io::Error::other(reason)))
        };
        let name = crate::tls::upstream::server_name(spec, host).ok_or_else(|| {
            tls_error("no server name to verify the pod's certificate against".to_owned())
        })?;
        let cached = self
            .tls_configs
            .lock()
            .ok()
            .and_then(|m| m.get(&spec.id).cloned());
        let config = match cached {
            Some(c) => c,
            None => {
                let c = crate::tls::upstream::client_config(spec).map_err(tls_error)?;
                if let Ok(mut m) = self.tls_configs.lock() {
                    if m.len() >= 256 {
                        m.clear();
                    }
                    m.insert(spec.id, c.clone());
                }
                c
            }
        };
        Ok(TlsTo {
            config,
            name,
            id: spec.id,
        })
    }

    /// Sends `req` (origin-form URI, Host set) to `target` over HTTP/2 with prior knowledge,
    /// on the endpoint's shared connection (made when there is none or it closed). The Host
    /// becomes `:authority`; gRPC's `te: trailers` is sent.
    pub async fn send_h2(
        self: &Arc<Self>,
        target: &Target,
        protocol: &'static str,
        tls: Option<&TlsTo>,
        req: Request<RequestBody>,
        limits: ExchangeLimits,
    ) -> Result<Response<PooledBody>, UpstreamError> {
        let key = PoolKey::of(target, tls);
        let scheme = if tls.is_some() { "https" } else { "http" };
        let mut req = h2_form(req, scheme);
        let existing = self.h2.lock().ok().and_then(|m| m.get(&key).cloned());
        let mut sender = match existing.filter(|s| !s.is_closed()) {
            Some(s) => s,
            None => {
                let s = Box::pin(self.connect_h2(target, protocol, tls, limits.connect)).await?;
                if let Ok(mut m) = self.h2.lock() {
                    m.insert(key.clone(), s.clone());
                }
                s
            }
        };
        if sender.ready().await.is_err() {
            // The connection went away between the lookup and now: one new one.
            sender = Box::pin(self.connect_h2(target, protocol, tls, limits.connect)).await?;
            if let Ok(mut m) = self.h2.lock() {
                m.insert(key.clone(), sender.clone());
            }
        }
        // A pod that closes its connection gracefully (GOAWAY; nginx does after
        // http2_max_requests) or refuses a stream has not processed it: the request may go
        // again on a new connection, if its body was not read yet.
        let again = copy_for_retry(&req);
        req = match sender.try_send_request(req).await {
            Ok(response) => return Ok(unpooled(response, target, limits.read)),
            Err(mut e) => match (e.take_message(), again) {
                (Some(unsent), _) => unsent,
                (None, Some(copy)) if unprocessed(e.error()) && copy.body().again().is_some() => {
                    tracing::debug!(upstream = %target, "the pod refused the stream or went away; sending again on a new connection");
                    copy
                }
                (None, _) => return Err(UpstreamError::Exchange(e.into_error())),
            },
        };
        let mut fresh = Box::pin(self.connect_h2(target, protocol, tls, limits.connect)).await?;
        if let Ok(mut m) = self.h2.lock() {
            m.insert(key, fresh.clone());
        }
        let response = fresh
            .send_request(req)
            .await
            .map_err(UpstreamError::Exchange)?;
        Ok(unpooled(response, target, limits.read))
    }

    async fn connect_h2(
        &self,
        target: &Target,
        protocol: &'static str,
        tls: Option<&TlsTo>,
        timeout: Duration,
    ) -> Result<http2::SendRequest<RequestBody>, UpstreamError> {
        let stream = self.stream(target, protocol, tls, timeout).await?;
        let (sender, connection) = http2::Builder::new(TokioExecutor::new())
            .timer(hyper_util::rt::TokioTimer::new())
            .keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(20))
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| UpstreamError::Connect(ConnectError::Handshake(e)))?;
        let target = target.clone();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(upstream = %target, error = %e, "upstream h2 connection ended with an error");
            }
        });
        Ok(sender)
    }

    fn pooled(
        self: &Arc<Self>,
        response: Response<Incoming>,
        key: &PoolKey,
        sender: http1::SendRequest<RequestBody>,
        read_timeout: Duration,
    ) -> Response<PooledBody> {
        // After `101 Switching Protocols` the connection belongs to the tunnel.
        let home = (response.status() != http::StatusCode::SWITCHING_PROTOCOLS)
            .then(|| (Arc::downgrade(self), key.clone(), sender));
        response.map(|inner| PooledBody {
            inner,
            home,
            read_timeout,
            stall: None,
            armed: false,
        })
    }

    /// An open idle connection to `target`, and how long it was idle.
    fn checkout(&self, key: &PoolKey) -> Option<(http1::SendRequest<RequestBody>, Duration)> {
        let mut idle = self.idle.lock().ok()?;
        let list = idle.get_mut(key)?;
        let now = Instant::now();
        // Newest first: the warmest connection, and the least likely to be timed out by the pod.
        while let Some(conn) = list.pop() {
            let idle_for = now.duration_since(conn.since);
            if !conn.sender.is_closed() && idle_for < POOL_IDLE {
                return Some((conn.sender, idle_for));
            }
        }
        None
    }

    fn checkin(&self, key: PoolKey, sender: http1::SendRequest<RequestBody>) {
        if sender.is_closed() {
            return;
        }
        let Ok(mut idle) = self.idle.lock() else {
            return;
        };
        let list = idle.entry(key).or_default();
        if list.len() < MAX_IDLE_PER_ENDPOINT {
            list.push(Idle {
                sender,
                since: Instant::now(),
            });
        }
    }

    async fn connect(
        &self,
        target: &Target,
        protocol: &'static str,
        tls: Option<&TlsTo>,
        timeout: Duration,
    ) -> Result<http1::SendRequest<RequestBody>, UpstreamError> {
        let stream = self.stream(target, protocol, tls, timeout).await?;
        let (sender, connection) = http1::Builder::new()
            .max_buf_size(super::body::MAX_BUF)
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| UpstreamError::Connect(ConnectError::Handshake(e)))?;
        let target = target.clone();
        tokio::spawn(async move {
            if let Err(e) = connection.with_upgrades().await {
                tracing::debug!(upstream = %target, error = %e, "upstream connection ended with an error");
            }
        });
        Ok(sender)
    }

    /// A connection to `target`: TCP, and TLS over it when `tls` says so, within `timeout`.
    async fn stream(
        &self,
        target: &Target,
        protocol: &'static str,
        tls: Option<&TlsTo>,
        timeout: Duration,
    ) -> Result<Box<dyn Stream>, UpstreamError> {
        let started = Instant::now();
        let tcp = self.tcp(target, timeout).await;
        let tcp = match tls {
            None => {
                self.observe_connect(protocol, started);
                tcp?
            }
            Some(_) => tcp?,
        };
        let Some(tls) = tls else {
            return Ok(Box::new(tcp));
        };
        let connector = tokio_rustls::TlsConnector::from(tls.config.clone());
        let handshake = connector.connect(tls.name.clone(), tcp);
        match tokio::time::timeout(timeout, handshake).await {
            Ok(Ok(stream)) => {
                self.observe_connect(protocol, started);
                Ok(Box::new(stream))
            }
            Ok(Err(e)) => Err(UpstreamError::Connect(ConnectError::Tls(e))),
            Err(_) => Err(UpstreamError::Connect(ConnectError::TimedOut(timeout))),
        }
    }

    fn observe_connect(&self, protocol: &'static str, started: Instant) {
        self.connect_duration
            .get_or_create(&crate::metrics::ProtocolLabels { protocol })
            .observe(started.elapsed().as_secs_f64());
    }

    /// A TCP connection to `target` within `timeout`.
    async fn tcp(&self, target: &Target, timeout: Duration) -> Result<TcpStream, UpstreamError> {
        let connecting = async {
            match target {
                Target::Ip(addr) => TcpStream::connect(addr).await,
                Target::Dns { host, port } => TcpStream::connect((&**host, *port)).await,
            }
        };
        let stream = tokio::time::timeout(timeout, connecting).await;
        let stream = match stream {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(UpstreamError::Connect(ConnectError::Io(e))),
            Err(_) => return Err(UpstreamError::Connect(ConnectError::TimedOut(timeout))),
        };
        let _ = stream.set_nodelay(true);
        let keepalive = socket2::TcpKeepalive::new().with_time(Duration::from_secs(60));
        let _ = socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive);
        Ok(stream)
    }

    /// Drops connections idle for longer than [`POOL_IDLE`], and endpoints with none left.
    fn sweep_idle(&self) {
        let Ok(mut idle) = self.idle.lock() else {
            return;
        };
        let now = Instant::now();
        idle.retain(|_, list| {
            list.retain(|c| !c.sender.is_closed() && now.duration_since(c.since) < POOL_IDLE);
            !list.is_empty()
        });
    }
}

/// The endpoint an `http://` or `https://` URL names (the port defaulting by scheme), and
/// whether it is https: an auth service's or a mirror target's.
pub fn url_target(url: &http::Uri) -> Option<(Target, bool)> {
    let authority = url.authority()?;
    let https = url.scheme_str() == Some("https");
    let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let target = match host.parse::<std::net::IpAddr>() {
        Ok(ip) => Target::Ip((ip, port).into()),
        Err(_) => Target::Dns {
            host: host.into(),
            port,
        },
    };
    Some((target, https))
}

impl Upstreams {
    /// Sends `req` to a URL's endpoint (see [`url_target`]): over TLS for https, taking any
    /// certificate and sending SNI, as nginx's `proxy_pass https://` without `proxy_ssl_verify`.
    pub async fn send_to_url(
        self: &Arc<Self>,
        (target, https): &(Target, bool),
        req: Request<RequestBody>,
        limits: ExchangeLimits,
    ) -> Result<Response<PooledBody>, UpstreamError> {
        let tls = match https {
            true => {
                let host = req
                    .headers()
                    .get(http::header::HOST)
                    .and_then(|h| h.to_str().ok());
                let spec = crate::model::policy::UpstreamTls::unverified();
                Some(self.tls_to(&spec, host)?)
            }
            false => None,
        };
        let protocol = if *https { "https" } else { "http" };
        self.send(target, protocol, tls.as_ref(), req, limits).await
    }
}

/// A response on a shared HTTP/2 connection: nothing to give back when it ends.
fn unpooled(
    response: Response<Incoming>,
    target: &Target,
    read_timeout: Duration,
) -> Response<PooledBody> {
    let _ = target;
    response.map(|inner| PooledBody {
        inner,
        home: None,
        read_timeout,
        stall: None,
        armed: false,
    })
}

/// `req` as HTTP/2 sends it: absolute URI (`:scheme`, `:authority` from the Host), no Host
/// and no connection-specific headers, `te: trailers` (which gRPC servers expect).
fn h2_form(mut req: Request<RequestBody>, scheme: &str) -> Request<RequestBody> {
    let authority = req
        .headers_mut()
        .remove(http::header::HOST)
        .and_then(|h| h.to_str().ok().map(str::to_owned));
    let path = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    if let Some(authority) = authority
        && let Ok(uri) = format!("{scheme}://{authority}{path}").parse()
    {
        *req.uri_mut() = uri;
    }
    *req.version_mut() = http::Version::HTTP_2;
    let h = req.headers_mut();
    h.remove(http::header::CONNECTION);
    h.remove(http::header::UPGRADE);
    h.insert(http::header::TE, http::HeaderValue::from_static("trailers"));
    req
}

/// A copy of `req` sharing its body (usable only while the body is untouched).
fn copy_for_retry(req: &Request<RequestBody>) -> Option<Request<RequestBody>> {
    let mut copy = Request::new(req.body().again()?);
    *copy.method_mut() = req.method().clone();
    *copy.uri_mut() = req.uri().clone();
    *copy.version_mut() = req.version();
    *copy.headers_mut() = req.headers().clone();
    Some(copy)
}

/// Whether an HTTP/2 exchange failed before the pod processed the stream: REFUSED_STREAM, or
/// a graceful GOAWAY whose last stream id is below ours.
fn unprocessed(e: &hyper::Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(h2) = s.downcast_ref::<h2::Error>() {
            return h2.reason() == Some(h2::Reason::REFUSED_STREAM)
                || (h2.is_go_away() && h2.reason() == Some(h2::Reason::NO_ERROR));
        }
        source = s.source();
    }
    false
}

/// A copy of `req` to send again if it has no body and repeating it is harmless.
fn replayable(req: &Request<RequestBody>) -> Option<Request<RequestBody>> {
    if !req.method().is_idempotent() || !req.body().is_end_stream() {
        return None;
    }
    let mut copy = Request::new(req.body().again()?);
    *copy.method_mut() = req.method().clone();
    *copy.uri_mut() = req.uri().clone();
    *copy.version_mut() = req.version();
    *copy.headers_mut() = req.headers().clone();
    Some(copy)
}

async fn sweep(pool: Weak<Upstreams>) {
    let mut every = tokio::time::interval(POOL_IDLE / 3);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        match pool.upgrade() {
            Some(pool) => pool.sweep_idle(),
            None => return,
        }
    }
}

/// A response body from a pooled connection; when it ends, the connection is idle again. A
/// pod that pauses longer than the read timeout ends it with an error (and the connection).
pub struct PooledBody {
    inner: Incoming,
    home: Option<(Weak<Upstreams>, PoolKey, http1::SendRequest<RequestBody>)>,
    read_timeout: Duration,
    /// Made at the first wait for the pod, reset at each later one.
    stall: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Whether `stall` runs for the current wait.
    armed: bool,
}

impl PooledBody {
    fn release(&mut self) {
        if let Some((pool, target, sender)) = self.home.take()
            && let Some(pool) = pool.upgrade()
        {
            pool.checkin(target, sender);
        }
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(_))) if self.inner.is_end_stream() => self.release(),
            Poll::Ready(None) => self.release(),
            // A failed body leaves the connection unusable: drop it.
            Poll::Ready(Some(Err(_))) => self.home = None,
            Poll::Ready(Some(Ok(_))) => {}
            Poll::Pending => return self.wait_for_pod(cx),
        }
        self.armed = false;
        polled.map(|frame| frame.map(|r| r.map_err(BodyError::Upstream)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl PooledBody {
    /// The pod has nothing for us yet: runs the read timeout for this wait.
    fn wait_for_pod(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        if !self.armed {
            let deadline = tokio::time::Instant::now() + self.read_timeout;
            match &mut self.stall {
                Some(stall) => stall.as_mut().reset(deadline),
                None => self.stall = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
            self.armed = true;
        }
        let stalled = self
            .stall
            .as_mut()
            .is_some_and(|stall| stall.as_mut().poll(cx).is_ready());
        match stalled {
            true => {
                let upstream = self
                    .home
                    .as_ref()
                    .map(|h| h.1.target.to_string())
                    .unwrap_or_default();
                tracing::warn!(upstream, timeout = ?self.read_timeout, "the pod stopped sending the response body; ending it");
                self.home = None;
                Poll::Ready(Some(Err(BodyError::ReadTimeout(self.read_timeout))))
            }
            false => Poll::Pending,
        }
    }
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        // Empty bodies (HEAD, 204, 304) are never polled.
        if self.inner.is_end_stream() {
            self.release();
        }
    }
}

/// A client's request body, shared between attempts. The client library drops a request
/// whose connection could not be made; the body sits in a shared slot and is only taken
/// out when the upstream first reads it, so a failed connect leaves it for the next attempt.
pub struct RequestBody {
    /// A body read whole beforehand (for a mirror): every attempt gets its own copy.
    buffered: Option<Bytes>,
    slot: Option<Arc<Mutex<Option<Incoming>>>>,
    taken: Option<Incoming>,
    hint: SizeHint,
    end: bool,
    /// Bytes read from the client, for the access log and the limit.
    counted: Option<Arc<AtomicU64>>,
    /// More bytes than this end the body with [`ClientBodyError::TooLarge`].
    limit: Option<u64>,
    /// When the pod last took a piece, for the send timeout.
    clock: Option<Arc<SendClock>>,
}

/// How the upload of a request body is going, watched for the send timeout: a pod that
/// takes no piece of the body for that long, while the client has more, is stalled.
#[derive(Debug)]
pub struct SendClock {
    start: Instant,
    /// Milliseconds since `start` of the pod's last pull; `u64::MAX` while the client is
    /// the one who is slow (the last pull is waiting for it) or the body is done.
    pulled_at: AtomicU64,
}

impl SendClock {
    pub fn new() -> Arc<SendClock> {
        Arc::new(SendClock {
            start: Instant::now(),
            pulled_at: AtomicU64::new(u64::MAX),
        })
    }

    fn pulled(&self, waiting_for_client: bool) {
        let at = if waiting_for_client {
            u64::MAX
        } else {
            self.start.elapsed().as_millis() as u64
        };
        self.pulled_at.store(at, Ordering::Relaxed);
    }

    /// How long the pod has left a piece of the body waiting, if it has.
    pub fn stalled_for(&self) -> Option<Duration> {
        let at = self.pulled_at.load(Ordering::Relaxed);
        (at != u64::MAX).then(|| {
            self.start
                .elapsed()
                .saturating_sub(Duration::from_millis(at))
        })
    }
}

impl RequestBody {
    /// A body to pass to the first attempt; [`RequestBody::again`] makes the next ones.
    pub fn new(
        body: Incoming,
        counted: Option<Arc<AtomicU64>>,
        limit: Option<u64>,
        clock: Option<Arc<SendClock>>,
    ) -> Self {
        let hint = body.size_hint();
        let end = body.is_end_stream();
        RequestBody {
            buffered: None,
            slot: (!end).then(|| Arc::new(Mutex::new(Some(body)))),
            taken: None,
            hint,
            end,
            counted,
            limit,
            clock,
        }
    }

    /// A body already read whole.
    pub fn buffered(bytes: Bytes) -> Self {
        RequestBody {
            hint: SizeHint::with_exact(bytes.len() as u64),
            end: bytes.is_empty(),
            buffered: (!bytes.is_empty()).then_some(bytes),
            ..RequestBody::empty()
        }
    }

    /// An empty body.
    pub fn empty() -> Self {
        RequestBody {
            buffered: None,
            slot: None,
            taken: None,
            hint: SizeHint::with_exact(0),
            end: true,
            counted: None,
            limit: None,
            clock: None,
        }
    }

    /// The same body for another attempt, if no attempt has started reading it.
    pub fn again(&self) -> Option<RequestBody> {
        if let Some(slot) = &self.slot {
            let untouched = slot.lock().map(|s| s.is_some()).unwrap_or(false);
            if !untouched {
                return None;
            }
        }
        Some(RequestBody {
            buffered: self.buffered.clone(),
            slot: self.slot.clone(),
            taken: None,
            hint: self.hint,
            end: self.end,
            counted: self.counted.clone(),
            limit: self.limit,
            clock: self.clock.clone(),
        })
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = ClientBodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ClientBodyError>>> {
        if let Some(bytes) = self.buffered.take() {
            self.end = true;
            return Poll::Ready(Some(Ok(Frame::data(bytes))));
        }
        if self.taken.is_none() {
            let Some(slot) = &self.slot else {
                return Poll::Ready(None);
            };
            let body = slot.lock().ok().and_then(|mut s| s.take());
            match body {
                Some(b) => self.taken = Some(b),
                None => return Poll::Ready(None),
            }
        }
        let polled = match &mut self.taken {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => return Poll::Ready(None),
        };
        if let Some(clock) = &self.clock {
            let done = matches!(polled, Poll::Ready(None));
            clock.pulled(polled.is_pending() || done);
        }
        if let (Poll::Ready(Some(Ok(frame))), Some(counted)) = (&polled, &self.counted)
            && let Some(data) = frame.data_ref()
        {
            let total = counted.fetch_add(data.len() as u64, Ordering::Relaxed) + data.len() as u64;
            if let Some(limit) = self.limit
                && total > limit
            {
                return Poll::Ready(Some(Err(ClientBodyError::TooLarge(limit))));
            }
        }
        polled.map(|frame| frame.map(|r| r.map_err(ClientBodyError::Read)))
    }

    fn is_end_stream(&self) -> bool {
        if self.buffered.is_some() {
            return false;
        }
        match &self.taken {
            Some(b) => b.is_end_stream(),
            None => self.end,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.taken {
            Some(b) => b.size_hint(),
            None => self.hint,
        }
    }
}
