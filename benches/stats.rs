//! `GET /api/v1/stats` over 1,000,000 jobs (issue 17): `store::stats::stats`, the
//! handler's whole database and arithmetic part, on a read-only connection opened as
//! the API's pool opens it, for a one-year window in each grouping (`printer`, `day`,
//! `week`, `file`), farm-wide and for one printer. Target: p99 ≤ 50 ms.
//!
//! The database: 500 printers printing back to back for 400 days (2,500 jobs a day,
//! 0.5–8 h each; 86 % completed, 7 % failed with one of 12 reasons, 5 % cancelled, 2 %
//! unknown), plus the open job of every printer (so the 365-day window holds about
//! 910,000 jobs); built once at schema version 7 in one transaction with one prepared
//! INSERT (about 25 s), then opened with `open_writer`, which migrates it once (the
//! backfill of migration 8's sums; its time is printed), and cached as
//! `target/tmp/printfarmd-bench-stats-1m-g<N>.db`; delete it to rebuild. The window is
//! the last 365 days of it, asked "now" = its end. `printfarmd export` measures the
//! export's memory on the same file (BENCHMARKS.md).
//!
//! `latency/write/*` first: what the sums' triggers add to a write (an ended job
//! inserted, a running job ended), with and without them in the same run. With
//! `PRINTFARMD_BENCH_SCAN=1`, each case also runs the reference scan (`stats::scan`, every
//! job of the window read) three times and says whether the answers agree.
//!
//! Run: `cargo bench --bench stats -- --warm-up-time 1 --measurement-time 5`

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Duration, TimeZone, Utc};
use criterion::Criterion;
use printfarmd::store::{self, stats};
use printfarmd::time;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rusqlite::params;

const JOBS: u64 = 1_000_000;
const PRINTERS: u64 = 500;
const DAYS: i64 = 400;
/// Bump when the generator changes, so a stale cached database is not reused.
const GENERATION: u32 = 3;
/// Individually timed questions per grouping, for the p99.
const SAMPLES: usize = 40;

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap()
}

fn end() -> DateTime<Utc> {
    start() + Duration::days(DAYS)
}

fn db() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let path = dir.join(format!("printfarmd-bench-stats-1m-g{GENERATION}.db"));
    if !path.exists() {
        build(&path, dir);
    }
    // Built at schema version 7: the first open migrates it (the one-time backfill of
    // the sums, migration 8), as a daemon upgraded on a big database does.
    let t = Instant::now();
    drop(store::open_writer(&path).unwrap());
    println!("opened (migrated once) in {:.1?}", t.elapsed());
    path
}

/// Schema versions 1-7 (src/store/migrations.rs).
const V7: [&str; 7] = [
    include_str!("../schema.sql"),
    include_str!("../src/store/migrations/0002_job_counts.sql"),
    include_str!("../src/store/migrations/0003_unreadable_times.sql"),
    include_str!("../src/store/migrations/0004_webhooks.sql"),
    include_str!("../src/store/migrations/0005_api_keys.sql"),
    include_str!("../src/store/migrations/0006_end_reason.sql"),
    include_str!("../src/store/migrations/0007_stats_indexes.sql"),
];

const REASONS: [&str; 12] = [
    "Nozzle temperature malfunction (0300_8008)",
    "Heatbed temperature malfunction (0300_8009)",
    "The nozzle is clogged (0300_4006)",
    "AMS filament ran out (0700_8011)",
    "Spaghetti defects were detected by the AI Print Monitoring (0300_8003)",
    "Auto Bed Leveling failed (0300_4002)",
    "printer error 0300_4099",
    "the printer reports ERROR",
    "Thermal Runaway",
    "Move out of range: 230.000 0.000 0.500 [0.000]",
    "The extrusion motor is overloaded (0300_801E)",
    "Homing XY axis failed (0300_4009)",
];

