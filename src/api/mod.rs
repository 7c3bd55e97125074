//! The warp server's routes: REST under `/api/v1`, the event stream at `/ws`, and the
//! dashboard at `/`.
//!
//! Handlers reach the actors through `Addr::send(..).timeout(..)` and read the history
//! through the read-only pool, so nothing here blocks a tokio worker.

pub mod auth;
pub mod body;
mod dashboard;
pub mod error;
mod health;
mod jobs;
mod ops;
mod printers;
mod settings;
mod ws;

use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use tokio::sync::watch;
use warp::{Filter, Rejection, Reply};

use crate::broadcast::Broadcaster;
use crate::config::{AuthConfig, Settings};
use crate::health::Health;
use crate::jobs::JobCreator;
use crate::printers::manager::PrinterManager;
use crate::printers::view::LiveStates;
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
    pub auth: Arc<AuthConfig>,
    pub backups: Arc<crate::ops::backups::Backups>,
}

fn with_state(
    st: AppState,
) -> impl Filter<Extract = (AppState,), Error = std::convert::Infallible> + Clone {
    warp::any().map(move || st.clone())
}

/// All routes, with errors turned into the JSON error shape.
pub fn routes(
    st: AppState,
) -> impl Filter<Extract = (impl Reply,), Error = std::convert::Infallible> + Clone {
    let api = auth::require(st.auth.clone()).and(
        jobs::routes(st.clone())
            .or(printers::routes(st.clone()))
            .or(settings::routes(st.clone()))
            .or(health::routes(st.clone()))
            .or(ops::routes(st.clone())),
    );
    let ws = ws::route(st.clone());
    // The dashboard sets its own cache headers (ETag + revalidate); everything else,
    // errors included, must never be cached.
    api.or(ws)
        .or(dashboard::routes())
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
        }))
}

pub(crate) fn reject_err(e: impl Into<ApiError>) -> Rejection {
    e.into().reject()
}
