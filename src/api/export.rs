//! `GET /api/v1/jobs/export?format=csv|ndjson` with the filters of `GET /api/v1/jobs`:
//! every matching job as a download, streamed chunk by chunk (store/export.rs) so a
//! history of a million jobs needs no more memory than one of a hundred. Also the
//! `printfarmd export` command, which reads the database file directly.

use std::path::Path;

use bytes::Bytes;
use warp::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE, HeaderValue};
use warp::{Filter, Rejection, Reply};

use super::{ApiError, AppState, with_state};
use crate::store::export::{self, CHUNK_ROWS, Format};
use crate::store::{self, JobQuery};

/// Chunks encoded ahead of a slow client: enough to keep the socket busy, few enough
/// that a stalled download holds at most this many chunks (about 0.5 MB) in memory.
const CHUNKS_AHEAD: usize = 2;

pub fn routes(st: AppState) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    warp::path!("api" / "v1" / "jobs" / "export")
        .and(warp::get())
        .and(warp::query::<Vec<(String, String)>>())
        .and(with_state(st))
        .and_then(get)
}

/// Splits `format` off the list's filters; paging has no meaning here.
pub fn parse_query(pairs: Vec<(String, String)>) -> Result<(Format, JobQuery), ApiError> {
    let bad = |m: String| ApiError::bad_request("invalid_query", m);
    let mut format = Format::Csv;
    let mut rest = Vec::new();
    for (k, v) in pairs {
        match k.as_str() {
            "format" => {
                format = Format::parse(&v)
                    .ok_or_else(|| bad(format!("format must be csv or ndjson, got {v:?}")))?
            }
            "limit" | "offset" => {
                return Err(bad(format!(
                    "{k}: the export has no pages; it sends every job that matches"
                )));
            }
            _ => rest.push((k, v)),
        }
    }
    Ok((format, super::jobs::parse_query(rest)?))
}

/// Errors are answered here rather than rejected: a rejection would let the path fall
/// through to `GET /jobs/{id}` and answer "job export not found".
async fn get(
    pairs: Vec<(String, String)>,
    st: AppState,
) -> Result<warp::reply::Response, Rejection> {
    Ok(match download(pairs, st).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    })
}

async fn download(
    pairs: Vec<(String, String)>,
    st: AppState,
) -> Result<warp::reply::Response, ApiError> {
    let (format, q) = parse_query(pairs)?;
    // The first chunk is read before answering, so a database that cannot answer gets
    // the usual JSON error rather than a download cut short.
    let first = {
        let q = q.clone();
        st.reads
            .read(move |c| export::chunk(c, &q, None, CHUNK_ROWS))
            .await?
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(CHUNKS_AHEAD);
    tokio::spawn(async move {
        let mut rows = first;
        let mut header = true;
        loop {
            let last = rows.last().map(|(seq, _)| *seq);
            let full = rows.len() == CHUNK_ROWS as usize;
            let bytes = export::encode(format, rows.iter().map(|(_, j)| j), header);
            header = false;
            if tx.send(Ok(Bytes::from(bytes))).await.is_err() {
                return; // the client went away
            }
            let Some(before) = last.filter(|_| full) else {
                return;
            };
            let q = q.clone();
            match st
                .reads
                .read(move |c| export::chunk(c, &q, Some(before), CHUNK_ROWS))
                .await
            {
                Ok(next) => rows = next,
                Err(e) => {
                    // Mid-transfer there is no status to change: the connection is cut,
                    // so the client sees an incomplete download, never a short "complete" one.
                    tracing::warn!(error = %e, "job export stopped: the database failed to answer");
                    let _ = tx.send(Err(std::io::Error::other("export stopped"))).await;
                    return;
                }
            }
        }
    });
    let body = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let mut resp = warp::reply::stream(body).into_response();
    let name = format!(
        "attachment; filename=\"printfarmd-jobs-{}.{}\"",
        crate::time::now().format("%Y%m%dT%H%M%SZ"),
        format.extension()
    );
    let h = resp.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    if let Ok(v) = HeaderValue::from_str(&name) {
        h.insert(CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

/// `printfarmd export`: the jobs matching `filters` (the API's query parameters) from the
/// database file at `db`, read-only (the daemon may be running), to `out`. Returns how
/// many jobs were written.
pub fn export_file(
    db: &Path,
    format: &str,
    filters: Vec<(String, String)>,
    out: &mut impl std::io::Write,
) -> anyhow::Result<u64> {
    let format = Format::parse(format)
        .ok_or_else(|| anyhow::anyhow!("--format must be csv or ndjson, got {format:?}"))?;
    let q = super::jobs::parse_query(filters).map_err(|e| anyhow::anyhow!(e.message))?;
    if !db.exists() {
        anyhow::bail!(
            "no database at {}; check database.path in the configuration",
            db.display()
        );
    }
    let conn = store::open_reader(db)?;
    Ok(export::export_all(&conn, &q, format, out)?)
}
