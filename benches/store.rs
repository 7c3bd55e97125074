//! Micro-benchmarks of the job history in SQLite (issue 7).
//!
//! - `create_job/insert_commit`: `store::jobs::insert` on the writer connection exactly
//!   as `open_writer` configures it (WAL, `synchronous = FULL`), on a real file, outside
//!   any transaction — so each insert is its own durable commit with its fsync, as when
//!   the JobCreator creates a job. Target: ≤ 1 ms p99 (seed: < 50 ms worst case).
//! - `progress_flush_2000/*`: the JobCreator's once-a-second progress write for 2,000
//!   open jobs in one transaction, progress-only against a full-row update.
//! - `list_1m/*`: `store::jobs::list` — the query code of `GET /api/v1/jobs`, page and
//!   `total_count` — on a read-only connection opened as the API's pool opens it, over
//!   1,000,000 jobs. Target: ≤ 5 ms p99 (seed: < 30 ms).
//!
//! Criterion reports means; the targets are p99s, so the `latency/*` measurements time
//! each operation alone (2,000 inserts; 300 queries per filter) and print p50/p99/max.
//! `latency/disk/write_4k_fdatasync` times the disk's own flush, the floor under any
//! durable commit, beside the inserts.
//! They run with the criterion groups and honour the same name filter.
//!
//! The 1,000,000-job database is built once (about a minute) and cached as
//! `target/tmp/printfarmd-bench-1m-g<N>.db`; delete it to rebuild. Opening it with
//! `open_writer` applies any newer migration, as the daemon would at start.
//!
//! Run: `cargo bench --bench store -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration as StdDuration, Instant};

use chrono::{Duration, TimeZone, Utc};
use criterion::Criterion;
use printfarmd::domain::Job;
use printfarmd::domain::{JobId, JobStatus, PrinterId, PrinterType};
use printfarmd::store::{self, JobQuery};
use printfarmd::time::{self, Timestamp};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rusqlite::Connection;

/// Jobs in the big database.
const JOBS: u64 = 1_000_000;
/// Printers on the simulated farm.
const PRINTERS: u64 = 1_000;
/// Bump when the generator below changes, so a stale cached database is not reused.
const GENERATION: u32 = 1;
/// Individually timed operations for the percentile tables.
const INSERT_SAMPLES: usize = 2_000;
const QUERY_SAMPLES: usize = 300;
/// The version-1 query takes up to a second on some filters: fewer samples.
const V1_SAMPLES: usize = 20;

fn printer_name(i: u64) -> String {
    format!("printer_{i:04}")
}

/// One job as the daemon would have written it: auto-created jobs carry the seed's
/// customer_info keys; manual ones an empty object or a customer.
fn job_at(rng: &mut StdRng, printer: u64, created: Timestamp, status: JobStatus) -> Job {
    let auto = rng.random_bool(0.3);
    let printer_type = match printer % 10 {
        0..=5 => PrinterType::Bambu,
        6..=8 => PrinterType::Prusalink,
        _ => PrinterType::Moonraker,
    };
    let stem = format!(
        "part_{:04}_v{}",
        rng.random_range(0..5_000),
        rng.random_range(1..4)
    );
    let filename = if printer_type == PrinterType::Bambu {
        format!("{stem}.gcode.3mf")
    } else {
        format!("{stem}.bgcode")
    };
    let mut info = serde_json::Map::new();
    let (printer_job_id, printer_start_time) = if auto {
        let start = created - Duration::seconds(rng.random_range(0..30));
        info.insert("auto_created".into(), true.into());
        info.insert("discovery_time".into(), time::format(created).into());
        info.insert("printer_start_time".into(), time::format(start).into());
        info.insert("discovered_on_startup".into(), false.into());
        (
            Some(rng.random_range(100_000_000u64..999_999_999).to_string()),
            Some(start),
        )
    } else {
        if rng.random_bool(0.5) {
            info.insert(
                "customer".into(),
                format!("customer_{}", rng.random_range(0..200)).into(),
            );
        }
        (None, None)
    };
    let duration = rng.random_range(600..36_000);
    let ended = status.is_ended();
    let end = created + Duration::seconds(duration);
    Job {
        id: JobId::generate(),
        printer_id: PrinterId::new(printer_name(printer)).unwrap(),
        printer_type,
        job_name: stem,
        filename,
        status,
        progress: match status {
            JobStatus::Completed => 100.0,
            JobStatus::Pending => 0.0,
            _ => f64::from(rng.random_range(0..1000)) / 10.0,
        },
        start_time: (status != JobStatus::Pending).then_some(created),
        end_time: ended.then_some(end),
        estimated_duration: Some(duration),
        actual_duration: ended.then_some(duration),
        customer_info: info,
        notes: rng.random_bool(0.05).then(|| "reprint for QA".to_owned()),
        end_reason: None,
        created_at: created,
        updated_at: if ended { end } else { created },
        printer_job_id,
        printer_start_time,
    }
}

