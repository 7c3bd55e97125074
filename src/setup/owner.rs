//! `Setup`: the settings' watch channel and the printer registry, and every write to
//! them and to the certificate pins.

use std::collections::HashMap;

use tokio::sync::watch;

use super::Db;
use crate::config::{Config, Settings, SettingsChange, ValidPrinter};
use crate::domain::PrinterId;
use crate::registry::{Entry, ManagedBy, PrinterRegistry};
use crate::store::{self, StoreError};

pub struct Setup {
    settings: watch::Sender<Settings>,
    printers: PrinterRegistry,
}

/// The pinned certificate of each printer that has one, as read at start.
pub type Pins = HashMap<PrinterId, String>;

impl Setup {
    pub fn new(settings: watch::Sender<Settings>, printers: PrinterRegistry) -> Self {
        Self { settings, printers }
    }

    /// The setup at start: the configuration with the saved settings on top, the config
    /// file's printers and those saved through the API, and the pins.
    pub fn load(conn: &rusqlite::Connection, config: &Config) -> Result<(Self, Pins), StoreError> {
        let saved = store::settings::load(conn)?;
        let settings = saved.apply(&config.settings());
        let printers = PrinterRegistry::from_config(&config.printers);
        // Printers added through the API come back after a restart; an id the config
        // file also uses is the config file's.
        for p in store::printers::list_api_printers(conn)? {
            if printers.get(p.id.as_str()).is_some() {
                tracing::warn!(printer_id = %p.id, "a printer saved through the API has the id of a config-file printer; the config file's entry is used");
                continue;
            }
            // A device the config file added since (same serial or host and port) would
            // have every print recorded twice: the config file's entry is used.
            if let Some((other, why)) = printers.all().iter().find_map(|e| {
                p.same_device_as(&e.config)
                    .map(|w| (e.config.id.clone(), w))
            }) {
                tracing::warn!(printer_id = %p.id, "{}; the printer saved through the API is not started", crate::config::duplicate_message(&other, &p.id, why));
                continue;
            }
            printers.insert(Entry {
                config: p.into_inner(),
                managed_by: ManagedBy::Api,
            });
        }
        let pins = store::printers::all_pins(conn)?;
        Ok((Self::new(watch::channel(settings).0, printers), pins))
    }

    /// The registry, for readers (the API, the integrations, the JobCreator).
    pub fn printers(&self) -> &PrinterRegistry {
        &self.printers
    }

    /// A receiver of every settings change (the printer actors, the API).
    pub fn subscribe(&self) -> watch::Receiver<Settings> {
        self.settings.subscribe()
    }

    pub fn settings(&self) -> Settings {
        self.settings.borrow().clone()
    }

    pub fn auto_create(&self) -> bool {
        self.settings.borrow().job_creation_auto_create
    }

    /// Saves `change`, then makes it live; answers the settings now in force (the
    /// `settings_updated` event's data). Nothing changes when the write failed.
    pub fn update_settings(
        &mut self,
        db: &impl Db,
        change: SettingsChange,
    ) -> Result<Settings, StoreError> {
        db.track(store::settings::save(db.conn(), &change))?;
        let next = change.apply(&self.settings.borrow());
        self.settings.send_replace(next.clone());
        tracing::info!(change = ?change.patch(), "settings updated");
        Ok(next)
    }

    /// Adds (`create`) or changes an API-managed printer. A changed printer's pin is
    /// cleared in the same transaction: a new host or serial may be another device.
    pub fn save_printer(
        &mut self,
        db: &impl Db,
        printer: ValidPrinter,
        create: bool,
    ) -> Result<(), StoreError> {
        let id = printer.id.clone();
        match self.printers.get(id.as_str()) {
            Some(e) if e.managed_by == ManagedBy::Config => {
                return Err(StoreError::Conflict(format!(
                    "printer {id} is managed in the config file; change it there and restart printfarmd"
                )));
            }
            Some(_) if create => {
                return Err(StoreError::Conflict(format!(
                    "printer {id} already exists; PUT /api/v1/printers/{id} changes it"
                )));
            }
            None if !create => return Err(StoreError::PrinterNotFound(id.to_string())),
            _ => {}
        }
        db.track(store::group::unit(db.conn(), |conn| {
            store::printers::save_api_printer(conn, &printer)?;
            if create {
                return Ok(());
            }
            store::printers::set_pin(conn, id.as_str(), None)
        }))?;
        tracing::info!(printer_id = %id, "printer saved through the API");
        self.printers.insert(Entry {
            config: printer.into_inner(),
            managed_by: ManagedBy::Api,
        });
        Ok(())
    }

    /// Deletes an API-managed printer's entry and takes it out of the registry (a status
    /// still in flight from it is then dropped). Its jobs stay; closing its open job is
    /// the caller's (the job book's) part.
    pub fn remove_printer(&mut self, db: &impl Db, id: &PrinterId) -> Result<(), StoreError> {
        match self.printers.get(id.as_str()) {
            None => return Err(StoreError::PrinterNotFound(id.to_string())),
            Some(e) if e.managed_by == ManagedBy::Config => {
                return Err(StoreError::Conflict(format!(
                    "printer {id} is managed in the config file; remove its [[printers]] entry there and restart printfarmd"
                )));
            }
            Some(_) => {}
        }
        db.track(store::printers::delete_api_printer(db.conn(), id.as_str()))?;
        self.printers.remove(id);
        tracing::info!(printer_id = %id, "printer deleted through the API; its jobs are kept");
        Ok(())
    }

    /// Pins the certificate a printer presented first (trust on first use). Not stored,
    /// the printer's actor still holds it for this run.
    pub fn pin(&self, db: &impl Db, printer: &PrinterId, sha256: &str) {
        match db.track(store::printers::set_pin(
            db.conn(),
            printer.as_str(),
            Some(sha256),
        )) {
            Ok(()) => {
                tracing::info!(printer_id = %printer, fingerprint = %sha256, "pinned the printer's TLS certificate")
            }
            Err(e) => {
                tracing::error!(printer_id = %printer, error = %e, "could not store the certificate pin; it will be pinned for this run only")
            }
        }
    }

    /// Forgets a printer's pin: the next certificate it presents is pinned.
    pub fn reset_pin(&self, db: &impl Db, id: &PrinterId) -> Result<(), StoreError> {
        if self.printers.get(id.as_str()).is_none() {
            return Err(StoreError::PrinterNotFound(id.to_string()));
        }
        db.track(store::printers::set_pin(db.conn(), id.as_str(), None))?;
        tracing::info!(printer_id = %id, "certificate pin reset; the next certificate will be pinned");
        Ok(())
    }
}
