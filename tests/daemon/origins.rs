//! Browser-origin protection (issue 15) from an attacker's side, with `[auth]` off (the
//! default, where it matters most): a `Host` that is not the daemon's (DNS rebinding)
//! gets 421, writes need JSON or a custom header and no foreign `Origin`, `/ws` refuses
//! foreign origins before the upgrade, CORS is off unless `allowed_origins` names the
//! origin, and a daemon on a non-loopback address without keys says so at every start.

use serde_json::{Value, json};

use crate::access::ws_status;
use crate::harness::{Daemon, TEST_PRINTERS};

/// A daemon with more `[server]` keys (the harness's `extra` comes after `[database]`).
fn start_with_server(server: &str) -> Daemon {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let config = dir.path().join("daemon.toml");
    let db = dir.path().join("printfarmd.db");
    std::fs::write(
        &config,
        format!(
            "[server]\nbind = \"127.0.0.1:0\"\n{server}\n[database]\npath = {db:?}\n{TEST_PRINTERS}"
        ),
    )
    .unwrap();
    Daemon::spawn(dir, config, &[])
}

fn port(d: &Daemon) -> u16 {
    d.base.rsplit(':').next().unwrap().parse().unwrap()
}

async fn with_headers(
    d: &Daemon,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let mut req = d.http.request(method.parse().unwrap(), d.url(path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(b) = body {
        req = req.body(b.to_owned());
    }
    let r = req.send().await.unwrap();
    let (code, h) = (r.status().as_u16(), r.headers().clone());
    (code, r.json().await.unwrap_or(Value::Null), h)
}

#[tokio::test]
async fn only_the_daemons_own_host_names_are_answered() {
    let d = Daemon::start("");
    let p = port(&d);
    let ok = [
        format!("127.0.0.1:{p}"),
        format!("localhost:{p}"),
        format!("LocalHost:{p}"),
        format!("[::1]:{p}"),
    ];
    for host in &ok {
        for path in ["/api/v1/jobs", "/", "/api/v1/health"] {
            let (code, _, _) = with_headers(&d, "GET", path, &[("host", host)], None).await;
            assert_eq!(code, 200, "{host} {path}");
        }
    }
    let rebinding = [
        format!("evil.example:{p}"),
        "evil.example".to_owned(),
        format!("localhost:{}", p.wrapping_add(1)),
        format!("10.1.2.3:{p}"),
    ];
    for host in &rebinding {
        for path in ["/api/v1/jobs", "/", "/api/v1/health", "/api/v1/settings"] {
            let (code, body, _) = with_headers(&d, "GET", path, &[("host", host)], None).await;
            assert_eq!(
                (code, body["code"].as_str()),
                (421, Some("host_not_allowed")),
                "{host} {path}"
            );
        }
        let (code, _, _) = with_headers(
            &d,
            "PUT",
            "/api/v1/settings",
            &[("host", host), ("content-type", "application/json")],
            Some(r#"{"monitoring_interval": 5}"#),
        )
        .await;
        assert_eq!(code, 421);
        assert_eq!(
            ws_status(&d, "", &[("host", host)]).await.0,
            421,
            "{host} /ws"
        );
    }
    let (_, settings, _) = with_headers(&d, "GET", "/api/v1/settings", &[], None).await;
    assert_eq!(
        settings["monitoring_interval"], 30,
        "no refused request changed anything"
    );

    // A name the operator lists is accepted.
    let d = start_with_server("allowed_hosts = [\"farm.example.com\"]");
    let (code, _, _) = with_headers(
        &d,
        "GET",
        "/api/v1/jobs",
        &[("host", "farm.example.com")],
        None,
    )
    .await;
    assert_eq!(code, 200);
}

#[tokio::test]
async fn writes_need_json_or_a_custom_header_and_no_foreign_origin() {
    let d = Daemon::start("");
    let reset = "/api/v1/printers/bambu_1/certificate/reset";
    // What a page on another site can send without a preflight: a form-style POST.
    for headers in [
        vec![],
        vec![("content-type", "text/plain")],
        vec![("content-type", "application/x-www-form-urlencoded")],
    ] {
        let body = (!headers.is_empty()).then_some("x=1");
        let (code, b, _) = with_headers(&d, "POST", reset, &headers, body).await;
        let want = if headers.is_empty() {
            (403, "header_required")
        } else {
            (415, "unsupported_media_type")
        };
        assert_eq!(
            (code, b["code"].as_str().unwrap()),
            want,
            "{headers:?}: {b}"
        );
    }
    for custom in [
        ("x-requested-with", "curl"),
        ("x-printfarmd-client", "script"),
    ] {
        let (code, b, _) = with_headers(&d, "POST", reset, &[custom], None).await;
        assert_eq!(code, 200, "{custom:?}: {b}");
    }
    // The seed's curl example works as written.
    let (code, _, _) = with_headers(
        &d,
        "PUT",
        "/api/v1/settings",
        &[("content-type", "application/json")],
        Some(r#"{"job_creation_auto_create": false}"#),
    )
    .await;
    assert_eq!(code, 200);
    // A text/plain "JSON" body (no preflight in a browser) changes nothing.
    let (code, _, _) = with_headers(
        &d,
        "PUT",
        "/api/v1/settings",
        &[("content-type", "text/plain")],
        Some(r#"{"monitoring_interval": 7}"#),
    )
    .await;
    assert_eq!(code, 415);
    let (_, s, _) = with_headers(&d, "GET", "/api/v1/settings", &[], None).await;
    assert_eq!(s["monitoring_interval"], 30);

    // DELETE without a body needs the header too.
    let (_, job) = d
        .send(
            "POST",
            "/api/v1/jobs",
            Some(json!({"printer_id": "prusa_1", "job_name": "j", "filename": "j.gcode"})),
        )
        .await;
    let path = format!("/api/v1/jobs/{}", job["id"].as_str().unwrap());
    assert_eq!(with_headers(&d, "DELETE", &path, &[], None).await.0, 403);
    assert_eq!(d.get(&path).await.0, 200, "the job is still there");

    // A foreign Origin is refused even with JSON; the daemon's own origin is fine.
    let own = d.base.clone();
    let json_from = |o: &str| {
        vec![("content-type", "application/json"), ("origin", o)]
            .into_iter()
            .map(|(k, v)| (k, v.to_owned()))
            .collect::<Vec<_>>()
    };
    for (origin, want) in [
        ("http://evil.example", 403),
        ("null", 403),
        (own.as_str(), 201),
    ] {
        let h = json_from(origin);
        let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (code, b, _) = with_headers(
            &d,
            "POST",
            "/api/v1/jobs",
            &h,
            Some(r#"{"printer_id": "prusa_1", "job_name": "o", "filename": "o.gcode"}"#),
        )
        .await;
        assert_eq!(code, want, "{origin}: {b}");
        if want == 403 {
            assert_eq!(b["code"], "origin_not_allowed");
        }
    }
    assert_eq!(
        with_headers(&d, "DELETE", &path, &[("x-requested-with", "curl")], None)
            .await
            .0,
        204
    );
}

#[tokio::test]
async fn ws_refuses_foreign_origins_before_the_upgrade() {
    let d = start_with_server("allowed_origins = [\"http://dash.example:8080\"]");
    let own = d.base.clone();
    let localhost = format!("http://localhost:{}", port(&d));
    for (origin, host, want) in [
        (None, None, 101),
        (Some(own.as_str()), None, 101),
        (
            Some(localhost.as_str()),
            Some(localhost.trim_start_matches("http://")),
            101,
        ),
        (Some("http://dash.example:8080"), None, 101),
        (Some("http://evil.example"), None, 403),
        (Some("http://dash.example:8081"), None, 403),
        (Some(localhost.as_str()), None, 403),
        (Some("null"), None, 403),
    ] {
        let mut h = vec![];
        if let Some(o) = origin {
            h.push(("origin", o));
        }
        if let Some(host) = host {
            h.push(("host", host));
        }
        assert_eq!(
            ws_status(&d, "", &h).await.0,
            want,
            "{origin:?} host {host:?}"
        );
    }
}

#[tokio::test]
async fn cors_is_off_by_default_and_exact_when_configured() {
    let d = Daemon::start("");
    let preflight = [
        ("origin", "http://dash.example"),
        ("access-control-request-method", "POST"),
        ("access-control-request-headers", "content-type"),
    ];
    let (code, _, h) = with_headers(&d, "OPTIONS", "/api/v1/jobs", &preflight, None).await;
    assert_eq!(code, 403);
    assert!(h.get("access-control-allow-origin").is_none());
    let (code, _, h) = with_headers(
        &d,
        "GET",
        "/api/v1/jobs",
        &[("origin", "http://dash.example")],
        None,
    )
    .await;
    assert_eq!(
        code, 200,
        "a non-browser may read; a browser page cannot without the header"
    );
    assert!(h.get("access-control-allow-origin").is_none());

    let d = start_with_server("allowed_origins = [\"http://dash.example\"]");
    let (code, _, h) = with_headers(&d, "OPTIONS", "/api/v1/jobs", &preflight, None).await;
    assert_eq!(code, 204);
    assert_eq!(h["access-control-allow-origin"], "http://dash.example");
    assert!(
        h["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );
    assert_eq!(h["access-control-allow-headers"], "content-type");
    assert!(h.get("access-control-max-age").is_some());
    let mut other = preflight;
    other[0].1 = "http://other.example";
    let (code, _, h) = with_headers(&d, "OPTIONS", "/api/v1/jobs", &other, None).await;
    assert_eq!(code, 403);
    assert!(h.get("access-control-allow-origin").is_none());
    let mut bad_header = preflight;
    bad_header[2].1 = "content-type, x-evil";
    assert_eq!(
        with_headers(&d, "OPTIONS", "/api/v1/jobs", &bad_header, None)
            .await
            .0,
        403
    );
    let (code, _, h) = with_headers(
        &d,
        "POST",
        "/api/v1/jobs",
        &[
            ("origin", "http://dash.example"),
            ("content-type", "application/json"),
        ],
        Some(r#"{"printer_id": "prusa_1", "job_name": "c", "filename": "c.gcode"}"#),
    )
    .await;
    assert_eq!(code, 201);
    assert_eq!(h["access-control-allow-origin"], "http://dash.example");
    assert!(h.get_all("vary").iter().any(|v| v == "Origin"));
}

#[tokio::test]
async fn a_daemon_others_can_reach_without_keys_warns_at_start() {
    const WARNING: &str = "non-loopback address with [auth] off";
    let d = Daemon::start("");
    assert!(!d.log().contains(WARNING));
    let dir = d.dir.clone();
    let cfg = d.config_path.clone();
    drop(d);
    let d = Daemon::spawn(dir, cfg, &[("PRINTFARMD_SERVER__BIND", "0.0.0.0:0")]);
    assert!(d.log().contains(WARNING), "{}", d.log());
    // Reached by an address of the machine, it answers.
    assert_eq!(d.get("/api/v1/health").await.0, 200);
}
