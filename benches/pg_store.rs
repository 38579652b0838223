//! The access store on PostgreSQL, beside `access_store` (SQLite): the same
//! data set (100k users, 1,000 organizations, 2,200 models, 300k
//! memberships, 500k links), generated in SQL, on a throwaway local cluster
//! (unix socket, `fsync=off`; the harness the PostgreSQL tests use).
//!
//! - `pg_decide_cache_hit` (criterion): a cached user's decision; the
//!   database is not touched, so it should match SQLite's.
//! - `cold lookup, org sets warm` (printed): `AccessStore::user` for 30k
//!   users never looked up before, organization sets already cached: the
//!   membership and role queries over the pool, one round trip each.
//! - `fully cold through caches` (printed): both caches empty before each
//!   of 2k lookups.
//!
//! `cargo bench --bench pg_store` (needs Debian's postgresql; skips with a
//! message otherwise).

#[path = "../tests/pg_support/mod.rs"]
mod pg_support;

use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion};
use modelgate::store::bench::report;
use modelgate::store::{AccessStore, Database, StoreConfig};

const OPEN_WEBUI_DDL: &str = include_str!("../tests/pg_support/open_webui_0_12_4.sql");

/// Bulk facts: triggers off for the load (`session_replication_role`), as
/// the SQLite generator loads before it creates its triggers.
const FACTS: &str = r#"
SET session_replication_role = replica;
INSERT INTO "user" (id, name, email, role, profile_image_url, last_active_at, updated_at, created_at)
    SELECT 'user-' || lpad(u::text, 6, '0'), 'U', 'u' || u || '@x', 'user', '', 0, 0, 0
    FROM generate_series(0, 99999) u;
INSERT INTO organizations (id, name, created_at)
    SELECT 'org-' || lpad(o::text, 4, '0'), 'Org ' || o, 0 FROM generate_series(0, 999) o;
INSERT INTO organization_members (id, organization_id, user_id, role, is_active, joined_at)
    SELECT 'm-' || u || '-' || k, 'org-' || lpad(((u * 7 + k * 331) % 1000)::text, 4, '0'),
           'user-' || lpad(u::text, 6, '0'), 'member', true, 0
    FROM generate_series(0, 99999) u, generate_series(0, 2) k
    ON CONFLICT DO NOTHING;
INSERT INTO organization_models (id, organization_id, model_id, is_active, created_at, updated_at)
    SELECT 'l-' || o || '-' || j, 'org-' || lpad(o::text, 4, '0'),
           'model-' || ((o * 37 + j) % 2200), true, 0, 0
    FROM generate_series(0, 999) o, generate_series(0, 499) j
    ON CONFLICT DO NOTHING;
SET session_replication_role = DEFAULT;
ANALYZE;
"#;

struct Fixture {
    _pg: pg_support::PgServer,
    store: AccessStore,
    rt: tokio::runtime::Runtime,
}

fn fixture() -> Option<Fixture> {
    let pg = pg_support::PgServer::start()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let database = Database::resolve(Some(pg.url().as_ref()), &|_: &str| None).expect("url");
    let Database::Postgres(target) = &database else {
        panic!("a PostgreSQL URL");
    };
    let started = Instant::now();
    rt.block_on(async {
        let mut client = modelgate::store::pg::connect(target)
            .await
            .expect("connect");
        client
            .batch_execute(OPEN_WEBUI_DDL)
            .await
            .expect("Open WebUI tables");
        modelgate::store::pg::ensure_schema(&mut client)
            .await
            .expect("init");
        client.batch_execute(FACTS).await.expect("facts");
    });
    eprintln!(
        "generated the PostgreSQL data set in {:?}",
        started.elapsed()
    );
    let store = rt.block_on(async {
        let store = AccessStore::open(StoreConfig {
            cache_ttl: Duration::from_secs(3600),
            ..StoreConfig::for_database(database)
        });
        // Wait for the listener to trust the caches (its first heartbeat).
        loop {
            let listening = store
                .stats()
                .listener
                .is_some_and(|l| l.state == modelgate::store::ListenerState::Listening);
            if listening {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        store
    });
    Some(Fixture { _pg: pg, store, rt })
}

fn user(n: usize) -> String {
    format!("user-{:06}", (n * 7919) % 100_000)
}

fn benches(c: &mut Criterion) {
    let Some(f) = fixture() else {
        return;
    };
    let store = f.store.clone();
    f.rt.block_on(async { store.decide("user-000001", "model-7").await.expect("warm") });
    c.bench_function("pg_decide_cache_hit", |b| {
        b.to_async(&f.rt).iter(|| async {
            store
                .decide("user-000001", "model-7")
                .await
                .expect("decide")
        })
    });
    f.rt.block_on(async {
        for n in 0..10_000 {
            store.user(&user(n)).await.expect("warm-up");
        }
        let mut times = Vec::with_capacity(30_000);
        for n in 10_000..40_000 {
            let id = user(n);
            let start = Instant::now();
            store.user(&id).await.expect("lookup");
            times.push(start.elapsed().as_secs_f64() * 1e6);
        }
        report("cold lookup, org sets warm", &mut times);
        let mut times = Vec::with_capacity(2_000);
        for n in 0..2_000 {
            store.invalidate_all();
            let id = user(n);
            let start = Instant::now();
            store.user(&id).await.expect("lookup");
            times.push(start.elapsed().as_secs_f64() * 1e6);
        }
        report("fully cold through caches", &mut times);
    });
}

criterion_group! {
    name = pg_benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5)).sample_size(50);
    targets = benches
}

fn main() {
    pg_benches();
    Criterion::default().configure_from_args().final_summary();
}
