use serde_json::json;

use super::*;
use crate::domain::{PrinterId, PrinterType};

fn status(st: &BambuState) -> PrinterStatus {
    let mut s = PrinterStatus::unknown(
        PrinterId::new("b1").unwrap(),
        PrinterType::Bambu,
        crate::time::now(),
    );
    st.fill(&mut s);
    s
}

fn push(st: &mut BambuState, fields: Value) -> Result<Applied, ReportError> {
    let mut print = fields.as_object().unwrap().clone();
    print.insert("command".into(), json!("push_status"));
    apply(st, json!({ "print": print }))
}

/// A report as the driver receives it: bytes, through `apply_bytes`.
fn apply(st: &mut BambuState, report: Value) -> Result<Applied, ReportError> {
    st.apply_bytes(&serde_json::to_vec(&report).unwrap(), usize::MAX)
}

fn idle_snapshot() -> Value {
    json!({
        "msg": 0, "sequence_id": "2021",
        "gcode_state": "IDLE", "print_type": "idle",
        "subtask_name": "", "gcode_file": "", "gcode_start_time": "0",
        "task_id": "0", "subtask_id": "0",
        "mc_percent": 0, "mc_remaining_time": 0, "layer_num": 0, "total_layer_num": 0,
        "stg_cur": -1, "print_error": 0, "hms": [],
        "nozzle_temper": 25.0, "nozzle_target_temper": 0.0,
        "bed_temper": 24.5, "bed_target_temper": 0.0, "chamber_temper": 22
    })
}

#[test]
fn idle_snapshot_is_complete_and_idle() {
    let mut st = BambuState::new();
    assert!(!st.is_complete());
    assert_eq!(push(&mut st, idle_snapshot()), Ok(Applied::Status));
    assert!(st.is_complete());
    let s = status(&st);
    assert_eq!(s.state, PrinterState::Idle);
    assert_eq!(s.filename, None);
    assert_eq!(s.job_name, None);
    assert_eq!(s.printer_job_id, None);
    assert_eq!(s.printer_start_time, None);
    assert_eq!(s.temperatures.bed, Some(24.5));
    assert_eq!(s.temperatures.chamber, Some(22.0));
    assert_eq!(s.error, None);
}

#[test]
fn a_delta_alone_is_not_a_snapshot() {
    let mut st = BambuState::new();
    push(&mut st, json!({"wifi_signal": "-45dBm", "mc_percent": 3})).unwrap();
    assert!(!st.is_complete());
    push(&mut st, json!({"gcode_state": "RUNNING"})).unwrap();
    assert!(!st.is_complete());
}

#[test]
fn deltas_merge_into_the_snapshot() {
    let mut st = BambuState::new();
    push(&mut st, idle_snapshot()).unwrap();
    push(
        &mut st,
        json!({"gcode_state": "PREPARE", "subtask_name": "bracket_v3",
               "gcode_file": "bracket_v3.gcode.3mf", "gcode_file_prepare_percent": "37"}),
    )
    .unwrap();
    assert_eq!(status(&st).state, PrinterState::Preparing);
    push(
        &mut st,
        json!({"gcode_state": "RUNNING", "total_layer_num": 26, "mc_remaining_time": 115}),
    )
    .unwrap();
    push(&mut st, json!({"mc_percent": 38, "layer_num": 10})).unwrap();
    let s = status(&st);
    assert_eq!(s.state, PrinterState::Printing);
    assert_eq!(s.filename.as_deref(), Some("bracket_v3.gcode.3mf"));
    assert_eq!(s.job_name.as_deref(), Some("bracket_v3"));
    assert_eq!(s.progress, Some(38.0));
    assert_eq!(s.remaining_s, Some(115 * 60));
    assert_eq!(s.layer, Some(10));
    assert_eq!(s.total_layers, Some(26));
    // Unchanged fields survive a delta.
    assert_eq!(s.temperatures.nozzle, Some(25.0));
}

#[test]
fn only_the_fields_read_are_kept() {
    let mut st = BambuState::new();
    push(
        &mut st,
        json!({"ams": {"tray_now": "1", "ams": [1]}, "ipcam": {"rtsp_url": "x"},
               "gcode_state": "IDLE", "nozzle_temper": 24.5}),
    )
    .unwrap();
    assert!(!st.doc.contains_key("ams"), "{:?}", st.doc);
    assert!(!st.doc.contains_key("ipcam"), "{:?}", st.doc);
    assert_eq!(st.doc["gcode_state"], "IDLE");
    assert_eq!(status(&st).temperatures.nozzle, Some(24.5));
}

