//! The arithmetic of `GET /api/v1/stats`, apart from SQL: job rows in, groups out. Plain
//! code, so every rule below is a unit test (`tests.rs`).
//!
//! A job counts in a group when its time on the printer overlaps the group's span
//! (the window; for `day`/`week`, that day or week inside the window): from its start
//! (its creation when it never started) to its end, where an open job (running,
//! paused, pending) ends now and an ended job without an end time ends at its start
//! plus its duration, else at its last update. Print time is the part of that span
//! inside the group's span, for jobs that started (a pending job has none).
//! Utilisation is print time over wall time: the window up to now for a printer;
//! the group's span up to now times the printers counted (the ones named by
//! `printer_id`, else every printer with a job in the window) for a day, a week, a file
//! and the totals.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Datelike};
use serde::Serialize;

use super::span::Span;

/// Largest window, in days: a year (leap or not) of daily groups, and a bound on what one
/// request may make the database read.
pub const MAX_WINDOW_DAYS: i64 = 366;
/// Reasons listed per group, most frequent first: a dashboard shows the top few; the
/// long tail of one-off texts is in the jobs themselves (`GET /jobs?end_reason=`).
pub const MAX_END_REASONS: usize = 20;
/// File groups returned, most jobs first: a farm may print thousands of distinct files
/// a year, and a response of every one is megabytes nobody reads.
pub const MAX_FILE_GROUPS: usize = 1000;

pub(super) const DAY: i64 = 86_400;
pub(super) const WEEK: i64 = 7 * DAY;
/// 1970-01-01 was a Thursday: day 0 of week 0 begins three days before it.
pub(super) const MONDAY_OFFSET: i64 = 3 * DAY;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupBy {
    Printer,
    Day,
    Week,
    File,
}

impl GroupBy {
    pub const NAMES: &str = "printer, day, week, file";

    pub fn parse(s: &str) -> Option<GroupBy> {
        Some(match s {
            "printer" => GroupBy::Printer,
            "day" => GroupBy::Day,
            "week" => GroupBy::Week,
            "file" => GroupBy::File,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            GroupBy::Printer => "printer",
            GroupBy::Day => "day",
            GroupBy::Week => "week",
            GroupBy::File => "file",
        }
    }
}

/// The statuses in `by_status` order; a row's status is an index into this.
pub const STATUSES: [&str; 7] = [
    "completed",
    "failed",
    "cancelled",
    "unknown",
    "running",
    "paused",
    "pending",
];
pub(super) const COMPLETED: usize = 0;
pub(super) const FAILED: usize = 1;
pub(super) const CANCELLED: usize = 2;
pub(super) const UNKNOWN: usize = 3;
pub(super) const PENDING: usize = 6;

/// One job as the statistics read it; times in Unix seconds, None when unreadable.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Row<'a> {
    pub printer_id: &'a str,
    pub filename: &'a str,
    /// Index into `STATUSES`.
    pub status: usize,
    pub start: Option<i64>,
    pub end: Option<i64>,
    pub created: Option<i64>,
    pub updated: Option<i64>,
    pub duration: Option<i64>,
    pub auto_created: bool,
    pub end_reason: Option<&'a str>,
}

/// The window, and the time the question is asked (open jobs run until then).
#[derive(Clone, Copy, Debug)]
pub struct Window {
    pub since: i64,
    pub until: i64,
    pub now: i64,
}

#[derive(Debug, Default, Serialize, PartialEq)]
pub struct ByStatus {
    pub completed: u64,
    pub failed: u64,
    pub cancelled: u64,
    pub unknown: u64,
    pub running: u64,
    pub paused: u64,
    pub pending: u64,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct ReasonCount {
    pub reason: String,
    pub count: u64,
}

/// One group's figures (`GROUP` of the API).
#[derive(Debug, Serialize, PartialEq)]
pub struct Group {
    pub key: String,
    pub jobs: u64,
    pub by_status: ByStatus,
    pub success_rate: Option<f64>,
    pub print_hours: f64,
    pub utilisation: Option<f64>,
    pub mean_duration_s: Option<u64>,
    pub p90_duration_s: Option<u64>,
    pub auto_created: u64,
    pub manual: u64,
    pub end_reasons: Vec<ReasonCount>,
}

/// The answer of `GET /api/v1/stats`.
#[derive(Debug, Serialize, PartialEq)]
pub struct Stats {
    pub since: String,
    pub until: String,
    pub group_by: &'static str,
    pub totals: Group,
    pub groups: Vec<Group>,
}

/// Running sums of one group.
#[derive(Default)]
struct Acc {
    by_status: [u64; 7],
    print_s: i64,
    durations: Vec<u32>,
    auto: u64,
    reasons: HashMap<String, u64>,
}

impl Acc {
    fn add(&mut self, r: &Row, print_s: i64, duration: Option<u32>) {
        self.by_status[r.status] += 1;
        self.print_s += print_s;
        self.durations.extend(duration);
        self.auto += u64::from(r.auto_created);
        if let (FAILED | CANCELLED, Some(reason)) = (r.status, r.end_reason) {
            match self.reasons.get_mut(reason) {
                Some(n) => *n += 1,
                None => {
                    self.reasons.insert(reason.to_owned(), 1);
                }
            }
        }
    }

