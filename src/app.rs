//! Start-up wiring for `modelgate serve`: bind, serve, reload on SIGHUP,
//! drain on SIGTERM/SIGINT.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};

use crate::admin::{self, AdminState};
use crate::config::{process_env, Config};
use crate::proxy::Proxy;
use crate::reload::{self, Overrides};
use crate::server;

/// Runs the proxy and the admin listener until SIGTERM or SIGINT.
pub async fn run(config: Config, overrides: Overrides) -> anyhow::Result<()> {
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let admin_listener = TcpListener::bind(config.admin_listen)
        .await
        .with_context(|| format!("cannot listen on {} (admin)", config.admin_listen))?;
    tracing::info!(addr = %listener.local_addr()?, upstream = %config.upstream, "proxy listening");
    tracing::info!(addr = %admin_listener.local_addr()?, "admin listening");

    let live = Arc::new(ArcSwap::from_pointee(config));
    let proxy = Proxy::new(live.clone());

    let mut hup = signal(SignalKind::hangup()).context("cannot install the SIGHUP handler")?;
    let reload_live = live.clone();
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            match reload::reload(&reload_live, &overrides, &process_env) {
                Ok(c) => tracing::info!(source = ?c.source, "config reloaded"),
                Err(e) => {
                    tracing::error!(error = %e, "config reload failed; the running config stays in force")
                }
            }
        }
    });

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let admin_state = Arc::new(AdminState {
        config: live.clone(),
        started: Instant::now(),
    });
    let mut admin_stop = stop_rx.clone();
    let admin_task = tokio::spawn(admin::serve(admin_listener, admin_state, async move {
        let _ = admin_stop.wait_for(|s| *s).await;
    }));

    let shutdown = async move {
        let _ = shutdown_signal().await;
        tracing::info!("shutdown requested");
        let _ = stop_tx.send(true);
    };
    server::serve(listener, proxy, shutdown).await;
    admin_task.abort();
    Ok(())
}

async fn shutdown_signal() -> anyhow::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        r = tokio::signal::ctrl_c() => r?,
    }
    Ok(())
}
