//! Finding the credential of a request exactly where Open WebUI finds it.
//!
//! Open WebUI 0.12.4 has two orders of reading a credential, and modelgate
//! must identify the same user as whichever of them the upstream applies:
//!
//! - **A** — `utils/auth.py` `get_current_user`, behind every guarded route
//!   (`get_verified_user`, `get_admin_user`):
//!   1. FastAPI `HTTPBearer(auto_error=False)` over the *first*
//!      `Authorization` header (Starlette `Headers.get`): scheme = text before
//!      the first space, compared case-insensitively with `bearer`;
//!      credentials = the rest, `str.strip()`ed; both non-empty
//!      (`fastapi/security/http.py`, `security/utils.py`
//!      `get_authorization_scheme_param`);
//!   2. else the `token` cookie when *present*, even empty
//!      (`'token' in request.cookies`);
//!   3. else `request.state.token`, set by `AppHTTPMiddleware._set_token`
//!      (`utils/asgi_middleware.py`): `get_http_authorization_cred`
//!      (`auth_header.split(' ')` into exactly two parts, any scheme), then a
//!      non-empty `token` cookie, then a non-empty `CUSTOM_API_KEY_HEADER`
//!      (`x-api-key` by default, `env.py`).
//! - **B** — `request.state.token` itself (forwarded to tool servers,
//!   `utils/headers.py`), `get_optional_verified_user_from_request`,
//!   `GET /api/config` (`main.py`): `get_http_authorization_cred` first,
//!   then the cookie, then the API-key header.
//!
//! A and B disagree when the `Authorization` header is not a clean
//! `Bearer X` (e.g. `Basic X` plus a cookie, or `Bearer  X` with two
//! spaces). Starlette also changed how several `Cookie` headers are read
//! (before PR #3029, Sept 2025, only the first one counted; since then all
//! are merged and the last `token` wins), and HTTP servers differ on
//! repeated or whitespace-padded headers. Whenever two of these plausible
//! readings pick different non-empty tokens, the request is refused as
//! [`CredentialError::Ambiguous`] instead of guessing: a legitimate client
//! never sends such a request, and guessing wrong lets one user's token
//! be checked while another user's token is used upstream.

use http::header::{AUTHORIZATION, COOKIE};
use http::{HeaderMap, HeaderName, HeaderValue};

/// Where the credential was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CredentialSource {
    /// `Authorization: Bearer X`.
    Bearer,
    /// The `token` cookie.
    Cookie,
    /// `Authorization: <other scheme> X` (Open WebUI's middleware fallback).
    OtherAuthorizationScheme,
    /// The API-key header (`x-api-key` or `CUSTOM_API_KEY_HEADER`).
    ApiKeyHeader,
}

/// What the credential is, by Open WebUI's rule `token.startswith('sk-')`
/// (`get_current_user`): API keys are looked up in the `api_key` table,
/// anything else is decoded as a JWT. Either may come from any source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CredentialKind {
    Jwt,
    ApiKey,
}

/// The credential Open WebUI will authenticate this request with.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    pub token: String,
    pub source: CredentialSource,
    pub kind: CredentialKind,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token is a secret: never print it.
        f.debug_struct("Credential")
            .field("source", &self.source)
            .field("kind", &self.kind)
            .field("token_len", &self.token.len())
            .finish()
    }
}

