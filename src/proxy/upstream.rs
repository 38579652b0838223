//! The pooled HTTP/1.1 clients — plain HTTP to Open WebUI (ingress, on
//! [`super::pool`]), HTTPS with the platform's trust roots to the model API
//! (egress, hyper-util's client) — and how their failures are classified
//! (for metrics) and refused (502/504).

use std::error::Error as StdError;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::{Connect, HttpConnector};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use std::sync::Arc;

use crate::config::Config;
use crate::error::Refusal;
use crate::metrics::{Gate, Metrics, UpstreamErrorKind};
use crate::proxy::body::Body;
use crate::proxy::pool::{Pool, PoolConfig, PooledBody, SendError};
use crate::workers::PerWorker;

/// Upper bound of each upstream connection's read buffer (hyper's minimum
/// is 8 KiB).
const UPSTREAM_READ_BUFFER: usize = 64 * 1024;

/// The egress client: HTTPS (or plain HTTP on a private network), one
/// pool per worker thread ([`PerWorker`]): a pooled connection's task runs
/// on the thread that opened it, so sharing one pool between threads would
/// hand every request to another thread and back.
pub struct TlsUpstream {
    clients: PerWorker<Client<HttpsConnector<HttpConnector>, Body>>,
    metrics: Arc<Metrics>,
}

/// The ingress client: plain HTTP/1.1 to Open WebUI beside us, one
/// [`Pool`] per worker thread.
pub struct Upstream {
    pools: PerWorker<Arc<Pool>>,
    metrics: Arc<Metrics>,
}

fn tcp_connector(config: &Config) -> HttpConnector {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(config.startup.connect_timeout));
    connector.set_nodelay(true);
    connector
}

fn pooled<C>(config: &Config, connector: C) -> PerWorker<Client<C, Body>>
where
    C: Connect + Clone,
{
    PerWorker::new(config.startup.workers, || client(config, connector.clone()))
}

fn client<C>(config: &Config, connector: C) -> Client<C, Body>
where
    C: Connect + Clone,
{
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(config.startup.pool.idle_timeout)
        .pool_max_idle_per_host(config.startup.pool.max_idle_per_host)
        // hyper's adaptive read buffer grows to ~400 KiB per connection
        // on large bodies (model lists); with hundreds of pooled
        // connections that is the proxy's whole memory budget. 64 KiB
        // still holds any response head and keeps streaming cheap.
        .http1_max_buf_size(UPSTREAM_READ_BUFFER)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        // The client must not invent a Host header when we removed it on
        // purpose: it then derives it from the upstream URI, which is
        // what `preserve_host = false` asks for.
        .set_host(true)
        .build(connector)
}

impl Upstream {
    pub fn new(config: &Config, metrics: Arc<Metrics>) -> Self {
        let pool = PoolConfig {
            authority: upstream_authority(&config.upstream),
            connect_timeout: config.startup.connect_timeout,
            idle_timeout: config.startup.pool.idle_timeout,
            max_idle: config.startup.pool.max_idle_per_host,
            max_buf_size: UPSTREAM_READ_BUFFER,
        };
        Self {
            pools: PerWorker::new(config.startup.workers, || Pool::new(pool.clone())),
            metrics,
        }
    }

    /// Sends the request and waits for the response head, bounded by
    /// `timeouts.upstream_headers`. The body is not bounded in time: an SSE
    /// stream may legitimately last many minutes.
    pub async fn send(
        &self,
        config: &Config,
        req: Request<Body>,
    ) -> Result<Response<PooledBody>, Refusal> {
        let pool = self.pools.get();
        let result = tokio::time::timeout(config.timeouts.upstream_headers, pool.send(req)).await;
        let err = match result {
            Ok(Ok(resp)) => return Ok(resp),
            Ok(Err(err)) => err,
            Err(_) => {
                self.metrics
                    .record_upstream_error(Gate::Ingress, UpstreamErrorKind::Timeout);
                return Err(Refusal::UpstreamTimeout);
            }
        };
        let kind = match &err {
            SendError::ConnectTimeout(_) => UpstreamErrorKind::Timeout,
            SendError::Connect { .. } => UpstreamErrorKind::Connect,
            SendError::Handshake(e) | SendError::Http(e) => {
                classify_chain(e).unwrap_or(UpstreamErrorKind::Other)
            }
        };
        self.metrics.record_upstream_error(Gate::Ingress, kind);
        Err(match kind {
            UpstreamErrorKind::Timeout => Refusal::UpstreamTimeout,
            _ => Refusal::UpstreamUnavailable(error_chain(&err)),
        })
    }
}

