//! Online backups: a consistent copy of the live database made with SQLite's backup API
//! from a read-only connection, while the daemon goes on writing.
//!
//! The whole database is copied in one backup step, which runs inside one read
//! transaction: in WAL mode that is a snapshot the writer never waits for, and the copy
//! holds exactly the commits made before the step began (a step-by-step copy would
//! restart every time the writer commits, which under load is always). The copy is
//! written to a temporary file beside the target, checked (`PRAGMA quick_check`),
//! synced and then renamed, so a backup file that exists is a whole one.
//!
//! No lock file is taken: `printfarmd backup FILE` runs beside the running daemon.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use rusqlite::backup::{Backup, StepResult};

use super::StoreError;

/// How long a backup retries while the source is busy (a checkpoint truncating the
/// WAL, an outside tool's write lock) before giving up with a message.
const BUSY_RETRY_FOR: Duration = Duration::from_secs(60);
/// Pause between those retries.
const BUSY_PAUSE: Duration = Duration::from_millis(100);

/// What a finished backup wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BackupInfo {
    pub path: PathBuf,
    pub bytes: u64,
    pub jobs: i64,
    pub took_ms: u64,
}

/// Copies the database at `db` to `dest`, which must not exist yet.
pub fn backup(db: &Path, dest: &Path) -> Result<BackupInfo, StoreError> {
    let started = Instant::now();
    if dest.exists() {
        return Err(StoreError::Invalid(format!(
            "{} already exists; choose a new file name or remove it first",
            dest.display()
        )));
    }
    if !db.is_file() {
        return Err(StoreError::Unavailable(format!(
            "no database at {}; check database.path",
            db.display()
        )));
    }
    let src = super::open_reader(db).map_err(|e| {
        StoreError::Unavailable(format!("cannot open {} to back it up: {e}", db.display()))
    })?;
    let tmp = temp_path(dest);
    let r = copy_to(&src, &tmp);
    // With the daemon stopped, this read creates the database's -wal and -shm files;
    // run as root (`sudo printfarmd backup`), SQLite gives them to the database file's
    // owner, so the daemon's user can still open them (tested below).
    drop(src);
    let info = match r {
        Ok(jobs) => {
            std::fs::rename(&tmp, dest)
                .map_err(|e| io_err("renaming the backup into place", dest, e))?;
            sync_dir(dest);
            let bytes = std::fs::metadata(dest).map(|m| m.len()).unwrap_or(0);
            BackupInfo {
                path: dest.to_path_buf(),
                bytes,
                jobs,
                took_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            }
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    Ok(info)
}

/// The backup into `tmp`, checked and synced; returns the number of jobs it holds.
fn copy_to(src: &Connection, tmp: &Path) -> Result<i64, StoreError> {
    let _ = std::fs::remove_file(tmp);
    let mut dst = Connection::open(tmp).map_err(|e| {
        StoreError::Unavailable(format!(
            "cannot create the backup file {}: {e}",
            tmp.display()
        ))
    })?;
    {
        let b = Backup::new(src, &mut dst)?;
        let deadline = Instant::now() + BUSY_RETRY_FOR;
        loop {
            // -1: every page in one step, i.e. one read transaction (see the top).
            match b.step(-1)? {
                StepResult::Done => break,
                StepResult::More => continue,
                StepResult::Busy | StepResult::Locked if Instant::now() < deadline => {
                    std::thread::sleep(BUSY_PAUSE)
                }
                StepResult::Busy | StepResult::Locked => return Err(StoreError::Locked),
                _ => return Err(StoreError::Locked),
            }
        }
    }
    let check: String = dst.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
    if check != "ok" {
        return Err(StoreError::Unavailable(format!(
            "the backup copy failed its check ({check}); the database may be damaged: run PRAGMA integrity_check on it"
        )));
    }
    let jobs: i64 = dst.query_row("SELECT count(*) FROM jobs", [], |r| r.get(0))?;
    dst.close().map_err(|(_, e)| StoreError::from(e))?;
    std::fs::File::open(tmp)
        .and_then(|f| f.sync_all())
        .map_err(|e| io_err("syncing the backup", tmp, e))?;
    Ok(jobs)
}

/// The database's `-wal` and `-shm` files.
#[cfg(test)]
fn side_files(db: &Path) -> [PathBuf; 2] {
    ["-wal", "-shm"].map(|ext| {
        let mut name = db.as_os_str().to_os_string();
        name.push(ext);
        PathBuf::from(name)
    })
}

fn temp_path(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".partial-{}", std::process::id()));
    dest.with_file_name(name)
}

/// Makes the rename durable (best effort: some file systems cannot sync a directory).
fn sync_dir(file: &Path) {
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
    }
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Unavailable(format!("{what} ({}): {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_of_a_live_database_is_whole_and_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("live.db");
        let w = super::super::open_writer(&db).unwrap();
        w.execute(
            "INSERT INTO jobs (id, printer_id, printer_type, job_name, filename, status,
                               created_at, updated_at)
             VALUES ('job_1', 'p', 'bambu', 'n', 'f', 'completed', 't', 't')",
            [],
        )
        .unwrap();
        let dest = dir.path().join("copy.db");
        let info = backup(&db, &dest).unwrap();
        assert_eq!(info.jobs, 1);
        assert!(info.bytes > 0);
        let c = Connection::open(&dest).unwrap();
        let ok: String = c
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ok, "ok");
        let e = backup(&db, &dest).unwrap_err().to_string();
        assert!(e.contains("already exists"), "{e}");
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.contains("partial"))
            .collect();
        assert!(names.is_empty(), "{names:?}");
    }

    #[cfg(unix)]
    #[test]
    fn side_files_made_while_the_daemon_is_stopped_belong_to_the_database_owner() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("stopped.db");
        drop(super::super::open_writer(&db).unwrap());
        let [wal, shm] = side_files(&db);
        assert!(
            !wal.exists() && !shm.exists(),
            "a closed database keeps no -wal/-shm"
        );
        // Needs root (as CI and `sudo printfarmd backup` run); elsewhere there is no
        // other owner to give the files to.
        if std::os::unix::fs::chown(&db, Some(65534), Some(65534)).is_err() {
            eprintln!("not root: ownership not checked");
            return;
        }
        backup(&db, &dir.path().join("copy.db")).unwrap();
        for f in [&wal, &shm] {
            let m = std::fs::metadata(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            assert_eq!((m.uid(), m.gid()), (65534, 65534), "{}", f.display());
        }
    }
}
