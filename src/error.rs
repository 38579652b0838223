//! Every refusal modelgate makes, and the one table that turns it into a
//! response (rpxy `http_result.rs`, linkerd `errors/respond.rs`).
//!
//! The phases return a [`Refusal`] that carries its data (the model asked
//! for, the JWT or body error, the store failure); [`Refusal::answer`] is the
//! only place that knows which HTTP status, `error.code` and message each one
//! gets, and [`Refusal::outcome`] the only place that knows how it counts as
//! an access decision. The body satisfies both readers of errors: Open
//! WebUI's frontend reads `detail`, OpenAI SDKs read `error`.

use std::borrow::Cow;

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};

use crate::gate::body::BodyError;
use crate::gate::credential::CredentialError;
use crate::gate::filter::FilterError;
use crate::gate::jwt::JwtError;
use crate::gate::routes::RefuseReason;
use crate::metrics::Outcome;
use crate::proxy::body::{full, Body};
use crate::store::StoreError;

/// Why modelgate answered a request itself instead of forwarding it.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    // --- who is asking -------------------------------------------------
    /// No credential at all on a guarded route.
    #[error("not authenticated")]
    NotAuthenticated,
    /// Credentials Open WebUI could read more than one way, or malformed.
    #[error(transparent)]
    Credential(#[from] CredentialError),
    /// A session token arrived but no `WEBUI_SECRET_KEY` is configured.
    #[error("a session token arrived but no session key is configured")]
    NoSessionKey,
    /// The session token failed verification.
    #[error("session token refused: {0}")]
    Session(JwtError),
    /// An `sk-` key that is not in Open WebUI's `api_key` table.
    #[error("unknown API key")]
    UnknownApiKey,
    /// An API key past its `expires_at`.
    #[error("API key expired")]
    ApiKeyExpired,
    /// The user's role is `pending`: Open WebUI refuses them everywhere
    /// a model is involved.
    #[error("account {user_id} pending")]
    AccountPending { user_id: String },
    /// An admin endpoint asked by someone who is not an administrator.
    #[error("administrator access required")]
    AdminRequired,

    // --- what is asked ---------------------------------------------------
    /// A route whose model cannot be checked.
    #[error("route refused: {}", .0.code())]
    Route(RefuseReason),
    /// A guarded body that is not the JSON the gate can read unambiguously.
    #[error(transparent)]
    Body(#[from] BodyError),
    /// A guarded body larger than its cap.
    #[error("request body is larger than {cap} bytes")]
    BodyTooLarge { cap: usize },
    /// The client's body stream failed while being read.
    #[error("request body could not be read: {0}")]
    BodyUnreadable(String),
    /// Buffered request bodies already hold `limits.max_buffered_body_bytes`:
    /// refused at once rather than queued (a queue would hold the client's
    /// connection and its body in the kernel's buffers instead).
    #[error("buffered request bodies at their memory budget")]
    BodyBudgetExhausted,
    /// A request target that cannot be pointed at the upstream.
    #[error("invalid request target")]
    BadTarget,

    // --- the decision --------------------------------------------------
    /// A model the user's organizations do not permit.
    #[error("model {model:?} not allowed: {reason}")]
    ModelNotAllowed { model: String, reason: String },
    /// An outbound call that carries no verifiable user, to a model that is
    /// not an operator-listed system model.
    #[error("no verified user for a call to {model:?}")]
    NoVerifiedUser { model: String },
    /// A single-model lookup of a model the user may not see: answered as
    /// Open WebUI answers an unknown model, so its existence does not leak.
    #[error("model hidden from this user")]
    ModelHidden,
    /// The access data cannot be read: fail closed.
    #[error("access data unavailable: {0}")]
    AccessData(#[from] StoreError),

    // --- the upstream ----------------------------------------------------
    #[error("upstream unavailable: {0}")]
    UpstreamUnavailable(String),
    #[error("upstream did not answer in time")]
    UpstreamTimeout,
    /// A 2xx model list that cannot be filtered is never passed on.
    #[error("upstream model list cannot be filtered: {0}")]
    UnfilterableList(#[from] FilterError),
    /// The upstream's model-list body broke off while being read.
    #[error("upstream model list unreadable: {0}")]
    ListUnreadable(String),

    // --- the admin listener ----------------------------------------------
    #[error("no such admin endpoint")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
}

/// What the client is told: status, stable code, message.
pub struct Answer {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: Cow<'static, str>,
}

impl Refusal {
    /// The table: each refusal's status, `error.code` and public message.
    /// Upstream failures are summarised; their cause goes to the log only.
    pub fn answer(&self) -> Answer {
        use Refusal as R;
        let (status, code, message): (u16, &'static str, Cow<'static, str>) = match self {
            R::NotAuthenticated => (401, "not_authenticated", "Not authenticated.".into()),
            R::Credential(e) => {
                let (status, code) = match e {
                    CredentialError::Ambiguous(_) => (400, "ambiguous_credentials"),
                    CredentialError::InvalidHeader(_) => (400, "invalid_credential_header"),
                    CredentialError::Empty(_) => (401, "empty_credential"),
                };
                (status, code, e.to_string().into())
            }
            R::NoSessionKey => (
                503,
                "gate_not_configured",
                "Model access cannot be verified: the gateway has no session key.".into(),
            ),
            R::Session(e) => (
                401,
                match e {
                    JwtError::Invalid => "invalid_token",
                    JwtError::Expired => "token_expired",
                    JwtError::Claim(_) => "invalid_token_claim",
                    JwtError::MissingId => "token_without_user",
                    JwtError::KeyFile { .. } | JwtError::EmptyKeyFile(_) => {
                        "secret_key_unavailable"
                    }
                },
                "Invalid or expired session.".into(),
            ),
            R::UnknownApiKey => (401, "not_authenticated", "Invalid API key.".into()),
            R::ApiKeyExpired => (401, "not_authenticated", "API key expired.".into()),
            R::AccountPending { .. } => (
                401,
                "account_pending",
                "Your account is awaiting activation.".into(),
            ),
            R::AdminRequired => (
                403,
                "admin_required",
                "Administrator access required.".into(),
            ),
            R::Route(reason) => (
                403,
                reason.code(),
                "This route is disabled by the model-access gateway.".into(),
            ),
            R::Body(e) => {
                let (status, code) = match e {
                    BodyError::UnsupportedMediaType => (415, "unsupported_media_type"),
                    BodyError::Compressed => (415, "compressed_body"),
                    BodyError::InvalidJson => (400, "invalid_json"),
                    BodyError::DuplicateKey(_) => (400, "duplicate_key"),
                    BodyError::NotAnObject => (400, "body_not_object"),
                    BodyError::TooManyMembers => (400, "too_many_members"),
                    BodyError::TooManyModels => (400, "too_many_models"),
                    BodyError::BadModelField(_) => (400, "bad_model_field"),
                    BodyError::MissingModel => (400, "missing_model"),
                };
                (status, code, e.to_string().into())
            }
            R::BodyTooLarge { cap } => (
                413,
                "body_too_large",
                format!("Request body is larger than {cap} bytes.").into(),
            ),
            R::BodyUnreadable(e) => (
                400,
                "body_unreadable",
                format!("Request body could not be read: {e}").into(),
            ),
            R::BodyBudgetExhausted => (
                503,
                "body_budget_exhausted",
                "The gateway is checking too many large requests right now. Please try again shortly."
                    .into(),
            ),
            R::BadTarget => (400, "bad_request", "Invalid request target.".into()),
            R::ModelNotAllowed { model, .. } => (
                403,
                "model_not_allowed",
                format!("Model '{model}' is not available for your organization.").into(),
            ),
            R::NoVerifiedUser { model } => (
                403,
                "no_verified_user",
                format!("Model '{model}' may only be called for a signed-in user.").into(),
            ),
            R::ModelHidden => (404, "model_not_found", "Model not found.".into()),
            R::AccessData(_) => (
                503,
                "access_data_unavailable",
                "Model access cannot be verified right now. Please try again shortly.".into(),
            ),
            R::UpstreamUnavailable(_) => (
                502,
                "upstream_unavailable",
                "The model service is unavailable.".into(),
            ),
            R::UpstreamTimeout => (
                504,
                "upstream_timeout",
                "The model service did not answer in time.".into(),
            ),
            R::UnfilterableList(_) | R::ListUnreadable(_) => (
                502,
                "upstream_bad_response",
                "The model service sent a response that could not be checked.".into(),
            ),
            R::NotFound => (404, "not_found", "No such admin endpoint.".into()),
            R::MethodNotAllowed => (405, "method_not_allowed", "Only GET is served here.".into()),
        };
        Answer {
            // Every literal above is a valid status code.
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            code,
            message,
        }
    }

    /// How this refusal counts as an access decision, if it is one.
    pub fn outcome(&self) -> Option<Outcome> {
        use Refusal as R;
        match self {
            R::NotAuthenticated
            | R::Credential(_)
            | R::Session(_)
            | R::UnknownApiKey
            | R::ApiKeyExpired
            | R::AccountPending { .. }
            | R::NoVerifiedUser { .. } => Some(Outcome::Unauthenticated),
            R::NoSessionKey | R::AccessData(_) => Some(Outcome::Error),
            R::ModelNotAllowed { .. } => Some(Outcome::Denied),
            _ => None,
        }
    }

    pub fn status(&self) -> StatusCode {
        self.answer().status
    }

    /// The JSON error response.
    pub fn to_response(&self) -> Response<Body> {
        let a = self.answer();
        json_error(a.status, a.code, &a.message)
    }
}

/// The OpenAI error `type` for a status.
fn error_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        // No refusal is a 500; the management API's own failures are.
        500 => "server_error",
        503 => "service_unavailable",
        501..=599 => "upstream_error",
        _ => "invalid_request_error",
    }
}

/// `{"detail": m, "error": {"message": m, "type": t, "code": c}}`; the
/// management API's errors (`admin::api::error`) render through it too.
pub(crate) fn json_error(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    let body = serde_json::json!({
        "detail": message,
        "error": { "message": message, "type": error_type(status), "code": code },
    });
    let bytes = Bytes::from(body.to_string());
    let mut resp = Response::new(full(bytes));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body_of(resp: Response<Body>) -> serde_json::Value {
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&body).unwrap()
    }

    #[tokio::test]
    async fn refusal_has_both_detail_and_error() {
        let resp = Refusal::ModelNotAllowed {
            model: "m".into(),
            reason: "r".into(),
        }
        .to_response();
        assert_eq!(resp.status(), 403);
        let v = body_of(resp).await;
        let msg = "Model 'm' is not available for your organization.";
        assert_eq!(v["detail"], msg);
        assert_eq!(v["error"]["message"], msg);
        assert_eq!(v["error"]["code"], "model_not_allowed");
        assert_eq!(v["error"]["type"], "permission_error");
    }

    #[tokio::test]
    async fn upstream_errors_hide_their_cause() {
        let resp = Refusal::UpstreamUnavailable("connect 10.0.0.1: refused".into()).to_response();
        assert_eq!(resp.status(), 502);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert!(!String::from_utf8_lossy(&body).contains("10.0.0.1"));
    }

    #[tokio::test]
    async fn store_failures_fail_closed_without_their_text() {
        let r = Refusal::AccessData(StoreError::Schema("no such table: secret".into()));
        assert_eq!(r.outcome(), Some(Outcome::Error));
        let v = body_of(r.to_response()).await;
        assert_eq!(v["error"]["code"], "access_data_unavailable");
        assert_eq!(v["error"]["type"], "service_unavailable");
        assert!(!v.to_string().contains("secret"));
    }

    #[test]
    fn statuses_and_outcomes_of_the_identity_refusals() {
        use crate::gate::credential::CredentialSource;
        for (r, status) in [
            (Refusal::NotAuthenticated, 401),
            (Refusal::Credential(CredentialError::Ambiguous("x")), 400),
            (
                Refusal::Credential(CredentialError::Empty(CredentialSource::Cookie)),
                401,
            ),
            (Refusal::Session(JwtError::Expired), 401),
            (
                Refusal::AccountPending {
                    user_id: "u".into(),
                },
                401,
            ),
        ] {
            assert_eq!(r.status(), status, "{r}");
            assert_eq!(r.outcome(), Some(Outcome::Unauthenticated), "{r}");
        }
        assert_eq!(Refusal::NoSessionKey.status(), 503);
        assert_eq!(Refusal::NoSessionKey.outcome(), Some(Outcome::Error));
        assert_eq!(Refusal::Body(BodyError::Compressed).status(), 415);
        assert_eq!(Refusal::Body(BodyError::Compressed).outcome(), None);
        assert_eq!(Refusal::BodyTooLarge { cap: 1 }.status(), 413);
        assert_eq!(Refusal::UpstreamTimeout.status(), 504);
        assert_eq!(Refusal::ModelHidden.status(), 404);
    }
}
