//! What clients see of a printer: its entry (never its secrets) and its live status.
//! The same JSON answers `GET /api/v1/printers/{id}` and is the `data` of a
//! `printer_status` event, so a dashboard can treat both alike.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use serde::Serialize;

use crate::domain::{BadData, ConnectionState, PrinterState, PrinterStatus, Temperatures};
use crate::domain::{JobId, PrinterId, PrinterType};
use crate::registry::{Entry, ManagedBy};
use crate::time;

/// A printer's latest status and the job its current print belongs to.
#[derive(Clone, Debug)]
pub struct Live {
    pub status: PrinterStatus,
    pub job_id: Option<JobId>,
}

/// The latest status of every printer, written by the JobCreator as statuses arrive and
/// read by the REST API without a round trip through an actor.
#[derive(Clone, Default)]
pub struct LiveStates(Arc<RwLock<HashMap<PrinterId, Live>>>);

impl LiveStates {
    pub fn set(&self, live: Live) {
        self.0
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(live.status.printer_id.clone(), live);
    }

    pub fn get(&self, id: &PrinterId) -> Option<Live> {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }

    pub fn remove(&self, id: &PrinterId) {
        self.0.write().unwrap_or_else(|e| e.into_inner()).remove(id);
    }

    /// Calls `f` with every printer's latest status (for /metrics).
    pub fn for_each(&self, mut f: impl FnMut(&Live)) {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .for_each(&mut f);
    }

    /// How many printers are connected right now (for /health).
    pub fn connected(&self) -> usize {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|l| l.status.connection == ConnectionState::Connected)
            .count()
    }

    /// What the farm's drivers refused, summed over every printer (for /health).
    pub fn bad_data_total(&self) -> BadData {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .fold(BadData::default(), |t, l| BadData {
                skipped_payloads: t
                    .skipped_payloads
                    .saturating_add(l.status.bad_data.skipped_payloads),
                bad_values: t.bad_values.saturating_add(l.status.bad_data.bad_values),
            })
    }
}

#[derive(Serialize)]
pub struct PrinterView<'a> {
    pub id: &'a str,
    pub name: &'a str,
    #[serde(rename = "type")]
    pub kind: PrinterType,
    pub host: &'a str,
    pub port: u16,
    pub managed_by: &'static str,
    pub connection: ConnectionState,
    pub state: PrinterState,
    pub last_seen: Option<String>,
    pub last_error: Option<&'a str>,
    pub error: Option<&'a str>,
    pub current_print: Option<CurrentPrint<'a>>,
    pub temperatures: &'a Temperatures,
    pub updated_at: Option<String>,
    /// What was refused from this printer since its driver started (`sanitize.rs`).
    pub bad_data: BadData,
}

#[derive(Serialize)]
pub struct CurrentPrint<'a> {
    pub filename: Option<&'a str>,
    pub job_name: Option<&'a str>,
    pub progress: Option<f64>,
    pub remaining_s: Option<i64>,
    pub elapsed_s: Option<i64>,
    pub layer: Option<u32>,
    pub total_layers: Option<u32>,
    pub job_id: Option<&'a str>,
}

static NO_TEMPERATURES: Temperatures = Temperatures {
    nozzle: None,
    nozzle_target: None,
    bed: None,
    bed_target: None,
    chamber: None,
};

/// The client-facing view of a printer. Without a status yet, it is `connecting`.
pub fn view<'a>(entry: &'a Entry, live: Option<&'a Live>) -> PrinterView<'a> {
    let c = &entry.config;
    let s = live.map(|l| &l.status);
    let state = s.map_or(PrinterState::Unknown, |s| s.state);
    let busy = matches!(
        state,
        PrinterState::Preparing | PrinterState::Printing | PrinterState::Paused
    );
    let current_print = match (s, busy) {
        (Some(s), true) => Some(CurrentPrint {
            filename: s.filename.as_deref(),
            job_name: s.job_name.as_deref(),
            progress: s.progress,
            remaining_s: s.remaining_s,
            elapsed_s: s.elapsed_s,
            layer: s.layer,
            total_layers: s.total_layers,
            job_id: live.and_then(|l| l.job_id.as_ref()).map(|j| j.as_str()),
        }),
        _ => None,
    };
    PrinterView {
        id: c.id.as_str(),
        name: c.display_name(),
        kind: c.kind,
        host: &c.host,
        port: c.port_or_default(),
        managed_by: match entry.managed_by {
            ManagedBy::Config => "config",
            ManagedBy::Api => "api",
        },
        connection: s.map_or(ConnectionState::Connecting, |s| s.connection),
        state,
        last_seen: s.and_then(|s| s.last_seen).map(time::format),
        last_error: s.and_then(|s| s.last_error.as_deref()),
        error: s.and_then(|s| s.error.as_deref()),
        current_print,
        temperatures: s.map_or(&NO_TEMPERATURES, |s| &s.temperatures),
        updated_at: s.map(|s| time::format(s.observed_at)),
        bad_data: s.map(|s| s.bad_data).unwrap_or_default(),
    }
}
