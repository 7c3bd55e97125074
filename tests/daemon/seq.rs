//! `seq` strictly increases on every connection under load: a simulated farm printing by
//! itself (statuses coalesced per client), job events from REST at the same time, and
//! several WebSocket clients, one of them subscribed to part of the farm.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use printfarmd_sim::{SimFarm, Style};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::harness::Daemon;

/// How long the clients listen. Long enough for every printer to report many times and
/// for hundreds of job events; the assertion is about order, not speed.
const LISTEN: Duration = Duration::from_secs(8);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_clients_seq_strictly_increases_under_load() {
    let sim = SimFarm::builder()
        .bambu(10, Style::X1)
        .bambu(10, Style::P1)
        .prusalink(10)
        .auto(true)
        .seed(14)
        .start()
        .await
        .expect("simulated farm");
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let config = dir.path().join("daemon.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nbind = \"127.0.0.1:0\"\n[database]\npath = {:?}\n[monitoring]\ninterval = 1\n{}",
            dir.path().join("p.db"),
            sim.config_toml()
        ),
    )
    .unwrap();
    let d = Daemon::spawn(dir, config, &[]);

    let mut clients = Vec::new();
    for i in 0..4 {
        let (mut ws, _) = tokio_tungstenite::connect_async(d.ws_url()).await.unwrap();
        if i == 3 {
            let sub = json!({"type": "subscribe", "printer_ids": ["bambu_1", "bambu_12", "prusa_1", "prusa_3"]});
            futures_util::SinkExt::send(&mut ws, Message::text(sub.to_string()))
                .await
                .unwrap();
        }
        clients.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            let mut kinds = std::collections::BTreeMap::<String, usize>::new();
            let end = Instant::now() + LISTEN;
            while let Ok(Some(Ok(m))) =
                tokio::time::timeout(end.saturating_duration_since(Instant::now()), ws.next()).await
            {
                if let Message::Text(t) = m {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    if let Some(s) = v["seq"].as_u64() {
                        seqs.push(s);
                        *kinds
                            .entry(v["type"].as_str().unwrap().to_owned())
                            .or_default() += 1;
                    }
                }
            }
            (seqs, kinds)
        }));
    }
    // Job events between the statuses: a job on a printer of the subscribed client,
    // edited as fast as the API answers.
    let (_, job) = d
        .send(
            "POST",
            "/api/v1/jobs",
            Some(json!({"printer_id": "prusa_1", "job_name": "seq", "filename": "seq.gcode"})),
        )
        .await;
    let path = format!("/api/v1/jobs/{}", job["id"].as_str().expect("job created"));
    let end = Instant::now() + LISTEN - Duration::from_secs(1);
    let mut edits = 0u32;
    while Instant::now() < end {
        edits += 1;
        d.send(
            "PUT",
            &path,
            Some(json!({"notes": format!("edit {edits}")})),
        )
        .await;
    }
    for (i, c) in clients.into_iter().enumerate() {
        let (seqs, kinds) = c.await.unwrap();
        assert!(
            kinds.get("printer_status").copied().unwrap_or(0) > 10
                && kinds.get("job_updated").copied().unwrap_or(0) > 10,
            "client {i} saw too little to tell: {kinds:?}"
        );
        let backwards: Vec<_> = seqs.windows(2).filter(|w| w[1] <= w[0]).collect();
        assert!(
            backwards.is_empty(),
            "client {i}: seq went backwards {} times in {} messages, e.g. {:?}",
            backwards.len(),
            seqs.len(),
            &backwards[..backwards.len().min(5)]
        );
    }
    sim.shutdown().await;
}
