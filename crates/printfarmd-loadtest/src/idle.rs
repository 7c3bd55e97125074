//! `printfarmd loadtest idle`: what a small farm costs the daemon when little happens
//! (issue 21). The simulator and the daemon run as separate processes (the daemon's CPU
//! is its own); a few printers, printing one long print each or nothing, no WebSocket
//! or REST clients. After a warm-up the window opens and the daemon's CPU seconds
//! (utime + stime of the process, all threads, `/proc/PID/stat`), its wake-ups and its
//! memory (VmRSS, VmHWM) are taken.
//!
//! Wake-ups are context switches: the sum of `voluntary_ctxt_switches` and
//! `nonvoluntary_ctxt_switches` over `/proc/PID/task/*/status` (also shown apart: a
//! voluntary switch is a thread going to sleep, so one wake-up; nonvoluntary ones are
//! preemptions, which a busy host adds). A thread that ends takes
//! its counts with it, so the threads are sampled every second and each thread's last
//! value is kept (a thread's switches after its last sample are missed: at most a
//! second's worth of a thread that ended).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use serde_json::json;
use tokio::time::Instant;

use crate::prints::Control;
use crate::{procs, round, tempfile_dir};

/// How long every printer gets to connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest window accepted (a day); more is a typo.
const MAX_SECONDS: u64 = 86_400;
/// Most printers of either kind: this measures a small farm.
const MAX_PRINTERS: usize = 1000;
/// How often the threads' counters are sampled.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// Arguments of `printfarmd loadtest idle`.
#[derive(Debug, Clone, Args)]
pub struct IdleArgs {
    /// Simulated Bambu printers (half X1-style, half P1-style).
    #[arg(long, default_value_t = 4)]
    pub bambu: usize,
    /// Simulated PrusaLink printers.
    #[arg(long, default_value_t = 2)]
    pub prusa: usize,
    /// on: every printer runs one print that lasts past the window; off: nothing prints.
    #[arg(long, default_value = "on", value_parser = clap::builder::BoolishValueParser::new(), action = clap::ArgAction::Set)]
    pub printing: bool,
    /// Length of the measured window, seconds.
    #[arg(long, default_value_t = 300)]
    pub seconds: u64,
    /// Seconds between the prints' start and the window's opening: past two monitoring
    /// intervals, so every job is open before the clock starts.
    #[arg(long, default_value_t = 70)]
    pub warmup: u64,
    /// The daemon's `monitoring.interval`, seconds (its default is 30).
    #[arg(long, default_value_t = 30)]
    pub monitoring_interval: u64,
    /// Binary to start as the daemon (default: this one), e.g. an older release build to
    /// compare with. The simulator is always this binary.
    #[arg(long, value_name = "PATH")]
    pub binary: Option<PathBuf>,
    /// Also write the summary to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Keep the temporary directory (config, database, logs) and print its path.
    #[arg(long)]
    pub keep: bool,
}

