//! `/api/v1/webhooks`: list the webhooks with their delivery status, add one, delete one
//! (README "Integrations"). A webhook's secret is never returned and its URL only as
//! scheme, host and port (Discord and Slack URLs carry their token in the path).

use serde::Serialize;
use warp::http::StatusCode;
use warp::{Filter, Rejection, Reply};

use super::{ApiError, AppState, body, with_state};
use crate::config::notify::{Format, WebhookConfig};
use crate::notify::{Counters, Hook, HookError, redacted_url};
use crate::store::webhooks::HookStatus;

pub fn routes(st: AppState) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    let list = warp::path!("api" / "v1" / "webhooks")
        .and(warp::get())
        .and(with_state(st.clone()))
        .and_then(list);
    let create = warp::path!("api" / "v1" / "webhooks")
        .and(warp::post())
        .and(with_state(st.clone()))
        .and(body::json::<WebhookConfig>())
        .and_then(create);
    let delete = warp::path!("api" / "v1" / "webhooks" / String)
        .and(warp::delete())
        .and(with_state(st))
        .and_then(delete);
    list.or(create).or(delete)
}

#[derive(Serialize)]
struct View<'a> {
    id: &'a str,
    name: Option<&'a str>,
    url: String,
    events: Vec<&'static str>,
    statuses: Vec<&'static str>,
    printer_ids: Vec<&'a str>,
    format: Format,
    has_secret: bool,
    managed_by: &'static str,
    status: HookStatus,
}

fn view(h: &Hook, status: HookStatus) -> View<'_> {
    let c = &h.cfg;
    View {
        id: &c.id,
        name: c.name.as_deref(),
        url: redacted_url(c.url.expose()),
        events: c.kinds().iter().map(|k| k.as_str()).collect(),
        statuses: c.statuses.iter().map(|s| s.as_str()).collect(),
        printer_ids: c.printer_ids.iter().map(|p| p.as_str()).collect(),
        format: c.format,
        has_secret: c.secret.is_some(),
        managed_by: h.managed_by,
        status,
    }
}

#[derive(Serialize)]
struct List<'a> {
    webhooks: Vec<View<'a>>,
    total_count: usize,
    #[serde(flatten)]
    counters: Counters,
}

fn hook_error(e: HookError) -> Rejection {
    let msg = e.to_string();
    match e {
        HookError::Invalid(_) => ApiError::unprocessable(msg),
        HookError::Conflict(_) => ApiError::new(StatusCode::CONFLICT, "conflict", msg),
        HookError::NotFound(_) => ApiError::new(StatusCode::NOT_FOUND, "webhook_not_found", msg),
        HookError::InConfig(_) => ApiError::new(StatusCode::CONFLICT, "managed_by_config", msg),
        HookError::Store(e) => e.into(),
    }
    .reject()
}

async fn list(st: AppState) -> Result<impl Reply, Rejection> {
    let hooks = st.integrations.hooks();
    let mut statuses = st
        .integrations
        .statuses()
        .await
        .map_err(|e| ApiError::from(e).reject())?;
    let webhooks: Vec<View> = hooks
        .iter()
        .map(|h| view(h, statuses.remove(&h.cfg.id).unwrap_or_default()))
        .collect();
    Ok(warp::reply::json(&List {
        total_count: webhooks.len(),
        webhooks,
        counters: st.integrations.counters(),
    }))
}

async fn create(st: AppState, cfg: WebhookConfig) -> Result<impl Reply, Rejection> {
    let hook = st.integrations.add(cfg).await.map_err(hook_error)?;
    Ok(warp::reply::with_status(
        warp::reply::json(&view(&hook, HookStatus::default())),
        StatusCode::CREATED,
    ))
}

async fn delete(id: String, st: AppState) -> Result<impl Reply, Rejection> {
    st.integrations.remove(&id).await.map_err(hook_error)?;
    Ok(StatusCode::NO_CONTENT)
}
