//! The store under change and failure: revocation by another connection
//! while the cache is warm, concurrent lookups during writes, and a database
//! that is missing, locked or garbage — typed errors, never cached, and
//! recovery when it returns.

mod store_support;

use std::time::Duration;

use modelgate::store::admin::{self, MemberRole};
use modelgate::store::{ensure_schema, AccessStore, Decision, StoreError};
use rusqlite::Connection;
use store_support::*;

#[tokio::test]
async fn revocation_by_another_connection_applies_within_a_second() {
    let db = owui_db();
    db.user("u", "user");
    db.org("o");
    db.member("o", "u");
    db.enable("o", "gpt");
    // Default config: the real 250 ms watch interval.
    let store = db.store();
    // The watcher's first poll invalidates (it has no baseline before it);
    // warm the cache after it, or the "hit" below can be a second miss.
    wait_for_first_poll(&store).await;
    assert!(store.decide("u", "gpt").await.unwrap().is_allowed());
    assert!(store.decide("u", "gpt").await.unwrap().is_allowed());
    assert!(store.stats().hits >= 1);

    // A plain connection, as the sqlite3 shell would write it.
    let other = Connection::open(&db.path).unwrap();
    other
        .execute(
            "UPDATE organization_models SET is_active = 0 WHERE model_id = 'gpt'",
            [],
        )
        .unwrap();
    let took = eventually(Duration::from_secs(1), "model revocation", || async {
        !store.decide("u", "gpt").await.unwrap().is_allowed()
    })
    .await;
    assert!(took < Duration::from_secs(1));
    assert!(store.stats().invalidations >= 1);

    // Membership revocation through our own admin API, from another handle.
    db.enable("o", "gpt");
    eventually(Duration::from_secs(1), "re-enable", || async {
        store.decide("u", "gpt").await.unwrap().is_allowed()
    })
    .await;
    admin::remove_member(&other, "o", "u", "admin").unwrap();
    eventually(Duration::from_secs(1), "membership revocation", || async {
        store.decide("u", "gpt").await.unwrap()
            == Decision::Denied(modelgate::store::DenyReason::NoOrganization)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_lookups_during_writes() {
    let db = owui_db();
    db.org("o");
    for i in 0..50 {
        let u = format!("u{i}");
        db.user(&u, "user");
        db.member("o", &u);
    }
    db.enable("o", "gpt");
    let store = db.store();
    let path = db.path.clone();
    let writer = tokio::task::spawn_blocking(move || {
        let conn = admin::open_writer(&path).unwrap();
        for i in 0..100 {
            let model = format!("m{}", i % 10);
            if i % 2 == 0 {
                admin::enable_model(&conn, "o", &model, "w").unwrap();
            } else {
                admin::disable_model(&conn, "o", &model, "w").unwrap();
            }
        }
    });
    let mut readers = Vec::new();
    for r in 0..8 {
        let store = store.clone();
        readers.push(tokio::spawn(async move {
            for i in 0..200 {
                let u = format!("u{}", (i + r) % 50);
                // gpt is never touched by the writer: always allowed.
                let d = store.decide(&u, "gpt").await.unwrap();
                assert!(d.is_allowed(), "{u}: {d:?}");
            }
        }));
    }
    writer.await.unwrap();
    for r in readers {
        r.await.unwrap();
    }
}

#[tokio::test]
async fn missing_file_is_an_uncached_error_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("later.db");
    let store = AccessStore::open(config(&path));
    for _ in 0..2 {
        let err = store.user("u").await.unwrap_err();
        assert!(matches!(err, StoreError::Missing { .. }), "{err:?}");
        assert!(err.is_unavailable());
    }
    assert!(matches!(
        store.ping().await,
        Err(StoreError::Missing { .. })
    ));
    assert!(matches!(
        store.decide("u", "m").await,
        Err(StoreError::Missing { .. })
    ));
    assert!(store.stats().last_error.is_some());
    // The read pool must not have created the file.
    assert!(!path.exists());

    let conn = admin::open_writer(&path).unwrap();
    ensure_schema(&conn).unwrap();
    admin::create_org(&conn, "o", "O", "t").unwrap();
    admin::add_member(&conn, "o", "u", MemberRole::Member, "t").unwrap();
    admin::enable_model(&conn, "o", "m", "t").unwrap();
    assert!(store.decide("u", "m").await.unwrap().is_allowed());
    store.ping().await.unwrap();
    eventually(Duration::from_secs(2), "last_error cleared", || async {
        store.stats().last_error.is_none()
    })
    .await;

    // The file disappears under a warm cache: fail closed, then recover.
    drop(conn);
    std::fs::remove_file(&path).unwrap();
    let _ = std::fs::remove_file(path.with_extension("db-wal"));
    let _ = std::fs::remove_file(path.with_extension("db-shm"));
    eventually(Duration::from_secs(2), "missing after delete", || async {
        matches!(
            store.decide("u", "m").await,
            Err(StoreError::Missing { .. })
        )
    })
    .await;
}

#[tokio::test]
async fn schema_missing_is_typed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bare.db");
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(OPEN_WEBUI_TABLES).unwrap();
    let store = AccessStore::open(config(&path));
    let err = store.user("u").await.unwrap_err();
    assert!(matches!(err, StoreError::Schema(_)), "{err:?}");
    assert!(err.is_unavailable());
    // `modelgate init` runs: the store notices and answers.
    ensure_schema(&conn).unwrap();
    eventually(Duration::from_secs(2), "schema created", || async {
        store.user("u").await.is_ok()
    })
    .await;
}

#[tokio::test]
async fn locked_database_is_unavailable_then_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("locked.db");
    // Rollback journal: an EXCLUSIVE lock blocks readers (WAL would not).
    let conn = Connection::open(&path).unwrap();
    ensure_schema(&conn).unwrap();
    admin::create_org(&conn, "o", "O", "t").unwrap();
    admin::add_member(&conn, "o", "u", MemberRole::Member, "t").unwrap();
    admin::enable_model(&conn, "o", "m", "t").unwrap();
    let store = AccessStore::open(config(&path));

    conn.execute_batch("BEGIN EXCLUSIVE").unwrap();
    for _ in 0..2 {
        let err = store.user("u").await.unwrap_err();
        assert!(matches!(err, StoreError::Busy(_)), "{err:?}");
        assert!(err.is_unavailable());
    }
    conn.execute_batch("COMMIT").unwrap();
    eventually(Duration::from_secs(2), "lock released", || async {
        store.decide("u", "m").await.map(|d| d.is_allowed()) == Ok(true)
    })
    .await;
}

