//! Browser-origin protection (issue 15), on whether `[auth]` is on or off. A daemon on
//! 127.0.0.1 without keys is still reachable by every web page its operator opens, so:
//!
//! - `Host` must name this daemon (the bind address, `localhost`, a loopback address, or
//!   `[server] allowed_hosts`), else 421: a DNS-rebinding page has its own name there.
//! - A request that changes something must carry `Content-Type: application/json` or a
//!   custom header (`X-Requested-With`, any `X-Printfarmd-*`): a page on another site
//!   can send neither without a CORS preflight, which is refused. If it carries an
//!   `Origin`, that must be this daemon's own or an allowed one.
//! - `/ws` upgrades carry `Origin` from browsers: same origin or allowed, else 403.
//! - CORS is off unless `[server] allowed_origins` lists origins; then those (and only
//!   those) get the CORS headers and their preflights are answered.
//!
//! CORS is done here rather than with `warp::cors()`, which refuses any request whose
//! `Origin` is not in its list, and so would refuse the dashboard's own same-origin
//! writes (browsers send `Origin` on them) under whatever name it was opened by.

use std::net::{IpAddr, SocketAddr};

use warp::http::header::{self, HeaderMap, HeaderValue};
use warp::http::uri::Authority;
use warp::http::{Method, StatusCode};

use crate::api::ApiError;
use crate::config::ServerConfig;
use crate::config::access::{validate_hosts, validate_origins};

/// Headers a cross-origin page allowed by `allowed_origins` may send.
const CORS_ALLOWED_HEADERS: &[&str] = &[
    "authorization",
    "content-type",
    "x-api-key",
    "x-requested-with",
];
/// Any header starting with this counts as a custom header (and CORS allows it).
const CUSTOM_HEADER_PREFIX: &str = "x-printfarmd-";
const CORS_METHODS: &str = "GET, HEAD, POST, PUT, DELETE";
/// How long a browser may keep a preflight answer: ten minutes, so a changed
/// `allowed_origins` applies soon after a restart.
const CORS_MAX_AGE_SECS: &str = "600";
/// Characters of a refused Origin or Host repeated in an error message.
const ECHO_LEN: usize = 100;

pub struct Origins {
    port: u16,
    bind_ip: IpAddr,
    allowed_hosts: Vec<String>,
    allowed_origins: Vec<String>,
}

/// A host and port as compared here: lower case, IPv6 in brackets.
#[derive(Debug, PartialEq, Eq)]
struct HostPort {
    host: String,
    port: Option<u16>,
}

fn parse_authority(s: &str) -> Option<HostPort> {
    let a: Authority = s.parse().ok()?;
    if a.as_str().contains('@') {
        return None;
    }
    Some(HostPort {
        host: a.host().to_ascii_lowercase(),
        port: a.port_u16(),
    })
}

fn echo(s: &str) -> String {
    s.chars().take(ECHO_LEN).collect()
}

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

impl Origins {
    /// `bound` is the address actually listened on (port 0 resolved).
    pub fn new(bound: SocketAddr, server: &ServerConfig) -> Result<Self, String> {
        Ok(Self {
            port: bound.port(),
            bind_ip: bound.ip(),
            allowed_hosts: validate_hosts(&server.allowed_hosts)?,
            allowed_origins: validate_origins(&server.allowed_origins)?,
        })
    }

