//! One WebSocket client's outbox: a bounded queue of events, the latest status of each
//! printer (coalesced), and its subscription filter.
//!
//! The Broadcaster pushes into it without waiting; the client's writer task drains it.
//! If the client cannot keep up, `printer_status` messages simply replace each other,
//! and once job events overflow the queue the client is marked for closing with a reason
//! so it reconnects and re-reads. Nothing here ever waits on the client's socket, so a
//! slow client cannot slow the daemon or another client.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use super::event::EventKind;
use crate::domain::PrinterId;

/// Job and settings events one client may have waiting before it is closed as too slow.
/// A live client a moment behind must be able to hold a whole second of progress: the
/// JobCreator publishes a `job_updated` a second for every job whose progress moved,
/// ~2,000 a second on a 2,000-printer farm (when they came as one burst and this was
/// 1,024, every client of such a farm was closed at the first flush).
pub const CLIENT_QUEUE_CAPACITY: usize = 16_384;
/// ... and the bytes those events may add up to: what a stuck client can hold alive.
/// (Messages are shared between clients; a progress burst of 2,000 is ~1.5 MB.)
pub const CLIENT_QUEUE_BYTES: usize = 8 * 1024 * 1024;

/// Close reason sent to a client that fell behind.
pub const TOO_SLOW_REASON: &str =
    "client too slow: events were dropped; reconnect and re-read /api/v1/jobs";

/// What a client asked to receive. Empty sets mean "everything".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// Bit mask of `EventKind::bit`; 0 = all.
    pub events: u8,
    pub printer_ids: HashSet<PrinterId>,
}

impl Filter {
    pub fn accepts(&self, kind: EventKind, printer: Option<&PrinterId>) -> bool {
        if self.events != 0 && self.events & kind.bit() == 0 {
            return false;
        }
        match printer {
            Some(p) if !self.printer_ids.is_empty() => self.printer_ids.contains(p),
            _ => true,
        }
    }
}

/// One event as the Broadcaster offers it to every client: encoded once, shared.
pub struct Encoded {
    pub kind: EventKind,
    /// The printer it concerns, for `subscribe` filters.
    pub printer: Option<PrinterId>,
    /// For a `printer_status`: the printer's number, given by the Broadcaster (dense,
    /// from 0), under which a client coalesces that printer's statuses.
    pub status_slot: Option<u32>,
    pub msg: Arc<str>,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Arc<str>>,
    /// Bytes of the messages in `queue`.
    queued_bytes: usize,
    /// Latest printer_status per printer not yet sent, in arrival order, by status slot.
    statuses: Vec<(u32, Arc<str>)>,
    /// For each status slot, where its pending status is in `statuses` plus one (0: none).
    /// An index, not a map keyed by printer id: a client that is a moment behind on a
    /// 2,000-printer farm has ~2,000 pending, and hashing and cloning the id per event
    /// per client was the Broadcaster's main cost.
    pending: Vec<u32>,
    filter: Filter,
    /// Set when the client must be closed, with the reason to send.
    close: Option<String>,
}

impl State {
    fn put_status(&mut self, slot: u32, msg: &Arc<str>) {
        let i = slot as usize;
        if self.pending.len() <= i {
            self.pending.resize(i + 1, 0);
        }
        match self.pending[i] {
            0 => {
                self.statuses.push((slot, msg.clone()));
                self.pending[i] = self.statuses.len() as u32;
            }
            at => self.statuses[at as usize - 1].1 = msg.clone(),
        }
    }
}

/// What the writer task takes in one go.
pub struct Batch {
    pub messages: Vec<Arc<str>>,
    pub close: Option<String>,
}

pub struct Client {
    pub id: u64,
    state: Mutex<State>,
    /// Wakes the writer when there is something to send.
    pub ready: Notify,
    /// Wakes a writer stuck in a send when the client must be dropped.
    pub abort: Notify,
}

