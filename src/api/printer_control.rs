//! `POST /api/v1/printers/{id}/pause|resume|cancel`: printer control (issue 22,
//! `printers/control.rs` for the path a command takes).
//!
//! The handler refuses at once (409) what the printer's last status says it cannot do,
//! then waits for the printer's answer: 202 with the command id when the printer took it
//! (the job follows through the normal status path), 502 with the printer's refusal, 504
//! when it did not answer within `ACK_TIMEOUT`, 503 when its connection is not running.
//! A cancel marks the open job before the command is sent (the mark is withdrawn if the
//! printer refuses it), so that it ends `cancelled` with
//! `end_reason: "cancelled from printfarmd"`.

use serde_json::json;
use tokio::sync::oneshot;
use warp::http::StatusCode;
use warp::{Rejection, Reply};

use super::printers::entry;
use super::{ApiError, AppState};
use crate::jobs::CancelledFromApi;
use crate::printers::control::{ACK_TIMEOUT, ControlCommand, ControlError, ControlKind};
use crate::printers::manager::SendControl;
use crate::printers::{ConnectionState, PrinterState};

pub async fn control(id: String, action: String, st: AppState) -> Result<impl Reply, Rejection> {
    let Some(kind) = ControlKind::parse(&action) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!(
                "no such printer action {action:?}; POST /api/v1/printers/{{id}}/pause, /resume or /cancel"
            ),
        )
        .reject());
    };
    let e = entry(&st, &id)?;
    let printer_id = e.config.id.clone();
    let live = st.live.get(&printer_id);
    let (connection, state) = live
        .as_ref()
        .map_or((ConnectionState::Connecting, PrinterState::Unknown), |l| {
            (l.status.connection, l.status.state)
        });
    if connection != ConnectionState::Connected {
        return Err(conflict(format!(
            "printer {printer_id} is not connected ({}); a command can be sent once it is",
            json!(connection).as_str().unwrap_or("unknown")
        )));
    }
    let allowed = match kind {
        ControlKind::Pause => state == PrinterState::Printing,
        ControlKind::Resume => state == PrinterState::Paused,
        ControlKind::Cancel => matches!(
            state,
            PrinterState::Preparing | PrinterState::Printing | PrinterState::Paused
        ),
    };
    if !allowed {
        let needs = match kind {
            ControlKind::Pause => "printing",
            ControlKind::Resume => "paused",
            ControlKind::Cancel => "preparing, printing or paused",
        };
        return Err(conflict(format!(
            "printer {printer_id} is {}; {} needs it {needs}",
            json!(state).as_str().unwrap_or("unknown"),
            kind.as_str()
        )));
    }
    // A cancel marks the open job before the command leaves: the printer's "cancelled"
    // status can reach the JobCreator before this handler hears the acknowledgement, and
    // the mark must already be there (one mailbox, so the mark is ahead of that status).
    let job_id = live.and_then(|l| l.job_id);
    let mark = |withdrawn: bool| {
        if kind == ControlKind::Cancel
            && let Some(job_id) = &job_id
        {
            st.creator.do_send(CancelledFromApi {
                printer_id: printer_id.clone(),
                job_id: job_id.clone(),
                withdrawn,
            });
        }
    };
    mark(false);
    let command_id = format!("cmd_{:016x}", rand::random::<u64>());
    let (reply, answer) = oneshot::channel();
    st.manager.do_send(SendControl {
        printer_id: printer_id.clone(),
        command: ControlCommand {
            id: command_id.clone(),
            kind,
            reply,
        },
    });
    let result = match tokio::time::timeout(ACK_TIMEOUT, answer).await {
        Err(_) => Err(ControlError::NoAnswer(format!(
            "printer {printer_id} did not acknowledge {} within {} s; check the printer, then look at its state before trying again",
            kind.as_str(),
            ACK_TIMEOUT.as_secs()
        ))),
        Ok(Err(_)) => Err(ControlError::NoAnswer(format!(
            "the connection to printer {printer_id} ended before it answered; look at its state before trying again"
        ))),
        Ok(Ok(r)) => r,
    };
    // A cancel the printer refused (or never got) withdraws the mark; one it may have
    // taken without answering keeps it.
    if matches!(
        result,
        Err(ControlError::NotAllowed(_) | ControlError::Refused(_) | ControlError::Unavailable(_))
    ) {
        mark(true);
    }
    match result {
        Ok(()) => Ok(warp::reply::with_status(
            warp::reply::json(&json!({
                "status": "accepted",
                "command_id": command_id,
                "command": kind.as_str(),
                "printer_id": printer_id.as_str(),
                "job_id": job_id.as_ref().map(|j| j.as_str()),
            })),
            StatusCode::ACCEPTED,
        )),
        Err(ControlError::NotAllowed(m)) => Err(conflict(m)),
        Err(ControlError::Refused(m)) => {
            Err(ApiError::new(StatusCode::BAD_GATEWAY, "printer_refused", m).reject())
        }
        Err(ControlError::NoAnswer(m)) => {
            Err(ApiError::new(StatusCode::GATEWAY_TIMEOUT, "printer_timeout", m).reject())
        }
        Err(ControlError::Unavailable(m)) => Err(ApiError::unavailable(m).reject()),
    }
}

fn conflict(message: String) -> Rejection {
    ApiError::new(StatusCode::CONFLICT, "invalid_state", message).reject()
}
