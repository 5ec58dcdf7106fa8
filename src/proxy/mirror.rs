//! `mirror-target`: a copy of a request sent fire-and-forget. The copy is a task of its own:
//! its answer is read and dropped, its failure is only counted, and the client never waits for
//! it. Copies in flight are capped; beyond, they are dropped and counted.

use super::upstream::{ExchangeLimits, RequestBody, Upstreams};
use crate::config::Timeouts;
use crate::metrics::{Metrics, ReasonLabels};
use crate::model::Target;
use crate::model::policy::{Mirror, MirrorTarget};
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Uri};
use http_body_util::BodyExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Copies in flight at most, over all routes.
pub const MAX_IN_FLIGHT: usize = 256;
/// The largest request body a copy carries: larger bodies (or bodies of unknown length) are
/// not read ahead, and their requests are not mirrored.
pub const MAX_BODY: u64 = 1 << 20;
/// The largest mirror answer read (and dropped).
const MAX_ANSWER: usize = 64 << 10;

/// The mirrors' shared state.
#[derive(Default)]
pub struct Mirrors {
    in_flight: Arc<AtomicUsize>,
}

/// One copy to send.
pub struct Copy {
    pub method: Method,
    /// The target with its variables filled in.
    pub url: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Mirrors {
    /// Sends `copy` in a task of its own, unless too many copies are in flight.
    pub fn send(
        &self,
        mirror: &Mirror,
        copy: Copy,
        upstreams: &Arc<Upstreams>,
        timeouts: &Timeouts,
        metrics: &Arc<Metrics>,
    ) {
        let count = |reason: &'static str| {
            metrics
                .mirrors
                .get_or_create(&ReasonLabels { reason })
                .inc();
        };
        let Some(req) = request(mirror, copy) else {
            return count("invalid");
        };
        if self.in_flight.fetch_add(1, Ordering::AcqRel) >= MAX_IN_FLIGHT {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return count("dropped");
        }
        let (in_flight, upstreams, timeouts, metrics) = (
            self.in_flight.clone(),
            upstreams.clone(),
            *timeouts,
            metrics.clone(),
        );
        tokio::spawn(async move {
            let outcome = exchange(req, &upstreams, &timeouts).await;
            in_flight.fetch_sub(1, Ordering::AcqRel);
            let reason = if outcome { "sent" } else { "failed" };
            metrics
                .mirrors
                .get_or_create(&ReasonLabels { reason })
                .inc();
        });
    }
}

/// The copy as the target gets it: origin form, its Host (`mirror-host` or the target's).
fn request(mirror: &Mirror, copy: Copy) -> Option<((Target, bool), Request<RequestBody>)> {
    let url: Uri = copy.url.parse().ok()?;
    let authority = url.authority()?.clone();
    let endpoint = super::upstream::url_target(&url)?;
    let path = url.path_and_query().map_or("/", |p| p.as_str());
    let mut req = Request::builder()
        .method(copy.method)
        .uri(path)
        .body(RequestBody::buffered(copy.body))
        .ok()?;
    *req.headers_mut() = copy.headers;
    let host = match (&mirror.host, &mirror.target) {
        (Some(h), _) => Some(h.clone()),
        // A Service's copy keeps the request's Host, as the pod would have seen it.
        (None, MirrorTarget::Backend(_)) => None,
        (None, MirrorTarget::Url(_)) => Some(HeaderValue::from_str(authority.as_str()).ok()?),
    };
    if let Some(host) = host {
        req.headers_mut().insert(header::HOST, host);
    }
    req.headers_mut().remove(header::CONTENT_LENGTH);
    Some((endpoint, req))
}

/// Sends the copy and drops the answer; whether an answer came.
async fn exchange(
    (endpoint, req): ((Target, bool), Request<RequestBody>),
    upstreams: &Arc<Upstreams>,
    timeouts: &Timeouts,
) -> bool {
    let limits = ExchangeLimits {
        connect: timeouts.connect,
        read: timeouts.read,
    };
    let sent = async {
        let response = upstreams.send_to_url(&endpoint, req, limits).await.ok()?;
        let _ = http_body_util::Limited::new(response.into_body(), MAX_ANSWER)
            .collect()
            .await;
        Some(())
    };
    matches!(
        tokio::time::timeout(timeouts.response_headers, sent).await,
        Ok(Some(()))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn beyond_the_cap_copies_are_dropped_and_counted() {
        let metrics = Arc::new(Metrics::new());
        let upstreams = Upstreams::new(metrics.upstream_connect_duration.clone());
        let mirrors = Mirrors::default();
        mirrors.in_flight.store(MAX_IN_FLIGHT, Ordering::SeqCst);
        let mirror = Mirror {
            target: MirrorTarget::Url("http://127.0.0.1:9/".into()),
            host: None,
            body: true,
            fraction: None,
        };
        let copy = || Copy {
            method: Method::GET,
            url: "http://127.0.0.1:9/x".into(),
            headers: HeaderMap::new(),
            body: Bytes::new(),
        };
        mirrors.send(&mirror, copy(), &upstreams, &Timeouts::default(), &metrics);
        let dropped = ReasonLabels { reason: "dropped" };
        assert_eq!(metrics.mirrors.get_or_create(&dropped).get(), 1);
        assert_eq!(mirrors.in_flight.load(Ordering::SeqCst), MAX_IN_FLIGHT);
        mirrors.in_flight.store(0, Ordering::SeqCst);
        let bad = Copy {
            url: "not a url".into(),
            ..copy()
        };
        mirrors.send(&mirror, bad, &upstreams, &Timeouts::default(), &metrics);
        let invalid = ReasonLabels { reason: "invalid" };
        assert_eq!(metrics.mirrors.get_or_create(&invalid).get(), 1);
    }
}
