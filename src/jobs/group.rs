//! Group commit for the statuses' writes.
//!
//! A job created or closed by a printer status is written durably before its event goes
//! out, and a durable commit is an fsync: 2–4 ms on the disks we measured. One fsync per
//! write made every status queued behind a burst of job starts and ends wait for each of
//! them in turn (a farm of 2,000 printers running short prints starts and ends ~100 a
//! second). So the statuses' writes share transactions: the first write of a status opens
//! one and sends the JobCreator a `Commit` message, which lands behind every status
//! already waiting in its mailbox. Those statuses write into the same transaction, and
//! `Commit` makes all of them durable with one fsync. Events wait for the commit (a
//! client never hears of a job the database could still lose); until a group has written
//! anything, events go out at once. Everything else the JobCreator does (the REST API's
//! writes, settings, printers, the progress flush) commits the open group first and then
//! runs on its own, as before.
//!
//! If the group's transaction is lost (a failed commit, or a write error that made
//! SQLite roll it back), every printer it touched is put back as it was before the group
//! and its events are dropped: the printers' next statuses make the same decisions again
//! and write them, exactly as after a single failed write.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::creator::JobCreator;
use super::lifecycle::PrinterTracker;
use super::model::Job;
use crate::broadcast::Event;
use crate::domain::PrinterId;
use crate::store::StoreError;

/// A group older than this is committed by the next status, without waiting for its
/// `Commit` message (a long mailbox would otherwise hold its events back).
pub const GROUP_MAX_AGE: Duration = Duration::from_millis(10);

/// The open group: its transaction, the events it holds back, and how to undo it.
#[derive(Default)]
pub(super) struct Group {
    /// When its transaction began; `None` while nothing was written.
    began: Option<Instant>,
    /// Events to publish once the group is durable.
    events: Vec<Event>,
    /// Each printer it touched, as it was before the group.
    undo: HashMap<PrinterId, Before>,
    /// Whether the writes under way are a status's (and may join the group).
    pub(super) active: bool,
}

struct Before {
    tracker: Option<PrinterTracker>,
    /// The printer's open job, as it was.
    job: Option<Job>,
}

impl Group {
    /// Whether events must wait for a commit.
    pub(super) fn holds_events(&self) -> bool {
        self.began.is_some()
    }

    pub(super) fn hold(&mut self, ev: Event) {
        self.events.push(ev);
    }

    pub(super) fn is_old(&self) -> bool {
        self.began.is_some_and(|t| t.elapsed() >= GROUP_MAX_AGE)
    }
}

/// Asks the JobCreator to commit the open group once it has handled what is already in
/// its mailbox.
#[derive(actix::Message)]
#[rtype(result = "()")]
pub struct Commit;

impl JobCreator {
    /// Called before a status writes for `printer`: opens the group's transaction if
    /// none is open, and remembers the printer as it is. A no-op outside a status.
    pub(super) fn join_group(&mut self, printer: &PrinterId) -> Result<(), StoreError> {
        if !self.group.active {
            return Ok(());
        }
        if self.group.began.is_none() {
            self.files_ok()?;
            self.conn.execute_batch("BEGIN IMMEDIATE")?;
            self.group.began = Some(Instant::now());
            if let Some(me) = &self.me {
                me.do_send(Commit);
            }
        }
        if !self.group.undo.contains_key(printer) {
            let tracker = self.trackers.get(printer).cloned();
            let job = self
                .open_job_id(printer)
                .and_then(|id| self.open.get(&id))
                .cloned();
            self.group
                .undo
                .insert(printer.clone(), Before { tracker, job });
        }
        Ok(())
    }

