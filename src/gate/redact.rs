//! Redacting the model ids that documents other than model lists carry:
//! stored chats (a shared chat, its clone, one's own chats) and channel
//! messages. Both are written by other people — another user's chat, a
//! model's reply in a channel — so they can name models the reader's
//! organization may not use.
//!
//! As in list filtering, the body is spliced, never re-serialized: each
//! model field the reader may not see is replaced in place and every other
//! byte is what Open WebUI sent. A field that occurs twice is redacted in
//! every occurrence (JSON readers take the last; none may see the other).
//!
//! The fields are the ones Open WebUI itself writes:
//! - a chat (`chat` of a `ChatResponse`): `models` (the chat's selected
//!   models), and for each message in `history.messages` and the legacy
//!   `messages` array: `model`, `models`, `selectedModelId` (the arena's
//!   pick) and `modelName` (the display name of `model`);
//! - a channel message: `meta.model_id` and `meta.model_name` of a model's
//!   reply, the `<@M:id|label>` mentions in its `content` (cut out of the
//!   text), and the same in its `reply_to_message`.
//!
//! Simpler documents name models at fixed places, written as [`Rule`]s
//! (a path of keys and "each element" steps, and how the ids are spelled):
//! configuration (`/api/config`, the task config, `/api/usage`), folders,
//! groups, user settings and search results.
//!
//! A forbidden single id becomes `""` (what Open WebUI shows for none) and
//! is dropped from a list. A model field of a type that cannot hold an id
//! (a number, an object) cannot be checked: the document is refused.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

pub(super) mod rules;

use super::body::model_mention_spans;
use super::filter::{span, FilterError, Filtered};

/// A document whose model fields are redacted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Document {
    /// One `ChatResponse` (or `null`).
    Chat,
    /// A JSON array of `ChatResponse`.
    Chats,
    /// One channel message (or `null`).
    ChannelMessage,
    /// A JSON array of channel messages.
    ChannelMessages,
}

