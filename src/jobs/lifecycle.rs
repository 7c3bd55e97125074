//! The job-lifecycle state machine: from one printer's stream of statuses, decide
//! when a print starts, continues and ends (design.md §2). Plain values in, plain
//! decisions out; the JobCreator executes the decisions against the database and then
//! confirms them here (`opened`, `closed`, `progressed`), so a failed write leaves the
//! tracker as it was and the next status retries.
//!
//! What tells one print from another, strongest first:
//! 1. the printer's own job id (Bambu task/subtask id when not "0", PrusaLink `job.id`);
//! 2. the start time the printer reports (Bambu `gcode_start_time`), within 5 minutes;
//! 3. the file name, with no sign of a restart: a print whose progress fell back by more
//!    than `RESTART_PROGRESS_DROP` points, or whose elapsed time fell back by more than
//!    `RESTART_ELAPSED_DROP`, is a new print. (A start time derived as now − elapsed is
//!    not compared: it jitters, and on some firmware moves with every pause.)
//! 4. the state edge: once the printer has reported an end or idle state, the next
//!    print is a new one even when every field above is the same (Bambu reuses
//!    `gcode_start_time` for reprints with task id "0").
//!
//! A start time the printer reports is taken only when it can be this print's (see
//! `PrinterTracker::usable_start_time`): an X1 keeps the previous print's
//! `gcode_start_time` through PREPARE, and a job must never start before the one before
//! it on the same printer. All arithmetic on printer-supplied numbers is checked: no
//! observation, however absurd, can make the lifecycle panic.
//!
//! The tracker holds only the open print and a few recently closed ones per printer —
//! never history — so it stays small however long the daemon runs.

use std::collections::VecDeque;

use chrono::Duration;

use crate::domain::{ConnectionState, JobId, JobStatus, PrinterState, PrinterStatus, PrinterType};
use crate::printers::sanitize;
use crate::time::Timestamp;

mod names;
use names::{cap_name, is_active, knows_state, progress_of, remaining_of};
pub use names::{display_name, finite_progress, same_file};

/// Printer-reported start times of one print differ by at most this (design.md §2).
pub const START_TIME_TOLERANCE: Duration = Duration::minutes(5);
/// Progress falling back by more than this many points means a new print.
pub const RESTART_PROGRESS_DROP: f64 = 5.0;
/// Elapsed print time falling back by more than this means a new print.
pub const RESTART_ELAPSED_DROP: i64 = 120;
/// How long a closed print is remembered to ignore stale or flapping reports of it.
pub const RECENT_WINDOW: Duration = Duration::minutes(10);
/// Closed prints remembered per printer (a printer ends a print every few minutes at
/// the very most; four covers any flapping seen in practice).
pub const RECENT_MAX: usize = 4;
/// The file name of a print seen only by its end state when the printer did not say
/// what it printed (PrusaLink's end screen carries no job object).
pub const UNKNOWN_FILE: &str = "unknown";
/// Progress at or above which a print that ended unseen is taken as completed.
pub const COMPLETED_PROGRESS: f64 = 99.0;

/// What identifies a print and what was last seen of it.
#[derive(Clone, Debug, PartialEq)]
pub struct PrintRecord {
    pub job_id: JobId,
    pub filename: String,
    pub printer_job_id: Option<String>,
    pub printer_start_time: Option<Timestamp>,
    pub status: JobStatus,
    pub last_progress: f64,
    pub last_elapsed: Option<i64>,
}

#[derive(Clone, Debug, PartialEq)]
struct Recent {
    print: PrintRecord,
    closed_at: Timestamp,
    /// The printer has reported an end or idle state since: a same-looking print is new.
    ended_since: bool,
}

/// A print has started and has no job yet.
#[derive(Clone, Debug, PartialEq)]
pub struct Start {
    pub filename: String,
    pub job_name: String,
    pub printer_job_id: Option<String>,
    pub printer_start_time: Option<Timestamp>,
    /// Best known start: the printer's, else now − elapsed, else now.
    pub start_time: Timestamp,
    pub status: JobStatus,
    pub progress: f64,
    pub estimated_duration: Option<i64>,
    /// The print was already under way in the first status after the daemon started.
    pub discovered_on_startup: bool,
    pub elapsed_s: Option<i64>,
}

