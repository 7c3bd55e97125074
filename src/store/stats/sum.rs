//! Signed sums of one group for the rollup path (`roll.rs`): rows of `stats_roll` and
//! single jobs added or taken back, then turned into a `Group` like `agg.rs` does, with
//! the p90 read from a duration histogram (the middle of the bucket holding it).

use std::collections::HashMap;
use std::sync::OnceLock;

use rusqlite::Connection;

use super::StoreError;
use super::agg::{Group, ReasonCount, Sums, group};

/// The lower bounds of the duration buckets (`duration_buckets`, migration 8), bucket
/// `i` being `[lo[i], lo[i + 1])`. Fixed by the migration, so read once.
static BUCKETS: OnceLock<Vec<i64>> = OnceLock::new();

pub(super) fn buckets(conn: &Connection) -> Result<&'static [i64], StoreError> {
    if let Some(b) = BUCKETS.get() {
        return Ok(b);
    }
    let mut stmt = conn.prepare("SELECT lo, bucket FROM duration_buckets ORDER BY lo")?;
    let rows: Vec<(i64, i64)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    // Bucket numbers are the positions (the migration makes them so).
    let lo: Vec<i64> = rows
        .iter()
        .enumerate()
        .filter(|(i, (_, b))| *b == *i as i64)
        .map(|(_, (lo, _))| *lo)
        .collect();
    if lo.len() != rows.len() || lo.first() != Some(&0) {
        return Err(StoreError::Sqlite(rusqlite::Error::InvalidQuery));
    }
    Ok(BUCKETS.get_or_init(|| lo))
}

pub(super) fn bucket_of(lo: &[i64], d: u32) -> u32 {
    (lo.partition_point(|l| *l <= i64::from(d)).max(1) - 1) as u32
}

/// The value reported for a duration in bucket `b`: exact for one-second buckets,
/// else the geometric middle of the bucket.
fn value_of(lo: &[i64], b: u32) -> u64 {
    let i = b as usize;
    let Some(&l) = lo.get(i) else {
        return u64::from(u32::MAX);
    };
    let h = lo.get(i + 1).copied().unwrap_or(1 << 32);
    if h - l <= 1 {
        return l.max(0) as u64;
    }
    let mid = ((l as f64) * (h as f64)).sqrt().round() as i64;
    mid.clamp(l, h - 1).max(0) as u64
}

/// Visits the entries of a `{"12":3,...}` object as SQLite's JSON functions write it.
pub(super) fn each_entry(text: &str, mut f: impl FnMut(u32, i64)) {
    let b = text.as_bytes();
    let mut i = 0;
    let number = |i: &mut usize| -> Option<i64> {
        let neg = b.get(*i) == Some(&b'-');
        if neg {
            *i += 1;
        }
        let from = *i;
        let mut v: i64 = 0;
        while let Some(c) = b.get(*i).filter(|c| c.is_ascii_digit()) {
            v = v.checked_mul(10)?.checked_add(i64::from(c - b'0'))?;
            *i += 1;
        }
        (*i > from).then_some(if neg { -v } else { v })
    };
    while i < b.len() {
        if b[i] != b'"' {
            i += 1;
            continue;
        }
        i += 1;
        let Some(key) = number(&mut i) else {
            return;
        };
        // `":` then the count.
        i += 2;
        let Some(v) = number(&mut i) else {
            return;
        };
        if let Ok(k) = u32::try_from(key) {
            f(k, v);
        }
    }
}

/// Adds `v` at bucket `k` (a bucket past the last known one is the last one).
fn add_at(hist: &mut Vec<i64>, k: u32, v: i64) {
    let k = (k as usize).min(MAX_BUCKETS - 1);
    if hist.len() <= k {
        hist.resize(k + 1, 0);
    }
    hist[k] += v;
}

/// More buckets than `duration_buckets` holds (897).
const MAX_BUCKETS: usize = 1024;

/// One group's sums; reasons by number (`Reasons`).
#[derive(Default)]
pub(super) struct Sum {
    pub by_status: [i64; 7],
    pub print_s: i64,
    pub dur_n: i64,
    pub dur_sum: i64,
    /// Jobs per duration bucket, by bucket number (grown on demand).
    pub hist: Vec<i64>,
    pub auto: i64,
    pub reasons: HashMap<u32, i64>,
}

/// One job's share of a group, as `sign` (1 adds it, -1 takes it back).
pub(super) struct Share {
    pub status: usize,
    pub print_s: i64,
    pub duration: Option<u32>,
    pub auto: bool,
    pub reason: Option<u32>,
}