#[test]
fn states_map_as_documented() {
    for (g, want) in [
        ("IDLE", PrinterState::Idle),
        ("PREPARE", PrinterState::Preparing),
        ("SLICING", PrinterState::Preparing),
        ("INIT", PrinterState::Preparing),
        ("RUNNING", PrinterState::Printing),
        ("PAUSE", PrinterState::Paused),
        ("FINISH", PrinterState::Finished),
        ("FAILED", PrinterState::Failed),
        ("", PrinterState::Unknown),
        ("SOMETHING_NEW", PrinterState::Unknown),
    ] {
        let mut st = BambuState::new();
        push(&mut st, json!({ "gcode_state": g })).unwrap();
        assert_eq!(status(&st).state, want, "{g}");
    }
}

#[test]
fn cancel_sequence_reads_cancelled_even_after_the_code_clears() {
    let mut st = BambuState::new();
    push(&mut st, idle_snapshot()).unwrap();
    push(
        &mut st,
        json!({"gcode_state": "RUNNING", "gcode_file": "x.3mf", "mc_percent": 41,
               "layer_num": 12, "total_layer_num": 30}),
    )
    .unwrap();
    push(&mut st, json!({"print_error": 50348044})).unwrap();
    push(&mut st, json!({"print_error": 50348044})).unwrap();
    assert_eq!(status(&st).state, PrinterState::Printing);
    push(
        &mut st,
        json!({"gcode_state": "FAILED", "mc_percent": 0, "layer_num": 0, "stg_cur": 255}),
    )
    .unwrap();
    let s = status(&st);
    assert_eq!(s.state, PrinterState::Cancelled);
    assert_eq!(s.error.as_deref(), Some("cancelled by user (0300_400C)"));
    // Counters zeroed by the printer: the last real values are kept.
    assert_eq!(s.progress, Some(41.0));
    assert_eq!(s.layer, Some(12));
    push(&mut st, json!({"print_error": 0})).unwrap();
    let s = status(&st);
    assert_eq!(s.state, PrinterState::Cancelled);
    assert_eq!(s.error.as_deref(), Some("cancelled by user (0300_400C)"));
}

#[test]
fn failure_is_failed_and_the_next_print_forgets_the_cancel() {
    let mut st = BambuState::new();
    push(&mut st, idle_snapshot()).unwrap();
    push(
        &mut st,
        json!({"gcode_state": "RUNNING", "gcode_file": "a.3mf"}),
    )
    .unwrap();
    push(
        &mut st,
        json!({"print_error": 50348044, "gcode_state": "FAILED"}),
    )
    .unwrap();
    assert_eq!(status(&st).state, PrinterState::Cancelled);
    push(
        &mut st,
        json!({"print_error": 0, "gcode_state": "PREPARE", "gcode_file": "b.3mf"}),
    )
    .unwrap();
    push(&mut st, json!({"gcode_state": "RUNNING"})).unwrap();
    push(
        &mut st,
        json!({"gcode_state": "FAILED", "print_error": 117473280}),
    )
    .unwrap();
    let s = status(&st);
    assert_eq!(s.state, PrinterState::Failed);
    assert_eq!(s.error.as_deref(), Some("printer error 0700_8000"));
}

#[test]
fn a_failure_reads_as_its_code_and_hms_alerts_in_words_after_they_clear() {
    let mut st = BambuState::new();
    push(&mut st, idle_snapshot()).unwrap();
    push(
        &mut st,
        json!({"gcode_state": "RUNNING", "gcode_file": "a.3mf"}),
    )
    .unwrap();
    // An informational alert while printing is no error.
    push(
        &mut st,
        json!({"hms": [{"attr": 0x0C00_0100, "code": 0x0004_0001}]}),
    )
    .unwrap();
    assert_eq!(status(&st).error, None);
    push(
        &mut st,
        json!({"gcode_state": "FAILED", "print_error": 0x0300_8009u32,
               "hms": [{"attr": 50331904, "code": 65543}, {"attr": "x"}]}),
    )
    .unwrap();
    let want = "Heatbed temperature malfunction (0300_8009); The heatbed temperature is \
                abnormal; the sensor may have an open circuit (HMS 0300_0100_0001_0007)";
    assert_eq!(status(&st).error.as_deref(), Some(want));
    // The printer clears both; the ended print keeps its reason.
    push(&mut st, json!({"print_error": 0, "hms": []})).unwrap();
    let s = status(&st);
    assert_eq!(s.state, PrinterState::Failed);
    assert_eq!(s.error.as_deref(), Some(want));
    // The next print starts without it.
    push(
        &mut st,
        json!({"gcode_state": "RUNNING", "gcode_file": "b.3mf"}),
    )
    .unwrap();
    assert_eq!(status(&st).error, None);
}

