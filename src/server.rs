//! The one accept loop, generic over what serves the requests (the proxy,
//! the admin listener): a connection limit, HTTP/1.1 and h2c from clients,
//! upgrades, and a graceful drain on shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::proxy::body::Body;

/// What a listener serves. Each request is answered, never failed: errors
/// become responses inside the handler.
pub trait Handler: Send + Sync + 'static {
    fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        peer: SocketAddr,
    ) -> impl Future<Output = Response<Body>> + Send;

    /// The live config: connection settings and the drain time are read
    /// from it, so a reload applies to new connections.
    fn config(&self) -> Arc<Config>;

    /// Connections served at once; further ones wait in the kernel backlog.
    fn max_connections(&self) -> usize;

    /// The listener's name in logs (`ingress`, `egress`, `admin`).
    fn name(&self) -> &'static str;

    /// Upgraded connections that outlive their request, waited for on drain.
    fn tunnels(&self) -> Option<&TaskTracker> {
        None
    }
}

/// Serves `handler` on `listener` until `shutdown` resolves, then stops
/// accepting and lets in-flight requests, streams and tunnels finish within
/// `timeouts.drain`.
pub async fn serve<H: Handler>(
    listener: TcpListener,
    handler: Arc<H>,
    shutdown: impl Future<Output = ()>,
) {
    let limit = Arc::new(Semaphore::new(handler.max_connections()));
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
                    tracing::warn!(listener = handler.name(), error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "set_nodelay failed");
        }
        let builder = connection_builder(&handler.config());
        let served = handler.clone();
        let service = service_fn(move |req| {
            let served = served.clone();
            async move { Ok::<_, Infallible>(served.handle(req, peer).await) }
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
    drain(handler.as_ref(), graceful).await;
}

/// Built per connection so a reloaded config applies to new connections.
fn connection_builder(config: &Config) -> auto::Builder<TokioExecutor> {
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

async fn drain<H: Handler>(handler: &H, graceful: GracefulShutdown) {
    let drain = handler.config().timeouts.drain;
    let listener = handler.name();
    tracing::info!(
        listener,
        drain_secs = drain.as_secs(),
        "draining in-flight requests"
    );
    let deadline = tokio::time::Instant::now() + drain;
    let tunnels = handler.tunnels();
    if let Some(t) = tunnels {
        t.close();
    }
    let all = async {
        graceful.shutdown().await;
        if let Some(t) = tunnels {
            t.wait().await;
        }
    };
    if tokio::time::timeout_at(deadline, all).await.is_err() {
        tracing::warn!(
            listener,
            "drain time over; closing the remaining connections"
        );
    } else {
        tracing::info!(listener, "drained");
    }
}
