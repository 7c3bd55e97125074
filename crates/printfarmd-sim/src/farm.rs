//! The simulated farm: builds the printers, binds their sockets, and is the one handle
//! tests, the control API, the auto driver and `printfarmd simulate` go through.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::bambu::BambuModel;
use super::bambu_printer::{BambuPrinter, Source};
use super::broker::Broker;
use super::moonraker_server::MoonPrinter;
use super::octoprint_server::OctoPrinter;
use super::prusa_server::PrusaPrinter;
use super::replay::ReplayModel;
use super::tls::SimCertResolver;
use super::{Action, SimError, Style};

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

/// Builds a [`SimFarm`]. Defaults: no printers, 127.0.0.1 with ephemeral ports everywhere,
/// auto off, `prepare_ms` 3000, `stale_finish_ms` 2000, `reboot_ms` 1500, first PrusaLink job
/// id 1, a random seed.
#[derive(Debug, Clone)]
pub struct SimFarmBuilder {
    bambu: Vec<Style>,
    prusa: usize,
    octoprint: usize,
    moonraker: usize,
    auto: bool,
    broker_addr: SocketAddr,
    control_addr: Option<SocketAddr>,
    prusa_base_port: u16,
    prepare_ms: u64,
    stale_finish_ms: u64,
    reboot_ms: u64,
    prusa_first_job_id: u64,
    replays: Vec<(String, PathBuf)>,
    seed: Option<u64>,
}

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

impl Default for SimFarmBuilder {
    fn default() -> Self {
        Self {
            bambu: Vec::new(),
            prusa: 0,
            octoprint: 0,
            moonraker: 0,
            auto: false,
            broker_addr: SocketAddr::new(LOCALHOST, 0),
            control_addr: Some(SocketAddr::new(LOCALHOST, 0)),
            prusa_base_port: 0,
            prepare_ms: 3000,
            stale_finish_ms: 2000,
            reboot_ms: 1500,
            prusa_first_job_id: 1,
            replays: Vec::new(),
            seed: None,
        }
    }
}

impl SimFarmBuilder {
    /// Adds `n` Bambu printers of one style (call again for another style; ids continue).
    pub fn bambu(mut self, n: usize, style: Style) -> Self {
        self.bambu.extend(std::iter::repeat_n(style, n));
        self
    }

    /// Adds `n` PrusaLink printers.
    pub fn prusalink(mut self, n: usize) -> Self {
        self.prusa += n;
        self
    }

    /// Adds `n` OctoPrint servers (each with its printer; one HTTP server each).
    pub fn octoprint(mut self, n: usize) -> Self {
        self.octoprint += n;
        self
    }

    /// Adds `n` Klipper printers behind Moonraker (one HTTP + JSON-RPC WebSocket server each).
    pub fn moonraker(mut self, n: usize) -> Self {
        self.moonraker += n;
        self
    }

    /// Printers start and end prints by themselves (varied files, tens of seconds to a few
    /// minutes, some pauses, failures and cancels).
    pub fn auto(mut self, on: bool) -> Self {
        self.auto = on;
        self
    }

    /// Where the shared MQTT broker listens (port 0: any free port).
    pub fn broker_addr(mut self, addr: SocketAddr) -> Self {
        self.broker_addr = addr;
        self
    }

    /// Where the HTTP control API listens; `None` for no control API.
    pub fn control_addr(mut self, addr: Option<SocketAddr>) -> Self {
        self.control_addr = addr;
        self
    }

    /// First PrusaLink port (printer n gets base + n − 1); 0 for ephemeral ports.
    pub fn prusa_base_port(mut self, port: u16) -> Self {
        self.prusa_base_port = port;
        self
    }

    /// Time from accepting a Bambu job to printing (half `PREPARE`, half preparation stages).
    pub fn prepare_ms(mut self, ms: u64) -> Self {
        self.prepare_ms = ms;
        self
    }

    /// How long a Bambu printer keeps reporting the old `FINISH` after accepting a new job.
    pub fn stale_finish_ms(mut self, ms: u64) -> Self {
        self.stale_finish_ms = ms;
        self
    }

    /// How long a rebooting printer stays unreachable.
    pub fn reboot_ms(mut self, ms: u64) -> Self {
        self.reboot_ms = ms;
        self
    }

    /// The `job.id` the PrusaLink printers give their next print (16-bit; 65535 wraps to 0).
    pub fn prusa_first_job_id(mut self, id: u64) -> Self {
        self.prusa_first_job_id = id;
        self
    }

    /// Adds a Bambu printer with this id that plays a JSON-lines recording (see `replay.rs`);
    /// playback starts when the first client subscribes.
    pub fn replay(mut self, id: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        self.replays.push((id.into(), path.into()));
        self
    }

