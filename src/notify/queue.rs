//! The on-disk delivery queue and its writer.
//!
//! Durability choice: the queue is written by a small dedicated writer with its own
//! SQLite connection (busy_timeout), not inside the JobCreator's group transaction.
//! Webhooks see the same event stream as WebSocket clients, after the job's commit; the
//! tap (`tap.rs`) renders each event into deliveries and hands them here without
//! waiting; this writer commits them in batches. The JobCreator is untouched and never
//! waits on webhooks (its group uses `BEGIN IMMEDIATE`, so our short transactions only
//! ever make it wait for one of them, a few ms at most).
//!
//! What this can lose: events between the job's commit and the queue's commit — the
//! ones still in the Broadcaster's mailbox, the tap's outbox and `pending` below, normally
//! a few milliseconds' worth — if the process dies right then (`kill -9`, power cut), and
//! events dropped when the tap or `pending` overflow (counted in `dropped_events`). A
//! clean shutdown (SIGTERM) commits what is pending first. Once queued, a delivery
//! survives any restart and is retried until delivered or 24 h old (at least once; the
//! `X-Printfarmd-Delivery` id is the same on every attempt so receivers can de-duplicate).

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::Notify;

use crate::store::webhooks::Delivery;
use crate::store::{self, StoreError};

/// Deliveries waiting in memory for the writer. An event makes one per matching webhook;
/// the writer commits every few ms, so this is seconds of a busy farm's events even with
/// many webhooks. Beyond it new deliveries are dropped and counted, never waited for.
pub const PENDING_CAPACITY: usize = 8192;
/// Deliveries committed in one transaction (one fsync).
const WRITE_BATCH: usize = 512;
/// Rows the on-disk queue may hold. A receiver down for a day on a busy farm may need
/// tens of thousands; past this, new deliveries are dropped and counted so a dead
/// receiver cannot fill the disk.
pub const MAX_QUEUED: u64 = 200_000;
/// Wait before retrying a failed queue write (disk full, locked by an outside tool).
const WRITE_RETRY: Duration = Duration::from_secs(1);

#[derive(Default)]
pub struct QueueStats {
    /// Deliveries dropped before reaching the disk (overflow, queue full, write failure).
    pub dropped: AtomicU64,
    /// Deliveries committed to the queue since start.
    pub enqueued: AtomicU64,
}

pub struct Queue {
    conn: Arc<Mutex<Connection>>,
    pending: Mutex<VecDeque<Delivery>>,
    wake_writer: Notify,
    /// Woken when new deliveries are on disk.
    pub wake_deliverer: Notify,
    /// Rows on disk (kept in memory to enforce MAX_QUEUED without counting rows).
    queued: AtomicU64,
    /// Held by whoever is taking a batch from `pending` to the disk, so `flush` (at
    /// shutdown) waits for a batch the writer task has taken but not yet committed.
    writing: tokio::sync::Mutex<()>,
    pub stats: QueueStats,
}

impl Queue {
    /// Opens the queue's own connection (the database is already migrated).
    pub fn open(path: &Path) -> Result<Arc<Queue>, StoreError> {
        let conn = store::open_read_write(path)?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        let queued = store::webhooks::queued_total(&conn)?;
        Ok(Arc::new(Queue {
            conn: Arc::new(Mutex::new(conn)),
            pending: Mutex::new(VecDeque::new()),
            wake_writer: Notify::new(),
            wake_deliverer: Notify::new(),
            queued: AtomicU64::new(queued),
            writing: tokio::sync::Mutex::new(()),
            stats: QueueStats::default(),
        }))
    }

    /// Hands deliveries to the writer without waiting; what does not fit is dropped and
    /// counted.
    pub fn push(&self, items: Vec<Delivery>) {
        if items.is_empty() {
            return;
        }
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let mut dropped = 0;
        for d in items {
            if p.len() >= PENDING_CAPACITY {
                dropped += 1;
            } else {
                p.push_back(d);
            }
        }
        drop(p);
        if dropped > 0 {
            self.stats.dropped.fetch_add(dropped, Ordering::Relaxed);
            tracing::warn!(
                dropped,
                "webhook deliveries dropped: the queue writer is behind"
            );
        }
        self.wake_writer.notify_one();
    }

