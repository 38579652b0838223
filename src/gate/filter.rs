//! Rewriting model-list responses so they show only permitted models.
//!
//! The body is never re-serialized: it is parsed into borrowed
//! [`RawValue`] slices and the output is spliced together from the original
//! bytes, replacing only the model array(s) (and `total` for
//! [`ListShape::Items`]). Every other byte — key order, number formatting,
//! escapes, and each kept entry — is exactly what Open WebUI sent. Each
//! entry is deserialized only far enough to read its id(s); the rest of it
//! is skipped, not built into a `Value` tree.
//!
//! Anything unexpected in a 2xx list (not JSON, not the shape the route
//! produces, an entry without a string id) is a [`FilterError`]: the proxy
//! answers 502 and never forwards the unfiltered body.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

pub use super::decode::decode_body;
use super::redact::rules::{
    APP_CONFIG, CHAT_STATS, CHAT_STATS_EXPORT, CHAT_STATS_EXPORTS, FEEDBACK, FEEDBACKS, FOLDER,
    FOLDERS, GROUPS, SEARCH_RESULTS, TASK_CONFIG, USAGE, USER_SETTINGS, USER_USAGE,
};
use super::redact::{redact_document, redact_paths, Document};
use super::shape::ListShape;

/// The result of filtering a 2xx model-list body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Filtered {
    /// The rewritten body (for [`ListShape::Single`] when permitted: the
    /// body unchanged).
    List {
        body: Vec<u8>,
        /// Entries kept (summed over duplicate arrays).
        kept: usize,
        /// Entries removed.
        removed: usize,
    },
    /// [`ListShape::Single`] naming a model the user may not use: the proxy
    /// answers 404, as Open WebUI does for a model the user cannot see.
    Forbidden,
}

/// Why a model-list body could not be filtered (the proxy answers 502).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FilterError {
    #[error("model list is not valid JSON: {0}")]
    NotJson(String),
    #[error("model list does not have the expected shape: {0}")]
    WrongShape(&'static str),
    #[error("model list entry has no string id")]
    EntryWithoutId,
    #[error("unsupported content encoding {0:?}")]
    UnsupportedEncoding(String),
    #[error("cannot decode model list: {0}")]
    Decode(String),
    #[error("model list exceeds the size cap")]
    TooLarge,
}

fn not_json(e: serde_json::Error) -> FilterError {
    FilterError::NotJson(e.to_string())
}

