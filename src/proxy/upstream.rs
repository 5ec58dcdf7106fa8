//! The pooled client towards pods: keep-alive connections per endpoint, connect and
//! response-header timeouts, and a request body that survives a failed connect so the
//! request can be retried on another endpoint.

use bytes::Bytes;
use http::Uri;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use prometheus_client::metrics::histogram::Histogram;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use std::time::Instant;

/// How long an idle pooled connection is kept.
const POOL_IDLE: Duration = Duration::from_secs(90);

/// The shared upstream client.
pub type UpstreamClient = Client<TimedConnector, RequestBody>;

/// One client for all endpoints; the pool is keyed by endpoint address, so connections
/// survive table publishes as long as the endpoint stays.
pub fn client(connect_timeout: Duration, connect_duration: Histogram) -> UpstreamClient {
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(connect_timeout));
    http.set_nodelay(true);
    http.set_keepalive(Some(Duration::from_secs(60)));
    let connector = TimedConnector {
        inner: http,
        connect_duration,
    };
    Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(POOL_IDLE)
        .pool_max_idle_per_host(1024)
        .http1_max_buf_size(crate::proxy::server::MAX_BUF)
        .set_host(false)
        .build(connector)
}

/// The TCP connector, timing each connect for the metrics.
#[derive(Clone)]
pub struct TimedConnector {
    inner: HttpConnector,
    connect_duration: Histogram,
}

impl tower::Service<Uri> for TimedConnector {
    type Response = <HttpConnector as tower::Service<Uri>>::Response;
    type Error = <HttpConnector as tower::Service<Uri>>::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.inner.call(uri);
        let histogram = self.connect_duration.clone();
        Box::pin(async move {
            let started = Instant::now();
            let connected = connecting.await;
            histogram.observe(started.elapsed().as_secs_f64());
            connected
        })
    }
}

/// A client's request body, shared between attempts. The client library drops a request
/// whose connection could not be made; the body sits in a shared slot and is only taken
/// out when the upstream first reads it, so a failed connect leaves it for the next attempt.
pub struct RequestBody {
    slot: Option<Arc<Mutex<Option<Incoming>>>>,
    taken: Option<Incoming>,
    hint: SizeHint,
    end: bool,
    /// Bytes read from the client, for the access log.
    counted: Option<Arc<AtomicU64>>,
}

impl RequestBody {
    /// A body to pass to the first attempt; [`RequestBody::again`] makes the next ones.
    pub fn new(body: Incoming, counted: Option<Arc<AtomicU64>>) -> Self {
        let hint = body.size_hint();
        let end = body.is_end_stream();
        RequestBody {
            slot: (!end).then(|| Arc::new(Mutex::new(Some(body)))),
            taken: None,
            hint,
            end,
            counted,
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
            slot: self.slot.clone(),
            taken: None,
            hint: self.hint,
            end: self.end,
            counted: self.counted.clone(),
        })
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
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
        if let (Poll::Ready(Some(Ok(frame))), Some(counted)) = (&polled, &self.counted)
            && let Some(data) = frame.data_ref()
        {
            counted.fetch_add(data.len() as u64, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
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
