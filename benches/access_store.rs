//! AccessStore on a generated production-size database (100k users, 1k
//! organizations, 2k models, 300k memberships, 500k links): the cache-hit
//! decision (target ≤ 1 µs median) and the cold lookup through the pool
//! (target ≤ 100 µs median, ≤ 1 ms p99). Also prints the `db-bench` report.

use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion};
use modelgate::store::bench::{db_bench, generate, percentile, user_id, Sizes};
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
            "db-bench {:<17} p50 {:>7.1} µs  p95 {:>7.1} µs  p99 {:>7.1} µs  ok={} plan={:?}",
            q.name, q.p50_us, q.p95_us, q.p99_us, q.ok, q.plan
        );
    }
    assert!(report.ok, "an index is not used");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let store = rt.block_on(async { AccessStore::open(StoreConfig::new(&path)) });
    Fixture {
        _dir: dir,
        store,
        rt,
        users: sizes.users,
    }
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
    c.bench_function("lookup_cold_through_pool", |b| {
        b.to_async(&f.rt).iter(|| {
            i = (i + 7919) % f.users;
            let id = user_id(i);
            let store = store.clone();
            async move { store.load_user(&id).await.expect("lookup") }
        })
    });

    // Criterion reports means and medians; the p99 target needs the tail.
    let mut times: Vec<f64> = f.rt.block_on(async {
        let mut times = Vec::with_capacity(20_000);
        for n in 0..20_000usize {
            let id = user_id((n * 7919) % f.users);
            let start = Instant::now();
            store.load_user(&id).await.expect("lookup");
            times.push(start.elapsed().as_secs_f64() * 1e6);
        }
        times
    });
    times.sort_by(f64::total_cmp);
    eprintln!(
        "cold lookup through pool (20k): p50 {:.1} µs  p95 {:.1} µs  p99 {:.1} µs",
        percentile(&times, 0.5),
        percentile(&times, 0.95),
        percentile(&times, 0.99)
    );
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
