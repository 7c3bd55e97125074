//! The Moonraker driver (protocols.md §5): one JSON-RPC WebSocket (`/websocket`).
//!
//! A session: connect (with `X-Api-Key` when `api_key` is set) → `server.connection.identify`
//! → `server.info` (Klippy's state) → `server.history.list` (the newest jobs: the one under
//! way, and after a reconnect the prints that ended while we were away) →
//! `printer.objects.subscribe` on `print_stats`, `virtual_sdcard`, `display_status`,
//! `webhooks` (and the heaters for temperatures). Then `notify_status_update` deltas,
//! `notify_history_changed`, and the Klippy notifications (`ready` → subscribe again).
//! Every `monitoring_interval` a `server.info` request checks that Moonraker still
//! answers; no answer within the request timeout ends the session.

pub mod state;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep_until};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::domain::{ConnectionState, PrinterState, PrinterStatus};
use crate::printers::backoff::Backoff;
use crate::printers::bad_payloads::excerpt;
use crate::printers::driver::DriverCtx;
use crate::time;

use state::{HistoryJob, MoonState};

/// Largest message read: a subscribe answer is a few KB, a history page of
/// `HISTORY_PAGE` jobs with metadata tens of KB.
pub const MAX_WS_MESSAGE_BYTES: usize = 1024 * 1024;
/// Jobs read from the history at each connect (the one under way and the prints that
/// ended while the daemon was away; a farm printer ends a few an hour).
pub const HISTORY_PAGE: usize = 20;
/// Least time between two statuses sent for deltas that change only progress.
const EMIT_EVERY: Duration = Duration::from_secs(1);

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

enum End {
    Lost(String),
    AuthFailed(String),
    /// Moonraker answered, but nothing it sent could be used.
    Error(String),
}

/// What the driver keeps across sessions.
#[derive(Default)]
struct Memory {
    state: MoonState,
    /// History job ids whose end was seen or reported, newest last (bounded).
    seen: Vec<String>,
    /// A session has been up before: the history may hold prints missed since.
    had_session: bool,
}

const SEEN_MAX: usize = 64;

impl Memory {
    fn saw(&mut self, id: &str) -> bool {
        if self.seen.iter().any(|s| s == id) {
            return true;
        }
        if self.seen.len() >= SEEN_MAX {
            self.seen.remove(0);
        }
        self.seen.push(id.to_owned());
        false
    }
}

pub async fn run(mut ctx: DriverCtx) {
    let mut backoff = Backoff::new(
        ctx.tuning.backoff_min,
        ctx.tuning.backoff_max,
        ctx.tuning.stable_after,
    );
    let mut memory = Memory::default();
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

fn objects() -> Value {
    json!({"objects": {"print_stats": null, "virtual_sdcard": null, "display_status": null,
                       "webhooks": null, "extruder": ["temperature", "target"],
                       "heater_bed": ["temperature", "target"]}})
}

struct Rpc {
    ws: Socket,
    next_id: u64,
    timeout: Duration,
}

impl Rpc {
    async fn send(&mut self, method: &str, params: Value) -> Result<u64, String> {
        self.next_id += 1;
        let id = self.next_id;
        let m = json!({"jsonrpc": "2.0", "method": method, "params": params, "id": id});
        tokio::time::timeout(self.timeout, self.ws.send(Message::text(m.to_string())))
            .await
            .map_err(|_| "Moonraker's socket stalled".to_string())?
            .map_err(|e| format!("Moonraker's socket: {e}"))?;
        Ok(id)
    }

    async fn next(&mut self) -> Result<Vec<u8>, String> {
        loop {
            match self.ws.next().await {
                Some(Ok(Message::Text(t))) => return Ok(t.as_bytes().to_vec()),
                Some(Ok(Message::Binary(b))) => return Ok(b.to_vec()),
                Some(Ok(Message::Close(_))) | None => {
                    return Err("Moonraker closed the socket".into());
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(format!("Moonraker's socket: {e}")),
            }
        }
    }
}

fn headline(s: &PrinterStatus) -> (PrinterState, Option<String>, Option<String>, Option<String>) {
    (
        s.state,
        s.filename.clone(),
        s.printer_job_id.clone(),
        s.error.clone(),
    )
}

async fn connect(ctx: &DriverCtx) -> Result<Rpc, End> {
    let host = if ctx.cfg.host.contains(':') && !ctx.cfg.host.starts_with('[') {
        format!("[{}]", ctx.cfg.host)
    } else {
        ctx.cfg.host.clone()
    };
    let url = format!("ws://{host}:{}/websocket", ctx.cfg.port_or_default());
    let mut req = url
        .as_str()
        .into_client_request()
        .map_err(|e| End::Lost(format!("bad address {url}: {e}")))?;
    if let Some(k) = ctx.cfg.api_key.as_ref().filter(|k| !k.is_empty()) {
        let v = k.expose().parse().map_err(|_| {
            End::AuthFailed("`api_key` holds characters a header cannot carry".into())
        })?;
        req.headers_mut().insert("X-Api-Key", v);
    }
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_WS_MESSAGE_BYTES))
        .max_frame_size(Some(MAX_WS_MESSAGE_BYTES));
    let c = tokio_tungstenite::connect_async_with_config(req, Some(config), false);
    match tokio::time::timeout(ctx.tuning.connect_timeout, c).await {
        Err(_) => Err(End::Lost(format!("no answer from {url} within {} s", ctx.tuning.connect_timeout.as_secs().max(1)))),
        Ok(Err(WsError::Http(r))) if matches!(r.status().as_u16(), 401 | 403) => Err(End::AuthFailed(
            "Moonraker refused the API key; check `api_key` (Moonraker: `moonraker.conf` [authorization], or the key from /access/api_key)".into(),
        )),
        Ok(Err(WsError::Http(r))) => Err(End::Lost(format!("{url} answered {} instead of a WebSocket; is this Moonraker?", r.status()))),
        Ok(Err(e)) => Err(End::Lost(format!("cannot connect to {url} (is Moonraker running?): {e}"))),
        Ok(Ok((ws, _))) => Ok(Rpc { ws, next_id: 0, timeout: ctx.tuning.request_timeout }),
    }
}

