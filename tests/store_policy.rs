//! Policy beyond exact links, read through the live store: pattern and deny
//! rules, shadow mode, and membership through Open WebUI groups — each
//! change, made by another connection while the caches are warm, is in
//! force within the watcher's one-second budget.

mod store_support;

use std::time::Duration;

use modelgate::store::admin;
use modelgate::store::{Decision, DenyReason, Mode, StoreError};
use rusqlite::Connection;
use store_support::*;

const SECOND: Duration = Duration::from_secs(1);

fn denied_by(model: &str, org: &str, rule: &str) -> Decision {
    Decision::Denied(DenyReason::DeniedByRule {
        model: model.into(),
        organization: org.into(),
        rule: rule.into(),
    })
}

#[tokio::test]
async fn a_deny_added_while_cached_is_enforced_within_a_second() {
    let db = owui_db();
    db.user("u", "user");
    db.org("a");
    db.org("b");
    db.member("a", "u");
    db.member("b", "u");
    admin::enable_model(&db.conn, "a", "openai/*", "test").unwrap();
    let store = db.store();
    wait_for_first_poll(&store).await;
    for _ in 0..2 {
        assert!(store
            .decide("u", "openai/o1-pro")
            .await
            .unwrap()
            .is_allowed());
    }
    let hits = store.stats().hits;
    assert!(hits >= 1);

    // Organization b denies it: b's deny beats a's allow for this user.
    let other = admin::open_writer(&db.path).unwrap();
    admin::deny_model(&other, "b", "openai/o1-*", "ops").unwrap();
    let took = eventually(SECOND, "deny in force", || async {
        store.decide("u", "openai/o1-pro").await.unwrap()
            == denied_by("openai/o1-pro", "b", "openai/o1-*")
    })
    .await;
    assert!(took < SECOND);
    assert!(store
        .decide("u", "openai/gpt-4o")
        .await
        .unwrap()
        .is_allowed());

    // Lifting it restores the allow.
    admin::disable_model(&other, "b", "openai/o1-*", "ops").unwrap();
    eventually(SECOND, "deny lifted", || async {
        store
            .decide("u", "openai/o1-pro")
            .await
            .unwrap()
            .is_allowed()
    })
    .await;
}

#[tokio::test]
async fn shadow_mode_is_read_live() {
    let db = owui_db();
    db.user("u", "user");
    db.org("o");
    db.member("o", "u");
    db.enable("o", "gpt");
    let store = db.store();
    wait_for_first_poll(&store).await;
    assert!(matches!(
        store.decide("u", "claude").await.unwrap(),
        Decision::Denied(_)
    ));
    let other = admin::open_writer(&db.path).unwrap();
    admin::set_mode(&other, "o", Mode::Shadow, "ops").unwrap();
    eventually(SECOND, "shadow mode", || async {
        matches!(
            store.decide("u", "claude").await.unwrap(),
            Decision::WouldDeny(DenyReason::NotPermitted { .. })
        )
    })
    .await;
    assert!(store.decide("u", "gpt").await.unwrap().is_allowed());
    admin::set_mode(&other, "o", Mode::Enforce, "ops").unwrap();
    eventually(SECOND, "enforced again", || async {
        matches!(
            store.decide("u", "claude").await.unwrap(),
            Decision::Denied(_)
        )
    })
    .await;
}

fn group(conn: &Connection, id: &str, name: &str, parent: Option<&str>) {
    conn.execute(
        "INSERT INTO \"group\" (id, user_id, name, description, created_at, updated_at, parent_group_id)
         VALUES (?1, 'admin', ?2, '', 0, 0, ?3)",
        rusqlite::params![id, name, parent],
    )
    .unwrap();
}

fn join(conn: &Connection, group: &str, user: &str) {
    conn.execute(
        "INSERT INTO group_member (id, group_id, user_id, created_at, updated_at)
         VALUES (?1 || '-' || ?2, ?1, ?2, 0, 0)",
        [group, user],
    )
    .unwrap();
}

