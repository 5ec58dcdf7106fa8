//! Stage three: sending the request to an endpoint of the chosen backend, with the route's
//! timeouts, and to the next endpoint when the route's retry rule allows it.

use super::balance::Ejections;
use super::error::{ProxyError, client_body_error};
use super::upstream::{
    ConnectError, ExchangeLimits, PooledBody, RequestBody, SendClock, UpstreamError, Upstreams,
};
use crate::config::Timeouts;
use crate::metrics::{Metrics, UpstreamErrorLabels};
use crate::model::policy::{Retry, UpstreamPolicy};
use crate::model::{Backend, Target};
use http::{HeaderMap, Method, Request, Response, Uri, Version};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What attempts need from the proxy.
pub struct Attempts<'a> {
    pub upstreams: &'a Arc<Upstreams>,
    pub ejections: &'a Ejections,
    pub metrics: &'a Metrics,
    pub defaults: &'a Timeouts,
}

/// A request as it goes to pods.
pub struct Outgoing {
    pub method: Method,
    /// Origin form.
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: RequestBody,
    pub clock: Option<Arc<SendClock>>,
}

impl Outgoing {
    /// One attempt's request: HTTP/1.1 to the pod, whatever the client spoke.
    fn request(&self, body: RequestBody, headers: HeaderMap) -> Request<RequestBody> {
        let mut req = Request::new(body);
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = self.uri.clone();
        *req.version_mut() = Version::HTTP_11;
        *req.headers_mut() = headers;
        req
    }
}

/// A pod's answer.
pub struct Sent {
    pub response: Response<PooledBody>,
    pub target: Target,
    /// From sending the request to its response headers.
    pub took: Duration,
}

