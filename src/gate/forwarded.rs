//! The user on Open WebUI's outbound calls, as the egress gate reads it.
//!
//! With `ENABLE_FORWARD_USER_INFO_HEADERS=true` and
//! `FORWARD_USER_INFO_HEADER_JWT_SECRET` set, Open WebUI signs every call it
//! makes for a user (`utils/headers.py`, `_mint_forward_user_jwt`): HS256 over
//! the secret's UTF-8 bytes (whitespace stripped, as `env.py` strips it),
//! claims `sub` (user id), `email`, `name`, `role`, `iss: "open-webui"`, `iat`,
//! `exp` (300 s by default). Only `sub` is used: the role and memberships are
//! read from the database, which a token minted minutes ago cannot outdate.

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use super::jwt::JwtError;

/// Open WebUI's default header name (`FORWARD_USER_INFO_HEADER_JWT`).
pub const DEFAULT_JWT_HEADER: &str = "x-openwebui-user-jwt";
/// Open WebUI's default plain user-id header (`FORWARD_USER_INFO_HEADER_USER_ID`).
pub const DEFAULT_USER_ID_HEADER: &str = "x-openwebui-user-id";

/// Clock skew tolerated on `exp`: the two processes share a host or a pod.
const LEEWAY_SECS: u64 = 5;

#[derive(Deserialize)]
struct Claims {
    sub: Option<serde_json::Value>,
    /// Read again here (jsonwebtoken checked it) so that a remembered
    /// token's expiry can be checked at each use.
    exp: Option<serde_json::Value>,
    /// Every other claim, built only so that it is checked (UTF-8, an
    /// object payload), as `jwt::RawClaims` does.
    #[serde(flatten)]
    _other: serde_json::Map<String, serde_json::Value>,
}

/// Verifies the signed user header; the algorithm is pinned to HS256 and
/// `exp` and `iss` are required.
pub struct ForwardedUserVerifier {
    key: DecodingKey,
    validation: Validation,
    /// Tokens that verified, with their user and `exp`. Open WebUI mints
    /// one token per call, but with whole-second `iat`/`exp`, so the calls
    /// it makes for one user within a second (a tool loop, the tasks after
    /// a reply) carry the same bytes; verifying costs more than the rest of
    /// the gate (HMAC key set-up, signature, two JSON documents). Signature,
    /// algorithm and `iss` depend only on the bytes and the key (fixed for
    /// this verifier: a reload builds a new one); `exp` is checked again at
    /// every use. Only verified tokens enter.
    verified: moka::sync::Cache<Box<str>, Arc<Verified>, crate::hashing::Keyed>,
}

struct Verified {
    user_id: String,
    exp: u64,
}

/// Tokens remembered at once; each lives at most `exp` (300 s by default).
const VERIFIED_TOKENS: u64 = 4096;
/// A token is reused within its second of minting, or not at all.
const VERIFIED_IDLE: Duration = Duration::from_secs(30);

impl std::fmt::Debug for ForwardedUserVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.write_str("ForwardedUserVerifier")
    }
}

impl ForwardedUserVerifier {
    /// `None` for a secret that is empty after stripping: Open WebUI then
    /// signs nothing (`... .strip() or None`).
    pub fn new(secret: &str) -> Option<Self> {
        let secret = secret.trim();
        if secret.is_empty() {
            return None;
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "iss"]);
        validation.set_issuer(&["open-webui"]);
        validation.validate_exp = true;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.leeway = LEEWAY_SECS;
        Some(Self {
            key: DecodingKey::from_secret(secret.as_bytes()),
            validation,
            verified: moka::sync::Cache::builder()
                .max_capacity(VERIFIED_TOKENS)
                .time_to_idle(VERIFIED_IDLE)
                .build_with_hasher(crate::hashing::Keyed::new()),
        })
    }

    /// The user id the token was minted for.
    pub fn verify(&self, token: &str) -> Result<String, JwtError> {
        if let Some(seen) = self.verified.get(token) {
            return still_valid(&seen, jsonwebtoken::get_current_timestamp());
        }
        let (user_id, exp) = self.verify_signed(token)?;
        if let Some(exp) = exp {
            self.verified.insert(
                token.into(),
                Arc::new(Verified {
                    user_id: user_id.clone(),
                    exp,
                }),
            );
        }
        Ok(user_id)
    }

    /// Signature and claims, by jsonwebtoken; the `exp` it checked, when
    /// it can be read back the same way.
    fn verify_signed(&self, token: &str) -> Result<(String, Option<u64>), JwtError> {
        use jsonwebtoken::errors::ErrorKind as K;
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation).map_err(
            |e| match e.kind() {
                K::ExpiredSignature => JwtError::Expired,
                K::InvalidIssuer => JwtError::Claim("iss"),
                K::MissingRequiredClaim(c) if c == "exp" => JwtError::Claim("exp"),
                K::MissingRequiredClaim(c) if c == "iss" => JwtError::Claim("iss"),
                _ => JwtError::Invalid,
            },
        )?;
        let exp = data.claims.exp.as_ref().and_then(numeric_date);
        match data.claims.sub {
            Some(serde_json::Value::String(s)) if !s.is_empty() => Ok((s, exp)),
            _ => Err(JwtError::MissingId),
        }
    }
}

