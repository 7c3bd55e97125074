//! A simulated Bambu printer as the broker and the control API see it: the model (or a
//! replay), the MQTT sessions logged in as this printer, and the connection-level behaviour
//! (reboot, disconnect, silence, garbage).
//!
//! Concurrency: everything lives behind one `std::sync::Mutex` per printer, held only for
//! the few microseconds of a state step and never across an `.await`. One tokio task per
//! printer (`run`) sleeps until the model's next deadline or until a control action wakes it
//! (`Notify`). Frames go to sessions through bounded channels with `try_send`, so a slow
//! client only loses its own QoS 0 reports, as on a real broker, and never stalls the printer.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rumqttc::{Packet, Publish, QoS};
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;

use super::bambu::BambuModel;
use super::farm::{SentReport, SimStatus};
use super::replay::ReplayModel;
use super::{Action, SimError, Style, unix_ms};

/// Reports kept per printer for `SimFarm::report_log` (the most recent ones).
pub const REPORT_LOG_CAPACITY: usize = 256;
/// The `reason` of a refused control command while `refuse` is in effect.
pub const REFUSED_REASON: &str = "mqtt message verify failed";
/// A malformed report: cut off mid-value and not even valid UTF-8.
pub const GARBAGE_PAYLOAD: &[u8] =
    b"{\"print\":{\"command\":\"push_status\",\"gcode_state\":\"RUNN\xff\xfe";

/// What a session's writer is told to do.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// An encoded PUBLISH packet, shared by every subscriber.
    Packet(Bytes),
    /// Drop the connection (disconnect, reboot, shutdown).
    Close,
}

/// One MQTT connection logged in as this printer.
#[derive(Debug)]
pub struct SessionHandle {
    pub id: u64,
    pub tx: mpsc::Sender<Outbound>,
    /// Subscribed to this printer's report topic.
    pub subscribed: bool,
}

/// Where the reports come from.
#[derive(Debug)]
pub enum Source {
    Model(Box<BambuModel>),
    Replay(Box<ReplayModel>),
}

#[derive(Debug)]
struct Inner {
    source: Source,
    sessions: Vec<SessionHandle>,
    offline_until: Option<Instant>,
    silent_until: Option<Instant>,
    /// Until then, `print` control commands are answered `result: "fail"` (§2.12).
    refuse_until: Option<Instant>,
    log: VecDeque<SentReport>,
    reports_sent: u64,
    rng: StdRng,
}

/// See the module documentation.
#[derive(Debug)]
pub struct BambuPrinter {
    pub id: String,
    pub serial: String,
    pub access_code: String,
    /// `None` for a replayed printer.
    pub style: Option<Style>,
    report_topic: String,
    request_topic: String,
    reboot_for: Duration,
    inner: Mutex<Inner>,
    wake: Notify,
}

