//! The daemon's clients during a load run: WebSocket clients that count every event and
//! record the `printer_status` events of a sample of printers for timing
//! (`latency.rs`), and a steady REST load.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use serde::Serialize;
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::hist::{Hist, Quantiles};
use super::latency::{Recorder, Sample, Sampled};

/// REST requests allowed in flight at once; past that a tick is counted as skipped
/// rather than piling up requests on a stalled daemon.
const REST_IN_FLIGHT: usize = 64;
/// How long one REST request may take.
const REST_TIMEOUT: Duration = Duration::from_secs(10);

/// What the WebSocket clients saw.
pub struct WsStats {
    pub messages: u64,
    pub status_events: u64,
    pub disconnects: u64,
    /// Why the daemon closed clients (distinct close reasons, or the error).
    pub disconnect_reasons: Vec<String>,
    /// Each client's statuses of the sampled printers, for `latency::match_samples`.
    pub samples: Vec<Vec<Sample>>,
}

impl WsStats {
    fn new() -> Self {
        Self {
            messages: 0,
            status_events: 0,
            disconnects: 0,
            disconnect_reasons: Vec::new(),
            samples: Vec::new(),
        }
    }

    fn merge(&mut self, o: WsStats) {
        self.messages += o.messages;
        self.status_events += o.status_events;
        self.disconnects += o.disconnects;
        for r in o.disconnect_reasons {
            if !self.disconnect_reasons.contains(&r) {
                self.disconnect_reasons.push(r);
            }
        }
        self.samples.extend(o.samples);
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A client's read buffer. tungstenite zeroes the free part of its buffer before every
/// read (128 KiB by default): most of the harness's CPU at 2,000 printers and 100 clients,
/// for batches that are ~10 KB.
const READ_BUFFER: usize = 16 * 1024;

/// The measured window in wall-clock ms, `[start, end)`. Until it is set nothing is in
/// it. The clients count only what the simulator sent inside it: not the warm-up
/// before it, nor the burst of every print being finished at once when it ends (both
/// the harness's doing; the latter alone was ~1 % of the statuses of a 45 s run at
/// 2,000 printers, with lags of 100s of ms, so it set the p99).
#[derive(Default)]
pub struct Window {
    start: AtomicI64,
    end: AtomicI64,
}

impl Window {
    /// Opens the window now, for `len`.
    pub fn open(&self, len: Duration) {
        let now = now_ms();
        self.end
            .store(now + len.as_millis() as i64, Ordering::Relaxed);
        self.start.store(now, Ordering::Relaxed);
    }

    fn contains(&self, ms: i64) -> bool {
        ms >= self.start.load(Ordering::Relaxed) && ms < self.end.load(Ordering::Relaxed)
    }

    /// `[start, end)` in unix ms.
    pub fn bounds(&self) -> (i64, i64) {
        (
            self.start.load(Ordering::Relaxed),
            self.end.load(Ordering::Relaxed),
        )
    }
}

/// Opens `n` WebSocket clients; each records until `stop` turns true what falls inside
/// `window`. Connecting is done before this returns, so the clock starts with every
/// client in place.
pub async fn start_ws_clients(
    addr: &str,
    n: usize,
    stop: watch::Receiver<bool>,
    window: Arc<Window>,
    sampled: Sampled,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<WsStats>>> {
    let mut handles = Vec::with_capacity(n);
    for _ in 0..n {
        let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER);
        let (ws, _) = tokio_tungstenite::connect_async_with_config(
            format!("ws://{addr}/ws"),
            Some(config),
            false,
        )
        .await?;
        let mut stop = stop.clone();
        let window = window.clone();
        let mut recorder = Recorder::new(sampled.clone());
        handles.push(tokio::spawn(async move {
            let mut st = WsStats::new();
            let (_tx, mut rx) = ws.split();
            loop {
                let msg = tokio::select! {
                    m = rx.next() => m,
                    _ = stop.changed() => break,
                };
                let text = match msg {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(frame))) => {
                        st.disconnects += 1;
                        st.disconnect_reasons.push(match frame {
                            Some(f) => format!("{}: {}", u16::from(f.code), f.reason),
                            None => "close without a reason".to_owned(),
                        });
                        break;
                    }
                    Some(Err(e)) => {
                        st.disconnects += 1;
                        st.disconnect_reasons.push(e.to_string());
                        break;
                    }
                    None => {
                        st.disconnects += 1;
                        st.disconnect_reasons.push("stream ended".to_owned());
                        break;
                    }
                    Some(Ok(_)) => continue,
                };
                let at = now_ms();
                if !window.contains(at) {
                    continue;
                }
                st.messages += 1;
                let text = text.as_str();
                if !text.starts_with(r#"{"type":"printer_status""#) {
                    continue;
                }
                st.status_events += 1;
                recorder.record(text, at);
            }
            st.samples.push(recorder.samples);
            st
        }));
    }
    Ok(handles)
}

