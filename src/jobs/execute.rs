//! The JobCreator's hands: it writes a plan of the job book, then confirms it to the
//! book and publishes its events — or, when the write failed, restores the book so the
//! next status decides again. Statuses' plans join the group commit (`store::group`):
//! their events wait for it, and a lost group is undone in the book.

use std::time::Instant;

use actix::prelude::*;
use rusqlite::Connection;

use super::book::{JobEvent, Plan, Write};
use super::creator::{Commit, JobCreator, mono};
use crate::broadcast::{Broadcaster, Event, EventKind, Publish, PublishAll};
use crate::domain::Job;
use crate::setup::Db as _;
use crate::store::{self, StoreError};

impl JobCreator {
    /// Writes `plan` (into the group when `grouped`), then confirms and publishes it;
    /// on failure restores the book and returns why.
    pub(super) fn execute(&mut self, plan: Plan, grouped: bool) -> Result<(), StoreError> {
        if plan.writes.is_empty() {
            self.book.confirm();
            self.publish_plan(plan);
            return Ok(());
        }
        let r = self.write(&plan.writes, grouped);
        match self.track(r) {
            Ok(()) => {
                self.book.confirm();
                if !self.group.is_open() {
                    self.book.committed();
                }
                self.publish_plan(plan);
                Ok(())
            }
            Err(e) => {
                // Logged (rate-limited) and shown on /health by `track`; the book is as
                // it was, so the next status from this printer retries.
                tracing::debug!(error = %e, "job write not made; will retry");
                self.book.restore(mono());
                if self.group.lost(&self.conn) {
                    self.commit();
                }
                Err(e)
            }
        }
    }

    fn write(&mut self, writes: &[Write], grouped: bool) -> Result<(), StoreError> {
        if grouped {
            self.files_ok()?;
            if self.group.begin(&self.conn)?
                && let Some(me) = &self.me
            {
                me.do_send(Commit);
            }
        }
        let conn = &self.conn;
        let one = |w: &Write| match w {
            Write::Insert(j) => store::jobs::insert(conn, j),
            Write::Update(j) => store::jobs::update(conn, j),
            Write::Delete(id) => store::jobs::delete(conn, id.as_str()).map(drop),
            Write::Progress(jobs) => jobs
                .iter()
                .try_for_each(|j| store::jobs::update_progress(conn, j)),
        };
        match writes {
            [w] => one(w),
            ws => store::group::unit(conn, |_| ws.iter().try_for_each(one)),
        }
    }

    /// Writes a progress flush in one transaction without an fsync, then publishes one
    /// `job_updated` per job, together. Not written: the jobs stay dirty.
    pub(super) fn write_progress(&mut self, plan: Plan) {
        if plan.writes.is_empty() {
            self.book.confirm();
            return;
        }
        let t0 = Instant::now();
        let r = store::without_fsync(&self.conn, |conn| {
            store::group::unit(conn, |conn| {
                for w in &plan.writes {
                    if let Write::Progress(jobs) = w {
                        for j in jobs {
                            store::jobs::update_progress(conn, j)?;
                        }
                    }
                }
                Ok(())
            })
        });
        let written = t0.elapsed();
        if self.track(r).is_err() {
            self.book.restore(mono());
            return;
        }
        self.book.confirm();
        let n = plan.events.len();
        let events = plan.events.into_iter().map(to_event).collect();
        self.to_broadcaster(PublishAll(events));
        tracing::debug!(
            jobs = n,
            write_ms = written.as_secs_f64() * 1e3,
            "progress flushed"
        );
    }

    /// Makes the open group durable and publishes its events; on failure undoes it in
    /// the book (the printers' next statuses make the same decisions and write them).
    pub fn commit(&mut self) {
        let t = Instant::now();
        let health = self.health.clone();
        let check = || files_ok(&health);
        let Some(r) = self.group.commit(&self.conn, check) else {
            return;
        };
        crate::metrics::global()
            .db_commit
            .observe(t.elapsed().as_secs_f64());
        let events = std::mem::take(&mut self.held);
        match self.track(r) {
            Ok(open_for) => {
                self.book.committed();
                if let Some(n) = &self.checkpoint {
                    n.committed();
                }
                tracing::trace!(
                    events = events.len(),
                    open_ms = open_for.as_secs_f64() * 1e3,
                    "group committed"
                );
                self.to_broadcaster(PublishAll(events));
            }
            Err(e) => {
                tracing::warn!(error = %e, "job writes not committed; the printers' next statuses write them again");
                self.book.rolled_back(mono());
            }
        }
    }

