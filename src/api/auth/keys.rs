//! Making and checking API keys (issue 15).
//!
//! A key made by `printfarmd key add` or `POST /api/v1/keys` is `pfd_<id>_<secret>`:
//! 8 random bytes of id and 32 of secret, in hex. The database keeps the id, the role
//! and an HMAC-SHA256 tag of the whole key under a random per-install secret, never the
//! key. Checking a key looks its row up by id (not by anything secret) and verifies the
//! tag in constant time, so neither the lookup nor the comparison tells a guesser how
//! close a guess was. Keys from the config file are checked the same way against tags
//! made at start under a per-process secret (equal-length, constant-time comparisons).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_lc_rs::hmac;
use rusqlite::Connection;

use crate::config::{ConfigKey, Role};
use crate::store::keys::{self as db, KeyRow, SECRET_LEN};
use crate::store::{ReadPool, StoreError};
use crate::time::{self, Timestamp};

/// Every made key starts with this, so a leaked key is recognisable in a scan.
pub const KEY_PREFIX: &str = "pfd_";
/// Random bytes in a key's id (16 hex characters): unique without coordination.
const ID_BYTES: usize = 8;
/// Random bytes in a key's secret: 256 bits, beyond any guessing.
const KEY_SECRET_BYTES: usize = 32;
/// Longest key looked at; anything longer is refused before any work is done on it.
pub const MAX_KEY_LEN: usize = 512;
/// Longest key name (a label for people: "wallboard", "ci-pipeline").
pub const MAX_NAME_LEN: usize = 64;
/// Latest expiry accepted: ten years. Further is a key that never expires, say so.
pub const MAX_EXPIRY: chrono::TimeDelta = chrono::TimeDelta::days(3650);
/// `last_used_at` is written at most this often per key: one write per request would
/// put a disk sync behind every authenticated call.
const LAST_USED_RESOLUTION: Duration = Duration::from_secs(60);
/// Keys whose last use is remembered in memory for the above; a map bounded by the
/// number of keys in practice, cleared if it ever reaches this.
const MAX_TOUCH_ENTRIES: usize = 10_000;

/// Who a valid key belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub role: Role,
    /// The database key's id; None for a key from the config file.
    pub key_id: Option<String>,
    pub name: String,
}

/// Why a key was refused; the message is safe to show (it never repeats the key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Unknown,
    Expired,
    Revoked,
}

impl Refusal {
    pub fn message(self) -> &'static str {
        match self {
            Refusal::Unknown => {
                "the API key is not valid; check it, or ask an admin for one (printfarmd key add)"
            }
            Refusal::Expired => "the API key has expired; ask an admin for a new one",
            Refusal::Revoked => "the API key was revoked; ask an admin for a new one",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Unknown => "unknown key",
            Refusal::Expired => "expired key",
            Refusal::Revoked => "revoked key",
        }
    }
}

/// A freshly made key: the row to store and the key to show once.
pub struct NewKey {
    pub row: KeyRow,
    pub key: String,
}

