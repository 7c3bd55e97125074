//! The tap: a Broadcaster client like a WebSocket connection, whose "socket" is the
//! integrations. It reads each event once, decides what is news (a job's status
//! changed, a printer's connection or state changed — not progress), renders one
//! delivery per webhook that wants it, and passes printer states and job news to MQTT.
//!
//! Its outbox is the Broadcaster's bounded per-client queue: if the tap ever fell
//! behind by that much, the Broadcaster would drop it rather than wait; the tap counts
//! that (`tap_overflows`), logs it and connects again.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use actix::Addr;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::formats::{self, Incoming, JobHead, StatusHead};
use super::queue::Queue;
use super::{Hooks, mqtt};
use crate::broadcast::{Broadcaster, Client, CloseReason, Connect, EventKind, Filter};
use crate::registry::PrinterRegistry;
use crate::store::webhooks::Delivery;

/// Jobs whose last status the tap remembers (to tell a status change from progress).
/// Far more than a farm has open; the oldest are forgotten first.
const MAX_TRACKED_JOBS: usize = 50_000;
/// Largest delivery body queued: a job with the largest customer_info and notes the API
/// accepts fits; anything bigger is dropped and counted rather than stored.
pub const MAX_DELIVERY_BYTES: usize = 256 * 1024;
/// Longest printer error kept as a failure's reason.
const MAX_REASON_LEN: usize = 200;

#[derive(Deserialize)]
struct Head<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(borrow)]
    data: &'a RawValue,
}

struct State {
    hooks: Hooks,
    queue: Arc<Queue>,
    mqtt: Option<Arc<mqtt::Shared>>,
    printers: PrinterRegistry,
    jobs: HashMap<String, String>,
    job_order: VecDeque<String>,
    /// Per printer: connection, state, last error.
    printer_state: HashMap<String, (String, String, Option<String>)>,
}

pub struct TapHandle {
    client: Mutex<Option<Arc<Client>>>,
    state: Mutex<State>,
    pub overflows: AtomicU64,
    has_mqtt: bool,
}

impl TapHandle {
    fn filter(&self) -> Filter {
        let hooks = self
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .hooks
            .all();
        let events = if hooks.is_empty() && !self.has_mqtt {
            // Nothing listens: take only the rare settings event, so an idle tap costs
            // nothing at any farm size.
            EventKind::SettingsUpdated.bit()
        } else {
            [
                EventKind::JobAutoCreated,
                EventKind::JobCreated,
                EventKind::JobUpdated,
                EventKind::JobDeleted,
                EventKind::PrinterStatus,
            ]
            .iter()
            .fold(0, |m, k| m | k.bit())
        };
        Filter {
            events,
            printer_ids: Default::default(),
        }
    }

    /// Webhooks changed: take the events they need.
    pub fn refresh_filter(&self) {
        let f = self.filter();
        if let Some(c) = &*self.client.lock().unwrap_or_else(|e| e.into_inner()) {
            c.set_filter(f);
        }
    }

    /// A deleted printer: its last state is forgotten (a printer added again under its
    /// id starts afresh, its first status no news).
    pub fn forget_printer(&self, printer: &str) {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .printer_state
            .remove(printer);
    }

    /// Routes whatever the outbox holds now.
    pub fn drain(&self) {
        let client = self
            .client
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(c) = client {
            // Taken under the state lock, as the tap's task does: when this returns,
            // everything offered before it has been routed, not half-way in the task.
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let batch = c.take();
            for m in batch.messages {
                st.route(m);
            }
        }
    }
}

/// Connects to the Broadcaster before returning, so no event published after the
/// daemon's start is missed; then routes events in a task of its own.
pub async fn start(
    broadcaster: Addr<Broadcaster>,
    hooks: Hooks,
    queue: Arc<Queue>,
    mqtt: Option<Arc<mqtt::Shared>>,
    printers: PrinterRegistry,
) -> Arc<TapHandle> {
    let handle = Arc::new(TapHandle {
        client: Mutex::new(None),
        has_mqtt: mqtt.is_some(),
        state: Mutex::new(State {
            hooks,
            queue,
            mqtt,
            printers,
            jobs: HashMap::new(),
            job_order: VecDeque::new(),
            printer_state: HashMap::new(),
        }),
        overflows: AtomicU64::new(0),
    });
    let h = handle.clone();
    let mut first = broadcaster.send(Connect).await.ok();
    tokio::spawn(async move {
        loop {
            let client = match first.take() {
                Some(c) => c,
                None => match broadcaster.send(Connect).await {
                    Ok(c) => c,
                    Err(_) => return, // the Broadcaster stopped: the daemon is going down.
                },
            };
            client.internal.store(true, Ordering::Relaxed);
            client.set_filter(h.filter());
            *h.client.lock().unwrap_or_else(|e| e.into_inner()) = Some(client.clone());
            loop {
                client.ready.notified().await;
                let batch = {
                    let mut st = h.state.lock().unwrap_or_else(|e| e.into_inner());
                    let mut batch = client.take();
                    for m in batch.messages.drain(..) {
                        st.route(m);
                    }
                    batch
                };
                match batch.close {
                    None => {}
                    Some(CloseReason::Shutdown) => return,
                    Some(reason) => {
                        let reason = reason.text();
                        h.overflows.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(%reason, "the integrations fell behind the event stream; events were lost for webhooks and MQTT");
                        break;
                    }
                }
            }
        }
    });
    handle
}

