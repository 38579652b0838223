//! Pattern, deny and shadow policy through the real proxy: calls and lists
//! use the same decision, and a shadow rollout lets through and counts
//! what enforcing would refuse.

mod common;
mod enforce_support;

use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use modelgate::store::admin;
use modelgate::store::Mode;
use serde_json::{json, Value};

use common::*;
use enforce_support::*;

const CATALOGUE: [&str; 6] = [
    "openai/gpt-4o",
    "openai/o1-pro",
    "anthropic/claude-3.5-sonnet",
    "anthropic/claude-3-opus",
    "meta/llama-3",
    "gpt-4o",
];

async fn policy_env() -> Env {
    let data: Vec<Value> = CATALOGUE.iter().map(|id| json!({"id": id})).collect();
    Env::with(
        |b| {
            b.route(
                "/api/models",
                Reply::Fixed(
                    StatusCode::OK,
                    vec![("content-type", "application/json".to_owned())],
                    Bytes::from(json!({ "data": data }).to_string()),
                ),
            )
        },
        |_| {},
    )
    .await
}

async fn listed(env: &Env, uid: &str) -> Vec<String> {
    let a = env.get_as(uid, "/api/models").await;
    assert_eq!(a.status, 200);
    a.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn call(env: &Env, uid: &str, model: &str) -> Answer {
    env.post_as(
        uid,
        "/api/chat/completions",
        &json!({"model": model, "messages": []}).to_string(),
    )
    .await
}

/// "Everything from OpenAI and Anthropic except the most expensive model":
/// two allow patterns and one deny, for organization A.
fn openai_and_anthropic_but_not_o1_pro(env: &Env) {
    let w = env.writer();
    admin::enable_model(&w, "A", "openai/*", "ops").unwrap();
    admin::enable_model(&w, "A", "anthropic/*", "ops").unwrap();
    admin::deny_model(&w, "A", "openai/o1-pro", "ops").unwrap();
}

#[tokio::test]
async fn patterns_and_denies_decide_calls_and_lists_alike() {
    let env = policy_env().await;
    openai_and_anthropic_but_not_o1_pro(&env);
    let alice = ["openai/gpt-4o", "anthropic/claude-3.5-sonnet"];
    eventually(Duration::from_secs(1), "rules in force", || async {
        call(&env, "alice", alice[0]).await.status == 200
    })
    .await;
    assert_eq!(
        listed(&env, "alice").await,
        [
            "openai/gpt-4o",
            "anthropic/claude-3.5-sonnet",
            "anthropic/claude-3-opus",
            "gpt-4o"
        ]
    );
    for model in alice {
        assert_eq!(call(&env, "alice", model).await.status, 200, "{model}");
    }
    let refused = call(&env, "alice", "openai/o1-pro").await;
    assert_model_refused(&refused, "openai/o1-pro", &alice);
    assert_model_refused(
        &call(&env, "alice", "meta/llama-3").await,
        "meta/llama-3",
        &alice,
    );

    // carol is in A and B: A's deny holds for her even if B allows it.
    admin::enable_model(&env.writer(), "B", "*", "ops").unwrap();
    eventually(Duration::from_secs(1), "B allows everything", || async {
        call(&env, "carol", "meta/llama-3").await.status == 200
    })
    .await;
    assert_eq!(call(&env, "carol", "openai/o1-pro").await.status, 403);
    assert!(!listed(&env, "carol")
        .await
        .contains(&"openai/o1-pro".into()));
    // bob (B only) is not bound by A's deny.
    assert_eq!(call(&env, "bob", "openai/o1-pro").await.status, 200);
}

#[tokio::test]
async fn shadow_mode_lets_through_logs_and_counts_would_be_refusals() {
    let env = policy_env().await;
    openai_and_anthropic_but_not_o1_pro(&env);
    admin::set_mode(&env.writer(), "A", Mode::Shadow, "ops").unwrap();
    eventually(Duration::from_secs(1), "shadow in force", || async {
        call(&env, "alice", "openai/o1-pro").await.status == 200
    })
    .await;
    // A refusal-to-be passes, unchanged, and is counted as would_deny.
    assert_eq!(call(&env, "alice", "meta/llama-3").await.status, 200);
    assert_eq!(call(&env, "alice", "openai/gpt-4o").await.status, 200);
    let text = env.proxy.metrics.encode();
    let would =
        "modelgate_decisions_total{gate=\"ingress\",outcome=\"would_deny\",organization=\"A\"}";
    let count = text
        .lines()
        .find(|l| l.starts_with(would))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no {would} in\n{text}"));
    assert!(count >= 2.0, "{count}");
    // Lists are not filtered by a shadow organization's rules.
    assert_eq!(listed(&env, "alice").await, CATALOGUE);

    // carol is also in B, which enforces: what neither A nor B allows is
    // refused by B on its own, shadow or not; B's own grant still works.
    assert_eq!(call(&env, "carol", "meta/llama-3").await.status, 403);
    assert_eq!(call(&env, "carol", "llama").await.status, 200);
    // Only A's deny stands between carol and o1-pro (A allows openai/*):
    // that deny is shadowed, so she gets through, counted.
    assert_eq!(call(&env, "carol", "openai/o1-pro").await.status, 200);

    // Enforce: the same requests are refused.
    admin::set_mode(&env.writer(), "A", Mode::Enforce, "ops").unwrap();
    eventually(Duration::from_secs(1), "enforced", || async {
        call(&env, "alice", "openai/o1-pro").await.status == 403
    })
    .await;
    assert_eq!(call(&env, "alice", "meta/llama-3").await.status, 403);
}

#[tokio::test]
async fn a_deny_reaches_presets_built_on_the_denied_model() {
    let env = policy_env().await;
    admin::enable_model(&env.writer(), "A", "*", "ops").unwrap();
    admin::deny_model(&env.writer(), "A", "gpt-*", "ops").unwrap();
    eventually(Duration::from_secs(1), "rules in force", || async {
        call(&env, "alice", "claude").await.status == 200
    })
    .await;
    // alice-helper is a preset on gpt-4o: denied through its base.
    assert_model_refused(
        &call(&env, "alice", "alice-helper").await,
        "alice-helper",
        &[],
    );
    assert_eq!(call(&env, "alice", "gpt-4o").await.status, 403);
}
