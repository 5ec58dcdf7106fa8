//! One request: look up the route, pick an endpoint, forward, and — in exactly one place —
//! turn every failure into its status code (400, 404, 502, 503, 504).

use super::balance::Ejections;
use super::body::{BoxError, ProxyBody, full};
use super::conn::Connection;
use super::forward;
use super::observe::{Exchange, Facts, ObservedBody, Observers};
use super::upstream::{ClientBodyError, RequestBody, UpstreamError, Upstreams};
use crate::config::Timeouts;
use crate::metrics::{Metrics, ReasonLabels};
use crate::model::Target;
use crate::model::host::RequestHost;
use crate::state::Shared;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body::Body as _;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;
use tracing::Instrument;

/// Why a request was not answered by an upstream.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("missing or malformed Host")]
    BadHost,
    #[error("more than one Host header")]
    DuplicateHost,
    #[error("the Host header and :authority name different hosts")]
    AuthorityMismatch,
    #[error("{0}")]
    ClientBody(String),
    #[error("no route")]
    NoRoute,
    #[error("no ready endpoints: {0}")]
    NoEndpoints(String),
    #[error("could not connect to any endpoint: {0}")]
    Connect(String),
    #[error("upstream failed: {0}")]
    Upstream(String),
    #[error("upstream sent no response headers in time")]
    Timeout,
    #[error("the connection's certificate does not cover this host")]
    Misdirected,
}

impl ProxyError {
    /// The `vestibule_client_errors_total` label of a failure the client caused.
    fn client_reason(&self) -> Option<&'static str> {
        match self {
            ProxyError::ClientBody(_) => Some("body"),
            ProxyError::DuplicateHost | ProxyError::AuthorityMismatch => Some("host"),
            _ => None,
        }
    }

    /// The status code for this failure: the only place that decides one.
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::BadHost
            | ProxyError::DuplicateHost
            | ProxyError::AuthorityMismatch
            | ProxyError::ClientBody(_) => StatusCode::BAD_REQUEST,
            ProxyError::NoRoute => StatusCode::NOT_FOUND,
            ProxyError::NoEndpoints(_) => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::Connect(_) | ProxyError::Upstream(_) => StatusCode::BAD_GATEWAY,
            ProxyError::Timeout => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::Misdirected => StatusCode::MISDIRECTED_REQUEST,
        }
    }

    /// A short plain-text answer; upstream details stay in the log, not in the response.
    pub fn response(&self) -> Response<ProxyBody> {
        let status = self.status();
        let text = match self {
            ProxyError::BadHost => "bad request: missing or malformed Host\n".into(),
            ProxyError::DuplicateHost => "bad request: more than one Host header\n".into(),
            ProxyError::AuthorityMismatch => {
                "bad request: Host and :authority name different hosts\n".into()
            }
            ProxyError::ClientBody(_) => "bad request: malformed request body\n".into(),
            ProxyError::NoRoute => "not found: no route for this host and path\n".into(),
            // Which Service and why is the operator's business, and no secret.
            ProxyError::NoEndpoints(why) => format!("service unavailable: {why}\n").into(),
            ProxyError::Connect(_) | ProxyError::Upstream(_) => {
                "bad gateway: upstream failed\n".into()
            }
            ProxyError::Timeout => "gateway timeout: upstream did not answer in time\n".into(),
            ProxyError::Misdirected => {
                "misdirected request: open a connection for this host\n".into()
            }
        };
        let mut response = Response::new(full(text));
        *response.status_mut() = status;
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        response
    }
}

/// What the proxy needs from the configuration.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub timeouts: Timeouts,
    /// How long an upgraded connection may carry nothing either way.
    pub tunnel_idle: std::time::Duration,
    /// The port clients use for https, for redirects from plain HTTP.
    pub https_redirect_port: u16,
    /// `Strict-Transport-Security` for responses over TLS.
    pub hsts: Option<HeaderValue>,
}

