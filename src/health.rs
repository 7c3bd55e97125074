//! What `/api/v1/health` reports beyond "the process answers": write failures of the
//! JobCreator, kept until a later write succeeds; a database fault that only a restart
//! clears (its files deleted or replaced under the daemon), kept for the process's life;
//! and a fatal fault (an actor the daemon cannot run without has stopped), after which
//! the process exits (`watchdog.rs`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use serde::Serialize;

use crate::domain::PrinterType;
use crate::time::{self, Timestamp};

/// The slot of a printer type in the per-type counters.
fn type_index(kind: PrinterType) -> usize {
    match kind {
        PrinterType::Bambu => 0,
        PrinterType::Prusalink => 1,
        PrinterType::Octoprint => 2,
        PrinterType::Moonraker => 3,
    }
}

pub struct Health {
    pub started: Instant,
    pub started_at: Timestamp,
    write_errors: AtomicU64,
    /// Printer statuses the JobCreator processed, per printer type in the order of
    /// `PrinterType::ALL` (`/health` shows the sum, `/metrics` each, the load harness both).
    statuses_processed: [AtomicU64; PrinterType::ALL.len()],
    problem: Mutex<Option<WriteProblem>>,
    /// Set once, never cleared: writes are refused until a restart.
    database_fault: Mutex<Option<WriteProblem>>,
    /// Whether the database's paths still name the files the writer opened
    /// (`store::files::FileIdentity::check`, given by the app; health imports no store),
    /// asked on demand (`check_files`) by `/health`, before every commit and by the
    /// checkpoint thread.
    files: OnceLock<FileCheck>,
    /// Set once, never cleared: the process is about to exit.
    fatal: Mutex<Option<WriteProblem>>,
    lag: Mutex<LagWindow>,
}

/// How late statuses reach the JobCreator: the largest delay seen in the last full
/// window and in the current one.
struct LagWindow {
    started: Instant,
    previous_max_ms: u64,
    current_max_ms: u64,
}

impl LagWindow {
    /// Moves on to the window holding `now`: after one window the current maximum
    /// becomes the previous one; after two, a quiet spell, both are forgotten.
    fn advance(&mut self, now: Instant) {
        let age = now.saturating_duration_since(self.started);
        if age >= LAG_WINDOW {
            self.previous_max_ms = if age >= 2 * LAG_WINDOW {
                0
            } else {
                self.current_max_ms
            };
            self.current_max_ms = 0;
            self.started = now;
        }
    }
}

/// `Err(reason)` when the database files are not the ones opened.
type FileCheck = Box<dyn Fn() -> Result<(), String> + Send + Sync>;

/// Length of a status-lag window.
const LAG_WINDOW: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Clone, Debug, Serialize)]
pub struct WriteProblem {
    pub since: String,
    pub message: String,
}

impl Default for Health {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            started_at: time::now(),
            write_errors: AtomicU64::new(0),
            statuses_processed: Default::default(),
            problem: Mutex::new(None),
            database_fault: Mutex::new(None),
            files: OnceLock::new(),
            fatal: Mutex::new(None),
            lag: Mutex::new(LagWindow {
                started: Instant::now(),
                previous_max_ms: 0,
                current_max_ms: 0,
            }),
        }
    }
}

impl Health {
    pub fn write_failed(&self, message: String) {
        self.write_errors.fetch_add(1, Ordering::Relaxed);
        let mut p = self.problem.lock().unwrap_or_else(|e| e.into_inner());
        if p.is_none() {
            *p = Some(WriteProblem {
                since: time::format(time::now()),
                message,
            });
        } else if let Some(p) = p.as_mut() {
            p.message = message;
        }
    }

    pub fn write_succeeded(&self) {
        let mut p = self.problem.lock().unwrap_or_else(|e| e.into_inner());
        if p.is_some() {
            tracing::info!("database writes succeed again");
            *p = None;
        }
    }

    pub fn write_errors(&self) -> u64 {
        self.write_errors.load(Ordering::Relaxed)
    }

    /// One more status of a printer of type `kind` processed (one relaxed atomic add
    /// per status).
    pub fn status_processed(&self, kind: PrinterType) {
        self.statuses_processed[type_index(kind)].fetch_add(1, Ordering::Relaxed);
    }

