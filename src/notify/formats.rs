//! What a webhook receives: the event envelope as is (`json`), or a human message for a
//! pusher (`ntfy`, `discord`, `slack`, `apprise`) such as
//! "❌ bracket.3mf failed on X1C rack 1 after 2 h 14 min (Heatbed temperature malfunction)".

use serde::Deserialize;
use serde_json::json;

use super::config::Format;
use crate::broadcast::EventKind;

/// The members of a job event's `data` a message needs.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct JobHead {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub printer_id: Option<String>,
    #[serde(default)]
    pub job_name: Option<String>,
    #[serde(default)]
    pub filename: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub actual_duration: Option<i64>,
}

/// The members of a `printer_status` event's `data` the integrations use.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct StatusHead {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub connection: String,
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub last_error: Option<String>,
}

/// One event as the integrations see it.
#[derive(Clone, Debug)]
pub struct Incoming {
    pub kind: EventKind,
    /// The envelope exactly as WebSocket clients get it.
    pub envelope: std::sync::Arc<str>,
    pub job: Option<JobHead>,
    pub status: Option<StatusHead>,
}

/// A rendered request body.
#[derive(Clone, Debug, PartialEq)]
pub struct Rendered {
    pub body: String,
    pub content_type: &'static str,
    /// Extra headers (ASCII only), as a JSON object of strings.
    pub headers: String,
}

/// How bad the news is, for pushers that colour or prioritise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Info,
    Success,
    Warning,
    Failure,
}

/// The human message, its ASCII title and its level. `printer` is the display name;
/// `reason` the printer's last error, for failures.
pub fn message(ev: &Incoming, printer: &str, reason: Option<&str>) -> (String, String, Level) {
    if let Some(s) = &ev.status {
        let (emoji, level) = match s.connection.as_str() {
            "connected" if s.state == "error" => ("⚠️", Level::Warning),
            "connected" => ("🖨️", Level::Info),
            _ => ("🔌", Level::Warning),
        };
        let mut text = format!(
            "{emoji} {printer} is {} ({})",
            s.connection.replace('_', " "),
            s.state
        );
        if let Some(e) = s.error.as_deref().or(s.last_error.as_deref()) {
            text.push_str(&format!(": {e}"));
        }
        return (
            text,
            format!("printfarmd: {printer} {}", s.connection),
            level,
        );
    }
    let job = ev.job.clone().unwrap_or_default();
    let what = job
        .filename
        .as_deref()
        .filter(|f| !f.is_empty())
        .or(job.job_name.as_deref())
        .unwrap_or(&job.id)
        .to_owned();
    let after = job
        .actual_duration
        .map(|s| format!(" after {}", human_duration(s)))
        .unwrap_or_default();
    let status = job.status.as_deref().unwrap_or("");
    let (text, title, level) = match ev.kind {
        EventKind::JobAutoCreated => (
            format!("▶️ {what} started on {printer}"),
            "print started",
            Level::Info,
        ),
        EventKind::JobCreated => (
            format!("🆕 {what} added on {printer} ({status})"),
            "job added",
            Level::Info,
        ),
        EventKind::JobDeleted => (
            format!("🗑️ job {} deleted", job.id),
            "job deleted",
            Level::Info,
        ),
        _ => match status {
            "completed" => (
                format!("✅ {what} finished on {printer}{after}"),
                "print finished",
                Level::Success,
            ),
            "failed" => {
                let why = reason.map(|r| format!(" ({r})")).unwrap_or_default();
                (
                    format!("❌ {what} failed on {printer}{after}{why}"),
                    "print failed",
                    Level::Failure,
                )
            }
            "cancelled" => (
                format!("⏹️ {what} cancelled on {printer}{after}"),
                "print cancelled",
                Level::Warning,
            ),
            "paused" => (
                format!("⏸️ {what} paused on {printer}"),
                "print paused",
                Level::Warning,
            ),
            "running" => (
                format!("▶️ {what} printing on {printer}"),
                "print running",
                Level::Info,
            ),
            "unknown" => (
                format!("❔ {what} on {printer} ended while printfarmd could not see it"),
                "print outcome unknown",
                Level::Warning,
            ),
            other => (
                format!("📝 {what} on {printer} is now {other}"),
                "job updated",
                Level::Info,
            ),
        },
    };
    (text, format!("printfarmd: {title}"), level)
}

