//! The seed's one-shot migration to organizations, and the two linking
//! steps `bootstrap` reuses.
//!
//! The models come from Open WebUI's `model` table when it has base models.
//! It often has none: Open WebUI keeps a row only for a model an admin
//! edited, and for presets. Then they come from the ids the gate has seen
//! the upstream offer (`store::known`). A migration that would leave the
//! organization without any model (its members could use nothing) is
//! refused unless the operator allows it.

use serde::Serialize;

use super::write::non_empty;
use crate::store::error::StoreError;
use crate::store::sql::{AdminDb, Value, WriteTx};

/// How `migrate` runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MigrateOptions {
    /// Do everything, count, and roll back.
    pub dry_run: bool,
    /// Go ahead even when the organization would have no model at all.
    pub allow_empty: bool,
}

/// Where `migrate` takes the models it links from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelSource {
    /// Open WebUI's `model` table has base models: those, as the seed did.
    ModelTable,
    /// It has none (or is absent): the known model ids (the lists the gate
    /// recorded and the base ids presets name), presets left out.
    KnownModels,
}

/// What `migrate` would link models from, before it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ModelPlan {
    pub source: ModelSource,
    /// Distinct ids it would link (some maybe linked already).
    pub candidates: i64,
    /// Links the organization has already, active or not.
    pub existing: i64,
}

impl ModelPlan {
    /// The organization would end up with no model at all.
    pub fn leaves_no_models(&self) -> bool {
        self.candidates == 0 && self.existing == 0
    }
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
    /// Where the linked models came from.
    pub model_source: ModelSource,
}

/// The seed's `migrate_to_organizations`: in ONE transaction, create the
/// schema and the organization, link every non-pending user and every base
/// model (`base_model_id IS NULL`, link active as the model is; or, without
/// any, every known base id, active), then count. `INSERT OR IGNORE` makes
/// a re-run a no-op that also leaves earlier revocations alone. A dry run
/// does all of it and rolls back. Refused with [`StoreError::NoModels`],
/// before anything is written, when the organization would have no model
/// and `allow_empty` is not set.
pub fn migrate(
    conn: &(impl AdminDb + ?Sized),
    org_id: &str,
    org_name: &str,
    actor: &str,
    options: MigrateOptions,
) -> Result<MigrateReport, StoreError> {
    let MigrateOptions {
        dry_run,
        allow_empty,
    } = options;
    let org_id = non_empty(org_id, "organization id")?;
    let org_name = non_empty(org_name, "organization name")?;
    // Not `with_actor`: a dry run must roll back after counting.
    let tx = WriteTx::begin(conn)?;
    conn.create_schema()?;
    let plan = model_plan(conn, org_id)?;
    if plan.leaves_no_models() && !allow_empty {
        // The transaction rolls back as it drops: not even the schema stays.
        return Err(StoreError::NoModels(org_id.to_string()));
    }
    conn.set_actor(actor)?;
    conn.execute(
        "INSERT INTO organizations (id, name, created_at) VALUES (?1, ?2, {now})
         ON CONFLICT DO NOTHING",
        &[Value::Text(org_id), Value::Text(org_name)],
    )?;
    let user_table = conn.table_exists("user")?;
    let users_linked = link_all_users(conn, org_id)?;
    let model_table = conn.table_exists("model")?;
    let models_linked = match plan.source {
        ModelSource::ModelTable => link_base_models(conn, org_id)?,
        ModelSource::KnownModels => link_known_models(conn, org_id)?,
    };
    let key = [Value::Text(org_id)];
    let members_total = conn.query_int(
        "SELECT COUNT(*) FROM organization_members WHERE organization_id = ?1",
        &key,
    )?;
    let models_total = conn.query_int(
        "SELECT COUNT(*) FROM organization_models WHERE organization_id = ?1",
        &key,
    )?;
    conn.clear_actor()?;
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
        model_source: plan.source,
    })
}

