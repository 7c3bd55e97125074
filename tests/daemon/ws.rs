//! The WebSocket event stream: envelope, job and settings events, ping/pong, subscribe
//! filters, and a client that never reads not holding anyone else up.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::harness::{Daemon, WS_WAIT};

#[tokio::test]
async fn job_and_settings_events_carry_the_envelope() {
    let d = Daemon::start("");
    let mut ws = d.ws().await;
    ws.send_json(json!({"type": "ping"})).await;
    assert_eq!(ws.next_of("pong").await["type"], "pong");

    let (_, job) = d
        .send(
            "POST",
            "/api/v1/jobs",
            Some(json!({"printer_id": "prusa_1", "job_name": "cube", "filename": "cube.gcode"})),
        )
        .await;
    let created = ws.next_of("job_created").await;
    assert_eq!(
        created["data"], job,
        "the event carries the same JSON as the REST API"
    );
    assert!(created["timestamp"].as_str().unwrap().ends_with('Z'));
    let seq1 = created["seq"].as_u64().unwrap();

    let path = format!("/api/v1/jobs/{}", job["id"].as_str().unwrap());
    let (_, edited) = d
        .send("PUT", &path, Some(json!({"status": "running"})))
        .await;
    let updated = ws.next_of("job_updated").await;
    assert_eq!(updated["data"], edited);
    assert!(updated["seq"].as_u64().unwrap() > seq1);

    d.send("DELETE", &path, None).await;
    let deleted = ws.next_of("job_deleted").await;
    assert_eq!(deleted["data"], json!({"id": job["id"]}));

    d.send(
        "PUT",
        "/api/v1/settings",
        Some(json!({"monitoring_interval": 9})),
    )
    .await;
    let s = ws.next_of("settings_updated").await;
    assert_eq!(
        s["data"],
        json!({"job_creation_auto_create": true, "monitoring_interval": 9})
    );
}

#[tokio::test]
async fn two_clients_with_different_subscriptions_get_exactly_their_events() {
    let d = Daemon::start("");
    let mut only_prusa = d.ws().await;
    only_prusa
        .subscribe(json!({"printer_ids": ["prusa_1"]}))
        .await;
    let mut only_settings = d.ws().await;
    only_settings
        .subscribe(json!({"events": ["settings_updated"]}))
        .await;
    let mut everything = d.ws().await;

    for printer in ["bambu_1", "prusa_1", "bambu_1"] {
        d.send(
            "POST",
            "/api/v1/jobs",
            Some(json!({"printer_id": printer, "job_name": "x", "filename": "x.gcode"})),
        )
        .await;
    }
    d.send(
        "PUT",
        "/api/v1/settings",
        Some(json!({"job_creation_auto_create": false})),
    )
    .await;
    // A marker every client receives last, so "nothing else arrived" is decidable.
    d.send(
        "PUT",
        "/api/v1/settings",
        Some(json!({"job_creation_auto_create": true})),
    )
    .await;

    /// The events up to the second settings marker; `printer_status` events (the
    /// configured printers connect and fail on their own schedule) apart, by printer id.
    async fn collect(ws: &mut crate::harness::Ws) -> (Vec<(String, Option<String>)>, Vec<String>) {
        let mut got = Vec::new();
        let mut statuses = Vec::new();
        let mut settings_seen = 0;
        while settings_seen < 2 {
            let v = ws.next_json(WS_WAIT).await.expect("stream ended early");
            let t = v["type"].as_str().unwrap().to_owned();
            if t == "printer_status" {
                statuses.push(v["data"]["id"].as_str().unwrap_or("?").to_owned());
                continue;
            }
            if t == "settings_updated" {
                settings_seen += 1;
            }
            got.push((t, v["data"]["printer_id"].as_str().map(str::to_owned)));
        }
        (got, statuses)
    }
    let s = |t: &str, p: Option<&str>| (t.to_owned(), p.map(str::to_owned));
    let (got, statuses) = collect(&mut only_prusa).await;
    assert_eq!(
        got,
        vec![
            s("job_created", Some("prusa_1")),
            s("settings_updated", None),
            s("settings_updated", None)
        ]
    );
    assert!(
        statuses.iter().all(|id| id == "prusa_1"),
        "another printer's status reached a prusa_1-only client: {statuses:?}"
    );
    let (got, statuses) = collect(&mut only_settings).await;
    assert_eq!(
        got,
        vec![s("settings_updated", None), s("settings_updated", None)]
    );
    assert!(statuses.is_empty(), "{statuses:?}");
    assert_eq!(
        collect(&mut everything).await.0,
        vec![
            s("job_created", Some("bambu_1")),
            s("job_created", Some("prusa_1")),
            s("job_created", Some("bambu_1")),
            s("settings_updated", None),
            s("settings_updated", None)
        ]
    );
}

