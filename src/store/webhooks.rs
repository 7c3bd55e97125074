//! The webhook tables (migration 0003): webhooks added through the API, the queue of
//! deliveries, and each webhook's delivery status. Plain functions over a connection;
//! the notify queue writer (`src/notify/queue.rs`) owns the connection that calls them.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::StoreError;

/// One queued delivery: a rendered request for one webhook.
#[derive(Clone, Debug, PartialEq)]
pub struct Delivery {
    /// The idempotency key (`X-Printfarmd-Delivery`), the same on every attempt.
    pub id: String,
    pub webhook_id: String,
    pub event_type: String,
    pub body: String,
    pub content_type: String,
    /// Extra headers the format needs (ntfy's `Title`), as a JSON object of strings.
    pub headers: String,
    pub created_ms: i64,
    pub attempts: u32,
    pub next_attempt_ms: i64,
}

/// What a webhook's deliveries came to.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct HookStatus {
    pub queued: u64,
    pub last_success_at: Option<String>,
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
    pub delivered: u64,
    pub failed_attempts: u64,
    pub dropped: u64,
}

/// Adds deliveries, all or none.
pub fn enqueue(conn: &Connection, items: &[Delivery]) -> Result<(), StoreError> {
    let tx = conn.unchecked_transaction()?;
    {
        let mut st = tx.prepare_cached(
            "INSERT OR IGNORE INTO webhook_deliveries (id, webhook_id, event_type, body, \
             content_type, headers, created_ms, attempts, next_attempt_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?;
        for d in items {
            st.execute(params![
                d.id,
                d.webhook_id,
                d.event_type,
                d.body,
                d.content_type,
                d.headers,
                d.created_ms,
                d.attempts,
                d.next_attempt_ms
            ])?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// Up to `limit` deliveries due at `now_ms`, oldest due first.
pub fn due(conn: &Connection, now_ms: i64, limit: usize) -> Result<Vec<Delivery>, StoreError> {
    let mut st = conn.prepare_cached(
        "SELECT id, webhook_id, event_type, body, content_type, headers, created_ms, attempts, \
         next_attempt_ms FROM webhook_deliveries WHERE next_attempt_ms <= ?1 \
         ORDER BY next_attempt_ms, created_ms LIMIT ?2",
    )?;
    let rows = st
        .query_map(params![now_ms, limit as i64], |r| {
            Ok(Delivery {
                id: r.get(0)?,
                webhook_id: r.get(1)?,
                event_type: r.get(2)?,
                body: r.get(3)?,
                content_type: r.get(4)?,
                headers: r.get(5)?,
                created_ms: r.get(6)?,
                attempts: r.get::<_, i64>(7)?.clamp(0, u32::MAX as i64) as u32,
                next_attempt_ms: r.get(8)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// When the next delivery is due, if any is queued.
pub fn next_due_ms(conn: &Connection) -> Result<Option<i64>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT min(next_attempt_ms) FROM webhook_deliveries",
            [],
            |r| r.get::<_, Option<i64>>(0),
        )
        .optional()?
        .flatten())
}

/// The outcome of one attempt.
#[derive(Clone, Debug)]
pub enum Outcome {
    Delivered,
    /// Failed; try again at `next_ms`.
    Retry {
        next_ms: i64,
        error: String,
    },
    /// Failed for good (too old, or its webhook is gone): removed and counted.
    Dropped {
        error: String,
    },
}

/// Records an attempt's outcome: the queue row and the webhook's status in one commit.
pub fn record(
    conn: &Connection,
    d: &Delivery,
    outcome: &Outcome,
    at: &str,
) -> Result<(), StoreError> {
    let tx = conn.unchecked_transaction()?;
    tx.execute(
        "INSERT OR IGNORE INTO webhook_status (webhook_id) VALUES (?1)",
        params![d.webhook_id],
    )?;
    match outcome {
        Outcome::Delivered => {
            tx.execute(
                "DELETE FROM webhook_deliveries WHERE id = ?1",
                params![d.id],
            )?;
            tx.execute(
                "UPDATE webhook_status SET last_success_at = ?2, delivered = delivered + 1 \
                 WHERE webhook_id = ?1",
                params![d.webhook_id, at],
            )?;
        }
        Outcome::Retry { next_ms, error } => {
            tx.execute(
                "UPDATE webhook_deliveries SET attempts = attempts + 1, next_attempt_ms = ?2 \
                 WHERE id = ?1",
                params![d.id, next_ms],
            )?;
            tx.execute(
                "UPDATE webhook_status SET last_error = ?2, last_error_at = ?3, \
                 failed_attempts = failed_attempts + 1 WHERE webhook_id = ?1",
                params![d.webhook_id, error, at],
            )?;
        }
        Outcome::Dropped { error } => {
            tx.execute(
                "DELETE FROM webhook_deliveries WHERE id = ?1",
                params![d.id],
            )?;
            tx.execute(
                "UPDATE webhook_status SET last_error = ?2, last_error_at = ?3, \
                 dropped = dropped + 1 WHERE webhook_id = ?1",
                params![d.webhook_id, error, at],
            )?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// A webhook just failed: its other deliveries due before `until` wait until then.
pub fn hold_back(conn: &Connection, webhook_id: &str, until: i64) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE webhook_deliveries SET next_attempt_ms = ?2 \
         WHERE webhook_id = ?1 AND next_attempt_ms < ?2",
        params![webhook_id, until],
    )?;
    Ok(())
}

/// A webhook just took a delivery: its held-back deliveries are due now.
pub fn release(conn: &Connection, webhook_id: &str, now: i64) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE webhook_deliveries SET next_attempt_ms = ?2 \
         WHERE webhook_id = ?1 AND next_attempt_ms > ?2",
        params![webhook_id, now],
    )?;
    Ok(())
}

/// Every webhook's status, with its queued count.
pub fn statuses(conn: &Connection) -> Result<HashMap<String, HookStatus>, StoreError> {
    let mut out: HashMap<String, HookStatus> = HashMap::new();
    let mut st = conn.prepare_cached(
        "SELECT webhook_id, last_success_at, last_error, last_error_at, delivered, \
         failed_attempts, dropped FROM webhook_status",
    )?;
    let rows = st.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            HookStatus {
                queued: 0,
                last_success_at: r.get(1)?,
                last_error: r.get(2)?,
                last_error_at: r.get(3)?,
                delivered: r.get::<_, i64>(4)?.max(0) as u64,
                failed_attempts: r.get::<_, i64>(5)?.max(0) as u64,
                dropped: r.get::<_, i64>(6)?.max(0) as u64,
            },
        ))
    })?;
    for row in rows {
        let (id, s) = row?;
        out.insert(id, s);
    }
    let mut st = conn.prepare_cached(
        "SELECT webhook_id, count(*) FROM webhook_deliveries GROUP BY webhook_id",
    )?;
    let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
    for row in rows {
        let (id, n) = row?;
        out.entry(id).or_default().queued = n.max(0) as u64;
    }
    Ok(out)
}

/// How many deliveries are queued in all.
pub fn queued_total(conn: &Connection) -> Result<u64, StoreError> {
    let n: i64 = conn.query_row("SELECT count(*) FROM webhook_deliveries", [], |r| r.get(0))?;
    Ok(n.max(0) as u64)
}

/// Webhooks added through the API: `(id, config JSON)`, oldest first.
pub fn list_api(conn: &Connection) -> Result<Vec<(String, String)>, StoreError> {
    let mut st = conn.prepare_cached("SELECT id, config FROM webhooks ORDER BY created_at, id")?;
    let rows = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

pub fn insert_api(conn: &Connection, id: &str, config: &str, at: &str) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO webhooks (id, config, created_at) VALUES (?1, ?2, ?3)",
        params![id, config, at],
    )
    .map_err(|e| match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::ConstraintViolation) => {
            StoreError::Conflict(format!("a webhook with id {id} already exists"))
        }
        _ => e.into(),
    })?;
    Ok(())
}

