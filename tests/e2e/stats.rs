//! Issue 17 end to end: prints on simulated Bambu printers that complete, fail with a
//! real Bambu error code and are cancelled, and a manual job, then `GET /api/v1/stats`
//! in every grouping, the export as CSV (read back with the `csv` crate) and NDJSON,
//! the `end_reason` filter, and 400s for bad parameters.

use serde_json::{Value, json};

use crate::rig::{Rig, print, x1};
use printfarmd_sim::Action;

/// What the simulator's failure (print_error 0300_8009 with HMS 0300_0100_0001_0007)
/// reads as, from the decode table in printers/bambu/errors.rs.
const BAMBU_FAILURE: &str = "Heatbed temperature malfunction (0300_8009); The heatbed temperature \
     is abnormal; the sensor may have an open circuit (HMS 0300_0100_0001_0007)";
const API_CANCEL: &str = "cancelled from printfarmd";
/// A name CSV must quote: a comma, a quote and a line break.
const AWKWARD: &str = "Order 7, \"rush\"\nsecond line";

async fn get_text(r: &Rig, path: &str) -> (u16, reqwest::header::HeaderMap, String) {
    let resp = r.d.http.get(r.d.url(path)).send().await.unwrap();
    let code = resp.status().as_u16();
    let headers = resp.headers().clone();
    (code, headers, resp.text().await.unwrap())
}

async fn stats(r: &Rig, query: &str) -> Value {
    let (code, body) = r.d.get(&format!("/api/v1/stats?{query}")).await;
    assert_eq!(code, 200, "{body}");
    body
}

