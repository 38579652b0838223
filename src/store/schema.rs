//! The organization schema: tables, the seed indexes, the view and the audit
//! triggers, all created idempotently inside Open WebUI's own database.
//!
//! Open WebUI's tables (`user`, `api_key`, `model`, ...) are never touched
//! here. The audit triggers are plain SQL (no application-defined functions)
//! so they fire for every writer: our CLI, the `sqlite3` shell, Open WebUI.
//! The actor comes from the one-row `permission_audit_context` table that our
//! writers fill and clear inside their own transaction, so other writers see
//! it empty and their changes are logged with a NULL actor.
//!
//! `known_models` / `known_model_sources` (see [`super::known`]) are what
//! the gate saw the upstream offer, not permissions: they have no audit
//! triggers.

use rusqlite::{Connection, TransactionBehavior};
use serde::Serialize;

use super::error::StoreError;

const TABLES: &str = r#"
CREATE TABLE IF NOT EXISTS organizations (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at INTEGER
);
CREATE TABLE IF NOT EXISTS organization_members (
    id TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    role TEXT DEFAULT 'member',
    is_active INTEGER DEFAULT 1,
    joined_at INTEGER,
    UNIQUE(organization_id, user_id)
);
CREATE TABLE IF NOT EXISTS organization_models (
    id TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL,
    model_id TEXT NOT NULL,
    is_active INTEGER DEFAULT 1,
    created_at INTEGER,
    updated_at INTEGER,
    UNIQUE(organization_id, model_id)
);
CREATE TABLE IF NOT EXISTS organization_model_rules (
    id TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL,
    pattern TEXT NOT NULL,
    effect TEXT NOT NULL CHECK (effect IN ('allow', 'deny')),
    is_active INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER,
    updated_at INTEGER,
    UNIQUE(organization_id, pattern)
);
CREATE TABLE IF NOT EXISTS organization_groups (
    id TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL,
    group_id TEXT NOT NULL,
    is_active INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER,
    updated_at INTEGER,
    UNIQUE(organization_id, group_id)
);
CREATE TABLE IF NOT EXISTS permission_audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    table_name TEXT NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('INSERT', 'UPDATE', 'DELETE')),
    row_id TEXT,
    organization_id TEXT,
    subject TEXT,
    old_values TEXT,
    new_values TEXT,
    actor TEXT,
    changed_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS permission_audit_context (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    actor TEXT
);
CREATE TABLE IF NOT EXISTS known_models (
    source TEXT NOT NULL,
    model_id TEXT NOT NULL,
    last_seen_at INTEGER NOT NULL,
    PRIMARY KEY (source, model_id)
);
CREATE TABLE IF NOT EXISTS known_model_sources (
    source TEXT PRIMARY KEY,
    model_count INTEGER NOT NULL,
    id_set_hash TEXT NOT NULL,
    seen_at INTEGER NOT NULL
);
"#;

const INDEXES_AND_VIEW: &str = r#"
CREATE INDEX IF NOT EXISTS idx_org_members_user_active ON organization_members(user_id, is_active);
CREATE INDEX IF NOT EXISTS idx_org_members_org_active ON organization_members(organization_id, is_active);
CREATE INDEX IF NOT EXISTS idx_org_models_org_active ON organization_models(organization_id, is_active);
CREATE UNIQUE INDEX IF NOT EXISTS idx_org_models_org_model ON organization_models(organization_id, model_id);
CREATE VIEW IF NOT EXISTS user_available_models AS
    SELECT om.user_id AS user_id, om.organization_id AS organization_id, mo.model_id AS model_id
    FROM organization_members om
    JOIN organization_models mo ON mo.organization_id = om.organization_id
    WHERE om.is_active = 1 AND mo.is_active = 1;
"#;