    /// Records how long a status waited between its driver and the JobCreator.
    pub fn status_lag(&self, lag_ms: u64) {
        self.lag_at(lag_ms, Instant::now());
    }

    /// The largest status lag of the last 10 to 20 seconds, in ms (0 when idle).
    pub fn status_lag_ms(&self) -> u64 {
        self.lag_ms_at(Instant::now())
    }

    fn lag_at(&self, lag_ms: u64, now: Instant) {
        let mut w = self.lag.lock().unwrap_or_else(|e| e.into_inner());
        w.advance(now);
        w.current_max_ms = w.current_max_ms.max(lag_ms);
    }

    fn lag_ms_at(&self, now: Instant) -> u64 {
        let mut w = self.lag.lock().unwrap_or_else(|e| e.into_inner());
        w.advance(now);
        w.previous_max_ms.max(w.current_max_ms)
    }

    /// Statuses processed, all types.
    pub fn statuses_processed(&self) -> u64 {
        self.statuses_processed
            .iter()
            .map(|n| n.load(Ordering::Relaxed))
            .fold(0, u64::saturating_add)
    }

    /// Statuses processed per printer type, every type present.
    pub fn statuses_processed_by_type(&self) -> [(PrinterType, u64); PrinterType::ALL.len()] {
        PrinterType::ALL.map(|k| {
            (
                k,
                self.statuses_processed[type_index(k)].load(Ordering::Relaxed),
            )
        })
    }

    /// Records a database fault only a restart clears; the first reason is kept.
    /// Returns whether this call set it (so the caller logs it once).
    pub fn database_fault(&self, message: String) -> bool {
        set_once(&self.database_fault, message)
    }

    /// How to check the database files (`FileIdentity::check`); from now on
    /// `check_files` asks it. The first one given stays.
    pub fn watch_files(&self, check: impl Fn() -> Result<(), String> + Send + Sync + 'static) {
        let _ = self.files.set(Box::new(check));
    }

    /// `Err(reason)` when the database's paths no longer name the files the writer has
    /// open (deleted or replaced under the daemon), or that was seen before: records the
    /// fault (logged once) and refuses from then on. Two `stat` calls; `Ok` when no files
    /// are watched. Called where the answer matters (a commit, a `/health` request) and
    /// by the checkpoint thread, so nothing polls for it on an idle farm.
    pub fn check_files(&self) -> Result<(), String> {
        if let Some(f) = self.database_fault_reason() {
            return Err(f.message);
        }
        if let Some(Err(reason)) = self.files.get().map(|check| check()) {
            if self.database_fault(reason.clone()) {
                tracing::error!(reason = %reason, "database files changed under the daemon; writes are refused until a restart");
            }
            return Err(reason);
        }
        Ok(())
    }

    pub fn database_fault_reason(&self) -> Option<WriteProblem> {
        self.database_fault
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Records that the daemon cannot go on; the first reason is kept. Returns whether
    /// this call set it.
    pub fn fatal(&self, message: String) -> bool {
        set_once(&self.fatal, message)
    }

    pub fn fatal_reason(&self) -> Option<WriteProblem> {
        self.fatal.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn problem(&self) -> Option<WriteProblem> {
        self.problem
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

fn set_once(slot: &Mutex<Option<WriteProblem>>, message: String) -> bool {
    let mut p = slot.lock().unwrap_or_else(|e| e.into_inner());
    if p.is_some() {
        return false;
    }
    *p = Some(WriteProblem {
        since: time::format(time::now()),
        message,
    });
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn status_lag_is_the_largest_of_the_recent_windows() {
        let h = Health::default();
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert_eq!(h.lag_ms_at(at(0)), 0);
        h.lag_at(300, at(1));
        h.lag_at(20, at(2));
        assert_eq!(h.lag_ms_at(at(3)), 300);
        // The next window starts: the last one's largest still counts.
        h.lag_at(15, at(11));
        assert_eq!(h.lag_ms_at(at(12)), 300);
        // A window later it is gone.
        h.lag_at(10, at(22));
        assert_eq!(h.lag_ms_at(at(23)), 15);
        // No statuses for 20 s: nothing is behind.
        assert_eq!(h.lag_ms_at(at(45)), 0);
        // And a status after a long quiet spell does not bring back an old maximum.
        h.lag_at(5, at(60));
        assert_eq!(h.lag_ms_at(at(61)), 5);
    }
}
