//! Request bodies of model-calling routes: accept only what Open WebUI will
//! read as JSON, parse it so that no key can mean two things, and list every
//! model id the request makes the server call.

mod mentions;
pub(crate) mod strict;

use std::borrow::Cow;

use http::{header, HeaderMap};
use serde_json::Value;

use crate::gate::routes::{CallSpec, ModelLocation};
pub(crate) use mentions::model_mention_spans;
pub use strict::{parse_members, parse_strict};

/// Why a guarded request body is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BodyError {
    /// Not `application/json` / `application/*+json`, missing, or repeated.
    #[error("the request body must be sent as application/json")]
    UnsupportedMediaType,
    /// A `Content-Encoding` other than `identity`.
    #[error("compressed request bodies are not accepted")]
    Compressed,
    /// Not strict JSON (syntax, UTF-8, NaN, lone surrogates, UTF-16, depth).
    #[error("the request body is not valid JSON")]
    InvalidJson,
    /// The same key twice in one object, after escape decoding.
    #[error("duplicate key {0:?} in the request body")]
    DuplicateKey(String),
    /// More distinct models than any real request names.
    #[error("the request names more than {MAX_MODELS_PER_REQUEST} models")]
    TooManyModels,
    /// More top-level members than any real client sends.
    #[error(
        "the request body has more than {} top-level members",
        strict::MAX_OBJECT_MEMBERS
    )]
    TooManyMembers,
    /// The body is JSON but not an object.
    #[error("the request body must be a JSON object")]
    NotAnObject,
    /// A model location holds something other than a model id string.
    #[error("field {0:?} must be a model id string")]
    BadModelField(String),
    /// The route needs a model and none is named.
    #[error("the request must name a model")]
    MissingModel,
}

/// Accepts exactly one `Content-Type` of `application/json` or
/// `application/*+json` (any case, parameters allowed: FastAPI's own test in
/// `fastapi/routing.py` uses `email.message` main type / subtype the same
/// way), and no `Content-Encoding` but `identity`: Starlette never decodes
/// request bodies, but `/openai/audio/speech` forwards them raw to an
/// upstream that might.
pub fn check_content_type(headers: &HeaderMap) -> Result<(), BodyError> {
    for value in headers.get_all(header::CONTENT_ENCODING) {
        let text = value.to_str().map_err(|_| BodyError::Compressed)?;
        if !text
            .split(',')
            .all(|c| c.trim().eq_ignore_ascii_case("identity"))
        {
            return Err(BodyError::Compressed);
        }
    }
    let mut types = headers.get_all(header::CONTENT_TYPE).iter();
    let (Some(value), None) = (types.next(), types.next()) else {
        return Err(BodyError::UnsupportedMediaType);
    };
    let text = value
        .to_str()
        .map_err(|_| BodyError::UnsupportedMediaType)?;
    if is_json_media_type(text) {
        Ok(())
    } else {
        Err(BodyError::UnsupportedMediaType)
    }
}

/// `application/json` or `application/*+json`, any case, parameters
/// allowed: FastAPI's rule (`routing.py`: main type `application`, subtype
/// `json` or ending in `+json`, as `email.message` splits it — so
/// `application/+json` is JSON too).
pub fn is_json_media_type(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let mut parts = essence.split('/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("application"), Some(sub), None) => sub == "json" || sub.ends_with("+json"),
        _ => false,
    }
}

/// Whether any `Content-Type` of the request is JSON: the defence-in-depth
/// path inspects a body whenever some reading of it could be JSON.
pub fn has_json_content_type(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CONTENT_TYPE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(is_json_media_type)
}

