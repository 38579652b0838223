//! `modelgate migrate` through the real binary: backup first, one
//! transaction, verification counts; re-runs and dry runs change nothing;
//! an injected failure rolls back to a byte-identical file; progress on
//! large databases.

mod cli_support;

use cli_support::*;

const MIGRATE: [&str; 5] = [
    "migrate",
    "--org-id",
    "mai_client_acme",
    "--org-name",
    "Acme Ltd",
];

fn args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    MIGRATE
        .iter()
        .copied()
        .chain(extra.iter().copied())
        .collect()
}

fn backups(db: &Db) -> Vec<String> {
    db.files()
        .into_iter()
        .filter(|f| f.starts_with("webui.db.backup-"))
        .collect()
}

#[test]
fn migrate_backs_up_then_links_users_and_base_models() {
    let db = owui_only();
    let before = db.dump();
    let out = db.ok(&args(&["--actor", "deploy", "--json"])).json();
    // admin1, u1, u2; never the pending user.
    assert_eq!(out["users_linked"], 3);
    assert_eq!(out["members_total"], 3);
    // Base models only (presets follow their base), inactive ones linked inactive.
    assert_eq!(out["models_linked"], 3);
    assert_eq!(out["models_total"], 3);
    assert_eq!(out["dry_run"], false);
    assert_eq!(out["actor"], "deploy");
    assert_eq!(out["organization_name"], "Acme Ltd");

    let backup = out["backup"].as_str().unwrap();
    let name = std::path::Path::new(backup)
        .file_name()
        .unwrap()
        .to_str()
        .unwrap();
    // webui.db.backup-YYYYMMDD-HHMMSS
    let stamp = name.strip_prefix("webui.db.backup-").unwrap();
    assert_eq!(stamp.len(), 15, "{name}");
    assert!(
        stamp.chars().all(|c| c.is_ascii_digit() || c == '-'),
        "{name}"
    );
    assert_eq!(
        dump(std::path::Path::new(backup)),
        before,
        "backup is the pre-migration state"
    );

    assert_eq!(
        db.count("SELECT COUNT(*) FROM organization_members WHERE organization_id = 'mai_client_acme' AND user_id = 'pending1'"),
        0
    );
    assert_eq!(
        db.count(
            "SELECT COUNT(*) FROM organization_members WHERE user_id = 'admin1' AND role = 'admin'"
        ),
        1
    );
    assert_eq!(
        db.count("SELECT is_active FROM organization_models WHERE model_id = 'old-model'"),
        0
    );
    assert_eq!(
        db.count("SELECT COUNT(*) FROM organization_models WHERE model_id = 'my-preset'"),
        0
    );
    assert_eq!(
        db.count("SELECT COUNT(*) FROM permission_audit_log WHERE actor = 'deploy'"),
        // The organization, memberships and links.
        7
    );
    // The migrated users can use the base models and their presets.
    assert_eq!(db.run(&["access", "u1", "preset-of-preset"]).code, 0);
    assert_eq!(db.run(&["access", "pending1", "gpt-4o"]).code, 3);
    let org = db.ok(&["org", "list", "--json"]).json();
    assert_eq!(org[0]["name"], "Acme Ltd");

    let text = db.ok(&MIGRATE);
    assert!(text.stdout.contains("backup: "), "{}", text.stdout);
    assert!(text.stdout.contains("already migrated"), "{}", text.stdout);
}

#[test]
fn rerunning_changes_nothing_and_keeps_revocations() {
    let db = owui_db();
    db.ok(&MIGRATE);
    db.ok(&["member", "remove", "mai_client_acme", "u1"]);
    db.ok(&["model", "disable", "mai_client_acme", "claude-3"]);
    let before = db.dump();
    let again = db.ok(&args(&["--json"])).json();
    assert_eq!(again["users_linked"], 0);
    assert_eq!(again["models_linked"], 0);
    assert_eq!(again["members_total"], 3);
    assert_eq!(db.dump(), before);
    assert_eq!(db.run(&["access", "u1", "gpt-4o"]).code, 3);
    // Each real run takes its own backup, even within one second.
    assert_eq!(backups(&db).len(), 2, "{:?}", db.files());
}

