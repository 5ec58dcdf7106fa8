//! One request, as stages: decide the route → request filters → attempt → response filters,
//! observed when its response ends. Each stage lives in its own file; this one only joins
//! them and turns a failure into its response ([`super::error`] decides the status).

use super::attempt::{Attempts, Outgoing};
use super::balance::{Ejections, Latencies, Turns};
use super::body::ProxyBody;
use super::conn::Connection;
use super::decide::{authority_value, decide};
use super::error::ProxyError;
use super::filters::{Arrival, Plan, Stop, cors_headers, pod_headers, request_filters};
use super::forward;
use super::guard::{Asking, Guarded, Guards, Passed, client_certificate};
use super::observe::{Exchange, Facts, ObservedBody, Observers};
use super::respond::{ErrorContext, Upgrade, finish, intercept_errors};
use super::upstream::{RequestBody, SendClock, Upstreams};
use crate::config::Timeouts;
use crate::metrics::{Metrics, ReasonLabels};
use crate::model::access::{TemplateFacts, expand, request_cookie};
use crate::model::balance::{
    Affinity, Balance, rejects_same_site_none, rendezvous, rendezvous_top,
};
use crate::model::policy::{BackendFilters, Mirror, MirrorTarget};
use crate::model::{Backend, Route, Target};
use crate::state::Shared;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body::Body as _;
use hyper::body::Incoming;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;
use tracing::Instrument;

/// What the proxy needs from the configuration.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub timeouts: Timeouts,
    /// How long an upgraded connection may carry nothing either way.
    pub tunnel_idle: std::time::Duration,
    /// The port clients use for https, for redirects from plain HTTP.
    pub https_redirect_port: u16,
    /// The Gateway listener ports served on the http and https sockets
    /// (`--gateway-http-port`, `--gateway-https-port`).
    pub gateway_http_port: u16,
    pub gateway_https_port: u16,
}

/// Forwards requests along the published table.
pub struct Proxy {
    shared: Arc<Shared>,
    upstreams: Arc<Upstreams>,
    ejections: Ejections,
    turns: Turns,
    latencies: Latencies,
    guards: Guards,
    mirrors: super::mirror::Mirrors,
    settings: Settings,
    observers: Arc<Observers>,
}

impl Proxy {
    pub fn new(shared: Arc<Shared>, settings: Settings, observers: Arc<Observers>) -> Self {
        Proxy {
            shared,
            upstreams: Upstreams::new(observers.metrics.upstream_connect_duration.clone()),
            ejections: Ejections::default(),
            turns: Turns::default(),
            latencies: Latencies::default(),
            guards: Guards::default(),
            mirrors: Default::default(),
            settings,
            observers,
        }
    }

