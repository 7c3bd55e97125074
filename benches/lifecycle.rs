//! Micro-benchmarks of a printer status on its way to the job history (issue 7).
//!
//! The common case is a status that matches the printer's open job: the print goes on,
//! its progress moved. Target (design.md §8): ≤ 20 µs of CPU for that whole path (the
//! seed promises < 1 ms). Measured here, in the order a status travels:
//!
//! - `tracker_observe_matching`: `PrinterTracker::observe` with an open print, the
//!   decision alone (`Decision::Continue`), reading the `PrinterStatus` as it is;
//! - `job_book_matching_*`: `JobBook::on_status`, the JobCreator's whole decision for a
//!   status — printer look-up, decision, cached job update and the progress dirty-set
//!   bookkeeping (the write itself is batched once a second, not per status). The
//!   JobCreator's shell around it adds the live view and the `printer_status` event.
//!
//! Run: `cargo bench --bench lifecycle -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::time::Instant;

use chrono::Duration;
use criterion::{Criterion, criterion_group, criterion_main};
use printfarmd::domain::{JobId, JobStatus, PrinterId, PrinterType};
use printfarmd::jobs::Job;
use printfarmd::jobs::book::{JobBook, Now};
use printfarmd::jobs::lifecycle::{Decision, PrintRecord, PrinterTracker};
use printfarmd::printers::{ConnectionState, PrinterState, PrinterStatus, Temperatures};
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
        printer_end_time: None,
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

fn tracker_observe_matching(c: &mut Criterion) {
    let printer = PrinterId::new("bambu_001").unwrap();
    let start = time::now();
    let obs = printing_status(&printer, start, 41.0);
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

fn job_book_matching(c: &mut Criterion) {
    let printer = PrinterId::new("bambu_001").unwrap();
    let start = time::now();
    // One running job, re-adopted as after a restart.
    let mut book = JobBook::new(Instant::now());
    book.adopt(vec![running_job(&printer, start)]);
    // Two statuses whose progress alternates, so every status moves the progress (the
    // dirty-set path) without ever looking like a restart.
    let statuses = [
        printing_status(&printer, start, 41.0),
        printing_status(&printer, start, 41.5),
    ];
    book.on_status(Now::real(), &statuses[0], true);
    book.confirm();

    let mut group = c.benchmark_group("job_book_matching");
    let mut i = 0usize;
    group.bench_function("progress_moved", |b| {
        b.iter(|| {
            i += 1;
            let plan = book.on_status(Now::real(), black_box(&statuses[i & 1]), true);
            assert!(plan.writes.is_empty());
        })
    });
    group.bench_function("unchanged", |b| {
        b.iter(|| book.on_status(Now::real(), black_box(&statuses[i & 1]), true))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    // Short by default: a shared 2-core machine. The command line may override.
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(3))
        .sample_size(50);
    targets = tracker_observe_matching, job_book_matching
}
criterion_main!(benches);
