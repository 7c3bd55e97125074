//! Unit tests of where a job's start time comes from (issue 14): an X1 keeps the previous
//! print's `gcode_start_time` through the next print's PREPARE, and printer-supplied
//! numbers may be anything. Consecutive prints must get non-overlapping jobs that start
//! with their own print, and no observation may make the lifecycle panic.

use super::sample::Sample;
use super::*;
use crate::domain::MAX_NAME_LEN;
use crate::time;
use proptest::prelude::*;

fn base() -> Timestamp {
    time::parse("2026-03-01T10:00:00Z").unwrap()
}

/// One X1 report: whole state every time, task ids, the printer's start time.
fn x1(at: i64, state: PrinterState, n: u32, start: Option<i64>) -> Sample {
    Sample {
        printer_type: PrinterType::Bambu,
        connected: true,
        state,
        filename: Some(format!("part_{n}.3mf")),
        job_name: None,
        printer_job_id: (n > 0).then(|| format!("{}", 1000 + n)),
        printer_start_time: start.map(|s| base() + Duration::seconds(s)),
        elapsed_s: None,
        progress: Some(if state == PrinterState::Finished {
            100.0
        } else {
            10.0
        }),
        remaining_s: Some(60),
        first_after_connect: false,
        at: base() + Duration::seconds(at),
    }
}

/// Runs the tracker like the JobCreator does (auto-creating, learning a start time
/// reported after the job opened) and returns (job start, printer start, end) per job.
fn run(seq: &[Sample]) -> Vec<(Timestamp, Option<Timestamp>, Option<Timestamp>)> {
    let mut tr = PrinterTracker::default();
    let mut jobs: Vec<(JobId, Timestamp, Option<Timestamp>, Option<Timestamp>)> = Vec::new();
    for obs in seq {
        for d in tr.observe(&obs.status()) {
            match d {
                Decision::Start(s) => {
                    let id = JobId::generate();
                    tr.opened(PrintRecord {
                        job_id: id.clone(),
                        filename: s.filename.clone(),
                        printer_job_id: s.printer_job_id.clone(),
                        printer_start_time: s.printer_start_time,
                        status: s.status,
                        last_progress: s.progress,
                        last_elapsed: s.elapsed_s,
                    });
                    jobs.push((id, s.start_time, s.printer_start_time, None));
                }
                Decision::Close {
                    job_id, end_time, ..
                } => {
                    tr.closed(&job_id, end_time);
                    if let Some(j) = jobs.iter_mut().find(|j| j.0 == job_id) {
                        j.3 = Some(end_time);
                    }
                }
                Decision::Continue {
                    status,
                    progress,
                    elapsed_s,
                    ..
                } => tr.progressed(status, progress, elapsed_s),
                Decision::Missed { .. } => panic!("a push printer never misses a print"),
            }
        }
        // `learn_start_time` in auto.rs.
        if let (Some(t), Some(open)) = (tr.usable_start_time(&obs.status()), tr.open())
            && open.printer_start_time.is_none()
            && open.printer_job_id == obs.printer_job_id
            && matches!(obs.state, PrinterState::Printing | PrinterState::Paused)
        {
            let id = open.job_id.clone();
            tr.learned_start_time(t);
            if let Some(j) = jobs.iter_mut().find(|j| j.0 == id) {
                j.2 = Some(t);
            }
        }
    }
    jobs.into_iter().map(|j| (j.1, j.2, j.3)).collect()
}

/// Three consecutive 20 s prints on one X1; print n's own start time is 100·n s. With
/// `linger`, PREPARE still carries the previous print's start time; without, "0".
fn three_prints(linger: bool) -> Vec<Sample> {
    use PrinterState::*;
    let mut seq = vec![x1(0, Idle, 0, None)];
    let mut prev_start = None;
    for n in 1..=3u32 {
        let t0 = i64::from(n) * 100;
        let own = Some(t0 + 2);
        let prep = if linger { prev_start } else { None };
        seq.push(x1(t0, Preparing, n, prep));
        seq.push(x1(t0 + 1, Preparing, n, prep));
        for s in 2..20 {
            seq.push(x1(t0 + s, Printing, n, own));
        }
        for s in 20..25 {
            // FINISH lingers with this print's start time.
            seq.push(x1(t0 + s, Finished, n, own));
        }
        seq.push(x1(t0 + 30, Idle, n, own));
        prev_start = own;
    }
    seq
}

