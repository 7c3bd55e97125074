//! Group commit: one durable transaction that many small writes share.
//!
//! A job created or closed by a printer status is written durably before its event goes
//! out, and a durable commit is an fsync: 2–4 ms on the disks we measured. One fsync per
//! write made every status queued behind a burst of job starts and ends wait for each of
//! them in turn (a farm of 2,000 printers running short prints starts and ends ~100 a
//! second). So the statuses' writes share a transaction: the first write opens it, the
//! caller arranges a commit once its queue is drained (the JobCreator sends itself a
//! `Commit` message, which lands behind every status already waiting), and one fsync makes
//! all of them durable. Each caller's unit of writes runs inside a savepoint (`unit`),
//! so a unit that fails leaves the group's other writes in place.
//!
//! The group does not know what the writes mean: the JobCreator holds the events back
//! until `commit` succeeds, and asks its job book to undo the group when it fails.

use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::StoreError;

/// A group older than this is committed by the next status, without waiting for its
/// `Commit` message (a long mailbox would otherwise hold its events back).
pub const GROUP_MAX_AGE: Duration = Duration::from_millis(10);

/// The open group's transaction, if one is open.
#[derive(Debug, Default)]
pub struct Group {
    /// When its transaction began; `None` while nothing was written.
    began: Option<Instant>,
}

impl Group {
    pub fn is_open(&self) -> bool {
        self.began.is_some()
    }

    pub fn is_old(&self) -> bool {
        self.began.is_some_and(|t| t.elapsed() >= GROUP_MAX_AGE)
    }

    /// Opens the group's transaction unless one is open; `true` when this opened it (the
    /// caller then arranges its commit).
    pub fn begin(&mut self, conn: &Connection) -> Result<bool, StoreError> {
        if self.began.is_some() {
            return Ok(false);
        }
        conn.execute_batch("BEGIN IMMEDIATE")?;
        self.began = Some(Instant::now());
        Ok(true)
    }

    /// Whether SQLite rolled the group's transaction back after an error (a full disk, an
    /// I/O error): the group is lost now, not at its commit.
    pub fn lost(&self, conn: &Connection) -> bool {
        self.began.is_some() && conn.is_autocommit()
    }

    /// Makes the group durable, after `check` (the database files are still the ones
    /// opened). `None` when no group was open; on `Err` the group is rolled back and
    /// gone. `Ok` carries how long the group was open.
    pub fn commit(
        &mut self,
        conn: &Connection,
        check: impl FnOnce() -> Result<(), StoreError>,
    ) -> Option<Result<Duration, StoreError>> {
        let began = self.began.take()?;
        let r = if conn.is_autocommit() {
            Err(StoreError::Unavailable(
                "the group's transaction was rolled back".into(),
            ))
        } else {
            check().and_then(|()| conn.execute_batch("COMMIT").map_err(StoreError::from))
        };
        if r.is_err() && !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        Some(r.map(|()| began.elapsed()))
    }
}

/// Runs `f` as one unit: all its writes or none. Inside a transaction (a group) it is a
/// savepoint; outside, the savepoint is a transaction of its own.
pub fn unit<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    conn.execute_batch("SAVEPOINT unit")?;
    match f(conn) {
        Ok(v) => {
            conn.execute_batch("RELEASE unit")?;
            Ok(v)
        }
        Err(e) => {
            // After a rollback of the whole transaction (a full disk) there is no
            // savepoint left to undo; the caller sees that the group is lost.
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK TO unit; RELEASE unit");
            }
            Err(e)
        }
    }
}
