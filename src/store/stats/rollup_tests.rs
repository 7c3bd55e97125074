//! The rollup (`stats`) against the scan (`scan`, the reference) on random jobs written
//! through the store and through raw SQL, changed and deleted both ways, for random
//! windows (on and off midnight), every grouping, with and without named printers:
//! equal, but for the p90 (within the histogram's bucket, about 1.1 %).

use proptest::prelude::*;
use rusqlite::{Connection, params};
use serde_json::Value;

use super::*;
use crate::domain::{JobId, JobStatus, PrinterId, PrinterType};
use crate::jobs::Job;

const D: i64 = 86_400;
/// 2026-11-30T00:00:00Z, a Monday.
const T0: i64 = 1_795_996_800;
const PRINTERS: [&str; 3] = ["a", "b", "c"];
const FILES: [&str; 3] = ["x.3mf", "y.3mf", "z.3mf"];
const REASONS: [&str; 3] = [
    "nozzle clog",
    "cancelled by user",
    "cancelled from printfarmd",
];

fn at(t: i64) -> Timestamp {
    chrono::DateTime::from_timestamp(t, 0).unwrap()
}

#[derive(Clone, Debug)]
struct J {
    printer: usize,
    file: usize,
    status: JobStatus,
    start: i64,
    len: i64,
    started: bool,
    has_end: bool,
    duration: Option<i64>,
    reason: Option<usize>,
    auto: bool,
    raw_sql: bool,
}

fn status() -> impl Strategy<Value = JobStatus> {
    prop::sample::select(vec![
        JobStatus::Completed,
        JobStatus::Completed,
        JobStatus::Failed,
        JobStatus::Cancelled,
        JobStatus::Unknown,
        JobStatus::Running,
        JobStatus::Paused,
        JobStatus::Pending,
    ])
}

fn job() -> impl Strategy<Value = J> {
    // Starts: anywhere in 24 days, or on / just around a midnight.
    let start = prop_oneof![
        0..24 * D,
        (0..24i64, -2..3i64).prop_map(|(d, s)| (d * D + s).max(0)),
    ];
    // Lengths: short, across a few midnights, up to 12 days (never rolled past 7).
    let len = prop_oneof![4 => 0..8 * 3600i64, 2 => 0..3 * D, 1 => 0..12 * D, 1 => Just(D)];
    (
        (0..3usize, 0..3usize, status(), start, len),
        (
            prop::bool::weighted(0.9),
            prop::bool::weighted(0.9),
            prop_oneof![Just(None), Just(Some(-1)), (0..40_000i64).prop_map(Some)],
            prop::option::of(0..3usize),
            any::<bool>(),
            any::<bool>(),
        ),
    )
        .prop_map(
            |((printer, file, status, start, len), (started, has_end, dur, reason, auto, raw))| J {
                printer,
                file,
                status,
                start: T0 - 3 * D + start,
                len,
                started,
                has_end,
                // -1: the actual duration is the span.
                duration: dur.map(|d| if d < 0 { len } else { d }),
                reason,
                auto,
                raw_sql: raw,
            },
        )
}

fn to_job(j: &J) -> Job {
    let open = matches!(
        j.status,
        JobStatus::Running | JobStatus::Paused | JobStatus::Pending
    );
    let mut info = serde_json::Map::new();
    if j.auto {
        info.insert("auto_created".into(), Value::Bool(true));
    }
    Job {
        id: JobId::generate(),
        printer_id: PrinterId::new(PRINTERS[j.printer]).unwrap(),
        printer_type: PrinterType::Bambu,
        job_name: "cube".into(),
        filename: FILES[j.file].into(),
        status: j.status,
        progress: 0.0,
        start_time: j.started.then(|| at(j.start)),
        end_time: (!open && j.has_end).then(|| at(j.start + j.len)),
        estimated_duration: None,
        actual_duration: j.duration,
        customer_info: info,
        notes: None,
        end_reason: j.reason.map(|r| REASONS[r].to_owned()),
        created_at: at(j.start),
        updated_at: at(j.start + j.len),
        printer_job_id: None,
        printer_start_time: None,
    }
}

fn write(c: &Connection, j: &J) -> Option<Job> {
    let job = to_job(j);
    if j.raw_sql {
        let t = |x: Option<Timestamp>| x.map(time::format);
        c.execute(
            "INSERT INTO jobs (id, printer_id, printer_type, job_name, filename, status, \
             start_time, end_time, actual_duration, customer_info, created_at, updated_at, \
             end_reason) VALUES (?1, ?2, 'bambu', 'cube', ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                job.id.as_str(),
                job.printer_id.as_str(),
                job.filename,
                job.status.as_str(),
                t(job.start_time),
                t(job.end_time),
                job.actual_duration,
                serde_json::to_string(&job.customer_info).unwrap(),
                time::format(job.created_at),
                time::format(job.updated_at),
                job.end_reason,
            ],
        )
        .ok()?;
    } else {
        crate::store::jobs::insert(c, &job).ok()?;
    }
    Some(job)
}

