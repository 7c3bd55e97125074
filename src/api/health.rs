//! `GET /api/v1/health`: liveness and readiness for a service manager or a load
//! balancer. 200 while the database answers (status `ok`, or `degraded` while writes
//! fail or after a database fault that refuses writes until a restart); 503
//! (`unavailable`) when it does not, or when an actor the daemon cannot run without has
//! stopped (the process then exits). `reason` says why whenever the status is not `ok`.

use serde_json::json;
use warp::http::StatusCode;
use warp::{Filter, Rejection, Reply};

use super::auth::{self, Principal};
use super::{ApiError, AppState, with_state};
use crate::broadcast::ClientCount;
use crate::time;

/// How long the health check waits for the database and the Broadcaster.
const CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Runs the access gate itself: without a key (with `[auth]` on) the answer has only
/// `status` and `version`, for service managers and load balancers.
pub fn routes(st: AppState) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    warp::path!("api" / "v1" / "health")
        .and(warp::get())
        .and(auth::verdict(st.access.clone()))
        .and(with_state(st))
        .then(|who: Result<Principal, ApiError>, st| async move {
            match who {
                Ok(who) => health(st, who.is_known()).await,
                Err(e) => e.into_response(),
            }
        })
}

async fn health(st: AppState, full: bool) -> warp::reply::Response {
    let db = tokio::time::timeout(
        CHECK_TIMEOUT,
        st.reads.read(|c| {
            Ok(c.query_row(
                "SELECT count(*) FROM jobs WHERE status IN ('running','paused')",
                [],
                |r| r.get::<_, i64>(0),
            )?)
        }),
    )
    .await;
    let (db_ok, db_error, open_jobs) = match db {
        Ok(Ok(n)) => (true, None, Some(n)),
        Ok(Err(e)) => (false, Some(e.to_string()), None),
        Err(_) => (
            false,
            Some("the database did not answer within 2 s".to_owned()),
            None,
        ),
    };
    let connected = st.live.connected();
    let bad_data = st.live.bad_data_total();
    let clients = st
        .broadcaster
        .send(ClientCount)
        .timeout(CHECK_TIMEOUT)
        .await
        .unwrap_or(0);
    let problem = st.health.problem();
    // Asked now rather than read from a poll: a database deleted or replaced under
    // the daemon shows on the first /health after it happened (two `stat` calls).
    let _ = st.health.check_files();
    let fault = st.health.database_fault_reason();
    let fatal = st.health.fatal_reason();
    // The most telling reason first: the daemon stopping, then a fault that only a
    // restart clears, then the database not answering, then failing writes.
    let reason = fatal
        .as_ref()
        .or(fault.as_ref())
        .map(|p| p.message.clone())
        .or_else(|| db_error.clone())
        .or_else(|| problem.as_ref().map(|p| p.message.clone()));
    let status = if fatal.is_some() || !db_ok {
        "unavailable"
    } else if fault.is_some() || problem.is_some() {
        "degraded"
    } else {
        "ok"
    };
    let code = if status != "unavailable" {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    if !full {
        let body = json!({"status": status, "version": env!("CARGO_PKG_VERSION")});
        return warp::reply::with_status(warp::reply::json(&body), code).into_response();
    }
    let body = json!({
        "status": status,
        "reason": reason,
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": st.health.started.elapsed().as_secs(),
        "started_at": time::format(st.health.started_at),
        "database": {
            "status": if db_ok { "ok" } else { "error" },
            "error": db_error,
            "open_jobs": open_jobs,
            "write_errors": st.health.write_errors(),
            "write_problem": problem,
            "fault": fault,
            "unreadable_values": crate::store::jobs::unreadable_values(),
        },
        "printers": {
            "configured": st.printers.len(),
            "connected": connected,
            // What the drivers refused from printers (malformed answers skipped,
            // values out of range dropped or cut), farm-wide since start.
            "skipped_payloads": bad_data.skipped_payloads,
            "bad_values": bad_data.bad_values,
        },
        "websocket_clients": clients,
        "statuses_processed": st.health.statuses_processed(),
        "status_lag_ms": st.health.status_lag_ms(),
    });
    warp::reply::with_status(warp::reply::json(&body), code).into_response()
}
