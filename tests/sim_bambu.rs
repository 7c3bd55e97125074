//! The simulated Bambu printers seen through a plain rumqttc client over TLS: what
//! protocols.md §2 says a real printer sends (login refusals, pushall, X1 full reports, P1
//! deltas, every lifecycle path of §2.7).

mod sim_common;

use std::sync::Arc;
use std::time::Duration;

use printfarmd_sim::{Action, SimFarm, Style};
use rumqttc::ConnectReturnCode;
use rustls::pki_types::ServerName;
use serde_json::{Value, json};
use sim_common::{GUARD, Seen, connect, connect_topic, quick, tls_config};
use tokio::io::AsyncWriteExt;

const CANCEL: i64 = 50_348_044;

fn print(file: &str, s: u64) -> Action {
    Action::Print {
        file: file.into(),
        duration_s: s,
        layers: Some(4),
    }
}

async fn farm(style: Style) -> SimFarm {
    quick()
        .bambu(1, style)
        .control_addr(None)
        .start()
        .await
        .expect("farm")
}

#[tokio::test]
async fn a_wrong_access_code_or_user_is_refused_with_the_real_connack_codes() {
    let farm = farm(Style::X1).await;
    let p = &farm.printers()[0];
    let mut c = connect(&farm, p, "bblp", "00000000");
    assert!(matches!(
        c.next().await,
        Seen::Refused(ConnectReturnCode::NotAuthorized)
    ));
    let mut c = connect(&farm, p, "admin", p.access_code.as_deref().unwrap());
    assert!(matches!(
        c.next().await,
        Seen::Refused(ConnectReturnCode::BadUserNamePassword)
    ));
    let mut c = connect(&farm, p, "bblp", p.access_code.as_deref().unwrap());
    assert!(matches!(c.next().await, Seen::Connected));
    farm.shutdown().await;
}

#[tokio::test]
async fn p1_answers_pushall_in_full_then_reports_only_changes() {
    let farm = farm(Style::P1).await;
    let p = farm.printers()[0].clone();
    assert_eq!(p.style, "p1");
    let mut c = connect(&farm, &p, "bblp", p.access_code.as_deref().unwrap());
    let full = c
        .until("the pushall answer", |s| s.contains_key("gcode_state"))
        .await;
    assert_eq!(full["msg"], 0);
    assert_eq!(full["gcode_state"], "IDLE");
    assert!(full.len() > 25, "a full object: {full:?}");
    assert!(
        !full.contains_key("gcode_start_time"),
        "P1 has no start time"
    );

    farm.control(&p.id, print("36mm.gcode.3mf", 3))
        .await
        .unwrap();
    let prepare = c.until_state("PREPARE").await;
    assert_eq!(prepare["msg"], 1);
    assert!(prepare.len() < 15, "a delta: {prepare:?}");
    assert_eq!(c.str("subtask_name"), "36mm");
    assert_eq!(c.str("task_id"), "0");
    c.until("progress", |s| {
        s.get("mc_percent").and_then(Value::as_i64).unwrap_or(0) > 0
    })
    .await;
    assert_eq!(c.int("total_layer_num"), 4);
    c.until_state("FINISH").await;
    assert_eq!(c.int("mc_percent"), 100);
    let running: Vec<_> = c
        .frames
        .iter()
        .skip_while(|f| f.get("stg_cur") != Some(&json!(0)))
        .take_while(|f| !f.contains_key("gcode_state"))
        .collect();
    assert!(!running.is_empty());
    assert!(
        running
            .iter()
            .all(|f| !f.contains_key("subtask_name") && !f.contains_key("total_layer_num")),
        "unchanged keys are not repeated: {running:?}"
    );
    farm.shutdown().await;
}

#[tokio::test]
async fn x1_reports_the_full_object_with_start_time_and_task_ids() {
    let farm = farm(Style::X1).await;
    let p = farm.printers()[0].clone();
    let mut c = connect(&farm, &p, "bblp", p.access_code.as_deref().unwrap());
    c.until_state("IDLE").await;
    farm.control(&p.id, print("/cache/bracket_v3.gcode.3mf", 3))
        .await
        .unwrap();
    let prepare = c.until_state("PREPARE").await;
    assert_eq!(prepare["subtask_name"], "bracket_v3");
    assert_eq!(prepare["gcode_file"], "/data/Metadata/plate_1.gcode");
    let running = c
        .until("printing", |s| s.get("stg_cur") == Some(&json!(0)))
        .await;
    assert_ne!(running["gcode_start_time"], "0");
    assert_ne!(running["task_id"], "0");
    c.until_state("FINISH").await;
    let keys = c.frames[0].len();
    assert!(
        c.frames
            .iter()
            .all(|f| f.len() == keys && f.contains_key("gcode_state")),
        "every report is the full object"
    );
    // What a printer sends and nothing else: third-party clients die on extra keys.
    let log = farm.report_log(&p.id).unwrap();
    assert!(log.iter().all(|r| {
        r.json()
            .and_then(|v| v.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()))
            .is_some_and(|keys| keys == ["print"])
    }));
    farm.shutdown().await;
}