/// `host:port` of the upstream URL (validated at config load: http, a
/// host, no path).
pub(super) fn upstream_authority(upstream: &http::Uri) -> http::uri::Authority {
    let host = upstream.host().unwrap_or("localhost");
    let port = upstream.port_u16().unwrap_or(80);
    let text = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    text.parse()
        .unwrap_or_else(|_| http::uri::Authority::from_static("localhost:80"))
}

impl TlsUpstream {
    /// The egress client: the platform's trust roots plus
    /// `egress.ca_file`, HTTP/1.1 with keep-alive.
    pub fn tls(config: &Config, metrics: Arc<Metrics>) -> Result<Self, TlsError> {
        let roots = trust_roots(config.startup.egress_ca_file.as_deref())?;
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Setup(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let mut tcp = tcp_connector(config);
        tcp.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        Ok(Self {
            clients: pooled(config, connector),
            metrics,
        })
    }
}

/// Why the egress client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read egress.ca_file {path}: {reason}")]
    CaFile { path: String, reason: String },
    #[error("no trust roots: the platform has none and egress.ca_file adds none")]
    NoRoots,
    #[error("TLS set-up failed: {0}")]
    Setup(String),
}

/// The platform's roots (what `openssl` and `curl` trust here), plus the
/// operator's extra file. Platform certificates that fail to parse are
/// skipped, as browsers do.
fn trust_roots(extra: Option<&std::path::Path>) -> Result<rustls::RootCertStore, TlsError> {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for e in &native.errors {
        tracing::warn!(error = %e, "a platform trust root could not be loaded");
    }
    let (added, ignored) = roots.add_parsable_certificates(native.certs);
    if ignored > 0 {
        tracing::debug!(added, ignored, "platform trust roots loaded");
    }
    if let Some(path) = extra {
        let ca_err = |reason: String| TlsError::CaFile {
            path: path.display().to_string(),
            reason,
        };
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| ca_err(e.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ca_err(e.to_string()))?;
        if certs.is_empty() {
            return Err(ca_err("no certificate in the file".into()));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| ca_err(e.to_string()))?;
        }
    }
    if roots.is_empty() {
        return Err(TlsError::NoRoots);
    }
    Ok(roots)
}

impl TlsUpstream {
    /// Sends the request and waits for the response head, bounded by
    /// `timeouts.upstream_headers`. The body is not bounded in time: an SSE
    /// stream may legitimately last many minutes.
    pub async fn send(
        &self,
        config: &Config,
        req: Request<Body>,
    ) -> Result<Response<Incoming>, Refusal> {
        let client = self.clients.get();
        match tokio::time::timeout(config.timeouts.upstream_headers, client.request(req)).await {
            Err(_) => {
                self.metrics
                    .record_upstream_error(Gate::Egress, UpstreamErrorKind::Timeout);
                Err(Refusal::UpstreamTimeout)
            }
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(err)) => {
                let kind = classify(&err);
                self.metrics.record_upstream_error(Gate::Egress, kind);
                Err(match kind {
                    // The connect timeout surfaces as an io TimedOut in the chain.
                    UpstreamErrorKind::Timeout => Refusal::UpstreamTimeout,
                    _ => Refusal::UpstreamUnavailable(error_chain(&err)),
                })
            }
        }
    }
}

fn error_chain(err: &dyn StdError) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        out.push_str(": ");
        out.push_str(&e.to_string());
        source = e.source();
    }
    out
}

/// Classifies a failure of the pooled client. A timeout of the
/// response-head deadline (`tokio::time::timeout`) is
/// [`UpstreamErrorKind::Timeout`] and never reaches this function.
pub fn classify(err: &hyper_util::client::legacy::Error) -> UpstreamErrorKind {
    classify_chain(err).unwrap_or(if err.is_connect() {
        UpstreamErrorKind::Connect
    } else {
        UpstreamErrorKind::Other
    })
}

/// A timeout or a reset found in `err`'s chain of sources.
fn classify_chain(err: &(dyn StdError + 'static)) -> Option<UpstreamErrorKind> {
    let mut source: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind as K;
            match io.kind() {
                K::TimedOut => return Some(UpstreamErrorKind::Timeout),
                K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe => {
                    return Some(UpstreamErrorKind::Reset)
                }
                _ => {}
            }
        }
        if let Some(h) = e.downcast_ref::<hyper::Error>() {
            if h.is_incomplete_message() || h.is_canceled() {
                return Some(UpstreamErrorKind::Reset);
            }
        }
        source = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_refused_connection_is_a_connect_error() {
        use hyper_util::client::legacy::Client;
        use hyper_util::rt::TokioExecutor;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let client = Client::builder(TokioExecutor::new()).build_http::<String>();
        let err = client
            .get(format!("http://{addr}/").parse().unwrap())
            .await
            .unwrap_err();
        assert_eq!(classify(&err), UpstreamErrorKind::Connect);
    }
}
