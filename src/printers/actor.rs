//! `PrinterActor`: one per printer, started under `actix::Supervisor`. It owns the
//! printer's driver task and nothing else: the driver (a plain tokio task on the worker
//! threads, design.md §1) connects, reads, normalises and sends statuses straight to the
//! sink; the actor starts it, stops it, and restarts it when it panics.
//!
//! Why the driver is not the actor's own future: a driver blocks on sockets and timers
//! for long stretches, and the actor System thread must never wait on a printer. Why an
//! actor at all: it gives the lead one `Addr` per printer to stop or re-pin, and the
//! Supervisor's restart on failure.
//!
//! A panic in the driver task ends the task; the actor sees it, stops its context, and
//! the Supervisor restarts it (`restarting`), which starts a fresh driver after a delay
//! that doubles with each panic in a row (so a printer whose reports crash the driver
//! cannot spin a core). The actor value survives the restart, and with it the learned
//! certificate pin.

use std::time::Duration;

use actix::prelude::*;
use tokio::sync::{mpsc, watch};
use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::config::{PrinterConfig, Settings};
use crate::domain::PrinterType;
use crate::printers::PrinterEvent;
use crate::printers::backoff::Backoff;
use crate::printers::bambu::{self, tls};
use crate::printers::control::{COMMAND_QUEUE, ControlCommand, ControlError};
use crate::printers::driver::{DriverCtx, Reporter, Tuning};
use crate::printers::{moonraker, octoprint, prusalink};

/// Ends the actor and its connection tasks now. The actor stays an empty shell (the
/// Supervisor revives it while an `Addr` exists, but it starts nothing again) until the
/// last `Addr` is dropped.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Stop;

/// A control command from the API, for the driver (`control.rs`). Answered on the
/// command's own channel: at once with `Unavailable` when the driver's queue is full or
/// no driver runs.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Control(pub ControlCommand);

/// Replaces the certificate pin of a Bambu printer (`None`: trust the next certificate
/// on first contact) and reconnects now, e.g. after `printfarmd pin reset`. Ignored by
/// other printer types.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct SetPin(pub Option<String>);

pub struct PrinterActor {
    cfg: PrinterConfig,
    pins: tls::SharedPin,
    settings: watch::Receiver<Settings>,
    sink: Recipient<PrinterEvent>,
    tuning: Tuning,
    task: Option<AbortHandle>,
    /// The running driver's command queue.
    commands: Option<mpsc::Sender<ControlCommand>>,
    /// Pacing of restarts after panics.
    restarts: Backoff,
    started_at: Option<Instant>,
    panicked: bool,
    stopped: bool,
}

/// Starts a printer's actor under a Supervisor. Must be called from within the actix
/// System (the actor lives on the calling arbiter; its driver on the tokio workers).
pub fn start_printer(
    cfg: PrinterConfig,
    pin: Option<String>,
    settings: watch::Receiver<Settings>,
    sink: Recipient<PrinterEvent>,
) -> Addr<PrinterActor> {
    start_printer_tuned(cfg, pin, settings, sink, Tuning::default())
}

/// [`start_printer`] with other timeouts and backoff (tests shorten them).
pub fn start_printer_tuned(
    cfg: PrinterConfig,
    pin: Option<String>,
    settings: watch::Receiver<Settings>,
    sink: Recipient<PrinterEvent>,
    tuning: Tuning,
) -> Addr<PrinterActor> {
    let restarts = Backoff::new(tuning.backoff_min, tuning.backoff_max, tuning.stable_after);
    let actor = PrinterActor {
        cfg,
        pins: tls::shared(pin),
        settings,
        sink,
        tuning,
        task: None,
        commands: None,
        restarts,
        started_at: None,
        panicked: false,
        stopped: false,
    };
    Supervisor::start(move |_| actor)
}

