//! `[retention] keep_days`: at start and then hourly, finished jobs that ended more
//! than `keep_days` ago are deleted, a small batch per message to the JobCreator (the
//! one writer), so printers' statuses are handled between batches. Open jobs are
//! never deleted. Deletions are not sent as WebSocket events (they can be thousands at
//! once); a dashboard re-reading the list sees them gone.

use std::time::Duration;

use actix::Addr;

use crate::jobs::JobCreator;
use crate::jobs::maintenance::PruneFinished;
use crate::store::retention::BATCH;

/// How often the sweep runs.
const EVERY: Duration = Duration::from_secs(3600);
/// Pause between two batches, so statuses queued behind a batch go first.
const BETWEEN_BATCHES: Duration = Duration::from_millis(50);
/// How long one batch may take before the sweep gives up until its next run.
const BATCH_TIMEOUT: Duration = Duration::from_secs(30);

/// The cutoff for `keep_days`, as the database's timestamp text; None if out of range.
pub fn cutoff(now: crate::time::Timestamp, keep_days: u32) -> Option<String> {
    let age = chrono::Duration::try_days(i64::from(keep_days))?;
    now.checked_sub_signed(age).map(crate::time::format)
}

/// Runs the sweep forever (spawned by `app::run` when `keep_days` is set).
pub fn spawn(creator: Addr<JobCreator>, keep_days: u32) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let Some(before) = cutoff(crate::time::now(), keep_days) else {
                tracing::error!(
                    keep_days,
                    "retention.keep_days is out of range; no jobs deleted"
                );
                return;
            };
            match sweep(&creator, &before).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(deleted = n, keep_days, "old finished jobs deleted"),
                Err(e) => {
                    tracing::warn!(error = %e, "retention sweep stopped; it runs again in an hour")
                }
            }
        }
    });
}

async fn sweep(creator: &Addr<JobCreator>, before: &str) -> Result<usize, String> {
    let mut total = 0usize;
    loop {
        let n = creator
            .send(PruneFinished {
                before: before.to_owned(),
                limit: BATCH,
            })
            .timeout(BATCH_TIMEOUT)
            .await
            .map_err(|e| format!("the job writer did not answer: {e}"))?
            .map_err(|e| e.to_string())?;
        total = total.saturating_add(n);
        if n < BATCH as usize {
            return Ok(total);
        }
        tokio::time::sleep(BETWEEN_BATCHES).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutoff_is_keep_days_back_and_never_panics() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-03-10T12:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(cutoff(now, 9).unwrap(), "2026-03-01T12:00:00.000Z");
        // The largest keep_days the configuration accepts still gives a date.
        let far = cutoff(now, crate::config::ops::MAX_KEEP_DAYS).unwrap();
        assert!(far.starts_with("1926-"), "{far}");
    }
}
