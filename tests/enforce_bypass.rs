//! The bypass classes of docs/open-webui.md on the request side: every way a
//! request could be read differently by modelgate and by Open WebUI is
//! either read the same way or refused. Each case asserts the upstream never
//! received a forbidden call.

mod common;
mod enforce_support;

use std::time::Duration;

use bytes::Bytes;
use http::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use common::*;
use enforce_support::*;

const FORBIDDEN: &str = r#"{"model":"llama","messages":[]}"#;

#[tokio::test]
async fn encoded_paths_are_classified_as_uvicorn_decodes_them() {
    let env = Env::start().await;
    for path in [
        "/api/chat%2Fcompletions",
        "/api/chat%2fcompletions",
        "/api/chat/completions%0A",
        "/api/v1/chat/c%6Fmpletions",
        "/%6Fllama/api/chat",
        "/ollama/api/chat/0%0A",
        "/openai/chat%2Fcompletions",
    ] {
        let a = env.post_as("alice", path, FORBIDDEN).await;
        assert_model_refused(&a, "llama", &["gpt-4o", "claude"]);
    }
    assert!(env.up.requests().is_empty(), "{:?}", env.up.requests());

    // Encoded list paths are filtered too.
    let env = Env::with(
        |b| {
            b.route(
                "/api/mod%65ls",
                Reply::Fixed(
                    http::StatusCode::OK,
                    vec![],
                    Bytes::from_static(br#"{"data":[{"id":"llama"},{"id":"gpt-4o"}]}"#),
                ),
            )
        },
        |_| {},
    )
    .await;
    let a = env.get_as("alice", "/api/mod%65ls").await;
    assert_eq!(a.body, r#"{"data":[{"id":"gpt-4o"}]}"#);
}

/// Open WebUI's router is case-sensitive and collapses nothing, so these
/// reach no model handler there (404/405 from the SPA fallback). They pass
/// through unchanged, and the upstream sees exactly the path that was sent,
/// never a normalised one that would hit the handler.
#[tokio::test]
async fn non_matching_variants_pass_with_their_exact_path() {
    let env = Env::start().await;
    for path in [
        "/API/chat/completions",
        "/api/Chat/completions",
        "/api/chat/completions/",
        "//api/chat/completions",
        "/api/./chat/completions",
        "/api/x/../chat/completions",
        "/api/chat/completions%0A%0A",
        "/api/chat/completions%0D",
        "/api/chat/completions%3F",
    ] {
        let before = env.up.requests().len();
        let a = env
            .send(Method::POST, path, &[bearer("alice")], FORBIDDEN)
            .await;
        assert_eq!(a.status, 200, "{path}");
        let seen = env.up.requests();
        assert_eq!(seen.len(), before + 1, "{path}");
        let forwarded = seen[before].uri.path();
        assert_eq!(forwarded, path, "{path} rewritten");
    }
    // Paths uvicorn would decode into a model route never pass.
    for route in ["/api/chat/completions", "/api/v1/chat/completions"] {
        assert!(env.up.requests_to(route).is_empty());
    }
}

#[tokio::test]
async fn bodies_with_two_readings_are_refused() {
    let env = Env::start().await;
    let cases = [
        (
            "/api/chat/completions",
            r#"{"model":"gpt-4o","model":"llama"}"#,
        ),
        (
            "/api/chat/completions",
            r#"{"model":"gpt-4o","mod\u0065l":"llama"}"#,
        ),
        (
            "/api/chat/completions",
            r#"{"model":"gpt-4o","\u006dodel":"llama"}"#,
        ),
        (
            "/api/chat/completions",
            r#"{"model":"gpt-4o","message_ids":[{"model_id":"gpt-4o","model_id":"llama","message_id":"1"}]}"#,
        ),
        (
            "/api/chat/completions",
            r#"{"model":"gpt-4o","message_ids":{"gpt-4o":"1","gpt-4o":"2"}}"#,
        ),
        (
            "/api/v1/automations/create",
            r#"{"data":{"model_id":"gpt-4o","model_i\u0064":"llama"}}"#,
        ),
        (
            "/ollama/api/show",
            r#"{"name":"gpt-4o","n\u0061me":"llama"}"#,
        ),
        ("/api/v1/whatever", r#"{"model":"gpt-4o","model":"llama"}"#),
    ];
    for (path, body) in cases {
        let a = env.post_as("alice", path, body).await;
        assert_eq!(
            assert_error_shape(&a, 400),
            "duplicate_key",
            "{path} {body}"
        );
    }
    // Not JSON the way we read it, or not a model id: refused, not guessed.
    for body in [
        r#"{"model":"gpt-4o","temperature":NaN}"#,
        r#"{"model":"gpt-4o"} {"model":"llama"}"#,
        r#"{"model":["llama"]}"#,
        r#"{"model":null}"#,
        r#"["llama"]"#,
        // A lone surrogate in the model itself (one elsewhere is skipped,
        // as Python accepts it too).
        "{\"model\":\"gpt-4o\\ud800\"}",
    ] {
        let a = env.post_as("alice", "/api/chat/completions", body).await;
        assert_eq!(a.status, 400, "{body}");
    }
    assert!(env.up.requests().is_empty());
    // A duplicate deep in the message history names no model: it is
    // syntax-checked but not built, and the (permitted) call goes through.
    let body = r#"{"model":"gpt-4o","messages":[{"a":1,"a":2}]}"#;
    let a = env.post_as("alice", "/api/chat/completions", body).await;
    assert_eq!(a.status, 200);
    let forbidden = r#"{"model":"llama","messages":[{"a":1,"a":2}]}"#;
    let a = env
        .post_as("alice", "/api/chat/completions", forbidden)
        .await;
    assert_eq!(assert_error_shape(&a, 403), "model_not_allowed");
    assert_eq!(env.up.requests().len(), 1);
    assert_eq!(&env.up.requests()[0].body[..], body.as_bytes());
    // A UTF-8 BOM is read past, as Python does: the model is still checked.
    let a = env
        .post_as(
            "alice",
            "/api/chat/completions",
            &format!("\u{feff}{FORBIDDEN}"),
        )
        .await;
    assert_model_refused(&a, "llama", &["gpt-4o"]);
    assert_eq!(
        env.up.requests().len(),
        1,
        "only the permitted call went through"
    );
}

#[tokio::test]
async fn guarded_bodies_must_be_plain_json() {
    let env = Env::start().await;
    let path = "/api/chat/completions";
    let cases: [&[(&str, String)]; 6] = [
        &[("content-type", "text/plain".into())],
        &[],
        &[("content-type", "application/x-www-form-urlencoded".into())],
        &[("content-type", "multipart/form-data; boundary=x".into())],
        &[
            ("content-type", "application/json".into()),
            ("content-type", "text/plain".into()),
        ],
        &[
            ("content-type", "application/json".into()),
            ("content-encoding", "gzip".into()),
        ],
    ];
    for extra in cases {
        let mut headers = vec![bearer("alice")];
        headers.extend(extra.iter().cloned());
        let a = env.send(Method::POST, path, &headers, FORBIDDEN).await;
        assert_eq!(a.status, 415, "{extra:?}");
        assert_error_shape(&a, 415);
    }
    // Any case and parameters, and `+json`, are JSON to FastAPI.
    for ct in [
        "Application/JSON; charset=utf-8",
        "application/vnd.api+json",
    ] {
        let headers = [bearer("alice"), ("content-type", ct.to_owned())];
        let a = env.send(Method::POST, path, &headers, FORBIDDEN).await;
        assert_model_refused(&a, "llama", &["gpt-4o"]);
    }
    assert!(env.up.requests().is_empty());
}

/// Writes a raw request and reads the status line of the answer.
async fn raw_status(env: &Env, head: &str, chunks: &[&[u8]]) -> String {
    let mut s = TcpStream::connect(env.proxy.addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    for c in chunks {
        // The proxy may already have answered and closed.
        if s.write_all(c).await.is_err() {
            break;
        }
    }
    let mut out = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut out))
        .await
        .expect("no answer")
        .unwrap();
    String::from_utf8_lossy(&out[..n])
        .lines()
        .next()
        .unwrap_or("")
        .to_owned()
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let env = Env::with(|b| b, |f| f.access.max_body_bytes = 1024).await;
    let auth = format!("Bearer {}", token("alice"));
    // A declared length over the cap is refused before a byte of the body
    // is read: the answer comes although the body never does.
    let head = format!(
        "POST /api/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: {auth}\r\n\
         content-type: application/json\r\ncontent-length: 100000\r\n\r\n"
    );
    let status = raw_status(&env, &head, &[br#"{"model":"gpt-4o","#]).await;
    assert!(status.contains(" 413 "), "{status}");
    // Chunked, no length: refused once the cap is passed.
    let head = format!(
        "POST /api/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: {auth}\r\n\
         content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
    );
    let filler = format!("{:x}\r\n{}\r\n", 800, "a".repeat(800));
    let chunks = [
        &b"12\r\n{\"model\":\"gpt-4o\",\r\n"[..],
        filler.as_bytes(),
        filler.as_bytes(),
        b"0\r\n\r\n",
    ];
    let status = raw_status(&env, &head, &chunks).await;
    assert!(status.contains(" 413 "), "{status}");
    // Within the cap the same route works, chunked or not, and the body
    // the upstream gets is the one that was checked.
    let status = raw_status(
        &env,
        &head,
        &[
            b"9\r\n{\"model\":\r\n",
            b"9\r\n\"gpt-4o\"}\r\n",
            b"0\r\n\r\n",
        ],
    )
    .await;
    assert!(status.contains(" 200 "), "{status}");
    let a = env
        .post_as("alice", "/api/chat/completions", r#"{"model":"gpt-4o"}"#)
        .await;
    assert_eq!(a.status, 200);
    let bodies = env.bodies("/api/chat/completions");
    assert_eq!(
        bodies,
        [&br#"{"model":"gpt-4o"}"#[..], br#"{"model":"gpt-4o"}"#]
    );
}
