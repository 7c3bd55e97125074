//! The print driver: one task per simulated printer that starts prints through the
//! simulator's control API and ends each one the way it planned (run to the end, fail or
//! cancel), so the harness knows exactly which jobs the daemon should record and how
//! each should be closed.
//!
//! Timing rules, so that what is expected is also what a correct daemon can see:
//! - a print is failed or cancelled only after the daemon has had time to see it
//!   running (`min_age`: the Bambu preparation plus two polls);
//! - after a print ends, the printer stays idle for `gap` (two polls and a second) so
//!   the end is seen before the next print starts (a PrusaLink `STOPPED` replaced by the
//!   next print before a poll would otherwise be closed `unknown`, correctly);
//! - file names are unique per printer (`lt-<n>-<printer>`), so each job maps to the
//!   print that caused it.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::json;
use tokio::time::{Instant, sleep, sleep_until};

/// How long a control request may take (the simulator answers in microseconds; at 5,000
/// printers on a busy host, in milliseconds).
const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait for a print that should have run to its end to show it.
const END_WAIT: Duration = Duration::from_secs(30);

/// How the harness ends a print, and so the status its job must end with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Runs to its end by itself.
    Complete,
    /// Ended early with `finish` when the run was over.
    Finish,
    Fail,
    Cancel,
}

impl Outcome {
    pub fn job_status(self) -> &'static str {
        match self {
            Outcome::Complete | Outcome::Finish => "completed",
            Outcome::Fail => "failed",
            Outcome::Cancel => "cancelled",
        }
    }
}

/// One print the harness started.
#[derive(Clone, Debug, Serialize)]
pub struct Started {
    pub printer: String,
    pub n: u32,
    pub file: String,
    pub outcome: Outcome,
}

/// What one printer's driver did.
#[derive(Default)]
pub struct PrinterLog {
    pub started: Vec<Started>,
    pub control_errors: u64,
}

#[derive(Clone)]
pub struct Plan {
    pub print_s: (u64, u64),
    pub fail_share: f64,
    pub cancel_share: f64,
    /// Time the daemon needs to see a print under way.
    pub min_age: Duration,
    /// Idle time between prints.
    pub gap: Duration,
    /// Spread of the first print's start, so ends are not synchronised.
    pub first_start_spread: Duration,
}

#[derive(Clone)]
pub struct Control {
    http: reqwest::Client,
    base: String,
}

