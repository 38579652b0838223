//! Every operator command on a real PostgreSQL (the real binary, `--db
//! postgresql://...`), good and bad input, the audit actor of each write,
//! and the same command sequence giving the same `--json` on SQLite and
//! PostgreSQL (ids and times aside).

mod pg_support;

use std::path::Path;
use std::process::Command;

use pg_support::{PgServer, DATABASE};
use serde_json::Value;

/// Open WebUI 0.12.4's tables as its migrations create them on PostgreSQL.
const OPEN_WEBUI_DDL: &str = include_str!("pg_support/open_webui_0_12_4.sql");

/// The same Open WebUI rows for both databases; `{T}`/`{F}` are booleans.
const ROWS: &str = r#"
INSERT INTO "user" (id, name, email, role) VALUES
  ('admin1', 'Ada Admin', 'admin@example.com', 'admin'),
  ('u1', 'Uma One', 'u1@example.com', 'user'),
  ('u2', 'Udo Two', 'u2@example.com', 'user'),
  ('ann', 'Ann', 'ann@example.com', 'user'),
  ('pending1', 'Pat Pending', 'p@example.com', 'pending');
INSERT INTO model (id, user_id, base_model_id, name, params, meta, is_active) VALUES
  ('gpt-4o', NULL, NULL, 'GPT-4o', '{}', '{}', {T}),
  ('claude-3', NULL, NULL, 'Claude 3', '{}', '{}', {T}),
  ('old-model', NULL, NULL, 'Old', '{}', '{}', {F}),
  ('openai/gpt-5', NULL, NULL, 'GPT-5', '{}', '{}', {T}),
  ('my-preset', 'u1', 'gpt-4o', 'My preset', '{}', '{}', {T});
INSERT INTO "group" (id, user_id, name, description, created_at, updated_at) VALUES
  ('g-eng', 'admin1', 'engineering', '', 0, 0), ('g-t1', 'admin1', 'twins', '', 0, 0),
  ('g-t2', 'admin1', 'twins', '', 0, 0);
INSERT INTO group_member (id, group_id, user_id) VALUES ('gm1', 'g-eng', 'ann');
"#;

fn rows(t: &str, f: &str) -> String {
    ROWS.replace("{T}", t).replace("{F}", f)
}

/// A PostgreSQL database as Open WebUI leaves it, plus our `init`.
fn postgres(pg: &PgServer) -> String {
    pg.psql(DATABASE, OPEN_WEBUI_DDL);
    pg.psql(DATABASE, &rows("true", "false"));
    let url = pg.url();
    let init = run(&url, &["init", "--json"]);
    assert_eq!(init.code, 0, "{}", init.stderr);
    url
}

