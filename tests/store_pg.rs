//! The store on a real PostgreSQL server (a throwaway cluster per test):
//! the same decisions as on SQLite, revocations by other connections seen
//! within a second, no invalidation for `last_active_at`, a killed listener
//! or a stopped server never serving stale answers.

#[path = "common/eventually.rs"]
mod eventually;
mod pg_support;

use std::time::Duration;

use eventually::eventually;
use modelgate::store::{AccessStore, Database, ListenerState, StoreConfig};
use pg_support::PgServer;
use tokio_postgres::{Client, NoTls};

const WITHIN: Duration = Duration::from_secs(1);
/// Open WebUI 0.12.4's tables as its migrations create them on PostgreSQL.
const OPEN_WEBUI_DDL: &str = include_str!("pg_support/open_webui_0_12_4.sql");

/// The same facts for both backends; `{T}`/`{F}` are the booleans.
const FACTS: &str = r#"
INSERT INTO "user" (id, name, email, role) VALUES
  ('alice', 'Alice', 'alice@x', 'user'), ('bob', 'Bob', 'bob@x', 'user'),
  ('carol', 'Carol', 'carol@x', 'pending'), ('root', 'Root', 'root@x', 'admin'),
  ('dave', 'Dave', 'dave@x', 'user'), ('erin', 'Erin', 'erin@x', 'user'),
  ('frank', 'Frank', 'frank@x', 'user');
INSERT INTO api_key (id, user_id, key, expires_at, created_at, updated_at) VALUES
  ('k1', 'alice', 'sk-alice', NULL, 0, 0), ('k2', 'bob', 'sk-bob', 1700000000, 0, 0);
INSERT INTO model (id, user_id, base_model_id, name, params, meta, is_active) VALUES
  ('helper', 'root', 'gpt-4o', 'Helper', '{}', '{}', {T}),
  ('tuned', 'root', NULL, 'Tuned', '{}', '{}', {T});
INSERT INTO "group" (id, name) VALUES ('g-parent', 'Parent'), ('g-child', 'Child');
UPDATE "group" SET parent_group_id = 'g-parent' WHERE id = 'g-child';
INSERT INTO group_member (id, group_id, user_id) VALUES
  ('gm1', 'g-parent', 'dave'), ('gm2', 'g-child', 'erin');
INSERT INTO organizations (id, name, created_at, mode) VALUES
  ('o1', 'One', 0, 'enforce'), ('o2', 'Two', 0, 'shadow');
INSERT INTO organization_members (id, organization_id, user_id, role, is_active, joined_at) VALUES
  ('m1', 'o1', 'alice', 'member', {T}, 0), ('m2', 'o1', 'carol', 'member', {T}, 0),
  ('m3', 'o1', 'root', 'admin', {T}, 0), ('m4', 'o2', 'bob', 'member', {T}, 0),
  ('m5', 'o1', 'frank', 'member', {F}, 0);
INSERT INTO organization_models (id, organization_id, model_id, is_active) VALUES
  ('l1', 'o1', 'gpt-4o', {T}), ('l2', 'o1', 'claude', {T}), ('l3', 'o2', 'llama', {T}),
  ('l4', 'o1', 'gone', {F});
INSERT INTO organization_model_rules (id, organization_id, pattern, effect, is_active) VALUES
  ('r1', 'o1', 'openai/*', 'allow', {T}), ('r2', 'o1', 'openai/o1*', 'deny', {T});
INSERT INTO organization_groups (id, organization_id, group_id, is_active) VALUES
  ('b1', 'o2', 'g-parent', {T});
"#;

const USERS: [&str; 8] = [
    "alice", "bob", "carol", "root", "dave", "erin", "frank", "nobody",
];
const MODELS: [&str; 9] = [
    "gpt-4o",
    "claude",
    "llama",
    "openai/gpt-5",
    "openai/o1-mini",
    "helper",
    "tuned",
    "gone",
    "unknown",
];

fn facts(t: &str, f: &str) -> String {
    FACTS.replace("{T}", t).replace("{F}", f)
}

