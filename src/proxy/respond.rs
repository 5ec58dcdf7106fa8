//! Stage four: the pod's answer on its way back. Hop-by-hop headers go, an upgrade becomes a
//! tunnel, and statuses the route lists in `custom-http-errors` are answered by its error
//! backend instead.

use super::attempt::{Attempts, Outgoing, Sent};
use super::body::{BoxError, ProxyBody};
use super::conn::Connection;
use super::error::ProxyError;
use super::forward;
use super::upstream::RequestBody;
use crate::model::policy::{CustomErrors, UpstreamPolicy};
use crate::model::{Route, Target};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Response, StatusCode, Uri};
use http_body_util::BodyExt;
use hyper::upgrade::OnUpgrade;
use std::sync::Arc;

/// An upgrade the client asked for, to be joined with the pod's.
pub struct Upgrade {
    pub client: OnUpgrade,
    pub websocket: bool,
}

/// Hands a pod's response to the client: a `101` with a pending client upgrade starts the
/// tunnel; otherwise hop-by-hop headers go.
pub fn finish(
    mut sent: Sent,
    upgrade: Option<Upgrade>,
    tunnel_idle: std::time::Duration,
    conn: &Arc<Connection>,
) -> Response<ProxyBody> {
    let switching = sent.response.status() == StatusCode::SWITCHING_PROTOCOLS;
    match upgrade {
        Some(upgrade) if switching => {
            let upstream = hyper::upgrade::on(&mut sent.response);
            tokio::spawn(super::tunnel::run(
                upgrade.client,
                upstream,
                sent.target,
                upgrade.websocket,
                tunnel_idle,
                conn.clone(),
            ));
            forward::strip_hop_by_hop(sent.response.headers_mut(), true);
        }
        _ => forward::strip_hop_by_hop(sent.response.headers_mut(), false),
    }
    sent.response
        .map(|b| b.map_err(BoxError::from).boxed_unsync())
}

/// What ingress-nginx tells its error backend about a request (`X-Code`, `X-Format`, …).
pub struct ErrorContext {
    pub route: Arc<Route>,
    /// The request's target as the client sent it (nginx's `$request_uri`).
    pub original_uri: Uri,
    pub accept: Option<HeaderValue>,
}

impl ErrorContext {
    /// The context of `req`, taken before it is rewritten.
    pub fn of<B>(req: &http::Request<B>, route: Arc<Route>) -> ErrorContext {
        ErrorContext {
            route,
            original_uri: req.uri().clone(),
            accept: req.headers().get(http::header::ACCEPT).cloned(),
        }
    }

    /// `headers` plus the error headers for `code`.
    pub fn headers(&self, mut headers: HeaderMap, code: StatusCode) -> HeaderMap {
        headers.remove(http::header::CONTENT_LENGTH);
        headers.remove(http::header::TRANSFER_ENCODING);
        let mut set = |name: &'static str, value: Option<HeaderValue>| {
            if let Some(v) = value {
                headers.insert(HeaderName::from_static(name), v);
            }
        };
        let text = |s: &str| HeaderValue::from_str(s).ok();
        let service = self.route.backend().service.as_ref();
        set("x-code", Some(HeaderValue::from(code.as_u16())));
        set("x-format", self.accept.clone());
        let target = self
            .original_uri
            .path_and_query()
            .map_or("/", |p| p.as_str());
        set("x-original-uri", text(target));
        set("x-namespace", text(&self.route.ingress.namespace));
        set("x-ingress-name", text(&self.route.ingress.name));
        set("x-service-name", service.and_then(|s| text(&s.name)));
        set(
            "x-service-port",
            service.and_then(|s| text(&s.port.to_string())),
        );
        headers
    }
}

/// When the pod answered with a status the route intercepts, the error backend's answer to
/// the same method on `/` (nginx rewrites the path), without the body; otherwise `sent`.
pub async fn intercept_errors(
    sent: Sent,
    errors: Option<&CustomErrors>,
    attempts: &Attempts<'_>,
    cx: &ErrorContext,
    (method, forwarded): (http::Method, HeaderMap),
    on_attempt: impl FnMut(&Target),
) -> Result<Sent, ProxyError> {
    let status = sent.response.status();
    let Some(errors) = errors.filter(|e| e.codes.contains(&status.as_u16())) else {
        return Ok(sent);
    };
    if errors.backend.resolved().endpoints.targets.is_empty() {
        return Ok(sent);
    }
    drop(sent);
    let out = Outgoing {
        method,
        uri: Uri::from_static("/"),
        headers: cx.headers(forwarded, status),
        body: RequestBody::empty(),
        clock: None,
    };
    let policy = UpstreamPolicy::default();
    attempts
        .send(&errors.backend, 0, &policy, out, on_attempt)
        .await
}
