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
//! `PRAGMA data_version`, which changes when another connection commits), and the thread
//! sleeps until one is due instead of ticking (issue 21):
//! - nothing committed since the last complete checkpoint: it sleeps until the writer
//!   nudges it after a commit (`Nudge::committed`, one atomic swap per group commit),
//!   with a long backstop (`IDLE_BACKSTOP`) for commits of other connections (the
//!   webhook queue) and for the file check below. An idle farm wakes it twice a minute.
//! - something committed: the next checkpoint comes `interval` after the last one when
//!   the WAL was large (`BUSY_FRAMES` at the last checkpoint: a busy farm), and
//!   `QUIET_INTERVALS` intervals after it when small (a small farm's progress writes are
//!   copied and fsynced every ten seconds, not every second). It sleeps until then.
//!
//! Each time it wakes it also checks that the database's paths still name the files the
//! writer has open (`Health::check_files`). That check is not what makes a deleted or
//! replaced database visible: `/health` and every commit run it themselves, so the
//! fault shows at once; this thread's check logs it on a farm where nothing asks.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::StoreError;
use crate::health::Health;

/// How often a busy farm's WAL is checkpointed.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);
/// Longest sleep with nothing to checkpoint: the thread wakes for a commit it was not
/// told of (another connection's) and to look at the files at least this often.
pub const IDLE_BACKSTOP: Duration = Duration::from_secs(30);
/// The writer's auto-checkpoint threshold in pages (SQLite's default is 1,000): a
/// backstop that only a stalled checkpointer lets the WAL reach (~40 MB of 4 KB pages).
pub const WRITER_AUTOCHECKPOINT_PAGES: u32 = 10_000;

/// The running checkpoint thread; stops (after one last checkpoint) when dropped.
pub struct Checkpointer {
    stop: Arc<AtomicBool>,
    nudge: Nudge,
    thread: Option<JoinHandle<()>>,
}

/// What the writer holds to wake an idle checkpoint thread after it commits.
#[derive(Clone)]
pub struct Nudge {
    /// Set by the thread while it sleeps with nothing to do; a commit then wakes it.
    idle: Arc<AtomicBool>,
    thread: Thread,
}

impl Nudge {
    /// The writer committed. Wakes the thread only if it sleeps idle (once per idle
    /// spell); otherwise one atomic swap.
    pub fn committed(&self) {
        if self.idle.swap(false, Ordering::AcqRel) {
            self.thread.unpark();
        }
    }
}

/// How the thread paces itself.
#[derive(Clone, Copy, Debug)]
pub struct Pace {
    /// Between checkpoints of a busy farm (`QUIET_INTERVALS` of them for a small WAL).
    pub interval: Duration,
    /// Longest sleep with nothing committed.
    pub idle: Duration,
}

impl Default for Pace {
    fn default() -> Self {
        Self {
            interval: CHECKPOINT_INTERVAL,
            idle: IDLE_BACKSTOP,
        }
    }
}

impl Checkpointer {
    /// Opens a second connection to `path` and starts checkpointing, paced by `pace`;
    /// with `health`, it also checks the database's files each time it wakes.
    pub fn start(path: &Path, pace: Pace, health: Option<Arc<Health>>) -> Result<Self, StoreError> {
        let conn = super::open_read_write(path)?;
        let stop = Arc::new(AtomicBool::new(false));
        let idle = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn({
                let (stop, idle) = (stop.clone(), idle.clone());
                let path = path.to_path_buf();
                move || run(conn, &path, pace, &stop, &idle, health.as_deref())
            })
            .map_err(|e| StoreError::Unavailable(format!("cannot start a thread: {e}")))?;
        let nudge = Nudge {
            idle,
            thread: thread.thread().clone(),
        };
        Ok(Self {
            stop,
            nudge,
            thread: Some(thread),
        })
    }

