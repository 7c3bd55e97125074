//! One WebSocket client's outbox: a bounded queue of events, the latest status of each
//! printer (coalesced), and its subscription filter.
//!
//! The Broadcaster pushes into it without waiting; the client's writer task drains it.
//! If the client cannot keep up, `printer_status` messages simply replace each other,
//! and once job events overflow the queue the client is marked for closing with a reason
//! so it reconnects and re-reads. Nothing here ever waits on the client's socket, so a
//! slow client cannot slow the daemon or another client.
//!
//! Every message keeps its `seq`, and `take` hands them out in `seq` order: job events
//! and coalesced statuses are merged, not appended (when the job events went first and
//! the statuses after, in the order their printers first had one pending, a client saw
//! `seq` go backwards: 4 times in 4,574 messages in the demo).

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
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

/// Bytes of direct replies (pong, subscribed, error) one client may have waiting: a
/// client that sends commands and never reads the answers is not served more. With
/// error replies capped at ~1 KB (`api::ws`) that is ~1,000 errors.
pub const CLIENT_REPLY_BYTES: usize = 1024 * 1024;

/// Close reason sent to a client that fell behind.
pub const TOO_SLOW_REASON: &str =
    "client too slow: events were dropped; reconnect and re-read /api/v1/jobs";
/// Close reason for a client message over the WebSocket's size limit (`api::ws`).
pub const TOO_BIG_REASON: &str =
    "message too big: client messages are at most 65536 bytes; send smaller commands";
/// Close reason sent to every client when the daemon stops.
pub const SHUTDOWN_REASON: &str = "printfarmd is shutting down";

/// Why a client's connection is closed. The WebSocket writer picks the close code from
/// it (`api::ws::close_code`) and the integrations' tap tells a shutdown from an overflow
/// by it, instead of comparing the reason texts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The daemon is stopping.
    Shutdown,
    /// It fell behind on job events (its queue overflowed).
    TooSlow,
    /// It sent a message over the size limit.
    TooBig,
    /// It went away itself.
    ClientGone,
}

impl CloseReason {
    /// The text sent in the close frame: what a person can act on.
    pub fn text(self) -> &'static str {
        match self {
            CloseReason::Shutdown => SHUTDOWN_REASON,
            CloseReason::TooSlow => TOO_SLOW_REASON,
            CloseReason::TooBig => TOO_BIG_REASON,
            CloseReason::ClientGone => "client went away",
        }
    }
}

/// What a client asked to receive. Empty sets mean "everything".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// Bit mask of `EventKind::bit`; 0 = all.
    pub events: u8,
    pub printer_ids: HashSet<PrinterId>,
}

impl Filter {
    /// Whether it takes `printer_status` events of at least one printer (a printer
    /// filter narrows which, never whether).
    pub fn takes_statuses(&self) -> bool {
        self.accepts(EventKind::PrinterStatus, None)
    }

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
    /// Its sequence number (the `seq` inside `msg`).
    pub seq: u64,
    pub msg: Arc<str>,
}

#[derive(Default)]
struct State {
    /// Job and settings events and direct replies, with their `seq` (a reply has the
    /// `seq` of the last event offered before it, so it stays in place).
    queue: VecDeque<(u64, Arc<str>)>,
    /// Bytes of the messages in `queue`.
    queued_bytes: usize,
    /// Bytes of the direct replies in `queue`.
    reply_bytes: usize,
    /// The `seq` of the last event offered.
    last_seq: u64,
    /// Latest printer_status per printer not yet sent, by status slot, with its `seq`.
    statuses: Vec<(u32, u64, Arc<str>)>,
    /// For each status slot, where its pending status is in `statuses` plus one (0: none).
    /// An index, not a map keyed by printer id: a client that is a moment behind on a
    /// 2,000-printer farm has ~2,000 pending, and hashing and cloning the id per event
    /// per client was the Broadcaster's main cost.
    pending: Vec<u32>,
    filter: Filter,
    /// Set when the client must be closed, with the reason to send.
    close: Option<CloseReason>,
}

impl State {
    fn put_status(&mut self, slot: u32, seq: u64, msg: &Arc<str>) {
        let i = slot as usize;
        if self.pending.len() <= i {
            self.pending.resize(i + 1, 0);
        }
        match self.pending[i] {
            0 => {
                self.statuses.push((slot, seq, msg.clone()));
                self.pending[i] = self.statuses.len() as u32;
            }
            at => {
                let e = &mut self.statuses[at as usize - 1];
                (e.1, e.2) = (seq, msg.clone());
            }
        }
    }
}

/// What the writer task takes in one go.
pub struct Batch {
    pub messages: Vec<Arc<str>>,
    pub close: Option<CloseReason>,
}

/// How many clients' filters take `printer_status` events, shared by the Broadcaster's
/// clients and read by the JobCreator, which builds and sends a status event only while
/// one does: with no dashboard open (most of a small farm's day) a status costs the
/// System thread nothing (issue 21). Kept by each `Client` itself: counted when it is
/// made, moved by `set_filter`, given back when the last handle on it is dropped, so
/// it never undercounts.
#[derive(Clone, Default, Debug)]
pub struct StatusListeners(Arc<AtomicUsize>);

