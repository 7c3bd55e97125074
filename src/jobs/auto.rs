//! The JobCreator's side of automatic job creation: it feeds each printer's observations
//! to its `PrinterTracker`, carries out the decisions against the database, and confirms
//! them to the tracker only once they are written (so a failed write is retried on the
//! next status). Progress is batched: it is kept in memory, and every job that moved is
//! written and gets one `job_updated` event once a second. The farm's open jobs are cut
//! into `PROGRESS_SLICES` slices by id, and each tick of `PROGRESS_TICK` writes one slice
//! in one transaction, so a 2,000-printer farm has ten small writes and event bursts a
//! second instead of one that held up every status behind it. Those transactions skip
//! the fsync: a power cut loses at most the last second of progress, which the printers'
//! next statuses restore. Status changes are written, durably, and published at once.

use std::collections::HashSet;
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use super::creator::{JobCreator, job_event, record_of};
use super::lifecycle::{Decision, Observation, ObservedState, Start, finite_progress, same_file};
use super::model::{END_REASON_API_CANCEL, Job};
use crate::broadcast::EventKind;
use crate::domain::{JobId, JobStatus, PrinterId, PrinterType};
use crate::store::{self, StoreError};
use crate::time::{self, Timestamp};

/// How often a job's progress is written (and published) at most.
pub const PROGRESS_FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// The slices the open jobs are cut into for the progress flush.
pub const PROGRESS_SLICES: usize = 10;
/// The flush timer's period: one slice per tick.
pub const PROGRESS_TICK: Duration =
    Duration::from_millis(PROGRESS_FLUSH_INTERVAL.as_millis() as u64 / PROGRESS_SLICES as u64);

/// Open jobs whose progress moved since they were last written, by slice.
pub(super) struct Dirty {
    slices: Vec<HashSet<JobId>>,
    /// When each slice was last written.
    flushed: Vec<Option<Instant>>,
    /// The slice whose turn it is.
    next: usize,
}

impl Default for Dirty {
    fn default() -> Self {
        Self {
            slices: vec![HashSet::new(); PROGRESS_SLICES],
            flushed: vec![None; PROGRESS_SLICES],
            next: 0,
        }
    }
}

impl Dirty {
    fn slice_of(id: &JobId) -> usize {
        // A fixed-key hash: a job stays in its slice for its whole life.
        (BuildHasherDefault::<DefaultHasher>::default().hash_one(id.as_str()) as usize)
            % PROGRESS_SLICES
    }

    pub(super) fn insert(&mut self, id: &JobId) {
        let slice = &mut self.slices[Self::slice_of(id)];
        if !slice.contains(id) {
            slice.insert(id.clone());
        }
    }

    pub(super) fn remove(&mut self, id: &JobId) {
        self.slices[Self::slice_of(id)].remove(id);
    }

    /// The slice whose turn it is, if it was last written a whole interval ago (so a
    /// late tick followed by a prompt one never writes a job twice within a second).
    fn take_due(&mut self, now: Instant) -> HashSet<JobId> {
        let i = self.next;
        if self.flushed[i].is_some_and(|t| now - t < PROGRESS_FLUSH_INTERVAL) {
            return HashSet::new();
        }
        self.flushed[i] = Some(now);
        self.next = (i + 1) % PROGRESS_SLICES;
        std::mem::take(&mut self.slices[i])
    }

    fn take_all(&mut self) -> HashSet<JobId> {
        self.slices.iter_mut().flat_map(std::mem::take).collect()
    }

    /// Puts back the jobs of a flush that was not written.
    fn restore(&mut self, ids: HashSet<JobId>) {
        for id in ids {
            self.insert(&id);
        }
    }
}

impl JobCreator {
    /// One status from one printer.
    pub(super) fn observe(
        &mut self,
        printer: &PrinterId,
        printer_type: PrinterType,
        obs: &Observation,
    ) {
        let decisions = self.tracker(printer).observe(obs);
        if !decisions.is_empty()
            && let Err(e) = self.join_group(printer)
        {
            self.track(Err::<(), _>(e)).ok();
            return;
        }
        for d in decisions {
            let r = match d {
                Decision::Continue {
                    job_id,
                    status,
                    progress,
                    elapsed_s,
                } => self.continue_print(printer, &job_id, status, progress, elapsed_s, obs.at),
                Decision::Close {
                    job_id,
                    status,
                    end_time,
                } => self.close_print(printer, &job_id, status, end_time),
                Decision::Start(s) => self.start_print(printer, printer_type, s, obs.at),
                Decision::Missed { start, status } => {
                    self.record_missed(printer, printer_type, start, status, obs.at)
                }
            };
            if let Err(e) = r {
                // Logged (rate-limited) and shown on /health by `track`; the tracker
                // was not told, so the next status from this printer retries.
                tracing::debug!(printer_id = %printer, error = %e, "job update not written; will retry");
                self.check_group_after_error();
                return;
            }
        }
        if let Err(e) = self.learn_start_time(printer, obs) {
            tracing::debug!(printer_id = %printer, error = %e, "printer start time not written; will retry");
            self.check_group_after_error();
        }
    }