/// The same on a SQLite file.
fn sqlite(dir: &Path) -> String {
    let path = dir.join("webui.db");
    let conn = modelgate::store::admin::open_writer(&path).unwrap();
    conn.execute_batch(modelgate::store::webui_fixture::OPEN_WEBUI_TABLES)
        .unwrap();
    conn.execute_batch(&rows("1", "0")).unwrap();
    drop(conn);
    let db = path.display().to_string();
    assert_eq!(run(&db, &["init"]).code, 0);
    db
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\n{}",
                self.stdout, self.stderr
            )
        })
    }

    /// `(exit code, error code, message)` of a `--json` failure.
    fn error(&self) -> (i32, String, String) {
        let e: Value = serde_json::from_str(self.stderr.trim())
            .unwrap_or_else(|e| panic!("stderr is not JSON ({e}):\n{}", self.stderr));
        (
            self.code,
            e["error"]["code"].as_str().unwrap_or_default().to_string(),
            e["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        )
    }
}

/// The real binary with nothing from this environment but `--db`.
fn run(db: &str, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_modelgate"))
        .env_clear()
        .arg("--db")
        .arg(db)
        .args(args)
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Every write, listing, report and refusal, in an order where each one
/// means something; `--json` on all.
const SEQUENCE: &[&[&str]] = &[
    &[
        "org", "create", "acme", "--name", "Acme", "--actor", "alice",
    ],
    &[
        "org", "create", "acme", "--name", "Acme", "--actor", "alice",
    ],
    &[
        "org", "create", "acme", "--name", "Other", "--actor", "alice",
    ],
    &[
        "org", "rename", "acme", "--name", "Acme Inc", "--actor", "bob",
    ],
    &["org", "rename", "nope", "--name", "X", "--actor", "bob"],
    &["org", "mode", "acme", "shadow", "--actor", "bob"],
    &["org", "mode", "acme", "enforce", "--actor", "bob"],
    &[
        "org", "create", "globex", "--name", "Globex", "--actor", "alice",
    ],
    &["org", "create", " ", "--name", "Blank", "--actor", "alice"],
    &["member", "add", "acme", "u1", "--actor", "carol"],
    &[
        "member",
        "add",
        "acme",
        "u2@example.com",
        "--role",
        "admin",
        "--actor",
        "carol",
    ],
    &[
        "member",
        "add",
        "acme",
        "U1@Example.com",
        "--actor",
        "carol",
    ],
    &["member", "add", "acme", "ghost", "--actor", "carol"],
    &[
        "member",
        "add",
        "acme",
        "nobody@example.com",
        "--actor",
        "carol",
    ],
    &["member", "add", "nope", "u1", "--actor", "carol"],
    &["member", "remove", "acme", "u2", "--actor", "carol"],
    &["member", "remove", "acme", "u2", "--actor", "carol"],
    &["member", "remove", "acme", "pending1", "--actor", "carol"],
    &["model", "enable", "acme", "gpt-4o", "--actor", "dave"],
    &["model", "enable", "acme", "gtp-4o", "--actor", "dave"],
    &[
        "model", "enable", "acme", "gtp-4o", "--force", "--actor", "dave",
    ],
    &["model", "enable", "acme", "my-preset", "--actor", "dave"],
    &["model", "enable", "acme", r"bad\x", "--actor", "dave"],
    &["model", "deny", "acme", "openai/*", "--actor", "dave"],
    &["model", "enable", "globex", "openai/*", "--actor", "dave"],
    &["model", "disable", "acme", "gpt-4o", "--actor", "dave"],
    &["model", "disable", "acme", "gpt-4o", "--actor", "dave"],
    &[
        "model",
        "disable",
        "acme",
        "never-linked",
        "--actor",
        "dave",
    ],
    &["model", "enable", "acme", "gpt-4o", "--actor", "dave"],
    &[
        "org",
        "bind-group",
        "acme",
        "engineering",
        "--actor",
        "erin",
    ],
    &["org", "bind-group", "acme", "twins", "--actor", "erin"],
    &["org", "bind-group", "acme", "nope", "--actor", "erin"],
    &["org", "unbind-group", "acme", "g-eng", "--actor", "erin"],
    &["org", "unbind-group", "globex", "g-eng", "--actor", "erin"],
    &["org", "bind-group", "acme", "g-eng", "--actor", "erin"],
    &["org", "list"],
    &["org", "groups", "acme"],
    &["org", "groups", "nope"],
    &["member", "list", "acme"],
    &["member", "list", "nope"],
    &["model", "list", "acme"],
    &["access", "u1", "gpt-4o"],
    &["access", "u1@example.com", "my-preset"],
    &["access", "ann", "claude-3"],
    &["access", "u1", "openai/gpt-5"],
    &["access", "nobody"],
    &["report"],
    &["report", "--org", "acme"],
    &["report", "--org", "nope"],
    &["report", "--users"],
    &["report", "--users", "--org", "globex"],
    &[
        "migrate",
        "--org-id",
        "all",
        "--org-name",
        "All",
        "--dry-run",
        "--actor",
        "ops",
    ],
    &["audit", "--limit", "200"],
];

/// What differs between two runs of the same commands by nature: row ids
/// made of random UUIDs or sequence numbers, times, where the database is.
fn strip(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|k, v| {
                let random_id = matches!(k.as_str(), "id" | "row_id")
                    && (v.is_number()
                        || v.as_str().is_some_and(|s| {
                            s.starts_with("orgrule_") || s.starts_with("orggrp_")
                        }));
                let volatile = matches!(
                    k.as_str(),
                    "created_at"
                        | "updated_at"
                        | "joined_at"
                        | "changed_at"
                        | "database"
                        | "backup"
                );
                !(random_id || volatile)
            });
            map.values_mut().for_each(strip);
        }
        Value::Array(items) => items.iter_mut().for_each(strip),
        _ => {}
    }
}

