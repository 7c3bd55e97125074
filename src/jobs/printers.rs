//! The JobCreator's printer side: statuses from printer actors (the job book's input,
//! then the live view and the `printer_status` event), certificate pins, and printers
//! managed through the API — all writes, so all here, on the one writer.

use actix::prelude::*;

use super::book::Now;
use super::creator::JobCreator;
use crate::broadcast::view::{self, Live};
use crate::broadcast::{Event, EventKind};
use crate::config::PrinterConfig;
use crate::domain::{PrinterId, PrinterStatus};
use crate::printers::PrinterEvent;
use crate::registry::{Entry, ManagedBy};
use crate::store::{self, StoreError};

impl JobCreator {
    /// What the `PrinterEvent::Status` handler runs: the book's plan for the status
    /// (written into the group commit), then the printer's live view and its event.
    pub fn on_status(&mut self, s: PrinterStatus) {
        // A status still in flight from a printer deleted a moment ago is dropped.
        let Some(entry) = self.printers.get(s.printer_id.as_str()) else {
            return;
        };
        self.health.status_processed(s.printer_type);
        let now = Now::real();
        let lag = (now.wall - s.observed_at).num_milliseconds();
        self.health.status_lag(lag.max(0) as u64);
        let auto_create = self.settings.borrow().job_creation_auto_create;
        let plan = self.book.on_status(now, &s, auto_create);
        // A failed write is logged and on /health; the next status retries.
        let _ = self.execute(plan, true);
        let job_id = self.book.open_job_id(&s.printer_id).cloned();
        let live = Live { status: s, job_id };
        let ev = Event::new(
            EventKind::PrinterStatus,
            Some(live.status.printer_id.clone()),
            view::view(&entry, Some(&live)),
        );
        self.live.set(live);
        self.publish(ev);
        if self.group.is_old() {
            self.commit();
        }
    }

    fn on_certificate(&mut self, printer: &PrinterId, sha256: &str) {
        match self.track(store::printers::set_pin(
            &self.conn,
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

    fn save_printer(&mut self, config: PrinterConfig, create: bool) -> Result<(), StoreError> {
        config.validate().map_err(StoreError::Invalid)?;
        match self.printers.get(config.id.as_str()) {
            Some(e) if e.managed_by == ManagedBy::Config => {
                return Err(StoreError::Conflict(format!(
                    "printer {} is managed in the config file; change it there and restart printfarmd",
                    config.id
                )));
            }
            Some(_) if create => {
                return Err(StoreError::Conflict(format!(
                    "printer {} already exists; PUT /api/v1/printers/{} changes it",
                    config.id, config.id
                )));
            }
            None if !create => {
                return Err(StoreError::PrinterNotFound(config.id.to_string()));
            }
            _ => {}
        }
        self.track(store::printers::save_api_printer(&self.conn, &config))?;
        if !create {
            // A changed host or serial may be another device: its certificate is new.
            self.track(store::printers::set_pin(
                &self.conn,
                config.id.as_str(),
                None,
            ))?;
        }
        tracing::info!(printer_id = %config.id, "printer saved through the API");
        self.printers.insert(Entry {
            config,
            managed_by: ManagedBy::Api,
        });
        Ok(())
    }

    fn remove_printer(&mut self, id: &PrinterId) -> Result<(), StoreError> {
        match self.printers.get(id.as_str()) {
            None => return Err(StoreError::PrinterNotFound(id.to_string())),
            Some(e) if e.managed_by == ManagedBy::Config => {
                return Err(StoreError::Conflict(format!(
                    "printer {id} is managed in the config file; remove its [[printers]] entry there and restart printfarmd"
                )));
            }
            Some(_) => {}
        }
        self.track(store::printers::delete_api_printer(&self.conn, id.as_str()))?;
        // Its history stays; a print still open can no longer be followed.
        let plan = self.book.close_for_removal(Now::real(), id);
        if let Err(e) = self.execute(plan, false) {
            tracing::warn!(printer_id = %id, error = %e, "could not close the deleted printer's open job");
        }
        self.book.forget_printer(id);
        self.printers.remove(id);
        self.live.remove(id);
        tracing::info!(printer_id = %id, "printer deleted through the API; its jobs are kept");
        Ok(())
    }
}

impl Handler<PrinterEvent> for JobCreator {
    type Result = ();
    fn handle(&mut self, ev: PrinterEvent, ctx: &mut Self::Context) {
        match ev {
            PrinterEvent::Status(s) => {
                self.on_status(*s);
                self.schedule_flush(ctx);
            }
            PrinterEvent::CertificateSeen {
                printer_id,
                fingerprint_sha256_hex,
            } => {
                self.commit();
                self.on_certificate(&printer_id, &fingerprint_sha256_hex)
            }
        }
    }
}

/// Add (`create`) or change an API-managed printer.
#[derive(Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct SavePrinter {
    pub config: PrinterConfig,
    pub create: bool,
}

impl Handler<SavePrinter> for JobCreator {
    type Result = Result<(), StoreError>;
    fn handle(&mut self, m: SavePrinter, _: &mut Self::Context) -> Self::Result {
        self.commit();
        self.save_printer(m.config, m.create)
    }
}

/// Delete an API-managed printer; its jobs stay.
#[derive(Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct RemovePrinter(pub PrinterId);

impl Handler<RemovePrinter> for JobCreator {
    type Result = Result<(), StoreError>;
    fn handle(&mut self, m: RemovePrinter, _: &mut Self::Context) -> Self::Result {
        self.commit();
        self.remove_printer(&m.0)
    }
}

/// Forget a printer's pinned certificate: the next one it presents is pinned.
#[derive(Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct ResetPin(pub PrinterId);

impl Handler<ResetPin> for JobCreator {
    type Result = Result<(), StoreError>;
    fn handle(&mut self, m: ResetPin, _: &mut Self::Context) -> Self::Result {
        self.commit();
        if self.printers.get(m.0.as_str()).is_none() {
            return Err(StoreError::PrinterNotFound(m.0.to_string()));
        }
        self.track(store::printers::set_pin(&self.conn, m.0.as_str(), None))?;
        tracing::info!(printer_id = %m.0, "certificate pin reset; the next certificate will be pinned");
        Ok(())
    }
}
