//! What identifies a Bambu print in its report: the printer's job id, its start time and
//! the file's name (protocols.md §2.8, §7.1).

use chrono::DateTime;

use super::CLAMPED_TASK_ID;

/// The printer's job id: `subtask_id`, else `task_id`, each unless empty, "0" or the
/// clamped 32-bit maximum (protocols.md §2.8, §7.1 quirk 8).
pub fn job_id(subtask_id: Option<String>, task_id: Option<String>) -> Option<String> {
    let useful = |s: Option<String>| {
        s.map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty() && s != "0" && s != CLAMPED_TASK_ID)
    };
    useful(subtask_id).or_else(|| useful(task_id))
}

/// `gcode_start_time` (unix seconds as text, or a number some firmware sends as
/// `1738671939.0`) as a time; "0", empty or nonsense → None. Whether the time is
/// plausible is the boundary check's call (`sanitize.rs`).
pub fn start_time(s: &str) -> Option<crate::time::Timestamp> {
    let s = s.trim();
    let s = s.strip_suffix(".0").unwrap_or(s);
    let secs: i64 = s.parse().ok()?;
    if secs <= 0 {
        return None;
    }
    DateTime::from_timestamp(secs, 0)
}

/// The file being printed, folders stripped (`/cache/x.3mf` → `x.3mf`). X1 reports the
/// plate inside the project (`/data/Metadata/plate_1.gcode`), which says nothing about
/// the print: then the task's name stands in, as it does when there is no file at all.
pub fn filename(gcode_file: Option<&str>, subtask_name: Option<&str>) -> Option<String> {
    let name = subtask_name
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_owned);
    let base = gcode_file
        .map(str::trim)
        .and_then(|f| f.rsplit(['/', '\\']).next())
        .map(str::trim)
        .filter(|b| !b.is_empty());
    match base {
        Some(b) if is_plate(b) => name.or_else(|| Some(b.to_owned())),
        Some(b) => Some(b.to_owned()),
        None => name,
    }
}

/// `plate_3.gcode`, in any case.
fn is_plate(base: &str) -> bool {
    let lower = base.to_ascii_lowercase();
    lower
        .strip_prefix("plate_")
        .and_then(|r| r.strip_suffix(".gcode"))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}
