//! `GET /api/v1/health`: liveness and readiness for a service manager or a load
//! balancer. 200 while the database answers (status `ok`, or `degraded` while writes
//! fail); 503 when it does not.

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
    let clients = st
        .broadcaster
        .send(ClientCount)
        .timeout(CHECK_TIMEOUT)
        .await
        .unwrap_or(0);
    let problem = st.health.problem();
    let status = match (db_ok, &problem) {
        (false, _) => "unavailable",
        (true, Some(_)) => "degraded",
        (true, None) => "ok",
    };
    let code = if db_ok {
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
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": st.health.started.elapsed().as_secs(),
        "started_at": time::format(st.health.started_at),
        "database": {
            "status": if db_ok { "ok" } else { "error" },
            "error": db_error,
            "open_jobs": open_jobs,
            "write_errors": st.health.write_errors(),
            "write_problem": problem,
        },
        "printers": { "configured": st.printers.len(), "connected": connected },
        "websocket_clients": clients,
        "statuses_processed": st.health.statuses_processed(),
        "status_lag_ms": st.health.status_lag_ms(),
    });
    warp::reply::with_status(warp::reply::json(&body), code).into_response()
}
