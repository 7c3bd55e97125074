//! The embedded MQTT 3.1.1 broker all simulated Bambu printers share (one listening port).
//!
//! Built on rumqttc's v4 packet codec (`Packet::read`/`write`) and tokio-rustls; it does only
//! what a printer's own broker does for a monitoring client (protocols.md §2.1, §2.14):
//!
//! - TLS with the simulator's certificates (`tls.rs`; the leaf is picked by SNI).
//! - Login `bblp` + the printer's access code. A wrong user name is refused with CONNACK 4
//!   (bad user name or password); the right user with a wrong or missing code with CONNACK 5
//!   (not authorised), which is what a printer answers to a wrong access code. With SNI = a
//!   serial, only that printer's code is accepted; without SNI the code picks the printer.
//! - A session belongs to the printer it logged in as: subscribing to
//!   `device/{serial}/report` (or a matching wildcard such as `device/+/report`) delivers that
//!   printer's reports; any other filter is granted and receives nothing (a wrong-case serial
//!   "works" and stays silent, §7.1 13). Publishing to `device/{serial}/request` reaches it.
//! - QoS 0 delivery; QoS 1/2 publishes from the client are acknowledged; keep-alive enforced.
//!
//! One task per connection reads packets and writes whatever the printer queued for it.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use rumqttc::{
    ConnAck, ConnectReturnCode, Login, Packet, PubAck, PubComp, PubRec, QoS, SubAck,
    SubscribeReasonCode, UnsubAck,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, timeout};
use tokio_rustls::TlsAcceptor;

use super::bambu_printer::{BambuPrinter, Outbound, SessionHandle};

/// The user name every Bambu printer expects.
pub const BAMBU_USER: &str = "bblp";
/// Largest packet a client may send (requests are a few hundred bytes).
const MAX_INCOMING_PACKET: usize = 256 * 1024;
/// Reports queued per session before QoS 0 reports are dropped for that client.
const SESSION_QUEUE: usize = 512;
/// A TLS handshake, and then the CONNECT packet, must each arrive within this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed to write one batch to a client before the connection is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the broker knows about the printers behind it.
pub struct Broker {
    by_serial: HashMap<String, Arc<BambuPrinter>>,
    by_code: HashMap<String, Arc<BambuPrinter>>,
    acceptor: TlsAcceptor,
    next_session: AtomicU64,
}

impl Broker {
    pub fn new(printers: &[Arc<BambuPrinter>], tls: rustls::ServerConfig) -> Self {
        let by_serial = printers
            .iter()
            .map(|p| (p.serial.clone(), Arc::clone(p)))
            .collect();
        let by_code = printers
            .iter()
            .map(|p| (p.access_code.clone(), Arc::clone(p)))
            .collect();
        Self {
            by_serial,
            by_code,
            acceptor: TlsAcceptor::from(Arc::new(tls)),
            next_session: AtomicU64::new(1),
        }
    }

