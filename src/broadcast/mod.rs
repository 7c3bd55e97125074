//! The Broadcaster: fans events out to WebSocket clients. (The REST handlers read the
//! printers' latest statuses from `broadcast::view::LiveStates`, not from here.)
//!
//! It is one actix actor on the System thread. Each event is serialised once, given the
//! next sequence number, and offered to every client's outbox (`client.rs`); offering
//! never waits on a socket, so publishing costs microseconds per client whatever the
//! clients do. Events that arrive together (`PublishAll`, the held statuses that come
//! due) are offered together: one lock and one wake-up per client for the lot.
//! `printer_status` events are throttled here to at most one a second per printer (the
//! first goes out at once, later ones within the second are held and the newest is sent
//! when the second is up), and coalesced again per client. Its clock is tokio's
//! (`tokio::time::Instant`, the std clock in a build without tokio's `test-util`), the
//! clock its flush timer runs on, so a test with paused time steps both together.

pub mod client;
pub mod event;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use actix::prelude::*;

pub use client::{Client, CloseReason, Encoded, Filter, StatusListeners};
pub use event::{Event, EventKind};
pub mod view;

use crate::domain::PrinterId;
use crate::time;

/// Least time between two `printer_status` events of one printer (design.md §4).
pub const STATUS_EVENT_INTERVAL: Duration = Duration::from_secs(1);
/// Least time between two flushes of held statuses: a held status goes out at most this
/// much after its second is up. Short, so that each flush releases few statuses: at
/// 100 ms, a 2,000-printer farm's ~160 held statuses reached 100 clients as one burst,
/// and the last client got them ~10 ms after the first. The flush is a timer armed only
/// while a status is held (issue 21): a farm where nothing is held costs no wake-ups.
const STATUS_FLUSH_MIN_GAP: Duration = Duration::from_millis(10);
/// Messages the Broadcaster's mailbox holds before senders wait. Senders are the
/// JobCreator (which then waits a moment) and the WebSocket handlers.
const MAILBOX_CAPACITY: usize = 4096;

struct StatusSlot {
    /// The printer's number, under which clients coalesce its statuses.
    index: u32,
    last_sent: Option<Instant>,
    /// The newest status not sent yet.
    held: Option<Event>,
}

#[derive(Default)]
pub struct Broadcaster {
    clients: HashMap<u64, Arc<Client>>,
    next_client: u64,
    seq: u64,
    statuses: HashMap<PrinterId, StatusSlot>,
    /// Printers whose held status comes due, in order of when (the second after their
    /// last send). An entry whose status went out meanwhile is skipped.
    due: VecDeque<(Instant, PrinterId)>,
    /// The flush timer, armed while `due` is not empty.
    flush_timer: Option<SpawnHandle>,
    /// The clients whose filters take statuses (see `StatusListeners`).
    listeners: StatusListeners,
}

impl Broadcaster {
    pub fn new() -> Self {
        Self::default()
    }

    /// The count of its clients that take `printer_status` events, for the JobCreator.
    pub fn status_listeners(&self) -> StatusListeners {
        self.listeners.clone()
    }

    /// Gives each event its sequence number, encodes it once and offers the lot to
    /// every client.
    fn emit(&mut self, events: Vec<(Event, Option<u32>)>) {
        if events.is_empty() {
            return;
        }
        let now = time::now();
        let batch: Vec<Encoded> = events
            .into_iter()
            .map(|(ev, status_slot)| {
                self.seq += 1;
                Encoded {
                    kind: ev.kind,
                    msg: event::encode(&ev, self.seq, now),
                    printer: ev.printer_id,
                    status_slot,
                    seq: self.seq,
                }
            })
            .collect();
        self.clients.retain(|_, c| c.offer(&batch));
    }

    /// An event to send now, with its status slot; `None` when the throttle holds a
    /// status for later.
    fn admit(&mut self, ev: Event, now: Instant) -> Option<(Event, Option<u32>)> {
        let Some(id) = ev
            .printer_id
            .as_ref()
            .filter(|_| ev.kind == EventKind::PrinterStatus)
        else {
            return Some((ev, None));
        };
        if !self.statuses.contains_key(id) {
            let index = self.statuses.len() as u32;
            self.statuses.insert(
                id.clone(),
                StatusSlot {
                    index,
                    last_sent: None,
                    held: None,
                },
            );
        }
        let slot = self.statuses.get_mut(id).expect("inserted above");
        match slot.last_sent {
            Some(t) if now - t < STATUS_EVENT_INTERVAL => {
                if slot.held.is_none() {
                    self.due.push_back((t + STATUS_EVENT_INTERVAL, id.clone()));
                }
                slot.held = Some(ev);
                None
            }
            _ => {
                slot.last_sent = Some(now);
                slot.held = None;
                Some((ev, Some(slot.index)))
            }
        }
    }

