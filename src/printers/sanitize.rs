//! The one boundary check every printer-supplied value passes before the daemon uses it
//! (issue 14). A printer is a device on the LAN that anyone — a confused firmware, a
//! replaced board, a hostile neighbour — can make say anything; the job history must not
//! be at its mercy. Every driver's status goes through [`check`] in `Reporter::emit`, so
//! a driver written later gets it without doing anything.
//!
//! The rule: a value outside its sane range is dropped (the field becomes `None`), a name
//! longer than the API accepts is cut with a visible `…`; each is reported back so the
//! driver's `Reporter` can count it per printer and log it at most once a minute. Nothing
//! here can panic: times are compared with checked arithmetic, floats are tested for
//! finiteness before any comparison, and strings are cut on a char boundary.

use chrono::TimeDelta;

use crate::domain::MAX_NAME_LEN;
use crate::domain::{PrinterStatus, Temperatures};
use crate::time::Timestamp;

/// How far in the past a printer's start time may lie. A print longer than a month does
/// not exist on any printer we watch; an older time is a stale or bogus clock.
pub const MAX_START_AGE: TimeDelta = TimeDelta::days(30);
/// How far in the future a printer's start time may lie: a printer clock a few hours
/// off (wrong time zone, no NTP) is common, a day off is not a clock we can use.
pub const MAX_START_AHEAD: TimeDelta = TimeDelta::days(1);
/// Longest elapsed or remaining print time, in seconds (30 days, as `MAX_START_AGE`).
pub const MAX_DURATION_S: i64 = 30 * 24 * 3600;
/// Most layers a print can have: 0.05 mm layers over a 5 m tall print. Real prints have
/// hundreds to a few thousand.
pub const MAX_LAYERS: u32 = 100_000;
/// Sane temperature range in °C for any sensor (nozzle, bed, chamber, their targets): no
/// printer heats past ~500 °C, and no farm is colder than −50 °C.
pub const MIN_TEMPERATURE_C: f64 = -50.0;
pub const MAX_TEMPERATURE_C: f64 = 600.0;
/// Longest name taken from a printer (file name, job name, job id, error text), in
/// characters: the limit the REST API enforces for job names, so a job made from a
/// printer's name can be edited and saved back unchanged.
pub const MAX_TEXT_CHARS: usize = MAX_NAME_LEN;
/// Appended to a name that was cut, so a reader sees it is not the whole name.
pub const CUT_MARKER: char = '…';

/// What [`check`] took out or cut of one status: the names of the fields.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Checked {
    /// Fields whose value was dropped (out of range).
    pub dropped: Vec<&'static str>,
    /// Text fields that were cut to `MAX_TEXT_CHARS`.
    pub cut: Vec<&'static str>,
}

impl Checked {
    pub fn is_clean(&self) -> bool {
        self.dropped.is_empty() && self.cut.is_empty()
    }

    /// How many values were dropped or cut.
    pub fn count(&self) -> u64 {
        (self.dropped.len() + self.cut.len()) as u64
    }

    /// For a log line: `dropped: a, b; cut: c`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.dropped.is_empty() {
            parts.push(format!("dropped: {}", self.dropped.join(", ")));
        }
        if !self.cut.is_empty() {
            parts.push(format!(
                "cut to {MAX_TEXT_CHARS} characters: {}",
                self.cut.join(", ")
            ));
        }
        parts.join("; ")
    }
}

