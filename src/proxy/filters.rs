//! Stage two: the route's request filters, in the policy's order. A filter may answer the
//! request itself (a redirect, 413, 503 for a disabled route) or change what the pod gets
//! (path, headers, body limit).

use super::body::{ProxyBody, full};
use super::error::ProxyError;
use crate::model::Route;
use crate::model::access::Cors;
use crate::model::policy::{Filter, Policy, Redirect, Rewritten};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body::Body;

/// What the request filters decided for a request that goes on to the pod.
#[derive(Debug, Default)]
pub struct Plan {
    /// The path and query the pod gets, when a rewrite changed them.
    pub path_and_query: Option<String>,
    /// The body limit to enforce while streaming.
    pub body_limit: Option<u64>,
    /// The Host the pod gets, when a rewrite changed it.
    pub host: Option<HeaderValue>,
}

/// Why the filters stopped a request.
pub enum Stop {
    /// Answered by the proxy (a redirect); boxed, as stops are rare and plans common.
    Answer(Box<Response<ProxyBody>>),
    Refuse(ProxyError),
}

/// Where the request arrived, for redirects.
pub struct Arrival<'a> {
    pub tls: bool,
    /// The host as the client sent it.
    pub host: &'a str,
    /// The port clients use for https.
    pub https_port: u16,
    /// The Gateway listener port the request arrived on (80 or 443 unless the flags map
    /// others), for Gateway API redirects.
    pub listener_port: u16,
}

/// Runs the request filters of `route`'s policy over `req`.
pub fn request_filters<B: Body>(
    route: &Route,
    req: &Request<B>,
    at: &Arrival<'_>,
) -> Result<Plan, Stop> {
    let policy = &route.policy;
    let mut plan = Plan::default();
    let scheme = if at.tls { "https" } else { "http" };
    let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
    for filter in &policy.filters {
        match filter {
            Filter::Deny(reason) => return Err(Stop::Refuse(ProxyError::Denied(reason.clone()))),
            Filter::BodyLimit(limit) => {
                if declared_length(req).is_some_and(|n| n > *limit) {
                    return Err(Stop::Refuse(ProxyError::BodyTooLarge(*limit)));
                }
                plan.body_limit = Some(*limit);
            }
            Filter::Redirect(Redirect { to, code }) => {
                if let Some(location) = to.location(scheme, at.host, target) {
                    return Err(Stop::Answer(Box::new(redirect(*code, &location))));
                }
            }
            Filter::HttpsRedirect(code) if !at.tls => {
                return Err(Stop::Answer(Box::new(https_redirect(*code, at, target))));
            }
            Filter::HttpsRedirect(_) => {}
            Filter::Rewrite(rewrite) => {
                let uri = req.uri();
                let pattern = route.pattern.as_deref();
                match pattern.and_then(|p| rewrite.apply(p, uri.path(), uri.query())) {
                    Some(Rewritten::Path(p)) => plan.path_and_query = Some(p),
                    Some(Rewritten::Redirect(url)) => {
                        return Err(Stop::Answer(Box::new(redirect(StatusCode::FOUND, &url))));
                    }
                    None => {}
                }
            }
            Filter::Cors(cors) => {
                if let Some(response) = preflight(cors, req) {
                    return Err(Stop::Answer(Box::new(response)));
                }
            }
            Filter::GatewayRedirect(r) => {
                let uri = req.uri();
                let host = without_port(at.host);
                let location = r.location(scheme, host, at.listener_port, uri.path(), uri.query());
                return Err(Stop::Answer(Box::new(redirect(r.code, &location))));
            }
            Filter::UrlRewrite(rw) => {
                if let Some(change) = &rw.path {
                    let uri = req.uri();
                    let mut target = change.apply(uri.path());
                    if let Some(q) = uri.query() {
                        target.push('?');
                        target.push_str(q);
                    }
                    plan.path_and_query = Some(target);
                }
                plan.host.clone_from(&rw.hostname);
            }
            Filter::Fail(reason) => {
                return Err(Stop::Refuse(ProxyError::InvalidBackend(reason.clone())));
            }
            Filter::SetHeader(..) | Filter::RequestHeaders(_) | Filter::ResponseHeaders(_) => {}
        }
    }
    Ok(plan)
}

