//! Every model-list shape is filtered to the models the user may use, with
//! everything else kept, whatever encoding the upstream chose; a list that
//! cannot be filtered is never passed on.

mod common;
mod enforce_support;

use std::io::Write;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use serde_json::{json, Value};

use common::*;
use enforce_support::*;

/// Every id the upstream offers, in order: alice may see `gpt-4o`, `claude`
/// and the preset on `gpt-4o`, never `llama`, the preset on it or the loop.
const ALL: [&str; 7] = [
    "gpt-4o",
    "llama",
    "claude",
    "alice-helper",
    "sneaky",
    "c1",
    "c2",
];
const ALICE_SEES: [&str; 3] = ["gpt-4o", "claude", "alice-helper"];

fn entries(key: &str) -> Vec<Value> {
    ALL.iter()
        .map(|id| json!({key: id, "name": format!("Name of {id}"), "meta": {"n": 1.50}}))
        .collect()
}

fn ollama_entries() -> Vec<Value> {
    ALL.iter()
        .map(|id| json!({"model": id, "name": id, "size": 7}))
        .collect()
}

/// (path, upstream body, JSON pointer to the model array).
fn lists() -> Vec<(&'static str, Value, &'static str)> {
    vec![
        (
            "/api/models",
            json!({"data": entries("id"), "keep": "me"}),
            "/data",
        ),
        ("/api/v1/models", json!({"data": entries("id")}), "/data"),
        (
            "/openai/models",
            json!({"data": entries("id"), "keep": "me"}),
            "/data",
        ),
        (
            "/openai/models/0",
            json!({"object": "list", "data": entries("id")}),
            "/data",
        ),
        (
            "/ollama/api/tags",
            json!({"models": ollama_entries(), "keep": "me"}),
            "/models",
        ),
        (
            "/ollama/api/tags/1",
            json!({"models": ollama_entries()}),
            "/models",
        ),
        (
            "/ollama/v1/models",
            json!({"object": "list", "data": entries("id")}),
            "/data",
        ),
        (
            "/api/v1/models/list",
            json!({"items": entries("id"), "total": 7, "keep": "me"}),
            "/items",
        ),
        ("/api/v1/models/base", Value::Array(entries("id")), ""),
        ("/api/v1/models/all", Value::Array(entries("id")), ""),
    ]
}

/// The entries of `list` alice may see, unchanged.
fn alice_view(list: &Value) -> Vec<Value> {
    list.as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            let id = e.get("id").or_else(|| e.get("model")).unwrap();
            ALICE_SEES.contains(&id.as_str().unwrap())
        })
        .cloned()
        .collect()
}

