//! `/api/v1/jobs`: the history, newest first, with filters and paging; one job; manual
//! create, edit and delete (which go through the JobCreator).

use serde::Serialize;
use utoipa::ToSchema;
use warp::http::StatusCode;
use warp::{Filter, Rejection, Reply};

use super::{ApiError, AppState, body, reject_err, with_state};
use crate::domain::JobStatus;
use crate::domain::{Job, JobPatch, NewJob};
use crate::jobs::creator::{CreateJob, DeleteJob, UpdateJob};
use crate::store::{self, JobQuery, StoreError};
use crate::time;

/// Longest `q` search text accepted.
const MAX_Q_LEN: usize = 256;
/// Longest `end_reason` filter accepted: a stored reason is at most 512 characters
/// (the JobCreator's cap), so a longer filter can match nothing.
const MAX_END_REASON_LEN: usize = 512;

pub fn routes(st: AppState) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    let list = warp::path!("api" / "v1" / "jobs")
        .and(warp::get())
        .and(warp::query::<Vec<(String, String)>>())
        .and(with_state(st.clone()))
        .and_then(list);
    let create = warp::path!("api" / "v1" / "jobs")
        .and(warp::post())
        .and(with_state(st.clone()))
        .and(body::json::<NewJob>())
        .and_then(create);
    let get = warp::path!("api" / "v1" / "jobs" / String)
        .and(warp::get())
        .and(with_state(st.clone()))
        .and_then(get);
    let update = warp::path!("api" / "v1" / "jobs" / String)
        .and(warp::put())
        .and(with_state(st.clone()))
        .and(body::json::<JobPatch>())
        .and_then(update);
    let delete = warp::path!("api" / "v1" / "jobs" / String)
        .and(warp::delete())
        .and(with_state(st))
        .and_then(delete);
    list.or(create).or(get).or(update).or(delete)
}

/// A page of the history, newest first.
#[derive(Serialize, ToSchema)]
pub(super) struct JobList {
    jobs: Vec<Job>,
    /// Jobs matching the filters, over all pages.
    total_count: u64,
    limit: u32,
    offset: u64,
}

/// Reads the query string into a `JobQuery`; every refusal names the parameter.
pub fn parse_query(pairs: Vec<(String, String)>) -> Result<JobQuery, ApiError> {
    let bad = |m: String| ApiError::bad_request("invalid_query", m);
    let mut q = JobQuery {
        limit: store::jobs::DEFAULT_LIMIT,
        ..Default::default()
    };
    for (k, v) in pairs {
        match k.as_str() {
            "printer_id" => q.printer_id = Some(v),
            "status" => {
                for s in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    q.statuses.push(
                        s.parse::<JobStatus>()
                            .map_err(|e| bad(format!("status: {e}")))?,
                    );
                }
            }
            "auto_created" => {
                q.auto_created = Some(match v.as_str() {
                    "true" => true,
                    "false" => false,
                    _ => {
                        return Err(bad(format!(
                            "auto_created must be true or false, got {v:?}"
                        )));
                    }
                })
            }
            "since" => q.since = Some(time::parse(&v).map_err(|e| bad(format!("since: {e}")))?),
            "until" => q.until = Some(time::parse(&v).map_err(|e| bad(format!("until: {e}")))?),
            "q" => {
                if v.chars().count() > MAX_Q_LEN {
                    return Err(bad(format!("q is longer than {MAX_Q_LEN} characters")));
                }
                q.q = Some(v).filter(|s| !s.is_empty());
            }
            "end_reason" => {
                if v.is_empty() {
                    return Err(bad(
                        "end_reason must not be empty; give a reason, or * for any".into(),
                    ));
                }
                if v.chars().count() > MAX_END_REASON_LEN {
                    return Err(bad(format!(
                        "end_reason is longer than {MAX_END_REASON_LEN} characters"
                    )));
                }
                q.end_reason = Some(v);
            }
            "limit" => {
                let max = store::jobs::MAX_LIMIT;
                q.limit = v
                    .parse::<u32>()
                    .ok()
                    .filter(|l| (1..=max).contains(l))
                    .ok_or_else(|| {
                        bad(format!(
                            "limit must be a whole number from 1 to {max}, got {v:?}"
                        ))
                    })?;
            }
            "offset" => {
                // SQLite's OFFSET is a signed 64-bit number.
                q.offset = v
                    .parse::<u64>()
                    .ok()
                    .filter(|o| i64::try_from(*o).is_ok())
                    .ok_or_else(|| {
                        bad(format!(
                            "offset must be a whole number from 0 to {}, got {v:?}",
                            i64::MAX
                        ))
                    })?;
            }
            other => {
                return Err(bad(format!(
                    "unknown query parameter {other:?}; known: printer_id, status, auto_created, since, until, q, end_reason, limit, offset"
                )));
            }
        }
    }
    Ok(q)
}

