//! Job rows: insert, update, delete, look-ups and the filtered, paged list. Rows are
//! read by `job_row.rs`, which never fails on a stored value it cannot read.

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};

use super::StoreError;
use super::job_row::from_row;
pub use super::job_row::unreadable_values;
use crate::domain::Job;
use crate::domain::JobStatus;
use crate::time::{self, Timestamp};

/// Largest page a client may ask for. A page of 1,000 jobs is about 500 KB of JSON;
/// beyond that a client should page.
pub const MAX_LIMIT: u32 = 1000;
pub const DEFAULT_LIMIT: u32 = 50;

pub(super) const COLUMNS: &str = "id, printer_id, printer_type, job_name, filename, status, progress, \
    start_time, end_time, estimated_duration, actual_duration, customer_info, notes, \
    created_at, updated_at, printer_job_id, printer_start_time, end_reason";

/// Filters of `GET /api/v1/jobs`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct JobQuery {
    pub printer_id: Option<String>,
    pub statuses: Vec<JobStatus>,
    pub auto_created: Option<bool>,
    /// Jobs created at or after this time.
    pub since: Option<Timestamp>,
    /// Jobs created before this time.
    pub until: Option<Timestamp>,
    /// Filename or job name contains this (case-insensitive for ASCII).
    pub q: Option<String>,
    /// `end_reason` is exactly this; `"*"`: any job with an end_reason.
    pub end_reason: Option<String>,
    pub limit: u32,
    pub offset: u64,
}

fn values(j: &Job) -> [SqlValue; 18] {
    let t = |t: Option<Timestamp>| t.map(time::format);
    [
        j.id.as_str().to_owned().into(),
        j.printer_id.as_str().to_owned().into(),
        j.printer_type.as_str().to_owned().into(),
        j.job_name.clone().into(),
        j.filename.clone().into(),
        j.status.as_str().to_owned().into(),
        j.progress.into(),
        t(j.start_time).into(),
        t(j.end_time).into(),
        j.estimated_duration.into(),
        j.actual_duration.into(),
        serde_json::Value::Object(j.customer_info.clone())
            .to_string()
            .into(),
        j.notes.clone().into(),
        time::format(j.created_at).into(),
        time::format(j.updated_at).into(),
        j.printer_job_id.clone().into(),
        t(j.printer_start_time).into(),
        j.end_reason.clone().into(),
    ]
}

/// A unique-index violation on the one-open-job-per-printer index becomes a conflict a
/// person can act on.
fn open_conflict(e: rusqlite::Error, j: &Job) -> StoreError {
    if e.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation) {
        StoreError::Conflict(format!(
            "printer {} already has a running or paused job; end that job first",
            j.printer_id
        ))
    } else {
        e.into()
    }
}

pub fn insert(conn: &Connection, j: &Job) -> Result<(), StoreError> {
    conn.prepare_cached(&format!(
        "INSERT INTO jobs ({COLUMNS}) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18)"
    ))?
    .execute(params_from_iter(values(j)))
    .map_err(|e| open_conflict(e, j))?;
    Ok(())
}

/// Writes every column of an existing job. Returns NotFound when it is gone.
pub fn update(conn: &Connection, j: &Job) -> Result<(), StoreError> {
    let n = conn
        .prepare_cached(
            "UPDATE jobs SET printer_id=?2, printer_type=?3, job_name=?4, filename=?5, status=?6, \
             progress=?7, start_time=?8, end_time=?9, estimated_duration=?10, actual_duration=?11, \
             customer_info=?12, notes=?13, created_at=?14, updated_at=?15, printer_job_id=?16, \
             printer_start_time=?17, end_reason=?18 WHERE id=?1",
        )?
        .execute(params_from_iter(values(j)))
        .map_err(|e| open_conflict(e, j))?;
    found(n, j)
}

/// Writes an open job's progress and `updated_at` only: the once-a-second progress flush.
/// No indexed column is in the SET list, so SQLite touches the row alone (a full
/// [`update`] rewrites every index entry and re-checks `customer_info`: ~4x the cost).
pub fn update_progress(conn: &Connection, j: &Job) -> Result<(), StoreError> {
    let n = conn
        .prepare_cached("UPDATE jobs SET progress = ?2, updated_at = ?3 WHERE id = ?1")?
        .execute(params![
            j.id.as_str(),
            j.progress,
            time::format(j.updated_at)
        ])?;
    found(n, j)
}

