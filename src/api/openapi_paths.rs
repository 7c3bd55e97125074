//! The OpenAPI description of the job, statistics and printer routes (`jobs.rs`,
//! `export.rs`, `stats.rs`, `printers.rs`, `printer_control.rs`): one documentation-only
//! function per route, with its query parameters, body and answers. The access gate's
//! answers (401, 403, 421, 429) and the body reader's (400, 413, 415, 422) are added to
//! every route by `openapi.rs`.

#![allow(dead_code)]

use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::error::ErrorBody;
use super::jobs::JobList;
use super::openapi_schemas as s;
use crate::domain::{Job, JobPatch, NewJob};

/// The filters of `GET /api/v1/jobs` (and of the export).
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JobFilters {
    /// Only this printer's jobs.
    printer_id: Option<String>,
    /// One status or several, comma-separated: pending, running, paused, completed,
    /// failed, cancelled, unknown.
    #[param(
        example = "failed,cancelled",
        pattern = r"^\s*((pending|running|paused|completed|failed|cancelled|unknown)\s*)?(,\s*((pending|running|paused|completed|failed|cancelled|unknown)\s*)?)*$"
    )]
    status: Option<String>,
    /// Only auto-created (true) or hand-made (false) jobs.
    auto_created: Option<bool>,
    /// Jobs created at or after this time (RFC 3339).
    #[param(format = DateTime)]
    since: Option<String>,
    /// Jobs created before this time (RFC 3339).
    #[param(format = DateTime)]
    until: Option<String>,
    /// Text to find in the job's name, file name or notes.
    #[param(max_length = 256)]
    q: Option<String>,
    /// Jobs that ended for this reason (exact text), or `*` for any recorded reason.
    #[param(min_length = 1, max_length = 512)]
    end_reason: Option<String>,
}

/// Paging of `GET /api/v1/jobs`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Paging {
    /// Jobs per page (default 50).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// Jobs to skip (default 0).
    #[param(minimum = 0, maximum = 9223372036854775807_u64)]
    offset: Option<u64>,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    Csv,
    Ndjson,
}

/// The format of `GET /api/v1/jobs/export`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportParams {
    /// `csv` (default; a header row, RFC 4180 quoting, `customer_info` as JSON in one
    /// column) or `ndjson` (one job per line).
    #[param(inline)]
    format: Option<ExportFormat>,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum GroupBy {
    Printer,
    Day,
    Week,
    File,
}

/// `GET /api/v1/stats`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatsParams {
    /// Start of the window (RFC 3339); default 30 days before `until`. The window is at
    /// most 366 days.
    #[param(format = DateTime)]
    since: Option<String>,
    /// End of the window (RFC 3339); default now.
    #[param(format = DateTime)]
    until: Option<String>,
    /// Only these printers: one id, or up to 100 comma-separated (or the parameter
    /// repeated).
    printer_id: Option<String>,
    /// How to group the figures (default `printer`).
    #[param(inline)]
    group_by: Option<GroupBy>,
}

#[utoipa::path(get, path = "/api/v1/jobs", tag = "jobs",
    summary = "List jobs, newest first",
    params(JobFilters, Paging),
    responses(
        (status = 200, description = "A page of jobs.", body = JobList),
        (status = 400, description = "`invalid_query`: a parameter is unknown or its value out of range; the message names it.", body = ErrorBody),
    ))]
pub fn list_jobs() {}

#[utoipa::path(post, path = "/api/v1/jobs", tag = "jobs",
    summary = "Create a job by hand",
    description = "Creates a job (status `pending` unless given). When the printer is already printing with no job, the new job is attached to that print and answered 200.",
    request_body = NewJob,
    responses(
        (status = 201, description = "Created.", body = Job),
        (status = 200, description = "Attached to the print already running on the printer.", body = Job),
        (status = 404, description = "`printer_not_found`.", body = ErrorBody),
        (status = 409, description = "`conflict`: the printer already has an open job.", body = ErrorBody),
        (status = 504, description = "`write_outcome_unknown`: the write started but did not finish in time; look it up before retrying.", body = ErrorBody),
    ))]
