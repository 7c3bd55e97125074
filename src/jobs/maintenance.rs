//! The JobCreator's housekeeping messages: the watchdog's ping (does the writer still
//! answer?) and the retention sweep (delete old finished jobs in small batches). They
//! live here, not in `creator.rs`, because they are the service's concern (`ops`), not
//! the job lifecycle's.

use actix::prelude::*;

use super::JobCreator;
use crate::store::StoreError;

/// "Are you alive?" from the systemd watchdog; answered with the number of open jobs
/// (for the STATUS= line). Answered only when the writer's thread is free to answer.
pub struct Ping;

impl Message for Ping {
    type Result = usize;
}

impl Handler<Ping> for JobCreator {
    type Result = usize;
    fn handle(&mut self, _: Ping, _: &mut Self::Context) -> usize {
        crate::fault::block_writer_while_flagged();
        self.open_jobs()
    }
}

/// Deletes up to `limit` finished jobs (completed, failed, cancelled, unknown; never
/// pending, running or paused) whose end — or last update if they have no end time —
/// is before `before` (RFC 3339 text). Returns how many it deleted.
pub struct PruneFinished {
    pub before: String,
    pub limit: u32,
}

impl Message for PruneFinished {
    type Result = Result<usize, StoreError>;
}

impl Handler<PruneFinished> for JobCreator {
    type Result = Result<usize, StoreError>;
    fn handle(&mut self, m: PruneFinished, _: &mut Self::Context) -> Self::Result {
        // Commit the open group (if any) first, so this runs as its own small write.
        self.commit();
        let r = crate::store::retention::delete_finished_before(&self.conn, &m.before, m.limit);
        self.track(r)
    }
}
