//! The operator's view of a farm that prints: an online backup taken under load (the
//! CLI beside the running daemon and `POST /api/v1/backup`) restores to a whole
//! database holding every job acknowledged before it began; `/metrics` scraped while
//! the farm prints passes `promtool check metrics` and a real Prometheus scrape.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use printfarmd_sim::Style;
use serde_json::{Value, json};

use crate::harness::Daemon;
use crate::rig::{Rig, WAIT, eventually, print, x1};

/// Jobs every backup must hold: at least this many acknowledged before it began.
const ACKED_BEFORE: usize = 20;

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

fn integrity_and_ids(db: &std::path::Path) -> (String, std::collections::HashSet<String>) {
    let c = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap();
    let ok: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    let mut st = c.prepare("SELECT id FROM jobs").unwrap();
    let ids = st
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    (ok, ids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_under_load_restores_every_acknowledged_job() {
    let r = Rig::start(x1(2).bambu(1, Style::P1).prusalink(1)).await;
    for p in r.sim.printers() {
        r.act(&p.id, print("load_test.3mf", 60)).await;
    }
    r.wait_jobs("status=running", "a job per printing printer", |j| {
        j.len() == 4
    })
    .await;

    // Writers: manual jobs created one after another, each id kept once acknowledged.
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (acked, stop) = (acked.clone(), stop.clone());
        let (http, url) = (r.d.http.clone(), r.d.url("/api/v1/jobs"));
        tokio::spawn(async move {
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let resp = http
                    .post(&url)
                    .json(&json!({"printer_id": "prusa_1", "job_name": format!("manual {n}"), "filename": "m.gcode"}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status().as_u16(), 201);
                let v: Value = resp.json().await.unwrap();
                acked
                    .lock()
                    .unwrap()
                    .push(v["id"].as_str().unwrap().to_owned());
            }
        })
    };
    eventually(
        "manual jobs acknowledged",
        async || {
            let n = acked.lock().unwrap().len();
            if n >= ACKED_BEFORE { Ok(()) } else { Err(n) }
        },
        |n| format!("{n} acknowledged"),
    )
    .await;
    let auto: Vec<String> = r
        .jobs("auto_created=true")
        .await
        .iter()
        .map(|j| j["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(auto.len(), 4);

    // The command beside the running daemon (its own process, no lock, read-only).
    let before_cli: Vec<String> = acked.lock().unwrap().clone();
    let cli_copy = r.d.dir.path().join("cli-backup.db");
    let out = {
        let (config, dest) = (r.d.config_path.clone(), cli_copy.clone());
        tokio::task::spawn_blocking(move || {
            printfarmd_cmd()
                .arg("backup")
                .arg(&dest)
                .arg("--config")
                .arg(&config)
                .env("PRINTFARMD_LOG", "warn")
                .output()
                .unwrap()
        })
        .await
        .unwrap()
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("Restore: stop printfarmd"), "{stdout}");
    // A second run to the same file is refused, not overwritten.
    let again = printfarmd_cmd()
        .arg("backup")
        .arg(&cli_copy)
        .arg("--config")
        .arg(&r.d.config_path)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));

    // The API's, into [backup] dir (default: beside the database).
    let before_api: Vec<String> = acked.lock().unwrap().clone();
    let (code, body) = r.d.send("POST", "/api/v1/backup", None).await;
    assert_eq!(code, 201, "{body}");
    let api_copy = std::path::PathBuf::from(body["backup"]["path"].as_str().unwrap());
    assert!(
        api_copy.starts_with(r.d.dir.path().join("backups")),
        "{body}"
    );

    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    let after = acked.lock().unwrap().len();
    assert!(
        after > before_api.len(),
        "the load did not go on during the backups"
    );

    for (copy, before) in [(&cli_copy, &before_cli), (&api_copy, &before_api)] {
        let (ok, ids) = integrity_and_ids(copy);
        assert_eq!(ok, "ok", "{}", copy.display());
        for id in before.iter().chain(&auto) {
            assert!(
                ids.contains(id),
                "{id} acknowledged before the backup is not in {}",
                copy.display()
            );
        }
    }

    // Restore: stop, replace the database (and drop its WAL files), start.
    let Rig { sim, d } = r;
    let restored = tokio::task::spawn_blocking(move || {
        let mut d = d;
        d.stop();
        let db = d.dir.path().join("printfarmd.db");
        for ext in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{ext}", db.display()));
        }
        std::fs::copy(&cli_copy, &db).unwrap();
        let (dir, config) = (d.dir.clone(), d.config_path.clone());
        drop(d);
        Daemon::spawn(dir, config, &[])
    })
    .await
    .unwrap();
    restored_check(&restored, &before_cli, &auto).await;
    drop(sim);
}