    /// Seeds serials, access codes, passwords and the auto driver (reproducible farms).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    pub async fn start(self) -> anyhow::Result<SimFarm> {
        let seed = self.seed.unwrap_or_else(rand::random);
        let mut rng = StdRng::seed_from_u64(seed);
        let now = Instant::now();
        let prepare = Duration::from_millis(self.prepare_ms);
        let stale = Duration::from_millis(self.stale_finish_ms);
        let reboot = Duration::from_millis(self.reboot_ms);
        let mut used_codes = HashSet::new();
        let mut code = |rng: &mut StdRng| loop {
            let c = format!("{:08}", rng.random_range(0..100_000_000u32));
            if used_codes.insert(c.clone()) {
                break c;
            }
        };

        let mut bambu = Vec::new();
        let mut infos = Vec::new();
        for (i, style) in self.bambu.iter().enumerate() {
            let n = i + 1;
            let serial = match style {
                Style::X1 => format!("00M09A{:09}", 350_000_000 + n),
                Style::P1 => format!("01P00A{:09}", 450_000_000 + n),
            };
            let task_base = rng.random_range(100_000_000..900_000_000u64);
            let model = BambuModel::new(*style, &serial, prepare, stale, now, task_base);
            let printer = BambuPrinter::new(
                format!("bambu_{n}"),
                serial,
                code(&mut rng),
                Source::Model(Box::new(model)),
                reboot,
                rng.random(),
            );
            bambu.push(Arc::new(printer));
        }
        for (k, (id, path)) in self.replays.iter().enumerate() {
            let lines = ReplayModel::load(path)?;
            let serial = format!("09R00A{:09}", 550_000_000 + k + 1);
            let source = Source::Replay(Box::new(ReplayModel::new(lines, now)));
            bambu.push(Arc::new(BambuPrinter::new(
                id.clone(),
                serial,
                code(&mut rng),
                source,
                reboot,
                rng.random(),
            )));
        }

        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let mut tasks = Vec::new();

        let resolver = Arc::new(SimCertResolver::new(
            bambu.iter().map(|p| p.serial.clone()),
        )?);
        let ca_pem = resolver.ca_pem().to_string();
        let listener = TcpListener::bind(self.broker_addr).await.with_context(|| {
            format!(
                "the simulated Bambu broker cannot listen on {}",
                self.broker_addr
            )
        })?;
        let broker_addr = listener.local_addr()?;
        let broker = Arc::new(Broker::new(&bambu, resolver.server_config()?));
        tasks.push(tokio::spawn(
            Arc::clone(&broker).run(listener, shutdown_rx.clone()),
        ));
        let host = advertised_host(broker_addr.ip());
        for p in &bambu {
            tasks.push(tokio::spawn(Arc::clone(p).run()));
            let style = p
                .style
                .map(|s| if s == Style::X1 { "x1" } else { "p1" })
                .unwrap_or("replay");
            infos.push(SimPrinterInfo {
                id: p.id.clone(),
                kind: "bambu".into(),
                name: format!(
                    "Simulated {} {}",
                    style.to_uppercase(),
                    p.id.trim_start_matches("bambu_")
                ),
                host: host.clone(),
                port: broker_addr.port(),
                serial: Some(p.serial.clone()),
                access_code: Some(p.access_code.clone()),
                username: None,
                password: None,
                api_key: None,
                style: style.into(),
            });
        }

        let mut prusa = Vec::new();
        for i in 0..self.prusa {
            let n = i + 1;
            let port = if self.prusa_base_port == 0 {
                0
            } else {
                self.prusa_base_port
                    .checked_add(i as u16)
                    .context("PrusaLink ports run past 65535")?
            };
            let addr = SocketAddr::new(LOCALHOST, port);
            let listener = TcpListener::bind(addr).await.with_context(|| {
                format!("simulated PrusaLink printer prusa_{n} cannot listen on {addr}")
            })?;
            let password: String = (0..12)
                .map(|_| {
                    char::from(
                        b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
                            [rng.random_range(0..55)],
                    )
                })
                .collect();
            let serial = format!("10589-37424416320{n:05}");
            let printer = Arc::new(PrusaPrinter::new(
                format!("prusa_{n}"),
                serial,
                password,
                listener.local_addr()?,
                self.prusa_first_job_id,
                reboot,
                rng.random(),
            ));
            tasks.push(tokio::spawn(
                Arc::clone(&printer).serve(listener, shutdown_rx.clone()),
            ));
            infos.push(SimPrinterInfo {
                id: printer.id.clone(),
                kind: "prusalink".into(),
                name: format!("Simulated MK4S {n}"),
                host: "127.0.0.1".into(),
                port: printer.addr.port(),
                serial: None,
                access_code: None,
                username: Some(super::digest::PRUSA_USER.into()),
                password: Some(printer.password.clone()),
                api_key: None,
                style: "buddy".into(),
            });
            prusa.push(printer);
        }