fn build(path: &Path, dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let partial = dir.join("printfarmd-bench-stats-1m.partial.db");
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", partial.display()));
    }
    println!("building {JOBS} jobs in {} (once)", path.display());
    let t = Instant::now();
    // Schema version 7 (the version before the sums), so the first open measures the
    // migration of a million jobs.
    let mut conn = rusqlite::Connection::open(&partial).unwrap();
    for sql in V7 {
        conn.execute_batch(sql).unwrap();
    }
    conn.pragma_update(None, "user_version", 7).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "synchronous", "OFF").unwrap();
    conn.pragma_update(None, "cache_size", -262_144).unwrap();
    let mut rng = StdRng::seed_from_u64(17);
    let tx = conn.transaction().unwrap();
    {
        let mut ins = tx
            .prepare(
                "INSERT INTO jobs (id, printer_id, printer_type, job_name, filename, status, \
                 progress, start_time, end_time, actual_duration, customer_info, created_at, \
                 updated_at, end_reason) VALUES (?1,?2,'bambu',?3,?4,?5,?6,?7,?8,?9,?10,?7,coalesce(?8,?7),?11)",
            )
            .unwrap();
        // Each printer prints back to back from the start, jobs of 1–8 h with a gap of up
        // to 36 min; 2,000 of them a printer fill the 400 days.
        let mut next = vec![start(); PRINTERS as usize];
        for i in 0..JOBS + PRINTERS {
            let p = (i % PRINTERS) as usize;
            let open = i >= JOBS;
            let begin = next[p] + Duration::seconds(rng.random_range(0..2160));
            let secs: i64 = rng.random_range(3600..8 * 3600);
            let finish = begin + Duration::seconds(secs);
            next[p] = finish;
            let roll = rng.random_range(0..100);
            let (status, reason) = match roll {
                _ if open => ("running", None),
                0..86 => ("completed", None),
                86..93 => ("failed", Some(REASONS[rng.random_range(0..REASONS.len())])),
                93..98 => ("cancelled", Some("cancelled by user (0300_400C)")),
                _ => ("unknown", None),
            };
            let file = format!("part_{:03}.3mf", rng.random_range(0..800));
            let info = if rng.random_bool(0.9) {
                r#"{"auto_created":true}"#
            } else {
                "{}"
            };
            ins.execute(params![
                format!("job_{i:08}"),
                format!("printer_{p:03}"),
                file.trim_end_matches(".3mf"),
                file,
                status,
                if open { 50.0 } else { 100.0 },
                time::format(begin),
                (!open).then(|| time::format(finish)),
                (!open).then_some(secs),
                info,
                reason,
            ])
            .unwrap();
        }
    }
    tx.commit().unwrap();
    conn.pragma_update(None, "wal_checkpoint", "TRUNCATE")
        .unwrap();
    drop(conn);
    std::fs::rename(&partial, path).unwrap();
    println!("built in {:.1?}", t.elapsed());
}

fn question(group_by: stats::GroupBy, printers: &[&str]) -> stats::StatsQuery {
    stats::StatsQuery {
        since: end() - Duration::days(365),
        until: end(),
        printers: printers.iter().map(|p| p.to_string()).collect(),
        group_by,
    }
}

fn cases() -> Vec<(String, stats::StatsQuery)> {
    use stats::GroupBy::*;
    let mut v = Vec::new();
    for by in [Printer, Day, Week, File] {
        v.push((format!("year/{}", by.as_str()), question(by, &[])));
    }
    v.push((
        "year/day/one_printer".into(),
        question(Day, &["printer_042"]),
    ));
    // Twenty printers named: their sums are read one printer at a time.
    let twenty: Vec<String> = (0..20).map(|i| format!("printer_{:03}", i * 25)).collect();
    let twenty: Vec<&str> = twenty.iter().map(String::as_str).collect();
    for by in [Printer, Day] {
        v.push((
            format!("year/{}/20_printers", by.as_str()),
            question(by, &twenty),
        ));
    }
    // Off midnight at both ends: two partial days read raw.
    for by in [Printer, Day] {
        let mut q = question(by, &[]);
        q.since -= Duration::seconds(12 * 3600 + 34 * 60);
        q.until -= Duration::seconds(12 * 3600 + 34 * 60);
        v.push((format!("year/{}/off_midnight", by.as_str()), q));
    }
    v
}

