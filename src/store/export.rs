//! Exporting the job history (`GET /api/v1/jobs/export`, `printfarmd export`): every
//! job matching the list's filters, newest first, in chunks of `CHUNK_ROWS` walked by
//! `seq` (keyset), so memory stays the same whatever the history's size and no read
//! holds a snapshot open for the whole transfer. Each chunk is a consistent read; a job
//! changed between chunks is exported as its chunk saw it.
//!
//! CSV: a header row and RFC 4180 quoting (the `csv` crate); `customer_info` as its
//! JSON text in one column. NDJSON: one job per line in the API's job shape.

use std::io::Write;

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, params_from_iter};

use super::StoreError;
use super::job_row::from_row;
use super::jobs::{COLUMNS, JobQuery, filter};
use crate::domain::Job;
use crate::time::{self, Timestamp};

/// Jobs read per chunk: about 250 KB of CSV, a few milliseconds of database time, so a
/// chunk never holds the read pool long and the transfer's buffers stay small.
pub const CHUNK_ROWS: u32 = 500;

/// The export formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Csv,
    Ndjson,
}

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "csv" => Some(Format::Csv),
            "ndjson" => Some(Format::Ndjson),
            _ => None,
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Ndjson => "ndjson",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::Ndjson => "application/x-ndjson",
        }
    }
}

/// The CSV columns, in order.
pub const CSV_COLUMNS: [&str; 16] = [
    "id",
    "printer_id",
    "printer_type",
    "job_name",
    "filename",
    "status",
    "progress",
    "start_time",
    "end_time",
    "estimated_duration",
    "actual_duration",
    "end_reason",
    "notes",
    "customer_info",
    "created_at",
    "updated_at",
];

/// The next chunk: up to `n` jobs matching `q` with `seq` below `before` (None: from the
/// newest), newest first, each with its `seq`. `limit`/`offset` of `q` are not used.
pub fn chunk(
    conn: &Connection,
    q: &JobQuery,
    before: Option<i64>,
    n: u32,
) -> Result<Vec<(i64, Job)>, StoreError> {
    let (mut terms, mut binds) = filter(q);
    binds.push(SqlValue::Integer(before.unwrap_or(i64::MAX)));
    terms.push(format!("seq < ?{}", binds.len()));
    binds.push(SqlValue::Integer(i64::from(n)));
    let limit = binds.len();
    // One printer's jobs are walked on its index (printer_id, seq); anything else on
    // the table itself in seq order, the filters checked row by row: each chunk
    // continues where the last stopped, so the whole export reads each row once (a
    // status index would have to sort its matches again for every chunk).
    let index = if q.printer_id.is_some() {
        "INDEXED BY jobs_by_printer"
    } else {
        "NOT INDEXED"
    };
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS}, seq FROM jobs {index} WHERE {} ORDER BY seq DESC LIMIT ?{limit}",
        terms.join(" AND ")
    ))?;
    let rows = stmt.query_map(params_from_iter(binds), |r| Ok((r.get(18)?, from_row(r)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Encodes jobs, with the CSV header row first when `header`.
pub fn encode<'a>(
    format: Format,
    jobs: impl IntoIterator<Item = &'a Job>,
    header: bool,
) -> Vec<u8> {
    let mut out = Vec::new();
    match format {
        Format::Csv => {
            let mut w = csv::Writer::from_writer(&mut out);
            // Writing into a Vec cannot fail; a record of the right width is all csv checks.
            if header {
                let _ = w.write_record(CSV_COLUMNS);
            }
            for j in jobs {
                let _ = w.write_record(csv_record(j));
            }
            let _ = w.flush();
        }
        Format::Ndjson => {
            for j in jobs {
                let _ = serde_json::to_writer(&mut out, j);
                out.push(b'\n');
            }
        }
    }
    out
}

fn csv_record(j: &Job) -> [String; 16] {
    let t = |t: Option<Timestamp>| t.map(time::format).unwrap_or_default();
    let n = |n: Option<i64>| n.map(|n| n.to_string()).unwrap_or_default();
    [
        j.id.to_string(),
        j.printer_id.to_string(),
        j.printer_type.as_str().to_owned(),
        j.job_name.clone(),
        j.filename.clone(),
        j.status.as_str().to_owned(),
        j.progress.to_string(),
        t(j.start_time),
        t(j.end_time),
        n(j.estimated_duration),
        n(j.actual_duration),
        j.end_reason.clone().unwrap_or_default(),
        j.notes.clone().unwrap_or_default(),
        serde_json::Value::Object(j.customer_info.clone()).to_string(),
        time::format(j.created_at),
        time::format(j.updated_at),
    ]
}

/// Writes every job matching `q` to `out` (the command line's export); returns how many.
pub fn export_all(
    conn: &Connection,
    q: &JobQuery,
    format: Format,
    out: &mut impl Write,
) -> Result<u64, std::io::Error> {
    let io = |e: StoreError| std::io::Error::other(e.to_string());
    let (mut before, mut count) = (None, 0u64);
    loop {
        let rows = chunk(conn, q, before, CHUNK_ROWS).map_err(io)?;
        let first = before.is_none();
        if first || !rows.is_empty() {
            out.write_all(&encode(format, rows.iter().map(|(_, j)| j), first))?;
        }
        count += rows.len() as u64;
        match rows.last() {
            Some((seq, _)) if rows.len() == CHUNK_ROWS as usize => before = Some(*seq),
            _ => break,
        }
    }
    out.flush()?;
    Ok(count)
}