/// Forwards requests along the published table.
pub struct Proxy {
    shared: Arc<Shared>,
    upstreams: Arc<Upstreams>,
    ejections: Ejections,
    settings: Settings,
    observers: Arc<Observers>,
}

/// At most this many endpoints are tried for one request (the first and two more).
const ATTEMPTS: usize = 3;

impl Proxy {
    pub fn new(shared: Arc<Shared>, settings: Settings, observers: Arc<Observers>) -> Self {
        Proxy {
            shared,
            upstreams: Upstreams::new(
                settings.timeouts.connect,
                settings.timeouts.read,
                observers.metrics.upstream_connect_duration.clone(),
            ),
            ejections: Ejections::default(),
            settings,
            observers,
        }
    }

    /// The published state this proxy reads.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The metrics this proxy reports to.
    pub fn metrics(&self) -> &Metrics {
        &self.observers.metrics
    }

    /// Answers one request; never fails, errors become their responses. The response body
    /// records the exchange (metrics, access log) when it ends.
    pub async fn handle(
        &self,
        req: Request<Incoming>,
        conn: &Arc<Connection>,
    ) -> Response<ObservedBody> {
        let started = Instant::now();
        let tls = conn.tls.as_ref();
        // Cheap to clone (an enum, reference-counted bytes), kept for the record.
        let method = req.method().clone();
        let uri = req.uri().clone();
        let version = req.version();
        // HTTP/2 names the host in `:authority` (the URI), HTTP/1.1 in Host.
        let host = req
            .headers()
            .get(header::HOST)
            .cloned()
            .or_else(|| authority_value(&uri));
        let bytes_in = (!req.body().is_end_stream()).then(|| Arc::new(AtomicU64::new(0)));
        let mut facts = Facts::default();
        let span = tracing::debug_span!(
            "request",
            host = host.as_ref().and_then(|h| h.to_str().ok()).or(uri.host()),
            path = uri.path(),
            route = tracing::field::Empty,
            ingress = tracing::field::Empty,
            upstream = tracing::field::Empty,
            status = tracing::field::Empty,
        );
        crate::telemetry::continue_trace(&span, req.headers());
        // Boxed: hyper moves the request future around (and into a task per HTTP/2 stream);
        // a small one is cheaper to move.
        let forwarding = Box::pin(self.forward(req, conn, &mut facts, bytes_in.clone()));
        // Entering a span on every poll costs even when nothing listens; skip it then.
        let forwarded = if span.is_disabled() {
            forwarding.await
        } else {
            forwarding.instrument(span.clone()).await
        };
        let mut response = match forwarded {
            Ok(response) => response,
            Err(e) => {
                let _enter = span.enter();
                if let Some(reason) = e.client_reason() {
                    let labels = ReasonLabels { reason };
                    self.observers
                        .metrics
                        .client_errors
                        .get_or_create(&labels)
                        .inc();
                }
                let status = e.status().as_u16();
                match &e {
                    ProxyError::Connect(_) | ProxyError::Upstream(_) | ProxyError::Timeout => {
                        tracing::warn!(%method, path = uri.path(), status, error = %e, "request failed")
                    }
                    _ => {
                        tracing::debug!(%method, path = uri.path(), status, error = %e, "request refused")
                    }
                }
                e.response()
            }
        };
        span.record("status", response.status().as_u16());
        if tls.is_some()
            && let Some(hsts) = &self.settings.hsts
        {
            response
                .headers_mut()
                .insert(header::STRICT_TRANSPORT_SECURITY, hsts.clone());
        }
        let exchange = Exchange {
            started,
            client: conn.side.addr,
            method,
            host,
            uri,
            version,
            status: response.status().as_u16(),
            bytes_in,
            facts,
            observers: self.observers.clone(),
        };
        response.map(|body| ObservedBody::new(body, exchange))
    }

