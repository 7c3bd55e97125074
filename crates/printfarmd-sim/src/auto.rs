//! The auto driver: printers that start and end prints by themselves, so a farm looks alive
//! with nobody at the control API (the demo, `printfarmd simulate`, load tests).
//!
//! One task for the whole farm ticks twice a second and looks only at printers whose next
//! decision is due, so thousands of printers cost a few microseconds per tick. Each print
//! gets a file, a duration (tens of seconds to a few minutes) and, sometimes, a pause and
//! resume, a cancel or a failure at a random point. Refused actions (the printer was busy,
//! rebooting, or changed by hand meanwhile) are simply skipped.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::{Instant, MissedTickBehavior};

use super::Action;
use super::farm::FarmShared;

const TICK: Duration = Duration::from_millis(500);
const PARTS: &[&str] = &[
    "bracket_v3",
    "benchy",
    "gear_housing",
    "cable_clip_x20",
    "phone_stand",
    "vase_spiral",
    "enclosure_lid",
    "hinge_pin_set",
    "Untitled",
    "fan_duct_5015",
    "spool_holder",
    "drawer_label_x12",
    "Pièce d'essai",
];

struct Plan {
    id: String,
    prusa: bool,
    octo: bool,
    moon: bool,
    next_at: Instant,
    pending: VecDeque<(Instant, Action)>,
}

pub async fn run(farm: Arc<FarmShared>, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let start = Instant::now();
    let mut plans: Vec<Plan> = farm
        .infos
        .iter()
        .filter(|i| i.style != "replay")
        .map(|i| Plan {
            id: i.id.clone(),
            prusa: i.kind == "prusalink",
            octo: i.kind == "octoprint",
            moon: i.kind == "moonraker",
            next_at: start + Duration::from_millis(rng.random_range(300..5_000)),
            pending: VecDeque::new(),
        })
        .collect();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = Instant::now();
        for plan in &mut plans {
            while plan.pending.front().is_some_and(|(at, _)| *at <= now) {
                if let Some((_, action)) = plan.pending.pop_front() {
                    let _ = farm.control(&plan.id, &action);
                }
            }
            if now < plan.next_at {
                continue;
            }
            let Ok(status) = farm.status(&plan.id) else {
                continue;
            };
            if !status.online || status.active {
                plan.next_at = now + Duration::from_secs(3);
                continue;
            }
            if plan.prusa
                && matches!(status.state.as_str(), "FINISHED" | "STOPPED" | "ERROR")
                && rng.random_bool(0.7)
            {
                let _ = farm.control(&plan.id, &Action::Dismiss);
            }
            if plan.octo && status.state == "Offline after error" {
                // Reconnect the printer after a failure, as the operator would.
                let _ = farm.control(&plan.id, &Action::Dismiss);
            }
            let part = PARTS[rng.random_range(0..PARTS.len())];
            let file = if plan.prusa {
                format!(
                    "{part}_0.4n_0.2mm_PETG_MK4S_{}m.bgcode",
                    rng.random_range(5..90)
                )
            } else if plan.octo || plan.moon {
                format!("farm/{part}.gcode")
            } else {
                format!("{part}.gcode.3mf")
            };
            let duration_s = rng.random_range(20..=180u64);
            let print = Action::Print {
                file,
                duration_s,
                layers: None,
            };
            if farm.control(&plan.id, &print).is_err() {
                plan.next_at = now + Duration::from_secs(5);
                continue;
            }
            plan.pending.clear();
            let d = Duration::from_secs(duration_s);
            let roll: f64 = rng.random();
            let at = |f: f64| now + d.mul_f64(f);
            if roll < 0.08 {
                plan.pending
                    .push_back((at(rng.random_range(0.1..0.8)), Action::Cancel));
            } else if roll < 0.14 {
                plan.pending
                    .push_back((at(rng.random_range(0.0..0.8)), Action::Fail));
            } else if roll < 0.24 {
                let pause = at(rng.random_range(0.2..0.7));
                plan.pending.push_back((pause, Action::Pause));
                plan.pending.push_back((
                    pause + Duration::from_secs(rng.random_range(5..20)),
                    Action::Resume,
                ));
            }
            plan.next_at = now + d + Duration::from_secs(rng.random_range(5..40));
        }
    }
}
