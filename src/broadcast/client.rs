//! One WebSocket client's outbox: a bounded queue of events, the latest status of each
//! printer (coalesced), and its subscription filter.
//!
//! The Broadcaster pushes into it without waiting; the client's writer task drains it.
//! If the client cannot keep up, `printer_status` messages simply replace each other,
//! and once job events overflow the queue the client is marked for closing with a reason
//! so it reconnects and re-reads. Nothing here ever waits on the client's socket, so a
//! slow client cannot slow the daemon or another client.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use super::event::EventKind;
use crate::domain::PrinterId;

/// Job and settings events one client may have waiting before it is closed as too slow.
/// A live client must be able to take a whole progress flush at once: once a second the
/// JobCreator publishes a `job_updated` for every job whose progress moved, ~2,000 in a
/// burst on a 2,000-printer farm (at 1,024 every client of such a farm was closed at the
/// first flush).
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

#[derive(Default)]
struct State {
    queue: VecDeque<Arc<str>>,
    /// Bytes of the messages in `queue`.
    queued_bytes: usize,
    /// Latest printer_status per printer not yet sent, in arrival order.
    statuses: Vec<(PrinterId, Arc<str>)>,
    /// Where each printer's pending status is in `statuses`. A lookup instead of a scan:
    /// a client that is a moment behind on a 2,000-printer farm has ~2,000 pending, and
    /// the scan (string compares, per event, per client) was the Broadcaster's main cost.
    pending: HashMap<PrinterId, usize>,
    filter: Filter,
    /// Set when the client must be closed, with the reason to send.
    close: Option<String>,
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

    /// Queues an event if the filter accepts it. Returns false once the client is
    /// closing (the Broadcaster then forgets it).
    pub fn offer(&self, kind: EventKind, printer: Option<&PrinterId>, msg: &Arc<str>) -> bool {
        let mut st = self.lock();
        if st.close.is_some() {
            return false;
        }
        if !st.filter.accepts(kind, printer) {
            return true;
        }
        if kind == EventKind::PrinterStatus
            && let Some(p) = printer
        {
            let st = &mut *st;
            match st.pending.get(p) {
                Some(&i) => st.statuses[i].1 = msg.clone(),
                None => {
                    st.pending.insert(p.clone(), st.statuses.len());
                    st.statuses.push((p.clone(), msg.clone()));
                }
            }
        } else if st.queue.len() >= CLIENT_QUEUE_CAPACITY
            || st.queued_bytes + msg.len() > CLIENT_QUEUE_BYTES
        {
            st.close = Some(TOO_SLOW_REASON.to_owned());
            st.queue.clear();
            st.queued_bytes = 0;
            st.statuses.clear();
            st.pending.clear();
            drop(st);
            self.ready.notify_one();
            self.abort.notify_one();
            return false;
        } else {
            st.queued_bytes += msg.len();
            st.queue.push_back(msg.clone());
        }
        drop(st);
        self.ready.notify_one();
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
        messages.extend(st.statuses.drain(..).map(|(_, m)| m));
        st.pending.clear();
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

    #[test]
    fn statuses_coalesce_per_printer() {
        let c = Client::new(1);
        for i in 0..5 {
            c.offer(
                EventKind::PrinterStatus,
                Some(&p("a")),
                &Arc::from(format!("a{i}")),
            );
        }
        c.offer(EventKind::PrinterStatus, Some(&p("b")), &Arc::from("b0"));
        let b = c.take();
        assert_eq!(
            b.messages.iter().map(|m| m.as_ref()).collect::<Vec<_>>(),
            ["a4", "b0"]
        );
    }

    #[test]
    fn overflow_closes_with_reason() {
        let c = Client::new(1);
        let m: Arc<str> = Arc::from("x");
        for _ in 0..CLIENT_QUEUE_CAPACITY {
            assert!(c.offer(EventKind::JobUpdated, None, &m));
        }
        assert!(!c.offer(EventKind::JobUpdated, None, &m));
        assert_eq!(c.take().close.as_deref(), Some(TOO_SLOW_REASON));
    }

    #[test]
    fn overflow_by_bytes_closes_too() {
        let c = Client::new(1);
        let big: Arc<str> = Arc::from("x".repeat(1024 * 1024));
        for _ in 0..CLIENT_QUEUE_BYTES / (1024 * 1024) {
            assert!(c.offer(EventKind::JobUpdated, None, &big));
        }
        assert!(!c.offer(EventKind::JobUpdated, None, &big));
        assert_eq!(c.take().close.as_deref(), Some(TOO_SLOW_REASON));
        // A client that keeps reading is never closed, however much goes through it.
        let c = Client::new(2);
        for _ in 0..3 * CLIENT_QUEUE_BYTES / (1024 * 1024) {
            assert!(c.offer(EventKind::JobUpdated, None, &big));
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
