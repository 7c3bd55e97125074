//! Printer connections: one supervised actor per printer that owns its connection and
//! turns what the printer says into a [`PrinterStatus`] for the JobCreator. Drivers know
//! their protocol's quirks and nothing of jobs or SQL.

pub mod status;

pub use status::{ConnectionState, PrinterEvent, PrinterState, PrinterStatus, Temperatures};
