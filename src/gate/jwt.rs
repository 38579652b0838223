//! Verifying Open WebUI session tokens exactly the way Open WebUI does.
//!
//! Open WebUI 0.12.4 signs sessions with PyJWT 2.13, HS256, keyed with the
//! UTF-8 bytes of `WEBUI_SECRET_KEY` (`utils/auth.py`: `SESSION_SECRET =
//! WEBUI_SECRET_KEY`, `ALGORITHM = 'HS256'`, `create_token`,
//! `decode_token` → `jwt.decode(token, SESSION_SECRET, algorithms=[ALGORITHM])`).
//! `jwt.decode` with default options checks (PyJWT `api_jwt.py`
//! `_validate_claims`, leeway 0): `exp` when present (`int(exp) <= now` is
//! expired), `nbf` and `iat` when present (in the future → rejected), `aud`
//! (a truthy `aud` with no expected audience → rejected), and that `iss`,
//! `sub`, `jti` are strings when present. jsonwebtoken checks `exp` with a
//! strict `<` and a default 60 s leeway, so those claims are checked here
//! by hand with PyJWT's rules; jsonwebtoken only checks the algorithm and
//! the signature.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;

/// Why a token or the key configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    /// Not a well-formed HS256 token signed with the configured secret.
    #[error("invalid token")]
    Invalid,
    /// `exp` is in the past.
    #[error("token expired")]
    Expired,
    /// A claim PyJWT validates is malformed, or `nbf`/`iat` lies in the future.
    #[error("invalid token claim `{0}`")]
    Claim(&'static str),
    /// The token carries no usable `id` claim (Open WebUI: `'id' in data`).
    #[error("token has no user id")]
    MissingId,
    /// `WEBUI_SECRET_KEY_FILE` could not be read.
    /// The cause is in the message, so not also the `source()` (a printed
    /// error chain would repeat it).
    #[error("cannot read secret key file {path}: {error}")]
    KeyFile { path: String, error: std::io::Error },
    /// The key file exists but yields an empty key.
    #[error("secret key file {0} is empty")]
    EmptyKeyFile(String),
}

/// The claims modelgate needs from a verified session token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionClaims {
    /// Claim `id`: the Open WebUI user id.
    pub user_id: String,
    /// Claim `typ` (`session`, `automation`, `subagent`).
    pub typ: Option<String>,
    /// Claim `exp`, absent when Open WebUI runs with `JWT_EXPIRES_IN=-1`.
    pub exp: Option<u64>,
    /// Claim `jti`, used by Open WebUI's Redis revocation list.
    pub jti: Option<String>,
}

/// Claims as they arrive; everything PyJWT inspects is kept as a raw
/// `Value` so its Python-typed rules can be applied exactly.
#[derive(Deserialize)]
struct RawClaims {
    id: Option<Value>,
    typ: Option<Value>,
    exp: Option<Value>,
    nbf: Option<Value>,
    iat: Option<Value>,
    aud: Option<Value>,
    iss: Option<Value>,
    sub: Option<Value>,
    jti: Option<Value>,
    /// Every other claim, built only so that it is checked: serde skips
    /// unknown members without checking their UTF-8, and PyJWT's
    /// `json.loads` refuses a payload with invalid UTF-8 anywhere. Being a
    /// map also refuses a payload that is a JSON array (PyJWT: "must be a
    /// json object"), which plain field structs read by position.
    #[serde(flatten)]
    _other: serde_json::Map<String, Value>,
}

