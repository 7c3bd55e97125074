//! The job book with a fake clock: each test is a printer's status sequence (and the
//! API's inputs) and the writes and events they must produce. No database, no actor:
//! the "shell" here confirms every plan, as the JobCreator does when its writes succeed.

use std::time::{Duration as StdDuration, Instant};

use chrono::Duration;

use super::*;
use crate::domain::{
    ConnectionState, JobPatch, MAX_END_REASON_LEN, NewJob, PrinterState, PrinterStatus, PrinterType,
};

/// A fake clock and a book; `status` feeds a status `secs` after the start.
struct Rig {
    book: JobBook,
    t0: Instant,
    wall0: Timestamp,
    secs: i64,
}

fn rig() -> Rig {
    let t0 = Instant::now();
    Rig {
        book: JobBook::new(t0),
        t0,
        wall0: crate::time::parse("2026-05-01T10:00:00Z").unwrap(),
        secs: 0,
    }
}

fn pid(s: &str) -> PrinterId {
    PrinterId::new(s).unwrap()
}

impl Rig {
    fn now(&self) -> Now {
        Now {
            wall: self.wall0 + Duration::seconds(self.secs),
            mono: self.t0 + StdDuration::from_secs(self.secs as u64),
        }
    }

    /// A connected status of printer `p` one second after the previous input.
    fn st(&mut self, p: &str, kind: PrinterType, state: PrinterState, file: &str) -> PrinterStatus {
        self.secs += 1;
        let mut s = PrinterStatus::unknown(pid(p), kind, self.now().wall);
        s.connection = ConnectionState::Connected;
        s.state = state;
        s.filename = (!file.is_empty()).then(|| file.to_owned());
        s.progress = Some(10.0);
        s
    }

    /// Feeds a status and confirms its plan (the writes "succeeded").
    fn feed(&mut self, s: &PrinterStatus, auto_create: bool) -> Plan {
        let plan = self.book.on_status(self.now(), s, auto_create);
        self.book.confirm();
        self.book.committed();
        plan
    }

    fn bambu(&mut self, state: PrinterState, file: &str, progress: f64) -> Plan {
        let mut s = self.st("a", PrinterType::Bambu, state, file);
        s.progress = Some(progress);
        self.feed(&s, true)
    }
}

fn kinds(plan: &Plan) -> Vec<&'static str> {
    plan.writes
        .iter()
        .map(|w| match w {
            Write::Insert(_) => "insert",
            Write::Update(_) => "update",
            Write::Delete(_) => "delete",
            Write::Progress(_) => "progress",
        })
        .collect()
}

fn written(plan: &Plan) -> &Job {
    match plan.writes.last() {
        Some(Write::Insert(j) | Write::Update(j)) => j,
        other => panic!("no job written: {other:?}"),
    }
}

fn new_job(printer: &str, file: &str) -> NewJob {
    NewJob {
        printer_id: printer.into(),
        job_name: "Order 7".into(),
        filename: file.into(),
        status: None,
        customer_info: None,
        notes: Some("rush".into()),
        estimated_duration: None,
    }
}