        let mut octo = Vec::new();
        for i in 0..self.octoprint {
            let n = i + 1;
            let addr = SocketAddr::new(LOCALHOST, 0);
            let listener = TcpListener::bind(addr).await.with_context(|| {
                format!("simulated OctoPrint server octo_{n} cannot listen on {addr}")
            })?;
            let key = format!("{:032X}", rng.random::<u128>());
            let printer = Arc::new(OctoPrinter::new(
                format!("octo_{n}"),
                key,
                listener.local_addr()?,
                reboot,
            ));
            tasks.push(tokio::spawn(
                Arc::clone(&printer).serve(listener, shutdown_rx.clone()),
            ));
            tasks.push(tokio::spawn(Arc::clone(&printer).tick(shutdown_rx.clone())));
            infos.push(SimPrinterInfo {
                id: printer.id.clone(),
                kind: "octoprint".into(),
                name: format!("Simulated OctoPrint {n}"),
                host: "127.0.0.1".into(),
                port: printer.addr.port(),
                serial: None,
                access_code: None,
                username: None,
                password: None,
                api_key: Some(printer.api_key.clone()),
                style: "octoprint".into(),
            });
            octo.push(printer);
        }

        let mut moon = Vec::new();
        for i in 0..self.moonraker {
            let n = i + 1;
            let addr = SocketAddr::new(LOCALHOST, 0);
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("simulated Moonraker moon_{n} cannot listen on {addr}"))?;
            let key = format!("{:032x}", rng.random::<u128>());
            let printer = Arc::new(MoonPrinter::new(
                format!("moon_{n}"),
                key,
                listener.local_addr()?,
                reboot,
                rng.random_range(1..0x8000),
            ));
            tasks.push(tokio::spawn(
                Arc::clone(&printer).serve(listener, shutdown_rx.clone()),
            ));
            tasks.push(tokio::spawn(Arc::clone(&printer).tick(shutdown_rx.clone())));
            infos.push(SimPrinterInfo {
                id: printer.id.clone(),
                kind: "moonraker".into(),
                name: format!("Simulated Klipper {n}"),
                host: "127.0.0.1".into(),
                port: printer.addr.port(),
                serial: None,
                access_code: None,
                username: None,
                password: None,
                api_key: Some(printer.api_key.clone()),
                style: "moonraker".into(),
            });
            moon.push(printer);
        }

        let mut printers: Vec<SimPrinter> = bambu.iter().cloned().map(SimPrinter::Bambu).collect();
        printers.extend(prusa.iter().cloned().map(SimPrinter::Prusa));
        printers.extend(octo.iter().cloned().map(SimPrinter::Octo));
        printers.extend(moon.iter().cloned().map(SimPrinter::Moon));
        let mut index = HashMap::new();
        for (i, info) in infos.iter().enumerate() {
            anyhow::ensure!(
                index.insert(info.id.clone(), i).is_none(),
                "two simulated printers share the id {:?}",
                info.id
            );
        }
        let shared = Arc::new(FarmShared {
            printers,
            infos,
            ca_pem: ca_pem.clone(),
            index,
        });

        let control_addr = match self.control_addr {
            Some(addr) => {
                let listener = TcpListener::bind(addr).await.with_context(|| {
                    format!("the simulator control API cannot listen on {addr}")
                })?;
                let bound = listener.local_addr()?;
                tasks.push(tokio::spawn(super::control::serve(
                    Arc::clone(&shared),
                    listener,
                    shutdown_rx.clone(),
                )));
                Some(bound)
            }
            None => None,
        };
        if self.auto {
            tasks.push(tokio::spawn(super::auto::run(
                Arc::clone(&shared),
                rng.random(),
            )));
        }
        tracing::info!(
            bambu = bambu.len(),
            prusalink = prusa.len(),
            octoprint = octo.len(),
            moonraker = moon.len(),
            broker = %broker_addr,
            control = ?control_addr,
            "simulated farm started"
        );
        Ok(SimFarm {
            shared,
            broker_addr,
            control_addr,
            ca_pem,
            shutdown_tx,
            tasks: Mutex::new(tasks),
        })
    }
}

fn advertised_host(ip: IpAddr) -> String {
    if ip.is_unspecified() {
        "127.0.0.1".into()
    } else {
        ip.to_string()
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
