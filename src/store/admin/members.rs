//! Memberships: add (or re-activate, or change the role), deactivate, list.

use std::str::FromStr;

use serde::Serialize;

use super::write::{deactivate, non_empty, only_match, require_org, with_actor, WriteOutcome};
use crate::store::error::StoreError;
use crate::store::sql::{AdminDb, Value};

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
pub fn resolve_user(conn: &(impl AdminDb + ?Sized), user: &str) -> Result<String, StoreError> {
    let user = non_empty(user, "user id or email")?;
    if !user.contains('@') || !conn.table_exists("user")? {
        return Ok(user.to_string());
    }
    if conn.exists("SELECT 1 FROM \"user\" WHERE id = ?1", &[Value::Text(user)])? {
        return Ok(user.to_string());
    }
    only_match(
        conn,
        "SELECT id FROM \"user\" WHERE lower(email) = lower(?1) ORDER BY id {binary}",
        user,
        || StoreError::UnknownEmail(user.to_string()),
        |ids| StoreError::AmbiguousEmail {
            email: user.to_string(),
            ids,
        },
    )
}

/// Adds a member, or re-activates an inactive membership (keeping its row
/// id), or changes the role of an active one.
pub fn add_member(
    conn: &(impl AdminDb + ?Sized),
    org: &str,
    user: &str,
    role: MemberRole,
    actor: &str,
) -> Result<WriteOutcome, StoreError> {
    let org = non_empty(org, "organization id")?;
    let user = non_empty(user, "user id")?;
    with_actor(conn, actor, |tx| {
        require_org(tx, org)?;
        if tx.table_exists("user")?
            && !tx.exists("SELECT 1 FROM \"user\" WHERE id = ?1", &[Value::Text(user)])?
        {
            return Err(StoreError::UnknownUser(user.to_string()));
        }
        let role = role.as_str();
        let keys = [Value::Text(org), Value::Text(user), Value::Text(role)];
        let existing = tx.query_opt(
            "SELECT is_active, role FROM organization_members
             WHERE organization_id = ?1 AND user_id = ?2",
            &keys[..2],
        )?;
        let Some(existing) = existing else {
            tx.execute(
                "INSERT INTO organization_members (id, organization_id, user_id, role, is_active, joined_at)
                 VALUES ('om_' || ?2 || '_' || ?1, ?1, ?2, ?3, TRUE, {now})",
                &keys,
            )?;
            return Ok(WriteOutcome::Created);
        };
        let active = existing.flag(0)?;
        if active && existing.opt_text(1)?.as_deref() == Some(role) {
            return Ok(WriteOutcome::Unchanged);
        }
        tx.execute(
            "UPDATE organization_members SET is_active = TRUE, role = ?3
             WHERE organization_id = ?1 AND user_id = ?2",
            &keys,
        )?;
        Ok(if active {
            WriteOutcome::Updated
        } else {
            WriteOutcome::Reactivated
        })
    })
}

/// Deactivates a membership (the row and its audit history stay).
pub fn remove_member(
    conn: &(impl AdminDb + ?Sized),
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
            "UPDATE organization_members SET is_active = FALSE
             WHERE organization_id = ?1 AND user_id = ?2 AND is_active <> FALSE",
            "SELECT 1 FROM organization_members WHERE organization_id = ?1 AND user_id = ?2",
            org,
            user,
        )
    })
}

pub fn list_members(conn: &(impl AdminDb + ?Sized), org: &str) -> Result<Vec<Member>, StoreError> {
    let org = non_empty(org, "organization id")?;
    require_org(conn, org)?;
    let email = if conn.table_exists("user")? {
        "(SELECT u.email FROM \"user\" u WHERE u.id = m.user_id)"
    } else {
        "NULL"
    };
    let sql = format!(
        "SELECT m.id, m.organization_id, m.user_id, m.role, m.is_active, m.joined_at, {email}
         FROM organization_members m WHERE m.organization_id = ?1 ORDER BY m.user_id {{binary}}"
    );
    conn.query_rows(&sql, &[Value::Text(org)])?
        .into_iter()
        .map(|r| {
            Ok(Member {
                id: r.text(0)?,
                organization_id: r.text(1)?,
                user_id: r.text(2)?,
                role: r.opt_text(3)?,
                is_active: r.flag(4)?,
                joined_at: r.opt_int(5)?,
                email: r.opt_text(6)?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::admin::test_db::{audit_actors, db_with_org as with_org};
    use rusqlite::Connection;

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
    fn emails_resolve_case_blind_and_only_when_unambiguous() {
        let conn = with_org();
        assert_eq!(resolve_user(&conn, "U1@X"), Ok("u1".into()));
        assert_eq!(
            resolve_user(&conn, "nobody@x"),
            Err(StoreError::UnknownEmail("nobody@x".into()))
        );
        // A second user with the same email (another writer than Open
        // WebUI's sign-up): neither is picked.
        conn.execute(
            "INSERT INTO user (id, name, email, role) VALUES ('u9', 'u9', 'u1@X', 'user')",
            [],
        )
        .unwrap();
        assert_eq!(
            resolve_user(&conn, "u1@x"),
            Err(StoreError::AmbiguousEmail {
                email: "u1@x".into(),
                ids: vec!["u1".into(), "u9".into()],
            })
        );
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
