//! One simulated PrusaLink printer on the network: its own HTTP server on 127.0.0.1 and its
//! own port, Digest/`X-Api-Key` auth in front of the endpoints of protocols.md §3.3 and §3.6,
//! and the connection-level behaviour (reboot, disconnect, silence, garbage).
//!
//! Routing is one handler that matches method and path by hand, rather than a tree of warp
//! filters: a printer authenticates every `/api` request the same way before it looks at the
//! path, and a hand-written match keeps the 401s, 204s and 404s exactly as Buddy answers them.
//!
//! A reboot stops the server (graceful: idle keep-alive connections close, new connections
//! are refused), waits out the reboot, and binds the same port again.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Buf;
use futures_util::{Stream, StreamExt};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use warp::Filter;
use warp::http::{HeaderMap, Method, StatusCode};
use warp::reply::{Reply, Response};

use super::digest::{self, AuthOutcome, Nonces};
use super::farm::SimStatus;
use super::http_serve::{self, SimHttpPrinter};
use super::prusa::{PrusaModel, PrusaState};
use super::{Action, SimError, unix_ms};

/// Largest body `POST /api/job` takes: Buddy gathers it in a 100-byte buffer and answers
/// 413 to anything longer (`lib/WUI/nhttp/job_command.h`).
pub const JOB_COMMAND_MAX_BODY: usize = 100;
/// Status answers whose send times are kept for `GET /printers/{id}/sent` (the most recent).
pub const SENT_LOG_CAPACITY: usize = 256;
/// What a `garbage` action makes the next `/api/v1/status` answer: cut-off JSON.
pub const GARBAGE_BODY: &str = "{\"job\":{\"id\":12,\"progress\":4";

#[derive(Debug)]
struct Inner {
    model: PrusaModel,
    nonces: Nonces,
    rng: StdRng,
    offline_until: Option<Instant>,
    silent_until: Option<Instant>,
    garbage_next: bool,
    served: u64,
    /// When the most recent status answers (`/api/v1/status`, `/api/job`) were sent, unix ms.
    sent: VecDeque<u64>,
}

/// See the module documentation.
#[derive(Debug)]
pub struct PrusaPrinter {
    pub id: String,
    pub password: String,
    pub addr: SocketAddr,
    reboot_for: Duration,
    inner: Mutex<Inner>,
    restart: Notify,
}

