//! The printer-value boundary from the job history's side (issue 14), on the real
//! JobCreator over a real SQLite file: what a Bambu X1 really sends between two prints
//! gives non-overlapping jobs with their own start times, and no observation — however
//! absurd its numbers — makes the JobCreator panic or stores a row that breaks a read.

use std::cell::RefCell;
use std::sync::Arc;

use actix::Actor;
use chrono::{DateTime, Duration, Utc};
use printfarmd::broadcast::Broadcaster;
use printfarmd::broadcast::view::LiveStates;
use printfarmd::config::PrinterConfig;
use printfarmd::config::Settings;
use printfarmd::domain::{ConnectionState, PrinterState};
use printfarmd::domain::{PrinterId, PrinterType};
use printfarmd::health::Health;
use printfarmd::jobs::{Job, JobCreator};
use printfarmd::printers::bambu::state::BambuState;
use printfarmd::printers::{PrinterStatus, sanitize};
use printfarmd::registry::{Entry, ManagedBy, PrinterRegistry};
use printfarmd::store::{self, jobs::JobQuery};
use printfarmd::time::Timestamp;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::json;

/// A JobCreator on a fresh database file, outside any actor (as `benches/lifecycle.rs`
/// drives it), and a reader of the same file.
struct Creator {
    creator: JobCreator,
    registry: PrinterRegistry,
    reader: rusqlite::Connection,
    _system: actix::SystemRunner,
    _arbiter: actix::Arbiter,
    _dir: tempfile::TempDir,
}

fn creator() -> Creator {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs.db");
    let conn = store::open_writer(&path).unwrap();
    let system = actix::System::new();
    // On a thread of its own, so that it drains the events the JobCreator publishes
    // (a full mailbox would hold the JobCreator's `publish`).
    let arbiter = actix::Arbiter::new();
    let broadcaster = Broadcaster::start_in_arbiter(&arbiter.handle(), |_| Broadcaster::new());
    let settings = tokio::sync::watch::channel(Settings {
        job_creation_auto_create: true,
        monitoring_interval: 30,
    })
    .0;
    let registry = PrinterRegistry::default();
    let creator = JobCreator::new(
        conn,
        broadcaster,
        settings,
        registry.clone(),
        LiveStates::default(),
        Arc::new(Health::default()),
    );
    Creator {
        creator,
        registry,
        reader: store::open_reader(&path).unwrap(),
        _system: system,
        _arbiter: arbiter,
        _dir: dir,
    }
}

impl Creator {
    /// What the JobCreator's `PrinterEvent::Status` handler runs, then the commit its
    /// `Commit` message would make (outside an actor nothing sends it).
    fn observe(&mut self, status: PrinterStatus) {
        let id = status.printer_id.clone();
        if self.registry.get(id.as_str()).is_none() {
            self.registry.insert(Entry {
                config: PrinterConfig {
                    id,
                    kind: status.printer_type,
                    name: None,
                    host: "127.0.0.1".into(),
                    port: None,
                    serial: Some("S".into()),
                    access_code: None,
                    username: None,
                    password: None,
                    api_key: None,
                },
                managed_by: ManagedBy::Api,
            });
        }
        self.creator.on_status(status);
        self.creator.commit();
    }

    /// Every job of `printer`, oldest first, read back from the file.
    fn jobs(&self, printer: &str) -> Vec<Job> {
        let q = JobQuery {
            printer_id: Some(printer.to_owned()),
            limit: 1000,
            ..Default::default()
        };
        let (mut jobs, _) = store::jobs::list(&self.reader, &q).expect("the job list reads");
        jobs.reverse();
        jobs
    }
}

fn now_s() -> Timestamp {
    DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap()
}

/// Three consecutive 20 s prints on one X1, as its reports go through the driver's
/// parser, the boundary check and the JobCreator. With `linger`, PREPARE still carries
/// the previous print's `gcode_start_time` (what the simulator and real X1s do); without,
/// it is "0" until the preparation stages begin.
fn x1_prints(linger: bool) -> Vec<Job> {
    let mut c = creator();
    let base = now_s() - Duration::minutes(10);
    let mut state = BambuState::new();
    let mut status =
        PrinterStatus::unknown(PrinterId::new("x1").unwrap(), PrinterType::Bambu, base);
    status.connection = printfarmd::printers::ConnectionState::Connected;
    let mut send = |c: &mut Creator, at: i64, print: serde_json::Value| {
        let mut p = print;
        p["command"] = json!("push_status");
        let bytes = json!({ "print": p }).to_string();
        state.apply_bytes(bytes.as_bytes(), 1 << 20).unwrap();
        state.fill(&mut status);
        let now = base + Duration::seconds(at);
        status.observed_at = now;
        sanitize::check(&mut status, now);
        c.observe(status.clone());
    };
    let unix = |at: i64| (base + Duration::seconds(at)).timestamp().to_string();
    let mut start = "0".to_owned();
    send(
        &mut c,
        0,
        json!({"gcode_state": "IDLE", "gcode_file": "", "subtask_name": "",
        "task_id": "0", "subtask_id": "0", "gcode_start_time": "0", "mc_percent": 0}),
    );
    for n in 1..=3i64 {
        let t0 = n * 100;
        let (task, sub) = ((1000 + 2 * n).to_string(), (1001 + 2 * n).to_string());
        let prep_start = if linger {
            start.clone()
        } else {
            "0".to_owned()
        };
        let file = "/data/Metadata/plate_1.gcode";
        let name = format!("part_{n}");
        for s in 0..2 {
            send(
                &mut c,
                t0 + s,
                json!({"gcode_state": "PREPARE", "gcode_file": file,
                "subtask_name": name, "task_id": task, "subtask_id": sub,
                "gcode_start_time": prep_start, "mc_percent": 0, "mc_remaining_time": 0}),
            );
        }
        start = unix(t0 + 2);
        for s in 2..22 {
            send(
                &mut c,
                t0 + s,
                json!({"gcode_state": "RUNNING", "gcode_file": file,
                "subtask_name": name, "task_id": task, "subtask_id": sub,
                "gcode_start_time": start, "mc_percent": (s - 2) * 5, "mc_remaining_time": 1}),
            );
        }
        for s in 22..26 {
            send(
                &mut c,
                t0 + s,
                json!({"gcode_state": "FINISH", "gcode_file": file,
                "subtask_name": name, "task_id": task, "subtask_id": sub,
                "gcode_start_time": start, "mc_percent": 100, "mc_remaining_time": 0}),
            );
        }
    }
    c.jobs("x1")
}

