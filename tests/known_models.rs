//! The gates learn the model ids the upstream offers from the lists they
//! forward: Open WebUI's `/api/models` as an admin sees it (ingress), the
//! model API's `GET /models` (egress). The database ends up with each
//! source's list; an unchanged list is not rewritten, an error response
//! and a member's (filtered by Open WebUI) list teach nothing.

mod common;
mod enforce_support;

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use common::*;
use enforce_support::Env;
use modelgate::config::FileConfig;
use modelgate::metrics::Metrics;
use modelgate::proxy::body::full;
use modelgate::proxy::egress::Egress;
use modelgate::store::known::known_models;

fn list(ids: &[&str]) -> Bytes {
    let data: Vec<_> = ids
        .iter()
        .map(|id| json!({"id": id, "object": "model"}))
        .collect();
    Bytes::from(json!({"object": "list", "data": data}).to_string())
}

fn json_reply(status: StatusCode, body: Bytes) -> Reply {
    Reply::Fixed(
        status,
        vec![("content-type", "application/json".into())],
        body,
    )
}

fn gzip_reply(body: &[u8]) -> Reply {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(body).unwrap();
    Reply::Fixed(
        StatusCode::OK,
        vec![
            ("content-type", "application/json".into()),
            ("content-encoding", "gzip".into()),
        ],
        Bytes::from(gz.finish().unwrap()),
    )
}

/// Every list is looked at (no interval), so each step can be waited for.
fn every_list(f: &mut FileConfig) {
    f.store.known_models_interval_secs = 0;
}