/// The benchmark name filter of the command line (the first argument that is neither
/// a flag nor a flag's value).
fn name_filter() -> Option<String> {
    const TAKES_VALUE: &[&str] = &["--warm-up-time", "--measurement-time", "--sample-size"];
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if TAKES_VALUE.contains(&a.as_str()) {
            args.next();
        } else if !a.starts_with('-') {
            return Some(a);
        }
    }
    None
}

/// The p90s of an answer (totals first), taken out of it.
fn take_p90s(v: &mut serde_json::Value) -> Vec<Option<f64>> {
    let mut out = vec![v["totals"]["p90_duration_s"].take().as_f64()];
    if let Some(groups) = v["groups"].as_array_mut() {
        out.extend(
            groups
                .iter_mut()
                .map(|g| g["p90_duration_s"].take().as_f64()),
        );
    }
    out
}

/// With PRINTFARMD_BENCH_SCAN set: the reference scan (every job of the window read),
/// timed three times, and its answer compared with the sums' (p90s apart).
fn scan_too(conn: &rusqlite::Connection, name: &str, q: &stats::StatsQuery, fast: stats::Stats) {
    let mut times: Vec<StdDuration> = (0..3)
        .map(|_| {
            let t = Instant::now();
            black_box(stats::scan(conn, q, end()).unwrap());
            t.elapsed()
        })
        .collect();
    times.sort();
    let mut slow = serde_json::to_value(stats::scan(conn, q, end()).unwrap()).unwrap();
    let mut fast = serde_json::to_value(fast).unwrap();
    let (pf, ps) = (take_p90s(&mut fast), take_p90s(&mut slow));
    let worst = pf
        .iter()
        .zip(&ps)
        .filter_map(|(a, b)| Some((a.as_ref()? - b.as_ref()?).abs() / b.as_ref()?.max(1.0)))
        .fold(0.0f64, f64::max);
    let same_p90_presence = pf.iter().zip(&ps).all(|(a, b)| a.is_some() == b.is_some());
    println!(
        "scan/stats_1m/{name:<24} n=3 p50 {:>9.1?}  max {:>9.1?}  same answer but p90: {}  worst p90 error {:.3} %",
        times[1],
        times[2],
        fast == slow && same_p90_presence,
        worst * 100.0
    );
}

