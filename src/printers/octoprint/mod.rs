//! The OctoPrint driver (protocols.md §4): REST polling plus the push socket.
//!
//! A session: `GET /api/version` (is it OctoPrint, does it take our key?) → a passive
//! login and the raw WebSocket of the push API (`/sockjs/websocket`), which says within a
//! second when a print starts, pauses or ends (`PrintStarted`, `PrintDone`, …) → every
//! `monitoring_interval` (read live) `GET /api/job` and `/api/printer` as the full status,
//! which also carries a session whose socket could not be opened (a proxy that blocks
//! WebSockets, an old server). A socket that closes is reopened at the next poll; a poll
//! that gets no answer ends the session and the next one starts after the backoff.
//!
//! A status goes to the sink after every poll, and after a socket message when the state,
//! file or error changed or a second passed (OctoPrint sends `current` twice a second).
//!
//! While the socket speaks (a message within `SOCKET_FRESH`), it alone says what the
//! printer is doing and a poll answer gives only temperatures: the driver does not read
//! the socket while it waits for a poll, so messages queued meanwhile, older or newer than
//! the answer, would otherwise be applied after it out of order — an old `current` or
//! `PrintDone` read after an answer that already showed the next print made a second job
//! for one print (found by the mixed-farm load run). A silent socket leaves the state to
//! the polls again.

pub mod client;
pub mod parse;
pub mod state;

use std::time::Duration;

use reqwest::StatusCode;
use tokio::time::{Instant, sleep_until};

use crate::printers::backoff::Backoff;

use crate::domain::{ConnectionState, PrinterState, PrinterStatus};
use crate::printers::driver::{self, DriverCtx};
use crate::time;

use client::{Client, HttpError, Socket};
use state::{OctoState, Push};

/// Least time between two statuses sent for socket messages that change only progress.
const PUSH_EMIT_EVERY: Duration = Duration::from_secs(1);

/// How recently the push socket must have spoken for it alone to carry the state.
/// OctoPrint sends `current` twice a second, so six missed messages mean it is not
/// speaking (a proxy holding it open, a server that stopped pushing).
const SOCKET_FRESH: Duration = Duration::from_secs(3);

enum End {
    Lost(String),
    AuthFailed(String),
    Error(String),
}

pub async fn run(mut ctx: DriverCtx) {
    let mut backoff = Backoff::new(
        ctx.tuning.backoff_min,
        ctx.tuning.backoff_max,
        ctx.tuning.stable_after,
    );
    let mut memory = OctoState::default();
    ctx.reporter.emit().await;
    loop {
        let end = session(&mut ctx, &mut backoff, &mut memory).await;
        let (conn, msg, floor) = match end {
            End::Lost(m) => (ConnectionState::Disconnected, m, Duration::ZERO),
            End::AuthFailed(m) => (ConnectionState::AuthFailed, m, ctx.tuning.auth_retry),
            End::Error(m) => (ConnectionState::Error, m, ctx.tuning.auth_retry),
        };
        ctx.session_ended(conn, msg, floor, &mut backoff).await;
    }
}

fn from_http(e: HttpError) -> End {
    match e {
        HttpError::Unreachable(m) | HttpError::BadAnswer(m) => End::Lost(m),
        HttpError::Unauthorized(m) => End::AuthFailed(m),
    }
}

/// What a status is compared on to decide whether a socket message is worth sending.
fn headline(s: &PrinterStatus) -> (PrinterState, Option<String>, Option<String>) {
    (s.state, s.filename.clone(), s.error.clone())
}

struct Session<'a> {
    ctx: &'a mut DriverCtx,
    memory: &'a mut OctoState,
    connected: bool,
    last_emit: Option<Instant>,
    /// When the push socket last delivered a message (None: no socket, or it was lost).
    socket_heard: Option<Instant>,
}

