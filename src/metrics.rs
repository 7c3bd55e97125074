//! The counters and histograms behind `GET /metrics` that cannot be read from existing
//! state at scrape time: jobs created and ended, HTTP requests, database commit
//! latency, backups, WebSocket clients dropped as too slow. One process-wide registry
//! (`global()`), so the few places that count need no handle passed through them.
//!
//! Everything else on `/metrics` (open jobs, printers by state, status lag, clients) is
//! read when scraped: see `api/metrics.rs`.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::domain::Job;
use crate::domain::JobStatus;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabel {
    pub source: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    pub status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteCode {
    pub route: &'static str,
    pub code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    pub route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TypeLabel {
    pub r#type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: &'static str,
}

pub struct Metrics {
    registry: Registry,
    pub jobs_created: Family<SourceLabel, Counter>,
    pub jobs_ended: Family<StatusLabel, Counter>,
    pub http_requests: Family<RouteCode, Counter>,
    pub http_duration: Family<RouteLabel, Histogram>,
    pub db_commit: Histogram,
    pub backups: Family<ResultLabel, Counter>,
    pub ws_dropped: Counter,
    pub payloads_skipped: Family<TypeLabel, Counter>,
    /// Unix time (s) of the newest good backup; 0 when none is known.
    last_backup_unix: AtomicI64,
}

/// Latency buckets from 0.5 ms to ~16 s (×2): an HTTP answer or an fsync on a healthy
/// disk sits at the low end, a stalled disk at the top.
fn latency_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("printfarmd");
        let m = Metrics {
            jobs_created: Family::default(),
            jobs_ended: Family::default(),
            http_requests: Family::default(),
            http_duration: Family::new_with_constructor(latency_buckets),
            db_commit: latency_buckets(),
            backups: Family::default(),
            ws_dropped: Counter::default(),
            payloads_skipped: Family::default(),
            last_backup_unix: AtomicI64::new(0),
            registry: Registry::default(),
        };
        registry.register(
            "jobs_created",
            "Jobs created, by source (auto: a print seen starting; discovered: a print found running at startup; manual: POST /api/v1/jobs)",
            m.jobs_created.clone(),
        );
        registry.register(
            "jobs_ended",
            "Jobs that left running/paused, by the status they ended in",
            m.jobs_ended.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests answered, by route and status code",
            m.http_requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request, by route (a WebSocket counts until its upgrade)",
            m.http_duration.clone(),
        );
        registry.register(
            "db_commit_duration_seconds",
            "Time the job writer's commits took (the fsync included)",
            m.db_commit.clone(),
        );
        registry.register(
            "backups",
            "Backups made (scheduled, API and CLI in this process), by result",
            m.backups.clone(),
        );
        registry.register(
            "websocket_clients_dropped",
            "WebSocket clients closed because they fell too far behind",
            m.ws_dropped.clone(),
        );
        registry.register(
            "printer_payloads_skipped",
            "Printer payloads skipped as malformed, oversized or wrongly typed, by printer type",
            m.payloads_skipped.clone(),
        );
        // Every source and end status present from the start, at 0: a dashboard's
        // rate() needs the series before the first job.
        for source in ["auto", "discovered", "manual"] {
            let _ = m.jobs_created.get_or_create(&SourceLabel { source });
        }
        // Every printer type too, so a type that never sent garbage shows 0, not nothing.
        for kind in crate::domain::PrinterType::ALL {
            let _ = m.payloads_skipped.get_or_create(&TypeLabel {
                r#type: kind.as_str(),
            });
        }
        for s in [
            JobStatus::Completed,
            JobStatus::Failed,
            JobStatus::Cancelled,
            JobStatus::Unknown,
        ] {
            let _ = m
                .jobs_ended
                .get_or_create(&StatusLabel { status: s.as_str() });
        }
        Metrics { registry, ..m }
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// A job was created (called when its event is published).
    pub fn job_created(&self, job: &Job, by_hand: bool) {
        let source = if by_hand {
            "manual"
        } else if job
            .customer_info
            .get("discovered_on_startup")
            .and_then(|v| v.as_bool())
            == Some(true)
        {
            "discovered"
        } else {
            "auto"
        };
        self.jobs_created
            .get_or_create(&SourceLabel { source })
            .inc();
    }

    /// A job left running/paused for `status`.
    pub fn job_ended(&self, status: JobStatus) {
        self.jobs_ended
            .get_or_create(&StatusLabel {
                status: status.as_str(),
            })
            .inc();
    }

    pub fn payload_skipped(&self, kind: crate::domain::PrinterType) {
        self.payloads_skipped
            .get_or_create(&TypeLabel {
                r#type: kind.as_str(),
            })
            .inc();
    }

    pub fn http(&self, route: &'static str, code: u16, took: Duration) {
        self.http_requests
            .get_or_create(&RouteCode { route, code })
            .inc();
        self.http_duration
            .get_or_create(&RouteLabel { route })
            .observe(took.as_secs_f64());
    }

    pub fn backup_done(&self, ok: bool, at_unix: i64) {
        let result = if ok { "ok" } else { "error" };
        self.backups.get_or_create(&ResultLabel { result }).inc();
        if ok {
            self.backup_seen(at_unix);
        }
    }

    /// A good backup exists from `at_unix` (found on disk at startup, or just made).
    pub fn backup_seen(&self, at_unix: i64) {
        self.last_backup_unix.fetch_max(at_unix, Ordering::Relaxed);
    }

    pub fn last_backup_unix(&self) -> Option<i64> {
        Some(self.last_backup_unix.load(Ordering::Relaxed)).filter(|t| *t > 0)
    }
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

pub fn global() -> &'static Metrics {
    &METRICS
}

/// The route label of a request path: the API's route templates, so ids never become
/// label values (the number of series stays bounded whatever clients send).
pub fn route_of(path: &str) -> &'static str {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segs.as_slice() {
        ["api", "v1", "jobs"] => "/api/v1/jobs",
        ["api", "v1", "jobs", "export"] => "/api/v1/jobs/export",
        ["api", "v1", "stats"] => "/api/v1/stats",
        ["api", "v1", "jobs", _] => "/api/v1/jobs/{id}",
        ["api", "v1", "printers"] => "/api/v1/printers",
        ["api", "v1", "printers", _] => "/api/v1/printers/{id}",
        ["api", "v1", "printers", _, "certificate", "reset"] => {
            "/api/v1/printers/{id}/certificate/reset"
        }
        ["api", "v1", "settings"] => "/api/v1/settings",
        ["api", "v1", "health"] => "/api/v1/health",
        ["api", "v1", "backup"] => "/api/v1/backup",
        ["api", ..] => "/api/other",
        ["ws"] => "/ws",
        ["metrics"] => "/metrics",
        _ => "/dashboard",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_templates() {
        assert_eq!(route_of("/api/v1/jobs/job_123"), "/api/v1/jobs/{id}");
        assert_eq!(route_of("/api/v1/jobs"), "/api/v1/jobs");
        assert_eq!(
            route_of("/api/v1/printers/x/certificate/reset"),
            "/api/v1/printers/{id}/certificate/reset"
        );
        assert_eq!(route_of("/api/v1/nope/a/b/c"), "/api/other");
        assert_eq!(route_of("/"), "/dashboard");
        assert_eq!(route_of("/app.js"), "/dashboard");
        assert_eq!(route_of("/metrics"), "/metrics");
    }
}
