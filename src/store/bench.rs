//! Synthetic data at production scale and the `modelgate db-bench` report:
//! latency percentiles of the seed's three queries plus our two lookup
//! queries, and an `EXPLAIN QUERY PLAN` check that each uses its index and
//! never scans an organization table.

use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, TransactionBehavior};
use serde::Serialize;

use super::error::StoreError;
use super::lookup::{MEMBERSHIPS_SQL, ORG_MODELS_SQL};
use super::pool::open_read_only;
use super::schema::{create_indexes_view_triggers, create_tables, COVERING_MODELS_INDEX};
use super::webui_fixture::create_open_webui_tables;

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
    create_open_webui_tables(&tx)?;
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
    /// Indexes the plan must use (by exact name; see `Expect`).
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

/// How a plan may satisfy one expected index.
#[derive(Clone, Copy)]
enum Expect {
    /// This index, or an index that extends it (same leading columns plus
    /// more). The seed queries name `idx_org_models_org_active`; once our
    /// covering `idx_org_models_org_active_model` exists SQLite rightly
    /// prefers it (it answers from the index alone), and that is the seed
    /// index's job done better, not a missing index.
    IndexOrExtension(&'static str, &'static [&'static str]),
    /// Exactly this index, read without touching the table.
    Covering(&'static str),
}

impl Expect {
    fn name(self) -> &'static str {
        match self {
            Expect::IndexOrExtension(name, _) | Expect::Covering(name) => name,
        }
    }

    fn met_by(self, plan: &[String]) -> bool {
        plan.iter().any(|line| match (self, plan_index(line)) {
            (Expect::IndexOrExtension(name, ext), Some((used, _))) => {
                used == name || ext.contains(&used)
            }
            (Expect::Covering(name), Some((used, covering))) => covering && used == name,
            (_, None) => false,
        })
    }
}

const MODELS_SEED: Expect = Expect::IndexOrExtension(MODELS_IDX, &[COVERING_MODELS_INDEX]);
const MEMBERS_SEED: Expect = Expect::IndexOrExtension(MEMBERS_IDX, &[]);

/// The named index a plan line uses and whether it is covering:
/// `SEARCH t USING [COVERING ]INDEX name (...)`. Names are compared whole:
/// a substring test would let `idx_org_models_org_active_model` pass for
/// `idx_org_models_org_active`. Automatic indexes have no name to match.
pub fn plan_index(line: &str) -> Option<(&str, bool)> {
    let (covering, rest) = if let Some((_, rest)) = line.split_once("USING COVERING INDEX ") {
        (true, rest)
    } else {
        (false, line.split_once("USING INDEX ")?.1)
    };
    let name = rest.split([' ', '(']).next().filter(|n| !n.is_empty())?;
    Some((name, covering))
}

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
    let cases: [(&'static str, &str, &[String], Vec<Expect>); 5] = [
        ("user_orgs", USER_ORGS, &users, vec![MEMBERS_SEED]),
        ("org_models", ORG_MODELS, &orgs, vec![MODELS_SEED]),
        (
            "user_models_view",
            USER_MODELS_VIEW,
            &users,
            vec![MEMBERS_SEED, MODELS_SEED],
        ),
        (
            "lookup_memberships",
            MEMBERSHIPS_SQL,
            &users,
            vec![MEMBERS_SEED],
        ),
        (
            "lookup_org_models",
            ORG_MODELS_SQL,
            &orgs,
            vec![Expect::Covering(COVERING_MODELS_INDEX)],
        ),
    ];
    let mut queries = Vec::new();
    for (name, sql, ids, expected) in cases {
        let plan = explain(&conn, sql)?;
        let missing_indexes: Vec<&'static str> = expected
            .iter()
            .filter(|e| !e.met_by(&plan))
            .map(|e| e.name())
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
            p50_us: tenths(percentile(&times, 0.50)),
            p95_us: tenths(percentile(&times, 0.95)),
            p99_us: tenths(percentile(&times, 0.99)),
            plan,
            ok: missing_indexes.is_empty() && scans.is_empty(),
            expected_indexes: expected.iter().map(|e| e.name()).collect(),
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

/// Rounded to 0.1 µs, the text report's precision: the clock's noise is
/// larger, and `--json` would otherwise print `2.6639999999999997`.
fn tenths(us: f64) -> f64 {
    (us * 10.0).round() / 10.0
}

/// Nearest-rank percentile of sorted samples (0 when empty). Exact over
/// the few hundred samples a bench takes, so no histogram: hdrhistogram
/// earns its place in `load/` (millions of samples, bounded memory), not
/// for a sorted vector of `--iterations` values.
/// Prints p50/p95/p99/max of `times` (µs), sorting them first: the line
/// the store benches print for their latency series.
pub fn report(what: &str, times: &mut [f64]) {
    times.sort_by(f64::total_cmp);
    eprintln!(
        "{what} ({} lookups): p50 {:.1} µs  p95 {:.1} µs  p99 {:.1} µs  max {:.1} µs",
        times.len(),
        percentile(times, 0.5),
        percentile(times, 0.95),
        percentile(times, 0.99),
        times.last().copied().unwrap_or(0.0)
    );
}

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
    fn latencies_are_rounded_to_a_tenth_of_a_microsecond() {
        assert_eq!(tenths(2.6639999999999997), 2.7);
        assert_eq!(tenths(2.64), 2.6);
        assert_eq!(serde_json::to_string(&tenths(1.0 / 3.0)).unwrap(), "0.3");
    }

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
        assert_eq!(report.queries.len(), 5);
        let org_models = &report.queries[4];
        assert!(
            org_models
                .plan
                .iter()
                .any(|l| l.contains("USING COVERING INDEX idx_org_models_org_active_model")),
            "{org_models:#?}"
        );
    }

    #[test]
    fn plan_index_names_are_matched_whole() {
        assert_eq!(
            plan_index(
                "SEARCH om USING INDEX idx_org_members_user_active (user_id=? AND is_active=?)"
            ),
            Some(("idx_org_members_user_active", false))
        );
        assert_eq!(
            plan_index("SEARCH organization_models USING COVERING INDEX idx_org_models_org_active_model (organization_id=? AND is_active=?)"),
            Some(("idx_org_models_org_active_model", true))
        );
        assert_eq!(plan_index("SCAN organization_models"), None);
        assert_eq!(
            plan_index("SEARCH t USING AUTOMATIC COVERING INDEX (x=?)"),
            None
        );
        let seed_only = vec![
            "SEARCH organization_models USING INDEX idx_org_models_org_active (organization_id=? AND is_active=?)".to_string(),
        ];
        assert!(MODELS_SEED.met_by(&seed_only));
        assert!(!Expect::Covering(COVERING_MODELS_INDEX).met_by(&seed_only));
        let other = vec![
            "SEARCH organization_models USING INDEX idx_org_models_org_model (organization_id=?)"
                .to_string(),
        ];
        assert!(!MODELS_SEED.met_by(&other));
    }

    #[test]
    fn without_the_covering_index_only_our_query_fails_the_check() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nocover.db");
        let conn = Connection::open(&path).unwrap();
        crate::store::schema::ensure_schema(&conn).unwrap();
        conn.execute_batch("DROP INDEX idx_org_models_org_active_model")
            .unwrap();
        let report = db_bench(&path, 5).unwrap();
        assert!(!report.ok);
        let failed: Vec<&str> = report
            .queries
            .iter()
            .filter(|q| !q.ok)
            .map(|q| q.name)
            .collect();
        assert_eq!(failed, vec!["lookup_org_models"], "{report:#?}");
    }

    #[test]
    fn a_missing_index_fails_the_check() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("noidx.db");
        let conn = Connection::open(&path).unwrap();
        crate::store::schema::ensure_schema(&conn).unwrap();
        conn.execute_batch("DROP INDEX idx_org_members_user_active")
            .unwrap();
        let report = db_bench(&path, 5).unwrap();
        assert!(!report.ok);
        let user_orgs = &report.queries[0];
        assert_eq!(user_orgs.missing_indexes, vec![MEMBERS_IDX]);
    }
}
