//! The built-in dashboard, tested two ways against the real binary:
//!
//! - over HTTP: the page and its assets come with the right content types, the strict
//!   Content-Security-Policy and working ETags;
//! - in a real browser: `tests/browser/dashboard.mjs` drives headless Chromium (Debian's
//!   `/usr/bin/chromium` through playwright-core) against a daemon started here, and
//!   must exit 0.
//!
//! The daemon watches a simulated farm started in this process ([`SimFarm`]: an X1-style
//! and a P1-style Bambu printer on the simulator's MQTT/TLS broker and a PrusaLink
//! printer), plus a printer whose access code is wrong (the sim broker refuses it) and one
//! nobody answers for (loopback port 9), so every card state comes from the real chain.
//!
//! The browser script talks to this file through control lines on its stdout, each
//! answered with one line on its stdin:
//! - `@@control stop` / `@@control start`: stop or start the daemon (to see the dashboard
//!   notice and recover); answered `stopped` / `started <base-url>`;
//! - `@@control sim <printer> <action> [json]`: make a simulated printer do something, as
//!   `POST /printers/{id}/{action}` on the simulator's control API would (e.g. `sim
//!   bambu_1 print {"file":"benchy.3mf","duration_s":8}`); answered `ok` or `error <why>`.
//!
//! Everything else it prints is passed through.
//!
//! Without Chromium or `tests/browser/node_modules` the browser test fails and says how to
//! install them, unless `PRINTFARMD_SKIP_BROWSER=1`. `.ci/run` installs both.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use printfarmd_sim::{Action, SimFarm, Style};

#[path = "daemon/harness.rs"]
#[allow(dead_code)]
mod harness;

/// How long a daemon may take to print its listening line (debug build, loaded 2 cores).
/// A bound on the whole browser run; it normally takes well under a minute.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(240);
const CHROMIUM: &str = "/usr/bin/chromium";

/// Printers that are not simulated: one nobody answers for (nothing listens on port 9 of
/// loopback), shown offline.
const OFFLINE_PRINTER: &str = r#"
[[printers]]
id = "prusa_offline"
name = "Prusa MK4 (unplugged)"
type = "prusalink"
host = "127.0.0.1"
port = 9
username = "maker"
password = "secret-pw-123"
"#;

/// The simulated farm the daemon watches, on its own runtime so it keeps running while
/// the test thread waits for the browser script.
struct Farm {
    rt: tokio::runtime::Runtime,
    sim: SimFarm,
}

impl Farm {
    /// `bambu_1` (X1 style), `bambu_2` (P1 style), `prusa_1`; short phases so a print's
    /// lifecycle takes seconds; no prints of their own.
    fn start() -> Farm {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let sim = rt
            .block_on(
                SimFarm::builder()
                    .bambu(1, Style::X1)
                    .bambu(1, Style::P1)
                    .prusalink(1)
                    .prepare_ms(300)
                    .stale_finish_ms(300)
                    .reboot_ms(2500)
                    .start(),
            )
            .expect("the simulated farm starts");
        Farm { rt, sim }
    }

    /// A farm of `n` printers of every kind (3 Bambu X1-style : 3 Bambu P1-style : 2
    /// PrusaLink : 1 OctoPrint : 1 Moonraker), idle until the browser script makes one
    /// print.
    fn start_large(n: usize) -> Farm {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let tenth = n / 10;
        let sim = rt
            .block_on(
                SimFarm::builder()
                    .bambu(3 * tenth, Style::X1)
                    .bambu(3 * tenth, Style::P1)
                    .prusalink(n - 8 * tenth)
                    .octoprint(tenth)
                    .moonraker(tenth)
                    .prepare_ms(300)
                    .stale_finish_ms(300)
                    .start(),
            )
            .expect("the simulated farm starts");
        Farm { rt, sim }
    }

    /// The `[[printers]]` block for the daemon: the farm as it describes itself, a
    /// printer on its broker with a wrong access code (and a serial of its own: one
    /// printer configured twice is refused), and the offline one.
    fn printers_toml(&self) -> String {
        let p1 = self.sim.printer("bambu_2").expect("bambu_2");
        format!(
            "{}\n[[printers]]\nid = \"bambu_badcode\"\nname = \"Bambu A1 (wrong code)\"\ntype = \"bambu\"\nhost = {:?}\nport = {}\nserial = {:?}\naccess_code = \"00000000\"\n{OFFLINE_PRINTER}",
            self.sim.config_toml(),
            p1.host,
            p1.port,
            // Not bambu_2's serial: the same serial twice is one printer, refused.
            p1.serial
                .map(|_| "01P00Z000000099")
                .expect("a Bambu printer has a serial"),
        )
    }

