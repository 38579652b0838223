//! `modelgate demo`: the product working in one command. An in-process
//! OpenAI-compatible fake upstream, a temporary database with two
//! organizations, the real proxy in front, and ready-to-paste curl commands.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::admin::{self, AdminState};
use crate::config::{Config, FileConfig};
use crate::metrics::Metrics;
use crate::proxy::body::{boxed, full, Body, BoxError};
use crate::proxy::Proxy;
use crate::store::webui_fixture::create_open_webui_tables;
use crate::store::{admin as store_admin, ensure_schema, AccessStore};

/// The demo's models: who may use which is set up in [`seed`].
const MODELS: [&str; 4] = [
    "openai/gpt-4o",
    "anthropic/claude-3.5-sonnet",
    "meta-llama/llama-3.1-70b",
    "mistralai/mistral-large",
];

/// A running demo.
pub struct Demo {
    pub proxy: SocketAddr,
    pub admin: SocketAddr,
    pub upstream: SocketAddr,
    /// (user, organization, session token)
    pub users: Vec<(String, String, String)>,
    /// The demo's database: the CLI can be tried on it while it runs.
    pub database: std::path::PathBuf,
    /// Removed when the demo ends (dropped on Ctrl-C and on SIGTERM).
    _dir: tempfile::TempDir,
}

/// Starts everything on 127.0.0.1 (ports chosen by the OS).
pub async fn start() -> anyhow::Result<Demo> {
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let db = dir.path().join("webui.db");
    seed(&db)?;
    let secret = uuid::Uuid::new_v4().simple().to_string();

    let upstream = spawn_fake_upstream().await?;
    let file = FileConfig {
        listen: "127.0.0.1:0".into(),
        admin_listen: "127.0.0.1:0".into(),
        upstream: format!("http://{upstream}"),
        database: Some(db.clone()),
        ..FileConfig::default()
    };
    let config = Config::from_file(file, &|k| (k == "WEBUI_SECRET_KEY").then(|| secret.clone()))?;
    let live = Arc::new(ArcSwap::from_pointee(config));
    let metrics = Arc::new(Metrics::new());
    let store = AccessStore::open(live.load().startup.store.clone());
    let proxy = Proxy::new(live.clone(), store.clone(), metrics.clone());

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let proxy_addr = listener.local_addr()?;
    tokio::spawn(crate::server::serve(
        listener,
        proxy,
        std::future::pending(),
    ));
    let admin_listener = TcpListener::bind("127.0.0.1:0").await?;
    let admin_addr = admin_listener.local_addr()?;
    let state = Arc::new(AdminState {
        config: live,
        store,
        metrics,
        started: Instant::now(),
    });
    tokio::spawn(admin::serve(admin_listener, state, std::future::pending()));

    let key = jsonwebtoken::EncodingKey::from_secret(secret.as_bytes());
    let mut users = Vec::new();
    for (user, org) in [("alice", "acme"), ("bob", "globex")] {
        let token = jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &serde_json::json!({"id": user, "typ": "session"}),
            &key,
        )?;
        users.push((user.to_owned(), org.to_owned(), token));
    }
    Ok(Demo {
        proxy: proxy_addr,
        admin: admin_addr,
        upstream,
        users,
        database: db,
        _dir: dir,
    })
}

/// Two organizations with different models, and Open WebUI's `user` and
/// `model` tables as a real deployment has them (with one preset).
fn seed(db: &Path) -> anyhow::Result<()> {
    let conn = store_admin::open_writer(db)?;
    create_open_webui_tables(&conn)?;
    conn.execute_batch(
        "INSERT INTO user (id, email, role, name) VALUES ('alice', 'alice@acme.test', 'user', 'Alice'),
                                                          ('bob', 'bob@globex.test', 'user', 'Bob');
         INSERT INTO model (id, user_id, base_model_id, name, params, meta, is_active)
             VALUES ('acme-writer', 'alice', 'openai/gpt-4o', 'Acme Writer', '{}', '{}', 1);",
    )?;
    ensure_schema(&conn)?;
    let actor = "demo";
    store_admin::create_org(&conn, "acme", "Acme Corp", actor)?;
    store_admin::create_org(&conn, "globex", "Globex", actor)?;
    store_admin::add_member(
        &conn,
        "acme",
        "alice",
        store_admin::MemberRole::Member,
        actor,
    )?;
    store_admin::add_member(
        &conn,
        "globex",
        "bob",
        store_admin::MemberRole::Member,
        actor,
    )?;
    for m in &MODELS[..2] {
        store_admin::enable_model(&conn, "acme", m, actor)?;
    }
    for m in &MODELS[2..] {
        store_admin::enable_model(&conn, "globex", m, actor)?;
    }
    Ok(())
}

async fn spawn_fake_upstream() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let svc = service_fn(|req| async move { Ok::<_, Infallible>(fake(req).await) });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok(addr)
}

