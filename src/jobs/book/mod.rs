//! The job book: what the JobCreator knows of the jobs, and every decision it makes about
//! them, as plain values (the rumqttc `state.rs` pattern, style.md).
//!
//! The book holds, per printer, the lifecycle tracker (`lifecycle.rs`), the open job, the
//! pending manual jobs and a cancel-from-API mark, plus which open jobs' progress is not
//! written yet (`progress.rs`). Each input — a printer status, a manual create, edit or
//! delete, a progress flush — takes `now` and returns a [`Plan`]: the writes to make, in
//! order, as one unit, then the events to publish. The book changes itself as it plans,
//! remembering each printer as it was; the JobCreator (the shell) makes the writes and
//! then calls `confirm` (or `restore` when they failed, which puts those printers back so
//! the next status decides again). Statuses' writes share a group commit: a confirmed
//! plan can still be lost with its group, so `committed` / `rolled_back` settle the group.
//! Nothing here reads a clock, a database or a channel, so every rule of design.md §2 is
//! a fast unit test (`tests.rs`).

mod manual;
pub mod progress;
mod status;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use crate::domain::{Job, JobId, JobStatus, PrinterId};
use crate::time::Timestamp;

use super::lifecycle::{PrintRecord, PrinterTracker};
pub use manual::{Created, Refusal};
use progress::Dirty;

/// Pending manual jobs kept per printer, newest last: a print that starts attaches to the
/// newest one for its file (rule 7). Fifty is far more than any queue in front of one
/// printer, and bounds what the book holds however many jobs a client posts.
pub const MAX_PENDING_PER_PRINTER: usize = 50;

/// The time an input happens at: the wall clock for job times, the monotonic clock for
/// the progress deadlines. Tests make both up.
#[derive(Clone, Copy, Debug)]
pub struct Now {
    pub wall: Timestamp,
    pub mono: Instant,
}

impl Now {
    pub fn real() -> Self {
        Self {
            wall: crate::time::now(),
            mono: Instant::now(),
        }
    }
}

/// One write the shell makes.
#[derive(Clone, Debug, PartialEq)]
pub enum Write {
    Insert(Job),
    Update(Job),
    Delete(JobId),
    /// The progress of these open jobs (one transaction, no fsync: see `progress.rs`).
    Progress(Vec<Job>),
}

/// One event the shell publishes once the writes are durable.
#[derive(Clone, Debug, PartialEq)]
pub enum JobEvent {
    /// A print started and a job was created for it.
    AutoCreated(Job),
    /// A job was created by hand.
    Created(Job),
    Updated(Job),
    Deleted {
        id: JobId,
        printer_id: PrinterId,
    },
}

/// What an input asks of the shell: the writes (one unit, in order), then the events.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    pub writes: Vec<Write>,
    pub events: Vec<JobEvent>,
    /// Statuses of the jobs that ended (for the metrics), once written.
    pub ended: Vec<JobStatus>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty() && self.events.is_empty()
    }

    fn write(&mut self, w: Write, ev: JobEvent) {
        self.writes.push(w);
        self.events.push(ev);
    }
}

/// What the book knows of one printer.
#[derive(Clone, Debug, Default)]
struct Printer {
    tracker: PrinterTracker,
    /// The open job (rule 1: at most one), as last written or changed.
    open: Option<Job>,
    /// Pending manual jobs, oldest first (at most `MAX_PENDING_PER_PRINTER`).
    pending: VecDeque<Job>,
    /// The open job whose printer took a cancel from the API: if it ends `cancelled`,
    /// `end_reason` says so.
    cancel_mark: Option<JobId>,
}

pub struct JobBook {
    printers: HashMap<PrinterId, Printer>,
    /// The printer of every open or pending job the book holds.
    ids: HashMap<JobId, PrinterId>,
    dirty: Dirty,
    /// Each printer the plan under way changed, as it was before (`restore`).
    plan_undo: HashMap<PrinterId, Option<Printer>>,
    /// The jobs the flush under way takes (`restore` makes them dirty again).
    plan_flushed: Vec<JobId>,
    /// Each printer changed since the last durable commit, as it was (`rolled_back`).
    group_undo: HashMap<PrinterId, Option<Printer>>,
}

impl JobBook {
    /// An empty book; `epoch` anchors the progress slots.
    pub fn new(epoch: Instant) -> Self {
        Self {
            printers: HashMap::new(),
            ids: HashMap::new(),
            dirty: Dirty::new(epoch),
            plan_undo: HashMap::new(),
            plan_flushed: Vec::new(),
            group_undo: HashMap::new(),
        }
    }

    /// Rule 6: jobs a previous run left open (re-adopted, start time and all) or pending.
    pub fn adopt(&mut self, jobs: Vec<Job>) {
        for job in jobs {
            let pr = self.printers.entry(job.printer_id.clone()).or_default();
            if job.status.is_open() {
                pr.tracker = PrinterTracker::with_open(Some(record_of(&job)));
                self.ids.insert(job.id.clone(), job.printer_id.clone());
                pr.open = Some(job);
            } else if job.status == JobStatus::Pending {
                self.ids.insert(job.id.clone(), job.printer_id.clone());
                pr.pending.push_back(job);
                if pr.pending.len() > MAX_PENDING_PER_PRINTER
                    && let Some(old) = pr.pending.pop_front()
                {
                    self.ids.remove(&old.id);
                }
            }
        }
    }

