//! The Bambu driver against the simulator's MQTT/TLS broker, over real sockets: a
//! PrinterActor started as the daemon starts it, its events collected by a stand-in for
//! the JobCreator.

mod printers_support;

use std::time::Duration;

use actix::Addr;
use printers_support::*;
use printfarmd::config::Secret;
use printfarmd::domain::PrinterType;
use printfarmd::printers::{
    ConnectionState as C, PrinterActor, PrinterEvent, PrinterState as S, SetPin, Stop,
    start_printer_tuned,
};
use printfarmd_sim::{Action, SimError, SimFarm, SimFarmBuilder, Style};

fn farm() -> SimFarmBuilder {
    SimFarm::builder()
        .control_addr(None)
        .prepare_ms(300)
        .stale_finish_ms(200)
        .reboot_ms(500)
}

fn print(file: &str) -> Action {
    Action::Print {
        file: file.into(),
        duration_s: 3600,
        layers: Some(40),
    }
}

/// Starts a driver for the farm's printer `idx`; returns its id.
fn start(
    farm: &SimFarm,
    idx: usize,
    sink: actix::Recipient<PrinterEvent>,
    interval: u64,
) -> (
    String,
    Addr<PrinterActor>,
    tokio::sync::watch::Sender<printfarmd::config::Settings>,
) {
    let p = &farm.printers()[idx];
    let (tx, rx) = settings(interval);
    let addr = start_printer_tuned(config_of(p), None, rx, sink, fast());
    (p.id.clone(), addr, tx)
}

