//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 document of every route (issue 17),
//! built by `utoipa` from the request, answer and error types, once, on first request.
//!
//! The routes themselves are described in `openapi_paths.rs` (jobs, printers, stats)
//! and `openapi_admin.rs` (the rest); answers whose types live outside `api/` and
//! `domain/` in `openapi_schemas.rs`. What every route shares is added here
//! ([`Gate`]) from the same table the access gate uses (`auth/roles.rs`), so the
//! document's security and its 401/403/429 answers cannot drift from what the gate does:
//! which key a route needs, the `Host` check (421), the write checks (403, 415), the
//! body limits (400, 413, 415, 422) and the database's 500/503.
//!
//! `tests/daemon/openapi.rs` checks that every route the daemon serves is in the
//! document and that real answers fit their schemas; CI runs schemathesis over it
//! (`.ci/schemathesis`).

use std::sync::LazyLock;

use utoipa::Modify;
use utoipa::OpenApi;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{ContentBuilder, HeaderBuilder, Ref, RefOr, ResponseBuilder};
use warp::http::Method;
use warp::{Filter, Rejection, Reply};

use super::auth::roles::{self, Need};
use super::error::ErrorBody;
use super::{openapi_admin as admin, openapi_paths as paths, openapi_schemas as s};
use crate::config::Role;
use crate::domain;

/// The document, serialised once.
static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    ApiDoc::openapi()
        .to_json()
        .unwrap_or_else(|e| format!(r#"{{"openapi":"3.1.0","error":"{e}"}}"#))
});

/// The document as served (for tests and `printfarmd` itself).
pub fn document() -> &'static str {
    &DOCUMENT
}

/// Each documented path as segments, with the methods it takes (`GET, PUT, DELETE`).
static ROUTES: LazyLock<Vec<(Vec<String>, String)>> = LazyLock::new(|| {
    ApiDoc::openapi()
        .paths
        .paths
        .iter()
        .map(|(path, item)| {
            let segments = path
                .trim_matches('/')
                .split('/')
                .map(str::to_owned)
                .collect();
            let methods = [
                ("GET", &item.get),
                ("POST", &item.post),
                ("PUT", &item.put),
                ("DELETE", &item.delete),
                ("PATCH", &item.patch),
            ];
            let methods = methods
                .iter()
                .filter(|(_, op)| op.is_some())
                .map(|(m, _)| *m)
                .collect::<Vec<_>>()
                .join(", ");
            (segments, methods)
        })
        .collect()
});

/// The methods `path` takes, from the document: of the documented paths it matches, the
/// one with the fewest `{parameters}` (`/jobs/export` before `/jobs/{id}`).
pub fn allowed_methods(path: &str) -> Option<&'static str> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let is_param = |t: &String| t.starts_with('{');
    ROUTES
        .iter()
        .filter(|(t, _)| {
            t.len() == segments.len() && t.iter().zip(&segments).all(|(t, s)| is_param(t) || t == s)
        })
        .min_by_key(|(t, _)| t.iter().filter(|t| is_param(t)).count())
        .map(|(_, m)| m.as_str())
}

/// A 405 names the methods the path takes in `Allow` (RFC 9110 §15.5.6).
pub fn with_allow(mut r: warp::reply::Response, path: &str) -> warp::reply::Response {
    if r.status() == warp::http::StatusCode::METHOD_NOT_ALLOWED
        && let Some(v) = allowed_methods(path).and_then(|m| m.parse().ok())
    {
        r.headers_mut().insert(warp::http::header::ALLOW, v);
    }
    r
}

