//! The HTTP server's accept loop: bounded connections with timeouts.
//!
//! `warp::serve` offers no connection limits and no timeouts (warp 0.4 builds hyper's
//! connection without a timer): 2,000 connections that never sent a byte, or sent one
//! request and went idle, stayed open for ever and the daemon's file descriptors grew
//! without bound. So connections are accepted here and served with hyper-util's builder
//! around the warp filter (`warp::service`), as `warp::serve` does, plus:
//!
//! - a **header-read timeout** (`HEADER_READ_TIMEOUT`): a connection that does not send
//!   a whole request head in time is closed. hyper restarts this timer whenever a
//!   keep-alive connection waits for its next request, so it is also the **idle
//!   timeout**;
//! - a **cap on open connections** (`server.max_connections`, WebSockets included: the
//!   permit travels with the socket through the upgrade). At the cap the loop stops
//!   accepting until a connection closes, so new connections wait in the listen backlog
//!   while the open ones keep working, and a line is logged at most once a minute;
//! - TCP_NODELAY on every connection, and graceful shutdown (stop accepting, let open
//!   requests finish).
//!
//! Connections are served with hyper's HTTP/1 builder directly: hyper-util's `auto`
//! builder first waits for bytes to tell HTTP/1 from HTTP/2 when upgrades are allowed,
//! and that wait has no timeout (a connection that never sent a byte stayed open).
//!
//! warp's `addr::remote()` filter sees no address under this server (its extension type
//! is private to warp), so each request carries the peer's address as [`PeerAddr`] in its
//! extensions instead (`warp::ext::optional::<PeerAddr>()`; the access gate's throttle
//! counts wrong keys per address with it).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use warp::{Filter, Reply};

/// How long a client has to send a request's head, on a new connection and between
/// requests on a keep-alive one. Any real client sends its head at once; a browser
/// re-opens an idle connection it finds closed.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Least time between two "connection limit reached" log lines: a flood must not
/// become a flood of log lines.
const LIMIT_LOG_INTERVAL: Duration = Duration::from_secs(60);
/// Pause after an accept error that is not the peer's (out of file descriptors): the
/// loop must not spin while nothing can be accepted.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_secs(1);

/// Serves `filter` on `listener` until `shutdown` resolves, then stops accepting and
/// waits for open HTTP requests (the caller bounds that wait).
/// The address of the client a request came from, in the request's extensions.
#[derive(Clone, Copy, Debug)]
pub struct PeerAddr(pub std::net::SocketAddr);

pub async fn serve<F, R>(
    listener: TcpListener,
    filter: F,
    max_connections: usize,
    shutdown: impl Future<Output = ()>,
) where
    F: Filter<Extract = (R,), Error = Infallible> + Clone + Send + Sync + 'static,
    R: Reply,
{
    let permits = Arc::new(Semaphore::new(max_connections));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut last_limit_log: Option<Instant> = None;
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = match permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                if last_limit_log.is_none_or(|t| t.elapsed() >= LIMIT_LOG_INTERVAL) {
                    last_limit_log = Some(Instant::now());
                    tracing::warn!(
                        max_connections,
                        "HTTP connection limit reached: new connections wait until an open one closes \
                         (raise server.max_connections if this farm needs more clients)"
                    );
                }
                tokio::select! {
                    p = permits.clone().acquire_owned() => match p {
                        Ok(p) => p,
                        Err(_) => break,
                    },
                    _ = &mut shutdown => break,
                }
            }
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(s) => s,
                Err(e) => {
                    if !is_peer_error(&e) {
                        tracing::error!(error = %e, "cannot accept HTTP connections; retrying in a second");
                        tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    }
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        // Accepted sockets inherit it from the listener on Linux; set it anyway.
        let (stream, peer) = stream;
        let _ = stream.set_nodelay(true);
        let io = TokioIo::new(Counted {
            io: stream,
            _permit: permit,
        });
        let inner = TowerToHyperService::new(warp::service(filter.clone()));
        let svc =
            hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(PeerAddr(peer));
                hyper::service::Service::call(&inner, req)
            });
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(io, svc)
                .with_upgrades();
            let mut conn = std::pin::pin!(conn);
            let stopping = async {
                let _ = stop.wait_for(|stop| *stop).await;
            };
            let ended = tokio::select! {
                r = conn.as_mut() => Some(r),
                _ = stopping => None,
            };
            let ended = match ended {
                Some(r) => r,
                None => {
                    // Finish the request in flight, then close.
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = ended {
                tracing::debug!(error = %e, "HTTP connection ended with an error");
            }
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // Every connection gone (each holds a permit until its socket closes; WebSockets are
    // closed by the caller). The caller bounds this wait.
    let _ = permits.acquire_many(max_connections as u32).await;
}

fn is_peer_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    )
}

/// A connection that holds its place under the cap for as long as the socket lives
/// (also after an upgrade to WebSocket, which keeps the socket).
struct Counted {
    io: TcpStream,
    _permit: OwnedSemaphorePermit,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}
