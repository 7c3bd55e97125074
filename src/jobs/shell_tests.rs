//! The JobCreator shell over a real database (outside an actor: the tests commit by
//! hand) with a running Broadcaster: statuses share one group commit and their events
//! wait for it; a lost group is undone in the book; nothing is committed into a database
//! replaced under the daemon.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use super::creator::JobCreator;
use crate::broadcast::view::LiveStates;
use crate::broadcast::{Broadcaster, Client, Connect};
use crate::config::{PrinterConfig, Settings};
use crate::domain::PrinterId;
use crate::domain::PrinterType;
use crate::domain::{ConnectionState, PrinterState, PrinterStatus};
use crate::health::Health;
use crate::printers::PrinterEvent;
use crate::registry::{Entry, ManagedBy, PrinterRegistry};
use crate::store;
use crate::time;

struct Rig {
    creator: JobCreator,
    client: Arc<Client>,
    live: LiveStates,
    db: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

/// A JobCreator over a real database (outside an actor: the test commits by hand),
/// with a running Broadcaster and one WebSocket client's outbox.
async fn rig(printers: &[&str]) -> Rig {
    // Paused time: `events` waits for the Broadcaster without sleeping for real.
    tokio::time::pause();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let conn = store::open_writer(&db).unwrap();
    let broadcaster = Broadcaster::new();
    let listeners = broadcaster.status_listeners();
    let broadcaster = broadcaster.start();
    let client = broadcaster.send(Connect).await.unwrap();
    let registry = PrinterRegistry::default();
    for id in printers {
        registry.insert(Entry {
            config: PrinterConfig {
                id: PrinterId::new(*id).unwrap(),
                kind: PrinterType::Bambu,
                name: None,
                host: "127.0.0.1".into(),
                port: None,
                serial: Some("S".into()),
                access_code: None,
                username: None,
                password: None,
                api_key: None,
            },
            managed_by: ManagedBy::Config,
        });
    }
    let settings = tokio::sync::watch::channel(Settings {
        job_creation_auto_create: true,
        monitoring_interval: 30,
    })
    .0;
    let live = LiveStates::default();
    let creator = JobCreator::new(
        conn,
        broadcaster,
        settings,
        registry,
        live.clone(),
        Arc::new(Health::default()),
    )
    .statuses_for(listeners);
    Rig {
        creator,
        client,
        live,
        db,
        _dir: dir,
    }
}

fn printing(id: &str, file: &str) -> PrinterEvent {
    let mut s =
        PrinterStatus::unknown(PrinterId::new(id).unwrap(), PrinterType::Bambu, time::now());
    s.connection = ConnectionState::Connected;
    s.state = PrinterState::Printing;
    s.filename = Some(file.into());
    s.job_name = Some(file.into());
    s.printer_job_id = Some("77".into());
    s.progress = Some(3.0);
    s.first_after_connect = false;
    PrinterEvent::Status(Box::new(s))
}

fn status(creator: &mut JobCreator, ev: PrinterEvent) {
    let PrinterEvent::Status(s) = ev else {
        unreachable!()
    };
    creator.on_status(*s);
}

/// Jobs another connection (a REST read) sees.
fn jobs_seen(db: &std::path::Path) -> i64 {
    let c = rusqlite::Connection::open(db).unwrap();
    c.query_row("SELECT count(*) FROM jobs", [], |r| r.get(0))
        .unwrap()
}

/// What the client got once the Broadcaster handled its mailbox (the sleep is on paused
/// time: it lets every task that can run, run, and takes no real time).
async fn events(client: &Client) -> Vec<String> {
    tokio::time::sleep(Duration::from_millis(100)).await;
    client
        .take()
        .messages
        .iter()
        .map(|m| serde_json::from_str::<serde_json::Value>(m).unwrap()["type"].to_string())
        .collect()
}

#[actix_rt::test]
async fn statuses_share_one_commit_and_their_events_wait_for_it() {
    let mut r = rig(&["a", "b", "c"]).await;
    status(&mut r.creator, printing("a", "one.3mf"));
    status(&mut r.creator, printing("b", "two.3mf"));
    // Both jobs are written into one open transaction: not durable, not announced.
    assert_eq!(jobs_seen(&r.db), 0);
    assert!(events(&r.client).await.is_empty());
    r.creator.commit();
    assert_eq!(jobs_seen(&r.db), 2);
    // (A client's outbox sends everything in `seq` order: each job, then its status.)
    assert_eq!(
        events(&r.client).await,
        [
            "\"job_auto_created\"",
            "\"printer_status\"",
            "\"job_auto_created\"",
            "\"printer_status\""
        ]
    );
    // A status that writes nothing goes out at once.
    let PrinterEvent::Status(mut idle) = printing("c", "x.3mf") else {
        unreachable!()
    };
    idle.state = PrinterState::Idle;
    status(&mut r.creator, PrinterEvent::Status(idle));
    assert!(!r.creator.group.is_open());
    assert_eq!(events(&r.client).await, ["\"printer_status\""]);
}

/// A filter that takes only the job events.
fn jobs_only() -> crate::broadcast::Filter {
    use crate::broadcast::EventKind;
    crate::broadcast::Filter {
        events: EventKind::JobAutoCreated.bit() | EventKind::JobUpdated.bit(),
        printer_ids: Default::default(),
    }
}

#[actix_rt::test]
async fn with_no_client_taking_statuses_none_is_sent_but_the_live_view_and_jobs_still_follow() {
    let mut r = rig(&["a"]).await;
    r.client.set_filter(jobs_only());
    status(&mut r.creator, printing("a", "one.3mf"));
    r.creator.commit();
    // The job's event still goes out; the status none takes is not built or sent.
    assert_eq!(events(&r.client).await, ["\"job_auto_created\""]);
    let PrinterEvent::Status(mut later) = printing("a", "one.3mf") else {
        unreachable!()
    };
    later.progress = Some(40.0);
    status(&mut r.creator, PrinterEvent::Status(later));
    assert!(events(&r.client).await.is_empty());
    // REST's live view has the newest status all the same.
    let id = PrinterId::new("a").unwrap();
    assert_eq!(r.live.get(&id).unwrap().status.progress, Some(40.0));
    // A client that takes statuses again gets the next one.
    r.client.set_filter(crate::broadcast::Filter::default());
    tokio::time::advance(Duration::from_secs(2)).await;
    status(&mut r.creator, printing("a", "one.3mf"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let got: Vec<serde_json::Value> = r
        .client
        .take()
        .messages
        .iter()
        .map(|m| serde_json::from_str(m).unwrap())
        .collect();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["type"], "printer_status");
    // The Broadcaster never saw the two statuses nobody took: the job's event was
    // `seq` 1, and this is 2.
    assert_eq!(got[0]["seq"], 2);
}

#[actix_rt::test]
async fn a_lost_group_is_undone_and_the_next_status_writes_it_again() {
    let mut r = rig(&["a"]).await;
    status(&mut r.creator, printing("a", "one.3mf"));
    assert!(
        r.creator
            .book
            .open_job_id(&PrinterId::new("a").unwrap())
            .is_some()
    );
    // The transaction is gone (as when SQLite rolls back on a full disk).
    r.creator.conn.execute_batch("ROLLBACK").unwrap();
    r.creator.commit();
    assert_eq!(jobs_seen(&r.db), 0);
    assert!(
        events(&r.client).await.is_empty(),
        "no event for a job that is not there"
    );
    assert_eq!(r.creator.book.open_count(), 0);
    // The printer's next status makes the same decision and writes it.
    status(&mut r.creator, printing("a", "one.3mf"));
    r.creator.commit();
    assert_eq!(jobs_seen(&r.db), 1);
    assert_eq!(
        events(&r.client).await,
        ["\"job_auto_created\"", "\"printer_status\""]
    );
}

#[actix_rt::test]
async fn a_group_is_not_committed_into_a_replaced_database() {
    let mut r = rig(&["a"]).await;
    let files = store::files::FileIdentity::capture(&r.db).unwrap();
    r.creator.health.watch_files(move || files.check());
    status(&mut r.creator, printing("a", "one.3mf"));
    // An operator restores a copy over the live file while the group is open.
    let copy = r.db.with_extension("copy");
    std::fs::copy(&r.db, &copy).unwrap();
    std::fs::rename(&copy, &r.db).unwrap();
    r.creator.commit();
    assert!(
        events(&r.client).await.is_empty(),
        "no event for a job a restart would lose"
    );
    assert_eq!(r.creator.book.open_count(), 0);
    let fault = r.creator.health.database_fault_reason().unwrap();
    assert!(fault.message.contains("replaced"), "{}", fault.message);
    // Later statuses open no group: the writes are refused until a restart.
    status(&mut r.creator, printing("a", "one.3mf"));
    assert!(!r.creator.group.is_open());
    assert_eq!(jobs_seen(&r.db), 0);
}

/// Whether the progress flush timer is set (the shell sets none while nothing moved).
#[derive(Message)]
#[rtype(result = "bool")]
struct FlushTimerSet;

impl Handler<FlushTimerSet> for JobCreator {
    type Result = bool;
    fn handle(&mut self, _: FlushTimerSet, _: &mut Self::Context) -> bool {
        self.flush_timer.is_some()
    }
}

fn progress_in_db(db: &std::path::Path) -> f64 {
    let c = rusqlite::Connection::open(db).unwrap();
    c.query_row("SELECT progress FROM jobs", [], |r| r.get(0))
        .unwrap()
}

/// The JobCreator as an actor on this test's runtime, whose time is paused: the shell
/// reads tokio's clock, so its progress timer and the book's deadlines move together
/// and the second passes at once.
#[actix_rt::test]
async fn progress_is_written_when_its_second_comes_and_no_timer_runs_while_nothing_moved() {
    let Rig {
        creator,
        client,
        db,
        _dir,
        ..
    } = rig(&["a"]).await;
    let addr = creator.start();
    addr.send(printing("a", "one.3mf")).await.unwrap();
    tokio::time::sleep(2 * crate::jobs::book::progress::PROGRESS_FLUSH_INTERVAL).await;
    assert_eq!(progress_in_db(&db), 3.0);
    assert!(!addr.send(FlushTimerSet).await.unwrap());
    let _ = events(&client).await;

    let PrinterEvent::Status(mut s) = printing("a", "one.3mf") else {
        unreachable!()
    };
    s.progress = Some(40.0);
    let moved = tokio::time::Instant::now();
    addr.send(PrinterEvent::Status(s)).await.unwrap();
    // Kept in memory until its slot (within the second): not written, one timer set.
    assert_eq!(progress_in_db(&db), 3.0);
    assert!(addr.send(FlushTimerSet).await.unwrap());
    let second = crate::jobs::book::progress::PROGRESS_FLUSH_INTERVAL;
    tokio::time::sleep_until(moved + second + Duration::from_millis(1)).await;
    assert_eq!(progress_in_db(&db), 40.0);
    let got = events(&client).await;
    assert_eq!(
        got.iter().filter(|t| *t == "\"job_updated\"").count(),
        1,
        "{got:?}"
    );
    assert!(
        !addr.send(FlushTimerSet).await.unwrap(),
        "a timer with nothing to write"
    );
}