/// Every model id the request makes the server call, in body order, without
/// repeats. A location that is absent names nothing; one that is present
/// with any other type than expected (null included) is refused rather than
/// guessed at: Open WebUI either rejects it (pydantic `str`, 422), crashes on
/// it, or falls back to a model modelgate cannot see.
pub fn model_refs(value: &Value, spec: &CallSpec) -> Result<Vec<String>, BodyError> {
    let body = value.as_object().ok_or(BodyError::NotAnObject)?;
    let mut refs = Named::default();
    let mut add = |id: &str| refs.add(id);
    for location in &spec.locations {
        match location {
            ModelLocation::Field(name) => {
                if let Some(v) = body.get(name) {
                    add(as_model_id(v, name)?)?;
                }
            }
            ModelLocation::Pointer(pointer) => {
                if let Some(v) = walk_pointer(value, pointer)? {
                    add(as_model_id(v, pointer)?)?;
                }
            }
            ModelLocation::MessageIds => match body.get("message_ids") {
                None => {}
                // main.py `chat_completion`: list form, one call per entry;
                // `entry['model_id']` is read for every entry.
                Some(Value::Array(entries)) => {
                    for e in entries {
                        let id = e
                            .as_object()
                            .and_then(|o| o.get("model_id"))
                            .ok_or_else(|| BodyError::BadModelField("message_ids".into()))?;
                        add(as_model_id(id, "message_ids")?)?;
                    }
                }
                // Legacy dict form: the keys are the model ids.
                Some(Value::Object(map)) => map.keys().try_for_each(|k| add(k))?,
                Some(_) => return Err(BodyError::BadModelField("message_ids".into())),
            },
            ModelLocation::NullableField(name) => match body.get(name) {
                None | Some(Value::Null) => {}
                Some(v) => add(as_model_id(v, name)?)?,
            },
            ModelLocation::EachOf { list, field } => match body.get(list) {
                None => {}
                Some(Value::Array(items)) => {
                    for item in items {
                        let item = item
                            .as_object()
                            .ok_or_else(|| BodyError::BadModelField(list.clone()))?;
                        match item.get(field) {
                            None | Some(Value::Null) => {}
                            Some(v) => add(as_model_id(v, field)?)?,
                        }
                    }
                }
                Some(_) => return Err(BodyError::BadModelField(list.clone())),
            },
            ModelLocation::IdList(name) => match body.get(name) {
                None => {}
                Some(Value::Array(ids)) => {
                    for id in ids {
                        add(as_model_id(id, name)?)?;
                    }
                }
                Some(_) => return Err(BodyError::BadModelField(name.clone())),
            },
            // Resolved by the proxy through the store (`requested_from_bytes`).
            ModelLocation::ReplyTo(_) => {}
            ModelLocation::InternalMessages(pointer) => {
                for map in walk_each(value, pointer)? {
                    let messages: Vec<&Value> = match map {
                        Value::Null => continue,
                        Value::Object(m) => m.values().collect(),
                        Value::Array(a) => a.iter().collect(),
                        _ => return Err(BodyError::BadModelField(pointer.clone())),
                    };
                    for message in messages {
                        let internal = message
                            .get("meta")
                            .and_then(|m| m.get("internal"))
                            .is_some_and(|i| i == &Value::Bool(true));
                        match message.get("model") {
                            Some(m) if internal && !m.is_null() => add(as_model_id(m, "model")?)?,
                            _ => {}
                        }
                    }
                }
            }
            ModelLocation::ChannelMentions(name) => {
                if let Some(v) = body.get(name) {
                    let text = v
                        .as_str()
                        .ok_or_else(|| BodyError::BadModelField(name.clone()))?;
                    mentions::model_mentions(text).try_for_each(&mut add)?;
                }
            }
        }
    }
    if spec.required && refs.ids.is_empty() {
        return Err(BodyError::MissingModel);
    }
    Ok(refs.ids)
}

/// More distinct models than any request names (a multi-model chat names a
/// handful): refused, which also bounds the repeat check below, so a body
/// of a million mentions costs linear time.
pub const MAX_MODELS_PER_REQUEST: usize = 256;

/// The models a body names, in body order, each once.
#[derive(Default)]
pub(crate) struct Named {
    pub ids: Vec<String>,
}

impl Named {
    pub fn add(&mut self, id: &str) -> Result<(), BodyError> {
        if self.ids.iter().any(|r| r == id) {
            return Ok(());
        }
        if self.ids.len() >= MAX_MODELS_PER_REQUEST {
            return Err(BodyError::TooManyModels);
        }
        self.ids.push(id.to_owned());
        Ok(())
    }
}