    /// Hands the plan's events on (held while a group is open), and counts its jobs.
    fn publish_plan(&mut self, plan: Plan) {
        let m = crate::metrics::global();
        for s in plan.ended {
            m.job_ended(s);
        }
        for ev in plan.events {
            match &ev {
                JobEvent::Created(j) => m.job_created(j, true),
                JobEvent::AutoCreated(j) => m.job_created(j, false),
                _ => {}
            }
            self.publish(to_event(ev));
        }
    }

    /// Hands an event to the Broadcaster, or to the open group, which publishes it once
    /// its writes are durable.
    pub(super) fn publish(&mut self, ev: Event) {
        if self.group.is_open() {
            self.held.push(ev);
        } else {
            self.to_broadcaster(Publish(ev));
        }
    }

    /// `try_send` does not wait; only when the Broadcaster's mailbox is full does this
    /// thread wait for room (back-pressure, never loss).
    fn to_broadcaster<M>(&self, msg: M)
    where
        M: Message<Result = ()> + Send + 'static,
        Broadcaster: Handler<M>,
    {
        use actix::prelude::SendError;
        match self.broadcaster.try_send(msg) {
            Ok(()) => {}
            Err(SendError::Full(msg)) => {
                if futures_executor::block_on(self.broadcaster.send(msg)).is_err() {
                    tracing::warn!("broadcaster stopped; event not delivered");
                }
            }
            Err(SendError::Closed(_)) => tracing::warn!("broadcaster stopped; event not delivered"),
        }
    }

    /// `Err` once the database's files changed under the daemon (sticky until restart).
    pub(super) fn files_ok(&self) -> Result<(), StoreError> {
        files_ok(&self.health)
    }

    /// Records the outcome of a write for /health (see `Writer::track`).
    pub(super) fn track<T>(&self, r: Result<T, StoreError>) -> Result<T, StoreError> {
        self.writer().track(r)
    }

    pub(super) fn writer(&self) -> Writer<'_> {
        Writer {
            conn: &self.conn,
            health: &self.health,
        }
    }
}

/// The JobCreator's connection and its verdict on each write, as the setup owner writes
/// through them (`setup::Db`). Built from the fields alone, so it can be lent while the
/// owner, another field, is borrowed to change.
pub(super) struct Writer<'a> {
    pub(super) conn: &'a Connection,
    pub(super) health: &'a crate::health::Health,
}

impl crate::setup::Db for Writer<'_> {
    fn conn(&self) -> &Connection {
        self.conn
    }

    /// Records the outcome of a write for /health. A write outside a group is durable
    /// once done, so it is reported done only if it went to the database's files and not
    /// to ones deleted or replaced under the daemon.
    fn track<T>(&self, r: Result<T, StoreError>) -> Result<T, StoreError> {
        let r = match r {
            Ok(v) if self.conn.is_autocommit() => files_ok(self.health).map(|()| v),
            r => r,
        };
        match &r {
            Ok(_) => self.health.write_succeeded(),
            Err(
                e @ (StoreError::DiskFull
                | StoreError::Locked
                | StoreError::ReadOnly
                | StoreError::Sqlite(_)),
            ) => {
                tracing::error!(error = %e, "database write failed");
                self.health.write_failed(e.to_string());
            }
            Err(_) => {}
        }
        r
    }
}

fn files_ok(health: &crate::health::Health) -> Result<(), StoreError> {
    health.check_files().map_err(StoreError::Unavailable)
}

/// A job event as the Broadcaster sends it: the job as its data, filtered by its printer.
pub(super) fn to_event(ev: JobEvent) -> Event {
    let job = |kind, j: Job| Event::new(kind, Some(j.printer_id.clone()), &j);
    match ev {
        JobEvent::AutoCreated(j) => job(EventKind::JobAutoCreated, j),
        JobEvent::Created(j) => job(EventKind::JobCreated, j),
        JobEvent::Updated(j) => job(EventKind::JobUpdated, j),
        JobEvent::Deleted { id, printer_id } => Event::new(
            EventKind::JobDeleted,
            Some(printer_id),
            serde_json::json!({ "id": id }),
        ),
    }
}
