//! Database faults against the real binary and a real SQLite file (issue 14): files
//! replaced under a running daemon, a read-only database, file modes, and rows this
//! version cannot fully read.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::faults::{config_in, run_to_end, wait_exit};
use crate::harness::Daemon;

/// The `nobody` user, to see a read-only database as the daemon's user would when the
/// tests run as root (root ignores file modes).
const NOBODY: u32 = 65534;

#[tokio::test]
async fn a_database_replaced_under_the_daemon_refuses_writes_and_degrades_health() {
    let d = Daemon::start("");
    let (code, _) = d
        .send(
            "POST",
            "/api/v1/jobs",
            Some(json!({"printer_id": "prusa_1", "job_name": "before", "filename": "a.3mf"})),
        )
        .await;
    assert_eq!(code, 201);
    // An operator restores a copy over the live file (a new inode at the same path).
    let db = d.dir.path().join("printfarmd.db");
    let copy = d.dir.path().join("copy.db");
    std::fs::copy(&db, &copy).unwrap();
    std::fs::rename(&copy, &db).unwrap();

    // Seen by the very next /health, without any write and without waiting for a
    // background check (the checkpoint thread sleeps while nothing is written).
    let (code, h) = d.get("/api/v1/health").await;
    assert_eq!(code, 200, "{h}");
    assert_eq!(h["status"], "degraded", "{h}");
    let reason = h["reason"].as_str().unwrap();
    assert!(
        reason.contains("deleted or replaced") && reason.contains("restart printfarmd"),
        "{reason}"
    );

    // Nothing is acknowledged: it would go to the old file and be lost at a restart.
    let (code, body) = d
        .send(
            "POST",
            "/api/v1/jobs",
            Some(json!({"printer_id": "prusa_1", "job_name": "after", "filename": "b.3mf"})),
        )
        .await;
    assert_eq!(code, 503, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("deleted or replaced"),
        "{body}"
    );
    let (code, _) = d
        .send(
            "PUT",
            "/api/v1/settings",
            Some(json!({"monitoring_interval": 20})),
        )
        .await;
    assert_eq!(code, 503);
}

#[tokio::test]
async fn a_database_deleted_under_the_daemon_refuses_writes_with_the_reason() {
    let d = Daemon::start("");
    std::fs::remove_file(d.dir.path().join("printfarmd.db")).unwrap();
    let (code, body) = d
        .send(
            "POST",
            "/api/v1/jobs",
            Some(json!({"printer_id": "prusa_1", "job_name": "lost", "filename": "l.3mf"})),
        )
        .await;
    assert_eq!(code, 503, "{body}");
    // Reads may fail too now (a new connection finds no file): degraded or unavailable,
    // always with the reason.
    let (_, h) = d.get("/api/v1/health").await;
    assert_ne!(h["status"], "ok", "{h}");
    assert!(
        h["reason"]
            .as_str()
            .unwrap()
            .contains("deleted or replaced"),
        "{h}"
    );
}

