//! How the lifecycle reads the values of a status: file and display names as the
//! history stores and compares them, progress within bounds, and which statuses show a
//! print under way.

use crate::domain::{MAX_NAME_LEN, PrinterState, PrinterStatus};
use crate::printers::sanitize;

/// Whether a status shows a print under way (`preparing` counts once a file is known).
pub(super) fn is_active(s: &PrinterStatus) -> bool {
    match s.state {
        PrinterState::Printing | PrinterState::Paused => true,
        PrinterState::Preparing => s.filename.is_some(),
        _ => false,
    }
}

/// The status's progress, except while a print is being prepared: then progress and
/// remaining time are whatever the previous print left (Bambu deltas keep stale fields,
/// protocols.md §2.7); they say nothing of this print, and a stale 100 followed by a
/// real 5 would look like a restart.
pub(super) fn progress_of(s: &PrinterStatus) -> Option<f64> {
    (s.state != PrinterState::Preparing)
        .then_some(s.progress)
        .flatten()
}

pub(super) fn remaining_of(s: &PrinterStatus) -> Option<i64> {
    (s.state != PrinterState::Preparing)
        .then_some(s.remaining_s)
        .flatten()
}

/// Whether the status says what the printer is doing (not `unknown` or `error`).
pub(super) fn knows_state(s: &PrinterStatus) -> bool {
    !matches!(s.state, PrinterState::Unknown | PrinterState::Error)
}

/// Progress as the history stores it: finite, within 0–100 (a NaN is no progress).
pub fn finite_progress(p: Option<f64>) -> Option<f64> {
    p.filter(|p| p.is_finite()).map(|p| p.clamp(0.0, 100.0))
}

/// A name as the history stores it: at most `MAX_NAME_LEN` characters, cut with a
/// marker (the drivers' boundary check already did this; this is defence in depth).
pub(super) fn cap_name(s: String) -> String {
    sanitize::cap_text(&s, MAX_NAME_LEN).unwrap_or(s)
}

/// Whether two file names name the same file: equal after stripping folders
/// (`cache/x.3mf` = `x.3mf`), or equal without their print-file extension
/// (`x.gcode.3mf` = `x.3mf`). Case matters.
pub fn same_file(a: &str, b: &str) -> bool {
    let base = |s: &str| s.rsplit('/').next().unwrap_or(s).to_owned();
    base(a) == base(b) || display_name(a) == display_name(b)
}

/// `bracket_v3.gcode.3mf` → `bracket_v3`.
pub fn display_name(filename: &str) -> String {
    let base = filename.rsplit('/').next().unwrap_or(filename);
    for ext in [".gcode.3mf", ".3mf", ".gcode", ".bgcode"] {
        if let Some(s) = base.strip_suffix(ext) {
            return s.to_owned();
        }
    }
    base.to_owned()
}
