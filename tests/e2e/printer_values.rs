//! Issue 14, printer side, end to end: what a printer says reaches the history only
//! within sane bounds. X1 start times (the previous print's `gcode_start_time` lingers
//! through PREPARE), absurd times, durations and names from Bambu and PrusaLink
//! printers, printers whose every answer is unusable, and a PrusaLink "printer" that
//! redirects to another host — each against the real daemon over real sockets, read
//! back through REST.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use printfarmd_sim::Action;
use serde_json::{Value, json};
use warp::Filter;

use crate::rig::{self, DAEMON_EXTRA, Rig, farm, print, statuses, x1};

fn time_of(v: &Value) -> DateTime<Utc> {
    printfarmd::time::parse(v.as_str().unwrap_or_else(|| panic!("a time: {v}"))).unwrap()
}

/// Writes a replay file of X1-style reports (`{"delay_ms", "payload": {"print": ..}}`).
fn replay(lines: &[(u64, Value)]) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("replay.jsonl");
    let text: String = lines
        .iter()
        .map(|(d, p)| format!("{}\n", json!({"delay_ms": d, "payload": {"print": p}})))
        .collect();
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

/// Jobs of consecutive prints on one printer (newest first, as the API lists them)
/// never overlap and each lasts about its print, never the time since the previous print
/// started. Returns them oldest first.
fn assert_consecutive(jobs: &[Value], longest_s: i64) -> Vec<Value> {
    let mut jobs = jobs.to_vec();
    jobs.reverse();
    for (i, j) in jobs.iter().enumerate() {
        let start = time_of(&j["start_time"]);
        let end = time_of(&j["end_time"]);
        assert!(start <= end, "{j}");
        let took = j["actual_duration"].as_i64().unwrap();
        assert!(took <= longest_s, "job {i} took {took} s: {j}");
        if i > 0 {
            let prev_end = time_of(&jobs[i - 1]["end_time"]);
            assert!(
                start >= prev_end,
                "job {i} starts before the previous ended: {jobs:#?}"
            );
        }
    }
    jobs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x1_prints_one_after_another_each_start_with_their_own_print() {
    // bambu_1: the simulator's X1, which keeps the previous print's gcode_start_time
    // through PREPARE. bambu_2: a recorded X1 that reports "0" through PREPARE instead.
    let now = Utc::now().timestamp();
    let x1_report = |state: &str, n: i64, start: i64, pct: i64| {
        json!({"command": "push_status", "gcode_state": state,
               "gcode_file": "/data/Metadata/plate_1.gcode", "subtask_name": format!("r{n}"),
               "task_id": (5000 + 2 * n).to_string(), "subtask_id": (5001 + 2 * n).to_string(),
               "gcode_start_time": start.to_string(), "mc_percent": pct, "mc_remaining_time": 1})
    };
    let mut lines = vec![(300, x1_report("IDLE", 0, 0, 0))];
    for n in 1..=3 {
        // Each recorded print starts ~3 s after the previous one (printer clock).
        let own = now + 3 * n;
        lines.push((400, x1_report("PREPARE", n, 0, 0)));
        lines.push((400, x1_report("RUNNING", n, own, 10)));
        lines.push((400, x1_report("RUNNING", n, own, 60)));
        lines.push((400, x1_report("FINISH", n, own, 100)));
        lines.push((400, x1_report("FINISH", n, own, 100)));
    }
    let (_dir, path) = replay(&lines);
    let r = Rig::start(x1(1).replay("bambu_2", &path)).await;
    for n in 0..3 {
        r.act("bambu_1", print(&format!("part_{n}.3mf"), 2)).await;
        r.wait_jobs("printer_id=bambu_1", "the print completed", |j| {
            j.len() == n + 1 && j.iter().all(|j| j["status"] == "completed")
        })
        .await;
        r.wait_sim("bambu_1", "FINISH").await;
    }
    let sim_jobs = r.jobs("printer_id=bambu_1").await;
    // A 2 s print with 0.4 s of preparation: well under the ~6 s between one print's
    // start and the end of the next one.
    for j in assert_consecutive(&sim_jobs, 5) {
        // The printer start time recorded is this print's: within the job (the
        // printer's clock has whole seconds, so it may read up to 1 s early).
        let t = time_of(&j["customer_info"]["printer_start_time"]);
        assert!(
            t >= time_of(&j["start_time"]) - chrono::Duration::seconds(1),
            "{j}"
        );
        assert!(t <= time_of(&j["end_time"]), "{j}");
    }
    let replayed = r
        .wait_jobs(
            "printer_id=bambu_2",
            "three recorded prints completed",
            |j| j.len() == 3 && j.iter().all(|j| j["status"] == "completed"),
        )
        .await;
    assert_eq!(statuses(&replayed), ["completed"; 3]);
    for (n, j) in assert_consecutive(&replayed, 5).iter().enumerate() {
        let own = DateTime::from_timestamp(now + 3 * (n as i64 + 1), 0).unwrap();
        assert_eq!(
            time_of(&j["customer_info"]["printer_start_time"]),
            own,
            "{j}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absurd_bambu_values_are_dropped_counted_and_never_break_the_history() {
    let long_name = "ü".repeat(100_000);
    let hostile = |state: &str| {
        json!({"command": "push_status", "gcode_state": state, "gcode_file": "/cache/big.3mf",
               "subtask_name": long_name, "task_id": "0", "subtask_id": "0",
               // Year 10000; a billion percent; a trillion layers; a 1e300 °C nozzle.
               "gcode_start_time": "253402300800", "mc_percent": 1e9,
               "layer_num": 1e12, "total_layer_num": 10, "nozzle_temper": 1e300,
               "mc_remaining_time": 1e300})
    };
    let (_dir, path) = replay(&[
        (
            300,
            json!({"command": "push_status", "gcode_state": "IDLE", "gcode_file": "", "subtask_name": ""}),
        ),
        (400, hostile("RUNNING")),
        (400, hostile("RUNNING")),
        (400, hostile("FINISH")),
    ]);
    // bambu_2 sends nothing usable: every report's `print` is not an object.
    let (_dir2, garbage) = replay(&[(300, json!("x")), (300, json!([1])), (300, json!(7))]);
    let sim = farm()
        .replay("bambu_1", &path)
        .replay("bambu_2", &garbage)
        .start()
        .await
        .unwrap();
    let d = rig::start_daemon(DAEMON_EXTRA, sim.config_toml()).await;
    let r = Rig { sim, d };
    let g = r
        .wait_printer("bambu_2", "unusable reports shown as an error", |p| {
            p["connection"] == "error"
                && p["bad_data"]["skipped_payloads"].as_u64().unwrap_or(0) >= 1
        })
        .await;
    let why = g["last_error"].as_str().unwrap();
    assert!(why.contains("nothing it sent could be used"), "{why}");
    let jobs = r
        .wait_jobs("", "the hostile print completed", |j| {
            j.len() == 1 && j[0]["status"] == "completed"
        })
        .await;
    let j = &jobs[0];
    let start = time_of(&j["start_time"]);
    assert!((start - Utc::now()).num_minutes().abs() < 10, "{j}");
    assert!(
        j["customer_info"].get("printer_start_time").is_none(),
        "{j}"
    );
    let name = j["job_name"].as_str().unwrap();
    assert_eq!(name.chars().count(), 512);
    assert!(name.ends_with('…'));
    assert!(j["estimated_duration"].is_null(), "{j}");
    let (code, one) =
        r.d.get(&format!("/api/v1/jobs/{}", j["id"].as_str().unwrap()))
            .await;
    assert_eq!(code, 200, "{one}");
    // Counted on the printer and the farm; a garbage report is skipped and counted too.
    let p = r
        .wait_printer("bambu_1", "bad values counted", |p| {
            p["bad_data"]["bad_values"].as_u64().unwrap_or(0) >= 3
        })
        .await;
    assert_eq!(p["connection"], "connected");
    r.act("bambu_1", Action::Garbage).await;
    r.wait_printer("bambu_1", "the garbage report counted", |p| {
        p["bad_data"]["skipped_payloads"].as_u64().unwrap_or(0) >= 1
    })
    .await;
    let h = r
        .wait_health("farm totals", |h| {
            h["printers"]["skipped_payloads"].as_u64().unwrap_or(0) >= 1
                && h["printers"]["bad_values"].as_u64().unwrap_or(0) >= 3
        })
        .await;
    assert_eq!(h["status"], "ok", "{h}");
    assert!(r.d.log().contains("printer values out of range; not used"));
}

/// A PrusaLink-shaped server on 127.0.0.1 answering `status` and `job` as given.
async fn prusalink_server(status: Value, job: Value) -> (u16, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let version = warp::path!("api" / "version")
        .map(|| warp::reply::json(&json!({"api": "2.0.0", "text": "PrusaLink"})));
    let st = warp::path!("api" / "v1" / "status").map(move || warp::reply::json(&status));
    let jb = warp::path!("api" / "v1" / "job").map(move || warp::reply::json(&job));
    let server = tokio::spawn(
        warp::serve(warp::get().and(version.or(st).or(jb)))
            .incoming(listener)
            .run(),
    );
    (port, server)
}

fn printer_toml(id: &str, port: u16, api_key: &str) -> String {
    format!(
        "\n[[printers]]\nid = \"{id}\"\ntype = \"prusalink\"\nhost = \"127.0.0.1\"\nport = {port}\napi_key = \"{api_key}\"\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absurd_prusalink_times_are_dropped_and_unusable_printers_show_error() {
    // `time_printing` 9.3e15 s once panicked the JobCreator (no job recorded for any
    // printer again); 1e11 s stored a start time outside years 0–9999.
    let mut servers = Vec::new();
    let mut toml = String::new();
    for (i, t) in [9.3e15, 1e11].into_iter().enumerate() {
        let (port, s) = prusalink_server(
            json!({"printer": {"state": "PRINTING", "temp_nozzle": 215.0}, "job": {"id": 7, "progress": 40}}),
            json!({"id": 7, "progress": 40, "time_printing": t, "time_remaining": t,
                   "file": {"name": "tall.bgcode", "display_name": "tall.bgcode"}}),
        )
        .await;
        toml.push_str(&printer_toml(&format!("absurd_{i}"), port, "k"));
        servers.push(s);
    }
    // Every answer unusable: not JSON.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let version = warp::path!("api" / "version").map(|| "{\"api\": \"2.0.0\"}");
    let garbage = warp::path!("api" / "v1" / "status").map(|| "{\"printer\": {\"sta");
    servers.push(tokio::spawn(
        warp::serve(warp::get().and(version.or(garbage)))
            .incoming(listener)
            .run(),
    ));
    toml.push_str(&printer_toml("garbage", port, "k"));
    let sim = farm()
        .bambu(1, printfarmd_sim::Style::P1)
        .start()
        .await
        .unwrap();
    let d = rig::start_daemon(DAEMON_EXTRA, format!("{}{toml}", sim.config_toml())).await;
    let r = Rig { sim, d };
    for id in ["absurd_0", "absurd_1"] {
        let jobs = r
            .wait_jobs(&format!("printer_id={id}"), "the print's job", |j| {
                j.len() == 1
            })
            .await;
        let start = time_of(&jobs[0]["start_time"]);
        assert!((start - Utc::now()).num_minutes().abs() < 10, "{}", jobs[0]);
        assert!(jobs[0]["estimated_duration"].is_null(), "{}", jobs[0]);
        r.wait_printer(id, "the absurd times counted", |p| {
            p["bad_data"]["bad_values"].as_u64().unwrap_or(0) >= 2
                && p["current_print"]["elapsed_s"].is_null()
        })
        .await;
    }
    // The rest of the farm is still recorded.
    r.wait_printer("bambu_1", "connected", |p| p["state"] == "idle")
        .await;
    r.act("bambu_1", print("after.3mf", 2)).await;
    r.wait_jobs("printer_id=bambu_1", "a job on the healthy printer", |j| {
        j.len() == 1 && j[0]["status"] == "completed"
    })
    .await;
    let g = r
        .wait_printer("garbage", "unusable answers shown as an error", |p| {
            p["connection"] == "error"
                && p["bad_data"]["skipped_payloads"].as_u64().unwrap_or(0) >= 2
        })
        .await;
    let why = g["last_error"].as_str().unwrap();
    assert!(why.contains("nothing it sent could be used"), "{why}");
    let h = r
        .wait_health("farm totals", |h| {
            h["printers"]["skipped_payloads"].as_u64().unwrap_or(0) >= 2
        })
        .await;
    assert_eq!(h["status"], "ok", "{h}");
    let (code, list) = r.d.get("/api/v1/jobs").await;
    assert_eq!(code, 200, "{list}");
    for s in servers {
        s.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prusalink_redirect_is_never_followed_and_the_printer_shows_why() {
    // The second listener records every request: it must never see one.
    let seen = Arc::new(AtomicUsize::new(0));
    let elsewhere = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let elsewhere_port = elsewhere.local_addr().unwrap().port();
    let counter = seen.clone();
    let record = warp::any().map(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        warp::reply::json(&json!({"api": "2.0.0"}))
    });
    let b = tokio::spawn(warp::serve(record).incoming(elsewhere).run());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let redirect = warp::path::full().map(move |p: warp::path::FullPath| {
        warp::http::Response::builder()
            .status(302)
            .header(
                "Location",
                format!("http://127.0.0.1:{elsewhere_port}{}", p.as_str()),
            )
            .body(String::new())
            .unwrap()
    });
    let a = tokio::spawn(warp::serve(redirect).incoming(listener).run());
    let key = "redirect-secret-key-0451";
    let d = rig::start_daemon(DAEMON_EXTRA, printer_toml("moved", port, key)).await;
    let p = rig::eventually(
        "the printer shows the redirect",
        async || {
            let (_, p) = d.get("/api/v1/printers/moved").await;
            if p["connection"] == "error" {
                Ok(p)
            } else {
                Err(p)
            }
        },
        |p| format!("printer = {p}\nlog:\n{}", rig::tail(&d.log(), 30)),
    )
    .await;
    let why = p["last_error"].as_str().unwrap();
    assert!(why.contains("redirect"), "{why}");
    // Give a follow-up request time to go out if the client followed redirects.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        seen.load(Ordering::SeqCst),
        0,
        "a request reached the redirect target"
    );
    assert!(
        !format!("{p}{}", d.log()).contains(key),
        "the API key leaked"
    );
    a.abort();
    b.abort();
}