/// Filters a decoded 2xx model-list `body` of the given `shape`, keeping
/// the entries for which `permitted` returns true, in their original order.
///
/// - `Data` / `OllamaModels` / `Items`: the object's `data` / `models` /
///   `items` array is filtered. If the key occurs more than once, every
///   occurrence is filtered (Python's `json` and browsers' `JSON.parse` take
///   the last; no reader may see an unfiltered copy). Keys are compared
///   after unescaping (`"d\u0061ta"` is `data` to every JSON reader).
/// - `OllamaModels`: an entry is kept only if every id it names (`model`
///   and `name`, when present) is permitted; it must name at least one.
/// - `Items`: see [`fix_total`] for `total`.
/// - `BareList`: the top-level array is filtered.
/// - `Single`: the object's `id` decides; [`Filtered::Forbidden`] if not
///   permitted.
pub fn filter_list(
    body: &[u8],
    shape: ListShape,
    permitted: &mut dyn FnMut(&str) -> bool,
) -> Result<Filtered, FilterError> {
    match shape {
        ListShape::Data => filter_object(body, "data", IdRule::Id, false, permitted),
        ListShape::OllamaModels => filter_object(body, "models", IdRule::Ollama, false, permitted),
        ListShape::Items => filter_object(body, "items", IdRule::Id, true, permitted),
        ListShape::BareList => {
            let entries: Vec<&RawValue> = serde_json::from_slice(body).map_err(|e| {
                if e.is_data() {
                    FilterError::WrongShape("expected a JSON array")
                } else {
                    not_json(e)
                }
            })?;
            let (inner, kept, removed) = filter_entries(&entries, IdRule::Id, permitted)?;
            let mut array = Vec::with_capacity(inner.len() + 2);
            array.push(b'[');
            array.extend_from_slice(&inner);
            array.push(b']');
            Ok(Filtered::List {
                body: array,
                kept,
                removed,
            })
        }
        ListShape::AppConfig => redact_paths(body, APP_CONFIG, permitted),
        ListShape::TaskConfig => redact_paths(body, TASK_CONFIG, permitted),
        ListShape::Usage => redact_paths(body, USAGE, permitted),
        ListShape::Folder => redact_paths(body, FOLDER, permitted),
        ListShape::Folders => redact_paths(body, FOLDERS, permitted),
        ListShape::Groups => redact_paths(body, GROUPS, permitted),
        ListShape::UserSettings => redact_paths(body, USER_SETTINGS, permitted),
        ListShape::SearchResults => redact_paths(body, SEARCH_RESULTS, permitted),
        ListShape::ChatStats => redact_paths(body, CHAT_STATS, permitted),
        ListShape::ChatStatsExports => redact_paths(body, CHAT_STATS_EXPORTS, permitted),
        ListShape::ChatStatsExport => redact_paths(body, CHAT_STATS_EXPORT, permitted),
        ListShape::UserUsage => redact_paths(body, USER_USAGE, permitted),
        ListShape::Feedbacks => redact_paths(body, FEEDBACKS, permitted),
        ListShape::Feedback => redact_paths(body, FEEDBACK, permitted),
        ListShape::Chat => redact_document(body, Document::Chat, permitted),
        ListShape::Chats => redact_document(body, Document::Chats, permitted),
        ListShape::ChannelMessage => redact_document(body, Document::ChannelMessage, permitted),
        ListShape::ChannelMessages => redact_document(body, Document::ChannelMessages, permitted),
        ListShape::Single => {
            let _: de::IgnoredAny = serde_json::from_slice(body).map_err(not_json)?;
            let entry: IdOnly = serde_json::from_slice(body).map_err(|e| {
                if e.is_data() {
                    FilterError::EntryWithoutId
                } else {
                    not_json(e)
                }
            })?;
            if permitted(&entry.id) {
                Ok(Filtered::List {
                    body: body.to_vec(),
                    kept: 1,
                    removed: 0,
                })
            } else {
                Ok(Filtered::Forbidden)
            }
        }
    }
}

#[derive(Clone, Copy)]
enum IdRule {
    /// `{"id": "..."}`.
    Id,
    /// `{"model": "...", "name": "..."}`.
    Ollama,
}

/// Just enough of an entry to know its id; every other member is skipped
/// by serde without being built. A duplicate `id` is a serde error, so an
/// entry cannot show one id to modelgate and another to a browser.
#[derive(Deserialize)]
struct IdOnly<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
}

/// A member that is absent (`Absent`, via `default`) or present with any
/// value, `null` included (an `Option` would conflate `null` with absent).
#[derive(Default)]
enum Member {
    #[default]
    Absent,
    Present(Value),
}

impl<'de> Deserialize<'de> for Member {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Value::deserialize(d).map(Member::Present)
    }
}

#[derive(Deserialize)]
struct OllamaIds {
    #[serde(default)]
    model: Member,
    #[serde(default)]
    name: Member,
}

/// Whether one entry may be shown.
fn entry_permitted(
    entry: &RawValue,
    rule: IdRule,
    permitted: &mut dyn FnMut(&str) -> bool,
) -> Result<bool, FilterError> {
    match rule {
        IdRule::Id => {
            let e: IdOnly =
                serde_json::from_str(entry.get()).map_err(|_| FilterError::EntryWithoutId)?;
            Ok(permitted(&e.id))
        }
        IdRule::Ollama => {
            let e: OllamaIds =
                serde_json::from_str(entry.get()).map_err(|_| FilterError::EntryWithoutId)?;
            let mut named = 0;
            let mut all = true;
            for member in [e.model, e.name] {
                match member {
                    Member::Absent => {}
                    Member::Present(Value::String(id)) => {
                        named += 1;
                        // Ask about every id even after a refusal: the
                        // callback may record decisions.
                        all &= permitted(&id);
                    }
                    Member::Present(_) => return Err(FilterError::EntryWithoutId),
                }
            }
            if named == 0 {
                return Err(FilterError::EntryWithoutId);
            }
            Ok(all)
        }
    }
}