/// The response with every p90 taken out, after checking it against the reference's.
fn without_p90(mut v: Value, reference: &Value) -> Value {
    let check = |g: &mut Value, r: &Value| {
        let (a, b) = (g["p90_duration_s"].as_f64(), r["p90_duration_s"].as_f64());
        match (a, b) {
            (Some(a), Some(b)) => assert!((a - b).abs() <= b * 0.0111 + 1.0, "p90 {a} vs {b}"),
            _ => assert_eq!(a, b, "p90 of {}", g["key"]),
        }
        g["p90_duration_s"] = Value::Null;
    };
    check(&mut v["totals"], &reference["totals"]);
    let n = v["groups"].as_array().map_or(0, Vec::len);
    for i in 0..n {
        let r = reference["groups"].get(i).cloned().unwrap_or(Value::Null);
        check(&mut v["groups"][i], &r);
    }
    v
}

fn compare(c: &Connection, q: &StatsQuery, now: i64) {
    let fast = serde_json::to_value(stats(c, q, at(now)).unwrap()).unwrap();
    let slow = serde_json::to_value(scan(c, q, at(now)).unwrap()).unwrap();
    let fast = without_p90(fast, &slow);
    let slow = without_p90(slow.clone(), &slow);
    assert_eq!(fast, slow, "{q:?} now {now}");
}

fn db() -> Connection {
    let mut c = Connection::open_in_memory().unwrap();
    crate::store::migrations::apply(&mut c).unwrap();
    c
}

#[derive(Clone, Debug)]
enum Change {
    /// Ends job i (store update): completed or failed, `len` seconds after its start.
    End(usize, bool, i64),
    /// Moves job i's end time by SQL.
    SqlEnd(usize, i64),
    Delete(usize, bool),
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        (0..40usize, any::<bool>(), 0..4 * D).prop_map(|(i, f, l)| Change::End(i, f, l)),
        (0..40usize, -D..D).prop_map(|(i, d)| Change::SqlEnd(i, d)),
        (0..40usize, any::<bool>()).prop_map(|(i, s)| Change::Delete(i, s)),
    ]
}

fn apply(c: &Connection, jobs: &mut [Option<Job>], ch: &Change) {
    let n = jobs.len();
    if n == 0 {
        return;
    }
    match ch {
        Change::End(i, failed, len) => {
            if let Some(j) = jobs[i % n].as_mut() {
                j.status = if *failed {
                    JobStatus::Failed
                } else {
                    JobStatus::Completed
                };
                let start = j.start_time.unwrap_or(j.created_at).timestamp();
                j.end_time = Some(at(start + len));
                j.actual_duration = Some(*len);
                let _ = crate::store::jobs::update(c, j);
            }
        }
        Change::SqlEnd(i, d) => {
            if let Some(j) = jobs[i % n].as_ref() {
                let _ = c.execute(
                    "UPDATE jobs SET end_time = strftime('%Y-%m-%dT%H:%M:%fZ', \
                     max(unixepoch(end_time) + ?2, unixepoch(coalesce(start_time, created_at))), \
                     'unixepoch') WHERE id = ?1 AND end_time IS NOT NULL",
                    params![j.id.as_str(), d],
                );
            }
        }
        Change::Delete(i, by_sql) => {
            if let Some(j) = jobs[i % n].take() {
                if *by_sql {
                    c.execute("DELETE FROM jobs WHERE id = ?1", [j.id.as_str()])
                        .unwrap();
                } else {
                    crate::store::jobs::delete(c, j.id.as_str()).unwrap();
                }
            }
        }
    }
}

