//! `/api/v1/keys` (admin): list, make and revoke API keys; and `GET /api/v1/auth`, which
//! tells any caller its own role (the dashboard shows it and hides what the role cannot
//! do). A key's secret is in the answer to `POST` only, once; the list never has it.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use warp::http::StatusCode;
use warp::{Filter, Rejection, Reply};

use super::auth::{Principal, keys as kr};
use super::{ApiError, AppState, body, reject_err, with_state};
use crate::config::Role;
use crate::store::keys::{self as db, KeyRow};
use crate::time;

/// A key as listed: everything but the secret and its tag.
#[derive(Serialize, ToSchema)]
#[schema(as = Key)]
pub struct KeyView {
    pub id: String,
    pub name: String,
    #[schema(value_type = super::openapi_schemas::Role)]
    pub role: Role,
    /// `active`, `expired` or `revoked`.
    pub status: &'static str,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub last_used_at: Option<String>,
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
    #[schema(format = DateTime)]
    pub revoked_at: Option<String>,
}

/// `GET /api/v1/keys`.
#[derive(Serialize, ToSchema)]
pub(super) struct KeyList {
    total_count: usize,
    keys: Vec<KeyView>,
}

impl KeyView {
    pub fn new(r: KeyRow, now: time::Timestamp) -> Self {
        let expired = r
            .expires_at
            .as_deref()
            .is_some_and(|e| time::parse(e).map_or(true, |e| e <= now));
        Self {
            status: if r.revoked_at.is_some() {
                "revoked"
            } else if expired {
                "expired"
            } else {
                "active"
            },
            id: r.id,
            name: r.name,
            role: r.role,
            created_at: r.created_at,
            last_used_at: r.last_used_at,
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
        }
    }
}

/// A key to make.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = NewKey)]
pub(super) struct NewKeyBody {
    /// 1–64 printable characters.
    #[schema(pattern = r"\S", max_length = 64)]
    name: String,
    #[schema(value_type = super::openapi_schemas::Role)]
    role: Role,
    /// When it stops working; in the future.
    #[serde(default)]
    #[schema(format = DateTime)]
    expires_at: Option<String>,
}

pub fn routes(st: AppState) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    let list = warp::path!("api" / "v1" / "keys")
        .and(warp::get())
        .and(with_state(st.clone()))
        .and_then(list);
    let create = warp::path!("api" / "v1" / "keys")
        .and(warp::post())
        .and(with_state(st.clone()))
        .and(body::json::<NewKeyBody>())
        .and_then(create);
    let revoke = warp::path!("api" / "v1" / "keys" / String)
        .and(warp::delete())
        .and(with_state(st))
        .and_then(revoke);
    list.or(create).or(revoke)
}

/// `GET /api/v1/auth`, answered with the gate's verdict (so it runs the gate itself).
pub fn whoami(
    st: AppState,
) -> impl Filter<Extract = (warp::reply::Response,), Error = Rejection> + Clone {
    let enabled = st.access.enabled;
    warp::path!("api" / "v1" / "auth")
        .and(warp::get())
        .and(super::auth::verdict(st.access.clone()))
        .map(move |v: Result<Principal, ApiError>| {
            let (role, id, name) = match v {
                Err(e) => return e.into_response(),
                Ok(Principal::Key(i)) => (Some(i.role), i.key_id, Some(i.name)),
                // Auth off: everyone may do everything.
                Ok(Principal::Open) => (Some(Role::Admin), None, None),
                Ok(Principal::Anonymous) => (None, None, None),
            };
            warp::reply::json(&serde_json::json!({
                "auth_enabled": enabled,
                "role": role,
                "key_id": id,
                "key_name": name,
            }))
            .into_response()
        })
}

async fn list(st: AppState) -> Result<impl Reply, Rejection> {
    let rows = st.reads.read(db::list).await.map_err(reject_err)?;
    let now = time::now();
    let keys: Vec<_> = rows.into_iter().map(|r| KeyView::new(r, now)).collect();
    Ok(warp::reply::json(&KeyList {
        total_count: keys.len(),
        keys,
    }))
}

async fn create(st: AppState, b: NewKeyBody) -> Result<impl Reply, Rejection> {
    let name = kr::check_name(&b.name).map_err(|m| ApiError::unprocessable(m).reject())?;
    let now = time::now();
    let expires_at = match b.expires_at.as_deref() {
        None => None,
        Some(s) => Some(
            time::parse(s)
                .and_then(|t| kr::check_expiry(t, now))
                .map_err(|m| ApiError::unprocessable(format!("expires_at: {m}")).reject())?,
        ),
    };
    let made = st
        .access
        .keyring
        .write(move |c, install| {
            let k = kr::generate(install, &name, b.role, expires_at, now)?;
            db::insert(c, &k.row)?;
            Ok(k)
        })
        .await
        .map_err(reject_err)?;
    tracing::info!(key_id = %made.row.id, role = %made.row.role, "API key created through the API");
    let mut v = serde_json::to_value(KeyView::new(made.row, now)).unwrap_or_default();
    v["key"] = made.key.into();
    Ok(warp::reply::with_status(
        warp::reply::json(&v),
        StatusCode::CREATED,
    ))
}

async fn revoke(id: String, st: AppState) -> Result<impl Reply, Rejection> {
    let now = time::format(time::now());
    let key_id = id.clone();
    let row = st
        .access
        .keyring
        .write(move |c, _| db::revoke(c, &key_id, &now))
        .await
        .map_err(reject_err)?;
    match row {
        Some(_) => {
            tracing::info!(key_id = %id, "API key revoked through the API");
            Ok(StatusCode::NO_CONTENT)
        }
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "key_not_found",
            "no API key with that id; GET /api/v1/keys lists them",
        )
        .reject()),
    }
}
