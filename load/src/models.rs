//! The fake upstream's model catalogue: deterministic OpenRouter-style ids
//! and list entries of realistic size, shared by `mock-upstream` (which
//! serves them) and `setup` (which grants subsets of them to organizations),
//! so both sides agree on the ids without talking to each other.

use serde_json::{json, Value};

/// Real OpenRouter ids first, so the first entries look like production.
const KNOWN: &[&str] = &[
    "openai/gpt-4o",
    "openai/gpt-4o-mini",
    "anthropic/claude-3.5-sonnet",
    "anthropic/claude-3-haiku",
    "google/gemini-pro-1.5",
    "google/gemini-flash-1.5",
    "meta-llama/llama-3.1-70b-instruct",
    "meta-llama/llama-3.1-8b-instruct",
    "mistralai/mistral-large",
    "mistralai/mixtral-8x7b-instruct",
    "deepseek/deepseek-chat",
    "qwen/qwen-2.5-72b-instruct",
    "cohere/command-r-plus",
    "x-ai/grok-2",
    "perplexity/llama-3.1-sonar-large-128k-online",
    "nousresearch/hermes-3-llama-3.1-405b",
];

const VENDORS: &[&str] = &[
    "openai",
    "anthropic",
    "google",
    "meta-llama",
    "mistralai",
    "deepseek",
    "qwen",
    "cohere",
    "x-ai",
    "microsoft",
    "nvidia",
    "amazon",
];

/// The id of model `i` (0-based): a known id, then `vendor/model-N`.
pub fn model_id(i: usize) -> String {
    match KNOWN.get(i) {
        Some(id) => (*id).to_string(),
        None => format!("{}/model-{i}", VENDORS[i % VENDORS.len()]),
    }
}

/// The first `n` model ids.
pub fn model_ids(n: usize) -> Vec<String> {
    (0..n).map(model_id).collect()
}

const CONTEXTS: [u32; 4] = [8_192, 32_768, 128_000, 200_000];

/// One list entry, about 1 KB of JSON like OpenRouter's `/models` as Open
/// WebUI relays it (name, description, pricing, architecture, context).
pub fn model_entry(i: usize) -> Value {
    let id = model_id(i);
    let vendor = id.split('/').next().unwrap_or("unknown").to_string();
    let name = format!("{vendor}: {}", id.rsplit('/').next().unwrap_or(&id));
    json!({
        "id": id,
        "name": name,
        "object": "model",
        "created": 1_700_000_000u64 + i as u64 * 3_600,
        "owned_by": "openai",
        "connection_type": "external",
        "context_length": CONTEXTS[i % CONTEXTS.len()],
        "description": format!(
            "{name} is a general-purpose language model served through OpenRouter. \
             It handles chat, summarisation, extraction and code generation, supports \
             tool calling and JSON output, and is tuned for instruction following \
             across many languages. Entry {i} of the synthetic load-test catalogue."
        ),
        "architecture": {
            "modality": "text+image->text",
            "input_modalities": ["text", "image"],
            "output_modalities": ["text"],
            "tokenizer": "Other",
            "instruct_type": null
        },
        "pricing": {
            "prompt": format!("0.00000{}", 1 + i % 9),
            "completion": format!("0.0000{}", 1 + i % 9),
            "request": "0",
            "image": "0",
            "web_search": "0",
            "internal_reasoning": "0"
        },
        "top_provider": {
            "context_length": 128_000,
            "max_completion_tokens": 16_384,
            "is_moderated": i % 3 == 0
        },
        "supported_parameters": ["max_tokens", "temperature", "top_p", "tools", "tool_choice", "stop", "response_format"],
        "openai": {"id": model_id(i), "object": "model", "owned_by": vendor},
        "urlIdx": 0,
        "tags": [],
        "actions": [],
        "filters": []
    })
}

/// The serialized `{"data":[...]}` body of a model list with `n` models.
pub fn model_list_body(n: usize) -> Vec<u8> {
    let data: Vec<Value> = (0..n).map(model_entry).collect();
    // Serializing a `Value` we just built cannot fail.
    serde_json::to_vec(&json!({ "data": data })).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_deterministic() {
        let ids = model_ids(300);
        let set: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(set.len(), 300);
        assert_eq!(ids[0], "openai/gpt-4o");
        assert_eq!(model_id(100), model_ids(101)[100]);
        assert!(ids[200].contains("/model-200"));
    }

    #[test]
    fn entries_are_about_one_kilobyte() {
        let body = model_list_body(300);
        let per_entry = body.len() / 300;
        assert!(
            (800..1_600).contains(&per_entry),
            "{per_entry} bytes per entry"
        );
    }
}
