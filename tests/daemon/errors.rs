//! Bad requests get the right status code and the JSON error shape, and change nothing.

use serde_json::{Value, json};

use crate::harness::Daemon;

fn assert_error(code: u16, body: &Value, want_code: u16, want: &str) {
    assert_eq!(code, want_code, "{body}");
    assert_eq!(body["status"], "error", "{body}");
    assert_eq!(body["code"], want, "{body}");
    assert!(!body["message"].as_str().unwrap_or("").is_empty(), "{body}");
}

async fn raw(
    d: &Daemon,
    method: &str,
    path: &str,
    ct: Option<&str>,
    body: Vec<u8>,
) -> (u16, Value) {
    let mut req = d
        .http
        .request(method.parse().unwrap(), d.url(path))
        .body(body);
    if let Some(ct) = ct {
        req = req.header("content-type", ct);
    }
    let r = req.send().await.unwrap();
    let code = r.status().as_u16();
    (code, r.json().await.unwrap_or(Value::Null))
}

/// POSTs `body` to /api/v1/jobs over a plain TCP socket, with Content-Length or chunked,
/// ignores a write the server cut off, and parses the response it sent.
async fn raw_oversized(d: &Daemon, body: &[u8], chunked: bool) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = d.base.trim_start_matches("http://").to_string();
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut head = format!(
        "POST /api/v1/jobs HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\nconnection: close\r\n"
    );
    if chunked {
        head.push_str("transfer-encoding: chunked\r\n\r\n");
    } else {
        head.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
    }
    let mut out = head.into_bytes();
    if chunked {
        for c in body.chunks(64 * 1024) {
            out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
            out.extend_from_slice(c);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"0\r\n\r\n");
    } else {
        out.extend_from_slice(body);
    }
    let (mut rd, mut wr) = s.split();
    let mut resp = Vec::new();
    let write = async {
        let _ = wr.write_all(&out).await;
        let _ = wr.shutdown().await;
    };
    let read = async {
        let _ = rd.read_to_end(&mut resp).await;
    };
    tokio::join!(write, read);
    let text = String::from_utf8_lossy(&resp).to_string();
    let code: u16 = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP response: {text:?}"));
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
    // A chunked reply wraps the JSON in chunk-size lines; take the JSON object itself.
    let json = match (body.find('{'), body.rfind('}')) {
        (Some(a), Some(b)) => &body[a..=b],
        _ => "",
    };
    (code, serde_json::from_str(json).unwrap_or(Value::Null))
}

#[tokio::test]
async fn bad_bodies_are_refused_with_the_right_code() {
    let d = Daemon::start("");
    let json_ct = Some("application/json");
    let (c, b) = raw(
        &d,
        "POST",
        "/api/v1/jobs",
        json_ct,
        b"{\"printer_id\": ".to_vec(),
    )
    .await;
    assert_error(c, &b, 400, "malformed_json");
    let (c, b) = d
        .send(
            "POST",
            "/api/v1/jobs",
            Some(json!({"printer_id": 5, "job_name": "a", "filename": "a"})),
        )
        .await;
    assert_error(c, &b, 422, "invalid_field");
    let (c, b) = d
        .send(
            "POST",
            "/api/v1/jobs",
            Some(
                json!({"printer_id": "prusa_1", "job_name": "a", "filename": "a", "colour": "red"}),
            ),
        )
        .await;
    assert_error(c, &b, 422, "invalid_field");
    assert!(b["message"].as_str().unwrap().contains("colour"), "{b}");
    let (c, b) = d
        .send(
            "POST",
            "/api/v1/jobs",
            Some(json!({"printer_id": "nope", "job_name": "a", "filename": "a"})),
        )
        .await;
    assert_error(c, &b, 422, "invalid_field");
    let (c, b) = d
        .send(
            "POST",
            "/api/v1/jobs",
            Some(json!({"printer_id": "prusa_1", "job_name": "", "filename": "a"})),
        )
        .await;
    assert_error(c, &b, 422, "invalid_field");
    let (c, b) = raw(
        &d,
        "POST",
        "/api/v1/jobs",
        Some("text/plain"),
        b"{}".to_vec(),
    )
    .await;
    assert_error(c, &b, 415, "unsupported_media_type");
    let (c, b) = raw(&d, "POST", "/api/v1/jobs", None, b"{}".to_vec()).await;
    assert_error(c, &b, 415, "unsupported_media_type");

    // Over 1 MiB, with Content-Length and chunked without it. The daemon may answer
    // 413 before the body is all sent, so these go over a raw socket that keeps
    // reading after a refused write (as curl does).
    let big = format!("{{\"notes\": \"{}\"}}", "x".repeat(1024 * 1024 + 10));
    let (c, b) = raw_oversized(&d, big.as_bytes(), false).await;
    assert_error(c, &b, 413, "payload_too_large");
    let (c, b) = raw_oversized(&d, big.as_bytes(), true).await;
    assert_error(c, &b, 413, "payload_too_large");

    // Nothing was created by any of these.
    let (_, list) = d.get("/api/v1/jobs").await;
    assert_eq!(list["total_count"], 0);
}

#[tokio::test]
async fn unknown_ids_paths_methods_and_queries() {
    let d = Daemon::start("");
    let (c, b) = d.get("/api/v1/jobs/job_doesnotexist").await;
    assert_error(c, &b, 404, "job_not_found");
    let (c, b) = d
        .send(
            "PUT",
            "/api/v1/jobs/job_doesnotexist",
            Some(json!({"notes": "x"})),
        )
        .await;
    assert_error(c, &b, 404, "job_not_found");
    let (c, b) = d
        .send("DELETE", "/api/v1/jobs/job_doesnotexist", None)
        .await;
    assert_error(c, &b, 404, "job_not_found");
    let (c, b) = d.get("/api/v1/nothing-here").await;
    assert_error(c, &b, 404, "not_found");
    let (c, b) = d.send("PATCH", "/api/v1/jobs", None).await;
    assert_error(c, &b, 405, "method_not_allowed");
    let (c, b) = d.send("DELETE", "/api/v1/settings", None).await;
    assert_error(c, &b, 405, "method_not_allowed");
    for q in [
        "limit=abc",
        "limit=5000",
        "offset=-3",
        "status=done",
        "auto_created=maybe",
        "since=tuesday",
        "sort=name",
    ] {
        let (c, b) = d.get(&format!("/api/v1/jobs?{q}")).await;
        assert_error(c, &b, 400, "invalid_query");
    }
}

#[tokio::test]
async fn bad_edits_change_nothing() {
    let d = Daemon::start("");
    let (_, job) = d
        .send(
            "POST",
            "/api/v1/jobs",
            Some(json!({"printer_id": "prusa_1", "job_name": "a", "filename": "a.gcode"})),
        )
        .await;
    let path = format!("/api/v1/jobs/{}", job["id"].as_str().unwrap());
    for body in [
        json!({"progress": 150}),
        json!({"status": "exploded"}),
        json!({"start_time": "noon"}),
        json!({"estimated_duration": -5}),
        json!({"filename": "renamed.gcode"}),
        json!({"customer_info": "not an object"}),
        // A pending job has not ended: an end_time alone, or with a status that is not
        // an end, would make a job that ended before it started.
        json!({"end_time": "2026-01-01T00:00:00Z"}),
        json!({"status": "running", "end_time": "2026-01-01T00:00:00Z"}),
    ] {
        let (c, b) = d.send("PUT", &path, Some(body.clone())).await;
        assert_eq!(c, 422, "{body} -> {b}");
    }
    let (_, after) = d.get(&path).await;
    assert_eq!(after, job);
}
