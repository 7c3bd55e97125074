//! OctoPrint's answers and socket messages as OctoPrint 1.11 sends them (and broken
//! ones), through the parser and the state, to the status the driver reports.

use super::*;
use crate::domain::{PrinterId, PrinterType};

fn blank() -> PrinterStatus {
    PrinterStatus::unknown(
        PrinterId::new("o1").unwrap(),
        PrinterType::Octoprint,
        crate::time::now(),
    )
}

/// An `/api/job` answer as OctoPrint 1.11 gives it.
fn job(state: &str, path: Option<&str>, completion: &str, time: &str, left: &str) -> Vec<u8> {
    let file = match path {
        Some(p) => format!(
            r#"{{"name": "{p}", "display": "{p}", "path": "{p}", "origin": "local", "size": 1468987, "date": 1738670000}}"#
        ),
        None => {
            r#"{"name": null, "path": null, "origin": null, "size": null, "date": null}"#.into()
        }
    };
    format!(
        r#"{{"job": {{"file": {file}, "estimatedPrintTime": 4811.3, "user": "alice"}},
            "progress": {{"completion": {completion}, "filepos": 1, "printTime": {time}, "printTimeLeft": {left}, "printTimeLeftOrigin": "estimate"}},
            "state": "{state}"}}"#
    )
    .into_bytes()
}

fn status_of(o: &OctoState) -> PrinterStatus {
    let mut s = blank();
    o.fill(&mut s);
    s
}

fn snap(o: &mut OctoState, body: &[u8], now: Instant) -> PrinterStatus {
    assert!(o.apply_snapshot(parse_job(body).unwrap(), now));
    status_of(o)
}

#[test]
fn printing_then_done_by_polling_alone() {
    let now = Instant::now();
    let mut o = OctoState::default();
    let s = snap(
        &mut o,
        &job("Operational", None, "null", "null", "null"),
        now,
    );
    assert_eq!(s.state, PrinterState::Idle);
    assert_eq!(s.filename, None);
    let s = snap(
        &mut o,
        &job(
            "Printing",
            Some("parts/bracket_v3.gcode"),
            "22.98",
            "276",
            "912",
        ),
        now,
    );
    assert_eq!(s.state, PrinterState::Printing);
    assert_eq!(s.filename.as_deref(), Some("bracket_v3.gcode"));
    assert_eq!(s.progress, Some(22.98));
    assert_eq!(s.elapsed_s, Some(276));
    assert_eq!(s.remaining_s, Some(912));
    assert_eq!(s.printer_job_id, None, "OctoPrint has no job id");
    let s = snap(
        &mut o,
        &job(
            "Operational",
            Some("parts/bracket_v3.gcode"),
            "100.0",
            "1200",
            "0",
        ),
        now,
    );
    assert_eq!(s.state, PrinterState::Finished);
    assert_eq!(s.filename.as_deref(), Some("bracket_v3.gcode"));
    assert_eq!(s.progress, Some(100.0));
    // The last job lingers (quirk 7.3.4): still the same end, never a new print.
    let s = snap(
        &mut o,
        &job(
            "Operational",
            Some("parts/bracket_v3.gcode"),
            "100.0",
            "1200",
            "0",
        ),
        now,
    );
    assert_eq!(s.state, PrinterState::Finished);
    // Another file selected: the end is gone.
    let s = snap(
        &mut o,
        &job("Operational", Some("lid.gcode"), "null", "null", "null"),
        now,
    );
    assert_eq!(s.state, PrinterState::Idle);
}

#[test]
fn cancel_by_polling_is_all_null_progress_and_a_selected_file_is_not_a_print() {
    let now = Instant::now();
    let mut o = OctoState::default();
    // A file selected but never printed looks like a cancel; without a print seen it is idle.
    let s = snap(
        &mut o,
        &job("Operational", Some("a.gcode"), "null", "null", "null"),
        now,
    );
    assert_eq!(s.state, PrinterState::Idle);
    snap(
        &mut o,
        &job("Printing", Some("a.gcode"), "5", "10", "200"),
        now,
    );
    let s = snap(
        &mut o,
        &job("Cancelling", Some("a.gcode"), "5", "11", "200"),
        now,
    );
    assert_eq!(s.state, PrinterState::Printing);
    let s = snap(
        &mut o,
        &job("Operational", Some("a.gcode"), "null", "null", "null"),
        now,
    );
    assert_eq!(s.state, PrinterState::Cancelled);
    assert_eq!(s.filename.as_deref(), Some("a.gcode"));
}

