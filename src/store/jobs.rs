//! Job rows: insert, update, delete, look-ups and the filtered, paged list.

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};

use super::StoreError;
use crate::domain::{JobId, JobStatus, PrinterId, PrinterType};
use crate::jobs::Job;
use crate::time::{self, Timestamp};

/// Largest page a client may ask for. A page of 1,000 jobs is about 500 KB of JSON;
/// beyond that a client should page.
pub const MAX_LIMIT: u32 = 1000;
pub const DEFAULT_LIMIT: u32 = 50;

const COLUMNS: &str = "id, printer_id, printer_type, job_name, filename, status, progress, \
    start_time, end_time, estimated_duration, actual_duration, customer_info, notes, \
    created_at, updated_at, printer_job_id, printer_start_time";

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
    pub limit: u32,
    pub offset: u64,
}

fn ts(s: Option<String>) -> rusqlite::Result<Option<Timestamp>> {
    s.map(|s| {
        time::parse(&s).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e.into())
        })
    })
    .transpose()
}

fn conversion(e: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e.into())
}

fn from_row(r: &Row<'_>) -> rusqlite::Result<Job> {
    let info: String = r.get(11)?;
    Ok(Job {
        id: JobId::from_string(r.get(0)?),
        printer_id: PrinterId::new(r.get::<_, String>(1)?).map_err(conversion)?,
        printer_type: r
            .get::<_, String>(2)?
            .parse::<PrinterType>()
            .map_err(conversion)?,
        job_name: r.get(3)?,
        filename: r.get(4)?,
        status: r
            .get::<_, String>(5)?
            .parse::<JobStatus>()
            .map_err(conversion)?,
        progress: r.get(6)?,
        start_time: ts(r.get(7)?)?,
        end_time: ts(r.get(8)?)?,
        estimated_duration: r.get(9)?,
        actual_duration: r.get(10)?,
        customer_info: serde_json::from_str(&info).map_err(|e| conversion(e.to_string()))?,
        notes: r.get(12)?,
        created_at: ts(Some(r.get(13)?))?.unwrap_or_default(),
        updated_at: ts(Some(r.get(14)?))?.unwrap_or_default(),
        printer_job_id: r.get(15)?,
        printer_start_time: ts(r.get(16)?)?,
    })
}

