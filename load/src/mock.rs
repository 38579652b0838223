//! A fast fake of the Open WebUI routes the load mix touches: model lists,
//! chat completions (JSON or SSE) and the socket.io WebSocket (echo). It
//! does as little work per request as possible (the list body is built
//! once), so that measured latency is the proxy's, not the fake's.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::header::{CONNECTION, CONTENT_TYPE, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, UPGRADE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;

use crate::models::model_list_body;

/// Chat request bodies above this are refused (the load mix sends ~200 B).
const MAX_CHAT_BODY: usize = 1 << 20;

type Body = UnsyncBoxBody<Bytes, Infallible>;

#[derive(Debug, Clone)]
pub struct MockConfig {
    /// Entries in every model list.
    pub models: usize,
    /// Content chunks in a streamed completion (before the final chunk).
    pub tokens: usize,
    /// Pause between streamed chunks; the first one is sent at once.
    pub token_delay: Duration,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            models: 300,
            tokens: 20,
            token_delay: Duration::ZERO,
        }
    }
}

struct Mock {
    cfg: MockConfig,
    list: Bytes,
}

/// Serves until the task is dropped or aborted. One task per connection;
/// connection errors are the client's business and only end that task.
pub async fn serve(listener: TcpListener, cfg: MockConfig) -> std::io::Result<()> {
    let mock = Arc::new(Mock {
        list: Bytes::from(model_list_body(cfg.models)),
        cfg,
    });
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(conn) => conn,
            // EMFILE and friends: back off briefly instead of spinning.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let mock = Arc::clone(&mock);
        tokio::spawn(async move {
            let svc = service_fn(move |req| handle(Arc::clone(&mock), req));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .with_upgrades()
                .await;
        });
    }
}

async fn handle(mock: Arc<Mock>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path();
    let resp = match (req.method(), path) {
        (&Method::GET, "/api/models" | "/api/v1/models" | "/openai/models") => {
            json_response(StatusCode::OK, mock.list.clone())
        }
        (
            &Method::POST,
            "/api/chat/completions" | "/api/v1/chat/completions" | "/openai/chat/completions",
        ) => chat(&mock, req).await,
        (&Method::GET, "/ws/socket.io/" | "/ws/socket.io") => websocket(req),
        (&Method::GET, "/health") => json_response(StatusCode::OK, r#"{"status":true}"#),
        _ => json_response(StatusCode::NOT_FOUND, r#"{"detail":"Not Found"}"#),
    };
    Ok(resp)
}

fn json_response(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut resp = Response::new(Full::new(body.into()).boxed_unsync());
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

#[derive(Deserialize)]
struct ChatRequest {
    model: String,
    #[serde(default)]
    stream: bool,
}

async fn chat(mock: &Mock, req: Request<Incoming>) -> Response<Body> {
    let body = match Limited::new(req.into_body(), MAX_CHAT_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return json_response(StatusCode::PAYLOAD_TOO_LARGE, r#"{"detail":"too large"}"#),
    };
    let chat: ChatRequest = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(_) => return json_response(StatusCode::BAD_REQUEST, r#"{"detail":"bad body"}"#),
    };
    // A JSON string literal of the model, so it can be spliced into the
    // pre-shaped responses below without building a Value per chunk.
    let model = serde_json::to_string(&chat.model).unwrap_or_else(|_| "\"\"".into());
    if chat.stream {
        return sse(mock, model);
    }
    let body = format!(
        r#"{{"id":"chatcmpl-mock","object":"chat.completion","created":1700000000,"model":{model},"choices":[{{"index":0,"message":{{"role":"assistant","content":"Hello! This is the load-test upstream answering a non-streaming request."}},"finish_reason":"stop"}}],"usage":{{"prompt_tokens":12,"completion_tokens":14,"total_tokens":26}}}}"#
    );
    json_response(StatusCode::OK, body)
}

fn sse(mock: &Mock, model: String) -> Response<Body> {
    let tokens = mock.cfg.tokens;
    let delay = mock.cfg.token_delay;
    // State: next chunk index; `tokens` = the finish chunk, +1 = [DONE].
    let stream = futures_util::stream::unfold(0usize, move |i| {
        let model = model.clone();
        async move {
            if i > tokens + 1 {
                return None;
            }
            if i > 0 && !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let text = if i < tokens {
                format!(
                    "data: {{\"id\":\"chatcmpl-mock\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":{model},\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"tok{i} \"}},\"finish_reason\":null}}]}}\n\n"
                )
            } else if i == tokens {
                format!(
                    "data: {{\"id\":\"chatcmpl-mock\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":{model},\"choices\":[{{\"index\":0,\"delta\":{{}},\"finish_reason\":\"stop\"}}]}}\n\n"
                )
            } else {
                "data: [DONE]\n\n".to_string()
            };
            Some((Ok::<_, Infallible>(Frame::data(Bytes::from(text))), i + 1))
        }
    });
    let mut resp = Response::new(StreamBody::new(stream).boxed_unsync());
    let h = resp.headers_mut();
    h.insert(
        CONTENT_TYPE,
        http::HeaderValue::from_static("text/event-stream"),
    );
    h.insert("cache-control", http::HeaderValue::from_static("no-cache"));
    resp
}

/// Answers the upgrade, then echoes every text/binary message back.
fn websocket(mut req: Request<Incoming>) -> Response<Body> {
    let is_ws = req
        .headers()
        .get(UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let key = req.headers().get(SEC_WEBSOCKET_KEY).cloned();
    let (true, Some(key)) = (is_ws, key) else {
        return json_response(StatusCode::BAD_REQUEST, r#"{"detail":"websocket only"}"#);
    };
    let accept = derive_accept_key(key.as_bytes());
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let mut ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        while let Some(Ok(msg)) = ws.next().await {
            if msg.is_close() {
                break;
            }
            if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                break;
            }
        }
    });
    let mut resp = Response::new(Full::new(Bytes::new()).boxed_unsync());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(CONNECTION, http::HeaderValue::from_static("Upgrade"));
    h.insert(UPGRADE, http::HeaderValue::from_static("websocket"));
    if let Ok(v) = http::HeaderValue::from_str(&accept) {
        h.insert(SEC_WEBSOCKET_ACCEPT, v);
    }
    resp
}
