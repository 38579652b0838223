//! Organizations: create or rename, and the listing with active counts.

use serde::Serialize;

use super::write::{non_empty, require_org, with_actor, WriteOutcome};
use crate::store::access::Mode;
use crate::store::error::StoreError;
use crate::store::sql::{AdminDb, Value};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Organization {
    pub id: String,
    pub name: String,
    pub created_at: Option<i64>,
    pub active_members: i64,
    /// Active exact links.
    pub active_models: i64,
    /// Active pattern and deny rules.
    pub active_rules: i64,
    /// Open WebUI groups bound to the organization (active).
    pub bound_groups: i64,
    pub mode: Mode,
}

/// Creates the organization. Creating it again with the same name changes
/// nothing (scripts may re-run); with another name it is refused, because
/// an id typed twice by mistake must not silently rename an organization
/// (`rename_org` does that on purpose).
pub fn create_org(
    conn: &(impl AdminDb + ?Sized),
    id: &str,
    name: &str,
    actor: &str,
) -> Result<WriteOutcome, StoreError> {
    let id = non_empty(id, "organization id")?;
    let name = non_empty(name, "organization name")?;
    with_actor(conn, actor, |tx| {
        let existing = tx
            .query_opt(
                "SELECT name FROM organizations WHERE id = ?1",
                &[Value::Text(id)],
            )?
            .map(|r| r.text(0))
            .transpose()?;
        match existing {
            Some(old) if old == name => Ok(WriteOutcome::Unchanged),
            Some(old) => Err(StoreError::OrganizationExists {
                id: id.to_string(),
                name: old,
            }),
            None => {
                tx.execute(
                    "INSERT INTO organizations (id, name, created_at) VALUES (?1, ?2, {now})",
                    &[Value::Text(id), Value::Text(name)],
                )?;
                Ok(WriteOutcome::Created)
            }
        }
    })
}

/// Renames an existing organization.
pub fn rename_org(
    conn: &(impl AdminDb + ?Sized),
    id: &str,
    name: &str,
    actor: &str,
) -> Result<WriteOutcome, StoreError> {
    let id = non_empty(id, "organization id")?;
    let name = non_empty(name, "organization name")?;
    with_actor(conn, actor, |tx| {
        require_org(tx, id)?;
        let changed = tx.execute(
            "UPDATE organizations SET name = ?2 WHERE id = ?1 AND name IS DISTINCT FROM ?2",
            &[Value::Text(id), Value::Text(name)],
        )?;
        Ok(if changed > 0 {
            WriteOutcome::Updated
        } else {
            WriteOutcome::Unchanged
        })
    })
}

/// Sets whether the organization's refusals are enforced or only counted.
pub fn set_mode(
    conn: &(impl AdminDb + ?Sized),
    id: &str,
    mode: Mode,
    actor: &str,
) -> Result<WriteOutcome, StoreError> {
    let id = non_empty(id, "organization id")?;
    with_actor(conn, actor, |tx| {
        require_org(tx, id)?;
        let changed = tx.execute(
            "UPDATE organizations SET mode = ?2 WHERE id = ?1 AND mode IS DISTINCT FROM ?2",
            &[Value::Text(id), Value::Text(mode.as_str())],
        )?;
        Ok(if changed > 0 {
            WriteOutcome::Updated
        } else {
            WriteOutcome::Unchanged
        })
    })
}

pub fn list_orgs(conn: &(impl AdminDb + ?Sized)) -> Result<Vec<Organization>, StoreError> {
    // A schema older than rules, bindings and modes lists zeros and
    // `enforce`, which is what such a database means.
    let count = |table: &str| -> Result<String, StoreError> {
        Ok(if conn.table_exists(table)? {
            format!(
                "(SELECT COUNT(*) FROM {table} t WHERE t.organization_id = o.id AND t.is_active = TRUE)"
            )
        } else {
            "0".to_string()
        })
    };
    let has_mode = conn.column_exists("organizations", "mode")?;
    let sql = format!(
        "SELECT o.id, o.name, o.created_at, {}, {}, {}, {}, {}
         FROM organizations o ORDER BY o.id {{binary}}",
        count("organization_members")?,
        count("organization_models")?,
        count("organization_model_rules")?,
        count("organization_groups")?,
        if has_mode { "o.mode" } else { "'enforce'" },
    );
    conn.query_rows(&sql, &[])?
        .into_iter()
        .map(|r| {
            let id = r.text(0)?;
            let mode = r.text(7)?;
            let mode = Mode::parse(&mode).ok_or_else(|| {
                StoreError::Sqlite(format!("organization {id} has mode {mode:?}"))
            })?;
            Ok(Organization {
                name: r.text(1)?,
                created_at: r.opt_int(2)?,
                active_members: r.int(3)?,
                active_models: r.int(4)?,
                active_rules: r.int(5)?,
                bound_groups: r.int(6)?,
                mode,
                id,
            })
        })
        .collect()
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
        // Another name for an existing id is a mistake, not a rename.
        assert_eq!(
            create_org(&conn, "o", "New", "t"),
            Err(StoreError::OrganizationExists {
                id: "o".into(),
                name: "O".into()
            })
        );
        assert_eq!(list_orgs(&conn).unwrap()[0].name, "O");
        assert_eq!(
            rename_org(&conn, "o", "New", "t"),
            Ok(WriteOutcome::Updated)
        );
        assert_eq!(
            rename_org(&conn, "o", "New", "t"),
            Ok(WriteOutcome::Unchanged)
        );
        assert_eq!(
            rename_org(&conn, "nope", "New", "t"),
            Err(StoreError::UnknownOrganization("nope".into()))
        );
        let orgs = list_orgs(&conn).unwrap();
        assert_eq!(orgs.len(), 1);
        assert_eq!(orgs[0].name, "New");
        assert_eq!(orgs[0].mode, Mode::Enforce);
        assert!(orgs[0].created_at.is_some());
    }

    #[test]
    fn modes_are_set_and_every_organization_change_is_audited() {
        let conn = db();
        create_org(&conn, "o", "O", "alice").unwrap();
        assert_eq!(
            set_mode(&conn, "o", Mode::Shadow, "bob"),
            Ok(WriteOutcome::Updated)
        );
        assert_eq!(
            set_mode(&conn, "o", Mode::Shadow, "bob"),
            Ok(WriteOutcome::Unchanged)
        );
        assert_eq!(list_orgs(&conn).unwrap()[0].mode, Mode::Shadow);
        rename_org(&conn, "o", "Renamed", "carol").unwrap();
        let row = |action: &str, subject: &str, actor: &str| {
            (
                "organizations".to_string(),
                action.to_string(),
                subject.to_string(),
                Some(actor.to_string()),
            )
        };
        assert_eq!(
            crate::store::admin::test_db::audit_actors(&conn),
            [
                row("INSERT", "O", "alice"),
                row("UPDATE", "O", "bob"),
                row("UPDATE", "Renamed", "carol")
            ]
        );
        let log = crate::store::admin::audit(&conn, 1).unwrap();
        assert_eq!(log[0].organization_id.as_deref(), Some("o"));
        assert_eq!(log[0].old_values.as_ref().unwrap()["name"], "O");
        assert_eq!(log[0].new_values.as_ref().unwrap()["mode"], "shadow");
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
