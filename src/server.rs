//! The one accept loop, generic over what serves the requests (the proxy,
//! the admin listener): a connection limit, HTTP/1.1 and h2c from clients,
//! upgrades, and a graceful drain on shutdown.
//!
//! Every accepted connection holds one of `limits.max_connections` slots, so
//! none may hold it for free: a connection must send its first bytes (the
//! HTTP/2 preface whole) within `timeouts.header_read` of being accepted,
//! and hyper's own header-read timer then covers every request head,
//! including the wait of an idle keep-alive connection. (hyper starts that
//! timer only once its HTTP/1 connection runs, and hyper-util's version
//! sniffing before it has no timer at all: a socket that never sent a byte
//! held its slot forever.)

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
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
    serve_limited(listener, handler, limit, shutdown).await
}

/// [`serve`] with the connection slots given, so that several accept loops
/// (one per [`crate::workers`] thread) share one limit.
pub(crate) async fn serve_limited<H: Handler>(
    listener: TcpListener,
    handler: Arc<H>,
    limit: Arc<Semaphore>,
    shutdown: impl Future<Output = ()>,
) {
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
        let config = handler.config();
        let served = handler.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            // The slot is held from accept, so the first bytes are waited
            // for under a deadline, off the accept loop.
            let Some(opening) = read_opening(stream, config.timeouts.header_read).await else {
                tracing::debug!(peer = %peer, "connection closed: nothing sent in time");
                drop(permit);
                return;
            };
            let builder = connection_builder(&config, opening.http2);
            let service = service_fn(move |req| {
                let served = served.clone();
                async move { Ok::<_, Infallible>(served.handle(req, peer).await) }
            });
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(opening.io), service);
            if let Err(e) = watcher.watch(conn.into_owned()).await {
                tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    drain(handler.as_ref(), graceful).await;
}

/// Listen backlog: bursts of connects wait here (and while every
/// `limits.max_connections` slot is taken) instead of in SYN retransmits.
/// The standard library's and tokio's `bind` use 128; the kernel caps this
/// at `net.core.somaxconn`.
pub const LISTEN_BACKLOG: u32 = 1024;

/// Binds a listener with [`LISTEN_BACKLOG`] (and `SO_REUSEADDR`, as tokio's
/// `bind` sets it).
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// The HTTP/2 connection preface, which h2c clients open with.
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// A connection's first bytes, read before hyper takes over, and the
/// protocol they announce.
struct Opening {
    io: Prefixed,
    http2: bool,
}

/// Reads until the first bytes tell HTTP/1 from the HTTP/2 preface: one
/// byte for any HTTP/1 request, the whole preface for h2c. `None` when the
/// peer closed or did not get there within `limit`.
async fn read_opening(mut stream: TcpStream, limit: Duration) -> Option<Opening> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut buf = [0u8; 24];
    let mut n = 0;
    loop {
        let read = tokio::time::timeout_at(deadline, stream.read(&mut buf[n..])).await;
        match read {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return None,
            Ok(Ok(m)) => n += m,
        }
        let http2 = n == H2_PREFACE.len() && buf == *H2_PREFACE;
        if http2 || buf[..n] != H2_PREFACE[..n] {
            return Some(Opening {
                io: Prefixed {
                    prefix: bytes::Bytes::copy_from_slice(&buf[..n]),
                    io: stream,
                },
                http2,
            });
        }
    }
}

/// A stream whose first bytes were already read: they are read again first.
struct Prefixed {
    prefix: bytes::Bytes,
    io: TcpStream,
}

impl AsyncRead for Prefixed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            let head = self.prefix.split_to(n);
            buf.put_slice(&head);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Built per connection so a reloaded config applies to new connections.
/// The protocol is already known from the opening bytes, so hyper-util
/// does not sniff it again (that read has no timer).
fn connection_builder(config: &Config, http2: bool) -> auto::Builder<TokioExecutor> {
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
        // A peer that stops answering pings (gone, or silent on purpose)
        // gives its slot back.
        .keep_alive_interval(config.timeouts.header_read)
        .keep_alive_timeout(config.timeouts.header_read)
        .max_header_list_size(u32::try_from(config.limits.max_header_bytes).unwrap_or(u32::MAX));
    if http2 {
        builder.http2_only()
    } else {
        builder.http1_only()
    }
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
