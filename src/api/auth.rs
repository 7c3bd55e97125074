//! Optional API keys (`[auth] enabled = true`, `api_keys = [..]`).
//!
//! A request carries a key as `Authorization: Bearer <key>` or `X-Api-Key: <key>`;
//! browsers' WebSocket clients cannot set headers, so `/ws` also takes `?api_key=`.
//! Keys are compared in constant time. A missing key is 401, a wrong one 403; neither
//! message repeats what was sent.

use std::sync::Arc;

use warp::http::StatusCode;
use warp::{Filter, Rejection};

use super::error::ApiError;
use crate::config::AuthConfig;

pub fn key_matches(auth: &AuthConfig, given: &str) -> bool {
    auth.api_keys.iter().any(|k| {
        aws_lc_rs::constant_time::verify_slices_are_equal(k.expose().as_bytes(), given.as_bytes())
            .is_ok()
    })
}

pub fn check(auth: &AuthConfig, given: Option<&str>) -> Result<(), ApiError> {
    if !auth.enabled {
        return Ok(());
    }
    match given {
        None => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "this daemon requires an API key: send Authorization: Bearer <key> or X-Api-Key: <key>",
        )),
        Some(k) if key_matches(auth, k) => Ok(()),
        Some(_) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the API key is not valid",
        )),
    }
}

/// Passes when auth is off or the request carries a valid key.
pub fn require(auth: Arc<AuthConfig>) -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::header::optional::<String>("authorization")
        .and(warp::header::optional::<String>("x-api-key"))
        .and_then(move |authz: Option<String>, key: Option<String>| {
            let auth = auth.clone();
            async move {
                let bearer = authz
                    .as_deref()
                    .and_then(|a| a.strip_prefix("Bearer "))
                    .map(str::trim);
                check(&auth, bearer.or(key.as_deref())).map_err(ApiError::reject)
            }
        })
        .untuple_one()
}
