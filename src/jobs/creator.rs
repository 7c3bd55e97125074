//! The JobCreator: the one writer of the database.
//!
//! It runs on an Arbiter (a thread) of its own because rusqlite blocks; it owns the only
//! writable connection. The settings, the printer registry and the pins are the setup
//! owner's (`crate::setup::Setup`), which it holds and lends its connection to
//! (`setup.rs` here). Every job write goes through it (the REST API's create, edit and
//! delete, and what printer statuses open, follow and close), so manual and automatic
//! creation can never race. It is a thin shell around the job book (`book/`), which
//! decides: each message becomes an input to the book, whose plan the shell writes
//! (`execute.rs`), then confirms, then publishes — a client never hears of a job the
//! database does not have — or, when the write failed, restores.

use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use rusqlite::Connection;
use tokio::sync::watch;

use super::book::{Created, JobBook, Now};
use crate::broadcast::view::LiveStates;
use crate::broadcast::{Broadcaster, Event, StatusListeners};
use crate::config::Settings;
use crate::domain::{Job, JobId, JobPatch, NewJob};
use crate::health::Health;
use crate::registry::PrinterRegistry;
use crate::setup::Setup;
/// (Re-exported: the API's write path names it here.)
pub use crate::setup::UpdateSettings;
use crate::store::group::Group;
use crate::store::{self, StoreError};

/// The shell's clock, for the book: the wall clock, and tokio's monotonic clock as a std
/// `Instant`. Tokio's is the clock of the flush timer the shell sets (`run_later`), so a
/// test on paused time steps both together; in a build without tokio's `test-util` it is
/// std's own.
pub(super) fn now() -> Now {
    Now {
        wall: crate::time::now(),
        mono: mono(),
    }
}

pub(super) fn mono() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// Messages the JobCreator's mailbox holds before senders (REST handlers, printer
/// drivers) wait. Bounds memory if the disk stalls; the handlers' timeouts then answer
/// 503, and the printers' drivers wait their turn (their statuses then coalesce).
pub const MAILBOX_CAPACITY: usize = 1024;

/// Pending manual jobs read back at start, per printer: the book keeps this many
/// (`book::MAX_PENDING_PER_PRINTER`).
const PENDING_LOADED: usize = super::book::MAX_PENDING_PER_PRINTER;

pub struct JobCreator {
    pub(super) conn: Connection,
    pub(super) broadcaster: Addr<Broadcaster>,
    /// The settings, the printer registry and the pins, and their writes.
    pub(super) setup: Setup,
    /// The latest status of every printer, for the REST API.
    pub(super) live: LiveStates,
    pub(super) health: Arc<Health>,
    /// What it knows of the jobs and decides about them.
    pub(super) book: JobBook,
    /// The statuses' shared transaction (`store::group`), and the events it holds back
    /// until it is durable.
    pub(super) group: Group,
    pub(super) held: Vec<Event>,
    /// Its own address, for `Commit`.
    pub(super) me: Option<Addr<JobCreator>>,
    /// The progress flush timer set, and when it fires.
    pub(super) flush_timer: Option<(Instant, SpawnHandle)>,
    /// Wakes an idle checkpoint thread after a commit (`store::checkpoint`).
    pub(super) checkpoint: Option<store::checkpoint::Nudge>,
    /// Who takes `printer_status` events; `None`: send them whoever listens.
    pub(super) status_listeners: Option<StatusListeners>,
}

impl JobCreator {
    pub fn new(
        conn: Connection,
        broadcaster: Addr<Broadcaster>,
        settings: watch::Sender<Settings>,
        printers: PrinterRegistry,
        live: LiveStates,
        health: Arc<Health>,
    ) -> Self {
        let setup = Setup::new(settings, printers);
        Self::with_setup(conn, broadcaster, setup, live, health)
    }

    /// A JobCreator holding `setup` (as `Setup::load` built it at start).
    pub fn with_setup(
        conn: Connection,
        broadcaster: Addr<Broadcaster>,
        setup: Setup,
        live: LiveStates,
        health: Arc<Health>,
    ) -> Self {
        let mut me = Self {
            conn,
            broadcaster,
            setup,
            live,
            health,
            book: JobBook::new(mono()),
            group: Group::default(),
            held: Vec::new(),
            me: None,
            flush_timer: None,
            checkpoint: None,
            status_listeners: None,
        };
        me.load_jobs();
        me
    }

