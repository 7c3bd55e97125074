//! One simulated OctoPrint server on the network: its own HTTP server on 127.0.0.1 and its
//! own port with `X-Api-Key` auth (a wrong or missing key gets 403, as OctoPrint answers),
//! `/api/version`, `/api/job`, `/api/printer`, `POST /api/login` (passive), and the raw
//! WebSocket of the push API at `/sockjs/websocket` (`connected` on open, then after a
//! valid `auth` message a `history` snapshot, `current` twice a second and the events).
//!
//! A ticker task per printer runs the model's clock (a print that ends by itself sends its
//! `PrintDone`) and fans the messages out over a bounded broadcast channel. Reboot and
//! disconnect close every socket and restart the server, as for PrusaLink.

use std::collections::HashSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{Notify, broadcast, watch};
use tokio::time::Instant;
use warp::Filter;
use warp::http::StatusCode;
use warp::reply::{Reply, Response};
use warp::ws::{Message, WebSocket, Ws};

use super::farm::SimStatus;
use super::http_serve::{self, SentLog, SimHttpPrinter};
use super::octoprint::{OCTOPRINT_VERSION, OctoModel};
use super::{Action, SimError};

/// What a `garbage` action makes the next `/api/job` answer and push message: cut-off JSON.
pub const GARBAGE_BODY: &str = "{\"state\":\"Printing\",\"job\":{\"file\":";
/// How often the ticker runs the clock; `current` goes out every second tick (OctoPrint
/// sends it at most twice a second).
const TICK: Duration = Duration::from_millis(250);
/// Messages queued per socket client; a client further behind skips (tokio broadcast).
const FANOUT_CAPACITY: usize = 256;
/// Largest message accepted from a socket client (`auth`, `subscribe`, `throttle`).
const MAX_CLIENT_MESSAGE: usize = 64 * 1024;
/// Login sessions kept (one per driver connection; old ones are forgotten first).
const MAX_SESSIONS: usize = 1024;

#[derive(Debug)]
struct Inner {
    model: OctoModel,
    sessions: HashSet<String>,
    offline_until: Option<Instant>,
    silent_until: Option<Instant>,
    garbage_http: bool,
    served: u64,
}

/// See the module documentation.
#[derive(Debug)]
pub struct OctoPrinter {
    pub id: String,
    pub api_key: String,
    pub addr: SocketAddr,
    reboot_for: Duration,
    inner: Mutex<Inner>,
    restart: Notify,
    fanout: broadcast::Sender<Arc<str>>,
    /// Bumped to close every open socket (disconnect, reboot).
    kick: watch::Sender<u64>,
    /// `/api/job` answers and push messages sent (`GET /printers/{id}/sent`).
    sent: SentLog,
}

impl OctoPrinter {
    pub fn new(id: String, api_key: String, addr: SocketAddr, reboot_for: Duration) -> Self {
        Self {
            inner: Mutex::new(Inner {
                model: OctoModel::new(),
                sessions: HashSet::new(),
                offline_until: None,
                silent_until: None,
                garbage_http: false,
                served: 0,
            }),
            id,
            api_key,
            addr,
            reboot_for,
            restart: Notify::new(),
            fanout: broadcast::channel(FANOUT_CAPACITY).0,
            kick: watch::channel(0).0,
            sent: SentLog::default(),
        }
    }

