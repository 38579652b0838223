//! Schema creation, admin writes, audit triggers, migration and backup.

mod store_support;

use modelgate::store::admin::{self, MemberRole, WriteOutcome};
use modelgate::store::{ensure_schema, StoreError};
use rusqlite::Connection;
use store_support::*;

fn snapshot(conn: &Connection) -> Vec<(String, String, i64)> {
    let mut stmt = conn
        .prepare("SELECT type, name, sql FROM sqlite_master ORDER BY type, name")
        .unwrap();
    let objects: Vec<(String, String, Option<String>)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    objects
        .into_iter()
        .map(|(ty, name, sql)| {
            let rows = if ty == "table" {
                conn.query_row(&format!("SELECT COUNT(*) FROM \"{name}\""), [], |r| {
                    r.get(0)
                })
                .unwrap()
            } else {
                -1
            };
            (format!("{ty} {name}"), sql.unwrap_or_default(), rows)
        })
        .collect()
}

#[test]
fn ensure_schema_is_idempotent_and_leaves_open_webui_alone() {
    let db = owui_db();
    db.user("u", "admin");
    db.org("o");
    db.member("o", "u");
    let before = snapshot(&db.conn);
    let report = ensure_schema(&db.conn).unwrap();
    assert!(report.created.is_empty(), "{report:?}");
    assert_eq!(report.organizations_backfilled, 0);
    assert_eq!(snapshot(&db.conn), before);
    let user_sql: String = db
        .conn
        .query_row(
            "SELECT sql FROM sqlite_master WHERE name = 'user'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    // SQLite keeps the statement as written, minus `IF NOT EXISTS`.
    assert_eq!(
        user_sql,
        OPEN_WEBUI_TABLES
            .split(';')
            .next()
            .unwrap()
            .trim()
            .replacen("IF NOT EXISTS ", "", 1)
    );
}

#[test]
fn ensure_schema_on_an_empty_file_creates_everything() {
    let dir = tempfile::tempdir().unwrap();
    let conn = Connection::open(dir.path().join("new.db")).unwrap();
    let report = ensure_schema(&conn).unwrap();
    for name in [
        "organizations",
        "organization_members",
        "organization_models",
        "permission_audit_log",
        "permission_audit_context",
        "known_models",
        "known_model_sources",
        "idx_org_members_user_active",
        "idx_org_members_org_active",
        "idx_org_models_org_active",
        "idx_org_models_org_model",
        "idx_org_models_org_active_model",
        "user_available_models",
        "trg_organization_members_audit_insert",
        "trg_organization_models_audit_delete",
    ] {
        assert!(
            report.created.iter().any(|c| c == name),
            "{name}: {report:?}"
        );
    }
    assert!(ensure_schema(&conn).unwrap().created.is_empty());
}

#[test]
fn prototype_databases_get_their_organizations_backfilled() {
    let dir = tempfile::tempdir().unwrap();
    let conn = Connection::open(dir.path().join("proto.db")).unwrap();
    conn.execute_batch(
        "CREATE TABLE organization_members (id TEXT PRIMARY KEY, organization_id TEXT NOT NULL,
            user_id TEXT NOT NULL, role TEXT DEFAULT 'member', is_active INTEGER DEFAULT 1,
            joined_at INTEGER, UNIQUE(organization_id, user_id));
         INSERT INTO organization_members (id, organization_id, user_id) VALUES ('om_u_mai', 'mai', 'u');",
    )
    .unwrap();
    assert_eq!(ensure_schema(&conn).unwrap().organizations_backfilled, 1);
    assert_eq!(admin::list_orgs(&conn).unwrap()[0].active_members, 1);
}

