//! The daemon fails loudly, never silently (issue 14): a dead job writer makes `/health`
//! answer 503 with the reason and the process exit non-zero; a write answered 503 is
//! never committed later; a second daemon on one database is refused; `pin reset`
//! neither creates a database nor writes beside a running daemon. The real binary, a
//! real SQLite file, faults injected through the debug-build-only `PFTEST_FAULT`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{Daemon, TEST_PRINTERS, spawn_binary};

/// How long a process may take to exit on its own in these tests (a debug build on a
/// loaded 2-core machine; the daemon's own grace period is 3 s, its drain at most 10 s).
const EXIT_WAIT: Duration = Duration::from_secs(30);

/// A config with the test printers and the database `printfarmd.db` in `dir`.
pub fn config_in(dir: &Path) -> PathBuf {
    let config = dir.join("daemon.toml");
    let db = dir.join("printfarmd.db");
    std::fs::write(
        &config,
        format!("[server]\nbind = \"127.0.0.1:0\"\n[database]\npath = {db:?}\n{TEST_PRINTERS}"),
    )
    .unwrap();
    config
}

/// Waits for `child` to exit by itself.
pub fn wait_exit(child: &mut Child, within: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// Runs `printfarmd <args>` to its end (killed after `EXIT_WAIT`), without the test's
/// own `PRINTFARMD_*` variables.
pub fn run_to_end(dir: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_printfarmd"));
    cmd.args(args).current_dir(dir);
    for (k, _) in std::env::vars() {
        if k.starts_with("PRINTFARMD_") {
            cmd.env_remove(k);
        }
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if wait_exit(&mut child, EXIT_WAIT).is_none() {
        panic!("printfarmd {args:?} was still running after {EXIT_WAIT:?}");
    }
    child.wait_with_output().unwrap()
}

/// Fault injection exists only in debug builds (`PFTEST_FAULT`); a release test run
/// skips the tests that need it, saying so.
fn faults_injectable() -> bool {
    if !cfg!(debug_assertions) {
        eprintln!("skipped: fault injection (PFTEST_FAULT) exists only in debug builds");
    }
    cfg!(debug_assertions)
}

async fn get(http: &reqwest::Client, url: String) -> Option<(u16, Value)> {
    let r = http.get(url).send().await.ok()?;
    let code = r.status().as_u16();
    Some((code, r.json().await.unwrap_or(Value::Null)))
}

#[tokio::test]
async fn a_writer_panic_makes_health_unavailable_and_the_process_exit_non_zero() {
    if !faults_injectable() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = config_in(dir.path());
    let log = Arc::new(Mutex::new(String::new()));
    let (mut child, addr) = spawn_binary(
        dir.path(),
        &config,
        &[("PFTEST_FAULT", "writer-panic")],
        log.clone(),
    );
    let http = reqwest::Client::new();
    let health = format!("http://{addr}/api/v1/health");
    let (code, h) = get(&http, health.clone()).await.unwrap();
    assert_eq!((code, h["status"].as_str()), (200, Some("ok")), "{h}");

    // The writer dies handling this request: the client hears 503, nothing was written.
    let r = http
        .post(format!("http://{addr}/api/v1/jobs"))
        .json(&json!({"printer_id": "prusa_1", "job_name": "cube", "filename": "cube.3mf"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 503);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("nothing was written"),
        "{body}"
    );

    // Within the watchdog's tick /health says so, with the reason, until the exit.
    let deadline = Instant::now() + Duration::from_secs(3);
    let seen = loop {
        let h = get(&http, health.clone()).await;
        if let Some((503, h)) = &h {
            break h.clone();
        }
        assert!(
            Instant::now() < deadline,
            "health never turned unavailable: {h:?}\n{}",
            log.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(seen["status"], "unavailable", "{seen}");
    let reason = seen["reason"].as_str().unwrap();
    assert!(
        reason.contains("job writer stopped unexpectedly") && reason.contains("injected fault"),
        "{reason}"
    );

    let status = wait_exit(&mut child, EXIT_WAIT).expect("the daemon did not exit by itself");
    assert!(!status.success(), "exit status {status}");
    let log = log.lock().unwrap().clone();
    assert_eq!(
        log.matches("fatal: stopping").count(),
        1,
        "logged once at error:\n{log}"
    );
}

#[tokio::test]
async fn a_write_that_outlasts_the_first_wait_is_answered_with_its_outcome_not_503() {
    if !faults_injectable() {
        return;
    }
    // Every write the writer starts takes 12 s (the handler's first wait is 10 s).
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let config = config_in(dir.path());
    let d = Daemon::spawn(dir, config, &[("PFTEST_FAULT", "writer-slow")]);
    let slow = d.send(
        "POST",
        "/api/v1/jobs",
        Some(json!({"printer_id": "prusa_1", "job_name": "slow", "filename": "slow.3mf"})),
    );
    // Queued behind it: not started within 10 s, so given up and never written.
    let queued = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        d.send(
            "POST",
            "/api/v1/jobs",
            Some(json!({"printer_id": "bambu_1", "job_name": "queued", "filename": "q.3mf"})),
        )
        .await
    };
    let ((slow_code, slow_job), (queued_code, queued_body)) = tokio::join!(slow, queued);
    assert_eq!(slow_code, 201, "{slow_job}");
    assert_eq!(queued_code, 503, "{queued_body}");
    // Let the writer reach the abandoned request (it skips it), then look.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (code, list) = d.get("/api/v1/jobs").await;
    assert_eq!(code, 200);
    let names: Vec<&str> = list["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["job_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["slow"], "{list}");
}

#[tokio::test]
async fn a_second_daemon_on_the_same_database_is_refused_naming_it() {
    let d = Daemon::start("");
    let out = run_to_end(
        d.dir.path(),
        &["run", "--config", d.config_path.to_str().unwrap()],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let db = d.dir.path().join("printfarmd.db");
    assert!(
        err.contains(&format!("the database {} is in use", db.display()))
            && err.contains("stop that daemon first"),
        "{err}"
    );
    // The first one is untouched.
    let (code, h) = d.get("/api/v1/health").await;
    assert_eq!((code, h["status"].as_str()), (200, Some("ok")), "{h}");
}

#[tokio::test]
async fn pin_reset_respects_a_running_daemon() {
    let d = Daemon::start("");
    let out = run_to_end(
        d.dir.path(),
        &[
            "pin",
            "reset",
            "bambu_1",
            "--config",
            d.config_path.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("in use") && err.contains("stop the daemon or use the API"),
        "{err}"
    );
}

#[test]
fn pin_reset_without_a_database_refuses_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_in(dir.path());
    let out = run_to_end(
        dir.path(),
        &[
            "pin",
            "reset",
            "bambu_1",
            "--config",
            config.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let db = dir.path().join("printfarmd.db");
    assert!(
        err.contains(&format!("no database at {}", db.display())),
        "{err}"
    );
    assert!(!db.exists(), "pin reset created {}", db.display());
    // With a database (the daemon ran once) it works.
    let mut d = Daemon::spawn(Arc::new(tempfile::tempdir().unwrap()), config.clone(), &[]);
    d.stop();
    let out = run_to_end(
        dir.path(),
        &[
            "pin",
            "reset",
            "bambu_1",
            "--config",
            config.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn a_closed_log_pipe_does_not_stop_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_in(dir.path());
    let mut child = Command::new(env!("CARGO_BIN_EXE_printfarmd"))
        .args(["run", "--config", config.to_str().unwrap()])
        .current_dir(dir.path())
        .env("PRINTFARMD_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut addr = None;
    {
        use std::io::{BufRead, BufReader};
        // Read up to the listening line, then close our end (the reader went away).
        let stderr = child.stderr.take().unwrap();
        for l in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(i) = l.find("listening on http://") {
                addr = Some(l[i + "listening on http://".len()..].trim().to_owned());
                break;
            }
        }
    }
    let addr = addr.expect("the daemon started");
    let http = reqwest::Client::new();
    // Each of these logs a line into the closed pipe.
    for name in ["one", "two"] {
        let r = http
            .post(format!("http://{addr}/api/v1/jobs"))
            .json(&json!({"printer_id": "prusa_1", "job_name": name, "filename": "c.3mf"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 201);
    }
    let (code, h) = get(&http, format!("http://{addr}/api/v1/health"))
        .await
        .unwrap();
    assert_eq!((code, h["status"].as_str()), (200, Some("ok")), "{h}");
    assert!(child.try_wait().unwrap().is_none(), "the daemon exited");
    let _ = child.kill();
    let _ = child.wait();
}
