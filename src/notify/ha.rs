//! What printfarmd publishes about a printer for Home Assistant (issue 19): the flat
//! state payload of `<prefix>/printers/<id>/state` and the MQTT discovery configs that
//! describe its sensors. Pure functions over a `printer_status`; the publisher
//! (`mqtt.rs`) decides when they go out.

use serde::Deserialize;
use serde_json::json;

use super::config::MqttConfig;

/// The members of a printer_status the state topic carries.
#[derive(Deserialize)]
pub(super) struct View {
    pub(super) id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    connection: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    current_print: Option<Current>,
    #[serde(default)]
    temperatures: Option<Temps>,
    #[serde(default)]
    updated_at: Option<String>,
}

#[derive(Deserialize)]
struct Current {
    filename: Option<String>,
    job_name: Option<String>,
    progress: Option<f64>,
    remaining_s: Option<i64>,
    job_id: Option<String>,
}

#[derive(Deserialize)]
struct Temps {
    nozzle: Option<f64>,
    bed: Option<f64>,
}

/// `printfarmd/printers/<id>/state`: flat, so Home Assistant templates stay simple.
pub(super) fn state_payload(v: &View) -> String {
    let cp = v.current_print.as_ref();
    json!({
        "id": v.id,
        "name": v.name.as_deref().unwrap_or(&v.id),
        "type": v.kind,
        "connection": v.connection,
        "online": v.connection.as_deref() == Some("connected"),
        "state": v.state,
        "progress": cp.and_then(|c| c.progress).unwrap_or(0.0),
        "current_job": cp.and_then(|c| c.filename.clone().or_else(|| c.job_name.clone())),
        "job_id": cp.and_then(|c| c.job_id.clone()),
        "time_left_s": cp.and_then(|c| c.remaining_s),
        "error": v.error,
        "nozzle_temp": v.temperatures.as_ref().and_then(|t| t.nozzle),
        "bed_temp": v.temperatures.as_ref().and_then(|t| t.bed),
        "updated_at": v.updated_at,
    })
    .to_string()
}

/// Home Assistant's node id: `[a-zA-Z0-9_-]` only.
fn node_id(printer: &str) -> String {
    let clean: String = printer
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("printfarmd_{clean}")
}

/// The discovery messages for one printer: `(topic, config)`.
pub(super) fn discovery(cfg: &MqttConfig, v: &View) -> Vec<(String, String)> {
    let node = node_id(&v.id);
    let state_topic = state_topic(cfg, &v.id);
    let name = v.name.as_deref().unwrap_or(&v.id);
    let device = json!({
        "identifiers": [node],
        "name": name,
        "manufacturer": "printfarmd",
        "model": v.kind.as_deref().unwrap_or("printer"),
    });
    let sensors = [
        (
            "state",
            "State",
            "{{ value_json.state }}",
            json!({"icon": "mdi:printer-3d"}),
        ),
        (
            "connection",
            "Connection",
            "{{ value_json.connection }}",
            json!({"icon": "mdi:lan-connect"}),
        ),
        (
            "progress",
            "Progress",
            "{{ value_json.progress }}",
            json!({"unit_of_measurement": "%", "state_class": "measurement", "icon": "mdi:progress-check"}),
        ),
        (
            "current_job",
            "Current job",
            "{{ value_json.current_job if value_json.current_job else 'none' }}",
            json!({"icon": "mdi:file-outline"}),
        ),
        (
            "time_left",
            "Time left",
            "{{ value_json.time_left_s if value_json.time_left_s is not none else 0 }}",
            json!({"unit_of_measurement": "s", "device_class": "duration"}),
        ),
    ];
    sensors
        .into_iter()
        .map(|(object, label, template, extra)| {
            let mut c = json!({
                "name": label,
                "unique_id": format!("{node}_{object}"),
                // object_id for Home Assistant before 2025.10, default_entity_id after.
                "object_id": format!("{node}_{object}"),
                "default_entity_id": format!("sensor.{node}_{object}"),
                "state_topic": state_topic,
                "value_template": template,
                "availability_topic": format!("{}/status", cfg.topic_prefix),
                "payload_available": "online",
                "payload_not_available": "offline",
                "device": device,
            });
            if let (Some(c), Some(extra)) = (c.as_object_mut(), extra.as_object()) {
                c.extend(extra.clone());
            }
            (discovery_topic(cfg, &node, object), c.to_string())
        })
        .collect()
}

/// The sensors each printer gets, by object id (the last but one level of their topics).
pub(super) const SENSORS: [&str; 5] = [
    "state",
    "connection",
    "progress",
    "current_job",
    "time_left",
];

fn discovery_topic(cfg: &MqttConfig, node: &str, object: &str) -> String {
    format!("{}/sensor/{node}/{object}/config", cfg.discovery_prefix)
}

/// Every retained topic published for `printer`: its state topic and, with discovery
/// on, its discovery configs (what a deleted printer's clean-up empties).
pub(super) fn retained_topics(cfg: &MqttConfig, printer: &str) -> Vec<String> {
    let mut out = vec![state_topic(cfg, printer)];
    if !cfg.discovery_prefix.is_empty() {
        let node = node_id(printer);
        out.extend(SENSORS.iter().map(|o| discovery_topic(cfg, &node, o)));
    }
    out
}

/// `<prefix>/printers/<id>/state`.
pub(super) fn state_topic(cfg: &MqttConfig, printer: &str) -> String {
    format!("{}/printers/{printer}/state", cfg.topic_prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view() -> View {
        serde_json::from_str(
            r#"{"id":"x1.rack","name":"X1C rack 1","type":"bambu","connection":"connected",
                "state":"printing","current_print":{"filename":"a.3mf","progress":42.5,
                "remaining_s":600,"job_id":"job_1"},"temperatures":{"nozzle":220.0}}"#,
        )
        .unwrap()
    }

    #[test]
    fn state_is_flat_and_discovery_points_at_it() {
        let s: serde_json::Value = serde_json::from_str(&state_payload(&view())).unwrap();
        assert_eq!(s["progress"], 42.5);
        assert_eq!(s["current_job"], "a.3mf");
        assert_eq!(s["time_left_s"], 600);
        assert_eq!(s["online"], true);
        let cfg: MqttConfig = serde_json::from_value(json!({"url": "mqtt://h"})).unwrap();
        let d = discovery(&cfg, &view());
        assert_eq!(d.len(), SENSORS.len());
        // The topics a deleted printer's clean-up empties are exactly these.
        let mut published: Vec<String> = d.iter().map(|(t, _)| t.clone()).collect();
        published.insert(0, "printfarmd/printers/x1.rack/state".into());
        assert_eq!(retained_topics(&cfg, "x1.rack"), published);
        assert_eq!(
            d[0].0,
            "homeassistant/sensor/printfarmd_x1_rack/state/config"
        );
        let c: serde_json::Value = serde_json::from_str(&d[2].1).unwrap();
        assert_eq!(c["state_topic"], "printfarmd/printers/x1.rack/state");
        assert_eq!(c["availability_topic"], "printfarmd/status");
        assert_eq!(c["unit_of_measurement"], "%");
        assert_eq!(c["default_entity_id"], "sensor.printfarmd_x1_rack_progress");
    }
}