impl Session<'_> {
    /// Counted with every other driver's skipped payloads (shown in `bad_data`, on
    /// `/health` and `/metrics`), logged at most once a minute.
    fn skip(&mut self, why: &str, body: &[u8]) {
        self.ctx.reporter.count_skipped(why, body);
    }

    /// An answer or message the status could not come from: counted like `skip`, and
    /// while nothing of this session could be used the printer shows `error` with the
    /// reason (a server that says it is OctoPrint and answers nothing usable), not
    /// `connecting` for ever.
    async fn unusable(&mut self, why: &str, body: &[u8]) {
        let nothing_yet = !self.connected;
        self.ctx.reporter.skipped(why, body, nothing_yet).await;
    }

    /// Fills the status from memory and sends it (always when `force`).
    async fn emit(&mut self, force: bool) {
        let before = headline(self.ctx.reporter.status());
        let previous = self.ctx.reporter.status().clone();
        let st = self.ctx.reporter.status_mut();
        self.memory.fill(st);
        st.last_seen = Some(time::now());
        st.first_after_connect = !self.connected;
        if !self.connected {
            st.connection = ConnectionState::Connected;
            st.last_error = None;
        }
        let due = self
            .last_emit
            .is_none_or(|t| t.elapsed() >= PUSH_EMIT_EVERY);
        if force || !self.connected || due || headline(st) != before {
            if !self.connected {
                tracing::info!("printer connected");
            }
            if self.connected && !active(previous.state) && active(st.state) {
                // A print starts where the last one's end (or idle) was sent once: send
                // that once more first. Without a job id the lifecycle tells a reprint of
                // the same file from a stale report of the old print by an end or idle
                // state seen after the old job was closed (design.md §2 rule 3), and a
                // push socket can start the next print within a second of the last end.
                let new = std::mem::replace(self.ctx.reporter.status_mut(), previous);
                self.ctx.reporter.emit().await;
                *self.ctx.reporter.status_mut() = new;
            }
            self.connected = true;
            self.ctx.reporter.emit().await;
            self.ctx.reporter.status_mut().first_after_connect = false;
            self.last_emit = Some(Instant::now());
        }
    }

    /// One REST poll: `/api/job`, and `/api/printer` for temperatures (409 while
    /// OctoPrint has no printer connection: quirk 7.3.1).
    async fn poll(&mut self, client: &Client) -> Result<(), HttpError> {
        let job = client.get("/api/job").await?;
        if job.status != StatusCode::OK {
            self.unusable(&format!("GET /api/job answered {}", job.status), &job.body)
                .await;
            return Ok(());
        }
        let mut snap = match state::parse_job(&job.body) {
            Ok(s) => s,
            Err(e) => {
                self.unusable(&format!("GET /api/job: {e}"), &job.body)
                    .await;
                return Ok(());
            }
        };
        let printer = client.get("/api/printer?exclude=sd").await?;
        if printer.status == StatusCode::OK {
            match state::parse_printer(&printer.body) {
                Ok(t) => snap.temperatures = Some(t),
                Err(e) => self.skip(&format!("GET /api/printer: {e}"), &printer.body),
            }
        }
        let socket_speaks = self
            .socket_heard
            .is_some_and(|t| t.elapsed() < SOCKET_FRESH);
        if socket_speaks {
            if let Some(t) = snap.temperatures {
                self.memory.apply_temperatures(t);
            }
        } else {
            self.memory.apply_poll(snap, Instant::now());
        }
        self.emit(true).await;
        Ok(())
    }

    /// Handles one socket message; false when the socket must be opened again (the
    /// session behind its `auth` expired).
    async fn push(&mut self, body: &[u8]) -> bool {
        self.socket_heard = Some(Instant::now());
        match state::parse_push(body) {
            Ok(Push::Current(snap)) => {
                if self.memory.apply_push(snap, Instant::now()) {
                    self.emit(false).await;
                }
            }
            Ok(Push::Event(e)) => {
                tracing::debug!(event = ?e, "OctoPrint event");
                self.memory.apply_event(e, Instant::now());
                self.emit(false).await;
            }
            Ok(Push::ReauthRequired) => {
                tracing::info!("OctoPrint asks the push socket to log in again");
                return false;
            }
            Ok(Push::Other) => {}
            Err(e) => self.unusable(&format!("push socket: {e}"), body).await,
        }
        true
    }
}

