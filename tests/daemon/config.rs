//! Configuration as an operator meets it: check-config, clear errors that name the key
//! and the file, the shipped example, secrets kept out of the log.

use std::process::Command;

use crate::harness::Daemon;

fn printfarmd(args: &[&str], dir: &std::path::Path) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_printfarmd"));
    cmd.args(args).current_dir(dir);
    for (k, _) in std::env::vars() {
        if k.starts_with("PRINTFARMD_") || k == "JOB_CREATION_AUTO_CREATE" {
            cmd.env_remove(k);
        }
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn the_shipped_example_config_is_valid() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let (ok, out) = printfarmd(&["check-config", "--config", "daemon.toml"], root);
    assert!(ok, "{out}");
    assert!(out.contains("configuration is valid"), "{out}");
}

#[test]
fn an_unknown_key_or_bad_value_names_the_key_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("[server]\nbnid = \"127.0.0.1:8000\"\n", "bnid"),
        ("[monitoring]\ninterval = \"often\"\n", "interval"),
        ("[monitoring]\ninterval = 0\n", "monitoring.interval"),
        ("[server]\nbind = \"localhost\"\n", "server.bind"),
        (
            "[[printers]]\nid = \"b\"\ntype = \"bambu\"\nhost = \"h\"\n",
            "serial",
        ),
        (
            "[[printers]]\nid = \"b\"\ntype = \"klipper\"\nhost = \"h\"\n",
            "klipper",
        ),
        // An empty or whitespace key would be a key anyone can guess.
        (
            "[auth]\nenabled = true\napi_keys = [\"k-1\", \"  \"]\n",
            "api_keys entry 2",
        ),
        (
            "[auth]\napi_keys = [{ key = \"\", role = \"viewer\" }]\n",
            "api_keys entry 1",
        ),
        (
            "[server]\nallowed_origins = [\"evil.example\"]\n",
            "allowed_origins",
        ),
        (
            "[server]\nallowed_hosts = [\"http://x\"]\n",
            "allowed_hosts",
        ),
    ];
    for (toml, key) in cases {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, toml).unwrap();
        for cmd in ["check-config", "run"] {
            let (ok, out) = printfarmd(&[cmd, "--config", path.to_str().unwrap()], dir.path());
            assert!(!ok, "{cmd} accepted {toml:?}");
            assert!(
                out.contains(key),
                "{cmd} {toml:?}: message does not name {key}: {out}"
            );
            if !matches!(
                key,
                "monitoring.interval"
                    | "server.bind"
                    | "serial"
                    | "api_keys entry 1"
                    | "api_keys entry 2"
                    | "allowed_origins"
                    | "allowed_hosts"
            ) {
                assert!(
                    out.contains("bad.toml"),
                    "{cmd} {toml:?}: message does not name the file: {out}"
                );
            }
        }
    }
    let (ok, out) = printfarmd(
        &["check-config", "--config", "/nonexistent/daemon.toml"],
        dir.path(),
    );
    assert!(!ok && out.contains("/nonexistent/daemon.toml"), "{out}");
}

#[tokio::test]
async fn a_port_in_use_is_a_clear_error() {
    let d = Daemon::start("");
    let addr = d.base.trim_start_matches("http://").to_owned();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        format!("[server]\nbind = \"{addr}\"\n[database]\npath = \"x.db\"\n"),
    )
    .unwrap();
    let (ok, out) = printfarmd(&["run", "--config", path.to_str().unwrap()], dir.path());
    assert!(!ok);
    assert!(
        out.contains("cannot listen on") && out.contains(&addr),
        "{out}"
    );
}

#[tokio::test]
async fn secrets_stay_out_of_logs_and_responses() {
    let d = Daemon::start("");
    let (_, health) = d.get("/api/v1/health").await;
    d.send(
        "PUT",
        "/api/v1/settings",
        Some(serde_json::json!({"monitoring_interval": 3})),
    )
    .await;
    let log = d.log();
    for secret in ["secret-pw-123", "87654321"] {
        assert!(!log.contains(secret), "secret in log:\n{log}");
        assert!(!health.to_string().contains(secret));
    }
}

#[tokio::test]
async fn api_keys_guard_the_api_and_the_stream() {
    let d = Daemon::start("[auth]\nenabled = true\napi_keys = [\"k-123456\"]\n");
    let (c, b) = d.get("/api/v1/jobs").await;
    assert_eq!((c, b["code"].as_str()), (401, Some("unauthorized")));
    let r = d
        .http
        .get(d.url("/api/v1/jobs"))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = d
        .http
        .get(d.url("/api/v1/jobs"))
        .bearer_auth("k-123456")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = d
        .http
        .get(d.url("/api/v1/settings"))
        .header("X-Api-Key", "k-123456")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(tokio_tungstenite::connect_async(d.ws_url()).await.is_err());
    assert!(
        tokio_tungstenite::connect_async(format!("{}?api_key=k-123456", d.ws_url()))
            .await
            .is_ok()
    );
}