fn json_reply(body: Vec<u8>, extra: &[(&'static str, &str)]) -> Reply {
    let mut headers = vec![("content-type", "application/json".to_owned())];
    headers.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    Reply::Fixed(StatusCode::OK, headers, Bytes::from(body))
}

async fn list_env() -> Env {
    Env::with(
        |mut b| {
            for (path, body, _) in lists() {
                b = b.route(
                    path,
                    json_reply(body.to_string().into_bytes(), &[("etag", "\"v1\"")]),
                );
            }
            b
        },
        |_| {},
    )
    .await
}

#[tokio::test]
async fn every_list_shape_shows_only_permitted_models() {
    let env = list_env().await;
    for (path, sent, pointer) in lists() {
        let a = env
            .send(
                Method::GET,
                path,
                &[
                    bearer("alice"),
                    ("accept-encoding", "gzip, br, zstd".into()),
                ],
                Bytes::new(),
            )
            .await;
        assert_eq!(a.status, 200, "{path}");
        let v = a.json();
        let kept = v.pointer(pointer).unwrap().as_array().unwrap();
        assert_eq!(*kept, alice_view(sent.pointer(pointer).unwrap()), "{path}");
        // Everything beside the list is kept; `total` is fixed up.
        if let Some(obj) = sent.as_object() {
            for (k, orig) in obj {
                match k.as_str() {
                    "total" => assert_eq!(v[k], 3, "{path}"),
                    _ if format!("/{k}") == pointer => {}
                    _ => assert_eq!(v[k], *orig, "{path}: {k}"),
                }
            }
        }
        // Per-user answer, correctly framed, not cacheable by others.
        assert_eq!(a.headers["cache-control"], "private", "{path}");
        assert_eq!(
            a.headers["content-length"],
            a.body.len().to_string().as_str(),
            "{path}"
        );
        assert!(a.headers.get("etag").is_none(), "{path}");
        // The upstream was asked for a body modelgate can read.
        let seen = env.up.requests_to(path).pop().unwrap();
        assert_eq!(seen.headers["accept-encoding"], "identity", "{path}");
    }
    // bob sees only llama and its preset.
    let a = env.get_as("bob", "/api/models").await;
    let v = a.json();
    let ids: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["llama", "sneaky"]);
}

#[tokio::test]
async fn single_model_is_404_when_forbidden() {
    for (id, status) in [
        ("gpt-4o", 200),
        ("alice-helper", 200),
        ("llama", 404),
        ("sneaky", 404),
        ("c1", 404),
    ] {
        let body = json!({"id": id, "base_model_id": null, "name": id}).to_string();
        let env = Env::with(
            |b| {
                b.route(
                    "/api/v1/models/model",
                    json_reply(body.clone().into_bytes(), &[]),
                )
            },
            |_| {},
        )
        .await;
        let a = env
            .get_as("alice", &format!("/api/v1/models/model?id={id}"))
            .await;
        assert_eq!(a.status.as_u16(), status, "{id}");
        if status == 200 {
            assert_eq!(a.body, body.as_bytes(), "{id}: body changed");
        } else {
            assert_eq!(assert_error_shape(&a, 404), "model_not_found");
            assert!(!String::from_utf8_lossy(&a.body).contains(id));
        }
    }
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

fn brotli(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
        w.write_all(b).unwrap();
    }
    out
}

#[tokio::test]
async fn compressed_lists_are_decoded_then_filtered() {
    let plain = json!({"data": entries("id")}).to_string().into_bytes();
    for (coding, bytes) in [
        ("gzip", gzip(&plain)),
        ("br", brotli(&plain)),
        ("zstd", zstd::encode_all(&plain[..], 3).unwrap()),
    ] {
        // An upstream that ignores `Accept-Encoding: identity`.
        let env = Env::with(
            |b| {
                b.route(
                    "/api/models",
                    json_reply(bytes, &[("content-encoding", coding)]),
                )
            },
            |_| {},
        )
        .await;
        let a = env.get_as("alice", "/api/models").await;
        assert_eq!(a.status, 200, "{coding}");
        assert!(a.headers.get("content-encoding").is_none(), "{coding}");
        let ids: Vec<String> = a.json()["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(ids, ALICE_SEES, "{coding}");
    }
}

#[tokio::test]
async fn unfilterable_lists_are_never_passed_on() {
    // (upstream body, its Content-Encoding)
    let cases: [(Vec<u8>, Option<&str>); 5] = [
        (b"<html>llama</html>".to_vec(), None),
        (br#"{"data":[{"id":"llama"}"#.to_vec(), None),
        (br#"{"data":[{"name":"llama"}]}"#.to_vec(), None),
        (br#"{"data":[{"id":"llama"}]}"#.to_vec(), Some("compress")),
        (
            br#"not gzip {"data":[{"id":"llama"}]}"#.to_vec(),
            Some("gzip"),
        ),
    ];
    for (body, coding) in cases {
        let headers: Vec<_> = coding
            .map(|c| ("content-encoding", c))
            .into_iter()
            .collect();
        let env = Env::with(
            |b| b.route("/api/models", json_reply(body.clone(), &headers)),
            |_| {},
        )
        .await;
        let a = env.get_as("alice", "/api/models").await;
        assert_eq!(assert_error_shape(&a, 502), "upstream_bad_response");
        assert!(!String::from_utf8_lossy(&a.body).contains("llama"));
    }
}

#[tokio::test]
async fn error_answers_pass_through() {
    let body = Bytes::from_static(br#"{"detail":"Not authenticated"}"#);
    let env = Env::with(
        |b| {
            b.route(
                "/api/models",
                Reply::Fixed(
                    StatusCode::UNAUTHORIZED,
                    vec![("content-type", "application/json".into())],
                    body.clone(),
                ),
            )
        },
        |_| {},
    )
    .await;
    let a = env.get_as("alice", "/api/models").await;
    assert_eq!(a.status, 401);
    assert_eq!(a.body, body);
}

#[tokio::test]
async fn lists_need_a_user() {
    let env = list_env().await;
    let a = env
        .send(Method::GET, "/api/models", &[], Bytes::new())
        .await;
    assert_eq!(assert_error_shape(&a, 401), "not_authenticated");
    let a = env.get_as("pat", "/api/models").await;
    assert_eq!(assert_error_shape(&a, 401), "account_pending");
    assert!(env.up.requests_to("/api/models").is_empty());
}

/// An upstream list that a browser would read differently from a naive
/// filter (last of two keys wins, escaped keys) never shows a forbidden id.
#[tokio::test]
async fn lists_with_two_readings_never_show_a_forbidden_model() {
    let cases: [(&str, &str); 6] = [
        (
            "/api/models",
            r#"{"data":[{"id":"gpt-4o"}],"d\u0061ta":[{"id":"llama"}]}"#,
        ),
        (
            "/api/models",
            r#"{"data":[{"id":"gpt-4o"}],"data":[{"id":"llama"}]}"#,
        ),
        ("/api/models", r#"{"data":[{"id":"gpt-4o","id":"llama"}]}"#),
        (
            "/api/models",
            r#"{"data":[{"id":"gpt-4o","i\u0064":"llama"}]}"#,
        ),
        (
            "/ollama/api/tags",
            r#"{"models":[{"model":"gpt-4o","name":"llama"}]}"#,
        ),
        (
            "/api/v1/models/model",
            r#"{"id":"gpt-4o","\u0069d":"llama"}"#,
        ),
    ];
    for (path, body) in cases {
        let env = Env::with(
            |b| b.route(path, json_reply(body.as_bytes().to_vec(), &[])),
            |_| {},
        )
        .await;
        let a = env.get_as("alice", path).await;
        assert!(
            [200, 404, 502].contains(&a.status.as_u16()),
            "{body}: {}",
            a.status
        );
        let text = String::from_utf8_lossy(&a.body);
        assert!(!text.contains("llama"), "{body} -> {text}");
    }
}

#[tokio::test]
async fn lists_beyond_the_filter_limit_wait_their_turn() {
    let env = Env::with(
        |b| {
            let (path, body, _) = lists().into_iter().next().unwrap();
            b.route(path, json_reply(body.to_string().into_bytes(), &[]))
        },
        |f| f.access.max_concurrent_list_filters = 1,
    )
    .await;
    let (path, _, _) = lists().into_iter().next().unwrap();
    // Twenty at once through one filter slot: all answered, all filtered.
    let answers = futures_util::future::join_all((0..20).map(|_| env.get_as("alice", path))).await;
    let first = &answers[0];
    assert_eq!(first.status, 200);
    for a in &answers {
        assert_eq!(a.status, 200);
        assert_eq!(a.body, first.body);
    }
    assert!(!String::from_utf8_lossy(&first.body).contains("llama"));
}

fn ids(a: &Answer) -> Vec<String> {
    a.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn filtered_lists_are_shared_only_by_the_same_organizations_and_generation() {
    let env = list_env().await;
    let get = |who: &'static str| env.get_as(who, "/api/models");
    // Alternating users of different organizations on the same upstream
    // list: each always gets exactly their own organizations' models.
    let alice = ids(&get("alice").await);
    let bob = ids(&get("bob").await);
    let carol = ids(&get("carol").await);
    assert!(alice.contains(&"gpt-4o".to_owned()) && !alice.contains(&"llama".to_owned()));
    assert!(bob.contains(&"llama".to_owned()) && !bob.contains(&"gpt-4o".to_owned()));
    assert!(carol.contains(&"llama".to_owned()) && carol.contains(&"gpt-4o".to_owned()));
    for _ in 0..3 {
        assert_eq!(ids(&get("alice").await), alice);
        assert_eq!(ids(&get("bob").await), bob);
        assert_eq!(ids(&get("carol").await), carol);
    }
    // A revocation reaches lists already filtered and reused.
    modelgate::store::admin::disable_model(&env.writer(), "A", "gpt-4o", "test").unwrap();
    eventually(
        Duration::from_secs(1),
        "a reused list to hide a revoked model",
        || async { !ids(&get("alice").await).contains(&"gpt-4o".to_owned()) },
    )
    .await;
    assert!(!ids(&get("carol").await).contains(&"gpt-4o".to_owned()));
    assert_eq!(ids(&get("bob").await), bob);
}

#[tokio::test]
async fn config_responses_show_only_permitted_models() {
    let app = json!({"name": "mAI", "default_models": "gpt-4o,llama", "default_pinned_models": "llama,claude"});
    let tasks = json!({"TASK_MODEL": "llama", "TASK_MODEL_EXTERNAL": "claude", "ENABLE_TITLE_GENERATION": true});
    let usage = json!({"model_ids": ["llama", "gpt-4o"], "user_count": 4});
    let env = Env::with(
        |b| {
            b.route("/api/config", json_reply(app.to_string().into_bytes(), &[]))
                .route(
                    "/api/v1/tasks/config",
                    json_reply(tasks.to_string().into_bytes(), &[]),
                )
                .route(
                    "/api/usage",
                    json_reply(usage.to_string().into_bytes(), &[]),
                )
        },
        |_| {},
    )
    .await;
    let a = env.get_as("alice", "/api/config").await;
    assert_eq!(a.status, 200);
    assert_eq!(a.json()["default_models"], "gpt-4o");
    assert_eq!(a.json()["default_pinned_models"], "claude");
    assert_eq!(a.json()["name"], "mAI");
    let b = env.get_as("bob", "/api/config").await;
    assert_eq!(b.json()["default_models"], "llama");
    let t = env.get_as("alice", "/api/v1/tasks/config").await;
    assert_eq!(t.json()["TASK_MODEL"], "");
    assert_eq!(t.json()["TASK_MODEL_EXTERNAL"], "claude");
    assert_eq!(t.json()["ENABLE_TITLE_GENERATION"], true);
    let u = env.get_as("alice", "/api/usage").await;
    assert_eq!(u.status, 200, "{}", String::from_utf8_lossy(&u.body));
    assert_eq!(u.json()["model_ids"], json!(["gpt-4o"]));
    assert_eq!(u.json()["user_count"], 4);
    // A pending account still gets Open WebUI's configuration (its UI
    // shows the "pending" page from it), as someone who may use nothing.
    let p = env.get_as("pat", "/api/config").await;
    assert_eq!(p.status, 200);
    assert_eq!(p.json()["default_models"], "");
    assert_eq!(p.json()["name"], "mAI");
    // ...but nothing that involves a model.
    let p = env.get_as("pat", "/api/v1/tasks/config").await;
    assert_eq!(assert_error_shape(&p, 401), "account_pending");
    // The login page asks with no credential: passed as Open WebUI sent it
    // (it leaves the model fields out for visitors).
    let visitor = env
        .send(Method::GET, "/api/config", &[], Bytes::new())
        .await;
    assert_eq!(visitor.status, 200);
    assert_eq!(visitor.body, app.to_string().as_bytes());
    // The task config needs a user, as in Open WebUI.
    let anon = env
        .send(Method::GET, "/api/v1/tasks/config", &[], Bytes::new())
        .await;
    assert_eq!(assert_error_shape(&anon, 401), "not_authenticated");
}

#[tokio::test]
async fn shared_chats_and_channel_messages_hide_forbidden_models() {
    // A chat bob (llama) shared; alice may not use llama.
    let chat = json!({"id": "c1", "user_id": "bob", "title": "bob's chat", "chat": {
        "models": ["llama"],
        "history": {"currentId": "m2", "messages": {
            "m1": {"id": "m1", "role": "user", "content": "hi", "models": ["llama"]},
            "m2": {"id": "m2", "role": "assistant", "model": "llama", "modelName": "Llama",
                   "content": "hello"}}}}});
    let messages = json!([
        {"id": "1", "content": "answer", "meta": {"model_id": "llama", "model_name": "Llama"}},
        {"id": "2", "content": "mine", "meta": {"model_id": "gpt-4o", "model_name": "GPT-4o"}}
    ]);
    // A chat too large to filter inline (it is filtered on a blocking thread).
    let mut big = chat.clone();
    big["chat"]["history"]["messages"]["m1"]["content"] = json!("x".repeat(256 * 1024));
    let env = Env::with(
        |b| {
            b.route(
                "/api/v1/chats/share/s1",
                json_reply(chat.to_string().into_bytes(), &[]),
            )
            .route(
                "/api/v1/chats/c1/clone/shared",
                json_reply(big.to_string().into_bytes(), &[]),
            )
            .route(
                "/api/v1/channels/ch/messages",
                json_reply(messages.to_string().into_bytes(), &[]),
            )
        },
        |_| {},
    )
    .await;
    let check_chat = |a: &Answer| {
        assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
        let v = a.json();
        assert_eq!(v["chat"]["models"], json!([]));
        let m = &v["chat"]["history"]["messages"];
        assert_eq!(m["m1"]["models"], json!([]));
        assert_eq!(m["m2"]["model"], "");
        assert_eq!(m["m2"]["modelName"], "");
        assert_eq!(m["m2"]["content"], "hello");
        assert!(!String::from_utf8_lossy(&a.body).contains("llama"));
    };
    check_chat(&env.get_as("alice", "/api/v1/chats/share/s1").await);
    check_chat(
        &env.post_as("alice", "/api/v1/chats/c1/clone/shared", "{}")
            .await,
    );
    // Bob may use llama and sees his chat as it is.
    let b = env.get_as("bob", "/api/v1/chats/share/s1").await;
    assert_eq!(b.json(), chat);
    // An open share is served to visitors too: with no model ids.
    let visitor = env
        .send(Method::GET, "/api/v1/chats/share/s1", &[], Bytes::new())
        .await;
    check_chat(&visitor);

    let a = env.get_as("alice", "/api/v1/channels/ch/messages").await;
    assert_eq!(a.status, 200);
    let v = a.json();
    assert_eq!(v[0]["meta"], json!({"model_id": "", "model_name": ""}));
    assert_eq!(v[0]["content"], "answer");
    assert_eq!(v[1]["meta"]["model_id"], "gpt-4o");
    // Channels need a user, as in Open WebUI.
    let anon = env
        .send(
            Method::GET,
            "/api/v1/channels/ch/messages",
            &[],
            Bytes::new(),
        )
        .await;
    assert_eq!(assert_error_shape(&anon, 401), "not_authenticated");
}

#[tokio::test]
async fn answers_of_checked_calls_and_folders_are_redacted_too() {
    // A member of a shared folder renames bob's chat and is answered with
    // all of it.
    let chat = json!({"id": "c1", "user_id": "bob", "chat": {"models": ["llama", "gpt-4o"],
        "history": {"messages": {"m": {"role": "assistant", "model": "llama"}}}}});
    let folder = json!({"id": "f1", "name": "team", "data": {"model_ids": ["llama", "claude"]}});
    let env = Env::with(
        |b| {
            b.route(
                "/api/v1/chats/c1",
                json_reply(chat.to_string().into_bytes(), &[]),
            )
            .route(
                "/api/v1/folders/shared",
                json_reply(json!([folder]).to_string().into_bytes(), &[]),
            )
        },
        |_| {},
    )
    .await;
    let a = env
        .post_as(
            "alice",
            "/api/v1/chats/c1",
            r#"{"chat":{"title":"renamed"}}"#,
        )
        .await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.json()["chat"]["models"], json!(["gpt-4o"]));
    assert_eq!(a.json()["chat"]["history"]["messages"]["m"]["model"], "");
    // The request itself is still checked.
    let refused = env
        .post_as(
            "alice",
            "/api/v1/chats/c1",
            r#"{"chat":{"history":{"messages":{"x":{"model":"llama","meta":{"internal":true}}}}}}"#,
        )
        .await;
    assert_model_refused(&refused, "llama", &ALICE_SEES);

    let f = env.get_as("alice", "/api/v1/folders/shared").await;
    assert_eq!(f.status, 200);
    assert_eq!(f.json()[0]["data"]["model_ids"], json!(["claude"]));
    assert_eq!(f.json()[0]["name"], "team");
}

#[tokio::test]
async fn socket_events_are_redacted_in_the_tunnel() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;

    let env = Env::with(|b| b.route("/ws/socket.io/", Reply::WebSocketEcho), |_| {}).await;
    // The upstream echoes: what the "server" pushes is what we send.
    let event = r#"42["events:channel",{"data":{"type":"message","data":{"content":"<@M:llama|L> go","meta":{"model_id":"llama","model_name":"Llama"}}}}]"#;
    let hidden = r#"42["events:channel",{"data":{"type":"message","data":{"content":" go","meta":{"model_id":"","model_name":""}}}}]"#;
    let connect = |who: Option<&str>| {
        let mut req = format!(
            "ws://{}/ws/socket.io/?EIO=4&transport=websocket",
            env.proxy.addr
        )
        .into_client_request()
        .unwrap();
        req.headers_mut().insert(
            "sec-websocket-extensions",
            "permessage-deflate; client_max_window_bits"
                .parse()
                .unwrap(),
        );
        if let Some(uid) = who {
            let (k, v) = bearer(uid);
            req.headers_mut().insert(k, v.parse().unwrap());
        }
        tokio_tungstenite::connect_async(req)
    };
    for (who, expected) in [
        (Some("alice"), hidden),
        (Some("bob"), event),
        (None, hidden),
    ] {
        let (mut ws, resp) = connect(who).await.unwrap();
        assert_eq!(resp.status(), 101);
        ws.send(Message::Text(event.into())).await.unwrap();
        // Other packets pass untouched.
        ws.send(Message::Text("2".into())).await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(got, Message::Text(expected.into()), "{who:?}");
        let got = ws.next().await.unwrap().unwrap();
        assert_eq!(got, Message::Text("2".into()));
        // A large event (checked off the async worker) is redacted too.
        let filler = "x".repeat(200 * 1024);
        let big = event.replace(" go", &format!(" go{filler}"));
        ws.send(Message::Text(big)).await.unwrap();
        let got = ws.next().await.unwrap().unwrap().into_text().unwrap();
        assert_eq!(
            got,
            expected.replace(" go", &format!(" go{filler}")),
            "{who:?}"
        );
        ws.close(None).await.unwrap();
    }
    // The upstream was never offered compression it could not be read in.
    for seen in env.up.requests_to("/ws/socket.io/") {
        assert!(!seen.headers.contains_key("sec-websocket-extensions"));
    }
}

#[tokio::test]
async fn socket_long_polls_are_redacted_too() {
    let event = r#"42["events:channel",{"data":{"data":{"meta":{"model_id":"llama","model_name":"Llama"}}}}]"#;
    let poll = format!("2\u{1e}{event}\u{1e}42[\"user-list\",{{}}]");
    let env = Env::with(
        |b| {
            b.route(
                "/ws/socket.io/",
                Reply::Fixed(
                    StatusCode::OK,
                    vec![("content-type", "text/plain; charset=UTF-8".into())],
                    Bytes::from(poll.clone()),
                ),
            )
        },
        |_| {},
    )
    .await;
    let path = "/ws/socket.io/?EIO=4&transport=polling&sid=x";
    let a = env.get_as("alice", path).await;
    assert_eq!(a.status, 200);
    let hidden =
        r#"42["events:channel",{"data":{"data":{"meta":{"model_id":"","model_name":""}}}}]"#;
    assert_eq!(
        String::from_utf8_lossy(&a.body),
        format!("2\u{1e}{hidden}\u{1e}42[\"user-list\",{{}}]")
    );
    let b = env.get_as("bob", path).await;
    assert_eq!(String::from_utf8_lossy(&b.body), poll);
}

#[tokio::test]
async fn exports_and_statistics_of_ones_own_chats_are_redacted() {
    // A clone of bob's llama chat is now alice's own: her export streams it.
    let line = |id: &str, model: &str| {
        json!({"id": id, "chat": {"models": [model], "history": {"messages": {"m": {"model": model}}}}})
            .to_string()
    };
    let export = format!(
        "{}\n\n{}\n{}",
        line("c1", "llama"),
        line("c2", "gpt-4o"),
        line("c3", "llama")
    );
    let usage = json!({"heatmap": [{"date": "2026-11-29", "models": {"llama": 3, "gpt-4o": 1}}],
        "insights": {"most_used_model": "llama"},
        "top_models": [{"model_id": "llama", "messages": 3}, {"model_id": "gpt-4o", "messages": 1}]});
    let env = Env::with(
        |b| {
            b.route(
                "/api/v1/chats/all",
                Reply::Fixed(
                    StatusCode::OK,
                    vec![("content-type", "application/x-ndjson".into())],
                    Bytes::from(export.clone()),
                ),
            )
            .route(
                "/api/v1/users/usage",
                json_reply(usage.to_string().into_bytes(), &[]),
            )
        },
        |_| {},
    )
    .await;
    let a = env.get_as("alice", "/api/v1/chats/all").await;
    assert_eq!(a.status, 200);
    let text = String::from_utf8_lossy(&a.body).into_owned();
    assert!(!text.contains("llama"), "{text}");
    let lines: Vec<&str> = text.split('\n').collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert_eq!(lines[1], "");
    let first: Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(first["chat"]["models"], json!([]));
    let second: Value = serde_json::from_str(lines[2]).unwrap();
    assert_eq!(
        second["chat"]["history"]["messages"]["m"]["model"],
        "gpt-4o"
    );
    // Bob may use llama, not gpt-4o: his stream is redacted for him.
    let b = env.get_as("bob", "/api/v1/chats/all").await;
    let text = String::from_utf8_lossy(&b.body).into_owned();
    assert_eq!(text.matches("llama").count(), 4, "{text}");
    assert!(!text.contains("gpt-4o"), "{text}");

    let u = env.get_as("alice", "/api/v1/users/usage").await;
    assert_eq!(u.status, 200);
    let v = u.json();
    assert_eq!(v["heatmap"][0]["models"], json!({"gpt-4o": 1}));
    assert_eq!(v["insights"]["most_used_model"], "");
    assert_eq!(v["top_models"][0]["model_id"], "");
    assert_eq!(v["top_models"][1]["model_id"], "gpt-4o");
}
