//! systemd's notify protocol (`Type=notify`): READY=1 once the database is open and the
//! API listens, STATUS= lines (printers connected, jobs open), WATCHDOG=1 keep-alives
//! and STOPPING=1. Without `NOTIFY_SOCKET` in the environment nothing is sent.
//!
//! A keep-alive is sent only after the JobCreator answered a `Ping` in time: the one
//! thing that must never wedge is the job writer, and if it does systemd restarts the
//! daemon (`WatchdogSec=` in the unit). The keep-alive goes every half of
//! `WATCHDOG_USEC`, the ping gets a quarter, so one slow answer skips one keep-alive and
//! two in a row let the watchdog fire.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix::Addr;
use sd_notify::NotifyState;

use crate::broadcast::view::LiveStates;
use crate::jobs::JobCreator;
use crate::jobs::maintenance::Ping;
use crate::registry::PrinterRegistry;

/// Shortest keep-alive period accepted from `WATCHDOG_USEC` (a smaller value would
/// make the daemon ping its writer in a busy loop).
const MIN_PERIOD: Duration = Duration::from_millis(200);
/// Longest keep-alive period (a huge `WATCHDOG_USEC` is a typo; pinging at least this
/// often costs nothing).
const MAX_PERIOD: Duration = Duration::from_secs(600);
/// How often STATUS= is refreshed when there is no watchdog.
const STATUS_EVERY: Duration = Duration::from_secs(10);
/// How long a status-only ping may take (no watchdog to feed).
const STATUS_PING_TIMEOUT: Duration = Duration::from_secs(5);

/// Set by `stopping`: the keep-alive loop ends, so no STATUS= overwrites "stopping".
static STOPPING: AtomicBool = AtomicBool::new(false);

fn enabled() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some_and(|s| !s.is_empty())
}

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}

fn status_line(live: &LiveStates, printers: &PrinterRegistry, open_jobs: Option<usize>) -> String {
    let jobs = open_jobs.map_or_else(
        || "job writer not answering".to_owned(),
        |n| format!("{n} jobs open"),
    );
    format!(
        "{} of {} printers connected, {jobs}",
        live.connected(),
        printers.len()
    )
}

/// The keep-alive period for a `WATCHDOG_USEC` duration: half of it, bounded.
pub fn keepalive_period(watchdog: Duration) -> Duration {
    (watchdog / 2).clamp(MIN_PERIOD, MAX_PERIOD)
}

/// READY=1 with a first STATUS=, then the watchdog / status loop. Call once the
/// database is open and the listener accepts. Does nothing without `NOTIFY_SOCKET`.
pub fn ready(creator: Addr<JobCreator>, live: LiveStates, printers: PrinterRegistry) {
    if !enabled() {
        return;
    }
    let line = status_line(&live, &printers, None).replace("job writer not answering", "starting");
    send(&[NotifyState::Ready, NotifyState::Status(&line)]);
    let watchdog = sd_notify::watchdog_enabled();
    let (period, ping_timeout) = match watchdog {
        Some(w) => {
            let p = keepalive_period(w);
            tracing::info!(watchdog = ?w, keepalive = ?p, "systemd watchdog on");
            (p, p / 2)
        }
        None => (STATUS_EVERY, STATUS_PING_TIMEOUT),
    };
    tokio::spawn(async move {
        let mut every = tokio::time::interval(period);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut was_late = false;
        loop {
            every.tick().await;
            if STOPPING.load(Ordering::Relaxed) {
                break;
            }
            let answer = tokio::time::timeout(ping_timeout, creator.send(Ping)).await;
            match answer {
                Ok(Ok(open)) => {
                    if was_late {
                        tracing::info!("the job writer answers again");
                        was_late = false;
                    }
                    let line = status_line(&live, &printers, Some(open));
                    if watchdog.is_some() {
                        send(&[NotifyState::Watchdog, NotifyState::Status(&line)]);
                    } else {
                        send(&[NotifyState::Status(&line)]);
                    }
                }
                Ok(Err(_)) => break, // the writer stopped: shutting down
                Err(_) => {
                    if !was_late {
                        tracing::error!(timeout = ?ping_timeout, "the job writer did not answer; withholding the watchdog keep-alive (systemd restarts the daemon if this lasts)");
                        was_late = true;
                    }
                    send(&[NotifyState::Status(&status_line(&live, &printers, None))]);
                }
            }
        }
    });
}

/// STOPPING=1: the daemon is shutting down (no more keep-alives needed).
pub fn stopping() {
    STOPPING.store(true, Ordering::Relaxed);
    if enabled() {
        send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keepalive_is_half_the_watchdog_within_bounds() {
        assert_eq!(
            keepalive_period(Duration::from_secs(30)),
            Duration::from_secs(15)
        );
        assert_eq!(keepalive_period(Duration::from_micros(1)), MIN_PERIOD);
        assert_eq!(
            keepalive_period(Duration::from_secs(u32::MAX as u64)),
            MAX_PERIOD
        );
    }
}
