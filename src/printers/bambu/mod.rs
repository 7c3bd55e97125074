//! The Bambu Lab driver: one MQTT-over-TLS session with the printer's own broker
//! (protocols.md §2), rebuilt from scratch after every failure.
//!
//! A session: connect (TCP nodelay, TLS with a pinned certificate, login `bblp` / access
//! code, all under one connect timeout) → on CONNACK subscribe `device/{serial}/report`
//! and ask for `pushall` → merge every report into [`state::BambuState`] and send the
//! status → `pushall` again every `monitoring_interval` (at most every [`PUSHALL_MIN_GAP`]) → the [`watchdog::Watchdog`]
//! reconnects a printer that went quiet. rumqttc's event loop runs in its own task and
//! hands events over a bounded channel, so no timer here can cancel it half-way through
//! writing a packet, and a slow status sink slows only this printer's reading.
//!
//! Between sessions: [`Backoff`] with jitter; refused credentials and a changed
//! certificate wait longer (nothing will change until a person acts).

pub mod errors;
mod pending;
pub mod state;
pub mod tls;
pub mod watchdog;

use std::sync::Arc;
use std::time::Duration;

use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, MqttOptions, NetworkOptions, Packet,
    QoS, StateError, SubscribeReasonCode, TlsConfiguration, Transport,
};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};

use crate::domain::{ConnectionState, PrinterStatus};
use crate::printers::PrinterEvent;
use crate::printers::backoff::Backoff;
use crate::printers::control::ControlCommand;
use crate::printers::driver::{self, AbortOnDrop, DriverCtx};
use crate::time;

use pending::Pending;
use state::{Applied, BambuState, ReportError};
use tls::SharedPin;
use watchdog::{Bark, Watchdog};

/// The Bambu LAN user name.
pub const USERNAME: &str = "bblp";
/// Largest report the driver parses. A full X1 report is about 40 KB; a megabyte leaves
/// room for printers with many AMS units and long HMS lists.
pub const MAX_REPORT_BYTES: usize = 1024 * 1024;
/// Largest MQTT packet accepted from the broker. Above `MAX_REPORT_BYTES`, so that an
/// oversized report is counted and skipped without dropping the session; a packet above
/// this one ends the session (rumqttc cannot skip it).
pub const MAX_PACKET_BYTES: usize = 2 * MAX_REPORT_BYTES;
/// Largest packet we send (`pushall` is tens of bytes).
pub const MAX_OUTGOING_BYTES: usize = 16 * 1024;
/// Events buffered between rumqttc's event loop and the session: a few reports'
/// worth. When full, the event loop stops reading, and TCP flow control holds the
/// printer back.
const EVENT_BUFFER: usize = 16;
/// Requests (subscribe, pushall) queued for the event loop.
const REQUEST_CAPACITY: usize = 8;
/// Outgoing QoS 1/2 publishes in flight: none are ever sent.
const INFLIGHT: u16 = 4;

pub const PUSHALL: &str = r#"{"pushing":{"sequence_id":"0","command":"pushall"}}"#;
/// Least time between periodic `pushall`s: a P1P lags if asked more often (protocols.md §2.3).
pub const PUSHALL_MIN_GAP: Duration = Duration::from_secs(300);
/// "Resume reporting", sent with a `pushall` by the watchdog (protocols.md §2.3).
pub const PUSHING_START: &str = r#"{"pushing":{"sequence_id":"0","command":"start"}}"#;

/// Words for an operator: the access code was refused.
pub const AUTH_FAILED_MESSAGE: &str = "the printer refused the access code; check the LAN access code on the printer's screen (Settings > Network on P1/A1, Settings > Network > LAN Only on X1) and update `access_code`";

/// The event the pump task sent, out of its box.
fn unbox<T>(ev: Option<Box<T>>) -> Option<T> {
    ev.map(|b| *b)
}

/// How long a new session may go without a full report before it is rebuilt (a
/// half-broken session answers nothing, protocols.md §2.9): three report intervals, and
/// at least ten seconds.
fn snapshot_wait(interval: Duration) -> Duration {
    (interval * watchdog::SILENT_INTERVALS).max(Duration::from_secs(10))
}

/// Why a session ended.
#[derive(Debug)]
enum End {
    /// Network trouble, a dropped session, a silent printer: retry with backoff.
    Lost(String),
    /// The broker refused our login.
    AuthFailed(String),
    /// The printer's certificate is not the pinned one.
    CertMismatch(String),
    /// Anything else that needs a person (the broker refused us for another reason).
    Error(String),
}

/// What woke the session loop.
enum Wake {
    Mqtt(Option<Result<Event, ConnectionError>>),
    Pushall,
    Watchdog,
    /// Connected for a while and data flows, but never a full report.
    NoSnapshot,
    Settings(bool),
    Command(Option<ControlCommand>),
}