    /// Runs `f` on the queue's connection on a blocking thread.
    pub async fn db<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let c = conn.lock().unwrap_or_else(|e| e.into_inner());
            f(&c)
        })
        .await
        .map_err(|e| StoreError::Unavailable(e.to_string()))?
    }

    pub fn queued(&self) -> u64 {
        self.queued.load(Ordering::Relaxed)
    }

    /// `n` rows left the disk queue (delivered, dropped, or their webhook deleted).
    pub fn removed(&self, n: u64) {
        let _ = self
            .queued
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |q| {
                Some(q.saturating_sub(n))
            });
    }

    /// The writer: commits pending deliveries in batches, for as long as the daemon runs.
    pub async fn run_writer(self: Arc<Self>) {
        loop {
            self.wake_writer.notified().await;
            while self.write_some().await {}
        }
    }

    /// Commits everything pending now (shutdown).
    pub async fn flush(&self) {
        while self.write_some().await {}
    }

    /// Commits one batch; false when nothing was pending.
    async fn write_some(&self) -> bool {
        let _writing = self.writing.lock().await;
        let batch: Vec<Delivery> = {
            let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            let n = p.len().min(WRITE_BATCH);
            p.drain(..n).collect()
        };
        if batch.is_empty() {
            return false;
        }
        let room = MAX_QUEUED.saturating_sub(self.queued());
        let (batch, over) = if (batch.len() as u64) > room {
            let mut b = batch;
            let over = b.split_off(room as usize);
            (b, over.len() as u64)
        } else {
            (batch, 0)
        };
        if over > 0 {
            self.stats.dropped.fetch_add(over, Ordering::Relaxed);
            tracing::warn!(
                dropped = over,
                limit = MAX_QUEUED,
                "webhook queue full: deliveries dropped (a receiver has been down long)"
            );
        }
        let n = batch.len() as u64;
        for attempt in 0..3 {
            let b = batch.clone();
            match self.db(move |c| store::webhooks::enqueue(c, &b)).await {
                Ok(()) => {
                    self.queued.fetch_add(n, Ordering::Relaxed);
                    self.stats.enqueued.fetch_add(n, Ordering::Relaxed);
                    self.wake_deliverer.notify_one();
                    return true;
                }
                Err(e) => {
                    tracing::warn!(error = %e, attempt, "could not write webhook deliveries; retrying");
                    tokio::time::sleep(WRITE_RETRY).await;
                }
            }
        }
        self.stats.dropped.fetch_add(n, Ordering::Relaxed);
        tracing::error!(
            dropped = n,
            "webhook deliveries dropped: the queue could not be written"
        );
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(i: usize) -> Delivery {
        Delivery {
            id: format!("d{i}"),
            webhook_id: "w".into(),
            event_type: "job_created".into(),
            body: "{}".into(),
            content_type: "application/json".into(),
            headers: "{}".into(),
            created_ms: 0,
            attempts: 0,
            next_attempt_ms: 0,
        }
    }

    #[tokio::test]
    async fn a_full_pending_list_drops_and_counts_instead_of_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.db");
        drop(store::open_writer(&path).unwrap());
        let q = Queue::open(&path).unwrap();
        // No writer running: nothing drains the list.
        q.push((0..PENDING_CAPACITY + 5).map(delivery).collect());
        assert_eq!(q.stats.dropped.load(Ordering::Relaxed), 5);
        q.flush().await;
        assert_eq!(q.queued(), PENDING_CAPACITY as u64);
        let on_disk = q.db(store::webhooks::queued_total).await.unwrap();
        assert_eq!(on_disk, PENDING_CAPACITY as u64);
        // A reopened queue knows what is on disk.
        assert_eq!(
            Queue::open(&path).unwrap().queued(),
            PENDING_CAPACITY as u64
        );
    }
}