    /// Arms the flush timer for the first held status's due time (at least
    /// `STATUS_FLUSH_MIN_GAP` from now), unless it is armed or nothing is held. Entries
    /// are only appended behind the first, so an armed timer never fires late for it.
    fn arm_flush(&mut self, ctx: &mut Context<Self>) {
        if self.flush_timer.is_some() {
            return;
        }
        let Some((at, _)) = self.due.front() else {
            return;
        };
        let wait = at
            .saturating_duration_since(Instant::now())
            .max(STATUS_FLUSH_MIN_GAP);
        self.flush_timer = Some(ctx.run_later(wait, |this, ctx| {
            this.flush_timer = None;
            this.flush_held_at(Instant::now());
            this.arm_flush(ctx);
        }));
    }

    fn flush_held_at(&mut self, now: Instant) {
        let mut out = Vec::new();
        while let Some((at, _)) = self.due.front()
            && *at <= now
        {
            let (_, id) = self.due.pop_front().expect("front exists");
            let Some(slot) = self.statuses.get_mut(&id) else {
                continue;
            };
            // A stale entry: the printer's status went out directly after this entry
            // came due, and the status held now waits for its own, later entry.
            if slot
                .last_sent
                .is_some_and(|t| now - t < STATUS_EVENT_INTERVAL)
            {
                continue;
            }
            if let Some(ev) = slot.held.take() {
                slot.last_sent = Some(now);
                out.push((ev, Some(slot.index)));
            }
        }
        self.emit(out);
    }
}

impl Actor for Broadcaster {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        crate::watchdog::look_now();
    }
}

/// Publish an event to every client whose filter accepts it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Publish(pub Event);

impl Handler<Publish> for Broadcaster {
    type Result = ();
    fn handle(&mut self, Publish(ev): Publish, ctx: &mut Self::Context) {
        let now = Instant::now();
        let admitted = self.admit(ev, now);
        self.emit(admitted.into_iter().collect());
        self.arm_flush(ctx);
    }
}

/// Publish several events in order, offered to each client in one go.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PublishAll(pub Vec<Event>);

impl Handler<PublishAll> for Broadcaster {
    type Result = ();
    fn handle(&mut self, PublishAll(evs): PublishAll, ctx: &mut Self::Context) {
        let now = Instant::now();
        let admitted = evs
            .into_iter()
            .filter_map(|ev| self.admit(ev, now))
            .collect();
        self.emit(admitted);
        self.arm_flush(ctx);
    }
}

/// Register a new WebSocket client; answers its outbox.
#[derive(Message)]
#[rtype(result = "Arc<Client>")]
pub struct Connect;

impl Handler<Connect> for Broadcaster {
    type Result = MessageResult<Connect>;
    fn handle(&mut self, _: Connect, _: &mut Self::Context) -> Self::Result {
        self.next_client += 1;
        let c = Arc::new(Client::counted_in(self.next_client, self.listeners.clone()));
        self.clients.insert(c.id, c.clone());
        MessageResult(c)
    }
}

/// Forget a client whose connection ended.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Disconnect(pub u64);

impl Handler<Disconnect> for Broadcaster {
    type Result = ();
    fn handle(&mut self, Disconnect(id): Disconnect, _: &mut Self::Context) {
        self.clients.remove(&id);
    }
}

/// Close every WebSocket client with a reason (shutdown). Internal clients (the
/// integrations' tap) stay: the JobCreator's last commit comes after this, and what it
/// publishes must still reach webhooks and MQTT.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CloseAll(pub CloseReason);

impl Handler<CloseAll> for Broadcaster {
    type Result = ();
    fn handle(&mut self, CloseAll(reason): CloseAll, _: &mut Self::Context) {
        self.clients.retain(|_, c| {
            if c.internal.load(std::sync::atomic::Ordering::Relaxed) {
                return true;
            }
            c.close(reason);
            false
        });
    }
}

/// Sends every held status now. Answered once everything published before it has been
/// offered to the clients (the daemon's last step before the integrations drain).
#[derive(Message)]
#[rtype(result = "()")]
pub struct FlushAll;

impl Handler<FlushAll> for Broadcaster {
    type Result = ();
    fn handle(&mut self, _: FlushAll, ctx: &mut Self::Context) {
        let mut out = Vec::new();
        self.due.clear();
        if let Some(timer) = self.flush_timer.take() {
            ctx.cancel_future(timer);
        }
        for slot in self.statuses.values_mut() {
            if let Some(ev) = slot.held.take() {
                out.push((ev, Some(slot.index)));
            }
        }
        self.emit(out);
    }
}

/// How many clients are connected (for /health).
#[derive(Message)]
#[rtype(result = "usize")]
pub struct ClientCount;

impl Handler<ClientCount> for Broadcaster {
    type Result = usize;
    fn handle(&mut self, _: ClientCount, _: &mut Self::Context) -> usize {
        let internal = |c: &Arc<Client>| c.internal.load(std::sync::atomic::Ordering::Relaxed);
        self.clients.values().filter(|c| !internal(c)).count()
    }
}

/// Whether the flush timer is armed (tests: no timer runs while nothing is held).
#[cfg(test)]
#[derive(Message)]
#[rtype(result = "bool")]
struct FlushTimerArmed;

