//! The farm's setup — the live settings, the printer registry and the certificate
//! pins — and its one owner, `Setup`.
//!
//! Every value comes in parsed (`config::SettingsChange`, `config::ValidPrinter`: the
//! API, the config loader and the store's read-back parse with the same function), so
//! the owner checks only what depends on the registry: a printer managed in the config
//! file is not changed through the API, an id is not added twice, a printer that is not
//! there is not changed, removed or re-pinned.
//!
//! Where it runs (docs/architecture.md, "The setup owner"): on the JobCreator's thread,
//! through the JobCreator's connection — design.md §1 keeps one writable connection,
//! and a printer's removal must close its open job in the same turn — but as a value of
//! its own, with its own state and tests. The JobCreator's handlers for the messages
//! below only commit the open group, call the owner, and publish what it returns.

mod owner;
#[cfg(test)]
mod tests;

use actix::prelude::*;
use rusqlite::Connection;

pub use owner::Setup;

use crate::config::{Settings, SettingsChange, ValidPrinter};
use crate::domain::PrinterId;
use crate::store::StoreError;

/// The writable connection the owner writes through, and the writer's verdict on each
/// write: the JobCreator records it for /health and refuses a write into database files
/// replaced under the daemon. A bare `Connection` takes every write as done (tests).
pub trait Db {
    fn conn(&self) -> &Connection;
    fn track<T>(&self, r: Result<T, StoreError>) -> Result<T, StoreError>;
}

impl Db for Connection {
    fn conn(&self) -> &Connection {
        self
    }
    fn track<T>(&self, r: Result<T, StoreError>) -> Result<T, StoreError> {
        r
    }
}

/// Change the live settings (`PUT /api/v1/settings`): saved, published on the watch
/// channel, announced as `settings_updated`.
#[derive(Message)]
#[rtype(result = "Result<Settings, StoreError>")]
pub struct UpdateSettings(pub SettingsChange);

/// Add (`create`) or change an API-managed printer.
#[derive(Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct SavePrinter {
    pub config: ValidPrinter,
    pub create: bool,
}

/// Delete an API-managed printer; its jobs stay.
#[derive(Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct RemovePrinter(pub PrinterId);

/// Forget a printer's pinned certificate: the next one it presents is pinned.
#[derive(Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct ResetPin(pub PrinterId);
