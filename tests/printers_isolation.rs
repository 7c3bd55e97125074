//! One dead printer never slows another (design.md §1): fifty printers pointed at closed
//! ports and at ports that accept and then say nothing do not hold back the statuses of
//! live printers sharing the same sink. Shown by ordering: every live printer goes
//! through a whole print while the silent ones have not even finished connecting (their
//! connect timeout is far longer than the test), and every closed one has been told
//! "refused" without disturbing anything.

mod printers_support;

use std::time::Duration;

use printers_support::*;
use printfarmd::domain::PrinterType;
use printfarmd::printers::{
    ConnectionState as C, PrinterState as S, Stop, Tuning, start_printer_tuned,
};
use printfarmd_sim::{Action, SimFarm, Style};
use tokio::net::TcpListener;

const CLOSED: usize = 20;
const SILENT_BAMBU: usize = 15;
const SILENT_PRUSA: usize = 15;

/// Dead printers keep the daemon's real backoff, and a connect/request timeout far
/// beyond the test's length, so a silent one stays "connecting" throughout.
fn patient() -> Tuning {
    Tuning {
        connect_timeout: Duration::from_secs(600),
        request_timeout: Duration::from_secs(600),
        ..Tuning::default()
    }
}

/// A port nobody listens on: bound but never listening, so connecting is refused, and
/// held for the whole test so no other test's server can take it meanwhile.
fn closed_port() -> (tokio::net::TcpSocket, u16) {
    let s = tokio::net::TcpSocket::new_v4().unwrap();
    s.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = s.local_addr().unwrap().port();
    (s, port)
}

/// A port that accepts connections and never says a word; returns the port and the
/// task holding the accepted sockets.
async fn silent_port() -> (u16, tokio::task::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = l.accept().await {
            held.push(s);
        }
    });
    (port, task)
}

#[actix::test]
async fn fifty_dead_printers_do_not_delay_live_ones() {
    let farm = SimFarm::builder()
        .control_addr(None)
        .prepare_ms(300)
        .stale_finish_ms(200)
        .bambu(1, Style::P1)
        .prusalink(1)
        .start()
        .await
        .unwrap();
    let (sink, mut ev) = collector();
    let (_settings_tx, settings_rx) = settings(1);

    let start =
        |cfg, tuning| start_printer_tuned(cfg, None, settings_rx.clone(), sink.clone(), tuning);
    let mut actors = Vec::new();
    let mut listeners = Vec::new();
    let mut silent_ids = Vec::new();
    let mut closed_ids = Vec::new();
    let mut held_ports = Vec::new();
    for i in 0..CLOSED {
        let kind = if i % 2 == 0 {
            PrinterType::Bambu
        } else {
            PrinterType::Prusalink
        };
        let id = format!("closed_{i}");
        let (held, port) = closed_port();
        held_ports.push(held);
        actors.push(start(config_at(&id, kind, port), patient()));
        closed_ids.push(id);
    }
    for i in 0..SILENT_BAMBU + SILENT_PRUSA {
        let kind = if i < SILENT_BAMBU {
            PrinterType::Bambu
        } else {
            PrinterType::Prusalink
        };
        let (port, task) = silent_port().await;
        listeners.push(task);
        let id = format!("silent_{i}");
        actors.push(start(config_at(&id, kind, port), patient()));
        silent_ids.push(id);
    }
    // The live printers start last, behind every dead one.
    let live: Vec<_> = farm.printers();
    for p in &live {
        actors.push(start(config_of(p), fast()));
    }

    for p in &live {
        ev.wait_for(&p.id, "connected", |s| s.connection == C::Connected)
            .await;
        farm.control(
            &p.id,
            Action::Print {
                file: "part.3mf".into(),
                duration_s: 3600,
                layers: Some(10),
            },
        )
        .await
        .unwrap();
        ev.wait_for(&p.id, "printing", |s| s.state == S::Printing)
            .await;
        farm.control(&p.id, Action::Finish).await.unwrap();
        ev.wait_for(&p.id, "finished", |s| s.state == S::Finished)
            .await;
    }

    // Meanwhile no silent printer got past "connecting": the live ones did not wait for
    // them. Each announced itself exactly once.
    ev.drain_ready();
    for id in &silent_ids {
        let mine: Vec<_> = ev.of(id).collect();
        assert_eq!(mine.len(), 1, "{id}: {}", ev.tail(id, 5));
        assert_eq!(mine[0].connection, C::Connecting);
    }
    // Every closed one was refused, and says so in words a person can act on.
    for id in &closed_ids {
        let s = ev
            .seen_or_wait(id, "refused", |s| s.connection == C::Disconnected)
            .await;
        let why = s.last_error.unwrap();
        assert!(
            why.contains("refused") || why.contains("cannot connect"),
            "{why}"
        );
    }

    for a in &actors {
        a.do_send(Stop);
    }
    for l in listeners {
        l.abort();
    }
    farm.shutdown().await;
}
