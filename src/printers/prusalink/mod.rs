//! The PrusaLink driver: polls one printer's HTTP API (protocols.md §3).
//!
//! A session: `GET /api/version` (is it there, does it take our credentials?) → every
//! `monitoring_interval` (read live; a change applies to the next wait) `GET
//! /api/v1/status`, plus `GET /api/v1/job` when a print appears whose file name we do not
//! know yet (the printer's own web UI polls the same way, sparing the printer's MCU) →
//! one status per poll. A printer without the v1 API (404) is polled through the legacy
//! `/api/job` + `/api/printer` for the rest of the session.
//!
//! Between two polls, every `status_probe_s` (`[monitoring]`, default 5 s, 0 = off) a fast
//! probe reads `GET /api/v1/status` alone and compares the printer's state and job id
//! with the last poll's; a change (a print started, ended, paused) is polled at once, so
//! a start or an end shows within a few seconds whatever the interval. A probe that
//! sees no change emits nothing (issue 21).
//!
//! An answer that cannot be used is counted, logged at most once a minute and skipped;
//! the session goes on. A request that gets no answer ends the session; the next one
//! starts after the backoff. A 401 after a full Digest round is AuthFailed.

pub mod client;
pub mod state;

use std::time::Duration;

use reqwest::{Method, StatusCode};
use tokio::time::{Instant, sleep_until};

use crate::domain::{ConnectionState, PrinterStatus};
use crate::printers::backoff::Backoff;
use crate::printers::control::{ControlError, ControlKind};
use crate::printers::driver::{self, DriverCtx};
use crate::time;

use client::{Client, HttpError};
use state::{BodyError, JobInfo, Poll, PrusaState};

/// Why a session ended.
enum End {
    Lost(String),
    AuthFailed(String),
    Error(String),
}

/// Which API the printer speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Api {
    V1,
    Legacy,
}

/// What one poll gave.
enum Polled {
    Status(Poll),
    /// An answer that could not be used; the session goes on.
    Bad(String, Vec<u8>),
}

/// Runs the driver until the task is aborted.
pub async fn run(mut ctx: DriverCtx) {
    let mut backoff = Backoff::new(
        ctx.tuning.backoff_min,
        ctx.tuning.backoff_max,
        ctx.tuning.stable_after,
    );
    let mut memory = PrusaState::default();
    // Announce the printer (connection `connecting`, nothing known yet).
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

async fn session(ctx: &mut DriverCtx, backoff: &mut Backoff, memory: &mut PrusaState) -> End {
    let client = match Client::new(
        &ctx.cfg,
        ctx.tuning.connect_timeout,
        ctx.tuning.request_timeout,
    ) {
        Ok(c) => c,
        Err(e) => return End::Error(e.to_string()),
    };
    match client.get("/api/version").await {
        Ok(a) if a.status.is_success() => {
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&a.body) {
                tracing::debug!(api = %v["api"], text = %v["text"], "printer API version");
            }
        }
        Ok(a) => {
            return End::Error(format!(
                "{} answered {} to /api/version; is this a PrusaLink printer?",
                client.base(),
                a.status
            ));
        }
        Err(e) => return from_http(e),
    }

    let mut api = Api::V1;
    let mut connected = false;
    let mut settings_open = true;
    let mut commands_open = true;
    // The first wait is longer by a random share of the interval, so that the farm's
    // polls spread over the interval (`driver::request_phase`).
    let mut phase = driver::request_phase();
    // The last poll's state and job id, which the fast probe compares with.
    let mut seen: Option<ProbeKey> = None;
    loop {
        let started = Instant::now();
        let polled = match api {
            Api::V1 => match poll_v1(&client, memory).await {
                Ok(None) => {
                    tracing::info!("no v1 API (404); using the legacy /api/job and /api/printer");
                    api = Api::Legacy;
                    poll_legacy(&client).await
                }
                Ok(Some(p)) => Ok(p),
                Err(e) => Err(e),
            },
            Api::Legacy => poll_legacy(&client).await,
        };
        match polled {
            Ok(Polled::Status(poll)) => {
                seen = Some(ProbeKey::of(&poll));
                let st = ctx.reporter.status_mut();
                memory.apply(poll, st);
                st.last_seen = Some(time::now());
                st.first_after_connect = !connected;
                if !connected {
                    connected = true;
                    backoff.connected(started);
                    tracing::info!("printer connected");
                    st.connection = ConnectionState::Connected;
                    st.last_error = None;
                }
                ctx.reporter.emit().await;
                ctx.reporter.status_mut().first_after_connect = false;
            }
            Ok(Polled::Bad(why, body)) => {
                // Counted and logged; a printer none of whose answers could be used
                // shows `error` with the reason.
                ctx.reporter.skipped(&why, &body, !connected).await;
            }
            Err(e) => return from_http(e),
        }
        // Wait for the next poll; an interval change applies at once; a control command
        // is sent at once and followed by a poll, so its effect shows without a wait.
        let stretch = 1.0 + std::mem::take(&mut phase);
        let mut next_probe = Instant::now() + ctx.tuning.status_probe.unwrap_or_default();
        loop {
            let next = started + ctx.interval().mul_f64(stretch);
            let probing = api == Api::V1
                && seen.is_some()
                && ctx.tuning.status_probe.is_some()
                && next_probe < next;
            tokio::select! {
                _ = sleep_until(next) => break,
                _ = sleep_until(next_probe), if probing => {
                    if probe_changed(&client, seen.as_ref(), memory).await {
                        break;
                    }
                    next_probe = Instant::now() + ctx.tuning.status_probe.unwrap_or_default();
                }
                r = ctx.settings.changed(), if settings_open => settings_open = r.is_ok(),
                c = ctx.commands.recv(), if commands_open => match c {
                    None => commands_open = false,
                    Some(cmd) if cmd.abandoned() => {
                        tracing::info!(command_id = %cmd.id, "dropping a command the API stopped waiting for");
                    }
                    Some(cmd) => {
                        let r = command(&client, api, ctx.reporter.status(), cmd.kind).await;
                        cmd.answer(r);
                        break;
                    }
                },
            }
        }
    }
}