fn values(j: &Job) -> [SqlValue; 17] {
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
        "INSERT INTO jobs ({COLUMNS}) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17)"
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
             printer_start_time=?17 WHERE id=?1",
        )?
        .execute(params_from_iter(values(j)))
        .map_err(|e| open_conflict(e, j))?;
    if n == 0 {
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

/// One page of jobs, newest first, and how many match in all.
pub fn list(conn: &Connection, q: &JobQuery) -> Result<(Vec<Job>, u64), StoreError> {
    let mut clauses: Vec<String> = Vec::new();
    let mut args: Vec<SqlValue> = Vec::new();
    let bind = |v: SqlValue, args: &mut Vec<SqlValue>| {
        args.push(v);
        format!("?{}", args.len())
    };
    if let Some(p) = &q.printer_id {
        clauses.push(format!(
            "printer_id = {}",
            bind(p.clone().into(), &mut args)
        ));
    }
    if !q.statuses.is_empty() {
        let list: Vec<String> = q
            .statuses
            .iter()
            .map(|s| bind(s.as_str().to_owned().into(), &mut args))
            .collect();
        clauses.push(format!("status IN ({})", list.join(",")));
    }
    if let Some(a) = q.auto_created {
        clauses.push(format!(
            "auto_created = {}",
            bind((a as i64).into(), &mut args)
        ));
    }
    if let Some(t) = q.since {
        clauses.push(format!(
            "created_at >= {}",
            bind(time::format(t).into(), &mut args)
        ));
    }
    if let Some(t) = q.until {
        clauses.push(format!(
            "created_at < {}",
            bind(time::format(t).into(), &mut args)
        ));
    }
    if let Some(text) = &q.q {
        let p = bind(like_pattern(text).into(), &mut args);
        clauses.push(format!(
            "(filename LIKE {p} ESCAPE '\\' OR job_name LIKE {p} ESCAPE '\\')"
        ));
    }
    let filter = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    let total: i64 = conn
        .prepare_cached(&format!("SELECT count(*) FROM jobs {filter}"))?
        .query_row(params_from_iter(args.iter()), |r| r.get(0))?;
    let limit = bind(i64::from(q.limit.min(MAX_LIMIT)).into(), &mut args);
    let offset = bind((q.offset.min(i64::MAX as u64) as i64).into(), &mut args);
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM jobs {filter} ORDER BY seq DESC LIMIT {limit} OFFSET {offset}"
    ))?;
    let jobs = stmt
        .query_map(params_from_iter(args.iter()), from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok((jobs, total as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn db() -> Connection {
        let dir = tempfile::tempdir().unwrap();
        let conn = super::super::open_writer(&dir.path().join("t.db")).unwrap();
        std::mem::forget(dir);
        conn
    }

    fn job(printer: &str, file: &str, status: JobStatus, auto: bool) -> Job {
        let now = time::now();
        let info = if auto {
            json!({"auto_created": true})
        } else {
            json!({})
        };
        Job {
            id: JobId::generate(),
            printer_id: PrinterId::new(printer).unwrap(),
            printer_type: PrinterType::Bambu,
            job_name: file.trim_end_matches(".3mf").into(),
            filename: file.into(),
            status,
            progress: 0.0,
            start_time: Some(now),
            end_time: None,
            estimated_duration: None,
            actual_duration: None,
            customer_info: info.as_object().unwrap().clone(),
            notes: None,
            created_at: now,
            updated_at: now,
            printer_job_id: None,
            printer_start_time: None,
        }
    }

    #[test]
    fn round_trips_a_job() {
        let c = db();
        let j = job("p1", "cube.3mf", JobStatus::Running, true);
        insert(&c, &j).unwrap();
        let back = get(&c, j.id.as_str()).unwrap().unwrap();
        assert_eq!(back.id, j.id);
        assert_eq!(back.customer_info, j.customer_info);
        assert_eq!(
            time::format(back.start_time.unwrap()),
            time::format(j.start_time.unwrap())
        );
    }

    #[test]
    fn one_open_job_per_printer() {
        let c = db();
        insert(&c, &job("p1", "a.3mf", JobStatus::Running, true)).unwrap();
        let e = insert(&c, &job("p1", "b.3mf", JobStatus::Paused, true)).unwrap_err();
        assert!(matches!(e, StoreError::Conflict(_)), "{e}");
        insert(&c, &job("p1", "c.3mf", JobStatus::Completed, true)).unwrap();
        insert(&c, &job("p2", "a.3mf", JobStatus::Running, true)).unwrap();
    }

    #[test]
    fn lists_with_filters_newest_first() {
        let c = db();
        for i in 0..10 {
            let st = if i % 2 == 0 {
                JobStatus::Completed
            } else {
                JobStatus::Failed
            };
            insert(
                &c,
                &job(
                    if i < 5 { "p1" } else { "p2" },
                    &format!("f{i}_50%.3mf"),
                    st,
                    i % 3 == 0,
                ),
            )
            .unwrap();
        }
        let q = |f: &dyn Fn(&mut JobQuery)| {
            let mut q = JobQuery {
                limit: 50,
                ..Default::default()
            };
            f(&mut q);
            list(&c, &q).unwrap()
        };
        let (all, n) = q(&|_| {});
        assert_eq!((all.len(), n), (10, 10));
        assert_eq!(all[0].filename, "f9_50%.3mf");
        assert_eq!(q(&|q| q.printer_id = Some("p1".into())).1, 5);
        assert_eq!(q(&|q| q.statuses = vec![JobStatus::Failed]).1, 5);
        assert_eq!(q(&|q| q.auto_created = Some(true)).1, 4);
        assert_eq!(q(&|q| q.auto_created = Some(false)).1, 6);
        assert_eq!(q(&|q| q.q = Some("F3_".into())).1, 1);
        assert_eq!(q(&|q| q.q = Some("_50%".into())).1, 10);
        let (page, n) = q(&|q| {
            q.limit = 3;
            q.offset = 8
        });
        assert_eq!((page.len(), n), (2, 10));
    }
}