/// [`model_refs`] straight from the bytes, building only the members the
/// spec's locations start in (see `strict::parse_members`).
pub fn model_refs_from_bytes(bytes: &[u8], spec: &CallSpec) -> Result<Vec<String>, BodyError> {
    requested_from_bytes(bytes, spec).map(|r| r.models)
}

/// What a request names: the models, and the channel messages it replies
/// to (each answered as the model that wrote it, which the store resolves).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Requested {
    pub models: Vec<String>,
    pub replies: Vec<String>,
}

/// [`Requested`] straight from the bytes, parsed once.
pub fn requested_from_bytes(bytes: &[u8], spec: &CallSpec) -> Result<Requested, BodyError> {
    let mut relevant: Vec<Cow<'_, str>> = Vec::with_capacity(spec.locations.len());
    let mut whole = false;
    for location in &spec.locations {
        match top_level_key(location) {
            Some(key) => relevant.push(key),
            // A pointer to the whole body: nothing can be skipped.
            None => whole = true,
        }
    }
    let value = if whole {
        parse_strict(bytes)?
    } else {
        let relevant: Vec<&str> = relevant.iter().map(|k| k.as_ref()).collect();
        strict::parse_members(bytes, &relevant)?
    };
    let models = model_refs(&value, spec)?;
    let mut replies = Vec::new();
    for location in &spec.locations {
        if let ModelLocation::ReplyTo(name) = location {
            match value.get(name) {
                None | Some(Value::Null) => {}
                Some(v) => replies.push(as_model_id(v, name)?.to_owned()),
            }
        }
    }
    Ok(Requested { models, replies })
}

/// The top-level member a location starts in.
fn top_level_key(location: &ModelLocation) -> Option<Cow<'_, str>> {
    match location {
        ModelLocation::Field(name)
        | ModelLocation::NullableField(name)
        | ModelLocation::ChannelMentions(name)
        | ModelLocation::IdList(name)
        | ModelLocation::ReplyTo(name)
        | ModelLocation::EachOf { list: name, .. } => Some(Cow::Borrowed(name)),
        ModelLocation::MessageIds => Some(Cow::Borrowed("message_ids")),
        ModelLocation::Pointer(p) | ModelLocation::InternalMessages(p) => {
            p.strip_prefix('/').map(|rest| {
                let step = rest.split('/').next().unwrap_or("");
                if step.contains('~') {
                    Cow::Owned(step.replace("~1", "/").replace("~0", "~"))
                } else {
                    Cow::Borrowed(step)
                }
            })
        }
    }
}

/// [`top_level_model`] straight from the bytes.
pub fn top_level_model_from_bytes(bytes: &[u8]) -> Result<Option<String>, BodyError> {
    let value = strict::parse_members(bytes, &["model"])?;
    Ok(top_level_model(&value)?.map(str::to_owned))
}

/// The top-level `model` of any JSON body (defence in depth). A body that is
/// not an object names no model; a `model` that is not a string is refused.
pub fn top_level_model(value: &Value) -> Result<Option<&str>, BodyError> {
    match value.as_object().and_then(|o| o.get("model")) {
        None => Ok(None),
        Some(v) => as_model_id(v, "model").map(Some),
    }
}

fn as_model_id<'a>(v: &'a Value, name: &str) -> Result<&'a str, BodyError> {
    v.as_str()
        .ok_or_else(|| BodyError::BadModelField(name.to_owned()))
}

/// Every value at `pointer`, where a `*` step stands for each element of an
/// array; a missing step names nothing, a step through anything else (a
/// string where an object belongs) is refused.
fn walk_each<'a>(root: &'a Value, pointer: &str) -> Result<Vec<&'a Value>, BodyError> {
    let bad = || BodyError::BadModelField(pointer.to_owned());
    let mut at: Vec<&Value> = vec![root];
    for token in pointer.split('/').skip(1) {
        let mut next = Vec::with_capacity(at.len());
        for v in at {
            match (token, v) {
                (_, Value::Null) => {}
                ("*", Value::Array(items)) => next.extend(items.iter()),
                ("*", _) => return Err(bad()),
                (_, Value::Object(o)) => {
                    let key = token.replace("~1", "/").replace("~0", "~");
                    next.extend(o.get(&key));
                }
                _ => return Err(bad()),
            }
        }
        at = next;
    }
    Ok(at)
}

