//! Issue 19, webhooks, end to end: a real HTTP receiver in the test, the real daemon
//! watching a simulated printer, deliveries checked for their HMAC signature, their
//! idempotency key and their format, and a receiver that is down while the daemon
//! restarts still getting every delivery once it is back.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use printfarmd_sim::Action;
use serde_json::json;

use crate::harness::Daemon;
use crate::receiver::{Got, Receiver, free_port, hook_status, signature_ok, wait_got};
use crate::rig::{self, Rig, eventually, print, x1};

const SECRET: &str = "wh-s3cret-Zq8";
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_deliveries_reach_a_receiver_that_was_down_across_a_daemon_restart() {
    let port = free_port();
    let got = Arc::new(Mutex::new(Vec::new()));
    let receiver = Receiver::start(port, got.clone()).await;
    let extra = format!(
        "{}\n[[webhooks]]\nid = \"farm\"\nurl = \"http://127.0.0.1:{port}/hook\"\nsecret = \"{SECRET}\"\nevents = [\"job_auto_created\", \"job_updated\"]\n",
        rig::DAEMON_EXTRA
    );
    let r = Rig::start_with(x1(1), &extra).await;
    let printer_name = r.sim.printers()[0].name.clone();
    // A second webhook through the API, in ntfy format, for outcomes only.
    let (code, created) =
        r.d.send(
            "POST",
            "/api/v1/webhooks",
            Some(json!({
                "id": "phone", "url": format!("http://127.0.0.1:{port}/ntfy/farm-topic"),
                "format": "ntfy", "events": ["job_updated"], "statuses": ["completed", "failed"],
                "secret": "other-secret-77"
            })),
        )
        .await;
    assert_eq!(code, 201, "{created}");

    // Receiver up: the print's start arrives signed, with the WebSocket's envelope.
    r.act("bambu_1", print("fail.3mf", 120)).await;
    let log = || r.d.log();
    let started = wait_got(
        "job_auto_created",
        &got,
        |g| g.path == "/hook" && g.json()["type"] == "job_auto_created",
        log,
    )
    .await;
    assert!(signature_ok(SECRET, &started), "bad signature: {started:?}");
    assert!(!signature_ok("wrong", &started));
    assert!(started.header("x-printfarmd-delivery").starts_with("dlv_"));
    assert_eq!(started.header("x-printfarmd-event"), "job_auto_created");
    let env = started.json();
    assert_eq!(env["data"]["printer_id"], "bambu_1");
    // (The Bambu driver reports the job name as the file name: "fail".)
    let filename = env["data"]["filename"].as_str().unwrap().to_owned();
    assert!(filename.starts_with("fail"), "{env}");
    assert!(env["seq"].is_u64() && env["timestamp"].is_string(), "{env}");
    let job_id = env["data"]["id"].as_str().unwrap().to_owned();
    // Progress is not news: nothing but the start so far on /hook.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        receiver
            .all()
            .iter()
            .all(|g| g.json()["type"] == "job_auto_created"),
        "{:#?}",
        receiver.all()
    );

    // Receiver down: the failure is queued and its attempts fail.
    receiver.stop();
    r.act("bambu_1", Action::Fail).await;
    r.wait_jobs("", "the job failed", |j| {
        j.iter().any(|j| j["status"] == "failed")
    })
    .await;
    for id in ["farm", "phone"] {
        eventually(
            "a failed attempt recorded",
            async || {
                let s = hook_status(&r.d, id).await;
                if s["status"]["queued"].as_u64() >= Some(1)
                    && s["status"]["last_error"].is_string()
                {
                    Ok(s)
                } else {
                    Err(s)
                }
            },
            |s| format!("{s}"),
        )
        .await;
    }
    let s = hook_status(&r.d, "farm").await;
    assert_eq!(s["status"]["last_error"], "could not connect", "{s}");

    // The daemon restarts while the receiver is still down; then the receiver returns.
    let r = r.restart_daemon(false).await;
    let receiver = Receiver::start(port, got.clone()).await;
    let failed = wait_got(
        "the failure on /hook",
        &got,
        |g| g.path == "/hook" && g.json()["data"]["status"] == "failed",
        || r.d.log(),
    )
    .await;
    assert!(signature_ok(SECRET, &failed));
    assert_eq!(failed.json()["data"]["id"], job_id.as_str());
    let ntfy = wait_got(
        "the ntfy message",
        &got,
        |g| g.path == "/ntfy/farm-topic",
        || r.d.log(),
    )
    .await;
    assert!(signature_ok("other-secret-77", &ntfy));
    assert!(ntfy.header("content-type").starts_with("text/plain"));
    assert_eq!(ntfy.header("tags"), "x");
    let want = format!("❌ {filename} failed on {printer_name} after ");
    assert!(
        ntfy.body.starts_with(&want),
        "{:?} does not start with {want:?}",
        ntfy.body
    );

    // Everything delivered: nothing queued, the success recorded.
    eventually(
        "the queue empty",
        async || {
            let s = hook_status(&r.d, "farm").await;
            if s["status"]["queued"] == 0 && s["status"]["last_success_at"].is_string() {
                Ok(())
            } else {
                Err(s)
            }
        },
        |s| format!("{s}"),
    )
    .await;
    // The same status on /metrics, by webhook id; never a URL or a secret there.
    let metrics =
        r.d.http
            .get(r.d.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
    let value = |series: &str| {
        metrics.lines().find_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')?
                .parse::<f64>()
                .ok()
        })
    };
    let now = chrono::Utc::now().timestamp() as f64;
    assert_eq!(value("printfarmd_webhooks"), Some(2.0), "{metrics}");
    for id in ["farm", "phone"] {
        let series = |name: &str| format!("printfarmd_webhook_{name}{{webhook=\"{id}\"}}");
        assert_eq!(value(&series("queued")), Some(0.0), "{metrics}");
        assert!(
            value(&series("delivered_total")).is_some_and(|n| n >= 1.0),
            "{metrics}"
        );
        assert!(
            value(&series("failed_attempts_total")).is_some_and(|n| n >= 1.0),
            "{metrics}"
        );
        for t in [
            "last_success_timestamp_seconds",
            "last_error_timestamp_seconds",
        ] {
            assert!(
                value(&series(t)).is_some_and(|t| (now - 600.0..=now + 5.0).contains(&t)),
                "{t} of {id}: {metrics}"
            );
        }
    }
    // The start and the failure, both on /hook.
    assert!(
        value("printfarmd_webhook_delivered_total{webhook=\"farm\"}").is_some_and(|n| n >= 2.0),
        "{metrics}"
    );
    for s in [SECRET, "other-secret-77", "farm-topic", &format!(":{port}")] {
        assert!(!metrics.contains(s), "{s} on /metrics: {metrics}");
    }

    // At least once, never more than once per delivery id: the same id always carries
    // the same body, and no event arrived under two ids.
    let all = receiver.all();
    let mut by_id: HashMap<String, String> = HashMap::new();
    for g in &all {
        let id = g.header("x-printfarmd-delivery").to_owned();
        if let Some(body) = by_id.insert(id.clone(), g.body.clone()) {
            assert_eq!(body, g.body, "delivery {id} carried two bodies");
        }
    }
    let mut bodies: Vec<&String> = by_id.values().collect();
    bodies.sort();
    let n = bodies.len();
    bodies.dedup();
    assert_eq!(
        n,
        bodies.len(),
        "an event was delivered under two ids: {all:#?}"
    );
    // The secrets stayed secret.
    let (_, list) = r.d.get("/api/v1/webhooks").await;
    let seen = format!("{list}{}", r.d.log());
    for s in [SECRET, "other-secret-77", "farm-topic"] {
        assert!(!seen.contains(s), "{s} leaked: {seen}");
    }
    receiver.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhooks_api_checks_input_hides_secrets_and_never_follows_redirects() {
    let port = free_port();
    let got = Arc::new(Mutex::new(Vec::new()));
    let receiver = Receiver::start(port, got.clone()).await;
    let extra = format!(
        "[[webhooks]]\nid = \"file_hook\"\nurl = \"http://127.0.0.1:{port}/hook?token=t0ken\"\nevents = [\"job_created\"]\n"
    );
    let d = tokio::task::spawn_blocking(move || Daemon::start(&extra))
        .await
        .unwrap();
    // Bad input: clear errors, nothing stored.
    for (body, want) in [
        (json!({"url": "ftp://h/x"}), "http:// or https://"),
        (
            json!({"url": "http://h/", "events": ["job_done"]}),
            "job_done",
        ),
        (json!({"url": "http://h/", "secret": ""}), "secret"),
        (
            json!({"url": "http://h/", "format": "telegram"}),
            "telegram",
        ),
        (json!({"url": "http://h/", "colour": "red"}), "colour"),
    ] {
        let (code, e) = d.send("POST", "/api/v1/webhooks", Some(body.clone())).await;
        assert!(code == 422 || code == 400, "{body} → {code} {e}");
        assert!(
            e["message"].as_str().unwrap().contains(want),
            "{body} → {e}"
        );
    }
    // A webhook to a redirecting endpoint.
    let (code, w) = d
        .send(
            "POST",
            "/api/v1/webhooks",
            Some(json!({"url": format!("http://127.0.0.1:{port}/redirect"), "events": ["job_created"], "secret": "hidden-77"})),
        )
        .await;
    assert_eq!(code, 201, "{w}");
    let id = w["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("wh_"), "{w}");
    assert_eq!(w["has_secret"], true);
    assert!(w.get("secret").is_none(), "{w}");
    assert_eq!(w["url"], format!("http://127.0.0.1:{port}/…"));
    let (code, dup) = d
        .send(
            "POST",
            "/api/v1/webhooks",
            Some(json!({"id": id, "url": "http://h/"})),
        )
        .await;
    assert_eq!(code, 409, "{dup}");

    let (code, job) = d
        .send(
            "POST",
            "/api/v1/jobs",
            Some(
                json!({"printer_id": "prusa_1", "job_name": "bracket", "filename": "bracket.3mf"}),
            ),
        )
        .await;
    assert_eq!(code, 201, "{job}");
    // The file's webhook gets it; the redirect is reported, not followed.
    wait_got("job_created", &got, |g| g.path == "/hook", || d.log()).await;
    eventually(
        "the redirect reported",
        async || {
            let s = hook_status(&d, &id).await;
            if s["status"]["last_error"]
                .as_str()
                .is_some_and(|e| e.starts_with("HTTP 302: redirects are not followed"))
            {
                Ok(())
            } else {
                Err(s)
            }
        },
        |s| format!("{s}"),
    )
    .await;
    assert_eq!(
        receiver.all().len(),
        1,
        "the redirect was followed: {:#?}",
        receiver.all()
    );

    // Delete: the file's webhook belongs to the file; the API's goes, with its queue.
    let (code, e) = d.send("DELETE", "/api/v1/webhooks/file_hook", None).await;
    assert_eq!(
        (code, e["code"].as_str()),
        (409, Some("managed_by_config")),
        "{e}"
    );
    let (code, _) = d
        .send("DELETE", &format!("/api/v1/webhooks/{id}"), None)
        .await;
    assert_eq!(code, 204);
    let (code, _) = d
        .send("DELETE", &format!("/api/v1/webhooks/{id}"), None)
        .await;
    assert_eq!(code, 404);
    let (_, list) = d.get("/api/v1/webhooks").await;
    assert_eq!(list["total_count"], 1, "{list}");
    assert_eq!(list["webhooks"][0]["status"]["queued"], 0, "{list}");
    let seen = format!("{list}{}", d.log());
    for s in ["hidden-77", "t0ken"] {
        assert!(!seen.contains(s), "{s} leaked: {seen}");
    }
    receiver.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn printer_status_webhooks_fire_on_connection_and_state_changes_only() {
    let port = free_port();
    let got = Arc::new(Mutex::new(Vec::new()));
    let receiver = Receiver::start(port, got.clone()).await;
    let extra = format!(
        "{}\n[[webhooks]]\nid = \"chat\"\nurl = \"http://127.0.0.1:{port}/slack\"\nformat = \"slack\"\nevents = [\"printer_status\"]\nprinter_ids = [\"bambu_1\"]\n",
        rig::DAEMON_EXTRA
    );
    let r = Rig::start_with(x1(2), &extra).await;
    let names: Vec<String> = r.sim.printers().iter().map(|p| p.name.clone()).collect();
    let text = |g: &Got| g.json()["text"].as_str().unwrap_or("").to_owned();
    // A print moves the state: news. Its progress, reported every second, is not.
    r.act("bambu_1", print("cube.3mf", 60)).await;
    r.act("bambu_2", print("other.3mf", 60)).await;
    let printing = format!("🖨️ {} is connected (printing)", names[0]);
    wait_got("printing", &got, |g| text(g) == printing, || r.d.log()).await;
    // Connection changes are news too.
    r.act("bambu_1", Action::Reboot).await;
    r.act("bambu_2", Action::Reboot).await;
    let off = format!("🔌 {} is ", names[0]);
    wait_got(
        "a connection change",
        &got,
        |g| text(g).starts_with(&off),
        || r.d.log(),
    )
    .await;
    eventually(
        "printing again after the connection change",
        async || {
            let texts: Vec<String> = receiver.all().iter().map(text).collect();
            let first_off = texts.iter().position(|t| t.starts_with(&off));
            let last_printing = texts.iter().rposition(|t| *t == printing);
            if first_off.is_some() && last_printing > first_off {
                Ok(())
            } else {
                Err(texts)
            }
        },
        |t| format!("received: {t:#?}"),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let texts: Vec<String> = receiver.all().iter().map(text).collect();
    assert!(
        texts.iter().all(|t| t.contains(names[0].as_str())),
        "the printer filter let another printer through: {texts:#?}"
    );
    // Statuses arrive every second while printing; only changes were sent.
    for w in texts.windows(2) {
        assert_ne!(w[0], w[1], "the same state sent twice in a row: {texts:#?}");
    }
    assert!(
        texts.len() < 12,
        "more than state changes were sent: {texts:#?}"
    );
    receiver.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_auth_on_the_webhooks_api_needs_a_key() {
    let d = tokio::task::spawn_blocking(|| {
        Daemon::start("[auth]\nenabled = true\napi_keys = [\"key-for-hooks-1\"]\n")
    })
    .await
    .unwrap();
    let (code, _) = d.get("/api/v1/webhooks").await;
    assert_eq!(code, 401);
    let (code, _) = d
        .send(
            "POST",
            "/api/v1/webhooks",
            Some(json!({"url": "http://h/"})),
        )
        .await;
    assert_eq!(code, 401);
    let r = d
        .http
        .get(d.url("/api/v1/webhooks"))
        .header("x-api-key", "key-for-hooks-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

/// The events of the daemon's last commit at SIGTERM reach webhooks. A print ends while
/// the job writer is held (a debug-build fault: it blocks at the next keep-alive ping);
/// SIGTERM comes; the writer is let go, and the print's end is written by the shutdown's
/// final commit — after WebSocket clients were closed. Its delivery must be in the
/// on-disk queue when the process has exited, and reach the receiver after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_ending_in_the_last_commit_before_sigterm_is_delivered_after_a_restart() {
    let port = free_port(); // the receiver is down until the restart
    let got = Arc::new(Mutex::new(Vec::new()));
    let sim = x1(1).start().await.unwrap();
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let config = dir.path().join("daemon.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nbind = \"127.0.0.1:0\"\n[database]\npath = {:?}\n{}\n[[webhooks]]\nid = \"ends\"\nurl = \"http://127.0.0.1:{port}/hook\"\nevents = [\"job_updated\"]\nstatuses = [\"completed\"]\n{}",
            dir.path().join("printfarmd.db"),
            rig::DAEMON_EXTRA,
            sim.config_toml()
        ),
    )
    .unwrap();
    // Keep-alive pings (what the fault holds the writer in) need a notify socket.
    let sock = dir.path().join("notify.sock");
    let notify = std::os::unix::net::UnixDatagram::bind(&sock).unwrap();
    notify.set_nonblocking(true).unwrap();
    let flag = dir.path().join("block-writer");
    let fault = format!("block-writer:{}", flag.display());
    let d = tokio::task::spawn_blocking({
        let (dir, config, sock) = (dir.clone(), config.clone(), sock.display().to_string());
        move || {
            Daemon::spawn(
                dir,
                config,
                &[
                    ("NOTIFY_SOCKET", sock.as_str()),
                    ("WATCHDOG_USEC", "1000000"),
                    ("PRINTFARMD_TEST_FAULT", fault.as_str()),
                ],
            )
        }
    })
    .await
    .unwrap();
    let r = Rig { sim, d };
    r.wait_printer("bambu_1", "connected and reporting", |v| {
        v["connection"] == "connected" && v["state"] != "unknown"
    })
    .await;
    r.act("bambu_1", print("last.3mf", 300)).await;
    let jobs = r
        .wait_jobs("status=running", "the print's job", |j| j.len() == 1)
        .await;
    let job_id = jobs[0]["id"].as_str().unwrap().to_owned();

    // Hold the writer, then end the print: its statuses wait in the writer's mailbox.
    std::fs::write(&flag, b"").unwrap();
    eventually(
        "the job writer held",
        async || {
            let log = r.d.log();
            if log.contains("test fault: the job writer is blocked") {
                Ok(())
            } else {
                Err(log)
            }
        },
        |log| rig::tail(&log, 20),
    )
    .await;
    r.act("bambu_1", Action::Finish).await;
    r.wait_sim("bambu_1", "FINISH").await;
    // The printer's reports of the end reach the driver and the mailbox in milliseconds.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, job) = r.d.get(&format!("/api/v1/jobs/{job_id}")).await;
    assert_eq!(job["status"], "running", "the writer was not held: {job}");

    // SIGTERM while held; a moment later the writer goes on, into the shutdown.
    let Rig { sim, d } = r;
    let stopping = tokio::task::spawn_blocking(move || {
        let mut d = d;
        d.stop();
        d
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    std::fs::remove_file(&flag).unwrap();
    let d = stopping.await.unwrap();

    // The end was written at shutdown, and its delivery queued on disk.
    let (status, queued) = {
        let c = rusqlite::Connection::open_with_flags(
            dir.path().join("printfarmd.db"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap();
        let status: String = c
            .query_row("SELECT status FROM jobs WHERE id = ?1", [&job_id], |r| {
                r.get(0)
            })
            .unwrap();
        let mut q = c
            .prepare(
                "SELECT id FROM webhook_deliveries WHERE webhook_id = 'ends' \
                 AND body LIKE ?1 AND body LIKE '%\"status\":\"completed\"%'",
            )
            .unwrap();
        let ids: Vec<String> = q
            .query_map([format!("%{job_id}%")], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        (status, ids)
    };
    assert_eq!(
        status,
        "completed",
        "the print's end was not in the last commit; log:\n{}",
        rig::tail(&d.log(), 40)
    );
    assert_eq!(
        queued.len(),
        1,
        "the end's delivery is not in the on-disk queue (lost at shutdown); log:\n{}",
        rig::tail(&d.log(), 40)
    );

    // Restarted, with the receiver up: delivered from the queue, under its queued id.
    let receiver = Receiver::start(port, got.clone()).await;
    let (dir2, config2) = (d.dir.clone(), d.config_path.clone());
    drop(d);
    let d = tokio::task::spawn_blocking(move || Daemon::spawn(dir2, config2, &[]))
        .await
        .unwrap();
    let ended = wait_got(
        "the end delivered after the restart",
        &got,
        |g| g.json()["data"]["id"] == job_id.as_str(),
        || d.log(),
    )
    .await;
    assert_eq!(ended.json()["data"]["status"], "completed");
    assert_eq!(ended.header("x-printfarmd-delivery"), queued[0]);
    receiver.stop();
    drop(sim);
}
