//! What `/api/v1/health` reports beyond "the process answers": write failures of the
//! JobCreator, kept until a later write succeeds.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use serde::Serialize;

use crate::time::{self, Timestamp};

pub struct Health {
    pub started: Instant,
    pub started_at: Timestamp,
    write_errors: AtomicU64,
    /// Printer statuses the JobCreator processed (for `/health` and the load harness).
    statuses_processed: AtomicU64,
    problem: Mutex<Option<WriteProblem>>,
}

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
            statuses_processed: AtomicU64::new(0),
            problem: Mutex::new(None),
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

    /// One more printer status processed (one relaxed atomic add per status).
    pub fn status_processed(&self) {
        self.statuses_processed.fetch_add(1, Ordering::Relaxed);
    }

    pub fn statuses_processed(&self) -> u64 {
        self.statuses_processed.load(Ordering::Relaxed)
    }

    pub fn problem(&self) -> Option<WriteProblem> {
        self.problem
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}
