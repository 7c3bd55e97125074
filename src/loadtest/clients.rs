//! The daemon's clients during a load run: WebSocket clients that time every
//! `printer_status` from the simulator's stamp to its arrival, and a steady REST load.
//!
//! The WebSocket clients read the two stamps they need straight from the message text
//! (no JSON parse): at 2,000 printers and 100 clients they receive ~200,000 messages a
//! second on the same two cores as the daemon, and the harness must not crowd it out.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use memchr::memmem;
use serde::Serialize;
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::hist::{Hist, Quantiles};

/// REST requests allowed in flight at once; past that a tick is counted as skipped
/// rather than piling up requests on a stalled daemon.
const REST_IN_FLIGHT: usize = 64;
/// How long one REST request may take.
const REST_TIMEOUT: Duration = Duration::from_secs(10);

/// What the WebSocket clients saw, merged.
pub struct WsStats {
    pub messages: u64,
    pub status_events: u64,
    pub disconnects: u64,
    /// Why the daemon closed clients (distinct close reasons, or the error).
    pub disconnect_reasons: Vec<String>,
    /// Receive time − `sim_sent_at_ms`, every `printer_status`.
    pub raw: Hist,
    /// The same, for statuses the Broadcaster sent at once.
    pub not_held: Hist,
    /// The same, for statuses the Broadcaster held (throttled) first.
    pub held: Hist,
    /// Held statuses with their hold (`sim_held_ms`) taken out: the pipeline alone.
    pub held_minus_hold: Hist,
    /// Every status, split at the Broadcaster (the envelope's `timestamp`, in ms): from
    /// the report to the fan-out, hold taken out (driver, JobCreator, throttle) ...
    pub to_fanout: Hist,
    /// ... and from the fan-out to the client (outbox, writer, socket, this harness).
    pub fanout_to_client: Hist,
}

impl WsStats {
    fn new() -> Self {
        Self {
            messages: 0,
            status_events: 0,
            disconnects: 0,
            disconnect_reasons: Vec::new(),
            raw: Hist::new(1000),
            not_held: Hist::new(1000),
            held: Hist::new(1000),
            held_minus_hold: Hist::new(1000),
            to_fanout: Hist::new(1000),
            fanout_to_client: Hist::new(1000),
        }
    }

    fn merge(&mut self, o: &WsStats) {
        self.messages += o.messages;
        self.status_events += o.status_events;
        self.disconnects += o.disconnects;
        for r in &o.disconnect_reasons {
            if !self.disconnect_reasons.contains(r) {
                self.disconnect_reasons.push(r.clone());
            }
        }
        self.raw.merge(&o.raw);
        self.not_held.merge(&o.not_held);
        self.held.merge(&o.held);
        self.held_minus_hold.merge(&o.held_minus_hold);
        self.to_fanout.merge(&o.to_fanout);
        self.fanout_to_client.merge(&o.fanout_to_client);
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The stamps a client reads in every `printer_status`, found without parsing the JSON
/// (searchers built once: at 2,000 printers and 100 clients, building one per search
/// and scanning the whole message was a quarter of the harness's CPU).
struct Stamps {
    sent: memmem::Finder<'static>,
    held: memmem::Finder<'static>,
    timestamp: memmem::FinderRev<'static>,
}

impl Stamps {
    fn new() -> Self {
        Self {
            sent: memmem::Finder::new(r#""sim_sent_at_ms":"#),
            held: memmem::Finder::new(r#""sim_held_ms":"#),
            timestamp: memmem::FinderRev::new(r#""timestamp":""#),
        }
    }

    /// `sim_sent_at_ms`, and `sim_held_ms` if the Broadcaster held the status (it is
    /// appended after the first, so only the rest of the text is searched).
    fn sim(&self, text: &str) -> Option<(i64, Option<i64>)> {
        let at = self.sent.find(text.as_bytes())? + self.sent.needle().len();
        let rest = &text[at..];
        let sent = leading_int(rest)?;
        let held = self
            .held
            .find(rest.as_bytes())
            .and_then(|i| leading_int(&rest[i + self.held.needle().len()..]));
        Some((sent, held))
    }

    /// The envelope's `timestamp` (the Broadcaster's clock when it sent the event), in
    /// ms. It follows `data` in the envelope, so it is the last one in the text.
    fn envelope_ms(&self, text: &str) -> Option<i64> {
        let at = self.timestamp.rfind(text.as_bytes())? + self.timestamp.needle().len();
        let rest = &text[at..];
        let t = chrono::DateTime::parse_from_rfc3339(&rest[..rest.find('"')?]).ok()?;
        Some(t.timestamp_millis())
    }
}

/// The integer at the start of `text`.
fn leading_int(text: &str) -> Option<i64> {
    let end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '-'))
        .unwrap_or(text.len());
    text[..end].parse().ok()
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
}

/// Opens `n` WebSocket clients; each records until `stop` turns true what falls inside
/// `window`. Connecting is done before this returns, so the clock starts with every
/// client in place.
pub async fn start_ws_clients(
    addr: &str,
    n: usize,
    stop: watch::Receiver<bool>,
    window: Arc<Window>,
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
        handles.push(tokio::spawn(async move {
            let mut st = WsStats::new();
            let stamps = Stamps::new();
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
                let Some((sent, held)) = stamps.sim(text) else {
                    continue;
                };
                if !window.contains(sent) {
                    continue;
                }
                let lat = at - sent;
                st.raw.record_ms(lat);
                match held {
                    None => st.not_held.record_ms(lat),
                    Some(h) => {
                        st.held.record_ms(lat);
                        st.held_minus_hold.record_ms(lat - h);
                    }
                }
                if let Some(fanout) = stamps.envelope_ms(text) {
                    st.to_fanout.record_ms(fanout - sent - held.unwrap_or(0));
                    st.fanout_to_client.record_ms(at - fanout);
                }
            }
            st
        }));
    }
    Ok(handles)
}

pub async fn collect_ws(handles: Vec<tokio::task::JoinHandle<WsStats>>) -> WsStats {
    let mut all = WsStats::new();
    for h in handles {
        if let Ok(s) = h.await {
            all.merge(&s);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_stamps_from_the_text() {
        let s = Stamps::new();
        let t = r#"{"type":"printer_status","data":{"id":"a","sim_sent_at_ms":1700000000123,"sim_held_ms":40},"seq":3}"#;
        assert_eq!(s.sim(t), Some((1_700_000_000_123, Some(40))));
        let t = r#"{"type":"printer_status","data":{"id":"a","sim_sent_at_ms":-5},"seq":3}"#;
        assert_eq!(s.sim(t), Some((-5, None)));
        assert_eq!(s.sim(r#"{"data":{"nope":1}}"#), None);
        assert_eq!(s.envelope_ms(t), None);
        // The envelope's own timestamp wins over one inside the data.
        let t = r#"{"type":"printer_status","data":{"timestamp":"2020-01-01T00:00:00.000Z"},"timestamp":"2023-11-14T22:13:20.123Z","seq":3}"#;
        assert_eq!(s.envelope_ms(t), Some(1_700_000_000_123));
    }
}