pub async fn collect_ws(handles: Vec<tokio::task::JoinHandle<WsStats>>) -> WsStats {
    let mut all = WsStats::new();
    for h in handles {
        if let Ok(s) = h.await {
            all.merge(s);
        }
    }
    all
}

#[derive(Serialize, Default)]
pub struct RestSummary {
    pub requests: u64,
    pub errors: u64,
    pub skipped: u64,
    pub all: Quantiles,
    pub jobs: Quantiles,
    pub printers_list: Quantiles,
    pub printer_one: Quantiles,
}

struct RestHists {
    requests: u64,
    errors: u64,
    skipped: u64,
    all: Hist,
    jobs: Hist,
    list: Hist,
    one: Hist,
}

/// Sends `rps` requests a second until `stop`: mostly job lists (some filtered), some
/// printer lists and single printers. Each request is timed from send to last byte.
pub async fn rest_load(
    addr: String,
    printer_ids: Vec<String>,
    rps: f64,
    mut stop: watch::Receiver<bool>,
) -> RestSummary {
    if rps <= 0.0 {
        return RestSummary::default();
    }
    let http = match reqwest::Client::builder().timeout(REST_TIMEOUT).build() {
        Ok(h) => h,
        Err(_) => return RestSummary::default(),
    };
    let hists = Arc::new(Mutex::new(RestHists {
        requests: 0,
        errors: 0,
        skipped: 0,
        all: Hist::new(100),
        jobs: Hist::new(100),
        list: Hist::new(100),
        one: Hist::new(100),
    }));
    let gate = Arc::new(Semaphore::new(REST_IN_FLIGHT));
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rps));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut i: usize = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => break,
        }
        i += 1;
        let p = &printer_ids[i.wrapping_mul(7919) % printer_ids.len().max(1)];
        let (kind, path) = match i % 10 {
            0..=4 => (0, "/api/v1/jobs?limit=50".to_owned()),
            5 => (0, "/api/v1/jobs?limit=50&status=completed".to_owned()),
            6 => (0, format!("/api/v1/jobs?limit=50&printer_id={p}")),
            7 => (
                0,
                "/api/v1/jobs?limit=50&status=running,paused&auto_created=true".to_owned(),
            ),
            8 => (1, "/api/v1/printers".to_owned()),
            _ => (2, format!("/api/v1/printers/{p}")),
        };
        let Ok(permit) = gate.clone().try_acquire_owned() else {
            hists.lock().unwrap_or_else(|e| e.into_inner()).skipped += 1;
            continue;
        };
        let (http, hists, url) = (http.clone(), hists.clone(), format!("http://{addr}{path}"));
        tokio::spawn(async move {
            let t = Instant::now();
            let ok = match http.get(url).send().await {
                Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                Err(_) => false,
            };
            let us = t.elapsed().as_micros() as u64;
            let mut h = hists.lock().unwrap_or_else(|e| e.into_inner());
            h.requests += 1;
            if !ok {
                h.errors += 1;
            }
            h.all.record_us(us);
            match kind {
                0 => h.jobs.record_us(us),
                1 => h.list.record_us(us),
                _ => h.one.record_us(us),
            }
            drop(permit);
        });
    }
    // Let the requests in flight finish.
    let _ = gate.acquire_many(REST_IN_FLIGHT as u32).await;
    let h = hists.lock().unwrap_or_else(|e| e.into_inner());
    RestSummary {
        requests: h.requests,
        errors: h.errors,
        skipped: h.skipped,
        all: h.all.quantiles(),
        jobs: h.jobs.quantiles(),
        printers_list: h.list.quantiles(),
        printer_one: h.one.quantiles(),
    }
}