fn rows(changed: u64) -> usize {
    usize::try_from(changed).unwrap_or(usize::MAX)
}

/// Adds every non-pending Open WebUI user to `org` (admins as admins),
/// leaving existing memberships as they are, deactivated ones included.
/// 0 without a `user` table.
pub(crate) fn link_all_users(tx: &(impl AdminDb + ?Sized), org: &str) -> Result<usize, StoreError> {
    if !tx.table_exists("user")? {
        return Ok(0);
    }
    tx.execute(
        "INSERT INTO organization_members (id, organization_id, user_id, role, is_active, joined_at)
         SELECT 'om_' || u.id || '_' || ?1, ?1, u.id,
                CASE WHEN u.role = 'admin' THEN 'admin' ELSE 'member' END,
                TRUE, {now}
         FROM \"user\" u WHERE u.role IS DISTINCT FROM 'pending' AND u.id IS NOT NULL
         ON CONFLICT DO NOTHING",
        &[Value::Text(org)],
    )
    .map(rows)
}

/// Links every base model (`base_model_id IS NULL`) of Open WebUI's `model`
/// table to `org`, active as the model is, leaving existing links as they
/// are. 0 without a `model` table.
pub(crate) fn link_base_models(
    tx: &(impl AdminDb + ?Sized),
    org: &str,
) -> Result<usize, StoreError> {
    if !tx.table_exists("model")? {
        return Ok(0);
    }
    tx.execute(
        "INSERT INTO organization_models (id, organization_id, model_id, is_active, created_at, updated_at)
         SELECT 'orgmod_' || ?1 || '_' || m.id, ?1, m.id,
                CASE WHEN m.is_active = FALSE THEN FALSE ELSE TRUE END,
                {now}, {now}
         FROM model m WHERE m.base_model_id IS NULL AND m.id IS NOT NULL
         ON CONFLICT DO NOTHING",
        &[Value::Text(org)],
    )
    .map(rows)
}

/// The known base ids: every id the gate recorded and every base a preset
/// names, less the presets themselves (rows with a `base_model_id`: they
/// follow their base). One column, `model_id`; `None` when neither table
/// exists.
fn known_base_ids_sql(model_table: bool, known_table: bool) -> Option<&'static str> {
    match (model_table, known_table) {
        (true, true) => Some(
            "SELECT model_id AS model_id FROM known_models
             UNION SELECT base_model_id FROM model WHERE base_model_id IS NOT NULL
             EXCEPT SELECT id FROM model WHERE base_model_id IS NOT NULL",
        ),
        (true, false) => Some(
            "SELECT base_model_id AS model_id FROM model WHERE base_model_id IS NOT NULL
             EXCEPT SELECT id FROM model WHERE base_model_id IS NOT NULL",
        ),
        (false, true) => Some("SELECT DISTINCT model_id AS model_id FROM known_models"),
        (false, false) => None,
    }
}

/// Where `migrate` would take `org`'s models from and how many there are.
/// Absent tables count as empty, so this also answers before the schema
/// exists (`ops::migrate` asks before taking its backup).
pub fn model_plan(conn: &(impl AdminDb + ?Sized), org: &str) -> Result<ModelPlan, StoreError> {
    let model_table = conn.table_exists("model")?;
    let base_rows = if model_table {
        conn.query_int(
            "SELECT COUNT(*) FROM model WHERE base_model_id IS NULL",
            &[],
        )?
    } else {
        0
    };
    let (source, candidates) = if base_rows > 0 {
        (ModelSource::ModelTable, base_rows)
    } else {
        let known = known_base_ids_sql(model_table, conn.table_exists("known_models")?);
        let candidates = match known {
            Some(ids) => conn.query_int(&format!("SELECT COUNT(*) FROM ({ids}) k"), &[])?,
            None => 0,
        };
        (ModelSource::KnownModels, candidates)
    };
    let existing = if conn.table_exists("organization_models")? {
        conn.query_int(
            "SELECT COUNT(*) FROM organization_models WHERE organization_id = ?1",
            &[Value::Text(org)],
        )?
    } else {
        0
    };
    Ok(ModelPlan {
        source,
        candidates,
        existing,
    })
}