/// Runs the driver until the task is aborted.
pub async fn run(mut ctx: DriverCtx, pins: SharedPin) {
    let mut backoff = Backoff::new(
        ctx.tuning.backoff_min,
        ctx.tuning.backoff_max,
        ctx.tuning.stable_after,
    );
    // Announce the printer (connection `connecting`, nothing known yet).
    ctx.reporter.emit().await;
    loop {
        let end = Session::new(&mut ctx, &pins, &mut backoff).run().await;
        let (conn, msg, floor) = match end {
            End::Lost(m) => (ConnectionState::Disconnected, m, Duration::ZERO),
            End::AuthFailed(m) => (ConnectionState::AuthFailed, m, ctx.tuning.auth_retry),
            End::CertMismatch(m) => (ConnectionState::Error, m, ctx.tuning.cert_retry),
            End::Error(m) => (ConnectionState::Error, m, ctx.tuning.auth_retry),
        };
        ctx.session_ended(conn, msg, floor, &mut backoff).await;
    }
}

struct Session<'a> {
    ctx: &'a mut DriverCtx,
    pins: &'a SharedPin,
    backoff: &'a mut Backoff,
    state: BambuState,
    report_topic: String,
    request_topic: String,
    /// Control commands sent and not yet acknowledged.
    pending: Pending,
}

impl<'a> Session<'a> {
    fn new(ctx: &'a mut DriverCtx, pins: &'a SharedPin, backoff: &'a mut Backoff) -> Self {
        let serial = ctx.cfg.serial.clone().unwrap_or_default();
        Self {
            ctx,
            pins,
            backoff,
            state: BambuState::new(),
            pending: Pending::default(),
            report_topic: format!("device/{serial}/report"),
            request_topic: format!("device/{serial}/request"),
        }
    }