#[tokio::test]
async fn cancel_sends_the_error_twice_then_failed_then_clears_it() {
    let farm = farm(Style::P1).await;
    let p = farm.printers()[0].clone();
    let mut c = connect(&farm, &p, "bblp", p.access_code.as_deref().unwrap());
    c.until_state("IDLE").await;
    farm.control(&p.id, print("a", 60)).await.unwrap();
    c.until("printing", |s| s.get("stg_cur") == Some(&json!(0)))
        .await;
    farm.control(&p.id, Action::Cancel).await.unwrap();
    c.until_state("FAILED").await;
    assert_eq!(c.int("mc_percent"), 0);
    assert_eq!(c.int("layer_num"), 0);
    c.until("print_error back to 0", |s| {
        s.get("print_error") == Some(&json!(0))
    })
    .await;
    let errors: Vec<i64> = c
        .frames
        .iter()
        .filter_map(|f| f.get("print_error").and_then(Value::as_i64))
        .filter(|&e| e != 0)
        .collect();
    assert_eq!(errors, [CANCEL, CANCEL]);
    farm.shutdown().await;
}

#[tokio::test]
async fn pause_resume_finish_and_the_stale_finish_of_the_next_job() {
    let farm = farm(Style::X1).await;
    let p = farm.printers()[0].clone();
    let mut c = connect(&farm, &p, "bblp", p.access_code.as_deref().unwrap());
    c.until_state("IDLE").await;
    farm.control(&p.id, print("first.gcode.3mf", 60))
        .await
        .unwrap();
    c.until("printing", |s| s.get("stg_cur") == Some(&json!(0)))
        .await;
    assert!(
        farm.control(&p.id, Action::Resume).await.is_err(),
        "not paused"
    );
    farm.control(&p.id, Action::Pause).await.unwrap();
    c.until_state("PAUSE").await;
    farm.control(&p.id, Action::Resume).await.unwrap();
    c.until_state("RUNNING").await;
    farm.control(&p.id, Action::Finish).await.unwrap();
    c.until_state("FINISH").await;
    assert_eq!(c.int("mc_percent"), 100);
    assert_eq!(
        farm.status(&p.id).unwrap().file.as_deref(),
        Some("first"),
        "the name lingers"
    );

    farm.control(&p.id, print("second.gcode.3mf", 60))
        .await
        .unwrap();
    assert!(farm.status(&p.id).unwrap().active);
    let stale = c.until("a report after the new job", |_| true).await;
    assert_eq!(stale["gcode_state"], "FINISH");
    assert_eq!(stale["subtask_name"], "first");
    let prepare = c.until_state("PREPARE").await;
    assert_eq!(prepare["subtask_name"], "second");
    farm.shutdown().await;
}

#[tokio::test]
async fn failures_during_prepare_and_while_printing_carry_print_error_and_hms() {
    let farm = quick()
        .bambu(1, Style::X1)
        .prepare_ms(4_000)
        .control_addr(None)
        .start()
        .await
        .unwrap();
    let p = farm.printers()[0].clone();
    let mut c = connect(&farm, &p, "bblp", p.access_code.as_deref().unwrap());
    c.until_state("IDLE").await;
    farm.control(&p.id, print("a", 60)).await.unwrap();
    c.until_state("PREPARE").await;
    farm.control(&p.id, Action::Fail).await.unwrap();
    let failed = c.until_state("FAILED").await;
    assert!(
        c.frames.iter().all(|f| f["gcode_state"] != "RUNNING"),
        "PREPARE → FAILED without RUNNING"
    );
    assert_eq!(failed["print_error"], 0x0300_8009);
    assert_eq!(failed["hms"][0]["attr"], 50_331_904);
    farm.shutdown().await;
}

#[tokio::test]
async fn reboot_drops_the_session_and_the_job_comes_back_with_start_time_zero() {
    let farm = farm(Style::X1).await;
    let p = farm.printers()[0].clone();
    let mut c = connect(&farm, &p, "bblp", p.access_code.as_deref().unwrap());
    c.until_state("IDLE").await;
    farm.control(&p.id, print("a", 120)).await.unwrap();
    c.until("printing", |s| {
        s.get("stg_cur") == Some(&json!(0)) && s.get("gcode_start_time") != Some(&json!("0"))
    })
    .await;
    farm.control(&p.id, Action::Reboot).await.unwrap();
    assert!(!farm.status(&p.id).unwrap().online);
    loop {
        if let Seen::Disconnected(_) = c.next().await {
            break;
        }
    }
    // rumqttc reconnects by itself; the helper resubscribes and asks for pushall.
    c.until("the job after the reboot", |s| {
        s.get("gcode_start_time") == Some(&json!("0"))
    })
    .await;
    assert_eq!(c.str("gcode_state"), "RUNNING");
    assert_eq!(c.str("subtask_name"), "a");
    farm.shutdown().await;
}

