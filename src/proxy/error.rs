//! Why a request was not answered by a pod, and — in exactly one place — which status and
//! text each reason gets.

use super::body::{ProxyBody, full};
use super::upstream::{ClientBodyError, ConnectError};
use crate::model::Target;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use std::time::Duration;

/// Why a request was not answered by an upstream.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("missing or malformed Host")]
    BadHost,
    #[error("more than one Host header")]
    DuplicateHost,
    #[error("the Host header and :authority name different hosts")]
    AuthorityMismatch,
    #[error("the connection's certificate does not cover this host")]
    Misdirected,
    /// The exchange failed because the client's body did (its chain holds a
    /// [`ClientBodyError`]).
    #[error("the client's request body failed")]
    ClientBody(#[source] hyper::Error),
    #[error("the request body is larger than the route's limit of {0} bytes")]
    BodyTooLarge(u64),
    #[error("no route")]
    NoRoute,
    /// The route's annotations did not parse: it is not served with half a policy.
    #[error("the route is disabled: {0}")]
    Denied(String),
    #[error("no ready endpoints: {0}")]
    NoEndpoints(String),
    /// A Gateway API backendRef that cannot be used, or a rule whose filters cannot be
    /// honoured: the spec's 500.
    #[error("the route's backend is invalid: {0}")]
    InvalidBackend(String),
    #[error("no response within the route's request timeout of {0:?}")]
    RequestTimeout(Duration),
    #[error("could not connect to {target}")]
    Connect {
        target: Target,
        #[source]
        source: ConnectError,
    },
    #[error("the exchange with {target} failed")]
    Upstream {
        target: Target,
        #[source]
        source: hyper::Error,
    },
    #[error("{target} sent no response headers within {waited:?}")]
    Timeout { target: Target, waited: Duration },
    #[error("{target} took none of the request body for {waited:?}")]
    SendTimeout { target: Target, waited: Duration },
}

impl ProxyError {
    /// The `vestibule_client_errors_total` label of a failure the client caused.
    pub fn client_reason(&self) -> Option<&'static str> {
        match self {
            ProxyError::ClientBody(_) => Some("body"),
            ProxyError::BodyTooLarge(_) => Some("body_size"),
            ProxyError::DuplicateHost | ProxyError::AuthorityMismatch => Some("host"),
            _ => None,
        }
    }

    /// Whether the pod side failed (logged as a warning; the rest is the client's business).
    pub fn is_upstream_failure(&self) -> bool {
        matches!(
            self,
            ProxyError::Connect { .. }
                | ProxyError::Upstream { .. }
                | ProxyError::Timeout { .. }
                | ProxyError::SendTimeout { .. }
        )
    }

    /// The status code for this failure: the only place that decides one.
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::BadHost
            | ProxyError::DuplicateHost
            | ProxyError::AuthorityMismatch
            | ProxyError::ClientBody(_) => StatusCode::BAD_REQUEST,
            ProxyError::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::NoRoute => StatusCode::NOT_FOUND,
            ProxyError::Denied(_) | ProxyError::NoEndpoints(_) => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::InvalidBackend(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ProxyError::RequestTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            // nginx: a connect timeout is 504, a refused connection 502.
            ProxyError::Connect {
                source: ConnectError::TimedOut(_),
                ..
            } => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::Connect { .. } | ProxyError::Upstream { .. } => StatusCode::BAD_GATEWAY,
            ProxyError::Timeout { .. } | ProxyError::SendTimeout { .. } => {
                StatusCode::GATEWAY_TIMEOUT
            }
            ProxyError::Misdirected => StatusCode::MISDIRECTED_REQUEST,
        }
    }

    /// A short plain-text answer; upstream details stay in the log, not in the response.
    pub fn response(&self) -> Response<ProxyBody> {
        let text = match self {
            ProxyError::BadHost => "bad request: missing or malformed Host\n".into(),
            ProxyError::DuplicateHost => "bad request: more than one Host header\n".into(),
            ProxyError::AuthorityMismatch => {
                "bad request: Host and :authority name different hosts\n".into()
            }
            ProxyError::ClientBody(_) => "bad request: malformed request body\n".into(),
            ProxyError::BodyTooLarge(_) => "request entity too large\n".into(),
            ProxyError::NoRoute => "not found: no route for this host and path\n".into(),
            // Which annotation is wrong is in the diagnostics; the client learns only that.
            ProxyError::Denied(_) => {
                "service unavailable: this route's configuration is invalid\n".into()
            }
            // Which Service and why is the operator's business, and no secret.
            ProxyError::NoEndpoints(why) => format!("service unavailable: {why}\n"),
            ProxyError::InvalidBackend(_) => {
                "internal server error: this route's backend is invalid\n".into()
            }
            ProxyError::RequestTimeout(_) => {
                "gateway timeout: upstream did not answer in time\n".into()
            }
            ProxyError::Connect { .. } | ProxyError::Upstream { .. } => match self.status() {
                StatusCode::GATEWAY_TIMEOUT => {
                    "gateway timeout: upstream did not answer in time\n".into()
                }
                _ => "bad gateway: upstream failed\n".into(),
            },
            ProxyError::Timeout { .. } | ProxyError::SendTimeout { .. } => {
                "gateway timeout: upstream did not answer in time\n".into()
            }
            ProxyError::Misdirected => {
                "misdirected request: open a connection for this host\n".into()
            }
        };
        text_response(self.status(), text)
    }

    /// The `vestibule_upstream_errors_total` label, for failures on the pod side.
    pub fn upstream_reason(&self) -> Option<&'static str> {
        match self {
            ProxyError::Connect { .. } => Some("connect"),
            ProxyError::Timeout { .. } | ProxyError::SendTimeout { .. } => Some("timeout"),
            ProxyError::Upstream { source, .. } => Some(failure_reason(source)),
            _ => None,
        }
    }
}

/// A plain-text response.
pub fn text_response(status: StatusCode, text: String) -> Response<ProxyBody> {
    let mut response = Response::new(full(text.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// The client's body error behind a failed exchange, if that is what failed it.
pub fn client_body_error(e: &hyper::Error) -> Option<&ClientBodyError> {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(found) = s.downcast_ref::<ClientBodyError>() {
            return Some(found);
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

/// `error: cause: cause`, for the log.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// A failure the proxy answers on a gRPC route, as gRPC clients expect it: HTTP 200 with
/// `grpc-status` (14 UNAVAILABLE when no pod could be reached, 4 DEADLINE_EXCEEDED on a
/// timeout, else the code of the HTTP status) and `grpc-message`, no body.
pub fn grpc_error(e: &ProxyError) -> Response<ProxyBody> {
    let code = match e {
        ProxyError::Timeout { .. }
        | ProxyError::SendTimeout { .. }
        | ProxyError::RequestTimeout(_) => 4,
        ProxyError::Connect {
            source: super::upstream::ConnectError::TimedOut(_),
            ..
        } => 4,
        _ => match e.status().as_u16() {
            400 => 13,
            401 => 16,
            403 => 7,
            404 => 12,
            429 | 502 | 503 | 504 => 14,
            _ => 2,
        },
    };
    let mut response = Response::new(super::body::full("".into()));
    let h = response.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/grpc"),
    );
    h.insert("grpc-status", http::HeaderValue::from(code));
    let message = crate::model::access::escape(&e.to_string());
    if let Ok(v) = http::HeaderValue::from_str(&message) {
        h.insert("grpc-message", v);
    }
    response
}