#[test]
fn a_print_is_created_followed_with_batched_progress_and_closed() {
    let mut r = rig();
    assert!(r.bambu(PrinterState::Idle, "", 0.0).is_empty());
    let plan = r.bambu(PrinterState::Printing, "cube.3mf", 1.0);
    assert_eq!(kinds(&plan), ["insert"]);
    assert!(
        matches!(&plan.events[..], [JobEvent::AutoCreated(j)] if j.status == JobStatus::Running)
    );
    let id = written(&plan).id.clone();
    assert_eq!(r.book.next_flush(), None, "nothing unwritten yet");
    // Progress is not written per status: it waits for its slice's deadline.
    assert!(r.bambu(PrinterState::Printing, "cube.3mf", 2.0).is_empty());
    assert!(r.bambu(PrinterState::Printing, "cube.3mf", 3.0).is_empty());
    let due = r
        .book
        .next_flush()
        .expect("a flush is scheduled once progress moved");
    assert!(due <= r.now().mono + progress::PROGRESS_FLUSH_INTERVAL);
    assert!(
        r.book
            .flush_due(Now {
                mono: due - StdDuration::from_millis(1),
                ..r.now()
            })
            .is_empty()
    );
    let flush = r.book.flush_due(Now {
        mono: due,
        ..r.now()
    });
    r.book.confirm();
    match &flush.writes[..] {
        [Write::Progress(jobs)] => {
            assert_eq!((jobs[0].id.clone(), jobs[0].progress), (id.clone(), 3.0))
        }
        w => panic!("{w:?}"),
    }
    assert_eq!(r.book.next_flush(), None, "idle: no flush scheduled");
    let end = r.bambu(PrinterState::Finished, "cube.3mf", 100.0);
    assert_eq!(kinds(&end), ["update"]);
    assert_eq!(end.ended, [JobStatus::Completed]);
    let j = written(&end);
    assert_eq!(
        (j.status, j.progress, j.id.clone()),
        (JobStatus::Completed, 100.0, id)
    );
    // The lingering FINISH creates nothing (rule 5).
    assert!(
        r.bambu(PrinterState::Finished, "cube.3mf", 100.0)
            .is_empty()
    );
    assert_eq!(r.book.open_count(), 0);
}

#[test]
fn a_pending_manual_job_becomes_the_print_that_starts_its_file() {
    let mut r = rig();
    let (plan, created) = r
        .book
        .create(
            r.now(),
            &pid("a"),
            PrinterType::Bambu,
            new_job("a", "bracket.3mf"),
        )
        .unwrap();
    r.book.confirm();
    assert!(!created.attached);
    assert_eq!(kinds(&plan), ["insert"]);
    assert_eq!(created.job.status, JobStatus::Pending);
    let start = r.bambu(PrinterState::Printing, "cache/bracket.gcode.3mf", 5.0);
    assert_eq!(kinds(&start), ["update"], "attached, not duplicated");
    let j = written(&start);
    assert_eq!(
        (j.id.clone(), j.status),
        (created.job.id.clone(), JobStatus::Running)
    );
    assert_eq!(j.notes.as_deref(), Some("rush"));
    assert!(!j.is_auto_created());
    // The next print of the same file is a new (auto-created) job: the pending one is used.
    r.bambu(PrinterState::Finished, "bracket.3mf", 100.0);
    r.bambu(PrinterState::Idle, "", 0.0);
    let again = r.bambu(PrinterState::Printing, "bracket.3mf", 1.0);
    assert_eq!(kinds(&again), ["insert"]);
}

#[test]
fn a_manual_job_for_the_running_print_attaches_to_it() {
    let mut r = rig();
    let auto = r.bambu(PrinterState::Printing, "bracket.3mf", 40.0);
    let id = written(&auto).id.clone();
    let mut new = new_job("a", "bracket.3mf");
    new.customer_info = Some(
        serde_json::json!({"customer": "ACME"})
            .as_object()
            .unwrap()
            .clone(),
    );
    let (plan, created) = r
        .book
        .create(r.now(), &pid("a"), PrinterType::Bambu, new)
        .unwrap();
    r.book.confirm();
    assert!(created.attached);
    assert_eq!(kinds(&plan), ["update"]);
    assert_eq!(created.job.id, id);
    assert_eq!(created.job.job_name, "Order 7");
    assert_eq!(created.job.customer_info["customer"], "ACME");
    assert!(created.job.is_auto_created(), "the auto-creation keys stay");
    // A different file is a job of its own, pending.
    let (_, other) = r
        .book
        .create(
            r.now(),
            &pid("a"),
            PrinterType::Bambu,
            new_job("a", "lid.3mf"),
        )
        .unwrap();
    r.book.confirm();
    assert!(!other.attached && other.job.status == JobStatus::Pending);
}

