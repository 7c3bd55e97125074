//! `printfarmd key add|list|revoke`: API keys from the command line, on the daemon's
//! database. It opens the database directly (not through any lock a running daemon
//! holds): the daemon may be running, and WAL mode lets the two write in turn. A running
//! daemon sees a new or revoked key at its next request, since it reads keys per request.

use std::path::Path;

use anyhow::Context;

use super::keys;
use crate::config::Role;
use crate::store::{self, keys as db};
use crate::time::{self, Timestamp};

/// Reads `--expires`: an RFC 3339 time, or a span from now (`90d`, `12h`, `30m`).
pub fn parse_expiry(s: &str, now: Timestamp) -> Result<Timestamp, String> {
    let s = s.trim();
    let span = s
        .strip_suffix('d')
        .map(|n| (n, 86_400))
        .or_else(|| s.strip_suffix('h').map(|n| (n, 3_600)))
        .or_else(|| s.strip_suffix('m').map(|n| (n, 60)));
    let t = match span.and_then(|(n, unit)| n.parse::<i64>().ok().map(|n| (n, unit))) {
        Some((n, unit)) => n
            .checked_mul(unit)
            .and_then(chrono::TimeDelta::try_seconds)
            .and_then(|d| now.checked_add_signed(d))
            .ok_or_else(|| format!("--expires {s:?} is too far away"))?,
        None => time::parse(s).map_err(|_| {
            format!("--expires {s:?} is neither a span (90d, 12h, 30m) nor an RFC 3339 time")
        })?,
    };
    keys::check_expiry(t, now)
}

pub fn add(db_path: &Path, role: Role, name: &str, expires: Option<&str>) -> anyhow::Result<()> {
    let name = keys::check_name(name).map_err(anyhow::Error::msg)?;
    let now = time::now();
    let expires_at = expires
        .map(|e| parse_expiry(e, now))
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let conn = open(db_path)?;
    let install = keys::install_key(&conn)?;
    let k = keys::generate(&install, &name, role, expires_at, now)?;
    db::insert(&conn, &k.row)?;
    println!("{}", k.key);
    eprintln!(
        "Created {role} key {} ({name}{}). This is the only time the key is shown: store it now.\n\
         Send it as `Authorization: Bearer <key>` or `X-Api-Key: <key>`; revoke it with\n\
         `printfarmd key revoke {}`.",
        k.row.id,
        k.row
            .expires_at
            .as_deref()
            .map(|e| format!(", expires {e}"))
            .unwrap_or_default(),
        k.row.id,
    );
    Ok(())
}

pub fn list(db_path: &Path) -> anyhow::Result<()> {
    let conn = open(db_path)?;
    let rows = db::list(&conn)?;
    if rows.is_empty() {
        println!("no keys; make one with `printfarmd key add --role viewer --name <name>`");
        return Ok(());
    }
    let now = time::now();
    println!(
        "{:<16}  {:<8}  {:<7}  {:<24}  {:<24}  {:<24}  name",
        "id", "role", "status", "created", "last used", "expires"
    );
    for r in rows {
        let v = crate::api::keys::KeyView::new(r, now);
        let dash = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
        println!(
            "{:<16}  {:<8}  {:<7}  {:<24}  {:<24}  {:<24}  {}",
            v.id,
            v.role,
            v.status,
            v.created_at,
            dash(&v.last_used_at),
            dash(&v.expires_at),
            v.name
        );
    }
    Ok(())
}

pub fn revoke(db_path: &Path, id: &str) -> anyhow::Result<()> {
    let conn = open(db_path)?;
    match db::revoke(&conn, id, &time::format(time::now()))? {
        Some(r) => {
            println!(
                "{id}: revoked ({}); requests with it are refused from now on",
                r.name
            );
            Ok(())
        }
        None => anyhow::bail!("no key {id:?}; `printfarmd key list` shows the ids"),
    }
}

fn open(db_path: &Path) -> anyhow::Result<rusqlite::Connection> {
    store::open_writer(db_path)
        .with_context(|| format!("opening the database {}", db_path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_spans_and_times() {
        let now = time::parse("2026-01-01T00:00:00Z").unwrap();
        assert_eq!(
            time::format(parse_expiry("90d", now).unwrap()),
            "2026-04-01T00:00:00.000Z"
        );
        assert!(parse_expiry("2026-01-02T00:00:00Z", now).is_ok());
        for bad in [
            "0d",
            "-1d",
            "99999999999999d",
            "soon",
            "2025-01-01T00:00:00Z",
        ] {
            assert!(parse_expiry(bad, now).is_err(), "{bad}");
        }
    }
}
