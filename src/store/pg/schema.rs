//! The organization schema on PostgreSQL: the SQLite schema's tables (native
//! booleans, bigint timestamps), its seed and extension indexes, the view,
//! the audit triggers, and the change-notification triggers the listener
//! relies on, created idempotently in one transaction in the first schema
//! of the search_path (`DATABASE_SCHEMA`, else `public`).
//!
//! Why the functions pin their own `search_path` and run as their owner
//! (`SECURITY DEFINER`): the notification triggers fire in Open WebUI's
//! sessions too, whose search_path does not name our schema (it qualifies
//! its own tables) and whose role may not be ours.
//!
//! Change notification: every committed change to a table the policy reads
//! sends `pg_notify('modelgate_access', '<table> <version>')` — the table
//! name and a counter, never row data. Statement-level where the trigger
//! needs no row (so a 10,000-row statement notifies once, and PostgreSQL
//! folds identical notifications of one transaction into one); row-level
//! with a `WHEN` filter where only some columns matter (`"user".role`, not
//! its `last_active_at`, rewritten every minute). The counter
//! (`modelgate_change_counter`) moves once per transaction, so the listener
//! can tell a missed notification from none (see `pg::listen`).

use tokio_postgres::{Client, GenericClient};

use crate::store::database::quote_ident;
use crate::store::error::StoreError;
use crate::store::schema::SchemaReport;

/// The channel the triggers notify on.
pub const CHANNEL: &str = "modelgate_access";

