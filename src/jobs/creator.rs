//! The JobCreator: the one writer of the job history and the settings.
//!
//! It runs on an Arbiter (a thread) of its own because rusqlite blocks; it owns the only
//! writable connection. Every job write goes through it (the REST API's create, edit and
//! delete, and the jobs printer statuses open, follow and close — see `auto.rs`), so
//! manual and automatic creation can never race. It persists first, then publishes the
//! event, so a client never hears of a job the database does not have.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use actix::prelude::*;
use rusqlite::Connection;
use serde_json::json;
use tokio::sync::watch;

use super::auto::Dirty;
use super::group::{Commit, Group};
use super::lifecycle::{self, PrintRecord, PrinterTracker};
use super::model::{self, Job, JobPatch, MAX_NAME_LEN, MAX_NOTES_LEN, NewJob};
use crate::broadcast::{Broadcaster, Event, EventKind, Publish, PublishAll};
use crate::config::{Settings, SettingsPatch};
use crate::domain::{JobId, JobStatus, PrinterId};
use crate::health::Health;
use crate::printers::view::LiveStates;
use crate::registry::PrinterRegistry;
use crate::store::{self, StoreError};
use crate::time::{self, Timestamp};

/// Messages the JobCreator's mailbox holds before senders (REST handlers, printer
/// drivers) wait. Bounds memory if the disk stalls; the handlers' timeouts then answer
/// 503, and the printers' drivers wait their turn (their statuses then coalesce).
pub const MAILBOX_CAPACITY: usize = 1024;

pub struct JobCreator {
    pub(super) conn: Connection,
    broadcaster: Addr<Broadcaster>,
    pub(super) settings: watch::Sender<Settings>,
    pub(super) printers: PrinterRegistry,
    /// The latest status of every printer, for the REST API.
    pub(super) live: LiveStates,
    pub(super) health: Arc<Health>,
    /// The lifecycle of each printer: its open print and a few recently closed ones.
    pub(super) trackers: HashMap<PrinterId, PrinterTracker>,
    /// Every open job as last written or changed (one per printer at most).
    pub(super) open: HashMap<JobId, Job>,
    /// Open jobs whose progress changed since they were last written.
    pub(super) dirty: Dirty,
    /// The statuses' writes not committed yet (`group.rs`).
    pub(super) group: Group,
    /// Its own address, for `Commit`.
    pub(super) me: Option<Addr<JobCreator>>,
    /// The database files as opened, checked before a write is reported done.
    pub(super) files: Option<store::files::FileIdentity>,
    /// Open jobs whose printer took a cancel from the API (at most one per printer):
    /// if they end `cancelled`, `end_reason` says so.
    pub(super) cancelled_from_api: HashSet<JobId>,
}

