//! Test harness shared by every integration test: a scriptable fake
//! upstream, the real proxy on 127.0.0.1:0, and small real clients.
//! Never fixed ports, never sleeps to wait for readiness: a bound listener is
//! ready the moment `bind` returns.
#![allow(dead_code)]

pub mod eventually;
pub mod serve;

// Only the tests that wait for the store use it; the rest include `common`
// for the harness alone.
#[allow(unused_imports)]
pub use eventually::eventually;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, Semaphore};
use tokio_tungstenite::tungstenite::{self, protocol::Role};

use modelgate::config::{Config, FileConfig};
use modelgate::metrics::Metrics;
use modelgate::proxy::body::{boxed, full, Body, BoxError};
use modelgate::proxy::Proxy;
use modelgate::store::AccessStore;

/// What the fake upstream received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// How the fake upstream answers a route.
#[derive(Clone)]
pub enum Reply {
    /// 200 with the request body as the response body.
    Echo,
    /// A fixed status, headers and body.
    Fixed(StatusCode, Vec<(&'static str, String)>, Bytes),
    /// Streams the request body without keeping it; answers
    /// `{"bytes": n, "fnv": h}` (FNV-1a 64 of the bytes).
    Sink,
    /// `text/event-stream`: the first event at once, each later one only
    /// after the test adds a permit to `gate` (when given).
    Sse {
        events: Vec<String>,
        gate: Option<Arc<Semaphore>>,
    },
    /// Waits, then answers like the inner reply.
    Delay(Duration, Box<Reply>),
    /// Accepts a WebSocket upgrade and echoes every message.
    WebSocketEcho,
    /// Records the request as soon as its head arrives and answers 200 `{}`
    /// without reading the body (shows a body was streamed, not buffered).
    Head,
}

pub struct FakeUpstream {
    pub addr: SocketAddr,
    pub received: Arc<Mutex<Vec<Recorded>>>,
    _stop: oneshot::Sender<()>,
}

#[derive(Default)]
pub struct FakeUpstreamBuilder {
    routes: HashMap<String, Reply>,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

/// A self-signed root and a certificate for `localhost`/`127.0.0.1` signed by
/// it: the root's PEM for the client, the acceptor for the fake upstream.
pub fn test_tls() -> (String, tokio_rustls::TlsAcceptor) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der()).unwrap(),
        )
        .unwrap();
    (
        ca_cert.pem(),
        tokio_rustls::TlsAcceptor::from(Arc::new(server)),
    )
}

impl FakeUpstream {
    pub fn builder() -> FakeUpstreamBuilder {
        FakeUpstreamBuilder::default()
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.received.lock().unwrap().clone()
    }

    /// Requests whose path is `path`.
    pub fn requests_to(&self, path: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.uri.path() == path)
            .collect()
    }
}

impl FakeUpstreamBuilder {
    /// `path` matches the request path exactly; unknown paths get [`Reply::Echo`].
    pub fn route(mut self, path: &str, reply: Reply) -> Self {
        self.routes.insert(path.to_owned(), reply);
        self
    }

    /// Serves HTTPS with this acceptor (see [`test_tls`]).
    pub fn tls(mut self, acceptor: tokio_rustls::TlsAcceptor) -> Self {
        self.tls = Some(acceptor);
        self
    }

    pub async fn start(self) -> FakeUpstream {
        let tls = self.tls;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let routes = Arc::new(self.routes);
        let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
        let rec = received.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = tokio::select! {
                    r = listener.accept() => match r { Ok(p) => p, Err(_) => continue },
                    _ = &mut stop_rx => return,
                };
                let routes = routes.clone();
                let rec = rec.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let routes = routes.clone();
                        let rec = rec.clone();
                        async move { Ok::<_, Infallible>(answer(req, &routes, &rec).await) }
                    });
                    let http = hyper::server::conn::http1::Builder::new();
                    match tls {
                        Some(acceptor) => {
                            let Ok(stream) = acceptor.accept(stream).await else {
                                return;
                            };
                            let _ = http.serve_connection(TokioIo::new(stream), svc).await;
                        }
                        None => {
                            let _ = http
                                .serve_connection(TokioIo::new(stream), svc)
                                .with_upgrades()
                                .await;
                        }
                    }
                });
            }
        });
        FakeUpstream {
            addr,
            received,
            _stop: stop_tx,
        }
    }
}