/// Follows an RFC 6901 pointer through objects only. A missing step names
/// nothing; a step through a non-object is refused (pydantic would reject
/// it with 422 anyway).
fn walk_pointer<'a>(root: &'a Value, pointer: &str) -> Result<Option<&'a Value>, BodyError> {
    let mut at = root;
    for token in pointer.split('/').skip(1) {
        let key = token.replace("~1", "/").replace("~0", "~");
        let obj = at
            .as_object()
            .ok_or_else(|| BodyError::BadModelField(pointer.to_owned()))?;
        match obj.get(&key) {
            Some(next) => at = next,
            None => return Ok(None),
        }
    }
    Ok(Some(at))
}

#[cfg(fuzzing)]
pub mod fuzz {
    //! `cargo fuzz` entries: parsing and model extraction never panic, and
    //! read the models a plain JSON reader reads.
    use crate::gate::routes::{CallSpec, ModelLocation};

    pub fn body_models(data: &[u8]) {
        let spec = CallSpec {
            locations: vec![
                ModelLocation::Field("model".into()),
                ModelLocation::Field("name".into()),
                ModelLocation::NullableField("base_model_id".into()),
                ModelLocation::IdList("models".into()),
                ModelLocation::Pointer("/data/model_id".into()),
                ModelLocation::MessageIds,
                ModelLocation::ChannelMentions("content".into()),
                ModelLocation::ReplyTo("reply_to_id".into()),
                ModelLocation::EachOf {
                    list: "presets".into(),
                    field: "base_model_id".into(),
                },
                ModelLocation::InternalMessages("/chat/history/messages".into()),
            ],
            required: false,
            response: None,
        };
        // The fast path and the outbound reader see the raw bytes too.
        let _ = super::requested_from_bytes(data, &spec);
        let _ = crate::gate::outbound::outbound_models(data);
        let Ok(value) = super::parse_strict(data) else {
            return;
        };
        let _ = super::model_refs(&value, &spec);
        let _ = super::top_level_model(&value);
    }

    /// serde_json's plain reading, made a little more like Python's
    /// `json.loads(bytes)`, which Open WebUI uses: a UTF-8 BOM is skipped,
    /// and a lone surrogate escape (a valid string to Python) reads as
    /// U+FFFD instead of failing the whole body.
    pub fn reference(data: &[u8]) -> Result<serde_json::Value, serde_json::Error> {
        let bytes = data.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(data);
        let Ok(text) = std::str::from_utf8(bytes) else {
            return serde_json::from_slice(bytes);
        };
        let b = text.as_bytes();
        let hex4 = |at: usize| {
            let digits = b.get(at..at + 4)?;
            let digits = std::str::from_utf8(digits).ok()?;
            u16::from_str_radix(digits, 16).ok()
        };
        let (mut out, mut i, mut copied) = (String::with_capacity(b.len()), 0, 0);
        while i < b.len() {
            if b[i] != b'\\' {
                i += 1;
                continue;
            }
            let Some(unit) = (b.get(i + 1) == Some(&b'u')).then(|| hex4(i + 2)).flatten() else {
                i += 2;
                continue;
            };
            let paired = (0xD800..0xDC00).contains(&unit)
                && b.get(i + 6..i + 8) == Some(&b"\\u"[..])
                && hex4(i + 8).is_some_and(|low| (0xDC00..0xE000).contains(&low));
            if paired {
                i += 12;
            } else if (0xD800..0xE000).contains(&unit) {
                out.push_str(&text[copied..i]);
                out.push_str("\\ufffd");
                i += 6;
                copied = i;
            } else {
                i += 6;
            }
        }
        out.push_str(&text[copied..]);
        serde_json::from_str(&finite_numbers(&out))
    }

