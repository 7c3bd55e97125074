//! The book's manual inputs: jobs created, edited and deleted through the REST API, and
//! the rules that tie them to what the printers do (rule 7, both ways round).

use super::{JobBook, JobEvent, MAX_PENDING_PER_PRINTER, Now, Plan, Write, record_of};
use crate::domain::job::{self as model, MAX_NAME_LEN, MAX_NOTES_LEN};
use crate::domain::{Job, JobId, JobPatch, JobStatus, NewJob, PrinterId, PrinterType};
use crate::jobs::lifecycle::same_file;
use crate::time::{self, Timestamp};

/// Why the book refuses a manual input: what the client asked cannot be done. (Storage
/// failures are the shell's `StoreError`s; the API maps both.)
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    #[error("job {0} not found")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
}

impl From<Refusal> for crate::store::StoreError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::NotFound(id) => crate::store::StoreError::NotFound(id),
            Refusal::Invalid(m) => crate::store::StoreError::Invalid(m),
        }
    }
}

/// What `POST /api/v1/jobs` did: created a job, or attached to the print already
/// running the same file on that printer (design.md §2 rule 7).
#[derive(Debug)]
pub struct Created {
    pub job: Job,
    pub attached: bool,
}

impl JobBook {
    /// A job created by hand for a configured printer.
    pub fn create(
        &mut self,
        now: Now,
        printer: &PrinterId,
        printer_type: PrinterType,
        new: NewJob,
    ) -> Result<(Plan, Created), Refusal> {
        check_new(&new)?;
        if let Some(plan) = self.attach_to_running(now, printer, &new)? {
            let Some(JobEvent::Updated(job)) = plan.events.first().cloned() else {
                unreachable!("an attach plan publishes the job");
            };
            return Ok((
                plan,
                Created {
                    job,
                    attached: true,
                },
            ));
        }
        let mut job = Job {
            id: JobId::generate(),
            printer_id: printer.clone(),
            printer_type,
            job_name: new.job_name,
            filename: new.filename,
            status: JobStatus::Pending,
            progress: 0.0,
            start_time: None,
            end_time: None,
            estimated_duration: new.estimated_duration,
            actual_duration: None,
            customer_info: new.customer_info.unwrap_or_default(),
            notes: new.notes,
            end_reason: None,
            created_at: now.wall,
            updated_at: now.wall,
            printer_job_id: None,
            printer_start_time: None,
        };
        job.set_status(new.status.unwrap_or(JobStatus::Pending), now.wall);
        tracing::info!(job_id = %job.id, printer_id = %job.printer_id, "job created by hand");
        let mut plan = Plan::default();
        self.follow(now, &job, false, &mut plan);
        plan.write(Write::Insert(job.clone()), JobEvent::Created(job.clone()));
        Ok((
            plan,
            Created {
                job,
                attached: false,
            },
        ))
    }

    /// Rule 7: a manual job for the file a printer is already printing becomes that
    /// print's job (its name, notes and customer_info are taken over) instead of a
    /// duplicate.
    fn attach_to_running(
        &mut self,
        now: Now,
        printer: &PrinterId,
        new: &NewJob,
    ) -> Result<Option<Plan>, Refusal> {
        let Some(open) = self.printers.get(printer).and_then(|p| p.open.as_ref()) else {
            return Ok(None);
        };
        if !same_file(&open.filename, &new.filename)
            || new
                .status
                .is_some_and(|s| !s.is_open() && s != JobStatus::Pending)
        {
            return Ok(None);
        }
        let mut job = open.clone();
        job.job_name = new.job_name.clone();
        if new.notes.is_some() {
            job.notes = new.notes.clone();
        }
        if let Some(info) = &new.customer_info {
            let protect = job.is_auto_created();
            model::merge_customer_info(&mut job.customer_info, info, protect)
                .map_err(Refusal::Invalid)?;
        }
        if new.estimated_duration.is_some() {
            job.estimated_duration = new.estimated_duration;
        }
        job.updated_at = now.wall;
        tracing::info!(job_id = %job.id, printer_id = %printer, "manual job attached to the running print");
        self.touch(printer).open = Some(job.clone());
        self.dirty.remove(&job.id);
        let mut plan = Plan::default();
        plan.write(Write::Update(job.clone()), JobEvent::Updated(job));
        Ok(Some(plan))
    }

    /// An edit (`PUT /api/v1/jobs/{id}`) of `current`: the book's copy when it holds the
    /// job (`cached`), else the stored one.
    pub fn update(&mut self, now: Now, current: Job, patch: JobPatch) -> Result<Plan, Refusal> {
        let mut job = current;
        apply_patch(&mut job, patch, now.wall)?;
        job.updated_at = now.wall;
        let mut plan = Plan::default();
        self.dirty.remove(&job.id);
        self.follow(now, &job, false, &mut plan);
        plan.write(Write::Update(job.clone()), JobEvent::Updated(job));
        Ok(plan)
    }

