//! Schemas of the OpenAPI document for answers and bodies whose Rust types live outside
//! `api/` and `domain/` (the printer view in `broadcast/view.rs`, the config types, the
//! statistics in `store/stats/`, …) or are built with `json!` in a handler. They are
//! never serialised: they only describe JSON. The daemon's own answers are checked
//! against them by `tests/daemon/openapi.rs` and by schemathesis in CI
//! (`.ci/schemathesis`), so a field added or renamed on the Rust side without being
//! added here fails there.

#![allow(dead_code)]

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::{BadData, ConnectionState, JobStatus, PrinterState, PrinterType, Temperatures};

/// What a key may do: `viewer` reads, `operator` also changes jobs and pauses,
/// resumes or cancels prints, `admin` does everything.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Viewer,
    Operator,
    Admin,
}

/// A printer with its live status (never its secrets); also the `data` of a
/// `printer_status` event.
#[derive(Serialize, ToSchema)]
pub struct Printer {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: PrinterType,
    pub host: String,
    pub port: u16,
    /// `config` (daemon.toml) or `api` (added through `POST /api/v1/printers`).
    pub managed_by: String,
    pub connection: ConnectionState,
    pub state: PrinterState,
    #[schema(format = DateTime)]
    pub last_seen: Option<String>,
    /// Why the daemon cannot talk to the printer.
    pub last_error: Option<String>,
    /// An error the printer itself reports.
    pub error: Option<String>,
    /// Set while the printer is preparing, printing or paused.
    pub current_print: Option<CurrentPrint>,
    pub temperatures: Temperatures,
    #[schema(format = DateTime)]
    pub updated_at: Option<String>,
    pub bad_data: BadData,
}

/// The print a printer is working on, as the printer reports it.
#[derive(Serialize, ToSchema)]
pub struct CurrentPrint {
    pub filename: Option<String>,
    pub job_name: Option<String>,
    /// 0–100.
    pub progress: Option<f64>,
    pub remaining_s: Option<i64>,
    pub elapsed_s: Option<i64>,
    pub layer: Option<u32>,
    pub total_layers: Option<u32>,
    /// The job printfarmd recorded for this print.
    pub job_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct PrinterList {
    pub printers: Vec<Printer>,
    pub total_count: u64,
}

/// A printer to add (`POST`) or the whole new entry (`PUT`, where `id` may be left
/// out). Secrets are write-only: no answer repeats them. Bambu printers need `serial`
/// and `access_code`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PrinterInput {
    #[schema(pattern = r"^[A-Za-z0-9_.\-]{1,64}$")]
    pub id: String,
    #[serde(rename = "type")]
    pub kind: PrinterType,
    #[serde(default)]
    pub name: Option<String>,
    #[schema(min_length = 1)]
    pub host: String,
    /// Defaults to the protocol's port (Bambu 8883, PrusaLink and OctoPrint 80,
    /// Moonraker 7125).
    #[serde(default)]
    #[schema(minimum = 1)]
    pub port: Option<u16>,
    #[serde(default)]
    pub serial: Option<String>,
    #[serde(default)]
    pub access_code: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub api_key: Option<String>,
}

/// The live settings.
#[derive(Serialize, ToSchema)]
pub struct Settings {
    /// Create a job automatically when a print starts on a printer.
    pub job_creation_auto_create: bool,
    /// Seconds between polls of polled printers (1–3600).
    pub monitoring_interval: u64,
}

/// A partial update of the settings: at least one key.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsPatch {
    #[serde(default)]
    pub job_creation_auto_create: Option<bool>,
    #[serde(default)]
    #[schema(minimum = 1, maximum = 3600)]
    pub monitoring_interval: Option<u64>,
}

/// The seed's fixed answer to a settings update.
#[derive(Serialize, ToSchema)]
pub struct Success {
    /// Always `success`.
    pub status: String,
    pub message: String,
}

/// `GET /api/v1/stats`.
#[derive(Serialize, ToSchema)]
pub struct Stats {
    #[schema(format = DateTime)]
    pub since: String,
    #[schema(format = DateTime)]
    pub until: String,
    /// `printer`, `day`, `week` or `file`.
    pub group_by: String,
    pub totals: StatsGroup,
    pub groups: Vec<StatsGroup>,
}

/// The figures of one group (or of the farm, in `totals`).
#[derive(Serialize, ToSchema)]
pub struct StatsGroup {
    /// The printer id, the day (`2026-12-04`), the ISO week (`2026-W49`) or the file
    /// name; `all` in `totals`.
    pub key: String,
    pub jobs: u64,
    pub by_status: ByStatus,
    /// Completed ÷ ended (completed, failed, cancelled); null with none ended.
    pub success_rate: Option<f64>,
    pub print_hours: f64,
    /// Print time ÷ wall time in the window (open jobs counted to now); null for groups
    /// that are not printers.
    pub utilisation: Option<f64>,
    pub mean_duration_s: Option<u64>,
    /// Nearest-rank p90 of the ended jobs' durations, read from a histogram (exact below
    /// 64 s, then 1/32-octave buckets): within about 1.1 % of the exact value.
    pub p90_duration_s: Option<u64>,
    pub auto_created: u64,
    pub manual: u64,
    pub end_reasons: Vec<ReasonCount>,
}

#[derive(Serialize, ToSchema)]
pub struct ByStatus {
    pub completed: u64,
    pub failed: u64,
    pub cancelled: u64,
    pub unknown: u64,
    pub running: u64,
    pub paused: u64,
    pub pending: u64,
}

#[derive(Serialize, ToSchema)]
pub struct ReasonCount {
    pub reason: String,
    pub count: u64,
}

