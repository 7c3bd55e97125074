//! PrusaLink's fast status probe (issue 21): with a long monitoring interval, a print's
//! start and end show within a few seconds, long before the next full refresh.

use std::time::{Duration, Instant};

use crate::rig::{Rig, print, prusa};

/// The full refresh comes every 60 s; the probe every 2 s. Both the start and the end must
/// be seen within 40 s of the print's start, inside one interval: without the probe
/// neither could be (the printer is polled once, at connect, before the print, and next
/// 60 s or more later). A correctness bound, not a speed claim.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prusalink_print_starts_and_ends_within_one_interval_through_the_probe() {
    const INTERVAL_S: u64 = 60;
    const BOUND: Duration = Duration::from_secs(40);
    let r = Rig::start_with(
        prusa(1),
        &format!("[monitoring]\ninterval = {INTERVAL_S}\nstatus_probe_s = 2\n"),
    )
    .await;
    let polls_at_start = r.sim.status("prusa_1").unwrap().reports_sent;
    let t0 = Instant::now();
    r.act("prusa_1", print("probe_cube.bgcode", 8)).await;
    let running = r
        .wait_jobs("", "the print's job running", |j| {
            j.len() == 1 && j[0]["status"] == "running"
        })
        .await;
    assert_eq!(running[0]["filename"], "probe_cube.bgcode", "{running:?}");
    let done = r
        .wait_jobs("", "the print's job completed", |j| {
            j.len() == 1 && j[0]["status"] == "completed"
        })
        .await;
    assert_eq!(done[0]["id"], running[0]["id"]);
    assert!(
        t0.elapsed() < BOUND,
        "start and end seen only after {:?}: the probe did not bring them forward",
        t0.elapsed()
    );
    // Seen through probes: the printer answered more status requests than the one full
    // poll an interval allows.
    assert!(r.sim.status("prusa_1").unwrap().reports_sent > polls_at_start + 2);
}
