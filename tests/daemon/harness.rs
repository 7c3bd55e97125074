//! Starts the real `printfarmd` binary as a user would (its own process, a config file,
//! a fresh SQLite file in a temporary directory, port 0) and gives tests HTTP and
//! WebSocket clients for it.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

/// How long a daemon may take to print its listening line. Generous: a debug build on a
/// loaded 2-core machine.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound for waiting on an expected WebSocket message.
pub const WS_WAIT: Duration = Duration::from_secs(10);

/// A printer entry so manual jobs have a printer to belong to. Nothing listens on
/// port 9 of loopback; that is fine for the API tests.
pub const TEST_PRINTERS: &str = r#"
[[printers]]
id = "prusa_1"
type = "prusalink"
host = "127.0.0.1"
port = 9
username = "maker"
password = "secret-pw-123"

[[printers]]
id = "bambu_1"
type = "bambu"
host = "127.0.0.1"
port = 9
serial = "01S00C000000001"
access_code = "87654321"
"#;

/// Starts `printfarmd run --config <config>` in `dir`, with no `PRINTFARMD_*` or
/// `JOB_CREATION_AUTO_CREATE` from the test's own environment but `env`, appends its
/// log to `log`, and waits for its listening line. Returns the process and its address.
pub fn spawn_binary(
    dir: &std::path::Path,
    config: &std::path::Path,
    env: &[(&str, &str)],
    log: Arc<Mutex<String>>,
) -> (Child, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_printfarmd"));
    cmd.arg("run").arg("--config").arg(config).current_dir(dir);
    for (k, _) in std::env::vars() {
        if k.starts_with("PRINTFARMD_") || k == "JOB_CREATION_AUTO_CREATE" {
            cmd.env_remove(k);
        }
    }
    cmd.env("PRINTFARMD_LOG", "info");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn printfarmd");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    {
        let log = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(i) = line.find("listening on http://") {
                    // The address ends at a space or, in a JSON log line, a quote.
                    let rest = &line[i + "listening on http://".len()..];
                    let addr = rest.split([' ', '"']).next().unwrap_or(rest);
                    let _ = tx.send(addr.trim().to_owned());
                }
                let mut l = log.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
    }
    match rx.recv_timeout(START_TIMEOUT) {
        Ok(addr) => (child, addr),
        Err(_) => {
            let _ = child.kill();
            panic!(
                "printfarmd did not start; its log:\n{}",
                log.lock().unwrap()
            );
        }
    }
}

pub struct Daemon {
    pub dir: Arc<tempfile::TempDir>,
    pub config_path: PathBuf,
    pub base: String,
    child: Child,
    pub log: Arc<Mutex<String>>,
    pub http: reqwest::Client,
}

impl Daemon {
    /// A daemon with the test printers and `extra` TOML appended to its config.
    pub fn start(extra: &str) -> Daemon {
        Self::start_with(extra, TEST_PRINTERS)
    }

    /// A daemon with `extra` TOML and the given `[[printers]]` entries.
    pub fn start_with(extra: &str, printers: &str) -> Daemon {
        let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
        let config_path = dir.path().join("daemon.toml");
        let db = dir.path().join("printfarmd.db");
        std::fs::write(
            &config_path,
            format!(
                "[server]\nbind = \"127.0.0.1:0\"\n[database]\npath = {db:?}\n{extra}\n{printers}"
            ),
        )
        .unwrap();
        Self::spawn(dir, config_path, &[])
    }

    /// Starts again on the same directory, config and database.
    pub fn restart(mut self) -> Daemon {
        self.stop();
        Self::spawn(self.dir.clone(), self.config_path.clone(), &[])
    }

    pub fn spawn(
        dir: Arc<tempfile::TempDir>,
        config_path: PathBuf,
        env: &[(&str, &str)],
    ) -> Daemon {
        let log = Arc::new(Mutex::new(String::new()));
        let (child, addr) = spawn_binary(dir.path(), &config_path, env, log.clone());
        Daemon {
            dir,
            config_path,
            base: format!("http://{addr}"),
            child,
            log,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn ws_url(&self) -> String {
        format!("{}/ws", self.base.replace("http://", "ws://"))
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// SIGTERM, then wait for the process to exit.
    pub fn stop(&mut self) {
        unsafe_kill(self.child.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        panic!("printfarmd did not stop within 20 s of SIGTERM");
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self.http.get(self.url(path)).send().await.unwrap();
        let code = r.status().as_u16();
        (code, r.json().await.unwrap_or(Value::Null))
    }

    /// A request as a script would send it: JSON with its content type, or without a
    /// body the custom header every bodiless write needs (browser-origin protection).
    pub async fn send(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.http.request(method.parse().unwrap(), self.url(path));
        match body {
            Some(b) => req = req.json(&b),
            None => req = req.header("X-Requested-With", "printfarmd-tests"),
        }
        let r = req.send().await.unwrap();
        let code = r.status().as_u16();
        (code, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn ws(&self) -> Ws {
        let (s, _) = tokio_tungstenite::connect_async(self.ws_url())
            .await
            .expect("ws connect");
        Ws { s }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unsafe_kill(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

pub struct Ws {
    pub s: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl Ws {
    pub async fn send_json(&mut self, v: Value) {
        self.s.send(Message::text(v.to_string())).await.unwrap();
    }

    /// The next text message as JSON, or None when the stream ended or `wait` passed.
    pub async fn next_json(&mut self, wait: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let m = tokio::time::timeout_at(deadline, self.s.next())
                .await
                .ok()??;
            match m {
                Ok(Message::Text(t)) => {
                    return Some(serde_json::from_str(&t).expect("server sent JSON"));
                }
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => continue,
            }
        }
    }

    /// The next message whose `type` is `kind`, skipping others.
    pub async fn next_of(&mut self, kind: &str) -> Value {
        let deadline = Instant::now() + WS_WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_json(left).await {
                Some(v) if v["type"] == kind => return v,
                Some(_) => continue,
                None => panic!("no {kind} message within {WS_WAIT:?}"),
            }
        }
    }

    /// Subscribes and waits for the confirmation, so later events are filtered.
    pub async fn subscribe(&mut self, v: Value) {
        let mut msg = v;
        msg["type"] = "subscribe".into();
        self.send_json(msg).await;
        self.next_of("subscribed").await;
    }
}