    /// Accepts connections until `shutdown` turns true.
    pub async fn run(self: Arc<Self>, listener: TcpListener, mut shutdown: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((tcp, _peer)) => {
                        let broker = Arc::clone(&self);
                        let shutdown = shutdown.clone();
                        tokio::spawn(async move {
                            if let Err(e) = broker.session(tcp, shutdown).await {
                                tracing::debug!(error = %e, "simulated broker session ended");
                            }
                        });
                    }
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "simulated broker: accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                _ = shutdown.changed() => break,
            }
        }
    }

    /// Who may log in: the printer, or the CONNACK refusal code.
    fn authenticate(
        &self,
        sni: Option<&str>,
        login: Option<&Login>,
    ) -> Result<Arc<BambuPrinter>, ConnectReturnCode> {
        let Some(login) = login else {
            return Err(ConnectReturnCode::NotAuthorized);
        };
        if login.username != BAMBU_USER {
            return Err(ConnectReturnCode::BadUserNamePassword);
        }
        let printer = match sni.and_then(|name| self.by_serial.get(&name.to_ascii_lowercase())) {
            Some(p) if p.access_code == login.password => Some(p),
            Some(_) => None,
            None => self.by_code.get(&login.password),
        };
        printer.cloned().ok_or(ConnectReturnCode::NotAuthorized)
    }

    async fn session(
        &self,
        tcp: TcpStream,
        mut shutdown: watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        // Reports are small writes that must leave at once (design.md §9: Nagle).
        tcp.set_nodelay(true)?;
        let mut tls = timeout(HANDSHAKE_TIMEOUT, self.acceptor.accept(tcp)).await??;
        let sni = tls.get_ref().1.server_name().map(str::to_owned);
        let mut buf = BytesMut::with_capacity(4096);
        let first = timeout(HANDSHAKE_TIMEOUT, read_packet(&mut tls, &mut buf)).await??;
        let Some(Packet::Connect(connect)) = first else {
            anyhow::bail!("the first packet was not CONNECT");
        };
        let printer = match self.authenticate(sni.as_deref(), connect.login.as_ref()) {
            Ok(p) => p,
            Err(code) => {
                tracing::debug!(?code, "simulated broker refused a login");
                write_packets(&mut tls, &[Packet::ConnAck(ConnAck::new(code, false))]).await?;
                let _ = timeout(Duration::from_secs(1), tls.shutdown()).await;
                return Ok(());
            }
        };
        let id = self.next_session.fetch_add(1, Ordering::Relaxed);
        let (tx, mut rx) = mpsc::channel(SESSION_QUEUE);
        if !printer.register(SessionHandle {
            id,
            tx,
            subscribed: false,
        }) {
            // Rebooting: the printer is not there to answer.
            return Ok(());
        }
        let _registered = Registered {
            printer: &printer,
            id,
        };
        write_packets(
            &mut tls,
            &[Packet::ConnAck(ConnAck::new(
                ConnectReturnCode::Success,
                false,
            ))],
        )
        .await?;

        let keep_alive = (connect.keep_alive > 0)
            .then(|| Duration::from_millis(u64::from(connect.keep_alive) * 1500));
        let mut last_heard = Instant::now();
        let mut out = BytesMut::new();
        'session: loop {
            // Everything complete in the buffer first; then wait for more.
            let mut replies = Vec::new();
            loop {
                match Packet::read(&mut buf, MAX_INCOMING_PACKET) {
                    Ok(packet) => {
                        if !self.handle(&printer, id, packet, &mut replies) {
                            write_packets(&mut tls, &replies).await?;
                            break 'session;
                        }
                    }
                    Err(rumqttc::Error::InsufficientBytes(_)) => break,
                    Err(e) => anyhow::bail!("malformed packet from client: {e}"),
                }
            }
            if !replies.is_empty() {
                write_packets(&mut tls, &replies).await?;
            }
            let deadline = keep_alive.map(|k| last_heard + k);
            tokio::select! {
                read = tls.read_buf(&mut buf) => {
                    if read? == 0 {
                        break;
                    }
                    last_heard = Instant::now();
                }
                msg = rx.recv() => {
                    out.clear();
                    let mut next = msg;
                    // Batch whatever is queued into one TLS write.
                    loop {
                        match next {
                            Some(Outbound::Packet(p)) => out.extend_from_slice(&p),
                            Some(Outbound::Close) | None => {
                                write_all(&mut tls, &out).await?;
                                break 'session;
                            }
                        }
                        if out.len() > 64 * 1024 {
                            break;
                        }
                        match rx.try_recv() {
                            Ok(m) => next = Some(m),
                            Err(_) => break,
                        }
                    }
                    write_all(&mut tls, &out).await?;
                }
                _ = sleep_until_opt(deadline) => {
                    tracing::debug!(session = id, "keep-alive expired");
                    break;
                }
                _ = shutdown.changed() => break,
            }
        }
        let _ = timeout(Duration::from_secs(1), tls.shutdown()).await;
        Ok(())
    }

    /// One packet from the client; false ends the session.
    fn handle(
        &self,
        printer: &BambuPrinter,
        id: u64,
        packet: Packet,
        replies: &mut Vec<Packet>,
    ) -> bool {
        match packet {
            Packet::Subscribe(sub) => {
                let mut codes = Vec::with_capacity(sub.filters.len());
                for f in &sub.filters {
                    if rumqttc::valid_filter(&f.path) {
                        if rumqttc::matches(printer.report_topic(), &f.path) {
                            printer.set_subscribed(id, true);
                        }
                        codes.push(SubscribeReasonCode::Success(QoS::AtMostOnce));
                    } else {
                        codes.push(SubscribeReasonCode::Failure);
                    }
                }
                replies.push(Packet::SubAck(SubAck::new(sub.pkid, codes)));
            }
            Packet::Unsubscribe(unsub) => {
                if unsub
                    .topics
                    .iter()
                    .any(|f| rumqttc::matches(printer.report_topic(), f))
                {
                    printer.set_subscribed(id, false);
                }
                replies.push(Packet::UnsubAck(UnsubAck::new(unsub.pkid)));
            }
            Packet::Publish(publish) => {
                match publish.qos {
                    QoS::AtMostOnce => {}
                    QoS::AtLeastOnce => replies.push(Packet::PubAck(PubAck::new(publish.pkid))),
                    QoS::ExactlyOnce => replies.push(Packet::PubRec(PubRec::new(publish.pkid))),
                }
                if publish.topic == printer.request_topic() {
                    printer.request(&publish.payload);
                }
            }
            Packet::PubRel(rel) => replies.push(Packet::PubComp(PubComp::new(rel.pkid))),
            Packet::PingReq => replies.push(Packet::PingResp),
            Packet::Disconnect | Packet::Connect(_) => return false,
            _ => {}
        }
        true
    }
}

/// Takes the session off its printer when the connection ends, however it ends.
struct Registered<'a> {
    printer: &'a BambuPrinter,
    id: u64,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.printer.unregister(self.id);
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

async fn read_packet<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
) -> anyhow::Result<Option<Packet>> {
    loop {
        match Packet::read(buf, MAX_INCOMING_PACKET) {
            Ok(p) => return Ok(Some(p)),
            Err(rumqttc::Error::InsufficientBytes(_)) => {}
            Err(e) => anyhow::bail!("malformed packet from client: {e}"),
        }
        if stream.read_buf(buf).await? == 0 {
            return Ok(None);
        }
    }
}

async fn write_packets<S: AsyncWrite + Unpin>(
    stream: &mut S,
    packets: &[Packet],
) -> anyhow::Result<()> {
    let mut out = BytesMut::new();
    for p in packets {
        p.write(&mut out, usize::MAX)?;
    }
    write_all(stream, &out).await
}

async fn write_all<S: AsyncWrite + Unpin>(stream: &mut S, bytes: &[u8]) -> anyhow::Result<()> {
    if bytes.is_empty() {
        return Ok(());
    }
    timeout(WRITE_TIMEOUT, async {
        stream.write_all(bytes).await?;
        stream.flush().await
    })
    .await??;
    Ok(())
}