fn window() -> impl Strategy<Value = (i64, i64, i64)> {
    let edge = prop_oneof![
        (0..20i64).prop_map(|d| d * D),
        0..20 * D,
        (0..20i64, -1..2i64).prop_map(|(d, s)| d * D + s)
    ];
    let len = prop_oneof![
        1..3 * 3600i64,
        1..3 * D,
        (1..17i64).prop_map(|d| d * D),
        1..17 * D,
        // Long enough to hold aligned 64-day blocks.
        20 * D..150 * D
    ];
    (edge, len, 0..24 * D).prop_map(|(s, l, now)| (T0 + s - 2 * D, T0 + s - 2 * D + l, T0 + now))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn rollup_answers_as_the_scan(
        specs in prop::collection::vec(job(), 0..40),
        changes in prop::collection::vec(change(), 0..12),
        windows in prop::collection::vec(window(), 3),
        named in prop::sample::select(vec![vec![], vec!["a"], vec!["a", "c", "zz"]]),
    ) {
        let c = db();
        let mut jobs: Vec<Option<Job>> = specs.iter().map(|j| write(&c, j)).collect();
        for ch in &changes {
            apply(&c, &mut jobs, ch);
        }
        for (since, until, now) in windows {
            for by in [GroupBy::Printer, GroupBy::Day, GroupBy::Week, GroupBy::File] {
                let q = StatsQuery {
                    since: at(since),
                    until: at(until),
                    printers: named.iter().map(|p| p.to_string()).collect(),
                    group_by: by,
                };
                compare(&c, &q, now);
            }
        }
    }
}

#[test]
fn odd_stored_rows_are_read_raw_and_panic_nothing() {
    let c = db();
    type Odd = (
        &'static str,
        &'static str,
        Option<&'static str>,
        Option<&'static str>,
        &'static str,
    );
    let rows: [Odd; 8] = [
        // (status, duration SQL, start, end, printer SQL)
        (
            "completed",
            "9000000000000000000",
            Some("2026-12-01T10:00:00.000Z"),
            Some("2026-12-01T11:00:00.000Z"),
            "'a'",
        ),
        (
            "completed",
            "NULL",
            Some("1960-01-01T00:00:00.000Z"),
            Some("2026-12-02T00:00:00.000Z"),
            "'a'",
        ),
        (
            "failed",
            "'abc'",
            Some("2026-12-01T10:00:00.000Z"),
            Some("2026-12-01T12:00:00.000Z"),
            "'b'",
        ),
        (
            "completed",
            "1.5",
            Some("2026-12-01 10:00:00"),
            Some("2026-12-01 11:00:00"),
            "'b'",
        ),
        (
            "completed",
            "-7",
            Some("2026-12-03T10:00:00.000Z"),
            Some("2026-12-01T10:00:00.000Z"),
            "42",
        ),
        (
            "unknown",
            "NULL",
            Some("0001-01-01T00:00:00.000Z"),
            Some("9999-12-31T23:59:59.999Z"),
            "'c'",
        ),
        (
            "cancelled",
            "NULL",
            None,
            Some("2026-12-02T00:00:00.000Z"),
            "'c'",
        ),
        (
            "completed",
            "NULL",
            Some("2026-12-01T00:00:00.000Z"),
            Some("2026-12-20T00:00:00.000Z"),
            "'c'",
        ),
    ];
    for (i, (status, dur, start, end, printer)) in rows.iter().enumerate() {
        c.execute(
            &format!(
                "INSERT INTO jobs (id, printer_id, printer_type, job_name, filename, status, \
                 start_time, end_time, actual_duration, created_at, updated_at) VALUES \
                 (?1, {printer}, 'bambu', 'x', 'x.3mf', ?2, ?3, ?4, {dur}, \
                 '2026-12-01T00:00:00.000Z', '2026-12-01T00:00:00.000Z')"
            ),
            params![format!("job_{i}"), status, start, end],
        )
        .unwrap();
    }
    let n = |sql: &str| -> i64 { c.query_row(sql, [], |r| r.get(0)).unwrap() };
    // Summed: the absurd duration (counted as u32::MAX seconds, as the scan does), the
    // end before its start (ends at its start), the integer printer id (stored as text),
    // the cancelled one never started (created 12-01, ended the next midnight): days
    // 12-01 to 12-03. Read raw: a start before 1970, a text duration, times in another
    // format, 10,000 years, 19 days.
    assert_eq!(n("SELECT count(*) FROM stats_raw"), 5);
    assert_eq!(
        n("SELECT count(*) FROM stats_roll WHERE kind = 3 AND scope = 0"),
        3
    );
    for (since, until) in [(T0, T0 + 30 * D), (T0 + 77, T0 + 5 * D - 3), (0, 366 * D)] {
        for by in [GroupBy::Printer, GroupBy::Day, GroupBy::Week, GroupBy::File] {
            let q = StatsQuery {
                since: at(since),
                until: at(until),
                printers: vec![],
                group_by: by,
            };
            stats(&c, &q, at(T0 + 40 * D)).unwrap();
            scan(&c, &q, at(T0 + 40 * D)).unwrap();
        }
    }
    // Deleting them takes every share back.
    c.execute("DELETE FROM jobs", []).unwrap();
    assert_eq!(
        n("SELECT count(*) FROM stats_roll")
            + n("SELECT count(*) FROM stats_raw")
            + n("SELECT count(*) FROM job_crossings"),
        0
    );
}