pub fn create_job() {}

#[utoipa::path(get, path = "/api/v1/jobs/export", tag = "jobs",
    summary = "Download every matching job",
    description = "Every job matching the filters of `GET /api/v1/jobs` (no paging), streamed as CSV or NDJSON. A database failure mid-transfer cuts the connection.",
    params(ExportParams, JobFilters),
    responses(
        (status = 200, description = "The jobs, as an attachment.",
            content(
                (String = "text/csv"),
                (String = "application/x-ndjson"),
            ),
            headers(("Content-Disposition" = String, description = "attachment; filename=\"printfarmd-jobs-<time>.csv\""))),
        (status = 400, description = "`invalid_query`: an unknown format or filter, or `limit`/`offset` (the export has no pages).", body = ErrorBody),
    ))]
pub fn export_jobs() {}

#[utoipa::path(get, path = "/api/v1/jobs/{id}", tag = "jobs",
    summary = "One job",
    params(("id" = String, Path, description = "The job's id (`job_…`).")),
    responses(
        (status = 200, description = "The job.", body = Job),
        (status = 404, description = "`job_not_found`.", body = ErrorBody),
    ))]
pub fn get_job() {}

#[utoipa::path(put, path = "/api/v1/jobs/{id}", tag = "jobs",
    summary = "Edit a job",
    description = "Every field optional. `customer_info` is merged key by key (a `null` value removes a key; an auto-created job's own keys cannot change); `notes: null` clears the notes.",
    params(("id" = String, Path, description = "The job's id.")),
    request_body = JobPatch,
    responses(
        (status = 200, description = "The job as saved.", body = Job),
        (status = 404, description = "`job_not_found`.", body = ErrorBody),
        (status = 409, description = "`conflict`: the change would give the printer a second open job.", body = ErrorBody),
        (status = 504, description = "`write_outcome_unknown`.", body = ErrorBody),
    ))]
pub fn update_job() {}

#[utoipa::path(delete, path = "/api/v1/jobs/{id}", tag = "jobs",
    summary = "Delete a job",
    params(("id" = String, Path, description = "The job's id.")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 404, description = "`job_not_found`.", body = ErrorBody),
        (status = 409, description = "`conflict`: the job is open (running or paused).", body = ErrorBody),
        (status = 504, description = "`write_outcome_unknown`.", body = ErrorBody),
    ))]
pub fn delete_job() {}

#[utoipa::path(get, path = "/api/v1/stats", tag = "stats",
    summary = "Statistics of a time window",
    description = "Jobs by end status, success rate, print hours, utilisation, mean and p90 duration, auto vs manual and failure reasons, per printer, day, ISO week or file, and for the whole farm (`totals`). `p90_duration_s` is read from a histogram of durations (exact below 64 s, then buckets of 1/32 octave): within about 1.1 % of the exact nearest-rank value.",
    params(StatsParams),
    responses(
        (status = 200, description = "The figures.", body = s::Stats),
        (status = 400, description = "`invalid_query`: an unknown parameter, a bad time, `since` not before `until`, a window over 366 days, over 100 printers.", body = ErrorBody),
    ))]
pub fn stats() {}

#[utoipa::path(get, path = "/api/v1/printers", tag = "printers",
    summary = "Every printer with its live status",
    responses((status = 200, description = "The printers.", body = s::PrinterList)))]
pub fn list_printers() {}

#[utoipa::path(post, path = "/api/v1/printers", tag = "printers",
    summary = "Add a printer",
    request_body = s::PrinterInput,
    responses(
        (status = 201, description = "Added; the daemon connects to it.", body = s::Printer),
        (status = 409, description = "`conflict` (the id is taken) or `duplicate_printer` (the same device under another id).", body = ErrorBody),
        (status = 504, description = "`write_outcome_unknown`.", body = ErrorBody),
    ))]
