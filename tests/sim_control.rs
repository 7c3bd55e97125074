//! The simulator's control surfaces: the HTTP control API (listing, config block, actions,
//! JSON errors), replay of a recording, the auto driver, and `printfarmd simulate` itself.

mod sim_common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use printfarmd_sim::{Action, SimError, Style};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use sim_common::{GUARD, Seen, connect, quick};

fn http() -> Client {
    Client::builder().timeout(GUARD).build().unwrap()
}

#[tokio::test]
async fn get_printers_lists_each_printer_as_its_config_entry_with_its_style() {
    let farm = quick()
        .bambu(1, Style::X1)
        .bambu(1, Style::P1)
        .prusalink(1)
        .start()
        .await
        .unwrap();
    let base = format!("http://{}", farm.control_addr().unwrap());
    let list: Value = http()
        .get(format!("{base}/printers"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 3);
    let ids: Vec<_> = list.iter().map(|p| p["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["bambu_1", "bambu_2", "prusa_1"]);
    assert_eq!(list[0]["type"], "bambu");
    assert_eq!(list[0]["style"], "x1");
    assert_eq!(list[1]["style"], "p1");
    assert_eq!(list[0]["port"], farm.broker_addr().port());
    assert_eq!(list[0]["access_code"].as_str().unwrap().len(), 8);
    assert!(list[0]["serial"].is_string());
    assert_eq!(list[2]["type"], "prusalink");
    assert_eq!(list[2]["username"], "maker");
    assert!(list[2]["password"].is_string());
    assert!(list[2].get("access_code").is_none());
    let one: Value = http()
        .get(format!("{base}/printers/prusa_1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one["status"]["state"], "IDLE");
    farm.shutdown().await;
}

#[tokio::test]
async fn get_config_is_a_printers_block_the_daemon_accepts_as_is() {
    let farm = quick()
        .bambu(2, Style::P1)
        .prusalink(2)
        .start()
        .await
        .unwrap();
    let base = format!("http://{}", farm.control_addr().unwrap());
    let toml = http()
        .get(format!("{base}/config"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(toml, farm.config_toml());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("daemon.toml");
    std::fs::write(&path, &toml).unwrap();
    let loaded =
        printfarmd::config::Config::load(Some(&path)).expect("the daemon accepts the block");
    assert_eq!(loaded.config.printers.len(), 4);
    let first = &loaded.config.printers[0];
    assert_eq!(first.port, Some(farm.broker_addr().port()));
    assert_eq!(
        first.serial.as_deref(),
        farm.printers()[0].serial.as_deref()
    );
    farm.shutdown().await;
}

#[tokio::test]
async fn actions_over_http_drive_printers_and_mistakes_get_clear_json_errors() {
    let farm = quick()
        .bambu(1, Style::X1)
        .prusalink(1)
        .start()
        .await
        .unwrap();
    let base = format!("http://{}", farm.control_addr().unwrap());
    let c = http();
    let post = |path: &str, body: Option<&str>| {
        let mut req = c.post(format!("{base}{path}"));
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        req.send()
    };
    let resp = post(
        "/printers/bambu_1/print",
        Some(r#"{"file": "bracket.gcode.3mf", "duration_s": 30, "layers": 12}"#),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert!(body["printer"]["active"].as_bool().unwrap());
    assert_eq!(
        post(
            "/printers/prusa_1/print",
            Some(r#"{"file": "a.bgcode", "duration_s": 30}"#)
        )
        .await
        .unwrap()
        .status(),
        StatusCode::OK
    );
    assert_eq!(
        post("/printers/prusa_1/pause", None)
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert_eq!(farm.status("prusa_1").unwrap().state, "PAUSED");
    assert_eq!(
        post("/printers/prusa_1/silence", Some(r#"{"seconds": 1}"#))
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );

    let cases: &[(&str, Option<&str>, StatusCode, &str)] = &[
        (
            "/printers/nope/pause",
            None,
            StatusCode::NOT_FOUND,
            "printer_not_found",
        ),
        (
            "/printers/bambu_1/explode",
            None,
            StatusCode::BAD_REQUEST,
            "unknown_action",
        ),
        (
            "/printers/bambu_1/print",
            None,
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            "/printers/bambu_1/print",
            Some(r#"{"file": "x", "duration_s": "long"}"#),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            "/printers/bambu_1/print",
            Some(r#"{"file": "x", "duration_s": 5, "colour": "red"}"#),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            "/printers/bambu_1/silence",
            Some(r#"{"seconds": 0}"#),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            "/printers/bambu_1/print",
            Some(r#"{"file": "x", "duration_s": 5}"#),
            StatusCode::CONFLICT,
            "invalid_state",
        ),
        (
            "/printers/bambu_1/resume",
            None,
            StatusCode::CONFLICT,
            "invalid_state",
        ),
        (
            "/printers/bambu_1/dismiss",
            None,
            StatusCode::BAD_REQUEST,
            "unsupported_action",
        ),
    ];
    for (path, body, status, code) in cases {
        let resp = post(path, *body).await.unwrap();
        assert_eq!(resp.status(), *status, "{path} {body:?}");
        let err: Value = resp.json().await.unwrap();
        assert_eq!(err["status"], "error");
        assert_eq!(err["code"], *code, "{path} {body:?}: {err}");
        assert!(!err["message"].as_str().unwrap().is_empty());
    }
    let huge = format!(
        r#"{{"file": "{}", "duration_s": 5}}"#,
        "x".repeat(64 * 1024)
    );
    let resp = post("/printers/bambu_1/print", Some(&huge)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let resp = c.get(format!("{base}/nowhere")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(resp.json::<Value>().await.unwrap()["code"], "not_found");
    farm.shutdown().await;
}

#[tokio::test]
async fn a_recording_plays_back_as_one_printer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("capture.jsonl");
    let lines = [
        json!({"delay_ms": 0, "payload": {"print": {"command": "push_status", "msg": 1, "sequence_id": "1", "gcode_state": "PREPARE", "subtask_name": "recorded"}}}),
        json!({"delay_ms": 100, "payload": {"print": {"command": "push_status", "msg": 1, "sequence_id": "2", "gcode_state": "RUNNING", "mc_percent": 5}}}),
        json!({"delay_ms": 100, "payload": {"print": {"command": "push_status", "msg": 1, "sequence_id": "3", "gcode_state": "FINISH", "mc_percent": 100}}}),
    ];
    std::fs::write(
        &path,
        lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .unwrap();
    let farm = quick()
        .replay("recorded_1", &path)
        .control_addr(None)
        .start()
        .await
        .unwrap();
    let p = farm.printer("recorded_1").unwrap();
    assert_eq!(p.style, "replay");
    let mut c = connect(&farm, &p, "bblp", p.access_code.as_deref().unwrap());
    c.until_state("FINISH").await;
    let states: Vec<_> = c
        .frames
        .iter()
        .filter(|f| f["msg"] == 1)
        .map(|f| f["gcode_state"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(states, ["PREPARE", "RUNNING", "FINISH"]);
    c.publish(r#"{"pushing":{"command":"pushall"}}"#).await;
    let full = c
        .until("the merged pushall answer", |s| {
            s.get("msg") == Some(&json!(0))
        })
        .await;
    assert_eq!(full["subtask_name"], "recorded");
    assert_eq!(full["mc_percent"], 100);
    let refused = farm.control("recorded_1", Action::Pause).await.unwrap_err();
    assert!(matches!(refused, SimError::Unsupported(_)));
    farm.shutdown().await;
}

#[tokio::test]
async fn auto_mode_starts_prints_by_itself() {
    let farm = quick()
        .bambu(2, Style::P1)
        .prusalink(1)
        .auto(true)
        .control_addr(None)
        .start()
        .await
        .unwrap();
    let ids: Vec<_> = farm.printers().into_iter().map(|p| p.id).collect();
    let deadline = tokio::time::Instant::now() + GUARD;
    loop {
        let started: u64 = ids
            .iter()
            .map(|id| farm.status(id).unwrap().jobs_started)
            .sum();
        if started >= 3 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "auto mode started {started} prints"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let p = farm.printers()[0].clone();
    let mut c = connect(&farm, &p, "bblp", p.access_code.as_deref().unwrap());
    let first = c.until("a report", |s| s.contains_key("gcode_state")).await;
    assert_ne!(
        first["gcode_state"], "IDLE",
        "the printer is busy with an auto print"
    );
    farm.shutdown().await;
}

#[tokio::test]
async fn printfarmd_simulate_prints_its_addresses_and_serves_the_farm() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_printfarmd"))
        .args([
            "simulate",
            "--bambu",
            "2",
            "--prusa",
            "1",
            "--broker",
            "127.0.0.1:0",
            "--control",
            "127.0.0.1:0",
            "--auto",
            "false",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("printfarmd simulate");
    let stdout = child.stdout.take().unwrap();
    let control = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find_map(|l| {
                l.split_whitespace()
                    .find(|w| w.starts_with("http://"))
                    .map(str::to_string)
            })
    });
    let control = tokio::time::timeout(GUARD, control)
        .await
        .ok()
        .and_then(|r| r.ok())
        .flatten();
    let result = async {
        let control = control.expect("the control URL on stdout");
        let list: Value = http()
            .get(format!("{control}/printers"))
            .send()
            .await?
            .json()
            .await?;
        anyhow::Ok(list)
    }
    .await;
    let _ = child.kill();
    let _ = child.wait();
    let list = result.unwrap();
    let styles: Vec<_> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["style"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(styles, ["x1", "p1", "buddy"], "--style mixed by default");
}

#[tokio::test]
async fn a_refused_login_never_reaches_the_printer() {
    let farm = quick()
        .bambu(1, Style::P1)
        .control_addr(None)
        .start()
        .await
        .unwrap();
    let p = farm.printers()[0].clone();
    let mut c = connect(&farm, &p, "bblp", "wrong");
    assert!(matches!(c.next().await, Seen::Refused(_)));
    assert_eq!(farm.status(&p.id).unwrap().clients, 0);
    farm.shutdown().await;
}

/// `GET /printers/{id}/sent` gives the send times of the status reports (not of command
/// answers), and `refuse` makes the printer answer its `print` commands `result: "fail"`
/// as 2025 firmware does, while it keeps reporting.
#[tokio::test]
async fn the_send_log_and_a_printer_that_refuses_commands() {
    let farm = quick().bambu(1, Style::X1).start().await.unwrap();
    let p = farm.printers()[0].clone();
    let base = format!("http://{}", farm.control_addr().unwrap());
    let mut c = connect(&farm, &p, "bblp", p.access_code.as_deref().unwrap());
    c.publish(r#"{"pushing":{"command":"pushall"}}"#).await;
    c.until("a full report", |s| s.contains_key("gcode_state"))
        .await;
    farm.control(
        &p.id,
        Action::Print {
            file: "a.3mf".into(),
            duration_s: 60,
            layers: None,
        },
    )
    .await
    .unwrap();
    c.until_state("RUNNING").await;
    let refuse = http()
        .post(format!("{base}/printers/{}/refuse", p.id))
        .body(r#"{"seconds": 30}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(refuse.status(), StatusCode::OK);
    c.publish(r#"{"print":{"sequence_id":"77","command":"stop","param":""}}"#)
        .await;
    let ack = loop {
        if let Seen::Report(Some(v)) = c.next().await
            && v["print"]["command"] == "stop"
        {
            break v;
        }
    };
    assert_eq!(ack["print"]["sequence_id"], "77");
    assert_eq!(ack["print"]["result"], "fail");
    assert_eq!(ack["print"]["reason"], "mqtt message verify failed");
    assert!(farm.status(&p.id).unwrap().active, "still printing");
    let sent: Value = http()
        .get(format!("{base}/printers/{}/sent", p.id))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let times: Vec<u64> = sent["sent_at_ms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_u64().unwrap())
        .collect();
    let reports = farm
        .report_log(&p.id)
        .unwrap()
        .into_iter()
        .filter(|r| {
            r.json()
                .is_some_and(|v| v["print"]["command"] == "push_status")
        })
        .map(|r| r.sent_at_ms)
        .collect::<Vec<_>>();
    assert!(!times.is_empty());
    assert_eq!(
        times[..],
        reports[..times.len()],
        "status reports only, oldest first"
    );
    let bad = http()
        .post(format!("{base}/printers/{}/refuse", p.id))
        .send()
        .await
        .unwrap();
    assert_eq!(
        bad.status(),
        StatusCode::BAD_REQUEST,
        "refuse needs seconds"
    );
    farm.shutdown().await;
}
