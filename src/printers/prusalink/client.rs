//! HTTP to one PrusaLink printer: Digest auth (user `maker`, MD5, no qop; diqwest keeps
//! the nonce and re-challenges once when it goes stale) or `X-Api-Key`, a timeout on
//! every request, and bodies read up to a limit (protocols.md §3.2).
//!
//! Errors are sorted by what the driver does with them: the printer cannot be reached
//! (reconnect with backoff), it refused our credentials (AuthFailed, slow retry), or it
//! answered something unusable (count, log, skip, stay connected). None of them carries
//! a secret: messages are written here, not passed through from the libraries.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use diqwest::{DigestAuthSession, WithDigestAuth};
use reqwest::{Method, StatusCode};

use crate::config::{PrinterConfig, Secret};

/// Largest answer read from a printer. PrusaLink's status and job answers are about a
/// kilobyte; 256 KiB leaves room for metadata without letting a confused device make
/// the daemon buffer megabytes.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// No connection or no answer in time: the printer is unreachable.
    #[error("{0}")]
    Unreachable(String),
    /// 401 after a full Digest round (or with the API key).
    #[error("{0}")]
    Unauthorized(String),
    /// An answer we cannot use (status code, size, body).
    #[error("{0}")]
    BadAnswer(String),
    /// The printer answered with a redirect. Never followed: every request carries the
    /// printer's credentials (`X-Api-Key`, Digest), which must go to the printer and
    /// nowhere else.
    #[error("{0}")]
    Redirected(String),
}

/// An answer that came back.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Vec<u8>,
}

enum Auth {
    ApiKey(Secret),
    Digest(Arc<DigestAuthSession>),
}

