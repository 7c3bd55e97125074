//! The statistics rules on hand-made rows, and the SQL on a real database file.

use super::agg::round;
use super::*;

const H: i64 = 3600;
const D: i64 = 86_400;
/// 2026-11-30T00:00:00Z, a Monday.
const T0: i64 = 1_795_996_800;

fn row(printer: &'static str, status: &str, start: i64, end: Option<i64>) -> Row<'static> {
    Row {
        printer_id: printer,
        filename: "cube.3mf",
        status: STATUSES.iter().position(|s| *s == status).unwrap(),
        start: Some(start),
        end,
        created: Some(start),
        updated: end.or(Some(start)),
        duration: end.map(|e| e - start),
        auto_created: true,
        end_reason: None,
    }
}

/// Ten days from T0, asked at the end of them.
fn window() -> Window {
    Window {
        since: T0,
        until: T0 + 10 * D,
        now: T0 + 10 * D,
    }
}

fn run(by: GroupBy, rows: &[Row], named: usize) -> Stats {
    let mut a = Aggregator::new(window(), by);
    for r in rows {
        a.add(r);
    }
    a.finish(named)
}

fn sample() -> Vec<Row<'static>> {
    let mut failed = row("b", "failed", T0 + 2 * D - H, Some(T0 + 2 * D + H));
    failed.end_reason = Some("Nozzle temperature malfunction (0300_8008)");
    failed.auto_created = false;
    let mut cancelled = row("b", "cancelled", T0 + 3 * D, Some(T0 + 3 * D + H));
    cancelled.end_reason = Some("cancelled by user (0300_400C)");
    let mut pending = row("a", "pending", T0 + 5 * D, None);
    pending.start = None;
    vec![
        row("a", "completed", T0 + D + 10 * H, Some(T0 + D + 12 * H)),
        failed,
        cancelled,
        pending,
        // Open since two hours before the window's end: counted to now.
        row("a", "running", T0 + 10 * D - 2 * H, None),
        // Started before the window, ended an hour into it: one hour counts.
        row("c", "completed", T0 - 3 * H, Some(T0 + H)),
        // Outside the window.
        row("a", "completed", T0 - 5 * D, Some(T0 - 4 * D)),
        row("a", "completed", T0 + 11 * D, Some(T0 + 11 * D + H)),
    ]
}

#[test]
fn totals_count_overlapping_jobs_and_print_time_inside_the_window() {
    let s = run(GroupBy::Printer, &sample(), 0);
    let t = &s.totals;
    assert_eq!(t.jobs, 6);
    assert_eq!(
        t.by_status,
        ByStatus {
            completed: 2,
            failed: 1,
            cancelled: 1,
            running: 1,
            pending: 1,
            ..Default::default()
        }
    );
    assert_eq!(t.success_rate, Some(0.5));
    // 2 h + 2 h + 1 h + 2 h (open) + 1 h (clipped) = 8 h.
    assert_eq!(t.print_hours, 8.0);
    // Three printers with jobs, ten days each.
    assert_eq!(
        t.utilisation,
        Some(round(8.0 * H as f64 / (30 * D) as f64, 6))
    );
    // Ended jobs' durations: 2 h, 2 h, 1 h, 4 h (the clipped one's whole duration).
    assert_eq!(t.mean_duration_s, Some((9 * H / 4) as u64));
    assert_eq!(t.p90_duration_s, Some(4 * H as u64));
    assert_eq!((t.auto_created, t.manual), (5, 1));
    assert_eq!(
        t.end_reasons,
        vec![
            ReasonCount {
                reason: "Nozzle temperature malfunction (0300_8008)".into(),
                count: 1
            },
            ReasonCount {
                reason: "cancelled by user (0300_400C)".into(),
                count: 1
            },
        ]
    );
    let keys: Vec<&str> = s.groups.iter().map(|g| g.key.as_str()).collect();
    assert_eq!(keys, ["a", "b", "c"]);
    let b = &s.groups[1];
    assert_eq!((b.jobs, b.print_hours), (2, 3.0));
    assert_eq!(
        b.utilisation,
        Some(round(3.0 * H as f64 / (10 * D) as f64, 6))
    );
    assert_eq!(b.success_rate, Some(0.0));
}

#[test]
fn named_printers_are_the_farm_even_without_jobs() {
    let s = run(GroupBy::File, &sample(), 5);
    assert_eq!(
        s.totals.utilisation,
        Some(round(8.0 * H as f64 / (50 * D) as f64, 6))
    );
    assert_eq!(s.groups.len(), 1);
    assert_eq!(s.groups[0].key, "cube.3mf");
}

#[test]
fn days_split_a_print_across_midnight_and_list_empty_days() {
    let s = run(GroupBy::Day, &sample(), 0);
    assert_eq!(s.groups.len(), 10);
    assert_eq!(s.groups[0].key, "2026-11-30");
    assert_eq!(s.groups[9].key, "2026-12-09");
    // The failed print ran 23:00–01:00: an hour on each day, counted on both.
    assert_eq!((s.groups[1].jobs, s.groups[1].print_hours), (2, 3.0));
    assert_eq!((s.groups[2].jobs, s.groups[2].print_hours), (1, 1.0));
    assert_eq!(s.groups[4].jobs, 0);
    assert_eq!(s.groups[4].success_rate, None);
    assert_eq!(s.groups[4].mean_duration_s, None);
    assert_eq!(
        s.groups[0].utilisation,
        Some(round(H as f64 / (3 * D) as f64, 6))
    );
}

