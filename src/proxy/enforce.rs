//! The enforcement phases: identify the user, authorize the model(s) a
//! request names, and filter model-list responses. Each is a plain function
//! over the per-request context that either continues or answers.
//!
//! Every check reads the request the way Open WebUI will (see
//! `../shared/OPENWEBUI.md` and the `gate` modules); where the two could
//! disagree the request is refused rather than guessed at.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Response, StatusCode};

use crate::config::Config;
use crate::error::ProxyError;
use crate::gate::body::{check_content_type, model_refs_from_bytes, top_level_model_from_bytes};
use crate::gate::credential::{extract_credential, CredentialKind};
use crate::gate::filter::{decode_body, filter_list, Filtered};
use crate::gate::routes::CallSpec;
use crate::gate::shape::ListShape;
use crate::metrics::{Decision as Outcome, Metrics};
use crate::proxy::body::{collect_limited, full, Body, CollectError};
use crate::proxy::list_cache::{CachedList, ListCache, ListKey};
use crate::proxy::Ctx;
use crate::store::{AccessStore, Decision, DenyReason, StoreError, UserAccess};

/// Who is asking, as far as the gate is concerned.
pub struct Identity {
    pub user_id: String,
    pub access: Arc<UserAccess>,
    pub admin: bool,
}

fn unavailable(e: &StoreError) -> ProxyError {
    tracing::warn!(error = %e, "access data unavailable; refusing (fail closed)");
    ProxyError::refused(
        StatusCode::SERVICE_UNAVAILABLE,
        "access_data_unavailable",
        "Model access cannot be verified right now. Please try again shortly.",
    )
}

fn unauthenticated(message: &str) -> ProxyError {
    ProxyError::refused(StatusCode::UNAUTHORIZED, "not_authenticated", message)
}

/// The identify phase: a credential from the same place Open WebUI takes it,
/// verified, and the user's access data.
pub async fn identify(
    config: &Config,
    store: &AccessStore,
    metrics: &Metrics,
    headers: &HeaderMap,
) -> Result<Identity, ProxyError> {
    let started = Instant::now();
    let result = identify_inner(config, store, headers).await;
    if let Err(e) = &result {
        let outcome = if e.status() == StatusCode::SERVICE_UNAVAILABLE {
            Outcome::Error
        } else {
            Outcome::Unauthenticated
        };
        metrics.record_decision(outcome, None, started.elapsed());
    }
    result
}

async fn identify_inner(
    config: &Config,
    store: &AccessStore,
    headers: &HeaderMap,
) -> Result<Identity, ProxyError> {
    let credential = extract_credential(headers, &config.access.api_key_header)?
        .ok_or_else(|| unauthenticated("Not authenticated."))?;
    let user_id = match credential.kind {
        CredentialKind::Jwt => {
            let Some(jwt) = &config.access.jwt else {
                tracing::error!("a session token arrived but no WEBUI_SECRET_KEY is configured");
                return Err(ProxyError::refused(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "gate_not_configured",
                    "Model access cannot be verified: the gateway has no session key.",
                ));
            };
            jwt.verify(&credential.token)
                .map_err(|e| {
                    ProxyError::refused(
                        StatusCode::UNAUTHORIZED,
                        e.code(),
                        "Invalid or expired session.",
                    )
                })?
                .user_id
        }
        CredentialKind::ApiKey => {
            let owner = store
                .api_key_owner(&credential.token)
                .await
                .map_err(|e| unavailable(&e))?
                .ok_or_else(|| unauthenticated("Invalid API key."))?;
            if let Some(exp) = owner.expires_at {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs() as i64)
                    .unwrap_or(i64::MAX);
                if exp <= now {
                    return Err(unauthenticated("API key expired."));
                }
            }
            owner.user_id
        }
    };
    let access = store.user(&user_id).await.map_err(|e| unavailable(&e))?;
    if access.role.as_deref() == Some("pending") {
        // Open WebUI answers 401 to pending users on every model route.
        return Err(ProxyError::refused(
            StatusCode::UNAUTHORIZED,
            "account_pending",
            "Your account is awaiting activation.",
        ));
    }
    let admin = access.role.as_deref() == Some("admin");
    Ok(Identity {
        user_id,
        access,
        admin,
    })
}

/// Whether this identity skips the model checks.
pub fn bypasses(config: &Config, who: &Identity) -> bool {
    who.admin && config.access.bypass_admin_access_control
}

