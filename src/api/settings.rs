//! `GET` and `PUT /api/v1/settings`: the seed's flat object and its exact reply.

use serde_json::json;
use warp::{Filter, Rejection, Reply};

use super::{ApiError, AppState, body, reject_err, with_state};
use crate::config::{SettingsChange, SettingsPatch};
use crate::setup::UpdateSettings;

pub fn routes(st: AppState) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    let get = warp::path!("api" / "v1" / "settings")
        .and(warp::get())
        .and(with_state(st.clone()))
        .map(|st: AppState| warp::reply::json(&*st.settings.borrow()));
    let put = warp::path!("api" / "v1" / "settings")
        .and(warp::put())
        .and(with_state(st))
        .and(body::json::<SettingsPatch>())
        .and_then(put_settings);
    get.or(put)
}

async fn put_settings(st: AppState, patch: SettingsPatch) -> Result<impl Reply, Rejection> {
    if patch.is_empty() {
        return Err(ApiError::unprocessable(
            "the body names no setting; known keys: job_creation_auto_create, monitoring_interval",
        )
        .reject());
    }
    let change = SettingsChange::parse(patch).map_err(|m| ApiError::unprocessable(m).reject())?;
    super::write::call(&st.creator, UpdateSettings(change))
        .await
        .map_err(reject_err)?
        .map_err(reject_err)?;
    Ok(warp::reply::json(
        &json!({"status": "success", "message": "Settings updated successfully"}),
    ))
}
