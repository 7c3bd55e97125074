//! Telling the farm what happened (issue 19): webhooks (with pusher formats) and MQTT
//! for Home Assistant.
//!
//! The integrations see exactly what WebSocket clients see: the tap (`tap.rs`) is a
//! Broadcaster client, so every event it gets is already durable in the job history.
//! Webhook deliveries go through an on-disk queue (`queue.rs`) and a deliverer
//! (`deliver.rs`); MQTT through a latest-state table and a publisher (`mqtt.rs`). None
//! of it can block the JobCreator or the Broadcaster: the tap's outbox, the queue's
//! pending list and the MQTT event queue are bounded, and overflow is counted, not
//! waited for.

pub use crate::config::notify as config;
pub mod deliver;
pub mod formats;
mod ha;
pub mod metrics;
pub mod mqtt;
pub mod queue;
mod tap;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};

use actix::Addr;
use serde::Serialize;

use crate::broadcast::{Broadcaster, EventKind};
use crate::domain::JobStatus;
use crate::registry::PrinterRegistry;
use crate::store::webhooks::HookStatus;
use crate::store::{self, StoreError};
use config::{MqttConfig, WebhookConfig};

/// One webhook with its filters in the form the tap checks them.
#[derive(Debug)]
pub struct Hook {
    pub cfg: WebhookConfig,
    /// `config` (the file) or `api`.
    pub managed_by: &'static str,
    kinds: u8,
    printers: HashSet<String>,
    statuses: HashSet<JobStatus>,
}

impl Hook {
    pub fn new(cfg: WebhookConfig, managed_by: &'static str) -> Hook {
        Hook {
            kinds: cfg.kinds().iter().fold(0, |m, k| m | k.bit()),
            printers: cfg
                .printer_ids
                .iter()
                .map(|p| p.as_str().to_owned())
                .collect(),
            statuses: cfg.statuses.iter().copied().collect(),
            cfg,
            managed_by,
        }
    }

    /// Whether this webhook wants an event of `kind` about `printer` (with the job's new
    /// `status` for `job_updated`).
    pub fn wants(&self, kind: EventKind, printer: Option<&str>, status: Option<&str>) -> bool {
        if self.kinds & kind.bit() == 0 {
            return false;
        }
        if !self.printers.is_empty() && !printer.is_some_and(|p| self.printers.contains(p)) {
            return false;
        }
        if kind == EventKind::JobUpdated && !self.statuses.is_empty() {
            return status.is_some_and(|s| self.statuses.iter().any(|x| x.as_str() == s));
        }
        true
    }
}

/// The webhooks in force, shared by the tap, the deliverer and the API.
#[derive(Clone, Default)]
pub struct Hooks(Arc<RwLock<Vec<Arc<Hook>>>>);

impl Hooks {
    pub fn all(&self) -> Vec<Arc<Hook>> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn get(&self, id: &str) -> Option<Arc<Hook>> {
        self.all().into_iter().find(|h| h.cfg.id == id)
    }

    fn push(&self, h: Hook) {
        self.0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(Arc::new(h));
    }

    fn remove(&self, id: &str) {
        self.0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|h| h.cfg.id != id);
    }
}