/// What the JobCreator should do, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// The open job continues; `status` is running or paused.
    Continue {
        job_id: JobId,
        status: JobStatus,
        progress: Option<f64>,
        elapsed_s: Option<i64>,
    },
    /// The open job ended.
    Close {
        job_id: JobId,
        status: JobStatus,
        end_time: Timestamp,
    },
    /// A new print: attach a pending manual job or create one (if auto-creation is on).
    Start(Start),
    /// A print that started and ended between two polls of a polled printer (rule 9):
    /// seen only by its end state and the printer's advanced job id. Record it and close
    /// it at once.
    Missed { start: Start, status: JobStatus },
}

/// One printer's lifecycle.
#[derive(Clone, Debug, Default)]
pub struct PrinterTracker {
    open: Option<PrintRecord>,
    recent: VecDeque<Recent>,
    /// Whether a connected status has been seen since the daemon started, and the print
    /// that status showed under way, if any.
    seen_since_start: bool,
    startup_print: Option<(Option<String>, String)>,
    last_state: Option<PrinterState>,
    /// The printer's own job id in the last connected status (polled printers, rule 9).
    last_job_id: Option<String>,
}

fn file_of(obs: &PrinterStatus) -> String {
    obs.filename.clone().unwrap_or_default()
}

/// Whether an observation continues `rec`. An end state is compared on identity only:
/// printers zero their counters when a print is cancelled.
fn same_print(rec: &PrintRecord, obs: &PrinterStatus) -> bool {
    if let (Some(a), Some(b)) = (&rec.printer_job_id, &obs.printer_job_id) {
        return a == b;
    }
    if obs.filename.as_deref().is_some_and(|f| f != rec.filename) {
        return false;
    }
    if let (Some(a), Some(b)) = (rec.printer_start_time, obs.printer_start_time) {
        return (a - b).abs() <= START_TIME_TOLERANCE;
    }
    if end_status(obs.state).is_some() {
        return true;
    }
    let progress_fell =
        progress_of(obs).is_some_and(|p| p + RESTART_PROGRESS_DROP < rec.last_progress);
    let elapsed_fell = matches!((rec.last_elapsed, obs.elapsed_s), (Some(a), Some(b)) if b.saturating_add(RESTART_ELAPSED_DROP) < a);
    !(progress_fell || elapsed_fell)
}

fn end_status(state: PrinterState) -> Option<JobStatus> {
    match state {
        PrinterState::Finished => Some(JobStatus::Completed),
        PrinterState::Failed => Some(JobStatus::Failed),
        PrinterState::Cancelled => Some(JobStatus::Cancelled),
        _ => None,
    }
}

/// When the print this status shows ended: the printer's `printer_end_time` (never after
/// the status; the book keeps it after the job's start), else the status's time.
fn end_time_of(obs: &PrinterStatus) -> Timestamp {
    obs.printer_end_time
        .filter(|t| *t <= obs.observed_at)
        .unwrap_or(obs.observed_at)
}

/// A job whose end was not seen: completed if it had (nearly) finished, else unknown.
fn unseen_end(rec: &PrintRecord) -> JobStatus {
    if rec.last_progress >= COMPLETED_PROGRESS {
        JobStatus::Completed
    } else {
        JobStatus::Unknown
    }
}

impl PrinterTracker {
    /// A tracker that re-adopts the job left open by a previous run (rule 6).
    pub fn with_open(open: Option<PrintRecord>) -> Self {
        Self {
            open,
            ..Default::default()
        }
    }

    pub fn open(&self) -> Option<&PrintRecord> {
        self.open.as_ref()
    }

