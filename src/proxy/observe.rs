//! What is recorded once a response is done: the access-log line and the request metrics.
//! Both happen when the response body ends (or the client goes away), off the request's path:
//! the line goes to a background writer ([`super::lines`]) that drops lines rather than block.

use super::body::{BoxError, ProxyBody};
use super::lines::{FlushOnDrop, Lines};
use crate::metrics::{Metrics, RequestLabels, status_class};
use crate::model::{ObjectRef, Route, ServiceRef, Target};
use bytes::Bytes;
use http::{HeaderValue, Method, Uri, Version};
use http_body::{Body, Frame, SizeHint};
use serde::Serialize;
use std::cell::RefCell;
use std::fmt;
use std::io::Write;
use std::net::IpAddr;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use std::time::{SystemTime, UNIX_EPOCH};

/// Where access-log lines go, and in which format.
pub struct AccessLog {
    lines: Lines,
    json: bool,
}

impl AccessLog {
    /// Lines to standard output through a background thread; keep the guard until exit so
    /// the last lines are flushed.
    pub fn stdout(json: bool) -> std::io::Result<(AccessLog, FlushOnDrop)> {
        let (lines, guard) = Lines::spawn(std::io::stdout())?;
        Ok((AccessLog { lines, json }, guard))
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
    /// The client address when forwarded headers named one.
    pub client: Option<std::net::IpAddr>,
    /// The client's place under `limit-connections`, held until the response ends.
    pub slot: Option<super::guard::ConnectionSlot>,
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
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
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
    let service = route.and_then(|r| r.backend().service.as_ref());
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
            time: Now,
            request_id: exchange
                .facts
                .request_id
                .as_ref()
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-"),
            client: exchange.facts.client.unwrap_or(exchange.client.ip()),
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
            upstream: exchange.facts.upstream.as_ref(),
            upstream_ms: exchange
                .facts
                .upstream_took
                .map(|d| d.as_secs_f64() * 1000.0),
            ingress: route.map(|r| IngressKey(&r.ingress)),
            service,
        };
        let mut text = Vec::with_capacity(320);
        // Writing into a Vec cannot fail.
        let _ = if log.json {
            serde_json::to_writer(&mut text, &line).map_err(std::io::Error::other)
        } else {
            line.write_text(&mut text)
        };
        text.push(b'\n');
        log.lines.append(&text);
    }
}

/// The current time as RFC 3339 with milliseconds. Formatting a date is slow next to
/// everything else a log line needs, so each thread keeps the text of its last second.
struct Now;

impl fmt::Display for Now {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        thread_local! {
            static LAST: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
        }
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let seconds = since.as_secs();
        LAST.with(|last| {
            let mut last = last.borrow_mut();
            if last.0 != seconds {
                let stamp = k8s_openapi::jiff::Timestamp::from_second(seconds as i64)
                    .map_or_else(|_| seconds.to_string(), |t| t.to_string());
                // `2026-11-27T17:40:01Z` → keep everything before the `Z`.
                *last = (seconds, stamp.trim_end_matches('Z').to_owned());
            }
            write!(f, "{}.{:03}Z", last.1, since.subsec_millis())
        })
    }
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

/// Milliseconds with three decimals, printed with integer arithmetic (float formatting with a
/// precision is slow, and this runs for every request).
struct Millis(f64);

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let micros = (self.0 * 1000.0).round() as u64;
        write!(f, "{}.{:03}", micros / 1000, micros % 1000)
    }
}

/// `namespace/name` without allocating.
struct IngressKey<'a>(&'a ObjectRef);

impl fmt::Display for IngressKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.0.namespace, self.0.name)
    }
}

/// Serializes a `Display` value as a JSON string.
fn display<T: fmt::Display, S: serde::Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(value)
}

fn display_opt<T: fmt::Display, S: serde::Serializer>(
    value: &Option<T>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(v) => s.collect_str(v),
        None => s.serialize_none(),
    }
}

/// One access-log line. The path is logged without its query, which often carries tokens.
#[derive(Serialize)]
struct AccessLine<'a> {
    #[serde(serialize_with = "display")]
    time: Now,
    request_id: &'a str,
    #[serde(serialize_with = "display")]
    client: IpAddr,
    method: &'a str,
    host: &'a str,
    path: &'a str,
    protocol: &'static str,
    status: u16,
    bytes_in: u64,
    bytes_out: u64,
    duration_ms: f64,
    #[serde(serialize_with = "display_opt")]
    upstream: Option<&'a Target>,
    upstream_ms: Option<f64>,
    #[serde(serialize_with = "display_opt")]
    ingress: Option<IngressKey<'a>>,
    #[serde(serialize_with = "display_opt")]
    service: Option<&'a ServiceRef>,
}

impl AccessLine<'_> {
    /// Common Log Format's order, then the proxy's fields as `key=value`.
    fn write_text(&self, out: &mut Vec<u8>) -> std::io::Result<()> {
        write!(
            out,
            "{} - - [{}] \"{} {} {}\" {} {} host={} in={} ms={}",
            self.client,
            self.time,
            self.method,
            self.path,
            self.protocol,
            self.status,
            self.bytes_out,
            self.host,
            self.bytes_in,
            Millis(self.duration_ms),
        )?;
        match self.upstream {
            Some(u) => write!(out, " upstream={u}")?,
            None => write!(out, " upstream=-")?,
        }
        match self.upstream_ms {
            Some(ms) => write!(out, " upstream_ms={}", Millis(ms))?,
            None => write!(out, " upstream_ms=-")?,
        }
        match &self.ingress {
            Some(i) => write!(out, " ingress={i}")?,
            None => write!(out, " ingress=-")?,
        }
        match self.service {
            Some(s) => write!(out, " service={s}")?,
            None => write!(out, " service=-")?,
        }
        write!(out, " id={}", self.request_id)
    }
}
