//! The ingress gate, browser → Open WebUI, top to bottom:
//!
//! ```text
//! handle ─► classify ─► guard ──────────────► forward ─► rewrite ─► log
//!           route       identify → bypass →    pooled    model lists
//!           table       authorize (the body's  client,   filtered for
//!                       models)                streaming the user
//! ```
//!
//! Pass routes go straight to forward; a refusal from any phase is answered
//! through [`crate::error`] and still logged.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use http::{header, HeaderValue, Method, Request, Response};
use hyper::body::Incoming;
use tracing::Instrument;

use super::body::{self, Body};
use super::guard::{self, Identity, Verdict};
use super::inspect::{requested_models, unlisted_model};
use super::rewrite::{filter_response, is_ndjson, redact_lines, ListFilter};
use super::upgrade::SocketFilter;
use super::{headers, learn, Ctx, Proxy};
use crate::config::Config;
use crate::error::Refusal;
use crate::gate::body::has_json_content_type;
use crate::gate::credential::extract_credential;
use crate::gate::filter::FilterError;
use crate::gate::path::routing_path;
use crate::gate::routes::{is_defence_in_depth_candidate, RouteClass};
use crate::gate::shape::{ListShape, Visitors};
use crate::metrics::{Gate, RouteLabel};
use crate::store::known::KnownSource;

/// Where Open WebUI mounts its Socket.IO server (`/ws` + `socket.io`).
const SOCKET_IO_PATH: &str = "/ws/socket.io/";

/// What the guard does with a pending account.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pending {
    /// Refused, as Open WebUI refuses it wherever a model is involved.
    Refused,
    /// Served as someone in no organization (Open WebUI shows pending users
    /// its configuration, whose model fields are then emptied).
    SeesNothing,
}

/// What the guard step hands on: the request (its body rebuilt when it was
/// read) and who asked, unless an admin bypass skipped the checks.
struct Guarded {
    req: Request<Body>,
    who: Option<Identity>,
}

