//! Who is asking: the decision is made for the user Open WebUI would pick,
//! or the request is refused; roles, switches, revocation, an unavailable
//! store, the routes that cannot be checked, and socket.io untouched.

mod common;
mod enforce_support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::Method;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use common::*;
use enforce_support::*;

const CHAT: &str = "/api/chat/completions";
/// alice (A) may use it, bob (B) may not.
const A_MODEL: &str = r#"{"model":"gpt-4o"}"#;
/// bob may use it, alice may not.
const B_MODEL: &str = r#"{"model":"llama"}"#;

const BOB_EXPIRED_KEY: &str = "sk-fedcba9876543210fedcba9876543210";

/// Request headers, as [`Env::send`] takes them.
type Headers = Vec<(&'static str, String)>;

fn json_ct() -> (&'static str, String) {
    ("content-type", "application/json".into())
}

fn cookie(uid: &str) -> (&'static str, String) {
    ("cookie", format!("theme=dark; token={}", token(uid)))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Sends both bodies with `headers` and returns the two statuses.
async fn a_and_b(env: &Env, headers: &[(&str, String)]) -> (u16, u16) {
    let mut h = headers.to_vec();
    h.push(json_ct());
    let a = env.send(Method::POST, CHAT, &h, A_MODEL).await;
    let b = env.send(Method::POST, CHAT, &h, B_MODEL).await;
    (a.status.as_u16(), b.status.as_u16())
}

#[tokio::test]
async fn decisions_follow_the_credential_open_webui_picks() {
    let env = Env::start().await;
    let as_alice = (200, 403);
    let as_bob = (403, 200);
    let cases: Vec<(&str, Headers, (u16, u16))> = vec![
        ("bearer alice", vec![bearer("alice")], as_alice),
        (
            "bearer wins over cookie",
            vec![bearer("alice"), cookie("bob")],
            as_alice,
        ),
        (
            "bearer scheme any case",
            vec![("authorization", format!("bEaReR {}", token("bob")))],
            as_bob,
        ),
        ("cookie only", vec![cookie("bob")], as_bob),
        (
            "last token of one cookie header",
            vec![(
                "cookie",
                format!("token={}; token={}", token("alice"), token("bob")),
            )],
            as_bob,
        ),
        (
            "quoted cookie",
            vec![("cookie", format!("token=\"{}\"", token("bob")))],
            as_bob,
        ),
        (
            "cookie wins over x-api-key",
            vec![cookie("bob"), ("x-api-key", ALICE_KEY.into())],
            as_bob,
        ),
        ("x-api-key", vec![("x-api-key", ALICE_KEY.into())], as_alice),
        // A header the `Connection` list names is gone before Open WebUI
        // reads the request: the decision is made without it too.
        (
            "Connection drops the bearer, the cookie is left",
            vec![
                bearer("alice"),
                cookie("bob"),
                ("connection", "keep-alive, Authorization".into()),
            ],
            as_bob,
        ),
        (
            "Connection drops the cookie, x-api-key is left",
            vec![
                cookie("bob"),
                ("x-api-key", ALICE_KEY.into()),
                ("connection", "cookie".into()),
            ],
            as_alice,
        ),
        (
            "API key as bearer",
            vec![("authorization", format!("Bearer {ALICE_KEY}"))],
            as_alice,
        ),
        (
            "API key as other scheme",
            vec![("authorization", format!("Token {ALICE_KEY}"))],
            as_alice,
        ),
    ];
    for (what, headers, expected) in cases {
        let before = env.bodies(CHAT).len();
        assert_eq!(a_and_b(&env, &headers).await, expected, "{what}");
        // Only the permitted one of the two reached the upstream.
        let allowed = if expected == as_alice {
            A_MODEL
        } else {
            B_MODEL
        };
        assert_eq!(env.bodies(CHAT)[before..], [allowed.as_bytes()], "{what}");
    }
    // What reached the upstream carries no header the Connection list named.
    let last = env.up.requests_to(CHAT).pop().unwrap();
    assert!(last.headers.get("cookie").is_none(), "named by Connection");
}

#[tokio::test]
async fn ambiguous_or_invalid_credentials_are_refused() {
    let env = Env::start().await;
    env.writer()
        .execute(
            "INSERT INTO api_key (id, user_id, key, expires_at) VALUES ('key_bob', 'bob', ?1, ?2)",
            rusqlite::params![BOB_EXPIRED_KEY, now() as i64 - 60],
        )
        .unwrap();
    let expired = token_with(&json!({"id": "bob", "exp": now() - 10}), SECRET);
    let not_yet = token_with(&json!({"id": "bob", "iat": now() + 3600}), SECRET);
    let alg_none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJpZCI6ImJvYiIsInR5cCI6InNlc3Npb24ifQ.";
    let cases: Vec<(&str, Headers, u16)> = vec![
        ("nothing", vec![], 401),
        (
            "two cookie headers disagreeing",
            vec![cookie("alice"), cookie("bob")],
            400,
        ),
        (
            "two authorization headers",
            vec![bearer("bob"), bearer("alice")],
            400,
        ),
        (
            "other scheme vs cookie",
            vec![
                ("authorization", format!("Basic {}", token("bob"))),
                cookie("alice"),
            ],
            400,
        ),
        (
            "expired",
            vec![("authorization", format!("Bearer {expired}"))],
            401,
        ),
        (
            "issued in the future",
            vec![("authorization", format!("Bearer {not_yet}"))],
            401,
        ),
        (
            "wrong secret",
            vec![(
                "authorization",
                format!("Bearer {}", token_with(&json!({"id": "bob"}), "other")),
            )],
            401,
        ),
        (
            "alg none",
            vec![("authorization", format!("Bearer {alg_none}"))],
            401,
        ),
        (
            "no id",
            vec![(
                "authorization",
                format!("Bearer {}", token_with(&json!({"typ": "session"}), SECRET)),
            )],
            401,
        ),
        (
            "unknown API key",
            vec![("x-api-key", format!("sk-{}", "f".repeat(32)))],
            401,
        ),
        (
            "expired API key",
            vec![("x-api-key", BOB_EXPIRED_KEY.into())],
            401,
        ),
        (
            "garbage",
            vec![("authorization", "Bearer not.a.jwt".into())],
            401,
        ),
    ];
    for (what, headers, status) in cases {
        let (a, b) = a_and_b(&env, &headers).await;
        assert_eq!((a, b), (status, status), "{what}");
    }
    assert!(env.up.requests().is_empty());
}

#[tokio::test]
async fn roles_and_switches() {
    let env = Env::start().await;
    // Pending users are turned away as Open WebUI does; admins are checked
    // like anyone (root is in B).
    assert_eq!(a_and_b(&env, &[bearer("pat")]).await, (401, 401));
    assert_eq!(a_and_b(&env, &[bearer("root")]).await, (403, 200));
    assert_eq!(a_and_b(&env, &[bearer("dave")]).await, (403, 403));
    assert_eq!(env.up.requests().len(), 1);

    let env = Env::with(|b| b, |f| f.access.bypass_admin_access_control = true).await;
    assert_eq!(a_and_b(&env, &[bearer("root")]).await, (200, 200));
    assert_eq!(a_and_b(&env, &[bearer("alice")]).await, (200, 403));

    for tweak in [
        (|f: &mut modelgate::config::FileConfig| f.access.bypass_model_access_control = true)
            as fn(&mut modelgate::config::FileConfig),
        |f| f.access.enabled = false,
    ] {
        let env = Env::with(|b| b, tweak).await;
        assert_eq!(a_and_b(&env, &[bearer("alice")]).await, (200, 200));
        assert_eq!(a_and_b(&env, &[]).await, (200, 200));
        assert_eq!(env.get_as("alice", "/openai/anything").await.status, 200);
    }
}

#[tokio::test]
async fn revoked_membership_applies_within_a_second() {
    let env = Env::start().await;
    // Warm the cache.
    assert_eq!(env.post_as("alice", CHAT, A_MODEL).await.status, 200);
    assert_eq!(env.post_as("alice", CHAT, A_MODEL).await.status, 200);
    let conn = env.writer();
    modelgate::store::admin::remove_member(&conn, "A", "alice", "test").unwrap();
    eventually(
        Duration::from_secs(1),
        "the revoked membership to refuse",
        || async { env.post_as("alice", CHAT, A_MODEL).await.status == 403 },
    )
    .await;
    // Once refused, it stays refused.
    let a = env.post_as("alice", CHAT, A_MODEL).await;
    assert_model_refused(&a, "gpt-4o", &[]);
}

#[tokio::test]
async fn unavailable_store_fails_closed_but_pass_routes_work() {
    for damage in ["delete", "corrupt"] {
        let env = Env::start().await;
        assert_eq!(env.post_as("alice", CHAT, A_MODEL).await.status, 200);
        match damage {
            "delete" => {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", env.db.display()));
                }
            }
            _ => {
                let _ = std::fs::remove_file(format!("{}-wal", env.db.display()));
                std::fs::write(&env.db, vec![0xA5u8; 8192]).unwrap();
            }
        }
        eventually(
            Duration::from_secs(5),
            &format!("{damage}: guarded route refused"),
            || async { env.post_as("alice", CHAT, A_MODEL).await.status == 503 },
        )
        .await;
        let a = env.post_as("alice", CHAT, A_MODEL).await;
        assert_eq!(assert_error_shape(&a, 503), "access_data_unavailable");
        assert_eq!(env.get_as("alice", "/api/models").await.status, 503);
        let a = env
            .send(Method::GET, "/api/v1/files/x", &[], Bytes::new())
            .await;
        assert_eq!(a.status, 200, "{damage}: pass route");
    }
}

#[tokio::test]
async fn unverifiable_routes_are_refused_unless_switched_on() {
    let env = Env::with(
        |b| b.route("/api/v1/audio/realtime", Reply::WebSocketEcho),
        |_| {},
    )
    .await;
    let a = env
        .post_as("alice", "/openai/anything/v1/chat", A_MODEL)
        .await;
    assert_eq!(assert_error_shape(&a, 403), "openai_passthrough_disabled");
    let a = env.get_as("alice", "/openai/files").await;
    assert_eq!(assert_error_shape(&a, 403), "openai_passthrough_disabled");
    // PUT on a model route falls through to the passthrough in Starlette.
    let h = [bearer("alice"), json_ct()];
    let a = env
        .send(Method::PUT, "/openai/chat/completions", &h, A_MODEL)
        .await;
    assert_eq!(assert_error_shape(&a, 403), "openai_passthrough_disabled");
    let url = format!("ws://{}/api/v1/audio/realtime", env.proxy.addr);
    let err = tokio_tungstenite::connect_async(url).await.unwrap_err();
    assert!(err.to_string().contains("403"), "{err}");
    assert!(env.up.requests().is_empty());

    let env = Env::with(
        |b| b.route("/api/v1/audio/realtime", Reply::WebSocketEcho),
        |f| {
            f.access.allow_openai_passthrough = true;
            f.access.allow_realtime_audio = true;
        },
    )
    .await;
    let path = "/openai/anything/v1/chat";
    assert_eq!(env.post_as("alice", path, A_MODEL).await.status, 200);
    let a = env.post_as("alice", path, B_MODEL).await;
    assert_model_refused(&a, "llama", &["gpt-4o", "claude"]);
    let a = env.post_as("alice", path, r#"{"messages":[]}"#).await;
    assert_eq!(a.status, 400);
    assert_eq!(env.bodies(path), [A_MODEL.as_bytes()]);
    let url = format!("ws://{}/api/v1/audio/realtime", env.proxy.addr);
    let (mut ws, resp) = tokio_tungstenite::connect_async(url).await.unwrap();
    assert_eq!(resp.status(), 101);
    ws.send(Message::Text("ping".into())).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::Text("ping".into())
    );
}

#[tokio::test]
async fn socket_io_upgrades_pass_untouched() {
    let env = Env::with(|b| b.route("/ws/socket.io/", Reply::WebSocketEcho), |_| {}).await;
    let url = format!(
        "ws://{}/ws/socket.io/?EIO=4&transport=websocket",
        env.proxy.addr
    );
    let (mut ws, resp) = tokio_tungstenite::connect_async(url).await.unwrap();
    assert_eq!(resp.status(), 101);
    // Even a frame that names a forbidden model is socket.io's business.
    for text in [r#"42["chat",{"model":"llama"}]"#, "2"] {
        ws.send(Message::Text(text.into())).await.unwrap();
        let back = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(back, Message::Text(text.into()));
    }
    ws.close(None).await.unwrap();
    let seen = env.up.requests_to("/ws/socket.io/").pop().unwrap();
    assert_eq!(seen.uri.query(), Some("EIO=4&transport=websocket"));
}
