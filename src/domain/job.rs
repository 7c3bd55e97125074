//! The job as every client sees it (REST and WebSocket share this one JSON shape), and
//! the requests that create and edit one.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::{JobId, JobStatus, PrinterId, PrinterType};
use crate::time::{self, Timestamp};

/// The keys printfarmd writes into `customer_info` of an auto-created job (the seed's
/// four). They describe how the job came to be, so an edit may restate them but never
/// change or remove them.
pub const AUTO_KEYS: [&str; 4] = [
    "auto_created",
    "discovery_time",
    "printer_start_time",
    "discovered_on_startup",
];

/// Longest `job_name`, `filename` and `notes` accepted from a client, in characters.
/// Generous for any real file name or note while keeping one row small.
pub const MAX_NAME_LEN: usize = 512;
/// `end_reason` of a job whose printer took a cancel from `POST /api/v1/printers/{id}/cancel`.
pub const END_REASON_API_CANCEL: &str = "cancelled from printfarmd";
/// Longest `end_reason` taken from a printer's error text, in characters: a decoded
/// error ("Heatbed temperature malfunction (0300_4000)") is far shorter; the cap keeps
/// a firmware's garbage from growing a row.
pub const MAX_END_REASON_LEN: usize = 512;
pub const MAX_NOTES_LEN: usize = 16 * 1024;
/// Largest `customer_info` object accepted, serialised, in bytes.
pub const MAX_CUSTOMER_INFO_BYTES: usize = 64 * 1024;

/// One print on one printer (design.md §3).
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct Job {
    pub id: JobId,
    pub printer_id: PrinterId,
    pub printer_type: PrinterType,
    pub job_name: String,
    pub filename: String,
    pub status: JobStatus,
    pub progress: f64,
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(with = "opt_time")]
    pub start_time: Option<Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(with = "opt_time")]
    pub end_time: Option<Timestamp>,
    pub estimated_duration: Option<i64>,
    pub actual_duration: Option<i64>,
    #[schema(value_type = Object)]
    pub customer_info: Map<String, Value>,
    pub notes: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "req_time")]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "req_time")]
    pub updated_at: Timestamp,
    /// Why the job ended, when the daemon knows more than the status says ("cancelled
    /// from printfarmd", or the printer's error text for a failed or cancelled print);
    /// left out of the JSON when not set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_reason: Option<String>,
    /// The printer's own id for this print, when it has a trustworthy one (identity).
    #[serde(skip)]
    pub printer_job_id: Option<String>,
    /// The start time the printer reported, when it reported one (identity).
    #[serde(skip)]
    pub printer_start_time: Option<Timestamp>,
}

impl Job {
    pub fn is_auto_created(&self) -> bool {
        self.customer_info.get("auto_created") == Some(&Value::Bool(true))
    }

    /// Sets the status, and on entering an end state fills `end_time` (now, unless
    /// given), `actual_duration` and, on completion, `progress` = 100.
    pub fn set_status(&mut self, status: JobStatus, at: Timestamp) {
        self.status = status;
        if status.is_ended() {
            let end = *self.end_time.get_or_insert(at);
            if let Some(start) = self.start_time {
                self.actual_duration = Some((end - start).num_seconds().max(0));
            }
            if status == JobStatus::Completed {
                self.progress = 100.0;
            }
        } else {
            self.end_time = None;
            self.actual_duration = None;
            if status.is_open() && self.start_time.is_none() {
                self.start_time = Some(at);
            }
        }
    }
}

/// `POST /api/v1/jobs`.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewJob {
    #[schema(pattern = r"^[A-Za-z0-9_.\-]{1,64}$")]
    pub printer_id: String,
    /// Not blank; at most 512 characters.
    #[schema(pattern = r"\S", max_length = 512)]
    pub job_name: String,
    /// Not blank; at most 512 characters.
    #[schema(pattern = r"\S", max_length = 512)]
    pub filename: String,
    #[serde(default)]
    pub status: Option<JobStatus>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub customer_info: Option<Map<String, Value>>,
    #[serde(default)]
    pub notes: Option<String>,
    #[serde(default)]
    pub estimated_duration: Option<i64>,
}