/// Why a webhook could not be added or removed.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    #[error("webhook {0} not found; GET /api/v1/webhooks lists them")]
    NotFound(String),
    #[error(
        "webhook {0} is defined in the config file; remove its [[webhooks]] entry there and restart"
    )]
    InConfig(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Counters for `/api/v1/webhooks` and `/metrics`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Counters {
    /// Deliveries dropped before they reached the on-disk queue.
    pub dropped_deliveries: u64,
    /// Times the tap fell behind the event stream and lost events.
    pub tap_overflows: u64,
    /// Deliveries on disk now.
    pub queued: u64,
    pub mqtt_connected: Option<bool>,
    pub mqtt_published: u64,
    pub mqtt_dropped_events: u64,
}

struct Inner {
    hooks: Hooks,
    queue: Arc<queue::Queue>,
    mqtt: Option<Arc<mqtt::Mqtt>>,
    tap: Arc<tap::TapHandle>,
}

/// The running integrations.
#[derive(Clone)]
pub struct Integrations {
    inner: Arc<Inner>,
}

impl Integrations {
    /// Starts the tap, the queue writer, the deliverer and (with `[mqtt]`) the MQTT
    /// publisher. Needs a tokio runtime and the migrated database at `db_path`.
    pub async fn start(
        webhooks: &[WebhookConfig],
        mqtt_cfg: Option<&MqttConfig>,
        db_path: &Path,
        broadcaster: Addr<Broadcaster>,
        printers: PrinterRegistry,
    ) -> anyhow::Result<Integrations> {
        let queue = queue::Queue::open(db_path)?;
        let hooks = Hooks::default();
        for w in webhooks {
            hooks.push(Hook::new(w.clone(), "config"));
        }
        let conn = store::open_read_write(db_path)?;
        for (id, json) in store::webhooks::list_api(&conn)? {
            match serde_json::from_str::<WebhookConfig>(&json) {
                Ok(cfg) if hooks.get(&cfg.id).is_none() => hooks.push(Hook::new(cfg, "api")),
                Ok(_) => {
                    tracing::warn!(webhook = %id, "a webhook saved through the API has the id of a config-file webhook; the config file's is used")
                }
                Err(e) => {
                    tracing::warn!(webhook = %id, error = %e, "a saved webhook cannot be read; skipped")
                }
            }
        }
        drop(conn);
        let mqtt = match mqtt_cfg {
            Some(c) => Some(mqtt::Mqtt::start(c.clone()).map_err(anyhow::Error::msg)?),
            None => None,
        };
        let tap = tap::start(
            broadcaster,
            hooks.clone(),
            queue.clone(),
            mqtt.as_ref().map(|m| m.shared.clone()),
            printers,
        )
        .await;
        tokio::spawn(queue.clone().run_writer());
        tokio::spawn(deliver::run(queue.clone(), hooks.clone()));
        tracing::info!(
            webhooks = hooks.all().len(),
            mqtt = mqtt.is_some(),
            queued = queue.queued(),
            "integrations started"
        );
        Ok(Integrations {
            inner: Arc::new(Inner {
                hooks,
                queue,
                mqtt,
                tap,
            }),
        })
    }

    pub fn hooks(&self) -> Vec<Arc<Hook>> {
        self.inner.hooks.all()
    }

    /// Adds a webhook through the API (stored, in force at once).
    pub async fn add(&self, mut cfg: WebhookConfig) -> Result<Arc<Hook>, HookError> {
        if cfg.id.is_empty() {
            cfg.id = format!("wh_{}", uuid::Uuid::now_v7().simple());
        }
        cfg.validate().map_err(HookError::Invalid)?;
        if self.inner.hooks.all().len() >= config::MAX_WEBHOOKS {
            return Err(HookError::Invalid(format!(
                "there are already {} webhooks, the most printfarmd keeps; delete one first",
                config::MAX_WEBHOOKS
            )));
        }
        if self.inner.hooks.get(&cfg.id).is_some() {
            return Err(HookError::Conflict(format!(
                "a webhook with id {} already exists",
                cfg.id
            )));
        }
        let json = stored_json(&cfg);
        let (id, at) = (cfg.id.clone(), crate::time::format(crate::time::now()));
        self.inner
            .queue
            .db(move |c| store::webhooks::insert_api(c, &id, &json, &at))
            .await
            .map_err(|e| match e {
                StoreError::Conflict(m) => HookError::Conflict(m),
                e => HookError::Store(e),
            })?;
        self.inner.hooks.push(Hook::new(cfg.clone(), "api"));
        self.inner.tap.refresh_filter();
        tracing::info!(webhook = %cfg.id, format = ?cfg.format, "webhook added");
        self.inner
            .hooks
            .get(&cfg.id)
            .ok_or(HookError::NotFound(cfg.id))
    }

    /// Removes an API webhook and its queued deliveries.
    pub async fn remove(&self, id: &str) -> Result<(), HookError> {
        match self.inner.hooks.get(id) {
            None => return Err(HookError::NotFound(id.to_owned())),
            Some(h) if h.managed_by == "config" => return Err(HookError::InConfig(id.to_owned())),
            Some(_) => {}
        }
        let owned = id.to_owned();
        let dropped = self
            .inner
            .queue
            .db(move |c| store::webhooks::delete_api(c, &owned))
            .await?;
        self.inner.queue.removed(dropped);
        self.inner.hooks.remove(id);
        self.inner.tap.refresh_filter();
        tracing::info!(webhook = %id, dropped, "webhook deleted");
        Ok(())
    }

    /// Each webhook's delivery status (from the database, so it survives restarts).
    pub async fn statuses(&self) -> Result<HashMap<String, HookStatus>, StoreError> {
        self.inner.queue.db(store::webhooks::statuses).await
    }

    pub fn counters(&self) -> Counters {
        let q = &self.inner.queue;
        let m = self.inner.mqtt.as_ref().map(|m| &m.shared.stats);
        Counters {
            dropped_deliveries: q.stats.dropped.load(Ordering::Relaxed),
            tap_overflows: self.inner.tap.overflows.load(Ordering::Relaxed),
            queued: q.queued(),
            mqtt_connected: m.map(|s| s.connected.load(Ordering::Relaxed)),
            mqtt_published: m.map_or(0, |s| s.published.load(Ordering::Relaxed)),
            mqtt_dropped_events: m.map_or(0, |s| s.dropped_events.load(Ordering::Relaxed)),
        }
    }

    /// A printer was deleted: MQTT empties its retained state and discovery topics, and
    /// the tap forgets its last state.
    pub fn printer_removed(&self, printer: &str) {
        if let Some(m) = &self.inner.mqtt {
            m.shared.remove_printer(printer);
        }
        self.inner.tap.forget_printer(printer);
    }

    /// Clean shutdown: route what the tap still holds, commit pending deliveries, and
    /// tell the MQTT broker `offline`.
    pub async fn shutdown(&self) {
        self.inner.tap.drain();
        self.inner.queue.flush().await;
        if let Some(m) = &self.inner.mqtt {
            m.goodbye().await;
        }
    }
}

/// The webhook as stored (its secret included: the daemon signs with it).
fn stored_json(cfg: &WebhookConfig) -> String {
    serde_json::json!({
        "id": cfg.id,
        "name": cfg.name,
        "url": cfg.url.expose(),
        "events": cfg.events,
        "statuses": cfg.statuses,
        "printer_ids": cfg.printer_ids,
        "secret": cfg.secret.as_ref().map(|s| s.expose()),
        "format": cfg.format,
    })
    .to_string()
}

/// The URL as the API shows it: scheme, host and port, the rest (a token, often)
/// replaced by `…`.
pub fn redacted_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => {
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            let rest = if u.path() == "/" && u.query().is_none() {
                "/"
            } else {
                "/…"
            };
            format!(
                "{}://{}{port}{rest}",
                u.scheme(),
                u.host_str().unwrap_or("")
            )
        }
        Err(_) => "…".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_json_reads_back_as_the_same_webhook() {
        let cfg: WebhookConfig = serde_json::from_value(serde_json::json!({
            "id": "w1", "url": "https://h/x?token=abc", "events": ["job_updated"],
            "statuses": ["failed"], "printer_ids": ["p1"], "secret": "s3", "format": "ntfy"
        }))
        .unwrap();
        let back: WebhookConfig = serde_json::from_str(&stored_json(&cfg)).unwrap();
        assert_eq!(back.url.expose(), "https://h/x?token=abc");
        assert_eq!(back.secret.unwrap().expose(), "s3");
        assert_eq!(back.format, config::Format::Ntfy);
        assert_eq!(back.statuses, [JobStatus::Failed]);
    }

    #[test]
    fn filters_by_kind_printer_and_status() {
        let cfg: WebhookConfig = serde_json::from_value(serde_json::json!({
            "id": "w", "url": "http://h/", "events": ["job_updated", "printer_status"],
            "statuses": ["failed", "completed"], "printer_ids": ["p1"]
        }))
        .unwrap();
        let h = Hook::new(cfg, "config");
        assert!(h.wants(EventKind::JobUpdated, Some("p1"), Some("failed")));
        assert!(!h.wants(EventKind::JobUpdated, Some("p1"), Some("paused")));
        assert!(!h.wants(EventKind::JobUpdated, Some("p2"), Some("failed")));
        assert!(!h.wants(EventKind::JobCreated, Some("p1"), None));
        assert!(h.wants(EventKind::PrinterStatus, Some("p1"), None));
    }

    #[test]
    fn the_api_never_shows_the_path_or_query() {
        assert_eq!(
            redacted_url("https://discord.com/api/webhooks/1/tok?x=1"),
            "https://discord.com/…"
        );
        assert_eq!(
            redacted_url("http://10.0.0.5:8080/"),
            "http://10.0.0.5:8080/"
        );
    }
}
