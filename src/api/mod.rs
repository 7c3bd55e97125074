//! The warp server's routes: REST under `/api/v1`, the event stream at `/ws`, and the
//! dashboard at `/`.
//!
//! Handlers reach the actors through `Addr::send(..).timeout(..)` (writes through
//! `write::call`, so a write answered 503 is never committed later) and read the
//! history through the read-only pool, so nothing here blocks a tokio worker.

pub mod auth;
pub mod body;
mod dashboard;
pub mod error;
pub mod export;
mod health;
mod jobs;
pub mod keys;
pub mod openapi;
mod openapi_admin;
mod openapi_paths;
mod openapi_schemas;
mod ops;
mod printer_control;
mod printers;
pub mod serve;
mod settings;
mod stats;
mod webhooks;
mod write;
mod ws;

use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use tokio::sync::watch;
use warp::{Filter, Rejection, Reply};

use crate::broadcast::Broadcaster;
use crate::broadcast::view::LiveStates;
use crate::config::Settings;
use crate::health::Health;
use crate::jobs::JobCreator;
use crate::printers::manager::PrinterManager;
use crate::registry::PrinterRegistry;
use crate::store::ReadPool;

pub use error::ApiError;

/// How long a handler waits for an actor's answer before answering 503. A write takes
/// milliseconds; seconds mean the disk has stalled, and the client should hear so.
pub const ACTOR_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything a handler may use.
#[derive(Clone)]
pub struct AppState {
    pub creator: Addr<JobCreator>,
    pub manager: Addr<PrinterManager>,
    pub live: LiveStates,
    pub broadcaster: Addr<Broadcaster>,
    pub reads: ReadPool,
    pub settings: watch::Receiver<Settings>,
    pub printers: PrinterRegistry,
    pub health: Arc<Health>,
    pub access: Arc<auth::Access>,
    pub integrations: crate::notify::Integrations,
    pub backups: Arc<crate::ops::backups::Backups>,
}

fn with_state(
    st: AppState,
) -> impl Filter<Extract = (AppState,), Error = std::convert::Infallible> + Clone {
    warp::any().map(move || st.clone())
}

/// All routes, with errors turned into the JSON error shape. Every request passes the
/// access gate (auth/mod.rs) first; health and who-am-I run it themselves, since their
/// answer depends on who asks.
pub fn routes(
    st: AppState,
) -> impl Filter<Extract = (impl Reply,), Error = std::convert::Infallible> + Clone {
    let access = st.access.clone();
    let gated = auth::gate(access.clone()).and(
        // The export before the jobs: `/jobs/export` is not a job id.
        export::routes(st.clone())
            .or(jobs::routes(st.clone()))
            .or(stats::routes(st.clone()))
            .or(printers::routes(st.clone()))
            .or(settings::routes(st.clone()))
            .or(keys::routes(st.clone()))
            .or(webhooks::routes(st.clone()))
            .or(ops::routes(st.clone()))
            .or(ws::route(st.clone()))
            .or(openapi::route())
            .or(dashboard::routes()),
    );
    // The dashboard sets its own cache headers (ETag + revalidate); everything else,
    // errors included, must never be cached.
    let all = auth::preflight(access.clone())
        .or(health::routes(st.clone()))
        .or(keys::whoami(st))
        .or(gated)
        .recover(error::recover)
        .with(warp::reply::with::default_header(
            "cache-control",
            "no-store",
        ))
        .with(warp::log::custom(|info| {
            crate::metrics::global().http(
                crate::metrics::route_of(info.path()),
                info.status().as_u16(),
                info.elapsed(),
            )
        }));
    auth::cors_origin(access)
        .and(warp::path::full())
        .and(all)
        .map(|origin, path: warp::path::FullPath, reply: _| {
            let r = openapi::with_allow(Reply::into_response(reply), path.as_str());
            auth::origin::add_cors(r, origin)
        })
}

pub(crate) fn reject_err(e: impl Into<ApiError>) -> Rejection {
    e.into().reject()
}
