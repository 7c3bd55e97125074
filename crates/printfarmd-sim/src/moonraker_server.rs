//! One simulated Moonraker on the network: its own HTTP server on 127.0.0.1 and its own
//! port with the JSON-RPC WebSocket at `/websocket` (Moonraker's documented methods
//! `server.connection.identify`, `server.info`, `printer.objects.subscribe` /
//! `printer.objects.query`, `server.history.list`; notifications `notify_status_update`
//! with only the changed fields, `notify_history_changed`) and `GET /server/info`.
//! With an API key set, a request without the right `X-Api-Key` gets 401 (Moonraker's
//! authorization component).
//!
//! A ticker per printer runs the clock and hands every socket client the objects twice a
//! second; each client sends what changed since its last update. Reboot and disconnect
//! close every socket and restart the server, as for the other simulated printers.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use tokio::sync::{Notify, broadcast, watch};
use tokio::time::Instant;
use warp::Filter;
use warp::http::StatusCode;
use warp::reply::{Reply, Response};
use warp::ws::{Message, WebSocket, Ws};

use super::farm::SimStatus;
use super::http_serve::{self, SentLog, SimHttpPrinter};
use super::moonraker::MoonModel;
use super::{Action, SimError};

/// What a `garbage` action sends every socket client: cut-off JSON.
pub const GARBAGE_FRAME: &str =
    "{\"jsonrpc\":\"2.0\",\"method\":\"notify_status_update\",\"params\":[{\"print_stats\":";
const TICK: Duration = Duration::from_millis(250);
/// Messages queued per socket client; one further behind skips.
const FANOUT_CAPACITY: usize = 256;
/// Largest request accepted from a socket client.
const MAX_CLIENT_MESSAGE: usize = 64 * 1024;
/// Largest `limit` of `server.history.list` served (Moonraker caps pages too).
const HISTORY_LIMIT_MAX: usize = 100;
/// Moonraker's version whose documentation this simulator follows.
pub const MOONRAKER_VERSION: &str = "v0.9.3-sim";

#[derive(Clone, Debug)]
enum Feed {
    Objects(Arc<Value>),
    Raw(Arc<str>),
}

#[derive(Debug)]
struct Inner {
    model: MoonModel,
    offline_until: Option<Instant>,
    silent_until: Option<Instant>,
    served: u64,
}

/// See the module documentation.
#[derive(Debug)]
pub struct MoonPrinter {
    pub id: String,
    pub api_key: String,
    pub addr: SocketAddr,
    reboot_for: Duration,
    inner: Mutex<Inner>,
    restart: Notify,
    fanout: broadcast::Sender<Feed>,
    kick: watch::Sender<u64>,
    /// Status updates, notifications and object answers sent (`GET /printers/{id}/sent`).
    sent: SentLog,
}

