//! Settings saved through the API (the top layer of design.md §5).

use rusqlite::{Connection, params};

use super::StoreError;
use crate::config::SettingsPatch;
use crate::time;

/// The saved values, as a patch to lay over the configuration. Keys this version does
/// not know (written by a newer one) are skipped with a warning rather than failing.
pub fn load(conn: &Connection) -> Result<SettingsPatch, StoreError> {
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
    let mut patch = SettingsPatch::default();
    for (k, v) in obj {
        let one = serde_json::Value::Object([(k.clone(), v)].into_iter().collect());
        match serde_json::from_value::<SettingsPatch>(one) {
            Ok(p) if p.validate().is_ok() => patch.merge(&p),
            _ => tracing::warn!(key = %k, "skipping saved setting this version does not accept"),
        }
    }
    Ok(patch)
}

pub fn save(conn: &Connection, patch: &SettingsPatch) -> Result<(), StoreError> {
    let now = time::format(time::now());
    let value = serde_json::to_value(patch).map_err(|e| StoreError::Invalid(e.to_string()))?;
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