    /// Makes the open group durable and publishes its events; on failure undoes it.
    pub(super) fn commit(&mut self) {
        let Some(began) = self.group.began else {
            return;
        };
        let r = if self.conn.is_autocommit() {
            Err(StoreError::Unavailable(
                "the group's transaction was rolled back".into(),
            ))
        } else {
            // Not committed into files deleted or replaced under the daemon (its events
            // would announce jobs a restart loses); undone below instead.
            let t = Instant::now();
            let r = self
                .files_ok()
                .and_then(|()| self.conn.execute_batch("COMMIT").map_err(StoreError::from));
            crate::metrics::global()
                .db_commit
                .observe(t.elapsed().as_secs_f64());
            r
        };
        let group = std::mem::take(&mut self.group);
        self.group.active = group.active;
        match self.track(r) {
            Ok(()) => {
                tracing::trace!(
                    printers = group.undo.len(),
                    events = group.events.len(),
                    open_ms = began.elapsed().as_secs_f64() * 1e3,
                    "group committed"
                );
                self.publish_all(group.events);
            }
            Err(e) => {
                if !self.conn.is_autocommit() {
                    let _ = self.conn.execute_batch("ROLLBACK");
                }
                tracing::warn!(error = %e, printers = group.undo.len(), "job writes not committed; the printers' next statuses write them again");
                self.undo(group.undo);
            }
        }
    }

    /// After a write of a status failed: if SQLite rolled the whole transaction back
    /// (a full disk, an I/O error), the group is lost now, not at its commit, so that
    /// later writes do not run outside it believing they are in it.
    pub(super) fn check_group_after_error(&mut self) {
        if self.group.began.is_some() && self.conn.is_autocommit() {
            self.commit();
        }
    }

