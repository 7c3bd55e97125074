//! Micro-benchmarks of a printer status on its way to the job history (issue 7).
//!
//! The common case is a status that matches the printer's open job: the print goes on,
//! its progress moved. Target (design.md §8): ≤ 20 µs of CPU for that whole path (the
//! seed promises < 1 ms). Measured here, in the order a status travels:
//!
//! - `status_to_observation`: `PrinterStatus::observation()`, the normalised status
//!   reduced to what the lifecycle needs;
//! - `tracker_observe_matching`: `PrinterTracker::observe` with an open print, the
//!   decision alone (`Decision::Continue`);
//! - `job_creator_matching_*`: the JobCreator's `Observe` handler body with no actor
//!   around it — tracker look-up, decision, cached job update and the progress
//!   dirty-set bookkeeping (the write itself is batched once a second, not per status).
//!
//! Run: `cargo bench --bench lifecycle -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::sync::Arc;

use actix::Actor;
use chrono::Duration;
use criterion::{Criterion, criterion_group, criterion_main};
use printfarmd::broadcast::Broadcaster;
use printfarmd::config::Settings;
use printfarmd::domain::{JobId, JobStatus, PrinterId, PrinterType};
use printfarmd::health::Health;
use printfarmd::jobs::creator::Observe;
use printfarmd::jobs::lifecycle::{Decision, PrintRecord, PrinterTracker};
use printfarmd::jobs::{Job, JobCreator};
use printfarmd::printers::{ConnectionState, PrinterState, PrinterStatus, Temperatures};
use printfarmd::registry::PrinterRegistry;
use printfarmd::store;
use printfarmd::time::{self, Timestamp};

const FILE: &str = "bracket_v3.gcode.3mf";
const TASK_ID: &str = "512034455";

/// A full Bambu-style status of a print under way, as a driver would produce it.
fn printing_status(printer: &PrinterId, start: Timestamp, progress: f64) -> PrinterStatus {
    let now = start + Duration::minutes(42);
    PrinterStatus {
        printer_id: printer.clone(),
        printer_type: PrinterType::Bambu,
        connection: ConnectionState::Connected,
        state: PrinterState::Printing,
        filename: Some(FILE.into()),
        job_name: Some("bracket_v3".into()),
        printer_job_id: Some(TASK_ID.into()),
        printer_start_time: Some(start),
        elapsed_s: Some(42 * 60),
        progress: Some(progress),
        remaining_s: Some(3100),
        layer: Some(57),
        total_layers: Some(240),
        temperatures: Temperatures {
            nozzle: Some(219.8),
            nozzle_target: Some(220.0),
            bed: Some(55.1),
            bed_target: Some(55.0),
            chamber: Some(31.0),
        },
        error: None,
        last_error: None,
        last_seen: Some(now),
        first_after_connect: false,
        observed_at: now,
        bad_data: Default::default(),
    }
}

fn open_record(job_id: JobId, start: Timestamp) -> PrintRecord {
    PrintRecord {
        job_id,
        filename: FILE.into(),
        printer_job_id: Some(TASK_ID.into()),
        printer_start_time: Some(start),
        status: JobStatus::Running,
        last_progress: 40.0,
        last_elapsed: Some(41 * 60),
    }
}

fn running_job(printer: &PrinterId, start: Timestamp) -> Job {
    let mut info = serde_json::Map::new();
    info.insert("auto_created".into(), true.into());
    Job {
        id: JobId::generate(),
        printer_id: printer.clone(),
        printer_type: PrinterType::Bambu,
        job_name: "bracket_v3".into(),
        filename: FILE.into(),
        status: JobStatus::Running,
        progress: 40.0,
        start_time: Some(start),
        end_time: None,
        estimated_duration: Some(5600),
        actual_duration: None,
        customer_info: info,
        notes: None,
        end_reason: None,
        created_at: start,
        updated_at: start,
        printer_job_id: Some(TASK_ID.into()),
        printer_start_time: Some(start),
    }
}

fn status_to_observation(c: &mut Criterion) {
    let printer = PrinterId::new("bambu_001").unwrap();
    let status = printing_status(&printer, time::now(), 41.0);
    c.bench_function("status_to_observation", |b| {
        b.iter(|| black_box(&status).observation())
    });
}

fn tracker_observe_matching(c: &mut Criterion) {
    let printer = PrinterId::new("bambu_001").unwrap();
    let start = time::now();
    let obs = printing_status(&printer, start, 41.0).observation();
    let mut tracker = PrinterTracker::with_open(Some(open_record(JobId::generate(), start)));
    // The first status after start is special (discovered_on_startup); measure the rest.
    assert!(matches!(
        tracker.observe(&obs).as_slice(),
        [Decision::Continue { .. }]
    ));
    c.bench_function("tracker_observe_matching", |b| {
        b.iter(|| tracker.observe(black_box(&obs)))
    });
}

/// A JobCreator over a real database with one running job on `printer`, re-adopted at
/// start as after a restart. Its Broadcaster is never run: a progress-only status
/// publishes nothing (progress is published by the once-a-second flush).
fn creator_with_open_job(
    printer: &PrinterId,
    start: Timestamp,
) -> (JobCreator, actix::SystemRunner, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let conn = store::open_writer(&dir.path().join("bench.db")).unwrap();
    store::jobs::insert(&conn, &running_job(printer, start)).unwrap();
    let system = actix::System::new();
    let broadcaster = system.block_on(async { Broadcaster::new().start() });
    let settings = tokio::sync::watch::channel(Settings {
        job_creation_auto_create: true,
        monitoring_interval: 30,
    })
    .0;
    let creator = JobCreator::new(
        conn,
        broadcaster,
        settings,
        PrinterRegistry::default(),
        printfarmd::printers::view::LiveStates::default(),
        Arc::new(Health::default()),
    );
    (creator, system, dir)
}

fn job_creator_matching(c: &mut Criterion) {
    let printer = PrinterId::new("bambu_001").unwrap();
    let start = time::now();
    let (mut creator, system, _dir) = creator_with_open_job(&printer, start);
    // Two statuses whose progress alternates, so every status moves the progress (the
    // dirty-set path) without ever looking like a restart.
    let statuses = [
        printing_status(&printer, start, 41.0),
        printing_status(&printer, start, 41.5),
    ];
    let observe = |s: &PrinterStatus| Observe {
        printer_id: s.printer_id.clone(),
        printer_type: s.printer_type,
        observation: s.observation(),
    };
    creator.handle_observe(&observe(&statuses[0]));

    let mut group = c.benchmark_group("job_creator_matching");
    let mut i = 0usize;
    group.bench_function("progress_moved", |b| {
        b.iter(|| {
            i += 1;
            // What the actor does with a PrinterStatus: reduce it, then handle it.
            creator.handle_observe(&observe(black_box(&statuses[i & 1])));
        })
    });
    group.bench_function("unchanged", |b| {
        b.iter(|| creator.handle_observe(&observe(black_box(&statuses[i & 1]))))
    });
    group.finish();
    drop(creator);
    // Dropping the never-run System would poll its actors outside a runtime; the
    // process ends right after the benchmarks anyway.
    std::mem::forget(system);
}

criterion_group! {
    name = benches;
    // Short by default: a shared 2-core machine. The command line may override.
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(3))
        .sample_size(50);
    targets = status_to_observation, tracker_observe_matching, job_creator_matching
}
criterion_main!(benches);
