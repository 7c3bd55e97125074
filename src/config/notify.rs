//! The `[[webhooks]]` and `[mqtt]` configuration (README "Integrations"), and the checks
//! types alone cannot make. A webhook added through `POST /api/v1/webhooks` is the same
//! `WebhookConfig`, checked by the same `validate`, so the file and the API accept
//! exactly the same things.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::Secret;
use crate::domain::EventKind;
use crate::domain::{JobStatus, PrinterId};

/// Longest webhook URL accepted: any real endpoint (a Discord URL with its token is
/// ~120 characters) fits; a longer one is a mistake, not an address.
pub const MAX_URL_LEN: usize = 2048;
/// Longest signing secret; HMAC-SHA256 gains nothing past 64 bytes.
pub const MAX_SECRET_LEN: usize = 256;
/// Longest webhook id and display name.
pub const MAX_ID_LEN: usize = 64;
pub const MAX_NAME_LEN: usize = 128;
/// Webhooks at most (file and API together): each matching event is one queued row per
/// webhook, so this bounds how much one event can write.
pub const MAX_WEBHOOKS: usize = 64;
/// Printers a webhook's filter may name.
pub const MAX_FILTER_PRINTERS: usize = 1024;

/// The events a webhook may ask for (the WebSocket's, without `settings_updated`).
pub const WEBHOOK_EVENTS: [EventKind; 5] = [
    EventKind::JobAutoCreated,
    EventKind::JobCreated,
    EventKind::JobUpdated,
    EventKind::JobDeleted,
    EventKind::PrinterStatus,
];

/// How a webhook's body is written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// The WebSocket envelope `{type,data,timestamp,seq}`, verbatim.
    #[default]
    Json,
    /// ntfy: the message as plain text, title and tags in headers.
    Ntfy,
    /// Discord: `{"content": message}`.
    Discord,
    /// Slack-compatible incoming webhook (also Mattermost, Rocket.Chat): `{"text": message}`.
    Slack,
    /// Apprise API (`/notify/<key>`): `{"title","body","type"}`.
    Apprise,
}

/// One webhook: where to send which events, and how.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Stable id: queued deliveries and their status belong to it. Required in the file;
    /// the API makes one (`wh_…`) when absent.
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    /// http:// or https://. Treated as a secret (a Discord or Slack URL carries its token):
    /// never logged, shown redacted by the API.
    pub url: Secret,
    /// Event types to send; empty or absent = all five.
    #[serde(default)]
    pub events: Vec<String>,
    /// For `job_updated`: only these new statuses (empty = any status change). Progress
    /// alone never triggers a webhook.
    #[serde(default)]
    pub statuses: Vec<JobStatus>,
    /// Only events about these printers (empty = all).
    #[serde(default)]
    pub printer_ids: Vec<PrinterId>,
    /// HMAC-SHA256 key for `X-Printfarmd-Signature`; without it no signature is sent.
    #[serde(default)]
    pub secret: Option<Secret>,
    #[serde(default)]
    pub format: Format,
}

impl WebhookConfig {
    /// The event kinds this webhook wants.
    pub fn kinds(&self) -> Vec<EventKind> {
        if self.events.is_empty() {
            return WEBHOOK_EVENTS.to_vec();
        }
        self.events
            .iter()
            .filter_map(|e| EventKind::parse(e))
            .collect()
    }

    pub fn validate(&self) -> Result<(), String> {
        let id = &self.id;
        if id.is_empty()
            || id.len() > MAX_ID_LEN
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            return Err(format!(
                "webhook id {id:?} must be 1 to {MAX_ID_LEN} letters, digits, '_', '-' or '.'"
            ));
        }
        if self
            .name
            .as_ref()
            .is_some_and(|n| n.chars().count() > MAX_NAME_LEN)
        {
            return Err(format!(
                "webhook {id}: name is longer than {MAX_NAME_LEN} characters"
            ));
        }
        check_url(self.url.expose(), &["http", "https"])
            .map_err(|e| format!("webhook {id}: url {e}"))?;
        for e in &self.events {
            if !WEBHOOK_EVENTS.iter().any(|k| k.as_str() == e) {
                let known: Vec<_> = WEBHOOK_EVENTS.iter().map(|k| k.as_str()).collect();
                return Err(format!(
                    "webhook {id}: unknown event {e:?}; known events: {}",
                    known.join(", ")
                ));
            }
        }
        if self.printer_ids.len() > MAX_FILTER_PRINTERS {
            return Err(format!(
                "webhook {id}: printer_ids names more than {MAX_FILTER_PRINTERS} printers"
            ));
        }
        if let Some(s) = &self.secret
            && (s.is_empty() || s.expose().len() > MAX_SECRET_LEN)
        {
            return Err(format!(
                "webhook {id}: secret must be 1 to {MAX_SECRET_LEN} bytes (leave it out for no signature)"
            ));
        }
        Ok(())
    }
}

/// The URL's own checks: parses, has a host, one of `schemes`, not too long. The error
/// never repeats the URL (it may carry a token).
pub fn check_url(url: &str, schemes: &[&str]) -> Result<reqwest::Url, String> {
    if url.len() > MAX_URL_LEN {
        return Err(format!("is longer than {MAX_URL_LEN} characters"));
    }
    let u = reqwest::Url::parse(url).map_err(|e| format!("is not a URL ({e})"))?;
    if !schemes.contains(&u.scheme()) {
        return Err(format!(
            "must start with {}",
            schemes
                .iter()
                .map(|s| format!("{s}://"))
                .collect::<Vec<_>>()
                .join(" or ")
        ));
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err("has no host".into());
    }
    Ok(u)
}