impl PrinterActor {
    fn spawn_driver(&mut self, ctx: &mut Context<Self>, delay: Duration) {
        self.abort_driver();
        let (commands, commands_rx) = mpsc::channel(COMMAND_QUEUE);
        self.commands = Some(commands);
        let dctx = DriverCtx {
            cfg: self.cfg.clone(),
            settings: self.settings.clone(),
            tuning: self.tuning.clone(),
            reporter: Reporter::new(&self.cfg, self.sink.clone()),
            commands: commands_rx,
        };
        let pins = self.pins.clone();
        let span = tracing::info_span!("printer", printer_id = %self.cfg.id, kind = %self.cfg.kind);
        let driver = driver_future(dctx, pins);
        let fut = async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            driver.await
        };
        let handle = tokio::spawn(tracing::Instrument::instrument(fut, span));
        self.task = Some(handle.abort_handle());
        self.started_at = Some(Instant::now());
        let id = self.cfg.id.clone();
        ctx.spawn(handle.into_actor(self).map(move |res, act, ctx| match res {
            Err(e) if e.is_panic() => {
                tracing::error!(printer_id = %id, "printer driver panicked; restarting it");
                act.panicked = true;
                ctx.stop();
            }
            // Aborted on purpose (Stop, SetPin, restart), or returned: nothing to do.
            _ => {}
        }));
    }

    fn abort_driver(&mut self) {
        self.commands = None;
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// A printer's driver, boxed at its own kind's size. Awaited inside one async block, the
/// four drivers' state machines share one layout, and every printer's task was as large
/// as the largest of them (heaptrack: 8 KB a printer, the largest allocation of our own
/// per printer; BENCHMARKS.md, issue 21).
fn driver_future(dctx: DriverCtx, pins: tls::SharedPin) -> DriverFuture {
    match dctx.cfg.kind {
        PrinterType::Bambu => Box::pin(bambu::run(dctx, pins)),
        PrinterType::Prusalink => Box::pin(prusalink::run(dctx)),
        PrinterType::Octoprint => Box::pin(octoprint::run(dctx)),
        PrinterType::Moonraker => Box::pin(moonraker::run(dctx)),
    }
}

type DriverFuture = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

impl Actor for PrinterActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if self.stopped {
            return;
        }
        let delay = if std::mem::take(&mut self.panicked) {
            let now = Instant::now();
            self.restarts.connected(self.started_at.unwrap_or(now));
            self.restarts.failed(now, rand::random(), Duration::ZERO)
        } else {
            Duration::ZERO
        };
        self.spawn_driver(ctx, delay);
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        self.abort_driver();
    }
}

impl Supervised for PrinterActor {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        self.abort_driver();
    }
}

impl Handler<Stop> for PrinterActor {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        tracing::info!(printer_id = %self.cfg.id, "stopping printer");
        self.stopped = true;
        self.abort_driver();
        ctx.stop();
    }
}

impl Handler<Control> for PrinterActor {
    type Result = ();

    fn handle(&mut self, Control(cmd): Control, _: &mut Context<Self>) {
        let Some(tx) = self.commands.as_ref() else {
            return cmd.answer(Err(ControlError::Unavailable(
                "the printer's connection is not running (stopped or restarting); retry shortly"
                    .into(),
            )));
        };
        match tx.try_send(cmd) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(cmd)) => cmd
                .answer(Err(ControlError::Unavailable(
                "earlier commands to this printer are still waiting for it; retry in a few seconds"
                    .into(),
            ))),
            Err(mpsc::error::TrySendError::Closed(cmd)) => {
                cmd.answer(Err(ControlError::Unavailable(
                    "the printer's connection is restarting; retry shortly".into(),
                )))
            }
        }
    }
}

impl Handler<SetPin> for PrinterActor {
    type Result = ();

    fn handle(&mut self, msg: SetPin, ctx: &mut Context<Self>) {
        if self.cfg.kind != PrinterType::Bambu || self.stopped {
            return;
        }
        tls::with(&self.pins, |p| {
            *p = tls::PinState {
                pin: msg.0.map(|s| tls::normalise_pin(&s)),
                ..Default::default()
            }
        });
        tracing::info!(printer_id = %self.cfg.id, "certificate pin replaced; reconnecting");
        self.spawn_driver(ctx, Duration::ZERO);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::PrinterId;

    struct Sink;

    impl Actor for Sink {
        type Context = Context<Self>;
    }

    impl Handler<PrinterEvent> for Sink {
        type Result = ();
        fn handle(&mut self, _: PrinterEvent, _: &mut Context<Self>) {}
    }

    /// What one printer's driver task holds, by kind (printed: `--nocapture`). The
    /// bound is a guard against a driver's state machine growing unnoticed: it is heap
    /// memory per printer, paid by every printer of that kind.
    #[test]
    fn each_driver_future_is_sized_for_its_own_kind() {
        actix::System::new().block_on(async {
            let sink = Sink.start().recipient();
            let (_tx, settings) = watch::channel(Settings {
                job_creation_auto_create: true,
                monitoring_interval: 30,
            });
            for kind in [
                PrinterType::Bambu,
                PrinterType::Prusalink,
                PrinterType::Octoprint,
                PrinterType::Moonraker,
            ] {
                let cfg = PrinterConfig {
                    id: PrinterId::new("p").unwrap(),
                    kind,
                    name: None,
                    host: "127.0.0.1".into(),
                    port: None,
                    serial: Some("S".into()),
                    access_code: None,
                    username: None,
                    password: None,
                    api_key: None,
                };
                let (_commands, commands_rx) = mpsc::channel(COMMAND_QUEUE);
                let dctx = DriverCtx {
                    reporter: Reporter::new(&cfg, sink.clone()),
                    cfg,
                    settings: settings.clone(),
                    tuning: Tuning::default(),
                    commands: commands_rx,
                };
                let bytes = size_of_val(&*driver_future(dctx, tls::shared(None)));
                println!("{kind} driver future: {bytes} bytes");
                assert!(bytes <= 16 * 1024, "{kind}: {bytes} bytes");
            }
        });
    }
}