fn random<const N: usize>() -> Result<[u8; N], StoreError> {
    let mut b = [0u8; N];
    aws_lc_rs::rand::fill(&mut b)
        .map_err(|_| StoreError::Unavailable("the system random generator failed".into()))?;
    Ok(b)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The install's HMAC key, made on first use.
pub fn install_key(conn: &Connection) -> Result<hmac::Key, StoreError> {
    let secret = db::install_secret(conn, random::<SECRET_LEN>)?;
    Ok(hmac::Key::new(hmac::HMAC_SHA256, &secret))
}

/// Checks a name, role-free. Names are labels: 1–64 printable characters.
pub fn check_name(name: &str) -> Result<String, String> {
    let n = name.trim();
    if n.is_empty() || n.chars().count() > MAX_NAME_LEN || n.chars().any(char::is_control) {
        return Err(format!(
            "a key's name must be 1 to {MAX_NAME_LEN} printable characters, like \"wallboard\""
        ));
    }
    Ok(n.to_owned())
}

/// Checks an expiry: in the future and at most ten years away.
pub fn check_expiry(t: Timestamp, now: Timestamp) -> Result<Timestamp, String> {
    if t <= now {
        return Err("the expiry must be in the future".into());
    }
    if now.checked_add_signed(MAX_EXPIRY).is_none_or(|max| t > max) {
        return Err(
            "the expiry must be at most 10 years away; leave it out for a key that does not expire"
                .into(),
        );
    }
    Ok(t)
}

/// Makes a key and its row (not yet stored).
pub fn generate(
    install: &hmac::Key,
    name: &str,
    role: Role,
    expires_at: Option<Timestamp>,
    now: Timestamp,
) -> Result<NewKey, StoreError> {
    let id = hex(&random::<ID_BYTES>()?);
    let key = format!("{KEY_PREFIX}{id}_{}", hex(&random::<KEY_SECRET_BYTES>()?));
    let tag = hmac::sign(install, key.as_bytes()).as_ref().to_vec();
    Ok(NewKey {
        row: KeyRow {
            id,
            name: name.to_owned(),
            role,
            tag,
            created_at: time::format(now),
            last_used_at: None,
            expires_at: expires_at.map(time::format),
            revoked_at: None,
        },
        key,
    })
}

/// The id inside a made key, if `key` has that shape.
fn key_id(key: &str) -> Option<&str> {
    let rest = key.strip_prefix(KEY_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let is_hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    (is_hex(id, ID_BYTES * 2) && is_hex(secret, KEY_SECRET_BYTES * 2)).then_some(id)
}

/// Verifies a key against the database's row for its id (no row: Unknown).
pub fn verify_row(
    install: &hmac::Key,
    key: &str,
    row: Option<&KeyRow>,
    now: Timestamp,
) -> Result<Identity, Refusal> {
    let row = row.ok_or(Refusal::Unknown)?;
    hmac::verify(install, key.as_bytes(), &row.tag).map_err(|_| Refusal::Unknown)?;
    if row.revoked_at.is_some() {
        return Err(Refusal::Revoked);
    }
    if let Some(exp) = &row.expires_at
        && time::parse(exp).map_or(true, |e| e <= now)
    {
        return Err(Refusal::Expired);
    }
    Ok(Identity {
        role: row.role,
        key_id: Some(row.id.clone()),
        name: row.name.clone(),
    })
}

/// Every key the daemon accepts: the config file's and the database's.
pub struct Keyring {
    process: hmac::Key,
    config: Vec<(hmac::Tag, Role)>,
    install: hmac::Key,
    reads: ReadPool,
    /// For key changes through the API and `last_used_at`; a connection of its own
    /// (the JobCreator's is busy with jobs), like the `key` command's.
    writer: std::sync::Arc<Mutex<Connection>>,
    touched: Mutex<HashMap<String, Instant>>,
}

impl Keyring {
    pub fn open(db_path: &Path, reads: ReadPool, config: &[ConfigKey]) -> Result<Self, StoreError> {
        let conn = crate::store::open_writer(db_path)?;
        let install = install_key(&conn)?;
        let process = hmac::Key::new(hmac::HMAC_SHA256, &random::<SECRET_LEN>()?);
        let config = config
            .iter()
            .map(|k| {
                (
                    hmac::sign(&process, k.secret().expose().as_bytes()),
                    k.role(),
                )
            })
            .collect();
        Ok(Self {
            process,
            config,
            install,
            reads,
            writer: std::sync::Arc::new(Mutex::new(conn)),
            touched: Mutex::new(HashMap::new()),
        })
    }

    pub fn has_config_keys(&self) -> bool {
        !self.config.is_empty()
    }

    /// Checks a key. Errors are the database's (the caller answers 503).
    pub async fn check(&self, key: &str) -> Result<Result<Identity, Refusal>, StoreError> {
        if key.len() > MAX_KEY_LEN {
            return Ok(Err(Refusal::Unknown));
        }
        // Every config key is compared, match or not, so the time taken does not say
        // which one matched.
        let mut found = None;
        for (i, (tag, role)) in self.config.iter().enumerate() {
            if hmac::verify(&self.process, key.as_bytes(), tag.as_ref()).is_ok() {
                found = found.or(Some(Identity {
                    role: *role,
                    key_id: None,
                    name: format!("config key {}", i + 1),
                }));
            }
        }
        if let Some(id) = found {
            return Ok(Ok(id));
        }
        let Some(id) = key_id(key).map(str::to_owned) else {
            return Ok(Err(Refusal::Unknown));
        };
        let row = self.reads.read(move |c| db::find(c, &id)).await?;
        let verdict = verify_row(&self.install, key, row.as_ref(), time::now());
        if let Ok(Identity {
            key_id: Some(id), ..
        }) = &verdict
        {
            self.touch(id);
        }
        Ok(verdict)
    }

    /// Records a key's use, at most once a minute per key, off the async threads.
    fn touch(&self, id: &str) {
        let now = Instant::now();
        {
            let Ok(mut t) = self.touched.lock() else {
                return;
            };
            if t.get(id)
                .is_some_and(|last| now.duration_since(*last) < LAST_USED_RESOLUTION)
            {
                return;
            }
            if t.len() >= MAX_TOUCH_ENTRIES {
                t.clear();
            }
            t.insert(id.to_owned(), now);
        }
        let (writer, id) = (self.writer.clone(), id.to_owned());
        tokio::task::spawn_blocking(move || {
            let at = time::format(time::now());
            if let Ok(c) = writer.lock()
                && let Err(e) = db::touch(&c, &id, &at)
            {
                tracing::warn!(key_id = %id, error = %e, "could not record a key's last use");
            }
        });
    }

    /// Runs `f` on the key writer connection without blocking the async threads.
    pub async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection, &hmac::Key) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let writer = self.writer.clone();
        let install = self.install.clone();
        tokio::task::spawn_blocking(move || {
            let c = writer
                .lock()
                .map_err(|_| StoreError::Unavailable("the key writer failed earlier".into()))?;
            f(&c, &install)
        })
        .await
        .map_err(|e| StoreError::Unavailable(e.to_string()))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> hmac::Key {
        hmac::Key::new(hmac::HMAC_SHA256, b"0123456789abcdef0123456789abcdef")
    }

    #[test]
    fn made_keys_verify_and_nothing_else_does() {
        let now = time::now();
        let k = generate(&key(), "wall", Role::Viewer, None, now).unwrap();
        assert_eq!(key_id(&k.key), Some(k.row.id.as_str()));
        assert!(
            !k.row
                .tag
                .windows(8)
                .any(|w| k.key.as_bytes().windows(8).any(|x| x == w))
        );
        let ok = verify_row(&key(), &k.key, Some(&k.row), now).unwrap();
        assert_eq!(
            (ok.role, ok.key_id.as_deref()),
            (Role::Viewer, Some(k.row.id.as_str()))
        );
        // One character off, or another install's secret: refused.
        let mut wrong = k.key.clone();
        let last = if wrong.ends_with('0') { "1" } else { "0" };
        wrong.replace_range(wrong.len() - 1.., last);
        assert_eq!(
            verify_row(&key(), &wrong, Some(&k.row), now),
            Err(Refusal::Unknown)
        );
        let other = hmac::Key::new(hmac::HMAC_SHA256, b"another install's secret........");
        assert_eq!(
            verify_row(&other, &k.key, Some(&k.row), now),
            Err(Refusal::Unknown)
        );
        assert_eq!(verify_row(&key(), &k.key, None, now), Err(Refusal::Unknown));
    }

    #[test]
    fn revoked_and_expired_keys_are_told_apart() {
        let now = time::now();
        let exp = now + chrono::TimeDelta::seconds(30);
        let mut k = generate(&key(), "ci", Role::Operator, Some(exp), now).unwrap();
        assert!(verify_row(&key(), &k.key, Some(&k.row), now).is_ok());
        let later = now + chrono::TimeDelta::seconds(31);
        assert_eq!(
            verify_row(&key(), &k.key, Some(&k.row), later),
            Err(Refusal::Expired)
        );
        k.row.revoked_at = Some(time::format(now));
        assert_eq!(
            verify_row(&key(), &k.key, Some(&k.row), now),
            Err(Refusal::Revoked)
        );
    }

    #[test]
    fn names_and_expiries_are_bounded() {
        let now = time::now();
        assert!(check_name("  wallboard ").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name(&"x".repeat(65)).is_err());
        assert!(check_name("a\nb").is_err());
        assert!(check_expiry(now, now).is_err());
        assert!(check_expiry(now + chrono::TimeDelta::days(3651), now).is_err());
        assert!(check_expiry(now + chrono::TimeDelta::days(30), now).is_ok());
        assert!(key_id("pfd_zz_00").is_none());
    }
}
