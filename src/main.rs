//! The `printfarmd` command: parses the command line, sets up logging, loads the
//! configuration and hands over to the library.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use printfarmd::config::Config;

/// See Cargo.toml: the fan-out's per-client message copies made glibc malloc a large
/// share of the daemon's CPU (BENCHMARKS.md, "Load harness").
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc v3's `mi_option_purge_delay` (`include/mimalloc.h`, the 16th option); the
/// Rust bindings name no constant for it.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Memory the daemon frees goes back to the system at once instead of after ~10 s:
/// the progress bursts and the clients' outboxes are short-lived, and kept around they
/// were ~10 % of the RSS at 2,000 printers (BENCHMARKS.md). Transparent huge pages are
/// off at build time (`no_thp`) for the same reason.
fn tune_allocator() {
    // SAFETY: sets one integer option; mimalloc reads it when it next purges.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
}

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
    /// The daemon with a built-in simulated farm that prints by itself: nothing else to
    /// install. Opens the dashboard on --bind (default 127.0.0.1:8000).
    Demo {
        /// Where the dashboard and API listen.
        #[arg(long, default_value = "127.0.0.1:8000")]
        bind: std::net::SocketAddr,
        /// Keep the history in this SQLite file (default: a temporary one).
        #[arg(long)]
        database: Option<PathBuf>,
        /// Simulated Bambu Lab printers (half X1-style, half P1-style).
        #[arg(long, default_value_t = 4)]
        bambu: usize,
        /// Simulated PrusaLink printers.
        #[arg(long, default_value_t = 2)]
        prusa: usize,
        /// Simulated OctoPrint servers.
        #[arg(long, default_value_t = 1)]
        octoprint: usize,
        /// Simulated Klipper printers behind Moonraker.
        #[arg(long, default_value_t = 1)]
        moonraker: usize,
        /// Where the simulator's control API listens.
        #[arg(long, default_value = "127.0.0.1:8001")]
        control: std::net::SocketAddr,
    },
    /// Run simulated printers (Bambu MQTT/TLS, PrusaLink HTTP) with a control API, until stopped.
    Simulate(printfarmd::sim::cli::SimulateArgs),
    /// Load test: simulator and daemon as separate processes, printers printing, WebSocket
    /// and REST clients; prints a JSON summary, fails if a job is lost or duplicated.
    Loadtest(printfarmd::loadtest::LoadtestArgs),
    /// Manage pinned printer certificates.
    Pin {
        #[command(subcommand)]
        action: PinCommand,
    },
}

#[derive(Subcommand)]
enum PinCommand {
    /// Forget a printer's pinned TLS certificate; the next one it presents is pinned.
    /// Use it after a firmware update or a board replacement changed the certificate.
    Reset {
        /// The printer's id, as in daemon.toml or GET /api/v1/printers.
        printer_id: String,
    },
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
    tune_allocator();
    let cli = Cli::parse();
    init_logging();
    let result = match cli.command.unwrap_or(Command::Run) {
        Command::Run => run(cli.config),
        Command::CheckConfig => check_config(cli.config),
        Command::Demo {
            bind,
            database,
            bambu,
            prusa,
            octoprint,
            moonraker,
            control,
        } => demo(printfarmd::demo::DemoOptions {
            bind,
            database,
            bambu,
            prusa,
            octoprint,
            moonraker,
            control,
        }),
        Command::Simulate(args) => printfarmd::sim::cli::run(args),
        Command::Loadtest(args) => printfarmd::loadtest::run(args),
        Command::Pin {
            action: PinCommand::Reset { printer_id },
        } => pin_reset(cli.config, &printer_id),
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

fn pin_reset(path: Option<PathBuf>, id: &str) -> anyhow::Result<()> {
    use printfarmd::store;
    let config = load(path)?;
    let db = &config.database.path;
    let conn =
        store::open_writer(db).with_context(|| format!("opening the database {}", db.display()))?;
    let known = config.printers.iter().any(|p| p.id.as_str() == id)
        || store::printers::list_api_printers(&conn)?
            .iter()
            .any(|p| p.id.as_str() == id);
    if !known {
        anyhow::bail!(
            "no printer {id:?} in {} or among the printers added through the API",
            db.display()
        );
    }
    store::printers::set_pin(&conn, id, None)?;
    println!(
        "{id}: certificate pin cleared; the certificate it presents next will be pinned.\n\
         If printfarmd is running, restart it (systemctl restart printfarmd) or call\n\
         POST /api/v1/printers/{id}/certificate/reset so it reconnects now."
    );
    Ok(())
}

fn runtime<F: std::future::Future>(f: F) -> F::Output {
    actix_rt::System::with_tokio_rt(|| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("building the tokio runtime")
    })
    .block_on(f)
}

fn demo(opts: printfarmd::demo::DemoOptions) -> anyhow::Result<()> {
    runtime(printfarmd::demo::run(
        opts,
        printfarmd::app::shutdown_signal(),
    ))
}

fn run(path: Option<PathBuf>) -> anyhow::Result<()> {
    let config = load(path)?;
    let bind = config.bind_addr().map_err(anyhow::Error::msg)?;
    let std_listener = std::net::TcpListener::bind(bind).with_context(|| {
        format!("cannot listen on {bind}; is another printfarmd running? Set server.bind or PRINTFARMD_SERVER__BIND")
    })?;
    std_listener.set_nonblocking(true)?;
    runtime(async move {
        let listener = tokio::net::TcpListener::from_std(std_listener)?;
        printfarmd::app::run(config, listener, printfarmd::app::shutdown_signal()).await
    })
}