async fn restored_check(d: &Daemon, before: &[String], auto: &[String]) {
    for id in before.iter().chain(auto) {
        let (code, job) = d.get(&format!("/api/v1/jobs/{id}")).await;
        assert_eq!(code, 200, "{id} after the restore: {job}");
    }
    let (code, health) = d.get("/api/v1/health").await;
    assert_eq!(code, 200, "{health}");
}

/// Kills a process started by the test when dropped.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tool(name: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}

/// The printer types, as `/metrics` labels them.
const TYPES: [&str; 4] = ["bambu", "prusalink", "octoprint", "moonraker"];

async fn scrape(r: &Rig) -> String {
    r.d.http
        .get(r.d.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

fn value_of(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_while_a_farm_prints_pass_promtool_and_a_prometheus_scrape() {
    let (Some(promtool), Some(prometheus)) = (tool("promtool"), tool("prometheus")) else {
        if std::env::var_os("PRINTFARMD_SKIP_PROMETHEUS").is_some() {
            eprintln!(
                "skipped: PRINTFARMD_SKIP_PROMETHEUS is set and promtool/prometheus are missing"
            );
            return;
        }
        panic!(
            "promtool and prometheus are needed: apt-get install prometheus (.ci/run does); \
             PRINTFARMD_SKIP_PROMETHEUS=1 skips this test"
        );
    };
    // One printer of every type, so each type's series is seen moving.
    let r = Rig::start(
        x1(1)
            .bambu(1, Style::P1)
            .prusalink(1)
            .octoprint(1)
            .moonraker(1),
    )
    .await;
    for p in r.sim.printers() {
        r.act(&p.id, print("metrics.3mf", 60)).await;
    }
    r.wait_jobs("status=running", "a job per printer", |j| j.len() == 5)
        .await;
    let (code, _) = r.d.get("/api/v1/jobs?limit=5").await;
    assert_eq!(code, 200);

    let resp = r.d.http.get(r.d.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = resp.text().await.unwrap();
    let expect = [
        ("printfarmd_jobs_created_total{source=\"auto\"}", 5.0),
        ("printfarmd_jobs_created_total{source=\"manual\"}", 0.0),
        ("printfarmd_jobs_ended_total{status=\"completed\"}", 0.0),
        ("printfarmd_jobs_open", 5.0),
        ("printfarmd_printers_configured", 5.0),
        (
            "printfarmd_printers_by_connection{connection=\"connected\"}",
            5.0,
        ),
        ("printfarmd_printers_by_state{state=\"printing\"}", 5.0),
        ("printfarmd_websocket_clients", 0.0),
    ];
    for (series, want) in expect {
        assert_eq!(value_of(&text, series), Some(want), "{series} in\n{text}");
    }
    // Statuses processed and payloads skipped, per printer type: every type there.
    let processed = |t: &str, kind: &str| {
        value_of(
            t,
            &format!("printfarmd_statuses_processed_total{{type=\"{kind}\"}}"),
        )
    };
    for kind in TYPES {
        assert!(
            processed(&text, kind).is_some_and(|v| v >= 1.0),
            "statuses of {kind} in\n{text}"
        );
        let skipped = format!("printfarmd_printer_payloads_skipped_total{{type=\"{kind}\"}}");
        assert_eq!(value_of(&text, &skipped), Some(0.0), "{skipped} in\n{text}");
    }
    assert!(
        !text
            .lines()
            .any(|l| l.starts_with("printfarmd_statuses_processed_total ")),
        "an unlabelled total beside the per-type series:\n{text}"
    );
    let first = text.clone();
    for series in [
        "printfarmd_db_commit_duration_seconds_count",
        "printfarmd_http_requests_total{route=\"/api/v1/jobs\",code=\"200\"}",
    ] {
        assert!(
            value_of(&text, series).is_some_and(|v| v >= 1.0),
            "{series} in\n{text}"
        );
    }

    // A printer sending garbage: skipped, counted by printer type.
    r.act("bambu_1", printfarmd_sim::Action::Garbage).await;
    eventually(
        "a skipped payload on /metrics",
        async || {
            let t = scrape(&r).await;
            let n = value_of(
                &t,
                "printfarmd_printer_payloads_skipped_total{type=\"bambu\"}",
            );
            if n.is_some_and(|n| n >= 1.0) {
                Ok(t)
            } else {
                Err(t)
            }
        },
        |t| t,
    )
    .await;

    // The rest moves too: a print ends, a WebSocket client connects, a backup is made,
    // and every type's statuses keep coming.
    let _ws = r.d.ws().await;
    r.act("prusa_1", printfarmd_sim::Action::Finish).await;
    let (code, body) = r.d.send("POST", "/api/v1/backup", None).await;
    assert_eq!(code, 201, "{body}");
    let text = eventually(
        "ended jobs, a client, a backup and more statuses of every type on /metrics",
        async || {
            let t = scrape(&r).await;
            let moved = value_of(&t, "printfarmd_jobs_ended_total{status=\"completed\"}")
                == Some(1.0)
                && value_of(&t, "printfarmd_jobs_open") == Some(4.0)
                && value_of(&t, "printfarmd_websocket_clients") == Some(1.0)
                && value_of(&t, "printfarmd_backups_total{result=\"ok\"}")
                    .is_some_and(|n| n >= 1.0)
                && value_of(&t, "printfarmd_backup_age_seconds").is_some()
                && TYPES
                    .iter()
                    .all(|k| processed(&t, k) > processed(&first, k));
            if moved { Ok(t) } else { Err(t) }
        },
        |t| t,
    )
    .await;

    // promtool's lint of the Prometheus text format.
    let mut child = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // OpenMetrics for clients that ask for it.
    let om =
        r.d.http
            .get(r.d.url("/metrics"))
            .header("accept", "application/openmetrics-text;version=1.0.0")
            .send()
            .await
            .unwrap();
    assert!(
        om.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    assert!(om.text().await.unwrap().ends_with("# EOF\n"));

    // A real Prometheus scraping the daemon every second.
    let tmp = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let target = r.d.base.trim_start_matches("http://");
    let cfg = tmp.path().join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: printfarmd\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    let _prom = Reaped(
        Command::new(&prometheus)
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                tmp.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let http = reqwest::Client::new();
    let query = async |q: &str| -> Option<String> {
        let v: Value = http
            .get(format!(
                "http://127.0.0.1:{port}/api/v1/query?{}",
                serde_urlencoded::to_string([("query", q)]).unwrap()
            ))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        v["data"]["result"][0]["value"][1]
            .as_str()
            .map(str::to_owned)
    };
    let deadline = tokio::time::Instant::now() + 2 * WAIT;
    loop {
        let up = query("up{job=\"printfarmd\"}").await;
        let open = query("printfarmd_jobs_open").await;
        let created = query("sum(printfarmd_jobs_created_total)").await;
        if up.as_deref() == Some("1")
            && open.as_deref() == Some("4")
            && created.as_deref() == Some("5")
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "Prometheus did not scrape the daemon: up={up:?} jobs_open={open:?} created={created:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
