//! Log output: human text (the default) or one JSON object a line for log shippers
//! (`[log] format = "json"` or `PRINTFARMD_LOG_FORMAT=json`), always on stderr.
//!
//! JSON lines carry `timestamp` (RFC 3339 UTC), `level`, `target`, `message` and every
//! field of the event and of the spans it is in, at the top level: a printer's events
//! carry `printer_id` (from its actor's span), a job's `job_id`. Under systemd
//! (`JOURNAL_STREAM` set) text logs carry no ANSI colours (the journal stores them as
//! they come) and start with the syslog priority of their level (`<3>` error, `<4>`
//! warn, `<6>` info, `<7>` debug), which journald reads as the entry's priority
//! (`journalctl -p warning`). JSON lines stay pure JSON: they carry `level`.

use std::fmt;
use std::io::IsTerminal;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

use crate::config::LogFormat;

/// Environment variable that picks the format, over `[log] format`.
pub const FORMAT_ENV: &str = "PRINTFARMD_LOG_FORMAT";

/// Longest field value written to a JSON line; longer ones are cut (a printer's
/// malformed payload quoted in an error must not make a megabyte log line).
const MAX_FIELD_CHARS: usize = 4096;

/// Our own events at info; dependencies that log routine events at ERROR (a client
/// hanging up mid-request, TLS peers) quieted by target.
pub const DEFAULT_FILTER: &str = "info,warp::server=off,hyper=warn,rustls=warn,rumqttc=warn";

/// The format to use: `PRINTFARMD_LOG_FORMAT` if set (an error if it names no format),
/// else the configuration's.
pub fn format_from_env(config: LogFormat) -> Result<LogFormat, String> {
    match std::env::var(FORMAT_ENV) {
        Ok(v) if !v.trim().is_empty() => LogFormat::parse(&v),
        _ => Ok(config),
    }
}

/// Installs the global subscriber. Filter: `PRINTFARMD_LOG`, else `RUST_LOG`, else
/// `DEFAULT_FILTER`.
///
/// A log line that cannot be written is dropped (`log_internal_errors(false)`): with it
/// on, tracing reports the failure with `eprintln!`, which panics when stderr is a closed
/// pipe (a restarted journald, a log reader that went away), and the job writer died at
/// its next log line.
pub fn init(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PRINTFARMD_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_FILTER));
    match format {
        LogFormat::Text if std::env::var_os("JOURNAL_STREAM").is_some() => {
            let format = tracing_subscriber::fmt::format().with_ansi(false);
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(std::io::stderr)
                .log_internal_errors(false)
                .with_ansi(false)
                .event_format(JournalPriority(format))
                .init();
        }
        LogFormat::Text => {
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(std::io::stderr)
                .log_internal_errors(false)
                .with_ansi(std::io::stderr().is_terminal())
                .init();
        }
        LogFormat::Json => {
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(std::io::stderr)
                .log_internal_errors(false)
                .with_ansi(false)
                .fmt_fields(JsonFields::new())
                .event_format(JsonLines)
                .init();
        }
    }
}

/// A text line prefixed with its level's syslog priority, for journald.
struct JournalPriority<F>(F);

impl<S, N, F> FormatEvent<S, N> for JournalPriority<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let priority = match *event.metadata().level() {
            tracing::Level::ERROR => 3,
            tracing::Level::WARN => 4,
            tracing::Level::INFO => 6,
            _ => 7,
        };
        write!(writer, "<{priority}>")?;
        self.0.format_event(ctx, writer, event)
    }
}

/// One JSON object a line, span fields flattened in (see the top).
struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut obj = Map::new();
        obj.insert(
            "timestamp".into(),
            crate::time::format(crate::time::now()).into(),
        );
        obj.insert("level".into(), meta.level().as_str().into());
        obj.insert("target".into(), meta.target().into());
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let ext = span.extensions();
                if let Some(fields) = ext.get::<FormattedFields<N>>()
                    && let Ok(Value::Object(m)) = serde_json::from_str::<Value>(fields.as_str())
                {
                    obj.extend(m);
                }
            }
        }
        event.record(&mut Fields(&mut obj));
        let line = serde_json::to_string(&Value::Object(obj)).map_err(|_| fmt::Error)?;
        writeln!(writer, "{line}")
    }
}

/// Collects an event's fields as JSON values.
struct Fields<'a>(&'a mut Map<String, Value>);

impl Fields<'_> {
    fn put(&mut self, field: &Field, v: Value) {
        self.0.insert(field.name().to_owned(), v);
    }
}

fn capped(mut s: String) -> String {
    if s.len() > MAX_FIELD_CHARS {
        let mut cut = MAX_FIELD_CHARS;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, capped(format!("{value:?}")).into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, capped(value.to_owned()).into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, capped(value.to_string()).into());
    }
}