const TABLES: &str = r#"
CREATE TABLE IF NOT EXISTS organizations (
    id text PRIMARY KEY,
    name text NOT NULL,
    created_at bigint,
    mode text NOT NULL DEFAULT 'enforce' CHECK (mode IN ('enforce', 'shadow'))
);
CREATE TABLE IF NOT EXISTS organization_members (
    id text PRIMARY KEY,
    organization_id text NOT NULL,
    user_id text NOT NULL,
    role text DEFAULT 'member',
    is_active boolean NOT NULL DEFAULT true,
    joined_at bigint,
    UNIQUE (organization_id, user_id)
);
CREATE TABLE IF NOT EXISTS organization_models (
    id text PRIMARY KEY,
    organization_id text NOT NULL,
    model_id text NOT NULL,
    is_active boolean NOT NULL DEFAULT true,
    created_at bigint,
    updated_at bigint,
    UNIQUE (organization_id, model_id)
);
CREATE TABLE IF NOT EXISTS organization_model_rules (
    id text PRIMARY KEY,
    organization_id text NOT NULL,
    pattern text NOT NULL,
    effect text NOT NULL CHECK (effect IN ('allow', 'deny')),
    is_active boolean NOT NULL DEFAULT true,
    created_at bigint,
    updated_at bigint,
    UNIQUE (organization_id, pattern)
);
CREATE TABLE IF NOT EXISTS organization_groups (
    id text PRIMARY KEY,
    organization_id text NOT NULL,
    group_id text NOT NULL,
    is_active boolean NOT NULL DEFAULT true,
    created_at bigint,
    updated_at bigint,
    UNIQUE (organization_id, group_id)
);
CREATE TABLE IF NOT EXISTS permission_audit_log (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    table_name text NOT NULL,
    action text NOT NULL CHECK (action IN ('INSERT', 'UPDATE', 'DELETE')),
    row_id text,
    organization_id text,
    subject text,
    old_values text,
    new_values text,
    actor text,
    changed_at bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS known_models (
    source text NOT NULL,
    model_id text NOT NULL,
    last_seen_at bigint NOT NULL,
    PRIMARY KEY (source, model_id)
);
CREATE TABLE IF NOT EXISTS known_model_sources (
    source text PRIMARY KEY,
    model_count bigint NOT NULL,
    id_set_hash text NOT NULL,
    seen_at bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS modelgate_change_counter (
    id integer PRIMARY KEY CHECK (id = 1),
    version bigint NOT NULL
);
INSERT INTO modelgate_change_counter (id, version) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;
"#;

/// The seed's four indexes, our three (see `store::schema`), and the view.
const INDEXES_AND_VIEW: &str = r#"
CREATE INDEX IF NOT EXISTS idx_org_members_user_active ON organization_members (user_id, is_active);
CREATE INDEX IF NOT EXISTS idx_org_members_org_active ON organization_members (organization_id, is_active);
CREATE INDEX IF NOT EXISTS idx_org_models_org_active ON organization_models (organization_id, is_active);
CREATE UNIQUE INDEX IF NOT EXISTS idx_org_models_org_model ON organization_models (organization_id, model_id);
CREATE INDEX IF NOT EXISTS idx_org_models_org_active_model ON organization_models (organization_id, is_active, model_id);
CREATE INDEX IF NOT EXISTS idx_org_rules_org_active ON organization_model_rules (organization_id, is_active, pattern, effect);
CREATE INDEX IF NOT EXISTS idx_org_groups_group_active ON organization_groups (group_id, is_active, organization_id);
CREATE OR REPLACE VIEW user_available_models AS
    SELECT om.user_id AS user_id, om.organization_id AS organization_id, mo.model_id AS model_id
    FROM organization_members om
    JOIN organization_models mo ON mo.organization_id = om.organization_id
    WHERE om.is_active AND mo.is_active;
"#;

/// `{schema}` is replaced by the quoted schema the functions pin.
const FUNCTIONS: &str = r#"
CREATE OR REPLACE FUNCTION modelgate_audit() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = {schema} AS $$
DECLARE
    old_row jsonb;
    new_row jsonb;
    r jsonb;
BEGIN
    IF TG_OP <> 'INSERT' THEN old_row := to_jsonb(OLD); END IF;
    IF TG_OP <> 'DELETE' THEN new_row := to_jsonb(NEW); END IF;
    r := coalesce(new_row, old_row);
    INSERT INTO permission_audit_log
        (table_name, action, row_id, organization_id, subject, old_values, new_values, actor, changed_at)
    VALUES (TG_TABLE_NAME, TG_OP, r ->> 'id', r ->> TG_ARGV[0], r ->> TG_ARGV[1],
            old_row::text, new_row::text,
            -- Set with SET LOCAL by our writers; NULL for anyone else.
            nullif(current_setting('modelgate.actor', true), ''),
            extract(epoch FROM now())::bigint);
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION modelgate_notify_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = {schema} AS $$
DECLARE
    v bigint := nullif(current_setting('modelgate.change_version', true), '')::bigint;
BEGIN
    -- Once per transaction: the counter row is locked until commit, so a
    -- second bump would only add a dead tuple.
    IF v IS NULL THEN
        UPDATE modelgate_change_counter SET version = version + 1 WHERE id = 1
            RETURNING version INTO v;
        PERFORM set_config('modelgate.change_version', v::text, true);
    END IF;
    PERFORM pg_notify('modelgate_access', TG_TABLE_NAME || ' ' || v);
    RETURN NULL;
END $$;
"#;

/// An audited table: the columns naming the organization and the subject.
const AUDITED: [(&str, &str, &str); 5] = [
    ("organizations", "id", "name"),
    ("organization_members", "organization_id", "user_id"),
    ("organization_models", "organization_id", "model_id"),
    ("organization_model_rules", "organization_id", "pattern"),
    ("organization_groups", "organization_id", "group_id"),
];

/// Open WebUI's tables the policy reads, and the columns whose change
/// matters on UPDATE (`None`: any update). Absent tables are skipped.
const WATCHED_WEBUI: [(&str, Option<&[&str]>); 5] = [
    ("user", Some(&["id", "role"])),
    // Open WebUI 0.12.4 never updates api_key rows in place, but a
    // `last_used_at` stamp per request would otherwise flush every cache
    // per request.
    ("api_key", Some(&["id", "key", "user_id", "expires_at"])),
    ("model", Some(&["id", "base_model_id"])),
    ("group", Some(&["id", "parent_group_id"])),
    ("group_member", None),
];

/// Creates or repairs everything in one transaction. Refuses a schema
/// Open WebUI has not migrated (no `alembic_version`): Open WebUI refuses to
/// start in a non-empty schema without it, so creating our tables first
/// would break its first start.
pub async fn ensure_schema(client: &mut Client) -> Result<SchemaReport, StoreError> {
    let tx = client.transaction().await?;
    let report = create_in(&tx).await?;
    tx.commit().await?;
    Ok(report)
}

/// The body of [`ensure_schema`], inside a transaction the caller holds
/// (`migrate` creates the schema and links rows atomically).
pub(crate) async fn create_in<C: GenericClient + Sync>(tx: &C) -> Result<SchemaReport, StoreError> {
    let row = tx
        .query_one(
            "SELECT current_schema(), to_regclass('alembic_version') IS NOT NULL, \
             current_setting('search_path')",
            &[],
        )
        .await?;
    let schema: Option<String> = row.try_get(0)?;
    let search_path: String = row.try_get(2)?;
    let Some(schema) = schema else {
        return Err(StoreError::Schema(format!(
            "no schema of the search_path ({search_path}) exists; check DATABASE_SCHEMA"
        )));
    };
    if !row.try_get::<_, bool>(1)? {
        return Err(StoreError::Schema(format!(
            "schema {schema:?} has no alembic_version table: Open WebUI has not migrated it yet. \
             Start Open WebUI once against this database (with the same DATABASE_SCHEMA) \
             before `modelgate init`, or it will refuse to start in a schema holding our tables"
        )));
    }
    // One init at a time: two replicas starting together would otherwise
    // race on CREATE ... IF NOT EXISTS (it is not atomic against itself).
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('modelgate init'))",
        &[],
    )
    .await?;
    let before = names(tx).await?;
    tx.batch_execute(TABLES).await?;
    tx.batch_execute(INDEXES_AND_VIEW).await?;
    tx.batch_execute(&FUNCTIONS.replace("{schema}", &quote_ident(&schema)))
        .await?;
    let mut triggers = String::new();
    for (table, organization, subject) in AUDITED {
        let name = format!("trg_{table}_audit");
        triggers.push_str(&format!(
            "DROP TRIGGER IF EXISTS {name} ON {table};
             CREATE TRIGGER {name} AFTER INSERT OR UPDATE OR DELETE ON {table}
                 FOR EACH ROW EXECUTE FUNCTION modelgate_audit('{organization}', '{subject}');\n"
        ));
        triggers.push_str(&notify_triggers(table, None));
    }
    for (table, columns) in WATCHED_WEBUI {
        let exists: bool = tx
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&quote_ident(table)])
            .await?
            .try_get(0)?;
        if exists {
            triggers.push_str(&notify_triggers(table, columns));
        }
    }
    tx.batch_execute(&triggers).await?;
    let organizations_backfilled = tx
        .execute(
            "INSERT INTO organizations (id, name, created_at)
             SELECT organization_id, organization_id, extract(epoch FROM now())::bigint
             FROM (SELECT organization_id FROM organization_members
                   UNION SELECT organization_id FROM organization_models) ids
             ON CONFLICT (id) DO NOTHING",
            &[],
        )
        .await?;
    let created = names(tx)
        .await?
        .into_iter()
        .filter(|n| !before.contains(n))
        .collect();
    // Running listeners read tables they may not have seen before.
    tx.execute("SELECT pg_notify($1, 'schema')", &[&CHANNEL])
        .await?;
    Ok(SchemaReport {
        created,
        organizations_backfilled: usize::try_from(organizations_backfilled).unwrap_or(usize::MAX),
    })
}

