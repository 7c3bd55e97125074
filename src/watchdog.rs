//! Fail loudly: the daemon must not keep answering "ok" once a part it cannot run
//! without has stopped.
//!
//! The JobCreator (the one writer), the Broadcaster and the PrinterManager are actors; a
//! panic in one of them ends its task and closes its mailbox, and the rest of the daemon
//! would go on serving reads, with every write answering 503 forever and `/health` still
//! `ok`. This watchdog looks at their mailboxes at once when anything panics (the panic
//! hook wakes it) and every two seconds besides. When one is closed
//! it marks `/health` `unavailable` (503) with the reason, logs it once at error, waits a
//! short grace period (clients in flight and the service manager's health check see the
//! 503), and then tells `app::run` to stop, which returns an error: the process exits
//! non-zero and systemd (`Restart=on-failure`) starts it again.
//!
//! A panic hook keeps the last panic's message so the reason says what happened. For the
//! tests, debug builds have a fault-injection hook (`fault`) switched on by the
//! `PFTEST_FAULT` environment variable; release builds compile it to `false`, so nothing
//! outside a test can reach it.

use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::health::Health;

/// How often the watchdog looks at the essential actors when nothing has woken it: a
/// panic wakes it (the panic hook), and so does an essential actor that stops
/// ([`look_now`] from its `stopped`); this is the backstop for a stop neither saw.
/// Checking is one atomic load per actor; the cadence is slow so an idle daemon does
/// not wake for it (a 2 s check was a tenth of an idle farm's wake-ups, issue 21).
const CHECK_INTERVAL: Duration = Duration::from_secs(30);
/// After a panic (the panic hook wakes the watchdog at once), how often and for how
/// long it looks: the panicking actor's mailbox closes as its task unwinds, a moment
/// after the hook runs. A dead writer is noticed within milliseconds of its panic.
const AFTER_PANIC_CHECK: Duration = Duration::from_millis(25);
const AFTER_PANIC_FOR: Duration = Duration::from_secs(2);
/// How long `/health` answers 503 before the process stops: long enough for a service
/// manager's or load balancer's check (every few seconds) and for requests in flight to
/// see the reason, short enough that systemd restarts the writer promptly.
pub const FATAL_GRACE: Duration = Duration::from_secs(3);
/// A panic older than this is not taken as the reason an actor stopped.
const PANIC_RECENT: Duration = Duration::from_secs(10);
/// Longest panic message carried into the reason (a log line and a health answer, not
/// a dump).
const MAX_PANIC_CHARS: usize = 300;
/// The test-only variable naming faults to inject (debug builds only; see `fault`).
/// Not `PRINTFARMD_*`: that prefix is the configuration's.
pub const FAULT_ENV: &str = "PFTEST_FAULT";

/// Is the actor still running (its mailbox open)?
pub type Alive = Box<dyn Fn() -> bool + Send + Sync>;

/// The address of an essential actor, as the watchdog checks it.
pub fn alive<A: actix::Actor>(addr: &actix::Addr<A>) -> Alive {
    let addr = addr.clone();
    Box::new(move || addr.connected())
}

/// Starts the watchdog over `(name, alive)` pairs. The receiver resolves with the reason
/// once the daemon must stop (after `FATAL_GRACE`); abort the handle before stopping the
/// actors on purpose.
pub fn spawn(
    health: Arc<Health>,
    essentials: Vec<(&'static str, Alive)>,
) -> (JoinHandle<()>, oneshot::Receiver<String>) {
    install_panic_hook();
    let (tx, rx) = oneshot::channel();
    let task = tokio::spawn(async move {
        let dead = || {
            essentials
                .iter()
                .find(|(_, alive)| !alive())
                .map(|(n, _)| *n)
        };
        let name = 'watch: loop {
            // Armed before the check, so a panic or a stop in between is not missed.
            let woken = LOOK.notified();
            if let Some(name) = dead() {
                break name;
            }
            tokio::select! {
                _ = tokio::time::sleep(CHECK_INTERVAL) => {}
                _ = woken => {
                    let until = Instant::now() + AFTER_PANIC_FOR;
                    while Instant::now() < until {
                        if let Some(name) = dead() {
                            break 'watch name;
                        }
                        tokio::time::sleep(AFTER_PANIC_CHECK).await;
                    }
                }
            }
        };
        let reason = match recent_panic() {
            Some(p) => format!(
                "the {name} stopped unexpectedly ({p}); printfarmd exits so its service manager restarts it"
            ),
            None => format!(
                "the {name} stopped unexpectedly; printfarmd exits so its service manager restarts it"
            ),
        };
        if health.fatal(reason.clone()) {
            tracing::error!(reason = %reason, "fatal: stopping in {FATAL_GRACE:?}");
        }
        tokio::time::sleep(FATAL_GRACE).await;
        let _ = tx.send(reason);
    });
    (task, rx)
}

struct Panic {
    at: Instant,
    text: String,
}

static LAST_PANIC: Mutex<Option<Panic>> = Mutex::new(None);
/// Woken by the panic hook and by [`look_now`]: the watchdog looks at once instead of
/// at its next check.
static LOOK: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// Wakes the watchdog to look at the essential actors at once: called by each of them
/// when it stops. A deliberate stop (the daemon shutting down) aborts the watchdog
/// first, so this only matters when nobody meant it.
pub fn look_now() {
    LOOK.notify_waiters();
}

/// Keeps the last panic's location and message (capped), then runs the previous hook
/// (which prints it as usual).
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let msg = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".into());
            let mut text = match info.location() {
                Some(l) => format!("panicked at {}:{}: {msg}", l.file(), l.line()),
                None => format!("panicked: {msg}"),
            };
            if let Some((i, _)) = text.char_indices().nth(MAX_PANIC_CHARS) {
                text.truncate(i);
                text.push('…');
            }
            if let Ok(mut p) = LAST_PANIC.lock() {
                *p = Some(Panic {
                    at: Instant::now(),
                    text,
                });
            }
            LOOK.notify_waiters();
            previous(info);
        }));
    });
}

fn recent_panic() -> Option<String> {
    let p = LAST_PANIC.lock().ok()?;
    p.as_ref()
        .filter(|p| p.at.elapsed() < PANIC_RECENT)
        .map(|p| p.text.clone())
}

/// Whether the test-only fault `name` is switched on (`PFTEST_FAULT=name[,name]`).
/// Debug builds only: a release build has no way to inject a fault.
#[cfg(debug_assertions)]
pub fn fault(name: &str) -> bool {
    static FAULTS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    FAULTS
        .get_or_init(|| {
            std::env::var(FAULT_ENV)
                .map(|v| v.split(',').map(|s| s.trim().to_owned()).collect())
                .unwrap_or_default()
        })
        .iter()
        .any(|f| f == name)
}

/// Release builds: no fault can be injected.
#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn fault(_name: &str) -> bool {
    false
}
