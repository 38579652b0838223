//! Hot-path costs of the gate: session-token verification, credential
//! extraction, and model-list filtering at OpenRouter scale.
//!
//! `cargo bench --bench gate`

use std::collections::HashSet;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use http::{HeaderMap, HeaderName, HeaderValue};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use modelgate::gate::credential::extract_credential;
use modelgate::gate::filter::{filter_list, Filtered};
use modelgate::gate::jwt::JwtVerifier;
use modelgate::gate::shape::ListShape;
use serde_json::json;

/// An OpenRouter-like `/api/models` body: about 1 KB per entry.
fn openrouter_list(n: usize) -> Vec<u8> {
    let data: Vec<_> = (0..n)
        .map(|i| {
            json!({
                "id": format!("vendor-{}/model-{i}-instruct", i % 40),
                "name": format!("Vendor {}: Model {i} Instruct", i % 40),
                "object": "model",
                "created": 1_717_000_000 + i,
                "owned_by": "openai",
                "description": "A capable general-purpose model with strong reasoning, coding and multilingual \
                    abilities. Supports tool use, structured outputs and long context windows; tuned for \
                    instruction following and chat. Pricing varies by provider; see the pricing object \
                    for per-token prompt and completion costs in USD.",
                "pricing": {"prompt": "0.0000025", "completion": "0.00001", "image": "0", "request": "0"},
                "architecture": {"modality": "text+image->text", "tokenizer": "GPT", "instruct_type": null,
                                 "input_modalities": ["text", "image"], "output_modalities": ["text"]},
                "top_provider": {"context_length": 128000, "max_completion_tokens": 16384, "is_moderated": true},
                "info": {"meta": {"capabilities": {"vision": true, "usage": true, "citations": true},
                                  "tags": [{"name": "chat"}], "description": null},
                         "params": {}, "is_active": true, "base_model_id": null},
                "connection_type": "external",
                "urlIdx": 0
            })
        })
        .collect();
    serde_json::to_vec(&json!({ "data": data })).unwrap()
}

fn bench_filter(c: &mut Criterion) {
    let mut g = c.benchmark_group("filter_list");
    for n in [300usize, 2000] {
        let body = openrouter_list(n);
        // Half the models permitted.
        let allowed: HashSet<String> = (0..n)
            .step_by(2)
            .map(|i| format!("vendor-{}/model-{i}-instruct", i % 40))
            .collect();
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_with_input(BenchmarkId::new("data", n), &body, |b, body| {
            b.iter(|| {
                let mut ok = |id: &str| allowed.contains(id);
                let out = filter_list(black_box(body), ListShape::Data, &mut ok).unwrap();
                assert!(matches!(out, Filtered::List { .. }));
                out
            })
        });
    }
    g.finish();
}

fn bench_jwt(c: &mut Criterion) {
    let key = "c2VjcmV0LWtleS1mb3ItYmVuY2htYXJr";
    let token = encode(
        &Header::new(Algorithm::HS256),
        &json!({"id": "0f6c7d2e-5a1b-4c3d-9e8f-1a2b3c4d5e6f", "typ": "session",
                "exp": 4_102_444_800u64, "iat": 1_700_000_000u64,
                "jti": "3c1d2e4f-aaaa-bbbb-cccc-111122223333", "auth_method": "password"}),
        &EncodingKey::from_secret(key.as_bytes()),
    )
    .unwrap();
    let v = JwtVerifier::from_secrets([key]);
    c.bench_function("jwt_verify", |b| {
        b.iter(|| v.verify(black_box(&token)).unwrap())
    });
}

fn bench_credential(c: &mut Criterion) {
    let api = HeaderName::from_static("x-api-key");
    let jwt = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpZCI6InUifQ.4EXqay1Uy2Qh8spBiiNvT23AZ-m2TaeWgKzNdYz2ch4";
    let mut bearer = HeaderMap::new();
    bearer.insert(
        http::header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {jwt}")).unwrap(),
    );
    let mut cookie = HeaderMap::new();
    cookie.insert(
        http::header::COOKIE,
        HeaderValue::from_str(&format!(
            "_ga=GA1.1.123456789.1700000000; theme=dark; oauth_session_id=abc; token={jwt}; _ga_X=GS1.1.1700000000.1.1.1700000001.0.0.0; locale=en-US"
        ))
        .unwrap(),
    );
    c.bench_function("credential_bearer", |b| {
        b.iter(|| extract_credential(black_box(&bearer), &api).unwrap())
    });
    c.bench_function("credential_cookie", |b| {
        b.iter(|| extract_credential(black_box(&cookie), &api).unwrap())
    });
}

criterion_group!(benches, bench_filter, bench_jwt, bench_credential);
criterion_main!(benches);