/// `printfarmd run` as `uid` (None: as ourselves), to its end.
fn run_as(dir: &Path, config: &Path, uid: Option<u32>) -> (bool, String) {
    if uid.is_none() {
        let out = run_to_end(dir, &["run", "--config", config.to_str().unwrap()]);
        return (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
    }
    // The build's binary may sit where `uid` cannot reach it (CI keeps the target
    // directory under /root): run a copy from a directory anyone can read.
    let bin_dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(bin_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = bin_dir.path().join("printfarmd");
    std::fs::copy(env!("CARGO_BIN_EXE_printfarmd"), &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut cmd = Command::new(&bin);
    cmd.args(["run", "--config", config.to_str().unwrap()])
        .current_dir(dir)
        .env_remove("PRINTFARMD_DATABASE__PATH")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(uid) = uid {
        cmd.uid(uid).gid(uid);
    }
    let mut child = cmd.spawn().unwrap();
    let status = wait_exit(&mut child, Duration::from_secs(30))
        .expect("the daemon started on a read-only database");
    let mut err = String::new();
    for l in BufReader::new(child.stderr.take().unwrap())
        .lines()
        .map_while(Result::ok)
    {
        err.push_str(&l);
        err.push('\n');
    }
    (status.success(), err)
}

#[test]
fn a_read_only_database_is_refused_at_start_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_in(dir.path());
    let db = dir.path().join("printfarmd.db");
    // A database that exists (the daemon ran once), then made read-only.
    let mut d = Daemon::spawn(Arc::new(tempfile::tempdir().unwrap()), config.clone(), &[]);
    d.stop();
    let root = std::fs::metadata(&config).unwrap().uid() == 0;
    let uid = root.then_some(NOBODY);
    let chmod = |p: &Path, mode: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    chmod(&config, 0o644);
    let _ = std::fs::remove_file(dir.path().join("printfarmd.db.lock"));
    chmod(&db, 0o444);

    // The file: the daemon can read it but not write it.
    chmod(dir.path(), 0o777);
    let (ok, err) = run_as(dir.path(), &config, uid);
    assert!(!ok);
    assert!(
        err.contains(&format!("{}: the database is read-only", db.display()))
            && err.contains("give the user printfarmd runs as write access"),
        "{err}"
    );

    // The directory: nothing can be created beside the database.
    let _ = std::fs::remove_file(dir.path().join("printfarmd.db.lock"));
    chmod(&db, 0o644);
    chmod(dir.path(), 0o555);
    let (ok, err) = run_as(dir.path(), &config, uid);
    chmod(dir.path(), 0o755);
    assert!(!ok);
    assert!(
        err.contains("printfarmd.db.lock")
            && err.contains("write access to the database's directory"),
        "{err}"
    );
}

#[tokio::test]
async fn the_database_and_its_wal_are_created_0600_whatever_the_umask() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_in(dir.path());
    // umask 000 would leave SQLite's default 0644 as it is.
    let mut child = Command::new("sh")
        .args([
            "-c",
            "umask 000; exec \"$0\" run --config \"$1\"",
            env!("CARGO_BIN_EXE_printfarmd"),
            config.to_str().unwrap(),
        ])
        .current_dir(dir.path())
        .env("PRINTFARMD_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The log is read to its end (a closed pipe would fail the daemon's log writes).
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(i) = l.find("listening on http://") {
                let _ = tx.send(l[i + "listening on http://".len()..].trim().to_owned());
            }
        }
    });
    let addr = rx.recv_timeout(Duration::from_secs(30)).ok();
    let addr = addr.expect("the daemon started");
    let r = reqwest::Client::new()
        .post(format!("http://{addr}/api/v1/jobs"))
        .json(&json!({"printer_id": "prusa_1", "job_name": "cube", "filename": "cube.3mf"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    for name in [
        "printfarmd.db",
        "printfarmd.db-wal",
        "printfarmd.db-shm",
        "printfarmd.db.lock",
    ] {
        let mode = std::fs::metadata(dir.path().join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{name} is {mode:o}");
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test]
async fn a_stored_time_out_of_range_never_fails_list_get_or_delete() {
    let d = Daemon::start("");
    let (code, good) = d
        .send(
            "POST",
            "/api/v1/jobs",
            Some(json!({"printer_id": "prusa_1", "job_name": "good", "filename": "g.3mf"})),
        )
        .await;
    assert_eq!(code, 201);
    let d = {
        let mut d = d;
        d.stop();
        d
    };
    // What an older version stored for a printer's start time in year 10000.
    let db = d.dir.path().join("printfarmd.db");
    let c = rusqlite::Connection::open(&db).unwrap();
    c.execute(
        "INSERT INTO jobs (id, printer_id, printer_type, job_name, filename, status, start_time, \
         end_time, created_at, updated_at) VALUES ('job_bad', 'bambu_1', 'bambu', 'bad', 'b.3mf', \
         'completed', '+10000-01-01T00:00:00.000Z', '2025-01-01T00:10:00.000Z', \
         '2025-01-01T00:00:00.000Z', '2025-01-01T00:00:00.000Z')",
        [],
    )
    .unwrap();
    drop(c);
    let d = Daemon::spawn(d.dir.clone(), d.config_path.clone(), &[]);
    let (code, list) = d.get("/api/v1/jobs").await;
    assert_eq!(code, 200, "{list}");
    assert_eq!(list["jobs"].as_array().unwrap().len(), 2, "{list}");
    let (code, bad) = d.get("/api/v1/jobs/job_bad").await;
    assert_eq!(code, 200, "{bad}");
    assert_eq!(bad["start_time"], serde_json::Value::Null);
    assert_eq!(bad["end_time"], "2025-01-01T00:10:00.000Z");
    let (_, h) = d.get("/api/v1/health").await;
    assert!(
        h["database"]["unreadable_values"].as_u64().unwrap() >= 1,
        "{h}"
    );
    let (code, _) = d.send("DELETE", "/api/v1/jobs/job_bad", None).await;
    assert_eq!(code, 204);
    let (code, list) = d.get("/api/v1/jobs").await;
    assert_eq!(code, 200);
    assert_eq!(list["jobs"][0]["id"], good["id"]);
}
