//! Organizations: create or rename, and the listing with active counts.

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use super::write::{non_empty, with_actor, WriteOutcome};
use crate::store::error::StoreError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Organization {
    pub id: String,
    pub name: String,
    pub created_at: Option<i64>,
    pub active_members: i64,
    pub active_models: i64,
}

/// Creates the organization, or renames it when the name differs.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::admin::test_db::db;

    #[test]
    fn create_then_unchanged_then_renamed() {
        let conn = db();
        assert_eq!(create_org(&conn, "o", "O", "t"), Ok(WriteOutcome::Created));
        assert_eq!(
            create_org(&conn, "o", "O", "t"),
            Ok(WriteOutcome::Unchanged)
        );
        assert_eq!(
            create_org(&conn, "o", "New", "t"),
            Ok(WriteOutcome::Updated)
        );
        let orgs = list_orgs(&conn).unwrap();
        assert_eq!(orgs.len(), 1);
        assert_eq!(orgs[0].name, "New");
        assert!(orgs[0].created_at.is_some());
    }

    #[test]
    fn blank_id_or_name_is_refused_before_any_write() {
        let conn = db();
        assert_eq!(
            create_org(&conn, " ", "O", "t"),
            Err(StoreError::EmptyId("organization id"))
        );
        assert_eq!(
            create_org(&conn, "o", "", "t"),
            Err(StoreError::EmptyId("organization name"))
        );
        assert!(list_orgs(&conn).unwrap().is_empty());
    }

    #[test]
    fn listing_counts_only_active_rows() {
        let conn = db();
        create_org(&conn, "b", "B", "t").unwrap();
        create_org(&conn, "a", "A", "t").unwrap();
        // Written directly: this module's tests should not depend on the
        // membership and model writes, whose tests use organizations.
        conn.execute_batch(
            "INSERT INTO organization_members (id, organization_id, user_id, is_active)
                 VALUES ('m1', 'a', 'u1', 1), ('m3', 'a', 'u3', 0);
             INSERT INTO organization_models (id, organization_id, model_id, is_active)
                 VALUES ('l1', 'a', 'gpt-4o', 1), ('l2', 'a', 'claude', 0);",
        )
        .unwrap();
        let orgs = list_orgs(&conn).unwrap();
        let ids: Vec<&str> = orgs.iter().map(|o| o.id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
        assert_eq!((orgs[0].active_members, orgs[0].active_models), (1, 1));
        assert_eq!((orgs[1].active_members, orgs[1].active_models), (0, 0));
    }
}