/// `[mqtt]`: publish printer states, job events and Home Assistant discovery.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// `mqtt://host[:1883]` or `mqtts://host[:8883]`.
    pub url: String,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<Secret>,
    /// Our topics start with this (`printfarmd/printers/<id>/state`, `printfarmd/status`).
    #[serde(default = "default_prefix")]
    pub topic_prefix: String,
    /// Home Assistant's discovery prefix; empty turns discovery off.
    #[serde(default = "default_discovery")]
    pub discovery_prefix: String,
    #[serde(default = "default_prefix")]
    pub client_id: String,
    /// mqtts: a PEM file of the CA that signed the broker's certificate (default: the
    /// system's roots).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

fn default_prefix() -> String {
    "printfarmd".into()
}

fn default_discovery() -> String {
    "homeassistant".into()
}

impl MqttConfig {
    pub fn validate(&self) -> Result<(), String> {
        check_url(&self.url, &["mqtt", "mqtts"]).map_err(|e| format!("mqtt.url {e}"))?;
        for (key, v) in [
            ("mqtt.topic_prefix", &self.topic_prefix),
            ("mqtt.client_id", &self.client_id),
        ] {
            if v.is_empty() || v.len() > MAX_ID_LEN {
                return Err(format!("{key} must be 1 to {MAX_ID_LEN} characters"));
            }
        }
        for (key, v) in [
            ("mqtt.topic_prefix", &self.topic_prefix),
            ("mqtt.discovery_prefix", &self.discovery_prefix),
        ] {
            if v.contains(['+', '#', '\0']) || v.starts_with('/') || v.ends_with('/') {
                return Err(format!(
                    "{key} {v:?} must not contain '+', '#' or start or end with '/'"
                ));
            }
        }
        Ok(())
    }
}

/// Checks the file's webhooks and MQTT section as a whole.
pub fn validate(webhooks: &[WebhookConfig], mqtt: Option<&MqttConfig>) -> Result<(), String> {
    if webhooks.len() > MAX_WEBHOOKS {
        return Err(format!("more than {MAX_WEBHOOKS} [[webhooks]]"));
    }
    let mut seen = std::collections::HashSet::new();
    for w in webhooks {
        if w.id.is_empty() {
            return Err("every [[webhooks]] entry needs an `id` (e.g. id = \"phone\")".into());
        }
        if !seen.insert(&w.id) {
            return Err(format!("webhook id {} appears twice in [[webhooks]]", w.id));
        }
        w.validate()?;
    }
    if let Some(m) = mqtt {
        m.validate()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(url: &str) -> WebhookConfig {
        WebhookConfig {
            id: "w".into(),
            name: None,
            url: Secret::new(url),
            events: vec![],
            statuses: vec![],
            printer_ids: vec![],
            secret: None,
            format: Format::Json,
        }
    }

    #[test]
    fn url_errors_never_repeat_the_url() {
        for bad in ["ftp://h/tok3n", "not a url tok3n", "https://[::1/tok3n"] {
            let e = hook(bad).validate().unwrap_err();
            assert!(!e.contains("tok3n"), "{e}");
        }
        hook("https://discord.com/api/webhooks/1/abc")
            .validate()
            .unwrap();
    }

    #[test]
    fn the_file_sections_parse_and_their_mistakes_are_named() {
        use crate::config::Config;
        let ok = Config::from_toml_str(
            "[[webhooks]]\nid = \"a\"\nurl = \"https://ntfy.sh/t\"\nformat = \"ntfy\"\nstatuses = [\"failed\"]\n\
             [mqtt]\nurl = \"mqtt://broker:1883\"\nusername = \"u\"\npassword = \"pw-9\"\n",
        )
        .unwrap();
        assert_eq!(ok.webhooks[0].format, Format::Ntfy);
        assert_eq!(ok.mqtt.as_ref().unwrap().topic_prefix, "printfarmd");
        assert!(!format!("{ok:?}").contains("pw-9") && !format!("{ok:?}").contains("ntfy.sh/t"));
        for (toml, want) in [
            ("[[webhooks]]\nurl = \"http://h/\"\n", "needs an `id`"),
            (
                "[[webhooks]]\nid = \"a\"\nurl = \"http://h/\"\n[[webhooks]]\nid = \"a\"\nurl = \"http://h/\"\n",
                "twice",
            ),
            (
                "[[webhooks]]\nid = \"a\"\nurl = \"http://h/\"\nformat = \"telegram\"\n",
                // Named by key and the accepted values; a config value is never echoed.
                "webhooks.0.format`: not one of the accepted values: json, ntfy",
            ),
            (
                "[mqtt]\nurl = \"http://broker\"\n",
                "mqtt.url must start with mqtt:// or mqtts://",
            ),
            (
                "[mqtt]\nurl = \"mqtt://b\"\ntopic_prefix = \"a/#\"\n",
                "mqtt.topic_prefix",
            ),
            ("[mqtt]\nurl = \"mqtt://b\"\nqos = 2\n", "qos"),
        ] {
            let e = Config::from_toml_str(toml).unwrap_err().to_string();
            assert!(e.contains(want), "{toml}: {e}");
        }
    }

    #[test]
    fn unknown_events_are_named() {
        let mut w = hook("http://h/");
        w.events = vec!["job_finished".into()];
        let e = w.validate().unwrap_err();
        assert!(
            e.contains("job_finished") && e.contains("job_updated"),
            "{e}"
        );
    }
}
