//! `printfarmd simulate`: the simulated farm alone, until Ctrl-C / SIGTERM, with its control
//! API. Prints the control URL, the broker address and where to get the config block.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{ArgAction, Args, ValueEnum};

use super::{SimFarm, Style};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StyleArg {
    /// X1-class: full reports, start times, task ids.
    X1,
    /// P1/A1-class: delta reports, task ids "0".
    P1,
    /// Half X1, half P1.
    Mixed,
}

/// Arguments of `printfarmd simulate`.
#[derive(Debug, Clone, Args)]
pub struct SimulateArgs {
    /// Number of Bambu Lab printers (all behind one MQTT/TLS broker).
    #[arg(long, default_value_t = 2)]
    pub bambu: usize,
    /// Number of PrusaLink printers (one HTTP server each).
    #[arg(long, default_value_t = 1)]
    pub prusa: usize,
    /// Number of OctoPrint servers (one HTTP server with the push socket each).
    #[arg(long, default_value_t = 0)]
    pub octoprint: usize,
    /// Number of Klipper printers behind Moonraker (one JSON-RPC WebSocket server each).
    #[arg(long, default_value_t = 0)]
    pub moonraker: usize,
    /// How the Bambu printers report.
    #[arg(long, value_enum, default_value_t = StyleArg::Mixed)]
    pub style: StyleArg,
    /// With `--style mixed`: how many of the Bambu printers are X1-style (default: half,
    /// rounded up); the rest are P1-style.
    #[arg(long)]
    pub x1: Option<usize>,
    /// Address of the shared Bambu MQTT broker.
    #[arg(long, default_value = "127.0.0.1:8883")]
    pub broker: SocketAddr,
    /// Address of the HTTP control API.
    #[arg(long, default_value = "127.0.0.1:8990")]
    pub control: SocketAddr,
    /// First PrusaLink port (printer n gets base + n - 1); 0 picks free ports.
    #[arg(long, default_value_t = 0)]
    pub prusa_base_port: u16,
    /// Printers start and end prints by themselves.
    #[arg(long, default_value_t = true, action = ArgAction::Set)]
    pub auto: bool,
    /// Bambu preparation time before printing, in milliseconds.
    #[arg(long, default_value_t = 3000)]
    pub prepare_ms: u64,
    /// How long a Bambu printer keeps its old FINISH after accepting a job, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    pub stale_finish_ms: u64,
    /// First PrusaLink job id.
    #[arg(long, default_value_t = 1)]
    pub prusa_first_job_id: u64,
    /// Replay a recording as one more Bambu printer: ID=FILE (JSON lines). Repeatable.
    #[arg(long, value_name = "ID=FILE")]
    pub replay: Vec<String>,
    /// Seed for serials, access codes, passwords and the auto driver.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Also write the `[[printers]]` TOML block to this file.
    #[arg(long, value_name = "FILE")]
    pub write_config: Option<PathBuf>,
}

/// Runs the farm on its own multi-thread runtime until Ctrl-C or SIGTERM.
pub fn run(args: SimulateArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("building the tokio runtime")?;
    runtime.block_on(async move {
        let mut builder = SimFarm::builder()
            .broker_addr(args.broker)
            .control_addr(Some(args.control))
            .prusa_base_port(args.prusa_base_port)
            .auto(args.auto)
            .prepare_ms(args.prepare_ms)
            .stale_finish_ms(args.stale_finish_ms)
            .prusa_first_job_id(args.prusa_first_job_id)
            .prusalink(args.prusa)
            .octoprint(args.octoprint)
            .moonraker(args.moonraker);
        builder = match args.style {
            StyleArg::X1 => builder.bambu(args.bambu, Style::X1),
            StyleArg::P1 => builder.bambu(args.bambu, Style::P1),
            StyleArg::Mixed => {
                let x1 = args.x1.unwrap_or(args.bambu.div_ceil(2)).min(args.bambu);
                builder.bambu(x1, Style::X1).bambu(args.bambu - x1, Style::P1)
            }
        };
        for r in &args.replay {
            let (id, file) = r.split_once('=').with_context(|| format!("--replay {r:?}: expected ID=FILE"))?;
            builder = builder.replay(id, file);
        }
        if let Some(seed) = args.seed {
            builder = builder.seed(seed);
        }
        let farm = builder.start().await?;
        if let Some(path) = &args.write_config {
            std::fs::write(path, farm.config_toml()).with_context(|| format!("writing {}", path.display()))?;
        }
        let control = farm.control_addr().map(|a| format!("http://{a}")).unwrap_or_default();
        println!("printfarmd simulate: {} printers", farm.printers().len());
        println!("  control API:  {control}  (GET /printers, GET /config, POST /printers/{{id}}/{{action}})");
        println!("  Bambu broker: mqtts://{}  (user bblp, per-printer access codes: GET /printers)", farm.broker_addr());
        println!("  config block: curl -s {control}/config");
        if let Some(path) = &args.write_config {
            println!("  config written to {}", path.display());
        }
        shutdown_signal().await;
        println!("printfarmd simulate: stopping");
        farm.shutdown().await;
        Ok(())
    })
}

/// Resolves on Ctrl-C or SIGTERM: how `printfarmd simulate` is stopped.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::terminate(),
        ) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the simulator");
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