impl Proxy {
    /// Serves one request. Never fails: every refusal becomes a JSON response.
    pub async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        peer: SocketAddr,
    ) -> Response<Body> {
        let config = self.config.load_full();
        let (mut ctx, req, in_flight) =
            Ctx::arrive(Gate::Ingress, req, peer, &config, &self.metrics);
        let span = ctx.span();
        let result = self.run(&config, &mut ctx, req).instrument(span).await;
        ctx.finish(result, self.metrics.clone(), in_flight)
    }

    /// Classify, then the phases the route class needs.
    async fn run(
        &self,
        config: &Config,
        ctx: &mut Ctx,
        mut req: Request<Body>,
    ) -> Result<Response<Body>, Refusal> {
        // Everything below reads the request as Open WebUI will receive it:
        // without hop-by-hop headers, nor any header `Connection` names (a
        // credential named there would be checked here and gone upstream).
        let upgrading = headers::wants_upgrade(&req);
        headers::strip_hop_by_hop(req.headers_mut(), upgrading);
        if !config.access.enforcing() {
            return self.forward(config, ctx, req).await;
        }
        // Classified on the path exactly as uvicorn hands it to Open WebUI's
        // router (percent-decoded, nothing collapsed).
        //
        // The branches other than a plain or guarded call are boxed: this
        // future is as large as its largest branch, and hyper copies every
        // request's future as it starts it.
        let routing = routing_path(req.uri().path());
        match config.access.routes.classify(req.method(), &routing) {
            RouteClass::Pass
                if is_defence_in_depth_candidate(req.method(), &routing)
                    && has_json_content_type(req.headers()) =>
            {
                ctx.route = RouteLabel::ModelCall;
                Box::pin(self.unlisted_json(config, ctx, req)).await
            }
            RouteClass::Pass if routing == SOCKET_IO_PATH && req.method() != Method::POST => {
                Box::pin(self.socket(config, ctx, req, upgrading)).await
            }
            RouteClass::Pass => self.forward(config, ctx, req).await,
            RouteClass::Refuse(reason) => {
                ctx.route = RouteLabel::Refused;
                Err(Refusal::Route(reason))
            }
            RouteClass::ModelCall(spec) => {
                ctx.route = RouteLabel::ModelCall;
                let cap = if spec.carries_histories() {
                    config.access.max_unlisted_body_bytes.get()
                } else {
                    config.access.max_body_bytes.get()
                };
                let store = &self.store;
                let generation = self.store.generation();
                let response = spec.response;
                let budget = &self.body_budget;
                let guarded = self
                    .guard(config, ctx, req, Pending::Refused, |req| async move {
                        let (parts, body) = req.into_parts();
                        let buffered = budget.read_json(cap, &parts.headers, body).await?;
                        // A route that must name its model refuses an empty
                        // list here (`missing_model`): the server would pick
                        // one we cannot see.
                        let models =
                            requested_models(config, store, buffered.bytes.clone(), spec).await?;
                        Ok((
                            Request::from_parts(parts, buffered.into_body()),
                            Some(models),
                        ))
                    })
                    .await?;
                match (response, guarded.who) {
                    (Some(shape), Some(who)) => {
                        Box::pin(self.filtered(config, ctx, guarded.req, &who, shape, generation))
                            .await
                    }
                    _ => self.forward(config, ctx, guarded.req).await,
                }
            }
            RouteClass::ModelList(shape) => {
                ctx.route = RouteLabel::ModelList;
                Box::pin(self.model_list(config, ctx, req, shape)).await
            }
        }
    }

    /// The guard step, the same for every guarded route: identify → bypass →
    /// authorize. `inspect` reads what the request names (after the user is
    /// known, so no stranger's body is buffered); `None` means there is
    /// nothing to authorize (lists are filtered instead).
    async fn guard<F, Fut>(
        &self,
        config: &Config,
        ctx: &mut Ctx,
        req: Request<Body>,
        pending: Pending,
        inspect: F,
    ) -> Result<Guarded, Refusal>
    where
        F: FnOnce(Request<Body>) -> Fut,
        Fut: Future<Output = Result<(Request<Body>, Option<Vec<String>>), Refusal>>,
    {
        let who = match guard::identify(config, &self.store, &self.metrics, req.headers()).await {
            Err(Refusal::AccountPending { user_id }) if pending == Pending::SeesNothing => {
                Identity::nobody(user_id)
            }
            other => other?,
        };
        ctx.user = Some(who.user_id.clone());
        if guard::bypasses(config, &self.metrics, Gate::Ingress, &who) {
            ctx.verdict = Some(Verdict::Bypassed);
            return Ok(Guarded { req, who: None });
        }
        let (req, models) = inspect(req).await?;
        if let Some(models) = models {
            ctx.verdict = Some(
                guard::authorize(&self.store, &self.metrics, Gate::Ingress, &who, &models).await?,
            );
        }
        Ok(Guarded {
            req,
            who: Some(who),
        })
    }

    /// Open WebUI's Socket.IO connection: it authenticates inside the
    /// tunnel, so it is never refused here, but what it pushes is redacted
    /// for the user its credential names (someone who may use nothing when
    /// it names nobody valid; an admin bypass sees it unchanged).
    /// Without WebSocket support Open WebUI serves Socket.IO by long
    /// polling: each GET answers with packets, redacted the same way.
    async fn socket(
        &self,
        config: &Config,
        ctx: &mut Ctx,
        mut req: Request<Body>,
        upgrading: bool,
    ) -> Result<Response<Body>, Refusal> {
        let who = if carries_credential(config, req.headers()) {
            // Never refused here, so a stale cookie is no access decision.
            guard::authenticate(config, &self.store, req.headers())
                .await
                .unwrap_or_else(|_| Identity::nobody(String::new()))
        } else {
            Identity::nobody(String::new())
        };
        if !who.user_id.is_empty() {
            ctx.user = Some(who.user_id.clone());
        }
        if guard::bypasses(config, &self.metrics, Gate::Ingress, &who) {
            ctx.verdict = Some(Verdict::Bypassed);
            return self.forward(config, ctx, req).await;
        }
        let filter = SocketFilter {
            store: self.store.clone(),
            access: who.access.clone(),
        };
        if upgrading {
            // Uncompressed frames, so each message can be read and rewritten.
            req.headers_mut().remove(header::SEC_WEBSOCKET_EXTENSIONS);
            ctx.socket = Some(filter);
            return self.forward(config, ctx, req).await;
        }
        req.headers_mut().insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("identity"),
        );
        let resp = self.forward(config, ctx, req).await?;
        if !resp.status().is_success() {
            return Ok(resp);
        }
        let (mut parts, body) = resp.into_parts();
        let cap = config.access.max_list_bytes.get();
        let bytes = match body::collect_limited(body, cap).await {
            Ok(b) => b,
            Err(body::CollectError::TooLarge) => {
                return Err(Refusal::UnfilterableList(FilterError::TooLarge))
            }
            Err(body::CollectError::Body(e)) => return Err(Refusal::ListUnreadable(e.to_string())),
        };
        if parts.headers.contains_key(header::CONTENT_ENCODING) {
            return Err(Refusal::UnfilterableList(FilterError::UnsupportedEncoding(
                "a compressed Socket.IO poll".into(),
            )));
        }
        let text = String::from_utf8(bytes.to_vec())
            .map_err(|_| Refusal::ListUnreadable("a Socket.IO poll is not text".into()))?;
        let mut packets = Vec::new();
        // Engine.IO 4 separates the packets of one poll with U+001E.
        for packet in text.split('\u{1e}') {
            if let Some(packet) = filter.apply(packet.to_owned()).await {
                packets.push(packet);
            }
        }
        let out = packets.join("\u{1e}");
        parts
            .headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(out.len()));
        Ok(Response::from_parts(parts, body::full(out)))
    }

    /// Defence in depth: a JSON body on a route the table does not know is
    /// still checked when it names a top-level `model` — the body of a
    /// known user only.
    ///
    /// Who asks is settled from the headers before a byte of the body is
    /// read. A request without a valid credential (signing in or up, or
    /// with a stale cookie) is someone Open WebUI also serves as nobody, and
    /// it calls no model for nobody (the egress gate refuses a call without
    /// a verified user), so it is streamed as is: a stranger's body is never
    /// buffered. A credential that cannot be checked right now (the store
    /// or the session key unavailable) is refused as on any guarded route.
    async fn unlisted_json(
        &self,
        config: &Config,
        ctx: &mut Ctx,
        req: Request<Body>,
    ) -> Result<Response<Body>, Refusal> {
        let who = match guard::authenticate(config, &self.store, req.headers()).await {
            Ok(who) => who,
            Err(refusal) if is_nobody(&refusal) => {
                ctx.route = RouteLabel::Pass;
                return self.forward(config, ctx, req).await;
            }
            Err(refusal) => {
                guard::record_refusal(
                    &self.metrics,
                    Gate::Ingress,
                    &refusal,
                    None,
                    std::time::Duration::ZERO,
                );
                return Err(refusal);
            }
        };
        ctx.user = Some(who.user_id.clone());
        if guard::bypasses(config, &self.metrics, Gate::Ingress, &who) {
            ctx.verdict = Some(Verdict::Bypassed);
            return self.forward(config, ctx, req).await;
        }
        let (parts, body) = req.into_parts();
        let buffered = self
            .body_budget
            .read_json(
                config.access.max_unlisted_body_bytes.get(),
                &parts.headers,
                body,
            )
            .await?;
        let models = unlisted_model(config, buffered.bytes.clone()).await?;
        let req = Request::from_parts(parts, buffered.into_body());
        if models.is_empty() {
            ctx.route = RouteLabel::Pass;
            return self.forward(config, ctx, req).await;
        }
        ctx.verdict =
            Some(guard::authorize(&self.store, &self.metrics, Gate::Ingress, &who, &models).await?);
        self.forward(config, ctx, req).await
    }

    /// A route whose response lists models: forward, then filter the list
    /// for the user (an admin bypass sees it whole).
    async fn model_list(
        &self,
        config: &Config,
        ctx: &mut Ctx,
        req: Request<Body>,
        shape: ListShape,
    ) -> Result<Response<Body>, Refusal> {
        // Read before identifying: see `ListFilter::generation`.
        let generation = self.store.generation();
        let visitor = !carries_credential(config, req.headers());
        let (req, who) = match shape.visitors() {
            // The login page: Open WebUI shows visitors no model ids.
            Visitors::Unchanged if visitor => return self.forward(config, ctx, req).await,
            // An open shared chat: shown to visitors without model ids.
            Visitors::SeeNothing if visitor => (req, Identity::nobody(String::new())),
            visitors => {
                let pending = if visitors == Visitors::Refused {
                    Pending::Refused
                } else {
                    Pending::SeesNothing
                };
                let guarded = self
                    .guard(
                        config,
                        ctx,
                        req,
                        pending,
                        |req| async move { Ok((req, None)) },
                    )
                    .await?;
                let Some(who) = guarded.who else {
                    // Only an admin bypasses, and an admin's list is the
                    // one that teaches (`proxy::learn`).
                    let teaches = learn::ingress_teaches(&routing_path(&ctx.path), true);
                    let resp = self.forward(config, ctx, guarded.req).await?;
                    if !teaches {
                        return Ok(resp);
                    }
                    return Ok(learn::learn_while_streaming(
                        &self.store,
                        KnownSource::Ingress,
                        resp,
                        learn::learn_cap(config),
                    ));
                };
                (guarded.req, who)
            }
        };
        self.filtered(config, ctx, req, &who, shape, generation)
            .await
    }

    /// Forwards, then rewrites the response so it names only the models
    /// `who` may use. `generation` was read before `who` was identified.
    async fn filtered(
        &self,
        config: &Config,
        ctx: &mut Ctx,
        mut req: Request<Body>,
        who: &Identity,
        shape: ListShape,
        generation: u64,
    ) -> Result<Response<Body>, Refusal> {
        // Ask for a body we can read; decoding stays as a fallback.
        req.headers_mut().insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("identity"),
        );
        let is_head = req.method() == Method::HEAD;
        let resp = self.forward(config, ctx, req).await?;
        // Every status is read: an error page can carry a model list too
        // (a 500 once showed a forbidden id); `filter_response` passes an
        // error through unchanged when it names no models.
        if is_head {
            return Ok(resp);
        }
        if let Some(line_shape) = shape.line_shape().filter(|_| is_ndjson(&resp)) {
            // A stream of any length (an export of every chat): redacted
            // line by line as it passes, never buffered whole.
            return redact_lines(
                &self.store,
                self.metrics.clone(),
                who,
                line_shape,
                resp,
                config.access.max_unlisted_body_bytes.get(),
            )
            .await;
        }
        // The body waits in the connection's buffers until a slot frees.
        let _slot = self
            .list_filters
            .acquire()
            .await
            .map_err(|_| Refusal::UpstreamUnavailable("list filter closed".into()))?;
        let lf = ListFilter {
            store: &self.store,
            metrics: &self.metrics,
            cache: &self.list_cache,
            generation,
            cap: if shape.is_document() {
                config.access.max_unlisted_body_bytes.get()
            } else {
                config.access.max_list_bytes.get()
            },
            read_timeout: config.timeouts.list_body,
            teaches: learn::ingress_teaches(&routing_path(&ctx.path), who.admin),
        };
        // The slot is given back when this returns, the deadline included:
        // a list whose body stalls costs its slot for `list_body` at most.
        filter_response(lf, who, shape, resp).await
    }
}

