//! `printfarmd loadtest`: the simulator and the daemon as two separate processes, N
//! printers that print all the time, M WebSocket clients and a steady REST load for T
//! seconds; then one JSON summary on stdout (issue 7, BENCHMARKS.md "Load harness").
//!
//! The harness drives every print itself through the simulator's control API (no
//! `--auto`), so it knows which jobs the daemon must record and how each must end; it
//! exits non-zero when a job is lost or duplicated. The prints start once every printer
//! is `connected` and every WebSocket client is in place; the clock starts `--warmup`
//! seconds later, after the first prints' start wave. CPU time, update counts, REST and
//! WebSocket latencies are taken over that window only; the jobs are checked for the
//! whole run.

pub mod clients;
pub mod hist;
pub mod idle;
pub mod latency;
mod mix;
pub mod prints;
pub mod procs;
pub mod verify;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use serde_json::json;
use tokio::time::Instant;

use mix::{Mix, parse_mix, parse_range};
use prints::{Control, Plan};

/// Bambu preparation time the simulator uses by default (`--prepare-ms`).
const BAMBU_PREPARE: Duration = Duration::from_secs(3);
/// How long every printer gets to connect, plus a little per printer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the daemon gets to close every job after the last print ended.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(60);
/// Jobs per page when reading them all back (the API's maximum).
const PAGE: usize = 1000;

/// Arguments of `printfarmd loadtest`.
#[derive(Debug, Clone, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct LoadtestArgs {
    /// Another mode instead of the load run.
    #[command(subcommand)]
    pub mode: Option<Mode>,
    /// Number of simulated printers.
    #[arg(long, default_value_t = 100)]
    pub printers: usize,
    /// Share of X1-style : P1-style Bambu : PrusaLink printers, optionally followed by
    /// : OctoPrint : Moonraker (`1:1:1:1:1` is a fifth of each).
    #[arg(long, default_value = "2:2:1")]
    pub mix: String,
    /// WebSocket clients, each receiving every event.
    #[arg(long, default_value_t = 10)]
    pub ws_clients: usize,
    /// REST requests a second (job lists, printer lists, single printers).
    #[arg(long, default_value_t = 20.0)]
    pub rest_rps: f64,
    /// Length of the measured window.
    #[arg(long, default_value_t = 60)]
    pub seconds: u64,
    /// Seconds of load before the window opens: every printer starts its first print
    /// within the first 5 s (a start wave ~13 times the steady rate of starts at the
    /// default print lengths), and the window measures the farm once that has passed.
    #[arg(long, default_value_t = 10)]
    pub warmup: u64,
    /// Print length range, MIN..MAX seconds.
    #[arg(long, default_value = "30..90")]
    pub print_seconds: String,
    /// Share of prints failed early / cancelled early (the rest run to their end).
    #[arg(long, default_value_t = 0.1)]
    pub fail_share: f64,
    #[arg(long, default_value_t = 0.1)]
    pub cancel_share: f64,
    /// The daemon's `monitoring.interval` (PrusaLink poll and Bambu pushall period), seconds.
    #[arg(long, default_value_t = 2)]
    pub monitoring_interval: u64,
    /// Binary to start as simulator and daemon (default: this one). Lets a debug build
    /// drive a release build.
    #[arg(long, value_name = "PATH")]
    pub binary: Option<PathBuf>,
    /// Also write the summary to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Keep the temporary directory (config, database, logs) and print its path.
    #[arg(long)]
    pub keep: bool,
    /// Seed for the print plans.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

/// Other modes of `printfarmd loadtest`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Mode {
    /// A small farm, no clients, a fixed window: the daemon's CPU seconds, wake-ups and
    /// RSS (issue 21).
    Idle(idle::IdleArgs),
}