#[test]
fn error_during_a_print_is_its_failure_and_error_while_idle_is_the_printers() {
    let now = Instant::now();
    let mut o = OctoState::default();
    let s = snap(
        &mut o,
        &job("Error: Printer halted", None, "null", "null", "null"),
        now,
    );
    assert_eq!(s.state, PrinterState::Error);
    assert!(s.error.is_some());
    snap(
        &mut o,
        &job("Printing from SD", Some("b.gcode"), "50", "100", "100"),
        now,
    );
    let s = snap(
        &mut o,
        &job("Offline after error", Some("b.gcode"), "50", "100", "100"),
        now,
    );
    assert_eq!(s.state, PrinterState::Failed);
    assert_eq!(s.filename.as_deref(), Some("b.gcode"));
}

#[test]
fn offline_keeps_the_print_open() {
    let now = Instant::now();
    let mut o = OctoState::default();
    snap(
        &mut o,
        &job("Printing", Some("c.gcode"), "50", "100", "100"),
        now,
    );
    let s = snap(
        &mut o,
        &job(
            "Offline (Error: Too many consecutive timeouts)",
            None,
            "null",
            "null",
            "null",
        ),
        now,
    );
    assert_eq!(s.state, PrinterState::Unknown, "neither an end nor idle");
    assert!(s.error.as_deref().unwrap().contains("not connected"));
    let s = snap(
        &mut o,
        &job("Printing", Some("c.gcode"), "60", "120", "80"),
        now,
    );
    assert_eq!(s.state, PrinterState::Printing);
}

#[test]
fn a_print_done_before_the_driver_looked_is_finished_not_idle() {
    let now = Instant::now();
    let mut o = OctoState::default();
    let s = snap(
        &mut o,
        &job("Operational", Some("d.gcode"), "100.0", "3600", "0"),
        now,
    );
    assert_eq!(s.state, PrinterState::Finished);
    assert_eq!(s.filename.as_deref(), Some("d.gcode"));
}

fn push(o: &mut OctoState, body: &str, now: Instant) -> PrinterStatus {
    match parse_push(body.as_bytes()).unwrap() {
        Push::Current(s) => {
            o.apply_push(s, now);
        }
        Push::Event(e) => o.apply_event(e, now),
        other => panic!("{other:?}"),
    }
    status_of(o)
}

fn current(state: &str, path: &str, completion: &str) -> String {
    format!(
        r#"{{"current": {{"state": {{"text": "{state}", "flags": {{}}, "error": ""}},
            "job": {{"file": {{"path": "{path}", "name": "{path}", "date": 1738670000, "origin": "local"}}}},
            "progress": {{"completion": {completion}, "printTime": 5, "printTimeLeft": null}},
            "temps": [{{"time": 1, "tool0": {{"actual": 210.5, "target": 215.0}}, "bed": {{"actual": 60.0, "target": 60.0}}}}],
            "logs": [], "messages": []}}}}"#
    )
}

