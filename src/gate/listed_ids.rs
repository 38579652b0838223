//! The model ids a model list names, for learning what the upstream offers
//! (`store::known`): `data[].id`, the shape of both Open WebUI's
//! `/api/models` and the OpenAI-compatible `GET /models`.

use std::collections::BTreeSet;

use serde::Deserialize;

#[derive(Deserialize)]
struct List {
    data: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    #[serde(default)]
    id: Option<Id>,
}

/// A non-string id is skipped, not a reason to distrust the whole list.
#[derive(Deserialize)]
#[serde(untagged)]
enum Id {
    Text(String),
    Other(serde::de::IgnoredAny),
}

/// The ids of a `{"data": [{"id": ...}, ...]}` body; `None` when the body
/// does not have that shape (an error page, another document). Entries
/// without a string id, and blank ids, are left out.
pub fn listed_ids(body: &[u8]) -> Option<BTreeSet<String>> {
    let list: List = serde_json::from_slice(body).ok()?;
    Some(
        list.data
            .into_iter()
            .filter_map(|e| match e.id {
                Some(Id::Text(id)) if !id.trim().is_empty() => Some(id),
                _ => None,
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_of_a_data_list() {
        let body = r#"{"object":"list","data":[
            {"id":"openai/gpt-4o","name":"GPT-4o","pricing":{"prompt":"0.1"}},
            {"id":"vendor/*"},{"id":"modèle"},{"id":7},{"name":"no id"},{"id":" "},
            {"id":"openai/gpt-4o"}]}"#;
        let ids: Vec<String> = listed_ids(body.as_bytes()).unwrap().into_iter().collect();
        assert_eq!(ids, ["modèle", "openai/gpt-4o", "vendor/*"]);
    }

    #[test]
    fn other_bodies_are_not_lists() {
        for body in [
            &br#"{"detail":"Not authenticated"}"#[..],
            b"Internal Server Error",
            br#"{"data":{"id":"x"}}"#,
            br#"{"data":["x"]}"#,
            br#"[{"id":"x"}]"#,
        ] {
            assert_eq!(listed_ids(body), None, "{}", String::from_utf8_lossy(body));
        }
        assert_eq!(listed_ids(br#"{"data":[]}"#), Some(BTreeSet::new()));
    }
}
