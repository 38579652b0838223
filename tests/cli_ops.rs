//! The operator commands through the real binary: init, org, member,
//! model, access, report, audit, db-bench, on empty and Open WebUI-shaped
//! databases, in text and `--json`, and their failures.

mod cli_support;

use cli_support::*;

#[test]
fn init_creates_directory_file_and_schema_then_changes_nothing() {
    let db = missing_db();
    let first = db.ok(&["init", "--json"]).json();
    assert_eq!(first["file_created"], true);
    let created: Vec<&str> = first["created"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for name in [
        "organizations",
        "organization_members",
        "organization_models",
        "permission_audit_log",
        "idx_org_members_user_active",
        "idx_org_members_org_active",
        "idx_org_models_org_active",
        "idx_org_models_org_model",
        "user_available_models",
        "trg_organization_members_audit_update",
    ] {
        assert!(created.contains(&name), "{name} not in {created:?}");
    }
    assert!(!created.iter().any(|n| n.starts_with("sqlite_")));
    let before = db.dump();
    let again = db.ok(&["init"]);
    assert!(again.stdout.contains("nothing to do"), "{}", again.stdout);
    assert_eq!(db.dump(), before);
}

#[test]
fn init_repairs_a_dropped_index_on_an_open_webui_database() {
    let db = owui_db();
    db.exec("DROP INDEX idx_org_models_org_active");
    let out = db.ok(&["init", "--json"]).json();
    assert_eq!(out["file_created"], false);
    assert_eq!(
        out["created"],
        serde_json::json!(["idx_org_models_org_active"])
    );
    // Open WebUI's rows are untouched.
    assert_eq!(db.count("SELECT COUNT(*) FROM user"), 4);
}

#[test]
fn read_commands_refuse_a_missing_database_and_do_not_create_it() {
    let db = missing_db();
    for args in [
        &["org", "list"][..],
        &["member", "list", "a"],
        &["model", "list", "a"],
        &["access", "u1"],
        &["access", "u1", "gpt-4o"],
        &["report"],
        &["audit"],
        &["db-bench"],
        &["org", "create", "a", "--name", "A"],
        &["member", "add", "a", "u1"],
        &["migrate", "--org-id", "a", "--org-name", "A"],
    ] {
        db.fails(args, 1, "does not exist");
        assert!(!db.path.exists(), "{args:?} created the database");
    }
}

#[test]
fn commands_on_a_database_without_the_schema_point_to_init() {
    let db = owui_only();
    for args in [
        &["org", "list"][..],
        &["member", "list", "a"],
        &["report"],
        &["audit"],
        &["access", "u1", "gpt-4o"],
        &["org", "create", "a", "--name", "A"],
    ] {
        db.fails(args, 1, "modelgate init");
    }
}

#[test]
fn manage_an_empty_database_in_text_and_json() {
    let db = empty_db();
    let org = db
        .ok(&[
            "org", "create", "acme", "--name", "Acme Ltd", "--actor", "alice", "--json",
        ])
        .json();
    assert_eq!(org["outcome"], "created");
    assert_eq!(org["actor"], "alice");
    // Without a `user` table any user id is accepted.
    let added = db.ok(&["member", "add", "acme", "someone", "--role", "admin"]);
    assert!(added.stdout.contains("created"), "{}", added.stdout);
    let again = db.ok(&[
        "member", "add", "acme", "someone", "--role", "admin", "--json",
    ]);
    assert_eq!(again.json()["outcome"], "unchanged");
    // No model list seen and no `model` table: an exact id cannot be
    // checked, so it needs --force (and says so).
    db.fails(
        &["model", "enable", "acme", "gpt-4o"],
        1,
        "no model list has been seen yet",
    );
    let forced = db
        .ok(&["model", "enable", "acme", "gpt-4o", "--force", "--json"])
        .json();
    assert_eq!(forced["outcome"], "created");
    assert!(forced["note"].as_str().unwrap().contains("--force"));

    let orgs = db.ok(&["org", "list", "--json"]).json();
    assert_eq!(orgs[0]["id"], "acme");
    assert_eq!(orgs[0]["name"], "Acme Ltd");
    assert_eq!(orgs[0]["active_members"], 1);
    assert_eq!(orgs[0]["active_models"], 1);
    let text = db.ok(&["org", "list"]).stdout;
    assert!(text.contains("acme") && text.contains("Acme Ltd"), "{text}");

    let members = db.ok(&["member", "list", "acme", "--json"]).json();
    assert_eq!(members[0]["user_id"], "someone");
    assert_eq!(members[0]["role"], "admin");
    assert_eq!(members[0]["email"], serde_json::Value::Null);
    let models = db.ok(&["model", "list", "acme", "--json"]).json();
    assert_eq!(models[0]["model_id"], "gpt-4o");
    assert_eq!(models[0]["is_active"], true);

    let removed = db
        .ok(&["member", "remove", "acme", "someone", "--json"])
        .json();
    assert_eq!(removed["outcome"], "deactivated");
    let disabled = db
        .ok(&["model", "disable", "acme", "gpt-4o", "--json"])
        .json();
    assert_eq!(disabled["outcome"], "deactivated");
    let members = db.ok(&["member", "list", "acme", "--json"]).json();
    assert_eq!(members[0]["is_active"], false);
    assert!(db
        .ok(&["member", "list", "acme"])
        .stdout
        .contains("inactive"));

    let report = db.ok(&["report", "--json"]).json();
    assert_eq!(report["user_table"], false);
    assert_eq!(report["total_users"], serde_json::Value::Null);
    assert_eq!(report["users_with_organization"], 0);
    assert_eq!(report["organizations"][0]["active_members"], 0);
    assert_eq!(
        db.ok(&["report", "--users", "--json"]).json(),
        serde_json::json!([])
    );
    assert!(db
        .ok(&["report", "--users"])
        .stdout
        .contains("no active memberships"));
    db.ok(&["report"]);
    assert!(db.ok(&["audit"]).stdout.contains("someone"));
}

#[test]
fn manage_an_open_webui_database() {
    let db = owui_db();
    db.ok(&["org", "create", "a", "--name", "Org A"]);
    db.ok(&["org", "create", "b", "--name", "Org B"]);
    db.ok(&["member", "add", "a", "u1"]);
    db.ok(&["member", "add", "b", "u1", "--role", "admin"]);
    db.ok(&["member", "add", "a", "u2"]);
    db.ok(&["model", "enable", "a", "gpt-4o"]);
    db.ok(&["model", "enable", "b", "claude-3"]);
    // An upstream model without a `model` row, no list seen: --force.
    db.ok(&["model", "enable", "b", "openrouter/mistral", "--force"]);

    let members = db.ok(&["member", "list", "a", "--json"]).json();
    assert_eq!(members[0]["email"], "u1@example.com");
    let models = db.ok(&["model", "list", "b", "--json"]).json();
    assert_eq!(models[0]["name"], "Claude 3");
    assert_eq!(models[1]["name"], serde_json::Value::Null);

    let report = db.ok(&["report", "--json"]).json();
    assert_eq!(report["user_table"], true);
    assert_eq!(report["total_users"], 4);
    assert_eq!(report["open_webui_admins"], 1);
    assert_eq!(report["users_with_organization"], 2);
    assert_eq!(report["users_without_organization"], 2);
    let orgs = report["organizations"].as_array().unwrap();
    assert_eq!(orgs[0]["id"], "a");
    assert_eq!(orgs[0]["active_members"], 2);
    assert_eq!(orgs[0]["admins"], 0);
    assert_eq!(orgs[1]["admins"], 1);
    assert_eq!(orgs[1]["active_models"], 2);
    let text = db.ok(&["report"]).stdout;
    assert!(text.contains("Org A") && text.contains("ADMINS"), "{text}");
    assert!(text.contains("in no organization:           2"), "{text}");
    assert!(text.contains("report --users"), "{text}");

    let users = db.ok(&["report", "--users", "--json"]).json();
    let users = users.as_array().unwrap();
    assert_eq!(users.len(), 3);
    let u1b = users
        .iter()
        .find(|u| u["user_id"] == "u1" && u["organization_id"] == "b")
        .unwrap();
    assert_eq!(u1b["email"], "u1@example.com");
    assert_eq!(u1b["name"], "Uma One");
    assert_eq!(u1b["user_role"], "user");
    assert_eq!(u1b["membership_role"], "admin");
    assert_eq!(u1b["accessible_models"], 2);
    let text = db.ok(&["report", "--users"]).stdout;
    assert!(text.starts_with("USER "), "{text}");
    assert!(text.contains("u1@example.com"), "{text}");
    assert_eq!(text.lines().count(), 4, "{text}");

    let only_a = db.ok(&["report", "--org", "a", "--json"]).json();
    assert_eq!(only_a["organizations"].as_array().unwrap().len(), 1);
    let only_a = db.ok(&["report", "--org", "a", "--users", "--json"]).json();
    assert_eq!(only_a.as_array().unwrap().len(), 2);
}

#[test]
fn enabling_a_preset_warns_that_it_grants_nothing() {
    let db = owui_db();
    db.ok(&["org", "create", "a", "--name", "A"]);
    let out = db
        .ok(&["model", "enable", "a", "my-preset", "--json"])
        .json();
    assert_eq!(out["outcome"], "created");
    assert!(
        out["note"].as_str().unwrap().contains("enable 'gpt-4o'"),
        "{out}"
    );
    let text = db.ok(&["model", "enable", "a", "preset-of-preset"]).stdout;
    assert!(
        text.contains("note:") && text.contains("'gpt-4o'"),
        "{text}"
    );
    assert!(db.ok(&["model", "enable", "a", "gpt-4o", "--json"]).json()["note"].is_null());
}

#[test]
fn bad_input_gets_a_clear_message_and_a_non_zero_exit() {
    let db = owui_db();
    db.ok(&["org", "create", "a", "--name", "A"]);
    let unknown = "organization 'nope' does not exist";
    db.fails(&["member", "add", "nope", "u1"], 1, unknown);
    db.fails(&["member", "remove", "nope", "u1"], 1, unknown);
    db.fails(&["member", "list", "nope"], 1, unknown);
    db.fails(&["model", "enable", "nope", "gpt-4o"], 1, unknown);
    db.fails(&["model", "disable", "nope", "gpt-4o"], 1, unknown);
    db.fails(&["model", "list", "nope"], 1, unknown);
    db.fails(&["report", "--org", "nope"], 1, unknown);
    db.fails(&["report", "--org", "nope", "--users"], 1, unknown);
    db.fails(
        &["member", "add", "a", "u1", "--role", "owner"],
        2,
        "invalid role",
    );
    db.fails(
        &["org", "create", "", "--name", "A"],
        1,
        "organization id must not be empty",
    );
    db.fails(
        &["org", "create", "x", "--name", " "],
        1,
        "organization name must not be empty",
    );
    db.fails(
        &["member", "add", "a", ""],
        1,
        "user id or email must not be empty",
    );
    db.fails(
        &["model", "enable", "a", ""],
        1,
        "model id or pattern must not be empty",
    );
    db.fails(&["access", ""], 1, "user id must not be empty");
    db.fails(&["access", "u1", ""], 1, "model id must not be empty");
    db.fails(
        &["org", "create", "x", "--name", "X", "--actor", ""],
        1,
        "actor must not be empty",
    );
    db.fails(
        &["member", "add", "a", "ghost"],
        1,
        "user 'ghost' does not exist",
    );
    db.fails(
        &["member", "remove", "a", "u2"],
        1,
        "not a member of organization 'a'",
    );
    db.fails(
        &["model", "disable", "a", "gpt-4o"],
        1,
        "neither allowed nor denied for organization 'a'",
    );
    db.fails(&["audit", "--limit", "many"], 2, "invalid value");
    db.fails(&["db-bench", "--iterations", "0"], 2, "invalid value");
    db.fails(&["member", "add", "a"], 2, "required");
    // Nothing of that reached the audit log (only the organization's creation).
    assert_eq!(
        db.count("SELECT COUNT(*) FROM permission_audit_log WHERE table_name != 'organizations'"),
        0
    );
}

#[test]
fn audit_records_the_actor_newest_first() {
    let db = owui_db();
    db.ok(&["org", "create", "a", "--name", "A"]);
    db.ok(&["member", "add", "a", "u1", "--actor", "alice"]);
    // Default actor: the OS user.
    let run = db.run_env(&["member", "add", "a", "u2"], &[("USER", "bob")]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = db.run_env(&["model", "enable", "a", "gpt-4o"], &[("LOGNAME", "carol")]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    db.ok(&["model", "disable", "a", "gpt-4o"]);
    db.ok(&["member", "remove", "a", "u1", "--actor", "alice"]);
    // A writer other than modelgate: logged with no actor.
    db.exec("UPDATE organization_members SET role = 'admin' WHERE user_id = 'u2'");

    let log = db.ok(&["audit", "--json"]).json();
    let log = log.as_array().unwrap();
    assert_eq!(log.len(), 7);
    let actors: Vec<&serde_json::Value> = log.iter().map(|e| &e["actor"]).collect();
    assert_eq!(
        actors,
        [
            &serde_json::Value::Null,
            &serde_json::json!("alice"),
            &serde_json::json!("cli"),
            &serde_json::json!("carol"),
            &serde_json::json!("bob"),
            &serde_json::json!("alice"),
            &serde_json::json!("cli"),
        ]
    );
    assert_eq!(log[6]["table_name"], "organizations");
    assert_eq!(log[1]["action"], "UPDATE");
    assert_eq!(log[1]["old_values"]["is_active"], 1);
    assert_eq!(log[1]["new_values"]["is_active"], 0);
    assert_eq!(log[5]["action"], "INSERT");
    assert_eq!(log[5]["subject"], "u1");

    let two = db.ok(&["audit", "--limit", "2", "--json"]).json();
    assert_eq!(two.as_array().unwrap().len(), 2);
    let text = db.ok(&["audit", "--limit", "2"]).stdout;
    assert!(text.contains("(external)"), "{text}");
    assert!(text.contains("is_active 1→0"), "{text}");
}

#[test]
fn audit_on_a_fresh_database_is_empty() {
    let db = empty_db();
    assert_eq!(db.ok(&["audit", "--json"]).json(), serde_json::json!([]));
    assert!(db.ok(&["audit"]).stdout.contains("no permission changes"));
}

fn access_fixture() -> Db {
    let db = owui_db();
    db.ok(&["org", "create", "a", "--name", "A"]);
    db.ok(&["org", "create", "b", "--name", "B"]);
    db.ok(&["member", "add", "a", "u1"]);
    db.ok(&["member", "add", "b", "u1"]);
    db.ok(&["model", "enable", "a", "gpt-4o"]);
    db.ok(&["model", "enable", "b", "my-preset"]);
    db
}

#[test]
fn access_explains_allowed_through_a_preset() {
    let db = access_fixture();
    let run = db.ok(&["access", "u1", "preset-of-preset"]);
    assert!(
        run.stdout
            .contains("preset-of-preset → my-preset → gpt-4o (root) → permitted by organization a"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("decision: allowed"));
    assert!(run.stdout.contains("Open WebUI role: user"));
    let json = db.ok(&["access", "u1", "my-preset", "--json"]).json();
    assert_eq!(json["organizations"], serde_json::json!(["a", "b"]));
    assert_eq!(json["model"]["decision"]["decision"], "allowed");
    assert_eq!(json["model"]["decision"]["root"], "gpt-4o");
    assert_eq!(json["model"]["chain"]["end"], "root");
    assert_eq!(json["model"]["chain"]["steps"][1]["name"], "GPT-4o");
    // The link to a preset is listed, and flagged as granting nothing.
    let permitted = json["permitted_models"].as_array().unwrap();
    let preset = permitted
        .iter()
        .find(|m| m["model"] == "my-preset")
        .unwrap();
    assert_eq!(preset["preset_of"], "gpt-4o");
}

#[test]
fn access_explains_denials_with_exit_code_3() {
    let db = access_fixture();
    let run = db.run(&["access", "u1", "claude-3"]);
    assert_eq!(run.code, 3, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains("claude-3 (root) → not permitted in orgs [a, b]"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("decision: denied"));

    let cycle = db.run(&["access", "u1", "loop-a", "--json"]);
    assert_eq!(cycle.code, 3);
    let json = cycle.json();
    assert_eq!(json["model"]["decision"]["reason"], "cycle");
    assert_eq!(json["model"]["chain"]["end"], "cycle");
    let explanation = json["model"]["explanation"].as_str().unwrap();
    assert!(
        explanation.starts_with("loop-a → loop-b → loop-a"),
        "{explanation}"
    );

    // Not a member anywhere (u2), and a user nobody has heard of.
    let none = db.run(&["access", "u2", "gpt-4o", "--json"]);
    assert_eq!(none.code, 3);
    assert_eq!(
        none.json()["model"]["decision"]["reason"],
        "no_organization"
    );
    let ghost = db.run(&["access", "ghost", "gpt-4o"]);
    assert_eq!(ghost.code, 3);
    assert!(ghost.stdout.contains("unknown"), "{}", ghost.stdout);

    // Revocation is immediate for the explanation too.
    db.ok(&["model", "disable", "a", "gpt-4o"]);
    assert_eq!(db.run(&["access", "u1", "my-preset"]).code, 3);
}

#[test]
fn access_without_a_model_lists_and_exits_0() {
    let db = access_fixture();
    let json = db.ok(&["access", "u1", "--json"]).json();
    assert!(json["model"].is_null());
    let models: Vec<&str> = json["permitted_models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["model"].as_str().unwrap())
        .collect();
    assert_eq!(models, ["gpt-4o", "my-preset"]);
    db.ok(&["access", "ghost"]);
}

#[test]
fn access_on_a_database_without_open_webui_tables() {
    let db = empty_db();
    db.ok(&["org", "create", "a", "--name", "A"]);
    db.ok(&["member", "add", "a", "x"]);
    db.ok(&["model", "enable", "a", "m", "--force"]);
    assert!(db
        .ok(&["access", "x", "m"])
        .stdout
        .contains("m (root) → permitted"));
    assert_eq!(db.run(&["access", "x", "n"]).code, 3);
}

#[test]
fn db_bench_passes_with_indexes_and_fails_without() {
    let db = access_fixture();
    let ok = db.ok(&["db-bench", "--iterations", "20", "--json"]).json();
    assert_eq!(ok["ok"], true);
    assert_eq!(ok["iterations"], 20);
    assert_eq!(
        ok["queries"].as_array().unwrap().len(),
        5,
        "the seed's three queries and our two lookup queries"
    );
    assert!(ok["queries"][0]["p99_us"].as_f64().is_some());
    assert!(db
        .ok(&["db-bench", "--iterations", "5"])
        .stdout
        .contains("every query uses its index"));

    db.exec("DROP INDEX idx_org_members_user_active");
    let failed = db.run(&["db-bench", "--iterations", "5"]);
    assert_eq!(failed.code, 4, "{}{}", failed.stdout, failed.stderr);
    assert!(
        failed
            .stdout
            .contains("index not used: idx_org_members_user_active"),
        "{}",
        failed.stdout
    );
    let json = db.run(&["db-bench", "--iterations", "5", "--json"]);
    assert_eq!(json.code, 4);
    assert_eq!(json.json()["ok"], false);
    // `init` repairs it.
    db.ok(&["init"]);
    db.ok(&["db-bench", "--iterations", "5"]);
}

#[test]
fn db_bench_generate_refuses_an_existing_file() {
    let db = empty_db();
    db.fails(&["db-bench", "--generate"], 1, "only writes a new file");
}

#[test]
fn database_comes_from_the_environment_too() {
    let db = empty_db();
    let out = modelgate()
        .env("MODELGATE_DATABASE", &db.path)
        .args(["org", "list", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap(),
        serde_json::json!([])
    );
}

/// `report` on a database big enough that the old all-in-memory report
/// would show (20,000 users): the summary is counts computed in SQL, and
/// `--users` streams one row per active membership. No timing asserts: the
/// figures for 100,000 users are measured by hand (README).
#[test]
fn report_summarizes_and_streams_a_large_database() {
    const USERS: usize = 20_000;
    let db = missing_db();
    std::fs::create_dir_all(db.path.parent().unwrap()).unwrap();
    {
        let conn = rusqlite::Connection::open(&db.path).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        modelgate::store::webui_fixture::create_open_webui_tables(&conn).unwrap();
    }
    db.ok(&["init"]);
    let mut conn = db.conn();
    let tx = conn.transaction().unwrap();
    {
        let mut user = tx
            .prepare("INSERT INTO user (id, email, name, role) VALUES (?1, ?1 || '@example.com', ?1, ?2)")
            .unwrap();
        for i in 0..USERS {
            // Every 500th user is an Open WebUI admin: 40 of them.
            let role = if i % 500 == 0 { "admin" } else { "user" };
            user.execute(rusqlite::params![format!("user-{i:05}"), role])
                .unwrap();
        }
        tx.execute_batch(
            "INSERT INTO organizations (id, name) VALUES ('big', 'Big'), ('small', 'Small'), ('empty', 'Empty');
             INSERT INTO organization_models (id, organization_id, model_id, is_active) VALUES
                 ('l1', 'big', 'm1', 1), ('l2', 'big', 'm2', 1), ('l3', 'big', 'm3', 1),
                 ('l4', 'big', 'm4', 1), ('l5', 'big', 'm5', 1), ('l6', 'big', 'm6', 0),
                 ('l7', 'small', 'm1', 1), ('l8', 'small', 'm7', 1);",
        )
        .unwrap();
        let mut member = tx
            .prepare(
                "INSERT INTO organization_members (id, organization_id, user_id, role, is_active)
                 VALUES (?1 || '/' || ?2, ?1, ?2, ?3, ?4)",
            )
            .unwrap();
        // big: users 0..15,000 (10 org admins); small: 15,000..15,500,
        // plus 100 inactive memberships of big's users; 4,500 in none.
        for i in 0..15_000 {
            let role = if i < 10 { "admin" } else { "member" };
            member
                .execute(rusqlite::params!["big", format!("user-{i:05}"), role, 1])
                .unwrap();
        }
        for i in 15_000..15_500 {
            member
                .execute(rusqlite::params![
                    "small",
                    format!("user-{i:05}"),
                    "member",
                    1
                ])
                .unwrap();
        }
        for i in 0..100 {
            member
                .execute(rusqlite::params![
                    "small",
                    format!("user-{i:05}"),
                    "member",
                    0
                ])
                .unwrap();
        }
    }
    tx.commit().unwrap();
    drop(conn);

    let summary = db.ok(&["report", "--json"]).json();
    assert_eq!(summary["total_users"], USERS);
    assert_eq!(summary["open_webui_admins"], 40);
    assert_eq!(summary["users_with_organization"], 15_500);
    assert_eq!(summary["users_without_organization"], 4_500);
    let orgs: Vec<(String, i64, i64, i64)> = summary["organizations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["id"].as_str().unwrap().to_string(),
                o["active_members"].as_i64().unwrap(),
                o["admins"].as_i64().unwrap(),
                o["active_models"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        orgs,
        [
            ("big".to_string(), 15_000, 10, 5),
            ("empty".to_string(), 0, 0, 0),
            ("small".to_string(), 500, 0, 2),
        ]
    );
    // The text summary stays a screenful, whatever the user count.
    let text = db.ok(&["report"]).stdout;
    assert!(text.lines().count() < 20, "{text}");
    assert!(text.contains("20000 (40 admins)"), "{text}");

    // The listing: one JSON array, one object per line.
    let listing = db.ok(&["report", "--users", "--json"]);
    let rows = listing.json();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 15_500);
    assert_eq!(listing.stdout.lines().count(), 15_500 + 2);
    assert_eq!(rows[0]["user_id"], "user-00000");
    assert_eq!(rows[0]["membership_role"], "admin");
    assert_eq!(rows[0]["user_role"], "admin");
    assert_eq!(rows[0]["accessible_models"], 5);
    assert_eq!(rows[15_499]["organization_id"], "small");
    assert_eq!(rows[15_499]["accessible_models"], 2);
    let sorted = rows
        .windows(2)
        .all(|w| w[0]["user_id"].as_str() <= w[1]["user_id"].as_str());
    assert!(sorted, "rows are ordered by user");
    // Text: a header and one line per membership.
    let text = db.ok(&["report", "--users"]).stdout;
    assert_eq!(text.lines().count(), 15_500 + 1);
    let small = db
        .ok(&["report", "--users", "--org", "small", "--json"])
        .json();
    assert_eq!(small.as_array().unwrap().len(), 500);
}

/// A reader that closes the pipe early (`| head`) is not an error.
#[test]
fn report_users_into_a_closed_pipe_exits_0() {
    use std::process::Stdio;
    let db = access_fixture();
    let mut child = modelgate()
        .arg("--db")
        .arg(&db.path)
        .args(["report", "--users"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The modification time, size and `-wal` of the database file.
fn file_state(path: &std::path::Path) -> (std::time::SystemTime, u64, Option<u64>) {
    let meta = std::fs::metadata(path).unwrap();
    let wal = std::fs::metadata(format!("{}-wal", path.display()))
        .ok()
        .map(|m| m.len());
    (meta.modified().unwrap(), meta.len(), wal)
}

/// Every read command opens with SQLITE_OPEN_READ_ONLY: on a WAL database
/// it neither writes the file nor grows a `-wal`, and it works while
/// another connection holds the write lock with an uncommitted change
/// (which it does not see). A command that tried to write would wait out
/// the 5 s busy timeout and fail.
#[test]
fn read_commands_never_write_a_wal_database() {
    let db = access_fixture();
    let before = file_state(&db.path);
    let reads: [&[&str]; 11] = [
        &["report"],
        &["report", "--json"],
        &["report", "--users"],
        &["report", "--users", "--json", "--org", "a"],
        &["audit"],
        &["org", "list"],
        &["member", "list", "a"],
        &["model", "list", "a", "--json"],
        &["access", "u1"],
        &["access", "u1", "gpt-4o", "--json"],
        &["db-bench", "--iterations", "2"],
    ];
    for args in reads {
        db.ok(args);
    }
    let after = file_state(&db.path);
    assert_eq!(
        (after.0, after.1),
        (before.0, before.1),
        "a read command wrote the file"
    );
    // A read-only connection may leave an empty `-wal` behind (it cannot
    // checkpoint and delete it, the writer that comes next reuses it), but
    // never writes a frame into it.
    assert_eq!(after.2.unwrap_or(0), 0, "a read command wrote to the -wal");

    let writer = db.conn();
    writer.pragma_update(None, "journal_mode", "WAL").unwrap();
    writer
        .execute_batch(
            "BEGIN IMMEDIATE; INSERT INTO organizations (id, name) VALUES ('pending', 'Pending');",
        )
        .unwrap();
    for args in reads {
        db.ok(args);
    }
    let orgs = db.ok(&["org", "list", "--json"]).json();
    assert_eq!(
        orgs.as_array().unwrap().len(),
        2,
        "uncommitted row seen: {orgs}"
    );
    writer.execute_batch("ROLLBACK").unwrap();
}

/// Every open failure names the file, what is wrong and what to do, for
/// read and write commands alike, in text and (with a stable code) JSON.
#[test]
fn open_errors_name_the_file_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let run = |db: &std::path::Path, args: &[&str]| -> Run {
        modelgate()
            .arg("--db")
            .arg(db)
            .args(args)
            .output()
            .unwrap()
            .into()
    };
    let check = |db: &std::path::Path, code: &str, says: &[&str]| {
        for args in [
            &["report"][..],
            &["audit"],
            &["org", "create", "x", "--name", "X"],
        ] {
            let text = run(db, args);
            assert_eq!(text.code, 1, "{args:?}: {}", text.stderr);
            assert!(
                text.stderr.contains(&db.display().to_string()),
                "{args:?}: {}",
                text.stderr
            );
            for s in says {
                assert!(
                    text.stderr.contains(s),
                    "{args:?}: {s:?} not in {}",
                    text.stderr
                );
            }
            let mut json_args = args.to_vec();
            json_args.push("--json");
            let json = run(db, &json_args);
            assert_eq!(json.code, 1);
            assert!(json.stdout.is_empty(), "{}", json.stdout);
            let err: serde_json::Value = serde_json::from_str(json.stderr.trim())
                .unwrap_or_else(|e| panic!("not JSON ({e}): {}", json.stderr));
            assert_eq!(err["error"]["code"], code, "{err}");
            assert!(err["error"]["message"]
                .as_str()
                .unwrap()
                .contains(&db.display().to_string()));
        }
    };
    // In a directory that does not exist: the directory is named.
    let nowhere = dir.path().join("nowhere").join("data").join("webui.db");
    check(
        &nowhere,
        "database_not_found",
        &[
            "does not exist",
            &format!(
                "nor does its directory {}",
                dir.path().join("nowhere").display()
            ),
        ],
    );
    assert!(!dir.path().join("nowhere").exists());
    // A directory given as the database.
    check(
        dir.path(),
        "database_is_directory",
        &["is a directory", "webui.db"],
    );
    // A file that is not SQLite.
    let text = dir.path().join("notes.txt");
    std::fs::write(
        &text,
        "these are not the tables you are looking for\n".repeat(40),
    )
    .unwrap();
    let before = std::fs::read(&text).unwrap();
    check(
        &text,
        "not_a_database",
        &["not an SQLite database", "webui.db"],
    );
    assert_eq!(std::fs::read(&text).unwrap(), before);
}

#[test]
fn json_errors_are_json_with_a_stable_code() {
    let db = owui_db();
    let run = db.run(&["member", "list", "nope", "--json"]);
    assert_eq!(run.code, 1);
    assert!(run.stdout.is_empty());
    let err: serde_json::Value = serde_json::from_str(run.stderr.trim()).unwrap();
    assert_eq!(err["error"]["code"], "unknown_organization");
    assert_eq!(
        err["error"]["message"],
        "organization 'nope' does not exist"
    );
    // Argument errors too (exit 2), and a missing schema.
    let run = db.run(&["audit", "--limit", "many", "--json"]);
    assert_eq!(run.code, 2);
    let err: serde_json::Value = serde_json::from_str(run.stderr.trim())
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", run.stderr));
    assert_eq!(err["error"]["code"], "invalid_arguments");
    assert!(
        err["error"]["message"].as_str().unwrap().contains("many"),
        "{err}"
    );
    let bare = owui_only();
    let run = bare.run(&["report", "--json"]);
    let err: serde_json::Value = serde_json::from_str(run.stderr.trim()).unwrap();
    assert_eq!(err["error"]["code"], "schema_missing");
    // Without --json, errors stay one plain line.
    db.fails(
        &["member", "list", "nope"],
        1,
        "modelgate: organization 'nope'",
    );
}

#[test]
fn audit_limit_0_is_refused_not_reported_as_an_empty_log() {
    let db = owui_db();
    db.ok(&["org", "create", "a", "--name", "A"]);
    db.ok(&["member", "add", "a", "u1"]);
    let run = db.fails(&["audit", "--limit", "0"], 2, "at least 1");
    assert!(
        !run.stdout.contains("no permission changes"),
        "{}",
        run.stdout
    );
    assert_eq!(
        db.ok(&["audit", "--limit", "1", "--json"])
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

/// An I/O error's text appears once, not once per layer of the chain.
#[test]
fn a_missing_config_file_is_reported_once() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("missing.toml");
    let run: Run = modelgate()
        .arg("--db")
        .arg(dir.path().join("webui.db"))
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .unwrap()
        .into();
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains(&config.display().to_string()),
        "{}",
        run.stderr
    );
    assert_eq!(
        run.stderr.matches("os error 2").count(),
        1,
        "{}",
        run.stderr
    );
}

/// Latencies are rounded to 0.1 µs in `--json` as in the text.
#[test]
fn db_bench_json_latencies_are_rounded() {
    let db = access_fixture();
    let out = db.ok(&["db-bench", "--iterations", "20", "--json"]).json();
    for q in out["queries"].as_array().unwrap() {
        for key in ["p50_us", "p95_us", "p99_us"] {
            let text = q[key].to_string();
            let decimals = text.split('.').nth(1).map_or(0, str::len);
            assert!(decimals <= 1, "{key} = {text}");
        }
    }
}

/// Long cells are cut with `…` in text tables; `--json` keeps them whole.
#[test]
fn tables_cut_long_cells() {
    let db = empty_db();
    let long = "A very long organization name that goes on ".repeat(5);
    db.ok(&["org", "create", "acme", "--name", &long]);
    let text = db.ok(&["org", "list"]).stdout;
    assert!(text.contains('…'), "{text}");
    for line in text.lines() {
        assert!(line.chars().count() < 120, "unbounded column: {line}");
    }
    assert_eq!(
        db.ok(&["org", "list", "--json"]).json()[0]["name"],
        long.as_str()
    );
}

/// The operator mistakes the issue names: a typo'd id, a pattern that
/// grants nothing, and a deny that an allow would otherwise look like it
/// overrides.
#[test]
fn typos_are_refused_with_suggestions_and_empty_patterns_warn() {
    let db = owui_db();
    db.ok(&["org", "create", "a", "--name", "A"]);
    // `gpt-4o` and `claude-3` are in Open WebUI's model table: known.
    let typo = db.run(&["model", "enable", "a", "gtp-4o"]);
    assert_eq!(typo.code, 1, "{}", typo.stderr);
    assert!(
        typo.stderr.contains("Did you mean 'gpt-4o'?"),
        "{}",
        typo.stderr
    );
    assert!(typo.stderr.contains("--force"), "{}", typo.stderr);
    let json = db.run(&["model", "enable", "a", "gtp-4o", "--json"]);
    let err: serde_json::Value = serde_json::from_str(&json.stderr).unwrap();
    assert_eq!(err["error"]["code"], "unknown_model");
    // Nothing was written.
    assert!(db
        .ok(&["model", "list", "a", "--json"])
        .json()
        .as_array()
        .unwrap()
        .is_empty());

    // A glob matching no known model is accepted, with a warning.
    let glob = db.ok(&["model", "enable", "a", "opnai/*", "--json"]).json();
    assert_eq!(glob["outcome"], "created");
    assert!(
        glob["note"].as_str().unwrap().contains("matches none"),
        "{glob}"
    );
    let fine = db.ok(&["model", "enable", "a", "gpt-*", "--json"]).json();
    assert!(fine["note"].is_null(), "{fine}");

    // A deny elsewhere is named when an allow it overrides is added.
    db.ok(&["org", "create", "b", "--name", "B"]);
    db.ok(&["model", "deny", "b", "claude-*"]);
    let shadowed = db
        .ok(&["model", "enable", "a", "claude-3", "--json"])
        .json();
    assert!(
        shadowed["note"].as_str().unwrap().contains("claude-* in b"),
        "{shadowed}"
    );
    // Bad escapes are refused with the rule.
    db.fails(&["model", "enable", "a", "x\\y"], 1, "is not an escape");
}
