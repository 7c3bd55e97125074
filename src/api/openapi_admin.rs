//! The OpenAPI description of the other routes: settings, keys and who-am-I, webhooks,
//! backup, health, metrics, the event stream and the document itself (see
//! `openapi_paths.rs`).

#![allow(dead_code)]

use super::error::ErrorBody;
use super::keys::{KeyList, NewKeyBody};
use super::openapi_schemas as s;

#[utoipa::path(get, path = "/api/v1/settings", tag = "settings",
    summary = "The live settings",
    responses((status = 200, description = "The settings.", body = s::Settings)))]
pub fn get_settings() {}

#[utoipa::path(put, path = "/api/v1/settings", tag = "settings",
    summary = "Change settings",
    description = "Names at least one setting; unknown keys are refused. Clients on `/ws` get `settings_updated`.",
    request_body = s::SettingsPatch,
    responses(
        (status = 200, description = "Saved.", body = s::Success),
        (status = 504, description = "`write_outcome_unknown`.", body = ErrorBody),
    ))]
pub fn put_settings() {}

#[utoipa::path(get, path = "/api/v1/keys", tag = "access",
    summary = "List API keys",
    description = "Never with their secrets.",
    responses((status = 200, description = "The keys.", body = KeyList)))]
pub fn list_keys() {}

#[utoipa::path(post, path = "/api/v1/keys", tag = "access",
    summary = "Make an API key",
    request_body = NewKeyBody,
    responses((status = 201, description = "Made; `key` is shown this once.", body = s::CreatedKey)))]
pub fn create_key() {}

#[utoipa::path(delete, path = "/api/v1/keys/{id}", tag = "access",
    summary = "Revoke an API key",
    description = "Keys from daemon.toml are not listed here and cannot be revoked here.",
    params(("id" = String, Path, description = "The key's id.")),
    responses(
        (status = 204, description = "Revoked."),
        (status = 404, description = "`key_not_found`.", body = ErrorBody),
    ))]
pub fn revoke_key() {}

#[utoipa::path(get, path = "/api/v1/auth", tag = "access",
    summary = "Who am I",
    description = "The caller's role (the dashboard hides what the role cannot do).",
    responses((status = 200, description = "The caller.", body = s::WhoAmI)))]
pub fn whoami() {}

#[utoipa::path(get, path = "/api/v1/webhooks", tag = "webhooks",
    summary = "List webhooks with their delivery status",
    responses((status = 200, description = "The webhooks and the delivery counters.", body = s::WebhookList)))]
pub fn list_webhooks() {}

#[utoipa::path(post, path = "/api/v1/webhooks", tag = "webhooks",
    summary = "Add a webhook",
    request_body = s::WebhookInput,
    responses(
        (status = 201, description = "Added.", body = s::Webhook),
        (status = 409, description = "`conflict`: the id is taken, or the webhook limit is reached.", body = ErrorBody),
    ))]
pub fn create_webhook() {}

#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", tag = "webhooks",
    summary = "Delete a webhook",
    description = "Its queued deliveries are dropped. Webhooks from daemon.toml cannot be deleted here.",
    params(("id" = String, Path, description = "The webhook's id.")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 404, description = "`webhook_not_found`.", body = ErrorBody),
        (status = 409, description = "`managed_by_config`.", body = ErrorBody),
    ))]
pub fn delete_webhook() {}

#[utoipa::path(post, path = "/api/v1/backup", tag = "operations",
    summary = "Back the database up now",
    description = "An online backup into `[backup] dir`, consistent while the daemon runs.",
    responses(
        (status = 201, description = "Written.", body = s::BackupDone),
        (status = 409, description = "`backup_running`: another backup is running.", body = ErrorBody),
        (status = 500, description = "`backup_failed`: the backup directory cannot be written; or `database_error`.", body = ErrorBody),
    ))]
pub fn backup() {}

#[utoipa::path(get, path = "/api/v1/health", tag = "operations",
    summary = "Liveness and readiness",
    description = "200 while the database answers (`ok`, or `degraded` while writes fail); 503 `unavailable` when it does not, or when the daemon is stopping. `reason` says why whenever the status is not `ok`.",
    responses(
        (status = 200, description = "Up (`ok` or `degraded`).", body = s::Health),
        (status = 503, description = "`unavailable`.", body = s::Health),
    ))]
pub fn health() {}

#[utoipa::path(get, path = "/metrics", tag = "operations",
    summary = "Prometheus metrics",
    description = "The Prometheus text format (0.0.4), or OpenMetrics when the `Accept` header asks for `application/openmetrics-text`.",
    responses(
        (status = 200, description = "The metrics.",
            content(
                (String = "text/plain"),
                (String = "application/openmetrics-text"),
            )),
        (status = 500, description = "`metrics_failed`: the metrics could not be encoded.", body = ErrorBody),
    ))]
pub fn metrics() {}

#[utoipa::path(get, path = "/ws", tag = "operations",
    summary = "The event stream (WebSocket)",
    params(("api_key" = Option<String>, Query, description = "The API key, for clients that can send neither a header nor a subprotocol (it ends up in proxy logs).")),
    description = "A WebSocket (`Upgrade: websocket`). A browser may name the subprotocol `printfarmd.v1` and send its key as a second subprotocol `printfarmd.key.<key>` (a key in `?api_key=` also works, but ends up in proxy logs).\n\n\
Every message is JSON `{\"type\", \"data\", \"timestamp\", \"seq\"}` (schema `Event`): `seq` strictly increases on every connection, with gaps (events a subscription filters out, a `printer_status` replaced by a newer one before it was sent). A client that falls too far behind is closed (1013): reconnect and re-read `/api/v1/jobs`.\n\n\
Event types (`EventKind`):\n\
- `job_auto_created`: a print started and a job was created for it; `data` is the job (`Job`).\n\
- `job_created`: a job was created by hand; `data` is the job.\n\
- `job_updated`: a job changed (status at once, progress at most once a second per job); `data` is the job.\n\
- `job_deleted`: `data` is `{\"id\": \"job_…\"}`.\n\
- `printer_status`: a printer's live status, at most once a second per printer; `data` is the printer (`Printer`).\n\
- `settings_updated`: `data` is the settings (`Settings`).\n\n\
A client may send `{\"type\":\"ping\"}` (answered `{\"type\":\"pong\",\"timestamp\"}`) and \
`{\"type\":\"subscribe\",\"events\":[..],\"printer_ids\":[..]}` (answered `subscribed`; empty lists mean all). \
A bad message is answered `{\"type\":\"error\",\"data\":{\"code\",\"message\"}}`. Messages over 64 KiB close the connection (1009); \
a client too slow to read is closed with 1013, and all clients with 1001 when the daemon stops.",
    responses(
        (status = 101, description = "Switched to the WebSocket protocol."),
        (status = 400, description = "`websocket_required`: not a WebSocket upgrade; `bad_request`: an upgrade missing its WebSocket headers.", body = ErrorBody),
        (status = 403, description = "`origin_not_allowed`: a browser page on another site.", body = ErrorBody),
    ))]
pub fn events() {}

#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "operations",
    summary = "This document",
    responses((status = 200, description = "The OpenAPI 3.1 document.", content_type = "application/json", body = Object)))]
pub fn openapi() {}