#[test]
fn consecutive_x1_prints_get_their_own_start_times_and_never_overlap() {
    for linger in [true, false] {
        let jobs = run(&three_prints(linger));
        assert_eq!(jobs.len(), 3, "linger={linger}: {jobs:?}");
        for (n, (start, printer_start, end)) in jobs.iter().enumerate() {
            let t0 = base() + Duration::seconds((n as i64 + 1) * 100);
            assert_eq!(*start, t0, "linger={linger}: job {n} starts at its PREPARE");
            assert_eq!(
                *printer_start,
                Some(t0 + Duration::seconds(2)),
                "linger={linger}: job {n} learns its own printer start time"
            );
            let end = end.expect("every print ended");
            assert!(end > *start);
            if n > 0 {
                let prev_end = jobs[n - 1].2.unwrap();
                assert!(*start >= prev_end, "linger={linger}: job {n} overlaps");
            }
        }
    }
}

#[test]
fn a_start_time_out_of_the_window_or_before_the_previous_print_is_not_used() {
    let tr = PrinterTracker::default();
    let mut o = x1(0, PrinterState::Printing, 1, None);
    o.printer_start_time = Some(base() - Duration::days(31));
    assert_eq!(tr.usable_start_time(&o.status()), None);
    o.printer_start_time = Some(base() + Duration::days(2));
    assert_eq!(tr.usable_start_time(&o.status()), None);
    o.printer_start_time = Some(base() - Duration::hours(1));
    assert_eq!(tr.usable_start_time(&o.status()), o.printer_start_time);
    o.state = PrinterState::Preparing;
    assert_eq!(
        tr.usable_start_time(&o.status()),
        None,
        "not while preparing"
    );
}

fn state() -> impl Strategy<Value = PrinterState> {
    use PrinterState::*;
    prop::sample::select(vec![
        Idle, Preparing, Printing, Paused, Finished, Failed, Cancelled, Unknown,
    ])
}

fn any_time() -> impl Strategy<Value = Timestamp> {
    (i64::MIN..=i64::MAX).prop_map(|s| {
        let (min, max) = (
            chrono::DateTime::<chrono::Utc>::MIN_UTC.timestamp(),
            chrono::DateTime::<chrono::Utc>::MAX_UTC.timestamp(),
        );
        chrono::DateTime::from_timestamp(s.clamp(min, max), 0).unwrap()
    })
}

fn observation() -> impl Strategy<Value = Sample> {
    let f64s = prop_oneof![
        any::<f64>(),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(-0.0),
        0.0..=100.0
    ];
    (
        (state(), any::<bool>(), any::<bool>(), 0u8..3, 0u8..3),
        (
            prop::option::of(any_time()),
            prop::option::of(any::<i64>()),
            prop::option::of(f64s),
            prop::option::of(any::<i64>()),
        ),
        -100_000i64..100_000,
    )
        .prop_map(
            |((state, connected, first, file, id), (start, elapsed, progress, remaining), at)| {
                Sample {
                    printer_type: if id == 2 {
                        PrinterType::Prusalink
                    } else {
                        PrinterType::Bambu
                    },
                    connected: connected || state != PrinterState::Unknown,
                    state,
                    filename: (file > 0).then(|| "x".repeat(usize::from(file) * 400)),
                    job_name: None,
                    printer_job_id: (id > 0).then(|| id.to_string()),
                    printer_start_time: start,
                    elapsed_s: elapsed,
                    progress,
                    remaining_s: remaining,
                    first_after_connect: first,
                    at: base() + Duration::seconds(at),
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]
    /// No observation, however absurd its numbers, makes the lifecycle panic, and what
    /// it decides to store is within bounds.
    #[test]
    fn no_observation_makes_the_lifecycle_panic(seq in prop::collection::vec(observation(), 1..40)) {
        let mut tr = PrinterTracker::default();
        for obs in &seq {
            for d in tr.observe(&obs.status()) {
                let start = match &d {
                    Decision::Start(s) | Decision::Missed { start: s, .. } => Some(s.clone()),
                    _ => None,
                };
                if let Some(s) = start {
                    prop_assert!(s.progress.is_finite() && (0.0..=100.0).contains(&s.progress));
                    prop_assert!(s.filename.chars().count() <= MAX_NAME_LEN);
                    prop_assert!(s.job_name.chars().count() <= MAX_NAME_LEN);
                    prop_assert!(s.estimated_duration.is_none_or(|d| d >= 0));
                    if let Some(t) = s.printer_start_time {
                        prop_assert!(sanitize::start_time_ok(t, obs.at));
                    }
                    tr.opened(PrintRecord {
                        job_id: JobId::generate(),
                        filename: s.filename,
                        printer_job_id: s.printer_job_id,
                        printer_start_time: s.printer_start_time,
                        status: s.status,
                        last_progress: s.progress,
                        last_elapsed: s.elapsed_s,
                    });
                }
                match d {
                    Decision::Close { job_id, end_time, .. } => tr.closed(&job_id, end_time),
                    Decision::Continue { status, progress, elapsed_s, .. } => {
                        tr.progressed(status, progress, elapsed_s)
                    }
                    _ => {}
                }
            }
            let _ = tr.usable_start_time(&obs.status());
        }
    }
}
