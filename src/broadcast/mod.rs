//! The Broadcaster: fans events out to WebSocket clients. (The REST handlers read the
//! printers' latest statuses from `printers::view::LiveStates`, not from here.)
//!
//! It is one actix actor on the System thread. Each event is serialised once, given the
//! next sequence number, and offered to every client's outbox (`client.rs`); offering
//! never waits on a socket, so publishing costs microseconds per client whatever the
//! clients do. Events that arrive together (`PublishAll`, the held statuses that come
//! due) are offered together: one lock and one wake-up per client for the lot. `printer_status` events are throttled here to at most one a second per
//! printer (the first goes out at once, later ones within the second are held and the
//! newest is sent when the second is up), and coalesced again per client.

pub mod client;
pub mod event;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

pub use client::{Client, Encoded, Filter};
pub use event::{Event, EventKind};

use crate::domain::PrinterId;
use crate::time;

/// Least time between two `printer_status` events of one printer (design.md §4).
pub const STATUS_EVENT_INTERVAL: Duration = Duration::from_secs(1);
/// How often held statuses are checked. A tenth of the interval keeps the extra delay
/// of a held status under 100 ms.
const STATUS_FLUSH_TICK: Duration = Duration::from_millis(100);
/// Messages the Broadcaster's mailbox holds before senders wait. Senders are the
/// JobCreator (which then waits a moment) and the WebSocket handlers.
const MAILBOX_CAPACITY: usize = 4096;

struct StatusSlot {
    /// The printer's number, under which clients coalesce its statuses.
    index: u32,
    last_sent: Option<Instant>,
    /// The newest status not sent yet, and when it arrived.
    held: Option<(Event, Instant)>,
}

#[derive(Default)]
pub struct Broadcaster {
    clients: HashMap<u64, Arc<Client>>,
    next_client: u64,
    seq: u64,
    statuses: HashMap<PrinterId, StatusSlot>,
}

impl Broadcaster {
    pub fn new() -> Self {
        Self::default()
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
        if slot
            .last_sent
            .is_none_or(|t| now - t >= STATUS_EVENT_INTERVAL)
        {
            slot.last_sent = Some(now);
            slot.held = None;
            Some((ev, Some(slot.index)))
        } else {
            slot.held = Some((ev, now));
            None
        }
    }

    fn flush_held(&mut self) {
        let now = Instant::now();
        let due: Vec<(Event, Option<u32>)> = self
            .statuses
            .values_mut()
            .filter(|s| {
                s.held.is_some() && s.last_sent.is_none_or(|t| now - t >= STATUS_EVENT_INTERVAL)
            })
            .filter_map(|s| {
                s.last_sent = Some(now);
                let index = s.index;
                s.held
                    .take()
                    .map(|(ev, since)| (stamp_hold(ev, now - since), Some(index)))
            })
            .collect();
        self.emit(due);
    }
}

/// A held status that came from a simulator report (its data has `sim_sent_at_ms`) also
/// carries `sim_held_ms`, how long the throttle held it, so the load harness can tell the
/// pipeline's latency from the intentional hold. Statuses from real printers are unchanged.
fn stamp_hold(ev: Event, held: Duration) -> Event {
    if ev.data.get().contains("\"sim_sent_at_ms\":") {
        ev.with_member("sim_held_ms", held.as_millis() as i64)
    } else {
        ev
    }
}

impl Actor for Broadcaster {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
        ctx.run_interval(STATUS_FLUSH_TICK, |this, _| this.flush_held());
    }
}

/// Publish an event to every client whose filter accepts it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Publish(pub Event);

impl Handler<Publish> for Broadcaster {
    type Result = ();
    fn handle(&mut self, Publish(ev): Publish, _: &mut Self::Context) {
        let now = Instant::now();
        let admitted = self.admit(ev, now);
        self.emit(admitted.into_iter().collect());
    }
}

/// Publish several events in order, offered to each client in one go.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PublishAll(pub Vec<Event>);

impl Handler<PublishAll> for Broadcaster {
    type Result = ();
    fn handle(&mut self, PublishAll(evs): PublishAll, _: &mut Self::Context) {
        let now = Instant::now();
        let admitted = evs
            .into_iter()
            .filter_map(|ev| self.admit(ev, now))
            .collect();
        self.emit(admitted);
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
        let c = Arc::new(Client::new(self.next_client));
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

/// Close every client with a reason (shutdown).
#[derive(Message)]
#[rtype(result = "()")]
pub struct CloseAll(pub &'static str);

impl Handler<CloseAll> for Broadcaster {
    type Result = ();
    fn handle(&mut self, CloseAll(reason): CloseAll, _: &mut Self::Context) {
        for c in self.clients.values() {
            c.close(reason);
        }
        self.clients.clear();
    }
}

/// How many clients are connected (for /health).
#[derive(Message)]
#[rtype(result = "usize")]
pub struct ClientCount;

impl Handler<ClientCount> for Broadcaster {
    type Result = usize;
    fn handle(&mut self, _: ClientCount, _: &mut Self::Context) -> usize {
        self.clients.len()
    }
}
