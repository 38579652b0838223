//! Accept loop: connection limit, HTTP/1.1 and h2c from clients, upgrades,
//! and a graceful drain on shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::proxy::Proxy;

/// Serves the proxy on `listener` until `shutdown` resolves, then stops
/// accepting and lets in-flight requests, streams and tunnels finish within
/// `timeouts.drain`.
pub async fn serve(listener: TcpListener, proxy: Arc<Proxy>, shutdown: impl Future<Output = ()>) {
    let limit = Arc::new(Semaphore::new(proxy.config().startup.max_connections.get()));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);

    loop {
        // Waiting for a permit before accepting leaves excess connections in
        // the kernel backlog instead of accepting and dropping them.
        let permit = tokio::select! {
            p = limit.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(pair) => pair,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "set_nodelay failed");
        }
        let builder = connection_builder(&proxy.config());
        let handler = proxy.clone();
        let service = service_fn(move |req| {
            let handler = handler.clone();
            async move { Ok::<_, Infallible>(handler.handle(req, peer).await) }
        });
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
        let watched = graceful.watch(conn.into_owned());
        tokio::spawn(async move {
            if let Err(e) = watched.await {
                tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    drain(&proxy, graceful).await;
}

/// Built per connection so a reloaded config applies to new connections.
fn connection_builder(config: &crate::config::Config) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.timeouts.header_read)
        .max_buf_size(config.limits.max_header_bytes)
        .max_headers(config.limits.max_headers.get());
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(config.limits.max_header_bytes).unwrap_or(u32::MAX));
    builder
}

async fn drain(proxy: &Proxy, graceful: GracefulShutdown) {
    let drain = proxy.config().timeouts.drain;
    tracing::info!(drain_secs = drain.as_secs(), "draining in-flight requests");
    let deadline = tokio::time::Instant::now() + drain;
    let tunnels = proxy.tunnels();
    tunnels.close();
    let all = async {
        graceful.shutdown().await;
        tunnels.wait().await;
    };
    if tokio::time::timeout_at(deadline, all).await.is_err() {
        tracing::warn!("drain time over; closing the remaining connections");
    } else {
        tracing::info!("drained");
    }
}