/// Why no credential could be settled on.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CredentialError {
    /// Readings Open WebUI (or the HTTP stack under it) could plausibly
    /// apply pick different tokens.
    #[error("ambiguous credentials: {0}")]
    Ambiguous(&'static str),
    /// A credential-bearing header is not visible ASCII.
    #[error("malformed {0} header")]
    InvalidHeader(&'static str),
    /// Open WebUI would settle on an empty token and answer 401.
    #[error("empty credential")]
    Empty(CredentialSource),
}

/// Finds the credential Open WebUI's `get_current_user` would use.
///
/// `Ok(None)`: no credential at all (Open WebUI answers 401 "Not
/// authenticated" on guarded routes).
pub fn extract_credential(
    headers: &HeaderMap,
    api_key_header: &HeaderName,
) -> Result<Option<Credential>, CredentialError> {
    let auth = single_header(headers, &AUTHORIZATION, "Authorization")?;
    let api_key = single_header(headers, api_key_header, "API key")?;
    let cookies = token_cookies(headers);

    let bearer = auth.and_then(http_bearer);
    let split_two = auth.and_then(split_two_credentials);

    // Reading A with today's Starlette is what guarded routes do.
    let primary = reading_a(bearer, split_two, cookies.merged.as_deref(), api_key);
    let alternatives = [
        reading_a(bearer, split_two, cookies.first_header.as_deref(), api_key),
        reading_b(split_two, cookies.merged.as_deref(), api_key),
        reading_b(split_two, cookies.first_header.as_deref(), api_key),
    ];
    let chosen = primary.map(|(t, _)| t).unwrap_or("");
    for (token, _) in alternatives.iter().flatten() {
        if !token.is_empty() && *token != chosen {
            return Err(CredentialError::Ambiguous(
                "Open WebUI's credential readers would disagree",
            ));
        }
    }

    let Some((token, source)) = primary else {
        return Ok(None);
    };
    if token.is_empty() {
        return Err(CredentialError::Empty(source));
    }
    // Cookie text is read as Latin-1 like Starlette does; an octal escape
    // can also produce any byte. No valid JWT or API key has such
    // characters, and the proxy needs a plain ASCII token. (A token from a
    // header was checked with its header.)
    if source == CredentialSource::Cookie && !is_visible_ascii(token.as_bytes()) {
        return Err(CredentialError::InvalidHeader("credential"));
    }
    let kind = if token.starts_with("sk-") {
        CredentialKind::ApiKey
    } else {
        CredentialKind::Jwt
    };
    Ok(Some(Credential {
        token: token.to_owned(),
        source,
        kind,
    }))
}

/// Reading A (`get_current_user`).
fn reading_a<'a>(
    bearer: Option<&'a str>,
    split_two: Option<&'a str>,
    cookie: Option<&'a str>,
    api_key: Option<&'a str>,
) -> Option<(&'a str, CredentialSource)> {
    if let Some(t) = bearer {
        return Some((t, CredentialSource::Bearer));
    }
    if let Some(t) = cookie {
        // `'token' in request.cookies`: present, even when empty.
        return Some((t, CredentialSource::Cookie));
    }
    // `request.state.token` is an object, truthy even when its credentials
    // are empty (`Authorization: Bearer ` splits into `['Bearer', '']`).
    if let Some(t) = split_two {
        return Some((t, CredentialSource::OtherAuthorizationScheme));
    }
    api_key
        .filter(|k| !k.is_empty())
        .map(|k| (k, CredentialSource::ApiKeyHeader))
}

/// Reading B (`_set_token`, `get_optional_verified_user_from_request`).
fn reading_b<'a>(
    split_two: Option<&'a str>,
    cookie: Option<&'a str>,
    api_key: Option<&'a str>,
) -> Option<(&'a str, CredentialSource)> {
    split_two
        .filter(|t| !t.is_empty())
        .map(|t| (t, CredentialSource::OtherAuthorizationScheme))
        .or_else(|| {
            cookie
                .filter(|t| !t.is_empty())
                .map(|t| (t, CredentialSource::Cookie))
        })
        .or_else(|| {
            api_key
                .filter(|t| !t.is_empty())
                .map(|t| (t, CredentialSource::ApiKeyHeader))
        })
}

