//! Bambu `print_error` codes and HMS entries in words, for the reason a print failed or
//! was cancelled (issue 17). A printer reports numbers only (protocols.md §2.10); the
//! words are Bambu Lab's own, as its apps show them.
//!
//! Source of the texts: the `greghesp/ha-bambulab` Home Assistant integration,
//! `custom_components/bambu_lab/pybambu/const_print_errors.py` (`PRINT_ERROR_ERRORS`)
//! and `const_hms_errors.py` (`HMS_ERRORS`), at commit
//! 37f2c20d55ec018a3a3072e12361d6eccdfe6f9f; those tables are generated from Bambu
//! Studio's own error lists. Kept here: the codes that end or stop a print (the
//! `0300_4xxx` / `0500_4xxx` "task stopped" family, the pause family `0300_8xxx` a print
//! may fail from, the first AMS unit's feed errors) and the HMS hardware faults of the
//! heatbed, nozzle, fans and motors. Texts are shortened where the original goes on to
//! give instructions (a reason is a label, the printer's screen has the advice), and the
//! final full stop dropped. A code not listed reads "printer error 0300_4099".

/// `print_error` codes (`MMMM_EEEE` as one 32-bit number) and their words, sorted by
/// code (a unit test checks), looked up by binary search.
const PRINT_ERRORS: &[(u32, &str)] = &[
    (0x0300_4000, "Z axis homing failed"),
    (
        0x0300_4001,
        "The printer timed out waiting for the nozzle to cool down before homing",
    ),
    (0x0300_4002, "Auto Bed Leveling failed"),
    (0x0300_4005, "The hotend cooling fan speed is abnormal"),
    (0x0300_4006, "The nozzle is clogged"),
    (0x0300_4008, "The AMS failed to change filament"),
    (0x0300_4009, "Homing XY axis failed"),
    (
        0x0300_400A,
        "Mechanical resonance frequency identification failed",
    ),
    (0x0300_400B, "Internal communication exception"),
    (0x0300_400C, "The task was canceled"),
    (0x0300_400D, "Resume failed after power loss"),
    (0x0300_400E, "The motor self-check failed"),
    (
        0x0300_400F,
        "The power supply voltage does not match the printer",
    ),
    (0x0300_4010, "Nozzle offset calibration failed"),
    (0x0300_4011, "Flow Dynamics Calibration failed"),
    (
        0x0300_4013,
        "Printing cannot be initiated while AMS is drying",
    ),
    (0x0300_4020, "The nozzle presence detection failed"),
    (
        0x0300_404D,
        "The hotend, heatbed or chamber is too hot to start",
    ),
    (0x0300_4066, "Calibration of motion precision failed"),
    (0x0300_8000, "Printing was paused for unknown reason"),
    (
        0x0300_8001,
        "Printing paused due to the pause command added to the printing file",
    ),
    (
        0x0300_8003,
        "Spaghetti defects were detected by the AI Print Monitoring",
    ),
    (
        0x0300_8007,
        "There was an unfinished print job when the printer lost power",
    ),
    (0x0300_8008, "Nozzle temperature malfunction"),
    (0x0300_8009, "Heatbed temperature malfunction"),
    (
        0x0300_800A,
        "A Filament pile-up was detected by AI Print Monitoring",
    ),
    (0x0300_800B, "The cutter is stuck"),
    (0x0300_800C, "Skipped step detected"),
    (
        0x0300_800D,
        "Detected that the extruder is not extruding normally",
    ),
    (0x0300_800E, "The print file is not available"),
    (
        0x0300_800F,
        "The door seems to be open, so printing was paused",
    ),
    (0x0300_8010, "The hotend cooling fan speed is abnormal"),
    (0x0300_8013, "Printing was paused by the user"),
    (
        0x0300_8014,
        "The nozzle is covered with filament, or the build plate is installed incorrectly",
    ),
    (0x0300_8016, "The nozzle is clogged with filament"),
    (0x0300_8017, "Foreign objects detected on heatbed"),
    (0x0300_8018, "Chamber temperature malfunction"),
    (0x0300_8019, "No build plate is placed"),
    (0x0300_801A, "Filament extrusion error"),
    (0x0300_801C, "The extrusion resistance is abnormal"),
    (0x0300_801E, "The extrusion motor is overloaded"),
    (
        0x0300_8021,
        "The nozzle may not be installed or not properly installed",
    ),
    (0x0500_4002, "Unsupported print file path or name"),
    (
        0x0500_4003,
        "Printing stopped because the printer was unable to parse the file",
    ),
    (0x0500_4004, "Device is busy and cannot start new task"),
    (
        0x0500_4006,
        "There is not enough free storage space for the print job",
    ),
    (0x0500_4008, "Starting printing failed"),
    (0x0500_400A, "The file name is not supported"),
    (0x0500_400B, "There was a problem downloading a file"),
    (
        0x0500_400D,
        "Please run a self-test and restart the print job",
    ),
    (0x0500_400E, "Printing was cancelled"),
    (0x0500_4014, "Slicing for the print job failed"),
    (
        0x0500_4037,
        "Your sliced file is not compatible with current printer model",
    ),
    (
        0x0500_4038,
        "The nozzle diameter in sliced file is not consistent with the current nozzle setting",
    ),
    (0x0500_403F, "Failed to download print job"),
    (0x0500_8013, "The print file is not available"),
    (
        0x0500_8051,
        "Detected build plate is not the same as the Gcode file",
    ),
    (0x0500_C010, "USB flash drive read-write exception"),
    (0x0700_4025, "Failed to read the filament information"),
    (
        0x0700_8003,
        "Failed to pull out the filament from the extruder",
    ),
    (0x0700_8004, "AMS failed to pull back filament"),
    (0x0700_8005, "The AMS failed to send out filament"),
    (0x0700_8006, "Unable to feed filament into the extruder"),
    (0x0700_8007, "Failed to extrude the filament"),
    (0x0700_800A, "PTFE tube disconnection detected"),
    (0x0700_8010, "The AMS assist motor is overloaded"),
    (0x0700_8011, "AMS filament ran out"),
    (0x0700_8012, "Failed to get AMS mapping table"),
    (0x0700_8013, "Timeout purging old filament"),
];