/// Runs the load test on its own runtime; `Err` when jobs were lost or duplicated (the
/// summary is printed either way).
pub fn run(args: LoadtestArgs) -> anyhow::Result<()> {
    if let Some(Mode::Idle(idle)) = args.mode {
        return idle::run(idle);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("building the tokio runtime")?;
    let summary = runtime.block_on(run_async(&args))?;
    let text = serde_json::to_string_pretty(&summary)?;
    println!("{text}");
    if let Some(path) = &args.json {
        std::fs::write(path, &text).with_context(|| format!("writing {}", path.display()))?;
    }
    if summary["ok"] != true {
        bail!("jobs were lost or duplicated: {}", summary["jobs"]);
    }
    Ok(())
}

async fn run_async(args: &LoadtestArgs) -> anyhow::Result<serde_json::Value> {
    let mix = parse_mix(&args.mix, args.printers)?;
    let print_s = parse_range(&args.print_seconds)?;
    let exe = match &args.binary {
        Some(p) => p.clone(),
        None => std::env::current_exe().context("finding this binary")?,
    };
    let dir = tempfile_dir()?;
    let ticks = procs::clock_ticks();
    let s = |v: &str| v.to_owned();

    // The simulator.
    let sim = procs::spawn(
        "simulator",
        &exe,
        &[
            s("simulate"),
            s("--bambu"),
            (mix.x1 + mix.p1).to_string(),
            s("--x1"),
            mix.x1.to_string(),
            s("--prusa"),
            mix.prusa.to_string(),
            s("--octoprint"),
            mix.octo.to_string(),
            s("--moonraker"),
            mix.moon.to_string(),
            s("--style"),
            s("mixed"),
            s("--auto"),
            s("false"),
            s("--broker"),
            s("127.0.0.1:0"),
            s("--control"),
            s("127.0.0.1:0"),
            s("--seed"),
            args.seed.to_string(),
        ],
        "control API:",
        true,
        dir.join("simulator.log"),
    )
    .await?;
    let ctl = Control::new(&sim.addr)?;
    let printers = ctl
        .get("/printers")
        .await
        .context("GET /printers of the simulator")?;
    let printers: Vec<(String, String)> = printers
        .as_array()
        .context("GET /printers is not an array")?
        .iter()
        .map(|p| {
            (
                p["id"].as_str().unwrap_or_default().to_owned(),
                p["type"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let block = ctl
        .text("/config")
        .await
        .context("GET /config of the simulator")?;

    // The daemon, on a fresh database.
    let config = dir.join("daemon.toml");
    let db = dir.join("loadtest.db");
    std::fs::write(
        &config,
        format!(
            "[server]\nbind = \"127.0.0.1:0\"\n\n[database]\npath = {db:?}\n\n[monitoring]\ninterval = {}\n\n{block}",
            args.monitoring_interval
        ),
    )?;
    let daemon = procs::spawn(
        "daemon",
        &exe,
        &[s("run"), s("--config"), config.display().to_string()],
        "listening on",
        false,
        dir.join("daemon.log"),
    )
    .await?;
    let api = Control::new(&daemon.addr)?;
    eprintln!(
        "loadtest: {} printers ({} X1, {} P1, {} PrusaLink, {} OctoPrint, {} Moonraker); simulator {} (pid {}), daemon {} (pid {}); files in {}",
        args.printers,
        mix.x1,
        mix.p1,
        mix.prusa,
        mix.octo,
        mix.moon,
        sim.addr,
        sim.pid,
        daemon.addr,
        daemon.pid,
        dir.display()
    );
    let result = measure(
        args, &mix, print_s, &printers, &ctl, &api, &sim, &daemon, ticks,
    )
    .await;
    let daemon_end = procs::usage(daemon.pid, ticks);
    sim.stop().await;
    daemon.stop().await;
    let mut summary = result?;
    if let Some(u) = daemon_end {
        summary["daemon"]["peak_rss_mb_total_run"] = json!(round(u.peak_rss_mb, 1));
    }
    if args.keep {
        summary["files"] = json!(dir.display().to_string());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(summary)
}

pub(crate) fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "printfarmd-loadtest-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_millis()
    ));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

pub(crate) fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

#[allow(clippy::too_many_arguments)]
async fn measure(
    args: &LoadtestArgs,
    mix: &Mix,
    print_s: (u64, u64),
    printers: &[(String, String)],
    ctl: &Control,
    api: &Control,
    sim: &procs::Proc,
    daemon: &procs::Proc,
    ticks: f64,
) -> anyhow::Result<serde_json::Value> {
    // Every printer connected before the clock starts.
    let connect_by =
        Instant::now() + CONNECT_TIMEOUT + Duration::from_millis(20 * printers.len() as u64);
    let connect_started = Instant::now();
    loop {
        let v = api
            .get("/api/v1/printers")
            .await
            .context("GET /api/v1/printers")?;
        let connected = v["printers"]
            .as_array()
            .map(|a| a.iter().filter(|p| p["connection"] == "connected").count())
            .unwrap_or(0);
        if connected == printers.len() {
            break;
        }
        if Instant::now() > connect_by {
            bail!(
                "only {connected} of {} printers connected in time",
                printers.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let connect_s = connect_started.elapsed().as_secs_f64();

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let window = Arc::new(clients::Window::default());
    let ids: Vec<String> = printers.iter().map(|(id, _)| id.clone()).collect();
    let sampled = latency::Sampled::pick(&ids);
    let ws = clients::start_ws_clients(
        &daemon.addr,
        args.ws_clients,
        stop_rx.clone(),
        window.clone(),
        sampled.clone(),
    )
    .await?;
    // The simulator's send times of the sampled printers, read all along.
    let sent_logs = latency::read_sent_logs(ctl.clone(), sampled.clone(), stop_rx.clone());
    let interval = Duration::from_secs(args.monitoring_interval);
    let plan = Plan {
        print_s,
        fail_share: args.fail_share,
        cancel_share: args.cancel_share,
        min_age: BAMBU_PREPARE + 2 * interval + Duration::from_secs(1),
        gap: 2 * interval + Duration::from_secs(1),
        first_start_spread: Duration::from_secs(5).min(Duration::from_secs(args.seconds) / 4),
    };
    let warmup = Duration::from_secs(args.warmup);
    let deadline = Instant::now() + warmup + Duration::from_secs(args.seconds);
    let mut drivers = Vec::with_capacity(printers.len());
    for (i, (id, kind)) in printers.iter().enumerate() {
        let (ext, after_fail) = match kind.as_str() {
            "prusalink" => (".bgcode", None),
            // OctoPrint is left `Offline after error` by a failure: reconnected by hand.
            "octoprint" => (".gcode", Some("dismiss")),
            "moonraker" => (".gcode", None),
            _ => (".gcode.3mf", None),
        };
        drivers.push(tokio::spawn(prints::drive(
            ctl.clone(),
            id.clone(),
            ext,
            after_fail,
            plan.clone(),
            args.seed.wrapping_mul(1_000_003).wrapping_add(i as u64),
            deadline,
        )));
    }
    tokio::time::sleep(warmup).await;

    // The clock starts.
    let health0 = api.get("/api/v1/health").await?;
    let by_type0 = statuses_by_type(api).await;
    let d0 = procs::usage(daemon.pid, ticks).unwrap_or_default();
    let s0 = procs::usage(sim.pid, ticks).unwrap_or_default();
    let h0 = procs::usage(std::process::id(), ticks).unwrap_or_default();
    let t0 = Instant::now();
    window.open(deadline.saturating_duration_since(t0));
    let rest = tokio::spawn(clients::rest_load(
        daemon.addr.clone(),
        ids,
        args.rest_rps,
        stop_rx,
    ));
    // Peak RSS over the window, sampled each second (VmHWM also covers start-up).
    let mut peak_rss = 0f64;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(1).min(deadline - Instant::now())).await;
        if let Some(u) = procs::usage(daemon.pid, ticks) {
            peak_rss = peak_rss.max(u.rss_mb);
        }
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let d1 = procs::usage(daemon.pid, ticks).unwrap_or_default();
    let s1 = procs::usage(sim.pid, ticks).unwrap_or_default();
    let h1 = procs::usage(std::process::id(), ticks).unwrap_or_default();
    let health1 = api.get("/api/v1/health").await?;
    let by_type1 = statuses_by_type(api).await;
    let _ = stop_tx.send(true);
    let ws = clients::collect_ws(ws).await;
    let rest = rest.await.unwrap_or_default();
    let (sent_logs, sent_log_errors) = sent_logs.await.context("the send-log reader panicked")?;
    let (w0, w1) = window.bounds();
    let lat = latency::match_samples(&ws.samples, &sent_logs, w0, w1);

    // Every print ended; let the daemon close every job.
    let mut started = Vec::new();
    let mut control_errors = 0;
    for d in drivers {
        let log = d.await.context("a print driver panicked")?;
        started.extend(log.started);
        control_errors += log.control_errors;
    }
    let close_by = Instant::now() + CLOSE_TIMEOUT;
    while Instant::now() < close_by {
        let v = api
            .get("/api/v1/jobs?status=running,paused,pending&limit=1")
            .await?;
        if v["total_count"] == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let jobs = read_all_jobs(api).await?;
    let report = verify::compare(&started, &jobs);

    let updates = health1["statuses_processed"].as_u64().unwrap_or(0)
        - health0["statuses_processed"].as_u64().unwrap_or(0);
    let ups = updates as f64 / elapsed;
    let dcpu = d1.cpu_s - d0.cpu_s;
    let n = printers.len() as f64;
    let q = |h: &hist::Hist| serde_json::to_value(h.quantiles()).unwrap_or_default();
    Ok(json!({
        "ok": report.ok(),
        "config": {
            "printers": printers.len(),
            "x1": mix.x1, "p1": mix.p1, "prusalink": mix.prusa,
            "octoprint": mix.octo, "moonraker": mix.moon,
            "ws_clients": args.ws_clients,
            "rest_rps": args.rest_rps,
            "seconds": args.seconds,
            "warmup_s": args.warmup,
            "print_seconds": args.print_seconds,
            "fail_share": args.fail_share,
            "cancel_share": args.cancel_share,
            "monitoring_interval": args.monitoring_interval,
            "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            "clk_tck": ticks,
        },
        "window_s": round(elapsed, 2),
        "connect_s": round(connect_s, 2),
        "updates": {
            "statuses_processed": updates,
            "per_second": round(ups, 1),
            "per_printer_per_second": round(ups / n, 3),
            "by_type": by_type1.iter().map(|(k, v)| (k.clone(), json!(v.saturating_sub(by_type0.get(k).copied().unwrap_or(0))))).collect::<serde_json::Map<_, _>>(),
            "note": "statuses the JobCreator processed (GET /api/v1/health statuses_processed; by_type from /metrics printfarmd_statuses_processed_total): Bambu reports (~1/s while a print is under way, every 5 s idle, plus one pushall answer per monitoring interval), PrusaLink polls (one per monitoring interval), OctoPrint polls plus push-socket messages (at most one a second while printing), Moonraker subscription updates (at most one a second while printing)",
        },
        "daemon": {
            "cpu_s": round(dcpu, 2),
            "cpu_cores": round(dcpu / elapsed, 3),
            "cpu_s_per_1000_updates": round(if updates > 0 { dcpu * 1000.0 / updates as f64 } else { 0.0 }, 4),
            "cpu_ms_per_printer_second": round(dcpu * 1000.0 / elapsed / n, 4),
            "peak_rss_mb_window": round(peak_rss, 1),
            "rss_mb_end": round(d1.rss_mb, 1),
            "rss_kb_per_printer": round(d1.rss_mb * 1024.0 / n, 1),
            "rss_anon_mb_end": round(d1.rss_anon_mb, 1),
            "rss_file_mb_end": round(d1.rss_file_mb, 1),
            "health_at_end": health1["status"],
            "status_lag_ms_at_end": health1["status_lag_ms"],
        },
        "simulator": {
            "cpu_cores": round((s1.cpu_s - s0.cpu_s) / elapsed, 3),
            "peak_rss_mb": round(s1.peak_rss_mb, 1),
        },
        "harness": {
            "cpu_cores": round((h1.cpu_s - h0.cpu_s) / elapsed, 3),
            "control_errors": control_errors,
        },
        "jobs": report,
        "websocket": {
            "clients": args.ws_clients,
            "messages": ws.messages,
            "printer_status_events": ws.status_events,
            "disconnects": ws.disconnects,
            "disconnect_reasons": ws.disconnect_reasons,
            "latency_ms": {
                "note": "printer_status events of the sampled printers, each matched to the simulator's report behind it (the last one sent at or before the status's updated_at); reports sent inside the window and statuses received inside it: the warm-up before it and the finish-every-print burst at its end are the harness's and not counted. not_held: statuses whose report came a second or more after the printer's previous status went out, so the throttle cannot have held them",
                "sampled_printers": sampled.ids().len(),
                "matched": lat.matched,
                "unmatched": lat.unmatched,
                "send_log_read_errors": sent_log_errors,
                "report_to_client": q(&lat.report_to_client),
                "not_held": q(&lat.not_held),
                "report_to_daemon": q(&lat.report_to_daemon),
                "to_fanout": q(&lat.to_fanout),
                "fanout_to_client": q(&lat.fanout_to_client),
            },
        },
        "rest": rest,
    }))
}

/// `printfarmd_statuses_processed_total` per printer type from `/metrics`; empty when it
/// cannot be read (the summary then shows no per-type figures, the run goes on).
async fn statuses_by_type(api: &Control) -> std::collections::BTreeMap<String, u64> {
    let text = api.text("/metrics").await.unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("printfarmd_statuses_processed_total{type=\"")?;
            let (kind, value) = rest.split_once("\"} ")?;
            Some((kind.to_owned(), value.trim().parse::<f64>().ok()? as u64))
        })
        .collect()
}

async fn read_all_jobs(api: &Control) -> anyhow::Result<Vec<verify::JobRow>> {
    let mut out = Vec::new();
    loop {
        let v = api
            .get(&format!("/api/v1/jobs?limit={PAGE}&offset={}", out.len()))
            .await
            .context("reading the jobs back")?;
        let page = v["jobs"].as_array().cloned().unwrap_or_default();
        out.extend(page.iter().map(verify::JobRow::from_json));
        let total = v["total_count"].as_u64().unwrap_or(0) as usize;
        if page.is_empty() || out.len() >= total {
            return Ok(out);
        }
    }
}
