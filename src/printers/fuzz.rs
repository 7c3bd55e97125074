//! Fuzzing the printer parsers (issue 14). There is no nightly toolchain for cargo-fuzz,
//! so these are proptest runs with arbitrary bytes and structure-aware arbitrary JSON:
//! the Bambu report parser (`BambuState::apply_bytes`, a sequence of reports merged as a
//! printer would send them) and the PrusaLink status/job parsers with the state that turns
//! their polls into a status — each followed by the boundary check (`sanitize.rs`), as in
//! `Reporter::emit`. Properties: nothing panics, and every value that comes out is
//! within the bounds of `sanitize.rs`.
//!
//! Case counts are bounded so the whole file runs in seconds inside `cargo nextest run`
//! (that is how CI runs it). A failure proptest finds is saved under
//! `proptest-regressions/` (committed) and replayed first on every later run.

use proptest::prelude::*;
use serde_json::{Map, Value, json};

use super::bambu::state::BambuState;
use super::prusalink::state::{self, PrusaState};
use super::sanitize::{self, MAX_LAYERS, MAX_TEXT_CHARS};
use crate::domain::PrinterStatus;
use crate::domain::{PrinterId, PrinterType};
use crate::time::{self, Timestamp};

/// Cases per property: enough to walk every field through its odd values, few enough
/// that the file stays a few seconds of a 2-core CI run.
const CASES: u32 = 256;

/// The Bambu report limit the driver uses (any limit will do for the parser).
const LIMIT: usize = 64 * 1024;

/// Every value of a checked status is within the bounds of `sanitize.rs`.
fn assert_in_bounds(s: &PrinterStatus, now: Timestamp) -> Result<(), TestCaseError> {
    if let Some(t) = s.printer_start_time {
        prop_assert!(sanitize::start_time_ok(t, now), "start {t}");
    }
    for d in [s.elapsed_s, s.remaining_s].into_iter().flatten() {
        prop_assert!(sanitize::duration_ok(d), "duration {d}");
    }
    if let Some(p) = s.progress {
        prop_assert!(sanitize::progress_ok(p), "progress {p}");
    }
    for l in [s.layer, s.total_layers].into_iter().flatten() {
        prop_assert!(l <= MAX_LAYERS);
    }
    if let (Some(l), Some(t)) = (s.layer, s.total_layers) {
        prop_assert!(t == 0 || l <= t);
    }
    let t = &s.temperatures;
    for v in [t.nozzle, t.nozzle_target, t.bed, t.bed_target, t.chamber]
        .into_iter()
        .flatten()
    {
        prop_assert!(sanitize::temperature_ok(v), "temperature {v}");
    }
    for name in [&s.filename, &s.job_name, &s.printer_job_id, &s.error]
        .into_iter()
        .flatten()
    {
        prop_assert!(name.chars().count() <= MAX_TEXT_CHARS);
    }
    Ok(())
}

fn blank(kind: PrinterType) -> PrinterStatus {
    PrinterStatus::unknown(PrinterId::new("fuzz").unwrap(), kind, time::now())
}