    /// The published state this proxy reads.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The settings this proxy runs with.
    pub fn settings(&self) -> &Settings {
        &self.settings
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
        let span = request_span(host.as_ref(), &uri);
        crate::telemetry::continue_trace(&span, req.headers());
        // Boxed: hyper moves the request future around (and into a task per HTTP/2 stream);
        // a small one is cheaper to move.
        let mut hsts = None;
        let forwarding = Box::pin(self.forward(req, conn, &mut facts, &mut hsts, bytes_in.clone()));
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
                let refused = self.refused(&e, &method, &uri);
                let grpc = facts
                    .route
                    .as_ref()
                    .is_some_and(|r| r.policy.upstream.protocol.is_grpc());
                match grpc {
                    true => super::error::grpc_error(&e),
                    false => refused,
                }
            }
        };
        span.record("status", response.status().as_u16());
        if tls.is_some()
            && let Some(hsts) = hsts
        {
            response
                .headers_mut()
                .insert(header::STRICT_TRANSPORT_SECURITY, hsts);
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

    /// Counts and logs a failure, and answers it.
    fn refused(&self, e: &ProxyError, method: &http::Method, uri: &Uri) -> Response<ProxyBody> {
        if let Some(reason) = e.client_reason() {
            let labels = ReasonLabels { reason };
            let errors = &self.observers.metrics.client_errors;
            errors.get_or_create(&labels).inc();
        }
        let status = e.status().as_u16();
        let error = super::error::error_chain(e);
        if e.is_upstream_failure() {
            tracing::warn!(%method, path = uri.path(), status, error, "request failed")
        } else {
            tracing::debug!(%method, path = uri.path(), status, error, "request refused")
        }
        e.response()
    }

    /// The stages, in order; an `Err` is answered by [`ProxyError::response`].
    async fn forward(
        &self,
        mut req: Request<Incoming>,
        conn: &Arc<Connection>,
        facts: &mut Facts,
        hsts: &mut Option<HeaderValue>,
        bytes_in: Option<Arc<AtomicU64>>,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        let decision = decide(&mut req, conn, &self.shared.peek().built)?;
        let route = decision.route.clone();
        let global = &decision.global;
        hsts.clone_from(&global.hsts_value);
        let client = conn.side.client(req.headers(), &global.client);
        if client.ip != conn.side.addr.ip() {
            facts.client = Some(client.ip);
        }
        let span = tracing::Span::current();
        note_route(&span, &route, facts);
        let arrival = Arrival {
            tls: client.used_https(),
            host: decision.host.to_str().unwrap_or_default(),
            https_port: self.settings.https_redirect_port,
            listener_port: match conn.tls {
                Some(_) => self.settings.gateway_https_port,
                None => self.settings.gateway_http_port,
            },
        };
        let origin = route
            .policy
            .cors()
            .and_then(|_| req.headers().get(header::ORIGIN).cloned());
        let admitted = self.admit(&route, conn, &client, &arrival, &req, origin.as_ref());
        let (plan, passed, certified) = match admitted.await? {
            Admission::Go(plan, passed, certified) => (plan, passed, certified),
            Admission::Answer(response) => return Ok(response),
        };
        facts.slot = passed.slot;
        let Picked {
            backend,
            filters,
            fallback,
            start,
            session,
        } = self.pick(&route, &req, &client, &arrival)?;
        let errors = route.policy.errors.as_ref();
        // Only routes with an error backend tell it about the request.
        let cx = (fallback || errors.is_some()).then(|| ErrorContext::of(&req, route.clone()));
        let mirrored = match route.policy.mirrors.is_empty() {
            false => match self.mirror_body(&route.policy.mirrors, &mut req).await {
                Ok(copy) => copy,
                Err(response) => return Ok(*response),
            },
            true => None,
        };
        let buffered = mirrored.as_ref().map(|m| m.body.clone());
        let (mut out, upgrade, id) =
            self.outgoing(req, &client, &decision.host, plan, bytes_in, buffered);
        crate::telemetry::propagate(&span, &mut out.headers);
        let added = passed.headers.into_iter().chain(certified);
        pod_headers(&route.policy, &mut out.headers, added);
        if let Some(edits) = filters.and_then(|f| f.request.as_ref()) {
            edits.apply(&mut out.headers);
        }
        facts.request_id = Some(id);
        if let Some(m) = mirrored {
            for mirror in &route.policy.mirrors {
                self.mirror(
                    mirror,
                    &out,
                    m.body.clone(),
                    &m.request_uri,
                    &client,
                    &arrival,
                );
            }
        }
        if let Some(cx) = cx.as_ref().filter(|_| fallback) {
            out.headers = cx.headers(out.headers, StatusCode::SERVICE_UNAVAILABLE);
        }
        let forwarded = errors.map(|_| (out.method.clone(), out.headers.clone()));
        let attempts = self.attempts();
        let ewma = matches!(route.policy.upstream.balance, Balance::Ewma);
        let measured = Measured::new(&self.latencies, ewma);
        let mut on_attempt = |t: &crate::model::Target| {
            span.record("upstream", tracing::field::display(t));
            measured.attempt(t);
            facts.upstream = Some(t.clone());
        };
        let policy = &route.policy.upstream;
        let sending = attempts.send(backend, start, policy, out, &mut on_attempt);
        let sent = match policy.request_timeout {
            None => sending.await,
            Some(limit) => match tokio::time::timeout(limit, sending).await {
                Ok(sent) => sent,
                Err(_) => Err(ProxyError::RequestTimeout(limit)),
            },
        };
        measured.done(sent.as_ref().ok().map(|s| s.took));
        let sent = sent?;
        let session_cookie = session.and_then(|s| s.cookie(&sent.target, backend));
        let took = sent.took;
        let sent = match (forwarded, &cx) {
            (Some(again), Some(cx)) => {
                intercept_errors(sent, errors, &attempts, cx, again, on_attempt).await?
            }
            _ => sent,
        };
        facts.upstream_took = Some(took);
        let mut response = finish(sent, upgrade, self.settings.tunnel_idle, conn);
        if let Some(cookie) = session_cookie {
            response.headers_mut().append(header::SET_COOKIE, cookie);
        }
        if let Some(edits) = filters.and_then(|f| f.response.as_ref()) {
            edits.apply(response.headers_mut());
        }
        let cookies = (passed.cookies, passed.always_cookies);
        Ok(decorate(response, &route, origin, Some(cookies)))
    }

    /// The backend (or the fallback, flagged `true`), the endpoint to start with, and the
    /// session cookie's state. A round-robin turn is state (a lock): taken only when there is
    /// a choice to make.
    fn pick<'r>(
        &self,
        route: &'r Route,
        req: &Request<Incoming>,
        client: &forward::Client,
        arrival: &Arrival<'_>,
    ) -> Result<Picked<'r>, ProxyError> {
        let turn = match route.has_choice() {
            true => self.turns.next(route.id),
            false => 0,
        };
        let (backend, filters, fallback) = choose_backend(route, turn, req.headers())?;
        let (start, session) =
            start_endpoint(route, &self.latencies, backend, turn, req, client, arrival);
        Ok(Picked {
            backend,
            filters,
            fallback,
            start,
            session,
        })
    }

    /// Whether the request goes on to a pod, and with what: the client certificate (checked
    /// before any phase, as nginx does), the request filters, then the guard.
    async fn admit(
        &self,
        route: &Route,
        conn: &Connection,
        client: &forward::Client,
        arrival: &Arrival<'_>,
        req: &Request<Incoming>,
        origin: Option<&HeaderValue>,
    ) -> Result<Admission, ProxyError> {
        let certified = match &route.policy.client_cert {
            None => Vec::new(),
            Some(policy) => {
                let shown = conn.tls.as_ref().and_then(|t| t.client_cert.as_ref());
                match client_certificate(policy, shown) {
                    Ok(headers) => headers,
                    Err(response) => return Ok(Admission::Answer(*response)),
                }
            }
        };
        let plan = match request_filters(route, req, arrival) {
            Ok(plan) => plan,
            Err(Stop::Answer(response)) => return Ok(Admission::Answer(*response)),
            Err(Stop::Refuse(e)) => return Err(e),
        };
        Ok(match self.guard(route, client, arrival, req).await {
            Guarded::Pass(passed) => Admission::Go(plan, passed, certified),
            // The guard's answers (a 401 above all) carry the CORS headers, as nginx's do.
            Guarded::Answer(response) => {
                Admission::Answer(decorate(response, route, origin.cloned(), None))
            }
        })
    }

    /// The body a mirrored request's copy carries: read whole beforehand when it is declared
    /// and small (as nginx buffers it), else the request is not mirrored (`None`). `Err`: the
    /// client did not send the body in time (408).
    async fn mirror_body(
        &self,
        mirrors: &[Arc<Mirror>],
        req: &mut Request<Incoming>,
    ) -> Result<Option<MirrorCopy>, Box<Response<ProxyBody>>> {
        let copy = |body: bytes::Bytes, req: &Request<Incoming>| MirrorCopy {
            body,
            request_uri: req
                .uri()
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_owned(),
        };
        if req.body().is_end_stream() || !mirrors.iter().any(|m| m.body) {
            return Ok(Some(copy(bytes::Bytes::new(), req)));
        }
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_none_or(|n| n > super::mirror::MAX_BODY) {
            let labels = ReasonLabels { reason: "body" };
            self.observers.metrics.mirrors.get_or_create(&labels).inc();
            return Ok(None);
        }
        let read = http_body_util::BodyExt::collect(req.body_mut());
        match tokio::time::timeout(self.settings.timeouts.read, read).await {
            Ok(Ok(collected)) => Ok(Some(copy(collected.to_bytes(), req))),
            _ => {
                let mut r = Response::new(super::body::full("request body timed out\n".into()));
                *r.status_mut() = StatusCode::REQUEST_TIMEOUT;
                Err(Box::new(r))
            }
        }
    }

    /// Sends the copy of `out` to the mirror target, fire-and-forget.
    fn mirror(
        &self,
        mirror: &Mirror,
        out: &Outgoing,
        body: bytes::Bytes,
        request_uri: &str,
        client: &forward::Client,
        arrival: &Arrival<'_>,
    ) {
        // `roll` is 1..=n: a copy for the first `numerator` of every `denominator`.
        if let Some((numerator, denominator)) = mirror.fraction
            && super::balance::roll(denominator) > numerator
        {
            return;
        }
        let url = match &mirror.target {
            MirrorTarget::Url(target) => {
                let remote = client.ip.to_string();
                let facts = TemplateFacts {
                    scheme: if arrival.tls { "https" } else { "http" },
                    host: arrival.host,
                    request_uri,
                    remote_addr: &remote,
                    headers: &out.headers,
                };
                expand(target, &facts)
            }
            MirrorTarget::Backend(backend) => {
                let resolved = backend.resolved();
                let targets = &resolved.endpoints.targets;
                let pick = super::balance::roll(targets.len() as u32) as usize;
                let Some(pod) = targets.get(pick.wrapping_sub(1)) else {
                    let labels = ReasonLabels { reason: "failed" };
                    self.observers.metrics.mirrors.get_or_create(&labels).inc();
                    return;
                };
                format!("http://{pod}{request_uri}")
            }
        };
        let body = if mirror.body {
            body
        } else {
            bytes::Bytes::new()
        };
        let copy = super::mirror::Copy {
            method: out.method.clone(),
            url,
            headers: out.headers.clone(),
            body,
        };
        let metrics = &self.observers.metrics;
        let timeouts = &self.settings.timeouts;
        self.mirrors
            .send(mirror, copy, &self.upstreams, timeouts, metrics);
    }

    /// Stage three, when the route has limits or access rules.
    async fn guard(
        &self,
        route: &Route,
        client: &forward::Client,
        arrival: &Arrival<'_>,
        req: &Request<Incoming>,
    ) -> Guarded {
        let policy = &route.policy;
        if policy.access.is_none() && policy.limits.is_none() {
            return Guarded::Pass(Passed::default());
        }
        let ask = Asking {
            route: route.id,
            client: client.ip,
            scheme: if arrival.tls { "https" } else { "http" },
            host: arrival.host,
            method: req.method(),
            uri: req.uri(),
            headers: req.headers(),
        };
        let limits = policy.limits.as_deref();
        let timeouts = &self.settings.timeouts;
        self.guards
            .check(
                limits,
                policy.access.as_ref(),
                &ask,
                &self.upstreams,
                timeouts,
            )
            .await
    }

    fn attempts(&self) -> Attempts<'_> {
        Attempts {
            upstreams: &self.upstreams,
            ejections: &self.ejections,
            metrics: &self.observers.metrics,
            defaults: &self.settings.timeouts,
        }
    }

    /// The request as pods get it: origin form (rewritten if the filters said so), forwarded
    /// headers, the body under the route's limit; the client's upgrade, if it asked; and the
    /// request id.
    fn outgoing(
        &self,
        mut req: Request<Incoming>,
        client: &forward::Client,
        host: &HeaderValue,
        plan: Plan,
        bytes_in: Option<Arc<AtomicU64>>,
        buffered: Option<bytes::Bytes>,
    ) -> (Outgoing, Option<Upgrade>, HeaderValue) {
        let upgrade =
            req.version() == Version::HTTP_11 && forward::upgrade_requested(req.headers());
        let upgrade = upgrade.then(|| Upgrade {
            websocket: forward::upgrade_is_websocket(req.headers()),
            client: hyper::upgrade::on(&mut req),
        });
        let (parts, body) = req.into_parts();
        let mut headers = parts.headers;
        let id = forward::request_headers(&mut headers, client, host, upgrade.is_some());
        if let Some(rewritten) = plan.host {
            headers.insert(header::HOST, rewritten);
        }
        let uri = match (plan.path_and_query, parts.uri.path_and_query()) {
            (Some(rewritten), _) => {
                Uri::try_from(rewritten).unwrap_or_else(|_| Uri::from_static("/"))
            }
            (None, Some(p)) => Uri::from(p.clone()),
            (None, None) => Uri::from_static("/"),
        };
        let (body, clock) = match buffered {
            Some(bytes) => {
                if let Some(counted) = &bytes_in {
                    counted.fetch_add(bytes.len() as u64, std::sync::atomic::Ordering::Relaxed);
                }
                (RequestBody::buffered(bytes), None)
            }
            None => {
                let clock = (!body.is_end_stream()).then(SendClock::new);
                let body = RequestBody::new(body, bytes_in, plan.body_limit, clock.clone());
                (body, clock)
            }
        };
        let out = Outgoing {
            method: parts.method,
            uri,
            headers,
            body,
            clock,
        };
        (out, upgrade, id)
    }
}

