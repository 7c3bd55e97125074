//! `GET /api/v1/stats` from the sums kept ahead of time (`stats_roll`, migration 8),
//! with the few jobs the sums cannot place read raw and counted by `agg.rs`'s rules.
//!
//! A group spanning `[lo, hi)` (the window, a partial week, a partial day) is, with
//! `[a, b)` its whole UTC days: the rolled jobs ending on those days, summed over a
//! cover of aligned 64-, 8- and 1-day blocks (kinds 2, 1, 0), less the rolled jobs
//! among them that began before day `a` (they cross midnight `a`: `job_crossings`);
//! plus, read raw, every job not in that set: the ones crossing midnight `a` or `b`,
//! the ones on the partial days around `[a, b)`, and the jobs that are never rolled
//! (open, no end time, odd rows: `stats_raw`). A whole day or a whole week of
//! `group_by=day|week` is one row of jobs touching it (kinds 3, 4) plus the never-rolled
//! jobs. Print time is exact throughout; the p90 comes from a histogram (`sum.rs`).

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use rusqlite::{Connection, params};

use super::agg::{
    CANCELLED, DAY, FAILED, GroupBy, MAX_FILE_GROUPS, MONDAY_OFFSET, Stats, WEEK, Window, at,
    slot_key,
};
use super::raw::{Raw, fetch};
use super::span::Span;
use super::sum::{Reasons, Share, Sum, buckets};
use super::{StatsQuery, StoreError, text};
use crate::time::{self, Timestamp};

const FARM: i64 = 0;
const PRINTER: i64 = 1;
const FILE: i64 = 2;
const DAYS: i64 = 3;
const WEEKS: i64 = 4;

/// Aligned blocks (kind, block) of 64, 8 and 1 days covering days `[a, b)`.
fn cover(a: i64, b: i64) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    let mut d = a;
    while d < b {
        for (kind, shift) in [(2, 6), (1, 3), (0, 0)] {
            let size = 1i64 << shift;
            if d.rem_euclid(size) == 0 && d + size <= b {
                out.push((kind, d >> shift));
                d += size;
                break;
            }
        }
    }
    out
}

struct Ctx<'a> {
    conn: &'a Connection,
    w: Window,
    named: Option<HashSet<&'a str>>,
    named_list: &'a [String],
    lo: &'static [i64],
    reasons: Reasons,
    /// The never-rolled jobs that may be in the window.
    always: Rc<Vec<Raw>>,
    cache: HashMap<(bool, i64), Rc<Vec<Raw>>>,
    /// Printers with a job read raw inside the window.
    printers: HashSet<String>,
}

impl<'a> Ctx<'a> {
    fn fetch(&self, filter: &str, p: impl rusqlite::Params) -> Result<Vec<Raw>, StoreError> {
        fetch(self.conn, filter, p)
    }

    /// Rolled jobs crossing the midnight that begins `day`.
    fn crossings(&mut self, day: i64) -> Result<Rc<Vec<Raw>>, StoreError> {
        if let Some(v) = self.cache.get(&(true, day)) {
            return Ok(v.clone());
        }
        let v = Rc::new(self.fetch(
            "j.seq IN (SELECT seq FROM job_crossings WHERE day = ?1)",
            [day],
        )?);
        self.cache.insert((true, day), v.clone());
        Ok(v)
    }

    /// Every job touching `day`: those ending on it, and those crossing the next midnight.
    fn touching(&mut self, day: i64) -> Result<[Rc<Vec<Raw>>; 2], StoreError> {
        let ending = match self.cache.get(&(false, day)) {
            Some(v) => v.clone(),
            None => {
                let bound = |d: i64| at(d.saturating_mul(DAY));
                let v = Rc::new(self.fetch(
                    "j.end_time >= ?1 AND j.end_time < ?2",
                    params![time::format(bound(day)), time::format(bound(day + 1))],
                )?);
                self.cache.insert((false, day), v.clone());
                v
            }
        };
        Ok([ending, self.crossings(day + 1)?])
    }

    fn wanted(&self, printer: &str) -> bool {
        self.named.as_ref().is_none_or(|n| n.contains(printer))
    }

    /// Rows of `stats_roll` of `kind` and `scope`, blocks `[b0, b1)`, to `f(block, key)`.
    fn roll(
        &self,
        kind: i64,
        scope: i64,
        b0: i64,
        b1: i64,
        mut f: impl FnMut(i64, &str, &rusqlite::Row) -> rusqlite::Result<()>,
    ) -> Result<(), StoreError> {
        const COLS: &str = "SELECT blk, n, c0, c1, c2, c3, auto, print_s, dur_n, dur_sum, hist, \
            reasons, key FROM stats_roll WHERE kind = ?1 AND scope = ?2";
        let mut each = |r: &rusqlite::Row| -> Result<(), StoreError> {
            Ok(f(r.get(0)?, text(r.get_ref(12)?), r)?)
        };
        if scope == PRINTER && self.named.is_some() {
            let mut stmt = self.conn.prepare_cached(&format!(
                "{} AND key = ?3 AND blk >= ?4 AND blk < ?5",
                COLS.replace(
                    "FROM stats_roll",
                    "FROM stats_roll INDEXED BY stats_roll_by_key"
                )
            ))?;
            for key in self.named_list {
                let mut rows = stmt.query(params![kind, scope, key, b0, b1])?;
                while let Some(r) = rows.next()? {
                    each(r)?;
                }
            }
        } else {
            let mut stmt = self
                .conn
                .prepare_cached(&format!("{COLS} AND blk >= ?3 AND blk < ?4"))?;
            let mut rows = stmt.query(params![kind, scope, b0, b1])?;
            while let Some(r) = rows.next()? {
                each(r)?;
            }
        }
        Ok(())
    }

