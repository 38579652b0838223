//! The egress gate (Open WebUI → the model API) against a local HTTPS fake
//! upstream with a self-signed root: identity from Open WebUI's signed user
//! header, every model the outbound body names checked with the ingress's
//! decision, calls for no user limited to system models, responses
//! streamed unchanged.

mod common;
mod enforce_support;

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{Method, Request};
use jsonwebtoken::{EncodingKey, Header};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, Semaphore};

use common::*;
use enforce_support::fixture_db;
use modelgate::config::{Config, FileConfig};
use modelgate::metrics::Metrics;
use modelgate::proxy::body::full;
use modelgate::proxy::egress::Egress;
use modelgate::store::{admin, AccessStore};

/// `FORWARD_USER_INFO_HEADER_JWT_SECRET` shared with "Open WebUI".
const FORWARD_SECRET: &str = "forward-secret";

struct EgressEnv {
    up: FakeUpstream,
    addr: std::net::SocketAddr,
    metrics: Arc<Metrics>,
    db: std::path::PathBuf,
    _dir: Arc<tempfile::TempDir>,
    _ca: tempfile::TempDir,
    _stop: oneshot::Sender<()>,
}

impl EgressEnv {
    async fn start(tweak: impl FnOnce(&mut FileConfig)) -> EgressEnv {
        Self::with(|b| b, tweak).await
    }

    async fn with(
        routes: impl FnOnce(FakeUpstreamBuilder) -> FakeUpstreamBuilder,
        tweak: impl FnOnce(&mut FileConfig),
    ) -> EgressEnv {
        let (ca_pem, acceptor) = test_tls();
        let up = routes(FakeUpstream::builder().tls(acceptor)).start().await;
        let ca = tempfile::tempdir().unwrap();
        let ca_file = ca.path().join("ca.pem");
        std::fs::write(&ca_file, ca_pem).unwrap();
        let (dir, db) = fixture_db();
        let mut file = FileConfig {
            listen: "127.0.0.1:0".into(),
            admin_listen: "127.0.0.1:0".into(),
            database: Some(db.clone()),
            ..FileConfig::default()
        };
        file.egress.listen = "127.0.0.1:0".into();
        file.egress.upstream = format!("https://127.0.0.1:{}/api/v1", up.addr.port());
        file.egress.ca_file = Some(ca_file);
        file.store.watch_interval_ms = 50;
        tweak(&mut file);
        let config = Config::from_file(file, &|k| {
            (k == "FORWARD_USER_INFO_HEADER_JWT_SECRET").then(|| FORWARD_SECRET.to_owned())
        })
        .unwrap();
        let store = AccessStore::open(config.startup.store.clone());
        let metrics = Arc::new(Metrics::new());
        let live = Arc::new(ArcSwap::from_pointee(config));
        let egress = Egress::new(live, store, metrics.clone()).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(modelgate::server::serve(listener, egress, async move {
            let _ = stopped.await;
        }));
        EgressEnv {
            up,
            addr,
            metrics,
            db,
            _dir: dir,
            _ca: ca,
            _stop: stop,
        }
    }

    /// A call as Open WebUI makes it: `path` under the base URL, JSON body,
    /// the given extra headers.
    fn call(
        &self,
        path: &str,
        headers: &[(&str, String)],
        body: &str,
    ) -> Request<modelgate::proxy::body::Body> {
        let mut b = Request::builder()
            .method(Method::POST)
            .uri(format!("http://{}{path}", self.addr))
            .header("content-type", "application/json")
            .header("authorization", "Bearer sk-or-operator-key");
        for (k, v) in headers {
            b = b.header(*k, v.as_str());
        }
        b.body(full(Bytes::from(body.to_owned()))).unwrap()
    }

    async fn chat_as(&self, user: Option<&str>, body: &str) -> Answer {
        let headers: Vec<(&str, String)> = user
            .map(|u| vec![("x-openwebui-user-jwt", forward_jwt(u, 300, FORWARD_SECRET))])
            .unwrap_or_default();
        send(self.call("/chat/completions", &headers, body)).await
    }

    fn upstream_calls(&self) -> Vec<Recorded> {
        self.up.requests_to("/api/v1/chat/completions")
    }
}