struct Session<'a> {
    ctx: &'a mut DriverCtx,
    memory: &'a mut Memory,
    connected: bool,
    /// Only unusable messages so far (`unusable` put the printer in `error`).
    unusable_only: bool,
    last_emit: Option<Instant>,
}

impl Session<'_> {
    /// A message the status could not come from: counted with every other driver's
    /// skipped payloads (shown in `bad_data`, on `/health` and `/metrics`), logged at
    /// most once a minute, and while nothing of this session could be used the printer shows `error` with the reason (a server
    /// on Moonraker's port that answers nothing usable), not `connecting`.
    async fn unusable(&mut self, why: &str, body: &[u8]) {
        let nothing_yet = !self.connected;
        self.unusable_only |= nothing_yet;
        self.ctx.reporter.skipped(why, body, nothing_yet).await;
    }

    /// How a session that ends for `why` is reported: as the reason nothing could be
    /// used, when that is all this session got; as lost otherwise.
    fn lost(&self, why: String) -> End {
        let st = self.ctx.reporter.status();
        match &st.last_error {
            Some(e)
                if self.unusable_only
                    && !self.connected
                    && st.connection == ConnectionState::Error =>
            {
                End::Error(e.clone())
            }
            _ => End::Lost(why),
        }
    }

    async fn emit(&mut self, force: bool) {
        let before = headline(self.ctx.reporter.status());
        let st = self.ctx.reporter.status_mut();
        self.memory.state.fill(st);
        st.last_seen = Some(time::now());
        st.first_after_connect = !self.connected;
        if !self.connected {
            st.connection = ConnectionState::Connected;
            st.last_error = None;
        }
        let due = self.last_emit.is_none_or(|t| t.elapsed() >= EMIT_EVERY);
        if force || !self.connected || due || headline(st) != before {
            if !self.connected {
                tracing::info!("printer connected");
            }
            self.connected = true;
            self.ctx.reporter.emit().await;
            self.ctx.reporter.status_mut().first_after_connect = false;
            self.last_emit = Some(Instant::now());
        }
    }

    /// Prints that ended while the daemon could not see them (the history is the record):
    /// each is shown once as its end state with its job id (design.md §2 rule 9).
    async fn catch_up(&mut self, jobs: Vec<HistoryJob>) {
        for j in jobs.into_iter().rev() {
            if j.status == "in_progress" || self.memory.saw(&j.job_id) || !self.memory.had_session {
                continue;
            }
            let end = match j.status.as_str() {
                "completed" => PrinterState::Finished,
                "cancelled" => PrinterState::Cancelled,
                "error" | "klippy_shutdown" | "klippy_disconnect" => PrinterState::Failed,
                _ => continue,
            };
            tracing::info!(job_id = %j.job_id, status = %j.status, "a print ended while the printer could not be seen");
            let st = self.ctx.reporter.status_mut();
            st.state = end;
            st.filename = j.filename.as_deref().and_then(state::base_name);
            st.printer_job_id = Some(j.job_id.clone());
            st.printer_start_time = j.start_time;
            st.progress = (end == PrinterState::Finished).then_some(100.0);
            st.connection = ConnectionState::Connected;
            st.first_after_connect = false;
            self.ctx.reporter.emit().await;
        }
    }
}