    fn undo(&mut self, undo: HashMap<PrinterId, Before>) {
        for (printer, before) in undo {
            if let Some(id) = self.open_job_id(&printer) {
                self.open.remove(&id);
                self.dirty.remove(&id);
            }
            match before.tracker {
                Some(t) => self.trackers.insert(printer, t),
                None => self.trackers.remove(&printer),
            };
            if let Some(job) = before.job {
                self.dirty.insert(&job.id);
                self.open.insert(job.id.clone(), job);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use actix::prelude::*;

    use super::*;
    use crate::broadcast::{Broadcaster, Client, Connect};
    use crate::config::{PrinterConfig, Settings};
    use crate::domain::PrinterType;
    use crate::health::Health;
    use crate::printers::view::LiveStates;
    use crate::printers::{ConnectionState, PrinterEvent, PrinterState, PrinterStatus};
    use crate::registry::{Entry, ManagedBy, PrinterRegistry};
    use crate::store;
    use crate::time;

    struct Rig {
        creator: JobCreator,
        client: Arc<Client>,
        db: std::path::PathBuf,
        _dir: tempfile::TempDir,
    }

    /// A JobCreator over a real database (outside an actor: the test commits by hand),
    /// with a running Broadcaster and one WebSocket client's outbox.
    async fn rig(printers: &[&str]) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        let conn = store::open_writer(&db).unwrap();
        let broadcaster = Broadcaster::new().start();
        let client = broadcaster.send(Connect).await.unwrap();
        let registry = PrinterRegistry::default();
        for id in printers {
            registry.insert(Entry {
                config: PrinterConfig {
                    id: PrinterId::new(*id).unwrap(),
                    kind: PrinterType::Bambu,
                    name: None,
                    host: "127.0.0.1".into(),
                    port: None,
                    serial: Some("S".into()),
                    access_code: None,
                    username: None,
                    password: None,
                    api_key: None,
                },
                managed_by: ManagedBy::Config,
            });
        }
        let settings = tokio::sync::watch::channel(Settings {
            job_creation_auto_create: true,
            monitoring_interval: 30,
        })
        .0;
        let creator = JobCreator::new(
            conn,
            broadcaster,
            settings,
            registry,
            LiveStates::default(),
            Arc::new(Health::default()),
        );
        Rig {
            creator,
            client,
            db,
            _dir: dir,
        }
    }

    fn printing(id: &str, file: &str) -> PrinterEvent {
        let mut s =
            PrinterStatus::unknown(PrinterId::new(id).unwrap(), PrinterType::Bambu, time::now());
        s.connection = ConnectionState::Connected;
        s.state = PrinterState::Printing;
        s.filename = Some(file.into());
        s.job_name = Some(file.into());
        s.printer_job_id = Some("77".into());
        s.progress = Some(3.0);
        s.first_after_connect = false;
        PrinterEvent::Status(Box::new(s))
    }

    fn status(creator: &mut JobCreator, ev: PrinterEvent) {
        let PrinterEvent::Status(s) = ev else {
            unreachable!()
        };
        creator.on_status(*s);
    }

    /// Jobs another connection (a REST read) sees.
    fn jobs_seen(db: &std::path::Path) -> i64 {
        let c = rusqlite::Connection::open(db).unwrap();
        c.query_row("SELECT count(*) FROM jobs", [], |r| r.get(0))
            .unwrap()
    }

    async fn events(client: &Client) -> Vec<String> {
        tokio::time::sleep(Duration::from_millis(100)).await;
        client
            .take()
            .messages
            .iter()
            .map(|m| serde_json::from_str::<serde_json::Value>(m).unwrap()["type"].to_string())
            .collect()
    }

    #[actix_rt::test]
    async fn statuses_share_one_commit_and_their_events_wait_for_it() {
        let mut r = rig(&["a", "b", "c"]).await;
        status(&mut r.creator, printing("a", "one.3mf"));
        status(&mut r.creator, printing("b", "two.3mf"));
        // Both jobs are written into one open transaction: not durable, not announced.
        assert_eq!(jobs_seen(&r.db), 0);
        assert!(events(&r.client).await.is_empty());
        r.creator.commit();
        assert_eq!(jobs_seen(&r.db), 2);
        // (A client's outbox sends everything in `seq` order: each job, then its status.)
        assert_eq!(
            events(&r.client).await,
            [
                "\"job_auto_created\"",
                "\"printer_status\"",
                "\"job_auto_created\"",
                "\"printer_status\""
            ]
        );
        // A status that writes nothing goes out at once.
        let PrinterEvent::Status(mut idle) = printing("c", "x.3mf") else {
            unreachable!()
        };
        idle.state = PrinterState::Idle;
        status(&mut r.creator, PrinterEvent::Status(idle));
        assert!(!r.creator.group.holds_events());
        assert_eq!(events(&r.client).await, ["\"printer_status\""]);
    }

    #[actix_rt::test]
    async fn a_lost_group_is_undone_and_the_next_status_writes_it_again() {
        let mut r = rig(&["a"]).await;
        status(&mut r.creator, printing("a", "one.3mf"));
        assert!(
            r.creator.trackers[&PrinterId::new("a").unwrap()]
                .open()
                .is_some()
        );
        // The transaction is gone (as when SQLite rolls back on a full disk).
        r.creator.conn.execute_batch("ROLLBACK").unwrap();
        r.creator.commit();
        assert_eq!(jobs_seen(&r.db), 0);
        assert!(
            events(&r.client).await.is_empty(),
            "no event for a job that is not there"
        );
        assert!(
            r.creator
                .trackers
                .get(&PrinterId::new("a").unwrap())
                .is_none_or(|t| t.open().is_none())
        );
        assert!(r.creator.open.is_empty());
        // The printer's next status makes the same decision and writes it.
        status(&mut r.creator, printing("a", "one.3mf"));
        r.creator.commit();
        assert_eq!(jobs_seen(&r.db), 1);
        assert_eq!(
            events(&r.client).await,
            ["\"job_auto_created\"", "\"printer_status\""]
        );
    }

    #[actix_rt::test]
    async fn a_group_is_not_committed_into_a_replaced_database() {
        let mut r = rig(&["a"]).await;
        r.creator.files = Some(store::files::FileIdentity::capture(&r.db).unwrap());
        status(&mut r.creator, printing("a", "one.3mf"));
        // An operator restores a copy over the live file while the group is open.
        let copy = r.db.with_extension("copy");
        std::fs::copy(&r.db, &copy).unwrap();
        std::fs::rename(&copy, &r.db).unwrap();
        r.creator.commit();
        assert!(
            events(&r.client).await.is_empty(),
            "no event for a job a restart would lose"
        );
        assert!(r.creator.open.is_empty());
        let fault = r.creator.health.database_fault_reason().unwrap();
        assert!(fault.message.contains("replaced"), "{}", fault.message);
        // Later statuses open no group: the writes are refused until a restart.
        status(&mut r.creator, printing("a", "one.3mf"));
        assert!(!r.creator.group.holds_events());
        assert_eq!(jobs_seen(&r.db), 0);
    }
}