/// HMS codes (`attr` then `code`, 16 hex digits, as one 64-bit number) and their words,
/// sorted by code.
const HMS: &[(u64, &str)] = &[
    (
        0x0300_0100_0001_0001,
        "The heatbed temperature is abnormal; the heater may have a short circuit",
    ),
    (
        0x0300_0100_0001_0002,
        "The heatbed temperature is abnormal; the heater may have an open circuit, or the thermal switch may be open",
    ),
    (
        0x0300_0100_0001_0003,
        "The heatbed temperature is abnormal; the heater is over temperature",
    ),
    (
        0x0300_0100_0001_0006,
        "The heatbed temperature is abnormal; the sensor may have a short circuit",
    ),
    (
        0x0300_0100_0001_0007,
        "The heatbed temperature is abnormal; the sensor may have an open circuit",
    ),
    (
        0x0300_0100_0001_0008,
        "An abnormality occurs during the heating process of the heatbed; the heating modules may be broken",
    ),
    (
        0x0300_0100_0001_000A,
        "The heatbed temperature control is abnormal; the AC board may be broken",
    ),
    (
        0x0300_0100_0001_000E,
        "The power supply voltage does not match the machine; the heatbed has been disabled",
    ),
    (
        0x0300_0200_0001_0001,
        "The nozzle temperature is abnormal; the heater may have a short circuit",
    ),
    (
        0x0300_0200_0001_0002,
        "The nozzle temperature is abnormal; the heater may have an open circuit",
    ),
    (
        0x0300_0200_0001_0003,
        "The nozzle temperature is abnormal; the heater is over temperature",
    ),
    (
        0x0300_0200_0001_0006,
        "The nozzle temperature is abnormal; the sensor may have a short circuit",
    ),
    (
        0x0300_0200_0001_0007,
        "The nozzle temperature is abnormal; the sensor may have an open circuit",
    ),
    (
        0x0300_0300_0001_0001,
        "The hotend cooling fan speed is too slow or stopped",
    ),
    (
        0x0300_0400_0002_0001,
        "The speed of the part cooling fan is too slow or stopped",
    ),
    (0x0300_0500_0001_0001, "The motor driver is overheating"),
    (0x0300_0600_0001_0001, "Motor-A has an open-circuit"),
    (0x0300_0600_0001_0002, "Motor-A has a short-circuit"),
    (0x0300_0700_0001_0001, "Motor-B has an open-circuit"),
    (0x0300_0700_0001_0002, "Motor-B has a short-circuit"),
    (0x0300_0800_0001_0001, "Motor-Z has an open-circuit"),
    (0x0300_0800_0001_0002, "Motor-Z has a short-circuit"),
    (
        0x0300_0900_0001_0001,
        "The extruder servo motor has an open circuit",
    ),
    (
        0x0300_0900_0002_0001,
        "The extrusion motor is overloaded; the extruder may be clogged or the filament may be stuck in the tool head",
    ),
    (
        0x0300_0900_0002_0002,
        "The extrusion resistance is abnormal; the extruder may be clogged",
    ),
    (
        0x0300_0900_0002_0003,
        "The extruder is extruding abnormally; it may be clogged, or the filament may be too thin",
    ),
    (
        0x0300_1800_0001_0006,
        "The heatbed leveling data is abnormal",
    ),
    (0x0300_2000_0001_0001, "X-axis homing abnormal"),
    (0x0300_2000_0001_0002, "Y-axis homing abnormal"),
    (0x0500_0500_0001_0007, "MQTT command verification failed"),
];