/// Where a request goes: [`Proxy::pick`]'s answer.
struct Picked<'r> {
    backend: &'r Arc<Backend>,
    /// The backend's own header changes (Gateway API backendRef filters).
    filters: Option<&'r BackendFilters>,
    /// The route's `default-backend` stands in for a backend without endpoints.
    fallback: bool,
    /// The endpoint to start with.
    start: usize,
    session: Option<Session<'r>>,
}

/// What the copies of a mirrored request carry: the body, the original URI.
struct MirrorCopy {
    body: bytes::Bytes,
    request_uri: String,
}

/// Under `load-balance: ewma`, each attempt counts as in flight until the next attempt or the
/// answer, whose time feeds the endpoint's average.
struct Measured<'a> {
    latencies: &'a Latencies,
    on: bool,
    current: std::sync::Mutex<Option<Target>>,
}

impl<'a> Measured<'a> {
    fn new(latencies: &'a Latencies, on: bool) -> Self {
        Measured {
            latencies,
            on,
            current: Default::default(),
        }
    }

    fn attempt(&self, target: &Target) {
        if !self.on {
            return;
        }
        let before = self
            .current
            .lock()
            .ok()
            .and_then(|mut m| m.replace(target.clone()));
        if let Some(before) = before {
            self.latencies.end(&before, None);
        }
        self.latencies.begin(target);
    }

