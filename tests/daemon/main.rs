//! Black-box tests of the daemon: the real binary, a real SQLite file, real HTTP and
//! WebSocket clients. One test binary (modules below) to keep link time down.

mod harness;

mod config;
mod errors;
mod jobs;
mod ops;
mod settings;
mod ws;
