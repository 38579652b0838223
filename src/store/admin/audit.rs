//! Reading the permission audit log the triggers write.

use serde::Serialize;

use crate::store::error::StoreError;
use crate::store::sql::{AdminDb, Dialect, Value};

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

/// The newest `limit` permission changes, newest first.
pub fn audit(conn: &(impl AdminDb + ?Sized), limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let snapshot = |text: Option<String>| {
        let value = json_text(text);
        match conn.dialect() {
            Dialect::Sqlite => value,
            Dialect::Postgres => value.map(flags_as_integers),
        }
    };
    conn.query_rows(
        "SELECT id, table_name, action, row_id, organization_id, subject, old_values, new_values, actor, changed_at
         FROM permission_audit_log ORDER BY id DESC LIMIT ?1",
        &[Value::Int(limit)],
    )?
    .into_iter()
    .map(|r| {
        Ok(AuditEntry {
            id: r.int(0)?,
            table_name: r.text(1)?,
            action: r.text(2)?,
            row_id: r.opt_text(3)?,
            organization_id: r.opt_text(4)?,
            subject: r.opt_text(5)?,
            old_values: snapshot(r.opt_text(6)?),
            new_values: snapshot(r.opt_text(7)?),
            actor: r.opt_text(8)?,
            changed_at: r.int(9)?,
        })
    })
    .collect()
}

/// PostgreSQL's trigger snapshots a `boolean` column as `true`/`false`;
/// SQLite's holds 1/0. The log reads the same from either database (a
/// script reading `is_active` must not care which one it runs on).
fn flags_as_integers(mut value: serde_json::Value) -> serde_json::Value {
    if let Some(row) = value.as_object_mut() {
        for field in row.values_mut() {
            if let serde_json::Value::Bool(b) = field {
                *field = serde_json::Value::from(i64::from(*b));
            }
        }
    }
    value
}

/// Trigger output is JSON; anything else (a hand-edited row) is kept as text.
fn json_text(text: Option<String>) -> Option<serde_json::Value> {
    text.map(|t| serde_json::from_str(&t).unwrap_or(serde_json::Value::String(t)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::admin::members::{add_member, remove_member, MemberRole};
    use crate::store::admin::orgs::create_org;
    use crate::store::admin::test_db::db;

    #[test]
    fn newest_first_with_actor_and_row_snapshots() {
        let conn = db();
        create_org(&conn, "o", "O", "t").unwrap();
        add_member(&conn, "o", "u1", MemberRole::Member, "alice").unwrap();
        remove_member(&conn, "o", "u1", "bob").unwrap();
        let log = audit(&conn, 10).unwrap();
        assert_eq!(log.len(), 3);
        assert_eq!(
            (log[2].table_name.as_str(), log[2].actor.as_deref()),
            ("organizations", Some("t"))
        );
        let (update, insert) = (&log[0], &log[1]);
        assert!(update.id > insert.id);
        assert_eq!(
            (update.action.as_str(), update.actor.as_deref()),
            ("UPDATE", Some("bob"))
        );
        assert_eq!(
            (insert.action.as_str(), insert.actor.as_deref()),
            ("INSERT", Some("alice"))
        );
        assert_eq!(update.table_name, "organization_members");
        assert_eq!(update.organization_id.as_deref(), Some("o"));
        assert_eq!(update.subject.as_deref(), Some("u1"));
        assert_eq!(insert.old_values, None);
        assert_eq!(update.old_values.as_ref().unwrap()["is_active"], 1);
        assert_eq!(update.new_values.as_ref().unwrap()["is_active"], 0);
        assert_eq!(audit(&conn, 1).unwrap(), std::slice::from_ref(update));
    }

    /// A change made by another writer (no actor set) is logged with none.
    #[test]
    fn foreign_writes_have_no_actor() {
        let conn = db();
        create_org(&conn, "o", "O", "t").unwrap();
        conn.execute(
            "INSERT INTO organization_models (id, organization_id, model_id, is_active)
             VALUES ('x', 'o', 'gpt-4o', 1)",
            [],
        )
        .unwrap();
        let log = audit(&conn, 10).unwrap();
        assert_eq!(log.len(), 2);
        assert_eq!(log[0].table_name, "organization_models");
        assert_eq!(log[0].actor, None);
    }

    #[test]
    fn hand_edited_values_are_kept_as_text() {
        assert_eq!(
            json_text(Some("not json".into())),
            Some(serde_json::Value::String("not json".into()))
        );
        assert_eq!(
            json_text(Some(r#"{"a":1}"#.into())),
            Some(serde_json::json!({"a": 1}))
        );
        assert_eq!(json_text(None), None);
    }
}
