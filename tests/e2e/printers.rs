//! Issue 4 end to end: printers reach `GET /api/v1/printers` and `printer_status`, are
//! managed at runtime, and misbehaving ones are marked, not fatal.

use std::time::Duration;

use printfarmd_sim::{Action, SimPrinterInfo, Style};
use serde_json::{Value, json};

use crate::rig::{self, Rig, farm, print, prusa, x1};

fn secrets(infos: &[SimPrinterInfo]) -> Vec<String> {
    infos
        .iter()
        .flat_map(|p| [p.access_code.clone(), p.password.clone()])
        .flatten()
        .collect()
}

/// A printer's `[[printers]]` entry as the API's JSON.
fn entry(p: &SimPrinterInfo) -> Value {
    let mut v = serde_json::to_value(p).unwrap();
    v.as_object_mut().unwrap().remove("style");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_printers_api_shows_every_printer_live_and_never_a_secret() {
    let r = Rig::start(x1(1).bambu(1, Style::P1).prusalink(1)).await;
    let (code, list) = r.d.get("/api/v1/printers").await;
    assert_eq!(code, 200);
    assert_eq!(list["total_count"], 3);
    for p in list["printers"].as_array().unwrap() {
        assert_eq!(p["connection"], "connected", "{p}");
        assert_eq!(p["state"], "idle", "{p}");
        assert_eq!(p["managed_by"], "config");
        assert!(p["last_seen"].is_string(), "{p}");
        assert!(p["current_print"].is_null(), "{p}");
        assert!(
            p.get("access_code").is_none() && p.get("password").is_none(),
            "{p}"
        );
    }
    let (_, one) = r.d.get("/api/v1/printers/prusa_1").await;
    assert_eq!(one["type"], "prusalink");
    let (code, missing) = r.d.get("/api/v1/printers/nope").await;
    assert_eq!(code, 404);
    assert_eq!(missing["code"], "printer_not_found");
    let everything = format!("{list}{}", r.d.log());
    for s in secrets(&r.sim.printers()) {
        assert!(
            !everything.contains(&s),
            "a secret leaked into a response or the log"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_lifecycle_state_reaches_get_printers_and_the_websocket() {
    let r = Rig::start(x1(1).prusalink(1)).await;
    let mut ws = r.d.ws().await;
    ws.subscribe(json!({"events": ["printer_status"], "printer_ids": ["bambu_1", "prusa_1"]}))
        .await;
    for id in ["bambu_1", "prusa_1"] {
        r.act(id, print("lamp_shade.3mf", 40)).await;
        // The job is listed, and named in `current_print`, once its creation is committed
        // (a moment after the printing status).
        let p = r
            .wait_printer(id, "printing with its job", |p| {
                p["state"] == "printing" && p["current_print"]["job_id"].is_string()
            })
            .await;
        let cp = &p["current_print"];
        let jobs = r.jobs(&format!("printer_id={id}")).await;
        assert_eq!(cp["job_id"], jobs[0]["id"], "{p}");
        assert!(cp["progress"].is_number(), "{p}");
        assert!(p["temperatures"]["nozzle"].is_number(), "{p}");
        r.act_when_ready(id, Action::Pause).await;
        r.wait_printer(id, "paused", |p| p["state"] == "paused")
            .await;
        tokio::time::sleep(Duration::from_millis(1200)).await;
        r.act(id, Action::Resume).await;
        r.wait_printer(id, "printing again", |p| p["state"] == "printing")
            .await;
        tokio::time::sleep(Duration::from_millis(1200)).await;
        r.act(id, Action::Finish).await;
        let p = r
            .wait_printer(id, "finished", |p| p["state"] == "finished")
            .await;
        assert!(p["current_print"].is_null(), "{p}");
    }
    // The stream carried the same states (coalesced, but each lasted over a second).
    // Statuses keep coming while printers are connected: read what was sent during the
    // test, until both printers' `finished` is seen (bounded).
    let mut seen: Vec<(String, String)> = Vec::new();
    let deadline = tokio::time::Instant::now() + rig::WAIT;
    let finished = |seen: &[(String, String)]| {
        ["bambu_1", "prusa_1"]
            .iter()
            .all(|id| seen.iter().any(|(p, s)| p == id && s == "finished"))
    };
    while !finished(&seen) && tokio::time::Instant::now() < deadline {
        let Some(m) = ws.next_json(Duration::from_secs(2)).await else {
            break;
        };
        if m["type"] == "printer_status" {
            let d = &m["data"];
            let pair = (
                d["id"].as_str().unwrap().to_owned(),
                d["state"].as_str().unwrap().to_owned(),
            );
            if seen.last() != Some(&pair) {
                seen.push(pair);
            }
        }
    }
    for id in ["bambu_1", "prusa_1"] {
        let states: Vec<&str> = seen
            .iter()
            .filter(|(p, _)| p == id)
            .map(|(_, s)| s.as_str())
            .collect();
        for want in ["printing", "paused", "finished"] {
            assert!(states.contains(&want), "{id}: no {want} in {states:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn printers_added_through_the_api_are_persisted_started_and_stopped() {
    let sim = farm()
        .bambu(1, Style::X1)
        .prusalink(1)
        .start()
        .await
        .unwrap();
    // The daemon starts with no printers; both are added at runtime.
    let d = rig::start_daemon(rig::DAEMON_EXTRA, String::new()).await;
    let r = Rig { sim, d };
    for p in r.sim.printers() {
        let (code, body) = r.d.send("POST", "/api/v1/printers", Some(entry(&p))).await;
        assert_eq!(code, 201, "{body}");
        assert_eq!(body["managed_by"], "api");
        assert!(body.get("access_code").is_none() && body.get("password").is_none());
    }
    let (code, dup) =
        r.d.send(
            "POST",
            "/api/v1/printers",
            Some(entry(&r.sim.printers()[0])),
        )
        .await;
    assert_eq!(code, 409, "{dup}");
    for p in r.sim.printers() {
        r.wait_printer(&p.id, "connected", |v| v["connection"] == "connected")
            .await;
    }
    // Still there, and connected, after a restart.
    let r = r.restart_daemon(false).await;
    let (_, list) = r.d.get("/api/v1/printers").await;
    assert_eq!(list["total_count"], 2, "{list}");
    for p in r.sim.printers() {
        r.wait_printer(&p.id, "connected after restart", |v| {
            v["connection"] == "connected"
        })
        .await;
    }
    // A print on the API-added printer becomes a job; deleting the printer keeps it.
    r.act("prusa_1", print("tag.gcode", 30)).await;
    r.wait_jobs("printer_id=prusa_1", "a running job", |j| j.len() == 1)
        .await;
    let (code, _) = r.d.send("DELETE", "/api/v1/printers/prusa_1", None).await;
    assert_eq!(code, 204);
    let (code, _) = r.d.get("/api/v1/printers/prusa_1").await;
    assert_eq!(code, 404);
    let jobs = r.jobs("printer_id=prusa_1").await;
    assert_eq!(jobs.len(), 1, "the history outlives the printer");
    assert_eq!(
        jobs[0]["status"], "unknown",
        "an open job cannot be followed any more"
    );
    let r = r.restart_daemon(false).await;
    let (_, list) = r.d.get("/api/v1/printers").await;
    assert_eq!(list["total_count"], 1, "{list}");
    // PUT changes an entry: a wrong access code now, which the printer refuses.
    let mut bad = entry(&r.sim.printers()[0]);
    bad["access_code"] = json!("00000000");
    bad.as_object_mut().unwrap().remove("id");
    let (code, body) = r.d.send("PUT", "/api/v1/printers/bambu_1", Some(bad)).await;
    assert_eq!(code, 200, "{body}");
    let p = r
        .wait_printer("bambu_1", "auth_failed", |v| {
            v["connection"] == "auth_failed"
        })
        .await;
    let msg = p["last_error"].as_str().unwrap_or("");
    assert!(msg.contains("access code"), "{p}");
    assert!(
        !format!("{p}{}", r.d.log()).contains("00000000"),
        "a secret leaked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_file_printers_cannot_be_changed_or_deleted_through_the_api() {
    let r = Rig::start(prusa(1)).await;
    let (code, body) = r.d.send("DELETE", "/api/v1/printers/prusa_1", None).await;
    assert_eq!(code, 409, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("config file"),
        "{body}"
    );
    let (code, body) =
        r.d.send(
            "PUT",
            "/api/v1/printers/prusa_1",
            Some(entry(&r.sim.printers()[0])),
        )
        .await;
    assert_eq!(code, 409, "{body}");
    let (code, body) =
        r.d.send(
            "POST",
            "/api/v1/printers",
            Some(json!({"id": "x", "type": "bambu", "host": "h"})),
        )
        .await;
    assert_eq!(code, 422, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("serial"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_or_access_code_marks_the_printer_auth_failed() {
    let sim = x1(1).prusalink(1).start().await.unwrap();
    let toml = sim
        .config_toml()
        .replace(&sim.printers()[0].access_code.clone().unwrap(), "11111111")
        .replace(
            &sim.printers()[1].password.clone().unwrap(),
            "wrong-password",
        );
    let d = rig::start_daemon(rig::DAEMON_EXTRA, toml).await;
    let r = Rig { sim, d };
    for id in ["bambu_1", "prusa_1"] {
        let p = r
            .wait_printer(id, "auth_failed", |v| v["connection"] == "auth_failed")
            .await;
        assert!(
            p["last_error"].as_str().is_some_and(|m| !m.is_empty()),
            "{p}"
        );
    }
    assert!(!r.d.log().contains("wrong-password") && !r.d.log().contains("11111111"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_rebooted_silent_and_garbage_sending_printers_stay_monitored() {
    let r = Rig::start(x1(1).prusalink(1)).await;
    for id in ["bambu_1", "prusa_1"] {
        r.act(id, print("rough.3mf", 60)).await;
    }
    let before = r
        .wait_jobs("status=running", "two running jobs", |j| j.len() == 2)
        .await;
    for a in [
        Action::Garbage,
        Action::Disconnect,
        Action::Silence { seconds: 5 },
        Action::Reboot,
    ] {
        for id in ["bambu_1", "prusa_1"] {
            r.act(id, a.clone()).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        for id in ["bambu_1", "prusa_1"] {
            r.wait_printer(id, "connected and printing again", |p| {
                p["connection"] == "connected" && p["state"] == "printing"
            })
            .await;
        }
    }
    // Still the same two jobs, still running.
    let after = r.jobs("").await;
    assert_eq!(after.len(), 2);
    for j in &after {
        assert_eq!(j["status"], "running");
        assert!(before.iter().any(|b| b["id"] == j["id"]));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_monitoring_interval_applies_without_a_restart() {
    let r = Rig::start_with(prusa(1), "[monitoring]\ninterval = 3600\n").await;
    r.act("prusa_1", print("slow_poll.gcode", 60)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        r.jobs("").await.is_empty(),
        "with an hourly poll the print is not seen yet"
    );
    let (code, _) =
        r.d.send(
            "PUT",
            "/api/v1/settings",
            Some(json!({"monitoring_interval": 1})),
        )
        .await;
    assert_eq!(code, 200);
    r.wait_jobs("", "the print seen", |j| j.len() == 1).await;
}
