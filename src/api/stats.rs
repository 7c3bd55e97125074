//! `GET /api/v1/stats`: jobs, outcomes, print hours, utilisation and failure reasons
//! of a time window, for the farm and per printer, day, ISO week or file (issue 17).
//! The query is checked here; the figures come from `store::stats`.

use chrono::Duration;
use warp::{Filter, Rejection, Reply};

use super::{ApiError, AppState, reject_err, with_state};
use crate::store::stats::{self, GroupBy, MAX_WINDOW_DAYS, StatsQuery};
use crate::time::{self, Timestamp};

/// The window when `since` is not given: the last 30 days before `until`.
const DEFAULT_WINDOW_DAYS: i64 = 30;
/// Printers one question may name: enough for any dashboard selection, and a bound on
/// the statement's size.
const MAX_PRINTER_IDS: usize = 100;
/// Longest printer id accepted in a filter (ids are far shorter; see domain.rs).
const MAX_PRINTER_ID_LEN: usize = 128;

pub fn routes(st: AppState) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    warp::path!("api" / "v1" / "stats")
        .and(warp::get())
        .and(warp::query::<Vec<(String, String)>>())
        .and(with_state(st))
        .and_then(get)
}

/// Reads the query string; every refusal names the parameter.
pub fn parse_query(pairs: Vec<(String, String)>, now: Timestamp) -> Result<StatsQuery, ApiError> {
    let bad = |m: String| ApiError::bad_request("invalid_query", m);
    let (mut since, mut until, mut group_by) = (None, None, GroupBy::Printer);
    let mut printers: Vec<String> = Vec::new();
    for (k, v) in pairs {
        match k.as_str() {
            "since" => since = Some(time::parse(&v).map_err(|e| bad(format!("since: {e}")))?),
            "until" => until = Some(time::parse(&v).map_err(|e| bad(format!("until: {e}")))?),
            "group_by" => {
                group_by = GroupBy::parse(&v).ok_or_else(|| {
                    bad(format!(
                        "group_by must be one of {}, got {v:?}",
                        GroupBy::NAMES
                    ))
                })?
            }
            "printer_id" => {
                for p in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                    if p.len() > MAX_PRINTER_ID_LEN {
                        return Err(bad(format!(
                            "printer_id is longer than {MAX_PRINTER_ID_LEN} characters"
                        )));
                    }
                    if !printers.iter().any(|x| x == p) {
                        printers.push(p.to_owned());
                    }
                }
                if printers.len() > MAX_PRINTER_IDS {
                    return Err(bad(format!(
                        "printer_id names more than {MAX_PRINTER_IDS} printers"
                    )));
                }
            }
            other => {
                return Err(bad(format!(
                    "unknown query parameter {other:?}; known: since, until, printer_id, group_by"
                )));
            }
        }
    }
    let until = until.unwrap_or(now);
    let since = since.unwrap_or(until - Duration::days(DEFAULT_WINDOW_DAYS));
    if since >= until {
        return Err(bad("since must be before until".into()));
    }
    if until - since > Duration::days(MAX_WINDOW_DAYS) {
        return Err(bad(format!(
            "the window from since to until is longer than {MAX_WINDOW_DAYS} days; ask for a shorter one"
        )));
    }
    // Whole seconds: the figures are in seconds, and the answer echoes the window.
    let trunc = |t: Timestamp| chrono::DateTime::from_timestamp(t.timestamp(), 0).unwrap_or(t);
    Ok(StatsQuery {
        since: trunc(since),
        until: trunc(until),
        printers,
        group_by,
    })
}

async fn get(pairs: Vec<(String, String)>, st: AppState) -> Result<impl Reply, Rejection> {
    let now = time::now();
    let q = parse_query(pairs, now).map_err(ApiError::reject)?;
    let answer = st
        .reads
        .read(move |c| stats::stats(c, &q, now))
        .await
        .map_err(reject_err)?;
    Ok(warp::reply::json(&answer))
}

#[cfg(test)]
mod tests {
    use super::*;
    use warp::http::StatusCode;

    fn q(s: &str) -> Result<StatsQuery, ApiError> {
        let now = time::parse("2026-12-04T12:00:00.250Z").unwrap();
        parse_query(serde_urlencoded::from_str(s).unwrap(), now)
    }

    #[test]
    fn defaults_to_the_last_30_days_by_printer() {
        let s = q("").unwrap();
        assert_eq!(time::format(s.until), "2026-12-04T12:00:00.000Z");
        assert_eq!(time::format(s.since), "2026-11-04T12:00:00.000Z");
        assert_eq!(s.group_by, GroupBy::Printer);
        assert!(s.printers.is_empty());
    }

    #[test]
    fn printers_repeat_or_come_comma_separated() {
        let s = q("printer_id=a,b&printer_id=c&printer_id=a&group_by=week").unwrap();
        assert_eq!(s.printers, ["a", "b", "c"]);
        assert_eq!(s.group_by, GroupBy::Week);
    }

    #[test]
    fn refuses_bad_values_naming_them() {
        let many = (0..=MAX_PRINTER_IDS)
            .map(|i| format!("p{i}"))
            .collect::<Vec<_>>()
            .join(",");
        for (s, word) in [
            ("since=yesterday", "since"),
            ("until=soon", "until"),
            ("group_by=month", "group_by"),
            ("since=2026-12-05T00:00:00Z", "before until"),
            ("since=2025-01-01T00:00:00Z", "366 days"),
            (&format!("printer_id={many}"), "printer_id"),
            ("colour=red", "colour"),
        ] {
            let e = q(s).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST);
            assert!(e.message.contains(word), "{s}: {}", e.message);
        }
        assert!(q("since=2025-12-04T12:00:00Z").is_ok());
    }
}
