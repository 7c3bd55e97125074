//! The OpenAPI document (issue 17) against the daemon that serves it: it is served
//! without a key, parses, is OpenAPI 3.1; every route the daemon serves is in it and
//! every route in it is served (probed on the live daemon: a documented method is
//! neither 405 nor "no such path", an undocumented one is 405 with an `Allow` header
//! naming the documented ones); and real answers, errors included, fit the schemas the
//! document gives for their status codes (checked with the `jsonschema` crate).
//! schemathesis does the same with generated requests in CI (`.ci/schemathesis`).

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::Daemon;

/// Every (method, path) `api::routes` (src/api/mod.rs) serves, besides the dashboard's
/// files. A route added there must be added here and to the document: the test fails
/// while the two differ, and a documented route the daemon does not serve fails the probe.
const SERVED: &[(&str, &str)] = &[
    ("GET", "/api/v1/jobs"),
    ("POST", "/api/v1/jobs"),
    ("GET", "/api/v1/jobs/export"),
    ("GET", "/api/v1/jobs/{id}"),
    ("PUT", "/api/v1/jobs/{id}"),
    ("DELETE", "/api/v1/jobs/{id}"),
    ("GET", "/api/v1/stats"),
    ("GET", "/api/v1/printers"),
    ("POST", "/api/v1/printers"),
    ("GET", "/api/v1/printers/{id}"),
    ("PUT", "/api/v1/printers/{id}"),
    ("DELETE", "/api/v1/printers/{id}"),
    ("POST", "/api/v1/printers/{id}/certificate/reset"),
    ("POST", "/api/v1/printers/{id}/pause"),
    ("POST", "/api/v1/printers/{id}/resume"),
    ("POST", "/api/v1/printers/{id}/cancel"),
    ("GET", "/api/v1/settings"),
    ("PUT", "/api/v1/settings"),
    ("GET", "/api/v1/keys"),
    ("POST", "/api/v1/keys"),
    ("DELETE", "/api/v1/keys/{id}"),
    ("GET", "/api/v1/auth"),
    ("GET", "/api/v1/webhooks"),
    ("POST", "/api/v1/webhooks"),
    ("DELETE", "/api/v1/webhooks/{id}"),
    ("POST", "/api/v1/backup"),
    ("GET", "/api/v1/health"),
    ("GET", "/metrics"),
    ("GET", "/ws"),
    ("GET", "/api/v1/openapi.json"),
];

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "DELETE", "PATCH"];
const ADMIN_KEY: &str = "openapi-test-admin-key-0123456789";

fn start() -> Daemon {
    Daemon::start(&format!(
        "[auth]\nenabled = true\napi_keys = [{{ key = \"{ADMIN_KEY}\", role = \"admin\" }}]\n\
         [backup]\ninterval_hours = 0\n"
    ))
}

/// A request with the admin key (and the custom header a bodiless write needs).
async fn call(d: &Daemon, method: &str, path: &str, body: Option<Value>) -> reqwest::Response {
    let mut req = d
        .http
        .request(Method::from_bytes(method.as_bytes()).unwrap(), d.url(path))
        .bearer_auth(ADMIN_KEY)
        .header("X-Requested-With", "printfarmd-tests");
    if let Some(b) = body {
        req = req.json(&b);
    }
    req.send().await.unwrap()
}

async fn document(d: &Daemon) -> Value {
    let r = d
        .http
        .get(d.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the document needs no key");
    let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("application/json"), "{ct}");
    let doc: Value = r.json().await.expect("the document is JSON");
    let version = doc["openapi"].as_str().unwrap_or_default();
    assert!(version.starts_with("3.1."), "OpenAPI {version:?}");
    doc
}

fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if METHODS.contains(&method.to_uppercase().as_str()) {
                out.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn every_served_route_is_documented_and_every_documented_route_is_served() {
    let d = start();
    let doc = document(&d).await;
    let docs = documented(&doc);
    let served: BTreeSet<(String, String)> = SERVED
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    let missing: Vec<_> = served.difference(&docs).collect();
    let extra: Vec<_> = docs.difference(&served).collect();
    assert!(missing.is_empty(), "served but not documented: {missing:?}");
    assert!(extra.is_empty(), "documented but not in SERVED: {extra:?}");

    let paths: BTreeSet<&String> = docs.iter().map(|(_, p)| p).collect();
    for path in paths {
        let concrete = path.replace("{id}", "no-such-id");
        let allowed: BTreeSet<&str> = docs
            .iter()
            .filter(|(_, p)| p == path)
            .map(|(m, _)| m.as_str())
            .collect();
        // `/jobs/export` is also `/jobs/{id}`: methods of the other documented paths
        // that match are served there.
        let elsewhere: BTreeSet<&str> = docs
            .iter()
            .filter(|(_, p)| p != path && matches(p, &concrete))
            .map(|(m, _)| m.as_str())
            .collect();
        for method in METHODS {
            if !allowed.contains(method) && elsewhere.contains(method) {
                continue;
            }
            // Bodies as a client would send them: `{}` to routes that take one.
            let takes_body = doc["paths"][path][method.to_lowercase()]["requestBody"].is_object();
            let r = call(&d, method, &concrete, takes_body.then(|| json!({}))).await;
            let status = r.status().as_u16();
            let allow = r
                .headers()
                .get("allow")
                .map(|v| v.to_str().unwrap().to_owned());
            let body: Value = r.json().await.unwrap_or(Value::Null);
            if allowed.contains(method) {
                assert_ne!(status, 405, "{method} {concrete}: documented but 405");
                assert!(
                    !(status == 404 && body["code"] == "not_found"),
                    "{method} {concrete}: documented but no such path: {body}"
                );
            } else {
                assert_eq!(
                    status, 405,
                    "{method} {concrete}: not documented, yet answered {status} {body}"
                );
                let allow =
                    allow.unwrap_or_else(|| panic!("{method} {concrete}: 405 without Allow"));
                let named: BTreeSet<&str> = allow.split(',').map(str::trim).collect();
                assert_eq!(named, allowed, "{method} {concrete}: Allow {allow:?}");
            }
        }
    }
}

/// Whether the documented `template` (`/api/v1/jobs/{id}`) matches `path`.
fn matches(template: &str, path: &str) -> bool {
    let t: Vec<&str> = template.split('/').collect();
    let p: Vec<&str> = path.split('/').collect();
    t.len() == p.len() && t.iter().zip(&p).all(|(t, p)| t.starts_with('{') || t == p)
}

/// The schema the document gives for `method path` answering `status` (JSON only).
fn response_schema(doc: &Value, method: &str, path: &str, status: u16) -> Value {
    let op = &doc["paths"][path][method.to_lowercase()];
    assert!(op.is_object(), "{method} {path} is not documented");
    let resp = &op["responses"][status.to_string()];
    assert!(
        resp.is_object(),
        "{method} {path}: status {status} is not documented"
    );
    let schema = resp["content"]["application/json"]["schema"].clone();
    assert!(
        schema.is_object(),
        "{method} {path} {status}: no JSON schema"
    );
    schema
}

/// Checks `body` against `schema`, whose `$ref`s point into the document's components.
fn assert_fits(doc: &Value, what: &str, schema: Value, body: &Value) {
    let errors = schema_errors(doc, what, schema, body);
    assert!(errors.is_empty(), "{what}: {errors:?}\nbody: {body}");
}

fn schema_errors(doc: &Value, what: &str, schema: Value, body: &Value) -> Vec<String> {
    let mut root = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "components": doc["components"].clone(),
    });
    for (k, v) in schema.as_object().unwrap() {
        root[k] = v.clone();
    }
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&root)
        .unwrap_or_else(|e| panic!("{what}: the schema does not compile: {e}"));
    validator
        .iter_errors(body)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

/// Calls the daemon and checks the answer against the document; returns the body.
async fn checked(
    d: &Daemon,
    doc: &Value,
    method: &str,
    path: &str,
    template: &str,
    body: Option<Value>,
    want: u16,
) -> Value {
    let r = call(d, method, path, body).await;
    let status = r.status().as_u16();
    let got: Value = r.json().await.unwrap_or(Value::Null);
    assert_eq!(status, want, "{method} {path}: {got}");
    let what = format!("{method} {path} ({status})");
    assert_fits(
        doc,
        &what,
        response_schema(doc, method, template, status),
        &got,
    );
    got
}