    /// When the recent `/api/job` answers and push-socket messages went out, unix ms.
    pub fn sent_log(&self) -> Vec<u64> {
        self.sent.snapshot()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn publish(&self, msgs: Vec<Value>) {
        if !msgs.is_empty() && self.fanout.receiver_count() > 0 {
            self.sent.record();
        }
        for m in msgs {
            let _ = self.fanout.send(Arc::from(m.to_string()));
        }
    }

    fn kick_all(&self) {
        self.kick.send_modify(|g| *g += 1);
    }

    pub fn control(&self, action: &Action) -> Result<(), SimError> {
        let now = Instant::now();
        let mut g = self.lock();
        match action {
            Action::Disconnect => {
                g.offline_until = Some(now);
                drop(g);
                self.kick_all();
                self.restart.notify_one();
            }
            Action::Reboot => {
                // The OctoPrint host restarts; the printer keeps printing from its SD card.
                g.offline_until = Some(now + self.reboot_for);
                g.silent_until = None;
                g.sessions.clear();
                drop(g);
                self.kick_all();
                self.restart.notify_one();
            }
            Action::Silence { seconds } => {
                g.silent_until = Some(now + Duration::from_secs(*seconds))
            }
            Action::Garbage => {
                g.garbage_http = true;
                drop(g);
                let _ = self.fanout.send(Arc::from(GARBAGE_BODY));
            }
            other => {
                if g.offline_until.is_some_and(|t| now < t) {
                    return Err(SimError::Conflict(format!(
                        "printer {} is rebooting",
                        self.id
                    )));
                }
                g.model.apply(other, now)?;
                let events = g.model.take_events();
                drop(g);
                self.publish(events);
            }
        }
        Ok(())
    }

    pub fn status(&self) -> SimStatus {
        let now = Instant::now();
        let mut g = self.lock();
        g.model.advance(now);
        let events = g.model.take_events();
        let current = g.model.current(now).map(|(p, c)| (p.to_string(), c));
        let st = SimStatus {
            id: self.id.clone(),
            state: g.model.state().as_str().to_string(),
            active: current.is_some(),
            file: current.as_ref().map(|c| c.0.clone()),
            progress: current.as_ref().map(|c| c.1).unwrap_or(0.0),
            job_id: None,
            layer: None,
            total_layers: None,
            online: g.offline_until.is_none_or(|t| now >= t),
            silent: g.silent_until.is_some_and(|t| now < t),
            clients: self.fanout.receiver_count(),
            reports_sent: g.served,
            jobs_started: g.model.jobs_started(),
        };
        drop(g);
        self.publish(events);
        st
    }

    /// Runs the model's clock and sends `current` to the socket clients, until `shutdown`.
    pub async fn tick(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut n: u64 = 0;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(TICK) => {}
                _ = shutdown.changed() => return,
            }
            n += 1;
            let now = Instant::now();
            let mut g = self.lock();
            g.model.advance(now);
            let mut msgs = g.model.take_events();
            let quiet =
                g.silent_until.is_some_and(|t| now < t) || g.offline_until.is_some_and(|t| now < t);
            if n.is_multiple_of(2) && !quiet && self.fanout.receiver_count() > 0 {
                msgs.push(g.model.current_message(now, "current"));
            }
            drop(g);
            self.publish(msgs);
        }
    }

    /// Serves until `shutdown`, restarting for reboots and disconnects.
    pub async fn serve(self: Arc<Self>, listener: TcpListener, shutdown: watch::Receiver<bool>) {
        let me = Arc::clone(&self);
        http_serve::serve(self, listener, shutdown, move |l, stop| {
            Box::pin(
                warp::serve(routes(Arc::clone(&me)))
                    .incoming(l)
                    .graceful(stop)
                    .run(),
            )
        })
        .await;
    }
}

fn routes(p: Arc<OctoPrinter>) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    let me = warp::any().map(move || Arc::clone(&p));
    let socket = warp::path!("sockjs" / "websocket")
        .and(warp::ws())
        .and(me.clone())
        .map(|ws: Ws, p: Arc<OctoPrinter>| {
            ws.max_message_size(MAX_CLIENT_MESSAGE)
                .on_upgrade(move |s| push_client(p, s))
                .into_response()
        });
    let login = warp::path!("api" / "login")
        .and(warp::post())
        .and(me.clone())
        .and(warp::method())
        .and(warp::path::full())
        .and(warp::header::optional::<String>("x-api-key"))
        .and(warp::body::content_length_limit(MAX_CLIENT_MESSAGE as u64))
        .and(warp::body::bytes())
        .and_then(|p, m, path, key, body| handle(p, m, path, key, Some(body)));
    let api = me
        .and(warp::method())
        .and(warp::path::full())
        .and(warp::header::optional::<String>("x-api-key"))
        .and_then(|p, m, path, key| handle(p, m, path, key, None));
    socket
        .or(login)
        .unify()
        .or(api)
        .unify()
        .recover(|_| async { Ok::<_, Infallible>(StatusCode::BAD_REQUEST.into_response()) })
        .unify()
}