impl Attempts<'_> {
    /// Sends `out` to `backend`'s endpoints, starting at round-robin position `turn`, trying
    /// the next endpoint as `policy.retry` allows. `on_attempt` learns each endpoint tried.
    pub async fn send(
        &self,
        backend: &Backend,
        turn: usize,
        policy: &UpstreamPolicy,
        mut out: Outgoing,
        mut on_attempt: impl FnMut(&Target),
    ) -> Result<Sent, ProxyError> {
        // Held for the whole exchange: an EndpointSlice change swaps the backend's endpoints
        // for the next request, not under this one's retries.
        let resolved = backend.resolved_full();
        let targets = &resolved.endpoints.targets;
        let retry = &policy.retry;
        let tries = match retry.tries {
            0 => targets.len(),
            n => (n as usize).min(targets.len()),
        };
        let started = Instant::now();
        let mut tried: Vec<Target> = Vec::new();
        // What the client gets if no attempt is left: the last answer or failure (nginx
        // passes on the last pod's answer, a 502 from the pod included).
        let mut outcome = None;
        while tried.len() < tries.max(1) {
            let late = retry.timeout.is_some_and(|t| started.elapsed() >= t);
            if !tried.is_empty() && late {
                break;
            }
            let Some(target) = self.ejections.pick(targets, turn, &tried) else {
                break;
            };
            let Some(body) = out.body.again() else {
                break;
            };
            on_attempt(&target);
            let last = tried.len() + 1 >= tries;
            let headers = if last {
                std::mem::take(&mut out.headers)
            } else {
                out.headers.clone()
            };
            let req = out.request(body, headers);
            let result = self
                .exchange(&target, req, policy, out.clock.as_ref())
                .await;
            match result {
                Ok(sent) if !last && self.retry_status(retry, &out, &sent) => {
                    tracing::debug!(upstream = %target, status = sent.response.status().as_u16(), "answer is retried on the next endpoint");
                    outcome = Some(Ok(sent));
                }
                // The common case returns before `tried` ever allocates.
                Ok(sent) => return Ok(sent),
                Err(e) => {
                    self.count(&e, policy.protocol.label());
                    if let ProxyError::Connect { .. } = e {
                        self.ejections.eject(&target);
                    }
                    if !may_retry(&e, retry, &out.method) {
                        return Err(e);
                    }
                    tracing::debug!(upstream = %target, error = %e, "trying the next endpoint");
                    outcome = Some(Err(e));
                }
            }
            tried.push(target);
        }
        outcome.unwrap_or_else(|| {
            Err(ProxyError::NoEndpoints(
                "every endpoint was tried".to_owned(),
            ))
        })
    }

    /// Whether a response's status asks for the next endpoint, and the request can go again.
    fn retry_status(&self, retry: &Retry, out: &Outgoing, sent: &Sent) -> bool {
        retry.on_status.contains(sent.response.status())
            && retry.may_resend(&out.method)
            && out.body.again().is_some()
    }

    /// One exchange with one endpoint, under the route's timeouts.
    async fn exchange(
        &self,
        target: &Target,
        req: Request<RequestBody>,
        policy: &UpstreamPolicy,
        clock: Option<&Arc<SendClock>>,
    ) -> Result<Sent, ProxyError> {
        let limits = ExchangeLimits {
            connect: policy.connect_timeout.unwrap_or(self.defaults.connect),
            read: policy.read_timeout.unwrap_or(self.defaults.read),
        };
        let header_wait = policy
            .read_timeout
            .unwrap_or(self.defaults.response_headers);
        let sent_at = Instant::now();
        // Boxed: the exchange future is large, and every layer around it (the timeout, this
        // function, the retry loop) would otherwise copy it.
        let upstreams = self.upstreams;
        let protocol = policy.protocol.label();
        let tls = match &policy.tls {
            None => None,
            Some(spec) => {
                let host = req
                    .headers()
                    .get(http::header::HOST)
                    .and_then(|h| h.to_str().ok());
                match upstreams.tls_to(spec, host) {
                    Ok(tls) => Some(tls),
                    Err(UpstreamError::Connect(source)) => {
                        return Err(ProxyError::Connect {
                            target: target.clone(),
                            source,
                        });
                    }
                    Err(UpstreamError::Exchange(e)) => return Err(exchange_error(target, e)),
                }
            }
        };
        let tls = tls.as_ref();
        let send: Pin<Box<dyn Future<Output = _> + Send + '_>> = match policy.protocol.is_h2() {
            false => Box::pin(upstreams.send(target, protocol, tls, req, limits)),
            true => Box::pin(upstreams.send_h2(target, protocol, tls, req, limits)),
        };
        let send = tokio::time::timeout(header_wait, send);
        // Watched only when there is an upload and a limit for it: joining two futures moves
        // them, which a plain request should not pay for.
        let result = match (clock, policy.send_timeout) {
            (Some(clock), Some(limit)) => tokio::select! {
                r = send => r,
                waited = upload_stalled(clock, limit) => {
                    return Err(ProxyError::SendTimeout { target: target.clone(), waited });
                }
            },
            _ => send.await,
        };
        let response = match result {
            Err(_) => {
                return Err(ProxyError::Timeout {
                    target: target.clone(),
                    waited: header_wait,
                });
            }
            Ok(Err(UpstreamError::Connect(source))) => {
                return Err(ProxyError::Connect {
                    target: target.clone(),
                    source,
                });
            }
            Ok(Err(UpstreamError::Exchange(e))) => return Err(exchange_error(target, e)),
            Ok(Ok(response)) => response,
        };
        let took = sent_at.elapsed();
        let protocol = policy.protocol.label();
        self.metrics
            .upstream_header_duration
            .get_or_create(&crate::metrics::ProtocolLabels { protocol })
            .observe(took.as_secs_f64());
        Ok(Sent {
            response,
            target: target.clone(),
            took,
        })
    }

    fn count(&self, e: &ProxyError, protocol: &'static str) {
        if let Some(reason) = e.upstream_reason() {
            self.metrics
                .upstream_errors
                .get_or_create(&UpstreamErrorLabels { reason, protocol })
                .inc();
        }
    }
}

/// The client's body error, or the pod's.
fn exchange_error(target: &Target, e: hyper::Error) -> ProxyError {
    use super::upstream::ClientBodyError;
    match client_body_error(&e) {
        Some(ClientBodyError::TooLarge(limit)) => ProxyError::BodyTooLarge(*limit),
        Some(ClientBodyError::Read(_)) => ProxyError::ClientBody(e),
        None => ProxyError::Upstream {
            target: target.clone(),
            source: e,
        },
    }
}

/// Whether `e` lets the request go on to the next endpoint under `retry` (nginx's
/// `proxy_next_upstream`). A request that never reached a pod may always go again; one
/// that did only if its method is idempotent or `non_idempotent` is set.
fn may_retry(e: &ProxyError, retry: &Retry, method: &Method) -> bool {
    match e {
        ProxyError::Connect {
            source: ConnectError::TimedOut(_),
            ..
        } => retry.on_timeout,
        ProxyError::Connect { .. } => retry.on_error,
        ProxyError::Upstream { .. } => retry.on_error && retry.may_resend(method),
        ProxyError::Timeout { .. } => retry.on_timeout && retry.may_resend(method),
        _ => false,
    }
}

/// Completes when the pod has taken no piece of the request body for `limit`.
async fn upload_stalled(clock: &SendClock, limit: Duration) -> Duration {
    let tick = (limit / 4).max(Duration::from_millis(10));
    loop {
        tokio::time::sleep(tick).await;
        if clock.stalled_for().is_some_and(|d| d >= limit) {
            return limit;
        }
    }
}
