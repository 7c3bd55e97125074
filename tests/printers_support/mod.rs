//! Helpers for the printer-driver tests: a collector actor standing in for the
//! JobCreator, and waiting on the events it received with a generous timeout that only
//! guards against a hang (no test asserts on how long anything took).

#![allow(dead_code)]

use std::time::Duration;

use actix::prelude::*;
use printfarmd::config::{PrinterConfig, Secret, Settings};
use printfarmd::domain::{PrinterId, PrinterType};
use printfarmd::printers::{PrinterEvent, PrinterStatus, Tuning};
use printfarmd_sim::SimPrinterInfo;
use tokio::sync::{mpsc, watch};

/// Longest wait for any one expected event. Only a failure guard: a passing run sees
/// each event within a second or two.
pub const GUARD: Duration = Duration::from_secs(30);

/// Stands in for the JobCreator: forwards every event to the test.
pub struct Collector {
    tx: mpsc::UnboundedSender<PrinterEvent>,
}

impl Actor for Collector {
    type Context = Context<Self>;
}

impl Handler<PrinterEvent> for Collector {
    type Result = ();
    fn handle(&mut self, ev: PrinterEvent, _: &mut Context<Self>) {
        let _ = self.tx.send(ev);
    }
}

pub struct Events {
    rx: mpsc::UnboundedReceiver<PrinterEvent>,
    /// Every status received so far, oldest first (for failure messages and checks).
    pub statuses: Vec<PrinterStatus>,
    /// Every `CertificateSeen` fingerprint, by printer.
    pub certificates: Vec<(PrinterId, String)>,
}

pub fn collector() -> (Recipient<PrinterEvent>, Events) {
    let (tx, rx) = mpsc::unbounded_channel();
    let addr = Collector { tx }.start();
    (
        addr.recipient(),
        Events {
            rx,
            statuses: Vec::new(),
            certificates: Vec::new(),
        },
    )
}

impl Events {
    /// The next event, or None when the guard runs out.
    pub async fn next(&mut self, guard: Duration) -> Option<PrinterEvent> {
        let ev = tokio::time::timeout(guard, self.rx.recv()).await.ok()??;
        match &ev {
            PrinterEvent::Status(s) => self.statuses.push((**s).clone()),
            PrinterEvent::CertificateSeen {
                printer_id,
                fingerprint_sha256_hex,
            } => self
                .certificates
                .push((printer_id.clone(), fingerprint_sha256_hex.clone())),
        }
        Some(ev)
    }

    /// Takes in every event already delivered, without waiting.
    pub fn drain_ready(&mut self) {
        while let Ok(ev) = self.rx.try_recv() {
            match ev {
                PrinterEvent::Status(s) => self.statuses.push(*s),
                PrinterEvent::CertificateSeen {
                    printer_id,
                    fingerprint_sha256_hex,
                } => self.certificates.push((printer_id, fingerprint_sha256_hex)),
            }
        }
    }

    /// Waits for a status of `id` that satisfies `pred`; panics with the statuses seen
    /// when none comes within the guard.
    pub async fn wait_for(
        &mut self,
        id: &str,
        what: &str,
        pred: impl Fn(&PrinterStatus) -> bool,
    ) -> PrinterStatus {
        let deadline = tokio::time::Instant::now() + GUARD;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Some(PrinterEvent::Status(s)) if s.printer_id.as_str() == id && pred(&s) => {
                    return *s;
                }
                Some(_) => {}
                None => panic!(
                    "no status of {id} with {what} within {GUARD:?}; last statuses:\n{}",
                    self.tail(id, 12)
                ),
            }
        }
    }

    /// Like `wait_for`, but an already received status counts too.
    pub async fn seen_or_wait(
        &mut self,
        id: &str,
        what: &str,
        pred: impl Fn(&PrinterStatus) -> bool,
    ) -> PrinterStatus {
        if let Some(s) = self.of(id).find(|s| pred(s)) {
            return s.clone();
        }
        self.wait_for(id, what, pred).await
    }

    /// The last `n` statuses of `id`, one a line.
    pub fn tail(&self, id: &str, n: usize) -> String {
        let mine: Vec<_> = self
            .statuses
            .iter()
            .filter(|s| s.printer_id.as_str() == id)
            .collect();
        mine[mine.len().saturating_sub(n)..]
            .iter()
            .map(|s| {
                format!(
                    "  {:?} {:?} file={:?} id={:?} progress={:?} first={} err={:?}",
                    s.connection,
                    s.state,
                    s.filename,
                    s.printer_job_id,
                    s.progress,
                    s.first_after_connect,
                    s.last_error
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Statuses of `id` received so far.
    pub fn of<'a>(&'a self, id: &'a str) -> impl Iterator<Item = &'a PrinterStatus> + 'a {
        self.statuses
            .iter()
            .filter(move |s| s.printer_id.as_str() == id)
    }
}

pub fn settings(interval: u64) -> (watch::Sender<Settings>, watch::Receiver<Settings>) {
    watch::channel(Settings {
        job_creation_auto_create: true,
        monitoring_interval: interval,
    })
}

/// Short reconnect delays so a reconnect test takes a moment; real timeouts otherwise.
pub fn fast() -> Tuning {
    Tuning {
        connect_timeout: Duration::from_secs(3),
        request_timeout: Duration::from_secs(2),
        backoff_min: Duration::from_millis(50),
        backoff_max: Duration::from_millis(400),
        stable_after: Duration::from_secs(60),
        auth_retry: Duration::from_millis(400),
        cert_retry: Duration::from_millis(400),
        keep_alive: Duration::from_secs(30),
        // Off: these tests count PrusaLink polls; the probe has its own e2e test.
        status_probe: None,
    }
}

/// The driver configuration of a simulated printer.
pub fn config_of(p: &SimPrinterInfo) -> PrinterConfig {
    PrinterConfig {
        id: PrinterId::new(p.id.clone()).unwrap(),
        kind: p.kind.parse::<PrinterType>().unwrap(),
        name: Some(p.name.clone()),
        host: p.host.clone(),
        port: Some(p.port),
        serial: p.serial.clone(),
        access_code: p.access_code.clone().map(Secret::new),
        username: p.username.clone(),
        password: p.password.clone().map(Secret::new),
        api_key: None,
    }
}

/// A config for a printer of `kind` at 127.0.0.1:`port` (for dead and silent printers).
pub fn config_at(id: &str, kind: PrinterType, port: u16) -> PrinterConfig {
    PrinterConfig {
        id: PrinterId::new(id).unwrap(),
        kind,
        name: None,
        host: "127.0.0.1".into(),
        port: Some(port),
        serial: Some("01S00C000000001".into()),
        access_code: Some(Secret::new("12345678")),
        username: Some("maker".into()),
        password: Some(Secret::new("secret-password")),
        api_key: None,
    }
}