    fn host_allowed(&self, raw: &str) -> bool {
        let raw = raw.to_ascii_lowercase();
        let Some(hp) = parse_authority(&raw) else {
            return false;
        };
        let listed = self
            .allowed_hosts
            .iter()
            .any(|e| e == &raw || (!e.contains(':') || e.ends_with(']')) && *e == hp.host);
        if listed {
            return true;
        }
        if hp.port.unwrap_or(80) != self.port {
            return false;
        }
        if hp.host == "localhost" {
            return true;
        }
        match hp
            .host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            // An address is not a name, so no DNS can be rebound under it.
            Ok(ip) => ip.is_loopback() || ip == self.bind_ip || self.bind_ip.is_unspecified(),
            Err(_) => false,
        }
    }

    /// 421 unless the `Host` names this daemon. No `Host` at all (HTTP/1.0 tools) is let
    /// through: browsers always send one.
    pub fn check_host(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let Some(v) = headers.get(header::HOST) else {
            return Ok(());
        };
        match v.to_str() {
            Ok(h) if self.host_allowed(h) => Ok(()),
            other => Err(ApiError::new(
                StatusCode::MISDIRECTED_REQUEST,
                "host_not_allowed",
                format!(
                    "this daemon does not answer to the host name {:?}; open it by its address \
                     or localhost, or add the name to [server] allowed_hosts",
                    echo(other.unwrap_or("(not text)"))
                ),
            )),
        }
    }

    fn in_allowed_list(&self, origin: &str) -> bool {
        let o = origin.trim_end_matches('/').to_ascii_lowercase();
        self.allowed_origins.contains(&o)
    }

    /// Same origin: the Origin's host and port are the request's `Host` (checked above).
    fn same_origin(origin: &str, host: Option<&str>) -> bool {
        let Some(host) = host.and_then(|h| parse_authority(&h.to_ascii_lowercase())) else {
            return false;
        };
        let origin = origin.to_ascii_lowercase();
        let (rest, default_port) = if let Some(r) = origin.strip_prefix("http://") {
            (r, 80)
        } else if let Some(r) = origin.strip_prefix("https://") {
            (r, 443)
        } else {
            return false;
        };
        let Some(o) = parse_authority(rest) else {
            return false;
        };
        o.host == host.host && o.port.unwrap_or(default_port) == host.port.unwrap_or(default_port)
    }

    fn origin_ok(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let Some(v) = headers.get(header::ORIGIN) else {
            return Ok(());
        };
        let origin = v.to_str().unwrap_or("null");
        if Self::same_origin(origin, header_str(headers, "host")) || self.in_allowed_list(origin) {
            return Ok(());
        }
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "origin_not_allowed",
            format!(
                "a page on {:?} may not use this daemon; if it should, add its origin to \
                 [server] allowed_origins",
                echo(origin)
            ),
        ))
    }

    /// `/ws`: a browser's upgrade must come from this daemon's own page or an allowed
    /// origin. Clients that are not browsers send no `Origin`.
    pub fn check_ws(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        self.origin_ok(headers)
    }

    /// A request that changes something: JSON or a custom header, and no foreign Origin.
    pub fn check_write(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let json = header_str(headers, "content-type")
            .and_then(|c| c.split(';').next())
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"));
        let custom = headers.contains_key("x-requested-with")
            || headers
                .keys()
                .any(|k| k.as_str().starts_with(CUSTOM_HEADER_PREFIX));
        let has_body = headers.contains_key(header::CONTENT_TYPE)
            || headers.contains_key(header::TRANSFER_ENCODING)
            || header_str(headers, "content-length").is_some_and(|l| l.trim() != "0");
        if !json && !custom && has_body {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with Content-Type: application/json",
            ));
        }
        if !json && !custom {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "header_required",
                "a request that changes something needs Content-Type: application/json \
                 (with a JSON body) or, without a body, a custom header such as \
                 X-Requested-With: curl; web pages on other sites cannot send either",
            ));
        }
        self.origin_ok(headers)
    }

    pub fn is_write(method: &Method) -> bool {
        !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
    }

    /// The Origin to name in CORS headers: one listed in `allowed_origins`.
    pub fn cors_origin(&self, headers: &HeaderMap) -> Option<HeaderValue> {
        let v = headers.get(header::ORIGIN)?;
        self.in_allowed_list(v.to_str().ok()?).then(|| v.clone())
    }

    /// Answers a CORS preflight (`OPTIONS` with `Origin` and
    /// `Access-Control-Request-Method`); None for any other request.
    pub fn preflight(
        &self,
        method: &Method,
        headers: &HeaderMap,
    ) -> Option<Result<warp::reply::Response, ApiError>> {
        if *method != Method::OPTIONS
            || !headers.contains_key(header::ORIGIN)
            || !headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
        {
            return None;
        }
        Some(self.answer_preflight(headers))
    }

    fn answer_preflight(&self, headers: &HeaderMap) -> Result<warp::reply::Response, ApiError> {
        self.check_host(headers)?;
        let refuse = |what: String| {
            ApiError::new(
                StatusCode::FORBIDDEN,
                "origin_not_allowed",
                format!("{what}; CORS is open only to [server] allowed_origins"),
            )
        };
        let Some(origin) = self.cors_origin(headers) else {
            let o = header_str(headers, "origin").unwrap_or("(not text)");
            return Err(refuse(format!(
                "a page on {:?} may not call this daemon",
                echo(o)
            )));
        };
        let method = header_str(headers, "access-control-request-method").unwrap_or("");
        if !CORS_METHODS.split(", ").any(|m| m == method) {
            return Err(refuse(format!(
                "the method {:?} is not allowed",
                echo(method)
            )));
        }
        let requested = header_str(headers, "access-control-request-headers").unwrap_or("");
        let mut allowed = Vec::new();
        for h in requested.split(',').map(|h| h.trim().to_ascii_lowercase()) {
            if h.is_empty() {
                continue;
            }
            if !CORS_ALLOWED_HEADERS.contains(&h.as_str()) && !h.starts_with(CUSTOM_HEADER_PREFIX) {
                return Err(refuse(format!("the header {:?} is not allowed", echo(&h))));
            }
            allowed.push(h);
        }
        let mut r = warp::reply::Response::new(Default::default());
        *r.status_mut() = StatusCode::NO_CONTENT;
        let h = r.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(CORS_METHODS),
        );
        if let Ok(v) = HeaderValue::from_str(&allowed.join(", ")) {
            h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v);
        }
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static(CORS_MAX_AGE_SECS),
        );
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
        Ok(r)
    }
}

