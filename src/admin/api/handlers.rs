//! One arm per [`Op`]: each calls the `ops` function the CLI calls, with
//! the same arguments, so the API and the CLI cannot differ in what they
//! write or how they explain (no SQL here). The functions open the
//! database (a SQLite file or a PostgreSQL connection of their own) and
//! block, so they run on the blocking pool.

use bytes::Bytes;
use http::StatusCode;
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::input::Input;
use super::routes::{Op, Route};
use crate::ops::{self, OpsError};
use crate::store::admin::{MemberRole, WriteOutcome};
use crate::store::{Database, Effect, Mode};

/// `POST /organizations`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateOrganization {
    pub id: String,
    pub name: String,
}

/// `POST /organizations/{org}/members`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddMember {
    pub user: String,
    /// `member` (default) or `admin`; parsed by the store's own rule.
    #[serde(default)]
    pub role: Option<String>,
}

/// `POST /organizations/{org}/models`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnableModel {
    /// An exact id or a glob (`openai/*`).
    pub model: String,
    /// `allow` (default, `model enable`) or `deny` (`model deny`).
    #[serde(default)]
    pub effect: Option<Effect>,
    /// Accept an exact id no known model matches (`--force`).
    #[serde(default)]
    pub force: bool,
}

/// `PATCH /organizations/{org}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenameOrganization {
    pub name: String,
}

/// `PUT /organizations/{org}/mode`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetMode {
    pub mode: Mode,
}

/// `POST /organizations/{org}/groups`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindGroup {
    /// Open WebUI group id, or a name exactly one group has.
    pub group: String,
}

/// `audit?limit=`: the CLI's default; the cap bounds one response.
const AUDIT_DEFAULT: usize = 50;
pub const AUDIT_MAX: usize = 1000;

/// What a handler answers: a status and a JSON body, serialized from the
/// ops value itself so its fields keep the order the CLI prints them in.
pub struct Reply {
    pub status: StatusCode,
    pub body: Bytes,
}

impl Reply {
    fn ok(value: &impl Serialize) -> Result<Reply, ApiError> {
        Reply::with(StatusCode::OK, value)
    }

    fn with(status: StatusCode, value: &impl Serialize) -> Result<Reply, ApiError> {
        let body = serde_json::to_vec(value).map_err(|e| ApiError::Internal(e.to_string()))?;
        Ok(Reply {
            status,
            body: Bytes::from(body),
        })
    }

    /// A write: 201 when the route creates and the row is new.
    fn write(route: &Route, report: &ops::manage::WriteReport) -> Result<Reply, ApiError> {
        let status = if route.creates && report.outcome == WriteOutcome::Created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        Reply::with(status, report)
    }
}

/// What every handler may use: the database the live store reads, and the
/// audit actor (`None` on public routes, which never write).
pub struct Ctx {
    pub db: Database,
    pub actor: Option<String>,
}

impl Ctx {
    fn actor(&self) -> Result<String, ApiError> {
        self.actor
            .clone()
            .ok_or_else(|| ApiError::Internal("a write without an authenticated caller".into()))
    }
}

