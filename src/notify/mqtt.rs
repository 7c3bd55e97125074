//! `[mqtt]`: publishes each printer's state (retained), job events, and Home Assistant
//! discovery, through rumqttc.
//!
//! The tap only updates `Shared` (the latest state per printer, a bounded queue of job
//! events) and wakes the publisher; it never waits on the broker. The publisher hands
//! messages to rumqttc with `try_publish` (its request queue is bounded): what does not
//! fit stays marked and goes out on the next round, so a broker outage never slows
//! monitoring and, after it, the retained state topics are right again: on every
//! (re)connection `<prefix>/status` is set `online`, discovery is sent again and every
//! printer's latest state is republished. The broker's last will sets it `offline` when
//! the daemon goes away without saying so.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Packet, QoS, Transport};
use tokio::sync::Notify;

use super::config::MqttConfig;
use super::ha::{self, View};

/// Messages rumqttc may hold before `try_publish` says full. A full resync of a large
/// farm goes out over several rounds of this.
const REQUEST_CAPACITY: usize = 512;
/// Job events waiting for the broker; the oldest are dropped (and counted) beyond it.
/// Events are news, the retained state is the truth, so a short memory is right.
pub const EVENT_CAPACITY: usize = 1024;
/// Printers whose latest state is kept; a farm is far smaller.
const MAX_PRINTERS: usize = 20_000;
/// Largest state payload from a printer_status kept (a status is ~1 KB).
const MAX_STATUS_BYTES: usize = 16 * 1024;
/// How often the publisher looks for work that did not fit last time. With nothing
/// left over it sleeps until woken (a new status or event, a reconnect): an idle daemon
/// does not wake for it (issue 21).
const ROUND: Duration = Duration::from_millis(500);
/// MQTT keep-alive: the broker notices a dead daemon (and publishes the will) within
/// 1.5× this.
const KEEP_ALIVE: Duration = Duration::from_secs(30);
/// Connection attempts are retried with backoff between these.
const RECONNECT_MIN: Duration = Duration::from_secs(1);
const RECONNECT_MAX: Duration = Duration::from_secs(60);
/// How long a clean shutdown waits to say `offline`.
const GOODBYE_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Default)]
struct Latest {
    /// Latest `printer_status` data per printer id.
    states: HashMap<String, Arc<str>>,
    /// Printers whose state is not published yet.
    dirty: HashSet<String>,
    /// Printers whose discovery went out on this connection.
    discovered: HashSet<String>,
    events: VecDeque<(String, Arc<str>)>,
    /// Printers deleted whose retained topics are not emptied yet.
    removed: HashSet<String>,
    resync: bool,
}

impl Latest {
    /// Something is not published yet (it did not fit the client's queue).
    fn has_work(&self) -> bool {
        self.resync || !self.dirty.is_empty() || !self.removed.is_empty() || !self.events.is_empty()
    }
}

#[derive(Default)]
pub struct MqttStats {
    pub connected: AtomicBool,
    pub published: AtomicU64,
    /// Job events dropped because the broker was away too long.
    pub dropped_events: AtomicU64,
    pub reconnects: AtomicU64,
}