#[test]
fn view_joins_active_memberships_and_links() {
    let db = owui_db();
    db.user("u", "user");
    db.org("o");
    db.member("o", "u");
    db.enable("o", "a");
    db.enable("o", "b");
    admin::disable_model(&db.conn, "o", "b", "t").unwrap();
    let models: Vec<String> = db
        .conn
        .prepare("SELECT model_id FROM user_available_models WHERE user_id = 'u'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(models, vec!["a"]);
}

#[test]
fn writes_report_outcomes_and_keep_rows() {
    let db = owui_db();
    db.user("u", "user");
    let c = &db.conn;
    assert_eq!(
        admin::create_org(c, "o", "One", "t").unwrap(),
        WriteOutcome::Created
    );
    assert_eq!(
        admin::create_org(c, "o", "One", "t").unwrap(),
        WriteOutcome::Unchanged
    );
    assert_eq!(
        admin::rename_org(c, "o", "Uno", "t").unwrap(),
        WriteOutcome::Updated
    );
    let add = |role| admin::add_member(c, "o", "u", role, "t").unwrap();
    assert_eq!(add(MemberRole::Member), WriteOutcome::Created);
    assert_eq!(add(MemberRole::Member), WriteOutcome::Unchanged);
    assert_eq!(add(MemberRole::Admin), WriteOutcome::Updated);
    assert_eq!(
        admin::remove_member(c, "o", "u", "t").unwrap(),
        WriteOutcome::Deactivated
    );
    assert_eq!(
        admin::remove_member(c, "o", "u", "t").unwrap(),
        WriteOutcome::Unchanged
    );
    assert_eq!(add(MemberRole::Member), WriteOutcome::Reactivated);
    let members = admin::list_members(c, "o").unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].id, "om_u_o");
    assert_eq!(members[0].email.as_deref(), Some("u@example.com"));
    assert!(members[0].is_active);

    assert_eq!(
        admin::enable_model(c, "o", "m", "t").unwrap(),
        WriteOutcome::Created
    );
    assert_eq!(
        admin::enable_model(c, "o", "m", "t").unwrap(),
        WriteOutcome::Unchanged
    );
    assert_eq!(
        admin::disable_model(c, "o", "m", "t").unwrap(),
        WriteOutcome::Deactivated
    );
    assert_eq!(
        admin::disable_model(c, "o", "x", "t").unwrap(),
        WriteOutcome::NotFound
    );
    assert_eq!(
        admin::enable_model(c, "o", "m", "t").unwrap(),
        WriteOutcome::Reactivated
    );
    let models = admin::list_models(c, "o").unwrap();
    assert_eq!(models.len(), 1);
    assert_eq!(models[0].id, "orgmod_o_m");
    let orgs = admin::list_orgs(c).unwrap();
    assert_eq!(
        (
            orgs[0].name.as_str(),
            orgs[0].active_members,
            orgs[0].active_models
        ),
        ("Uno", 1, 1)
    );
    // Rows serialize for `--json`.
    assert!(serde_json::to_string(&orgs)
        .unwrap()
        .contains("\"active_models\":1"));
}

#[test]
fn typed_errors() {
    let db = owui_db();
    db.user("u", "user");
    db.org("o");
    let c = &db.conn;
    assert_eq!(
        admin::add_member(c, "nope", "u", MemberRole::Member, "t"),
        Err(StoreError::UnknownOrganization("nope".into()))
    );
    assert_eq!(
        admin::enable_model(c, "nope", "m", "t"),
        Err(StoreError::UnknownOrganization("nope".into()))
    );
    assert!(matches!(
        admin::list_members(c, "nope"),
        Err(StoreError::UnknownOrganization(_))
    ));
    assert_eq!(
        admin::add_member(c, "o", "ghost", MemberRole::Member, "t"),
        Err(StoreError::UnknownUser("ghost".into()))
    );
    assert_eq!(
        "owner".parse::<MemberRole>(),
        Err(StoreError::InvalidRole("owner".into()))
    );
    assert_eq!("admin".parse::<MemberRole>(), Ok(MemberRole::Admin));
    assert_eq!(
        admin::create_org(c, " ", "x", "t"),
        Err(StoreError::EmptyId("organization id"))
    );
    assert_eq!(
        admin::add_member(c, "o", "", MemberRole::Member, "t"),
        Err(StoreError::EmptyId("user id"))
    );
    assert_eq!(
        admin::enable_model(c, "o", "", "t"),
        Err(StoreError::EmptyId("model id or pattern"))
    );
    // Failed writes leave no audit rows (only `db.org`'s) and no actor behind.
    let log = admin::audit(c, 100).unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].table_name, "organizations");
}