/// The HTTP client every PrusaLink printer shares (one per tokio runtime and connect
/// timeout: a pooled connection lives on the runtime that opened it, and tests run many
/// runtimes; the daemon has one of each). A `reqwest::Client` per printer cost ~115 KB
/// and a read of the system's root certificates, for TLS that plain-HTTP PrusaLink never
/// uses: 1,000 printers took 220 MB. Shared, each printer still has its own keep-alive connection (the pool
/// keeps at most one idle per host) and its own Digest session.
fn shared_http(connect_timeout: Duration) -> Result<reqwest::Client, HttpError> {
    type Key = (tokio::runtime::Id, Duration);
    static SHARED: OnceLock<Mutex<HashMap<Key, reqwest::Client>>> = OnceLock::new();
    let key = tokio::runtime::Handle::try_current()
        .ok()
        .map(|h| (h.id(), connect_timeout));
    let mut clients = SHARED
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(c) = key.as_ref().and_then(|k| clients.get(k)) {
        return Ok(c.clone());
    }
    let http = reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .tcp_nodelay(true)
        // One printer, one connection kept alive: the printer's embedded server
        // has few sockets to spare (§3.1).
        .pool_max_idle_per_host(1)
        .pool_idle_timeout(Duration::from_secs(90))
        // Never follow a redirect: it would send the printer's API key or Digest answer
        // to whatever host the `Location` names (issue 14).
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .user_agent(concat!("printfarmd/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| HttpError::BadAnswer(format!("cannot build the HTTP client: {e}")))?;
    if let Some(k) = key {
        clients.insert(k, http.clone());
    }
    Ok(http)
}

pub struct Client {
    http: reqwest::Client,
    base: String,
    auth: Auth,
    request_timeout: Duration,
}

impl Client {
    pub fn new(
        cfg: &PrinterConfig,
        connect_timeout: Duration,
        request_timeout: Duration,
    ) -> Result<Self, HttpError> {
        let http = shared_http(connect_timeout)?;
        let host = if cfg.host.contains(':') && !cfg.host.starts_with('[') {
            format!("[{}]", cfg.host)
        } else {
            cfg.host.clone()
        };
        let base = format!("http://{host}:{}", cfg.port_or_default());
        let auth = match (&cfg.api_key, &cfg.password) {
            (Some(k), _) if !k.is_empty() => Auth::ApiKey(k.clone()),
            (_, Some(p)) => Auth::Digest(Arc::new(DigestAuthSession::new(
                cfg.username.clone().unwrap_or_else(|| "maker".into()),
                p.expose(),
            ))),
            _ => Auth::ApiKey(Secret::new("")),
        };
        Ok(Self {
            http,
            base,
            auth,
            request_timeout,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// GETs `path`; 2xx, 204 and 404 come back as answers, 401 and other failures as
    /// errors.
    pub async fn get(&self, path: &str) -> Result<Answer, HttpError> {
        self.request(Method::GET, path, None).await
    }

    /// A control request (`PUT`, `DELETE`, `POST` with a JSON body). Every status but
    /// 401 comes back as an answer: the caller tells the printer's refusals apart.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        json: Option<&'static str>,
    ) -> Result<Answer, HttpError> {
        self.request(method, path, json).await
    }

    async fn request(
        &self,
        method: Method,
        path: &str,
        json: Option<&'static str>,
    ) -> Result<Answer, HttpError> {
        let control = method != Method::GET;
        let url = format!("{}{path}", self.base);
        // A Digest exchange is up to three requests (stale cached nonce, challenge,
        // answer): bound the whole of it too.
        let whole = self.request_timeout * 3;
        let sent = tokio::time::timeout(whole, async {
            let mut req = self
                .http
                .request(method.clone(), &url)
                .timeout(self.request_timeout)
                .header("Accept", "application/json");
            if let Some(body) = json {
                req = req.header("Content-Type", "application/json").body(body);
            }
            match &self.auth {
                Auth::ApiKey(k) => req
                    .header("X-Api-Key", k.expose())
                    .send()
                    .await
                    .map_err(|e| self.transport(path, &e)),
                Auth::Digest(session) => {
                    req.send_digest_auth(session.as_ref())
                        .await
                        .map_err(|e| match e {
                            diqwest::error::Error::Reqwest(e) => self.transport(path, &e),
                            diqwest::error::Error::DigestAuth(_)
                            | diqwest::error::Error::ToStr(_) => HttpError::Unauthorized(
                                "the printer did not offer Digest authentication; set `api_key` for this printer instead of `username`/`password`".into(),
                            ),
                            other => HttpError::BadAnswer(format!("GET {path}: {other}")),
                        })
                }
            }
        })
        .await
        .map_err(|_| {
            HttpError::Unreachable(format!(
                "no answer from {} within {} s",
                self.base,
                whole.as_secs()
            ))
        })??;
        self.read(path, sent, control).await
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
                "cannot connect to {} (is the printer on?)",
                self.base
            ))
        } else {
            HttpError::Unreachable(format!("GET {path} on {} failed: {}", self.base, e))
        }
    }

    async fn read(
        &self,
        path: &str,
        mut resp: reqwest::Response,
        control: bool,
    ) -> Result<Answer, HttpError> {
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED {
            return Err(HttpError::Unauthorized(match self.auth {
                Auth::ApiKey(_) => "the printer refused the API key; check the password/API key under Settings > Network > PrusaLink on the printer".into(),
                Auth::Digest(_) => "the printer refused the user name or password; check the password under Settings > Network > PrusaLink on the printer".into(),
            }));
        }
        if status.is_redirection() {
            return Err(HttpError::Redirected(format!(
                "{} answered GET {path} with a redirect ({status}) to another address; printfarmd does not follow redirects, which would send the printer's credentials elsewhere: set `host` and `port` to the printer's own address",
                self.base
            )));
        }
        if !(control || status.is_success() || status == StatusCode::NOT_FOUND) {
            return Err(HttpError::BadAnswer(format!(
                "GET {path} answered {status}"
            )));
        }
        if resp
            .content_length()
            .is_some_and(|n| n > MAX_BODY_BYTES as u64)
        {
            return Err(HttpError::BadAnswer(format!(
                "GET {path}: the answer is larger than {MAX_BODY_BYTES} bytes"
            )));
        }
        let mut body = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(c)) => {
                    if body.len() + c.len() > MAX_BODY_BYTES {
                        return Err(HttpError::BadAnswer(format!(
                            "GET {path}: the answer is larger than {MAX_BODY_BYTES} bytes"
                        )));
                    }
                    body.extend_from_slice(&c);
                }
                Ok(None) => break,
                Err(e) => return Err(self.transport(path, &e)),
            }
        }
        Ok(Answer { status, body })
    }
}