    /// Rule 9: a print seen only by its end (it fell between two polls): created, then
    /// closed with the end the printer shows.
    fn record_missed(
        &mut self,
        printer: &PrinterId,
        printer_type: PrinterType,
        start: Start,
        status: JobStatus,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        let mut open = start.clone();
        open.status = JobStatus::Running;
        self.start_print(printer, printer_type, open, at)?;
        let Some(id) = self.open_job_id(printer) else {
            // Auto-creation is off: nothing was recorded.
            return Ok(());
        };
        self.close_print(printer, &id, status, at)
    }

    /// A start time the printer reports only after the job was opened (X1: once the
    /// preparation stages begin) is recorded on the job, when the printer's own job id
    /// proves it is the same print and the time can be this print's (not the previous
    /// print's, which an X1 keeps reporting through PREPARE: `usable_start_time`).
    fn learn_start_time(
        &mut self,
        printer: &PrinterId,
        obs: &Observation,
    ) -> Result<(), StoreError> {
        let Some(tracker) = self.trackers.get(printer) else {
            return Ok(());
        };
        let Some(t) = tracker.usable_start_time(obs) else {
            return Ok(());
        };
        let Some(open) = tracker.open() else {
            return Ok(());
        };
        if open.printer_start_time.is_some()
            || open.printer_job_id.is_none()
            || open.printer_job_id != obs.printer_job_id
            || !matches!(obs.state, ObservedState::Printing | ObservedState::Paused)
        {
            return Ok(());
        }
        let id = open.job_id.clone();
        let Some(mut job) = self.open.get(&id).cloned() else {
            return Ok(());
        };
        job.printer_start_time = Some(t);
        if job.is_auto_created() {
            job.customer_info
                .insert("printer_start_time".into(), json!(time::format(t)));
        }
        job.updated_at = time::now();
        self.join_group(printer)?;
        self.track(store::jobs::update(&self.conn, &job))?;
        self.dirty.remove(&id);
        self.open.insert(id, job.clone());
        self.tracker(printer).learned_start_time(t);
        self.publish_job(EventKind::JobUpdated, &job);
        Ok(())
    }

    fn continue_print(
        &mut self,
        printer: &PrinterId,
        id: &JobId,
        status: JobStatus,
        progress: Option<f64>,
        elapsed: Option<i64>,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        let Some(job) = self.open.get_mut(id) else {
            return Err(StoreError::NotFound(id.to_string()));
        };
        let progress = finite_progress(progress);
        let status_changed = job.status != status;
        let progress_changed = progress.is_some_and(|p| p != job.progress);
        if !status_changed && !progress_changed {
            self.tracker(printer).progressed(status, progress, elapsed);
            return Ok(());
        }
        if let Some(p) = progress {
            job.progress = p;
        }
        job.updated_at = at;
        if status_changed {
            job.status = status;
            let job = job.clone();
            self.track(store::jobs::update(&self.conn, &job))?;
            self.dirty.remove(id);
            tracing::info!(job_id = %id, printer_id = %printer, status = %status, "job status changed");
            self.publish_job(EventKind::JobUpdated, &job);
        } else {
            self.dirty.insert(id);
        }
        self.tracker(printer).progressed(status, progress, elapsed);
        Ok(())
    }

    pub(super) fn close_print(
        &mut self,
        printer: &PrinterId,
        id: &JobId,
        status: JobStatus,
        end: Timestamp,
    ) -> Result<(), StoreError> {
        let Some(mut job) = self.open.get(id).cloned() else {
            // Not cached (deleted meanwhile): nothing to write, just forget it.
            self.tracker(printer).closed(id, end);
            return Ok(());
        };
        job.end_time = Some(end);
        job.set_status(status, end);
        if self.cancelled_from_api.remove(id) && status == JobStatus::Cancelled {
            job.end_reason = Some(END_REASON_API_CANCEL.to_owned());
        }
        job.updated_at = time::now();
        self.track(store::jobs::update(&self.conn, &job))?;
        self.open.remove(id);
        crate::metrics::global().job_ended(status);
        self.dirty.remove(id);
        self.tracker(printer).closed(id, end);
        tracing::info!(job_id = %id, printer_id = %printer, status = %status, "print ended");
        self.publish_job(EventKind::JobUpdated, &job);
        Ok(())
    }

