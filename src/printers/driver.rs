//! What every driver shares: its tuning (timeouts, backoff), the settings it reads live,
//! and the `Reporter` that holds the printer's current [`PrinterStatus`] and sends it to
//! the sink (the JobCreator) whenever it changes.
//!
//! Drivers run as plain tokio tasks on the worker threads (design.md §1); they reach the
//! sink through its `Recipient`: a status is queued in the sink's mailbox, and a driver
//! waits only while that mailbox is full, so a burst of reports is paced by the consumer
//! instead of piling up unbounded.
//!
//! The Reporter is also where every driver's status passes the printer-value boundary
//! check (`sanitize.rs`) and where what a printer sends that cannot be used is counted,
//! logged at most once a minute, and shown (`bad_data` on the status; a printer none of
//! whose answers could be used shows `connection: "error"` and says why).

use std::time::Duration;

use actix::Recipient;
use actix::prelude::SendError;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, sleep};

use crate::config::{PrinterConfig, Settings};
use crate::domain::{BadData, ConnectionState, PrinterStatus};
use crate::printers::PrinterEvent;
use crate::printers::backoff::Backoff;
use crate::printers::bad_payloads::{BadPayloads, EXCERPT_CHARS, excerpt};
use crate::printers::control::ControlCommand;
use crate::printers::sanitize;
use crate::time;

/// While a printer sends unusable payloads between good ones, its status (and so its
/// `bad_data` counts) is re-sent at most this often: often enough for a dashboard to see
/// the count move, rarely enough that a printer sending garbage ten times a second does
/// not make ten statuses a second.
pub const SKIPPED_STATUS_EVERY: Duration = Duration::from_secs(1);

/// Longest reason quoted in `last_error` when every answer was unusable (a parser's
/// message may quote the printer's data).
pub const REASON_CHARS: usize = 2 * EXCERPT_CHARS;

/// Timeouts and reconnect pacing. `Default` is what the daemon uses; tests shorten the
/// backoff so that a reconnect takes a moment instead of a second or more.
#[derive(Clone, Debug)]
pub struct Tuning {
    /// TCP connect + TLS handshake + MQTT CONNACK, or one HTTP connect.
    pub connect_timeout: Duration,
    /// One HTTP request, answer included.
    pub request_timeout: Duration,
    /// First reconnect delay; doubles on every failure.
    pub backoff_min: Duration,
    /// Longest reconnect delay (the "cool-off" of a printer that stays down).
    pub backoff_max: Duration,
    /// A connection up this long resets the backoff.
    pub stable_after: Duration,
    /// Least delay before trying again after the printer refused our credentials: the
    /// code will not fix itself, and printers lock out clients that guess too often.
    pub auth_retry: Duration,
    /// Least delay before trying again after a printer presented an unexpected
    /// certificate.
    pub cert_retry: Duration,
    /// MQTT keep-alive.
    pub keep_alive: Duration,
    /// PrusaLink's fast status probe between polls (`monitoring.status_probe_s`); `None`
    /// is off.
    pub status_probe: Option<Duration>,
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            // A printer on the LAN answers in milliseconds; ten seconds covers a busy
            // Wi-Fi printer without letting a dead one hold a connection attempt long.
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            stable_after: Duration::from_secs(60),
            auth_retry: Duration::from_secs(60),
            cert_retry: Duration::from_secs(300),
            keep_alive: Duration::from_secs(30),
            status_probe: Some(Duration::from_secs(crate::config::DEFAULT_STATUS_PROBE_S)),
        }
    }
}

/// Everything a driver task is given.
pub struct DriverCtx {
    pub cfg: PrinterConfig,
    pub settings: watch::Receiver<Settings>,
    pub tuning: Tuning,
    pub reporter: Reporter,
    /// Control commands from the API (the actor holds the sender).
    pub commands: mpsc::Receiver<ControlCommand>,
}

impl DriverCtx {
    /// `monitoring_interval`, as it is now.
    pub fn interval(&self) -> Duration {
        interval_of(&self.settings.borrow())
    }

    pub fn jitter(&self) -> f64 {
        rand::random::<f64>()
    }

    /// A session ended: report the connection state and why (logged only when it
    /// changed), then wait out the backoff — at least `floor` — before the next try.
    pub async fn session_ended(
        &mut self,
        conn: ConnectionState,
        msg: String,
        floor: Duration,
        backoff: &mut Backoff,
    ) {
        let before = self.reporter.status();
        if before.connection != conn || before.last_error.as_deref() != Some(msg.as_str()) {
            match conn {
                ConnectionState::Disconnected => {
                    tracing::info!(reason = %msg, "printer disconnected")
                }
                _ => tracing::warn!(reason = %msg, state = ?conn, "printer unreachable"),
            }
        }
        self.reporter.set_connection(conn, Some(msg)).await;
        let delay = backoff.failed(Instant::now(), self.jitter(), floor);
        tracing::debug!(?delay, "reconnecting after delay");
        sleep(delay).await;
    }
}

pub fn interval_of(s: &Settings) -> Duration {
    Duration::from_secs(s.monitoring_interval.max(1))
}

