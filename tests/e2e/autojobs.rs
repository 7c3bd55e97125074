//! Issue 5's acceptance scenarios: one job per print, from start to end, through
//! restarts — simulator → daemon → REST and WebSocket.

use std::collections::BTreeSet;
use std::time::Duration;

use printfarmd_sim::{Action, Style};
use serde_json::{Value, json};

use crate::rig::{self, Rig, farm, p1, print, prusa, statuses, x1};

const AUTO_KEYS_WITH_START: [&str; 4] = [
    "auto_created",
    "discovered_on_startup",
    "discovery_time",
    "printer_start_time",
];

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

fn unix_ms_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn one_completed(jobs: &[Value]) -> bool {
    jobs.len() == 1 && jobs[0]["status"] == "completed"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s01_x1_print_start_makes_one_job_and_a_websocket_event_within_2s() {
    let r = Rig::start(x1(1)).await;
    let mut ws = r.d.ws().await;
    ws.subscribe(json!({"events": ["job_auto_created"]})).await;
    r.act("bambu_1", print("bracket_v2.gcode.3mf", 4)).await;
    let ev = ws.next_of("job_auto_created").await;
    let got_at = unix_ms_now();
    let job = &ev["data"];
    // The first report that showed the print (PREPARE with its file, or RUNNING).
    let first = r
        .sim
        .report_log("bambu_1")
        .unwrap()
        .into_iter()
        .find(|rep| {
            rep.json().is_some_and(|j| {
                let p = &j["print"];
                p["gcode_state"] == "RUNNING"
                    || (p["gcode_state"] == "PREPARE"
                        && p["gcode_file"].as_str().is_some_and(|f| !f.is_empty()))
            })
        })
        .expect("the simulator reported the print");
    assert!(
        got_at.saturating_sub(first.sent_at_ms) <= 2000,
        "job_auto_created came {} ms after the first report of the print",
        got_at - first.sent_at_ms
    );
    // The seed's fields, and the event carries the same JSON as GET /jobs/{id}.
    let id = job["id"].as_str().unwrap();
    assert!(id.starts_with("job_"), "{job}");
    assert_eq!(job["printer_id"], "bambu_1");
    assert_eq!(job["printer_type"], "bambu");
    assert_eq!(job["status"], "running");
    // An X1 reports the plate it prints (`Metadata/plate_1.gcode`); the file is known
    // by the task's name (protocols.md §7).
    assert_eq!(job["filename"], "bracket_v2");
    assert_eq!(job["job_name"], "bracket_v2");
    assert!(job["start_time"].is_string(), "{job}");
    // The seed's keys; `printer_start_time` once the printer reports it (an X1 sets
    // `gcode_start_time` when its preparation stages begin, after the job appeared).
    let info = &job["customer_info"];
    let want: BTreeSet<String> = AUTO_KEYS_WITH_START.iter().map(|s| s.to_string()).collect();
    assert!(keys(info).is_subset(&want), "{info}");
    assert_eq!(info["auto_created"], true);
    assert_eq!(info["discovered_on_startup"], false);
    let later = r
        .wait_jobs("", "the printer's start time recorded", |j| {
            j.len() == 1 && j[0]["customer_info"]["printer_start_time"].is_string()
        })
        .await;
    assert_eq!(keys(&later[0]["customer_info"]), want);
    let (code, fetched) = r.d.get(&format!("/api/v1/jobs/{id}")).await;
    assert_eq!(code, 200);
    for k in [
        "id",
        "printer_id",
        "printer_type",
        "job_name",
        "filename",
        "start_time",
        "created_at",
    ] {
        assert_eq!(fetched[k], job[k], "{k}");
    }
    for (k, v) in job["customer_info"].as_object().unwrap() {
        assert_eq!(&fetched["customer_info"][k], v, "customer_info.{k}");
    }
    // It follows the print to its end: still exactly one job.
    let jobs = r
        .wait_jobs("", "the print to complete", one_completed)
        .await;
    assert_eq!(jobs[0]["id"], id);
    assert_eq!(jobs[0]["progress"], 100.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s02_p1_print_uses_discovery_time_and_has_no_printer_start_time() {
    let r = Rig::start(p1(1)).await;
    let before = printfarmd::time::now();
    r.act("bambu_1", print("clip.3mf", 3)).await;
    let jobs = r.wait_jobs("", "a running job", |j| j.len() == 1).await;
    let job = &jobs[0];
    let info = &job["customer_info"];
    assert_eq!(
        keys(info),
        ["auto_created", "discovered_on_startup", "discovery_time"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        "{info}"
    );
    assert_eq!(job["start_time"], info["discovery_time"], "{job}");
    let start = printfarmd::time::parse(job["start_time"].as_str().unwrap()).unwrap();
    assert!(start >= before - chrono::Duration::seconds(1), "{job}");
    r.wait_jobs("", "the print to complete", one_completed)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s03_prusalink_print_start_makes_one_job_within_a_monitoring_interval() {
    let r = Rig::start(prusa(1)).await;
    r.wait_printer("prusa_1", "connected", |p| p["connection"] == "connected")
        .await;
    r.act("prusa_1", print("shelf_bracket.gcode", 4)).await;
    let jobs = r.wait_jobs("", "a job", |j| !j.is_empty()).await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0]["printer_type"], "prusalink");
    assert_eq!(jobs[0]["filename"], "shelf_bracket.gcode");
    assert_eq!(jobs[0]["customer_info"]["auto_created"], true);
    r.wait_jobs("", "the print to complete", one_completed)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s04_a_hundred_rapid_reports_of_one_print_make_one_job_with_throttled_progress() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rapid.jsonl");
    let mut lines = String::new();
    for i in 0..100 {
        let print = json!({"print": {
            "gcode_state": "RUNNING", "gcode_file": "rapid.3mf", "subtask_name": "rapid",
            "task_id": "0", "subtask_id": "0", "mc_percent": i, "mc_remaining_time": 100 - i,
            "layer_num": i, "total_layer_num": 100, "command": "push_status", "msg": 0,
            "sequence_id": i.to_string()
        }});
        lines.push_str(
            &json!({"delay_ms": if i == 0 { 2000 } else { 10 }, "payload": print}).to_string(),
        );
        lines.push('\n');
    }
    lines.push_str(&json!({"delay_ms": 300, "payload": {"print": {"gcode_state": "FINISH", "mc_percent": 100, "gcode_file": "rapid.3mf", "subtask_name": "rapid", "command": "push_status"}}}).to_string());
    std::fs::write(&path, lines).unwrap();
    // The WebSocket client subscribes before the recording plays (it starts when the
    // daemon subscribes, and waits 2 s before its first report).
    let sim = farm().replay("bambu_1", &path).start().await.unwrap();
    let d = rig::start_daemon(rig::DAEMON_EXTRA, sim.config_toml()).await;
    let r = Rig { sim, d };
    let mut ws = r.d.ws().await;
    ws.subscribe(
        json!({"printer_ids": ["bambu_1"], "events": ["job_auto_created", "job_updated"]}),
    )
    .await;
    let jobs = r
        .wait_jobs(
            "printer_id=bambu_1",
            "the replayed print to complete",
            one_completed,
        )
        .await;
    assert_eq!(jobs.len(), 1);
    // 100 reports in about a second: one creation, progress throttled to about one
    // update a second (plus the completion), never one per report.
    let mut created = 0;
    let mut updated = 0;
    while let Some(m) = ws.next_json(Duration::from_millis(500)).await {
        match m["type"].as_str() {
            Some("job_auto_created") => created += 1,
            Some("job_updated") => updated += 1,
            _ => {}
        }
    }
    assert_eq!(created, 1);
    assert!(
        (1..=10).contains(&updated),
        "{updated} job_updated events for 100 reports"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s05_pause_and_resume_stay_one_job() {
    let r = Rig::start(x1(1).prusalink(1)).await;
    for id in ["bambu_1", "prusa_1"] {
        r.act(id, print("lid.3mf", 30)).await;
    }
    for id in ["bambu_1", "prusa_1"] {
        let q = format!("printer_id={id}");
        r.wait_jobs(&q, "running", |j| {
            j.len() == 1 && j[0]["status"] == "running"
        })
        .await;
        r.act_when_ready(id, Action::Pause).await;
        r.wait_jobs(&q, "paused", |j| j.len() == 1 && j[0]["status"] == "paused")
            .await;
        r.act(id, Action::Resume).await;
        r.wait_jobs(&q, "running again", |j| {
            j.len() == 1 && j[0]["status"] == "running"
        })
        .await;
        r.act(id, Action::Finish).await;
        r.wait_jobs(&q, "completed", one_completed).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s06_finish_fail_and_cancel_end_states_on_bambu_and_prusalink() {
    let r = Rig::start(x1(2).bambu(1, Style::P1).prusalink(2)).await;
    r.wait_printer("prusa_2", "connected", |p| p["connection"] == "connected")
        .await;
    let plan = [
        ("bambu_1", Action::Finish, "completed"),
        ("bambu_2", Action::Fail, "failed"),
        ("bambu_3", Action::Cancel, "cancelled"),
        ("prusa_1", Action::Finish, "completed"),
        ("prusa_2", Action::Cancel, "cancelled"),
    ];
    for (id, _, _) in &plan {
        r.act(id, print("part.3mf", 60)).await;
    }
    for (id, _, _) in &plan {
        r.wait_jobs(&format!("printer_id={id}"), "running", |j| {
            j.len() == 1 && j[0]["status"] == "running"
        })
        .await;
    }
    for (id, end, _) in &plan {
        r.act(id, end.clone()).await;
    }
    for (id, _, want) in &plan {
        let jobs = r
            .wait_jobs(&format!("printer_id={id}"), want, |j| {
                j.len() == 1 && j[0]["status"] == *want
            })
            .await;
        let j = &jobs[0];
        assert!(j["end_time"].is_string(), "{j}");
        assert!(j["actual_duration"].as_i64().is_some_and(|d| d >= 0), "{j}");
        if *want == "completed" {
            assert_eq!(j["progress"], 100.0, "{j}");
        }
    }
}

/// Issue 20: a Bambu print that fails with a `print_error` code ends with that error as
/// its `end_reason` (the driver's text for the code), so the history says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bambu_print_failing_with_an_error_code_keeps_it_as_the_end_reason() {
    let r = Rig::start(x1(1)).await;
    r.act("bambu_1", print("part.3mf", 60)).await;
    r.wait_jobs("printer_id=bambu_1", "running", |j| {
        j.len() == 1 && j[0]["status"] == "running"
    })
    .await;
    r.act("bambu_1", Action::Fail).await;
    let jobs = r
        .wait_jobs("printer_id=bambu_1", "failed", |j| {
            j.len() == 1 && j[0]["status"] == "failed"
        })
        .await;
    let reason = jobs[0]["end_reason"].as_str().unwrap_or_default();
    assert!(!reason.trim().is_empty(), "{}", jobs[0]);
    assert!(
        reason.starts_with("Heatbed temperature malfunction (0300_8009)"),
        "the printer's code is kept and decoded: {reason}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s07_lingering_and_stale_finish_make_no_extra_job_and_the_next_print_gets_its_own() {
    let r = Rig::start(x1(1).bambu(1, Style::P1)).await;
    for id in ["bambu_1", "bambu_2"] {
        r.act(id, print("gear.3mf", 2)).await;
    }
    for id in ["bambu_1", "bambu_2"] {
        r.wait_jobs(&format!("printer_id={id}"), "completed", one_completed)
            .await;
        r.wait_sim(id, "FINISH").await;
    }
    // The FINISH lingers with the old name: several reports, no new job.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for id in ["bambu_1", "bambu_2"] {
        assert_eq!(r.jobs(&format!("printer_id={id}")).await.len(), 1);
        // A new print: the printer keeps reporting the stale FINISH for a while first.
        r.act(id, print("gear.3mf", 2)).await;
    }
    for id in ["bambu_1", "bambu_2"] {
        let jobs = r
            .wait_jobs(
                &format!("printer_id={id}"),
                "the second print completed",
                |j| j.len() == 2 && j.iter().all(|j| j["status"] == "completed"),
            )
            .await;
        assert_ne!(jobs[0]["id"], jobs[1]["id"]);
    }
}

async fn kill_mid_print(kill9: bool) {
    let r = Rig::start(x1(1).prusalink(1)).await;
    for id in ["bambu_1", "prusa_1"] {
        r.act(id, print("long_part.3mf", 12)).await;
    }
    let before = r
        .wait_jobs("status=running", "two running jobs", |j| j.len() == 2)
        .await;
    let r = r.restart_daemon(kill9).await;
    for id in ["bambu_1", "prusa_1"] {
        r.act(id, Action::Finish).await;
    }
    let after = r
        .wait_jobs("", "both prints completed", |j| {
            j.len() == 2 && j.iter().all(|j| j["status"] == "completed")
        })
        .await;
    for a in &after {
        let b = before
            .iter()
            .find(|b| b["id"] == a["id"])
            .expect("the same jobs");
        assert_eq!(a["start_time"], b["start_time"]);
        assert_eq!(a["customer_info"], b["customer_info"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s08a_daemon_stopped_with_sigterm_mid_print_keeps_the_same_job() {
    kill_mid_print(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s08b_daemon_killed_with_sigkill_mid_print_keeps_the_same_job() {
    kill_mid_print(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s09_daemon_started_while_a_print_is_under_way_marks_it_discovered_on_startup() {
    let sim = p1(1).prusalink(1).start().await.unwrap();
    for id in ["bambu_1", "prusa_1"] {
        sim.control(id, print("overnight.3mf", 30)).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    let d = rig::start_daemon(rig::DAEMON_EXTRA, sim.config_toml()).await;
    let r = Rig { sim, d };
    let jobs = r.wait_jobs("", "two jobs", |j| j.len() == 2).await;
    for j in &jobs {
        assert_eq!(j["customer_info"]["discovered_on_startup"], true, "{j}");
        assert_eq!(j["status"], "running", "{j}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s10_a_print_that_finished_while_the_daemon_was_down_is_closed_without_a_new_job() {
    let r = Rig::start(x1(1).prusalink(1)).await;
    for id in ["bambu_1", "prusa_1"] {
        r.act(id, print("bezel.3mf", 60)).await;
    }
    r.wait_jobs("status=running", "two running jobs", |j| j.len() == 2)
        .await;
    let Rig { sim, mut d } = r;
    let (dir, cfg) = (d.dir.clone(), d.config_path.clone());
    tokio::task::spawn_blocking(move || d.stop()).await.unwrap();
    for id in ["bambu_1", "prusa_1"] {
        sim.control(id, Action::Finish).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let d = tokio::task::spawn_blocking(move || crate::harness::Daemon::spawn(dir, cfg, &[]))
        .await
        .unwrap();
    let r = Rig { sim, d };
    let jobs = r
        .wait_jobs("", "both jobs closed", |j| {
            j.len() == 2 && j.iter().all(|j| j["status"] != "running")
        })
        .await;
    for j in &jobs {
        assert_eq!(j["status"], "completed", "{j}");
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        r.jobs("").await.len(),
        2,
        "no new job for the finished prints"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s11_the_same_file_twice_in_a_row_and_in_one_day_is_two_jobs_and_across_midnight_one() {
    // Twice in a row, and twice in one day with another print between.
    let r = Rig::start(p1(1).prusalink(1)).await;
    for id in ["bambu_1", "prusa_1"] {
        for (n, file) in ["cube.3mf", "cube.3mf", "other.3mf", "cube.3mf"]
            .iter()
            .enumerate()
        {
            r.act(id, print(file, 2)).await;
            let q = format!("printer_id={id}");
            r.wait_jobs(&q, "the print completed", |j| {
                j.len() == n + 1 && j.iter().all(|j| j["status"] == "completed")
            })
            .await;
            if id.starts_with("prusa") {
                r.act(id, Action::Dismiss).await;
            }
        }
        let cubes = r.jobs(&format!("printer_id={id}&q=cube")).await;
        assert_eq!(cubes.len(), 3, "three prints of cube.3mf on {id}");
    }
    // Across midnight: an X1 print that started yesterday 23:58 (printer clock) and is
    // still running today is one job.
    let yesterday = (chrono::Utc::now().date_naive() - chrono::Days::new(1))
        .and_hms_opt(23, 58, 0)
        .unwrap()
        .and_utc()
        .timestamp();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("midnight.jsonl");
    let mut lines = String::new();
    for (i, pct) in [97, 98, 99].iter().enumerate() {
        let p = json!({"print": {
            "gcode_state": "RUNNING", "gcode_file": "night.3mf", "subtask_name": "night",
            "task_id": "5550001", "subtask_id": "5550002", "gcode_start_time": yesterday.to_string(),
            "mc_percent": pct, "mc_remaining_time": 1, "command": "push_status"
        }});
        lines.push_str(
            &json!({"delay_ms": if i == 0 { 300 } else { 600 }, "payload": p}).to_string(),
        );
        lines.push('\n');
    }
    lines.push_str(&json!({"delay_ms": 600, "payload": {"print": {"gcode_state": "FINISH", "gcode_file": "night.3mf", "subtask_name": "night", "task_id": "5550001", "subtask_id": "5550002", "gcode_start_time": yesterday.to_string(), "mc_percent": 100, "command": "push_status"}}}).to_string());
    std::fs::write(&path, lines).unwrap();
    let night = Rig::start(farm().replay("bambu_1", &path)).await;
    let jobs = night
        .wait_jobs("", "the overnight print completed", one_completed)
        .await;
    let start = jobs[0]["start_time"].as_str().unwrap();
    assert!(
        start.ends_with("T23:58:00.000Z"),
        "start_time from the printer: {start}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s12_the_same_file_on_two_printers_at_once_is_two_jobs() {
    let r = Rig::start(x1(1).bambu(1, Style::P1).prusalink(1)).await;
    for id in ["bambu_1", "bambu_2", "prusa_1"] {
        r.act(id, print("same.3mf", 3)).await;
    }
    let jobs = r
        .wait_jobs("", "three completed jobs", |j| {
            j.len() == 3 && j.iter().all(|j| j["status"] == "completed")
        })
        .await;
    let printers: BTreeSet<_> = jobs
        .iter()
        .map(|j| j["printer_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(printers.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s13_a_manual_job_for_a_running_print_or_posted_just_before_it_is_the_prints_job() {
    let r = Rig::start(x1(2)).await;
    // Posted while the print runs: the print's job is returned, no duplicate.
    r.act("bambu_1", print("bracket.3mf", 20)).await;
    let auto = r
        .wait_jobs("printer_id=bambu_1", "the auto job", |j| j.len() == 1)
        .await;
    let (code, manual) = r
        .d
        .send("POST", "/api/v1/jobs", Some(json!({"printer_id": "bambu_1", "job_name": "Customer bracket", "filename": "bracket.3mf", "customer_info": {"order": "A-17"}})))
        .await;
    assert_eq!(code, 200, "{manual}");
    assert_eq!(manual["id"], auto[0]["id"]);
    assert_eq!(manual["job_name"], "Customer bracket");
    assert_eq!(manual["customer_info"]["order"], "A-17");
    assert_eq!(manual["customer_info"]["auto_created"], true);
    // Posted just before the print starts: the print attaches to it.
    let (code, pending) =
        r.d.send(
            "POST",
            "/api/v1/jobs",
            Some(json!({"printer_id": "bambu_2", "job_name": "Order 42", "filename": "hinge.3mf"})),
        )
        .await;
    assert_eq!(code, 201, "{pending}");
    assert_eq!(pending["status"], "pending");
    r.act("bambu_2", print("hinge.3mf", 2)).await;
    let jobs = r
        .wait_jobs(
            "printer_id=bambu_2",
            "the manual job completed",
            one_completed,
        )
        .await;
    assert_eq!(jobs[0]["id"], pending["id"]);
    assert_eq!(jobs[0]["job_name"], "Order 42");
    r.act("bambu_1", Action::Finish).await;
    r.wait_jobs("printer_id=bambu_1", "completed", one_completed)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s14_auto_creation_off_makes_no_job_and_switched_on_mid_print_the_job_appears() {
    let r = Rig::start_with(
        x1(1).prusalink(1),
        "[monitoring]\ninterval = 1\n[job_creation]\nauto_create = false\n",
    )
    .await;
    for id in ["bambu_1", "prusa_1"] {
        r.act(id, print("quiet.3mf", 30)).await;
    }
    r.wait_printer("bambu_1", "printing", |p| p["state"] == "printing")
        .await;
    r.wait_printer("prusa_1", "printing", |p| p["state"] == "printing")
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        r.jobs("").await.is_empty(),
        "no job while auto-creation is off"
    );
    let (code, _) =
        r.d.send(
            "PUT",
            "/api/v1/settings",
            Some(json!({"job_creation_auto_create": true})),
        )
        .await;
    assert_eq!(code, 200);
    let jobs = r.wait_jobs("", "two jobs", |j| j.len() == 2).await;
    assert!(jobs.iter().all(|j| j["status"] == "running"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s15_fifty_printers_starting_at_once_make_exactly_fifty_jobs() {
    let r = Rig::start(p1(50)).await;
    for i in 1..=50 {
        r.wait_printer(&format!("bambu_{i}"), "connected", |p| {
            p["connection"] == "connected"
        })
        .await;
    }
    for i in 1..=50 {
        r.act(
            &format!("bambu_{i}"),
            print(&format!("part_{}.3mf", i % 3), 6),
        )
        .await;
    }
    let jobs = r
        .wait_jobs("limit=1000", "fifty completed jobs", |j| {
            j.len() >= 50 && j.iter().all(|j| j["status"] == "completed")
        })
        .await;
    assert_eq!(jobs.len(), 50);
    let printers: BTreeSet<_> = jobs
        .iter()
        .map(|j| j["printer_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(printers.len(), 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s16_a_printer_dropping_off_mid_print_keeps_its_job_and_returning_idle_closes_it_unknown() {
    let r = Rig::start(x1(1).prusalink(1).reboot_ms(2500)).await;
    for id in ["bambu_1", "prusa_1"] {
        r.act(id, print("tall_vase.3mf", 60)).await;
    }
    let before = r
        .wait_jobs("status=running", "two running jobs", |j| j.len() == 2)
        .await;
    r.wait_sim("bambu_1", "RUNNING").await;
    // bambu_1 is power-cycled mid-print and comes back still printing (power-loss
    // recovery): the same job.
    r.act("bambu_1", Action::Reboot).await;
    r.wait_printer("bambu_1", "offline", |p| p["connection"] != "connected")
        .await;
    r.wait_printer("bambu_1", "back and printing", |p| {
        p["connection"] == "connected" && p["state"] == "printing"
    })
    .await;
    // prusa_1 goes off; while the daemon is not looking its print is stopped and the
    // end screen dismissed, and it comes back idle: nobody saw how the print ended, so
    // its job is closed as unknown. (A long poll interval keeps the daemon from looking.)
    let set = |i: u64| json!({"monitoring_interval": i});
    assert_eq!(
        r.d.send("PUT", "/api/v1/settings", Some(set(3600))).await.0,
        200
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    r.act("prusa_1", Action::Reboot).await;
    r.wait_sim_status("prusa_1", "prusa_1 back online", |s| s.online)
        .await;
    r.act("prusa_1", Action::Cancel).await;
    r.act("prusa_1", Action::Dismiss).await;
    assert_eq!(
        r.d.send("PUT", "/api/v1/settings", Some(set(1))).await.0,
        200
    );
    let jobs = r
        .wait_jobs("printer_id=prusa_1", "closed as unknown", |j| {
            j.len() == 1 && j[0]["status"] == "unknown"
        })
        .await;
    assert!(before.iter().any(|b| b["id"] == jobs[0]["id"]));
    let b1 = r.jobs("printer_id=bambu_1").await;
    assert_eq!(b1.len(), 1, "{b1:?}");
    assert_eq!(b1[0]["status"], "running");
    assert!(before.iter().any(|b| b["id"] == b1[0]["id"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s17_a_prusalink_print_shorter_than_one_poll_is_still_recorded() {
    // The fast status probe off: it would see the print between two polls.
    let r = Rig::start_with(prusa(1), "[monitoring]\ninterval = 6\nstatus_probe_s = 0\n").await;
    r.wait_printer("prusa_1", "connected", |p| p["connection"] == "connected")
        .await;
    // Just after a poll, a one-second print starts and ends before the next one.
    let polls = r.sim.status("prusa_1").unwrap().reports_sent;
    while r.sim.status("prusa_1").unwrap().reports_sent == polls {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    r.act("prusa_1", print("tiny_washer.gcode", 1)).await;
    let jobs = r
        .wait_jobs("", "the short print recorded", |j| !j.is_empty())
        .await;
    assert_eq!(jobs.len(), 1);
    // PrusaLink's end screen carries no job object (protocols.md §3.7): the daemon knows
    // a print ended, and how, but not which file it was.
    assert_eq!(jobs[0]["filename"], "unknown");
    assert_eq!(jobs[0]["status"], "completed");
    assert_eq!(jobs[0]["customer_info"]["auto_created"], true);
    // The end screen stays up: later polls add nothing.
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(r.jobs("").await.len(), 1);
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s18_replayed_p1_and_x1_sequences_from_protocols_2_7_give_the_expected_jobs() {
    // P1-style (protocols.md §2.7): a full first report, then deltas only. Print A
    // finishes, lingers in FINISH, a stale FINISH after the next job is accepted, print B
    // is cancelled (FAILED with the cancel code), then idle.
    let p1_seq = vec![
        (
            300,
            json!({"command": "push_status", "gcode_state": "IDLE", "gcode_file": "", "subtask_name": "", "task_id": "0", "subtask_id": "0", "mc_percent": 0, "mc_remaining_time": 0, "print_error": 0}),
        ),
        (
            300,
            json!({"command": "push_status", "gcode_state": "PREPARE", "gcode_file": "/cache/a.3mf", "subtask_name": "a"}),
        ),
        (
            300,
            json!({"command": "push_status", "gcode_state": "RUNNING", "mc_percent": 10, "mc_remaining_time": 3}),
        ),
        (300, json!({"command": "push_status", "mc_percent": 60})),
        (
            300,
            json!({"command": "push_status", "gcode_state": "FINISH", "mc_percent": 100}),
        ),
        (
            300,
            json!({"command": "push_status", "mc_remaining_time": 0}),
        ),
        (
            300,
            json!({"command": "push_status", "gcode_state": "FINISH", "gcode_file": "/cache/b.3mf"}),
        ),
        (
            300,
            json!({"command": "push_status", "gcode_state": "PREPARE", "subtask_name": "b"}),
        ),
        (
            300,
            json!({"command": "push_status", "gcode_state": "RUNNING", "mc_percent": 5}),
        ),
        (
            300,
            json!({"command": "push_status", "gcode_state": "FAILED", "print_error": 50348044}),
        ),
        (
            300,
            json!({"command": "push_status", "gcode_state": "IDLE", "print_error": 0}),
        ),
    ];
    // X1-style: the whole object every time, with task ids and a start time; print C
    // fails with a real error.
    let now = chrono::Utc::now().timestamp().to_string();
    let full = |state: &str, pct: i64, err: i64| json!({"command": "push_status", "gcode_state": state, "gcode_file": "Metadata/plate_1.gcode", "subtask_name": "c", "task_id": "77001", "subtask_id": "77002", "gcode_start_time": now, "mc_percent": pct, "mc_remaining_time": 5, "print_error": err});
    let x1_seq = vec![
        (300, full("PREPARE", 0, 0)),
        (300, full("RUNNING", 20, 0)),
        (300, full("PAUSE", 20, 0)),
        (300, full("RUNNING", 30, 0)),
        (300, full("FAILED", 30, 117473287)),
        (300, full("FAILED", 30, 117473287)),
    ];
    let (_d1, p1_path) = replay(&p1_seq);
    let (_d2, x1_path) = replay(&x1_seq);
    let r = Rig::start(
        farm()
            .replay("bambu_1", &p1_path)
            .replay("bambu_2", &x1_path),
    )
    .await;
    let p1_jobs = r
        .wait_jobs("printer_id=bambu_1", "a completed and b cancelled", |j| {
            j.len() == 2 && j[0]["status"] == "cancelled"
        })
        .await;
    assert_eq!(statuses(&p1_jobs), ["completed", "cancelled"]);
    assert_eq!(p1_jobs[1]["filename"], "a.3mf");
    assert_eq!(p1_jobs[0]["filename"], "b.3mf");
    let x1_jobs = r
        .wait_jobs("printer_id=bambu_2", "c failed", |j| {
            j.len() == 1 && j[0]["status"] == "failed"
        })
        .await;
    assert_eq!(x1_jobs[0]["job_name"], "c");
    assert!(x1_jobs[0]["customer_info"]["printer_start_time"].is_string());
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        r.jobs("").await.len(),
        3,
        "no job from the lingering or stale FINISH"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_job_write_is_shown_on_health_and_retried_by_the_next_status() {
    let r = Rig::start(p1(1)).await;
    // Another program holds the database's write lock (an sqlite3 shell mid-transaction).
    let db = r.d.dir.path().join("printfarmd.db");
    let locker = std::thread::spawn(move || {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch("BEGIN EXCLUSIVE").unwrap();
        std::thread::sleep(Duration::from_secs(12));
        c.execute_batch("COMMIT").unwrap();
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    r.act("bambu_1", print("locked_out.3mf", 40)).await;
    // The job cannot be written: /health says so, and monitoring carries on.
    let health = r
        .wait_health("health degraded", |h| h["status"] == "degraded")
        .await;
    let msg = health["database"]["write_problem"]["message"]
        .as_str()
        .unwrap_or("");
    assert!(msg.contains("locked"), "{health}");
    r.wait_printer("bambu_1", "still monitored", |p| p["state"] == "printing")
        .await;
    // Once the lock is gone, the next status creates the job, and health clears.
    locker.join().unwrap();
    let jobs = r
        .wait_jobs("", "the job written after the lock", |j| j.len() == 1)
        .await;
    assert_eq!(jobs[0]["status"], "running");
    let h = r
        .wait_health("health cleared", |h| h["status"] == "ok")
        .await;
    // How far behind the writer is: statuses waited behind the locked writes.
    assert!(h["status_lag_ms"].is_u64(), "{h}");
    assert!(h["statuses_processed"].as_u64() > Some(0), "{h}");
}
