//! Backups made by the running daemon: on demand (`POST /api/v1/backup`) and on a
//! schedule (`[backup] interval_hours`), into `[backup] dir`, keeping the newest
//! `[backup] keep`. The copy itself is `store::backup` (SQLite's online backup API from
//! a read-only connection) on a blocking thread: the job writer never waits for it.
//!
//! Files are named `printfarmd-<UTC time>.db`, so they sort by age; only files of that
//! form are ever deleted from the directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::config::BackupConfig;
use crate::store::StoreError;
use crate::store::backup::{self, BackupInfo};

const PREFIX: &str = "printfarmd-";
const SUFFIX: &str = ".db";

/// Why a backup was not made.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("a backup is already running; wait for it to finish and try again")]
    Busy,
    #[error(
        "cannot create the backup directory {0}: {1}; set [backup] dir to a writable directory"
    )]
    Dir(PathBuf, std::io::Error),
    #[error("{0}")]
    Store(#[from] StoreError),
}

pub struct Backups {
    db: PathBuf,
    dir: PathBuf,
    keep: usize,
    running: tokio::sync::Mutex<()>,
}

impl Backups {
    pub fn new(cfg: &BackupConfig, db: &Path) -> Arc<Self> {
        let b = Backups {
            db: db.to_path_buf(),
            dir: cfg.dir_for(db),
            keep: usize::try_from(cfg.keep).unwrap_or(usize::MAX),
            running: tokio::sync::Mutex::new(()),
        };
        // The age of the newest backup already there, for /metrics after a restart.
        if let Some(t) = b
            .existing()
            .last()
            .and_then(|p| std::fs::metadata(p).ok()?.modified().ok())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .and_then(|d| i64::try_from(d.as_secs()).ok())
        {
            crate::metrics::global().backup_seen(t);
        }
        Arc::new(b)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Our backup files in the directory, oldest first.
    fn existing(&self) -> Vec<PathBuf> {
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut v: Vec<PathBuf> = rd
            .filter_map(Result::ok)
            .filter(|e| {
                let n = e.file_name();
                let n = n.to_string_lossy();
                n.starts_with(PREFIX) && n.ends_with(SUFFIX)
            })
            .map(|e| e.path())
            .collect();
        v.sort();
        v
    }

    /// Makes one backup now; refuses (Busy) while another runs.
    pub async fn run_now(self: &Arc<Self>) -> Result<BackupInfo, BackupError> {
        let _guard = self.running.try_lock().map_err(|_| BackupError::Busy)?;
        std::fs::create_dir_all(&self.dir).map_err(|e| BackupError::Dir(self.dir.clone(), e))?;
        let now = chrono::Utc::now();
        let dest = self.dir.join(format!(
            "{PREFIX}{}{SUFFIX}",
            now.format("%Y%m%dT%H%M%S%.3fZ")
        ));
        let db = self.db.clone();
        let r = tokio::task::spawn_blocking(move || backup::backup(&db, &dest))
            .await
            .map_err(|e| StoreError::Unavailable(format!("the backup thread failed: {e}")))
            .and_then(|r| r);
        crate::metrics::global().backup_done(r.is_ok(), now.timestamp());
        let info = r?;
        tracing::info!(path = %info.path.display(), bytes = info.bytes, jobs = info.jobs, took_ms = info.took_ms, "backup written");
        self.prune();
        Ok(info)
    }

    /// Deletes our oldest backups beyond `keep`.
    fn prune(&self) {
        let files = self.existing();
        let extra = files.len().saturating_sub(self.keep);
        for old in &files[..extra] {
            match std::fs::remove_file(old) {
                Ok(()) => tracing::info!(path = %old.display(), "old backup deleted"),
                Err(e) => {
                    tracing::warn!(path = %old.display(), error = %e, "cannot delete an old backup")
                }
            }
        }
    }

    /// A backup every `interval` (the first one `interval` after the start).
    pub fn schedule(self: Arc<Self>, interval: Duration) {
        tokio::spawn(async move {
            let mut every =
                tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                if let Err(e) = self.run_now().await {
                    tracing::error!(error = %e, "scheduled backup failed");
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keeps_the_newest_and_leaves_other_files_alone() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("live.db");
        drop(crate::store::open_writer(&db).unwrap());
        let cfg = BackupConfig {
            dir: Some(dir.path().join("b")),
            interval_hours: 0,
            keep: 2,
        };
        let b = Backups::new(&cfg, &db);
        std::fs::create_dir_all(dir.path().join("b")).unwrap();
        std::fs::write(dir.path().join("b/notes.txt"), "mine").unwrap();
        let mut made = Vec::new();
        for _ in 0..3 {
            made.push(b.run_now().await.unwrap().path);
            // Names carry milliseconds; make sure each is new.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(b.existing(), made[1..].to_vec());
        assert!(dir.path().join("b/notes.txt").exists());
        assert!(crate::metrics::global().last_backup_unix().is_some());
    }
}