    /// Python's `json` reads a number beyond f64's range as `inf`;
    /// serde_json refuses it. The members compared are strings and lists,
    /// so such a number elsewhere is made `0` for the reference, outside
    /// strings only, rather than turn a Python-valid body into a false
    /// "accepted what the reference refuses".
    fn finite_numbers(text: &str) -> String {
        let b = text.as_bytes();
        let (mut out, mut i, mut copied) = (String::with_capacity(b.len()), 0, 0);
        while i < b.len() {
            match b[i] {
                b'"' => {
                    i += 1;
                    while i < b.len() && b[i] != b'"' {
                        i += if b[i] == b'\\' { 2 } else { 1 };
                    }
                    i += 1;
                }
                b'-' | b'0'..=b'9' => {
                    let start = i;
                    i += 1;
                    while i < b.len()
                        && matches!(b[i], b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-')
                    {
                        i += 1;
                    }
                    let token = &text[start..i];
                    if token.parse::<f64>().is_ok_and(|n| n.is_infinite()) {
                        out.push_str(&text[copied..start]);
                        out.push('0');
                        copied = i;
                    }
                }
                _ => i += 1,
            }
        }
        out.push_str(&text[copied..]);
        out
    }

    /// Our strict reading against serde_json's plain one (the last of equal
    /// keys wins, as in Python's `json` and orjson): where ours accepts a
    /// body, the reference accepts it too and reads the same `model` and
    /// `models`; where ours refuses it as invalid, so does the reference.
    /// A difference would let modelgate check one model while Open WebUI
    /// calls another.
    pub fn json_differential(data: &[u8]) {
        use serde_json::Value;

        use super::{parse_members, parse_strict, BodyError};

        let reference = reference(data);
        // For what our parser refuses as invalid, plain serde_json (it
        // refuses lone surrogates too, as `parse_strict` does on purpose).
        let bytes = data.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(data);
        let plain = serde_json::from_slice::<Value>(bytes);
        let strict = parse_strict(data);
        match (&strict, &plain) {
            (Ok(ours), Ok(theirs)) => assert_eq!(ours, theirs, "without duplicates, one reading"),
            (Ok(_), Err(e)) => panic!("strict parse accepted what serde_json refuses: {e}"),
            (Err(BodyError::InvalidJson), Ok(_)) => panic!("strict parse refused valid JSON"),
            (Err(_), _) => {}
        }
        let members = parse_members(data, &["model", "models"]);
        match &members {
            Ok(ours) => {
                let theirs = reference
                    .as_ref()
                    .expect("parse_members accepted what serde_json refuses");
                match theirs {
                    Value::Object(_) => {
                        for key in ["model", "models"] {
                            assert_eq!(ours.get(key), theirs.get(key), "`{key}` differs");
                        }
                    }
                    _ => assert_eq!(ours, &Value::Null),
                }
                // Skipping members is no less strict than building them,
                // except for duplicates inside a skipped member, and for a
                // lone surrogate escape in a skipped string: Python reads
                // it (so must the fast path), `parse_strict` refuses it.
                assert!(
                    matches!(
                        strict,
                        Ok(_) | Err(BodyError::DuplicateKey(_) | BodyError::TooManyMembers)
                    ) || (matches!(strict, Err(BodyError::InvalidJson)) && reference.is_ok()),
                    "parse_members accepted, parse_strict: {strict:?}"
                );
            }
            Err(BodyError::InvalidJson) => assert!(plain.is_err(), "refused valid JSON"),
            Err(_) => {}
        }
        // The calls the proxy makes: the defence-in-depth `model` and a
        // chat-shaped spec.
        if let Ok(model) = super::top_level_model_from_bytes(data) {
            let theirs = reference.as_ref().expect("accepted, so JSON");
            assert_eq!(
                model.as_deref(),
                theirs.get("model").and_then(Value::as_str)
            );
        }
        let spec = CallSpec {
            locations: vec![
                ModelLocation::Field("model".into()),
                ModelLocation::IdList("models".into()),
            ],
            required: false,
            response: None,
        };
        if let Ok(ids) = super::model_refs_from_bytes(data, &spec) {
            let theirs = reference.as_ref().expect("accepted, so JSON");
            let mut expected: Vec<&str> = Vec::new();
            let named = theirs.get("model").into_iter().chain(
                theirs
                    .get("models")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten(),
            );
            for v in named {
                let id = v.as_str().expect("an accepted model id is a string");
                if !expected.contains(&id) {
                    expected.push(id);
                }
            }
            assert_eq!(ids, expected);
        }
    }
}

#[cfg(test)]
mod tests;
