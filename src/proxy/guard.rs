//! Stage three: who may use the route, after the request filters (nginx's preaccess and
//! access phases). Rate and connection limits per client address first, then the address
//! lists and authentication (basic, external) under `satisfy`. The rules are the model's
//! ([`crate::model::access`]); the state lives here, keyed by route id and bounded: rate
//! buckets, connection counts, checked credentials and cached auth answers.

use super::body::{ProxyBody, full};
use super::upstream::{ExchangeLimits, RequestBody, Upstreams, url_target};
use crate::config::Timeouts;
use crate::model::RouteId;
use crate::model::access::{
    Access, AddressVerdict, AuthVerdict, ClientCertPolicy, ExternalAuth, Limits, PresentedCert,
    TemplateFacts, auth_verdict, expand,
};
use crate::tls::client::ClientCertInfo;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::BodyExt;
use rustc_hash::{FxHashMap, FxHasher};
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Client addresses a rate limiter tracks before it forgets idle ones, and resets if even
/// that is not enough (a flood of distinct addresses must not grow memory without bound).
const MAX_TRACKED: usize = 65_536;
/// Routes with limiter state; beyond, the state of routes gone from the table is dropped.
const MAX_ROUTES: usize = 16_384;
/// Checked credentials and cached auth answers kept at most (each cache).
const MAX_CACHED: usize = 4_096;
/// The largest auth-service answer body read (and discarded).
const MAX_AUTH_BODY: usize = 64 << 10;

/// What the guard decided.
pub enum Guarded {
    /// Go on. `headers` join the request (`auth-response-headers`), `cookies` the response
    /// (the auth service's Set-Cookie); `slot` holds the client's place under
    /// `limit-connections` until the response ends.
    Pass(Passed),
    /// Answered here (403, 401, a limit's status, the sign-in redirect, 500).
    Answer(Response<ProxyBody>),
}

/// What a request that passed carries on.
#[derive(Default)]
pub struct Passed {
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub cookies: Vec<HeaderValue>,
    pub always_cookies: bool,
    pub slot: Option<ConnectionSlot>,
}

/// The facts of a request the guard reads.
pub struct Asking<'a> {
    pub route: RouteId,
    pub client: IpAddr,
    pub scheme: &'a str,
    pub host: &'a str,
    pub method: &'a http::Method,
    pub uri: &'a Uri,
    pub headers: &'a HeaderMap,
}

/// The guard's state, shared by every request of a proxy.
#[derive(Default)]
pub struct Guards {
    rates: Mutex<FxHashMap<RouteId, Arc<RateState>>>,
    connections: Arc<Mutex<FxHashMap<(RouteId, IpAddr), u32>>>,
    /// (users' version, hash of the Authorization value) of credentials that were right.
    checked: Mutex<FxHashMap<(u64, u64), ()>>,
    answers: Mutex<FxHashMap<(RouteId, String), CachedAnswer>>,
}

struct RateState {
    quota: (Option<u32>, Option<u32>, u32),
    per_second: Option<DefaultKeyedRateLimiter<IpAddr>>,
    per_minute: Option<DefaultKeyedRateLimiter<IpAddr>>,
    checks: AtomicU64,
}

#[derive(Clone)]
struct CachedAnswer {
    status: StatusCode,
    headers: Vec<(HeaderName, HeaderValue)>,
    until: Instant,
}