/// How a field spells the model ids it holds.
#[derive(Clone, Copy)]
pub(super) enum Ids {
    /// `"a"`: a forbidden id becomes `""`.
    One,
    /// `["a", "b"]`: forbidden ids are dropped.
    List,
    /// `"a,b"`: forbidden ids are dropped from the comma-separated list.
    CommaList,
    /// Text with `<@M:id|label>` mentions: forbidden ones are cut out.
    Mentions,
    /// `{"a": 3, "b": 1}`: an object keyed by model id (usage counts);
    /// the members of forbidden ids are dropped.
    Keys,
    /// A stored chat (the `chat` of a `ChatResponse`): see the module docs.
    Chat,
    /// A document of its own, with its own rules (a list's entries).
    Nested(&'static [Rule]),
}

/// One step of a [`Rule`]'s path.
#[derive(Clone, Copy, Debug)]
pub(super) enum Step {
    /// The member of an object (every occurrence, if it repeats).
    Key(&'static str),
    /// Every element of an array.
    Each,
    /// Every member's value of an object.
    Values,
}

/// Where a document names models: the path to the field, and how.
#[derive(Clone, Copy)]
pub(super) struct Rule {
    pub path: &'static [Step],
    pub ids: Ids,
}

/// Redacts the fields `rules` name. The document is `null`, or of the type
/// the first step walks (an object for a key, an array for `Each`); below
/// the top, a value of another type holds no field to redact.
pub(super) fn redact_paths(
    body: &[u8],
    rules: &[Rule],
    permitted: &mut dyn FnMut(&str) -> bool,
) -> Result<Filtered, FilterError> {
    let root = parse_root(body)?;
    let mut r = Redactor::new(body, permitted);
    if root.get() != "null" {
        let top_ok = |rule: &Rule| match rule.path.first() {
            Some(Step::Key(_) | Step::Values) => root.get().starts_with('{'),
            Some(Step::Each) => root.get().starts_with('['),
            None => true,
        };
        if !rules.iter().all(top_ok) {
            return Err(FilterError::WrongShape(
                "the document is not of the expected type",
            ));
        }
        for rule in rules {
            r.walk(root, rule.path, rule.ids)?;
        }
    }
    Ok(r.finish())
}

fn parse_root(body: &[u8]) -> Result<&RawValue, FilterError> {
    let text = std::str::from_utf8(body).map_err(|e| FilterError::NotJson(e.to_string()))?;
    serde_json::from_str(text).map_err(|e| {
        if e.is_data() {
            FilterError::WrongShape("expected JSON")
        } else {
            FilterError::NotJson(e.to_string())
        }
    })
}

pub(super) fn redact_document(
    body: &[u8],
    doc: Document,
    permitted: &mut dyn FnMut(&str) -> bool,
) -> Result<Filtered, FilterError> {
    let root = parse_root(body)?;
    let mut r = Redactor::new(body, permitted);
    match doc {
        Document::Chat => r.optional(root, Redactor::chat_response)?,
        Document::ChannelMessage => r.optional(root, Redactor::channel_message)?,
        Document::Chats | Document::ChannelMessages => {
            let each = if doc == Document::Chats {
                Redactor::chat_response
            } else {
                Redactor::channel_message
            };
            let items = elements(root)?.ok_or(FilterError::WrongShape("expected a JSON array"))?;
            for item in items {
                each(&mut r, item)?;
            }
        }
    }
    Ok(r.finish())
}

/// Redacts one Socket.IO packet sent to a browser (a WebSocket text
/// message): the events that carry other people's model ids. Returns the
/// new packet, or `None` when it is unchanged or not such an event.
///
/// - `events:channel`: `data.data` is a channel message (a new one, an
///   update while a model's reply streams, a reply's parent, a reaction);
/// - `events`: `data.data.messages` of `chat:messages` (a turn of a chat
///   the reader watches: a shared folder, a continue-mode share) and
///   `data.data.selected_model_id` of `chat:completion`.
///
/// A packet is Engine.IO `4` (message) + Socket.IO `2` (event), an
/// optional `/namespace,`, an optional ack id, then the JSON array
/// `[name, payload]`.
pub(crate) fn redact_socket_packet(
    packet: &str,
    permitted: &mut dyn FnMut(&str) -> bool,
) -> Result<Option<String>, FilterError> {
    let Some(rest) = packet.strip_prefix("42") else {
        return Ok(None);
    };
    let rest = match rest.strip_prefix('/') {
        Some(ns) => match ns.find(',') {
            Some(i) => &ns[i + 1..],
            None => return Ok(None),
        },
        None => rest,
    };
    let json = rest.trim_start_matches(|c: char| c.is_ascii_digit());
    // Only these two events carry model ids: skip parsing everything else
    // (a streaming completion sends many small `events` packets, though).
    if !json.starts_with("[\"events") {
        return Ok(None);
    }
    let prefix = packet.len() - json.len();
    let root = parse_root(json.as_bytes())?;
    let items = elements(root)?.ok_or(FilterError::WrongShape("expected an event array"))?;
    let (Some(name), Some(payload)) = (items.first(), items.get(1)) else {
        return Ok(None);
    };
    let name: Cow<str> = serde_json::from_str(name.get()).unwrap_or_default();
    let mut r = Redactor::new(json.as_bytes(), permitted);
    match name.as_ref() {
        "events:channel" => {
            for data in r.member_values(payload, "data")? {
                for message in r.member_values(data, "data")? {
                    r.optional(message, Redactor::channel_message)?;
                }
            }
        }
        "events" => {
            for event in r.member_values(payload, "data")? {
                for data in r.member_values(event, "data")? {
                    for messages in r.member_values(data, "messages")? {
                        for (_, message) in object_members(messages)?.unwrap_or_default() {
                            r.chat_message(message)?;
                        }
                    }
                    for selected in r.member_values(data, "selected_model_id")? {
                        r.one_id(selected)?;
                    }
                }
            }
        }
        _ => return Ok(None),
    }
    if r.edits.is_empty() {
        return Ok(None);
    }
    let Filtered::List { body, .. } = r.finish() else {
        return Ok(None);
    };
    let mut out = String::with_capacity(prefix + body.len());
    out.push_str(&packet[..prefix]);
    out.push_str(&String::from_utf8(body).map_err(|e| FilterError::NotJson(e.to_string()))?);
    Ok(Some(out))
}

struct Redactor<'a, 'p> {
    body: &'a [u8],
    permitted: &'p mut dyn FnMut(&str) -> bool,
    edits: Vec<(usize, usize, Vec<u8>)>,
    kept: usize,
    removed: usize,
}

type Visit<'a, 'p> = fn(&mut Redactor<'a, 'p>, &'a RawValue) -> Result<(), FilterError>;

impl<'a, 'p> Redactor<'a, 'p> {
    fn new(body: &'a [u8], permitted: &'p mut dyn FnMut(&str) -> bool) -> Self {
        Redactor {
            body,
            permitted,
            edits: Vec::new(),
            kept: 0,
            removed: 0,
        }
    }

    /// The values of every member `key` of `raw` (none if not an object).
    fn member_values(
        &self,
        raw: &'a RawValue,
        key: &str,
    ) -> Result<Vec<&'a RawValue>, FilterError> {
        Ok(object_members(raw)?
            .unwrap_or_default()
            .into_iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v)
            .collect())
    }

