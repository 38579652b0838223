//! The fixture `setup` writes and `loadgen run` reads: who the simulated
//! users are, their session token, and which model ids they may and may
//! not use (computed from the same org/model assignment written to the DB).

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use jsonwebtoken::{EncodingKey, Header};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Fixture {
    /// The database the fixture describes (informational).
    pub database: String,
    /// Models in the mock catalogue the orgs were given subsets of.
    pub models: usize,
    pub organizations: Vec<OrgFixture>,
    pub users: Vec<UserFixture>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OrgFixture {
    pub id: String,
    pub name: String,
    /// How many models the organization may use.
    pub models: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct UserFixture {
    pub id: String,
    /// A session JWT (HS256, `{"id", "typ": "session", ...}`).
    pub token: String,
    pub orgs: Vec<String>,
    /// A sample of models some org of the user permits.
    pub allowed: Vec<String>,
    /// A sample of models none of the user's orgs permits.
    pub forbidden: Vec<String>,
}

impl Fixture {
    pub fn load(path: &Path) -> anyhow::Result<Fixture> {
        let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let fixture: Fixture = serde_json::from_slice(&text)
            .with_context(|| format!("parsing fixture {}", path.display()))?;
        if fixture.users.is_empty() {
            anyhow::bail!("fixture {} has no users", path.display());
        }
        if let Some(u) = fixture
            .users
            .iter()
            .find(|u| u.allowed.is_empty() || u.forbidden.is_empty())
        {
            anyhow::bail!("fixture user {} lacks allowed or forbidden models", u.id);
        }
        Ok(fixture)
    }

    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let text = serde_json::to_vec_pretty(self)?;
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
    }
}

#[derive(Serialize)]
struct SessionClaims<'a> {
    id: &'a str,
    typ: &'static str,
    iat: u64,
    exp: u64,
    jti: String,
}

/// Token lifetime: Open WebUI's default (`JWT_EXPIRES_IN=4w`).
const TOKEN_LIFETIME_S: u64 = 28 * 24 * 3_600;

/// Mints a session token the way Open WebUI's `create_token` does: HS256
/// over the UTF-8 bytes of `WEBUI_SECRET_KEY`, claims `id`, `typ`, `iat`,
/// `exp`, `jti`.
pub fn mint_token(secret: &str, user_id: &str) -> anyhow::Result<String> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let claims = SessionClaims {
        id: user_id,
        typ: "session",
        iat: now,
        exp: now + TOKEN_LIFETIME_S,
        jti: uuid::Uuid::new_v4().to_string(),
    };
    Ok(jsonwebtoken::encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_pass_the_products_verifier() {
        let token = mint_token("s3cret", "user-1").unwrap();
        let claims = modelgate::gate::jwt::JwtVerifier::from_secrets(["s3cret"])
            .verify(&token)
            .unwrap();
        assert_eq!(claims.user_id, "user-1");
        assert_eq!(claims.typ.as_deref(), Some("session"));
        assert!(modelgate::gate::jwt::JwtVerifier::from_secrets(["other"])
            .verify(&token)
            .is_err());
    }
}
