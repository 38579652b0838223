//! Lookups and decisions through the real store on real SQLite files.

mod store_support;

use std::time::Duration;

use modelgate::store::admin;
use modelgate::store::bench::plan_index;
use modelgate::store::lookup::{ANY_MEMBERSHIP_SQL, MEMBERSHIPS_SQL, ORG_MODELS_SQL, ROLE_SQL};
use modelgate::store::{ApiKeyOwner, Decision, DenyReason};
use store_support::*;

fn allowed(root: &str, org: &str) -> Decision {
    Decision::Allowed {
        root: root.into(),
        organization: org.into(),
        rule: None,
    }
}

fn not_permitted(root: &str) -> Decision {
    Decision::Denied(DenyReason::NotPermitted { root: root.into() })
}

#[tokio::test]
async fn single_and_multi_organization_users() {
    let db = owui_db();
    for u in ["alice", "bob"] {
        db.user(u, "user");
    }
    db.org("o1");
    db.org("o2");
    db.member("o1", "alice");
    db.member("o1", "bob");
    db.member("o2", "bob");
    db.enable("o1", "gpt");
    db.enable("o2", "claude");
    db.enable("o2", "gpt");
    let store = db.store();

    let alice = store.user("alice").await.unwrap();
    assert_eq!(alice.organizations, vec!["o1"]);
    assert_eq!(alice.role.as_deref(), Some("user"));
    assert!(alice.known);
    assert_eq!(
        alice.permitted_models(),
        vec![("gpt".to_string(), "o1".to_string())]
    );
    assert_eq!(alice.permits("gpt"), Some("o1"));
    assert_eq!(
        store.decide("alice", "gpt").await.unwrap(),
        allowed("gpt", "o1")
    );
    assert_eq!(
        store.decide("alice", "claude").await.unwrap(),
        not_permitted("claude")
    );

    let bob = store.user("bob").await.unwrap();
    assert_eq!(bob.organizations, vec!["o1", "o2"]);
    assert_eq!(
        bob.permitted_models(),
        vec![
            ("claude".to_string(), "o2".to_string()),
            ("gpt".to_string(), "o1".to_string())
        ]
    );
    // The smallest organization id is credited when two grant the model.
    assert_eq!(
        store.decide("bob", "gpt").await.unwrap(),
        allowed("gpt", "o1")
    );
    assert_eq!(
        store.decide("bob", "claude").await.unwrap(),
        allowed("claude", "o2")
    );
}

#[tokio::test]
async fn users_without_organizations_and_inactive_rows() {
    let db = owui_db();
    for u in ["loner", "left", "pending"] {
        db.user(u, if u == "pending" { "pending" } else { "user" });
    }
    db.org("o1");
    db.org("empty");
    db.member("o1", "left");
    db.enable("o1", "gpt");
    admin::remove_member(&db.conn, "o1", "left", "test").unwrap();
    db.member("empty", "pending");
    let store = db.store();

    let no_org = Decision::Denied(DenyReason::NoOrganization);
    assert_eq!(store.decide("loner", "gpt").await.unwrap(), no_org);
    assert_eq!(store.decide("left", "gpt").await.unwrap(), no_org);
    let left = store.user("left").await.unwrap();
    assert!(left.known && left.organizations.is_empty());

    // Member of an organization with no models: a member, but nothing allowed.
    let pending = store.user("pending").await.unwrap();
    assert_eq!(pending.organizations, vec!["empty"]);
    assert_eq!(pending.role.as_deref(), Some("pending"));
    assert!(pending.permitted_models().is_empty());
    assert_eq!(
        store.decide("pending", "gpt").await.unwrap(),
        not_permitted("gpt")
    );

    let ghost = store.user("ghost").await.unwrap();
    assert!(!ghost.known);
    assert_eq!(ghost.role, None);
}