fn answer<'a>(
    mut req: Request<Incoming>,
    routes: &'a HashMap<String, Reply>,
    rec: &'a Mutex<Vec<Recorded>>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Response<Body>> + Send + 'a>> {
    Box::pin(async move {
        let reply = routes.get(req.uri().path()).cloned().unwrap_or(Reply::Echo);
        let reply = match reply {
            Reply::Delay(d, inner) => {
                tokio::time::sleep(d).await;
                *inner
            }
            other => other,
        };
        let record = |req: &Request<Incoming>, body: Bytes| Recorded {
            method: req.method().clone(),
            uri: req.uri().clone(),
            headers: req.headers().clone(),
            body,
        };
        match reply {
            Reply::Head => {
                rec.lock().unwrap().push(record(&req, Bytes::new()));
                json_reply(serde_json::json!({}))
            }
            Reply::WebSocketEcho => {
                rec.lock().unwrap().push(record(&req, Bytes::new()));
                let key = req.headers().get("sec-websocket-key").cloned();
                let Some(key) = key else {
                    return status_only(StatusCode::BAD_REQUEST);
                };
                let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
                let on_upgrade = hyper::upgrade::on(&mut req);
                tokio::spawn(async move {
                    let Ok(upgraded) = on_upgrade.await else {
                        return;
                    };
                    let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
                        TokioIo::new(upgraded),
                        Role::Server,
                        None,
                    )
                    .await;
                    while let Some(Ok(msg)) = ws.next().await {
                        if msg.is_close() {
                            break;
                        }
                        if ws.send(msg).await.is_err() {
                            break;
                        }
                    }
                });
                Response::builder()
                    .status(StatusCode::SWITCHING_PROTOCOLS)
                    .header("connection", "upgrade")
                    .header("upgrade", "websocket")
                    .header("sec-websocket-accept", accept)
                    .body(boxed(Full::new(Bytes::new())))
                    .unwrap()
            }
            Reply::Sink => {
                let (parts, mut body) = req.into_parts();
                let (mut n, mut h) = (0u64, 0xcbf29ce484222325u64);
                while let Some(frame) = body.frame().await {
                    let Ok(frame) = frame else {
                        return status_only(StatusCode::BAD_REQUEST);
                    };
                    if let Some(d) = frame.data_ref() {
                        n += d.len() as u64;
                        h = fnv(h, d);
                    }
                }
                let r = Request::from_parts(parts, ());
                rec.lock().unwrap().push(Recorded {
                    method: r.method().clone(),
                    uri: r.uri().clone(),
                    headers: r.headers().clone(),
                    body: Bytes::new(),
                });
                json_reply(serde_json::json!({"bytes": n, "fnv": h.to_string()}))
            }
            other => {
                let (parts, body) = req.into_parts();
                let body = body
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                let r = Request::from_parts(parts, ());
                rec.lock().unwrap().push(Recorded {
                    method: r.method().clone(),
                    uri: r.uri().clone(),
                    headers: r.headers().clone(),
                    body: body.clone(),
                });
                match other {
                    Reply::Echo => Response::builder()
                        .header("x-echo-method", r.method().as_str())
                        .body(full(body))
                        .unwrap(),
                    Reply::Fixed(status, headers, bytes) => {
                        let mut b = Response::builder().status(status);
                        for (k, v) in headers {
                            b = b.header(k, v);
                        }
                        b.body(full(bytes)).unwrap()
                    }
                    Reply::Sse { events, gate } => sse(events, gate),
                    Reply::Delay(..) | Reply::Sink | Reply::WebSocketEcho | Reply::Head => {
                        unreachable!()
                    }
                }
            }
        }
    })
}

fn sse(events: Vec<String>, gate: Option<Arc<Semaphore>>) -> Response<Body> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(4);
    tokio::spawn(async move {
        for (i, ev) in events.into_iter().enumerate() {
            if i > 0 {
                if let Some(g) = &gate {
                    let Ok(p) = g.acquire().await else { return };
                    p.forget();
                }
            }
            let frame = Frame::data(Bytes::from(format!("data: {ev}\n\n")));
            if tx.send(Ok(frame)).await.is_err() {
                return;
            }
        }
    });
    let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    Response::builder()
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .body(boxed(StreamBody::new(stream)))
        .unwrap()
}

