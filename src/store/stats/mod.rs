//! `GET /api/v1/stats`: answered from sums kept ahead of time by triggers (migration 8,
//! `roll.rs`), with the few jobs they cannot place read raw and counted by `agg.rs`.
//!
//! `scan` is the earlier way, kept as the reference the rollup is tested against (and
//! used for `group_by=file` with named printers, which has no sums): the jobs of the
//! window read in one statement and summed by `agg.rs`. Two index ranges serve it
//! (migration 7): jobs that ended at or after `since` (`jobs_by_end_time`, or
//! `jobs_by_printer_end` for named printers), and jobs with no end time (open, pending,
//! or an end never recorded), each filtered on a start before `until`. Either read is
//! one snapshot (the caller's read transaction).

mod agg;
mod raw;
mod roll;
#[cfg(test)]
mod rollup_tests;
mod span;
mod sum;
#[cfg(test)]
mod tests;

use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::{Connection, params_from_iter};

pub use agg::{
    Aggregator, ByStatus, Group, GroupBy, MAX_END_REASONS, MAX_FILE_GROUPS, MAX_WINDOW_DAYS,
    ReasonCount, Row, STATUSES, Stats, Window,
};

use super::StoreError;
use crate::time::{self, Timestamp};

/// A statistics question.
#[derive(Clone, Debug, PartialEq)]
pub struct StatsQuery {
    pub since: Timestamp,
    pub until: Timestamp,
    /// Only these printers (empty: every printer).
    pub printers: Vec<String>,
    pub group_by: GroupBy,
}

const ROW: &str = "printer_id, filename, status, unixepoch(start_time), unixepoch(end_time), \
    unixepoch(created_at), unixepoch(updated_at), actual_duration, auto_created, end_reason";

/// The statement of `q`: both index ranges, `?1` = since, `?2` = until, `?3..` the printers.
fn sql(q: &StatsQuery) -> String {
    let (index, printers) = if q.printers.is_empty() {
        ("jobs_by_end_time", String::new())
    } else {
        let list: Vec<String> = (0..q.printers.len())
            .map(|i| format!("?{}", i + 3))
            .collect();
        (
            "jobs_by_printer_end",
            format!(" AND printer_id IN ({})", list.join(",")),
        )
    };
    let start = "coalesce(start_time, created_at) < ?2";
    format!(
        "SELECT {ROW} FROM jobs INDEXED BY {index} WHERE end_time >= ?1 AND {start}{printers} \
         UNION ALL \
         SELECT {ROW} FROM jobs INDEXED BY {index} WHERE end_time IS NULL AND {start}{printers}"
    )
}

fn int(v: ValueRef<'_>) -> Option<i64> {
    match v {
        ValueRef::Integer(i) => Some(i),
        ValueRef::Real(f) if f.is_finite() => Some(f as i64),
        _ => None,
    }
}

fn text(v: ValueRef<'_>) -> &str {
    match v {
        ValueRef::Text(t) => std::str::from_utf8(t).unwrap_or(""),
        _ => "",
    }
}

/// Answers `q` as of `now`: from the sums, except `group_by=file` with named printers
/// (and an empty or reversed window), read by `scan`.
pub fn stats(conn: &Connection, q: &StatsQuery, now: Timestamp) -> Result<Stats, StoreError> {
    let by_file_of_printers = q.group_by == GroupBy::File && !q.printers.is_empty();
    if by_file_of_printers || q.until <= q.since {
        return scan(conn, q, now);
    }
    roll::stats(conn, q, now)
}

/// Answers `q` as of `now` by reading every job of the window (the reference).
pub fn scan(conn: &Connection, q: &StatsQuery, now: Timestamp) -> Result<Stats, StoreError> {
    let w = Window {
        since: q.since.timestamp(),
        until: q.until.timestamp(),
        now: now.timestamp(),
    };
    let mut agg = Aggregator::new(w, q.group_by);
    let mut binds: Vec<SqlValue> = vec![time::format(q.since).into(), time::format(q.until).into()];
    binds.extend(q.printers.iter().map(|p| SqlValue::from(p.clone())));
    let mut stmt = conn.prepare_cached(&sql(q))?;
    let mut rows = stmt.query(params_from_iter(binds))?;
    while let Some(r) = rows.next()? {
        let status_text = text(r.get_ref(2)?);
        // A status this version does not know (a newer version's row) is left out.
        let Some(status) = STATUSES.iter().position(|s| *s == status_text) else {
            continue;
        };
        let reason = match r.get_ref(9)? {
            ValueRef::Text(t) => std::str::from_utf8(t).ok(),
            _ => None,
        };
        agg.add(&Row {
            printer_id: text(r.get_ref(0)?),
            filename: text(r.get_ref(1)?),
            status,
            start: int(r.get_ref(3)?),
            end: int(r.get_ref(4)?),
            created: int(r.get_ref(5)?),
            updated: int(r.get_ref(6)?),
            duration: int(r.get_ref(7)?),
            auto_created: int(r.get_ref(8)?) == Some(1),
            end_reason: reason,
        });
    }
    Ok(agg.finish(q.printers.len()))
}
