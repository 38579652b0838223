//! The read queries, run on a pooled read-only connection. All inputs are
//! bound parameters; statements are `prepare_cached` per connection.

use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension};
use serde::Serialize;

use super::access::{Effect, Mode, ModelGraph, OrgModels, UserAccess};
use super::error::StoreError;
use super::pattern::Target;

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
/// Organizations the user is in through Open WebUI groups bound to them
/// (`org bind-group`), asked after the explicit memberships and only while
/// some binding is active (`Tables::group_bindings`), so a deployment that
/// binds no group pays nothing for the feature. Open WebUI counts a member
/// of a subgroup as a member of every ancestor group (`include_inherited`
/// in its `models/groups.py`), so binding a parent group covers its
/// subgroups too: the CTE climbs `parent_group_id` from the user's own
/// groups (`ix_group_member_user_id_group_id`), and `UNION` ends the climb
/// on a cycle. `idx_org_groups_group_active` finds the bindings.
pub const GROUP_MEMBERSHIPS_SQL: &str = "WITH RECURSIVE mine(group_id) AS ( \
     SELECT group_id FROM group_member WHERE user_id = ?1 \
     UNION SELECT g.parent_group_id FROM \"group\" g JOIN mine ON g.id = mine.group_id \
     WHERE g.parent_group_id IS NOT NULL) \
     SELECT b.organization_id FROM mine \
     JOIN organization_groups b ON b.group_id = mine.group_id AND b.is_active = 1";
/// The same without subgroups, for Open WebUI versions before them.
pub const FLAT_GROUP_MEMBERSHIPS_SQL: &str = "SELECT b.organization_id FROM group_member gm \
     JOIN organization_groups b ON b.group_id = gm.group_id AND b.is_active = 1 \
     WHERE gm.user_id = ?1";
/// One organization's active pattern and deny rules
/// (`idx_org_rules_org_active`, covering).
pub const ORG_RULES_SQL: &str = "SELECT pattern, effect FROM organization_model_rules \
     WHERE organization_id = ?1 AND is_active = 1";
pub const ORG_MODE_SQL: &str = "SELECT mode FROM organizations WHERE id = ?1";
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
    /// Pattern and deny rules (created by a newer `init`; absent means none).
    pub organization_model_rules: bool,
    /// Group bindings, and Open WebUI's group membership table.
    pub organization_groups: bool,
    pub group_member: bool,
    /// Open WebUI's `group.parent_group_id` (subgroups, 0.12 onwards).
    pub group_parent: bool,
    /// Some group binding is active: only then are group memberships read.
    /// Re-read with the rest whenever the data changes.
    pub group_bindings: bool,
    /// `organizations.mode` exists (absent means every organization
    /// enforces, which is all an older schema could say).
    pub organization_mode: bool,
}

impl Tables {
    pub fn read(conn: &Connection) -> Result<Tables, StoreError> {
        let mut tables = Tables::default();
        let mut stmt = conn.prepare_cached(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') \
             AND name IN ('user', 'api_key', 'model', 'message', 'organization_members', \
             'organization_models', 'organization_model_rules', 'organization_groups', 'group_member')",
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
                "organization_model_rules" => tables.organization_model_rules = true,
                "organization_groups" => tables.organization_groups = true,
                "group_member" => tables.group_member = true,
                _ => {}
            }
        }
        drop(rows);
        tables.group_parent = conn
            .prepare_cached(
                "SELECT 1 FROM pragma_table_info('group') WHERE name = 'parent_group_id'",
            )?
            .exists([])?;
        tables.group_bindings = tables.organization_groups
            && tables.group_member
            && conn
                .prepare_cached("SELECT 1 FROM organization_groups WHERE is_active = 1 LIMIT 1")?
                .exists([])?;
        tables.organization_mode = conn
            .prepare_cached("SELECT 1 FROM pragma_table_info('organizations') WHERE name = 'mode'")?
            .exists([])?;
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
    let mut queries = vec![MEMBERSHIPS_SQL];
    if tables.group_bindings {
        queries.push(if tables.group_parent {
            GROUP_MEMBERSHIPS_SQL
        } else {
            FLAT_GROUP_MEMBERSHIPS_SQL
        });
    }
    for sql in queries {
        let mut stmt = conn.prepare_cached(sql)?;
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

/// One organization's policy: mode, active model links, active rules. A
/// row that cannot be read as written (a `model_id` that is not text, a
/// pattern with a bad escape, an unknown mode or effect: only a foreign
/// writer can store those) fails the load: the error is reported, never
/// cached, rather than silently narrowing or widening the policy.
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
    let mut set = OrgModels::new(organization_id, models);
    if tables.organization_mode {
        let mode: Option<String> = conn
            .prepare_cached(ORG_MODE_SQL)?
            .query_row([organization_id], |r| r.get(0))
            .optional()?;
        // No organizations row (a prototype database before `init`
        // backfilled it) is the default mode.
        if let Some(text) = mode {
            let mode = Mode::parse(&text).ok_or_else(|| {
                StoreError::Schema(format!(
                    "organization {organization_id} has mode {text:?}, neither enforce nor shadow"
                ))
            })?;
            set = set.with_mode(mode);
        }
    }
    if tables.organization_model_rules {
        let mut stmt = conn.prepare_cached(ORG_RULES_SQL)?;
        let mut rows = stmt.query([organization_id])?;
        while let Some(row) = rows.next()? {
            let pattern: String = row.get(0)?;
            let effect: String = row.get(1)?;
            let bad = |what: String| {
                StoreError::Schema(format!(
                    "organization {organization_id}: rule {pattern:?} {what}"
                ))
            };
            let target = Target::parse(&pattern).map_err(|e| bad(e.to_string()))?;
            let effect = Effect::parse(&effect)
                .ok_or_else(|| bad(format!("has effect {effect:?}, neither allow nor deny")))?;
            set = set.with_rule(target, effect);
        }
    }
    Ok(set)
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
    Ok(model_id_of_meta(meta.flatten().as_deref()))
}

/// `meta.model_id` of a channel message's JSON meta (either backend).
pub(crate) fn model_id_of_meta(meta: Option<&str>) -> Option<String> {
    meta.and_then(|text| serde_json::from_str::<serde_json::Value>(text).ok())
        .and_then(|meta| {
            meta.get("model_id")
                .and_then(|m| m.as_str())
                .filter(|m| !m.is_empty())
                .map(str::to_owned)
        })
}