/// A remembered token as of `now`, by jsonwebtoken's rule with the leeway:
/// expired when `exp < now - leeway`.
fn still_valid(seen: &Verified, now: u64) -> Result<String, JwtError> {
    if seen.exp < now.saturating_sub(LEEWAY_SECS) {
        return Err(JwtError::Expired);
    }
    Ok(seen.user_id.clone())
}

/// `exp` as jsonwebtoken reads it: an unsigned integer, or a float rounded.
fn numeric_date(v: &serde_json::Value) -> Option<u64> {
    if let Some(n) = v.as_u64() {
        return Some(n);
    }
    let f = v.as_f64()?;
    (f.is_finite() && f >= 0.0 && f < u64::MAX as f64).then(|| f.round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;

    fn mint(secret: &str, alg: Algorithm, claims: serde_json::Value) -> String {
        encode(
            &Header::new(alg),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    fn claims(sub: &str, exp_in: i64) -> serde_json::Value {
        let now = jsonwebtoken::get_current_timestamp() as i64;
        json!({"sub": sub, "role": "user", "iss": "open-webui", "iat": now, "exp": now + exp_in})
    }

    #[test]
    fn accepts_what_open_webui_mints() {
        let v = ForwardedUserVerifier::new(" s3cret \n").unwrap();
        let t = mint("s3cret", Algorithm::HS256, claims("u1", 300));
        assert_eq!(v.verify(&t).unwrap(), "u1");
    }

    #[test]
    fn refuses_forged_expired_and_other_algorithms() {
        let v = ForwardedUserVerifier::new("s3cret").unwrap();
        let wrong_key = mint("other", Algorithm::HS256, claims("u1", 300));
        assert!(matches!(v.verify(&wrong_key), Err(JwtError::Invalid)));
        let expired = mint("s3cret", Algorithm::HS256, claims("u1", -60));
        assert!(matches!(v.verify(&expired), Err(JwtError::Expired)));
        let hs512 = mint("s3cret", Algorithm::HS512, claims("u1", 300));
        assert!(matches!(v.verify(&hs512), Err(JwtError::Invalid)));
        let mut no_exp = claims("u1", 0);
        no_exp.as_object_mut().unwrap().remove("exp");
        let t = mint("s3cret", Algorithm::HS256, no_exp);
        assert!(v.verify(&t).is_err());
        let mut wrong_iss = claims("u1", 300);
        wrong_iss["iss"] = json!("someone");
        let t = mint("s3cret", Algorithm::HS256, wrong_iss);
        assert!(matches!(v.verify(&t), Err(JwtError::Claim("iss"))));
        let t = mint("s3cret", Algorithm::HS256, claims("", 300));
        assert!(matches!(v.verify(&t), Err(JwtError::MissingId)));
        // `alg: none` with no signature.
        let none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ1MSIsImlzcyI6Im9wZW4td2VidWkiLCJleHAiOjk5OTk5OTk5OTl9.";
        assert!(v.verify(none).is_err());
    }

    #[test]
    fn only_verified_tokens_are_remembered_and_their_expiry_still_counts() {
        let v = ForwardedUserVerifier::new("s3cret").unwrap();
        let good = mint("s3cret", Algorithm::HS256, claims("u1", 300));
        let forged = mint("other", Algorithm::HS256, claims("u1", 300));
        let expired = mint("s3cret", Algorithm::HS256, claims("u1", -60));
        for _ in 0..2 {
            assert_eq!(v.verify(&good).unwrap(), "u1");
            assert!(v.verify(&forged).is_err());
            assert!(v.verify(&expired).is_err());
        }
        assert!(v.verified.contains_key(good.as_str()));
        assert!(!v.verified.contains_key(forged.as_str()));
        assert!(!v.verified.contains_key(expired.as_str()));

        // A remembered token, checked later: jsonwebtoken's `exp < now -
        // leeway`, to the second.
        let seen = v.verified.get(good.as_str()).unwrap();
        let edge = seen.exp + LEEWAY_SECS;
        assert_eq!(still_valid(&seen, edge).unwrap(), "u1");
        assert!(matches!(
            still_valid(&seen, edge + 1),
            Err(JwtError::Expired)
        ));
    }

    #[test]
    fn exp_is_read_back_as_jsonwebtoken_reads_it() {
        assert_eq!(numeric_date(&json!(1_700_000_000)), Some(1_700_000_000));
        assert_eq!(numeric_date(&json!(1_700_000_000.6)), Some(1_700_000_001));
        assert_eq!(numeric_date(&json!(-1)), None);
        assert_eq!(numeric_date(&json!("1700000000")), None);
    }

    #[test]
    fn invalid_utf8_in_any_claim_is_refused() {
        // {"sub":"u1","iss":"open-webui","exp":4000000000,"x":"\xff"}, HS256
        // with "s3cret": PyJWT's `json.loads` refuses it (found by fuzzing).
        let t = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1MSIsImlzcyI6Im9wZW4td2VidWkiLCJleHAiOjQwMDAwMDAwMDAsIngiOiL_In0.thRDOK04yZYEElJEKVY3KQtq_BrpGe44aC-tiKvtXsQ";
        let v = ForwardedUserVerifier::new("s3cret").unwrap();
        assert!(matches!(v.verify(t), Err(JwtError::Invalid)));
    }

    #[test]
    fn an_empty_secret_signs_nothing() {
        assert!(ForwardedUserVerifier::new("  ").is_none());
    }
}
