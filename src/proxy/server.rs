//! Listeners: accept connections, terminate TLS when asked, serve HTTP/1.1 and HTTP/2 (h2c
//! with prior knowledge on plain ports, ALPN on TLS) with hyper-util's auto builder, and
//! drain gracefully on shutdown.

use super::forward::ClientSide;
use super::handler::Proxy;
use crate::metrics::ListenerLabels;
use crate::tls::TlsConnection;
use hyper::rt::{Read, Write};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use prometheus_client::metrics::gauge::Gauge;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

/// How long a client may take to send request headers, and how long an idle keep-alive
/// connection is kept before that.
pub const CLIENT_HEADER_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest buffer per connection, which is also the largest request head accepted (431
/// beyond it). Small enough that streamed bodies move in chunks the allocator recycles.
pub const MAX_BUF: usize = 64 * 1024;
/// How long a TLS handshake may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

fn builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(CLIENT_HEADER_TIMEOUT)
        .max_buf_size(MAX_BUF)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(20));
    builder
}

/// A listening socket, as requests see it.
#[derive(Debug, Clone, Copy)]
pub struct Listener {
    /// `http` or `https`.
    pub proto: &'static str,
    pub port: u16,
}

/// What every connection of one listener shares.
#[derive(Clone)]
struct Listening {
    builder: auto::Builder<TokioExecutor>,
    proxy: Arc<Proxy>,
    info: Listener,
    /// The listener's open-connections gauge, looked up once rather than per connection.
    open: Gauge,
}

/// Serves `listener` until `stop` turns true, then lets open requests finish for up to `grace`.
/// With `tls`, every connection is a TLS connection.
pub async fn serve(
    listener: TcpListener,
    proxy: Arc<Proxy>,
    info: Listener,
    tls: Option<TlsAcceptor>,
    mut stop: watch::Receiver<bool>,
    grace: Duration,
) {
    let graceful = GracefulShutdown::new();
    let open = proxy
        .metrics()
        .client_connections
        .get_or_create(&ListenerLabels {
            protocol: info.proto,
        })
        .clone();
    let on = Listening {
        builder: builder(),
        proxy,
        info,
        open,
    };
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, client) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: wait a little rather than spin.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let watcher = graceful.watcher();
                match &tls {
                    None => connection(on.clone(), TokioIo::new(stream), client, None, watcher),
                    Some(acceptor) => {
                        let acceptor = acceptor.clone();
                        let on = on.clone();
                        tokio::spawn(async move {
                            let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                                Ok(Ok(s)) => s,
                                Ok(Err(e)) => return tracing::debug!(%client, error = %e, "TLS handshake failed"),
                                Err(_) => return tracing::debug!(%client, "TLS handshake timed out"),
                            };
                            let sni = stream.get_ref().1.server_name().map(str::to_owned);
                            let cert = on.proxy.shared().peek().certs.resolve(sni.as_deref()).cloned();
                            let conn = Arc::new(TlsConnection { sni, cert });
                            connection(on, TokioIo::new(stream), client, Some(conn), watcher);
                        });
                    }
                }
            }
            _ = async { stop.wait_for(|stop| *stop).await.is_ok() } => break,
        }
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => tracing::info!(port = info.port, "all connections closed"),
        _ = tokio::time::sleep(grace) => tracing::warn!(port = info.port, "shutdown grace ran out; closing the remaining connections"),
    }
}

/// Serves one client connection on its own task.
fn connection<I>(
    on: Listening,
    io: I,
    client: SocketAddr,
    tls: Option<Arc<TlsConnection>>,
    watcher: Watcher,
) where
    I: Read + Write + Unpin + Send + 'static,
{
    let Listening {
        builder,
        proxy,
        info,
        open,
    } = on;
    open.inc();
    let side = Arc::new(ClientSide::new(client, info.proto, info.port));
    let service = service_fn(move |req| {
        let proxy = proxy.clone();
        let tls = tls.clone();
        let side = side.clone();
        async move { Ok::<_, Infallible>(proxy.handle(req, &side, tls.as_deref()).await) }
    });
    let conn = builder
        .serve_connection_with_upgrades(io, service)
        .into_owned();
    let conn = watcher.watch(conn);
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(%client, error = %e, "client connection ended with an error");
        }
        open.dec();
    });
}