/// Our own additions to the seed schema. The seed's four indexes are named
/// by the spec and stay as they are; these extend them.
///
/// `idx_org_models_org_active_model` covers the per-organization model-set
/// query (`lookup::ORG_MODELS_SQL`): the seed `idx_org_models_org_active`
/// lacks `model_id`, so each of an organization's hundreds of links cost a
/// table read. It keeps the seed index's leading columns, so every query the
/// seed index serves can use it too (SQLite prefers it, being covering).
///
/// The rules and group-binding indexes cover their lookups
/// (`lookup::ORG_RULES_SQL`, the group half of
/// `lookup::GROUP_MEMBERSHIPS_SQL`).
pub const EXTENSION_INDEXES: &str = r#"
CREATE INDEX IF NOT EXISTS idx_org_models_org_active_model ON organization_models(organization_id, is_active, model_id);
CREATE INDEX IF NOT EXISTS idx_org_rules_org_active ON organization_model_rules(organization_id, is_active, pattern, effect);
CREATE INDEX IF NOT EXISTS idx_org_groups_group_active ON organization_groups(group_id, is_active, organization_id);
"#;

/// Added to the seed's `organizations` table by `init` (SQLite cannot add
/// a column with `IF NOT EXISTS`, so `create_tables` checks first).
const MODE_COLUMN: &str =
    "ALTER TABLE organizations ADD COLUMN mode TEXT NOT NULL DEFAULT 'enforce' \
     CHECK (mode IN ('enforce', 'shadow'))";
pub const COVERING_MODELS_INDEX: &str = "idx_org_models_org_active_model";

/// An audited table: its name, the columns naming the organization and the
/// subject of a change, and every column (snapshotted as JSON).
struct Audited {
    table: &'static str,
    organization: &'static str,
    subject: &'static str,
    columns: &'static [&'static str],
}

const AUDITED: [Audited; 5] = [
    Audited {
        table: "organizations",
        organization: "id",
        subject: "name",
        columns: &["id", "name", "created_at", "mode"],
    },
    Audited {
        table: "organization_members",
        organization: "organization_id",
        subject: "user_id",
        columns: &[
            "id",
            "organization_id",
            "user_id",
            "role",
            "is_active",
            "joined_at",
        ],
    },
    Audited {
        table: "organization_models",
        organization: "organization_id",
        subject: "model_id",
        columns: &[
            "id",
            "organization_id",
            "model_id",
            "is_active",
            "created_at",
            "updated_at",
        ],
    },
    Audited {
        table: "organization_model_rules",
        organization: "organization_id",
        subject: "pattern",
        columns: &[
            "id",
            "organization_id",
            "pattern",
            "effect",
            "is_active",
            "created_at",
            "updated_at",
        ],
    },
    Audited {
        table: "organization_groups",
        organization: "organization_id",
        subject: "group_id",
        columns: &[
            "id",
            "organization_id",
            "group_id",
            "is_active",
            "created_at",
            "updated_at",
        ],
    },
];

/// What `ensure_schema` did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SchemaReport {
    /// Names of tables, indexes, views and triggers that did not exist before.
    pub created: Vec<String>,
    /// Organization ids found in memberships/links without an
    /// `organizations` row (databases set up by the Python prototype),
    /// given a row named after their id.
    pub organizations_backfilled: usize,
}

/// Creates or repairs the organization schema in one transaction. Running it
/// again changes nothing.
pub fn ensure_schema(conn: &Connection) -> Result<SchemaReport, StoreError> {
    let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    let report = create_schema(&tx)?;
    tx.commit()?;
    Ok(report)
}

/// The body of `ensure_schema`, for callers that already hold a transaction
/// (`migrate` creates the schema and links rows atomically).
pub(crate) fn create_schema(conn: &Connection) -> Result<SchemaReport, StoreError> {
    let before = schema_names(conn)?;
    create_tables(conn)?;
    create_indexes_view_triggers(conn)?;
    let organizations_backfilled = conn.execute(
        "INSERT OR IGNORE INTO organizations (id, name, created_at)
         SELECT organization_id, organization_id, CAST(strftime('%s','now') AS INTEGER)
         FROM (SELECT organization_id FROM organization_members
               UNION SELECT organization_id FROM organization_models)",
        [],
    )?;
    let created = schema_names(conn)?
        .into_iter()
        .filter(|name| !before.contains(name))
        .collect();
    Ok(SchemaReport {
        created,
        organizations_backfilled,
    })
}