    /// The group's figures; `wall_s` is the wall time its print time is measured
    /// against (None: not meaningful).
    fn finish(mut self, key: String, wall_s: Option<i64>) -> Group {
        let n = self.durations.len();
        let mean = (n > 0).then(|| {
            let sum: u64 = self.durations.iter().map(|d| u64::from(*d)).sum();
            (sum as f64 / n as f64).round() as u64
        });
        // Nearest rank: the smallest duration at or above 90 % of them.
        let p90 = (n > 0).then(|| {
            let rank = (n * 9).div_ceil(10).max(1) - 1;
            u64::from(*self.durations.select_nth_unstable(rank).1)
        });
        let reasons = self
            .reasons
            .into_iter()
            .map(|(reason, count)| ReasonCount { reason, count })
            .collect();
        group(
            key,
            Sums {
                by_status: self.by_status,
                print_s: self.print_s,
                mean,
                p90,
                auto: self.auto,
                reasons,
            },
            wall_s,
        )
    }
}

/// A group's sums, whether counted row by row (`Acc`) or read from the rollup (`sum.rs`).
pub(super) struct Sums {
    pub by_status: [u64; 7],
    pub print_s: i64,
    pub mean: Option<u64>,
    pub p90: Option<u64>,
    pub auto: u64,
    pub reasons: Vec<ReasonCount>,
}

/// The API's figures of one group from its sums: the one place the derived fields
/// (success rate, hours, utilisation, manual, the top reasons) are made.
pub(super) fn group(key: String, sums: Sums, wall_s: Option<i64>) -> Group {
    let s = &sums.by_status;
    let jobs: u64 = s.iter().sum();
    let ended = s[COMPLETED] + s[FAILED] + s[CANCELLED];
    let mut reasons = sums.reasons;
    reasons.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.reason.cmp(&b.reason)));
    reasons.truncate(MAX_END_REASONS);
    Group {
        key,
        jobs,
        by_status: ByStatus {
            completed: s[0],
            failed: s[1],
            cancelled: s[2],
            unknown: s[3],
            running: s[4],
            paused: s[5],
            pending: s[6],
        },
        success_rate: (ended > 0).then(|| round(s[COMPLETED] as f64 / ended as f64, 4)),
        print_hours: round(sums.print_s as f64 / 3600.0, 3),
        utilisation: wall_s
            .filter(|w| *w > 0)
            .map(|w| round(sums.print_s as f64 / w as f64, 6)),
        mean_duration_s: sums.mean,
        p90_duration_s: sums.p90,
        auto_created: sums.auto,
        manual: jobs.saturating_sub(sums.auto),
        end_reasons: reasons,
    }
}

pub(super) fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

/// Seconds of `[a, b)` inside `[lo, hi)`.
pub(super) fn overlap(a: i64, b: i64, lo: i64, hi: i64) -> i64 {
    (b.min(hi) - a.max(lo)).max(0)
}

/// Collects rows into the totals and the groups of one question.
pub struct Aggregator {
    w: Window,
    by: GroupBy,
    totals: Acc,
    keyed: HashMap<String, Acc>,
    /// Day or week groups, from the one holding `since`; `slot` seconds each.
    slots: Vec<Acc>,
    first_slot: i64,
    printers: HashSet<String>,
}

impl Aggregator {
    pub fn new(w: Window, by: GroupBy) -> Aggregator {
        let (first, count) = match Self::slot_len(by) {
            Some(_) => {
                let first = Self::slot_of(by, w.since);
                let last = Self::slot_of(by, (w.until - 1).max(w.since));
                (first, usize::try_from(last - first + 1).unwrap_or(0))
            }
            None => (0, 0),
        };
        Aggregator {
            w,
            by,
            totals: Acc::default(),
            keyed: HashMap::new(),
            slots: (0..count).map(|_| Acc::default()).collect(),
            first_slot: first,
            printers: HashSet::new(),
        }
    }

    fn slot_len(by: GroupBy) -> Option<i64> {
        match by {
            GroupBy::Day => Some(DAY),
            GroupBy::Week => Some(WEEK),
            _ => None,
        }
    }

    pub(super) fn slot_of(by: GroupBy, t: i64) -> i64 {
        match by {
            GroupBy::Week => (t + MONDAY_OFFSET).div_euclid(WEEK),
            _ => t.div_euclid(DAY),
        }
    }

