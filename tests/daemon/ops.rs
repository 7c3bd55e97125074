//! The service side, from the operator's seat: systemd's notify socket (a real Unix
//! datagram socket bound by the test), JSON logs, the retention sweep and the
//! `printfarmd backup` command, all against the real binary.

use std::os::unix::net::UnixDatagram;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{Daemon, TEST_PRINTERS};

/// Longest wait for an expected notification or state. A failure guard only.
const WAIT: Duration = Duration::from_secs(30);

/// A command for the real binary without the test's own `PRINTFARMD_*` variables (as
/// the harness starts daemons).
fn printfarmd_cmd() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_printfarmd"));
    for (k, _) in std::env::vars() {
        if k.starts_with("PRINTFARMD_") || k == "JOB_CREATION_AUTO_CREATE" {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// What arrived on the notify socket, with when.
#[derive(Clone, Default)]
struct Notes(Arc<Mutex<Vec<(Instant, String)>>>);

impl Notes {
    fn listen(sock: UnixDatagram) -> Notes {
        let notes = Notes::default();
        let n = notes.clone();
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 4096];
            loop {
                match sock.recv(&mut buf) {
                    Ok(len) => {
                        let msg = String::from_utf8_lossy(&buf[..len]).into_owned();
                        n.0.lock().unwrap().push((Instant::now(), msg));
                    }
                    Err(e)
                        if e.kind() == std::io::ErrorKind::WouldBlock
                            || e.kind() == std::io::ErrorKind::TimedOut => {}
                    Err(_) => return,
                }
            }
        });
        notes
    }

    fn since(&self, t: Instant) -> Vec<String> {
        let v = self.0.lock().unwrap();
        v.iter()
            .filter(|(at, _)| *at >= t)
            .map(|(_, m)| m.clone())
            .collect()
    }

    fn all(&self) -> Vec<String> {
        self.since(Instant::now() - Duration::from_secs(3600))
    }

    fn wait_for(&self, what: &str, after: Instant, ok: impl Fn(&[String]) -> bool) {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if ok(&self.since(after)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("no {what} within {WAIT:?}; got {:?}", self.since(after));
    }
}

fn pings(msgs: &[String]) -> usize {
    msgs.iter()
        .filter(|m| m.lines().any(|l| l == "WATCHDOG=1"))
        .count()
}