    /// Decides what `obs` means. Only observation bookkeeping changes here; the job
    /// state changes when the JobCreator confirms a decision.
    pub fn observe(&mut self, obs: &PrinterStatus) -> Vec<Decision> {
        if obs.connection != ConnectionState::Connected {
            return Vec::new();
        }
        let active = is_active(obs);
        // The first status that says what the printer is doing (a driver may announce
        // "connected" before the printer's first report).
        let first = !self.seen_since_start && knows_state(obs);
        if first {
            self.seen_since_start = true;
            self.startup_print = active.then(|| (obs.printer_job_id.clone(), file_of(obs)));
        }
        let previous = self.last_state.replace(obs.state);
        let previous_job_id = std::mem::replace(&mut self.last_job_id, obs.printer_job_id.clone());
        let mut out = Vec::new();
        if active {
            if let Some(open) = &self.open {
                if same_print(open, obs) {
                    let status = if obs.state == PrinterState::Paused {
                        JobStatus::Paused
                    } else {
                        JobStatus::Running
                    };
                    out.push(Decision::Continue {
                        job_id: open.job_id.clone(),
                        status,
                        progress: progress_of(obs),
                        elapsed_s: obs.elapsed_s,
                    });
                    return out;
                }
                out.push(Decision::Close {
                    job_id: open.job_id.clone(),
                    status: unseen_end(open),
                    end_time: obs.observed_at,
                });
            } else if self.is_stale(obs) {
                return out;
            }
            out.push(Decision::Start(self.start(obs)));
            return out;
        }
        // Not printing: an end or idle state closes the open job; stale ones do nothing.
        let ended = end_status(obs.state);
        if ended.is_some() || obs.state == PrinterState::Idle {
            for r in &mut self.recent {
                r.ended_since = true;
            }
        }
        if self.open.is_none()
            && let Some(status) = ended
            && self.missed_print(obs, first, previous, previous_job_id.as_deref())
        {
            let mut start = self.start(obs);
            start.status = status;
            if start.filename.is_empty() {
                // PrusaLink drops the job object at the end screen: the file is unknown.
                start.filename = UNKNOWN_FILE.to_owned();
                start.job_name = "Print seen only at its end".to_owned();
            }
            out.push(Decision::Missed { start, status });
            return out;
        }
        if let Some(open) = &self.open {
            let status = match (ended, obs.state) {
                (Some(st), _) if obs.filename.is_none() || same_print(open, obs) => Some(st),
                // The printer shows the end of a different print: ours ended unseen.
                (Some(_), _) => Some(unseen_end(open)),
                (None, PrinterState::Idle) => Some(
                    // Older Bambu firmware reports a cancel as active → IDLE with no FAILED.
                    if obs.printer_type == PrinterType::Bambu
                        && !obs.first_after_connect
                        && matches!(
                            previous,
                            Some(
                                PrinterState::Printing
                                    | PrinterState::Paused
                                    | PrinterState::Preparing
                            )
                        )
                    {
                        JobStatus::Cancelled
                    } else {
                        unseen_end(open)
                    },
                ),
                _ => None,
            };
            if let Some(status) = status {
                out.push(Decision::Close {
                    job_id: open.job_id.clone(),
                    status,
                    end_time: end_time_of(obs),
                });
            }
        }
        out
    }

    /// Rule 9: a polled printer shows the end of a print it was never seen printing —
    /// the whole print fell between two polls. Evidence: the printer was idle at the
    /// previous poll, or its own job id moved on. Never on the first status after start
    /// (that end may be a print the previous run recorded), never for push printers (they
    /// report every state, so an unseen end is a stale screen), never for a print just
    /// closed.
    fn missed_print(
        &self,
        obs: &PrinterStatus,
        first: bool,
        previous: Option<PrinterState>,
        previous_job_id: Option<&str>,
    ) -> bool {
        let polled = !matches!(obs.printer_type, PrinterType::Bambu);
        let new_id = obs
            .printer_job_id
            .as_deref()
            .is_some_and(|id| Some(id) != previous_job_id);
        polled
            && !first
            && self.seen_since_start
            && (previous == Some(PrinterState::Idle) || new_id)
            && !self.is_stale(obs)
            && !self.recent.iter().any(|r| {
                r.print.printer_job_id.is_some() && r.print.printer_job_id == obs.printer_job_id
            })
    }

    /// A report of a print that was just closed, with no end seen since (rule 3).
    fn is_stale(&self, obs: &PrinterStatus) -> bool {
        self.recent.iter().any(|r| {
            obs.observed_at - r.closed_at <= RECENT_WINDOW
                && match (&r.print.printer_job_id, &obs.printer_job_id) {
                    (Some(a), Some(b)) => a == b,
                    _ => !r.ended_since && same_print(&r.print, obs),
                }
        })
    }

