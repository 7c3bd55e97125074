//! What OctoPrint says, as plain code (protocols.md §4, §6.3, quirks §7.3): the answers
//! and socket messages parsed by `parse.rs`, turned into [`PrinterStatus`] fields.
//!
//! OctoPrint has no job id, and `/api/job` keeps the last file and its progress after a
//! print ended (quirk 7.3.4). [`OctoState`] therefore remembers the print under way (its
//! file: `job.file.path` + `job.file.date`, which tell a re-uploaded file from the old
//! one) and how the last print ended, and reports that end state for as long as OctoPrint
//! still shows the same file. The push socket's events (`PrintDone`, `PrintCancelled`,
//! `PrintFailed`) say how a print ended; without them (a poll-only session) the end is
//! read from the progress OctoPrint leaves behind: 100 % → done, all-null → cancelled.
//!
//! The REST poll and the socket run side by side, so an answer to a poll sent just before
//! an event can contradict it: for `EVENT_GRACE` after an event, a snapshot that says the
//! opposite (printing vs not) of what the event said is taken as older and skipped. The
//! same holds the other way round: while the driver waits for a poll answer it does not
//! read the socket, so `current` messages queued during the poll may be older than the
//! answer. When a poll answer shows a print starting or ending, a socket snapshot that
//! says the opposite within `EVENT_GRACE` is skipped too (without this, a queued
//! "Printing" read after the poll had seen the end made a second job for the same print).

use std::time::Duration;

use tokio::time::Instant;

pub use super::parse::*;
use crate::domain::{PrinterState, PrinterStatus, Temperatures};

/// How long after an event a contradicting snapshot is taken as older than the event.
/// A poll answer is at most one request timeout old; OctoPrint sends `current` twice a
/// second. Five seconds covers both without hiding a real change for long.
pub const EVENT_GRACE: Duration = Duration::from_secs(5);

/// What the driver remembers across answers (see the module documentation).
#[derive(Clone, Debug, Default)]
pub struct OctoState {
    snap: Snapshot,
    temperatures: Temperatures,
    /// The print under way.
    current: Option<FileKey>,
    /// How the last print ended, and its file.
    ended: Option<(FileKey, PrinterState)>,
    /// The last event: when, and whether it said a print is under way.
    event: Option<(Instant, bool)>,
    /// The last poll answer that showed a print starting or ending: when, and whether a
    /// print is under way since.
    polled_change: Option<(Instant, bool)>,
}

/// Whether `kind` contradicts what a change `at` said (`active`), within the grace.
/// `Error` counts: an "Offline after error" left from the last print's failure, read
/// after the next print's `PrintStarted`, would otherwise fail the new print (a failure
/// during a print comes with its own `PrintFailed` event).
fn contradicts(change: Option<(Instant, bool)>, kind: Kind, now: Instant) -> bool {
    change.is_some_and(|(at, was_active)| {
        now.saturating_duration_since(at) < EVENT_GRACE
            && matches!(
                kind,
                Kind::Idle | Kind::Starting | Kind::Printing | Kind::Paused | Kind::Error
            )
            && active(kind) != was_active
    })
}

fn active(k: Kind) -> bool {
    matches!(k, Kind::Starting | Kind::Printing | Kind::Paused)
}

impl OctoState {
    /// A poll answer (`/api/job`). Returns false when it was skipped as older than the
    /// last event.
    pub fn apply_poll(&mut self, snap: Snapshot, now: Instant) -> bool {
        let was = active(kind_of(&self.snap.state));
        let is = active(kind_of(&snap.state));
        let applied = self.apply_snapshot(snap, now);
        if applied && was != is {
            self.polled_change = Some((now, is));
        }
        applied
    }

    /// Temperatures alone (a poll answer while the push socket carries the state).
    pub fn apply_temperatures(&mut self, t: Temperatures) {
        self.temperatures = t;
    }

    /// A push `current` message. Returns false when it was skipped as older than the
    /// last event or than a poll answer that saw a print start or end.
    pub fn apply_push(&mut self, snap: Snapshot, now: Instant) -> bool {
        if contradicts(self.polled_change, kind_of(&snap.state), now) {
            return false;
        }
        self.apply_snapshot(snap, now)
    }

    /// A snapshot from a poll or a push `current`. Returns false when it was skipped as
    /// older than the last event.
    pub fn apply_snapshot(&mut self, snap: Snapshot, now: Instant) -> bool {
        let kind = kind_of(&snap.state);
        if contradicts(self.event, kind, now) {
            return false;
        }
        if let Some(t) = &snap.temperatures {
            self.temperatures = t.clone();
        }
        match kind {
            Kind::Starting | Kind::Printing | Kind::Paused => {
                if let Some(f) = &snap.file {
                    if !self.current.as_ref().is_some_and(|c| c.same(f)) {
                        self.current = Some(f.clone());
                    } else if let Some(c) = self.current.as_mut()
                        && c.date.is_none()
                    {
                        // Learn the upload date the start event did not carry.
                        c.date = f.date;
                    }
                    self.ended = None;
                }
            }
            Kind::Idle => {
                if let Some(cur) = self.current.take() {
                    // The print ended and no event said how (a poll-only session).
                    let end = if snap.completion.is_some_and(|c| c >= 100.0) {
                        Some(PrinterState::Finished)
                    } else if snap.completion.is_none() && snap.print_time.is_none() {
                        Some(PrinterState::Cancelled)
                    } else {
                        None
                    };
                    self.ended = end.map(|e| (cur, e));
                } else if self.ended.is_none()
                    && let Some(f) = &snap.file
                    && snap.completion.is_some_and(|c| c >= 100.0)
                    && snap.print_time_left == Some(0)
                {
                    // A print that ended before this driver first looked (the daemon was
                    // down): OctoPrint's done fingerprint.
                    self.ended = Some((f.clone(), PrinterState::Finished));
                }
                if let Some((k, _)) = &self.ended
                    && snap.file.as_ref().is_some_and(|f| !k.same(f))
                {
                    // Another file is selected: the end screen is gone.
                    self.ended = None;
                }
            }
            Kind::Error => {
                if let Some(cur) = self.current.take() {
                    self.ended = Some((cur, PrinterState::Failed));
                }
            }
            Kind::Offline | Kind::Unknown => {}
        }
        self.snap = snap;
        true
    }

