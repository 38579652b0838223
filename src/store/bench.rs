//! Synthetic data at production scale and the `modelgate db-bench` report:
//! latency percentiles of the seed's three queries plus our lookup, and an
//! `EXPLAIN QUERY PLAN` check that each uses its seed index and never scans
//! an organization table.

use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, TransactionBehavior};
use serde::Serialize;

use super::error::StoreError;
use super::lookup::LOOKUP_SQL;
use super::pool::open_read_only;
use super::schema::{create_indexes_view_triggers, create_tables};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Sizes {
    pub users: usize,
    pub orgs: usize,
    pub models: usize,
    pub memberships: usize,
    pub links: usize,
}

impl Default for Sizes {
    fn default() -> Self {
        Sizes {
            users: 100_000,
            orgs: 1_000,
            models: 2_000,
            memberships: 300_000,
            links: 500_000,
        }
    }
}

/// Ids the generator uses, so benches and tests can name existing rows.
pub fn user_id(i: usize) -> String {
    format!("user-{i:06}")
}
pub fn org_id(i: usize) -> String {
    format!("org-{i:04}")
}
pub fn model_id(i: usize) -> String {
    format!("model-{i:04}")
}

/// Fills an empty database: Open WebUI-shaped `user` and `model` tables
/// (created only if absent; a tenth of the models get a preset) and the
/// organization tables. One transaction; indexes and audit triggers are
/// created after the bulk insert (faster, and no audit rows for synthetic
/// data), then `ANALYZE` as the seed's runbook recommends.
pub fn generate(conn: &Connection, sizes: Sizes) -> Result<Sizes, StoreError> {
    let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    create_tables(&tx)?;
    let existing: i64 = tx.query_row("SELECT COUNT(*) FROM organization_members", [], |r| {
        r.get(0)
    })?;
    if existing > 0 {
        return Err(StoreError::Sqlite(
            "generate needs a database without memberships".into(),
        ));
    }
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS user (id TEXT PRIMARY KEY, name TEXT, email TEXT, role TEXT);
         CREATE TABLE IF NOT EXISTS model (id TEXT PRIMARY KEY, user_id TEXT, base_model_id TEXT,
             name TEXT, params TEXT, meta TEXT, is_active INTEGER DEFAULT 1);",
    )?;
    let mut rng = SplitMix(0x5eed);
    {
        let mut user =
            tx.prepare("INSERT INTO user (id, name, email, role) VALUES (?1, ?1, ?1, ?2)")?;
        for i in 0..sizes.users {
            user.execute(params![
                user_id(i),
                if i % 50 == 0 { "admin" } else { "user" }
            ])?;
        }
        let mut model =
            tx.prepare("INSERT INTO model (id, base_model_id, name) VALUES (?1, ?2, ?1)")?;
        for i in 0..sizes.models {
            model.execute(params![model_id(i), None::<String>])?;
            if i % 10 == 0 {
                model.execute(params![format!("preset-{i:04}"), Some(model_id(i))])?;
            }
        }
        let mut org =
            tx.prepare("INSERT INTO organizations (id, name, created_at) VALUES (?1, ?1, 0)")?;
        for i in 0..sizes.orgs {
            org.execute([org_id(i)])?;
        }
        // Stepping by a prime coprime with the counts keeps the pairs of one
        // user (or org) distinct; OR IGNORE absorbs any leftover collision.
        let mut member = tx.prepare(
            "INSERT OR IGNORE INTO organization_members (id, organization_id, user_id, role, is_active, joined_at)
             VALUES ('om_' || ?2 || '_' || ?1, ?1, ?2, 'member', ?3, 0)",
        )?;
        let users = sizes.users.max(1);
        let orgs = sizes.orgs.max(1);
        for i in 0..sizes.memberships {
            let (u, k) = (i % users, i / users);
            let o = (mix(u as u64) as usize + k * 7919) % orgs;
            member.execute(params![org_id(o), user_id(u), rng.below(100) >= 5])?;
        }
        let mut link = tx.prepare(
            "INSERT OR IGNORE INTO organization_models (id, organization_id, model_id, is_active, created_at, updated_at)
             VALUES ('orgmod_' || ?1 || '_' || ?2, ?1, ?2, ?3, 0, 0)",
        )?;
        let models = sizes.models.max(1);
        for i in 0..sizes.links {
            let (o, k) = (i % orgs, i / orgs);
            let m = (mix(o as u64) as usize + k * 7919) % models;
            link.execute(params![org_id(o), model_id(m), rng.below(100) >= 10])?;
        }
    }
    create_indexes_view_triggers(&tx)?;
    tx.execute_batch("ANALYZE")?;
    let count = |table: &str| -> Result<usize, StoreError> {
        let n: i64 = tx.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))?;
        Ok(usize::try_from(n).unwrap_or(0))
    };
    let made = Sizes {
        users: count("user")?,
        orgs: count("organizations")?,
        models: count("model")?,
        memberships: count("organization_members")?,
        links: count("organization_models")?,
    };
    tx.commit()?;
    Ok(made)
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueryReport {
    pub name: &'static str,
    pub sql: String,
    pub p50_us: f64,
    pub p95_us: f64,
    pub p99_us: f64,
    /// `EXPLAIN QUERY PLAN` detail lines.
    pub plan: Vec<String>,
    pub expected_indexes: Vec<&'static str>,
    /// Expected indexes missing from the plan.
    pub missing_indexes: Vec<&'static str>,
    /// Plan lines that scan an organization table.
    pub scans: Vec<String>,
    pub ok: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DbBenchReport {
    pub iterations: usize,
    pub queries: Vec<QueryReport>,
    /// Every query uses its indexes and none scans: `db-bench` exits
    /// non-zero otherwise.
    pub ok: bool,
}

const USER_ORGS: &str = "SELECT DISTINCT organization_id FROM organization_members WHERE user_id = ?1 AND is_active = 1";
const ORG_MODELS: &str =
    "SELECT DISTINCT model_id FROM organization_models WHERE organization_id = ?1 AND is_active = 1";
const USER_MODELS_VIEW: &str =
    "SELECT DISTINCT model_id FROM user_available_models WHERE user_id = ?1";
const MEMBERS_IDX: &str = "idx_org_members_user_active";
const MODELS_IDX: &str = "idx_org_models_org_active";

/// Opens `path` read-only and times each query `iterations` times over ids
/// sampled from the data (the seed's fixed "test_user_id" would only
/// measure misses).
pub fn db_bench(path: &Path, iterations: usize) -> Result<DbBenchReport, StoreError> {
    let conn = open_read_only(path, Duration::from_secs(5))?;
    let users = sample(
        &conn,
        "SELECT DISTINCT user_id FROM organization_members LIMIT 1000",
    )?;
    let orgs = sample(
        &conn,
        "SELECT DISTINCT organization_id FROM organization_models LIMIT 1000",
    )?;
    let cases: [(&'static str, &str, &[String], Vec<&'static str>); 4] = [
        ("user_orgs", USER_ORGS, &users, vec![MEMBERS_IDX]),
        ("org_models", ORG_MODELS, &orgs, vec![MODELS_IDX]),
        (
            "user_models_view",
            USER_MODELS_VIEW,
            &users,
            vec![MEMBERS_IDX, MODELS_IDX],
        ),
        ("lookup", LOOKUP_SQL, &users, vec![MEMBERS_IDX, MODELS_IDX]),
    ];
    let mut queries = Vec::new();
    for (name, sql, ids, expected) in cases {
        let plan = explain(&conn, sql)?;
        let missing_indexes: Vec<&'static str> = expected
            .iter()
            .copied()
            .filter(|idx| !plan.iter().any(|line| line.contains(idx)))
            .collect();
        let scans: Vec<String> = plan
            .iter()
            .filter(|l| l.starts_with("SCAN") && l.contains("organization_"))
            .cloned()
            .collect();
        let times = time_query(&conn, sql, ids, iterations)?;
        queries.push(QueryReport {
            name,
            sql: sql.to_string(),
            p50_us: percentile(&times, 0.50),
            p95_us: percentile(&times, 0.95),
            p99_us: percentile(&times, 0.99),
            plan,
            ok: missing_indexes.is_empty() && scans.is_empty(),
            expected_indexes: expected,
            missing_indexes,
            scans,
        });
    }
    Ok(DbBenchReport {
        iterations,
        ok: queries.iter().all(|q| q.ok),
        queries,
    })
}

fn sample(conn: &Connection, sql: &str) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn.prepare(sql)?;
    let mut ids = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    if ids.is_empty() {
        ids.push("test_user_id".into());
    }
    Ok(ids)
}