/// Checks every printer-supplied field of `s` against the bounds above, `now` being the
/// daemon's clock. Out-of-range values become `None`, long names are cut.
pub fn check(s: &mut PrinterStatus, now: Timestamp) -> Checked {
    let mut c = Checked::default();
    if s.printer_start_time.is_some_and(|t| !start_time_ok(t, now)) {
        s.printer_start_time = None;
        c.dropped.push("printer_start_time");
    }
    if s.printer_end_time.is_some_and(|t| !end_time_ok(t, now)) {
        s.printer_end_time = None;
        c.dropped.push("printer_end_time");
    }
    drop_if(&mut s.elapsed_s, "elapsed_s", |v| duration_ok(*v), &mut c);
    drop_if(
        &mut s.remaining_s,
        "remaining_s",
        |v| duration_ok(*v),
        &mut c,
    );
    drop_if(&mut s.progress, "progress", |p| progress_ok(*p), &mut c);
    drop_if(&mut s.layer, "layer", |l| *l <= MAX_LAYERS, &mut c);
    drop_if(
        &mut s.total_layers,
        "total_layers",
        |l| *l <= MAX_LAYERS,
        &mut c,
    );
    if let (Some(l), Some(t)) = (s.layer, s.total_layers)
        && t > 0
        && l > t
    {
        s.layer = None;
        c.dropped.push("layer");
    }
    check_temperatures(&mut s.temperatures, &mut c);
    cut(&mut s.filename, "filename", &mut c);
    cut(&mut s.job_name, "job_name", &mut c);
    cut(&mut s.printer_job_id, "printer_job_id", &mut c);
    cut(&mut s.error, "error", &mut c);
    c
}

/// A printer's start time is usable if it lies within [now − 30 days, now + 1 day].
pub fn start_time_ok(t: Timestamp, now: Timestamp) -> bool {
    let (Some(earliest), Some(latest)) = (
        now.checked_sub_signed(MAX_START_AGE),
        now.checked_add_signed(MAX_START_AHEAD),
    ) else {
        return false;
    };
    earliest <= t && t <= latest
}

/// An end time the printer's data gives is usable within [now − 30 days, now]: a print
/// cannot have ended after the status that shows its end.
pub fn end_time_ok(t: Timestamp, now: Timestamp) -> bool {
    now.checked_sub_signed(MAX_START_AGE)
        .is_some_and(|earliest| earliest <= t && t <= now)
}

/// An elapsed or remaining time in seconds is usable within 0..=30 days.
pub fn duration_ok(secs: i64) -> bool {
    (0..=MAX_DURATION_S).contains(&secs)
}

/// Progress is usable if finite and within 0–100.
pub fn progress_ok(p: f64) -> bool {
    p.is_finite() && (0.0..=100.0).contains(&p)
}

/// A temperature is usable if finite and within the sane range.
pub fn temperature_ok(t: f64) -> bool {
    t.is_finite() && (MIN_TEMPERATURE_C..=MAX_TEMPERATURE_C).contains(&t)
}

fn drop_if<T>(v: &mut Option<T>, name: &'static str, ok: impl Fn(&T) -> bool, c: &mut Checked) {
    if v.as_ref().is_some_and(|x| !ok(x)) {
        *v = None;
        c.dropped.push(name);
    }
}

fn check_temperatures(t: &mut Temperatures, c: &mut Checked) {
    let ok = |v: &f64| temperature_ok(*v);
    drop_if(&mut t.nozzle, "temperatures.nozzle", ok, c);
    drop_if(&mut t.nozzle_target, "temperatures.nozzle_target", ok, c);
    drop_if(&mut t.bed, "temperatures.bed", ok, c);
    drop_if(&mut t.bed_target, "temperatures.bed_target", ok, c);
    drop_if(&mut t.chamber, "temperatures.chamber", ok, c);
}

fn cut(v: &mut Option<String>, name: &'static str, c: &mut Checked) {
    if let Some(s) = v
        && let Some(short) = cap_text(s, MAX_TEXT_CHARS)
    {
        *s = short;
        c.cut.push(name);
    }
}