#[test]
fn with_auto_creation_off_no_job_is_created_but_open_ones_are_followed() {
    let mut r = rig();
    let plan = r.bambu(PrinterState::Printing, "a.3mf", 1.0);
    assert_eq!(kinds(&plan), ["insert"]);
    let mut s = r.st("a", PrinterType::Bambu, PrinterState::Finished, "a.3mf");
    s.progress = Some(100.0);
    let end = r.feed(&s, false);
    assert_eq!(
        end.ended,
        [JobStatus::Completed],
        "the open job is followed to its end"
    );
    let idle = r.st("a", PrinterType::Bambu, PrinterState::Idle, "");
    r.feed(&idle, false);
    let s = r.st("a", PrinterType::Bambu, PrinterState::Printing, "b.3mf");
    assert!(r.feed(&s, false).is_empty(), "no new job (rule 8)");
    assert_eq!(r.book.open_count(), 0);
}

#[test]
fn a_print_between_two_polls_is_recorded_from_its_end() {
    let mut r = rig();
    let mut idle = r.st("p", PrinterType::Prusalink, PrinterState::Idle, "");
    idle.printer_job_id = Some("41".into());
    r.feed(&idle, true);
    let mut s = r.st(
        "p",
        PrinterType::Prusalink,
        PrinterState::Finished,
        "box.gcode",
    );
    s.printer_job_id = Some("42".into());
    let plan = r.feed(&s, true);
    assert_eq!(
        kinds(&plan),
        ["insert", "update"],
        "rule 9: created, then closed"
    );
    assert_eq!(written(&plan).status, JobStatus::Completed);
    assert!(r.feed(&s, true).is_empty(), "seen once");
}

#[test]
fn a_start_time_reported_after_the_job_opened_is_learned() {
    let mut r = rig();
    let mut s = r.st("x", PrinterType::Bambu, PrinterState::Printing, "part.3mf");
    s.printer_job_id = Some("1001".into());
    let first = r.feed(&s, true);
    assert!(written(&first).printer_start_time.is_none());
    let mut s = r.st("x", PrinterType::Bambu, PrinterState::Printing, "part.3mf");
    s.printer_job_id = Some("1001".into());
    let t = r.now().wall - Duration::seconds(30);
    s.printer_start_time = Some(t);
    let plan = r.feed(&s, true);
    assert_eq!(kinds(&plan), ["update"]);
    let j = written(&plan);
    assert_eq!(j.printer_start_time, Some(t));
    assert_eq!(
        j.customer_info["printer_start_time"],
        crate::time::format(t)
    );
    // Learned once.
    let mut s = r.st("x", PrinterType::Bambu, PrinterState::Printing, "part.3mf");
    s.printer_job_id = Some("1001".into());
    s.printer_start_time = Some(t);
    assert!(r.feed(&s, true).writes.is_empty());
}

#[test]
fn a_failed_or_cancelled_job_keeps_the_printers_reason() {
    let mut r = rig();
    r.bambu(PrinterState::Printing, "a.3mf", 20.0);
    let mut s = r.st("a", PrinterType::Bambu, PrinterState::Failed, "a.3mf");
    s.error = Some("Heatbed temperature malfunction (0300_4000)".into());
    let plan = r.feed(&s, true);
    let j = written(&plan);
    assert_eq!(j.status, JobStatus::Failed);
    assert_eq!(
        j.end_reason.as_deref(),
        Some("Heatbed temperature malfunction (0300_4000)")
    );

    // Capped, and the API's cancel says more than the printer's text.
    let mut r = rig();
    let open = r.bambu(PrinterState::Printing, "b.3mf", 20.0);
    let mut s = r.st("a", PrinterType::Bambu, PrinterState::Failed, "b.3mf");
    s.error = Some("x".repeat(2000));
    let long = written(&r.feed(&s, true)).end_reason.clone().unwrap();
    assert!(
        long.chars().count() <= MAX_END_REASON_LEN + 1,
        "{}",
        long.len()
    );
    let _ = open;
    r.bambu(PrinterState::Idle, "", 0.0);
    let id = written(&r.bambu(PrinterState::Printing, "c.3mf", 5.0))
        .id
        .clone();
    r.book.mark_cancelled_from_api(&pid("a"), &id);
    let mut s = r.st("a", PrinterType::Bambu, PrinterState::Cancelled, "c.3mf");
    s.error = Some("cancelled by user".into());
    let j = written(&r.feed(&s, true)).clone();
    assert_eq!(
        j.end_reason.as_deref(),
        Some(crate::domain::END_REASON_API_CANCEL)
    );

    // A completed print ignores an error text.
    r.bambu(PrinterState::Idle, "", 0.0);
    r.bambu(PrinterState::Printing, "d.3mf", 5.0);
    let mut s = r.st("a", PrinterType::Bambu, PrinterState::Finished, "d.3mf");
    s.error = Some("stale".into());
    assert_eq!(written(&r.feed(&s, true)).end_reason, None);
}