#[tokio::test]
async fn group_membership_written_by_open_webui_applies_within_a_second() {
    let db = owui_db();
    for u in ["ann", "ben"] {
        db.user(u, "user");
    }
    db.org("o");
    db.enable("o", "gpt");
    group(&db.conn, "g-eng", "engineering", None);
    group(&db.conn, "g-backend", "backend", Some("g-eng"));
    join(&db.conn, "g-eng", "ann");
    admin::bind_group(&db.conn, "o", "engineering", "ops").unwrap();

    let store = db.store();
    wait_for_first_poll(&store).await;
    assert!(store.decide("ann", "gpt").await.unwrap().is_allowed());
    assert_eq!(
        store.decide("ben", "gpt").await.unwrap(),
        Decision::Denied(DenyReason::NoOrganization)
    );

    // Open WebUI (or its SCIM/OAuth sync) adds ben to a subgroup: members
    // of a subgroup are members of the bound parent, as in Open WebUI.
    let webui = Connection::open(&db.path).unwrap();
    join(&webui, "g-backend", "ben");
    let took = eventually(SECOND, "subgroup member admitted", || async {
        store.decide("ben", "gpt").await.unwrap().is_allowed()
    })
    .await;
    assert!(took < SECOND);

    // Removed from the group in Open WebUI: out of the organization.
    webui
        .execute("DELETE FROM group_member WHERE user_id = 'ann'", [])
        .unwrap();
    let took = eventually(SECOND, "group removal", || async {
        store.decide("ann", "gpt").await.unwrap() == Decision::Denied(DenyReason::NoOrganization)
    })
    .await;
    assert!(took < SECOND);

    // Unbinding removes everyone it admitted.
    admin::unbind_group(&webui, "o", "g-eng", "ops").unwrap();
    eventually(SECOND, "unbind", || async {
        !store.decide("ben", "gpt").await.unwrap().is_allowed()
    })
    .await;
}

#[tokio::test]
async fn explicit_and_group_memberships_add_up() {
    let db = owui_db();
    db.user("u", "user");
    db.org("a");
    db.org("b");
    db.enable("a", "gpt");
    db.enable("b", "claude");
    db.member("a", "u");
    group(&db.conn, "g", "research", None);
    join(&db.conn, "g", "u");
    admin::bind_group(&db.conn, "b", "g", "ops").unwrap();
    let store = db.store();
    let access = store.user("u").await.unwrap();
    assert_eq!(access.organizations, ["a", "b"]);
    assert!(store.decide("u", "gpt").await.unwrap().is_allowed());
    assert!(store.decide("u", "claude").await.unwrap().is_allowed());
}

/// A rule row the gate cannot read (only a foreign writer can store one)
/// fails the lookup — never a narrower or wider policy — and is not cached.
#[tokio::test]
async fn an_unreadable_rule_fails_closed_and_recovers() {
    let db = owui_db();
    db.user("u", "user");
    db.org("o");
    db.member("o", "u");
    db.enable("o", "gpt");
    db.conn
        .execute(
            "INSERT INTO organization_model_rules (id, organization_id, pattern, effect, is_active)
             VALUES ('bad', 'o', 'gpt\\x', 'deny', 1)",
            [],
        )
        .unwrap();
    let store = db.store();
    let err = store.decide("u", "gpt").await.unwrap_err();
    assert!(matches!(err, StoreError::Schema(_)), "{err:?}");
    assert!(err.is_unavailable());
    db.conn
        .execute(
            "UPDATE organization_model_rules SET pattern = 'gpt' WHERE id = 'bad'",
            [],
        )
        .unwrap();
    eventually(SECOND, "recovered", || async {
        matches!(
            store.decide("u", "gpt").await,
            Ok(Decision::Denied(DenyReason::DeniedByRule { .. }))
        )
    })
    .await;
}

/// A database whose organization schema predates rules, bindings and
/// modes is read as it always was.
#[tokio::test]
async fn an_older_schema_still_decides() {
    let db = owui_db();
    db.user("u", "user");
    db.org("o");
    db.member("o", "u");
    db.enable("o", "gpt");
    db.conn
        .execute_batch(
            "DROP TABLE organization_model_rules; DROP TABLE organization_groups;
             DROP TRIGGER trg_organizations_audit_insert;
             DROP TRIGGER trg_organizations_audit_update;
             DROP TRIGGER trg_organizations_audit_delete;
             ALTER TABLE organizations DROP COLUMN mode;",
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let store = db.store();
    assert!(store.decide("u", "gpt").await.unwrap().is_allowed());
    assert!(!store.decide("u", "claude").await.unwrap().is_allowed());
}