/// What the fast probe compares: the printer's state and its job's id.
#[derive(PartialEq)]
struct ProbeKey {
    state: String,
    job: Option<String>,
}

impl ProbeKey {
    fn of(poll: &Poll) -> Self {
        Self {
            state: poll.state.clone(),
            job: poll.job.as_ref().and_then(|j| j.id.clone()),
        }
    }
}

/// One fast probe (`GET /api/v1/status` alone): `true` when the printer's state or job
/// changed since the last poll, or the probe got no usable answer (the full poll then
/// finds out, and ends the session if the printer is gone). An unchanged print is noted
/// as seen now, with the time it has left (the end time's estimate, `state/memory.rs`).
async fn probe_changed(client: &Client, seen: Option<&ProbeKey>, memory: &mut PrusaState) -> bool {
    let Ok(a) = client.get("/api/v1/status").await else {
        return true;
    };
    if !a.status.is_success() {
        return true;
    }
    match state::parse_v1_status(&a.body) {
        Ok(poll) if seen == Some(&ProbeKey::of(&poll)) => {
            memory.sighted(&poll, time::now());
            false
        }
        _ => true,
    }
}

fn from_http(e: HttpError) -> End {
    match e {
        HttpError::Unreachable(m) => End::Lost(m),
        HttpError::Unauthorized(m) => End::AuthFailed(m),
        HttpError::BadAnswer(m) => End::Lost(m),
        HttpError::Redirected(m) => End::Error(m),
    }
}

/// One v1 poll; `Ok(None)` when the printer has no v1 API.
async fn poll_v1(client: &Client, memory: &PrusaState) -> Result<Option<Polled>, HttpError> {
    let a = match client.get("/api/v1/status").await {
        Ok(a) => a,
        Err(HttpError::BadAnswer(why)) => return Ok(Some(Polled::Bad(why, Vec::new()))),
        Err(e) => return Err(e),
    };
    if a.status == StatusCode::NOT_FOUND {
        return Ok(None);
    }
    let mut poll = match state::parse_v1_status(&a.body) {
        Ok(p) => p,
        Err(e) => return Ok(Some(bad_body("/api/v1/status", e, a.body))),
    };
    let active = matches!(poll.state.as_str(), "PRINTING" | "PAUSED" | "ATTENTION");
    let known = |j: &JobInfo| {
        memory
            .last_job()
            .is_some_and(|l| l.id.is_some() && l.id == j.id && l.filename.is_some())
    };
    let need_job = match &poll.job {
        Some(j) => !known(j),
        None => active,
    };
    if need_job {
        match client.get("/api/v1/job").await {
            Ok(j) if j.status == StatusCode::NO_CONTENT => {}
            Ok(j) if j.status == StatusCode::OK => match state::parse_v1_job(&j.body) {
                Ok(job) => poll.job = state::merge_job(poll.job.take(), Some(job)),
                Err(e) => return Ok(Some(bad_body("/api/v1/job", e, j.body))),
            },
            Ok(j) => {
                return Ok(Some(Polled::Bad(
                    format!("GET /api/v1/job answered {}", j.status),
                    j.body,
                )));
            }
            Err(HttpError::BadAnswer(why)) => return Ok(Some(Polled::Bad(why, Vec::new()))),
            Err(e) => return Err(e),
        }
    }
    Ok(Some(Polled::Status(poll)))
}

