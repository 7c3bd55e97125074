//! Bambu control commands waiting for the printer's answer. A printer answers a `print`
//! command on its report topic with the command's fields echoed, its `sequence_id`, and
//! `result` `"success"` or `"fail"` (compared case-insensitively) with a `reason`
//! (protocols.md §2.2). Answers are matched by command name and sequence id; other
//! clients' commands (the slicer, a phone app) carry their own ids and are left alone.

use rumqttc::{AsyncClient, QoS};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::printers::control::{
    COMMAND_QUEUE, ControlCommand, ControlError, ControlKind, cap_reason,
};

/// At most this many commands wait at once: as many as the actor queues. An older one
/// whose API caller gave up is dropped first.
const MAX_PENDING: usize = COMMAND_QUEUE;

#[derive(Default)]
pub struct Pending {
    next: u64,
    waiting: Vec<(String, &'static str, ControlCommand)>,
}

#[derive(Deserialize)]
struct Answer {
    print: Option<AnswerPrint>,
}

#[derive(Deserialize)]
struct AnswerPrint {
    command: Option<String>,
    sequence_id: Option<Value>,
    result: Option<String>,
    reason: Option<String>,
}

impl Pending {
    /// Sends a control command as the `print` command the printer takes (protocols.md
    /// §2.2), with our own `sequence_id`; its answer is matched in `acknowledged`. A
    /// command the API stopped waiting for is dropped, never sent late.
    pub fn send(&mut self, client: &AsyncClient, topic: &str, cmd: ControlCommand) {
        if cmd.abandoned() {
            tracing::info!(command_id = %cmd.id, "dropping a command the API stopped waiting for");
            return;
        }
        let name = match cmd.kind {
            ControlKind::Pause => "pause",
            ControlKind::Resume => "resume",
            ControlKind::Cancel => "stop",
        };
        let seq = self.next_sequence();
        let payload = json!({"print": {"sequence_id": seq, "command": name, "param": ""}});
        match client.try_publish(
            topic,
            QoS::AtMostOnce,
            false,
            payload.to_string().into_bytes(),
        ) {
            Ok(()) => self.add(seq, name, cmd),
            Err(e) => {
                tracing::debug!(error = %e, "command not queued (event loop busy)");
                cmd.answer(Err(ControlError::Unavailable(
                    "the connection to the printer is busy; retry in a moment".into(),
                )));
            }
        }
    }

    /// A sequence id for the next command (a string holding a number, as printers use).
    pub fn next_sequence(&mut self) -> String {
        self.next += 1;
        // High enough not to meet the small ids slicers and apps count from.
        (20_000_000 + self.next).to_string()
    }

    pub fn add(&mut self, seq: String, name: &'static str, cmd: ControlCommand) {
        self.waiting.retain(|(_, _, c)| !c.reply.is_closed());
        if self.waiting.len() >= MAX_PENDING {
            let (_, _, oldest) = self.waiting.remove(0);
            oldest.answer(Err(ControlError::NoAnswer(
                "the printer did not answer before newer commands were sent".into(),
            )));
        }
        self.waiting.push((seq, name, cmd));
    }

    /// Looks at a non-status message: if it answers a waiting command, answers the API.
    pub fn acknowledged(&mut self, payload: &[u8]) {
        if self.waiting.is_empty() {
            return;
        }
        let Ok(Answer { print: Some(p) }) = serde_json::from_slice::<Answer>(payload) else {
            return;
        };
        let seq = match &p.sequence_id {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => return,
        };
        let Some(i) = self
            .waiting
            .iter()
            .position(|(s, name, _)| *s == seq && p.command.as_deref() == Some(*name))
        else {
            return;
        };
        let (_, _, cmd) = self.waiting.remove(i);
        let ok = p
            .result
            .as_deref()
            .is_some_and(|r| r.eq_ignore_ascii_case("success"));
        if ok {
            cmd.answer(Ok(()));
        } else {
            let verb = match cmd.kind {
                ControlKind::Pause => "pause",
                ControlKind::Resume => "resume",
                ControlKind::Cancel => "cancel",
            };
            let reason = p
                .reason
                .as_deref()
                .map(cap_reason)
                .filter(|r| !r.is_empty())
                .unwrap_or_else(|| "no reason given".into());
            cmd.answer(Err(ControlError::Refused(format!(
                "the printer refused to {verb}: {reason} (printers on 2025 firmware refuse LAN commands unless Developer Mode is on)"
            ))));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::oneshot;

    fn cmd(kind: ControlKind) -> (ControlCommand, oneshot::Receiver<Result<(), ControlError>>) {
        let (reply, rx) = oneshot::channel();
        (
            ControlCommand {
                id: "cmd_1".into(),
                kind,
                reply,
            },
            rx,
        )
    }

    #[test]
    fn answers_match_by_name_and_sequence_id() {
        let mut p = Pending::default();
        let (c, mut rx) = cmd(ControlKind::Pause);
        let seq = p.next_sequence();
        p.add(seq.clone(), "pause", c);
        // Another client's answer, and ours for another command: not ours.
        p.acknowledged(br#"{"print":{"command":"pause","sequence_id":"7","result":"success"}}"#);
        p.acknowledged(
            format!(r#"{{"print":{{"command":"stop","sequence_id":"{seq}","result":"success"}}}}"#)
                .as_bytes(),
        );
        assert!(rx.try_recv().is_err(), "still waiting");
        p.acknowledged(
            format!(
                r#"{{"print":{{"command":"pause","sequence_id":"{seq}","result":"SUCCESS"}}}}"#
            )
            .as_bytes(),
        );
        assert_eq!(rx.try_recv().unwrap(), Ok(()));
    }

    #[test]
    fn a_command_the_api_gave_up_on_is_never_sent() {
        let (client, _eventloop) =
            AsyncClient::new(rumqttc::MqttOptions::new("t", "127.0.0.1", 1), 4);
        let mut p = Pending::default();
        let (c, rx) = cmd(ControlKind::Cancel);
        drop(rx); // the API answered 504 and stopped waiting
        p.send(&client, "device/S/request", c);
        assert!(p.waiting.is_empty(), "not sent, not waiting");
        let (c, _rx) = cmd(ControlKind::Pause);
        p.send(&client, "device/S/request", c);
        assert_eq!(p.waiting.len(), 1, "a live command is sent and waits");
        assert_eq!(p.waiting[0].1, "pause");
    }

    #[test]
    fn a_refusal_carries_the_capped_reason() {
        let mut p = Pending::default();
        let (c, mut rx) = cmd(ControlKind::Cancel);
        let seq = p.next_sequence();
        p.add(seq.clone(), "stop", c);
        let long = "x".repeat(5000);
        p.acknowledged(
            format!(r#"{{"print":{{"command":"stop","sequence_id":{seq},"result":"fail","reason":"{long}\u0007"}}}}"#)
                .as_bytes(),
        );
        let Err(ControlError::Refused(m)) = rx.try_recv().unwrap() else {
            panic!("refused expected")
        };
        assert!(m.starts_with("the printer refused to cancel: xxx"));
        assert!(m.len() < 400 && !m.contains('\u{7}'), "{m}");
    }
}
