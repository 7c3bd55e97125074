//! The serve loop every simulated HTTP printer shares (PrusaLink, OctoPrint, Moonraker):
//! serve until the printer is rebooted or told to drop its connections, stay unreachable
//! while a reboot lasts, listen again on the same address, and stop on shutdown.
//!
//! Each printer says how it closes its push connections and what coming back online
//! means to its model (`SimHttpPrinter`); the loop itself is written once. The send log
//! the OctoPrint and Moonraker printers keep for the load harness is here too.

use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::Instant;

/// Send times kept per printer (the most recent): over two minutes of statuses at two
/// a second, while the load harness reads the log every 10 s.
pub const SENT_LOG_CAPACITY: usize = 256;

/// When a printer's recent status answers and pushes went out, unix ms, oldest first
/// (`GET /printers/{id}/sent`): what the load harness times the daemon's statuses
/// against.
#[derive(Debug, Default)]
pub struct SentLog(Mutex<VecDeque<u64>>);

impl SentLog {
    /// A status went out now.
    pub fn record(&self) {
        let mut q = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if q.len() == SENT_LOG_CAPACITY {
            q.pop_front();
        }
        q.push_back(crate::unix_ms());
    }

    pub fn snapshot(&self) -> Vec<u64> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .copied()
            .collect()
    }
}

/// How long to wait before listening again when the address is still taken after a reboot.
const REBIND_PAUSE: Duration = Duration::from_millis(500);

/// What the loop needs of a simulated HTTP printer.
pub(crate) trait SimHttpPrinter: Send + Sync + 'static {
    fn printer_id(&self) -> &str;
    fn listen_addr(&self) -> SocketAddr;
    /// Resolves when every connection must close (a reboot or `disconnect`). Boxed in
    /// each printer's impl: a `Notified` borrowed through a generic trait method is not
    /// provably `Send` to `tokio::spawn`.
    fn restarted(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
    /// Closes the push connections (WebSockets) that a graceful stop would wait for.
    fn close_push_connections(&self) {}
    /// While rebooting: when the printer is reachable again.
    fn offline_until(&self) -> Option<Instant>;
    /// The reboot is over: the printer answers again.
    fn back_online(&self);
}

/// The stop signal handed to one run of the server.
pub(crate) type Stop = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One run of a printer's server, boxed where it is made (a concrete type, so the
/// compiler sees it is `Send` there rather than through this module's generics).
pub(crate) type Run = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Serves `printer` until `shutdown`: `serve_once` runs the server on a listener until
/// the stop it is given resolves.
pub(crate) async fn serve<P, S>(
    printer: Arc<P>,
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
    serve_once: S,
) where
    P: SimHttpPrinter,
    S: Fn(TcpListener, Stop) -> Run,
{
    let mut listener = Some(listener);
    loop {
        let l = match listener.take() {
            Some(l) => l,
            None => loop {
                match TcpListener::bind(printer.listen_addr()).await {
                    Ok(l) => break l,
                    Err(e) => {
                        tracing::warn!(printer_id = %printer.printer_id(), addr = %printer.listen_addr(), error = %e, "cannot listen again after a reboot; retrying");
                        tokio::select! {
                            _ = tokio::time::sleep(REBIND_PAUSE) => {}
                            _ = shutdown.changed() => return,
                        }
                    }
                }
            },
        };
        let stop: Stop = {
            let me = Arc::clone(&printer);
            let mut shutdown = shutdown.clone();
            Box::pin(async move {
                tokio::select! {
                    _ = me.restarted() => {}
                    _ = shutdown.changed() => {}
                }
                me.close_push_connections();
            })
        };
        serve_once(l, stop).await;
        if *shutdown.borrow() {
            return;
        }
        if let Some(t) = printer.offline_until() {
            tokio::select! {
                _ = tokio::time::sleep_until(t) => {}
                _ = shutdown.changed() => return,
            }
        }
        printer.back_online();
    }
}