/// The plan's detail lines (column 3 of EXPLAIN QUERY PLAN).
pub fn explain(conn: &Connection, sql: &str) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
    let lines = stmt
        .query_map(["x"], |r| r.get::<_, String>(3))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(lines)
}

fn time_query(
    conn: &Connection,
    sql: &str,
    ids: &[String],
    iterations: usize,
) -> Result<Vec<f64>, StoreError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut times = Vec::with_capacity(iterations);
    for i in 0..iterations {
        let id = &ids[i % ids.len()];
        let start = Instant::now();
        let mut rows = stmt.query([id])?;
        while rows.next()?.is_some() {}
        times.push(start.elapsed().as_secs_f64() * 1e6);
    }
    times.sort_by(f64::total_cmp);
    Ok(times)
}

/// Nearest-rank percentile of sorted samples (0 when empty).
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Deterministic PRNG (splitmix64): reproducible data without a dependency.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }

    #[test]
    fn small_generated_db_passes_the_plan_check() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bench.db");
        let conn = Connection::open(&path).unwrap();
        let sizes = Sizes {
            users: 500,
            orgs: 20,
            models: 50,
            memberships: 1_500,
            links: 600,
        };
        let made = generate(&conn, sizes).unwrap();
        assert_eq!(made.orgs, 20);
        assert_eq!(made.memberships, 1_500);
        assert_eq!(made.links, 600);
        assert_eq!(made.models, 55);
        let audit: i64 = conn
            .query_row("SELECT COUNT(*) FROM permission_audit_log", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(audit, 0);
        assert!(generate(&conn, sizes).is_err());
        let report = db_bench(&path, 50).unwrap();
        assert!(report.ok, "{report:#?}");
        assert_eq!(report.queries.len(), 4);
    }

    #[test]
    fn a_missing_index_fails_the_check() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("noidx.db");
        let conn = Connection::open(&path).unwrap();
        crate::store::ensure_schema(&conn).unwrap();
        conn.execute_batch("DROP INDEX idx_org_members_user_active")
            .unwrap();
        let report = db_bench(&path, 5).unwrap();
        assert!(!report.ok);
        let user_orgs = &report.queries[0];
        assert_eq!(user_orgs.missing_indexes, vec![MEMBERS_IDX]);
    }
}
