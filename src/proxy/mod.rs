//! The request path. Each gate reads top to bottom in one file —
//! `ingress.rs` (browser → Open WebUI) and [`egress`] (Open WebUI → the
//! model API) — as plain phase functions over a
//! per-request [`Ctx`] (pingora's `request_filter` … `logging`). A phase
//! answers early only by refusing: it returns `Err(Refusal)`, and the one
//! table in [`crate::error`] turns that into the response. The log phase
//! always runs, when the response body ends.
//!
//! The leaves the gates share: [`guard`] (identify, bypass, authorize),
//! [`inspect`] (guarded request bodies), [`rewrite`] (model-list
//! filtering), [`forward`] (the upstream call), [`log`], [`headers`],
//! [`upstream`] (pooled clients, failure classification; [`pool`] the
//! ingress's per-worker connections), [`upgrade`]
//! (WebSocket tunnels), [`body`] (streaming body, byte counting),
//! [`list_cache`] (filtered lists shared by one organization set),
//! [`learn`] (the model ids the forwarded lists teach `store::known`).

pub mod body;
pub mod budget;
pub mod egress;
mod forward;
pub mod guard;
pub mod headers;
mod ingress;
pub mod inspect;
pub mod learn;
pub mod list_cache;
mod log;
pub mod pool;
pub mod rewrite;
pub mod upgrade;
pub mod upstream;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::error::Refusal;
use crate::metrics::{Gate, GaugeGuard, Metrics, RouteLabel, StoreErrorKind};
use crate::store::{AccessStore, StoreError};
use body::Body;
use guard::Verdict;
use upstream::Upstream;

/// Per-request state, filled in as the phases run and read by the log phase.
#[derive(Debug)]
pub struct Ctx {
    /// Which gate the request crossed.
    pub gate: Gate,
    pub request_id: HeaderValue,
    /// Where the request id is echoed (`proxy.request_id_header`).
    pub request_id_header: http::HeaderName,
    pub method: Method,
    /// The path as received (no query: query strings may carry secrets).
    pub path: String,
    pub peer: SocketAddr,
    pub start: Instant,
    /// The route class, as classified (an upgrade once the tunnel opens).
    pub route: RouteLabel,
    pub upstream_time: Option<Duration>,
    pub status: StatusCode,
    /// Why modelgate answered by itself, when it did.
    pub refusal: Option<Refusal>,
    /// The authenticated user, on guarded routes.
    pub user: Option<String>,
    /// What the guard decided.
    pub verdict: Option<Verdict>,
    /// For a Socket.IO tunnel: whose view its events are redacted for.
    pub socket: Option<upgrade::SocketFilter>,
}

impl Ctx {
    /// A request arriving at `gate`: its context, the request with its body
    /// boxed, and the in-flight count held until the response body ends.
    pub fn arrive(
        gate: Gate,
        req: Request<hyper::body::Incoming>,
        peer: SocketAddr,
        config: &Config,
        metrics: &Metrics,
    ) -> (Ctx, Request<Body>, GaugeGuard) {
        let in_flight = metrics.track_in_flight();
        let request_id = headers::request_id(req.headers(), &config.proxy.request_id_header);
        let mut ctx = Ctx::new(gate, &req, peer, request_id);
        ctx.request_id_header = config.proxy.request_id_header.clone();
        let (parts, incoming) = req.into_parts();
        (
            ctx,
            Request::from_parts(parts, body::boxed(incoming)),
            in_flight,
        )
    }

    /// The context of a request that just arrived at `gate`.
    pub fn new<B>(gate: Gate, req: &Request<B>, peer: SocketAddr, request_id: HeaderValue) -> Ctx {
        Ctx {
            gate,
            request_id,
            request_id_header: http::HeaderName::from_static("x-request-id"),
            method: req.method().clone(),
            path: req.uri().path().to_owned(),
            peer,
            start: Instant::now(),
            route: RouteLabel::Pass,
            upstream_time: None,
            status: StatusCode::OK,
            refusal: None,
            user: None,
            verdict: None,
            socket: None,
        }
    }

    /// The span every log line of this request is written in.
    pub fn span(&self) -> tracing::Span {
        let id = self.request_id.to_str().unwrap_or("-");
        match self.gate {
            Gate::Ingress => tracing::info_span!("request", request_id = id),
            Gate::Egress => tracing::info_span!("egress", request_id = id),
        }
    }

    /// Ends the request the same way at every gate: a refusal is answered
    /// through `error.rs` and kept for the log, which runs when the body ends.
    pub fn finish(
        mut self,
        result: Result<Response<Body>, Refusal>,
        metrics: Arc<Metrics>,
        in_flight: GaugeGuard,
    ) -> Response<Body> {
        let resp = match result {
            Ok(resp) => resp,
            Err(refusal) => {
                if self.verdict.is_none() {
                    self.verdict = guard::verdict_of(&refusal);
                }
                let mut resp = refusal.to_response();
                // Echoed like on a forwarded response, so a refusal can be
                // found in the log by the id the client sent.
                resp.headers_mut()
                    .insert(self.request_id_header.clone(), self.request_id.clone());
                self.refusal = Some(refusal);
                resp
            }
        };
        log::log_phase(self, resp, metrics, in_flight)
    }
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
    /// The memory buffered request bodies may hold at once.
    body_budget: budget::BodyBudget,
}

impl Proxy {
    pub fn new(
        config: Arc<ArcSwap<Config>>,
        store: AccessStore,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        let upstream = Upstream::ingress(&config.load(), metrics.clone());
        let observer = metrics.clone();
        store.observe_queries(Arc::new(move |took, error| {
            observer.observe_store_query(took);
            if let Some(e) = error {
                observer.record_store_error(store_error_kind(e));
            }
        }));
        learn::count_into(&store, &metrics);
        let list_filters = Arc::new(tokio::sync::Semaphore::new(
            config.load().startup.max_concurrent_list_filters.get(),
        ));
        let list_cache =
            list_cache::ListCache::new(LIST_CACHE_BYTES, config.load().startup.store.cache_ttl);
        let body_budget =
            budget::BodyBudget::new(config.load().startup.max_buffered_body_bytes.get());
        Arc::new(Self {
            list_filters,
            list_cache,
            body_budget,
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
}

fn store_error_kind(e: &StoreError) -> StoreErrorKind {
    use StoreError as E;
    match e {
        E::Busy(_) => StoreErrorKind::Timeout,
        E::Missing { .. } | E::Unavailable(_) => StoreErrorKind::Connect,
        _ => StoreErrorKind::Query,
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;

    use super::*;

    fn future_size<A, B, C, F: Future>(_: impl FnOnce(A, B, C) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// hyper moves each request's future as it starts it, so every byte of
    /// it is copied per request: rare branches (store loads, list filtering,
    /// new upstream connections) are boxed to keep it small. Without that
    /// it was 16 KiB.
    #[test]
    fn a_request_future_stays_small() {
        let ingress = future_size(Proxy::handle);
        let egress = future_size(egress::Egress::handle);
        eprintln!("ingress {ingress} B, egress {egress} B");
        assert!(ingress <= 8 * 1024, "ingress request future: {ingress} B");
        assert!(egress <= 8 * 1024, "egress request future: {egress} B");
    }
}
