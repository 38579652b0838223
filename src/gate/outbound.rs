//! The model ids an outbound call (Open WebUI → OpenRouter) makes the
//! upstream run, read from the fields the OpenAI, OpenRouter and Anthropic
//! request shapes give that meaning:
//!
//! - `model`: the model called (every API);
//! - `models`: OpenRouter's fallback list, tried in order when the first
//!   fails or refuses (with or without `route: "fallback"`);
//! - `fallbacks[].model`: OpenRouter's fallback objects on its Messages API;
//! - `tools[].model`: tools that run a model of their own (the Responses
//!   API's `image_generation` tool).
//!
//! `route` as an object (OpenRouter's custom routing schema) can name models
//! in shapes that change with the upstream's releases: it is refused rather
//! than guessed at. A call that names no model at all is refused too:
//! OpenRouter would run the account's default model.
//!
//! Parsing is the ingress's strict one: a duplicate key in any of these
//! members (or at the top level) is refused, so the upstream cannot read a
//! different model than the gate did.

use serde_json::Value;

use super::body::{parse_members, BodyError, Named};

/// The top-level members that can name a model.
const MODEL_MEMBERS: [&str; 5] = ["model", "models", "fallbacks", "tools", "route"];

/// Every model the call names, in body order, without repeats.
pub fn outbound_models(bytes: &[u8]) -> Result<Vec<String>, BodyError> {
    let value = parse_members(bytes, &MODEL_MEMBERS)?;
    let body = value.as_object().ok_or(BodyError::NotAnObject)?;
    let mut models = Named::default();
    let mut add = |id: &str| models.add(id);
    if let Some(v) = body.get("model") {
        add(model_id(v, "model")?)?;
    }
    if let Some(v) = body.get("models") {
        let list = v
            .as_array()
            .ok_or_else(|| BodyError::BadModelField("models".into()))?;
        for item in list {
            add(model_id(item, "models")?)?;
        }
    }
    if let Some(v) = body.get("fallbacks") {
        let list = v
            .as_array()
            .ok_or_else(|| BodyError::BadModelField("fallbacks".into()))?;
        for item in list {
            let m = item
                .get("model")
                .ok_or_else(|| BodyError::BadModelField("fallbacks".into()))?;
            add(model_id(m, "fallbacks")?)?;
        }
    }
    if let Some(Value::Array(tools)) = body.get("tools") {
        for tool in tools {
            if let Some(m) = tool.get("model") {
                add(model_id(m, "tools")?)?;
            }
        }
    }
    match body.get("route") {
        None | Some(Value::String(_)) | Some(Value::Null) => {}
        Some(_) => return Err(BodyError::BadModelField("route".into())),
    }
    if models.ids.is_empty() {
        return Err(BodyError::MissingModel);
    }
    Ok(models.ids)
}

fn model_id<'a>(v: &'a Value, field: &str) -> Result<&'a str, BodyError> {
    match v.as_str() {
        Some(s) if !s.is_empty() => Ok(s),
        _ => Err(BodyError::BadModelField(field.to_owned())),
    }
}

/// Entry point for `cargo fuzz`: the egress reader never panics, and
/// where it accepts a body it names exactly the models a last-wins JSON
/// reader (the upstream's) finds in the model-naming members.
#[cfg(fuzzing)]
pub mod fuzz {
    use super::*;

    pub fn outbound(data: &[u8]) {
        let Ok(ids) = outbound_models(data) else {
            return;
        };
        assert!(!ids.is_empty());
        let reference = crate::gate::body::fuzz::reference(data)
            .expect("an accepted body is JSON to a plain reader too");
        let mut named: Vec<&Value> = reference.get("model").into_iter().collect();
        for list in ["models", "fallbacks", "tools"] {
            for item in reference
                .get(list)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                named.extend(if list == "models" {
                    Some(item)
                } else {
                    item.get("model")
                });
            }
        }
        let mut expected: Vec<&str> = Vec::new();
        for id in named.into_iter().filter_map(Value::as_str) {
            if !expected.contains(&id) {
                expected.push(id);
            }
        }
        assert_eq!(ids, expected, "the gate and the upstream read other models");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn models(body: &str) -> Result<Vec<String>, BodyError> {
        outbound_models(body.as_bytes())
    }

    #[test]
    fn every_model_naming_field_is_read() {
        assert_eq!(models(r#"{"model":"a","messages":[]}"#).unwrap(), ["a"]);
        assert_eq!(
            models(r#"{"model":"a","models":["b","a","c"],"route":"fallback"}"#).unwrap(),
            ["a", "b", "c"]
        );
        assert_eq!(models(r#"{"models":["b"]}"#).unwrap(), ["b"]);
        assert_eq!(
            models(r#"{"model":"a","fallbacks":[{"model":"f"}]}"#).unwrap(),
            ["a", "f"]
        );
        assert_eq!(
            models(r#"{"model":"a","tools":[{"type":"function","function":{"name":"x"}},{"type":"image_generation","model":"img"}]}"#)
                .unwrap(),
            ["a", "img"]
        );
    }

    #[test]
    fn what_cannot_be_read_one_way_is_refused() {
        assert_eq!(models(r#"{"messages":[]}"#), Err(BodyError::MissingModel));
        assert_eq!(
            models(r#"{"model":"a","model":"b"}"#),
            Err(BodyError::DuplicateKey("model".into()))
        );
        assert_eq!(
            models(r#"{"model":"a","mod\u0065ls":["x"],"models":["y"]}"#),
            Err(BodyError::DuplicateKey("models".into()))
        );
        for bad in [
            r#"{"model":1}"#,
            r#"{"model":""}"#,
            r#"{"model":"a","models":"b"}"#,
            r#"{"model":"a","models":["b",2]}"#,
            r#"{"model":"a","fallbacks":[{"x":1}]}"#,
            r#"{"model":"a","tools":[{"model":null}]}"#,
            r#"{"model":"a","route":{"models":["z"]}}"#,
        ] {
            assert!(
                matches!(models(bad), Err(BodyError::BadModelField(_))),
                "{bad}"
            );
        }
        assert_eq!(models("[1]"), Err(BodyError::NotAnObject));
        // Invalid UTF-8 in a member the reader skips (found by fuzzing).
        assert_eq!(
            outbound_models(b"{\"model\":\"a\",\"messages\":[{\"\xff\":1}]}"),
            Err(BodyError::InvalidJson)
        );
        assert_eq!(models("{"), Err(BodyError::InvalidJson));
    }
}