impl StatusListeners {
    pub fn any(&self) -> bool {
        self.0.load(Ordering::Relaxed) > 0
    }

    fn count(&self, yes: bool) {
        if yes {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn uncount(&self, yes: bool) {
        if yes {
            self.0.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

pub struct Client {
    pub id: u64,
    listeners: StatusListeners,
    state: Mutex<State>,
    /// Wakes the writer when there is something to send.
    pub ready: Notify,
    /// Wakes a writer stuck in a send when the client must be dropped.
    pub abort: Notify,
    /// The integrations' tap (src/notify), not a WebSocket: left out of client counts.
    pub internal: std::sync::atomic::AtomicBool,
}

impl Drop for Client {
    fn drop(&mut self) {
        let takes = self
            .state
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .filter
            .takes_statuses();
        self.listeners.uncount(takes);
    }
}

impl Client {
    pub fn new(id: u64) -> Self {
        Self::counted_in(id, StatusListeners::default())
    }

    /// A client counted in `listeners` while its filter takes statuses (a new client's
    /// filter takes everything).
    pub fn counted_in(id: u64, listeners: StatusListeners) -> Self {
        let state = State::default();
        listeners.count(state.filter.takes_statuses());
        Self {
            id,
            listeners,
            state: Mutex::new(state),
            ready: Notify::new(),
            abort: Notify::new(),
            internal: Default::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned lock only means another thread panicked mid-push; the queue is
        // still a valid VecDeque, so keep serving.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set_filter(&self, f: Filter) {
        let mut st = self.lock();
        let (was, is) = (st.filter.takes_statuses(), f.takes_statuses());
        st.filter = f;
        if was != is {
            self.listeners.count(is);
            self.listeners.uncount(was);
        }
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
            st.last_seq = st.last_seq.max(e.seq);
            if !st.filter.accepts(e.kind, e.printer.as_ref()) {
                continue;
            }
            match e.status_slot {
                Some(slot) if e.kind == EventKind::PrinterStatus => {
                    st.put_status(slot, e.seq, &e.msg)
                }
                _ if st.queue.len() >= CLIENT_QUEUE_CAPACITY
                    || st.queued_bytes + e.msg.len() > CLIENT_QUEUE_BYTES =>
                {
                    st.close = Some(CloseReason::TooSlow);
                    crate::metrics::global().ws_dropped.inc();
                    st.queue.clear();
                    st.queued_bytes = 0;
                    st.reply_bytes = 0;
                    st.statuses.clear();
                    st.pending.clear();
                    drop(st);
                    self.ready.notify_one();
                    self.abort.notify_one();
                    return false;
                }
                _ => {
                    st.queued_bytes += e.msg.len();
                    st.queue.push_back((e.seq, e.msg.clone()));
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

    /// A direct reply (pong, subscribed, error): not filtered, bounded by count and by
    /// bytes. Returns false when it was dropped (the client does not read its replies).
    pub fn reply(&self, msg: Arc<str>) -> bool {
        let mut st = self.lock();
        let fits = st.close.is_none()
            && st.queue.len() < CLIENT_QUEUE_CAPACITY
            && st.reply_bytes + msg.len() <= CLIENT_REPLY_BYTES
            && st.queued_bytes + msg.len() <= CLIENT_QUEUE_BYTES;
        if fits {
            st.queued_bytes += msg.len();
            st.reply_bytes += msg.len();
            let seq = st.last_seq;
            st.queue.push_back((seq, msg));
        }
        drop(st);
        self.ready.notify_one();
        fits
    }

    /// Asks the writer to close the connection with `reason`.
    pub fn close(&self, reason: CloseReason) {
        let mut st = self.lock();
        if st.close.is_none() {
            st.close = Some(reason);
        }
        drop(st);
        self.ready.notify_one();
    }

    /// Everything waiting, in `seq` order: the queued events and the coalesced
    /// statuses merged (a status replaced by a newer one takes the newer one's place).
    pub fn take(&self) -> Batch {
        let mut st = self.lock();
        st.queued_bytes = 0;
        st.reply_bytes = 0;
        let st = &mut *st;
        for (slot, _, _) in &st.statuses {
            st.pending[*slot as usize] = 0;
        }
        // Nearly sorted already (only replaced statuses are out of place): cheap.
        st.statuses.sort_unstable_by_key(|s| s.1);
        let mut messages = Vec::with_capacity(st.queue.len() + st.statuses.len());
        let mut statuses = st.statuses.drain(..).peekable();
        for (seq, m) in st.queue.drain(..) {
            while let Some((_, _, s)) = statuses.next_if(|s| s.1 <= seq) {
                messages.push(s);
            }
            messages.push(m);
        }
        messages.extend(statuses.map(|s| s.2));
        Batch {
            messages,
            close: st.close,
        }
    }
}

#[cfg(test)]
mod tests;