    /// The handle the writer nudges after each commit.
    pub fn nudge(&self) -> Nudge {
        self.nudge.clone()
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
/// comes one `interval` after it. Below it the next waits `QUIET_INTERVALS` intervals,
/// so a small farm's few progress writes are copied (and fsynced) every ten seconds,
/// not every second; its WAL stays a few hundred KB (issue 21).
const BUSY_FRAMES: i64 = 256;
const QUIET_INTERVALS: u32 = 10;

/// SQLite's `PRAGMA data_version` of this connection: changes when another connection
/// has committed since it was last read.
fn data_version(conn: &Connection) -> Option<i64> {
    conn.prepare_cached("PRAGMA data_version")
        .and_then(|mut st| st.query_row([], |r| r.get(0)))
        .ok()
}

fn run(
    conn: Connection,
    path: &Path,
    pace: Pace,
    stop: &AtomicBool,
    idle: &AtomicBool,
    health: Option<&Health>,
) {
    let mut failing = false;
    // What the last complete checkpoint saw; `None` until one has run.
    let mut checkpointed: Option<i64> = None;
    // When the last checkpoint ran, and how long to wait after it for the next.
    let mut last: Option<Instant> = None;
    let mut wait = pace.interval;
    let mut version = data_version(&conn);
    loop {
        let committed = version.is_none() || version != checkpointed;
        if committed {
            // Something to copy: sleep until the next checkpoint is due.
            let due = last.map_or(Duration::ZERO, |t| wait.saturating_sub(t.elapsed()));
            if !due.is_zero() {
                std::thread::park_timeout(due);
            }
        } else {
            // Nothing to copy: sleep until a commit nudges us. A commit between the
            // version read above and `idle` being set found `idle` false and did not
            // nudge, so look once more after setting it.
            idle.store(true, Ordering::Release);
            if data_version(&conn) == version {
                std::thread::park_timeout(pace.idle);
            }
            idle.store(false, Ordering::Release);
        }
        let stopping = stop.load(Ordering::Relaxed);
        if let Some(h) = health {
            // Logged by `check_files` the first time it fails.
            let _ = h.check_files();
        }
        version = data_version(&conn);
        let unchanged = version.is_some() && version == checkpointed;
        let early = last.is_some_and(|t| t.elapsed() < wait);
        if (unchanged || early) && !stopping {
            continue;
        }
        last = Some(Instant::now());
        match checkpoint(&conn) {
            Ok(c) => {
                checkpointed = version.filter(|_| c.all);
                wait = if c.frames >= BUSY_FRAMES {
                    pace.interval
                } else {
                    pace.interval.saturating_mul(QUIET_INTERVALS)
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

    #[derive(PartialEq)]
    enum Thread {
        None,
        /// Running, and nudged after every commit, as the JobCreator does.
        Nudged,
        /// Running, never nudged, with a backstop longer than the test.
        Untold,
    }

    /// Writes ~20 MB in 200 commits, with or without the checkpoint thread (started as
    /// the daemon starts it: after the writer), and returns the WAL file's largest size.
    fn largest_wal(path: &Path, thread: Thread) -> u64 {
        let writer = super::super::open_writer(path).unwrap();
        writer.execute_batch("CREATE TABLE t (x BLOB)").unwrap();
        let pace = Pace {
            interval: Duration::from_millis(5),
            idle: Duration::from_secs(600),
        };
        let cp = (thread != Thread::None).then(|| Checkpointer::start(path, pace, None).unwrap());
        let nudge = cp
            .as_ref()
            .filter(|_| thread == Thread::Nudged)
            .map(|c| c.nudge());
        let wal = path.with_extension("db-wal");
        let mut largest = 0;
        for _ in 0..200 {
            writer
                .execute("INSERT INTO t VALUES (zeroblob(100000))", [])
                .unwrap();
            if let Some(n) = &nudge {
                n.committed();
            }
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
        let alone = largest_wal(&dir.path().join("alone.db"), Thread::None);
        assert!(alone > 15_000_000, "{alone}");
        let with = largest_wal(&dir.path().join("with.db"), Thread::Nudged);
        eprintln!("largest WAL: {alone} bytes alone, {with} with the checkpoint thread");
        assert!(
            with < alone / 2,
            "WAL grew to {with} of {alone} bytes with the checkpointer running"
        );
    }

    /// The thread does not tick: told of no commit, it sleeps through all of them (the
    /// first checkpoint at its start found nothing to copy), so the WAL grows as if it
    /// were not there. The nudge is what wakes it.
    #[test]
    fn an_idle_thread_sleeps_until_a_commit_nudges_it() {
        let dir = tempfile::tempdir().unwrap();
        let untold = largest_wal(&dir.path().join("untold.db"), Thread::Untold);
        assert!(untold > 15_000_000, "{untold}");
    }
}
