//! The simulated PrusaLink printers seen through a plain HTTP client: Digest challenges as
//! Buddy sends them (MD5, no qop, stale nonces), `X-Api-Key`, 204s, end states that stay until
//! dismissed, the legacy API, and a job id counter that survives a reboot (protocols.md §3).

mod sim_common;

use std::time::Duration;

use diqwest::WithDigestAuth;
use md5::{Digest, Md5};
use printfarmd_sim::{Action, SimFarm, SimPrinterInfo};
use reqwest::{Client, StatusCode};
use serde_json::Value;
use sim_common::{GUARD, quick};

fn url(p: &SimPrinterInfo, path: &str) -> String {
    format!("http://{}:{}{path}", p.host, p.port)
}

fn md5_hex(s: &str) -> String {
    Md5::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The Authorization header a no-qop Digest client computes (RFC 2069).
fn digest_header(password: &str, nonce: &str, uri: &str) -> String {
    let ha1 = md5_hex(&format!("maker:Printer API:{password}"));
    let ha2 = md5_hex(&format!("GET:{uri}"));
    let response = md5_hex(&format!("{ha1}:{nonce}:{ha2}"));
    format!(
        r#"Digest username="maker", realm="Printer API", nonce="{nonce}", uri="{uri}", response="{response}""#
    )
}

fn nonce_of(challenge: &str) -> String {
    challenge
        .split("nonce=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_default()
        .to_string()
}

async fn farm(first_job_id: u64) -> (SimFarm, SimPrinterInfo) {
    let farm = quick()
        .prusalink(1)
        .prusa_first_job_id(first_job_id)
        .control_addr(None)
        .start()
        .await
        .expect("farm");
    let p = farm.printers()[0].clone();
    (farm, p)
}

fn http() -> Client {
    Client::builder().timeout(GUARD).build().unwrap()
}

async fn get_json(c: &Client, p: &SimPrinterInfo, path: &str) -> (StatusCode, Option<Value>) {
    let resp = c
        .get(url(p, path))
        .send_digest_auth(("maker", p.password.as_deref().unwrap()))
        .await
        .expect("request");
    let status = resp.status();
    let body = resp.bytes().await.unwrap();
    (status, serde_json::from_slice(&body).ok())
}

async fn status_until(c: &Client, p: &SimPrinterInfo, state: &str) -> Value {
    let deadline = tokio::time::Instant::now() + GUARD;
    loop {
        let (_, body) = get_json(c, p, "/api/v1/status").await;
        let body = body.expect("status JSON");
        if body["printer"]["state"] == state {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never saw {state}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_digest_challenge_is_md5_without_qop_and_stale_nonces_are_flagged() {
    let (farm, p) = farm(1).await;
    let password = p.password.clone().unwrap();
    assert_eq!(p.username.as_deref(), Some("maker"));
    let c = http();
    let resp = c.get(url(&p, "/api/v1/status")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let challenge = resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        challenge.starts_with(r#"Digest realm="Printer API", nonce=""#),
        "{challenge}"
    );
    assert!(challenge.ends_with("stale=false"), "{challenge}");
    assert!(
        !challenge.contains("qop"),
        "Buddy does not do qop: {challenge}"
    );
    let nonce = nonce_of(&challenge);
    assert_eq!(nonce.len(), 16);
    assert!(nonce.chars().all(|ch| ch.is_ascii_hexdigit()));

    let ok = c
        .get(url(&p, "/api/v1/status"))
        .header(
            "authorization",
            digest_header(&password, &nonce, "/api/v1/status"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);

    let wrong = c
        .get(url(&p, "/api/v1/status"))
        .header(
            "authorization",
            digest_header("wrong", &nonce, "/api/v1/status"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(
        wrong.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .ends_with("stale=false")
    );

    let old = c
        .get(url(&p, "/api/v1/status"))
        .header(
            "authorization",
            digest_header(&password, "0123456789abcdef", "/api/v1/status"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), StatusCode::UNAUTHORIZED);
    assert!(
        old.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .ends_with("stale=true"),
        "right password, unknown nonce"
    );

    let key = c
        .get(url(&p, "/api/v1/status"))
        .header("x-api-key", &password)
        .send()
        .await
        .unwrap();
    assert_eq!(key.status(), StatusCode::OK);
    let bad_key = c
        .get(url(&p, "/api/v1/status"))
        .header("x-api-key", "nope")
        .send()
        .await
        .unwrap();
    assert_eq!(bad_key.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        bad_key.headers()["www-authenticate"],
        r#"ApiKey realm="Printer API""#
    );
    farm.shutdown().await;
}

#[tokio::test]
async fn a_digest_client_reads_version_info_status_and_job() {
    let (farm, p) = farm(297).await;
    let c = http();
    let (code, version) = get_json(&c, &p, "/api/version").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(version.unwrap()["text"], "PrusaLink");
    let (_, info) = get_json(&c, &p, "/api/v1/info").await;
    assert!(
        info.unwrap()["serial"]
            .as_str()
            .unwrap()
            .starts_with("10589-")
    );
    let (code, _) = get_json(&c, &p, "/api/v1/job").await;
    assert_eq!(code, StatusCode::NO_CONTENT, "no job: 204");
    let (_, status) = get_json(&c, &p, "/api/v1/status").await;
    let status = status.unwrap();
    assert_eq!(status["printer"]["state"], "IDLE");
    assert!(status.get("job").is_none());

    let file = "bracket_v3_0.4n_0.2mm_PETG_COREONE_1h20m.bgcode";
    farm.control(
        &p.id,
        Action::Print {
            file: file.into(),
            duration_s: 100,
            layers: None,
        },
    )
    .await
    .unwrap();
    let (_, status) = get_json(&c, &p, "/api/v1/status").await;
    let status = status.unwrap();
    assert_eq!(status["printer"]["state"], "PRINTING");
    assert_eq!(status["job"]["id"], 297);
    let (code, job) = get_json(&c, &p, "/api/v1/job").await;
    assert_eq!(code, StatusCode::OK);
    let job = job.unwrap();
    assert_eq!(job["file"]["display_name"], file);
    assert_eq!(job["file"]["name"], "BRACKE~1.BGC");
    let (_, legacy) = get_json(&c, &p, "/api/job").await;
    let legacy = legacy.unwrap();
    assert_eq!(legacy["state"], "Printing");
    assert!(
        legacy["progress"]["completion"].as_f64().unwrap() < 1.0,
        "a fraction"
    );
    let (_, printer) = get_json(&c, &p, "/api/printer").await;
    assert_eq!(printer.unwrap()["state"]["flags"]["link_state"], "PRINTING");
    farm.shutdown().await;
}

#[tokio::test]
async fn finished_and_stopped_stay_in_status_until_dismissed() {
    let (farm, p) = farm(10).await;
    let c = http();
    farm.control(
        &p.id,
        Action::Print {
            file: "a.bgcode".into(),
            duration_s: 1,
            layers: None,
        },
    )
    .await
    .unwrap();
    let finished = status_until(&c, &p, "FINISHED").await;
    assert!(finished.get("job").is_none());
    assert_eq!(
        get_json(&c, &p, "/api/v1/job").await.0,
        StatusCode::NO_CONTENT
    );
    let (_, legacy) = get_json(&c, &p, "/api/job").await;
    assert_eq!(
        legacy.unwrap(),
        serde_json::json!({"state": "Operational", "job": null, "progress": null})
    );
    status_until(&c, &p, "FINISHED").await;
    farm.control(&p.id, Action::Dismiss).await.unwrap();
    status_until(&c, &p, "IDLE").await;

    farm.control(
        &p.id,
        Action::Print {
            file: "b.bgcode".into(),
            duration_s: 100,
            layers: None,
        },
    )
    .await
    .unwrap();
    let printing = status_until(&c, &p, "PRINTING").await;
    assert_eq!(printing["job"]["id"], 11);
    farm.control(&p.id, Action::Cancel).await.unwrap();
    status_until(&c, &p, "STOPPED").await;
    assert!(
        farm.control(&p.id, Action::Cancel).await.is_err(),
        "nothing to cancel"
    );
    farm.shutdown().await;
}

#[tokio::test]
async fn the_v1_job_endpoints_check_the_id_and_the_state() {
    let (farm, p) = farm(40).await;
    let c = http();
    let pw = p.password.clone().unwrap();
    farm.control(
        &p.id,
        Action::Print {
            file: "a.bgcode".into(),
            duration_s: 100,
            layers: None,
        },
    )
    .await
    .unwrap();
    let put = |path: &str| c.put(url(&p, path)).header("x-api-key", pw.clone()).send();
    assert_eq!(
        put("/api/v1/job/41/pause").await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        put("/api/v1/job/40/pause").await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    status_until(&c, &p, "PAUSED").await;
    assert_eq!(
        put("/api/v1/job/40/pause").await.unwrap().status(),
        StatusCode::CONFLICT
    );
    assert_eq!(
        put("/api/v1/job/40/resume").await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    let del = c
        .delete(url(&p, "/api/v1/job/40"))
        .header("x-api-key", pw.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), StatusCode::NO_CONTENT);
    status_until(&c, &p, "STOPPED").await;
    farm.shutdown().await;
}

#[tokio::test]
async fn the_job_id_survives_a_reboot_and_wraps_at_16_bits() {
    let (farm, p) = farm(65_535).await;
    let c = http();
    farm.control(
        &p.id,
        Action::Print {
            file: "a.bgcode".into(),
            duration_s: 100,
            layers: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(status_until(&c, &p, "PRINTING").await["job"]["id"], 65_535);
    farm.control(&p.id, Action::Finish).await.unwrap();
    status_until(&c, &p, "FINISHED").await;
    farm.control(&p.id, Action::Reboot).await.unwrap();
    assert!(!farm.status(&p.id).unwrap().online);
    // Unreachable while it reboots (the guard only bounds the wait).
    let deadline = tokio::time::Instant::now() + GUARD;
    let mut went_away = false;
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the printer never came back"
        );
        match c.get(url(&p, "/api/version")).send().await {
            // Refused, or a pooled connection closed under the request: both are "gone".
            Err(_) => went_away = true,
            Ok(_) if went_away || farm.status(&p.id).unwrap().online => break,
            Ok(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let idle = status_until(&c, &p, "IDLE").await;
    assert!(
        idle.get("job").is_none(),
        "the end screen is gone after a power cycle"
    );
    farm.control(
        &p.id,
        Action::Print {
            file: "b.bgcode".into(),
            duration_s: 100,
            layers: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(
        status_until(&c, &p, "PRINTING").await["job"]["id"],
        0,
        "65535 wraps to 0"
    );
    farm.shutdown().await;
}

#[tokio::test]
async fn garbage_silence_and_no_extra_headers() {
    let (farm, p) = farm(1).await;
    let c = http();
    let pw = p.password.clone().unwrap();
    let resp = c
        .get(url(&p, "/api/v1/status"))
        .header("x-api-key", pw.clone())
        .send()
        .await
        .unwrap();
    assert!(
        !resp
            .headers()
            .keys()
            .any(|k| k.as_str().starts_with("x-sim")),
        "answers carry what a printer sends: {:?}",
        resp.headers()
    );
    // Send times go to the simulator's own log instead.
    assert_eq!(farm.sent_log(&p.id).unwrap().len(), 1);
    farm.control(&p.id, Action::Garbage).await.unwrap();
    let body = c
        .get(url(&p, "/api/v1/status"))
        .header("x-api-key", pw.clone())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(
        serde_json::from_slice::<Value>(&body).is_err(),
        "malformed once"
    );
    let body = c
        .get(url(&p, "/api/v1/status"))
        .header("x-api-key", pw.clone())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(
        serde_json::from_slice::<Value>(&body).is_ok(),
        "then normal again"
    );

    farm.control(&p.id, Action::Silence { seconds: 2 })
        .await
        .unwrap();
    let quiet = Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let err = quiet
        .get(url(&p, "/api/v1/status"))
        .header("x-api-key", pw.clone())
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "a silent printer does not answer: {err}");
    let resp = c
        .get(url(&p, "/api/v1/status"))
        .header("x-api-key", pw)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "answers once the silence is over"
    );
    farm.shutdown().await;
}

/// Buddy's legacy `POST /api/job` (`lib/WUI/nhttp/job_command.cpp`): `cancel`, or `pause`
/// with an `action`; 204 done, 409 wrong state, 400 unknown command or bad JSON, 411
/// without a length, 413 over 100 bytes, 405 for other methods.
#[tokio::test]
async fn the_legacy_job_command_answers_as_buddy_does() {
    let (farm, p) = farm(7).await;
    let c = http();
    let pw = p.password.clone().unwrap();
    let post = |body: &'static str| {
        c.post(url(&p, "/api/job"))
            .header("x-api-key", pw.clone())
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let code = |r: reqwest::Response| r.status();
    // Nothing printing: pause and cancel conflict.
    assert_eq!(
        code(
            post(r#"{"command":"pause","action":"pause"}"#)
                .await
                .unwrap()
        ),
        StatusCode::CONFLICT
    );
    assert_eq!(
        code(post(r#"{"command":"cancel"}"#).await.unwrap()),
        StatusCode::CONFLICT
    );
    farm.control(
        &p.id,
        Action::Print {
            file: "a.bgcode".into(),
            duration_s: 100,
            layers: None,
        },
    )
    .await
    .unwrap();
    // As the firmware: "resume" is no command, and "pause" needs an action.
    assert_eq!(
        code(post(r#"{"command":"resume"}"#).await.unwrap()),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        code(post(r#"{"command":"pause"}"#).await.unwrap()),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(code(post("{nope").await.unwrap()), StatusCode::BAD_REQUEST);
    let long: &'static str =
        Box::leak(format!(r#"{{"command":"cancel","x":"{}"}}"#, "y".repeat(100)).into_boxed_str());
    assert_eq!(
        code(post(long).await.unwrap()),
        StatusCode::PAYLOAD_TOO_LARGE
    );
    assert_eq!(
        code(
            post(r#"{"command":"pause","action":"pause"}"#)
                .await
                .unwrap()
        ),
        StatusCode::NO_CONTENT
    );
    status_until(&c, &p, "PAUSED").await;
    assert_eq!(
        code(
            post(r#"{"command":"pause","action":"pause"}"#)
                .await
                .unwrap()
        ),
        StatusCode::CONFLICT
    );
    assert_eq!(
        code(
            post(r#"{"command":"pause","action":"resume"}"#)
                .await
                .unwrap()
        ),
        StatusCode::NO_CONTENT
    );
    status_until(&c, &p, "PRINTING").await;
    assert_eq!(
        code(
            post(r#"{"command":"pause","action":"toggle"}"#)
                .await
                .unwrap()
        ),
        StatusCode::NO_CONTENT
    );
    status_until(&c, &p, "PAUSED").await;
    assert_eq!(
        code(post(r#"{"command":"cancel"}"#).await.unwrap()),
        StatusCode::NO_CONTENT
    );
    status_until(&c, &p, "STOPPED").await;
    let put = c
        .put(url(&p, "/api/job"))
        .header("x-api-key", pw.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::METHOD_NOT_ALLOWED);
    farm.shutdown().await;
}
