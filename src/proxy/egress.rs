//! The egress gate, Open WebUI → the model API, top to bottom. It is the
//! authoritative one: every model call Open WebUI makes passes here,
//! whatever produced it (a browser request, a stored chat it runs by
//! itself, an automation, a channel reply, a task model).
//!
//! ```text
//! handle ─► identify ──────────► inspect ───────► authorize ─► forward ─► log
//!           Open WebUI's signed   the models the   the same     HTTPS,
//!           user header (`sub`)   body names       decision as  streaming,
//!           or none: system       (model, models,  ingress      unchanged
//!           models only           fallbacks, ...)
//! ```
//!
//! Bodiless listing calls (`GET /models`) pass unfiltered: ingress filters
//! what each user is shown. The model list is copied as it streams past, to
//! learn the ids the upstream offers ([`super::learn`]). A refusal is
//! answered in the OpenAI error shape, which Open WebUI shows the user.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, Uri, Version};
use hyper::body::Incoming;
use tracing::Instrument;

use super::body::Body;
use super::budget::BodyBudget;
use super::forward::downstream;
use super::guard::{self, Identity, Verdict};
use super::inspect::parse_off_thread;
use super::upstream::{TlsError, Upstream};
use super::{headers, learn, Ctx};
use crate::config::Config;
use crate::error::Refusal;
use crate::gate::outbound::outbound_models;
use crate::metrics::{Gate, Metrics, Outcome, RouteLabel};
use crate::store::known::KnownSource;
use crate::store::AccessStore;

/// State shared by every outbound call.
pub struct Egress {
    config: Arc<ArcSwap<Config>>,
    store: AccessStore,
    metrics: Arc<Metrics>,
    upstream: Upstream,
    /// The memory buffered outbound bodies may hold at once.
    body_budget: BodyBudget,
}

/// Who an outbound call is made for.
enum Caller {
    /// A verified user: the same decision as ingress.
    User(Identity),
    /// No user (Open WebUI's own calls): system models only.
    System,
}

impl Egress {
    pub fn new(
        config: Arc<ArcSwap<Config>>,
        store: AccessStore,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Self>, TlsError> {
        let upstream = Upstream::egress(&config.load(), metrics.clone())?;
        learn::count_into(&store, &metrics);
        let body_budget = BodyBudget::new(config.load().startup.max_buffered_body_bytes.get());
        Ok(Arc::new(Self {
            body_budget,
            config,
            store,
            metrics,
            upstream,
        }))
    }

    /// Serves one outbound call. Never fails: every refusal becomes a JSON
    /// response.
    pub async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        peer: SocketAddr,
    ) -> Response<Body> {
        let config = self.config.load_full();
        let (mut ctx, req, in_flight) =
            Ctx::arrive(Gate::Egress, req, peer, &config, &self.metrics);
        let span = ctx.span();
        let result = self.run(&config, &mut ctx, req).instrument(span).await;
        ctx.finish(result, self.metrics.clone(), in_flight)
    }

    async fn run(
        &self,
        config: &Config,
        ctx: &mut Ctx,
        mut req: Request<Body>,
    ) -> Result<Response<Body>, Refusal> {
        // What the upstream will see: no hop-by-hop header, nor any header
        // `Connection` names, may carry the identity checked below.
        headers::strip_hop_by_hop(req.headers_mut(), false);
        if !carries_body(&req) {
            // Listings and lookups (`GET /models`) call no model.
            let teaches = learn::egress_teaches(req.method(), req.uri().path());
            let resp = self.forward(config, ctx, req).await?;
            if !teaches {
                return Ok(resp);
            }
            let cap = learn::learn_cap(config);
            return Ok(learn::learn_while_streaming(
                &self.store,
                KnownSource::Egress,
                resp,
                cap,
            ));
        }
        ctx.route = RouteLabel::ModelCall;
        if !config.access.enforcing() {
            return self.forward(config, ctx, req).await;
        }
        let (parts, body) = req.into_parts();
        // Who, before a byte of the body is buffered.
        let caller = self.caller(config, ctx, &parts.headers).await?;
        let cap = config.egress.max_body_bytes.get();
        let buffered = self
            .body_budget
            .read_json(cap, &parts.headers, body)
            .await?;
        let models = parse_off_thread(buffered.bytes.clone(), outbound_models).await?;
        let started = Instant::now();
        ctx.verdict = Some(match caller {
            Caller::User(who) => {
                if guard::bypasses(config, &self.metrics, Gate::Egress, &who) {
                    Verdict::Bypassed
                } else {
                    guard::authorize(&self.store, &self.metrics, Gate::Egress, &who, &models)
                        .await?
                }
            }
            Caller::System => self.system_call(config, &models, started.elapsed())?,
        });
        self.forward(
            config,
            ctx,
            Request::from_parts(parts, buffered.into_body()),
        )
        .await
    }

