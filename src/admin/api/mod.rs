//! The management API under `/api/v1/` on the admin listener:
//! organizations, memberships, model links, access explanations and the
//! audit log, as JSON, through the same `ops` functions as the CLI.
//!
//! A request is answered in this order, each step able to stop it with an
//! error in the shape of every modelgate refusal: route (404, 405 with
//! `Allow`) → credential (401, 403) → query and path (400) → body (415, 413,
//! 408, 400) → the operation (its `OpsError` mapped in `error`'s one table).
//! Unauthenticated callers never get their body read.
//!
//! # Layout
//! - `routes`   — [`routes::ROUTES`], the one table the router and the
//!   document read; how to add an endpoint is written there
//! - `input`    — path captures, query parameters, the bounded JSON body
//! - `handlers` — one arm per operation, each an `ops` call
//! - `error`    — [`error::ApiError`] and its status table
//! - `openapi`  — the OpenAPI 3.1 document, generated from the table

pub mod error;
pub mod handlers;
pub mod input;
pub mod openapi;
pub mod routes;

use http::{Request, Response};
use hyper::body::Incoming;

use super::{json_bytes, require_admin, AdminState};
use crate::proxy::body::Body;
use error::ApiError;
use handlers::Ctx;
use input::Input;
use routes::{Access, Lookup};

/// Every path under it belongs to the API (unknown ones get the API's 404).
pub const PREFIX: &str = "/api/";

pub async fn handle(state: &AdminState, req: Request<Incoming>) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    match answer(state, req).await {
        Ok(resp) => resp,
        Err(e) => {
            let status = e.answer().status;
            if status.is_server_error() {
                tracing::warn!(%method, %path, error = %e, "management API request failed");
            } else {
                tracing::debug!(%method, %path, %status, error = %e, "management API request refused");
            }
            e.to_response()
        }
    }
}

async fn answer(state: &AdminState, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let (route, captures) = match routes::lookup(req.method(), req.uri().path()) {
        Lookup::Found(route, captures) => (route, captures),
        Lookup::WrongMethod(allow) => {
            return Err(ApiError::WrongMethod {
                method: req.method().to_string(),
                path: req.uri().path().to_string(),
                allow,
            })
        }
        Lookup::NotFound => {
            return Err(ApiError::NoRoute {
                method: req.method().to_string(),
                path: req.uri().path().to_string(),
            })
        }
    };
    let actor = match route.access {
        Access::Admin => Some(
            require_admin(state, &req)
                .await
                .map_err(ApiError::Auth)?
                .actor(),
        ),
        Access::Public => None,
    };
    let input = Input::new(captures, req.uri().query(), route.query)?;
    let input = match route.body {
        Some(_) => {
            let (parts, body) = req.into_parts();
            input.with_body(input::read_json_body(&parts.headers, body).await?)
        }
        None => input,
    };
    let ctx = Ctx {
        db: handlers::database(&state.store).clone(),
        actor: actor.clone(),
    };
    let reply = handlers::run(route, input, ctx).await?;
    if route.verb != routes::Verb::Get {
        tracing::info!(
            operation = route.operation_id,
            actor = actor.as_deref().unwrap_or("-"),
            status = reply.status.as_u16(),
            "management API write"
        );
    }
    Ok(json_bytes(reply.status, reply.body))
}