    async fn forward(
        &self,
        mut req: Request<Incoming>,
        conn: &Arc<Connection>,
        facts: &mut Facts,
        bytes_in: Option<Arc<AtomicU64>>,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        let tls = conn.tls.as_ref();
        let host = request_host(&req)?;
        // The pod sees the host that routed the request, whatever form the client used; an
        // origin-form HTTP/1.1 request already carries it.
        if req.uri().authority().is_some() {
            req.headers_mut().insert(header::HOST, host.clone());
        }
        let host_text = host.to_str().map_err(|_| ProxyError::BadHost)?;
        let normalised = RequestHost::parse(host_text).ok_or(ProxyError::BadHost)?;
        if let Some(tls) = tls
            && req.version() == Version::HTTP_2
            && !tls.may_serve(normalised.as_str())
        {
            return Err(ProxyError::Misdirected);
        }
        let route = {
            let published = self.shared.peek();
            let route = published
                .built
                .table
                .lookup(host_text, req.uri().path())
                .ok_or(ProxyError::NoRoute)?;
            if tls.is_none() && route.redirect_to_https {
                return Ok(self.redirect_to_https(host_text, req.uri()));
            }
            route.clone()
        };
        let span = tracing::Span::current();
        span.record("ingress", route.ingress.key().as_str());
        if let Some(path) = &route.path {
            span.record("route", path.path.as_str());
        }
        let backend = route.backend.clone();
        facts.route = Some(route);
        if backend.endpoints.targets.is_empty() {
            let why = backend
                .problem
                .clone()
                .unwrap_or_else(|| match &backend.service {
                    Some(s) => format!("Service {s} has no ready endpoints"),
                    None => "no endpoints".to_owned(),
                });
            return Err(ProxyError::NoEndpoints(why));
        }

        let upgrade =
            req.version() == Version::HTTP_11 && forward::upgrade_requested(req.headers());
        let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
        let websocket = upgrade && forward::upgrade_is_websocket(req.headers());
        let (parts, body) = req.into_parts();
        let mut headers = parts.headers;
        facts.request_id = Some(forward::request_headers(
            &mut headers,
            &conn.side,
            &host,
            upgrade,
        ));
        crate::telemetry::propagate(&span, &mut headers);
        // Pods get the origin form (`/path?query`), whatever form the client used.
        let origin_form = match parts.uri.path_and_query() {
            Some(p) => Uri::from(p.clone()),
            None => Uri::from_static("/"),
        };
        let body = RequestBody::new(body, bytes_in);
        let metrics = &self.observers.metrics;

        let mut tried: Vec<Target> = Vec::new();
        let mut headers = Some(headers);
        let mut last_error = String::new();
        while tried.len() < ATTEMPTS {
            let Some(target) = self.ejections.pick(&backend, &tried) else {
                break;
            };
            let Some(attempt_body) = body.again() else {
                break;
            };
            span.record("upstream", tracing::field::display(&target));
            facts.upstream = Some(target.clone());
            let more_possible = tried.len() + 1 < ATTEMPTS.min(backend.endpoints.targets.len());
            let attempt_headers = if more_possible {
                headers.clone()
            } else {
                headers.take()
            };
            let mut upstream_req = Request::new(attempt_body);
            *upstream_req.method_mut() = parts.method.clone();
            *upstream_req.uri_mut() = origin_form.clone();
            *upstream_req.version_mut() = Version::HTTP_11;
            *upstream_req.headers_mut() = attempt_headers.unwrap_or_default();

            let sent_at = Instant::now();
            let sent = tokio::time::timeout(
                self.settings.timeouts.response_headers,
                self.upstreams.send(&target, upstream_req),
            )
            .await;
            let mut response = match sent {
                Err(_) => {
                    metrics
                        .upstream_errors
                        .get_or_create(&ReasonLabels { reason: "timeout" })
                        .inc();
                    return Err(ProxyError::Timeout);
                }
                Ok(Err(UpstreamError::Connect(e))) => {
                    metrics
                        .upstream_errors
                        .get_or_create(&ReasonLabels { reason: "connect" })
                        .inc();
                    tracing::warn!(upstream = %target, error = %e, "connect failed; ejecting the endpoint for a few seconds");
                    self.ejections.eject(&target);
                    last_error = format!("{target}: {e}");
                    tried.push(target);
                    if headers.is_none() {
                        break;
                    }
                    continue;
                }
                Ok(Err(UpstreamError::Exchange(e))) => {
                    if let Some(client_fault) = client_body_error(&e) {
                        return Err(ProxyError::ClientBody(client_fault));
                    }
                    metrics
                        .upstream_errors
                        .get_or_create(&ReasonLabels {
                            reason: failure_reason(&e),
                        })
                        .inc();
                    return Err(ProxyError::Upstream(format!(
                        "{target}: {}",
                        error_chain(&e)
                    )));
                }
                Ok(Ok(response)) => response,
            };
            let took = sent_at.elapsed();
            metrics.upstream_header_duration.observe(took.as_secs_f64());
            facts.upstream_took = Some(took);
            let switching = response.status() == StatusCode::SWITCHING_PROTOCOLS;
            match client_upgrade {
                Some(client_upgrade) if switching => {
                    let upstream_upgrade = hyper::upgrade::on(&mut response);
                    tokio::spawn(super::tunnel::run(
                        client_upgrade,
                        upstream_upgrade,
                        target,
                        websocket,
                        self.settings.tunnel_idle,
                        conn.clone(),
                    ));
                    forward::strip_hop_by_hop(response.headers_mut(), true);
                }
                _ => forward::strip_hop_by_hop(response.headers_mut(), false),
            }
            return Ok(response.map(|b| b.map_err(BoxError::from).boxed_unsync()));
        }
        Err(ProxyError::Connect(last_error))
    }
}

