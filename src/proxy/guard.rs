//! The guard's leaves, shared by every gate: who is asking ([`identify`]),
//! whether they skip the checks ([`bypasses`]), and whether every model a
//! request names is permitted ([`authorize`]). Each records its access
//! decision in the metrics once, from the refusal's own outcome.
//!
//! Every check reads the request the way Open WebUI will (see
//! `docs/open-webui.md` and the `gate` modules); where the two could
//! disagree the request is refused rather than guessed at.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::HeaderMap;

use crate::config::Config;
use crate::error::Refusal;
use crate::gate::credential::{extract_credential, CredentialKind};
use crate::metrics::{Gate, Metrics, Outcome};
use crate::store::{AccessStore, Decision, UserAccess};

/// Who is asking, as far as the gate is concerned.
pub struct Identity {
    pub user_id: String,
    pub access: Arc<UserAccess>,
    pub admin: bool,
}

impl Identity {
    /// A signed-in user who may use nothing (a pending account, for the
    /// responses Open WebUI also shows pending users).
    pub fn nobody(user_id: String) -> Identity {
        Identity {
            access: Arc::new(UserAccess::unknown(&user_id)),
            user_id,
            admin: false,
        }
    }

    /// The organization a decision is labelled with when none granted it.
    fn first_org(&self) -> Option<&str> {
        self.access.organizations.first().map(String::as_str)
    }
}

/// What the guard decided, for the access log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every named model is permitted.
    Allowed,
    /// The request names no model (and the route does not require one).
    NoModelNamed,
    /// An admin with `BYPASS_ADMIN_ACCESS_CONTROL`: not checked.
    Bypassed,
    /// An outbound call for no user, to an operator-listed system model.
    SystemModel,
    /// A model is not permitted; the request was refused.
    Denied { model: String, reason: String },
    /// A model is refused only by a shadow-mode organization's policy: the
    /// request went through, and this is what enforcing would have said.
    WouldDeny { model: String, reason: String },
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Allowed => f.write_str("allowed"),
            Verdict::NoModelNamed => f.write_str("no model named"),
            Verdict::Bypassed => f.write_str("bypassed (admin)"),
            Verdict::SystemModel => f.write_str("system model"),
            Verdict::Denied { model, reason } => write!(f, "denied {model}: {reason}"),
            Verdict::WouldDeny { model, reason } => {
                write!(f, "would deny {model}: {reason} (shadow mode)")
            }
        }
    }
}

/// The identify leaf: a credential from the same place Open WebUI takes it,
/// verified, and the user's access data. A failure counts as a decision.
pub async fn identify(
    config: &Config,
    store: &AccessStore,
    metrics: &Metrics,
    headers: &HeaderMap,
) -> Result<Identity, Refusal> {
    let started = Instant::now();
    let result = authenticate(config, store, headers).await;
    if let Err(refusal) = &result {
        record_refusal(metrics, Gate::Ingress, refusal, None, started.elapsed());
    }
    result
}

/// [`identify`] without counting a failure as an access decision: for
/// callers that are not a model call or list, such as the admin listener's
/// login (a probe of `/health/detailed` is no decision about a model).
pub async fn authenticate(
    config: &Config,
    store: &AccessStore,
    headers: &HeaderMap,
) -> Result<Identity, Refusal> {
    let credential = extract_credential(headers, &config.access.api_key_header)?
        .ok_or(Refusal::NotAuthenticated)?;
    let user_id = match credential.kind {
        CredentialKind::Jwt => {
            let Some(jwt) = &config.access.jwt else {
                tracing::error!("a session token arrived but no WEBUI_SECRET_KEY is configured");
                return Err(Refusal::NoSessionKey);
            };
            jwt.verify(&credential.token)
                .map_err(Refusal::Session)?
                .user_id
        }
        CredentialKind::ApiKey => {
            let owner = store
                .api_key_owner(&credential.token)
                .await
                .map_err(unavailable)?
                .ok_or(Refusal::UnknownApiKey)?;
            if owner.expires_at.is_some_and(|exp| exp <= unix_now()) {
                return Err(Refusal::ApiKeyExpired);
            }
            owner.user_id
        }
    };
    user_identity(store, user_id).await
}

/// The access data of a user whose id is already verified (a session, an
/// API key, or Open WebUI's signed header on an outbound call).
pub async fn user_identity(store: &AccessStore, user_id: String) -> Result<Identity, Refusal> {
    let access = store.user(&user_id).await.map_err(unavailable)?;
    if access.role.as_deref() == Some("pending") {
        // Open WebUI answers 401 to pending users on every model route.
        return Err(Refusal::AccountPending { user_id });
    }
    let admin = access.role.as_deref() == Some("admin");
    Ok(Identity {
        user_id,
        access,
        admin,
    })
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(i64::MAX)
}