impl PrusaPrinter {
    pub fn new(
        id: String,
        serial: String,
        password: String,
        addr: SocketAddr,
        first_job_id: u64,
        reboot_for: Duration,
        seed: u64,
    ) -> Self {
        let hostname = format!("sim-{}", id.replace('_', "-"));
        Self {
            inner: Mutex::new(Inner {
                model: PrusaModel::new(&serial, &hostname, first_job_id),
                nonces: Nonces::default(),
                rng: StdRng::seed_from_u64(seed),
                offline_until: None,
                silent_until: None,
                garbage_next: false,
                served: 0,
                sent: VecDeque::with_capacity(16),
            }),
            id,
            password,
            addr,
            reboot_for,
            restart: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn control(&self, action: &Action) -> Result<(), SimError> {
        let now = Instant::now();
        let mut g = self.lock();
        match action {
            Action::Disconnect => {
                // Restart the server at once: every open connection is closed.
                g.offline_until = Some(now);
                drop(g);
                self.restart.notify_one();
            }
            Action::Reboot => {
                g.offline_until = Some(now + self.reboot_for);
                g.silent_until = None;
                g.model.reboot_begin(now);
                g.nonces.clear();
                drop(g);
                self.restart.notify_one();
            }
            Action::Silence { seconds } => {
                g.silent_until = Some(now + Duration::from_secs(*seconds))
            }
            Action::Garbage => g.garbage_next = true,
            other => {
                if g.offline_until.is_some_and(|t| now < t) {
                    return Err(SimError::Conflict(format!(
                        "printer {} is rebooting",
                        self.id
                    )));
                }
                g.model.apply(other, now)?;
            }
        }
        Ok(())
    }

    pub fn status(&self) -> SimStatus {
        let now = Instant::now();
        let mut g = self.lock();
        g.model.advance(now);
        let current = g
            .model
            .current(now)
            .map(|(id, name, p)| (id, name.to_string(), p));
        SimStatus {
            id: self.id.clone(),
            state: g.model.state().as_str().to_string(),
            active: matches!(g.model.state(), PrusaState::Printing | PrusaState::Paused),
            file: current.as_ref().map(|c| c.1.clone()),
            progress: current.as_ref().map(|c| c.2).unwrap_or(0.0),
            job_id: current.as_ref().map(|c| c.0.to_string()),
            layer: None,
            total_layers: None,
            online: g.offline_until.is_none_or(|t| now >= t),
            silent: g.silent_until.is_some_and(|t| now < t),
            clients: 0,
            reports_sent: g.served,
            jobs_started: g.model.jobs_started(),
        }
    }

    /// Send times (unix ms) of the most recent status answers, oldest first.
    pub fn sent_log(&self) -> Vec<u64> {
        self.lock().sent.iter().copied().collect()
    }

    /// Serves until `shutdown`, restarting for reboots and disconnects.
    pub async fn serve(self: Arc<Self>, listener: TcpListener, shutdown: watch::Receiver<bool>) {
        let me = Arc::clone(&self);
        http_serve::serve(self, listener, shutdown, move |l, stop| {
            let me = Arc::clone(&me);
            let routes = warp::any()
                .map(move || Arc::clone(&me))
                .and(warp::method())
                .and(warp::path::full())
                .and(warp::header::headers_cloned())
                .and(warp::body::stream())
                .and_then(handle);
            Box::pin(warp::serve(routes).incoming(l).graceful(stop).run())
        })
        .await;
    }
}

async fn handle(
    p: Arc<PrusaPrinter>,
    method: Method,
    path: warp::path::FullPath,
    headers: HeaderMap,
    body: impl Stream<Item = Result<impl Buf, warp::Error>> + Unpin,
) -> Result<Response, Infallible> {
    let now = Instant::now();
    let silent_until = p.lock().silent_until.filter(|t| now < *t);
    if let Some(t) = silent_until {
        // A silent printer holds the request without answering; clients time out.
        tokio::time::sleep_until(t).await;
    }
    let path = path.as_str();
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    // Only `POST /api/job` has a body worth reading (Buddy reads no other).
    let body = if method == Method::POST && path.trim_end_matches('/') == "/api/job" {
        match read_job_body(header("content-length"), body).await {
            Ok(b) => Some(b),
            Err(status) => return Ok(status.into_response()),
        }
    } else {
        None
    };
    let mut g = p.lock();
    let now = Instant::now();
    let outcome = digest::check(
        method.as_str(),
        path,
        header("authorization"),
        header("x-api-key"),
        &p.password,
        &g.nonces,
        now,
    );
    let reply = match outcome {
        AuthOutcome::Ok => route(&mut g, &method, path, body.as_deref(), now),
        AuthOutcome::Challenge { stale } => {
            let random: u64 = g.rng.random();
            let nonce = g.nonces.issue(now, random);
            unauthorized(digest::challenge(&nonce, stale))
        }
        AuthOutcome::BadApiKey => unauthorized(digest::api_key_challenge()),
    };
    g.served += 1;
    if matches!(path, "/api/v1/status" | "/api/job") && method == Method::GET {
        if g.sent.len() == SENT_LOG_CAPACITY {
            g.sent.pop_front();
        }
        g.sent.push_back(unix_ms());
    }
    drop(g);
    Ok(reply)
}

/// The body of `POST /api/job` as Buddy takes it: a `Content-Length` is required (411),
/// at most [`JOB_COMMAND_MAX_BODY`] bytes (413).
async fn read_job_body(
    content_length: Option<&str>,
    mut body: impl Stream<Item = Result<impl Buf, warp::Error>> + Unpin,
) -> Result<Vec<u8>, StatusCode> {
    let len: usize = content_length
        .and_then(|v| v.trim().parse().ok())
        .ok_or(StatusCode::LENGTH_REQUIRED)?;
    if len > JOB_COMMAND_MAX_BODY {
        return Err(StatusCode::PAYLOAD_TOO_LARGE);
    }
    let mut out = Vec::with_capacity(len);
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk.map_err(|_| StatusCode::BAD_REQUEST)?;
        if out.len() + chunk.remaining() > JOB_COMMAND_MAX_BODY {
            return Err(StatusCode::PAYLOAD_TOO_LARGE);
        }
        while chunk.has_remaining() {
            let piece = chunk.chunk();
            out.extend_from_slice(piece);
            let n = piece.len();
            chunk.advance(n);
        }
    }
    Ok(out)
}

fn route(
    g: &mut Inner,
    method: &Method,
    path: &str,
    body: Option<&[u8]>,
    now: Instant,
) -> Response {
    g.model.advance(now);
    let get = *method == Method::GET || *method == Method::HEAD;
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (get, segments.as_slice()) {
        (true, ["api", "version"]) => json(&g.model.version_body()),
        (true, ["api", "v1", "info"]) => json(&g.model.info_body()),
        (true, ["api", "v1", "status"]) => {
            if std::mem::take(&mut g.garbage_next) {
                return warp::reply::with_header(GARBAGE_BODY, "content-type", "application/json")
                    .into_response();
            }
            json(&g.model.status_body(now))
        }
        (true, ["api", "v1", "job"]) => match g.model.job_body(now) {
            Some(body) => json(&body),
            None => StatusCode::NO_CONTENT.into_response(),
        },
        (true, ["api", "job"]) => json(&g.model.legacy_job_body(now)),
        (false, ["api", "job"]) if *method == Method::POST => {
            legacy_job_command(g, body.unwrap_or_default(), now)
        }
        (false, ["api", "job"]) => StatusCode::METHOD_NOT_ALLOWED.into_response(),
        (true, ["api", "printer"]) => json(&g.model.legacy_printer_body()),
        (false, ["api", "v1", "job", id]) if *method == Method::DELETE => {
            job_command(g, id, Action::Cancel, now)
        }
        (false, ["api", "v1", "job", id, "pause"]) if *method == Method::PUT => {
            job_command(g, id, Action::Pause, now)
        }
        (false, ["api", "v1", "job", id, "resume"]) if *method == Method::PUT => {
            job_command(g, id, Action::Resume, now)
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

/// `DELETE /api/v1/job/{id}`, `PUT /api/v1/job/{id}/pause|resume` (§3.3): 400 bad id,
/// 404 not the current job, 409 wrong state, 204 done.
fn job_command(g: &mut Inner, id: &str, action: Action, now: Instant) -> Response {
    let Ok(id) = id.parse::<u16>() else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    if g.model.current_job_id() != Some(id) {
        return StatusCode::NOT_FOUND.into_response();
    }
    match g.model.apply(&action, now) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(_) => StatusCode::CONFLICT.into_response(),
    }
}

/// Legacy `POST /api/job` as Buddy's `JobCommand` reads it (`lib/WUI/nhttp/job_command.cpp`):
/// `{"command":"cancel"}` stops the print; `{"command":"pause","action":"pause"|"resume"|"toggle"}`
/// pauses, resumes or toggles. Anything else — including `{"command":"resume"}` and a
/// `pause` without `action` — is 400 "Unknown job command"; bad JSON 400; the printer not
/// in a state for it 409; done 204.
fn legacy_job_command(g: &mut Inner, body: &[u8], now: Instant) -> Response {
    let Ok(Value::Object(req)) = serde_json::from_slice::<Value>(body) else {
        return warp::reply::with_status("Couldn't parse JSON", StatusCode::BAD_REQUEST)
            .into_response();
    };
    let field = |k: &str| req.get(k).and_then(Value::as_str);
    let action = match (field("command"), field("action")) {
        (Some("cancel"), _) => Action::Cancel,
        (Some("pause"), Some("pause")) => Action::Pause,
        (Some("pause"), Some("resume")) => Action::Resume,
        (Some("pause"), Some("toggle")) => match g.model.state() {
            PrusaState::Paused => Action::Resume,
            _ => Action::Pause,
        },
        _ => {
            return warp::reply::with_status("Unknown job command", StatusCode::BAD_REQUEST)
                .into_response();
        }
    };
    match g.model.apply(&action, now) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(_) => StatusCode::CONFLICT.into_response(),
    }
}

fn json(body: &Value) -> Response {
    warp::reply::json(body).into_response()
}

fn unauthorized(www_authenticate: String) -> Response {
    let reply = warp::reply::with_status("401: Unauthorized", StatusCode::UNAUTHORIZED);
    warp::reply::with_header(reply, "www-authenticate", www_authenticate).into_response()
}

impl SimHttpPrinter for PrusaPrinter {
    fn printer_id(&self) -> &str {
        &self.id
    }
    fn listen_addr(&self) -> SocketAddr {
        self.addr
    }
    fn restarted(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        Box::pin(self.restart.notified())
    }
    fn offline_until(&self) -> Option<Instant> {
        self.lock().offline_until
    }
    fn back_online(&self) {
        let mut g = self.lock();
        if g.offline_until.take().is_some() {
            g.model.reboot_end(Instant::now());
        }
    }
}
