//! Wiring: builds the actors and the server from a configuration and runs them until the
//! shutdown signal.
//!
//! `run(config, listener, shutdown)` is the daemon's whole public face: the caller binds
//! the listener (so tests use port 0 and a port in use is a clear error, not a panic)
//! and decides what shutdown means (SIGINT/SIGTERM in `main`). It must run inside an
//! actix System on a multi-thread tokio runtime (`System::with_tokio_rt`): actors live on
//! the System thread, the JobCreator on an Arbiter (a thread) of its own, and warp on the
//! tokio workers.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use anyhow::Context as _;
use tokio::net::TcpListener;

use crate::api::{self, AppState};
use crate::broadcast::view::LiveStates;
use crate::broadcast::{Broadcaster, CloseAll, CloseReason, FlushAll};
use crate::config::Config;
use crate::health::Health;
use crate::jobs::JobCreator;
use crate::jobs::creator::Shutdown;
use crate::printers::manager::{PrinterManager, StartPrinter, StopAll};
use crate::setup::Setup;
use crate::store::{self, ReadPool};
use crate::watchdog;

/// How long in-flight HTTP requests get to finish after the shutdown signal.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Reason sent to WebSocket clients when the daemon stops.
pub use crate::broadcast::client::SHUTDOWN_REASON;

pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let db_path = config.database.path.clone();
    // Held until the process ends: a second daemon on this database is refused.
    let _lock = store::files::DbLock::acquire(&db_path).map_err(|e| {
        anyhow::anyhow!("{e}; stop that daemon first, or give this one its own database.path")
    })?;
    let conn = store::open_writer(&db_path)
        .with_context(|| format!("opening the database {}", db_path.display()))?;
    let files = store::files::FileIdentity::capture(&db_path)?;
    let health = Arc::new(Health::default());
    // Checked by /health, before every commit and by the checkpoint thread.
    health.watch_files(move || files.check());
    // None if the thread cannot start: the writer's own auto-checkpoint then does the work.
    let checkpointer = store::checkpoint::Checkpointer::start(
        &db_path,
        store::checkpoint::Pace::default(),
        Some(health.clone()),
    )
    .inspect_err(|e| tracing::warn!(error = %e, "WAL checkpoints stay on the writer"))
    .ok();
    // The settings, the printers and their pins, each read back through the parse the
    // API uses (`setup/`); its owner goes to the writer's thread with the connection.
    let (setup, pins) =
        Setup::load(&conn, &config).context("reading saved settings, printers and pins")?;
    let settings = setup.settings();
    tracing::info!(
        database = %db_path.display(),
        auto_create = settings.job_creation_auto_create,
        monitoring_interval = settings.monitoring_interval,
        printers = config.printers.len(),
        "starting"
    );
    let settings_rx = setup.subscribe();
    let printers = setup.printers().clone();
    let live = LiveStates::default();
    let broadcaster = Broadcaster::new();
    let status_listeners = broadcaster.status_listeners();
    let broadcaster = broadcaster.start();
    let integrations = crate::notify::Integrations::start(
        &config.webhooks,
        config.mqtt.as_ref(),
        &db_path,
        broadcaster.clone(),
        printers.clone(),
    )
    .await
    .context("starting webhooks and MQTT")?;

    // The JobCreator has a thread of its own (an Arbiter: rusqlite blocks, and nothing
    // else runs there), so printer actors and REST handlers reach its mailbox directly.
    // (It ran in a SyncArbiter, whose messages all passed through a forwarding actor on
    // the System thread, behind the Broadcaster: one more thread hop for every status.)
    let creator_thread = Arbiter::new();
    let creator = {
        let (broadcaster, live, health) = (broadcaster.clone(), live.clone(), health.clone());
        let nudge = checkpointer.as_ref().map(|c| c.nudge());
        JobCreator::start_in_arbiter(&creator_thread.handle(), move |ctx| {
            ctx.set_mailbox_capacity(crate::jobs::creator::MAILBOX_CAPACITY);
            JobCreator::with_setup(conn, broadcaster, setup, live, health)
                .nudging(nudge)
                .statuses_for(status_listeners)
        })
    };
    // (No progress ticker: the JobCreator sets a timer for the progress it has to write,
    // and none while nothing moved — `jobs/book/progress.rs`.)

    // One actor per printer; statuses go to the JobCreator.
    let tuning = crate::printers::driver::Tuning {
        status_probe: config.monitoring.status_probe(),
        ..Default::default()
    };
    let manager = PrinterManager::new(settings_rx.clone(), creator.clone().recipient())
        .with_tuning(tuning)
        .start();
    for e in printers.all() {
        let pin = pins.get(&e.config.id).cloned();
        manager.do_send(StartPrinter {
            config: e.config,
            pin,
        });
    }

    // Fail loudly: if an actor the daemon cannot run without stops, /health says so and
    // the process exits non-zero (watchdog.rs).
    let (watchdog, fatal) = watchdog::spawn(
        health.clone(),
        vec![
            ("job writer", watchdog::alive(&creator)),
            ("event broadcaster", watchdog::alive(&broadcaster)),
            ("printer manager", watchdog::alive(&manager)),
        ],
    );

    let addr = listener.local_addr()?;
    let reads = ReadPool::new(&config.database.path);
    let access = Arc::new(
        api::auth::Access::new(&config, addr, reads.clone())
            .context("setting up access control")?,
    );
    api::auth::startup_warnings(&access, addr, &config.database.path);

    let backups = crate::ops::backups::Backups::new(&config.backup, &db_path);
    crate::ops::start_background(&config, &backups, &creator);
    let state = AppState {
        creator: creator.clone(),
        manager: manager.clone(),
        live,
        broadcaster: broadcaster.clone(),
        reads,
        settings: settings_rx,
        printers,
        health,
        access,
        integrations: integrations.clone(),
        backups,
    };
    let (notify_live, notify_printers) = (state.live.clone(), state.printers.clone());
    // Accepted connections inherit TCP_NODELAY from the listener (Linux). Without it a
    // WebSocket write that follows another within a round trip waits for the client's
    // delayed ACK, up to 40 ms: the p99 of every event at any farm size.
    if let Err(e) = socket2::SockRef::from(&listener).set_tcp_nodelay(true) {
        tracing::warn!(error = %e, "cannot turn off Nagle's algorithm on the listener; events may arrive up to 40 ms late");
    }
    tracing::info!(
        "printfarmd {} listening on http://{addr}",
        env!("CARGO_PKG_VERSION")
    );

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let signal = async move {
        let fatal = tokio::select! {
            _ = shutdown => None,
            reason = fatal => reason.ok(),
        };
        tracing::info!("shutting down");
        let _ = stop_tx.send(());
        fatal
    };
    let signal = tokio::spawn(signal);
    let (drained_tx, drained_rx) = tokio::sync::oneshot::channel::<()>();
    // Our own accept loop (header/idle timeout, connection cap) around warp's filter.
    let server = api::serve::serve(
        listener,
        api::routes(state),
        config.server.max_connections,
        async move {
            let _ = stop_rx.await;
            let _ = drained_tx.send(());
        },
    );
    let server = tokio::spawn(server);
    // The database is open and the listener accepts: tell systemd (if it asked).
    crate::ops::notify::ready(creator.clone(), notify_live, notify_printers);
    // Once the signal came, close WebSocket clients (they are not part of warp's drain)
    // and give HTTP requests a bounded time to finish.
    if drained_rx.await.is_ok() {
        // From here the actors stop on purpose.
        watchdog.abort();
        crate::ops::notify::stopping();
        broadcaster.do_send(CloseAll(CloseReason::Shutdown));
        manager.do_send(StopAll);
        if tokio::time::timeout(DRAIN_TIMEOUT, server).await.is_err() {
            tracing::warn!("requests still open after {DRAIN_TIMEOUT:?}; stopping anyway");
        }
    }
    // The last writes: the open group and every job's progress, before the process ends.
    if creator.send(Shutdown).await.is_err() {
        tracing::warn!("the job writer had stopped; progress since its last write is lost");
    }
    creator_thread.stop();
    // The events of those writes reach the integrations' tap (still connected: CloseAll
    // spares it) before it drains: the Broadcaster handles its mailbox in order.
    let _ = broadcaster.send(FlushAll).await;
    integrations.shutdown().await;
    if let Ok(Some(reason)) = signal.await {
        tracing::error!("stopped: {reason}");
        anyhow::bail!("stopped: {reason}");
    }
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::terminate(),
        ) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the daemon");
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
