//! The book's status input: one printer status in, the job writes and events it means
//! out (design.md §2 rules 2–9, on top of the lifecycle's decisions).

use serde_json::{Map, Value, json};

use super::{JobBook, JobEvent, Now, Plan, Write, record_of};
use crate::domain::{
    END_REASON_API_CANCEL, Job, JobId, JobStatus, MAX_END_REASON_LEN, PrinterId, PrinterState,
    PrinterStatus, PrinterType,
};
use crate::jobs::lifecycle::{Decision, Start, finite_progress, same_file};
use crate::printers::sanitize;
use crate::time;

impl JobBook {
    /// One status from one printer. `auto_create` is the live setting (rule 8).
    pub fn on_status(&mut self, now: Now, s: &PrinterStatus, auto_create: bool) -> Plan {
        let p = &s.printer_id;
        let decisions = self
            .printers
            .entry(p.clone())
            .or_default()
            .tracker
            .observe(s);
        let mut plan = Plan::default();
        for d in decisions {
            match d {
                Decision::Continue {
                    job_id,
                    status,
                    progress,
                    elapsed_s,
                } => self.continue_print(now, s, &job_id, status, progress, elapsed_s, &mut plan),
                Decision::Close {
                    job_id,
                    status,
                    end_time,
                } => self.close(
                    now,
                    p,
                    &job_id,
                    status,
                    end_time,
                    s.error.as_deref(),
                    &mut plan,
                ),
                Decision::Start(start) => self.start(
                    p,
                    s.printer_type,
                    start,
                    s.observed_at,
                    auto_create,
                    &mut plan,
                ),
                Decision::Missed { start, status } => {
                    // Rule 9: seen only by its end; created, then closed with that end.
                    let mut open = start;
                    open.status = JobStatus::Running;
                    self.start(
                        p,
                        s.printer_type,
                        open,
                        s.observed_at,
                        auto_create,
                        &mut plan,
                    );
                    if let Some(id) = self.open_job_id(p).cloned() {
                        let err = s.error.as_deref();
                        self.close(now, p, &id, status, s.observed_at, err, &mut plan);
                    }
                }
            }
        }
        self.learn_start_time(now, s, &mut plan);
        plan
    }

    #[allow(clippy::too_many_arguments)]
    fn continue_print(
        &mut self,
        now: Now,
        s: &PrinterStatus,
        id: &JobId,
        status: JobStatus,
        progress: Option<f64>,
        elapsed: Option<i64>,
        plan: &mut Plan,
    ) {
        let p = &s.printer_id;
        let progress = finite_progress(progress);
        let Some(job) = self.printers.get(p).and_then(|pr| pr.open.as_ref()) else {
            return;
        };
        if &job.id != id {
            return;
        }
        let status_changed = job.status != status;
        let progress_changed = progress.is_some_and(|v| v != job.progress);
        let pr = if status_changed {
            self.touch(p)
        } else {
            self.printers.entry(p.clone()).or_default()
        };
        pr.tracker.progressed(status, progress, elapsed);
        if !status_changed && !progress_changed {
            return;
        }
        let Some(job) = pr.open.as_mut() else {
            return;
        };
        if let Some(v) = progress {
            job.progress = v;
        }
        job.updated_at = s.observed_at;
        if status_changed {
            job.status = status;
            let job = job.clone();
            self.dirty.remove(id);
            tracing::info!(job_id = %id, printer_id = %p, status = %status, "job status changed");
            plan.write(Write::Update(job.clone()), JobEvent::Updated(job));
        } else {
            self.dirty.insert(id, now.mono);
        }
    }

