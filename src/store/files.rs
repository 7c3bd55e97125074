//! The database's files as the operating system sees them: who may open them, whether
//! another daemon has them, and whether they are still the files the writer opened.
//!
//! - `DbLock`: an exclusive advisory lock on `<db>.lock` beside the database, held for
//!   the process's life. Two daemons writing one history would each re-adopt, close and
//!   count the other's jobs; the second is refused at start instead. (SQLite's own
//!   locks cannot do this: they are per transaction, and WAL mode lets many writers
//!   take turns.) The kernel drops the lock when the process ends, even on `kill -9`.
//! - `create_private`: a new database file is created 0600 whatever the umask; SQLite
//!   creates the `-wal` and `-shm` files with the database file's mode, so they are 0600
//!   too. The history names customers and files; other local users have no business
//!   reading it.
//! - `FileIdentity`: the device and inode of the database and its WAL when opened. If
//!   either is deleted or replaced under a running daemon, SQLite goes on writing to the
//!   old, unlinked file, and everything written from then on is lost at the next
//!   restart. `Health::check_files` compares the paths with these identities (before
//!   each commit, on each `/health`, and when the checkpoint thread wakes) so such
//!   writes are refused instead of acknowledged.

use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::StoreError;

/// Mode of every file the daemon creates for its database.
const PRIVATE_MODE: u32 = 0o600;

/// `<db>` plus a suffix (`-wal`, `.lock`): beside the database, whatever its extension.
pub fn beside(db: &Path, suffix: &str) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// The exclusive lock on `<db>.lock`; released when dropped or when the process ends.
#[derive(Debug)]
pub struct DbLock {
    _file: File,
}

impl DbLock {
    /// Takes the lock without waiting. Fails with a message naming the database when
    /// another process holds it, or when the lock file cannot be created (a read-only
    /// directory).
    pub fn acquire(db: &Path) -> Result<Self, StoreError> {
        let path = beside(db, ".lock");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(PRIVATE_MODE)
            .open(&path)
            .map_err(|e| {
                StoreError::Unavailable(format!(
                    "cannot create the lock file {} beside the database: {e}; printfarmd needs write access to the database's directory (or set database.path to a writable place)",
                    path.display()
                ))
            })?;
        match file.try_lock() {
            Ok(()) => Ok(Self { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::InUse(format!(
                "the database {} is in use by another printfarmd (it holds {})",
                db.display(),
                path.display()
            ))),
            Err(std::fs::TryLockError::Error(e)) => Err(StoreError::Unavailable(format!(
                "cannot lock {}: {e}",
                path.display()
            ))),
        }
    }
}

/// Creates the database file 0600 if it does not exist yet (an existing file keeps the
/// mode its operator gave it).
pub fn create_private(db: &Path) -> Result<(), StoreError> {
    let created = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(PRIVATE_MODE)
        .open(db);
    match created {
        // The umask may have taken bits away from PRIVATE_MODE; set it exactly.
        Ok(f) => f
            .set_permissions(std::fs::Permissions::from_mode(PRIVATE_MODE))
            .map_err(|e| {
                StoreError::Unavailable(format!("cannot set the mode of {}: {e}", db.display()))
            }),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
        // SQLite's own open reports the problem (a missing directory, no permission)
        // with the path; nothing is gained by failing differently here.
        Err(_) => Ok(()),
    }
}

/// The identities of the database file and its WAL as the writer opened them.
#[derive(Clone, Debug)]
pub struct FileIdentity {
    db_path: PathBuf,
    db: (u64, u64),
    wal_path: PathBuf,
    /// None if there was no WAL file when captured (then it is not checked).
    wal: Option<(u64, u64)>,
}

fn identity(p: &Path) -> std::io::Result<(u64, u64)> {
    std::fs::metadata(p).map(|m| (m.dev(), m.ino()))
}

impl FileIdentity {
    /// Captures the identities; call it once the writer has the database open in WAL
    /// mode (the WAL file exists from then on while the writer is open).
    pub fn capture(db: &Path) -> Result<Self, StoreError> {
        let wal_path = beside(db, "-wal");
        Ok(Self {
            db_path: db.to_path_buf(),
            db: identity(db).map_err(|e| {
                StoreError::Unavailable(format!("cannot read {}: {e}", db.display()))
            })?,
            wal: identity(&wal_path).ok(),
            wal_path,
        })
    }

    /// `Err(reason)` when a path no longer names the file the writer has open.
    pub fn check(&self) -> Result<(), String> {
        let moved = |p: &Path, was: (u64, u64)| identity(p).map_or(true, |now| now != was);
        let gone = if moved(&self.db_path, self.db) {
            Some(&self.db_path)
        } else if self.wal.is_some_and(|w| moved(&self.wal_path, w)) {
            Some(&self.wal_path)
        } else {
            None
        };
        match gone {
            None => Ok(()),
            Some(p) => Err(format!(
                "the database file {} was deleted or replaced while printfarmd was running; writes are refused (they would go to the old file and be lost); restart printfarmd (it opens, or creates, the file now at {}; restore a backup there first if you need the history)",
                p.display(),
                self.db_path.display()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_one_database_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("farm.db");
        let first = DbLock::acquire(&db).unwrap();
        let e = DbLock::acquire(&db).unwrap_err().to_string();
        assert!(e.contains("farm.db") && e.contains("in use"), "{e}");
        drop(first);
        DbLock::acquire(&db).unwrap();
    }

    #[test]
    fn identity_notices_a_replaced_file() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("farm.db");
        std::fs::write(&db, b"x").unwrap();
        std::fs::write(beside(&db, "-wal"), b"x").unwrap();
        let id = FileIdentity::capture(&db).unwrap();
        id.check().unwrap();
        // Held open, as the writer holds it, so the new file cannot reuse its inode.
        let _old = File::open(beside(&db, "-wal")).unwrap();
        std::fs::remove_file(beside(&db, "-wal")).unwrap();
        std::fs::write(beside(&db, "-wal"), b"y").unwrap();
        let e = id.check().unwrap_err();
        assert!(e.contains("farm.db-wal") && e.contains("restart"), "{e}");
    }
}
