//! Every refusal modelgate makes, and the one place that turns it into a
//! response (rpxy `http_result.rs`, linkerd `errors/respond.rs`).
//!
//! The body satisfies both readers of errors: Open WebUI's frontend reads
//! `detail`, OpenAI SDKs read `error`.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};

use crate::proxy::body::{full, Body};

/// A refusal or failure answered by modelgate itself.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("upstream unavailable: {0}")]
    UpstreamUnavailable(String),
    #[error("upstream did not answer in time")]
    UpstreamTimeout,
    #[error("upstream sent a response that cannot be checked: {0}")]
    UpstreamBadResponse(String),
    #[error("{message}")]
    Refused {
        status: StatusCode,
        code: &'static str,
        kind: &'static str,
        message: String,
    },
}

impl ProxyError {
    pub fn refused(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        let kind = match status.as_u16() {
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            413 => "request_too_large",
            503 => "service_unavailable",
            500..=599 => "upstream_error",
            _ => "invalid_request_error",
        };
        ProxyError::Refused {
            status,
            code,
            kind,
            message: message.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::UpstreamUnavailable(_) | ProxyError::UpstreamBadResponse(_) => {
                StatusCode::BAD_GATEWAY
            }
            ProxyError::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::Refused { status, .. } => *status,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ProxyError::UpstreamUnavailable(_) => "upstream_unavailable",
            ProxyError::UpstreamTimeout => "upstream_timeout",
            ProxyError::UpstreamBadResponse(_) => "upstream_bad_response",
            ProxyError::Refused { code, .. } => code,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            ProxyError::Refused { kind, .. } => kind,
            _ => "upstream_error",
        }
    }

    /// The message shown to the client. Upstream failures are summarised: the
    /// detailed cause goes to the log, not to the browser.
    fn public_message(&self) -> String {
        match self {
            ProxyError::UpstreamUnavailable(_) => "The model service is unavailable.".into(),
            ProxyError::UpstreamTimeout => "The model service did not answer in time.".into(),
            ProxyError::UpstreamBadResponse(_) => {
                "The model service sent a response that could not be checked.".into()
            }
            ProxyError::Refused { message, .. } => message.clone(),
        }
    }

    pub fn into_response(self) -> Response<Body> {
        json_error(
            self.status(),
            self.code(),
            self.kind(),
            &self.public_message(),
        )
    }
}

// The gate's errors know their status and code; this is where they become
// refusals, so every layer's mapping to a response lives in this file.
impl From<crate::gate::body::BodyError> for ProxyError {
    fn from(e: crate::gate::body::BodyError) -> Self {
        ProxyError::refused(e.status(), e.code(), e.to_string())
    }
}

impl From<crate::gate::credential::CredentialError> for ProxyError {
    fn from(e: crate::gate::credential::CredentialError) -> Self {
        ProxyError::refused(e.status(), e.code(), e.to_string())
    }
}

impl From<crate::gate::filter::FilterError> for ProxyError {
    /// A model list that cannot be filtered is never passed on.
    fn from(e: crate::gate::filter::FilterError) -> Self {
        ProxyError::UpstreamBadResponse(e.to_string())
    }
}

/// `{"detail": m, "error": {"message": m, "type": t, "code": c}}`.
pub fn json_error(status: StatusCode, code: &str, kind: &str, message: &str) -> Response<Body> {
    let body = serde_json::json!({
        "detail": message,
        "error": { "message": message, "type": kind, "code": code },
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

    #[tokio::test]
    async fn refusal_has_both_detail_and_error() {
        let resp =
            ProxyError::refused(StatusCode::FORBIDDEN, "model_not_allowed", "no").into_response();
        assert_eq!(resp.status(), 403);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["detail"], "no");
        assert_eq!(v["error"]["message"], "no");
        assert_eq!(v["error"]["code"], "model_not_allowed");
        assert_eq!(v["error"]["type"], "permission_error");
    }

    #[tokio::test]
    async fn upstream_errors_hide_their_cause() {
        let resp =
            ProxyError::UpstreamUnavailable("connect 10.0.0.1: refused".into()).into_response();
        assert_eq!(resp.status(), 502);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert!(!String::from_utf8_lossy(&body).contains("10.0.0.1"));
    }
}
