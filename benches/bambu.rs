//! Micro-benchmarks of a Bambu report on its way into a status (issue 7).
//!
//! The reports are the simulator's (`sim::bambu::BambuModel`), which follows the field
//! set and types of real X1/P1 reports (protocols.md §2): a full `push_status` of a print
//! under way (~60 fields, what an X1 sends every second and any printer answers to
//! `pushall`) and a P1-style delta (the handful of fields that changed since the last).
//!
//! - `bambu_report/full`: `BambuState::apply_bytes` of the full report — JSON parse,
//!   validation and the merge into the printer's document;
//! - `bambu_report/delta`: the same for a delta onto a complete document;
//! - `bambu_report/normalise`: `BambuState::fill`, the document turned into the
//!   normalised `PrinterStatus` every driver produces;
//! - `bambu_report/delta_to_status`: delta + normalise into the `PrinterStatus`, what one
//!   P1 report costs before it reaches the JobCreator.
//!
//! Run: `cargo bench --bench bambu -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use printfarmd::domain::{PrinterId, PrinterType};
use printfarmd::printers::PrinterStatus;
use printfarmd::printers::bambu::MAX_REPORT_BYTES;
use printfarmd::printers::bambu::state::BambuState;
use printfarmd::time;
use printfarmd_sim::bambu::BambuModel;
use printfarmd_sim::{Action, Style};
use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::time::Instant;

/// (full report, delta report) of a print 40 minutes into its two hours.
fn reports() -> (Bytes, Bytes) {
    let t0 = Instant::now();
    let wall = 1_790_000_000_000u64;
    let mut rng = StdRng::seed_from_u64(1);
    let mut m = BambuModel::new(
        Style::P1,
        "01P00A000000001",
        Duration::from_secs(5),
        Duration::from_secs(5),
        t0,
        1,
    );
    m.apply(
        &Action::Print {
            file: "bracket_v3.gcode.3mf".into(),
            duration_s: 7200,
            layers: Some(240),
        },
        t0,
        wall / 1000,
    )
    .unwrap();
    let at = |s: u64| t0 + Duration::from_secs(s);
    for s in (0..2400).step_by(30) {
        m.poll(at(s), wall + s * 1000, true, &mut rng);
    }
    let full = m.full_frame();
    let delta = m
        .poll(at(2460), wall + 2_460_000, true, &mut rng)
        .pop()
        .expect("a delta after a minute of printing");
    (full, delta)
}

fn bambu(c: &mut Criterion) {
    let (full, delta) = reports();
    let id = PrinterId::new("bambu_001").unwrap();
    let mut complete = BambuState::new();
    complete.apply_bytes(&full, MAX_REPORT_BYTES).unwrap();
    let mut status = PrinterStatus::unknown(id.clone(), PrinterType::Bambu, time::now());
    complete.fill(&mut status);
    assert!(
        status.progress.is_some() && status.filename.is_some(),
        "{status:?}"
    );

    let mut g = c.benchmark_group("bambu_report");
    g.bench_function(format!("full ({} bytes)", full.len()), |b| {
        let mut st = BambuState::new();
        b.iter(|| st.apply_bytes(black_box(&full), MAX_REPORT_BYTES).unwrap())
    });
    g.bench_function(format!("delta ({} bytes)", delta.len()), |b| {
        let mut st = complete.clone();
        b.iter(|| st.apply_bytes(black_box(&delta), MAX_REPORT_BYTES).unwrap())
    });
    g.bench_function("normalise", |b| {
        let mut s = status.clone();
        b.iter(|| complete.fill(black_box(&mut s)))
    });
    g.bench_function("delta_to_status", |b| {
        let mut st = complete.clone();
        let mut s = status.clone();
        b.iter(|| {
            st.apply_bytes(black_box(&delta), MAX_REPORT_BYTES).unwrap();
            st.fill(&mut s);
            black_box(&s);
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = bambu
}
criterion_main!(benches);
