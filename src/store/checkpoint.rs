//! WAL checkpoints off the writer's path.
//!
//! By default SQLite checkpoints inside whichever commit pushes the WAL past 1,000 pages:
//! that commit copies the WAL into the database file and fsyncs it, so about one job
//! creation in a hundred paid for the others (the tail of `create_job` in BENCHMARKS.md).
//! Here a thread with its own connection runs PASSIVE checkpoints (at most once a second). PASSIVE
//! never waits on the writer and never blocks it; the writer keeps appending to the WAL
//! and, once a checkpoint has copied everything, starts the WAL over on its next commit.
//! The writer's own auto-checkpoint stays on as a backstop, at a size this thread keeps
//! the WAL well below, so the WAL cannot grow without bound if this thread stops.
//!
//! A checkpoint runs only when something was committed since the last one (SQLite's
//! `PRAGMA data_version`, which changes when another connection commits): an idle farm's
//! tick is two `stat` calls and one pragma, not a checkpoint. And a small WAL (under
//! `BUSY_FRAMES` at the last checkpoint) is checkpointed every `QUIET_TICKS` ticks, not
//! every tick: fewer fsyncs for a small farm (issue 21).
//!
//! On the same tick it checks that the database's paths still name the files the writer
//! has open (`files::FileIdentity`), so `/health` shows a deleted or replaced database
//! within a second even when nothing is being written.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

use super::StoreError;
use super::files::FileIdentity;
use crate::health::Health;

/// What the checkpoint thread watches besides the WAL: the files' identities, and the
/// health a change is reported to.
pub struct Watch {
    pub files: FileIdentity,
    pub health: Arc<Health>,
}

/// How often the checkpointer runs.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);
/// The writer's auto-checkpoint threshold in pages (SQLite's default is 1,000): a
/// backstop that only a stalled checkpointer lets the WAL reach (~40 MB of 4 KB pages).
pub const WRITER_AUTOCHECKPOINT_PAGES: u32 = 10_000;

/// The running checkpoint thread; stops (after one last checkpoint) when dropped.
pub struct Checkpointer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Opens a second connection to `path` and starts checkpointing (and watching, if
    /// `watch` is given) every `interval`.
    pub fn start(
        path: &Path,
        interval: Duration,
        watch: Option<Watch>,
    ) -> Result<Self, StoreError> {
        let conn = super::open_read_write(path)?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn({
                let stop = stop.clone();
                let path = path.to_path_buf();
                move || run(conn, &path, interval, &stop, watch)
            })
            .map_err(|e| StoreError::Unavailable(format!("cannot start a thread: {e}")))?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

/// One PASSIVE checkpoint (it copies what it can without waiting). `true` when it
/// copied the whole WAL; `false` when a reader's snapshot kept some of it back (the next
/// tick tries again).
fn checkpoint(conn: &Connection) -> Result<Checkpointed, StoreError> {
    // Columns: busy, frames in the WAL, frames checkpointed (-1, -1 when not in WAL mode).
    let (log, done): (i64, i64) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok((r.get(1)?, r.get(2)?))
    })?;
    Ok(Checkpointed {
        all: done >= log,
        frames: log.max(0),
    })
}

struct Checkpointed {
    /// The whole WAL was copied.
    all: bool,
    /// Frames the WAL held.
    frames: i64,
}

/// A WAL this many frames long at a checkpoint means a busy farm: the next checkpoint
/// comes after one `interval`. Below it a checkpoint waits `QUIET_TICKS` intervals,
/// so a small farm's few progress writes are copied (and fsynced) every ten seconds,
/// not every second; its WAL stays a few hundred KB (issue 21).
const BUSY_FRAMES: i64 = 256;
const QUIET_TICKS: u32 = 10;

/// SQLite's `PRAGMA data_version` of this connection: changes when another connection
/// has committed since it was last read.
fn data_version(conn: &Connection) -> Option<i64> {
    conn.prepare_cached("PRAGMA data_version")
        .and_then(|mut st| st.query_row([], |r| r.get(0)))
        .ok()
}

