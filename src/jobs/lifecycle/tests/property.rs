//! The property of issue 5: whatever the interleaving — duplicated reports, small
//! reorders, pause flapping, lingering end states, daemon restarts — a model printer that
//! does K prints yields exactly K jobs, each closed with its print's outcome.

use super::*;
use proptest::prelude::*;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Style {
    /// X1: task ids and printer start times.
    X1,
    /// P1/A1: neither.
    P1,
    /// PrusaLink: job ids and elapsed time.
    Prusa,
}

#[derive(Clone, Debug)]
struct Print {
    file: &'static str,
    outcome: JobStatus,
    /// Progress reached before the end.
    reached: u8,
    pauses: u8,
}

fn print() -> impl Strategy<Value = Print> {
    (
        prop::sample::select(vec!["a.3mf", "b.3mf", "cube.gcode.3mf"]),
        prop::sample::select(vec![
            JobStatus::Completed,
            JobStatus::Failed,
            JobStatus::Cancelled,
        ]),
        10u8..100,
        0u8..3,
    )
        .prop_map(|(file, outcome, reached, pauses)| Print {
            file,
            outcome,
            reached: if outcome == JobStatus::Completed {
                100
            } else {
                reached
            },
            pauses,
        })
}

/// One report of the model printer.
#[derive(Clone, Debug)]
struct Report {
    state: PrinterState,
    file: &'static str,
    progress: f64,
    print_no: usize,
    elapsed: i64,
}

fn reports(prints: &[Print]) -> Vec<Report> {
    let mut out = vec![Report {
        state: Idle,
        file: "",
        progress: 0.0,
        print_no: 0,
        elapsed: 0,
    }];
    for (n, p) in prints.iter().enumerate() {
        let r = |state, progress: f64| Report {
            state,
            file: p.file,
            progress,
            print_no: n + 1,
            elapsed: (progress * 10.0) as i64,
        };
        out.push(r(Preparing, 0.0));
        let steps = 8u8;
        for s in 0..=steps {
            let progress = f64::from(p.reached) * f64::from(s) / f64::from(steps);
            out.push(r(Printing, progress));
            if s < p.pauses {
                out.push(r(Paused, progress));
                out.push(r(Paused, progress));
            }
        }
        let end = match p.outcome {
            JobStatus::Completed => Finished,
            JobStatus::Failed => Failed,
            _ => Cancelled,
        };
        // Cancels zero the counters; end states linger.
        let end_progress = if end == Cancelled {
            0.0
        } else {
            f64::from(p.reached)
        };
        for _ in 0..3 {
            out.push(r(end, end_progress));
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn k_prints_make_k_jobs_with_their_outcomes(
        prints in prop::collection::vec(print(), 1..6),
        style in prop::sample::select(vec![Style::X1, Style::P1, Style::Prusa]),
        dup in prop::collection::vec(1usize..4, 200),
        swaps in prop::collection::vec(any::<bool>(), 200),
        restarts in prop::collection::vec(0u8..30, 200),
    ) {
        let mut seq = reports(&prints);
        // Small reorders: swap neighbouring progress reports of the same print that
        // are within a few seconds (and, without ids, within the progress jitter).
        for i in 1..seq.len().saturating_sub(1) {
            let (a, b) = (&seq[i], &seq[i + 1]);
            let close = (a.progress - b.progress).abs() <= RESTART_PROGRESS_DROP;
            if swaps[i % swaps.len()] && a.print_no == b.print_no && a.state == Printing && b.state == Printing && close {
                seq.swap(i, i + 1);
            }
        }
        let mut f = Farm::default();
        let base = time::parse("2026-01-01T10:00:00Z").unwrap();
        let mut t = 0i64;
        let mut reconnect = false;
        for (i, r) in seq.iter().enumerate() {
            // A daemon restart: the tracker is rebuilt from the open job only.
            if restarts[i % restarts.len()] == 0 {
                let open = f.tracker.open().cloned();
                f.tracker = PrinterTracker::with_open(open);
                reconnect = true;
            }
            for _ in 0..dup[i % dup.len()] {
                t += 1;
                let ids = style != Style::P1 && r.print_no > 0;
                let obs = Sample {
                    printer_type: if style == Style::Prusa { PrinterType::Prusalink } else { PrinterType::Bambu },
                    connected: true,
                    state: r.state,
                    filename: (!r.file.is_empty()).then(|| r.file.to_owned()),
                    job_name: None,
                    printer_job_id: ids.then(|| format!("task-{}", r.print_no)),
                    printer_start_time: (style == Style::X1 && r.print_no > 0)
                        .then(|| base + Duration::seconds(r.print_no as i64 * 100_000)),
                    elapsed_s: (style == Style::Prusa).then_some(r.elapsed),
                    progress: Some(r.progress),
                    remaining_s: None,
                    first_after_connect: std::mem::take(&mut reconnect),
                    at: base + Duration::seconds(t),
                };
                f.feed(obs);
            }
        }
        let want: Vec<JobStatus> = prints.iter().map(|p| p.outcome).collect();
        prop_assert_eq!(f.statuses(), want);
    }
}
