//! Hostile neighbours of the API, from the attacker's side with raw sockets: WebSocket
//! messages that are too big or built to be echoed, TCP connections that never send a
//! request or go idle, and more connections than the daemon allows.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::harness::{Daemon, TEST_PRINTERS, WS_WAIT};

/// The daemon's header-read/idle timeout (`api::serve::HEADER_READ_TIMEOUT`) plus room
/// for a loaded machine: a connection still open after this was never going to close.
const CLOSED_WITHIN: Duration = Duration::from_secs(25);

/// A daemon with the test printers and extra environment.
fn daemon_with_env(env: &[(&str, &str)]) -> Daemon {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let config_path = dir.path().join("daemon.toml");
    let db = dir.path().join("printfarmd.db");
    std::fs::write(
        &config_path,
        format!("[server]\nbind = \"127.0.0.1:0\"\n[database]\npath = {db:?}\n{TEST_PRINTERS}"),
    )
    .unwrap();
    Daemon::spawn(dir, config_path, env)
}

fn addr(d: &Daemon) -> String {
    d.base.trim_start_matches("http://").to_owned()
}

#[tokio::test]
async fn websocket_error_replies_are_short_and_big_messages_are_closed_with_a_reason() {
    let d = Daemon::start("");
    let (mut ws, _) = tokio_tungstenite::connect_async(d.ws_url()).await.unwrap();
    let long = "A".repeat(60_000);
    // Built so that serde and our own messages would quote them.
    let attacks = [
        format!(r#"{{"type":"{long}"}}"#),
        format!(r#"{{"type":"subscribe","events":["{long}"]}}"#),
        format!(
            r#"{{"type":"subscribe","printer_ids":["{}!"]}}"#,
            &long[..60]
        ),
        format!(r#"{{"type":"subscribe","events":"{long}"}}"#),
        long.clone(),
    ];
    for a in &attacks {
        ws.send(Message::text(a.as_str())).await.unwrap();
        // The next error (the printers' statuses may come in between).
        let reply = loop {
            match tokio::time::timeout(WS_WAIT, ws.next()).await {
                Ok(Some(Ok(Message::Text(t)))) if t.as_str().starts_with(r#"{"type":"error""#) => {
                    break t.to_string();
                }
                Ok(Some(Ok(_))) => continue,
                other => panic!("no error reply to a bad message: {other:?}"),
            }
        };
        let v: serde_json::Value = serde_json::from_str(&reply).unwrap();
        assert_eq!(
            v["data"]["code"]
                .as_str()
                .map(|c| c.starts_with("invalid_")),
            Some(true),
            "{reply}"
        );
        assert!(
            reply.len() < 1024,
            "a {}-byte message got a {}-byte reply",
            a.len(),
            reply.len()
        );
        assert!(!reply.contains(&"A".repeat(200)), "{reply}");
    }
    // Over the limit: closed with 1009 and a reason, not just dropped.
    ws.send(Message::text("B".repeat(70_000))).await.unwrap();
    let close = loop {
        match tokio::time::timeout(WS_WAIT, ws.next()).await {
            Ok(Some(Ok(Message::Close(c)))) => break c,
            Ok(Some(Ok(_))) => continue,
            other => panic!("no close frame after a too-big message: {other:?}"),
        }
    };
    let close = close.expect("a close frame with a code");
    assert_eq!(close.code, CloseCode::Size);
    assert!(close.reason.contains("too big"), "{}", close.reason);
}

#[tokio::test]
async fn connections_that_never_send_a_request_or_go_idle_are_closed() {
    let d = Daemon::start("");
    let silent = TcpStream::connect(addr(&d)).await.unwrap();
    let mut half = TcpStream::connect(addr(&d)).await.unwrap();
    half.write_all(format!("GET /api/v1/settings HTTP/1.1\r\nHost: {}\r\n", addr(&d)).as_bytes())
        .await
        .unwrap();
    let mut idle = TcpStream::connect(addr(&d)).await.unwrap();
    let first = request(&mut idle, &addr(&d), "/api/v1/settings").await;
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    for (name, mut s) in [("silent", silent), ("half a head", half), ("idle", idle)] {
        let mut buf = [0u8; 1024];
        let end = tokio::time::timeout(CLOSED_WITHIN, async {
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => continue,
                }
            }
        })
        .await;
        assert!(end.is_ok(), "the {name} connection is still open");
    }
}

#[tokio::test]
async fn beyond_the_connection_cap_new_connections_wait_while_open_ones_work() {
    let d = daemon_with_env(&[("PRINTFARMD_SERVER__MAX_CONNECTIONS", "3")]);
    let mut open = Vec::new();
    for _ in 0..3 {
        let mut s = TcpStream::connect(addr(&d)).await.unwrap();
        assert!(
            request(&mut s, &addr(&d), "/api/v1/settings")
                .await
                .starts_with("HTTP/1.1 200")
        );
        open.push(s);
    }
    // The fourth gets no answer while three are open...
    let mut fourth = TcpStream::connect(addr(&d)).await.unwrap();
    fourth
        .write_all(
            format!(
                "GET /api/v1/settings HTTP/1.1\r\nHost: {}\r\n\r\n",
                addr(&d)
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let early = tokio::time::timeout(Duration::from_secs(2), fourth.read(&mut buf)).await;
    assert!(early.is_err(), "served beyond the cap: {early:?}");
    // ... the open ones keep working ...
    for s in &mut open {
        assert!(
            request(s, &addr(&d), "/api/v1/settings")
                .await
                .starts_with("HTTP/1.1 200")
        );
    }
    // ... and once one closes, the waiting one is served.
    drop(open.pop());
    let answer = read_response(&mut fourth).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let log = d.log();
    assert_eq!(
        log.matches("connection limit reached").count(),
        1,
        "one log line per minute at most:\n{log}"
    );
}

/// Sends a keep-alive GET and reads its response.
async fn request(s: &mut TcpStream, host: &str, path: &str) -> String {
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    read_response(s).await
}

/// One response with a `content-length` body: its head and body as text.
async fn read_response(s: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        loop {
            let text = String::from_utf8_lossy(&got).to_string();
            if let Some(head_end) = text.find("\r\n\r\n") {
                let len = text[..head_end]
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                if got.len() >= head_end + 4 + len {
                    return text;
                }
            }
            let n = s.read(&mut buf).await.unwrap();
            assert!(n > 0, "connection closed mid-response: {text}");
            got.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(WS_WAIT, read)
        .await
        .expect("a response")
}
