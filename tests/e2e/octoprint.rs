//! OctoPrint end to end: the simulated OctoPrint servers (REST with `X-Api-Key` and the
//! push socket) → the real daemon → REST and WebSocket. One job per print with the right
//! end state, through pauses, daemon kills, server reboots, dropped sockets and garbage;
//! a wrong key and an unreachable server shown on the printer, the key never.

use std::time::Duration;

use printfarmd_sim::Action;
use serde_json::json;

use crate::rig::{self, Rig, farm, print, statuses};

fn octo(n: usize) -> printfarmd_sim::SimFarmBuilder {
    farm().octoprint(n)
}

/// Polls every hour: whatever the test sees within seconds came over the push socket.
const PUSH_ONLY: &str = "[monitoring]\ninterval = 3600\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn octoprint_start_pause_finish_cancel_and_fail_each_make_one_job_with_its_end_state() {
    let r = Rig::start_with(octo(1), PUSH_ONLY).await;
    let mut ws = r.d.ws().await;
    ws.subscribe(json!({"events": ["job_auto_created"]})).await;
    r.act("octo_1", print("parts/bracket_v3.gcode", 120)).await;
    let ev = ws.next_of("job_auto_created").await;
    assert_eq!(ev["data"]["filename"], "bracket_v3.gcode");
    assert_eq!(ev["data"]["printer_type"], "octoprint");
    assert_eq!(ev["data"]["job_name"], "bracket_v3");
    r.act("octo_1", Action::Pause).await;
    r.wait_jobs("", "the job paused", |j| {
        j.len() == 1 && j[0]["status"] == "paused"
    })
    .await;
    r.act("octo_1", Action::Resume).await;
    r.wait_jobs("", "the job running again", |j| {
        j.len() == 1 && j[0]["status"] == "running"
    })
    .await;
    r.act("octo_1", Action::Finish).await;
    let jobs = r
        .wait_jobs("", "the print completed", |j| {
            j.len() == 1 && j[0]["status"] == "completed"
        })
        .await;
    assert_eq!(jobs[0]["progress"], 100.0);

    // The same file again right away is a new print (OctoPrint has no job id).
    r.act("octo_1", print("parts/bracket_v3.gcode", 120)).await;
    r.wait_jobs("", "a second job running", |j| {
        j.len() == 2 && j[0]["status"] == "running"
    })
    .await;
    r.act("octo_1", Action::Cancel).await;
    r.wait_jobs("", "the second print cancelled", |j| {
        j.len() == 2 && j[0]["status"] == "cancelled"
    })
    .await;

    r.act("octo_1", print("lid.gcode", 120)).await;
    r.wait_jobs("", "a third job running", |j| {
        j.len() == 3 && j[0]["status"] == "running"
    })
    .await;
    r.act("octo_1", Action::Fail).await;
    let jobs = r
        .wait_jobs("", "the third print failed", |j| {
            j.len() == 3 && j[0]["status"] == "failed"
        })
        .await;
    assert_eq!(statuses(&jobs), ["completed", "cancelled", "failed"]);
    let p = r
        .wait_printer("octo_1", "the failure shown", |p| p["state"] == "failed")
        .await;
    assert_eq!(p["type"], "octoprint");
    // The printer is reconnected; OctoPrint still shows the failed file (its end
    // lingers as the end screen), which makes no new job.
    r.act("octo_1", Action::Dismiss).await;
    r.wait_sim("octo_1", "Operational").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(r.jobs("").await.len(), 3);
    assert_eq!(r.jobs("status=failed").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn octoprint_prints_are_followed_by_polling_alone_when_the_socket_is_lost() {
    // Interval 1 s: the socket is dropped with every `disconnect`; the polls carry on.
    let r = Rig::start(octo(1)).await;
    r.act("octo_1", print("poll_only.gcode", 3)).await;
    r.act("octo_1", Action::Disconnect).await;
    let jobs = r
        .wait_jobs("", "the print completed", |j| {
            j.len() == 1 && j[0]["status"] == "completed"
        })
        .await;
    assert_eq!(jobs[0]["filename"], "poll_only.gcode");
    // The finished file lingers in /api/job: no second job.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(r.jobs("").await.len(), 1);
}

async fn octoprint_kill_mid_print(kill9: bool) {
    let r = Rig::start(octo(1)).await;
    r.act("octo_1", print("long_part.gcode", 600)).await;
    let before = r
        .wait_jobs("status=running", "a running job", |j| j.len() == 1)
        .await;
    let r = r.restart_daemon(kill9).await;
    r.wait_printer("octo_1", "connected again", |p| {
        p["connection"] == "connected" && p["state"] == "printing"
    })
    .await;
    r.act("octo_1", Action::Finish).await;
    let after = r
        .wait_jobs("", "the print completed", |j| {
            j.len() == 1 && j[0]["status"] == "completed"
        })
        .await;
    assert_eq!(after[0]["id"], before[0]["id"]);
    assert_eq!(after[0]["start_time"], before[0]["start_time"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn octoprint_daemon_killed_with_sigkill_mid_print_keeps_the_same_job() {
    octoprint_kill_mid_print(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn octoprint_a_print_under_way_at_daemon_start_is_discovered_on_startup() {
    let sim = octo(1).start().await.unwrap();
    sim.control("octo_1", print("early.gcode", 600))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let d = rig::start_daemon(rig::DAEMON_EXTRA, sim.config_toml()).await;
    let r = Rig { sim, d };
    let jobs = r
        .wait_jobs("", "the print discovered", |j| j.len() == 1)
        .await;
    assert_eq!(jobs[0]["customer_info"]["discovered_on_startup"], true);
    assert_eq!(jobs[0]["status"], "running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn octoprint_rebooted_dropped_silent_and_garbage_sending_servers_stay_monitored() {
    let r = Rig::start(octo(1)).await;
    r.act("octo_1", print("rough.gcode", 600)).await;
    let before = r
        .wait_jobs("status=running", "a running job", |j| j.len() == 1)
        .await;
    for a in [
        Action::Garbage,
        Action::Disconnect,
        Action::Silence { seconds: 3 },
        Action::Reboot,
    ] {
        r.act("octo_1", a.clone()).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        r.wait_printer("octo_1", "connected and printing again", |p| {
            p["connection"] == "connected" && p["state"] == "printing"
        })
        .await;
    }
    // The garbage was skipped and counted like any driver's (`bad_data`).
    r.wait_printer("octo_1", "the skipped payload counted", |p| {
        p["bad_data"]["skipped_payloads"].as_u64() >= Some(1)
    })
    .await;
    let after = r.jobs("").await;
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(after[0]["id"], before[0]["id"]);
    assert_eq!(after[0]["status"], "running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn octoprint_wrong_key_is_auth_failed_and_an_unreachable_server_disconnected() {
    let sim = octo(1).start().await.unwrap();
    let key = sim.printers()[0].api_key.clone().unwrap();
    let wrong = "0123456789ABCDEF0123456789ABCDEF";
    let mut toml = sim.config_toml().replace(&key, wrong);
    toml.push_str(
        "\n[[printers]]\nid = \"octo_gone\"\ntype = \"octoprint\"\nhost = \"127.0.0.1\"\nport = 9\napi_key = \"ABCDEF\"\n",
    );
    let d = rig::start_daemon(rig::DAEMON_EXTRA, toml).await;
    let r = Rig { sim, d };
    let p = r
        .wait_printer("octo_1", "auth_failed", |v| {
            v["connection"] == "auth_failed"
        })
        .await;
    assert!(p["last_error"].as_str().unwrap().contains("API key"), "{p}");
    let p = r
        .wait_printer("octo_gone", "disconnected", |v| {
            v["connection"] == "disconnected"
        })
        .await;
    assert!(
        p["last_error"].as_str().is_some_and(|m| !m.is_empty()),
        "{p}"
    );
    let (_, all) = r.d.get("/api/v1/printers").await;
    let text = all.to_string() + &r.d.log();
    assert!(!text.contains(wrong) && !text.contains(&key) && !text.contains("ABCDEF\""));
}

/// A server on the printer's address, in the test: `/api/version` as `version` gives it,
/// every other path answered `200` with text that is not OctoPrint's JSON, no push socket.
async fn garbage_server(version: &'static str) -> u16 {
    use warp::Filter;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let version = warp::path!("api" / "version")
        .map(move || warp::reply::with_header(version, "content-type", "application/json"));
    let rest = warp::any().map(|| "<html><body>It works!</body></html>");
    tokio::spawn(warp::serve(version.or(rest)).incoming(listener).run());
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn octoprint_a_server_that_answers_nothing_usable_shows_error_with_the_reason() {
    // One says it is OctoPrint and then answers nothing usable; one is not OctoPrint.
    let says_octoprint =
        garbage_server(r#"{"api":"0.1","server":"1.11.2","text":"OctoPrint 1.11.2"}"#).await;
    let not_octoprint = garbage_server("<html>router login</html>").await;
    let entry = |id: &str, port: u16| {
        format!(
            "\n[[printers]]\nid = \"{id}\"\ntype = \"octoprint\"\nhost = \"127.0.0.1\"\nport = {port}\napi_key = \"0123456789ABCDEF0123456789ABCDEF\"\n"
        )
    };
    let toml = entry("octo_junk", says_octoprint) + &entry("octo_router", not_octoprint);
    let d = rig::start_daemon(rig::DAEMON_EXTRA, toml).await;
    let p =
        crate::rig::wait_printer_of(&d, "octo_junk", "error", |v| v["connection"] == "error").await;
    let why = p["last_error"].as_str().unwrap_or_default();
    assert!(
        why.contains("nothing it sent could be used") && why.contains("GET /api/job"),
        "{p}"
    );
    assert!(p["bad_data"]["skipped_payloads"].as_u64() >= Some(1), "{p}");
    let p = crate::rig::wait_printer_of(&d, "octo_router", "error", |v| v["connection"] == "error")
        .await;
    assert!(
        p["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("is not OctoPrint"),
        "{p}"
    );
    // It stays so, poll after poll.
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (_, p) = d.get("/api/v1/printers/octo_junk").await;
        assert_eq!(p["connection"], "error", "{p}");
    }
}
