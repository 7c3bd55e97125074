//! Black-box tests of the daemon: the real binary, a real SQLite file, real HTTP and
//! WebSocket clients. One test binary (modules below) to keep link time down.

mod harness;

mod access;
mod config;
mod db_faults;
mod duplicates;
mod errors;
mod faults;
mod idle;
mod jobs;
mod keys;
mod neighbours;
mod openapi;
mod ops;
mod origins;
mod seq;
mod settings;
mod ws;