#[tokio::test]
async fn garbage_arrives_as_a_malformed_payload_and_silence_holds_reports_back() {
    let farm = farm(Style::P1).await;
    let p = farm.printers()[0].clone();
    let mut c = connect(&farm, &p, "bblp", p.access_code.as_deref().unwrap());
    c.until_state("IDLE").await;
    farm.control(&p.id, Action::Garbage).await.unwrap();
    loop {
        if let Seen::Report(None) = c.next().await {
            break;
        }
    }
    let before = printfarmd_sim::unix_ms();
    farm.control(&p.id, Action::Silence { seconds: 1 })
        .await
        .unwrap();
    assert!(farm.status(&p.id).unwrap().silent);
    c.publish(r#"{"pushing":{"command":"pushall"}}"#).await;
    farm.control(&p.id, print("a", 30)).await.unwrap();
    let frame = c.until_state("RUNNING").await;
    let log = farm.report_log(&p.id).unwrap();
    let sent = log
        .iter()
        .rev()
        .find_map(|r| {
            r.json()
                .filter(|v| v["print"]["sequence_id"] == frame["sequence_id"])
                .map(|_| r.sent_at_ms)
        })
        .unwrap();
    assert!(sent >= before + 1000, "nothing is published while silent");
    farm.shutdown().await;
}

#[tokio::test]
async fn pushall_shapes_get_version_and_a_wrong_case_serial() {
    let farm = farm(Style::P1).await;
    let p = farm.printers()[0].clone();
    let code = p.access_code.clone().unwrap();
    // A wrong-case serial subscribes fine and receives nothing (§7.1 13).
    let lower = format!(
        "device/{}/report",
        p.serial.as_deref().unwrap().to_lowercase()
    );
    let mut wrong = connect_topic(&farm, &p, "bblp", &code, &lower);
    assert!(matches!(wrong.next().await, Seen::Connected));
    let mut c = connect_topic(&farm, &p, "bblp", &code, "device/+/report");
    c.until_state("IDLE").await;
    for shape in [
        r#"{"pushing":{"sequence_id":"0","command":"pushall","version":1,"push_target":1}}"#,
        r#"{"pushing":{"command":"pushall"},"info":{"command":"get_version"},"upgrade":{"command":"get_history"}}"#,
    ] {
        c.state.insert("msg".into(), json!(-1));
        c.publish(shape).await;
        let f = c
            .until("a full answer", |s| s.get("msg") == Some(&json!(0)))
            .await;
        assert_eq!(f["gcode_state"], "IDLE");
    }
    let version = loop {
        if let Seen::Report(Some(v)) = c.next().await
            && v.get("info").is_some()
        {
            break v;
        }
    };
    assert_eq!(version["info"]["module"][0]["name"], "ota");
    assert!(
        tokio::time::timeout(Duration::from_millis(300), wrong.rx.recv())
            .await
            .is_err(),
        "the wrong-case topic stays silent"
    );
    farm.shutdown().await;
}

#[tokio::test]
async fn the_leaf_certificate_is_picked_by_sni_and_names_the_serial() {
    let farm = farm(Style::X1).await;
    let p = farm.printers()[0].clone();
    let serial = p.serial.clone().unwrap();
    let connector = tokio_rustls::TlsConnector::from(tls_config(&farm));
    // Verification against the CA with server name = serial succeeds only if the leaf names it.
    let tcp = tokio::net::TcpStream::connect(farm.broker_addr())
        .await
        .unwrap();
    let name = ServerName::try_from(serial.clone()).unwrap();
    let mut tls = tokio::time::timeout(GUARD, connector.connect(name, tcp))
        .await
        .unwrap()
        .expect("leaf for the serial");
    let leaf = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    assert!(
        leaf.windows(serial.len()).any(|w| w == serial.as_bytes()),
        "CN = serial"
    );
    tls.shutdown().await.ok();
    // Another printer's name is not on this leaf.
    let tcp = tokio::net::TcpStream::connect(farm.broker_addr())
        .await
        .unwrap();
    let other = ServerName::try_from("01P00A000000000".to_string()).unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::clone(&tls_config(&farm)));
    assert!(connector.connect(other, tcp).await.is_err());
    farm.shutdown().await;
}