impl MoonPrinter {
    pub fn new(
        id: String,
        api_key: String,
        addr: SocketAddr,
        reboot_for: Duration,
        first_job: u64,
    ) -> Self {
        Self {
            inner: Mutex::new(Inner {
                model: MoonModel::new(first_job),
                offline_until: None,
                silent_until: None,
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

    /// When the recent status updates (`notify_status_update`, other notifications,
    /// subscribe and query answers) went out, unix ms.
    pub fn sent_log(&self) -> Vec<u64> {
        self.sent.snapshot()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn publish(&self, notes: Vec<Value>) {
        for n in notes {
            let _ = self.fanout.send(Feed::Raw(Arc::from(n.to_string())));
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
                // Moonraker restarts; Klipper keeps printing.
                g.offline_until = Some(now + self.reboot_for);
                g.silent_until = None;
                drop(g);
                self.kick_all();
                self.restart.notify_one();
            }
            Action::Silence { seconds } => {
                g.silent_until = Some(now + Duration::from_secs(*seconds))
            }
            Action::Garbage => {
                drop(g);
                let _ = self.fanout.send(Feed::Raw(Arc::from(GARBAGE_FRAME)));
            }
            other => {
                if g.offline_until.is_some_and(|t| now < t) {
                    return Err(SimError::Conflict(format!(
                        "printer {} is rebooting",
                        self.id
                    )));
                }
                g.model.apply(other, now)?;
                let notes = g.model.take_notifications();
                let objects = g.model.objects(now);
                drop(g);
                self.publish(notes);
                let _ = self.fanout.send(Feed::Objects(Arc::new(objects)));
            }
        }
        Ok(())
    }

    pub fn status(&self) -> SimStatus {
        let now = Instant::now();
        let mut g = self.lock();
        g.model.advance(now);
        let notes = g.model.take_notifications();
        let current = g
            .model
            .current(now)
            .map(|(p, j, c)| (p.to_string(), j.to_string(), c));
        let st = SimStatus {
            id: self.id.clone(),
            state: g.model.state().to_string(),
            active: current.is_some(),
            file: current.as_ref().map(|c| c.0.clone()),
            progress: current.as_ref().map(|c| c.2).unwrap_or(0.0),
            job_id: current.as_ref().map(|c| c.1.clone()),
            layer: None,
            total_layers: None,
            online: g.offline_until.is_none_or(|t| now >= t),
            silent: g.silent_until.is_some_and(|t| now < t),
            clients: self.fanout.receiver_count(),
            reports_sent: g.served,
            jobs_started: g.model.jobs_started(),
        };
        drop(g);
        self.publish(notes);
        st
    }

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
            let notes = g.model.take_notifications();
            let quiet =
                g.silent_until.is_some_and(|t| now < t) || g.offline_until.is_some_and(|t| now < t);
            let objects = (n.is_multiple_of(2) && !quiet && self.fanout.receiver_count() > 0)
                .then(|| g.model.objects(now));
            drop(g);
            self.publish(notes);
            if let Some(o) = objects {
                let _ = self.fanout.send(Feed::Objects(Arc::new(o)));
            }
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

    fn server_info(&self) -> Value {
        json!({"klippy_connected": true, "klippy_state": "ready",
               "components": ["database", "file_manager", "klippy_apis", "machine", "data_store", "history", "authorization"],
               "failed_components": [], "registered_directories": ["config", "gcodes"], "warnings": [],
               "websocket_count": self.fanout.receiver_count(), "moonraker_version": MOONRAKER_VERSION,
               "api_version": [1, 5, 0], "api_version_string": "1.5.0"})
    }
}

fn routes(p: Arc<MoonPrinter>) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    let me = warp::any().map(move || Arc::clone(&p));
    let key = warp::header::optional::<String>("x-api-key");
    let socket = warp::path!("websocket")
        .and(warp::ws())
        .and(me.clone())
        .and(key)
        .map(|ws: Ws, p: Arc<MoonPrinter>, key: Option<String>| {
            if key.as_deref() != Some(p.api_key.as_str()) {
                return unauthorized();
            }
            ws.max_message_size(MAX_CLIENT_MESSAGE)
                .on_upgrade(move |s| client(p, s))
                .into_response()
        });
    let info = warp::path!("server" / "info")
        .and(warp::get())
        .and(me)
        .and(key)
        .map(|p: Arc<MoonPrinter>, key: Option<String>| {
            if key.as_deref() != Some(p.api_key.as_str()) {
                return unauthorized();
            }
            warp::reply::json(&json!({"result": p.server_info()})).into_response()
        });
    socket
        .or(info)
        .unify()
        .recover(|_| async {
            Ok::<_, Infallible>(
                warp::reply::with_status(
                    warp::reply::json(&json!({"error": {"code": 404, "message": "Not Found"}})),
                    StatusCode::NOT_FOUND,
                )
                .into_response(),
            )
        })
        .unify()
}

fn unauthorized() -> Response {
    warp::reply::with_status(
        warp::reply::json(&json!({"error": {"code": 401, "message": "Unauthorized"}})),
        StatusCode::UNAUTHORIZED,
    )
    .into_response()
}

/// The fields of `now` that differ from `before`, per object (Moonraker sends only those).
fn delta(before: &Value, now: &Value, subscribed: &[String]) -> Map<String, Value> {
    let mut out = Map::new();
    for name in subscribed {
        let (Some(b), Some(n)) = (before[name].as_object(), now[name].as_object()) else {
            continue;
        };
        let changed: Map<String, Value> = n
            .iter()
            .filter(|(k, v)| b.get(*k) != Some(v))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if !changed.is_empty() {
            out.insert(name.clone(), Value::Object(changed));
        }
    }
    out
}

/// The objects of a subscribe/query request (all fields of each; Moonraker filters
/// fields too, the daemon asks for all).
fn pick(objects: &Value, wanted: &Value) -> (Vec<String>, Value) {
    let names: Vec<String> = wanted
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    let mut status = Map::new();
    for n in &names {
        if let Some(o) = objects.get(n) {
            status.insert(n.clone(), o.clone());
        }
    }
    (names, Value::Object(status))
}

async fn client(p: Arc<MoonPrinter>, ws: WebSocket) {
    let (mut tx, mut rx) = ws.split();
    let mut kick = p.kick.subscribe();
    let mut feed = p.fanout.subscribe();
    let mut subscribed: Vec<String> = Vec::new();
    let mut last = Value::Null;
    loop {
        let out: Option<String> = tokio::select! {
            _ = kick.changed() => break,
            m = rx.next() => {
                let Some(Ok(m)) = m else { break };
                if m.is_close() {
                    break;
                }
                let Ok(text) = m.to_str() else { continue };
                let silent_until = p.lock().silent_until.filter(|t| Instant::now() < *t);
                if let Some(t) = silent_until {
                    tokio::time::sleep_until(t).await;
                }
                let req: Value = serde_json::from_str(text).unwrap_or_default();
                let id = req["id"].clone();
                let now = Instant::now();
                let mut g = p.lock();
                g.served += 1;
                g.model.advance(now);
                let objects = g.model.objects(now);
                let result = match req["method"].as_str().unwrap_or("") {
                    "server.connection.identify" => Ok(json!({"connection_id": 1})),
                    "server.info" => Ok(p.server_info()),
                    "printer.objects.subscribe" => {
                        let (names, status) = pick(&objects, &req["params"]["objects"]);
                        subscribed = names;
                        last = objects.clone();
                        Ok(json!({"eventtime": 0.0, "status": status}))
                    }
                    "printer.objects.query" => Ok(json!({"eventtime": 0.0, "status": pick(&objects, &req["params"]["objects"]).1})),
                    "server.history.list" => {
                        let start = req["params"]["start"].as_u64().unwrap_or(0) as usize;
                        let limit = (req["params"]["limit"].as_u64().unwrap_or(50) as usize).min(HISTORY_LIMIT_MAX);
                        Ok(g.model.history_list(start, limit))
                    }
                    m => Err(json!({"code": -32601, "message": format!("Method not found: {m}")})),
                };
                drop(g);
                if matches!(req["method"].as_str(), Some("printer.objects.subscribe" | "printer.objects.query")) {
                    p.sent.record();
                }
                if id.is_null() {
                    None
                } else {
                    Some(match result {
                        Ok(r) => json!({"jsonrpc": "2.0", "result": r, "id": id}),
                        Err(e) => json!({"jsonrpc": "2.0", "error": e, "id": id}),
                    }.to_string())
                }
            }
            f = feed.recv() => match f {
                Ok(Feed::Raw(t)) => {
                    p.sent.record();
                    Some(t.to_string())
                }
                Ok(Feed::Objects(o)) => {
                    let d = delta(&last, &o, &subscribed);
                    last = (*o).clone();
                    (!d.is_empty()).then(|| {
                        p.sent.record();
                        json!({"jsonrpc": "2.0", "method": "notify_status_update",
                               "params": [d, 0.0]}).to_string()
                    })
                }
                Err(broadcast::error::RecvError::Lagged(_)) => None,
                Err(broadcast::error::RecvError::Closed) => break,
            },
        };
        if let Some(text) = out
            && tx.send(Message::text(text)).await.is_err()
        {
            break;
        }
    }
    let _ = tx.close().await;
}

impl SimHttpPrinter for MoonPrinter {
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
