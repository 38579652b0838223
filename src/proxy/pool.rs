//! Keep-alive HTTP/1.1 connections (plain or TLS) to one upstream, one
//! pool per worker thread, on hyper's connection API.
//!
//! hyper-util's pooled client is general (any host, a pool shared by every
//! thread, a task spawned per request to watch for the connection becoming
//! idle again); each gate has one upstream and one pool per thread, so a
//! connection goes back to its pool when the response body ends and is
//! taken from it with no lock held across an await.
//!
//! A pooled connection the upstream closed while idle (uvicorn drops idle
//! keep-alive connections after 5 s) is noticed at checkout, or, in a race,
//! by hyper handing the unsent request back, which is then sent once on a
//! new connection: never a request that may have reached the upstream.

use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response};
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::body::Body;

/// Where the pool connects and how it keeps connections.
#[derive(Clone)]
pub struct PoolConfig {
    /// Host (name or address, no brackets needed) and port to connect to.
    pub address: (String, u16),
    /// The `Host` header of requests that carry none.
    pub host: HeaderValue,
    /// TLS on top of TCP, for an `https` upstream.
    pub tls: Option<Tls>,
    pub connect_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_idle: usize,
    /// Upper bound of each connection's read buffer.
    pub max_buf_size: usize,
}

/// The TLS client side of an `https` upstream.
#[derive(Clone)]
pub struct Tls {
    pub connector: tokio_rustls::TlsConnector,
    /// The name the certificate must carry.
    pub name: rustls::pki_types::ServerName<'static>,
}