/// What `POST /api/v1/jobs` did: created a job, or attached to the print already
/// running the same file on that printer (design.md §2 rule 7).
#[derive(Debug)]
pub struct Created {
    pub job: Job,
    pub attached: bool,
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
        let mut me = Self {
            conn,
            broadcaster,
            settings,
            printers,
            live,
            health,
            trackers: HashMap::new(),
            open: HashMap::new(),
            dirty: Dirty::default(),
            group: Group::default(),
            me: None,
            files: None,
            cancelled_from_api: HashSet::new(),
        };
        me.load_open_jobs();
        me
    }

    /// Rule 6: jobs left open by a previous run are re-adopted, start time and all.
    fn load_open_jobs(&mut self) {
        match store::jobs::open_jobs(&self.conn) {
            Ok(jobs) => {
                for job in jobs {
                    tracing::info!(job_id = %job.id, printer_id = %job.printer_id, "re-adopting open job");
                    self.trackers.insert(
                        job.printer_id.clone(),
                        PrinterTracker::with_open(Some(record_of(&job))),
                    );
                    self.open.insert(job.id.clone(), job);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot read open jobs; they will be closed as unknown when their printers report")
            }
        }
    }

    /// Refuses every write once the database's files are not the ones opened (deleted
    /// or replaced under the daemon): what is written then would be lost at a restart.
    pub fn watching(mut self, files: store::files::FileIdentity) -> Self {
        self.files = Some(files);
        self
    }

    /// `Err` once the database's files changed under the daemon (sticky until restart).
    pub(super) fn files_ok(&self) -> Result<(), StoreError> {
        if let Some(f) = self.health.database_fault_reason() {
            return Err(StoreError::Unavailable(f.message));
        }
        if let Some(Err(reason)) = self.files.as_ref().map(|f| f.check()) {
            if self.health.database_fault(reason.clone()) {
                tracing::error!(reason = %reason, "database files changed under the daemon; writes are refused until a restart");
            }
            return Err(StoreError::Unavailable(reason));
        }
        Ok(())
    }

    pub(super) fn tracker(&mut self, printer: &PrinterId) -> &mut PrinterTracker {
        self.trackers.entry(printer.clone()).or_default()
    }

    /// The id of the printer's open job, if it has one.
    pub(super) fn open_job_id(&self, printer: &PrinterId) -> Option<JobId> {
        self.trackers
            .get(printer)
            .and_then(|t| t.open())
            .map(|o| o.job_id.clone())
    }

    /// Keeps the lifecycle in step with a job the API changed or removed.
    fn sync_after_api_change(&mut self, job: &Job, removed: bool) {
        let now = time::now();
        if job.status.is_open() && !removed {
            self.open.insert(job.id.clone(), job.clone());
            let tracker = self.tracker(&job.printer_id);
            if tracker.open().is_none_or(|o| o.job_id != job.id) {
                tracker.opened(record_of(job));
            }
        } else if self.open.remove(&job.id).is_some() {
            if !removed && job.status != JobStatus::Pending {
                crate::metrics::global().job_ended(job.status);
            }
            self.dirty.remove(&job.id);
            self.tracker(&job.printer_id).closed(&job.id, now);
        }
    }

    /// Hands an event to the Broadcaster, or to the open group, which publishes it once
    /// its writes are durable.
    pub(super) fn publish(&mut self, ev: Event) {
        if self.group.holds_events() {
            self.group.hold(ev);
        } else {
            self.to_broadcaster(Publish(ev));
        }
    }

    /// Hands events to the Broadcaster, to be offered to each client together.
    pub(super) fn publish_all(&self, evs: Vec<Event>) {
        self.to_broadcaster(PublishAll(evs));
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

    pub(super) fn publish_job(&mut self, kind: EventKind, job: &Job) {
        match kind {
            EventKind::JobCreated => crate::metrics::global().job_created(job, true),
            EventKind::JobAutoCreated => crate::metrics::global().job_created(job, false),
            _ => {}
        }
        self.publish(job_event(kind, job));
    }

    /// Records the outcome of a write for /health. A write outside a group is durable
    /// once done, so it is reported done only if it went to the database's files and not
    /// to ones deleted or replaced under the daemon.
    pub(super) fn track<T>(&self, r: Result<T, StoreError>) -> Result<T, StoreError> {
        let r = match r {
            Ok(v) if self.conn.is_autocommit() => self.files_ok().map(|()| v),
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

    fn create(&mut self, new: NewJob) -> Result<Created, StoreError> {
        let entry = self.printers.get(&new.printer_id).ok_or_else(|| {
            StoreError::Invalid(format!(
                "printer_id {:?} is not a configured printer; GET /api/v1/printers lists them",
                new.printer_id
            ))
        })?;
        model::check_text("job_name", &new.job_name, MAX_NAME_LEN, false)
            .map_err(StoreError::Invalid)?;
        model::check_text("filename", &new.filename, MAX_NAME_LEN, false)
            .map_err(StoreError::Invalid)?;
        if let Some(n) = &new.notes {
            model::check_text("notes", n, MAX_NOTES_LEN, true).map_err(StoreError::Invalid)?;
        }
        let info = new.customer_info.clone().unwrap_or_default();
        model::check_customer_info(&info).map_err(StoreError::Invalid)?;
        check_duration("estimated_duration", new.estimated_duration)?;
        if let Some(job) = self.attach_to_running(&entry.config.id, &new)? {
            return Ok(Created {
                job,
                attached: true,
            });
        }
        let now = time::now();
        let mut job = Job {
            id: JobId::generate(),
            printer_id: entry.config.id.clone(),
            printer_type: entry.config.kind,
            job_name: new.job_name,
            filename: new.filename,
            status: JobStatus::Pending,
            progress: 0.0,
            start_time: None,
            end_time: None,
            estimated_duration: new.estimated_duration,
            actual_duration: None,
            customer_info: info,
            notes: new.notes,
            end_reason: None,
            created_at: now,
            updated_at: now,
            printer_job_id: None,
            printer_start_time: None,
        };
        job.set_status(new.status.unwrap_or(JobStatus::Pending), now);
        self.track(store::jobs::insert(&self.conn, &job))?;
        tracing::info!(job_id = %job.id, printer_id = %job.printer_id, "job created by hand");
        self.sync_after_api_change(&job, false);
        self.publish_job(EventKind::JobCreated, &job);
        Ok(Created {
            job,
            attached: false,
        })
    }

    /// Rule 7: a manual job for the file a printer is already printing becomes that
    /// print's job (its name, notes and customer_info are taken over) instead of a
    /// duplicate.
    fn attach_to_running(
        &mut self,
        printer: &PrinterId,
        new: &NewJob,
    ) -> Result<Option<Job>, StoreError> {
        let Some(open_id) = self.open_job_id(printer) else {
            return Ok(None);
        };
        let Some(mut job) = self.open.get(&open_id).cloned() else {
            return Ok(None);
        };
        if !lifecycle::same_file(&job.filename, &new.filename)
            || new
                .status
                .is_some_and(|s| !s.is_open() && s != JobStatus::Pending)
        {
            return Ok(None);
        }
        job.job_name = new.job_name.clone();
        if new.notes.is_some() {
            job.notes = new.notes.clone();
        }
        if let Some(info) = &new.customer_info {
            let protect = job.is_auto_created();
            model::merge_customer_info(&mut job.customer_info, info, protect)
                .map_err(StoreError::Invalid)?;
        }
        if new.estimated_duration.is_some() {
            job.estimated_duration = new.estimated_duration;
        }
        job.updated_at = time::now();
        self.track(store::jobs::update(&self.conn, &job))?;
        self.dirty.remove(&job.id);
        tracing::info!(job_id = %job.id, printer_id = %printer, "manual job attached to the running print");
        self.open.insert(job.id.clone(), job.clone());
        self.publish_job(EventKind::JobUpdated, &job);
        Ok(Some(job))
    }

    fn update(&mut self, id: &str, patch: JobPatch) -> Result<Job, StoreError> {
        // An open job's freshest state (unflushed progress) is the cached one.
        let cached = self.open.get(&JobId::from_string(id.to_owned())).cloned();
        let mut job = match cached {
            Some(j) => j,
            None => {
                store::jobs::get(&self.conn, id)?.ok_or_else(|| StoreError::NotFound(id.into()))?
            }
        };
        let now = time::now();
        apply_patch(&mut job, patch, now)?;
        job.updated_at = now;
        self.track(store::jobs::update(&self.conn, &job))?;
        self.dirty.remove(&job.id);
        self.sync_after_api_change(&job, false);
        self.publish_job(EventKind::JobUpdated, &job);
        Ok(job)
    }

    fn delete(&mut self, id: &str) -> Result<(), StoreError> {
        let job =
            store::jobs::get(&self.conn, id)?.ok_or_else(|| StoreError::NotFound(id.into()))?;
        self.track(store::jobs::delete(&self.conn, id))?;
        tracing::info!(job_id = %id, "job deleted");
        self.sync_after_api_change(&job, true);
        self.publish(Event::new(
            EventKind::JobDeleted,
            Some(job.printer_id),
            json!({ "id": id }),
        ));
        Ok(())
    }

    fn update_settings(&mut self, patch: SettingsPatch) -> Result<Settings, StoreError> {
        patch.validate().map_err(StoreError::Invalid)?;
        self.track(store::settings::save(&self.conn, &patch))?;
        let next = patch.apply(&self.settings.borrow());
        self.settings.send_replace(next.clone());
        tracing::info!(?patch, "settings updated");
        self.publish(Event::new(EventKind::SettingsUpdated, None, &next));
        Ok(next)
    }
}

/// A job event: the job as its data, filtered by its printer.
pub(super) fn job_event(kind: EventKind, job: &Job) -> Event {
    Event::new(kind, Some(job.printer_id.clone()), job)
}

/// The identity part of a job, for the lifecycle.
pub(super) fn record_of(job: &Job) -> PrintRecord {
    PrintRecord {
        job_id: job.id.clone(),
        filename: job.filename.clone(),
        printer_job_id: job.printer_job_id.clone(),
        printer_start_time: job.printer_start_time,
        status: job.status,
        last_progress: job.progress,
        last_elapsed: None,
    }
}

fn check_duration(field: &str, v: Option<i64>) -> Result<(), StoreError> {
    match v {
        Some(d) if d < 0 => Err(StoreError::Invalid(format!(
            "{field} must be 0 or more seconds, got {d}"
        ))),
        _ => Ok(()),
    }
}

fn parse_time(field: &str, v: Option<String>) -> Result<Option<Timestamp>, StoreError> {
    v.map(|s| time::parse(&s).map_err(|e| StoreError::Invalid(format!("{field}: {e}"))))
        .transpose()
}

/// Applies an edit to a job; the message of a refusal names the field.
pub fn apply_patch(job: &mut Job, patch: JobPatch, now: Timestamp) -> Result<(), StoreError> {
    let invalid = StoreError::Invalid;
    if let Some(name) = patch.job_name {
        model::check_text("job_name", &name, MAX_NAME_LEN, false).map_err(invalid)?;
        job.job_name = name;
    }
    if let Some(notes) = patch.notes {
        if let Some(n) = &notes {
            model::check_text("notes", n, MAX_NOTES_LEN, true).map_err(invalid)?;
        }
        job.notes = notes;
    }
    if let Some(info) = patch.customer_info {
        let protect = job.is_auto_created();
        model::merge_customer_info(&mut job.customer_info, &info, protect).map_err(invalid)?;
        model::check_customer_info(&job.customer_info).map_err(invalid)?;
    }
    if let Some(p) = patch.progress {
        if !(0.0..=100.0).contains(&p) {
            return Err(invalid(format!(
                "progress must be between 0 and 100, got {p}"
            )));
        }
        job.progress = p;
    }
    if let Some(d) = patch.estimated_duration {
        check_duration("estimated_duration", d)?;
        job.estimated_duration = d;
    }
    if let Some(t) = patch.start_time {
        job.start_time = parse_time("start_time", t)?;
    }
    let explicit_end = patch
        .end_time
        .map(|t| parse_time("end_time", t))
        .transpose()?;
    if let Some(status) = patch.status
        && status != job.status
    {
        if let Some(end) = explicit_end {
            job.end_time = end;
        }
        job.set_status(status, now);
    } else if let Some(end) = explicit_end {
        job.end_time = end;
    }
    if let (Some(s), Some(e)) = (job.start_time, job.end_time) {
        if e < s {
            return Err(invalid("end_time is before start_time".into()));
        }
        if job.status.is_ended() {
            job.actual_duration = Some((e - s).num_seconds());
        }
    }
    Ok(())
}

impl Actor for JobCreator {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.me = Some(ctx.address());
        tracing::debug!("job creator started");
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.commit();
        self.flush_all_progress();
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
        self.flush_all_progress();
        ctx.stop();
    }
}

/// A printer's status, reduced to what the job lifecycle needs.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Observe {
    pub printer_id: PrinterId,
    pub printer_type: crate::domain::PrinterType,
    pub observation: lifecycle::Observation,
}

impl Handler<Observe> for JobCreator {
    type Result = ();
    fn handle(&mut self, m: Observe, _: &mut Self::Context) {
        self.commit();
        self.observe(&m.printer_id, m.printer_type, &m.observation);
    }
}

impl JobCreator {
    /// The body of the `Observe` handler, callable without an actor context so the
    /// micro-benchmarks (`benches/lifecycle.rs`) measure exactly what the actor runs.
    #[doc(hidden)]
    pub fn handle_observe(&mut self, m: &Observe) {
        self.observe(&m.printer_id, m.printer_type, &m.observation);
    }
}

/// Every `PROGRESS_TICK` (sent by a timer task): write the progress that moved in the
/// slice whose turn it is, publish it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Tick;

impl Handler<Tick> for JobCreator {
    type Result = ();
    fn handle(&mut self, _: Tick, _: &mut Self::Context) {
        self.commit();
        self.flush_progress_slice();
    }
}

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
    fn handle(&mut self, CreateJob(new): CreateJob, _: &mut Self::Context) -> Self::Result {
        self.commit();
        self.create(new)
    }
}

