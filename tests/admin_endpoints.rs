//! The admin listener: liveness, readiness naming what failed, metrics an
//! OpenMetrics scraper accepts, and diagnostics for admins only.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::Request;
use tokio::net::TcpListener;

use common::*;
use modelgate::admin::{self, AdminState};
use modelgate::proxy::body::full;
use modelgate::store::admin as store_admin;
use modelgate::store::webui_fixture::create_open_webui_tables;

fn token(user: &str) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &serde_json::json!({"id": user, "typ": "session"}),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

struct Admin {
    addr: std::net::SocketAddr,
    proxy: TestProxy,
}

async fn start(
    upstream: std::net::SocketAddr,
    tweak: impl FnOnce(&mut modelgate::config::FileConfig),
) -> Admin {
    let (dir, path) = temp_db();
    let conn = store_admin::open_writer(&path).unwrap();
    create_open_webui_tables(&conn).unwrap();
    conn.execute_batch(
        "INSERT INTO user (id, email, role, name) VALUES ('boss', 'b@x', 'admin', 'Boss'), ('joe', 'j@x', 'user', 'Joe');",
    )
    .unwrap();
    store_admin::create_org(&conn, "acme", "Acme", "test").unwrap();
    store_admin::add_member(
        &conn,
        "acme",
        "joe",
        store_admin::MemberRole::Member,
        "test",
    )
    .unwrap();
    store_admin::enable_model(&conn, "acme", "gpt-4o", "test").unwrap();
    let config = test_config(upstream, &path, tweak);
    let mut proxy = start_proxy_with(config).await;
    proxy.dir = Some(dir);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = Arc::new(AdminState {
        config: proxy.live.clone(),
        store: proxy.store.clone(),
        metrics: proxy.metrics.clone(),
        started: Instant::now(),
    });
    tokio::spawn(admin::serve(listener, state, std::future::pending()));
    Admin { addr, proxy }
}

async fn admin_get(a: &Admin, path: &str, bearer: Option<&str>) -> Answer {
    let mut b = Request::get(format!("http://{}{}", a.addr, path));
    if let Some(t) = bearer {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    send(b.body(full("")).unwrap()).await
}

#[tokio::test]
async fn liveness_and_readiness() {
    let up = FakeUpstream::builder().start().await;
    let a = start(up.addr, |_| {}).await;
    assert_eq!(admin_get(&a, "/health", None).await.json()["status"], "ok");
    let ready = admin_get(&a, "/health/ready", None).await;
    assert_eq!(
        ready.status,
        200,
        "{}",
        String::from_utf8_lossy(&ready.body)
    );
    assert_eq!(ready.json()["checks"]["store"], "ok");

    let down = start(closed_port().await, |_| {}).await;
    let r = admin_get(&down, "/health/ready", None).await;
    assert_eq!(r.status, 503);
    assert!(r.json()["checks"]["upstream"]
        .as_str()
        .unwrap()
        .contains("unreachable"));
    assert_eq!(
        r.json()["checks"]["store"],
        "ok",
        "names only the part that failed"
    );

    // Open WebUI answers, but the model API the egress forwards to does not.
    let dead = closed_port().await;
    let egress_down = start(up.addr, |f| {
        f.egress.upstream = format!("http://{dead}/api/v1")
    })
    .await;
    let r = admin_get(&egress_down, "/health/ready", None).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["checks"]["upstream"], "ok");
    assert!(r.json()["checks"]["egress_upstream"]
        .as_str()
        .unwrap()
        .contains("unreachable"));
}

#[tokio::test]
async fn readiness_fails_when_the_store_is_unreadable() {
    let up = FakeUpstream::builder().start().await;
    let a = start(up.addr, |_| {}).await;
    let db = a.proxy.live.load().startup.database.clone();
    std::fs::remove_file(db.sqlite_path().unwrap()).unwrap();
    let r = admin_get(&a, "/health/ready", None).await;
    assert_eq!(r.status, 503);
    assert_ne!(r.json()["checks"]["store"], "ok");
}

