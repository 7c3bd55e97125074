//! Slows down key guessing (issue 15): each address may send a few wrong keys a minute
//! (`auth.failed_keys_per_minute`, default 10); after that every request of its that
//! carries a key gets 429 with `Retry-After` until its minute is over, right key or not,
//! so guessing gains nothing. Each address's refusals are logged once per minute (the
//! first one, with the reason; never the key) so a guesser cannot flood the log.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The window failures are counted in.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Addresses tracked at once. Each entry is a few dozen bytes; when full, windows that
/// are over are dropped, then the oldest window, so memory stays bounded whoever calls.
const MAX_ADDRESSES: usize = 4096;

#[derive(Debug)]
struct Window {
    started: Instant,
    failures: u32,
}

#[derive(Debug)]
pub struct Throttle {
    limit: u32,
    windows: Mutex<HashMap<IpAddr, Window>>,
}

/// What `fail` says about a refusal.
#[derive(Debug, PartialEq, Eq)]
pub struct Failure {
    /// The first refusal of this address in its window: log it.
    pub log: bool,
}

impl Throttle {
    pub fn new(limit: u32) -> Self {
        Self {
            limit,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Seconds until this address may try again, if it has used up its failures.
    pub fn blocked(&self, ip: IpAddr, now: Instant) -> Option<u64> {
        let w = self.windows.lock().ok()?;
        let win = w.get(&ip)?;
        let left = WINDOW.checked_sub(now.saturating_duration_since(win.started))?;
        (win.failures >= self.limit && !left.is_zero()).then(|| left.as_secs().max(1))
    }

    /// Counts a wrong key from `ip`.
    pub fn fail(&self, ip: IpAddr, now: Instant) -> Failure {
        let Ok(mut w) = self.windows.lock() else {
            return Failure { log: false };
        };
        let expired = |win: &Window| now.saturating_duration_since(win.started) >= WINDOW;
        if !w.contains_key(&ip) && w.len() >= MAX_ADDRESSES {
            w.retain(|_, win| !expired(win));
            if w.len() >= MAX_ADDRESSES
                && let Some(oldest) = w.iter().min_by_key(|(_, win)| win.started).map(|(k, _)| *k)
            {
                w.remove(&oldest);
            }
        }
        let win = w.entry(ip).or_insert(Window {
            started: now,
            failures: 0,
        });
        if expired(win) {
            *win = Window {
                started: now,
                failures: 0,
            };
        }
        win.failures = win.failures.saturating_add(1);
        Failure {
            log: win.failures == 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_the_limit_until_the_minute_is_over() {
        let t = Throttle::new(3);
        let ip: IpAddr = "10.0.0.7".parse().unwrap();
        let other: IpAddr = "10.0.0.8".parse().unwrap();
        let t0 = Instant::now();
        assert_eq!(t.fail(ip, t0), Failure { log: true });
        assert_eq!(t.fail(ip, t0), Failure { log: false });
        assert_eq!(t.blocked(ip, t0), None);
        t.fail(ip, t0);
        assert_eq!(t.blocked(ip, t0 + Duration::from_secs(10)), Some(50));
        assert_eq!(t.blocked(other, t0), None);
        assert_eq!(t.blocked(ip, t0 + WINDOW), None);
        // A new window starts afresh and is logged again.
        assert_eq!(t.fail(ip, t0 + WINDOW), Failure { log: true });
        assert_eq!(t.blocked(ip, t0 + WINDOW), None);
    }

    #[test]
    fn memory_is_bounded() {
        let t = Throttle::new(1);
        let t0 = Instant::now();
        for i in 0..(MAX_ADDRESSES as u32 + 100) {
            t.fail(IpAddr::from(i.to_be_bytes()), t0);
        }
        assert_eq!(t.windows.lock().unwrap().len(), MAX_ADDRESSES);
    }
}
