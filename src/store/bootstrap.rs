//! Start-up bootstrap (seed 003): make sure the deployment's organization
//! exists and has its models, and in development mode every user.
//!
//! Only rows that do not exist yet are inserted (`INSERT OR IGNORE`): a model
//! or member an operator deactivated stays deactivated across restarts.

use serde::Serialize;

use super::admin::{link_all_users, link_base_models, with_actor};
use super::error::StoreError;
use super::sql::{AdminDb, Value};

/// Which models the organization gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSelection {
    /// Every base model (`base_model_id IS NULL`) in Open WebUI's `model` table.
    AllBaseModels,
    /// Exactly these ids.
    List(Vec<String>),
}

impl ModelSelection {
    /// `["*"]` (or an empty list) means every base model, as the seed did.
    pub fn from_config(models: &[String]) -> ModelSelection {
        if models.is_empty() || models.iter().any(|m| m == "*") {
            ModelSelection::AllBaseModels
        } else {
            ModelSelection::List(models.to_vec())
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BootstrapReport {
    pub organization_id: String,
    pub organization_created: bool,
    pub models_linked: usize,
    /// Development mode (explicit: `admin.development_mode`).
    pub development: bool,
    pub members_added: usize,
}

/// What the seed took for a development organization (its id or name
/// contains "dev"; `mai_client_devoteam` too). No longer acted on: only
/// used to warn that development mode is now explicit.
pub fn looks_like_development(org_id: &str, org_name: &str) -> bool {
    org_id.to_ascii_lowercase().contains("dev") || org_name.to_ascii_lowercase().contains("dev")
}

/// Idempotent: a second run with the same input inserts nothing.
pub fn bootstrap(
    conn: &(impl AdminDb + ?Sized),
    org_id: &str,
    org_name: &str,
    models: &ModelSelection,
    development: bool,
    actor: &str,
) -> Result<BootstrapReport, StoreError> {
    let org_id = org_id.trim();
    if org_id.is_empty() {
        return Err(StoreError::EmptyId("organization id"));
    }
    let org_name = if org_name.trim().is_empty() {
        org_id
    } else {
        org_name.trim()
    };
    with_actor(conn, actor, |tx| {
        let organization_created = tx.execute(
            "INSERT INTO organizations (id, name, created_at) VALUES (?1, ?2, {now})
             ON CONFLICT DO NOTHING",
            &[Value::Text(org_id), Value::Text(org_name)],
        )? > 0;
        let link = "INSERT INTO organization_models
                (id, organization_id, model_id, is_active, created_at, updated_at)
             VALUES ('orgmod_' || ?1 || '_' || ?2, ?1, ?2, TRUE, {now}, {now})
             ON CONFLICT DO NOTHING";
        let models_linked = match models {
            ModelSelection::List(ids) => {
                let mut n = 0;
                for id in ids.iter().map(|m| m.trim()).filter(|m| !m.is_empty()) {
                    n += tx.execute(link, &[Value::Text(org_id), Value::Text(id)])?;
                }
                usize::try_from(n).unwrap_or(usize::MAX)
            }
            ModelSelection::AllBaseModels => link_base_models(tx, org_id)?,
        };
        let members_added = if development {
            link_all_users(tx, org_id)?
        } else {
            0
        };
        Ok(BootstrapReport {
            organization_id: org_id.to_owned(),
            organization_created,
            models_linked,
            development,
            members_added,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::admin::{disable_model, list_members, list_models, open_writer};
    use crate::store::schema::ensure_schema;
    use crate::store::webui_fixture::create_open_webui_tables;
    use rusqlite::Connection;

    fn owui() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let conn = open_writer(&dir.path().join("webui.db")).unwrap();
        create_open_webui_tables(&conn).unwrap();
        conn.execute_batch(
            "INSERT INTO user (id, email, role, name)
                 VALUES ('u1','a@x','user','A'), ('u2','b@x','pending','B'), ('u3','c@x','admin','C');
             INSERT INTO model (id, user_id, base_model_id, name, params, meta, is_active)
                 VALUES ('gpt-4o', 'u3', NULL, 'GPT', '{}', '{}', 1),
                        ('claude', 'u3', NULL, 'Claude', '{}', '{}', 1),
                        ('helper', 'u3', 'gpt-4o', 'Helper', '{}', '{}', 1);",
        )
        .unwrap();
        ensure_schema(&conn).unwrap();
        (dir, conn)
    }

    #[test]
    fn links_base_models_once_and_keeps_revocations() {
        let (_d, conn) = owui();
        let r = bootstrap(
            &conn,
            "mai_client_acme",
            "Acme",
            &ModelSelection::AllBaseModels,
            false,
            "bootstrap",
        )
        .unwrap();
        assert!(r.organization_created);
        assert_eq!(r.models_linked, 2, "presets are not linked");
        assert!(!r.development);
        assert_eq!(r.members_added, 0);
        disable_model(&conn, "mai_client_acme", "claude", "ops").unwrap();
        let again = bootstrap(
            &conn,
            "mai_client_acme",
            "Acme",
            &ModelSelection::AllBaseModels,
            false,
            "bootstrap",
        )
        .unwrap();
        assert!(!again.organization_created);
        assert_eq!(again.models_linked, 0);
        let models = list_models(&conn, "mai_client_acme").unwrap();
        let claude = models.iter().find(|m| m.model_id == "claude").unwrap();
        assert!(
            !claude.is_active,
            "an operator's revocation survives a restart"
        );
    }

    #[test]
    fn development_mode_is_explicit() {
        // The seed's rule took `mai_client_devoteam` for a development
        // organization and added every user: a name is no switch.
        let (_d, conn) = owui();
        let list = ModelSelection::from_config(&["gpt-4o".into()]);
        let r = bootstrap(
            &conn,
            "mai_client_devoteam",
            "Devoteam",
            &list,
            false,
            "bootstrap",
        )
        .unwrap();
        assert!(!r.development);
        assert_eq!(r.members_added, 0);
        assert!(list_members(&conn, "mai_client_devoteam")
            .unwrap()
            .is_empty());
    }

    #[test]
    fn development_mode_adds_every_non_pending_user() {
        let (_d, conn) = owui();
        let list = ModelSelection::from_config(&["gpt-4o".into()]);
        let r = bootstrap(&conn, "mai_dev", "", &list, true, "bootstrap").unwrap();
        assert!(r.development);
        assert_eq!(r.models_linked, 1);
        assert_eq!(r.members_added, 2);
        let members = list_members(&conn, "mai_dev").unwrap();
        assert!(
            members.iter().all(|m| m.user_id != "u2"),
            "pending users are left out"
        );
        let audited: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM permission_audit_log WHERE actor = 'bootstrap'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        // The organization and its two members.
        assert_eq!(audited, 3 + 1);
    }

    #[test]
    fn selection_from_config() {
        assert_eq!(
            ModelSelection::from_config(&[]),
            ModelSelection::AllBaseModels
        );
        assert_eq!(
            ModelSelection::from_config(&["*".into()]),
            ModelSelection::AllBaseModels
        );
        assert_eq!(
            ModelSelection::from_config(&["a".into()]),
            ModelSelection::List(vec!["a".into()])
        );
        assert!(looks_like_development("x", "Dev Team"));
        assert!(!looks_like_development("acme", "Acme"));
    }
}
