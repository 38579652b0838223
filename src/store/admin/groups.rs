//! Group bindings: the members of an Open WebUI group (which Open WebUI can
//! sync from an SSO provider) are members of the organization, with no
//! per-user rows to keep in step. The gate reads Open WebUI's
//! `group_member` live, so a user added to or removed from the group is in
//! or out of the organization on the next change the watcher sees.

use serde::Serialize;

use super::write::{non_empty, only_match, require_org, with_actor, WriteOutcome};
use crate::store::error::StoreError;
use crate::store::sql::{AdminDb, Value};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupBinding {
    pub organization_id: String,
    pub group_id: String,
    /// Open WebUI's name for the group; `None` once the group is deleted.
    pub group_name: Option<String>,
    /// Current members of the group in Open WebUI.
    pub members: i64,
    pub is_active: bool,
    pub created_at: Option<i64>,
}

/// The group id for `group`: an id, or a name exactly one group has.
pub fn resolve_group(conn: &(impl AdminDb + ?Sized), group: &str) -> Result<String, StoreError> {
    let group = non_empty(group, "group id or name")?;
    if !conn.table_exists("group")? {
        return Err(StoreError::Schema(
            "Open WebUI's \"group\" table is absent, so there are no groups to bind".into(),
        ));
    }
    let key = [Value::Text(group)];
    if conn.exists("SELECT 1 FROM \"group\" WHERE id = ?1", &key)? {
        return Ok(group.to_string());
    }
    only_match(
        conn,
        "SELECT id FROM \"group\" WHERE name = ?1 ORDER BY id {binary}",
        group,
        || StoreError::UnknownGroup(group.to_string()),
        |ids| StoreError::AmbiguousGroup {
            name: group.to_string(),
            ids,
        },
    )
}

/// Binds an Open WebUI group (id or unique name) to the organization.
/// Returns the outcome and the group id it resolved to.
pub fn bind_group(
    conn: &(impl AdminDb + ?Sized),
    org: &str,
    group: &str,
    actor: &str,
) -> Result<(WriteOutcome, String), StoreError> {
    let org = non_empty(org, "organization id")?;
    with_actor(conn, actor, |tx| {
        require_org(tx, org)?;
        let group_id = resolve_group(tx, group)?;
        let keys = [Value::Text(org), Value::Text(&group_id)];
        let active = tx
            .query_opt(
                "SELECT is_active FROM organization_groups WHERE organization_id = ?1 AND group_id = ?2",
                &keys,
            )?
            .map(|r| r.flag(0))
            .transpose()?;
        let outcome = match active {
            None => {
                let id = format!("orggrp_{}", uuid::Uuid::new_v4().simple());
                tx.execute(
                    "INSERT INTO organization_groups (id, organization_id, group_id, is_active, created_at, updated_at)
                     VALUES (?1, ?2, ?3, TRUE, {now}, {now})",
                    &[Value::Text(&id), Value::Text(org), Value::Text(&group_id)],
                )?;
                WriteOutcome::Created
            }
            Some(true) => WriteOutcome::Unchanged,
            Some(false) => {
                tx.execute(
                    "UPDATE organization_groups SET is_active = TRUE, updated_at = {now}
                     WHERE organization_id = ?1 AND group_id = ?2",
                    &keys,
                )?;
                WriteOutcome::Reactivated
            }
        };
        Ok((outcome, group_id))
    })
}

/// Removes a binding (deactivates it). The group may be named by id, or by
/// name while it still exists; a binding whose group was deleted in Open
/// WebUI is removed by its id.
pub fn unbind_group(
    conn: &(impl AdminDb + ?Sized),
    org: &str,
    group: &str,
    actor: &str,
) -> Result<(WriteOutcome, String), StoreError> {
    let org = non_empty(org, "organization id")?;
    let group = non_empty(group, "group id or name")?;
    const BOUND: &str =
        "SELECT 1 FROM organization_groups WHERE organization_id = ?1 AND group_id = ?2";
    with_actor(conn, actor, |tx| {
        require_org(tx, org)?;
        let bound_by_id = tx.exists(BOUND, &[Value::Text(org), Value::Text(group)])?;
        let group_id = if bound_by_id {
            group.to_string()
        } else {
            resolve_group(tx, group)?
        };
        let keys = [Value::Text(org), Value::Text(&group_id)];
        let changed = tx.execute(
            "UPDATE organization_groups SET is_active = FALSE, updated_at = {now}
             WHERE organization_id = ?1 AND group_id = ?2 AND is_active <> FALSE",
            &keys,
        )?;
        let outcome = if changed > 0 {
            WriteOutcome::Deactivated
        } else if bound_by_id || tx.exists(BOUND, &keys)? {
            WriteOutcome::Unchanged
        } else {
            WriteOutcome::NotFound
        };
        Ok((outcome, group_id))
    })
}