#[cfg(test)]
impl Handler<FlushTimerArmed> for Broadcaster {
    type Result = bool;
    fn handle(&mut self, _: FlushTimerArmed, _: &mut Self::Context) -> bool {
        self.flush_timer.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(printer: &str, n: u32) -> Event {
        Event::new(
            EventKind::PrinterStatus,
            Some(PrinterId::new(printer).unwrap()),
            serde_json::json!({ "id": printer, "n": n }),
        )
    }

    /// The `(id, n)` of every message the client has waiting.
    fn received(c: &Client) -> Vec<(String, u64)> {
        c.take()
            .messages
            .iter()
            .map(|m| {
                let v: serde_json::Value = serde_json::from_str(m).unwrap();
                (
                    v["data"]["id"].as_str().unwrap().to_owned(),
                    v["data"]["n"].as_u64().unwrap(),
                )
            })
            .collect()
    }

    #[actix_rt::test]
    async fn a_stale_due_entry_does_not_release_a_status_early() {
        let mut b = Broadcaster::new();
        let c = Arc::new(Client::new(1));
        b.clients.insert(1, c.clone());
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let admit = |b: &mut Broadcaster, n: u32, at: Instant| {
            let out = b.admit(status("a", n), at).into_iter().collect();
            b.emit(out);
        };
        admit(&mut b, 1, t0);
        assert_eq!(received(&c), [("a".into(), 1)]);
        admit(&mut b, 2, t0 + ms(500)); // held; due at t0 + 1 s
        // The second is up but the tick has not come yet: the next status goes out
        // directly, and the one after it is held for its own second.
        admit(&mut b, 3, t0 + ms(1_003));
        admit(&mut b, 4, t0 + ms(1_005));
        assert_eq!(received(&c), [("a".into(), 3)]);
        // The tick finds the first entry due, but "a" was sent 7 ms ago.
        b.flush_held_at(t0 + ms(1_010));
        assert!(received(&c).is_empty(), "sent twice within a second");
        b.flush_held_at(t0 + ms(2_003));
        assert_eq!(received(&c), [("a".into(), 4)]);
    }

    #[actix_rt::test]
    async fn at_shutdown_internal_clients_stay_and_get_the_held_statuses() {
        let b = Broadcaster::new().start();
        let ws = b.send(Connect).await.unwrap();
        let tap = b.send(Connect).await.unwrap();
        tap.internal
            .store(true, std::sync::atomic::Ordering::Relaxed);
        b.send(Publish(status("a", 1))).await.unwrap();
        b.send(Publish(status("a", 2))).await.unwrap(); // held for its second
        let _ = received(&tap);
        b.send(CloseAll(CloseReason::Shutdown)).await.unwrap();
        assert_eq!(ws.take().close, Some(CloseReason::Shutdown));
        assert!(tap.take().close.is_none(), "the tap was closed");
        // Published after CloseAll (the writer's last commit), then flushed.
        b.send(Publish(status("b", 1))).await.unwrap();
        b.send(FlushAll).await.unwrap();
        assert_eq!(received(&tap), [("b".into(), 1), ("a".into(), 2)]);
        assert_eq!(b.send(ClientCount).await.unwrap(), 0);
    }

    /// On paused time (tokio's clock, which the throttle and its flush timer both read):
    /// the seconds pass at once and exactly.
    #[actix_rt::test]
    async fn a_printers_statuses_go_out_at_most_once_a_second_and_the_newest_wins() {
        tokio::time::pause();
        let b = Broadcaster::new().start();
        let c = b.send(Connect).await.unwrap();
        let start = Instant::now();
        for n in 1..=5 {
            b.send(Publish(status("a", n))).await.unwrap();
        }
        b.send(Publish(status("b", 1))).await.unwrap();
        // The first of each printer at once; the rest of "a" held, with a timer for it.
        assert_eq!(received(&c), [("a".into(), 1), ("b".into(), 1)]);
        assert!(b.send(FlushTimerArmed).await.unwrap());
        tokio::time::sleep(Duration::from_millis(500)).await;
        b.send(PublishAll(vec![status("a", 6), status("b", 2)]))
            .await
            .unwrap();
        assert!(received(&c).is_empty(), "nothing before the second is up");
        tokio::time::sleep_until(start + STATUS_EVENT_INTERVAL - Duration::from_millis(1)).await;
        assert!(received(&c).is_empty(), "held statuses sent early");
        // When the second is up: only the newest of each, once.
        tokio::time::sleep_until(start + STATUS_EVENT_INTERVAL + STATUS_FLUSH_MIN_GAP).await;
        assert_eq!(received(&c), [("a".into(), 6), ("b".into(), 2)]);
        tokio::time::sleep(STATUS_EVENT_INTERVAL).await;
        assert!(received(&c).is_empty(), "a held status is sent once");
        // Nothing held: no timer.
        assert!(
            !b.send(FlushTimerArmed).await.unwrap(),
            "a timer with nothing held"
        );
        // A status a whole second after the last goes out at once again, and arms nothing.
        b.send(Publish(status("a", 7))).await.unwrap();
        assert_eq!(received(&c), [("a".into(), 7)]);
        assert!(!b.send(FlushTimerArmed).await.unwrap());
    }
}
