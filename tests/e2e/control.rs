//! Issue 22 end to end: pause, resume and cancel from `POST /api/v1/printers/{id}/…`
//! reach simulated Bambu (MQTT `print` command, acknowledged) and PrusaLink (v1 job
//! endpoints) printers over real sockets; the job follows through the normal status
//! path; wrong states get 409, a silent printer 504, a refusing printer 502.

use printfarmd_sim::Action;
use serde_json::Value;

use crate::rig::{self, Rig, print, prusa, x1};

async fn post(r: &Rig, id: &str, action: &str) -> (u16, Value) {
    r.d.send("POST", &format!("/api/v1/printers/{id}/{action}"), None)
        .await
}

/// Waits until the daemon shows the print printing with progress (past Bambu's
/// preparation stages, when a printer takes a pause).
async fn printing(r: &Rig, id: &str) {
    r.wait_printer(id, "printing with progress", |p| {
        p["state"] == "printing" && p["current_print"]["progress"].as_f64() > Some(0.0)
    })
    .await;
}

async fn accepted(r: &Rig, id: &str, action: &str) -> Value {
    let (code, body) = post(r, id, action).await;
    assert_eq!(
        code,
        202,
        "{action} on {id}: {body}\n{}",
        rig::tail(&r.d.log(), 30)
    );
    assert_eq!(body["status"], "accepted");
    assert_eq!(body["command"], action);
    assert!(
        body["command_id"].as_str().unwrap().starts_with("cmd_"),
        "{body}"
    );
    body
}

async fn refused(r: &Rig, id: &str, action: &str, status: u16, code: &str) -> Value {
    let (got, body) = post(r, id, action).await;
    assert_eq!(
        (got, body["code"].as_str()),
        (status, Some(code)),
        "{action} on {id}: {body}"
    );
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    body
}

/// The whole round on one printer: pause, resume, cancel, each followed by the state;
/// the job ends cancelled with the API's end_reason; wrong states are 409.
async fn pause_resume_cancel(r: &Rig, id: &str) {
    refused(r, id, "resume", 409, "invalid_state").await;
    refused(r, id, "pause", 409, "invalid_state").await;
    r.act(id, print("bracket_v3.3mf", 120)).await;
    printing(r, id).await;
    // The job is listed once its creation is committed (a moment after the status).
    let job_id = r
        .wait_jobs(&format!("printer_id={id}"), "the print's job", |j| {
            j.first().is_some_and(|j| j["status"] == "running")
        })
        .await[0]["id"]
        .clone();
    let body = accepted(r, id, "pause").await;
    assert_eq!(body["job_id"], job_id);
    r.wait_printer(id, "paused", |p| p["state"] == "paused")
        .await;
    r.wait_jobs(&format!("printer_id={id}"), "job paused", |j| {
        j[0]["status"] == "paused"
    })
    .await;
    refused(r, id, "pause", 409, "invalid_state").await;
    accepted(r, id, "resume").await;
    r.wait_printer(id, "printing again", |p| p["state"] == "printing")
        .await;
    accepted(r, id, "cancel").await;
    let jobs = r
        .wait_jobs(&format!("printer_id={id}"), "job cancelled", |j| {
            j[0]["status"] == "cancelled"
        })
        .await;
    assert_eq!(jobs.len(), 1, "one print, one job");
    assert_eq!(jobs[0]["id"], job_id);
    assert_eq!(
        jobs[0]["end_reason"], "cancelled from printfarmd",
        "{}",
        jobs[0]
    );
    refused(r, id, "cancel", 409, "invalid_state").await;
    // A print cancelled on the printer itself is not "cancelled from printfarmd": its
    // end_reason is the printer's own (Bambu's cancel code; none when the printer gives
    // no error text).
    if id.starts_with("prusa") {
        r.act(id, Action::Dismiss).await;
    }
    r.act(id, print("second.3mf", 120)).await;
    printing(r, id).await;
    r.act(id, Action::Cancel).await;
    let jobs = r
        .wait_jobs(&format!("printer_id={id}"), "second job cancelled", |j| {
            j.len() == 2 && j[0]["status"] == "cancelled"
        })
        .await;
    assert_ne!(
        jobs[0]["end_reason"], "cancelled from printfarmd",
        "{}",
        jobs[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bambu_pause_resume_and_cancel_from_the_api() {
    let r = Rig::start(x1(1)).await;
    pause_resume_cancel(&r, "bambu_1").await;
    let (code, body) = post(&r, "bambu_1", "explode").await;
    assert_eq!(
        (code, body["code"].as_str()),
        (404, Some("not_found")),
        "{body}"
    );
    let (code, body) = post(&r, "nope", "pause").await;
    assert_eq!(
        (code, body["code"].as_str()),
        (404, Some("printer_not_found")),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prusalink_pause_resume_and_cancel_from_the_api() {
    let r = Rig::start(prusa(1)).await;
    pause_resume_cancel(&r, "prusa_1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bambu_silence_is_504_and_refusal_is_502() {
    let r = Rig::start(x1(1)).await;
    r.act("bambu_1", print("bracket.3mf", 300)).await;
    printing(&r, "bambu_1").await;
    r.act("bambu_1", Action::Silence { seconds: 7 }).await;
    refused(&r, "bambu_1", "pause", 504, "printer_timeout").await;
    // Back, but refusing control commands as 2025 firmware does (protocols.md §2.12).
    r.wait_sim_status("bambu_1", "silence over", |s| !s.silent)
        .await;
    printing(&r, "bambu_1").await;
    r.act("bambu_1", Action::Refuse { seconds: 60 }).await;
    let body = refused(&r, "bambu_1", "pause", 502, "printer_refused").await;
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("mqtt message verify failed"),
        "{body}"
    );
    assert_eq!(
        r.sim.status("bambu_1").unwrap().state,
        "RUNNING",
        "not paused"
    );
    let log = r.d.log();
    let code = r.sim.printers()[0].access_code.clone().unwrap();
    assert!(
        !log.contains(&code) && !body.to_string().contains(&code),
        "no secret in the log or the answer"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prusalink_silence_is_504_and_a_stale_job_is_502() {
    // Polled once an hour: the daemon knows only what its first poll saw.
    let sim = prusa(1).start().await.unwrap();
    sim.control("prusa_1", print("first.bgcode", 300))
        .await
        .unwrap();
    let d = rig::start_daemon("[monitoring]\ninterval = 3600\n", sim.config_toml()).await;
    let r = Rig { sim, d };
    r.wait_printer("prusa_1", "printing", |p| p["state"] == "printing")
        .await;
    // The printer moved on to another job the daemon has not seen: it refuses the old id.
    r.act("prusa_1", Action::Cancel).await;
    r.act("prusa_1", Action::Dismiss).await;
    r.act("prusa_1", print("second.bgcode", 300)).await;
    let body = refused(&r, "prusa_1", "pause", 502, "printer_refused").await;
    assert!(body["message"].as_str().unwrap().contains("404"), "{body}");
    assert_eq!(
        r.sim.status("prusa_1").unwrap().state,
        "PRINTING",
        "not paused"
    );
    // A command is followed by a poll: the daemon now sees the new job, and a silent
    // printer gets its command's 504.
    r.wait_printer("prusa_1", "the new job", |p| {
        p["current_print"]["filename"] == "second.bgcode"
    })
    .await;
    r.act("prusa_1", Action::Silence { seconds: 8 }).await;
    refused(&r, "prusa_1", "pause", 504, "printer_timeout").await;
}
