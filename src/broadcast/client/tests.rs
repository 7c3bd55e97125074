//! The outbox: coalescing, `seq` order, the slow-client close, the listener count.

use super::*;

fn p(s: &str) -> PrinterId {
    PrinterId::new(s).unwrap()
}

/// An event with the next sequence number (per test thread), like the Broadcaster's.
fn ev(kind: EventKind, printer: Option<(&str, u32)>, msg: &Arc<str>) -> Encoded {
    thread_local!(static SEQ: std::cell::Cell<u64> = const { std::cell::Cell::new(0) });
    let seq = SEQ.with(|s| {
        s.set(s.get() + 1);
        s.get()
    });
    Encoded {
        kind,
        printer: printer.map(|(id, _)| p(id)),
        status_slot: printer.map(|(_, slot)| slot),
        seq,
        msg: msg.clone(),
    }
}

#[test]
fn clients_are_counted_as_status_listeners_while_their_filter_takes_statuses() {
    let l = StatusListeners::default();
    assert!(!l.any());
    let a = Client::counted_in(1, l.clone());
    let b = Client::counted_in(2, l.clone());
    assert!(l.any(), "a new client takes every event");
    let jobs = || Filter {
        events: EventKind::JobUpdated.bit(),
        printer_ids: HashSet::new(),
    };
    a.set_filter(jobs());
    a.set_filter(jobs());
    assert!(l.any(), "b still takes statuses");
    b.set_filter(Filter {
        events: EventKind::PrinterStatus.bit(),
        printer_ids: [p("x")].into(),
    });
    assert!(l.any(), "statuses of one printer are statuses");
    b.set_filter(jobs());
    assert!(!l.any());
    a.set_filter(Filter::default());
    assert!(l.any());
    drop(b);
    assert!(l.any());
    drop(a);
    assert!(
        !l.any(),
        "a dropped client gives its count back, and only once"
    );
}

fn texts(b: Batch) -> Vec<String> {
    b.messages.iter().map(|m| m.to_string()).collect()
}

#[test]
fn statuses_coalesce_per_printer() {
    let c = Client::new(1);
    for i in 0..5 {
        let m = Arc::from(format!("a{i}"));
        c.offer(&[ev(EventKind::PrinterStatus, Some(("a", 3)), &m)]);
    }
    let (b0, j): (Arc<str>, Arc<str>) = (Arc::from("b0"), Arc::from("j"));
    c.offer(&[
        ev(EventKind::PrinterStatus, Some(("b", 0)), &b0),
        ev(EventKind::JobUpdated, Some(("b", 0)), &j),
    ]);
    assert_eq!(texts(c.take()), ["a4", "b0", "j"]);
    // Taken statuses are forgotten: the next one of a printer is queued anew.
    let a5: Arc<str> = Arc::from("a5");
    c.offer(&[ev(EventKind::PrinterStatus, Some(("a", 3)), &a5)]);
    assert_eq!(texts(c.take()), ["a5"]);
}

#[test]
fn a_batch_is_in_seq_order() {
    let c = Client::new(1);
    let m = |s: &str| -> Arc<str> { Arc::from(s) };
    // A status pending before a job event went out after it; a replaced status kept
    // the place of the one it replaced, ahead of other printers' newer statuses.
    c.offer(&[ev(EventKind::PrinterStatus, Some(("a", 0)), &m("a1"))]);
    c.offer(&[ev(EventKind::JobUpdated, Some(("a", 0)), &m("j2"))]);
    c.offer(&[ev(EventKind::PrinterStatus, Some(("b", 1)), &m("b3"))]);
    c.offer(&[ev(EventKind::PrinterStatus, Some(("c", 2)), &m("c4"))]);
    c.offer(&[ev(EventKind::PrinterStatus, Some(("a", 0)), &m("a5"))]);
    assert!(c.reply(m("pong")));
    c.offer(&[ev(EventKind::JobCreated, None, &m("j6"))]);
    assert_eq!(texts(c.take()), ["j2", "b3", "c4", "a5", "pong", "j6"]);
}

#[test]
fn replies_are_bounded_by_bytes() {
    let c = Client::new(1);
    let big: Arc<str> = Arc::from("e".repeat(1024));
    let fit = CLIENT_REPLY_BYTES / 1024;
    for _ in 0..fit {
        assert!(c.reply(big.clone()));
    }
    assert!(!c.reply(big.clone()), "more replies than the bound queued");
    assert_eq!(c.take().messages.len(), fit);
    assert!(c.reply(big), "a client that reads is answered again");
}

#[test]
fn overflow_closes_with_reason() {
    let c = Client::new(1);
    let m: Arc<str> = Arc::from("x");
    for _ in 0..CLIENT_QUEUE_CAPACITY {
        assert!(c.offer(&[ev(EventKind::JobUpdated, None, &m)]));
    }
    assert!(!c.offer(&[ev(EventKind::JobUpdated, None, &m)]));
    assert_eq!(c.take().close, Some(CloseReason::TooSlow));
}

#[test]
fn overflow_by_bytes_closes_too() {
    let c = Client::new(1);
    let big: Arc<str> = Arc::from("x".repeat(1024 * 1024));
    let big = [ev(EventKind::JobUpdated, None, &big)];
    for _ in 0..CLIENT_QUEUE_BYTES / (1024 * 1024) {
        assert!(c.offer(&big));
    }
    assert!(!c.offer(&big));
    assert_eq!(c.take().close, Some(CloseReason::TooSlow));
    // A client that keeps reading is never closed, however much goes through it.
    let c = Client::new(2);
    for _ in 0..3 * CLIENT_QUEUE_BYTES / (1024 * 1024) {
        assert!(c.offer(&big));
        assert_eq!(c.take().messages.len(), 1);
    }
}

#[test]
fn filter_by_event_and_printer() {
    let f = Filter {
        events: EventKind::JobUpdated.bit(),
        printer_ids: [p("a")].into_iter().collect(),
    };
    assert!(f.accepts(EventKind::JobUpdated, Some(&p("a"))));
    assert!(!f.accepts(EventKind::JobUpdated, Some(&p("b"))));
    assert!(!f.accepts(EventKind::JobCreated, Some(&p("a"))));
    assert!(Filter::default().accepts(EventKind::SettingsUpdated, None));
}
