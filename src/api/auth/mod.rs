//! Access control (issue 15): who may do what, and from where.
//!
//! Every request passes one gate before any route: the `Host` check and the
//! browser-origin checks (`origin.rs`, whether `[auth]` is on or off), then, with
//! `[auth] enabled = true`, the key and the role the route needs (`roles.rs`), with
//! wrong keys throttled per address (`throttle.rs`). Keys come from the config file or
//! the database (`keys.rs`); a request carries one as `Authorization: Bearer <key>` or
//! `X-Api-Key: <key>`, and `/ws` also as the WebSocket subprotocol
//! `printfarmd.key.<key>` (browsers cannot set headers there; a key in the URL,
//! `?api_key=`, still works but ends up in proxy logs). No answer or log line repeats a
//! key.

pub mod cli;
pub mod keys;
pub mod origin;
pub mod roles;
pub mod throttle;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use warp::http::{HeaderMap, Method, StatusCode};
use warp::path::FullPath;
use warp::{Filter, Rejection};

use super::error::ApiError;
use crate::config::{Config, Role};
use crate::store::ReadPool;
pub use keys::{Identity, Keyring};
pub use origin::Origins;
use roles::Need;
use throttle::Throttle;

/// The subprotocol a browser names on `/ws` (and the daemon answers with) when it sends
/// its key as a second subprotocol `printfarmd.key.<key>`.
pub const WS_PROTOCOL: &str = "printfarmd.v1";
pub const WS_KEY_PROTOCOL_PREFIX: &str = "printfarmd.key.";

/// Who is asking, as far as the gate could tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// `[auth]` is off: everyone may do everything.
    Open,
    /// `[auth]` is on and no key came, on a route that needs none.
    Anonymous,
    Key(Identity),
}

impl Principal {
    /// May see everything a viewer may (health in full).
    pub fn is_known(&self) -> bool {
        !matches!(self, Principal::Anonymous)
    }
}

/// Everything the gate needs, built once at start.
pub struct Access {
    pub enabled: bool,
    pub keyring: Keyring,
    pub origins: Origins,
    throttle: Throttle,
}

impl Access {
    pub fn new(config: &Config, bound: SocketAddr, reads: ReadPool) -> anyhow::Result<Self> {
        let keyring = Keyring::open(&config.database.path, reads, &config.auth.api_keys)?;
        Ok(Self {
            enabled: config.auth.enabled,
            keyring,
            origins: Origins::new(bound, &config.server).map_err(anyhow::Error::msg)?,
            throttle: Throttle::new(config.auth.failed_keys_per_minute),
        })
    }

    /// The gate itself.
    async fn check(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        remote: Option<SocketAddr>,
        query: &HashMap<String, String>,
    ) -> Result<Principal, ApiError> {
        self.origins.check_host(headers)?;
        if Origins::is_write(method) {
            self.origins.check_write(headers)?;
        }
        let is_ws = path == "/ws";
        if is_ws {
            self.origins.check_ws(headers)?;
        }
        if !self.enabled {
            return Ok(Principal::Open);
        }
        let need = roles::need(method, path);
        if need == Need::Public {
            return Ok(Principal::Anonymous);
        }
        let given = presented_key(headers, is_ws.then_some(query));
        let Some(given) = given else {
            return match need {
                Need::Optional => Ok(Principal::Anonymous),
                _ => Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "this daemon requires an API key: send Authorization: Bearer <key> or \
                     X-Api-Key: <key> (an admin makes keys with `printfarmd key add`)",
                )),
            };
        };
        let ip = remote.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip());
        if let Some(secs) = self.throttle.blocked(ip, Instant::now()) {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_failed_keys",
                format!("too many wrong API keys from this address; try again in {secs} s"),
            )
            .with_retry_after(secs));
        }
        let identity = match self.keyring.check(&given).await.map_err(ApiError::from)? {
            Ok(id) => id,
            Err(refusal) => {
                if self.throttle.fail(ip, Instant::now()).log {
                    tracing::warn!(
                        address = %ip,
                        reason = refusal.as_str(),
                        "refused an API key (more refusals from this address within a minute are counted, not logged)"
                    );
                }
                return Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "invalid_key",
                    refusal.message(),
                ));
            }
        };
        if let Need::Role(r) = need
            && identity.role < r
        {
            return Err(forbidden(r, identity.role));
        }
        Ok(Principal::Key(identity))
    }
}

fn forbidden(needed: Role, has: Role) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        format!(
            "this needs the {needed} role; the key in use is a {has} key (an admin can make \
             a {needed} key with `printfarmd key add --role {needed}`)"
        ),
    )
}

