//! The two processes under test, the simulator and the daemon, started from this same
//! binary (or `--binary`), and what `/proc` says about their CPU time and memory.
//!
//! Both are separate processes so the daemon's CPU and RSS are its own, not mixed with
//! the simulator's or the harness's. Their addresses are read from the lines they print
//! at start (the simulator's control API on stdout, the daemon's "listening on" log line
//! on stderr), so both bind port 0 and nothing is fixed.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

/// How long a process gets to print its address.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a process gets to stop after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// A child process whose output goes to a log file once its address is known.
pub struct Proc {
    pub name: &'static str,
    pub child: Child,
    pub pid: u32,
    pub addr: String,
}

/// Starts `exe args…` and waits for the line containing `marker` on stdout (`on_stdout`)
/// or stderr; the address is the `http://HOST:PORT` that follows it. All output is
/// copied to `log`.
pub async fn spawn(
    name: &'static str,
    exe: &Path,
    args: &[String],
    marker: &'static str,
    on_stdout: bool,
    log: PathBuf,
) -> anyhow::Result<Proc> {
    let mut child = Command::new(exe)
        .args(args)
        // LOADTEST_CHILD_LOG sets the children's log filter (to look into a run).
        .env(
            "PRINTFARMD_LOG",
            std::env::var("LOADTEST_CHILD_LOG")
                .unwrap_or_else(|_| "warn,printfarmd::app=info".to_owned()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting the {name}: {}", exe.display()))?;
    let pid = child.id().context("the child has no pid")?;
    let out = child.stdout.take().context("no stdout")?;
    let err = child.stderr.take().context("no stderr")?;
    let file = tokio::fs::File::create(&log)
        .await
        .with_context(|| format!("creating {}", log.display()))?;
    let file = std::sync::Arc::new(tokio::sync::Mutex::new(file));
    let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(1);
    for (is_stdout, stream) in [
        (
            true,
            Box::new(out) as Box<dyn tokio::io::AsyncRead + Send + Unpin>,
        ),
        (false, Box::new(err)),
    ] {
        let file = file.clone();
        let tx = (is_stdout == on_stdout).then(|| tx.clone());
        tokio::spawn(async move {
            let mut lines = BufReader::new(stream).lines();
            let mut tx = tx;
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(t) = &tx
                    && let Some(addr) = address_after(&line, marker)
                {
                    let _ = t.send(addr).await;
                    tx = None;
                }
                let mut f = file.lock().await;
                let _ = f.write_all(line.as_bytes()).await;
                let _ = f.write_all(b"\n").await;
            }
        });
    }
    drop(tx);
    let addr = match tokio::time::timeout(START_TIMEOUT, rx.recv()).await {
        Ok(Some(a)) => a,
        _ => bail!(
            "the {name} did not print its address within {START_TIMEOUT:?}; see {}",
            log.display()
        ),
    };
    Ok(Proc {
        name,
        child,
        pid,
        addr,
    })
}

/// `HOST:PORT` from the `http://HOST:PORT` after `marker` in `line`.
fn address_after(line: &str, marker: &str) -> Option<String> {
    let rest = &line[line.find(marker)? + marker.len()..];
    let rest = &rest[rest.find("http://")? + "http://".len()..];
    let addr: String = rest
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != '"' && *c != ')')
        .collect();
    (!addr.is_empty()).then_some(addr)
}

impl Proc {
    /// SIGTERM, then SIGKILL if it has not stopped in time.
    pub async fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .await;
        if tokio::time::timeout(STOP_TIMEOUT, self.child.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                process = self.name,
                "did not stop after SIGTERM; killing it"
            );
            let _ = self.child.kill().await;
        }
    }
}

/// CPU time and memory of a process, from `/proc/<pid>/stat` and `/proc/<pid>/status`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Usage {
    /// User + system CPU seconds since the process started.
    pub cpu_s: f64,
    /// Resident set size now, MiB.
    pub rss_mb: f64,
    /// Peak resident set size (VmHWM), MiB.
    pub peak_rss_mb: f64,
    /// Of `rss_mb`: anonymous memory (heap, stacks; RssAnon), MiB.
    pub rss_anon_mb: f64,
    /// Of `rss_mb`: file-backed pages (the binary's and libraries' touched code and
    /// data; RssFile), MiB.
    pub rss_file_mb: f64,
}

/// Clock ticks a second for `/proc/<pid>/stat` (`getconf CLK_TCK`; 100 on Linux).
pub fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

pub fn usage(pid: u32, ticks: f64) -> Option<Usage> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some(Usage {
        cpu_s: cpu_ticks(&stat)? as f64 / ticks,
        rss_mb: status_number(&status, "VmRSS:").unwrap_or(0) as f64 / 1024.0,
        peak_rss_mb: status_number(&status, "VmHWM:").unwrap_or(0) as f64 / 1024.0,
        rss_anon_mb: status_number(&status, "RssAnon:").unwrap_or(0) as f64 / 1024.0,
        rss_file_mb: status_number(&status, "RssFile:").unwrap_or(0) as f64 / 1024.0,
    })
}