#[test]
fn second_cancel_code_counts_too() {
    let mut st = BambuState::new();
    push(
        &mut st,
        json!({"gcode_state": "RUNNING", "gcode_file": "a.3mf"}),
    )
    .unwrap();
    push(
        &mut st,
        json!({"gcode_state": "FAILED", "print_error": 0x0500_400E_u64}),
    )
    .unwrap();
    assert_eq!(status(&st).state, PrinterState::Cancelled);
}

#[test]
fn start_time_and_ids() {
    let mut st = BambuState::new();
    push(
        &mut st,
        json!({"gcode_state": "RUNNING", "gcode_start_time": "1738671939",
               "task_id": "724977923", "subtask_id": "724977924", "gcode_file": "a.3mf"}),
    )
    .unwrap();
    let s = status(&st);
    assert_eq!(s.printer_job_id.as_deref(), Some("724977924"));
    assert_eq!(
        s.printer_start_time.map(|t| t.timestamp()),
        Some(1_738_671_939)
    );
    push(&mut st, json!({"gcode_start_time": "0", "subtask_id": "0"})).unwrap();
    let s = status(&st);
    assert_eq!(s.printer_start_time, None);
    assert_eq!(s.printer_job_id.as_deref(), Some("724977923"));
    push(&mut st, json!({"task_id": "0"})).unwrap();
    assert_eq!(status(&st).printer_job_id, None);
    push(
        &mut st,
        json!({"task_id": CLAMPED_TASK_ID, "gcode_start_time": 1738671000}),
    )
    .unwrap();
    let s = status(&st);
    assert_eq!(s.printer_job_id, None);
    assert_eq!(
        s.printer_start_time.map(|t| t.timestamp()),
        Some(1_738_671_000)
    );
}

#[test]
fn ids_and_start_time_helpers() {
    assert_eq!(
        job_id(Some("".into()), Some("6456".into())).as_deref(),
        Some("6456")
    );
    assert_eq!(job_id(None, None), None);
    assert_eq!(start_time(""), None);
    assert_eq!(start_time("-5"), None);
    assert_eq!(start_time("abc"), None);
}

#[test]
fn filenames_are_normalised() {
    let f = |g: Option<&str>, n: Option<&str>| filename(g, n);
    assert_eq!(
        f(Some("36mm.gcode.3mf"), Some("36mm")).as_deref(),
        Some("36mm.gcode.3mf")
    );
    assert_eq!(
        f(Some("/cache/box.3mf"), Some("box")).as_deref(),
        Some("box.3mf")
    );
    assert_eq!(f(Some("cache/box.3mf"), None).as_deref(), Some("box.3mf"));
    assert_eq!(
        f(
            Some("/data/Metadata/plate_1.gcode"),
            Some("Clamshell Parts Box")
        )
        .as_deref(),
        Some("Clamshell Parts Box")
    );
    assert_eq!(
        f(Some("data/metadata/plate_12.gcode"), Some("proj")).as_deref(),
        Some("proj")
    );
    assert_eq!(
        f(Some("Metadata/plate_2.gcode"), Some(" ")).as_deref(),
        Some("plate_2.gcode")
    );
    assert_eq!(f(Some(""), Some("last")).as_deref(), Some("last"));
    assert_eq!(
        f(Some("plate_x.gcode"), Some("n")).as_deref(),
        Some("plate_x.gcode")
    );
    assert_eq!(f(None, None), None);
}

#[test]
fn total_layers_sent_once_survive_a_reset_to_zero() {
    let mut st = BambuState::new();
    push(
        &mut st,
        json!({"gcode_state": "RUNNING", "gcode_file": "a", "total_layer_num": 80}),
    )
    .unwrap();
    push(
        &mut st,
        json!({"gcode_state": "FINISH", "total_layer_num": 0, "mc_percent": 100}),
    )
    .unwrap();
    let s = status(&st);
    assert_eq!(s.state, PrinterState::Finished);
    assert_eq!(s.total_layers, Some(80));
    assert_eq!(s.progress, Some(100.0));
}

#[test]
fn reset_forgets_everything() {
    let mut st = BambuState::new();
    push(&mut st, idle_snapshot()).unwrap();
    st.reset();
    assert!(!st.is_complete());
    assert_eq!(status(&st).state, PrinterState::Unknown);
}

#[test]
fn error_codes_format_as_documented() {
    assert_eq!(error_code(50348044), "0300_400C");
    assert_eq!(error_code(0), "0000_0000");
}

mod input;