/// The host a request is for, checked: one Host header at most (RFC 9112 §3.2), over HTTP/2
/// no Host that contradicts `:authority` (RFC 9113 §8.3.1), and for an absolute-form target
/// the target's authority, whatever Host says (RFC 9112 §3.2.2).
fn request_host(req: &Request<Incoming>) -> Result<HeaderValue, ProxyError> {
    let mut hosts = req.headers().get_all(header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(ProxyError::DuplicateHost);
    }
    let Some(authority) = authority_value(req.uri()) else {
        return host.cloned().ok_or(ProxyError::BadHost);
    };
    if req.version() == Version::HTTP_2
        && let Some(host) = host
        && !host.as_bytes().eq_ignore_ascii_case(authority.as_bytes())
    {
        return Err(ProxyError::AuthorityMismatch);
    }
    Ok(authority)
}

/// The authority of an absolute-form or HTTP/2 request target, as a header value.
fn authority_value(uri: &Uri) -> Option<HeaderValue> {
    uri.authority()
        .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
}

/// The client's body error behind a failed exchange, if that is what failed it.
fn client_body_error(e: &hyper::Error) -> Option<String> {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if s.is::<ClientBodyError>() {
            return Some(s.to_string());
        }
        source = s.source();
    }
    None
}

/// `reset` when the upstream connection broke, `protocol` for anything else it did wrong.
fn failure_reason(e: &hyper::Error) -> &'static str {
    let io = std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>());
    if e.is_incomplete_message() || e.is_closed() || e.is_canceled() || io {
        "reset"
    } else {
        "protocol"
    }
}

impl Proxy {
    /// `308 Permanent Redirect` to the same host, path and query over https (308, unlike 301,
    /// keeps the method and body).
    fn redirect_to_https(&self, host: &str, uri: &Uri) -> Response<ProxyBody> {
        let name = without_port(host);
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let location = match self.settings.https_redirect_port {
            443 => format!("https://{name}{path}"),
            port => format!("https://{name}:{port}{path}"),
        };
        let mut response = Response::new(full("redirecting to https\n".into()));
        *response.status_mut() = StatusCode::PERMANENT_REDIRECT;
        if let Ok(value) = HeaderValue::from_str(&location) {
            response.headers_mut().insert(header::LOCATION, value);
        }
        response
    }
}

/// `example.com:8080` → `example.com`; `[::1]:80` → `[::1]`.
fn without_port(host: &str) -> &str {
    match host.rfind(':') {
        Some(i) if !host[i..].contains(']') => &host[..i],
        _ => host,
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
