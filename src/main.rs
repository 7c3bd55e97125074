//! The `printfarmd` command: parses the command line, sets up logging, loads the
//! configuration and hands over to the library.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use printfarmd::config::Config;

#[derive(Parser)]
#[command(
    name = "printfarmd",
    version,
    about = "Watches every 3D printer on a farm and keeps a job history you can trust."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Config file (default: $PRINTFARMD_CONFIG, else ./daemon.toml if present).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon (the default).
    Run,
    /// Validate the configuration and exit.
    CheckConfig,
    /// Run simulated printers (Bambu MQTT/TLS, PrusaLink HTTP) with a control API, until stopped.
    Simulate(printfarmd::sim::cli::SimulateArgs),
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PRINTFARMD_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// Our own events at info; dependencies that log routine events at ERROR (a client
/// hanging up mid-request, TLS peers) quieted by target.
const DEFAULT_LOG_FILTER: &str = "info,warp::server=off,hyper=warn,rustls=warn,rumqttc=warn";

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let result = match cli.command.unwrap_or(Command::Run) {
        Command::Run => run(cli.config),
        Command::CheckConfig => check_config(cli.config),
        Command::Simulate(args) => printfarmd::sim::cli::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("printfarmd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load(path: Option<PathBuf>) -> anyhow::Result<Config> {
    let loaded = Config::load(path.as_deref())?;
    match &loaded.source {
        Some(p) => tracing::info!(file = %p.display(), "configuration loaded"),
        None => tracing::info!("no config file; using defaults and environment"),
    }
    Ok(loaded.config)
}

fn check_config(path: Option<PathBuf>) -> anyhow::Result<()> {
    let loaded = Config::load(path.as_deref())?;
    let src = loaded
        .source
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "defaults and environment".into());
    println!(
        "{src}: configuration is valid ({} printers)",
        loaded.config.printers.len()
    );
    Ok(())
}

fn run(path: Option<PathBuf>) -> anyhow::Result<()> {
    let config = load(path)?;
    let bind = config.bind_addr().map_err(anyhow::Error::msg)?;
    let std_listener = std::net::TcpListener::bind(bind).with_context(|| {
        format!("cannot listen on {bind}; is another printfarmd running? Set server.bind or PRINTFARMD_SERVER__BIND")
    })?;
    std_listener.set_nonblocking(true)?;
    actix_rt::System::with_tokio_rt(|| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("building the tokio runtime")
    })
    .block_on(async move {
        let listener = tokio::net::TcpListener::from_std(std_listener)?;
        printfarmd::app::run(config, listener, printfarmd::app::shutdown_signal()).await
    })
}