#[tokio::test]
async fn metrics_reflect_traffic() {
    let up = FakeUpstream::builder().start().await;
    let a = start(up.addr, |_| {}).await;
    let joe = token("joe");
    let call = |model: &str| {
        Request::post(a.proxy.url("/api/chat/completions"))
            .header("authorization", format!("Bearer {joe}"))
            .header("content-type", "application/json")
            .body(full(format!("{{\"model\":\"{model}\"}}")))
            .unwrap()
    };
    assert_eq!(send(call("gpt-4o")).await.status, 200);
    assert_eq!(send(call("llama")).await.status, 403);
    let m = scrape(&a, Some("application/openmetrics-text; version=1.0.0")).await;
    assert_eq!(m.status, 200);
    assert!(m.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let text = String::from_utf8(m.body.to_vec()).unwrap();
    for needle in [
        "modelgate_decisions_total{gate=\"ingress\",outcome=\"allowed\",organization=\"acme\"} 1",
        "modelgate_decisions_total{gate=\"ingress\",outcome=\"denied\",organization=\"acme\"} 1",
        "modelgate_requests_total{gate=\"ingress\",route=\"model_call\",status=\"403\"} 1",
        "modelgate_enforcement_enabled 1",
        "modelgate_cache_entries",
        "modelgate_store_up 1",
        "modelgate_policy_watch_polls_total",
        "# EOF",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    assert!(!text.contains("joe"), "no user ids in labels");
    let queries: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("modelgate_store_query_duration_seconds_count "))
        .expect("store query histogram")
        .trim()
        .parse()
        .unwrap();
    assert!(queries >= 1.0, "the store's queries are observed");
}

/// `/metrics` with the given `Accept` header.
async fn scrape(a: &Admin, accept: Option<&str>) -> Answer {
    let mut b = Request::get(format!("http://{}/metrics", a.addr));
    if let Some(accept) = accept {
        b = b.header("accept", accept);
    }
    let m = send(b.body(full("")).unwrap()).await;
    assert_eq!(m.status, 200);
    assert_eq!(m.headers["vary"], "accept");
    m
}

#[tokio::test]
async fn metrics_speak_the_format_the_scraper_accepts() {
    let up = FakeUpstream::builder().start().await;
    let a = start(up.addr, |_| {}).await;
    let unauthenticated = Request::post(a.proxy.url("/api/chat/completions"))
        .header("content-type", "application/json")
        .body(full("{\"model\":\"gpt-4o\"}"))
        .unwrap();
    assert_eq!(send(unauthenticated).await.status, 401);
    let build = format!(
        "modelgate_build_info{{version=\"{}\",commit=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION"),
        modelgate::metrics::GIT_COMMIT
    );

    // Prometheus' own Accept header, and OpenMetrics alone: OpenMetrics.
    for accept in [
        "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
        "application/openmetrics-text",
    ] {
        let m = scrape(&a, Some(accept)).await;
        assert_eq!(
            m.headers["content-type"],
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        );
        let text = String::from_utf8(m.body.to_vec()).unwrap();
        assert!(text.ends_with("# EOF\n"));
        assert!(text.contains("# TYPE modelgate_decisions counter\n"));
        assert!(text.contains("# TYPE modelgate_build_info gauge\n"));
        assert!(text.lines().any(|l| l == build), "{text}");
    }

    // text/plain, anything without an OpenMetrics type, or no header: the
    // Prometheus text format, every family named as its samples are.
    for accept in [Some("text/plain; version=0.0.4"), Some("*/*"), None] {
        let m = scrape(&a, accept).await;
        assert_eq!(
            m.headers["content-type"], "text/plain; version=0.0.4; charset=utf-8",
            "{accept:?}"
        );
        let text = String::from_utf8(m.body.to_vec()).unwrap();
        assert!(
            !text.contains("# EOF") && !text.contains("# UNIT"),
            "{text}"
        );
        for line in [
            "# TYPE modelgate_decisions_total counter",
            "# TYPE modelgate_requests_total counter",
            "# TYPE modelgate_build_info gauge",
            "# TYPE modelgate_cache_hits_total counter",
            "# TYPE modelgate_request_duration_seconds histogram",
            build.as_str(),
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        assert!(text.contains("# HELP modelgate_decisions_total Model-access decisions"));
        assert!(text.contains(
            "modelgate_decisions_total{gate=\"ingress\",outcome=\"unauthenticated\",organization=\"none\"} 1\n"
        ));
        if cfg!(target_os = "linux") {
            for family in [
                "process_resident_memory_bytes",
                "process_virtual_memory_bytes",
                "process_open_fds",
                "process_max_fds",
                "process_start_time_seconds",
                "process_cpu_seconds_total",
            ] {
                assert!(
                    text.contains(&format!("\n# HELP {family} ")),
                    "missing {family}"
                );
                assert!(text.contains(&format!("\n{family} ")), "no {family} sample");
            }
        }
    }
}

#[tokio::test]
async fn store_errors_are_counted() {
    let up = FakeUpstream::builder().start().await;
    let a = start(up.addr, |_| {}).await;
    std::fs::write(
        a.proxy.live.load().startup.database.sqlite_path().unwrap(),
        b"this is not a database",
    )
    .unwrap();
    let req = Request::post(a.proxy.url("/api/chat/completions"))
        .header("authorization", format!("Bearer {}", token("joe")))
        .header("content-type", "application/json")
        .body(full("{\"model\":\"gpt-4o\"}"))
        .unwrap();
    assert_eq!(
        assert_error_shape(&send(req).await, 503),
        "access_data_unavailable"
    );
    let text = String::from_utf8(admin_get(&a, "/metrics", None).await.body.to_vec()).unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with("modelgate_store_errors_total{")),
        "{text}"
    );
    assert!(
        text.contains("modelgate_decisions_total{gate=\"ingress\",outcome=\"error\""),
        "{text}"
    );
    // The change watcher cannot read it either: the store is down.
    let a = &a;
    eventually(
        Duration::from_secs(10),
        "modelgate_store_up 0",
        || async move {
            let m = scrape(a, Some("text/plain")).await;
            let text = String::from_utf8(m.body.to_vec()).unwrap();
            text.lines().any(|l| l == "modelgate_store_up 0")
        },
    )
    .await;
}

