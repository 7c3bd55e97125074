//! Settings: the seed's GET/PUT, validation, persistence across restarts and the
//! precedence of design.md §5.

use serde_json::json;

use crate::harness::Daemon;

#[tokio::test]
async fn seed_settings_commands_work_and_persist_across_restart() {
    let d = Daemon::start("");
    let (c, s) = d.get("/api/v1/settings").await;
    assert_eq!(c, 200);
    assert_eq!(
        s,
        json!({"job_creation_auto_create": true, "monitoring_interval": 30})
    );

    // The seed's exact request and response.
    let r = d
        .http
        .put(d.url("/api/v1/settings"))
        .header("Content-Type", "application/json")
        .body(r#"{"job_creation_auto_create": false}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        r.text().await.unwrap(),
        r#"{"status":"success","message":"Settings updated successfully"}"#
    );
    let (_, s) = d.get("/api/v1/settings").await;
    assert_eq!(s["job_creation_auto_create"], false);

    let (c, _) = d
        .send(
            "PUT",
            "/api/v1/settings",
            Some(json!({"monitoring_interval": 5})),
        )
        .await;
    assert_eq!(c, 200);
    let d = d.restart();
    let (_, s) = d.get("/api/v1/settings").await;
    assert_eq!(
        s,
        json!({"job_creation_auto_create": false, "monitoring_interval": 5})
    );
}

#[tokio::test]
async fn invalid_settings_are_refused_and_change_nothing() {
    let d = Daemon::start("");
    for body in [
        json!({"monitoring_interval": 0}),
        json!({"monitoring_interval": 100000}),
        json!({"monitoring_interval": "fast"}),
        json!({"job_creation_auto_create": "yes"}),
        json!({"auto_create": true}),
        json!({}),
    ] {
        let (c, b) = d.send("PUT", "/api/v1/settings", Some(body.clone())).await;
        assert_eq!(c, 422, "{body} -> {b}");
        assert_eq!(b["status"], "error");
    }
    let (_, s) = d.get("/api/v1/settings").await;
    assert_eq!(
        s,
        json!({"job_creation_auto_create": true, "monitoring_interval": 30})
    );
}

#[tokio::test]
async fn file_then_environment_then_saved_values_win() {
    // daemon.toml says false.
    let d = Daemon::start("[job_creation]\nauto_create = false\n[monitoring]\ninterval = 12\n");
    let (_, s) = d.get("/api/v1/settings").await;
    assert_eq!(
        s,
        json!({"job_creation_auto_create": false, "monitoring_interval": 12})
    );
    let (dir, cfg) = (d.dir.clone(), d.config_path.clone());
    drop(d);

    // The seed's bare variable overrides the file; the prefixed one too.
    let d = Daemon::spawn(
        dir.clone(),
        cfg.clone(),
        &[
            ("JOB_CREATION_AUTO_CREATE", "true"),
            ("PRINTFARMD_MONITORING__INTERVAL", "7"),
        ],
    );
    let (_, s) = d.get("/api/v1/settings").await;
    assert_eq!(
        s,
        json!({"job_creation_auto_create": true, "monitoring_interval": 7})
    );

    // A value saved through the API wins over both, after a restart.
    let (c, _) = d
        .send(
            "PUT",
            "/api/v1/settings",
            Some(json!({"job_creation_auto_create": false})),
        )
        .await;
    assert_eq!(c, 200);
    drop(d);
    let d = Daemon::spawn(dir, cfg, &[("JOB_CREATION_AUTO_CREATE", "true")]);
    let (_, s) = d.get("/api/v1/settings").await;
    assert_eq!(s["job_creation_auto_create"], false);
}
