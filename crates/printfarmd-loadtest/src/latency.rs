//! Report → WebSocket latency without any help from the daemon: the simulator keeps the
//! send time of every status report it makes (`GET /printers/{id}/sent`), and the
//! WebSocket clients keep, for a sample of printers, each `printer_status`'s `updated_at`
//! (when the daemon's driver produced the status: public API), the envelope's
//! `timestamp` (when the Broadcaster fanned it out) and their own receive time. After the
//! run each status is matched to the report behind it: the last one the simulator sent
//! at or before `updated_at` (a printer reports about once a second, and the hop from
//! the simulator to the driver takes milliseconds).
//!
//! The daemon sends a printer's statuses at most once a second and holds the newest of
//! a quicker burst until its second is up. A status whose report was sent a second or
//! more after the previous status of that printer went out cannot have been held:
//! those are the `not_held` latencies, the pipeline alone. (The daemon used to stamp how
//! long it held a status, for the simulator's reports only; the daemon now knows
//! nothing of the simulator, so held statuses are counted in `report_to_client` only.)

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use memchr::memmem;
use tokio::sync::watch;

use super::hist::Hist;
use super::prints::Control;

/// Least time between two `printer_status` events of one printer: the daemon's
/// documented rate (design.md §4, `broadcast::STATUS_EVENT_INTERVAL` there). The harness is
/// a client of the daemon and knows it as a client would, from the contract.
const STATUS_EVENT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Printers whose statuses are timed. Every status of 50 printers is plenty of samples
/// (~50 a second per client) and keeps the clients' memory small at 2,000 printers.
pub const SAMPLED_PRINTERS: usize = 50;
/// Statuses a client keeps for matching; past that it stops recording (bounded memory:
/// ~40 bytes each, 8 MB a client at most).
const MAX_SAMPLES_PER_CLIENT: usize = 200_000;
/// A status more than this after the report matched to it is not matched (the report
/// log did not reach back far enough, or the status is a connection change).
const MATCH_WINDOW_MS: i64 = 5_000;
/// How often the simulator's send logs are read: they keep the last 256 reports, over
/// three minutes at a report a second.
pub const SENT_POLL: Duration = Duration::from_secs(10);

/// The sampled printers, by id.
#[derive(Clone, Default)]
pub struct Sampled {
    ids: Vec<String>,
}

impl Sampled {
    /// Every `n / SAMPLED_PRINTERS`-th printer, so that every kind of printer is in.
    pub fn pick(all: &[String]) -> Self {
        let step = all.len().div_ceil(SAMPLED_PRINTERS).max(1);
        let mut ids: Vec<String> = all.iter().step_by(step).cloned().collect();
        ids.sort();
        Self { ids }
    }

    pub fn ids(&self) -> &[String] {
        &self.ids
    }

    fn index(&self, id: &str) -> Option<usize> {
        self.ids.binary_search_by(|p| p.as_str().cmp(id)).ok()
    }
}

/// One `printer_status` a client received for a sampled printer; all unix ms.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    printer: u16,
    updated: i64,
    fanout: i64,
    received: i64,
    /// When the previous status of this printer this client received was fanned out.
    previous_fanout: Option<i64>,
}

/// What one client records, read from the message text without a JSON parse (at 2,000
/// printers and 100 clients the harness receives ~200,000 messages a second on the
/// daemon's two cores, and must not crowd it out).
pub struct Recorder {
    sampled: Sampled,
    id: memmem::Finder<'static>,
    updated: memmem::Finder<'static>,
    timestamp: memmem::FinderRev<'static>,
    last_fanout: HashMap<u16, i64>,
    pub samples: Vec<Sample>,
}