impl Sum {
    pub fn add_job(&mut self, j: &Share, lo: &[i64], sign: i64) {
        self.by_status[j.status] += sign;
        self.print_s += sign * j.print_s;
        if let Some(d) = j.duration {
            self.dur_n += sign;
            self.dur_sum += sign * i64::from(d);
            add_at(&mut self.hist, bucket_of(lo, d), sign);
        }
        self.auto += sign * i64::from(j.auto);
        if let Some(r) = j.reason {
            *self.reasons.entry(r).or_default() += sign;
        }
    }

    /// Adds a `stats_roll` row: n, c0..c3, auto, print_s, dur_n, dur_sum, hist, reasons.
    pub fn add_row(&mut self, r: &rusqlite::Row, first: usize) -> rusqlite::Result<()> {
        for (i, s) in self.by_status.iter_mut().take(4).enumerate() {
            *s += r.get::<_, i64>(first + 1 + i)?;
        }
        self.auto += r.get::<_, i64>(first + 5)?;
        self.print_s += r.get::<_, i64>(first + 6)?;
        self.dur_n += r.get::<_, i64>(first + 7)?;
        self.dur_sum += r.get::<_, i64>(first + 8)?;
        let hist = &mut self.hist;
        each_entry(r.get_ref(first + 9)?.as_str()?, |k, v| add_at(hist, k, v));
        let reasons = &mut self.reasons;
        each_entry(r.get_ref(first + 10)?.as_str()?, |k, v| {
            *reasons.entry(k).or_default() += v
        });
        Ok(())
    }

    pub fn merge(&mut self, o: Sum) {
        for (a, b) in self.by_status.iter_mut().zip(o.by_status) {
            *a += b;
        }
        self.print_s += o.print_s;
        self.dur_n += o.dur_n;
        self.dur_sum += o.dur_sum;
        self.auto += o.auto;
        for (k, v) in o.hist.into_iter().enumerate() {
            if v != 0 {
                add_at(&mut self.hist, k as u32, v);
            }
        }
        for (k, v) in o.reasons {
            *self.reasons.entry(k).or_default() += v;
        }
    }

    pub fn jobs(&self) -> i64 {
        self.by_status.iter().sum()
    }

    /// The group's figures, as `agg.rs` makes them (`wall_s`: the wall time print time
    /// is measured against).
    pub fn finish(self, key: String, wall_s: Option<i64>, lo: &[i64], names: &Reasons) -> Group {
        let n = u64::try_from(self.dur_n).unwrap_or(0);
        let mean = (n > 0).then(|| (self.dur_sum.max(0) as f64 / n as f64).round() as u64);
        let p90 = (n > 0).then(|| {
            let rank = (n * 9).div_ceil(10).max(1) - 1;
            let hist = self
                .hist
                .iter()
                .enumerate()
                .filter(|e| *e.1 > 0)
                .map(|(b, c)| (b as u32, *c));
            let mut seen: u64 = 0;
            let mut at = self.hist.iter().rposition(|c| *c > 0).unwrap_or(0) as u32;
            for (b, c) in hist {
                seen += c as u64;
                if seen > rank {
                    at = b;
                    break;
                }
            }
            value_of(lo, at)
        });
        let reasons = self
            .reasons
            .into_iter()
            .filter(|e| e.1 > 0)
            .map(|(id, count)| ReasonCount {
                reason: names.text(id).to_owned(),
                count: count as u64,
            })
            .collect();
        group(
            key,
            Sums {
                by_status: self.by_status.map(|n| u64::try_from(n).unwrap_or(0)),
                print_s: self.print_s,
                mean,
                p90,
                auto: u64::try_from(self.auto).unwrap_or(0),
                reasons,
            },
            wall_s,
        )
    }
}

/// Reason texts by number: `stats_reasons`, plus numbers given here to texts of jobs
/// read raw that no rolled job has.
pub(super) struct Reasons {
    by_text: HashMap<String, u32>,
    texts: HashMap<u32, String>,
    next: u32,
}

impl Reasons {
    pub fn load(conn: &Connection) -> Result<Reasons, StoreError> {
        let mut stmt = conn.prepare_cached("SELECT id, reason FROM stats_reasons")?;
        let mut r = Reasons {
            by_text: HashMap::new(),
            texts: HashMap::new(),
            next: 0,
        };
        let rows = stmt.query_map([], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
        })?;
        for row in rows {
            let (id, text) = row?;
            let Ok(id) = u32::try_from(id) else { continue };
            r.next = r.next.max(id.saturating_add(1));
            r.by_text.insert(text.clone(), id);
            r.texts.insert(id, text);
        }
        Ok(r)
    }

    pub fn id(&mut self, text: &str) -> u32 {
        if let Some(id) = self.by_text.get(text) {
            return *id;
        }
        let id = self.next;
        self.next = self.next.saturating_add(1);
        self.by_text.insert(text.to_owned(), id);
        self.texts.insert(id, text.to_owned());
        id
    }

    fn text(&self, id: u32) -> &str {
        self.texts.get(&id).map_or("", String::as_str)
    }
}
