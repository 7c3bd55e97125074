//! End to end: simulated printers speaking the real protocols over real sockets → the
//! real `printfarmd` binary with a real SQLite file → REST and WebSocket clients.
//! One test per scenario, named for it.

#[path = "../daemon/harness.rs"]
#[allow(dead_code)]
mod harness;

mod autojobs;
mod control;
mod moonraker;
mod mqtt;
mod octoprint;
mod octoprint_real;
mod ops;
mod printer_values;
mod printers;
mod prusa_probe;
mod receiver;
mod rig;
mod stats;
mod webhooks;