/// Sends `action` once the simulated printer accepts it (a pause needs the print past
/// its preparation stages, which the driver reports as printing already).
async fn when_ready(farm: &SimFarm, id: &str, action: Action) {
    let deadline = tokio::time::Instant::now() + GUARD;
    loop {
        match farm.control(id, action.clone()).await {
            Ok(()) => return,
            Err(SimError::Conflict(why)) if tokio::time::Instant::now() < deadline => {
                tracing::debug!(%why, "not yet");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("{action:?} refused: {e}"),
        }
    }
}

async fn connected(ev: &mut Events, id: &str) -> printfarmd::printers::PrinterStatus {
    ev.wait_for(id, "the first snapshot after connecting", |s| {
        s.connection == C::Connected && s.first_after_connect
    })
    .await
}

#[actix::test]
async fn x1_whole_lifecycle() {
    let farm = farm().bambu(1, Style::X1).start().await.unwrap();
    let (sink, mut ev) = collector();
    let (id, addr, _settings) = start(&farm, 0, sink, 1);

    // First contact: the certificate is reported for pinning, then the snapshot.
    let first = connected(&mut ev, &id).await;
    assert_eq!(first.state, S::Idle);
    assert_eq!(first.printer_type, PrinterType::Bambu);
    assert_eq!(
        ev.certificates.len(),
        1,
        "one CertificateSeen on first contact"
    );
    assert_eq!(ev.certificates[0].1.len(), 64);
    assert!(
        ev.of(&id).any(|s| s.connection == C::Connecting),
        "the connection state is announced before connecting"
    );

    farm.control(&id, print("bracket_v3.gcode.3mf"))
        .await
        .unwrap();
    let s = ev
        .wait_for(&id, "preparing", |s| s.state == S::Preparing)
        .await;
    assert!(!s.first_after_connect);
    let s = ev
        .wait_for(&id, "printing", |s| s.state == S::Printing)
        .await;
    // X1 reports `/data/Metadata/plate_1.gcode`: the task name stands in.
    assert_eq!(s.filename.as_deref(), Some("bracket_v3"));
    assert_eq!(s.job_name.as_deref(), Some("bracket_v3"));
    let job_id = s.printer_job_id.clone().expect("X1 prints carry a task id");
    assert!(
        s.printer_start_time.is_some(),
        "X1 reports gcode_start_time"
    );
    assert!(s.remaining_s.is_some_and(|r| r > 0));
    assert_eq!(s.total_layers, Some(40));

    when_ready(&farm, &id, Action::Pause).await;
    ev.wait_for(&id, "paused", |s| s.state == S::Paused).await;
    farm.control(&id, Action::Resume).await.unwrap();
    ev.wait_for(&id, "printing again", |s| s.state == S::Printing)
        .await;
    farm.control(&id, Action::Finish).await.unwrap();
    let s = ev
        .wait_for(&id, "finished", |s| s.state == S::Finished)
        .await;
    assert_eq!(s.progress, Some(100.0));
    assert_eq!(s.printer_job_id.as_deref(), Some(job_id.as_str()));

    // Cancel: the printer reports FAILED with the cancel code.
    farm.control(&id, print("lid.3mf")).await.unwrap();
    let s = ev
        .wait_for(&id, "printing the lid", |s| s.state == S::Printing)
        .await;
    assert_ne!(s.printer_job_id.as_deref(), Some(job_id.as_str()));
    farm.control(&id, Action::Cancel).await.unwrap();
    let s = ev
        .wait_for(&id, "cancelled", |s| s.state == S::Cancelled)
        .await;
    assert_eq!(s.error.as_deref(), Some("cancelled by user (0300_400C)"));

    // A failure is FAILED without the cancel code.
    farm.control(&id, print("hinge.3mf")).await.unwrap();
    ev.wait_for(&id, "printing the hinge", |s| s.state == S::Printing)
        .await;
    farm.control(&id, Action::Fail).await.unwrap();
    let s = ev.wait_for(&id, "failed", |s| s.state == S::Failed).await;
    assert!(
        s.error
            .as_deref()
            .is_some_and(|e| e.starts_with("Heatbed temperature malfunction (0300_8009); ")),
        "{:?}",
        s.error
    );

    // No status ever left Connected during all that.
    let after_connect = ev
        .of(&id)
        .skip_while(|s| s.connection != C::Connected)
        .all(|s| s.connection == C::Connected);
    assert!(after_connect, "{}", ev.tail(&id, 40));
    addr.do_send(Stop);
    farm.shutdown().await;
}

#[actix::test]
async fn p1_deltas_merge_into_a_full_status() {
    let farm = farm().bambu(1, Style::P1).start().await.unwrap();
    let (sink, mut ev) = collector();
    let (id, addr, _settings) = start(&farm, 0, sink, 1);
    let first = connected(&mut ev, &id).await;
    assert_eq!(first.state, S::Idle);
    assert!(first.temperatures.nozzle.is_some());

    farm.control(
        &id,
        Action::Print {
            file: "36mm.gcode.3mf".into(),
            duration_s: 20,
            layers: Some(12),
        },
    )
    .await
    .unwrap();
    let s = ev
        .wait_for(&id, "printing with progress", |s| {
            s.state == S::Printing && s.progress.is_some_and(|p| p > 0.0)
        })
        .await;
    // Deltas carried only the changed keys; the rest comes from the merged state.
    assert_eq!(s.filename.as_deref(), Some("36mm.gcode.3mf"));
    assert_eq!(s.job_name.as_deref(), Some("36mm"));
    assert_eq!(s.printer_job_id, None, "P1 LAN prints have task id 0");
    assert_eq!(s.total_layers, Some(12));
    assert!(s.temperatures.bed.is_some());
    let later = ev
        .wait_for(&id, "more progress", |x| {
            x.state == S::Printing && x.progress > s.progress
        })
        .await;
    assert_eq!(later.filename, s.filename);
    assert_eq!(later.total_layers, Some(12));
    // The farm really sent deltas (no gcode_file in most reports).
    let deltas = farm
        .report_log(&id)
        .unwrap()
        .iter()
        .filter_map(|r| r.json())
        .filter(|j| j["print"].get("gcode_file").is_none())
        .count();
    assert!(deltas > 0);
    addr.do_send(Stop);
    farm.shutdown().await;
}

#[actix::test]
async fn reconnects_after_disconnect_and_reboot() {
    let farm = farm().bambu(1, Style::P1).start().await.unwrap();
    let (sink, mut ev) = collector();
    let (id, addr, _settings) = start(&farm, 0, sink, 1);
    connected(&mut ev, &id).await;
    farm.control(&id, print("a.3mf")).await.unwrap();
    ev.wait_for(&id, "printing", |s| s.state == S::Printing)
        .await;

    farm.control(&id, Action::Disconnect).await.unwrap();
    let s = ev
        .wait_for(&id, "disconnected", |s| s.connection == C::Disconnected)
        .await;
    assert!(s.last_error.is_some());
    let s = connected(&mut ev, &id).await;
    assert_eq!(
        s.state,
        S::Printing,
        "the resubscribed session sees the print"
    );
    assert_eq!(s.filename.as_deref(), Some("a.3mf"));

    farm.control(&id, Action::Reboot).await.unwrap();
    ev.wait_for(&id, "disconnected by the reboot", |s| {
        s.connection == C::Disconnected
    })
    .await;
    let s = connected(&mut ev, &id).await;
    assert!(s.last_error.is_none());
    assert_eq!(
        farm.status(&id).unwrap().clients,
        1,
        "one session per printer"
    );
    addr.do_send(Stop);
    farm.shutdown().await;
}

#[actix::test]
async fn watchdog_reconnects_a_silent_printer() {
    let farm = farm().bambu(1, Style::P1).start().await.unwrap();
    let (sink, mut ev) = collector();
    let (id, addr, _settings) = start(&farm, 0, sink, 1);
    connected(&mut ev, &id).await;
    // Silent for twice the watchdog's nudge-and-reconnect time (4 intervals of 1 s).
    farm.control(&id, Action::Silence { seconds: 8 })
        .await
        .unwrap();
    let s = ev
        .wait_for(&id, "the watchdog's reconnect", |s| {
            s.connection == C::Disconnected
        })
        .await;
    let why = s.last_error.unwrap();
    assert!(why.contains("sent nothing"), "{why}");
    let s = connected(&mut ev, &id).await;
    assert_eq!(s.state, S::Idle);
    addr.do_send(Stop);
    farm.shutdown().await;
}

#[actix::test]
async fn garbage_is_skipped_and_the_printer_stays_monitored() {
    let farm = farm().bambu(1, Style::X1).start().await.unwrap();
    let (sink, mut ev) = collector();
    let (id, addr, _settings) = start(&farm, 0, sink, 1);
    connected(&mut ev, &id).await;
    let before = ev.statuses.len();
    farm.control(&id, Action::Garbage).await.unwrap();
    farm.control(&id, Action::Garbage).await.unwrap();
    farm.control(&id, print("after_garbage.3mf")).await.unwrap();
    ev.wait_for(&id, "printing after garbage", |s| s.state == S::Printing)
        .await;
    assert!(
        ev.statuses[before..]
            .iter()
            .all(|s| s.connection == C::Connected),
        "garbage must not drop the session: {}",
        ev.tail(&id, 20)
    );
    addr.do_send(Stop);
    farm.shutdown().await;
}

#[actix::test]
async fn wrong_access_code_is_auth_failed_and_never_shown() {
    let farm = farm().bambu(1, Style::X1).start().await.unwrap();
    let (sink, mut ev) = collector();
    let p = &farm.printers()[0];
    let mut cfg = config_of(p);
    let wrong = "99999999-wrong";
    cfg.access_code = Some(Secret::new(wrong));
    let (_tx, rx) = settings(1);
    let addr = start_printer_tuned(cfg, None, rx, sink, fast());
    let s = ev
        .wait_for(&p.id, "auth failed", |s| s.connection == C::AuthFailed)
        .await;
    let msg = s.last_error.unwrap();
    assert!(msg.contains("access code"), "{msg}");
    assert!(
        ev.certificates.is_empty(),
        "nothing is pinned for a refused login"
    );
    let all = format!("{:?}", ev.statuses);
    assert!(!all.contains(wrong));
    assert!(!all.contains(p.access_code.as_deref().unwrap()));
    addr.do_send(Stop);
    farm.shutdown().await;
}

#[actix::test]
async fn a_changed_certificate_is_refused_with_the_repin_command() {
    let first = farm().bambu(1, Style::X1).seed(7).start().await.unwrap();
    let broker = first.broker_addr();
    let (sink, mut ev) = collector();
    let (id, addr, _settings) = start(&first, 0, sink, 1);
    connected(&mut ev, &id).await;
    assert_eq!(ev.certificates.len(), 1);

    // The "printer" comes back with a new certificate (same serial and code, new keys).
    first.shutdown().await;
    ev.wait_for(&id, "disconnected", |s| s.connection == C::Disconnected)
        .await;
    let second = farm()
        .bambu(1, Style::X1)
        .seed(7)
        .broker_addr(broker)
        .start()
        .await
        .unwrap();
    let s = ev
        .wait_for(&id, "certificate error", |s| s.connection == C::Error)
        .await;
    let msg = s.last_error.unwrap();
    assert!(msg.contains(&format!("printfarmd pin reset {id}")), "{msg}");
    assert!(msg.contains("certificate"), "{msg}");
    assert_eq!(
        ev.certificates.len(),
        1,
        "a changed certificate is not re-pinned"
    );

    // The operator resets the pin: the next certificate is trusted on first contact.
    addr.send(SetPin(None)).await.unwrap();
    connected(&mut ev, &id).await;
    assert_eq!(ev.certificates.len(), 2);
    assert_ne!(ev.certificates[0].1, ev.certificates[1].1);
    addr.do_send(Stop);
    second.shutdown().await;
}

#[actix::test]
async fn stop_ends_the_session_promptly() {
    let farm = farm().bambu(1, Style::X1).start().await.unwrap();
    let (sink, mut ev) = collector();
    let (id, addr, _settings) = start(&farm, 0, sink, 1);
    connected(&mut ev, &id).await;
    assert_eq!(farm.status(&id).unwrap().clients, 1);
    addr.send(Stop).await.unwrap();
    // The session closes: the broker sees the client go (polled, bounded by the guard).
    let deadline = tokio::time::Instant::now() + GUARD;
    while farm.status(&id).unwrap().clients > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "session still open after Stop"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    farm.shutdown().await;
}

#[actix::test]
async fn a_wrong_case_serial_is_reported_not_silently_ignored() {
    let farm = farm().bambu(1, Style::X1).start().await.unwrap();
    let (sink, mut ev) = collector();
    let p = &farm.printers()[0];
    let mut cfg = config_of(p);
    // The broker accepts the subscription and the printer publishes nothing on it.
    cfg.serial = cfg.serial.map(|s| s.to_lowercase());
    let (_tx, rx) = settings(1);
    let addr = start_printer_tuned(cfg, None, rx, sink, fast());
    ev.wait_for(&p.id, "connected", |s| s.connection == C::Connected)
        .await;
    let s = ev
        .wait_for(&p.id, "dropped for want of reports", |s| {
            s.connection == C::Disconnected
        })
        .await;
    let why = s.last_error.unwrap();
    assert!(why.contains("case-sensitive"), "{why}");
    assert!(
        ev.of(&p.id).all(|s| s.state == S::Unknown),
        "no state is invented without a report"
    );
    addr.do_send(Stop);
    farm.shutdown().await;
}

/// A P1P lags when it is asked for full reports more often than every five minutes
/// (protocols.md §2.3): at a 1 s monitoring interval the printer still answers one
/// `pushall` (the connect's) in the first minutes, and the session stays fed by deltas.
#[actix::test]
async fn a_p1_is_asked_for_a_full_report_at_connect_not_every_interval() {
    let farm = farm().bambu(1, Style::P1).start().await.unwrap();
    let (sink, mut ev) = collector();
    let (id, addr, _settings) = start(&farm, 0, sink, 1);
    connected(&mut ev, &id).await;
    // A print that moves a percent a second, so its deltas carry news.
    farm.control(
        &id,
        Action::Print {
            file: "long.3mf".into(),
            duration_s: 100,
            layers: Some(40),
        },
    )
    .await
    .unwrap();
    ev.wait_for(&id, "printing", |s| s.state == S::Printing)
        .await;
    let printing_at = ev.of(&id).count();
    // Six intervals: each would have held a pushall before.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let full = farm
        .report_log(&id)
        .unwrap()
        .iter()
        .filter_map(|r| r.json())
        .filter(|j| j["print"]["msg"] == 0)
        .count();
    assert_eq!(full, 1, "full reports answered: {}", ev.tail(&id, 20));
    // The printer's once-a-second deltas keep coming, and keep the status whole.
    ev.drain_ready();
    let later: Vec<_> = ev.of(&id).skip(printing_at).cloned().collect();
    assert!(later.len() >= 3, "{}", ev.tail(&id, 20));
    assert!(
        later.windows(2).all(|w| w[1].progress >= w[0].progress)
            && later.last().unwrap().progress > later[0].progress,
        "{}",
        ev.tail(&id, 20)
    );
    assert!(
        later.iter().all(|s| s.connection == C::Connected
            && s.state == S::Printing
            && s.filename.as_deref() == Some("long.3mf")
            && s.total_layers == Some(40)),
        "{}",
        ev.tail(&id, 20)
    );
    addr.do_send(Stop);
    farm.shutdown().await;
}
