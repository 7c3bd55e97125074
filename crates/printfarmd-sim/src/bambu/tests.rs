//! The Bambu lifecycle frame by frame (protocols.md §2.7), with an injected clock.

use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::Value;
use tokio::time::Instant;

use super::*;

const PREP: Duration = Duration::from_millis(400);
const STALE: Duration = Duration::from_millis(300);

struct Rig {
    m: BambuModel,
    t: Instant,
    rng: StdRng,
}

impl Rig {
    fn new(style: Style) -> Self {
        let t = Instant::now();
        Rig {
            m: BambuModel::new(style, "SERIAL1", PREP, STALE, t, 700_000_000),
            t,
            rng: StdRng::seed_from_u64(7),
        }
    }

    /// Advances the clock and returns the `print` objects of every frame due.
    fn at(&mut self, ms: u64) -> Vec<Map<String, Value>> {
        let now = self.t + Duration::from_millis(ms);
        self.m
            .poll(now, 1_700_000_000_000 + ms, true, &mut self.rng)
            .iter()
            .map(|b| {
                let v: Value = serde_json::from_slice(b).unwrap();
                assert_eq!(
                    v.as_object().unwrap().keys().collect::<Vec<_>>(),
                    ["print"],
                    "a report carries print and nothing beside it, as a printer's does"
                );
                v["print"].as_object().unwrap().clone()
            })
            .collect()
    }

    fn act(&mut self, ms: u64, a: Action) {
        self.m
            .apply(&a, self.t + Duration::from_millis(ms), 1_700_000_000)
            .unwrap();
    }

    fn full(&mut self) -> Map<String, Value> {
        let v: Value = serde_json::from_slice(&self.m.full_frame()).unwrap();
        v["print"].as_object().unwrap().clone()
    }
}

fn print(file: &str, s: u64) -> Action {
    Action::Print {
        file: file.into(),
        duration_s: s,
        layers: Some(10),
    }
}