    fn share(&mut self, r: &Raw, span: &Span, print_s: i64) -> Share {
        let reason = match (r.status, &r.reason) {
            (FAILED | CANCELLED, Some(t)) => Some(self.reasons.id(t)),
            _ => None,
        };
        Share {
            status: r.status,
            print_s,
            duration: span.duration,
            auto: r.auto,
            reason,
        }
    }

    fn key(scope: i64, r: &Raw) -> &str {
        match scope {
            FARM => "",
            PRINTER => &r.printer,
            _ => &r.filename,
        }
    }

    /// The sums of the group spanning `[lo, hi)`, by key of `scope`.
    fn span(&mut self, lo: i64, hi: i64, scope: i64) -> Result<HashMap<String, Sum>, StoreError> {
        let a = lo.div_euclid(DAY) + i64::from(lo.rem_euclid(DAY) != 0);
        let b = hi.div_euclid(DAY);
        let whole = a < b;
        let mut out: HashMap<String, Sum> = HashMap::new();
        let mut sources = vec![self.always.clone()];
        if whole {
            for (kind, blk) in cover(a, b) {
                self.roll(kind, scope, blk, blk + 1, |_, key, r| {
                    match out.get_mut(key) {
                        Some(s) => s.add_row(r, 1),
                        None => {
                            let mut s = Sum::default();
                            s.add_row(r, 1)?;
                            out.insert(key.to_owned(), s);
                            Ok(())
                        }
                    }
                })?;
            }
            let first = self.crossings(a)?;
            for r in first.iter() {
                let ends_inside = r.rolled.is_some_and(|(_, ed)| ed < b);
                let Some(span) = Span::of(&r.row(), self.w.now).filter(|_| ends_inside) else {
                    continue;
                };
                if !self.wanted(&r.printer) {
                    continue;
                }
                let print_s = if span.printed {
                    span.end - span.start
                } else {
                    0
                };
                let share = self.share(r, &span, print_s);
                let key = Self::key(scope, r);
                out.entry(key.to_owned())
                    .or_default()
                    .add_job(&share, self.lo, -1);
            }
            sources.push(first);
            sources.push(self.crossings(b)?);
            if lo < a * DAY {
                sources.extend(self.touching(a - 1)?);
            }
            if hi > b * DAY {
                sources.extend(self.touching(b)?);
            }
        } else {
            for d in lo.div_euclid(DAY)..=(hi - 1).div_euclid(DAY) {
                sources.extend(self.touching(d)?);
            }
        }
        let mut seen = HashSet::new();
        for r in sources.iter().flat_map(|s| s.iter()) {
            if !seen.insert(r.seq) || !self.wanted(&r.printer) {
                continue;
            }
            if whole && r.rolled.is_some_and(|(sd, ed)| sd >= a && ed < b) {
                continue;
            }
            let Some(span) = Span::of(&r.row(), self.w.now) else {
                continue;
            };
            let Some(print_s) = span.print_in(lo, hi) else {
                continue;
            };
            if !self.printers.contains(&r.printer) {
                self.printers.insert(r.printer.clone());
            }
            let share = self.share(r, &span, print_s);
            let key = Self::key(scope, r);
            out.entry(key.to_owned())
                .or_default()
                .add_job(&share, self.lo, 1);
        }
        Ok(out)
    }

    /// The farm's (or the named printers') sums of `[lo, hi)`.
    fn total(&mut self, lo: i64, hi: i64) -> Result<Sum, StoreError> {
        let scope = if self.named.is_some() { PRINTER } else { FARM };
        let mut total = Sum::default();
        for (_, s) in self.span(lo, hi, scope)? {
            total.merge(s);
        }
        Ok(total)
    }

