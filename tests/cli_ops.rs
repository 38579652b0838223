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
    assert_eq!(
        db.ok(&["model", "enable", "acme", "gpt-4o", "--json"])
            .json()["outcome"],
        "created"
    );

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
    assert_eq!(report["users"], serde_json::json!([]));
    assert_eq!(report["organizations"][0]["active_members"], 0);
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
    // Upstream models need no `model` row.
    db.ok(&["model", "enable", "b", "openrouter/mistral"]);

    let members = db.ok(&["member", "list", "a", "--json"]).json();
    assert_eq!(members[0]["email"], "u1@example.com");
    let models = db.ok(&["model", "list", "b", "--json"]).json();
    assert_eq!(models[0]["name"], "Claude 3");
    assert_eq!(models[1]["name"], serde_json::Value::Null);

    let report = db.ok(&["report", "--json"]).json();
    assert_eq!(report["user_table"], true);
    let users = report["users"].as_array().unwrap();
    assert_eq!(users.len(), 3);
    let u1b = users
        .iter()
        .find(|u| u["user_id"] == "u1" && u["organization_id"] == "b")
        .unwrap();
    assert_eq!(u1b["email"], "u1@example.com");
    assert_eq!(u1b["name"], "Uma One");
    assert_eq!(u1b["membership_role"], "admin");
    assert_eq!(u1b["accessible_models"], 2);
    // Names where Open WebUI has a row, ids where it does not (the seed's
    // inner join dropped those models).
    assert_eq!(
        u1b["model_names"],
        serde_json::json!(["Claude 3", "openrouter/mistral"])
    );
    let orgs = report["organizations"].as_array().unwrap();
    assert_eq!(orgs[0]["id"], "a");
    assert_eq!(orgs[0]["active_members"], 2);
    assert_eq!(orgs[1]["active_models"], 2);
    let text = db.ok(&["report"]).stdout;
    assert!(
        text.contains("u1@example.com") && text.contains("GPT-4o"),
        "{text}"
    );
    // u1 is an admin of organization b.
    let admins = text.split("Administrators").nth(1).unwrap();
    let admins = admins.split("User model access").next().unwrap();
    assert!(
        admins.contains("u1@example.com") && !admins.contains("u2"),
        "{text}"
    );
    let only_a = db.ok(&["report", "--org", "a", "--json"]).json();
    assert_eq!(only_a["users"].as_array().unwrap().len(), 2);
    assert_eq!(only_a["organizations"].as_array().unwrap().len(), 1);
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
    db.fails(&["member", "add", "a", ""], 1, "user id must not be empty");
    db.fails(
        &["model", "enable", "a", ""],
        1,
        "model id must not be empty",
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
        "not enabled for organization 'a'",
    );
    db.fails(&["audit", "--limit", "many"], 2, "invalid value");
    db.fails(&["db-bench", "--iterations", "0"], 2, "invalid value");
    db.fails(&["member", "add", "a"], 2, "required");
    // Nothing of that reached the audit log.
    assert_eq!(db.count("SELECT COUNT(*) FROM permission_audit_log"), 0);
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
    assert_eq!(log.len(), 6);
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
        ]
    );
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
    db.ok(&["model", "enable", "a", "m"]);
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
