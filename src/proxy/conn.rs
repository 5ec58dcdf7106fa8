//! One client connection as the rest of the proxy sees it: who the client is, its TLS facts,
//! its clock (when a request last ran and when the client last took response bytes), and its
//! part in the drain. [`Activity::verdict`] is the rule that closes connections which send no
//! request in time, sit idle too long between requests, or stop reading a response (nginx's
//! `client_header_timeout`, `keepalive_timeout` and `send_timeout`).

use super::forward::ClientSide;
use crate::config::ClientTimeouts;
use crate::tls::TlsConnection;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use prometheus_client::metrics::gauge::Gauge;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, mpsc, watch};

/// Where a listener is in its life; connections and tunnels follow it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Serving,
    /// Shutdown began: finish what is in flight, take nothing new.
    Draining,
    /// The grace period is over: close now (WebSockets get a close frame).
    Closing,
}

/// One accepted client connection. It lives as long as anything serves it: the HTTP
/// connection, or a tunnel after an upgrade.
pub struct Connection {
    pub side: ClientSide,
    pub tls: Option<TlsConnection>,
    pub activity: Activity,
    pub phase: watch::Receiver<Phase>,
    /// Held until the connection is done, so the listener's drain can wait for it.
    _drain: mpsc::Sender<()>,
    /// Its place under `--max-client-connections`.
    _slot: OwnedSemaphorePermit,
    open: Gauge,
}

impl Connection {
    pub fn new(
        side: ClientSide,
        tls: Option<TlsConnection>,
        accepted: Instant,
        phase: watch::Receiver<Phase>,
        drain: mpsc::Sender<()>,
        slot: OwnedSemaphorePermit,
        open: Gauge,
    ) -> Self {
        open.inc();
        Connection {
            side,
            tls,
            activity: Activity::new(accepted),
            phase,
            _drain: drain,
            _slot: slot,
            open,
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.open.dec();
    }
}

/// What a connection has been doing, in milliseconds since it was accepted.
#[derive(Debug)]
pub struct Activity {
    start: Instant,
    in_flight: AtomicUsize,
    requests: AtomicU64,
    /// When the last request in flight ended (or the connection was accepted).
    idle_since: AtomicU64,
    /// Responses that handed out data and have not been asked for more.
    waiting_client: AtomicUsize,
    /// When the client last took bytes of a response (or one started waiting on it).
    last_progress: AtomicU64,
}

/// What to do with a connection now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Look again after this long.
    Keep(Duration),
    /// Close it, for this reason (a metric label).
    Close(&'static str),
}

impl Activity {
    fn new(start: Instant) -> Self {
        Activity {
            start,
            in_flight: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            idle_since: AtomicU64::new(0),
            waiting_client: AtomicUsize::new(0),
            last_progress: AtomicU64::new(0),
        }
    }