/// Just enough of Open WebUI's API to show the gate at work.
async fn fake(req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_owned();
    match path.as_str() {
        "/api/models" | "/api/v1/models" | "/openai/models" => {
            let mut data: Vec<serde_json::Value> = MODELS
                .iter()
                .map(|id| serde_json::json!({"id": id, "name": id, "object": "model", "owned_by": "openrouter"}))
                .collect();
            data.push(serde_json::json!({"id": "acme-writer", "name": "Acme Writer", "object": "model", "info": {"base_model_id": "openai/gpt-4o"}}));
            json(StatusCode::OK, serde_json::json!({"data": data}))
        }
        "/api/chat/completions" | "/api/v1/chat/completions" | "/openai/chat/completions" => {
            let body = req
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let model = v["model"].as_str().unwrap_or("unknown").to_owned();
            if v["stream"].as_bool() == Some(true) {
                sse(model)
            } else {
                json(
                    StatusCode::OK,
                    serde_json::json!({
                        "id": "chatcmpl-demo", "object": "chat.completion", "model": model,
                        "choices": [{"index": 0, "finish_reason": "stop",
                                     "message": {"role": "assistant", "content": format!("Hello from {model}!")}}]
                    }),
                )
            }
        }
        _ => json(
            StatusCode::NOT_FOUND,
            serde_json::json!({"detail": "Not Found"}),
        ),
    }
}

fn sse(model: String) -> Response<Body> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(4);
    tokio::spawn(async move {
        for word in ["Hello", " from", " ", model.as_str(), "!"] {
            let chunk =
                serde_json::json!({"choices": [{"delta": {"content": word}}], "model": model});
            if tx
                .send(Ok(Frame::data(Bytes::from(format!("data: {chunk}\n\n")))))
                .await
                .is_err()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        let _ = tx
            .send(Ok(Frame::data(Bytes::from_static(b"data: [DONE]\n\n"))))
            .await;
    });
    let stream = StreamBody::new(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)));
    let mut resp = Response::new(boxed(stream));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/event-stream"),
    );
    resp
}

fn json(status: StatusCode, v: serde_json::Value) -> Response<Body> {
    let mut resp = Response::new(full(Bytes::from(v.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

/// The text `modelgate demo` prints.
pub fn instructions(d: &Demo) -> String {
    let (alice, bob) = (&d.users[0].2, &d.users[1].2);
    let p = d.proxy;
    format!(
        "modelgate demo: proxy http://{p}  admin http://{admin}  fake upstream http://{up}\n\
         \n\
         Two organizations: acme (alice) may use openai/gpt-4o and anthropic/claude-3.5-sonnet\n\
         (and the preset acme-writer built on gpt-4o); globex (bob) may use the llama and mistral models.\n\
         \n\
         # 1. Alice's model list shows only Acme's models (bob's: only Globex's):\n\
         curl -s http://{p}/api/models -H 'Authorization: Bearer {alice}'\n\
         \n\
         # 2. An allowed call, streamed:\n\
         curl -sN http://{p}/api/chat/completions -H 'Authorization: Bearer {alice}' \\\n\
           -H 'Content-Type: application/json' -d '{{\"model\":\"openai/gpt-4o\",\"stream\":true,\"messages\":[]}}'\n\
         \n\
         # 3. A refused call (403, never reaches the upstream):\n\
         curl -s http://{p}/api/chat/completions -H 'Authorization: Bearer {alice}' \\\n\
           -H 'Content-Type: application/json' -d '{{\"model\":\"meta-llama/llama-3.1-70b\",\"messages\":[]}}'\n\
         \n\
         # 4. Bob's list, and what the gateway counted:\n\
         curl -s http://{p}/api/models -H 'Authorization: Bearer {bob}'\n\
         curl -s http://{admin}/metrics | grep modelgate_decisions_total\n\
         \n\
         # 5. The operator CLI on the demo's database (revoke, and try 2. again):\n\
         modelgate --db {db} report --org acme\n\
         modelgate --db {db} model disable acme openai/gpt-4o\n\
         \n\
         Press Ctrl-C to stop (the temporary database is removed).\n",
        admin = d.admin,
        up = d.upstream,
        db = d.database.display(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    async fn call(req: Request<Body>) -> (StatusCode, serde_json::Value) {
        let client = Client::builder(TokioExecutor::new()).build_http::<Body>();
        let resp = client.request(req).await.unwrap();
        let status = resp.status();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
        )
    }

    #[tokio::test]
    async fn the_demo_shows_allowed_refused_and_filtered() {
        let d = start().await.unwrap();
        let alice = &d.users[0].2;
        let chat = |model: &str| {
            Request::post(format!("http://{}/api/chat/completions", d.proxy))
                .header("authorization", format!("Bearer {alice}"))
                .header("content-type", "application/json")
                .body(full(format!("{{\"model\":\"{model}\"}}")))
                .unwrap()
        };
        let (s, v) = call(chat("openai/gpt-4o")).await;
        assert_eq!(s, 200);
        assert_eq!(
            v["choices"][0]["message"]["content"],
            "Hello from openai/gpt-4o!"
        );
        let (s, v) = call(chat("meta-llama/llama-3.1-70b")).await;
        assert_eq!(s, 403);
        assert_eq!(v["error"]["code"], "model_not_allowed");
        let list = Request::get(format!("http://{}/api/models", d.proxy))
            .header("authorization", format!("Bearer {alice}"))
            .body(full(""))
            .unwrap();
        let (s, v) = call(list).await;
        assert_eq!(s, 200);
        let ids: Vec<&str> = v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap())
            .collect();
        assert_eq!(
            ids,
            vec![
                "openai/gpt-4o",
                "anthropic/claude-3.5-sonnet",
                "acme-writer"
            ]
        );
        let text = instructions(&d);
        assert!(text.contains(&d.proxy.to_string()) && text.contains(alice.as_str()));
    }
}