/// The key a request carries, if any: `Authorization: Bearer`, `X-Api-Key`, and on
/// `/ws` the `printfarmd.key.` subprotocol or `?api_key=`.
fn presented_key(
    headers: &HeaderMap,
    ws_query: Option<&HashMap<String, String>>,
) -> Option<String> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let bearer = text("authorization").and_then(|a| {
        let (scheme, rest) = a.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
    });
    if let Some(k) = bearer.or(text("x-api-key").map(str::trim)) {
        return Some(k.to_owned());
    }
    let q = ws_query?;
    let from_protocol = text("sec-websocket-protocol").and_then(|p| {
        p.split(',')
            .map(str::trim)
            .find_map(|p| p.strip_prefix(WS_KEY_PROTOCOL_PREFIX))
    });
    from_protocol
        .map(str::to_owned)
        .or_else(|| q.get("api_key").cloned())
}

/// The gate's verdict on a request, never rejecting (so a route can answer with it).
pub fn verdict(
    access: Arc<Access>,
) -> impl Filter<Extract = (Result<Principal, ApiError>,), Error = Infallible> + Clone {
    let query = warp::query::<HashMap<String, String>>()
        .or(warp::any().map(HashMap::new))
        .unify();
    warp::method()
        .and(warp::path::full())
        .and(warp::header::headers_cloned())
        .and(
            warp::ext::optional::<crate::api::serve::PeerAddr>()
                .map(|p: Option<crate::api::serve::PeerAddr>| p.map(|p| p.0)),
        )
        .and(query)
        .then(
            move |method: Method,
                  path: FullPath,
                  headers: HeaderMap,
                  remote: Option<SocketAddr>,
                  query: HashMap<String, String>| {
                let access = access.clone();
                async move {
                    access
                        .check(&method, path.as_str(), &headers, remote, &query)
                        .await
                }
            },
        )
}

/// Passes a request the gate lets through, rejecting the others with the gate's error.
pub fn gate(access: Arc<Access>) -> impl Filter<Extract = (), Error = Rejection> + Clone {
    verdict(access)
        .and_then(|v: Result<Principal, ApiError>| async move {
            v.map(|_| ()).map_err(ApiError::reject)
        })
        .untuple_one()
}

/// CORS preflights, answered before the gate (they carry no key).
pub fn preflight(
    access: Arc<Access>,
) -> impl Filter<Extract = (warp::reply::Response,), Error = Rejection> + Clone {
    // Not `warp::options()`: its 405 for every other method would outrank the real
    // routes' 404s when warp combines the rejections.
    warp::method().and(warp::header::headers_cloned()).and_then(
        move |method: Method, headers: HeaderMap| {
            let access = access.clone();
            async move {
                match access.origins.preflight(&method, &headers) {
                    Some(Ok(r)) => Ok(r),
                    Some(Err(e)) => Ok(e.into_response()),
                    None => Err(warp::reject::not_found()),
                }
            }
        },
    )
}

/// The CORS origin of a request (one in `allowed_origins`), for `origin::add_cors`.
pub fn cors_origin(
    access: Arc<Access>,
) -> impl Filter<Extract = (Option<warp::http::HeaderValue>,), Error = Infallible> + Clone {
    warp::header::headers_cloned().map(move |h: HeaderMap| access.origins.cors_origin(&h))
}

/// The `/ws` upgrade answer, naming `printfarmd.v1` as the subprotocol when the client
/// offered it (a browser that offered subprotocols fails a connection whose answer
/// names none). The key subprotocol is never named back.
pub fn ws_protocol_reply(
    upgrade: impl warp::Reply,
    offered: Option<&str>,
) -> warp::reply::Response {
    let mut r = upgrade.into_response();
    if offered.is_some_and(|p| p.split(',').any(|p| p.trim() == WS_PROTOCOL)) {
        r.headers_mut().insert(
            "sec-websocket-protocol",
            warp::http::HeaderValue::from_static(WS_PROTOCOL),
        );
    }
    r
}

/// Said at every start: a daemon others can reach with no keys, or keys required and
/// none to use.
pub fn startup_warnings(access: &Access, bound: SocketAddr, db: &std::path::Path) {
    if !access.enabled && !bound.ip().is_loopback() {
        tracing::warn!(
            address = %bound,
            "listening on a non-loopback address with [auth] off: anyone who can reach \
             this address can change settings, printers and jobs; set [auth] enabled = true \
             and make keys with `printfarmd key add`"
        );
    }
    if access.enabled && !access.keyring.has_config_keys() {
        let usable = crate::store::open_reader(db).and_then(|c| {
            crate::store::keys::count_usable(&c, &crate::time::format(crate::time::now()))
        });
        if matches!(usable, Ok(0)) {
            tracing::warn!(
                "[auth] is on but there is no usable key: every request will be refused; \
                 make one with `printfarmd key add --role admin --name <name>`"
            );
        }
    }
}
