//! Socket messages read out of order with poll answers (the driver does not read the socket
//! while it waits for a poll): found by the mixed-farm load run, each a second job for one
//! print before its fix.

use super::*;

/// Found by the mixed-farm load run: while the driver waits for a poll answer it does not
/// read the socket, so a `current` queued before the print ended is read after the answer
/// that saw the end. It must not reopen the print (a second job for the same print).
#[test]
fn a_socket_message_older_than_the_poll_that_saw_the_end_is_skipped() {
    let t0 = Instant::now();
    let mut o = OctoState::default();
    let poll = |o: &mut OctoState, body: &[u8], now| {
        let applied = o.apply_poll(parse_job(body).unwrap(), now);
        (applied, status_of(o))
    };
    let (_, s) = poll(
        &mut o,
        &job("Printing", Some("f/x.gcode"), "40.0", "40", "60"),
        t0,
    );
    assert_eq!(s.state, PrinterState::Printing);
    let s = push(&mut o, &current("Printing", "f/x.gcode", "99.5"), t0);
    assert_eq!(s.progress, Some(99.5));
    // The poll answer: done (OctoPrint keeps the file at 100 %).
    let t1 = t0 + Duration::from_secs(1);
    let (_, s) = poll(
        &mut o,
        &job("Operational", Some("f/x.gcode"), "100.0", "100", "0"),
        t1,
    );
    assert_eq!(s.state, PrinterState::Finished);
    // Queued on the socket during the poll, read after it: older, skipped.
    let s = push(&mut o, &current("Printing", "f/x.gcode", "99.9"), t1);
    assert_eq!(
        s.state,
        PrinterState::Finished,
        "a stale current reopened the print"
    );
    assert_eq!(s.filename.as_deref(), Some("x.gcode"));
    // The event that was queued behind it changes nothing.
    let s = push(
        &mut o,
        r#"{"event": {"type": "PrintDone", "payload": {"path": "f/x.gcode", "time": 100}}}"#,
        t1,
    );
    assert_eq!(s.state, PrinterState::Finished);
    // A real next print is announced by its event and counts at once.
    let s = push(
        &mut o,
        r#"{"event": {"type": "PrintStarted", "payload": {"path": "f/x.gcode"}}}"#,
        t1,
    );
    assert_eq!(s.state, PrinterState::Printing);

    // Without a socket event, once the grace has passed the socket's word counts again.
    let mut o = OctoState::default();
    poll(
        &mut o,
        &job("Printing", Some("f/y.gcode"), "50.0", "5", "5"),
        t0,
    );
    poll(
        &mut o,
        &job("Operational", Some("f/y.gcode"), "100.0", "10", "0"),
        t1,
    );
    let later = t1 + EVENT_GRACE + Duration::from_millis(1);
    let s = push(&mut o, &current("Printing", "f/y.gcode", "1.0"), later);
    assert_eq!(s.state, PrinterState::Printing);
    // A poll-only session (no socket): poll answers are never skipped for each other.
    let mut o = OctoState::default();
    poll(
        &mut o,
        &job("Printing", Some("f/z.gcode"), "50.0", "5", "5"),
        t0,
    );
    poll(
        &mut o,
        &job("Operational", Some("f/z.gcode"), "100.0", "10", "0"),
        t0,
    );
    let (applied, s) = poll(
        &mut o,
        &job("Printing", Some("f/z.gcode"), "1.0", "1", "9"),
        t0,
    );
    assert!(applied);
    assert_eq!(s.state, PrinterState::Printing);
}

/// Found by the mixed-farm load run: after a failed print OctoPrint shows "Offline after
/// error" until the printer is reconnected; a `current` with that state, sent before the
/// next print's `PrintStarted` and read after it, must not fail the new print.
#[test]
fn an_error_state_older_than_the_next_prints_start_does_not_fail_it() {
    let t0 = Instant::now();
    let mut o = OctoState::default();
    push(
        &mut o,
        r#"{"event": {"type": "PrintStarted", "payload": {"path": "a.gcode"}}}"#,
        t0,
    );
    let s = push(
        &mut o,
        r#"{"event": {"type": "PrintFailed", "payload": {"path": "a.gcode", "reason": "error"}}}"#,
        t0,
    );
    assert_eq!(
        (s.state, s.filename.as_deref()),
        (PrinterState::Failed, Some("a.gcode"))
    );
    let t1 = t0 + EVENT_GRACE + Duration::from_secs(1);
    push(
        &mut o,
        &current("Offline after error", "a.gcode", "null"),
        t1,
    );
    let s = push(
        &mut o,
        r#"{"event": {"type": "PrintStarted", "payload": {"path": "b.gcode"}}}"#,
        t1,
    );
    assert_eq!(
        (s.state, s.filename.as_deref()),
        (PrinterState::Printing, Some("b.gcode"))
    );
    let s = push(
        &mut o,
        &current("Offline after error", "a.gcode", "null"),
        t1,
    );
    assert_eq!(
        (s.state, s.filename.as_deref()),
        (PrinterState::Printing, Some("b.gcode")),
        "a stale error state failed the next print"
    );
    // A real failure of the new print comes with its event.
    let s = push(
        &mut o,
        r#"{"event": {"type": "PrintFailed", "payload": {"path": "b.gcode", "reason": "error"}}}"#,
        t1,
    );
    assert_eq!(
        (s.state, s.filename.as_deref()),
        (PrinterState::Failed, Some("b.gcode"))
    );
}

/// A poll answer that already shows a print some seconds in, then the `PrintStarted`
/// that was queued on the socket meanwhile: the same print, not a restart at 0 %.
#[test]
fn a_start_event_read_after_a_poll_showing_the_print_keeps_its_progress() {
    let t0 = Instant::now();
    let mut o = OctoState::default();
    assert!(o.apply_poll(
        parse_job(&job("Printing", Some("f/x.gcode"), "30.0", "40", "90")).unwrap(),
        t0
    ));
    let s = push(
        &mut o,
        r#"{"event": {"type": "PrintStarted", "payload": {"path": "f/x.gcode"}}}"#,
        t0,
    );
    assert_eq!(s.state, PrinterState::Printing);
    assert_eq!(
        (s.progress, s.elapsed_s),
        (Some(30.0), Some(40)),
        "looks like a restart"
    );
}
