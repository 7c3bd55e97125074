use super::*;
use crate::domain::{PrinterId, PrinterStatus, PrinterType};

fn blank() -> PrinterStatus {
    PrinterStatus::unknown(
        PrinterId::new("p1").unwrap(),
        PrinterType::Prusalink,
        crate::time::now(),
    )
}

const PRINTING_STATUS: &str = r#"{
  "job": {"id": 297, "progress": 42.00, "time_remaining": 3120, "time_printing": 2280},
  "storage": {"path": "/usb/", "name": "usb", "read_only": false},
  "printer": {"state": "PRINTING", "temp_bed": 60.0, "target_bed": 60.0,
              "temp_nozzle": 215.1, "target_nozzle": 215.0, "axis_z": 4.2}
}"#;

const PRINTING_JOB: &str = r#"{
  "id": 297, "state": "PRINTING", "progress": 42.00, "time_remaining": 3120, "time_printing": 2280,
  "file": {"refs": {"download": "/usb/BRACKE~1.BGC"}, "name": "BRACKE~1.BGC",
           "display_name": "bracket_v3_0.4n_0.2mm_PETG_COREONE_1h20m.bgcode",
           "path": "/usb", "size": 1834012, "m_timestamp": 1738671500}
}"#;

fn status_only(state: &str) -> Poll {
    parse_v1_status(format!(r#"{{"printer": {{"state": "{state}"}}}}"#).as_bytes()).unwrap()
}

#[test]
fn v1_printing_status_and_job() {
    let st = parse_v1_status(PRINTING_STATUS.as_bytes()).unwrap();
    let job = parse_v1_job(PRINTING_JOB.as_bytes()).unwrap();
    assert_eq!(
        job.filename.as_deref(),
        Some("bracket_v3_0.4n_0.2mm_PETG_COREONE_1h20m.bgcode")
    );
    let poll = Poll {
        job: merge_job(st.job.clone(), Some(job)),
        ..st
    };
    let mut s = blank();
    PrusaState::default().apply(poll, &mut s);
    assert_eq!(s.state, PrinterState::Printing);
    assert_eq!(s.printer_job_id.as_deref(), Some("297"));
    assert_eq!(
        s.filename.as_deref(),
        Some("bracket_v3_0.4n_0.2mm_PETG_COREONE_1h20m.bgcode")
    );
    assert_eq!(s.job_name, s.filename);
    assert_eq!(s.progress, Some(42.0));
    assert_eq!(s.remaining_s, Some(3120));
    assert_eq!(s.elapsed_s, Some(2280));
    assert_eq!(s.temperatures.nozzle, Some(215.1));
    assert_eq!(s.temperatures.bed_target, Some(60.0));
}

#[test]
fn states_map_as_documented() {
    for (st, want) in [
        ("IDLE", PrinterState::Idle),
        ("READY", PrinterState::Idle),
        ("BUSY", PrinterState::Idle),
        ("PRINTING", PrinterState::Printing),
        ("PAUSED", PrinterState::Paused),
        ("ATTENTION", PrinterState::Paused),
        ("FINISHED", PrinterState::Finished),
        ("STOPPED", PrinterState::Cancelled),
        ("ERROR", PrinterState::Error),
        ("UNKNOWN", PrinterState::Unknown),
        ("SOMETHING", PrinterState::Unknown),
    ] {
        let mut s = blank();
        PrusaState::default().apply(status_only(st), &mut s);
        assert_eq!(s.state, want, "{st}");
    }
}

#[test]
fn end_states_are_attributed_to_the_last_print() {
    let mut mem = PrusaState::default();
    let mut s = blank();
    let st = parse_v1_status(PRINTING_STATUS.as_bytes()).unwrap();
    let job = parse_v1_job(PRINTING_JOB.as_bytes()).unwrap();
    mem.apply(
        Poll {
            job: merge_job(st.job.clone(), Some(job)),
            ..st
        },
        &mut s,
    );
    // Next poll: same print, /api/v1/job not asked again: the name is kept.
    let st = parse_v1_status(PRINTING_STATUS.as_bytes()).unwrap();
    mem.apply(st, &mut s);
    assert_eq!(
        s.filename.as_deref(),
        Some("bracket_v3_0.4n_0.2mm_PETG_COREONE_1h20m.bgcode")
    );
    // FINISHED comes without a job: it is the last print's end, at 100 %.
    mem.apply(status_only("FINISHED"), &mut s);
    assert_eq!(s.state, PrinterState::Finished);
    assert_eq!(s.printer_job_id.as_deref(), Some("297"));
    assert_eq!(s.progress, Some(100.0));
    assert_eq!(s.remaining_s, Some(0));
    assert!(s.filename.is_some());
    // The user leaves the end screen: idle, nothing attributed any more.
    mem.apply(status_only("IDLE"), &mut s);
    assert_eq!(s.state, PrinterState::Idle);
    assert_eq!(s.printer_job_id, None);
    assert_eq!(s.filename, None);
    assert_eq!(s.progress, None);
    mem.apply(status_only("FINISHED"), &mut s);
    assert_eq!(s.printer_job_id, None);
}

#[test]
fn stopped_is_cancelled_and_error_during_a_print_is_failed() {
    let mut mem = PrusaState::default();
    let mut s = blank();
    mem.apply(parse_v1_status(PRINTING_STATUS.as_bytes()).unwrap(), &mut s);
    mem.apply(status_only("STOPPED"), &mut s);
    assert_eq!(s.state, PrinterState::Cancelled);
    assert_eq!(
        s.error.as_deref(),
        Some("cancelled by user (PrusaLink state STOPPED)")
    );
    assert_eq!(s.printer_job_id.as_deref(), Some("297"));
    assert_eq!(s.progress, Some(42.0));

    let mut mem = PrusaState::default();
    mem.apply(parse_v1_status(PRINTING_STATUS.as_bytes()).unwrap(), &mut s);
    mem.apply(status_only("ERROR"), &mut s);
    assert_eq!(s.state, PrinterState::Failed);
    assert_eq!(
        s.error.as_deref(),
        Some("printer error (PrusaLink state ERROR)")
    );
    // An error with no print behind it is the printer's own.
    let mut mem = PrusaState::default();
    mem.apply(status_only("ERROR"), &mut s);
    assert_eq!(s.state, PrinterState::Error);
}

#[test]
fn a_job_id_that_changes_drops_the_old_name() {
    let mut mem = PrusaState::default();
    let mut s = blank();
    let st = parse_v1_status(PRINTING_STATUS.as_bytes()).unwrap();
    let job = parse_v1_job(PRINTING_JOB.as_bytes()).unwrap();
    mem.apply(
        Poll {
            job: merge_job(st.job.clone(), Some(job)),
            ..st
        },
        &mut s,
    );
    let next = PRINTING_STATUS.replace("297", "298");
    mem.apply(parse_v1_status(next.as_bytes()).unwrap(), &mut s);
    assert_eq!(s.printer_job_id.as_deref(), Some("298"));
    assert_eq!(s.filename, None);
}

#[test]
fn merge_prefers_the_newer_job_when_ids_differ() {
    let a = JobInfo {
        id: Some("1".into()),
        progress: Some(5.0),
        ..Default::default()
    };
    let b = JobInfo {
        id: Some("2".into()),
        filename: Some("b".into()),
        ..Default::default()
    };
    assert_eq!(merge_job(Some(a.clone()), Some(b.clone())), Some(b));
    assert_eq!(merge_job(Some(a.clone()), None), Some(a));
    assert_eq!(merge_job(None, None), None);
}

#[test]
fn short_name_and_folders() {
    let job = parse_v1_job(br#"{"id": 3, "file": {"name": "/usb/PART~1.BGC"}}"#).unwrap();
    assert_eq!(job.filename.as_deref(), Some("PART~1.BGC"));
    assert_eq!(job.id.as_deref(), Some("3"));
    let job =
        parse_v1_job(br#"{"id": "7", "file": {"display_name": "", "name": "X.BGC"}}"#).unwrap();
    assert_eq!(job.filename.as_deref(), Some("X.BGC"));
    assert_eq!(base_name("  "), None);
}

#[test]
fn wrong_shapes_are_refused() {
    assert!(matches!(
        parse_v1_status(b"<html>"),
        Err(BodyError::NotJson(_))
    ));
    assert!(matches!(
        parse_v1_status(b"{}"),
        Err(BodyError::WrongType(_))
    ));
    assert!(matches!(
        parse_v1_status(br#"{"printer": {"state": 5}}"#),
        Err(BodyError::WrongType(_))
    ));
    assert!(matches!(
        parse_v1_status(br#"{"printer": {"state": "IDLE"}, "job": {"progress": "lots"}}"#),
        Err(BodyError::WrongType(_))
    ));
    assert!(matches!(parse_v1_job(b"[1]"), Err(BodyError::WrongType(_))));
}

#[test]
fn legacy_printing() {
    let job = br#"{"state": "Printing",
      "job": {"estimatedPrintTime": 5400,
              "file": {"name": "bracket.bgcode", "path": "/usb/BRACKE~1.BGC", "display": "bracket.bgcode"}},
      "progress": {"printTimeLeft": 3120, "completion": 0.42, "printTime": 2280}}"#;
    let printer = br#"{"telemetry": {"temp-bed": 60.0},
      "temperature": {"tool0": {"actual": 215.1, "target": 215.0}, "bed": {"actual": 60.0, "target": 60.0}},
      "state": {"text": "Printing", "flags": {"link_state": "PRINTING", "printing": true}}}"#;
    let poll = parse_legacy(job, Some(printer)).unwrap();
    let mut s = blank();
    PrusaState::default().apply(poll, &mut s);
    assert_eq!(s.state, PrinterState::Printing);
    assert_eq!(s.filename.as_deref(), Some("bracket.bgcode"));
    assert_eq!(s.printer_job_id, None);
    assert!((s.progress.unwrap() - 42.0).abs() < 1e-9);
    assert_eq!(s.remaining_s, Some(3120));
    assert_eq!(s.temperatures.nozzle, Some(215.1));
}

#[test]
fn legacy_idle_and_states() {
    let poll = parse_legacy(
        br#"{"state": "Operational", "job": null, "progress": null}"#,
        None,
    )
    .unwrap();
    assert_eq!(poll.state, "IDLE");
    assert_eq!(poll.job, None);
    let with_job = br#"{"state": "Error", "job": {"file": {"name": "a.gcode"}}, "progress": {"completion": 0.1}}"#;
    assert_eq!(parse_legacy(with_job, None).unwrap().state, "ATTENTION");
    for (text, want) in [
        ("Paused", "PAUSED"),
        ("Pausing", "PAUSED"),
        ("Resuming", "PRINTING"),
        ("Cancelling", "PRINTING"),
        ("Error", "ERROR"),
        ("Busy", "IDLE"),
        ("Unknown", "UNKNOWN"),
    ] {
        let body = format!(r#"{{"state": "{text}"}}"#);
        assert_eq!(
            parse_legacy(body.as_bytes(), None).unwrap().state,
            want,
            "{text}"
        );
    }
    assert!(parse_legacy(br#"{"state": 1}"#, None).is_err());
}

/// A status while printing job 297 with `left` seconds to go.
fn printing(left: i64, state: &str) -> Poll {
    let body = format!(
        r#"{{"job": {{"id": 297, "progress": 90, "time_remaining": {left}, "time_printing": 600}},
             "printer": {{"state": "{state}"}}}}"#
    );
    parse_v1_status(body.as_bytes()).unwrap()
}

fn t0() -> crate::time::Timestamp {
    chrono::DateTime::parse_from_rfc3339("2026-06-01T12:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc)
}

fn secs(n: i64) -> chrono::TimeDelta {
    chrono::TimeDelta::seconds(n)
}

#[test]
fn a_finished_print_ends_when_the_printer_said_it_would_not_when_seen() {
    let mut mem = PrusaState::default();
    let mut s = blank();
    mem.apply_at(printing(120, "PRINTING"), &mut s, t0());
    assert_eq!(s.printer_end_time, None, "not ended yet");
    // FINISHED seen 25 minutes later (a long interval): it ended 120 s after the last
    // status that saw it printing.
    mem.apply_at(status_only("FINISHED"), &mut s, t0() + secs(1500));
    assert_eq!(s.printer_end_time, Some(t0() + secs(120)));
    // Seen again on the end screen: the same end.
    mem.apply_at(status_only("FINISHED"), &mut s, t0() + secs(1530));
    assert_eq!(s.printer_end_time, Some(t0() + secs(120)));
    // The end screen left: no end to tell.
    mem.apply_at(status_only("IDLE"), &mut s, t0() + secs(1560));
    assert_eq!(s.printer_end_time, None);
}

#[test]
fn the_end_estimate_is_bounded_by_the_last_sighting_and_the_end_seen() {
    let mut mem = PrusaState::default();
    let mut s = blank();
    // Done sooner than the printer estimated: not after the status that shows the end.
    mem.apply_at(printing(600, "PRINTING"), &mut s, t0());
    mem.apply_at(status_only("FINISHED"), &mut s, t0() + secs(30));
    assert_eq!(s.printer_end_time, Some(t0() + secs(30)));
    // A clock that went back between the two polls: never before the sighting, never
    // after the end was seen (the end wins).
    let mut mem = PrusaState::default();
    mem.apply_at(printing(0, "PRINTING"), &mut s, t0());
    mem.apply_at(status_only("FINISHED"), &mut s, t0() - secs(5));
    assert_eq!(s.printer_end_time, Some(t0() - secs(5)));
    // An absurd time left (or none) gives no estimate, and no panic.
    for left in [i64::MAX, -1] {
        let mut mem = PrusaState::default();
        let mut p = printing(0, "PRINTING");
        p.job.as_mut().unwrap().remaining_s = Some(left);
        mem.apply_at(p, &mut s, t0());
        mem.apply_at(status_only("FINISHED"), &mut s, t0() + secs(60));
        assert_eq!(s.printer_end_time, None, "{left}");
    }
    assert_eq!(
        memory::end_estimate(Some(t0()), Some(i64::MAX / 2), t0() + secs(1)),
        None
    );
}

#[test]
fn stops_errors_and_prints_last_seen_paused_keep_the_time_they_were_seen() {
    for (last, end) in [
        ("PRINTING", "STOPPED"),
        ("PRINTING", "ERROR"),
        ("PAUSED", "FINISHED"),
    ] {
        let mut mem = PrusaState::default();
        let mut s = blank();
        mem.apply_at(printing(60, "PRINTING"), &mut s, t0());
        mem.apply_at(printing(60, last), &mut s, t0() + secs(10));
        mem.apply_at(status_only(end), &mut s, t0() + secs(300));
        assert_eq!(s.printer_end_time, None, "{last} → {end}");
    }
}

#[test]
fn a_probe_that_sees_the_print_still_printing_moves_the_estimate() {
    let mut mem = PrusaState::default();
    let mut s = blank();
    mem.apply_at(printing(100, "PRINTING"), &mut s, t0());
    // The printer slowed down: 5 s later it still has 100 s to go.
    mem.sighted(&printing(100, "PRINTING"), t0() + secs(5));
    mem.apply_at(status_only("FINISHED"), &mut s, t0() + secs(400));
    assert_eq!(s.printer_end_time, Some(t0() + secs(105)));
    // A probe of another job changes nothing.
    let mut mem = PrusaState::default();
    mem.apply_at(printing(100, "PRINTING"), &mut s, t0());
    let mut other = printing(1, "PRINTING");
    other.job.as_mut().unwrap().id = Some("298".into());
    mem.sighted(&other, t0() + secs(5));
    mem.apply_at(status_only("FINISHED"), &mut s, t0() + secs(400));
    assert_eq!(s.printer_end_time, Some(t0() + secs(100)));
}