fn states(frames: &[Map<String, Value>]) -> Vec<String> {
    frames
        .iter()
        .filter_map(|f| {
            f.get("gcode_state")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .collect()
}

#[test]
fn x1_sends_the_full_object_every_time_with_start_time_and_task_ids() {
    let mut r = Rig::new(Style::X1);
    r.act(0, print("bracket_v3.gcode.3mf", 10));
    let f = r.at(0);
    assert_eq!(states(&f), ["PREPARE"]);
    assert_eq!(f[0]["subtask_name"], "bracket_v3");
    assert_eq!(f[0]["gcode_file"], "/data/Metadata/plate_1.gcode");
    assert_ne!(f[0]["task_id"], "0");
    assert!(f[0].contains_key("nozzle_temper"), "full object");
    let f = r.at(200);
    assert_eq!(states(&f), ["RUNNING"]);
    assert_ne!(f[0]["stg_cur"], 0, "preparation stages first");
    assert_ne!(f[0]["gcode_start_time"], "0");
    let f = r.at(400);
    assert_eq!(f[0]["stg_cur"], 0);
    let f = r.at(5_400);
    assert_eq!(f[0]["mc_percent"], 50);
    assert_eq!(f[0]["layer_num"], 5);
    assert_eq!(f[0]["mc_remaining_time"], 1, "minutes, rounded up");
    let f = r.at(10_400);
    assert_eq!(states(&f), ["FINISH"]);
    assert_eq!(f[0]["mc_percent"], 100);
    assert!(!r.m.is_active());
}

#[test]
fn p1_sends_deltas_after_a_full_pushall_answer() {
    let mut r = Rig::new(Style::P1);
    let full = r.full();
    assert_eq!(full["msg"], 0);
    assert_eq!(full["gcode_state"], "IDLE");
    assert!(
        !full.contains_key("gcode_start_time"),
        "P1 sends no start time"
    );
    r.act(0, print("36mm", 10));
    let f = r.at(0);
    assert_eq!(f[0]["msg"], 1);
    assert_eq!(f[0]["gcode_state"], "PREPARE");
    assert!(
        !f[0].contains_key("task_id"),
        "task ids stay \"0\", so they are not in the delta"
    );
    assert_eq!(r.m.task_id(), "0");
    assert_eq!(f[0]["gcode_file"], "36mm.gcode.3mf");
    assert!(
        !f[0].contains_key("nozzle_target_temper"),
        "unchanged keys are left out"
    );
    let f = r.at(200);
    assert_eq!(f[0].get("total_layer_num"), Some(&json!(10)), "{f:?}");
    let later: Vec<_> = (1..8).flat_map(|s| r.at(200 + s * 1000)).collect();
    assert!(
        later.iter().all(|f| !f.contains_key("total_layer_num")),
        "total layers are sent once"
    );
    assert!(
        later.iter().all(|f| !f.contains_key("gcode_state")),
        "state unchanged while printing"
    );
}

#[test]
fn cancel_repeats_the_error_then_fails_then_clears_it() {
    let mut r = Rig::new(Style::P1);
    r.full();
    r.act(0, print("a", 60));
    r.at(0);
    r.at(400);
    r.at(3_400);
    r.act(3_500, Action::Cancel);
    let f: Vec<_> = [3_500, 3_650, 3_800]
        .iter()
        .flat_map(|&t| r.at(t))
        .collect();
    let errors: Vec<_> = f.iter().filter_map(|x| x.get("print_error")).collect();
    assert_eq!(
        errors,
        [&json!(CANCEL_PRINT_ERROR), &json!(CANCEL_PRINT_ERROR)]
    );
    let failed = f
        .iter()
        .find(|x| x.get("gcode_state") == Some(&json!("FAILED")))
        .expect("FAILED");
    assert_eq!(failed["mc_percent"], 0);
    assert_eq!(failed["layer_num"], 0);
    let f = r.at(6_900);
    assert_eq!(f[0]["print_error"], 0);
}

#[test]
fn a_new_job_after_finish_shows_the_stale_finish_first() {
    let mut r = Rig::new(Style::X1);
    r.act(0, print("first", 1));
    r.at(0);
    r.at(400);
    let f = r.at(1_400);
    assert_eq!(states(&f), ["FINISH"], "{f:?}");
    r.act(2_000, print("second", 5));
    let f = r.at(2_000);
    assert_eq!(states(&f), ["FINISH"]);
    assert_eq!(
        f[0]["subtask_name"], "first",
        "old name while the hand-over lasts"
    );
    assert!(r.m.is_active());
    let f = r.at(2_300);
    assert_eq!(states(&f), ["PREPARE"]);
    assert_eq!(f[0]["subtask_name"], "second");
}

#[test]
fn pause_resume_and_prepare_failure() {
    let mut r = Rig::new(Style::X1);
    r.act(0, print("a", 10));
    r.at(0);
    assert!(
        r.m.apply(&Action::Pause, r.t, 0).is_err(),
        "cannot pause while preparing"
    );
    r.at(400);
    r.act(2_400, Action::Pause);
    let f = r.at(2_400);
    assert_eq!(states(&f), ["PAUSE"]);
    assert_eq!(f[0]["stg_cur"], 16);
    r.at(9_000);
    r.act(9_000, Action::Resume);
    let f = r.at(9_000);
    assert_eq!(states(&f), ["RUNNING"]);
    assert_eq!(f[0]["mc_percent"], 20, "paused time does not count");

    let mut r = Rig::new(Style::X1);
    r.act(0, print("b", 10));
    r.at(0);
    r.act(100, Action::Fail);
    let f = r.at(100);
    assert_eq!(states(&f), ["FAILED"]);
    assert_eq!(f[0]["print_error"], FAIL_PRINT_ERROR);
    assert_eq!(f[0]["hms"].as_array().unwrap().len(), 1);
}

#[test]
fn reboot_mid_job_zeroes_the_start_time_and_carries_on() {
    let mut r = Rig::new(Style::X1);
    r.act(0, print("a", 10));
    r.at(0);
    r.at(400);
    r.at(2_400);
    r.m.reboot_begin(r.t + Duration::from_millis(2_400));
    r.m.reboot_end(r.t + Duration::from_millis(5_400));
    let f = r.at(5_400);
    assert_eq!(f[0]["gcode_start_time"], "0");
    assert_eq!(f[0]["gcode_state"], "RUNNING");
    assert_eq!(f[0]["mc_percent"], 20, "the job clock stopped while off");
    assert_eq!(f[0]["sequence_id"], "1", "the counter restarts");
}

#[test]
fn busy_and_idle_refusals() {
    let mut r = Rig::new(Style::P1);
    assert!(matches!(
        r.m.apply(&Action::Cancel, r.t, 0),
        Err(SimError::Conflict(_))
    ));
    assert!(matches!(
        r.m.apply(&Action::Dismiss, r.t, 0),
        Err(SimError::Unsupported(_))
    ));
    r.act(0, print("a", 10));
    assert!(matches!(
        r.m.apply(&print("b", 10), r.t, 0),
        Err(SimError::Conflict(_))
    ));
}

#[test]
fn display_names_strip_folders_and_extensions() {
    assert_eq!(
        display_name("/cache/Clamshell Parts Box.gcode.3mf"),
        "Clamshell Parts Box"
    );
    assert_eq!(display_name("36mm.3mf"), "36mm");
    assert_eq!(display_name("plain"), "plain");
}