/// `modelgate_known_model_lists_total{gate,result}`.
fn looked_at(m: &Metrics, gate: &str, result: &str) -> u64 {
    let needle =
        format!(r#"modelgate_known_model_lists_total{{gate="{gate}",result="{result}"}} "#);
    m.encode()
        .lines()
        .find_map(|l| l.strip_prefix(&needle))
        .map_or(0, |v| v.trim().parse().unwrap())
}

async fn wait_looked_at(m: &Metrics, gate: &str, result: &str, n: u64) {
    eventually(
        Duration::from_secs(10),
        &format!("{n} {gate} list(s) {result}"),
        || async { looked_at(m, gate, result) >= n },
    )
    .await;
}

/// The recorded ids of one source, sorted.
fn recorded(env: &Env, source: &str) -> Vec<String> {
    env.writer()
        .prepare("SELECT model_id FROM known_models WHERE source = ?1 ORDER BY model_id")
        .unwrap()
        .query_map([source], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// The egress on the same store and metrics as the env's proxy, forwarding
/// to the same fake upstream.
async fn start_egress(env: &Env) -> (SocketAddr, oneshot::Sender<()>) {
    let p = &env.proxy;
    let egress = Egress::new(p.live.clone(), p.store.clone(), p.metrics.clone()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(modelgate::server::serve(listener, egress, async move {
        let _ = stopped.await;
    }));
    (addr, stop)
}

#[tokio::test]
async fn an_admin_s_model_list_is_learned_an_error_is_not() {
    let upstream = ["gpt-4o", "claude", "llama", "alice-helper", "upstream-only"];
    let env = Env::with(
        |b| {
            b.route("/api/models", json_reply(StatusCode::OK, list(&upstream)))
                .route(
                    "/api/v1/models",
                    json_reply(StatusCode::INTERNAL_SERVER_ERROR, list(&["from-an-error"])),
                )
        },
        every_list,
    )
    .await;
    let m = &env.proxy.metrics;

    let error = env.get_as("root", "/api/v1/models").await;
    assert_eq!(error.status, StatusCode::INTERNAL_SERVER_ERROR);
    let ok = env.get_as("root", "/api/models").await;
    assert_eq!(ok.status, StatusCode::OK);
    // Root (organization B) is shown llama only; the upstream's whole list
    // is what is learned.
    assert_eq!(ok.json()["data"].as_array().unwrap().len(), 1);
    wait_looked_at(m, "ingress", "recorded", 1).await;

    let mut want: Vec<String> = upstream.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(recorded(&env, "ingress"), want);
    assert!(recorded(&env, "egress").is_empty());
    let known = known_models(&env.writer()).unwrap();
    assert!(known.contains("upstream-only"));
    assert!(!known.contains("from-an-error"));
    // The error was never even looked at.
    assert_eq!(looked_at(m, "ingress", "unchanged"), 0);
    assert_eq!(looked_at(m, "ingress", "failed"), 0);
    // Recorded once, not audited as a permission change.
    let audit_rows: i64 = env
        .writer()
        .query_row(
            "SELECT COUNT(*) FROM permission_audit_log WHERE table_name LIKE 'known%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(audit_rows, 0);
}

/// Open WebUI filters a member's list by its own access control: learning
/// it would make the known set follow whoever asked last.
#[tokio::test]
async fn a_member_s_list_teaches_nothing() {
    let env = Env::with(
        |b| {
            b.route(
                "/api/models",
                json_reply(StatusCode::OK, list(&["members-view"])),
            )
            .route(
                "/api/v1/models",
                json_reply(StatusCode::OK, list(&["admins-view"])),
            )
        },
        every_list,
    )
    .await;
    let m = &env.proxy.metrics;
    assert_eq!(
        env.get_as("alice", "/api/models").await.status,
        StatusCode::OK
    );
    assert_eq!(
        env.get_as("root", "/api/v1/models").await.status,
        StatusCode::OK
    );
    eventually(Duration::from_secs(10), "the admin's list", || async {
        recorded(&env, "ingress") == ["admins-view"]
    })
    .await;
    assert_eq!(looked_at(m, "ingress", "recorded"), 1);
}

/// With `BYPASS_ADMIN_ACCESS_CONTROL` an admin's list streams unfiltered;
/// it is copied as it passes and learned all the same.
#[tokio::test]
async fn a_bypassing_admin_s_streamed_list_is_learned() {
    let env = Env::with(
        |b| b.route("/api/models", json_reply(StatusCode::OK, list(&["a", "b"]))),
        |f| {
            every_list(f);
            f.access.bypass_admin_access_control = true;
        },
    )
    .await;
    let a = env.get_as("root", "/api/models").await;
    assert_eq!(a.body, list(&["a", "b"]), "passed unchanged");
    wait_looked_at(&env.proxy.metrics, "ingress", "recorded", 1).await;
    assert_eq!(recorded(&env, "ingress"), ["a", "b"]);
}

#[tokio::test]
async fn the_egress_learns_the_model_api_s_list_and_rewrites_it_only_when_it_changes() {
    let env = Env::with(
        |b| {
            b.route(
                "/models",
                json_reply(StatusCode::OK, list(&["openai/gpt-4o", "openai/o1"])),
            )
            .route(
                "/v1/models",
                json_reply(StatusCode::SERVICE_UNAVAILABLE, list(&["from-an-error"])),
            )
            .route(
                "/api/v1/models",
                gzip_reply(&list(&["openai/gpt-4o", "openai/o3"])),
            )
        },
        every_list,
    )
    .await;
    let (egress, _stop) = start_egress(&env).await;
    let m = &env.proxy.metrics;
    let get = |path: &str| {
        send(
            Request::get(format!("http://{egress}{path}"))
                .header("authorization", "Bearer sk-or-operator-key")
                .body(full(Bytes::new()))
                .unwrap(),
        )
    };

    let first = get("/models").await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(
        first.body,
        list(&["openai/gpt-4o", "openai/o1"]),
        "streamed unchanged"
    );
    wait_looked_at(m, "egress", "recorded", 1).await;
    assert_eq!(recorded(&env, "egress"), ["openai/gpt-4o", "openai/o1"]);

    // An error teaches nothing.
    assert_eq!(
        get("/v1/models").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );

    // The same list again: looked at, found unchanged, not written (the
    // stamp planted here survives).
    env.writer()
        .execute(
            "UPDATE known_model_sources SET seen_at = 1 WHERE source = 'egress'",
            [],
        )
        .unwrap();
    assert_eq!(get("/models").await.status, StatusCode::OK);
    wait_looked_at(m, "egress", "unchanged", 1).await;
    let stamp: i64 = env
        .writer()
        .query_row(
            "SELECT seen_at FROM known_model_sources WHERE source = 'egress'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(stamp, 1, "an unchanged list was rewritten");

    // A changed (and compressed) list replaces the set.
    let gz = get("/api/v1/models").await;
    assert_eq!(gz.headers["content-encoding"], "gzip", "passed as sent");
    wait_looked_at(m, "egress", "recorded", 2).await;
    assert_eq!(recorded(&env, "egress"), ["openai/gpt-4o", "openai/o3"]);

    assert!(!known_models(&env.writer())
        .unwrap()
        .contains("from-an-error"));
    assert_eq!(looked_at(m, "egress", "recorded"), 2);
    assert_eq!(looked_at(m, "egress", "unchanged"), 1);
    assert_eq!(looked_at(m, "egress", "failed"), 0);
    assert!(recorded(&env, "ingress").is_empty());
}

/// A database the gate cannot write (here: gone): the list still reaches
/// the client, and the failure is counted.
#[tokio::test]
async fn a_failed_write_never_fails_the_request() {
    let env = Env::with(
        |b| b.route("/models", json_reply(StatusCode::OK, list(&["x"]))),
        every_list,
    )
    .await;
    let (egress, _stop) = start_egress(&env).await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", env.db.display()));
    }
    let a = send(
        Request::get(format!("http://{egress}/models"))
            .body(full(Bytes::new()))
            .unwrap(),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body, list(&["x"]));
    wait_looked_at(&env.proxy.metrics, "egress", "failed", 1).await;
    assert_eq!(env.proxy.store.known_recorder().failures(), 1);
    assert!(!env.db.exists(), "the recorder never creates the database");
}