fn ended_status(rng: &mut StdRng) -> JobStatus {
    match rng.random_range(0..100) {
        0..=81 => JobStatus::Completed,
        82..=89 => JobStatus::Failed,
        90..=95 => JobStatus::Cancelled,
        96..=98 => JobStatus::Unknown,
        _ => JobStatus::Pending,
    }
}

/// The cached 1,000,000-job database, built on first use: a year of history on 1,000
/// printers, oldest first; the newest job of 60% of the printers is still open.
fn big_db() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let path = dir.join(format!("printfarmd-bench-1m-g{GENERATION}.db"));
    if !path.exists() {
        build(&path, dir);
    }
    // Applies newer migrations, as the daemon does at start.
    let t = Instant::now();
    drop(store::open_writer(&path).unwrap());
    let took = t.elapsed();
    if took > StdDuration::from_secs(1) {
        println!("migrating the cached database took {took:.1?}");
    }
    path
}

fn build(path: &Path, dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let partial = dir.join("printfarmd-bench-1m.partial.db");
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", partial.display()));
    }
    println!("building {JOBS} jobs in {} (once)", path.display());
    let t = Instant::now();
    let mut conn = store::open_writer(&partial).unwrap();
    conn.pragma_update(None, "synchronous", "OFF").unwrap();
    conn.pragma_update(None, "cache_size", -262_144).unwrap();
    let mut rng = StdRng::seed_from_u64(7);
    let year_ago = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
    let step_ms = 365 * 24 * 3600 * 1000 / JOBS as i64;
    let open_from = JOBS - 2 * PRINTERS;
    let mut open = vec![false; PRINTERS as usize];
    let tx = conn.transaction().unwrap();
    for i in 0..JOBS {
        let printer = rng.random_range(0..PRINTERS);
        let created = year_ago + Duration::milliseconds(i as i64 * step_ms);
        let mut status = ended_status(&mut rng);
        // In the last stretch, open (at most) one job per printer for 60% of them.
        if i >= open_from && !open[printer as usize] && printer % 10 < 6 {
            open[printer as usize] = true;
            status = if rng.random_bool(0.9) {
                JobStatus::Running
            } else {
                JobStatus::Paused
            };
        }
        let job = job_at(&mut rng, printer, created, status);
        store::jobs::insert(&tx, &job).unwrap();
    }
    tx.commit().unwrap();
    conn.pragma_update(None, "wal_checkpoint", "TRUNCATE")
        .unwrap();
    drop(conn);
    std::fs::rename(&partial, path).unwrap();
    println!("built in {:.1?}", t.elapsed());
}