#[test]
fn dry_run_reports_and_changes_nothing() {
    for db in [owui_only(), owui_db()] {
        let bytes = db.bytes();
        let before = db.dump();
        let out = db.ok(&args(&["--dry-run", "--json"])).json();
        assert_eq!(out["dry_run"], true);
        assert_eq!(out["users_linked"], 3);
        assert_eq!(out["models_linked"], 3);
        assert!(out["backup"].is_null());
        assert_eq!(db.dump(), before);
        assert_eq!(db.bytes(), bytes, "dry run changed the file");
        assert!(backups(&db).is_empty());
        let text = db.ok(&args(&["--dry-run"])).stdout;
        assert!(text.contains("nothing was changed"), "{text}");
    }
}

/// A trigger installed by the test makes the second half of the
/// transaction fail (after the memberships were inserted): everything must
/// roll back, down to the bytes of the file.
#[test]
fn an_injected_failure_rolls_back_to_a_byte_identical_file() {
    for (table, message) in [
        ("organization_models", "injected model failure"),
        ("organization_members", "injected member failure"),
    ] {
        let db = owui_db();
        db.exec(&format!(
            "CREATE TRIGGER inject_failure BEFORE INSERT ON {table}
             BEGIN SELECT RAISE(ABORT, '{message}'); END;"
        ));
        let bytes = db.bytes();
        let before = db.dump();
        let run = db.fails(&MIGRATE, 1, "migration failed and was rolled back");
        assert!(run.stderr.contains(message), "{}", run.stderr);
        assert!(
            run.stderr.contains("the database is unchanged"),
            "{}",
            run.stderr
        );
        assert!(run.stderr.contains("backup: "), "{}", run.stderr);
        assert!(run.stdout.is_empty(), "{}", run.stdout);
        assert_eq!(db.bytes(), bytes, "{table}: the file changed");
        assert_eq!(db.dump(), before);
        assert_eq!(backups(&db).len(), 1);

        db.exec("DROP TRIGGER inject_failure");
        let out = db.ok(&args(&["--json"])).json();
        assert_eq!(out["users_linked"], 3);
    }
}

#[test]
fn migrate_without_open_webui_tables_creates_the_organization_only_when_allowed() {
    let db = empty_db();
    let out = db.ok(&args(&["--allow-empty", "--json"])).json();
    assert_eq!(out["user_table"], false);
    assert_eq!(out["model_table"], false);
    assert_eq!(out["members_total"], 0);
    assert_eq!(out["models_total"], 0);
    let text = db.ok(&args(&["--allow-empty"])).stdout;
    assert!(text.contains("no Open WebUI `user` table"), "{text}");
    assert!(text.contains("the organization has no models"), "{text}");
}