async fn client(pg: &PgServer) -> Client {
    let (client, connection) = tokio_postgres::connect(&pg.url(), NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    client
}

/// Open WebUI's tables, `init`, and the facts, in `schema` when given.
async fn prepare(pg: &PgServer, schema: Option<&str>) -> (Client, Database) {
    let c = client(pg).await;
    if let Some(schema) = schema {
        c.batch_execute(&format!(
            "CREATE SCHEMA \"{schema}\"; SET search_path TO \"{schema}\""
        ))
        .await
        .unwrap();
    }
    c.batch_execute(OPEN_WEBUI_DDL).await.unwrap();
    let env = |name: &str| match name {
        "DATABASE_SCHEMA" => schema.map(str::to_string),
        _ => None,
    };
    let database = Database::resolve(Some(pg.url().as_ref()), &env).unwrap();
    let Database::Postgres(target) = &database else {
        panic!("a PostgreSQL URL");
    };
    let mut init = modelgate::store::pg::connect(target).await.unwrap();
    modelgate::store::pg::ensure_schema(&mut init)
        .await
        .unwrap();
    // Idempotent: a second run creates nothing.
    let again = modelgate::store::pg::ensure_schema(&mut init)
        .await
        .unwrap();
    assert!(again.created.is_empty(), "{:?}", again.created);
    c.batch_execute(&facts("true", "false")).await.unwrap();
    (c, database)
}

fn open(database: Database) -> AccessStore {
    AccessStore::open(StoreConfig {
        lookup_timeout: Duration::from_secs(2),
        ..StoreConfig::for_database(database)
    })
}

async fn listening(store: &AccessStore) {
    eventually(Duration::from_secs(5), "listener listening", || async {
        listener(store).state == ListenerState::Listening
    })
    .await;
}

fn listener(store: &AccessStore) -> modelgate::store::ListenerStats {
    store
        .stats()
        .listener
        .expect("a PostgreSQL store has a listener")
}

/// Asks `decide` until it permits (`true`) or refuses (`false`) as wanted.
async fn permits_within(store: &AccessStore, user: &str, model: &str, want: bool, what: &str) {
    eventually(WITHIN, what, || async {
        store
            .decide(user, model)
            .await
            .is_ok_and(|d| d.is_allowed() == want)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_match_sqlite_for_the_same_facts() {
    let Some(pg) = PgServer::start() else { return };
    let (_c, database) = prepare(&pg, None).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("webui.db");
    {
        let conn = modelgate::store::admin::open_writer(&path).unwrap();
        conn.execute_batch(modelgate::store::webui_fixture::OPEN_WEBUI_TABLES)
            .unwrap();
        modelgate::store::ensure_schema(&conn).unwrap();
        conn.execute_batch(&facts("1", "0")).unwrap();
    }
    let sqlite = AccessStore::open(StoreConfig::new(&path));
    let postgres = open(database);
    listening(&postgres).await;
    let mut compared = 0;
    for user in USERS {
        let (a, b) = (
            sqlite.user(user).await.unwrap(),
            postgres.user(user).await.unwrap(),
        );
        assert_eq!(
            serde_json::to_value(&*a).unwrap(),
            serde_json::to_value(&*b).unwrap(),
            "{user}"
        );
        for model in MODELS {
            let a = sqlite.decide(user, model).await.unwrap();
            let b = postgres.decide(user, model).await.unwrap();
            assert_eq!(a, b, "{user} / {model}");
            compared += 1;
        }
    }
    assert_eq!(compared, USERS.len() * MODELS.len());
    // Spot checks that the facts mean what they say.
    assert!(postgres
        .decide("alice", "helper")
        .await
        .unwrap()
        .is_allowed());
    assert!(
        postgres.decide("erin", "llama").await.unwrap().is_allowed(),
        "subgroup"
    );
    assert!(!postgres
        .decide("alice", "openai/o1-mini")
        .await
        .unwrap()
        .is_allowed());
    assert!(!postgres
        .decide("frank", "gpt-4o")
        .await
        .unwrap()
        .is_allowed());
    for key in ["sk-alice", "sk-bob", "sk-none"] {
        assert_eq!(
            sqlite.api_key_owner(key).await.unwrap(),
            postgres.api_key_owner(key).await.unwrap(),
            "{key}"
        );
    }
    postgres.ping().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_by_other_connections_are_seen_within_a_second() {
    let Some(pg) = PgServer::start() else { return };
    let (c, database) = prepare(&pg, None).await;
    let store = open(database);
    listening(&store).await;

    // Warm, and prove the second answer came from the cache.
    assert!(store.decide("alice", "claude").await.unwrap().is_allowed());
    let hits = store.stats().hits;
    assert!(store.decide("alice", "claude").await.unwrap().is_allowed());
    assert!(store.stats().hits > hits, "served from the cache");

    c.execute(
        "UPDATE organization_models SET is_active = false WHERE model_id = 'claude'",
        &[],
    )
    .await
    .unwrap();
    permits_within(&store, "alice", "claude", false, "link deactivated").await;

    assert!(store.decide("alice", "helper").await.unwrap().is_allowed());
    c.execute(
        "UPDATE model SET base_model_id = 'llama' WHERE id = 'helper'",
        &[],
    )
    .await
    .unwrap();
    permits_within(&store, "alice", "helper", false, "preset rebased").await;

    assert!(store.decide("dave", "llama").await.unwrap().is_allowed());
    c.execute("DELETE FROM group_member WHERE user_id = 'dave'", &[])
        .await
        .unwrap();
    permits_within(&store, "dave", "llama", false, "group membership deleted").await;

    assert!(store.api_key_owner("sk-alice").await.unwrap().is_some());
    c.execute("DELETE FROM api_key WHERE key = 'sk-alice'", &[])
        .await
        .unwrap();
    eventually(WITHIN, "api key deleted", || async {
        store.api_key_owner("sk-alice").await.unwrap().is_none()
    })
    .await;

    assert_eq!(
        store.user("alice").await.unwrap().role.as_deref(),
        Some("user")
    );
    c.execute(
        "UPDATE \"user\" SET role = 'pending' WHERE id = 'alice'",
        &[],
    )
    .await
    .unwrap();
    eventually(WITHIN, "role set to pending", || async {
        store.user("alice").await.unwrap().role.as_deref() == Some("pending")
    })
    .await;

    let stats = listener(&store);
    assert!(stats.notifications >= 5, "{stats:?}");
    assert_eq!(stats.missed_changes, 0, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_active_at_updates_invalidate_nothing() {
    let Some(pg) = PgServer::start() else { return };
    let (c, database) = prepare(&pg, None).await;
    let store = open(database);
    listening(&store).await;
    store.decide("alice", "gpt-4o").await.unwrap();
    let generation = store.generation();
    let before = listener(&store);
    for t in 0..20 {
        c.execute(
            "UPDATE \"user\" SET last_active_at = $1, updated_at = $1 WHERE id = 'alice'",
            &[&(1_700_000_000_i64 + t)],
        )
        .await
        .unwrap();
    }
    // Two heartbeats after the updates: every notification they caused
    // (none) has arrived by then, as notifications keep commit order.
    let seen = before.heartbeats;
    eventually(Duration::from_secs(2), "two more heartbeats", || async {
        listener(&store).heartbeats >= seen + 2
    })
    .await;
    assert_eq!(store.generation(), generation, "no invalidation");
    assert_eq!(listener(&store).notifications, before.notifications);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_listener_never_lets_a_revocation_through() {
    let Some(pg) = PgServer::start() else { return };
    let (c, database) = prepare(&pg, None).await;
    let store = open(database);
    listening(&store).await;
    assert!(store.decide("alice", "gpt-4o").await.unwrap().is_allowed());
    assert!(store.decide("alice", "gpt-4o").await.unwrap().is_allowed());
    let killed: i64 = c
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE application_name = $1",
            &[&modelgate::store::pg::APPLICATION_NAME],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(killed, 1);
    // At once, before the listener can have reconnected.
    c.execute(
        "UPDATE organization_models SET is_active = false WHERE model_id = 'gpt-4o'",
        &[],
    )
    .await
    .unwrap();
    permits_within(
        &store,
        "alice",
        "gpt-4o",
        false,
        "revoked while the listener was down",
    )
    .await;
    eventually(Duration::from_secs(5), "listener back", || async {
        let l = listener(&store);
        l.state == ListenerState::Listening && l.reconnects >= 1
    })
    .await;
    assert!(!store.decide("alice", "gpt-4o").await.unwrap().is_allowed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_server_fails_closed_and_recovery_needs_no_restart() {
    let Some(mut pg) = PgServer::start() else {
        return;
    };
    let (c, database) = prepare(&pg, None).await;
    drop(c);
    let store = open(database);
    listening(&store).await;
    assert!(store.decide("alice", "gpt-4o").await.unwrap().is_allowed());
    assert!(store.decide("alice", "gpt-4o").await.unwrap().is_allowed());
    let mut pg = tokio::task::spawn_blocking(move || {
        pg.stop();
        pg
    })
    .await
    .unwrap();
    eventually(WITHIN, "a cached user's lookup fails with 503", || async {
        store
            .decide("alice", "gpt-4o")
            .await
            .is_err_and(|e| e.is_unavailable())
    })
    .await;
    assert!(store.ping().await.is_err(), "readiness fails");
    let pg = tokio::task::spawn_blocking(move || {
        pg.start_again();
        pg
    })
    .await
    .unwrap();
    eventually(Duration::from_secs(10), "answers again", || async {
        store
            .decide("alice", "gpt-4o")
            .await
            .is_ok_and(|d| d.is_allowed())
    })
    .await;
    eventually(Duration::from_secs(10), "listener back", || async {
        listener(&store).state == ListenerState::Listening
    })
    .await;
    store.ping().await.unwrap();
    drop(pg);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ten_thousand_row_transaction_invalidates_a_bounded_number_of_times() {
    let Some(pg) = PgServer::start() else { return };
    let (c, database) = prepare(&pg, None).await;
    let store = open(database);
    listening(&store).await;
    let before = store.stats();
    // 10,000 statements, one row each, in one transaction.
    c.batch_execute(
        "DO $$ BEGIN FOR i IN 1..10000 LOOP
             INSERT INTO organization_models (id, organization_id, model_id, is_active)
             VALUES ('bulk-' || i, 'o1', 'bulk/model-' || i, true);
         END LOOP; END $$;",
    )
    .await
    .unwrap();
    permits_within(
        &store,
        "alice",
        "bulk/model-9999",
        true,
        "bulk links visible",
    )
    .await;
    let seen = listener(&store).heartbeats;
    eventually(Duration::from_secs(2), "two more heartbeats", || async {
        listener(&store).heartbeats >= seen + 2
    })
    .await;
    let after = store.stats();
    let invalidations = after.invalidations - before.invalidations;
    assert!(
        (1..=2).contains(&invalidations),
        "{invalidations} invalidations"
    );
    let l = after.listener.unwrap();
    assert_eq!(
        l.notifications - before.listener.unwrap().notifications,
        1,
        "{l:?}"
    );
    assert_eq!(l.missed_changes, 0);
    // The audit trigger logged every row, without an actor.
    let audited: i64 = c
        .query_one(
            "SELECT count(*) FROM permission_audit_log WHERE subject LIKE 'bulk/%' AND actor IS NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(audited, 10_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_schema_is_honoured_and_init_refuses_an_unmigrated_one() {
    let Some(pg) = PgServer::start() else { return };
    let (_c, database) = prepare(&pg, Some("Web UI")).await;
    let store = open(database);
    listening(&store).await;
    assert!(store.decide("alice", "gpt-4o").await.unwrap().is_allowed());

    let c = client(&pg).await;
    c.batch_execute("CREATE SCHEMA fresh").await.unwrap();
    let env = |name: &str| (name == "DATABASE_SCHEMA").then(|| "fresh".to_string());
    let Database::Postgres(target) = Database::resolve(Some(pg.url().as_ref()), &env).unwrap()
    else {
        panic!("a PostgreSQL URL");
    };
    let mut init = modelgate::store::pg::connect(&target).await.unwrap();
    let err = modelgate::store::pg::ensure_schema(&mut init)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("alembic_version"), "{err}");
    let tables: i64 = c
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'fresh'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        tables, 0,
        "nothing created in a schema Open WebUI has not migrated"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_actor_of_a_write_is_the_transaction_s_setting() {
    let Some(pg) = PgServer::start() else { return };
    let (mut c, _database) = prepare(&pg, None).await;
    let tx = c.transaction().await.unwrap();
    tx.batch_execute(
        "SET LOCAL modelgate.actor = 'cli:ops';
         UPDATE organizations SET name = 'Uno' WHERE id = 'o1';",
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    c.batch_execute("UPDATE organizations SET name = 'Dos' WHERE id = 'o2'")
        .await
        .unwrap();
    let rows = c
        .query(
            "SELECT organization_id, actor FROM permission_audit_log \
             WHERE table_name = 'organizations' AND action = 'UPDATE' ORDER BY id",
            &[],
        )
        .await
        .unwrap();
    let got: Vec<(String, Option<String>)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        got,
        [
            ("o1".to_string(), Some("cli:ops".to_string())),
            ("o2".to_string(), None)
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_without_a_notification_is_caught_by_the_counter() {
    let Some(pg) = PgServer::start() else { return };
    let (c, database) = prepare(&pg, None).await;
    let store = open(database);
    listening(&store).await;
    let generation = store.generation();
    // A writer with triggers disabled changes the policy; only the counter
    // (bumped here by hand, as a lost notification would leave it) tells.
    c.batch_execute(
        "BEGIN;
         SET LOCAL session_replication_role = replica;
         UPDATE organization_models SET is_active = false WHERE model_id = 'claude';
         COMMIT;
         UPDATE modelgate_change_counter SET version = version + 1 WHERE id = 1;",
    )
    .await
    .unwrap();
    eventually(WITHIN, "missed change detected", || async {
        listener(&store).missed_changes == 1
    })
    .await;
    assert!(store.generation() > generation);
    assert!(!store.decide("alice", "claude").await.unwrap().is_allowed());
}
