//! Builds the load-test database with the product's own store code
//! (`ensure_schema`, `create_org`, `add_member`, `enable_model`) plus
//! Open WebUI-shaped `user` and `model` tables, and returns the fixture
//! describing it.
//!
//! Assignment (deterministic): organization `k` of `K` permits model `i`
//! when `i % K == k` or `i % 7 == 0` (a shared core), so organizations
//! overlap but differ. User `u` belongs to org `u % K`; every tenth user
//! also to org `(u + 1) % K`, so multi-membership is exercised.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::Context;
use modelgate::store;
use modelgate::store::admin::MemberRole;
use rusqlite::params;

use crate::fixture::{mint_token, Fixture, OrgFixture, UserFixture};
use crate::models::model_ids;

/// Audit-log actor for the rows setup writes.
const ACTOR: &str = "modelgate-load setup";
/// How many allowed / forbidden ids each user carries in the fixture.
const ALLOWED_SAMPLE: usize = 8;
const FORBIDDEN_SAMPLE: usize = 4;

#[derive(Debug, Clone)]
pub struct SetupConfig {
    pub db: PathBuf,
    pub users: usize,
    pub orgs: usize,
    pub models: usize,
    pub secret: String,
    /// Replace an existing database file instead of refusing.
    pub force: bool,
}

pub fn user_id(u: usize) -> String {
    format!("load-user-{u:04}")
}

pub fn org_id(k: usize) -> String {
    format!("load-org-{k}")
}

/// Whether org `k` of `orgs` permits model index `i` (see module doc).
pub fn org_permits(k: usize, orgs: usize, i: usize) -> bool {
    i % orgs == k || i % 7 == 0
}

/// The organizations of user `u`.
pub fn user_orgs(u: usize, orgs: usize) -> Vec<usize> {
    let mut v = vec![u % orgs];
    if u % 10 == 0 && orgs > 1 {
        v.push((u + 1) % orgs);
    }
    v
}

pub fn setup(cfg: &SetupConfig) -> anyhow::Result<Fixture> {
    anyhow::ensure!(cfg.users > 0, "need at least one user");
    anyhow::ensure!(cfg.orgs > 0, "need at least one organization");
    anyhow::ensure!(cfg.models >= 14, "need at least 14 models");
    anyhow::ensure!(!cfg.secret.is_empty(), "the JWT secret is empty");
    prepare_path(&cfg.db, cfg.force)?;
    let conn = store::admin::open_writer(&cfg.db)
        .with_context(|| format!("opening {}", cfg.db.display()))?;
    // Setup makes ~1,000 small transactions; without fsync per commit it
    // takes a fraction of a second (WAL + NORMAL is still crash-consistent).
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    store::ensure_schema(&conn)?;
    let ids = model_ids(cfg.models);
    write_openwebui_tables(&conn, cfg.users, &ids)?;

    let mut organizations = Vec::with_capacity(cfg.orgs);
    for k in 0..cfg.orgs {
        let name = format!("Load Test Org {k}");
        store::admin::create_org(&conn, &org_id(k), &name, ACTOR)?;
        let mut count = 0;
        for (i, model) in ids.iter().enumerate() {
            if org_permits(k, cfg.orgs, i) {
                store::admin::enable_model(&conn, &org_id(k), model, ACTOR)?;
                count += 1;
            }
        }
        organizations.push(OrgFixture {
            id: org_id(k),
            name,
            models: count,
        });
    }

    let mut users = Vec::with_capacity(cfg.users);
    for u in 0..cfg.users {
        let orgs = user_orgs(u, cfg.orgs);
        for &k in &orgs {
            store::admin::add_member(&conn, &org_id(k), &user_id(u), MemberRole::Member, ACTOR)?;
        }
        let permitted: BTreeSet<usize> = (0..cfg.models)
            .filter(|&i| orgs.iter().any(|&k| org_permits(k, cfg.orgs, i)))
            .collect();
        let denied: Vec<usize> = (0..cfg.models).filter(|i| !permitted.contains(i)).collect();
        anyhow::ensure!(
            !denied.is_empty(),
            "user {u} may use every model; use more organizations"
        );
        // Spread the samples over the catalogue, offset per user, so the
        // load touches many distinct model ids.
        let permitted: Vec<usize> = permitted.into_iter().collect();
        users.push(UserFixture {
            id: user_id(u),
            token: mint_token(&cfg.secret, &user_id(u))?,
            orgs: orgs.iter().map(|&k| org_id(k)).collect(),
            allowed: sample(&permitted, ALLOWED_SAMPLE, u)
                .map(|i| ids[i].clone())
                .collect(),
            forbidden: sample(&denied, FORBIDDEN_SAMPLE, u)
                .map(|i| ids[i].clone())
                .collect(),
        });
    }
    Ok(Fixture {
        database: cfg.db.display().to_string(),
        models: cfg.models,
        organizations,
        users,
    })
}