/// `print_error` values that mean a person stopped the print (screen, app or slicer):
/// `0300_400C` "task was canceled", `0500_400E` "printing was cancelled" (§2.10).
pub const CANCEL_CODES: [u64; 2] = [0x0300_400C, 0x0500_400E];

/// How many HMS entries a reason names: a failing printer may raise several alerts at
/// once; the first few say what happened, and a reason stays one readable line.
pub const MAX_HMS_IN_REASON: usize = 3;

/// `50348044` → `0300_400C` (protocols.md §2.10).
pub fn error_code(code: u64) -> String {
    let hex = format!("{:08X}", code & 0xFFFF_FFFF);
    format!("{}_{}", &hex[..4], &hex[4..])
}

/// An HMS entry's full code, `0300_0100_0001_0007`: the short `MMMM_EEEE` form loses
/// what some alerts mean (§2.10), so the whole of `attr` and `code` is kept.
pub fn hms_code(attr: u32, code: u32) -> String {
    let hex = format!("{attr:08X}{code:08X}");
    format!(
        "{}_{}_{}_{}",
        &hex[..4],
        &hex[4..8],
        &hex[8..12],
        &hex[12..]
    )
}

/// Severity of an HMS entry: the high 16 bits of `code` (1 fatal, 2 serious, 3 common,
/// 4 info, §2.10).
pub fn hms_severity(code: u32) -> u32 {
    code >> 16
}

/// A `print_error` in words: "Nozzle temperature malfunction (0300_8008)", a cancel
/// "cancelled by user (0300_400C)", a code not in the table "printer error 0300_4099".
pub fn print_error_text(code: u64) -> String {
    let short = error_code(code);
    if CANCEL_CODES.contains(&code) {
        return format!("cancelled by user ({short})");
    }
    let found = u32::try_from(code)
        .ok()
        .and_then(|c| PRINT_ERRORS.binary_search_by_key(&c, |(k, _)| *k).ok());
    match found {
        Some(i) => format!("{} ({short})", PRINT_ERRORS[i].1),
        None => format!("printer error {short}"),
    }
}

/// An HMS entry in words: "The heatbed temperature is abnormal; … (HMS
/// 0300_0100_0001_0007)", or "HMS 0300_…" when the table has no words for it.
pub fn hms_text(attr: u32, code: u32) -> String {
    let full = hms_code(attr, code);
    let key = (u64::from(attr) << 32) | u64::from(code);
    match HMS.binary_search_by_key(&key, |(k, _)| *k) {
        Ok(i) => format!("{} (HMS {full})", HMS[i].1),
        Err(_) => format!("HMS {full}"),
    }
}

