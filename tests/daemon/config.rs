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
            "printers.0.type",
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

/// Both commands refuse `toml`; the message must contain every `want` and no `never`.
fn refused(toml: &str, env: &[(&str, &str)], want: &[&str], never: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("farm.toml");
    std::fs::write(
        &path,
        format!("[server]\nbind = \"127.0.0.1:0\"\n[database]\npath = \"x.db\"\n{toml}"),
    )
    .unwrap();
    for cmd in ["check-config", "run"] {
        let mut c = Command::new(env!("CARGO_BIN_EXE_printfarmd"));
        c.args([cmd, "--config", path.to_str().unwrap()])
            .current_dir(dir.path());
        for (k, _) in std::env::vars() {
            if k.starts_with("PRINTFARMD_") || k == "JOB_CREATION_AUTO_CREATE" {
                c.env_remove(k);
            }
        }
        c.envs(env.iter().copied());
        let out = c.output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success(), "{cmd} accepted {toml:?} {env:?}");
        for w in want {
            assert!(text.contains(w), "{cmd}: no {w:?} in {text}");
        }
        for n in never {
            assert!(!text.contains(n), "{cmd}: {n:?} quoted in {text}");
        }
    }
}

const BAMBU_A: &str = "[[printers]]\nid = \"left\"\ntype = \"bambu\"\nhost = \"10.0.0.5\"\nserial = \"01S00A1\"\naccess_code = \"11223344\"\n";

#[test]
fn one_printer_configured_twice_is_refused_naming_both_ids() {
    // The same serial under another id (and another address).
    let same_serial = BAMBU_A
        .replace("left", "right")
        .replace("10.0.0.5", "10.0.0.6")
        .replace("11223344", "55667788");
    refused(
        &format!("{BAMBU_A}{same_serial}"),
        &[],
        &["left", "right", "serial"],
        &["11223344", "55667788", "01S00A1"],
    );
    // The same host and port under two ids.
    let prusa = |id: &str| {
        format!(
            "[[printers]]\nid = \"{id}\"\ntype = \"prusalink\"\nhost = \"10.0.0.9\"\nport = 8080\nusername = \"maker\"\npassword = \"pw-{id}-9911\"\n"
        )
    };
    refused(
        &format!("{}{}", prusa("mk4_a"), prusa("mk4_b")),
        &[],
        &["mk4_a", "mk4_b", "host and port"],
        &["pw-mk4_a-9911", "pw-mk4_b-9911", "10.0.0.9"],
    );
}

#[test]
fn an_octoprint_printer_without_its_api_key_is_refused() {
    refused(
        "[[printers]]\nid = \"o\"\ntype = \"octoprint\"\nhost = \"h\"\npassword = \"pw-5544\"\n",
        &[],
        &["printer o", "needs `api_key`"],
        &["pw-5544"],
    );
}

#[test]
fn errors_never_quote_the_broken_line_or_a_value() {
    // A TOML syntax error on the line that holds the access code.
    refused(
        &BAMBU_A.replace("\"11223344\"", "\"11223344"),
        &[],
        &["farm.toml:10:", "syntax"],
        &["11223344", "access_code ="],
    );
    // A value of the wrong type.
    refused(
        &BAMBU_A.replace(
            "host = \"10.0.0.5\"",
            "host = \"10.0.0.5\"\nport = \"99887766\"",
        ),
        &[],
        &["farm.toml", "printers.0.port"],
        &["99887766"],
    );
    // Environment values: the variable is named, its value never.
    refused(
        "",
        &[("PRINTFARMD_MONITORING__INTERVAL", "often-77441")],
        &["PRINTFARMD_MONITORING__INTERVAL", "monitoring.interval"],
        &["often-77441"],
    );
    refused(
        "",
        &[("PRINTFARMD_AUTH__API_KEYS", "{k = \"key-33991\"}")],
        &["PRINTFARMD_AUTH__API_KEYS"],
        &["key-33991"],
    );
    // A config-looking variable that is no key.
    refused(
        "",
        &[("PRINTFARMD_SERVER_BIND", "0.0.0.0:1")],
        &["PRINTFARMD_SERVER_BIND", "PRINTFARMD_SERVER__BIND"],
        &["0.0.0.0:1"],
    );
}

#[tokio::test]
async fn variables_that_are_not_configuration_do_not_stop_the_daemon() {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let config = dir.path().join("daemon.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nbind = \"127.0.0.1:0\"\n[database]\npath = {:?}\n",
            dir.path().join("p.db")
        ),
    )
    .unwrap();
    let d = Daemon::spawn(
        dir,
        config,
        &[
            ("PRINTFARMD_SKIP_BROWSER", "1"),
            ("PRINTFARMD_SOME_FUTURE_TEST_SWITCH", "yes"),
            ("PRINTFARMD_MONITORING__INTERVAL", "7"),
        ],
    );
    let (code, settings) = d.get("/api/v1/settings").await;
    assert_eq!(code, 200);
    assert_eq!(
        settings["monitoring_interval"], 7,
        "configuration variables are still read"
    );
}

#[test]
fn the_demo_starts_with_a_test_switch_in_the_environment() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_printfarmd"));
    cmd.args([
        "demo",
        "--bind",
        "127.0.0.1:0",
        "--control",
        "127.0.0.1:0",
        "--bambu",
        "1",
        "--prusa",
        "1",
    ])
    .current_dir(dir.path());
    for (k, _) in std::env::vars() {
        if k.starts_with("PRINTFARMD_") || k == "JOB_CREATION_AUTO_CREATE" {
            cmd.env_remove(k);
        }
    }
    let mut child = cmd
        .env("PRINTFARMD_SKIP_BROWSER", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut seen = String::new();
    let started = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains("Dashboard:") => break true,
            Ok(line) => seen.push_str(&line),
            Err(_) => break false,
        }
    };
    // SIGTERM, so the demo removes its temporary directory; SIGKILL if it does not stop.
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let stop_by = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() && std::time::Instant::now() < stop_by {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    assert!(
        started,
        "the demo did not start: {seen}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
