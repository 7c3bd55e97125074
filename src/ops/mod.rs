//! The service side of the daemon, for the farm host that runs it for months: systemd
//! readiness, status and watchdog (`notify`), log formats (`logging`), online and
//! scheduled backups (`backups`) and the retention sweep (`retention`). `/metrics`
//! lives in `api/metrics.rs` and `metrics.rs`.

pub mod backups;
pub mod logging;
pub mod notify;
pub mod retention;

use std::sync::Arc;
use std::time::Duration;

use actix::Addr;

use crate::config::Config;
use crate::jobs::JobCreator;

/// Starts the scheduled backups and the retention sweep, if configured.
pub fn start_background(
    config: &Config,
    backups: &Arc<backups::Backups>,
    creator: &Addr<JobCreator>,
) {
    let hours = config.backup.interval_hours;
    if hours > 0 {
        let every = Duration::from_secs(u64::from(hours) * 3600);
        tracing::info!(every_hours = hours, dir = %backups.dir().display(), keep = config.backup.keep, "scheduled backups on");
        backups.clone().schedule(every);
    }
    if let Some(days) = config.retention.keep_days {
        tracing::info!(
            keep_days = days,
            "retention on: older finished jobs are deleted"
        );
        retention::spawn(creator.clone(), days);
    }
}