/// The kept entries' original bytes joined by `,` (the inside of the
/// filtered array), with the kept and removed counts.
fn filter_entries(
    entries: &[&RawValue],
    rule: IdRule,
    permitted: &mut dyn FnMut(&str) -> bool,
) -> Result<(Vec<u8>, usize, usize), FilterError> {
    let mut out = Vec::with_capacity(entries.iter().map(|e| e.get().len() + 1).sum::<usize>());
    let (mut kept, mut removed) = (0, 0);
    for entry in entries {
        if entry_permitted(entry, rule, permitted)? {
            if kept > 0 {
                out.push(b',');
            }
            out.extend_from_slice(entry.get().as_bytes());
            kept += 1;
        } else {
            removed += 1;
        }
    }
    Ok((out, kept, removed))
}

/// A top-level member's value: the model array's entries (parsed in the
/// same pass as the object, so the list is scanned once before the
/// per-entry id reads) or any other value as an untouched slice.
enum MemberValue<'a> {
    List(Vec<&'a RawValue>),
    Other(&'a RawValue),
}

/// The members of a top-level object in order, duplicates included, every
/// slice borrowed from the input. `key` names the model array.
struct Members<'a>(Vec<(String, MemberValue<'a>)>);

struct MembersSeed {
    key: &'static str,
}

impl<'de> de::DeserializeSeed<'de> for MembersSeed {
    type Value = Members<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for MembersSeed {
    type Value = Members<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a JSON object whose {:?} is an array", self.key)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members = Vec::new();
        while let Some(k) = map.next_key::<String>()? {
            let v = if k == self.key {
                MemberValue::List(map.next_value()?)
            } else {
                MemberValue::Other(map.next_value()?)
            };
            members.push((k, v));
        }
        Ok(Members(members))
    }
}

/// Where `raw` (borrowed from `body`) lies inside `body`.
pub(super) fn span(body: &[u8], raw: &RawValue) -> Result<(usize, usize), FilterError> {
    let start = (raw.get().as_ptr() as usize)
        .checked_sub(body.as_ptr() as usize)
        .ok_or(FilterError::WrongShape("value outside the body"))?;
    let end = start + raw.get().len();
    // Always true for a value serde_json borrowed from `body`; checked so a
    // wrong assumption fails closed instead of splicing garbage.
    if body.get(start..end) != Some(raw.get().as_bytes()) {
        return Err(FilterError::WrongShape("value outside the body"));
    }
    Ok((start, end))
}

fn filter_object(
    body: &[u8],
    key: &'static str,
    rule: IdRule,
    fix_total_member: bool,
    permitted: &mut dyn FnMut(&str) -> bool,
) -> Result<Filtered, FilterError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let members = de::DeserializeSeed::deserialize(MembersSeed { key }, &mut de)
        .and_then(|m| de.end().map(|()| m))
        .map_err(|e| {
            if e.is_data() {
                FilterError::WrongShape("expected a JSON object holding the model array")
            } else {
                not_json(e)
            }
        })?;
    let mut edits: Vec<(usize, usize, Vec<u8>)> = Vec::new();
    let (mut kept, mut removed) = (0, 0);
    let mut found = false;
    // For `total`: the last `items` (the one every JSON reader uses).
    let mut last_counts: Option<(usize, usize)> = None;
    for (_, value) in &members.0 {
        let MemberValue::List(entries) = value else {
            continue;
        };
        found = true;
        let (inner, k, r) = filter_entries(entries, rule, permitted)?;
        // Replace from the first entry's first byte to the last entry's
        // last byte: the brackets and the whitespace inside them stay.
        if let (Some(first), Some(last)) = (entries.first(), entries.last()) {
            let (start, _) = span(body, first)?;
            let (_, end) = span(body, last)?;
            edits.push((start, end, inner));
        }
        kept += k;
        removed += r;
        last_counts = Some((k, r));
    }
    if !found {
        return Err(FilterError::WrongShape("the model list member is missing"));
    }
    if fix_total_member {
        let (k, r) = last_counts.unwrap_or((0, 0));
        for (name, value) in &members.0 {
            if let (MemberValue::Other(value), "total") = (value, name.as_str()) {
                if let Some(total) = fix_total(value, k, r)? {
                    let (start, end) = span(body, value)?;
                    edits.push((start, end, total.to_string().into_bytes()));
                }
            }
        }
    }
    edits.sort_by_key(|e| e.0);
    let mut out = Vec::with_capacity(body.len());
    let mut at = 0;
    for (start, end, replacement) in edits {
        out.extend_from_slice(&body[at..start]);
        out.extend_from_slice(&replacement);
        at = end;
    }
    out.extend_from_slice(&body[at..]);
    Ok(Filtered::List {
        body: out,
        kept,
        removed,
    })
}

