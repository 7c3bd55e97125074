//! Sends queued deliveries: one HTTP POST each, signed, with a timeout and no redirects;
//! retried with exponential backoff and jitter until delivered or 24 h old.
//!
//! A webhook that fails holds back its other due deliveries until its retry time (one
//! dead receiver is asked once per backoff step, not once per queued event); a success
//! makes its held-back deliveries due at once, so a receiver that comes back gets its
//! backlog promptly.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lc_rs::hmac;
use rand::Rng;
use tokio::sync::Semaphore;

use super::Hooks;
use super::queue::Queue;
use crate::store::webhooks::{self, Delivery, Outcome};
use crate::time;

/// Whole-request timeout (connect, send, response head). A receiver that needs longer to
/// say 2xx is treated as down; ntfy, Discord and Slack answer in well under a second.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// TCP + TLS connect timeout, shorter so an unreachable host fails fast.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Requests in flight at once across all webhooks: enough that one slow receiver does
/// not hold up the others, few enough for a 2-core host.
pub const MAX_IN_FLIGHT: usize = 16;
/// First retry after this; doubled per failed attempt, with jitter.
pub const RETRY_BASE: Duration = Duration::from_secs(2);
/// Longest wait between two attempts, so a receiver back after an outage hears from us
/// within this.
pub const RETRY_MAX: Duration = Duration::from_secs(10 * 60);
/// A delivery still failing this long after its event is dropped and counted.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(24 * 3600);
/// Least wait before the queue is looked at again when nothing woke the deliverer
/// (retries coming due; a due delivery still in flight).
const IDLE_POLL: Duration = Duration::from_secs(1);
/// Longest wait without a wake-up while deliveries are queued: a backstop only. A queue
/// of retries is looked at again when the first comes due; an empty queue only when
/// something is queued (the queue writer wakes the deliverer, no timer), so an idle
/// daemon does not poll its database (issue 21).
const IDLE_MAX: Duration = Duration::from_secs(60);
/// Longest error text kept per webhook.
const MAX_ERROR_LEN: usize = 200;

pub const SIGNATURE_HEADER: &str = "x-printfarmd-signature";
pub const DELIVERY_HEADER: &str = "x-printfarmd-delivery";
pub const EVENT_HEADER: &str = "x-printfarmd-event";

/// `sha256=<hex of HMAC-SHA256(secret, body)>`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let tag = hmac::sign(&key, body);
    let mut hex = String::with_capacity(7 + 64);
    hex.push_str("sha256=");
    for b in tag.as_ref() {
        hex.push_str(&format!("{b:02x}"));
    }
    hex
}

/// The wait before attempt `attempts + 1`: RETRY_BASE · 2^attempts, at most RETRY_MAX,
/// with jitter (between half and all of it) so receivers are not hit in lock-step.
pub fn backoff(attempts: u32) -> Duration {
    let full = RETRY_BASE
        .checked_mul(1u32.checked_shl(attempts.min(20)).unwrap_or(u32::MAX))
        .unwrap_or(RETRY_MAX)
        .min(RETRY_MAX);
    full.mul_f64(rand::rng().random_range(0.5..=1.0))
}

pub fn now_ms() -> i64 {
    time::now().timestamp_millis()
}

pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(CONNECT_TIMEOUT)
        .user_agent(concat!("printfarmd/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot build the webhook HTTP client; using defaults");
            reqwest::Client::new()
        })
}

/// Delivers queued deliveries for as long as the daemon runs.
pub async fn run(queue: Arc<Queue>, hooks: Hooks) {
    let http = http_client();
    let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let in_flight: Arc<Mutex<HashSet<String>>> = Arc::default();
    loop {
        let now = now_ms();
        let busy = in_flight.lock().unwrap_or_else(|e| e.into_inner()).len();
        let limit = MAX_IN_FLIGHT + busy;
        let due = match queue.db(move |c| webhooks::due(c, now, limit)).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the webhook queue");
                Vec::new()
            }
        };
        let mut started = 0;
        for d in due {
            if !in_flight
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(d.id.clone())
            {
                continue;
            }
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            started += 1;
            let (http, hooks, queue, in_flight) = (
                http.clone(),
                hooks.clone(),
                queue.clone(),
                in_flight.clone(),
            );
            tokio::spawn(async move {
                let outcome = attempt(&http, &hooks, &d).await;
                finish(&queue, &d, outcome).await;
                in_flight
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&d.id);
                drop(permit);
                queue.wake_deliverer.notify_one();
            });
        }
        if started == 0 {
            match idle_wait(&queue).await {
                Some(wait) => {
                    let _ = tokio::time::timeout(wait, queue.wake_deliverer.notified()).await;
                }
                // Nothing queued: no timer at all. The queue writer wakes us when it
                // commits a delivery (a `Notify` permit, so a wake that comes first
                // is not lost). Polling an empty queue once a minute cost an idle farm
                // a new blocking thread and a query each time (issue 21).
                None => queue.wake_deliverer.notified().await,
            }
        }
    }
}

/// How long the deliverer may sleep when nothing was started: until the first queued
/// delivery comes due (at least `IDLE_POLL`, at most `IDLE_MAX`); `None` (until woken)
/// when the queue is empty.
async fn idle_wait(queue: &Queue) -> Option<Duration> {
    if queue.queued() == 0 {
        return None;
    }
    Some(match queue.db(webhooks::next_due_ms).await {
        Ok(Some(at)) => Duration::from_millis(at.saturating_sub(now_ms()).max(0) as u64)
            .clamp(IDLE_POLL, IDLE_MAX),
        Ok(None) => IDLE_MAX,
        Err(_) => IDLE_POLL,
    })
}

