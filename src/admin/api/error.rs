//! The management API's errors and the one table that gives each its
//! status, `error.code` and message, rendered in the shape every modelgate
//! refusal has (`crate::error::json_error`):
//! `{"detail": m, "error": {"message": m, "type": t, "code": c}}`.
//!
//! Operator failures keep the stable codes the CLI's `--json` errors carry
//! ([`OpsError::code`]); only the status is decided here.

use std::borrow::Cow;

use http::{header, HeaderValue, Response, StatusCode};

use super::routes::Verb;
use crate::error::{json_error, Answer, Refusal};
use crate::ops::OpsError;
use crate::proxy::body::Body;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No credential, a bad one, or not an administrator (401/403).
    #[error(transparent)]
    Auth(Refusal),
    /// The hint: the likeliest cause is a model id whose `/` was sent raw.
    #[error(
        "no such API endpoint: {method} {path} (an id is one path segment: send `/` in it as %2F)"
    )]
    NoRoute { method: String, path: String },
    #[error("{method} is not allowed on {path}")]
    WrongMethod {
        method: String,
        path: String,
        allow: Vec<Verb>,
    },
    #[error("the request body must be application/json")]
    UnsupportedMediaType,
    #[error("the request body is larger than {cap} bytes")]
    BodyTooLarge { cap: usize },
    #[error("the request body did not arrive in time")]
    BodyTimeout,
    #[error("the request body could not be read: {0}")]
    BodyUnreadable(String),
    /// Not JSON at all (syntax, truncated, empty).
    #[error("the request body is not valid JSON: {0}")]
    InvalidJson(String),
    /// JSON of the wrong shape: a missing, unknown or mistyped field.
    #[error("invalid request body: {0}")]
    InvalidBody(String),
    /// A path or query parameter that is missing, unknown, repeated, not
    /// UTF-8 once decoded, or out of range.
    #[error("parameter {name}: {problem}")]
    InvalidParameter { name: String, problem: String },
    #[error(transparent)]
    Ops(#[from] OpsError),
    /// A blocking task that panicked or was cancelled.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn parameter(name: &str, problem: impl Into<String>) -> ApiError {
        ApiError::InvalidParameter {
            name: name.to_string(),
            problem: problem.into(),
        }
    }

    /// The table.
    pub fn answer(&self) -> Answer {
        use ApiError as E;
        let (status, code): (u16, &'static str) = match self {
            E::Auth(refusal) => return refusal.answer(),
            E::NoRoute { .. } => (404, "not_found"),
            E::WrongMethod { .. } => (405, "method_not_allowed"),
            E::UnsupportedMediaType => (415, "unsupported_media_type"),
            E::BodyTooLarge { .. } => (413, "body_too_large"),
            E::BodyTimeout => (408, "body_timeout"),
            E::BodyUnreadable(_) => (400, "body_unreadable"),
            E::InvalidJson(_) => (400, "invalid_json"),
            E::InvalidBody(_) => (400, "invalid_body"),
            E::InvalidParameter { .. } => (400, "invalid_parameter"),
            E::Ops(e) => (ops_status(e), e.code()),
            E::Internal(_) => (500, "internal_error"),
        };
        Answer {
            // Every literal above is a valid status code.
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            code,
            message: Cow::Owned(chain(self)),
        }
    }

    pub fn to_response(&self) -> Response<Body> {
        let a = self.answer();
        let mut resp = json_error(a.status, a.code, &a.message);
        if let ApiError::WrongMethod { allow, .. } = self {
            let allow: Vec<&str> = allow.iter().map(|v| v.as_str()).collect();
            if let Ok(v) = HeaderValue::from_str(&allow.join(", ")) {
                resp.headers_mut().insert(header::ALLOW, v);
            }
        }
        resp
    }
}

/// Operator failures by variant. Exhaustive on purpose: a new `OpsError`
/// or `StoreError` variant does not compile until it has a status here.
fn ops_status(e: &OpsError) -> u16 {
    use OpsError as E;
    match e {
        E::UnknownOrganization(_)
        | E::UnknownUser(_)
        | E::NotAMember { .. }
        | E::ModelNotLinked { .. }
        | E::GroupNotBound { .. } => 404,
        E::InvalidRole(_) | E::Empty(_) => 400,
        // A typo, most likely: the message names close ids; `force` accepts it.
        E::UnknownModel { .. } => 422,
        // migrate is not an API operation; a conflict with the data if it were.
        E::NoModelsToLink { .. } => 409,
        // The server's own database: nothing the caller can fix.
        E::MissingDatabase { .. } | E::Open { .. } | E::SchemaMissing(_) => 503,
        E::Io { .. } | E::Output(_) | E::RolledBack { .. } => 500,
        E::NotOnPostgres { .. } => 501,
        E::Store(s) => store_status(s),
    }
}

fn store_status(e: &StoreError) -> u16 {
    use StoreError as S;
    match e {
        S::Missing { .. } | S::Busy(_) | S::Unavailable(_) | S::Schema(_) => 503,
        S::UnknownOrganization(_) | S::UnknownUser(_) | S::UnknownEmail(_) | S::UnknownGroup(_) => {
            404
        }
        S::InvalidRole(_) | S::EmptyId(_) | S::BadPattern { .. } => 400,
        // The id exists with another name; the caller renames with PATCH.
        S::OrganizationExists { .. }
        | S::AmbiguousGroup { .. }
        | S::AmbiguousEmail { .. }
        | S::NoModels(_) => 409,
        S::Sqlite(_) | S::Postgres(_) | S::Backup(_) => 500,
    }
}

/// The message with its causes, as the CLI prints them (`{e:#}`): the
/// callers are administrators, and the operator wording names the fix.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        // `transparent` variants return their inner error's source, not
        // the inner error itself; never print the same text twice.
        if !text.ends_with(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_failures_keep_their_cli_codes() {
        for (e, status, code) in [
            (
                OpsError::UnknownOrganization("x".into()),
                404,
                "unknown_organization",
            ),
            (OpsError::UnknownUser("u".into()), 404, "unknown_user"),
            (
                OpsError::NotAMember {
                    org: "o".into(),
                    user: "u".into(),
                },
                404,
                "not_a_member",
            ),
            (OpsError::InvalidRole("boss".into()), 400, "invalid_role"),
            (OpsError::Empty("user id"), 400, "empty_argument"),
            (
                OpsError::Store(StoreError::Busy("locked".into())),
                503,
                "database_busy",
            ),
            (
                OpsError::Store(StoreError::Sqlite("constraint".into())),
                500,
                "database_error",
            ),
        ] {
            let a = ApiError::Ops(e).answer();
            assert_eq!((a.status.as_u16(), a.code), (status, code));
        }
    }

    #[test]
    fn a_wrong_method_names_the_allowed_ones() {
        let resp = ApiError::WrongMethod {
            method: "PUT".into(),
            path: "/api/v1/audit".into(),
            allow: vec![Verb::Get, Verb::Post],
        }
        .to_response();
        assert_eq!(resp.status(), 405);
        assert_eq!(resp.headers()[header::ALLOW], "GET, POST");
    }

    #[test]
    fn causes_are_shown_once() {
        let e = ApiError::Ops(OpsError::Io {
            path: "/x".into(),
            source: std::io::Error::other("disk full"),
        });
        assert_eq!(e.answer().message, "cannot create /x: disk full");
        let e = ApiError::Ops(OpsError::UnknownUser("u".into()));
        assert_eq!(
            e.answer().message,
            "user 'u' does not exist in Open WebUI's user table"
        );
    }
}