pub fn create_printer() {}

#[utoipa::path(get, path = "/api/v1/printers/{id}", tag = "printers",
    summary = "One printer",
    params(("id" = String, Path, description = "The printer's id.")),
    responses(
        (status = 200, description = "The printer.", body = s::Printer),
        (status = 404, description = "`printer_not_found`.", body = ErrorBody),
    ))]
pub fn get_printer() {}

#[utoipa::path(put, path = "/api/v1/printers/{id}", tag = "printers",
    summary = "Replace a printer's entry",
    description = "The whole entry; `id` may be left out, and if given must be the path's. A printer from daemon.toml cannot be changed here.",
    params(("id" = String, Path, description = "The printer's id.")),
    request_body = s::PrinterInput,
    responses(
        (status = 200, description = "Saved; the daemon reconnects.", body = s::Printer),
        (status = 404, description = "`printer_not_found`.", body = ErrorBody),
        (status = 409, description = "`conflict` (managed by the config file) or `duplicate_printer`.", body = ErrorBody),
        (status = 504, description = "`write_outcome_unknown`.", body = ErrorBody),
    ))]
pub fn update_printer() {}

#[utoipa::path(delete, path = "/api/v1/printers/{id}", tag = "printers",
    summary = "Delete a printer",
    description = "Its jobs stay in the history. A printer from daemon.toml cannot be deleted here.",
    params(("id" = String, Path, description = "The printer's id.")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 404, description = "`printer_not_found`.", body = ErrorBody),
        (status = 409, description = "`conflict`: the printer is managed by the config file.", body = ErrorBody),
        (status = 504, description = "`write_outcome_unknown`.", body = ErrorBody),
    ))]
pub fn delete_printer() {}

#[utoipa::path(post, path = "/api/v1/printers/{id}/certificate/reset", tag = "printers",
    summary = "Forget a Bambu printer's pinned certificate",
    description = "The certificate the printer presents next is pinned (after a firmware update or a replaced board).",
    params(("id" = String, Path, description = "The printer's id.")),
    responses(
        (status = 200, description = "Forgotten; the daemon reconnects.", body = s::Printer),
        (status = 404, description = "`printer_not_found`.", body = ErrorBody),
        (status = 504, description = "`write_outcome_unknown`.", body = ErrorBody),
    ))]
pub fn reset_certificate() {}

/// The answers of pause, resume and cancel.
macro_rules! control {
    ($name:ident, $path:literal, $summary:literal) => {
        #[utoipa::path(post, path = $path, tag = "printers",
            summary = $summary,
            description = "Sent to the printer; answered when the printer acknowledges it. The job follows through the printer's status (a cancel ends it `cancelled` with `end_reason: \"cancelled from printfarmd\"`).",
            params(("id" = String, Path, description = "The printer's id.")),
            responses(
                (status = 202, description = "The printer took the command.", body = s::CommandAccepted),
                (status = 404, description = "`printer_not_found`.", body = ErrorBody),
                (status = 409, description = "`invalid_state`: the printer is not connected or not in a state that allows it.", body = ErrorBody),
                (status = 502, description = "`printer_refused`: the printer refused the command.", body = ErrorBody),
                (status = 503, description = "`unavailable`: the printer's connection is not running.", body = ErrorBody),
                (status = 504, description = "`printer_timeout`: the printer did not acknowledge it in time.", body = ErrorBody),
            ))]
        pub fn $name() {}
    };
}

control!(
    pause_printer,
    "/api/v1/printers/{id}/pause",
    "Pause the print"
);
control!(
    resume_printer,
    "/api/v1/printers/{id}/resume",
    "Resume the print"
);
control!(
    cancel_printer,
    "/api/v1/printers/{id}/cancel",
    "Cancel the print"
);