/// Any JSON value, odd numbers and long strings included, nested a little.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|n| json!(n)),
        prop::sample::select(vec![
            json!(1e300),
            json!(-1e300),
            json!(9.3e15),
            json!(1e11),
            json!(253_402_300_800i64),
            json!(-62_135_596_801i64),
            json!("253402300800"),
            json!("1e400"),
            json!("NaN"),
            json!(" 42 "),
            json!(""),
            json!("0"),
        ]),
        ".{0,40}".prop_map(Value::String),
        (1usize..3000).prop_map(|n| Value::String("ü".repeat(n))),
    ];
    leaf.prop_recursive(2, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(".{0,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// An object with some of `keys`, each with any value.
fn object_of(keys: &'static [&'static str]) -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::vec((prop::sample::select(keys), any_json()), 0..keys.len() + 2)
        .prop_map(|kv| kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

const BAMBU_KEYS: &[&str] = &[
    "gcode_state",
    "subtask_name",
    "gcode_file",
    "gcode_start_time",
    "task_id",
    "subtask_id",
    "mc_percent",
    "mc_remaining_time",
    "layer_num",
    "total_layer_num",
    "nozzle_temper",
    "nozzle_target_temper",
    "bed_temper",
    "bed_target_temper",
    "chamber_temper",
    "print_error",
    "hms",
];

/// A Bambu report: mostly a `push_status` with some of the read fields set to anything
/// (the state from the real vocabulary half the time, so the print memory is exercised).
fn bambu_report() -> impl Strategy<Value = Vec<u8>> {
    let state = prop::sample::select(vec![
        "IDLE", "PREPARE", "RUNNING", "PAUSE", "FINISH", "FAILED", "SLICING", "??",
    ]);
    (object_of(BAMBU_KEYS), prop::option::of(state), any::<u8>()).prop_map(
        |(mut print, state, shape)| {
            if let Some(s) = state {
                print.insert("gcode_state".into(), json!(s));
            }
            print.insert("command".into(), json!("push_status"));
            let report = match shape % 8 {
                0 => json!({"print": Value::Object(print), "sim_sent_at_ms": "x"}),
                1 => json!({"print": "not an object"}),
                _ => json!({"print": Value::Object(print)}),
            };
            serde_json::to_vec(&report).unwrap()
        },
    )
}

fn bambu_run(reports: &[Vec<u8>]) -> Result<(), TestCaseError> {
    let mut st = BambuState::new();
    let now = time::now();
    for r in reports {
        let _ = st.apply_bytes(r, LIMIT);
        let mut s = blank(PrinterType::Bambu);
        st.fill(&mut s);
        sanitize::check(&mut s, now);
        assert_in_bounds(&s, now)?;
    }
    Ok(())
}

const V1_JOB_KEYS: &[&str] = &["id", "progress", "time_remaining", "time_printing", "file"];

/// A `/api/v1/status` body: the real shape with any values, or any object.
fn prusa_status() -> impl Strategy<Value = Vec<u8>> {
    let state = prop::sample::select(vec![
        "IDLE",
        "PRINTING",
        "PAUSED",
        "FINISHED",
        "STOPPED",
        "ERROR",
        "ATTENTION",
        "??",
    ]);
    (
        object_of(V1_JOB_KEYS),
        state,
        prop::collection::vec(any::<f64>(), 4),
        any_json(),
        any::<bool>(),
    )
        .prop_map(|(job, state, temps, other, shaped)| {
            let v = if shaped {
                json!({"job": job, "printer": {"state": state, "temp_nozzle": temps[0],
                       "target_nozzle": temps[1], "temp_bed": temps[2], "target_bed": temps[3]}})
            } else {
                other
            };
            serde_json::to_vec(&v).unwrap()
        })
}

/// A `/api/v1/job` body.
fn prusa_job() -> impl Strategy<Value = Vec<u8>> {
    (object_of(V1_JOB_KEYS), any_json(), any::<u8>()).prop_map(|(mut job, file, shape)| {
        if shape % 2 == 0 {
            job.insert(
                "file".into(),
                json!({"name": file.clone(), "display_name": file}),
            );
        }
        serde_json::to_vec(&Value::Object(job)).unwrap()
    })
}

fn prusa_apply(
    memory: &mut PrusaState,
    poll: Result<state::Poll, state::BodyError>,
) -> Result<(), TestCaseError> {
    let now = time::now();
    if let Ok(p) = poll {
        let mut s = blank(PrinterType::Prusalink);
        memory.apply(p, &mut s);
        sanitize::check(&mut s, now);
        assert_in_bounds(&s, now)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn bambu_arbitrary_bytes(reports in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 1..6)) {
        bambu_run(&reports)?;
    }

    #[test]
    fn bambu_arbitrary_reports(reports in prop::collection::vec(bambu_report(), 1..8)) {
        bambu_run(&reports)?;
    }

    #[test]
    fn prusalink_arbitrary_bytes(bodies in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 3)) {
        let mut memory = PrusaState::default();
        prusa_apply(&mut memory, state::parse_v1_status(&bodies[0]))?;
        let _ = state::parse_v1_job(&bodies[1]);
        prusa_apply(&mut memory, state::parse_legacy(&bodies[1], Some(&bodies[2])))?;
    }

    #[test]
    fn prusalink_arbitrary_answers(
        polls in prop::collection::vec((prusa_status(), prusa_job(), any::<bool>()), 1..6),
        legacy in (any_json(), any_json()),
    ) {
        let mut memory = PrusaState::default();
        for (status, job, with_job) in &polls {
            let poll = state::parse_v1_status(status).map(|mut p| {
                if *with_job && let Ok(j) = state::parse_v1_job(job) {
                    p.job = state::merge_job(p.job.take(), Some(j));
                }
                p
            });
            prusa_apply(&mut memory, poll)?;
        }
        let (job, printer) = (serde_json::to_vec(&legacy.0).unwrap(), serde_json::to_vec(&legacy.1).unwrap());
        prusa_apply(&mut memory, state::parse_legacy(&job, Some(&printer)))?;
    }
}

/// Regressions of issue 14, kept by name: each once broke the history.
#[test]
fn the_values_of_issue_14_come_out_dropped_or_cut() {
    let now = time::now();
    // PrusaLink `time_printing` 9.3e15 s (a TimeDelta overflow in the JobCreator) and 1e11.
    for t in [9.3e15, 1e11] {
        let body = json!({"id": 7, "progress": 50, "time_printing": t, "time_remaining": t,
                          "file": {"name": "a.bgcode"}});
        let mut s = blank(PrinterType::Prusalink);
        let mut memory = PrusaState::default();
        let mut poll =
            state::parse_v1_status(br#"{"printer":{"state":"PRINTING"},"job":{"id":7}}"#).unwrap();
        poll.job = state::merge_job(
            poll.job,
            Some(state::parse_v1_job(body.to_string().as_bytes()).unwrap()),
        );
        memory.apply(poll, &mut s);
        let c = sanitize::check(&mut s, now);
        assert_eq!(c.dropped, ["elapsed_s", "remaining_s"]);
    }
    // Bambu `gcode_start_time` in year 10000 and a 900 KB `subtask_name`.
    let mut st = BambuState::new();
    let long = "n".repeat(900_000);
    let report = json!({"print": {"command": "push_status", "gcode_state": "RUNNING",
        "gcode_file": "x.3mf", "subtask_name": long, "task_id": "9", "gcode_start_time": "253402300800"}});
    st.apply_bytes(report.to_string().as_bytes(), 2 << 20)
        .unwrap();
    let mut s = blank(PrinterType::Bambu);
    st.fill(&mut s);
    let c = sanitize::check(&mut s, now);
    assert_eq!(c.dropped, ["printer_start_time"]);
    assert_eq!(c.cut, ["job_name"]);
    assert_eq!(s.job_name.unwrap().chars().count(), MAX_TEXT_CHARS);
}