    fn done(&self, took: Option<std::time::Duration>) {
        if self.on
            && let Some(target) = self.current.lock().ok().and_then(|mut m| m.take())
        {
            self.latencies.end(&target, took);
        }
    }
}

/// Names the route in the request's span and its record.
fn note_route(span: &tracing::Span, route: &Arc<Route>, facts: &mut Facts) {
    span.record("ingress", route.ingress.key().as_str());
    if let Some(path) = &route.path {
        span.record("route", path.path.as_str());
    }
    facts.route = Some(route.clone());
}

/// What [`Proxy::admit`] decided.
enum Admission {
    /// On to a pod: the filters' plan, what the guard passed, the client certificate's headers.
    Go(Plan, Passed, Vec<(http::HeaderName, HeaderValue)>),
    /// Answered before any pod.
    Answer(Response<ProxyBody>),
}

/// The response filters: CORS headers for an allowed origin, and the auth service's cookies
/// on answers nginx's `add_header` would touch (2xx and 3xx; all with
/// `auth-always-set-cookie`).
fn decorate(
    mut response: Response<ProxyBody>,
    route: &Route,
    origin: Option<HeaderValue>,
    cookies: Option<(Vec<HeaderValue>, bool)>,
) -> Response<ProxyBody> {
    if let Some(cors) = route.policy.cors()
        && let Some(allowed) = cors.allow_origin(origin.as_ref())
    {
        cors_headers(cors, allowed, response.headers_mut());
    }
    for filter in &route.policy.filters {
        if let crate::model::Filter::ResponseHeaders(edits) = filter {
            edits.apply(response.headers_mut());
        }
    }
    if let Some((cookies, always)) = cookies {
        let status = response.status();
        if always || status.is_success() || status.is_redirection() {
            for c in cookies {
                response.headers_mut().append(header::SET_COOKIE, c);
            }
        }
    }
    response
}