async fn handle(
    p: Arc<OctoPrinter>,
    method: warp::http::Method,
    path: warp::path::FullPath,
    key: Option<String>,
    body: Option<bytes::Bytes>,
) -> Result<Response, Infallible> {
    let silent_until = p.lock().silent_until.filter(|t| Instant::now() < *t);
    if let Some(t) = silent_until {
        // A silent server holds the request without answering; clients time out.
        tokio::time::sleep_until(t).await;
    }
    if key.as_deref() != Some(p.api_key.as_str()) {
        return Ok(error(StatusCode::FORBIDDEN, "Invalid API key"));
    }
    let now = Instant::now();
    let mut g = p.lock();
    g.served += 1;
    g.model.advance(now);
    let events = g.model.take_events();
    let path = path.as_str().split('?').next().unwrap_or("");
    let reply = match (method.as_str(), path) {
        ("GET", "/api/version") => json(&json!({"api": "0.1", "server": OCTOPRINT_VERSION,
                                                "text": format!("OctoPrint {OCTOPRINT_VERSION}")})),
        ("GET", "/api/job") => {
            p.sent.record();
            if std::mem::take(&mut g.garbage_http) {
                warp::reply::with_header(GARBAGE_BODY, "content-type", "application/json")
                    .into_response()
            } else {
                json(&g.model.job_body(now))
            }
        }
        ("GET", "/api/printer") => match g.model.printer_body() {
            Some(b) => json(&b),
            None => error(StatusCode::CONFLICT, "Printer is not operational"),
        },
        ("POST", "/api/login") => {
            let passive = serde_json::from_slice::<Value>(body.as_deref().unwrap_or_default())
                .ok()
                .is_some_and(|v| v["passive"] == json!(true));
            if !passive {
                error(StatusCode::BAD_REQUEST, "only passive login is simulated")
            } else {
                if g.sessions.len() >= MAX_SESSIONS {
                    g.sessions.clear();
                }
                let session = format!("{:032x}", rand::random::<u128>());
                g.sessions.insert(session.clone());
                json(
                    &json!({"name": "sim", "session": session, "active": true, "admin": true,
                             "apikey": null, "groups": ["admins", "users"], "_is_external_client": false}),
                )
            }
        }
        _ => error(StatusCode::NOT_FOUND, "Not found"),
    };
    drop(g);
    p.publish(events);
    Ok(reply)
}

fn json(v: &Value) -> Response {
    warp::reply::json(v).into_response()
}

fn error(status: StatusCode, msg: &str) -> Response {
    warp::reply::with_status(warp::reply::json(&json!({"error": msg})), status).into_response()
}

/// One push-socket client: `connected`, then after a valid `auth` the `history` snapshot,
/// `current` and events until the client leaves or the server kicks it.
async fn push_client(p: Arc<OctoPrinter>, ws: WebSocket) {
    let (mut tx, mut rx) = ws.split();
    let mut kick = p.kick.subscribe();
    let mut feed = p.fanout.subscribe();
    let hello = json!({"connected": {"version": OCTOPRINT_VERSION, "display_version": OCTOPRINT_VERSION,
                                     "branch": null, "python_version": "3.11.7", "plugin_hash": "sim",
                                     "config_hash": "sim", "debug": false, "safe_mode": null,
                                     "online": false, "permissions": []}});
    if tx.send(Message::text(hello.to_string())).await.is_err() {
        return;
    }
    let mut authed = false;
    loop {
        tokio::select! {
            _ = kick.changed() => break,
            m = rx.next() => {
                let Some(Ok(m)) = m else { break };
                if m.is_close() {
                    break;
                }
                let Ok(text) = m.to_str() else { continue };
                let v: Value = serde_json::from_str(text).unwrap_or_default();
                if let Some(a) = v["auth"].as_str() {
                    let ok = a.split_once(':').is_some_and(|(_, s)| p.lock().sessions.contains(s));
                    let reply = if ok {
                        authed = true;
                        p.lock().model.current_message(Instant::now(), "history")
                    } else {
                        json!({"reauthRequired": {"reason": "stale"}})
                    };
                    if tx.send(Message::text(reply.to_string())).await.is_err() {
                        break;
                    }
                }
            }
            m = feed.recv(), if authed => match m {
                Ok(text) => {
                    if tx.send(Message::text(text.to_string())).await.is_err() {
                        break;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => break,
            },
        }
    }
    let _ = tx.close().await;
}

impl SimHttpPrinter for OctoPrinter {
    fn printer_id(&self) -> &str {
        &self.id
    }
    fn listen_addr(&self) -> SocketAddr {
        self.addr
    }
    fn restarted(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        Box::pin(self.restart.notified())
    }
    fn close_push_connections(&self) {
        self.kick_all();
    }
    fn offline_until(&self) -> Option<Instant> {
        self.lock().offline_until
    }
    fn back_online(&self) {
        self.lock().offline_until = None;
    }
}
