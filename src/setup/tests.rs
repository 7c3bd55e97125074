//! The setup owner over a real SQLite file, without an actor: what it refuses, what it
//! writes, what a restart reads back, and that a write the writer does not count as
//! done changes nothing live.

use rusqlite::Connection;

use super::{Db, Setup};
use crate::config::{Config, SettingsChange, ValidPrinter};
use crate::domain::PrinterId;
use crate::registry::ManagedBy;
use crate::store::{self, StoreError};

const CONFIG: &str = "[monitoring]\ninterval = 30\n\n[[printers]]\nid = \"cfg\"\ntype = \"prusalink\"\nhost = \"10.0.0.9\"\napi_key = \"k\"\n";

struct Rig {
    conn: Connection,
    config: Config,
    _dir: tempfile::TempDir,
}

fn rig() -> Rig {
    let dir = tempfile::tempdir().unwrap();
    Rig {
        conn: store::open_writer(&dir.path().join("t.db")).unwrap(),
        config: Config::from_toml_str(CONFIG).unwrap(),
        _dir: dir,
    }
}

impl Rig {
    fn setup(&self) -> Setup {
        Setup::load(&self.conn, &self.config).unwrap().0
    }
}

fn id(s: &str) -> PrinterId {
    PrinterId::new(s).unwrap()
}

fn bambu(id: &str, serial: &str) -> ValidPrinter {
    let p = serde_json::from_value(serde_json::json!({
        "id": id, "type": "bambu", "host": "10.0.0.2", "serial": serial, "access_code": "0123"
    }))
    .unwrap();
    ValidPrinter::parse(p).unwrap()
}

fn change(json: &str) -> SettingsChange {
    serde_json::from_str(json).unwrap()
}

/// A writer that refuses every write as done (the database files were replaced).
struct Refusing<'a>(&'a Connection);

impl Db for Refusing<'_> {
    fn conn(&self) -> &Connection {
        self.0
    }
    fn track<T>(&self, r: Result<T, StoreError>) -> Result<T, StoreError> {
        r.and(Err(StoreError::Unavailable("replaced".into())))
    }
}

