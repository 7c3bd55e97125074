//! The names of the events clients receive over `/ws` (design.md §4). They are part of
//! the contract, shared by the Broadcaster (which sends them), the job book (which
//! decides them) and the webhook and MQTT configuration (which filters on them).

use serde::Serialize;
use utoipa::ToSchema;

/// The `type` of a WebSocket message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A print started and a job was created for it.
    JobAutoCreated,
    /// A job was created by hand.
    JobCreated,
    /// A job changed (status at once; progress at most once a second per job).
    JobUpdated,
    /// A job was deleted; data is `{"id": ..}`.
    JobDeleted,
    /// A printer's live status, coalesced to at most one a second per printer.
    PrinterStatus,
    /// The live settings changed; data is the whole settings object.
    SettingsUpdated,
}

impl EventKind {
    pub const ALL: [EventKind; 6] = [
        EventKind::JobAutoCreated,
        EventKind::JobCreated,
        EventKind::JobUpdated,
        EventKind::JobDeleted,
        EventKind::PrinterStatus,
        EventKind::SettingsUpdated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::JobAutoCreated => "job_auto_created",
            EventKind::JobCreated => "job_created",
            EventKind::JobUpdated => "job_updated",
            EventKind::JobDeleted => "job_deleted",
            EventKind::PrinterStatus => "printer_status",
            EventKind::SettingsUpdated => "settings_updated",
        }
    }

    pub fn parse(s: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Bit for subscription masks.
    pub fn bit(self) -> u8 {
        1 << (self as u8)
    }
}