/// Reads a guarded request body: JSON only, uncompressed, within the cap
/// (refused before reading when `Content-Length` already says too much).
pub async fn read_json_body(
    cap: usize,
    headers: &HeaderMap,
    body: Body,
) -> Result<Bytes, ProxyError> {
    check_content_type(headers)?;
    let too_large = || {
        ProxyError::refused(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("Request body is larger than {cap} bytes."),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > cap as u64) {
        return Err(too_large());
    }
    match collect_limited(body, cap).await {
        Ok(bytes) => Ok(bytes),
        Err(CollectError::TooLarge) => Err(too_large()),
        Err(CollectError::Body(e)) => Err(ProxyError::refused(
            StatusCode::BAD_REQUEST,
            "body_unreadable",
            format!("Request body could not be read: {e}"),
        )),
    }
}

/// Model ids the request makes the upstream call, arena candidates included.
pub fn requested_models(
    config: &Config,
    bytes: &[u8],
    spec: &CallSpec,
) -> Result<Vec<String>, ProxyError> {
    let mut models = model_refs_from_bytes(bytes, spec)?;
    expand_arena(config, &mut models);
    Ok(models)
}

/// The defence-in-depth read: the top-level `model` of a JSON body on a
/// route that is not in the table.
pub fn unlisted_model(config: &Config, bytes: &[u8]) -> Result<Vec<String>, ProxyError> {
    let mut models: Vec<String> = top_level_model_from_bytes(bytes)?.into_iter().collect();
    expand_arena(config, &mut models);
    Ok(models)
}

/// An arena model calls one of its candidates at random: each must be
/// permitted, besides the arena id itself.
fn expand_arena(config: &Config, models: &mut Vec<String>) {
    let arena = &config.access.arena_models;
    let extra: Vec<String> = models
        .iter()
        .filter_map(|m| arena.get(m))
        .flatten()
        .filter(|c| !models.contains(c))
        .cloned()
        .collect();
    models.extend(extra);
}

/// The authorize phase: every model must be permitted. The refusal names the
/// model asked for, never what the user may use instead.
pub async fn authorize(
    store: &AccessStore,
    metrics: &Metrics,
    ctx: &mut Ctx,
    who: &Identity,
    models: &[String],
) -> Result<(), ProxyError> {
    let started = Instant::now();
    let graph = match store.model_graph().await {
        Ok(g) => g,
        Err(e) => {
            metrics.record_decision(Outcome::Error, first_org(who), started.elapsed());
            return Err(unavailable(&e));
        }
    };
    let mut granted_by = None;
    for model in models {
        match who.access.decide(&graph, model) {
            Decision::Allowed { organization, .. } => {
                granted_by.get_or_insert(organization);
            }
            Decision::Denied(reason) => {
                metrics.record_decision(Outcome::Denied, first_org(who), started.elapsed());
                ctx.decision = Some(format!("denied {model}: {}", deny_text(&reason)));
                return Err(ProxyError::refused(
                    StatusCode::FORBIDDEN,
                    "model_not_allowed",
                    format!("Model '{model}' is not available for your organization."),
                ));
            }
        }
    }
    metrics.record_decision(Outcome::Allowed, granted_by.as_deref(), started.elapsed());
    ctx.decision = Some(if models.is_empty() {
        "no model named".into()
    } else {
        "allowed".into()
    });
    Ok(())
}

fn first_org(who: &Identity) -> Option<&str> {
    who.access.organizations.first().map(String::as_str)
}

fn deny_text(reason: &DenyReason) -> String {
    match reason {
        DenyReason::NoOrganization => "user is in no organization".into(),
        DenyReason::NotPermitted { root } => format!("root model {root} not permitted"),
        DenyReason::Cycle => "preset chain loops".into(),
        DenyReason::TooDeep => "preset chain too deep".into(),
    }
}

/// The rewrite phase for model lists: decode, filter (or reuse the same
/// list filtered for the same organizations), re-frame. A 2xx body that
/// cannot be filtered is never passed on (502). `generation` is the access
/// data's generation read before the user was identified.
pub struct ListFilter<'a> {
    pub store: &'a AccessStore,
    pub metrics: &'a Metrics,
    pub cache: &'a ListCache,
    pub generation: u64,
}

pub async fn filter_response(
    config: &Config,
    lf: ListFilter<'_>,
    who: &Identity,
    shape: ListShape,
    resp: Response<Body>,
) -> Result<Response<Body>, ProxyError> {
    let ListFilter {
        store,
        metrics,
        cache,
        generation,
    } = lf;
    let (mut parts, body) = resp.into_parts();
    let cap = config.access.max_list_bytes.get();
    let bytes = match collect_limited(body, cap).await {
        Ok(b) => b,
        Err(CollectError::TooLarge) => {
            return Err(ProxyError::UpstreamBadResponse(format!(
                "model list larger than {cap} bytes"
            )))
        }
        Err(CollectError::Body(e)) => {
            return Err(ProxyError::UpstreamBadResponse(format!(
                "model list unreadable: {e}"
            )))
        }
    };
    let encodings: Vec<&HeaderValue> = parts
        .headers
        .get_all(header::CONTENT_ENCODING)
        .iter()
        .collect();
    if encodings.len() > 1 {
        return Err(ProxyError::UpstreamBadResponse(
            "several Content-Encoding headers".into(),
        ));
    }
    let decoded = decode_body(encodings.first().copied(), &bytes, cap)?;
    let key = ListKey::new(&decoded, shape, generation, &who.access.organizations);
    let filtered = match cache.get(&key).await {
        Some(hit) => hit,
        None => {
            let graph = store.model_graph().await.map_err(|e| unavailable(&e))?;
            let mut permitted = |id: &str| who.access.decide(&graph, id).is_allowed();
            let computed = match filter_list(&decoded, shape, &mut permitted)? {
                Filtered::Forbidden => CachedList {
                    body: None,
                    removed: 1,
                },
                Filtered::List { body, removed, .. } => CachedList {
                    body: Some(Bytes::from(body)),
                    removed,
                },
            };
            // Only an answer computed entirely at `generation` may be
            // shared under it.
            if store.generation() == generation {
                cache.insert(key, computed.clone()).await;
            }
            computed
        }
    };
    metrics.record_list_rewrite(shape, filtered.removed as u64);
    let Some(body) = filtered.body else {
        return Err(ProxyError::refused(
            StatusCode::NOT_FOUND,
            "model_not_found",
            "Model not found.",
        ));
    };
    let h = &mut parts.headers;
    h.remove(header::CONTENT_ENCODING);
    h.remove(header::ETAG);
    h.remove(header::LAST_MODIFIED);
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    // The list depends on who asked: no shared cache may keep it.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private"));
    Ok(Response::from_parts(parts, full(body)))
}