/// Why a request got no response head.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("connect to {address}: {source}")]
    Connect {
        address: String,
        #[source]
        source: std::io::Error,
    },
    #[error("connect to {0}: timed out")]
    ConnectTimeout(String),
    #[error("TLS with {address}: {source}")]
    Tls {
        address: String,
        #[source]
        source: std::io::Error,
    },
    #[error("HTTP/1.1 handshake: {0}")]
    Handshake(#[source] hyper::Error),
    #[error("{0}")]
    Http(#[source] hyper::Error),
}

/// A URL's host as a socket address takes it: `[::1]` is written with
/// brackets in a URL, without in an address (and in a TLS server name).
pub fn socket_host(url_host: &str) -> &str {
    url_host.trim_start_matches('[').trim_end_matches(']')
}

/// One worker's idle connections to the upstream.
pub struct Pool {
    config: PoolConfig,
    host: HeaderValue,
    /// Most recently returned last: the warmest connection is used first,
    /// and the coldest ones age out.
    idle: Mutex<Vec<Idle>>,
}

struct Idle {
    sender: SendRequest<Body>,
    since: Instant,
}

impl Pool {
    pub fn new(config: PoolConfig) -> Arc<Pool> {
        Arc::new(Pool {
            host: config.host.clone(),
            config,
            idle: Mutex::new(Vec::new()),
        })
    }

    /// Sends `req` (its URI in origin form, as the gates write it; `Host`
    /// set to the upstream's when absent) and waits for the response head. The
    /// connection returns to the pool when the response body has ended.
    pub async fn send(
        self: &Arc<Self>,
        mut req: Request<Body>,
    ) -> Result<Response<PooledBody>, SendError> {
        if !req.headers().contains_key(header::HOST) {
            req.headers_mut().insert(header::HOST, self.host.clone());
        }

        // A new connection (and its TLS state) is boxed: kept inline, its
        // future would make every request's future kilobytes larger.
        let mut sender = match self.checkout().await {
            Some(sender) => sender,
            None => Box::pin(self.connect()).await?,
        };
        let resp = match sender.try_send_request(req).await {
            Ok(resp) => resp,
            Err(mut e) => match e.take_message() {
                // Never written: the connection closed between checkout
                // and send. Once more, on a new connection.
                Some(req) => {
                    sender = Box::pin(self.connect()).await?;
                    sender.send_request(req).await.map_err(SendError::Http)?
                }
                None => return Err(SendError::Http(e.into_error())),
            },
        };
        let pool = Arc::downgrade(self);
        Ok(resp.map(|body| PooledBody::new(body, sender, pool)))
    }

    /// An idle connection that is still open and young enough.
    async fn checkout(&self) -> Option<SendRequest<Body>> {
        loop {
            let Idle { mut sender, since } = self.lock().pop()?;
            if since.elapsed() > self.config.idle_timeout || sender.is_closed() {
                continue;
            }
            // Ready at once unless the connection is closing.
            if sender.ready().await.is_ok() {
                return Some(sender);
            }
        }
    }

    async fn connect(&self) -> Result<SendRequest<Body>, SendError> {
        let (host, port) = &self.config.address;
        let host = socket_host(host);
        let address = || format!("{host}:{port}");
        let connected = async {
            let stream =
                TcpStream::connect((host, *port))
                    .await
                    .map_err(|source| SendError::Connect {
                        address: address(),
                        source,
                    })?;
            let _ = stream.set_nodelay(true);
            match &self.config.tls {
                None => self.handshake(stream).await,
                Some(tls) => {
                    let stream = tls
                        .connector
                        .connect(tls.name.clone(), stream)
                        .await
                        .map_err(|source| SendError::Tls {
                            address: address(),
                            source,
                        })?;
                    self.handshake(stream).await
                }
            }
        };
        // The whole set-up, TLS included, within the connect timeout.
        tokio::time::timeout(self.config.connect_timeout, connected)
            .await
            .map_err(|_| SendError::ConnectTimeout(address()))?
    }

    async fn handshake<I>(&self, io: I) -> Result<SendRequest<Body>, SendError>
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (sender, conn) = http1::Builder::new()
            .max_buf_size(self.config.max_buf_size)
            .handshake(TokioIo::new(io))
            .await
            .map_err(SendError::Handshake)?;
        // On this thread's runtime: the connection and its requests share
        // the worker.
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
        });
        Ok(sender)
    }

    fn put(&self, sender: SendRequest<Body>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.lock();
        if idle.len() >= self.config.max_idle {
            // The coldest goes.
            idle.remove(0);
        }
        idle.push(Idle {
            sender,
            since: Instant::now(),
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Idle>> {
        // The list is valid whatever a panicking holder left.
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Idle connections held (for tests).
    pub fn idle_count(&self) -> usize {
        self.lock().len()
    }
}

/// A response body that gives its connection back to the pool once it has
/// ended; dropped before its end, the connection is closed with it (hyper
/// cannot reuse a connection with a response half read).
#[derive(Debug)]
pub struct PooledBody {
    body: Incoming,
    back: Option<(SendRequest<Body>, Weak<Pool>)>,
}

impl PooledBody {
    fn new(body: Incoming, sender: SendRequest<Body>, pool: Weak<Pool>) -> Self {
        let mut this = PooledBody {
            body,
            back: Some((sender, pool)),
        };
        // A body known empty (HEAD, 204, 304, `content-length: 0`) may
        // never be polled.
        if this.body.is_end_stream() {
            this.release();
        }
        this
    }

    fn release(&mut self) {
        if let Some((sender, pool)) = self.back.take() {
            if let Some(pool) = pool.upgrade() {
                pool.put(sender);
            }
        }
    }
}

impl HttpBody for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = std::pin::Pin::new(&mut self.body).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => self.release(),
            Poll::Ready(Some(Ok(_))) if self.body.is_end_stream() => self.release(),
            // An error: the connection is not reused.
            Poll::Ready(Some(Err(_))) => self.back = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use http_body_util::BodyExt;
    use hyper::service::service_fn;
    use tokio::net::TcpListener;

    /// A keep-alive upstream that counts its connections; `/close` answers
    /// and then closes the connection, `/empty` answers 204.
    async fn upstream() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let conns = Arc::new(AtomicUsize::new(0));
        let counted = conns.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                counted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let service = service_fn(|req: Request<Incoming>| async move {
                        let path = req.uri().path().to_owned();
                        let host = req.headers().get(header::HOST).cloned();
                        let mut resp = match path.as_str() {
                            "/empty" => Response::builder().status(204).body(String::new()),
                            "/close" => Response::builder()
                                .header(header::CONNECTION, "close")
                                .body("bye".to_string()),
                            _ => Response::builder().body(format!("{}", req.uri())),
                        }
                        .unwrap();
                        if let Some(host) = host {
                            resp.headers_mut().insert("x-host", host);
                        }
                        Ok::<_, std::convert::Infallible>(resp)
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        (addr, conns)
    }

    fn pool_config(addr: std::net::SocketAddr) -> PoolConfig {
        PoolConfig {
            address: (addr.ip().to_string(), addr.port()),
            host: HeaderValue::from_str(&addr.to_string()).unwrap(),
            tls: None,
            connect_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(90),
            max_idle: 4,
            max_buf_size: 64 * 1024,
        }
    }

    fn pool(addr: std::net::SocketAddr) -> Arc<Pool> {
        Pool::new(pool_config(addr))
    }

    fn get(uri: &str) -> Request<Body> {
        Request::get(uri).body(super::super::body::empty()).unwrap()
    }

    async fn text(resp: Response<PooledBody>) -> String {
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn a_connection_is_reused_once_its_body_ended() {
        let (addr, conns) = upstream().await;
        let pool = pool(addr);
        for _ in 0..5 {
            let resp = pool.send(get("/a?b=1")).await.unwrap();
            // The path and query on the wire, Host filled in from the upstream.
            assert_eq!(resp.headers()["x-host"], addr.to_string().as_str());
            assert_eq!(text(resp).await, "/a?b=1");
        }
        assert_eq!(conns.load(Ordering::SeqCst), 1);
        assert_eq!(pool.idle_count(), 1);

        // An empty body is never polled by some callers: still returned.
        let resp = pool.send(get("/empty")).await.unwrap();
        assert_eq!(resp.status(), 204);
        drop(resp);
        pool.send(get("/")).await.unwrap();
        assert_eq!(conns.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_body_dropped_half_read_takes_its_connection_with_it() {
        let (addr, conns) = upstream().await;
        let pool = pool(addr);
        let a = pool.send(get("/a")).await.unwrap();
        // While `a` is unread its connection is busy: a second is opened.
        let b = pool.send(get("/b")).await.unwrap();
        assert_eq!(conns.load(Ordering::SeqCst), 2);
        drop(a);
        assert_eq!(text(b).await, "/b");
        assert_eq!(pool.idle_count(), 1);
    }

    #[tokio::test]
    async fn a_connection_the_upstream_closed_is_not_reused() {
        let (addr, conns) = upstream().await;
        let pool = pool(addr);
        assert_eq!(text(pool.send(get("/close")).await.unwrap()).await, "bye");
        for _ in 0..3 {
            assert_eq!(text(pool.send(get("/x")).await.unwrap()).await, "/x");
        }
        assert_eq!(conns.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn an_ipv6_upstream_is_reached() {
        let Ok(listener) = TcpListener::bind("[::1]:0").await else {
            return; // no IPv6 loopback on this machine
        };
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let service = service_fn(|_req: Request<Incoming>| async {
                Ok::<_, std::convert::Infallible>(Response::new("six".to_string()))
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        let upstream: http::Uri = format!("http://{addr}").parse().unwrap();
        let pool = Pool::new(PoolConfig {
            // As a URL names it: with brackets.
            address: (upstream.host().unwrap().to_owned(), addr.port()),
            ..pool_config(addr)
        });
        assert_eq!(text(pool.send(get("/")).await.unwrap()).await, "six");
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_connect_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let err = pool(addr).send(get("/")).await.unwrap_err();
        assert!(matches!(err, SendError::Connect { .. }), "{err}");
    }
}