/// The filters of `GET /api/v1/jobs?limit=50&...`, by name.
fn queries() -> Vec<(&'static str, JobQuery)> {
    let q = |f: &dyn Fn(&mut JobQuery)| {
        let mut q = JobQuery {
            limit: 50,
            ..Default::default()
        };
        f(&mut q);
        q
    };
    let printer = || Some(printer_name(500));
    vec![
        ("no_filter", q(&|_| {})),
        ("printer_id", q(&|q| q.printer_id = printer())),
        (
            "status_completed",
            q(&|q| q.statuses = vec![JobStatus::Completed]),
        ),
        (
            "status_running_paused",
            q(&|q| q.statuses = vec![JobStatus::Running, JobStatus::Paused]),
        ),
        (
            "status_failed_cancelled",
            q(&|q| q.statuses = vec![JobStatus::Failed, JobStatus::Cancelled]),
        ),
        ("auto_created_true", q(&|q| q.auto_created = Some(true))),
        ("auto_created_false", q(&|q| q.auto_created = Some(false))),
        (
            "printer_status_auto",
            q(&|q| {
                q.printer_id = printer();
                q.statuses = vec![JobStatus::Completed];
                q.auto_created = Some(true);
            }),
        ),
        (
            "status_failed_auto_false",
            q(&|q| {
                q.statuses = vec![JobStatus::Failed];
                q.auto_created = Some(false);
            }),
        ),
        ("offset_10k", q(&|q| q.offset = 10_000)),
        (
            "status_completed_offset_100k",
            q(&|q| {
                q.statuses = vec![JobStatus::Completed];
                q.offset = 100_000;
            }),
        ),
    ]
}

fn writer_in(dir: &Path) -> Connection {
    store::open_writer(&dir.join("bench.db")).unwrap()
}

fn new_job(rng: &mut StdRng) -> Job {
    let printer = rng.random_range(0..PRINTERS);
    job_at(rng, printer, time::now(), JobStatus::Completed)
}

fn create_job(c: &mut Criterion) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let conn = writer_in(dir.path());
    let mut rng = StdRng::seed_from_u64(1);
    let mut group = c.benchmark_group("create_job");
    group.bench_function("insert_commit", |b| {
        b.iter_batched(
            || new_job(&mut rng),
            |job| store::jobs::insert(&conn, &job).unwrap(),
            criterion::BatchSize::SmallInput,
        )
    });
    // Diagnostic: the CPU part alone, every insert inside one open transaction (no
    // commit, no fsync), to show what the durable commit costs on top.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let conn = writer_in(dir.path());
    let tx = conn.unchecked_transaction().unwrap();
    group.bench_function("insert_no_commit", |b| {
        b.iter_batched(
            || new_job(&mut rng),
            |job| store::jobs::insert(&tx, &job).unwrap(),
            criterion::BatchSize::SmallInput,
        )
    });
    drop(tx);
    group.finish();
}

fn list_1m(c: &mut Criterion) {
    let path = big_db();
    let conn = store::open_reader(&path).unwrap();
    let mut group = c.benchmark_group("list_1m");
    for (name, q) in queries() {
        group.bench_function(name, |b| {
            b.iter(|| store::jobs::list(&conn, black_box(&q)).unwrap())
        });
    }
    group.finish();
}

/// Times `INSERT_SAMPLES` job creations, each its own durable commit.
fn time_inserts(conn: &Connection, rng: &mut StdRng) -> Vec<StdDuration> {
    (0..INSERT_SAMPLES)
        .map(|_| {
            let job = new_job(rng);
            let t = Instant::now();
            store::jobs::insert(conn, &job).unwrap();
            t.elapsed()
        })
        .collect()
}

