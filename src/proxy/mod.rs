//! The request path: one pass of plain phase functions over a per-request
//! [`Ctx`] (pingora's `request_filter` … `logging`), each able to answer
//! early with [`Flow::Respond`]. The log phase always runs, when the
//! response body ends.

pub mod body;
pub mod enforce;
pub mod headers;
pub mod list_cache;
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
use crate::gate::path::routing_path;
use crate::gate::routes::{is_defence_in_depth_candidate, RouteClass};
use crate::metrics::{GaugeGuard, Metrics, RouteClass as RouteLabel};
use crate::store::AccessStore;
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
    /// The authenticated user, on guarded routes.
    pub user: Option<String>,
    /// What the gate decided, for the log line.
    pub decision: Option<String>,
}

/// Memory the filtered-list cache may hold.
const LIST_CACHE_BYTES: u64 = 16 * 1024 * 1024;

/// State shared by every request.
pub struct Proxy {
    config: Arc<ArcSwap<Config>>,
    store: AccessStore,
    metrics: Arc<Metrics>,
    upstream: Upstream,
    /// Tunnels of upgraded connections, so shutdown can wait for them.
    tunnels: TaskTracker,
    /// Bounds the model lists buffered at once (start-up value of
    /// `access.max_concurrent_list_filters`).
    list_filters: Arc<tokio::sync::Semaphore>,
    /// Model lists already filtered for an organization set.
    list_cache: list_cache::ListCache,
}

impl Proxy {
    pub fn new(
        config: Arc<ArcSwap<Config>>,
        store: AccessStore,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        let upstream = Upstream::new(&config.load(), metrics.clone());
        let observer = metrics.clone();
        store.observe_queries(Arc::new(move |took, error| {
            observer.observe_store_query(took);
            if let Some(e) = error {
                observer.record_store_error(store_error_kind(e));
            }
        }));
        let list_filters = Arc::new(tokio::sync::Semaphore::new(
            config.load().access.max_concurrent_list_filters,
        ));
        let list_cache =
            list_cache::ListCache::new(LIST_CACHE_BYTES, config.load().store.cache_ttl);
        Arc::new(Self {
            list_filters,
            list_cache,
            config,
            store,
            metrics,
            upstream,
            tunnels: TaskTracker::new(),
        })
    }

    pub fn config(&self) -> Arc<Config> {
        self.config.load_full()
    }

