//! Memberships: add (or re-activate, or change the role), deactivate, list.

use std::str::FromStr;

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use super::write::{deactivate, non_empty, require_org, with_actor, WriteOutcome};
use crate::store::error::StoreError;
use crate::store::schema::table_exists;

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

/// The user id for `user`: an Open WebUI user id, or the email of one
/// (Open WebUI stores emails lower-cased; compared without case). Without
/// a `user` table (a standalone database) the text is the id.
pub fn resolve_user(conn: &Connection, user: &str) -> Result<String, StoreError> {
    let user = non_empty(user, "user id or email")?;
    if !user.contains('@') || !table_exists(conn, "user")? {
        return Ok(user.to_string());
    }
    let by_id = conn
        .prepare_cached("SELECT 1 FROM user WHERE id = ?1")?
        .exists([user])?;
    if by_id {
        return Ok(user.to_string());
    }
    conn.prepare_cached("SELECT id FROM user WHERE lower(email) = lower(?1) ORDER BY id LIMIT 1")?
        .query_row([user], |r| r.get::<_, String>(0))
        .optional()?
        .ok_or_else(|| StoreError::UnknownEmail(user.to_string()))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::admin::test_db::{audit_actors, db_with_org as with_org};

    #[test]
    fn roles_parse_strictly() {
        assert_eq!("member".parse(), Ok(MemberRole::Member));
        assert_eq!("admin".parse(), Ok(MemberRole::Admin));
        assert_eq!(
            "Admin".parse::<MemberRole>(),
            Err(StoreError::InvalidRole("Admin".into()))
        );
        assert_eq!(MemberRole::Admin.as_str(), "admin");
    }

    #[test]
    fn add_is_created_then_unchanged_then_updated_on_a_new_role() {
        let conn = with_org();
        let add = |role| add_member(&conn, "o", "u1", role, "t");
        assert_eq!(add(MemberRole::Member), Ok(WriteOutcome::Created));
        assert_eq!(add(MemberRole::Member), Ok(WriteOutcome::Unchanged));
        assert_eq!(add(MemberRole::Admin), Ok(WriteOutcome::Updated));
        let members = list_members(&conn, "o").unwrap();
        assert_eq!(members.len(), 1);
        assert_eq!(members[0].role.as_deref(), Some("admin"));
        assert_eq!(members[0].email.as_deref(), Some("u1@x"));
    }

    #[test]
    fn remove_deactivates_and_keeps_the_row_then_add_reactivates_it() {
        let conn = with_org();
        add_member(&conn, "o", "u1", MemberRole::Member, "t").unwrap();
        let id = list_members(&conn, "o").unwrap()[0].id.clone();
        assert_eq!(
            remove_member(&conn, "o", "u1", "t"),
            Ok(WriteOutcome::Deactivated)
        );
        assert_eq!(
            remove_member(&conn, "o", "u1", "t"),
            Ok(WriteOutcome::Unchanged)
        );
        let members = list_members(&conn, "o").unwrap();
        assert_eq!(members.len(), 1);
        assert!(!members[0].is_active);
        assert_eq!(
            add_member(&conn, "o", "u1", MemberRole::Member, "t"),
            Ok(WriteOutcome::Reactivated)
        );
        let members = list_members(&conn, "o").unwrap();
        assert!(members[0].is_active);
        assert_eq!(members[0].id, id);
    }

    #[test]
    fn removing_a_non_member_is_not_found() {
        let conn = with_org();
        assert_eq!(
            remove_member(&conn, "o", "u1", "t"),
            Ok(WriteOutcome::NotFound)
        );
    }

    #[test]
    fn unknown_organization_and_user_are_refused() {
        let conn = with_org();
        assert_eq!(
            add_member(&conn, "nope", "u1", MemberRole::Member, "t"),
            Err(StoreError::UnknownOrganization("nope".into()))
        );
        assert_eq!(
            add_member(&conn, "o", "ghost", MemberRole::Member, "t"),
            Err(StoreError::UnknownUser("ghost".into()))
        );
        assert_eq!(
            remove_member(&conn, "nope", "u1", "t"),
            Err(StoreError::UnknownOrganization("nope".into()))
        );
        assert_eq!(
            list_members(&conn, "nope"),
            Err(StoreError::UnknownOrganization("nope".into()))
        );
        assert!(list_members(&conn, "o").unwrap().is_empty());
    }

    /// Without Open WebUI's `user` table (a standalone file) any id is
    /// accepted: there is nothing to check it against.
    #[test]
    fn without_a_user_table_any_user_is_accepted() {
        let conn = Connection::open_in_memory().unwrap();
        crate::store::schema::ensure_schema(&conn).unwrap();
        conn.execute("INSERT INTO organizations (id, name) VALUES ('o', 'O')", [])
            .unwrap();
        assert_eq!(
            add_member(&conn, "o", "anyone", MemberRole::Member, "t"),
            Ok(WriteOutcome::Created)
        );
        assert_eq!(list_members(&conn, "o").unwrap()[0].email, None);
    }

    #[test]
    fn every_change_is_audited_with_its_actor() {
        let conn = with_org();
        add_member(&conn, "o", "u1", MemberRole::Member, "alice").unwrap();
        add_member(&conn, "o", "u1", MemberRole::Member, "nobody").unwrap();
        remove_member(&conn, "o", "u1", "bob").unwrap();
        let row = |action: &str, actor: &str| {
            (
                "organization_members".to_string(),
                action.to_string(),
                "u1".to_string(),
                Some(actor.to_string()),
            )
        };
        assert_eq!(
            audit_actors(&conn),
            [row("INSERT", "alice"), row("UPDATE", "bob")]
        );
    }
}
