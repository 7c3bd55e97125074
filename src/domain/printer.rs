//! The normalised status every driver produces (design.md §1). Drivers fill it from
//! their protocol; the job lifecycle reads it as it is, and the Broadcaster shows it as
//! `printer_status`.

use serde::Serialize;
use utoipa::ToSchema;

use super::{PrinterId, PrinterType};
use crate::time::Timestamp;

/// How the daemon's connection to a printer stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionState {
    Connecting,
    Connected,
    Disconnected,
    /// The printer refused the access code, password or API key.
    AuthFailed,
    /// Anything else that keeps us from talking to it (certificate mismatch, bad answers).
    Error,
}

/// What the printer says it is doing, across protocols.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PrinterState {
    Idle,
    Preparing,
    Printing,
    Paused,
    Finished,
    Failed,
    Cancelled,
    Error,
    Unknown,
}

/// Degrees Celsius; `null` when the printer does not report it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, ToSchema)]
pub struct Temperatures {
    pub nozzle: Option<f64>,
    pub nozzle_target: Option<f64>,
    pub bed: Option<f64>,
    pub bed_target: Option<f64>,
    pub chamber: Option<f64>,
}

/// What the daemon refused from one printer since its driver started (issue 14): shown
/// on `GET /api/v1/printers` and summed on `/api/v1/health`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct BadData {
    /// Answers or reports that could not be used at all (not JSON, wrong types, too
    /// large): skipped whole.
    pub skipped_payloads: u64,
    /// Single values out of their sane range (dropped) or names too long (cut).
    pub bad_values: u64,
}

/// One printer's full state as its driver last understood it.
#[derive(Clone, Debug, PartialEq)]
pub struct PrinterStatus {
    pub printer_id: PrinterId,
    pub printer_type: PrinterType,
    pub connection: ConnectionState,
    pub state: PrinterState,
    /// File name with folders stripped (`cache/`, `/usb/`); for Bambu X1 `plate_N.gcode`
    /// falls back to the task's name, as protocols.md §7 says.
    pub filename: Option<String>,
    /// A display name when the printer gives one (Bambu `subtask_name`, PrusaLink
    /// `display_name`).
    pub job_name: Option<String>,
    /// The printer's own job id: Bambu task id when not "0", PrusaLink `job.id`.
    pub printer_job_id: Option<String>,
    /// When the printer says the print started (Bambu `gcode_start_time`).
    pub printer_start_time: Option<Timestamp>,
    /// On a status that shows a print's end: when the printer's own data says it ended,
    /// if it says so (PrusaLink: the last time it was seen printing plus the
    /// `time_remaining` it then reported, issue 21). `None`: the status's own time.
    pub printer_end_time: Option<Timestamp>,
    pub elapsed_s: Option<i64>,
    /// 0–100.
    pub progress: Option<f64>,
    pub remaining_s: Option<i64>,
    pub layer: Option<u32>,
    pub total_layers: Option<u32>,
    pub temperatures: Temperatures,
    /// An error the printer reports (Bambu `print_error`, PrusaLink ERROR state).
    pub error: Option<String>,
    /// Why the daemon cannot talk to the printer, in words a person can act on. Never
    /// holds a secret.
    pub last_error: Option<String>,
    /// When data last arrived from the printer.
    pub last_seen: Option<Timestamp>,
    /// The first full status after a (re)connect: a snapshot, not a transition.
    pub first_after_connect: bool,
    /// When the driver produced this status.
    pub observed_at: Timestamp,
    /// What was refused from this printer so far (filled in by the `Reporter`).
    pub bad_data: BadData,
}

impl PrinterStatus {
    /// A status with nothing known yet, for a printer that is being connected to.
    pub fn unknown(printer_id: PrinterId, printer_type: PrinterType, at: Timestamp) -> Self {
        PrinterStatus {
            printer_id,
            printer_type,
            connection: ConnectionState::Connecting,
            state: PrinterState::Unknown,
            filename: None,
            job_name: None,
            printer_job_id: None,
            printer_start_time: None,
            printer_end_time: None,
            elapsed_s: None,
            progress: None,
            remaining_s: None,
            layer: None,
            total_layers: None,
            temperatures: Temperatures::default(),
            error: None,
            last_error: None,
            last_seen: None,
            first_after_connect: false,
            observed_at: at,
            bad_data: BadData::default(),
        }
    }
}
