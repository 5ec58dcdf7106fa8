//! Stage one: which route a request takes. The host is checked and parsed once, the table
//! is looked up, the route's conditions are checked.

use super::conn::Connection;
use super::error::ProxyError;
use crate::model::host::RequestHost;
use crate::model::settings::Global;
use crate::model::table::RequestFacts;
use crate::model::{Built, Route};
use http::header::{self, HeaderValue};
use http::{Request, Uri, Version};
use std::sync::Arc;

/// The route a request takes, the host it named, and the settings it is served under.
pub struct Decision {
    pub route: Arc<Route>,
    pub global: Arc<Global>,
    /// The host as the client sent it (port included), for the pod and redirects.
    pub host: HeaderValue,
}

/// Decides the route of `req`. The pod will see the host that routed the request, whatever
/// form the client used: an absolute-form or HTTP/2 target's authority becomes the Host.
pub fn decide<B>(
    req: &mut Request<B>,
    conn: &Connection,
    built: &Built,
) -> Result<Decision, ProxyError> {
    let table = &built.table;
    let host = request_host(req)?;
    if req.uri().authority().is_some() {
        req.headers_mut().insert(header::HOST, host.clone());
    }
    let host_text = host.to_str().map_err(|_| ProxyError::BadHost)?;
    let normalised = RequestHost::parse(host_text).ok_or(ProxyError::BadHost)?;
    if let Some(tls) = &conn.tls
        && req.version() == Version::HTTP_2
        && !tls.may_serve(normalised.as_str())
    {
        return Err(ProxyError::Misdirected);
    }
    let facts = RequestFacts {
        method: req.method(),
        headers: req.headers(),
        query: req.uri().query(),
        tls: conn.tls.is_some(),
    };
    let route = table
        .find(host_text, req.uri().path(), |r| r.matches.hold(&facts))
        .ok_or(ProxyError::NoRoute)?;
    Ok(Decision {
        route: route.clone(),
        global: built.global.clone(),
        host,
    })
}

/// The host a request is for, checked: one Host header at most (RFC 9112 §3.2), over HTTP/2
/// no Host that contradicts `:authority` (RFC 9113 §8.3.1), and for an absolute-form target
/// the target's authority, whatever Host says (RFC 9112 §3.2.2).
fn request_host<B>(req: &Request<B>) -> Result<HeaderValue, ProxyError> {
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
pub fn authority_value(uri: &Uri) -> Option<HeaderValue> {
    uri.authority()
        .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
}