    /// Rule 6: jobs left open by a previous run are re-adopted, start time and all; the
    /// pending manual jobs wait for their prints again.
    fn load_jobs(&mut self) {
        let open = store::jobs::open_jobs(&self.conn);
        let pending = store::jobs::pending_jobs(&self.conn, PENDING_LOADED);
        match (open, pending) {
            (Ok(open), Ok(pending)) => {
                for job in &open {
                    tracing::info!(job_id = %job.id, printer_id = %job.printer_id, "re-adopting open job");
                }
                self.book.adopt(open.into_iter().chain(pending).collect());
            }
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!(error = %e, "cannot read open and pending jobs; open ones will be closed as unknown when their printers report")
            }
        }
    }

    /// Wakes the checkpoint thread after each group commit when it sleeps idle.
    pub fn nudging(mut self, nudge: Option<store::checkpoint::Nudge>) -> Self {
        self.checkpoint = nudge;
        self
    }

    /// Builds and sends `printer_status` events only while a client of the Broadcaster
    /// takes them (the live view REST reads is kept either way).
    pub fn statuses_for(mut self, listeners: StatusListeners) -> Self {
        self.status_listeners = Some(listeners);
        self
    }

    fn create(&mut self, new: NewJob) -> Result<Created, StoreError> {
        let entry = self.setup.printers().get(&new.printer_id).ok_or_else(|| {
            StoreError::Invalid(format!(
                "printer_id {:?} is not a configured printer; GET /api/v1/printers lists them",
                new.printer_id
            ))
        })?;
        let (id, kind) = (entry.config.id, entry.config.kind);
        let (plan, created) = self.book.create(now(), &id, kind, new)?;
        self.execute(plan, false)?;
        Ok(created)
    }

    fn update(&mut self, id: &str, patch: JobPatch) -> Result<Job, StoreError> {
        let current = self.current(id)?;
        let plan = self.book.update(now(), current, patch)?;
        let job = match plan.writes.last() {
            Some(super::book::Write::Update(j)) => j.clone(),
            _ => unreachable!("an edit writes the job"),
        };
        self.execute(plan, false)?;
        Ok(job)
    }

    fn delete(&mut self, id: &str) -> Result<(), StoreError> {
        let job = self.current(id)?;
        let plan = self.book.delete(now(), &job);
        self.execute(plan, false)
    }

    /// A job as it stands: the book's copy (freshest progress) or the stored row.
    fn current(&self, id: &str) -> Result<Job, StoreError> {
        match self.book.cached(&JobId::from_string(id.to_owned())) {
            Some(j) => Ok(j.clone()),
            None => {
                store::jobs::get(&self.conn, id)?.ok_or_else(|| StoreError::NotFound(id.into()))
            }
        }
    }

    /// The number of open jobs (for the watchdog's STATUS= line).
    pub(super) fn open_jobs(&self) -> usize {
        self.book.open_count()
    }

    /// Sets (or moves earlier) the one timer that writes the progress due next; none
    /// while nothing is unwritten.
    pub(super) fn schedule_flush(&mut self, ctx: &mut Context<Self>) {
        let Some(due) = self.book.next_flush() else {
            return;
        };
        if let Some((at, handle)) = self.flush_timer {
            if at <= due {
                return;
            }
            ctx.cancel_future(handle);
        }
        let wait = due.saturating_duration_since(mono());
        let handle = ctx.run_later(wait, |me, ctx| {
            me.flush_timer = None;
            me.commit();
            let plan = me.book.flush_due(now());
            me.write_progress(plan);
            me.schedule_flush(ctx);
        });
        self.flush_timer = Some((due, handle));
    }
}

impl Actor for JobCreator {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.me = Some(ctx.address());
        tracing::debug!("job creator started");
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.commit();
        let plan = self.book.flush_all();
        self.write_progress(plan);
        crate::watchdog::look_now();
    }
}

/// Commit the open group and write every job's progress, then stop (the daemon's last
/// message to it, once the printers and the server have stopped). `stopped` does the
/// same, but only after the reply has gone out: done here, the daemon's await means the
/// writes are on disk before the process exits. `stopped` still covers any other stop.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown;

impl Handler<Shutdown> for JobCreator {
    type Result = ();
    fn handle(&mut self, _: Shutdown, ctx: &mut Self::Context) {
        self.commit();
        let plan = self.book.flush_all();
        self.write_progress(plan);
        ctx.stop();
    }
}

/// Asks the JobCreator to commit the open group once it has handled what is already in
/// its mailbox.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Commit;

impl Handler<Commit> for JobCreator {
    type Result = ();
    fn handle(&mut self, _: Commit, _: &mut Self::Context) {
        self.commit();
    }
}

/// Create a job by hand (`POST /api/v1/jobs`).
#[derive(Message)]
#[rtype(result = "Result<Created, StoreError>")]
pub struct CreateJob(pub NewJob);

impl Handler<CreateJob> for JobCreator {
    type Result = Result<Created, StoreError>;
    fn handle(&mut self, CreateJob(new): CreateJob, ctx: &mut Self::Context) -> Self::Result {
        self.commit();
        let r = self.create(new);
        self.schedule_flush(ctx);
        r
    }
}

/// Edit a job (`PUT /api/v1/jobs/{id}`).
#[derive(Message)]
#[rtype(result = "Result<Job, StoreError>")]
pub struct UpdateJob(pub String, pub JobPatch);

impl Handler<UpdateJob> for JobCreator {
    type Result = Result<Job, StoreError>;
    fn handle(&mut self, UpdateJob(id, patch): UpdateJob, ctx: &mut Self::Context) -> Self::Result {
        self.commit();
        let r = self.update(&id, patch);
        self.schedule_flush(ctx);
        r
    }
}

/// Delete a job (`DELETE /api/v1/jobs/{id}`).
#[derive(Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct DeleteJob(pub String);

impl Handler<DeleteJob> for JobCreator {
    type Result = Result<(), StoreError>;
    fn handle(&mut self, DeleteJob(id): DeleteJob, ctx: &mut Self::Context) -> Self::Result {
        self.commit();
        let r = self.delete(&id);
        self.schedule_flush(ctx);
        r
    }
}

/// A printer took a cancel sent from the API for this open job (`api/printer_control.rs`):
/// if the job ends `cancelled`, its `end_reason` says it was cancelled from printfarmd.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct CancelledFromApi {
    pub printer_id: crate::domain::PrinterId,
    pub job_id: JobId,
    /// The printer refused the cancel (or never got it): drop the mark.
    pub withdrawn: bool,
}

impl Handler<CancelledFromApi> for JobCreator {
    type Result = ();
    fn handle(&mut self, m: CancelledFromApi, _: &mut Self::Context) {
        if m.withdrawn {
            self.book
                .unmark_cancelled_from_api(&m.printer_id, &m.job_id);
        } else {
            self.book.mark_cancelled_from_api(&m.printer_id, &m.job_id);
        }
    }
}
