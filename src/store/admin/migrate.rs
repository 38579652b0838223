//! The seed's one-shot migration to organizations, and the two linking
//! steps `bootstrap` reuses.

use rusqlite::{Connection, Transaction, TransactionBehavior};
use serde::Serialize;

use super::write::{clear_actor, non_empty, set_actor};
use crate::store::error::StoreError;
use crate::store::schema::{create_schema, table_exists};

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
    // Not `with_actor`: a dry run must roll back after counting.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::admin::members::list_members;
    use crate::store::admin::models::{disable_model, list_models};
    use crate::store::admin::orgs::list_orgs;
    use crate::store::admin::test_db::{audit_actors, db};

    fn count(conn: &Connection, table: &str) -> i64 {
        conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn links_non_pending_users_and_base_models_as_they_are() {
        let conn = db();
        let r = migrate(&conn, "mai", "MAI", "ops", false).unwrap();
        assert_eq!(
            r,
            MigrateReport {
                organization_id: "mai".into(),
                dry_run: false,
                users_linked: 2,
                models_linked: 3,
                members_total: 2,
                models_total: 3,
                user_table: true,
                model_table: true,
            }
        );
        let members: Vec<(String, Option<String>)> = list_members(&conn, "mai")
            .unwrap()
            .into_iter()
            .map(|m| (m.user_id, m.role))
            .collect();
        assert_eq!(
            members,
            [
                ("u1".to_string(), Some("member".to_string())),
                ("u3".to_string(), Some("admin".to_string()))
            ]
        );
        let models: Vec<(String, bool)> = list_models(&conn, "mai")
            .unwrap()
            .into_iter()
            .map(|m| (m.model_id, m.is_active))
            .collect();
        assert_eq!(
            models,
            [
                ("claude".to_string(), true),
                ("gpt-4o".to_string(), true),
                ("old".to_string(), false)
            ]
        );
        let actors = audit_actors(&conn);
        // The organization, two memberships, three links.
        assert_eq!(actors.len(), 6);
        assert!(actors.iter().all(|a| a.3.as_deref() == Some("ops")));
    }

    #[test]
    fn a_dry_run_counts_then_rolls_everything_back() {
        let conn = db();
        let before = (
            count(&conn, "organizations"),
            count(&conn, "permission_audit_log"),
        );
        let r = migrate(&conn, "mai", "MAI", "ops", true).unwrap();
        assert!(r.dry_run);
        assert_eq!((r.users_linked, r.models_linked), (2, 3));
        assert_eq!((r.members_total, r.models_total), (2, 3));
        assert_eq!(
            (
                count(&conn, "organizations"),
                count(&conn, "permission_audit_log")
            ),
            before
        );
        assert_eq!(count(&conn, "organization_members"), 0);
        assert_eq!(count(&conn, "organization_models"), 0);
    }

    /// A dry run against a file without our schema leaves no schema behind.
    #[test]
    fn a_dry_run_creates_no_schema() {
        let conn = Connection::open_in_memory().unwrap();
        crate::store::webui_fixture::create_open_webui_tables(&conn).unwrap();
        migrate(&conn, "mai", "MAI", "ops", true).unwrap();
        assert!(!table_exists(&conn, "organizations").unwrap());
    }

    #[test]
    fn a_rerun_is_a_no_op_that_keeps_revocations() {
        let conn = db();
        migrate(&conn, "mai", "MAI", "ops", false).unwrap();
        disable_model(&conn, "mai", "gpt-4o", "ops").unwrap();
        let r = migrate(&conn, "mai", "Renamed", "ops", false).unwrap();
        assert_eq!((r.users_linked, r.models_linked), (0, 0));
        assert_eq!((r.members_total, r.models_total), (2, 3));
        assert_eq!(list_orgs(&conn).unwrap()[0].name, "MAI");
        let gpt = list_models(&conn, "mai")
            .unwrap()
            .into_iter()
            .find(|m| m.model_id == "gpt-4o")
            .unwrap();
        assert!(!gpt.is_active);
    }

    #[test]
    fn without_open_webui_tables_nothing_is_linked() {
        let conn = Connection::open_in_memory().unwrap();
        let r = migrate(&conn, "mai", "MAI", "ops", false).unwrap();
        assert!(!r.user_table && !r.model_table);
        assert_eq!((r.users_linked, r.models_linked), (0, 0));
        assert_eq!(list_orgs(&conn).unwrap().len(), 1);
    }

    #[test]
    fn blank_ids_are_refused() {
        let conn = db();
        assert_eq!(
            migrate(&conn, "", "MAI", "ops", false),
            Err(StoreError::EmptyId("organization id"))
        );
        assert_eq!(
            migrate(&conn, "mai", " ", "ops", false),
            Err(StoreError::EmptyId("organization name"))
        );
    }
}
