//! The JobCreator's door to the setup owner (`crate::setup`): each handler commits the
//! open group, lends the owner the connection, and publishes what came of it. Only a
//! printer's removal has a job side: its open job is closed (its history stays).

use actix::prelude::*;

use super::creator::{JobCreator, now};
use super::execute::Writer;
use crate::broadcast::{Event, EventKind};
use crate::config::Settings;
use crate::domain::PrinterId;
use crate::setup::{RemovePrinter, ResetPin, SavePrinter, UpdateSettings};
use crate::store::StoreError;

impl JobCreator {
    /// The writer the owner writes through, borrowed from the fields apart from `setup`.
    fn lend(&mut self) -> (&mut crate::setup::Setup, Writer<'_>) {
        let writer = Writer {
            conn: &self.conn,
            health: &self.health,
        };
        (&mut self.setup, writer)
    }

    fn remove_printer(&mut self, id: &PrinterId) -> Result<(), StoreError> {
        let (setup, db) = self.lend();
        setup.remove_printer(&db, id)?;
        // A print still open on it can no longer be followed.
        let plan = self.book.close_for_removal(now(), id);
        if let Err(e) = self.execute(plan, false) {
            tracing::warn!(printer_id = %id, error = %e, "could not close the deleted printer's open job");
        }
        self.book.forget_printer(id);
        self.live.remove(id);
        Ok(())
    }
}

impl Handler<UpdateSettings> for JobCreator {
    type Result = Result<Settings, StoreError>;
    fn handle(&mut self, UpdateSettings(c): UpdateSettings, _: &mut Self::Context) -> Self::Result {
        self.commit();
        let (setup, db) = self.lend();
        let next = setup.update_settings(&db, c)?;
        self.publish(Event::new(EventKind::SettingsUpdated, None, &next));
        Ok(next)
    }
}

impl Handler<SavePrinter> for JobCreator {
    type Result = Result<(), StoreError>;
    fn handle(&mut self, m: SavePrinter, _: &mut Self::Context) -> Self::Result {
        self.commit();
        let (setup, db) = self.lend();
        setup.save_printer(&db, m.config, m.create)
    }
}

impl Handler<RemovePrinter> for JobCreator {
    type Result = Result<(), StoreError>;
    fn handle(&mut self, m: RemovePrinter, _: &mut Self::Context) -> Self::Result {
        self.commit();
        self.remove_printer(&m.0)
    }
}

impl Handler<ResetPin> for JobCreator {
    type Result = Result<(), StoreError>;
    fn handle(&mut self, m: ResetPin, _: &mut Self::Context) -> Self::Result {
        self.commit();
        self.setup.reset_pin(&self.writer(), &m.0)
    }
}