/// Verifies HS256 session tokens against one or more candidate secrets.
///
/// More than one key only when the configuration has two plausible
/// readings (see [`JwtVerifier::from_lookup`]); every candidate is derived
/// from operator-provided secret material, so accepting any of them
/// accepts nothing an attacker could forge.
pub struct JwtVerifier {
    keys: Vec<DecodingKey>,
    validation: Validation,
    /// Tokens that verified before, with what their time checks need.
    /// Signature, algorithm and claim types are a function of the token's
    /// exact bytes and the keys (fixed for this verifier's life: a reload
    /// builds a new one), so a token seen again skips the HMAC and the
    /// JSON, which cost ~8 µs of a proxied call with cold caches; its
    /// `iat`, `nbf` and `exp` are still checked against the clock at every
    /// use. Only verified tokens enter, so forged ones cannot fill it.
    verified: moka::sync::Cache<Box<str>, Arc<Verified>, crate::hashing::Keyed>,
}

/// A token that verified, and the time bounds it must still be within.
struct Verified {
    claims: SessionClaims,
    iat: Option<i64>,
    nbf: Option<i64>,
    exp: Option<i64>,
}

/// Verified tokens remembered per verifier: the sessions active at once on
/// one deployment, at ~0.5 KiB each.
const VERIFIED_TOKENS: u64 = 4096;
/// How long a remembered token is kept without use.
const VERIFIED_IDLE: std::time::Duration = std::time::Duration::from_secs(600);

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("JwtVerifier")
            .field("keys", &self.keys.len())
            .finish()
    }
}