    /// `<printer> <action> [json]` from the browser script.
    fn control(&self, request: &str) -> Result<(), String> {
        let mut parts = request.splitn(3, ' ');
        let (Some(id), Some(action)) = (parts.next(), parts.next()) else {
            return Err(format!(
                "expected `<printer> <action> [json]`, got {request:?}"
            ));
        };
        let body = parts.next().unwrap_or("");
        let action = Action::parse(action, body.as_bytes()).map_err(|e| e.to_string())?;
        self.rt
            .block_on(self.sim.control(id, action))
            .map_err(|e| e.to_string())
    }
}

impl Drop for Farm {
    fn drop(&mut self) {
        self.rt.block_on(self.sim.shutdown());
    }
}

/// The real daemon in its own process with a fresh directory; restartable on the same
/// address so a browser page can reconnect to it.
struct Daemon {
    dir: tempfile::TempDir,
    addr: String,
    extra: String,
    printers: String,
    child: Option<Child>,
    log: Arc<Mutex<String>>,
}

impl Daemon {
    /// A daemon with `printers` (`[[printers]]` entries) and `extra` TOML in its config.
    fn start(extra: &str, printers: &str) -> Daemon {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut d = Daemon {
            dir,
            addr: "127.0.0.1:0".into(),
            extra: extra.to_owned(),
            printers: printers.to_owned(),
            child: None,
            log: Arc::default(),
        };
        d.spawn();
        d
    }

    fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Writes the config for the current address (port 0 the first time, then the port
    /// the first run got) and starts the binary.
    fn spawn(&mut self) {
        let config = self.dir.path().join("daemon.toml");
        let db = self.dir.path().join("printfarmd.db");
        std::fs::write(
            &config,
            format!(
                "[server]\nbind = \"{}\"\n[database]\npath = {db:?}\n{}\n{}\n",
                self.addr, self.extra, self.printers
            ),
        )
        .unwrap();
        let (child, addr) = harness::spawn_binary(self.dir.path(), &config, &[], self.log.clone());
        self.addr = addr;
        self.child = Some(child);
    }

    /// SIGTERM and wait, as systemd would stop it.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        panic!("printfarmd did not stop within 20 s of SIGTERM");
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[tokio::test]
async fn the_dashboard_is_served_with_its_types_policy_and_etags() {
    let d = Daemon::start("", OFFLINE_PRINTER);
    let http = reqwest::Client::new();
    let page = http.get(d.base()).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let h = page.headers().clone();
    assert_eq!(h["content-type"], "text/html; charset=utf-8");
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(h["cache-control"], "no-cache");
    assert_eq!(h["x-content-type-options"], "nosniff");
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"<script type="module" src="/assets/app.js">"#));

    for (file, ty) in [
        ("app.js", "text/javascript; charset=utf-8"),
        ("jobs.js", "text/javascript; charset=utf-8"),
        ("style.css", "text/css; charset=utf-8"),
        ("icon.svg", "image/svg+xml"),
    ] {
        let r = http
            .get(format!("{}/assets/{file}", d.base()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{file}");
        assert_eq!(r.headers()["content-type"], ty, "{file}");
        let tag = r.headers()["etag"].to_str().unwrap().to_owned();
        let again = http
            .get(format!("{}/assets/{file}", d.base()))
            .header("if-none-match", &tag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304, "{file}");
    }

    for path in ["/assets/nope.js", "/assets/", "/assets/..%2fmod.rs"] {
        let r = http
            .get(format!("{}{path}", d.base()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{path}");
    }
    // The API keeps its own no-store.
    let r = http
        .get(format!("{}/api/v1/settings", d.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["cache-control"], "no-store");
}

/// Why the browser test cannot run here, if it cannot.
fn browser_missing(browser_dir: &Path) -> Option<String> {
    let chromium = chromium_path();
    if !chromium.exists() {
        return Some(format!(
            "{} not found: install it with `apt-get install -y chromium` (or set PRINTFARMD_CHROMIUM)",
            chromium.display()
        ));
    }
    if Command::new("node").arg("--version").output().is_err() {
        return Some("node not found: install it with `apt-get install -y nodejs npm`".into());
    }
    if !browser_dir.join("node_modules/playwright-core").exists() {
        return Some(format!(
            "{}/node_modules is missing: run `PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --prefix {}`",
            browser_dir.display(),
            browser_dir.display()
        ));
    }
    None
}

fn chromium_path() -> PathBuf {
    std::env::var_os("PRINTFARMD_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(CHROMIUM))
}

/// The key the second browser run's daemon requires.
const TEST_API_KEY: &str = "dashboard-test-key-0123456789";

#[test]
fn the_dashboard_works_in_a_real_browser() {
    let browser_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    if let Some(why) = browser_missing(&browser_dir) {
        if std::env::var("PRINTFARMD_SKIP_BROWSER").as_deref() == Ok("1") {
            eprintln!("skipping the browser test (PRINTFARMD_SKIP_BROWSER=1): {why}");
            return;
        }
        panic!("the browser test cannot run: {why}. Set PRINTFARMD_SKIP_BROWSER=1 to skip it.");
    }
    // One after the other, not as two tests: two Chromiums at once on a 2-core machine
    // only make both slower.
    let farm = Farm::start();
    // Polled printers are looked at every second, so a print shows within a few.
    let mut daemon = Daemon::start("[monitoring]\ninterval = 1\n", &farm.printers_toml());
    run_browser_script(&browser_dir, "dashboard.mjs", &mut daemon, Some(&farm), &[]);
    drop(daemon);
    run_browser_script(
        &browser_dir,
        "dashboard.mjs",
        &mut Daemon::start(
            &format!("[auth]\nenabled = true\napi_keys = [\"{TEST_API_KEY}\"]\n"),
            OFFLINE_PRINTER,
        ),
        None,
        &[("PRINTFARMD_API_KEY", TEST_API_KEY)],
    );
}

/// How many printers the farm-scale test simulates.
const FARM_PRINTERS: usize = 500;

/// The dashboard at farm scale: the daemon watching 500 simulated printers of every kind
/// (`tests/browser/farm.mjs`): the printer table lists, sorts, filters and counts them and
/// follows a print through the WebSocket, the statistics chart has a bar per printer with
/// jobs, the export button downloads the filtered jobs as CSV. It prints the table's first
/// paint and one full update cycle (timings are reported, never asserted) and, with
/// `PRINTFARMD_SCREENSHOTS`, saves `docs/screenshots/*.png`.
#[test]
fn the_dashboard_shows_a_farm_of_500_printers() {
    let browser_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    if let Some(why) = browser_missing(&browser_dir) {
        if std::env::var("PRINTFARMD_SKIP_BROWSER").as_deref() == Ok("1") {
            eprintln!("skipping the browser test (PRINTFARMD_SKIP_BROWSER=1): {why}");
            return;
        }
        panic!("the browser test cannot run: {why}. Set PRINTFARMD_SKIP_BROWSER=1 to skip it.");
    }
    let farm = Farm::start_large(FARM_PRINTERS);
    assert_eq!(farm.sim.printers().len(), FARM_PRINTERS);
    // Polled printers every 2 s: 200 HTTP printers make 100 requests a second.
    let mut daemon = Daemon::start("[monitoring]\ninterval = 2\n", &farm.sim.config_toml());
    run_browser_script(&browser_dir, "farm.mjs", &mut daemon, Some(&farm), &[]);
}

/// Runs `script` (in tests/browser) against `daemon`, serving its control requests, and
/// asserts it exits 0.
fn run_browser_script(
    browser_dir: &Path,
    script: &str,
    daemon: &mut Daemon,
    farm: Option<&Farm>,
    env: &[(&str, &str)],
) {
    let mut node = Command::new("node");
    node.arg(browser_dir.join(script))
        .arg(daemon.base())
        // Only the scenarios whose name contains this (for working on one).
        .arg(std::env::var("PRINTFARMD_BROWSER_ONLY").unwrap_or_default())
        .env("PRINTFARMD_CHROMIUM", chromium_path())
        .env_remove("PRINTFARMD_API_KEY")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in env {
        node.env(k, v);
    }
    let mut node = node.spawn().expect("spawn node");
    let mut to_node = node.stdin.take().unwrap();
    let from_node = node.stdout.take().unwrap();
    // Lines from the script: control requests are acted on, the rest is its report.
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(from_node).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + BROWSER_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => match line.strip_prefix("@@control ") {
                Some("stop") => {
                    daemon.stop();
                    writeln!(to_node, "stopped").unwrap();
                }
                Some("start") => {
                    daemon.spawn();
                    writeln!(to_node, "started {}", daemon.base()).unwrap();
                }
                Some(sim) if sim.starts_with("sim ") => {
                    let farm = farm.expect("this run has no simulated printers");
                    let answer = match farm.control(&sim["sim ".len()..]) {
                        Ok(()) => "ok".to_owned(),
                        Err(e) => format!("error {e}"),
                    };
                    writeln!(to_node, "{answer}").unwrap();
                }
                Some(other) => panic!("unknown control request from the browser script: {other}"),
                None => println!("{line}"),
            },
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = node.kill();
                panic!(
                    "the browser script did not finish within {BROWSER_TIMEOUT:?}; daemon log:\n{}",
                    daemon.log()
                );
            }
        }
    }
    let status = node.wait().expect("wait for node");
    assert!(
        status.success(),
        "the browser script failed ({status}); see its output above. Daemon log:\n{}",
        daemon.log()
    );
}
