//! Access control from the caller's side (issue 15), against the real binary: every
//! endpoint × {no key, wrong key, expired key, revoked key, viewer, operator, admin}
//! (keys made and revoked by `printfarmd key` while the daemon runs), `/ws` upgrades
//! with each, and health for anonymous callers. Key management and the throttle:
//! keys.rs.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::Daemon;

/// Runs `printfarmd <args>` against the daemon's config; (success, stdout, stderr).
pub fn key_cli(d: &Daemon, args: &[&str]) -> (bool, String, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_printfarmd"));
    cmd.args(args)
        .arg("--config")
        .arg(&d.config_path)
        .current_dir(d.dir.path());
    for (k, _) in std::env::vars() {
        if k.starts_with("PRINTFARMD_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `printfarmd key add`, returning the key it printed.
pub fn add_key(d: &Daemon, role: &str, name: &str, expires: Option<&str>) -> String {
    let mut args = vec!["key", "add", "--role", role, "--name", name];
    if let Some(e) = expires {
        args.extend(["--expires", e]);
    }
    let (ok, out, err) = key_cli(d, &args);
    assert!(ok, "key add failed: {err}");
    let key = out.trim().to_owned();
    assert!(key.starts_with("pfd_"), "{out}");
    key
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Cred {
    None,
    Wrong,
    Expired,
    Revoked,
    Viewer,
    Operator,
    Admin,
}

const ALL: [Cred; 7] = [
    Cred::None,
    Cred::Wrong,
    Cred::Expired,
    Cred::Revoked,
    Cred::Viewer,
    Cred::Operator,
    Cred::Admin,
];

fn rank(c: Cred) -> u8 {
    match c {
        Cred::Viewer => 1,
        Cred::Operator => 2,
        Cred::Admin => 3,
        _ => 0,
    }
}

struct Keys {
    wrong: String,
    expired: String,
    revoked: String,
    viewer: String,
    operator: String,
    admin: String,
}

impl Keys {
    fn get(&self, c: Cred) -> Option<&str> {
        Some(match c {
            Cred::None => return None,
            Cred::Wrong => &self.wrong,
            Cred::Expired => &self.expired,
            Cred::Revoked => &self.revoked,
            Cred::Viewer => &self.viewer,
            Cred::Operator => &self.operator,
            Cred::Admin => &self.admin,
        })
    }
}

pub async fn call(
    d: &Daemon,
    key: Option<&str>,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = d.http.request(method.parse().unwrap(), d.url(path));
    if let Some(k) = key {
        req = req.header("X-Api-Key", k);
    }
    req = match body {
        Some(b) => req.json(&b),
        None => req.header("X-Requested-With", "printfarmd-tests"),
    };
    let r = req.send().await.unwrap();
    let code = r.status().as_u16();
    (code, r.json().await.unwrap_or(Value::Null))
}

/// A daemon with `[auth]` on, a throttle high enough for the matrix, and keys of every
/// kind made with the `key` command while it runs.
async fn keyed_daemon() -> (Daemon, Keys) {
    let d = Daemon::start("[auth]\nenabled = true\nfailed_keys_per_minute = 10000\n");
    let soon = (chrono::Utc::now() + chrono::TimeDelta::seconds(2)).to_rfc3339();
    let expired = add_key(&d, "admin", "short-lived", Some(&soon));
    let revoked = add_key(&d, "admin", "revoked", None);
    let id = revoked.split('_').nth(1).unwrap().to_owned();
    let (ok, _, err) = key_cli(&d, &["key", "revoke", &id]);
    assert!(ok, "{err}");
    let keys = Keys {
        // The shape of a made key, with an id no key has.
        wrong: format!("pfd_{}_{}", "0".repeat(16), "0".repeat(64)),
        expired,
        revoked,
        viewer: add_key(&d, "viewer", "wallboard", None),
        operator: add_key(&d, "operator", "floor", None),
        admin: add_key(&d, "admin", "me", None),
    };
    tokio::time::sleep(Duration::from_millis(2100)).await;
    (d, keys)
}

/// What one endpoint is and needs: `min` 0 = anyone, 1 viewer, 2 operator, 3 admin.
struct Endpoint {
    method: &'static str,
    path: String,
    body: Option<Value>,
    min: u8,
    /// The status when allowed; None where another helper's route may not exist yet
    /// (printer pause/resume/cancel), where only "not refused" is asserted.
    ok: Option<u16>,
}

fn ep(method: &'static str, path: &str, body: Option<Value>, min: u8, ok: Option<u16>) -> Endpoint {
    Endpoint {
        method,
        path: path.to_owned(),
        body,
        min,
        ok,
    }
}

/// The endpoints, with fresh resources (made with the admin key) for each call that
/// changes or removes one.
async fn endpoints(d: &Daemon, admin: &str, n: usize) -> Vec<Endpoint> {
    let new_job = || json!({"printer_id": "prusa_1", "job_name": "m", "filename": "m.gcode"});
    let (_, job) = call(d, Some(admin), "POST", "/api/v1/jobs", Some(new_job())).await;
    let job = job["id"].as_str().unwrap().to_owned();
    let (_, gone) = call(d, Some(admin), "POST", "/api/v1/jobs", Some(new_job())).await;
    let gone = gone["id"].as_str().unwrap().to_owned();
    // A port of its own per id: the same host and port under two ids is one printer
    // configured twice, refused with 409.
    let port = |id: &str| {
        1024 + id.bytes().fold(2166136261u32, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(16777619)
        }) % 60000
    };
    let printer = |id: &str| json!({"id": id, "type": "prusalink", "host": "127.0.0.1", "port": port(id), "api_key": "pk-123456"});
    let api_printer = format!("api_{n}");
    let (c, _) = call(
        d,
        Some(admin),
        "POST",
        "/api/v1/printers",
        Some(printer(&api_printer)),
    )
    .await;
    assert_eq!(c, 201);
    let doomed = format!("doomed_{n}");
    call(
        d,
        Some(admin),
        "POST",
        "/api/v1/printers",
        Some(printer(&doomed)),
    )
    .await;
    let (c, key) = call(
        d,
        Some(admin),
        "POST",
        "/api/v1/keys",
        Some(json!({"name": "tmp", "role": "viewer"})),
    )
    .await;
    assert_eq!(c, 201);
    let key_id = key["id"].as_str().unwrap().to_owned();
    vec![
        ep("GET", "/api/v1/health", None, 0, Some(200)),
        ep("GET", "/api/v1/auth", None, 1, Some(200)),
        ep("GET", "/api/v1/jobs", None, 1, Some(200)),
        ep("GET", &format!("/api/v1/jobs/{job}"), None, 1, Some(200)),
        ep("POST", "/api/v1/jobs", Some(new_job()), 2, Some(201)),
        ep(
            "PUT",
            &format!("/api/v1/jobs/{job}"),
            Some(json!({"notes": "n"})),
            2,
            Some(200),
        ),
        ep(
            "DELETE",
            &format!("/api/v1/jobs/{gone}"),
            None,
            2,
            Some(204),
        ),
        ep("GET", "/api/v1/printers", None, 1, Some(200)),
        ep("GET", "/api/v1/printers/prusa_1", None, 1, Some(200)),
        ep(
            "POST",
            "/api/v1/printers",
            Some(printer(&format!("new_{n}"))),
            3,
            Some(201),
        ),
        ep(
            "PUT",
            &format!("/api/v1/printers/{api_printer}"),
            Some(printer(&api_printer)),
            3,
            Some(200),
        ),
        ep(
            "DELETE",
            &format!("/api/v1/printers/{doomed}"),
            None,
            3,
            Some(204),
        ),
        ep(
            "POST",
            "/api/v1/printers/bambu_1/certificate/reset",
            None,
            3,
            Some(200),
        ),
        ep("POST", "/api/v1/printers/bambu_1/pause", None, 2, None),
        ep("POST", "/api/v1/printers/bambu_1/resume", None, 2, None),
        ep("POST", "/api/v1/printers/bambu_1/cancel", None, 2, None),
        ep("GET", "/api/v1/settings", None, 1, Some(200)),
        ep(
            "PUT",
            "/api/v1/settings",
            Some(json!({"monitoring_interval": 40})),
            3,
            Some(200),
        ),
        ep("GET", "/api/v1/keys", None, 3, Some(200)),
        ep(
            "POST",
            "/api/v1/keys",
            Some(json!({"name": "new", "role": "viewer"})),
            3,
            Some(201),
        ),
        ep(
            "DELETE",
            &format!("/api/v1/keys/{key_id}"),
            None,
            3,
            Some(204),
        ),
    ]
}

#[tokio::test]
async fn every_endpoint_for_every_kind_of_key() {
    let (d, keys) = keyed_daemon().await;
    let mut jobs_made = 0;
    for (n, cred) in ALL.into_iter().enumerate() {
        for e in endpoints(&d, &keys.admin, n).await {
            let what = format!("{cred:?} {} {}", e.method, e.path);
            let (code, body) = call(&d, keys.get(cred), e.method, &e.path, e.body.clone()).await;
            let invalid = matches!(cred, Cred::Wrong | Cred::Expired | Cred::Revoked);
            if invalid {
                assert_eq!(
                    (code, body["code"].as_str()),
                    (401, Some("invalid_key")),
                    "{what}: {body}"
                );
                let want = match cred {
                    Cred::Expired => "expired",
                    Cred::Revoked => "revoked",
                    _ => "not valid",
                };
                assert!(
                    body["message"].as_str().unwrap().contains(want),
                    "{what}: {body}"
                );
            } else if cred == Cred::None && e.min > 0 {
                assert_eq!(
                    (code, body["code"].as_str()),
                    (401, Some("unauthorized")),
                    "{what}: {body}"
                );
            } else if rank(cred) < e.min {
                assert_eq!(
                    (code, body["code"].as_str()),
                    (403, Some("forbidden")),
                    "{what}: {body}"
                );
                let role = ["", "viewer", "operator", "admin"][e.min as usize];
                assert!(
                    body["message"]
                        .as_str()
                        .unwrap()
                        .contains(&format!("needs the {role} role")),
                    "{what}: {body}"
                );
            } else {
                match e.ok {
                    Some(ok) => assert_eq!(code, ok, "{what}: {body}"),
                    None => assert!(![401, 403, 429].contains(&code), "{what}: {code} {body}"),
                }
                if e.method == "POST" && e.path == "/api/v1/jobs" {
                    jobs_made += 1;
                }
            }
            if e.path == "/api/v1/health" {
                let fields: Vec<_> = body.as_object().unwrap().keys().cloned().collect();
                if cred == Cred::None {
                    assert_eq!(fields, ["status", "version"], "anonymous health: {body}");
                } else if !invalid {
                    assert!(fields.len() > 2 && body["database"].is_object(), "{body}");
                }
            }
        }
    }
    // Refused writes changed nothing: of the manual jobs POSTed in the matrix only the
    // operator's and the admin's exist (plus two made per round for the edits).
    assert_eq!(jobs_made, 2);
    let (_, list) = call(&d, Some(&keys.viewer), "GET", "/api/v1/jobs?limit=1", None).await;
    // Two jobs per round; the operator's and the admin's rounds deleted one each.
    assert_eq!(list["total_count"], json!(ALL.len() * 2 - 2 + jobs_made));
    let log = d.log();
    for k in [
        &keys.viewer,
        &keys.operator,
        &keys.admin,
        &keys.expired,
        &keys.revoked,
        &keys.wrong,
    ] {
        assert!(!log.contains(k.as_str()), "a key is in the log");
    }
}

/// Opens `/ws` with `headers` (and `query`); the HTTP status of a refusal, or 101.
pub async fn ws_status(d: &Daemon, query: &str, headers: &[(&str, &str)]) -> (u16, Option<String>) {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = format!("{}{query}", d.ws_url())
        .into_client_request()
        .unwrap();
    for (k, v) in headers {
        req.headers_mut().insert(
            tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok((_, resp)) => (
            resp.status().as_u16(),
            resp.headers()
                .get("sec-websocket-protocol")
                .map(|v| v.to_str().unwrap().to_owned()),
        ),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => (resp.status().as_u16(), None),
        Err(e) => panic!("ws connect: {e}"),
    }
}

#[tokio::test]
async fn ws_upgrades_for_every_kind_of_key() {
    let (d, keys) = keyed_daemon().await;
    for cred in ALL {
        let want = if rank(cred) >= 1 { 101 } else { 401 };
        let key = keys.get(cred);
        let header = key.map(|k| vec![("x-api-key", k)]).unwrap_or_default();
        assert_eq!(
            ws_status(&d, "", &header).await.0,
            want,
            "{cred:?} in X-Api-Key"
        );
        if let Some(k) = key {
            // The browser way: the key as a subprotocol beside printfarmd.v1, which the
            // daemon names back (never the key).
            let protocols = format!("printfarmd.v1, printfarmd.key.{k}");
            let (code, named) = ws_status(&d, "", &[("sec-websocket-protocol", &protocols)]).await;
            assert_eq!(code, want, "{cred:?} as a subprotocol");
            if code == 101 {
                assert_eq!(named.as_deref(), Some("printfarmd.v1"));
            }
            let (code, _) = ws_status(&d, &format!("?api_key={k}"), &[]).await;
            assert_eq!(code, want, "{cred:?} in the URL");
        }
    }
}