impl JwtVerifier {
    /// A verifier for exactly these secrets (raw key bytes, as PyJWT
    /// `str.encode('utf-8')` of the configured key).
    pub fn from_secrets<I, S>(secrets: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<[u8]>,
    {
        let mut seen: HashSet<Vec<u8>> = HashSet::new();
        let keys = secrets
            .into_iter()
            .filter(|s| seen.insert(s.as_ref().to_vec()))
            .map(|s| DecodingKey::from_secret(s.as_ref()))
            .collect();
        // Pin HS256: `alg: none`, HS384/HS512 and every asymmetric algorithm
        // are refused before any key is tried (PyJWT `algorithms=['HS256']`).
        let mut validation = Validation::new(Algorithm::HS256);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.leeway = 0;
        JwtVerifier {
            keys,
            validation,
            verified: moka::sync::Cache::builder()
                .max_capacity(VERIFIED_TOKENS)
                .time_to_idle(VERIFIED_IDLE)
                .build_with_hasher(crate::hashing::Keyed::new()),
        }
    }

    /// Builds the verifier from the environment, through `lookup` so tests
    /// never touch the process environment.
    ///
    /// - `WEBUI_SECRET_KEY`, when set and non-empty, is the key and nothing
    ///   else is consulted (env.py: `os.getenv('WEBUI_SECRET_KEY', ...)`;
    ///   `open-webui serve` only reads the key file when it is unset).
    /// - Otherwise every configured candidate is accepted:
    ///   `WEBUI_JWT_SECRET_KEY` (env.py's fallback, used when uvicorn is
    ///   started directly) and the text of `WEBUI_SECRET_KEY_FILE` (what
    ///   `open-webui serve` uses even when `WEBUI_JWT_SECRET_KEY` is set,
    ///   `__init__.py` `serve`).
    /// - The key file's text has two plausible readings: `open-webui serve`
    ///   uses `KEY_FILE.read_text()` verbatim (text mode: `\r\n` → `\n`,
    ///   nothing stripped), while the Docker image's `start.sh` does
    ///   `WEBUI_SECRET_KEY=$(cat "$KEY_FILE")`, which drops trailing
    ///   newlines (and `start.sh` writes the file with `echo`, so it has
    ///   one). Both readings are accepted.
    ///
    /// `Ok(None)`: no key configured (the caller decides whether that is
    /// fatal).
    pub fn from_lookup(
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<JwtVerifier>, JwtError> {
        let non_empty = |name: &str| lookup(name).filter(|v| !v.is_empty());
        if let Some(key) = non_empty("WEBUI_SECRET_KEY") {
            return Ok(Some(Self::from_secrets([key.into_bytes()])));
        }
        let mut candidates: Vec<Vec<u8>> = Vec::new();
        if let Some(key) = non_empty("WEBUI_JWT_SECRET_KEY") {
            candidates.push(key.into_bytes());
        }
        if let Some(path) = non_empty("WEBUI_SECRET_KEY_FILE") {
            let raw = std::fs::read(Path::new(&path)).map_err(|error| JwtError::KeyFile {
                path: path.clone(),
                error,
            })?;
            let readings = key_file_readings(&raw);
            if readings.is_empty() {
                return Err(JwtError::EmptyKeyFile(path));
            }
            candidates.extend(readings);
        }
        if candidates.is_empty() {
            return Ok(None);
        }
        Ok(Some(Self::from_secrets(candidates)))
    }

    /// Verifies `token` now.
    pub fn verify(&self, token: &str) -> Result<SessionClaims, JwtError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        self.verify_at(token, now)
    }

    /// Verifies `token` as of `now` (seconds since the epoch, fractional
    /// like Python's `datetime.now().timestamp()`).
    pub fn verify_at(&self, token: &str, now: f64) -> Result<SessionClaims, JwtError> {
        if let Some(seen) = self.verified.get(token) {
            check_times(seen.iat, seen.nbf, seen.exp, now)?;
            return Ok(seen.claims.clone());
        }
        let mut claims = None;
        for key in &self.keys {
            match jsonwebtoken::decode::<RawClaims>(token, key, &self.validation) {
                Ok(data) => {
                    claims = Some(data.claims);
                    break;
                }
                // A signature mismatch may still verify under the next
                // candidate; anything else fails the same way for all keys.
                Err(e) if matches!(e.kind(), jsonwebtoken::errors::ErrorKind::InvalidSignature) => {
                    continue
                }
                Err(_) => return Err(JwtError::Invalid),
            }
        }
        let claims = claims.ok_or(JwtError::Invalid)?;
        let verified = check_claims(claims, now)?;
        let session = verified.claims.clone();
        self.verified.insert(token.into(), Arc::new(verified));
        Ok(session)
    }
}

/// The key file's candidate texts: Python `read_text()` (universal newlines)
/// and the shell's `$(cat file)` (trailing `\n`s removed), empty ones dropped.
fn key_file_readings(raw: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::with_capacity(2);
    if let Ok(text) = std::str::from_utf8(raw) {
        let python = text.replace("\r\n", "\n").replace('\r', "\n");
        if !python.is_empty() {
            out.push(python.into_bytes());
        }
    }
    let mut end = raw.len();
    while end > 0 && raw[end - 1] == b'\n' {
        end -= 1;
    }
    if end > 0 && !out.iter().any(|k| k.as_slice() == &raw[..end]) {
        out.push(raw[..end].to_vec());
    }
    out
}

/// Python `int(x)` of a JSON number claim: truncation toward zero. Strings
/// (which `int()` would also parse) are refused: stricter than PyJWT, so a
/// token modelgate accepts is one Open WebUI accepts.
fn int_claim(v: &Value, name: &'static str) -> Result<i64, JwtError> {
    match v {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Ok(i)
            } else if let Some(f) = n.as_f64() {
                if f.is_finite() && f.abs() < 9.0e15 {
                    Ok(f.trunc() as i64)
                } else {
                    Err(JwtError::Claim(name))
                }
            } else {
                Err(JwtError::Claim(name))
            }
        }
        _ => Err(JwtError::Claim(name)),
    }
}

/// Python truthiness of a JSON value.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

fn optional_string(v: Option<Value>, name: &'static str) -> Result<Option<String>, JwtError> {
    match v {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(JwtError::Claim(name)),
    }
}

/// PyJWT's time checks, in its order: `iat` and `nbf` must not lie in the
/// future, and `exp <= now` is expired.
fn check_times(
    iat: Option<i64>,
    nbf: Option<i64>,
    exp: Option<i64>,
    now: f64,
) -> Result<(), JwtError> {
    if iat.is_some_and(|iat| iat as f64 > now) {
        return Err(JwtError::Claim("iat"));
    }
    if nbf.is_some_and(|nbf| nbf as f64 > now) {
        return Err(JwtError::Claim("nbf"));
    }
    // PyJWT: `if exp <= (now - leeway): raise ExpiredSignatureError`.
    if exp.is_some_and(|exp| exp as f64 <= now) {
        return Err(JwtError::Expired);
    }
    Ok(())
}

