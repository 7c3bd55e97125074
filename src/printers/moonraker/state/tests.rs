//! Moonraker's objects, deltas and history jobs as its documentation shapes them (and
//! odd ones), through the merged state, to the status the driver reports.

use serde_json::json;

use super::*;
use crate::domain::{PrinterId, PrinterType};

fn status_of(m: &MoonState) -> PrinterStatus {
    let mut s = PrinterStatus::unknown(
        PrinterId::new("m1").unwrap(),
        PrinterType::Moonraker,
        crate::time::now(),
    );
    m.fill(&mut s);
    s
}

fn job(id: &str, file: &str, status: &str) -> HistoryJob {
    parse_job(
        &json!({"job_id": id, "filename": file, "status": status, "start_time": 1738671939.43}),
    )
    .unwrap()
}

#[test]
fn subscribe_then_deltas_then_history_end() {
    let mut m = MoonState::default();
    assert!(m.merge(&json!({
        "webhooks": {"state": "ready", "state_message": "Printer is ready"},
        "print_stats": {"filename": "", "state": "standby", "total_duration": 0.0, "print_duration": 0.0,
                        "message": "", "info": {"total_layer": null, "current_layer": null}},
        "virtual_sdcard": {"progress": 0.0, "is_active": false},
        "display_status": {"progress": 0.0, "message": ""},
        "extruder": {"temperature": 24.0, "target": 0.0}
    })));
    let s = status_of(&m);
    assert_eq!(s.state, PrinterState::Idle);
    assert_eq!(s.filename, None);
    m.merge(
        &json!({"print_stats": {"state": "printing", "filename": "parts/bracket_v3.gcode",
                                    "total_duration": 100.0, "print_duration": 90.0,
                                    "info": {"total_layer": 120, "current_layer": 37}},
                    "display_status": {"progress": 0.25}}),
    );
    let s = status_of(&m);
    assert_eq!(s.state, PrinterState::Printing);
    assert_eq!(s.filename.as_deref(), Some("bracket_v3.gcode"));
    assert_eq!(s.printer_job_id, None, "no history job yet");
    m.history(job("0000BF", "parts/bracket_v3.gcode", "in_progress"));
    let s = status_of(&m);
    assert_eq!(s.printer_job_id.as_deref(), Some("0000BF"));
    assert!(s.printer_start_time.is_some());
    assert_eq!(s.progress, Some(25.0));
    assert_eq!(s.remaining_s, Some(270));
    assert_eq!((s.layer, s.total_layers), (Some(37), Some(120)));
    assert_eq!(s.elapsed_s, Some(100));
    // An end macro resets the card: standby, but the history says completed (quirk 7.4.2).
    m.merge(&json!({"print_stats": {"state": "standby"}}));
    m.history(job("0000BF", "parts/bracket_v3.gcode", "completed"));
    let s = status_of(&m);
    assert_eq!(s.state, PrinterState::Finished);
    assert_eq!(s.printer_job_id.as_deref(), Some("0000BF"));
    assert_eq!(s.progress, Some(100.0));
}

#[test]
fn end_states_from_print_stats_and_vendor_words() {
    for (st, want) in [
        ("complete", PrinterState::Finished),
        ("completed", PrinterState::Finished),
        ("cancelled", PrinterState::Cancelled),
        ("error", PrinterState::Failed),
        ("paused", PrinterState::Paused),
        ("bogus", PrinterState::Unknown),
    ] {
        let mut m = MoonState::default();
        m.merge(&json!({"print_stats": {"state": st, "filename": "a.gcode"}}));
        assert_eq!(status_of(&m).state, want, "{st}");
    }
    // Why it ended: Klipper's message, or a person's cancel.
    let mut m = MoonState::default();
    m.merge(
        &json!({"print_stats": {"state": "error", "filename": "a.gcode",
                                    "message": "Move out of range: 230.000 0.000 0.500"}}),
    );
    assert_eq!(
        status_of(&m).error.as_deref(),
        Some("Move out of range: 230.000 0.000 0.500")
    );
    m.merge(&json!({"print_stats": {"state": "cancelled", "message": ""}}));
    assert_eq!(status_of(&m).error.as_deref(), Some("cancelled by user"));
}

#[test]
fn klippy_shutdown_during_a_print_is_its_failure() {
    let mut m = MoonState::default();
    m.merge(&json!({"print_stats": {"state": "printing", "filename": "a.gcode"}, "webhooks": {"state": "ready"}}));
    m.merge(&json!({"webhooks": {"state": "shutdown", "state_message": "MCU 'mcu' shutdown: Timer too close"}}));
    let s = status_of(&m);
    assert_eq!(s.state, PrinterState::Failed);
    assert!(s.error.as_deref().unwrap().contains("Timer too close"));
    let mut idle = MoonState::default();
    idle.set_klippy("startup");
    assert_eq!(status_of(&idle).state, PrinterState::Unknown);
}

#[test]
fn odd_input_is_bounded() {
    let mut m = MoonState::default();
    assert!(!m.merge(&json!([1, 2])));
    let long = "y".repeat(5000);
    m.merge(
        &json!({"print_stats": {"state": "printing", "filename": long, "total_duration": -4.0,
                                    "print_duration": 1e300, "info": {"current_layer": 1e20}},
                    "display_status": {"progress": 7.0}}),
    );
    let s = status_of(&m);
    assert_eq!(s.filename.unwrap().chars().count(), MAX_TEXT_CHARS);
    assert_eq!(s.elapsed_s, None);
    assert_eq!(s.progress, Some(100.0));
    assert_eq!(s.layer, None);
    assert_eq!(parse_job(&json!({"job_id": ""})), None);
    assert_eq!(
        parse_job(&json!({"job_id": 7, "start_time": 1e300}))
            .unwrap()
            .start_time,
        None
    );
    let mut many = serde_json::Map::new();
    for i in 0..1000 {
        many.insert(format!("k{i}"), json!(i));
    }
    m.merge(&json!({"print_stats": many}));
    assert!(m.objects["print_stats"].as_object().unwrap().len() <= MAX_FIELDS);
}
