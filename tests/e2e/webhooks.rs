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