/// What the sums cost a write: 2,000 ended jobs inserted, then 2,000 running jobs
/// inserted and each ended by an UPDATE (status, end time, duration), each statement timed alone inside
/// one transaction (as the JobCreator's group commit runs them), on a fresh database
/// with the stats triggers and, in the same run, with them dropped.
fn write_cost() {
    let dir = tempfile::tempdir().unwrap();
    for (variant, drop_triggers) in [("with_sums", false), ("without_sums", true)] {
        let path = dir.path().join(format!("{variant}.db"));
        let mut conn = store::open_writer(&path).unwrap();
        if drop_triggers {
            for t in ["insert", "delete", "update_old", "update_new"] {
                conn.execute_batch(&format!("DROP TRIGGER jobs_stats_{t}"))
                    .unwrap();
            }
        }
        let mut rng = StdRng::seed_from_u64(7);
        let tx = conn.transaction().unwrap();
        let mut inserts = Vec::new();
        let mut ends = Vec::new();
        let mut opens = Vec::new();
        {
            let mut ins = tx
                .prepare(
                    "INSERT INTO jobs (id, printer_id, printer_type, job_name, filename, status, \
                     start_time, end_time, actual_duration, customer_info, created_at, \
                     updated_at, end_reason) VALUES (?1, ?2, 'bambu', 'x', ?3, ?4, ?5, ?6, ?7, \
                     '{\"auto_created\":true}', ?5, coalesce(?6, ?5), ?8)",
                )
                .unwrap();
            let mut end = tx
                .prepare(
                    "UPDATE jobs SET status = ?2, end_time = ?3, actual_duration = ?4, \
                     updated_at = ?3, end_reason = ?5 WHERE id = ?1",
                )
                .unwrap();
            for i in 0..4000u32 {
                let printer = format!("printer_{:03}", i % 500);
                let begin = start() + Duration::seconds(rng.random_range(0..DAYS * 86_400));
                let secs: i64 = rng.random_range(3600..8 * 3600);
                let finish = time::format(begin + Duration::seconds(secs));
                let failed = rng.random_bool(0.1);
                let status = if failed { "failed" } else { "completed" };
                let reason = failed.then_some(REASONS[i as usize % REASONS.len()]);
                let file = format!("part_{:03}.3mf", rng.random_range(0..800));
                let id = format!("job_{i:08}");
                if i < 2000 {
                    let t = Instant::now();
                    ins.execute(params![
                        id,
                        printer,
                        file,
                        status,
                        time::format(begin),
                        finish,
                        secs,
                        reason
                    ])
                    .unwrap();
                    inserts.push(t.elapsed());
                } else {
                    // One open job per printer at a time (the unique index).
                    let t = Instant::now();
                    ins.execute(params![
                        id,
                        format!("{printer}_{i}"),
                        file,
                        "running",
                        time::format(begin),
                        None::<String>,
                        None::<i64>,
                        None::<String>
                    ])
                    .unwrap();
                    opens.push(t.elapsed());
                    let t = Instant::now();
                    end.execute(params![id, status, finish, secs, reason])
                        .unwrap();
                    ends.push(t.elapsed());
                }
            }
        }
        tx.commit().unwrap();
        // A retention batch (store/retention.rs deletes 500 finished jobs at a time).
        let t = Instant::now();
        conn.execute(
            "DELETE FROM jobs WHERE seq IN (SELECT seq FROM jobs ORDER BY seq LIMIT 500)",
            [],
        )
        .unwrap();
        println!(
            "latency/write/delete_500_ended/{variant:<13} {:>9.1?}",
            t.elapsed()
        );
        for (op, mut times) in [
            ("insert_ended", inserts),
            ("insert_running", opens),
            ("end_running", ends),
        ] {
            times.sort();
            let mean = times.iter().sum::<StdDuration>() / times.len() as u32;
            let at = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)];
            println!(
                "latency/write/{op}/{variant:<13} n={} mean {:>9.1?}  p50 {:>9.1?}  p99 {:>9.1?}",
                times.len(),
                mean,
                at(0.5),
                at(0.99)
            );
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // `cargo test --benches` runs each benchmark once as a test: no database build then.
    if !args.iter().any(|a| a == "--bench") || args.iter().any(|a| a == "--list") {
        return;
    }
    let filter = name_filter();
    if filter.as_deref().is_none_or(|f| "write".contains(f)) {
        write_cost();
    }
    let path = db();
    let conn = store::open_reader(&path).unwrap();
    let wanted = |name: &str| filter.as_deref().is_none_or(|f| name.contains(f));
    for (name, q) in cases() {
        if !wanted(&name) {
            continue;
        }
        let s = stats::stats(&conn, &q, end()).unwrap();
        let mut times: Vec<StdDuration> = (0..SAMPLES)
            .map(|_| {
                let t = Instant::now();
                black_box(stats::stats(&conn, &q, end()).unwrap());
                t.elapsed()
            })
            .collect();
        times.sort();
        let at = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)];
        println!(
            "latency/stats_1m/{name:<24} n={SAMPLES} p50 {:>9.1?}  p99 {:>9.1?}  max {:>9.1?}  ({} jobs, {} groups)",
            at(0.5),
            at(0.99),
            times[times.len() - 1],
            s.totals.jobs,
            s.groups.len()
        );
        if std::env::var_os("PRINTFARMD_BENCH_SCAN").is_some() {
            scan_too(&conn, &name, &q, s);
        }
    }
    let mut c = Criterion::default()
        .warm_up_time(StdDuration::from_secs(1))
        .measurement_time(StdDuration::from_secs(5))
        .sample_size(20)
        .configure_from_args();
    for (name, q) in cases() {
        c.bench_function(&format!("stats_1m/{name}"), |b| {
            b.iter(|| black_box(stats::stats(&conn, &q, end()).unwrap()))
        });
    }
    c.final_summary();
}
