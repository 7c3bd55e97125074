//! Secrets (access codes, passwords, API keys) that must never reach a log line, an API
//! response or an error message.
//!
//! `Secret` has no `Serialize` and a `Debug` that prints `***`, so the only way to see
//! the value is to call `expose()` where it is sent to a printer.

use std::fmt;

use serde::Deserialize;

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The value itself, for the one place that sends it to a printer.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Accepts a string, or a number written without quotes (`access_code = 12345678`) taken
/// as its digits. (A code with a leading zero must be quoted in TOML, which refuses
/// `01234567` as a number, so no zero is ever silently lost.)
impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            S(String),
            U(u64),
            I(i64),
        }
        Ok(Secret(match Raw::deserialize(d)? {
            Raw::S(s) => s,
            Raw::U(n) => n.to_string(),
            Raw::I(n) => n.to_string(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let s = Secret::new("12345678");
        assert_eq!(format!("{s:?}"), "***");
        assert_eq!(s.expose(), "12345678");
    }
}
