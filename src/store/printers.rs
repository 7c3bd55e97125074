//! Printers added through the API (persisted so they come back after a restart) and the
//! pinned TLS certificate of every printer.
//!
//! An API-managed printer is stored as its `[[printers]]` entry in JSON, secrets
//! included: the daemon needs them to reconnect after a restart. The database file is
//! therefore as sensitive as daemon.toml (the systemd unit keeps both private).

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Map, Value, json};

use super::StoreError;
use crate::config::{PrinterConfig, ValidPrinter};
use crate::time;

/// The stored form of a printer entry, secrets exposed (for this table only).
pub fn to_stored(p: &PrinterConfig) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), json!(p.id.as_str()));
    m.insert("type".into(), json!(p.kind.as_str()));
    m.insert("host".into(), json!(p.host));
    let mut opt = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            m.insert(k.into(), v);
        }
    };
    opt("name", p.name.as_ref().map(|v| json!(v)));
    opt("port", p.port.map(|v| json!(v)));
    opt("serial", p.serial.as_ref().map(|v| json!(v)));
    opt(
        "access_code",
        p.access_code.as_ref().map(|v| json!(v.expose())),
    );
    opt("username", p.username.as_ref().map(|v| json!(v)));
    opt("password", p.password.as_ref().map(|v| json!(v.expose())));
    opt("api_key", p.api_key.as_ref().map(|v| json!(v.expose())));
    Value::Object(m)
}

/// The printers saved through the API, each parsed as the API parses it: an entry this
/// version cannot read, or no longer accepts, is skipped with an error in the log.
pub fn list_api_printers(conn: &Connection) -> Result<Vec<ValidPrinter>, StoreError> {
    let mut stmt =
        conn.prepare("SELECT id, config FROM printers WHERE managed_by = 'api' ORDER BY id")?;
    let rows = stmt.query_map([], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (id, config) = row?;
        let parsed = config
            .as_deref()
            .map(|c| serde_json::from_str::<PrinterConfig>(c).map_err(|e| e.to_string()));
        match parsed.map(|p| p.and_then(ValidPrinter::parse)) {
            Some(Ok(p)) => out.push(p),
            Some(Err(why)) => {
                tracing::error!(printer_id = %id, %why, "stored printer entry is unreadable or no longer valid; skipping it")
            }
            None => {
                tracing::error!(printer_id = %id, "stored printer entry is empty; skipping it")
            }
        }
    }
    Ok(out)
}

/// Inserts or replaces an API-managed printer.
pub fn save_api_printer(conn: &Connection, p: &ValidPrinter) -> Result<(), StoreError> {
    let now = time::format(time::now());
    conn.execute(
        "INSERT INTO printers (id, managed_by, config, created_at, updated_at) VALUES (?1, 'api', ?2, ?3, ?3)
         ON CONFLICT (id) DO UPDATE SET managed_by = 'api', config = excluded.config, updated_at = excluded.updated_at",
        params![p.id.as_str(), to_stored(p).to_string(), now],
    )?;
    Ok(())
}

/// Removes an API-managed printer (its jobs stay). Returns whether it existed.
pub fn delete_api_printer(conn: &Connection, id: &str) -> Result<bool, StoreError> {
    Ok(conn.execute(
        "DELETE FROM printers WHERE id = ?1 AND managed_by = 'api'",
        params![id],
    )? > 0)
}

/// The pinned certificate fingerprint of a printer, if one was pinned.
pub fn pin(conn: &Connection, id: &str) -> Result<Option<String>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT cert_sha256 FROM printers WHERE id = ?1",
            params![id],
            |r| r.get::<_, Option<String>>(0),
        )
        .optional()?
        .flatten())
}

/// Every stored certificate pin, by printer id.
pub fn all_pins(
    conn: &Connection,
) -> Result<std::collections::HashMap<crate::domain::PrinterId, String>, StoreError> {
    let mut stmt =
        conn.prepare("SELECT id, cert_sha256 FROM printers WHERE cert_sha256 IS NOT NULL")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
    let mut out = std::collections::HashMap::new();
    for row in rows {
        let (id, pin) = row?;
        if let Ok(id) = crate::domain::PrinterId::new(id) {
            out.insert(id, pin);
        }
    }
    Ok(out)
}

/// Pins (or, with `None`, unpins) a printer's certificate. Config-file printers get a
/// row of their own for the pin.
pub fn set_pin(conn: &Connection, id: &str, sha256: Option<&str>) -> Result<(), StoreError> {
    let now = time::format(time::now());
    conn.execute(
        "INSERT INTO printers (id, managed_by, cert_sha256, created_at, updated_at) VALUES (?1, 'config', ?2, ?3, ?3)
         ON CONFLICT (id) DO UPDATE SET cert_sha256 = excluded.cert_sha256, updated_at = excluded.updated_at",
        params![id, sha256, now],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn api_printers_round_trip_with_secrets_and_pins() {
        let dir = tempfile::tempdir().unwrap();
        let c = super::super::open_writer(&dir.path().join("t.db")).unwrap();
        let cfg = Config::from_toml_str(
            "[[printers]]\nid = \"b1\"\ntype = \"bambu\"\nhost = \"h\"\nserial = \"S\"\naccess_code = \"0123\"\n",
        )
        .unwrap();
        save_api_printer(&c, &ValidPrinter::parse(cfg.printers[0].clone()).unwrap()).unwrap();
        let back = list_api_printers(&c).unwrap();
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].access_code.as_ref().unwrap().expose(), "0123");
        assert_eq!(pin(&c, "b1").unwrap(), None);
        set_pin(&c, "b1", Some("abcd")).unwrap();
        assert_eq!(pin(&c, "b1").unwrap().as_deref(), Some("abcd"));
        assert_eq!(
            list_api_printers(&c).unwrap().len(),
            1,
            "pinning keeps the entry"
        );
        set_pin(&c, "cfg_printer", Some("ef01")).unwrap();
        assert_eq!(
            list_api_printers(&c).unwrap().len(),
            1,
            "a config printer's pin row is not an API printer"
        );
        assert!(delete_api_printer(&c, "b1").unwrap());
        assert!(!delete_api_printer(&c, "cfg_printer").unwrap());
    }

    #[test]
    fn a_stored_entry_no_longer_valid_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let c = super::super::open_writer(&dir.path().join("t.db")).unwrap();
        // Readable JSON, but a bambu printer without its access code.
        c.execute(
            "INSERT INTO printers (id, managed_by, config, created_at, updated_at)
             VALUES ('b2', 'api', '{\"id\":\"b2\",\"type\":\"bambu\",\"host\":\"h\",\"serial\":\"S\"}', '', '')",
            [],
        )
        .unwrap();
        assert!(list_api_printers(&c).unwrap().is_empty());
    }
}