impl crate::server::Handler for Proxy {
    fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        peer: SocketAddr,
    ) -> impl Future<Output = Response<Body>> + Send {
        Proxy::handle(self, req, peer)
    }

    fn config(&self) -> Arc<Config> {
        self.config.load_full()
    }

    fn name(&self) -> &'static str {
        "ingress"
    }

    fn max_connections(&self) -> usize {
        self.config.load().startup.max_connections.get()
    }

    fn tunnels(&self) -> Option<&tokio_util::task::TaskTracker> {
        Some(&self.tunnels)
    }
}

/// A failed identification that leaves the request as Open WebUI would
/// see it: from nobody. Failures of our own (store, session key) and
/// ambiguous credentials are not: those are refused.
fn is_nobody(refusal: &Refusal) -> bool {
    use crate::gate::credential::CredentialError;
    use crate::gate::jwt::JwtError;
    match refusal {
        Refusal::NotAuthenticated
        | Refusal::Credential(CredentialError::Empty(_))
        | Refusal::UnknownApiKey
        | Refusal::ApiKeyExpired
        | Refusal::AccountPending { .. } => true,
        Refusal::Session(e) => !matches!(e, JwtError::KeyFile { .. } | JwtError::EmptyKeyFile(_)),
        _ => false,
    }
}

/// Whether the request carries any credential at all (a malformed or
/// ambiguous one counts: the guard refuses it).
fn carries_credential(config: &Config, headers: &http::HeaderMap) -> bool {
    !matches!(
        extract_credential(headers, &config.access.api_key_header),
        Ok(None)
    )
}