#[tokio::test]
async fn inactive_model_link_and_model_in_two_orgs_one_inactive() {
    let db = owui_db();
    db.user("u", "user");
    db.org("a");
    db.org("b");
    db.member("a", "u");
    db.member("b", "u");
    db.enable("a", "gpt");
    db.enable("b", "gpt");
    db.enable("a", "old");
    admin::disable_model(&db.conn, "a", "old", "test").unwrap();
    admin::disable_model(&db.conn, "a", "gpt", "test").unwrap();
    let store = db.store();
    assert_eq!(
        store.decide("u", "old").await.unwrap(),
        not_permitted("old")
    );
    assert_eq!(store.decide("u", "gpt").await.unwrap(), allowed("gpt", "b"));
}

#[tokio::test]
async fn preset_chains() {
    let db = owui_db();
    db.user("u", "user");
    db.org("o");
    db.member("o", "u");
    db.model("gpt", None);
    db.model("claude", None);
    db.model("helper", Some("gpt"));
    db.model("helper2", Some("helper"));
    db.model("sneaky", Some("claude"));
    db.model("dangling", Some("upstream-without-row"));
    db.model("loop-a", Some("loop-b"));
    db.model("loop-b", Some("loop-a"));
    for i in 0..12 {
        db.model(&format!("deep{i}"), Some(&format!("deep{}", i + 1)));
    }
    db.enable("o", "gpt");
    db.enable("o", "sneaky");
    db.enable("o", "upstream-without-row");
    db.enable("o", "deep12");
    let store = db.store();

    assert_eq!(
        store.decide("u", "helper2").await.unwrap(),
        allowed("gpt", "o")
    );
    // Listing the preset does not grant it: its root is not listed.
    assert_eq!(
        store.decide("u", "sneaky").await.unwrap(),
        not_permitted("claude")
    );
    assert_eq!(
        store.decide("u", "claude").await.unwrap(),
        not_permitted("claude")
    );
    assert_eq!(
        store.decide("u", "dangling").await.unwrap(),
        allowed("upstream-without-row", "o")
    );
    assert_eq!(
        store.decide("u", "loop-a").await.unwrap(),
        Decision::Denied(DenyReason::Cycle)
    );
    assert_eq!(
        store.decide("u", "deep0").await.unwrap(),
        Decision::Denied(DenyReason::TooDeep)
    );
    assert_eq!(
        store.decide("u", "deep5").await.unwrap(),
        allowed("deep12", "o")
    );
    let graph = store.model_graph().await.unwrap();
    assert_eq!(graph.root("helper2"), Ok("gpt"));
}

#[tokio::test]
async fn standalone_database_without_open_webui_tables() {
    let db = standalone_db();
    db.org("o");
    db.member("o", "just-an-id");
    db.enable("o", "m");
    let store = db.store();
    let access = store.user("just-an-id").await.unwrap();
    assert!(access.known);
    assert_eq!(access.role, None);
    assert_eq!(
        store.decide("just-an-id", "m").await.unwrap(),
        allowed("m", "o")
    );
    assert_eq!(store.api_key_owner("sk-anything").await.unwrap(), None);
    store.ping().await.unwrap();
}

#[tokio::test]
async fn unicode_quotes_and_injection_shaped_ids() {
    let db = owui_db();
    let weird = [
        "x' OR '1'='1",
        "ユーザー\"; DROP TABLE user; --",
        "o'rg",
        "mödel\u{1F600}",
    ];
    db.user(weird[0], "user");
    db.user(weird[1], "user");
    db.org(weird[2]);
    db.member(weird[2], weird[1]);
    db.enable(weird[2], weird[3]);
    let store = db.store();

    assert_eq!(
        store.decide(weird[1], weird[3]).await.unwrap(),
        allowed(weird[3], weird[2])
    );
    // The injection-shaped id is only an id: it has no memberships.
    let inj = store.user(weird[0]).await.unwrap();
    assert!(inj.known && inj.organizations.is_empty());
    assert!(!store.user("' OR 1=1 --").await.unwrap().known);
    assert_eq!(store.api_key_owner("' OR '1'='1").await.unwrap(), None);
    assert!(!store
        .decide("x' OR '1'='1", "x' OR '1'='1")
        .await
        .unwrap()
        .is_allowed());
    // Nothing broke.
    let n: i64 = db
        .conn
        .query_row("SELECT COUNT(*) FROM user", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 2);
}