#[test]
fn events_start_and_end_prints_at_once() {
    let t0 = Instant::now();
    let mut o = OctoState::default();
    push(&mut o, &current("Operational", "", "null"), t0);
    let s = push(
        &mut o,
        r#"{"event": {"type": "PrintStarted", "payload": {"name": "x.gcode", "path": "f/x.gcode", "origin": "local", "size": 10}}}"#,
        t0,
    );
    assert_eq!(s.state, PrinterState::Printing);
    assert_eq!(s.filename.as_deref(), Some("x.gcode"));
    // A poll answer sent before the event still says idle: skipped.
    assert!(!o.apply_snapshot(
        parse_job(&job("Operational", None, "null", "null", "null")).unwrap(),
        t0
    ));
    let s = push(&mut o, &current("Printing", "f/x.gcode", "3.5"), t0);
    assert_eq!(s.progress, Some(3.5));
    assert_eq!(s.temperatures.nozzle, Some(210.5));
    let s = push(
        &mut o,
        r#"{"event": {"type": "PrintPaused", "payload": {}}}"#,
        t0,
    );
    assert_eq!(s.state, PrinterState::Paused);
    push(
        &mut o,
        r#"{"event": {"type": "PrintResumed", "payload": {}}}"#,
        t0,
    );
    let s = push(
        &mut o,
        r#"{"event": {"type": "PrintCancelled", "payload": {"time": 12}}}"#,
        t0,
    );
    assert_eq!(s.state, PrinterState::Cancelled);
    assert_eq!(s.error.as_deref(), Some("cancelled by user"));
    let s = push(
        &mut o,
        r#"{"event": {"type": "PrintFailed", "payload": {"reason": "cancelled"}}}"#,
        t0,
    );
    assert_eq!(
        s.state,
        PrinterState::Cancelled,
        "the cancel's PrintFailed is not a failure"
    );
    // A `current` still showing the print, sent before the cancel: skipped.
    let s = push(&mut o, &current("Printing", "f/x.gcode", "4"), t0);
    assert_eq!(s.state, PrinterState::Cancelled);
    // After the grace, OctoPrint's word counts again.
    let later = t0 + EVENT_GRACE + Duration::from_millis(1);
    let s = push(&mut o, &current("Operational", "f/x.gcode", "null"), later);
    assert_eq!(s.state, PrinterState::Cancelled);

    // The same file again: a new print, then done.
    let s = push(
        &mut o,
        r#"{"event": {"type": "PrintStarted", "payload": {"path": "f/x.gcode"}}}"#,
        later,
    );
    assert_eq!(s.state, PrinterState::Printing);
    let s = push(
        &mut o,
        r#"{"event": {"type": "PrintDone", "payload": {"time": 30}}}"#,
        later,
    );
    assert_eq!(s.state, PrinterState::Finished);
    assert_eq!(s.progress, Some(100.0));
    let s = push(
        &mut o,
        r#"{"event": {"type": "PrintStarted", "payload": {"path": "y.gcode"}}}"#,
        later,
    );
    assert_eq!(s.filename.as_deref(), Some("y.gcode"));
    let s = push(
        &mut o,
        r#"{"event": {"type": "PrintFailed", "payload": {"reason": "error"}}}"#,
        later,
    );
    assert_eq!(s.state, PrinterState::Failed);
    assert_eq!(s.filename.as_deref(), Some("y.gcode"));
}

#[test]
fn bad_and_odd_input_is_refused_or_bounded_never_a_panic() {
    for body in [
        &b"{\"job\":"[..],
        b"[]",
        b"{}",
        b"{\"state\": 3}",
        b"\xff\xfe",
    ] {
        assert!(parse_job(body).is_err(), "{body:?}");
    }
    assert!(parse_push(b"{\"current\": {\"state\": 1}}").is_err());
    assert_eq!(parse_push(b"{\"connected\": {}}").unwrap(), Push::Other);
    assert_eq!(
        parse_push(b"{\"reauthRequired\": {}}").unwrap(),
        Push::ReauthRequired
    );
    let long = "x".repeat(10_000);
    let body = format!(
        r#"{{"state": "Printing", "job": {{"file": {{"path": "{long}", "date": 1e300}}}},
            "progress": {{"completion": 1e308, "printTime": -5, "printTimeLeft": 1e20}}}}"#
    );
    let sn = parse_job(body.as_bytes()).unwrap();
    let f = sn.file.clone().unwrap();
    assert_eq!(f.path.chars().count(), MAX_TEXT_CHARS);
    assert_eq!(f.date, None);
    assert_eq!(sn.completion, Some(100.0));
    assert_eq!(sn.print_time, None);
    assert_eq!(sn.print_time_left, None);
    let s = parse_job(br#"{"state": "Printing", "progress": {"completion": "NaN"}}"#).unwrap();
    assert_eq!(s.completion, None);
}

#[test]
fn state_texts_match_by_prefix() {
    for (t, k) in [
        ("Operational", Kind::Idle),
        ("Printing from SD", Kind::Printing),
        ("Sending file to SD", Kind::Printing),
        ("Starting print from SD", Kind::Starting),
        ("Pausing", Kind::Paused),
        ("Paused", Kind::Paused),
        ("Resuming", Kind::Printing),
        ("Cancelling", Kind::Printing),
        ("Finishing", Kind::Printing),
        ("Error: Thermal runaway", Kind::Error),
        ("Offline after error", Kind::Error),
        ("Offline (Error: x)", Kind::Offline),
        ("Detecting serial connection", Kind::Offline),
        ("", Kind::Unknown),
        ("Ünïcode", Kind::Unknown),
        ("Pä", Kind::Unknown),
        ("Oé", Kind::Unknown),
    ] {
        assert_eq!(kind_of(t), k, "{t}");
    }
}

mod stale;