    /// The printer's start time in `obs`, if it can be this print's: inside the sane
    /// window around the observation (`sanitize::start_time_ok`), not reported while the
    /// printer is still preparing (an X1 keeps the previous print's `gcode_start_time`
    /// through PREPARE, and sets this print's once its preparation stages begin), and
    /// later than the start of every print recently closed on this printer (a new print
    /// starts after the previous one did; both times are the printer's clock).
    pub fn usable_start_time(&self, obs: &PrinterStatus) -> Option<Timestamp> {
        let t = obs.printer_start_time?;
        if obs.state == PrinterState::Preparing || !sanitize::start_time_ok(t, obs.observed_at) {
            return None;
        }
        let earlier = |r: &Recent| {
            r.print.printer_start_time.is_some_and(|prev| t <= prev)
                && (r.print.printer_job_id.is_none()
                    || r.print.printer_job_id != obs.printer_job_id)
        };
        (!self.recent.iter().any(earlier)).then_some(t)
    }

    fn start(&self, obs: &PrinterStatus) -> Start {
        let filename = cap_name(file_of(obs));
        let job_name = cap_name(
            obs.job_name
                .clone()
                .filter(|n| !n.trim().is_empty())
                .unwrap_or_else(|| display_name(&filename)),
        );
        let printer_start_time = self.usable_start_time(obs);
        let elapsed_s = obs.elapsed_s.filter(|e| sanitize::duration_ok(*e));
        let start_time = printer_start_time
            .or_else(|| {
                elapsed_s
                    .and_then(Duration::try_seconds)
                    .and_then(|d| obs.observed_at.checked_sub_signed(d))
            })
            .unwrap_or(obs.observed_at);
        let estimated_duration = remaining_of(obs)
            .filter(|r| sanitize::duration_ok(*r))
            .map(|r| {
                (obs.observed_at - start_time)
                    .num_seconds()
                    .max(0)
                    .saturating_add(r)
            });
        let discovered_on_startup = self
            .startup_print
            .as_ref()
            .is_some_and(|(id, f)| *f == filename && (id.is_none() || *id == obs.printer_job_id));
        Start {
            filename,
            job_name,
            printer_job_id: obs.printer_job_id.clone().map(cap_name),
            printer_start_time,
            start_time,
            status: if obs.state == PrinterState::Paused {
                JobStatus::Paused
            } else {
                JobStatus::Running
            },
            progress: finite_progress(progress_of(obs)).unwrap_or(0.0),
            estimated_duration,
            discovered_on_startup,
            elapsed_s,
        }
    }

    /// A job was created or attached for the current print.
    pub fn opened(&mut self, rec: PrintRecord) {
        self.startup_print = None;
        self.open = Some(rec);
    }

    /// The printer reported the open print's start time only after the job was opened
    /// (an X1 sets `gcode_start_time` once its preparation stages begin).
    pub fn learned_start_time(&mut self, t: Timestamp) {
        if let Some(o) = self.open.as_mut() {
            o.printer_start_time = Some(t);
        }
    }

    /// The open job continues with this progress and status.
    pub fn progressed(&mut self, status: JobStatus, progress: Option<f64>, elapsed: Option<i64>) {
        if let Some(o) = &mut self.open {
            o.status = status;
            if let Some(p) = finite_progress(progress) {
                o.last_progress = p;
            }
            if elapsed.is_some() {
                o.last_elapsed = elapsed;
            }
        }
    }

    /// The open job (or one the API closed or deleted) ended at `at`.
    pub fn closed(&mut self, job_id: &JobId, at: Timestamp) {
        let rec = match &self.open {
            Some(o) if &o.job_id == job_id => self.open.take(),
            _ => None,
        };
        if let Some(print) = rec {
            self.recent.push_front(Recent {
                print,
                closed_at: at,
                ended_since: false,
            });
            self.recent.truncate(RECENT_MAX);
        }
    }
}

#[cfg(test)]
mod sample;
#[cfg(test)]
mod start_times;
#[cfg(test)]
mod tests;
