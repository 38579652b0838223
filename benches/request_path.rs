//! What the gate adds to one request, on the hot path (cache warm):
//! model extraction from a chat body (typical 4 KB and 1 MiB), the decision
//! on a cached user, and the whole per-call overhead (strict parse +
//! extraction + decision), plus filtering a 500-model OpenRouter list, and
//! the decision for a user whose organizations have 100 glob rules.
//!
//! `cargo bench --bench request_path`

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use modelgate::gate::body::model_refs_from_bytes;
use modelgate::gate::filter::filter_list;
use modelgate::gate::routes::{CallSpec, ModelLocation};
use modelgate::gate::shape::ListShape;
use modelgate::store::access::OrgModels;
use modelgate::store::{ModelGraph, UserAccess};
use serde_json::json;

/// A chat request as the Open WebUI frontend sends it, padded with history
/// to about `size` bytes.
fn chat_body(size: usize) -> Vec<u8> {
    let mut messages = Vec::new();
    let mut body = Vec::new();
    while body.len() < size {
        messages.push(json!({"role": "user", "content": "Summarise the quarterly report and list the three main risks, with one sentence each."}));
        messages.push(json!({"role": "assistant", "content": "Here is a short summary of the report: revenue grew, costs were stable, and the outlook is cautious."}));
        body = serde_json::to_vec(&json!({
            "stream": true,
            "model": "openai/gpt-4o",
            "messages": messages,
            "params": {},
            "tool_servers": [],
            "features": {"image_generation": false, "code_interpreter": false, "web_search": false},
            "variables": {"{{USER_NAME}}": "Alice", "{{CURRENT_DATE}}": "2026-11-23"},
            "model_item": {"id": "openai/gpt-4o", "name": "GPT-4o", "object": "model", "owned_by": "openai"},
            "session_id": "Jx8n2", "chat_id": "6f1c", "id": "a1b2",
            "background_tasks": {"title_generation": true, "tags_generation": true}
        }))
        .unwrap();
    }
    body
}

fn user() -> (UserAccess, ModelGraph) {
    let sets = (0..3)
        .map(|o| {
            Arc::new(OrgModels::new(
                format!("org-{o}"),
                (0..450).map(|m| format!("vendor/model-{}", o * 300 + m)),
            ))
        })
        .collect();
    let access = UserAccess::new("alice", Some("user".into()), true, sets);
    let graph = ModelGraph::new(
        (0..200).map(|i| (format!("preset-{i}"), Some(format!("vendor/model-{i}")))),
        8,
    );
    (access, graph)
}

/// Three organizations with 100 glob rules between them (90 allows of a
/// vendor each, 10 denies of a vendor's `*-pro` models) and 450 exact links
/// each; the graph has 200 presets.
fn patterned_user() -> UserAccess {
    use modelgate::store::pattern::Target;
    use modelgate::store::Effect;
    let sets = (0..3)
        .map(|o| {
            let mut set = OrgModels::new(
                format!("org-{o}"),
                (0..450).map(|m| format!("vendor/model-{}", o * 300 + m)),
            );
            for i in (o * 30)..(o * 30 + 30) {
                let allow = Target::parse(&format!("vendor-{i}/*")).unwrap();
                set = set.with_rule(allow, Effect::Allow);
            }
            for i in 0..3 + usize::from(o == 0) {
                let deny = Target::parse(&format!("vendor-{}/*-pro", o * 30 + i)).unwrap();
                set = set.with_rule(deny, Effect::Deny);
            }
            Arc::new(set)
        })
        .collect();
    UserAccess::new("alice", Some("user".into()), true, sets)
}

fn spec() -> CallSpec {
    CallSpec {
        locations: vec![
            ModelLocation::Field("model".into()),
            ModelLocation::MessageIds,
        ],
        required: false,
        response: None,
    }
}

fn bench(c: &mut Criterion) {
    let (access, graph) = user();
    let spec = spec();
    let mut g = c.benchmark_group("request_path");
    for (name, size) in [("4KiB", 4 * 1024), ("1MiB", 1024 * 1024)] {
        let body = chat_body(size);
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_function(format!("extract_models_{name}"), |b| {
            b.iter(|| model_refs_from_bytes(black_box(&body), &spec).unwrap())
        });
    }
    g.throughput(Throughput::Elements(1));
    g.bench_function("decide_cached_user", |b| {
        b.iter(|| access.decide(&graph, black_box("preset-7")).is_allowed())
    });
    // Worst case for the rules: every deny is tried, the allow that grants
    // is the last pattern of the last organization.
    let patterned = patterned_user();
    g.bench_function("decide_100_patterns_last_allow", |b| {
        b.iter(|| {
            patterned
                .decide(&graph, black_box("vendor-89/model-x"))
                .is_allowed()
        })
    });
    g.bench_function("decide_100_patterns_denied", |b| {
        b.iter(|| {
            patterned
                .decide(&graph, black_box("vendor-1/model-pro"))
                .is_allowed()
        })
    });
    g.bench_function("decide_100_patterns_exact_link", |b| {
        b.iter(|| {
            patterned
                .decide(&graph, black_box("vendor/model-7"))
                .is_allowed()
        })
    });
    let body = chat_body(4 * 1024);
    g.bench_function("chat_call_overhead_4KiB", |b| {
        b.iter(|| {
            let models = model_refs_from_bytes(black_box(&body), &spec).unwrap();
            models.iter().all(|m| access.decide(&graph, m).is_allowed())
        })
    });
    let list = openrouter_list(500);
    g.throughput(Throughput::Bytes(list.len() as u64));
    g.bench_function("filter_500_models", |b| {
        b.iter(|| {
            let mut ok = |id: &str| access.decide(&graph, id).is_allowed();
            filter_list(black_box(&list), ListShape::Data, &mut ok).unwrap()
        })
    });
    g.finish();
}

fn openrouter_list(n: usize) -> Vec<u8> {
    let data: Vec<_> = (0..n)
        .map(|i| {
            json!({
                "id": format!("vendor/model-{i}"), "name": format!("Vendor: Model {i}"), "object": "model",
                "created": 1_717_000_000 + i, "owned_by": "openai",
                "description": "A capable general-purpose model with strong reasoning, coding and multilingual abilities. Supports tool use, structured outputs and long context windows.",
                "pricing": {"prompt": "0.0000025", "completion": "0.00001", "image": "0", "request": "0"},
                "architecture": {"modality": "text+image->text", "tokenizer": "GPT", "instruct_type": null},
                "top_provider": {"context_length": 128000, "max_completion_tokens": 16384, "is_moderated": true},
                "info": {"meta": {"capabilities": {"vision": true}}, "params": {}, "is_active": true, "base_model_id": null}
            })
        })
        .collect();
    serde_json::to_vec(&json!({ "data": data })).unwrap()
}

criterion_group!(benches, bench);
criterion_main!(benches);
