//! Administrative writes and listings the CLI calls: organizations,
//! memberships, model links, the audit log, the seed's migration and online
//! backup.
//!
//! Every write is one IMMEDIATE transaction (takes the write lock up front,
//! so it never fails half-way on a lock upgrade) that first names its actor
//! in `permission_audit_context` and clears it before committing: the audit
//! triggers read the actor, and no other writer ever sees it.
//! Revocation is deactivation (`is_active = 0`), never deletion, so the row
//! and its history stay.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};
use serde::Serialize;

use super::error::StoreError;
use super::schema::{create_schema, table_exists};

/// A membership role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberRole {
    Member,
    Admin,
}

impl MemberRole {
    pub fn as_str(self) -> &'static str {
        match self {
            MemberRole::Member => "member",
            MemberRole::Admin => "admin",
        }
    }
}

impl FromStr for MemberRole {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, StoreError> {
        match s {
            "member" => Ok(MemberRole::Member),
            "admin" => Ok(MemberRole::Admin),
            other => Err(StoreError::InvalidRole(other.to_string())),
        }
    }
}

/// What a write did, so the CLI can say so (and tests can check no-ops).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WriteOutcome {
    Created,
    Reactivated,
    Updated,
    Deactivated,
    Unchanged,
    NotFound,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Organization {
    pub id: String,
    pub name: String,
    pub created_at: Option<i64>,
    pub active_members: i64,
    pub active_models: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Member {
    pub id: String,
    pub organization_id: String,
    pub user_id: String,
    pub role: Option<String>,
    pub is_active: bool,
    pub joined_at: Option<i64>,
    /// From Open WebUI's `user` table when it exists.
    pub email: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrgModel {
    pub id: String,
    pub organization_id: String,
    pub model_id: String,
    pub is_active: bool,
    pub created_at: Option<i64>,
    pub updated_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    pub id: i64,
    pub table_name: String,
    pub action: String,
    pub row_id: Option<String>,
    pub organization_id: Option<String>,
    /// The user id (memberships) or model id (model links).
    pub subject: Option<String>,
    pub old_values: Option<serde_json::Value>,
    pub new_values: Option<serde_json::Value>,
    /// NULL when the change came from a writer other than modelgate.
    pub actor: Option<String>,
    pub changed_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MigrateReport {
    pub organization_id: String,
    pub dry_run: bool,
    /// Rows inserted by this run (0 on a repeated run).
    pub users_linked: usize,
    pub models_linked: usize,
    /// Verification counts after the run (inside the transaction for a dry run).
    pub members_total: i64,
    pub models_total: i64,
    /// False when Open WebUI's `user` / `model` table is absent.
    pub user_table: bool,
    pub model_table: bool,
}

/// Opens the database for writing the way Open WebUI does (WAL,
/// `busy_timeout` 5 s), creating the file when missing (`modelgate init`).
pub fn open_writer(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    Ok(conn)
}

pub fn create_org(
    conn: &Connection,
    id: &str,
    name: &str,
    actor: &str,
) -> Result<WriteOutcome, StoreError> {
    let id = non_empty(id, "organization id")?;
    let name = non_empty(name, "organization name")?;
    with_actor(conn, actor, |tx| {
        let existing: Option<String> = tx
            .query_row("SELECT name FROM organizations WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()?;
        match existing {
            Some(old) if old == name => Ok(WriteOutcome::Unchanged),
            Some(_) => {
                tx.execute(
                    "UPDATE organizations SET name = ?2 WHERE id = ?1",
                    params![id, name],
                )?;
                Ok(WriteOutcome::Updated)
            }
            None => {
                tx.execute(
                    "INSERT INTO organizations (id, name, created_at)
                     VALUES (?1, ?2, CAST(strftime('%s','now') AS INTEGER))",
                    params![id, name],
                )?;
                Ok(WriteOutcome::Created)
            }
        }
    })
}

pub fn list_orgs(conn: &Connection) -> Result<Vec<Organization>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT o.id, o.name, o.created_at,
            (SELECT COUNT(*) FROM organization_members m WHERE m.organization_id = o.id AND m.is_active = 1),
            (SELECT COUNT(*) FROM organization_models l WHERE l.organization_id = o.id AND l.is_active = 1)
         FROM organizations o ORDER BY o.id",
    )?;
    let rows = stmt
        .query_map([], |r| {
            Ok(Organization {
                id: r.get(0)?,
                name: r.get(1)?,
                created_at: r.get(2)?,
                active_members: r.get(3)?,
                active_models: r.get(4)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Adds a member, or re-activates an inactive membership (keeping its row
/// id), or changes the role of an active one.
pub fn add_member(
    conn: &Connection,
    org: &str,
    user: &str,
    role: MemberRole,
    actor: &str,
) -> Result<WriteOutcome, StoreError> {
    let org = non_empty(org, "organization id")?;
    let user = non_empty(user, "user id")?;
    with_actor(conn, actor, |tx| {
        require_org(tx, org)?;
        if table_exists(tx, "user")? {
            let known = tx
                .prepare_cached("SELECT 1 FROM user WHERE id = ?1")?
                .exists([user])?;
            if !known {
                return Err(StoreError::UnknownUser(user.to_string()));
            }
        }
        let existing: Option<(i64, Option<String>)> = tx
            .query_row(
                "SELECT is_active, role FROM organization_members
                 WHERE organization_id = ?1 AND user_id = ?2",
                [org, user],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let role = role.as_str();
        match existing {
            None => {
                tx.execute(
                    "INSERT INTO organization_members (id, organization_id, user_id, role, is_active, joined_at)
                     VALUES ('om_' || ?2 || '_' || ?1, ?1, ?2, ?3, 1, CAST(strftime('%s','now') AS INTEGER))",
                    params![org, user, role],
                )?;
                Ok(WriteOutcome::Created)
            }
            Some((active, old_role)) => {
                if active == 1 && old_role.as_deref() == Some(role) {
                    return Ok(WriteOutcome::Unchanged);
                }
                tx.execute(
                    "UPDATE organization_members SET is_active = 1, role = ?3
                     WHERE organization_id = ?1 AND user_id = ?2",
                    params![org, user, role],
                )?;
                Ok(if active == 1 {
                    WriteOutcome::Updated
                } else {
                    WriteOutcome::Reactivated
                })
            }
        }
    })
}

/// Deactivates a membership (the row and its audit history stay).
pub fn remove_member(
    conn: &Connection,
    org: &str,
    user: &str,
    actor: &str,
) -> Result<WriteOutcome, StoreError> {
    let org = non_empty(org, "organization id")?;
    let user = non_empty(user, "user id")?;
    with_actor(conn, actor, |tx| {
        require_org(tx, org)?;
        deactivate(
            tx,
            "UPDATE organization_members SET is_active = 0
             WHERE organization_id = ?1 AND user_id = ?2 AND is_active != 0",
            "SELECT 1 FROM organization_members WHERE organization_id = ?1 AND user_id = ?2",
            org,
            user,
        )
    })
}

pub fn list_members(conn: &Connection, org: &str) -> Result<Vec<Member>, StoreError> {
    let org = non_empty(org, "organization id")?;
    require_org(conn, org)?;
    let email = if table_exists(conn, "user")? {
        "(SELECT u.email FROM user u WHERE u.id = m.user_id)"
    } else {
        "NULL"
    };
    let sql = format!(
        "SELECT m.id, m.organization_id, m.user_id, m.role, m.is_active, m.joined_at, {email}
         FROM organization_members m WHERE m.organization_id = ?1 ORDER BY m.user_id"
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt
        .query_map([org], |r| {
            Ok(Member {
                id: r.get(0)?,
                organization_id: r.get(1)?,
                user_id: r.get(2)?,
                role: r.get(3)?,
                is_active: r.get::<_, Option<i64>>(4)? == Some(1),
                joined_at: r.get(5)?,
                email: r.get(6)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Permits a model (by the id requests use; presets are judged by their
/// root, so enabling a base model is what permits its presets).
pub fn enable_model(
    conn: &Connection,
    org: &str,
    model: &str,
    actor: &str,
) -> Result<WriteOutcome, StoreError> {
    let org = non_empty(org, "organization id")?;
    let model = non_empty(model, "model id")?;
    with_actor(conn, actor, |tx| {
        require_org(tx, org)?;
        let active: Option<Option<i64>> = tx
            .query_row(
                "SELECT is_active FROM organization_models WHERE organization_id = ?1 AND model_id = ?2",
                [org, model],
                |r| r.get(0),
            )
            .optional()?;
        match active {
            None => {
                tx.execute(
                    "INSERT INTO organization_models (id, organization_id, model_id, is_active, created_at, updated_at)
                     VALUES ('orgmod_' || ?1 || '_' || ?2, ?1, ?2, 1,
                             CAST(strftime('%s','now') AS INTEGER), CAST(strftime('%s','now') AS INTEGER))",
                    [org, model],
                )?;
                Ok(WriteOutcome::Created)
            }
            Some(Some(1)) => Ok(WriteOutcome::Unchanged),
            Some(_) => {
                tx.execute(
                    "UPDATE organization_models SET is_active = 1, updated_at = CAST(strftime('%s','now') AS INTEGER)
                     WHERE organization_id = ?1 AND model_id = ?2",
                    [org, model],
                )?;
                Ok(WriteOutcome::Reactivated)
            }
        }
    })
}

/// Deactivates a model link.
pub fn disable_model(
    conn: &Connection,
    org: &str,
    model: &str,
    actor: &str,
) -> Result<WriteOutcome, StoreError> {
    let org = non_empty(org, "organization id")?;
    let model = non_empty(model, "model id")?;
    with_actor(conn, actor, |tx| {
        require_org(tx, org)?;
        deactivate(
            tx,
            "UPDATE organization_models SET is_active = 0, updated_at = CAST(strftime('%s','now') AS INTEGER)
             WHERE organization_id = ?1 AND model_id = ?2 AND is_active != 0",
            "SELECT 1 FROM organization_models WHERE organization_id = ?1 AND model_id = ?2",
            org,
            model,
        )
    })
}

pub fn list_models(conn: &Connection, org: &str) -> Result<Vec<OrgModel>, StoreError> {
    let org = non_empty(org, "organization id")?;
    require_org(conn, org)?;
    let mut stmt = conn.prepare(
        "SELECT id, organization_id, model_id, is_active, created_at, updated_at
         FROM organization_models WHERE organization_id = ?1 ORDER BY model_id",
    )?;
    let rows = stmt
        .query_map([org], |r| {
            Ok(OrgModel {
                id: r.get(0)?,
                organization_id: r.get(1)?,
                model_id: r.get(2)?,
                is_active: r.get::<_, Option<i64>>(3)? == Some(1),
                created_at: r.get(4)?,
                updated_at: r.get(5)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// The newest `limit` permission changes, newest first.
pub fn audit(conn: &Connection, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut stmt = conn.prepare(
        "SELECT id, table_name, action, row_id, organization_id, subject, old_values, new_values, actor, changed_at
         FROM permission_audit_log ORDER BY id DESC LIMIT ?1",
    )?;
    let rows = stmt
        .query_map([limit], |r| {
            Ok(AuditEntry {
                id: r.get(0)?,
                table_name: r.get(1)?,
                action: r.get(2)?,
                row_id: r.get(3)?,
                organization_id: r.get(4)?,
                subject: r.get(5)?,
                old_values: json_text(r.get(6)?),
                new_values: json_text(r.get(7)?),
                actor: r.get(8)?,
                changed_at: r.get(9)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// The seed's `migrate_to_organizations`: in ONE transaction, create the
/// schema and the organization, link every non-pending user and every base
/// model (`base_model_id IS NULL`, link active as the model is), then count.
/// `INSERT OR IGNORE` makes a re-run a no-op that also leaves earlier
/// revocations alone. A dry run does all of it and rolls back.
pub fn migrate(
    conn: &Connection,
    org_id: &str,
    org_name: &str,
    actor: &str,
    dry_run: bool,
) -> Result<MigrateReport, StoreError> {
    let org_id = non_empty(org_id, "organization id")?;
    let org_name = non_empty(org_name, "organization name")?;
    let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    create_schema(&tx)?;
    set_actor(&tx, actor)?;
    tx.execute(
        "INSERT OR IGNORE INTO organizations (id, name, created_at)
         VALUES (?1, ?2, CAST(strftime('%s','now') AS INTEGER))",
        [org_id, org_name],
    )?;
    let user_table = table_exists(&tx, "user")?;
    let users_linked = link_all_users(&tx, org_id)?;
    let model_table = table_exists(&tx, "model")?;
    let models_linked = link_base_models(&tx, org_id)?;
    let members_total = tx.query_row(
        "SELECT COUNT(*) FROM organization_members WHERE organization_id = ?1",
        [org_id],
        |r| r.get(0),
    )?;
    let models_total = tx.query_row(
        "SELECT COUNT(*) FROM organization_models WHERE organization_id = ?1",
        [org_id],
        |r| r.get(0),
    )?;
    clear_actor(&tx)?;
    if dry_run {
        tx.rollback()?;
    } else {
        tx.commit()?;
    }
    Ok(MigrateReport {
        organization_id: org_id.to_string(),
        dry_run,
        users_linked,
        models_linked,
        members_total,
        models_total,
        user_table,
        model_table,
    })
}

/// Adds every non-pending Open WebUI user to `org` (admins as admins),
/// leaving existing memberships as they are, deactivated ones included.
/// 0 without a `user` table.
pub(crate) fn link_all_users(tx: &Transaction<'_>, org: &str) -> Result<usize, StoreError> {
    if !table_exists(tx, "user")? {
        return Ok(0);
    }
    Ok(tx.execute(
        "INSERT OR IGNORE INTO organization_members (id, organization_id, user_id, role, is_active, joined_at)
         SELECT 'om_' || u.id || '_' || ?1, ?1, u.id,
                CASE WHEN u.role = 'admin' THEN 'admin' ELSE 'member' END,
                1, CAST(strftime('%s','now') AS INTEGER)
         FROM user u WHERE u.role IS NOT 'pending'",
        [org],
    )?)
}

/// Links every base model (`base_model_id IS NULL`) of Open WebUI's `model`
/// table to `org`, active as the model is, leaving existing links as they
/// are. 0 without a `model` table.
pub(crate) fn link_base_models(tx: &Transaction<'_>, org: &str) -> Result<usize, StoreError> {
    if !table_exists(tx, "model")? {
        return Ok(0);
    }
    Ok(tx.execute(
        "INSERT OR IGNORE INTO organization_models (id, organization_id, model_id, is_active, created_at, updated_at)
         SELECT 'orgmod_' || ?1 || '_' || m.id, ?1, m.id,
                CASE WHEN m.is_active = 0 THEN 0 ELSE 1 END,
                CAST(strftime('%s','now') AS INTEGER), CAST(strftime('%s','now') AS INTEGER)
         FROM model m WHERE m.base_model_id IS NULL",
        [org],
    )?)
}

/// Online backup of the main database to `dest` (SQLite's backup API: a
/// consistent copy while Open WebUI keeps writing). Refuses to overwrite.
pub fn backup(src: &Connection, dest: &Path) -> Result<(), StoreError> {
    if dest.exists() {
        return Err(StoreError::Backup(format!(
            "{} already exists",
            dest.display()
        )));
    }
    src.backup(rusqlite::DatabaseName::Main, dest, None)
        .map_err(|e| StoreError::Backup(e.to_string()))
}

pub(crate) fn with_actor<T>(
    conn: &Connection,
    actor: &str,
    body: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    set_actor(&tx, actor)?;
    let out = body(&tx)?;
    clear_actor(&tx)?;
    tx.commit()?;
    Ok(out)
}

fn set_actor(tx: &Transaction<'_>, actor: &str) -> Result<(), StoreError> {
    tx.execute(
        "INSERT OR REPLACE INTO permission_audit_context (id, actor) VALUES (1, ?1)",
        [actor],
    )?;
    Ok(())
}

fn clear_actor(tx: &Transaction<'_>) -> Result<(), StoreError> {
    tx.execute("DELETE FROM permission_audit_context", [])?;
    Ok(())
}

fn deactivate(
    tx: &Transaction<'_>,
    update: &str,
    exists: &str,
    org: &str,
    subject: &str,
) -> Result<WriteOutcome, StoreError> {
    if tx.execute(update, [org, subject])? > 0 {
        return Ok(WriteOutcome::Deactivated);
    }
    if tx.prepare(exists)?.exists([org, subject])? {
        Ok(WriteOutcome::Unchanged)
    } else {
        Ok(WriteOutcome::NotFound)
    }
}

fn require_org(conn: &Connection, org: &str) -> Result<(), StoreError> {
    let known = conn
        .prepare_cached("SELECT 1 FROM organizations WHERE id = ?1")?
        .exists([org])?;
    if known {
        Ok(())
    } else {
        Err(StoreError::UnknownOrganization(org.to_string()))
    }
}

fn non_empty<'a>(value: &'a str, what: &'static str) -> Result<&'a str, StoreError> {
    if value.trim().is_empty() {
        Err(StoreError::EmptyId(what))
    } else {
        Ok(value)
    }
}

/// Trigger output is JSON; anything else (a hand-edited row) is kept as text.
fn json_text(text: Option<String>) -> Option<serde_json::Value> {
    text.map(|t| serde_json::from_str(&t).unwrap_or(serde_json::Value::String(t)))
}
