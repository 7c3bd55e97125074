//! The operator's routes: `POST /api/v1/backup` (an online backup into `[backup] dir`)
//! and `GET /metrics` (Prometheus). Both sit behind the API key when `[auth]` is on.
//!
//! `/metrics` reads most of what it reports when scraped — open jobs from the database,
//! printers by connection and state from the live states, clients from the Broadcaster,
//! status counts and lag from `Health`, webhook delivery status from the integrations
//! (`notify/metrics.rs`) — and adds the counters of `metrics.rs`.

use std::collections::BTreeMap;

use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::registry::Registry;
use serde_json::json;
use warp::http::StatusCode;
use warp::{Filter, Rejection, Reply};

use super::{ApiError, AppState, with_state};
use crate::broadcast::ClientCount;
use crate::ops::backups::BackupError;

/// How long a scrape waits for the database and the Broadcaster.
const SCRAPE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// The media type of what `prometheus-client` writes (OpenMetrics text). Prometheus
/// asks for it in its `Accept` header.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The classic Prometheus text format, for every other client (curl, promtool).
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

pub fn routes(st: AppState) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    let backup = warp::path!("api" / "v1" / "backup")
        .and(warp::post())
        .and(with_state(st.clone()))
        .then(backup);
    let metrics = warp::path!("metrics")
        .and(warp::get())
        .and(with_state(st))
        .and(warp::header::optional::<String>("accept"))
        .then(metrics);
    backup.or(metrics)
}

async fn backup(st: AppState) -> warp::reply::Response {
    match st.backups.run_now().await {
        Ok(info) => warp::reply::with_status(
            warp::reply::json(&json!({"status": "success", "backup": info})),
            StatusCode::CREATED,
        )
        .into_response(),
        Err(BackupError::Busy) => ApiError::new(
            StatusCode::CONFLICT,
            "backup_running",
            BackupError::Busy.to_string(),
        )
        .into_response(),
        Err(e @ BackupError::Dir(..)) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "backup_failed",
            e.to_string(),
        )
        .into_response(),
        Err(BackupError::Store(e)) => ApiError::from(e).into_response(),
    }
}

/// Label sets built at scrape time.
type Labels = Vec<(String, String)>;

async fn metrics(st: AppState, accept: Option<String>) -> warp::reply::Response {
    let open = tokio::time::timeout(
        SCRAPE_TIMEOUT,
        st.reads.read(|c| {
            Ok(c.query_row(
                "SELECT count(*) FROM jobs WHERE status IN ('running','paused')",
                [],
                |r| r.get::<_, i64>(0),
            )?)
        }),
    )
    .await;
    // Each webhook's delivery status, from the database (none to read without webhooks).
    let webhooks = if st.integrations.hooks().is_empty() {
        Some(Default::default())
    } else {
        match tokio::time::timeout(SCRAPE_TIMEOUT, st.integrations.statuses()).await {
            Ok(Ok(s)) => Some(s),
            _ => {
                tracing::warn!("/metrics: the webhook statuses could not be read; left out");
                None
            }
        }
    };
    let clients = st
        .broadcaster
        .send(ClientCount)
        .timeout(SCRAPE_TIMEOUT)
        .await
        .ok();

    let mut now = Registry::with_prefix("printfarmd");
    let info = Family::<Labels, Gauge>::default();
    info.get_or_create(&vec![("version".into(), env!("CARGO_PKG_VERSION").into())])
        .set(1);
    now.register("build", "printfarmd's version (always 1)", info);
    now.register(
        "start_time_seconds",
        "Unix time the daemon started",
        ConstGauge::new(st.health.started_at.timestamp()),
    );
    match open {
        Ok(Ok(n)) => now.register("jobs_open", "Jobs running or paused", ConstGauge::new(n)),
        _ => tracing::warn!("/metrics: the database did not answer; jobs_open left out"),
    }
    let (by_conn, by_state) = printer_counts(&st);
    now.register(
        "printers_configured",
        "Printers configured (file and API)",
        ConstGauge::new(i64::try_from(st.printers.len()).unwrap_or(i64::MAX)),
    );
    now.register(
        "printers_by_connection",
        "Printers by connection state",
        by_conn,
    );
    now.register(
        "printers_by_state",
        "Printers by what they are doing",
        by_state,
    );
    let processed = Family::<Labels, Counter>::default();
    for (kind, n) in st.health.statuses_processed_by_type() {
        processed
            .get_or_create(&vec![("type".into(), kind.as_str().into())])
            .inc_by(n);
    }
    now.register(
        "statuses_processed",
        "Printer statuses the job writer processed, by printer type",
        processed,
    );
    now.register(
        "status_lag_seconds",
        "Longest wait of a printer status between its driver and the job writer, last 10-20 s",
        ConstGauge::new(st.health.status_lag_ms() as f64 / 1000.0),
    );
    now.register(
        "db_write_errors",
        "Database writes that failed",
        ConstCounter::new(st.health.write_errors()),
    );
    now.register(
        "db_write_failing",
        "1 while database writes fail (health status degraded)",
        ConstGauge::new(i64::from(st.health.problem().is_some())),
    );
    if let Some(n) = clients {
        now.register(
            "websocket_clients",
            "WebSocket clients connected",
            ConstGauge::new(i64::try_from(n).unwrap_or(i64::MAX)),
        );
    }
    if let Some(t) = crate::metrics::global().last_backup_unix() {
        let age = crate::time::now().timestamp().saturating_sub(t).max(0);
        now.register(
            "backup_age_seconds",
            "Seconds since the newest backup in [backup] dir was made",
            ConstGauge::new(age),
        );
    }

    crate::notify::metrics::register(&mut now, &st.integrations, webhooks.as_ref());

    let mut body = String::new();
    let r = encode_registry(&mut body, crate::metrics::global().registry())
        .and_then(|()| encode_registry(&mut body, &now))
        .and_then(|()| encode_eof(&mut body));
    if r.is_err() {
        return ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "metrics_failed",
            "the metrics could not be encoded; see the daemon's log",
        )
        .into_response();
    }
    if accept.is_some_and(|a| a.contains("application/openmetrics-text")) {
        warp::reply::with_header(body, "content-type", OPENMETRICS).into_response()
    } else {
        warp::reply::with_header(to_prometheus_text(&body), "content-type", PROMETHEUS_TEXT)
            .into_response()
    }
}