/// Open WebUI keeps `model` rows only for edited models and presets; with
/// none and no model list seen by the gate, there is nothing to link: the
/// organization would be useless, so migrate refuses, before any backup,
/// and says how to go on.
#[test]
fn migrate_refuses_an_empty_link_set_unless_allowed() {
    let db = owui_only();
    db.exec("DELETE FROM model");
    let bytes = db.bytes();
    for extra in [&[][..], &["--dry-run"]] {
        let run = db.fails(&args(extra), 1, "would get no models");
        for hint in ["modelgate serve", "--allow-empty", "modelgate model enable"] {
            assert!(run.stderr.contains(hint), "{hint}: {}", run.stderr);
        }
        assert!(run.stdout.is_empty(), "{}", run.stdout);
    }
    let json = db.run(&args(&["--json"]));
    assert_eq!(json.code, 1);
    let err: serde_json::Value = serde_json::from_str(json.stderr.trim()).unwrap();
    assert_eq!(err["error"]["code"], "no_models_to_link");
    assert_eq!(db.bytes(), bytes, "a refusal changed the file");
    assert!(backups(&db).is_empty(), "a refusal left a backup");

    let dry = db
        .ok(&args(&["--allow-empty", "--dry-run", "--json"]))
        .json();
    assert_eq!(
        (dry["users_linked"].as_i64(), dry["models_total"].as_i64()),
        (Some(3), Some(0))
    );
    let out = db.ok(&args(&["--allow-empty", "--json"])).json();
    assert_eq!(out["users_linked"], 3);
    assert_eq!(out["models_linked"], 0);
    assert_eq!(out["model_source"], "known_models");
    assert_eq!(
        db.count("SELECT COUNT(*) FROM organizations WHERE id = 'mai_client_acme'"),
        1
    );
}

/// An empty `model` table, but the gate has recorded what the upstream
/// offers: those ids are linked (presets never: Open WebUI lists them in
/// `/api/models` too), and the dry run says the same.
#[test]
fn migrate_links_the_known_models_when_open_webui_has_no_base_models() {
    let db = owui_db();
    db.exec(
        "DELETE FROM model WHERE base_model_id IS NULL;
         INSERT INTO known_models (source, model_id, last_seen_at) VALUES
             ('egress', 'openai/gpt-4o', 1), ('egress', 'openai/o1', 1),
             ('ingress', 'openai/gpt-4o', 1), ('ingress', 'my-preset', 1);",
    );
    let dry = db.ok(&args(&["--dry-run", "--json"])).json();
    let out = db.ok(&args(&["--json"])).json();
    for r in [&dry, &out] {
        assert_eq!(r["model_source"], "known_models");
        assert_eq!(r["models_linked"], 3);
        assert_eq!(r["models_total"], 3);
    }
    let linked: Vec<String> = db
        .conn()
        .prepare("SELECT model_id FROM organization_models ORDER BY model_id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    // The recorded ids and the base `my-preset` names; never a preset
    // (`my-preset` was listed, and the loop's ids name each other).
    assert_eq!(linked, ["gpt-4o", "openai/gpt-4o", "openai/o1"]);
    let text = db.ok(&MIGRATE).stdout;
    assert!(text.contains("ids the gate has seen"), "{text}");
    // Its members can use the preset of a linked base.
    assert_eq!(db.run(&["access", "u1", "my-preset"]).code, 0);
}

#[test]
fn migrate_rejects_bad_arguments_before_any_backup() {
    let db = owui_only();
    db.fails(&["migrate", "--org-id", "x"], 2, "--org-name");
    db.fails(
        &["migrate", "--org-id", "", "--org-name", "X"],
        1,
        "organization id must not be empty",
    );
    db.fails(
        &["migrate", "--org-id", "x", "--org-name", ""],
        1,
        "organization name must not be empty",
    );
    assert!(backups(&db).is_empty());
}

#[test]
fn migrate_reports_progress_on_large_databases() {
    let db = owui_only();
    {
        let mut conn = db.conn();
        let tx = conn.transaction().unwrap();
        {
            let mut insert = tx
                .prepare("INSERT INTO user (id, email, role, name) VALUES (?1, ?1, 'user', ?1)")
                .unwrap();
            for i in 0..25_000 {
                insert.execute([format!("bulk-{i:05}")]).unwrap();
            }
        }
        tx.commit().unwrap();
    }
    let run = db.ok(&args(&["--json"]));
    assert_eq!(run.json()["users_linked"], 25_003);
    for n in ["10000", "20000"] {
        assert!(
            run.stderr.contains(&format!(
                "migrate: {n} rows inserted into organization_members"
            )),
            "{}",
            run.stderr
        );
    }
    assert!(!run.stderr.contains("30000"), "{}", run.stderr);
}
