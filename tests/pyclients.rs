//! Third-party clients against the simulator, unmodified (issue 22): `bambulabs_api`
//! (PyPI, pinned in `.ci/run`) connects over TLS with the access code, receives reports,
//! sees a print start and finish (driven through the control API) and pauses and resumes
//! it with its own MQTT commands. The simulator is the stand-in for real printers: if a
//! real client cannot use it as it is, the simulator lies somewhere.
//!
//! The client lives in a venv (`.ci/run` makes it: `$HOME/.cache/printfarmd-pyclients`,
//! or `PRINTFARMD_PYCLIENTS` pointing at another venv). Without it the test is skipped
//! with the command to make it, except under CI (`CI=true`), where it fails.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use printfarmd_sim::{SimFarm, Style};

/// How long the client script may run (its own waits are 30 s each at most).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

fn venv_python() -> Option<PathBuf> {
    let venv = std::env::var_os("PRINTFARMD_PYCLIENTS")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/printfarmd-pyclients"))
        })?;
    let py = venv.join("bin/python");
    let ok = Command::new(&py)
        .args(["-c", "import bambulabs_api"])
        .output()
        .is_ok_and(|o| o.status.success());
    ok.then_some(py)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bambulabs_api_follows_a_print_on_the_simulator_unmodified() {
    let Some(python) = venv_python() else {
        let how = "python3 -m venv ~/.cache/printfarmd-pyclients && ~/.cache/printfarmd-pyclients/bin/pip install bambulabs_api==2.6.6 (or run .ci/run)";
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("the bambulabs_api venv is missing under CI; make it with: {how}");
        }
        eprintln!("SKIPPED: no venv with bambulabs_api; make it with: {how}");
        return;
    };
    let farm = SimFarm::builder()
        .bambu(1, Style::X1)
        .prepare_ms(400)
        .stale_finish_ms(400)
        .seed(11)
        .start()
        .await
        .expect("simulated farm starts");
    let p = farm.printers()[0].clone();
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/pyclients/bambulabs_api_check.py");
    let args = [
        script.display().to_string(),
        "127.0.0.1".to_owned(),
        farm.broker_addr().port().to_string(),
        p.serial.clone().unwrap(),
        p.access_code.clone().unwrap(),
        format!("http://{}", farm.control_addr().unwrap()),
        p.id.clone(),
    ];
    let run = tokio::process::Command::new(&python)
        .args(&args)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(SCRIPT_TIMEOUT, run)
        .await
        .expect("the client script finished in time")
        .expect("python runs");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success() && stdout.starts_with("ok "),
        "bambulabs_api failed against the simulator ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    eprintln!("{}", stdout.trim());
    // Its own pause and resume reached the printer.
    let s = farm.status(&p.id).unwrap();
    assert_eq!(s.state, "FINISH");
    assert_eq!(s.jobs_started, 1);
    farm.shutdown().await;
}
