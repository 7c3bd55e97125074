//! Settings saved through the API (the top layer of design.md §5).

use rusqlite::{Connection, params};

use super::StoreError;
use crate::config::{SettingsChange, SettingsPatch};
use crate::time;

/// The saved values, as a change to lay over the configuration. Each is parsed as the
/// API parses it (`SettingsChange::parse`): keys this version does not know (written by
/// a newer one) and values it no longer accepts are skipped with a warning rather than
/// failing.
pub fn load(conn: &Connection) -> Result<SettingsChange, StoreError> {
    let mut stmt = conn.prepare("SELECT key, value FROM settings")?;
    let mut obj = serde_json::Map::new();
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
    for row in rows {
        let (k, v) = row?;
        match serde_json::from_str(&v) {
            Ok(v) => {
                obj.insert(k, v);
            }
            Err(e) => tracing::warn!(key = %k, error = %e, "skipping unreadable saved setting"),
        }
    }
    let mut change = SettingsChange::default();
    for (k, v) in obj {
        let one = serde_json::Value::Object([(k.clone(), v)].into_iter().collect());
        match serde_json::from_value::<SettingsPatch>(one).map(SettingsChange::parse) {
            Ok(Ok(c)) => change.merge(&c),
            _ => tracing::warn!(key = %k, "skipping saved setting this version does not accept"),
        }
    }
    Ok(change)
}

pub fn save(conn: &Connection, change: &SettingsChange) -> Result<(), StoreError> {
    let now = time::format(time::now());
    let value =
        serde_json::to_value(change.patch()).map_err(|e| StoreError::Invalid(e.to_string()))?;
    let tx = conn.unchecked_transaction()?;
    if let Some(obj) = value.as_object() {
        for (k, v) in obj {
            tx.execute(
                "INSERT INTO settings (key, value, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                params![k, v.to_string(), now],
            )?;
        }
    }
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_values_come_back_and_a_value_no_longer_accepted_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let c = super::super::open_writer(&dir.path().join("t.db")).unwrap();
        let change: SettingsChange = serde_json::from_str(
            r#"{"job_creation_auto_create": false, "monitoring_interval": 9}"#,
        )
        .unwrap();
        save(&c, &change).unwrap();
        assert_eq!(load(&c).unwrap(), change);
        // Written by hand (or by a version with other bounds): out of range, unknown.
        c.execute_batch(
            "UPDATE settings SET value = '0' WHERE key = 'monitoring_interval';
             INSERT INTO settings (key, value, updated_at) VALUES ('new_key', 'true', '');",
        )
        .unwrap();
        let back = load(&c).unwrap();
        assert_eq!(back.patch().monitoring_interval, None);
        assert_eq!(back.patch().job_creation_auto_create, Some(false));
    }
}