    fn now(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// Whether the connection may stay open, judged now.
    pub fn verdict(&self, timeouts: &ClientTimeouts) -> Verdict {
        verdict(
            &Reading {
                now: self.now(),
                in_flight: self.in_flight.load(Ordering::Acquire),
                requests: self.requests.load(Ordering::Acquire),
                idle_since: self.idle_since.load(Ordering::Acquire),
                waiting_client: self.waiting_client.load(Ordering::Acquire),
                last_progress: self.last_progress.load(Ordering::Acquire),
            },
            timeouts,
        )
    }

    /// A request's headers arrived; the connection is busy until the response body ends.
    pub fn request_started(&self) {
        self.requests.fetch_add(1, Ordering::AcqRel);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
    }

    fn request_finished(&self) {
        self.idle_since.store(self.now(), Ordering::Release);
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }

    fn start_waiting(&self) {
        if self.waiting_client.fetch_add(1, Ordering::AcqRel) == 0 {
            self.last_progress.store(self.now(), Ordering::Release);
        }
    }

    fn stop_waiting(&self) {
        self.last_progress.store(self.now(), Ordering::Release);
        self.waiting_client.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One look at a connection's counters.
#[derive(Debug, Clone, Copy, Default)]
struct Reading {
    now: u64,
    in_flight: usize,
    requests: u64,
    idle_since: u64,
    waiting_client: usize,
    last_progress: u64,
}

fn verdict(r: &Reading, t: &ClientTimeouts) -> Verdict {
    let ms = |d: Duration| d.as_millis() as u64;
    let left = |since: u64, limit: Duration| (since + ms(limit)).saturating_sub(r.now);
    // Nothing wakes the watchdog when a request starts or ends (that would cost every request
    // a wake-up), so it looks again at least this often: a limit is enforced within a quarter
    // of the shortest one late.
    let tick = t.header.min(t.idle).min(t.send) / 4;
    let keep = |wait: u64| Verdict::Keep(Duration::from_millis(wait).min(tick));
    if r.in_flight == 0 {
        let (limit, reason) = if r.requests == 0 {
            (t.header, "header_timeout")
        } else {
            (t.idle, "idle_timeout")
        };
        return match left(r.idle_since, limit) {
            0 => Verdict::Close(reason),
            wait => keep(wait),
        };
    }
    if r.waiting_client == 0 {
        return keep(ms(t.send));
    }
    match left(r.last_progress, t.send) {
        0 => Verdict::Close("send_timeout"),
        wait => keep(wait),
    }
}

/// When the watchdog of a new connection first looks.
pub fn first_look(t: &ClientTimeouts) -> Duration {
    t.header.min(t.idle).min(t.send) / 4
}

/// A response body on its way to the client: keeps the connection's request in flight until
/// it ends, and tells the connection when the client stops taking its data.
pub struct ClientBody<B> {
    inner: B,
    conn: Arc<Connection>,
    waiting: bool,
    finished: bool,
}

impl<B: Body> ClientBody<B> {
    /// Call once per request, when its headers have arrived.
    pub fn new(inner: B, conn: Arc<Connection>) -> Self {
        ClientBody {
            inner,
            conn,
            waiting: false,
            finished: false,
        }
    }

    fn finish(&mut self) {
        if self.waiting {
            self.waiting = false;
            self.conn.activity.stop_waiting();
        }
        if !self.finished {
            self.finished = true;
            self.conn.activity.request_finished();
        }
    }
}

impl<B> Body for ClientBody<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        if self.waiting {
            self.waiting = false;
            self.conn.activity.stop_waiting();
        }
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(_))) if self.inner.is_end_stream() => self.finish(),
            Poll::Ready(Some(Ok(_))) => {
                // Until the client's side asks again, the client has this data to take.
                self.waiting = true;
                self.conn.activity.start_waiting();
            }
            Poll::Ready(_) => self.finish(),
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

impl<B> Drop for ClientBody<B> {
    fn drop(&mut self) {
        if self.waiting {
            self.conn.activity.stop_waiting();
        }
        if !self.finished {
            self.conn.activity.request_finished();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: ClientTimeouts = ClientTimeouts {
        header: Duration::from_secs(10),
        idle: Duration::from_secs(20),
        send: Duration::from_secs(30),
    };

    fn at(now_s: u64, r: Reading) -> Verdict {
        verdict(
            &Reading {
                now: now_s * 1000,
                ..r
            },
            &T,
        )
    }

    #[test]
    fn a_connection_that_sends_no_request_is_closed_at_the_header_timeout() {
        let fresh = Reading::default();
        assert_eq!(at(9, fresh), Verdict::Keep(Duration::from_secs(1)));
        assert_eq!(
            at(1, fresh),
            Verdict::Keep(Duration::from_millis(2500)),
            "a tick at most"
        );
        assert_eq!(at(10, fresh), Verdict::Close("header_timeout"));
    }

    #[test]
    fn between_requests_the_idle_timeout_counts_from_the_last_response() {
        let idle = Reading {
            requests: 3,
            idle_since: 100_000,
            ..Reading::default()
        };
        assert_eq!(at(119, idle), Verdict::Keep(Duration::from_secs(1)));
        assert_eq!(at(120, idle), Verdict::Close("idle_timeout"));
    }

    #[test]
    fn a_request_in_flight_is_never_closed_for_idleness() {
        let busy = Reading {
            requests: 1,
            in_flight: 1,
            ..Reading::default()
        };
        assert_eq!(at(1000, busy), Verdict::Keep(T.header / 4));
    }

    #[test]
    fn a_client_that_takes_no_bytes_is_closed_at_the_send_timeout() {
        let stalled = Reading {
            requests: 1,
            in_flight: 1,
            waiting_client: 1,
            last_progress: 5_000,
            ..Reading::default()
        };
        assert_eq!(at(34, stalled), Verdict::Keep(Duration::from_secs(1)));
        assert_eq!(at(10, stalled), Verdict::Keep(Duration::from_millis(2500)));
        assert_eq!(at(35, stalled), Verdict::Close("send_timeout"));
    }
}
