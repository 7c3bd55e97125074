//! Unit tests of the lifecycle: a tiny in-memory "JobCreator" executes the decisions so
//! each test reads as a printer's report sequence and the jobs it must produce.

use super::sample::Sample;
use super::*;
use crate::time;

/// Executes decisions like the JobCreator (always auto-creating) and keeps the jobs.
#[derive(Default)]
struct Farm {
    tracker: PrinterTracker,
    jobs: Vec<(JobId, JobStatus, Start)>,
    t: i64,
}

impl Farm {
    fn feed(&mut self, obs: Sample) {
        for d in self.tracker.observe(&obs.status()) {
            match d {
                Decision::Continue {
                    job_id,
                    status,
                    progress,
                    elapsed_s,
                } => {
                    self.job(&job_id).1 = status;
                    self.tracker.progressed(status, progress, elapsed_s);
                }
                Decision::Close {
                    job_id,
                    status,
                    end_time,
                } => {
                    self.job(&job_id).1 = status;
                    self.tracker.closed(&job_id, end_time);
                }
                Decision::Start(s) => {
                    let id = JobId::generate();
                    self.tracker.opened(PrintRecord {
                        job_id: id.clone(),
                        filename: s.filename.clone(),
                        printer_job_id: s.printer_job_id.clone(),
                        printer_start_time: s.printer_start_time,
                        status: s.status,
                        last_progress: s.progress,
                        last_elapsed: s.elapsed_s,
                    });
                    self.jobs.push((id, s.status, s));
                }
                Decision::Missed { start, status } => {
                    let id = JobId::generate();
                    self.tracker.opened(PrintRecord {
                        job_id: id.clone(),
                        filename: start.filename.clone(),
                        printer_job_id: start.printer_job_id.clone(),
                        printer_start_time: start.printer_start_time,
                        status: JobStatus::Running,
                        last_progress: start.progress,
                        last_elapsed: start.elapsed_s,
                    });
                    self.tracker.closed(&id, obs.at);
                    self.jobs.push((id, status, start));
                }
            }
        }
    }

    fn job(&mut self, id: &JobId) -> &mut (JobId, JobStatus, Start) {
        self.jobs
            .iter_mut()
            .find(|j| &j.0 == id)
            .expect("decision for an unknown job")
    }

    fn statuses(&self) -> Vec<JobStatus> {
        self.jobs.iter().map(|j| j.1).collect()
    }

    /// A P1-style observation (no ids, no start time) a second after the previous one.
    fn p1(&mut self, state: PrinterState, file: &str, progress: f64) -> Sample {
        self.t += 1;
        Sample {
            printer_type: PrinterType::Bambu,
            connected: true,
            state,
            filename: (!file.is_empty()).then(|| file.to_owned()),
            job_name: None,
            printer_job_id: None,
            printer_start_time: None,
            elapsed_s: None,
            progress: Some(progress),
            remaining_s: Some(600),
            first_after_connect: false,
            at: time::parse("2026-01-01T10:00:00Z").unwrap() + Duration::seconds(self.t),
        }
    }
}

use PrinterState::*;

#[test]
fn one_print_one_job_from_start_to_finish() {
    let mut f = Farm::default();
    let o = f.p1(Idle, "", 0.0);
    f.feed(o);
    for p in 0..=100 {
        let o = f.p1(Printing, "cube.3mf", p as f64);
        f.feed(o);
    }
    let o = f.p1(Finished, "cube.3mf", 100.0);
    f.feed(o);
    // The lingering FINISH with the old name creates nothing.
    for _ in 0..10 {
        let o = f.p1(Finished, "cube.3mf", 100.0);
        f.feed(o);
    }
    assert_eq!(f.statuses(), vec![JobStatus::Completed]);
    assert_eq!(f.jobs[0].2.job_name, "cube");
    assert!(!f.jobs[0].2.discovered_on_startup);
}

#[test]
fn pause_and_resume_stay_one_job() {
    let mut f = Farm::default();
    for (st, p) in [
        (Printing, 10.0),
        (Paused, 10.0),
        (Paused, 10.0),
        (Printing, 11.0),
    ] {
        let o = f.p1(st, "a.3mf", p);
        f.feed(o);
        let expected = if st == Paused {
            JobStatus::Paused
        } else {
            JobStatus::Running
        };
        assert_eq!(f.statuses(), vec![expected]);
    }
}

#[test]
fn fail_and_cancel_end_states() {
    for (end, want) in [
        (Failed, JobStatus::Failed),
        (Cancelled, JobStatus::Cancelled),
        (Finished, JobStatus::Completed),
    ] {
        let mut f = Farm::default();
        let o = f.p1(Printing, "a.3mf", 40.0);
        f.feed(o);
        let o = f.p1(end, "a.3mf", 0.0);
        f.feed(o);
        assert_eq!(f.statuses(), vec![want]);
    }
}

