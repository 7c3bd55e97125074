//! The simulated farm: builds the printers, binds their sockets, and is the one handle
//! tests, the control API, the auto driver and `printfarmd simulate` go through.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::bambu_printer::BambuPrinter;
use super::moonraker_server::MoonPrinter;
use super::octoprint_server::OctoPrinter;
use super::prusa_server::PrusaPrinter;
use super::{Action, SimError};

mod builder;
pub use builder::SimFarmBuilder;

/// One simulated printer as its `[[printers]]` config entry, plus its model style
/// (`x1`, `p1`, `replay` for Bambu; `buddy` for PrusaLink).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimPrinterInfo {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub host: String,
    pub port: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// OctoPrint: the API key the server accepts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    pub style: String,
}

/// A snapshot of what a simulated printer is doing, in its own protocol's words.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimStatus {
    pub id: String,
    /// Bambu `gcode_state` (`IDLE`, `PREPARE`, `RUNNING`, `PAUSE`, `FINISH`, `FAILED`) or
    /// PrusaLink `printer.state` (`IDLE`, `PRINTING`, `PAUSED`, `FINISHED`, `STOPPED`, `ERROR`).
    pub state: String,
    /// A print is accepted and not ended (Bambu: also while the stale FINISH still shows).
    pub active: bool,
    /// The job name as the printer reports it (Bambu keeps it after the job ended).
    pub file: Option<String>,
    /// 0–100.
    pub progress: f64,
    /// Bambu `task_id` (absent when "0"), PrusaLink `job.id`.
    pub job_id: Option<String>,
    pub layer: Option<u32>,
    pub total_layers: Option<u32>,
    /// False while rebooting.
    pub online: bool,
    /// True while silenced.
    pub silent: bool,
    /// Open MQTT sessions (Bambu) for this printer.
    pub clients: usize,
    /// Reports published (Bambu) or status responses served (PrusaLink).
    pub reports_sent: u64,
    pub jobs_started: u64,
}

/// One report a Bambu printer published, with its simulator timestamp.
#[derive(Debug, Clone, PartialEq)]
pub struct SentReport {
    pub sent_at_ms: u64,
    pub raw: Bytes,
}

impl SentReport {
    /// The payload as JSON; `None` for a garbage payload.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.raw).ok()
    }
}

#[derive(Debug)]
pub(crate) enum SimPrinter {
    Bambu(Arc<BambuPrinter>),
    Prusa(Arc<PrusaPrinter>),
    Octo(Arc<OctoPrinter>),
    Moon(Arc<MoonPrinter>),
}

/// What the farm's handles (tests, control API, auto driver) share.
#[derive(Debug)]
pub(crate) struct FarmShared {
    pub printers: Vec<SimPrinter>,
    pub infos: Vec<SimPrinterInfo>,
    pub ca_pem: String,
    index: HashMap<String, usize>,
}

impl FarmShared {
    fn get(&self, id: &str) -> Result<&SimPrinter, SimError> {
        self.index
            .get(id)
            .map(|&i| &self.printers[i])
            .ok_or_else(|| SimError::UnknownPrinter(id.to_string()))
    }

    pub fn control(&self, id: &str, action: &Action) -> Result<(), SimError> {
        let result = match self.get(id)? {
            SimPrinter::Bambu(p) => p.control(action),
            SimPrinter::Prusa(p) => p.control(action),
            SimPrinter::Octo(p) => p.control(action),
            SimPrinter::Moon(p) => p.control(action),
        };
        match &result {
            Ok(()) => tracing::debug!(printer_id = id, action = action.name(), "simulator action"),
            Err(e) => {
                tracing::debug!(printer_id = id, action = action.name(), error = %e, "simulator action refused")
            }
        }
        result
    }

    pub fn status(&self, id: &str) -> Result<SimStatus, SimError> {
        Ok(match self.get(id)? {
            SimPrinter::Bambu(p) => p.status(),
            SimPrinter::Prusa(p) => p.status(),
            SimPrinter::Octo(p) => p.status(),
            SimPrinter::Moon(p) => p.status(),
        })
    }