/// The new `total` of a `/api/v1/models/list` page, if it changes.
///
/// `routers/models.py` `get_models` pages with `skip = (page - 1) * limit`,
/// `limit = PAGE_ITEM_COUNT` (30), and `models/models.py` `search_models`
/// computes `total` as the count of *all* matching rows before offset and
/// limit: `total` counts every page, `items` holds one page. Only when this page holds the whole
/// result (`items` had exactly `total` entries) is the permitted total
/// known: it is then the kept count. Otherwise `total` is left alone: the
/// hidden models on other pages cannot be counted from here, and lowering
/// `total` by this page's removals would shrink the page count the UI
/// offers and make permitted models on later pages unreachable. What that
/// leaks is a number, never a model id.
fn fix_total(value: &RawValue, kept: usize, removed: usize) -> Result<Option<u64>, FilterError> {
    let total: u64 = serde_json::from_str(value.get())
        .map_err(|_| FilterError::WrongShape("total is not a non-negative integer"))?;
    let on_page = (kept + removed) as u64;
    Ok((on_page == total && removed > 0).then_some(kept as u64))
}

/// Entry point for `cargo fuzz`: filtering and decoding arbitrary bytes
/// must never panic.
#[cfg(fuzzing)]
pub mod fuzz {
    use super::*;