pub fn route() -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    warp::path!("api" / "v1" / "openapi.json")
        .and(warp::get())
        .map(|| warp::reply::with_header(document(), "content-type", "application/json"))
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "printfarmd",
        description = "A print-farm daemon: watches every 3D printer, records every print as a job, \
serves the history over REST and a WebSocket event stream (`/ws`).\n\n\
With `[auth] enabled = true` every route but `/api/v1/openapi.json`, `GET /api/v1/health` (which then \
answers only `status` and `version`) and the dashboard's files needs an API key, sent as \
`Authorization: Bearer <key>` or `X-Api-Key: <key>`; the role a route needs is in its description. \
With `[auth]` off (the default, for a daemon on localhost) no key is needed.\n\n\
A request that changes something (POST, PUT, DELETE) must carry `Content-Type: application/json` \
with its JSON body or, without a body, a custom header such as `X-Requested-With: curl` \
(403 `header_required` otherwise): web pages on other sites can send neither.\n\n\
Every error answers `{\"status\":\"error\",\"code\":\"<machine_code>\",\"message\":\"...\"}` \
(schema `Error`) with the status code below.",
        license(name = "MIT", identifier = "MIT"),
    ),
    paths(
        paths::list_jobs,
        paths::create_job,
        paths::export_jobs,
        paths::get_job,
        paths::update_job,
        paths::delete_job,
        paths::stats,
        paths::list_printers,
        paths::create_printer,
        paths::get_printer,
        paths::update_printer,
        paths::delete_printer,
        paths::reset_certificate,
        paths::pause_printer,
        paths::resume_printer,
        paths::cancel_printer,
        admin::get_settings,
        admin::put_settings,
        admin::list_keys,
        admin::create_key,
        admin::revoke_key,
        admin::whoami,
        admin::list_webhooks,
        admin::create_webhook,
        admin::delete_webhook,
        admin::backup,
        admin::health,
        admin::metrics,
        admin::events,
        admin::openapi,
    ),
    components(schemas(ErrorBody, s::Event, domain::EventKind)),
    modifiers(&Gate),
    tags(
        (name = "jobs", description = "The print history: list, export, create, edit, delete."),
        (name = "stats", description = "Statistics of a time window."),
        (name = "printers", description = "Printers with their live status; add, change, delete, control."),
        (name = "settings", description = "The live settings."),
        (name = "access", description = "API keys and who-am-I."),
        (name = "webhooks", description = "Webhooks and their delivery status."),
        (name = "operations", description = "Health, metrics, backups, the event stream, this document."),
    ),
)]
pub struct ApiDoc;

/// What every operation shares, from the access gate's own table.
struct Gate;

const BEARER: &str = "bearer";
const API_KEY: &str = "api_key";

impl Modify for Gate {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API key (`printfarmd key add`) as `Authorization: Bearer <key>`.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            API_KEY,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Api-Key",
                "The same API key as `X-Api-Key: <key>`.",
            ))),
        );
        for (path, item) in api.paths.paths.iter_mut() {
            // `/api/v1/jobs/{id}` → `/api/v1/jobs/id`: the table matches on the shape.
            let concrete: String = path.chars().filter(|c| !matches!(c, '{' | '}')).collect();
            let ops = [
                (Method::GET, &mut item.get),
                (Method::POST, &mut item.post),
                (Method::PUT, &mut item.put),
                (Method::DELETE, &mut item.delete),
                (Method::PATCH, &mut item.patch),
            ];
            for (method, op) in ops {
                if let Some(op) = op {
                    shared(&method, &concrete, op);
                }
            }
        }
    }
}

