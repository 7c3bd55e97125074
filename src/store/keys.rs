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

#[cfg(test)]
mod tests {
    use super::*;

    /// A real database file (WAL needs one), removed with the returned directory.
    fn db() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let c = crate::store::open_writer(&dir.path().join("k.db")).unwrap();
        (dir, c)
    }

    fn row(id: &str, created: &str) -> KeyRow {
        KeyRow {
            id: id.into(),
            name: format!("n-{id}"),
            role: Role::Operator,
            tag: vec![1; 32],
            created_at: created.into(),
            last_used_at: None,
            expires_at: None,
            revoked_at: None,
        }
    }

    #[test]
    fn the_install_secret_is_made_once() {
        let (_dir, c) = db();
        let first = install_secret(&c, || Ok([7; SECRET_LEN])).unwrap();
        let again = install_secret(&c, || panic!("a second secret was made")).unwrap();
        assert_eq!((first.clone(), again), (vec![7; SECRET_LEN], first));
    }

    #[test]
    fn rows_round_trip_and_revocation_keeps_its_first_time() {
        let (_dir, c) = db();
        insert(&c, &row("a", "2026-01-01T00:00:00.000Z")).unwrap();
        insert(&c, &row("b", "2026-01-02T00:00:00.000Z")).unwrap();
        assert!(insert(&c, &row("a", "2026-01-03T00:00:00.000Z")).is_err());
        let ids: Vec<_> = list(&c).unwrap().into_iter().map(|r| r.id).collect();
        assert_eq!(ids, ["b", "a"], "newest first");
        let now = "2026-01-05T00:00:00.000Z";
        assert_eq!(count_usable(&c, now).unwrap(), 2);
        let r = revoke(&c, "a", now).unwrap().unwrap();
        assert_eq!(
            (r.role, r.revoked_at.as_deref()),
            (Role::Operator, Some(now))
        );
        let r = revoke(&c, "a", "2026-02-01T00:00:00.000Z")
            .unwrap()
            .unwrap();
        assert_eq!(r.revoked_at.as_deref(), Some(now));
        assert!(revoke(&c, "nope", now).unwrap().is_none());
        assert_eq!(count_usable(&c, now).unwrap(), 1);
        touch(&c, "b", now).unwrap();
        assert_eq!(
            find(&c, "b").unwrap().unwrap().last_used_at.as_deref(),
            Some(now)
        );
    }
}
