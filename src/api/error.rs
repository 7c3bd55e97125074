//! One error shape for every failure: the right status code and
//! `{"status":"error","code":"<machine_code>","message":"<what a person can act on>"}`.
//!
//! Handlers and filters reject with `ApiError`; `recover` turns every rejection,
//! warp's own included, into that JSON.

use std::convert::Infallible;

use serde::Serialize;
use utoipa::ToSchema;
use warp::http::StatusCode;
use warp::reject::Reject;
use warp::{Rejection, Reply};

use crate::store::StoreError;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds for a `Retry-After` header (429).
    pub retry_after: Option<u64>,
}

impl Reject for ApiError {}

/// The body of every error answer (the OpenAPI document's `Error` schema).
#[derive(Serialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody<'a> {
    /// Always `error`.
    pub status: ErrorStatus,
    /// What went wrong, for programs: `invalid_query`, `job_not_found`, `unauthorized`,
    /// `forbidden`, `conflict`, `payload_too_large`, `unavailable`, …
    pub code: &'a str,
    /// What went wrong, for people: what to change or where to look. Never holds a key.
    pub message: &'a str,
}

/// The one value of an error's `status`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ErrorStatus {
    Error,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    pub fn reject(self) -> Rejection {
        warp::reject::custom(self)
    }

    pub fn into_response(self) -> warp::reply::Response {
        let body = ErrorBody {
            status: ErrorStatus::Error,
            code: self.code,
            message: &self.message,
        };
        let mut r = warp::reply::with_status(warp::reply::json(&body), self.status).into_response();
        if let Some(secs) = self.retry_after {
            r.headers_mut()
                .insert(warp::http::header::RETRY_AFTER, secs.into());
        }
        r
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let msg = e.to_string();
        match e {
            StoreError::NotFound(_) => ApiError::new(StatusCode::NOT_FOUND, "job_not_found", msg),
            StoreError::PrinterNotFound(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "printer_not_found", msg)
            }
            StoreError::Conflict(_) => ApiError::new(StatusCode::CONFLICT, "conflict", msg),
            StoreError::Invalid(_) => ApiError::unprocessable(msg),
            StoreError::DiskFull => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "disk_full", msg)
            }
            StoreError::Locked => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "database_locked", msg)
            }
            StoreError::ReadOnly => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "database_read_only", msg)
            }
            StoreError::TooNew { .. } | StoreError::Unavailable(_) | StoreError::InUse(_) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "database_unavailable", msg)
            }
            StoreError::Sqlite(_) => {
                tracing::error!(error = %msg, "database error answering a request");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "database_error",
                    "the database failed to answer; see the daemon's log",
                )
            }
        }
    }
}

/// The error an actor call turns into when the actor is gone or too slow.
impl From<actix::MailboxError> for ApiError {
    fn from(e: actix::MailboxError) -> Self {
        match e {
            actix::MailboxError::Timeout => ApiError::unavailable(
                "the daemon is too busy to answer in time (database writer backlog); retry shortly",
            ),
            actix::MailboxError::Closed => ApiError::unavailable("the daemon is shutting down"),
        }
    }
}

/// Turns every rejection into the JSON error.
pub async fn recover(r: Rejection) -> Result<warp::reply::Response, Infallible> {
    use warp::reject;
    let e = if let Some(e) = r.find::<ApiError>() {
        e.clone()
    } else if r.find::<reject::MethodNotAllowed>().is_some() {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this path does not accept that method",
        )
    } else if r.find::<reject::PayloadTooLarge>().is_some() {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the request body is too large",
        )
    } else if r.find::<reject::UnsupportedMediaType>().is_some() {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as JSON with Content-Type: application/json",
        )
    } else if r.find::<reject::InvalidQuery>().is_some() {
        ApiError::bad_request("invalid_query", "the query string could not be read")
    } else if r.find::<reject::MissingHeader>().is_some()
        || r.find::<reject::InvalidHeader>().is_some()
    {
        ApiError::bad_request(
            "invalid_header",
            "a required header is missing or malformed",
        )
    } else if r.is_not_found() {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such path; the API lives under /api/v1",
        )
    } else {
        tracing::warn!(rejection = ?r, "unhandled rejection");
        ApiError::bad_request("bad_request", "the request could not be handled")
    };
    Ok(e.into_response())
}
