//! What is recorded once a response is done: the access-log line and the request metrics.
//! Both happen when the response body ends (or the client goes away), off the request's path:
//! the line goes to a background writer that drops lines rather than block.

use super::handler::ProxyBody;
use crate::metrics::{Metrics, RequestLabels, status_class};
use crate::model::{Route, Target};
use bytes::Bytes;
use http::{HeaderValue, Method, Uri, Version};
use http_body::{Body, Frame, SizeHint};
use serde::Serialize;
use std::io::Write;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// Where access-log lines go, and in which format.
pub struct AccessLog {
    writer: tracing_appender::non_blocking::NonBlocking,
    json: bool,
}

impl AccessLog {
    /// Lines to standard output through a background thread; keep the guard until exit so
    /// the last lines are flushed.
    pub fn stdout(json: bool) -> (AccessLog, tracing_appender::non_blocking::WorkerGuard) {
        let (writer, guard) = tracing_appender::non_blocking(std::io::stdout());
        (AccessLog { writer, json }, guard)
    }
}

/// The recorders every response reports to.
pub struct Observers {
    pub metrics: Arc<Metrics>,
    pub access_log: Option<AccessLog>,
}

/// What the handler learnt while answering, for the record.
#[derive(Debug, Default)]
pub struct Facts {
    pub route: Option<Arc<Route>>,
    pub upstream: Option<Target>,
    pub upstream_took: Option<Duration>,
    pub request_id: Option<HeaderValue>,
}

/// One request/response exchange, recorded when its response body is finished.
pub struct Exchange {
    pub started: Instant,
    pub client: SocketAddr,
    pub method: Method,
    pub host: Option<HeaderValue>,
    pub uri: Uri,
    pub version: Version,
    pub status: u16,
    pub bytes_in: Option<Arc<AtomicU64>>,
    pub facts: Facts,
    pub observers: Arc<Observers>,
}

/// A response body that counts what it sends and records the exchange when it is done.
pub struct ObservedBody {
    inner: ProxyBody,
    bytes_out: u64,
    exchange: Option<Box<Exchange>>,
}

impl ObservedBody {
    pub fn new(inner: ProxyBody, exchange: Exchange) -> Self {
        ObservedBody {
            inner,
            bytes_out: 0,
            exchange: Some(Box::new(exchange)),
        }
    }

    fn finish(&mut self) {
        if let Some(exchange) = self.exchange.take() {
            record(&exchange, self.bytes_out);
        }
    }
}

impl Body for ObservedBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                self.bytes_out += frame.data_ref().map_or(0, |d| d.len() as u64);
                if self.inner.is_end_stream() {
                    self.finish();
                }
            }
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => self.finish(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for ObservedBody {
    fn drop(&mut self) {
        // Empty bodies are never polled, and clients may leave mid-body: record either way.
        self.finish();
    }
}

fn record(exchange: &Exchange, bytes_out: u64) {
    let took = exchange.started.elapsed();
    let route = exchange.facts.route.as_deref();
    let service = route.and_then(|r| r.backend.service.as_ref());
    let labels = RequestLabels {
        namespace: route
            .map(|r| r.ingress.namespace.clone())
            .unwrap_or_default(),
        ingress: route.map(|r| r.ingress.name.clone()).unwrap_or_default(),
        service: service.map(|s| s.name.clone()).unwrap_or_default(),
        status_class: status_class(exchange.status),
    };
    exchange.observers.metrics.request(&labels, took);
    if let Some(log) = &exchange.observers.access_log {
        let line = AccessLine {
            time: now_rfc3339(),
            request_id: exchange
                .facts
                .request_id
                .as_ref()
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-"),
            client: exchange.client.ip().to_string(),
            method: exchange.method.as_str(),
            host: exchange
                .host
                .as_ref()
                .and_then(|h| h.to_str().ok())
                .unwrap_or("-"),
            path: exchange.uri.path(),
            protocol: version(exchange.version),
            status: exchange.status,
            bytes_in: exchange
                .bytes_in
                .as_ref()
                .map_or(0, |b| b.load(Ordering::Relaxed)),
            bytes_out,
            duration_ms: took.as_secs_f64() * 1000.0,
            upstream: exchange.facts.upstream.as_ref().map(|t| t.to_string()),
            upstream_ms: exchange
                .facts
                .upstream_took
                .map(|d| d.as_secs_f64() * 1000.0),
            ingress: route.map(|r| r.ingress.key()),
            service: service.map(|s| s.to_string()),
        };
        let mut text = if log.json {
            serde_json::to_string(&line).unwrap_or_default()
        } else {
            line.text()
        };
        text.push('\n');
        // A full buffer drops the line (the writer is lossy), it never waits.
        let _ = log.writer.clone().write_all(text.as_bytes());
    }
}

fn now_rfc3339() -> String {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let ts = k8s_openapi::jiff::Timestamp::new(since.as_secs() as i64, since.subsec_nanos() as i32);
    ts.map_or_else(|_| since.as_secs().to_string(), |t| t.to_string())
}

fn version(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_11 => "HTTP/1.1",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP",
    }
}

/// One access-log line. The path is logged without its query, which often carries tokens.
#[derive(Serialize)]
struct AccessLine<'a> {
    time: String,
    request_id: &'a str,
    client: String,
    method: &'a str,
    host: &'a str,
    path: &'a str,
    protocol: &'static str,
    status: u16,
    bytes_in: u64,
    bytes_out: u64,
    duration_ms: f64,
    upstream: Option<String>,
    upstream_ms: Option<f64>,
    ingress: Option<String>,
    service: Option<String>,
}

impl AccessLine<'_> {
    /// Common Log Format's order, then the proxy's fields as `key=value`.
    fn text(&self) -> String {
        let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_owned());
        format!(
            "{} - - [{}] \"{} {} {}\" {} {} host={} in={} ms={:.3} upstream={} upstream_ms={} ingress={} service={} id={}",
            self.client,
            self.time,
            self.method,
            self.path,
            self.protocol,
            self.status,
            self.bytes_out,
            self.host,
            self.bytes_in,
            self.duration_ms,
            dash(&self.upstream),
            self.upstream_ms
                .map_or_else(|| "-".to_owned(), |m| format!("{m:.3}")),
            dash(&self.ingress),
            dash(&self.service),
            self.request_id,
        )
    }
}
