//! The request path: one pass of plain phase functions over a per-request
//! [`Ctx`] (pingora's `request_filter` … `logging`), each able to answer
//! early with [`Flow::Respond`]. The log phase always runs, when the
//! response body ends.

pub mod body;
pub mod headers;
pub mod upgrade;
pub mod upstream;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use http::{header, HeaderValue, Method, Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::error::ProxyError;
use body::{Body, Finish, Metered};
use upstream::Upstream;

/// What a phase decided: go on with the value, or answer now.
pub enum Flow<T> {
    Continue(T),
    Respond(Response<Body>),
}

/// Per-request state, filled in as the phases run and read by the log phase.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub request_id: HeaderValue,
    pub method: Method,
    /// The path as received (no query: query strings may carry secrets).
    pub path: String,
    pub peer: SocketAddr,
    pub start: Instant,
    /// Bounded label for logs and metrics: `pass`, `model_call`, `model_list`, ...
    pub route_class: &'static str,
    pub upstream_time: Option<Duration>,
    pub status: StatusCode,
    /// Why modelgate answered by itself, when it did.
    pub error: Option<String>,
}

/// State shared by every request.
pub struct Proxy {
    config: Arc<ArcSwap<Config>>,
    upstream: Upstream,
    /// Tunnels of upgraded connections, so shutdown can wait for them.
    tunnels: TaskTracker,
}

impl Proxy {
    pub fn new(config: Arc<ArcSwap<Config>>) -> Arc<Self> {
        let upstream = Upstream::new(&config.load());
        Arc::new(Self {
            config,
            upstream,
            tunnels: TaskTracker::new(),
        })
    }

    pub fn config(&self) -> Arc<Config> {
        self.config.load_full()
    }

    pub fn tunnels(&self) -> &TaskTracker {
        &self.tunnels
    }

    /// Serves one request. Never fails: every error becomes a JSON response.
    pub async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        peer: SocketAddr,
    ) -> Response<Body> {
        let config = self.config.load_full();
        let mut ctx = Ctx {
            request_id: headers::request_id(req.headers(), &config.request_id_header),
            method: req.method().clone(),
            path: req.uri().path().to_owned(),
            peer,
            start: Instant::now(),
            route_class: "pass",
            upstream_time: None,
            status: StatusCode::OK,
            error: None,
        };
        let resp = match self.run(&config, &mut ctx, req).await {
            Ok(resp) => resp,
            Err(err) => {
                ctx.error = Some(err.to_string());
                err.into_response()
            }
        };
        log_phase(ctx, resp)
    }

    async fn run(
        &self,
        config: &Config,
        ctx: &mut Ctx,
        req: Request<Incoming>,
    ) -> Result<Response<Body>, ProxyError> {
        let (parts, incoming) = req.into_parts();
        let req = Request::from_parts(parts, body::boxed(incoming));
        self.forward(config, ctx, req).await
    }

    /// The forward phase: rewrites the request for the upstream, sends it
    /// through the pooled client and hands back its response, streaming.
    async fn forward(
        &self,
        config: &Config,
        ctx: &mut Ctx,
        mut req: Request<Body>,
    ) -> Result<Response<Body>, ProxyError> {
        let upgrading = req.version() == Version::HTTP_11 && headers::is_upgrade(req.headers());
        let client_upgrade = upgrading.then(|| hyper::upgrade::on(&mut req));
        prepare_request(config, ctx, &mut req, upgrading)?;

        let started = Instant::now();
        let result = self.upstream.send(config, req).await;
        ctx.upstream_time = Some(started.elapsed());
        let mut resp = result?;

        if let Some(client_upgrade) = client_upgrade {
            if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
                ctx.route_class = "upgrade";
                let upstream_upgrade = hyper::upgrade::on(&mut resp);
                upgrade::spawn_tunnel(
                    &self.tunnels,
                    client_upgrade,
                    upstream_upgrade,
                    ctx.request_id.clone(),
                );
                let (mut parts, _) = resp.into_parts();
                headers::strip_hop_by_hop(&mut parts.headers, true);
                parts
                    .headers
                    .insert(config.request_id_header.clone(), ctx.request_id.clone());
                return Ok(Response::from_parts(parts, body::empty()));
            }
        }

        let (mut parts, incoming) = resp.into_parts();
        headers::strip_hop_by_hop(&mut parts.headers, false);
        parts
            .headers
            .insert(config.request_id_header.clone(), ctx.request_id.clone());
        Ok(Response::from_parts(parts, body::boxed(incoming)))
    }
}

/// Points the request at the upstream and fixes its headers.
fn prepare_request(
    config: &Config,
    ctx: &Ctx,
    req: &mut Request<Body>,
    upgrading: bool,
) -> Result<(), ProxyError> {
    // An HTTP/2 client names the host in the URI authority, not a header.
    let host = req.headers().get(header::HOST).cloned().or_else(|| {
        req.uri()
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    });
    let path_and_query = req
        .uri()
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or("/");
    let mut uri = config.upstream.clone().into_parts();
    uri.path_and_query = Some(path_and_query.parse().map_err(|_| {
        ProxyError::refused(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "Invalid request target.",
        )
    })?);
    *req.uri_mut() = Uri::from_parts(uri).map_err(|_| {
        ProxyError::refused(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "Invalid request target.",
        )
    })?;
    *req.version_mut() = Version::HTTP_11;

    let h = req.headers_mut();
    headers::strip_hop_by_hop(h, upgrading);
    headers::set_forwarded(
        h,
        ctx.peer.ip(),
        host.as_ref(),
        config.proxy.trust_forwarded_headers,
    );
    h.insert(config.request_id_header.clone(), ctx.request_id.clone());
    match (config.proxy.preserve_host, host) {
        (true, Some(host)) => {
            h.insert(header::HOST, host);
        }
        // The client fills in the upstream authority when Host is absent.
        _ => {
            h.remove(header::HOST);
        }
    }
    Ok(())
}

/// The log phase: records the outcome now, and the byte count and total
/// duration when the body has been streamed to the end (or abandoned).
fn log_phase(mut ctx: Ctx, resp: Response<Body>) -> Response<Body> {
    ctx.status = resp.status();
    let (parts, body) = resp.into_parts();
    Response::from_parts(parts, body::boxed(Metered::new(body, AccessLog(ctx))))
}

/// One structured line per request, written when its response body ends.
struct AccessLog(Ctx);

impl Finish for AccessLog {
    fn finish(&mut self, bytes: u64, complete: bool) {
        let c = &self.0;
        let duration_ms = c.start.elapsed().as_secs_f64() * 1000.0;
        let upstream_ms = c.upstream_time.map(|d| d.as_secs_f64() * 1000.0);
        tracing::info!(
            target: "modelgate::access",
            request_id = c.request_id.to_str().unwrap_or("-"),
            method = %c.method,
            path = %c.path,
            status = c.status.as_u16(),
            route = c.route_class,
            duration_ms,
            upstream_ms,
            bytes,
            complete,
            peer = %c.peer.ip(),
            error = c.error.as_deref(),
            "request"
        );
    }
}
