//! Printers added through the API: one device under two ids, or a type without a driver,
//! is refused with a clear code, never with a secret in the message.

use serde_json::json;

use crate::harness::Daemon;

#[tokio::test]
async fn the_same_printer_under_another_id_is_refused_with_409() {
    let d = Daemon::start("");
    // bambu_1 of the config file, serial 01S00C000000001, under a new id.
    let (code, body) = d
        .send(
            "POST",
            "/api/v1/printers",
            Some(
                json!({"id": "bambu_again", "type": "bambu", "host": "10.9.9.9",
                        "serial": "01S00C000000001", "access_code": "13572468"}),
            ),
        )
        .await;
    assert_eq!(code, 409, "{body}");
    assert_eq!(body["code"], "duplicate_printer");
    let msg = body["message"].as_str().unwrap();
    assert!(
        msg.contains("bambu_1") && msg.contains("bambu_again"),
        "{msg}"
    );
    assert!(
        !msg.contains("13572468") && !msg.contains("87654321"),
        "{msg}"
    );

    // prusa_1 of the config file (127.0.0.1:9) under a new id.
    let prusa = |id: &str, port: u16| {
        json!({"id": id, "type": "prusalink", "host": "127.0.0.1", "port": port,
               "username": "maker", "password": "pw-24680"})
    };
    let (code, body) = d
        .send("POST", "/api/v1/printers", Some(prusa("prusa_again", 9)))
        .await;
    assert_eq!(
        (code, body["code"].as_str()),
        (409, Some("duplicate_printer"))
    );
    assert!(!body.to_string().contains("pw-24680"), "{body}");

    // A printer of its own is accepted; moving it onto prusa_1's address is refused.
    let (code, body) = d
        .send("POST", "/api/v1/printers", Some(prusa("prusa_2", 10)))
        .await;
    assert_eq!(code, 201, "{body}");
    let (code, body) = d
        .send("PUT", "/api/v1/printers/prusa_2", Some(prusa("prusa_2", 9)))
        .await;
    assert_eq!(
        (code, body["code"].as_str()),
        (409, Some("duplicate_printer"))
    );
    assert!(
        body["message"].as_str().unwrap().contains("prusa_1"),
        "{body}"
    );
    // Changing something else of its own entry is not a duplicate of itself.
    let (code, body) = d
        .send(
            "PUT",
            "/api/v1/printers/prusa_2",
            Some(prusa("prusa_2", 11)),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    let (_, list) = d.get("/api/v1/printers").await;
    assert_eq!(list["total_count"], 3, "{list}");
}

#[tokio::test]
async fn an_octoprint_printer_needs_its_api_key_and_a_moonraker_one_does_not() {
    let d = Daemon::start("");
    let (code, body) = d
        .send(
            "POST",
            "/api/v1/printers",
            Some(json!({"id": "octo", "type": "octoprint", "host": "10.1.2.3", "password": "pw-97531"})),
        )
        .await;
    assert_eq!(code, 422, "{body}");
    let msg = body["message"].as_str().unwrap();
    assert!(msg.contains("octo") && msg.contains("api_key"), "{msg}");
    assert!(!msg.contains("pw-97531"), "{msg}");
    let (code, body) = d
        .send(
            "POST",
            "/api/v1/printers",
            Some(json!({"id": "klipper", "type": "moonraker", "host": "10.1.2.4"})),
        )
        .await;
    assert_eq!(code, 201, "{body}");
    let (_, list) = d.get("/api/v1/printers").await;
    assert_eq!(list["total_count"], 3, "{list}");
}
