//! The read queries, run on a pooled read-only connection. All inputs are
//! bound parameters; statements are `prepare_cached` per connection.

use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension};
use serde::Serialize;

use super::access::{ModelGraph, OrgModels, UserAccess};
use super::error::StoreError;

/// A user's active memberships (`idx_org_members_user_active`). The index
/// lacks `organization_id`, so each row costs one table read: a user has a
/// handful of memberships, so that is a few page reads, not worth a
/// non-seed index.
pub const MEMBERSHIPS_SQL: &str = "SELECT organization_id FROM organization_members \
     WHERE user_id = ?1 AND is_active = 1";
/// One organization's active model links. Answered from the covering index
/// `idx_org_models_org_active_model` alone: through the seed index
/// `idx_org_models_org_active` every link cost a table read, which made a
/// lookup materialising ~1,500 links take milliseconds.
pub const ORG_MODELS_SQL: &str = "SELECT model_id FROM organization_models \
     WHERE organization_id = ?1 AND is_active = 1";
/// Only asked when the user has no `user` row and no active membership:
/// an inactive membership still makes the user "known".
pub const ANY_MEMBERSHIP_SQL: &str =
    "SELECT 1 FROM organization_members WHERE user_id = ?1 LIMIT 1";
pub const ROLE_SQL: &str = "SELECT role FROM user WHERE id = ?1";
pub const API_KEY_SQL: &str = "SELECT user_id, expires_at FROM api_key WHERE key = ?1";
pub const MODEL_GRAPH_SQL: &str = "SELECT id, base_model_id FROM model";

/// The owner of an Open WebUI API key. Whether it has expired is the
/// caller's call (it knows the clock it wants).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiKeyOwner {
    pub user_id: String,
    pub expires_at: Option<i64>,
}

/// Which tables this database has. Open WebUI's may be absent (standalone
/// file); ours must be present.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tables {
    pub user: bool,
    pub api_key: bool,
    pub model: bool,
    /// Open WebUI's channel messages.
    pub message: bool,
    pub organization_members: bool,
    pub organization_models: bool,
}

impl Tables {
    pub fn read(conn: &Connection) -> Result<Tables, StoreError> {
        let mut tables = Tables::default();
        let mut stmt = conn.prepare_cached(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') \
             AND name IN ('user', 'api_key', 'model', 'message', 'organization_members', 'organization_models')",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            match row.get_ref(0)?.as_str().unwrap_or_default() {
                "user" => tables.user = true,
                "api_key" => tables.api_key = true,
                "model" => tables.model = true,
                "message" => tables.message = true,
                "organization_members" => tables.organization_members = true,
                "organization_models" => tables.organization_models = true,
                _ => {}
            }
        }
        Ok(tables)
    }

    pub fn require_org_tables(&self) -> Result<(), StoreError> {
        if self.organization_members && self.organization_models {
            Ok(())
        } else {
            Err(StoreError::Schema(
                "organization_members/organization_models absent".into(),
            ))
        }
    }
}

/// A user's row-level facts, without the organizations' model sets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Memberships {
    pub role: Option<String>,
    pub known: bool,
    /// Active memberships, sorted, unique.
    pub organizations: Vec<String>,
}

/// Memberships and role: the per-user part of a lookup (two point queries).
pub fn load_memberships(
    conn: &Connection,
    tables: &Tables,
    user_id: &str,
) -> Result<Memberships, StoreError> {
    tables.require_org_tables()?;
    let mut found = Memberships::default();
    {
        let mut stmt = conn.prepare_cached(MEMBERSHIPS_SQL)?;
        let mut rows = stmt.query([user_id])?;
        while let Some(row) = rows.next()? {
            found.organizations.push(row.get(0)?);
        }
    }
    found.organizations.sort_unstable();
    found.organizations.dedup();
    if tables.user {
        // Outer Option: the row exists; inner: its role may be NULL.
        let row = conn
            .prepare_cached(ROLE_SQL)?
            .query_row([user_id], |r| r.get::<_, Option<String>>(0))
            .optional()?;
        found.known = row.is_some();
        found.role = row.flatten();
    }
    if !found.known {
        found.known = !found.organizations.is_empty()
            || conn.prepare_cached(ANY_MEMBERSHIP_SQL)?.exists([user_id])?;
    }
    Ok(found)
}

/// One organization's active models. A row whose `model_id` is not text
/// (only a foreign writer can store that) fails the load: the error is
/// reported, never cached, rather than silently narrowing the set.
pub fn load_org_models(
    conn: &Connection,
    tables: &Tables,
    organization_id: &str,
) -> Result<OrgModels, StoreError> {
    tables.require_org_tables()?;
    let mut stmt = conn.prepare_cached(ORG_MODELS_SQL)?;
    let models = stmt
        .query_map([organization_id], |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(OrgModels::new(organization_id, models))
}

/// The whole lookup on one connection, without any cache: memberships, then
/// each organization's set (`AccessStore::load_user`, explanations).
pub fn load_user(
    conn: &Connection,
    tables: &Tables,
    user_id: &str,
) -> Result<UserAccess, StoreError> {
    let found = load_memberships(conn, tables, user_id)?;
    let sets = found
        .organizations
        .iter()
        .map(|org| load_org_models(conn, tables, org).map(Arc::new))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(UserAccess::new(user_id, found.role, found.known, sets))
}

pub fn load_api_key(
    conn: &Connection,
    tables: &Tables,
    key: &str,
) -> Result<Option<ApiKeyOwner>, StoreError> {
    if !tables.api_key {
        return Ok(None);
    }
    let owner = conn
        .prepare_cached(API_KEY_SQL)?
        .query_row([key], |r| {
            Ok(ApiKeyOwner {
                user_id: r.get(0)?,
                expires_at: r.get(1)?,
            })
        })
        .optional()?;
    Ok(owner)
}

pub fn load_graph(
    conn: &Connection,
    tables: &Tables,
    max_depth: usize,
) -> Result<ModelGraph, StoreError> {
    if !tables.model {
        return Ok(ModelGraph::empty(max_depth));
    }
    let mut stmt = conn.prepare_cached(MODEL_GRAPH_SQL)?;
    let rows = stmt
        .query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ModelGraph::new(rows, max_depth))
}

/// The model a channel message was written by: Open WebUI answers a reply to
/// it as that model (`routers/channels.py`, `model_response_handler`:
/// `reply_to_message.meta['model_id']`). `None` for an unknown message, one
/// with no such meta, or a database without channels.
pub fn load_message_model(
    conn: &Connection,
    tables: &Tables,
    message_id: &str,
) -> Result<Option<String>, StoreError> {
    if !tables.message {
        return Ok(None);
    }
    let mut stmt = conn.prepare_cached("SELECT meta FROM message WHERE id = ?1")?;
    let meta: Option<Option<String>> = stmt
        .query_row([message_id], |r| r.get::<_, Option<String>>(0))
        .optional()?;
    Ok(meta
        .flatten()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|meta| {
            meta.get("model_id")
                .and_then(|m| m.as_str())
                .filter(|m| !m.is_empty())
                .map(str::to_owned)
        }))
}
