//! The Reporter sends what is news and keeps `last_seen` moving for what is not: a
//! stand-in sink counts the statuses that reach it, on paused time.

use std::time::Duration;

use actix::prelude::*;
use tokio::sync::mpsc;

use super::PrinterEvent;
use super::driver::{Reporter, UNCHANGED_STATUS_EVERY, resend_next_statuses};
use crate::config::PrinterConfig;
use crate::domain::{ConnectionState, PrinterState, PrinterStatus};

struct Sink(mpsc::UnboundedSender<PrinterStatus>);

impl Actor for Sink {
    type Context = Context<Self>;
}

impl Handler<PrinterEvent> for Sink {
    type Result = ();
    fn handle(&mut self, ev: PrinterEvent, _: &mut Self::Context) {
        if let PrinterEvent::Status(s) = ev {
            let _ = self.0.send(*s);
        }
    }
}

fn reporter() -> (Reporter, mpsc::UnboundedReceiver<PrinterStatus>) {
    let cfg: PrinterConfig =
        toml::from_str("id = \"p1\"\ntype = \"bambu\"\nhost = \"127.0.0.1\"").unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let sink = Sink(tx).start().recipient();
    let mut r = Reporter::new(&cfg, sink);
    let st = r.status_mut();
    st.connection = ConnectionState::Connected;
    st.state = PrinterState::Idle;
    st.temperatures.nozzle = Some(25.0);
    (r, rx)
}

/// Lets the sink handle what was sent, then takes it.
async fn received(rx: &mut mpsc::UnboundedReceiver<PrinterStatus>) -> Vec<PrinterStatus> {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    let mut out = Vec::new();
    while let Ok(s) = rx.try_recv() {
        out.push(s);
    }
    out
}

/// One answer from the printer that changes nothing but the time.
async fn answer(r: &mut Reporter) {
    tokio::time::advance(Duration::from_millis(1000)).await;
    r.heard();
    r.emit().await;
}

#[actix::test]
async fn an_answer_that_changes_nothing_moves_last_seen_and_sends_nothing() {
    tokio::time::pause();
    let (mut r, mut rx) = reporter();
    r.heard();
    r.emit().await;
    let first = received(&mut rx).await;
    assert_eq!(first.len(), 1);
    let sent_seen = first[0].seen().unwrap();
    // The clock is wall time (chrono); paused tokio time does not move it.
    std::thread::sleep(Duration::from_millis(5));
    answer(&mut r).await;
    answer(&mut r).await;
    assert!(
        received(&mut rx).await.is_empty(),
        "nothing new was sent on"
    );
    // The status the writer holds shows the later answer through its clock.
    assert!(first[0].seen().unwrap() > sent_seen);
    assert_eq!(first[0].last_seen.unwrap(), sent_seen);
}

#[actix::test]
async fn news_a_reconnect_a_retry_and_time_each_send_a_status() {
    tokio::time::pause();
    let (mut r, mut rx) = reporter();
    r.emit().await;
    assert_eq!(received(&mut rx).await.len(), 1);

    // A real change.
    r.status_mut().temperatures.nozzle = Some(26.0);
    answer(&mut r).await;
    let got = received(&mut rx).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].temperatures.nozzle, Some(26.0));

    // The first status after a reconnect is a snapshot, always sent; losing the mark
    // afterwards is no news.
    r.status_mut().first_after_connect = true;
    answer(&mut r).await;
    assert_eq!(received(&mut rx).await.len(), 1);
    r.status_mut().first_after_connect = false;
    answer(&mut r).await;
    assert!(received(&mut rx).await.is_empty());

    // The job writer undid a write: the next status goes out though it says nothing new.
    resend_next_statuses();
    answer(&mut r).await;
    assert_eq!(received(&mut rx).await.len(), 1);
    answer(&mut r).await;
    assert!(received(&mut rx).await.is_empty());

    // Unchanged for UNCHANGED_STATUS_EVERY: sent again.
    tokio::time::advance(UNCHANGED_STATUS_EVERY).await;
    r.emit().await;
    assert_eq!(received(&mut rx).await.len(), 1);
}

#[test]
fn only_the_times_and_the_connect_mark_are_not_news() {
    let t0 = crate::time::now();
    let mut a = PrinterStatus::unknown(
        crate::domain::PrinterId::new("p1").unwrap(),
        crate::domain::PrinterType::Bambu,
        t0,
    );
    a.state = PrinterState::Printing;
    a.progress = Some(10.0);
    let mut b = a.clone();
    b.observed_at = t0 + chrono::Duration::seconds(5);
    b.last_seen = Some(b.observed_at);
    b.seen = Default::default();
    assert!(!b.is_news_after(&a));
    let mut c = b.clone();
    c.progress = Some(11.0);
    assert!(c.is_news_after(&b));
    let mut d = b.clone();
    d.bad_data.bad_values = 1;
    assert!(d.is_news_after(&b));
    let mut e = b.clone();
    e.first_after_connect = true;
    assert!(e.is_news_after(&b));
    assert!(!b.is_news_after(&e));
}
