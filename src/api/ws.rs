//! `/ws`: the event stream (design.md §4).
//!
//! Each connection gets an outbox from the Broadcaster and two halves: a writer task that
//! drains the outbox into the socket, and a reader (this task) that answers `ping` and
//! applies `subscribe`. The writer never holds a lock while it sends, and the Broadcaster
//! never waits on it, so one slow client cannot slow anyone else; when the outbox
//! overflows the writer is woken even in the middle of a send and the client is closed
//! with a reason.
//!
//! What a client sends is bounded where it enters: messages (and frames) over
//! `MAX_CLIENT_MESSAGE` close the connection with 1009 and a reason, and an error reply
//! quotes at most `MAX_ECHO_CHARS` of what the client sent (a 60 KB bad message used to
//! come back as a 210 KB error, and the replies were bounded only by count: ~3.4 GB per
//! connection). Replies are bounded by bytes in the client's outbox too.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::json;
use warp::filters::ws::{Message, WebSocket, Ws};
use warp::{Filter, Rejection, Reply};

use super::{ACTOR_TIMEOUT, AppState, auth, with_state};
use crate::broadcast::CloseReason;
use crate::broadcast::{Client, Connect, Disconnect, EventKind, Filter as EventFilter};
use crate::domain::PrinterId;
use crate::time;

/// A batch is flushed to the socket every this many bytes. The WebSocket's write buffer
/// keeps the size of its largest write: a progress burst (~200 KB per client) left every
/// client holding that much for good.
const WRITE_CHUNK: usize = 32 * 1024;

/// Largest message (and frame) a client may send. Client messages are small commands; a
/// `subscribe` naming a thousand printers is ~40 KB.
pub const MAX_CLIENT_MESSAGE: usize = 64 * 1024;
/// Most characters of the client's own input an error reply quotes (a name, a serde
/// message): enough to recognise it, never an echo of a big message.
pub const MAX_ECHO_CHARS: usize = 120;
/// How long the writer tries to deliver a close frame before dropping the socket.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// Least time between two writes to one client while events keep coming: bounds the
/// writes (and wake-ups) per client to a few hundred a second whatever the farm's size,
/// and adds at most this much to an event's delivery.
const BATCH_GATHER: Duration = Duration::from_millis(5);
/// Close codes: 1001 going away (shutdown), 1013 try again later (too slow), 1008
/// policy (bad key).
pub const CLOSE_GOING_AWAY: u16 = 1001;
const CLOSE_TRY_AGAIN: u16 = 1013;
const CLOSE_TOO_BIG: u16 = 1009;

pub fn route(st: AppState) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    warp::path!("ws")
        .and(warp::get())
        .and(upgrade_required())
        .and(warp::header::optional::<String>("sec-websocket-protocol"))
        .and(warp::ws())
        .and(with_state(st))
        .and_then(
            // The key was checked by the access gate (auth/mod.rs) before this route.
            |protocols: Option<String>, ws: Ws, st: AppState| async move {
                let client = st
                    .broadcaster
                    .send(Connect)
                    .timeout(ACTOR_TIMEOUT)
                    .await
                    .map_err(super::reject_err)?;
                let upgrade = ws
                    .max_message_size(MAX_CLIENT_MESSAGE)
                    .max_frame_size(MAX_CLIENT_MESSAGE)
                    .on_upgrade(move |socket| session(socket, client, st));
                Ok::<_, Rejection>(auth::ws_protocol_reply(upgrade, protocols.as_deref()))
            },
        )
}

/// A plain `GET /ws` (a browser tab, curl, an API scanner) gets a 400 that says what
/// the route is, instead of warp's unnamed rejection.
fn upgrade_required() -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::header::optional::<String>("upgrade")
        .and_then(|u: Option<String>| async move {
            if u.is_some_and(|u| u.eq_ignore_ascii_case("websocket")) {
                Ok(())
            } else {
                Err(super::ApiError::bad_request(
                    "websocket_required",
                    "/ws is a WebSocket: connect with a WebSocket client (Upgrade: websocket)",
                )
                .reject())
            }
        })
        .untuple_one()
}

async fn session(socket: WebSocket, client: Arc<Client>, st: AppState) {
    let (tx, mut rx) = socket.split();
    let mut writer = tokio::spawn(write_loop(tx, client.clone()));
    // The session ends when the client goes away, or when the writer is done (a client
    // closed for falling behind, or shutdown): then both halves are dropped, so the TCP
    // connection closes even if the client never reads or writes again.
    let writer_done = loop {
        tokio::select! {
            msg = rx.next() => {
                let msg = match msg {
                    Some(Ok(msg)) => msg,
                    Some(Err(e)) if is_too_big(&e) => {
                        // Said once, with a reason; the writer sends it and closes.
                        client.close(CloseReason::TooBig);
                        let _ = (&mut writer).await;
                        break true;
                    }
                    _ => break false,
                };
                if msg.is_close() {
                    break false;
                }
                if let Ok(text) = msg.to_str() {
                    handle_client_message(&client, text);
                }
            }
            _ = &mut writer => break true,
        }
    };
    client.close(CloseReason::ClientGone);
    st.broadcaster.do_send(Disconnect(client.id));
    if !writer_done {
        let _ = writer.await;
    }
}