impl State {
    fn route(&mut self, msg: Arc<str>) {
        let Ok(head) = serde_json::from_str::<Head>(&msg) else {
            return;
        };
        let Some(kind) = EventKind::parse(head.kind) else {
            return;
        };
        match kind {
            EventKind::PrinterStatus => self.on_status(&msg, head.data),
            EventKind::SettingsUpdated => {}
            _ => self.on_job(kind, &msg, head.data),
        }
    }

    fn on_status(&mut self, msg: &Arc<str>, data: &RawValue) {
        let Ok(s) = serde_json::from_str::<StatusHead>(data.get()) else {
            return;
        };
        // A status the Broadcaster held for a printer deleted since would bring its
        // retained topics back: only printers in the registry are published.
        if let Some(m) = &self.mqtt
            && self.printers.get(&s.id).is_some()
        {
            m.set_state(&s.id, data.get());
        }
        let error = s
            .error
            .as_deref()
            .or(s.last_error.as_deref())
            .map(|e| cut(e, MAX_REASON_LEN));
        let now = (s.connection.clone(), s.state.clone(), error);
        let changed = match self.printer_state.get(&s.id) {
            // The first status of a printer after start is not news.
            None => false,
            Some((c, st, _)) => *c != now.0 || *st != now.1,
        };
        if self.printer_state.contains_key(&s.id) || self.printers.get(&s.id).is_some() {
            self.printer_state.insert(s.id.clone(), now);
        }
        if changed {
            let id = s.id.clone();
            let ev = Incoming {
                kind: EventKind::PrinterStatus,
                envelope: msg.clone(),
                job: None,
                status: Some(s),
            };
            self.fan_out(&ev, Some(&id), None);
        }
    }

    fn on_job(&mut self, kind: EventKind, msg: &Arc<str>, data: &RawValue) {
        let Ok(job) = serde_json::from_str::<JobHead>(data.get()) else {
            return;
        };
        let status = job.status.clone().unwrap_or_default();
        let news = match kind {
            EventKind::JobDeleted => {
                self.jobs.remove(&job.id);
                true
            }
            EventKind::JobUpdated => match self.jobs.get(&job.id) {
                Some(prev) => *prev != status,
                // A job not seen since start (the daemon restarted under it): progress
                // of a running job is not news; any other status is.
                None => status != "running",
            },
            _ => true,
        };
        if kind != EventKind::JobDeleted {
            self.remember(&job.id, &status);
        }
        if !news {
            return;
        }
        if let Some(m) = &self.mqtt {
            m.push_event(kind.as_str(), msg.clone());
        }
        let printer = job.printer_id.clone();
        let ev = Incoming {
            kind,
            envelope: msg.clone(),
            job: Some(job),
            status: None,
        };
        self.fan_out(&ev, printer.as_deref(), Some(&status));
    }

    fn remember(&mut self, job: &str, status: &str) {
        if self
            .jobs
            .insert(job.to_owned(), status.to_owned())
            .is_none()
        {
            self.job_order.push_back(job.to_owned());
            while self.job_order.len() > MAX_TRACKED_JOBS {
                if let Some(old) = self.job_order.pop_front() {
                    self.jobs.remove(&old);
                }
            }
        }
    }

    /// One delivery per webhook that wants the event.
    fn fan_out(&mut self, ev: &Incoming, printer: Option<&str>, status: Option<&str>) {
        let hooks = self.hooks.all();
        if hooks.is_empty() {
            return;
        }
        let name = printer
            .and_then(|p| self.printers.get(p))
            .map(|e| e.config.display_name().to_owned())
            .or_else(|| ev.status.as_ref().and_then(|s| s.name.clone()))
            .or_else(|| printer.map(str::to_owned))
            .unwrap_or_else(|| "an unknown printer".into());
        let reason = printer
            .and_then(|p| self.printer_state.get(p))
            .and_then(|(_, _, e)| e.clone());
        let now = super::deliver::now_ms();
        let mut out = Vec::new();
        for h in hooks {
            if !h.wants(ev.kind, printer, status) {
                continue;
            }
            let r = formats::render(h.cfg.format, ev, &name, reason.as_deref());
            if r.body.len() > MAX_DELIVERY_BYTES {
                self.queue.stats.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(webhook = %h.cfg.id, bytes = r.body.len(), "an event too large for a webhook was dropped");
                continue;
            }
            out.push(Delivery {
                id: format!("dlv_{}", uuid::Uuid::now_v7().simple()),
                webhook_id: h.cfg.id.clone(),
                event_type: ev.kind.as_str().to_owned(),
                body: r.body,
                content_type: r.content_type.to_owned(),
                headers: r.headers,
                created_ms: now,
                attempts: 0,
                next_attempt_ms: now,
            });
        }
        self.queue.push(out);
    }
}

/// At most `max` bytes, cut on a character boundary, marked with `…` when cut.
fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let end = (0..=max)
        .rev()
        .find(|i| s.is_char_boundary(*i))
        .unwrap_or(0);
    format!("{}…", &s[..end])
}