/// "2 h 14 min", "14 min", "45 s".
pub fn human_duration(secs: i64) -> String {
    let s = secs.max(0);
    let (h, m) = (s / 3600, (s % 3600) / 60);
    match (h, m) {
        (0, 0) => format!("{s} s"),
        (0, m) => format!("{m} min"),
        (h, 0) => format!("{h} h"),
        (h, m) => format!("{h} h {m} min"),
    }
}

/// The body for `format`.
pub fn render(format: Format, ev: &Incoming, printer: &str, reason: Option<&str>) -> Rendered {
    const JSON: &str = "application/json";
    if format == Format::Json {
        return Rendered {
            body: ev.envelope.to_string(),
            content_type: JSON,
            headers: "{}".into(),
        };
    }
    let (text, title, level) = message(ev, printer, reason);
    let (body, content_type, headers) = match format {
        Format::Json => unreachable!("handled above"),
        Format::Ntfy => {
            // ntfy turns tag names into emoji; priority 4 = high.
            let (tags, priority) = match level {
                Level::Failure => ("x", "4"),
                Level::Warning => ("warning", "3"),
                Level::Success => ("white_check_mark", "3"),
                Level::Info => ("printer", "3"),
            };
            (
                text,
                "text/plain; charset=utf-8",
                json!({"Title": title, "Tags": tags, "Priority": priority}),
            )
        }
        Format::Discord => (json!({ "content": text }).to_string(), JSON, json!({})),
        Format::Slack => (json!({ "text": text }).to_string(), JSON, json!({})),
        Format::Apprise => {
            let kind = match level {
                Level::Info => "info",
                Level::Success => "success",
                Level::Warning => "warning",
                Level::Failure => "failure",
            };
            (
                json!({"title": title, "body": text, "type": kind}).to_string(),
                JSON,
                json!({}),
            )
        }
    };
    Rendered {
        body,
        content_type,
        headers: headers.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed() -> Incoming {
        Incoming {
            kind: EventKind::JobUpdated,
            envelope: std::sync::Arc::from(r#"{"type":"job_updated"}"#),
            job: Some(JobHead {
                id: "job_1".into(),
                printer_id: Some("x1c_1".into()),
                job_name: Some("bracket".into()),
                filename: Some("bracket.3mf".into()),
                status: Some("failed".into()),
                actual_duration: Some(2 * 3600 + 14 * 60 + 5),
            }),
            status: None,
        }
    }

    #[test]
    fn the_failure_message_names_file_printer_duration_and_reason() {
        let (text, title, level) = message(
            &failed(),
            "X1C rack 1",
            Some("Heatbed temperature malfunction"),
        );
        assert_eq!(
            text,
            "❌ bracket.3mf failed on X1C rack 1 after 2 h 14 min (Heatbed temperature malfunction)"
        );
        assert!(title.is_ascii());
        assert_eq!(level, Level::Failure);
    }

    #[test]
    fn each_format_has_its_shape() {
        let ev = failed();
        let r = render(Format::Json, &ev, "X1C rack 1", None);
        assert_eq!(r.body, r#"{"type":"job_updated"}"#);
        let d: serde_json::Value =
            serde_json::from_str(&render(Format::Discord, &ev, "p", None).body).unwrap();
        assert!(
            d["content"]
                .as_str()
                .unwrap()
                .starts_with("❌ bracket.3mf failed on p")
        );
        let s: serde_json::Value =
            serde_json::from_str(&render(Format::Slack, &ev, "p", None).body).unwrap();
        assert!(s["text"].is_string());
        let a: serde_json::Value =
            serde_json::from_str(&render(Format::Apprise, &ev, "p", None).body).unwrap();
        assert_eq!(a["type"], "failure");
        let n = render(Format::Ntfy, &ev, "p", None);
        assert!(n.content_type.starts_with("text/plain"));
        let h: serde_json::Value = serde_json::from_str(&n.headers).unwrap();
        assert_eq!(h["Tags"], "x");
        assert!(h["Title"].as_str().unwrap().is_ascii());
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(45), "45 s");
        assert_eq!(human_duration(14 * 60 + 3), "14 min");
        assert_eq!(human_duration(7200), "2 h");
        assert_eq!(human_duration(-5), "0 s");
    }
}