/// Whether a read failed because the client's message or frame was over the limit.
fn is_too_big(e: &warp::Error) -> bool {
    use tokio_tungstenite::tungstenite::Error as WsError;
    std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<WsError>())
        .is_some_and(|e| matches!(e, WsError::Capacity(_)))
}

/// At most `MAX_ECHO_CHARS` characters of something the client sent, marked when cut.
fn echo(s: &str) -> String {
    match s.char_indices().nth(MAX_ECHO_CHARS) {
        Some((at, _)) => format!("{}… (cut)", &s[..at]),
        None => s.to_owned(),
    }
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum ClientMessage {
    Ping,
    Subscribe {
        #[serde(default)]
        events: Option<Vec<String>>,
        #[serde(default)]
        printer_ids: Option<Vec<String>>,
    },
}

fn reply(client: &Client, v: serde_json::Value) {
    // Dropped when the client does not read its replies (bounded in the outbox).
    let _ = client.reply(Arc::from(v.to_string()));
}

fn error_reply(client: &Client, code: &str, message: String) {
    reply(
        client,
        json!({"type": "error", "data": {"code": code, "message": message}, "timestamp": time::format(time::now())}),
    );
}

fn handle_client_message(client: &Client, text: &str) {
    let msg = match serde_json::from_str::<ClientMessage>(text) {
        Ok(m) => m,
        Err(e) => {
            return error_reply(
                client,
                "invalid_message",
                format!(
                    "could not read the message ({}); send {{\"type\":\"ping\"}} or {{\"type\":\"subscribe\",\"events\":[..],\"printer_ids\":[..]}}",
                    echo(&e.to_string())
                ),
            );
        }
    };
    match msg {
        ClientMessage::Ping => reply(
            client,
            json!({"type": "pong", "timestamp": time::format(time::now())}),
        ),
        ClientMessage::Subscribe {
            events,
            printer_ids,
        } => {
            let mut filter = EventFilter::default();
            for name in events.iter().flatten() {
                match EventKind::parse(name) {
                    Some(k) => filter.events |= k.bit(),
                    None => {
                        let known: Vec<_> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
                        return error_reply(
                            client,
                            "invalid_subscription",
                            format!(
                                "unknown event {:?}; known events: {}",
                                echo(name),
                                known.join(", ")
                            ),
                        );
                    }
                }
            }
            let mut ids = HashSet::new();
            for id in printer_ids.iter().flatten() {
                match PrinterId::new(id.clone()) {
                    Ok(p) => {
                        ids.insert(p);
                    }
                    Err(e) => return error_reply(client, "invalid_subscription", echo(&e)),
                }
            }
            filter.printer_ids = ids;
            client.set_filter(filter);
            reply(
                client,
                json!({"type": "subscribed", "data": {"events": events.unwrap_or_default(), "printer_ids": printer_ids.unwrap_or_default()}, "timestamp": time::format(time::now())}),
            );
        }
    }
}

async fn write_loop<S>(mut tx: S, client: Arc<Client>)
where
    S: futures_util::Sink<Message> + Unpin,
{
    let reason = 'outer: loop {
        let batch = client.take();
        if batch.messages.is_empty() {
            if let Some(reason) = batch.close {
                break Some(reason);
            }
            client.ready.notified().await;
            continue;
        }
        // The whole batch is queued and then flushed once: one write for many messages,
        // where a flush per message cost a syscall per message per client (at 2,000
        // printers and 100 clients, a quarter of the daemon's CPU).
        let closing = batch.close.is_some();
        let write_then_gather = async {
            let mut unflushed = 0;
            for m in &batch.messages {
                tx.feed(Message::text(m.as_ref())).await?;
                unflushed += m.len();
                if unflushed >= WRITE_CHUNK {
                    tx.flush().await?;
                    unflushed = 0;
                }
            }
            tx.flush().await?;
            // Let the next batch gather for a moment. A lone event after a quiet spell
            // still goes out at once; on a busy farm a client gets a write every few ms
            // instead of one per event (2,000 statuses a second = 2,000 wake-ups and
            // syscalls a second per client).
            if !closing {
                tokio::time::sleep(BATCH_GATHER).await;
            }
            Ok::<(), S::Error>(())
        };
        tokio::select! {
            biased;
            _ = client.abort.notified() => break 'outer Some(CloseReason::TooSlow),
            sent = write_then_gather => if sent.is_err() { break 'outer None },
        }
        if let Some(reason) = batch.close {
            break Some(reason);
        }
    };
    if let Some(reason) = reason {
        if reason == CloseReason::TooSlow {
            tracing::info!(
                client = client.id,
                "closing a WebSocket client that fell behind"
            );
        }
        let _ = tokio::time::timeout(
            CLOSE_TIMEOUT,
            tx.send(Message::close_with(close_code(reason), reason.text())),
        )
        .await;
    }
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, tx.close()).await;
}

/// The WebSocket close code for why a client is closed.
fn close_code(reason: CloseReason) -> u16 {
    match reason {
        CloseReason::TooSlow => CLOSE_TRY_AGAIN,
        CloseReason::TooBig => CLOSE_TOO_BIG,
        CloseReason::Shutdown | CloseReason::ClientGone => CLOSE_GOING_AWAY,
    }
}
