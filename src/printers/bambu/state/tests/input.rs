//! Reports as the wire may bring them: numbers as strings, wrong types, unknown members,
//! malformed and oversized bytes, invalid UTF-8, other subsystems' messages.

use super::*;

#[test]
fn numbers_may_be_strings() {
    let mut st = BambuState::new();
    push(
        &mut st,
        json!({"gcode_state": "RUNNING", "gcode_file": "a", "mc_percent": "12",
               "nozzle_temper": "219.5", "layer_num": 3.0}),
    )
    .unwrap();
    let s = status(&st);
    assert_eq!(s.progress, Some(12.0));
    assert_eq!(s.temperatures.nozzle, Some(219.5));
    assert_eq!(s.layer, Some(3));
}

#[test]
fn wrongly_typed_reports_are_refused_whole() {
    let mut st = BambuState::new();
    push(&mut st, idle_snapshot()).unwrap();
    for bad in [
        json!({"gcode_state": 5}),
        json!({"mc_percent": "lots", "gcode_state": "RUNNING"}),
        json!({"task_id": ["x"]}),
        json!({"hms": {"a": 1}}),
    ] {
        assert!(
            matches!(push(&mut st, bad.clone()), Err(ReportError::WrongType(_))),
            "{bad}"
        );
    }
    // Nothing of the refused reports was merged.
    assert_eq!(status(&st).state, PrinterState::Idle);
    assert_eq!(
        apply(&mut st, json!({"print": "nope"})),
        Err(ReportError::WrongType("print".into()))
    );
    assert_eq!(apply(&mut st, json!([1, 2])), Err(ReportError::NotObject));
}

#[test]
fn members_not_read_are_skipped_whatever_they_hold() {
    // A report as a real X1 sends it: nested AMS objects, arrays of objects, numbers of
    // every kind, escapes, and names the daemon does not read around the ones it does.
    let payload = br#"{"print":{"ams":{"ams":[{"id":"0","tray":[{"id":"0","tray_color":"FF0000FF"}]}],"tray_now":"255"},
        "command":"push_status","wifi_signal":"-52dBm","lights_report":[{"node":"chamber_light","mode":"on"}],
        "gcode_state":"RUNNING","mc_percent":41,"big":18446744073709551615,"neg":-3,"f":1.5e3,"t":true,"n":null,
        "subtask_name":"A \"quoted\" \u00e9 name","gcode_file":"/cache/a.3mf","upgrade_state":{"new_ver_list":[]}},
        "info":{"command":"get_version","module":[]},"unknown_top":1700000000123}"#;
    let mut st = BambuState::new();
    assert_eq!(st.apply_bytes(payload, 10_000), Ok(Applied::Status));
    let s = status(&st);
    assert_eq!(s.state, PrinterState::Printing);
    assert_eq!(s.progress, Some(41.0));
    assert_eq!(s.job_name.as_deref(), Some("A \"quoted\" \u{e9} name"));
    assert_eq!(s.filename.as_deref(), Some("a.3mf"));
    // Of a name given twice, the last counts (as a JSON object reads).
    let twice = br#"{"print":{"command":"push_status","gcode_state":"RUNNING","mc_percent":50,"mc_percent":60}}"#;
    assert_eq!(st.apply_bytes(twice, 10_000), Ok(Applied::Status));
    assert_eq!(status(&st).progress, Some(60.0));
    // `print` that is not an object, whatever it is instead, is a wrong type; a report
    // that is not an object at all is refused as such.
    for bad in [
        &b"{\"print\":null}"[..],
        b"{\"print\":[1,{\"a\":2}]}",
        b"{\"print\":7}",
    ] {
        assert_eq!(
            st.apply_bytes(bad, 1000),
            Err(ReportError::WrongType("print".into())),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
    for bad in [&b"[1,2]"[..], b"\"text\"", b"12"] {
        assert_eq!(st.apply_bytes(bad, 1000), Err(ReportError::NotObject));
    }
    // Nothing of the refused reports was merged.
    assert_eq!(status(&st).progress, Some(60.0));
}

#[test]
fn malformed_and_oversized_bytes_are_refused() {
    let mut st = BambuState::new();
    assert!(matches!(
        st.apply_bytes(b"{\"print\": {", 1000),
        Err(ReportError::NotJson(_))
    ));
    assert!(matches!(
        st.apply_bytes(&[0xff, 0xfe, 0x00], 1000),
        Err(ReportError::NotJson(_))
    ));
    assert_eq!(
        st.apply_bytes(&[b' '; 2000], 1000),
        Err(ReportError::TooLarge {
            size: 2000,
            limit: 1000
        })
    );
}

#[test]
fn invalid_utf8_in_names_is_decoded_lossily() {
    let mut st = BambuState::new();
    let mut payload =
        br#"{"print":{"command":"push_status","gcode_state":"IDLE","subtask_name":"caf"#.to_vec();
    payload.push(0xE9);
    payload.extend_from_slice(br#""}}"#);
    assert_eq!(st.apply_bytes(&payload, 1000), Ok(Applied::Status));
    assert_eq!(status(&st).job_name.as_deref(), Some("caf\u{FFFD}"));
}

#[test]
fn acks_and_other_subsystems_are_not_state() {
    let mut st = BambuState::new();
    assert_eq!(
        apply(
            &mut st,
            json!({"print": {"command": "pause", "result": "success", "gcode_state": "PAUSE"}})
        ),
        Ok(Applied::Other)
    );
    assert_eq!(
        apply(&mut st, json!({"info": {"command": "get_version"}})),
        Ok(Applied::Other)
    );
    assert_eq!(status(&st).state, PrinterState::Unknown);
}

#[test]
fn unknown_top_level_members_are_ignored() {
    let mut st = BambuState::new();
    apply(
        &mut st,
        json!({"print": {"command": "push_status", "gcode_state": "IDLE"},
                    "sim_sent_at_ms": 1700000000123_i64, "event": {"event": "client.connected"}}),
    )
    .unwrap();
    assert_eq!(status(&st).state, PrinterState::Idle);
}