impl Control {
    pub fn new(addr: &str) -> anyhow::Result<Self> {
        Ok(Self {
            http: reqwest::Client::builder()
                .timeout(CONTROL_TIMEOUT)
                .pool_max_idle_per_host(64)
                .build()?,
            base: format!("http://{addr}"),
        })
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<serde_json::Value> {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await?
            .error_for_status()?;
        Ok(r.json().await?)
    }

    pub async fn text(&self, path: &str) -> anyhow::Result<String> {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await?
            .error_for_status()?;
        Ok(r.text().await?)
    }

    pub async fn action(
        &self,
        printer: &str,
        action: &str,
        body: serde_json::Value,
    ) -> anyhow::Result<()> {
        let r = self
            .http
            .post(format!("{}/printers/{printer}/{action}", self.base))
            .json(&body)
            .send()
            .await?;
        if !r.status().is_success() {
            anyhow::bail!(
                "{action} on {printer}: {}",
                r.text().await.unwrap_or_default()
            );
        }
        Ok(())
    }

    /// The simulator's own view: `(active, file)`.
    async fn state(&self, printer: &str) -> anyhow::Result<(bool, Option<String>)> {
        let v = self.get(&format!("/printers/{printer}")).await?;
        let s = &v["status"];
        Ok((
            s["active"].as_bool().unwrap_or(false),
            s["file"].as_str().map(str::to_owned),
        ))
    }
}

/// Drives one printer until `deadline`: print, end as planned, idle, repeat. A print
/// still under way at the deadline is ended with `finish`. `after_fail`: the control
/// action a failed print needs before the next can start (OctoPrint's `dismiss`).
pub async fn drive(
    ctl: Control,
    printer: String,
    file_ext: &'static str,
    after_fail: Option<&'static str>,
    plan: Plan,
    seed: u64,
    deadline: Instant,
) -> PrinterLog {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut log = PrinterLog::default();
    let spread = plan.first_start_spread.as_millis() as u64;
    sleep(Duration::from_millis(rng.random_range(0..=spread))).await;
    let mut n = 0u32;
    while Instant::now() < deadline {
        n += 1;
        let file = format!("lt-{n}-{printer}{file_ext}");
        let duration_s = rng.random_range(plan.print_s.0..=plan.print_s.1);
        let roll: f64 = rng.random();
        let mut outcome = if roll < plan.fail_share {
            Outcome::Fail
        } else if roll < plan.fail_share + plan.cancel_share {
            Outcome::Cancel
        } else {
            Outcome::Complete
        };
        let body = json!({"file": file, "duration_s": duration_s});
        if let Err(e) = ctl.action(&printer, "print", body).await {
            log.control_errors += 1;
            // A timeout may still have started it: ask the printer.
            let tag = format!("lt-{n}-");
            let started =
                matches!(ctl.state(&printer).await, Ok((true, Some(f))) if f.contains(&tag));
            if !started {
                tracing::warn!(printer_id = %printer, error = %e, "could not start a print");
                sleep(plan.gap).await;
                continue;
            }
        }
        let started = Instant::now();
        let seen_by = started + plan.min_age;
        let full = Duration::from_secs(duration_s);
        let planned_end = match outcome {
            Outcome::Complete => started + full,
            _ => {
                let lo = plan.min_age.as_millis() as u64;
                let hi = (full.as_millis() as u64 * 9 / 10).max(lo);
                started + Duration::from_millis(rng.random_range(lo..=hi))
            }
        };
        let early = planned_end > deadline;
        if early {
            sleep_until(deadline.max(seen_by)).await;
            outcome = Outcome::Finish;
        } else {
            sleep_until(planned_end).await;
        }
        let ended = match outcome {
            Outcome::Complete => wait_for_end(&ctl, &printer).await,
            // It may have run out by itself a moment before: completed all the same.
            Outcome::Finish => match ctl.action(&printer, "finish", json!({})).await {
                Err(e) if e.to_string().contains("invalid_state") => Ok(()),
                r => r,
            },
            Outcome::Fail => ctl.action(&printer, "fail", json!({})).await,
            Outcome::Cancel => ctl.action(&printer, "cancel", json!({})).await,
        };
        if let Err(e) = ended {
            log.control_errors += 1;
            tracing::warn!(printer_id = %printer, error = %e, "could not end a print as planned");
        }
        log.started.push(Started {
            printer: printer.clone(),
            n,
            file,
            outcome,
        });
        if early {
            break;
        }
        sleep(plan.gap).await;
        // A printer that a failure leaves needing a hand (OctoPrint's `Offline after
        // error`) gets it once the daemon has had time to see the failure.
        if let (Outcome::Fail, Some(action)) = (outcome, after_fail)
            && let Err(e) = ctl.action(&printer, action, json!({})).await
        {
            log.control_errors += 1;
            tracing::warn!(printer_id = %printer, error = %e, "could not {action} after a failure");
        }
    }
    log
}

/// Waits until the simulator says the print ran out; `finish`es it if it has not within
/// `END_WAIT` (the job must then still be `completed`).
async fn wait_for_end(ctl: &Control, printer: &str) -> anyhow::Result<()> {
    let until = Instant::now() + END_WAIT;
    while Instant::now() < until {
        if let Ok((false, _)) = ctl.state(printer).await {
            return Ok(());
        }
        sleep(Duration::from_millis(500)).await;
    }
    ctl.action(printer, "finish", json!({})).await
}