/// utime + stime, in clock ticks, from the text of `/proc/<pid>/stat`. For the process
/// (not one task) this covers all its threads, also those that have ended.
pub fn cpu_ticks(stat: &str) -> Option<u64> {
    // Fields after the command name (which may contain spaces and parentheses).
    let after = stat.get(stat.rfind(')')? + 2..)?;
    let f: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the name.
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// The number after `key` in a `/proc/<pid>/status` text (`VmRSS:  1234 kB` → 1234).
pub fn status_number(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// Context switches of one task, from its `/proc/<pid>/task/<tid>/status`: voluntary
/// (it slept: a wake-up follows) and nonvoluntary (preempted, more on a busy host).
pub fn context_switches(status: &str) -> Option<(u64, u64)> {
    Some((
        status_number(status, "voluntary_ctxt_switches:")?,
        status_number(status, "nonvoluntary_ctxt_switches:")?,
    ))
}

/// One thread's counters: context switches (voluntary, nonvoluntary) and the time it
/// ran on a CPU in nanoseconds (`/proc/<pid>/task/<tid>/schedstat`'s first field; 0
/// where the kernel has no schedstat).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskCounts {
    pub voluntary: u64,
    pub nonvoluntary: u64,
    pub run_ns: u64,
}

/// The run time in ns of a task's `schedstat` line ("run_ns wait_ns timeslices").
pub fn schedstat_run_ns(schedstat: &str) -> Option<u64> {
    schedstat.split_whitespace().next()?.parse().ok()
}

/// Counters of each live thread of `pid`, by thread id. A thread that has ended is gone
/// from `/proc/<pid>/task`, so callers sample often and keep the last value seen per
/// thread.
pub fn task_counts(pid: u32) -> std::collections::HashMap<u32, TaskCounts> {
    let mut out = std::collections::HashMap::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(tid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        let Some((voluntary, nonvoluntary)) = std::fs::read_to_string(entry.path().join("status"))
            .ok()
            .as_deref()
            .and_then(context_switches)
        else {
            continue;
        };
        let run_ns = std::fs::read_to_string(entry.path().join("schedstat"))
            .ok()
            .as_deref()
            .and_then(schedstat_run_ns)
            .unwrap_or(0);
        out.insert(
            tid,
            TaskCounts {
                voluntary,
                nonvoluntary,
                run_ns,
            },
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_run_time_of_a_schedstat_line() {
        assert_eq!(
            schedstat_run_ns("285971893 43024135 843\n"),
            Some(285_971_893)
        );
        assert_eq!(schedstat_run_ns(""), None);
        assert_eq!(schedstat_run_ns("x 1 2"), None);
    }

    #[test]
    fn finds_the_address_after_the_marker() {
        assert_eq!(
            address_after(
                "2025 INFO printfarmd::app: printfarmd 0.1.0 listening on http://127.0.0.1:4321",
                "listening on"
            )
            .as_deref(),
            Some("127.0.0.1:4321")
        );
        assert_eq!(
            address_after(
                "  control API:  http://127.0.0.1:99  (GET /printers, …)",
                "control API:"
            )
            .as_deref(),
            Some("127.0.0.1:99")
        );
        assert_eq!(address_after("nothing here", "control API:"), None);
    }

    #[test]
    fn parses_proc_stat_and_status() {
        // A command name with a space and a parenthesis; utime 1500, stime 250.
        let stat = "4242 (print farm) d) S 1 4242 4242 0 -1 4194560 900 0 0 0 1500 250 0 0 20 0 9 0 123 456789 1234 18446744073709551615";
        assert_eq!(cpu_ticks(stat), Some(1750));
        assert_eq!(cpu_ticks("garbage"), None);
        let status = "Name:\tprintfarmd\nVmHWM:\t   20480 kB\nVmRSS:\t   18432 kB\nThreads:\t9\nvoluntary_ctxt_switches:\t120\nnonvoluntary_ctxt_switches:\t7\n";
        assert_eq!(status_number(status, "VmRSS:"), Some(18432));
        assert_eq!(status_number(status, "VmHWM:"), Some(20480));
        assert_eq!(context_switches(status), Some((120, 7)));
        assert_eq!(context_switches("Name:\tx\n"), None);
    }

    #[test]
    fn counts_our_own_threads() {
        let t = std::thread::spawn(|| std::thread::sleep(std::time::Duration::from_millis(50)));
        let seen = task_counts(std::process::id());
        t.join().unwrap();
        assert!(seen.len() >= 2, "{seen:?}");
        // This thread has run, so where the kernel keeps schedstat its time shows.
        let ran: u64 = seen.values().map(|c| c.run_ns).sum();
        let has_schedstat = std::path::Path::new("/proc/self/schedstat").exists();
        assert!(!has_schedstat || ran > 0, "{seen:?}");
    }

    #[test]
    fn reads_our_own_usage() {
        let u = usage(std::process::id(), clock_ticks()).unwrap();
        assert!(u.peak_rss_mb > 0.0);
    }
}
