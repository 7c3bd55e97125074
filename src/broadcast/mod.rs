//! The Broadcaster: fans events out to WebSocket clients. (The REST handlers read the
//! printers' latest statuses from `printers::view::LiveStates`, not from here.)
//!
//! It is one actix actor on the System thread. Each event is serialised once, given the
//! next sequence number, and offered to every client's outbox (`client.rs`); offering
//! never waits on a socket, so publishing costs microseconds per client whatever the
//! clients do. `printer_status` events are throttled here to at most one a second per
//! printer (the first goes out at once, later ones within the second are held and the
//! newest is sent when the second is up), and coalesced again per client.

pub mod client;
pub mod event;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

pub use client::{Client, Filter};
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

    fn emit(&mut self, ev: &Event) {
        self.seq += 1;
        let msg = event::encode(ev, self.seq, time::now());
        self.clients
            .retain(|_, c| c.offer(ev.kind, ev.printer_id.as_ref(), &msg));
    }

    fn flush_held(&mut self) {
        let now = Instant::now();
        let due: Vec<Event> = self
            .statuses
            .values_mut()
            .filter(|s| {
                s.held.is_some() && s.last_sent.is_none_or(|t| now - t >= STATUS_EVENT_INTERVAL)
            })
            .filter_map(|s| {
                s.last_sent = Some(now);
                s.held.take().map(|(ev, since)| stamp_hold(ev, now - since))
            })
            .collect();
        for ev in &due {
            self.emit(ev);
        }
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
        if ev.kind == EventKind::PrinterStatus
            && let Some(id) = ev.printer_id.clone()
        {
            let slot = self.statuses.entry(id).or_insert(StatusSlot {
                last_sent: None,
                held: None,
            });
            let now = Instant::now();
            if slot
                .last_sent
                .is_none_or(|t| now - t >= STATUS_EVENT_INTERVAL)
            {
                slot.last_sent = Some(now);
                slot.held = None;
                self.emit(&ev);
            } else {
                slot.held = Some((ev, now));
            }
            return;
        }
        self.emit(&ev);
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
