//! How a REST handler hands a write to the JobCreator so that an answer of 503 means
//! "nothing was written": a client that retries after a 503 must not create a second
//! job.
//!
//! `Addr::send(..).timeout(..)` alone does not promise that: when the timeout fires
//! while the writer is in the middle of the request, the client hears 503 and the write
//! is committed a moment later. So each write carries a `Ticket` that the writer claims
//! as it starts and the handler abandons when it stops waiting; exactly one of them wins:
//!
//! - the handler's wait (`ACTOR_TIMEOUT`) ends before the writer started it: the ticket
//!   is abandoned, the writer skips the request when it reaches it, and the answer is
//!   503 (safe to retry);
//! - the writer already started it: the handler waits for the outcome, up to
//!   `WRITE_FINISH_TIMEOUT` more. A write that has started does not take that long
//!   unless the disk has stalled or the writer died mid-write; then the answer is 504
//!   `write_outcome_unknown`, saying to look before retrying (README, "Durability").
//!
//! Writes whose outcome is known are answered with it: success once durable, an error
//! when nothing was committed.

use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use actix::prelude::*;
use warp::http::StatusCode;

use super::{ACTOR_TIMEOUT, ApiError};
use crate::jobs::JobCreator;
use crate::jobs::creator::{CreateJob, DeleteJob, UpdateJob, UpdateSettings};
use crate::jobs::printers::{RemovePrinter, ResetPin, SavePrinter};

/// How much longer a handler waits for a write the writer has already started. Writes
/// take milliseconds; SQLite waits at most 5 s for another program's lock. Beyond this
/// the disk has stalled, and the client is told the outcome is unknown.
pub const WRITE_FINISH_TIMEOUT: Duration = Duration::from_secs(30);

const PENDING: u8 = 0;
const CLAIMED: u8 = 1;
const ABANDONED: u8 = 2;

/// Who owns a write's fate: the writer (claimed) or the handler (abandoned).
#[derive(Clone, Default)]
pub struct Ticket(Arc<AtomicU8>);

impl Ticket {
    fn take(&self, to: u8) -> bool {
        self.0
            .compare_exchange(PENDING, to, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// The writer starts the write; false if the handler gave up first.
    pub fn claim(&self) -> bool {
        self.take(CLAIMED)
    }

    /// The handler gives up; false if the writer already started.
    pub fn abandon(&self) -> bool {
        self.take(ABANDONED)
    }

    fn claimed(&self) -> bool {
        self.0.load(Ordering::Acquire) == CLAIMED
    }
}

/// A write message `M` with its ticket. Answers `None` when it was skipped.
pub struct Write<M>(M, Ticket);

/// The JobCreator's side: skip a write its handler gave up on, else claim and run it.
fn run<M, R>(
    creator: &mut JobCreator,
    msg: M,
    ticket: Ticket,
    handle: impl FnOnce(&mut JobCreator, M) -> R,
) -> Option<R> {
    // Test-only (debug builds, PFTEST_FAULT=writer-panic): the writer dies as a bug
    // would kill it, for the fail-loudly test (watchdog.rs).
    if crate::watchdog::fault("writer-panic") {
        panic!("injected fault: writer-panic (PFTEST_FAULT, debug builds only)");
    }
    if !ticket.claim() {
        return None;
    }
    // Test-only (PFTEST_FAULT=writer-slow): a write that outlasts the handler's first
    // wait, as on a stalled disk.
    if crate::watchdog::fault("writer-slow") {
        std::thread::sleep(ACTOR_TIMEOUT + Duration::from_secs(2));
    }
    Some(handle(creator, msg))
}

/// `Write<M>` for each of the REST API's write messages.
macro_rules! writes {
    ($($m:ty),*) => {$(
        impl Message for Write<$m> {
            type Result = Option<<$m as Message>::Result>;
        }

        impl Handler<Write<$m>> for JobCreator {
            type Result = Option<<$m as Message>::Result>;
            fn handle(&mut self, Write(msg, ticket): Write<$m>, ctx: &mut Self::Context) -> Self::Result {
                run(self, msg, ticket, |me, msg| <Self as Handler<$m>>::handle(me, msg, ctx))
            }
        }
    )*};
}

writes!(
    CreateJob,
    UpdateJob,
    DeleteJob,
    UpdateSettings,
    SavePrinter,
    RemovePrinter,
    ResetPin
);

/// Sends `msg` to the JobCreator and waits for its answer as described above.
pub async fn call<M, R>(creator: &Addr<JobCreator>, msg: M) -> Result<R, ApiError>
where
    R: Send + 'static,
    Write<M>: Message<Result = Option<R>> + Send + 'static,
    JobCreator: Handler<Write<M>>,
{
    let ticket = Ticket::default();
    let mut reply = pin!(creator.send(Write(msg, ticket.clone())));
    let r = match tokio::time::timeout(ACTOR_TIMEOUT, reply.as_mut()).await {
        Ok(r) => r,
        Err(_) if ticket.abandon() => {
            return Err(ApiError::unavailable(
                "the daemon is too busy to answer in time (database writer backlog); nothing was written; retry shortly",
            ));
        }
        Err(_) => match tokio::time::timeout(WRITE_FINISH_TIMEOUT, reply).await {
            Ok(r) => r,
            Err(_) => {
                return Err(outcome_unknown(
                    "did not finish in time (the disk has stalled)",
                ));
            }
        },
    };
    match r {
        Ok(Some(v)) => Ok(v),
        // Skipped: only after `abandon`, which returned above.
        Ok(None) => Err(ApiError::unavailable("the write was not run; retry")),
        Err(MailboxError::Closed) if ticket.claimed() => {
            Err(outcome_unknown("was interrupted: the job writer stopped"))
        }
        Err(MailboxError::Closed) => Err(ApiError::unavailable(
            "the job writer has stopped (printfarmd is shutting down or restarting); nothing was written; retry in a few seconds",
        )),
        Err(e) => Err(e.into()),
    }
}

fn outcome_unknown(what: &str) -> ApiError {
    ApiError::new(
        StatusCode::GATEWAY_TIMEOUT,
        "write_outcome_unknown",
        format!(
            "the write started but {what}; it may or may not have been saved: look it up (GET /api/v1/jobs) before retrying"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_one_side_wins_a_ticket() {
        let t = Ticket::default();
        assert!(t.claim());
        assert!(!t.abandon());
        assert!(t.claimed());
        let t = Ticket::default();
        assert!(t.abandon());
        assert!(!t.claim());
        assert!(!t.claimed());
    }
}
