//! The admin listener: health, readiness, diagnostics, metrics and the
//! management API ([`api`], under `/api/`), on its own port so no upstream
//! path is ever shadowed.

pub mod api;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::error::Refusal;
use crate::gate::credential::bearer_token;
use crate::metrics::{self, Metrics, StoreSnapshot};
use crate::proxy::body::{full, Body};
use crate::proxy::guard;
use crate::store::{AccessStore, StoreStats};

/// What the admin endpoints can see.
pub struct AdminState {
    pub config: Arc<ArcSwap<Config>>,
    pub store: AccessStore,
    pub metrics: Arc<Metrics>,
    pub started: Instant,
}

/// Scrapes and health checks: a handful at once is plenty, and the limit
/// keeps a flood on this port from taking memory the proxy needs.
const ADMIN_MAX_CONNECTIONS: usize = 64;

impl crate::server::Handler for AdminState {
    async fn handle(self: Arc<Self>, req: Request<Incoming>, _peer: SocketAddr) -> Response<Body> {
        route(&self, req).await
    }

    fn config(&self) -> Arc<Config> {
        self.config.load_full()
    }

    fn name(&self) -> &'static str {
        "admin"
    }

    fn max_connections(&self) -> usize {
        ADMIN_MAX_CONNECTIONS
    }
}

/// Serves admin requests until `shutdown` resolves, through the same accept
/// loop as the proxy (connection limit, header deadline, drain).
pub async fn serve(
    listener: TcpListener,
    state: Arc<AdminState>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    crate::server::serve(listener, state, shutdown).await
}

async fn route(state: &AdminState, req: Request<Incoming>) -> Response<Body> {
    // The API has methods besides GET and answers 405 itself.
    if req.uri().path().starts_with(api::PREFIX) {
        return api::handle(state, req).await;
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Refusal::MethodNotAllowed.to_response();
    }
    let path = req.uri().path().to_owned();
    match path.as_str() {
        "/health" => json(StatusCode::OK, &serde_json::json!({"status": "ok"})),
        "/health/ready" => ready(state).await,
        "/metrics" => metrics_text(state, req.headers().get(header::ACCEPT)),
        "/health/detailed" => match require_admin(state, &req).await {
            Ok(_) => detailed(state).await,
            Err(e) => e.to_response(),
        },
        p if p.starts_with("/health/model-access/") => {
            let raw = &p["/health/model-access/".len()..];
            let user_id = percent_encoding::percent_decode_str(raw)
                .decode_utf8_lossy()
                .into_owned();
            if user_id.is_empty() || user_id.contains('/') {
                return Refusal::NotFound.to_response();
            }
            match require_admin(state, &req).await {
                Ok(_) => model_access(state, &user_id).await,
                Err(e) => e.to_response(),
            }
        }
        _ => Refusal::NotFound.to_response(),
    }
}

/// Who passed `require_admin`; the management API records it as the
/// audit actor of its writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// The configured admin token: a shared secret, so no person.
    Token,
    /// An Open WebUI session or API key of this admin user.
    User(String),
}

impl Caller {
    /// `api:token`, or `api:<Open WebUI user id>`; the CLI records
    /// `--actor` (default: the OS user), so the prefix tells the two apart.
    pub fn actor(&self) -> String {
        match self {
            Caller::Token => "api:token".to_string(),
            Caller::User(id) => format!("api:{id}"),
        }
    }
}

/// Admins only: the configured admin token, or an Open WebUI session of a
/// user whose role is `admin`.
pub(crate) async fn require_admin(
    state: &AdminState,
    req: &Request<Incoming>,
) -> Result<Caller, Refusal> {
    let config = state.config.load_full();
    let bearer = bearer_token(req.headers());
    if let (Some(token), Some(expected)) = (bearer, &config.access.admin_token) {
        if constant_time_eq(token.as_bytes(), expected.as_bytes()) {
            return Ok(Caller::Token);
        }
    }
    // Not `identify`: a failed admin login is no model-access decision, and
    // counting it would let health probes move `decisions_total`.
    let who = guard::authenticate(&config, &state.store, req.headers()).await?;
    if who.admin {
        Ok(Caller::User(who.user_id))
    } else {
        Err(Refusal::AdminRequired)
    }
}

