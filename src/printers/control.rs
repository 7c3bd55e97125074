//! Printer control from the API (issue 22): pause, resume and cancel, sent through each
//! driver's real command — Bambu's `print` command over MQTT with a `sequence_id` whose
//! acknowledgement is awaited, PrusaLink's `PUT /api/v1/job/{id}/pause|resume` and
//! `DELETE /api/v1/job/{id}` (legacy `POST /api/job` on firmware without v1).
//!
//! The path of a command: the API handler checks the printer's state, sends a
//! [`ControlCommand`] to the PrinterManager, which hands it to the printer's actor, which
//! queues it on the bounded channel its driver task reads ([`COMMAND_QUEUE`]). The driver
//! sends it to the printer and answers on the command's oneshot; the handler waits at
//! most [`ACK_TIMEOUT`]. What the printer then does comes back through the normal status
//! path like any other change.

use std::time::Duration;

use tokio::sync::oneshot;

/// Commands queued for one printer's driver. A person clicks a button now and then; a
/// queue this short is never full unless the driver is stuck, and then refusing at once
/// beats piling up commands that would all run late.
pub const COMMAND_QUEUE: usize = 4;
/// How long the API waits for the printer's answer. A printer on the LAN acknowledges in
/// milliseconds; five seconds covers a busy Wi-Fi printer and is still a short wait for a
/// person at a button.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest refusal reason passed on from a printer (it ends up in an API answer).
pub const MAX_REASON_CHARS: usize = 200;

/// What to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlKind {
    Pause,
    Resume,
    Cancel,
}

impl ControlKind {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pause" => Some(Self::Pause),
            "resume" => Some(Self::Resume),
            "cancel" => Some(Self::Cancel),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pause => "pause",
            Self::Resume => "resume",
            Self::Cancel => "cancel",
        }
    }
}

/// Why a command did not go through, each with words a person can act on (never a
/// secret: the messages are written in the drivers, printer reasons are capped).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    /// The printer is not in a state that allows it (API 409).
    #[error("{0}")]
    NotAllowed(String),
    /// The printer answered and refused (API 502).
    #[error("{0}")]
    Refused(String),
    /// The printer did not answer in time (API 504).
    #[error("{0}")]
    NoAnswer(String),
    /// The daemon cannot reach the printer's driver right now (API 503).
    #[error("{0}")]
    Unavailable(String),
}

/// One command on its way to a driver.
#[derive(Debug)]
pub struct ControlCommand {
    /// The id the API answered with, for the logs.
    pub id: String,
    pub kind: ControlKind,
    pub reply: oneshot::Sender<Result<(), ControlError>>,
}

impl ControlCommand {
    /// The API handler stopped waiting (it answered 504): the command is stale and must
    /// not reach the printer late (a cancel sent minutes after the click).
    pub fn abandoned(&self) -> bool {
        self.reply.is_closed()
    }

    /// Answers the API handler (which may have given up waiting already).
    pub fn answer(self, r: Result<(), ControlError>) {
        match &r {
            Ok(()) => {
                tracing::info!(command_id = %self.id, command = self.kind.as_str(), "printer accepted the command")
            }
            Err(e) => {
                tracing::warn!(command_id = %self.id, command = self.kind.as_str(), error = %e, "printer command failed")
            }
        }
        let _ = self.reply.send(r);
    }
}

/// A printer's reason, cut to [`MAX_REASON_CHARS`] and stripped of control characters.
pub fn cap_reason(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control())
        .take(MAX_REASON_CHARS)
        .collect()
}