/// The value of a header that must appear at most once.
///
/// Starlette's `Headers.get` takes the first of several, other stacks
/// (and nginx for some headers) the last or a comma-joined list: several
/// `Authorization` or API-key headers are refused. A value with leading or
/// trailing whitespace is refused too: h11 strips it, httptools (uvicorn's
/// default with `uvicorn[standard]`) may not, and `split(' ')` then sees a
/// different number of parts.
fn single_header<'a>(
    headers: &'a HeaderMap,
    name: &HeaderName,
    what: &'static str,
) -> Result<Option<&'a str>, CredentialError> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(CredentialError::Ambiguous(match what {
            "Authorization" => "several Authorization headers",
            _ => "several API key headers",
        }));
    }
    let value = visible_ascii(first).ok_or(CredentialError::InvalidHeader(what))?;
    if value.starts_with([' ', '\t']) || value.ends_with([' ', '\t']) {
        return Err(CredentialError::Ambiguous(
            "whitespace around a credential header",
        ));
    }
    // Python: `if not auth_header` / truthiness: an empty value is absent.
    Ok(if value.is_empty() { None } else { Some(value) })
}

fn visible_ascii(v: &HeaderValue) -> Option<&str> {
    let bytes = v.as_bytes();
    if is_visible_ascii(bytes) {
        std::str::from_utf8(bytes).ok()
    } else {
        None
    }
}

/// Printable ASCII, space and tab. Without early exit, so it compiles to
/// vector instructions: a token is a few hundred bytes, checked on every
/// request.
fn is_visible_ascii(bytes: &[u8]) -> bool {
    bytes.iter().fold(true, |ok, &b| {
        ok & ((b' '..=b'~').contains(&b) | (b == b'\t'))
    })
}

/// The `Authorization: Bearer` token as FastAPI's `HTTPBearer` reads it,
/// for the admin listener's own token; `None` when absent, repeated or not
/// a bearer credential.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    single_header(headers, &AUTHORIZATION, "Authorization")
        .ok()
        .flatten()
        .and_then(http_bearer)
}

/// FastAPI `HTTPBearer.__call__` (auto_error=False).
fn http_bearer(auth: &str) -> Option<&str> {
    let (scheme, param) = auth.split_once(' ')?;
    let param = py_strip(param);
    (!scheme.is_empty() && !param.is_empty() && scheme.eq_ignore_ascii_case("bearer"))
        .then_some(param)
}

/// Open WebUI `get_http_authorization_cred`: `scheme, credentials =
/// auth_header.split(' ')` — exactly one space, else `None`.
fn split_two_credentials(auth: &str) -> Option<&str> {
    let mut parts = auth.split(' ');
    let _scheme = parts.next()?;
    let credentials = parts.next()?;
    parts.next().is_none().then_some(credentials)
}

/// Python `str.strip()` with no argument, restricted to the characters a
/// Latin-1-decoded header can hold.
fn is_py_space(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\x0b' | '\x0c' | '\r' | '\x1c'..='\x1f' | ' ' | '\u{85}' | '\u{a0}'
    )
}

fn py_strip(s: &str) -> &str {
    s.trim_matches(is_py_space)
}

/// The `token` cookie under the two Starlette readings.
#[derive(Debug, Default, PartialEq, Eq)]
struct TokenCookies {
    /// All `Cookie` headers merged, the last `token` wins (Starlette ≥ PR #3029).
    merged: Option<String>,
    /// The first `Cookie` header only (older Starlette: `headers.get("cookie")`).
    first_header: Option<String>,
}

fn token_cookies(headers: &HeaderMap) -> TokenCookies {
    let mut out = TokenCookies::default();
    for (i, value) in headers.get_all(COOKIE).iter().enumerate() {
        // Starlette decodes header bytes as Latin-1.
        let text: String = value.as_bytes().iter().map(|&b| char::from(b)).collect();
        let found = cookie_token(&text);
        if i == 0 {
            out.first_header.clone_from(&found);
        }
        if found.is_some() {
            out.merged = found;
        }
    }
    out
}

