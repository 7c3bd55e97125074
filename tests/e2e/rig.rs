//! A simulated farm in the test process and the daemon pointed at it.

use std::time::Duration;

use printfarmd_sim::{Action, SimError, SimFarm, SimFarmBuilder, SimStatus, Style};
use serde_json::Value;

use crate::harness::Daemon;

/// Longest any expected state may take to show up. A failure guard, not a speed claim:
/// the machine running the tests may be loaded.
pub const WAIT: Duration = Duration::from_secs(30);

/// Polls faster than any printer reports, so a waited-for state is seen promptly.
pub const DAEMON_EXTRA: &str = "[monitoring]\ninterval = 1\n";

pub struct Rig {
    pub sim: SimFarm,
    pub d: Daemon,
}

/// A farm builder with short phases, so a print's lifecycle takes seconds.
pub fn farm() -> SimFarmBuilder {
    SimFarm::builder()
        .prepare_ms(400)
        .stale_finish_ms(1500)
        .reboot_ms(800)
        .seed(7)
}

pub fn x1(n: usize) -> SimFarmBuilder {
    farm().bambu(n, Style::X1)
}

pub fn p1(n: usize) -> SimFarmBuilder {
    farm().bambu(n, Style::P1)
}

pub fn prusa(n: usize) -> SimFarmBuilder {
    farm().prusalink(n)
}

pub fn print(file: &str, duration_s: u64) -> Action {
    Action::Print {
        file: file.into(),
        duration_s,
        layers: None,
    }
}

impl Rig {
    pub async fn start(b: SimFarmBuilder) -> Rig {
        Self::start_with(b, DAEMON_EXTRA).await
    }

    pub async fn start_with(b: SimFarmBuilder, extra: &str) -> Rig {
        let sim = b.start().await.expect("simulated farm starts");
        let d = start_daemon(extra, sim.config_toml()).await;
        let r = Rig { sim, d };
        // Every printer connected and reported once, so a print started from here on
        // is seen starting (not discovered on startup).
        for p in r.sim.printers() {
            r.wait_printer(&p.id, "connected and reporting", |v| {
                v["connection"] == "connected" && v["state"] != "unknown"
            })
            .await;
        }
        r
    }

    pub async fn act(&self, id: &str, a: Action) {
        self.sim
            .control(id, a.clone())
            .await
            .unwrap_or_else(|e| panic!("simulator refused {a:?} on {id}: {e}"));
    }

    /// Like `act`, for an action the printer takes only in some phases (pause once the
    /// preparation stages are over): retried while the printer answers "not now".
    pub async fn act_when_ready(&self, id: &str, a: Action) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match self.sim.control(id, a.clone()).await {
                Ok(()) => return,
                Err(SimError::Conflict(e)) if tokio::time::Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("simulator refused {a:?} on {id}: {e}"),
            }
        }
    }

    /// `GET /api/v1/jobs?{query}` → the jobs.
    pub async fn jobs(&self, query: &str) -> Vec<Value> {
        let (code, body) = self.d.get(&format!("/api/v1/jobs?{query}")).await;
        assert_eq!(code, 200, "{body}");
        body["jobs"].as_array().cloned().unwrap_or_default()
    }

    /// Polls the job list until `ok` holds; panics with what was last seen after WAIT.
    pub async fn wait_jobs(
        &self,
        query: &str,
        what: &str,
        ok: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        eventually(
            what,
            async || {
                let jobs = self.jobs(query).await;
                if ok(&jobs) { Ok(jobs) } else { Err(jobs) }
            },
            |jobs| {
                format!(
                    "jobs?{query} = {}\ndaemon log tail:\n{}",
                    serde_json::to_string_pretty(&jobs).unwrap(),
                    tail(&self.d.log(), 40)
                )
            },
        )
        .await
    }

    /// Polls `GET /api/v1/printers/{id}` until `ok` holds.
    pub async fn wait_printer(&self, id: &str, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
        wait_printer_of(&self.d, id, what, ok).await
    }

    /// Polls `GET /api/v1/health` until `ok` holds.
    pub async fn wait_health(&self, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
        eventually(
            what,
            async || {
                let (code, h) = self.d.get("/api/v1/health").await;
                assert_eq!(code, 200, "{h}");
                if ok(&h) { Ok(h) } else { Err(h) }
            },
            |h| format!("health = {h}"),
        )
        .await
    }

    /// Waits until the simulated printer's snapshot satisfies `ok`.
    pub async fn wait_sim_status(&self, id: &str, what: &str, ok: impl Fn(&SimStatus) -> bool) {
        eventually(
            what,
            async || {
                let s = self.sim.status(id).unwrap();
                if ok(&s) { Ok(()) } else { Err(s) }
            },
            |s| format!("simulator {id}: {s:?}"),
        )
        .await
    }

    /// Waits until the simulated printer reports `state` (its own protocol's word).
    pub async fn wait_sim(&self, id: &str, state: &str) {
        self.wait_sim_status(id, state, |s| s.state == state).await
    }

    /// Stops the daemon (SIGTERM, or SIGKILL when `kill9`) and starts it again on the
    /// same config and database.
    pub async fn restart_daemon(self, kill9: bool) -> Rig {
        let Rig { sim, mut d } = self;
        let d = tokio::task::spawn_blocking(move || {
            if kill9 {
                d.kill9();
                let (dir, cfg) = (d.dir.clone(), d.config_path.clone());
                drop(d);
                Daemon::spawn(dir, cfg, &[])
            } else {
                d.restart()
            }
        })
        .await
        .unwrap();
        Rig { sim, d }
    }
}

/// Polls `GET /api/v1/printers/{id}` of `d` until `ok` holds.
pub async fn wait_printer_of(
    d: &Daemon,
    id: &str,
    what: &str,
    ok: impl Fn(&Value) -> bool,
) -> Value {
    eventually(
        what,
        async || {
            let (code, p) = d.get(&format!("/api/v1/printers/{id}")).await;
            assert_eq!(code, 200, "{p}");
            if ok(&p) { Ok(p) } else { Err(p) }
        },
        |p| format!("printer = {p}\ndaemon log tail:\n{}", tail(&d.log(), 40)),
    )
    .await
}

pub async fn start_daemon(extra: &str, printers: String) -> Daemon {
    let extra = extra.to_owned();
    tokio::task::spawn_blocking(move || Daemon::start_with(&extra, &printers))
        .await
        .unwrap()
}

/// How often a waited-for state is checked.
const POLL: Duration = Duration::from_millis(100);

/// Calls `probe` every POLL until it answers `Ok`; after WAIT panics with `what` and
/// `describe` of the last thing it saw.
pub async fn eventually<T, V>(
    what: &str,
    mut probe: impl AsyncFnMut() -> Result<T, V>,
    describe: impl FnOnce(V) -> String,
) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match probe().await {
            Ok(t) => return t,
            Err(last) if tokio::time::Instant::now() > deadline => {
                panic!("waited {WAIT:?} for {what}; {}", describe(last))
            }
            Err(_) => tokio::time::sleep(POLL).await,
        }
    }
}

pub fn tail(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The job statuses in the list, oldest first.
pub fn statuses(jobs: &[Value]) -> Vec<String> {
    jobs.iter()
        .rev()
        .map(|j| j["status"].as_str().unwrap().to_owned())
        .collect()
}