/// An UPDATE of `j` that changed no row: the job is gone.
fn found(rows: usize, j: &Job) -> Result<(), StoreError> {
    if rows == 0 {
        return Err(StoreError::NotFound(j.id.to_string()));
    }
    Ok(())
}

pub fn delete(conn: &Connection, id: &str) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached("DELETE FROM jobs WHERE id = ?1")?
        .execute(params![id])?
        > 0)
}

pub fn get(conn: &Connection, id: &str) -> Result<Option<Job>, StoreError> {
    Ok(conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM jobs WHERE id = ?1"))?
        .query_row(params![id], from_row)
        .optional()?)
}

/// Every running or paused job, for re-adoption at start.
pub fn open_jobs(conn: &Connection) -> Result<Vec<Job>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM jobs WHERE status IN ('running','paused') ORDER BY seq"
    ))?;
    let rows = stmt.query_map([], from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The newest `per_printer` pending jobs of each printer, oldest first: the manual jobs
/// waiting for their prints (rule 7), for the JobCreator's book at start.
pub fn pending_jobs(conn: &Connection, per_printer: usize) -> Result<Vec<Job>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM (SELECT *, row_number() OVER \
         (PARTITION BY printer_id ORDER BY seq DESC) AS nth FROM jobs WHERE status = 'pending') \
         WHERE nth <= ?1 ORDER BY seq"
    ))?;
    let limit = i64::try_from(per_printer).unwrap_or(i64::MAX);
    let rows = stmt.query_map([limit], from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Escapes `%`, `_` and `\` for a LIKE pattern with `ESCAPE '\'`.
fn like_pattern(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('%');
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// Parameters bound by number (`?N`), so one value can serve several terms.
#[derive(Default)]
struct Binds(Vec<SqlValue>);

impl Binds {
    fn bind(&mut self, v: impl Into<SqlValue>) -> String {
        self.0.push(v.into());
        format!("?{}", self.0.len())
    }
}

/// The terms of a query other than its statuses, each already bound.
fn other_terms(q: &JobQuery, b: &mut Binds) -> Vec<String> {
    let mut terms = Vec::new();
    if let Some(p) = &q.printer_id {
        terms.push(format!("printer_id = {}", b.bind(p.clone())));
    }
    if let Some(a) = q.auto_created {
        terms.push(format!("auto_created = {}", b.bind(a as i64)));
    }
    if let Some(t) = q.since {
        terms.push(format!("created_at >= {}", b.bind(time::format(t))));
    }
    if let Some(t) = q.until {
        terms.push(format!("created_at < {}", b.bind(time::format(t))));
    }
    if let Some(text) = &q.q {
        let p = b.bind(like_pattern(text));
        terms.push(format!(
            "(filename LIKE {p} ESCAPE '\\' OR job_name LIKE {p} ESCAPE '\\')"
        ));
    }
    match q.end_reason.as_deref() {
        None => {}
        Some(ANY_END_REASON) => terms.push("end_reason IS NOT NULL".into()),
        Some(r) => terms.push(format!("end_reason = {}", b.bind(r.to_owned()))),
    }
    terms
}

/// `end_reason` filter value meaning "any reason at all".
pub const ANY_END_REASON: &str = "*";

/// Every term of `q`'s filters (statuses included) and the values they bind, for the
/// export's walk by seq (store/export.rs).
pub(super) fn filter(q: &JobQuery) -> (Vec<String>, Vec<SqlValue>) {
    let mut b = Binds::default();
    let mut terms = other_terms(q, &mut b);
    if !q.statuses.is_empty() {
        terms.push(statuses_term(&q.statuses, &mut b));
    }
    (terms, b.0)
}

fn statuses_term(statuses: &[JobStatus], b: &mut Binds) -> String {
    let list: Vec<String> = statuses
        .iter()
        .map(|s| b.bind(s.as_str().to_owned()))
        .collect();
    format!("status IN ({})", list.join(","))
}

fn where_clause(terms: &[String]) -> String {
    if terms.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", terms.join(" AND "))
    }
}

/// The index a filtered list walks. Chosen here rather than by SQLite's planner: with
/// no statistics it guesses every index equally selective and, given printer_id, status
/// and auto_created together, walked the 300,000-entry auto_created index instead of
/// one printer's thousand jobs (260 ms instead of 0.3 ms over 1,000,000 jobs). Each of
/// these indexes ends in seq, so the walk is already newest first and stops after the
/// page. Time and text filters alone are left to the planner.
fn index_for(q: &JobQuery) -> &'static str {
    if q.printer_id.is_some() {
        "INDEXED BY jobs_by_printer"
    } else if !q.statuses.is_empty() {
        "INDEXED BY jobs_by_status"
    } else if q.auto_created.is_some() {
        "INDEXED BY jobs_by_auto_created"
    } else {
        ""
    }
}

