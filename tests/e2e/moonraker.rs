//! Moonraker end to end: simulated Klipper printers behind Moonraker's JSON-RPC WebSocket
//! (subscriptions, deltas, history) → the real daemon → REST. One job per print with
//! Moonraker's `job_id`, the right end state, through pauses, daemon kills, Moonraker
//! restarts, dropped sockets and garbage; prints that ended while the socket was down
//! caught up from the history; a wrong key and an unreachable host shown, the key never.

use std::time::Duration;

use printfarmd_sim::Action;
use serde_json::json;

use crate::rig::{self, Rig, farm, print, statuses};

fn moon(n: usize) -> printfarmd_sim::SimFarmBuilder {
    farm().moonraker(n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moonraker_start_pause_finish_cancel_and_fail_each_make_one_job_with_its_end_state() {
    let r = Rig::start(moon(1)).await;
    let mut ws = r.d.ws().await;
    ws.subscribe(json!({"events": ["job_auto_created"]})).await;
    r.act("moon_1", print("parts/bracket_v3.gcode", 120)).await;
    let ev = ws.next_of("job_auto_created").await;
    assert_eq!(ev["data"]["filename"], "bracket_v3.gcode");
    assert_eq!(ev["data"]["printer_type"], "moonraker");
    r.act("moon_1", Action::Pause).await;
    r.wait_jobs("", "the job paused", |j| {
        j.len() == 1 && j[0]["status"] == "paused"
    })
    .await;
    r.act("moon_1", Action::Resume).await;
    r.wait_jobs("", "the job running again", |j| {
        j.len() == 1 && j[0]["status"] == "running"
    })
    .await;
    r.act("moon_1", Action::Finish).await;
    r.wait_jobs("", "the print completed", |j| {
        j.len() == 1 && j[0]["status"] == "completed"
    })
    .await;

    r.act("moon_1", print("parts/bracket_v3.gcode", 120)).await;
    r.wait_jobs("", "a second job running", |j| {
        j.len() == 2 && j[0]["status"] == "running"
    })
    .await;
    r.act("moon_1", Action::Cancel).await;
    r.wait_jobs("", "the second print cancelled", |j| {
        j.len() == 2 && j[0]["status"] == "cancelled"
    })
    .await;
    r.act("moon_1", print("lid.gcode", 120)).await;
    r.wait_jobs("", "a third job running", |j| {
        j.len() == 3 && j[0]["status"] == "running"
    })
    .await;
    r.act("moon_1", Action::Fail).await;
    let jobs = r
        .wait_jobs("", "the third print failed", |j| {
            j.len() == 3 && j[0]["status"] == "failed"
        })
        .await;
    assert_eq!(statuses(&jobs), ["completed", "cancelled", "failed"]);
    // SDCARD_RESET_FILE: `standby`; the history still names the last print's end, which
    // makes no new job.
    r.act("moon_1", Action::Dismiss).await;
    r.wait_sim("moon_1", "standby").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(r.jobs("").await.len(), 3);
    assert_eq!(r.jobs("status=failed").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moonraker_daemon_killed_with_sigkill_mid_print_keeps_the_same_job() {
    let r = Rig::start(moon(1)).await;
    r.act("moon_1", print("long_part.gcode", 600)).await;
    let before = r
        .wait_jobs("status=running", "a running job", |j| j.len() == 1)
        .await;
    let r = r.restart_daemon(true).await;
    r.wait_printer("moon_1", "connected again", |p| {
        p["connection"] == "connected" && p["state"] == "printing"
    })
    .await;
    r.act("moon_1", Action::Finish).await;
    let after = r
        .wait_jobs("", "the print completed", |j| {
            j.len() == 1 && j[0]["status"] == "completed"
        })
        .await;
    assert_eq!(after[0]["id"], before[0]["id"]);
    assert_eq!(after[0]["start_time"], before[0]["start_time"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moonraker_restarts_drops_silence_and_garbage_keep_the_job_and_missed_prints_are_caught_up()
{
    let r = Rig::start(moon(1)).await;
    r.act("moon_1", print("rough.gcode", 600)).await;
    let before = r
        .wait_jobs("status=running", "a running job", |j| j.len() == 1)
        .await;
    for a in [
        Action::Garbage,
        Action::Disconnect,
        Action::Silence { seconds: 3 },
        Action::Reboot,
    ] {
        r.act("moon_1", a.clone()).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        r.wait_printer("moon_1", "connected and printing again", |p| {
            p["connection"] == "connected" && p["state"] == "printing"
        })
        .await;
    }
    // The garbage was skipped and counted like any driver's (`bad_data`).
    r.wait_printer("moon_1", "the skipped payload counted", |p| {
        p["bad_data"]["skipped_payloads"].as_u64() >= Some(1)
    })
    .await;
    let after = r.jobs("").await;
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(after[0]["id"], before[0]["id"]);

    // While Moonraker restarts, the print ends and a short one runs start to end: the
    // history tells both after the reconnect.
    r.act("moon_1", Action::Reboot).await;
    r.act_when_ready("moon_1", Action::Finish).await;
    r.act_when_ready("moon_1", print("short.gcode", 1)).await;
    let jobs = r
        .wait_jobs("", "both prints recorded", |j| {
            j.len() == 2 && j.iter().all(|j| j["status"] == "completed")
        })
        .await;
    assert_eq!(jobs[0]["filename"], "short.gcode");
    assert_eq!(jobs[1]["id"], before[0]["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moonraker_wrong_key_is_auth_failed_and_an_unreachable_host_disconnected() {
    let sim = moon(1).start().await.unwrap();
    let key = sim.printers()[0].api_key.clone().unwrap();
    let wrong = "0123456789abcdef0123456789abcdef";
    let mut toml = sim.config_toml().replace(&key, wrong);
    toml.push_str(
        "\n[[printers]]\nid = \"moon_gone\"\ntype = \"moonraker\"\nhost = \"127.0.0.1\"\nport = 9\n",
    );
    let d = rig::start_daemon(rig::DAEMON_EXTRA, toml).await;
    let r = Rig { sim, d };
    let p = r
        .wait_printer("moon_1", "auth_failed", |v| {
            v["connection"] == "auth_failed"
        })
        .await;
    assert!(p["last_error"].as_str().unwrap().contains("API key"), "{p}");
    r.wait_printer("moon_gone", "disconnected", |v| {
        v["connection"] == "disconnected"
    })
    .await;
    let (_, all) = r.d.get("/api/v1/printers").await;
    let text = all.to_string() + &r.d.log();
    assert!(!text.contains(wrong) && !text.contains(&key));
}

/// A WebSocket server on the printer's address, in the test, that answers every request
/// with text that is not JSON-RPC.
async fn garbage_server() -> u16 {
    use futures_util::{SinkExt, StreamExt};
    use warp::Filter;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let ws = warp::path!("websocket")
        .and(warp::ws())
        .map(|ws: warp::ws::Ws| {
            ws.on_upgrade(|socket| async move {
                let (mut tx, mut rx) = socket.split();
                while let Some(Ok(m)) = rx.next().await {
                    if m.is_close() {
                        break;
                    }
                    if tx
                        .send(warp::ws::Message::text("<html>It works!</html>"))
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            })
        });
    tokio::spawn(warp::serve(ws).incoming(listener).run());
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moonraker_a_server_that_answers_nothing_usable_shows_error_with_the_reason() {
    let port = garbage_server().await;
    let toml = format!(
        "\n[[printers]]\nid = \"moon_junk\"\ntype = \"moonraker\"\nhost = \"127.0.0.1\"\nport = {port}\n"
    );
    let d = rig::start_daemon(rig::DAEMON_EXTRA, toml).await;
    let p =
        crate::rig::wait_printer_of(&d, "moon_junk", "error", |v| v["connection"] == "error").await;
    let why = p["last_error"].as_str().unwrap_or_default().to_owned();
    assert!(why.contains("nothing it sent could be used"), "{p}");
    assert!(p["bad_data"]["skipped_payloads"].as_u64() >= Some(1), "{p}");
    // It stays so, also once the session ends because no request was answered (the
    // request timeout, 10 s): the reason is still what it sent, not "did not answer".
    for _ in 0..26 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (_, p) = d.get("/api/v1/printers/moon_junk").await;
        assert_eq!(p["connection"], "error", "{p}");
        assert_eq!(p["last_error"], why.as_str(), "{p}");
    }
}