pub fn run(args: IdleArgs) -> anyhow::Result<()> {
    if args.bambu + args.prusa == 0 || args.bambu > MAX_PRINTERS || args.prusa > MAX_PRINTERS {
        bail!("--bambu and --prusa: between 1 and {MAX_PRINTERS} printers in all");
    }
    if args.seconds == 0 || args.seconds > MAX_SECONDS || args.warmup > MAX_SECONDS {
        bail!("--seconds must be 1..={MAX_SECONDS} and --warmup at most {MAX_SECONDS}");
    }
    if !(1..=3600).contains(&args.monitoring_interval) {
        bail!("--monitoring-interval must be 1..=3600 seconds");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building the tokio runtime")?;
    let summary = runtime.block_on(run_async(&args))?;
    let text = serde_json::to_string_pretty(&summary)?;
    println!("{text}");
    if let Some(path) = &args.json {
        std::fs::write(path, &text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

async fn run_async(args: &IdleArgs) -> anyhow::Result<serde_json::Value> {
    let me = std::env::current_exe().context("finding this binary")?;
    let daemon_exe = args.binary.clone().unwrap_or_else(|| me.clone());
    let dir = tempfile_dir()?;
    let ticks = procs::clock_ticks();
    let s = |v: &str| v.to_owned();
    let sim = procs::spawn(
        "simulator",
        &me,
        &[
            s("simulate"),
            s("--bambu"),
            args.bambu.to_string(),
            s("--prusa"),
            args.prusa.to_string(),
            s("--octoprint"),
            s("0"),
            s("--moonraker"),
            s("0"),
            s("--style"),
            s("mixed"),
            s("--auto"),
            s("false"),
            s("--broker"),
            s("127.0.0.1:0"),
            s("--control"),
            s("127.0.0.1:0"),
        ],
        "control API:",
        true,
        dir.join("simulator.log"),
    )
    .await?;
    let ctl = Control::new(&sim.addr)?;
    let printers: Vec<(String, String)> = ctl
        .get("/printers")
        .await
        .context("GET /printers of the simulator")?
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
    let block = ctl.text("/config").await.context("GET /config")?;
    let config = dir.join("daemon.toml");
    let db = dir.join("idle.db");
    std::fs::write(
        &config,
        format!(
            "[server]\nbind = \"127.0.0.1:0\"\n\n[database]\npath = {db:?}\n\n[monitoring]\ninterval = {}\n\n{block}",
            args.monitoring_interval
        ),
    )?;
    let daemon = procs::spawn(
        "daemon",
        &daemon_exe,
        &[s("run"), s("--config"), config.display().to_string()],
        "listening on",
        false,
        dir.join("daemon.log"),
    )
    .await?;
    eprintln!(
        "loadtest idle: {} Bambu + {} PrusaLink, printing {}; simulator pid {}, daemon {} (pid {}, {}); files in {}",
        args.bambu,
        args.prusa,
        if args.printing { "on" } else { "off" },
        sim.pid,
        daemon.addr,
        daemon.pid,
        daemon_exe.display(),
        dir.display()
    );
    let result = measure(args, &printers, &ctl, &sim, &daemon, ticks).await;
    sim.stop().await;
    daemon.stop().await;
    let mut summary = result?;
    summary["daemon_binary"] = json!(daemon_exe.display().to_string());
    if args.keep {
        summary["files"] = json!(dir.display().to_string());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(summary)
}

/// Per-thread counters over a window: the first and last value seen of each thread (a
/// thread born in the window starts from 0).
#[derive(Default)]
struct Threads {
    first: HashMap<u32, procs::TaskCounts>,
    last: HashMap<u32, procs::TaskCounts>,
}

impl Threads {
    fn open(pid: u32) -> Self {
        let first = procs::task_counts(pid);
        Self {
            last: first.clone(),
            first,
        }
    }

    fn sample(&mut self, pid: u32) {
        self.last.extend(procs::task_counts(pid));
    }

    /// The counters' sums over the window.
    fn total(&self) -> procs::TaskCounts {
        let mut t = procs::TaskCounts::default();
        for (tid, b) in &self.last {
            let a = self.first.get(tid).copied().unwrap_or_default();
            t.voluntary += b.voluntary.saturating_sub(a.voluntary);
            t.nonvoluntary += b.nonvoluntary.saturating_sub(a.nonvoluntary);
            t.run_ns += b.run_ns.saturating_sub(a.run_ns);
        }
        t
    }
}

async fn measure(
    args: &IdleArgs,
    printers: &[(String, String)],
    ctl: &Control,
    sim: &procs::Proc,
    daemon: &procs::Proc,
    ticks: f64,
) -> anyhow::Result<serde_json::Value> {
    let api = Control::new(&daemon.addr)?;
    let connect_by = Instant::now() + CONNECT_TIMEOUT;
    loop {
        let v = api.get("/api/v1/printers").await?;
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
    if args.printing {
        // One print each that lasts past the window.
        let duration_s = args.warmup + args.seconds + 120;
        for (id, kind) in printers {
            let ext = if kind == "prusalink" {
                ".bgcode"
            } else {
                ".gcode.3mf"
            };
            ctl.action(
                id,
                "print",
                json!({"file": format!("idle-{id}{ext}"), "duration_s": duration_s}),
            )
            .await
            .with_context(|| format!("starting a print on {id}"))?;
        }
    }
    tokio::time::sleep(Duration::from_secs(args.warmup)).await;

    let health0 = processed(&api).await;
    let d0 = procs::usage(daemon.pid, ticks).unwrap_or_default();
    let s0 = procs::usage(sim.pid, ticks).unwrap_or_default();
    let mut threads = Threads::open(daemon.pid);
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs(args.seconds);
    while Instant::now() < end {
        tokio::time::sleep(SAMPLE_EVERY.min(end - Instant::now())).await;
        threads.sample(daemon.pid);
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let d1 = procs::usage(daemon.pid, ticks).context("the daemon is gone")?;
    let s1 = procs::usage(sim.pid, ticks).unwrap_or_default();
    threads.sample(daemon.pid);
    let threads_at_end = procs::task_counts(daemon.pid).len();
    // After the window: the health request is the harness's, not the farm's.
    let health1 = processed(&api).await;
    let jobs = api
        .get("/api/v1/jobs?status=running&limit=1")
        .await
        .unwrap_or_default();
    let procs::TaskCounts {
        voluntary,
        nonvoluntary,
        run_ns,
    } = threads.total();
    let wakeups = voluntary + nonvoluntary;
    let run_s = run_ns as f64 / 1e9;
    let cpu = d1.cpu_s - d0.cpu_s;
    let statuses = health1.zip(health0).map(|(b, a)| b.saturating_sub(a));
    Ok(json!({
        "mode": "idle",
        "config": {
            "bambu": args.bambu,
            "prusalink": args.prusa,
            "printing": args.printing,
            "seconds": args.seconds,
            "warmup_s": args.warmup,
            "monitoring_interval": args.monitoring_interval,
            "clk_tck": ticks,
        },
        "window_s": round(elapsed, 2),
        "daemon": {
            "cpu_s": round(cpu, 2),
            "cpu_pct_of_one_core": round(cpu * 100.0 / elapsed, 3),
            // ns-precise: the threads' run time from schedstat (0 where the kernel keeps none).
            "run_s": round(run_s, 4),
            "run_pct_of_one_core": round(run_s * 100.0 / elapsed, 4),
            "wakeups": wakeups,
            "wakeups_per_s": round(wakeups as f64 / elapsed, 2),
            "voluntary_per_s": round(voluntary as f64 / elapsed, 2),
            "nonvoluntary_per_s": round(nonvoluntary as f64 / elapsed, 2),
            "wakeups_source": "voluntary_ctxt_switches + nonvoluntary_ctxt_switches summed over /proc/PID/task/*/status, each thread sampled every second",
            "threads_at_end": threads_at_end,
            "rss_mb": round(d1.rss_mb, 1),
            "peak_rss_mb": round(d1.peak_rss_mb, 1),
            "rss_anon_mb": round(d1.rss_anon_mb, 1),
            "rss_file_mb": round(d1.rss_file_mb, 1),
            "statuses_processed": statuses,
            "running_jobs_at_end": jobs["total_count"],
        },
        "simulator": {
            "cpu_s": round(s1.cpu_s - s0.cpu_s, 2),
        },
        "note": "cpu_s is utime + stime of the daemon process (all threads) over the window, from /proc/PID/stat, in clock ticks of 1/clk_tck s (coarse for short windows); run_s is the sum over its threads of the run time in /proc/PID/task/TID/schedstat (ns), each thread sampled every second",
    }))
}

/// `statuses_processed` from `/api/v1/health`, tried three times (a loaded host can make
/// one answer slow); `None` when it cannot be read (the figure is then left out, the
/// measurement stands).
async fn processed(api: &Control) -> Option<u64> {
    for _ in 0..3 {
        match api.get("/api/v1/health").await {
            Ok(h) => match h["statuses_processed"].as_u64() {
                Some(n) => return Some(n),
                None => eprintln!("loadtest idle: /api/v1/health has no statuses_processed: {h}"),
            },
            Err(e) => eprintln!("loadtest idle: GET /api/v1/health: {e:#}"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    None
}