    /// Follows `path` from `raw` and redacts what it reaches.
    fn walk(&mut self, raw: &'a RawValue, path: &[Step], ids: Ids) -> Result<(), FilterError> {
        match path.split_first() {
            None => match ids {
                Ids::One => self.one_id(raw).map(drop),
                Ids::List => self.id_list(raw),
                Ids::CommaList => self.comma_list(raw),
                Ids::Mentions => self.mentions(raw),
                Ids::Keys => self.keys(raw),
                Ids::Chat => self.chat(raw),
                Ids::Nested(rules) => {
                    for rule in rules {
                        self.walk(raw, rule.path, rule.ids)?;
                    }
                    Ok(())
                }
            },
            Some((Step::Key(key), rest)) => {
                for (k, v) in object_members(raw)?.unwrap_or_default() {
                    if k == *key {
                        self.walk(v, rest, ids)?;
                    }
                }
                Ok(())
            }
            Some((Step::Each, rest)) => {
                for item in elements(raw)?.unwrap_or_default() {
                    self.walk(item, rest, ids)?;
                }
                Ok(())
            }
            Some((Step::Values, rest)) => {
                for (_, v) in object_members(raw)?.unwrap_or_default() {
                    self.walk(v, rest, ids)?;
                }
                Ok(())
            }
        }
    }

    /// An object keyed by model id: the forbidden members are dropped (the
    /// object is rebuilt from the kept members' original values).
    fn keys(&mut self, raw: &'a RawValue) -> Result<(), FilterError> {
        if raw.get() == "null" {
            return Ok(());
        }
        let members = object_members(raw)?.ok_or(FilterError::WrongShape(
            "a model field has an unexpected type",
        ))?;
        let mut kept = Vec::with_capacity(members.len());
        for (id, value) in &members {
            if (self.permitted)(id) {
                self.kept += 1;
                kept.push((id, value));
            } else {
                self.removed += 1;
            }
        }
        if kept.len() == members.len() {
            return Ok(());
        }
        let mut out = Vec::with_capacity(raw.get().len());
        out.push(b'{');
        for (i, (id, value)) in kept.into_iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            serde_json::to_writer(&mut out, id.as_ref())
                .map_err(|e| FilterError::NotJson(e.to_string()))?;
            out.push(b':');
            out.extend_from_slice(value.get().as_bytes());
        }
        out.push(b'}');
        self.replace(raw, out)
    }

    /// `"a,b,c"`: the forbidden ids are dropped from the list.
    fn comma_list(&mut self, raw: &'a RawValue) -> Result<(), FilterError> {
        let Some(list) = model_id(raw)? else {
            return Ok(());
        };
        let mut shown: Vec<&str> = Vec::new();
        let mut dropped = false;
        for id in list.split(',').filter(|id| !id.is_empty()) {
            if (self.permitted)(id) {
                self.kept += 1;
                shown.push(id);
            } else {
                self.removed += 1;
                dropped = true;
            }
        }
        if dropped {
            let json = serde_json::to_vec(&shown.join(","))
                .map_err(|e| FilterError::NotJson(e.to_string()))?;
            self.replace(raw, json)?;
        }
        Ok(())
    }

    /// `null` (an `Optional` response that found nothing) or one document.
    fn optional(&mut self, raw: &'a RawValue, step: Visit<'a, 'p>) -> Result<(), FilterError> {
        if raw.get() == "null" {
            return Ok(());
        }
        step(self, raw)
    }

    fn chat_response(&mut self, raw: &'a RawValue) -> Result<(), FilterError> {
        let members =
            object_members(raw)?.ok_or(FilterError::WrongShape("expected a chat object"))?;
        for (key, value) in members {
            if key == "chat" {
                self.chat(value)?;
            }
        }
        Ok(())
    }

