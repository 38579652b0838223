//! Worst-case request bodies at the caps: every body scanner must be linear.
//! A quadratic scanner held a worker thread for 20–60 s on a small request;
//! the budget is about 1 ms per MiB, and bodies over 256 KiB are parsed on a
//! blocking thread anyway, so even that never stalls other clients.
//!
//! Objects of more than 65,536 members are refused as soon as the next key
//! is read; skipped members are syntax-checked only.
//!
//! `cargo bench --bench adversarial` (reports MiB/s; 1 ms/MiB = 1,000 MiB/s)

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use modelgate::gate::body::model_refs_from_bytes;
use modelgate::gate::outbound::outbound_models;
use modelgate::gate::routes::{CallSpec, ModelLocation};

const MIB: usize = 1024 * 1024;

/// `{"k0":0,"k1":0,...,"model":"m"}`: millions of distinct top-level keys,
/// each checked against every key before it by a quadratic scanner.
fn distinct_keys(size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(size + 64);
    out.push(b'{');
    let mut i = 0usize;
    while out.len() < size {
        out.extend_from_slice(format!("\"k{i}\":0,").as_bytes());
        i += 1;
    }
    out.extend_from_slice(br#""model":"m"}"#);
    out
}

/// A channel post whose content is `<@M:` repeated with no `>`.
fn unclosed_mentions(size: usize) -> Vec<u8> {
    let mut out = br#"{"content":""#.to_vec();
    out.extend_from_slice(&b"<@M:".repeat(size / 4));
    out.extend_from_slice(b"\"}");
    out
}

/// `[[[[...]]]]` as deep as the body allows, in `member`: a member that
/// names no model is skipped without recursion; one that does is refused at
/// depth 128, early.
fn deep_nesting(size: usize, member: &str) -> Vec<u8> {
    let half = size / 2;
    let mut out = format!(r#"{{"model":"m","{member}":"#).into_bytes();
    out.extend_from_slice(&vec![b'['; half]);
    out.extend_from_slice(&vec![b']'; half]);
    out.push(b'}');
    out
}

fn bench_adversarial(c: &mut Criterion) {
    let mut g = c.benchmark_group("adversarial");
    g.sample_size(10);
    let chat = CallSpec {
        locations: vec![
            ModelLocation::Field("model".into()),
            ModelLocation::IdList("models".into()),
            ModelLocation::MessageIds,
        ],
        required: false,
        response: None,
    };
    let channel = CallSpec {
        locations: vec![ModelLocation::ChannelMentions("content".into())],
        required: false,
        response: None,
    };
    // Each case: (name, body, parser, whether it is refused).
    type Parse<'a> = Box<dyn Fn(&[u8]) -> bool + 'a>;
    for size in [4 * MIB, 64 * MIB] {
        let keys = distinct_keys(size);
        let mut nested = br#"{"model":"m","x":"#.to_vec();
        nested.extend_from_slice(&keys);
        nested.push(b'}');
        let mut mentions_of_one = br#"{"content":""#.to_vec();
        mentions_of_one.extend_from_slice(&b"<@M:m>".repeat(size / 6));
        mentions_of_one.extend_from_slice(b"\"}");
        let ingress: Parse = Box::new(|b| model_refs_from_bytes(b, &chat).is_err());
        let egress: Parse = Box::new(|b| outbound_models(b).is_err());
        let mentions: Parse = Box::new(|b| model_refs_from_bytes(b, &channel).is_err());
        let cases: Vec<(&str, Vec<u8>, &Parse, bool)> = vec![
            (
                "distinct_keys/top_level/ingress",
                keys.clone(),
                &ingress,
                true,
            ),
            ("distinct_keys/top_level/egress", keys, &egress, true),
            (
                "distinct_keys/skipped/ingress",
                nested.clone(),
                &ingress,
                false,
            ),
            ("distinct_keys/skipped/egress", nested, &egress, false),
            (
                "mentions/unclosed",
                unclosed_mentions(size),
                &mentions,
                false,
            ),
            (
                "mentions/one_model_repeated",
                mentions_of_one,
                &mentions,
                false,
            ),
            (
                "deep_nesting/skipped",
                deep_nesting(size, "messages"),
                &ingress,
                false,
            ),
            (
                "deep_nesting/read",
                deep_nesting(size, "models"),
                &ingress,
                true,
            ),
        ];
        for (name, body, parse, refused) in cases {
            assert_eq!(parse(&body), refused, "{name}");
            g.throughput(Throughput::Bytes(body.len() as u64));
            g.bench_with_input(BenchmarkId::new(name, size / MIB), &body, |b, body| {
                b.iter(|| parse(black_box(body)))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench_adversarial);
criterion_main!(benches);
