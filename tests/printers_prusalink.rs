//! The PrusaLink driver against the simulator's HTTP printers (Digest without qop,
//! `X-Api-Key`, 204s, end states until dismissed), and against a legacy-only server.

mod printers_support;

use actix::Addr;
use printers_support::*;
use printfarmd::config::{Secret, Settings};
use printfarmd::domain::PrinterType;
use printfarmd::printers::{
    ConnectionState as C, PrinterActor, PrinterEvent, PrinterState as S, PrinterStatus, Stop,
    start_printer_tuned,
};
use printfarmd_sim::{Action, SimFarm, SimFarmBuilder};
use serde_json::json;
use tokio::sync::watch;
use warp::Filter;

fn farm() -> SimFarmBuilder {
    SimFarm::builder()
        .control_addr(None)
        .reboot_ms(500)
        .prusa_first_job_id(41)
}

fn print(file: &str) -> Action {
    Action::Print {
        file: file.into(),
        duration_s: 3600,
        layers: None,
    }
}

fn start(
    farm: &SimFarm,
    sink: actix::Recipient<PrinterEvent>,
    interval: u64,
) -> (String, Addr<PrinterActor>, watch::Sender<Settings>) {
    let p = &farm.printers()[0];
    let (tx, rx) = settings(interval);
    let addr = start_printer_tuned(config_of(p), None, rx, sink, fast());
    (p.id.clone(), addr, tx)
}

async fn connected(ev: &mut Events, id: &str) -> PrinterStatus {
    ev.wait_for(id, "the first status after connecting", |s| {
        s.connection == C::Connected && s.first_after_connect
    })
    .await
}

#[actix::test]
async fn whole_lifecycle_with_digest() {
    let farm = farm().prusalink(1).start().await.unwrap();
    let (sink, mut ev) = collector();
    let (id, addr, _settings) = start(&farm, sink, 1);
    let s = connected(&mut ev, &id).await;
    assert_eq!(s.state, S::Idle);
    assert_eq!(s.printer_type, PrinterType::Prusalink);
    assert!(s.temperatures.nozzle.is_some());

    farm.control(&id, print("/usb/bracket_v3.bgcode"))
        .await
        .unwrap();
    let s = ev
        .wait_for(&id, "printing", |s| s.state == S::Printing)
        .await;
    assert_eq!(s.printer_job_id.as_deref(), Some("41"));
    assert_eq!(s.filename.as_deref(), Some("bracket_v3.bgcode"));
    assert!(s.elapsed_s.is_some());

    farm.control(&id, Action::Pause).await.unwrap();
    ev.wait_for(&id, "paused", |s| s.state == S::Paused).await;
    farm.control(&id, Action::Resume).await.unwrap();
    ev.wait_for(&id, "printing again", |s| s.state == S::Printing)
        .await;
    farm.control(&id, Action::Finish).await.unwrap();
    let s = ev
        .wait_for(&id, "finished", |s| s.state == S::Finished)
        .await;
    // FINISHED comes without a job object: the driver attributes it to print 41.
    assert_eq!(s.printer_job_id.as_deref(), Some("41"));
    assert_eq!(s.filename.as_deref(), Some("bracket_v3.bgcode"));
    assert_eq!(s.progress, Some(100.0));
    farm.control(&id, Action::Dismiss).await.unwrap();
    let s = ev.wait_for(&id, "idle", |s| s.state == S::Idle).await;
    assert_eq!(s.printer_job_id, None);

    farm.control(&id, print("lid.bgcode")).await.unwrap();
    ev.wait_for(&id, "printing the lid", |s| {
        s.state == S::Printing && s.printer_job_id.as_deref() == Some("42")
    })
    .await;
    farm.control(&id, Action::Cancel).await.unwrap();
    let s = ev
        .wait_for(&id, "cancelled", |s| s.state == S::Cancelled)
        .await;
    assert_eq!(s.printer_job_id.as_deref(), Some("42"));
    farm.control(&id, Action::Dismiss).await.unwrap();
    ev.wait_for(&id, "idle", |s| s.state == S::Idle).await;

    farm.control(&id, print("hinge.bgcode")).await.unwrap();
    ev.wait_for(&id, "printing the hinge", |s| s.state == S::Printing)
        .await;
    farm.control(&id, Action::Fail).await.unwrap();
    let s = ev.wait_for(&id, "failed", |s| s.state == S::Failed).await;
    assert_eq!(s.printer_job_id.as_deref(), Some("43"));
    assert!(s.error.is_some());

    assert!(
        ev.of(&id)
            .skip_while(|s| s.connection != C::Connected)
            .all(|s| s.connection == C::Connected),
        "{}",
        ev.tail(&id, 40)
    );
    addr.do_send(Stop);
    farm.shutdown().await;
}

#[actix::test]
async fn api_key_works_and_a_wrong_password_is_auth_failed() {
    let farm = farm().prusalink(2).start().await.unwrap();
    let (sink, mut ev) = collector();
    let ps = farm.printers();

    // The password doubles as X-Api-Key (protocols.md §7.2 quirk 3).
    let mut by_key = config_of(&ps[0]);
    by_key.api_key = by_key.password.take();
    by_key.username = None;
    let (_t1, rx1) = settings(1);
    let a1 = start_printer_tuned(by_key, None, rx1, sink.clone(), fast());

    let mut wrong = config_of(&ps[1]);
    wrong.password = Some(Secret::new("not-the-password"));
    let (_t2, rx2) = settings(1);
    let a2 = start_printer_tuned(wrong, None, rx2, sink, fast());

    let s = connected(&mut ev, &ps[0].id).await;
    assert_eq!(s.state, S::Idle);
    let s = ev
        .wait_for(&ps[1].id, "auth failed", |s| s.connection == C::AuthFailed)
        .await;
    assert!(s.last_error.unwrap().contains("password"));
    let all = format!("{:?}", ev.statuses);
    assert!(!all.contains("not-the-password"));
    for p in &ps {
        assert!(!all.contains(p.password.as_deref().unwrap()));
    }
    a1.do_send(Stop);
    a2.do_send(Stop);
    farm.shutdown().await;
}