/// The headers that tell the pod about the client certificate.
const SSL_CLIENT_HEADERS: [&str; 4] = [
    "ssl-client-verify",
    "ssl-client-subject-dn",
    "ssl-client-issuer-dn",
    "ssl-client-cert",
];

/// The request headers the pod gets, after the proxy's own `X-Forwarded-*`: the policy's
/// header filters (`upstream-vhost` replaces Host but not X-Forwarded-Host), no credentials
/// the proxy checked (nginx's `Authorization ""` with basic auth), no `ssl-client-*` from the
/// client on a route that checks certificates, then `added` (the auth service's
/// `auth-response-headers`, the certificate's `ssl-client-*`).
pub fn pod_headers(
    policy: &Policy,
    headers: &mut HeaderMap,
    added: impl Iterator<Item = (http::HeaderName, HeaderValue)>,
) {
    for filter in &policy.filters {
        match filter {
            Filter::SetHeader(name, value) => {
                headers.insert(name.clone(), value.clone());
            }
            Filter::RequestHeaders(edits) => edits.apply(headers),
            _ => {}
        }
    }
    if policy.access.as_ref().is_some_and(|a| a.basic.is_some()) {
        headers.remove(header::AUTHORIZATION);
    }
    if policy.client_cert.is_some() {
        for name in SSL_CLIENT_HEADERS {
            headers.remove(name);
        }
    }
    for (name, value) in added {
        headers.insert(name, value);
    }
}

/// The answer to a CORS preflight (`OPTIONS` from an allowed origin): 204 with the CORS
/// headers, never sent to the pod (ingress-nginx's `if ($cors = "trueoptions")`).
fn preflight<B>(cors: &Cors, req: &Request<B>) -> Option<Response<ProxyBody>> {
    if req.method() != Method::OPTIONS {
        return None;
    }
    let origin = cors.allow_origin(req.headers().get(header::ORIGIN))?;
    let mut response = Response::new(full("".into()));
    *response.status_mut() = StatusCode::NO_CONTENT;
    let h = response.headers_mut();
    cors_headers(cors, origin, h);
    h.insert(header::ACCESS_CONTROL_MAX_AGE, cors.max_age.clone());
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain charset=UTF-8"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    Some(response)
}

/// The CORS headers every answer from an allowed origin carries.
pub fn cors_headers(cors: &Cors, origin: HeaderValue, h: &mut HeaderMap) {
    let echoed = origin != "*";
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    if echoed {
        h.append(header::VARY, HeaderValue::from_static("Origin"));
    }
    if cors.credentials {
        h.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
    h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, cors.methods.clone());
    h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, cors.headers.clone());
    if let Some(expose) = &cors.expose {
        h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, expose.clone());
    }
}

/// The body length the client declared, if it declared one.
fn declared_length<B: Body>(req: &Request<B>) -> Option<u64> {
    req.body().size_hint().exact().or_else(|| {
        req.headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
    })
}

fn redirect(code: StatusCode, location: &str) -> Response<ProxyBody> {
    let mut response = Response::new(full("redirecting\n".into()));
    *response.status_mut() = code;
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// `308 Permanent Redirect` to the same host, path and query over https (308, unlike 301,
/// keeps the method and body).
fn https_redirect(code: StatusCode, at: &Arrival<'_>, target: &str) -> Response<ProxyBody> {
    let name = without_port(at.host);
    let location = match at.https_port {
        443 => format!("https://{name}{target}"),
        port => format!("https://{name}:{port}{target}"),
    };
    let mut response = redirect(code, &location);
    *response.body_mut() = full("redirecting to https\n".into());
    response
}

/// `example.com:8080` → `example.com`; `[::1]:80` → `[::1]`.
fn without_port(host: &str) -> &str {
    match host.rfind(':') {
        Some(i) if !host[i..].contains(']') => &host[..i],
        _ => host,
    }
}