/// One command's result as compared: the JSON document, or the error.
fn outcome(db: &str, args: &[&str]) -> Value {
    let mut full: Vec<&str> = args.to_vec();
    full.push("--json");
    let r = run(db, &full);
    if r.code == 0 || (r.code == 3 && args[0] == "access") {
        let mut v = r.json();
        strip(&mut v);
        serde_json::json!({ "exit": r.code, "out": v })
    } else {
        let (code, error, message) = r.error();
        serde_json::json!({ "exit": code, "error": error, "message": message })
    }
}

#[test]
fn the_same_commands_answer_the_same_on_sqlite_and_postgresql() {
    let Some(pg) = PgServer::start() else { return };
    let url = postgres(&pg);
    let dir = tempfile::tempdir().unwrap();
    let file = sqlite(dir.path());
    let mut compared = 0;
    for args in SEQUENCE {
        let (a, b) = (outcome(&file, args), outcome(&url, args));
        assert_eq!(
            a,
            b,
            "`{}` differs:\nSQLite:     {a:#}\nPostgreSQL: {b:#}",
            args.join(" ")
        );
        compared += 1;
    }
    assert_eq!(compared, SEQUENCE.len());
    // The sequence exercised refusals as well as writes.
    let refusals = SEQUENCE
        .iter()
        .filter(|a| outcome(&url, a).get("error").is_some())
        .count();
    assert!(refusals >= 15, "{refusals} refusals");
}

#[test]
fn every_write_is_audited_with_its_actor_and_init_twice_changes_nothing() {
    let Some(pg) = PgServer::start() else { return };
    let url = postgres(&pg);
    let objects =
        "SELECT (SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace) \
                   || ' ' || (SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal) \
                   || ' ' || (SELECT count(*) FROM pg_proc WHERE proname LIKE 'modelgate%')";
    let before = pg.psql(DATABASE, objects);
    let again = run(&url, &["init", "--json"]).json();
    assert_eq!(again["created"], serde_json::json!([]), "{again}");
    assert_eq!(again["organizations_backfilled"], 0);
    assert_eq!(pg.psql(DATABASE, objects), before);

    for args in SEQUENCE.iter().filter(|a| a.contains(&"--actor")) {
        run(&url, args);
    }
    let log = run(&url, &["audit", "--limit", "500", "--json"]).json();
    let log = log.as_array().unwrap();
    // Every row came from a write of this test, named by its actor; none
    // is anonymous, and the dry run left none.
    let actors: std::collections::BTreeSet<&str> =
        log.iter().map(|e| e["actor"].as_str().unwrap()).collect();
    assert_eq!(
        actors.into_iter().collect::<Vec<_>>(),
        ["alice", "bob", "carol", "dave", "erin"]
    );
    let by = |table: &str, actor: &str| {
        log.iter()
            .filter(|e| e["table_name"] == table && e["actor"] == actor)
            .count()
    };
    // create acme, rename, two modes, create globex.
    assert_eq!(by("organizations", "alice"), 2);
    assert_eq!(by("organizations", "bob"), 3);
    // u1, u2 (admin), u2 removed.
    assert_eq!(by("organization_members", "carol"), 3);
    assert_eq!(by("organization_groups", "erin"), 3);
    assert!(by("organization_models", "dave") >= 4);
    assert!(by("organization_model_rules", "dave") >= 2);
    // Booleans read as on SQLite.
    let removal = log
        .iter()
        .find(|e| e["table_name"] == "organization_members" && e["action"] == "UPDATE")
        .unwrap();
    assert_eq!(removal["old_values"]["is_active"], 1);
    assert_eq!(removal["new_values"]["is_active"], 0);
    // The text form shows what changed.
    let text = run(&url, &["audit", "--limit", "3"]);
    assert_eq!(text.code, 0, "{}", text.stderr);
    assert!(text.stdout.contains("erin"), "{}", text.stdout);
}