#[tokio::test]
async fn garbage_file_is_unavailable_then_recovers_when_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("webui.db");
    std::fs::write(&path, vec![0x5a_u8; 8192]).unwrap();
    let store = AccessStore::open(config(&path));
    for _ in 0..2 {
        let err = store.user("u").await.unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    }
    assert!(store.ping().await.is_err());

    // A good database is moved into place (new inode), as a restore would.
    let good = dir.path().join("good.db");
    let conn = Connection::open(&good).unwrap();
    ensure_schema(&conn).unwrap();
    admin::create_org(&conn, "o", "O", "t").unwrap();
    admin::add_member(&conn, "o", "u", MemberRole::Member, "t").unwrap();
    admin::enable_model(&conn, "o", "m", "t").unwrap();
    drop(conn);
    std::fs::rename(&good, &path).unwrap();
    eventually(Duration::from_secs(2), "replaced file readable", || async {
        store.decide("u", "m").await.map(|d| d.is_allowed()) == Ok(true)
    })
    .await;
    store.ping().await.unwrap();
}

#[tokio::test]
async fn watcher_records_data_version_and_polls() {
    let db = owui_db();
    let store = AccessStore::open(config(&db.path));
    eventually(Duration::from_secs(2), "first poll", || async {
        store.stats().data_version.is_some() && store.watcher_polls() > 0
    })
    .await;
    let before = store.stats().invalidations;
    db.org("new");
    eventually(Duration::from_secs(2), "change seen", || async {
        store.stats().invalidations > before
    })
    .await;
}