/// The change-notification triggers of one table: statement-level for
/// inserts, deletes, truncates (and updates when `columns` is `None`),
/// row-level with a `WHEN` filter for updates of `columns`.
fn notify_triggers(table: &str, columns: Option<&[&str]>) -> String {
    let quoted = quote_ident(table);
    let name = |what: &str| format!("trg_{table}_modelgate_{what}");
    let mut sql = String::new();
    let mut create = |what: &str, body: String| {
        let name = name(what);
        sql.push_str(&format!(
            "DROP TRIGGER IF EXISTS {name} ON {quoted};\nCREATE TRIGGER {name} {body} \
             EXECUTE FUNCTION modelgate_notify_change();\n"
        ));
    };
    match columns {
        None => create(
            "notify",
            format!("AFTER INSERT OR UPDATE OR DELETE ON {quoted} FOR EACH STATEMENT"),
        ),
        Some(columns) => {
            create(
                "notify",
                format!("AFTER INSERT OR DELETE ON {quoted} FOR EACH STATEMENT"),
            );
            let changed = columns
                .iter()
                .map(|c| format!("OLD.{c} IS DISTINCT FROM NEW.{c}"))
                .collect::<Vec<_>>()
                .join(" OR ");
            create(
                "notify_update",
                format!(
                    "AFTER UPDATE OF {} ON {quoted} FOR EACH ROW WHEN ({changed})",
                    columns.join(", ")
                ),
            );
        }
    }
    create(
        "notify_truncate",
        format!("AFTER TRUNCATE ON {quoted} FOR EACH STATEMENT"),
    );
    sql
}

/// Tables, indexes, views, functions and triggers of the current schema,
/// for the report's `created`.
async fn names<C: GenericClient + Sync>(tx: &C) -> Result<Vec<String>, StoreError> {
    let rows = tx
        .query(
            "WITH here AS (SELECT oid FROM pg_namespace WHERE nspname = current_schema()) \
             SELECT c.relname::text FROM pg_class c, here \
             WHERE c.relnamespace = here.oid AND c.relkind IN ('r', 'i', 'v') \
             UNION SELECT t.tgname::text FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid, here \
             WHERE c.relnamespace = here.oid AND NOT t.tgisinternal \
             UNION SELECT p.proname::text FROM pg_proc p, here \
             WHERE p.pronamespace = here.oid AND p.proname LIKE 'modelgate%' \
             ORDER BY 1",
            &[],
        )
        .await?;
    rows.iter()
        .map(|r| r.try_get::<_, String>(0).map_err(StoreError::from))
        .collect()
}