#[actix::test]
async fn reconnects_after_reboot_and_silence() {
    // Down for longer than two polls, so that a poll sees it (a shorter reboot between
    // two polls is invisible to a polling client, and harmless).
    let farm = farm().reboot_ms(2500).prusalink(1).start().await.unwrap();
    let (sink, mut ev) = collector();
    let (id, addr, _settings) = start(&farm, sink, 1);
    connected(&mut ev, &id).await;
    farm.control(&id, print("a.bgcode")).await.unwrap();
    ev.wait_for(&id, "printing", |s| s.state == S::Printing)
        .await;

    farm.control(&id, Action::Reboot).await.unwrap();
    ev.wait_for(&id, "disconnected by the reboot", |s| {
        s.connection == C::Disconnected
    })
    .await;
    let s = connected(&mut ev, &id).await;
    assert!(s.last_error.is_none());

    // A silent printer holds requests: the request timeout (2 s here) ends the session.
    // Silent for well over a poll interval plus that timeout, so a held poll cannot be
    // answered just in time.
    farm.control(&id, Action::Silence { seconds: 6 })
        .await
        .unwrap();
    let s = ev
        .wait_for(&id, "disconnected by silence", |s| {
            s.connection == C::Disconnected
        })
        .await;
    assert!(s.last_error.unwrap().contains("no answer"));
    connected(&mut ev, &id).await;
    addr.do_send(Stop);
    farm.shutdown().await;
}

#[actix::test]
async fn garbage_is_skipped_and_the_printer_stays_monitored() {
    let farm = farm().prusalink(1).start().await.unwrap();
    let (sink, mut ev) = collector();
    let (id, addr, _settings) = start(&farm, sink, 1);
    connected(&mut ev, &id).await;
    let before = ev.statuses.len();
    farm.control(&id, Action::Garbage).await.unwrap();
    farm.control(&id, print("after_garbage.bgcode"))
        .await
        .unwrap();
    ev.wait_for(&id, "printing after garbage", |s| s.state == S::Printing)
        .await;
    assert!(
        ev.statuses[before..]
            .iter()
            .all(|s| s.connection == C::Connected && !s.first_after_connect),
        "garbage must not end the session: {}",
        ev.tail(&id, 20)
    );
    addr.do_send(Stop);
    farm.shutdown().await;
}

#[actix::test]
async fn a_new_interval_applies_without_restart() {
    let farm = farm().prusalink(1).start().await.unwrap();
    let (sink, mut ev) = collector();
    // An hour between polls: after the first one, nothing more would come for an hour.
    let (id, addr, settings) = start(&farm, sink, 3600);
    let s = connected(&mut ev, &id).await;
    assert_eq!(s.state, S::Idle);
    farm.control(&id, print("x.bgcode")).await.unwrap();
    settings
        .send(Settings {
            job_creation_auto_create: true,
            monitoring_interval: 1,
        })
        .unwrap();
    // The print can only be seen by a poll made under the new interval.
    ev.wait_for(&id, "printing", |s| s.state == S::Printing)
        .await;
    addr.do_send(Stop);
    farm.shutdown().await;
}

/// A printer with only the legacy OctoPrint-style API (old firmware): `/api/v1/*` is 404.
#[actix::test]
async fn falls_back_to_the_legacy_api() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let version = warp::path!("api" / "version")
        .map(|| warp::reply::json(&json!({"api": "0.9.0-legacy", "text": "PrusaLink"})));
    let job = warp::path!("api" / "job").map(|| {
        warp::reply::json(&json!({
            "state": "Printing",
            "job": {"estimatedPrintTime": 5400,
                    "file": {"name": "bracket.gcode", "path": "/usb/BRACKE~1.GCO", "display": "bracket.gcode"}},
            "progress": {"printTimeLeft": 3120, "completion": 0.42, "printTime": 2280}
        }))
    });
    let printer = warp::path!("api" / "printer").map(|| {
        warp::reply::json(&json!({
            "temperature": {"tool0": {"actual": 215.1, "target": 215.0}, "bed": {"actual": 60.0, "target": 60.0}},
            "state": {"text": "Printing", "flags": {"printing": true}}
        }))
    });
    let server = tokio::spawn(
        warp::serve(warp::get().and(version.or(job).or(printer)))
            .incoming(listener)
            .run(),
    );
    let (sink, mut ev) = collector();
    let mut cfg = config_at("legacy", PrinterType::Prusalink, port);
    cfg.api_key = Some(Secret::new("key"));
    let (_t, rx) = settings(1);
    let addr = start_printer_tuned(cfg, None, rx, sink, fast());
    let s = connected(&mut ev, "legacy").await;
    assert_eq!(s.state, S::Printing);
    assert_eq!(s.filename.as_deref(), Some("bracket.gcode"));
    assert_eq!(s.printer_job_id, None);
    assert!((s.progress.unwrap() - 42.0).abs() < 1e-9);
    assert_eq!(s.remaining_s, Some(3120));
    assert_eq!(s.temperatures.nozzle, Some(215.1));
    addr.do_send(Stop);
    server.abort();
}
