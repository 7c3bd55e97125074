//! The jobs API: manual create, get, list with every filter, edit, delete.

use serde_json::{Value, json};

use crate::harness::Daemon;

async fn create(d: &Daemon, body: Value) -> Value {
    let (code, job) = d.send("POST", "/api/v1/jobs", Some(body)).await;
    assert_eq!(code, 201, "{job}");
    job
}

#[tokio::test]
async fn a_manual_job_round_trips_through_every_endpoint() {
    let d = Daemon::start("");
    let job = create(
        &d,
        json!({"printer_id": "prusa_1", "job_name": "test_cube", "filename": "test_cube.3mf",
               "customer_info": {"customer": "ACME"}, "notes": "rush"}),
    )
    .await;
    let id = job["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("job_"), "{id}");
    assert_eq!(job["status"], "pending");
    assert_eq!(job["printer_type"], "prusalink");
    assert_eq!(job["progress"], 0.0);
    assert_eq!(job["start_time"], Value::Null);
    assert_eq!(job["customer_info"], json!({"customer": "ACME"}));
    for key in [
        "id",
        "printer_id",
        "printer_type",
        "job_name",
        "filename",
        "status",
        "progress",
        "start_time",
        "end_time",
        "estimated_duration",
        "actual_duration",
        "customer_info",
        "notes",
        "created_at",
        "updated_at",
    ] {
        assert!(job.get(key).is_some(), "missing {key} in {job}");
    }
    assert!(job["created_at"].as_str().unwrap().ends_with('Z'));

    let (code, got) = d.get(&format!("/api/v1/jobs/{id}")).await;
    assert_eq!((code, &got), (200, &job));

    let (code, edited) = d
        .send(
            "PUT",
            &format!("/api/v1/jobs/{id}"),
            Some(json!({"job_name": "cube v2", "status": "running", "customer_info": {"po": "77"}, "notes": null})),
        )
        .await;
    assert_eq!(code, 200, "{edited}");
    assert_eq!(edited["job_name"], "cube v2");
    assert_eq!(edited["status"], "running");
    assert!(edited["start_time"].is_string());
    assert_eq!(
        edited["customer_info"],
        json!({"customer": "ACME", "po": "77"})
    );
    assert_eq!(edited["notes"], Value::Null);

    let (code, done) = d
        .send(
            "PUT",
            &format!("/api/v1/jobs/{id}"),
            Some(json!({"status": "completed"})),
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(done["progress"], 100.0);
    assert!(done["end_time"].is_string());
    assert!(done["actual_duration"].as_i64().unwrap() >= 0);

    let (code, list) = d.get("/api/v1/jobs").await;
    assert_eq!(code, 200);
    assert_eq!(list["total_count"], 1);
    assert_eq!(list["jobs"][0], done);

    let r = d
        .http
        .delete(d.url(&format!("/api/v1/jobs/{id}")))
        .header("X-Requested-With", "curl")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    let (code, err) = d.get(&format!("/api/v1/jobs/{id}")).await;
    assert_eq!(code, 404);
    assert_eq!(err["code"], "job_not_found");
}

#[tokio::test]
async fn the_list_filters_pages_and_counts() {
    let d = Daemon::start("");
    // 12 jobs: alternating printers, 4 marked auto_created by their client, 3 ended.
    let mut ids = Vec::new();
    for i in 0..12 {
        let printer = if i % 2 == 0 { "prusa_1" } else { "bambu_1" };
        let mut body = json!({"printer_id": printer, "job_name": format!("part {i}"), "filename": format!("part_{i}.3mf")});
        if i % 3 == 0 {
            body["customer_info"] = json!({"auto_created": true});
        }
        if i >= 9 {
            body["status"] = json!("failed");
        }
        ids.push(create(&d, body).await["id"].as_str().unwrap().to_owned());
    }
    let count = |q: &'static str| {
        let d = &d;
        async move {
            let (code, v) = d.get(&format!("/api/v1/jobs?{q}")).await;
            assert_eq!(code, 200, "{q}: {v}");
            (
                v["total_count"].as_u64().unwrap(),
                v["jobs"].as_array().unwrap().len(),
            )
        }
    };
    assert_eq!(count("").await, (12, 12));
    assert_eq!(count("printer_id=prusa_1").await, (6, 6));
    assert_eq!(count("status=failed").await, (3, 3));
    assert_eq!(count("status=pending,failed").await, (12, 12));
    assert_eq!(count("auto_created=true").await, (4, 4));
    assert_eq!(count("auto_created=false").await, (8, 8));
    assert_eq!(count("q=part_1").await, (3, 3)); // part_1, part_10, part_11
    assert_eq!(count("q=PART%201").await, (3, 3)); // job names, case-insensitive
    assert_eq!(count("limit=5").await, (12, 5));
    assert_eq!(count("limit=5&offset=10").await, (12, 2));
    assert_eq!(
        count("since=2000-01-01T00:00:00Z&until=2999-01-01T00:00:00Z").await,
        (12, 12)
    );
    assert_eq!(count("until=2000-01-01T00:00:00Z").await, (0, 0));

    // Newest first, and limit/offset echoed.
    let (_, v) = d.get("/api/v1/jobs?limit=3&offset=1").await;
    let got: Vec<&str> = v["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        got,
        vec![ids[10].as_str(), ids[9].as_str(), ids[8].as_str()]
    );
    assert_eq!(
        (v["limit"].as_u64(), v["offset"].as_u64()),
        (Some(3), Some(1))
    );

    // The seed's client-side filter finds the same jobs as the server-side one.
    let (_, all) = d.get("/api/v1/jobs?limit=1000").await;
    let client_side = all["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["customer_info"]["auto_created"] == json!(true))
        .count();
    assert_eq!(client_side, 4);
}

#[tokio::test]
async fn auto_creation_keys_survive_edits() {
    let d = Daemon::start("");
    let info = json!({"auto_created": true, "discovery_time": "2025-01-09T14:30:00.000Z", "discovered_on_startup": false});
    let job = create(&d, json!({"printer_id": "bambu_1", "job_name": "x", "filename": "x.3mf", "customer_info": info})).await;
    let path = format!("/api/v1/jobs/{}", job["id"].as_str().unwrap());

    let (code, e) = d
        .send(
            "PUT",
            &path,
            Some(json!({"customer_info": {"auto_created": false}})),
        )
        .await;
    assert_eq!(code, 422, "{e}");
    assert!(e["message"].as_str().unwrap().contains("auto_created"));
    let (code, _) = d
        .send(
            "PUT",
            &path,
            Some(json!({"customer_info": {"discovery_time": null}})),
        )
        .await;
    assert_eq!(code, 422);

    let (code, j) = d
        .send(
            "PUT",
            &path,
            Some(json!({"customer_info": {"auto_created": true, "customer": "B"}})),
        )
        .await;
    assert_eq!(code, 200, "{j}");
    let mut expected = info.clone();
    expected["customer"] = json!("B");
    assert_eq!(j["customer_info"], expected);
    let (_, stored) = d.get(&path).await;
    assert_eq!(stored["customer_info"], expected);
}

#[tokio::test]
async fn a_printer_has_at_most_one_open_job() {
    let d = Daemon::start("");
    create(&d, json!({"printer_id": "prusa_1", "job_name": "a", "filename": "a.gcode", "status": "running"})).await;
    let (code, e) = d
        .send("POST", "/api/v1/jobs", Some(json!({"printer_id": "prusa_1", "job_name": "b", "filename": "b.gcode", "status": "paused"})))
        .await;
    assert_eq!(code, 409, "{e}");
    assert_eq!(e["code"], "conflict");
    // Another printer is free, and a pending job is not open.
    create(
        &d,
        json!({"printer_id": "bambu_1", "job_name": "a", "filename": "a.3mf", "status": "running"}),
    )
    .await;
    create(
        &d,
        json!({"printer_id": "prusa_1", "job_name": "c", "filename": "c.gcode"}),
    )
    .await;
}

#[tokio::test]
async fn an_acknowledged_job_survives_kill_9() {
    let mut d = Daemon::start("");
    let mut ids = Vec::new();
    for i in 0..20 {
        let j = create(
            &d,
            json!({"printer_id": "prusa_1", "job_name": format!("j{i}"), "filename": "f.gcode"}),
        )
        .await;
        ids.push(j["id"].as_str().unwrap().to_owned());
    }
    d.kill9();
    let d = Daemon::spawn(d.dir.clone(), d.config_path.clone(), &[]);
    let (_, list) = d.get("/api/v1/jobs?limit=100").await;
    assert_eq!(list["total_count"], 20);
    for id in ids {
        let (code, _) = d.get(&format!("/api/v1/jobs/{id}")).await;
        assert_eq!(code, 200, "{id} lost after kill -9");
    }
}