#[test]
fn weeks_are_iso_weeks_clipped_to_the_window() {
    let s = run(GroupBy::Week, &sample(), 0);
    let keys: Vec<&str> = s.groups.iter().map(|g| g.key.as_str()).collect();
    assert_eq!(keys, ["2026-W49", "2026-W50"]);
    assert_eq!(s.groups[0].jobs, 5);
    assert_eq!(s.groups[1].jobs, 2);
    // Week 50 is three days of the window.
    assert_eq!(
        s.groups[1].utilisation,
        Some(round(2.0 * H as f64 / (3 * 3 * D) as f64, 6))
    );
}

#[test]
fn unreadable_times_and_empty_windows_do_not_fail() {
    let mut bad = row("a", "completed", 0, None);
    bad.start = None;
    bad.created = None;
    let s = run(GroupBy::Printer, &[bad], 0);
    assert_eq!(s.totals.jobs, 0);
    assert_eq!(s.totals.utilisation, None);
    assert!(s.groups.is_empty());
}

#[test]
fn p90_is_the_nearest_rank() {
    let rows: Vec<Row> = (1..=10)
        .map(|i| row("a", "completed", T0 + i * H, Some(T0 + i * H + i * 60)))
        .collect();
    let s = run(GroupBy::Printer, &rows, 0);
    assert_eq!(s.totals.p90_duration_s, Some(540));
    assert_eq!(s.totals.mean_duration_s, Some(330));
}

mod sql {
    use super::*;
    use crate::domain::{JobId, JobStatus, PrinterId, PrinterType};
    use crate::jobs::Job;
    use chrono::DateTime;

    fn at(t: i64) -> Timestamp {
        DateTime::from_timestamp(t, 0).unwrap()
    }

    fn job(printer: &str, status: JobStatus, start: i64, end: Option<i64>) -> Job {
        Job {
            id: JobId::generate(),
            printer_id: PrinterId::new(printer).unwrap(),
            printer_type: PrinterType::Bambu,
            job_name: "cube".into(),
            filename: "cube.3mf".into(),
            status,
            progress: 0.0,
            start_time: Some(at(start)),
            end_time: end.map(at),
            estimated_duration: None,
            actual_duration: end.map(|e| e - start),
            customer_info: serde_json::Map::new(),
            notes: None,
            end_reason: None,
            created_at: at(start),
            updated_at: at(end.unwrap_or(start)),
            printer_job_id: None,
            printer_start_time: None,
        }
    }

    fn db() -> Connection {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::store::open_writer(&dir.path().join("t.db")).unwrap();
        std::mem::forget(dir);
        conn
    }

    fn q(printers: &[&str]) -> StatsQuery {
        StatsQuery {
            since: at(T0),
            until: at(T0 + 10 * D),
            printers: printers.iter().map(|p| p.to_string()).collect(),
            group_by: GroupBy::Printer,
        }
    }

    #[test]
    fn reads_the_window_through_its_indexes() {
        let c = db();
        let insert = |j: Job| crate::store::jobs::insert(&c, &j).unwrap();
        insert(job("a", JobStatus::Completed, T0 + H, Some(T0 + 3 * H)));
        insert(job("a", JobStatus::Running, T0 + 10 * D - H, None));
        insert(job("b", JobStatus::Failed, T0 - 2 * H, Some(T0 + H)));
        insert(job("b", JobStatus::Completed, T0 - 5 * D, Some(T0 - 4 * D)));
        insert(job(
            "c",
            JobStatus::Completed,
            T0 + 12 * D,
            Some(T0 + 13 * D),
        ));
        let s = stats(&c, &q(&[]), at(T0 + 10 * D)).unwrap();
        assert_eq!(s.totals.jobs, 3);
        assert_eq!(s.totals.print_hours, 4.0);
        assert_eq!(s.since, "2026-11-30T00:00:00.000Z");
        let only_b = stats(&c, &q(&["b", "zz"]), at(T0 + 10 * D)).unwrap();
        assert_eq!(only_b.totals.jobs, 1);
        assert_eq!(only_b.groups.len(), 1);
        // Two printers named: the farm is two printers, one without jobs.
        assert_eq!(
            only_b.totals.utilisation,
            Some(round(H as f64 / (20 * D) as f64, 6))
        );
        for printers in [&[][..], &["a", "b"][..]] {
            let plan: Vec<String> = c
                .prepare(&format!("EXPLAIN QUERY PLAN {}", sql(&q(printers))))
                .unwrap()
                .query_map(
                    params_from_iter(vec![SqlValue::Null; 2 + printers.len()]),
                    |r| r.get::<_, String>(3),
                )
                .unwrap()
                .map(Result::unwrap)
                .collect();
            assert!(
                plan.iter().all(|p| !p.starts_with("SCAN jobs")),
                "a full scan: {plan:?}"
            );
            assert!(
                plan.iter().any(|p| p.contains("USING INDEX jobs_by")),
                "{plan:?}"
            );
        }
    }
}