/// PyJWT 2.13 `_validate_claims` with default options and leeway 0, then
/// Open WebUI's `'id' in data`.
fn check_claims(c: RawClaims, now: f64) -> Result<Verified, JwtError> {
    // Each claim is read and checked before the next is read, as PyJWT
    // does, so a token with two faults is refused for the same one.
    let iat = c.iat.as_ref().map(|v| int_claim(v, "iat")).transpose()?;
    check_times(iat, None, None, now)?;
    let nbf = c.nbf.as_ref().map(|v| int_claim(v, "nbf")).transpose()?;
    check_times(None, nbf, None, now)?;
    let exp_claim = c.exp.as_ref().map(|v| int_claim(v, "exp")).transpose()?;
    check_times(None, None, exp_claim, now)?;
    let exp = exp_claim
        .map(|exp| u64::try_from(exp).map_err(|_| JwtError::Expired))
        .transpose()?;
    if c.aud.as_ref().is_some_and(truthy) {
        return Err(JwtError::Claim("aud"));
    }
    optional_string(c.iss, "iss")?;
    optional_string(c.sub, "sub")?;
    let jti = optional_string(c.jti, "jti")?;
    // `typ` is not validated by PyJWT; keep it only when it is a string.
    let typ = match c.typ {
        Some(Value::String(s)) => Some(s),
        _ => None,
    };
    let user_id = match c.id {
        Some(Value::String(s)) if !s.is_empty() => s,
        _ => return Err(JwtError::MissingId),
    };
    Ok(Verified {
        claims: SessionClaims {
            user_id,
            typ,
            exp,
            jti,
        },
        iat,
        nbf,
        exp: exp_claim,
    })
}

/// Entry point for `cargo fuzz`: verifying any token never panics, only a
/// token signed with the key verifies, and a verified token's claims are
/// the ones Open WebUI reads from it.
#[cfg(fuzzing)]
pub mod fuzz {
    use jsonwebtoken::{crypto, EncodingKey};

    use super::*;
    use crate::gate::forwarded::ForwardedUserVerifier;

    const KEY: &str = "fuzz-secret";
    const NOW: f64 = 1_800_000_000.5;

    fn sign(message: &str) -> String {
        let key = EncodingKey::from_secret(KEY.as_bytes());
        crypto::sign(message.as_bytes(), &key, Algorithm::HS256).expect("HMAC signs anything")
    }

