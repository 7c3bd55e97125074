//! printfarmd: watches every printer on a farm and keeps a trustworthy job history.
//!
//! The parts follow design.md §1: `printers` (one supervised actor per printer),
//! `jobs` (the JobCreator, the one writer), `broadcast` (the Broadcaster, WebSocket
//! fan-out), `api` (warp: REST, `/ws`, dashboard), `store` (SQLite), `config`, and `app`,
//! which wires them together behind `Application::build(..)` / `run(..)`. The printer
//! simulator (`printfarmd-sim`) and the load harness (`printfarmd-loadtest`) are crates of
//! their own in `crates/`; the library knows nothing of them, the binary wires them in.

pub mod api;
pub mod app;
pub mod broadcast;
pub mod config;
pub mod domain;
pub mod fault;
pub mod health;
pub mod jobs;
pub mod metrics;
pub mod notify;
pub mod ops;
pub mod printers;
pub mod registry;
pub mod setup;
pub mod store;
pub mod time;
pub mod watchdog;
