//! The read queries, run on a pooled read-only connection. All inputs are
//! bound parameters; statements are `prepare_cached` per connection.

use rusqlite::{Connection, OptionalExtension};
use serde::Serialize;

use super::access::{ModelGraph, UserAccess};
use super::error::StoreError;

/// Memberships and permitted models in one indexed query
/// (`idx_org_members_user_active`, then `idx_org_models_org_active`). The
/// LEFT JOIN keeps memberships of organizations without models.
pub const LOOKUP_SQL: &str = "SELECT om.organization_id, mo.model_id \
     FROM organization_members om \
     LEFT JOIN organization_models mo ON mo.organization_id = om.organization_id AND mo.is_active = 1 \
     WHERE om.user_id = ?1 AND om.is_active = 1";
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
    pub organization_members: bool,
    pub organization_models: bool,
}

impl Tables {
    pub fn read(conn: &Connection) -> Result<Tables, StoreError> {
        let mut tables = Tables::default();
        let mut stmt = conn.prepare_cached(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') \
             AND name IN ('user', 'api_key', 'model', 'organization_members', 'organization_models')",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            match row.get_ref(0)?.as_str().unwrap_or_default() {
                "user" => tables.user = true,
                "api_key" => tables.api_key = true,
                "model" => tables.model = true,
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
                "organization_members/organization_models absent; run `modelgate init`".into(),
            ))
        }
    }
}

pub fn load_user(
    conn: &Connection,
    tables: &Tables,
    user_id: &str,
) -> Result<UserAccess, StoreError> {
    tables.require_org_tables()?;
    let mut access = UserAccess::unknown(user_id);
    {
        let mut stmt = conn.prepare_cached(LOOKUP_SQL)?;
        let mut rows = stmt.query([user_id])?;
        while let Some(row) = rows.next()? {
            let org: String = row.get(0)?;
            if let Some(model) = row.get::<_, Option<String>>(1)? {
                // Deterministic attribution: the smallest organization id.
                match access.models.get_mut(&model) {
                    Some(current) if *current <= org => {}
                    Some(current) => current.clone_from(&org),
                    None => {
                        access.models.insert(model, org.clone());
                    }
                }
            }
            access.organizations.push(org);
        }
    }
    access.organizations.sort_unstable();
    access.organizations.dedup();
    if tables.user {
        // Outer Option: the row exists; inner: its role may be NULL.
        let row = conn
            .prepare_cached(ROLE_SQL)?
            .query_row([user_id], |r| r.get::<_, Option<String>>(0))
            .optional()?;
        access.known = row.is_some();
        access.role = row.flatten();
    }
    if !access.known {
        access.known = !access.organizations.is_empty()
            || conn.prepare_cached(ANY_MEMBERSHIP_SQL)?.exists([user_id])?;
    }
    Ok(access)
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
