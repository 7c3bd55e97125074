//! API keys from the caller's side (issue 15): made, listed and revoked through the API
//! and `printfarmd key` while the daemon runs, never stored or logged in the clear, and
//! wrong keys throttled per address with one log line a minute.

use std::time::Duration;

use serde_json::{Value, json};

use crate::access::{add_key, call, key_cli};
use crate::harness::Daemon;

#[tokio::test]
async fn wrong_keys_are_throttled_per_address_and_logged_once() {
    let d = Daemon::start("[auth]\nenabled = true\napi_keys = [\"admin-key-0123456789\"]\n");
    for i in 0..10 {
        let (code, body) = call(&d, Some(&format!("guess-{i}")), "GET", "/api/v1/jobs", None).await;
        assert_eq!(
            (code, body["code"].as_str()),
            (401, Some("invalid_key")),
            "try {i}"
        );
    }
    let r = d
        .http
        .get(d.url("/api/v1/jobs"))
        .header("X-Api-Key", "admin-key-0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        429,
        "even the right key waits out the minute"
    );
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "too_many_failed_keys");
    // No key at all is not a guess: still 401, and health still answers.
    assert_eq!(call(&d, None, "GET", "/api/v1/jobs", None).await.0, 401);
    assert_eq!(call(&d, None, "GET", "/api/v1/health", None).await.0, 200);
    let log = d.log();
    assert_eq!(log.matches("refused an API key").count(), 1, "{log}");
    assert!(log.contains("unknown key"), "{log}");
    assert!(
        !log.contains("guess-") && !log.contains("admin-key-0123456789"),
        "{log}"
    );
}

#[tokio::test]
async fn keys_through_the_api_and_the_command_line() {
    let d = Daemon::start(
        "[auth]\nenabled = true\napi_keys = [{ key = \"cfg-admin-0123456789\", role = \"admin\" }]\n",
    );
    let admin = "cfg-admin-0123456789";
    // Made through the API: shown once, then listed without it.
    let (code, made) = call(
        &d,
        Some(admin),
        "POST",
        "/api/v1/keys",
        Some(json!({"name": "ci", "role": "operator", "expires_at": "2999-01-01T00:00:00Z"})),
    )
    .await;
    assert_eq!(code, 422, "ten years at most: {made}");
    let (code, made) = call(
        &d,
        Some(admin),
        "POST",
        "/api/v1/keys",
        Some(json!({"name": "ci", "role": "operator"})),
    )
    .await;
    assert_eq!(code, 201, "{made}");
    let key = made["key"].as_str().unwrap().to_owned();
    assert_eq!(made["role"], "operator");
    let (_, me) = call(&d, Some(&key), "GET", "/api/v1/auth", None).await;
    assert_eq!(
        me,
        json!({"auth_enabled": true, "role": "operator", "key_id": made["id"], "key_name": "ci"})
    );
    // The use above is recorded (written beside the answer, so it may lag a moment).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let list = loop {
        let (_, list) = call(&d, Some(admin), "GET", "/api/v1/keys", None).await;
        if list["keys"][0]["last_used_at"].is_string() || std::time::Instant::now() > deadline {
            break list;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(list["total_count"], 1);
    let listed = &list["keys"][0];
    assert_eq!(
        (listed["id"].clone(), listed["status"].clone()),
        (made["id"].clone(), json!("active"))
    );
    assert!(
        listed["last_used_at"].is_string(),
        "last use recorded: {listed}"
    );
    assert!(!list.to_string().contains(&key) && listed.get("key").is_none());

    // The command line on the running daemon's database: list, revoke, add.
    let (ok, out, _) = key_cli(&d, &["key", "list"]);
    assert!(
        ok && out.contains("operator") && out.contains("ci") && !out.contains(&key),
        "{out}"
    );
    let id = made["id"].as_str().unwrap();
    let (ok, out, _) = key_cli(&d, &["key", "revoke", id]);
    assert!(ok, "{out}");
    let (code, body) = call(&d, Some(&key), "GET", "/api/v1/jobs", None).await;
    assert_eq!((code, body["code"].as_str()), (401, Some("invalid_key")));
    let (ok, _, err) = key_cli(&d, &["key", "revoke", "nosuchkey"]);
    assert!(!ok && err.contains("no key"), "{err}");
    let (ok, _, err) = key_cli(&d, &["key", "add", "--role", "root", "--name", "x"]);
    assert!(!ok && err.contains("viewer, operator or admin"), "{err}");
    let viewer = add_key(&d, "viewer", "wallboard", Some("30d"));
    assert_eq!(
        call(&d, Some(&viewer), "GET", "/api/v1/jobs", None).await.0,
        200
    );
    let (code, _) = call(
        &d,
        Some(&viewer),
        "DELETE",
        &format!("/api/v1/keys/{id}"),
        None,
    )
    .await;
    assert_eq!(code, 403);

    // Neither the database nor the log holds a key.
    let mut stored = Vec::new();
    for f in ["printfarmd.db", "printfarmd.db-wal"] {
        stored.extend(std::fs::read(d.dir.path().join(f)).unwrap_or_default());
    }
    assert!(!stored.is_empty());
    for k in [key.as_str(), viewer.as_str(), admin] {
        assert!(
            !stored.windows(k.len()).any(|w| w == k.as_bytes()),
            "a key is stored in the database"
        );
        assert!(!d.log().contains(k), "a key is in the log");
    }
}