    /// Day or week groups: whole ones from their rows, partial ones as spans.
    fn slots(&mut self, by: GroupBy) -> Result<Vec<(i64, i64, Sum)>, StoreError> {
        let w = self.w;
        let (kind, len, offset) = match by {
            GroupBy::Week => (WEEKS, WEEK, MONDAY_OFFSET),
            _ => (DAYS, DAY, 0),
        };
        let first = (w.since + offset).div_euclid(len);
        let last = ((w.until - 1).max(w.since) + offset).div_euclid(len);
        let scope = if self.named.is_some() { PRINTER } else { FARM };
        let mut rows: HashMap<i64, Sum> = HashMap::new();
        self.roll(kind, scope, first, last + 1, |blk, _, r| {
            rows.entry(blk).or_default().add_row(r, 1)
        })?;
        let always = self.always.clone();
        let spans: Vec<(&Raw, Span)> = always
            .iter()
            .filter(|r| self.wanted(&r.printer))
            .filter_map(|r| Some((r, Span::of(&r.row(), w.now)?)))
            .collect();
        let mut out = Vec::new();
        for slot in first..=last {
            let start = slot * len - offset;
            let (lo, hi) = (start.max(w.since), (start + len).min(w.until));
            let sum = if lo == start && hi == start + len {
                let mut s = rows.remove(&slot).unwrap_or_default();
                for (r, span) in &spans {
                    if let Some(print_s) = span.print_in(lo, hi) {
                        let share = self.share(r, span, print_s);
                        s.add_job(&share, self.lo, 1);
                    }
                }
                s
            } else {
                self.total(lo, hi)?
            };
            out.push((lo, hi, sum));
        }
        Ok(out)
    }

    /// How many printers had a job in the window, when none were named.
    fn printers_in_window(&mut self) -> Result<usize, StoreError> {
        let w = self.w;
        let a = w.since.div_euclid(DAY) + i64::from(w.since.rem_euclid(DAY) != 0);
        let b = w.until.div_euclid(DAY);
        let mut stmt = self.conn.prepare_cached(
            "SELECT key FROM stats_roll WHERE kind = ?1 AND scope = 1 AND blk = ?2 AND n > 0",
        )?;
        for (kind, blk) in cover(a, b) {
            let mut rows = stmt.query(params![kind, blk])?;
            while let Some(r) = rows.next()? {
                let key = text(r.get_ref(0)?);
                if !self.printers.contains(key) {
                    self.printers.insert(key.to_owned());
                }
            }
        }
        Ok(self.printers.len())
    }
}

/// Answers `q` as of `now` from the sums.
pub(super) fn stats(
    conn: &Connection,
    q: &StatsQuery,
    now: Timestamp,
) -> Result<Stats, StoreError> {
    let w = Window {
        since: q.since.timestamp(),
        until: q.until.timestamp(),
        now: now.timestamp(),
    };
    let named = !q.printers.is_empty();
    let mut c = Ctx {
        conn,
        w,
        named: named.then(|| q.printers.iter().map(String::as_str).collect()),
        named_list: &q.printers,
        lo: buckets(conn)?,
        reasons: Reasons::load(conn)?,
        always: Rc::new(Vec::new()),
        cache: HashMap::new(),
        printers: HashSet::new(),
    };
    let mut always = c.fetch(
        "j.end_time IS NULL AND coalesce(j.start_time, j.created_at) < ?1",
        [time::format(q.until)],
    )?;
    always.extend(c.fetch("j.seq IN (SELECT seq FROM stats_raw)", [])?);
    c.always = Rc::new(always);

    let totals = c.total(w.since, w.until)?;
    let mut keyed = Vec::new();
    let mut slots = Vec::new();
    match q.group_by {
        GroupBy::Printer => keyed = c.span(w.since, w.until, PRINTER)?.into_iter().collect(),
        GroupBy::File => keyed = c.span(w.since, w.until, FILE)?.into_iter().collect(),
        GroupBy::Day | GroupBy::Week => slots = c.slots(q.group_by)?,
    }
    let counted = if named {
        q.printers.len()
    } else {
        c.printers_in_window()?
    } as i64;
    let wall = |lo: i64, hi: i64| (hi.min(w.now) - lo).max(0);
    let farm = |lo: i64, hi: i64| (counted > 0).then(|| wall(lo, hi) * counted);
    let (lo, names) = (c.lo, &c.reasons);
    keyed.retain(|(_, s)| s.jobs() > 0);
    let groups = match q.group_by {
        GroupBy::Printer => {
            let mut g: Vec<_> = keyed
                .into_iter()
                .map(|(k, s)| s.finish(k, Some(wall(w.since, w.until)), lo, names))
                .collect();
            g.sort_by(|a, b| a.key.cmp(&b.key));
            g
        }
        GroupBy::File => {
            let mut g: Vec<_> = keyed
                .into_iter()
                .map(|(k, s)| s.finish(k, farm(w.since, w.until), lo, names))
                .collect();
            g.sort_by(|a, b| b.jobs.cmp(&a.jobs).then_with(|| a.key.cmp(&b.key)));
            g.truncate(MAX_FILE_GROUPS);
            g
        }
        by => slots
            .into_iter()
            .map(|(glo, ghi, s)| {
                let start = match by {
                    GroupBy::Week => (glo + MONDAY_OFFSET).div_euclid(WEEK) * WEEK - MONDAY_OFFSET,
                    _ => glo.div_euclid(DAY) * DAY,
                };
                s.finish(slot_key(by, start), farm(glo, ghi), lo, names)
            })
            .collect(),
    };
    Ok(Stats {
        since: time::format(at(w.since)),
        until: time::format(at(w.until)),
        group_by: q.group_by.as_str(),
        totals: totals.finish("total".into(), farm(w.since, w.until), lo, names),
        groups,
    })
}
