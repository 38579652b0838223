//! AccessStore on a generated production-size database
//! (`store::bench::Sizes::default()`: 100k users, 1k organizations, 2k
//! models, 300k memberships, 500k links). Targets (issue 3): cache-hit
//! decision ≤ 1 µs median; cold lookup ≤ 100 µs median, ≤ 1 ms p99.
//!
//! Which figure is which:
//! - `decide_cache_hit` (criterion): `AccessStore::decide` for a cached
//!   user: user-cache hit, graph from its slot, `permits` on the user's
//!   organization sets. The "cache-hit decision" target.
//! - `cold lookup, org sets warm` (printed, manual loop over 30k distinct
//!   users never looked up before, after a warm-up pass that loaded every
//!   organization's set): `AccessStore::user` on a user-cache miss — the
//!   membership/role queries on the pool plus org-cache hits. The "cold
//!   lookup" target (median and p99). It also prints how many org sets were
//!   loaded during the loop (expected 0: the sets really were warm).
//! - `fully cold through caches` (printed, 2k lookups, `invalidate_all`
//!   before each): user and organization caches both empty, so memberships
//!   plus one model-set load per organization (~3), each coalesced through
//!   the org cache. What the first request after a data change pays.
//! - `lookup_fully_cold_uncached` (criterion): `AccessStore::load_user`, the
//!   same reads on one pooled connection without touching any cache (the
//!   `access` CLI's explain path).
//! - `db-bench` lines: the raw SQL of each query on one connection.
//! - `decide_cache_hit_100_rules` (criterion): `decide_cache_hit` after 100
//!   glob rules (90 allows, 10 denies) were added to the user's
//!   organizations, for a model only the last allow grants (the worst
//!   case: every deny is tried first). The patterns target (≤ 1 µs).
//!
//! The TTL is set to an hour so no entry expires mid-run and turns a warm
//! figure into a cold one; everything else is the default `StoreConfig`.

use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion};
use modelgate::store::bench::{db_bench, generate, report, user_id, Sizes};
use modelgate::store::{AccessStore, StoreConfig};
use rusqlite::Connection;

struct Fixture {
    _dir: tempfile::TempDir,
    store: AccessStore,
    rt: tokio::runtime::Runtime,
    users: usize,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bench.db");
    let conn = Connection::open(&path).expect("open");
    conn.pragma_update(None, "journal_mode", "WAL")
        .expect("wal");
    let started = Instant::now();
    let sizes = generate(&conn, Sizes::default()).expect("generate");
    eprintln!("generated {sizes:?} in {:?}", started.elapsed());
    let report = db_bench(&path, 10_000).expect("db_bench");
    for q in &report.queries {
        eprintln!(
            "db-bench {:<18} p50 {:>7.1} µs  p95 {:>7.1} µs  p99 {:>7.1} µs  ok={} plan={:?}",
            q.name, q.p50_us, q.p95_us, q.p99_us, q.ok, q.plan
        );
    }
    assert!(report.ok, "an index is not used");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let cfg = StoreConfig {
        cache_ttl: Duration::from_secs(3600),
        ..StoreConfig::new(&path)
    };
    let store = rt.block_on(async {
        let store = AccessStore::open(cfg);
        // The watcher's first poll invalidates everything; start after it.
        while store.watcher_polls() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        store
    });
    Fixture {
        _dir: dir,
        store,
        rt,
        users: sizes.users,
    }
}

/// Distinct users in a scattered order (7919 is prime, coprime with 100k).
fn scattered(n: usize, users: usize) -> String {
    user_id((n * 7919) % users)
}

fn benches(c: &mut Criterion) {
    let f = fixture();
    let store = f.store.clone();
    let graph_model = "preset-0000";
    f.rt.block_on(async {
        store
            .decide("user-000001", graph_model)
            .await
            .expect("warm")
    });

    c.bench_function("decide_cache_hit", |b| {
        b.to_async(&f.rt).iter(|| async {
            store
                .decide("user-000001", graph_model)
                .await
                .expect("decide")
        })
    });

    let mut i = 0usize;
    c.bench_function("lookup_fully_cold_uncached", |b| {
        b.to_async(&f.rt).iter(|| {
            i = (i + 7919) % f.users;
            let id = user_id(i);
            let store = store.clone();
            async move { store.load_user(&id).await.expect("lookup") }
        })
    });

    // Criterion reports means and medians; the p99 target needs the tail,
    // and a user-cache miss needs a user nobody asked for yet.
    const WARM_UP: usize = 10_000;
    const MEASURED: usize = 30_000;
    f.rt.block_on(async {
        for n in 0..WARM_UP {
            store.user(&scattered(n, f.users)).await.expect("warm-up");
        }
        let before = store.stats();
        let mut times = Vec::with_capacity(MEASURED);
        for n in WARM_UP..WARM_UP + MEASURED {
            let id = scattered(n, f.users);
            let start = Instant::now();
            store.user(&id).await.expect("lookup");
            times.push(start.elapsed().as_secs_f64() * 1e6);
        }
        let after = store.stats();
        report("cold lookup, org sets warm", &mut times);
        eprintln!(
            "  user misses {}, org hits {}, org sets loaded {} (of {} cached), invalidations {}",
            after.misses - before.misses,
            after.org_hits - before.org_hits,
            after.org_loads - before.org_loads,
            after.org_entries,
            after.invalidations - before.invalidations
        );

        let mut times = Vec::with_capacity(2_000);
        for n in 0..2_000 {
            store.invalidate_all();
            let id = scattered(n, f.users);
            let start = Instant::now();
            store.user(&id).await.expect("lookup");
            times.push(start.elapsed().as_secs_f64() * 1e6);
        }
        report("fully cold through caches", &mut times);
    });

    // 100 glob rules over the user's organizations (90 allows, 10 denies),
    // written as an operator would, then the cache-hit decision for a
    // model only the last allow grants: every deny is tried first.
    let user = "user-000001";
    let orgs =
        f.rt.block_on(async { store.user(user).await.expect("user").organizations.clone() });
    let path = store
        .config()
        .database
        .sqlite_path()
        .expect("a SQLite bench database");
    let writer = modelgate::store::admin::open_writer(path).expect("writer");
    for i in 0..100 {
        let org = &orgs[i % orgs.len()];
        if i < 90 {
            modelgate::store::admin::enable_model(&writer, org, &format!("vendor-{i}/*"), "bench")
        } else {
            modelgate::store::admin::deny_model(&writer, org, &format!("vendor-{i}/*-pro"), "bench")
        }
        .expect("rule");
    }
    let target = "vendor-89/model-x";
    f.rt.block_on(async {
        // The watcher sees the writes and invalidates; wait for the rules.
        loop {
            if store
                .decide(user, target)
                .await
                .expect("decide")
                .is_allowed()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(store.user(user).await.expect("user").rules().len(), 100);
    });
    c.bench_function("decide_cache_hit_100_rules", |b| {
        b.to_async(&f.rt)
            .iter(|| async { store.decide(user, target).await.expect("decide") })
    });
}

criterion_group! {
    name = store_benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5)).sample_size(50);
    targets = benches
}

fn main() {
    store_benches();
    Criterion::default().configure_from_args().final_summary();
}
