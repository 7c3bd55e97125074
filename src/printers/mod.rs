//! Printer connections: one supervised actor per printer that owns its connection and
//! turns what the printer says into a [`PrinterStatus`] for the JobCreator. Drivers know
//! their protocol's quirks and nothing of jobs or SQL.

pub mod actor;
mod backoff;
mod bad_payloads;
pub mod bambu;
pub mod control;
pub mod driver;
mod event;
#[cfg(test)]
mod fuzz;
pub mod manager;
pub mod moonraker;
pub mod octoprint;
pub mod prusalink;
pub mod sanitize;

pub use crate::domain::{BadData, ConnectionState, PrinterState, PrinterStatus, Temperatures};
pub use actor::{Control, PrinterActor, SetPin, Stop, start_printer, start_printer_tuned};
pub use driver::Tuning;
pub use event::PrinterEvent;
