//! `serve` start-up on a real process: the schema is created on a fresh
//! path (the README's first command on a new machine), and the seed's
//! organization bootstrap runs from the environment, idempotently.

mod common;

use common::serve::{Serve, JSON_LOG};
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_database_gets_the_schema_and_the_bootstrap_organization() {
    let up = FakeUpstream::builder().start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("modelgate.toml");
    std::fs::write(&config, JSON_LOG).unwrap();
    // A directory that does not exist yet, as ./data on a new machine.
    let db = dir.path().join("data").join("webui.db");
    let db_s = db.to_str().unwrap();

    let env = [
        ("MODELGATE_DATABASE", db_s),
        ("OPENROUTER_EXTERNAL_USER", "mai_client_dev"),
        ("ORGANIZATION_NAME", "Dev Team"),
        ("MODELGATE_DEVELOPMENT_MODE", "true"),
    ];
    let serve = Serve::start(&config, up.addr, &env);
    let warned = serve.wait_for_prefix("DEVELOPMENT MODE");
    assert_eq!(warned["level"], "WARN");
    let line = serve.wait_for("organization bootstrap done");
    assert_eq!(line["created"], true);
    assert_eq!(line["development"], true);
    drop(serve);

    let conn = rusqlite::Connection::open(&db).unwrap();
    let name: String = conn
        .query_row(
            "SELECT name FROM organizations WHERE id = 'mai_client_dev'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(name, "Dev Team");
    let indexes: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name LIKE 'idx_org_%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(indexes >= 4);

    // A restart finds everything in place and changes nothing.
    let serve = Serve::start(&config, up.addr, &env);
    let line = serve.wait_for("organization bootstrap done");
    assert_eq!(line["created"], false);
    assert_eq!(line["models_linked"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_subcommand_reports_the_running_instance() {
    let up = FakeUpstream::builder().start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("modelgate.toml");
    std::fs::write(&config, JSON_LOG).unwrap();
    let serve = Serve::start(&config, up.addr, &[]);
    let health = |admin: String| {
        std::process::Command::new(env!("CARGO_BIN_EXE_modelgate"))
            .args(["health", "--config"])
            .arg(&config)
            .env_clear()
            .env("MODELGATE_ADMIN_LISTEN", admin)
            .output()
            .unwrap()
    };
    assert!(health(serve.admin.to_string()).status.success());
    let dead = closed_port().await;
    let out = health(dead.to_string());
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unhealthy"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_says_loudly_when_the_gate_will_refuse_everything() {
    let up = FakeUpstream::builder().start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("modelgate.toml");
    std::fs::write(&config, JSON_LOG).unwrap();
    let db = dir.path().join("webui.db");

    // A new machine, the wrong directory: a new empty file, said so.
    let serve = Serve::start(&config, up.addr, &[]);
    let line = serve.wait_for_prefix("CREATED A NEW EMPTY DATABASE");
    assert_eq!(line["level"], "WARN");
    let shown = line["database"].as_str().unwrap();
    assert!(std::path::Path::new(shown).is_absolute(), "{shown}");
    assert!(shown.ends_with("webui.db"));
    assert!(line["message"].as_str().unwrap().contains("org create"));
    drop(serve);

    // Restarted with Open WebUI's tables but no organization yet.
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch("CREATE TABLE user (id TEXT PRIMARY KEY, role TEXT);")
        .unwrap();
    let serve = Serve::start(&config, up.addr, &[]);
    serve.wait_for_prefix("NO ORGANIZATIONS YET");
    drop(serve);

    // A directory where the file should be is named as what it is.
    let as_dir = dir.path().join("adir");
    std::fs::create_dir(&as_dir).unwrap();
    let serve = Serve::start(
        &config,
        up.addr,
        &[("MODELGATE_DATABASE", as_dir.to_str().unwrap())],
    );
    let line = serve.wait_for_prefix("the database path is a directory");
    assert_eq!(line["level"], "ERROR");
}