pub fn fnv(mut h: u64, data: &[u8]) -> u64 {
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

fn status_only(status: StatusCode) -> Response<Body> {
    Response::builder()
        .status(status)
        .body(full(Bytes::new()))
        .unwrap()
}

fn json_reply(v: serde_json::Value) -> Response<Body> {
    Response::builder()
        .header("content-type", "application/json")
        .body(full(Bytes::from(v.to_string())))
        .unwrap()
}

/// The real proxy, in process, on 127.0.0.1:0.
pub struct TestProxy {
    pub addr: SocketAddr,
    pub live: Arc<ArcSwap<Config>>,
    pub store: AccessStore,
    pub metrics: Arc<Metrics>,
    /// Holds the temporary database when the harness made one.
    pub dir: Option<Arc<tempfile::TempDir>>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestProxy {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Triggers the graceful drain and waits until `serve` returns.
    pub async fn shutdown(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

/// The session key every test token is signed with.
pub const SECRET: &str = "test-secret-key";

/// A config for tests: loopback, the given upstream and database, the test
/// session key, with `tweak` applied last.
pub fn test_config(
    upstream: SocketAddr,
    database: &std::path::Path,
    tweak: impl FnOnce(&mut FileConfig),
) -> Config {
    let mut file = FileConfig {
        listen: "127.0.0.1:0".into(),
        admin_listen: "127.0.0.1:0".into(),
        upstream: format!("http://{upstream}"),
        database: Some(database.to_path_buf()),
        ..FileConfig::default()
    };
    file.store.watch_interval_ms = 50;
    // The egress (when a test starts one) forwards to the same fake.
    file.egress.listen = "127.0.0.1:0".into();
    file.egress.upstream = format!("http://{upstream}");
    tweak(&mut file);
    Config::from_file(file, &|k| {
        (k == "WEBUI_SECRET_KEY").then(|| SECRET.to_owned())
    })
    .unwrap()
}

/// A fresh database with the organization schema, in its own temp dir.
pub fn temp_db() -> (Arc<tempfile::TempDir>, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("webui.db");
    let conn = modelgate::store::admin::open_writer(&path).unwrap();
    modelgate::store::ensure_schema(&conn).unwrap();
    (Arc::new(dir), path)
}

/// The proxy with enforcement off: for transport tests that are about
/// bytes, streams and headers, not about who may call what.
pub async fn start_proxy(upstream: SocketAddr, tweak: impl FnOnce(&mut FileConfig)) -> TestProxy {
    let (dir, path) = temp_db();
    let config = test_config(upstream, &path, |f| {
        f.access.enabled = false;
        tweak(f)
    });
    let mut p = start_proxy_with(config).await;
    p.dir = Some(dir);
    p
}

pub async fn start_proxy_with(config: Config) -> TestProxy {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let store = AccessStore::open(config.startup.store.clone());
    let metrics = Arc::new(Metrics::new());
    let live = Arc::new(ArcSwap::from_pointee(config));
    let proxy = Proxy::new(live.clone(), store.clone(), metrics.clone());
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(modelgate::server::serve(listener, proxy, async move {
        let _ = stop_rx.await;
    }));
    TestProxy {
        addr,
        live,
        store,
        metrics,
        dir: None,
        stop: Some(stop_tx),
        task: Some(task),
    }
}

/// A plain HTTP/1.1 client, as a browser or SDK would use.
pub fn client() -> Client<HttpConnector, Body> {
    Client::builder(TokioExecutor::new()).build_http()
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

pub async fn send(req: Request<Body>) -> Answer {
    let resp = tokio::time::timeout(Duration::from_secs(30), client().request(req))
        .await
        .expect("request timed out")
        .expect("request failed");
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

pub async fn get(url: &str) -> Answer {
    send(Request::get(url).body(full(Bytes::new())).unwrap()).await
}

/// Asserts the refusal shape (`src/error.rs`) and returns the `error.code`.
pub fn assert_error_shape(a: &Answer, status: u16) -> String {
    assert_eq!(
        a.status.as_u16(),
        status,
        "body: {}",
        String::from_utf8_lossy(&a.body)
    );
    assert_eq!(a.headers["content-type"], "application/json");
    let v = a.json();
    let detail = v["detail"].as_str().expect("detail");
    assert_eq!(v["error"]["message"].as_str(), Some(detail));
    assert!(v["error"]["type"].is_string());
    v["error"]["code"].as_str().expect("error.code").to_owned()
}

/// A port on which nothing listens (bound, then released).
pub async fn closed_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    drop(l);
    a
}