impl Recorder {
    pub fn new(sampled: Sampled) -> Self {
        Self {
            sampled,
            id: memmem::Finder::new(r#""id":""#),
            updated: memmem::Finder::new(r#""updated_at":""#),
            timestamp: memmem::FinderRev::new(r#""timestamp":""#),
            last_fanout: HashMap::new(),
            samples: Vec::new(),
        }
    }

    /// Records a `printer_status` message received at `received` (unix ms) if it is
    /// one of a sampled printer.
    pub fn record(&mut self, text: &str, received: i64) {
        let Some(printer) = self
            .quoted_after(&self.id, text)
            .and_then(|id| self.sampled.index(id))
        else {
            return;
        };
        let printer = printer as u16;
        let (Some(updated), Some(fanout)) = (
            self.quoted_after(&self.updated, text).and_then(ms),
            self.envelope_ms(text),
        ) else {
            return;
        };
        let previous_fanout = self.last_fanout.insert(printer, fanout);
        if self.samples.len() < MAX_SAMPLES_PER_CLIENT {
            self.samples.push(Sample {
                printer,
                updated,
                fanout,
                received,
                previous_fanout,
            });
        }
    }

    fn quoted_after<'t>(&self, f: &memmem::Finder<'_>, text: &'t str) -> Option<&'t str> {
        let at = f.find(text.as_bytes())? + f.needle().len();
        let rest = &text[at..];
        Some(&rest[..rest.find('"')?])
    }

    /// The envelope's `timestamp`: it follows `data`, so it is the last one in the text.
    fn envelope_ms(&self, text: &str) -> Option<i64> {
        let at = self.timestamp.rfind(text.as_bytes())? + self.timestamp.needle().len();
        let rest = &text[at..];
        ms(&rest[..rest.find('"')?])
    }
}

fn ms(rfc3339: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// The simulator's send times of every sampled printer, gathered over the run.
#[derive(Default)]
pub struct SentLogs {
    by_printer: Vec<BTreeSet<i64>>,
}

impl SentLogs {
    /// Reads every sampled printer's log once and merges it in. Errors are counted by
    /// the caller; a log missed once is read again at the next poll.
    pub async fn poll(&mut self, sim: &Control, sampled: &Sampled) -> usize {
        self.by_printer
            .resize_with(sampled.ids.len(), BTreeSet::new);
        let mut errors = 0;
        for (i, id) in sampled.ids.iter().enumerate() {
            match sim.get(&format!("/printers/{id}/sent")).await {
                Ok(v) => {
                    let sent = v["sent_at_ms"].as_array().cloned().unwrap_or_default();
                    self.by_printer[i].extend(sent.iter().filter_map(|t| t.as_i64()));
                }
                Err(_) => errors += 1,
            }
        }
        errors
    }

    fn report_before(&self, printer: u16, at: i64) -> Option<i64> {
        self.by_printer
            .get(printer as usize)?
            .range(..=at)
            .next_back()
            .copied()
    }
}

/// Reads the sampled printers' send logs every [`SENT_POLL`] until `stop`, and once more
/// then; answers the logs and how many reads failed.
pub fn read_sent_logs(
    sim: Control,
    sampled: Sampled,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<(SentLogs, usize)> {
    tokio::spawn(async move {
        let mut logs = SentLogs::default();
        let mut errors = 0;
        loop {
            errors += logs.poll(&sim, &sampled).await;
            tokio::select! {
                _ = tokio::time::sleep(SENT_POLL) => {}
                _ = stop.changed() => break,
            }
        }
        errors += logs.poll(&sim, &sampled).await;
        (logs, errors)
    })
}

/// The latencies of every matched status, in ms.
pub struct Latencies {
    pub matched: u64,
    pub unmatched: u64,
    /// Report sent → client received, held statuses included (their hold too).
    pub report_to_client: Hist,
    /// The same, for statuses that cannot have been held.
    pub not_held: Hist,
    /// Report sent → the daemon's driver produced the status (`updated_at`).
    pub report_to_daemon: Hist,
    /// Not held: report sent → fanned out by the Broadcaster.
    pub to_fanout: Hist,
    /// Fanned out → client received, every status.
    pub fanout_to_client: Hist,
}

/// Matches every sample of every client to its report; counts only reports sent and
/// statuses received within `[start, end)` (unix ms).
pub fn match_samples(clients: &[Vec<Sample>], logs: &SentLogs, start: i64, end: i64) -> Latencies {
    let mut l = Latencies {
        matched: 0,
        unmatched: 0,
        report_to_client: Hist::new(1000),
        not_held: Hist::new(1000),
        report_to_daemon: Hist::new(1000),
        to_fanout: Hist::new(1000),
        fanout_to_client: Hist::new(1000),
    };
    let interval = STATUS_EVENT_INTERVAL.as_millis() as i64;
    for s in clients.iter().flatten() {
        if s.received < start || s.received >= end {
            continue;
        }
        let Some(sent) = logs
            .report_before(s.printer, s.updated)
            .filter(|t| s.updated - t <= MATCH_WINDOW_MS)
        else {
            l.unmatched += 1;
            continue;
        };
        if sent < start {
            continue;
        }
        l.matched += 1;
        l.report_to_client.record_ms(s.received - sent);
        l.report_to_daemon.record_ms(s.updated - sent);
        l.fanout_to_client.record_ms(s.received - s.fanout);
        if s.previous_fanout.is_some_and(|p| sent >= p + interval) {
            l.not_held.record_ms(s.received - sent);
            l.to_fanout.record_ms(s.fanout - sent);
        }
    }
    l
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(id: &str, updated: &str, ts: &str) -> String {
        format!(
            r#"{{"type":"printer_status","data":{{"id":"{id}","name":"x","updated_at":"{updated}","temperatures":{{}}}},"timestamp":"{ts}","seq":3}}"#
        )
    }

    #[test]
    fn records_sampled_printers_and_matches_each_status_to_its_report() {
        let ids: Vec<String> = ["a", "b"].iter().map(|s| s.to_string()).collect();
        let mut r = Recorder::new(Sampled::pick(&ids));
        // 1700000000000 = 2023-11-14T22:13:20.000Z
        r.record(
            &msg("a", "2023-11-14T22:13:20.010Z", "2023-11-14T22:13:20.015Z"),
            1_700_000_000_020,
        );
        r.record(
            &msg("zz", "2023-11-14T22:13:20.010Z", "2023-11-14T22:13:20.015Z"),
            1_700_000_000_020,
        );
        // Its report came 1.2 s after the previous status went out: not held.
        r.record(
            &msg("a", "2023-11-14T22:13:21.220Z", "2023-11-14T22:13:21.226Z"),
            1_700_000_001_230,
        );
        // Its report came 0.5 s after: it may have been held (flushed a second later).
        r.record(
            &msg("a", "2023-11-14T22:13:21.730Z", "2023-11-14T22:13:22.230Z"),
            1_700_000_002_232,
        );
        assert_eq!(r.samples.len(), 3, "only sampled printers are recorded");
        let logs = SentLogs {
            by_printer: vec![
                [1_700_000_000_004, 1_700_000_001_215, 1_700_000_001_726]
                    .into_iter()
                    .collect(),
                BTreeSet::new(),
            ],
        };
        let l = match_samples(&[r.samples], &logs, 1_700_000_000_000, 1_700_000_009_000);
        assert_eq!((l.matched, l.unmatched), (3, 0));
        assert_eq!(l.report_to_client.quantiles().max, 506.0);
        assert_eq!(l.not_held.quantiles().n, 1);
        assert_eq!(l.not_held.quantiles().max, 15.0);
        assert_eq!(l.to_fanout.quantiles().max, 11.0);
        assert_eq!(l.report_to_daemon.quantiles().max, 6.0);
    }
}