#[test]
fn triggers_audit_every_change_with_its_actor() {
    let db = owui_db();
    db.user("u", "user");
    let c = &db.conn;
    admin::create_org(c, "o", "O", "alice").unwrap();
    admin::add_member(c, "o", "u", MemberRole::Member, "alice").unwrap();
    admin::enable_model(c, "o", "m", "bob").unwrap();
    admin::disable_model(c, "o", "m", "bob").unwrap();
    // Another tool writes: no actor.
    let other = Connection::open(&db.path).unwrap();
    other
        .execute("DELETE FROM organization_members WHERE user_id = 'u'", [])
        .unwrap();

    let log = admin::audit(c, 10).unwrap();
    let summary: Vec<(&str, &str, Option<&str>, Option<&str>)> = log
        .iter()
        .map(|e| {
            (
                e.table_name.as_str(),
                e.action.as_str(),
                e.subject.as_deref(),
                e.actor.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("organization_members", "DELETE", Some("u"), None),
            ("organization_models", "UPDATE", Some("m"), Some("bob")),
            ("organization_models", "INSERT", Some("m"), Some("bob")),
            ("organization_members", "INSERT", Some("u"), Some("alice")),
            ("organizations", "INSERT", Some("O"), Some("alice")),
        ]
    );
    let update = &log[1];
    assert_eq!(update.old_values.as_ref().unwrap()["is_active"], 1);
    assert_eq!(update.new_values.as_ref().unwrap()["is_active"], 0);
    assert_eq!(update.organization_id.as_deref(), Some("o"));
    assert!(log[0].new_values.is_none() && log[0].old_values.is_some());
    assert_eq!(admin::audit(c, 2).unwrap().len(), 2);
    let context: i64 = c
        .query_row("SELECT COUNT(*) FROM permission_audit_context", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(context, 0);
}

const DRY_RUN: admin::MigrateOptions = admin::MigrateOptions {
    dry_run: true,
    allow_empty: false,
};

fn migration_fixture() -> Db {
    let db = owui_db();
    db.user("admin1", "admin");
    db.user("user1", "user");
    db.user("waiting", "pending");
    db.model("gpt", None);
    db.model("claude", None);
    db.model("preset", Some("gpt"));
    db.conn
        .execute("UPDATE model SET is_active = 0 WHERE id = 'claude'", [])
        .unwrap();
    db
}

#[test]
fn migrate_links_users_and_base_models_and_is_idempotent() {
    let db = migration_fixture();
    let report = admin::migrate(
        &db.conn,
        "mai",
        "mAI",
        "ops",
        admin::MigrateOptions::default(),
    )
    .unwrap();
    assert_eq!((report.users_linked, report.models_linked), (2, 2));
    assert_eq!((report.members_total, report.models_total), (2, 2));
    let members = admin::list_members(&db.conn, "mai").unwrap();
    let roles: Vec<(&str, Option<&str>)> = members
        .iter()
        .map(|m| (m.user_id.as_str(), m.role.as_deref()))
        .collect();
    assert_eq!(
        roles,
        vec![("admin1", Some("admin")), ("user1", Some("member"))]
    );
    let models = admin::list_models(&db.conn, "mai").unwrap();
    let links: Vec<(&str, bool)> = models
        .iter()
        .map(|m| (m.model_id.as_str(), m.is_active))
        .collect();
    assert_eq!(links, vec![("claude", false), ("gpt", true)]);
    assert_eq!(
        admin::audit(&db.conn, 100).unwrap()[0].actor.as_deref(),
        Some("ops")
    );

    // A revocation survives a re-run, which links nothing new.
    admin::remove_member(&db.conn, "mai", "user1", "ops").unwrap();
    let before = snapshot(&db.conn);
    let again = admin::migrate(
        &db.conn,
        "mai",
        "mAI",
        "ops",
        admin::MigrateOptions::default(),
    )
    .unwrap();
    assert_eq!((again.users_linked, again.models_linked), (0, 0));
    assert_eq!(snapshot(&db.conn), before);
}

#[test]
fn migrate_dry_run_changes_nothing() {
    let db = migration_fixture();
    let before = snapshot(&db.conn);
    let report = admin::migrate(&db.conn, "mai", "mAI", "ops", DRY_RUN).unwrap();
    assert!(report.dry_run);
    assert_eq!((report.users_linked, report.members_total), (2, 2));
    assert_eq!(snapshot(&db.conn), before);
}

#[test]
fn migrate_on_a_standalone_file() {
    let dir = tempfile::tempdir().unwrap();
    let conn = Connection::open(dir.path().join("s.db")).unwrap();
    let allow_empty = admin::MigrateOptions {
        allow_empty: true,
        ..admin::MigrateOptions::default()
    };
    let report = admin::migrate(&conn, "o", "O", "ops", allow_empty).unwrap();
    assert!(!report.user_table && !report.model_table);
    assert_eq!(admin::list_orgs(&conn).unwrap().len(), 1);
}

#[test]
fn backup_copies_and_refuses_to_overwrite() {
    let db = migration_fixture();
    admin::migrate(
        &db.conn,
        "mai",
        "mAI",
        "ops",
        admin::MigrateOptions::default(),
    )
    .unwrap();
    let dest = db.dir.path().join("backup.db");
    admin::backup(&db.conn, &dest).unwrap();
    let copy = Connection::open(&dest).unwrap();
    assert_eq!(admin::list_members(&copy, "mai").unwrap().len(), 2);
    assert!(matches!(
        admin::backup(&db.conn, &dest),
        Err(StoreError::Backup(_))
    ));
}
