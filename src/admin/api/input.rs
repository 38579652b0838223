//! What a request brings: path captures and query parameters, decoded and
//! checked against its route, and a JSON body read with a bound.

use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderMap};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use super::routes::QueryParam;

/// Request bodies are a few ids; 64 KiB is generous and keeps a flood of
/// large bodies on this port from taking memory the proxy needs.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A body that trickles in holds one of the admin listener's few
/// connections; past this it is refused.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// A route's arguments, decoded.
#[derive(Debug, Default)]
pub struct Input {
    path: Vec<(&'static str, String)>,
    query: Vec<(String, String)>,
    body: Bytes,
}

impl Input {
    /// Decodes the raw captures and the query; refuses query parameters the
    /// route does not declare, repeated ones and missing required ones.
    pub fn new(
        captures: Vec<(&'static str, String)>,
        raw_query: Option<&str>,
        declared: &[QueryParam],
    ) -> Result<Input, ApiError> {
        let path = captures
            .into_iter()
            .map(|(name, raw)| Ok((name, decode(name, &raw)?)))
            .collect::<Result<Vec<_>, ApiError>>()?;
        let mut query: Vec<(String, String)> = Vec::new();
        for pair in raw_query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (raw_name, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
            let name = decode("query", &raw_name.replace('+', " "))?;
            if !declared.iter().any(|q| q.name == name) {
                let known: Vec<&str> = declared.iter().map(|q| q.name).collect();
                return Err(ApiError::parameter(
                    &name,
                    if known.is_empty() {
                        "this endpoint takes no query parameters".to_string()
                    } else {
                        format!("unknown (expected {})", known.join(", "))
                    },
                ));
            }
            if query.iter().any(|(n, _)| *n == name) {
                return Err(ApiError::parameter(&name, "given more than once"));
            }
            let value = decode(&name, &raw_value.replace('+', " "))?;
            query.push((name, value));
        }
        for q in declared.iter().filter(|q| q.required) {
            if !query.iter().any(|(n, _)| n == q.name) {
                return Err(ApiError::parameter(q.name, "required"));
            }
        }
        Ok(Input {
            path,
            query,
            body: Bytes::new(),
        })
    }

    pub fn with_body(mut self, body: Bytes) -> Input {
        self.body = body;
        self
    }

    /// A path capture, else a query parameter (a model id may come either
    /// way).
    pub fn arg(&self, name: &str) -> Option<&str> {
        let path = self.path.iter().map(|(n, v)| (*n, v));
        let query = self.query.iter().map(|(n, v)| (n.as_str(), v));
        path.chain(query)
            .find_map(|(n, v)| (n == name).then_some(v.as_str()))
    }

    /// An argument the route guarantees (a capture or a required query
    /// parameter); a 400 rather than a panic if the table and the handler
    /// ever disagree.
    pub fn required(&self, name: &str) -> Result<&str, ApiError> {
        self.arg(name)
            .ok_or_else(|| ApiError::parameter(name, "required"))
    }

    /// The body as `T`: 400 for bad JSON and for a missing, unknown or
    /// mistyped field (`T` denies unknown fields).
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            use serde_json::error::Category;
            match e.classify() {
                Category::Data => ApiError::InvalidBody(e.to_string()),
                Category::Syntax | Category::Eof | Category::Io => {
                    ApiError::InvalidJson(e.to_string())
                }
            }
        })
    }
}

/// Percent-decoding that refuses what does not decode to UTF-8, instead of
/// turning it into U+FFFD and acting on a different id.
fn decode(name: &str, raw: &str) -> Result<String, ApiError> {
    percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| ApiError::parameter(name, "not UTF-8 once percent-decoded"))
}

/// The JSON body of a write: `Content-Type: application/json` (charset
/// aside), at most [`MAX_BODY_BYTES`], within `BODY_TIMEOUT`.
pub async fn read_json_body(headers: &HeaderMap, body: Incoming) -> Result<Bytes, ApiError> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(ApiError::UnsupportedMediaType);
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let too_large = ApiError::BodyTooLarge {
        cap: MAX_BODY_BYTES,
    };
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(too_large);
    }
    match tokio::time::timeout(BODY_TIMEOUT, Limited::new(body, MAX_BODY_BYTES).collect()).await {
        Err(_) => Err(ApiError::BodyTimeout),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(too_large),
        Ok(Err(e)) => Err(ApiError::BodyUnreadable(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DECLARED: &[QueryParam] = &[
        QueryParam {
            name: "user",
            required: true,
            kind: "string",
            description: "",
        },
        QueryParam {
            name: "model",
            required: false,
            kind: "string",
            description: "",
        },
    ];

    fn code(e: ApiError) -> String {
        e.to_string()
    }

    #[test]
    fn query_values_are_form_decoded() {
        let input = Input::new(
            vec![],
            Some("user=a+b&model=openai%2Fgpt-4o%3Afree%2B1"),
            DECLARED,
        )
        .unwrap();
        assert_eq!(input.arg("user"), Some("a b"));
        assert_eq!(input.arg("model"), Some("openai/gpt-4o:free+1"));
    }

    #[test]
    fn path_captures_are_percent_decoded_and_plus_is_literal() {
        let input = Input::new(vec![("model", "openai%2Fgpt+4o".into())], None, &[]).unwrap();
        assert_eq!(input.arg("model"), Some("openai/gpt+4o"));
    }

    #[test]
    fn bad_queries_are_refused() {
        for (query, needle) in [
            ("model=x", "parameter user: required"),
            ("user=a&user=b", "given more than once"),
            (
                "user=a&limt=5",
                "parameter limt: unknown (expected user, model)",
            ),
            ("user=%FF", "not UTF-8"),
        ] {
            let e = Input::new(vec![], Some(query), DECLARED).unwrap_err();
            assert!(code(e).contains(needle), "{query}");
        }
        let e = Input::new(vec![], Some("x=1"), &[]).unwrap_err();
        assert!(code(e).contains("takes no query parameters"));
        assert!(Input::new(vec![("org", "%C3%28".into())], None, &[]).is_err());
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        id: String,
    }

    #[test]
    fn bodies_tell_syntax_from_shape() {
        let parse = |b: &'static str| Input::default().with_body(Bytes::from(b)).json::<Body>();
        assert!(parse(r#"{"id":"a"}"#).is_ok());
        for bad in ["", "{", "not json"] {
            assert!(matches!(parse(bad), Err(ApiError::InvalidJson(_))), "{bad}");
        }
        for bad in [r#"{}"#, r#"{"id":1}"#, r#"{"id":"a","x":1}"#, "[]"] {
            assert!(matches!(parse(bad), Err(ApiError::InvalidBody(_))), "{bad}");
        }
    }
}