/// The header Open WebUI signs for `user` (`utils/headers.py`).
fn forward_jwt(user: &str, expires_in: i64, secret: &str) -> String {
    let now = jsonwebtoken::get_current_timestamp() as i64;
    jsonwebtoken::encode(
        &Header::default(),
        &json!({"sub": user, "email": format!("{user}@example.com"), "name": user,
                "role": "user", "iss": "open-webui", "iat": now, "exp": now + expires_in}),
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

#[tokio::test]
async fn a_permitted_call_reaches_the_upstream_unchanged_under_its_base_path() {
    let env = EgressEnv::start(|_| {}).await;
    let body = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#;
    let a = env.chat_as(Some("alice"), body).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let calls = env.upstream_calls();
    assert_eq!(calls.len(), 1);
    let got = &calls[0];
    assert_eq!(
        got.body,
        body.as_bytes(),
        "the body is forwarded byte for byte"
    );
    assert_eq!(got.headers["authorization"], "Bearer sk-or-operator-key");
    assert!(
        got.headers.contains_key("x-openwebui-user-jwt"),
        "identity headers pass"
    );
    assert_eq!(
        got.headers["host"].to_str().unwrap(),
        format!("127.0.0.1:{}", env.up.addr.port()),
        "the upstream sees its own host name"
    );
    let text = env.metrics.encode();
    assert!(
        text.contains(
            r#"modelgate_requests_total{gate="egress",route="model_call",status="200"} 1"#
        ),
        "{text}"
    );
    assert!(text.contains(
        r#"modelgate_decisions_total{gate="egress",outcome="allowed",organization="A"} 1"#
    ));
}

#[tokio::test]
async fn a_forbidden_model_never_reaches_the_upstream() {
    let env = EgressEnv::start(|_| {}).await;
    let a = env
        .chat_as(Some("alice"), r#"{"model":"llama","messages":[]}"#)
        .await;
    assert_eq!(assert_error_shape(&a, 403), "model_not_allowed");
    assert!(a.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("'llama'"));
    // A preset whose base is forbidden, as Open WebUI would name it.
    let a = env.chat_as(Some("alice"), r#"{"model":"sneaky"}"#).await;
    assert_eq!(assert_error_shape(&a, 403), "model_not_allowed");
    assert!(env.upstream_calls().is_empty());
}

#[tokio::test]
async fn every_model_in_a_fallback_list_is_checked() {
    let env = EgressEnv::start(|_| {}).await;
    for body in [
        r#"{"model":"gpt-4o","models":["claude","llama"],"route":"fallback"}"#,
        r#"{"models":["llama"]}"#,
        r#"{"model":"gpt-4o","fallbacks":[{"model":"llama"}]}"#,
        r#"{"model":"gpt-4o","tools":[{"type":"image_generation","model":"llama"}]}"#,
    ] {
        let a = env.chat_as(Some("alice"), body).await;
        assert_eq!(assert_error_shape(&a, 403), "model_not_allowed", "{body}");
    }
    // Unverifiable routing and ambiguous bodies are refused, not guessed at.
    for (body, code) in [
        (
            r#"{"model":"gpt-4o","route":{"models":["llama"]}}"#,
            "bad_model_field",
        ),
        (r#"{"model":"gpt-4o","model":"llama"}"#, "duplicate_key"),
        (r#"{"messages":[]}"#, "missing_model"),
    ] {
        let a = env.chat_as(Some("alice"), body).await;
        assert_eq!(assert_error_shape(&a, 400), code, "{body}");
    }
    assert!(env.upstream_calls().is_empty());
    let a = env
        .chat_as(Some("alice"), r#"{"model":"gpt-4o","models":["claude"]}"#)
        .await;
    assert_eq!(a.status, 200);
}

#[tokio::test]
async fn a_call_without_a_user_may_only_use_system_models() {
    let env = EgressEnv::start(|f| f.egress.system_models = vec!["claude".into()]).await;
    let a = env.chat_as(None, r#"{"model":"gpt-4o"}"#).await;
    assert_eq!(assert_error_shape(&a, 403), "no_verified_user");
    let a = env
        .chat_as(None, r#"{"model":"claude","models":["gpt-4o"]}"#)
        .await;
    assert_eq!(assert_error_shape(&a, 403), "no_verified_user");
    assert!(env.upstream_calls().is_empty());
    let a = env.chat_as(None, r#"{"model":"claude"}"#).await;
    assert_eq!(a.status, 200);
}

#[tokio::test]
async fn forged_expired_and_foreign_tokens_are_refused() {
    let env = EgressEnv::start(|f| f.egress.system_models = vec!["gpt-4o".into()]).await;
    let body = r#"{"model":"gpt-4o"}"#;
    for (token, code) in [
        (forward_jwt("alice", 300, "not-the-secret"), "invalid_token"),
        (forward_jwt("alice", -120, FORWARD_SECRET), "token_expired"),
        ("garbage".to_owned(), "invalid_token"),
    ] {
        let a = send(env.call(
            "/chat/completions",
            &[("x-openwebui-user-jwt", token)],
            body,
        ))
        .await;
        // A bad signed header is refused outright, even for a system model.
        assert_eq!(assert_error_shape(&a, 401), code);
    }
    // Two user headers: which one would the upstream's logs believe?
    let t = forward_jwt("alice", 300, FORWARD_SECRET);
    let a = send(env.call(
        "/chat/completions",
        &[
            ("x-openwebui-user-jwt", t.clone()),
            ("x-openwebui-user-jwt", t),
        ],
        body,
    ))
    .await;
    assert_eq!(assert_error_shape(&a, 400), "ambiguous_credentials");
    // A pending user is refused like at ingress.
    let a = env.chat_as(Some("pat"), body).await;
    assert_eq!(assert_error_shape(&a, 401), "account_pending");
    assert!(env.upstream_calls().is_empty());
}

#[tokio::test]
async fn plain_user_headers_count_only_when_trusted() {
    let body = r#"{"model":"gpt-4o"}"#;
    let plain = [("x-openwebui-user-id", "alice".to_owned())];
    let env = EgressEnv::start(|_| {}).await;
    let a = send(env.call("/chat/completions", &plain, body)).await;
    assert_eq!(assert_error_shape(&a, 403), "no_verified_user");
    assert!(env.upstream_calls().is_empty());

    let env = EgressEnv::start(|f| f.egress.trust_plain_user_headers = true).await;
    let a = send(env.call("/chat/completions", &plain, body)).await;
    assert_eq!(a.status, 200);
    let a = send(env.call(
        "/chat/completions",
        &[("x-openwebui-user-id", "bob".to_owned())],
        body,
    ))
    .await;
    assert_eq!(assert_error_shape(&a, 403), "model_not_allowed");
}

#[tokio::test]
async fn listings_pass_unfiltered() {
    let list = json!({"data":[{"id":"gpt-4o"},{"id":"llama"}]}).to_string();
    let env = EgressEnv::with(
        |b| {
            b.route(
                "/api/v1/models",
                Reply::Fixed(
                    http::StatusCode::OK,
                    vec![("content-type", "application/json".into())],
                    Bytes::from(list.clone()),
                ),
            )
        },
        |_| {},
    )
    .await;
    let req = Request::get(format!("http://{}/models", env.addr))
        .body(full(Bytes::new()))
        .unwrap();
    let a = send(req).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body, list.as_bytes());
}

#[tokio::test]
async fn server_sent_events_stream_chunk_by_chunk() {
    let gate = Arc::new(Semaphore::new(0));
    let events = vec![
        "data: {\"choices\":[{\"delta\":{\"content\":\"one\"}}]}\n\n".to_owned(),
        "data: [DONE]\n\n".to_owned(),
    ];
    let env = EgressEnv::with(
        |b| {
            b.route(
                "/api/v1/chat/completions",
                Reply::Sse {
                    events,
                    gate: Some(gate.clone()),
                },
            )
        },
        |_| {},
    )
    .await;
    let token = forward_jwt("alice", 300, FORWARD_SECRET);
    let req = env.call(
        "/chat/completions",
        &[("x-openwebui-user-jwt", token)],
        r#"{"model":"gpt-4o","stream":true}"#,
    );
    let resp = client().request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    use http_body_util::BodyExt;
    // The first event arrives while the upstream still holds the second.
    let first = tokio::time::timeout(Duration::from_secs(10), body.frame())
        .await
        .expect("first event not streamed")
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(first.data_ref().unwrap()).contains("one"));
    gate.add_permits(1);
    let rest = body.collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&rest).contains("[DONE]"));
}

#[tokio::test]
async fn a_revocation_reaches_egress_within_a_second_while_cached() {
    let env = EgressEnv::start(|_| {}).await;
    let body = r#"{"model":"claude"}"#;
    assert_eq!(env.chat_as(Some("alice"), body).await.status, 200);
    assert_eq!(env.chat_as(Some("alice"), body).await.status, 200);
    let conn = admin::open_writer(&env.db).unwrap();
    admin::disable_model(&conn, "A", "claude", "test").unwrap();
    let took = eventually(Duration::from_secs(1), "revocation at egress", || async {
        env.chat_as(Some("alice"), body).await.status == 403
    })
    .await;
    assert!(took <= Duration::from_secs(1));
}
