//! Which open jobs' progress moved since it was last written, and when each is due.
//!
//! Progress is kept in memory and written (and published) at most once a second per job.
//! The open jobs are cut into `PROGRESS_SLICES` slices by id, and each slice has its own
//! slot in every second (slice `i` at `i × 100 ms` past each second of the book's epoch),
//! so a 2,000-printer farm gets ten small writes a second instead of one burst that holds
//! up every status behind it. A slice with nothing dirty has no deadline: an idle farm
//! schedules no flush at all (the JobCreator asks `next_deadline` after each message and
//! sets one timer for it).
//!
//! A small farm does not need the slices: with at most `SMALL_FLUSH` jobs dirty, every
//! dirty job is written in one commit, at most once a second. Six printing printers made
//! up to six commits a second (each an fsync) when each job kept its own slot; now one
//! (issue 21: a small farm's cost was its fixed work, not its printers).

use std::collections::HashSet;
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::time::{Duration, Instant};

use crate::domain::JobId;

/// How often a job's progress is written (and published) at most.
pub const PROGRESS_FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// The slices the open jobs are cut into for the progress flush: ten writes of a tenth
/// of the farm each, 100 ms apart.
pub const PROGRESS_SLICES: usize = 10;
/// At or below this many dirty jobs, one write for all of them (a commit of 32 rows is
/// still well under a millisecond); above it the slices spread the writes.
pub const SMALL_FLUSH: usize = 32;
/// The distance between two slices' slots.
const SLOT: Duration =
    Duration::from_millis(PROGRESS_FLUSH_INTERVAL.as_millis() as u64 / PROGRESS_SLICES as u64);

/// Open jobs whose progress moved since they were last written, by slice.
#[derive(Debug)]
pub(super) struct Dirty {
    slices: Vec<HashSet<JobId>>,
    /// When each non-empty slice is to be written.
    due: Vec<Option<Instant>>,
    /// The time the slots are counted from.
    epoch: Instant,
    /// Jobs in all slices.
    count: usize,
    /// When everything dirty was last taken at once (a small farm's flush).
    last_all: Option<Instant>,
}

impl Dirty {
    pub(super) fn new(epoch: Instant) -> Self {
        Self {
            slices: vec![HashSet::new(); PROGRESS_SLICES],
            due: vec![None; PROGRESS_SLICES],
            epoch,
            count: 0,
            last_all: None,
        }
    }

    fn slice_of(id: &JobId) -> usize {
        // A fixed-key hash: a job stays in its slice for its whole life.
        (BuildHasherDefault::<DefaultHasher>::default().hash_one(id.as_str()) as usize)
            % PROGRESS_SLICES
    }

    /// Slice `i`'s first slot at or after `at` (`strictly`: after).
    fn slot(&self, i: usize, at: Instant, strictly: bool) -> Instant {
        let first = self.epoch + SLOT * i as u32;
        if at < first {
            return first;
        }
        let period = PROGRESS_FLUSH_INTERVAL.as_nanos();
        let since = (at - first).as_nanos();
        let mut k = since / period;
        if !since.is_multiple_of(period) || strictly {
            k += 1;
        }
        let k = u32::try_from(k).unwrap_or(u32::MAX);
        first + PROGRESS_FLUSH_INTERVAL * k
    }

    /// Marks a job's progress as moved at `now`.
    pub(super) fn insert(&mut self, id: &JobId, now: Instant) {
        self.insert_at(id, now, false);
    }

    fn insert_at(&mut self, id: &JobId, now: Instant, strictly: bool) {
        let i = Self::slice_of(id);
        if !self.slices[i].contains(id) {
            self.slices[i].insert(id.clone());
            self.count += 1;
        }
        if self.due[i].is_none() {
            self.due[i] = Some(self.slot(i, now, strictly));
        }
    }

    pub(super) fn remove(&mut self, id: &JobId) {
        let i = Self::slice_of(id);
        if self.slices[i].remove(id) {
            self.count -= 1;
        }
        if self.slices[i].is_empty() {
            self.due[i] = None;
        }
    }

    fn small(&self) -> bool {
        self.count <= SMALL_FLUSH
    }