    pub fn store(&self) -> &AccessStore {
        &self.store
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
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
        let in_flight = self.metrics.track_in_flight();
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
            user: None,
            decision: None,
        };
        let resp = match self.run(&config, &mut ctx, req).await {
            Ok(resp) => resp,
            Err(err) => {
                ctx.error = Some(err.to_string());
                err.into_response()
            }
        };
        log_phase(ctx, resp, self.metrics.clone(), in_flight)
    }

    /// Classify, then the phases each route class needs.
    async fn run(
        &self,
        config: &Config,
        ctx: &mut Ctx,
        req: Request<Incoming>,
    ) -> Result<Response<Body>, ProxyError> {
        let (parts, incoming) = req.into_parts();
        let req = Request::from_parts(parts, body::boxed(incoming));
        if !config.access.enforcing() {
            return self.forward(config, ctx, req).await;
        }
        // Classified on the path exactly as uvicorn hands it to Open WebUI's
        // router (percent-decoded, nothing collapsed).
        let routing = routing_path(req.uri().path());
        match config.access.routes.classify(req.method(), &routing) {
            RouteClass::Pass
                if is_defence_in_depth_candidate(req.method(), &routing) && has_json_body(&req) =>
            {
                ctx.route_class = "model_call";
                self.unlisted_json(config, ctx, req).await
            }
            RouteClass::Pass => self.forward(config, ctx, req).await,
            RouteClass::Refuse(reason) => {
                ctx.route_class = "refused";
                Err(ProxyError::refused(
                    StatusCode::FORBIDDEN,
                    reason.code(),
                    "This route is disabled by the model-access gateway.",
                ))
            }
            RouteClass::ModelCall(spec) => {
                ctx.route_class = "model_call";
                let who = self.identify(config, ctx, &req).await?;
                if enforce::bypasses(config, &who) {
                    return self.bypass(ctx, config, req).await;
                }
                let (parts, body) = req.into_parts();
                let bytes =
                    enforce::read_json_body(config.access.max_body_bytes, &parts.headers, body)
                        .await?;
                // A route that must name its model refuses an empty list here
                // (`missing_model`): the server would pick one we cannot see.
                let models = enforce::requested_models(config, &bytes, &spec)?;
                enforce::authorize(&self.store, &self.metrics, ctx, &who, &models).await?;
                self.forward(config, ctx, Request::from_parts(parts, body::full(bytes)))
                    .await
            }
            RouteClass::ModelList(shape) => {
                ctx.route_class = "model_list";
                // Read before identifying: see `enforce::filter_response`.
                let generation = self.store.generation();
                let who = self.identify(config, ctx, &req).await?;
                if enforce::bypasses(config, &who) {
                    return self.bypass(ctx, config, req).await;
                }
                let mut req = req;
                // Ask for a body we can read; decoding stays as a fallback.
                req.headers_mut().insert(
                    header::ACCEPT_ENCODING,
                    HeaderValue::from_static("identity"),
                );
                let is_head = req.method() == Method::HEAD;
                let resp = self.forward(config, ctx, req).await?;
                if is_head || !resp.status().is_success() {
                    return Ok(resp);
                }
                // The body waits in the connection's buffers until a slot frees.
                let _slot =
                    self.list_filters.acquire().await.map_err(|_| {
                        ProxyError::UpstreamUnavailable("list filter closed".into())
                    })?;
                let lf = enforce::ListFilter {
                    store: &self.store,
                    metrics: &self.metrics,
                    cache: &self.list_cache,
                    generation,
                };
                enforce::filter_response(config, lf, &who, shape, resp).await
            }
        }
    }

    async fn identify(
        &self,
        config: &Config,
        ctx: &mut Ctx,
        req: &Request<Body>,
    ) -> Result<enforce::Identity, ProxyError> {
        let who = enforce::identify(config, &self.store, &self.metrics, req.headers()).await?;
        ctx.user = Some(who.user_id.clone());
        Ok(who)
    }

    async fn bypass(
        &self,
        ctx: &mut Ctx,
        config: &Config,
        req: Request<Body>,
    ) -> Result<Response<Body>, ProxyError> {
        ctx.decision = Some("bypassed (admin)".into());
        self.metrics.record_decision(
            crate::metrics::Decision::Bypassed,
            None,
            std::time::Duration::ZERO,
        );
        self.forward(config, ctx, req).await
    }

    /// Defence in depth: a JSON body on a route the table does not know is
    /// still checked when it names a top-level `model`.
    async fn unlisted_json(
        &self,
        config: &Config,
        ctx: &mut Ctx,
        req: Request<Body>,
    ) -> Result<Response<Body>, ProxyError> {
        let (parts, body) = req.into_parts();
        let bytes =
            enforce::read_json_body(config.access.max_unlisted_body_bytes, &parts.headers, body)
                .await?;
        let models = enforce::unlisted_model(config, &bytes)?;
        let req = Request::from_parts(parts, body::full(bytes));
        if models.is_empty() {
            ctx.route_class = "pass";
            return self.forward(config, ctx, req).await;
        }
        let who = self.identify(config, ctx, &req).await?;
        if enforce::bypasses(config, &who) {
            return self.bypass(ctx, config, req).await;
        }
        enforce::authorize(&self.store, &self.metrics, ctx, &who, &models).await?;
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
        let took = started.elapsed();
        ctx.upstream_time = Some(took);
        let mut resp = result?;
        self.metrics
            .observe_upstream(RouteLabel::from_label(ctx.route_class), took);

        if let Some(client_upgrade) = client_upgrade {
            if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
                ctx.route_class = "upgrade";
                let upstream_upgrade = hyper::upgrade::on(&mut resp);
                upgrade::spawn_tunnel(
                    &self.tunnels,
                    client_upgrade,
                    upstream_upgrade,
                    ctx.request_id.clone(),
                    self.metrics.track_upgraded(),
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

fn store_error_kind(e: &crate::store::StoreError) -> crate::metrics::StoreErrorKind {
    use crate::metrics::StoreErrorKind as K;
    use crate::store::StoreError as E;
    match e {
        E::Busy(_) => K::Timeout,
        E::Missing { .. } | E::Unavailable(_) => K::Connect,
        _ => K::Query,
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
fn log_phase(
    mut ctx: Ctx,
    resp: Response<Body>,
    metrics: Arc<Metrics>,
    in_flight: GaugeGuard,
) -> Response<Body> {
    ctx.status = resp.status();
    let (parts, body) = resp.into_parts();
    let log = AccessLog {
        ctx,
        metrics,
        _in_flight: in_flight,
    };
    Response::from_parts(parts, body::boxed(Metered::new(body, log)))
}

/// Whether the request carries a JSON body the gate should read.
fn has_json_body<B>(req: &Request<B>) -> bool {
    req.headers()
        .get_all(header::CONTENT_TYPE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            let media = v
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            media == "application/json"
                || (media.starts_with("application/") && media.ends_with("+json"))
        })
}

/// One structured line per request, written when its response body ends;
/// the request metrics are recorded at the same moment.
struct AccessLog {
    ctx: Ctx,
    metrics: Arc<Metrics>,
    /// Counts the request as in flight until its body is done.
    _in_flight: GaugeGuard,
}

impl Finish for AccessLog {
    fn finish(&mut self, bytes: u64, complete: bool) {
        let c = &self.ctx;
        self.metrics.record_request(
            RouteLabel::from_label(c.route_class),
            c.status,
            c.start.elapsed(),
        );
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
            user = c.user.as_deref(),
            decision = c.decision.as_deref(),
            error = c.error.as_deref(),
            "request"
        );
    }
}