async fn poll_legacy(client: &Client) -> Result<Polled, HttpError> {
    let job = match client.get("/api/job").await {
        Ok(a) if a.status.is_success() => a,
        Ok(a) => {
            return Ok(Polled::Bad(
                format!("GET /api/job answered {}", a.status),
                a.body,
            ));
        }
        Err(HttpError::BadAnswer(why)) => return Ok(Polled::Bad(why, Vec::new())),
        Err(e) => return Err(e),
    };
    // `/api/printer` is optional: temperatures and the v1-style state when it answers.
    let printer = match client.get("/api/printer").await {
        Ok(a) if a.status.is_success() => Some(a.body),
        Ok(_) | Err(HttpError::BadAnswer(_)) => None,
        Err(e) => return Err(e),
    };
    match state::parse_legacy(&job.body, printer.as_deref()) {
        Ok(p) => Ok(Polled::Status(p)),
        Err(e) => Ok(bad_body("/api/job", e, job.body)),
    }
}

/// Sends a control command the way the printer's API takes it (protocols.md §3.3, §3.6).
async fn command(
    client: &Client,
    api: Api,
    status: &PrinterStatus,
    kind: ControlKind,
) -> Result<(), ControlError> {
    let verb = kind.as_str();
    // The job id came from the printer: only a 16-bit number goes into a path.
    let job = status
        .printer_job_id
        .as_deref()
        .and_then(|id| id.parse::<u16>().ok());
    let (method, path, body) = match (api, job) {
        (Api::V1, None) => {
            return Err(ControlError::NotAllowed(format!(
                "the printer reports no current job to {verb}"
            )));
        }
        (Api::V1, Some(id)) => match kind {
            ControlKind::Pause => (Method::PUT, format!("/api/v1/job/{id}/pause"), None),
            ControlKind::Resume => (Method::PUT, format!("/api/v1/job/{id}/resume"), None),
            ControlKind::Cancel => (Method::DELETE, format!("/api/v1/job/{id}"), None),
        },
        // Buddy's legacy JobCommand: `cancel`, or `pause` with an `action`.
        (Api::Legacy, _) => (
            Method::POST,
            "/api/job".to_owned(),
            Some(match kind {
                ControlKind::Pause => r#"{"command":"pause","action":"pause"}"#,
                ControlKind::Resume => r#"{"command":"pause","action":"resume"}"#,
                ControlKind::Cancel => r#"{"command":"cancel"}"#,
            }),
        ),
    };
    match client.send(method, &path, body).await {
        Ok(a) if a.status.is_success() => Ok(()),
        Ok(a) if a.status == StatusCode::CONFLICT => Err(ControlError::NotAllowed(format!(
            "the printer cannot {verb} now: it answered 409 Conflict (not in a state for it)"
        ))),
        Ok(a) if a.status == StatusCode::NOT_FOUND && api == Api::V1 => {
            Err(ControlError::Refused(format!(
                "the printer refused to {verb}: job {} is not its current job (404); its status catches up at the next poll",
                job.unwrap_or_default()
            )))
        }
        Ok(a) => Err(ControlError::Refused(format!(
            "the printer refused to {verb}: it answered {}",
            a.status
        ))),
        Err(HttpError::Unreachable(m)) => Err(ControlError::NoAnswer(m)),
        Err(HttpError::Unauthorized(m) | HttpError::BadAnswer(m) | HttpError::Redirected(m)) => {
            Err(ControlError::Refused(m))
        }
    }
}

fn bad_body(path: &str, e: BodyError, body: Vec<u8>) -> Polled {
    Polled::Bad(format!("GET {path}: {e}"), body)
}