#[test]
fn the_same_file_twice_in_a_row_is_two_jobs() {
    let mut f = Farm::default();
    for _ in 0..2 {
        for p in [0.0, 50.0, 100.0] {
            let o = f.p1(Printing, "a.3mf", p);
            f.feed(o);
        }
        let o = f.p1(Finished, "a.3mf", 100.0);
        f.feed(o);
        let o = f.p1(Preparing, "a.3mf", 0.0);
        f.feed(o);
    }
    // Preparing says nothing of progress (the previous print's numbers linger), so the
    // new print shows itself by its progress starting again.
    let o = f.p1(Printing, "a.3mf", 0.0);
    f.feed(o);
    assert_eq!(
        f.statuses(),
        vec![
            JobStatus::Completed,
            JobStatus::Completed,
            JobStatus::Running
        ]
    );
}

#[test]
fn a_restart_seen_only_as_progress_falling_back_closes_the_old_job() {
    let mut f = Farm::default();
    let o = f.p1(Printing, "a.3mf", 70.0);
    f.feed(o);
    let o = f.p1(Printing, "a.3mf", 1.0);
    f.feed(o);
    assert_eq!(f.statuses(), vec![JobStatus::Unknown, JobStatus::Running]);
    // A different file while printing: the same.
    let o = f.p1(Printing, "b.3mf", 2.0);
    f.feed(o);
    assert_eq!(
        f.statuses(),
        vec![JobStatus::Unknown, JobStatus::Unknown, JobStatus::Running]
    );
}

#[test]
fn printer_job_ids_decide_identity() {
    let mut f = Farm::default();
    let mut o = f.p1(Printing, "a.3mf", 99.5);
    o.printer_job_id = Some("7".into());
    f.feed(o.clone());
    // Same id: same job. New id: the old one ended unseen at 99.6%.
    o.progress = Some(99.6);
    f.feed(o.clone());
    assert_eq!(f.jobs.len(), 1);
    o.printer_job_id = Some("8".into());
    f.feed(o);
    assert_eq!(f.statuses(), vec![JobStatus::Completed, JobStatus::Running]);
}

#[test]
fn disconnected_statuses_change_nothing_and_returning_idle_is_unknown() {
    let mut f = Farm::default();
    let o = f.p1(Printing, "a.3mf", 30.0);
    f.feed(o);
    let mut o = f.p1(Unknown, "", 0.0);
    o.connected = false;
    f.feed(o);
    assert_eq!(f.statuses(), vec![JobStatus::Running]);
    let mut o = f.p1(Printing, "a.3mf", 35.0);
    o.first_after_connect = true;
    f.feed(o);
    assert_eq!(f.statuses(), vec![JobStatus::Running]);
    let mut o = f.p1(Idle, "", 0.0);
    o.first_after_connect = true;
    f.feed(o);
    assert_eq!(f.statuses(), vec![JobStatus::Unknown]);
}

#[test]
fn live_bambu_active_to_idle_is_a_cancel() {
    let mut f = Farm::default();
    let o = f.p1(Printing, "a.3mf", 30.0);
    f.feed(o);
    let o = f.p1(Idle, "", 0.0);
    f.feed(o);
    assert_eq!(f.statuses(), vec![JobStatus::Cancelled]);
}

#[test]
fn a_print_under_way_at_startup_is_marked_discovered() {
    let mut f = Farm::default();
    let o = f.p1(Printing, "a.3mf", 30.0);
    f.feed(o);
    assert!(f.jobs[0].2.discovered_on_startup);
    let o = f.p1(Finished, "a.3mf", 100.0);
    f.feed(o);
    let o = f.p1(Printing, "a.3mf", 0.0);
    f.feed(o);
    assert!(!f.jobs[1].2.discovered_on_startup);
}

#[test]
fn a_readopted_job_continues_after_restart() {
    let start = time::parse("2026-01-01T09:00:00Z").unwrap();
    let id = JobId::generate();
    let mut f = Farm {
        tracker: PrinterTracker::with_open(Some(PrintRecord {
            job_id: id.clone(),
            filename: "a.3mf".into(),
            printer_job_id: None,
            printer_start_time: Some(start),
            status: JobStatus::Running,
            last_progress: 40.0,
            last_elapsed: None,
        })),
        ..Default::default()
    };
    let o = f.clone_obs();
    let s = f.tracker.start(&o.status());
    f.jobs.push((id, JobStatus::Running, s));
    let mut o = f.p1(Printing, "a.3mf", 45.0);
    o.printer_start_time = Some(start + Duration::seconds(2));
    o.first_after_connect = true;
    f.feed(o);
    assert_eq!(f.jobs.len(), 1);
    let o = f.p1(Finished, "a.3mf", 100.0);
    f.feed(o);
    assert_eq!(f.statuses(), vec![JobStatus::Completed]);
}

