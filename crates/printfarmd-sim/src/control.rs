//! The simulator's HTTP control API, for everything that is not a Rust test in this crate
//! (the demo, the load harness, a person with curl). See README-sim.md.
//!
//! - `GET /printers`: every printer as its `[[printers]]` entry plus `style`.
//! - `GET /printers/{id}`: `{"printer": <entry>, "status": <snapshot>}`.
//! - `GET /config`: the `[[printers]]` TOML block for `printfarmd run`.
//! - `GET /ca.pem`: the simulator CA that signs every Bambu leaf certificate.
//! - `GET /printers/{id}/sent`: `{"id", "sent_at_ms": [..]}`, when the printer's recent
//!   status reports were sent (the load harness times the daemon against these).
//! - `POST /printers/{id}/{action}`: `print` (`{"file", "duration_s", "layers"?}`), `pause`,
//!   `resume`, `finish`, `fail`, `cancel`, `reboot`, `disconnect`, `silence` (`{"seconds"}`),
//!   `garbage`, `dismiss`, `refuse` (`{"seconds"}`, Bambu).
//!
//! Errors are `{"status":"error","code":..,"message":..}` with 400/404/405/409/413; request
//! bodies are bounded.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Buf;
use futures_util::{Stream, StreamExt};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;
use warp::http::StatusCode;
use warp::reply::{Reply, Response};
use warp::{Filter, Rejection};

use super::farm::FarmShared;
use super::{Action, SimError};

/// Largest control request body (a print request is well under 1 KiB).
pub const MAX_BODY_BYTES: usize = 16 * 1024;

pub async fn serve(
    shared: Arc<FarmShared>,
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
) {
    warp::serve(routes(shared))
        .incoming(listener)
        .graceful(async move {
            let _ = shutdown.changed().await;
        })
        .run()
        .await;
}

#[derive(Debug)]
struct ApiError(SimError);
impl warp::reject::Reject for ApiError {}

#[derive(Debug)]
struct BodyTooLarge;
impl warp::reject::Reject for BodyTooLarge {}

fn routes(
    shared: Arc<FarmShared>,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    let farm = warp::any().map(move || Arc::clone(&shared));
    // Path first, then method: an unknown path is a 404, a known one with the wrong method a 405.
    let list = warp::path!("printers")
        .and(warp::get())
        .and(farm.clone())
        .map(|f: Arc<FarmShared>| warp::reply::json(&f.infos).into_response());
    let one = warp::path!("printers" / String)
        .and(warp::get())
        .and(farm.clone())
        .and_then(get_printer);
    let config = warp::path!("config")
        .and(warp::get())
        .and(farm.clone())
        .map(|f: Arc<FarmShared>| {
            warp::reply::with_header(
                f.config_toml(),
                "content-type",
                "application/toml; charset=utf-8",
            )
            .into_response()
        });
    let ca = warp::path!("ca.pem")
        .and(warp::get())
        .and(farm.clone())
        .map(|f: Arc<FarmShared>| {
            warp::reply::with_header(f.ca_pem.clone(), "content-type", "application/x-pem-file")
                .into_response()
        });
    let sent = warp::path!("printers" / String / "sent")
        .and(warp::get())
        .and(farm.clone())
        .and_then(get_sent);
    let action = warp::path!("printers" / String / String)
        .and(warp::post())
        .and(warp::body::stream())
        .and(farm)
        .and_then(post_action);
    list.or(one)
        .unify()
        .or(sent)
        .unify()
        .or(config)
        .unify()
        .or(ca)
        .unify()
        .or(action)
        .unify()
        .recover(recover)
        .unify()
}

async fn get_printer(id: String, farm: Arc<FarmShared>) -> Result<Response, Rejection> {
    let info = farm
        .info(&id)
        .map_err(|e| warp::reject::custom(ApiError(e)))?;
    let status = farm
        .status(&id)
        .map_err(|e| warp::reject::custom(ApiError(e)))?;
    Ok(warp::reply::json(&json!({"printer": info, "status": status})).into_response())
}

async fn get_sent(id: String, farm: Arc<FarmShared>) -> Result<Response, Rejection> {
    let sent = farm
        .sent_log(&id)
        .map_err(|e| warp::reject::custom(ApiError(e)))?;
    Ok(warp::reply::json(&json!({"id": id, "sent_at_ms": sent})).into_response())
}

async fn post_action<S, B>(
    id: String,
    name: String,
    body: S,
    farm: Arc<FarmShared>,
) -> Result<Response, Rejection>
where
    S: Stream<Item = Result<B, warp::Error>> + Send + Unpin,
    B: Buf,
{
    let body = read_bounded(body).await?;
    let action = Action::parse(&name, &body).map_err(|e| warp::reject::custom(ApiError(e)))?;
    farm.info(&id)
        .map_err(|e| warp::reject::custom(ApiError(e)))?;
    farm.control(&id, &action)
        .map_err(|e| warp::reject::custom(ApiError(e)))?;
    let status = farm
        .status(&id)
        .map_err(|e| warp::reject::custom(ApiError(e)))?;
    Ok(
        warp::reply::json(&json!({"status": "ok", "action": action.name(), "printer": status}))
            .into_response(),
    )
}

/// Reads the body up to `MAX_BODY_BYTES`, with or without a Content-Length.
async fn read_bounded<S, B>(mut body: S) -> Result<Vec<u8>, Rejection>
where
    S: Stream<Item = Result<B, warp::Error>> + Unpin,
    B: Buf,
{
    let mut out = Vec::new();
    while let Some(chunk) = body.next().await {
        let mut chunk =
            chunk.map_err(|e| warp::reject::custom(ApiError(SimError::BadBody(e.to_string()))))?;
        if out.len() + chunk.remaining() > MAX_BODY_BYTES {
            return Err(warp::reject::custom(BodyTooLarge));
        }
        while chunk.has_remaining() {
            let piece = chunk.chunk();
            out.extend_from_slice(piece);
            let n = piece.len();
            chunk.advance(n);
        }
    }
    Ok(out)
}

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let body = json!({"status": "error", "code": code, "message": message.into()});
    warp::reply::with_status(warp::reply::json(&body), status).into_response()
}

async fn recover(rejection: Rejection) -> Result<Response, Infallible> {
    if let Some(ApiError(e)) = rejection.find::<ApiError>() {
        let status = match e {
            SimError::UnknownPrinter(_) => StatusCode::NOT_FOUND,
            SimError::UnknownAction(_) | SimError::BadBody(_) | SimError::Unsupported(_) => {
                StatusCode::BAD_REQUEST
            }
            SimError::Conflict(_) => StatusCode::CONFLICT,
        };
        return Ok(error(status, e.code(), e.to_string()));
    }
    if rejection.find::<BodyTooLarge>().is_some() {
        return Ok(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("request bodies are limited to {MAX_BODY_BYTES} bytes"),
        ));
    }
    if rejection.is_not_found() {
        return Ok(error(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such endpoint; try GET /printers, GET /printers/{id}, GET /config or POST /printers/{id}/{action}",
        ));
    }
    if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        return Ok(error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "use GET to read and POST for actions",
        ));
    }
    Ok(error(
        StatusCode::BAD_REQUEST,
        "bad_request",
        format!("{rejection:?}"),
    ))
}