    pub fn filter(data: &[u8]) {
        for shape in [
            ListShape::Data,
            ListShape::OllamaModels,
            ListShape::Items,
            ListShape::BareList,
            ListShape::Single,
        ] {
            let mut permitted = |id: &str| id.len() % 2 == 0;
            if let Ok(Filtered::List { body, .. }) = filter_list(data, shape, &mut permitted) {
                // A filtered body filters to itself.
                let again = filter_list(&body, shape, &mut permitted);
                assert!(
                    matches!(again, Ok(Filtered::List { body: b, removed: 0, .. }) if b == body)
                );
            }
        }
        // Documents: never a panic. (Not idempotent: cutting a mention out of
        // a text can join its neighbours into a new one, which is the
        // author's own text.)
        for shape in [
            ListShape::Chat,
            ListShape::Chats,
            ListShape::ChannelMessage,
            ListShape::ChannelMessages,
        ] {
            let _ = filter_list(data, shape, &mut |id: &str| id.len() % 2 == 0);
        }
        for coding in ["gzip", "deflate", "br", "zstd"] {
            let v = http::HeaderValue::from_static(coding);
            let _ = decode_body(Some(&v), data, 1 << 20);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn allow<'a>(ids: &'a [&'a str]) -> impl FnMut(&str) -> bool + 'a {
        move |id| ids.contains(&id)
    }

    fn run(body: &str, shape: ListShape, ids: &[&str]) -> Result<Filtered, FilterError> {
        filter_list(body.as_bytes(), shape, &mut allow(ids))
    }

    fn text(f: Filtered) -> (String, usize, usize) {
        match f {
            Filtered::List {
                body,
                kept,
                removed,
            } => (String::from_utf8(body).unwrap(), kept, removed),
            Filtered::Forbidden => panic!("forbidden"),
        }
    }

    #[test]
    fn data_shape_keeps_everything_else_byte_exact() {
        let body = r#"{ "object" : "list",
  "data": [ {"id":"a","created":1.50e3,"name":"\u00e9\u0041"} , {"id":"b"},{"id":"c","x":[1,  2]} ],
  "z\u00e9": 10000000000000000000000, "after": {"k": null} }"#;
        let (out, kept, removed) = text(run(body, ListShape::Data, &["a", "c"]).unwrap());
        assert_eq!(
            out,
            r#"{ "object" : "list",
  "data": [ {"id":"a","created":1.50e3,"name":"\u00e9\u0041"},{"id":"c","x":[1,  2]} ],
  "z\u00e9": 10000000000000000000000, "after": {"k": null} }"#
        );
        assert_eq!((kept, removed), (2, 1));
    }

    #[test]
    fn everything_removed_and_nothing_removed() {
        let (out, kept, removed) =
            text(run(r#"{"data":[{"id":"a"}]}"#, ListShape::Data, &[]).unwrap());
        assert_eq!((out.as_str(), kept, removed), (r#"{"data":[]}"#, 0, 1));
        let (out, ..) = text(run(r#"{"data":[]}"#, ListShape::Data, &[]).unwrap());
        assert_eq!(out, r#"{"data":[]}"#);
    }

    #[test]
    fn duplicate_keys_all_filtered_including_escaped_spelling() {
        let body = r#"{"data":[{"id":"a"},{"id":"x"}],"d\u0061ta":[{"id":"y"},{"id":"a"}],"data":[{"id":"z"}]}"#;
        let (out, kept, removed) = text(run(body, ListShape::Data, &["a"]).unwrap());
        assert_eq!(
            out,
            r#"{"data":[{"id":"a"}],"d\u0061ta":[{"id":"a"}],"data":[]}"#
        );
        assert_eq!((kept, removed), (2, 3));
    }

    #[test]
    fn escaped_ids_are_unescaped_before_the_decision() {
        let body = r#"{"data":[{"id":"gpt\u002d4"},{"id":"o\/1"}]}"#;
        let (out, ..) = text(run(body, ListShape::Data, &["gpt-4"]).unwrap());
        assert_eq!(out, r#"{"data":[{"id":"gpt\u002d4"}]}"#);
        let (out, ..) = text(run(body, ListShape::Data, &["o/1"]).unwrap());
        assert_eq!(out, r#"{"data":[{"id":"o\/1"}]}"#);
    }

    #[test]
    fn ollama_shape_needs_every_named_id() {
        let body = r#"{"models":[{"name":"a","model":"a","size":1},{"name":"a","model":"b"},{"model":"c"},{"name":"a"}]}"#;
        let (out, kept, removed) = text(run(body, ListShape::OllamaModels, &["a", "c"]).unwrap());
        assert_eq!(
            out,
            r#"{"models":[{"name":"a","model":"a","size":1},{"model":"c"},{"name":"a"}]}"#
        );
        assert_eq!((kept, removed), (3, 1));
        for bad in [
            r#"{"models":[{"size":1}]}"#,
            r#"{"models":[{"model":null,"name":"a"}]}"#,
            r#"{"models":[{"model":1}]}"#,
            r#"{"models":[{"model":"a","model":"b"}]}"#,
        ] {
            assert_eq!(
                run(bad, ListShape::OllamaModels, &["a", "b"]),
                Err(FilterError::EntryWithoutId),
                "{bad}"
            );
        }
    }

    #[test]
    fn items_total_fixed_when_the_page_is_the_whole_list() {
        let body = r#"{"items":[{"id":"a","base_model_id":null},{"id":"b"},{"id":"c"}],"total":3}"#;
        let (out, ..) = text(run(body, ListShape::Items, &["a"]).unwrap());
        assert_eq!(
            out,
            r#"{"items":[{"id":"a","base_model_id":null}],"total":1}"#
        );
        // `total` before `items`, and a duplicate `total`.
        let body = r#"{"total":3,"items":[{"id":"a"},{"id":"b"},{"id":"c"}],"total":3}"#;
        let (out, ..) = text(run(body, ListShape::Items, &["b", "c"]).unwrap());
        assert_eq!(
            out,
            r#"{"total":2,"items":[{"id":"b"},{"id":"c"}],"total":2}"#
        );
        // Nothing removed: `total` untouched byte for byte.
        let body = r#"{"items":[{"id":"a"}],"total":1}"#;
        assert_eq!(text(run(body, ListShape::Items, &["a"]).unwrap()).0, body);
    }

    #[test]
    fn items_total_kept_on_a_page_of_a_longer_list() {
        // Page 1 of 45: later pages still exist and must stay reachable.
        let body = r#"{"items":[{"id":"a"},{"id":"b"}],"total":45}"#;
        let (out, ..) = text(run(body, ListShape::Items, &["a"]).unwrap());
        assert_eq!(out, r#"{"items":[{"id":"a"}],"total":45}"#);
        assert!(matches!(
            run(r#"{"items":[],"total":"3"}"#, ListShape::Items, &[]),
            Err(FilterError::WrongShape(_))
        ));
        assert!(matches!(
            run(r#"{"items":[],"total":-1}"#, ListShape::Items, &[]),
            Err(FilterError::WrongShape(_))
        ));
    }

    #[test]
    fn bare_list() {
        let body = r#" [ {"id":"a","meta":{"x":"\ud83d\ude00"}}, {"id":"b"} ] "#;
        let (out, kept, removed) = text(run(body, ListShape::BareList, &["a"]).unwrap());
        assert_eq!(out, r#"[{"id":"a","meta":{"x":"\ud83d\ude00"}}]"#);
        assert_eq!((kept, removed), (1, 1));
        assert!(matches!(
            run(r#"{"data":[]}"#, ListShape::BareList, &[]),
            Err(FilterError::WrongShape(_))
        ));
    }

    #[test]
    fn single() {
        let body = r#"{"id":"a","name":"A","meta":{}}"#;
        assert_eq!(text(run(body, ListShape::Single, &["a"]).unwrap()).0, body);
        assert_eq!(
            run(body, ListShape::Single, &["b"]),
            Ok(Filtered::Forbidden)
        );
        assert_eq!(
            run(r#"{"name":"A"}"#, ListShape::Single, &["a"]),
            Err(FilterError::EntryWithoutId)
        );
        assert_eq!(
            run(r#"{"id":"a","id":"b"}"#, ListShape::Single, &["a"]),
            Err(FilterError::EntryWithoutId)
        );
        assert!(matches!(
            run(r#"{"id":"a""#, ListShape::Single, &["a"]),
            Err(FilterError::NotJson(_))
        ));
    }

    #[test]
    fn wrong_shapes_and_non_json_are_errors() {
        for (body, shape) in [
            ("<html>oops</html>", ListShape::Data),
            ("", ListShape::Data),
            (r#"{"data":[{"id":"a"}]} trailing"#, ListShape::Data),
            ("[]", ListShape::Data),
            (r#"{"object":"list"}"#, ListShape::Data),
            (r#"{"data":null}"#, ListShape::Data),
            (r#"{"data":{"id":"a"}}"#, ListShape::Data),
            (r#"{"data":[{"id":"a"}]}"#, ListShape::OllamaModels),
            (r#"{"items":[{"id":"a"}]}"#, ListShape::Data),
            ("\u{feff}{\"data\":[]}", ListShape::Data),
        ] {
            assert!(run(body, shape, &["a"]).is_err(), "{body}");
        }
        for bad_entry in [
            r#"{"data":[{"id":1}]}"#,
            r#"{"data":[{"name":"a"}]}"#,
            r#"{"data":["a"]}"#,
            r#"{"data":[{"id":null}]}"#,
        ] {
            assert_eq!(
                run(bad_entry, ListShape::Data, &["a"]),
                Err(FilterError::EntryWithoutId),
                "{bad_entry}"
            );
        }
        assert!(filter_list(
            b"{\"data\":[{\"id\":\"\xff\"}]}",
            ListShape::Data,
            &mut |_| true
        )
        .is_err());
    }

    #[test]
    fn errors_are_bad_gateway() {
        assert_eq!(
            crate::error::Refusal::from(FilterError::TooLarge).status(),
            http::StatusCode::BAD_GATEWAY
        );
        assert_eq!(
            crate::error::Refusal::from(FilterError::EntryWithoutId)
                .answer()
                .code,
            "upstream_bad_response"
        );
    }

    // ---- properties ----

    fn entry() -> impl Strategy<Value = Value> {
        (
            "[a-e]{1,2}",
            proptest::option::of(any::<i64>()),
            proptest::option::of("[ -~]{0,8}"),
        )
            .prop_map(|(id, n, s)| {
                let mut m = serde_json::Map::new();
                m.insert("id".into(), json!(id));
                if let Some(n) = n {
                    m.insert("created".into(), json!(n));
                }
                if let Some(s) = s {
                    m.insert("info".into(), json!({"s": s, "l": [1, 2.5, null]}));
                }
                Value::Object(m)
            })
    }

    fn permitted_set() -> impl Strategy<Value = Vec<String>> {
        proptest::collection::vec("[a-e]{1,2}", 0..10)
    }

    fn list_of(shape: ListShape, entries: Vec<Value>, extra: &str) -> String {
        let arr = Value::Array(entries.clone()).to_string();
        match shape {
            ListShape::Data => format!(r#"{{"object":"list","data":{arr},"extra":{extra}}}"#),
            ListShape::Items => format!(
                r#"{{"items":{arr},"total":{},"extra":{extra}}}"#,
                entries.len()
            ),
            ListShape::OllamaModels => {
                let arr: Vec<Value> = entries
                    .into_iter()
                    .map(|mut e| {
                        let id = e["id"].clone();
                        let obj = e.as_object_mut().unwrap();
                        obj.remove("id");
                        obj.insert("model".into(), id.clone());
                        obj.insert("name".into(), id);
                        e
                    })
                    .collect();
                format!(r#"{{"models":{},"extra":{extra}}}"#, Value::Array(arr))
            }
            _ => arr,
        }
    }

    fn array_key(shape: ListShape) -> Option<&'static str> {
        match shape {
            ListShape::Data => Some("data"),
            ListShape::Items => Some("items"),
            ListShape::OllamaModels => Some("models"),
            _ => None,
        }
    }

    fn id_of(shape: ListShape, e: &Value) -> String {
        let k = if shape == ListShape::OllamaModels {
            "model"
        } else {
            "id"
        };
        e[k].as_str().unwrap().to_owned()
    }

    fn shapes() -> impl Strategy<Value = ListShape> {
        prop_oneof![
            Just(ListShape::Data),
            Just(ListShape::Items),
            Just(ListShape::OllamaModels),
            Just(ListShape::BareList)
        ]
    }

    proptest! {
        #[test]
        fn filtering_properties(
            shape in shapes(),
            entries in proptest::collection::vec(entry(), 0..20),
            allowed in permitted_set(),
            extra in "[1-9][0-9]{0,29}",
        ) {
            let body = list_of(shape, entries, &extra);
            let mut ok = |id: &str| allowed.iter().any(|a| a == id);
            let Filtered::List { body: out, kept, removed } =
                filter_list(body.as_bytes(), shape, &mut ok).unwrap() else { panic!() };
            let before: Value = serde_json::from_str(&body).unwrap();
            let after: Value = serde_json::from_slice(&out).unwrap();
            let (arr_before, arr_after) = match array_key(shape) {
                Some(k) => (before[k].as_array().unwrap().clone(), after[k].as_array().unwrap().clone()),
                None => (before.as_array().unwrap().clone(), after.as_array().unwrap().clone()),
            };
            // Subset of the permitted ids.
            for e in &arr_after {
                prop_assert!(ok(&id_of(shape, e)));
            }
            // Exactly the permitted entries, in their original order.
            let expected: Vec<Value> = arr_before.iter().filter(|e| ok(&id_of(shape, e))).cloned().collect();
            prop_assert_eq!(&arr_after, &expected);
            prop_assert_eq!((kept, removed), (expected.len(), arr_before.len() - expected.len()));
            // Everything else unchanged (`total` fixed for a whole-list page).
            if let Some(k) = array_key(shape) {
                let (mut b, mut a) = (before.clone(), after.clone());
                b.as_object_mut().unwrap().remove(k);
                a.as_object_mut().unwrap().remove(k);
                if shape == ListShape::Items {
                    prop_assert_eq!(a["total"].as_u64(), Some(kept as u64));
                    b.as_object_mut().unwrap().remove("total");
                    a.as_object_mut().unwrap().remove("total");
                }
                prop_assert_eq!(a, b);
                // The other members' bytes are untouched.
                let extra_member = format!(r#""extra":{extra}"#);
                prop_assert!(String::from_utf8(out.clone()).unwrap().contains(&extra_member));
            }
            // Idempotent.
            let Filtered::List { body: again, removed: removed_again, .. } =
                filter_list(&out, shape, &mut ok).unwrap() else { panic!() };
            prop_assert_eq!(again, out);
            prop_assert_eq!(removed_again, 0);
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            for shape in [ListShape::Data, ListShape::OllamaModels, ListShape::Items, ListShape::BareList, ListShape::Single] {
                let _ = filter_list(&data, shape, &mut |id: &str| id.len() % 2 == 0);
            }
        }
    }

    #[test]
    fn config_responses_name_only_permitted_models() {
        let body = br#"{"name":"mAI","default_models":"gpt-4o,llama,claude","default_pinned_models":"llama","features":{"x":1}}"#;
        let Filtered::List {
            body,
            kept,
            removed,
        } = filter_list(
            body,
            ListShape::AppConfig,
            &mut allow(&["gpt-4o", "claude"]),
        )
        .unwrap()
        else {
            panic!("not a list")
        };
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["default_models"], "gpt-4o,claude");
        assert_eq!(v["default_pinned_models"], "");
        assert_eq!(v["features"]["x"], 1);
        assert_eq!((kept, removed), (2, 2));

        // Nothing to hide: the body is passed byte for byte.
        let body = br#"{"name":"mAI", "default_models":"gpt-4o"}"#;
        let Filtered::List { body: out, .. } =
            filter_list(body, ListShape::AppConfig, &mut allow(&["gpt-4o"])).unwrap()
        else {
            panic!("not a list")
        };
        assert_eq!(out, body);

        let body = br#"{"TASK_MODEL":"llama","TASK_MODEL_EXTERNAL":"gpt-4o","ENABLE_TITLE_GENERATION":true}"#;
        let Filtered::List { body, .. } =
            filter_list(body, ListShape::TaskConfig, &mut allow(&["gpt-4o"])).unwrap()
        else {
            panic!("not a list")
        };
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["TASK_MODEL"], "");
        assert_eq!(v["TASK_MODEL_EXTERNAL"], "gpt-4o");
        assert!(filter_list(
            br#"{"TASK_MODEL":["llama"]}"#,
            ListShape::TaskConfig,
            &mut allow(&[])
        )
        .is_err());
        assert!(filter_list(b"[]", ListShape::AppConfig, &mut allow(&[])).is_err());

        let body = br#"{"model_ids":["gpt-4o","llama"],"user_count":3}"#;
        let Filtered::List { body, removed, .. } =
            filter_list(body, ListShape::Usage, &mut allow(&["gpt-4o"])).unwrap()
        else {
            panic!("not a list")
        };
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["model_ids"], serde_json::json!(["gpt-4o"]));
        assert_eq!(v["user_count"], 3);
        assert_eq!(removed, 1);
        assert!(filter_list(
            br#"{"model_ids":"llama"}"#,
            ListShape::Usage,
            &mut allow(&[])
        )
        .is_err());
    }
}