/// Starlette `cookie_parser` (`starlette/requests.py`), keeping only the
/// last `token`: split on `;`, split each chunk at the first `=` (a chunk
/// without `=` is a value with an empty name), strip both with Python's
/// `str.strip()`, unquote with `http.cookies._unquote`, later keys
/// overwrite earlier ones.
fn cookie_token(header: &str) -> Option<String> {
    let mut token = None;
    for chunk in header.split(';') {
        let Some((key, val)) = chunk.split_once('=') else {
            continue;
        };
        if py_strip(key) == "token" {
            token = Some(py_unquote(py_strip(val)));
        }
    }
    token
}

/// Python `http.cookies._unquote`: only a value wrapped in double quotes is
/// decoded; inside, `\ooo` (first digit 0-3) is an octal character and `\x`
/// (any character but a newline) is `x`. An octal escape wins over a plain
/// one at the same position, as in the Python loop.
fn py_unquote(val: &str) -> String {
    let chars: Vec<char> = val.chars().collect();
    if chars.len() < 2 || chars[0] != '"' || chars[chars.len() - 1] != '"' {
        return val.to_owned();
    }
    let inner = &chars[1..chars.len() - 1];
    let mut out = String::with_capacity(inner.len());
    let mut i = 0;
    while i < inner.len() {
        let c = inner[i];
        if c == '\\' {
            if let Some(octal) = octal_escape(&inner[i + 1..]) {
                out.push(octal);
                i += 4;
                continue;
            }
            if let Some(&next) = inner.get(i + 1) {
                if next != '\n' {
                    out.push(next);
                    i += 2;
                    continue;
                }
            }
        }
        out.push(c);
        i += 1;
    }
    out
}

fn octal_escape(rest: &[char]) -> Option<char> {
    let [a, b, c, ..] = rest else {
        return None;
    };
    if !('0'..='3').contains(a) || !('0'..='7').contains(b) || !('0'..='7').contains(c) {
        return None;
    }
    let value =
        (*a as u32 - '0' as u32) * 64 + (*b as u32 - '0' as u32) * 8 + (*c as u32 - '0' as u32);
    char::from_u32(value)
}

/// Entry point for `cargo fuzz`: credential extraction from arbitrary
/// headers never panics, and what it settles on is a token the other
/// readers agree on.
#[cfg(fuzzing)]
pub mod fuzz {
    use super::*;