    /// When the next slice is due, if anything is dirty (a small farm: the first slot
    /// due, but not sooner than a second after everything was last written).
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        let first = self.due.iter().flatten().min().copied()?;
        Some(match self.last_all {
            Some(at) if self.small() => first.max(at + PROGRESS_FLUSH_INTERVAL),
            _ => first,
        })
    }

    /// The jobs of every slice due at `now` (a small farm: every dirty job, once any
    /// is due).
    pub(super) fn take_due(&mut self, now: Instant) -> Vec<JobId> {
        if self.small() {
            if self.next_deadline().is_none_or(|d| d > now) {
                return Vec::new();
            }
            self.last_all = Some(now);
            return self.take_all();
        }
        let mut out = Vec::new();
        for i in 0..PROGRESS_SLICES {
            if self.due[i].is_some_and(|d| d <= now) {
                self.due[i] = None;
                self.count -= self.slices[i].len();
                out.extend(self.slices[i].drain());
            }
        }
        out
    }

    pub(super) fn take_all(&mut self) -> Vec<JobId> {
        self.due.iter_mut().for_each(|d| *d = None);
        self.count = 0;
        self.slices.iter_mut().flat_map(|s| s.drain()).collect()
    }

    /// Puts back the jobs of a flush that was not written: they are due again at their
    /// slice's next slot, not at once (the disk that failed needs a moment).
    pub(super) fn restore(&mut self, ids: Vec<JobId>, now: Instant) {
        for id in ids {
            self.insert_at(&id, now, true);
        }
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        debug_assert_eq!(
            self.count,
            self.slices.iter().map(HashSet::len).sum::<usize>()
        );
        self.count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_dirty_means_no_deadline() {
        let t0 = Instant::now();
        let mut d = Dirty::new(t0);
        assert_eq!(d.next_deadline(), None);
        let id = JobId::generate();
        d.insert(&id, t0 + Duration::from_millis(1));
        let due = d.next_deadline().unwrap();
        assert!(due >= t0 + Duration::from_millis(1));
        assert!(due <= t0 + Duration::from_millis(1) + PROGRESS_FLUSH_INTERVAL);
        assert!(d.take_due(due - Duration::from_millis(1)).is_empty());
        assert_eq!(d.take_due(due), vec![id.clone()]);
        assert_eq!(d.next_deadline(), None);
        // Dirty again right after its write: due a whole interval later, not sooner.
        d.insert(&id, due);
        assert_eq!(d.next_deadline(), Some(due + PROGRESS_FLUSH_INTERVAL));
        assert!(d.take_due(due).is_empty());
        assert_eq!(d.take_due(due + PROGRESS_FLUSH_INTERVAL), vec![id.clone()]);
    }

    #[test]
    fn a_small_farm_writes_every_dirty_job_in_one_commit_a_second() {
        let t0 = Instant::now();
        let mut d = Dirty::new(t0);
        let ids: Vec<JobId> = (0..6).map(|_| JobId::generate()).collect();
        let ms = Duration::from_millis;
        let mut writes = Vec::new();
        // Six printing printers, each reporting progress every 100 ms for ten seconds;
        // the JobCreator flushes at each deadline.
        let mut now = t0;
        while now < t0 + Duration::from_secs(10) {
            for id in &ids {
                d.insert(id, now);
            }
            now += ms(100);
            while let Some(due) = d.next_deadline().filter(|due| *due <= now) {
                let taken = d.take_due(due);
                assert!(!taken.is_empty());
                writes.push((due, taken.len()));
            }
        }
        assert!(writes.iter().all(|(_, n)| *n == ids.len()), "{writes:?}");
        assert!(
            writes
                .windows(2)
                .all(|w| w[1].0 - w[0].0 >= PROGRESS_FLUSH_INTERVAL),
            "at most one write a second: {writes:?}"
        );
        assert!((9..=11).contains(&writes.len()), "{}", writes.len());
        // Above SMALL_FLUSH the slices spread the writes again.
        let many: Vec<JobId> = (0..SMALL_FLUSH + 1).map(|_| JobId::generate()).collect();
        for id in &many {
            d.insert(id, now);
        }
        let first = d.next_deadline().unwrap();
        let taken = d.take_due(first);
        assert!(taken.len() < many.len() + ids.len());
    }

    #[test]
    fn slices_have_their_own_slots_and_a_failed_write_waits_a_slot() {
        let t0 = Instant::now();
        let mut d = Dirty::new(t0);
        let ids: Vec<JobId> = (0..200).map(|_| JobId::generate()).collect();
        for id in &ids {
            d.insert(id, t0);
        }
        let mut due: Vec<Instant> = d.due.iter().flatten().copied().collect();
        due.sort();
        due.dedup();
        assert_eq!(due.len(), PROGRESS_SLICES, "ten slots, not one burst");
        assert_eq!(due[1] - due[0], SLOT);
        let first = d.take_due(due[0]);
        assert!(!first.is_empty() && first.len() < ids.len());
        d.restore(first.clone(), due[0]);
        assert_eq!(d.len(), ids.len());
        assert!(d.take_due(due[0]).is_empty());
        assert_eq!(
            d.take_due(due[0] + PROGRESS_FLUSH_INTERVAL).len(),
            ids.len()
        );
        d.remove(&ids[0]);
        assert_eq!(d.take_all().len(), 0);
    }
}