#[test]
fn a_settings_change_is_saved_made_live_and_read_back_at_start() {
    let r = rig();
    let mut s = r.setup();
    let mut rx = s.subscribe();
    assert_eq!(s.settings().monitoring_interval, 30);
    let next = s
        .update_settings(&r.conn, change(r#"{"monitoring_interval": 5}"#))
        .unwrap();
    assert_eq!(next.monitoring_interval, 5);
    assert!(
        next.job_creation_auto_create,
        "keys not given keep their value"
    );
    assert!(rx.has_changed().unwrap());
    assert_eq!(rx.borrow_and_update().monitoring_interval, 5);
    // A restart: the saved value is laid over the config file's.
    assert_eq!(r.setup().settings(), next);
}

#[test]
fn a_write_not_done_changes_nothing_live() {
    let r = rig();
    let mut s = r.setup();
    let e = s
        .update_settings(
            &Refusing(&r.conn),
            change(r#"{"job_creation_auto_create": false}"#),
        )
        .unwrap_err();
    assert!(matches!(e, StoreError::Unavailable(_)), "{e}");
    assert!(s.auto_create());
    let e = s
        .save_printer(&Refusing(&r.conn), bambu("b1", "S1"), true)
        .unwrap_err();
    assert!(matches!(e, StoreError::Unavailable(_)), "{e}");
    assert!(s.printers().get("b1").is_none());
}

#[test]
fn printers_are_added_changed_and_removed_and_come_back_after_a_restart() {
    let r = rig();
    let mut s = r.setup();
    s.save_printer(&r.conn, bambu("b1", "S1"), true).unwrap();
    let e = s.printers().get("b1").unwrap();
    assert_eq!(e.managed_by, ManagedBy::Api);
    // Adding it again is refused; changing it works.
    let again = s
        .save_printer(&r.conn, bambu("b1", "S1"), true)
        .unwrap_err();
    assert!(again.to_string().contains("already exists"), "{again}");
    s.save_printer(&r.conn, bambu("b1", "S2"), false).unwrap();
    let back = r.setup();
    assert_eq!(
        back.printers().get("b1").unwrap().config.serial.as_deref(),
        Some("S2")
    );
    assert_eq!(back.printers().len(), 2, "the config file's and the API's");
    // Changing one that is not there is 404, not an insert.
    let e = s
        .save_printer(&r.conn, bambu("b9", "S9"), false)
        .unwrap_err();
    assert!(matches!(e, StoreError::PrinterNotFound(_)), "{e}");
    assert!(s.printers().get("b9").is_none());
    s.remove_printer(&r.conn, &id("b1")).unwrap();
    assert!(s.printers().get("b1").is_none());
    assert!(r.setup().printers().get("b1").is_none());
    let e = s.remove_printer(&r.conn, &id("b1")).unwrap_err();
    assert!(matches!(e, StoreError::PrinterNotFound(_)), "{e}");
}

#[test]
fn a_config_file_printer_is_not_changed_or_removed_through_the_api() {
    let r = rig();
    let mut s = r.setup();
    let p: crate::config::PrinterConfig = serde_json::from_value(serde_json::json!({
        "id": "cfg", "type": "prusalink", "host": "10.0.0.10", "api_key": "other"
    }))
    .unwrap();
    for create in [true, false] {
        let e = s
            .save_printer(&r.conn, ValidPrinter::parse(p.clone()).unwrap(), create)
            .unwrap_err();
        assert!(
            matches!(&e, StoreError::Conflict(m) if m.contains("config file")),
            "{e}"
        );
    }
    let e = s.remove_printer(&r.conn, &id("cfg")).unwrap_err();
    assert!(
        matches!(&e, StoreError::Conflict(m) if m.contains("[[printers]]")),
        "{e}"
    );
    assert_eq!(s.printers().get("cfg").unwrap().config.host, "10.0.0.9");
    assert!(
        store::printers::list_api_printers(&r.conn)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn pins_are_stored_reset_and_cleared_by_a_change() {
    let r = rig();
    let mut s = r.setup();
    s.pin(&r.conn, &id("cfg"), "aa");
    assert_eq!(Setup::load(&r.conn, &r.config).unwrap().1[&id("cfg")], "aa");
    s.reset_pin(&r.conn, &id("cfg")).unwrap();
    assert_eq!(store::printers::pin(&r.conn, "cfg").unwrap(), None);
    let e = s.reset_pin(&r.conn, &id("nope")).unwrap_err();
    assert!(matches!(e, StoreError::PrinterNotFound(_)), "{e}");
    // A changed printer may be another device: its pin goes.
    s.save_printer(&r.conn, bambu("b1", "S1"), true).unwrap();
    s.pin(&r.conn, &id("b1"), "bb");
    s.save_printer(&r.conn, bambu("b1", "S2"), false).unwrap();
    assert_eq!(store::printers::pin(&r.conn, "b1").unwrap(), None);
}

#[test]
fn at_start_a_saved_printer_loses_to_the_config_files_id_or_device() {
    let r = rig();
    let mut s = r.setup();
    s.save_printer(&r.conn, bambu("b1", "S1"), true).unwrap();
    // The config file later gets the same device under another id, and an entry with
    // the API printer's id is saved under the config file's id by hand.
    let config = Config::from_toml_str(&format!(
        "{CONFIG}\n[[printers]]\nid = \"b_cfg\"\ntype = \"bambu\"\nhost = \"h\"\nserial = \"s1\"\naccess_code = \"9\"\n"
    ))
    .unwrap();
    store::printers::save_api_printer(
        &r.conn,
        &ValidPrinter::parse(
            serde_json::from_value(serde_json::json!({
                "id": "cfg", "type": "moonraker", "host": "10.0.0.77"
            }))
            .unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    let (s, _) = Setup::load(&r.conn, &config).unwrap();
    let ids: Vec<_> = s
        .printers()
        .all()
        .into_iter()
        .map(|e| (e.config.id.to_string(), e.managed_by))
        .collect();
    assert_eq!(
        ids,
        [
            ("b_cfg".to_string(), ManagedBy::Config),
            ("cfg".to_string(), ManagedBy::Config)
        ]
    );
}
