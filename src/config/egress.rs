//! The `[egress]` section: the listener Open WebUI's outbound model calls
//! go through (`OPENAI_API_BASE_URL=http://modelgate:8082`) and the upstream
//! they continue to (OpenRouter).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::Arc;

use http::{HeaderName, Uri};
use serde::Deserialize;

use super::file::non_zero;
use super::{invalid, ConfigError, EnvLookup};
use crate::gate::forwarded::{ForwardedUserVerifier, DEFAULT_JWT_HEADER, DEFAULT_USER_ID_HEADER};

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EgressSection {
    /// Where Open WebUI's outbound calls arrive. Env: `MODELGATE_EGRESS_LISTEN`.
    pub listen: String,
    /// The model API the calls continue to, with its path prefix: a call to
    /// `/chat/completions` goes to `{upstream}/chat/completions`.
    /// Env: `MODELGATE_EGRESS_UPSTREAM`.
    pub upstream: String,
    /// Extra PEM trust roots for the upstream's certificate, besides the
    /// platform's (a corporate TLS proxy, or a test upstream).
    pub ca_file: Option<PathBuf>,
    /// Trust Open WebUI's unsigned `X-OpenWebUI-User-Id` header when no
    /// signed one is present. Anyone who can reach the egress listener can
    /// then call as any user: only for a listener nothing else can reach.
    pub trust_plain_user_headers: bool,
    /// Models a call without a verified user may use (the task or embedding
    /// model an admin chose, when Open WebUI calls it for no user).
    pub system_models: Vec<String>,
    /// Largest outbound request body read to find its models (bigger: 413).
    /// Outbound chat calls carry the whole history, inline images included.
    pub max_body_bytes: usize,
}

impl Default for EgressSection {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8082".into(),
            upstream: "https://openrouter.ai/api/v1".into(),
            ca_file: None,
            trust_plain_user_headers: false,
            system_models: Vec::new(),
            max_body_bytes: 64 * 1024 * 1024,
        }
    }
}

/// The egress gate's runtime settings (the listener and the trust roots are
/// start-up keys, in [`super::Startup`]).
#[derive(Debug, Clone)]
pub struct Egress {
    pub upstream: EgressUpstream,
    /// `None` without `FORWARD_USER_INFO_HEADER_JWT_SECRET`: no call then
    /// carries a verifiable user, and only system models pass.
    pub jwt: Option<Arc<ForwardedUserVerifier>>,
    /// `FORWARD_USER_INFO_HEADER_JWT`.
    pub jwt_header: HeaderName,
    /// `FORWARD_USER_INFO_HEADER_USER_ID`, read only when plain headers are trusted.
    pub user_id_header: HeaderName,
    pub trust_plain_user_headers: bool,
    pub system_models: Arc<BTreeSet<String>>,
    pub max_body_bytes: NonZeroUsize,
}

/// The upstream split into what the client connects to and the path prefix
/// every call is appended to.
#[derive(Debug, Clone, PartialEq)]
pub struct EgressUpstream {
    /// `scheme://authority/`.
    pub origin: Uri,
    /// The path before the call's own, without a trailing `/` (`/api/v1`).
    pub base_path: String,
}

impl EgressUpstream {
    pub fn parse(value: &str) -> Result<Self, ConfigError> {
        let uri: Uri = value
            .parse()
            .map_err(|e: http::uri::InvalidUri| invalid("egress.upstream", value, e.to_string()))?;
        let scheme = match uri.scheme_str() {
            Some(s @ ("https" | "http")) => s.to_owned(),
            _ => {
                return Err(invalid(
                    "egress.upstream",
                    value,
                    "must be an https:// (or, on a private network, http://) URL",
                ))
            }
        };
        let Some(authority) = uri.authority().cloned() else {
            return Err(invalid("egress.upstream", value, "must name a host"));
        };
        if uri.query().is_some() {
            return Err(invalid("egress.upstream", value, "must not have a query"));
        }
        let origin = Uri::builder()
            .scheme(scheme.as_str())
            .authority(authority)
            .path_and_query("/")
            .build()
            .map_err(|e| invalid("egress.upstream", value, e.to_string()))?;
        Ok(EgressUpstream {
            origin,
            base_path: uri.path().trim_end_matches('/').to_owned(),
        })
    }

    pub fn is_https(&self) -> bool {
        self.origin.scheme_str() == Some("https")
    }
}

impl EgressSection {
    pub(super) fn listen(&self) -> Result<SocketAddr, ConfigError> {
        self.listen.parse().map_err(|e: std::net::AddrParseError| {
            invalid("egress.listen", &self.listen, e.to_string())
        })
    }

    pub(super) fn compile(&self, env: EnvLookup<'_>) -> Result<Egress, ConfigError> {
        let header = |key: &'static str, name: Option<String>, default: &str| {
            let name = name.filter(|n| !n.trim().is_empty());
            let text = name.as_deref().unwrap_or(default).trim().to_owned();
            HeaderName::from_bytes(text.as_bytes()).map_err(|e| invalid(key, &text, e.to_string()))
        };
        let system_models: BTreeSet<String> = self
            .system_models
            .iter()
            .map(|m| m.trim().to_owned())
            .filter(|m| !m.is_empty())
            .collect();
        Ok(Egress {
            upstream: EgressUpstream::parse(&self.upstream)?,
            jwt: env("FORWARD_USER_INFO_HEADER_JWT_SECRET")
                .and_then(|s| ForwardedUserVerifier::new(&s))
                .map(Arc::new),
            jwt_header: header(
                "FORWARD_USER_INFO_HEADER_JWT",
                env("FORWARD_USER_INFO_HEADER_JWT"),
                DEFAULT_JWT_HEADER,
            )?,
            user_id_header: header(
                "FORWARD_USER_INFO_HEADER_USER_ID",
                env("FORWARD_USER_INFO_HEADER_USER_ID"),
                DEFAULT_USER_ID_HEADER,
            )?,
            trust_plain_user_headers: self.trust_plain_user_headers,
            system_models: Arc::new(system_models),
            max_body_bytes: non_zero("egress.max_body_bytes", self.max_body_bytes)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_keeps_its_path_prefix() {
        let u = EgressUpstream::parse("https://openrouter.ai/api/v1/").unwrap();
        assert_eq!(u.origin.to_string(), "https://openrouter.ai/");
        assert_eq!(u.base_path, "/api/v1");
        assert!(u.is_https());
        let u = EgressUpstream::parse("http://127.0.0.1:9000").unwrap();
        assert_eq!(u.base_path, "");
        for bad in ["ftp://x", "openrouter.ai", "https://x/api?q=1"] {
            assert!(EgressUpstream::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn identity_settings_follow_open_webui_names() {
        let env = |k: &str| match k {
            "FORWARD_USER_INFO_HEADER_JWT_SECRET" => Some(" s ".to_owned()),
            "FORWARD_USER_INFO_HEADER_JWT" => Some("X-My-Jwt".to_owned()),
            _ => None,
        };
        let e = EgressSection::default().compile(&env).unwrap();
        assert!(e.jwt.is_some());
        assert_eq!(e.jwt_header, "x-my-jwt");
        assert_eq!(e.user_id_header, "x-openwebui-user-id");
        let e = EgressSection::default().compile(&|_| None).unwrap();
        assert!(e.jwt.is_none());
        assert_eq!(e.jwt_header, "x-openwebui-user-jwt");
    }
}