/// Removes an API webhook, its queued deliveries and its status. Returns how many
/// deliveries were dropped.
pub fn delete_api(conn: &Connection, id: &str) -> Result<u64, StoreError> {
    let tx = conn.unchecked_transaction()?;
    let n = tx.execute("DELETE FROM webhooks WHERE id = ?1", params![id])?;
    if n == 0 {
        return Err(StoreError::Invalid(format!("webhook {id} not found")));
    }
    let dropped = tx.execute(
        "DELETE FROM webhook_deliveries WHERE webhook_id = ?1",
        params![id],
    )?;
    tx.execute(
        "DELETE FROM webhook_status WHERE webhook_id = ?1",
        params![id],
    )?;
    tx.commit()?;
    Ok(dropped as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let conn = super::super::open_writer(&dir.path().join("t.db")).unwrap();
        (dir, conn)
    }

    fn delivery(id: &str, due: i64) -> Delivery {
        Delivery {
            id: id.into(),
            webhook_id: "w".into(),
            event_type: "job_created".into(),
            body: "{}".into(),
            content_type: "application/json".into(),
            headers: "{}".into(),
            created_ms: 0,
            attempts: 0,
            next_attempt_ms: due,
        }
    }

    #[test]
    fn a_delivery_stays_queued_until_it_is_delivered_or_dropped() {
        let (_d, c) = db();
        enqueue(
            &c,
            &[delivery("a", 10), delivery("b", 20), delivery("c", 30)],
        )
        .unwrap();
        // Enqueued twice (a replay): still one row.
        enqueue(&c, &[delivery("a", 10)]).unwrap();
        assert_eq!(queued_total(&c).unwrap(), 3);
        let due_now: Vec<_> = due(&c, 20, 10).unwrap().into_iter().map(|d| d.id).collect();
        assert_eq!(due_now, ["a", "b"]);
        record(&c, &delivery("a", 10), &Outcome::Delivered, "t1").unwrap();
        let retry = Outcome::Retry {
            next_ms: 100,
            error: "HTTP 500".into(),
        };
        record(&c, &delivery("b", 20), &retry, "t2").unwrap();
        let dropped = Outcome::Dropped {
            error: "too old".into(),
        };
        record(&c, &delivery("c", 30), &dropped, "t3").unwrap();
        assert_eq!(next_due_ms(&c).unwrap(), Some(100));
        assert_eq!(due(&c, 100, 10).unwrap()[0].attempts, 1);
        let s = &statuses(&c).unwrap()["w"];
        assert_eq!(
            (s.queued, s.delivered, s.failed_attempts, s.dropped),
            (1, 1, 1, 1)
        );
        assert_eq!(s.last_success_at.as_deref(), Some("t1"));
        assert_eq!(s.last_error.as_deref(), Some("too old"));
    }
}