/// `GET /api/v1/health`. Without a key (with `[auth]` on) only `status` and
/// `version`.
#[derive(Serialize, ToSchema)]
pub struct Health {
    pub status: HealthStatus,
    pub version: String,
    /// Why the status is not `ok`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uptime_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub started_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<HealthDatabase>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub printers: Option<HealthPrinters>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub websocket_clients: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub statuses_processed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_lag_ms: Option<u64>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    Ok,
    Degraded,
    Unavailable,
}

#[derive(Serialize, ToSchema)]
pub struct HealthDatabase {
    /// `ok` or `error`.
    pub status: String,
    pub error: Option<String>,
    pub open_jobs: Option<i64>,
    pub write_errors: u64,
    pub write_problem: Option<Problem>,
    /// A fault that refuses writes until a restart.
    pub fault: Option<Problem>,
    pub unreadable_values: u64,
}

#[derive(Serialize, ToSchema)]
pub struct Problem {
    #[schema(format = DateTime)]
    pub since: String,
    pub message: String,
}

#[derive(Serialize, ToSchema)]
pub struct HealthPrinters {
    pub configured: u64,
    pub connected: u64,
    pub skipped_payloads: u64,
    pub bad_values: u64,
}

/// `GET /api/v1/auth`: who the caller is.
#[derive(Serialize, ToSchema)]
pub struct WhoAmI {
    pub auth_enabled: bool,
    /// Null without a key (with `[auth]` on); `admin` with `[auth]` off.
    pub role: Option<Role>,
    pub key_id: Option<String>,
    pub key_name: Option<String>,
}

/// A new key: the listing's fields and, this once, the secret.
#[derive(Serialize, ToSchema)]
pub struct CreatedKey {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub status: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub last_used_at: Option<String>,
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
    #[schema(format = DateTime)]
    pub revoked_at: Option<String>,
    /// The key itself: shown only in this answer.
    pub key: String,
}

/// How a webhook's body is written.
#[derive(Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WebhookFormat {
    #[default]
    Json,
    Ntfy,
    Discord,
    Slack,
    Apprise,
}

/// A webhook as listed: the URL only as scheme, host and port, never the secret.
#[derive(Serialize, ToSchema)]
pub struct Webhook {
    pub id: String,
    pub name: Option<String>,
    pub url: String,
    pub events: Vec<String>,
    pub statuses: Vec<JobStatus>,
    pub printer_ids: Vec<String>,
    pub format: WebhookFormat,
    pub has_secret: bool,
    /// `config` or `api`.
    pub managed_by: String,
    pub status: WebhookStatus,
}

/// What a webhook's deliveries came to.
#[derive(Serialize, ToSchema)]
pub struct WebhookStatus {
    pub queued: u64,
    #[schema(format = DateTime)]
    pub last_success_at: Option<String>,
    pub last_error: Option<String>,
    #[schema(format = DateTime)]
    pub last_error_at: Option<String>,
    pub delivered: u64,
    pub failed_attempts: u64,
    pub dropped: u64,
}

#[derive(Serialize, ToSchema)]
pub struct WebhookList {
    pub webhooks: Vec<Webhook>,
    pub total_count: u64,
    pub dropped_deliveries: u64,
    pub tap_overflows: u64,
    pub queued: u64,
    /// Null without `[mqtt]`.
    pub mqtt_connected: Option<bool>,
    pub mqtt_published: u64,
    pub mqtt_dropped_events: u64,
}

/// A webhook to add.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookInput {
    /// Made (`wh_…`) when absent.
    #[serde(default)]
    #[schema(pattern = r"^[A-Za-z0-9_.\-]{1,64}$")]
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    /// http:// or https://; a secret (shown redacted).
    pub url: String,
    /// Event types to send; empty or absent = job_auto_created, job_created,
    /// job_updated, job_deleted, printer_status.
    #[serde(default)]
    pub events: Vec<String>,
    /// For `job_updated`: only these new statuses (empty = any status change).
    #[serde(default)]
    pub statuses: Vec<JobStatus>,
    /// Only events about these printers (empty = all).
    #[serde(default)]
    pub printer_ids: Vec<String>,
    /// HMAC-SHA256 key for `X-Printfarmd-Signature`.
    #[serde(default)]
    pub secret: Option<String>,
    /// Default `json`.
    #[serde(default)]
    pub format: WebhookFormat,
}

/// `POST /api/v1/backup`.
#[derive(Serialize, ToSchema)]
pub struct BackupDone {
    /// Always `success`.
    pub status: String,
    pub backup: BackupInfo,
}

#[derive(Serialize, ToSchema)]
pub struct BackupInfo {
    pub path: String,
    pub bytes: u64,
    pub jobs: i64,
    pub took_ms: u64,
}

/// A printer took a pause, resume or cancel.
#[derive(Serialize, ToSchema)]
pub struct CommandAccepted {
    /// Always `accepted`.
    pub status: String,
    pub command_id: String,
    /// `pause`, `resume` or `cancel`.
    pub command: String,
    pub printer_id: String,
    /// The job of the print the command is about.
    pub job_id: Option<String>,
}

/// One message on `/ws` (the event stream's envelope).
#[derive(Serialize, ToSchema)]
pub struct Event {
    /// `job_auto_created`, `job_created`, `job_updated`, `job_deleted`,
    /// `printer_status`, `settings_updated`; and the replies `pong`, `subscribed`,
    /// `error`.
    #[serde(rename = "type")]
    pub kind: String,
    /// A job, `{"id"}` for `job_deleted`, a printer for `printer_status`, the settings
    /// for `settings_updated`.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    #[schema(format = DateTime)]
    pub timestamp: String,
    /// Numbered across the daemon's events: strictly increasing on every connection,
    /// with gaps (events a subscription filters out, a `printer_status` replaced by a
    /// newer one before it was sent).
    pub seq: u64,
}