pub async fn run(route: &'static Route, input: Input, ctx: Ctx) -> Result<Reply, ApiError> {
    let db = ctx.db.clone();
    match route.op {
        Op::ListOrganizations => Reply::ok(&blocking(move || ops::manage::org_list(&db)).await?),
        Op::CreateOrganization => {
            let body: CreateOrganization = input.json()?;
            let actor = ctx.actor()?;
            let report =
                blocking(move || ops::manage::org_create(&db, &body.id, &body.name, &actor))
                    .await?;
            Reply::write(route, &report)
        }
        Op::GetOrganization => {
            let org = input.required("org")?.to_string();
            let orgs = blocking(move || ops::manage::org_list(&db)).await?;
            match orgs.0.into_iter().find(|o| o.id == org) {
                Some(found) => Reply::ok(&found),
                None => Err(OpsError::UnknownOrganization(org).into()),
            }
        }
        Op::RenameOrganization => {
            let org = input.required("org")?.to_string();
            let body: RenameOrganization = input.json()?;
            let actor = ctx.actor()?;
            let report =
                blocking(move || ops::manage::org_rename(&db, &org, &body.name, &actor)).await?;
            Reply::write(route, &report)
        }
        Op::SetMode => {
            let org = input.required("org")?.to_string();
            let body: SetMode = input.json()?;
            let actor = ctx.actor()?;
            let report =
                blocking(move || ops::manage::org_mode(&db, &org, body.mode, &actor)).await?;
            Reply::write(route, &report)
        }
        Op::ListGroups => {
            let org = input.required("org")?.to_string();
            Reply::ok(&blocking(move || ops::manage::org_groups(&db, &org)).await?)
        }
        Op::BindGroup => {
            let org = input.required("org")?.to_string();
            let body: BindGroup = input.json()?;
            let actor = ctx.actor()?;
            let report =
                blocking(move || ops::manage::org_bind_group(&db, &org, &body.group, &actor))
                    .await?;
            Reply::write(route, &report)
        }
        Op::UnbindGroup => {
            let (org, group) = (input.required("org")?, input.required("group")?);
            let (org, group, actor) = (org.to_string(), group.to_string(), ctx.actor()?);
            let report =
                blocking(move || ops::manage::org_unbind_group(&db, &org, &group, &actor)).await?;
            Reply::write(route, &report)
        }
        Op::ListMembers => {
            let org = input.required("org")?.to_string();
            Reply::ok(&blocking(move || ops::manage::member_list(&db, &org)).await?)
        }
        Op::AddMember => {
            let org = input.required("org")?.to_string();
            let body: AddMember = input.json()?;
            let role: MemberRole = body
                .role
                .as_deref()
                .unwrap_or("member")
                .parse()
                .map_err(OpsError::from)?;
            let actor = ctx.actor()?;
            let report =
                blocking(move || ops::manage::member_add(&db, &org, &body.user, role, &actor))
                    .await?;
            Reply::write(route, &report)
        }
        Op::RemoveMember => {
            let (org, user) = (input.required("org")?, input.required("user")?);
            let (org, user, actor) = (org.to_string(), user.to_string(), ctx.actor()?);
            let report =
                blocking(move || ops::manage::member_remove(&db, &org, &user, &actor)).await?;
            Reply::write(route, &report)
        }
        Op::ListModels => {
            let org = input.required("org")?.to_string();
            Reply::ok(&blocking(move || ops::manage::model_list(&db, &org)).await?)
        }
        Op::EnableModel => {
            let org = input.required("org")?.to_string();
            let body: EnableModel = input.json()?;
            let actor = ctx.actor()?;
            let report = blocking(move || match body.effect.unwrap_or(Effect::Allow) {
                Effect::Allow => {
                    ops::manage::model_enable(&db, &org, &body.model, body.force, &actor)
                }
                Effect::Deny => ops::manage::model_deny(&db, &org, &body.model, &actor),
            })
            .await?;
            Reply::write(route, &report)
        }
        Op::DisableModel => {
            let (org, model) = (input.required("org")?, input.required("model")?);
            let (org, model, actor) = (org.to_string(), model.to_string(), ctx.actor()?);
            let report =
                blocking(move || ops::manage::model_disable(&db, &org, &model, &actor)).await?;
            Reply::write(route, &report)
        }
        Op::Explain => {
            let user = input.required("user")?.to_string();
            let model = input.arg("model").map(str::to_string);
            Reply::ok(&explain(db, user, model).await?)
        }
        Op::Audit => {
            let limit = audit_limit(input.arg("limit"))?;
            Reply::ok(&blocking(move || ops::report::audit(&db, limit)).await?)
        }
        Op::OpenApi => Reply::ok(&super::openapi::document()),
    }
}

/// `audit?limit=N`: 1 to [`AUDIT_MAX`]; 0 is refused as the CLI refuses it
/// (an empty page would read as "no changes recorded").
fn audit_limit(raw: Option<&str>) -> Result<usize, ApiError> {
    let Some(raw) = raw else {
        return Ok(AUDIT_DEFAULT);
    };
    match raw.parse::<usize>() {
        Ok(n) if (1..=AUDIT_MAX).contains(&n) => Ok(n),
        _ => Err(ApiError::parameter(
            "limit",
            format!("must be an integer from 1 to {AUDIT_MAX}, not {raw:?}"),
        )),
    }
}

/// `ops::access::explain`, the CLI's `access`: it reads the database fresh
/// (uncached) through the gate's own read path, so it shows what the gate
/// decides now, and a store that cannot be read is a 503. It runs its
/// blocking parts on a blocking thread itself.
async fn explain(
    db: Database,
    user: String,
    model: Option<String>,
) -> Result<ops::access::AccessExplanation, ApiError> {
    ops::access::explain(db, &user, model.as_deref())
        .await
        .map_err(ApiError::from)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, OpsError> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result.map_err(ApiError::from),
        Err(e) => Err(ApiError::Internal(format!("the database task failed: {e}"))),
    }
}

/// The database the API writes: the one the live store reads.
pub fn database(store: &crate::store::AccessStore) -> &Database {
    &store.config().database
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_limits() {
        assert_eq!(audit_limit(None).unwrap(), 50);
        assert_eq!(audit_limit(Some("1")).unwrap(), 1);
        assert_eq!(audit_limit(Some("1000")).unwrap(), 1000);
        for bad in ["0", "1001", "-1", "ten", ""] {
            assert!(audit_limit(Some(bad)).is_err(), "{bad}");
        }
    }
}