#[test]
fn consecutive_x1_prints_through_the_job_creator_start_with_their_own_print() {
    for linger in [true, false] {
        let jobs = x1_prints(linger);
        assert_eq!(jobs.len(), 3, "linger={linger}: {jobs:#?}");
        for (i, j) in jobs.iter().enumerate() {
            let start = j.start_time.unwrap();
            let end = j.end_time.unwrap();
            assert_eq!(j.job_name, format!("part_{}", i + 1));
            assert!(start < end, "linger={linger}: {j:#?}");
            // A 20 s print, prepared for 2 s: never the 100 s since the previous start.
            let took = j.actual_duration.unwrap();
            assert!(
                (20..=26).contains(&took),
                "linger={linger}: took {took} s: {j:#?}"
            );
            // The printer's start time learned is this print's own (2 s into it).
            let own = (start + Duration::seconds(2)).timestamp();
            assert_eq!(
                j.printer_start_time.map(|t| t.timestamp()),
                Some(own),
                "linger={linger}: {j:#?}"
            );
            if i > 0 {
                let prev_end = jobs[i - 1].end_time.unwrap();
                assert!(
                    start >= prev_end,
                    "linger={linger}: job {i} overlaps: {jobs:#?}"
                );
            }
        }
    }
}

fn any_observation(base: Timestamp) -> impl Strategy<Value = PrinterStatus> {
    use PrinterState::*;
    let state = prop::sample::select(vec![
        Idle, Preparing, Printing, Paused, Finished, Failed, Cancelled, Error, Unknown,
    ]);
    let time = any::<i64>().prop_map(|s| {
        DateTime::from_timestamp(
            s.clamp(
                DateTime::<Utc>::MIN_UTC.timestamp(),
                DateTime::<Utc>::MAX_UTC.timestamp(),
            ),
            0,
        )
        .unwrap()
    });
    let f64s = prop_oneof![
        any::<f64>(),
        Just(f64::NAN),
        Just(f64::INFINITY),
        0.0..=100.0
    ];
    (
        (state, 0u8..3, 0u8..3, any::<bool>()),
        (
            prop::option::of(time),
            prop::option::of(any::<i64>()),
            prop::option::of(f64s),
            prop::option::of(any::<i64>()),
        ),
        0i64..100_000,
    )
        .prop_map(
            move |((state, file, id, first), (start, elapsed, progress, remaining), at)| {
                let kind = if id == 2 {
                    PrinterType::Prusalink
                } else {
                    PrinterType::Bambu
                };
                let id_of_case = PrinterId::new("p").unwrap();
                let mut s = PrinterStatus::unknown(id_of_case, kind, base + Duration::seconds(at));
                s.connection = ConnectionState::Connected;
                s.state = state;
                s.filename = (file > 0).then(|| "é".repeat(usize::from(file) * 300));
                s.job_name = (file == 2).then(|| "n".repeat(2000));
                s.printer_job_id = (id > 0).then(|| format!("{id}"));
                s.printer_start_time = start;
                s.elapsed_s = elapsed;
                s.progress = progress;
                s.remaining_s = remaining;
                s.first_after_connect = first;
                s
            },
        )
}

/// Defence in depth: observations straight into the JobCreator, without the drivers'
/// boundary check. Nothing panics, the list always reads, and what is stored is sane.
#[test]
fn no_observation_makes_the_job_creator_panic_or_store_an_unreadable_row() {
    let c = RefCell::new(creator());
    let base = now_s();
    let case = RefCell::new(0u32);
    // Failures are kept under proptest-regressions/ and replayed first.
    let mut runner = TestRunner::new(Config {
        source_file: Some(file!()),
        ..Config::with_cases(100)
    });
    let strategy = prop::collection::vec(any_observation(base), 1..25);
    runner
        .run(&strategy, |seq| {
            let printer = {
                let mut n = case.borrow_mut();
                *n += 1;
                format!("p{n}")
            };
            let mut c = c.borrow_mut();
            for mut status in seq {
                status.printer_id = PrinterId::new(printer.as_str()).unwrap();
                c.observe(status);
            }
            for j in c.jobs(&printer) {
                prop_assert!(j.progress.is_finite() && (0.0..=100.0).contains(&j.progress));
                prop_assert!(j.filename.chars().count() <= 512);
                prop_assert!(j.job_name.chars().count() <= 512);
                prop_assert!(j.estimated_duration.is_none_or(|d| d >= 0));
                prop_assert!(j.actual_duration.is_none_or(|d| d >= 0));
                if let Some(t) = j.printer_start_time {
                    prop_assert!(
                        sanitize::start_time_ok(t, base + Duration::seconds(100_000))
                            || sanitize::start_time_ok(t, base)
                    );
                }
            }
            Ok(())
        })
        .unwrap();
}
