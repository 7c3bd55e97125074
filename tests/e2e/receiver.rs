//! The webhook tests' receiver: a real HTTP server in the test process that records
//! every POST, and the helpers that wait on it and check its HMAC signatures.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use warp::Filter;
use warp::http::{HeaderMap, Response, StatusCode};

use crate::harness::Daemon;
use crate::rig;

/// Long enough for a delivery held back by a few failed attempts (backoff 2, 4, 8 s,
/// jittered) plus a daemon restart on a loaded machine.
pub const DELIVERY_WAIT: Duration = Duration::from_secs(60);

#[derive(Clone, Debug)]
pub struct Got {
    pub path: String,
    pub headers: HeaderMap,
    pub body: String,
}

impl Got {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// A receiver on a fixed port: records every POST, answers 200 (`/redirect` answers 302
/// to `/hook`). Every answer closes its connection, so stopping the accept loop takes the
/// receiver down for good (no pooled connection keeps reaching it).
pub struct Receiver {
    got: Arc<Mutex<Vec<Got>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    pub async fn start(port: u16, got: Arc<Mutex<Vec<Got>>>) -> Receiver {
        let g = got.clone();
        let route = warp::post()
            .and(warp::path::full())
            .and(warp::header::headers_cloned())
            .and(warp::body::bytes())
            .map(
                move |path: warp::path::FullPath, headers: HeaderMap, body: bytes::Bytes| {
                    let path = path.as_str().to_owned();
                    let mut r = Response::builder().header("connection", "close");
                    if path == "/redirect" {
                        r = r.status(StatusCode::FOUND).header("location", "/hook");
                    } else {
                        g.lock().unwrap().push(Got {
                            path,
                            headers,
                            body: String::from_utf8_lossy(&body).into_owned(),
                        });
                    }
                    r.body(String::new()).unwrap()
                },
            );
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("receiver port free again");
        let task = tokio::spawn(async move {
            warp::serve(route).incoming(listener).run().await;
        });
        Receiver { got, task }
    }

    pub fn stop(self) {
        self.task.abort();
    }

    pub fn all(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// HMAC-SHA256 checked independently of the daemon's code path (aws-lc-rs's verify).
pub fn signature_ok(secret: &str, got: &Got) -> bool {
    use aws_lc_rs::hmac;
    let Some(hex) = got.header("x-printfarmd-signature").strip_prefix("sha256=") else {
        return false;
    };
    let Some(tag) = (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|b| u8::from_str_radix(b, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()
    else {
        return false;
    };
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    hmac::verify(&key, got.body.as_bytes(), &tag).is_ok()
}

pub async fn wait_got(
    what: &str,
    got: &Arc<Mutex<Vec<Got>>>,
    ok: impl Fn(&Got) -> bool,
    log: impl Fn() -> String,
) -> Got {
    let deadline = tokio::time::Instant::now() + DELIVERY_WAIT;
    loop {
        if let Some(g) = got.lock().unwrap().iter().find(|g| ok(g)) {
            return g.clone();
        }
        if tokio::time::Instant::now() > deadline {
            panic!(
                "waited {DELIVERY_WAIT:?} for {what}; received: {:#?}\ndaemon log tail:\n{}",
                got.lock().unwrap(),
                rig::tail(&log(), 40)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn hook_status(d: &Daemon, id: &str) -> Value {
    let (code, list) = d.get("/api/v1/webhooks").await;
    assert_eq!(code, 200, "{list}");
    list["webhooks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["id"] == id)
        .unwrap_or_else(|| panic!("webhook {id} not listed: {list}"))
        .clone()
}