/// Up to `n` elements spread evenly over `v`, starting at an offset.
fn sample(v: &[usize], n: usize, offset: usize) -> impl Iterator<Item = usize> + '_ {
    let n = n.min(v.len());
    let step = v.len() / n.max(1);
    (0..n).map(move |j| v[(offset + j * step) % v.len()])
}

fn prepare_path(db: &Path, force: bool) -> anyhow::Result<()> {
    if db.exists() {
        anyhow::ensure!(force, "{} exists; pass --force to replace it", db.display());
        for suffix in ["", "-wal", "-shm"] {
            let p = PathBuf::from(format!("{}{suffix}", db.display()));
            if p.exists() {
                std::fs::remove_file(&p).with_context(|| format!("removing {}", p.display()))?;
            }
        }
    }
    if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    Ok(())
}

/// The slice of Open WebUI's schema modelgate reads: `user` (for roles)
/// and `model` (every catalogue entry registered, no presets).
fn write_openwebui_tables(
    conn: &rusqlite::Connection,
    users: usize,
    ids: &[String],
) -> anyhow::Result<()> {
    let tx = rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)?;
    store::webui_fixture::create_open_webui_tables(&tx)?;
    {
        let mut user = tx.prepare(
            "INSERT INTO user (id, name, email, role, created_at) VALUES (?1, ?2, ?3, 'user', 0)",
        )?;
        for u in 0..users {
            let id = user_id(u);
            user.execute(params![
                id,
                format!("Load User {u}"),
                format!("{id}@load.test")
            ])?;
        }
        let mut model = tx.prepare(
            "INSERT INTO model (id, user_id, base_model_id, name, params, meta, is_active, created_at)
             VALUES (?1, NULL, NULL, ?1, '{}', '{}', 1, 0)",
        )?;
        for id in ids {
            model.execute([id])?;
        }
    }
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignment_overlaps_but_differs() {
        let a: Vec<usize> = (0..300).filter(|&i| org_permits(0, 6, i)).collect();
        let b: Vec<usize> = (0..300).filter(|&i| org_permits(1, 6, i)).collect();
        assert_ne!(a, b);
        assert!(a.iter().any(|i| b.contains(i)));
        assert_eq!(user_orgs(10, 6), vec![4, 5]);
        assert_eq!(user_orgs(11, 6), vec![5]);
    }

    #[tokio::test]
    async fn the_product_agrees_with_the_fixture() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("webui.db");
        let fixture = setup(&SetupConfig {
            db: db.clone(),
            users: 20,
            orgs: 6,
            models: 60,
            secret: "k".into(),
            force: false,
        })
        .unwrap();
        assert_eq!(fixture.users.len(), 20);
        let access = store::AccessStore::open(store::StoreConfig::new(&db));
        for u in &fixture.users {
            for m in &u.allowed {
                assert!(
                    access.decide(&u.id, m).await.unwrap().is_allowed(),
                    "{} {m}",
                    u.id
                );
            }
            for m in &u.forbidden {
                assert!(
                    !access.decide(&u.id, m).await.unwrap().is_allowed(),
                    "{} {m}",
                    u.id
                );
            }
        }
        // Refuses to overwrite without --force.
        let again = SetupConfig {
            db,
            users: 1,
            orgs: 3,
            models: 20,
            secret: "k".into(),
            force: false,
        };
        assert!(setup(&again).is_err());
        assert!(setup(&SetupConfig {
            force: true,
            ..again
        })
        .is_ok());
    }
}