async fn run_to_end(r: &Rig, id: &str, file: &str, end: Action, status: &str) {
    r.act(id, print(file, 120)).await;
    r.wait_printer(id, "printing with progress", |p| {
        p["state"] == "printing" && p["current_print"]["progress"].as_f64() > Some(0.0)
    })
    .await;
    r.wait_jobs(&format!("printer_id={id}"), "running", |j| {
        j.first().is_some_and(|j| j["status"] == "running")
    })
    .await;
    match end {
        Action::Cancel => {
            let (code, body) =
                r.d.send("POST", &format!("/api/v1/printers/{id}/cancel"), None)
                    .await;
            assert_eq!(code, 202, "{body}");
        }
        a => r.act(id, a).await,
    }
    r.wait_jobs(&format!("printer_id={id}"), status, |j| {
        j.first().is_some_and(|j| j["status"] == status)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_export_and_end_reasons_over_real_prints() {
    let r = Rig::start(x1(3)).await;
    let (code, manual) =
        r.d.send(
            "POST",
            "/api/v1/jobs",
            Some(json!({"printer_id": "bambu_3", "job_name": AWKWARD,
                        "filename": "queued_later.3mf", "notes": "a,b",
                        "customer_info": {"customer": "ACME, Inc."}})),
        )
        .await;
    assert_eq!(code, 201, "{manual}");
    run_to_end(&r, "bambu_1", "cube.3mf", Action::Finish, "completed").await;
    run_to_end(&r, "bambu_2", "bracket.3mf", Action::Fail, "failed").await;
    // The driver reads the printer's code and HMS alert into words.
    r.wait_printer("bambu_2", "the failure in words", |p| {
        p["error"] == BAMBU_FAILURE
    })
    .await;
    run_to_end(&r, "bambu_3", "cube.3mf", Action::Cancel, "cancelled").await;

    // Totals and per printer.
    let s = stats(&r, "").await;
    assert_eq!(s["group_by"], "printer");
    let t = &s["totals"];
    assert_eq!(t["jobs"], 4, "{s:#}");
    assert_eq!(
        t["by_status"],
        json!({"completed": 1, "failed": 1, "cancelled": 1, "unknown": 0,
               "running": 0, "paused": 0, "pending": 1})
    );
    assert_eq!(t["success_rate"], 0.3333);
    assert_eq!(
        (t["auto_created"].as_u64(), t["manual"].as_u64()),
        (Some(3), Some(1))
    );
    assert!(t["print_hours"].as_f64().unwrap() > 0.0, "{t}");
    let u = t["utilisation"].as_f64().unwrap();
    assert!(u > 0.0 && u < 0.01, "three short prints in 30 days: {u}");
    assert!(t["mean_duration_s"].as_u64().is_some() && t["p90_duration_s"].as_u64().is_some());
    let reasons = t["end_reasons"].as_array().unwrap();
    assert!(
        reasons.contains(&json!({"reason": API_CANCEL, "count": 1})),
        "{reasons:?}"
    );
    let keys: Vec<&str> = s["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["bambu_1", "bambu_2", "bambu_3"]);
    assert_eq!(s["groups"][2]["jobs"], 2);
    assert_eq!(s["groups"][0]["success_rate"], 1.0);

    // One printer, comma-separated with an unknown one; by file, day and week. (The
    // file is named as the printer reports it: an X1 gives the task's name.)
    let cube = r.jobs("printer_id=bambu_1").await[0]["filename"].clone();
    let s = stats(&r, "printer_id=bambu_1,nope&group_by=file").await;
    assert_eq!(s["totals"]["jobs"], 1);
    assert_eq!(s["groups"][0]["key"], cube);
    let s = stats(&r, "group_by=file").await;
    assert_eq!(s["groups"][0]["key"], cube);
    assert_eq!(s["groups"][0]["jobs"], 2);
    let today = chrono::Utc::now().date_naive();
    let s = stats(&r, "group_by=day").await;
    let days = s["groups"].as_array().unwrap();
    assert_eq!(days.len(), 31, "30 days back from now touch 31 dates");
    let last = days.last().unwrap();
    assert_eq!(last["key"], today.format("%Y-%m-%d").to_string());
    assert_eq!(last["jobs"], 4);
    assert_eq!(days[0]["jobs"], 0);
    let s = stats(&r, "group_by=week").await;
    let week = chrono::Datelike::iso_week(&today);
    assert_eq!(
        s["groups"].as_array().unwrap().last().unwrap()["key"],
        format!("{}-W{:02}", week.year(), week.week())
    );
    // A window before any of it.
    let s = stats(&r, "since=2020-01-01T00:00:00Z&until=2020-02-01T00:00:00Z").await;
    assert_eq!(s["totals"]["jobs"], 0);
    assert_eq!(s["totals"]["success_rate"], Value::Null);

    // The end_reason filter: exact, and `*` for any.
    let cancelled = r
        .jobs(&format!("end_reason={}", urlencode(API_CANCEL)))
        .await;
    assert_eq!(cancelled.len(), 1);
    assert_eq!(cancelled[0]["printer_id"], "bambu_3");
    let any = r.jobs("end_reason=*").await;
    assert!(
        !any.is_empty() && any.iter().all(|j| j["end_reason"].is_string()),
        "{any:?}"
    );
    assert!(r.jobs("end_reason=no%20such%20reason").await.is_empty());

    // CSV export, read back.
    let (code, headers, body) = get_text(&r, "/api/v1/jobs/export?format=csv").await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(headers["content-type"], "text/csv; charset=utf-8");
    let cd = headers["content-disposition"].to_str().unwrap();
    assert!(
        cd.starts_with("attachment; filename=\"printfarmd-jobs-") && cd.ends_with(".csv\""),
        "{cd}"
    );
    let mut rd = csv::Reader::from_reader(body.as_bytes());
    let header: Vec<String> = rd.headers().unwrap().iter().map(str::to_owned).collect();
    assert_eq!(header[..3], ["id", "printer_id", "printer_type"]);
    assert_eq!(header.len(), 16);
    let rows: Vec<csv::StringRecord> = rd.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 4);
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let m = rows
        .iter()
        .find(|r| &r[col("id")] == manual["id"].as_str().unwrap())
        .unwrap();
    assert_eq!(&m[col("job_name")], AWKWARD);
    assert_eq!(&m[col("notes")], "a,b");
    let info: Value = serde_json::from_str(&m[col("customer_info")]).unwrap();
    assert_eq!(info["customer"], "ACME, Inc.");
    let listed: Vec<String> = r
        .jobs("")
        .await
        .iter()
        .map(|j| j["id"].as_str().unwrap().to_owned())
        .collect();
    let exported: Vec<String> = rows.iter().map(|r| r[col("id")].to_owned()).collect();
    assert_eq!(exported, listed, "the same jobs, newest first");
    let c = rows
        .iter()
        .find(|r| &r[col("printer_id")] == "bambu_3" && &r[col("status")] == "cancelled")
        .unwrap();
    assert_eq!(&c[col("end_reason")], API_CANCEL);

    // NDJSON in the API's job shape, filtered like the list.
    let (code, headers, body) = get_text(
        &r,
        "/api/v1/jobs/export?format=ndjson&status=failed,cancelled",
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(headers["content-type"], "application/x-ndjson");
    let jobs: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(jobs.len(), 2);
    assert_eq!(jobs[0], r.jobs("status=failed,cancelled").await[0]);
    let (_, _, body) = get_text(
        &r,
        &format!(
            "/api/v1/jobs/export?format=ndjson&end_reason={}",
            urlencode(API_CANCEL)
        ),
    )
    .await;
    assert_eq!(body.lines().count(), 1);

    // Bad parameters: 400 with the error shape, naming what is wrong.
    for (path, word) in [
        ("/api/v1/stats?group_by=month", "group_by"),
        ("/api/v1/stats?since=yesterday", "since"),
        (
            "/api/v1/stats?since=2024-01-01T00:00:00Z&until=2026-01-01T00:00:00Z",
            "366",
        ),
        (
            "/api/v1/stats?until=2020-01-01T00:00:00Z&since=2021-01-01T00:00:00Z",
            "before",
        ),
        ("/api/v1/jobs/export?format=xml", "format"),
        ("/api/v1/jobs/export?limit=5", "limit"),
        ("/api/v1/jobs/export?status=done", "status"),
        ("/api/v1/jobs?end_reason=", "end_reason"),
    ] {
        let (code, body) = r.d.get(path).await;
        assert_eq!(code, 400, "{path}: {body}");
        assert_eq!(body["status"], "error");
        assert_eq!(body["code"], "invalid_query");
        assert!(
            body["message"].as_str().unwrap().contains(word),
            "{path}: {body}"
        );
    }
}

fn urlencode(s: &str) -> String {
    serde_urlencoded::to_string([("x", s)]).unwrap()[2..].to_owned()
}