fn write_config(dir: &std::path::Path, extra: &str) -> std::path::PathBuf {
    let config = dir.join("daemon.toml");
    let db = dir.join("printfarmd.db");
    std::fs::write(
        &config,
        format!(
            "[server]\nbind = \"127.0.0.1:0\"\n[database]\npath = {db:?}\n{extra}\n{TEST_PRINTERS}"
        ),
    )
    .unwrap();
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn systemd_notify_ready_status_watchdog_that_stops_while_the_writer_is_wedged() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let config = write_config(dir.path(), "");
    let sock_path = dir.path().join("notify.sock");
    let notes = Notes::listen(UnixDatagram::bind(&sock_path).unwrap());
    let flag = dir.path().join("block-writer");
    let fault = format!("block-writer:{}", flag.display());
    let started = Instant::now();
    // WATCHDOG_USEC = 1 s: keep-alives every 0.5 s, each after a ping the writer must
    // answer within 0.25 s.
    let mut d = tokio::task::spawn_blocking({
        let (dir, config, sock) = (dir.clone(), config.clone(), sock_path.display().to_string());
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

    // READY=1 comes once the API answers, with a STATUS= line.
    notes.wait_for("READY=1", started, |m| {
        m.iter().any(|m| m.lines().any(|l| l == "READY=1"))
    });
    let ready = notes
        .all()
        .into_iter()
        .find(|m| m.contains("READY=1"))
        .unwrap();
    assert!(ready.contains("STATUS="), "{ready}");
    let (code, _) = d.get("/api/v1/health").await;
    assert_eq!(code, 200);

    // Keep-alives flow, each with a status naming printers and open jobs.
    let (code, job) = d
        .send(
            "POST",
            "/api/v1/jobs",
            Some(json!({"printer_id": "prusa_1", "job_name": "a", "filename": "a.gcode", "status": "running"})),
        )
        .await;
    assert_eq!(code, 201, "{job}");
    let t = Instant::now();
    notes.wait_for("three keep-alives", t, |m| pings(m) >= 3);
    notes.wait_for("a status with the open job", t, |m| {
        m.iter()
            .any(|m| m.contains("STATUS=0 of 2 printers connected, 1 jobs open"))
    });

    // Wedge the writer: the keep-alives stop (one already on its way may still land).
    std::fs::write(&flag, b"").unwrap();
    std::thread::sleep(Duration::from_millis(800));
    let wedged = Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    let during = notes.since(wedged);
    assert_eq!(
        pings(&during),
        0,
        "keep-alives while the writer was blocked: {during:?}"
    );
    assert!(
        d.log().contains("the job writer did not answer"),
        "{}",
        d.log()
    );

    // Let it go: they come back.
    std::fs::remove_file(&flag).unwrap();
    let freed = Instant::now();
    notes.wait_for("keep-alives after the writer answers again", freed, |m| {
        pings(m) >= 2
    });

    // SIGTERM: STOPPING=1.
    let stop_at = Instant::now();
    tokio::task::spawn_blocking(move || {
        d.stop();
        d
    })
    .await
    .unwrap();
    notes.wait_for("STOPPING=1", stop_at, |m| {
        m.iter().any(|m| m.lines().any(|l| l == "STOPPING=1"))
    });
}

/// Every stderr line of a daemon with JSON logs, parsed.
fn json_lines(log: &str) -> Vec<Value> {
    log.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_timestamp_level_target_printer_and_job_ids() {
    // The environment variable ...
    let mut d = Daemon::start("");
    let (code, job) = d
        .send(
            "POST",
            "/api/v1/jobs",
            Some(json!({"printer_id": "bambu_1", "job_name": "b", "filename": "b.3mf", "status": "running"})),
        )
        .await;
    assert_eq!(code, 201, "{job}");
    let job_id = job["id"].as_str().unwrap().to_owned();
    d.stop();
    let (dir, config) = (d.dir.clone(), d.config_path.clone());
    drop(d);
    let d = tokio::task::spawn_blocking({
        let (dir, config) = (dir.clone(), config.clone());
        move || Daemon::spawn(dir, config, &[("PRINTFARMD_LOG_FORMAT", "json")])
    })
    .await
    .unwrap();
    // The printer on port 9 refuses connections: its actor logs under its span. The
    // open job is re-adopted by the job writer, which logs its id.
    let deadline = Instant::now() + WAIT;
    loop {
        let lines = json_lines(&d.log());
        let has_printer = lines.iter().any(|l| l["printer_id"] == "bambu_1");
        let has_job = lines.iter().any(|l| l["job_id"] == job_id.as_str());
        if (has_printer && has_job) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let lines = json_lines(&d.log());
    for l in &lines {
        for k in ["timestamp", "level", "target", "message"] {
            assert!(l[k].is_string(), "{k} missing: {l}");
        }
        assert!(l["timestamp"].as_str().unwrap().ends_with('Z'), "{l}");
    }
    assert!(
        lines.iter().any(|l| l["printer_id"] == "bambu_1"),
        "no line with printer_id: {lines:#?}"
    );
    let adopted = lines
        .iter()
        .find(|l| l["job_id"] == job_id.as_str())
        .unwrap_or_else(|| panic!("no line with job_id {job_id}: {lines:#?}"));
    assert_eq!(adopted["printer_id"], "bambu_1");
    assert_eq!(adopted["level"], "INFO");
    drop(d);

    // ... the config file's [log] format, and its environment form.
    let d = Daemon::start("[log]\nformat = \"json\"\n");
    assert!(!json_lines(&d.log()).is_empty());
    drop(d);
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let config = write_config(dir.path(), "");
    let d = tokio::task::spawn_blocking(move || {
        Daemon::spawn(dir, config, &[("PRINTFARMD_LOG__FORMAT", "json")])
    })
    .await
    .unwrap();
    assert!(!json_lines(&d.log()).is_empty());
}

#[test]
fn a_bad_log_format_stops_the_start_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let out = printfarmd_cmd()
        .args(["check-config", "--config"])
        .arg(&config)
        .env("PRINTFARMD_LOG_FORMAT", "xml")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("PRINTFARMD_LOG_FORMAT") && err.contains("json"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_old_finished_jobs_and_never_open_ones() {
    let mut d = Daemon::start("");
    let make = async |printer: &str, status: &str, end: Option<&str>| -> String {
        let (code, job) = d
            .send(
                "POST",
                "/api/v1/jobs",
                Some(json!({"printer_id": printer, "job_name": status, "filename": "f.gcode", "status": status})),
            )
            .await;
        assert_eq!(code, 201, "{job}");
        let id = job["id"].as_str().unwrap().to_owned();
        if let Some(end) = end {
            let (code, j) = d
                .send(
                    "PUT",
                    &format!("/api/v1/jobs/{id}"),
                    Some(json!({"end_time": end})),
                )
                .await;
            assert_eq!(code, 200, "{j}");
        }
        id
    };
    let old = "2020-01-01T00:00:00Z";
    let old_done = make("prusa_1", "completed", Some(old)).await;
    let old_failed = make("prusa_1", "failed", Some(old)).await;
    let recent_done = make("prusa_1", "completed", None).await;
    let running = make("bambu_1", "running", None).await;
    let pending = make("prusa_1", "pending", None).await;
    d.stop();
    let (dir, config) = (d.dir.clone(), d.config_path.clone());
    drop(d);
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("[retention]\nkeep_days = 30\n{text}")).unwrap();
    let d = tokio::task::spawn_blocking(move || Daemon::spawn(dir, config, &[]))
        .await
        .unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, body) = d.get("/api/v1/jobs?limit=100").await;
        let ids: Vec<&str> = body["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["id"].as_str().unwrap())
            .collect();
        let logged = d.log().contains("old finished jobs deleted");
        if logged && !ids.contains(&old_done.as_str()) && !ids.contains(&old_failed.as_str()) {
            for kept in [&recent_done, &running, &pending] {
                assert!(ids.contains(&kept.as_str()), "{kept} was deleted: {body}");
            }
            assert_eq!(ids.len(), 3, "{body}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "old jobs still there: {body}\n{}",
            d.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_backup_need_the_api_key_when_auth_is_on() {
    let d = Daemon::start("[auth]\nenabled = true\napi_keys = [\"k-123456\"]\n");
    let r = d.http.get(d.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    // With the header a browser cannot send cross-site, so the key is what is missing.
    let r = d
        .http
        .post(d.url("/api/v1/backup"))
        .header("x-requested-with", "test")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = d
        .http
        .get(d.url("/metrics"))
        .header("x-api-key", "k-123456")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let text = r.text().await.unwrap();
    assert!(text.contains("printfarmd_printers_configured 2"), "{text}");
    assert!(!text.contains("k-123456"));
}

#[test]
fn under_systemd_text_logs_carry_journal_priorities_and_no_colours() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    // `backup` logs an info line ("configuration loaded"), copies and exits.
    drop(printfarmd::store::open_writer(&dir.path().join("printfarmd.db")).unwrap());
    let out = printfarmd_cmd()
        .arg("backup")
        .arg(dir.path().join("copy.db"))
        .arg("--config")
        .arg(&config)
        .env("JOURNAL_STREAM", "8:12345")
        .env("PRINTFARMD_LOG", "info")
        .env_remove("PRINTFARMD_LOG_FORMAT")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let line = err
        .lines()
        .find(|l| l.contains("configuration loaded"))
        .unwrap_or_else(|| panic!("no log line: {err}"));
    assert!(line.starts_with("<6>"), "{line}");
    assert!(
        !err.contains('\u{1b}'),
        "ANSI escapes under the journal: {err:?}"
    );
}