impl BambuPrinter {
    pub fn new(
        id: String,
        serial: String,
        access_code: String,
        source: Source,
        reboot_for: Duration,
        seed: u64,
    ) -> Self {
        let style = match &source {
            Source::Model(m) => Some(m.style()),
            Source::Replay(_) => None,
        };
        Self {
            report_topic: format!("device/{serial}/report"),
            request_topic: format!("device/{serial}/request"),
            id,
            serial,
            access_code,
            style,
            reboot_for,
            inner: Mutex::new(Inner {
                source,
                sessions: Vec::new(),
                offline_until: None,
                silent_until: None,
                refuse_until: None,
                log: VecDeque::with_capacity(16),
                reports_sent: 0,
                rng: StdRng::seed_from_u64(seed),
            }),
            wake: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn report_topic(&self) -> &str {
        &self.report_topic
    }

    pub fn request_topic(&self) -> &str {
        &self.request_topic
    }

    /// A session logged in as this printer. False while the printer is rebooting (the
    /// broker then drops the connection, as an unreachable printer would).
    pub fn register(&self, session: SessionHandle) -> bool {
        let mut g = self.lock();
        if g.offline_until.is_some_and(|t| Instant::now() < t) {
            return false;
        }
        g.sessions.push(session);
        true
    }

    pub fn set_subscribed(&self, session_id: u64, subscribed: bool) {
        let mut g = self.lock();
        if let Some(s) = g.sessions.iter_mut().find(|s| s.id == session_id) {
            s.subscribed = subscribed;
        }
        drop(g);
        // A replay starts with its first subscriber.
        self.wake.notify_one();
    }

    pub fn unregister(&self, session_id: u64) {
        self.lock().sessions.retain(|s| s.id != session_id);
    }

    /// The printer's own task: advance the model at its deadlines and publish what it says.
    pub async fn run(self: Arc<Self>) {
        loop {
            let next = self.step(Instant::now(), unix_ms());
            tokio::select! {
                _ = tokio::time::sleep_until(next) => {}
                _ = self.wake.notified() => {}
            }
        }
    }

    /// Runs everything due at `now`; returns when to run again.
    fn step(&self, now: Instant, wall_ms: u64) -> Instant {
        let mut g = self.lock();
        let g = &mut *g;
        if let Some(until) = g.offline_until {
            if now < until {
                return until;
            }
            g.offline_until = None;
            match &mut g.source {
                Source::Model(m) => m.reboot_end(now),
                Source::Replay(r) => r.reboot_end(now),
            }
        }
        let silent = g.silent_until.is_some_and(|t| now < t);
        if !silent {
            g.silent_until = None;
        }
        let emit = !silent && g.sessions.iter().any(|s| s.subscribed);
        let (frames, mut next) = match &mut g.source {
            Source::Model(m) => {
                let frames = m.poll(now, wall_ms, emit, &mut g.rng);
                (frames, m.next_deadline())
            }
            Source::Replay(r) => {
                let frames = r.poll(now, emit);
                (
                    frames,
                    r.next_deadline().unwrap_or(now + Duration::from_secs(3600)),
                )
            }
        };
        for frame in frames {
            publish(g, &self.report_topic, frame, wall_ms);
        }
        if let Some(until) = g.silent_until {
            next = next.max(until);
        }
        next
    }

    /// A message a client published to `device/{serial}/request` (protocols.md §2.3).
    pub fn request(&self, payload: &[u8]) {
        let Ok(Value::Object(req)) = serde_json::from_slice::<Value>(payload) else {
            tracing::debug!(printer_id = %self.id, "ignoring a request that is not a JSON object");
            return;
        };
        let now = Instant::now();
        let wall_ms = unix_ms();
        let mut g = self.lock();
        let g = &mut *g;
        if g.offline_until.is_some() || g.silent_until.is_some_and(|t| now < t) {
            return;
        }
        let command = |key: &str| {
            req.get(key)
                .and_then(|v| v.get("command"))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let sequence_id = |key: &str| {
            req.get(key)
                .and_then(|v| v.get("sequence_id"))
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string())
                })
                .unwrap_or_else(|| "0".into())
        };
        if let Some("pushall" | "start") = command("pushing").as_deref() {
            let frame = match &mut g.source {
                Source::Model(m) => m.full_frame(),
                Source::Replay(r) => r.full_frame(),
            };
            publish(g, &self.report_topic, frame, wall_ms);
        }
        if command("info").as_deref() == Some("get_version") {
            let seq = sequence_id("info");
            let frame = match &g.source {
                Source::Model(m) => m.version_frame(&seq),
                Source::Replay(_) => Bytes::from(
                    json!({"info": {"command": "get_version", "sequence_id": seq, "result": "success",
                                    "module": [{"name": "ota", "sw_ver": "01.08.00.00", "hw_ver": "", "sn": self.serial}]}})
                    .to_string(),
                ),
            };
            publish(g, &self.report_topic, frame, wall_ms);
        }
        if let Some(cmd) = command("print") {
            let action = match cmd.as_str() {
                "pause" => Some(Action::Pause),
                "resume" => Some(Action::Resume),
                "stop" => Some(Action::Cancel),
                _ => None,
            };
            let refusing = g.refuse_until.is_some_and(|t| now < t);
            let result = match (&mut g.source, &action) {
                // What 2025 firmware answers to an unsigned command (§2.12, §7.1 15).
                (_, Some(_)) if refusing => Err(REFUSED_REASON.to_string()),
                (Source::Model(m), Some(a)) => {
                    m.apply(a, now, wall_ms / 1000).map_err(|e| e.to_string())
                }
                _ => Err(format!(
                    "the simulator does not handle print command {cmd:?}"
                )),
            };
            let seq = sequence_id("print");
            let mut ack = json!({"print": {"command": cmd, "sequence_id": seq,
                                           "result": if result.is_ok() { "success" } else { "fail" }}});
            if let Err(reason) = result {
                ack["print"]["reason"] = json!(reason);
            }
            publish(g, &self.report_topic, Bytes::from(ack.to_string()), wall_ms);
            self.wake.notify_one();
        }
    }