/// The once-a-second progress flush of a 2,000-printer farm: one transaction writing
/// the progress of 2,000 open jobs, as `update_progress` (what the JobCreator runs)
/// and as a full-row `update` (what it ran before), on a database of 10,000 jobs.
fn progress_flush(c: &mut Criterion) {
    const OPEN: u64 = 2_000;
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let conn = writer_in(dir.path());
    let mut rng = StdRng::seed_from_u64(3);
    let tx = conn.unchecked_transaction().unwrap();
    for i in 0..8_000 {
        store::jobs::insert(
            &tx,
            &job_at(&mut rng, i % OPEN, time::now(), JobStatus::Completed),
        )
        .unwrap();
    }
    let mut open: Vec<Job> = (0..OPEN)
        .map(|p| {
            let j = job_at(&mut rng, p, time::now(), JobStatus::Running);
            store::jobs::insert(&tx, &j).unwrap();
            j
        })
        .collect();
    tx.commit().unwrap();
    let mut group = c.benchmark_group("progress_flush_2000");
    group.sample_size(10);
    for (name, write) in [
        (
            "progress_only",
            store::jobs::update_progress as fn(&Connection, &Job) -> _,
        ),
        ("full_row", store::jobs::update),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let tx = conn.unchecked_transaction().unwrap();
                for j in open.iter_mut() {
                    j.progress = (j.progress + 0.5) % 100.0;
                    j.updated_at = time::now();
                    write(&tx, j).unwrap();
                }
                tx.commit().unwrap();
            })
        });
    }
    group.finish();
}

/// The list query as version 1 of the schema ran it (before the counters and the
/// index choice), kept so one run shows before and after side by side. It reads every
/// column of the page but skips building `Job`s, which flatters it slightly.
fn list_v1(conn: &Connection, q: &JobQuery) -> u64 {
    let mut terms = Vec::new();
    let mut args: Vec<rusqlite::types::Value> = Vec::new();
    fn bind(args: &mut Vec<rusqlite::types::Value>, v: rusqlite::types::Value) -> String {
        args.push(v);
        format!("?{}", args.len())
    }
    if let Some(p) = &q.printer_id {
        terms.push(format!(
            "printer_id = {}",
            bind(&mut args, p.clone().into())
        ));
    }
    if !q.statuses.is_empty() {
        let l: Vec<String> = q
            .statuses
            .iter()
            .map(|s| bind(&mut args, s.as_str().to_owned().into()))
            .collect();
        terms.push(format!("status IN ({})", l.join(",")));
    }
    if let Some(a) = q.auto_created {
        terms.push(format!(
            "auto_created = {}",
            bind(&mut args, (a as i64).into())
        ));
    }
    let filter = if terms.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", terms.join(" AND "))
    };
    let total: i64 = conn
        .prepare_cached(&format!("SELECT count(*) FROM jobs {filter}"))
        .unwrap()
        .query_row(rusqlite::params_from_iter(args.iter()), |r| r.get(0))
        .unwrap();
    let limit = bind(&mut args, i64::from(q.limit).into());
    let offset = bind(&mut args, (q.offset as i64).into());
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT id, printer_id, printer_type, job_name, filename, status, progress, \
             start_time, end_time, estimated_duration, actual_duration, customer_info, notes, \
             created_at, updated_at, printer_job_id, printer_start_time \
             FROM jobs {filter} ORDER BY seq DESC LIMIT {limit} OFFSET {offset}"
        ))
        .unwrap();
    let mut rows = stmt.query(rusqlite::params_from_iter(args.iter())).unwrap();
    while let Some(r) = rows.next().unwrap() {
        for i in 0..17 {
            black_box(r.get_ref(i).unwrap());
        }
    }
    total as u64
}

struct Summary {
    p50: StdDuration,
    p99: StdDuration,
    max: StdDuration,
}

fn summarise(mut v: Vec<StdDuration>) -> Summary {
    v.sort();
    let at = |p: f64| v[((v.len() as f64 * p) as usize).min(v.len() - 1)];
    Summary {
        p50: at(0.50),
        p99: at(0.99),
        max: *v.last().unwrap(),
    }
}

fn print_row(name: &str, n: usize, s: &Summary, extra: &str) {
    println!(
        "{name:<42} n={n:<5} p50 {:>9.1?}  p99 {:>9.1?}  max {:>9.1?}{extra}",
        s.p50, s.p99, s.max
    );
}