    /// The open job ended. A failed or cancelled job takes the printer's error text as
    /// its `end_reason` (capped), unless the API's cancel already explains it.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn close(
        &mut self,
        now: Now,
        p: &PrinterId,
        id: &JobId,
        status: JobStatus,
        end: time::Timestamp,
        error: Option<&str>,
        plan: &mut Plan,
    ) {
        let pr = self.touch(p);
        let Some(mut job) = pr.open.take_if(|j| &j.id == id) else {
            // Not held (deleted meanwhile): nothing to write, just forget it.
            pr.tracker.closed(id, end);
            return;
        };
        // Never before the job's start (a printer's end time is an estimate).
        let end = job.start_time.map_or(end, |start| end.max(start));
        job.end_time = Some(end);
        job.set_status(status, end);
        let api_cancel = pr.cancel_mark.take().is_some_and(|m| &m == id);
        if api_cancel && status == JobStatus::Cancelled {
            job.end_reason = Some(END_REASON_API_CANCEL.to_owned());
        }
        if matches!(status, JobStatus::Failed | JobStatus::Cancelled)
            && job.end_reason.is_none()
            && let Some(e) = error.map(str::trim).filter(|e| !e.is_empty())
        {
            let e = sanitize::cap_text(e, MAX_END_REASON_LEN).unwrap_or_else(|| e.to_owned());
            job.end_reason = Some(e);
        }
        job.updated_at = now.wall;
        pr.tracker.closed(id, end);
        self.ids.remove(id);
        self.dirty.remove(id);
        tracing::info!(job_id = %id, printer_id = %p, status = %status, "print ended");
        plan.ended.push(status);
        plan.write(Write::Update(job.clone()), JobEvent::Updated(job));
    }

    /// A new print: attach the newest pending manual job for its file (rule 7), else
    /// create one when auto-creation is on (rule 8).
    fn start(
        &mut self,
        p: &PrinterId,
        printer_type: PrinterType,
        s: Start,
        at: time::Timestamp,
        auto_create: bool,
        plan: &mut Plan,
    ) {
        let pending = self.printers.get(p).and_then(|pr| {
            pr.pending
                .iter()
                .rposition(|j| same_file(&j.filename, &s.filename))
        });
        if let Some(i) = pending {
            let pr = self.touch(p);
            let Some(mut job) = pr.pending.remove(i) else {
                return;
            };
            job.start_time = Some(s.start_time);
            job.set_status(s.status, at);
            job.progress = s.progress;
            job.printer_job_id = s.printer_job_id.clone();
            job.printer_start_time = s.printer_start_time;
            if job.estimated_duration.is_none() {
                job.estimated_duration = s.estimated_duration;
            }
            job.updated_at = at;
            tracing::info!(job_id = %job.id, printer_id = %p, "print started; attached to the pending manual job");
            self.opened(p, &job, s.elapsed_s);
            plan.write(Write::Update(job.clone()), JobEvent::Updated(job));
            return;
        }
        if !auto_create {
            return;
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
            printer_id: p.clone(),
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
        tracing::info!(job_id = %job.id, printer_id = %p, file = %job.filename, discovered_on_startup = s.discovered_on_startup, "print started; job created");
        self.touch(p);
        self.opened(p, &job, s.elapsed_s);
        plan.write(Write::Insert(job.clone()), JobEvent::AutoCreated(job));
    }

    /// The job is the printer's open one now.
    fn opened(&mut self, p: &PrinterId, job: &Job, elapsed: Option<i64>) {
        let mut rec = record_of(job);
        rec.last_elapsed = elapsed;
        let pr = self.touch(p);
        pr.tracker.opened(rec);
        pr.open = Some(job.clone());
        self.ids.insert(job.id.clone(), p.clone());
    }

    /// A start time the printer reports only after the job was opened (X1: once the
    /// preparation stages begin) is recorded on the job, when the printer's own job id
    /// proves it is the same print and the time can be this print's (not the previous
    /// print's, which an X1 keeps reporting through PREPARE: `usable_start_time`).
    fn learn_start_time(&mut self, now: Now, s: &PrinterStatus, plan: &mut Plan) {
        let p = &s.printer_id;
        let Some(pr) = self.printers.get(p) else {
            return;
        };
        let Some(t) = pr.tracker.usable_start_time(s) else {
            return;
        };
        let (Some(rec), Some(job)) = (pr.tracker.open(), pr.open.as_ref()) else {
            return;
        };
        if rec.printer_start_time.is_some()
            || rec.printer_job_id.is_none()
            || rec.printer_job_id != s.printer_job_id
            || rec.job_id != job.id
            || !matches!(s.state, PrinterState::Printing | PrinterState::Paused)
        {
            return;
        }
        let id = job.id.clone();
        let pr = self.touch(p);
        let Some(job) = pr.open.as_mut() else {
            return;
        };
        job.printer_start_time = Some(t);
        if job.is_auto_created() {
            job.customer_info
                .insert("printer_start_time".into(), json!(time::format(t)));
        }
        job.updated_at = now.wall;
        let job = job.clone();
        pr.tracker.learned_start_time(t);
        self.dirty.remove(&id);
        plan.write(Write::Update(job.clone()), JobEvent::Updated(job));
    }
}