#[test]
fn a_failed_write_is_restored_and_decided_again() {
    let mut r = rig();
    let s = r.st("a", PrinterType::Bambu, PrinterState::Printing, "a.3mf");
    let plan = r.book.on_status(r.now(), &s, true);
    assert_eq!(kinds(&plan), ["insert"]);
    r.book.restore(r.now().mono);
    assert_eq!(r.book.open_count(), 0);
    let again = r.feed(&s, true);
    assert_eq!(
        kinds(&again),
        ["insert"],
        "the next status makes the same decision"
    );
    assert_ne!(written(&again).id, written(&plan).id);
}

#[test]
fn a_lost_group_undoes_every_printer_it_touched() {
    let mut r = rig();
    let a = r.st("a", PrinterType::Bambu, PrinterState::Printing, "a.3mf");
    let b = r.st("b", PrinterType::Bambu, PrinterState::Printing, "b.3mf");
    r.book.on_status(r.now(), &a, true);
    r.book.confirm();
    r.book.on_status(r.now(), &b, true);
    r.book.confirm();
    assert_eq!(r.book.open_count(), 2);
    r.book.rolled_back(r.now().mono);
    assert_eq!(r.book.open_count(), 0);
    assert_eq!(kinds(&r.feed(&a, true)), ["insert"]);
    assert_eq!(kinds(&r.feed(&b, true)), ["insert"]);
    // Once committed, a later loss only undoes what came after.
    let a2 = r.st("a", PrinterType::Bambu, PrinterState::Finished, "a.3mf");
    r.book.on_status(r.now(), &a2, true);
    r.book.confirm();
    r.book.rolled_back(r.now().mono);
    assert_eq!(r.book.open_count(), 2);
}

#[test]
fn edits_and_deletes_keep_the_book_in_step() {
    let mut r = rig();
    let id = written(&r.bambu(PrinterState::Printing, "a.3mf", 10.0))
        .id
        .clone();
    r.bambu(PrinterState::Printing, "a.3mf", 12.0);
    // An edit of the open job starts from the book's copy (unwritten progress and all).
    let current = r.book.cached(&id).unwrap().clone();
    assert_eq!(current.progress, 12.0);
    let patch = JobPatch {
        status: Some(JobStatus::Cancelled),
        ..Default::default()
    };
    let plan = r.book.update(r.now(), current, patch).unwrap();
    r.book.confirm();
    assert_eq!(plan.ended, [JobStatus::Cancelled]);
    assert_eq!(r.book.open_count(), 0);
    assert_eq!(
        r.book.next_flush(),
        None,
        "an ended job has nothing to flush"
    );
    // The same print keeps reporting: it is the job just closed, not a new one (rule 3).
    assert!(r.bambu(PrinterState::Printing, "a.3mf", 13.0).is_empty());
    // A bad edit is refused, naming the field, and changes nothing.
    let job = written(&plan).clone();
    let bad = JobPatch {
        progress: Some(101.0),
        ..Default::default()
    };
    let e = r.book.update(r.now(), job.clone(), bad).unwrap_err();
    assert!(e.to_string().contains("progress"));
    let del = r.book.delete(r.now(), &job);
    assert_eq!(kinds(&del), ["delete"]);
    assert!(matches!(&del.events[..], [JobEvent::Deleted { id: d, .. }] if *d == id));
}