    /// Applies a control action.
    pub fn control(&self, action: &Action) -> Result<(), SimError> {
        let now = Instant::now();
        let wall_ms = unix_ms();
        let mut guard = self.lock();
        let g = &mut *guard;
        match action {
            Action::Disconnect => close_sessions(g),
            Action::Reboot => {
                close_sessions(g);
                g.offline_until = Some(now + self.reboot_for);
                g.silent_until = None;
                match &mut g.source {
                    Source::Model(m) => m.reboot_begin(now),
                    Source::Replay(r) => r.reboot_begin(now),
                }
            }
            Action::Silence { seconds } => {
                g.silent_until = Some(now + Duration::from_secs(*seconds))
            }
            Action::Refuse { seconds } => {
                g.refuse_until = Some(now + Duration::from_secs(*seconds))
            }
            Action::Garbage => publish(
                g,
                &self.report_topic,
                Bytes::from_static(GARBAGE_PAYLOAD),
                wall_ms,
            ),
            other => match &mut g.source {
                Source::Model(m) => {
                    if g.offline_until.is_some() {
                        return Err(SimError::Conflict(format!(
                            "printer {} is rebooting",
                            self.id
                        )));
                    }
                    m.apply(other, now, wall_ms / 1000)?
                }
                Source::Replay(_) => {
                    return Err(SimError::Unsupported(format!(
                        "printer {} replays a recording; it takes only reboot, disconnect, silence and garbage",
                        self.id
                    )));
                }
            },
        }
        drop(guard);
        self.wake.notify_one();
        Ok(())
    }

    pub fn status(&self) -> SimStatus {
        let now = Instant::now();
        let g = self.lock();
        let online = g.offline_until.is_none_or(|t| now >= t);
        let silent = g.silent_until.is_some_and(|t| now < t);
        let clients = g.sessions.len();
        let (state, active, file, progress, job_id, layer, total_layers, jobs_started) =
            match &g.source {
                Source::Model(m) => {
                    let (layer, total) = m.layers();
                    let task = m.task_id();
                    (
                        m.gcode_state().to_string(),
                        m.is_active(),
                        Some(m.subtask_name().to_string()).filter(|s| !s.is_empty()),
                        m.progress() as f64,
                        Some(task.to_string()).filter(|t| !t.is_empty() && t != "0"),
                        Some(layer as u32),
                        Some(total as u32),
                        m.jobs_started(),
                    )
                }
                Source::Replay(r) => {
                    let s = |k: &str| r.field(k).and_then(Value::as_str).map(str::to_string);
                    let n = |k: &str| r.field(k).and_then(Value::as_u64);
                    let state = s("gcode_state").unwrap_or_default();
                    let active = matches!(
                        state.as_str(),
                        "PREPARE" | "SLICING" | "RUNNING" | "PAUSE" | "INIT"
                    );
                    (
                        state,
                        active,
                        s("subtask_name").filter(|x| !x.is_empty()),
                        n("mc_percent").unwrap_or(0) as f64,
                        s("task_id").filter(|t| !t.is_empty() && t != "0"),
                        n("layer_num").map(|x| x as u32),
                        n("total_layer_num").map(|x| x as u32),
                        0,
                    )
                }
            };
        SimStatus {
            id: self.id.clone(),
            state,
            active,
            file,
            progress,
            job_id,
            layer,
            total_layers,
            online,
            silent,
            clients,
            reports_sent: g.reports_sent,
            jobs_started,
        }
    }

    pub fn report_log(&self) -> Vec<SentReport> {
        self.lock().log.iter().cloned().collect()
    }

    /// Send times (unix ms) of the status reports (`push_status`) in the log, oldest
    /// first: what the load harness times the daemon against.
    pub fn sent_log(&self) -> Vec<u64> {
        let finder = memchr::memmem::Finder::new(b"\"push_status\"");
        self.lock()
            .log
            .iter()
            .filter(|r| finder.find(&r.raw).is_some())
            .map(|r| r.sent_at_ms)
            .collect()
    }

    /// Closes every session (farm shutdown).
    pub fn close_all(&self) {
        close_sessions(&mut self.lock());
    }
}

fn close_sessions(g: &mut Inner) {
    for s in g.sessions.drain(..) {
        // A full queue means the writer is stuck; dropping the sender ends it as well.
        let _ = s.tx.try_send(Outbound::Close);
    }
}

/// Sends one report to every subscribed session and records it.
fn publish(g: &mut Inner, topic: &str, payload: Bytes, wall_ms: u64) {
    let packet = encode_publish(topic, payload.clone());
    g.sessions.retain(|s| {
        if !s.subscribed {
            return true;
        }
        match s.tx.try_send(Outbound::Packet(packet.clone())) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::debug!(
                    session = s.id,
                    "client is not reading; dropped a QoS 0 report"
                );
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    });
    g.reports_sent += 1;
    if g.log.len() == REPORT_LOG_CAPACITY {
        g.log.pop_front();
    }
    g.log.push_back(SentReport {
        sent_at_ms: wall_ms,
        raw: payload,
    });
}

/// A QoS 0 PUBLISH packet, encoded once and shared by every subscriber.
pub fn encode_publish(topic: &str, payload: Bytes) -> Bytes {
    let len = payload.len() + topic.len() + 8;
    let packet = Packet::Publish(Publish::from_bytes(topic, QoS::AtMostOnce, payload));
    let mut buf = BytesMut::with_capacity(len);
    // Writing into a BytesMut cannot fail below the size limit.
    let _ = packet.write(&mut buf, usize::MAX);
    buf.freeze()
}
