//! The admin listener: health and (later) metrics, on its own port so no
//! upstream path is ever shadowed.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::error::json_error;
use crate::proxy::body::{full, Body};

/// What the admin endpoints can see.
pub struct AdminState {
    pub config: Arc<ArcSwap<Config>>,
    pub started: Instant,
}

/// Serves admin requests until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AdminState>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => return,
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(route(&state, req).await) }
            });
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10));
            if let Err(e) = builder
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %e, "admin connection error");
            }
        });
    }
}

async fn route(state: &AdminState, req: Request<Incoming>) -> Response<Body> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return json_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "invalid_request_error",
            "Only GET is served here.",
        );
    }
    match req.uri().path() {
        "/health" => json(StatusCode::OK, &serde_json::json!({"status": "ok"})),
        "/health/ready" => ready(state).await,
        _ => json_error(
            StatusCode::NOT_FOUND,
            "not_found",
            "not_found_error",
            "No such admin endpoint.",
        ),
    }
}

/// Ready when the upstream accepts a TCP connection.
async fn ready(state: &AdminState) -> Response<Body> {
    let config = state.config.load_full();
    let upstream = upstream_reachable(&config).await;
    let ok = upstream.is_ok();
    let body = serde_json::json!({
        "status": if ok { "ready" } else { "not_ready" },
        "checks": {
            "upstream": match &upstream { Ok(()) => "ok".to_string(), Err(e) => e.clone() },
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

async fn upstream_reachable(config: &Config) -> Result<(), String> {
    let authority = config
        .upstream
        .authority()
        .map(|a| a.to_string())
        .ok_or_else(|| "no upstream authority".to_string())?;
    let authority = if config.upstream.port_u16().is_none() {
        format!("{authority}:80")
    } else {
        authority
    };
    match tokio::time::timeout(
        config.timeouts.connect,
        tokio::net::TcpStream::connect(&authority),
    )
    .await
    {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("unreachable: {e}")),
        Err(_) => Err("connect timed out".into()),
    }
}

pub fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut resp = Response::new(full(Bytes::from(value.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}