async fn list(pairs: Vec<(String, String)>, st: AppState) -> Result<impl Reply, Rejection> {
    let q = parse_query(pairs).map_err(ApiError::reject)?;
    let (limit, offset) = (q.limit, q.offset);
    let (jobs, total_count) = st
        .reads
        .read(move |c| store::jobs::list(c, &q))
        .await
        .map_err(reject_err)?;
    Ok(warp::reply::json(&JobList {
        jobs,
        total_count,
        limit,
        offset,
    }))
}

async fn get(id: String, st: AppState) -> Result<impl Reply, Rejection> {
    let lookup = id.clone();
    let job = st
        .reads
        .read(move |c| store::jobs::get(c, &lookup))
        .await
        .map_err(reject_err)?;
    match job {
        Some(j) => Ok(warp::reply::json(&j)),
        None => Err(reject_err(StoreError::NotFound(id))),
    }
}

async fn create(st: AppState, new: NewJob) -> Result<impl Reply, Rejection> {
    let created = super::write::call(&st.creator, CreateJob(new))
        .await
        .map_err(reject_err)?
        .map_err(reject_err)?;
    // 201 for a new job; 200 when the request attached to the print already running
    // that file on that printer (the job returned is that print's job).
    let code = if created.attached {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok(warp::reply::with_status(
        warp::reply::json(&created.job),
        code,
    ))
}

async fn update(id: String, st: AppState, patch: JobPatch) -> Result<impl Reply, Rejection> {
    let job = super::write::call(&st.creator, UpdateJob(id, patch))
        .await
        .map_err(reject_err)?
        .map_err(reject_err)?;
    Ok(warp::reply::json(&job))
}

async fn delete(id: String, st: AppState) -> Result<impl Reply, Rejection> {
    super::write::call(&st.creator, DeleteJob(id))
        .await
        .map_err(reject_err)?
        .map_err(reject_err)?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Result<JobQuery, ApiError> {
        parse_query(serde_urlencoded::from_str(s).unwrap())
    }

    #[test]
    fn parses_every_filter() {
        let j = q("printer_id=p1&status=running,paused&auto_created=true&q=cube&limit=10&offset=20&since=2025-01-01T00:00:00Z&end_reason=*").unwrap();
        assert_eq!(j.end_reason.as_deref(), Some("*"));
        assert_eq!(j.printer_id.as_deref(), Some("p1"));
        assert_eq!(j.statuses, vec![JobStatus::Running, JobStatus::Paused]);
        assert_eq!((j.auto_created, j.limit, j.offset), (Some(true), 10, 20));
    }

    #[test]
    fn refuses_bad_values_naming_them() {
        for (s, word) in [
            ("limit=0", "limit"),
            ("limit=1001", "limit"),
            ("offset=-1", "offset"),
            ("offset=9223372036854775808", "offset"),
            ("status=done", "status"),
            ("auto_created=yes", "auto_created"),
            ("since=yesterday", "since"),
            ("end_reason=", "end_reason"),
            ("colour=red", "colour"),
        ] {
            let e = q(s).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST);
            assert!(e.message.contains(word), "{s}: {}", e.message);
        }
    }
}
