//! The server side of PrusaLink's authentication (protocols.md §3.2), as Buddy does it:
//! HTTP Digest with user `maker`, realm `Printer API`, MD5 and **no qop**
//! (response = MD5(HA1:nonce:HA2)), nonces of 16 hex digits that expire (401 `stale=true`
//! when the password was right but the nonce is old or unknown), or the same password in
//! `X-Api-Key` (a wrong key: 401 with `WWW-Authenticate: ApiKey realm="Printer API"`).

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use md5::{Digest, Md5};
use tokio::time::Instant;

pub const PRUSA_USER: &str = "maker";
pub const REALM: &str = "Printer API";
/// How long a nonce is good for.
pub const NONCE_LIFETIME: Duration = Duration::from_secs(300);
/// Nonces remembered per printer; older ones become stale.
const NONCES_KEPT: usize = 128;

/// What to answer a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthOutcome {
    Ok,
    /// 401 with a fresh Digest challenge.
    Challenge {
        stale: bool,
    },
    /// 401 for a wrong `X-Api-Key`.
    BadApiKey,
}

/// The nonces a printer has handed out.
#[derive(Debug, Default)]
pub struct Nonces {
    issued: VecDeque<(String, Instant)>,
}

impl Nonces {
    pub fn issue(&mut self, now: Instant, random: u64) -> String {
        let nonce = format!("{random:016x}");
        if self.issued.len() == NONCES_KEPT {
            self.issued.pop_front();
        }
        self.issued.push_back((nonce.clone(), now));
        nonce
    }

    fn fresh(&self, nonce: &str, now: Instant) -> bool {
        self.issued
            .iter()
            .any(|(n, at)| n == nonce && now.saturating_duration_since(*at) < NONCE_LIFETIME)
    }

    /// A reboot forgets every nonce.
    pub fn clear(&mut self) {
        self.issued.clear();
    }
}

/// Checks a request's credentials. `authorization` and `api_key` are the raw header values.
pub fn check(
    method: &str,
    path: &str,
    authorization: Option<&str>,
    api_key: Option<&str>,
    password: &str,
    nonces: &Nonces,
    now: Instant,
) -> AuthOutcome {
    if let Some(header) = authorization
        && let Some(params) = header.strip_prefix("Digest ").map(parse_params)
    {
        let get = |k: &str| params.get(k).map(String::as_str).unwrap_or("");
        let uri = get("uri");
        let uri_path = uri.split('?').next().unwrap_or("");
        if get("username") != PRUSA_USER || get("realm") != REALM || uri_path != path {
            return AuthOutcome::Challenge { stale: false };
        }
        let nonce = get("nonce");
        if get("response") != response(PRUSA_USER, password, method, uri, nonce) {
            // Wrong password, or a client that added qop/cnonce (Buddy does not do qop).
            return AuthOutcome::Challenge { stale: false };
        }
        return if nonces.fresh(nonce, now) {
            AuthOutcome::Ok
        } else {
            AuthOutcome::Challenge { stale: true }
        };
    }
    match api_key {
        Some(key) if key == password => AuthOutcome::Ok,
        Some(_) => AuthOutcome::BadApiKey,
        None => AuthOutcome::Challenge { stale: false },
    }
}

/// The `WWW-Authenticate` value of a Digest challenge.
pub fn challenge(nonce: &str, stale: bool) -> String {
    format!("Digest realm=\"{REALM}\", nonce=\"{nonce}\", stale={stale}")
}

/// The `WWW-Authenticate` value for a wrong API key.
pub fn api_key_challenge() -> String {
    format!("ApiKey realm=\"{REALM}\"")
}

/// RFC 2069 digest (no qop): MD5(MD5(user:realm:password):nonce:MD5(method:uri)).
pub fn response(user: &str, password: &str, method: &str, uri: &str, nonce: &str) -> String {
    let ha1 = md5_hex(&format!("{user}:{REALM}:{password}"));
    let ha2 = md5_hex(&format!("{method}:{uri}"));
    md5_hex(&format!("{ha1}:{nonce}:{ha2}"))
}

fn md5_hex(s: &str) -> String {
    let digest = Md5::digest(s.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// `k="v", k2=v2` → map; quoted values may contain commas.
fn parse_params(s: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let Some(eq) = rest.find('=') else { break };
        let key = rest[..eq]
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        rest = rest[eq + 1..].trim_start();
        let value;
        if let Some(quoted) = rest.strip_prefix('"') {
            let end = quoted.find('"').unwrap_or(quoted.len());
            value = quoted[..end].to_string();
            rest = quoted.get(end + 1..).unwrap_or("");
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            value = rest[..end].trim().to_string();
            rest = &rest[end..];
        }
        rest = rest.trim_start().trim_start_matches(',').trim_start();
        out.insert(key, value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(password: &str, nonce: &str, uri: &str) -> String {
        let r = response(PRUSA_USER, password, "GET", uri, nonce);
        format!(
            "Digest username=\"maker\", realm=\"Printer API\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{r}\""
        )
    }

    #[test]
    fn md5_matches_the_rfc_1321_test_vector() {
        assert_eq!(md5_hex("abc"), "900150983cd24fb0d6963f7d28e17f72");
    }

    #[test]
    fn digest_without_qop_is_accepted_and_a_wrong_password_is_not_stale() {
        let now = Instant::now();
        let mut nonces = Nonces::default();
        let nonce = nonces.issue(now, 0xdead_beef);
        assert_eq!(nonce.len(), 16);
        let ok = header("secret", &nonce, "/api/v1/status");
        assert_eq!(
            check(
                "GET",
                "/api/v1/status",
                Some(&ok),
                None,
                "secret",
                &nonces,
                now
            ),
            AuthOutcome::Ok
        );
        let bad = header("wrong", &nonce, "/api/v1/status");
        assert_eq!(
            check(
                "GET",
                "/api/v1/status",
                Some(&bad),
                None,
                "secret",
                &nonces,
                now
            ),
            AuthOutcome::Challenge { stale: false }
        );
    }

    #[test]
    fn an_unknown_or_old_nonce_with_the_right_password_is_stale() {
        let now = Instant::now();
        let mut nonces = Nonces::default();
        let nonce = nonces.issue(now, 1);
        let h = header("secret", "00000000000000ff", "/api/v1/status");
        assert_eq!(
            check(
                "GET",
                "/api/v1/status",
                Some(&h),
                None,
                "secret",
                &nonces,
                now
            ),
            AuthOutcome::Challenge { stale: true }
        );
        let h = header("secret", &nonce, "/api/v1/status");
        let later = now + NONCE_LIFETIME + Duration::from_secs(1);
        assert_eq!(
            check(
                "GET",
                "/api/v1/status",
                Some(&h),
                None,
                "secret",
                &nonces,
                later
            ),
            AuthOutcome::Challenge { stale: true }
        );
    }

    #[test]
    fn api_key_is_the_password() {
        let now = Instant::now();
        let nonces = Nonces::default();
        assert_eq!(
            check("GET", "/", None, Some("secret"), "secret", &nonces, now),
            AuthOutcome::Ok
        );
        assert_eq!(
            check("GET", "/", None, Some("nope"), "secret", &nonces, now),
            AuthOutcome::BadApiKey
        );
        assert_eq!(
            check("GET", "/", None, None, "secret", &nonces, now),
            AuthOutcome::Challenge { stale: false }
        );
    }
}
