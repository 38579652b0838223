//! Environment overrides, applied to the parsed file before validation.
//! Names follow Open WebUI's where both read the same setting.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{invalid, ConfigError, EnvLookup, FileConfig};
use crate::gate::jwt::JwtVerifier;

/// Overwrites file keys with the environment variables that name them.
pub(super) fn apply(file: &mut FileConfig, env: EnvLookup<'_>) -> Result<(), ConfigError> {
    if let Some(v) = env("MODELGATE_LISTEN") {
        file.listen = v;
    }
    if let Some(v) = env("MODELGATE_UPSTREAM") {
        file.upstream = v;
    }
    if let Some(v) = env("MODELGATE_ADMIN_LISTEN") {
        file.admin_listen = v;
    }
    if let Some(v) = env("MODELGATE_WORKERS") {
        file.workers = parse_number("MODELGATE_WORKERS", &v)?;
    }
    if let Some(v) = env("MODELGATE_EGRESS_LISTEN") {
        file.egress.listen = v;
    }
    if let Some(v) = env("MODELGATE_EGRESS_UPSTREAM") {
        file.egress.upstream = v;
    }
    if let Some(v) = env("MODELGATE_DATABASE") {
        file.database = Some(PathBuf::from(v));
    }
    if let Some(v) = env("MODELGATE_LIST_BODY_TIMEOUT_SECS") {
        file.timeouts.list_body_secs = parse_number("MODELGATE_LIST_BODY_TIMEOUT_SECS", &v)?;
    }
    if let Some(v) = env("MODELGATE_MAX_BUFFERED_BODY_BYTES") {
        file.limits.max_buffered_body_bytes =
            parse_number("MODELGATE_MAX_BUFFERED_BODY_BYTES", &v)?;
    }
    if let Some(v) = env("MODELGATE_STORE_LOOKUP_TIMEOUT_MS") {
        file.store.lookup_timeout_ms = parse_number("MODELGATE_STORE_LOOKUP_TIMEOUT_MS", &v)?;
    }
    if let Some(v) = env("ENABLE_MODEL_FILTER") {
        file.access.enabled = parse_bool("ENABLE_MODEL_FILTER", &v)?;
    }
    if let Some(v) = env("BYPASS_MODEL_ACCESS_CONTROL") {
        file.access.bypass_model_access_control = parse_bool("BYPASS_MODEL_ACCESS_CONTROL", &v)?;
    }
    if let Some(v) = env("BYPASS_ADMIN_ACCESS_CONTROL") {
        file.access.bypass_admin_access_control = parse_bool("BYPASS_ADMIN_ACCESS_CONTROL", &v)?;
    }
    if let Some(v) = env("CUSTOM_API_KEY_HEADER").filter(|v| !v.is_empty()) {
        file.access.api_key_header = v;
    }
    if let Some(v) = env("OPENROUTER_EXTERNAL_USER").filter(|v| !v.is_empty()) {
        file.admin.organization_id = Some(v);
    }
    if let Some(v) = env("ORGANIZATION_NAME").filter(|v| !v.is_empty()) {
        file.admin.organization_name = Some(v);
    }
    if let Some(v) = env("MODELGATE_DEVELOPMENT_MODE") {
        file.admin.development_mode = parse_bool("MODELGATE_DEVELOPMENT_MODE", &v)?;
    }
    Ok(())
}

/// The session-key verifier, from `WEBUI_SECRET_KEY` or `_FILE` as Open
/// WebUI reads them; `None` when neither is set.
pub(super) fn session_key(env: EnvLookup<'_>) -> Result<Option<Arc<JwtVerifier>>, ConfigError> {
    Ok(JwtVerifier::from_lookup(env)
        .map_err(|e| invalid("WEBUI_SECRET_KEY_FILE", "", e.to_string()))?
        .map(Arc::new))
}

/// The admin bearer token: `MODELGATE_ADMIN_TOKEN` wins over the text of
/// `admin.token_file`, so a secret never has to be written into the file.
pub(super) fn admin_token(
    env: EnvLookup<'_>,
    token_file: Option<&Path>,
) -> Result<Option<Arc<str>>, ConfigError> {
    let token = match env("MODELGATE_ADMIN_TOKEN").filter(|v| !v.is_empty()) {
        Some(t) => Some(t),
        None => match token_file {
            Some(p) => Some(
                std::fs::read_to_string(p)
                    .map_err(|e| {
                        invalid("admin.token_file", p.display().to_string(), e.to_string())
                    })?
                    .trim()
                    .to_owned(),
            ),
            None => None,
        },
    };
    Ok(token.filter(|t| !t.is_empty()).map(Arc::from))
}

/// A count, size or duration given in the environment.
fn parse_number<T: std::str::FromStr>(key: &'static str, value: &str) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    value
        .trim()
        .parse()
        .map_err(|e: T::Err| invalid(key, value, e.to_string()))
}

/// Booleans as Open WebUI's environment spells them.
fn parse_bool(key: &'static str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(invalid(key, value, "expected true or false")),
    }
}