/// `subtle` (already linked through rustls) instead of a hand-written
/// fold: its comparison is written to defeat the optimizer turning it back
/// into an early exit. The length is not secret; a different length
/// returns false at once.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

/// Ready when the access data is readable and both upstreams (Open WebUI,
/// and the model API the egress forwards to) accept a TCP connection;
/// otherwise 503 naming the part that failed.
async fn ready(state: &AdminState) -> Response<Body> {
    let config = state.config.load_full();
    let egress_origin = &config.egress.upstream.origin;
    let (upstream, egress, store) = tokio::join!(
        reachable(&config, &config.upstream),
        reachable(&config, egress_origin),
        state.store.ping()
    );
    let ok = upstream.is_ok() && egress.is_ok() && store.is_ok();
    let body = serde_json::json!({
        "status": if ok { "ready" } else { "not_ready" },
        "checks": {
            "upstream": upstream.err().unwrap_or_else(|| "ok".into()),
            "egress_upstream": egress.err().unwrap_or_else(|| "ok".into()),
            "store": store.err().map(|e| e.to_string()).unwrap_or_else(|| "ok".into()),
        },
    });
    json(
        if ok {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        &body,
    )
}

async fn reachable(config: &Config, uri: &http::Uri) -> Result<(), String> {
    let host = uri.host().ok_or_else(|| "no upstream host".to_string())?;
    let host = crate::proxy::pool::socket_host(host);
    let default_port = if uri.scheme_str() == Some("https") {
        443
    } else {
        80
    };
    let port = uri.port_u16().unwrap_or(default_port);
    match tokio::time::timeout(
        config.startup.connect_timeout,
        tokio::net::TcpStream::connect((host, port)),
    )
    .await
    {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("{host}:{port} unreachable: {e}")),
        Err(_) => Err(format!("{host}:{port}: connect timed out")),
    }
}

/// Converts the store's counters for the metrics registry.
pub fn store_snapshot(stats: &StoreStats, watcher_polls: u64) -> StoreSnapshot {
    StoreSnapshot {
        entries: stats.entries,
        hits: stats.hits,
        misses: stats.misses,
        evictions: stats.evictions,
        invalidations: stats.invalidations,
        data_version: stats.data_version.map_or(0, |v| v.max(0) as u64),
        policy_age_seconds: policy_age(stats),
        query_errors: 0,
        watcher_polls,
        up: stats.last_error.is_none(),
    }
}

/// The PostgreSQL listener's counters for the metrics registry.
pub fn listener_snapshot(l: &crate::store::ListenerStats) -> metrics::ListenerSnapshot {
    use crate::store::ListenerState as S;
    metrics::ListenerSnapshot {
        state: match l.state {
            S::Connecting => "connecting",
            S::Syncing => "syncing",
            S::Listening => "listening",
            S::Reconnecting => "reconnecting",
        },
        reconnects: l.reconnects,
        notifications: l.notifications,
        missed_changes: l.missed_changes,
    }
}