/// A request's session under `affinity: cookie`: what its cookie named, if anything.
struct Session<'a> {
    affinity: &'a Affinity,
    /// The endpoint the cookie named, by index into the backend's targets.
    known: Option<usize>,
    old_browser: bool,
}

impl Session<'_> {
    /// The `Set-Cookie` a response carries: for a new session (or one whose endpoint is
    /// gone), and, with `session-cookie-change-on-failure`, when another endpoint answered.
    fn cookie(&self, used: &Target, backend: &Backend) -> Option<HeaderValue> {
        let resolved = backend.resolved();
        let targets = &resolved.endpoints.targets;
        let moved = self.known.is_some_and(|i| targets.get(i) != Some(used));
        if self.known.is_some() && !(moved && self.affinity.change_on_failure) {
            return None;
        }
        let salt = u64::from(super::balance::roll(u32::MAX)) << 32
            | u64::from(super::balance::roll(u32::MAX));
        let value = self.affinity.value_for(used, targets, salt);
        self.affinity.set_cookie(&value, self.old_browser)
    }
}

/// The endpoint a request starts with (an index into the backend's targets, taken modulo
/// their number): the round-robin turn, the key's rendezvous winner (`upstream-hash-by`), or
/// the session's endpoint (`affinity: cookie`), with the session for its cookie.
fn start_endpoint<'r>(
    route: &'r Route,
    latencies: &Latencies,
    backend: &Backend,
    turn: usize,
    req: &Request<Incoming>,
    client: &forward::Client,
    arrival: &Arrival<'_>,
) -> (usize, Option<Session<'r>>) {
    let resolved = backend.resolved();
    let targets = &resolved.endpoints.targets;
    match &route.policy.upstream.balance {
        Balance::RoundRobin => (turn, None),
        Balance::Ewma => (latencies.choose(targets), None),
        Balance::Hash { key, subset } => {
            let remote = client.ip.to_string();
            let facts = TemplateFacts {
                scheme: if arrival.tls { "https" } else { "http" },
                host: arrival.host,
                request_uri: req.uri().path_and_query().map_or("/", |p| p.as_str()),
                remote_addr: &remote,
                headers: req.headers(),
            };
            let key = expand(key, &facts);
            let start = match subset {
                None => rendezvous(key.as_bytes(), targets),
                Some(n) => {
                    let top = rendezvous_top(key.as_bytes(), targets, *n);
                    top[turn % top.len()]
                }
            };
            (start, None)
        }
        Balance::Cookie(affinity) => {
            let known = request_cookie(req.headers(), &affinity.name)
                .and_then(|v| affinity.endpoint_of(v, targets));
            let agent = req.headers().get(header::USER_AGENT);
            let old_browser = agent
                .and_then(|v| v.to_str().ok())
                .is_some_and(rejects_same_site_none);
            let session = Session {
                affinity,
                known,
                old_browser,
            };
            (known.unwrap_or(turn), Some(session))
        }
    }
}

