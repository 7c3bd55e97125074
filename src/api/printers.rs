//! `/api/v1/printers`: every printer with its live status (never its secrets), and the
//! printers managed at runtime: add, change, delete, re-pin.

use serde::Serialize;
use warp::http::StatusCode;
use warp::{Filter, Rejection, Reply};

use super::{AppState, body, reject_err, with_state};
use crate::broadcast::view::{self, PrinterView};
use crate::config::{PrinterConfig, ValidPrinter, duplicate_message};
use crate::domain::PrinterId;
use crate::printers::manager::{StartPrinter, StopPrinter};
use crate::registry::Entry;
use crate::setup::{RemovePrinter, ResetPin, SavePrinter};
use crate::store::StoreError;

pub fn routes(st: AppState) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    let list = warp::path!("api" / "v1" / "printers")
        .and(warp::get())
        .and(with_state(st.clone()))
        .map(list);
    let get = warp::path!("api" / "v1" / "printers" / String)
        .and(warp::get())
        .and(with_state(st.clone()))
        .and_then(get);
    let create = warp::path!("api" / "v1" / "printers")
        .and(warp::post())
        .and(with_state(st.clone()))
        .and(body::json::<PrinterConfig>())
        .and_then(create);
    let update = warp::path!("api" / "v1" / "printers" / String)
        .and(warp::put())
        .and(with_state(st.clone()))
        .and(body::json::<serde_json::Map<String, serde_json::Value>>())
        .and_then(update);
    let delete = warp::path!("api" / "v1" / "printers" / String)
        .and(warp::delete())
        .and(with_state(st.clone()))
        .and_then(delete);
    let repin = warp::path!("api" / "v1" / "printers" / String / "certificate" / "reset")
        .and(warp::post())
        .and(with_state(st.clone()))
        .and_then(repin);
    let control = warp::path!("api" / "v1" / "printers" / String / String)
        .and(warp::post())
        .and(with_state(st))
        .and_then(super::printer_control::control);
    list.or(get)
        .or(create)
        .or(update)
        .or(delete)
        .or(repin)
        .or(control)
}

#[derive(Serialize)]
struct PrinterList<'a> {
    printers: Vec<PrinterView<'a>>,
    total_count: usize,
}

fn list(st: AppState) -> impl Reply {
    let entries = st.printers.all();
    let lives: Vec<_> = entries.iter().map(|e| st.live.get(&e.config.id)).collect();
    let printers: Vec<_> = entries
        .iter()
        .zip(&lives)
        .map(|(e, l)| view::view(e, l.as_ref()))
        .collect();
    warp::reply::json(&PrinterList {
        total_count: printers.len(),
        printers,
    })
}

pub(super) fn entry(st: &AppState, id: &str) -> Result<Entry, Rejection> {
    st.printers
        .get(id)
        .ok_or_else(|| reject_err(StoreError::PrinterNotFound(id.to_owned())))
}

fn one(st: &AppState, e: &Entry) -> warp::reply::Json {
    let live = st.live.get(&e.config.id);
    warp::reply::json(&view::view(e, live.as_ref()))
}

async fn get(id: String, st: AppState) -> Result<impl Reply, Rejection> {
    let e = entry(&st, &id)?;
    Ok(one(&st, &e))
}

/// Serialises the duplicate check with the save, so two requests adding the same
/// device under two ids cannot both pass the check.
static SAVE_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// 409 `duplicate_printer` when another printer is the same device (same Bambu serial or
/// same host and port): every print would be recorded twice. Names both ids, no value.
fn refuse_duplicate(st: &AppState, config: &PrinterConfig) -> Result<(), Rejection> {
    for e in st.printers.all() {
        if let Some(why) = config.same_device_as(&e.config) {
            return Err(super::ApiError::new(
                StatusCode::CONFLICT,
                "duplicate_printer",
                duplicate_message(&e.config.id, &config.id, why),
            )
            .reject());
        }
    }
    Ok(())
}

async fn save(st: &AppState, config: PrinterConfig, create: bool) -> Result<Entry, Rejection> {
    let _one_at_a_time = SAVE_LOCK.lock().await;
    refuse_duplicate(st, &config)?;
    let valid = ValidPrinter::parse(config.clone())
        .map_err(|m| super::ApiError::unprocessable(m).reject())?;
    super::write::call(
        &st.creator,
        SavePrinter {
            config: valid,
            create,
        },
    )
    .await
    .map_err(reject_err)?
    .map_err(reject_err)?;
    st.manager.do_send(StartPrinter {
        config: config.clone(),
        pin: None,
    });
    entry(st, config.id.as_str())
}

async fn create(st: AppState, config: PrinterConfig) -> Result<impl Reply, Rejection> {
    let e = save(&st, config, true).await?;
    Ok(warp::reply::with_status(one(&st, &e), StatusCode::CREATED))
}

/// PUT takes the whole entry; `id` may be left out, and if given must be the path's.
async fn update(
    id: String,
    st: AppState,
    mut body: serde_json::Map<String, serde_json::Value>,
) -> Result<impl Reply, Rejection> {
    let unprocessable = |m: String| super::ApiError::unprocessable(m).reject();
    match body.get("id") {
        None => {
            body.insert("id".into(), serde_json::Value::String(id.clone()));
        }
        Some(v) if v.as_str() == Some(id.as_str()) => {}
        Some(v) => {
            return Err(unprocessable(format!(
                "id {v} does not match the printer in the path ({id}); a printer's id cannot change"
            )));
        }
    }
    entry(&st, &id)?;
    let config: PrinterConfig = serde_json::from_value(serde_json::Value::Object(body))
        .map_err(|e| unprocessable(e.to_string()))?;
    let e = save(&st, config, false).await?;
    Ok(one(&st, &e))
}

async fn delete(id: String, st: AppState) -> Result<impl Reply, Rejection> {
    let pid = PrinterId::new(&id).map_err(|_| reject_err(StoreError::PrinterNotFound(id)))?;
    super::write::call(&st.creator, RemovePrinter(pid.clone()))
        .await
        .map_err(reject_err)?
        .map_err(reject_err)?;
    st.integrations.printer_removed(pid.as_str());
    st.manager.do_send(StopPrinter(pid));
    Ok(StatusCode::NO_CONTENT)
}

/// Forgets the pinned certificate and reconnects: the certificate the printer presents
/// next is pinned. For a printer whose certificate changed for a known reason (a
/// firmware update, a replaced board).
async fn repin(id: String, st: AppState) -> Result<impl Reply, Rejection> {
    let e = entry(&st, &id)?;
    super::write::call(&st.creator, ResetPin(e.config.id.clone()))
        .await
        .map_err(reject_err)?
        .map_err(reject_err)?;
    st.manager.do_send(StartPrinter {
        config: e.config.clone(),
        pin: None,
    });
    Ok(one(&st, &e))
}