impl Client {
    pub fn new(id: u64) -> Self {
        Self {
            id,
            state: Mutex::new(State::default()),
            ready: Notify::new(),
            abort: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned lock only means another thread panicked mid-push; the queue is
        // still a valid VecDeque, so keep serving.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set_filter(&self, f: Filter) {
        self.lock().filter = f;
    }

    pub fn is_closing(&self) -> bool {
        self.lock().close.is_some()
    }

    /// Queues the events the filter accepts, under one lock and with one wake-up of the
    /// writer. Returns false once the client is closing (the Broadcaster then forgets it).
    pub fn offer(&self, events: &[Encoded]) -> bool {
        let mut st = self.lock();
        if st.close.is_some() {
            return false;
        }
        let mut queued = false;
        for e in events {
            if !st.filter.accepts(e.kind, e.printer.as_ref()) {
                continue;
            }
            match e.status_slot {
                Some(slot) if e.kind == EventKind::PrinterStatus => st.put_status(slot, &e.msg),
                _ if st.queue.len() >= CLIENT_QUEUE_CAPACITY
                    || st.queued_bytes + e.msg.len() > CLIENT_QUEUE_BYTES =>
                {
                    st.close = Some(TOO_SLOW_REASON.to_owned());
                    crate::metrics::global().ws_dropped.inc();
                    st.queue.clear();
                    st.queued_bytes = 0;
                    st.statuses.clear();
                    st.pending.clear();
                    drop(st);
                    self.ready.notify_one();
                    self.abort.notify_one();
                    return false;
                }
                _ => {
                    st.queued_bytes += e.msg.len();
                    st.queue.push_back(e.msg.clone());
                }
            }
            queued = true;
        }
        drop(st);
        if queued {
            self.ready.notify_one();
        }
        true
    }

    /// A direct reply (pong, subscribed, error): not filtered, still bounded.
    pub fn reply(&self, msg: Arc<str>) {
        let mut st = self.lock();
        if st.close.is_none() && st.queue.len() < CLIENT_QUEUE_CAPACITY {
            st.queued_bytes += msg.len();
            st.queue.push_back(msg);
        }
        drop(st);
        self.ready.notify_one();
    }

    /// Asks the writer to close the connection with `reason`.
    pub fn close(&self, reason: &str) {
        let mut st = self.lock();
        if st.close.is_none() {
            st.close = Some(reason.to_owned());
        }
        drop(st);
        self.ready.notify_one();
    }

    /// Everything waiting, job events first in order, then the coalesced statuses.
    pub fn take(&self) -> Batch {
        let mut st = self.lock();
        let mut messages: Vec<Arc<str>> = st.queue.drain(..).collect();
        st.queued_bytes = 0;
        let st = &mut *st;
        for (slot, m) in st.statuses.drain(..) {
            st.pending[slot as usize] = 0;
            messages.push(m);
        }
        Batch {
            messages,
            close: st.close.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> PrinterId {
        PrinterId::new(s).unwrap()
    }

    fn ev(kind: EventKind, printer: Option<(&str, u32)>, msg: &Arc<str>) -> Encoded {
        Encoded {
            kind,
            printer: printer.map(|(id, _)| p(id)),
            status_slot: printer.map(|(_, slot)| slot),
            msg: msg.clone(),
        }
    }

    #[test]
    fn statuses_coalesce_per_printer() {
        let c = Client::new(1);
        for i in 0..5 {
            let m = Arc::from(format!("a{i}"));
            c.offer(&[ev(EventKind::PrinterStatus, Some(("a", 3)), &m)]);
        }
        let (b0, j): (Arc<str>, Arc<str>) = (Arc::from("b0"), Arc::from("j"));
        c.offer(&[
            ev(EventKind::PrinterStatus, Some(("b", 0)), &b0),
            ev(EventKind::JobUpdated, Some(("b", 0)), &j),
        ]);
        let texts = |b: Batch| b.messages.iter().map(|m| m.to_string()).collect::<Vec<_>>();
        assert_eq!(texts(c.take()), ["j", "a4", "b0"]);
        // Taken statuses are forgotten: the next one of a printer is queued anew.
        let a5: Arc<str> = Arc::from("a5");
        c.offer(&[ev(EventKind::PrinterStatus, Some(("a", 3)), &a5)]);
        assert_eq!(texts(c.take()), ["a5"]);
    }

    #[test]
    fn overflow_closes_with_reason() {
        let c = Client::new(1);
        let m: Arc<str> = Arc::from("x");
        for _ in 0..CLIENT_QUEUE_CAPACITY {
            assert!(c.offer(&[ev(EventKind::JobUpdated, None, &m)]));
        }
        assert!(!c.offer(&[ev(EventKind::JobUpdated, None, &m)]));
        assert_eq!(c.take().close.as_deref(), Some(TOO_SLOW_REASON));
    }

    #[test]
    fn overflow_by_bytes_closes_too() {
        let c = Client::new(1);
        let big: Arc<str> = Arc::from("x".repeat(1024 * 1024));
        let big = [ev(EventKind::JobUpdated, None, &big)];
        for _ in 0..CLIENT_QUEUE_BYTES / (1024 * 1024) {
            assert!(c.offer(&big));
        }
        assert!(!c.offer(&big));
        assert_eq!(c.take().close.as_deref(), Some(TOO_SLOW_REASON));
        // A client that keeps reading is never closed, however much goes through it.
        let c = Client::new(2);
        for _ in 0..3 * CLIENT_QUEUE_BYTES / (1024 * 1024) {
            assert!(c.offer(&big));
            assert_eq!(c.take().messages.len(), 1);
        }
    }

    #[test]
    fn filter_by_event_and_printer() {
        let f = Filter {
            events: EventKind::JobUpdated.bit(),
            printer_ids: [p("a")].into_iter().collect(),
        };
        assert!(f.accepts(EventKind::JobUpdated, Some(&p("a"))));
        assert!(!f.accepts(EventKind::JobUpdated, Some(&p("b"))));
        assert!(!f.accepts(EventKind::JobCreated, Some(&p("a"))));
        assert!(Filter::default().accepts(EventKind::SettingsUpdated, None));
    }
}
