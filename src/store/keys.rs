//! API keys in the database (issue 15): rows of `api_keys` and the per-install HMAC
//! secret. Only SQL lives here; making and checking keys is `api::auth::keys`.
//!
//! Both the daemon and `printfarmd key add|list|revoke` (a second process, possibly
//! while the daemon runs) use these functions on their own connection; WAL mode and
//! the busy timeout let the two write one after the other.

use rusqlite::{Connection, OptionalExtension, params};

use super::StoreError;
use crate::config::Role;

/// Bytes of the per-install HMAC secret (the output size of SHA-256).
pub const SECRET_LEN: usize = 32;

/// One key as stored: never the key itself, only its HMAC tag.
#[derive(Debug, Clone)]
pub struct KeyRow {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub tag: Vec<u8>,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
}

/// The install's HMAC secret, made (from `fresh`) and stored the first time. Two
/// processes racing here both end up with the one that was stored first.
pub fn install_secret(
    conn: &Connection,
    fresh: impl FnOnce() -> Result<[u8; SECRET_LEN], StoreError>,
) -> Result<Vec<u8>, StoreError> {
    let read = |c: &Connection| {
        c.query_row("SELECT secret FROM auth_secret WHERE id = 1", [], |r| {
            r.get::<_, Vec<u8>>(0)
        })
        .optional()
    };
    if let Some(s) = read(conn)? {
        return Ok(s);
    }
    let s = fresh()?;
    conn.execute(
        "INSERT OR IGNORE INTO auth_secret (id, secret) VALUES (1, ?1)",
        params![s.as_slice()],
    )?;
    read(conn)?.ok_or_else(|| StoreError::Unavailable("the key secret was not stored".into()))
}

pub fn insert(conn: &Connection, k: &KeyRow) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO api_keys (id, name, role, tag, created_at, last_used_at, expires_at, revoked_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            k.id,
            k.name,
            k.role.as_str(),
            k.tag,
            k.created_at,
            k.last_used_at,
            k.expires_at,
            k.revoked_at
        ],
    )?;
    Ok(())
}

const COLUMNS: &str =
    "id, name, role, tag, created_at, last_used_at, expires_at, revoked_at FROM api_keys";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<KeyRow> {
    let role: String = r.get(2)?;
    Ok(KeyRow {
        id: r.get(0)?,
        name: r.get(1)?,
        // The table's CHECK allows only the three names.
        role: Role::parse(&role).unwrap_or(Role::Viewer),
        tag: r.get(3)?,
        created_at: r.get(4)?,
        last_used_at: r.get(5)?,
        expires_at: r.get(6)?,
        revoked_at: r.get(7)?,
    })
}

pub fn find(conn: &Connection, id: &str) -> Result<Option<KeyRow>, StoreError> {
    Ok(conn
        .query_row(&format!("SELECT {COLUMNS} WHERE id = ?1"), [id], row)
        .optional()?)
}

/// Every key, newest first.
pub fn list(conn: &Connection) -> Result<Vec<KeyRow>, StoreError> {
    let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} ORDER BY created_at DESC, id"))?;
    let rows = stmt.query_map([], row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Number of keys that are neither revoked nor expired at `now`.
pub fn count_usable(conn: &Connection, now: &str) -> Result<i64, StoreError> {
    Ok(conn.query_row(
        "SELECT count(*) FROM api_keys WHERE revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?1)",
        [now],
        |r| r.get(0),
    )?)
}

/// Marks a key revoked (the first revocation's time is kept). None if there is no such
/// key.
pub fn revoke(conn: &Connection, id: &str, now: &str) -> Result<Option<KeyRow>, StoreError> {
    conn.execute(
        "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
        params![id, now],
    )?;
    find(conn, id)
}

pub fn touch(conn: &Connection, id: &str, now: &str) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE api_keys SET last_used_at = ?2 WHERE id = ?1",
        params![id, now],
    )?;
    Ok(())
}