/// Adds the security requirement and the gate's and body reader's answers to `op`,
/// leaving any answer the route describes itself as it is.
fn shared(method: &Method, path: &str, op: &mut Operation) {
    let key = || {
        vec![
            SecurityRequirement::new(BEARER, Vec::<String>::new()),
            SecurityRequirement::new(API_KEY, Vec::<String>::new()),
        ]
    };
    let need = roles::need(method, path);
    op.security = Some(match need {
        Need::Public => vec![SecurityRequirement::default()],
        Need::Optional => [vec![SecurityRequirement::default()], key()].concat(),
        Need::Role(_) => key(),
    });
    let role_note = match need {
        Need::Public => "No key needed.".to_owned(),
        Need::Optional => "A key is optional; without one the answer is shorter.".to_owned(),
        Need::Role(r) => format!("Needs a key with the `{r}` role (when `[auth]` is on)."),
    };
    op.description = Some(match op.description.take() {
        Some(d) => format!("{d}\n\n{role_note}"),
        None => role_note,
    });
    let mut add = |code: u16, what: &str| {
        op.responses
            .responses
            .entry(code.to_string())
            .or_insert_with(|| error_response(code, what));
    };
    add(
        421,
        "`host_not_allowed`: the `Host` header names another site ([server] allowed_hosts).",
    );
    if need != Need::Public {
        add(
            401,
            "`unauthorized` (no key) or `invalid_key` (unknown, revoked or expired key).",
        );
        add(
            429,
            "`too_many_failed_keys`: too many wrong keys from this address; see `Retry-After`.",
        );
        add(
            500,
            "`database_error`: the database failed to answer (checking the key, or the request itself).",
        );
        add(
            503,
            "The database is unavailable or the daemon too busy to answer in time; retry shortly.",
        );
    }
    if matches!(need, Need::Role(r) if r > Role::Viewer) {
        add(
            403,
            "`forbidden`: the key's role is too low; or a write without `Content-Type: application/json` or a custom header (`header_required`), or from a foreign `Origin` (`origin_not_allowed`).",
        );
    }
    let write = *method != Method::GET && *method != Method::HEAD;
    if write {
        add(
            403,
            "`header_required`: a write needs `Content-Type: application/json` or a custom header such as `X-Requested-With`; or `origin_not_allowed`.",
        );
        add(
            415,
            "`unsupported_media_type`: a body that is not `application/json`.",
        );
    }
    if op.request_body.is_some() {
        add(400, "`malformed_json`: the body is not valid JSON.");
        add(413, "`payload_too_large`: the body is larger than 1 MiB.");
        add(
            422,
            "`invalid_field`: the body is JSON but a field is missing, unknown, of the wrong type or out of range.",
        );
    }
    if let Some(r) = op.responses.responses.get_mut("429")
        && let RefOr::T(r) = r
    {
        r.headers.entry("Retry-After".into()).or_insert_with(|| {
            RefOr::T(
                HeaderBuilder::new()
                    .schema(Some(
                        utoipa::openapi::ObjectBuilder::new()
                            .schema_type(utoipa::openapi::schema::Type::Integer),
                    ))
                    .description(Some("Seconds until a key is accepted again."))
                    .build(),
            )
        });
    }
}

fn error_response(_code: u16, what: &str) -> RefOr<utoipa::openapi::Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(what)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("Error")))
                    .build(),
            )
            .build(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_names_the_documented_methods_of_the_closest_path() {
        assert_eq!(allowed_methods("/api/v1/jobs/export"), Some("GET"));
        assert_eq!(
            allowed_methods("/api/v1/jobs/job_1"),
            Some("GET, PUT, DELETE")
        );
        assert_eq!(allowed_methods("/api/v1/jobs"), Some("GET, POST"));
        assert_eq!(allowed_methods("/api/v1/nothing"), None);
    }

    #[test]
    fn the_document_is_openapi_3_1_with_every_operation_secured() {
        let v: serde_json::Value = serde_json::from_str(document()).unwrap();
        assert!(
            v["openapi"].as_str().unwrap().starts_with("3.1."),
            "{}",
            v["openapi"]
        );
        for (path, item) in v["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                assert!(op["security"].is_array(), "{method} {path}");
                assert!(op["responses"]["421"].is_object(), "{method} {path}");
            }
        }
        assert_eq!(
            v["paths"]["/api/v1/openapi.json"]["get"]["security"],
            serde_json::json!([{}])
        );
    }
}