/// Per-operation latencies: what criterion's means do not show.
fn latency(filter: Option<&str>) {
    let wanted = |name: &str| filter.is_none_or(|f| name.contains(f));
    if wanted("latency/create_job/insert_commit") {
        // As the daemon runs: the checkpoint thread copies the WAL once a second, the
        // writer's own auto-checkpoint is only a backstop (`store::checkpoint`).
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let conn = writer_in(dir.path());
        let checkpointer = store::checkpoint::Checkpointer::start(
            &dir.path().join("bench.db"),
            // Its commits nudge nothing: the thread wakes every interval, as it did.
            store::checkpoint::Pace {
                interval: store::checkpoint::CHECKPOINT_INTERVAL,
                idle: store::checkpoint::CHECKPOINT_INTERVAL,
            },
            None,
        )
        .unwrap();
        let mut rng = StdRng::seed_from_u64(2);
        print_row(
            "latency/create_job/insert_commit",
            INSERT_SAMPLES,
            &summarise(time_inserts(&conn, &mut rng)),
            "",
        );
        drop(checkpointer);
        // The floor under any durable commit on this disk: one 4 KB append and its
        // fdatasync, which SQLite's WAL commit does at least once.
        let mut f = std::fs::File::create(dir.path().join("fsync.bin")).unwrap();
        let block = [7u8; 4096];
        let syncs = (0..INSERT_SAMPLES)
            .map(|_| {
                use std::io::Write;
                let t = Instant::now();
                f.write_all(&block).unwrap();
                f.sync_data().unwrap();
                t.elapsed()
            })
            .collect();
        print_row(
            "latency/disk/write_4k_fdatasync",
            INSERT_SAMPLES,
            &summarise(syncs),
            "",
        );
    }
    let lists: Vec<_> = queries()
        .into_iter()
        .filter(|(n, _)| wanted(&format!("latency/list_1m/{n}")))
        .collect();
    if lists.is_empty() {
        return;
    }
    let conn = store::open_reader(&big_db()).unwrap();
    for (name, q) in &lists {
        list_v1(&conn, q);
        let mut times = Vec::with_capacity(V1_SAMPLES);
        for _ in 0..V1_SAMPLES {
            let t = Instant::now();
            black_box(list_v1(&conn, q));
            times.push(t.elapsed());
        }
        print_row(
            &format!("latency/list_1m/{name} (v1 query)"),
            times.len(),
            &summarise(times),
            "",
        );
    }
    for (name, q) in lists {
        let mut total = 0;
        for _ in 0..5 {
            total = store::jobs::list(&conn, &q).unwrap().1;
        }
        let mut times = Vec::with_capacity(QUERY_SAMPLES);
        for _ in 0..QUERY_SAMPLES {
            let t = Instant::now();
            black_box(store::jobs::list(&conn, &q).unwrap());
            times.push(t.elapsed());
        }
        print_row(
            &format!("latency/list_1m/{name}"),
            times.len(),
            &summarise(times),
            &format!("  total_count {total}"),
        );
    }
}

/// The benchmark-name filter criterion was given, if any (the first free argument).
fn name_filter() -> Option<String> {
    const TAKES_VALUE: &[&str] = &[
        "--warm-up-time",
        "--measurement-time",
        "--sample-size",
        "--save-baseline",
        "--baseline",
        "--baseline-lenient",
        "--noise-threshold",
        "--confidence-level",
        "--significance-level",
        "--nresamples",
        "--profile-time",
        "--output-format",
        "--plotting-backend",
        "--color",
        "--format",
        "--load-baseline",
        "--logfile",
    ];
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

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // `cargo bench` passes --bench; `cargo test --benches` does not (criterion then
    // runs each benchmark once as a test). Percentiles only make sense in a real run.
    let benching = args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--list");
    if benching {
        latency(name_filter().as_deref());
    }
    let mut c = Criterion::default()
        // Short by default: a shared 2-core machine. The command line may override.
        .warm_up_time(StdDuration::from_secs(1))
        .measurement_time(StdDuration::from_secs(3))
        .sample_size(30)
        .configure_from_args();
    create_job(&mut c);
    progress_flush(&mut c);
    list_1m(&mut c);
    c.final_summary();
}
