//! The environment layer of the configuration: which variables are configuration keys.
//!
//! Only variables that name a key of a section the config defines are read
//! (`PRINTFARMD_SERVER__BIND`, `PRINTFARMD_MONITORING__INTERVAL`, the seed's bare
//! `JOB_CREATION_AUTO_CREATE`). Other `PRINTFARMD_*` variables — the log filter, the config
//! path, test switches such as `PRINTFARMD_SKIP_BROWSER` — are not configuration and are
//! left alone: when figment's `Env::prefixed` read every one of them as a key, setting
//! `PRINTFARMD_SKIP_BROWSER=1` stopped `run` and `demo` with "unknown field". A variable
//! that looks like configuration but names no section (`PRINTFARMD_SERVR__BIND`,
//! `PRINTFARMD_SERVER_BIND`, `PRINTFARMD_PRINTERS__…`) is refused with a message naming
//! it, never silently ignored. Each variable read becomes its own figment provider named
//! after the variable, so an error about its value names the variable.

use std::ffi::OsString;

use figment::value::{Dict, Map, Value};
use figment::{Error, Metadata, Profile, Provider};

use super::{ENV_PREFIX, SEED_AUTO_CREATE_ENV};

/// The sections an environment variable may set. `printers` is not one of them: printers
/// are configured in the file (or through the API) only.
pub const ENV_SECTIONS: [&str; 9] = [
    "server",
    "database",
    "monitoring",
    "job_creation",
    "auth",
    "log",
    "backup",
    "retention",
    "mqtt",
];

/// `PRINTFARMD_*` variables of the daemon itself that are not configuration keys: the
/// config file, the log filter, the log format (read before the configuration; the
/// config key is `PRINTFARMD_LOG__FORMAT`) and the debug builds' test fault (`fault.rs`).
const OWN_VARIABLES: [&str; 4] = ["CONFIG", "LOG", "LOG_FORMAT", "TEST_FAULT"];

/// One environment variable read as a configuration key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvKey {
    /// The variable as set, for messages (`PRINTFARMD_SERVER__BIND`).
    pub variable: String,
    /// The key path, dotted (`server.bind`).
    pub path: String,
    pub value: String,
}

impl Provider for EnvKey {
    fn metadata(&self) -> Metadata {
        Metadata::named(format!("environment variable {}", self.variable))
    }

    fn data(&self) -> Result<Map<Profile, Dict>, Error> {
        // The same typing of the text as figment's `Env` (a number is a number, `true` a
        // boolean, anything else a string).
        let value: Value = self.value.parse().unwrap_or_else(|e| match e {});
        let dict = figment::util::nest(&self.path, value)
            .into_dict()
            .unwrap_or_default();
        Ok(Profile::Default.collect(dict))
    }
}

/// The configuration keys among `vars`, or a message naming the first variable that
/// looks like configuration but is not a key the config defines. Never quotes a value.
pub fn config_keys(
    vars: impl IntoIterator<Item = (OsString, OsString)>,
) -> Result<Vec<EnvKey>, String> {
    let mut keys = Vec::new();
    for (name, value) in vars {
        let name = name.to_string_lossy().trim().to_owned();
        let value = value.to_string_lossy().trim().to_owned();
        if name == SEED_AUTO_CREATE_ENV {
            keys.push(EnvKey {
                variable: name,
                path: "job_creation.auto_create".into(),
                value,
            });
            continue;
        }
        let Some(rest) = strip_prefix_ignore_case(&name, ENV_PREFIX) else {
            continue;
        };
        if OWN_VARIABLES.iter().any(|o| rest.eq_ignore_ascii_case(o)) {
            continue;
        }
        let lower = rest.to_ascii_lowercase();
        let parts: Vec<&str> = lower.split("__").collect();
        let section = parts[0];
        if ENV_SECTIONS.contains(&section)
            && parts.len() >= 2
            && parts.iter().all(|p| !p.is_empty())
        {
            keys.push(EnvKey {
                variable: name.clone(),
                path: parts.join("."),
                value,
            });
            continue;
        }
        if section == "printers" || lower.starts_with("printers_") {
            return Err(format!(
                "environment variable {name}: printers are configured in the config file (or through POST /api/v1/printers) only; unset it"
            ));
        }
        let looks_like_config = lower.contains("__")
            || ENV_SECTIONS
                .iter()
                .any(|s| lower == *s || lower.starts_with(&format!("{s}_")));
        if looks_like_config {
            return Err(format!(
                "environment variable {name} is not a configuration key; write {ENV_PREFIX}<SECTION>__<KEY> \
                 with a section of {} (e.g. {ENV_PREFIX}SERVER__BIND), or unset it",
                ENV_SECTIONS.join(", ")
            ));
        }
        // Not configuration (a test switch, a tool's own variable): not ours to refuse.
    }
    Ok(keys)
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(vars: &[(&str, &str)]) -> Result<Vec<(String, String)>, String> {
        config_keys(vars.iter().map(|(k, v)| (k.into(), v.into())))
            .map(|ks| ks.into_iter().map(|k| (k.path, k.value)).collect())
    }

    #[test]
    fn only_keys_of_known_sections_are_read() {
        let got = keys(&[
            ("PRINTFARMD_SERVER__BIND", "0.0.0.0:1"),
            ("PRINTFARMD_SKIP_BROWSER", "1"),
            ("PRINTFARMD_LOG", "debug"),
            ("PRINTFARMD_CONFIG", "/x.toml"),
            ("PRINTFARMD_SOME_FUTURE_TEST_SWITCH", "1"),
            ("JOB_CREATION_AUTO_CREATE", "false"),
            ("HOME", "/root"),
        ])
        .unwrap();
        assert_eq!(
            got,
            [
                ("server.bind".to_owned(), "0.0.0.0:1".to_owned()),
                ("job_creation.auto_create".to_owned(), "false".to_owned())
            ]
        );
    }

    #[test]
    fn config_looking_variables_outside_the_sections_are_named() {
        for var in [
            "PRINTFARMD_SERVR__BIND",
            "PRINTFARMD_SERVER_BIND",
            "PRINTFARMD_MONITORING",
            "PRINTFARMD_PRINTERS__0__ID",
            "PRINTFARMD_SERVER__",
        ] {
            let e = keys(&[(var, "hunter2-secret")]).unwrap_err();
            assert!(e.contains(var), "{e}");
            assert!(!e.contains("hunter2"), "{e}");
        }
    }
}