#[tokio::test]
async fn api_key_owner_with_negative_caching() {
    let db = owui_db();
    db.user("u", "user");
    db.conn
        .execute(
            "INSERT INTO api_key (id, user_id, key, expires_at) VALUES ('key_u', 'u', 'sk-123', 42)",
            [],
        )
        .unwrap();
    let store = db.store();
    assert_eq!(
        store.api_key_owner("sk-123").await.unwrap(),
        Some(ApiKeyOwner {
            user_id: "u".into(),
            expires_at: Some(42)
        })
    );
    assert_eq!(store.api_key_owner("sk-nope").await.unwrap(), None);
    // A new key appears: the watcher's invalidation makes it visible.
    db.conn
        .execute(
            "INSERT INTO api_key (id, user_id, key) VALUES ('key_v', 'u', 'sk-nope')",
            [],
        )
        .unwrap();
    eventually(Duration::from_secs(2), "new api key visible", || async {
        store.api_key_owner("sk-nope").await.unwrap().is_some()
    })
    .await;
}

#[tokio::test]
async fn cache_hits_are_counted() {
    let db = owui_db();
    db.user("u", "user");
    let store = db.store();
    // The first poll invalidates; landing between the two lookups it would
    // turn the hit into a second miss.
    wait_for_first_poll(&store).await;
    store.user("u").await.unwrap();
    store.user("u").await.unwrap();
    let stats = store.stats();
    assert!(stats.hits >= 1, "{stats:?}");
    assert!(stats.misses >= 1, "{stats:?}");
}

/// EXPLAIN QUERY PLAN of the lookup queries: indexed, no SCAN, and the
/// per-organization model query answered from the covering index alone.
#[test]
fn lookup_queries_use_their_indexes() {
    let db = owui_db();
    let plan = |sql: &str| -> Vec<String> {
        let mut stmt = db
            .conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap();
        stmt.query_map(["u"], |r| r.get::<_, String>(3))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let uses = |lines: &[String]| -> Vec<(String, bool)> {
        lines
            .iter()
            .filter_map(|l| plan_index(l))
            .map(|(name, covering)| (name.to_string(), covering))
            .collect()
    };
    let memberships = plan(MEMBERSHIPS_SQL);
    assert_eq!(
        uses(&memberships),
        vec![("idx_org_members_user_active".to_string(), false)],
        "{memberships:?}"
    );
    let org_models = plan(ORG_MODELS_SQL);
    assert_eq!(
        uses(&org_models),
        vec![("idx_org_models_org_active_model".to_string(), true)],
        "{org_models:?}"
    );
    let any = plan(ANY_MEMBERSHIP_SQL);
    assert!(
        uses(&any)
            .iter()
            .any(|(n, _)| n == "idx_org_members_user_active"),
        "{any:?}"
    );
    let role = plan(ROLE_SQL);
    for p in [&memberships, &org_models, &any, &role] {
        assert!(!p.iter().any(|l| l.contains("SCAN")), "{p:?}");
    }
}

/// A database ANALYZEd before the covering index existed (statistics for
/// the seed index only) still gets the covering plan after `ensure_schema`.
#[test]
fn covering_index_added_to_an_analyzed_database_is_used() {
    let db = owui_db();
    db.org("o");
    for i in 0..200 {
        db.enable("o", &format!("m{i}"));
    }
    db.conn
        .execute_batch("DROP INDEX idx_org_models_org_active_model; ANALYZE;")
        .unwrap();
    let report = modelgate::store::ensure_schema(&db.conn).unwrap();
    assert_eq!(report.created, vec!["idx_org_models_org_active_model"]);
    let stats: i64 = db
        .conn
        .query_row(
            "SELECT COUNT(*) FROM sqlite_stat1 WHERE idx = 'idx_org_models_org_active_model'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(stats, 1);
    let line: String = db
        .conn
        .query_row(
            &format!("EXPLAIN QUERY PLAN {ORG_MODELS_SQL}"),
            ["o"],
            |r| r.get(3),
        )
        .unwrap();
    assert_eq!(
        plan_index(&line),
        Some(("idx_org_models_org_active_model", true)),
        "{line}"
    );
}