/// How many jobs match. For the equality filters alone (printer_id, status,
/// auto_created) this is a sum over the exact counters that triggers keep (migration
/// 2), a few rows whatever the size of the history; only `since`, `until`, `q` and
/// `end_reason` count the matching rows.
fn count(conn: &Connection, q: &JobQuery, statuses: &[JobStatus]) -> Result<u64, StoreError> {
    let mut b = Binds::default();
    let sql = if q.since.is_none() && q.until.is_none() && q.q.is_none() && q.end_reason.is_none() {
        let mut terms = Vec::new();
        let table = match &q.printer_id {
            Some(p) => {
                terms.push(format!("printer_id = {}", b.bind(p.clone())));
                "job_counts"
            }
            None => "job_totals",
        };
        if !statuses.is_empty() {
            terms.push(statuses_term(statuses, &mut b));
        }
        if let Some(a) = q.auto_created {
            terms.push(format!("auto_created = {}", b.bind(a as i64)));
        }
        format!(
            "SELECT coalesce(sum(n), 0) FROM {table} {}",
            where_clause(&terms)
        )
    } else {
        let mut terms = other_terms(q, &mut b);
        if !statuses.is_empty() {
            terms.push(statuses_term(statuses, &mut b));
        }
        format!(
            "SELECT count(*) FROM jobs {} {}",
            index_for(q),
            where_clause(&terms)
        )
    };
    let n: i64 = conn
        .prepare_cached(&sql)?
        .query_row(params_from_iter(b.0.iter()), |r| r.get(0))?;
    Ok(n.max(0) as u64)
}

/// One page of jobs, newest first. The page's `seq`s are found first, on the index
/// alone where it covers the filter, so rows skipped by `offset` are never read in
/// full; then the page's rows are read. Several statuses are walked one index range
/// each and merged in seq order (SQLite's MERGE of a compound select): `status IN (..)`
/// on one index would sort every match before taking the page.
fn page(conn: &Connection, q: &JobQuery, statuses: &[JobStatus]) -> Result<Vec<Job>, StoreError> {
    let mut b = Binds::default();
    let others = other_terms(q, &mut b);
    let index = index_for(q);
    let seqs = if statuses.len() > 1 {
        let arms: Vec<String> = statuses
            .iter()
            .map(|s| {
                let mut terms = others.clone();
                terms.push(format!("status = {}", b.bind(s.as_str().to_owned())));
                format!("SELECT seq FROM jobs {index} {}", where_clause(&terms))
            })
            .collect();
        format!("{} ORDER BY 1 DESC", arms.join(" UNION ALL "))
    } else {
        let mut terms = others;
        if let [s] = statuses {
            terms.push(format!("status = {}", b.bind(s.as_str().to_owned())));
        }
        format!(
            "SELECT seq FROM jobs {index} {} ORDER BY seq DESC",
            where_clause(&terms)
        )
    };
    let limit = b.bind(i64::from(q.limit.min(MAX_LIMIT)));
    let offset = b.bind(q.offset.min(i64::MAX as u64) as i64);
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM jobs WHERE seq IN ({seqs} LIMIT {limit} OFFSET {offset}) \
         ORDER BY seq DESC"
    ))?;
    let jobs = stmt
        .query_map(params_from_iter(b.0.iter()), from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(jobs)
}

/// One page of jobs, newest first, and how many match in all, both from one snapshot.
pub fn list(conn: &Connection, q: &JobQuery) -> Result<(Vec<Job>, u64), StoreError> {
    let mut statuses = q.statuses.clone();
    statuses.sort_by_key(|s| s.as_str());
    statuses.dedup();
    let tx = conn.unchecked_transaction()?;
    let total = count(&tx, q, &statuses)?;
    let jobs = if total > q.offset {
        page(&tx, q, &statuses)?
    } else {
        Vec::new()
    };
    tx.commit()?;
    Ok((jobs, total))
}

#[cfg(test)]
mod tests;