/// The organization's bindings, active or not, with Open WebUI's group name
/// and member count when those tables exist.
pub fn list_groups(
    conn: &(impl AdminDb + ?Sized),
    org: &str,
) -> Result<Vec<GroupBinding>, StoreError> {
    let org = non_empty(org, "organization id")?;
    require_org(conn, org)?;
    let webui = conn.table_exists("group")? && conn.table_exists("group_member")?;
    let sql = if webui {
        "SELECT b.group_id, g.name,
                (SELECT COUNT(*) FROM group_member gm WHERE gm.group_id = b.group_id),
                b.is_active, b.created_at
         FROM organization_groups b LEFT JOIN \"group\" g ON g.id = b.group_id
         WHERE b.organization_id = ?1 ORDER BY b.group_id {binary}"
    } else {
        "SELECT b.group_id, NULL, 0, b.is_active, b.created_at
         FROM organization_groups b WHERE b.organization_id = ?1 ORDER BY b.group_id {binary}"
    };
    conn.query_rows(sql, &[Value::Text(org)])?
        .into_iter()
        .map(|r| {
            Ok(GroupBinding {
                organization_id: org.to_string(),
                group_id: r.text(0)?,
                group_name: r.opt_text(1)?,
                members: r.int(2)?,
                is_active: r.flag(3)?,
                created_at: r.opt_int(4)?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::admin::test_db::{audit_actors, db_with_org};
    use rusqlite::Connection;

    fn with_groups() -> Connection {
        let conn = db_with_org();
        conn.execute_batch(
            "INSERT INTO \"group\" (id, user_id, name) VALUES
                 ('g1', 'u3', 'engineering'), ('g2', 'u3', 'twins'), ('g3', 'u3', 'twins');
             INSERT INTO group_member (id, group_id, user_id) VALUES
                 ('gm1', 'g1', 'u1'), ('gm2', 'g1', 'u2');",
        )
        .unwrap();
        conn
    }

    #[test]
    fn bind_by_name_or_id_then_unbind() {
        let conn = with_groups();
        assert_eq!(
            bind_group(&conn, "o", "engineering", "alice"),
            Ok((WriteOutcome::Created, "g1".to_string()))
        );
        assert_eq!(
            bind_group(&conn, "o", "g1", "alice"),
            Ok((WriteOutcome::Unchanged, "g1".to_string()))
        );
        let listed = list_groups(&conn, "o").unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].group_name.as_deref(), Some("engineering"));
        assert_eq!(listed[0].members, 2);
        assert!(listed[0].is_active);
        assert_eq!(
            unbind_group(&conn, "o", "engineering", "bob"),
            Ok((WriteOutcome::Deactivated, "g1".to_string()))
        );
        assert_eq!(
            unbind_group(&conn, "o", "g1", "bob"),
            Ok((WriteOutcome::Unchanged, "g1".to_string()))
        );
        assert_eq!(
            bind_group(&conn, "o", "g1", "carol"),
            Ok((WriteOutcome::Reactivated, "g1".to_string()))
        );
        let row = |action: &str, actor: &str| {
            (
                "organization_groups".to_string(),
                action.to_string(),
                "g1".to_string(),
                Some(actor.to_string()),
            )
        };
        assert_eq!(
            audit_actors(&conn),
            [
                row("INSERT", "alice"),
                row("UPDATE", "bob"),
                row("UPDATE", "carol")
            ]
        );
    }

    #[test]
    fn unknown_ambiguous_and_deleted_groups() {
        let conn = with_groups();
        assert_eq!(
            bind_group(&conn, "o", "nobody", "t"),
            Err(StoreError::UnknownGroup("nobody".into()))
        );
        assert_eq!(
            bind_group(&conn, "o", "twins", "t"),
            Err(StoreError::AmbiguousGroup {
                name: "twins".into(),
                ids: vec!["g2".into(), "g3".into()]
            })
        );
        assert_eq!(
            unbind_group(&conn, "o", "g9", "t"),
            Err(StoreError::UnknownGroup("g9".into()))
        );
        bind_group(&conn, "o", "g2", "t").unwrap();
        // Deleted in Open WebUI: still listed and removable by id.
        conn.execute("DELETE FROM \"group\" WHERE id = 'g2'", [])
            .unwrap();
        assert_eq!(list_groups(&conn, "o").unwrap()[0].group_name, None);
        assert_eq!(
            unbind_group(&conn, "o", "g2", "t"),
            Ok((WriteOutcome::Deactivated, "g2".to_string()))
        );
        assert_eq!(
            bind_group(&conn, "nope", "g1", "t"),
            Err(StoreError::UnknownOrganization("nope".into()))
        );
    }
}
