//! The configuration of access control (issue 15): roles, the keys written in the config
//! file, and which hosts and origins a browser may reach the daemon from.
//!
//! It lives apart from `mod.rs` so the `[auth]` and `[server]` access keys are checked
//! in one place: an empty or whitespace key is refused at load (it would otherwise be a
//! key anyone can guess), with a message that names the entry's position, never its text.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::Secret;

/// What a key may do. Ordered: a higher role can do everything a lower one can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads jobs, printers, settings and the event stream.
    Viewer,
    /// A viewer that also creates, edits and deletes jobs and pauses, resumes and
    /// cancels prints.
    Operator,
    /// Everything: settings, printers, certificate resets, keys.
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Operator, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `auth.api_keys` entry: a bare string (an admin key, as before roles existed) or
/// `{ key = "...", role = "viewer" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ConfigKey {
    WithRole { key: Secret, role: Role },
    Admin(Secret),
}

impl ConfigKey {
    pub fn secret(&self) -> &Secret {
        match self {
            ConfigKey::WithRole { key, .. } | ConfigKey::Admin(key) => key,
        }
    }

    pub fn role(&self) -> Role {
        match self {
            ConfigKey::WithRole { role, .. } => *role,
            ConfigKey::Admin(_) => Role::Admin,
        }
    }
}

/// Failed key attempts one address may make in a minute before it is answered 429.
/// Ten is plenty for a person mistyping; a guesser gets 14,400 tries a day instead of
/// thousands a second.
pub const DEFAULT_FAILED_KEYS_PER_MINUTE: u32 = 10;
/// Upper bound of `auth.failed_keys_per_minute`: beyond it the throttle means nothing.
pub const MAX_FAILED_KEYS_PER_MINUTE: u32 = 10_000;
/// Longest accepted `allowed_hosts` / `allowed_origins` entry (a DNS name is at most
/// 253 characters, plus scheme and port).
const MAX_ENTRY_LEN: usize = 300;
/// Most entries in either list: each request is checked against them one by one.
const MAX_ENTRIES: usize = 64;

pub fn default_failed_keys_per_minute() -> u32 {
    DEFAULT_FAILED_KEYS_PER_MINUTE
}

/// Checks `auth.api_keys` and `auth.failed_keys_per_minute`.
pub fn validate_keys(keys: &[ConfigKey], failed_per_minute: u32) -> Result<(), String> {
    for (i, k) in keys.iter().enumerate() {
        if k.secret().expose().trim().is_empty() {
            return Err(format!(
                "auth.api_keys entry {} is empty or only whitespace; give it a long random value \
                 (or create keys with `printfarmd key add`)",
                i + 1
            ));
        }
    }
    if !(1..=MAX_FAILED_KEYS_PER_MINUTE).contains(&failed_per_minute) {
        return Err(format!(
            "auth.failed_keys_per_minute must be between 1 and {MAX_FAILED_KEYS_PER_MINUTE}"
        ));
    }
    Ok(())
}

/// Normalises `server.allowed_hosts` (host or host:port, lower case) and refuses what
/// cannot be a Host header.
pub fn validate_hosts(hosts: &[String]) -> Result<Vec<String>, String> {
    check_len("server.allowed_hosts", hosts)?;
    hosts
        .iter()
        .map(|h| {
            let h = h.trim().to_ascii_lowercase();
            match h.parse::<warp::http::uri::Authority>() {
                Ok(a) if !h.is_empty() && !h.contains('@') && a.as_str() == h => Ok(h),
                _ => Err(format!(
                    "server.allowed_hosts entry {h:?} is not a host name; write it like \
                     \"farm.example.com\" or \"farm.example.com:8000\""
                )),
            }
        })
        .collect()
}

/// Normalises `server.allowed_origins` (`http(s)://host[:port]`, lower case, no path).
pub fn validate_origins(origins: &[String]) -> Result<Vec<String>, String> {
    check_len("server.allowed_origins", origins)?;
    origins
        .iter()
        .map(|o| {
            let o = o.trim().trim_end_matches('/').to_ascii_lowercase();
            let ok = o
                .strip_prefix("http://")
                .or_else(|| o.strip_prefix("https://"))
                .filter(|rest| !rest.contains(['/', '?', '#', '@']))
                .and_then(|rest| rest.parse::<warp::http::uri::Authority>().ok())
                .is_some_and(|a| !a.host().is_empty());
            if ok {
                Ok(o)
            } else {
                Err(format!(
                    "server.allowed_origins entry {o:?} is not an origin; write it like \
                     \"https://dashboard.example.com\" (scheme, host, optional port, no path)"
                ))
            }
        })
        .collect()
}

fn check_len(key: &str, list: &[String]) -> Result<(), String> {
    if list.len() > MAX_ENTRIES {
        return Err(format!("{key} has more than {MAX_ENTRIES} entries"));
    }
    if let Some(e) = list.iter().find(|e| e.len() > MAX_ENTRY_LEN) {
        return Err(format!(
            "{key} entry starting {:?} is longer than {MAX_ENTRY_LEN} characters",
            e.chars().take(40).collect::<String>()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_and_hosts_are_normalised_or_refused() {
        assert_eq!(
            validate_origins(&["HTTPS://Dash.Example.com:8443/".into()]).unwrap(),
            vec!["https://dash.example.com:8443"]
        );
        for bad in [
            "dash.example.com",
            "ftp://x",
            "https://x/path",
            "https://u@x",
            "https://",
        ] {
            assert!(validate_origins(&[bad.into()]).is_err(), "{bad}");
        }
        assert_eq!(
            validate_hosts(&["Farm.Local:8000".into(), "[::1]".into()]).unwrap(),
            vec!["farm.local:8000", "[::1]"]
        );
        for bad in ["", "http://x", "a/b", "u@x"] {
            assert!(validate_hosts(&[bad.into()]).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn empty_keys_are_refused_without_echoing_keys() {
        let keys = vec![
            ConfigKey::Admin(Secret::new("good-key-1")),
            ConfigKey::WithRole {
                key: Secret::new("  "),
                role: Role::Viewer,
            },
        ];
        let e = validate_keys(&keys, 10).unwrap_err();
        assert!(e.contains("entry 2"), "{e}");
        assert!(!e.contains("good-key-1"));
    }
}