/// A client's place under `limit-connections`; gives it back when dropped.
#[derive(Debug)]
pub struct ConnectionSlot {
    key: (RouteId, IpAddr),
    counts: Arc<Mutex<FxHashMap<(RouteId, IpAddr), u32>>>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = counts.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

fn answer(status: StatusCode, text: &'static str) -> Response<ProxyBody> {
    let mut response = Response::new(full(text.into()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}

impl Guards {
    /// Applies `limits` and `access` to one request.
    pub async fn check(
        &self,
        limits: Option<&Limits>,
        access: Option<&Arc<Access>>,
        ask: &Asking<'_>,
        upstreams: &Arc<Upstreams>,
        timeouts: &Timeouts,
    ) -> Guarded {
        let mut passed = Passed::default();
        if let Some(limits) = limits.filter(|l| !l.exempts(ask.client)) {
            if !self.within_rate(ask.route, limits, ask.client) {
                return Guarded::Answer(answer(limits.rate_status, "too many requests\n"));
            }
            if let Some(max) = limits.connections {
                match self.take_slot(ask.route, ask.client, max) {
                    Some(slot) => passed.slot = Some(slot),
                    None => {
                        return Guarded::Answer(answer(
                            limits.conn_status,
                            "too many connections\n",
                        ));
                    }
                }
            }
        }
        let Some(access) = access else {
            return Guarded::Pass(passed);
        };
        self.access(access, ask, upstreams, timeouts, passed).await
    }

    /// The access phase. `satisfy all`: the address lists, basic auth and external auth must
    /// each agree. `satisfy any` (satisfy.go): the first that grants access suffices, in
    /// nginx's order; when none does, the external auth's answer (or basic auth's 401, or 403).
    async fn access(
        &self,
        access: &Arc<Access>,
        ask: &Asking<'_>,
        upstreams: &Arc<Upstreams>,
        timeouts: &Timeouts,
        passed: Passed,
    ) -> Guarded {
        let forbidden = || Guarded::Answer(answer(StatusCode::FORBIDDEN, "403 Forbidden\n"));
        if access.is_blocked(ask.client) {
            return forbidden();
        }
        let allowed = access.address(ask.client) == AddressVerdict::Allowed;
        let any = access.satisfy_any;
        match (any, allowed) {
            (true, true) if access.has_address_list() => return Guarded::Pass(passed),
            (false, false) => return forbidden(),
            _ => {}
        }
        if !access.authenticates() {
            return if allowed {
                Guarded::Pass(passed)
            } else {
                forbidden()
            };
        }
        if let Some(basic) = &access.basic {
            match self.basic_ok(access, basic.version, ask.headers).await {
                true if any => return Guarded::Pass(passed),
                true => {}
                // Under `satisfy any` the external auth may still grant access.
                false if any && access.external.is_some() => {}
                false => {
                    let mut response =
                        answer(StatusCode::UNAUTHORIZED, "401 Authorization Required\n");
                    response
                        .headers_mut()
                        .insert(header::WWW_AUTHENTICATE, basic.challenge());
                    return Guarded::Answer(response);
                }
            }
        }
        if let Some(external) = &access.external
            && access.external_guards(ask.uri.path())
        {
            return self
                .external(external, ask, upstreams, timeouts, passed)
                .await;
        }
        Guarded::Pass(passed)
    }

    /// Whether the client is within the route's request rates (`limit-rps`, `limit-rpm`).
    fn within_rate(&self, route: RouteId, limits: &Limits, ip: IpAddr) -> bool {
        if limits.rps.is_none() && limits.rpm.is_none() {
            return true;
        }
        let state = self.rate_state(route, limits);
        let ok = [&state.per_second, &state.per_minute]
            .into_iter()
            .flatten()
            .all(|limiter| limiter.check_key(&ip).is_ok());
        // Now and then, forget idle clients; if a flood of addresses still fills the table,
        // start over rather than grow.
        if state.checks.fetch_add(1, Ordering::Relaxed) % 1024 == 1023 {
            for limiter in [&state.per_second, &state.per_minute].into_iter().flatten() {
                if limiter.len() > MAX_TRACKED {
                    limiter.retain_recent();
                }
            }
            let full = [&state.per_second, &state.per_minute]
                .into_iter()
                .flatten()
                .any(|l| l.len() > MAX_TRACKED);
            if full {
                self.lock_rates().remove(&route);
            }
        }
        ok
    }

    fn lock_rates(&self) -> std::sync::MutexGuard<'_, FxHashMap<RouteId, Arc<RateState>>> {
        self.rates.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The limiters of `route`, made anew when its limits changed.
    fn rate_state(&self, route: RouteId, limits: &Limits) -> Arc<RateState> {
        let quota = (limits.rps, limits.rpm, limits.burst_multiplier);
        let mut rates = self.lock_rates();
        if let Some(state) = rates.get(&route)
            && state.quota == quota
        {
            return state.clone();
        }
        if rates.len() >= MAX_ROUTES {
            rates.clear();
        }
        // nginx's `limit_req … burst=<rate × multiplier> nodelay`: a request and that many more
        // at once, then the rate.
        let limiter = |rate: Option<u32>, per: fn(NonZeroU32) -> Quota| {
            let rate = NonZeroU32::new(rate?)?;
            let burst = rate
                .saturating_mul(NonZeroU32::new(limits.burst_multiplier.max(1))?)
                .saturating_add(1);
            Some(RateLimiter::keyed(per(rate).allow_burst(burst)))
        };
        let state = Arc::new(RateState {
            quota,
            per_second: limiter(limits.rps, Quota::per_second),
            per_minute: limiter(limits.rpm, Quota::per_minute),
            checks: AtomicU64::new(0),
        });
        rates.insert(route, state.clone());
        state
    }

    /// A place under `limit-connections`, if the client has one left.
    fn take_slot(&self, route: RouteId, ip: IpAddr, max: u32) -> Option<ConnectionSlot> {
        let mut counts = self.connections.lock().unwrap_or_else(|e| e.into_inner());
        let n = counts.entry((route, ip)).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(ConnectionSlot {
            key: (route, ip),
            counts: self.connections.clone(),
        })
    }

    /// Whether the request's Basic credentials are right. bcrypt takes milliseconds of CPU by
    /// design, so checks run on the blocking pool and right answers are remembered.
    async fn basic_ok(&self, access: &Arc<Access>, version: u64, headers: &HeaderMap) -> bool {
        let Some(authorization) = headers.get(header::AUTHORIZATION) else {
            return false;
        };
        let mut h = FxHasher::default();
        authorization.as_bytes().hash(&mut h);
        let key = (version, h.finish());
        let checked = || self.checked.lock().unwrap_or_else(|e| e.into_inner());
        if checked().contains_key(&key) {
            return true;
        }
        let access = access.clone();
        let value = authorization.as_bytes().to_vec();
        let verify = move || access.basic.as_ref().is_some_and(|b| b.verify(&value));
        let ok = tokio::task::spawn_blocking(verify).await.unwrap_or(false);
        if ok {
            let mut checked = checked();
            if checked.len() >= MAX_CACHED {
                checked.clear();
            }
            checked.insert(key, ());
        }
        ok
    }

    /// `auth-url`: the sub-request, or the cached answer to it.
    async fn external(
        &self,
        auth: &ExternalAuth,
        ask: &Asking<'_>,
        upstreams: &Arc<Upstreams>,
        timeouts: &Timeouts,
        mut passed: Passed,
    ) -> Guarded {
        let remote = ask.client.to_string();
        let facts = template_facts(ask, &remote);
        let cache_key = auth
            .cache
            .as_ref()
            .map(|c| (ask.route, expand(&c.key, &facts)));
        let cached = cache_key.as_ref().and_then(|key| self.cached(key));
        let (status, headers) = match cached {
            Some(hit) => (hit.status, hit.headers),
            None => match ask_auth_service(auth, ask, upstreams, timeouts).await {
                Some((status, headers)) => {
                    if let (Some(key), Some(cache)) = (cache_key, &auth.cache)
                        && cache.statuses.contains(&status.as_u16())
                    {
                        self.remember(key, status, &headers, cache.duration);
                    }
                    (status, headers)
                }
                None => {
                    return Guarded::Answer(answer(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "500 Internal Server Error\n",
                    ));
                }
            },
        };
        let cookies = headers
            .iter()
            .filter(|(n, _)| *n == header::SET_COOKIE)
            .map(|(_, v)| v.clone());
        passed.cookies.extend(cookies);
        passed.always_cookies = auth.always_set_cookie;
        match auth_verdict(status) {
            AuthVerdict::Allow => {
                for name in &auth.response_headers {
                    if let Some((_, v)) = headers.iter().find(|(n, _)| n == name) {
                        passed.headers.push((name.clone(), v.clone()));
                    }
                }
                Guarded::Pass(passed)
            }
            AuthVerdict::Refuse(status) => {
                let signin = (status == StatusCode::UNAUTHORIZED)
                    .then(|| auth.signin_location(&facts))
                    .flatten();
                let mut response = match signin.and_then(|l| HeaderValue::from_str(&l).ok()) {
                    Some(location) => {
                        let mut r = answer(StatusCode::FOUND, "redirecting to sign in\n");
                        r.headers_mut().insert(header::LOCATION, location);
                        r
                    }
                    None => {
                        let mut r = answer(status, "authentication required\n");
                        if let Some((_, v)) =
                            headers.iter().find(|(n, _)| *n == header::WWW_AUTHENTICATE)
                        {
                            r.headers_mut().insert(header::WWW_AUTHENTICATE, v.clone());
                        }
                        r
                    }
                };
                if auth.always_set_cookie || response.status().is_redirection() {
                    for c in &passed.cookies {
                        response.headers_mut().append(header::SET_COOKIE, c.clone());
                    }
                }
                Guarded::Answer(response)
            }
            AuthVerdict::Fail => Guarded::Answer(answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                "500 Internal Server Error\n",
            )),
        }
    }

    fn cached(&self, key: &(RouteId, String)) -> Option<CachedAnswer> {
        let answers = self.answers.lock().unwrap_or_else(|e| e.into_inner());
        answers
            .get(key)
            .filter(|a| a.until > Instant::now())
            .cloned()
    }

    fn remember(
        &self,
        key: (RouteId, String),
        status: StatusCode,
        headers: &[(HeaderName, HeaderValue)],
        duration: Duration,
    ) {
        let mut answers = self.answers.lock().unwrap_or_else(|e| e.into_inner());
        if answers.len() >= MAX_CACHED {
            let now = Instant::now();
            answers.retain(|_, a| a.until > now);
            if answers.len() >= MAX_CACHED {
                answers.clear();
            }
        }
        let until = Instant::now() + duration;
        let headers = headers.to_vec();
        answers.insert(
            key,
            CachedAnswer {
                status,
                headers,
                until,
            },
        );
    }
}

/// `auth-tls-*`: whether the client's certificate lets the request on (nginx checks it before
/// any phase), and the `ssl-client-*` headers the pod gets. A refusal is nginx's 400, or a 302
/// to `auth-tls-error-page` (boxed: refusals are rare).
pub fn client_certificate(
    policy: &ClientCertPolicy,
    shown: Option<&ClientCertInfo>,
) -> Result<Vec<(HeaderName, HeaderValue)>, Box<Response<ProxyBody>>> {
    let missing = PresentedCert::Missing;
    let presented = shown.map_or(&missing, |s| &s.presented);
    if let Err(text) = policy.admits(presented) {
        return Err(Box::new(match &policy.error_page {
            Some(page) => {
                let mut r = answer(StatusCode::FOUND, "redirecting\n");
                r.headers_mut().insert(header::LOCATION, page.clone());
                r
            }
            None => answer(StatusCode::BAD_REQUEST, text),
        }));
    }
    let value = |text: &str| HeaderValue::from_str(text).ok();
    let mut headers = Vec::new();
    let verify = ClientCertPolicy::verify_header(presented);
    if let Some(v) = value(&verify) {
        headers.push((HeaderName::from_static("ssl-client-verify"), v));
    }
    if let Some(shown) = shown.filter(|s| s.presented != PresentedCert::Missing) {
        let named = [
            ("ssl-client-subject-dn", &shown.subject),
            ("ssl-client-issuer-dn", &shown.issuer),
        ];
        for (name, text) in named {
            if let Some(v) = value(text) {
                headers.push((HeaderName::from_static(name), v));
            }
        }
        if policy.pass_to_upstream
            && let Some(v) = value(&shown.escaped_pem)
        {
            headers.push((HeaderName::from_static("ssl-client-cert"), v));
        }
    }
    Ok(headers)
}

fn template_facts<'a>(ask: &'a Asking<'a>, remote: &'a str) -> TemplateFacts<'a> {
    TemplateFacts {
        scheme: ask.scheme,
        host: ask.host,
        request_uri: ask.uri.path_and_query().map_or("/", |p| p.as_str()),
        remote_addr: remote,
        headers: ask.headers,
    }
}