#[tokio::test(flavor = "multi_thread")]
async fn real_answers_fit_their_schemas() {
    let d = start();
    let doc = document(&d).await;
    let job = checked(
        &d,
        &doc,
        "POST",
        "/api/v1/jobs",
        "/api/v1/jobs",
        Some(
            json!({"printer_id": "prusa_1", "job_name": "Bracket", "filename": "bracket.gcode",
                    "customer_info": {"customer": "ACME", "po": 7}, "notes": "rush",
                    "estimated_duration": 3600}),
        ),
        201,
    )
    .await;
    // The check is not vacuous: a job that breaks its schema is refused.
    let job_schema = response_schema(&doc, "POST", "/api/v1/jobs", 201);
    for (field, wrong) in [
        ("status", json!("done")),
        ("progress", json!("half")),
        ("created_at", json!("yesterday")),
    ] {
        let mut bad = job.clone();
        bad[field] = wrong;
        let errors = schema_errors(&doc, field, job_schema.clone(), &bad);
        assert!(
            !errors.is_empty(),
            "a job with a wrong {field} fits the schema"
        );
    }
    let mut bad = job.clone();
    bad.as_object_mut().unwrap().remove("printer_id");
    assert!(!schema_errors(&doc, "printer_id", job_schema, &bad).is_empty());
    let id = job["id"].as_str().unwrap().to_owned();
    let one = format!("/api/v1/jobs/{id}");
    checked(&d, &doc, "GET", "/api/v1/jobs", "/api/v1/jobs", None, 200).await;
    checked(&d, &doc, "GET", &one, "/api/v1/jobs/{id}", None, 200).await;
    checked(
        &d,
        &doc,
        "PUT",
        &one,
        "/api/v1/jobs/{id}",
        Some(json!({"status": "failed", "notes": null})),
        200,
    )
    .await;
    let p = "/api/v1/printers/{id}";
    checked(
        &d,
        &doc,
        "GET",
        "/api/v1/printers",
        "/api/v1/printers",
        None,
        200,
    )
    .await;
    checked(&d, &doc, "GET", "/api/v1/printers/bambu_1", p, None, 200).await;
    checked(
        &d,
        &doc,
        "GET",
        "/api/v1/settings",
        "/api/v1/settings",
        None,
        200,
    )
    .await;
    let s = "/api/v1/stats";
    checked(&d, &doc, "GET", "/api/v1/stats?group_by=day", s, None, 200).await;
    checked(
        &d,
        &doc,
        "GET",
        "/api/v1/health",
        "/api/v1/health",
        None,
        200,
    )
    .await;
    checked(&d, &doc, "GET", "/api/v1/auth", "/api/v1/auth", None, 200).await;
    let key = checked(
        &d,
        &doc,
        "POST",
        "/api/v1/keys",
        "/api/v1/keys",
        Some(json!({"name": "wallboard", "role": "viewer"})),
        201,
    )
    .await;
    assert!(key["key"].is_string());
    checked(&d, &doc, "GET", "/api/v1/keys", "/api/v1/keys", None, 200).await;
    let w = "/api/v1/webhooks";
    checked(
        &d,
        &doc,
        "POST",
        w,
        w,
        Some(json!({"url": "http://127.0.0.1:9/hook"})),
        201,
    )
    .await;
    checked(&d, &doc, "GET", w, w, None, 200).await;
    checked(
        &d,
        &doc,
        "POST",
        "/api/v1/backup",
        "/api/v1/backup",
        None,
        201,
    )
    .await;
    // Errors: the one Error shape, under the status codes the document names.
    checked(
        &d,
        &doc,
        "GET",
        "/api/v1/jobs/job_nope",
        "/api/v1/jobs/{id}",
        None,
        404,
    )
    .await;
    checked(
        &d,
        &doc,
        "GET",
        "/api/v1/jobs?limit=0",
        "/api/v1/jobs",
        None,
        400,
    )
    .await;
    checked(
        &d,
        &doc,
        "GET",
        "/api/v1/stats?group_by=month",
        s,
        None,
        400,
    )
    .await;
    checked(
        &d,
        &doc,
        "PUT",
        "/api/v1/settings",
        "/api/v1/settings",
        Some(json!({"x": 1})),
        422,
    )
    .await;
    checked(
        &d,
        &doc,
        "POST",
        "/api/v1/printers/bambu_1/pause",
        "/api/v1/printers/{id}/pause",
        None,
        409,
    )
    .await;

    // Without a key: 401 everywhere but health (short) and the document itself.
    let r = d.http.get(d.url("/api/v1/jobs")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_fits(
        &doc,
        "GET /api/v1/jobs (401)",
        response_schema(&doc, "GET", "/api/v1/jobs", 401),
        &body,
    );
    let r = d.http.get(d.url("/api/v1/health")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body.as_object().unwrap().len(), 2, "{body}");
    assert_fits(
        &doc,
        "GET /api/v1/health (no key)",
        response_schema(&doc, "GET", "/api/v1/health", 200),
        &body,
    );
    assert_eq!(
        doc["paths"]["/api/v1/jobs"]["get"]["security"],
        json!([{"bearer": []}, {"api_key": []}])
    );
    assert_eq!(
        doc["paths"]["/api/v1/openapi.json"]["get"]["security"],
        json!([{}])
    );
}