async fn next_message(socket: &mut Option<Socket>) -> Result<Vec<u8>, String> {
    match socket.as_mut() {
        Some(ws) => client::next_text(ws).await,
        None => std::future::pending().await,
    }
}

async fn open_socket(client: &Client) -> Option<Socket> {
    match client.open_socket().await {
        Ok(ws) => Some(ws),
        Err(e) => {
            tracing::info!(error = %e, "no push socket; following the printer by polling only");
            None
        }
    }
}

async fn session(ctx: &mut DriverCtx, backoff: &mut Backoff, memory: &mut OctoState) -> End {
    let client = match Client::new(
        &ctx.cfg,
        ctx.tuning.connect_timeout,
        ctx.tuning.request_timeout,
    ) {
        Ok(c) => c,
        Err(e) => return End::Error(e.to_string()),
    };
    let started = Instant::now();
    match client.get("/api/version").await {
        Ok(a) if a.status == StatusCode::OK => {
            let v: serde_json::Value = serde_json::from_slice(&a.body).unwrap_or_default();
            let text = v["text"].as_str().unwrap_or("");
            if !text.starts_with("OctoPrint") {
                // PrusaLink and firmware emulations answer this path too (quirk 7.3.6).
                return End::Error(format!(
                    "{} answered /api/version but is not OctoPrint; check `type` and `port` of this printer",
                    client.base()
                ));
            }
            tracing::debug!(server = %v["server"], "OctoPrint version");
        }
        Ok(a) => {
            return End::Error(format!(
                "{} answered {} to /api/version; is this an OctoPrint server?",
                client.base(),
                a.status
            ));
        }
        Err(e) => return from_http(e),
    }
    let mut socket = match client.open_socket().await {
        Ok(ws) => Some(ws),
        Err(HttpError::Unauthorized(m)) => return End::AuthFailed(m),
        Err(e) => {
            tracing::info!(error = %e, "no push socket; following the printer by polling only");
            None
        }
    };
    let mut s = Session {
        ctx,
        memory,
        connected: false,
        last_emit: None,
        socket_heard: None,
    };
    let mut settings_open = true;
    let mut phase = 0.0;
    let mut poll_started = started;
    let mut first = true;
    loop {
        let next = if first {
            Instant::now()
        } else {
            poll_started + s.ctx.interval().mul_f64(1.0 + phase)
        };
        tokio::select! {
            _ = sleep_until(next) => {
                poll_started = Instant::now();
                if let Err(e) = s.poll(&client).await {
                    return from_http(e);
                }
                if first {
                    backoff.connected(started);
                    first = false;
                    // Later polls fall at a random point of the interval
                    // (`driver::request_phase`); the socket carries the changes.
                    phase = driver::request_phase();
                } else {
                    phase = 0.0;
                }
                if socket.is_none() {
                    socket = open_socket(&client).await;
                }
            }
            m = next_message(&mut socket) => match m {
                Ok(body) => {
                    if !s.push(&body).await {
                        socket = open_socket(&client).await;
                        s.socket_heard = None;
                    }
                }
                Err(why) => {
                    tracing::info!(reason = %why, "push socket lost; reopening it at the next poll");
                    socket = None;
                    s.socket_heard = None;
                }
            },
            r = s.ctx.settings.changed(), if settings_open => settings_open = r.is_ok(),
        }
    }
}

fn active(s: PrinterState) -> bool {
    matches!(
        s,
        PrinterState::Preparing | PrinterState::Printing | PrinterState::Paused
    )
}