/// Headers of the original request the auth service does not get: the body's and the
/// connection's.
const NOT_FORWARDED: [HeaderName; 5] = [
    header::CONTENT_LENGTH,
    header::TRANSFER_ENCODING,
    header::CONNECTION,
    header::UPGRADE,
    header::EXPECT,
];

/// Sends the sub-request (the original headers and `X-Original-URL`, `X-Original-Method`,
/// `X-Auth-Request-Redirect`, no body) and returns the answer's status and headers; `None`
/// when the service could not be asked or did not answer in time.
async fn ask_auth_service(
    auth: &ExternalAuth,
    ask: &Asking<'_>,
    upstreams: &Arc<Upstreams>,
    timeouts: &Timeouts,
) -> Option<(StatusCode, Vec<(HeaderName, HeaderValue)>)> {
    let authority = auth.url.authority()?;
    let endpoint = url_target(&auth.url)?;
    let request_uri = ask.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut req = Request::builder()
        .method(auth.method.clone())
        .uri(auth.url.path_and_query().map_or("/", |p| p.as_str()))
        .body(RequestBody::empty())
        .ok()?;
    let h = req.headers_mut();
    for (name, value) in ask.headers {
        if !NOT_FORWARDED.contains(name) && name != header::HOST {
            h.append(name.clone(), value.clone());
        }
    }
    h.insert(
        header::HOST,
        HeaderValue::from_str(authority.as_str()).ok()?,
    );
    let original = format!("{}://{}{}", ask.scheme, ask.host, request_uri);
    h.insert("x-original-url", HeaderValue::from_str(&original).ok()?);
    h.insert(
        "x-original-method",
        HeaderValue::from_str(ask.method.as_str()).ok()?,
    );
    let redirect = match &auth.request_redirect {
        Some(r) => r.clone(),
        None => HeaderValue::from_str(request_uri).ok()?,
    };
    h.insert("x-auth-request-redirect", redirect);
    let ip = HeaderValue::from_str(&ask.client.to_string()).ok()?;
    h.insert("x-real-ip", ip.clone());
    h.insert("x-forwarded-for", ip);
    h.insert("x-forwarded-host", HeaderValue::from_str(ask.host).ok()?);
    h.insert("x-forwarded-proto", HeaderValue::from_str(ask.scheme).ok()?);
    let limits = ExchangeLimits {
        connect: timeouts.connect,
        read: timeouts.read,
    };
    let exchange = async {
        let response = upstreams.send_to_url(&endpoint, req, limits).await.ok()?;
        let (parts, body) = response.into_parts();
        // Read (and drop) a small body so the connection goes back to the pool.
        let _ = http_body_util::Limited::new(body, MAX_AUTH_BODY)
            .collect()
            .await;
        let headers = parts
            .headers
            .iter()
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect();
        Some((parts.status, headers))
    };
    let answered = tokio::time::timeout(timeouts.response_headers, exchange).await;
    match answered {
        Ok(Some(answer)) => Some(answer),
        Ok(None) => {
            tracing::warn!(url = %auth.url, "the auth service could not be asked");
            None
        }
        Err(_) => {
            tracing::warn!(url = %auth.url, "the auth service did not answer in time");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(rps: u32) -> Limits {
        Limits {
            rps: Some(rps),
            rpm: None,
            connections: None,
            burst_multiplier: 1,
            exempt: None,
            rate_status: StatusCode::SERVICE_UNAVAILABLE,
            conn_status: StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    #[test]
    fn a_rate_is_per_address_and_a_flood_of_addresses_stays_bounded() {
        let guards = Guards::default();
        let route = RouteId::of("r");
        let l = limits(2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..3 {
            assert!(guards.within_rate(route, &l, a));
        }
        assert!(
            !guards.within_rate(route, &l, a),
            "a request and a burst of 2 at 2 rps"
        );
        assert!(
            guards.within_rate(route, &l, b),
            "another address has its own bucket"
        );
        for i in 0..(MAX_TRACKED as u32 + 10_000) {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            guards.within_rate(route, &l, ip);
            let tracked = guards
                .rate_state(route, &l)
                .per_second
                .as_ref()
                .unwrap()
                .len();
            assert!(tracked <= MAX_TRACKED + 1024, "{tracked} addresses tracked");
        }
    }

    #[test]
    fn changed_limits_start_afresh_and_connection_slots_come_back() {
        let guards = Guards::default();
        let route = RouteId::of("r");
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(guards.within_rate(route, &limits(1), a));
        assert!(guards.within_rate(route, &limits(1), a));
        assert!(!guards.within_rate(route, &limits(1), a));
        assert!(
            guards.within_rate(route, &limits(5), a),
            "a new quota, new buckets"
        );
        let first = guards.take_slot(route, a, 1).expect("a slot");
        assert!(guards.take_slot(route, a, 1).is_none());
        drop(first);
        assert!(guards.take_slot(route, a, 1).is_some());
    }
}