#[tokio::test]
async fn diagnostics_are_for_admins_only() {
    let up = FakeUpstream::builder().start().await;
    let token_dir = tempfile::tempdir().unwrap();
    let token_file = token_dir.path().join("admin-token");
    std::fs::write(&token_file, "s3cret-admin-token\n").unwrap();
    let a = start(up.addr, |f| f.admin.token_file = Some(token_file.clone())).await;

    for path in ["/health/detailed", "/health/model-access/joe"] {
        let none = admin_get(&a, path, None).await;
        assert_eq!(assert_error_shape(&none, 401), "not_authenticated");
        let user = admin_get(&a, path, Some(&token("joe"))).await;
        assert_eq!(assert_error_shape(&user, 403), "admin_required");
        let wrong = admin_get(&a, path, Some("s3cret-admin-tokeX")).await;
        assert!(wrong.status == 401 || wrong.status == 403);
        assert_eq!(admin_get(&a, path, Some(&token("boss"))).await.status, 200);
        assert_eq!(
            admin_get(&a, path, Some("s3cret-admin-token")).await.status,
            200
        );
    }
    let d = admin_get(&a, "/health/detailed", Some(&token("boss")))
        .await
        .json();
    assert_eq!(d["config"]["enforcing"], true);
    assert_eq!(d["config"]["session_key_configured"], true);
    // An age in seconds to the millisecond, not 17 digits of f64.
    let age = d["store"]["policy_age_seconds"].to_string();
    assert!(
        age.split('.').nth(1).map_or(0, str::len) <= 3,
        "policy_age_seconds = {age}"
    );
    assert!(!d.to_string().contains(SECRET), "no secrets in the summary");
    assert!(
        !d.to_string().contains("s3cret"),
        "no secrets in the summary"
    );
    let m = admin_get(&a, "/health/model-access/joe", Some(&token("boss")))
        .await
        .json();
    assert_eq!(m["organizations"], serde_json::json!(["acme"]));
    assert!(m.to_string().contains("gpt-4o"));
}

/// The `unauthenticated` decisions counted so far (0 when never counted).
async fn unauthenticated_decisions(a: &Admin) -> f64 {
    let text = String::from_utf8(scrape(a, Some("text/plain")).await.body.to_vec()).unwrap();
    text.lines()
        .filter(|l| {
            l.starts_with("modelgate_decisions_total{") && l.contains("outcome=\"unauthenticated\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Issue 16, item 7: a probe of the admin endpoints without a valid admin
/// credential is a failed login, not a model-access decision.
#[tokio::test]
async fn failed_admin_logins_are_not_access_decisions() {
    let up = FakeUpstream::builder().start().await;
    let token_dir = tempfile::tempdir().unwrap();
    let token_file = token_dir.path().join("admin-token");
    std::fs::write(&token_file, "s3cret-admin-token\n").unwrap();
    let a = start(up.addr, |f| f.admin.token_file = Some(token_file.clone())).await;

    for _ in 0..3 {
        for path in ["/health/detailed", "/health/model-access/joe"] {
            assert_eq!(admin_get(&a, path, None).await.status, 401);
            let wrong = admin_get(&a, path, Some("s3cret-admin-tokeX")).await;
            assert_eq!(wrong.status, 401);
            assert_eq!(admin_get(&a, path, Some("not.a.jwt")).await.status, 401);
            assert_eq!(admin_get(&a, path, Some(&token("joe"))).await.status, 403);
        }
    }
    assert_eq!(unauthenticated_decisions(&a).await, 0.0);

    // The counter itself works: an unauthenticated model call moves it.
    let call = Request::post(a.proxy.url("/api/chat/completions"))
        .header("content-type", "application/json")
        .body(full("{\"model\":\"gpt-4o\"}"))
        .unwrap();
    assert_eq!(send(call).await.status, 401);
    assert_eq!(unauthenticated_decisions(&a).await, 1.0);
}
