//! Every route family that makes Open WebUI call a model: a permitted model
//! reaches the upstream byte for byte, a forbidden one is refused with 403
//! and the upstream never hears of it.

mod common;
mod enforce_support;

use common::*;
use enforce_support::*;

/// (path, body with `{M}` where the model id goes). Odd spacing and
/// non-ASCII text check that the body is forwarded untouched.
const CALLS: &[(&str, &str)] = &[
    (
        "/api/chat/completions",
        r#"{"model" : "{M}", "messages":[{"role":"user","content":"héllo"}],"stream":true}"#,
    ),
    (
        "/api/v1/chat/completions",
        r#"{"model":"{M}","messages":[]}"#,
    ),
    (
        "/api/chat/completed",
        r#"{"model":"{M}","messages":[],"chat_id":"c","id":"m"}"#,
    ),
    (
        "/api/chat/actions/summarize",
        r#"{"model":"{M}","messages":[]}"#,
    ),
    (
        "/openai/chat/completions",
        r#"{"model":"{M}","messages":[]}"#,
    ),
    ("/openai/responses", r#"{"model":"{M}","input":"hi"}"#),
    (
        "/openai/audio/speech",
        r#"{"model":"{M}","input":"hi","voice":"alloy"}"#,
    ),
    ("/ollama/api/chat", r#"{"model":"{M}","messages":[]}"#),
    ("/ollama/api/chat/0", r#"{"model":"{M}","messages":[]}"#),
    ("/ollama/api/generate", r#"{"model":"{M}","prompt":"p"}"#),
    ("/ollama/api/generate/1", r#"{"model":"{M}","prompt":"p"}"#),
    ("/ollama/api/embed", r#"{"model":"{M}","input":"p"}"#),
    ("/ollama/api/embed/0", r#"{"model":"{M}","input":"p"}"#),
    ("/ollama/api/embeddings", r#"{"model":"{M}","prompt":"p"}"#),
    (
        "/ollama/api/embeddings/0",
        r#"{"model":"{M}","prompt":"p"}"#,
    ),
    ("/ollama/api/show", r#"{"model":"{M}"}"#),
    ("/ollama/api/show", r#"{"name":"{M}"}"#),
    (
        "/ollama/v1/chat/completions",
        r#"{"model":"{M}","messages":[]}"#,
    ),
    (
        "/ollama/v1/chat/completions/0",
        r#"{"model":"{M}","messages":[]}"#,
    ),
    ("/ollama/v1/completions", r#"{"model":"{M}","prompt":"p"}"#),
    ("/ollama/v1/embeddings", r#"{"model":"{M}","input":"p"}"#),
    ("/ollama/v1/messages", r#"{"model":"{M}","messages":[]}"#),
    ("/ollama/v1/responses/2", r#"{"model":"{M}","input":"p"}"#),
    ("/api/embeddings", r#"{"model":"{M}","input":"p"}"#),
    ("/api/v1/embeddings", r#"{"model":"{M}","input":"p"}"#),
    (
        "/api/message",
        r#"{"model":"{M}","max_tokens":5,"messages":[]}"#,
    ),
    (
        "/api/v1/messages",
        r#"{"model":"{M}","max_tokens":5,"messages":[]}"#,
    ),
    (
        "/api/message/count_tokens",
        r#"{"model":"{M}","messages":[]}"#,
    ),
    (
        "/api/v1/messages/count_tokens",
        r#"{"model":"{M}","messages":[]}"#,
    ),
    (
        "/api/v1/tasks/title/completions",
        r#"{"model":"{M}","messages":[]}"#,
    ),
    (
        "/api/v1/tasks/follow_up/completions",
        r#"{"model":"{M}","messages":[]}"#,
    ),
    (
        "/api/v1/tasks/tags/completions",
        r#"{"model":"{M}","messages":[]}"#,
    ),
    (
        "/api/v1/tasks/image_prompt/completions",
        r#"{"model":"{M}","messages":[]}"#,
    ),
    (
        "/api/v1/tasks/queries/completions",
        r#"{"model":"{M}","messages":[]}"#,
    ),
    (
        "/api/v1/tasks/auto/completions",
        r#"{"model":"{M}","messages":[]}"#,
    ),
    (
        "/api/v1/tasks/emoji/completions",
        r#"{"model":"{M}","prompt":"p"}"#,
    ),
    (
        "/api/v1/tasks/moa/completions",
        r#"{"model":"{M}","prompt":"p","responses":[]}"#,
    ),
    (
        "/api/v1/images/edit",
        r#"{"model":"{M}","prompt":"p","image":"data:,"}"#,
    ),
    (
        "/api/v1/automations/create",
        r#"{"name":"daily","data":{"prompt":"p","model_id":"{M}"},"meta":{}}"#,
    ),
    (
        "/api/v1/automations/au1/update",
        r#"{"name":"daily","data":{"model_id":"{M}"}}"#,
    ),
    (
        "/api/v1/channels/ch1/messages/post",
        r#"{"content":"hey <@M:{M}|Helper>, and <@U:bob|Bob>"}"#,
    ),
    ("/api/v1/chats/chat1/compact", r#"{"model":"{M}"}"#),
];

fn body(template: &str, model: &str) -> String {
    template.replace("{M}", model)
}

#[tokio::test]
async fn permitted_models_reach_the_upstream_byte_identical() {
    let env = Env::start().await;
    for (path, template) in CALLS {
        for (user, model) in [
            ("alice", "gpt-4o"),
            ("carol", "llama"),
            ("alice", "alice-helper"),
        ] {
            let sent = body(template, model);
            let before = env.bodies(path).len();
            let a = env.post_as(user, path, &sent).await;
            assert_eq!(a.status, 200, "{user} {model} {path}: {:?}", a.body);
            let got = env.bodies(path);
            assert_eq!(got.len(), before + 1, "{path}");
            assert_eq!(got[before], sent.as_bytes(), "{path}: body changed");
        }
    }
}

#[tokio::test]
async fn forbidden_models_are_refused_before_the_upstream() {
    let env = Env::start().await;
    // alice (A) asks for B's model, a preset on it, and the preset loop;
    // bob (B) asks for A's model; dave is in no organization.
    let cases = [
        ("alice", "llama", &["gpt-4o", "claude"][..]),
        ("alice", "sneaky", &["gpt-4o", "claude"][..]),
        ("alice", "c1", &["gpt-4o", "claude"][..]),
        ("alice", "not-a-model", &["gpt-4o", "claude"][..]),
        ("bob", "gpt-4o", &["llama"][..]),
        ("dave", "gpt-4o", &[][..]),
    ];
    for (path, template) in CALLS {
        for (user, model, permitted) in cases {
            let a = env.post_as(user, path, &body(template, model)).await;
            assert_model_refused(&a, model, permitted);
        }
        assert!(
            env.up.requests_to(path).is_empty(),
            "{path} reached upstream"
        );
    }
}

#[tokio::test]
async fn every_model_of_a_multi_model_request_is_checked() {
    let env = Env::start().await;
    let path = "/api/chat/completions";
    let refused = [
        // message_ids, list form: one upstream call per entry.
        r#"{"model":"gpt-4o","chat_id":"c","session_id":"s","message_ids":[{"model_id":"gpt-4o","message_id":"1"},{"model_id":"llama","message_id":"2"}]}"#,
        // message_ids, dict form: the keys are the models.
        r#"{"model":"gpt-4o","chat_id":"c","session_id":"s","message_ids":{"claude":"1","llama":"2"}}"#,
        // Without a top-level model.
        r#"{"chat_id":"c","session_id":"s","message_ids":{"sneaky":"1"}}"#,
        // OpenRouter's fallback list, forwarded upstream by Open WebUI.
        r#"{"model":"gpt-4o","models":["claude","llama"],"route":"fallback"}"#,
    ];
    for b in refused {
        let a = env.post_as("alice", path, b).await;
        assert_eq!(assert_error_shape(&a, 403), "model_not_allowed", "{b}");
    }
    assert!(env.up.requests_to(path).is_empty());
    let ok = r#"{"model":"gpt-4o","chat_id":"c","session_id":"s","message_ids":{"claude":"1","alice-helper":"2"}}"#;
    assert_eq!(env.post_as("alice", path, ok).await.status, 200);
    let ok = r#"{"model":"gpt-4o","models":["claude"]}"#;
    assert_eq!(env.post_as("alice", path, ok).await.status, 200);
    for (path, bad) in [
        (
            "/api/chat/completions",
            r#"{"model":"gpt-4o","models":"llama"}"#,
        ),
        (
            "/openai/chat/completions",
            r#"{"model":"gpt-4o","models":[1]}"#,
        ),
    ] {
        let a = env.post_as("alice", path, bad).await;
        assert_eq!(assert_error_shape(&a, 400), "bad_model_field", "{bad}");
    }
    for path in [
        "/openai/chat/completions",
        "/api/v1/tasks/title/completions",
    ] {
        let a = env
            .post_as("alice", path, r#"{"model":"gpt-4o","models":["llama"]}"#)
            .await;
        assert_model_refused(&a, "llama", &["gpt-4o", "claude"]);
    }

    // Channel posts answer as every model mentioned.
    let post = "/api/v1/channels/ch/messages/post";
    let a = env
        .post_as(
            "alice",
            post,
            r#"{"content":"<@M:gpt-4o|G> and <@M:llama|L>"}"#,
        )
        .await;
    assert_model_refused(&a, "llama", &["gpt-4o", "claude"]);
    assert!(env.up.requests_to(post).is_empty());
}

#[tokio::test]
async fn routes_that_must_name_a_model_refuse_when_none_is_named() {
    let env = Env::start().await;
    for (path, b) in [
        ("/api/v1/automations/create", r#"{"name":"x","data":{}}"#),
        ("/api/v1/automations/a/update", r#"{"name":"x"}"#),
        ("/api/v1/chats/c/compact", r#"{}"#),
    ] {
        let a = env.post_as("alice", path, b).await;
        assert_eq!(a.status, 400, "{path}");
        assert!(env.up.requests_to(path).is_empty(), "{path}");
    }
}

#[tokio::test]
async fn arena_model_needs_every_candidate() {
    let env = Env::with(
        |b| b,
        |f| {
            f.access.arena_models = [(
                "arena-model".to_owned(),
                vec!["gpt-4o".to_owned(), "llama".to_owned()],
            )]
            .into();
        },
    )
    .await;
    let path = "/api/chat/completions";
    let a = env
        .post_as("alice", path, r#"{"model":"arena-model","messages":[]}"#)
        .await;
    assert_eq!(assert_error_shape(&a, 403), "model_not_allowed");
    assert!(env.up.requests_to(path).is_empty());
}

#[tokio::test]
async fn unlisted_route_naming_a_model_is_checked() {
    let env = Env::start().await;
    let path = "/api/v1/whatever";
    let a = env.post_as("alice", path, r#"{"model":"llama"}"#).await;
    assert_model_refused(&a, "llama", &["gpt-4o", "claude"]);
    assert!(env.up.requests_to(path).is_empty());
    // Permitted, or no model at all: passes untouched.
    for b in [r#"{"model":"gpt-4o"}"#, r#"{"other":"llama"}"#] {
        assert_eq!(env.post_as("alice", path, b).await.status, 200);
    }
    assert_eq!(env.bodies(path).len(), 2);
}

#[tokio::test]
async fn presets_may_only_point_at_models_the_writer_may_use() {
    let env = Env::start().await;
    let refused = [
        (
            "/api/v1/models/create",
            r#"{"id":"p","name":"p","base_model_id":"llama","meta":{},"params":{}}"#,
            "llama",
        ),
        // A preset on a preset: its root is what counts.
        (
            "/api/v1/models/create",
            r#"{"id":"p","name":"p","base_model_id":"sneaky","meta":{},"params":{}}"#,
            "sneaky",
        ),
        (
            "/api/v1/models/model/update",
            r#"{"id":"alice-helper","name":"h","base_model_id":"llama","meta":{},"params":{}}"#,
            "llama",
        ),
        (
            "/api/v1/models/import",
            r#"{"models":[{"id":"a","base_model_id":"gpt-4o"},{"id":"b","base_model_id":"llama"}]}"#,
            "llama",
        ),
        (
            "/api/v1/models/sync",
            r#"{"models":[{"id":"b","base_model_id":"llama","name":"b","meta":{},"params":{}}]}"#,
            "llama",
        ),
    ];
    for (path, body, model) in refused {
        let a = env.post_as("alice", path, body).await;
        assert_model_refused(&a, model, &["gpt-4o", "claude"]);
        assert!(env.up.requests_to(path).is_empty(), "{path} {body}");
    }
    let allowed = [
        (
            "/api/v1/models/create",
            r#"{"id":"p","name":"p","base_model_id":"alice-helper","meta":{},"params":{}}"#,
        ),
        // null registers an upstream model: no base to check.
        (
            "/api/v1/models/create",
            r#"{"id":"q","name":"q","base_model_id":null,"meta":{},"params":{}}"#,
        ),
        (
            "/api/v1/models/model/update",
            r#"{"id":"p","name":"p","base_model_id":"claude","meta":{},"params":{}}"#,
        ),
        (
            "/api/v1/models/import",
            r#"{"models":[{"id":"a","base_model_id":"gpt-4o"},{"id":"c"}]}"#,
        ),
    ];
    for (path, body) in allowed {
        let a = env.post_as("alice", path, body).await;
        assert_eq!(a.status, 200, "{path} {body}");
    }
    // Shapes Open WebUI would not read one way are refused, not guessed at.
    for body in [
        r#"{"models":"llama"}"#,
        r#"{"models":["llama"]}"#,
        r#"{"models":[{"base_model_id":7}]}"#,
    ] {
        let a = env.post_as("alice", "/api/v1/models/import", body).await;
        assert_eq!(assert_error_shape(&a, 400), "bad_model_field", "{body}");
    }
}

#[tokio::test]
async fn a_channel_reply_is_checked_against_the_model_that_wrote_the_message() {
    let env = Env::start().await;
    env.writer()
        .execute_batch(
            r#"INSERT INTO message (id, channel_id, user_id, content, meta) VALUES
                 ('by-llama', 'ch', 'bob', 'hello', '{"model_id":"llama"}'),
                 ('by-gpt', 'ch', 'alice', 'hello', '{"model_id":"gpt-4o"}'),
                 ('by-bob', 'ch', 'bob', 'hello', NULL);"#,
        )
        .unwrap();
    let post = "/api/v1/channels/ch/messages/post";
    let a = env
        .post_as(
            "alice",
            post,
            r#"{"content":"thanks","reply_to_id":"by-llama"}"#,
        )
        .await;
    assert_model_refused(&a, "llama", &["gpt-4o", "claude"]);
    assert!(env.up.requests_to(post).is_empty());
    for reply_to in ["by-gpt", "by-bob", "no-such-message"] {
        let body = format!(r#"{{"content":"thanks","reply_to_id":"{reply_to}"}}"#);
        assert_eq!(
            env.post_as("alice", post, &body).await.status,
            200,
            "{reply_to}"
        );
    }
    let a = env
        .post_as(
            "alice",
            post,
            r#"{"content":"x","reply_to_id":["by-llama"]}"#,
        )
        .await;
    assert_eq!(assert_error_shape(&a, 400), "bad_model_field");
}

#[tokio::test]
async fn stored_chats_may_not_queue_internal_messages_for_forbidden_models() {
    let env = Env::start().await;
    let chat = |model: &str| {
        format!(
            r#"{{"chat":{{"title":"t","models":["gpt-4o"],"history":{{"currentId":"u2","messages":{{
                "u1":{{"id":"u1","role":"user","content":"hi","model":"llama"}},
                "u2":{{"id":"u2","role":"user","content":"do it","model":"{model}",
                       "meta":{{"internal":true,"type":"subagent","status":"pending"}}}}}}}}}}}}"#
        )
    };
    for path in ["/api/v1/chats/new", "/api/v1/chats/c1"] {
        // An internal message the server will run by itself, as `llama`.
        let a = env.post_as("alice", path, &chat("llama")).await;
        assert_model_refused(&a, "llama", &["gpt-4o", "claude"]);
        assert!(env.up.requests_to(path).is_empty(), "{path}");
        // A user message's `model` is history, not a call: only internal
        // ones are run again.
        assert_eq!(
            env.post_as("alice", path, &chat("claude")).await.status,
            200,
            "{path}"
        );
    }
    let import = format!(r#"{{"chats":[{{"chat":{{}}}},{}]}}"#, chat("sneaky"));
    let a = env.post_as("alice", "/api/v1/chats/import", &import).await;
    assert_model_refused(&a, "sneaky", &["gpt-4o", "claude"]);
    // Other chat writes name no chat: they pass.
    let a = env
        .post_as("alice", "/api/v1/chats/tags", r#"{"name":"x"}"#)
        .await;
    assert_eq!(a.status, 200);
    // A history that is not a map of messages is refused, not guessed at.
    let a = env
        .post_as(
            "alice",
            "/api/v1/chats/new",
            r#"{"chat":{"history":{"messages":"x"}}}"#,
        )
        .await;
    assert_eq!(assert_error_shape(&a, 400), "bad_model_field");
}
