//! JSON parsing that refuses every duplicate key.
//!
//! Python's `json` and orjson keep the **last** of two equal keys, also when
//! one is spelled with escapes (`"mod\u0065l"`). Rather than imitate that,
//! any duplicate key in any object is refused: then there is only one
//! reading of the body. Keys are compared after escape decoding, because
//! serde_json hands the visitor decoded strings.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::OnceLock;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::BodyError;
use crate::hashing::Keyed;

/// Parses a whole body as strict JSON.
///
/// * a UTF-8 BOM is skipped, as Python's `json.loads(bytes)` does;
/// * UTF-16/32 bodies (BOM or not) are refused: serde_json reads UTF-8 only,
///   and no client of Open WebUI sends them;
/// * `NaN`/`Infinity`, lone surrogates, invalid UTF-8, trailing bytes and
///   nesting deeper than 128 are refused (Python accepts some of them; being
///   stricter only refuses, it never lets a different model through).
pub fn parse_strict(bytes: &[u8]) -> Result<Value, BodyError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let duplicate = RefCell::new(None);
    let too_many = RefCell::new(false);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = StrictSeed {
        dup: &duplicate,
        too_many: &too_many,
    }
    .deserialize(&mut de)
    .and_then(|v| de.end().map(|()| v));
    match parsed {
        Ok(v) => Ok(v),
        Err(_) if too_many.into_inner() => Err(BodyError::TooManyMembers),
        Err(_) => Err(match duplicate.into_inner() {
            Some(key) => BodyError::DuplicateKey(key),
            None => BodyError::InvalidJson,
        }),
    }
}

/// Like [`parse_strict`], but builds only the top-level members named in
/// `relevant` (where model ids can be); every other member is checked for
/// syntax and skipped without allocating. Top-level keys are still refused
/// when repeated (any of them could shadow a relevant one), and relevant
/// subtrees are parsed strictly. A chat body's message history is most of
/// its bytes and never names the model called, so this is what keeps the
/// per-request cost flat as histories grow.
///
/// A body that is not a JSON object is returned as `Value::Null` after a
/// full strict parse, so the caller's "not an object" check still applies.
/// Invalid UTF-8 anywhere is refused, skipped members included.
pub fn parse_members(body: &[u8], relevant: &[&str]) -> Result<Value, BodyError> {
    let bytes = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        // The whole body: `parse_strict` skips the one BOM itself (given
        // `bytes`, it would skip a second one, which Python refuses).
        return parse_strict(body).map(|_| Value::Null);
    }
    // serde_json checks UTF-8 only in the strings it builds, not in skipped
    // ones: check the whole body first, as `parse_strict` (and Python's
    // `json.loads(bytes)`) would refuse it.
    let text = std::str::from_utf8(bytes).map_err(|_| BodyError::InvalidJson)?;
    let duplicate = RefCell::new(None);
    let too_many = RefCell::new(false);
    let mut de = serde_json::Deserializer::from_str(text);
    let parsed = MembersSeed {
        dup: &duplicate,
        too_many: &too_many,
        relevant,
    }
    .deserialize(&mut de)
    .and_then(|v| de.end().map(|()| v));
    match parsed {
        Ok(v) => Ok(v),
        Err(_) if too_many.into_inner() => Err(BodyError::TooManyMembers),
        Err(_) => Err(match duplicate.into_inner() {
            Some(key) => BodyError::DuplicateKey(key),
            None => BodyError::InvalidJson,
        }),
    }
}

/// More members than any object a client of Open WebUI or of a model API
/// sends has (a chat call has a few dozen at the top; a saved chat's message
/// map has one per message): an object the gate builds or checks for
/// duplicates with more is refused before it grows into a memory and CPU
/// lever. Skipped members are not counted.
pub const MAX_OBJECT_MEMBERS: usize = 65_536;

/// The top-level object for [`parse_members`].
struct MembersSeed<'a> {
    dup: &'a RefCell<Option<String>>,
    too_many: &'a RefCell<bool>,
    relevant: &'a [&'a str],
}

impl<'de> DeserializeSeed<'de> for MembersSeed<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for MembersSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        // A set, not a list: a body of millions of distinct keys must cost
        // linear time, or one small request stalls a worker thread. It holds
        // each key's keyed hash (aHash under per-process random keys), not
        // the key: 8 bytes an entry, no copies. Two distinct keys share a
        // hash with odds of about n²/2⁶⁴, and the key is secret, so only a
        // sender's own body could ever be refused by a collision.
        let hasher = key_hasher();
        let mut seen: HashSet<u64, BuildHasherDefault<PassThrough>> = HashSet::default();
        while let Some(key) = map.next_key_seed(KeySeed)? {
            if seen.len() >= MAX_OBJECT_MEMBERS {
                *self.too_many.borrow_mut() = true;
                return Err(de::Error::custom("too many members"));
            }
            if self.relevant.contains(&key.as_ref()) {
                let value = map.next_value_seed(StrictSeed {
                    dup: self.dup,
                    too_many: self.too_many,
                })?;
                out.insert(key.clone().into_owned(), value);
            } else {
                map.next_value::<de::IgnoredAny>()?;
            }
            if !seen.insert(hasher.hash_one(key.as_ref())) {
                let message = format!("duplicate key {key:?}");
                *self.dup.borrow_mut() = Some(key.into_owned());
                return Err(de::Error::custom(message));
            }
        }
        Ok(Value::Object(out))
    }
}

/// One set of random keys for the process: drawing keys per body would
/// cost more than hashing its few keys.
fn key_hasher() -> &'static Keyed {
    static HASHER: OnceLock<Keyed> = OnceLock::new();
    HASHER.get_or_init(Keyed::new)
}

/// The set's own hasher: its items already are uniformly random hashes.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used; fold anything else in, to stay correct.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// An object key, borrowed from the body when it holds no escapes (serde_json
/// has already decoded `\u0065` and friends when it cannot borrow).
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

/// Builds a `serde_json::Value`, noting the first duplicate key in `dup`
/// and an object of more than [`MAX_OBJECT_MEMBERS`] members in
/// `too_many` (a built object costs memory and time per member).
#[derive(Clone, Copy)]
struct StrictSeed<'a> {
    dup: &'a RefCell<Option<String>>,
    too_many: &'a RefCell<bool>,
}

impl<'de> DeserializeSeed<'de> for StrictSeed<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        // serde_json only yields finite numbers, but say why if not.
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("non-finite number"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(item) = seq.next_element_seed(self)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        // `String` keys: serde_json has already decoded `\u0065` and friends.
        while let Some(key) = map.next_key::<String>()? {
            if out.len() >= MAX_OBJECT_MEMBERS {
                *self.too_many.borrow_mut() = true;
                return Err(de::Error::custom("too many members"));
            }
            if out.contains_key(&key) {
                let message = format!("duplicate key {key:?}");
                *self.dup.borrow_mut() = Some(key);
                return Err(de::Error::custom(message));
            }
            let value = map.next_value_seed(self)?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}