    /// When the printer's recent status reports (Bambu `push_status`), status answers
    /// (PrusaLink `/api/v1/status`, `/api/job`; OctoPrint `/api/job`) or pushes
    /// (OctoPrint's socket messages, Moonraker's updates and notifications) were sent,
    /// unix ms, oldest first.
    pub fn sent_log(&self, id: &str) -> Result<Vec<u64>, SimError> {
        Ok(match self.get(id)? {
            SimPrinter::Bambu(p) => p.sent_log(),
            SimPrinter::Prusa(p) => p.sent_log(),
            SimPrinter::Octo(p) => p.sent_log(),
            SimPrinter::Moon(p) => p.sent_log(),
        })
    }

    pub fn info(&self, id: &str) -> Result<&SimPrinterInfo, SimError> {
        self.index
            .get(id)
            .map(|&i| &self.infos[i])
            .ok_or_else(|| SimError::UnknownPrinter(id.to_string()))
    }

    /// The `[[printers]]` block `printfarmd run` accepts as is.
    pub fn config_toml(&self) -> String {
        let q = |s: &str| toml::Value::String(s.to_string()).to_string();
        let mut out =
            String::from("# Simulated printers (printfarmd simulate). Paste into daemon.toml.\n");
        for p in &self.infos {
            out.push_str("\n[[printers]]\n");
            out.push_str(&format!(
                "id = {}\ntype = {}\nname = {}\nhost = {}\nport = {}\n",
                q(&p.id),
                q(&p.kind),
                q(&p.name),
                q(&p.host),
                p.port
            ));
            for (key, value) in [
                ("serial", &p.serial),
                ("access_code", &p.access_code),
                ("username", &p.username),
                ("password", &p.password),
                ("api_key", &p.api_key),
            ] {
                if let Some(v) = value {
                    out.push_str(&format!("{key} = {}\n", q(v)));
                }
            }
        }
        out
    }
}

/// A running simulated farm. Dropping it without `shutdown` leaves its tasks running until
/// the runtime ends.
#[derive(Debug)]
pub struct SimFarm {
    shared: Arc<FarmShared>,
    broker_addr: SocketAddr,
    control_addr: Option<SocketAddr>,
    ca_pem: String,
    shutdown_tx: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl SimFarm {
    pub fn builder() -> SimFarmBuilder {
        SimFarmBuilder::default()
    }

    /// Every printer as its `[[printers]]` entry plus its style, in id order of creation.
    pub fn printers(&self) -> Vec<SimPrinterInfo> {
        self.shared.infos.clone()
    }

    /// One printer's entry.
    pub fn printer(&self, id: &str) -> Result<SimPrinterInfo, SimError> {
        self.shared.info(id).cloned()
    }

    /// A `[[printers]]` TOML block that `printfarmd run` accepts as is.
    pub fn config_toml(&self) -> String {
        self.shared.config_toml()
    }

    /// Makes printer `id` do something.
    pub async fn control(&self, id: &str, action: Action) -> Result<(), SimError> {
        self.shared.control(id, &action)
    }

    /// What printer `id` is doing now.
    pub fn status(&self, id: &str) -> Result<SimStatus, SimError> {
        self.shared.status(id)
    }

    /// The address of the shared Bambu MQTT broker.
    pub fn broker_addr(&self) -> SocketAddr {
        self.broker_addr
    }

    /// The address of the HTTP control API, if it was started.
    pub fn control_addr(&self) -> Option<SocketAddr> {
        self.control_addr
    }

    /// The simulator CA (PEM) that signs every Bambu leaf certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The most recent reports (up to 256) Bambu printer `id` published, oldest first.
    /// Empty for a PrusaLink printer.
    pub fn report_log(&self, id: &str) -> Result<Vec<SentReport>, SimError> {
        Ok(match self.shared.get(id)? {
            SimPrinter::Bambu(p) => p.report_log(),
            SimPrinter::Prusa(_) | SimPrinter::Octo(_) | SimPrinter::Moon(_) => Vec::new(),
        })
    }

    /// Send times (unix ms) of printer `id`'s recent status reports or status answers,
    /// oldest first (`GET /printers/{id}/sent`).
    pub fn sent_log(&self, id: &str) -> Result<Vec<u64>, SimError> {
        self.shared.sent_log(id)
    }

    /// Stops every listener and printer and drops all client connections.
    pub async fn shutdown(&self) {
        let _ = self.shutdown_tx.send(true);
        for p in &self.shared.printers {
            if let SimPrinter::Bambu(b) = p {
                b.close_all();
            }
        }
        let tasks: Vec<_> =
            std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        for t in &tasks {
            t.abort();
        }
        for t in tasks {
            let _ = t.await;
        }
    }
}
