//! `[retention] keep_days`: old finished jobs are deleted in small batches, each its own
//! short transaction on the writer, so the job writer never stalls behind a large
//! delete. Open jobs (pending, running, paused) are never deleted, whatever their age.

use rusqlite::{Connection, params};

use super::StoreError;

/// Jobs deleted per transaction. Small enough that one batch holds the writer briefly
/// (the writer handles statuses between batches): about 0.16 s since the statistics
/// triggers of schema 8 take each job's share back (BENCHMARKS.md), a few milliseconds
/// before; large enough that a first sweep of a years-old history finishes in minutes.
pub const BATCH: u32 = 500;

/// Deletes up to `limit` finished jobs that ended (or, with no end time, were last
/// updated) before `before`, an RFC 3339 UTC timestamp of the database's fixed-width
/// form. Returns how many rows went.
pub fn delete_finished_before(
    conn: &Connection,
    before: &str,
    limit: u32,
) -> Result<usize, StoreError> {
    let n = conn.execute(
        "DELETE FROM jobs WHERE seq IN (
             SELECT seq FROM jobs
             WHERE status IN ('completed','failed','cancelled','unknown')
               AND coalesce(end_time, updated_at) < ?1
             ORDER BY seq
             LIMIT ?2)",
        params![before, limit],
    )?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(conn: &Connection, id: &str, status: &str, end: Option<&str>, updated: &str) {
        conn.execute(
            "INSERT INTO jobs (id, printer_id, printer_type, job_name, filename, status,
                               end_time, created_at, updated_at)
             VALUES (?1, ?1, 'bambu', 'n', 'f.3mf', ?2, ?3, ?4, ?4)",
            params![id, status, end, updated],
        )
        .unwrap();
    }

    fn ids(conn: &Connection) -> Vec<String> {
        let mut st = conn.prepare("SELECT id FROM jobs ORDER BY seq").unwrap();
        st.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    #[test]
    fn deletes_only_old_finished_jobs_in_batches() {
        let dir = tempfile::tempdir().unwrap();
        let conn = super::super::open_writer(&dir.path().join("t.db")).unwrap();
        let old = "2020-01-01T00:00:00.000Z";
        let new = "2030-01-01T00:00:00.000Z";
        job(&conn, "old_done", "completed", Some(old), old);
        job(&conn, "old_failed", "failed", Some(old), old);
        job(&conn, "old_unknown_no_end", "unknown", None, old);
        job(&conn, "old_running", "running", None, old);
        job(&conn, "old_pending", "pending", None, old);
        job(&conn, "old_paused", "paused", None, old);
        // Ended recently though created long ago: kept.
        job(&conn, "new_done", "cancelled", Some(new), old);
        let cutoff = "2025-01-01T00:00:00.000Z";
        assert_eq!(delete_finished_before(&conn, cutoff, 2).unwrap(), 2);
        assert_eq!(delete_finished_before(&conn, cutoff, 2).unwrap(), 1);
        assert_eq!(delete_finished_before(&conn, cutoff, 2).unwrap(), 0);
        assert_eq!(
            ids(&conn),
            ["old_running", "old_pending", "old_paused", "new_done"]
        );
    }
}