    /// The identify phase: Open WebUI's signed user header, or (only when
    /// the operator trusts them) its plain one. A signed header that does
    /// not verify is refused outright, never read as "no user".
    async fn caller(
        &self,
        config: &Config,
        ctx: &mut Ctx,
        headers: &HeaderMap,
    ) -> Result<Caller, Refusal> {
        let started = Instant::now();
        let result = self.caller_inner(config, headers).await;
        match &result {
            Ok(Caller::User(who)) => ctx.user = Some(who.user_id.clone()),
            Ok(Caller::System) => {}
            Err(refusal) => guard::record_refusal(
                &self.metrics,
                Gate::Egress,
                refusal,
                None,
                started.elapsed(),
            ),
        }
        result
    }

    async fn caller_inner(&self, config: &Config, headers: &HeaderMap) -> Result<Caller, Refusal> {
        let egress = &config.egress;
        let signed = single_value(headers, &egress.jwt_header)?;
        let user_id = match (signed, &egress.jwt) {
            (Some(token), Some(verifier)) => {
                Some(verifier.verify(token).map_err(Refusal::Session)?)
            }
            (Some(_), None) => {
                tracing::error!(
                    "a signed user header arrived but FORWARD_USER_INFO_HEADER_JWT_SECRET is not set"
                );
                return Err(Refusal::NoSessionKey);
            }
            (None, _) if egress.trust_plain_user_headers => {
                single_value(headers, &egress.user_id_header)?.map(str::to_owned)
            }
            (None, _) => None,
        };
        match user_id {
            Some(id) => Ok(Caller::User(guard::user_identity(&self.store, id).await?)),
            None => Ok(Caller::System),
        }
    }

    /// A call for no user: every model it names must be a system model.
    fn system_call(
        &self,
        config: &Config,
        models: &[String],
        took: Duration,
    ) -> Result<Verdict, Refusal> {
        match models
            .iter()
            .find(|m| !config.egress.system_models.contains(m.as_str()))
        {
            None => {
                self.metrics
                    .record_decision(Gate::Egress, Outcome::Allowed, None, took);
                Ok(Verdict::SystemModel)
            }
            Some(model) => {
                let refusal = Refusal::NoVerifiedUser {
                    model: model.clone(),
                };
                guard::record_refusal(&self.metrics, Gate::Egress, &refusal, None, took);
                Err(refusal)
            }
        }
    }

    /// The forward phase: the call as Open WebUI made it (identity headers
    /// included, which it would have sent the model API anyway), pointed at
    /// the upstream's origin and path prefix; the response streams back
    /// unchanged, SSE chunk by chunk.
    async fn forward(
        &self,
        config: &Config,
        ctx: &mut Ctx,
        mut req: Request<Body>,
    ) -> Result<Response<Body>, Refusal> {
        let upstream = &config.egress.upstream;
        let path_and_query = req
            .uri()
            .path_and_query()
            .map(|pq| pq.as_str())
            .unwrap_or("/");
        // Origin form: the pool knows the upstream's address.
        *req.uri_mut() = Uri::try_from(format!("{}{}", upstream.base_path, path_and_query))
            .map_err(|_| Refusal::BadTarget)?;
        *req.version_mut() = Version::HTTP_11;
        let h = req.headers_mut();
        // The model API is a virtual host: it must see its own name.
        h.remove(header::HOST);
        h.insert(
            config.proxy.request_id_header.clone(),
            ctx.request_id.clone(),
        );

        let started = Instant::now();
        let result = self.upstream.send(config, req).await;
        let took = started.elapsed();
        ctx.upstream_time = Some(took);
        let resp = result?;
        self.metrics.observe_upstream(Gate::Egress, ctx.route, took);
        Ok(downstream(config, ctx, resp))
    }
}

/// Whether the call has a body to read: bodiless GET/HEAD/OPTIONS/DELETE
/// pass; anything else is read (a model call must name its model).
fn carries_body<B>(req: &Request<B>) -> bool {
    let bodiless_method = matches!(
        *req.method(),
        Method::GET | Method::HEAD | Method::OPTIONS | Method::DELETE
    );
    let h = req.headers();
    let declares_body = h.contains_key(header::TRANSFER_ENCODING)
        || h.get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0");
    !bodiless_method || declares_body
}

/// One value of a header, or none; two values are ambiguous and refused.
fn single_value<'a>(
    headers: &'a HeaderMap,
    name: &http::HeaderName,
) -> Result<Option<&'a str>, Refusal> {
    let mut values = headers.get_all(name).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(Refusal::Credential(
            crate::gate::credential::CredentialError::Ambiguous("several user headers"),
        ));
    }
    match first.map(HeaderValue::to_str) {
        None => Ok(None),
        Some(Ok(v)) if v.trim().is_empty() => Ok(None),
        Some(Ok(v)) => Ok(Some(v.trim())),
        Some(Err(_)) => Err(Refusal::Credential(
            crate::gate::credential::CredentialError::InvalidHeader("user"),
        )),
    }
}

impl crate::server::Handler for Egress {
    fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        peer: SocketAddr,
    ) -> impl Future<Output = Response<Body>> + Send {
        Egress::handle(self, req, peer)
    }

    fn config(&self) -> Arc<Config> {
        self.config.load_full()
    }

    fn name(&self) -> &'static str {
        "egress"
    }

    fn max_connections(&self) -> usize {
        self.config.load().startup.max_connections.get()
    }
}
