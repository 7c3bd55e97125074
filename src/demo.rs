//! `printfarmd demo`: the daemon together with a simulated farm whose printers start
//! and finish prints by themselves, on a temporary database unless one is given. What a
//! newcomer runs first: jobs appear within a minute with nothing else to install.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;

use printfarmd::config::Config;
use printfarmd_sim::{SimFarm, Style};

/// Seconds between polls in the demo: short, so PrusaLink prints show up promptly.
const DEMO_MONITORING_INTERVAL_S: u64 = 2;

pub struct DemoOptions {
    /// Where the dashboard and API listen.
    pub bind: SocketAddr,
    /// Keep the history in this file instead of a temporary one.
    pub database: Option<PathBuf>,
    pub bambu: usize,
    pub prusa: usize,
    pub octoprint: usize,
    pub moonraker: usize,
    /// Where the simulator's control API listens (to start prints by hand).
    pub control: SocketAddr,
}

/// Runs the farm and the daemon until `shutdown` resolves. Must run inside an actix
/// System on a multi-thread tokio runtime, like `app::run`.
pub async fn run(
    opts: DemoOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let tmp = std::env::temp_dir().join(format!("printfarmd-demo-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)
        .with_context(|| format!("creating the demo's directory {}", tmp.display()))?;
    let result = run_in(&tmp, opts, shutdown).await;
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

async fn run_in(
    tmp: &std::path::Path,
    opts: DemoOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let x1 = opts.bambu.div_ceil(2);
    let farm = SimFarm::builder()
        .bambu(x1, Style::X1)
        .bambu(opts.bambu - x1, Style::P1)
        .prusalink(opts.prusa)
        .octoprint(opts.octoprint)
        .moonraker(opts.moonraker)
        .auto(true)
        .control_addr(Some(opts.control))
        .start()
        .await
        .context("starting the simulated farm")?;
    let db = opts
        .database
        .clone()
        .unwrap_or_else(|| tmp.join("printfarmd-demo.db"));
    let config_path = tmp.join("daemon.toml");
    let toml = format!(
        "# printfarmd demo: generated at start\n[server]\nbind = \"{}\"\n[database]\npath = {}\n[monitoring]\ninterval = {}\n[job_creation]\nauto_create = true\n\n{}",
        opts.bind,
        toml_string(&db.display().to_string()),
        DEMO_MONITORING_INTERVAL_S,
        farm.config_toml()
    );
    std::fs::write(&config_path, toml)
        .with_context(|| format!("writing {}", config_path.display()))?;
    let config = Config::load(Some(&config_path))?.config;
    let listener = tokio::net::TcpListener::bind(opts.bind)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {}; is printfarmd already running? Pick another address with --bind",
                opts.bind
            )
        })?;
    let addr = listener.local_addr()?;
    let control = farm
        .control_addr()
        .map(|a| format!("http://{a}"))
        .unwrap_or_default();
    println!(
        "\nprintfarmd demo: {} simulated printers that print by themselves.\n  Dashboard:   http://{addr}/\n  API:         http://{addr}/api/v1/jobs\n  Events:      ws://{addr}/ws\n  Simulator:   {control}/printers (POST {control}/printers/<id>/print to start one)\n  History in {}{}\nStop with Ctrl-C.\n",
        farm.printers().len(),
        db.display(),
        if opts.database.is_some() {
            ""
        } else {
            " (temporary; --database FILE keeps it)"
        },
    );
    let result = printfarmd::app::run(config, listener, shutdown).await;
    farm.shutdown().await;
    result
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}