/// Whether a request goes to the canary: its header or cookie, else a roll of the weight.
fn takes_canary(rule: &crate::model::canary::CanaryRule, headers: &http::HeaderMap) -> bool {
    use crate::model::canary::Verdict;
    match rule.decide(headers) {
        Verdict::Canary => true,
        Verdict::Main => false,
        Verdict::Weight => rule.weight > 0 && rule.by_weight(super::balance::roll(rule.total())),
    }
}

/// The span of one request, with the fields later stages fill in.
fn request_span(host: Option<&HeaderValue>, uri: &Uri) -> tracing::Span {
    tracing::debug_span!(
        "request",
        host = host.and_then(|h| h.to_str().ok()).or(uri.host()),
        path = uri.path(),
        route = tracing::field::Empty,
        ingress = tracing::field::Empty,
        upstream = tracing::field::Empty,
        status = tracing::field::Empty,
    )
}

/// The backend for request number `turn` of `route` (or its canary's, when the canary's rule
/// says so and it has an endpoint); its `default-backend` (flagged `true`) when that one has
/// no endpoint to send to.
fn choose_backend<'r>(
    route: &'r Route,
    turn: usize,
    headers: &http::HeaderMap,
) -> Result<Chosen<'r>, ProxyError> {
    if let Some(canary) = &route.canary
        && takes_canary(&canary.rule, headers)
        && canary.backend.unavailable().is_none()
    {
        return Ok((&canary.backend, None, false));
    }
    let weighted = route.weighted_for(turn);
    let (backend, filters) = (&weighted.backend, weighted.filters.as_deref());
    let Some(why) = backend.unavailable() else {
        return Ok((backend, filters, false));
    };
    if backend.invalid_ref {
        return Err(ProxyError::InvalidBackend(why));
    }
    match &route.policy.upstream.fallback {
        Some(fallback) if fallback.unavailable().is_none() => Ok((fallback, None, true)),
        _ => Err(ProxyError::NoEndpoints(why)),
    }
}

/// [`choose_backend`]'s answer: the backend, its own filters, whether it is the fallback.
type Chosen<'r> = (&'r Arc<Backend>, Option<&'r BackendFilters>, bool);
