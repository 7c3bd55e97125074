//! The JobCreator's printer side: statuses from printer actors (the job book's input,
//! then the live view and the `printer_status` event). Certificates seen go to the setup
//! owner (`setup.rs`).

use actix::prelude::*;

use super::creator::{JobCreator, now};
use crate::broadcast::view::{self, Live};
use crate::broadcast::{Event, EventKind};
use crate::domain::PrinterStatus;
use crate::printers::PrinterEvent;
/// (Re-exported: the API's write path names them here.)
pub use crate::setup::{RemovePrinter, ResetPin, SavePrinter};

impl JobCreator {
    /// What the `PrinterEvent::Status` handler runs: the book's plan for the status
    /// (written into the group commit), then the printer's live view and its event.
    pub fn on_status(&mut self, s: PrinterStatus) {
        // A status still in flight from a printer deleted a moment ago is dropped.
        let Some(entry) = self.setup.printers().get(s.printer_id.as_str()) else {
            return;
        };
        self.health.status_processed(s.printer_type);
        let now = now();
        let lag = (now.wall - s.observed_at).num_milliseconds();
        self.health.status_lag(lag.max(0) as u64);
        let auto_create = self.setup.auto_create();
        let plan = self.book.on_status(now, &s, auto_create);
        // A failed write is logged and on /health; the next status retries.
        let _ = self.execute(plan, true);
        let job_id = self.book.open_job_id(&s.printer_id).cloned();
        let live = Live { status: s, job_id };
        let listened = self.status_listeners.as_ref().is_none_or(|l| l.any());
        let ev = listened.then(|| {
            Event::new(
                EventKind::PrinterStatus,
                Some(live.status.printer_id.clone()),
                view::view(&entry, Some(&live)),
            )
        });
        self.live.set(live);
        if let Some(ev) = ev {
            self.publish(ev);
        }
        if self.group.is_old() {
            self.commit();
        }
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
                self.setup
                    .pin(&self.writer(), &printer_id, &fingerprint_sha256_hex);
            }
        }
    }
}