    /// An event from the push socket.
    pub fn apply_event(&mut self, e: Event, now: Instant) {
        let s = &mut self.snap;
        let end = |this: &mut Self, st: PrinterState| {
            let key = this.current.take().or_else(|| this.snap.file.clone());
            if let Some(k) = key {
                // A cancel is reported as PrintCancelled and then PrintFailed(cancelled):
                // the second must not turn it into a failure.
                let already = matches!(&this.ended, Some((ek, _)) if ek.same(&k));
                if !already || st != PrinterState::Failed {
                    this.ended = Some((k, st));
                }
            }
        };
        match e {
            Event::Started { path } => {
                // Already printing this file: a `PrintStarted` queued on the socket and
                // read after a poll answer that showed the print under way. Zeroing its
                // progress and time would look like a restart (a second job).
                let same = path.as_ref().is_some_and(|p| {
                    self.current.as_ref().is_some_and(|c| c.path == *p) && active(kind_of(&s.state))
                });
                if same {
                    self.event = Some((now, true));
                    return;
                }
                s.state = "Printing".into();
                if let Some(p) = path {
                    let date = s.file.as_ref().filter(|f| f.path == p).and_then(|f| f.date);
                    s.file = Some(FileKey { path: p, date });
                }
                s.completion = Some(0.0);
                s.print_time = Some(0);
                s.print_time_left = None;
                self.current = s.file.clone();
                self.ended = None;
                self.event = Some((now, true));
            }
            Event::Paused => {
                s.state = "Paused".into();
                self.event = Some((now, true));
            }
            Event::Resumed => {
                s.state = "Printing".into();
                self.event = Some((now, true));
            }
            Event::Done => {
                s.state = "Operational".into();
                s.completion = Some(100.0);
                s.print_time_left = Some(0);
                end(self, PrinterState::Finished);
                self.event = Some((now, false));
            }
            Event::Cancelled | Event::Failed { cancelled: true } => {
                s.state = "Operational".into();
                end(self, PrinterState::Cancelled);
                self.event = Some((now, false));
            }
            Event::Failed { cancelled: false } => {
                s.state = "Error".into();
                end(self, PrinterState::Failed);
                self.event = Some((now, false));
            }
        }
    }

    /// Writes the job, state and temperature fields of `s`.
    pub fn fill(&self, s: &mut PrinterStatus) {
        let snap = &self.snap;
        let kind = kind_of(&snap.state);
        let name = |k: &FileKey| base_name(&k.path);
        s.printer_job_id = None;
        s.printer_start_time = None;
        s.job_name = None;
        s.layer = None;
        s.total_layers = None;
        s.error = snap.error.clone();
        s.temperatures = self.temperatures.clone();
        let (state, file) = match kind {
            Kind::Starting => (PrinterState::Preparing, snap.file.as_ref()),
            Kind::Printing => (PrinterState::Printing, snap.file.as_ref()),
            Kind::Paused => (PrinterState::Paused, snap.file.as_ref()),
            Kind::Idle => match &self.ended {
                Some((k, st)) => (*st, Some(k)),
                None => (PrinterState::Idle, None),
            },
            Kind::Error => match &self.ended {
                Some((k, PrinterState::Failed)) => (PrinterState::Failed, Some(k)),
                _ => (PrinterState::Error, None),
            },
            Kind::Offline | Kind::Unknown => (PrinterState::Unknown, self.current.as_ref()),
        };
        if kind == Kind::Offline && s.error.is_none() {
            s.error = Some(format!(
                "OctoPrint is not connected to the printer ({})",
                snap.state
            ));
        }
        if kind == Kind::Error && s.error.is_none() {
            s.error = Some(format!("OctoPrint reports {}", snap.state));
        }
        // OctoPrint's own error text when it gave one; a cancel is a person's
        // (PrintCancelled, or PrintFailed with reason "cancelled").
        if s.error.is_none() {
            s.error = match state {
                PrinterState::Cancelled => Some("cancelled by user".into()),
                PrinterState::Failed => Some("the print failed; OctoPrint gave no reason".into()),
                _ => None,
            };
        }
        s.state = state;
        s.filename = file.and_then(name);
        let printing = matches!(
            state,
            PrinterState::Preparing | PrinterState::Printing | PrinterState::Paused
        );
        s.progress = match state {
            PrinterState::Finished => Some(100.0),
            _ if printing => snap.completion,
            _ => None,
        };
        s.elapsed_s = if printing || state == PrinterState::Finished {
            snap.print_time
        } else {
            None
        };
        s.remaining_s = match state {
            _ if printing => snap.print_time_left,
            PrinterState::Finished => Some(0),
            _ => None,
        };
    }
}

#[cfg(test)]
mod tests;