/// OpenMetrics text → the classic Prometheus text format (0.0.4). The two differ, for
/// what we write, only in that a counter's family is named with its `_total` suffix in
/// `# HELP` / `# TYPE`, and that there is no `# EOF` (nor `# UNIT`) line.
fn to_prometheus_text(om: &str) -> String {
    let counters: std::collections::HashSet<&str> = om
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(om.len() + 64 * counters.len());
    for line in om.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| line.strip_prefix(p).map(|rest| (p, rest)));
        match meta {
            Some((p, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                if counters.contains(name) {
                    out.push_str(&format!("{p}{name}_total {tail}"));
                } else {
                    out.push_str(line);
                }
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// Printers by connection state and by printer state; configured printers with no
/// status yet count as `connecting` / `unknown`.
fn printer_counts(st: &AppState) -> (Family<Labels, Gauge>, Family<Labels, Gauge>) {
    let label = |v: serde_json::Value| v.as_str().unwrap_or("unknown").to_owned();
    let mut conn: BTreeMap<String, i64> = BTreeMap::new();
    let mut state: BTreeMap<String, i64> = BTreeMap::new();
    let mut seen = 0usize;
    st.live.for_each(|l| {
        seen += 1;
        *conn.entry(label(json!(l.status.connection))).or_default() += 1;
        *state.entry(label(json!(l.status.state))).or_default() += 1;
    });
    let missing = i64::try_from(st.printers.len().saturating_sub(seen)).unwrap_or(0);
    if missing > 0 {
        *conn.entry("connecting".into()).or_default() += missing;
        *state.entry("unknown".into()).or_default() += missing;
    }
    let to_family = |key: &str, m: BTreeMap<String, i64>| {
        let f = Family::<Labels, Gauge>::default();
        for (value, n) in m {
            f.get_or_create(&vec![(key.to_owned(), value)]).set(n);
        }
        f
    };
    (to_family("connection", conn), to_family("state", state))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_names_counters_with_total_and_has_no_eof() {
        let om = "# HELP a_jobs Jobs.\n# TYPE a_jobs counter\na_jobs_total{s=\"x\"} 1\n\
                  # HELP a_open Open.\n# TYPE a_open gauge\na_open 2\n# EOF\n";
        assert_eq!(
            to_prometheus_text(om),
            "# HELP a_jobs_total Jobs.\n# TYPE a_jobs_total counter\na_jobs_total{s=\"x\"} 1\n\
             # HELP a_open Open.\n# TYPE a_open gauge\na_open 2\n"
        );
    }
}
