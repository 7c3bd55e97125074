//! What [`PrusaState`] remembers between polls: the last print seen, to attribute an end
//! state that comes without a job (§3.7), and when it was last seen printing, to say when
//! it ended.
//!
//! When a print ended (issue 21): `FINISHED` carries no job and no time, and the daemon
//! sees it at its next poll or probe, up to an interval after the fact. What the printer
//! did say is, at the last poll or probe that saw the print `PRINTING`, how much was left
//! (`time_remaining`): the print ended at that moment plus what was left, bounded by the
//! moment it was last seen printing and the moment its end was seen (a late estimate
//! cannot put the end after the status that shows it, an early one not before the print
//! was last seen running). Only for `FINISHED`: a stop or an error cuts the print short,
//! and the time left says nothing of when; those ends keep the time they were seen. A
//! print last seen paused keeps it too (how long it stayed paused is not known).

use chrono::TimeDelta;

use super::{JobInfo, Poll, map_state};
use crate::domain::{PrinterState, PrinterStatus};
use crate::printers::sanitize;
use crate::time::{self, Timestamp};

/// The last print seen, for attributing an end state that comes without a job.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PrusaState {
    last_job: Option<JobInfo>,
    /// When that print was last seen `PRINTING` (not paused), by the daemon's clock;
    /// its `remaining_s` is what the printer then said was left.
    printing_at: Option<Timestamp>,
}

impl PrusaState {
    /// The id of the print last seen, to know when `/api/v1/job` must be asked again.
    pub fn last_job(&self) -> Option<&JobInfo> {
        self.last_job.as_ref()
    }

    /// Applies one poll and writes the job, state and temperature fields of `s`.
    pub fn apply(&mut self, poll: Poll, s: &mut PrinterStatus) {
        self.apply_at(poll, s, time::now())
    }

    /// A fast probe's answer (`/api/v1/status` alone) that showed no change: the print
    /// is still where the last poll left it, and was seen printing at `now` with the
    /// time left it says, which makes the end estimate closer.
    pub fn sighted(&mut self, probe: &Poll, now: Timestamp) {
        let (Some(last), Some(j)) = (self.last_job.as_mut(), probe.job.as_ref()) else {
            return;
        };
        if last.id.is_none() || last.id != j.id {
            return;
        }
        match probe.state.as_str() {
            "PRINTING" => {
                last.remaining_s = j.remaining_s;
                self.printing_at = Some(now);
            }
            _ => self.printing_at = None,
        }
    }

    /// [`PrusaState::apply`] of a poll answered at `now` (the daemon's clock).
    pub fn apply_at(&mut self, poll: Poll, s: &mut PrinterStatus, now: Timestamp) {
        let mut state = map_state(&poll.state);
        let job = match poll.job {
            Some(j) => {
                // Keep the file name of the same print when this poll did not fetch it.
                let j = match &self.last_job {
                    Some(last) if j.filename.is_none() && last.id == j.id => JobInfo {
                        filename: last.filename.clone(),
                        display_name: last.display_name.clone(),
                        ..j
                    },
                    _ => j,
                };
                if matches!(state, PrinterState::Printing | PrinterState::Paused) {
                    self.last_job = Some(j.clone());
                    self.printing_at = (state == PrinterState::Printing).then_some(now);
                }
                Some(j)
            }
            None => match state {
                PrinterState::Finished | PrinterState::Cancelled | PrinterState::Error => {
                    self.last_job.clone()
                }
                _ => {
                    self.last_job = None;
                    self.printing_at = None;
                    None
                }
            },
        };
        // PrusaLink says no more than its state: STOPPED is a stop on the printer or in
        // Prusa Connect (a person's), ERROR the printer's own (protocols.md §3.4).
        s.error = match poll.state.as_str() {
            "ERROR" => Some("printer error (PrusaLink state ERROR)".into()),
            "STOPPED" => Some("cancelled by user (PrusaLink state STOPPED)".into()),
            _ => None,
        };
        if poll.state == "ERROR" {
            // An error that ended a print we saw is that print's failure (design §2 rule
            // 4); an error with no print is the printer's own state.
            if job.is_some() {
                state = PrinterState::Failed;
            }
        }
        s.state = state;
        s.printer_job_id = job.as_ref().and_then(|j| j.id.clone());
        s.filename = job.as_ref().and_then(|j| j.filename.clone());
        s.job_name = job.as_ref().and_then(|j| j.display_name.clone());
        s.progress = match state {
            PrinterState::Finished if job.is_some() => Some(100.0),
            _ => job.as_ref().and_then(|j| j.progress),
        };
        s.remaining_s = match state {
            PrinterState::Printing | PrinterState::Paused => {
                job.as_ref().and_then(|j| j.remaining_s)
            }
            _ if job.is_some() => Some(0),
            _ => None,
        };
        s.elapsed_s = job.as_ref().and_then(|j| j.elapsed_s);
        s.printer_start_time = None;
        s.printer_end_time = match (state, &job, &self.last_job) {
            (PrinterState::Finished, Some(j), Some(last)) if j.id == last.id => {
                end_estimate(self.printing_at, last.remaining_s, now)
            }
            _ => None,
        };
        s.layer = None;
        s.total_layers = None;
        s.temperatures = poll.temperatures;
    }
}

/// When a print that was seen `PRINTING` at `printing_at` with `remaining_s` left ended,
/// as its end is seen at `now`: within [`printing_at`, `now`]; `None` when the printer
/// gave no usable time left. Checked arithmetic: no printer value can overflow it.
pub fn end_estimate(
    printing_at: Option<Timestamp>,
    remaining_s: Option<i64>,
    now: Timestamp,
) -> Option<Timestamp> {
    let at = printing_at?;
    let left = remaining_s.filter(|r| sanitize::duration_ok(*r))?;
    let end = at.checked_add_signed(TimeDelta::try_seconds(left)?)?;
    Some(end.min(now).max(at.min(now)))
}
