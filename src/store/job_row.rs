//! Reading a job row. It never fails the list: a stored value this version cannot read
//! (a time outside years 0–9999 written by an older version, a hand-edited row) reads as
//! null (or, for a column that cannot be null, as a stated fallback), is counted
//! (`unreadable_values`, shown on `/health`) and logged once per process, and the row is
//! still listed, fetched and deletable. Before this, one such value made the job list,
//! the job and its DELETE answer 500, across restarts.

use std::sync::atomic::{AtomicU64, Ordering};

use rusqlite::Row;

use crate::domain::Job;
use crate::domain::{JobId, JobStatus, PrinterId, PrinterType};
use crate::time::{self, Timestamp};

/// Stored values that could not be read since the process started.
static UNREADABLE: AtomicU64 = AtomicU64::new(0);

/// How many stored values could not be read (and were read as null or a fallback).
pub fn unreadable_values() -> u64 {
    UNREADABLE.load(Ordering::Relaxed)
}

/// Counts an unreadable value; logs the first one of the process (a bad row is read on
/// every list that shows it, and one log line says what to look for).
fn unreadable(id: &str, column: &str) {
    if UNREADABLE.fetch_add(1, Ordering::Relaxed) == 0 {
        tracing::warn!(job_id = %id, column, "a stored value cannot be read; it reads as null (later ones are counted on /health as database.unreadable_values, not logged)");
    }
}

/// Column `i` as text, or None when it is null or not text.
fn text(r: &Row<'_>, i: usize, id: &str, column: &str) -> Option<String> {
    match r.get_ref(i) {
        Ok(rusqlite::types::ValueRef::Null) => None,
        Ok(rusqlite::types::ValueRef::Text(t)) => Some(String::from_utf8_lossy(t).into_owned()),
        _ => {
            unreadable(id, column);
            None
        }
    }
}

/// A time column; an unreadable one (out of range, not a time) reads as null.
fn ts(r: &Row<'_>, i: usize, id: &str, column: &str) -> Option<Timestamp> {
    let s = text(r, i, id, column)?;
    time::parse(&s).inspect_err(|_| unreadable(id, column)).ok()
}

/// A column that must hold a value, read with `parse`; `fallback` when it cannot be.
fn required<T>(
    r: &Row<'_>,
    i: usize,
    id: &str,
    column: &str,
    parse: impl FnOnce(String) -> Option<T>,
    fallback: T,
) -> T {
    match text(r, i, id, column).map(parse) {
        Some(Some(v)) => v,
        Some(None) | None => {
            unreadable(id, column);
            fallback
        }
    }
}

pub(super) fn from_row(r: &Row<'_>) -> rusqlite::Result<Job> {
    let id: String = r.get(0)?;
    let id_ = id.as_str();
    let number = |i: usize, column: &str| -> Option<i64> {
        r.get::<_, Option<i64>>(i)
            .inspect_err(|_| unreadable(id_, column))
            .ok()
            .flatten()
    };
    Ok(Job {
        printer_id: required(
            r,
            1,
            id_,
            "printer_id",
            |s| PrinterId::new(s).ok(),
            PrinterId::new("unknown").expect("a valid id"),
        ),
        printer_type: required(
            r,
            2,
            id_,
            "printer_type",
            |s| s.parse::<PrinterType>().ok(),
            PrinterType::Bambu,
        ),
        job_name: text(r, 3, id_, "job_name").unwrap_or_default(),
        filename: text(r, 4, id_, "filename").unwrap_or_default(),
        status: required(
            r,
            5,
            id_,
            "status",
            |s| s.parse::<JobStatus>().ok(),
            JobStatus::Unknown,
        ),
        progress: r
            .get::<_, f64>(6)
            .inspect_err(|_| unreadable(id_, "progress"))
            .unwrap_or(0.0),
        start_time: ts(r, 7, id_, "start_time"),
        end_time: ts(r, 8, id_, "end_time"),
        estimated_duration: number(9, "estimated_duration"),
        actual_duration: number(10, "actual_duration"),
        customer_info: required(
            r,
            11,
            id_,
            "customer_info",
            |s| serde_json::from_str(&s).ok(),
            Default::default(),
        ),
        notes: text(r, 12, id_, "notes"),
        created_at: ts(r, 13, id_, "created_at").unwrap_or_default(),
        updated_at: ts(r, 14, id_, "updated_at").unwrap_or_default(),
        printer_job_id: text(r, 15, id_, "printer_job_id"),
        printer_start_time: ts(r, 16, id_, "printer_start_time"),
        end_reason: text(r, 17, id_, "end_reason"),
        id: JobId::from_string(id),
    })
}