pub struct Shared {
    latest: Mutex<Latest>,
    wake: Notify,
    pub stats: MqttStats,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Latest> {
        self.latest.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A printer's newest status (the `data` of its `printer_status`).
    pub fn set_state(&self, printer: &str, data: &str) {
        if data.len() > MAX_STATUS_BYTES {
            return;
        }
        let mut l = self.lock();
        if !l.states.contains_key(printer) && l.states.len() >= MAX_PRINTERS {
            return;
        }
        l.states.insert(printer.to_owned(), Arc::from(data));
        l.dirty.insert(printer.to_owned());
        drop(l);
        self.wake.notify_one();
    }

    /// A printer was deleted: forget its state and empty its retained topics (state
    /// and discovery), so neither the broker nor Home Assistant keeps a ghost of it.
    pub fn remove_printer(&self, printer: &str) {
        let mut l = self.lock();
        l.states.remove(printer);
        l.dirty.remove(printer);
        l.discovered.remove(printer);
        if l.removed.len() < MAX_PRINTERS {
            l.removed.insert(printer.to_owned());
        }
        drop(l);
        self.wake.notify_one();
    }

    /// A job event for `<prefix>/events/<type>`.
    pub fn push_event(&self, kind: &str, envelope: Arc<str>) {
        let mut l = self.lock();
        if l.events.len() >= EVENT_CAPACITY {
            l.events.pop_front();
            self.stats.dropped_events.fetch_add(1, Ordering::Relaxed);
        }
        l.events.push_back((kind.to_owned(), envelope));
        drop(l);
        self.wake.notify_one();
    }
}

/// RECONNECT_MIN doubled per failure up to RECONNECT_MAX, with jitter (half to all of
/// it) so daemons restarted together do not return in lock-step.
fn reconnect_delay(failures: u32) -> Duration {
    let full = RECONNECT_MIN
        .checked_mul(1u32.checked_shl(failures.min(16)).unwrap_or(u32::MAX))
        .unwrap_or(RECONNECT_MAX)
        .min(RECONNECT_MAX);
    full.mul_f64(rand::Rng::random_range(&mut rand::rng(), 0.5..=1.0))
}

/// Broker options from the configuration (the error names the key, never the password).
fn options(cfg: &MqttConfig) -> Result<MqttOptions, String> {
    let url = super::config::check_url(&cfg.url, &["mqtt", "mqtts"])
        .map_err(|e| format!("mqtt.url {e}"))?;
    let tls = url.scheme() == "mqtts";
    let host = url.host_str().unwrap_or_default().to_owned();
    let port = url.port().unwrap_or(if tls { 8883 } else { 1883 });
    let mut o = MqttOptions::new(cfg.client_id.clone(), host, port);
    o.set_keep_alive(KEEP_ALIVE)
        .set_clean_session(true)
        .set_request_channel_capacity(REQUEST_CAPACITY)
        .set_last_will(LastWill::new(
            format!("{}/status", cfg.topic_prefix),
            "offline",
            QoS::AtLeastOnce,
            true,
        ));
    if let Some(user) = &cfg.username {
        let pw = cfg
            .password
            .as_ref()
            .map(|p| p.expose().to_owned())
            .unwrap_or_default();
        o.set_credentials(user.clone(), pw);
    }
    if tls {
        let transport = match &cfg.ca_file {
            Some(path) => {
                let ca = std::fs::read(path).map_err(|e| {
                    format!("mqtt.ca_file {}: cannot read it ({e})", path.display())
                })?;
                Transport::tls(ca, None, None)
            }
            None => Transport::tls_with_default_config(),
        };
        o.set_transport(transport);
    }
    Ok(o)
}

pub struct Mqtt {
    pub shared: Arc<Shared>,
    client: AsyncClient,
    cfg: MqttConfig,
}

impl Mqtt {
    /// Starts the connection and the publisher. Fails only on a configuration that
    /// cannot work (unreadable CA file); an unreachable broker is retried forever.
    pub fn start(cfg: MqttConfig) -> Result<Arc<Mqtt>, String> {
        let opts = options(&cfg)?;
        let (client, mut eventloop) = AsyncClient::new(opts, REQUEST_CAPACITY);
        let shared = Arc::new(Shared {
            latest: Mutex::default(),
            wake: Notify::new(),
            stats: MqttStats::default(),
        });
        let m = Arc::new(Mqtt {
            shared: shared.clone(),
            client,
            cfg,
        });
        tokio::spawn(async move {
            let mut failures: u32 = 0;
            let mut was_up = true;
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        tracing::info!("connected to the MQTT broker");
                        shared.stats.connected.store(true, Ordering::Relaxed);
                        failures = 0;
                        was_up = true;
                        shared.lock().resync = true;
                        shared.wake.notify_one();
                    }
                    Ok(_) => {}
                    Err(e) => {
                        shared.stats.connected.store(false, Ordering::Relaxed);
                        if was_up {
                            tracing::warn!(error = %e, "MQTT broker unreachable; retrying with backoff (monitoring carries on)");
                            shared.stats.reconnects.fetch_add(1, Ordering::Relaxed);
                            was_up = false;
                        }
                        tokio::time::sleep(reconnect_delay(failures)).await;
                        failures = failures.saturating_add(1);
                    }
                }
            }
        });
        let publisher = m.clone();
        tokio::spawn(async move { publisher.run().await });
        Ok(m)
    }

    async fn run(self: Arc<Self>) {
        let mut left = true;
        loop {
            if left {
                let _ = tokio::time::timeout(ROUND, self.shared.wake.notified()).await;
            } else {
                self.shared.wake.notified().await;
            }
            // Not connected: the ConnAck wakes this task, and a resync follows it.
            left = self.shared.stats.connected.load(Ordering::Relaxed) && {
                self.publish_round();
                self.shared.lock().has_work()
            };
        }
    }

    fn try_pub(&self, topic: String, qos: QoS, retain: bool, payload: impl Into<Vec<u8>>) -> bool {
        let ok = self.client.try_publish(topic, qos, retain, payload).is_ok();
        if ok {
            self.shared.stats.published.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }

    /// Publishes what is waiting, as far as rumqttc's queue takes it.
    fn publish_round(&self) {
        let prefix = &self.cfg.topic_prefix;
        let mut l = self.shared.lock();
        if l.resync {
            if !self.try_pub(format!("{prefix}/status"), QoS::AtLeastOnce, true, "online") {
                return;
            }
            l.resync = false;
            l.discovered.clear();
            let all: Vec<String> = l.states.keys().cloned().collect();
            l.dirty.extend(all);
        }
        let dirty: Vec<String> = l.dirty.iter().cloned().collect();
        for id in dirty {
            let Some(data) = l.states.get(&id).cloned() else {
                l.dirty.remove(&id);
                continue;
            };
            let Ok(view) = serde_json::from_str::<View>(&data) else {
                l.dirty.remove(&id);
                continue;
            };
            if !self.cfg.discovery_prefix.is_empty() && !l.discovered.contains(&id) {
                let msgs = ha::discovery(&self.cfg, &view);
                if !msgs
                    .into_iter()
                    .all(|(t, c)| self.try_pub(t, QoS::AtLeastOnce, true, c))
                {
                    return;
                }
                l.discovered.insert(id.clone());
            }
            let topic = ha::state_topic(&self.cfg, &view.id);
            if !self.try_pub(topic, QoS::AtMostOnce, true, ha::state_payload(&view)) {
                return;
            }
            l.dirty.remove(&id);
        }
        // Deleted printers: an empty retained message removes a retained topic.
        let removed: Vec<String> = l.removed.iter().cloned().collect();
        for id in removed {
            // Added again under the same id since: its topics are in use.
            if !l.states.contains_key(&id)
                && !ha::retained_topics(&self.cfg, &id)
                    .into_iter()
                    .all(|t| self.try_pub(t, QoS::AtLeastOnce, true, Vec::new()))
            {
                return;
            }
            l.removed.remove(&id);
        }
        while let Some((kind, env)) = l.events.pop_front() {
            if !self.try_pub(
                format!("{prefix}/events/{kind}"),
                QoS::AtMostOnce,
                false,
                env.as_bytes().to_vec(),
            ) {
                l.events.push_front((kind, env));
                return;
            }
        }
    }

    /// Clean shutdown: `offline` (retained), then disconnect.
    pub async fn goodbye(&self) {
        let topic = format!("{}/status", self.cfg.topic_prefix);
        let _ = tokio::time::timeout(GOODBYE_TIMEOUT, async {
            let _ = self
                .client
                .publish(topic, QoS::AtLeastOnce, true, "offline")
                .await;
            let _ = self.client.disconnect().await;
        })
        .await;
    }
}
