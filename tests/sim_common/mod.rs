//! Shared helpers of the simulator tests: a plain rumqttc-over-TLS client that merges
//! Bambu reports the way protocols.md §2.5 says a client should, and a quick farm builder.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use printfarmd_sim::{SimFarm, SimFarmBuilder, SimPrinterInfo};
use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, MqttOptions, Packet, QoS,
    TlsConfiguration, Transport,
};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde_json::{Map, Value};
use tokio::sync::mpsc;

/// Failure guard for anything awaited in these tests (never a timing assertion).
pub const GUARD: Duration = Duration::from_secs(20);

/// A farm with short phases so lifecycles complete in a second or two.
pub fn quick() -> SimFarmBuilder {
    SimFarm::builder()
        .prepare_ms(300)
        .stale_finish_ms(400)
        .reboot_ms(600)
        .seed(42)
}

/// A client config that trusts the simulator's CA (and nothing else).
pub fn tls_config(farm: &SimFarm) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(farm.ca_pem().as_bytes()) {
        roots.add(cert.expect("CA PEM")).expect("CA cert");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// What the client's event loop saw.
#[derive(Debug)]
pub enum Seen {
    /// A message on a report topic: parsed JSON, or `None` for a malformed payload.
    Report(Option<Value>),
    Connected,
    Refused(ConnectReturnCode),
    Disconnected(String),
}

/// A plain MQTT client as a monitor would use it: subscribe + `pushall` after every connect.
pub struct Client {
    pub client: AsyncClient,
    pub rx: mpsc::UnboundedReceiver<Seen>,
    /// Merged `print` state (shallow merge of every `push_status`).
    pub state: Map<String, Value>,
    /// Every `push_status` frame, in order.
    pub frames: Vec<Map<String, Value>>,
    pub serial: String,
}

pub fn connect(farm: &SimFarm, p: &SimPrinterInfo, user: &str, code: &str) -> Client {
    connect_topic(
        farm,
        p,
        user,
        code,
        &format!("device/{}/report", p.serial.as_deref().unwrap()),
    )
}

pub fn connect_topic(
    farm: &SimFarm,
    p: &SimPrinterInfo,
    user: &str,
    code: &str,
    topic: &str,
) -> Client {
    let serial = p.serial.clone().expect("a bambu printer");
    let mut opts = MqttOptions::new(
        format!("test-{}", rand::random::<u32>()),
        p.host.clone(),
        p.port,
    );
    opts.set_credentials(user, code);
    opts.set_keep_alive(Duration::from_secs(30));
    opts.set_max_packet_size(1 << 20, 1 << 20);
    opts.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
        tls_config(farm),
    )));
    let (client, mut eventloop) = AsyncClient::new(opts, 64);
    let (tx, rx) = mpsc::unbounded_channel();
    let c = client.clone();
    let topic = topic.to_string();
    let request = format!("device/{serial}/request");
    tokio::spawn(async move {
        loop {
            let seen = match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    // Resubscribe and ask for a snapshot after every (re)connect.
                    let _ = c.try_subscribe(topic.clone(), QoS::AtMostOnce);
                    let _ = c.try_publish(
                        request.clone(),
                        QoS::AtMostOnce,
                        false,
                        r#"{"pushing":{"sequence_id":"0","command":"pushall"}}"#,
                    );
                    Seen::Connected
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    Seen::Report(serde_json::from_slice(&p.payload).ok())
                }
                Ok(_) => continue,
                Err(ConnectionError::ConnectionRefused(code)) => Seen::Refused(code),
                Err(e) => Seen::Disconnected(e.to_string()),
            };
            let stop = matches!(seen, Seen::Refused(_));
            if tx.send(seen).is_err() || stop {
                return;
            }
        }
    });
    Client {
        client,
        rx,
        state: Map::new(),
        frames: Vec::new(),
        serial,
    }
}

impl Client {
    /// The next thing seen, or a panic after the guard.
    pub async fn next(&mut self) -> Seen {
        let seen = tokio::time::timeout(GUARD, self.rx.recv())
            .await
            .expect("nothing seen within the guard")
            .expect("event loop ended");
        if let Seen::Report(Some(v)) = &seen
            && let Some(print) = v.get("print").and_then(Value::as_object)
            && print.get("command").and_then(Value::as_str) == Some("push_status")
        {
            for (k, val) in print {
                self.state.insert(k.clone(), val.clone());
            }
            self.frames.push(print.clone());
        }
        seen
    }

    /// Reads until the merged state satisfies `pred`; returns the frame that made it so.
    pub async fn until(
        &mut self,
        what: &str,
        pred: impl Fn(&Map<String, Value>) -> bool,
    ) -> Map<String, Value> {
        let deadline = tokio::time::Instant::now() + GUARD;
        loop {
            assert!(
                tokio::time::Instant::now() < deadline,
                "never saw {what}; state: {:?}",
                self.state
            );
            if let Seen::Report(Some(_)) = self.next().await
                && pred(&self.state)
            {
                return self.frames.last().cloned().unwrap_or_default();
            }
        }
    }

    pub async fn until_state(&mut self, gcode_state: &str) -> Map<String, Value> {
        self.until(gcode_state, |s| {
            s.get("gcode_state").and_then(Value::as_str) == Some(gcode_state)
        })
        .await
    }

    pub async fn publish(&self, payload: &str) {
        self.client
            .publish(
                format!("device/{}/request", self.serial),
                QoS::AtMostOnce,
                false,
                payload.as_bytes().to_vec(),
            )
            .await
            .expect("publish");
    }

    pub fn str(&self, key: &str) -> &str {
        self.state.get(key).and_then(Value::as_str).unwrap_or("")
    }

    pub fn int(&self, key: &str) -> i64 {
        self.state.get(key).and_then(Value::as_i64).unwrap_or(-1)
    }
}