/// `PUT /api/v1/jobs/{id}`: every field optional; `customer_info` is merged key by
/// key (a `null` value removes a key), `notes: null` clears the notes.
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobPatch {
    #[serde(default)]
    pub job_name: Option<String>,
    #[serde(default)]
    pub status: Option<JobStatus>,
    #[serde(default)]
    pub progress: Option<f64>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub customer_info: Option<Map<String, Value>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub notes: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub start_time: Option<Option<String>>,
    /// Only for a job that has ended (completed, failed, cancelled or unknown), or
    /// with a `status` that ends it; otherwise refused with 422.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub end_time: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i64>)]
    pub estimated_duration: Option<Option<i64>>,
}

/// Tells "absent" (outer None) from "null" (Some(None)).
fn double_option<'de, T, D>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Validation shared by create and edit; the message names the field.
pub fn check_text(field: &str, value: &str, max: usize, allow_empty: bool) -> Result<(), String> {
    if !allow_empty && value.trim().is_empty() {
        return Err(format!("{field} must not be empty"));
    }
    if value.chars().count() > max {
        return Err(format!("{field} is longer than {max} characters"));
    }
    Ok(())
}

pub fn check_customer_info(info: &Map<String, Value>) -> Result<(), String> {
    let size = serde_json::to_vec(info)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if size > MAX_CUSTOMER_INFO_BYTES {
        return Err(format!(
            "customer_info is {size} bytes; at most {MAX_CUSTOMER_INFO_BYTES} are accepted"
        ));
    }
    Ok(())
}

/// Merges `patch` into `info`. On an auto-created job the auto-creation keys may be
/// restated with their current value but not changed or removed.
pub fn merge_customer_info(
    info: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    protect_auto_keys: bool,
) -> Result<(), String> {
    for (k, v) in patch {
        if protect_auto_keys && AUTO_KEYS.contains(&k.as_str()) {
            if info.get(k) != Some(v) {
                return Err(format!(
                    "customer_info.{k} records how this job was auto-created and cannot be changed"
                ));
            }
            continue;
        }
        if v.is_null() {
            info.remove(k);
        } else {
            info.insert(k.clone(), v.clone());
        }
    }
    Ok(())
}

mod opt_time {
    use super::*;
    pub fn serialize<S: serde::Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&time::format(*t)),
            None => s.serialize_none(),
        }
    }
}

mod req_time {
    use super::*;
    pub fn serialize<S: serde::Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&time::format(*t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn merge_keeps_auto_keys() {
        let mut info = obj(json!({"auto_created": true, "discovery_time": "t", "customer": "A"}));
        merge_customer_info(&mut info, &obj(json!({"customer": null, "po": 7})), true).unwrap();
        assert_eq!(
            Value::Object(info.clone()),
            json!({"auto_created": true, "discovery_time": "t", "po": 7})
        );
        // Restating is fine, changing or dropping is not.
        merge_customer_info(&mut info, &obj(json!({"auto_created": true})), true).unwrap();
        assert!(
            merge_customer_info(&mut info, &obj(json!({"auto_created": false})), true).is_err()
        );
        assert!(
            merge_customer_info(&mut info, &obj(json!({"discovery_time": null})), true).is_err()
        );
    }

    #[test]
    fn patch_tells_null_from_absent() {
        let p: JobPatch = serde_json::from_str(r#"{"notes": null}"#).unwrap();
        assert_eq!(p.notes, Some(None));
        let p: JobPatch = serde_json::from_str(r#"{}"#).unwrap();
        assert_eq!(p.notes, None);
        assert!(serde_json::from_str::<JobPatch>(r#"{"colour": 1}"#).is_err());
    }
}
