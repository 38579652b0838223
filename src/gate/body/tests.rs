use http::{header, HeaderMap, HeaderValue, StatusCode};

use crate::error::Refusal;
use proptest::prelude::*;
use serde_json::{json, Value};

use super::*;
use crate::gate::routes::{CallSpec, ModelLocation};

fn spec(locations: Vec<ModelLocation>) -> CallSpec {
    CallSpec {
        locations,
        required: false,
        response: None,
    }
}

fn chat() -> CallSpec {
    spec(vec![
        ModelLocation::Field("model".into()),
        ModelLocation::MessageIds,
    ])
}

/// The full strict parse, cross-checked against the fast path the proxy
/// uses: whenever the full parse reads models, the fast one reads the same.
fn refs(body: &str, spec: &CallSpec) -> Result<Vec<String>, BodyError> {
    let full = model_refs(&parse_strict(body.as_bytes())?, spec);
    if let Ok(models) = &full {
        assert_eq!(
            model_refs_from_bytes(body.as_bytes(), spec).as_ref(),
            Ok(models),
            "fast path disagrees on {body}"
        );
    }
    full
}

#[test]
fn fast_path_refuses_what_could_change_the_model() {
    let chat = chat();
    let fast = |b: &str| model_refs_from_bytes(b.as_bytes(), &chat);
    // Top-level duplicates, also spelled with escapes, and duplicates inside
    // members that name models: refused.
    for body in [
        r#"{"model":"a","model":"b"}"#,
        r#"{"model":"a","model":"b"}"#,
        r#"{"messages":[],"messages":[],"model":"a"}"#,
        r#"{"model":"a","message_ids":[{"model_id":"x","model_id":"y"}]}"#,
    ] {
        assert!(
            matches!(fast(body), Err(BodyError::DuplicateKey(_))),
            "{body}"
        );
    }
    // Syntax is still checked in skipped members.
    assert_eq!(
        fast(r#"{"model":"a","messages":[1,}"#),
        Err(BodyError::InvalidJson)
    );
    assert_eq!(
        fast(r#"{"model":"a","x":NaN}"#),
        Err(BodyError::InvalidJson)
    );
    assert_eq!(
        fast(r#"{"model":"a"} trailing"#),
        Err(BodyError::InvalidJson)
    );
    assert_eq!(fast(r#"["model"]"#), Err(BodyError::NotAnObject));
    // So is UTF-8 (found by the `json_differential` fuzz target: skipped
    // strings were not checked, so the fast path accepted bodies that
    // `parse_strict` and Python's `json.loads` refuse).
    for bad in [
        &b"{\"model\":\"a\",\"messages\":[{\"\xff\":1}]}"[..],
        b"{\"messages\":[{\"content\":\"\xd5\x34\"}],\"model\":\"a\"}",
    ] {
        assert_eq!(
            model_refs_from_bytes(bad, &chat),
            Err(BodyError::InvalidJson),
            "{bad:?}"
        );
        assert_eq!(top_level_model_from_bytes(bad), Err(BodyError::InvalidJson));
    }
    // A lone surrogate escape in a skipped member is valid to Python's
    // `json` (serde_json refuses it only when building the string).
    assert_eq!(
        fast(r#"{"model":"a","x":"\ud800"}"#),
        Ok(vec!["a".to_owned()])
    );
    // A duplicate deep inside the message history cannot change which model
    // is called: the fast path does not build that member at all.
    assert_eq!(
        fast(r#"{"messages":[{"role":"user","role":"x"}],"model":"a"}"#),
        Ok(vec!["a".to_owned()])
    );
    // BOM, as Python skips it.
    assert_eq!(fast("\u{feff}{\"model\":\"a\"}"), Ok(vec!["a".to_owned()]));
    // Only one, as Python: `json.loads(b"\xef\xbb\xbf\xef\xbb\xbf{}")` fails
    // (found by the json_differential fuzz target).
    assert!(parse_members("\u{feff}\u{feff}{\"mg\":\"a\"}".as_bytes(), &["model"]).is_err());
    assert!(parse_strict("\u{feff}\u{feff}{}".as_bytes()).is_err());
    assert_eq!(
        top_level_model_from_bytes(br#"{"messages":[{"a":1}],"model":"m"}"#),
        Ok(Some("m".to_owned()))
    );
    let pointer = spec(vec![ModelLocation::Pointer("/data/model_id".into())]);
    assert_eq!(
        model_refs_from_bytes(br#"{"data":{"model_id":"z"},"name":"n"}"#, &pointer),
        Ok(vec!["z".to_owned()])
    );
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

#[test]
fn content_types() {
    for ok in [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON",
        "application/vnd.api+json",
        " application/json ;x=y",
        // FastAPI's subtype test is `endswith("+json")`.
        "application/+json",
    ] {
        assert_eq!(
            check_content_type(&headers(&[("content-type", ok)])),
            Ok(()),
            "{ok}"
        );
    }
    for bad in [
        "text/plain",
        "application/jsonx",
        "application/json/x",
        "multipart/form-data; boundary=x",
        "application/x-www-form-urlencoded",
        "json",
        "",
    ] {
        assert_eq!(
            check_content_type(&headers(&[("content-type", bad)])),
            Err(BodyError::UnsupportedMediaType),
            "{bad}"
        );
    }
    assert_eq!(
        check_content_type(&headers(&[])),
        Err(BodyError::UnsupportedMediaType)
    );
    let two = headers(&[
        ("content-type", "application/json"),
        ("content-type", "application/json"),
    ]);
    assert_eq!(
        check_content_type(&two),
        Err(BodyError::UnsupportedMediaType)
    );
    assert_eq!(
        Refusal::Body(BodyError::UnsupportedMediaType).status(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
}

#[test]
fn content_encodings() {
    let json = ("content-type", "application/json");
    for bad in ["gzip", "br", "zstd", "identity, gzip", ""] {
        let h = headers(&[json, ("content-encoding", bad)]);
        assert_eq!(check_content_type(&h), Err(BodyError::Compressed), "{bad}");
    }
    assert_eq!(
        check_content_type(&headers(&[json, ("content-encoding", "Identity")])),
        Ok(())
    );
    assert_eq!(
        Refusal::Body(BodyError::Compressed).status(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
}

#[test]
fn duplicate_keys_are_refused_everywhere() {
    for (body, key) in [
        (r#"{"model":"a","model":"b"}"#, "model"),
        (r#"{"model":"a","mod\u0065l":"b"}"#, "model"),
        (r#"{"\u006dodel":"a","model":"b"}"#, "model"),
        (
            r#"{"model":"a","message_ids":[{"model_id":"x","model_id":"y"}]}"#,
            "model_id",
        ),
        (r#"{"message_ids":{"x":"1","\u0078":"2"}}"#, "x"),
        (
            r#"{"data":{"model_id":"a","model_\u0069d":"b"}}"#,
            "model_id",
        ),
        (r#"[{"k":1,"k":2}]"#, "k"),
    ] {
        let err = parse_strict(body.as_bytes()).unwrap_err();
        assert_eq!(err, BodyError::DuplicateKey(key.into()), "{body}");
        assert_eq!(Refusal::Body(err).status(), StatusCode::BAD_REQUEST);
    }
    // Same key in sibling objects is fine.
    assert!(parse_strict(br#"{"a":{"k":1},"b":{"k":2}}"#).is_ok());
}

#[test]
fn strict_json() {
    // A UTF-8 BOM is skipped like Python does.
    assert_eq!(
        parse_strict(b"\xEF\xBB\xBF{\"model\":\"m\"}").unwrap(),
        json!({"model":"m"})
    );
    for bad in [
        &b"\xFF\xFE{\x00}\x00"[..], // UTF-16 LE with BOM
        b"\xFE\xFF\x00{\x00}",      // UTF-16 BE with BOM
        b"{\"model\":NaN}",
        b"{\"model\":Infinity}",
        b"{\"model\":\"\\ud800\"}", // lone surrogate
        b"{\"model\":\"a\"} x",     // trailing garbage
        b"{\"model\":\"a\"}{}",
        b"{\"model\":\"\xff\"}", // invalid UTF-8
        b"{\"model\":\"a\",}",
        b"",
    ] {
        assert_eq!(parse_strict(bad), Err(BodyError::InvalidJson), "{bad:?}");
    }
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    assert_eq!(parse_strict(deep.as_bytes()), Err(BodyError::InvalidJson));
    // Escaped keys are decoded.
    assert_eq!(refs(r#"{"mod\u0065l":"m"}"#, &chat()).unwrap(), ["m"]);
    assert_eq!(
        parse_strict(b" {\"a\":[1,-2,3.5,true,null]} \n").unwrap(),
        json!({"a":[1,-2,3.5,true,null]})
    );
}

#[test]
fn message_ids_both_forms() {
    let list = r#"{"model":"a","message_ids":[{"model_id":"b","message_id":"1"},{"model_id":"a","message_id":null}]}"#;
    assert_eq!(refs(list, &chat()).unwrap(), ["a", "b"]);
    let dict = r#"{"model":"a","message_ids":{"c":"1","d":"2"}}"#;
    assert_eq!(refs(dict, &chat()).unwrap(), ["a", "c", "d"]);
    assert_eq!(
        refs(r#"{"message_ids":[]}"#, &chat()).unwrap(),
        Vec::<String>::new()
    );
    for bad in [
        r#"{"model":"a","message_ids":[{"message_id":"1"}]}"#,
        r#"{"model":"a","message_ids":["b"]}"#,
        r#"{"model":"a","message_ids":[{"model_id":3}]}"#,
        r#"{"model":"a","message_ids":[{"model_id":null}]}"#,
        r#"{"model":"a","message_ids":"b"}"#,
        r#"{"model":"a","message_ids":null}"#,
    ] {
        assert_eq!(
            refs(bad, &chat()),
            Err(BodyError::BadModelField("message_ids".into())),
            "{bad}"
        );
    }
}

#[test]
fn wrong_types_are_refused() {
    for bad in [
        r#"{"model":null}"#,
        r#"{"model":1}"#,
        r#"{"model":["a"]}"#,
        r#"{"model":{"id":"a"}}"#,
        r#"{"model":true}"#,
    ] {
        assert_eq!(
            refs(bad, &chat()),
            Err(BodyError::BadModelField("model".into())),
            "{bad}"
        );
        let v = parse_strict(bad.as_bytes()).unwrap();
        assert!(top_level_model(&v).is_err(), "{bad}");
    }
    assert_eq!(refs("[1]", &chat()), Err(BodyError::NotAnObject));
    assert_eq!(refs(r#""model""#, &chat()), Err(BodyError::NotAnObject));
}

#[test]
fn absent_and_required() {
    assert_eq!(
        refs(r#"{"messages":[]}"#, &chat()).unwrap(),
        Vec::<String>::new()
    );
    let mut s = chat();
    s.required = true;
    assert_eq!(refs(r#"{"messages":[]}"#, &s), Err(BodyError::MissingModel));
    assert_eq!(refs(r#"{"model":"m"}"#, &s).unwrap(), ["m"]);
}

#[test]
fn ollama_show_checks_model_and_name() {
    let s = spec(vec![
        ModelLocation::Field("model".into()),
        ModelLocation::Field("name".into()),
    ]);
    assert_eq!(refs(r#"{"name":"n"}"#, &s).unwrap(), ["n"]);
    assert_eq!(refs(r#"{"model":"m","name":"n"}"#, &s).unwrap(), ["m", "n"]);
}

#[test]
fn pointers() {
    let s = spec(vec![ModelLocation::Pointer("/data/model_id".into())]);
    assert_eq!(
        refs(r#"{"data":{"model_id":"m","rrule":"x"}}"#, &s).unwrap(),
        ["m"]
    );
    assert_eq!(refs(r#"{"data":{}}"#, &s).unwrap(), Vec::<String>::new());
    assert_eq!(refs(r#"{"name":"x"}"#, &s).unwrap(), Vec::<String>::new());
    for bad in [
        r#"{"data":"m"}"#,
        r#"{"data":null}"#,
        r#"{"data":{"model_id":5}}"#,
        r#"{"data":[{"model_id":"m"}]}"#,
    ] {
        assert_eq!(
            refs(bad, &s),
            Err(BodyError::BadModelField("/data/model_id".into())),
            "{bad}"
        );
    }
    let esc = spec(vec![ModelLocation::Pointer("/a~1b/c~0d".into())]);
    assert_eq!(refs(r#"{"a/b":{"c~d":"m"}}"#, &esc).unwrap(), ["m"]);
}

#[test]
fn channel_mentions() {
    let s = spec(vec![ModelLocation::ChannelMentions("content".into())]);
    assert_eq!(
        refs(
            r#"{"content":"hey <@M:gpt-4o|GPT> and <@U:u1|Bob> <@M:gpt-4o>"}"#,
            &s
        )
        .unwrap(),
        ["gpt-4o"]
    );
    assert_eq!(refs(r#"{"content":"\u003c@M:x|y>"}"#, &s).unwrap(), ["x"]);
    assert_eq!(
        refs(r#"{"content":"no mentions"}"#, &s).unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(
        refs(r#"{"content":5}"#, &s),
        Err(BodyError::BadModelField("content".into()))
    );
}

#[test]
fn top_level_model_for_defence_in_depth() {
    assert_eq!(top_level_model(&json!({"model":"m"})), Ok(Some("m")));
    assert_eq!(top_level_model(&json!({"x":1})), Ok(None));
    assert_eq!(top_level_model(&json!(["model"])), Ok(None));
    assert_eq!(
        Refusal::Body(BodyError::DuplicateKey("k".into()))
            .answer()
            .code,
        "duplicate_key"
    );
}

/// Objects with a `model`, written key by key so duplicates can be made.
fn object_text(pairs: &[(String, Value)]) -> String {
    let body: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}:{}", serde_json::to_string(k).unwrap(), v))
        .collect();
    format!("{{{}}}", body.join(","))
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        "[a-z\\u{e9}\"\\\\]{0,6}".prop_map(Value::String),
    ]
}

proptest! {
    #[test]
    fn strict_agrees_with_last_wins_or_refuses(
        mut pairs in prop::collection::vec(("[a-z]{1,3}", leaf()), 0..8),
        model in "[a-zA-Z0-9:./_-]{1,20}",
        at in 0usize..9,
    ) {
        let at = at.min(pairs.len());
        pairs.insert(at, ("model".to_owned(), Value::String(model)));
        let text = object_text(&pairs);
        let mut keys: Vec<&String> = pairs.iter().map(|(k, _)| k).collect();
        keys.sort();
        let has_dup = keys.windows(2).any(|w| w[0] == w[1]);
        match parse_strict(text.as_bytes()) {
            Err(BodyError::DuplicateKey(_)) => prop_assert!(has_dup),
            Err(e) => prop_assert!(false, "unexpected {e:?} for {text}"),
            Ok(v) => {
                prop_assert!(!has_dup);
                // serde_json's own Value parse is last-wins.
                let last_wins: Value = serde_json::from_str(&text).unwrap();
                prop_assert_eq!(&v, &last_wins);
                let got = model_refs(&v, &chat()).map_err(|e| TestCaseError::fail(e.to_string()));
                let want = match last_wins.get("model") {
                    Some(Value::String(s)) => Ok(vec![s.clone()]),
                    _ => Err(TestCaseError::fail("bad")),
                };
                match (got, want) {
                    (Ok(g), Ok(w)) => prop_assert_eq!(g, w),
                    (Err(_), Err(_)) => {}
                    (g, w) => prop_assert!(false, "{g:?} vs {w:?}"),
                }
            }
        }
    }

    #[test]
    fn fast_path_agrees_with_the_full_parse(
        mut pairs in prop::collection::vec(("[a-z_]{1,11}", leaf()), 0..8),
        model in "[a-zA-Z0-9:./_-]{1,20}",
        at in 0usize..9,
    ) {
        let at = at.min(pairs.len());
        pairs.insert(at, ("model".to_owned(), Value::String(model)));
        let text = object_text(&pairs);
        let full = parse_strict(text.as_bytes()).and_then(|v| model_refs(&v, &chat()));
        let fast = model_refs_from_bytes(text.as_bytes(), &chat());
        // Leaves only: every duplicate is top-level, so both must agree exactly.
        prop_assert_eq!(full, fast);
    }

    #[test]
    fn never_panics_on_bytes(data in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = model_refs_from_bytes(&data, &chat());
        if let Ok(v) = parse_strict(&data) {
            let _ = model_refs(&v, &chat());
            let _ = top_level_model(&v);
        }
    }
}

#[test]
fn bodies_with_absurdly_many_members_are_refused() {
    let chat = chat();
    let mut body = String::from("{");
    for i in 0..crate::gate::body::strict::MAX_OBJECT_MEMBERS {
        body.push_str(&format!("\"k{i}\":0,"));
    }
    body.push_str("\"model\":\"m\"}");
    assert_eq!(
        model_refs_from_bytes(body.as_bytes(), &chat),
        Err(BodyError::TooManyMembers)
    );
    assert_eq!(
        Refusal::Body(BodyError::TooManyMembers).answer().code,
        "too_many_members"
    );
    // One fewer is an ordinary (if odd) body.
    let body = body.replacen("\"k0\":0,", "", 1);
    assert_eq!(
        model_refs_from_bytes(body.as_bytes(), &chat),
        Ok(vec!["m".to_owned()])
    );
}

#[test]
fn requests_naming_absurdly_many_models_are_refused_in_linear_time() {
    let spec = CallSpec {
        locations: vec![ModelLocation::ChannelMentions("content".into())],
        required: false,
        response: None,
    };
    // A million mentions of one model: one model, found in linear time.
    let text = "<@M:m>".repeat(1_000_000);
    let body = serde_json::to_vec(&json!({ "content": text })).unwrap();
    assert_eq!(
        model_refs_from_bytes(&body, &spec),
        Ok(vec!["m".to_owned()])
    );
    // Distinct ones: refused once past the cap.
    let text: String = (0..100_000).map(|i| format!("<@M:m{i}>")).collect();
    let body = serde_json::to_vec(&json!({ "content": text })).unwrap();
    assert_eq!(
        model_refs_from_bytes(&body, &spec),
        Err(BodyError::TooManyModels)
    );
    // The legacy message_ids dict: its keys are models.
    let ids: serde_json::Map<String, Value> =
        (0..300).map(|i| (format!("m{i}"), json!("x"))).collect();
    let body = serde_json::to_vec(&json!({ "model": "a", "message_ids": ids })).unwrap();
    assert_eq!(
        model_refs_from_bytes(&body, &chat()),
        Err(BodyError::TooManyModels)
    );
    // An object inside a member that names models is built: capped too.
    let ids: serde_json::Map<String, Value> =
        (0..70_000).map(|i| (format!("m{i}"), json!("x"))).collect();
    let body = serde_json::to_vec(&json!({ "model": "a", "message_ids": ids })).unwrap();
    assert_eq!(
        model_refs_from_bytes(&body, &chat()),
        Err(BodyError::TooManyMembers)
    );
}