/// Edit a job (`PUT /api/v1/jobs/{id}`).
#[derive(Message)]
#[rtype(result = "Result<Job, StoreError>")]
pub struct UpdateJob(pub String, pub JobPatch);

impl Handler<UpdateJob> for JobCreator {
    type Result = Result<Job, StoreError>;
    fn handle(&mut self, UpdateJob(id, patch): UpdateJob, _: &mut Self::Context) -> Self::Result {
        self.commit();
        self.update(&id, patch)
    }
}

/// Delete a job (`DELETE /api/v1/jobs/{id}`).
#[derive(Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct DeleteJob(pub String);

impl Handler<DeleteJob> for JobCreator {
    type Result = Result<(), StoreError>;
    fn handle(&mut self, DeleteJob(id): DeleteJob, _: &mut Self::Context) -> Self::Result {
        self.commit();
        self.delete(&id)
    }
}

/// Change the live settings (`PUT /api/v1/settings`): validated, saved, published.
#[derive(Message)]
#[rtype(result = "Result<Settings, StoreError>")]
pub struct UpdateSettings(pub SettingsPatch);

impl Handler<UpdateSettings> for JobCreator {
    type Result = Result<Settings, StoreError>;
    fn handle(&mut self, UpdateSettings(p): UpdateSettings, _: &mut Self::Context) -> Self::Result {
        self.commit();
        self.update_settings(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{PrinterId, PrinterType};

    fn job() -> Job {
        let now = time::now();
        Job {
            id: JobId::generate(),
            printer_id: PrinterId::new("p").unwrap(),
            printer_type: PrinterType::Bambu,
            job_name: "cube".into(),
            filename: "cube.3mf".into(),
            status: JobStatus::Running,
            progress: 40.0,
            start_time: Some(now - chrono::Duration::seconds(600)),
            end_time: None,
            estimated_duration: None,
            actual_duration: None,
            customer_info: Default::default(),
            notes: None,
            end_reason: None,
            created_at: now,
            updated_at: now,
            printer_job_id: None,
            printer_start_time: None,
        }
    }

    #[test]
    fn completing_fills_end_duration_and_progress() {
        let mut j = job();
        let now = time::now();
        apply_patch(
            &mut j,
            JobPatch {
                status: Some(JobStatus::Completed),
                ..Default::default()
            },
            now,
        )
        .unwrap();
        assert_eq!(j.end_time, Some(now));
        assert_eq!(j.actual_duration, Some(600));
        assert_eq!(j.progress, 100.0);
    }

    #[test]
    fn refuses_bad_values_naming_the_field() {
        let mut j = job();
        let now = time::now();
        let e = apply_patch(
            &mut j,
            JobPatch {
                progress: Some(101.0),
                ..Default::default()
            },
            now,
        )
        .unwrap_err();
        assert!(e.to_string().contains("progress"));
        let e = apply_patch(
            &mut j,
            JobPatch {
                end_time: Some(Some("2000-01-01T00:00:00Z".into())),
                ..Default::default()
            },
            now,
        )
        .unwrap_err();
        assert!(e.to_string().contains("before start_time"));
        let e = apply_patch(
            &mut j,
            JobPatch {
                start_time: Some(Some("soon".into())),
                ..Default::default()
            },
            now,
        )
        .unwrap_err();
        assert!(e.to_string().contains("start_time"));
    }
}