/// Whether this identity skips the model checks; a bypass counts as a
/// decision.
pub fn bypasses(config: &Config, metrics: &Metrics, gate: Gate, who: &Identity) -> bool {
    let bypass = who.admin && config.access.bypass_admin_access_control;
    if bypass {
        metrics.record_decision(gate, Outcome::Bypassed, None, Duration::ZERO);
    }
    bypass
}

/// The authorize leaf: every model must be permitted. The refusal names the
/// model asked for, never what the user may use instead.
pub async fn authorize(
    store: &AccessStore,
    metrics: &Metrics,
    gate: Gate,
    who: &Identity,
    models: &[String],
) -> Result<Verdict, Refusal> {
    let started = Instant::now();
    let result = decide_all(store, who, models).await;
    match &result {
        Ok(checked) => {
            let (outcome, org) = match checked.verdict {
                Verdict::WouldDeny { .. } => (
                    Outcome::WouldDeny,
                    checked.granted_by.as_deref().or(who.first_org()),
                ),
                _ => (Outcome::Allowed, checked.granted_by.as_deref()),
            };
            metrics.record_decision(gate, outcome, org, started.elapsed());
        }
        Err(refusal) => record_refusal(metrics, gate, refusal, who.first_org(), started.elapsed()),
    }
    result.map(|checked| checked.verdict)
}

/// What `decide_all` found for a request that goes through.
struct Checked {
    verdict: Verdict,
    /// The organization that granted the first model (metrics label).
    granted_by: Option<String>,
}

async fn decide_all(
    store: &AccessStore,
    who: &Identity,
    models: &[String],
) -> Result<Checked, Refusal> {
    let graph = store.model_graph().await.map_err(unavailable)?;
    let mut granted_by = None;
    let mut would_deny = None;
    for model in models {
        match who.access.decide(&graph, model) {
            Decision::Allowed { organization, .. } => {
                granted_by.get_or_insert(organization);
            }
            Decision::WouldDeny(reason) => {
                tracing::info!(
                    user = %who.user_id,
                    model = %model,
                    reason = %reason,
                    "shadow mode: would deny; letting through"
                );
                would_deny.get_or_insert(Verdict::WouldDeny {
                    model: model.clone(),
                    reason: reason.to_string(),
                });
            }
            Decision::Denied(reason) => {
                return Err(Refusal::ModelNotAllowed {
                    model: model.clone(),
                    reason: reason.to_string(),
                })
            }
        }
    }
    let verdict = match would_deny {
        Some(verdict) => verdict,
        None if models.is_empty() => Verdict::NoModelNamed,
        None => Verdict::Allowed,
    };
    Ok(Checked {
        verdict,
        granted_by,
    })
}

/// The log's reading of a refused check: denials name what was asked for.
pub fn verdict_of(refusal: &Refusal) -> Option<Verdict> {
    match refusal {
        Refusal::ModelNotAllowed { model, reason } => Some(Verdict::Denied {
            model: model.clone(),
            reason: reason.clone(),
        }),
        Refusal::NoVerifiedUser { model } => Some(Verdict::Denied {
            model: model.clone(),
            reason: "no verified user and not a system model".into(),
        }),
        _ => None,
    }
}

/// Counts a refusal that is an access decision.
pub fn record_refusal(
    metrics: &Metrics,
    gate: Gate,
    refusal: &Refusal,
    org: Option<&str>,
    took: Duration,
) {
    if let Some(outcome) = refusal.outcome() {
        metrics.record_decision(gate, outcome, org, took);
    }
}

/// A store failure on the request path: fail closed, loudly.
pub fn unavailable(e: crate::store::StoreError) -> Refusal {
    tracing::warn!(error = %e, "access data unavailable; refusing (fail closed)");
    Refusal::AccessData(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_read_as_the_access_log_always_wrote_them() {
        assert_eq!(Verdict::Allowed.to_string(), "allowed");
        assert_eq!(Verdict::NoModelNamed.to_string(), "no model named");
        assert_eq!(Verdict::Bypassed.to_string(), "bypassed (admin)");
        let denied = Refusal::ModelNotAllowed {
            model: "m".into(),
            reason: crate::store::DenyReason::Cycle.to_string(),
        };
        assert_eq!(
            verdict_of(&denied).map(|v| v.to_string()).as_deref(),
            Some("denied m: preset chain loops")
        );
        assert_eq!(verdict_of(&Refusal::NotAuthenticated), None);
    }
}