    /// The id of the printer's open job, if it has one.
    pub fn open_job_id(&self, printer: &PrinterId) -> Option<&JobId> {
        self.printers.get(printer)?.open.as_ref().map(|j| &j.id)
    }

    /// An open or pending job as the book has it (an open job's freshest progress is
    /// here, not in the database).
    pub fn cached(&self, id: &JobId) -> Option<&Job> {
        let pr = self.printers.get(self.ids.get(id)?)?;
        pr.open
            .as_ref()
            .filter(|j| &j.id == id)
            .or_else(|| pr.pending.iter().find(|j| &j.id == id))
    }

    pub fn open_count(&self) -> usize {
        self.printers.values().filter(|p| p.open.is_some()).count()
    }

    /// When the next progress flush is due, if any progress is unwritten.
    pub fn next_flush(&self) -> Option<Instant> {
        self.dirty.next_deadline()
    }

    /// The progress due at `now`: one `Progress` write and a `job_updated` per job.
    pub fn flush_due(&mut self, now: Now) -> Plan {
        let ids = self.dirty.take_due(now.mono);
        self.flush(ids)
    }

    /// Every unwritten progress (at shutdown).
    pub fn flush_all(&mut self) -> Plan {
        let ids = self.dirty.take_all();
        self.flush(ids)
    }

    fn flush(&mut self, ids: Vec<JobId>) -> Plan {
        let jobs: Vec<Job> = ids
            .iter()
            .filter_map(|id| self.cached(id))
            .filter(|j| j.status.is_open())
            .cloned()
            .collect();
        self.plan_flushed = ids;
        let mut plan = Plan::default();
        if jobs.is_empty() {
            return plan;
        }
        plan.events = jobs.iter().cloned().map(JobEvent::Updated).collect();
        plan.writes.push(Write::Progress(jobs));
        plan
    }

    /// Marks the printer's open job as cancelled from the API (`CancelledFromApi`), if
    /// `job` is still its open job.
    pub fn mark_cancelled_from_api(&mut self, printer: &PrinterId, job: &JobId) {
        if let Some(pr) = self.printers.get_mut(printer)
            && pr.open.as_ref().is_some_and(|o| &o.id == job)
        {
            pr.cancel_mark = Some(job.clone());
        }
    }

    /// The printer refused that cancel (or never got it): the mark goes.
    pub fn unmark_cancelled_from_api(&mut self, printer: &PrinterId, job: &JobId) {
        if let Some(pr) = self.printers.get_mut(printer) {
            pr.cancel_mark.take_if(|m| m == job);
        }
    }

    /// Forgets a printer deleted through the API (its open job is closed first by
    /// `close_for_removal`).
    pub fn forget_printer(&mut self, printer: &PrinterId) {
        if let Some(pr) = self.printers.remove(printer) {
            self.forget_ids(&pr);
        }
    }

    /// The plan's writes are done: keep what it changed (until its group is settled).
    pub fn confirm(&mut self) {
        for (p, before) in self.plan_undo.drain() {
            self.group_undo.entry(p).or_insert(before);
        }
        self.plan_flushed.clear();
    }

    /// The plan's writes failed: put every printer it changed back as it was, and its
    /// flushed progress back to dirty (written again at its slice's next slot).
    pub fn restore(&mut self, now: Instant) {
        let undo: Vec<_> = self.plan_undo.drain().collect();
        for (p, before) in undo {
            self.put_back(p, before, now);
        }
        let flushed = std::mem::take(&mut self.plan_flushed);
        self.dirty.restore(flushed, now);
    }

    /// The confirmed plans are durable.
    pub fn committed(&mut self) {
        self.group_undo.clear();
    }

    /// The group commit holding the confirmed plans was lost: put every printer they
    /// changed back as it was before the group.
    pub fn rolled_back(&mut self, now: Instant) {
        self.restore(now);
        let undo: Vec<_> = self.group_undo.drain().collect();
        for (p, before) in undo {
            self.put_back(p, before, now);
        }
    }

    fn put_back(&mut self, p: PrinterId, before: Option<Printer>, now: Instant) {
        if let Some(current) = self.printers.remove(&p) {
            self.forget_ids(&current);
            if let Some(open) = &current.open {
                self.dirty.remove(&open.id);
            }
        }
        if let Some(before) = before {
            for j in before.open.iter().chain(before.pending.iter()) {
                self.ids.insert(j.id.clone(), p.clone());
            }
            if let Some(open) = &before.open {
                // Its progress as remembered is written again.
                self.dirty.insert(&open.id, now);
            }
            self.printers.insert(p, before);
        }
    }

    fn forget_ids(&mut self, pr: &Printer) {
        for j in pr.open.iter().chain(pr.pending.iter()) {
            self.ids.remove(&j.id);
        }
    }

    /// Remembers the printer as it is before the plan under way changes it.
    fn touch(&mut self, p: &PrinterId) -> &mut Printer {
        if !self.plan_undo.contains_key(p) {
            self.plan_undo
                .insert(p.clone(), self.printers.get(p).cloned());
        }
        self.printers.entry(p.clone()).or_default()
    }
}

/// The identity part of a job, for the lifecycle.
pub(crate) fn record_of(job: &Job) -> PrintRecord {
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