fn run(conn: Connection, path: &Path, interval: Duration, stop: &AtomicBool, watch: Option<Watch>) {
    let mut failing = false;
    // What the last successful checkpoint saw; `None` until one has run.
    let mut checkpointed: Option<i64> = None;
    // Ticks since the last checkpoint, and how many to wait before the next.
    let mut ticks = 0u32;
    let mut wait_ticks = 1u32;
    loop {
        std::thread::park_timeout(interval);
        ticks = ticks.saturating_add(1);
        let stopping = stop.load(Ordering::Relaxed);
        if let Some(w) = &watch
            && let Err(reason) = w.files.check()
            && w.health.database_fault(reason.clone())
        {
            tracing::error!(reason = %reason, "database files changed under the daemon; writes are refused until a restart");
        }
        let version = data_version(&conn);
        let unchanged = version.is_some() && version == checkpointed;
        if (unchanged || ticks < wait_ticks) && !stopping {
            continue;
        }
        ticks = 0;
        match checkpoint(&conn) {
            Ok(c) => {
                checkpointed = version.filter(|_| c.all);
                wait_ticks = if c.frames >= BUSY_FRAMES {
                    1
                } else {
                    QUIET_TICKS
                };
                if failing {
                    failing = false;
                    tracing::info!(database = %path.display(), "WAL checkpoints work again");
                }
            }
            // Logged once per spell of failures: the writer's own auto-checkpoint still
            // bounds the WAL meanwhile, and no data is at risk (checkpoints only copy).
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(database = %path.display(), error = %e, "WAL checkpoint failed; the writer's own checkpoints take over until it works again");
            }
            Err(_) => {}
        }
        if stopping {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes ~20 MB in 200 commits, with or without the checkpoint thread (started as
    /// the daemon starts it: after the writer), and returns the WAL file's largest size.
    fn largest_wal(path: &Path, with_thread: bool) -> u64 {
        let writer = super::super::open_writer(path).unwrap();
        writer.execute_batch("CREATE TABLE t (x BLOB)").unwrap();
        let cp =
            with_thread.then(|| Checkpointer::start(path, Duration::from_millis(5), None).unwrap());
        let wal = path.with_extension("db-wal");
        let mut largest = 0;
        for _ in 0..200 {
            writer
                .execute("INSERT INTO t VALUES (zeroblob(100000))", [])
                .unwrap();
            largest = largest.max(std::fs::metadata(&wal).unwrap().len());
            std::thread::sleep(Duration::from_millis(10));
        }
        drop(cp);
        let n: i64 = writer
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 200);
        largest
    }

    #[test]
    fn data_version_changes_only_with_another_connections_commit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.db");
        let writer = super::super::open_writer(&path).unwrap();
        writer.execute_batch("CREATE TABLE t (x)").unwrap();
        let reader = super::super::open_read_write(&path).unwrap();
        let v0 = data_version(&reader).unwrap();
        assert_eq!(data_version(&reader), Some(v0), "nothing committed");
        checkpoint(&reader).unwrap();
        assert_eq!(
            data_version(&reader),
            Some(v0),
            "its own checkpoint is no change"
        );
        writer.execute("INSERT INTO t VALUES (1)", []).unwrap();
        assert_ne!(data_version(&reader), Some(v0), "a commit is");
    }

    #[test]
    fn the_thread_keeps_the_wal_small_without_the_writer_checkpointing() {
        let dir = tempfile::tempdir().unwrap();
        // Without the thread the writer's backstop (10,000 pages) is never reached: the
        // WAL holds all ~20 MB.
        let alone = largest_wal(&dir.path().join("alone.db"), false);
        assert!(alone > 15_000_000, "{alone}");
        let with = largest_wal(&dir.path().join("with.db"), true);
        eprintln!("largest WAL: {alone} bytes alone, {with} with the checkpoint thread");
        assert!(
            with < alone / 2,
            "WAL grew to {with} of {alone} bytes with the checkpointer running"
        );
    }
}