/// The printer's current status and the sink it goes to.
pub struct Reporter {
    status: PrinterStatus,
    sink: Recipient<PrinterEvent>,
    /// Payloads skipped whole, for counting and rate-limited logging.
    skipped: BadPayloads,
    /// Statuses with values dropped or cut by the boundary check.
    values: BadPayloads,
    bad_values: u64,
    last_skip_status: Option<Instant>,
}

impl Reporter {
    pub fn new(cfg: &PrinterConfig, sink: Recipient<PrinterEvent>) -> Self {
        Self {
            status: PrinterStatus::unknown(cfg.id.clone(), cfg.kind, time::now()),
            sink,
            skipped: BadPayloads::new(cfg.kind),
            values: BadPayloads::default(),
            bad_values: 0,
            last_skip_status: None,
        }
    }

    /// What was refused from this printer since the driver started.
    pub fn bad_data(&self) -> BadData {
        BadData {
            skipped_payloads: self.skipped.total(),
            bad_values: self.bad_values,
        }
    }

    /// Counts a payload the driver could not use and logs it (at most once a minute).
    /// For paths that cannot wait; [`Reporter::skipped`] also shows it.
    pub fn count_skipped(&mut self, why: &str, payload: &[u8]) {
        if let Some(n) = self.skipped.record(Instant::now()) {
            tracing::warn!(
                error = %sanitize::cap_text(why, REASON_CHARS).as_deref().unwrap_or(why),
                skipped_since_last_log = n,
                skipped_total = self.skipped.total(),
                payload = %excerpt(payload),
                "skipping a printer answer the driver cannot use"
            );
        }
    }

    /// A payload the driver could not use: counted, logged at most once a minute, and
    /// shown. `nothing_usable_yet`: no answer of this session could be used, so the
    /// printer shows `connection: "error"` with the reason, not `connecting`.
    pub async fn skipped(&mut self, why: &str, payload: &[u8], nothing_usable_yet: bool) {
        self.count_skipped(why, payload);
        if nothing_usable_yet {
            let why = sanitize::cap_text(why, REASON_CHARS).unwrap_or_else(|| why.to_owned());
            let msg = format!(
                "the printer answers, but nothing it sent could be used ({why}); check that host and port are this {} printer's and that its firmware is current",
                self.status.printer_type
            );
            if self.status.connection != ConnectionState::Error
                || self.status.last_error.as_deref() != Some(msg.as_str())
            {
                tracing::warn!(reason = %msg, "printer unusable");
                self.set_connection(ConnectionState::Error, Some(msg)).await;
                return;
            }
        }
        let now = Instant::now();
        if self
            .last_skip_status
            .is_none_or(|t| now.saturating_duration_since(t) >= SKIPPED_STATUS_EVERY)
        {
            self.last_skip_status = Some(now);
            self.emit().await;
        }
    }

    pub fn status(&self) -> &PrinterStatus {
        &self.status
    }

    pub fn status_mut(&mut self) -> &mut PrinterStatus {
        &mut self.status
    }

    /// Changes the connection state and the reason; sends a status if either changed.
    pub async fn set_connection(&mut self, c: ConnectionState, last_error: Option<String>) {
        if self.status.connection == c && self.status.last_error == last_error {
            return;
        }
        self.status.connection = c;
        self.status.last_error = last_error;
        self.status.first_after_connect = false;
        self.emit().await;
    }

    /// Sends the current status, stamped now, after the boundary check: every value
    /// the printer supplied is checked here, whichever driver filled it in.
    pub async fn emit(&mut self) {
        let now = time::now();
        self.status.observed_at = now;
        let checked = sanitize::check(&mut self.status, now);
        if !checked.is_clean() {
            self.bad_values = self.bad_values.saturating_add(checked.count());
            if let Some(n) = self.values.record(Instant::now()) {
                tracing::warn!(
                    values = %checked.describe(),
                    statuses_since_last_log = n,
                    bad_values_total = self.bad_values,
                    "printer values out of range; not used"
                );
            }
        }
        self.status.bad_data = self.bad_data();
        let ev = PrinterEvent::Status(Box::new(self.status.clone()));
        self.send(ev).await;
    }

    /// Queues `ev` for the sink; waits only while the sink's mailbox is full. (Waiting
    /// for every status to be handled cost a wake-up of this task per status.)
    pub async fn send(&self, ev: PrinterEvent) {
        let sent = match self.sink.try_send(ev) {
            Err(SendError::Full(ev)) => self.sink.send(ev).await.map_err(|_| ()),
            r => r.map_err(|_| ()),
        };
        if sent.is_err() {
            tracing::debug!(printer_id = %self.status.printer_id, "status sink is gone; event dropped");
        }
    }
}

/// Where in each `monitoring_interval` a printer's periodic request (a PrusaLink poll,
/// a Bambu `pushall`) falls, as a share of the interval: random, once per connection.
/// A farm's drivers start together (the daemon starting, a network coming back); on a
/// common clock every printer was asked at the same moment, and its answers came back as
/// one burst of statuses each interval (400 PrusaLink polls and 1,600 full Bambu reports
/// within ~200 ms every 2 s at 2,000 printers: the report-to-WebSocket p99).
pub fn request_phase() -> f64 {
    rand::random::<f64>()
}

/// Aborts a spawned task when dropped, so that a driver task that is aborted (Stop, a
/// supervisor restart) takes its helpers with it.
pub struct AbortOnDrop<T>(pub tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