impl Farm {
    fn clone_obs(&mut self) -> Sample {
        let t = self.t;
        let o = self.p1(Printing, "a.3mf", 40.0);
        self.t = t;
        o
    }
}

#[test]
fn a_job_closed_by_hand_is_not_recreated_by_the_next_report() {
    let mut f = Farm::default();
    let o = f.p1(Printing, "a.3mf", 30.0);
    f.feed(o);
    let id = f.jobs[0].0.clone();
    let at = f.p1(Printing, "a.3mf", 31.0).at;
    f.tracker.closed(&id, at);
    let o = f.p1(Printing, "a.3mf", 32.0);
    f.feed(o);
    assert_eq!(f.jobs.len(), 1);
    // Once the printer reports the end and prints the file again, it is a new job.
    let o = f.p1(Finished, "a.3mf", 100.0);
    f.feed(o);
    let o = f.p1(Printing, "a.3mf", 0.0);
    f.feed(o);
    assert_eq!(f.jobs.len(), 2);
}

#[test]
fn preparing_counts_once_the_file_is_known() {
    let mut f = Farm::default();
    let o = f.p1(Preparing, "", 0.0);
    f.feed(o);
    assert!(f.jobs.is_empty());
    let o = f.p1(Preparing, "a.3mf", 0.0);
    f.feed(o);
    assert_eq!(f.statuses(), vec![JobStatus::Running]);
    // Rejected during preparation: PREPARE → FAILED.
    let o = f.p1(Failed, "a.3mf", 0.0);
    f.feed(o);
    assert_eq!(f.statuses(), vec![JobStatus::Failed]);
}

#[test]
fn start_time_prefers_the_printer_then_elapsed() {
    let mut f = Farm::default();
    let mut o = f.p1(Printing, "a.3mf", 10.0);
    o.elapsed_s = Some(300);
    o.remaining_s = Some(900);
    f.feed(o.clone());
    let s = &f.jobs[0].2;
    assert_eq!(s.start_time, o.at - Duration::seconds(300));
    assert_eq!(s.estimated_duration, Some(1200));
    assert_eq!(display_name("cache/Bracket v3.gcode.3mf"), "Bracket v3");
}

mod property;

/// A PrusaLink observation with its `job.id`.
fn prusa(f: &mut Farm, state: PrinterState, file: &str, job_id: Option<&str>) -> Sample {
    let mut o = f.p1(state, file, 0.0);
    o.printer_type = PrinterType::Prusalink;
    o.printer_job_id = job_id.map(str::to_owned);
    o
}

#[test]
fn a_polled_print_seen_only_by_its_end_is_recorded_once() {
    let mut f = Farm::default();
    let o = prusa(&mut f, Idle, "", None);
    f.feed(o);
    // The whole print fell between two polls: FINISHED with a new job id.
    for _ in 0..3 {
        let o = prusa(&mut f, Finished, "washer.gcode", Some("7"));
        f.feed(o);
    }
    assert_eq!(f.statuses(), [JobStatus::Completed]);
    // A stopped one after it, also unseen while printing.
    let o = prusa(&mut f, Cancelled, "washer.gcode", Some("8"));
    f.feed(o);
    assert_eq!(f.statuses(), [JobStatus::Completed, JobStatus::Cancelled]);
    // Idle, then an end screen without a job object: recorded with an unknown file.
    for (state, n) in [(Idle, 2), (Finished, 3), (Finished, 3), (Idle, 3)] {
        let o = prusa(&mut f, state, "", None);
        f.feed(o);
        assert_eq!(f.jobs.len(), n);
    }
    assert_eq!(f.jobs[2].2.filename, UNKNOWN_FILE);
}

#[test]
fn an_end_screen_at_startup_or_on_a_push_printer_records_nothing() {
    // The first status after start shows the end of a print the previous run recorded.
    let mut f = Farm::default();
    let o = prusa(&mut f, Finished, "old.gcode", Some("6"));
    f.feed(o);
    let o = prusa(&mut f, Finished, "old.gcode", Some("6"));
    f.feed(o);
    assert!(f.jobs.is_empty());
    // Bambu reports every state: an end of an unseen print is a stale screen.
    let mut f = Farm::default();
    let o = f.p1(Idle, "", 0.0);
    f.feed(o);
    let mut o = f.p1(Finished, "cube.3mf", 100.0);
    o.printer_job_id = Some("123".into());
    f.feed(o);
    assert!(f.jobs.is_empty());
}