/// Why a print stopped, from its `print_error` (0 = none) and HMS entries: the code's
/// words, then the fatal and serious HMS alerts (at most `MAX_HMS_IN_REASON`), joined
/// by "; ". A cancel names the cancel alone (its HMS entry only echoes it). None when
/// the printer said nothing.
pub fn describe(print_error: u64, hms: &[(u32, u32)]) -> Option<String> {
    if CANCEL_CODES.contains(&print_error) {
        return Some(print_error_text(print_error));
    }
    let mut parts = Vec::new();
    if print_error != 0 {
        parts.push(print_error_text(print_error));
    }
    let mut seen: Vec<(u32, u32)> = Vec::new();
    for &(attr, code) in hms {
        if seen.len() == MAX_HMS_IN_REASON {
            break;
        }
        if matches!(hms_severity(code), 1 | 2) && !seen.contains(&(attr, code)) {
            seen.push((attr, code));
            parts.push(hms_text(attr, code));
        }
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_sorted_and_unique_for_binary_search() {
        assert!(PRINT_ERRORS.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(HMS.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn every_text_is_a_clean_label() {
        let texts = PRINT_ERRORS
            .iter()
            .map(|(_, t)| *t)
            .chain(HMS.iter().map(|(_, t)| *t));
        for t in texts {
            assert!(!t.is_empty() && !t.ends_with('.') && t.trim() == t, "{t:?}");
        }
    }

    #[test]
    fn decodes_known_unknown_and_cancel_codes() {
        assert_eq!(
            print_error_text(0x0300_8009),
            "Heatbed temperature malfunction (0300_8009)"
        );
        assert_eq!(
            print_error_text(50_348_044),
            "cancelled by user (0300_400C)"
        );
        assert_eq!(
            print_error_text(0x0500_400E),
            "cancelled by user (0500_400E)"
        );
        assert_eq!(print_error_text(0x0300_4099), "printer error 0300_4099");
        // The protocol's illustrative code is not a real one.
        assert_eq!(print_error_text(117_473_280), "printer error 0700_8000");
    }

    #[test]
    fn hms_codes_keep_all_sixteen_digits() {
        // protocols.md §2.10's worked example.
        assert_eq!(hms_code(50_331_904, 65_543), "0300_0100_0001_0007");
        assert_eq!(
            hms_text(50_331_904, 65_543),
            "The heatbed temperature is abnormal; the sensor may have an open circuit (HMS 0300_0100_0001_0007)"
        );
        assert_eq!(
            hms_text(0x0C00_0100, 0x0003_0001),
            "HMS 0C00_0100_0003_0001"
        );
        assert_eq!(hms_severity(0x0001_0007), 1);
    }

    #[test]
    fn a_reason_names_the_code_then_the_serious_alerts() {
        let hms = [
            (0x0300_0100, 0x0001_0007),
            (0x0C00_0100, 0x0004_0001), // info: left out
            (0x0300_0100, 0x0001_0007), // repeated: once
        ];
        assert_eq!(
            describe(0x0300_8009, &hms).as_deref(),
            Some(
                "Heatbed temperature malfunction (0300_8009); The heatbed temperature is abnormal; \
                 the sensor may have an open circuit (HMS 0300_0100_0001_0007)"
            )
        );
        assert_eq!(
            describe(0, &hms[..1]).unwrap(),
            hms_text(0x0300_0100, 0x0001_0007)
        );
        assert_eq!(
            describe(0x0300_400C, &hms).as_deref(),
            Some("cancelled by user (0300_400C)")
        );
        assert_eq!(describe(0, &[]), None);
        assert_eq!(describe(0, &[(0x0C00_0100, 0x0004_0001)]), None);
        let many = [
            (0x0300_0100, 0x0001_0001),
            (0x0300_0100, 0x0001_0002),
            (0x0300_0100, 0x0001_0003),
            (0x0300_0100, 0x0001_0006),
        ];
        assert_eq!(
            describe(0, &many).unwrap().matches("(HMS ").count(),
            MAX_HMS_IN_REASON
        );
    }
}