    fn slot_start(&self, slot: i64) -> i64 {
        match self.by {
            GroupBy::Week => slot * WEEK - MONDAY_OFFSET,
            _ => slot * DAY,
        }
    }

    /// Adds one job; a job outside the window, or whose times cannot be read, is left out.
    pub fn add(&mut self, r: &Row) {
        let w = self.w;
        let Some(span) = Span::of(r, w.now) else {
            return;
        };
        let (start, end, duration) = (span.start, span.end, span.duration);
        if start >= w.until || end < w.since {
            return;
        }
        let print_in = |lo: i64, hi: i64| span.print_in(lo, hi).unwrap_or(0);
        self.totals.add(r, print_in(w.since, w.until), duration);
        if !self.printers.contains(r.printer_id) {
            self.printers.insert(r.printer_id.to_owned());
        }
        match self.by {
            GroupBy::Printer | GroupBy::File => {
                let key = if self.by == GroupBy::Printer {
                    r.printer_id
                } else {
                    r.filename
                };
                let print_s = print_in(w.since, w.until);
                match self.keyed.get_mut(key) {
                    Some(acc) => acc.add(r, print_s, duration),
                    None => {
                        let mut acc = Acc::default();
                        acc.add(r, print_s, duration);
                        self.keyed.insert(key.to_owned(), acc);
                    }
                }
            }
            GroupBy::Day | GroupBy::Week => {
                let from = Self::slot_of(self.by, start.max(w.since));
                let to = Self::slot_of(self.by, end.min(w.until - 1).max(start.max(w.since)));
                for slot in from..=to {
                    let lo = self.slot_start(slot);
                    let hi = self.slot_start(slot + 1);
                    let i = (slot - self.first_slot) as usize;
                    let print_s = print_in(lo.max(w.since), hi.min(w.until));
                    if let Some(acc) = self.slots.get_mut(i) {
                        acc.add(r, print_s, duration);
                    }
                }
            }
        }
    }

    /// The answer; `named_printers` is how many printers the question named (0: all).
    pub fn finish(self, named_printers: usize) -> Stats {
        let w = self.w;
        let counted = if named_printers > 0 {
            named_printers
        } else {
            self.printers.len()
        } as i64;
        // Wall time of a span: up to now (the future has no wall time yet).
        let wall = |lo: i64, hi: i64| (hi.min(w.now) - lo).max(0);
        let farm = |lo: i64, hi: i64| (counted > 0).then(|| wall(lo, hi) * counted);
        let window = wall(w.since, w.until);
        let mut groups: Vec<Group> = match self.by {
            GroupBy::Printer => {
                let mut g: Vec<Group> = self
                    .keyed
                    .into_iter()
                    .map(|(k, acc)| acc.finish(k, Some(window)))
                    .collect();
                g.sort_by(|a, b| a.key.cmp(&b.key));
                g
            }
            GroupBy::File => {
                let mut g: Vec<Group> = self
                    .keyed
                    .into_iter()
                    .map(|(k, acc)| acc.finish(k, farm(w.since, w.until)))
                    .collect();
                g.sort_by(|a, b| b.jobs.cmp(&a.jobs).then_with(|| a.key.cmp(&b.key)));
                g.truncate(MAX_FILE_GROUPS);
                g
            }
            GroupBy::Day | GroupBy::Week => {
                let by = self.by;
                let first = self.first_slot;
                let starts: Vec<i64> = (0..self.slots.len() as i64 + 1)
                    .map(|i| match by {
                        GroupBy::Week => (first + i) * WEEK - MONDAY_OFFSET,
                        _ => (first + i) * DAY,
                    })
                    .collect();
                self.slots
                    .into_iter()
                    .enumerate()
                    .map(|(i, acc)| {
                        let (lo, hi) = (starts[i].max(w.since), starts[i + 1].min(w.until));
                        acc.finish(slot_key(by, starts[i]), farm(lo, hi))
                    })
                    .collect()
            }
        };
        groups.shrink_to_fit();
        Stats {
            since: crate::time::format(at(w.since)),
            until: crate::time::format(at(w.until)),
            group_by: self.by.as_str(),
            totals: self.totals.finish("total".into(), farm(w.since, w.until)),
            groups,
        }
    }
}

pub(super) fn at(t: i64) -> crate::time::Timestamp {
    DateTime::from_timestamp(t, 0).unwrap_or_default()
}

/// "2026-12-01" for a day, "2026-W48" (ISO 8601 week) for a week starting at `start`.
pub(super) fn slot_key(by: GroupBy, start: i64) -> String {
    let d = at(start).date_naive();
    match by {
        GroupBy::Week => {
            let iso = d.iso_week();
            format!("{}-W{:02}", iso.year(), iso.week())
        }
        _ => d.format("%Y-%m-%d").to_string(),
    }
}
