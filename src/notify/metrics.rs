//! The integrations' series on `/metrics` (issue 19): each webhook's delivery status —
//! deliveries queued, delivered, failed attempts, given up, the last success and the
//! last error — and the tap's and MQTT's counters. Webhooks are labelled by id only: the
//! URL (often with a token in its path) and the secret never reach a label, and the
//! number of series is bounded by `config::MAX_WEBHOOKS`.
//!
//! Read when scraped: the statuses from the database (so they survive restarts, as in
//! `GET /api/v1/webhooks`), the counters from memory.

use std::collections::HashMap;

use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::registry::Registry;

use super::Integrations;
use crate::store::webhooks::HookStatus;

/// `[("webhook", id)]`.
type Labels = Vec<(String, String)>;

/// Unix seconds of a stored RFC 3339 time; `None` when absent or unreadable.
fn unix_s(t: Option<&str>) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(t?)
        .ok()
        .map(|d| d.timestamp())
}

/// Adds the integrations' series to `reg`. `statuses` is `None` when the database did
/// not answer in time: the per-webhook series are left out then (a gap in a graph, not
/// a wrong value); the in-memory counters are there either way.
pub fn register(
    reg: &mut Registry,
    integrations: &Integrations,
    statuses: Option<&HashMap<String, HookStatus>>,
) {
    let hooks = integrations.hooks();
    let c = integrations.counters();
    reg.register(
        "webhooks",
        "Webhooks in force (config file and API)",
        ConstGauge::new(i64::try_from(hooks.len()).unwrap_or(i64::MAX)),
    );
    reg.register(
        "webhook_deliveries_dropped",
        "Webhook deliveries dropped before they reached the on-disk queue (overflow, queue full, write failure)",
        ConstCounter::new(c.dropped_deliveries),
    );
    reg.register(
        "integrations_tap_overflows",
        "Times the webhook/MQTT tap fell behind the event stream and lost events",
        ConstCounter::new(c.tap_overflows),
    );
    if let Some(connected) = c.mqtt_connected {
        reg.register(
            "mqtt_connected",
            "1 while the MQTT broker is connected",
            ConstGauge::new(i64::from(connected)),
        );
        reg.register(
            "mqtt_published",
            "MQTT messages handed to the broker connection",
            ConstCounter::new(c.mqtt_published),
        );
        reg.register(
            "mqtt_events_dropped",
            "Job events not published to MQTT because the broker was away too long",
            ConstCounter::new(c.mqtt_dropped_events),
        );
    }
    let Some(statuses) = statuses else {
        return;
    };
    let queued = Family::<Labels, Gauge>::default();
    let delivered = Family::<Labels, Counter>::default();
    let failed = Family::<Labels, Counter>::default();
    let dropped = Family::<Labels, Counter>::default();
    let last_ok = Family::<Labels, Gauge>::default();
    let last_err = Family::<Labels, Gauge>::default();
    for h in &hooks {
        let s = statuses.get(&h.cfg.id).cloned().unwrap_or_default();
        let l = vec![("webhook".to_owned(), h.cfg.id.clone())];
        queued
            .get_or_create(&l)
            .set(i64::try_from(s.queued).unwrap_or(i64::MAX));
        // Kept in the database, so read as they stand: counters that only grow (a
        // webhook deleted and added again under its id starts again from 0, as a
        // restarted process's counters do).
        delivered.get_or_create(&l).inc_by(s.delivered);
        failed.get_or_create(&l).inc_by(s.failed_attempts);
        dropped.get_or_create(&l).inc_by(s.dropped);
        if let Some(t) = unix_s(s.last_success_at.as_deref()) {
            last_ok.get_or_create(&l).set(t);
        }
        if let Some(t) = unix_s(s.last_error_at.as_deref()) {
            last_err.get_or_create(&l).set(t);
        }
    }
    reg.register(
        "webhook_queued",
        "Deliveries of the webhook waiting in the on-disk queue",
        queued,
    );
    reg.register(
        "webhook_delivered",
        "Deliveries the webhook's receiver accepted",
        delivered,
    );
    reg.register(
        "webhook_failed_attempts",
        "Delivery attempts of the webhook that failed (each is retried until 24 h old)",
        failed,
    );
    reg.register(
        "webhook_dropped",
        "Deliveries of the webhook given up on (24 h old)",
        dropped,
    );
    reg.register(
        "webhook_last_success_timestamp_seconds",
        "Unix time of the webhook's last accepted delivery (absent until there is one)",
        last_ok,
    );
    reg.register(
        "webhook_last_error_timestamp_seconds",
        "Unix time of the webhook's last failed attempt (absent until there is one)",
        last_err,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_times_read_as_unix_seconds() {
        assert_eq!(unix_s(Some("1970-01-01T00:01:40Z")), Some(100));
        assert_eq!(
            unix_s(Some("2026-12-04T18:00:00.123Z")),
            Some(1_796_407_200)
        );
        assert_eq!(unix_s(Some("yesterday")), None);
        assert_eq!(unix_s(None), None);
    }
}
