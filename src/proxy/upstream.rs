//! The pooled HTTP/1.1 client to Open WebUI, and how its failures are
//! classified (for metrics) and refused (502/504).

use std::error::Error as StdError;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioTimer};

use std::sync::Arc;

use crate::config::Config;
use crate::error::Refusal;
use crate::metrics::{Metrics, UpstreamErrorKind};
use crate::proxy::body::Body;

/// Upper bound of each upstream connection's read buffer (hyper's minimum
/// is 8 KiB).
const UPSTREAM_READ_BUFFER: usize = 64 * 1024;

pub struct Upstream {
    client: Client<HttpConnector, Body>,
    metrics: Arc<Metrics>,
}

impl Upstream {
    pub fn new(config: &Config, metrics: Arc<Metrics>) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(config.startup.connect_timeout));
        connector.set_nodelay(true);
        connector.enforce_http(true);
        let client = Client::builder(TokioExecutor::new())
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
            .build(connector);
        Self { client, metrics }
    }

    /// Sends the request and waits for the response head, bounded by
    /// `timeouts.upstream_headers`. The body is not bounded in time: an SSE
    /// stream may legitimately last many minutes.
    pub async fn send(
        &self,
        config: &Config,
        req: Request<Body>,
    ) -> Result<Response<Incoming>, Refusal> {
        match tokio::time::timeout(config.timeouts.upstream_headers, self.client.request(req)).await
        {
            Err(_) => {
                self.metrics
                    .record_upstream_error(UpstreamErrorKind::Timeout);
                Err(Refusal::UpstreamTimeout)
            }
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(err)) => {
                let kind = classify(&err);
                self.metrics.record_upstream_error(kind);
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
    let mut source: Option<&(dyn StdError + 'static)> = StdError::source(err);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind as K;
            match io.kind() {
                K::TimedOut => return UpstreamErrorKind::Timeout,
                K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe => {
                    return UpstreamErrorKind::Reset
                }
                _ => {}
            }
        }
        if let Some(h) = e.downcast_ref::<hyper::Error>() {
            if h.is_incomplete_message() || h.is_canceled() {
                return UpstreamErrorKind::Reset;
            }
        }
        source = e.source();
    }
    if err.is_connect() {
        UpstreamErrorKind::Connect
    } else {
        UpstreamErrorKind::Other
    }
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