    /// A delete (`DELETE /api/v1/jobs/{id}`) of this (stored) job.
    pub fn delete(&mut self, now: Now, job: &Job) -> Plan {
        tracing::info!(job_id = %job.id, "job deleted");
        let mut plan = Plan::default();
        self.follow(now, job, true, &mut plan);
        plan.write(
            Write::Delete(job.id.clone()),
            JobEvent::Deleted {
                id: job.id.clone(),
                printer_id: job.printer_id.clone(),
            },
        );
        plan
    }

    /// The printer was deleted through the API: its open job can no longer be followed
    /// and ends `unknown` (its history stays).
    pub fn close_for_removal(&mut self, now: Now, printer: &PrinterId) -> Plan {
        let mut plan = Plan::default();
        if let Some(id) = self.open_job_id(printer).cloned() {
            self.close(
                now,
                printer,
                &id,
                JobStatus::Unknown,
                now.wall,
                None,
                &mut plan,
            );
        }
        plan
    }

    /// Keeps the book in step with a job the API created, changed or removed.
    fn follow(&mut self, now: Now, job: &Job, removed: bool, plan: &mut Plan) {
        let p = &job.printer_id;
        let held_now = !removed && (job.status.is_open() || job.status == JobStatus::Pending);
        if !held_now && !self.printers.contains_key(p) {
            return;
        }
        let pr = self.touch(p);
        let was_pending = pr.pending.iter().position(|j| j.id == job.id);
        if let Some(i) = was_pending {
            pr.pending.remove(i);
        }
        let mut held = false;
        let mut dropped = None;
        if !removed && job.status == JobStatus::Pending {
            pr.pending.push_back(job.clone());
            if pr.pending.len() > MAX_PENDING_PER_PRINTER {
                dropped = pr.pending.pop_front().map(|j| j.id);
            }
            held = true;
        }
        let is_open_one = pr.open.as_ref().is_some_and(|o| o.id == job.id);
        if job.status.is_open() && !removed {
            if pr.tracker.open().is_none_or(|o| o.job_id != job.id) {
                pr.tracker.opened(record_of(job));
            }
            pr.open = Some(job.clone());
            held = true;
        } else if is_open_one {
            pr.open = None;
            if !removed && job.status != JobStatus::Pending {
                plan.ended.push(job.status);
            }
            pr.tracker.closed(&job.id, now.wall);
            self.dirty.remove(&job.id);
        }
        if let Some(d) = dropped {
            self.ids.remove(&d);
        }
        if held {
            self.ids.insert(job.id.clone(), p.clone());
        } else {
            self.ids.remove(&job.id);
        }
    }
}

/// The checks of a new job; the message names the field.
fn check_new(new: &NewJob) -> Result<(), Refusal> {
    let invalid = Refusal::Invalid;
    model::check_text("job_name", &new.job_name, MAX_NAME_LEN, false).map_err(invalid)?;
    model::check_text("filename", &new.filename, MAX_NAME_LEN, false).map_err(invalid)?;
    if let Some(n) = &new.notes {
        model::check_text("notes", n, MAX_NOTES_LEN, true).map_err(invalid)?;
    }
    if let Some(info) = &new.customer_info {
        model::check_customer_info(info).map_err(invalid)?;
    }
    check_duration("estimated_duration", new.estimated_duration)
}

fn check_duration(field: &str, v: Option<i64>) -> Result<(), Refusal> {
    match v {
        Some(d) if d < 0 => Err(Refusal::Invalid(format!(
            "{field} must be 0 or more seconds, got {d}"
        ))),
        _ => Ok(()),
    }
}

fn parse_time(field: &str, v: Option<String>) -> Result<Option<Timestamp>, Refusal> {
    v.map(|s| time::parse(&s).map_err(|e| Refusal::Invalid(format!("{field}: {e}"))))
        .transpose()
}

/// Applies an edit to a job; the message of a refusal names the field.
pub fn apply_patch(job: &mut Job, patch: JobPatch, now: Timestamp) -> Result<(), Refusal> {
    let invalid = Refusal::Invalid;
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
    let status_after = patch.status.unwrap_or(job.status);
    if matches!(explicit_end, Some(Some(_))) && !status_after.is_ended() {
        return Err(invalid(format!(
            "end_time is only for a job that has ended (completed, failed, cancelled or unknown), and this one would be {status_after}; send the status with it, or leave end_time out"
        )));
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A running job that started ten minutes before `now`.
    fn running(now: Timestamp) -> Job {
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
    fn completing_by_hand_fills_end_duration_and_progress() {
        let now = time::parse("2026-05-01T10:00:00Z").unwrap();
        let mut j = running(now);
        let patch = JobPatch {
            status: Some(JobStatus::Completed),
            ..Default::default()
        };
        apply_patch(&mut j, patch, now).unwrap();
        assert_eq!(j.end_time, Some(now));
        assert_eq!(j.actual_duration, Some(600));
        assert_eq!(j.progress, 100.0);
    }

    #[test]
    fn an_edit_refuses_bad_values_naming_the_field() {
        let now = time::parse("2026-05-01T10:00:00Z").unwrap();
        let mut j = running(now);
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
        assert!(
            e.to_string().contains("only for a job that has ended"),
            "{e}"
        );
        let e = apply_patch(
            &mut j,
            JobPatch {
                status: Some(JobStatus::Completed),
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
