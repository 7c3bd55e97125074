//! The `printfarmd` command: parses the command line, sets up logging, loads the
//! configuration and hands over to the library.

mod demo;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use printfarmd::config::{Config, LogFormat};

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
    Simulate(printfarmd_sim::cli::SimulateArgs),
    /// Load test: simulator and daemon as separate processes, printers printing, WebSocket
    /// and REST clients; prints a JSON summary, fails if a job is lost or duplicated.
    Loadtest(printfarmd_loadtest::LoadtestArgs),
    /// Write a consistent copy of the database to FILE (SQLite's online backup API),
    /// also while the daemon runs. Restore: stop the daemon, copy FILE over the
    /// database file, start it.
    Backup {
        /// Where to write the copy; must not exist yet.
        file: PathBuf,
    },
    /// Write the job history as CSV or NDJSON (the columns and shape of GET
    /// /api/v1/jobs/export), read straight from the database file: read-only, also while
    /// the daemon runs. Filters as GET /api/v1/jobs; every matching job, newest first.
    Export {
        /// csv (a header row, RFC 4180 quoting) or ndjson (one job per line).
        #[arg(long, default_value = "csv")]
        format: String,
        /// Write here instead of to standard output (replaced if it exists).
        #[arg(long)]
        output: Option<PathBuf>,
        #[arg(long)]
        printer_id: Option<String>,
        /// Comma list: completed,failed,…
        #[arg(long)]
        status: Option<String>,
        /// true or false.
        #[arg(long)]
        auto_created: Option<String>,
        /// Jobs created at or after this RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
        /// Jobs created before this RFC 3339 time.
        #[arg(long)]
        until: Option<String>,
        /// Filename or job name contains this.
        #[arg(long)]
        q: Option<String>,
        /// end_reason is exactly this; * for any.
        #[arg(long)]
        end_reason: Option<String>,
    },
    /// Manage pinned printer certificates.
    Pin {
        #[command(subcommand)]
        action: PinCommand,
    },
    /// Manage API keys (roles: viewer, operator, admin). Works while the daemon runs.
    Key {
        #[command(subcommand)]
        action: KeyCommand,
    },
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Make a key and print it (the only time it is shown).
    Add {
        /// viewer (read), operator (+ jobs and print control) or admin (everything).
        #[arg(long)]
        role: String,
        /// A label: who or what uses the key ("wallboard").
        #[arg(long)]
        name: String,
        /// When it stops working: a span (90d, 12h) or an RFC 3339 time.
        #[arg(long)]
        expires: Option<String>,
    },
    /// List the keys (never their secrets).
    List,
    /// Revoke a key by id; requests with it are refused at once.
    Revoke { id: String },
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

/// The log format: `PRINTFARMD_LOG_FORMAT`, else `[log] format` of the configuration
/// for the commands that read one (a configuration that does not load is reported by
/// the command itself, after logging is up).
fn log_format(cli: &Cli) -> Result<LogFormat, String> {
    let reads_config = matches!(
        cli.command,
        None | Some(
            Command::Run
                | Command::CheckConfig
                | Command::Backup { .. }
                | Command::Pin { .. }
                | Command::Export { .. }
        )
    );
    let configured = if reads_config {
        Config::load(cli.config.as_deref())
            .map(|l| l.config.log.format)
            .unwrap_or_default()
    } else {
        LogFormat::default()
    };
    printfarmd::ops::logging::format_from_env(configured)
}

