//! An organization's permitted models: enable (or re-activate), disable,
//! list.

use rusqlite::{Connection, OptionalExtension};
use serde::Serialize;

use super::write::{deactivate, non_empty, require_org, with_actor, WriteOutcome};
use crate::store::error::StoreError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrgModel {
    pub id: String,
    pub organization_id: String,
    pub model_id: String,
    pub is_active: bool,
    pub created_at: Option<i64>,
    pub updated_at: Option<i64>,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::admin::test_db::{audit_actors, db_with_org as with_org};

    #[test]
    fn enable_is_created_then_unchanged() {
        let conn = with_org();
        assert_eq!(
            enable_model(&conn, "o", "gpt-4o", "t"),
            Ok(WriteOutcome::Created)
        );
        assert_eq!(
            enable_model(&conn, "o", "gpt-4o", "t"),
            Ok(WriteOutcome::Unchanged)
        );
        let models = list_models(&conn, "o").unwrap();
        assert_eq!(models.len(), 1);
        assert!(models[0].is_active);
        assert_eq!(models[0].model_id, "gpt-4o");
    }

    /// Model ids are not checked against Open WebUI's `model` table: a
    /// link may name a model an upstream serves without a `model` row.
    #[test]
    fn any_model_id_may_be_linked() {
        let conn = with_org();
        assert_eq!(
            enable_model(&conn, "o", "not-in-the-catalogue", "t"),
            Ok(WriteOutcome::Created)
        );
    }

    #[test]
    fn disable_keeps_the_row_and_enable_reactivates_it() {
        let conn = with_org();
        enable_model(&conn, "o", "gpt-4o", "t").unwrap();
        let id = list_models(&conn, "o").unwrap()[0].id.clone();
        assert_eq!(
            disable_model(&conn, "o", "gpt-4o", "t"),
            Ok(WriteOutcome::Deactivated)
        );
        assert_eq!(
            disable_model(&conn, "o", "gpt-4o", "t"),
            Ok(WriteOutcome::Unchanged)
        );
        let models = list_models(&conn, "o").unwrap();
        assert_eq!(models.len(), 1);
        assert!(!models[0].is_active);
        assert_eq!(
            enable_model(&conn, "o", "gpt-4o", "t"),
            Ok(WriteOutcome::Reactivated)
        );
        let models = list_models(&conn, "o").unwrap();
        assert!(models[0].is_active);
        assert_eq!(models[0].id, id);
    }

    #[test]
    fn disabling_an_unlinked_model_is_not_found() {
        let conn = with_org();
        assert_eq!(
            disable_model(&conn, "o", "gpt-4o", "t"),
            Ok(WriteOutcome::NotFound)
        );
    }

    #[test]
    fn unknown_organization_and_blank_model_are_refused() {
        let conn = with_org();
        assert_eq!(
            enable_model(&conn, "nope", "gpt-4o", "t"),
            Err(StoreError::UnknownOrganization("nope".into()))
        );
        assert_eq!(
            disable_model(&conn, "nope", "gpt-4o", "t"),
            Err(StoreError::UnknownOrganization("nope".into()))
        );
        assert_eq!(
            list_models(&conn, "nope"),
            Err(StoreError::UnknownOrganization("nope".into()))
        );
        assert_eq!(
            enable_model(&conn, "o", "  ", "t"),
            Err(StoreError::EmptyId("model id"))
        );
    }

    #[test]
    fn every_change_is_audited_with_its_actor() {
        let conn = with_org();
        enable_model(&conn, "o", "claude", "alice").unwrap();
        disable_model(&conn, "o", "claude", "bob").unwrap();
        enable_model(&conn, "o", "claude", "carol").unwrap();
        let row = |action: &str, actor: &str| {
            (
                "organization_models".to_string(),
                action.to_string(),
                "claude".to_string(),
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
}