fn policy_age(stats: &StoreStats) -> f64 {
    SystemTime::now()
        .duration_since(stats.last_change)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// `/metrics` in the format the `Accept` header asks for: OpenMetrics for
/// Prometheus (which asks for it first), the Prometheus text format 0.0.4
/// for `text/plain`, `promtool check metrics` and a bare `curl`.
fn metrics_text(state: &AdminState, accept: Option<&HeaderValue>) -> Response<Body> {
    let stats = state.store.stats();
    state
        .metrics
        .publish_listener(stats.listener.as_ref().map(listener_snapshot));
    state
        .metrics
        .publish_store(store_snapshot(&stats, state.store.watcher_polls()));
    let format = metrics::Format::negotiate(accept);
    let mut resp = Response::new(full(Bytes::from(state.metrics.encode_as(format))));
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    headers.insert(header::VARY, HeaderValue::from_static("accept"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

async fn detailed(state: &AdminState) -> Response<Body> {
    let config = state.config.load_full();
    let stats = state.store.stats();
    let store = state.store.ping().await;
    let body = serde_json::json!({
        "status": if store.is_ok() { "ok" } else { "degraded" },
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": state.started.elapsed().as_secs(),
        "config": {
            "listen": config.startup.listen.to_string(),
            "admin_listen": config.startup.admin_listen.to_string(),
            "upstream": config.upstream.to_string(),
            "egress_listen": config.startup.egress_listen.to_string(),
            "egress_upstream": format!("{}{}", config.egress.upstream.origin, config.egress.upstream.base_path.trim_start_matches('/')),
            "egress_user_key_configured": config.egress.jwt.is_some(),
            "egress_trusts_plain_user_headers": config.egress.trust_plain_user_headers,
            "egress_system_models": config.egress.system_models.iter().collect::<Vec<_>>(),
            "database": config.startup.database.to_string(),
            "config_file": config.source.as_ref().map(|p| p.display().to_string()),
            "enforcing": config.access.enforcing(),
            "model_filter_enabled": config.access.enabled,
            "bypass_model_access_control": config.access.bypass_model_access_control,
            "bypass_admin_access_control": config.access.bypass_admin_access_control,
            "session_key_configured": config.access.jwt.is_some(),
            "admin_token_configured": config.access.admin_token.is_some(),
            "max_body_bytes": config.access.max_body_bytes,
            "max_list_bytes": config.access.max_list_bytes,
        },
        "store": {
            "status": store.as_ref().map(|_| "ok".to_string()).unwrap_or_else(|e| e.to_string()),
            "last_error": stats.last_error,
            "data_version": stats.data_version,
            // Milliseconds are plenty for an age; a raw f64 prints 17 digits.
            "policy_age_seconds": (policy_age(&stats) * 1000.0).round() / 1000.0,
            "invalidations": stats.invalidations,
        },
        "cache": {
            "entries": stats.entries,
            "hits": stats.hits,
            "misses": stats.misses,
        },
    });
    json(StatusCode::OK, &body)
}

/// Why a user may use what they may use, read fresh from the database.
async fn model_access(state: &AdminState, user_id: &str) -> Response<Body> {
    let (access, graph) =
        match tokio::join!(state.store.load_user(user_id), state.store.model_graph()) {
            (Ok(a), Ok(g)) => (a, g),
            (Err(e), _) | (_, Err(e)) => return guard::unavailable(e).to_response(),
        };
    let mut access_json = serde_json::to_value(&access).unwrap_or(serde_json::Value::Null);
    if let Some(obj) = access_json.as_object_mut() {
        obj.insert("presets".into(), serde_json::json!(graph.presets()));
        obj.insert(
            "rule".into(),
            serde_json::json!("a model is permitted when an active organization of the user has an active link for its root (the base model its preset chain ends at)"),
        );
    }
    json(StatusCode::OK, &access_json)
}

pub fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    json_bytes(status, Bytes::from(value.to_string()))
}

/// A JSON document already serialized.
fn json_bytes(status: StatusCode, body: Bytes) -> Response<Body> {
    let mut resp = Response::new(full(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// `modelgate health`: asks a running instance's `/health` (for container
/// health checks, which have no curl). A wildcard listen address is probed
/// on loopback.
pub async fn probe(addr: std::net::SocketAddr, timeout: Duration) -> Result<(), String> {
    let mut addr = addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    let client =
        hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http::<Body>();
    let req = Request::get(format!("http://{addr}/health"))
        .body(full(Bytes::new()))
        .map_err(|e| e.to_string())?;
    match tokio::time::timeout(timeout, client.request(req)).await {
        Err(_) => Err(format!("{addr}: no answer within {timeout:?}")),
        Ok(Err(e)) => Err(format!("{addr}: {e}")),
        Ok(Ok(resp)) if resp.status().is_success() => Ok(()),
        Ok(Ok(resp)) => Err(format!("{addr}: status {}", resp.status())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"s3cret", b"s3cret"));
        assert!(!constant_time_eq(b"s3cret", b"s3creT"));
        assert!(!constant_time_eq(b"s3cret", b"s3cre"));
        assert!(!constant_time_eq(b"", b"x"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn actors_name_the_credential() {
        assert_eq!(Caller::Token.actor(), "api:token");
        assert_eq!(Caller::User("u-1".into()).actor(), "api:u-1");
    }

    #[tokio::test]
    async fn probe_reports_a_dead_port() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        assert!(probe(addr, Duration::from_secs(2)).await.is_err());
    }
}