/// `s` cut to at most `max` characters, the last of them `CUT_MARKER`, on a char
/// boundary; `None` when it already fits.
pub fn cap_text(s: &str, max: usize) -> Option<String> {
    let max = max.max(1);
    // The byte offset of the `max`-th char, if there is one: beyond it, s is too long.
    s.char_indices().nth(max)?;
    let keep = s.char_indices().nth(max - 1).map_or(s.len(), |(at, _)| at);
    let mut out = String::with_capacity(keep + CUT_MARKER.len_utf8());
    out.push_str(&s[..keep]);
    out.push(CUT_MARKER);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{PrinterId, PrinterType};
    use chrono::{DateTime, Utc};

    fn now() -> Timestamp {
        DateTime::parse_from_rfc3339("2026-06-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn status() -> PrinterStatus {
        PrinterStatus::unknown(PrinterId::new("p").unwrap(), PrinterType::Bambu, now())
    }

    #[test]
    fn good_values_pass_untouched() {
        let mut s = status();
        s.printer_start_time = Some(now() - TimeDelta::hours(3));
        s.elapsed_s = Some(3 * 3600);
        s.remaining_s = Some(0);
        s.progress = Some(100.0);
        s.layer = Some(120);
        s.total_layers = Some(120);
        s.temperatures.nozzle = Some(220.0);
        s.temperatures.chamber = Some(-5.0);
        s.filename = Some("é".repeat(MAX_TEXT_CHARS));
        let before = s.clone();
        assert!(check(&mut s, now()).is_clean());
        assert_eq!(s, before);
    }

    #[test]
    fn an_end_time_in_the_future_or_long_past_is_dropped() {
        for (end, kept) in [
            (now(), true),
            (now() - TimeDelta::hours(2), true),
            (now() + TimeDelta::seconds(1), false),
            (now() - TimeDelta::days(31), false),
        ] {
            let mut s = status();
            s.printer_end_time = Some(end);
            let c = check(&mut s, now());
            assert_eq!(s.printer_end_time.is_some(), kept, "{end}");
            assert_eq!(c.dropped.is_empty(), kept, "{end}");
        }
    }

    #[test]
    fn out_of_range_values_are_dropped_and_named() {
        let mut s = status();
        s.printer_start_time = Some(now() + TimeDelta::days(2));
        s.elapsed_s = Some(i64::MAX);
        s.remaining_s = Some(-1);
        s.progress = Some(f64::NAN);
        s.layer = Some(MAX_LAYERS + 1);
        s.total_layers = Some(10);
        s.temperatures.bed = Some(f64::INFINITY);
        s.temperatures.nozzle = Some(1e9);
        let c = check(&mut s, now());
        assert_eq!(
            c.dropped,
            [
                "printer_start_time",
                "elapsed_s",
                "remaining_s",
                "progress",
                "layer",
                "temperatures.nozzle",
                "temperatures.bed"
            ]
        );
        assert_eq!(c.count(), 7);
        assert_eq!(s.printer_start_time, None);
        assert_eq!(s.elapsed_s, None);
        assert_eq!(s.total_layers, Some(10));
        // A start 31 days ago, a layer past the total.
        let mut s = status();
        s.printer_start_time = Some(now() - TimeDelta::days(31));
        s.layer = Some(11);
        s.total_layers = Some(10);
        let c = check(&mut s, now());
        assert_eq!(c.dropped, ["printer_start_time", "layer"]);
    }

    #[test]
    fn the_window_edges_are_inside() {
        assert!(start_time_ok(now() - MAX_START_AGE, now()));
        assert!(start_time_ok(now() + MAX_START_AHEAD, now()));
        assert!(!start_time_ok(DateTime::<Utc>::MIN_UTC, now()));
        assert!(!start_time_ok(now(), DateTime::<Utc>::MAX_UTC));
        assert!(duration_ok(MAX_DURATION_S) && !duration_ok(MAX_DURATION_S + 1));
    }

    #[test]
    fn long_names_are_cut_on_a_char_boundary_with_a_marker() {
        let mut s = status();
        s.job_name = Some("ü".repeat(900_000));
        s.filename = Some(format!("{}.3mf", "a".repeat(MAX_TEXT_CHARS)));
        let c = check(&mut s, now());
        assert_eq!(c.cut, ["filename", "job_name"]);
        for name in [s.job_name.unwrap(), s.filename.unwrap()] {
            assert_eq!(name.chars().count(), MAX_TEXT_CHARS);
            assert!(name.ends_with(CUT_MARKER));
        }
        assert_eq!(cap_text("abc", 3), None);
        assert_eq!(cap_text("abcd", 3).as_deref(), Some("ab…"));
    }
}
