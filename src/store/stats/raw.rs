//! Jobs read raw for the rollup path (`roll.rs`): `jobs` rows, and whether the sums
//! hold them (with their start and end days).

use rusqlite::Connection;
use rusqlite::types::ValueRef;

use super::agg::{DAY, Row, STATUSES};
use super::span::Span;
use super::{StoreError, int, text};

/// A job read from `jobs`, with how the sums see it.
pub(super) struct Raw {
    pub seq: i64,
    pub printer: String,
    pub filename: String,
    pub status: usize,
    pub times: [Option<i64>; 5],
    pub auto: bool,
    pub reason: Option<String>,
    /// Rolled (`stats_jobs.ok`): its start and end days.
    pub rolled: Option<(i64, i64)>,
}

impl Raw {
    pub fn row(&self) -> Row<'_> {
        let [start, end, created, updated, duration] = self.times;
        Row {
            printer_id: &self.printer,
            filename: &self.filename,
            status: self.status,
            start,
            end,
            created,
            updated,
            duration,
            auto_created: self.auto,
            end_reason: self.reason.as_deref(),
        }
    }
}

/// A job is summed (`stats_jobs.ok`) exactly when it has an end time and is not in
/// `stats_raw` (the triggers list there every other job with one): one key probe
/// instead of the view's arithmetic. Its days then follow from its span.
const RAW: &str = "SELECT j.printer_id, j.filename, j.status, unixepoch(j.start_time), \
    unixepoch(j.end_time), unixepoch(j.created_at), unixepoch(j.updated_at), \
    j.actual_duration, j.auto_created, j.end_reason, j.seq, \
    j.end_time IS NOT NULL AND NOT EXISTS (SELECT 1 FROM stats_raw r WHERE r.seq = j.seq) \
    FROM jobs j WHERE ";

/// The jobs matching `filter` (on `jobs j`), with how the sums see them.
pub(super) fn fetch(
    conn: &Connection,
    filter: &str,
    p: impl rusqlite::Params,
) -> Result<Vec<Raw>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!("{RAW}{filter}"))?;
    let mut rows = stmt.query(p)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        // A status this version does not know (a newer version's row) is left out.
        let status_text = text(r.get_ref(2)?);
        let Some(status) = STATUSES.iter().position(|s| *s == status_text) else {
            continue;
        };
        let reason = match r.get_ref(9)? {
            ValueRef::Text(t) => std::str::from_utf8(t).ok().map(str::to_owned),
            _ => None,
        };
        let mut raw = Raw {
            seq: r.get(10)?,
            printer: text(r.get_ref(0)?).to_owned(),
            filename: text(r.get_ref(1)?).to_owned(),
            status,
            times: [3, 4, 5, 6, 7].map(|i| r.get_ref(i).ok().and_then(int)),
            auto: int(r.get_ref(8)?) == Some(1),
            reason,
            rolled: None,
        };
        if int(r.get_ref(11)?) == Some(1) {
            // Ended, so `now` plays no part.
            raw.rolled =
                Span::of(&raw.row(), 0).map(|s| (s.start.div_euclid(DAY), s.end.div_euclid(DAY)));
        }
        out.push(raw);
    }
    Ok(out)
}