/// One attempt.
async fn attempt(http: &reqwest::Client, hooks: &Hooks, d: &Delivery) -> Outcome {
    let now = now_ms();
    let age = Duration::from_millis(now.saturating_sub(d.created_ms).max(0) as u64);
    if age > GIVE_UP_AFTER {
        return Outcome::Dropped {
            error: format!("gave up after {} attempts over 24 h", d.attempts),
        };
    }
    let Some(hook) = hooks.get(&d.webhook_id) else {
        return Outcome::Dropped {
            error: "the webhook no longer exists".into(),
        };
    };
    let cfg = &hook.cfg;
    let mut req = http
        .post(cfg.url.expose())
        .header(reqwest::header::CONTENT_TYPE, d.content_type.as_str())
        .header(DELIVERY_HEADER, d.id.as_str())
        .header(EVENT_HEADER, d.event_type.as_str());
    if let Some(secret) = &cfg.secret {
        req = req.header(
            SIGNATURE_HEADER,
            signature(secret.expose(), d.body.as_bytes()),
        );
    }
    if let Ok(serde_json::Value::Object(extra)) = serde_json::from_str(&d.headers) {
        for (k, v) in extra {
            let v: String = v
                .as_str()
                .unwrap_or_default()
                .chars()
                .filter(|c| c.is_ascii() && !c.is_ascii_control())
                .collect();
            req = req.header(k, v);
        }
    }
    let result = req.body(d.body.clone()).send().await;
    let error = match result {
        Ok(r) if r.status().is_success() => return Outcome::Delivered,
        Ok(r) if r.status().is_redirection() => format!(
            "HTTP {}: redirects are not followed; set the webhook's url to the final address",
            r.status().as_u16()
        ),
        Ok(r) => format!("HTTP {}", r.status().as_u16()),
        // Never the URL: it may carry a token.
        Err(e) if e.is_timeout() => format!("no answer within {} s", REQUEST_TIMEOUT.as_secs()),
        Err(e) if e.is_connect() => "could not connect".to_owned(),
        Err(e) => format!("request failed: {}", e.without_url()),
    };
    let mut error = error;
    if error.len() > MAX_ERROR_LEN {
        let cut = (0..=MAX_ERROR_LEN)
            .rev()
            .find(|i| error.is_char_boundary(*i))
            .unwrap_or(0);
        error.truncate(cut);
        error.push('…');
    }
    let next_ms = now.saturating_add(backoff(d.attempts).as_millis() as i64);
    if next_ms.saturating_sub(d.created_ms) > GIVE_UP_AFTER.as_millis() as i64 {
        return Outcome::Dropped {
            error: format!("{error}; gave up after 24 h"),
        };
    }
    Outcome::Retry { next_ms, error }
}

/// Records the outcome, and holds back or releases the webhook's other deliveries.
async fn finish(queue: &Queue, d: &Delivery, outcome: Outcome) {
    let at = time::format(time::now());
    match &outcome {
        Outcome::Delivered => {}
        Outcome::Retry { error, .. } => {
            tracing::info!(webhook = %d.webhook_id, delivery = %d.id, attempts = d.attempts + 1, %error, "webhook delivery failed; will retry")
        }
        Outcome::Dropped { error } => {
            tracing::warn!(webhook = %d.webhook_id, delivery = %d.id, %error, "webhook delivery dropped")
        }
    }
    let removed = !matches!(outcome, Outcome::Retry { .. });
    let (d2, o2) = (d.clone(), outcome.clone());
    let r = queue
        .db(move |c| {
            webhooks::record(c, &d2, &o2, &at)?;
            match &o2 {
                Outcome::Retry { next_ms, .. } => webhooks::hold_back(c, &d2.webhook_id, *next_ms),
                Outcome::Delivered => webhooks::release(c, &d2.webhook_id, now_ms()),
                Outcome::Dropped { .. } => Ok(()),
            }
        })
        .await;
    match r {
        Ok(()) if removed => queue.removed(1),
        Ok(()) => {}
        Err(e) => {
            tracing::warn!(error = %e, webhook = %d.webhook_id, "could not record a webhook delivery's outcome; it may be sent again")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_hex() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[tokio::test]
    async fn a_delivery_older_than_a_day_or_without_its_webhook_is_dropped_unsent() {
        let hooks = Hooks::default();
        let mut d = Delivery {
            id: "d".into(),
            webhook_id: "gone".into(),
            event_type: "job_created".into(),
            body: "{}".into(),
            content_type: "application/json".into(),
            headers: "{}".into(),
            created_ms: now_ms(),
            attempts: 0,
            next_attempt_ms: 0,
        };
        let http = http_client();
        let o = attempt(&http, &hooks, &d).await;
        assert!(
            matches!(&o, Outcome::Dropped { error } if error.contains("no longer exists")),
            "{o:?}"
        );
        d.created_ms = now_ms() - GIVE_UP_AFTER.as_millis() as i64 - 1000;
        d.attempts = 17;
        let o = attempt(&http, &hooks, &d).await;
        assert!(
            matches!(&o, Outcome::Dropped { error } if error.contains("24 h")),
            "{o:?}"
        );
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        for attempts in 0..40 {
            let b = backoff(attempts);
            let full = RETRY_BASE
                .saturating_mul(1 << attempts.min(20))
                .min(RETRY_MAX);
            assert!(b >= full / 2 && b <= full, "{attempts}: {b:?}");
        }
    }
}