#[tokio::test]
async fn model_revocation_with_user_and_org_caches_warm() {
    let db = owui_db();
    db.org("o");
    for u in ["u1", "u2", "fresh"] {
        db.user(u, "user");
        db.member("o", u);
    }
    db.enable("o", "gpt");
    db.enable("o", "claude");
    // Default config: the real 250 ms watch interval.
    let store = db.store();
    wait_for_first_poll(&store).await;
    for _ in 0..2 {
        for u in ["u1", "u2"] {
            assert!(store.decide(u, "gpt").await.unwrap().is_allowed());
        }
    }
    let warm = store.stats();
    assert!(warm.hits >= 2 && warm.org_hits >= 1, "{warm:?}");

    let other = Connection::open(&db.path).unwrap();
    other
        .execute(
            "UPDATE organization_models SET is_active = 0 WHERE model_id = 'gpt'",
            [],
        )
        .unwrap();
    let took = eventually(
        Duration::from_secs(1),
        "revocation, warm caches",
        || async {
            !store.decide("u1", "gpt").await.unwrap().is_allowed()
                && !store.decide("u2", "gpt").await.unwrap().is_allowed()
        },
    )
    .await;
    assert!(took < Duration::from_secs(1));
    // A user never looked up before gets the new set too, not a stale one.
    assert!(!store.decide("fresh", "gpt").await.unwrap().is_allowed());
    assert!(store.decide("fresh", "claude").await.unwrap().is_allowed());
    assert!(store.stats().invalidations > warm.invalidations);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn users_of_one_organization_share_one_set_load() {
    let db = owui_db();
    db.org("o");
    for i in 0..20 {
        let u = format!("u{i}");
        db.user(&u, "user");
        db.member("o", &u);
    }
    db.enable("o", "gpt");
    let store = AccessStore::open(config(&db.path));
    wait_for_first_poll(&store).await;
    let before = store.stats();

    // Two users at once: one coalesced load, one shared Arc.
    let (a, b) = tokio::join!(store.user("u0"), store.user("u1"));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(std::sync::Arc::ptr_eq(
        &a.model_sets()[0],
        &b.model_sets()[0]
    ));
    // Many more, concurrently and after: still that one load.
    let mut tasks = Vec::new();
    for i in 2..20 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store.user(&format!("u{i}")).await.unwrap()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().permits("gpt"), Some("o"));
    }
    let after = store.stats();
    assert_eq!(
        after.invalidations, before.invalidations,
        "no change expected"
    );
    assert_eq!(after.org_loads - before.org_loads, 1, "{after:?}");
    assert_eq!(after.misses - before.misses, 20, "{after:?}");
    assert!(after.org_hits - before.org_hits >= 1, "{after:?}");
}

#[tokio::test]
async fn failed_org_set_load_is_typed_and_not_cached() {
    let db = owui_db();
    db.org("bad");
    db.org("good");
    db.user("u", "user");
    db.user("v", "user");
    db.member("bad", "u");
    db.member("good", "v");
    db.enable("bad", "gpt");
    db.enable("good", "gpt");
    // A foreign writer stores a BLOB model id (the audit triggers would
    // refuse to log a BLOB, so they go first, as a careless script might).
    db.conn
        .execute_batch(
            "DROP TRIGGER trg_organization_models_audit_insert;
             DROP TRIGGER trg_organization_models_audit_delete;
             INSERT INTO organization_models (id, organization_id, model_id, is_active)
             VALUES ('blob', 'bad', x'00ff', 1);",
        )
        .unwrap();
    let store = AccessStore::open(config(&db.path));
    wait_for_first_poll(&store).await;
    let before = store.stats();
    for _ in 0..2 {
        let err = store.user("u").await.unwrap_err();
        assert!(matches!(err, StoreError::Sqlite(_)), "{err:?}");
        assert!(err.is_unavailable());
        assert!(matches!(
            store.decide("u", "gpt").await,
            Err(StoreError::Sqlite(_))
        ));
    }
    let after = store.stats();
    // Every attempt went back to the database: nothing was cached.
    assert_eq!(after.org_loads - before.org_loads, 4, "{after:?}");
    assert!(after.last_error.is_some());
    // Other organizations are unaffected.
    assert!(store.decide("v", "gpt").await.unwrap().is_allowed());

    db.conn
        .execute("DELETE FROM organization_models WHERE id = 'blob'", [])
        .unwrap();
    eventually(Duration::from_secs(2), "bad row removed", || async {
        store.decide("u", "gpt").await.map(|d| d.is_allowed()) == Ok(true)
    })
    .await;
}