/// Adds the CORS headers to an answer for an allowed origin.
pub fn add_cors(
    mut r: warp::reply::Response,
    origin: Option<HeaderValue>,
) -> warp::reply::Response {
    if let Some(o) = origin {
        let h = r.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o);
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("Retry-After"),
        );
        h.append(header::VARY, HeaderValue::from_static("Origin"));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origins(bind: &str, hosts: &[&str], allowed: &[&str]) -> Origins {
        let server = ServerConfig {
            bind: bind.into(),
            allowed_hosts: hosts.iter().map(|s| s.to_string()).collect(),
            allowed_origins: allowed.iter().map(|s| s.to_string()).collect(),
            ..ServerConfig::default()
        };
        Origins::new(bind.parse().unwrap(), &server).unwrap()
    }

    #[test]
    fn hosts() {
        let o = origins(
            "127.0.0.1:8000",
            &["farm.example.com", "proxy.local:9000"],
            &[],
        );
        for ok in [
            "127.0.0.1:8000",
            "localhost:8000",
            "LOCALHOST:8000",
            "[::1]:8000",
            "farm.example.com",
            "farm.example.com:443",
            "proxy.local:9000",
        ] {
            assert!(o.host_allowed(ok), "{ok}");
        }
        for bad in [
            "evil.example:8000",
            "127.0.0.1:8001",
            "localhost",
            "192.168.1.5:8000",
            "proxy.local:9001",
            "user@localhost:8000",
            "",
        ] {
            assert!(!o.host_allowed(bad), "{bad}");
        }
        let any = origins("0.0.0.0:8000", &[], &[]);
        assert!(any.host_allowed("192.168.1.5:8000"));
        assert!(!any.host_allowed("printfarm.lan:8000"));
    }

    #[test]
    fn same_origin_needs_host_and_port() {
        assert!(Origins::same_origin(
            "http://localhost:8000",
            Some("localhost:8000")
        ));
        assert!(Origins::same_origin(
            "https://farm.example.com",
            Some("farm.example.com")
        ));
        assert!(!Origins::same_origin(
            "http://localhost:9999",
            Some("localhost:8000")
        ));
        assert!(!Origins::same_origin(
            "http://evil.example",
            Some("localhost:8000")
        ));
        assert!(!Origins::same_origin("null", Some("localhost:8000")));
    }
}
