//! `printfarmd loadtest idle` end to end, on a 3 s window: the simulator and the daemon
//! start as separate processes, and the summary carries the daemon's CPU, wake-ups and
//! memory. A smoke test of the harness, not a measurement (no figure is asserted beyond
//! "read from /proc").

use std::process::Command;

use serde_json::Value;

#[test]
fn loadtest_idle_reports_cpu_wakeups_and_memory_of_the_daemon() {
    let out = Command::new(env!("CARGO_BIN_EXE_printfarmd"))
        .args([
            "loadtest",
            "idle",
            "--bambu",
            "1",
            "--prusa",
            "1",
            "--printing",
            "off",
            "--seconds",
            "6",
            "--warmup",
            "1",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let d = &v["daemon"];
    assert_eq!(v["mode"], "idle", "{v}");
    assert!(d["cpu_s"].as_f64().is_some(), "{v}");
    // The daemon's threads slept and woke at least once in 6 s (its printers report every 5 s).
    assert!(d["wakeups"].as_u64().unwrap() > 0, "{v}");
    assert!(d["rss_mb"].as_f64().unwrap() > 1.0, "{v}");
    assert!(
        d["peak_rss_mb"].as_f64().unwrap() >= d["rss_mb"].as_f64().unwrap(),
        "{v}"
    );
    assert!(v["window_s"].as_f64().unwrap() >= 3.0, "{v}");
}
