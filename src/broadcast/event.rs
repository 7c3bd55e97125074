//! The events clients receive over `/ws` (design.md §4) and their wire form.

use std::sync::Arc;

use serde::Serialize;
use serde_json::value::RawValue;

pub use crate::domain::EventKind;
use crate::domain::PrinterId;
use crate::time::{self, Timestamp};

/// Something that happened, before it gets its sequence number.
#[derive(Clone, Debug)]
pub struct Event {
    pub kind: EventKind,
    /// The printer it concerns, for `subscribe` filters (none for settings).
    pub printer_id: Option<PrinterId>,
    /// The `data` object, serialised once when the event is made: the envelope around it
    /// is written per sequence number without parsing or rebuilding it (a status used to
    /// become a `serde_json::Value` tree first, allocation being ~30 % of the daemon's
    /// CPU at 2,000 printers).
    pub data: Box<RawValue>,
}

impl Event {
    pub fn new(kind: EventKind, printer_id: Option<PrinterId>, data: impl Serialize) -> Self {
        let data = serde_json::value::to_raw_value(&data).unwrap_or_else(|e| {
            tracing::error!(error = %e, event = kind.as_str(), "could not serialise an event");
            RawValue::NULL.to_owned()
        });
        Self {
            kind,
            printer_id,
            data,
        }
    }
}

#[derive(Serialize)]
struct Envelope<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    data: &'a RawValue,
    timestamp: String,
    seq: u64,
}

/// The message as sent: serialised once and shared by every client that receives it.
pub fn encode(ev: &Event, seq: u64, at: Timestamp) -> Arc<str> {
    let env = Envelope {
        kind: ev.kind.as_str(),
        data: &ev.data,
        timestamp: time::format(at),
        seq,
    };
    serde_json::to_string(&env).unwrap_or_default().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_carries_the_data_verbatim() {
        let ev = Event::new(
            EventKind::PrinterStatus,
            None,
            serde_json::json!({"id": "p1", "name": "A \"quoted\" name"}),
        );
        let msg = encode(&ev, 7, time::now());
        let v: serde_json::Value = serde_json::from_str(&msg).unwrap();
        assert_eq!(v["type"], "printer_status");
        assert_eq!(v["seq"], 7);
        assert_eq!(v["data"]["name"], "A \"quoted\" name");
        assert!(v["timestamp"].as_str().unwrap().ends_with('Z'));
    }
}
