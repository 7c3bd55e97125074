//! HTTP and the push socket to one OctoPrint server (protocols.md §4): `X-Api-Key` on
//! every request, no redirects followed (a redirect from a printer's API is a proxy or a
//! login page, never an answer, and following it would send the key elsewhere), a
//! timeout on every request, and bodies and socket messages read up to a limit.
//!
//! Errors are sorted by what the driver does with them, as for PrusaLink: unreachable
//! (reconnect with backoff), refused key (AuthFailed, slow retry), unusable answer (count,
//! skip). None of them carries the key: messages are written here.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use reqwest::redirect::Policy;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::config::{PrinterConfig, Secret};

/// Largest REST answer read. `/api/job` and `/api/printer` are about a kilobyte; 256 KiB
/// leaves room for a long temperature history without buffering megabytes.
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// Largest push-socket message. The first (`history`) message carries recent log lines
/// and a temperature history (hundreds of KB on a busy server); 4 MiB bounds a confused
/// server.
pub const MAX_WS_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("{0}")]
    Unreachable(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    BadAnswer(String),
}

#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Vec<u8>,
}

pub const REFUSED_KEY: &str = "OctoPrint refused the API key; check `api_key` (OctoPrint: Settings > Application Keys, or the user's API key)";

pub struct Client {
    http: reqwest::Client,
    base: String,
    ws_url: String,
    key: Secret,
    connect_timeout: Duration,
    request_timeout: Duration,
}

impl Client {
    pub fn new(
        cfg: &PrinterConfig,
        connect_timeout: Duration,
        request_timeout: Duration,
    ) -> Result<Self, HttpError> {
        let http = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .tcp_nodelay(true)
            .redirect(Policy::none())
            .pool_max_idle_per_host(1)
            .no_proxy()
            .user_agent(concat!("printfarmd/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| HttpError::BadAnswer(format!("cannot build the HTTP client: {e}")))?;
        let host = if cfg.host.contains(':') && !cfg.host.starts_with('[') {
            format!("[{}]", cfg.host)
        } else {
            cfg.host.clone()
        };
        let hostport = format!("{host}:{}", cfg.port_or_default());
        Ok(Self {
            http,
            base: format!("http://{hostport}"),
            ws_url: format!("ws://{hostport}/sockjs/websocket"),
            key: cfg.api_key.clone().unwrap_or_else(|| Secret::new("")),
            connect_timeout,
            request_timeout,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub async fn get(&self, path: &str) -> Result<Answer, HttpError> {
        let req = self.http.get(format!("{}{path}", self.base));
        self.send(path, req).await
    }

    pub async fn post_json(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<Answer, HttpError> {
        let req = self.http.post(format!("{}{path}", self.base)).json(body);
        self.send(path, req).await
    }

    async fn send(&self, path: &str, req: reqwest::RequestBuilder) -> Result<Answer, HttpError> {
        let resp = req
            .timeout(self.request_timeout)
            .header("Accept", "application/json")
            .header("X-Api-Key", self.key.expose())
            .send()
            .await
            .map_err(|e| self.transport(path, &e))?;
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(HttpError::Unauthorized(REFUSED_KEY.into()));
        }
        if status.is_redirection() {
            return Err(HttpError::BadAnswer(format!(
                "{path} on {} answered a redirect ({status}); point `host`/`port` at OctoPrint itself",
                self.base
            )));
        }
        self.read(path, resp).await
    }

    fn transport(&self, path: &str, e: &reqwest::Error) -> HttpError {
        if e.is_timeout() {
            HttpError::Unreachable(format!(
                "no answer from {} within {} s",
                self.base,
                self.request_timeout.as_secs().max(1)
            ))
        } else if e.is_connect() {
            HttpError::Unreachable(format!(
                "cannot connect to {} (is OctoPrint running?)",
                self.base
            ))
        } else {
            HttpError::Unreachable(format!("{path} on {} failed: {e}", self.base))
        }
    }

    async fn read(&self, path: &str, mut resp: reqwest::Response) -> Result<Answer, HttpError> {
        let status = resp.status();
        let too_big = || {
            HttpError::BadAnswer(format!(
                "{path}: the answer is larger than {MAX_BODY_BYTES} bytes"
            ))
        };
        if resp
            .content_length()
            .is_some_and(|n| n > MAX_BODY_BYTES as u64)
        {
            return Err(too_big());
        }
        let mut body = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(c)) => {
                    if body.len() + c.len() > MAX_BODY_BYTES {
                        return Err(too_big());
                    }
                    body.extend_from_slice(&c);
                }
                Ok(None) => break,
                Err(e) => return Err(self.transport(path, &e)),
            }
        }
        Ok(Answer { status, body })
    }

    /// Logs in passively with the key (`POST /api/login {"passive": true}`), opens the
    /// raw WebSocket transport of the push API and authenticates it (§4.2).
    pub async fn open_socket(&self) -> Result<Socket, HttpError> {
        let a = self
            .post_json("/api/login", &serde_json::json!({"passive": true}))
            .await?;
        if !a.status.is_success() {
            return Err(HttpError::BadAnswer(format!(
                "POST /api/login answered {}",
                a.status
            )));
        }
        let v: serde_json::Value = serde_json::from_slice(&a.body)
            .map_err(|e| HttpError::BadAnswer(format!("POST /api/login: not JSON ({e})")))?;
        let (Some(name), Some(session)) = (v["name"].as_str(), v["session"].as_str()) else {
            return Err(HttpError::BadAnswer(
                "POST /api/login: no `name` and `session` in the answer".into(),
            ));
        };
        let config = WebSocketConfig::default()
            .max_message_size(Some(MAX_WS_MESSAGE_BYTES))
            .max_frame_size(Some(MAX_WS_MESSAGE_BYTES));
        let connect =
            tokio_tungstenite::connect_async_with_config(&self.ws_url, Some(config), false);
        let (mut ws, _) = tokio::time::timeout(self.connect_timeout, connect)
            .await
            .map_err(|_| {
                HttpError::Unreachable(format!(
                    "the push socket of {} did not open within {} s",
                    self.base,
                    self.connect_timeout.as_secs().max(1)
                ))
            })?
            .map_err(|e| {
                HttpError::Unreachable(format!("cannot open the push socket of {}: {e}", self.base))
            })?;
        // The subscription goes before `auth` (§4.2): no log lines or terminal messages.
        let subscribe = serde_json::json!({"subscribe": {"state": {"logs": false, "messages": false}, "events": true, "plugins": false}});
        let auth = serde_json::json!({"auth": format!("{name}:{session}")});
        for m in [subscribe, auth] {
            tokio::time::timeout(self.request_timeout, ws.send(Message::text(m.to_string())))
                .await
                .map_err(|_| HttpError::Unreachable("the push socket stalled".into()))?
                .map_err(|e| HttpError::Unreachable(format!("push socket: {e}")))?;
        }
        Ok(ws)
    }
}

/// The next text message of the socket; `Err` when it closed or failed.
pub async fn next_text(ws: &mut Socket) -> Result<Vec<u8>, String> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => return Ok(t.as_bytes().to_vec()),
            Some(Ok(Message::Binary(b))) => return Ok(b.to_vec()),
            Some(Ok(Message::Close(_))) | None => {
                return Err("OctoPrint closed the push socket".into());
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(format!("push socket: {e}")),
        }
    }
}