/// Tables only: the bulk generator fills them before the indexes and audit
/// triggers exist (faster, and no audit rows for synthetic data).
pub(crate) fn create_tables(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(TABLES)?;
    let has_mode = conn
        .prepare("SELECT 1 FROM pragma_table_info('organizations') WHERE name = 'mode'")?
        .exists([])?;
    if !has_mode {
        conn.execute_batch(MODE_COLUMN)?;
    }
    Ok(())
}

pub(crate) fn create_indexes_view_triggers(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(INDEXES_AND_VIEW)?;
    let had_covering = index_exists(conn, COVERING_MODELS_INDEX)?;
    conn.execute_batch(EXTENSION_INDEXES)?;
    // A database ANALYZEd before this index existed (the seed runbook
    // recommends ANALYZE) has statistics for the seed index only, which can
    // make the planner keep choosing it; give the new index its statistics
    // too. Databases never analyzed are left without (no sqlite_stat1 is
    // created behind the operator's back).
    if !had_covering && table_exists(conn, "sqlite_stat1")? {
        conn.execute_batch(&format!("ANALYZE {COVERING_MODELS_INDEX}"))?;
    }
    for audited in &AUDITED {
        for action in ["INSERT", "UPDATE", "DELETE"] {
            conn.execute_batch(&trigger_sql(audited, action))?;
        }
    }
    Ok(())
}

fn schema_names(conn: &Connection) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT name FROM sqlite_master WHERE type IN ('table','index','view','trigger') ORDER BY name",
    )?;
    let names = stmt
        .query_map([], |row| row.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(names)
}

/// One AFTER trigger; `json_object` snapshots the row so the log survives
/// later changes and deletions. Identifiers come from the constants above,
/// never from input.
fn trigger_sql(audited: &Audited, action: &str) -> String {
    let Audited {
        table,
        organization,
        subject,
        columns,
    } = audited;
    let snapshot = |row: &str| {
        let pairs: Vec<String> = columns
            .iter()
            .map(|c| format!("'{c}', {row}.{c}"))
            .collect();
        format!("json_object({})", pairs.join(", "))
    };
    let (row, old, new) = match action {
        "INSERT" => ("NEW", "NULL".to_string(), snapshot("NEW")),
        "DELETE" => ("OLD", snapshot("OLD"), "NULL".to_string()),
        _ => ("NEW", snapshot("OLD"), snapshot("NEW")),
    };
    let name = format!("trg_{table}_audit_{}", action.to_ascii_lowercase());
    format!(
        "CREATE TRIGGER IF NOT EXISTS {name} AFTER {action} ON {table} FOR EACH ROW BEGIN
            INSERT INTO permission_audit_log
                (table_name, action, row_id, organization_id, subject, old_values, new_values, actor, changed_at)
            VALUES ('{table}', '{action}', {row}.id, {row}.{organization}, {row}.{subject}, {old}, {new},
                    (SELECT actor FROM permission_audit_context WHERE id = 1),
                    CAST(strftime('%s','now') AS INTEGER));
        END;"
    )
}

fn index_exists(conn: &Connection, name: &str) -> Result<bool, StoreError> {
    let mut stmt =
        conn.prepare_cached("SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?1")?;
    Ok(stmt.exists([name])?)
}

/// Whether a table exists; used to tell "Open WebUI's table is absent"
/// (standalone database) from real errors.
pub(crate) fn table_exists(conn: &Connection, name: &str) -> Result<bool, StoreError> {
    let mut stmt =
        conn.prepare_cached("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1")?;
    Ok(stmt.exists([name])?)
}
