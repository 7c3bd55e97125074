//! The PrinterManager: starts one printer actor per registered printer, and starts,
//! restarts and stops them as printers are added, changed or deleted through the API.

use std::collections::HashMap;

use actix::prelude::*;
use tokio::sync::watch;

use super::control::{ControlCommand, ControlError};
use super::driver::Tuning;
use super::{Control, PrinterActor, PrinterEvent, Stop, start_printer_tuned};
use crate::config::{PrinterConfig, Settings};
use crate::domain::PrinterId;

pub struct PrinterManager {
    settings: watch::Receiver<Settings>,
    sink: Recipient<PrinterEvent>,
    running: HashMap<PrinterId, Addr<PrinterActor>>,
    tuning: Tuning,
}

impl PrinterManager {
    pub fn new(settings: watch::Receiver<Settings>, sink: Recipient<PrinterEvent>) -> Self {
        Self {
            settings,
            sink,
            running: HashMap::new(),
            tuning: Tuning::default(),
        }
    }

    /// The drivers' timeouts and probe period (from the config) instead of the defaults.
    pub fn with_tuning(mut self, tuning: Tuning) -> Self {
        self.tuning = tuning;
        self
    }

    fn stop(&mut self, id: &PrinterId) {
        if let Some(actor) = self.running.remove(id) {
            actor.do_send(Stop);
        }
    }
}

impl Actor for PrinterManager {
    type Context = Context<Self>;

    fn stopped(&mut self, _: &mut Self::Context) {
        for (_, actor) in self.running.drain() {
            actor.do_send(Stop);
        }
        crate::watchdog::look_now();
    }
}

/// Start (or restart, if it runs) a printer's actor. `pin` is its stored certificate
/// fingerprint, if any.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StartPrinter {
    pub config: PrinterConfig,
    pub pin: Option<String>,
}

impl Handler<StartPrinter> for PrinterManager {
    type Result = ();
    fn handle(&mut self, m: StartPrinter, _: &mut Self::Context) {
        let id = m.config.id.clone();
        self.stop(&id);
        tracing::info!(printer_id = %id, printer_type = m.config.kind.as_str(), host = %m.config.host, "starting printer connection");
        let actor = start_printer_tuned(
            m.config,
            m.pin,
            self.settings.clone(),
            self.sink.clone(),
            self.tuning.clone(),
        );
        self.running.insert(id, actor);
    }
}

/// Stop a printer's actor (deleted through the API).
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopPrinter(pub PrinterId);

impl Handler<StopPrinter> for PrinterManager {
    type Result = ();
    fn handle(&mut self, m: StopPrinter, _: &mut Self::Context) {
        self.stop(&m.0);
    }
}

/// Hand a control command to a printer's actor (`control.rs`).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SendControl {
    pub printer_id: PrinterId,
    pub command: ControlCommand,
}

impl Handler<SendControl> for PrinterManager {
    type Result = ();
    fn handle(&mut self, m: SendControl, _: &mut Self::Context) {
        match self.running.get(&m.printer_id) {
            Some(actor) => actor.do_send(Control(m.command)),
            None => m.command.answer(Err(ControlError::Unavailable(format!(
                "printer {} has no connection running",
                m.printer_id
            )))),
        }
    }
}

/// Stop every printer actor (shutdown).
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopAll;

impl Handler<StopAll> for PrinterManager {
    type Result = ();
    fn handle(&mut self, _: StopAll, _: &mut Self::Context) {
        for (_, actor) in self.running.drain() {
            actor.do_send(Stop);
        }
    }
}