async fn session(ctx: &mut DriverCtx, backoff: &mut Backoff, memory: &mut Memory) -> End {
    let started = Instant::now();
    let mut rpc = match connect(ctx).await {
        Ok(r) => r,
        Err(e) => return e,
    };
    let identify = json!({"client_name": "printfarmd", "version": env!("CARGO_PKG_VERSION"),
                          "type": "agent", "url": "https://github.com/printfarmd"});
    let mut sent = Vec::new();
    for (method, params) in [
        ("server.connection.identify", identify),
        ("server.info", json!({})),
        (
            "server.history.list",
            json!({"limit": HISTORY_PAGE, "start": 0, "order": "desc"}),
        ),
        ("printer.objects.subscribe", objects()),
    ] {
        match rpc.send(method, params).await {
            Ok(id) => sent.push((id, method)),
            Err(e) => return End::Lost(e),
        }
    }
    memory.state.reset_objects();
    let mut s = Session {
        ctx,
        memory,
        connected: false,
        unusable_only: false,
        last_emit: None,
    };
    let mut settings_open = true;
    let mut check_at = Instant::now() + s.ctx.interval();
    let mut waiting: Option<(u64, Instant)> = None;
    let mut subscribed = false;
    loop {
        let deadline = waiting.map(|(_, d)| d).unwrap_or(check_at);
        let msg = tokio::select! {
            m = rpc.next() => m,
            _ = sleep_until(deadline) => {
                if waiting.is_some() {
                    return s.lost(format!("Moonraker did not answer within {} s", s.ctx.tuning.request_timeout.as_secs().max(1)));
                }
                match rpc.send("server.info", json!({})).await {
                    Ok(id) => waiting = Some((id, Instant::now() + s.ctx.tuning.request_timeout)),
                    Err(e) => return s.lost(e),
                }
                check_at = Instant::now() + s.ctx.interval();
                continue;
            }
            r = s.ctx.settings.changed(), if settings_open => {
                settings_open = r.is_ok();
                check_at = Instant::now() + s.ctx.interval();
                continue;
            }
        };
        let body = match msg {
            Ok(b) => b,
            Err(e) => return s.lost(e),
        };
        let Ok(v) = serde_json::from_slice::<Value>(&body) else {
            s.unusable("not JSON", &body).await;
            continue;
        };
        if let Some(id) = v["id"].as_u64() {
            if waiting.is_some_and(|(w, _)| w == id) {
                waiting = None;
            }
            let method = sent.iter().find(|(i, _)| *i == id).map(|(_, m)| *m);
            if let Some(err) = v.get("error") {
                let code = err["code"].as_i64().unwrap_or(0);
                if matches!(code, 401 | 403) {
                    return End::AuthFailed(
                        "Moonraker refused the API key; check `api_key`".into(),
                    );
                }
                tracing::debug!(?method, error = %excerpt(err.to_string().as_bytes()), "Moonraker answered an error");
                if method == Some("printer.objects.subscribe") && !subscribed {
                    // Klippy is not ready (starting, shut down): say so; the
                    // subscription is made again at `notify_klippy_ready`.
                    backoff.connected(started);
                    s.emit(true).await;
                }
                continue;
            }
            let result = &v["result"];
            match method {
                Some("server.info") => {
                    if let Some(k) = result["klippy_state"].as_str() {
                        s.memory.state.set_klippy(k);
                    }
                }
                Some("server.history.list") => {
                    let jobs: Vec<HistoryJob> = result["jobs"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .take(HISTORY_PAGE)
                                .filter_map(state::parse_job)
                                .collect()
                        })
                        .unwrap_or_default();
                    if let Some(newest) = jobs.first() {
                        s.memory.state.history(newest.clone());
                    }
                    s.catch_up(jobs).await;
                    s.memory.had_session = true;
                }
                Some("printer.objects.subscribe") => {
                    if !s.memory.state.merge(&result["status"]) {
                        s.unusable("subscribe answer without a status object", &body)
                            .await;
                        continue;
                    }
                    subscribed = true;
                    backoff.connected(started);
                    s.emit(true).await;
                }
                _ => {}
            }
            continue;
        }
        match v["method"].as_str().unwrap_or("") {
            "notify_status_update" => {
                let merged = s.memory.state.merge(&v["params"][0]);
                if merged && subscribed {
                    s.emit(false).await;
                }
            }
            "notify_history_changed" => {
                if let Some(j) = state::parse_job(&v["params"][0]["job"]) {
                    if j.status != "in_progress" {
                        s.memory.saw(&j.job_id);
                    }
                    s.memory.state.history(j);
                    if subscribed {
                        s.emit(false).await;
                    }
                }
            }
            "notify_klippy_ready" => {
                s.memory.state.set_klippy("ready");
                s.memory
                    .state
                    .merge(&json!({"webhooks": {"state": "ready", "state_message": ""}}));
                match rpc.send("printer.objects.subscribe", objects()).await {
                    Ok(id) => sent.push((id, "printer.objects.subscribe")),
                    Err(e) => return s.lost(e),
                }
            }
            m @ ("notify_klippy_shutdown" | "notify_klippy_disconnected") => {
                let k = if m == "notify_klippy_shutdown" {
                    "shutdown"
                } else {
                    "disconnected"
                };
                s.memory.state.set_klippy(k);
                s.memory.state.merge(&json!({"webhooks": {"state": k}}));
                if subscribed {
                    s.emit(true).await;
                }
            }
            _ => {}
        }
        if sent.len() > 16 {
            sent.drain(..sent.len() - 16);
        }
    }
}