    fn options(&self) -> Result<(MqttOptions, NetworkOptions), End> {
        let tls = tls::client_config(self.pins.clone())
            .map_err(|e| End::Error(format!("cannot set up TLS: {e}")))?;
        let cfg = &self.ctx.cfg;
        let client_id = format!("printfarmd-{:016x}", rand::random::<u64>());
        let mut opts = MqttOptions::new(client_id, cfg.host.clone(), cfg.port_or_default());
        let code = cfg
            .access_code
            .as_ref()
            .map(|c| c.expose().to_owned())
            .unwrap_or_default();
        opts.set_credentials(USERNAME, code)
            .set_keep_alive(self.ctx.tuning.keep_alive.max(Duration::from_secs(1)))
            .set_clean_session(true)
            .set_max_packet_size(MAX_PACKET_BYTES, MAX_OUTGOING_BYTES)
            .set_request_channel_capacity(REQUEST_CAPACITY)
            // Only QoS 0 requests go out (subscribe, pushall): rumqttc keeps a slot per
            // in-flight publish (default 100, ~10 KB per printer) that would stay empty.
            .set_inflight(INFLIGHT)
            .set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
                Arc::new(tls),
            )));
        let mut net = NetworkOptions::new();
        net.set_tcp_nodelay(true);
        net.set_connection_timeout(self.ctx.tuning.connect_timeout.as_secs().max(1));
        Ok((opts, net))
    }

    async fn run(mut self) -> End {
        let (opts, net) = match self.options() {
            Ok(o) => o,
            Err(e) => return e,
        };
        let (client, mut eventloop) = AsyncClient::new(opts, REQUEST_CAPACITY);
        eventloop.set_network_options(net);
        // rumqttc makes room for 100 queued events up front (`MqttState::new`, ~14 KB a
        // printer, the largest allocation of a Bambu session: BENCHMARKS.md, issue 21).
        // The pump takes each event as soon as it is queued; a read of up to ten
        // packets queues a few, and the queue grows to that and no further.
        eventloop.state.events = std::collections::VecDeque::new();
        tls::with(self.pins, |p| {
            p.candidate = None;
            p.mismatch = None;
        });
        let (tx, mut rx) = mpsc::channel(EVENT_BUFFER);
        let _pump = AbortOnDrop(tokio::spawn(async move {
            loop {
                let ev = eventloop.poll().await;
                let fatal = ev.is_err();
                // Boxed: tokio's channel allocates its slots 32 at a time, and an
                // unboxed event made that 4.9 KB a printer (7.8 MB at 1,600).
                if tx.send(Box::new(ev)).await.is_err() || fatal {
                    break;
                }
            }
        }));

        let mut connected = false;
        let mut connected_at = Instant::now();
        let mut snapshot_seen = false;
        let mut dog = Watchdog::new(Instant::now());
        let mut last_pushall = Instant::now();
        // A random share of the wait (`driver::request_phase`) spreads the farm's pushalls.
        let mut phase = 0.0;
        let mut settings_open = true;
        let mut commands_open = true;
        loop {
            let interval = self.ctx.interval();
            let next_pushall = last_pushall + interval.max(PUSHALL_MIN_GAP).mul_f64(1.0 + phase);
            let dog_at = dog.deadline(interval);
            let snapshot_due = connected_at + snapshot_wait(interval);
            let wake = tokio::select! {
                ev = rx.recv() => Wake::Mqtt(unbox(ev)),
                _ = sleep_until(next_pushall), if connected => Wake::Pushall,
                _ = sleep_until(dog_at), if connected => Wake::Watchdog,
                _ = sleep_until(snapshot_due), if connected && !snapshot_seen => Wake::NoSnapshot,
                r = self.ctx.settings.changed(), if settings_open => Wake::Settings(r.is_ok()),
                c = self.ctx.commands.recv(), if connected && commands_open => Wake::Command(c),
            };
            let now = Instant::now();
            match wake {
                Wake::Mqtt(None) => return End::Lost("the MQTT event loop ended".into()),
                Wake::Mqtt(Some(Err(e))) => return self.classify(e),
                Wake::Mqtt(Some(Ok(Event::Incoming(Packet::ConnAck(_))))) => {
                    connected = true;
                    connected_at = now;
                    snapshot_seen = false;
                    dog = Watchdog::new(now);
                    self.backoff.connected(now);
                    self.on_connected(&client).await;
                    last_pushall = now;
                    phase = driver::request_phase();
                }
                Wake::Mqtt(Some(Ok(Event::Incoming(Packet::Publish(p))))) => {
                    if p.topic != self.report_topic {
                        continue;
                    }
                    dog.data(now);
                    self.on_report(&p.payload, &mut snapshot_seen).await;
                }
                Wake::Mqtt(Some(Ok(Event::Incoming(Packet::SubAck(ack))))) => {
                    if ack
                        .return_codes
                        .iter()
                        .any(|c| matches!(c, SubscribeReasonCode::Failure))
                    {
                        tracing::warn!(topic = %self.report_topic, "the printer refused the report subscription");
                    }
                }
                Wake::Mqtt(Some(Ok(_))) => {}
                Wake::Pushall => {
                    self.publish(&client, PUSHALL);
                    last_pushall = now;
                    phase = 0.0;
                }
                Wake::Watchdog => match dog.fire(now, interval) {
                    Some(Bark::Nudge) => {
                        tracing::info!(
                            silent_s = dog.silent_for(now).as_secs(),
                            "printer silent; asking for a full report"
                        );
                        self.publish(&client, PUSHALL);
                        self.publish(&client, PUSHING_START);
                        last_pushall = now;
                    }
                    Some(Bark::Reconnect) if !snapshot_seen => {
                        return self.no_reports(dog.silent_for(now));
                    }
                    Some(Bark::Reconnect) => {
                        return End::Lost(format!(
                            "the printer sent nothing for {} s, even when asked; reconnecting",
                            dog.silent_for(now).as_secs()
                        ));
                    }
                    None => {}
                },
                Wake::NoSnapshot => {
                    return self.no_reports(now - connected_at);
                }
                Wake::Settings(open) => settings_open = open,
                Wake::Command(None) => commands_open = false,
                Wake::Command(Some(cmd)) => self.command(&client, cmd),
            }
        }
    }

    /// Why a session that never got a full report is dropped. Often a serial in the
    /// wrong case: the broker accepts any subscription, and the printer publishes
    /// nothing on it (protocols.md §7.1 quirk 13).
    fn no_reports(&self, after: Duration) -> End {
        let st = self.ctx.reporter.status();
        if st.connection == ConnectionState::Error
            && let Some(why) = &st.last_error
        {
            // Reports came, but none could be used (`Reporter::skipped` said why).
            return End::Error(why.clone());
        }
        End::Lost(format!(
            "connected, but no full report in {} s despite asking (pushall); check that `serial` is exactly the printer's serial (it is case-sensitive); reconnecting",
            after.as_secs()
        ))
    }

    /// CONNACK: the session is up. Pins a first-contact certificate, resets the state
    /// (the printer may have done anything while we were away), subscribes and asks for
    /// the full report.
    async fn on_connected(&mut self, client: &AsyncClient) {
        let seen = tls::with(self.pins, |p| {
            let c = p.candidate.take();
            if p.pin.is_none() {
                p.pin = c.clone();
            }
            c
        });
        if let Some(fp) = seen {
            tracing::info!(fingerprint = %fp, "pinning the printer's certificate (first contact)");
            let printer_id = self.ctx.cfg.id.clone();
            self.ctx
                .reporter
                .send(PrinterEvent::CertificateSeen {
                    printer_id,
                    fingerprint_sha256_hex: fp,
                })
                .await;
        }
        self.state.reset();
        let st = self.ctx.reporter.status_mut();
        *st = PrinterStatus::unknown(st.printer_id.clone(), st.printer_type, time::now());
        tracing::info!("printer connected");
        self.ctx
            .reporter
            .set_connection(ConnectionState::Connected, None)
            .await;
        if let Err(e) = client.try_subscribe(self.report_topic.clone(), QoS::AtMostOnce) {
            tracing::warn!(error = %e, "could not queue the report subscription");
        }
        self.publish(client, PUSHALL);
    }

    async fn on_report(&mut self, payload: &[u8], snapshot_seen: &mut bool) {
        match self.state.apply_bytes(payload, MAX_REPORT_BYTES) {
            Ok(Applied::Status) => {
                let st = self.ctx.reporter.status_mut();
                st.last_seen = Some(time::now());
                if !self.state.is_complete() {
                    return;
                }
                if st.connection == ConnectionState::Error {
                    // Only unusable reports before this one (`Reporter::skipped`).
                    st.connection = ConnectionState::Connected;
                    st.last_error = None;
                }
                self.state.fill(st);
                st.first_after_connect = !*snapshot_seen;
                *snapshot_seen = true;
                self.ctx.reporter.emit().await;
                self.ctx.reporter.status_mut().first_after_connect = false;
            }
            Ok(Applied::Other) => {
                self.ctx.reporter.status_mut().last_seen = Some(time::now());
                self.pending.acknowledged(payload);
            }
            Err(e) => {
                // Counted and logged; while no report of this session could be used,
                // the printer shows `error` with the reason.
                self.ctx
                    .reporter
                    .skipped(&e.to_string(), payload, !*snapshot_seen)
                    .await
            }
        }
    }

    /// Sends a control command (`pending.rs`).
    fn command(&mut self, client: &AsyncClient, cmd: ControlCommand) {
        self.pending.send(client, &self.request_topic, cmd);
    }

    fn publish(&self, client: &AsyncClient, payload: &'static str) {
        if let Err(e) = client.try_publish(
            self.request_topic.clone(),
            QoS::AtMostOnce,
            false,
            payload.as_bytes(),
        ) {
            tracing::debug!(error = %e, "request not queued (event loop busy)");
        }
    }

    /// Turns an event-loop error into why the session ended, in words for a person.
    fn classify(&mut self, e: ConnectionError) -> End {
        let cfg = &self.ctx.cfg;
        let addr = format!("{}:{}", cfg.host, cfg.port_or_default());
        if let Some(seen) = tls::with(self.pins, |p| p.mismatch.take()) {
            let pinned = tls::with(self.pins, |p| p.pin.clone()).unwrap_or_default();
            return End::CertMismatch(format!(
                "the printer at {addr} presented a different TLS certificate (sha256 {}…) than the one pinned on first contact (sha256 {}…); if the printer was replaced or reset, trust the new certificate with `printfarmd pin reset {}`",
                tls::short(&seen),
                tls::short(&pinned),
                cfg.id
            ));
        }
        match e {
            ConnectionError::ConnectionRefused(
                ConnectReturnCode::BadUserNamePassword | ConnectReturnCode::NotAuthorized,
            ) => End::AuthFailed(AUTH_FAILED_MESSAGE.into()),
            ConnectionError::ConnectionRefused(code) => End::Error(format!(
                "the printer's MQTT broker at {addr} refused the connection ({code:?})"
            )),
            ConnectionError::NetworkTimeout => End::Lost(format!(
                "no answer from {addr} within {} s (is the printer on, and in LAN mode?)",
                self.ctx.tuning.connect_timeout.as_secs().max(1)
            )),
            ConnectionError::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
                End::Lost(format!(
                    "connection refused at {addr} (is the printer on, and in LAN mode?)"
                ))
            }
            ConnectionError::MqttState(StateError::Deserialization(
                rumqttc::Error::PayloadSizeLimitExceeded(n),
            )) => {
                let err = ReportError::TooLarge {
                    size: n,
                    limit: MAX_PACKET_BYTES,
                };
                self.ctx.reporter.count_skipped(&err.to_string(), b"");
                End::Lost(format!(
                    "the printer sent a {n}-byte message, over the {MAX_PACKET_BYTES}-byte limit; reconnecting"
                ))
            }
            ConnectionError::MqttState(StateError::ConnectionAborted) => {
                End::Lost(format!("the printer at {addr} closed the connection"))
            }
            other => End::Lost(format!("connection to {addr} failed: {other}")),
        }
    }
}
