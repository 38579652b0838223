//! The pooled HTTP/1.1 clients of both gates, on [`super::pool`]: plain
//! HTTP to Open WebUI (ingress); HTTPS with the platform's trust roots to
//! the model API (egress) — and how their failures are classified (for
//! metrics) and refused (502/504).

use std::error::Error as StdError;
use std::sync::Arc;

use http::{HeaderValue, Request, Response, Uri};

use crate::config::Config;
use crate::error::Refusal;
use crate::metrics::{Gate, Metrics, UpstreamErrorKind};
use crate::proxy::body::Body;
use crate::proxy::pool::{socket_host, Pool, PoolConfig, PooledBody, SendError, Tls};
use crate::workers::PerWorker;

/// Upper bound of each upstream connection's read buffer (hyper's minimum
/// is 8 KiB). hyper's adaptive buffer grows to ~400 KiB per connection on
/// large bodies (model lists) and keeps what it grew; with hundreds of
/// pooled connections that was most of the proxy's memory (64 KiB: peak
/// RSS 87 MiB under the 300-user mix, 16 KiB: 68 MiB). 16 KiB still holds
/// any response head; a 300 KB list takes ~19 reads instead of 5.
const UPSTREAM_READ_BUFFER: usize = 16 * 1024;

/// A gate's keep-alive client to its upstream, one [`Pool`] per worker
/// thread ([`PerWorker`]): a connection's task runs on the thread that
/// opened it, so a pool shared between threads would hand every request
/// to another thread and back.
pub struct Upstream {
    pools: PerWorker<Arc<Pool>>,
    gate: Gate,
    metrics: Arc<Metrics>,
}

impl Upstream {
    /// The ingress client: plain HTTP to Open WebUI beside us.
    pub fn ingress(config: &Config, metrics: Arc<Metrics>) -> Self {
        Self::to(config, &config.upstream, None, Gate::Ingress, metrics)
    }

    /// The egress client: the platform's trust roots plus
    /// `egress.ca_file` for an `https` upstream (plain HTTP on a private
    /// network otherwise), HTTP/1.1 with keep-alive.
    pub fn egress(config: &Config, metrics: Arc<Metrics>) -> Result<Self, TlsError> {
        let origin = &config.egress.upstream.origin;
        let tls = match origin.scheme_str() {
            Some("https") => {
                let roots = trust_roots(config.startup.egress_ca_file.as_deref())?;
                let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(
                    rustls::crypto::aws_lc_rs::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .map_err(|e| TlsError::Setup(e.to_string()))?
                .with_root_certificates(roots)
                .with_no_client_auth();
                tls.alpn_protocols = vec![b"http/1.1".to_vec()];
                let host = socket_host(origin.host().unwrap_or_default());
                let name = rustls::pki_types::ServerName::try_from(host.to_owned())
                    .map_err(|e| TlsError::Setup(format!("{host}: {e}")))?;
                Some(Tls {
                    connector: tokio_rustls::TlsConnector::from(Arc::new(tls)),
                    name,
                })
            }
            _ => None,
        };
        Ok(Self::to(config, origin, tls, Gate::Egress, metrics))
    }

    fn to(
        config: &Config,
        origin: &Uri,
        tls: Option<Tls>,
        gate: Gate,
        metrics: Arc<Metrics>,
    ) -> Self {
        let default_port = if tls.is_some() { 443 } else { 80 };
        let pool = PoolConfig {
            address: (
                origin.host().unwrap_or("localhost").to_owned(),
                origin.port_u16().unwrap_or(default_port),
            ),
            // The Host header as the URL names the upstream (no default port).
            host: origin
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
                .unwrap_or_else(|| HeaderValue::from_static("localhost")),
            tls,
            connect_timeout: config.startup.connect_timeout,
            idle_timeout: config.startup.pool.idle_timeout,
            max_idle: config.startup.pool.max_idle_per_host,
            max_buf_size: UPSTREAM_READ_BUFFER,
        };
        Self {
            pools: PerWorker::new(config.startup.workers, || Pool::new(pool.clone())),
            gate,
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
                    .record_upstream_error(self.gate, UpstreamErrorKind::Timeout);
                return Err(Refusal::UpstreamTimeout);
            }
        };
        let kind = classify(&err);
        self.metrics.record_upstream_error(self.gate, kind);
        Err(match kind {
            UpstreamErrorKind::Timeout => Refusal::UpstreamTimeout,
            _ => Refusal::UpstreamUnavailable(error_chain(&err)),
        })
    }
}

/// The metrics' failure class of a request that got no response head. A
/// timeout of the response-head deadline never reaches this function.
pub fn classify(err: &SendError) -> UpstreamErrorKind {
    match err {
        SendError::ConnectTimeout(_) => UpstreamErrorKind::Timeout,
        SendError::Connect { .. } | SendError::Tls { .. } => UpstreamErrorKind::Connect,
        SendError::Handshake(e) | SendError::Http(e) => {
            classify_chain(e).unwrap_or(UpstreamErrorKind::Other)
        }
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

    #[test]
    fn resets_and_timeouts_are_found_in_the_chain() {
        let io = |kind| SendError::Connect {
            address: "127.0.0.1:1".into(),
            source: std::io::Error::from(kind),
        };
        assert_eq!(
            classify(&io(std::io::ErrorKind::ConnectionRefused)),
            UpstreamErrorKind::Connect
        );
        assert_eq!(
            classify(&SendError::ConnectTimeout("127.0.0.1:1".into())),
            UpstreamErrorKind::Timeout
        );
        let reset: &(dyn StdError + 'static) =
            &std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert_eq!(classify_chain(reset), Some(UpstreamErrorKind::Reset));
    }
}
