//! SQLite storage: one writable connection (owned by the JobCreator's thread) and a
//! small pool of read-only connections for the REST handlers.
//!
//! WAL mode lets readers run beside the writer, so a large list query never delays
//! status processing. The writer uses `synchronous = FULL`: every commit reaches the
//! disk before it is acknowledged, so an acknowledged job survives `kill -9` and a
//! power cut. (NORMAL would survive `kill -9` but may lose the last commits on power
//! loss.) The cost is one fsync per commit; high-rate progress updates are batched by
//! the JobCreator so that cost is paid per batch, not per report.

pub mod backup;
pub mod checkpoint;
pub mod export;
pub mod files;
pub mod group;
mod job_row;
pub mod jobs;
pub mod keys;
mod migrations;
pub mod printers;
pub mod retention;
pub mod settings;
pub mod stats;
pub mod webhooks;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use tokio::sync::Semaphore;

pub use jobs::JobQuery;

/// How long a statement waits on a lock held by another connection before giving up.
/// Only the writer writes, so this is only reached if an outside tool holds a write
/// lock (a backup, an operator's sqlite3 shell).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Read-only connections kept for REST queries. Two cores: more would only queue on
/// the CPU; fewer would make one slow query block the others.
pub const READ_POOL_SIZE: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("job {0} not found")]
    NotFound(String),
    #[error("printer {0} not found; GET /api/v1/printers lists the printers")]
    PrinterNotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error("the disk holding the database is full; free space and the next write will succeed")]
    DiskFull,
    #[error(
        "the database is locked by another program; close it (sqlite3 shell, backup) and retry"
    )]
    Locked,
    #[error(
        "the database is at schema version {found}, newer than this printfarmd supports ({supported}); upgrade printfarmd"
    )]
    TooNew { found: i64, supported: i64 },
    #[error("database error: {0}")]
    Sqlite(rusqlite::Error),
    /// The database cannot be used now; the message says why and what to do.
    #[error("{0}")]
    Unavailable(String),
    #[error("{READ_ONLY}")]
    ReadOnly,
    /// Another process holds the database's lock (`files::DbLock`).
    #[error("{0}")]
    InUse(String),
}

/// What SQLite's "readonly" error means for the operator.
const READ_ONLY: &str = "the database is read-only (its file, its directory or its file system): printfarmd needs to write the file and to create its -wal and -shm files beside it; give the user printfarmd runs as write access, then restart printfarmd";

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode;
        match e.sqlite_error_code() {
            Some(ErrorCode::DiskFull) => StoreError::DiskFull,
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::Locked,
            Some(ErrorCode::ReadOnly) => StoreError::ReadOnly,
            _ => StoreError::Sqlite(e),
        }
    }
}

/// Opens (creating if needed, 0600) the database for writing, applies migrations and
/// sets the pragmas. Fails with a message naming the path when it cannot, and refuses a
/// database it could only read (rather than start and fail every write).
pub fn open_writer(path: &Path) -> Result<Connection, StoreError> {
    files::create_private(path)?;
    let mut conn = open_read_write(path)?;
    let read_only = |e: rusqlite::Error| match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::ReadOnly | rusqlite::ErrorCode::CannotOpen) => {
            StoreError::Unavailable(format!("{}: {READ_ONLY}", path.display()))
        }
        _ => e.into(),
    };
    if conn.is_readonly(rusqlite::MAIN_DB).map_err(read_only)? {
        return Err(StoreError::Unavailable(format!(
            "{}: {READ_ONLY}",
            path.display()
        )));
    }
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
        .map_err(read_only)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Unavailable(format!(
            "database {} cannot use WAL mode (got {mode}); put it on a local file system",
            path.display()
        )));
    }
    conn.pragma_update(None, "synchronous", DURABLE)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Checkpoints are the `checkpoint` thread's job; this is only the backstop.
    conn.pragma_update(
        None,
        "wal_autocheckpoint",
        checkpoint::WRITER_AUTOCHECKPOINT_PAGES,
    )?;
    migrations::apply(&mut conn)?;
    // The write lock (the -wal and -shm files open for writing): a database SQLite can
    // open but not write fails here, at start, and not at the first job.
    conn.execute_batch("BEGIN IMMEDIATE; ROLLBACK")
        .map_err(read_only)?;
    Ok(conn)
}

/// The writer's `synchronous` level: every commit is on disk before it returns.
const DURABLE: &str = "FULL";

/// Runs `f` with the writer's commits not waiting for an fsync (`synchronous = NORMAL`;
/// in WAL mode the database stays consistent, and a power cut may lose these commits
/// only, until the next durable commit, which syncs the log they are in). For writes
/// that are cheap to lose: the progress flush. The writer is durable again afterwards,
/// whatever `f` returned.
pub fn without_fsync<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    let r = f(conn);
    let back = conn.pragma_update(None, "synchronous", DURABLE);
    match (r, back) {
        (Ok(v), Ok(())) => Ok(v),
        (Err(e), _) => Err(e),
        (Ok(_), Err(e)) => Err(e.into()),
    }
}

/// A read-write connection with the busy timeout, nothing else (the writer and the
/// checkpoint thread).
pub(crate) fn open_read_write(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(|e| {
        StoreError::Unavailable(format!("cannot open database {}: {e}", path.display()))
    })?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(conn)
}

/// Opens one read-only connection as the REST handlers' pool does (the benchmarks
/// use it to measure the same thing).
pub fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(conn)
}

/// Read-only connections for the REST handlers, used on tokio's blocking threads.
#[derive(Clone)]
pub struct ReadPool {
    inner: Arc<ReadPoolInner>,
}

struct ReadPoolInner {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    permits: Semaphore,
}

impl ReadPool {
    pub fn new(path: &Path) -> Self {
        Self {
            inner: Arc::new(ReadPoolInner {
                path: path.to_path_buf(),
                idle: Mutex::new(Vec::new()),
                permits: Semaphore::new(READ_POOL_SIZE),
            }),
        }
    }

    fn open(&self) -> Result<Connection, StoreError> {
        open_reader(&self.inner.path)
    }

    /// Runs `f` on a read-only connection without blocking the async threads.
    pub async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let _permit =
            self.inner.permits.acquire().await.map_err(|e| {
                StoreError::Unavailable(format!("the database worker is gone: {e}"))
            })?;
        let pool = self.clone();
        tokio::task::spawn_blocking(move || {
            let conn = match pool.inner.idle.lock().map(|mut v| v.pop()) {
                Ok(Some(c)) => c,
                _ => pool.open()?,
            };
            let out = f(&conn);
            if let Ok(mut idle) = pool.inner.idle.lock() {
                idle.push(conn);
            }
            out
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("the database worker is gone: {e}")))?
    }
}