    fn chat(&mut self, raw: &'a RawValue) -> Result<(), FilterError> {
        // Chats are written by clients: anything that is not an object
        // holds no model field Open WebUI would read.
        let Some(members) = object_members(raw)? else {
            return Ok(());
        };
        for (key, value) in members {
            match key.as_ref() {
                "models" => self.id_list(value)?,
                "messages" => {
                    for message in elements(value)?.unwrap_or_default() {
                        self.chat_message(message)?;
                    }
                }
                "history" => {
                    for (hkey, hvalue) in object_members(value)?.unwrap_or_default() {
                        if hkey == "messages" {
                            for (_, message) in object_members(hvalue)?.unwrap_or_default() {
                                self.chat_message(message)?;
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn chat_message(&mut self, raw: &'a RawValue) -> Result<(), FilterError> {
        let Some(members) = object_members(raw)? else {
            return Ok(());
        };
        let mut hidden = false;
        for (key, value) in &members {
            match key.as_ref() {
                "model" | "selectedModelId" => hidden |= self.one_id(value)?,
                "models" => self.id_list(value)?,
                _ => {}
            }
        }
        if hidden {
            self.blank(&members, "modelName")?;
        }
        Ok(())
    }

    fn channel_message(&mut self, raw: &'a RawValue) -> Result<(), FilterError> {
        let members =
            object_members(raw)?.ok_or(FilterError::WrongShape("expected a message object"))?;
        for (key, value) in members {
            match key.as_ref() {
                "meta" => {
                    let Some(meta) = object_members(value)? else {
                        continue;
                    };
                    let mut hidden = false;
                    for (mkey, mvalue) in &meta {
                        if mkey == "model_id" {
                            hidden |= self.one_id(mvalue)?;
                        }
                    }
                    if hidden {
                        self.blank(&meta, "model_name")?;
                    }
                }
                "content" => self.mentions(value)?,
                "reply_to_message" => self.optional(value, Redactor::channel_message)?,
                _ => {}
            }
        }
        Ok(())
    }

    /// A field naming one model: `""` if it may not be shown. Returns
    /// whether it was hidden. `null` and `""` name none.
    fn one_id(&mut self, raw: &'a RawValue) -> Result<bool, FilterError> {
        let Some(id) = model_id(raw)? else {
            return Ok(false);
        };
        if (self.permitted)(&id) {
            self.kept += 1;
            return Ok(false);
        }
        self.removed += 1;
        self.replace(raw, b"\"\"".to_vec())?;
        Ok(true)
    }

    /// A message text's `<@M:id|label>` mentions (the UI shows them as the
    /// model's chip): a forbidden one is cut out of the text.
    fn mentions(&mut self, raw: &'a RawValue) -> Result<(), FilterError> {
        if !raw.get().starts_with('"') || !raw.get().contains("<@") {
            return Ok(());
        }
        let text: Cow<str> =
            serde_json::from_str(raw.get()).map_err(|e| FilterError::NotJson(e.to_string()))?;
        let mut out = String::new();
        let mut at = 0;
        for (id, range) in model_mention_spans(&text) {
            if (self.permitted)(id) {
                self.kept += 1;
                continue;
            }
            self.removed += 1;
            out.push_str(&text[at..range.start]);
            at = range.end;
        }
        if at == 0 {
            return Ok(());
        }
        out.push_str(&text[at..]);
        let json = serde_json::to_vec(&out).map_err(|e| FilterError::NotJson(e.to_string()))?;
        self.replace(raw, json)
    }

    /// A list of model ids: the forbidden ones are dropped.
    fn id_list(&mut self, raw: &'a RawValue) -> Result<(), FilterError> {
        if raw.get() == "null" {
            return Ok(());
        }
        let entries = elements(raw)?.ok_or(FilterError::WrongShape(
            "a model field has an unexpected type",
        ))?;
        let mut out = Vec::with_capacity(raw.get().len());
        let mut dropped = false;
        for entry in &entries {
            let id = model_id(entry)?.unwrap_or_default();
            if id.is_empty() || (self.permitted)(&id) {
                if !out.is_empty() {
                    out.push(b',');
                }
                out.extend_from_slice(entry.get().as_bytes());
                self.kept += usize::from(!id.is_empty());
            } else {
                self.removed += 1;
                dropped = true;
            }
        }
        if dropped {
            let mut list = Vec::with_capacity(out.len() + 2);
            list.push(b'[');
            list.extend_from_slice(&out);
            list.push(b']');
            self.replace(raw, list)?;
        }
        Ok(())
    }

    /// Empties every string member `name` (a forbidden model's display name).
    fn blank(
        &mut self,
        members: &[(Cow<'a, str>, &'a RawValue)],
        name: &str,
    ) -> Result<(), FilterError> {
        for (key, value) in members {
            if key == name && value.get().starts_with('"') {
                self.replace(value, b"\"\"".to_vec())?;
            }
        }
        Ok(())
    }

    fn replace(&mut self, raw: &RawValue, with: Vec<u8>) -> Result<(), FilterError> {
        let (start, end) = span(self.body, raw)?;
        self.edits.push((start, end, with));
        Ok(())
    }

    fn finish(mut self) -> Filtered {
        if self.edits.is_empty() {
            return Filtered::List {
                body: self.body.to_vec(),
                kept: self.kept,
                removed: self.removed,
            };
        }
        self.edits.sort_by_key(|e| e.0);
        let mut out = Vec::with_capacity(self.body.len());
        let mut at = 0;
        for (start, end, with) in self.edits {
            // Edits never overlap: each replaces a distinct leaf value.
            out.extend_from_slice(&self.body[at..start]);
            out.extend_from_slice(&with);
            at = end;
        }
        out.extend_from_slice(&self.body[at..]);
        Filtered::List {
            body: out,
            kept: self.kept,
            removed: self.removed,
        }
    }
}

/// A value that may name a model: a string (unescaped), or `null`. Any
/// other type cannot be checked.
fn model_id(raw: &RawValue) -> Result<Option<Cow<'_, str>>, FilterError> {
    if raw.get() == "null" {
        return Ok(None);
    }
    let id: Cow<str> = serde_json::from_str(raw.get())
        .map_err(|_| FilterError::WrongShape("a model field has an unexpected type"))?;
    Ok(Some(id))
}

/// The members of an object in order, duplicates included, keys unescaped;
/// `None` if `raw` is not an object.
fn object_members(raw: &RawValue) -> Result<Option<Members<'_>>, FilterError> {
    if !raw.get().starts_with('{') {
        return Ok(None);
    }
    let mut de = serde_json::Deserializer::from_str(raw.get());
    de::Deserializer::deserialize_map(&mut de, MembersVisitor)
        .map(Some)
        .map_err(|e| FilterError::NotJson(e.to_string()))
}

/// The elements of an array; `None` if `raw` is not an array.
fn elements(raw: &RawValue) -> Result<Option<Vec<&RawValue>>, FilterError> {
    if !raw.get().starts_with('[') {
        return Ok(None);
    }
    let mut de = serde_json::Deserializer::from_str(raw.get());
    de::Deserializer::deserialize_seq(&mut de, ElementsVisitor)
        .map(Some)
        .map_err(|e| FilterError::NotJson(e.to_string()))
}

/// An object's members in order: unescaped key, value.
type Members<'a> = Vec<(Cow<'a, str>, &'a RawValue)>;

struct MembersVisitor;

impl<'de> Visitor<'de> for MembersVisitor {
    type Value = Members<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            out.push((key, map.next_value()?));
        }
        Ok(out)
    }
}

struct ElementsVisitor;

impl<'de> Visitor<'de> for ElementsVisitor {
    type Value = Vec<&'de RawValue>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(item) = seq.next_element()? {
            out.push(item);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    type Text = Result<(String, usize, usize), FilterError>;

    fn text(filtered: Result<Filtered, FilterError>) -> Text {
        match filtered? {
            Filtered::List {
                body,
                kept,
                removed,
            } => Ok((String::from_utf8(body).unwrap(), kept, removed)),
            Filtered::Forbidden => panic!("documents are never forbidden whole"),
        }
    }

    fn run(body: &str, doc: Document, ids: &[&str]) -> Text {
        text(redact_document(body.as_bytes(), doc, &mut |id: &str| {
            ids.contains(&id)
        }))
    }

    fn shared_chat() -> Value {
        json!({
            "id": "c1", "user_id": "u2", "title": "t",
            "chat": {
                "models": ["gpt-4o", "claude-3"],
                "history": {"currentId": "m2", "messages": {
                    "m1": {"id": "m1", "role": "user", "content": "hi", "models": ["gpt-4o", "claude-3"]},
                    "m2": {"id": "m2", "role": "assistant", "model": "claude-3", "modelName": "Claude 3",
                           "modelIdx": 1, "content": "claude-3 says hi"},
                    "m3": {"id": "m3", "role": "assistant", "model": "arena-model",
                           "selectedModelId": "claude-3", "modelName": "Arena"}
                }},
                "messages": [{"role": "assistant", "model": "claude-3", "modelName": "Claude 3"}]
            }
        })
    }

    #[test]
    fn a_chat_shows_only_permitted_models_and_keeps_everything_else() {
        let body = shared_chat().to_string();
        let (out, kept, removed) = run(&body, Document::Chat, &["gpt-4o", "arena-model"]).unwrap();
        let v: Value = serde_json::from_str(&out).unwrap();
        let chat = &v["chat"];
        assert_eq!(chat["models"], json!(["gpt-4o"]));
        let m = &chat["history"]["messages"];
        assert_eq!(m["m1"]["models"], json!(["gpt-4o"]));
        assert_eq!(m["m2"]["model"], "");
        assert_eq!(m["m2"]["modelName"], "");
        // Text is the author's, not a model field.
        assert_eq!(m["m2"]["content"], "claude-3 says hi");
        assert_eq!(m["m2"]["modelIdx"], 1);
        assert_eq!(m["m3"]["model"], "arena-model");
        assert_eq!(m["m3"]["selectedModelId"], "");
        assert_eq!(m["m3"]["modelName"], "");
        assert_eq!(chat["messages"][0]["model"], "");
        assert_eq!(chat["messages"][0]["modelName"], "");
        assert_eq!((kept, removed), (3, 5));
        // Only the redacted values changed.
        let mut expected = shared_chat();
        expected["chat"]["models"] = json!(["gpt-4o"]);
        for path in [
            "/chat/history/messages/m2/model",
            "/chat/history/messages/m2/modelName",
            "/chat/history/messages/m3/selectedModelId",
            "/chat/history/messages/m3/modelName",
            "/chat/messages/0/model",
            "/chat/messages/0/modelName",
        ] {
            *expected.pointer_mut(path).unwrap() = json!("");
        }
        expected["chat"]["history"]["messages"]["m1"]["models"] = json!(["gpt-4o"]);
        assert_eq!(v, expected);
    }

    #[test]
    fn nothing_to_hide_is_byte_exact() {
        let body = "{ \"id\":\"c\", \"chat\" : {\"models\":[ \"a\" ],\"history\":{\"messages\":{\"x\":{\"model\":\"a\",\"n\":1.50}}}} }";
        let (out, kept, removed) = run(body, Document::Chat, &["a"]).unwrap();
        assert_eq!((out.as_str(), kept, removed), (body, 2, 0));
        let (out, _, _) = run(body, Document::Chat, &[]).unwrap();
        assert_eq!(
            out,
            "{ \"id\":\"c\", \"chat\" : {\"models\":[]\
             ,\"history\":{\"messages\":{\"x\":{\"model\":\"\",\"n\":1.50}}}} }"
        );
    }

    #[test]
    fn duplicates_and_escapes_are_all_redacted() {
        let body = r#"{"chat":{"history":{"messages":{"x":{"model":"a","mod\u0065l":"b","model":"g\u0070t"}}}}}"#;
        let (out, kept, removed) = run(body, Document::Chat, &["a"]).unwrap();
        assert_eq!(
            out,
            r#"{"chat":{"history":{"messages":{"x":{"model":"a","mod\u0065l":"","model":""}}}}}"#
        );
        assert_eq!((kept, removed), (1, 2));
    }

    #[test]
    fn lists_of_chats_and_null() {
        let one = shared_chat().to_string();
        let (out, _, removed) = run(&format!("[{one},{one}]"), Document::Chats, &[]).unwrap();
        assert_eq!(removed, 16);
        assert!(!out.contains("claude-3\""), "{out}");
        assert_eq!(run("null", Document::Chat, &[]).unwrap().0, "null");
        assert_eq!(run("[]", Document::Chats, &[]).unwrap().0, "[]");
    }

    #[test]
    fn channel_messages_hide_a_forbidden_models_reply() {
        let body = json!([
            {"id": "1", "content": "hello", "meta": {"model_id": "claude-3", "model_name": "Claude"},
             "reply_to_message": {"id": "0", "meta": {"model_id": "gpt-4o", "model_name": "GPT"}}},
            {"id": "2", "content": "hi", "meta": null, "reply_to_message": null},
            {"id": "3", "meta": {"model_id": "gpt-4o", "model_name": "GPT"},
             "reply_to_message": {"id": "1", "meta": {"model_id": "claude-3", "model_name": "Claude"}}}
        ])
        .to_string();
        let (out, kept, removed) = run(&body, Document::ChannelMessages, &["gpt-4o"]).unwrap();
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v[0]["meta"], json!({"model_id": "", "model_name": ""}));
        assert_eq!(v[0]["reply_to_message"]["meta"]["model_id"], "gpt-4o");
        assert_eq!(v[0]["content"], "hello");
        assert_eq!(v[1]["meta"], Value::Null);
        assert_eq!(v[2]["meta"]["model_name"], "GPT");
        assert_eq!(
            v[2]["reply_to_message"]["meta"],
            json!({"model_id": "", "model_name": ""})
        );
        assert_eq!((kept, removed), (2, 2));
        let asked = r#"{"content":"<@M:claude-3|Claude> and <@M:gpt-4o|GPT> \u00e9 <@U:u1|Bob>","meta":null}"#;
        let (out, kept, removed) = run(asked, Document::ChannelMessage, &["gpt-4o"]).unwrap();
        assert_eq!(
            out,
            r#"{"content":" and <@M:gpt-4o|GPT> é <@U:u1|Bob>","meta":null}"#
        );
        assert_eq!((kept, removed), (1, 1));
        let single = r#"{"id":"1","meta":{"model_id":"claude-3","model_name":"Claude"}}"#;
        let (out, _, _) = run(single, Document::ChannelMessage, &[]).unwrap();
        assert_eq!(out, r#"{"id":"1","meta":{"model_id":"","model_name":""}}"#);
    }

    #[test]
    fn what_cannot_be_checked_is_an_error() {
        for (body, doc) in [
            (r#"{"chat":{"models":"gpt-4o"}}"#, Document::Chat),
            (r#"{"chat":{"models":[{"id":"gpt-4o"}]}}"#, Document::Chat),
            (r#"{"chat":{"messages":[{"model":7}]}}"#, Document::Chat),
            (r#"{"meta":{"model_id":["x"]}}"#, Document::ChannelMessage),
            (r#"[1]"#, Document::Chats),
            (r#"{"chat":{}}"#, Document::Chats),
            (r#"[]"#, Document::ChannelMessage),
            ("{\"chat\":{}", Document::Chat),
            ("\u{0}", Document::Chat),
        ] {
            assert!(run(body, doc, &[]).is_err(), "{body}");
        }
        // Client-written parts that are not objects hold nothing to read.
        assert!(run(r#"{"chat":"text"}"#, Document::Chat, &[]).is_ok());
        assert!(run(
            r#"{"chat":{"history":{"messages":[1]},"messages":{"a":1}}}"#,
            Document::Chat,
            &[]
        )
        .is_ok());
    }

    fn paths(body: &str, rules: &[Rule], ids: &[&str]) -> Text {
        text(redact_paths(body.as_bytes(), rules, &mut |id: &str| {
            ids.contains(&id)
        }))
    }

    #[test]
    fn rules_follow_keys_and_elements_and_keep_every_other_byte() {
        use Step::{Each, Key};
        const RULES: &[Rule] = &[
            Rule {
                path: &[Each, Key("data"), Key("model_ids")],
                ids: Ids::List,
            },
            Rule {
                path: &[Each, Key("data"), Key("pick")],
                ids: Ids::One,
            },
            Rule {
                path: &[Each, Key("csv")],
                ids: Ids::CommaList,
            },
            Rule {
                path: &[Each, Key("text")],
                ids: Ids::Mentions,
            },
        ];
        let body = r#"[ {"id":"f1","data":{"model_ids":["a","b"],"pick":"b"},"csv":"b,a,","text":"<@M:b|B> hi"},
            {"id":"f2","data":null}, {"id":"f3","data":{"model_ids":null}}, 7 ]"#;
        let (out, kept, removed) = paths(body, RULES, &["a"]).unwrap();
        assert_eq!(
            out,
            r#"[ {"id":"f1","data":{"model_ids":["a"],"pick":""},"csv":"a","text":" hi"},
            {"id":"f2","data":null}, {"id":"f3","data":{"model_ids":null}}, 7 ]"#
        );
        assert_eq!((kept, removed), (2, 4));
        let (same, _, removed) = paths(body, RULES, &["a", "b"]).unwrap();
        assert_eq!((same.as_str(), removed), (body, 0));
        // The top must be what the first step walks; `null` is nothing.
        assert!(paths("{}", RULES, &[]).is_err());
        assert_eq!(paths("null", RULES, &[]).unwrap().0, "null");
        // A model field of the wrong type cannot be checked.
        assert!(paths(r#"[{"data":{"model_ids":"a"}}]"#, RULES, &[]).is_err());
        assert!(paths(r#"[{"data":{"pick":["a"]}}]"#, RULES, &[]).is_err());
    }

    #[test]
    fn socket_events_hide_other_peoples_models() {
        let mut permitted = |id: &str| id == "gpt-4o";
        let channel = r#"42["events:channel",{"channel_id":"c","data":{"type":"message","data":{"id":"1","content":"<@M:llama|L> hi","meta":{"model_id":"llama","model_name":"Llama"}}},"user":{"id":"u"}}]"#;
        assert_eq!(
            redact_socket_packet(channel, &mut permitted)
                .unwrap()
                .unwrap(),
            r#"42["events:channel",{"channel_id":"c","data":{"type":"message","data":{"id":"1","content":" hi","meta":{"model_id":"","model_name":""}}},"user":{"id":"u"}}]"#
        );
        // A namespace and an ack id are kept.
        let shared = r#"42/ns,7["events",{"chat_id":"c","data":{"type":"chat:messages","data":{"messages":{"a":{"model":"llama","modelName":"Llama"},"b":{"model":"gpt-4o"}}}}}]"#;
        assert_eq!(
            redact_socket_packet(shared, &mut permitted)
                .unwrap()
                .unwrap(),
            r#"42/ns,7["events",{"chat_id":"c","data":{"type":"chat:messages","data":{"messages":{"a":{"model":"","modelName":""},"b":{"model":"gpt-4o"}}}}}]"#
        );
        let picked = r#"42["events",{"data":{"type":"chat:completion","data":{"selected_model_id":"llama","content":"x"}}}]"#;
        assert_eq!(
            redact_socket_packet(picked, &mut permitted)
                .unwrap()
                .unwrap(),
            r#"42["events",{"data":{"type":"chat:completion","data":{"selected_model_id":"","content":"x"}}}]"#
        );
        // Nothing to hide, other events, other packets: unchanged.
        for same in [
            r#"42["events",{"data":{"type":"chat:completion","data":{"selected_model_id":"gpt-4o"}}}]"#,
            r#"42["user-list",{"user_ids":["a"]}]"#,
            "3",
            "40{\"sid\":\"x\"}",
            "42/ns",
        ] {
            assert_eq!(
                redact_socket_packet(same, &mut permitted).unwrap(),
                None,
                "{same}"
            );
        }
        assert!(redact_socket_packet(
            r#"42["events:channel",{"data":{"data":{"meta":{"model_id":1}}}}]"#,
            &mut permitted
        )
        .is_err());
    }

    #[test]
    fn usage_counts_keyed_by_model_and_chats_inside_documents() {
        use Step::{Key, Values};
        const RULES: &[Rule] = &[
            Rule {
                path: &[Key("models")],
                ids: Ids::Keys,
            },
            Rule {
                path: &[Key("snapshot"), Key("chat")],
                ids: Ids::Chat,
            },
            Rule {
                path: &[Key("chats"), Values, Key("model")],
                ids: Ids::One,
            },
        ];
        let body = r#"{"models":{"a":3,"b":1,"c\u0021":2},"snapshot":{"chat":{"models":["b"]}},"chats":{"x":{"model":"b"},"y":{"model":"a"}}}"#;
        let (out, kept, removed) = paths(body, RULES, &["a"]).unwrap();
        assert_eq!(
            out,
            r#"{"models":{"a":3},"snapshot":{"chat":{"models":[]}},"chats":{"x":{"model":""},"y":{"model":"a"}}}"#
        );
        assert_eq!((kept, removed), (2, 4));
        let (out, _, _) = paths(body, RULES, &["a", "b", "c!"]).unwrap();
        assert_eq!(out, body);
        assert!(paths(r#"{"models":["a"]}"#, RULES, &[]).is_err());
    }
}