    /// Base64url without padding, as JWTs spell their parts.
    fn b64url(bytes: &[u8]) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
            for i in 0..=chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            }
        }
        out
    }

    fn signed_with_key(token: &str) -> bool {
        token
            .rsplit_once('.')
            .is_some_and(|(message, signature)| sign(message) == signature)
    }

    /// The first byte picks the mode: even, the rest is a token; odd, the
    /// rest is a claims payload signed with the key, then one character of
    /// the token (chosen by the first byte) is changed.
    pub fn jwt(data: &[u8]) {
        let Some((&mode, rest)) = data.split_first() else {
            return;
        };
        let session = JwtVerifier::from_secrets([KEY]);
        let forwarded = ForwardedUserVerifier::new(KEY).expect("a non-empty secret");
        if mode & 1 == 0 {
            let token = String::from_utf8_lossy(rest);
            if session.verify_at(&token, NOW).is_ok() || forwarded.verify(&token).is_ok() {
                assert!(
                    signed_with_key(&token),
                    "verified a token not signed with the key"
                );
            }
            return;
        }
        let message = format!(
            "{}.{}",
            b64url(br#"{"alg":"HS256","typ":"JWT"}"#),
            b64url(rest)
        );
        let token = format!("{message}.{}", sign(&message));
        // PyJWT's reading: `json.loads` (the last of equal keys wins), and
        // the payload must be an object.
        let reference = match serde_json::from_slice::<Value>(rest) {
            Ok(Value::Object(map)) => Some(map),
            _ => None,
        };
        let text = |name: &str| reference.as_ref().and_then(|r| r.get(name)?.as_str());
        if let Ok(claims) = session.verify_at(&token, NOW) {
            assert!(
                reference.is_some(),
                "verified a payload that is not an object"
            );
            assert_eq!(text("id"), Some(claims.user_id.as_str()));
            assert_eq!(text("jti"), claims.jti.as_deref());
            assert_eq!(text("typ"), claims.typ.as_deref());
            assert!(claims.exp.map_or(true, |exp| exp as f64 > NOW));
        }
        if let Ok(sub) = forwarded.verify(&token) {
            assert!(
                reference.is_some(),
                "verified a payload that is not an object"
            );
            assert_eq!(text("sub"), Some(sub.as_str()));
            assert_eq!(text("iss"), Some("open-webui"));
        }
        let other = JwtVerifier::from_secrets(["another-secret"]);
        assert!(
            other.verify_at(&token, NOW).is_err(),
            "verified with the wrong key"
        );
        let mut bytes = token.into_bytes();
        let at = usize::from(mode >> 1) * bytes.len() / 128;
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).expect("still ASCII");
        assert!(
            session.verify_at(&tampered, NOW).is_err(),
            "verified a changed token"
        );
        assert!(
            forwarded.verify(&tampered).is_err(),
            "verified a changed token"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;

    const KEY: &str = "t0p-s3cret";
    const NOW: f64 = 1_800_000_000.5;

    fn mint(alg: Algorithm, key: &[u8], claims: &Value) -> String {
        encode(&Header::new(alg), claims, &EncodingKey::from_secret(key)).unwrap()
    }

    fn verifier() -> JwtVerifier {
        JwtVerifier::from_secrets([KEY])
    }

    #[test]
    fn good_token() {
        let t = mint(
            Algorithm::HS256,
            KEY.as_bytes(),
            &json!({"id": "u1", "typ": "session", "exp": 1_800_000_100u64, "jti": "j", "iat": 1_799_999_000u64}),
        );
        let c = verifier().verify_at(&t, NOW).unwrap();
        assert_eq!(
            c,
            SessionClaims {
                user_id: "u1".into(),
                typ: Some("session".into()),
                exp: Some(1_800_000_100),
                jti: Some("j".into())
            }
        );
    }

    /// Signed with `KEY` over payloads `encode` cannot produce (found by the
    /// `jwt` fuzz target): PyJWT's `json.loads` refuses invalid UTF-8
    /// anywhere, and PyJWT refuses a payload that is not an object; serde
    /// skipped unknown claims unchecked and read arrays by position.
    #[test]
    fn payloads_python_refuses() {
        for token in [
            // {"id":"u1","x":"\xff"}
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpZCI6InUxIiwieCI6Iv8ifQ.SWUmCdsKdmEzL6eVz0KT6thOMtDe1Bnv4MIaspcoR54",
            // ["u1",null,null,null,null,null,null,null,null]
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.WyJ1MSIsbnVsbCxudWxsLG51bGwsbnVsbCxudWxsLG51bGwsbnVsbCxudWxsXQ.QWZLSwTkN5vLUuxGt6E74mQTBh3jDe0qAt390zmHz1o",
            // ["u1",null,null,null,null]
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.WyJ1MSIsbnVsbCxudWxsLG51bGwsbnVsbF0.r9-u-EARbR8KcP9tgo1NFSHj9951QH6FctJ_uueqOOo",
        ] {
            assert!(
                matches!(verifier().verify_at(token, NOW), Err(JwtError::Invalid)),
                "{token}"
            );
        }
    }

    #[test]
    fn expired_and_boundary() {
        let v = verifier();
        let t = mint(
            Algorithm::HS256,
            KEY.as_bytes(),
            &json!({"id": "u", "exp": 1_799_999_999u64}),
        );
        assert!(matches!(v.verify_at(&t, NOW), Err(JwtError::Expired)));
        // PyJWT: `exp <= now` is expired, no leeway: exp == floor(now) is expired too.
        let t = mint(
            Algorithm::HS256,
            KEY.as_bytes(),
            &json!({"id": "u", "exp": 1_800_000_000u64}),
        );
        assert!(matches!(v.verify_at(&t, NOW), Err(JwtError::Expired)));
        let t = mint(
            Algorithm::HS256,
            KEY.as_bytes(),
            &json!({"id": "u", "exp": 1_800_000_001u64}),
        );
        assert!(v.verify_at(&t, NOW).is_ok());
        // Float exp is truncated like Python int().
        let t = mint(
            Algorithm::HS256,
            KEY.as_bytes(),
            &json!({"id": "u", "exp": 1_800_000_000.9}),
        );
        assert!(matches!(v.verify_at(&t, NOW), Err(JwtError::Expired)));
        // Non-numeric exp is refused.
        let t = mint(
            Algorithm::HS256,
            KEY.as_bytes(),
            &json!({"id": "u", "exp": "soon"}),
        );
        assert!(matches!(v.verify_at(&t, NOW), Err(JwtError::Claim("exp"))));
    }

    /// A remembered token is still checked against the clock at every use,
    /// and only tokens that verified are remembered.
    #[test]
    fn remembered_tokens_still_expire() {
        let v = verifier();
        let t = mint(
            Algorithm::HS256,
            KEY.as_bytes(),
            &json!({"id": "u", "nbf": 1_800_000_000u64, "exp": 1_800_000_010u64}),
        );
        assert_eq!(v.verify_at(&t, NOW).unwrap().user_id, "u");
        assert!(v.verified.contains_key(t.as_str()));
        assert_eq!(v.verify_at(&t, NOW + 5.0).unwrap().user_id, "u");
        assert!(matches!(v.verify_at(&t, NOW + 9.5), Err(JwtError::Expired)));
        // A clock set back before `nbf` refuses it as a fresh check would.
        assert!(matches!(
            v.verify_at(&t, NOW - 1.0),
            Err(JwtError::Claim("nbf"))
        ));
        assert_eq!(
            v.verify_at(&t, NOW + 1.0).unwrap().user_id,
            "u",
            "refusals do not evict a good token"
        );

        // The same claims under another key, and a tampered signature:
        // refused, and never remembered.
        let forged = mint(
            Algorithm::HS256,
            b"other",
            &json!({"id": "u", "nbf": 1_800_000_000u64, "exp": 1_800_000_010u64}),
        );
        let mut tampered = t.clone();
        tampered.push('A');
        for bad in [forged, tampered] {
            assert!(matches!(v.verify_at(&bad, NOW), Err(JwtError::Invalid)));
            assert!(!v.verified.contains_key(bad.as_str()));
        }
        // An expired token is not remembered either.
        let old = mint(
            Algorithm::HS256,
            KEY.as_bytes(),
            &json!({"id": "u", "exp": 1_700_000_000u64}),
        );
        assert!(matches!(v.verify_at(&old, NOW), Err(JwtError::Expired)));
        assert!(!v.verified.contains_key(old.as_str()));
    }

    #[test]
    fn no_exp_is_accepted() {
        let t = mint(Algorithm::HS256, KEY.as_bytes(), &json!({"id": "u"}));
        let c = verifier().verify_at(&t, NOW).unwrap();
        assert_eq!(c.exp, None);
        assert_eq!(c.user_id, "u");
    }

    #[test]
    fn future_iat_nbf_and_aud_rejected() {
        let v = verifier();
        for claims in [
            json!({"id": "u", "iat": 1_800_000_100u64}),
            json!({"id": "u", "nbf": 1_800_000_100u64}),
            json!({"id": "u", "aud": "x"}),
            json!({"id": "u", "sub": 5}),
            json!({"id": "u", "jti": 5}),
            json!({"id": "u", "iss": ["a"]}),
        ] {
            let t = mint(Algorithm::HS256, KEY.as_bytes(), &claims);
            assert!(
                matches!(v.verify_at(&t, NOW), Err(JwtError::Claim(_))),
                "{claims}"
            );
        }
        // A falsy aud passes PyJWT.
        let t = mint(
            Algorithm::HS256,
            KEY.as_bytes(),
            &json!({"id": "u", "aud": ""}),
        );
        assert!(v.verify_at(&t, NOW).is_ok());
    }

    #[test]
    fn wrong_key_rejected() {
        let t = mint(Algorithm::HS256, b"other", &json!({"id": "u"}));
        assert!(matches!(
            verifier().verify_at(&t, NOW),
            Err(JwtError::Invalid)
        ));
    }

    #[test]
    fn wrong_algorithms_rejected() {
        for alg in [Algorithm::HS384, Algorithm::HS512] {
            let t = mint(alg, KEY.as_bytes(), &json!({"id": "u"}));
            assert!(
                matches!(verifier().verify_at(&t, NOW), Err(JwtError::Invalid)),
                "{alg:?}"
            );
        }
        // RS256 header carrying an HMAC signature (key-confusion attempt).
        let good = mint(Algorithm::HS256, KEY.as_bytes(), &json!({"id": "u"}));
        let mut parts = good.splitn(3, '.');
        let (_, payload, sig) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        // {"alg":"RS256","typ":"JWT"} and {"alg":"none","typ":"JWT"}
        for header in [
            "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9",
            "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0",
        ] {
            let forged = format!("{header}.{payload}.{sig}");
            assert!(verifier().verify_at(&forged, NOW).is_err());
            let unsigned = format!("{header}.{payload}.");
            assert!(verifier().verify_at(&unsigned, NOW).is_err());
        }
    }

    #[test]
    fn garbage_rejected() {
        for t in [
            "",
            "a",
            "a.b",
            "a.b.c",
            "...",
            "sk-123",
            "eyJ.eyJ.eyJ",
            "a.b.c.d",
        ] {
            assert!(verifier().verify_at(t, NOW).is_err(), "{t}");
        }
    }

    #[test]
    fn missing_or_bad_id_rejected() {
        for claims in [
            json!({}),
            json!({"id": ""}),
            json!({"id": 7}),
            json!({"id": null}),
        ] {
            let t = mint(Algorithm::HS256, KEY.as_bytes(), &claims);
            assert!(
                matches!(verifier().verify_at(&t, NOW), Err(JwtError::MissingId)),
                "{claims}"
            );
        }
    }

    /// Minted with PyJWT 2.13.0 (Open WebUI 0.12.4's pin) the way
    /// `create_token` does, key = the text of a `.webui_secret_key` file:
    ///
    /// ```sh
    /// python3 -c "import jwt; print(jwt.encode({'id': '0f6c7d2e-5a1b-4c3d-9e8f-1a2b3c4d5e6f', \
    ///   'typ': 'session', 'exp': 4102444800, 'jti': '3c1d2e4f-aaaa-bbbb-cccc-111122223333', \
    ///   'iat': 1700000000}, 'qk4n5V0Ew3bXn1zYv8Gj1UeZ', algorithm='HS256'))"
    /// ```
    const PY_KEY: &str = "qk4n5V0Ew3bXn1zYv8Gj1UeZ";
    const PY_TOKEN: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpZCI6IjBmNmM3ZDJlLTVhMWItNGMzZC05ZThmLTFhMmIzYzRkNWU2ZiIsInR5cCI6InNlc3Npb24iLCJleHAiOjQxMDI0NDQ4MDAsImp0aSI6IjNjMWQyZTRmLWFhYWEtYmJiYi1jY2NjLTExMTEyMjIyMzMzMyIsImlhdCI6MTcwMDAwMDAwMH0.4EXqay1Uy2Qh8spBiiNvT23AZ-m2TaeWgKzNdYz2ch4";

    #[test]
    fn python_minted_token() {
        let c = JwtVerifier::from_secrets([PY_KEY])
            .verify_at(PY_TOKEN, NOW)
            .unwrap();
        assert_eq!(c.user_id, "0f6c7d2e-5a1b-4c3d-9e8f-1a2b3c4d5e6f");
        assert_eq!(c.typ.as_deref(), Some("session"));
        assert_eq!(c.exp, Some(4_102_444_800));
        assert_eq!(
            c.jti.as_deref(),
            Some("3c1d2e4f-aaaa-bbbb-cccc-111122223333")
        );
        assert!(JwtVerifier::from_secrets(["nope"])
            .verify_at(PY_TOKEN, NOW)
            .is_err());
    }

    #[test]
    fn lookup_precedence_and_key_file_readings() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(".webui_secret_key");
        // start.sh writes `echo $(... | base64) > file`: trailing newline.
        std::fs::write(&file, "ZmlsZWtleQ==\n").unwrap();
        let file_s = file.to_string_lossy().into_owned();
        let env = |pairs: Vec<(&'static str, String)>| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())
        };

        let none = env(vec![]);
        assert!(JwtVerifier::from_lookup(&none).unwrap().is_none());

        // WEBUI_SECRET_KEY wins over everything.
        let l = env(vec![
            ("WEBUI_SECRET_KEY", "main".into()),
            ("WEBUI_JWT_SECRET_KEY", "legacy".into()),
            ("WEBUI_SECRET_KEY_FILE", file_s.clone()),
        ]);
        let v = JwtVerifier::from_lookup(&l).unwrap().unwrap();
        let t = |k: &str| mint(Algorithm::HS256, k.as_bytes(), &json!({"id": "u"}));
        assert!(v.verify_at(&t("main"), NOW).is_ok());
        assert!(v.verify_at(&t("legacy"), NOW).is_err());
        assert!(v.verify_at(&t("ZmlsZWtleQ=="), NOW).is_err());

        // No WEBUI_SECRET_KEY: the legacy name and both readings of the file.
        let l = env(vec![
            ("WEBUI_SECRET_KEY", String::new()),
            ("WEBUI_JWT_SECRET_KEY", "legacy".into()),
            ("WEBUI_SECRET_KEY_FILE", file_s.clone()),
        ]);
        let v = JwtVerifier::from_lookup(&l).unwrap().unwrap();
        assert!(v.verify_at(&t("legacy"), NOW).is_ok());
        assert!(v.verify_at(&t("ZmlsZWtleQ=="), NOW).is_ok());
        assert!(v.verify_at(&t("ZmlsZWtleQ==\n"), NOW).is_ok());
        assert!(v.verify_at(&t("main"), NOW).is_err());

        let l = env(vec![(
            "WEBUI_SECRET_KEY_FILE",
            dir.path().join("missing").to_string_lossy().into_owned(),
        )]);
        assert!(matches!(
            JwtVerifier::from_lookup(&l),
            Err(JwtError::KeyFile { .. })
        ));
        std::fs::write(&file, "\n\n").unwrap();
        let l = env(vec![("WEBUI_SECRET_KEY_FILE", file_s)]);
        let v = JwtVerifier::from_lookup(&l).unwrap().unwrap();
        // "\n\n" is Python's reading; the shell's reading is empty and dropped.
        assert!(v.verify_at(&t("\n\n"), NOW).is_ok());
    }

    #[test]
    fn key_file_crlf() {
        let r = key_file_readings(b"abc\r\n");
        assert!(r.contains(&b"abc\n".to_vec()));
        assert!(r.contains(&b"abc\r".to_vec()));
        assert!(key_file_readings(b"").is_empty());
    }
}