#[test]
fn migrate_advises_a_dump_and_runs_in_one_transaction() {
    let Some(pg) = PgServer::start() else { return };
    let url = postgres(&pg);
    let dry = run(
        &url,
        &[
            "migrate",
            "--org-id",
            "all",
            "--org-name",
            "All",
            "--dry-run",
            "--json",
        ],
    );
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert!(
        !dry.stderr.contains("pg_dump"),
        "a dry run writes nothing: {}",
        dry.stderr
    );
    assert_eq!(pg.psql(DATABASE, "SELECT count(*) FROM organizations"), "0");
    let real = run(
        &url,
        &[
            "migrate",
            "--org-id",
            "all",
            "--org-name",
            "All",
            "--actor",
            "ops",
            "--json",
        ],
    );
    assert_eq!(real.code, 0, "{}", real.stderr);
    let out = real.json();
    assert_eq!(out["backup"], Value::Null);
    assert!(out["backup_advice"].as_str().unwrap().contains("pg_dump"));
    // Every non-pending user, every base model (the inactive one inactive).
    assert_eq!(out["users_linked"], 4);
    assert_eq!(out["models_linked"], 4);
    assert_eq!(out["model_source"], "model_table");
    assert_eq!(
        pg.psql(
            DATABASE,
            "SELECT string_agg(model_id || ':' || is_active, ',' ORDER BY model_id COLLATE \"C\") \
             FROM organization_models"
        ),
        "claude-3:true,gpt-4o:true,old-model:false,openai/gpt-5:true"
    );
    // In text, the advice comes first, on stderr, before anything runs.
    let text = run(&url, &["migrate", "--org-id", "all", "--org-name", "All"]);
    assert_eq!(text.code, 0, "{}", text.stderr);
    assert!(
        text.stderr.starts_with("modelgate: NOTE: PostgreSQL"),
        "{}",
        text.stderr
    );
    assert!(text.stderr.contains("pg_dump"), "{}", text.stderr);
    assert!(text.stdout.contains("already migrated"), "{}", text.stdout);
    let again = run(
        &url,
        &["migrate", "--org-id", "all", "--org-name", "All", "--json"],
    )
    .json();
    assert_eq!(
        (
            again["users_linked"].as_i64(),
            again["models_linked"].as_i64()
        ),
        (Some(0), Some(0))
    );
    // Refused without models, before anything is written.
    pg.psql(DATABASE, "DELETE FROM model");
    let refused = run(
        &url,
        &["migrate", "--org-id", "empty", "--org-name", "E", "--json"],
    );
    assert_eq!(refused.error().1, "no_models_to_link");
    assert_eq!(
        pg.psql(
            DATABASE,
            "SELECT count(*) FROM organizations WHERE id = 'empty'"
        ),
        "0"
    );
}

#[test]
fn db_bench_and_an_unreachable_server_are_refused_with_reasons() {
    let Some(pg) = PgServer::start() else { return };
    let url = postgres(&pg);
    let bench = run(&url, &["db-bench", "--json"]);
    let (exit, code, message) = bench.error();
    assert_eq!((exit, code.as_str()), (1, "unsupported_database"));
    assert!(message.contains("EXPLAIN QUERY PLAN"), "{message}");

    let gone = format!(
        "postgresql://{}:hunter2@/{DATABASE}?host={}&port=1",
        pg.user,
        pg.socket_dir().display()
    );
    for args in [
        &["org", "list", "--json"][..],
        &["member", "add", "acme", "u1", "--json"],
    ] {
        let (exit, code, message) = run(&gone, args).error();
        assert_eq!(
            (exit, code.as_str()),
            (1, "database_unavailable"),
            "{message}"
        );
        assert!(!message.contains("hunter2"), "{message}");
        assert!(message.contains(&pg.user), "names the database: {message}");
    }
}