/// Links every known base id to `org`, active, leaving existing links as
/// they are: `migrate`'s source when Open WebUI's `model` table has no
/// base models.
fn link_known_models(tx: &(impl AdminDb + ?Sized), org: &str) -> Result<usize, StoreError> {
    let known = known_base_ids_sql(tx.table_exists("model")?, tx.table_exists("known_models")?);
    let Some(ids) = known else {
        return Ok(0);
    };
    tx.execute(
        &format!(
            "INSERT INTO organization_models (id, organization_id, model_id, is_active, created_at, updated_at)
             SELECT 'orgmod_' || ?1 || '_' || k.model_id, ?1, k.model_id, TRUE, {{now}}, {{now}}
             FROM ({ids}) k WHERE k.model_id IS NOT NULL
             ON CONFLICT DO NOTHING"
        ),
        &[Value::Text(org)],
    )
    .map(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::admin::members::list_members;
    use crate::store::admin::models::{disable_model, list_models};
    use crate::store::admin::orgs::list_orgs;
    use crate::store::admin::test_db::{audit_actors, db};
    use crate::store::schema::table_exists;
    use rusqlite::Connection;

    const RUN: MigrateOptions = MigrateOptions {
        dry_run: false,
        allow_empty: false,
    };
    const DRY_RUN: MigrateOptions = MigrateOptions {
        dry_run: true,
        allow_empty: false,
    };
    const ALLOW_EMPTY: MigrateOptions = MigrateOptions {
        dry_run: false,
        allow_empty: true,
    };

    fn count(conn: &Connection, table: &str) -> i64 {
        conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn links_non_pending_users_and_base_models_as_they_are() {
        let conn = db();
        let r = migrate(&conn, "mai", "MAI", "ops", RUN).unwrap();
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
                model_source: ModelSource::ModelTable,
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
        let r = migrate(&conn, "mai", "MAI", "ops", DRY_RUN).unwrap();
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
        let options = MigrateOptions {
            dry_run: true,
            allow_empty: true,
        };
        migrate(&conn, "mai", "MAI", "ops", options).unwrap();
        assert!(!table_exists(&conn, "organizations").unwrap());
    }

    #[test]
    fn a_rerun_is_a_no_op_that_keeps_revocations() {
        let conn = db();
        migrate(&conn, "mai", "MAI", "ops", RUN).unwrap();
        disable_model(&conn, "mai", "gpt-4o", "ops").unwrap();
        let r = migrate(&conn, "mai", "Renamed", "ops", RUN).unwrap();
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
    fn without_open_webui_tables_nothing_is_linked_when_allowed() {
        let conn = Connection::open_in_memory().unwrap();
        let r = migrate(&conn, "mai", "MAI", "ops", ALLOW_EMPTY).unwrap();
        assert!(!r.user_table && !r.model_table);
        assert_eq!((r.users_linked, r.models_linked), (0, 0));
        assert_eq!(list_orgs(&conn).unwrap().len(), 1);
    }

    /// Open WebUI's `model` table with no base model, the gate having seen
    /// none either: the organization would have nothing, so it is refused,
    /// and nothing is written (not even the schema).
    #[test]
    fn an_empty_link_set_is_refused() {
        let conn = Connection::open_in_memory().unwrap();
        crate::store::webui_fixture::create_open_webui_tables(&conn).unwrap();
        conn.execute_batch(
            "INSERT INTO user (id, name, email, role) VALUES ('u1', 'u1', 'u1@x', 'user');",
        )
        .unwrap();
        for options in [RUN, DRY_RUN] {
            assert_eq!(
                migrate(&conn, "mai", "MAI", "ops", options),
                Err(StoreError::NoModels("mai".into()))
            );
        }
        assert!(!table_exists(&conn, "organizations").unwrap());
        let r = migrate(&conn, "mai", "MAI", "ops", ALLOW_EMPTY).unwrap();
        assert_eq!((r.users_linked, r.models_linked, r.models_total), (1, 0, 0));
        assert_eq!(r.model_source, ModelSource::KnownModels);
    }

    /// No base model in Open WebUI's `model` table: the ids the gate
    /// recorded are linked, with the bases presets name, never a preset.
    #[test]
    fn without_base_models_the_known_base_ids_are_linked() {
        use crate::store::known::{record_known, KnownSource};
        let conn = Connection::open_in_memory().unwrap();
        crate::store::webui_fixture::create_open_webui_tables(&conn).unwrap();
        crate::store::schema::ensure_schema(&conn).unwrap();
        let ids = |l: &[&str]| l.iter().map(|s| s.to_string()).collect();
        record_known(
            &conn,
            KnownSource::Egress,
            &ids(&["openai/gpt-4o", "openai/o1"]),
            1,
        )
        .unwrap();
        // Open WebUI lists its presets in /api/models too.
        record_known(
            &conn,
            KnownSource::Ingress,
            &ids(&["openai/gpt-4o", "my-preset"]),
            1,
        )
        .unwrap();
        conn.execute_batch(
            "INSERT INTO model (id, base_model_id, name) VALUES
                 ('my-preset', 'openai/gpt-4o', 'Mine'),
                 ('their-preset', 'anthropic/claude', 'Theirs');",
        )
        .unwrap();
        assert_eq!(
            model_plan(&conn, "mai").unwrap(),
            ModelPlan {
                source: ModelSource::KnownModels,
                candidates: 3,
                existing: 0
            }
        );
        let dry = migrate(&conn, "mai", "MAI", "ops", DRY_RUN).unwrap();
        assert_eq!((dry.models_linked, dry.models_total), (3, 3));
        let r = migrate(&conn, "mai", "MAI", "ops", RUN).unwrap();
        assert_eq!(r.model_source, ModelSource::KnownModels);
        assert_eq!((r.models_linked, r.models_total), (3, 3));
        let models: Vec<(String, bool)> = list_models(&conn, "mai")
            .unwrap()
            .into_iter()
            .map(|m| (m.model_id, m.is_active))
            .collect();
        assert_eq!(
            models,
            [
                ("anthropic/claude".to_string(), true),
                ("openai/gpt-4o".to_string(), true),
                ("openai/o1".to_string(), true),
            ]
        );
        // A re-run adds nothing and is not refused.
        let again = migrate(&conn, "mai", "MAI", "ops", RUN).unwrap();
        assert_eq!((again.models_linked, again.models_total), (0, 3));
    }

    /// Models enabled by hand before the migration are enough.
    #[test]
    fn existing_links_are_not_an_empty_set() {
        let conn = Connection::open_in_memory().unwrap();
        crate::store::schema::ensure_schema(&conn).unwrap();
        // Directly, so this does not depend on how `model enable` works.
        conn.execute_batch(
            "INSERT INTO organizations (id, name) VALUES ('mai', 'MAI');
             INSERT INTO organization_models (id, organization_id, model_id)
                 VALUES ('l1', 'mai', 'by-hand');",
        )
        .unwrap();
        let r = migrate(&conn, "mai", "MAI", "ops", RUN).unwrap();
        assert_eq!((r.models_linked, r.models_total), (0, 1));
    }

    #[test]
    fn blank_ids_are_refused() {
        let conn = db();
        assert_eq!(
            migrate(&conn, "", "MAI", "ops", RUN),
            Err(StoreError::EmptyId("organization id"))
        );
        assert_eq!(
            migrate(&conn, "mai", " ", "ops", RUN),
            Err(StoreError::EmptyId("organization name"))
        );
    }
}
