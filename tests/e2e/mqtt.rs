//! Issue 19, MQTT, end to end against Debian's real mosquitto: while a simulated farm
//! prints, a subscriber sees Home Assistant discovery, retained per-printer state and
//! job events; the broker restarts (losing its retained messages) and the daemon
//! republishes everything; a daemon killed outright is marked `offline` by its last will,
//! and a clean stop leaves `offline` too. Skipped, with a note, where
//! mosquitto is not installed (`.ci/run` installs it).

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use printfarmd_sim::Action;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::Value;

use crate::rig::{self, Rig, eventually, print, x1};

const MOSQUITTO: &str = "/usr/sbin/mosquitto";

/// Debian's mosquitto on `port`, anonymous, nothing persisted (a restart forgets every
/// retained message: the daemon has to publish them again).
async fn broker(dir: &Path, port: u16) -> tokio::process::Child {
    use std::os::unix::fs::PermissionsExt;
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"),
    )
    .unwrap();
    // mosquitto started as root drops to its own user: let that user read the file.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut child = tokio::process::Command::new(MOSQUITTO)
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let deadline = tokio::time::Instant::now() + rig::WAIT;
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "mosquitto did not start"
        );
        if let Ok(Some(st)) = child.try_wait() {
            panic!("mosquitto exited: {st}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child
}

/// A subscriber to everything: the last payload per topic, and every payload of
/// `printfarmd/status` in order.
struct Sub {
    seen: Arc<Mutex<HashMap<String, String>>>,
    status_history: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Sub {
    async fn start(port: u16, name: &str) -> Sub {
        let mut o = MqttOptions::new(name, "127.0.0.1", port);
        o.set_keep_alive(Duration::from_secs(5));
        let (client, mut ev) = AsyncClient::new(o, 64);
        client.subscribe("#", QoS::AtMostOnce).await.unwrap();
        let seen: Arc<Mutex<HashMap<String, String>>> = Arc::default();
        let status_history: Arc<Mutex<Vec<String>>> = Arc::default();
        let (s, h) = (seen.clone(), status_history.clone());
        let task = tokio::spawn(async move {
            let _client = client;
            loop {
                match ev.poll().await {
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let payload = String::from_utf8_lossy(&p.payload).into_owned();
                        if p.topic == "printfarmd/status" {
                            h.lock().unwrap().push(payload.clone());
                        }
                        s.lock().unwrap().insert(p.topic.clone(), payload);
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
        });
        Sub {
            seen,
            status_history,
            task,
        }
    }

    fn get(&self, topic: &str) -> Option<String> {
        self.seen.lock().unwrap().get(topic).cloned()
    }

    fn json(&self, topic: &str) -> Value {
        self.get(topic)
            .and_then(|p| serde_json::from_str(&p).ok())
            .unwrap_or(Value::Null)
    }

    async fn wait(&self, what: &str, ok: impl Fn(&Sub) -> bool) {
        eventually(
            what,
            async || if ok(self) { Ok(()) } else { Err(()) },
            |_| {
                let mut topics: Vec<_> = self.seen.lock().unwrap().clone().into_iter().collect();
                topics.sort();
                format!("seen: {topics:#?}")
            },
        )
        .await
    }
}

impl Drop for Sub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn forget_status(s: &Sub) {
    s.seen.lock().unwrap().remove("printfarmd/status");
}

fn discovered(s: &Sub, node: &str) -> bool {
    [
        "state",
        "connection",
        "progress",
        "current_job",
        "time_left",
    ]
    .iter()
    .all(|o| {
        let c = s.json(&format!("homeassistant/sensor/{node}/{o}/config"));
        c["state_topic"]
            .as_str()
            .is_some_and(|t| t.ends_with("/state"))
            && c["availability_topic"] == "printfarmd/status"
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn home_assistant_sees_the_farm_and_a_broker_restart_recovers() {
    if !Path::new(MOSQUITTO).exists() {
        eprintln!("skipped: {MOSQUITTO} is not installed (apt-get install mosquitto)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut mosquitto = broker(dir.path(), port).await;
    let sub = Sub::start(port, "test-sub-1").await;
    let extra = format!(
        "{}\n[mqtt]\nurl = \"mqtt://127.0.0.1:{port}\"\n",
        rig::DAEMON_EXTRA
    );
    let r = Rig::start_with(x1(1).prusalink(1), &extra).await;
    let state_topic = "printfarmd/printers/bambu_1/state";

    // Online, discovery for each printer, and their states.
    sub.wait("online, discovery and idle states", |s| {
        s.get("printfarmd/status").as_deref() == Some("online")
            && discovered(s, "printfarmd_bambu_1")
            && discovered(s, "printfarmd_prusa_1")
            && s.json(state_topic)["state"] == "idle"
            && s.json("printfarmd/printers/prusa_1/state")["connection"] == "connected"
    })
    .await;
    let name = r.sim.printers()[0].name.clone();
    let c = sub.json("homeassistant/sensor/printfarmd_bambu_1/progress/config");
    assert_eq!(c["device"]["name"], name.as_str(), "{c}");
    assert_eq!(c["unit_of_measurement"], "%");

    // A print: its state with progress and time left, and the job event.
    r.act("bambu_1", print("bracket.3mf", 60)).await;
    sub.wait("printing with progress", |s| {
        let st = s.json(state_topic);
        st["state"] == "printing"
            && st["progress"].as_f64().is_some_and(|p| p > 0.0)
            && st["time_left_s"].as_i64().is_some_and(|t| t > 0)
            && st["current_job"]
                .as_str()
                .is_some_and(|f| f.starts_with("bracket"))
    })
    .await;
    sub.wait("the job event", |s| {
        s.json("printfarmd/events/job_auto_created")["data"]["printer_id"] == "bambu_1"
    })
    .await;

    // The broker goes away: monitoring carries on (the print finishes and is recorded)...
    mosquitto.kill().await.unwrap();
    drop(sub);
    r.act("bambu_1", Action::Finish).await;
    r.wait_jobs("", "the job completed while the broker was down", |j| {
        j.iter().any(|j| j["status"] == "completed")
    })
    .await;
    // ... and once it is back (empty: nothing persisted), everything is published again.
    let _mosquitto = broker(dir.path(), port).await;
    let sub = Sub::start(port, "test-sub-2").await;
    sub.wait("the retained topics again after the broker restart", |s| {
        s.get("printfarmd/status").as_deref() == Some("online")
            && discovered(s, "printfarmd_bambu_1")
            && discovered(s, "printfarmd_prusa_1")
            && s.json(state_topic)["state"] == "finished"
    })
    .await;

    // The daemon killed outright: the broker publishes its last will; back, it is online.
    let r = r.restart_daemon(true).await;
    sub.wait("offline (the last will), then online again", |s| {
        let h = s.status_history.lock().unwrap().clone();
        let will = h.iter().position(|p| p == "offline");
        will.is_some_and(|w| h[w..].iter().any(|p| p == "online"))
    })
    .await;

    // A clean stop says offline (retained, for Home Assistant's availability).
    forget_status(&sub);
    let mut d = r.d;
    tokio::task::spawn_blocking(move || d.stop()).await.unwrap();
    sub.wait("offline after a clean stop", |s| {
        s.get("printfarmd/status").as_deref() == Some("offline")
    })
    .await;
}

/// A printer deleted through the API leaves nothing behind on the broker: its retained
/// state topic and Home Assistant discovery configs are emptied (an empty retained
/// message removes a retained topic), so Home Assistant drops its entities and a new
/// subscriber never sees it, while the other printer's topics stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_printer_leaves_no_retained_topics_behind() {
    if !Path::new(MOSQUITTO).exists() {
        eprintln!("skipped: {MOSQUITTO} is not installed (apt-get install mosquitto)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _mosquitto = broker(dir.path(), port).await;
    let sub = Sub::start(port, "test-sub-before").await;
    let sim = rig::farm()
        .bambu(1, printfarmd_sim::Style::X1)
        .prusalink(1)
        .start()
        .await
        .unwrap();
    let extra = format!(
        "{}\n[mqtt]\nurl = \"mqtt://127.0.0.1:{port}\"\n",
        rig::DAEMON_EXTRA
    );
    let d = rig::start_daemon(&extra, String::new()).await;
    let r = Rig { sim, d };
    for p in r.sim.printers() {
        let mut entry = serde_json::to_value(&p).unwrap();
        entry.as_object_mut().unwrap().remove("style");
        let (code, body) = r.d.send("POST", "/api/v1/printers", Some(entry)).await;
        assert_eq!(code, 201, "{body}");
    }
    sub.wait("both printers discovered, with their states", |s| {
        discovered(s, "printfarmd_bambu_1")
            && discovered(s, "printfarmd_prusa_1")
            && s.json("printfarmd/printers/prusa_1/state")["connection"] == "connected"
            && s.json("printfarmd/printers/bambu_1/state")["connection"] == "connected"
    })
    .await;

    let (code, body) = r.d.send("DELETE", "/api/v1/printers/prusa_1", None).await;
    assert_eq!(code, 204, "{body}");
    let mut gone = vec!["printfarmd/printers/prusa_1/state".to_owned()];
    gone.extend(
        [
            "state",
            "connection",
            "progress",
            "current_job",
            "time_left",
        ]
        .iter()
        .map(|o| format!("homeassistant/sensor/printfarmd_prusa_1/{o}/config")),
    );
    sub.wait("the deleted printer's retained topics emptied", |s| {
        gone.iter().all(|t| s.get(t).as_deref() == Some(""))
    })
    .await;

    // A subscriber from now on gets the other printer's retained topics and none of the
    // deleted one's, even after the other printer's statuses kept coming for a while.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let fresh = Sub::start(port, "test-sub-after").await;
    fresh
        .wait("the remaining printer's retained topics", |s| {
            discovered(s, "printfarmd_bambu_1")
                && s.json("printfarmd/printers/bambu_1/state")["connection"] == "connected"
        })
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let left: Vec<String> = fresh
        .seen
        .lock()
        .unwrap()
        .keys()
        .filter(|t| t.contains("prusa_1"))
        .cloned()
        .collect();
    assert!(
        left.is_empty(),
        "retained topics of a deleted printer: {left:?}"
    );
    assert!(
        gone.iter().all(|t| sub.get(t).as_deref() == Some("")),
        "a deleted printer's topic was published again"
    );
}