    /// `data` is read as `name:value` lines; lines whose name or value is
    /// not a valid header are skipped.
    pub fn credential(data: &[u8]) {
        let api_key_header = HeaderName::from_static("x-api-key");
        let mut headers = HeaderMap::new();
        for line in data.split(|&b| b == b'\n') {
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                continue;
            };
            let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(&line[..colon]),
                HeaderValue::from_bytes(&line[colon + 1..]),
            ) else {
                continue;
            };
            headers.append(name, value);
        }
        let result = extract_credential(&headers, &api_key_header);
        if let Ok(Some(c)) = &result {
            assert!(!c.token.is_empty());
            assert!(c
                .token
                .bytes()
                .all(|b| b.is_ascii_graphic() || b == b' ' || b == b'\t'));
            assert_eq!(
                c.kind == CredentialKind::ApiKey,
                c.token.starts_with("sk-"),
                "kind follows the `sk-` prefix"
            );
            // Outside cookies (which are unquoted) the token is a verbatim
            // part of the one header it came from.
            let from = match c.source {
                CredentialSource::Bearer | CredentialSource::OtherAuthorizationScheme => {
                    Some(&AUTHORIZATION)
                }
                CredentialSource::ApiKeyHeader => Some(&api_key_header),
                CredentialSource::Cookie => None,
            };
            if let Some(name) = from {
                let value = headers.get(name).expect("the source header is present");
                let value = value.to_str().expect("a credential header is ASCII");
                assert!(value.contains(c.token.as_str()));
            }
        }
        // The admin listener's reader agrees with Open WebUI's first reading
        // (which may still refuse the request over another header).
        if let Some(t) = bearer_token(&headers) {
            match &result {
                Ok(Some(c)) => {
                    assert_eq!((c.token.as_str(), c.source), (t, CredentialSource::Bearer))
                }
                Ok(None) => panic!("bearer token {t:?} but no credential"),
                Err(_) => {}
            }
        }
        // Headers that carry no credential change nothing.
        let mut more = headers.clone();
        more.append(
            "x-unrelated",
            HeaderValue::from_static("Bearer zzz; token=zzz"),
        );
        more.append("cookies", HeaderValue::from_static("token=zzz"));
        assert_eq!(extract_credential(&more, &api_key_header), result);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn x_api_key() -> HeaderName {
        HeaderName::from_static("x-api-key")
    }

    fn headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_bytes(v).unwrap(),
            );
        }
        h
    }

    fn get(pairs: &[(&str, &[u8])]) -> Result<Option<Credential>, CredentialError> {
        extract_credential(&headers(pairs), &x_api_key())
    }

    fn tok(pairs: &[(&str, &[u8])]) -> (String, CredentialSource) {
        let c = get(pairs).unwrap().unwrap();
        (c.token, c.source)
    }

    use CredentialSource::*;

    #[test]
    fn nothing() {
        assert_eq!(get(&[]), Ok(None));
        assert_eq!(get(&[("cookie", b"theme=dark")]), Ok(None));
        assert_eq!(get(&[("authorization", b"")]), Ok(None));
        assert_eq!(get(&[("x-api-key", b"")]), Ok(None));
    }

    #[test]
    fn bearer_beats_cookie_and_api_key() {
        assert_eq!(
            tok(&[
                ("authorization", b"Bearer aaa"),
                ("cookie", b"token=bbb"),
                ("x-api-key", b"sk-ccc")
            ]),
            ("aaa".into(), Bearer)
        );
    }

    #[test]
    fn bearer_scheme_case_and_whitespace() {
        assert_eq!(
            tok(&[("authorization", b"bEaReR aaa")]),
            ("aaa".into(), Bearer)
        );
        // FastAPI strips the credentials after the first space; split(' ')
        // finds no two-part credential, so nothing competes.
        assert_eq!(
            tok(&[("authorization", b"Bearer   aaa")]),
            ("aaa".into(), Bearer)
        );
        // `Bearer a b`: HTTPBearer keeps "a b"; nothing else competes.
        assert_eq!(
            tok(&[("authorization", b"Bearer a b")]),
            ("a b".into(), Bearer)
        );
        // A tab: HTTPBearer strips it, the middleware keeps "\taaa".
        assert!(matches!(
            get(&[("authorization", b"Bearer \taaa")]),
            Err(CredentialError::Ambiguous(_))
        ));
    }

    #[test]
    fn empty_bearer() {
        // `Bearer ` (trailing space): HTTPBearer returns None and the
        // middleware's split gives ['Bearer', ''], an empty credential
        // (401 upstream); whether the space survives depends on the HTTP
        // parser, so it is refused.
        assert!(matches!(
            get(&[("authorization", b"Bearer ")]),
            Err(CredentialError::Ambiguous(_))
        ));
        // `Bearer` alone: no bearer, one part for split(' '): nothing.
        assert_eq!(get(&[("authorization", b"Bearer")]), Ok(None));
        // ... and the API key is what Open WebUI then uses.
        assert_eq!(
            tok(&[("authorization", b"Bearer"), ("x-api-key", b"sk-1")]),
            ("sk-1".into(), ApiKeyHeader)
        );
        // An empty token cookie is present: 401 upstream.
        assert_eq!(
            get(&[("cookie", b"token=")]),
            Err(CredentialError::Empty(Cookie))
        );
        assert_eq!(
            get(&[("authorization", b"Bearer"), ("cookie", b"token=")]),
            Err(CredentialError::Empty(Cookie))
        );
    }

    #[test]
    fn cookie_beats_other_scheme() {
        // Same value everywhere: the cookie, as get_current_user reads it.
        assert_eq!(
            tok(&[("authorization", b"Basic aaa"), ("cookie", b"token=aaa")]),
            ("aaa".into(), Cookie)
        );
        // `Basic a b` is no credential to any reader: the cookie, unambiguously.
        assert_eq!(
            tok(&[("authorization", b"Basic a b"), ("cookie", b"token=ccc")]),
            ("ccc".into(), Cookie)
        );
        // Different values: get_current_user takes the cookie, the middleware
        // and /api/config take the Authorization credential.
        assert!(matches!(
            get(&[("authorization", b"Basic aaa"), ("cookie", b"token=bbb")]),
            Err(CredentialError::Ambiguous(_))
        ));
    }

    #[test]
    fn other_scheme_beats_api_key() {
        assert_eq!(
            tok(&[("authorization", b"Token aaa"), ("x-api-key", b"sk-bbb")]),
            ("aaa".into(), OtherAuthorizationScheme)
        );
        // Unsplittable Authorization: the API key.
        assert_eq!(
            tok(&[("authorization", b"Basic a b"), ("x-api-key", b"sk-bbb")]),
            ("sk-bbb".into(), ApiKeyHeader)
        );
    }

    #[test]
    fn cookie_beats_api_key() {
        assert_eq!(
            tok(&[("cookie", b"token=aaa"), ("x-api-key", b"sk-bbb")]),
            ("aaa".into(), Cookie)
        );
    }

    #[test]
    fn api_key_header_and_kind() {
        let c = get(&[("x-api-key", b"sk-0123")]).unwrap().unwrap();
        assert_eq!((c.source, c.kind), (ApiKeyHeader, CredentialKind::ApiKey));
        let c = get(&[("x-api-key", b"eyJ.x.y")]).unwrap().unwrap();
        assert_eq!(c.kind, CredentialKind::Jwt);
        let c = get(&[("authorization", b"Bearer sk-abc")])
            .unwrap()
            .unwrap();
        assert_eq!((c.source, c.kind), (Bearer, CredentialKind::ApiKey));
        // The prefix is case-sensitive (`token.startswith('sk-')`).
        assert_eq!(
            get(&[("authorization", b"Bearer SK-abc")])
                .unwrap()
                .unwrap()
                .kind,
            CredentialKind::Jwt
        );
        // A custom header name.
        let h = headers(&[("x-openwebui-key", b"sk-9")]);
        let c = extract_credential(&h, &HeaderName::from_static("x-openwebui-key"))
            .unwrap()
            .unwrap();
        assert_eq!(c.token, "sk-9");
    }

    #[test]
    fn last_token_cookie_wins() {
        assert_eq!(
            tok(&[("cookie", b"token=a; theme=x; token=b")]),
            ("b".into(), Cookie)
        );
        // Merged across headers: the second header carries the only token.
        assert_eq!(
            tok(&[("cookie", b"theme=x"), ("cookie", b"token=b")]),
            ("b".into(), Cookie)
        );
        // The same token in both headers: no disagreement.
        assert_eq!(
            tok(&[("cookie", b"token=a"), ("cookie", b"x=1; token=a")]).0,
            "a"
        );
        // Different tokens across headers: today's Starlette takes the last,
        // Starlette before PR #3029 the first.
        assert!(matches!(
            get(&[("cookie", b"token=a"), ("cookie", b"token=b")]),
            Err(CredentialError::Ambiguous(_))
        ));
        // A token only in the second header beside a competing API key:
        // older Starlette would use the API key.
        assert!(matches!(
            get(&[
                ("cookie", b"theme=x"),
                ("cookie", b"token=b"),
                ("x-api-key", b"sk-1")
            ]),
            Err(CredentialError::Ambiguous(_))
        ));
    }

    #[test]
    fn cookie_parsing_edge_cases() {
        assert_eq!(tok(&[("cookie", b"  token  =  abc  ;x=1")]).0, "abc");
        assert_eq!(tok(&[("cookie", b"token=a=b")]).0, "a=b");
        // `token` without `=` is a value with an empty name, not the token.
        assert_eq!(get(&[("cookie", b"token")]), Ok(None));
        assert_eq!(get(&[("cookie", b"Token=abc")]), Ok(None));
        assert_eq!(tok(&[("cookie", b";;token=abc;;")]).0, "abc");
    }

    #[test]
    fn quoted_cookie_value() {
        assert_eq!(tok(&[("cookie", br#"token="abc""#)]).0, "abc");
        assert_eq!(tok(&[("cookie", br#"token="a\"b\\c""#)]).0, r#"a"b\c"#);
        assert_eq!(tok(&[("cookie", br#"token="a\101b""#)]).0, "aAb");
        assert_eq!(tok(&[("cookie", br#"token="a\x""#)]).0, "ax");
        assert_eq!(tok(&[("cookie", br#"token=""#)]).0, "\"");
        assert_eq!(tok(&[("cookie", br#"token=abc""#)]).0, "abc\"");
        assert_eq!(
            get(&[("cookie", br#"token="""#)]),
            Err(CredentialError::Empty(Cookie))
        );
        // An octal escape to a non-ASCII byte cannot be a token.
        assert_eq!(
            get(&[("cookie", br#"token="\377""#)]),
            Err(CredentialError::InvalidHeader("credential"))
        );
    }

    #[test]
    fn latin1_cookie_whitespace() {
        // Python's strip() removes NBSP (0xA0 decoded as Latin-1).
        assert_eq!(
            tok(&[("cookie", b"token=\xa0abc\xa0; other=\xe9")]).0,
            "abc"
        );
    }

    #[test]
    fn ambiguity_refusals() {
        for pairs in [
            &[
                ("authorization", &b"Bearer a"[..]),
                ("authorization", b"Bearer a"),
            ][..],
            &[("x-api-key", b"sk-1"), ("x-api-key", b"sk-2")],
            // Two spaces: HTTPBearer strips to "a", split(' ') gives three parts
            // and the middleware falls back to the cookie.
            &[("authorization", b"Bearer  a"), ("cookie", b"token=b")],
            &[("authorization", b"Bearer  a"), ("x-api-key", b"sk-b")],
        ] {
            assert!(
                matches!(get(pairs), Err(CredentialError::Ambiguous(_))),
                "{pairs:?}"
            );
        }
        // Whitespace-padded Authorization (h11 and httptools differ).
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_static("Basic a "));
        assert!(matches!(
            extract_credential(&h, &x_api_key()),
            Err(CredentialError::Ambiguous(_))
        ));
    }

    #[test]
    fn invalid_bytes_are_errors() {
        assert_eq!(
            get(&[("authorization", b"Bearer \xff\xfe")]),
            Err(CredentialError::InvalidHeader("Authorization"))
        );
        assert_eq!(
            get(&[("x-api-key", b"sk-\x80")]),
            Err(CredentialError::InvalidHeader("API key"))
        );
        assert_eq!(
            get(&[("cookie", b"token=\xc3\xa9")]),
            Err(CredentialError::InvalidHeader("credential"))
        );
    }

    #[test]
    fn errors_map_to_statuses() {
        use crate::error::Refusal;
        use http::StatusCode;
        assert_eq!(
            Refusal::from(CredentialError::Ambiguous("x")).status(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            Refusal::from(CredentialError::Empty(Cookie)).status(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            Refusal::from(CredentialError::InvalidHeader("x"))
                .answer()
                .code,
            "invalid_credential_header"
        );
    }

    #[test]
    fn debug_hides_token() {
        let c = get(&[("authorization", b"Bearer secret-value")])
            .unwrap()
            .unwrap();
        assert!(!format!("{c:?}").contains("secret-value"));
    }
}