    fn start_print(
        &mut self,
        printer: &PrinterId,
        printer_type: PrinterType,
        s: Start,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        if let Some(job) = self.pending_manual_job(printer, &s.filename)? {
            return self.attach_manual(job, &s, at);
        }
        if !self.settings.borrow().job_creation_auto_create {
            return Ok(());
        }
        let mut info = Map::new();
        info.insert("auto_created".into(), Value::Bool(true));
        info.insert("discovery_time".into(), json!(time::format(at)));
        if let Some(t) = s.printer_start_time {
            info.insert("printer_start_time".into(), json!(time::format(t)));
        }
        info.insert(
            "discovered_on_startup".into(),
            Value::Bool(s.discovered_on_startup),
        );
        let job = Job {
            id: JobId::generate(),
            printer_id: printer.clone(),
            printer_type,
            job_name: s.job_name,
            filename: s.filename,
            status: s.status,
            progress: s.progress,
            start_time: Some(s.start_time),
            end_time: None,
            estimated_duration: s.estimated_duration,
            actual_duration: None,
            customer_info: info,
            notes: None,
            end_reason: None,
            created_at: at,
            updated_at: at,
            printer_job_id: s.printer_job_id,
            printer_start_time: s.printer_start_time,
        };
        self.track(store::jobs::insert(&self.conn, &job))?;
        tracing::info!(job_id = %job.id, printer_id = %printer, file = %job.filename, discovered_on_startup = s.discovered_on_startup, "print started; job created");
        let mut rec = record_of(&job);
        rec.last_elapsed = s.elapsed_s;
        self.tracker(printer).opened(rec);
        self.open.insert(job.id.clone(), job.clone());
        self.publish_job(EventKind::JobAutoCreated, &job);
        Ok(())
    }

    /// The newest pending manual job for this printer and file, if any.
    fn pending_manual_job(
        &self,
        printer: &PrinterId,
        filename: &str,
    ) -> Result<Option<Job>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, filename FROM jobs WHERE printer_id = ?1 AND status = 'pending' ORDER BY seq DESC LIMIT 50",
        )?;
        let rows = stmt.query_map([printer.as_str()], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?;
        for row in rows {
            let (id, file) = row?;
            if same_file(&file, filename) {
                return store::jobs::get(&self.conn, &id);
            }
        }
        Ok(None)
    }

    /// Rule 7, the other way round: a job posted by hand before the print started
    /// becomes that print's job.
    fn attach_manual(&mut self, mut job: Job, s: &Start, at: Timestamp) -> Result<(), StoreError> {
        job.start_time = Some(s.start_time);
        job.set_status(s.status, at);
        job.progress = s.progress;
        job.printer_job_id = s.printer_job_id.clone();
        job.printer_start_time = s.printer_start_time;
        if job.estimated_duration.is_none() {
            job.estimated_duration = s.estimated_duration;
        }
        job.updated_at = at;
        self.track(store::jobs::update(&self.conn, &job))?;
        tracing::info!(job_id = %job.id, printer_id = %job.printer_id, "print started; attached to the pending manual job");
        let mut rec = record_of(&job);
        rec.last_elapsed = s.elapsed_s;
        self.tracker(&job.printer_id).opened(rec);
        self.open.insert(job.id.clone(), job.clone());
        self.publish_job(EventKind::JobUpdated, &job);
        Ok(())
    }

    /// The progress tick: writes the slice whose turn it is.
    pub(super) fn flush_progress_slice(&mut self) {
        let ids = self.dirty.take_due(Instant::now());
        self.flush_progress(ids);
    }

    /// Writes every job whose progress moved (on shutdown).
    pub(super) fn flush_all_progress(&mut self) {
        let ids = self.dirty.take_all();
        self.flush_progress(ids);
    }

    /// Writes the progress of these jobs in one transaction without an fsync, then
    /// publishes one `job_updated` for each, together. Not written: they stay dirty.
    fn flush_progress(&mut self, ids: HashSet<JobId>) {
        if ids.is_empty() {
            return;
        }
        let jobs: Vec<Job> = ids
            .iter()
            .filter_map(|id| self.open.get(id).cloned())
            .collect();
        let t0 = Instant::now();
        let r = store::without_fsync(&self.conn, |conn| {
            let tx = conn.unchecked_transaction()?;
            for j in &jobs {
                store::jobs::update_progress(&tx, j)?;
            }
            tx.commit()?;
            Ok(())
        });
        let written = t0.elapsed();
        if self.track(r).is_err() {
            self.dirty.restore(ids);
            return;
        }
        let events = jobs
            .iter()
            .map(|j| job_event(EventKind::JobUpdated, j))
            .collect();
        self.publish_all(events);
        tracing::debug!(
            jobs = jobs.len(),
            write_ms = written.as_secs_f64() * 1e3,
            total_ms = t0.elapsed().as_secs_f64() * 1e3,
            "progress flushed"
        );
    }
}