#[tokio::test]
async fn bad_client_messages_get_an_error_reply_and_the_stream_goes_on() {
    let d = Daemon::start("");
    let mut ws = d.ws().await;
    ws.send_json(json!({"type": "subscribe", "events": ["job_exploded"]}))
        .await;
    let e = ws.next_of("error").await;
    assert!(
        e["data"]["message"]
            .as_str()
            .unwrap()
            .contains("job_exploded"),
        "{e}"
    );
    ws.s.send(Message::text("not json")).await.unwrap();
    assert_eq!(ws.next_of("error").await["data"]["code"], "invalid_message");
    ws.send_json(json!({"type": "ping"})).await;
    ws.next_of("pong").await;
}

#[tokio::test]
async fn a_client_that_never_reads_does_not_delay_another() {
    const SENT: usize = 1500;
    let d = Daemon::start("");
    let (_, job) = d
        .send(
            "POST",
            "/api/v1/jobs",
            Some(json!({"printer_id": "prusa_1", "job_name": "big", "filename": "big.gcode"})),
        )
        .await;
    let path = format!("/api/v1/jobs/{}", job["id"].as_str().unwrap());
    // Subscribed, then never read again. Its receive buffer is kept small: this host lets
    // loopback receive buffers grow to 32 MB, which would swallow every event.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(16 * 1024).unwrap();
    let tcp = sock
        .connect(d.base.trim_start_matches("http://").parse().unwrap())
        .await
        .unwrap();
    let (s, _) =
        tokio_tungstenite::client_async(d.ws_url(), tokio_tungstenite::MaybeTlsStream::Plain(tcp))
            .await
            .expect("ws connect");
    let mut stuck = crate::harness::Ws { s };
    stuck.send_json(json!({"type": "ping"})).await;
    let mut reader = d.ws().await;

    // Each event carries ~16 KB of notes; 1,500 of them (~24 MB) overflow the stuck
    // client's outbox (8 MB) and the socket buffers (the server's send buffer
    // grows to 4 MB at most, the client's receive buffer is small).
    let notes = "n".repeat(16 * 1024 - 16);
    for i in 0..SENT {
        let (code, _) = d
            .send(
                "PUT",
                &path,
                Some(json!({"notes": format!("{i:05} {notes}")})),
            )
            .await;
        assert_eq!(code, 200);
        // The reading client gets this very event before the next edit is made.
        let ev = reader.next_of("job_updated").await;
        assert!(
            ev["data"]["notes"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{i:05} ")),
            "event {i} out of order"
        );
    }

    // The stuck client was dropped: reading now, it finds fewer events than were sent
    // and then the end of the stream (a close frame with a reason, or a reset).
    let mut received = 0;
    let mut close_reason = None;
    loop {
        match tokio::time::timeout(Duration::from_secs(10), stuck.s.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["type"] == "job_updated" {
                    received += 1;
                }
            }
            Ok(Some(Ok(Message::Close(f)))) => {
                close_reason = f.map(|f| (u16::from(f.code), f.reason.to_string()));
                break;
            }
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(_))) | Ok(None) => break,
            Err(_) => panic!("the stuck client was never disconnected"),
        }
    }
    assert!(
        received < SENT,
        "the stuck client got all {received} events; it should have been dropped"
    );
    if let Some((code, reason)) = close_reason {
        assert_eq!(code, 1013);
        assert!(reason.contains("too slow"), "{reason}");
    }
    let (_, h) = d.get("/api/v1/health").await;
    assert_eq!(h["websocket_clients"], 1, "{h}");
}