fn main() -> ExitCode {
    tune_allocator();
    let cli = Cli::parse();
    match log_format(&cli) {
        Ok(f) => printfarmd::ops::logging::init(f),
        Err(e) => {
            eprintln!("printfarmd: {e}");
            return ExitCode::FAILURE;
        }
    }
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
        } => demo(demo::DemoOptions {
            bind,
            database,
            bambu,
            prusa,
            octoprint,
            moonraker,
            control,
        }),
        Command::Simulate(args) => printfarmd_sim::cli::run(args),
        Command::Loadtest(args) => printfarmd_loadtest::run(args),
        Command::Backup { file } => backup(cli.config, &file),
        Command::Pin {
            action: PinCommand::Reset { printer_id },
        } => pin_reset(cli.config, &printer_id),
        Command::Key { action } => key(cli.config, action),
        Command::Export {
            format,
            output,
            printer_id,
            status,
            auto_created,
            since,
            until,
            q,
            end_reason,
        } => {
            let filters = [
                ("printer_id", printer_id),
                ("status", status),
                ("auto_created", auto_created),
                ("since", since),
                ("until", until),
                ("q", q),
                ("end_reason", end_reason),
            ]
            .into_iter()
            .filter_map(|(k, v)| Some((k.to_owned(), v?)))
            .collect();
            export(cli.config, &format, output.as_deref(), filters)
        }
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
    // Opening would create an empty database and "reset" a pin nobody has.
    if !db.exists() {
        anyhow::bail!(
            "no database at {}: nothing to reset. Check database.path in the configuration (or PRINTFARMD_DATABASE__PATH); printfarmd creates the database when it first runs",
            db.display()
        );
    }
    // A running daemon has the database (and its own copy of the pins): it would not see
    // this change, and two writers are not allowed.
    let _lock = store::files::DbLock::acquire(db).map_err(|e| match e {
        store::StoreError::InUse(m) => anyhow::anyhow!(
            "{m}; stop the daemon or use the API: POST /api/v1/printers/{id}/certificate/reset"
        ),
        e => e.into(),
    })?;
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
         POST /api/v1/printers/{id}/certificate/reset (with an X-Requested-With header)\n\
         so it reconnects now."
    );
    Ok(())
}

fn key(path: Option<PathBuf>, action: KeyCommand) -> anyhow::Result<()> {
    use printfarmd::api::auth::cli;
    let config = load(path)?;
    let db = &config.database.path;
    match action {
        KeyCommand::Add {
            role,
            name,
            expires,
        } => {
            let role = printfarmd::config::Role::parse(&role).ok_or_else(|| {
                anyhow::anyhow!("--role {role:?} is not a role; use viewer, operator or admin")
            })?;
            cli::add(db, role, &name, expires.as_deref())
        }
        KeyCommand::List => cli::list(db),
        KeyCommand::Revoke { id } => cli::revoke(db, &id),
    }
}

fn export(
    path: Option<PathBuf>,
    format: &str,
    output: Option<&std::path::Path>,
    filters: Vec<(String, String)>,
) -> anyhow::Result<()> {
    use std::io::Write;
    let config = load(path)?;
    let db = &config.database.path;
    let (n, to) = match output {
        Some(file) => {
            let f = std::fs::File::create(file)
                .with_context(|| format!("cannot write {}", file.display()))?;
            let mut w = std::io::BufWriter::new(f);
            let n = printfarmd::api::export::export_file(db, format, filters, &mut w)?;
            w.flush()?;
            (n, file.display().to_string())
        }
        None => {
            let mut w = std::io::BufWriter::new(std::io::stdout().lock());
            let n = printfarmd::api::export::export_file(db, format, filters, &mut w)?;
            w.flush()?;
            (n, "standard output".into())
        }
    };
    eprintln!("{n} jobs written to {to}");
    Ok(())
}

fn backup(path: Option<PathBuf>, file: &std::path::Path) -> anyhow::Result<()> {
    let config = load(path)?;
    let info = printfarmd::store::backup::backup(&config.database.path, file)
        .with_context(|| format!("backing up {}", config.database.path.display()))?;
    println!(
        "{}: {} bytes, {} jobs, {} ms. Restore: stop printfarmd, copy this file over {}, start it.",
        info.path.display(),
        info.bytes,
        info.jobs,
        info.took_ms,
        config.database.path.display()
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

fn demo(opts: demo::DemoOptions) -> anyhow::Result<()> {
    runtime(demo::run(opts, printfarmd::app::shutdown_signal()))
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
