//! Schema versions, applied at start inside one transaction each.
//!
//! `PRAGMA user_version` records the version a database is at. A newer binary applies
//! the missing steps in order; a database from a newer binary than this one is refused
//! rather than misread.

use rusqlite::Connection;

use super::StoreError;

/// Step N brings a database from version N-1 to N.
const MIGRATIONS: &[&str] = &[
    include_str!("../../schema.sql"),
    include_str!("migrations/0002_job_counts.sql"),
    include_str!("migrations/0003_unreadable_times.sql"),
    include_str!("migrations/0004_webhooks.sql"),
    include_str!("migrations/0005_api_keys.sql"),
    include_str!("migrations/0006_end_reason.sql"),
    include_str!("migrations/0007_stats_indexes.sql"),
    include_str!("migrations/0008_stats_rollup.sql"),
];

pub const LATEST_VERSION: i64 = MIGRATIONS.len() as i64;

pub fn apply(conn: &mut Connection) -> Result<(), StoreError> {
    let current: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if current > LATEST_VERSION {
        return Err(StoreError::TooNew {
            found: current,
            supported: LATEST_VERSION,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let version = i as i64 + 1;
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", version)?;
        tx.commit()?;
        tracing::info!(version, "database schema migrated");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applies_once_and_is_idempotent() {
        let mut c = Connection::open_in_memory().unwrap();
        apply(&mut c).unwrap();
        apply(&mut c).unwrap();
        let v: i64 = c
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, LATEST_VERSION);
    }

    #[test]
    fn refuses_a_newer_database() {
        let mut c = Connection::open_in_memory().unwrap();
        c.pragma_update(None, "user_version", 99).unwrap();
        assert!(matches!(apply(&mut c), Err(StoreError::TooNew { .. })));
    }

    #[test]
    fn version_2_counts_the_jobs_already_there() {
        let mut c = Connection::open_in_memory().unwrap();
        c.execute_batch(MIGRATIONS[0]).unwrap();
        c.pragma_update(None, "user_version", 1).unwrap();
        for (i, (printer, status, info)) in [
            ("p1", "completed", r#"{"auto_created":true}"#),
            ("p1", "completed", "{}"),
            ("p2", "running", r#"{"auto_created":true}"#),
            ("p2", "failed", r#"{"auto_created":true}"#),
        ]
        .into_iter()
        .enumerate()
        {
            c.execute(
                "INSERT INTO jobs (id, printer_id, printer_type, job_name, filename, status, \
                 customer_info, created_at, updated_at) VALUES (?1, ?2, 'bambu', 'x', 'x.3mf', \
                 ?3, ?4, '2025-01-01T00:00:00.000Z', '2025-01-01T00:00:00.000Z')",
                rusqlite::params![format!("job_{i}"), printer, status, info],
            )
            .unwrap();
        }
        apply(&mut c).unwrap();
        let n = |sql: &str| -> i64 { c.query_row(sql, [], |r| r.get(0)).unwrap() };
        assert_eq!(n("SELECT sum(n) FROM job_totals"), 4);
        assert_eq!(
            n("SELECT n FROM job_totals WHERE status = 'completed' AND auto_created = 1"),
            1
        );
        assert_eq!(
            n("SELECT sum(n) FROM job_counts WHERE printer_id = 'p2' AND auto_created = 1"),
            2
        );
    }

    #[test]
    fn version_3_nulls_times_no_version_can_read() {
        let mut c = Connection::open_in_memory().unwrap();
        c.execute_batch(MIGRATIONS[0]).unwrap();
        c.execute_batch(MIGRATIONS[1]).unwrap();
        c.pragma_update(None, "user_version", 2).unwrap();
        for (id, start) in [
            ("good", "2025-01-09T14:28:45.000Z"),
            ("year_10000", "+10000-01-01T00:00:00.000Z"),
            ("negative", "-0001-12-31T00:00:00.000Z"),
        ] {
            c.execute(
                "INSERT INTO jobs (id, printer_id, printer_type, job_name, filename, status, \
                 start_time, end_time, printer_start_time, created_at, updated_at) \
                 VALUES (?1, 'p1', 'bambu', 'x', 'x.3mf', 'completed', ?2, ?2, ?2, \
                 '2025-01-01T00:00:00.000Z', '2025-01-01T00:00:00.000Z')",
                rusqlite::params![id, start],
            )
            .unwrap();
        }
        apply(&mut c).unwrap();
        let times = |id: &str| -> [Option<String>; 3] {
            c.query_row(
                "SELECT start_time, end_time, printer_start_time FROM jobs WHERE id = ?1",
                [id],
                |r| Ok([r.get(0)?, r.get(1)?, r.get(2)?]),
            )
            .unwrap()
        };
        let good = Some("2025-01-09T14:28:45.000Z".to_owned());
        assert_eq!(times("good"), [good.clone(), good.clone(), good]);
        assert_eq!(times("year_10000"), [None, None, None]);
        assert_eq!(times("negative"), [None, None, None]);
    }

    #[test]
    fn version_8_sums_the_jobs_already_there() {
        use crate::store::stats::{GroupBy, StatsQuery, scan, stats};
        let at = |t: i64| chrono::DateTime::from_timestamp(t, 0).unwrap();
        let fmt = |t: i64| crate::time::format(at(t));
        // 2026-11-30T00:00:00Z, a Monday.
        let t0: i64 = 1_795_996_800;
        let mut c = Connection::open_in_memory().unwrap();
        for sql in &MIGRATIONS[..7] {
            c.execute_batch(sql).unwrap();
        }
        c.pragma_update(None, "user_version", 7).unwrap();
        let insert = |i: i64, printer: &str, status: &str, start: i64, end: Option<i64>| {
            c.execute(
                "INSERT INTO jobs (id, printer_id, printer_type, job_name, filename, status, \
                 start_time, end_time, actual_duration, created_at, updated_at, end_reason) \
                 VALUES (?1, ?2, 'bambu', 'x', ?3, ?4, ?5, ?6, ?7, ?5, ?5, ?8)",
                rusqlite::params![
                    format!("job_{i}"),
                    printer,
                    format!("f{}.3mf", i % 3),
                    status,
                    fmt(start),
                    end.map(fmt),
                    end.map(|e| e - start),
                    (status == "failed").then_some("nozzle clog"),
                ],
            )
            .unwrap();
        };
        for i in 0..300 {
            let start = t0 + i * 4_567;
            let status = ["completed", "failed", "cancelled", "unknown"][(i % 4) as usize];
            let printer = ["p1", "p2", "p3"][(i % 3) as usize];
            insert(
                i,
                printer,
                status,
                start,
                Some(start + 3_600 + (i % 7) * 20_000),
            );
        }
        insert(300, "p1", "running", t0 + 15 * 86_400, None);
        // Ten thousand days: never summed, read raw.
        insert(
            301,
            "p2",
            "completed",
            t0 - 10_000 * 86_400,
            Some(t0 + 86_400),
        );
        apply(&mut c).unwrap();
        let n = |sql: &str| -> i64 { c.query_row(sql, [], |r| r.get(0)).unwrap() };
        assert_eq!(n("SELECT count(*) FROM stats_raw"), 1);
        assert!(n("SELECT count(*) FROM stats_roll") > 0);
        for (since, until) in [(t0, t0 + 14 * 86_400), (t0 + 3_000, t0 + 9 * 86_400 + 7)] {
            for by in [GroupBy::Printer, GroupBy::Day, GroupBy::Week, GroupBy::File] {
                let q = StatsQuery {
                    since: at(since),
                    until: at(until),
                    printers: vec![],
                    group_by: by,
                };
                let now = at(t0 + 16 * 86_400);
                let mut fast = serde_json::to_value(stats(&c, &q, now).unwrap()).unwrap();
                let mut slow = serde_json::to_value(scan(&c, &q, now).unwrap()).unwrap();
                let (f, s) = (
                    &fast["totals"]["p90_duration_s"],
                    &slow["totals"]["p90_duration_s"],
                );
                let (f, s) = (f.as_f64().unwrap(), s.as_f64().unwrap());
                assert!((f - s).abs() <= s * 0.0111 + 1.0, "{f} {s}");
                for v in [&mut fast, &mut slow] {
                    v["totals"]["p90_duration_s"] = serde_json::Value::Null;
                    for g in v["groups"].as_array_mut().unwrap() {
                        g["p90_duration_s"] = serde_json::Value::Null;
                    }
                }
                assert_eq!(fast, slow, "{q:?}");
            }
        }
    }
}
